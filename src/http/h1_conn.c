/*
 * HTTP/1.x client connections: read a head, turn it into a request, run the
 * phases, write the response, discard whatever request body nobody consumed,
 * then either wait for the next request (keep-alive, pipelining in order) or
 * close. One state at a time per connection; one timer whose meaning follows the
 * state (header deadline, body, send, keep-alive).
 *
 * A connection that waits for a request (a new one, or a keep-alive one between
 * requests) holds no buffer: its state (rp_h1_t, see h1.h) is taken from a free
 * list when bytes arrive and returned when it is idle again, as nginx does, so
 * an idle connection costs the connection object alone.
 */
#include "http/h1.h"
#include "http/error_log.h"
#include "core/log.h"
#include "observe/metrics.h"
#include "http/h2.h"
#include "http/ssl.h"
#include "net/listen.h"
#include "net/proxy_protocol.h"
#include "route/route.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX (256 * 1024) /* a response head larger than this is refused (502) */
#define FREE_KEEP 64          /* h1 states kept for reuse beyond those in use */
#define IN_KEEP 16384         /* a larger input buffer is not kept for reuse */

static const rp_conn_proto_t h1_proto;
static const rp_http_proto_t h1_http;

static rp_h1_t *free_states;
static unsigned nfree_states;

static void process_head(rp_h1_t *h);
static void try_finish(rp_h1_t *h);
static int body_pending(const rp_h1_t *h);

static rp_http_addr_t *addr_of(rp_conn_t *c)
{
    return c->ls->http;
}

static rp_http_core_srv_conf_t *default_srv(rp_conn_t *c)
{
    return addr_of(c)->default_server;
}

static rp_http_core_loc_conf_t *srv_loc(rp_http_core_srv_conf_t *srv)
{
    return srv->ctx->loc_conf[rp_http_core_module.index];
}

/* ---- the state a busy connection holds ---- */

static rp_h1_t *state_get(rp_conn_t *c)
{
    rp_h1_t *h = free_states;
    if (h) {
        free_states = h->next_free;
        nfree_states--;
    } else {
        h = rp_xcalloc(1, sizeof(*h));
        h->arena = rp_arena_create(8192);
        h->out = evbuffer_new();
    }
    h->c = c;
    h->state = RP_H1_HEAD;
    h->in_len = h->in_pos = 0;
    h->r = NULL;
    h->body_left = 0;
    h->body_received = 0;
    h->body_chunked = 0;
    h->close_after = 0;
    h->response_queued = 0;
    h->continue_sent = 0;
    h->reparse = 0;
    h->body_error = 0;
    h->head = NULL;
    h->head_len = 0;
    h->resp_chunked = 0;
    h->resp_close_end = 0;
    h->tunnel = NULL;
    rp_http_core_srv_conf_t *srv = default_srv(c);
    uint32_t want = srv->client_header_buffer_size < 256 ? 256
                                                          : (uint32_t)srv->client_header_buffer_size;
    if (h->in_cap < want) {
        h->in_cap = want;
        h->in = rp_xrealloc(h->in, h->in_cap);
    }
    rp_h1_parser_init(&h->parser, (uint32_t)srv->large_header_line,
                      (uint32_t)srv->large_client_header_buffers);
    event_assign(&h->wev, rp_event_base, c->fd, EV_WRITE | EV_PERSIST, rp_h1_on_write, h);
    c->data = h;
    return h;
}

/* The connection no longer needs its state (it waits for its next request, or closes):
 * back to the free list. The caller detaches it from the connection. */
static void state_put(rp_h1_t *h)
{
    event_del(&h->wev);
    h->c = NULL;
    rp_arena_reset(h->arena);
    evbuffer_drain(h->out, evbuffer_get_length(h->out));
    if (nfree_states >= FREE_KEEP) {
        rp_arena_destroy(h->arena);
        evbuffer_free(h->out);
        free(h->in);
        free(h);
        return;
    }
    if (h->in_cap > IN_KEEP) {
        free(h->in);
        h->in = NULL;
        h->in_cap = 0;
    }
    h->next_free = free_states;
    free_states = h;
    nfree_states++;
}

/* The request's exchange is over: release what it holds outside its arena, log it. */
static void end_request(rp_h1_t *h)
{
    rp_request_t *r = h->r;
    if (r == NULL)
        return;
    rp_http_request_end(r);
    h->r = NULL;
}

static void release(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    if (h == NULL)
        return;
    end_request(h); /* while the TLS state is still there: its log may read it */
    c->data = NULL;
    state_put(h);
}

/* ---- waiting for a request ---- */

