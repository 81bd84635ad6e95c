/*
 * Adaptive concurrency per upstream group (adaptive.c, adaptive_module.c), after Envoy's
 * adaptive concurrency filter (its gradient controller) and Netflix's concurrency-limits
 * gradient limiter, in nginx's directive style:
 *
 *   upstream api {
 *       server 10.0.0.1:8080;
 *       adaptive_concurrency interval=100ms percentile=50 buffer=25%
 *                            min_rtt_interval=60s min_rtt_requests=50 jitter=10%
 *                            min_concurrency=3 max_concurrency=1000;
 *   }
 *
 * The group's limit of requests in flight follows the latency its peers show, so a
 * backend that slows down under load has its load shed at the gateway (503 with
 * `X-Rampart-Overloaded: adaptive_concurrency`, or a wait in the group's `queue`)
 * before it falls over. The limit is a dynamic max_requests of the circuit breakers
 * (breaker.h): the same admission, the same queue.
 *
 * The controller, as Envoy's:
 *   - minRTT, the latency of the group when it is not loaded, is measured now and then
 *     (every min_rtt_interval, delayed by up to jitter of it, and whenever the limit sat
 *     at min_concurrency for 5 windows in a row): the limit is pinned to min_concurrency
 *     until min_rtt_requests responses of requests sent since have come; minRTT is their
 *     percentile, and the limit from before comes back.
 *   - between measurements, every `interval` the responses of the window summarize as
 *     sampleRTT (their percentile), and
 *         gradient = clamp((minRTT + B) / sampleRTT, 0.5, 2)    B = minRTT x buffer
 *         limit    = gradient x limit;  limit += sqrt(limit)    (the headroom)
 *     kept within [min_concurrency, max_concurrency]. While latency stays near minRTT the
 *     gradient is 1 or more and the headroom grows the limit; when the window's latency passes
 *     minRTT + B, the limit shrinks in proportion.
 *
 * Latency is the time to the response head of each attempt (header_ms: a slow client
 * reading a long body must not read as a slow backend), in the milliseconds the upstream
 * layer measures; attempts without a response head, 502, 503 and 504 answers, and those
 * the retry policy took as failures give no sample (a fast 503 is not spare capacity); B is at
 * least 1 ms, the clock's grain, so that a backend answering within a millisecond or two is not
 * taken for a loaded one by rounding alone.
 *
 * One limit per group per node. Every worker adds the latencies it sees to a histogram
 * in shared memory (a zone per group, "adaptive_concurrency/NAME"), and the limit is
 * computed in one place per interval: by whichever worker, recording a sample, finds the
 * interval over and wins the compare-and-swap on the group's `busy` word. Chosen over the
 * helper process's timer because the limit only needs to move while responses arrive (no
 * traffic, nothing to learn), the end of a minRTT measurement is a count of responses,
 * not a time, so the worker that records the last one ends it at once, and it works the
 * same with master_process off. The update is a pass over the histogram's words: once per
 * interval per node, in the observer, after the response, never on the admission path.
 *
 * This header has the pure parts: the layout of a group's shared record and the
 * controller on it, which the unit tests drive on plain memory with a fake clock.
 */
#ifndef RP_ADAPTIVE_H
#define RP_ADAPTIVE_H

#include "upstream/upstream.h"

#include <stdint.h>

struct evbuffer;

extern rp_module_t rp_adaptive_module;

/* The parameters (Envoy's names in brackets). */
typedef struct {
    /* ms: a sampling window [concurrency_update_interval] */
    int64_t interval;
    /* sampleRTT and minRTT are this percentile of their samples [sample_aggregate_percentile] */
    int percentile;
    /* percent of minRTT latency may grow unpunished [min_rtt_calc_params.buffer] */
    int buffer;
    /* ms between minRTT measurements [min_rtt_calc_params.interval] */
    int64_t min_rtt_interval;
    /* responses a measurement takes [min_rtt_calc_params.request_count] */
    int min_rtt_requests;
    /* percent of min_rtt_interval a measurement may be delayed [min_rtt_calc_params.jitter] */
    int jitter;
    /* the limit's floor, and its value while minRTT is measured
     * [min_rtt_calc_params.min_concurrency] */
    int64_t min_concurrency;
    /* the limit's ceiling [concurrency_limit_params.max_concurrency_limit] */
    int64_t max_concurrency;
} rp_adaptive_conf_t;

/* Envoy's defaults. */
void rp_adaptive_conf_default(rp_adaptive_conf_t *c);

