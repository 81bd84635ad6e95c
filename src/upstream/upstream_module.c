/*
 * The `upstream` block and its directives: `server` lines with nginx's
 * parameters (weight=N, max_conns=N, max_fails=N, fail_timeout=T, slow_start=T,
 * backup, down, resolve) and the keep-alive cache (`keepalive N`, `keepalive_timeout`,
 * `keepalive_requests`), `http2` (the group speaks HTTP/2, h2_upstream.c),
 * `zone` (the shared peer table), and the balancing directives, one per block:
 * least_conn, random, least_time, ip_hash, hash (balancer_*.c).
 * Also the implicit pools behind proxy_pass host:port, one per scheme, so an
 * https one and a plain one to the same address stay apart, and the same kind of
 * pool made while serving, for an address a proxy_pass with variables named
 * (upstream_choose.c keeps those).
 */
#include "upstream/upstream.h"
#include "upstream/balancer.h"
#include "http/http.h"
#include "http/variables.h"
#include "net/listen.h"

#include <limits.h>
#include <string.h>

static void *create_http_main(rp_conf_t *cf)
{
    rp_upstream_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->upstreams, cf->arena, 4, sizeof(void *));
    rp_array_init(&m->tls_ctxs, cf->arena, 2, sizeof(void *));
    rp_array_init(&m->tls, cf->arena, 2, sizeof(void *));
    return m;
}

/* A pool's fields before its directives: what every pool, block or implicit, starts as. */
static void init_ups(rp_upstream_conf_t *u, rp_cycle_t *cycle)
{
    u->keepalive_timeout = RP_CONF_UNSET_MSEC;
    u->keepalive_requests = RP_CONF_UNSET;
    u->cycle = cycle;
    u->panic_threshold = -1;
    u->retry_budget_pct = 20; /* Envoy's budget when one is set: 20%, at least 3 */
    u->retry_budget_min = 3;
    u->balancer = &rp_upstream_round_robin; /* a balancing directive replaces it */
}

static void *create_ups(rp_conf_t *cf)
{
    rp_upstream_conf_t *u = rp_arena_calloc(cf->arena, sizeof(*u));
    rp_array_init(&u->servers, cf->arena, 4, sizeof(rp_upstream_server_t));
    rp_array_init(&u->resolve, cf->arena, 1, sizeof(rp_upstream_resolve_t));
    init_ups(u, cf->cycle);
    return u;
}

/* Counts primary and backup servers once the pool is complete, and sets defaults.
 * Returns 0, or -1 when no server is a primary one. */
static int count_servers(rp_upstream_conf_t *u)
{
    if (u->keepalive_timeout == RP_CONF_UNSET_MSEC)
        u->keepalive_timeout = 60000;
    if (u->keepalive_requests == RP_CONF_UNSET)
        u->keepalive_requests = 1000;
    rp_upstream_server_t *s = u->servers.elts;
    u->nprimary = u->nbackup = 0;
    for (size_t i = 0; i < u->servers.nelts; i++) {
        if (s[i].backup)
            u->nbackup++;
        else
            u->nprimary++;
    }
    rp_upstream_resolve_t *rl = u->resolve.elts;
    for (size_t i = 0; i < u->resolve.nelts; i++) {
        if (rl[i].tmpl.backup)
            u->nbackup++;
        else
            u->nprimary++;
    }
    return u->nprimary ? 0 : -1;
}

static const char *finish_ups(rp_conf_t *cf, rp_upstream_conf_t *u)
{
    if (count_servers(u) != 0)
        return rp_conf_error(cf, "no primary servers in upstream \"%s\"", u->name);
    if (u->hash_balance_factor > 0 && u->balancer != &rp_upstream_hash_consistent) {
        snprintf(cf->error, sizeof(cf->error),
                 "%s:%u: \"hash_balance_factor\": needs \"hash ... consistent\" in upstream "
                 "\"%s\"",
                 u->hbf_file, u->hbf_line, u->name);
        return RP_CONF_ERROR;
    }
    if (u->balancer->init) {
        const char *err = u->balancer->init(cf, u);
        if (err != RP_CONF_OK)
            return err;
    }
    return rp_upstream_zone_attach(cf, u);
}

/* A server with nginx's defaults: weight=1 max_fails=1 fail_timeout=10s. */
static void init_server(rp_upstream_server_t *s, const char *file, unsigned line)
{
    memset(s, 0, sizeof(*s));
    s->weight = 1;
    s->max_fails = 1;
    s->fail_timeout = 10000;
    s->file = file;
    s->line = line;
}

