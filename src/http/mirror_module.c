/*
 * `mirror URI | off;` and `mirror_request_body on | off;`, as nginx's
 * ngx_http_mirror_module: traffic shadowing. For each mirror URI of the location a
 * background subrequest (subrequest.c) is made in the precontent phase, with the
 * client request's method, fields and arguments; whatever becomes of it (an answer,
 * an error, a refused connection, a timeout) is discarded and never touches the
 * client's response, which goes on at once without waiting for it.
 *
 * With mirror_request_body on (the default) the request body is read whole first
 * (rp_http_keep_body: in memory, within client_max_body_size), and then both the
 * request itself (through rp_http_read_body, which serves the kept body) and every
 * mirror send it; with off the mirrors send no body and the request's streams as
 * usual. Only a client's request is mirrored, never a subrequest.
 *
 * Several `mirror` lines in a location make several mirrors; a location without
 * any inherits those of the enclosing level, and `mirror off` stops that.
 */
#include "core/log.h"
#include "http/request.h"

#include <string.h>

typedef struct {
    rp_array_t *uris; /* rp_str_t; NULL: `mirror off` (or none); UNSET: inherit */
    int request_body;
} mirror_loc_conf_t;

static void *create_loc(rp_conf_t *cf)
{
    mirror_loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->uris = RP_CONF_UNSET_PTR;
    c->request_body = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    mirror_loc_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->uris, p->uris, RP_CONF_UNSET_PTR, NULL);
    RP_CONF_MERGE(c->request_body, p->request_body, RP_CONF_UNSET, 1);
    return RP_CONF_OK;
}

/* nginx's rules: any number of URIs, or `off` alone; either twice in a level where the
 * other was given is a duplicate. */
static const char *set_mirror(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    mirror_loc_conf_t *m = conf;
    const char *uri = cf->argv[1];
    if (strcmp(uri, "off") == 0) {
        if (m->uris != RP_CONF_UNSET_PTR)
            return "duplicate directive";
        m->uris = NULL;
        return RP_CONF_OK;
    }
    if (m->uris == NULL)
        return "duplicate directive";
    if (uri[0] != '/')
        return rp_conf_error(cf, "invalid mirror URI \"%s\": it must start with \"/\"", uri);
    if (m->uris == RP_CONF_UNSET_PTR) {
        m->uris = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(m->uris, cf->arena, 2, sizeof(rp_str_t));
    }
    rp_str_t *s = rp_array_push(m->uris);
    *s = (rp_str_t){rp_arena_strdup(cf->arena, uri), strlen(uri)};
    return RP_CONF_OK;
}

static int mirror_handler(rp_request_t *r)
{
    if (r->subrequest)
        return RP_DECLINED;
    const mirror_loc_conf_t *m = rp_http_loc_conf(r, rp_http_mirror_module);
    if (m->uris == NULL)
        return RP_DECLINED;
    if (m->request_body) {
        /* called again once the body is complete (RP_AGAIN), and finds it kept */
        int rc = rp_http_keep_body(r);
        if (rc != RP_OK)
            return rc;
    }
    const rp_str_t *uri = m->uris->elts;
    unsigned flags = RP_HTTP_SUB_BACKGROUND | (m->request_body ? RP_HTTP_SUB_BODY : 0);
    for (size_t i = 0; i < m->uris->nelts; i++) {
        rp_request_t *sr;
        if (rp_http_subrequest(r, uri[i], r->args, flags, &sr) != RP_OK)
            return rp_http_send_error(r, 500); /* as nginx: it cannot mirror, so it fails */
        rp_http_subrequest_method(sr, r->method);
    }
    return RP_DECLINED;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_PRECONTENT, mirror_handler);
    return RP_CONF_OK;
}

#define LOC(f)   offsetof(mirror_loc_conf_t, f)
#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"mirror", ANYWHERE, 0, 1, 1, set_mirror, RP_CONF_LOC, 0, NULL},
    {"mirror_request_body", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(request_body),
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_mirror_module = {
    .name = "http_mirror",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
