/*
 * The connection layer (see conn.h): the worker's list of client connections,
 * accept, the TLS handshake, lingering close, and TLS-aware I/O.
 *
 * The TLS handshake and the lingering close are states of the connection, not
 * of a protocol: they run on two small protocol tables of this file. During a
 * handshake that must wait to write (a large certificate chain meeting a full
 * socket buffer) the read event is re-armed for writing; that is rare enough
 * that a second event per connection would cost more than it saves.
 *
 * Connection objects are kept on a free list when they close, so a warm worker
 * allocates nothing per connection.
 */
#include "net/conn.h"
#include "observe/metrics.h"
#include "core/log.h"
#include "net/listen.h"
#include "net/proxy_protocol.h"
#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINGER_MS 2000
#define FREE_KEEP 1024 /* closed connection objects kept for reuse */

void (*rp_conn_count_changed)(void);

static rp_conn_t *conns;
static unsigned nconns;
static rp_conn_t *freelist;
static unsigned nfree;
static uint64_t conn_number;

unsigned rp_conn_count(void)
{
    return nconns;
}

unsigned rp_conn_count_of(const rp_cycle_t *cycle)
{
    unsigned n = 0;
    for (const rp_conn_t *c = conns; c; c = c->next)
        if (c->ls->cycle == cycle)
            n++;
    return n;
}

