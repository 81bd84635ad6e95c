/*
 * One request proxied over HTTP/2 (proxy_pass to an `http2` group, and
 * grpc_pass): pick a server, take a stream from the session pool
 * (h2_upstream.c), send the request head built from the request and the
 * location's header rules, stream the body both ways, and pass the response
 * head, body and trailers to the client.
 *
 * Retries follow the HTTP/1 proxy's: a connection that cannot be established
 * counts against its server and the request moves to the next one; a stream the
 * server refused without processing it (REFUSED_STREAM, or above the last
 * stream id of a GOAWAY), and a request whose connection died before its head
 * went out, are sent again on another connection without counting a failure,
 * provided no body byte was taken from the client yet. Everything else before
 * the response head is a 502 (504 for a timeout), and after it the client sees
 * the response cut.
 *
 * Back-pressure both ways: the client body is read only as the server's
 * flow-control windows allow, and the stream's receive window reopens only as
 * the client takes the response. proxy_limit_rate paces the response the same way:
 * over the rate, the stream's bytes are left where they are (its window stays shut,
 * so the server stops sending on this stream, not on the others of the connection)
 * until a timer of the request says the next piece is allowed.
 *
 * For a gRPC call the exchange also keeps the client's grpc-timeout (sent on
 * reduced by the time already spent; when it runs out the upstream stream is
 * cancelled and the client gets DEADLINE_EXCEEDED), passes trailers, and turns
 * its own failures into gRPC statuses: UNAVAILABLE when no server could be
 * reached, INTERNAL for the rest; after the head these go as trailers.
 */
#include "upstream/proxy_h2.h"
#include "upstream/attempt.h"
#include "upstream/breaker.h"
#include "http/error_log.h"
#include "core/log.h"
#include "core/time.h"
#include "http/error_page.h"
#include "http/grpc.h"
#include "http/h1_parser.h"
#include "upstream/h2_upstream.h"
#include "upstream/hedge.h"
#include "upstream/upstream_choose.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MAX_RETRIES 16          /* refused streams sent again: a GOAWAY storm, not a loop */
#define TAKE_MAX    (64 * 1024) /* response bytes handed to the client per write */

enum { T_NONE, T_SEND, T_READ };

typedef struct xchg_s {
    rp_request_t *r;
    rp_proxy_loc_conf_t *plcf;
    rp_upstream_conf_t *ups;
    rp_upstream_tls_t *tls;     /* how to talk TLS to ups (rp_proxy_choose); NULL: cleartext */
    rp_h2u_stream_t *st;
    rp_attempt_t at; /* at.peer: the server of the current attempt */
    unsigned retries;
    int timer_mode;
    unsigned grpc : 1;
    unsigned has_body : 1;
    unsigned client_done : 1; /* the client's body was read whole */
    unsigned body_done : 1;   /* ... and went to the current stream */
    unsigned head_out : 1;    /* the response began towards the client */
    unsigned finished : 1;
    unsigned connect_recorded : 1;
    unsigned has_deadline : 1;
    unsigned in_step : 1;
    unsigned step_again : 1;
    unsigned paced : 1;       /* over proxy_limit_rate: rate_timer steps on */
    int64_t deadline; /* ms since the epoch */
    rp_str_t target;
    size_t replay_off;       /* how much of the kept body (x->at) the current stream got */
    struct event timer, deadline_ev;
    rp_http_timer_t *backoff; /* the wait before the next try */
    /* hedging (hedge.h): the other try racing this one, until a response head came */
    struct xchg_s *sibling;
    rp_http_timer_t *hedge_timer;
    /* proxy_limit_rate: when the body began, what was taken of it since, the resume */
    int64_t rate_start, rate_taken;
    rp_http_timer_t *rate_timer;
} xchg_t;

/* A worker-wide scratch for client body bytes on their way. */
static char scratch[65536];

static void step(xchg_t *x);

static void add_timer(struct event *ev, int64_t ms)
{
    rp_timer_add(ev, ms);
}

/* nginx's error-log context: who asked for what, and where it was going. */
static void log_upstream(xchg_t *x, int level, const char *what, int err, const char *where)
{
    const char *scheme = x->tls ? (x->r->grpc ? "grpcs" : "https") : (x->r->grpc ? "grpc" : "http");
    rp_proxy_log_error(x->r, level, what, err, where, scheme,
                       x->at.peer ? x->at.peer->name : x->ups->name, x->target);
}

/* Lets go of the current attempt's stream and server. */
static void release(xchg_t *x)
{
    if (x->st) {
        rp_h2u_close(x->st);
        x->st = NULL;
    }
    rp_attempt_end(&x->at, RP_ATTEMPT_INCOMPLETE, NULL); /* if still open */
}