/* The histogram: milliseconds 0 to 31 one bucket each, then 16 buckets per doubling
 * (6% wide) up to 2^17 ms; longer ones go in the last. */
#define RP_ADAPTIVE_EXACT   32
#define RP_ADAPTIVE_SUB     16
#define RP_ADAPTIVE_OCTAVES 12
#define RP_ADAPTIVE_BUCKETS (RP_ADAPTIVE_EXACT + RP_ADAPTIVE_SUB * RP_ADAPTIVE_OCTAVES)

/* The windows at the floor in a row that start a new minRTT measurement (Envoy's). */
#define RP_ADAPTIVE_AT_MIN_WINDOWS 5

enum {
    RP_ADAPTIVE_MIN_RTT = 0, /* measuring minRTT: the limit is pinned (a new record's phase) */
    RP_ADAPTIVE_SAMPLING,    /* the gradient moves the limit every interval */
};

/*
 * A group's record in shared memory: every word one atomic counter. Samples go into
 * hist and count from any worker at any time; the other words are written only by the
 * holder of busy (a compare-and-swap from 0 to the time it took it: a holder that died
 * mid-update is overtaken after a second), and read by the admission without a lock.
 */
typedef struct {
    rp_shm_counter_t limit;         /* requests in flight allowed now */
    rp_shm_counter_t phase;         /* RP_ADAPTIVE_MIN_RTT or _SAMPLING */
    rp_shm_counter_t deferred;      /* the limit to restore when the measurement ends */
    rp_shm_counter_t epoch;         /* ms: the measurement began; older requests' samples
                                     * are not counted in it (they went at the old limit) */
    rp_shm_counter_t min_rtt_us;    /* the last minRTT, microseconds; 0 before the first */
    rp_shm_counter_t sample_rtt_us; /* the last window's sampleRTT, microseconds */
    rp_shm_counter_t gradient;      /* the last gradient, thousandths */
    rp_shm_counter_t next_update;   /* ms: the current window ends */
    rp_shm_counter_t next_min_rtt;  /* ms: the next measurement starts */
    rp_shm_counter_t at_min;        /* windows in a row that ended at min_concurrency */
    rp_shm_counter_t busy;          /* ms: a process has been updating since; 0: none */
    rp_shm_counter_t count;         /* samples in hist */
    rp_shm_counter_t shed;          /* requests answered 503 adaptive_concurrency, all time */
    rp_shm_counter_t updates;       /* windows that moved the limit, all time */
    rp_shm_counter_t measurements;  /* minRTT measurements completed, all time */
    rp_shm_counter_t ready;         /* 1 once laid out */
    rp_shm_counter_t hist[RP_ADAPTIVE_BUCKETS];
} rp_adaptive_shared_t;

/* Lays out a new record: measuring minRTT first, as Envoy's controller starts. */
void rp_adaptive_init(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now);

/* The histogram's bucket for a latency of ms, and the latency (ms) a bucket stands for. */
unsigned rp_adaptive_bucket(int64_t ms);
double rp_adaptive_bucket_ms(unsigned bucket);

/* The latency (ms) below which pct percent of the n samples in hist lie; 0 when n is 0. */
double rp_adaptive_percentile(const int64_t *hist, int64_t n, int pct);

/*
 * One response: latency ms, of a request sent at sent (ms), seen at now. Counted in the
 * histogram; when that ends the window or the measurement, the limit is updated here
 * (by one process: the others go on). rnd is a random number (the jitter's).
 * Returns 1 when this call updated the record.
 */
int rp_adaptive_sample(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t ms,
                       int64_t sent, int64_t now, uint64_t rnd);

/* The update itself, for the holder of busy (rp_adaptive_sample takes it). */
void rp_adaptive_update(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now,
                        uint64_t rnd);

/* The limit now (never below 1). */
static inline int64_t rp_adaptive_limit(rp_adaptive_shared_t *a)
{
    int64_t l = rp_shm_counter_get(&a->limit);
    return l > 0 ? l : 1;
}

/* ---- the module's side (adaptive_module.c) ---- */

/* The record of u's group, or NULL when u has no adaptive_concurrency (or is not mapped
 * yet). The breakers read the limit through it. */
rp_adaptive_shared_t *rp_adaptive_of(rp_upstream_conf_t *u);

/* Whether u's block has adaptive_concurrency (configuration time). */
int rp_adaptive_configured(rp_upstream_conf_t *u);

/* Adds ",\"adaptive_concurrency\":{...}" to u's upstream_status object (nothing when
 * u has none). */
void rp_adaptive_status_json(struct evbuffer *b, rp_upstream_conf_t *u);

#endif