/* A server line's parameters with nginx's defaults, at the line being read. */
static void server_defaults(rp_conf_t *cf, rp_upstream_server_t *s)
{
    init_server(s, cf->file, cf->line);
}

static void push_server(rp_conf_t *cf, rp_upstream_conf_t *u, const rp_upstream_server_t *tmpl,
                        const struct sockaddr *sa, socklen_t len)
{
    rp_upstream_server_t *s = rp_array_push(&u->servers);
    *s = *tmpl;
    memcpy(&s->sa, sa, len);
    s->socklen = len;
    char buf[80];
    rp_sockaddr_text((const struct sockaddr *)&s->sa, buf, sizeof(buf));
    s->name = rp_arena_strdup(cf->arena, buf);
}

/* Adds a peer made from tmpl for every address of host (a literal's one; as nginx, each
 * address a name has now, at start and at each reload). NULL, or "host not found". */
static const char *add_addresses(rp_conf_t *cf, rp_upstream_conf_t *u,
                                 const rp_upstream_server_t *tmpl, const char *host, int port)
{
    struct sockaddr_storage sa[RP_UPSTREAM_MAX_ADDRS];
    socklen_t lens[RP_UPSTREAM_MAX_ADDRS];
    unsigned n = rp_addr_lookup(host, port, sa, lens, RP_UPSTREAM_MAX_ADDRS);
    for (unsigned i = 0; i < n; i++)
        push_server(cf, u, tmpl, (struct sockaddr *)&sa[i], lens[i]);
    return n ? NULL : "host not found";
}

const char *rp_upstream_resolve(rp_conf_t *cf, const char *name, int tls,
                                rp_upstream_conf_t **out)
{
    *out = rp_upstream_find(cf, name);
    if (*out)
        return RP_CONF_OK;
    int has_port = name[0] == '[' ? strstr(name, "]:") != NULL : strchr(name, ':') != NULL;
    const char *hp = has_port ? name : rp_arena_sprintf(cf->arena, "%s:%d", name, tls ? 443 : 80);
    const char *err = rp_upstream_implicit(cf, hp, tls, out);
    if (err)
        return rp_conf_error(cf, "%s (no upstream block \"%s\" either)", err, name);
    return RP_CONF_OK;
}

const char *rp_upstream_implicit(rp_conf_t *cf, const char *hostport, int tls,
                                 rp_upstream_conf_t **out)
{
    rp_upstream_main_conf_t *m = cf->http_ctx->main_conf[rp_upstream_module.index];
    rp_upstream_conf_t **v = m->upstreams.elts;
    for (size_t i = 0; i < m->upstreams.nelts; i++) {
        if (v[i]->implicit && v[i]->implicit_tls == (unsigned)!!tls &&
            strcmp(v[i]->name, hostport) == 0) {
            *out = v[i];
            return NULL;
        }
    }
    rp_upstream_conf_t *u = create_ups(cf);
    u->name = rp_arena_strdup(cf->arena, hostport);
    u->implicit = 1;
    u->implicit_tls = !!tls;
    u->file = cf->file;
    u->line = cf->line;
    rp_upstream_server_t tmpl;
    server_defaults(cf, &tmpl);
    char host[256];
    int port;
    const char *err = rp_addr_split(cf->arena, hostport, 80, host, sizeof(host), &port);
    if (err)
        return err;
    if (add_addresses(cf, u, &tmpl, host, port) != NULL)
        return rp_arena_sprintf(cf->arena, "host not found in \"%s\"", hostport);
    if ((err = finish_ups(cf, u)) != RP_CONF_OK)
        return err;
    *(rp_upstream_conf_t **)rp_array_push(&m->upstreams) = u;
    *out = u;
    return NULL;
}

void rp_upstream_implicit_make(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                               const rp_upstream_implicit_t *how)
{
    memset(u, 0, sizeof(*u));
    init_ups(u, how->cycle);
    u->name = how->name;
    u->implicit = 1;
    u->implicit_tls = !!how->tls;
    u->file = how->file;
    u->line = how->line;
    u->keepalive = how->keepalive;
    u->keepalive_timeout = how->keepalive_timeout;
    u->keepalive_requests = how->keepalive_requests;
    /* one server, in memory the caller owns: the array never grows */
    init_server(s, how->file, how->line);
    s->name = how->name;
    memcpy(&s->sa, how->sa, how->socklen);
    s->socklen = how->socklen;
    u->servers = (rp_array_t){.elts = s, .nelts = 1, .size = sizeof(*s), .nalloc = 1};
    count_servers(u);
}

