/*
 * The balancer and the keep-alive cache, per worker.
 *
 * Balancing is nginx's smooth weighted round robin: every pick adds each usable
 * server's weight to its current weight, takes the largest, and subtracts the
 * total from the winner, so weights 5:1:1 give a a b a c a a rather than bursts.
 * A server is usable unless it is `down`, at max_conns, or has failed max_fails
 * times within fail_timeout (then it rests for fail_timeout). Backups are tried
 * only when no primary is usable. As in nginx, a pool of one server never rests
 * it: refusing every request would not help anyone.
 *
 * The cache keeps up to `keepalive` idle connections per pool, most recently
 * used first, so the busy set stays warm and the cold tail times out. An idle
 * connection that becomes readable was closed (or spoke out of turn) and is
 * dropped; a TLS one is first asked whether it only received a session ticket.
 * A connection is handed only to a request with the same TLS settings as the one
 * that opened it (none, for plain HTTP).
 */
#include "upstream/upstream.h"
#include "upstream/upstream_ssl.h"
#include "upstream/breaker.h"
#include "core/log.h"
#include "core/time.h"
#include "upstream/h2_upstream.h"

#include <event2/buffer.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

static rp_cycle_t *live_cycle;
static rp_upstream_conf_t **pooled; /* pools that have cached a connection */
static size_t npooled, pooled_cap;
static rp_uconn_t *spare; /* closed connection objects kept for reuse */

void rp_upstream_set_live(rp_cycle_t *cycle)
{
    live_cycle = cycle;
}

int rp_upstream_is_live(const rp_upstream_conf_t *u)
{
    return u->cycle == live_cycle;
}

static void unlink_idle(rp_uconn_t *uc)
{
    rp_upstream_conf_t *u = uc->ups;
    if (uc->prev)
        uc->prev->next = uc->next;
    else
        u->idle = uc->next;
    if (uc->next)
        uc->next->prev = uc->prev;
    uc->prev = uc->next = NULL;
    u->nidle--;
}

/* The connection was established (or failed): it no longer counts as being opened. */
static void connect_over(rp_uconn_t *uc)
{
    if (uc->connecting) {
        uc->connecting = 0;
        rp_breaker_pending_add(uc->ups, -1);
    }
}

static void uconn_close(rp_uconn_t *uc)
{
    connect_over(uc);
    if (uc->ssl)
        rp_uconn_tls_close(uc);
    if (uc->fd >= 0) {
        event_del(&uc->rev);
        event_del(&uc->wev);
        event_del(&uc->timer);
        close(uc->fd);
    }
    uc->fd = -1;
    rp_peer_conns_add(uc->peer->sh, -1);
    rp_breaker_conns_add(uc->ups, -1);
    rp_upstream_peer_unref(uc->peer);
    uc->peer = NULL;
    uc->next = spare;
    spare = uc;
}

void rp_upstream_close_idle_to(rp_upstream_conf_t *u, rp_upstream_server_t *s)
{
    for (rp_uconn_t *uc = u->idle, *next; uc; uc = next) {
        next = uc->next;
        if (uc->peer == s) {
            unlink_idle(uc);
            uconn_close(uc);
        }
    }
    rp_h2u_close_idle_to(s);
}

/* Readable while idle: the server closed it (or sent what nobody asked for); timed
 * out while idle: keepalive_timeout. Either way it cannot carry a request. */
static void idle_end(rp_uconn_t *uc)
{
    unlink_idle(uc);
    uconn_close(uc);
}

static void on_read_event(evutil_socket_t fd, short what, void *arg)
{
    rp_uconn_t *uc = arg;
    connect_over(uc);
    if (uc->owner) {
        const rp_log_t *saved = rp_log_switch(uc->log);
        uc->on_read(uc->owner);
        rp_log_leave(saved);
    } else if (uc->ssl == NULL || !rp_uconn_tls_idle_ok(uc))
        idle_end(uc);
}

static void on_write_event(evutil_socket_t fd, short what, void *arg)
{
    rp_uconn_t *uc = arg;
    connect_over(uc);
    if (uc->owner) {
        const rp_log_t *saved = rp_log_switch(uc->log);
        uc->on_write(uc->owner);
        rp_log_leave(saved);
    } else
        event_del(&uc->wev);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    rp_uconn_t *uc = arg;
    if (uc->owner) {
        const rp_log_t *saved = rp_log_switch(uc->log);
        uc->on_timeout(uc->owner);
        rp_log_leave(saved);
    } else
        idle_end(uc);
}

void rp_uconn_attach(rp_uconn_t *uc, int fd)
{
    uc->fd = fd;
    event_assign(&uc->rev, rp_event_base, fd, EV_READ | EV_PERSIST, on_read_event, uc);
    event_assign(&uc->wev, rp_event_base, fd, EV_WRITE | EV_PERSIST, on_write_event, uc);
    evtimer_assign(&uc->timer, rp_event_base, on_timer_event, uc);
}

