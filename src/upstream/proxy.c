/*
 * One proxied request: pick a server, take a cached connection or connect,
 * send the request head and stream the body, read and check the response head,
 * stream the response body to the client, then return the connection to the
 * keep-alive cache when both sides ended cleanly.
 *
 * Back-pressure both ways when streaming (proxy_buffering off, proxy_request_buffering
 * off): client body bytes are read only while the upstream accepts them, and upstream
 * response bytes only while the client accepts them, so memory per request is one read
 * buffer plus what one write could not place. With buffering on (nginx's default), the
 * client's body is read whole before a server is chosen (request_body.c, kept in memory
 * or a temporary file), and the response is read as fast as the server sends it into
 * proxy_buffer.c's memory buffers and temporary file, so the upstream connection is
 * released as soon as the response is in, whatever the client's speed.
 *
 * Failures before the request could be sent (refused, unreachable, connect
 * timeout, a failed TLS handshake, no usable server) move on to the next
 * server, as nginx's default proxy_next_upstream does; once the request was
 * sent it is not repeated, except on a cached connection the server closed
 * before answering (a race every keep-alive client must absorb), and only for
 * requests without a body or with one kept whole (request buffering). The
 * socket I/O goes through rp_uconn_read/_writev/_flush, which add TLS for
 * proxy_pass https:// (upstream_ssl.c). The request head is written by
 * proxy_headers.c, the response's fields are judged by proxy_response.c.
 *
 * An HTTP/1.1 request that asks to switch protocols (Upgrade, "Connection:
 * upgrade", no body) is forwarded with its Upgrade field and "Connection:
 * upgrade", so WebSocket works without nginx's proxy_set_header boilerplate. A
 * 101 answer to it goes to the client and hands both connections to tunnel.c;
 * any other answer is relayed as usual.
 *
 * proxy_limit_rate paces the reading of the response body as nginx's does: over
 * the rate, the upstream connection is not read (its socket buffer fills and TCP
 * slows the server down) until a timer of the request says the next piece is
 * allowed. Off, it costs one comparison per read.
 */
#include "upstream/proxy.h"
#include "upstream/attempt.h"
#include "upstream/breaker.h"
#include "upstream/hedge.h"
#include "upstream/proxy_buffer.h"
#include "upstream/proxy_h2.h"
#include "upstream/upstream_choose.h"
#include "core/log.h"
#include "http/error_log.h"
#include "core/wbuf.h"
#include "core/time.h"
#include "http/variables.h"
#include "http/error_page.h"
#include "http/h1_parser.h"
#include "upstream/upstream_ssl.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { P_CONNECT, P_HANDSHAKE, P_SEND, P_HEAD, P_BODY, P_TUNNEL };
enum { B_NONE, B_LENGTH, B_CHUNKED, B_CLOSE };

#define MAX_STALE_RETRIES 4

typedef struct proxy_s {
    rp_request_t *r;
    rp_proxy_loc_conf_t *plcf;
    rp_upstream_conf_t *ups;
    rp_upstream_tls_t *tls; /* how to talk TLS to ups (rp_proxy_choose); NULL: plain */
    rp_uconn_t *uc;
    int state;
    rp_attempt_t at;
    unsigned stale_retries;
    rp_http_timer_t *backoff; /* the wait before the next try */
    /* hedging (hedge.h): the other try racing this one, until a response head came */
    struct proxy_s *sibling;
    rp_http_timer_t *hedge_timer;
    unsigned reused : 1;      /* uc came from the keep-alive cache */
    unsigned body_sent : 1;   /* the whole request body went upstream */
    unsigned req_chunked : 1; /* the request body goes upstream chunked */
    unsigned got_bytes : 1;   /* some response byte arrived */
    unsigned keep : 1;        /* the upstream connection may be reused */
    unsigned finished : 1;
    unsigned send_failed : 1;   /* writing the request failed; an answer may still be there */
    unsigned upgrade : 1;       /* the request sent upstream asks to switch protocols */
    unsigned forwarded : 1;     /* body bytes went to the client since the last flush */
    unsigned whole : 1;         /* the request body was read whole first (request buffering) */
    unsigned buffering : 1;     /* the response may be read ahead of the client (rb) */
    unsigned behind : 1;        /* ... the client was behind at the last write: bytes go to rb */
    unsigned paused : 1;        /* ... and reading waits until the client takes some of rb */
    unsigned upstream_done : 1; /* the response was read whole; rb still has some for the client */
    int send_errno;
    int intercepted;   /* the status an error page replaces: its body is dropped */
    int64_t discarded; /* ... the bytes of it read so far */
    rp_str_t target;   /* the request target sent upstream */
    rp_h1_parser_t parser;
    rp_chunked_t chunked;
    int mode;
    int64_t left; /* B_LENGTH: bytes still to come */
    struct timeval t_connect;
    /* proxy_limit_rate: when the body began, what was read of it since, the resume */
    int64_t rate_start, rate_read;
    rp_http_timer_t *rate_timer;
    const rp_proxy_buf_conf_t *bc; /* proxy_buffering and its kin */
    rp_rbuf_t *rb; /* the response read ahead of the client (made when first needed) */
} proxy_t;

/* A worker-wide scratch for the request head and client body bytes on their way. */
static char scratch[65536];

static void on_upstream_read(void *arg);
static void on_upstream_write(void *arg);
static void on_upstream_timer(void *arg);
static void connect_next(proxy_t *p);
static void next_try(proxy_t *p, int64_t wait);
static void pump_body(proxy_t *p);

static void set_utimer(proxy_t *p, int64_t ms)
{
    rp_timer_add(&p->uc->timer, ms);
}

/* The wait for the response head: proxy_read_timeout, or what is left of per_try_timeout. */
static int64_t head_timeout(proxy_t *p)
{
    return rp_attempt_head_timeout(&p->at, rp_attempt_read_timeout(&p->at, p->plcf->read_timeout));
}

/* proxy_*_timeout, or what balancer_by_lua set for the request (attempt.h) */
#define CONNECT_TIMEOUT(p) rp_attempt_connect_timeout(&(p)->at, (p)->plcf->connect_timeout)
#define SEND_TIMEOUT(p)    rp_attempt_send_timeout(&(p)->at, (p)->plcf->send_timeout)
#define READ_TIMEOUT(p)    rp_attempt_read_timeout(&(p)->at, (p)->plcf->read_timeout)

void rp_proxy_record(rp_request_t *r, rp_str_t *field, const char *text)
{
    size_t n = strlen(text);
    if (field->len == 0) {
        *field = (rp_str_t){rp_arena_strndup(r->arena, text, n), n};
        return;
    }
    char *b = rp_arena_alloc(r->arena, field->len + 2 + n + 1);
    memcpy(b, field->data, field->len);
    memcpy(b + field->len, ", ", 2);
    memcpy(b + field->len + 2, text, n + 1);
    *field = (rp_str_t){b, field->len + 2 + n};
}

