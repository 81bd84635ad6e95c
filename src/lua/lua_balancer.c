/*
 * balancer_by_lua_block { } / balancer_by_lua_file PATH in an `upstream` block, and
 * the `ngx.balancer` module (require "ngx.balancer", from package.preload): OpenResty's
 * per-try choice of the peer in Lua.
 *
 * Where it plugs in. The upstream block gets a chooser (attempt.h): the attempt engine
 * calls it in rp_attempt_next for the first try and every retry, before the pool's
 * balancer. It runs the hook to its end in the request's Lua state (ngx.ctx of the
 * request's other hooks, ngx.var); what the script set with set_current_peer becomes
 * the try's peer, and without it the pool's balancer picks, as OpenResty falls back to
 * round robin. A chooser rather than a balancer (rp_upstream_balancer_t), because the
 * script works on the request's attempt (the last failure, the tries left, timeouts and
 * keep-alive for the connection), may name an address the pool does not have, and an
 * error in it must end the request with a 500.
 *
 * Waiting. OpenResty forbids waits (ngx.sleep, cosockets) in the balancer. Here a hook
 * of an HTTP/1 upstream may wait: its coroutine goes on from the loop (serving the same
 * request, ngx.ctx and all), the attempt engine answers RP_AGAIN meanwhile, and the
 * proxy resumes the try when the hook ends (attempt.h: a->resume). The HTTP/2 exchange
 * (proxy_h2.c) and hedged tries pick and connect in one step: there a wait is refused as
 * OpenResty refuses it.
 *
 * Addresses outside the pool. set_current_peer takes an IP address (with the port as its
 * second argument or after a colon), "unix:/path", or a name the pool knows (a peer's
 * name, or the host of a `server NAME resolve` line). An address that is not one of the
 * pool's peers gets an ad hoc peer: made by this worker on first use and kept (at most
 * ADHOC_MAX per pool, the least recently used one that nothing holds going first), so
 * the keep-alive cache, which matches connections by peer, reuses its connections. Its
 * counters live in the pool's shared peer table under its address, as a DNS peer's do:
 * requests in flight and connections are then counted and journalled like any peer's,
 * and a worker that dies holding them gives them back. Ad hoc peers never rest after
 * failures (max_fails=0), as OpenResty counts none for the peers a script sets.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "core/time.h"
#include "http/http.h"
#include "net/listen.h"
#include "upstream/attempt.h"
#include "upstream/retry_module.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define ADHOC_MAX 64

typedef struct {
    rp_lua_hook_t *hook;
    rp_upstream_conf_t *u;
    /* per worker: the ad hoc peers, most recently used first */
    rp_upstream_server_t **adhoc;
    unsigned nadhoc, adhoc_cap;
} lb_conf_t;

/* A request's run of the hook, for one try at a time (in the request's arena). */
typedef struct {
    rp_attempt_t *a;
    lb_conf_t *lc;
    rp_upstream_server_t *peer; /* set_current_peer's */
    rp_lua_co_t *co;            /* while it waits */
    int state;                  /* RUN_* */
    int status;                 /* RUN_DONE: 0, or LUA_ERR* */
    int exited, exit_code;
    unsigned cleanup : 1;
} lb_run_t;

enum { RUN_IDLE, RUN_WAITING, RUN_DONE };

/* The run whose hook is on the C stack now (its first stretch, before any wait); a
 * run resumed from the loop is found as its coroutine's user data. */
static lb_run_t *running;

extern rp_module_t rp_lua_balancer_module;

/* ---- peers ---- */

static void adhoc_front(lb_conf_t *lc, unsigned i)
{
    rp_upstream_server_t *s = lc->adhoc[i];
    memmove(&lc->adhoc[1], &lc->adhoc[0], i * sizeof(*lc->adhoc));
    lc->adhoc[0] = s;
}

/* Lets go of ad hoc peers beyond ADHOC_MAX that nothing but the list holds. */
static void adhoc_trim(lb_conf_t *lc)
{
    for (unsigned i = lc->nadhoc; i-- > 0 && lc->nadhoc >= ADHOC_MAX;) {
        rp_upstream_server_t *s = lc->adhoc[i];
        if (s->refs > 1)
            continue; /* an attempt or a connection holds it */
        memmove(&lc->adhoc[i], &lc->adhoc[i + 1], (lc->nadhoc - i - 1) * sizeof(*lc->adhoc));
        lc->nadhoc--;
        s->retired = 1;
        rp_upstream_peer_unref(s); /* freed: no connection holds it */
    }
}