/* Whether the connection may carry another request after r's response. */
static int keepalive(rp_h1_t *h, rp_request_t *r)
{
    rp_http_core_loc_conf_t *clcf = r->clcf;
    /* As in nginx: keepalive_timeout 0 disables keep-alive, and the request that reaches
     * keepalive_requests is the connection's last. */
    return r->keepalive && !h->close_after && !h->c->draining &&
           (clcf == NULL || (clcf->keepalive_timeout > 0 &&
                             h->c->requests < (unsigned)clcf->keepalive_requests));
}

void rp_h1_start(rp_conn_t *c)
{
    rp_conn_set_proto(c, &h1_proto, NULL);
    rp_conn_set_timer(c, default_srv(c)->client_header_timeout);
    if (rp_conn_tls_pending(c))
        event_active(&c->rev, EV_READ, 1); /* the request may have come with the handshake */
}

/* As nginx: a plain HTTP request on a TLS port gets a plain answer saying so. */
static const char plain_on_tls[] =
    "HTTP/1.1 400 Bad Request\r\nServer: rampart\r\nContent-Type: text/html\r\n"
    "Content-Length: 156\r\nConnection: close\r\n\r\n"
    "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title>"
    "</head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n"
    "</html>\r\n";

void rp_http_init_connection(rp_conn_t *c)
{
    rp_http_addr_t *addr = addr_of(c);
    if (addr->proxy_protocol && !c->proxy_read) {
        /* before TLS and before either HTTP: the balancer's header comes first */
        rp_proxy_protocol_read(c, default_srv(c)->client_header_timeout,
                               rp_http_init_connection);
        return;
    }
    if (addr->ssl && !c->tls_ready) {
        rp_conn_tls_accept(c, rp_ssl_default_ctx(addr), rp_ssl_handshake_timeout(addr),
                           plain_on_tls);
        return;
    }
    if (c->ssl) {
        const unsigned char *proto;
        unsigned plen;
        SSL_get0_alpn_selected(c->ssl, &proto, &plen);
        if (plen == 2 && memcmp(proto, "h2", 2) == 0) {
            event_active(&c->rev, EV_READ, 1);
            rp_h2_start(c, NULL, 0);
            return;
        }
    }
    rp_h1_start(c);
}

static void h1_drain(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    /* A connection that already served requests and waits idle may go: clients retry
     * those (RFC 9112 9.3.1). One that never sent a request yet is a request in
     * flight on the wire; it gets its answer with "Connection: close". */
    if (h == NULL) {
        if (c->requests > 0)
            rp_conn_free(c);
        return;
    }
    h->close_after = 1;
    if (h->state == RP_H1_HEAD && c->requests > 0 && h->in_len == 0)
        rp_conn_free(c);
}

/* ---- the request ---- */

/* Answers a request that failed before (or while) it was understood, then closes. */
static void head_error(rp_h1_t *h, int status, const char *reason)
{
    rp_conn_t *c = h->c;
    rp_request_t *r = h->r;
    rp_metrics_conn_reading(c, 0);
    if (r == NULL) {
        /* $request_time counts from here for a head that never parsed */
        r = rp_http_request_new(c, h->arena, &h1_http);
        r->version = 11;
        h->r = r;
    }
    r->keepalive = 0;
    h->close_after = 1;
    h->state = RP_H1_BUSY;
    event_del(&c->rev);
    event_del(&c->timer);
    rp_http_process_request(r, status, reason);
}

