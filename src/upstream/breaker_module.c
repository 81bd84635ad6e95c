/*
 * The breaker module: the `upstream` block's max_connections, max_requests,
 * max_pending, max_retries and queue directives, the admission of each proxied request
 * to its group (rp_breaker_admit, called by the HTTP/1 and HTTP/2 proxies once the
 * group is chosen), the requests waiting in a group's queue in this worker, and the
 * group's limits and queue in upstream_status.
 *
 * With adaptive_concurrency (adaptive.h) in the block, its limit is one more
 * max_requests, read from the group's record at each admission: refused requests are
 * answered `X-Rampart-Overloaded: adaptive_concurrency` (counted as shed in the record),
 * or wait in the queue as for any other limit.
 *
 * A request the limits refuse is answered 503 with X-Rampart-Overloaded naming the
 * limit, and counted in the pool's breaker_tripped; the first such answer is logged at
 * warn, then at most one a minute per group, saying how many there were meanwhile.
 *
 * With a queue, the request takes a ticket (breaker.c) and its content handler returns
 * RP_AGAIN: the request is suspended, the worker goes on. It is resumed when its ticket
 * is at the front of the node's queue and the limits let it go, or when its wait runs
 * out (then it is answered 503). A worker holding waiters looks again when a request
 * to the group ends in it (an observer of the group's attempts), and every TICK_MS
 * besides, because requests ending in other workers cannot signal it: a few checks of
 * shared words per tick, only while it has waiters. A waiter whose request ends (its
 * client left, its HTTP/2 stream was reset, the worker stops) leaves the queue in the
 * request's cleanup: its ticket is marked done, and the queue passes it.
 *
 * A request let go keeps one place of max_requests reserved (counted in flight, in
 * the pool's journalled totals) until its handler has run again and its first attempt
 * holds a place of its own (the reservation goes from the loop, just after), so the next
 * waiter, in whichever worker, never sees the place free in between.
 */
#include "upstream/breaker.h"
#include "upstream/adaptive.h"
#include "core/log.h"
#include "core/time.h"
#include "http/http.h"
#include "http/request.h"

#include <event2/buffer.h>

#include <limits.h>
#include <stddef.h>
#include <string.h>

#define TICK_MS               5    /* how often a worker with waiters looks at the queue */
#define STALL_GRACE_MS        2000 /* beyond the queue's timeout: a front ticket's worker is gone */
#define WARN_EVERY_MS         60000 /* at most one "overloaded" warning a minute per group */
#define DEFAULT_QUEUE_TIMEOUT 60000 /* nginx's queue directive's */

typedef struct waiter_s waiter_t;

typedef struct {
    rp_breaker_limits_t lim; /* first (the unit tests read it); RP_CONF_UNSET while being
                              * read, then 0 for none */
    int64_t max_retries;
    unsigned any : 1;      /* a limit is set: requests are admitted */
    unsigned adaptive : 1; /* adaptive_concurrency: a dynamic max_requests */
    const char *queue_file;
    unsigned queue_line;
    rp_upstream_conf_t *u;
    rp_upstream_observer_t ob;
    /* this worker's */
    waiter_t *first, *last; /* its requests waiting in the queue, in ticket order */
    int64_t reserved;       /* places of requests let go whose first attempt counts now */
    struct event tick;
    unsigned tick_ready : 1;
} breaker_conf_t;

/* A request's way through the queue. */
enum {
    W_WAITING,   /* holds a ticket */
    W_GRANTED,   /* let go: resumed, a place reserved, its handler not yet called again */
    W_ADMITTED,  /* its handler went on */
    W_TIMED_OUT, /* its wait ran out: resumed to be answered 503 */
    W_DONE,
};

struct waiter_s {
    rp_request_t *r;
    breaker_conf_t *bc;
    int64_t ticket;
    int state;
    rp_http_timer_t *timer;
    waiter_t *prev, *next;
};

static rp_shm_counter_t *queue_words(breaker_conf_t *bc)
{
    return bc->u->pool->spare;
}

/* ---- the counts ---- */

