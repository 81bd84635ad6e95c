/*
 * Counters in shared memory that every process updates without the zone's lock:
 * in-flight requests and connections of an upstream peer, failure counts,
 * metrics, and latencies kept as exponentially weighted averages. Each is one
 * 64-bit word changed by one atomic instruction (or a compare-and-swap loop that
 * retries only when another process changed the word in between), so an update
 * never waits for a lock holder and never enters the kernel.
 *
 * A counter lives in memory that stays where it is while processes update it:
 * laid out with the zone, or in a hash table entry stored with RP_SHM_HASH_PIN
 * (never evicted); the structure holding it is created and deleted under the
 * lock, the counter itself is not. Updates are "relaxed": each word is exact,
 * but two words changed one after the other may be seen in the other order, which
 * is what statistics and balancer inputs need. Compare-and-swap orders fully.
 */
#ifndef RP_SHM_COUNTER_H
#define RP_SHM_COUNTER_H

#include <stdint.h>
#include <string.h>

_Static_assert(__atomic_always_lock_free(sizeof(int64_t), 0),
               "shared counters need lock-free 64-bit atomics");

typedef struct {
    int64_t v;
} rp_shm_counter_t;

/* A double kept as its bits, for averages and latencies. */
typedef struct {
    uint64_t bits;
} rp_shm_double_t;

/* Adds n (negative to subtract) and returns the new value. */
static inline int64_t rp_shm_counter_add(rp_shm_counter_t *c, int64_t n)
{
    return __atomic_add_fetch(&c->v, n, __ATOMIC_RELAXED);
}

static inline int64_t rp_shm_counter_get(const rp_shm_counter_t *c)
{
    return __atomic_load_n(&c->v, __ATOMIC_RELAXED);
}

static inline void rp_shm_counter_set(rp_shm_counter_t *c, int64_t v)
{
    __atomic_store_n(&c->v, v, __ATOMIC_RELAXED);
}

/* Sets the counter to desired if it holds *expected, and returns 1; otherwise puts
 * what it holds in *expected and returns 0. */
static inline int rp_shm_counter_cas(rp_shm_counter_t *c, int64_t *expected, int64_t desired)
{
    return __atomic_compare_exchange_n(&c->v, expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

/* Raises the counter to v if it is below; returns what it holds then. */
static inline int64_t rp_shm_counter_max(rp_shm_counter_t *c, int64_t v)
{
    int64_t cur = rp_shm_counter_get(c);
    while (cur < v && !rp_shm_counter_cas(c, &cur, v))
        ;
    return cur < v ? v : cur;
}

static inline double rp_shm_double_of(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static inline uint64_t rp_shm_double_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

static inline double rp_shm_double_get(const rp_shm_double_t *d)
{
    return rp_shm_double_of(__atomic_load_n(&d->bits, __ATOMIC_RELAXED));
}

static inline void rp_shm_double_set(rp_shm_double_t *d, double v)
{
    __atomic_store_n(&d->bits, rp_shm_double_bits(v), __ATOMIC_RELAXED);
}

/*
 * Replaces the value old by f(old, arg), retrying when another process changed it
 * in between (f may run more than once, so it only computes); returns the value
 * stored. This is how an average is folded in without the lock.
 */
static inline double rp_shm_double_update(rp_shm_double_t *d, double (*f)(double, void *),
                                          void *arg)
{
    uint64_t cur = __atomic_load_n(&d->bits, __ATOMIC_RELAXED);
    for (;;) {
        double next = f(rp_shm_double_of(cur), arg);
        if (__atomic_compare_exchange_n(&d->bits, &cur, rp_shm_double_bits(next), 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
            return next;
    }
}

static inline double rp_shm_double_add_f(double old, void *arg)
{
    return old + *(const double *)arg;
}

/* Adds x and returns the sum. */
static inline double rp_shm_double_add(rp_shm_double_t *d, double x)
{
    return rp_shm_double_update(d, rp_shm_double_add_f, &x);
}

typedef struct {
    double sample, weight;
} rp_shm_ewma_arg_t;

static inline double rp_shm_double_ewma_f(double old, void *arg)
{
    const rp_shm_ewma_arg_t *a = arg;
    return old + a->weight * (a->sample - old);
}

static inline double rp_shm_double_peak_ewma_f(double old, void *arg)
{
    const rp_shm_ewma_arg_t *a = arg;
    return a->sample > old ? a->sample : old + a->weight * (a->sample - old);
}

/* Moves the average toward sample by weight (0 to 1) and returns it. */
static inline double rp_shm_double_ewma(rp_shm_double_t *d, double sample, double weight)
{
    rp_shm_ewma_arg_t a = {sample, weight};
    return rp_shm_double_update(d, rp_shm_double_ewma_f, &a);
}

/*
 * Peak EWMA (Finagle's, for least-latency balancing): a sample above the average
 * replaces it at once, one below pulls it down by weight, so a peer that turns slow
 * is avoided immediately and trusted again gradually. Returns the new value.
 */
static inline double rp_shm_double_peak_ewma(rp_shm_double_t *d, double sample, double weight)
{
    rp_shm_ewma_arg_t a = {sample, weight};
    return rp_shm_double_update(d, rp_shm_double_peak_ewma_f, &a);
}

#endif
