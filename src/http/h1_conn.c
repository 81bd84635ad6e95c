/*
 * HTTP/1.x downstream connections: read a head, turn it into a request, run the
 * phases, write the response, discard whatever request body nobody consumed,
 * then either wait for the next request (keep-alive, pipelining in order) or
 * close. One state at a time per connection; one timer whose meaning follows the
 * state (header deadline, body, send, keep-alive, lingering close). After a 101
 * the connection becomes one end of a byte tunnel whose owner reads and writes
 * through the small rp_conn_tunnel_* API, so TLS stays this file's business.
 */
#include "http/conn.h"
#include "core/log.h"
#include "http/h2.h"
#include "http/ssl.h"
#include "net/tls.h"
#include "route/route.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum {
    ST_HANDSHAKE, /* TLS: the handshake is under way */
    ST_HEAD,   /* reading a request head */
    ST_BUSY,   /* a request is being answered (and its body discarded) */
    ST_IDLE,   /* keep-alive: waiting for the next request */
    ST_LINGER, /* response sent, reading and dropping input before the close */
    ST_H2,     /* HTTP/2: h2_conn.c drives the connection */
    ST_TUNNEL, /* after a 101: bytes both ways for the tunnel's owner (upstream/tunnel.c) */
};

#define LINGER_MS 2000

struct event_base *rp_event_base;
void (*rp_conn_count_changed)(void);

static rp_conn_t *conns;
static unsigned nconns;
static rp_conn_t *freelist;
static uint64_t conn_number;
static int draining;

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void process_head(rp_conn_t *c);
static void try_finish(rp_conn_t *c);

unsigned rp_conn_count(void)
{
    return nconns;
}

unsigned rp_conn_count_of(const rp_cycle_t *cycle)
{
    unsigned n = 0;
    for (const rp_conn_t *c = conns; c; c = c->next)
        if (c->addr->cycle == cycle)
            n++;
    return n;
}

static rp_http_core_srv_conf_t *default_srv(rp_conn_t *c)
{
    return c->addr->default_server;
}

static rp_http_core_loc_conf_t *srv_loc(rp_http_core_srv_conf_t *srv)
{
    return srv->ctx->loc_conf[rp_http_core_module.index];
}

static void set_timer(rp_conn_t *c, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(&c->timer, &tv);
}

/* The request's exchange is over: release what it holds outside its arena, log it. */
static void end_request(rp_conn_t *c)
{
    rp_request_t *r = c->r;
    if (r == NULL)
        return;
    r->on_body = NULL;
    r->on_drain = NULL;
    if (r->cleanup) {
        void (*fn)(rp_request_t *) = r->cleanup;
        r->cleanup = NULL;
        fn(r);
    }
    rp_http_log_request(r);
    c->r = NULL;
}

/* Maps a failed SSL_read/SSL_write (k <= 0) to read(2)/write(2) conventions: 0 for
 * the end of a read, or -1 with errno (EAGAIN when it must wait). */
static ssize_t tls_failed(rp_conn_t *c, int k, int reading)
{
    switch (SSL_get_error(c->ssl, k)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (reading)
            return 0;
        break;
    case SSL_ERROR_SYSCALL:
        if (reading && errno == 0)
            return 0; /* the peer closed without close_notify */
        if (errno != 0 && errno != EAGAIN)
            return -1;
        break;
    }
    errno = reading ? EPROTO : EPIPE;
    return -1;
}