/* The peer for address name (sa): the pool's own, else this worker's ad hoc one. */
/* Whether two socket addresses are the same peer (family, address, port; a path). */
static int same_addr(const struct sockaddr_storage *a, socklen_t alen,
                     const struct sockaddr_storage *b, socklen_t blen)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    if (a->ss_family == AF_UNIX) {
        const struct sockaddr_un *x = (const void *)a, *y = (const void *)b;
        return strncmp(x->sun_path, y->sun_path, sizeof(x->sun_path)) == 0;
    }
    (void)alen;
    (void)blen;
    return 0;
}

static rp_upstream_server_t *peer_for(lb_conf_t *lc, const char *name,
                                      const struct sockaddr_storage *sa, socklen_t len,
                                      const char **err)
{
    rp_upstream_conf_t *u = lc->u;
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    /* by address, not by name: formatting the address as text cost more than the
     * rest of a trivial balancer hook */
    for (unsigned i = 0; i < set->n; i++)
        if (same_addr(&set->peer[i]->sa, set->peer[i]->socklen, sa, len))
            return set->peer[i];
    for (unsigned i = 0; i < lc->nadhoc; i++) {
        if (same_addr(&lc->adhoc[i]->sa, lc->adhoc[i]->socklen, sa, len)) {
            adhoc_front(lc, i);
            return lc->adhoc[0];
        }
    }
    char text[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    if (sa->ss_family != AF_UNIX) {
        rp_sockaddr_text((const struct sockaddr *)sa, text, sizeof(text));
        name = text;
    }
    rp_peer_shared_t *sh = rp_upstream_peer_entry(u, name);
    if (sh == NULL) {
        *err = "no room in the peer table";
        return NULL;
    }
    adhoc_trim(lc);
    rp_upstream_server_t *s = rp_xcalloc(1, sizeof(*s));
    s->name = rp_xstrdup(name);
    memcpy(&s->sa, sa, len);
    s->socklen = len;
    s->weight = 1;
    s->max_fails = 0;
    s->fail_timeout = 10000;
    s->dynamic = 1; /* counted: freed with its last reference once retired */
    s->refs = 1;    /* the list's */
    s->line_index = (unsigned)-1;
    s->file = u->file;
    s->line = u->line;
    s->ups = u;
    s->sh = sh;
    if (lc->nadhoc == lc->adhoc_cap) {
        lc->adhoc_cap = lc->adhoc_cap ? lc->adhoc_cap * 2 : 8;
        lc->adhoc = rp_xrealloc(lc->adhoc, lc->adhoc_cap * sizeof(*lc->adhoc));
    }
    lc->adhoc[lc->nadhoc++] = s;
    adhoc_front(lc, lc->nadhoc - 1);
    return s;
}

/* A peer of the pool by a name it knows: a peer's own name, or the host (or host:port) of
 * a `server NAME resolve` line (one of that name's addresses, a usable one first). */
static rp_upstream_server_t *peer_by_name(lb_conf_t *lc, const char *name, int port)
{
    rp_upstream_conf_t *u = lc->u;
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    for (unsigned i = 0; i < set->n; i++)
        if (strcmp(set->peer[i]->name, name) == 0)
            return set->peer[i];
    const rp_upstream_resolve_t *rl = u->resolve.elts;
    rp_upstream_server_t *any = NULL;
    int64_t now = rp_time_ms();
    for (unsigned i = 0; i < set->n; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!s->dynamic || s->line_index >= u->resolve.nelts)
            continue;
        const rp_upstream_resolve_t *l = &rl[s->line_index];
        if (strcmp(l->hostport, name) != 0 &&
            (strcmp(l->host, name) != 0 || (port && port != l->port)))
            continue;
        if (rp_upstream_peer_usable(u, s, now))
            return s;
        if (any == NULL)
            any = s;
    }
    return any;
}

/* Parses an IP address with an optional port ("1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1")
 * or "unix:/path". 0, -1 when it is not an address, -2 when it has no port. */
