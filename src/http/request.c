/*
 * The response side of a request: its fields, the filter chains and the request
 * API that sends through them to the protocol, rampart's own responses and error
 * pages. The phase runner and the request's life are in phases.c.
 */
#include "http/request.h"
#include "core/log.h"
#include "http/grpc.h"
#include "http/variables.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

rp_str_t rp_request_header(const rp_request_t *r, const char *lower_name)
{
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (rp_str_ieq(r->headers[i].name, lower_name))
            return r->headers[i].value;
    }
    return RP_NULL_STR;
}

void rp_http_add_header(rp_request_t *r, rp_str_t name, rp_str_t value)
{
    if (r->nout_headers == r->out_cap) {
        unsigned cap = r->out_cap ? r->out_cap * 2 : 16;
        rp_header_t *h = rp_arena_alloc(r->arena, cap * sizeof(*h));
        if (r->nout_headers)
            memcpy(h, r->out_headers, r->nout_headers * sizeof(*h));
        r->out_headers = h;
        r->out_cap = cap;
    }
    r->out_headers[r->nout_headers].name = name;
    r->out_headers[r->nout_headers].value = value;
    r->nout_headers++;
}

rp_header_t *rp_http_out_header(rp_request_t *r, const char *lower_name)
{
    for (unsigned i = 0; i < r->nout_headers; i++)
        if (r->out_headers[i].name.len && rp_str_ieq(r->out_headers[i].name, lower_name))
            return &r->out_headers[i];
    return NULL;
}

const char *rp_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    }
    return "";
}

/* "Sat, 21 Nov 2026 14:55:00 GMT", recomputed at most once a second. */
const char *rp_http_date(void)
{
    static char buf[40];
    static time_t last;
    struct timeval tv;
    rp_time_now(&tv);
    if (tv.tv_sec != last) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = tv.tv_sec;
    }
    return buf;
}

int rp_http_status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

#define status_has_body rp_http_status_has_body

/* ---- filters ---- */

void rp_http_add_header_filter(rp_conf_t *cf, int rank, const char *name,
                               int (*fn)(rp_request_t *r, const rp_http_header_filter_t *self))
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cf->cycle);
    if (cmcf == NULL)
        return;
    rp_http_header_filter_t *f = rp_arena_calloc(cf->arena, sizeof(*f));
    f->fn = fn;
    f->rank = rank;
    f->name = name;
    /* the chain's nodes are this configuration's (but the protocol at the end, which
     * outranks every filter, so its link is never written) */
    const rp_http_header_filter_t **pp = &cmcf->header_filters;
    while ((*pp)->rank <= rank)
        pp = &((rp_http_header_filter_t *)*pp)->next;
    f->next = *pp;
    *pp = f;
}

void rp_http_add_body_filter(rp_conf_t *cf, int rank, const char *name,
                             int (*fn)(rp_request_t *r, const rp_http_body_filter_t *self,
                                       const struct iovec *iov, int iovcnt, unsigned flags))
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cf->cycle);
    if (cmcf == NULL)
        return;
    rp_http_body_filter_t *f = rp_arena_calloc(cf->arena, sizeof(*f));
    f->fn = fn;
    f->rank = rank;
    f->name = name;
    const rp_http_body_filter_t **pp = &cmcf->body_filters;
    while ((*pp)->rank <= rank)
        pp = &((rp_http_body_filter_t *)*pp)->next;
    f->next = *pp;
    *pp = f;
}

/* The ends of the chains: the protocol. */
static int send_head(rp_request_t *r, const rp_http_header_filter_t *self)
{
    return r->proto->send_head(r);
}

static int send_body(rp_request_t *r, const rp_http_body_filter_t *self, const struct iovec *iov,
                     int iovcnt, unsigned flags)
{
    if (!r->head)
        for (int i = 0; i < iovcnt; i++)
            r->body_bytes_sent += (int64_t)iov[i].iov_len;
    return r->proto->send_body(r, iov, iovcnt, flags);
}