/* Reads from the connection, through TLS when it has it. Like read(2). */
static ssize_t conn_read(rp_conn_t *c, void *buf, size_t n)
{
    if (c->ssl == NULL)
        return read(c->fd, buf, n);
    ERR_clear_error();
    int k = SSL_read(c->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    return k > 0 ? k : tls_failed(c, k, 1);
}

/* One TLS record's worth: a write is never split into records smaller than needed, and a
 * retried SSL_write (after WANT_WRITE) is never longer than the queue behind it. */
#define TLS_CHUNK RP_TLS_RECORD

static ssize_t tls_write(rp_conn_t *c, const void *buf, size_t n)
{
    ERR_clear_error();
    int k = SSL_write(c->ssl, buf, (int)n);
    if (k > 0) {
        c->tls_retry = 0;
        return k;
    }
    ssize_t rc = tls_failed(c, k, 0);
    if (errno == EAGAIN)
        c->tls_retry = n; /* OpenSSL wants the retry no shorter than this */
    return rc;
}

static ssize_t write_one(void *c, const void *buf, size_t n)
{
    return tls_write(c, buf, n);
}

/* Like writev(2), through TLS when the connection has it. */
static ssize_t conn_writev(rp_conn_t *c, const struct iovec *iov, int iovcnt)
{
    if (c->ssl == NULL)
        return writev(c->fd, iov, iovcnt);
    return rp_tls_writev(c, write_one, iov, iovcnt);
}

/* Writes up to max bytes (-1: all) of the output queue. */
static int out_write(rp_conn_t *c, ev_ssize_t max)
{
    if (c->ssl == NULL)
        return evbuffer_write_atmost(c->out, c->fd, max);
    size_t pending = evbuffer_get_length(c->out), n = pending;
    if (max >= 0 && (size_t)max < n)
        n = (size_t)max;
    if (n > TLS_CHUNK)
        n = TLS_CHUNK;
    if (n < c->tls_retry)
        n = c->tls_retry < pending ? c->tls_retry : pending; /* limit_rate yields to TLS */
    struct iovec iov = {evbuffer_pullup(c->out, (ev_ssize_t)n), n};
    ssize_t k = conn_writev(c, &iov, 1);
    if (k > 0)
        evbuffer_drain(c->out, (size_t)k);
    return (int)k;
}

static void conn_free(rp_conn_t *c);

ssize_t rp_conn_io_read(rp_conn_t *c, void *buf, size_t n)
{
    return conn_read(c, buf, n);
}

int rp_conn_out_write(rp_conn_t *c)
{
    return out_write(c, -1);
}

void rp_conn_set_timer(rp_conn_t *c, int64_t ms)
{
    set_timer(c, ms);
}

void rp_conn_free(rp_conn_t *c)
{
    conn_free(c);
}

static void conn_free(rp_conn_t *c)
{
    event_del(&c->io);
    event_del(&c->wio);
    event_del(&c->timer);
    rp_h2_conn_free(c); /* its streams' logs may read the TLS state too */
    end_request(c); /* first: its log may read the TLS state */
    if (c->ssl) {
        if (c->state != ST_HANDSHAKE && !c->abort_rst && !c->write_failed)
            SSL_shutdown(c->ssl); /* close_notify, best effort: never waits */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        if (c->abort_rst) {
            /* A close-delimited body cut short must not look complete: reset instead. */
            struct linger l = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        close(c->fd);
    }
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    rp_arena_reset(c->req_arena);
    evbuffer_drain(c->out, evbuffer_get_length(c->out));
    /* Keep the object, its arena and its buffers for the next connection. */
    c->next = freelist;
    freelist = c;
    if (rp_conn_count_changed)
        rp_conn_count_changed();
}

/* Half-closes and reads what the client still sends, so our last response is not lost to an RST. */
static void linger(rp_conn_t *c);

void rp_conn_linger(rp_conn_t *c)
{
    linger(c);
}

static void linger(rp_conn_t *c)
{
    if (c->ssl)
        SSL_shutdown(c->ssl);
    if (shutdown(c->fd, SHUT_WR) != 0) {
        conn_free(c);
        return;
    }
    c->state = ST_LINGER;
    event_del(&c->wio);
    event_add(&c->io, NULL);
    set_timer(c, LINGER_MS);
}

void rp_conn_accept(int fd, struct sockaddr *sa, socklen_t len, rp_http_addr_t *addr)
{
    rp_conn_t *c = freelist;
    if (c) {
        freelist = c->next;
    } else {
        c = rp_xcalloc(1, sizeof(*c));
        c->req_arena = rp_arena_create(8192);
        c->out = evbuffer_new();
    }
    c->fd = fd;
    c->state = ST_HEAD;
    c->addr = addr;
    memcpy(&c->peer, sa, len);
    c->peerlen = len;
    c->peer_text_len = 0;
    c->tls_retry = 0;
    c->locallen = 0;
    c->in_len = c->in_pos = 0;
    c->r = NULL;
    c->requests = 0;
    c->number = ++conn_number;
    c->body_left = 0;
    c->body_chunked = 0;
    c->close_after = 0;
    c->draining = 0;
    c->response_queued = 0;
    c->continue_sent = 0;
    c->reparse = 0;
    c->abort_rst = 0;
    c->write_failed = 0;
    c->body_error = 0;
    c->head_len = 0;
    c->resp_chunked = 0;
    c->resp_close_end = 0;
    c->h2 = NULL;
    c->limit_rate = 0;
    c->prev = NULL;
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    rp_http_core_srv_conf_t *srv = default_srv(c);
    if (c->in_cap < srv->client_header_buffer_size || c->in_cap < 256) {
        /* A reused connection keeps a larger buffer; a new one starts at this size. */
        c->in_cap = srv->client_header_buffer_size < 256 ? 256
                                                          : (uint32_t)srv->client_header_buffer_size;
        c->in = rp_xrealloc(c->in, c->in_cap);
    }
    rp_h1_parser_init(&c->parser, (uint32_t)srv->large_header_line,
                      (uint32_t)srv->large_client_header_buffers);
    event_assign(&c->io, rp_event_base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wio, rp_event_base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->timer, rp_event_base, on_timer, c);
    event_add(&c->io, NULL);
    c->sni[0] = '\0';
    if (addr->ssl) {
        SSL_CTX *ctx = rp_ssl_default_ctx(addr);
        c->ssl = ctx ? SSL_new(ctx) : NULL;
        if (c->ssl == NULL) {
            rp_log_error(RP_LOG_ALERT, 0, "cannot start TLS: no certificate for this address");
            conn_free(c);
            return;
        }
        SSL_set_fd(c->ssl, fd);
        SSL_set_app_data(c->ssl, c);
        SSL_set_accept_state(c->ssl);
        c->state = ST_HANDSHAKE;
        set_timer(c, rp_ssl_handshake_timeout(addr));
    } else {
        set_timer(c, srv->client_header_timeout);
    }
    if (rp_conn_count_changed)
        rp_conn_count_changed();
}

/* Moves the TLS handshake on; once done the connection reads its first request. */
static void handshake(rp_conn_t *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        event_del(&c->wio);
        const unsigned char *proto;
        unsigned plen;
        SSL_get0_alpn_selected(c->ssl, &proto, &plen);
        if (plen == 2 && memcmp(proto, "h2", 2) == 0) {
            c->state = ST_H2;
            event_active(&c->io, EV_READ, 1);
            rp_h2_start(c, NULL, 0);
            return;
        }
        c->state = ST_HEAD;
        set_timer(c, default_srv(c)->client_header_timeout);
        event_active(&c->io, EV_READ, 1); /* the request may have come with the handshake */
        return;
    }
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        event_del(&c->wio);
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        event_add(&c->wio, NULL);
        return;
    }
    unsigned long e = ERR_peek_error();
    char why[160] = "connection closed";
    if (e)
        ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    rp_log_error(RP_LOG_INFO, 0, "TLS handshake failed (%s), client: fd %d", why, c->fd);
    if (e && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST) {
        /* As nginx: a plain HTTP request on a TLS port gets a plain answer saying so. */
        static const char page[] =
            "HTTP/1.1 400 Bad Request\r\nServer: rampart\r\nContent-Type: text/html\r\n"
            "Content-Length: 156\r\nConnection: close\r\n\r\n"
            "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title>"
            "</head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n</body>\r\n"
            "</html>\r\n";
        SSL_free(c->ssl);
        c->ssl = NULL;
        if (write(c->fd, page, sizeof(page) - 1) > 0) {
            linger(c);
            return;
        }
    }
    conn_free(c);
}

