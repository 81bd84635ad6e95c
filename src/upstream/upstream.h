/*
 * Upstream pools: `upstream NAME { server ...; keepalive N; }`, the implicit
 * one-server pool behind `proxy_pass http://host:port` (or https://), the balancer
 * that picks a server, the per-worker keep-alive cache of idle connections, and
 * the I/O calls on an upstream connection, which go through TLS when it has it.
 *
 * What all workers must agree on about a peer (in flight, failures, latency, state)
 * lives in the shared peer table (peers.h). Every worker has its own copy of the
 * configuration (it forked after loading it), so what is each worker's own (its peer
 * set, round robin's current weights, the idle list, HTTP/2 sessions) lives in these
 * structures directly and needs no lock.
 */
#ifndef RP_UPSTREAM_H
#define RP_UPSTREAM_H

#include "conf/conf.h"
#include "upstream/peers.h"
#include "upstream/hedge.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

typedef struct rp_uconn_s rp_uconn_t;
struct rp_attempt_s; /* attempt.h */
typedef struct rp_upstream_tls_s rp_upstream_tls_t; /* upstream_ssl.h */
struct ssl_st;

/*
 * A peer: one address of a pool. Those of plain server lines are made at
 * configuration time (a name with several addresses gives one peer each, as nginx);
 * those of `resolve` lines by the worker from the helper's DNS answers (dynamic).
 * A dynamic peer is allocated on its own and counted (refs): the worker's current
 * set, every attempt on it, every connection and HTTP/2 session to it hold a
 * reference, so one that a DNS answer dropped stays valid until the last goes.
 */
struct rp_upstream_server_s {
    char *name; /* "10.0.0.1:8080", as resolved */
    struct sockaddr_storage sa;
    socklen_t socklen;
    int weight;
    int max_conns;
    int max_fails;
    int64_t fail_timeout;
    int64_t slow_start; /* ms; 0: none */
    unsigned backup : 1;
    unsigned down : 1;
    unsigned dynamic : 1; /* made from a DNS answer: freed once retired and unreferenced */
    unsigned retired : 1; /* a DNS answer dropped it: no new requests */
    unsigned line_index;  /* dynamic: its resolve line in u->resolve */
    const char *file;
    unsigned line;
    rp_upstream_conf_t *ups;
    rp_peer_shared_t *sh; /* its entry in the shared peer table */

    /* per-worker state */
    int64_t current_weight; /* smooth weighted round robin, as nginx */
    unsigned refs;        /* dynamic: attempts and connections still using it */
    struct rp_h2u_session_s *h2; /* HTTP/2 sessions to this server (h2_upstream.c) */
    unsigned h2_sessions;
};

/* A `server NAME resolve` line: the helper resolves NAME; each address is a peer made
 * from this template (its parameters, file and line; name is hostport). */
typedef struct {
    char *host; /* the name as written, without the port */
    char *hostport; /* "name:port" */
    int port;
    rp_upstream_server_t tmpl;
} rp_upstream_resolve_t;

/* least_time's measure */
enum { RP_LT_HEADER = 0, RP_LT_LAST_BYTE = 1 };

struct rp_upstream_conf_s {
    char *name;
    const char *file;
    unsigned line;
    const rp_upstream_balancer_t *balancer;
    rp_array_t servers; /* rp_upstream_server_t: the peers of plain server lines */
    rp_array_t resolve; /* rp_upstream_resolve_t: `server NAME resolve` lines */
    void **module_conf; /* every module's configuration of the block (its create_ups), by
                         * module index; NULL for the implicit pools of proxy_pass */

    /* the peer table: `zone NAME SIZE`, else the default zone */
    char *zone_name;
    size_t zone_size;
    rp_shm_zone_t *zone;
    rp_shm_counter_t *gen; /* the pool's generation in the zone (moved by DNS answers) */
    rp_peer_shared_t *totals; /* the pool's: inflight on all its peers, all workers (peers.c) */
    rp_pool_shared_t *pool;   /* the pool's whole entry (totals, retries, panic...) */

    /* resilience: set by the modules of the upstream block's directives */
    unsigned health_checks : 1;    /* health_check: peers' health is known (helper) */
    unsigned health_mandatory : 1; /* health_check ... mandatory: unknown takes no traffic */
    unsigned outlier : 1;          /* outlier_detection: peers may be ejected */
    int panic_threshold;           /* percent of healthy peers below which the pool
                                    * balances over all; -1: unset (50 when health is
                                    * tracked); 0: never */
    rp_upstream_observer_t *observers; /* rp_upstream_observe */
    /* circuit breakers (breaker_module.c): 0 none */
    int max_retries;               /* retries (and hedges) in flight, all workers */
    /* retry_budget (retry_module.c): retries in flight below pct% of the requests in
     * flight, or below min; pct -1: no budget */
    int retry_budget_pct, retry_budget_min;
    unsigned retry_budget_set : 1;

