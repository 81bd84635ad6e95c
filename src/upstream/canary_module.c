/*
 * Canary splits: `proxy_canary TARGET weight=5% [key=VALUE] [header=NAME];` in a
 * location with proxy_pass, `grpc_canary` in one with grpc_pass, send a share of
 * the location's requests to another upstream (a block, or host:port, resolved
 * when the configuration is read, as proxy_pass's is).
 *
 * Which side a request takes: a request carrying the header= field with a value that
 * says a side ("1", "on", "true", "canary"; "0", "off", "false", "stable", "primary")
 * goes there; else, with key=, the key's hash decides, so one key (a user, a session)
 * always lands on the same side, in every worker and across reloads; else, or when the
 * key is empty, chance decides, request by request. The hash places each key at a fixed
 * point of [0, 100%) and the canary takes the points below its weight, so raising the
 * weight only moves keys to the canary, never back.
 *
 * The choice itself is made with the upstream's, in rp_proxy_choose (upstream_choose.c);
 * this file reads the directives, resolves their targets and holds the pure decision.
 */
#include "http/http.h"
#include "core/random.h"
#include "upstream/upstream_choose.h"
#include "core/murmur.h"
#include "upstream/upstream_ssl.h"

#include <string.h>
#include <strings.h>

/* A canary directive read, resolved once the whole configuration is (its location's
 * pass and *_ssl_* settings are merged by then, and its block may come later). */
typedef struct {
    rp_http_conf_ctx_t *ctx;
    int grpc;
    char **argv;
    size_t argc;
    const char *file;
    unsigned line;
    rp_proxy_canary_t *canary;
    const char *target;
    int scheme; /* written in the target: 1 https/grpcs, 0 http/grpc, -1 not written */
} pending_t;

typedef struct {
    rp_array_t pending; /* pending_t */
} canary_main_conf_t;

typedef struct {
    unsigned proxy_set : 1, grpc_set : 1;
} canary_loc_conf_t;

/* ---- the decision ---- */

uint32_t rp_canary_hash(rp_str_t key)
{
    /* split_clients's hash (MurmurHash2, fixed seed: the same everywhere, always), scaled
     * to the weight's units as split_clients scales it to its percentages */
    return (uint32_t)((uint64_t)rp_murmur_hash2(key.data, key.len) * RP_CANARY_SCALE >> 32);
}

int rp_canary_forced(rp_str_t v)
{
    if (rp_str_ieq(v, "1") || rp_str_ieq(v, "on") || rp_str_ieq(v, "true") ||
        rp_str_ieq(v, "canary"))
        return 1;
    if (rp_str_ieq(v, "0") || rp_str_ieq(v, "off") || rp_str_ieq(v, "false") ||
        rp_str_ieq(v, "stable") || rp_str_ieq(v, "primary"))
        return 0;
    return -1;
}

int rp_canary_pick(rp_request_t *r, const rp_proxy_canary_t *c)
{
    if (c->header) {
        rp_str_t v = rp_request_header(r, c->header);
        int side = v.len ? rp_canary_forced(v) : -1;
        if (side >= 0)
            return side;
    }
    if (c->has_key) {
        rp_str_t k = rp_cv_eval(r, &c->key);
        if (k.len)
            return rp_canary_hash(k) < c->weight;
    }
    return rp_random_below(RP_CANARY_SCALE) < c->weight;
}

/* ---- the directives ---- */

static void *create_main(rp_conf_t *cf)
{
    canary_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->pending, cf->arena, 4, sizeof(pending_t));
    return m;
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(canary_loc_conf_t));
}

/* "5%", "0.5%", "100%": parts per million, or -1. */
static long parse_weight(const char *s)
{
    long whole = 0, frac = 0, scale = 10000; /* 1% = 10000 ppm */
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (*p++ - '0');
        if (whole > 100)
            return -1;
    }
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9') {
            if (scale == 1)
                return -1; /* finer than 0.0001% */
            scale /= 10;
            frac += (*p++ - '0') * scale;
        }
    }
    if (p[0] != '%' || p[1] != '\0')
        return -1;
    long ppm = whole * 10000 + frac;
    return ppm > (long)RP_CANARY_SCALE ? -1 : ppm;
}