/* Answers a request that failed before (or while) it was understood, then closes. */
static void head_error(rp_conn_t *c, int status, const char *reason)
{
    rp_request_t *r = c->r;
    if (r == NULL) {
        r = rp_arena_calloc(c->req_arena, sizeof(*r));
        r->conn = c;
        r->arena = c->req_arena;
        r->version = 11;
        /* $request_time counts from here for a head that never parsed */
        event_base_gettimeofday_cached(rp_event_base, &r->start);
        c->r = r;
    }
    r->srv = r->srv ? r->srv : default_srv(c);
    r->clcf = r->clcf ? r->clcf : srv_loc(r->srv);
    r->loc_conf = r->clcf->loc_conf;
    r->keepalive = 0;
    c->close_after = 1;
    c->state = ST_BUSY;
    event_del(&c->io);
    rp_log_error(RP_LOG_INFO, 0, "client sent a bad request (%d: %s), client: fd %d", status,
                 reason, c->fd);
    rp_http_send_error(r, status);
}

/* Checks the head's framing and routing headers; returns 0 or an HTTP status. */
static int setup_request(rp_conn_t *c, rp_request_t *r, const char **why)
{
    rp_h1_parser_t *p = &c->parser;
    const char *b = c->in;
    rp_h1_framing_t f;

    r->method = (rp_str_t){b + p->method.off, p->method.len};
    r->request_uri = (rp_str_t){b + p->target.off, p->target.len};
    r->version = p->version;
    r->scheme = c->ssl ? RP_STR("https") : RP_STR("http");
    r->head = rp_str_eq(r->method, "HEAD");
    r->nheaders = p->nheaders;
    r->headers = rp_arena_alloc(r->arena, sizeof(rp_header_t) * (p->nheaders + 1));
    for (unsigned i = 0; i < p->nheaders; i++) {
        rp_header_t *h = &r->headers[i];
        h->name = (rp_str_t){b + p->headers[i].name.off, p->headers[i].name.len};
        h->value = (rp_str_t){b + p->headers[i].value.off, p->headers[i].value.len};
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
        *why = rp_str_eq(r->method, "CONNECT") ? "CONNECT is not supported" : "invalid request target";
        return rp_str_eq(r->method, "CONNECT") ? 405 : 400;
    }

    const char *qm = memchr(target.data, '?', target.len);
    size_t plen = qm ? (size_t)(qm - target.data) : target.len;
    if (qm)
        r->args = (rp_str_t){qm + 1, target.len - plen - 1};
    char *norm = rp_arena_alloc(r->arena, plen + 2);
    size_t nlen;
    rp_http_core_srv_conf_t *dsrv = default_srv(c);
    if (rp_uri_normalize(target.data, plen, norm, &nlen, dsrv->merge_slashes) != 0) {
        *why = "invalid path";
        return 400;
    }
    r->uri = (rp_str_t){norm, nlen};

    if (host.len) {
        char *h = rp_arena_alloc(r->arena, host.len + 1);
        size_t hlen;
        if (rp_host_normalize(host.data, host.len, h, &hlen) != 0) {
            *why = "invalid host";
            return 400;
        }
        r->host = (rp_str_t){h, hlen};
    } else {
        r->host = RP_STR("");
    }
    return 0;
}

