/*
 * Hedging (beyond nginx and HAProxy; after Envoy's hedge_on_per_try_timeout and "The
 * Tail at Scale"): an idempotent request without a body whose first try has not
 * answered after a delay gets a second try on another peer; the first response head
 * wins and the other try is cancelled. The delay is fixed, or a percentile of the
 * latency to the response head that this worker has seen from the pool, so only the
 * slowest few requests are hedged. A hedge takes a slot of the upstream's retry budget
 * (and max_retries), so hedging cannot double the load on a pool in trouble.
 *
 *   hedging DELAY | pNN [min=TIME] | off;      (http, server, location)
 *
 * The latency histogram is per worker (each worker sees a fair sample of the traffic;
 * no shared memory or lock on the response path): log-linear buckets, halved every
 * RP_HEDGE_WINDOW samples so it follows the pool's recent behaviour.
 */
#ifndef RP_HEDGE_H
#define RP_HEDGE_H

#include <stdint.h>

typedef struct rp_request_s rp_request_t;
typedef struct rp_upstream_conf_s rp_upstream_conf_t;

typedef struct {
    int64_t delay;  /* ms: a fixed delay; 0 with a percentile */
    int percentile; /* 1 to 99: the delay is this percentile of the latency; 0: fixed */
    int64_t min;    /* ms: the least delay a percentile gives (and the delay before
                     * enough samples came) */
} rp_hedge_conf_t;

#define RP_HEDGE_BUCKETS 124
#define RP_HEDGE_WINDOW 4096
#define RP_HEDGE_MIN_SAMPLES 20

typedef struct {
    uint32_t n[RP_HEDGE_BUCKETS];
    uint32_t total;
} rp_hedge_hist_t;

/* ---- pure: the histogram ---- */

void rp_hedge_hist_add(rp_hedge_hist_t *h, int64_t ms);

/* The pNN latency in ms (the upper bound of its bucket); -1 below RP_HEDGE_MIN_SAMPLES. */
int64_t rp_hedge_hist_percentile(const rp_hedge_hist_t *h, int p);

/* ---- the request's ---- */

/* The location's hedging, or NULL when it has none. */
const rp_hedge_conf_t *rp_hedge_conf(rp_request_t *r);

/* Whether r may be hedged: an idempotent method and no body. */
int rp_hedge_eligible(const rp_request_t *r);

/* The delay before hedging a request to u: -1 when none can be given yet. */
int64_t rp_hedge_delay(const rp_hedge_conf_t *c, rp_upstream_conf_t *u);

/* A response head came from u after ms: a sample for u's histogram in this worker. */
void rp_hedge_sample(rp_upstream_conf_t *u, int64_t ms);

#endif
