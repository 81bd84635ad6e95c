/*
 * grpc_pass and its directives (grpc_connect_timeout, grpc_send_timeout,
 * grpc_read_timeout, grpc_set_header, grpc_hide_header), with nginx's syntax.
 * A grpc_pass location always speaks HTTP/2 to its upstream, whether or not the
 * group says `http2`; the exchange is proxy_h2.c's, in its gRPC-aware mode. The
 * location configuration has the proxy's shape (rp_proxy_loc_conf_t), so that
 * exchange reads one kind of configuration.
 *
 * grpc_pass grpcs://... speaks TLS (ALPN "h2") by the grpc_ssl_* directives
 * (proxy_ssl_module.c); its implicit groups default to port 443 and are pools
 * of their own, apart from the cleartext ones of grpc://.
 */
#include "http/http.h"
#include "upstream/proxy_h2.h"
#include "upstream/upstream_choose.h"
#include "upstream/upstream_ssl.h"

#include <string.h>
#include <strings.h>

/* grpc_pass lines resolved once the whole file is read (an upstream block may come
 * later in the file), as proxy_pass does. */
typedef struct {
    rp_proxy_loc_conf_t *glcf;
    rp_http_conf_ctx_t *ctx;
    char *url;
    const char *file;
    unsigned line;
} pending_t;

typedef struct {
    rp_array_t pending; /* pending_t */
} grpc_main_conf_t;

rp_module_t rp_grpc_module;

static void *create_main(rp_conf_t *cf)
{
    grpc_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->pending, cf->arena, 4, sizeof(pending_t));
    return m;
}

static void *create_loc(rp_conf_t *cf)
{
    rp_proxy_loc_conf_t *g = rp_arena_calloc(cf->arena, sizeof(*g));
    g->connect_timeout = RP_CONF_UNSET_MSEC;
    g->send_timeout = RP_CONF_UNSET_MSEC;
    g->read_timeout = RP_CONF_UNSET_MSEC;
    /* nginx's grpc module has no proxy_redirect, cookie rules or pass_request_* twins */
    g->redirect = 0;
    g->pass_request_headers = g->pass_request_body = 1;
    return g;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_proxy_loc_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->connect_timeout, p->connect_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->send_timeout, p->send_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->read_timeout, p->read_timeout, RP_CONF_UNSET_MSEC, 60000);
    /* as proxy_set_header: a level with its own lines replaces the inherited ones; there
     * are no default fields (the client's authority goes as :authority) */
    if (c->set_headers == NULL)
        c->set_headers = p->set_headers;
    if (c->hide_headers == NULL && c->pass_headers == NULL) {
        c->hide_headers = p->hide_headers;
        c->pass_headers = p->pass_headers;
    }
    if (!c->ignore_set) {
        c->ignore_set = p->ignore_set;
        c->ignore_headers = p->ignore_headers;
    }
    c->headers = c->set_headers ? c->set_headers->elts : NULL;
    c->nheaders = c->set_headers ? c->set_headers->nelts : 0;
    return RP_CONF_OK;
}

static const char *set_grpc_pass(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *g = conf;
    if (g->host.data || (g->route && g->route->dynamic))
        return "is duplicate";
    const char *url = cf->argv[1];
    grpc_main_conf_t *m = cf->http_ctx->main_conf[rp_grpc_module.index];
    if (strchr(url, '$')) {
        /* chosen per request (upstream_choose.c); its TLS settings once they are merged */
        const char *err = rp_proxy_route_compile(cf, g, url, 1);
        if (err != RP_CONF_OK)
            return err;
        pending_t *pd = rp_array_push(&m->pending);
        pd->glcf = g;
        pd->ctx = cf->http_ctx;
        pd->url = cf->argv[1];
        pd->file = cf->file;
        pd->line = cf->line;
        return RP_CONF_OK;
    }
    const char *host = url;
    if (strncasecmp(url, "grpcs://", 8) == 0) {
        host = url + 8;
        g->https = 1;
    } else if (strncasecmp(url, "grpc://", 7) == 0) {
        host = url + 7;
    } else if (strstr(url, "://")) {
        return rp_conf_error(cf, "invalid URL prefix in \"%s\" (expected grpc:// or grpcs://)",
                             url);
    }
    size_t hlen = strlen(host);
    if (hlen == 0)
        return rp_conf_error(cf, "no host in \"%s\"", url);
    if (strchr(host, '/'))
        return rp_conf_error(cf, "\"grpc_pass\" cannot have a URI part in \"%s\"", url);
    if (strpbrk(host, "?#@"))
        return rp_conf_error(cf, "invalid host in \"%s\"", url);
    g->host = (rp_str_t){rp_arena_strndup(cf->arena, host, hlen), hlen};

    pending_t *pd = rp_array_push(&m->pending);
    pd->glcf = g;
    pd->ctx = cf->http_ctx;
    pd->url = cf->argv[1];
    pd->file = cf->file;
    pd->line = cf->line;
    return RP_CONF_OK;
}