static void start_request(rp_conn_t *c)
{
    rp_request_t *r = rp_arena_calloc(c->req_arena, sizeof(*r));
    r->conn = c;
    r->arena = c->req_arena;
    c->r = r;
    c->requests++;
    event_base_gettimeofday_cached(rp_event_base, &r->start);

    const char *why = NULL;
    int status = setup_request(c, r, &why);
    if (status == 0 && c->ssl && (why = rp_ssl_client_refused(c->ssl, &r->error_title)) != NULL)
        status = 400; /* ssl_verify_client: nginx's answer, readable by the client */
    if (status) {
        head_error(c, status, why);
        return;
    }

    r->srv = rp_route_server(c->addr, r->host.data, r->host.len);
    r->clcf = srv_loc(r->srv);
    r->loc_conf = r->clcf->loc_conf;

    /* Body framing: whatever the phases do not consume is discarded before the next request. */
    c->body_left = r->chunked ? 0 : (r->content_length > 0 ? r->content_length : 0);
    c->body_chunked = r->chunked;
    c->body_received = 0;
    c->body_error = 0;
    c->continue_sent = 0;
    if (c->body_chunked)
        rp_chunked_init(&c->chunked);

    c->state = ST_BUSY;
    c->response_queued = 0;
    /* No timer while the phases work: each wait (body, output) arms its own. */
    event_del(&c->timer);
    rp_http_run_phases(r);
}

static int body_pending(const rp_conn_t *c)
{
    return c->body_left > 0 || c->body_chunked;
}

size_t rp_h1_pending(const rp_request_t *r)
{
    return evbuffer_get_length(r->conn->out);
}

/* Drops up to len body bytes from buf (decoding chunked framing in place); returns the
 * number used, or (size_t)-1 for bad chunked framing. */
static size_t discard_bytes(rp_conn_t *c, char *buf, size_t len)
{
    if (c->body_chunked) {
        size_t out = len, consumed = 0;
        int rc = rp_chunked_decode(&c->chunked, buf, &out, &consumed);
        if (rc < 0)
            return (size_t)-1;
        if (rc == 1)
            c->body_chunked = 0;
        return consumed;
    }
    size_t used = c->body_left < (int64_t)len ? (size_t)c->body_left : len;
    c->body_left -= (int64_t)used;
    return used;
}

/* Consumes body bytes sitting in the input buffer after the head. Returns -1 on bad framing. */
static int discard_buffered(rp_conn_t *c)
{
    uint32_t avail = c->in_len - c->in_pos;
    if (avail == 0 || !body_pending(c))
        return 0;
    size_t used = discard_bytes(c, c->in + c->in_pos, avail);
    if (used == (size_t)-1)
        return -1;
    if (used) {
        memmove(c->in + c->in_pos, c->in + c->in_pos + used, avail - used);
        c->in_len -= (uint32_t)used;
    }
    return 0;
}

static void next_request(rp_conn_t *c)
{
    rp_http_core_loc_conf_t *clcf = c->r ? c->r->clcf : srv_loc(default_srv(c));
    int64_t ka = clcf->keepalive_timeout;

    uint32_t rest = c->in_len - c->in_pos;
    memmove(c->in, c->in + c->in_pos, rest);
    c->in_len = rest;
    c->in_pos = 0;
    end_request(c);
    rp_arena_reset(c->req_arena);
    rp_http_core_srv_conf_t *srv = default_srv(c);
    rp_h1_parser_init(&c->parser, (uint32_t)srv->large_header_line,
                      (uint32_t)srv->large_client_header_buffers);

    if (rest) {
        /* Pipelined bytes: parse them from the loop, not from here, so a long pipeline
         * neither deepens the stack nor starves other connections. */
        c->state = ST_HEAD;
        c->reparse = 1;
        event_add(&c->io, NULL);
        event_active(&c->io, EV_READ, 1);
        set_timer(c, srv->client_header_timeout);
        return;
    }
    if (ka <= 0 || draining) {
        conn_free(c);
        return;
    }
    c->state = ST_IDLE;
    event_add(&c->io, NULL);
    if (c->ssl && SSL_pending(c->ssl))
        event_active(&c->io, EV_READ, 1); /* a pipelined request already decrypted */
    set_timer(c, ka);
}

/* Called whenever output drained or body bytes were consumed: moves on when both are done. */
static void try_finish(rp_conn_t *c)
{
    if (c->state != ST_BUSY || !c->response_queued || evbuffer_get_length(c->out) > 0)
        return;
    if (c->close_after) {
        if (body_pending(c) || c->in_len > c->in_pos)
            linger(c);
        else
            conn_free(c);
        return;
    }
    if (body_pending(c)) {
        event_add(&c->io, NULL);
        set_timer(c, c->r->clcf->client_body_timeout);
        return;
    }
    next_request(c);
}

