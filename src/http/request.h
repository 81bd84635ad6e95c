/*
 * The protocol-neutral request: what HTTP/1 and HTTP/2 hand to the phases, and
 * the response the phases hand back. A request lives in its own arena, reset
 * between requests on a connection so a warm keep-alive connection allocates
 * nothing.
 *
 * Modules keep their per-request state in r->ctx[module.index] and register
 * cleanups that run, newest first, on every ending of the request: completion,
 * the client gone, a timeout, a reset stream, the worker stopping. A handler may
 * suspend the request (RP_AGAIN) and resume it later with rp_http_resume(), from
 * a timer (rp_http_timer_*) or any event; its timers are cancelled by the
 * cleanups if the request ends first.
 *
 * The protocol carrying the request is a table of functions (rp_http_proto_t):
 * the request API below calls through it and never asks which protocol it is.
 */
#ifndef RP_REQUEST_H
#define RP_REQUEST_H

#include "core/arena.h"
#include "core/str.h"
#include "http/http.h"
#include "net/conn.h"

#include <stdint.h>
#include <sys/time.h>
#include <sys/uio.h>

typedef struct {
    rp_str_t name, value;
} rp_header_t;

/* What the protocol carrying a request does for it. */
typedef struct {
    const char *name;
    /* The end of the header filter chain: send (or prepare) r's head, built from
     * r->status, r->out_headers and r->out_length. 0, or -1 when it cannot be sent. */
    int (*send_head)(rp_request_t *r);
    /* The end of the body filter chain: body bytes (dropped for HEAD), then the end
     * with RP_BODY_LAST. 0, or -1 when the client is gone. */
    int (*send_body)(rp_request_t *r, const struct iovec *iov, int iovcnt, unsigned flags);
    /* Sends a head no body bytes carried out yet (HTTP/1 holds it for the first write). */
    int (*flush_head)(rp_request_t *r);
    int (*head_sent)(const rp_request_t *r);
    void (*abort)(rp_request_t *r);
    size_t (*pending)(const rp_request_t *r);
    int (*read_body)(rp_request_t *r, char *buf, size_t cap, size_t *n);
    void (*close_now)(rp_request_t *r);
    int (*trailers)(rp_request_t *r, const rp_header_t *h, unsigned n);
} rp_http_proto_t;

/* A request body read whole and kept in memory (request_body.c); shared by reference
 * with subrequests, freed by its last holder. */
typedef struct rp_http_body_s rp_http_body_t;

typedef struct rp_http_cleanup_s rp_http_cleanup_t;
struct rp_http_cleanup_s {
    void (*fn)(rp_request_t *r, void *data);
    void *data;
    rp_http_cleanup_t *next;
};

/* A variable's value in a request: found or not, and cached or to evaluate again. */
typedef struct {
    rp_str_t value;
    unsigned valid : 1;
    unsigned not_found : 1;
    unsigned assigned : 1; /* by `set` or a capture: kept even if evaluated at every use */
} rp_var_value_t;

struct rp_request_s {
    rp_conn_t *conn;
    /* The client's address: the connection's, or the one the realip module found
     * (set_real_ip_from ...), which $remote_addr, limits and logs then see. */
    const rp_sockaddr_t *peer;
    rp_arena_t *arena;
    const rp_http_proto_t *proto;
    void *pdata; /* the protocol's per-request state (an HTTP/2 stream) */

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
    unsigned head : 1;     /* HEAD: no body in the response */
    unsigned grpc : 1;     /* a grpc_pass request: rampart's own errors are gRPC statuses */
    unsigned internal : 1; /* reached its location by an internal redirect, or a subrequest */
    unsigned subrequest : 1; /* made by rp_http_subrequest: no client of its own */
    unsigned uri_changed : 1;  /* POST_REWRITE finds the location again */
    unsigned uri_rewritten : 1; /* the URI or arguments are no longer the ones sent */
    unsigned location_rewritten : 1; /* `rewrite ... break` changed the URI inside its
                                      * location: a proxy_pass URI part no longer applies */
    unsigned no_body : 1;      /* the head is the whole response (gRPC trailers-only) */
    unsigned ended : 1;        /* cleanups and log done */
    unsigned posted : 1;       /* on the worker's queue of requests to wake */
    unsigned post_run : 1;     /* ... to run its phases */
    unsigned post_drain : 1;   /* ... to tell its producer the output drained */
    uint8_t uri_changes;       /* internal redirects left before a cycle is assumed */
    int16_t access_code;       /* satisfy any: the denial kept while the phase goes on */

