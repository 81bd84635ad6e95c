/*
 * The worker's clock and event loop. Every process that serves has one libevent
 * base; its cached time (read once per loop iteration) is the clock of
 * everything that measures or schedules: timeouts, $request_time, failure
 * windows, HTTP/2 budgets. One clock means one notion of "now" per iteration,
 * and no clock_gettime per use.
 */
#ifndef RP_TIME_H
#define RP_TIME_H

#include <event2/event.h>
#include <stdint.h>
#include <sys/time.h>

/* The process's event base, set once by the worker (or helper) before it serves. */
extern struct event_base *rp_event_base;

/* The loop's cached wall-clock time (gettimeofday before a loop exists). */
void rp_time_now(struct timeval *tv);

/* The loop's cached time in milliseconds since the epoch. */
int64_t rp_time_ms(void);

/* Milliseconds from t to the loop's cached time (negative if t is later). */
int64_t rp_time_ms_since(const struct timeval *t);

/* Seconds since the epoch of an HTTP date in any of the three forms RFC 9110 asks a
 * recipient to accept (IMF-fixdate, RFC 850, asctime), or -1. */
int64_t rp_http_time_parse(const char *s, size_t len);

/* A timeval for an interval of ms milliseconds (event_add's argument). */
static inline struct timeval rp_time_tv(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/* Adds ev with a timeout of ms milliseconds. */
static inline int rp_timer_add(struct event *ev, int64_t ms)
{
    struct timeval tv = rp_time_tv(ms);
    return event_add(ev, &tv);
}

#endif
