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
    int body_status;           /* with body_error: 400, 413, or 0 for a client gone */
    int64_t body_received;     /* decoded body bytes handed to the content handler */

    /* Set by a content handler that waits: for body bytes from the client, or for the
     * output buffer to drain (back-pressure). Each is cleared before it is called. */
    void (*on_body)(rp_request_t *r);
    void (*on_drain)(rp_request_t *r);

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

/*
 * Response streaming for content handlers that produce a body over time (the
 * proxy). begin() once before the head, write() for each piece (0, or -1 when the
 * client is gone), end() when the response is complete, abort() when it can never
 * be: the client sees a reset or a short body, never a truncated body framed as
 * complete. After end() or abort() the request may already be freed.
 */
void rp_conn_response_begin(rp_conn_t *c);
int rp_conn_write(rp_conn_t *c, const struct iovec *iov, int iovcnt);
void rp_conn_response_end(rp_conn_t *c);
void rp_conn_abort(rp_conn_t *c);

/* Bytes queued for the client and not yet accepted by the kernel. */
size_t rp_conn_pending(const rp_conn_t *c);

/*
 * Reads decoded request-body bytes into buf[0..cap). Returns 1 when the body is
 * complete, 0 when more will come (*n may be 0: then c->on_body is called when
 * the client sends more), -1 when it cannot be read (c->body_status says why).
 * The first call answers "Expect: 100-continue".
 */
int rp_conn_read_body(rp_conn_t *c, char *buf, size_t cap, size_t *n);

/* Whether the request still has body bytes the client has not sent or we have not read. */
int rp_conn_body_pending(const rp_conn_t *c);

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