/* Whether this worker holds a connection to u that a request can use at once. */
static int idle_here(rp_upstream_conf_t *u)
{
    if (!u->http2)
        return u->nidle > 0;
    rp_upstream_peers_t *set = u->live;
    for (unsigned i = 0; set && i < set->n; i++)
        if (set->peer[i]->h2_sessions)
            return 1; /* streams share its sessions */
    return 0;
}

static int verdict(breaker_conf_t *bc)
{
    rp_pool_shared_t *ps = bc->u->pool;
    rp_breaker_counts_t c = {
        .inflight = rp_shm_counter_get(&ps->totals.inflight),
        .conns = rp_shm_counter_get(&ps->totals.conns),
        .pending = rp_shm_counter_get(&ps->retries.conns),
    };
    const rp_breaker_limits_t *lim = &bc->lim;
    rp_breaker_limits_t dyn;
    rp_adaptive_shared_t *a;
    if (bc->adaptive && (a = rp_adaptive_of(bc->u)) != NULL) {
        dyn = bc->lim;
        dyn.adaptive = rp_adaptive_limit(a);
        lim = &dyn;
    }
    int v = rp_breaker_check(lim, &c);
    if (v == RP_BREAKER_MAX_CONNECTIONS || v == RP_BREAKER_MAX_PENDING) {
        c.idle_here = idle_here(bc->u); /* only worth a look when it decides */
        v = rp_breaker_check(lim, &c);
    }
    return v;
}

/* ---- refusing ---- */

static void warn(breaker_conf_t *bc, int v, rp_request_t *r)
{
    rp_shm_counter_t *q = queue_words(bc);
    rp_pool_shared_t *ps = bc->u->pool;
    int64_t now = rp_time_ms(), last = rp_shm_counter_get(&q[RP_BQ_LAST_WARN]);
    rp_shm_counter_add(&q[RP_BQ_SILENT], 1);
    if (last && now - last < WARN_EVERY_MS && now >= last)
        return;
    if (!rp_shm_counter_cas(&q[RP_BQ_LAST_WARN], &last, now ? now : 1))
        return; /* another worker warns */
    int64_t n = rp_shm_counter_get(&q[RP_BQ_SILENT]);
    rp_shm_counter_add(&q[RP_BQ_SILENT], -n);
    rp_log_error(RP_LOG_WARN, 0,
                 "upstream \"%s\" overloaded: %s, request \"%.*s %.*s\" answered 503 (in flight "
                 "%lld, connections %lld, connecting %lld, waiting %lld; %lld such answers "
                 "since the last warning)",
                 bc->u->name, rp_breaker_verdict_name(v), (int)r->method.len, r->method.data,
                 (int)r->request_uri.len, r->request_uri.data,
                 (long long)rp_shm_counter_get(&ps->totals.inflight),
                 (long long)rp_shm_counter_get(&ps->totals.conns),
                 (long long)rp_shm_counter_get(&ps->retries.conns),
                 (long long)rp_breaker_queue_waiting(q), (long long)n);
}

static int trip(rp_request_t *r, breaker_conf_t *bc, int v)
{
    rp_shm_counter_add(&bc->u->pool->breaker_tripped, 1);
    rp_adaptive_shared_t *a;
    if (v == RP_BREAKER_ADAPTIVE && (a = rp_adaptive_of(bc->u)) != NULL)
        rp_shm_counter_add(&a->shed, 1);
    warn(bc, v, r);
    const char *name = rp_breaker_verdict_name(v);
    rp_http_add_header(r, RP_STR("X-Rampart-Overloaded"), (rp_str_t){name, strlen(name)});
    return rp_http_send_error(r, 503);
}

/* ---- the worker's waiters ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg);

static void tick_after(breaker_conf_t *bc, int64_t ms)
{
    if (!bc->tick_ready) {
        evtimer_assign(&bc->tick, rp_event_base, on_tick, bc);
        bc->tick_ready = 1;
    }
    rp_timer_add(&bc->tick, ms);
}

static void unlink_waiter(waiter_t *w)
{
    breaker_conf_t *bc = w->bc;
    if (w->prev)
        w->prev->next = w->next;
    else
        bc->first = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        bc->last = w->prev;
    w->prev = w->next = NULL;
}

/* w leaves the queue without going: its ticket is done, the queue passes it. */
static void leave(waiter_t *w)
{
    breaker_conf_t *bc = w->bc;
    rp_shm_counter_t *q = queue_words(bc);
    unlink_waiter(w);
    rp_breaker_ticket_done(q, w->ticket);
    rp_breaker_queue_pass(q, rp_time_ms(), bc->lim.queue_timeout + STALL_GRACE_MS);
    if (bc->first)
        tick_after(bc, 0); /* the next one here may be at the front now */
}

