/*
 * The worker's clock: libevent caches the time once per loop iteration, and
 * every reader takes it from there (see time.h).
 */
#include "core/time.h"

#include <string.h>
#include <time.h>

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

int64_t rp_http_time_parse(const char *s, size_t len)
{
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};
    char buf[64];
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct tm tm = {0};
        const char *end = strptime(buf, forms[i], &tm);
        if (end && *end == '\0')
            return (int64_t)timegm(&tm);
    }
    return -1;
}