void rp_proxy_record_ms(rp_request_t *r, rp_str_t *field, int64_t ms)
{
    char buf[32], *p = buf + sizeof(buf);
    *--p = '\0';
    if (ms < 0) {
        *--p = '-';
    } else {
        for (int k = 0; k < 3; k++, ms /= 10)
            *--p = (char)('0' + ms % 10);
        *--p = '.';
        do {
            *--p = (char)('0' + ms % 10);
            ms /= 10;
        } while (ms);
    }
    rp_proxy_record(r, field, p);
}

void rp_proxy_log_error(rp_request_t *r, int level, const char *what, int err, const char *where,
                        const char *scheme, const char *peer, rp_str_t target)
{
    char client[64] = "", errtext[160] = "";
    rp_str_t addr = rp_http_remote_addr(r);
    snprintf(client, sizeof(client), "%.*s", (int)addr.len, addr.data);
    if (err)
        snprintf(errtext, sizeof(errtext), " (%d: %s)", err, strerror(err));
    rp_str_t server = r->srv && r->srv->names.nelts
                          ? ((rp_server_name_t *)r->srv->names.elts)[0].text
                          : RP_STR("");
    const char *version = r->version == 20 ? "2.0" : r->version == 10 ? "1.0" : "1.1";
    rp_log_error(level, 0,
                 "%s%s%s%s, client: %s, server: %.*s, request: \"%.*s %.*s HTTP/%s\", "
                 "upstream: \"%s://%s%.*s\", host: \"%.*s\"",
                 what, errtext, where ? " " : "", where ? where : "", client, (int)server.len,
                 server.data ? server.data : "", (int)r->method.len, r->method.data,
                 (int)r->request_uri.len, r->request_uri.data, version, scheme, peer,
                 (int)target.len, target.data, (int)r->host.len, r->host.data);
}

/* nginx's error-log context: who asked for what, and where it was going. */
static void log_upstream(proxy_t *p, int level, const char *what, int err, const char *where)
{
    rp_proxy_log_error(p->r, level, what, err, where, p->tls ? "https" : "http",
                       p->uc && p->uc->peer ? p->uc->peer->name : p->ups->name, p->target);
}

void rp_proxy_log(rp_request_t *r, int level, const char *what, int err, const char *where)
{
    log_upstream(rp_proxy_ctx(r)->exchange, level, what, err, where);
}

/* Lets go of the upstream connection: to the cache when reusable, else closed. */
static void drop_uc(proxy_t *p, int reusable)
{
    rp_uconn_t *uc = p->uc;
    if (uc == NULL)
        return;
    p->uc = NULL;
    evbuffer_drain(uc->out, evbuffer_get_length(uc->out));
    rp_upstream_release(uc, reusable);
}

static void cleanup(rp_request_t *r, void *data)
{
    proxy_t *p = data;
    rp_attempt_done(&p->at);
    drop_uc(p, 0);
}

/* Whether another try of the request (a hedge) is still running. */
static int racing(const proxy_t *p)
{
    return p->sibling && !p->sibling->finished;
}

/* Ends this try quietly: its sibling goes on for the request. */
static void leave_race(proxy_t *p)
{
    rp_attempt_end(&p->at, RP_ATTEMPT_INCOMPLETE, NULL); /* when still open */
    drop_uc(p, 0);
    p->finished = 1;
    p->sibling->sibling = NULL;
    if (rp_proxy_ctx(p->r)->exchange == p)
        rp_proxy_ctx(p->r)->exchange = p->sibling;
    p->sibling = NULL;
}

/* Ends the request with rampart's own error page; only before the response began. */
static void fail(proxy_t *p, int status)
{
    rp_request_t *r = p->r;
    if (racing(p)) {
        leave_race(p); /* the client's answer is the other try's */
        return;
    }
    drop_uc(p, 0);
    p->finished = 1;
    r->on_body = NULL;
    r->on_drain = NULL;
    rp_http_send_error(r, status);
}

/* The response began but cannot be completed: the client must see it cut. */
static void abort_response(proxy_t *p, const char *why, int err, const char *where)
{
    rp_request_t *r = p->r;
    log_upstream(p, RP_LOG_ERR, why, err, where);
    rp_attempt_end(&p->at, RP_ATTEMPT_FAILED, NULL);
    if (!rp_http_head_sent(r)) {
        /* nothing reached the client yet: it can still get a proper 502 */
        r->nout_headers = 0;
        r->response_started = 0;
        fail(p, 502);
        return;
    }
    p->finished = 1;
    drop_uc(p, 0);
    rp_http_abort(r);
}

static void on_buffer_drained(rp_request_t *r);

/* The response was read whole: the upstream connection goes (back to the pool when it
 * may), and the client gets the end now, or once it took what was read ahead of it. */
static void finish(proxy_t *p)
{
    rp_request_t *r = p->r;
    p->finished = 1;
    rp_attempt_end(&p->at, RP_ATTEMPT_OK, NULL);
    if (p->uc && p->mode == B_NONE)
        p->uc->suspect = 1; /* a body where none belongs may still be on its way */
    drop_uc(p, p->keep && p->body_sent);
    if (p->rb && rp_rbuf_len(p->rb)) {
        p->upstream_done = 1;
        if (rp_http_pending(r))
            r->on_drain = on_buffer_drained;
        else
            on_buffer_drained(r);
        return;
    }
    rp_http_response_end(r);
}

/* ---- sending the request ---- */

/* Writes what is queued for the upstream. Returns 0 when all went, 1 when it must wait,
 * -1 on error (errno set). */
static int flush_uout(proxy_t *p)
{
    while (evbuffer_get_length(p->uc->out)) {
        int n = rp_uconn_flush(p->uc);
        if (n > 0)
            p->at.bytes_out += n;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(&p->uc->wev, NULL);
                set_utimer(p, SEND_TIMEOUT(p));
                return 1;
            }
            return -1;
        }
    }
    return 0;
}

/* Writes bytes to the upstream now, queueing what the socket does not take. */
static int send_bytes(proxy_t *p, const struct iovec *iov, int n)
{
    size_t skip = 0;
    if (evbuffer_get_length(p->uc->out) == 0) {
        ssize_t k = rp_uconn_writev(p->uc, iov, n);
        if (k < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -1;
            k = 0;
        }
        skip = (size_t)k;
        p->at.bytes_out += k;
    }
    for (int i = 0; i < n; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        evbuffer_add(p->uc->out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip);
        skip = 0;
    }
    return 0;
}

static void upstream_send_error(proxy_t *p, int err);

/* A client body event: more bytes arrived. */
static void on_client_body(rp_request_t *r)
{
    proxy_t *p = rp_proxy_ctx(r)->exchange;
    if (p && p->uc)
        pump_body(p);
}