const rp_http_header_filter_t rp_http_header_filter_end = {send_head, NULL, 1 << 30, "protocol"};
const rp_http_body_filter_t rp_http_body_filter_end = {send_body, NULL, 1 << 30, "protocol"};

static rp_http_core_main_conf_t *main_conf(const rp_request_t *r)
{
    return r->srv->ctx->main_conf[rp_http_core_module.index];
}

/* ---- the response API ---- */

int rp_http_response_begin(rp_request_t *r, int64_t content_length)
{
    r->out_length = content_length;
    r->response_started = 1;
    r->header_sent = 1;
    /* filters shape what a client receives: a subrequest has none */
    const rp_http_header_filter_t *top =
        r->subrequest ? &rp_http_header_filter_end : main_conf(r)->header_filters;
    int rc = top->fn(r, top);
    if (rc == RP_AGAIN) {
        r->head_waiting = 1; /* the filter resumes the head; the body waits for it */
        return 0;
    }
    return rc;
}

int rp_http_head_sent(const rp_request_t *r)
{
    return !r->head_waiting && r->proto->head_sent(r);
}

int rp_http_flush_head(rp_request_t *r)
{
    return r->head_waiting ? 0 : r->proto->flush_head(r);
}

static void pre_cleanup(rp_request_t *r, void *data)
{
    evbuffer_free(r->pre);
    r->pre = NULL;
}

/* Body the producer sent while the head waits for a header filter: kept, and counted as
 * held, so the producer waits too. */
static int hold(rp_request_t *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
    if (r->pre == NULL) {
        r->pre = evbuffer_new();
        rp_http_cleanup_add(r, pre_cleanup, NULL);
    }
    for (int i = 0; i < iovcnt; i++) {
        evbuffer_add(r->pre, iov[i].iov_base, iov[i].iov_len);
        r->held += iov[i].iov_len;
    }
    r->pre_flags |= flags;
    return 0;
}

static int body_top(rp_request_t *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
    if (r->head_waiting)
        return hold(r, iov, iovcnt, flags);
    const rp_http_body_filter_t *top =
        r->subrequest ? &rp_http_body_filter_end : main_conf(r)->body_filters;
    return top->fn(r, top, iov, iovcnt, flags);
}

int rp_http_write(rp_request_t *r, const struct iovec *iov, int iovcnt)
{
    return body_top(r, iov, iovcnt, 0);
}

int rp_http_flush(rp_request_t *r)
{
    return body_top(r, NULL, 0, RP_BODY_FLUSH);
}

void rp_http_response_end(rp_request_t *r)
{
    body_top(r, NULL, 0, RP_BODY_LAST);
}

int rp_http_header_resume(rp_request_t *r, const rp_http_header_filter_t *self)
{
    r->head_waiting = 0;
    int rc = rp_http_next_header(r, self);
    if (rc == RP_AGAIN) {
        r->head_waiting = 1; /* a later filter waits in turn */
        return 0;
    }
    if (rc != 0) {
        rp_http_abort(r); /* the producer was told the head went: it can only be cut */
        return -1;
    }
    size_t n = r->pre ? evbuffer_get_length(r->pre) : 0;
    unsigned flags = r->pre_flags;
    r->pre_flags = 0;
    if (n || flags) {
        /* what was written meanwhile goes on, in one piece; the end may free r */
        struct iovec iov = {n ? evbuffer_pullup(r->pre, -1) : NULL, n};
        r->held -= n;
        const rp_http_body_filter_t *top = main_conf(r)->body_filters;
        rc = top->fn(r, top, &iov, n ? 1 : 0, flags);
        if (flags & RP_BODY_LAST)
            return rc; /* the request may be gone */
        evbuffer_drain(r->pre, n);
        if (rc != 0) {
            rp_http_abort(r);
            return -1;
        }
    }
    rp_http_filter_drained(r);
    return 0;
}