static const char *set_header(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *g = conf;
    const char *name = cf->argv[1];
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
        strcasecmp(name, "connection") == 0 || strcasecmp(name, "te") == 0)
        return rp_conf_error(cf, "\"%s\" cannot be set: rampart writes it itself", name);
    return rp_proxy_add_header(cf, g, name, cf->argv[2]);
}

static int grpc_handler(rp_request_t *r)
{
    rp_proxy_loc_conf_t *g = r->loc_conf[rp_grpc_module.index];
    if (g == NULL || (g->upstream == NULL && g->route == NULL))
        return RP_DECLINED;
    return rp_proxy_h2_handler(r, g, 1);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    if (rp_http_core_main_conf(cf->cycle) == NULL)
        return RP_CONF_OK;
    rp_http_add_phase_handler(cf, RP_PHASE_CONTENT, grpc_handler);

    grpc_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_grpc_module);
    pending_t *pd = m->pending.elts;
    for (size_t i = 0; i < m->pending.nelts; i++) {
        rp_proxy_loc_conf_t *g = pd[i].glcf;
        char *argv[] = {"grpc_pass", pd[i].url, NULL};
        cf->file = pd[i].file;
        cf->line = pd[i].line;
        cf->argv = argv;
        cf->http_ctx = pd[i].ctx;
        rp_proxy_loc_conf_t *p = pd[i].ctx->loc_conf[rp_proxy_module.index];
        if (p && (p->host.data || (p->route && p->route->dynamic)))
            return rp_conf_error(cf, "\"grpc_pass\" and \"proxy_pass\" in the same location");
        if (g->route && g->route->dynamic) {
            const char *err = rp_proxy_route_tls(cf, g, pd[i].ctx);
            if (err != RP_CONF_OK)
                return err;
            continue;
        }
        const char *name = g->host.data;
        const char *rerr = rp_upstream_resolve(cf, name, g->https, &g->upstream);
        if (rerr != RP_CONF_OK)
            return rerr;
        if (g->https) {
            /* the location's grpc_ssl_* settings, merged by now; gRPC is always HTTP/2 */
            rp_upstream_ssl_conf_t *sc = pd[i].ctx->loc_conf[rp_grpc_ssl_module.index];
            const char *err = rp_upstream_tls_get(cf, sc, g->upstream, name, 1, &g->tls);
            if (err != RP_CONF_OK)
                return err;
        }
    }
    cf->argv = NULL;
    cf->http_ctx = NULL;
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define LOC(f)   offsetof(rp_proxy_loc_conf_t, f)

static const rp_command_t commands[] = {
    {"grpc_pass", RP_CTX_LOCATION | RP_CTX_LIF, 0, 1, 1, set_grpc_pass, RP_CONF_LOC, 0, NULL},
    {"grpc_set_header", ANYWHERE, 0, 2, 2, set_header, RP_CONF_LOC, 0, NULL},
    {"grpc_hide_header", ANYWHERE, 0, 1, 1, rp_proxy_set_hide, RP_CONF_LOC, 0, NULL},
    {"grpc_pass_header", ANYWHERE, 0, 1, 1, rp_proxy_set_pass_header, RP_CONF_LOC, 0, NULL},
    {"grpc_ignore_headers", ANYWHERE, 0, 1, 9, rp_proxy_set_ignore_headers, RP_CONF_LOC, 0,
     NULL},
    {"grpc_connect_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC, LOC(connect_timeout),
     NULL},
    {"grpc_send_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC, LOC(send_timeout),
     NULL},
    {"grpc_read_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC, LOC(read_timeout),
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_grpc_module = {
    .name = "grpc",
    .commands = commands,
    .create_http_main = create_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
