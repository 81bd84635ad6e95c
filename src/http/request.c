/*
 * The phase runner and the response builder. Responses are serialized here
 * into an evbuffer and handed to the connection; the protocol layer decides
 * framing (HTTP/1 now: Content-Length and Connection).
 */
#include "http/request.h"
#include "core/wbuf.h"
#include "http/conn.h"
#include "http/grpc.h"
#include "http/h2.h"
#include "core/log.h"

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

void rp_http_run_phases(rp_request_t *r)
{
    rp_http_core_main_conf_t *cmcf = r->srv->ctx->main_conf[rp_http_core_module.index];

    while (r->phase < RP_PHASE_LOG) {
        rp_array_t *handlers = &cmcf->phases[r->phase];
        if (r->handler >= handlers->nelts) {
            r->phase++;
            r->handler = 0;
            continue;
        }
        rp_phase_handler_pt h = RP_ARRAY_AT(handlers, rp_phase_handler_pt, r->handler);
        int rc = h(r);
        switch (rc) {
        case RP_DECLINED:
            r->handler++;
            break;
        case RP_OK:
            r->phase++;
            r->handler = 0;
            break;
        case RP_AGAIN:
            return;
        case RP_DONE:
            return;
        default:
            rp_http_send_error(r, 500);
            return;
        }
    }
    /* No content handler took the request: nothing is configured to answer it. */
    rp_http_send_error(r, 404);
}