rp_upstream_conf_t *rp_upstream_find(rp_conf_t *cf, const char *name)
{
    if (cf->http_ctx == NULL)
        return NULL;
    rp_upstream_main_conf_t *m = cf->http_ctx->main_conf[rp_upstream_module.index];
    rp_upstream_conf_t **v = m->upstreams.elts;
    for (size_t i = 0; i < m->upstreams.nelts; i++)
        if (!v[i]->implicit && strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static const char *set_upstream(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_main_conf_t *m = conf;
    rp_upstream_conf_t *dup = rp_upstream_find(cf, cf->argv[1]);
    if (dup)
        return rp_conf_error(cf, "duplicate upstream \"%s\", first defined at %s:%u", cf->argv[1],
                             dup->file, dup->line);

    void **ups = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
    for (size_t i = 0; i < rp_nmodules; i++)
        if (rp_modules[i]->create_ups)
            ups[i] = rp_modules[i]->create_ups(cf);
    rp_upstream_conf_t *u = ups[rp_upstream_module.index];
    u->module_conf = ups;
    u->name = cf->argv[1];
    u->file = cf->file;
    u->line = cf->line;
    *(rp_upstream_conf_t **)rp_array_push(&m->upstreams) = u;

    void **saved = cf->ups_conf;
    cf->ups_conf = ups;
    const char *rv = rp_conf_parse_block(cf, RP_CTX_UPSTREAM);
    cf->ups_conf = saved;
    if (rv != RP_CONF_OK)
        return rv;
    if (u->servers.nelts == 0 && u->resolve.nelts == 0)
        return rp_conf_error(cf, "no servers in upstream \"%s\"", u->name);
    return finish_ups(cf, u);
}

static const char *set_server(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    rp_upstream_server_t tmpl;
    server_defaults(cf, &tmpl);
    const char *addr = cf->argv[1];
    if (strncmp(addr, "unix:", 5) == 0)
        return rp_conf_error(cf, "unix sockets are not supported in \"%s\"", addr);
    if (strchr(addr, '/'))
        return rp_conf_error(cf, "invalid server address \"%s\" (expected HOST:PORT)", addr);
    int resolve = 0;

    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        long v;
        if (strncmp(a, "weight=", 7) == 0) {
            if (rp_parse_int(a + 7, 1000000, &v) != 0 || v < 1)
                return rp_conf_error(cf, "invalid weight \"%s\"", a + 7);
            tmpl.weight = (int)v;
        } else if (strncmp(a, "max_conns=", 10) == 0) {
            if (rp_parse_int(a + 10, INT_MAX, &v) != 0)
                return rp_conf_error(cf, "invalid max_conns \"%s\"", a + 10);
            tmpl.max_conns = (int)v;
        } else if (strncmp(a, "max_fails=", 10) == 0) {
            if (rp_parse_int(a + 10, INT_MAX, &v) != 0)
                return rp_conf_error(cf, "invalid max_fails \"%s\"", a + 10);
            tmpl.max_fails = (int)v;
        } else if (strncmp(a, "fail_timeout=", 13) == 0) {
            if (rp_parse_msec(a + 13, &tmpl.fail_timeout) != 0)
                return rp_conf_error(cf, "invalid fail_timeout \"%s\"", a + 13);
        } else if (strncmp(a, "slow_start=", 11) == 0) {
            if (rp_parse_msec(a + 11, &tmpl.slow_start) != 0)
                return rp_conf_error(cf, "invalid slow_start \"%s\"", a + 11);
        } else if (strcmp(a, "backup") == 0) {
            tmpl.backup = 1;
        } else if (strcmp(a, "down") == 0) {
            tmpl.down = 1;
        } else if (strcmp(a, "resolve") == 0) {
            resolve = 1;
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    if (tmpl.backup && tmpl.down)
        return rp_conf_error(cf, "a server cannot be both \"backup\" and \"down\"");

    char host[256];
    int port;
    const char *err = rp_addr_split(cf->arena, addr, 80, host, sizeof(host), &port);
    if (err)
        return err;
    struct sockaddr_storage sa;
    socklen_t len;
    if (resolve && rp_addr_literal(host, port, &sa, &len) != 0) {
        /* as nginx: not resolved now; the helper resolves it at run time (resolve_module.c) */
        rp_upstream_resolve_t *rl = rp_array_push(&u->resolve);
        memset(rl, 0, sizeof(*rl));
        rl->host = rp_arena_strdup(cf->arena, host);
        rl->port = port;
        rl->hostport = rp_arena_sprintf(cf->arena, "%s:%d", host, port);
        rl->tmpl = tmpl;
        rl->tmpl.name = rl->hostport;
        return RP_CONF_OK;
    }
    if (add_addresses(cf, u, &tmpl, host, port) != NULL)
        return rp_conf_error(cf, "host not found in upstream \"%s\"", addr);
    return RP_CONF_OK;
}

static const char *set_keepalive(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    long v;
    if (u->keepalive)
        return "is duplicate";
    if (rp_parse_int(cf->argv[1], INT_MAX, &v) != 0 || v < 1)
        return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[1]);
    u->keepalive = (int)v;
    return RP_CONF_OK;
}

static const char *set_ka_timeout(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    if (u->keepalive_timeout != RP_CONF_UNSET_MSEC)
        return "is duplicate";
    if (rp_parse_msec(cf->argv[1], &u->keepalive_timeout) != 0)
        return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[1]);
    return RP_CONF_OK;
}

static const char *set_ka_requests(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    long v;
    if (u->keepalive_requests != RP_CONF_UNSET)
        return "is duplicate";
    if (rp_parse_int(cf->argv[1], INT_MAX, &v) != 0)
        return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[1]);
    u->keepalive_requests = (int)v;
    return RP_CONF_OK;
}