/* Moves request body bytes from the client to the upstream while both sides allow. */
static void pump_body(proxy_t *p)
{
    rp_request_t *r = p->r;
    if (p->send_failed)
        return;
    while (!p->body_sent) {
        int w = flush_uout(p);
        if (w < 0) {
            upstream_send_error(p, errno);
            return;
        }
        if (w > 0)
            return; /* on_upstream_write resumes */
        size_t n = 0;
        char *data = scratch + 16;
        int rc = rp_http_read_body(r, data, sizeof(scratch) - 32, &n);
        if (rc < 0) {
            int status = r->body_status;
            if (status == 0) {
                log_upstream(p, RP_LOG_INFO,
                             "client closed the connection while sending the "
                             "request body to upstream",
                             0, NULL);
                p->finished = 1;
                drop_uc(p, 0);
                rp_http_abort(r);
                return;
            }
            p->finished = 1;
            drop_uc(p, 0);
            if (r->response_started) {
                rp_http_abort(r);
                return;
            }
            rp_http_send_error(r, status);
            return;
        }
        if (p->whole)
            rp_attempt_body_read(&p->at, NULL, 0, rc == 1); /* another try reads it again */
        else
            rp_attempt_body_read(&p->at, data, n, rc == 1);
        if (n) {
            struct iovec iov[3];
            int k = 0;
            char hdr[24];
            if (p->req_chunked) {
                int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
                iov[k++] = (struct iovec){hdr, (size_t)hl};
            }
            iov[k++] = (struct iovec){data, n};
            if (p->req_chunked)
                iov[k++] = (struct iovec){(void *)"\r\n", 2};
            if (send_bytes(p, iov, k) != 0) {
                upstream_send_error(p, errno);
                return;
            }
        }
        if (rc == 1) {
            if (p->req_chunked) {
                struct iovec end = {(void *)"0\r\n\r\n", 5};
                if (send_bytes(p, &end, 1) != 0) {
                    upstream_send_error(p, errno);
                    return;
                }
            }
            p->body_sent = 1;
            break;
        }
        if (n == 0) {
            /* the client has sent nothing more yet; its client_body_timeout runs */
            r->on_body = on_client_body;
            if (p->state == P_SEND)
                event_del(&p->uc->timer);
            return;
        }
    }
    int w = flush_uout(p);
    if (w < 0) {
        upstream_send_error(p, errno);
        return;
    }
    if (w == 0 && p->state == P_SEND) {
        p->state = P_HEAD;
        event_del(&p->uc->wev);
        set_utimer(p, head_timeout(p));
    }
}

/* Another attempt: the body bytes the engine kept from the client go first (one chunk
 * when the body goes chunked), and the end too when the client's body was complete. */
static int replay_body(proxy_t *p)
{
    size_t kept = rp_attempt_kept_len(&p->at);
    if (kept) {
        struct evbuffer *out = p->uc->out;
        if (p->req_chunked)
            evbuffer_add_printf(out, "%zx\r\n", kept);
        for (size_t off = 0; off < kept;) {
            size_t n = kept - off < sizeof(scratch) ? kept - off : sizeof(scratch);
            rp_attempt_kept_copy(&p->at, off, scratch, n);
            evbuffer_add(out, scratch, n);
            off += n;
        }
        if (p->req_chunked)
            evbuffer_add(out, "\r\n", 2);
    }
    if (p->at.body_complete) {
        if (p->req_chunked)
            evbuffer_add(p->uc->out, "0\r\n\r\n", 5);
        p->body_sent = 1;
    }
    return flush_uout(p) < 0 ? -1 : 0;
}

static void start_exchange(proxy_t *p)
{
    rp_request_t *r = p->r;
    rp_uconn_t *uc = p->uc;
    uc->requests++;
    p->state = P_SEND;
    p->got_bytes = 0;
    p->send_failed = 0;
    p->keep = 0;
    p->body_sent = !(r->chunked || r->content_length > 0) || !p->plcf->pass_request_body;
    if (p->whole)
        r->body_read = 0; /* every try sends the kept body from its start */
    rp_h1_response_parser_init(&p->parser, (uint32_t)p->plcf->buffer_size);
    uint32_t need = p->plcf->buffer_size < 16384 ? 16384 : (uint32_t)p->plcf->buffer_size + 1;
    if (uc->cap < need) {
        /* a cached connection opened for a location with a smaller proxy_buffer_size */
        free(uc->buf);
        uc->buf = rp_xmalloc(need);
        uc->cap = need;
    }
    uc->len = uc->pos = 0;
    uc->owner = p;
    uc->log = rp_http_error_log(p->r);
    uc->on_read = on_upstream_read;
    uc->on_write = on_upstream_write;
    uc->on_timeout = on_upstream_timer;
    event_add(&uc->rev, NULL);

    /* The worker's scratch fits nearly every head; a client allowed a larger one
     * (large_client_header_buffers) gets a request-sized buffer from its arena. */
    char *buf = scratch;
    size_t cap = sizeof(scratch), hlen;
    unsigned head_flags = 0;
    while ((hlen = rp_proxy_request_head(r, p->plcf, p->target, p->bc->http_version,
                                         p->ups->keepalive != 0, &head_flags, buf, cap)) == 0) {
        if (cap >= 16 * 1024 * 1024) {
            log_upstream(p, RP_LOG_ERR, "request head too large for the upstream", 0, NULL);
            fail(p, 500);
            return;
        }
        cap *= 4;
        buf = rp_arena_alloc(r->arena, cap);
    }
    p->upgrade = (head_flags & RP_PROXY_HEAD_UPGRADE) != 0;
    p->req_chunked = (head_flags & RP_PROXY_HEAD_CHUNKED) != 0;
    struct iovec iov = {buf, hlen};
    if (send_bytes(p, &iov, 1) != 0) {
        upstream_send_error(p, errno);
        return;
    }
    if (!p->body_sent && !p->whole && replay_body(p) != 0) {
        upstream_send_error(p, errno);
        return;
    }
    set_utimer(p, head_timeout(p));
    pump_body(p);
}

/* ---- connecting ---- */

/* The connection is ready for the request: connected, and through TLS when it has it. */
static void established(proxy_t *p)
{
    rp_attempt_connect_time(&p->at, rp_time_ms_since(&p->t_connect));
    event_del(&p->uc->wev);
    event_del(&p->uc->timer);
    start_exchange(p);
}

/* A connect or TLS handshake failed or timed out: count it against the server and try
 * the next one. */
static void connect_failed(proxy_t *p, const char *what, int err, int timed_out)
{
    const char *where = p->state == P_HANDSHAKE ? "while SSL handshaking to upstream"
                                                : "while connecting to upstream";
    if (timed_out)
        log_upstream(p, RP_LOG_ERR, "upstream timed out (110: Connection timed out)", 0, where);
    else
        log_upstream(p, RP_LOG_ERR, what, err, where);
    rp_attempt_connect_time(&p->at, -1);
    int64_t wait = racing(p) ? -1 : rp_attempt_retry(&p->at, RP_RETRY_CONNECT, 0, -1, 0, -1);
    rp_attempt_end(&p->at,
                   RP_ATTEMPT_FAILED | RP_ATTEMPT_CONNECT | (timed_out ? RP_ATTEMPT_TIMEOUT : 0),
                   timed_out ? "504" : "502");
    drop_uc(p, 0);
    p->at.last_timeout = timed_out;
    if (wait < 0) {
        fail(p, timed_out ? 504 : 502);
        return;
    }
    next_try(p, wait);
}

static void on_connect_timeout(void *arg)
{
    connect_failed(arg, NULL, ETIMEDOUT, 1);
}

/* Moves the TLS handshake on; proxy_connect_timeout, already running, bounds it. */
static void on_handshake_event(void *arg)
{
    proxy_t *p = arg;
    char why[320];
    int err = 0;
    int rc = rp_uconn_handshake(p->uc, why, sizeof(why), &err);
    if (rc == 0)
        established(p);
    else if (rc < 0)
        connect_failed(p, why, err, 0);
}

