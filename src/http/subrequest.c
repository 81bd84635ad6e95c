/*
 * Subrequests: requests a module makes on behalf of another (mirror, auth_request),
 * which run the phases like any request but have no client of their own.
 * What becomes of a subrequest's response is its protocol, a table of functions as
 * HTTP/1 and HTTP/2 have theirs, chosen by the flags: a background subrequest's
 * protocol discards the response as it arrives. (An in-memory one, whose response
 * its parent reads, is the next sink to add: a second table, and a way to wake the
 * parent when the response is complete.)
 *
 * A background subrequest is detached from its parent at birth: it copies what it
 * needs (fields, target, request id) into an arena of its own, holds a reference to
 * the parent's kept body rather than the body itself, and stands on a connection
 * object of its own without a socket (rp_conn_detached) that copies the parent's
 * addresses. Nothing of the parent's request or connection is touched again, so the
 * parent may finish, be logged and its connection reused or closed while the
 * subrequest goes on. The stand-in connection is what makes the worker wait for the
 * subrequest on a graceful stop and end it on a fast one (or at
 * worker_shutdown_timeout), and what keeps a retired generation's configuration
 * alive under it. When its exchange is over the subrequest is ended (cleanups, log)
 * at once and freed from the event loop, never under the handler that ended it.
 *
 * A parent that waits for the outcome (auth_request) asks to be told when the
 * exchange is over (rp_http_subrequest_on_done): it reads the status, fields and
 * variables it needs then, into its own memory, and wakes itself; if it ends first,
 * its cleanup takes its callback back. The response body is still discarded.
 */
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"
#include "observe/trace_context.h"

#include <string.h>

typedef struct {
    rp_request_t *r;
    rp_conn_t *c; /* the stand-in connection */
    rp_arena_t *arena;
    unsigned flags;
    void (*done)(rp_request_t *sr, void *data); /* rp_http_subrequest_on_done */
    void *done_data;
    unsigned head_sent : 1;
    unsigned finished : 1; /* its exchange is over: it frees itself from the loop */
} sub_t;

#define SUB(r) ((sub_t *)(r)->pdata)

/* ---- the life of the stand-in connection ---- */

/* Tells whoever waits for the subrequest that its exchange is over, once, while the
 * subrequest (its status, fields, variables) can still be read. */
static void notify(sub_t *s)
{
    void (*fn)(rp_request_t *, void *) = s->done;
    s->done = NULL;
    if (fn)
        fn(s->r, s->done_data);
}

/* The exchange is over: end the request now, free it from the loop. */
static void finish(sub_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    notify(s);
    rp_http_request_end(s->r);
    rp_conn_set_timer(s->c, 0); /* -> conn_timeout -> rp_conn_free -> conn_release */
}

static void conn_read(rp_conn_t *c)
{
    /* never armed: the connection has no socket */
}

static void conn_timeout(rp_conn_t *c)
{
    rp_conn_free(c);
}

/* rp_conn_free: the subrequest ends here if it did not end by itself (a fast stop,
 * worker_shutdown_timeout), then its memory goes. */
static void conn_release(rp_conn_t *c)
{
    sub_t *s = c->data;
    if (!s->finished) {
        s->finished = 1;
        rp_log_error(RP_LOG_INFO, 0, "subrequest \"%.*s\" ended by the worker's stop",
                     (int)s->r->uri.len, s->r->uri.data);
        notify(s);
        rp_http_request_end(s->r);
    }
    rp_arena_destroy(s->arena);
}

static const rp_conn_proto_t sub_conn_proto = {
    .name = "subrequest",
    .read = conn_read,
    .timeout = conn_timeout,
    .drain = NULL, /* a graceful stop lets it finish */
    .release = conn_release,
};

/* ---- the background sink: the response is discarded as it comes ---- */

static int bg_send_head(rp_request_t *r)
{
    SUB(r)->head_sent = 1;
    return 0;
}

static int bg_send_body(rp_request_t *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
    if (flags & RP_BODY_LAST)
        finish(SUB(r));
    return 0;
}

static int bg_flush_head(rp_request_t *r)
{
    return 0;
}

static int bg_head_sent(const rp_request_t *r)
{
    return SUB(r)->head_sent;
}

static void bg_abort(rp_request_t *r)
{
    r->on_body = NULL;
    r->on_drain = NULL;
    finish(SUB(r));
}

static size_t bg_pending(const rp_request_t *r)
{
    return 0;
}

/* A subrequest without a kept body to send has an empty one (a kept body is served by
 * rp_http_read_body before the protocol is asked). */
static int sub_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    *n = 0;
    return 1;
}

static int bg_trailers(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    return 0; /* taken, and discarded with the rest */
}

static const rp_http_proto_t background_proto = {
    .name = "subrequest",
    .send_head = bg_send_head,
    .send_body = bg_send_body,
    .flush_head = bg_flush_head,
    .head_sent = bg_head_sent,
    .abort = bg_abort,
    .pending = bg_pending,
    .read_body = sub_read_body,
    .close_now = bg_abort,
    .trailers = bg_trailers,
};

/* ---- making one ---- */

static rp_str_t dup(rp_arena_t *a, rp_str_t s)
{
    if (s.data == NULL)
        return s;
    return (rp_str_t){rp_arena_strndup(a, s.data, s.len), s.len};
}

