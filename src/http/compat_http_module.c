/*
 * nginx's everyday server-level switches that a configuration brought from nginx
 * carries, with nginx's meaning:
 *
 *   underscores_in_headers on|off   (default off)
 *   ignore_invalid_headers on|off   (default on)
 *       As nginx, a request header field whose name holds anything but letters,
 *       digits and "-" ("_" too with underscores_in_headers on) is dropped, logged
 *       at info, when ignore_invalid_headers is on: neither $http_ variables nor
 *       the upstream see it. A backend that maps "_" to "-" (CGI, WSGI, PHP-FPM)
 *       would otherwise read X_Forwarded_For as X-Forwarded-For. Names outside
 *       RFC 9110's token characters are refused (400) by the parsers already.
 *   http2 on|off                    (nginx 1.25.1's form)
 *       on: HTTP/2 on the server's listen addresses, as `listen ... http2`.
 *
 * And two variables of nginx's: $hostname (the machine's name) and $nginx_version,
 * which answers rampart's own version (a configuration that logs or sends it keeps
 * working, and tells the truth).
 *
 * The check runs first in SERVER_REWRITE, when the server is known (nginx takes
 * the switches from the server the request reached). A header set without any odd
 * name costs one table lookup per name byte.
 */
#include "conf/conf.h"
#include "core/log.h"
#include "http/http.h"
#include "http/request.h"
#include "net/listen.h"

#include "http/variables.h"

#include <string.h>
#include <unistd.h>

typedef struct {
    int underscores; /* underscores_in_headers */
    int ignore;      /* ignore_invalid_headers */
    int http2;       /* http2 on|off */
} compat_srv_conf_t;

/* letters, digits and "-": 1; "_": 2 */
static unsigned char name_char[256];

static void *create_srv(rp_conf_t *cf)
{
    compat_srv_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->underscores = RP_CONF_UNSET;
    c->ignore = RP_CONF_UNSET;
    c->http2 = RP_CONF_UNSET;
    return c;
}

static const char *merge_srv(rp_conf_t *cf, void *parent, void *child)
{
    compat_srv_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->underscores, p->underscores, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->ignore, p->ignore, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->http2, p->http2, RP_CONF_UNSET, 0);
    return RP_CONF_OK;
}

static int valid_name(rp_str_t n, int underscores)
{
    unsigned char need = underscores ? 1 | 2 : 1;
    for (size_t i = 0; i < n.len; i++)
        if (!(name_char[(unsigned char)n.data[i]] & need))
            return 0;
    return 1;
}

static int drop_invalid_headers(rp_request_t *r)
{
    if (r->subrequest)
        return RP_DECLINED; /* its fields were its parent's, checked then */
    const compat_srv_conf_t *c = rp_http_srv_conf(r, rp_http_compat_module);
    if (!c->ignore)
        return RP_DECLINED;
    unsigned kept = 0;
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (valid_name(r->headers[i].name, c->underscores)) {
            r->headers[kept++] = r->headers[i];
            continue;
        }
        rp_log_error(RP_LOG_INFO, 0, "client sent invalid header line: \"%.*s\"",
                     (int)r->headers[i].name.len, r->headers[i].name.data);
    }
    r->nheaders = kept;
    return RP_DECLINED; /* the phase's other handlers (realip, server-level rewrite) go on */
}

/* http2 on: as `listen ... http2` on each of the server's addresses. The address
 * tables are built when the http block closes, so this runs after. */
static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cf->cycle);
    if (cmcf == NULL)
        return RP_CONF_OK;
    rp_http_add_phase_handler(cf, RP_PHASE_SERVER_REWRITE, drop_invalid_headers);

    rp_http_core_srv_conf_t **servers = cmcf->servers.elts;
    rp_http_addr_t **addrs = cmcf->addrs.elts;
    for (size_t s = 0; s < cmcf->servers.nelts; s++) {
        const compat_srv_conf_t *c = servers[s]->ctx->srv_conf[rp_http_compat_module.index];
        if (c->http2 != 1)
            continue;
        const rp_listen_opt_t *lo = servers[s]->listens.elts;
        for (size_t l = 0; l < servers[s]->listens.nelts; l++) {
            for (size_t a = 0; a < cmcf->addrs.nelts; a++) {
                const rp_listening_t *ls = addrs[a]->listening;
                if (ls->socklen == lo[l].socklen && memcmp(&ls->sa, &lo[l].sa, ls->socklen) == 0)
                    addrs[a]->http2 = 1;
            }
        }
    }
    return RP_CONF_OK;
}

/* Read once per process: the name does not change under a running server. */
static char hostname[256];

static int get_hostname(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)r, (void)v;
    if (hostname[0] == '\0' && gethostname(hostname, sizeof(hostname) - 1) != 0)
        hostname[0] = '\0';
    *out = (rp_str_t){hostname, strlen(hostname)};
    return 0;
}

static int get_nginx_version(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)r, (void)v;
    *out = RP_STR(PACKAGE_VERSION);
    return 0;
}

static const rp_var_def_t variables[] = {
    {"hostname", get_hostname, NULL, 0, 0},
    {"nginx_version", get_nginx_version, NULL, 0, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    for (int ch = 0; ch < 256; ch++)
        name_char[ch] = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9') || ch == '-';
    name_char['_'] = 2;
    return rp_var_register(cf, variables);
}

#define HTTP_SRV (RP_CTX_HTTP | RP_CTX_SERVER)

static const rp_command_t commands[] = {
    {"underscores_in_headers", HTTP_SRV, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV,
     offsetof(compat_srv_conf_t, underscores), NULL},
    {"ignore_invalid_headers", HTTP_SRV, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV,
     offsetof(compat_srv_conf_t, ignore), NULL},
    /* the upstream block's `http2;` is another directive of the same name */
    {"http2", HTTP_SRV, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV, offsetof(compat_srv_conf_t, http2),
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_compat_module = {
    .name = "http_compat",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_srv = create_srv,
    .merge_srv = merge_srv,
    .postconfiguration = postconfiguration,
};
