/*
 * The pure parts of adaptive concurrency (adaptive.h): the latency histogram, its
 * percentile, and the gradient controller stepping a group's shared record. Nothing here
 * touches a request or a clock: the caller gives the time, so the unit tests drive the
 * controller on plain memory with a fake clock; adaptive_module.c is the worker's side.
 *
 * Every word of the record is an atomic counter. Samples are added by any process at any
 * time; the rest is written by one process at a time, the holder of `busy`. A window's
 * samples are taken by swapping each bucket with 0, so a sample added meanwhile lands in
 * this window or the next, never in both or neither. The limit is read by the admission
 * without the lock, as the breakers' counts are: a worker may admit at the old limit for
 * the moment the update takes.
 */
#include "upstream/adaptive.h"

#include <math.h>
#include <string.h>

#define BUSY_STALE_MS 1000 /* an update holder this old has died: it is overtaken */
#define GRADIENT_MIN  0.5  /* Envoy's clamp of the gradient: the limit at most halves... */
#define GRADIENT_MAX  2.0  /* ...or doubles (before the headroom) in one window */

void rp_adaptive_conf_default(rp_adaptive_conf_t *c)
{
    c->interval = 100;
    c->percentile = 50;
    c->buffer = 25;
    c->min_rtt_interval = 60000;
    c->min_rtt_requests = 50;
    c->jitter = 10;
    c->min_concurrency = 3;
    c->max_concurrency = 1000;
}

/* ---- the histogram ---- */

unsigned rp_adaptive_bucket(int64_t ms)
{
    if (ms < RP_ADAPTIVE_EXACT)
        return ms < 0 ? 0 : (unsigned)ms;
    unsigned k = 63 - (unsigned)__builtin_clzll((unsigned long long)ms); /* 2^k <= ms */
    unsigned octave = k - 5;                                             /* 32 is 2^5 */
    if (octave >= RP_ADAPTIVE_OCTAVES)
        return RP_ADAPTIVE_BUCKETS - 1;
    unsigned sub = (unsigned)(ms >> (k - 4)) & (RP_ADAPTIVE_SUB - 1);
    return RP_ADAPTIVE_EXACT + octave * RP_ADAPTIVE_SUB + sub;
}

double rp_adaptive_bucket_ms(unsigned bucket)
{
    if (bucket < RP_ADAPTIVE_EXACT)
        /* the upstream layer truncates to the millisecond: a "3" was 3.0 to 3.999 */
        return bucket + 0.5;
    unsigned octave = (bucket - RP_ADAPTIVE_EXACT) / RP_ADAPTIVE_SUB;
    unsigned sub = (bucket - RP_ADAPTIVE_EXACT) % RP_ADAPTIVE_SUB;
    double width = (double)(1ull << (octave + 1)); /* 2^(k-4) with k = octave + 5 */
    return (RP_ADAPTIVE_SUB + sub) * width + width / 2;
}

double rp_adaptive_percentile(const int64_t *hist, int64_t n, int pct)
{
    if (n <= 0)
        return 0;
    /* the rank of the sample at pct (nearest-rank: at least the first one) */
    int64_t rank = (n * pct + 99) / 100;
    if (rank < 1)
        rank = 1;
    int64_t seen = 0;
    for (unsigned b = 0; b < RP_ADAPTIVE_BUCKETS; b++) {
        seen += hist[b];
        if (seen >= rank)
            return rp_adaptive_bucket_ms(b);
    }
    return rp_adaptive_bucket_ms(RP_ADAPTIVE_BUCKETS - 1);
}

/* Takes the histogram's samples out into snap; returns how many. */
static int64_t take_window(rp_adaptive_shared_t *a, int64_t *snap)
{
    int64_t n = 0;
    for (unsigned b = 0; b < RP_ADAPTIVE_BUCKETS; b++) {
        snap[b] = __atomic_exchange_n(&a->hist[b].v, 0, __ATOMIC_RELAXED);
        n += snap[b];
    }
    rp_shm_counter_add(&a->count, -n);
    return n;
}

/* ---- the controller ---- */

/* Whether the time due (at most span ahead when it was set) has come. The clock is the
 * wall clock: one set back would put every due time out of reach, and freeze the limit
 * where it was, so a due time further ahead than it was ever set counts as come. */
static int has_come(int64_t now, int64_t due, int64_t span)
{
    return now >= due || due - now > span;
}

static int64_t min_rtt_span(const rp_adaptive_conf_t *c)
{
    return c->min_rtt_interval + c->min_rtt_interval * c->jitter / 100;
}

static int64_t clamp_limit(const rp_adaptive_conf_t *c, int64_t l)
{
    if (l > c->max_concurrency)
        l = c->max_concurrency;
    if (l < c->min_concurrency)
        l = c->min_concurrency;
    return l < 1 ? 1 : l;
}

void rp_adaptive_init(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now)
{
    memset(a, 0, sizeof(*a));
    rp_shm_counter_set(&a->limit, clamp_limit(c, c->min_concurrency));
    rp_shm_counter_set(&a->deferred, clamp_limit(c, c->min_concurrency));
    rp_shm_counter_set(&a->epoch, now);
    rp_shm_counter_set(&a->phase, RP_ADAPTIVE_MIN_RTT);
    rp_shm_counter_set(&a->ready, 1);
}