/* w may go: a place is reserved for it and its handler runs again from the loop. */
static void grant(waiter_t *w)
{
    breaker_conf_t *bc = w->bc;
    unlink_waiter(w);
    rp_peer_inflight_add(&bc->u->pool->totals, 1);
    w->state = W_GRANTED;
    rp_breaker_ticket_done(queue_words(bc), w->ticket);
    rp_http_timer_del(w->timer);
    rp_http_resume(w->r);
}

/* Lets this worker's waiters go while the front ticket is theirs and the limits allow. */
static void poll_queue(breaker_conf_t *bc)
{
    rp_shm_counter_t *q = queue_words(bc);
    int64_t now = rp_time_ms(), stall = bc->lim.queue_timeout + STALL_GRACE_MS;
    waiter_t *w;
    while ((w = bc->first) != NULL) {
        /* a ticket behind HEAD was passed as stalled while it still waited (its worker
         * was too late, not gone): it is at the front too */
        if (w->ticket > rp_breaker_queue_pass(q, now, stall))
            break;
        if (verdict(bc) != RP_BREAKER_PASS)
            break;
        grant(w);
    }
    rp_breaker_queue_pass(q, now, stall);
    if (bc->first)
        tick_after(bc, TICK_MS);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    breaker_conf_t *bc = arg;
    if (bc->reserved) {
        rp_peer_inflight_add(&bc->u->pool->totals, -(int)bc->reserved);
        bc->reserved = 0;
    }
    poll_queue(bc);
}

/* An attempt on the group ended in this worker: a place may be free (looked at from the
 * loop: the attempt leaves the in-flight count after its observers). */
static void attempt_ended(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                          const rp_upstream_outcome_t *o, void *data)
{
    breaker_conf_t *bc = data;
    if (bc->first)
        tick_after(bc, 0);
}

static void on_wait_timeout(rp_request_t *r, void *data)
{
    waiter_t *w = data;
    if (w->state != W_WAITING)
        return;
    leave(w);
    w->state = W_TIMED_OUT;
    rp_shm_counter_add(&queue_words(w->bc)[RP_BQ_TIMEOUTS], 1);
    rp_http_resume(r); /* its handler answers 503 */
}

/* The request ended: a waiting one leaves the queue, a granted one gives its place back. */
static void waiter_cleanup(rp_request_t *r, void *data)
{
    waiter_t *w = data;
    breaker_conf_t *bc = w->bc;
    if (w->state == W_WAITING) {
        rp_log_error(RP_LOG_INFO, 0,
                     "upstream \"%s\": request left the queue before its turn "
                     "(ticket %lld)",
                     bc->u->name, (long long)w->ticket);
        leave(w);
    } else if (w->state == W_GRANTED) {
        rp_peer_inflight_add(&bc->u->pool->totals, -1);
        if (bc->first)
            tick_after(bc, 0);
    }
    w->state = W_DONE;
}

static int enqueue(rp_request_t *r, breaker_conf_t *bc)
{
    rp_shm_counter_t *q = queue_words(bc);
    int64_t ticket;
    if (rp_breaker_ticket_take(q, bc->lim.queue, rp_time_ms(), &ticket) != 0)
        return trip(r, bc, RP_BREAKER_QUEUE_FULL);
    waiter_t *w = rp_arena_calloc(r->arena, sizeof(*w));
    w->r = r;
    w->bc = bc;
    w->ticket = ticket;
    w->state = W_WAITING;
    /* tickets only grow: the worker's list stays in ticket order */
    w->prev = bc->last;
    if (bc->last)
        bc->last->next = w;
    else
        bc->first = w;
    bc->last = w;
    rp_http_set_ctx(r, rp_breaker_module, w);
    rp_http_cleanup_add(r, waiter_cleanup, w);
    w->timer = rp_http_timer_new(r, on_wait_timeout, w);
    rp_http_timer_add(w->timer, bc->lim.queue_timeout);
    rp_log_error(RP_LOG_INFO, 0, "upstream \"%s\": request queued (ticket %lld, %lld waiting)",
                 bc->u->name, (long long)ticket, (long long)rp_breaker_queue_waiting(q));
    /* looked at from the loop, never granted here: its handler must return first */
    tick_after(bc, 0);
    return RP_AGAIN;
}