static int token_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static const char *set_canary(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    canary_loc_conf_t *lc = conf;
    int grpc = cmd->post != NULL;
    if (grpc ? lc->grpc_set : lc->proxy_set)
        return "is duplicate";
    if (grpc)
        lc->grpc_set = 1;
    else
        lc->proxy_set = 1;

    rp_proxy_canary_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    int weight_set = 0;
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "weight=", 7) == 0) {
            long w = parse_weight(a + 7);
            if (w < 0)
                return rp_conf_error(cf,
                                     "invalid weight \"%s\" (a percentage from 0%% to "
                                     "100%%, such as 5%% or 0.5%%)",
                                     a + 7);
            c->weight = (uint32_t)w;
            weight_set = 1;
        } else if (strncmp(a, "key=", 4) == 0) {
            if (a[4] == '\0')
                return rp_conf_error(cf, "empty key");
            const char *err = rp_cv_compile(cf, a + 4, &c->key);
            if (err)
                return err;
            c->has_key = 1;
        } else if (strncmp(a, "header=", 7) == 0) {
            const char *h = a + 7;
            if (*h == '\0')
                return rp_conf_error(cf, "empty header name");
            size_t n = strlen(h);
            char *lower = rp_arena_alloc(cf->arena, n + 1);
            for (size_t k = 0; k <= n; k++) {
                if (k < n && !token_char(h[k]))
                    return rp_conf_error(cf, "invalid header name \"%s\"", h);
                lower[k] = (char)(h[k] >= 'A' && h[k] <= 'Z' ? h[k] + 32 : h[k]);
            }
            c->header = lower;
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    if (!weight_set)
        return rp_conf_error(cf, "no weight= (the share of requests the canary gets, such as "
                                 "weight=5%%)");

    const char *target = cf->argv[1];
    const char *plain = grpc ? "grpc://" : "http://", *secure = grpc ? "grpcs://" : "https://";
    int scheme = -1;
    if (strncasecmp(target, secure, strlen(secure)) == 0) {
        scheme = 1;
        target += strlen(secure);
    } else if (strncasecmp(target, plain, strlen(plain)) == 0) {
        scheme = 0;
        target += strlen(plain);
    } else if (strstr(target, "://")) {
        return rp_conf_error(cf, "invalid URL prefix in \"%s\" (expected %s or %s)", cf->argv[1],
                             plain, secure);
    }
    if (*target == '\0')
        return rp_conf_error(cf, "no host in \"%s\"", cf->argv[1]);
    if (strchr(target, '$'))
        return rp_conf_error(cf, "variables are not supported in the target \"%s\"", cf->argv[1]);
    if (strpbrk(target, "/?#@"))
        return rp_conf_error(cf,
                             "the target \"%s\" is an upstream name or host:port, without "
                             "a URI part",
                             cf->argv[1]);

    canary_main_conf_t *m = cf->http_ctx->main_conf[rp_canary_module.index];
    pending_t *pd = rp_array_push(&m->pending);
    pd->ctx = cf->http_ctx;
    pd->grpc = grpc;
    pd->argv = rp_arena_alloc(cf->arena, (cf->argc + 1) * sizeof(char *));
    memcpy(pd->argv, cf->argv, cf->argc * sizeof(char *));
    pd->argv[cf->argc] = NULL;
    pd->argc = cf->argc;
    pd->file = cf->file;
    pd->line = cf->line;
    pd->canary = c;
    pd->target = target;
    pd->scheme = scheme;
    return RP_CONF_OK;
}

/* Resolves one canary: its location's pass, the target's group and TLS settings. */
static const char *resolve(rp_conf_t *cf, pending_t *pd)
{
    rp_module_t *pass = pd->grpc ? &rp_grpc_module : &rp_proxy_module;
    rp_module_t *other = pd->grpc ? &rp_proxy_module : &rp_grpc_module;
    const char *pass_name = pd->grpc ? "grpc_pass" : "proxy_pass";
    rp_proxy_loc_conf_t *p = pd->ctx->loc_conf[pass->index];
    rp_proxy_loc_conf_t *o = pd->ctx->loc_conf[other->index];
    int has = p && (p->host.data || (p->route && p->route->dynamic));
    if (!has) {
        if (o && (o->host.data || (o->route && o->route->dynamic)))
            return rp_conf_error(cf,
                                 "is for a location with \"%s\"; this one has \"%s\" (use "
                                 "\"%s\")",
                                 pass_name, pd->grpc ? "proxy_pass" : "grpc_pass",
                                 pd->grpc ? "proxy_canary" : "grpc_canary");
        return rp_conf_error(cf, "needs \"%s\" in the same location", pass_name);
    }
    int tls = pd->scheme;
    if (tls < 0) {
        /* the pass's scheme */
        tls = p->route && p->route->dynamic ? p->route->scheme_tls : p->https;
        if (tls < 0)
            return rp_conf_error(cf,
                                 "the scheme of \"%s\" is chosen per request: write the "
                                 "canary's (%s or %s)",
                                 pass_name, pd->grpc ? "grpc://" : "http://",
                                 pd->grpc ? "grpcs://" : "https://");
    }
    rp_proxy_canary_t *c = pd->canary;
    const char *err = rp_upstream_resolve(cf, pd->target, tls, &c->upstream);
    if (err != RP_CONF_OK)
        return err;
    c->host = (rp_str_t){pd->target, strlen(pd->target)};
    if (tls) {
        rp_module_t *sm = pd->grpc ? &rp_grpc_ssl_module : &rp_proxy_ssl_module;
        rp_upstream_ssl_conf_t *sc = pd->ctx->loc_conf[sm->index];
        err = rp_upstream_tls_get(cf, sc, c->upstream, pd->target, pd->grpc || c->upstream->http2,
                                  &c->tls);
        if (err != RP_CONF_OK)
            return err;
    }
    rp_proxy_route_t *route = rp_proxy_route_get(cf, p);
    if (!route->dynamic) {
        route->file = pd->file;
        route->line = pd->line;
    }
    route->canary = c;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    canary_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_canary_module);
    if (m == NULL)
        return RP_CONF_OK;
    pending_t *pd = m->pending.elts;
    for (size_t i = 0; i < m->pending.nelts; i++) {
        cf->file = pd[i].file;
        cf->line = pd[i].line;
        cf->argv = pd[i].argv;
        cf->argc = pd[i].argc;
        cf->http_ctx = pd[i].ctx;
        const char *err = resolve(cf, &pd[i]);
        if (err != RP_CONF_OK)
            return err;
    }
    cf->argv = NULL;
    cf->argc = 0;
    cf->http_ctx = NULL;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"proxy_canary", RP_CTX_LOCATION, 0, 1, 4, set_canary, RP_CONF_LOC, 0, NULL},
    {"grpc_canary", RP_CTX_LOCATION, 0, 1, 4, set_canary, RP_CONF_LOC, 0, "grpc"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_canary_module = {
    .name = "canary",
    .commands = commands,
    .create_http_main = create_main,
    .create_loc = create_loc,
    .postconfiguration = postconfiguration,
};
