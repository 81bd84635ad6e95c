/*
 * The cosockets' settings and what they share in a worker: OpenResty's
 * lua_socket_* and lua_ssl_* directives, the TLS client context built from them,
 * the name resolver, and the helpers of TCP and UDP sockets (send's argument,
 * errno's wording).
 *
 * Names are resolved with libevent's evdns, made in the worker on first use: by the
 * name servers of the `resolver` in effect (as OpenResty), else by those of
 * /etc/resolv.conf; /etc/hosts first either way. A lookup never blocks the worker;
 * numeric addresses and names of /etc/hosts ("localhost") are answered at once,
 * without a query.
 */
#include "lua/lua_socket.h"

#include "core/log.h"
#include "core/time.h"
#include "http/http.h"

#include <event2/dns.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenResty's defaults */
#define DEFAULT_TIMEOUT      60000
#define DEFAULT_POOL_SIZE    30
#define DEFAULT_VERIFY_DEPTH 1

static rp_lua_socket_conf_t *block_conf; /* the http block's: for code outside requests */
static rp_resolver_conf_t *block_dns;    /* the http block's resolver settings */

/* ---- configuration ---- */

static void conf_free_ctx(void *data)
{
    rp_lua_socket_conf_t *c = data;
    if (c->ctx) {
        SSL_CTX_free(c->ctx);
        c->ctx = NULL;
    }
}

static void *create_loc(rp_conf_t *cf)
{
    rp_lua_socket_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->connect_timeout = RP_CONF_UNSET_MSEC;
    c->send_timeout = RP_CONF_UNSET_MSEC;
    c->read_timeout = RP_CONF_UNSET_MSEC;
    c->keepalive_timeout = RP_CONF_UNSET_MSEC;
    c->pool_size = RP_CONF_UNSET;
    c->verify_depth = RP_CONF_UNSET;
    rp_arena_cleanup(cf->arena, conf_free_ctx, c);
    return c;
}

#define MERGE(field, unset, def)                                                                   \
    do {                                                                                           \
        if (c->field == (unset))                                                                   \
            c->field = p->field == (unset) ? (def) : p->field;                                     \
    } while (0)

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_lua_socket_conf_t *p = parent, *c = child;
    (void)cf;
    MERGE(connect_timeout, RP_CONF_UNSET_MSEC, DEFAULT_TIMEOUT);
    MERGE(send_timeout, RP_CONF_UNSET_MSEC, DEFAULT_TIMEOUT);
    MERGE(read_timeout, RP_CONF_UNSET_MSEC, DEFAULT_TIMEOUT);
    MERGE(keepalive_timeout, RP_CONF_UNSET_MSEC, DEFAULT_TIMEOUT);
    MERGE(pool_size, RP_CONF_UNSET, DEFAULT_POOL_SIZE);
    MERGE(verify_depth, RP_CONF_UNSET, DEFAULT_VERIFY_DEPTH);
    if (c->trusted == NULL)
        c->trusted = p->trusted;
    return RP_CONF_OK;
}

/* The http block's own values are merged into nothing: settle them for code that runs
 * outside requests (timers, init_worker). */
static void settle(rp_lua_socket_conf_t *c)
{
    if (c->connect_timeout == RP_CONF_UNSET_MSEC)
        c->connect_timeout = DEFAULT_TIMEOUT;
    if (c->send_timeout == RP_CONF_UNSET_MSEC)
        c->send_timeout = DEFAULT_TIMEOUT;
    if (c->read_timeout == RP_CONF_UNSET_MSEC)
        c->read_timeout = DEFAULT_TIMEOUT;
    if (c->keepalive_timeout == RP_CONF_UNSET_MSEC)
        c->keepalive_timeout = DEFAULT_TIMEOUT;
    if (c->pool_size == RP_CONF_UNSET)
        c->pool_size = DEFAULT_POOL_SIZE;
    if (c->verify_depth == RP_CONF_UNSET)
        c->verify_depth = DEFAULT_VERIFY_DEPTH;
}

