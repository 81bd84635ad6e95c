/*
 * What the cosocket files share (src/lua/lua_socket*.c, lua_udp.c): the
 * lua_socket_* and lua_ssl_* settings of a level, the worker's name resolver,
 * and the per-worker pool of idle connections that setkeepalive fills.
 *
 * Cosockets are OpenResty's non-blocking sockets for Lua: every wait (resolve,
 * connect, send, receive, handshake) yields the hook through rp_lua_yield and a
 * libevent event wakes it; the worker never blocks.
 */
#ifndef RP_LUA_SOCKET_H
#define RP_LUA_SOCKET_H

#include "lua/lua_int.h"
#include "upstream/resolve.h"

#include <event2/util.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

/* The settings of one level (http, server, location), inherited by merging. */
typedef struct {
    int64_t connect_timeout, send_timeout, read_timeout; /* ms */
    int64_t keepalive_timeout;                           /* lua_socket_keepalive_timeout */
    int pool_size;                                       /* lua_socket_pool_size */
    char *trusted;    /* lua_ssl_trusted_certificate: a PEM file of CAs */
    int verify_depth; /* lua_ssl_verify_depth */
    SSL_CTX *ctx;     /* made on first sslhandshake in the worker */
} rp_lua_socket_conf_t;

extern rp_module_t rp_lua_socket_module;

/* The settings that apply to the running Lua code: its request's location's, or the
 * http block's (timers, init_worker). */
const rp_lua_socket_conf_t *rp_lua_socket_conf(lua_State *L);

/* The client TLS context of conf (made on first use, with its CAs). NULL when
 * OpenSSL fails (logged). */
SSL_CTX *rp_lua_socket_ssl_ctx(rp_lua_socket_conf_t *conf);

/* The phases where a cosocket may wait: ngx.sleep's. */
#define RP_LUA_SOCKET_PHASES                                                                       \
    ((1u << RP_LUA_REWRITE) | (1u << RP_LUA_ACCESS) | (1u << RP_LUA_CONTENT) |                     \
     (1u << RP_LUA_TIMER) | (1u << RP_LUA_INIT_WORKER) | (1u << RP_LUA_LOG) |                      \
     (1u << RP_LUA_BALANCER) | (1u << RP_LUA_HEADER_FILTER))

/* Who owns a socket: the running hook's request, or the detached hook itself. A
 * socket used by another owner raises "bad request", as OpenResty. */
void *rp_lua_socket_owner(lua_State *L);

/* The request whose end closes the sockets the running code makes: its request, unless
 * that request's cleanups ran already (a log hook); else NULL. */
rp_request_t *rp_lua_socket_request(lua_State *L);

/* ---- names (lua_socket_module.c) ---- */

/* An asynchronous lookup of host (a name or an address) for a stream or datagram
 * socket. Calls cb(arg, addr, len, err) exactly once: with the first address, or with
 * addr NULL and err holding OpenResty's message. May call it before returning (numeric
 * addresses, /etc/hosts), then returns NULL; else a handle for rp_lua_resolve_cancel
 * (after which cb is not called). */
typedef void (*rp_lua_resolve_cb)(void *arg, const struct sockaddr *addr, socklen_t len,
                                  const char *err);
typedef struct rp_lua_resolve_s rp_lua_resolve_t;

/* Who answers: the `resolver` of the running code's location (or of the http block),
 * with its resolver_timeout; none set: the name servers of /etc/resolv.conf. */
typedef struct {
    const rp_resolver_t *resolver;
    int64_t timeout; /* ms; 0: evdns's own */
} rp_lua_dns_t;
void rp_lua_socket_dns(lua_State *L, rp_lua_dns_t *out);

rp_lua_resolve_t *rp_lua_resolve(const rp_lua_dns_t *dns, const char *host, int port, int socktype,
                                 rp_lua_resolve_cb cb, void *arg);
void rp_lua_resolve_cancel(rp_lua_resolve_t *q);

/* ---- the pool of idle connections (lua_socket_pool.c) ---- */

typedef struct rp_lua_pool_s rp_lua_pool_t;

/* An idle connection handed out by the pool. */
typedef struct {
    int fd;
    SSL *ssl;
    unsigned reused; /* times it was taken from the pool before */
} rp_lua_idle_t;

/* The pool named key (made on first use with size as its capacity, backlog as the
 * length of its queue of waiting connects, -1 for none). */
rp_lua_pool_t *rp_lua_pool_get(const char *key, int size, int backlog);

/* Takes an idle connection from pool: 1 with *out filled, 0 when none. */
int rp_lua_pool_take(rp_lua_pool_t *pool, rp_lua_idle_t *out);

/* Puts an idle connection in the pool (closing the oldest when it is full), watched
 * for the peer closing it and for timeout_ms (0: kept until closed). counted: it held
 * a slot of the pool's backlog, which it keeps as an idle connection. */
void rp_lua_pool_put(rp_lua_pool_t *pool, const rp_lua_idle_t *idle, int64_t timeout_ms,
                     int counted);

/*
 * The backlog (opts.backlog): a connect through a pool with a backlog counts as one of
 * its connections from rp_lua_pool_acquire until rp_lua_pool_release (closed, or
 * turned idle). acquire returns 1 when the connect may go on now, 0 when it must wait
 * (wake is called with 1 when an idle connection may be taken, 2 when a slot was
 * acquired for it, 0 on timeout_ms), -1 when the queue is full. rp_lua_pool_unwait drops a waiter
 * (its wait was cancelled).
 */
typedef struct rp_lua_pool_waiter_s rp_lua_pool_waiter_t;
struct rp_lua_pool_waiter_s {
    void (*wake)(rp_lua_pool_waiter_t *w, int ok);
    struct event *timer;
    rp_lua_pool_t *pool;
    rp_lua_pool_waiter_t *next, *prev;
};
int rp_lua_pool_has_backlog(const rp_lua_pool_t *pool);
int rp_lua_pool_acquire(rp_lua_pool_t *pool, rp_lua_pool_waiter_t *w, int64_t timeout_ms);
void rp_lua_pool_release(rp_lua_pool_t *pool);
void rp_lua_pool_unwait(rp_lua_pool_waiter_t *w);

/* Closes every idle connection (the worker stops). */
void rp_lua_pool_close_all(void);

/* Flattens send's argument (a string, a number, or a nested array table of them) into
 * one string pushed on L; raises OpenResty's errors for other types. */
void rp_lua_socket_flatten(lua_State *L, int idx);

/* nginx's wording of an errno (strerror, lowercased) in buf. */
const char *rp_lua_errtext(int e, char *buf, size_t len);

/* ngx.socket.udp() and the UDP socket's metatable (lua_udp.c). */
int rp_lua_udp_new(lua_State *L);
void rp_lua_udp_register(lua_State *L);

/* A detached hook ended (co->on_free): closes the TCP sockets it made (lua_socket.c),
 * then its UDP ones (rp_lua_udp_hook_free, lua_udp.c). */
void rp_lua_socket_hook_free(rp_lua_co_t *co);
void rp_lua_udp_hook_free(rp_lua_co_t *co);

/* Closes a connection (TLS alert if any, no waiting). */
void rp_lua_close_conn(int fd, SSL *ssl);

#endif
