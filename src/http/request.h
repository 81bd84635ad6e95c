/*
 * The protocol-neutral request: what HTTP/1 (and later HTTP/2) hand to the
 * phases, and the response the phases hand back. A request lives in its own
 * arena, reset between requests on a connection so a warm keep-alive
 * connection allocates nothing.
 */
#ifndef RP_REQUEST_H
#define RP_REQUEST_H

#include "core/arena.h"
#include "core/str.h"
#include "http/http.h"

#include <stdint.h>
#include <sys/time.h>
#include <sys/uio.h>

typedef struct {
    rp_str_t name, value;
} rp_header_t;


struct rp_request_s {
    rp_conn_t *conn;
    rp_arena_t *arena;

    rp_str_t method;
    rp_str_t request_uri; /* the target as sent */
    rp_str_t uri;         /* decoded, normalized path */
    rp_str_t args;        /* after "?", raw */
    rp_str_t host;        /* normalized: lowercase, no port */
    rp_str_t scheme;
    int version; /* 10, 11, 20 */
    rp_header_t *headers;
    unsigned nheaders;

    int64_t content_length; /* -1 when absent */
    unsigned chunked : 1;
    unsigned keepalive : 1;
    unsigned expect_continue : 1;
    unsigned head : 1; /* HEAD: no body in the response */
    unsigned grpc : 1; /* a grpc_pass request: rampart's own errors are gRPC statuses */

    rp_http_core_srv_conf_t *srv;
    rp_http_core_loc_conf_t *clcf;
    void **loc_conf;
    int phase;
    size_t handler;

    /* response */
    int status;
    rp_str_t reason; /* the reason phrase, when not rampart's own for status */
    const char *error_title; /* the title of rampart's error page, when not the reason */
    rp_header_t *out_headers; /* in the request arena, grown as needed */
    unsigned nout_headers, out_cap;
    int64_t body_bytes_sent;
    unsigned response_started : 1;
    unsigned logged : 1;
    struct timeval start;
    char request_id[33]; /* made on first use of $request_id */

    /* HTTP/2: the stream carrying this request; NULL on HTTP/1. */
    struct rp_h2_stream_s *stream;

    /* Set by a content handler that waits: for body bytes from the client, or for the
     * response to drain (back-pressure). Each is cleared before it is called. */
    void (*on_body)(rp_request_t *r);
    void (*on_drain)(rp_request_t *r);
    int body_status; /* after rp_http_read_body failed: 400, 413, or 0 for a client gone */

    /* The proxy's record, one entry per upstream attempt joined by ", " as nginx does:
     * $upstream_addr, $upstream_status, $upstream_connect_time, $upstream_response_time. */
    rp_str_t upstream_addr, upstream_status, upstream_connect_time, upstream_response_time;
    void *upstream;       /* the proxy's per-request state */
    rp_str_t proxy_host;  /* $proxy_host */
    /* Called once when the request ends for any reason (completed, client gone, worker
     * stopping), before the log phase: releases what lives outside the request arena. */
    void (*cleanup)(rp_request_t *r);
};

/* Looks up a request header (case-insensitive); returns its value or a NULL string. */
rp_str_t rp_request_header(const rp_request_t *r, const char *lower_name);

/* Runs the log phase's handlers once, when the request's exchange is over. */
void rp_http_log_request(rp_request_t *r);

/* Runs the phases from where the request stopped; call again to resume after RP_AGAIN. */
void rp_http_run_phases(rp_request_t *r);

/* Adds a response header; name and value must live until the head is built. */
void rp_http_add_header(rp_request_t *r, rp_str_t name, rp_str_t value);

/*
 * Serializes r's response head (status line, Server, Date, r->out_headers after
 * the header filters, framing, Connection) into buf[0..cap) and decides whether
 * the connection stays open. content_length < 0 with chunked 0 means a
 * close-delimited body. Returns the length, or 0 when it does not fit.
 */
size_t rp_http_build_head(rp_request_t *r, char *buf, size_t cap, int64_t content_length,
                          int chunked);

/* Whether the connection may carry another request after r's response. */
int rp_http_keepalive(rp_request_t *r);