static int parse_addr(const char *a, size_t n, int port, struct sockaddr_storage *sa,
                      socklen_t *len, char *name, size_t namecap)
{
    memset(sa, 0, sizeof(*sa));
    if (n > 5 && strncmp(a, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)sa;
        if (n - 5 >= sizeof(sun->sun_path) || memchr(a, '\0', n))
            return -1;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, a + 5, n - 5);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n - 5 + 1);
        snprintf(name, namecap, "%.*s", (int)n, a);
        return 0;
    }
    char host[INET6_ADDRSTRLEN + 1];
    const char *p = NULL; /* the port's digits */
    size_t hlen = n;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (close == NULL)
            return -1;
        hlen = (size_t)(close - a - 1);
        if (close + 1 < a + n) {
            if (close[1] != ':')
                return -1;
            p = close + 2;
        }
        a++;
    } else {
        const char *colon = memchr(a, ':', n);
        if (colon && memchr(colon + 1, ':', (size_t)(a + n - colon - 1)) == NULL) {
            hlen = (size_t)(colon - a);
            p = colon + 1;
        }
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, a, hlen);
    host[hlen] = '\0';
    if (p) {
        const char *end = (a[-1] == '[' ? a - 1 : a) + n;
        long v = 0;
        if (p == end || end - p > 5)
            return -1;
        for (const char *q = p; q < end; q++) {
            if (*q < '0' || *q > '9')
                return -1;
            v = v * 10 + (*q - '0');
        }
        port = (int)v; /* as nginx: the address's own port before the argument */
    }
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
    } else {
        return -1;
    }
    if (port <= 0 || port > 65535)
        return -2;
    name[0] = '\0'; /* peer_for makes the text when it needs it */
    return 0;
}

/* ---- ngx.balancer ---- */

static lb_run_t *check(lua_State *L)
{
    if (rp_lua_request(L) == NULL)
        luaL_error(L, "no request found");
    rp_lua_check_phase(L, 1u << RP_LUA_BALANCER);
    rp_lua_co_t *co = rp_lua_current(L);
    lb_run_t *run = co && co->user ? co->user : running;
    if (run == NULL)
        luaL_error(L, "no upstream found");
    return run;
}

static int fail2(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

/* set_current_peer(addr, port?, host?) */
static int set_current_peer(lua_State *L)
{
    lb_run_t *run = check(L);
    size_t n;
    const char *addr = luaL_checklstring(L, 1, &n);
    int port = 0;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) == LUA_TNUMBER || lua_isnumber(L, 2))
            port = (int)lua_tointeger(L, 2);
        else
            return luaL_argerror(L, 2, "number expected");
    }
    /* the third argument (the peer's host name, for OpenResty's SNI) is accepted: the TLS
     * name stays the one proxy_pass and proxy_ssl_name give */
    struct sockaddr_storage sa;
    socklen_t len = 0;
    char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    int rc = parse_addr(addr, n, port, &sa, &len, name, sizeof(name));
    if (rc == -2)
        return fail2(L, "no port in the address");
    rp_upstream_server_t *s;
    const char *err = NULL;
    if (rc == 0) {
        s = peer_for(run->lc, name, &sa, len, &err);
    } else {
        char *copy = rp_xstrdup(addr);
        s = peer_by_name(run->lc, copy, port);
        free(copy);
        err = "no host allowed"; /* OpenResty's: it resolves no names there */
    }
    if (s == NULL)
        return fail2(L, err);
    run->peer = s;
    lua_pushboolean(L, 1);
    return 1;
}

/* set_more_tries(count): within proxy_next_upstream_tries, as OpenResty */
static int set_more_tries(lua_State *L)
{
    lb_run_t *run = check(L);
    lua_Integer count = luaL_checkinteger(L, 1);
    if (count < 0)
        return luaL_argerror(L, 1, "count must not be negative");
    rp_attempt_t *a = run->a;
    const rp_retry_conf_t *c = a->policy;
    unsigned total = rp_upstream_peers(a->ups)->n + a->more_tries;
    const char *warn = NULL;
    if (c && c->retries >= 0 && total + (unsigned)count > (unsigned)c->retries + 1) {
        unsigned max = (unsigned)c->retries + 1;
        count = max > total ? (lua_Integer)(max - total) : 0;
        warn = "reduced tries due to limit";
    }
    a->more_tries += (unsigned)count;
    lua_pushboolean(L, 1);
    if (warn == NULL)
        return 1;
    lua_pushstring(L, warn);
    return 2;
}