int rp_breaker_admit(rp_request_t *r, rp_upstream_conf_t *u)
{
    if (u->module_conf == NULL || u->pool == NULL)
        return RP_OK; /* an implicit pool: no upstream block, no breakers */
    breaker_conf_t *bc = u->module_conf[rp_breaker_module.index];
    if (bc == NULL || !bc->any)
        return RP_OK;
    waiter_t *w = rp_http_get_ctx(r, rp_breaker_module);
    if (w && w->bc == bc) {
        switch (w->state) {
        case W_GRANTED:
            /* Its first attempt counts it in flight from here, on this stack: the place
             * is let go from the loop, once the attempt holds its own. Let go now, another
             * worker could see it free before the attempt is counted, and send the next
             * waiter alongside. */
            bc->reserved++;
            tick_after(bc, 0);
            w->state = W_ADMITTED;
            return RP_OK;
        case W_TIMED_OUT:
            w->state = W_DONE;
            return trip(r, bc, RP_BREAKER_QUEUE_TIMEOUT);
        case W_WAITING:
            return RP_AGAIN;
        default:
            return RP_OK;
        }
    }
    int v = verdict(bc);
    if (bc->lim.queue == 0)
        return v == RP_BREAKER_PASS ? RP_OK : trip(r, bc, v);
    rp_shm_counter_t *q = queue_words(bc);
    if (v == RP_BREAKER_PASS &&
        rp_shm_counter_get(&q[RP_BQ_HEAD]) >= rp_shm_counter_get(&q[RP_BQ_TAIL]))
        return RP_OK; /* nobody waits: it overtakes no one */
    return enqueue(r, bc);
}

/* ---- upstream_status ---- */

void rp_breaker_status_json(struct evbuffer *b, rp_upstream_conf_t *u)
{
    breaker_conf_t *bc = u->module_conf ? u->module_conf[rp_breaker_module.index] : NULL;
    rp_breaker_limits_t none = {0};
    const rp_breaker_limits_t *l = bc ? &bc->lim : &none;
    evbuffer_add_printf(b,
                        ",\"max_connections\":%lld,\"max_requests\":%lld,\"max_pending\":%lld,"
                        "\"max_retries\":%d,\"queue\":%lld,\"queue_timeout_ms\":%lld",
                        (long long)l->max_connections, (long long)l->max_requests,
                        (long long)l->max_pending, u->max_retries, (long long)l->queue,
                        (long long)(l->queue ? l->queue_timeout : 0));
    if (u->pool) {
        rp_shm_counter_t *q = u->pool->spare;
        evbuffer_add_printf(b, ",\"waiting\":%lld,\"queued\":%lld,\"queue_timeouts\":%lld",
                            (long long)rp_breaker_queue_waiting(q),
                            (long long)rp_shm_counter_get(&q[RP_BQ_QUEUED]),
                            (long long)rp_shm_counter_get(&q[RP_BQ_TIMEOUTS]));
    }
    rp_adaptive_status_json(b, u);
}

/* ---- configuration ---- */

static void *create_ups(rp_conf_t *cf)
{
    breaker_conf_t *bc = rp_arena_calloc(cf->arena, sizeof(*bc));
    bc->lim.max_connections = bc->lim.max_requests = bc->lim.max_pending = RP_CONF_UNSET;
    bc->lim.queue = RP_CONF_UNSET;
    bc->lim.queue_timeout = DEFAULT_QUEUE_TIMEOUT;
    bc->max_retries = RP_CONF_UNSET;
    return bc;
}

