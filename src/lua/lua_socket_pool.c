/*
 * The worker's pools of idle cosocket connections (setkeepalive), as OpenResty's:
 * one pool per name ("host:port", "unix:path", or the connect's opts.pool), each
 * holding at most its size of idle connections (the oldest is closed to make
 * room). An idle connection is watched: the peer closing it, bytes nobody asked
 * for, or its keepalive timeout closes it and takes it out of the pool.
 *
 * A pool made with a backlog (opts.backlog) also caps the connections open through
 * it, busy or idle, at its size: further connects wait in a queue of that length
 * (for at most their connect timeout) until one is closed or turns idle.
 */
#include "lua/lua_socket.h"

#include "core/log.h"
#include "core/time.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct idle_s idle_t;
struct idle_s {
    rp_lua_idle_t c;
    struct event *ev;
    rp_lua_pool_t *pool;
    idle_t *next, *prev; /* newest first */
};

struct rp_lua_pool_s {
    char *key;
    int size;
    int backlog; /* -1: connects never wait */
    int nidle;
    int active; /* with a backlog: connections out of the pool, open */
    int nwaiting;
    idle_t *idle, *oldest;
    rp_lua_pool_waiter_t *wait_head, *wait_tail;
    rp_lua_pool_t *next;
};

static rp_lua_pool_t *pools;

void rp_lua_close_conn(int fd, SSL *ssl)
{
    if (ssl) {
        /* close_notify if it goes out at once; never wait for the peer's */
        if (SSL_is_init_finished(ssl))
            SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
}

rp_lua_pool_t *rp_lua_pool_get(const char *key, int size, int backlog)
{
    for (rp_lua_pool_t *p = pools; p; p = p->next) {
        if (strcmp(p->key, key) == 0)
            return p;
    }
    rp_lua_pool_t *p = rp_xcalloc(1, sizeof(*p));
    p->key = rp_xstrdup(key);
    p->size = size > 0 ? size : 30;
    p->backlog = backlog;
    p->next = pools;
    pools = p;
    return p;
}

static void unlink_idle(idle_t *it)
{
    rp_lua_pool_t *p = it->pool;
    if (it->prev)
        it->prev->next = it->next;
    else
        p->idle = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        p->oldest = it->prev;
    p->nidle--;
    event_free(it->ev);
}

static void wake_one(rp_lua_pool_t *p);

static void drop_idle(idle_t *it)
{
    rp_lua_pool_t *p = it->pool;
    unlink_idle(it);
    rp_lua_close_conn(it->c.fd, it->c.ssl);
    free(it);
    wake_one(p); /* a slot freed */
}

/* The idle connection's socket became readable, or its time ran out. */
static void on_idle_event(evutil_socket_t fd, short what, void *arg)
{
    idle_t *it = arg;
    if (what & EV_READ) {
        if (it->c.ssl) {
            /* a TLS 1.3 session ticket arriving late is housekeeping: keep it */
            char b[1];
            ERR_clear_error();
            int n = SSL_read(it->c.ssl, b, 1);
            if (n <= 0 && SSL_get_error(it->c.ssl, n) == SSL_ERROR_WANT_READ) {
                event_add(it->ev, NULL); /* the timeout goes on from the original add */
                return;
            }
        } else {
            char b[1];
            ssize_t n = recv(fd, b, 1, MSG_PEEK);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return; /* spurious: the event is persistent */
        }
    }
    drop_idle(it);
}

int rp_lua_pool_take(rp_lua_pool_t *p, rp_lua_idle_t *out)
{
    idle_t *it = p->idle;
    if (it == NULL)
        return 0;
    unlink_idle(it);
    *out = it->c;
    out->reused++;
    free(it);
    if (p->backlog >= 0)
        p->active++;
    return 1;
}

void rp_lua_pool_put(rp_lua_pool_t *p, const rp_lua_idle_t *c, int64_t timeout_ms, int counted)
{
    if (counted && p->active > 0)
        p->active--;
    if (p->nidle >= p->size && p->oldest)
        drop_idle(p->oldest);
    idle_t *it = rp_xcalloc(1, sizeof(*it));
    it->c = *c;
    it->pool = p;
    it->ev = event_new(rp_event_base, c->fd, EV_READ | EV_PERSIST, on_idle_event, it);
    if (timeout_ms > 0)
        rp_timer_add(it->ev, timeout_ms);
    else
        event_add(it->ev, NULL);
    it->next = p->idle;
    if (p->idle)
        p->idle->prev = it;
    else
        p->oldest = it;
    p->idle = it;
    p->nidle++;
    wake_one(p); /* a waiting connect may take it */
}

void rp_lua_pool_close_all(void)
{
    for (rp_lua_pool_t *p = pools; p; p = p->next) {
        while (p->idle) {
            idle_t *it = p->idle;
            unlink_idle(it);
            rp_lua_close_conn(it->c.fd, it->c.ssl);
            free(it);
        }
    }
}

/* ---- the backlog ---- */

int rp_lua_pool_has_backlog(const rp_lua_pool_t *p)
{
    return p->backlog >= 0;
}

static void unqueue(rp_lua_pool_waiter_t *w)
{
    rp_lua_pool_t *p = w->pool;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->wait_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        p->wait_tail = w->prev;
    w->next = w->prev = NULL;
    p->nwaiting--;
    if (w->timer) {
        event_free(w->timer);
        w->timer = NULL;
    }
    w->pool = NULL;
}

static void wake_one(rp_lua_pool_t *p)
{
    if (p->wait_head == NULL)
        return;
    int how = 1; /* take the idle connection */
    if (p->idle == NULL) {
        if (p->active + p->nidle >= p->size)
            return;
        p->active++; /* the slot is the waiter's: nobody takes it in between */
        how = 2;
    }
    rp_lua_pool_waiter_t *w = p->wait_head;
    unqueue(w);
    w->wake(w, how);
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    rp_lua_pool_waiter_t *w = arg;
    (void)fd;
    (void)what;
    unqueue(w);
    w->wake(w, 0);
}

int rp_lua_pool_acquire(rp_lua_pool_t *p, rp_lua_pool_waiter_t *w, int64_t timeout_ms)
{
    if (p->active + p->nidle < p->size && p->wait_head == NULL) {
        p->active++;
        return 1;
    }
    if (p->nwaiting >= p->backlog)
        return -1;
    w->pool = p;
    w->next = NULL;
    w->prev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->next = w;
    else
        p->wait_head = w;
    p->wait_tail = w;
    p->nwaiting++;
    w->timer = evtimer_new(rp_event_base, on_wait_timeout, w);
    rp_timer_add(w->timer, timeout_ms > 0 ? timeout_ms : 60000);
    return 0;
}

void rp_lua_pool_release(rp_lua_pool_t *p)
{
    if (p->active > 0)
        p->active--;
    wake_one(p);
}

void rp_lua_pool_unwait(rp_lua_pool_waiter_t *w)
{
    if (w->pool)
        unqueue(w);
}