    rp_http_core_srv_conf_t *srv;
    rp_http_core_loc_conf_t *clcf;
    void **loc_conf;
    int phase;
    size_t handler;

    void **ctx; /* per module, by index: rp_http_get_ctx / rp_http_set_ctx */
    rp_http_cleanup_t *cleanups;
    rp_var_value_t *vars; /* the variables of the configuration, by index; NULL until used */
    unsigned nvars;

    /* the captures of the last regex that matched (location, server name): $1..$9 */
    size_t *captures; /* start and end offsets in captures_subject, pairs */
    unsigned ncaptures; /* pairs */
    rp_str_t captures_subject;

    /* response */
    int status;
    /* The status the response goes out with whatever its producer sets (error_page's
     * answer code, as nginx's err_status); 0: the producer's own. */
    int err_status;
    unsigned error_page : 1;  /* an error page was looked for: later errors are plain */
    rp_str_t reason;          /* the reason phrase, when not rampart's own for status */
    const char *error_title;  /* the title of rampart's error page, when not the reason */
    rp_header_t *out_headers; /* in the request arena, grown as needed */
    unsigned nout_headers, out_cap;
    int64_t out_length;      /* the body's length as the head will say; -1 unknown */
    int64_t body_bytes_sent; /* what reached the protocol, after the filters */
    int64_t bytes_sent;      /* $bytes_sent: head, body and framing handed to the connection */
    int64_t request_length;  /* $request_length: head and body bytes as received */
    size_t held;             /* body bytes filters hold back (rp_http_pending counts them) */
    struct evbuffer *pre;    /* body written while a header filter waits */
    unsigned pre_flags;
    unsigned response_started : 1;
    unsigned header_sent : 1;  /* the header filters ran */
    unsigned head_waiting : 1; /* a header filter returned RP_AGAIN: the head is not out yet */
    unsigned logged : 1;
    unsigned metrics_writing : 1; /* counted as being processed (metrics.h) */
    struct timeval start;
    char request_id[33]; /* made on first use of $request_id */
    /* The W3C trace context of rampart's hop (observe/trace_context.c), made on first
     * use: "00-<trace-id>-<span-id>-<flags>" as sent upstream, the client's parent-id,
     * and the client's tracestate to pass on. */
    struct {
        uint8_t state;      /* RP_TRACE_UNSET, RP_TRACE_OFF or RP_TRACE_MADE */
        uint8_t mode;       /* the location's trace_context when it was made */
        uint8_t has_parent; /* the client sent a valid traceparent */
        char traceparent[56];
        char parent[16];
        rp_str_t tracestate; /* empty: none to pass on */
    } trace;

    /* Set by a content handler that waits: for body bytes from the client, or for the
     * response to drain (back-pressure). Each is cleared before it is called. */
    void (*on_body)(rp_request_t *r);
    void (*on_drain)(rp_request_t *r);
    int body_status; /* after rp_http_read_body failed: 400, 413, or 0 for a client gone */
    rp_http_body_t *body; /* the body read whole (rp_http_keep_body); NULL: read as it comes */
    size_t body_read;     /* how much of the kept body rp_http_read_body handed out */

    rp_request_t *post_next, *post_prev; /* the resume queue */
};

/* ---- the request's life ---- */

/* A new request on c in arena a, carried by proto. Its clock starts now. */
rp_request_t *rp_http_request_new(rp_conn_t *c, rp_arena_t *a, const rp_http_proto_t *proto);

/*
 * Picks r's server by its host (through the connection's address), checks the TLS
 * client certificate, and runs the phases. The protocol calls it once the head
 * parsed; status (if not 0) is a refusal found while parsing (400 ...), answered
 * from the chosen server with reason why logged.
 */