/* Checks the head's framing and routing headers; returns 0 or an HTTP status. */
static int setup_request(rp_h1_t *h, rp_request_t *r, const char **why)
{
    rp_conn_t *c = h->c;
    rp_h1_parser_t *p = &h->parser;
    const char *b = h->in;
    rp_h1_framing_t f;

    r->method = (rp_str_t){b + p->method.off, p->method.len};
    r->request_uri = (rp_str_t){b + p->target.off, p->target.len};
    r->version = p->version;
    r->scheme = c->ssl ? RP_STR("https") : RP_STR("http");
    r->head = rp_str_eq(r->method, "HEAD");
    r->nheaders = p->nheaders;
    r->headers = rp_arena_alloc(r->arena, sizeof(rp_header_t) * (p->nheaders + 1));
    for (unsigned i = 0; i < p->nheaders; i++) {
        rp_header_t *hd = &r->headers[i];
        hd->name = (rp_str_t){b + p->headers[i].name.off, p->headers[i].name.len};
        hd->value = (rp_str_t){b + p->headers[i].value.off, p->headers[i].value.len};
    }

    int status = rp_h1_framing(p, b, &f, why);
    if (status)
        return status;
    r->content_length = f.content_length;
    r->chunked = f.chunked;
    r->expect_continue = f.expect_continue;
    r->keepalive = f.conn_close ? 0 : r->version == 11 ? 1 : f.conn_keepalive;
    rp_str_t host = f.host >= 0 ? r->headers[f.host].value : RP_STR("");

    /* Target: origin-form "/path?query", absolute-form "http://host/path", or "*". */
    rp_str_t target = r->request_uri;
    if (target.len >= 7 && (strncasecmp(target.data, "http://", 7) == 0 ||
                            (target.len >= 8 && strncasecmp(target.data, "https://", 8) == 0))) {
        size_t skip = target.data[4] == ':' ? 7 : 8;
        const char *auth = target.data + skip, *end = target.data + target.len;
        const char *slash = memchr(auth, '/', (size_t)(end - auth));
        const char *q = memchr(auth, '?', (size_t)(end - auth));
        if (q && (!slash || q < slash))
            slash = q;
        host = (rp_str_t){auth, (size_t)((slash ? slash : end) - auth)};
        if (memchr(host.data, '@', host.len)) {
            *why = "userinfo in request target";
            return 400;
        }
        target = slash ? (rp_str_t){slash, (size_t)(end - slash)} : RP_STR("/");
        if (target.data[0] == '?') {
            char *t = rp_arena_alloc(r->arena, target.len + 2);
            t[0] = '/';
            memcpy(t + 1, target.data, target.len);
            target = (rp_str_t){t, target.len + 1};
        }
    } else if (rp_str_eq(target, "*")) {
        if (!rp_str_eq(r->method, "OPTIONS")) {
            *why = "asterisk target outside OPTIONS";
            return 400;
        }
        target = RP_STR("/");
    } else if (target.data[0] != '/') {
        *why = rp_str_eq(r->method, "CONNECT") ? "CONNECT is not supported"
                                                : "invalid request target";
        return rp_str_eq(r->method, "CONNECT") ? 405 : 400;
    }

    const char *qm = memchr(target.data, '?', target.len);
    size_t plen = qm ? (size_t)(qm - target.data) : target.len;
    if (qm)
        r->args = (rp_str_t){qm + 1, target.len - plen - 1};
    char *norm = rp_arena_alloc(r->arena, plen + 2);
    size_t nlen;
    if (rp_uri_normalize(target.data, plen, norm, &nlen, default_srv(c)->merge_slashes) != 0) {
        *why = "invalid path";
        return 400;
    }
    r->uri = (rp_str_t){norm, nlen};

    if (host.len) {
        char *hb = rp_arena_alloc(r->arena, host.len + 1);
        size_t hlen;
        if (rp_host_normalize(host.data, host.len, hb, &hlen) != 0) {
            *why = "invalid host";
            return 400;
        }
        r->host = (rp_str_t){hb, hlen};
    } else {
        r->host = RP_STR("");
    }
    return 0;
}

static void start_request(rp_h1_t *h)
{
    rp_conn_t *c = h->c;
    rp_request_t *r = rp_http_request_new(c, h->arena, &h1_http);
    h->r = r;
    r->request_length = h->in_pos; /* the head starts at 0 */
    c->requests++;
    rp_metrics_conn_reading(c, 0);

    const char *why = NULL;
    int status = setup_request(h, r, &why);
    if (status) {
        head_error(h, status, why);
        return;
    }

    /* Body framing: whatever the phases do not consume is discarded before the next request. */
    h->body_left = r->chunked ? 0 : (r->content_length > 0 ? r->content_length : 0);
    h->body_chunked = r->chunked;
    h->body_received = 0;
    h->body_error = 0;
    h->continue_sent = 0;
    if (h->body_chunked)
        rp_chunked_init(&h->chunked);

    h->state = RP_H1_BUSY;
    h->response_queued = 0;
    /* No timer while the phases work: each wait (body, output) arms its own. */
    event_del(&c->timer);
    rp_http_process_request(r, 0, NULL);
}

static int body_pending(const rp_h1_t *h)
{
    return h->body_left > 0 || h->body_chunked;
}

static size_t h1_pending(const rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    return evbuffer_get_length(h->out);
}

/* Drops up to len body bytes from buf (decoding chunked framing in place); returns the
 * number used, or (size_t)-1 for bad chunked framing. */
static size_t discard_bytes(rp_h1_t *h, char *buf, size_t len)
{
    if (h->body_chunked) {
        size_t out = len, consumed = 0;
        int rc = rp_chunked_decode(&h->chunked, buf, &out, &consumed);
        if (rc < 0)
            return (size_t)-1;
        if (rc == 1)
            h->body_chunked = 0;
        return consumed;
    }
    size_t used = h->body_left < (int64_t)len ? (size_t)h->body_left : len;
    h->body_left -= (int64_t)used;
    return used;
}

/* $request_length: the body's bytes as they came, framing included (nginx's count). */
static void count_in(rp_h1_t *h, size_t n)
{
    if (h->r && n != (size_t)-1)
        h->r->request_length += (int64_t)n;
}