/* The exchange is over for rampart; what remains is the client's side. */
static void done(xchg_t *x)
{
    rp_request_t *r = x->r;
    x->finished = 1;
    release(x);
    event_del(&x->timer);
    event_del(&x->deadline_ev);
    r->on_body = NULL;
    r->on_drain = NULL;
}

static void cleanup(rp_request_t *r, void *data)
{
    xchg_t *x = data;
    done(x);
    rp_attempt_done(&x->at);
}

/* Whether another try of the request (a hedge) is still running. */
static int racing(const xchg_t *x)
{
    return x->sibling && !x->sibling->finished;
}

/* Ends this try quietly: its sibling goes on for the request. */
static void leave_race(xchg_t *x)
{
    xchg_t *o = x->sibling;
    x->finished = 1;
    release(x);
    event_del(&x->timer);
    o->sibling = NULL;
    x->sibling = NULL;
    if (rp_proxy_ctx(x->r)->exchange == x)
        rp_proxy_ctx(x->r)->exchange = o;
}

/* Before the response began: rampart's own answer (a gRPC status for a gRPC call). */
static void fail(xchg_t *x, int status, int grpc_code, const char *message)
{
    rp_request_t *r = x->r;
    if (racing(x)) {
        leave_race(x); /* the client's answer is the other try's */
        return;
    }
    done(x);
    r->nout_headers = 0;
    r->response_started = 0;
    if (x->grpc)
        rp_grpc_send_error(r, grpc_code, message);
    else
        rp_http_send_error(r, status);
}

/* After the response began: a gRPC client gets the status as trailers where the
 * protocol carries them; anyone else sees the response cut. */
static void cut(xchg_t *x, int grpc_code, const char *message)
{
    rp_request_t *r = x->r;
    if (!rp_http_head_sent(r)) {
        /* nothing reached the client yet (HTTP/1 sends the head with the body) */
        fail(x, 502, grpc_code, message);
        return;
    }
    done(x);
    if (x->grpc) {
        rp_header_t t[2];
        rp_grpc_status_fields(r, grpc_code, message, t);
        if (rp_http_response_trailers(r, t, 2) == 0) {
            rp_http_response_end(r);
            return;
        }
    }
    rp_http_abort(r);
}

/* ---- the request head ---- */