static void connected(proxy_t *p)
{
    if (p->tls == NULL) {
        established(p);
        return;
    }
    rp_uconn_t *uc = p->uc;
    if (rp_uconn_tls_start(uc, p->tls) != 0) {
        connect_failed(p, "cannot start TLS", 0, 0);
        return;
    }
    p->state = P_HANDSHAKE;
    uc->on_read = on_handshake_event;
    uc->on_write = on_handshake_event;
    if (!evtimer_pending(&uc->timer, NULL)) {
        int64_t ms = CONNECT_TIMEOUT(p);
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        evtimer_add(&uc->timer, &tv); /* the connect was immediate */
    }
    on_handshake_event(p);
}

static void on_connect_event(void *arg)
{
    proxy_t *p = arg;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(p->uc->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        connect_failed(p, "connect() failed", err, 0);
        return;
    }
    connected(p);
}

/* Picks the next server and starts on a cached connection or a new one. */
static void connect_next(proxy_t *p)
{
    rp_upstream_conf_t *u = p->ups;
    rp_upstream_server_t *s = rp_attempt_next(&p->at);
    if (s == NULL) {
        if (p->at.choosing)
            return;              /* balancer_by_lua waits: resume_try goes on */
        if (p->at.hook_status) { /* balancer_by_lua failed: logged with its file and line */
            fail(p, p->at.hook_status);
            return;
        }
        if (p->at.tries == 0)
            log_upstream(p, RP_LOG_ERR, "no live upstreams while connecting to upstream", 0, NULL);
        fail(p, p->at.tries && p->at.last_timeout ? 504 : 502);
        return;
    }

    rp_uconn_t *uc = rp_upstream_pool_get(u, s, p->tls);
    if (uc) {
        if (p->at.hooked)
            rp_attempt_keepalive_to(&p->at, uc);
        p->uc = uc;
        p->reused = 1;
        rp_attempt_connect_time(&p->at, 0);
        start_exchange(p);
        return;
    }
    p->reused = 0;
    uint32_t cap = p->plcf->buffer_size < 16384 ? 16384 : (uint32_t)p->plcf->buffer_size + 1;
    uc = rp_uconn_new(u, s, cap);
    if (p->at.hooked)
        rp_attempt_keepalive_to(&p->at, uc);
    p->uc = uc;
    p->t_connect = p->at.t_start;
    p->state = P_CONNECT; /* a failure now is a connect's, not the last try's handshake */
    int fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = errno;
        log_upstream(p, RP_LOG_ALERT, "socket() failed", err, "while connecting to upstream");
        drop_uc(p, 0);
        fail(p, 502);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    rp_uconn_attach(uc, fd);
    uc->owner = p;
    uc->log = rp_http_error_log(p->r);
    uc->on_write = on_connect_event;
    uc->on_timeout = on_connect_timeout;
    if (connect(fd, (struct sockaddr *)&s->sa, s->socklen) == 0) {
        connected(p);
        return;
    }
    if (errno != EINPROGRESS) {
        connect_failed(p, "connect() failed", errno, 0);
        return;
    }
    p->state = P_CONNECT;
    event_add(&uc->wev, NULL);
    rp_timer_add(&uc->timer, rp_attempt_head_timeout(&p->at, CONNECT_TIMEOUT(p)));
}

/* balancer_by_lua waited and has chosen: the try goes on. */
static void resume_try(void *data)
{
    proxy_t *p = data;
    p->at.choosing = 0;
    connect_next(p);
}

static void on_backoff(rp_request_t *r, void *data)
{
    connect_next(data);
}

/* Starts the next try now, or after wait ms (backoff, Retry-After): the request waits on
 * a timer of its own, which its end cancels. */
static void next_try(proxy_t *p, int64_t wait)
{
    if (wait <= 0) {
        connect_next(p);
        return;
    }
    if (p->backoff == NULL)
        p->backoff = rp_http_timer_new(p->r, on_backoff, p);
    rp_http_timer_add(p->backoff, wait);
}

/* A cached connection failed before any answer: the server closed it meanwhile. */
static int retry_stale(proxy_t *p)
{
    if (!p->reused || p->got_bytes || !rp_attempt_may_resend(&p->at) ||
        p->stale_retries >= MAX_STALE_RETRIES)
        return 0;
    p->stale_retries++;
    drop_uc(p, 0);
    /* same server again: it did not fail, the cached connection did */
    rp_attempt_again(&p->at);
    connect_next(p);
    return 1;
}

static void read_upstream(proxy_t *p);

/* The try failed before a response head (reason RP_RETRY_*): another try when the policy
 * allows one, else the client gets status. */
static void failed_before_head(proxy_t *p, unsigned reason, unsigned how,
                               const char *upstream_status, int status)
{
    int64_t wait = racing(p) ? -1 : rp_attempt_retry(&p->at, reason, 0, -1, 0, -1);
    rp_attempt_end(&p->at, RP_ATTEMPT_FAILED | how, upstream_status);
    if (wait >= 0) {
        p->at.last_timeout = reason == RP_RETRY_TIMEOUT;
        drop_uc(p, 0);
        next_try(p, wait);
        return;
    }
    p->finished = 1;
    fail(p, status);
}

static void upstream_send_error(proxy_t *p, int err)
{
    if (retry_stale(p))
        return;
    if (!p->send_failed) {
        /* A server may answer before it has read the whole body (a 413, a 403) and
         * close: its answer can be waiting in our socket. Stop sending and read it
         * (RFC 9112 9.5); only without an answer is this a failure. */
        p->send_failed = 1;
        p->send_errno = err;
        p->keep = 0;
        p->r->on_body = NULL;
        event_del(&p->uc->wev);
        evbuffer_drain(p->uc->out, evbuffer_get_length(p->uc->out));
        if (p->state == P_SEND)
            p->state = P_HEAD;
        read_upstream(p);
        return;
    }
    log_upstream(p, RP_LOG_ERR, "writev() failed", err, "while sending request to upstream");
    failed_before_head(p, RP_RETRY_RESET, 0, "502", 502);
}

/* ---- the response ---- */

static void on_client_drained(rp_request_t *r);

/* With proxy_buffering: whether the response's bytes must go to the buffer (the client
 * was behind after the last write, or bytes wait there already), which is then made
 * when first needed. A client that keeps up costs two bit tests. */
static rp_rbuf_t *ahead(proxy_t *p)
{
    if (!p->behind && p->rb == NULL)
        return NULL;
    if (p->rb == NULL)
        p->rb = rp_rbuf_new(p->r, p->bc);
    if (p->behind || rp_rbuf_len(p->rb))
        return p->rb;
    return NULL;
}

/* Sends data bytes to the client, framed as the client's response needs; with
 * proxy_buffering, into the buffer while the client is behind. */
static int to_client(proxy_t *p, const char *data, size_t n)
{
    rp_request_t *r = p->r;
    if (n == 0 || r->head)
        return 0;
    rp_rbuf_t *rb;
    if (p->buffering && (rb = ahead(p)) != NULL)
        return rp_rbuf_put(rb, data, n);
    p->forwarded = 1;
    struct iovec iov = {(void *)data, n};
    return rp_http_write(r, &iov, 1);
}