    /* balancing directives' settings */
    void *hash_key;              /* hash KEY: an rp_cv_t */
    unsigned hash_consistent : 1;
    unsigned random_two : 1;     /* random two */
    unsigned lt_inflight : 1;    /* least_time ... inflight */
    unsigned lt_measure : 1;     /* RP_LT_* */
    double hash_balance_factor;  /* bounded loads: no peer above factor x the mean; 0 off */
    const char *hbf_file;        /* where hash_balance_factor was set, for its error */
    unsigned hbf_line;
    unsigned implicit : 1; /* made by proxy_pass http://host:port */
    unsigned implicit_tls : 1; /* ... by proxy_pass https://host:port: a pool of its own */
    unsigned http2 : 1;    /* `http2`: requests go over HTTP/2 (h2_upstream.c) */
    int keepalive;              /* idle connections cached per worker; 0: none */
    int64_t keepalive_timeout;  /* an idle connection closes after this */
    int keepalive_requests;     /* a connection closes after this many requests */
    rp_cycle_t *cycle;
    /* balancer_by_lua (src/lua/lua_balancer.c): picks each try's peer (attempt.h); NULL:
     * the balancer alone does */
    int (*chooser)(struct rp_attempt_s *a, void *data, rp_upstream_server_t **peer);
    void *chooser_data;
    /* the idle cache keeps only connections whose try asked for it (the chooser's
     * enable_keepalive), in a pool without a keepalive directive */
    unsigned keepalive_on_request : 1;

    /* per-worker state */
    rp_upstream_peers_t *live; /* the current peer set (peers.c) */
    rp_uconn_t *idle;  /* most recently used first */
    int nidle;
    int h2_idle; /* HTTP/2 sessions without a request */
    unsigned nprimary, nbackup;
    rp_hedge_hist_t *hedge_hist; /* latency to the head seen by this worker (hedge.c) */
    int64_t panic_checked; /* ms: when this worker last counted the healthy peers */
    unsigned panic : 1;    /* its verdict */
};

typedef struct {
    rp_array_t upstreams; /* rp_upstream_conf_t * */
    /* upstream_ssl.c's: the client contexts built so far and the TLS objects using them,
     * so locations with the same settings share them */
    rp_array_t tls_ctxs, tls;
} rp_upstream_main_conf_t;

/* A connection to an upstream server; kept in the idle list between requests. */
struct rp_uconn_s {
    int fd;
    rp_upstream_conf_t *ups;
    rp_upstream_server_t *peer;
    struct event rev, wev, timer;
    unsigned requests; /* requests sent on this connection */
    unsigned suspect : 1; /* its last response had no body: check for stray bytes on reuse */
    unsigned keep_asked : 1; /* its try asked to keep it (keepalive_on_request) */
    int64_t keepalive_timeout;   /* ms: its own idle timeout; 0: the pool's */
    unsigned keepalive_requests; /* its own request cap; 0: the pool's */
    unsigned connecting : 1; /* new, not yet writable or readable: counted pending (breaker.h) */
    struct evbuffer *out; /* request bytes the server has not taken yet */
    /* The request using the connection and its handlers; owner is NULL while the
     * connection is idle in the cache. The events stay assigned for the connection's
     * life and dispatch through these, so moving between idle and busy costs no
     * epoll_ctl. */
    void *owner;
    const struct rp_log_s *log; /* the owner request's error_log (rp_log_current), or NULL */
    void (*on_read)(void *owner);
    void (*on_write)(void *owner);
    void (*on_timeout)(void *owner);
    char *buf;         /* response bytes read and not yet handled */
    uint32_t cap, len, pos;
    rp_uconn_t *prev, *next;
    /* TLS (NULL for a plain connection): the session, the settings it was made with
     * (the keep-alive cache matches on them), and the length of an SSL_write that must
     * be repeated at least that long. */
    struct ssl_st *ssl;
    rp_upstream_tls_t *tls;
    uint32_t tls_retry;
    unsigned tls_sound : 1; /* handshake done and no fatal error: close_notify is due */
};