/* Consumes body bytes sitting in the input buffer after the head. Returns -1 on bad framing. */
static int discard_buffered(rp_h1_t *h)
{
    uint32_t avail = h->in_len - h->in_pos;
    if (avail == 0 || !body_pending(h))
        return 0;
    size_t used = discard_bytes(h, h->in + h->in_pos, avail);
    count_in(h, used);
    if (used == (size_t)-1)
        return -1;
    if (used) {
        memmove(h->in + h->in_pos, h->in + h->in_pos + used, avail - used);
        h->in_len -= (uint32_t)used;
    }
    return 0;
}

static void next_request(rp_h1_t *h)
{
    rp_conn_t *c = h->c;
    rp_http_core_loc_conf_t *clcf = h->r ? h->r->clcf : srv_loc(default_srv(c));
    int64_t ka = clcf->keepalive_timeout;

    uint32_t rest = h->in_len - h->in_pos;
    memmove(h->in, h->in + h->in_pos, rest);
    h->in_len = rest;
    h->in_pos = 0;
    end_request(h);
    rp_arena_reset(h->arena);
    rp_http_core_srv_conf_t *srv = default_srv(c);

    if (rest) {
        rp_h1_parser_init(&h->parser, (uint32_t)srv->large_header_line,
                          (uint32_t)srv->large_client_header_buffers);
        /* Pipelined bytes: parse them from the loop, not from here, so a long pipeline
         * neither deepens the stack nor starves other connections. */
        h->state = RP_H1_HEAD;
        h->reparse = 1;
        event_add(&c->rev, NULL);
        event_active(&c->rev, EV_READ, 1);
        rp_conn_set_timer(c, srv->client_header_timeout);
        return;
    }
    if (ka <= 0 || c->draining) {
        rp_conn_free(c);
        return;
    }
    /* Idle: the connection keeps nothing but itself until the next request (TLS lets go
     * of its record buffers by itself: SSL_MODE_RELEASE_BUFFERS). */
    c->data = NULL;
    state_put(h);
    event_add(&c->rev, NULL);
    if (rp_conn_tls_pending(c))
        event_active(&c->rev, EV_READ, 1); /* a pipelined request already decrypted */
    rp_conn_set_timer(c, ka);
}

/* Called whenever output drained or body bytes were consumed: moves on when both are done. */
static void try_finish(rp_h1_t *h)
{
    rp_conn_t *c = h->c;
    if (h->state != RP_H1_BUSY || !h->response_queued || evbuffer_get_length(h->out) > 0)
        return;
    if (h->close_after) {
        if (body_pending(h) || h->in_len > h->in_pos) {
            end_request(h);
            c->data = NULL;
            state_put(h);
            rp_conn_linger(c);
        } else {
            rp_conn_free(c);
        }
        return;
    }
    if (body_pending(h)) {
        event_add(&c->rev, NULL);
        rp_conn_set_timer(c, h->r->clcf->client_body_timeout);
        return;
    }
    next_request(h);
}

void rp_h1_write_out(rp_h1_t *h)
{
    rp_conn_t *c = h->c;
    while (evbuffer_get_length(h->out) > 0) {
        int n = rp_conn_write_buffer(c, h->out, -1);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                event_add(&h->wev, NULL);
                rp_conn_set_timer(c, h->send_timeout);
                return;
            }
            c->failed = 1;
            rp_conn_free(c);
            return;
        }
    }
    event_del(&h->wev);
    if (h->state == RP_H1_TUNNEL) {
        event_del(&c->timer); /* send_timeout ran only while output waited */
        h->tunnel(h->tunnel_arg, EV_WRITE);
        return;
    }
    rp_request_t *r = h->r;
    if (r && r->on_drain && !h->response_queued) {
        if (!r->on_body)
            event_del(&c->timer);
        rp_http_drained(r);
        return;
    }
    try_finish(h);
}

void rp_h1_on_write(evutil_socket_t fd, short what, void *arg)
{
    rp_h1_t *h = arg;
    const rp_log_t *saved = rp_log_enter(h->state == RP_H1_BUSY ? h->r : NULL);
    rp_h1_write_out(h);
    rp_log_leave(saved);
}