static int response_header_passes(proxy_t *p, const rp_h1_parser_t *ps, const char *b, unsigned i)
{
    rp_str_t n = {b + ps->headers[i].name.off, ps->headers[i].name.len};
    return rp_proxy_response_field_passes(p->plcf, n) && !rp_proxy_named_by_connection(ps, b, i);
}

/*
 * The upstream agreed to the client's upgrade: the 101 goes to the client with the
 * server's fields (Sec-WebSocket-Accept and the like) and its Upgrade, the
 * connection fields are rampart's, and both connections become the tunnel.
 * Returns -1: the exchange is no longer the proxy's.
 */
static int switch_protocols(proxy_t *p)
{
    rp_request_t *r = p->r;
    rp_uconn_t *uc = p->uc;
    rp_h1_parser_t *ps = &p->parser;
    const char *b = uc->buf;
    unsigned upgrades = 0;

    for (unsigned i = 0; i < ps->nheaders; i++)
        upgrades += rp_span_ieq(b, ps->headers[i].name, "upgrade");
    if (upgrades == 0) {
        /* RFC 9110 7.8: without it nobody knows what the connection now speaks */
        log_upstream(p, RP_LOG_ERR,
                     "upstream sent 101 Switching Protocols without an "
                     "Upgrade field",
                     0, NULL);
        rp_attempt_end(&p->at, RP_ATTEMPT_FAILED, "502");
        p->finished = 1;
        fail(p, 502);
        return -1;
    }
    rp_attempt_header(&p->at, 101); /* the attempt lasts as long as the tunnel */
    r->status = 101;
    r->response_started = 1;
    for (unsigned i = 0; i < ps->nheaders; i++) {
        rp_str_t n = {b + ps->headers[i].name.off, ps->headers[i].name.len};
        rp_str_t v = {b + ps->headers[i].value.off, ps->headers[i].value.len};
        if (rp_str_ieq(n, "upgrade"))
            rp_http_add_header(r, RP_STR("Upgrade"), v);
        else if (response_header_passes(p, ps, b, i))
            rp_http_add_header(r, n, v);
    }
    rp_http_add_header(r, RP_STR("Connection"), RP_STR("upgrade"));
    if (rp_http_response_begin(r, -1) != 0) {
        log_upstream(p, RP_LOG_ERR, "response head too large", 0, NULL);
        p->finished = 1;
        r->response_started = 0;
        r->nout_headers = 0;
        fail(p, 502);
        return -1;
    }
    p->state = P_TUNNEL;
    p->keep = 0;
    event_del(&uc->wev);
    rp_tunnel_start(r, uc, p->plcf, uc->buf + ps->pos, uc->len - ps->pos);
    return -1;
}

/* This try's response goes to the client: a hedge racing it is cancelled, and a hedge
 * not started yet will not be. */
static void won(proxy_t *p)
{
    if (p->sibling) {
        proxy_t *o = p->sibling;
        leave_race(o);
        rp_proxy_ctx(p->r)->exchange = p;
    }
    proxy_t *first = p->hedge_timer ? p : NULL;
    if (first && rp_http_timer_pending(first->hedge_timer))
        rp_http_timer_del(first->hedge_timer);
    if (p->at.header_ms >= 0 && rp_hedge_conf(p->r))
        rp_hedge_sample(p->ups, p->at.header_ms);
}

/*
 * A response head whose status the retry policy may want another try for (a 503, a 502):
 * when it does, the answer is dropped (with its connection) and the next try is on its
 * way; returns 1. Otherwise 0, and the answer goes to the client: the last try's
 * response is the peer's own, not a page of rampart's.
 */
static int retry_status(proxy_t *p, int code)
{
    const rp_retry_conf_t *c = p->at.policy;
    if (!c->set)
        return 0; /* the default policy never retries on a status */
    if (racing(p)) {
        /* an answer the policy would not take while the other try may bring a better one */
        if (!rp_retry_wants(c, RP_RETRY_STATUS, code, -1))
            return 0;
        rp_attempt_header(&p->at, code);
        rp_attempt_end(&p->at, code >= 500 ? RP_ATTEMPT_FAILED : RP_ATTEMPT_INCOMPLETE, NULL);
        leave_race(p);
        return 1;
    }
    rp_h1_parser_t *ps = &p->parser;
    const char *b = p->uc->buf;
    int64_t retry_after = -1;
    int not_processed = 0;
    for (unsigned i = 0; i < ps->nheaders; i++) {
        if (rp_span_ieq(b, ps->headers[i].name, "retry-after"))
            retry_after = rp_retry_after_ms(b + ps->headers[i].value.off, ps->headers[i].value.len,
                                            rp_time_ms() / 1000);
        else if (rp_span_ieq(b, ps->headers[i].name, "x-rampart-overloaded") ||
                 rp_span_ieq(b, ps->headers[i].name, "x-envoy-overloaded"))
            not_processed = 1;
    }
    int64_t wait = rp_attempt_retry(&p->at, RP_RETRY_STATUS, code, -1, not_processed, retry_after);
    if (wait < 0)
        return 0;
    rp_attempt_header(&p->at, code);
    rp_attempt_end(&p->at, code >= 500 ? RP_ATTEMPT_FAILED : RP_ATTEMPT_INCOMPLETE, NULL);
    drop_uc(p, 0);
    next_try(p, wait);
    return 1;
}

/* ---- proxy_intercept_errors ---- */

/* Drops the intercepted answer's body bytes in uc->buf[pos..len). Returns 1 when the body
 * ended where the response does (the connection may be reused), 0 to read on, -1 when
 * the connection cannot be reused. */
static int discard_body(proxy_t *p)
{
    rp_uconn_t *uc = p->uc;
    char *data = uc->buf + uc->pos;
    size_t avail = uc->len - uc->pos;
    uc->pos = uc->len = 0;
    switch (p->mode) {
    case B_NONE:
        return avail ? -1 : 1;
    case B_LENGTH:
        if ((int64_t)avail > p->left)
            return -1;
        p->left -= (int64_t)avail;
        return p->left == 0;
    case B_CHUNKED: {
        size_t n = avail, consumed = 0;
        int rc = rp_chunked_decode(&p->chunked, data, &n, &consumed);
        if (rc < 0)
            return -1;
        if (rc == 1)
            return consumed == avail ? 1 : -1;
        return 0;
    }
    default:
        return -1; /* a body the close ends leaves no connection to reuse */
    }
}

/* The intercepted answer's body is over (rc 1: cleanly; else the connection goes): the
 * client gets the error page now. */
static void discard_done(proxy_t *p, int rc)
{
    p->finished = 1;
    drop_uc(p, rc == 1 && p->keep && p->body_sent);
    rp_http_send_error(p->r, p->intercepted);
}

/* At most this much of an intercepted body is read through to keep its connection; past
 * it, closing the connection is cheaper than reading on. */
#define DISCARD_MAX (1024 * 1024)

/* Reads on through an intercepted answer's body; the client's page waits for its end, so
 * that the request's end never finds the connection half-read. */