static void write_out(rp_conn_t *c)
{
    for (;;) {
        size_t pending = evbuffer_get_length(c->out);
        if (pending == 0)
            break;
        ev_ssize_t allowed = -1;
        if (c->limit_rate) {
            struct timeval now;
            event_base_gettimeofday_cached(rp_event_base, &now);
            int64_t ms = (int64_t)(now.tv_sec - c->resp_start.tv_sec) * 1000 +
                         (now.tv_usec - c->resp_start.tv_usec) / 1000;
            int64_t may = (int64_t)c->limit_rate * (ms + 1000) / 1000 - (int64_t)c->resp_sent;
            if (may <= 0) {
                event_del(&c->wio);
                int64_t wait = ((int64_t)c->resp_sent - (int64_t)c->limit_rate * (ms + 1000) / 1000) *
                                   1000 / (int64_t)c->limit_rate + 1;
                set_timer(c, wait < 1 ? 1 : wait);
                return;
            }
            allowed = (ev_ssize_t)may;
        }
        int n = out_write(c, allowed);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                event_add(&c->wio, NULL);
                set_timer(c, c->send_timeout);
                return;
            }
            conn_free(c);
            return;
        }
        c->resp_sent += (size_t)n;
        if (c->limit_rate)
            continue; /* re-check the budget */
    }
    event_del(&c->wio);
    if (c->state == ST_TUNNEL) {
        event_del(&c->timer); /* send_timeout ran only while output waited */
        c->tunnel(c->tunnel_arg, EV_WRITE);
        return;
    }
    if (c->r && c->r->on_drain && !c->response_queued) {
        void (*fn)(rp_request_t *) = c->r->on_drain;
        c->r->on_drain = NULL;
        if (!c->r->on_body)
            event_del(&c->timer);
        fn(c->r);
        return;
    }
    try_finish(c);
}

static void response_begin(rp_conn_t *c)
{
    rp_request_t *r = c->r;
    c->limit_rate = r && r->clcf ? r->clcf->limit_rate : 0;
    c->send_timeout = r && r->clcf ? r->clcf->send_timeout : 60000;
    c->resp_sent = 0;
    event_base_gettimeofday_cached(rp_event_base, &c->resp_start);
    if (r && r->expect_continue && body_pending(c) && !c->continue_sent) {
        /* We answer without having asked for the body; the client may never send it. */
        c->close_after = 1;
    }
}

/* Queues bytes as they are (head, framing, body) for the client. */
static int write_raw(rp_conn_t *c, const struct iovec *iov, int iovcnt)
{
    size_t skip = 0;
    if (c->write_failed)
        return -1;
    if (evbuffer_get_length(c->out) == 0 && !c->limit_rate) {
        /* Nothing queued: hand the bytes to the kernel now, without a copy. */
        ssize_t n = conn_writev(c, iov, iovcnt);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                c->write_failed = 1;
                return -1;
            }
            n = 0;
        }
        c->resp_sent += (size_t)n;
        skip = (size_t)n;
    }
    int queued = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        evbuffer_add(c->out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
        queued = 1;
    }
    if (queued) {
        event_add(&c->wio, NULL);
        set_timer(c, c->send_timeout);
    }
    return 0;
}

int rp_h1_response_begin(rp_request_t *r, int64_t content_length)
{
    rp_conn_t *c = r->conn;
    int body = rp_http_status_has_body(r->status);
    /* HTTP/1.1 chunks a body of unknown length (a HEAD says what the GET would do);
     * HTTP/1.0 ends it with the connection */
    int chunked = content_length < 0 && body && r->version == 11;
    size_t hlen = rp_http_build_head(r, rp_http_head_buf, sizeof(rp_http_head_buf), content_length,
                                     chunked);
    if (hlen == 0)
        return -1;
    c->head_len = hlen;
    c->resp_chunked = chunked && !r->head;
    c->resp_close_end = content_length < 0 && !chunked && body && !r->head;
    response_begin(c);
    return 0;
}

int rp_h1_flush_head(rp_request_t *r)
{
    rp_conn_t *c = r->conn;
    if (c->head_len == 0)
        return 0;
    struct iovec iov = {rp_http_head_buf, c->head_len};
    c->head_len = 0;
    return write_raw(c, &iov, 1);
}

int rp_h1_write(rp_request_t *r, const struct iovec *iov, int iovcnt)
{
    rp_conn_t *c = r->conn;
    struct iovec v[16];
    char hdr[24];
    int k = 0;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    if (n == 0 || r->head)
        return rp_h1_flush_head(r);
    if (iovcnt > 12)
        return -1; /* a caller's bug: no handler writes that many pieces at once */
    if (c->head_len) {
        /* the head goes out with the first body bytes: one write for small responses */
        v[k++] = (struct iovec){rp_http_head_buf, c->head_len};
        c->head_len = 0;
    }
    if (c->resp_chunked) {
        int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
        v[k++] = (struct iovec){hdr, (size_t)hl};
    }
    for (int i = 0; i < iovcnt; i++)
        v[k++] = iov[i];
    if (c->resp_chunked)
        v[k++] = (struct iovec){(void *)"\r\n", 2};
    return write_raw(c, v, k);
}