void rp_http_abort(rp_request_t *r)
{
    r->proto->abort(r);
}

int rp_http_response_trailers(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    return r->proto->trailers(r, h, n);
}

void rp_http_response_trailers_only(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        rp_http_add_header(r, h[i].name, h[i].value);
    r->no_body = 1;
    if (rp_http_response_begin(r, r->version == 20 ? -1 : 0) != 0) {
        rp_http_abort(r);
        return;
    }
    rp_http_response_end(r);
}

size_t rp_http_pending(const rp_request_t *r)
{
    return r->held + r->proto->pending(r);
}

void rp_http_drained(rp_request_t *r)
{
    if (r->on_drain == NULL || r->held)
        return;
    void (*fn)(rp_request_t *) = r->on_drain;
    r->on_drain = NULL;
    fn(r);
}

void rp_http_filter_drained(rp_request_t *r)
{
    if (r->on_drain == NULL || r->held || r->proto->pending(r))
        return; /* the protocol calls rp_http_drained once its own queue drains */
    /* From the loop, not from here: the filter may be running inside the producer's
     * own write. */
    rp_http_post(r, 0, 1);
}

void rp_http_close_now(rp_request_t *r)
{
    r->proto->close_now(r);
}

int rp_http_send_response(rp_request_t *r, int status, rp_str_t content_type, rp_str_t body)
{
    r->status = status;
    r->reason = RP_NULL_STR; /* rampart's own response: its own reason phrase */
    r->response_started = 1;

    if (content_type.len && status_has_body(status)) {
        /* Content-Type goes first, as nginx writes it. */
        rp_header_t *old = r->out_headers;
        unsigned n = r->nout_headers;
        r->out_headers = NULL;
        r->nout_headers = r->out_cap = 0;
        rp_http_add_header(r, RP_STR("Content-Type"), content_type);
        for (unsigned i = 0; i < n; i++)
            rp_http_add_header(r, old[i].name, old[i].value);
    }
    if (rp_http_response_begin(r, status_has_body(status) ? (int64_t)body.len : -1) != 0) {
        rp_http_abort(r); /* add_header made a head that cannot fit */
        return RP_DONE;
    }
    if (!r->head && status_has_body(status) && body.len) {
        struct iovec iov = {(void *)body.data, body.len};
        rp_http_write(r, &iov, 1); /* a client gone is the protocol's to handle at the end */
    }
    rp_http_response_end(r);
    return RP_DONE;
}

const char *rp_conf_check_header(rp_conf_t *cf, const char *name, const char *value)
{
    if (*name == '\0')
        return "empty header name";
    for (const char *p = name; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch))
            return rp_conf_error(cf, "invalid header name \"%s\"", name);
    }
    if (strchr(value, '\r') || strchr(value, '\n'))
        return rp_conf_error(cf, "header value of \"%s\" contains a line break", name);
    return NULL;
}

int rp_http_send_error(rp_request_t *r, int status)
{
    char page[512];
    const char *reason = rp_http_reason(status);
    /* nginx's pages say more for some errors ("400 No required SSL certificate was sent")
     * while the status line keeps the standard reason */
    const char *title = r->error_title ? r->error_title : reason;
    int n = snprintf(page, sizeof(page),
                     "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
                     "<center><h1>%d %s</h1></center>\r\n<hr><center>rampart</center>\r\n"
                     "</body>\r\n</html>\r\n",
                     status, title, status, reason);
    switch (status) {
    case 400: /* nginx's set: after these the connection's state is not trusted */
    case 408:
    case 413:
    case 414:
    case 431:
    case 500:
    case 501:
    case 505:
        r->keepalive = 0;
        break;
    }
    if (rp_grpc_is_request(r)) /* a gRPC client understands no page, only a status */
        return rp_grpc_send_error(r, rp_grpc_status_of_http(status), rp_http_reason(status));
    return rp_http_send_response(r, status, RP_STR("text/html"), (rp_str_t){page, (size_t)n});
}