static void discard_more(proxy_t *p)
{
    rp_uconn_t *uc = p->uc;
    for (;;) {
        if (p->discarded > DISCARD_MAX) {
            discard_done(p, -1);
            return;
        }
        ssize_t n = rp_uconn_read(uc, uc->buf, uc->cap);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            set_utimer(p, READ_TIMEOUT(p));
            return;
        }
        if (n <= 0) {
            discard_done(p, -1);
            return;
        }
        p->discarded += n;
        uc->pos = 0;
        uc->len = (uint32_t)n;
        int rc = discard_body(p);
        if (rc != 0) {
            discard_done(p, rc);
            return;
        }
    }
}

/*
 * proxy_intercept_errors: the upstream answered code and the location has an error page
 * for it. The upstream's head goes nowhere; its body is read and dropped (up to
 * DISCARD_MAX), so that the connection goes back to the keep-alive cache as a forwarded
 * answer's would; then the client gets the error page. Returns -1: the exchange is over
 * for the request.
 */
static int intercept(proxy_t *p, int code)
{
    rp_request_t *r = p->r;
    const rp_h1_parser_t *ps = &p->parser;
    for (unsigned i = 0; i < ps->nheaders; i++)
        rp_http_error_page_keep_field(
            r, code, (rp_str_t){p->uc->buf + ps->headers[i].name.off, ps->headers[i].name.len},
            (rp_str_t){p->uc->buf + ps->headers[i].value.off, ps->headers[i].value.len});
    p->intercepted = code;
    p->state = P_BODY;
    p->uc->pos = p->parser.pos;
    rp_attempt_end(&p->at, RP_ATTEMPT_OK, NULL);
    r->on_body = NULL;
    r->on_drain = NULL;
    if (!p->body_sent) {
        discard_done(p, -1); /* the request body is not all upstream: nothing to reuse */
        return -1;
    }
    event_del(&p->uc->wev);
    int rc = discard_body(p);
    if (rc != 0)
        discard_done(p, rc);
    else
        discard_more(p);
    return -1;
}

/* Handles a complete response head at uc->buf[0..parser.pos). Returns 0 to go on with the
 * body, 1 when a 1xx head was skipped, -1 when the request has ended. */
static int handle_head(proxy_t *p)
{
    rp_request_t *r = p->r;
    rp_uconn_t *uc = p->uc;
    rp_h1_parser_t *ps = &p->parser;
    const char *b = uc->buf;
    int code = ps->code;

    if (code < 200) {
        if (code == 101 && p->upgrade)
            return switch_protocols(p);
        if (code == 101) {
            log_upstream(p, RP_LOG_ERR,
                         "upstream sent 101 Switching Protocols without an "
                         "upgrade request",
                         0, NULL);
            rp_attempt_end(&p->at, RP_ATTEMPT_FAILED, "502");
            fail(p, 502);
            return -1;
        }
        /* interim responses are not forwarded over HTTP/1 (as nginx) */
        uc->pos = ps->pos;
        memmove(uc->buf, uc->buf + uc->pos, uc->len - uc->pos);
        uc->len -= uc->pos;
        uc->pos = 0;
        rp_h1_response_parser_init(ps, (uint32_t)p->plcf->buffer_size);
        return 1;
    }

    rp_h1_framing_t f;
    const char *why = NULL;
    if (rp_h1_framing(ps, b, &f, &why) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "upstream sent an invalid response head (%s)", why);
        log_upstream(p, RP_LOG_ERR, msg, 0, NULL);
        /* as nginx: $upstream_status says what the client got */
        failed_before_head(p, RP_RETRY_INVALID, 0, "502", 502);
        return -1;
    }
    if (code >= 300 && retry_status(p, code))
        return -1;
    won(p);

    rp_attempt_header(&p->at, code);
    int no_body = r->head || code == 204 || code == 304;
    if (no_body)
        p->mode = B_NONE;
    else if (f.chunked)
        p->mode = B_CHUNKED;
    else if (f.content_length >= 0)
        p->mode = B_LENGTH;
    else
        p->mode = B_CLOSE;
    p->left = f.content_length;
    if (p->mode == B_CHUNKED)
        rp_chunked_init(&p->chunked);
    p->keep = p->mode != B_CLOSE && !f.conn_close && (ps->version == 11 || f.conn_keepalive) &&
              p->bc->http_version == 11;
    p->buffering = p->bc->buffering && p->mode != B_NONE;
    if (code >= 300 && rp_http_error_page_intercept(r, code, 0))
        return intercept(p, code);

    r->status = code;
    if (ps->phrase.len && *rp_http_reason(code) == '\0')
        r->reason = (rp_str_t){b + ps->phrase.off, ps->phrase.len}; /* a code we do not name */
    r->response_started = 1;
    rp_str_t accel = RP_NULL_STR;
    int conn_lists = rp_proxy_connection_lists_fields(ps, b);
    for (unsigned i = 0; i < ps->nheaders; i++)
        if (rp_proxy_accel_redirect_field(
                p->plcf, (rp_str_t){b + ps->headers[i].name.off, ps->headers[i].name.len}))
            accel = (rp_str_t){b + ps->headers[i].value.off, ps->headers[i].value.len};
    for (unsigned i = 0; i < ps->nheaders; i++) {
        if (ps->headers[i].name.len == 17 &&
            rp_span_ieq(b, ps->headers[i].name, "x-accel-buffering") &&
            !rp_proxy_ignores(r, RP_PROXY_IGN_XA_BUFFERING)) {
            /* the upstream turns buffering on or off for this response (as nginx) */
            rp_str_t v = {b + ps->headers[i].value.off, ps->headers[i].value.len};
            if (rp_str_ieq(v, "no"))
                p->buffering = 0;
            else if (rp_str_ieq(v, "yes"))
                p->buffering = p->mode != B_NONE;
        }
        if (!conn_lists || !rp_proxy_named_by_connection(ps, b, i)) /* the rest is the callee's */
            rp_proxy_response_field(
                r, p->plcf, (rp_str_t){b + ps->headers[i].name.off, ps->headers[i].name.len},
                (rp_str_t){b + ps->headers[i].value.off, ps->headers[i].value.len}, accel.len != 0);
    }
    if (rp_proxy_keeps_headers(r)) {
        rp_header_t *all = rp_arena_alloc(r->arena, (ps->nheaders + 1) * sizeof(*all));
        for (unsigned i = 0; i < ps->nheaders; i++)
            all[i] = (rp_header_t){{b + ps->headers[i].name.off, ps->headers[i].name.len},
                                   {b + ps->headers[i].value.off, ps->headers[i].value.len}};
        rp_proxy_keep_headers(r, all, ps->nheaders);
    }
    if (accel.len) {
        /* X-Accel-Redirect: the upstream's answer is dropped, the request goes on there */
        rp_str_t target = {rp_arena_strndup(r->arena, accel.data, accel.len), accel.len};
        rp_attempt_end(&p->at, RP_ATTEMPT_OK, NULL);
        p->finished = 1;
        drop_uc(p, 0);
        rp_proxy_accel_redirect(r, target);
        return -1;
    }

    int64_t cl = -1;
    if (p->mode == B_LENGTH)
        cl = p->left;
    else if (p->mode == B_NONE && code != 204 && code != 304 && f.content_length >= 0)
        cl = f.content_length; /* HEAD: the length the GET would have */

    if (rp_http_response_begin(r, cl) != 0) {
        log_upstream(p, RP_LOG_ERR, "response head too large", 0, NULL);
        p->finished = 1;
        r->response_started = 0;
        r->nout_headers = 0;
        fail(p, 502);
        return -1;
    }
    uc->pos = ps->pos;
    p->state = P_BODY;
    return 0;
}

