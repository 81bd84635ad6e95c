/*
 * The pure parts of the circuit breakers (breaker.h): the verdict on one request
 * against a pool's limits, and the queue's ticket order kept in the pool entry's spare
 * words. Nothing here touches a socket or a request, so the unit tests drive it on
 * plain memory; breaker_module.c is the request's side.
 *
 * The queue's words are shared by every worker and changed without the zone's lock:
 * TAIL and HEAD only grow (compare-and-swap), a ticket's slot in the ring is one nibble
 * changed by a compare-and-swap of its byte, and the counters are atomic adds. A ticket
 * is 64 bits and never wraps; a ring slot names the lap of the ticket that marked it,
 * so a mark from the ticket RP_BREAKER_RING earlier is never read as this one's.
 */
#include "upstream/breaker.h"

_Static_assert(RP_BQ_RING + RP_BQ_RING_WORDS <=
                   sizeof(((rp_pool_shared_t *)0)->spare) / sizeof(rp_shm_counter_t),
               "the queue must fit in the pool entry's spare words");

const char *rp_breaker_verdict_name(int verdict)
{
    switch (verdict) {
    case RP_BREAKER_MAX_REQUESTS:
        return "max_requests";
    case RP_BREAKER_MAX_CONNECTIONS:
        return "max_connections";
    case RP_BREAKER_MAX_PENDING:
        return "max_pending";
    case RP_BREAKER_QUEUE_FULL:
        return "queue_full";
    case RP_BREAKER_QUEUE_TIMEOUT:
        return "queue_timeout";
    case RP_BREAKER_ADAPTIVE:
        return "adaptive_concurrency";
    default:
        return "";
    }
}

int rp_breaker_check(const rp_breaker_limits_t *l, const rp_breaker_counts_t *c)
{
    if (l->max_requests > 0 && c->inflight >= l->max_requests)
        return RP_BREAKER_MAX_REQUESTS;
    if (l->adaptive > 0 && c->inflight >= l->adaptive)
        return RP_BREAKER_ADAPTIVE;
    if (c->idle_here)
        return RP_BREAKER_PASS; /* it opens no connection */
    if (l->max_connections > 0 && c->conns >= l->max_connections)
        return RP_BREAKER_MAX_CONNECTIONS;
    if (l->max_pending > 0 && c->pending >= l->max_pending)
        return RP_BREAKER_MAX_PENDING;
    return RP_BREAKER_PASS;
}

/* ---- the ring ---- */

static uint8_t *ring_byte(rp_shm_counter_t *q, int64_t ticket)
{
    unsigned slot = (unsigned)(ticket % RP_BREAKER_RING);
    return (uint8_t *)&q[RP_BQ_RING] + slot / 2;
}

static unsigned ring_shift(int64_t ticket)
{
    return (unsigned)(ticket % RP_BREAKER_RING) % 2 * 4;
}

/* The nibble a done ticket leaves: its lap around the ring (3 bits) and the done bit. */
static unsigned done_mark(int64_t ticket)
{
    return (unsigned)((ticket / RP_BREAKER_RING) & 7) << 1 | 1u;
}

static int ticket_is_done(rp_shm_counter_t *q, int64_t ticket)
{
    uint8_t b = __atomic_load_n(ring_byte(q, ticket), __ATOMIC_ACQUIRE);
    return ((b >> ring_shift(ticket)) & 0xfu) == done_mark(ticket);
}

static void mark_done(rp_shm_counter_t *q, int64_t ticket)
{
    uint8_t *p = ring_byte(q, ticket);
    unsigned shift = ring_shift(ticket);
    uint8_t cur = __atomic_load_n(p, __ATOMIC_RELAXED), next;
    do {
        next = (uint8_t)((cur & ~(0xfu << shift)) | done_mark(ticket) << shift);
    } while (!__atomic_compare_exchange_n(p, &cur, next, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* ---- tickets ---- */

static int64_t span(rp_shm_counter_t *q)
{
    int64_t n = rp_shm_counter_get(&q[RP_BQ_TAIL]) - rp_shm_counter_get(&q[RP_BQ_HEAD]);
    return n > 0 ? n : 0;
}

int64_t rp_breaker_queue_waiting(rp_shm_counter_t *q)
{
    /* the count is exact while every worker lives; a dead worker's waiters stay in it,
     * but never beyond the tickets not passed, which the stall rule clears */
    int64_t n = rp_shm_counter_get(&q[RP_BQ_WAITING]), s = span(q);
    return n < 0 ? 0 : n > s ? s : n;
}

int rp_breaker_ticket_take(rp_shm_counter_t *q, int64_t size, int64_t now, int64_t *ticket)
{
    /* counted first, so two takers at once cannot both take the last place */
    int64_t n = rp_shm_counter_add(&q[RP_BQ_WAITING], 1);
    int64_t tail = rp_shm_counter_get(&q[RP_BQ_TAIL]), head;
    for (;;) {
        head = rp_shm_counter_get(&q[RP_BQ_HEAD]);
        int64_t s = tail - head;
        int64_t waiting = n > s + 1 ? s + 1 : n;
        if (waiting > size || s >= RP_BREAKER_RING) {
            rp_shm_counter_add(&q[RP_BQ_WAITING], -1);
            return -1;
        }
        if (rp_shm_counter_cas(&q[RP_BQ_TAIL], &tail, tail + 1))
            break;
    }
    if (head == tail)
        rp_shm_counter_set(&q[RP_BQ_HEAD_SINCE], now); /* it is at the front from now */
    rp_shm_counter_add(&q[RP_BQ_QUEUED], 1);
    *ticket = tail;
    return 0;
}

void rp_breaker_ticket_done(rp_shm_counter_t *q, int64_t ticket)
{
    if (rp_shm_counter_get(&q[RP_BQ_HEAD]) > ticket)
        return; /* passed as stalled (which stopped counting it): nothing to mark */
    mark_done(q, ticket);
    rp_shm_counter_add(&q[RP_BQ_WAITING], -1);
}

int64_t rp_breaker_queue_pass(rp_shm_counter_t *q, int64_t now, int64_t stall_ms)
{
    for (;;) {
        int64_t head = rp_shm_counter_get(&q[RP_BQ_HEAD]);
        if (head >= rp_shm_counter_get(&q[RP_BQ_TAIL]))
            return head;
        int stalled = 0;
        if (!ticket_is_done(q, head)) {
            int64_t since = rp_shm_counter_get(&q[RP_BQ_HEAD_SINCE]);
            if (stall_ms <= 0 || now - since < stall_ms)
                return head;
            stalled = 1; /* its request would have left by now: its worker is gone */
        }
        if (rp_shm_counter_cas(&q[RP_BQ_HEAD], &head, head + 1)) {
            rp_shm_counter_set(&q[RP_BQ_HEAD_SINCE], now);
            if (stalled)
                rp_shm_counter_add(&q[RP_BQ_WAITING], -1);
        }
    }
}
