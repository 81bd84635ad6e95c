/*
 * HTTP/2 to upstream servers (cleartext with prior knowledge, or TLS with ALPN
 * "h2"): the per-worker pool
 * of client sessions and the streams requests run on. h2_upstream.c owns the
 * connections, their nghttp2 sessions and the stream objects; the exchange that
 * turns a request into a stream and relays the answer is proxy_h2.c.
 *
 * A stream belongs to its owner (one proxied request) until the owner closes
 * it. The owner learns of anything new (its connection is up, the response
 * head, body bytes, trailers, the end, a failure, room for more request body)
 * through its notify function, which is called only from the session's own
 * event handlers, never from inside nghttp2 or from an API call below; the
 * functions below only queue work and schedule the session.
 */
#ifndef RP_H2_UPSTREAM_H
#define RP_H2_UPSTREAM_H

#include "http/request.h"
#include "upstream/upstream.h"

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>

/* Connections per worker to one server. Past this, requests queue on the least busy
 * session (nghttp2 holds their HEADERS until the peer's MAX_CONCURRENT_STREAMS lets them
 * go), so a worker never opens more than this many connections to one server. */
#define RP_H2U_MAX_SESSIONS 8

/* The most bytes of response fields (head and trailers, decoded) one stream may bring: the
 * HTTP/1 response head buffer's size. A server that sends more gets its stream reset. */
#define RP_H2U_FIELDS_MAX (256 * 1024)

typedef struct rp_h2u_session_s rp_h2u_session_t;
typedef struct rp_h2u_stream_s rp_h2u_stream_t;

struct rp_h2u_stream_s {
    /* ---- read by the owner ---- */
    int status;           /* the final response status, once head is set */
    rp_header_t *headers; /* the response head's regular fields, in the owner's arena */
    unsigned nheaders;
    rp_header_t *trailers; /* trailer fields, once eof is set */
    unsigned ntrailers;
    struct evbuffer *in;       /* response body bytes not yet taken (see rp_h2u_consume) */
    int64_t connect_ms;        /* how long the connection took; 0 when it was open already */
    int sys_errno;             /* with conn_error: what the socket said */
    uint32_t error_code;       /* with closed: the RST_STREAM or GOAWAY code */
    unsigned connected : 1;    /* the connection is up: the request is on its way */
    unsigned head : 1;         /* the final response head is complete */
    unsigned eof : 1;          /* the response ended (END_STREAM) */
    unsigned closed : 1;       /* the stream is over; without eof it failed, and: */
    unsigned refused : 1;      /* ... the server did not process it: it may be sent again */
    unsigned conn_error : 1;   /* ... its connection failed */
    unsigned connecting : 1;   /* ... while being established */
    unsigned timed_out : 1;    /* ... by the connect timeout */
    unsigned sent_headers : 1; /* the request head went out */
    unsigned too_large : 1;    /* reset by us: its fields passed RP_H2U_FIELDS_MAX */
    unsigned handshaking : 1;  /* ... with connecting: in the TLS handshake (or ALPN) */
    const char *tls_error;     /* ... and why, in nginx's words (the owner's arena); NULL:
                                * see sys_errno */

    /* ---- private to h2_upstream.c ---- */
    rp_h2u_session_t *sess;
    int32_t id;
    void *owner;
    void (*notify)(void *owner);
    const struct rp_log_s *log; /* the owner request's error_log, current while notified */
    rp_arena_t *arena;
    const nghttp2_nv *nva; /* the request head until it is submitted */
    size_t nnv;
    unsigned hcap, tcap;
    size_t field_bytes;   /* of the response head and trailers, against RP_H2U_FIELDS_MAX */
    struct evbuffer *out; /* request body bytes not yet framed */
    unsigned has_body : 1;
    unsigned out_eof : 1;
    unsigned deferred : 1;
    unsigned ready : 1;
    unsigned interim : 1;
    rp_h2u_stream_t *prev, *next;   /* the session's streams */
    rp_h2u_stream_t *rprev, *rnext; /* the session's ready list */
};

/* What rp_h2u_open needs to start a stream. */
typedef struct {
    const nghttp2_nv *nva; /* lowercase names, pseudo-header fields first; kept until sent */
    size_t nnv;
    int has_body;            /* request body bytes follow (rp_h2u_send_body) */
    int64_t connect_timeout; /* bounds the TCP connect and the TLS handshake together */
    rp_upstream_tls_t *tls;  /* NULL: cleartext. Sessions are only shared by requests with
                              * the same one (same TLS settings, same checks) */
    rp_arena_t *arena;       /* where the response's fields are copied */
    void (*notify)(void *owner);
    void *owner;
    const struct rp_log_s *log; /* the request's error_log (rp_http_error_log) */
} rp_h2u_request_t;

/*
 * Starts a stream to server s of u: on a session with room under the peer's
 * MAX_CONCURRENT_STREAMS, else on a new connection (up to RP_H2U_MAX_SESSIONS),
 * else queued on the least busy one. Returns NULL when no connection could even
 * be started (errno says why; the failure was counted against s).
 */
rp_h2u_stream_t *rp_h2u_open(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                             const rp_h2u_request_t *q);

/* How many more request body bytes the stream takes now, by the peer's flow-control
 * windows; 0: wait for the next notify. */
size_t rp_h2u_body_room(const rp_h2u_stream_t *st);

/* Queues request body bytes (copied); last ends the request. */
void rp_h2u_send_body(rp_h2u_stream_t *st, const void *data, size_t n, int last);

/* The owner took n bytes from st->in: the server may send that much more. */
void rp_h2u_consume(rp_h2u_stream_t *st, size_t n);

/* The owner is done with st: an unfinished stream is reset (CANCEL). st is gone after. */
void rp_h2u_close(rp_h2u_stream_t *st);

/* Closes the sessions that carry no request (worker stopping or reloading). */
void rp_h2u_close_idle(void);

/* Closes the sessions to s that no request uses (a DNS answer dropped s); the others
 * close once their last request is done. */
void rp_h2u_close_idle_to(rp_upstream_server_t *s);

#endif
