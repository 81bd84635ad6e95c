/*
 * The worker's clock: libevent caches the time once per loop iteration, and
 * every reader takes it from there (see time.h).
 */
#include "core/time.h"

struct event_base *rp_event_base;

void rp_time_now(struct timeval *tv)
{
    if (rp_event_base == NULL || event_base_gettimeofday_cached(rp_event_base, tv) != 0)
        gettimeofday(tv, NULL);
}

int64_t rp_time_ms(void)
{
    struct timeval tv;
    rp_time_now(&tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int64_t rp_time_ms_since(const struct timeval *t)
{
    struct timeval now;
    rp_time_now(&now);
    return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_usec - t->tv_usec) / 1000;
}