/* Fields that describe the parent's connection or its body's framing, not the request:
 * a subrequest has neither (its body, if any, is framed by its length). */
static int connection_field(rp_str_t n)
{
    switch (n.len) {
    case 2:
        return rp_str_ieq(n, "te");
    case 7:
        return rp_str_ieq(n, "upgrade");
    case 10:
        return rp_str_ieq(n, "connection") || rp_str_ieq(n, "keep-alive");
    case 14:
        return rp_str_ieq(n, "content-length");
    case 16:
        return rp_str_ieq(n, "proxy-connection");
    case 17:
        return rp_str_ieq(n, "transfer-encoding");
    }
    return 0;
}

/* Copies parent's fields into sr's arena, in order, with Content-Length for a body. */
static void copy_fields(rp_request_t *sr, const rp_request_t *parent, int with_length)
{
    rp_arena_t *a = sr->arena;
    sr->headers = rp_arena_alloc(a, (parent->nheaders + 2) * sizeof(rp_header_t));
    sr->nheaders = 0;
    for (unsigned i = 0; i < parent->nheaders; i++) {
        const rp_header_t *h = &parent->headers[i];
        if (connection_field(h->name))
            continue;
        sr->headers[sr->nheaders++] = (rp_header_t){dup(a, h->name), dup(a, h->value)};
    }
    if (with_length) {
        char *v = rp_arena_sprintf(a, "%lld", (long long)sr->content_length);
        sr->headers[sr->nheaders++] =
            (rp_header_t){RP_STR("content-length"), (rp_str_t){v, strlen(v)}};
    }
}

int rp_http_subrequest(rp_request_t *parent, rp_str_t uri, rp_str_t args, unsigned flags,
                       rp_request_t **out)
{
    *out = NULL;
    if (parent->conn == NULL || parent->srv == NULL) {
        rp_log_error(RP_LOG_ALERT, 0, "subrequest \"%.*s\" of a request without a connection",
                     (int)uri.len, uri.data);
        return RP_ERROR;
    }
    if (!(flags & RP_HTTP_SUB_BACKGROUND)) {
        rp_log_error(RP_LOG_ALERT, 0, "subrequest \"%.*s\": only background subrequests exist",
                     (int)uri.len, uri.data);
        return RP_ERROR;
    }
    int with_body = (flags & RP_HTTP_SUB_BODY) && parent->body != NULL;
    if ((flags & RP_HTTP_SUB_BODY) && !rp_http_body_kept(parent)) {
        rp_log_error(RP_LOG_ALERT, 0, "subrequest \"%.*s\": the request body was not kept",
                     (int)uri.len, uri.data);
        return RP_ERROR;
    }

    rp_arena_t *a = rp_arena_create(8192);
    sub_t *s = rp_arena_calloc(a, sizeof(*s));
    s->arena = a;
    s->flags = flags;
    s->c = rp_conn_detached(parent->conn, &sub_conn_proto, s);
    rp_request_t *r = rp_http_request_new(s->c, a, &background_proto);
    r->pdata = s;
    s->r = r;
    if (parent->peer != &parent->conn->peer) {
        /* the client realip found, as nginx's subrequests share their connection's */
        rp_sockaddr_t *peer = rp_arena_alloc(a, sizeof(*peer));
        *peer = *parent->peer;
        r->peer = peer;
    }

    r->subrequest = 1;
    r->internal = 1;
    /* what goes upstream is this request's own target, not the parent's as sent */
    r->uri_rewritten = 1;
    r->method = RP_STR("GET");
    r->request_uri = dup(a, parent->request_uri); /* $request_uri is the client's, as nginx */
    r->uri = dup(a, uri);
    r->args = dup(a, args);
    r->host = dup(a, parent->host);
    r->scheme = dup(a, parent->scheme);
    r->version = parent->version;
    r->keepalive = 0;
    /* one id for a request and its copies: the logs of both sides can be joined on it */
    memcpy(r->request_id, rp_request_id(parent).data, 32);
    r->request_id[32] = '\0';
    rp_trace_inherit(r, parent); /* a child span of the parent's */

    if (with_body) {
        rp_http_body_share(parent, r);
        r->content_length = (int64_t)rp_http_kept_body_length(parent);
    } else if (flags & RP_HTTP_SUB_BODY) {
        r->content_length = parent->content_length; /* none, or an empty one */
    }
    copy_fields(r, parent, r->content_length >= 0);

    r->srv = parent->srv;
    r->clcf = r->srv->ctx->loc_conf[rp_http_core_module.index];
    r->loc_conf = r->clcf->loc_conf;
    r->phase = RP_PHASE_SERVER_REWRITE;
    r->handler = 0;
    rp_http_resume(r); /* from the loop: the caller may still set its method */
    *out = r;
    return RP_OK;
}

void rp_http_subrequest_on_done(rp_request_t *sr, void (*fn)(rp_request_t *sr, void *data),
                                void *data)
{
    SUB(sr)->done = fn;
    SUB(sr)->done_data = data;
}

void rp_http_subrequest_method(rp_request_t *sr, rp_str_t method)
{
    sr->method = dup(sr->arena, method);
    sr->head = rp_str_eq(method, "HEAD");
}
