/*
 * HTTP/1.x on a client connection (h1_conn.c), and the byte tunnel a connection
 * becomes after a 101 (h1_tunnel.c). While the connection waits for a request it
 * holds nothing but the connection object; the state below (input buffer,
 * parser, output queue, request arena, write event) is taken from a per-worker
 * free list when bytes arrive and given back when the connection is idle again.
 */
#ifndef RP_H1_H
#define RP_H1_H

#include "core/arena.h"
#include "http/h1_parser.h"
#include "http/request.h"
#include "net/conn.h"

#include <event2/buffer.h>
#include <event2/event_struct.h>

enum {
    RP_H1_HEAD,   /* reading a request head */
    RP_H1_BUSY,   /* a request is being answered (and its body discarded) */
    RP_H1_TUNNEL, /* after a 101: bytes both ways for the tunnel's owner (h1_tunnel.c) */
};

typedef struct rp_h1_s rp_h1_t;

struct rp_h1_s {
    rp_conn_t *c;
    int state;
    char *in; /* head and pipelined bytes; the head of the current request starts at 0 */
    uint32_t in_len, in_cap;
    uint32_t in_pos; /* first byte after the current head */
    struct evbuffer *out;
    struct event wev; /* writable, added only while output is blocked */
    rp_h1_parser_t parser;
    rp_arena_t *arena;
    rp_request_t *r;

    int64_t body_left;     /* Content-Length bytes still to discard */
    int64_t body_received; /* decoded body bytes handed to the content handler */
    rp_chunked_t chunked;
    unsigned body_chunked : 1;    /* discarding a chunked body */
    unsigned close_after : 1;     /* no keep-alive after the current response */
    unsigned response_queued : 1; /* the response is complete on our side */
    unsigned continue_sent : 1;
    unsigned reparse : 1;    /* pipelined bytes wait to be parsed */
    unsigned body_error : 1; /* the body could not be read (see body_status) */

    /* the response under way */
    char *head; /* built by send_head, written with the first body bytes */
    size_t head_len;
    unsigned resp_chunked : 1;   /* the body goes out chunked */
    unsigned resp_close_end : 1; /* the body ends when the connection does */
    int64_t send_timeout;

    /* RP_H1_TUNNEL: after a 101 the connection carries bytes for this owner */
    void (*tunnel)(void *arg, short what);
    void *tunnel_arg;

    rp_h1_t *next_free;
};

/* The handler of every HTTP listening socket: starts TLS where the address has it,
 * then HTTP/2 (ALPN h2) or HTTP/1 (which watches for HTTP/2's preface on a cleartext
 * http2 port). */
void rp_http_init_connection(rp_conn_t *c);

/* Starts HTTP/1 on a connection (cleartext, or TLS that chose http/1.1). */
void rp_h1_start(rp_conn_t *c);

/* Queues bytes as they are for the client: 0, or -1 when the client is gone. */
int rp_h1_write_raw(rp_h1_t *h, const struct iovec *iov, int iovcnt);

/* Writes what is queued; on the end of the queue, moves the connection on. */
void rp_h1_write_out(rp_h1_t *h);

/* The write event's handler, for the tunnel too. */
void rp_h1_on_write(evutil_socket_t fd, short what, void *arg);

extern const rp_conn_proto_t rp_h1_tunnel_proto;

/* The `what` of the tunnel's callback when the worker is about to close every
 * connection (rp_conn_proto_t.goodbye): last words, written at once or not at all. */
#define RP_TUNNEL_GOODBYE 0x4000

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

#endif