/* Pins the limit to min_concurrency and starts counting responses afresh. */
static void start_measurement(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now)
{
    int64_t snap[RP_ADAPTIVE_BUCKETS];
    rp_shm_counter_set(&a->deferred, rp_shm_counter_get(&a->limit));
    rp_shm_counter_set(&a->epoch, now); /* before the phase: a sampler that sees the
                                         * phase sees the epoch too */
    rp_shm_counter_set(&a->phase, RP_ADAPTIVE_MIN_RTT);
    rp_shm_counter_set(&a->limit, clamp_limit(c, c->min_concurrency));
    rp_shm_counter_set(&a->at_min, 0);
    take_window(a, snap); /* the window's samples went at the old limit */
}

static void end_measurement(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now,
                            uint64_t rnd)
{
    int64_t snap[RP_ADAPTIVE_BUCKETS];
    int64_t n = take_window(a, snap);
    double min_rtt = rp_adaptive_percentile(snap, n, c->percentile);
    rp_shm_counter_set(&a->min_rtt_us, (int64_t)(min_rtt * 1000));
    int64_t span = c->min_rtt_interval * c->jitter / 100;
    int64_t delay = span > 0 ? (int64_t)(rnd % (uint64_t)(span + 1)) : 0;
    rp_shm_counter_set(&a->next_min_rtt, now + c->min_rtt_interval + delay);
    rp_shm_counter_set(&a->next_update, now + c->interval);
    rp_shm_counter_set(&a->limit, clamp_limit(c, rp_shm_counter_get(&a->deferred)));
    rp_shm_counter_set(&a->at_min, 0);
    rp_shm_counter_set(&a->phase, RP_ADAPTIVE_SAMPLING);
    rp_shm_counter_add(&a->measurements, 1);
}

/* A window is over: the gradient moves the limit. */
static void end_window(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now)
{
    int64_t next = rp_shm_counter_get(&a->next_update) + c->interval;
    rp_shm_counter_set(&a->next_update, next > now ? next : now + c->interval);
    int64_t snap[RP_ADAPTIVE_BUCKETS];
    int64_t n = take_window(a, snap);
    if (n == 0)
        return; /* no response in the window: nothing learned, the limit stays */
    double sample = rp_adaptive_percentile(snap, n, c->percentile);
    double min_rtt = rp_shm_counter_get(&a->min_rtt_us) / 1000.0;
    double buffer = min_rtt * c->buffer / 100.0;
    if (buffer < 1.0)
        buffer = 1.0; /* the millisecond clock's grain (adaptive.h) */
    double gradient = (min_rtt + buffer) / sample;
    if (gradient < GRADIENT_MIN)
        gradient = GRADIENT_MIN;
    if (gradient > GRADIENT_MAX)
        gradient = GRADIENT_MAX;
    double l = gradient * (double)rp_shm_counter_get(&a->limit);
    l += sqrt(l); /* the headroom: without it a limit near minRTT would never grow */
    int64_t limit = clamp_limit(c, l > (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)l);
    rp_shm_counter_set(&a->limit, limit);
    rp_shm_counter_set(&a->sample_rtt_us, (int64_t)(sample * 1000));
    rp_shm_counter_set(&a->gradient, (int64_t)(gradient * 1000));
    rp_shm_counter_add(&a->updates, 1);
    if (limit > c->min_concurrency) {
        rp_shm_counter_set(&a->at_min, 0);
    } else if (rp_shm_counter_add(&a->at_min, 1) >= RP_ADAPTIVE_AT_MIN_WINDOWS) {
        /* held at the floor: minRTT may have moved up for good (a slower release of the
         * backend, a farther peer); measure it again rather than starve */
        start_measurement(a, c, now);
    }
}

void rp_adaptive_update(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t now,
                        uint64_t rnd)
{
    if (rp_shm_counter_get(&a->phase) == RP_ADAPTIVE_MIN_RTT) {
        if (rp_shm_counter_get(&a->count) >= c->min_rtt_requests)
            end_measurement(a, c, now, rnd);
        return;
    }
    if (has_come(now, rp_shm_counter_get(&a->next_min_rtt), min_rtt_span(c))) {
        start_measurement(a, c, now);
        return;
    }
    if (has_come(now, rp_shm_counter_get(&a->next_update), c->interval))
        end_window(a, c, now);
}

static int take_busy(rp_adaptive_shared_t *a, int64_t now)
{
    int64_t held = 0, stamp = now > 0 ? now : 1;
    if (rp_shm_counter_cas(&a->busy, &held, stamp))
        return 1;
    return (now - held > BUSY_STALE_MS || held - now > BUSY_STALE_MS) &&
           rp_shm_counter_cas(&a->busy, &held, stamp);
}

int rp_adaptive_sample(rp_adaptive_shared_t *a, const rp_adaptive_conf_t *c, int64_t ms,
                       int64_t sent, int64_t now, uint64_t rnd)
{
    if (ms < 0)
        return 0;
    int due;
    if (rp_shm_counter_get(&a->phase) == RP_ADAPTIVE_MIN_RTT) {
        if (sent < rp_shm_counter_get(&a->epoch))
            return 0; /* it went before the limit was pinned: not an unloaded latency */
        rp_shm_counter_add(&a->hist[rp_adaptive_bucket(ms)], 1);
        due = rp_shm_counter_add(&a->count, 1) >= c->min_rtt_requests;
    } else {
        rp_shm_counter_add(&a->hist[rp_adaptive_bucket(ms)], 1);
        rp_shm_counter_add(&a->count, 1);
        due = has_come(now, rp_shm_counter_get(&a->next_update), c->interval) ||
              has_come(now, rp_shm_counter_get(&a->next_min_rtt), min_rtt_span(c));
    }
    if (!due || !take_busy(a, now))
        return 0;
    rp_adaptive_update(a, c, now, rnd);
    __atomic_store_n(&a->busy.v, 0, __ATOMIC_RELEASE);
    return 1;
}