/* A worker-wide scratch buffer for response heads; valid until the next call. */
#define RP_HEAD_MAX (256 * 1024)
extern char rp_http_head_buf[RP_HEAD_MAX];

/* Response header filters, run once per response before its head is built. */
typedef void (*rp_header_filter_pt)(rp_request_t *r);
extern rp_header_filter_pt rp_http_header_filters[4];

/* Runs the header filters; once per response, by the code that serializes its head. */
void rp_http_run_header_filters(rp_request_t *r);

/* The current time as an HTTP date, for the Date field (29 characters). */
const char *rp_http_date(void);

/*
 * Producing a response and reading the request body, whatever the protocol.
 *
 * A content handler that streams sets r->status and the headers, calls begin()
 * once with the body's length (-1: not known), write() for each piece of the
 * body, then end(); or abort() when the response can never be completed: the
 * client then sees it cut (a reset stream, a short or reset connection), never a
 * truncated body framed as complete. After end() or abort() the request may
 * already be freed. The protocol frames the body: HTTP/1.1 chunks a body of
 * unknown length, HTTP/1.0 ends it with the connection, HTTP/2 ends the stream.
 *
 * HTTP/1 serializes the head into rp_http_head_buf and sends it with the first
 * body bytes: the first write(), flush_head() or end() must come before the
 * handler returns to the event loop.
 */

/* Returns 0, or -1 when the head does not fit (nothing was sent: answer 502). */
int rp_http_response_begin(rp_request_t *r, int64_t content_length);

/* Whether the response head has left for the client; until then the handler may still
 * replace the response with rp_http_send_error(). */
int rp_http_head_sent(const rp_request_t *r);

/* Sends a head that no body bytes carried out yet. 0, or -1 when the client is gone. */
int rp_http_flush_head(rp_request_t *r);

/* Sends body bytes. 0, or -1 when the client is gone (then abort()). */
int rp_http_write(rp_request_t *r, const struct iovec *iov, int iovcnt);

void rp_http_response_end(rp_request_t *r);
void rp_http_abort(rp_request_t *r);

/*
 * Trailer fields after the body (gRPC's grpc-status): call after the last write() and
 * before end(). The strings must live as long as the request. Returns 0, or -1 when
 * they cannot be carried (HTTP/1, a response without body): they are dropped.
 */
int rp_http_response_trailers(rp_request_t *r, const rp_header_t *h, unsigned n);

/*
 * A complete response without body whose head also carries h: over HTTP/2 a single
 * HEADERS frame that ends the stream (gRPC's "trailers-only"), over HTTP/1 the fields
 * in a head with Content-Length: 0. Replaces begin() and end(): the request may be
 * freed after it.
 */
void rp_http_response_trailers_only(rp_request_t *r, const rp_header_t *h, unsigned n);

/* Non-zero while the handler should stop producing and wait for r->on_drain. */
size_t rp_http_pending(const rp_request_t *r);

/*
 * Reads decoded request-body bytes into buf[0..cap). Returns 1 when the body is
 * complete, 0 when more will come (*n may be 0: then r->on_body is called when
 * the client sends more), -1 when it cannot be read (r->body_status says why).
 * Over HTTP/1 the first call answers "Expect: 100-continue"; over HTTP/2 the
 * stream's flow-control window reopens only as the body is read.
 */
int rp_http_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n);

/* Ends the request without a response (return 444): the connection closes, or the
 * stream is reset. */
void rp_http_close_now(rp_request_t *r);

/* Whether a response with this status carries a body. */
int rp_http_status_has_body(int status);

/*
 * Sends a complete response with the given body (copied). content_type may be a
 * NULL string for none. Returns RP_DONE for a phase handler to pass on.
 */
int rp_http_send_response(rp_request_t *r, int status, rp_str_t content_type, rp_str_t body);

/* Sends rampart's own page for an error status (or a redirect's bare page). */
int rp_http_send_error(rp_request_t *r, int status);

/* For directives that add header fields: NULL when name is a valid field name and the
 * value holds no line break, else the error to return. */
const char *rp_conf_check_header(rp_conf_t *cf, const char *name, const char *value);

/* The reason phrase of a status, "" for unknown ones. */
const char *rp_http_reason(int status);

#endif