int rp_h1_write_raw(rp_h1_t *h, const struct iovec *iov, int iovcnt)
{
    rp_conn_t *c = h->c;
    size_t skip = 0;
    if (c->failed)
        return -1;
    if (h->r)
        for (int i = 0; i < iovcnt; i++)
            h->r->bytes_sent += (int64_t)iov[i].iov_len;
    if (evbuffer_get_length(h->out) == 0) {
        /* Nothing queued: hand the bytes to the kernel now, without a copy. */
        ssize_t n = rp_conn_writev(c, iov, iovcnt);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                c->failed = 1;
                return -1;
            }
            n = 0;
        }
        skip = (size_t)n;
    }
    int queued = 0, was_waiting = evbuffer_get_length(h->out) > 0;
    for (int i = 0; i < iovcnt; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        evbuffer_add(h->out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
        queued = 1;
    }
    /* send_timeout counts from the last progress, as nginx's: more bytes queued behind a
     * client that reads nothing do not start it again */
    if (queued && !was_waiting) {
        event_add(&h->wev, NULL);
        rp_conn_set_timer(c, h->send_timeout);
    }
    return 0;
}

/* ---- the response ---- */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return put(p, tmp + i, sizeof(tmp) - (size_t)i);
}

/*
 * Serializes r's response head (status line, Server, Date, r->out_headers, framing,
 * Connection) into request memory and decides whether the connection stays open.
 * A body of unknown length is chunked (HTTP/1.1) or ends with the connection.
 */
static int h1_send_head(rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    int status = r->status;
    int body = rp_http_status_has_body(status);
    int64_t cl = r->out_length;
    /* HTTP/1.1 chunks a body of unknown length (a HEAD says what the GET would do);
     * HTTP/1.0 ends it with the connection */
    int chunked = cl < 0 && body && r->version == 11;
    int keep = keepalive(h, r);
    if (cl < 0 && !chunked && body && !r->head)
        keep = 0; /* the body ends when the connection does */

    const char *reason = r->reason.len ? r->reason.data : rp_http_reason(status);
    size_t reason_len = r->reason.len ? r->reason.len : strlen(reason);
    size_t need = 32 + reason_len + 96 + sizeof(PACKAGE_VERSION) + 64;
    for (unsigned i = 0; i < r->nout_headers; i++)
        need += r->out_headers[i].name.len + r->out_headers[i].value.len + 4;
    if (need > HEAD_MAX)
        return -1;
    char *buf = rp_arena_alloc(r->arena, need), *p = buf;

    /* RFC 9110 2.5: a server answers with the highest version it conforms to whose major
     * version the client's request had, HTTP/1.1 for an HTTP/1.0 request too (as nginx,
     * HAProxy and Apache do), and for a request refused before its version was read. What
     * an HTTP/1.0 client cannot take (chunked coding, persistence by default) still
     * follows r->version. */
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (uint64_t)status);
    p = put(p, " ", 1);
    p = put(p, reason, reason_len);
    if (r->clcf == NULL || r->clcf->server_tokens)
        p = PUT_LIT(p, "\r\nServer: rampart/" PACKAGE_VERSION "\r\nDate: ");
    else
        p = PUT_LIT(p, "\r\nServer: rampart\r\nDate: ");
    p = put(p, rp_http_date(), 29);
    p = PUT_LIT(p, "\r\n");
    for (unsigned i = 0; i < r->nout_headers; i++) {
        const rp_header_t *hd = &r->out_headers[i];
        if (hd->name.len == 0)
            continue; /* removed by a filter */
        p = put(p, hd->name.data, hd->name.len);
        p = PUT_LIT(p, ": ");
        p = put(p, hd->value.data, hd->value.len);
        p = PUT_LIT(p, "\r\n");
    }
    if (cl >= 0 && (body || r->head)) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_uint(p, (uint64_t)cl);
        p = PUT_LIT(p, "\r\n");
    } else if (chunked) {
        p = PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    if (status == 101) {
        /* the connection becomes a tunnel: its Connection field ("upgrade") is among the
         * response's fields, and HTTP never resumes on it */
        h->close_after = 1;
    } else if (!keep) {
        p = PUT_LIT(p, "Connection: close\r\n");
        h->close_after = 1;
    } else if (r->version == 10) {
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    }
    p = PUT_LIT(p, "\r\n");

    h->head = buf;
    h->head_len = (size_t)(p - buf);
    h->resp_chunked = chunked && !r->head;
    h->resp_close_end = cl < 0 && !chunked && body && !r->head;
    h->send_timeout = r->clcf ? r->clcf->send_timeout : 60000;
    if (r->expect_continue && body_pending(h) && !h->continue_sent) {
        /* We answer without having asked for the body; the client may never send it. */
        h->close_after = 1;
    }
    return 0;
}

static int h1_head_sent(const rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    return h->head_len == 0;
}

static int h1_flush_head(rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    if (h->head_len == 0)
        return 0;
    struct iovec iov = {h->head, h->head_len};
    h->head_len = 0;
    return rp_h1_write_raw(h, &iov, 1);
}