rp_uconn_t *rp_uconn_new(rp_upstream_conf_t *u, rp_upstream_server_t *s, uint32_t cap)
{
    rp_uconn_t *uc = spare;
    if (uc) {
        spare = uc->next;
    } else {
        uc = rp_xcalloc(1, sizeof(*uc));
    }
    if (uc->cap < cap) {
        free(uc->buf);
        uc->buf = rp_xmalloc(cap);
        uc->cap = cap;
    }
    if (uc->out == NULL)
        uc->out = evbuffer_new();
    uc->fd = -1;
    uc->owner = NULL;
    uc->log = NULL;
    uc->suspect = 0;
    uc->keep_asked = 0;
    uc->keepalive_timeout = 0;
    uc->keepalive_requests = 0;
    uc->ssl = NULL;
    uc->tls = NULL;
    uc->tls_retry = 0;
    uc->tls_sound = 0;
    uc->ups = u;
    uc->peer = s;
    rp_peer_conns_add(s->sh, 1);
    rp_breaker_conns_add(u, 1);
    uc->connecting = 1;
    rp_breaker_pending_add(u, 1);
    if (s->dynamic)
        s->refs++;
    uc->requests = 0;
    uc->len = uc->pos = 0;
    uc->prev = uc->next = NULL;
    return uc;
}

rp_uconn_t *rp_upstream_pool_get(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                                 rp_upstream_tls_t *tls)
{
    for (rp_uconn_t *uc = u->idle, *next; uc; uc = next) {
        next = uc->next;
        if (uc->peer != s || uc->tls != tls)
            continue;
        unlink_idle(uc);
        if (uc->suspect) {
            /* After a 204, 304 or HEAD a broken server may still send the body it should
             * not have; those bytes must not become the next client's response. Only
             * these connections pay for the check. */
            char b;
            int stray;
            if (uc->ssl) {
                stray = !rp_uconn_tls_idle_ok(uc);
            } else {
                ssize_t k = recv(uc->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
                stray = k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            }
            if (stray) {
                uconn_close(uc);
                continue;
            }
            uc->suspect = 0;
        }
        event_del(&uc->timer);
        return uc;
    }
    return NULL;
}

void rp_upstream_release(rp_uconn_t *uc, int reusable)
{
    rp_upstream_conf_t *u = uc->ups;
    uc->owner = NULL;
    uc->log = NULL;
    connect_over(uc);
    if (uc->fd < 0) {
        uconn_close(uc);
        return;
    }
    event_del(&uc->wev);
    event_del(&uc->timer);
    if (uc->ssl && rp_uconn_tls_pending(uc))
        reusable = 0; /* decrypted bytes beyond the response: they belong to nobody */
    /* a connection's own settings (balancer_by_lua's enable_keepalive) before the pool's */
    unsigned max_requests = uc->keepalive_requests ? uc->keepalive_requests
                                                   : (unsigned)u->keepalive_requests;
    if (!reusable || u->keepalive == 0 || u->cycle != live_cycle || uc->peer->retired ||
        uc->requests >= max_requests || (u->keepalive_on_request && !uc->keep_asked)) {
        uconn_close(uc);
        return;
    }
    if (u->nidle >= u->keepalive) {
        /* full: the least recently used one goes */
        rp_uconn_t *last = u->idle;
        while (last->next)
            last = last->next;
        unlink_idle(last);
        uconn_close(last);
    }
    if (u->idle == NULL && u->nidle == 0) {
        int known = 0;
        for (size_t i = 0; i < npooled; i++)
            known |= pooled[i] == u;
        if (!known) {
            if (npooled == pooled_cap) {
                pooled_cap = pooled_cap ? pooled_cap * 2 : 8;
                pooled = rp_xrealloc(pooled, pooled_cap * sizeof(*pooled));
            }
            pooled[npooled++] = u;
        }
    }
    uc->len = uc->pos = 0;
    uc->prev = NULL;
    uc->next = u->idle;
    if (u->idle)
        u->idle->prev = uc;
    u->idle = uc;
    u->nidle++;
    event_add(&uc->rev, NULL); /* normally still armed: then this changes nothing */
    int64_t idle = uc->keepalive_timeout ? uc->keepalive_timeout : u->keepalive_timeout;
    struct timeval tv = {(time_t)(idle / 1000), (suseconds_t)((idle % 1000) * 1000)};
    event_add(&uc->timer, &tv);
}

void rp_upstream_pool_close_all(void)
{
    for (size_t i = 0; i < npooled; i++) {
        rp_upstream_conf_t *u = pooled[i];
        while (u->idle) {
            rp_uconn_t *uc = u->idle;
            unlink_idle(uc);
            uconn_close(uc);
        }
    }
    npooled = 0;
    rp_h2u_close_idle();
}

int rp_uconn_flush(rp_uconn_t *uc)
{
    return uc->ssl ? rp_uconn_tls_flush(uc) : evbuffer_write(uc->out, uc->fd);
}

void rp_uconn_resume_read(rp_uconn_t *uc)
{
    event_add(&uc->rev, NULL);
    if (uc->ssl && rp_uconn_tls_pending(uc))
        event_active(&uc->rev, EV_READ, 1);
}
