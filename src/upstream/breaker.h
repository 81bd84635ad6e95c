/*
 * Circuit breakers and a queue per upstream group (breaker.c, breaker_module.c), after
 * Envoy's cluster circuit breakers, in nginx's directive style:
 *
 *   max_connections N;  connections open to the group (all its peers, all workers)
 *   max_requests N;     requests in flight to the group
 *   max_pending N;      connections being opened to the group (a request that needs a
 *                       new one waits for it: Envoy's pending requests)
 *   max_retries N;      retries in flight (stored in u->max_retries for the retry code)
 *   queue N [timeout=T];  requests past a limit wait, in arrival order across all the
 *                       workers, instead of being refused
 *   adaptive_concurrency ...;  a max_requests that follows the group's latency
 *                       (adaptive.h): a dynamic limit beside the fixed ones
 *
 * A request over a limit is answered 503 at once with `X-Rampart-Overloaded: LIMIT`,
 * unless the group has a queue: then it waits (suspended, never blocking the worker)
 * until the limits let it go, in FIFO order over the whole node, and gets 503 with
 * `X-Rampart-Overloaded: queue_timeout` when its time is up (`queue_full` when the
 * queue has no room).
 *
 * The counts are the pool's entry in the shared peer table (rp_pool_shared_t), so every
 * worker checks the same numbers; as Envoy's breakers, they are checked without a lock,
 * so two workers admitting at the same instant may pass a limit by one each for a
 * moment. The queue's order is kept in the pool entry's spare words: a ticket scheme
 * (below). This header has the pure parts, which the unit tests drive on plain memory.
 */
#ifndef RP_BREAKER_H
#define RP_BREAKER_H

#include "upstream/upstream.h"

#include <stdint.h>

struct rp_request_s;
struct evbuffer;

extern rp_module_t rp_breaker_module;

/* ---- the limits and the verdict (pure) ---- */

typedef struct {
    int64_t max_connections, max_requests, max_pending; /* 0: no limit */
    int64_t queue;         /* requests that may wait; 0: none (a limit answers 503) */
    int64_t queue_timeout; /* ms a request may wait */
    int64_t adaptive;      /* adaptive concurrency's limit of requests in flight now (a
                            * dynamic max_requests, read at each admission); 0: none */
} rp_breaker_limits_t;

/* What the admission of one request looks at. */
typedef struct {
    int64_t inflight; /* requests in flight to the pool (its peers' attempts), all workers */
    int64_t conns;    /* connections open to the pool, all workers */
    int64_t pending;  /* connections being opened to the pool, all workers */
    int idle_here;    /* this worker has a connection the request can use (an idle
                       * kept-alive one; an open HTTP/2 session): it needs no new one */
} rp_breaker_counts_t;

/* Verdicts, and the names X-Rampart-Overloaded gives them. */
enum {
    RP_BREAKER_PASS = 0,
    RP_BREAKER_MAX_REQUESTS,
    RP_BREAKER_MAX_CONNECTIONS,
    RP_BREAKER_MAX_PENDING,
    RP_BREAKER_QUEUE_FULL,
    RP_BREAKER_QUEUE_TIMEOUT,
    RP_BREAKER_ADAPTIVE, /* "adaptive_concurrency" */
};

/*
 * Whether one more request may go to the pool now. The rule: it may while fewer than
 * max_requests, and fewer than the adaptive limit, are in flight, and, unless it can use a
 * connection this worker holds already (idle_here), while fewer than max_connections are open and
 * fewer than max_pending are being opened. Returns RP_BREAKER_PASS or the first limit reached.
 */
int rp_breaker_check(const rp_breaker_limits_t *l, const rp_breaker_counts_t *c);

/* "max_requests", "queue_timeout", ...; "" for PASS. */
const char *rp_breaker_verdict_name(int verdict);

/* ---- the queue's order (pure, on shared words) ---- */