static const char *set_http2(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    if (u->http2)
        return "is duplicate";
    u->http2 = 1;
    return RP_CONF_OK;
}

static const char *set_zone(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    if (u->zone_name)
        return "is duplicate";
    u->zone_name = cf->argv[1];
    u->zone_size = 1u << 20; /* nginx: a zone named without a size is shared with another
                              * upstream's; here each size must then be given alike */
    if (cf->argc == 3) {
        size_t size;
        if (rp_parse_size(cf->argv[2], &size) != 0 || size < 64 * 1024)
            return rp_conf_error(cf, "invalid zone size \"%s\" (at least 64k)", cf->argv[2]);
        u->zone_size = size;
    }
    return RP_CONF_OK;
}

/* A balancing directive: one per upstream block, as nginx. */
static const char *set_balancer(rp_conf_t *cf, rp_upstream_conf_t *u,
                                const rp_upstream_balancer_t *b)
{
    if (u->balancer != &rp_upstream_round_robin)
        return rp_conf_error(cf, "load balancing method redefined (was %s)", u->balancer->name);
    u->balancer = b;
    return RP_CONF_OK;
}

static const char *set_least_conn(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_balancer(cf, conf, &rp_upstream_least_conn);
}

static const char *set_ip_hash(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_balancer(cf, conf, &rp_upstream_ip_hash);
}

/* random [two [least_conn]] */
static const char *set_random(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    if (cf->argc >= 2 && strcmp(cf->argv[1], "two") != 0)
        return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[1]);
    if (cf->argc == 3 && strcmp(cf->argv[2], "least_conn") != 0)
        return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[2]);
    const char *err = set_balancer(cf, u, &rp_upstream_random);
    if (err != RP_CONF_OK)
        return err;
    u->random_two = cf->argc >= 2;
    return RP_CONF_OK;
}

/* least_time header|last_byte [inflight] */
static const char *set_least_time(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    unsigned measure;
    if (strcmp(cf->argv[1], "header") == 0)
        measure = RP_LT_HEADER;
    else if (strcmp(cf->argv[1], "last_byte") == 0)
        measure = RP_LT_LAST_BYTE;
    else
        return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[1]);
    if (cf->argc == 3 && strcmp(cf->argv[2], "inflight") != 0)
        return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[2]);
    const char *err = set_balancer(cf, u, &rp_upstream_least_time);
    if (err != RP_CONF_OK)
        return err;
    u->lt_measure = measure;
    u->lt_inflight = cf->argc == 3;
    return RP_CONF_OK;
}