static void count_changed(void)
{
    if (rp_conn_count_changed)
        rp_conn_count_changed();
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    c->proto->read(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    c->proto->timeout(c);
}

void rp_conn_set_timer(rp_conn_t *c, int64_t ms)
{
    rp_timer_add(&c->timer, ms);
}

void rp_conn_read_resume(rp_conn_t *c)
{
    event_add(&c->rev, NULL);
    if (rp_conn_tls_pending(c))
        event_active(&c->rev, EV_READ, 1);
}

/* ---- I/O ---- */

ssize_t rp_conn_read(rp_conn_t *c, void *buf, size_t n)
{
    ssize_t k;
    if (c->ssl == NULL) {
        k = read(c->fd, buf, n);
    } else {
        unsigned sound = 1;
        k = rp_tls_read(c->ssl, buf, n, &sound);
        if (!sound)
            c->tls_broken = 1;
    }
    if (k > 0)
        rp_metrics_add(RP_MG_BYTES_IN, k);
    return k;
}

static ssize_t tls_write(void *arg, const void *buf, size_t n)
{
    rp_conn_t *c = arg;
    unsigned sound = 1;
    ssize_t k = rp_tls_write(c->ssl, buf, n, &c->tls_retry, &sound);
    if (!sound)
        c->tls_broken = 1;
    return k;
}

ssize_t rp_conn_writev(rp_conn_t *c, const struct iovec *iov, int iovcnt)
{
    ssize_t k =
        c->ssl == NULL ? writev(c->fd, iov, iovcnt) : rp_tls_writev(c, tls_write, iov, iovcnt);
    if (k > 0)
        rp_metrics_add(RP_MG_BYTES_OUT, k);
    return k;
}

int rp_conn_write_buffer(rp_conn_t *c, struct evbuffer *out, ssize_t max)
{
    if (c->ssl == NULL) {
        int k = evbuffer_write_atmost(out, c->fd, max);
        if (k > 0)
            rp_metrics_add(RP_MG_BYTES_OUT, k);
        return k;
    }
    /* One record at a time; a retried SSL_write is never shorter than the one that
     * wanted to wait (a pacing limit yields to that). */
    size_t pending = evbuffer_get_length(out), n = pending;
    if (max >= 0 && (size_t)max < n)
        n = (size_t)max;
    if (n > RP_TLS_RECORD)
        n = RP_TLS_RECORD;
    if (n < c->tls_retry)
        n = c->tls_retry < pending ? c->tls_retry : pending;
    struct iovec iov = {evbuffer_pullup(out, (ssize_t)n), n};
    ssize_t k = rp_conn_writev(c, &iov, 1);
    if (k > 0)
        evbuffer_drain(out, (size_t)k);
    return (int)k;
}

int rp_conn_tls_pending(const rp_conn_t *c)
{
    return c->ssl != NULL && SSL_pending(c->ssl) > 0;
}

/* ---- closing ---- */

void rp_conn_free(rp_conn_t *c)
{
    event_del(&c->rev);
    event_del(&c->timer);
    rp_metrics_conn_closed(c);
    /* First: a request's log may read the TLS state. */
    if (c->proto && c->proto->release) {
        const rp_conn_proto_t *p = c->proto;
        c->proto = NULL;
        p->release(c);
    }
    c->data = NULL;
    if (c->ssl) {
        if (c->tls_ready && !c->reset && !c->failed && !c->tls_broken)
            SSL_shutdown(c->ssl); /* close_notify, best effort: never waits */
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    free(c->sni);
    c->sni = NULL;
    free(c->proxy);
    c->proxy = NULL;
    if (c->fd >= 0) {
        if (c->reset) {
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
    if (nfree < FREE_KEEP) {
        c->next = freelist;
        freelist = c;
        nfree++;
    } else {
        free(c);
    }
    count_changed();
}

static void linger_read(rp_conn_t *c)
{
    char sink[4096];
    ssize_t n = read(c->fd, sink, sizeof(sink));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        rp_conn_free(c);
}

static const rp_conn_proto_t linger_proto = {
    .name = "linger",
    .read = linger_read,
    .timeout = rp_conn_free,
    .drain = NULL,
    .release = NULL,
};

void rp_conn_linger(rp_conn_t *c)
{
    if (c->ssl && c->tls_ready && !c->failed && !c->tls_broken)
        SSL_shutdown(c->ssl);
    rp_conn_set_proto(c, &linger_proto, NULL);
    if (shutdown(c->fd, SHUT_WR) != 0) {
        rp_conn_free(c);
        return;
    }
    event_add(&c->rev, NULL);
    rp_conn_set_timer(c, LINGER_MS);
}

/* ---- accepting and the TLS handshake ---- */

static void set_interest(rp_conn_t *c, short what)
{
    if (event_get_events(&c->rev) == (what | EV_PERSIST)) {
        event_add(&c->rev, NULL);
        return;
    }
    event_del(&c->rev);
    event_assign(&c->rev, rp_event_base, c->fd, what | EV_PERSIST, on_read, c);
    event_add(&c->rev, NULL);
}

static void handshake(rp_conn_t *c)
{
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc == 1) {
        set_interest(c, EV_READ);
        event_del(&c->timer);
        c->tls_ready = 1;
        c->plain_reply = NULL;
        rp_metrics_tls_handshake(c, 1);
        rp_conn_set_proto(c, NULL, NULL);
        c->ls->handler(c);
        return;
    }
    int err = SSL_get_error(c->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        set_interest(c, EV_READ);
        return;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        set_interest(c, EV_WRITE);
        return;
    }
    unsigned long e = ERR_peek_error();
    char why[160] = "connection closed";
    if (e)
        ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    rp_log_error(RP_LOG_INFO, 0, "TLS handshake failed (%s), client: fd %d", why, c->fd);
    rp_metrics_tls_handshake(c, 0);
    if (e && ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST && c->plain_reply) {
        /* As nginx: a plain HTTP request on a TLS port gets a plain answer saying so. */
        SSL_free(c->ssl);
        c->ssl = NULL;
        set_interest(c, EV_READ);
        if (write(c->fd, c->plain_reply, strlen(c->plain_reply)) > 0) {
            rp_conn_linger(c);
            return;
        }
    }
    c->failed = 1;
    rp_conn_free(c);
}

static void handshake_timeout(rp_conn_t *c)
{
    rp_log_error(RP_LOG_INFO, 0, "TLS handshake timed out, client: fd %d", c->fd);
    rp_metrics_tls_handshake(c, 0);
    c->failed = 1;
    rp_conn_free(c);
}

static const rp_conn_proto_t handshake_proto = {
    .name = "tls-handshake",
    .read = handshake,
    .timeout = handshake_timeout,
    .drain = NULL,
    .release = NULL,
};

void rp_conn_tls_accept(rp_conn_t *c, SSL_CTX *ctx, int64_t timeout_ms, const char *plain_reply)
{
    c->ssl = ctx ? SSL_new(ctx) : NULL;
    if (c->ssl == NULL) {
        rp_log_error(RP_LOG_ALERT, 0, "cannot start TLS: no certificate for this address");
        rp_conn_free(c);
        return;
    }
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_app_data(c->ssl, c);
    SSL_set_accept_state(c->ssl);
    c->plain_reply = plain_reply;
    rp_conn_set_proto(c, &handshake_proto, NULL);
    rp_conn_set_timer(c, timeout_ms);
}

/* A zeroed connection object on the worker's list. */
static rp_conn_t *conn_get(void)
{
    rp_conn_t *c = freelist;
    if (c) {
        freelist = c->next;
        nfree--;
    } else {
        c = rp_xmalloc(sizeof(*c));
    }
    memset(c, 0, sizeof(*c));
    c->next = conns;
    if (conns)
        conns->prev = c;
    conns = c;
    nconns++;
    return c;
}

rp_conn_t *rp_conn_detached(const rp_conn_t *like, const rp_conn_proto_t *proto, void *data)
{
    rp_conn_t *c = conn_get();
    c->fd = -1;
    c->ls = like->ls;
    c->peer = like->peer;
    c->peerlen = like->peerlen;
    c->number = like->number;
    c->requests = like->requests;
    c->draining = like->draining;
    if (like->sni)
        c->sni = rp_xstrdup(like->sni);
    if (like->proxy) {
        c->proxy = rp_xmalloc(sizeof(*c->proxy));
        *c->proxy = *like->proxy;
    }
    c->proxy_read = like->proxy_read;
    /* rev is assigned (rp_conn_free deletes it) but never added: there is no socket */
    event_assign(&c->rev, rp_event_base, -1, 0, on_read, c);
    evtimer_assign(&c->timer, rp_event_base, on_timer, c);
    rp_conn_set_proto(c, proto, data);
    count_changed();
    return c;
}

void rp_conn_accept(int fd, struct sockaddr *sa, socklen_t len, struct rp_listening_s *ls)
{
    rp_conn_t *c = conn_get();
    c->fd = fd;
    c->ls = ls;
    if (len > sizeof(c->peer))
        len = sizeof(c->peer);
    memcpy(&c->peer, sa, len);
    c->peerlen = len;
    c->number = ++conn_number;
    rp_time_now(&c->accepted);
    c->metrics_open = 1;
    rp_metrics_conn_open();

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    event_assign(&c->rev, rp_event_base, fd, EV_READ | EV_PERSIST, on_read, c);
    evtimer_assign(&c->timer, rp_event_base, on_timer, c);
    event_add(&c->rev, NULL);
    count_changed();
    ls->handler(c);
}

void rp_conn_drain_all(void)
{
    rp_conn_t *c = conns;
    while (c) {
        rp_conn_t *next = c->next;
        c->draining = 1;
        /* a connection still in its TLS handshake may be a request on its way: its
         * answer will say "Connection: close" */
        if (c->proto && c->proto->drain)
            c->proto->drain(c);
        c = next;
    }
}

void rp_conn_close_all(void)
{
    for (rp_conn_t *c = conns; c; c = c->next)
        if (c->proto && c->proto->goodbye)
            c->proto->goodbye(c); /* writes at most, frees nothing */
    while (conns)
        rp_conn_free(conns);
}