static const char *set_pool_size(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_lua_socket_conf_t *c = conf;
    long n;
    (void)cmd;
    if (c->pool_size != RP_CONF_UNSET)
        return "duplicate directive";
    if (rp_parse_int(cf->argv[1], 1L << 30, &n) != 0 || n <= 0)
        return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[1]);
    c->pool_size = (int)n;
    return RP_CONF_OK;
}

static const char *set_trusted(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_lua_socket_conf_t *c = conf;
    (void)cmd;
    if (c->trusted)
        return "duplicate directive";
    char *path = rp_conf_conf_path(cf, cf->argv[1]);
    if (access(path, R_OK) != 0)
        return rp_conf_error(cf, "cannot read \"%s\": %s", path, strerror(errno));
    c->trusted = path;
    return RP_CONF_OK;
}

SSL_CTX *rp_lua_socket_ssl_ctx(rp_lua_socket_conf_t *c)
{
    if (c->ctx)
        return c->ctx;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        rp_log_error(RP_LOG_ERR, 0, "lua ssl: SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* the chain is always checked and its verdict kept; sslhandshake's ssl_verify says
     * whether a bad verdict fails the handshake, as OpenResty */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_verify_depth(ctx, c->verify_depth);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
    if (c->trusted && SSL_CTX_load_verify_locations(ctx, c->trusted, NULL) != 1) {
        unsigned long e = ERR_get_error();
        rp_log_error(RP_LOG_ERR, 0, "lua ssl: cannot load \"%s\": %s", c->trusted,
                     ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "error");
        ERR_clear_error();
    }
    c->ctx = ctx;
    return ctx;
}

const rp_lua_socket_conf_t *rp_lua_socket_conf(lua_State *L)
{
    rp_request_t *r = rp_lua_request(L);
    if (r && r->loc_conf)
        return rp_http_loc_conf(r, rp_lua_socket_module);
    return block_conf;
}

void *rp_lua_socket_owner(lua_State *L)
{
    rp_request_t *r = rp_lua_socket_request(L);
    if (r)
        return r;
    return rp_lua_current(L);
}

rp_request_t *rp_lua_socket_request(lua_State *L)
{
    rp_request_t *r = rp_lua_request(L);
    /* a log hook runs after the request's cleanups: its sockets are the hook's own (it
     * may go on detached), closed when collected */
    return r && !r->ended ? r : NULL;
}

/* ---- process hooks ---- */

static int init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen)
{
    (void)prev;
    (void)flags;
    (void)err;
    (void)errlen;
    block_conf = rp_http_block_loc_conf(cycle, &rp_lua_socket_module);
    if (block_conf)
        settle(block_conf);
    block_dns = rp_http_block_loc_conf(cycle, &rp_resolve_module);
    return 0;
}

static int init_worker(rp_cycle_t *cycle)
{
    block_conf = rp_http_block_loc_conf(cycle, &rp_lua_socket_module);
    if (block_conf)
        settle(block_conf);
    block_dns = rp_http_block_loc_conf(cycle, &rp_resolve_module);
    return 0;
}

static void stop_worker(rp_cycle_t *cycle)
{
    (void)cycle;
    rp_lua_pool_close_all(); /* idle connections must not keep the worker */
}

/* ---- names ---- */

/* The worker's evdns bases: one for /etc/resolv.conf, one per `resolver` line used. */
typedef struct dns_base_s {
    const rp_resolver_t *resolver; /* NULL: /etc/resolv.conf's */
    int64_t timeout;
    struct evdns_base *base;
    struct dns_base_s *next;
} dns_base_t;

static dns_base_t *bases;
static pid_t bases_pid;

void rp_lua_socket_dns(lua_State *L, rp_lua_dns_t *out)
{
    rp_request_t *r = rp_lua_request(L);
    const rp_resolver_conf_t *rc =
        r && r->loc_conf ? rp_http_loc_conf(r, rp_resolve_module) : block_dns;
    out->resolver = NULL;
    out->timeout = 0;
    if (rc && rc->resolver != RP_CONF_UNSET_PTR && rc->resolver) {
        out->resolver = rc->resolver;
        out->timeout = rc->timeout != RP_CONF_UNSET_MSEC ? rc->timeout : RP_RESOLVER_TIMEOUT;
    }
}