void rp_h1_response_end(rp_request_t *r)
{
    rp_conn_t *c = r->conn;
    if (c->resp_chunked) {
        struct iovec iov[2];
        int k = 0;
        if (c->head_len)
            iov[k++] = (struct iovec){rp_http_head_buf, c->head_len};
        iov[k++] = (struct iovec){(void *)"0\r\n\r\n", 5};
        c->head_len = 0;
        c->resp_chunked = 0;
        write_raw(c, iov, k);
    } else {
        rp_h1_flush_head(r);
    }
    c->response_queued = 1;
    r->on_body = NULL;
    r->on_drain = NULL;
    if (c->write_failed) {
        conn_free(c);
        return;
    }
    if (c->state == ST_BUSY && body_pending(c) && !c->close_after) {
        if (discard_buffered(c) != 0)
            c->close_after = 1;
    }
    write_out(c);
}

void rp_h1_abort(rp_request_t *r)
{
    rp_conn_t *c = r->conn;
    c->close_after = 1;
    r->on_body = NULL;
    r->on_drain = NULL;
    c->response_queued = 1;
    if (c->head_len == 0 && c->resp_close_end)
        c->abort_rst = 1; /* a close-delimited body: only a reset says "incomplete" */
    c->head_len = 0;
    if (c->abort_rst || c->write_failed) {
        conn_free(c);
        return;
    }
    /* Flush what is queued, then close: the short body tells the client it was cut. */
    c->body_left = 0;
    c->body_chunked = 0;
    c->in_len = c->in_pos;
    write_out(c);
}

void rp_h1_close_now(rp_request_t *r)
{
    rp_conn_t *c = r->conn;
    c->close_after = 1;
    shutdown(c->fd, SHUT_RDWR);
    c->response_queued = 1;
    response_begin(c);
    rp_h1_response_end(r);
}

int rp_h1_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    rp_conn_t *c = r->conn;
    *n = 0;
    if (c->body_error)
        return -1;
    if (!body_pending(c))
        return 1;

    int64_t max = (int64_t)r->clcf->client_max_body_size;
    size_t got = 0;
    uint32_t avail = c->in_len - c->in_pos;
    if (avail == 0 && r->expect_continue && !c->continue_sent && !c->response_queued) {
        /* RFC 9110 10.1.1: the client waits for this before it sends the body. It goes
         * ahead of any response bytes, so the output buffer is empty here. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->continue_sent = 1;
        struct iovec iov = {(void *)cont, sizeof(cont) - 1};
        if (write_raw(c, &iov, 1) != 0) {
            c->body_error = 1;
            r->body_status = 0;
            return -1;
        }
    }

    if (avail) {
        /* Bytes that arrived with the head. */
        size_t take = avail < cap ? avail : cap;
        if (!c->body_chunked && (int64_t)take > c->body_left)
            take = (size_t)c->body_left;
        memcpy(buf, c->in + c->in_pos, take);
        got = take;
        size_t used = take;
        if (c->body_chunked) {
            size_t consumed = 0;
            int rc = rp_chunked_decode(&c->chunked, buf, &got, &consumed);
            if (rc < 0)
                goto bad;
            used = consumed;
            if (rc == 1)
                c->body_chunked = 0;
        } else {
            c->body_left -= (int64_t)take;
        }
        memmove(c->in + c->in_pos, c->in + c->in_pos + used, avail - used);
        c->in_len -= (uint32_t)used;
    } else {
        size_t want = cap;
        if (!c->body_chunked && (int64_t)want > c->body_left)
            want = (size_t)c->body_left;
        ssize_t k = conn_read(c, buf, want);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            event_add(&c->io, NULL);
            set_timer(c, r->clcf->client_body_timeout);
            return 0;
        }
        if (k <= 0) {
            c->body_error = 1;
            r->body_status = 0;
            c->close_after = 1;
            return -1;
        }
        got = (size_t)k;
        if (c->body_chunked) {
            size_t consumed = 0;
            int rc = rp_chunked_decode(&c->chunked, buf, &got, &consumed);
            if (rc < 0)
                goto bad;
            if (rc == 1) {
                c->body_chunked = 0;
                size_t rest = (size_t)k - consumed;
                if (rest) {
                    /* A pipelined request followed the body: keep it if it fits. */
                    if (c->in_cap - c->in_len >= rest) {
                        memcpy(c->in + c->in_len, buf + consumed, rest);
                        c->in_len += (uint32_t)rest;
                    } else {
                        c->close_after = 1;
                    }
                }
            }
        } else {
            c->body_left -= k;
        }
    }
    c->body_received += (int64_t)got;
    if (max && c->body_received > max) {
        c->body_error = 1;
        r->body_status = 413;
        c->close_after = 1;
        return -1;
    }
    *n = got;
    if (!body_pending(c)) {
        event_del(&c->timer);
        return 1;
    }
    return 0;

bad:
    c->body_error = 1;
    r->body_status = 400;
    c->close_after = 1;
    c->body_chunked = 0;
    return -1;
}