void rp_http_log_request(rp_request_t *r)
{
    if (r->logged || r->srv == NULL)
        return;
    r->logged = 1;
    rp_http_core_main_conf_t *cmcf = r->srv->ctx->main_conf[rp_http_core_module.index];
    rp_array_t *handlers = &cmcf->phases[RP_PHASE_LOG];
    for (size_t i = 0; i < handlers->nelts; i++)
        RP_ARRAY_AT(handlers, rp_phase_handler_pt, i)(r);
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
    if (rp_event_base)
        event_base_gettimeofday_cached(rp_event_base, &tv);
    else
        gettimeofday(&tv, NULL);
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

/* ---- the request API: each call goes to the protocol carrying the request ---- */

int rp_http_response_begin(rp_request_t *r, int64_t content_length)
{
    return r->stream ? rp_h2_response_begin(r, content_length)
                     : rp_h1_response_begin(r, content_length);
}

int rp_http_head_sent(const rp_request_t *r)
{
    return r->stream ? rp_h2_head_sent(r) : r->conn->head_len == 0;
}

int rp_http_flush_head(rp_request_t *r)
{
    return r->stream ? 0 : rp_h1_flush_head(r);
}

int rp_http_write(rp_request_t *r, const struct iovec *iov, int iovcnt)
{
    return r->stream ? rp_h2_write(r, iov, iovcnt) : rp_h1_write(r, iov, iovcnt);
}

void rp_http_response_end(rp_request_t *r)
{
    if (r->stream)
        rp_h2_response_end(r);
    else
        rp_h1_response_end(r);
}

void rp_http_abort(rp_request_t *r)
{
    if (r->stream)
        rp_h2_abort(r);
    else
        rp_h1_abort(r);
}

int rp_http_response_trailers(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    return r->stream ? rp_h2_response_trailers(r, h, n) : -1;
}

void rp_http_response_trailers_only(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    if (r->stream) {
        rp_h2_response_trailers_only(r, h, n);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        rp_http_add_header(r, h[i].name, h[i].value);
    if (rp_http_response_begin(r, 0) != 0) {
        rp_http_abort(r);
        return;
    }
    rp_http_response_end(r);
}

size_t rp_http_pending(const rp_request_t *r)
{
    return r->stream ? rp_h2_pending(r) : rp_h1_pending(r);
}

int rp_http_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    return r->stream ? rp_h2_read_body(r, buf, cap, n) : rp_h1_read_body(r, buf, cap, n);
}

void rp_http_close_now(rp_request_t *r)
{
    if (r->stream)
        rp_h2_abort(r);
    else
        rp_h1_close_now(r);
}

char rp_http_head_buf[RP_HEAD_MAX];
rp_header_filter_pt rp_http_header_filters[4];

void rp_http_run_header_filters(rp_request_t *r)
{
    for (size_t i = 0; i < sizeof(rp_http_header_filters) / sizeof(rp_http_header_filters[0]); i++)
        if (rp_http_header_filters[i])
            rp_http_header_filters[i](r);
}

int rp_http_keepalive(rp_request_t *r)
{
    rp_conn_t *c = r->conn;
    rp_http_core_loc_conf_t *clcf = r->clcf;
    /* As in nginx: keepalive_timeout 0 disables keep-alive, and the request that reaches
     * keepalive_requests is the connection's last. */
    return r->keepalive && !c->close_after && !c->draining &&
           (clcf == NULL || (clcf->keepalive_timeout > 0 &&
                             c->requests < (unsigned)clcf->keepalive_requests));
}

static void put_str(rp_wbuf_t *o, rp_str_t s)
{
    rp_wbuf_put(o, s.data, s.len);
}

static void put_uint(rp_wbuf_t *o, uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    rp_wbuf_put(o, tmp + i, sizeof(tmp) - (size_t)i);
}

size_t rp_http_build_head(rp_request_t *r, char *buf, size_t cap, int64_t content_length,
                          int chunked)
{
    rp_conn_t *c = r->conn;
    rp_wbuf_t o = {buf, buf + cap};
    int status = r->status;

    rp_http_run_header_filters(r);

    int keep = rp_http_keepalive(r);
    if (content_length < 0 && !chunked && status_has_body(status) && !r->head)
        keep = 0; /* the body ends when the connection does */

    RP_WBUF_LIT(&o, "HTTP/1.");
    rp_wbuf_put(&o, r->version == 10 ? "0 " : "1 ", 2);
    put_uint(&o, (uint64_t)status);
    rp_wbuf_put(&o, " ", 1);
    if (r->reason.len) {
        put_str(&o, r->reason);
    } else {
        const char *reason = rp_http_reason(status);
        rp_wbuf_put(&o, reason, strlen(reason));
    }
    if (r->clcf == NULL || r->clcf->server_tokens)
        RP_WBUF_LIT(&o, "\r\nServer: rampart/" PACKAGE_VERSION "\r\nDate: ");
    else
        RP_WBUF_LIT(&o, "\r\nServer: rampart\r\nDate: ");
    rp_wbuf_put(&o, rp_http_date(), 29);
    RP_WBUF_LIT(&o, "\r\n");
    for (unsigned i = 0; i < r->nout_headers; i++) {
        const rp_header_t *h = &r->out_headers[i];
        if (h->name.len == 0)
            continue; /* removed by a filter */
        put_str(&o, h->name);
        RP_WBUF_LIT(&o, ": ");
        put_str(&o, h->value);
        RP_WBUF_LIT(&o, "\r\n");
    }
    if (content_length >= 0 && (status_has_body(status) || r->head)) {
        RP_WBUF_LIT(&o, "Content-Length: ");
        put_uint(&o, (uint64_t)content_length);
        RP_WBUF_LIT(&o, "\r\n");
    } else if (chunked && status_has_body(status)) {
        RP_WBUF_LIT(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (status == 101) {
        /* the connection becomes a tunnel: its Connection field ("upgrade") is among the
         * response's fields, and HTTP never resumes on it */
        c->close_after = 1;
    } else if (!keep) {
        RP_WBUF_LIT(&o, "Connection: close\r\n");
        c->close_after = 1;
    } else if (r->version == 10) {
        RP_WBUF_LIT(&o, "Connection: keep-alive\r\n");
    }
    RP_WBUF_LIT(&o, "\r\n");
    return o.p ? (size_t)(o.p - buf) : 0;
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
        r->body_bytes_sent = (int64_t)body.len;
        rp_http_write(r, &iov, 1);
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
        if (r->stream == NULL)
            r->conn->close_after = 1;
        break;
    }
    if (rp_grpc_is_request(r)) /* a gRPC client understands no page, only a status */
        return rp_grpc_send_error(r, rp_grpc_status_of_http(status), rp_http_reason(status));
    return rp_http_send_response(r, status, RP_STR("text/html"), (rp_str_t){page, (size_t)n});
}
