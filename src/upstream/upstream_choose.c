/*
 * The upstream of a request when its location does not fix it (upstream_choose.h):
 * the per-request decision, the worker's pools for the addresses that proxy_pass and
 * grpc_pass with variables reach, the TLS objects those pools and the upstream blocks
 * reached that way use, the upstream_address_pools directive and $upstream_canary.
 *
 * An address pool is made the first time a worker sees the address (with its scheme)
 * and kept, most recently used first, up to upstream_address_pools max=. A new address
 * beyond that takes the place of the least recently used pool that no request holds and
 * that has no HTTP/2 connection open; that pool's idle connections are closed. A pool's
 * memory is reused, never freed, while the worker serves the configuration, so whatever
 * still points at it (a connection on its way to closing) points at a pool.
 *
 * nginx resolves names at request time only with a `resolver`, which rampart has not: a
 * host that names neither an upstream block nor an address is a 502 with nginx's line,
 * "no resolver defined to resolve HOST". A URL that is not one is a 500, as in nginx.
 */
#include "upstream/upstream_choose.h"
#include "core/log.h"
#include "net/listen.h"
#include "upstream/upstream_ssl.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_NAME_MAX 64 /* "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" and then some */

typedef struct {
    rp_cycle_t *cycle;
    rp_upstream_conf_t **blocks; /* the upstream blocks, sorted by name regardless of case */
    size_t nblocks;
    /* upstream_address_pools */
    int max, keepalive, keepalive_requests;
    int64_t keepalive_timeout;
    unsigned pools_set : 1;
} choose_conf_t;

/* ---- the worker's address pools and TLS copies ---- */

typedef struct tls_copy_s {
    const rp_upstream_tls_t *tmpl;
    rp_upstream_conf_t *ups;
    rp_upstream_tls_t *tls;
    struct tls_copy_s *next;      /* in its hash bucket */
    struct tls_copy_s *pool_next; /* the other copies of the same address pool */
} tls_copy_t;

typedef struct pool_s {
    rp_upstream_conf_t ups;
    rp_upstream_server_t server;
    char name[POOL_NAME_MAX];
    unsigned tls : 1;
    unsigned refs; /* requests holding it */
    uint32_t hash;
    struct pool_s *hnext;       /* in its hash bucket */
    struct pool_s *prev, *next; /* most recently chosen first */
    tls_copy_t *copies;
} pool_t;

static struct {
    rp_cycle_t *cycle; /* the configuration the tables below belong to */
    pool_t **buckets;
    size_t nbuckets, npools;
    pool_t *head, *tail;
    tls_copy_t **tbuckets;
    size_t ntbuckets, ncopies;
    /* what a configuration no longer served left (a single process reloads in place): its
     * connections may still point here */
    pool_t *retired;
    tls_copy_t *retired_copies;
} w;

static uint32_t fnv(const void *data, size_t n, uint32_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t pair_hash(const void *a, const void *b)
{
    uintptr_t k[2] = {(uintptr_t)a, (uintptr_t)b};
    return fnv(k, sizeof(k), 2166136261u);
}

/* The tables start over for another configuration; the old one's pools stay allocated. */
static void start_tables(const choose_conf_t *m)
{
    for (pool_t *p = w.head, *next; p; p = next) {
        next = p->next;
        p->next = w.retired;
        w.retired = p;
    }
    for (size_t i = 0; i < w.ntbuckets; i++) {
        for (tls_copy_t *c = w.tbuckets[i], *next; c; c = next) {
            next = c->next;
            c->next = w.retired_copies;
            w.retired_copies = c;
        }
    }
    free(w.buckets);
    free(w.tbuckets);
    w.nbuckets = 16;
    while (w.nbuckets < (size_t)m->max)
        w.nbuckets <<= 1;
    w.buckets = rp_xcalloc(w.nbuckets, sizeof(*w.buckets));
    w.ntbuckets = 16;
    w.tbuckets = rp_xcalloc(w.ntbuckets, sizeof(*w.tbuckets));
    w.npools = w.ncopies = 0;
    w.head = w.tail = NULL;
    w.cycle = m->cycle;
}

static void lru_unlink(pool_t *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        w.head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        w.tail = p->prev;
    p->prev = p->next = NULL;
}

static void lru_front(pool_t *p)
{
    p->next = w.head;
    if (w.head)
        w.head->prev = p;
    w.head = p;
    if (w.tail == NULL)
        w.tail = p;
}

static void copies_grow(void)
{
    size_t n = w.ntbuckets * 2;
    tls_copy_t **b = rp_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < w.ntbuckets; i++) {
        for (tls_copy_t *c = w.tbuckets[i], *next; c; c = next) {
            next = c->next;
            size_t k = pair_hash(c->tmpl, c->ups) & (n - 1);
            c->next = b[k];
            b[k] = c;
        }
    }
    free(w.tbuckets);
    w.tbuckets = b;
    w.ntbuckets = n;
}