/* Forwards the body bytes in uc->buf[pos..len). Returns 1 when the body is complete, 0 to
 * read on, -1 when the request has ended. */
static int handle_body(proxy_t *p)
{
    rp_uconn_t *uc = p->uc;
    char *data = uc->buf + uc->pos;
    size_t avail = uc->len - uc->pos;
    int done = 0;
    uc->pos = uc->len = 0;

    switch (p->mode) {
    case B_NONE:
        if (avail)
            p->keep = 0; /* bytes where none belong: do not reuse */
        done = 1;
        break;
    case B_LENGTH: {
        size_t take = (int64_t)avail > p->left ? (size_t)p->left : avail;
        if (take < avail)
            p->keep = 0;
        p->left -= (int64_t)take;
        if (to_client(p, data, take) != 0)
            goto client_gone;
        done = p->left == 0;
        break;
    }
    case B_CHUNKED: {
        size_t n = avail, consumed = 0;
        int rc = rp_chunked_decode(&p->chunked, data, &n, &consumed);
        if (rc < 0) {
            char msg[160];
            snprintf(msg, sizeof(msg), "upstream sent invalid chunked response (%s)",
                     p->chunked.reason);
            abort_response(p, msg, 0, NULL);
            return -1;
        }
        if (to_client(p, data, n) != 0)
            goto client_gone;
        if (rc == 1) {
            if (consumed < avail)
                p->keep = 0;
            done = 1;
        }
        break;
    }
    case B_CLOSE:
        if (to_client(p, data, avail) != 0)
            goto client_gone;
        break;
    }
    return done;

client_gone:
    p->finished = 1;
    drop_uc(p, 0);
    rp_http_abort(p->r);
    return -1;
}

static void on_rate_timer(rp_request_t *r, void *data)
{
    proxy_t *p = data;
    (void)r;
    if (p->finished || p->uc == NULL)
        return;
    if (r->on_drain == on_client_drained)
        return; /* the client is behind too: its drain reads on */
    rp_uconn_resume_read(p->uc);
    read_upstream(p);
}

/* proxy_limit_rate: the body bytes that may be read now. When none may, reading stops
 * (the read event and its timeout are removed) and a timer of the request reads on. */
static int64_t rate_allowance(proxy_t *p)
{
    int64_t now = rp_time_ms(), wait = 0;
    if (p->rate_start == 0)
        p->rate_start = now;
    int64_t may =
        rp_proxy_rate_allowance(p->plcf->limit_rate, p->rate_start, now, p->rate_read, &wait);
    if (may > 0)
        return may;
    event_del(&p->uc->rev);
    event_del(&p->uc->timer);
    if (p->rate_timer == NULL)
        p->rate_timer = rp_http_timer_new(p->r, on_rate_timer, p);
    rp_http_timer_add(p->rate_timer, wait);
    return 0;
}

/* Reads and handles what the upstream sent; stops when the client must catch up. */
static void read_upstream(proxy_t *p)
{
    rp_uconn_t *uc = p->uc;
    rp_request_t *r = p->r;
    size_t to_file = 0; /* written to the temporary file in this event */

    for (;;) {
        if (uc->len == uc->cap) {
            /* only a response head can fill the buffer: its limit is below the size */
            log_upstream(p, RP_LOG_ERR,
                         "upstream sent too big header while reading response "
                         "header from upstream",
                         0, NULL);
            rp_attempt_end(&p->at, RP_ATTEMPT_FAILED, "502");
            p->finished = 1;
            fail(p, 502);
            return;
        }
        size_t room = uc->cap - uc->len;
        if (p->plcf->limit_rate && p->state == P_BODY) {
            int64_t may = rate_allowance(p);
            if (may <= 0) {
                /* the rate timer reads on; what a filter holds goes out meanwhile */
                if (p->forwarded) {
                    p->forwarded = 0;
                    if (rp_http_flush(r) != 0) {
                        p->finished = 1;
                        drop_uc(p, 0);
                        rp_http_abort(r);
                    }
                }
                return;
            }
            if ((int64_t)room > may)
                room = (size_t)may;
        }
        rp_rbuf_t *rb;
        if (p->buffering && p->state == P_BODY && (rb = ahead(p)) != NULL) {
            /* read ahead of the client, within the buffers and the temporary file */
            size_t left = rp_rbuf_room(rb);
            to_file += rp_rbuf_file_written(rb);
            if (left == 0 || to_file >= p->bc->temp_write_size) {
                if (left == 0) {
                    /* full: the upstream waits for the client (as nginx) */
                    event_del(&uc->rev);
                    event_del(&uc->timer);
                    p->paused = 1;
                } else {
                    rp_uconn_resume_read(uc); /* the next turn of the loop reads on */
                }
                r->on_drain = on_buffer_drained;
                return;
            }
            if (room > left)
                room = left;
        }
        ssize_t n = rp_uconn_read(uc, uc->buf + uc->len, room);
        if (n > 0)
            p->at.bytes_in += n;
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            set_utimer(p, p->state == P_BODY ? READ_TIMEOUT(p) : head_timeout(p));
            /* nothing more for now: what a filter holds (a compressor) goes out, so a
             * stream of events is not held back until the end */
            if (p->state == P_BODY && p->forwarded) {
                p->forwarded = 0;
                if (rp_http_flush(r) != 0) {
                    p->finished = 1;
                    drop_uc(p, 0);
                    rp_http_abort(r);
                }
            }
            return;
        }
        if (n <= 0) {
            int err = n < 0 ? errno : 0;
            if (p->state == P_BODY) {
                if (p->mode == B_CLOSE && n == 0) {
                    finish(p); /* a clean close ends a close-delimited body; an error does not */
                    return;
                }
                abort_response(p, err ? "recv() failed" : "upstream prematurely closed connection",
                               err, "while reading upstream");
                return;
            }
            if (retry_stale(p))
                return;
            if (p->send_failed)
                log_upstream(p, RP_LOG_ERR, "writev() failed", p->send_errno,
                             "while sending request to upstream");
            else
                log_upstream(p, RP_LOG_ERR,
                             err ? "recv() failed" : "upstream prematurely closed connection", err,
                             "while reading response header from upstream");
            failed_before_head(p, RP_RETRY_RESET, 0, "502", 502);
            return;
        }
        uc->len += (uint32_t)n;
        p->got_bytes = 1;
        if (p->state == P_BODY)
            p->rate_read += n;

        if (p->state != P_BODY) {
            rp_h1_result_t rc;
            for (;;) {
                rc = rp_h1_parse_response(&p->parser, uc->buf, uc->len);
                if (rc != RP_H1_DONE)
                    break;
                int h = handle_head(p);
                if (h < 0)
                    return;
                if (h == 0)
                    break;
            }
            if (rc == RP_H1_AGAIN)
                continue;
            if (rc == RP_H1_ERROR) {
                char msg[160];
                snprintf(msg, sizeof(msg), "upstream sent an invalid response head (%s)",
                         p->parser.reason);
                log_upstream(p, RP_LOG_ERR, msg, 0, NULL);
                failed_before_head(p, RP_RETRY_INVALID, 0, "502", 502);
                return;
            }
        }

        int done = handle_body(p);
        if (done < 0)
            return;
        if (rp_http_flush_head(r) != 0) {
            p->finished = 1;
            drop_uc(p, 0);
            rp_http_abort(r);
            return;
        }
        if (done) {
            if (!p->body_sent) {
                /* answered before the whole body came: the connection cannot be reused */
                p->keep = 0;
                p->r->on_body = NULL;
            }
            finish(p);
            return;
        }
        if (rp_http_pending(r)) {
            if (p->buffering) {
                /* the client is slower: read on into the buffer (above) */
                p->behind = 1;
                r->on_drain = on_buffer_drained;
                continue;
            }
            /* the client is slower: wait for it before reading more */
            event_del(&uc->rev);
            event_del(&uc->timer);
            r->on_drain = on_client_drained;
            return;
        }
    }
}