static void process_head(rp_conn_t *c)
{
    rp_h1_result_t rc = rp_h1_parse_request(&c->parser, c->in, c->in_len);
    if (rc == RP_H1_AGAIN)
        return;
    if (rc == RP_H1_ERROR) {
        head_error(c, c->parser.status, c->parser.reason);
        return;
    }
    c->in_pos = c->parser.pos;
    /* The read event stays armed: most clients send nothing until they have the answer,
     * and disarming it now would cost two epoll_ctl calls per request. If bytes do come,
     * on_read disarms it then. */
    start_request(c);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;

    if (c->state == ST_TUNNEL) {
        c->tunnel(c->tunnel_arg, EV_READ);
        return;
    }

    if (c->state == ST_LINGER) {
        char sink[4096];
        ssize_t n = read(fd, sink, sizeof(sink));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            conn_free(c);
        return;
    }

    if (c->state == ST_HANDSHAKE) {
        handshake(c);
        return;
    }

    if (c->h2) {
        rp_h2_on_read(c);
        return;
    }

    if (c->state == ST_BUSY && !c->response_queued) {
        /* Only a content handler that asked for body bytes reads now; otherwise the
         * bytes wait in the kernel (back-pressure on the client). */
        event_del(&c->io);
        if (c->r && c->r->on_body) {
            void (*fn)(rp_request_t *) = c->r->on_body;
            c->r->on_body = NULL;
            fn(c->r);
            return;
        }
        /* Readable while we work on its answer: pipelined bytes, or the client gave up.
         * A client that is gone must not keep an upstream busy (nginx logs these 499). */
        char b;
        ssize_t k = recv(fd, &b, 1, MSG_PEEK);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
            rp_log_error(RP_LOG_INFO, 0, "client prematurely closed connection while waiting "
                                         "for the response");
            if (c->r && !c->r->response_started)
                c->r->status = 499;
            conn_free(c);
        }
        return;
    }

    if (c->reparse) {
        c->reparse = 0;
        if (c->state == ST_HEAD) {
            process_head(c);
            return;
        }
    }

    if (c->in_len == c->in_cap) {
        rp_http_core_srv_conf_t *srv = default_srv(c);
        uint32_t max = (uint32_t)srv->large_client_header_buffers + 1024;
        if (c->state != ST_BUSY && c->in_cap < max) {
            c->in_cap = c->in_cap * 2 > max ? max : c->in_cap * 2;
            c->in = rp_xrealloc(c->in, c->in_cap);
        } else if (c->state == ST_BUSY && body_pending(c)) {
            /* The head fills the buffer: drop body bytes through a scratch buffer. */
            char sink[16384];
            ssize_t k = conn_read(c, sink, sizeof(sink));
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                conn_free(c);
                return;
            }
            if (k > 0 && discard_bytes(c, sink, (size_t)k) != (size_t)k) {
                /* body ended inside the scratch bytes: what follows is a pipelined request
                 * we cannot keep, so this connection ends after the response */
                c->close_after = 1;
            }
            if (!body_pending(c))
                event_del(&c->io);
            try_finish(c);
            return;
        } else if (c->state == ST_BUSY) {
            event_del(&c->io); /* pipelined bytes wait for the current response */
            return;
        }
    }
    ssize_t n = conn_read(c, c->in + c->in_len, c->in_cap - c->in_len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        conn_free(c);
        return;
    }
    if (n == 0) {
        if (c->state == ST_BUSY && c->response_queued && evbuffer_get_length(c->out) > 0 &&
            !body_pending(c)) {
            /* The client half-closed after its request: finish writing, then close. */
            c->close_after = 1;
            event_del(&c->io);
            return;
        }
        conn_free(c);
        return;
    }
    c->in_len += (uint32_t)n;

    switch (c->state) {
    case ST_IDLE:
        c->state = ST_HEAD;
        set_timer(c, default_srv(c)->client_header_timeout);
        /* fall through */
    case ST_HEAD:
        if (c->addr->http2 && c->requests == 0 && c->ssl == NULL) {
            /* a cleartext http2 port: the client preface means prior knowledge */
            size_t k = c->in_len < RP_H2_PREFACE_LEN ? c->in_len : RP_H2_PREFACE_LEN;
            if (memcmp(c->in, RP_H2_PREFACE, k) == 0) {
                if (k < RP_H2_PREFACE_LEN)
                    break;
                uint32_t len = c->in_len;
                c->in_len = 0;
                c->state = ST_H2;
                rp_h2_start(c, c->in, len);
                return;
            }
        }
        process_head(c);
        /* TLS may hold decrypted bytes the socket will not signal again */
        if (c->ssl && c->state == ST_HEAD && SSL_pending(c->ssl))
            event_active(&c->io, EV_READ, 1);
        break;
    case ST_BUSY:
        if (discard_buffered(c) != 0) {
            c->close_after = 1;
            c->body_chunked = 0;
            c->body_left = 0;
            c->in_len = c->in_pos;
            event_del(&c->io);
            try_finish(c);
            return;
        }
        if (!body_pending(c))
            event_del(&c->io);
        try_finish(c);
        break;
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    if (c->state == ST_HANDSHAKE) {
        handshake(c);
        return;
    }
    if (c->h2 && c->state != ST_LINGER) {
        rp_h2_on_write(c);
        return;
    }
    write_out(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    if (c->h2 && c->state != ST_LINGER) {
        rp_h2_on_timer(c);
        return;
    }
    switch (c->state) {
    case ST_HANDSHAKE:
        rp_log_error(RP_LOG_INFO, 0, "TLS handshake timed out, client: fd %d", c->fd);
        conn_free(c);
        return;
    case ST_HEAD:
        if (c->in_len > 0)
            rp_log_error(RP_LOG_INFO, 0, "client timed out sending the request head");
        conn_free(c);
        return;
    case ST_IDLE:
    case ST_LINGER:
        conn_free(c);
        return;
    case ST_TUNNEL:
        /* only armed while output waits for the client (the tunnel times its idleness) */
        rp_log_error(RP_LOG_INFO, 0, "client timed out (send_timeout) while proxying upgraded "
                                     "connection");
        conn_free(c);
        return;
    case ST_BUSY:
        if (c->limit_rate && evbuffer_get_length(c->out) > 0 &&
            !event_pending(&c->wio, EV_WRITE, NULL)) {
            /* the rate limit's pause is over (also while a proxied body still streams) */
            write_out(c);
            return;
        }
        if (c->r && c->r->on_body && !c->r->response_started) {
            /* The handler waits for body bytes that do not come: answer 408 as nginx does,
             * after letting the handler release what it holds (its upstream). */
            rp_request_t *r = c->r;
            rp_log_error(RP_LOG_INFO, 0, "client timed out (client_body_timeout)");
            r->on_body = NULL;
            if (r->cleanup) {
                void (*fn)(rp_request_t *) = r->cleanup;
                r->cleanup = NULL;
                fn(r);
            }
            c->body_left = 0;
            c->body_chunked = 0;
            rp_http_send_error(r, 408);
            return;
        }
        rp_log_error(RP_LOG_INFO, 0, "client timed out (%s)",
                     evbuffer_get_length(c->out) ? "send_timeout" : "client_body_timeout");
        conn_free(c);
        return;
    }
}

/* ---- the tunnel after a 101 ---- */

int rp_conn_tunnel_start(rp_conn_t *c, void (*fn)(void *arg, short what), void *arg)
{
    c->state = ST_TUNNEL;
    c->tunnel = fn;
    c->tunnel_arg = arg;
    c->close_after = 1;
    /* limit_rate paces HTTP responses; under a budget write_raw would queue everything,
     * and the tunnel's back-pressure needs each write to go out (or wait) at once */
    c->limit_rate = 0;
    c->response_queued = 1;
    c->body_left = 0;
    c->body_chunked = 0;
    event_del(&c->io); /* the owner enables reading when it wants bytes */
    event_del(&c->timer);
    if (c->r) {
        c->r->on_body = NULL;
        c->r->on_drain = NULL;
    }
    return c->r ? rp_h1_flush_head(c->r) : 0;
}

ssize_t rp_conn_tunnel_read(rp_conn_t *c, void *buf, size_t n)
{
    uint32_t avail = c->in_len - c->in_pos;
    if (avail) {
        size_t k = avail < n ? avail : n;
        memcpy(buf, c->in + c->in_pos, k);
        c->in_pos += (uint32_t)k;
        return (ssize_t)k;
    }
    return conn_read(c, buf, n);
}

int rp_conn_tunnel_write(rp_conn_t *c, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return write_raw(c, &iov, 1);
}

size_t rp_conn_tunnel_pending(const rp_conn_t *c)
{
    return evbuffer_get_length(c->out);
}

void rp_conn_tunnel_read_enable(rp_conn_t *c, int on)
{
    if (!on) {
        event_del(&c->io);
        return;
    }
    event_add(&c->io, NULL);
    /* bytes behind the request head, or decrypted by TLS, will not make the socket readable */
    if (c->in_len > c->in_pos || (c->ssl && SSL_pending(c->ssl)))
        event_active(&c->io, EV_READ, 1);
}

int rp_conn_tunnel_shutdown(rp_conn_t *c)
{
    if (c->ssl) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* close_notify; reading goes on until the client's own */
    }
    return shutdown(c->fd, SHUT_WR);
}

void rp_conn_drain_all(void)
{
    draining = 1;
    rp_conn_t *c = conns;
    while (c) {
        rp_conn_t *next = c->next;
        c->draining = 1;
        if (c->h2) {
            if (c->state != ST_LINGER)
                rp_h2_drain(c);
            c = next;
            continue;
        }
        c->close_after = 1;
        /* A connection that already served requests and waits idle may go: clients retry
         * those (RFC 9112 9.3.1). One that never sent a request yet is a request in
         * flight on the wire; it gets its answer with "Connection: close". */
        if (c->state == ST_IDLE || (c->state == ST_HEAD && c->requests > 0 && c->in_len == 0))
            conn_free(c);
        c = next;
    }
}

void rp_conn_close_all(void)
{
    while (conns)
        conn_free(conns);
}