static int h1_write(rp_request_t *r, const struct iovec *iov, int iovcnt)
{
    rp_h1_t *h = r->conn->data;
    struct iovec v[16];
    char hdr[24];
    int k = 0;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    if (n == 0 || r->head)
        return h1_flush_head(r);
    if (iovcnt > 12)
        return -1; /* a caller's bug: no handler writes that many pieces at once */
    if (h->head_len) {
        /* the head goes out with the first body bytes: one write for small responses */
        v[k++] = (struct iovec){h->head, h->head_len};
        h->head_len = 0;
    }
    if (h->resp_chunked) {
        int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
        v[k++] = (struct iovec){hdr, (size_t)hl};
    }
    for (int i = 0; i < iovcnt; i++)
        v[k++] = iov[i];
    if (h->resp_chunked)
        v[k++] = (struct iovec){(void *)"\r\n", 2};
    return rp_h1_write_raw(h, v, k);
}

static void h1_end(rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    rp_conn_t *c = h->c;
    if (h->resp_chunked) {
        struct iovec iov[2];
        int k = 0;
        if (h->head_len)
            iov[k++] = (struct iovec){h->head, h->head_len};
        iov[k++] = (struct iovec){(void *)"0\r\n\r\n", 5};
        h->head_len = 0;
        h->resp_chunked = 0;
        rp_h1_write_raw(h, iov, k);
    } else {
        h1_flush_head(r);
    }
    h->response_queued = 1;
    r->on_body = NULL;
    r->on_drain = NULL;
    if (c->failed) {
        rp_conn_free(c);
        return;
    }
    if (h->state == RP_H1_BUSY && body_pending(h) && !h->close_after) {
        if (discard_buffered(h) != 0)
            h->close_after = 1;
    }
    rp_h1_write_out(h);
}

static int h1_send_body(rp_request_t *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
    int rc = 0;
    if (iovcnt)
        rc = h1_write(r, iov, iovcnt);
    if (flags & RP_BODY_LAST)
        h1_end(r);
    return rc;
}

static void h1_abort(rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    rp_conn_t *c = h->c;
    h->close_after = 1;
    r->on_body = NULL;
    r->on_drain = NULL;
    h->response_queued = 1;
    if (h->head_len == 0 && h->resp_close_end)
        c->reset = 1; /* a close-delimited body: only a reset says "incomplete" */
    h->head_len = 0;
    if (c->reset || c->failed) {
        rp_conn_free(c);
        return;
    }
    /* Flush what is queued, then close: the short body tells the client it was cut. */
    h->body_left = 0;
    h->body_chunked = 0;
    h->in_len = h->in_pos;
    rp_h1_write_out(h);
}

static void h1_close_now(rp_request_t *r)
{
    rp_h1_t *h = r->conn->data;
    h->close_after = 1;
    shutdown(h->c->fd, SHUT_RDWR);
    h->send_timeout = 60000;
    h1_end(r);
}

static int h1_trailers(rp_request_t *r, const rp_header_t *hd, unsigned n)
{
    return -1; /* HTTP/1 responses carry no trailers here */
}

static int h1_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    rp_h1_t *h = r->conn->data;
    rp_conn_t *c = h->c;
    *n = 0;
    if (h->body_error)
        return -1;
    if (!body_pending(h))
        return 1;

    int64_t max = (int64_t)r->clcf->client_max_body_size;
    size_t got = 0;
    uint32_t avail = h->in_len - h->in_pos;
    if (avail == 0 && r->expect_continue && !h->continue_sent && !h->response_queued) {
        /* RFC 9110 10.1.1: the client waits for this before it sends the body. It goes
         * ahead of any response bytes, so the output buffer is empty here. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        h->continue_sent = 1;
        struct iovec iov = {(void *)cont, sizeof(cont) - 1};
        if (rp_h1_write_raw(h, &iov, 1) != 0) {
            h->body_error = 1;
            r->body_status = 0;
            return -1;
        }
    }

    if (avail) {
        /* Bytes that arrived with the head. */
        size_t take = avail < cap ? avail : cap;
        if (!h->body_chunked && (int64_t)take > h->body_left)
            take = (size_t)h->body_left;
        memcpy(buf, h->in + h->in_pos, take);
        got = take;
        size_t used = take;
        if (h->body_chunked) {
            size_t consumed = 0;
            int rc = rp_chunked_decode(&h->chunked, buf, &got, &consumed);
            if (rc < 0)
                goto bad;
            used = consumed;
            if (rc == 1)
                h->body_chunked = 0;
        } else {
            h->body_left -= (int64_t)take;
        }
        memmove(h->in + h->in_pos, h->in + h->in_pos + used, avail - used);
        h->in_len -= (uint32_t)used;
        count_in(h, used);
    } else {
        size_t want = cap;
        if (!h->body_chunked && (int64_t)want > h->body_left)
            want = (size_t)h->body_left;
        ssize_t k = rp_conn_read(c, buf, want);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_add(&c->rev, NULL);
            rp_conn_set_timer(c, r->clcf->client_body_timeout);
            return 0;
        }
        if (k <= 0) {
            h->body_error = 1;
            r->body_status = 0;
            h->close_after = 1;
            return -1;
        }
        got = (size_t)k;
        if (h->body_chunked) {
            size_t consumed = 0;
            int rc = rp_chunked_decode(&h->chunked, buf, &got, &consumed);
            if (rc < 0)
                goto bad;
            count_in(h, rc == 1 ? consumed : (size_t)k);
            if (rc == 1) {
                h->body_chunked = 0;
                size_t rest = (size_t)k - consumed;
                if (rest) {
                    /* A pipelined request followed the body: keep it if it fits. */
                    if (h->in_cap - h->in_len >= rest) {
                        memcpy(h->in + h->in_len, buf + consumed, rest);
                        h->in_len += (uint32_t)rest;
                    } else {
                        h->close_after = 1;
                    }
                }
            }
        } else {
            h->body_left -= k;
            count_in(h, (size_t)k);
        }
    }
    h->body_received += (int64_t)got;
    if (max && h->body_received > max) {
        h->body_error = 1;
        r->body_status = 413;
        h->close_after = 1;
        return -1;
    }
    *n = got;
    if (!body_pending(h)) {
        event_del(&c->timer);
        return 1;
    }
    return 0;