/*
 * The queue of a pool lives in its entry's spare words (rp_pool_shared_t.spare), as
 * below. Every waiting request holds a ticket: TAIL hands them out, HEAD is the oldest
 * one not yet passed, and only the request holding HEAD may go when the limits allow
 * (so no request overtakes an older one, whichever worker holds it). A request that
 * leaves the queue (it went, timed out, its client left, its stream was reset, its
 * worker stopped) marks its ticket done in the ring; HEAD moves past done tickets, so a
 * request that left is skipped. The ring has a 4-bit slot per ticket (ticket mod
 * RP_BREAKER_RING): a done bit and three bits of the ticket's lap around the ring, so
 * a mark left by an earlier lap is not taken for this one. A ticket is handed out only
 * while it is less than RP_BREAKER_RING ahead of HEAD, so a slot is reused only once
 * its earlier ticket was passed.
 *
 * A worker that dies holding tickets never marks them: once HEAD has not moved for
 * longer than any request may wait (the queue's timeout, and a grace), the next worker
 * to look passes it (rp_breaker_queue_pass's stall_ms).
 */
#define RP_BQ_TAIL       0  /* the next ticket to hand out */
#define RP_BQ_HEAD       1  /* the oldest ticket not passed: the next allowed to go */
#define RP_BQ_WAITING    2  /* requests waiting now, all workers */
#define RP_BQ_HEAD_SINCE 3  /* ms: when HEAD last moved (or the queue last stopped being empty) */
#define RP_BQ_LAST_WARN  4  /* ms: when the last "overloaded" warning was logged */
#define RP_BQ_QUEUED     5  /* requests that waited in the queue, all time */
#define RP_BQ_TIMEOUTS   6  /* requests whose wait ran out, all time */
#define RP_BQ_SILENT     7  /* 503s given since the last warning */
#define RP_BQ_RING       8  /* 12 words from here: the ring, 4 bits a ticket */
#define RP_BQ_RING_WORDS 12 /* spare[20] to spare[23] stay free for others */
#define RP_BREAKER_RING  (RP_BQ_RING_WORDS * 16) /* tickets the ring holds: 192 */

/* Hands out the next ticket into *ticket when fewer than size requests wait and the ring
 * has room; counts it waiting. 0, or -1 when the queue is full. */
int rp_breaker_ticket_take(rp_shm_counter_t *q, int64_t size, int64_t now, int64_t *ticket);

/* The request holding ticket leaves the queue: marked done (HEAD will pass it) and no
 * longer counted waiting. */
void rp_breaker_ticket_done(rp_shm_counter_t *q, int64_t ticket);

/* Moves HEAD past the done tickets at the front, and past one that has not moved for
 * stall_ms (its worker is gone). Returns HEAD. */
int64_t rp_breaker_queue_pass(rp_shm_counter_t *q, int64_t now, int64_t stall_ms);

/* Requests waiting now (never more than the tickets between HEAD and TAIL). */
int64_t rp_breaker_queue_waiting(rp_shm_counter_t *q);

/* ---- the request's side (breaker_module.c) ---- */

/*
 * Admission of r to u, after the upstream is chosen and before the first attempt.
 * Returns RP_OK: go on now; RP_DONE: r was answered 503 (X-Rampart-Overloaded names
 * the limit); RP_AGAIN: r waits in u's queue, and the content handler returns RP_AGAIN:
 * it is called again when r may go (then this returns RP_OK) or its wait ran out (then
 * this answers 503 and returns RP_DONE). A group without breakers costs one test.
 */
int rp_breaker_admit(struct rp_request_s *r, rp_upstream_conf_t *u);

/* Adds u's limits and queue to an upstream_status object (",\"max_requests\":..."). */
void rp_breaker_status_json(struct evbuffer *b, rp_upstream_conf_t *u);

/* Connections open to u, and being opened, move by d: counted in the pool's entry
 * (journalled, so a worker that dies gives its part back). */
static inline void rp_breaker_conns_add(rp_upstream_conf_t *u, int d)
{
    if (u->pool)
        rp_peer_conns_add(&u->pool->totals, d);
}

static inline void rp_breaker_pending_add(rp_upstream_conf_t *u, int d)
{
    if (u->pool)
        rp_peer_conns_add(&u->pool->retries, d);
}

#endif