/* The worker's copy of tmpl for the servers of u (an address pool's: pool), made once. */
static rp_upstream_tls_t *tls_for(const rp_upstream_tls_t *tmpl, rp_upstream_conf_t *u,
                                  pool_t *pool, rp_str_t host)
{
    size_t k = pair_hash(tmpl, u) & (w.ntbuckets - 1);
    for (tls_copy_t *c = w.tbuckets[k]; c; c = c->next)
        if (c->tmpl == tmpl && c->ups == u)
            return c->tls;
    tls_copy_t *c = rp_xcalloc(1, sizeof(*c));
    c->tmpl = tmpl;
    c->ups = u;
    c->tls = rp_upstream_tls_bind(tmpl, u, host);
    c->next = w.tbuckets[k];
    w.tbuckets[k] = c;
    if (pool) {
        c->pool_next = pool->copies;
        pool->copies = c;
    }
    if (++w.ncopies > w.ntbuckets)
        copies_grow();
    return c->tls;
}

/* Whether anything but the idle connections of the cache still uses p. */
static int pool_busy(const pool_t *p)
{
    return p->refs || p->server.h2_sessions;
}

/* Empties p for another address: idle connections closed, TLS copies freed, unlinked. */
static void pool_clear(pool_t *p)
{
    rp_upstream_conf_t *u = &p->ups;
    while (u->idle) {
        rp_uconn_t *uc = rp_upstream_pool_get(u, u->idle->peer, u->idle->tls);
        if (uc)
            rp_upstream_release(uc, 0);
    }
    for (tls_copy_t *c = p->copies, *next; c; c = next) {
        next = c->pool_next;
        tls_copy_t **pp = &w.tbuckets[pair_hash(c->tmpl, c->ups) & (w.ntbuckets - 1)];
        while (*pp != c)
            pp = &(*pp)->next;
        *pp = c->next;
        w.ncopies--;
        rp_upstream_tls_unbind(c->tls);
        free(c);
    }
    p->copies = NULL;
    rp_upstream_peers_free(u);
    pool_t **pp = &w.buckets[p->hash & (w.nbuckets - 1)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    lru_unlink(p);
}

/* The pool for address sa with scheme tls: the worker's, or a new one (in the place of
 * the least recently used idle one when there are max already). NULL when every pool is
 * in use. */
static pool_t *pool_for(const choose_conf_t *m, const rp_proxy_route_t *route,
                        const struct sockaddr_storage *sa, socklen_t socklen, int tls)
{
    char name[POOL_NAME_MAX];
    rp_sockaddr_text((const struct sockaddr *)sa, name, sizeof(name));
    uint32_t h = fnv(name, strlen(name), tls ? 0x811c9dc5u ^ 1u : 0x811c9dc5u);
    for (pool_t *p = w.buckets[h & (w.nbuckets - 1)]; p; p = p->hnext) {
        if (p->hash == h && p->tls == (unsigned)tls && strcmp(p->name, name) == 0) {
            if (w.head != p) {
                lru_unlink(p);
                lru_front(p);
            }
            return p;
        }
    }
    pool_t *p = NULL;
    if (w.npools < (size_t)m->max) {
        p = rp_xcalloc(1, sizeof(*p));
        w.npools++;
    } else {
        for (pool_t *q = w.tail; q && p == NULL; q = q->prev)
            if (!pool_busy(q))
                p = q;
        if (p == NULL)
            return NULL;
        pool_clear(p);
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->tls = !!tls;
    p->hash = h;
    p->refs = 0;
    rp_upstream_implicit_t how = {
        .cycle = m->cycle,
        .name = p->name,
        .sa = (const struct sockaddr *)sa,
        .socklen = socklen,
        .tls = tls,
        .keepalive = m->keepalive,
        .keepalive_timeout = m->keepalive_timeout,
        .keepalive_requests = m->keepalive_requests,
        .file = route->file,
        .line = route->line,
    };
    rp_upstream_implicit_make(&p->ups, &p->server, &how);
    if (rp_upstream_attach_runtime(&p->ups) != 0) {
        /* no room in the peer table: the pool cannot be used; it stays, unlinked, for
         * the next address */
        rp_log_error(RP_LOG_ERR, 0, "no room in the peer table for upstream address %s", name);
        p->hnext = NULL;
        p->name[0] = '\0';
        lru_front(p);
        return NULL;
    }
    size_t k = h & (w.nbuckets - 1);
    p->hnext = w.buckets[k];
    w.buckets[k] = p;
    lru_front(p);
    return p;
}

static void unpin(rp_request_t *r, void *data)
{
    pool_t *p = data;
    p->refs--;
}

/* ---- the decision ---- */

/* An error-log line about r in nginx's form (no upstream was reached). */
static void log_request(rp_request_t *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_request(rp_request_t *r, int level, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rp_str_t addr = rp_http_remote_addr(r);
    rp_str_t server = r->srv && r->srv->names.nelts
                          ? ((rp_server_name_t *)r->srv->names.elts)[0].text
                          : RP_STR("");
    const char *version = r->version == 20 ? "2.0" : r->version == 10 ? "1.0" : "1.1";
    rp_log_error(level, 0,
                 "%s, client: %.*s, server: %.*s, request: \"%.*s %.*s HTTP/%s\", host: \"%.*s\"",
                 msg, (int)addr.len, addr.data, (int)server.len, server.data ? server.data : "",
                 (int)r->method.len, r->method.data, (int)r->request_uri.len, r->request_uri.data,
                 version, (int)r->host.len, r->host.data);
}

static int cmp_name(rp_str_t a, const char *b)
{
    size_t blen = strlen(b), n = a.len < blen ? a.len : blen;
    int c = strncasecmp(a.data, b, n);
    if (c)
        return c;
    return a.len < blen ? -1 : a.len > blen;
}

/* The upstream block named name regardless of case (nginx's lookup), or NULL. */
static rp_upstream_conf_t *find_block(const choose_conf_t *m, rp_str_t name)
{
    size_t lo = 0, hi = m->nblocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_name(name, m->blocks[mid]->name);
        if (c == 0)
            return m->blocks[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

/* The URI part of an evaluated URL, sent as it is, except that what may never be raw in a
 * request line (controls, space, bytes above 127: a decoded $uri may hold them) is
 * escaped, and a bare query gets its "/". */
static rp_str_t uri_part(rp_request_t *r, const char *p, size_t n)
{
    size_t esc = 0, lead = p[0] == '?';
    for (size_t i = 0; i < n; i++)
        esc += (unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f;
    if (esc == 0 && !lead)
        return (rp_str_t){p, n};
    char *b = rp_arena_alloc(r->arena, n + 2 * esc + lead + 1), *o = b;
    static const char hex[] = "0123456789ABCDEF";
    if (lead)
        *o++ = '/';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    *o = '\0';
    return (rp_str_t){b, (size_t)(o - b)};
}

/* Chooses by the evaluated URL of a proxy_pass or grpc_pass with variables. */
static int choose_url(rp_request_t *r, const rp_proxy_route_t *route, rp_proxy_choice_t *c)
{
    rp_str_t url = rp_cv_eval(r, &route->url);
    const char *p = url.data, *end = url.data + url.len;
    int tls = 0;
    size_t skip = 0;
#define HAS_PREFIX(lit) (url.len >= sizeof(lit) - 1 && strncasecmp(p, lit, sizeof(lit) - 1) == 0)
    if (route->grpc) {
        if (HAS_PREFIX("grpcs://"))
            tls = 1, skip = 8;
        else if (HAS_PREFIX("grpc://"))
            skip = 7; /* else, as nginx, no scheme is grpc:// */
    } else if (HAS_PREFIX("https://")) {
        tls = 1, skip = 8;
    } else if (HAS_PREFIX("http://")) {
        skip = 7;
    } else {
        log_request(r, RP_LOG_ERR, "invalid URL prefix in \"%.*s\"", (int)url.len, url.data);
        return 500;
    }
#undef HAS_PREFIX
    p += skip;
    const char *h = p;
    while (p < end && *p != '/' && *p != '?')
        p++;
    rp_str_t hostport = {h, (size_t)(p - h)};
    if (hostport.len == 0) {
        log_request(r, RP_LOG_ERR, "no host in upstream \"%.*s\"", (int)url.len, url.data);
        return 500;
    }
    if (p < end) {
        if (route->grpc) {
            log_request(r, RP_LOG_ERR, "\"grpc_pass\" cannot have a URI part in \"%.*s\"",
                        (int)url.len, url.data);
            return 500;
        }
        c->uri = uri_part(r, p, (size_t)(end - p));
        c->has_uri = 1;
    }

    /* host, [v6], or either with :port */
    rp_str_t name = hostport;
    const char *port = NULL, *colon = memchr(h, ':', hostport.len);
    int bracket = h[0] == '[';
    if (bracket) {
        const char *close = memchr(h, ']', hostport.len);
        if (close == NULL || (close + 1 < h + hostport.len && close[1] != ':')) {
            log_request(r, RP_LOG_ERR, "invalid host in upstream \"%.*s\"", (int)url.len, url.data);
            return 500;
        }
        name = (rp_str_t){h + 1, (size_t)(close - h - 1)};
        if (close + 1 < h + hostport.len)
            port = close + 2;
    } else if (colon && memchr(colon + 1, ':', (size_t)(h + hostport.len - colon - 1))) {
        bracket = 1; /* an IPv6 address without brackets, and so without a port */
    } else if (colon) {
        name.len = (size_t)(colon - h);
        port = colon + 1;
    }
    if (!bracket) {
        for (size_t i = 0; i < name.len; i++) {
            if (!host_char(name.data[i])) {
                log_request(r, RP_LOG_ERR, "invalid host in upstream \"%.*s\"", (int)url.len,
                            url.data);
                return 500;
            }
        }
    }
    long portnum = tls ? 443 : 80;
    if (port) {
        size_t plen = (size_t)(h + hostport.len - port);
        portnum = 0;
        for (size_t i = 0; i < plen && portnum <= 65535; i++)
            portnum = port[i] >= '0' && port[i] <= '9' ? portnum * 10 + (port[i] - '0') : 65536;
        if (plen == 0 || plen > 5 || portnum < 1 || portnum > 65535) {
            log_request(r, RP_LOG_ERR, "invalid port in upstream \"%.*s\"", (int)url.len, url.data);
            return 500;
        }
    }
    if (name.len == 0) {
        log_request(r, RP_LOG_ERR, "no host in upstream \"%.*s\"", (int)url.len, url.data);
        return 500;
    }

    const choose_conf_t *m = r->srv->ctx->main_conf[rp_upstream_choose_module.index];
    rp_upstream_conf_t *u = NULL;
    pool_t *pool = NULL;
    if (!port && !bracket)
        u = find_block(m, name); /* a block's name has no port, as nginx's */
    if (u == NULL) {
        char text[INET6_ADDRSTRLEN + 1];
        struct sockaddr_storage sa;
        socklen_t socklen = 0;
        memset(&sa, 0, sizeof(sa));
        if (name.len < sizeof(text)) {
            memcpy(text, name.data, name.len);
            text[name.len] = '\0';
            struct sockaddr_in *sin = (struct sockaddr_in *)&sa;
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sa;
            if (!bracket && inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t)portnum);
                socklen = sizeof(*sin);
            } else if (bracket && inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons((uint16_t)portnum);
                socklen = sizeof(*sin6);
            }
        }
        if (socklen == 0) {
            if (bracket) {
                log_request(r, RP_LOG_ERR, "invalid host in upstream \"%.*s\"", (int)url.len,
                            url.data);
                return 500;
            }
            log_request(r, RP_LOG_ERR, "no resolver defined to resolve %.*s", (int)name.len,
                        name.data);
            return 502;
        }
        if (w.cycle != m->cycle)
            start_tables(m);
        pool = pool_for(m, route, &sa, socklen, tls);
        if (pool == NULL) {
            log_request(r, RP_LOG_ERR,
                        "no upstream address pool free for %.*s: all %d are in use "
                        "(upstream_address_pools max=)",
                        (int)hostport.len, hostport.data, m->max);
            return 502;
        }
        /* held until the request ends, so its retries find the same pool */
        pool->refs++;
        rp_http_cleanup_add(r, unpin, pool);
        u = &pool->ups;
    }
    c->upstream = u;
    c->host = hostport;
    c->pinned = pool;
    c->tls = NULL;
    if (tls) {
        const rp_upstream_tls_t *tmpl = route->grpc || u->http2 ? route->tls_h2 : route->tls_h1;
        if (tmpl == NULL) {
            /* not made at load time: cannot happen for a URL that may be https */
            log_request(r, RP_LOG_ALERT, "no TLS settings for \"%.*s\"", (int)url.len, url.data);
            return 500;
        }
        if (w.cycle != m->cycle)
            start_tables(m);
        c->tls = tls_for(tmpl, u, pool, pool ? (rp_str_t){pool->name, strlen(pool->name)} : name);
    }
    return RP_OK;
}

int rp_proxy_choose_route(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_upstream_conf_t **u,
                          rp_upstream_tls_t **tls, rp_str_t *host)
{
    rp_proxy_choice_t *c = rp_http_get_ctx(r, rp_upstream_choose_module);
    if (c == NULL) {
        c = rp_arena_calloc(r->arena, sizeof(*c));
        rp_http_set_ctx(r, rp_upstream_choose_module, c);
    } else if (c->plcf == plcf) {
        goto chosen;
    } else {
        memset(c, 0, sizeof(*c));
    }
    const rp_proxy_route_t *route = plcf->route;
    if (route->canary && rp_canary_pick(r, route->canary)) {
        c->canary = 1;
        c->upstream = route->canary->upstream;
        c->tls = route->canary->tls;
        c->host = route->canary->host;
    } else if (!route->dynamic) {
        c->upstream = plcf->upstream;
        c->tls = plcf->tls;
        c->host = plcf->host;
    } else {
        int rc = choose_url(r, route, c);
        if (rc != RP_OK)
            return rc;
    }
    c->plcf = plcf;

chosen:
    *u = c->upstream;
    *tls = c->tls;
    if (host)
        *host = c->host;
    return RP_OK;
}

const rp_proxy_choice_t *rp_proxy_choice(rp_request_t *r, const rp_proxy_loc_conf_t *plcf)
{
    rp_proxy_choice_t *c = rp_http_get_ctx(r, rp_upstream_choose_module);
    return c && c->plcf == plcf ? c : NULL;
}

/* ---- configuration ---- */

rp_proxy_route_t *rp_proxy_route_get(rp_conf_t *cf, rp_proxy_loc_conf_t *p)
{
    if (p->route == NULL) {
        p->route = rp_arena_calloc(cf->arena, sizeof(rp_proxy_route_t));
        p->route->scheme_tls = -1;
    }
    return p->route;
}

const char *rp_proxy_route_compile(rp_conf_t *cf, rp_proxy_loc_conf_t *p, const char *url, int grpc)
{
    /* the pools this location may make while serving keep their peers in the default
     * peer table */
    if (rp_upstream_default_zone(cf) != RP_CONF_OK)
        return RP_CONF_ERROR;
    const char *plain = grpc ? "grpc://" : "http://", *secure = grpc ? "grpcs://" : "https://";
    size_t plen = strlen(plain), slen = strlen(secure), skip = 0;
    int scheme;
    if (strncasecmp(url, secure, slen) == 0) {
        scheme = 1;
        skip = slen;
    } else if (strncasecmp(url, plain, plen) == 0) {
        scheme = 0;
        skip = plen;
    } else if (url[0] == '$') {
        scheme = -1; /* known per request */
    } else if (grpc && strstr(url, "://") == NULL) {
        scheme = 0; /* grpc_pass host:port */
    } else {
        return rp_conf_error(cf, "invalid URL prefix in \"%s\" (expected %s or %s)", url, plain,
                             secure);
    }
    if (url[skip] == '\0' || url[skip] == '/' || url[skip] == '?')
        return rp_conf_error(cf, "no host in \"%s\"", url);
    rp_proxy_route_t *route = rp_proxy_route_get(cf, p);
    const char *err = rp_cv_compile(cf, url, &route->url);
    if (err)
        return err;
    route->dynamic = 1;
    route->grpc = !!grpc;
    route->scheme_tls = scheme;
    route->file = cf->file;
    route->line = cf->line;
    return RP_CONF_OK;
}

const char *rp_proxy_route_tls(rp_conf_t *cf, rp_proxy_loc_conf_t *p, rp_http_conf_ctx_t *ctx)
{
    rp_proxy_route_t *route = p->route;
    if (route == NULL || !route->dynamic || route->scheme_tls == 0)
        return RP_CONF_OK;
    rp_module_t *sm = route->grpc ? &rp_grpc_ssl_module : &rp_proxy_ssl_module;
    rp_upstream_ssl_conf_t *sc = ctx->loc_conf[sm->index];
    int h2 = route->grpc;
    if (!route->grpc) {
        const char *err = rp_upstream_tls_template(cf, sc, 0, &route->tls_h1);
        if (err != RP_CONF_OK)
            return err;
        /* an `http2` block may be chosen: its connections need ALPN h2 */
        rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
        rp_upstream_conf_t **v = um->upstreams.elts;
        for (size_t i = 0; i < um->upstreams.nelts && !h2; i++)
            h2 = !v[i]->implicit && v[i]->http2;
    }
    if (h2)
        return rp_upstream_tls_template(cf, sc, 1, &route->tls_h2);
    return RP_CONF_OK;
}

static void *create_main(rp_conf_t *cf)
{
    choose_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    m->max = 256;
    m->keepalive = 8;
    m->keepalive_timeout = 60000;
    m->keepalive_requests = 1000;
    return m;
}

static const char *set_address_pools(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    choose_conf_t *m = conf;
    if (m->pools_set)
        return "is duplicate";
    m->pools_set = 1;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        long v;
        if (strncmp(a, "max=", 4) == 0) {
            if (rp_parse_int(a + 4, 1000000, &v) != 0 || v < 1)
                return rp_conf_error(cf, "invalid max \"%s\"", a + 4);
            m->max = (int)v;
        } else if (strncmp(a, "keepalive=", 10) == 0) {
            if (rp_parse_int(a + 10, 100000, &v) != 0)
                return rp_conf_error(cf, "invalid keepalive \"%s\"", a + 10);
            m->keepalive = (int)v;
        } else if (strncmp(a, "keepalive_timeout=", 18) == 0) {
            if (rp_parse_msec(a + 18, &m->keepalive_timeout) != 0)
                return rp_conf_error(cf, "invalid keepalive_timeout \"%s\"", a + 18);
        } else if (strncmp(a, "keepalive_requests=", 19) == 0) {
            if (rp_parse_int(a + 19, INT_MAX, &v) != 0)
                return rp_conf_error(cf, "invalid keepalive_requests \"%s\"", a + 19);
            m->keepalive_requests = (int)v;
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    return RP_CONF_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcasecmp((*(rp_upstream_conf_t *const *)a)->name,
                      (*(rp_upstream_conf_t *const *)b)->name);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    choose_conf_t *m = rp_http_main_conf(cf->cycle, &rp_upstream_choose_module);
    if (m == NULL)
        return RP_CONF_OK;
    m->cycle = cf->cycle;
    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    rp_upstream_conf_t **v = um->upstreams.elts;
    m->blocks = rp_arena_alloc(cf->arena, (um->upstreams.nelts + 1) * sizeof(*m->blocks));
    for (size_t i = 0; i < um->upstreams.nelts; i++)
        if (!v[i]->implicit)
            m->blocks[m->nblocks++] = v[i];
    qsort(m->blocks, m->nblocks, sizeof(*m->blocks), by_name);
    return RP_CONF_OK;
}

/* ---- $upstream_canary ---- */

static int get_canary(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_proxy_choice_t *c = rp_http_get_ctx(r, rp_upstream_choose_module);
    *out = c && c->canary ? RP_STR("1") : RP_STR("0");
    return 0;
}

static const rp_var_def_t variables[] = {
    {"upstream_canary", get_canary, NULL, RP_VAR_NOCACHE, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static const rp_command_t commands[] = {
    {"upstream_address_pools", RP_CTX_HTTP, 0, 1, 4, set_address_pools, RP_CONF_HTTP_MAIN, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_upstream_choose_module = {
    .name = "upstream_choose",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_main,
    .postconfiguration = postconfiguration,
};