bad:
    h->body_error = 1;
    r->body_status = 400;
    h->close_after = 1;
    h->body_chunked = 0;
    return -1;
}

static const rp_http_proto_t h1_http = {
    .name = "HTTP/1.1",
    .send_head = h1_send_head,
    .send_body = h1_send_body,
    .flush_head = h1_flush_head,
    .head_sent = h1_head_sent,
    .abort = h1_abort,
    .pending = h1_pending,
    .read_body = h1_read_body,
    .close_now = h1_close_now,
    .trailers = h1_trailers,
};

/* ---- reading ---- */

static void process_head(rp_h1_t *h)
{
    rp_h1_result_t rc = rp_h1_parse_request(&h->parser, h->in, h->in_len);
    if (rc == RP_H1_AGAIN) {
        /* TLS may hold decrypted bytes the socket will not signal again */
        if (rp_conn_tls_pending(h->c))
            event_active(&h->c->rev, EV_READ, 1);
        return;
    }
    if (rc == RP_H1_ERROR) {
        head_error(h, h->parser.status, h->parser.reason);
        return;
    }
    h->in_pos = h->parser.pos;
    /* The read event stays armed: most clients send nothing until they have the answer,
     * and disarming it now would cost two epoll_ctl calls per request. If bytes do come,
     * the read handler disarms it then. */
    start_request(h);
}

/* Readable while a request is answered: body bytes for the handler, pipelined bytes,
 * or the client gave up. */
static void busy_read(rp_h1_t *h)
{
    rp_conn_t *c = h->c;
    rp_request_t *r = h->r;
    /* Only a content handler that asked for body bytes reads now; otherwise the bytes
     * wait in the kernel (back-pressure on the client). */
    event_del(&c->rev);
    if (r && r->on_body) {
        void (*fn)(rp_request_t *) = r->on_body;
        r->on_body = NULL;
        fn(r);
        return;
    }
    /* A client that is gone must not keep an upstream busy (nginx logs these 499). */
    char b;
    ssize_t k = recv(c->fd, &b, 1, MSG_PEEK);
    if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
        rp_log_error(RP_LOG_INFO, 0, "client prematurely closed connection while waiting "
                                     "for the response");
        if (r && !r->response_started)
            r->status = 499;
        c->failed = 1;
        rp_conn_free(c);
    }
}

