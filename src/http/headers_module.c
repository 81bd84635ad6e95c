/*
 * `add_header NAME VALUE [always]`, as in nginx: the header is added to
 * responses with status 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308, or
 * to every response with `always`. The value may hold variables; an empty value
 * adds nothing. A level with its own add_header lines does not inherit its
 * parent's (nginx's rule, which surprises people, but a configuration copied from
 * nginx must mean the same thing here). It is a header filter: it sees every
 * response, rampart's own included, once its status is final.
 */
#include "http/request.h"
#include "http/variables.h"

#include <string.h>

typedef struct {
    rp_str_t name;
    rp_cv_t value;
    int always;
} add_header_t;

typedef struct {
    rp_array_t *headers; /* add_header_t; NULL when this level has none */
} headers_conf_t;

extern rp_module_t rp_http_headers_module;

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(headers_conf_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    headers_conf_t *p = parent, *c = child;
    if (c->headers == NULL)
        c->headers = p->headers;
    return RP_CONF_OK;
}

static const char *set_add_header(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    headers_conf_t *hc = conf;
    if (hc->headers == NULL) {
        hc->headers = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(hc->headers, cf->arena, 4, sizeof(add_header_t));
    }
    const char *name = cf->argv[1];
    const char *bad = rp_conf_check_header(cf, name, cf->argv[2]);
    if (bad)
        return bad;
    add_header_t *h = rp_array_push(hc->headers);
    h->name = (rp_str_t){name, strlen(name)};
    const char *err = rp_cv_compile(cf, cf->argv[2], &h->value);
    if (err)
        return err;
    h->always = 0;
    if (cf->argc == 4) {
        if (strcmp(cf->argv[3], "always") != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[3]);
        h->always = 1;
    }
    return RP_CONF_OK;
}

static int status_takes_headers(int status)
{
    switch (status) {
    case 200: case 201: case 204: case 206: case 301: case 302: case 303: case 304: case 307:
    case 308:
        return 1;
    }
    return 0;
}

static int filter(rp_request_t *r, const rp_http_header_filter_t *self)
{
    headers_conf_t *hc = r->loc_conf ? r->loc_conf[rp_http_headers_module.index] : NULL;
    if (hc == NULL || hc->headers == NULL)
        return rp_http_next_header(r, self);
    int ok = status_takes_headers(r->status);
    const add_header_t *h = hc->headers->elts;
    for (size_t i = 0; i < hc->headers->nelts; i++) {
        if (!ok && !h[i].always)
            continue;
        rp_str_t v = rp_cv_eval(r, &h[i].value);
        /* A variable's value comes from the client: never let it split the head. */
        if (v.len == 0 || memchr(v.data, '\r', v.len) || memchr(v.data, '\n', v.len))
            continue;
        rp_http_add_header(r, h[i].name, v);
    }
    return rp_http_next_header(r, self);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_header_filter(cf, RP_FILTER_HEADERS, "add_header", filter);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"add_header", ANYWHERE | RP_CTX_LIF, 0, 2, 3, set_add_header, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_headers_module = {
    .name = "http_headers",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