void rp_http_process_request(rp_request_t *r, int status, const char *why);

/* Runs the phases from where the request stopped; call again to resume after RP_AGAIN. */
void rp_http_run_phases(rp_request_t *r);

/* Resumes a suspended request's phases from the event loop, soon (never from within the
 * caller's stack). A request that ends before then is not resumed. */
void rp_http_resume(rp_request_t *r);

/* Queues r to be woken from the event loop: its phases (run) and/or its producer's
 * on_drain (drain, if the output is drained by then). */
void rp_http_post(rp_request_t *r, int run, int drain);

/*
 * Restarts r's processing at uri and args (internal redirect): the phases run again
 * from SERVER_REWRITE, module contexts are cleared, and at most 10 redirects happen
 * before the request fails with 500. Returns RP_AGAIN for the calling handler to
 * return: the phases resume from the loop.
 */
int rp_http_internal_redirect(rp_request_t *r, rp_str_t uri, rp_str_t args);

/*
 * Continues r in the server's `location @name` (name with its "@"), as nginx: the URI,
 * the arguments and the method stay, module contexts are cleared, the phases run again
 * from REWRITE in that location, and it counts against the 10 redirects. Returns
 * RP_AGAIN for the calling handler to return, or RP_DONE when r was answered (500: no
 * such location, or too many redirects).
 */
int rp_http_named_redirect(rp_request_t *r, rp_str_t name);

/* The server's `location @name` (name with its "@"), or NULL. */
rp_http_core_loc_conf_t *rp_http_named_location(rp_request_t *r, rp_str_t name);

/* Registers fn(r, data) to run once when r ends, before its log phase; the most
 * recently added runs first. The result may be disarmed by setting its fn to NULL. */
rp_http_cleanup_t *rp_http_cleanup_add(rp_request_t *r, void (*fn)(rp_request_t *r, void *data),
                                      void *data);

/* Runs (and forgets) r's cleanups now: a handler is about to answer in their place. */
void rp_http_run_cleanups(rp_request_t *r);

/* The request's exchange is over (complete, client gone, reset, timed out, worker
 * stopping): runs its cleanups, then its log phase. Idempotent. */
void rp_http_request_end(rp_request_t *r);

/* Runs the log phase's handlers once, when the request's exchange is over. */
void rp_http_log_request(rp_request_t *r);

#define rp_http_get_ctx(r, module)      ((r)->ctx[(module).index])
#define rp_http_set_ctx(r, module, val) ((r)->ctx[(module).index] = (val))

/* ---- timers that belong to a request ---- */

typedef struct rp_http_timer_s rp_http_timer_t;

/* A timer of r calling fn(r, data) when it expires; the request's end cancels it. */
rp_http_timer_t *rp_http_timer_new(rp_request_t *r, void (*fn)(rp_request_t *r, void *data),
                                   void *data);
void rp_http_timer_add(rp_http_timer_t *t, int64_t ms);
void rp_http_timer_del(rp_http_timer_t *t);
int rp_http_timer_pending(const rp_http_timer_t *t);

/* Suspends r's phases for ms milliseconds: returns RP_AGAIN for the handler to return;
 * the handler is called again when the time is up (its context tells it it slept). */
int rp_http_sleep(rp_request_t *r, int64_t ms);

/* ---- the request's fields ---- */

/* Looks up a request header (case-insensitive); returns its value or a NULL string. */
rp_str_t rp_request_header(const rp_request_t *r, const char *lower_name);

/* The user and password of an "Authorization: Basic" field (auth_basic_module.c), in
 * request memory: 0, or -1 when there is none or it is malformed. */
int rp_http_basic_credentials(rp_request_t *r, rp_str_t *user, rp_str_t *pw);

/* Adds a response header; name and value must live until the head is built. */
void rp_http_add_header(rp_request_t *r, rp_str_t name, rp_str_t value);

/* The response header named (case-insensitive), or NULL. */
rp_header_t *rp_http_out_header(rp_request_t *r, const char *lower_name);

/* The current time as an HTTP date, for the Date field (29 characters). */
const char *rp_http_date(void);

/* The client's address as text ($remote_addr). */
rp_str_t rp_http_remote_addr(rp_request_t *r);

