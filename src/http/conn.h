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
#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/socket.h>

struct rp_listening_s;

struct rp_conn_s {
    int fd;
    int state;
    struct event io;  /* readable */
    struct event wio; /* writable, added only while output is blocked */
    struct event timer;
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct sockaddr_storage local;
    socklen_t locallen;
    rp_http_addr_t *addr;

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