/* hash KEY [consistent] */
static const char *set_hash(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    int consistent = 0;
    if (cf->argc == 3) {
        if (strcmp(cf->argv[2], "consistent") != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[2]);
        consistent = 1;
    }
    if (u->hash_balance_factor > 0 && !consistent)
        return rp_conf_error(cf, "\"hash_balance_factor\" (%s:%u) needs \"hash ... consistent\"",
                             u->hbf_file, u->hbf_line);
    const char *err =
        set_balancer(cf, u, consistent ? &rp_upstream_hash_consistent : &rp_upstream_hash);
    if (err != RP_CONF_OK)
        return err;
    rp_cv_t *cv = rp_arena_calloc(cf->arena, sizeof(*cv));
    err = rp_cv_compile(cf, cf->argv[1], cv);
    if (err)
        return rp_conf_error(cf, "%s", err);
    u->hash_key = cv;
    u->hash_consistent = consistent;
    return RP_CONF_OK;
}

/* hash_balance_factor F: bounded loads for `hash ... consistent` (HAProxy's) */
static const char *set_hash_balance_factor(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_conf_t *u = conf;
    if (u->hash_balance_factor > 0)
        return "is duplicate";
    char *end;
    double f = strtod(cf->argv[1], &end);
    if (end == cf->argv[1] || *end != '\0' || !(f >= 1.0 && f <= 100.0))
        return rp_conf_error(cf, "invalid value \"%s\" (a number from 1 to 100, such as 1.25)",
                             cf->argv[1]);
    if (u->balancer != &rp_upstream_round_robin && u->balancer != &rp_upstream_hash_consistent)
        return rp_conf_error(cf, "needs \"hash ... consistent\", not \"%s\"",
                             u->balancer->name);
    u->hash_balance_factor = f;
    u->hbf_file = cf->file;
    u->hbf_line = cf->line;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"upstream", RP_CTX_HTTP, RP_CMD_BLOCK, 1, 1, set_upstream, RP_CONF_HTTP_MAIN, 0, NULL},
    {"server", RP_CTX_UPSTREAM, 0, 1, RP_ARGS_ANY, set_server, RP_CONF_UPS, 0, NULL},
    {"keepalive", RP_CTX_UPSTREAM, 0, 1, 1, set_keepalive, RP_CONF_UPS, 0, NULL},
    {"keepalive_timeout", RP_CTX_UPSTREAM, 0, 1, 1, set_ka_timeout, RP_CONF_UPS, 0, NULL},
    {"keepalive_requests", RP_CTX_UPSTREAM, 0, 1, 1, set_ka_requests, RP_CONF_UPS, 0, NULL},
    {"http2", RP_CTX_UPSTREAM, 0, 0, 0, set_http2, RP_CONF_UPS, 0, NULL},
    {"zone", RP_CTX_UPSTREAM, 0, 1, 2, set_zone, RP_CONF_UPS, 0, NULL},
    {"least_conn", RP_CTX_UPSTREAM, 0, 0, 0, set_least_conn, RP_CONF_UPS, 0, NULL},
    {"random", RP_CTX_UPSTREAM, 0, 0, 2, set_random, RP_CONF_UPS, 0, NULL},
    {"least_time", RP_CTX_UPSTREAM, 0, 1, 2, set_least_time, RP_CONF_UPS, 0, NULL},
    {"ip_hash", RP_CTX_UPSTREAM, 0, 0, 0, set_ip_hash, RP_CONF_UPS, 0, NULL},
    {"hash", RP_CTX_UPSTREAM, 0, 1, 2, set_hash, RP_CONF_UPS, 0, NULL},
    {"hash_balance_factor", RP_CTX_UPSTREAM, 0, 1, 1, set_hash_balance_factor, RP_CONF_UPS, 0,
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

/* ---- process hooks: the keep-alive pools belong to the generation a worker serves ---- */

static int upstream_init_worker(rp_cycle_t *cycle)
{
    rp_upstream_set_live(cycle);
    rp_peer_journal_start(cycle);
    return 0;
}

static void upstream_stop_worker(rp_cycle_t *cycle)
{
    /* idle connections close now, busy ones after their request */
    rp_upstream_set_live(NULL);
    rp_upstream_pool_close_all();
}

rp_module_t rp_upstream_module = {
    .name = "upstream",
    .commands = commands,
    .init_worker = upstream_init_worker,
    .stop_worker = upstream_stop_worker,
    .child_exited = rp_peer_journal_child_exited,
    .create_http_main = create_http_main,
    .create_ups = create_ups,
};