/* Finds an upstream block by name in the http block being configured; NULL if none.
 * The implicit pools of proxy_pass addresses are not blocks and are not found. */
rp_upstream_conf_t *rp_upstream_find(rp_conf_t *cf, const char *name);

/* The one-server upstream for "host:port" (shared by every proxy_pass naming it with the
 * same scheme: tls says https, whose connections never mix with plain ones). */
const char *rp_upstream_implicit(rp_conf_t *cf, const char *hostport, int tls,
                                 rp_upstream_conf_t **out);

/* An implicit pool made while serving (proxy_pass with variables naming an address). */
typedef struct {
    rp_cycle_t *cycle;
    char *name; /* "10.0.0.1:8080", the server's name too; the caller's memory */
    const struct sockaddr *sa;
    socklen_t socklen;
    int tls;
    int keepalive, keepalive_requests;
    int64_t keepalive_timeout;
    const char *file; /* the proxy_pass that made it */
    unsigned line;
} rp_upstream_implicit_t;

/* Makes u, with s its one server (memory the caller owns and may reuse after the pool's
 * connections are gone), the implicit pool how describes, as rp_upstream_implicit makes
 * one at load time. */
void rp_upstream_implicit_make(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                               const rp_upstream_implicit_t *how);

/* What a proxy_pass or grpc_pass names: an upstream block, else the implicit group for
 * host[:port] (port 443 with tls, else 80). For postconfiguration, with cf at the line. */
const char *rp_upstream_resolve(rp_conf_t *cf, const char *name, int tls,
                                rp_upstream_conf_t **out);

/* Takes an idle connection to s from the keep-alive cache, or NULL: only one made with
 * the same TLS settings (tls NULL: a plain connection). */
rp_uconn_t *rp_upstream_pool_get(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                                 rp_upstream_tls_t *tls);

/* Closes the idle connections to s (a DNS answer dropped it). */
void rp_upstream_close_idle_to(rp_upstream_conf_t *u, rp_upstream_server_t *s);

/* A new, unconnected connection object (fd -1) with its read buffer of at least cap. */
rp_uconn_t *rp_uconn_new(rp_upstream_conf_t *u, rp_upstream_server_t *s, uint32_t cap);

/* Gives a new connection's socket its events (read armed at once, dispatching to the owner). */
void rp_uconn_attach(rp_uconn_t *uc, int fd);

/* Returns a connection after a request: cached when reusable and wanted, closed otherwise. */
void rp_upstream_release(rp_uconn_t *uc, int reusable);

/* The configuration whose pools may keep connections; others close theirs on release. */
void rp_upstream_set_live(rp_cycle_t *cycle);

/* Whether u belongs to the configuration that serves now: connections of older pools
 * close once their requests are done. */
int rp_upstream_is_live(const rp_upstream_conf_t *u);

/* Closes every idle connection (worker stopping or reloading), HTTP/2 sessions too. */
void rp_upstream_pool_close_all(void);

ssize_t rp_uconn_tls_read(rp_uconn_t *uc, void *buf, size_t n);
ssize_t rp_uconn_tls_writev(rp_uconn_t *uc, const struct iovec *iov, int iovcnt);
int rp_uconn_tls_flush(rp_uconn_t *uc);
int rp_uconn_tls_pending(rp_uconn_t *uc);

/* Reads response bytes, like read(2): -1 with EAGAIN when it must wait for the read
 * event. A plain connection costs one branch over read(2). */
static inline ssize_t rp_uconn_read(rp_uconn_t *uc, void *buf, size_t n)
{
    return uc->ssl ? rp_uconn_tls_read(uc, buf, n) : read(uc->fd, buf, n);
}

/* Writes request bytes now, like writev(2). After -1/EAGAIN on a TLS connection the
 * bytes not taken must be queued in uc->out and sent by rp_uconn_flush, never
 * rewritten by another call with fewer bytes. */
static inline ssize_t rp_uconn_writev(rp_uconn_t *uc, const struct iovec *iov, int iovcnt)
{
    return uc->ssl ? rp_uconn_tls_writev(uc, iov, iovcnt) : writev(uc->fd, iov, iovcnt);
}

/* Writes from uc->out, like evbuffer_write(3): bytes written, or -1 (EAGAIN: wait for the
 * write event). */
int rp_uconn_flush(rp_uconn_t *uc);

/* Arms the read event again after the reader paused (a slow client); with TLS, bytes
 * already decrypted are handed over at once, since the socket will not signal them. */
void rp_uconn_resume_read(rp_uconn_t *uc);

#endif