static rp_str_t lower(rp_arena_t *a, rp_str_t n)
{
    size_t i = 0;
    while (i < n.len && !(n.data[i] >= 'A' && n.data[i] <= 'Z'))
        i++;
    if (i == n.len)
        return n;
    char *d = rp_arena_alloc(a, n.len);
    for (i = 0; i < n.len; i++) {
        char ch = n.data[i];
        d[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    return (rp_str_t){d, n.len};
}

static nghttp2_nv nv(rp_str_t name, rp_str_t value)
{
    return (nghttp2_nv){(uint8_t *)name.data, (uint8_t *)value.data, name.len, value.len,
                        NGHTTP2_NV_FLAG_NONE};
}

/* The request head: pseudo-header fields, the location's fields, then the client's. */
static nghttp2_nv *build_head(xchg_t *x, size_t *count)
{
    rp_request_t *r = x->r;
    rp_proxy_loc_conf_t *plcf = x->plcf;
    rp_arena_t *a = r->arena;
    nghttp2_nv *nva = rp_arena_alloc(a, sizeof(*nva) * (8 + plcf->nheaders + r->nheaders));
    size_t n = 4;
    rp_proxy_fields_t fl;
    rp_proxy_request_fields(r, plcf, RP_PROXY_FIELDS_H2, &fl);
    for (unsigned i = 0; i < fl.n; i++) {
        if (x->has_deadline && rp_str_ieq(fl.f[i].name, "grpc-timeout"))
            continue; /* sent below, reduced by the time spent here */
        nva[n++] = nv(lower(a, fl.f[i].name), fl.f[i].value);
    }
    int te = fl.te_trailers;
    if (te)
        nva[n++] = nv(RP_STR("te"), RP_STR("trailers"));
    if (x->grpc && !te)
        nva[n++] = nv(RP_STR("te"), RP_STR("trailers"));
    if (r->content_length >= 0 && !r->chunked && x->plcf->pass_request_body) {
        char *cl = rp_arena_alloc(a, 24);
        int k = snprintf(cl, 24, "%lld", (long long)r->content_length);
        nva[n++] = nv(RP_STR("content-length"), (rp_str_t){cl, (size_t)k});
    }
    if (x->has_deadline) {
        char *t = rp_arena_alloc(a, 16);
        size_t k = rp_grpc_timeout_format(x->deadline - rp_time_ms(), t);
        nva[n++] = nv(RP_STR("grpc-timeout"), (rp_str_t){t, k});
    }
    nva[0] = nv(RP_STR(":method"), r->method);
    /* as nginx: the scheme of the connection to the server */
    nva[1] = nv(RP_STR(":scheme"), x->tls ? RP_STR("https") : RP_STR("http"));
    nva[2] = nv(RP_STR(":authority"), fl.host);
    nva[3] = nv(RP_STR(":path"), x->target);
    *count = n;
    return nva;
}

/* ---- attempts ---- */

static void on_notify(void *owner)
{
    step(owner);
}

static void connect_next(xchg_t *x);

static void on_backoff(rp_request_t *r, void *data)
{
    connect_next(data);
}

/* Another try: the kept body goes again from its start, now or after wait ms. */
static void next_try(xchg_t *x, int64_t wait)
{
    x->body_done = !x->has_body;
    x->replay_off = 0;
    if (wait <= 0) {
        connect_next(x);
        return;
    }
    if (x->backoff == NULL)
        x->backoff = rp_http_timer_new(x->r, on_backoff, x);
    rp_http_timer_add(x->backoff, wait);
}

static void connect_next(xchg_t *x)
{
    rp_request_t *r = x->r;
    rp_upstream_conf_t *u = x->ups;
    for (;;) {
        rp_upstream_server_t *s = rp_attempt_next(&x->at);
        if (s == NULL && x->at.hook_status) { /* balancer_by_lua failed (logged) */
            fail(x, x->at.hook_status, RP_GRPC_INTERNAL, "balancer failed");
            return;
        }
        if (s == NULL) {
            if (x->at.tries == 0)
                log_upstream(x, RP_LOG_ERR, "no live upstreams while connecting to upstream", 0,
                             NULL);
            int status = x->at.tries && x->at.last_timeout ? 504 : 502;
            fail(x, status, RP_GRPC_UNAVAILABLE,
                 x->at.tries ? "upstream unavailable" : "no live upstreams");
            return;
        }
        x->connect_recorded = 0;

        rp_h2u_request_t q = {.has_body = x->has_body,
                              .connect_timeout =
                                  rp_attempt_head_timeout(
                                  &x->at, rp_attempt_connect_timeout(&x->at, x->plcf->connect_timeout)),
                              .tls = x->tls,
                              .arena = r->arena,
                              .notify = on_notify,
                              .owner = x,
                              .log = rp_http_error_log(r)};
        q.nva = build_head(x, &q.nnv);
        x->st = rp_h2u_open(u, s, &q);
        if (x->st) {
            step(x);
            return;
        }
        /* the connection could not even start (counted against the server already) */
        int err = errno;
        log_upstream(x, RP_LOG_ERR, "connect() failed", err, "while connecting to upstream");
        rp_attempt_connect_time(&x->at, -1);
        int64_t wait = racing(x) ? -1 : rp_attempt_retry(&x->at, RP_RETRY_CONNECT, 0, -1, 0, -1);
        rp_attempt_end(&x->at, RP_ATTEMPT_FAILED | RP_ATTEMPT_COUNTED | RP_ATTEMPT_CONNECT, "502");
        release(x);
        x->at.last_timeout = 0;
        if (wait < 0) {
            fail(x, 502, RP_GRPC_UNAVAILABLE, "upstream unavailable");
            return;
        }
        if (wait > 0) {
            next_try(x, wait);
            return;
        }
    }
}

/* The try failed before its response went out (reason RP_RETRY_*): another one when
 * the policy allows it, else the client gets status (grpc_code for a gRPC call). */
static void try_failed(xchg_t *x, unsigned reason, unsigned how, const char *upstream_status,
                       int status, int grpc_code, const char *why)
{
    int64_t wait = racing(x) ? -1 : rp_attempt_retry(&x->at, reason, 0, -1, 0, -1);
    rp_attempt_end(&x->at, RP_ATTEMPT_FAILED | how, upstream_status);
    if (wait >= 0) {
        x->at.last_timeout = reason == RP_RETRY_TIMEOUT;
        release(x);
        next_try(x, wait);
        return;
    }
    fail(x, status, grpc_code, why);
}

/* The stream failed before any response head: try elsewhere or give up. */
static void failed_before_head(xchg_t *x)
{
    rp_h2u_stream_t *st = x->st;
    if (st->conn_error && st->connecting) {
        if (st->timed_out)
            log_upstream(x, RP_LOG_ERR,
                         st->handshaking ? "upstream timed out (110: Connection timed out) "
                                           "while SSL handshaking to upstream"
                                         : "upstream timed out (110: Connection timed out) while "
                                           "connecting to upstream",
                         0, NULL);
        else if (st->handshaking)
            log_upstream(x, RP_LOG_ERR, st->tls_error ? st->tls_error : "SSL handshake failed",
                         st->sys_errno, "while SSL handshaking to upstream");
        else
            log_upstream(x, RP_LOG_ERR, "connect() failed", st->sys_errno,
                         "while connecting to upstream");
        /* the failed connection was counted once against the server (h2_upstream.c) */
        rp_attempt_connect_time(&x->at, -1);
        x->at.last_timeout = st->timed_out;
        try_failed(x, RP_RETRY_CONNECT,
                   RP_ATTEMPT_COUNTED | RP_ATTEMPT_CONNECT | (st->timed_out ? RP_ATTEMPT_TIMEOUT : 0),
                   st->timed_out ? "504" : "502", st->timed_out ? 504 : 502, RP_GRPC_UNAVAILABLE,
                   "upstream unavailable");
        return;
    }
    if (st->refused && rp_attempt_may_replay(&x->at) && x->retries < MAX_RETRIES) {
        /* not processed: the same server may take it on another connection, with the
         * body bytes kept so far */
        x->retries++;
        x->body_done = !x->has_body;
        x->replay_off = 0;
        rp_attempt_again(&x->at);
        release(x);
        connect_next(x);
        return;
    }
    const char *why;
    int code;
    unsigned reason = RP_RETRY_RESET;
    if (st->conn_error) {
        log_upstream(x, RP_LOG_ERR,
                     st->sys_errno ? "recv() failed" : "upstream prematurely closed connection",
                     st->sys_errno, "while reading response header from upstream");
        why = "upstream connection lost";
        code = RP_GRPC_UNAVAILABLE;
    } else if (st->too_large) {
        log_upstream(x, RP_LOG_ERR, "upstream sent too big header", 0,
                     "while reading response header from upstream");
        why = "upstream sent too big header";
        code = RP_GRPC_INTERNAL;
        reason = 0; /* the peer's answer, not a failure to try elsewhere */
    } else {
        char msg[160];
        snprintf(msg, sizeof(msg), "upstream reset the stream (%s)",
                 nghttp2_http2_strerror(st->error_code));
        log_upstream(x, RP_LOG_ERR, msg, 0, "while reading response header from upstream");
        why = st->refused ? "upstream refused the stream" : "upstream reset the stream";
        code = st->refused ? RP_GRPC_UNAVAILABLE : RP_GRPC_INTERNAL;
        if (st->refused)
            reason = RP_RETRY_REFUSED;
    }
    try_failed(x, reason, 0, "502", 502, code, why);
}

/* ---- the response ---- */

/* Passes the response head to the client. Returns -1 when the request has ended. */
/*
 * A response head the retry policy may want another try for: a status (503, 502...) or,
 * for a gRPC call answered trailers-only, its grpc-status (UNAVAILABLE...). When it does,
 * the stream is cancelled and the next try is on its way: returns 1.
 */
static int retry_head(xchg_t *x)
{
    rp_h2u_stream_t *st = x->st;
    const rp_retry_conf_t *c = x->at.policy;
    if (!c->set)
        return 0;
    int trailers_only = x->grpc && st->eof && st->ntrailers == 0 && evbuffer_get_length(st->in) == 0;
    if (st->status < 300 && !trailers_only)
        return 0;
    int64_t retry_after = -1;
    int not_processed = 0, grpc_status = -1;
    for (unsigned i = 0; i < st->nheaders; i++) {
        rp_header_t *h = &st->headers[i];
        if (rp_str_eq(h->name, "retry-after"))
            retry_after = rp_retry_after_ms(h->value.data, (unsigned)h->value.len,
                                            rp_time_ms() / 1000);
        else if (rp_str_eq(h->name, "x-rampart-overloaded") ||
                 rp_str_eq(h->name, "x-envoy-overloaded"))
            not_processed = 1;
        else if (trailers_only && rp_str_eq(h->name, "grpc-status") && h->value.len &&
                 h->value.len <= 2) {
            grpc_status = 0;
            for (size_t k = 0; k < h->value.len; k++)
                grpc_status = grpc_status * 10 + (h->value.data[k] - '0');
        }
    }
    if (racing(x)) {
        /* an answer the policy would not take while the other try may bring a better one */
        if (!rp_retry_wants(c, RP_RETRY_STATUS, st->status, grpc_status))
            return 0;
        rp_attempt_header(&x->at, st->status);
        rp_attempt_end(&x->at, RP_ATTEMPT_FAILED, NULL);
        x->in_step = 0;
        leave_race(x);
        return 1;
    }
    int64_t wait = rp_attempt_retry(&x->at, RP_RETRY_STATUS, st->status, grpc_status,
                                    not_processed, retry_after);
    if (wait < 0)
        return 0;
    rp_attempt_header(&x->at, st->status);
    rp_attempt_end(&x->at, st->status >= 500 || grpc_status > 0 ? RP_ATTEMPT_FAILED
                                                                 : RP_ATTEMPT_INCOMPLETE,
                   NULL);
    release(x);
    x->in_step = 0; /* the next try steps anew (its stream may notify at once) */
    next_try(x, wait);
    return 1;
}

/* This try's response goes to the client: a hedge racing it is cancelled, and a hedge
 * not started yet will not be. */
static void won(xchg_t *x)
{
    if (x->sibling) {
        leave_race(x->sibling);
        rp_proxy_ctx(x->r)->exchange = x;
    }
    if (x->hedge_timer && rp_http_timer_pending(x->hedge_timer))
        rp_http_timer_del(x->hedge_timer);
    if (x->at.header_ms >= 0 && rp_hedge_conf(x->r))
        rp_hedge_sample(x->ups, x->at.header_ms);
}

static int send_head(xchg_t *x)
{
    rp_request_t *r = x->r;
    rp_h2u_stream_t *st = x->st;
    if (retry_head(x))
        return -1;
    rp_attempt_header(&x->at, st->status);
    won(x);
    if (st->status >= 300 && rp_http_error_page_intercept(r, st->status, x->grpc)) {
        /* proxy_intercept_errors, grpc_intercept_errors: the location's error page answers;
         * the stream is let go (its connection serves others) */
        for (unsigned i = 0; i < st->nheaders; i++)
            rp_http_error_page_keep_field(r, st->status, st->headers[i].name,
                                          st->headers[i].value);
        int status = st->status;
        rp_attempt_end(&x->at, RP_ATTEMPT_OK, NULL);
        done(x);
        rp_http_send_error(r, status);
        return -1;
    }
    r->status = st->status;
    r->reason = RP_NULL_STR;
    r->response_started = 1;
    int64_t cl = -1;
    rp_str_t accel = RP_NULL_STR;
    for (unsigned i = 0; i < st->nheaders; i++)
        if (rp_proxy_accel_redirect_field(x->plcf, st->headers[i].name))
            accel = st->headers[i].value;
    for (unsigned i = 0; i < st->nheaders; i++) {
        rp_header_t *h = &st->headers[i];
        if (rp_str_eq(h->name, "content-length")) {
            int64_t v = 0;
            for (size_t k = 0; k < h->value.len; k++)
                v = v * 10 + (h->value.data[k] - '0'); /* nghttp2 checked it */
            cl = v;
            continue;
        }
        rp_proxy_response_field(r, x->plcf, h->name, h->value, accel.len != 0);
    }
    rp_proxy_keep_headers(r, st->headers, st->nheaders);
    if (accel.len && !x->grpc) {
        /* X-Accel-Redirect: the upstream's answer is dropped, the request goes on there */
        rp_str_t target = {rp_arena_strndup(r->arena, accel.data, accel.len), accel.len};
        x->head_out = 0;
        rp_attempt_end(&x->at, RP_ATTEMPT_OK, NULL);
        done(x);
        rp_proxy_accel_redirect(r, target);
        return -1;
    }
    if (r->status == 204 || r->status == 304)
        cl = -1;
    x->head_out = 1;
    if (x->grpc && st->eof && st->ntrailers == 0 && evbuffer_get_length(st->in) == 0 && !r->head &&
        rp_http_status_has_body(r->status)) {
        /* trailers-only: grpc-status is in this head, and it must end the stream */
        rp_attempt_end(&x->at, RP_ATTEMPT_OK, NULL);
        done(x);
        rp_http_response_trailers_only(r, NULL, 0);
        return -1;
    }
    if (rp_http_response_begin(r, cl) != 0) {
        log_upstream(x, RP_LOG_ERR, "response head too large", 0, NULL);
        x->head_out = 0;
        fail(x, 502, RP_GRPC_INTERNAL, "response head too large");
        return -1;
    }
    return 0;
}

static void finish(xchg_t *x)
{
    rp_request_t *r = x->r;
    rp_h2u_stream_t *st = x->st;
    rp_attempt_end(&x->at, RP_ATTEMPT_OK, NULL);
    if (st->ntrailers) {
        rp_proxy_keep_trailers(r, st->trailers, st->ntrailers);
        rp_http_response_trailers(r, st->trailers, st->ntrailers); /* HTTP/1 drops them */
    }
    done(x);
    rp_http_response_end(r);
}

static void on_client_drained(rp_request_t *r)
{
    xchg_t *x = rp_proxy_ctx(r)->exchange;
    if (x && !x->finished)
        step(x);
}

static void on_client_body(rp_request_t *r)
{
    xchg_t *x = rp_proxy_ctx(r)->exchange;
    if (x && !x->finished)
        step(x);
}

static void on_rate_timer(rp_request_t *r, void *data)
{
    xchg_t *x = data;
    (void)r;
    x->paced = 0;
    if (!x->finished)
        step(x);
}

/* proxy_limit_rate: the response bytes that may be taken now, at most want. When none
 * may, the exchange is paced and a timer of the request steps on. */
static size_t rate_allowance(xchg_t *x, size_t want)
{
    int64_t now = rp_time_ms(), wait = 0;
    if (x->rate_start == 0)
        x->rate_start = now;
    int64_t may = rp_proxy_rate_allowance(x->plcf->limit_rate, x->rate_start, now, x->rate_taken,
                                          &wait);
    if (may > 0)
        return (int64_t)want > may ? (size_t)may : want;
    if (x->rate_timer == NULL)
        x->rate_timer = rp_http_timer_new(x->r, on_rate_timer, x);
    rp_http_timer_add(x->rate_timer, wait);
    x->paced = 1;
    return 0;
}

/* Moves response body bytes to the client while it keeps up. Returns -1 when the request
 * has ended, 1 when it waits for the client or for proxy_limit_rate. */
static int pump_response(xchg_t *x)
{
    rp_request_t *r = x->r;
    rp_h2u_stream_t *st = x->st;
    int wrote = 0;
    if (x->paced)
        return 1;
    for (;;) {
        size_t avail = evbuffer_get_length(st->in);
        if (avail && x->plcf->limit_rate && (avail = rate_allowance(x, avail)) == 0)
            return 1;
        if (avail == 0) {
            /* nothing more for now: what a filter holds (a compressor) goes out */
            if (wrote && !st->eof && rp_http_flush(r) != 0) {
                done(x);
                rp_http_abort(r);
                return -1;
            }
            break;
        }
        if (rp_http_pending(r)) {
            r->on_drain = on_client_drained;
            return 1;
        }
        struct evbuffer_iovec v[8];
        int k = evbuffer_peek(st->in, avail < TAKE_MAX ? (ev_ssize_t)avail : TAKE_MAX, NULL, v, 8);
        if (k > 8)
            k = 8;
        struct iovec iov[8];
        size_t n = 0;
        for (int i = 0; i < k; i++) {
            iov[i] = (struct iovec){v[i].iov_base, v[i].iov_len};
            n += v[i].iov_len;
        }
        if (n > TAKE_MAX) {
            /* the last extent may reach past what was asked for */
            iov[k - 1].iov_len -= n - TAKE_MAX;
            n = TAKE_MAX;
        }
        if (!r->head) {
            if (rp_http_write(r, iov, k) != 0) {
                done(x);
                rp_http_abort(r);
                return -1;
            }
            wrote = 1;
        }
        evbuffer_drain(st->in, n);
        rp_h2u_consume(st, n);
        x->at.bytes_in += (int64_t)n; /* over HTTP/2: the body's bytes */
        x->rate_taken += (int64_t)n;
    }
    return 0;
}

/* Moves request body bytes to the upstream as its windows allow. Returns -1 when the
 * request has ended. */
static int pump_body(xchg_t *x)
{
    rp_request_t *r = x->r;
    while (!x->body_done) {
        size_t room = rp_h2u_body_room(x->st);
        if (room == 0)
            return 0; /* a notify comes with more room */
        if (room > sizeof(scratch))
            room = sizeof(scratch);
        size_t kept = rp_attempt_kept_len(&x->at);
        if (x->replay_off < kept || x->client_done) {
            /* a second attempt: first what the first one took */
            size_t n = kept - x->replay_off < room ? kept - x->replay_off : room;
            if (n)
                rp_attempt_kept_copy(&x->at, x->replay_off, scratch, n);
            x->replay_off += n;
            int last = x->client_done && x->replay_off == kept;
            rp_h2u_send_body(x->st, scratch, n, last);
            x->at.bytes_out += (int64_t)n;
            x->body_done = (unsigned)last;
            continue;
        }
        size_t n = 0;
        int rc = rp_http_read_body(r, scratch, room, &n);
        if (rc < 0) {
            int status = r->body_status;
            if (status == 0) {
                log_upstream(x, RP_LOG_INFO,
                             "client closed the connection while sending the "
                             "request body to upstream",
                             0, NULL);
                done(x);
                rp_http_abort(r);
                return -1;
            }
            if (x->head_out) {
                cut(x, RP_GRPC_INTERNAL, "request body error");
                return -1;
            }
            fail(x, status, rp_grpc_status_of_http(status), rp_http_reason(status));
            return -1;
        }
        rp_attempt_body_read(&x->at, scratch, n, rc == 1);
        x->replay_off = rp_attempt_kept_len(&x->at);
        if (n || rc == 1)
            rp_h2u_send_body(x->st, scratch, n, rc == 1);
        x->at.bytes_out += (int64_t)n;
        if (rc == 1) {
            x->client_done = 1;
            x->body_done = 1;
            break;
        }
        if (n == 0) {
            r->on_body = on_client_body; /* client_body_timeout runs meanwhile */
            return 0;
        }
    }
    return 0;
}

static void rearm(xchg_t *x)
{
    rp_request_t *r = x->r;
    int mode = T_NONE;
    if (!x->st->connected || r->on_drain || r->on_body || x->paced)
        mode = T_NONE; /* the connect timeout, send_timeout or client_body_timeout rules */
    else if (!x->body_done)
        mode = T_SEND;
    else
        mode = T_READ;
    x->timer_mode = mode;
    if (mode == T_NONE)
        event_del(&x->timer);
    else
        add_timer(&x->timer,
                  mode == T_SEND ? rp_attempt_send_timeout(&x->at, x->plcf->send_timeout)
                  : x->head_out  ? rp_attempt_read_timeout(&x->at, x->plcf->read_timeout)
                                 : rp_attempt_head_timeout(
                                       &x->at, rp_attempt_read_timeout(&x->at, x->plcf->read_timeout)));
}

/* Does whatever the stream and the client allow now; called for every event. */
static void step(xchg_t *x)
{
    if (x->in_step) {
        x->step_again = 1; /* an event arrived from inside this very step */
        return;
    }
    x->in_step = 1;
    do {
        x->step_again = 0;
        rp_request_t *r = x->r;
        rp_h2u_stream_t *st = x->st;
        if (x->finished || st == NULL)
            return; /* x may be gone already: in_step does not matter any more */
        if (st->connected && !x->connect_recorded) {
            x->connect_recorded = 1;
            rp_attempt_connect_time(&x->at, st->connect_ms);
        }
        if (!x->head_out && st->closed && !st->eof) {
            /* failed before anything went to the client (even with its head read): a
             * proper answer is still possible */
            x->in_step = 0;
            failed_before_head(x);
            return;
        }
        if (x->has_body && !x->body_done && pump_body(x) < 0)
            return;
        if (st->head && !x->head_out && send_head(x) < 0)
            return;
        if (x->head_out) {
            int rc = pump_response(x);
            if (rc < 0)
                return;
            if (rc == 0 && st->eof && evbuffer_get_length(st->in) == 0) {
                finish(x);
                return;
            }
            if (rp_http_flush_head(r) != 0) {
                /* HTTP/1: a head without body bytes goes out now; the client is gone */
                done(x);
                rp_http_abort(r);
                return;
            }
            if (rc == 0 && st->closed && !st->eof) {
                const char *why = st->conn_error  ? "upstream prematurely closed connection"
                                  : st->too_large ? "upstream sent too big trailers"
                                                  : "upstream reset the stream";
                log_upstream(x, RP_LOG_ERR, why, st->sys_errno, "while reading upstream");
                rp_attempt_end(&x->at, RP_ATTEMPT_FAILED, NULL);
                cut(x, st->conn_error ? RP_GRPC_UNAVAILABLE : RP_GRPC_INTERNAL, why);
                return;
            }
        }
        rearm(x);
    } while (x->step_again);
    x->in_step = 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    xchg_t *x = arg;
    if (x->finished)
        return;
    if (x->head_out) {
        log_upstream(x, RP_LOG_ERR,
                     "upstream timed out (110: Connection timed out) while "
                     "reading upstream",
                     0, NULL);
        rp_attempt_end(&x->at, RP_ATTEMPT_FAILED, NULL);
        cut(x, RP_GRPC_UNAVAILABLE, "upstream timed out");
        return;
    }
    log_upstream(x, RP_LOG_ERR,
                 x->timer_mode == T_SEND
                     ? "upstream timed out (110: Connection timed out) while sending request to "
                       "upstream"
                     : "upstream timed out (110: Connection timed out) while reading response "
                       "header from upstream",
                 0, NULL);
    try_failed(x, RP_RETRY_TIMEOUT, RP_ATTEMPT_TIMEOUT, "504", 504, RP_GRPC_UNAVAILABLE,
               "upstream timed out");
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    xchg_t *x = arg;
    rp_request_t *r = x->r;
    if (x->finished)
        return;
    rp_log_error(RP_LOG_INFO, 0, "grpc-timeout of \"%.*s %.*s\" expired, upstream: %s",
                 (int)r->method.len, r->method.data, (int)r->request_uri.len, r->request_uri.data,
                 x->at.peer ? x->at.peer->name : x->ups->name);
    /* a deadline is the client's, not the server's failure */
    if (x->sibling)
        leave_race(x->sibling); /* it ends every try */
    rp_attempt_end(&x->at, RP_ATTEMPT_INCOMPLETE, NULL);
    /* release() resets the upstream stream with CANCEL: the server stops working on it */
    if (x->head_out)
        cut(x, RP_GRPC_DEADLINE_EXCEEDED, "Deadline Exceeded");
    else
        fail(x, 504, RP_GRPC_DEADLINE_EXCEEDED, "Deadline Exceeded");
}

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_deadline(evutil_socket_t fd, short what, void *arg);

/* The first try has not answered in the hedging delay: a second one races it on another
 * peer (on another connection), when the retry budget has room. */
static void on_hedge(rp_request_t *r, void *data)
{
    xchg_t *x = data;
    if (x->finished || x->sibling || x->head_out || x->at.peer == NULL)
        return;
    if (rp_attempt_retry(&x->at, RP_RETRY_HEDGE, 0, -1, 0, -1) < 0)
        return;
    xchg_t *h = rp_arena_calloc(r->arena, sizeof(*h));
    h->r = r;
    h->plcf = x->plcf;
    h->ups = x->ups;
    h->tls = x->tls;
    h->grpc = x->grpc;
    h->has_body = 0;
    h->body_done = 1;
    h->target = x->target;
    h->deadline = x->deadline; /* the same grpc-timeout goes with it; x's timer ends both */
    h->has_deadline = x->has_deadline;
    rp_attempt_init(&h->at, r, x->ups);
    rp_attempt_hedge_of(&h->at, &x->at);
    evtimer_assign(&h->timer, rp_event_base, on_timer, h);
    evtimer_assign(&h->deadline_ev, rp_event_base, on_deadline, h);
    h->sibling = x;
    x->sibling = h;
    rp_http_cleanup_add(r, cleanup, h);
    connect_next(h);
}

int rp_proxy_h2_handler(rp_request_t *r, rp_proxy_loc_conf_t *plcf, int grpc)
{
    if (grpc)
        r->grpc = 1;
    rp_upstream_conf_t *u;
    rp_upstream_tls_t *tls;
    int rc = rp_proxy_choose(r, plcf, &u, &tls, NULL);
    if (rc != RP_OK)
        return rp_http_send_error(r, rc);
    /* over a circuit breaker: 503, or waiting in the queue (called again when it may go) */
    if ((rc = rp_breaker_admit(r, u)) != RP_OK)
        return rc;
    xchg_t *x = rp_arena_calloc(r->arena, sizeof(*x));
    x->r = r;
    x->plcf = plcf;
    x->ups = u;
    x->tls = tls;
    rp_attempt_init(&x->at, r, x->ups);
    x->grpc = rp_grpc_is_request(r);
    x->has_body = (r->chunked || r->content_length > 0) && plcf->pass_request_body;
    x->body_done = !x->has_body;
    x->target = rp_proxy_target(r, plcf);
    evtimer_assign(&x->timer, rp_event_base, on_timer, x);
    evtimer_assign(&x->deadline_ev, rp_event_base, on_deadline, x);
    rp_proxy_ctx_new(r, plcf, x);
    rp_http_cleanup_add(r, cleanup, x);
    if (x->grpc) {
        rp_str_t t = rp_request_header(r, "grpc-timeout");
        int64_t ms = t.len ? rp_grpc_timeout_parse(t) : -1;
        if (ms >= 0) {
            int64_t start = (int64_t)r->start.tv_sec * 1000 + r->start.tv_usec / 1000;
            x->deadline = start + ms;
            x->has_deadline = 1;
            int64_t left = x->deadline - rp_time_ms();
            add_timer(&x->deadline_ev, left > 0 ? left : 0);
        }
    }
    connect_next(x);
    const rp_hedge_conf_t *hc = rp_hedge_conf(r);
    if (hc && !x->finished && rp_hedge_eligible(r)) {
        int64_t delay = rp_hedge_delay(hc, u);
        if (delay > 0) {
            x->hedge_timer = rp_http_timer_new(r, on_hedge, x);
            rp_http_timer_add(x->hedge_timer, delay);
        }
    }
    return RP_DONE;
}