/* max_connections, max_requests, max_pending, max_retries: a count, 0 for no limit. */
static const char *set_limit(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    int64_t *field = (int64_t *)((char *)conf + cmd->offset);
    long v;
    if (*field != RP_CONF_UNSET)
        return "is duplicate";
    if (rp_parse_int(cf->argv[1], INT_MAX, &v) != 0)
        return rp_conf_error(cf, "invalid number \"%s\"", cf->argv[1]);
    *field = v;
    if (field == &((breaker_conf_t *)conf)->max_retries) {
        /* the retry policy reads it from the group */
        rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
        u->max_retries = (int)v;
    }
    return RP_CONF_OK;
}

static const char *set_queue(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    breaker_conf_t *bc = conf;
    long v;
    if (bc->lim.queue != RP_CONF_UNSET)
        return "is duplicate";
    if (rp_parse_int(cf->argv[1], INT_MAX, &v) != 0)
        return rp_conf_error(cf, "invalid number \"%s\"", cf->argv[1]);
    if (v > RP_BREAKER_RING)
        return rp_conf_error(cf, "a queue holds at most %d requests", RP_BREAKER_RING);
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "timeout=", 8) != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        if (rp_parse_msec(a + 8, &bc->lim.queue_timeout) != 0 || bc->lim.queue_timeout <= 0)
            return rp_conf_error(cf, "invalid timeout \"%s\"", a + 8);
    }
    bc->lim.queue = v;
    bc->queue_file = cf->file;
    bc->queue_line = cf->line;
    return RP_CONF_OK;
}

static void tick_cleanup(void *data)
{
    breaker_conf_t *bc = data;
    if (bc->tick_ready)
        event_del(&bc->tick);
}

/* Settles each group's limits; a queue needs a limit to wait for. */
static const char *postconfiguration(rp_conf_t *cf)
{
    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    if (um == NULL)
        return RP_CONF_OK;
    rp_upstream_conf_t **ups = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = ups[i];
        breaker_conf_t *bc = u->module_conf ? u->module_conf[rp_breaker_module.index] : NULL;
        if (bc == NULL)
            continue;
        int64_t *counts[] = {&bc->lim.max_connections, &bc->lim.max_requests, &bc->lim.max_pending,
                             &bc->lim.queue};
        for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
            if (*counts[k] == RP_CONF_UNSET)
                *counts[k] = 0;
        bc->u = u;
        bc->adaptive = rp_adaptive_configured(u) != 0;
        bc->any =
            bc->lim.max_connections || bc->lim.max_requests || bc->lim.max_pending || bc->adaptive;
        if (bc->lim.queue && !bc->any) {
            char *argv[] = {"queue", NULL};
            cf->file = bc->queue_file;
            cf->line = bc->queue_line;
            cf->argv = argv;
            rp_conf_error(cf,
                          "upstream \"%s\" has no max_requests, max_connections or "
                          "max_pending for requests to wait for",
                          u->name);
            cf->argv = NULL;
            return RP_CONF_ERROR;
        }
        if (bc->lim.queue) {
            bc->ob.report = attempt_ended;
            bc->ob.data = bc;
            rp_upstream_observe(u, &bc->ob);
            rp_arena_cleanup(cf->arena, tick_cleanup, bc);
        }
    }
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"max_connections", RP_CTX_UPSTREAM, 0, 1, 1, set_limit, RP_CONF_UPS,
     offsetof(breaker_conf_t, lim.max_connections), NULL},
    {"max_requests", RP_CTX_UPSTREAM, 0, 1, 1, set_limit, RP_CONF_UPS,
     offsetof(breaker_conf_t, lim.max_requests), NULL},
    {"max_pending", RP_CTX_UPSTREAM, 0, 1, 1, set_limit, RP_CONF_UPS,
     offsetof(breaker_conf_t, lim.max_pending), NULL},
    {"max_retries", RP_CTX_UPSTREAM, 0, 1, 1, set_limit, RP_CONF_UPS,
     offsetof(breaker_conf_t, max_retries), NULL},
    {"queue", RP_CTX_UPSTREAM, 0, 1, 2, set_queue, RP_CONF_UPS, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_breaker_module = {
    .name = "upstream_breaker",
    .commands = commands,
    .create_ups = create_ups,
    .postconfiguration = postconfiguration,
};
