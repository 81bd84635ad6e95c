/*
 * Client connections, below any protocol: the socket and its TLS session, the
 * read event and the timer, the peer's address, the worker's list of open
 * connections, the TLS handshake, lingering close, and the I/O calls that go
 * through TLS when the connection has it.
 *
 * What runs on a connection is a protocol (HTTP/1, HTTP/2, an upgraded tunnel),
 * a small table of functions the connection's events dispatch to. A protocol
 * keeps its own state behind c->data and allocates it only while it has work:
 * an idle keep-alive connection is this object alone (about 400 bytes), with no
 * buffer, no arena and no write event.
 *
 * This departs from DESIGN.md's "three lifetimes, each with an arena
 * (configuration, connection, request)": a connection has no arena of its own.
 * Its protocol takes a request arena (with its buffers) from a per-worker free
 * list when a request begins and gives it back when the connection is idle, so
 * holding a hundred thousand idle connections costs their objects alone.
 */
#ifndef RP_NET_CONN_H
#define RP_NET_CONN_H

#include "core/time.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct rp_conn_s rp_conn_t;
typedef struct rp_cycle_s rp_cycle_t;
struct rp_listening_s;
struct rp_proxy_addrs_s;

/* A protocol's handlers for the connection's events. */
typedef struct {
    const char *name;
    void (*read)(rp_conn_t *c);    /* c->rev fired: the socket (or TLS) has bytes */
    void (*timeout)(rp_conn_t *c); /* c->timer expired */
    /* The worker stops gracefully: close what is idle now, finish what is under way. */
    void (*drain)(rp_conn_t *c);
    /* The connection is being freed: end every request on it and free the protocol's
     * state. Called once, before the socket and TLS session go. */
    void (*release)(rp_conn_t *c);
    /* The worker closes every connection now (worker_shutdown_timeout, a fast stop):
     * what the protocol can still say at once, without waiting, before the close (a
     * WebSocket close frame). May be NULL. */
    void (*goodbye)(rp_conn_t *c);
} rp_conn_proto_t;

typedef union {
    struct sockaddr sa;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
} rp_sockaddr_t;

struct rp_conn_s {
    int fd;
    uint32_t tls_retry; /* length of an SSL_write that must be retried at least as long */
    SSL *ssl;           /* NULL on a cleartext connection */
    char *sni; /* the TLS server name the client asked for, normalized; NULL for none */
    const rp_conn_proto_t *proto;
    void *data; /* the protocol's state; NULL while it holds none */
    struct event rev;
    struct event timer;
    struct rp_listening_s *ls; /* the address it arrived on (and through it, its servers) */
    rp_sockaddr_t peer;
    socklen_t peerlen;
    /* what a PROXY protocol header said (proxy_protocol.h); NULL when none came or it
     * carried no addresses */
    struct rp_proxy_addrs_s *proxy;
    unsigned requests; /* requests started on it */
    uint64_t number;   /* $connection */
    struct timeval accepted; /* $connection_time */
    unsigned draining : 1; /* the worker is stopping: no keep-alive after this */
    unsigned reset : 1;    /* close with an RST: a close-delimited body was cut short */
    unsigned failed : 1;   /* the peer is gone or a write failed: no close_notify */
    unsigned tls_ready : 1; /* the TLS handshake completed */
    unsigned tls_broken : 1; /* a fatal TLS error: OpenSSL forbids close_notify now */
    unsigned proxy_read : 1; /* the PROXY protocol header was read */
    unsigned metrics_open : 1;    /* counted among the active connections (metrics.h) */
    unsigned metrics_reading : 1; /* counted as reading a request head (metrics.h) */
    const char *plain_reply; /* the TLS handshake: what to answer a plain HTTP client */
    rp_conn_t *prev, *next;
};

/*
 * Takes an accepted socket: the connection object is made, and the listening
 * address's handler (ls->handler) is called to start a protocol on it.
 */
void rp_conn_accept(int fd, struct sockaddr *sa, socklen_t len, struct rp_listening_s *ls);

/* Gives the connection to proto (its events dispatch there from now). */
static inline void rp_conn_set_proto(rp_conn_t *c, const rp_conn_proto_t *proto, void *data)
{
    c->proto = proto;
    c->data = data;
}

/*
 * Runs the TLS handshake on ctx, bounded by timeout_ms; once it completes,
 * ls->handler is called again with c->tls_ready set. A client that speaks plain
 * HTTP on the TLS port gets plain_reply (if not NULL), then the connection closes.
 * Any other failure closes the connection.
 */
void rp_conn_tls_accept(rp_conn_t *c, SSL_CTX *ctx, int64_t timeout_ms, const char *plain_reply);

/* Like read(2), through TLS when the connection has it. */
ssize_t rp_conn_read(rp_conn_t *c, void *buf, size_t n);

/* Like writev(2), through TLS when the connection has it. */
ssize_t rp_conn_writev(rp_conn_t *c, const struct iovec *iov, int iovcnt);

/* Writes up to max bytes (-1: all) from the front of out; like evbuffer_write_atmost. */
int rp_conn_write_buffer(rp_conn_t *c, struct evbuffer *out, ssize_t max);

/* Whether TLS holds decrypted bytes the socket will not signal again. */
int rp_conn_tls_pending(const rp_conn_t *c);

/* Arms the read event again and, if TLS holds bytes already, runs it at once. */
void rp_conn_read_resume(rp_conn_t *c);

/* Arms the connection's timer for ms milliseconds (replacing a running one). */
void rp_conn_set_timer(rp_conn_t *c, int64_t ms);

/* Closes now: the protocol releases what it holds, then TLS and the socket go. */
void rp_conn_free(rp_conn_t *c);

/*
 * After the last response: sends close_notify, half-closes, and reads (and drops)
 * what the client still sends for a moment, so the response is not lost to an RST
 * the kernel would send for unread bytes. The protocol must have released its
 * state (rp_conn_set_proto(c, NULL, NULL) is done here).
 */
void rp_conn_linger(rp_conn_t *c);

/*
 * A connection without a socket, standing in for `like` (its listening address, peer
 * address, number and TLS server name are copied; nothing of `like` is kept) for work
 * that outlives it: a background subrequest, whose client may be gone long before it
 * ends. It counts among the worker's connections, so a graceful stop waits for it, a
 * fast stop or worker_shutdown_timeout ends it through proto->release, and a retired
 * generation's configuration stays while it runs. It has no read event; its timer
 * calls proto->timeout. It ends with rp_conn_free, like any connection.
 */
rp_conn_t *rp_conn_detached(const rp_conn_t *like, const rp_conn_proto_t *proto, void *data);

/* Begins a graceful stop: every connection's protocol drains; those without one close. */
void rp_conn_drain_all(void);

/* Closes every connection at once (fast stop). */
void rp_conn_close_all(void);

/* Number of open connections in this worker. */
unsigned rp_conn_count(void);

/* Number of open connections that arrived through a listening socket of cycle. */
unsigned rp_conn_count_of(const rp_cycle_t *cycle);

/* Called when the connection count changes, so the worker can pause or resume accepting. */
extern void (*rp_conn_count_changed)(void);

#endif
