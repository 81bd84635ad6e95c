/*
 * `error_page CODE ... [=[RESPONSE]] URI|@name`, `recursive_error_pages`,
 * `proxy_intercept_errors` and `grpc_intercept_errors`, with nginx's semantics.
 *
 * rampart's own error answers (return, the limits' 429/503, access 401/403, the 404
 * of a location without content, 413, the proxy's 502/504) all pass through
 * rp_http_send_error(); this module is its error hook. When the request's location
 * (its own error_page lines, or those of the nearest level above that has some: the
 * list is inherited whole, never added up) names the status, the answer becomes:
 *
 *  - URI starting with "/": an internal redirect to it (its "?args" are the new
 *    arguments; variables allowed), the method becoming GET (HEAD stays HEAD);
 *  - "@name": the server's named location, method and URI kept;
 *  - anything else: a redirect to it (302, or =301/302/303/307/308 when given).
 *
 * The response goes out with the original status, with =RESPONSE's, or (a bare "=")
 * with whatever the page produced: request.c applies r->err_status to every head,
 * as nginx's err_status. Without `recursive_error_pages on`, a request answers at
 * most one error with a page: once a location with error pages was consulted,
 * later errors get rampart's plain page. The redirect counts against the bound of 10
 * URI changes, and once it is spent the error is plain too.
 *
 * An upstream's own error answer is replaced by the page only with
 * proxy_intercept_errors (grpc_intercept_errors for grpc_pass) on, and only for a
 * status that has an error_page here: the proxy asks rp_http_error_page_intercept()
 * when the head arrives, drops the head, discards the body and hands the upstream
 * connection back for reuse when the body ends cleanly.
 */
#include "http/error_page.h"
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"

#include <string.h>

typedef struct {
    int status;
    int overwrite; /* -1: the original status; 0: the page's own; else this code */
    rp_cv_t value; /* the URI, @name or redirect target */
    rp_str_t args; /* a fixed URI's "?args" */
} error_page_t;

typedef struct {
    rp_array_t *pages; /* error_page_t; NULL: none at this level (the parent's apply) */
    int recursive;     /* recursive_error_pages */
    int proxy_intercept;
    int grpc_intercept;
} error_page_conf_t;

extern rp_module_t rp_http_error_page_module;

static void *create_loc(rp_conf_t *cf)
{
    error_page_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->recursive = RP_CONF_UNSET;
    c->proxy_intercept = RP_CONF_UNSET;
    c->grpc_intercept = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    error_page_conf_t *p = parent, *c = child;
    if (c->pages == NULL)
        c->pages = p->pages; /* nginx: a level with its own error_page keeps only its own */
    RP_CONF_MERGE(c->recursive, p->recursive, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->proxy_intercept, p->proxy_intercept, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->grpc_intercept, p->grpc_intercept, RP_CONF_UNSET, 0);
    return RP_CONF_OK;
}

/* A decimal number of the whole string, or -1. */
static long number(const char *s)
{
    long v;
    if (*s == '\0' || rp_parse_int(s, 100000, &v) != 0)
        return -1;
    return v;
}

static const char *set_error_page(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    error_page_conf_t *c = conf;
    size_t last = cf->argc - 1, i = cf->argc - 2, n;
    int overwrite;
    const char *o = cf->argv[i];
    if (o[0] == '=') {
        if (i == 1)
            return rp_conf_error(cf, "invalid value \"%s\"", o);
        if (o[1]) {
            long v = number(o + 1);
            if (v < 0)
                return rp_conf_error(cf, "invalid value \"%s\"", o);
            overwrite = (int)v;
        } else {
            overwrite = 0;
        }
        n = 2;
    } else {
        overwrite = -1;
        n = 1;
    }
    rp_cv_t cv;
    const char *err = rp_cv_compile(cf, cf->argv[last], &cv);
    if (err)
        return err;
    rp_str_t args = RP_NULL_STR;
    if (!cv.has_vars && cv.value.len && cv.value.data[0] == '/') {
        const char *q = memchr(cv.value.data, '?', cv.value.len);
        if (q) {
            args = (rp_str_t){q + 1, (size_t)(cv.value.data + cv.value.len - (q + 1))};
            cv.value.len = (size_t)(q - cv.value.data);
        }
    }
    if (c->pages == NULL) {
        c->pages = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(c->pages, cf->arena, 4, sizeof(error_page_t));
    }
    for (size_t k = 1; k < cf->argc - n; k++) {
        long status = number(cf->argv[k]);
        if (status < 0 || status == 499)
            return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[k]);
        if (status < 300 || status > 599)
            return rp_conf_error(cf, "value \"%s\" must be between 300 and 599", cf->argv[k]);
        error_page_t *ep = rp_array_push(c->pages);
        ep->status = (int)status;
        ep->overwrite = overwrite;
        if (overwrite == -1 && (status == 494 || status == 495 || status == 496 || status == 497))
            ep->overwrite = 400; /* nginx's own codes for a bad request answer as 400 */
        ep->value = cv;
        ep->args = args;
    }
    return RP_CONF_OK;
}