/* get_last_failure() -> state_name, status_code: nil at the first try */
static int get_last_failure(lua_State *L)
{
    lb_run_t *run = check(L);
    rp_attempt_t *a = run->a;
    if (a->last_state == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, a->last_state == RP_ATTEMPT_LAST_NEXT ? "next" : "failed");
    lua_pushinteger(L, a->last_status);
    return 2;
}

/* A timeout in seconds (nil keeps the one in force) into *ms; raises a Lua error for a
 * bad one, as OpenResty. */
static void timeout_arg(lua_State *L, int i, const char *what, int64_t *ms)
{
    if (lua_isnoneornil(L, i))
        return;
    if (lua_type(L, i) != LUA_TNUMBER || lua_tonumber(L, i) <= 0)
        luaL_error(L, "bad %s timeout", what);
    double v = lua_tonumber(L, i) * 1000.0;
    *ms = v < 1 ? 1 : v > 1e12 ? (int64_t)1e12 : (int64_t)v;
}

/* set_timeouts(connect, send, read) in seconds: for this try and the next ones */
static int set_timeouts(lua_State *L)
{
    lb_run_t *run = check(L);
    rp_attempt_t *a = run->a;
    int64_t c = a->connect_timeout, s = a->send_timeout, r = a->read_timeout;
    timeout_arg(L, 1, "connect", &c);
    timeout_arg(L, 2, "send", &s);
    timeout_arg(L, 3, "read", &r);
    a->connect_timeout = c;
    a->send_timeout = s;
    a->read_timeout = r;
    lua_pushboolean(L, 1);
    return 1;
}

/* enable_keepalive(idle_timeout?, max_requests?): the try's connection goes to the pool's
 * keep-alive cache (idle 60 s, 100 requests by default, as OpenResty) */
static int enable_keepalive(lua_State *L)
{
    lb_run_t *run = check(L);
    rp_attempt_t *a = run->a;
    int64_t idle = 60000;
    lua_Integer max = 100;
    if (!lua_isnoneornil(L, 1)) {
        if (lua_type(L, 1) != LUA_TNUMBER || lua_tonumber(L, 1) < 0)
            luaL_error(L, "bad idle_timeout");
        idle = (int64_t)(lua_tonumber(L, 1) * 1000.0);
        if (idle < 1)
            idle = 1;
    }
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER || lua_tointeger(L, 2) < 0)
            luaL_error(L, "bad max_requests");
        max = lua_tointeger(L, 2);
    }
    a->keepalive_set = 1;
    a->keepalive_timeout = idle;
    a->keepalive_requests = max > 0 ? (unsigned)max : (unsigned)-1;
    lua_pushboolean(L, 1);
    return 1;
}

/* recreate_request(): the request head is made per try anyway */
static int recreate_request(lua_State *L)
{
    check(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int open_balancer(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"set_current_peer", set_current_peer},
        {"set_more_tries", set_more_tries},
        {"get_last_failure", get_last_failure},
        {"set_timeouts", set_timeouts},
        {"enable_keepalive", enable_keepalive},
        {"recreate_request", recreate_request},
        {NULL, NULL},
    };
    lua_createtable(L, 0, 8);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_pushstring(L, "0.1.25");
    lua_setfield(L, -2, "version");
    return 1;
}

void rp_lua_api_balancer(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_balancer);
    lua_setfield(L, -2, "ngx.balancer");
    lua_pop(L, 2);
}

/* ---- the chooser ---- */

/* What a run that ended gives the attempt engine. */
static int run_result(lb_run_t *run, int failed, int exited, int code,
                      rp_upstream_server_t **peer)
{
    rp_attempt_t *a = run->a;
    lb_conf_t *lc = run->lc;
    run->state = RUN_IDLE;
    if (failed) { /* logged with the script's file and line */
        a->hook_status = 500;
        return RP_ERROR;
    }
    if (exited && code != 0) {
        /* ngx.exit(status) from the hook: the request ends (nginx answers 500 for any) */
        rp_log_error(RP_LOG_ERR, 0, "upstream \"%s\": balancer_by_lua exited with %d", lc->u->name,
                     code);
        a->hook_status = 500;
        return RP_ERROR;
    }
    if (run->peer == NULL)
        return RP_DECLINED;
    *peer = run->peer;
    return RP_OK;
}

/* The request ended while its hook waited: the hook goes with it. */
static void run_cleanup(rp_request_t *r, void *data)
{
    lb_run_t *run = data;
    (void)r;
    if (run->co) {
        rp_lua_co_t *co = run->co;
        run->co = NULL;
        rp_lua_co_free(co);
    }
}