static struct evdns_base *dns_base(const rp_lua_dns_t *d)
{
    if (bases_pid != getpid()) { /* a fork does not share the parent's */
        bases = NULL;
        bases_pid = getpid();
    }
    for (dns_base_t *b = bases; b; b = b->next) {
        if (b->resolver == d->resolver && b->timeout == d->timeout)
            return b->base;
    }
    struct evdns_base *base;
    int opts = EVDNS_BASE_DISABLE_WHEN_INACTIVE;
    if (d->resolver == NULL) {
        base = evdns_base_new(rp_event_base, opts | EVDNS_BASE_INITIALIZE_NAMESERVERS);
        if (base == NULL) {
            base = evdns_base_new(rp_event_base, opts);
            if (base)
                evdns_base_load_hosts(base, NULL);
        }
    } else {
        base = evdns_base_new(rp_event_base, opts);
        if (base) {
            for (unsigned i = 0; i < d->resolver->naddrs; i++)
                evdns_base_nameserver_sockaddr_add(base, (struct sockaddr *)&d->resolver->addrs[i],
                                                   d->resolver->lens[i], 0);
            evdns_base_load_hosts(base, NULL); /* localhost without a query */
            char t[32];
            snprintf(t, sizeof(t), "%.3f", (double)d->timeout / 1000.0);
            evdns_base_set_option(base, "timeout:", t);
            evdns_base_set_option(base, "attempts:", "2");
        }
    }
    if (base == NULL) {
        rp_log_error(RP_LOG_ERR, 0, "lua socket: cannot make a DNS resolver");
        return NULL;
    }
    dns_base_t *b = rp_xcalloc(1, sizeof(*b));
    b->resolver = d->resolver;
    b->timeout = d->timeout;
    b->base = base;
    b->next = bases;
    bases = b;
    return base;
}

struct rp_lua_resolve_s {
    struct evdns_getaddrinfo_request *req;
    rp_lua_resolve_cb cb;
    void *arg;
    char *host;
    unsigned cancelled : 1;
    unsigned returned : 1; /* evdns_getaddrinfo returned: q is the caller's to cancel */
    unsigned done : 1;
};

static void on_addrinfo(int result, struct evutil_addrinfo *res, void *arg)
{
    rp_lua_resolve_t *q = arg;
    q->req = NULL;
    q->done = 1;
    if (q->cancelled) {
        if (res)
            evutil_freeaddrinfo(res);
        free(q->host);
        free(q);
        return;
    }
    if (result != 0 || res == NULL) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s could not be resolved (%d: %s)", q->host,
                 result == EVUTIL_EAI_NONAME ? 3 : 2,
                 result == EVUTIL_EAI_NONAME ? "Host not found" : evutil_gai_strerror(result));
        if (res)
            evutil_freeaddrinfo(res);
        q->cb(q->arg, NULL, 0, msg);
    } else {
        q->cb(q->arg, res->ai_addr, (socklen_t)res->ai_addrlen, NULL);
        evutil_freeaddrinfo(res);
    }
    if (q->returned) {
        free(q->host);
        free(q);
    }
}

rp_lua_resolve_t *rp_lua_resolve(const rp_lua_dns_t *d, const char *host, int port, int socktype,
                                 rp_lua_resolve_cb cb, void *arg)
{
    struct evdns_base *base = dns_base(d);
    if (base == NULL) {
        cb(arg, NULL, 0, "no resolver defined to resolve");
        return NULL;
    }
    rp_lua_resolve_t *q = rp_xcalloc(1, sizeof(*q));
    q->cb = cb;
    q->arg = arg;
    q->host = rp_xstrdup(host);
    char serv[16];
    snprintf(serv, sizeof(serv), "%d", port);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    if (d->resolver && !d->resolver->ipv6)
        hints.ai_family = AF_INET;
    else if (d->resolver && !d->resolver->ipv4)
        hints.ai_family = AF_INET6;
    hints.ai_socktype = socktype;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV | EVUTIL_AI_ADDRCONFIG;
    q->req = evdns_getaddrinfo(base, host, serv, &hints, on_addrinfo, q);
    if (q->done) { /* answered at once (an address, /etc/hosts): already called back */
        free(q->host);
        free(q);
        return NULL;
    }
    q->returned = 1;
    return q;
}