static void on_client_drained(rp_request_t *r)
{
    proxy_t *p = rp_proxy_ctx(r)->exchange;
    if (p == NULL || p->uc == NULL)
        return;
    rp_uconn_resume_read(p->uc);
    set_utimer(p, READ_TIMEOUT(p));
}

/* The client took what it could of the buffered response: more goes out; reading
 * resumes if the buffer was full; the response ends once the whole of it went. */
static void on_buffer_drained(rp_request_t *r)
{
    proxy_t *p = rp_proxy_ctx(r)->exchange;
    if (p == NULL || p->rb == NULL)
        return;
    if (rp_rbuf_send(p->rb) != 0) {
        p->finished = 1;
        drop_uc(p, 0);
        rp_http_abort(r);
        return;
    }
    if (rp_rbuf_len(p->rb) == 0 && p->upstream_done) {
        rp_http_response_end(r);
        return;
    }
    if (rp_http_pending(r))
        r->on_drain = on_buffer_drained;
    else
        p->behind = 0; /* caught up: what the upstream sends next goes straight on */
    if (p->paused && p->uc) {
        p->paused = 0;
        rp_uconn_resume_read(p->uc);
        set_utimer(p, READ_TIMEOUT(p));
    }
}

static void on_upstream_read(void *arg)
{
    proxy_t *p = arg;
    if (p->intercepted)
        discard_more(p);
    else
        read_upstream(p);
}

static void on_upstream_write(void *arg)
{
    proxy_t *p = arg;
    int w = flush_uout(p);
    if (w < 0) {
        upstream_send_error(p, errno);
        return;
    }
    if (w > 0)
        return;
    event_del(&p->uc->wev);
    pump_body(p);
}

static void on_upstream_timer(void *arg)
{
    proxy_t *p = arg;
    if (p->intercepted) {
        discard_done(p, -1); /* the dropped body stalled: the connection is not worth it */
        return;
    }
    int sending = event_pending(&p->uc->wev, EV_WRITE, NULL);
    if (p->state == P_BODY) {
        p->at.last_timeout = 1;
        abort_response(p, "upstream timed out (110: Connection timed out) while reading upstream",
                       0, NULL);
        return;
    }
    log_upstream(p, RP_LOG_ERR,
                 sending ? "upstream timed out (110: Connection timed out) while sending request "
                           "to upstream"
                         : "upstream timed out (110: Connection timed out) while reading response "
                           "header from upstream",
                 0, NULL);
    failed_before_head(p, RP_RETRY_TIMEOUT, RP_ATTEMPT_TIMEOUT, "504", 504);
}

/* The first try has not answered in the hedging delay: a second one races it on another
 * peer, when the retry budget has room. */
static void on_hedge(rp_request_t *r, void *data)
{
    proxy_t *p = data;
    if (p->finished || p->sibling || p->state == P_BODY || p->state == P_TUNNEL ||
        p->at.peer == NULL)
        return;
    if (rp_attempt_retry(&p->at, RP_RETRY_HEDGE, 0, -1, 0, -1) < 0)
        return;
    proxy_t *h = rp_arena_calloc(r->arena, sizeof(*h));
    h->r = r;
    h->plcf = p->plcf;
    h->ups = p->ups;
    h->tls = p->tls;
    h->target = p->target;
    h->bc = p->bc;
    rp_attempt_init(&h->at, r, p->ups);
    rp_attempt_hedge_of(&h->at, &p->at);
    h->sibling = p;
    p->sibling = h;
    rp_http_cleanup_add(r, cleanup, h);
    connect_next(h);
}

int rp_proxy_handler(rp_request_t *r)
{
    rp_proxy_loc_conf_t *plcf = r->loc_conf[rp_proxy_module.index];
    if (plcf == NULL || (plcf->upstream == NULL && plcf->route == NULL))
        return RP_DECLINED;
    const rp_proxy_buf_conf_t *bc = rp_proxy_buf_conf(r);
    if ((bc->request_buffering || bc->http_version == 10) &&
        (r->chunked || r->content_length > 0)) {
        /* proxy_request_buffering: the whole body first, before any upstream is chosen
         * (called again when it is complete) */
        int krc = rp_http_keep_body_spill(r, bc->body_in_file_only ? 0 : bc->body_buffer_size,
                                          bc->body_temp_path);
        if (krc != RP_OK)
            return krc;
    }
    rp_upstream_conf_t *u;
    rp_upstream_tls_t *tls;
    int rc = rp_proxy_choose(r, plcf, &u, &tls, NULL);
    if (rc != RP_OK)
        return rp_http_send_error(r, rc);
    if (u->http2)
        return rp_proxy_h2_handler(r, plcf, 0);
    /* over a circuit breaker: 503, or waiting in the queue (called again when it may go) */
    if ((rc = rp_breaker_admit(r, u)) != RP_OK)
        return rc;
    proxy_t *p = rp_arena_calloc(r->arena, sizeof(*p));
    p->r = r;
    p->plcf = plcf;
    p->ups = u;
    p->tls = tls;
    p->bc = bc;
    p->whole = r->body && rp_http_body_kept(r) && rp_hedge_conf(r) == NULL;
    rp_attempt_init(&p->at, r, p->ups);
    p->at.resume = resume_try; /* a hedged try (below) cannot wait for its chooser */
    p->at.resume_data = p;
    p->target = rp_proxy_target(r, plcf);
    rp_proxy_ctx_new(r, plcf, p);
    rp_http_cleanup_add(r, cleanup, p);
    connect_next(p);
    const rp_hedge_conf_t *hc = rp_hedge_conf(r);
    if (hc && !p->finished && rp_hedge_eligible(r)) {
        int64_t delay = rp_hedge_delay(hc, u);
        if (delay > 0) {
            p->hedge_timer = rp_http_timer_new(r, on_hedge, p);
            rp_http_timer_add(p->hedge_timer, delay);
        }
    }
    return RP_DONE;
}