/*
 * Producing a response and reading the request body, whatever the protocol.
 *
 * A content handler that streams sets r->status and the headers, calls begin()
 * once with the body's length (-1: not known), write() for each piece of the
 * body, then end(); or abort() when the response can never be completed: the
 * client then sees it cut (a reset stream, a short or reset connection), never a
 * truncated body framed as complete. After end() or abort() the request may
 * already be freed. The head and body pass through the filter chains on their
 * way; the protocol frames the body: HTTP/1.1 chunks a body of unknown length,
 * HTTP/1.0 ends it with the connection, HTTP/2 ends the stream.
 */

/* Runs the header filters and hands the head to the protocol. Returns 0, or -1 when
 * the head cannot be sent (too large: nothing was sent, answer 502). */
int rp_http_response_begin(rp_request_t *r, int64_t content_length);

/* Whether the response head has left for the client; until then the handler may still
 * replace the response with rp_http_send_error(). */
int rp_http_head_sent(const rp_request_t *r);

/* Sends a head that no body bytes carried out yet. 0, or -1 when the client is gone. */
int rp_http_flush_head(rp_request_t *r);

/* Sends body bytes through the body filters. 0, or -1 when the client is gone (then
 * abort()). */
int rp_http_write(rp_request_t *r, const struct iovec *iov, int iovcnt);

/* Tells the filters the producer has nothing more for now (a compressor flushes). */
int rp_http_flush(rp_request_t *r);

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
 * For the protocols and for filters that hold data: the output of r drained. Calls
 * r->on_drain (cleared first) unless a filter still holds bytes.
 */
void rp_http_drained(rp_request_t *r);

/* For a filter that held bytes and let them go: wakes the producer if the output is
 * drained (from the event loop, not the filter's stack). */
void rp_http_filter_drained(rp_request_t *r);

/*
 * For a header filter that returned RP_AGAIN (it waits for something before the head
 * may go on): passes the head on to the filter after self, then what the producer
 * wrote meanwhile (held until now), and wakes the producer. Returns 0, or -1 when the
 * response could not be completed (it was aborted).
 */
int rp_http_header_resume(rp_request_t *r, const rp_http_header_filter_t *self);

/*
 * Reads decoded request-body bytes into buf[0..cap). Returns 1 when the body is
 * complete, 0 when more will come (*n may be 0: then r->on_body is called when
 * the client sends more), -1 when it cannot be read (r->body_status says why).
 * Over HTTP/1 the first call answers "Expect: 100-continue"; over HTTP/2 the
 * stream's flow-control window reopens only as the body is read.
 */
int rp_http_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n);

/*
 * Reads r's whole request body into memory and keeps it there (client_max_body_size
 * bounds it, as it bounds any body): from then on rp_http_read_body serves it from its
 * start, to whichever handler reads it, and subrequests may share it
 * (RP_HTTP_SUB_BODY). Call from a phase handler and return what it returns unless it
 * is RP_OK: RP_OK once the body is kept (at once when it already is, or when the
 * request has none), RP_AGAIN while bytes are still to come (the phases resume, and
 * call the handler again, when the body is complete), RP_DONE when it could not be
 * read and the request was answered (400, 413, 408) or cut (the client gone).
 */
int rp_http_keep_body(rp_request_t *r);

/*
 * rp_http_keep_body with a memory bound (proxy_request_buffering): once more than
 * mem_max bytes are held in memory they move to a temporary file in temp_dir
 * (mem_max 0: every byte goes to the file). Same returns; a file that cannot be
 * written answers 500.
 */
int rp_http_keep_body_spill(rp_request_t *r, size_t mem_max, const char *temp_dir);

/* A temporary file in dir, unlinked at once (O_TMPFILE where the file system has it):
 * nothing is left on disk whatever happens to the process. The descriptor, or -1. */
int rp_temp_file_open(const char *dir);

/* Whether r's body is kept whole (or r has none): rp_http_keep_body returned RP_OK. */
int rp_http_body_kept(const rp_request_t *r);

/* The kept body's length (0 for none). */
size_t rp_http_kept_body_length(const rp_request_t *r);

