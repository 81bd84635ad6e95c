/*
 * A downstream HTTP/1 connection and the worker-wide connection list. The
 * connection owns the input buffer the request head points into, the output
 * buffer responses are queued on, and the request arena it resets between
 * requests.
 */
#ifndef RP_CONN_H
#define RP_CONN_H

#include "core/arena.h"
#include "http/h1_parser.h"
#include "http/http.h"
#include "http/request.h"

#include <event2/buffer.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

struct rp_listening_s;

struct rp_conn_s {
    int fd;
    int state;
    SSL *ssl;      /* NULL on a cleartext connection */
    char sni[256]; /* the TLS server name the client asked for, normalized; "" for none */
    size_t tls_retry; /* length of an SSL_write that must be retried at least as long */
    struct event io;  /* readable */
    struct event wio; /* writable, added only while output is blocked */
    struct event timer;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct sockaddr_storage local;
    socklen_t locallen;
    rp_http_addr_t *addr;
    char peer_text[INET6_ADDRSTRLEN + 8]; /* $remote_addr, made on first use */
    unsigned peer_text_len;

    char *in; /* head and pipelined bytes; the head of the current request starts at 0 */
    uint32_t in_len, in_cap;
    uint32_t in_pos; /* first byte after the current head */
    struct evbuffer *out;
    rp_h1_parser_t parser;

    rp_arena_t *req_arena;
    rp_request_t *r;
    unsigned requests;
    uint64_t number;

    int64_t body_left;   /* Content-Length bytes still to discard */
    int body_chunked;    /* discarding a chunked body */
    rp_chunked_t chunked;
    unsigned close_after : 1; /* no keep-alive after the current response */
    unsigned draining : 1;    /* the worker is shutting down */
    unsigned response_queued : 1;
    unsigned continue_sent : 1;
    unsigned reparse : 1; /* pipelined bytes wait to be parsed */

    unsigned write_failed : 1; /* the client connection failed while streaming */
    unsigned abort_rst : 1;    /* the response was cut short: reset, do not end cleanly */
    unsigned body_error : 1;   /* the body could not be read (see body_status) */
    int64_t body_received;     /* decoded body bytes handed to the content handler */

    /* the HTTP/1 response under way */
    size_t head_len;               /* a head built in rp_http_head_buf, not yet written */
    unsigned resp_chunked : 1;     /* the body goes out chunked */
    unsigned resp_close_end : 1;   /* the body ends when the connection does */

    struct rp_h2_conn_s *h2; /* set once the connection speaks HTTP/2 */
    struct event flush_ev;   /* HTTP/2: output to produce once the current callback returns */

    /* ST_TUNNEL: after a 101 the connection carries bytes for this owner (tunnel.c) */
    void (*tunnel)(void *arg, short what);
    void *tunnel_arg;

    struct timeval resp_start;
    size_t resp_sent;
    size_t limit_rate;
    int64_t send_timeout;

    rp_conn_t *prev, *next;
};

/* Takes an accepted socket and starts reading its first request. */
void rp_conn_accept(int fd, struct sockaddr *sa, socklen_t len, rp_http_addr_t *addr);

/* Starts sending what the response builder queued on c->out. */
void rp_conn_send(rp_conn_t *c);

/* The HTTP/1 side of the request API in request.h. */
int rp_h1_response_begin(rp_request_t *r, int64_t content_length);
int rp_h1_flush_head(rp_request_t *r);
int rp_h1_write(rp_request_t *r, const struct iovec *iov, int iovcnt);
void rp_h1_response_end(rp_request_t *r);
void rp_h1_abort(rp_request_t *r);
size_t rp_h1_pending(const rp_request_t *r);
int rp_h1_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n);
void rp_h1_close_now(rp_request_t *r);

/*
 * The byte tunnel after a 101 Switching Protocols (the proxy's tunnel.c drives it).
 * tunnel_start sends the 101 head that rp_http_response_begin() built and stops
 * parsing HTTP: from then on fn(arg, EV_READ) is called when the client sent bytes
 * (or TLS holds some already decrypted) while reading is enabled, and fn(arg,
 * EV_WRITE) when the output queue has drained. The connection frees itself (and
 * with it the request, whose cleanup ends the tunnel) only when a queued write
 * fails or send_timeout expires with output queued; otherwise the owner ends it
 * with rp_conn_free(). Returns 0, or -1 when the client is already gone.
 */
int rp_conn_tunnel_start(rp_conn_t *c, void (*fn)(void *arg, short what), void *arg);

/* Like read(2), through TLS; bytes the client sent behind its request head come first. */
ssize_t rp_conn_tunnel_read(rp_conn_t *c, void *buf, size_t n);

/* Sends bytes, queueing what the socket does not take (then fn gets EV_WRITE once it
 * drained). 0, or -1 when the client is gone. */
int rp_conn_tunnel_write(rp_conn_t *c, const void *buf, size_t n);

/* Bytes queued for the client that the socket has not taken yet. */
size_t rp_conn_tunnel_pending(const rp_conn_t *c);

/* Starts or stops the EV_READ calls (stopped: the client's bytes wait in the kernel). */
void rp_conn_tunnel_read_enable(rp_conn_t *c, int on);

/* Ends the client's direction after the last queued byte: TLS close_notify, then a
 * TCP half-close. 0, or -1 when the connection failed. */
int rp_conn_tunnel_shutdown(rp_conn_t *c);

/*
 * For the HTTP/2 code, which shares the connection object (socket, TLS, output
 * queue, timer) and hands the connection back to rp_conn_free when it ends.
 */
ssize_t rp_conn_io_read(rp_conn_t *c, void *buf, size_t n); /* like read(2), through TLS */
int rp_conn_out_write(rp_conn_t *c);                        /* writes c->out; like writev(2) */
void rp_conn_set_timer(rp_conn_t *c, int64_t ms);
void rp_conn_free(rp_conn_t *c);
void rp_conn_linger(rp_conn_t *c); /* half-close, drop what still comes, then free */

/* Begins a graceful drain: idle connections close now, busy ones after their response. */
void rp_conn_drain_all(void);

/* Closes every connection at once (fast stop). */
void rp_conn_close_all(void);

/* Number of open connections in this worker. */
unsigned rp_conn_count(void);

/* Number of open connections that arrived through a listening table of cycle. */
unsigned rp_conn_count_of(const rp_cycle_t *cycle);

/* The worker's event base, set once by the worker before accepting. */
extern struct event_base *rp_event_base;

/* Called when the connection count changes, so the worker can pause or resume accepting. */
extern void (*rp_conn_count_changed)(void);

#endif