void rp_lua_resolve_cancel(rp_lua_resolve_t *q)
{
    if (q == NULL)
        return;
    q->cancelled = 1;
    if (q->req) {
        /* evdns calls on_addrinfo back with EVUTIL_EAI_CANCEL, which frees q */
        q->returned = 0;
        evdns_getaddrinfo_cancel(q->req);
    } else if (q->done) {
        free(q->host);
        free(q);
    }
}

/* ---- what TCP and UDP sockets share ---- */

const char *rp_lua_errtext(int e, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(e));
    if (buf[0] >= 'A' && buf[0] <= 'Z')
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

void rp_lua_socket_flatten(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return;
    }
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_pushstring(L, lua_tostring(L, idx));
        return;
    }
    if (lua_isnoneornil(L, idx)) { /* OpenResty sends these spelled out */
        lua_pushliteral(L, "nil");
        return;
    }
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L,
                   "bad argument #2 to '?' (string, number, boolean, nil, or array "
                   "table expected, got %s)",
                   luaL_typename(L, idx));
    /* a Lua table concat, recursively, through a scratch table */
    lua_newtable(L);
    int out = lua_gettop(L), n = 0;
    struct frame {
        int t, i, len;
    } st[64];
    int sp = 0;
    lua_pushvalue(L, idx);
    st[0].t = lua_gettop(L);
    st[0].i = 0;
    st[0].len = (int)lua_objlen(L, st[0].t);
    while (sp >= 0) {
        struct frame *f = &st[sp];
        if (++f->i > f->len) {
            lua_remove(L, f->t);
            sp--;
            continue;
        }
        luaL_checkstack(L, 2, "table too deep");
        lua_rawgeti(L, f->t, f->i);
        int ty = lua_type(L, -1);
        if (ty == LUA_TSTRING || ty == LUA_TNUMBER) {
            lua_rawseti(L, out, ++n);
        } else if (ty == LUA_TTABLE) {
            if (sp + 1 >= 64)
                luaL_error(L, "table too deep");
            sp++;
            st[sp].t = lua_gettop(L);
            st[sp].i = 0;
            st[sp].len = (int)lua_objlen(L, st[sp].t);
        } else {
            luaL_error(L, "bad argument #2 to '?' (bad data type %s found)", luaL_typename(L, -1));
        }
    }
    /* table.concat(out) */
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "concat");
    lua_remove(L, -2);
    lua_pushvalue(L, out);
    lua_call(L, 1, 1);
    lua_remove(L, out);
}

/* ---- directives ---- */

#define LOC_CTX (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"lua_socket_connect_timeout", LOC_CTX, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     offsetof(rp_lua_socket_conf_t, connect_timeout), NULL},
    {"lua_socket_send_timeout", LOC_CTX, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     offsetof(rp_lua_socket_conf_t, send_timeout), NULL},
    {"lua_socket_read_timeout", LOC_CTX, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     offsetof(rp_lua_socket_conf_t, read_timeout), NULL},
    {"lua_socket_keepalive_timeout", LOC_CTX, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     offsetof(rp_lua_socket_conf_t, keepalive_timeout), NULL},
    {"lua_socket_pool_size", LOC_CTX, 0, 1, 1, set_pool_size, RP_CONF_LOC, 0, NULL},
    {"lua_ssl_trusted_certificate", LOC_CTX, 0, 1, 1, set_trusted, RP_CONF_LOC, 0, NULL},
    {"lua_ssl_verify_depth", LOC_CTX, 0, 1, 1, rp_conf_set_num, RP_CONF_LOC,
     offsetof(rp_lua_socket_conf_t, verify_depth), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_lua_socket_module = {
    .name = "lua_socket",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .init_master = init_master,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
};