/* A hook that waited has ended (from the loop): the try goes on with its answer. */
static void run_done(rp_lua_co_t *co, int status)
{
    lb_run_t *run = co->user;
    run->co = NULL; /* the runner frees it */
    run->state = RUN_DONE;
    run->status = status;
    run->exited = co->exited;
    run->exit_code = co->exit_code;
    run->a->resume(run->a->resume_data);
}

/*
 * The chooser. The hook runs at once; where the caller can wait (a->resume), a hook
 * that waits (ngx.sleep, beyond OpenResty, which forbids it there) leaves the try
 * suspended until it ends, and its answer is given to the call that resume makes.
 * Elsewhere (an HTTP/2 upstream, a hedged try) it runs as OpenResty's, to its end.
 */
static int choose(rp_attempt_t *a, void *data, rp_upstream_server_t **peer)
{
    lb_conf_t *lc = data;
    if (rp_lua_vm() == NULL || a->r == NULL)
        return RP_DECLINED;
    lb_run_t *run = a->chooser_state;
    if (run && run->state == RUN_DONE)
        return run_result(run, run->status != 0, run->exited, run->exit_code, peer);
    if (run && run->state == RUN_WAITING)
        return RP_AGAIN;
    if (run == NULL) {
        run = rp_arena_calloc(a->r->arena, sizeof(*run));
        run->a = a;
        run->lc = lc;
        a->chooser_state = run;
    }
    run->peer = NULL;
    lb_run_t *saved = running;
    running = run;
    rp_lua_co_t *co;
    int rc;
    if (a->resume == NULL) {
        rc = rp_lua_run_sync(a->r, lc->hook, RP_LUA_BALANCER, &co);
    } else {
        rc = rp_lua_run_attached(a->r, lc->hook, RP_LUA_BALANCER, run_done, run, &co);
        if (rc == 1) {
            running = saved;
            run->co = co;
            run->state = RUN_WAITING;
            if (!run->cleanup) {
                run->cleanup = 1;
                rp_http_cleanup_add(a->r, run_cleanup, run);
            }
            return RP_AGAIN;
        }
    }
    running = saved;
    int exited = co->exited, code = co->exit_code;
    rp_lua_co_free(co);
    return run_result(run, rc != 0, exited, code, peer);
}

/* ---- configuration ---- */

/* The configuration is let go of (a worker exits, a single process reloads): so are its
 * ad hoc peers, each once the last connection to it closes. */
static void adhoc_free(void *data)
{
    lb_conf_t *lc = data;
    for (unsigned i = 0; i < lc->nadhoc; i++) {
        lc->adhoc[i]->retired = 1;
        rp_upstream_peer_unref(lc->adhoc[i]);
    }
    free(lc->adhoc);
    lc->adhoc = NULL;
    lc->nadhoc = lc->adhoc_cap = 0;
}

static void *create_ups(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(lb_conf_t));
}

static const char *set_balancer(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    lb_conf_t *lc = conf;
    if (lc->hook)
        return "is duplicate";
    const char *rv = rp_lua_read_hook(cf, (cmd->flags & RP_CMD_BLOCK) != 0, &lc->hook);
    if (rv != RP_CONF_OK)
        return rv;
    rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
    lc->u = u;
    u->chooser = choose;
    u->chooser_data = lc;
    rp_arena_cleanup(cf->arena, adhoc_free, lc);
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    if (um == NULL)
        return RP_CONF_OK;
    rp_upstream_conf_t **v = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = v[i];
        if (u->chooser != choose || u->keepalive)
            continue;
        /* no keepalive directive: a cache only for the connections whose try asked for
         * it (enable_keepalive), as OpenResty keeps those alone */
        u->keepalive = 32;
        u->keepalive_on_request = 1;
    }
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"balancer_by_lua_block", RP_CTX_UPSTREAM, RP_CMD_BLOCK, 0, 0, set_balancer, RP_CONF_UPS, 0,
     NULL},
    {"balancer_by_lua_file", RP_CTX_UPSTREAM, 0, 1, 1, set_balancer, RP_CONF_UPS, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_lua_balancer_module = {
    .name = "lua_balancer",
    .commands = commands,
    .create_ups = create_ups,
    .postconfiguration = postconfiguration,
};