/* Ends the request without a response (return 444): the connection closes, or the
 * stream is reset. */
void rp_http_close_now(rp_request_t *r);

/* ---- subrequests (subrequest.c) ---- */

/* How a subrequest's response is consumed (one of), and what it takes from its parent. */
#define RP_HTTP_SUB_BACKGROUND 0x01u /* discarded as it comes; the subrequest is detached */
#define RP_HTTP_SUB_BODY       0x10u /* it sends the parent's kept body (rp_http_keep_body) */

/*
 * Makes a subrequest of parent for uri (a normalized path) and args (the query
 * string, without "?"), both copied: a request with no client connection of its own
 * that runs the phases of parent's server from SERVER_REWRITE (a location is chosen
 * for uri; `internal` locations are reachable) to its content and log phases. It is a
 * GET carrying copies of parent's header fields (but the connection-level ones), its
 * $request_uri and $request_id; with RP_HTTP_SUB_BODY it sends parent's kept body
 * (which must be complete), else none. Set (*out)'s method with
 * rp_http_subrequest_method before returning to the event loop: the subrequest starts
 * from the loop, never from within the caller.
 *
 * RP_HTTP_SUB_BACKGROUND: the response is discarded as it arrives, and the subrequest
 * is detached from parent and its connection, which it never touches: it has its own
 * arena and stand-in connection (rp_conn_detached), parent may end, be logged and its
 * connection reused or closed meanwhile, and the subrequest frees itself when its own
 * exchange ends (its handlers' timeouts bound it; a fast stop or
 * worker_shutdown_timeout ends it). Its log phase runs as any request's (access_log
 * skips it unless log_subrequest is on).
 *
 * Returns RP_OK with *out set, or RP_ERROR (logged): parent has no connection to
 * stand in for, or the flags ask for what is not there.
 */
int rp_http_subrequest(rp_request_t *parent, rp_str_t uri, rp_str_t args, unsigned flags,
                       rp_request_t **out);

/* For subrequest.c: sr holds a reference to parent's complete kept body, which it reads
 * from the start; the reference goes when sr ends. */
void rp_http_body_share(rp_request_t *parent, rp_request_t *sr);

/*
 * Has fn(sr, data) called once when sr's exchange is over (its response ended, failed,
 * or the worker's stop ended it): sr's status (0 when no response began), out_headers
 * and variables can be read then, not later (copy what is needed). A NULL fn takes a
 * callback back: a parent that ends first must do so from its cleanup.
 */
void rp_http_subrequest_on_done(rp_request_t *sr, void (*fn)(rp_request_t *sr, void *data),
                                void *data);

/* Sets a subrequest's method (copied; HEAD makes it a HEAD request). */
void rp_http_subrequest_method(rp_request_t *sr, rp_str_t method);

/* Whether a response with this status carries a body. */
int rp_http_status_has_body(int status);

/*
 * Sends a complete response with the given body (copied). content_type may be a
 * NULL string for none. Returns RP_DONE for a phase handler to pass on.
 */
int rp_http_send_response(rp_request_t *r, int status, rp_str_t content_type, rp_str_t body);

/* Sends rampart's own page for an error status (or a redirect's bare page), unless the
 * error hook answers in its place. Returns RP_DONE, or what the hook returned (RP_AGAIN
 * after an internal redirect: a phase handler returns it as it would RP_DONE). */
int rp_http_send_error(rp_request_t *r, int status);

/*
 * The error hook: a module (error_page) that may answer an error status its own way
 * (an internal redirect, a redirect). It returns RP_DECLINED for rampart's own page,
 * else what rp_http_send_error returns. NULL: none.
 */
extern int (*rp_http_error_hook)(rp_request_t *r, int status);

/* rampart's own page for status, the error hook bypassed. */
int rp_http_send_error_page(rp_request_t *r, int status);

/* For directives that add header fields: NULL when name is a valid field name and the
 * value holds no line break, else the error to return. */
const char *rp_conf_check_header(rp_conf_t *cf, const char *name, const char *value);

/* The reason phrase of a status, "" for unknown ones. */
const char *rp_http_reason(int status);

#endif
