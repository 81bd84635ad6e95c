/*
 * An HTTP/1 connection after a 101 Switching Protocols: a byte tunnel whose
 * owner (the proxy's upgrade, upstream/tunnel.c) reads and writes through the
 * small rp_conn_tunnel_* API (h1.h), so TLS and the output queue stay the
 * connection's business. The HTTP/1 state (its input buffer holding what the
 * client sent behind its request head, its output queue and write event) stays
 * with the connection for the tunnel's life; the request stays open too, and is
 * logged when the connection closes.
 */
#include "http/h1.h"
#include "core/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void tunnel_read(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    h->tunnel(h->tunnel_arg, EV_READ);
}

/* only armed while output waits for the client (the tunnel times its idleness) */
static void tunnel_timeout(rp_conn_t *c)
{
    rp_log_error(RP_LOG_INFO, 0, "client timed out (send_timeout) while proxying upgraded "
                                 "connection");
    c->failed = 1;
    rp_conn_free(c);
}

static void tunnel_drain(rp_conn_t *c)
{
    /* an upgraded connection has no request boundary to stop at: it runs until its
     * ends close it, or worker_shutdown_timeout (then tunnel_goodbye) */
}

static void tunnel_goodbye(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    if (h && h->tunnel)
        h->tunnel(h->tunnel_arg, RP_TUNNEL_GOODBYE);
}

static void tunnel_release(rp_conn_t *c)
{
    rp_h1_t *h = c->data;
    if (h == NULL)
        return;
    if (h->r)
        rp_http_request_end(h->r);
    h->r = NULL;
    event_del(&h->wev);
    /* the HTTP/1 state is not reused after a tunnel: it had the tunnel's buffers */
    rp_arena_destroy(h->arena);
    evbuffer_free(h->out);
    free(h->in);
    free(h);
    c->data = NULL;
}

const rp_conn_proto_t rp_h1_tunnel_proto = {
    .name = "tunnel",
    .read = tunnel_read,
    .timeout = tunnel_timeout,
    .drain = tunnel_drain,
    .release = tunnel_release,
    .goodbye = tunnel_goodbye,
};

int rp_conn_tunnel_start(rp_conn_t *c, void (*fn)(void *arg, short what), void *arg)
{
    rp_h1_t *h = c->data;
    h->state = RP_H1_TUNNEL;
    h->tunnel = fn;
    h->tunnel_arg = arg;
    h->close_after = 1;
    h->response_queued = 1;
    h->body_left = 0;
    h->body_chunked = 0;
    rp_conn_set_proto(c, &rp_h1_tunnel_proto, h);
    event_del(&c->rev); /* the owner enables reading when it wants bytes */
    event_del(&c->timer);
    rp_request_t *r = h->r;
    if (r == NULL)
        return 0;
    r->on_body = NULL;
    r->on_drain = NULL;
    return rp_http_flush_head(r);
}

ssize_t rp_conn_tunnel_read(rp_conn_t *c, void *buf, size_t n)
{
    rp_h1_t *h = c->data;
    uint32_t avail = h->in_len - h->in_pos;
    if (avail) {
        size_t k = avail < n ? avail : n;
        memcpy(buf, h->in + h->in_pos, k);
        h->in_pos += (uint32_t)k;
        return (ssize_t)k;
    }
    return rp_conn_read(c, buf, n);
}

int rp_conn_tunnel_write(rp_conn_t *c, const void *buf, size_t n)
{
    struct iovec iov = {(void *)buf, n};
    return rp_h1_write_raw(c->data, &iov, 1);
}

size_t rp_conn_tunnel_pending(const rp_conn_t *c)
{
    const rp_h1_t *h = c->data;
    return evbuffer_get_length(h->out);
}

void rp_conn_tunnel_read_enable(rp_conn_t *c, int on)
{
    rp_h1_t *h = c->data;
    if (!on) {
        event_del(&c->rev);
        return;
    }
    event_add(&c->rev, NULL);
    /* bytes behind the request head, or decrypted by TLS, will not make the socket readable */
    if (h->in_len > h->in_pos || rp_conn_tls_pending(c))
        event_active(&c->rev, EV_READ, 1);
}

int rp_conn_tunnel_shutdown(rp_conn_t *c)
{
    if (c->ssl)
        SSL_shutdown(c->ssl); /* close_notify; reading goes on until the client's own */
    return shutdown(c->fd, SHUT_WR);
}