static const error_page_t *find_page(const error_page_conf_t *c, int status)
{
    if (c == NULL || c->pages == NULL)
        return NULL;
    const error_page_t *ep = c->pages->elts;
    for (size_t i = 0; i < c->pages->nelts; i++)
        if (ep[i].status == status)
            return &ep[i];
    return NULL;
}

static int is_redirect(int code)
{
    return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

static int send_page(rp_request_t *r, const error_page_t *ep)
{
    if (ep->overwrite >= 0)
        r->err_status = ep->overwrite;
    rp_str_t uri = rp_cv_eval(r, &ep->value);
    if (uri.len && uri.data[0] == '/') {
        rp_str_t args = ep->args;
        if (ep->value.has_vars) {
            const char *q = memchr(uri.data, '?', uri.len);
            args = RP_NULL_STR;
            if (q) {
                args = (rp_str_t){q + 1, (size_t)(uri.data + uri.len - (q + 1))};
                uri.len = (size_t)(q - uri.data);
            }
        }
        if (!r->head)
            r->method = RP_STR("GET"); /* as nginx: the page is fetched, whatever was asked */
        /* ... and without the request's body, which a proxied page could not send again
         * (it streamed to the first upstream); the protocol discards what is unread */
        r->content_length = -1;
        r->chunked = 0;
        return rp_http_internal_redirect(r, uri, args);
    }
    if (uri.len && uri.data[0] == '@')
        return rp_http_named_redirect(r, uri);
    /* a redirect: any Location said before is replaced */
    for (unsigned i = 0; i < r->nout_headers; i++)
        if (rp_str_ieq(r->out_headers[i].name, "location"))
            r->out_headers[i].name.len = 0; /* an emptied name is skipped when the head is made */
    rp_http_add_header(r, RP_STR("Location"), rp_http_safe_location(r, uri));
    if (!is_redirect(ep->overwrite))
        r->err_status = 302;
    return rp_http_send_error_page(r, r->err_status);
}

/* The error hook (request.h). */
static int error_hook(rp_request_t *r, int status)
{
    r->err_status = status; /* as nginx: whatever came before, this error is the answer */
    /* a subrequest's status is its parent's to read (auth_request): it gets no page */
    if (r->error_page || r->uri_changes == 0 || r->subrequest || r->loc_conf == NULL)
        return RP_DECLINED;
    const error_page_conf_t *c = rp_http_loc_conf(r, rp_http_error_page_module);
    if (c == NULL || c->pages == NULL)
        return RP_DECLINED;
    if (!c->recursive)
        r->error_page = 1;
    const error_page_t *ep = find_page(c, status);
    if (ep == NULL)
        return RP_DECLINED;
    return send_page(r, ep);
}

int rp_http_error_page_intercept(rp_request_t *r, int status, int grpc)
{
    if (status < 300)
        return 0;
    const error_page_conf_t *c = rp_http_loc_conf(r, rp_http_error_page_module);
    if (c == NULL || !(grpc ? c->grpc_intercept : c->proxy_intercept))
        return 0;
    return find_page(c, status) != NULL;
}

void rp_http_error_page_keep_field(rp_request_t *r, int status, rp_str_t name, rp_str_t value)
{
    if (status != 401 || !rp_str_ieq(name, "www-authenticate"))
        return;
    rp_http_add_header(r, RP_STR("WWW-Authenticate"),
                       (rp_str_t){rp_arena_strndup(r->arena, value.data, value.len), value.len});
}

static const char *postconfiguration(rp_conf_t *cf)
{
    (void)cf;
    rp_http_error_hook = error_hook;
    return RP_CONF_OK;
}

#define WHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"error_page", WHERE | RP_CTX_LIF, 0, 2, RP_ARGS_ANY, set_error_page, RP_CONF_LOC, 0, NULL},
    {"recursive_error_pages", WHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(error_page_conf_t, recursive), NULL},
    {"proxy_intercept_errors", WHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(error_page_conf_t, proxy_intercept), NULL},
    {"grpc_intercept_errors", WHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(error_page_conf_t, grpc_intercept), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_error_page_module = {
    .name = "http_error_page",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