static void h1_read(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    int fresh = h == NULL;
    if (fresh)
        h = state_get(c); /* a request begins: take the state to read it into */

    if (h->state == RP_H1_BUSY && !h->response_queued) {
        const rp_log_t *saved = rp_log_enter(h->r); /* the request's error_log */
        busy_read(h);
        rp_log_leave(saved);
        return;
    }

    if (h->reparse) {
        h->reparse = 0;
        if (h->state == RP_H1_HEAD) {
            process_head(h);
            return;
        }
    }

    if (h->in_len == h->in_cap) {
        rp_http_core_srv_conf_t *srv = default_srv(c);
        uint32_t max = (uint32_t)srv->large_client_header_buffers + 1024;
        if (h->state != RP_H1_BUSY && h->in_cap < max) {
            h->in_cap = h->in_cap * 2 > max ? max : h->in_cap * 2;
            h->in = rp_xrealloc(h->in, h->in_cap);
        } else if (h->state == RP_H1_BUSY && body_pending(h)) {
            /* The head fills the buffer: drop body bytes through a scratch buffer. */
            char sink[16384];
            ssize_t k = rp_conn_read(c, sink, sizeof(sink));
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                c->failed = 1;
                rp_conn_free(c);
                return;
            }
            if (k > 0 && discard_bytes(h, sink, (size_t)k) != (size_t)k) {
                /* body ended inside the scratch bytes: what follows is a pipelined request
                 * we cannot keep, so this connection ends after the response */
                h->close_after = 1;
            }
            if (!body_pending(h))
                event_del(&c->rev);
            try_finish(h);
            return;
        } else if (h->state == RP_H1_BUSY) {
            event_del(&c->rev); /* pipelined bytes wait for the current response */
            return;
        }
    }
    ssize_t n = rp_conn_read(c, h->in + h->in_len, h->in_cap - h->in_len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            if (fresh) {
                c->data = NULL; /* nothing came after all: stay light */
                state_put(h);
            }
            return;
        }
        c->failed = 1;
        rp_conn_free(c);
        return;
    }
    if (n == 0) {
        if (h->state == RP_H1_BUSY && h->response_queued && evbuffer_get_length(h->out) > 0 &&
            !body_pending(h)) {
            /* The client half-closed after its request: finish writing, then close. */
            h->close_after = 1;
            event_del(&c->rev);
            return;
        }
        rp_conn_free(c);
        return;
    }
    h->in_len += (uint32_t)n;
    if (fresh && c->requests > 0)
        rp_conn_set_timer(c, default_srv(c)->client_header_timeout); /* was keepalive_timeout */

    switch (h->state) {
    case RP_H1_HEAD:
        if (addr_of(c)->http2 && c->requests == 0 && c->ssl == NULL) {
            /* a cleartext http2 port: the client preface means prior knowledge */
            size_t k = h->in_len < RP_H2_PREFACE_LEN ? h->in_len : RP_H2_PREFACE_LEN;
            if (memcmp(h->in, RP_H2_PREFACE, k) == 0) {
                if (k < RP_H2_PREFACE_LEN)
                    break;
                /* HTTP/2 takes the connection and the bytes read so far; the HTTP/1 state
                 * goes once it has them (h2 may even have closed the connection) */
                c->data = NULL;
                rp_h2_start(c, h->in, h->in_len);
                state_put(h);
                return;
            }
        }
        rp_metrics_conn_reading(c, 1); /* until the head is complete or refused */
        process_head(h); /* the connection may be gone when it returns */
        break;
    case RP_H1_BUSY:
        if (discard_buffered(h) != 0) {
            h->close_after = 1;
            h->body_chunked = 0;
            h->body_left = 0;
            h->in_len = h->in_pos;
            event_del(&c->rev);
            try_finish(h);
            return;
        }
        if (!body_pending(h))
            event_del(&c->rev);
        try_finish(h);
        break;
    }
}

static void h1_timeout_in(rp_conn_t *c);

/* A busy connection's timeout is its request's: logged to the request's error_log. */
static void h1_timeout(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    const rp_log_t *saved = rp_log_enter(h && h->state == RP_H1_BUSY ? h->r : NULL);
    h1_timeout_in(c);
    rp_log_leave(saved);
}

static void h1_timeout_in(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    if (h == NULL) {
        rp_conn_free(c); /* keepalive_timeout, or a new connection that sent nothing */
        return;
    }
    switch (h->state) {
    case RP_H1_HEAD:
        if (h->in_len > 0)
            rp_log_error(RP_LOG_INFO, 0, "client timed out sending the request head");
        rp_conn_free(c);
        return;
    case RP_H1_BUSY: {
        rp_request_t *r = h->r;
        if (r && r->on_body && !r->response_started) {
            /* The handler waits for body bytes that do not come: answer 408 as nginx does,
             * after letting the handler release what it holds (its upstream). */
            rp_log_error(RP_LOG_INFO, 0, "client timed out (client_body_timeout)");
            r->on_body = NULL;
            rp_http_run_cleanups(r);
            h->body_left = 0;
            h->body_chunked = 0;
            rp_http_send_error(r, 408);
            return;
        }
        rp_log_error(RP_LOG_INFO, 0, "client timed out (%s)",
                     evbuffer_get_length(h->out) ? "send_timeout" : "client_body_timeout");
        c->failed = 1;
        rp_conn_free(c);
        return;
    }
    }
}

static const rp_conn_proto_t h1_proto = {
    .name = "http/1.1",
    .read = h1_read,
    .timeout = h1_timeout,
    .drain = h1_drain,
    .release = release,
};
