/*
 * Window quotas (limit_count, issue 12): "N requests per window" for a key, as Kong's
 * rate-limiting, APISIX's limit-count and AWS usage plans count them, where nginx's
 * limit_req only shapes a rate. This header is the pure arithmetic, with no clock, no
 * lock and no memory of its own: what window an instant falls in, how a record of
 * counts rolls over to a new window, how much of a quota is used (fixed windows, or
 * the sliding-window-counter estimate), what remains, when it resets, how long a
 * refused client should wait, and how a record trades counts with the sync engine
 * (limit.h). limit_count_module.c keeps the records in a shared-memory zone and calls
 * these under the zone's lock; t/unit/test_limit_count.c drives them with a fake clock.
 *
 * Windows are aligned to the Unix epoch (UTC): window number w covers
 * [w * window, (w + 1) * window) milliseconds since 1970-01-01T00:00:00Z, so every
 * worker of every node agrees on which window an instant is in without talking, and
 * the number names the window in Redis. A "month" is 30 days and a "year" 365 days:
 * fixed lengths, counted from the epoch, not calendar months.
 */
#ifndef RP_LIMIT_COUNT_H
#define RP_LIMIT_COUNT_H

/* How far apart the workers' cached clocks may be: a record already in the next window
 * by less than this is counted in, not rolled back (limit_count_module.c). */
#define RP_LC_CLOCK_SKEW 1000

#include "core/str.h"
#include "limit/limit.h"

#include <stdint.h>

#define RP_LC_SECOND 1000LL
#define RP_LC_DAY    (86400LL * RP_LC_SECOND)
#define RP_LC_MONTH  (30 * RP_LC_DAY)
#define RP_LC_YEAR   (365 * RP_LC_DAY)

/* The shortest and the longest window a quota may have, in milliseconds. */
#define RP_LC_MIN_WINDOW RP_LC_SECOND
#define RP_LC_MAX_WINDOW RP_LC_YEAR

/* A quota: limit requests per window. */
typedef struct {
    int64_t limit;     /* >= 1 */
    int64_t window_ms; /* whole seconds, RP_LC_MIN_WINDOW to RP_LC_MAX_WINDOW */
    int sliding;       /* estimate over a sliding window, not the fixed window's count */
} rp_lc_quota_t;

/*
 * One key's counts, kept in the zone (value of a hash entry). The current window and
 * the one before it: sliding estimates need the previous count, and a count synced
 * late may still belong to the previous window. The unsent and heard fields are for
 * the sync engine only (zero in a zone without `sync`).
 */
typedef struct {
    int64_t window;      /* the current window's number */
    int64_t count;       /* requests counted in it: this node's, and others' once heard */
    int64_t prev_count;  /* in window - 1 */
    int64_t unsent;      /* accepted here into `window`, not yet collected */
    int64_t prev_unsent; /* into window - 1 */
    int64_t heard;       /* the total Redis last gave for `window` */
    int64_t prev_heard;  /* for window - 1 */
} rp_lc_record_t;

/* What a quota says about a request. */
typedef struct {
    int decided;         /* the quota had a key (an empty key is not counted) */
    int admit;           /* the request fits in the quota */
    int64_t used;        /* the requests counted against the quota before this one */
    int64_t remaining;   /* what may still pass once this one is counted (if admitted) */
    int64_t reset;       /* seconds until the current window ends (>= 1) */
    int64_t retry_after; /* refused: seconds until a request would pass (>= 1); else 0 */
} rp_lc_decision_t;

/* Parses a window: nginx's time syntax in whole seconds ("30s", "1m", "1h30m", "1d",
 * "1w"), plus "M" (30 days) and "y" (365 days), "1M" alone or leading ("1M2d").
 * Returns 0 with *ms set, or -1 (malformed, under a second, not whole seconds, or
 * over a year). */
int rp_lc_parse_window(const char *s, int64_t *ms);

/* The number of the window now (ms since the epoch) falls in. */
int64_t rp_lc_window_of(int64_t now, int64_t window_ms);

/* Milliseconds from now to the end of its window (1 to window_ms). */
int64_t rp_lc_window_left(int64_t now, int64_t window_ms);

/*
 * Brings rec to window w: the next window moves the current counts to the previous
 * ones; a later one (or an earlier one: the window length changed across a reload)
 * starts from nothing. The same window changes nothing.
 */
void rp_lc_roll(rp_lc_record_t *rec, int64_t w);

/*
 * The requests counted against q at now, rec already rolled to now's window: the
 * window's count, or for a sliding quota the count plus the previous window's count
 * weighted by the share of the previous window still inside the sliding window
 * (the part rounded down, which decides as the exact sum does).
 */
int64_t rp_lc_used(const rp_lc_quota_t *q, const rp_lc_record_t *rec, int64_t now);

/*
 * Decides on one request at now (rec rolled to now's window) without counting it:
 * admit when used + 1 <= limit. remaining assumes the request is then counted.
 */
void rp_lc_decide(const rp_lc_quota_t *q, const rp_lc_record_t *rec, int64_t now,
                  rp_lc_decision_t *d);

/* Counts one accepted request in rec (rolled to its window); sync: also as unsent. */
void rp_lc_count(rp_lc_record_t *rec, int sync);

/*
 * Collect: the unsent counts of rec for the sync engine, and zeroes them. Up to two
 * (window, delta, ttl_ms) triples are written to out (the current window first), and
 * their number returned. ttl_ms is what remains of the window plus one window: a
 * sliding quota reads the previous window's count, and a late node may still add to
 * it. At least 1.
 */
typedef struct {
    int64_t window, delta, ttl_ms;
} rp_lc_unsent_t;

int rp_lc_collect(rp_lc_record_t *rec, int64_t window_ms, int64_t now, rp_lc_unsent_t out[2]);

/*
 * Apply: Redis says total requests were counted by all nodes in window w, sent of
 * them by this node in the batch being answered. The share of the other nodes not
 * yet heard (total - sent - the total heard before for w, at least 0) is added to
 * w's count, and total remembered. A window later than rec's rolls rec forward; a
 * window older than rec's previous one is ignored. Returns what was added.
 */
int64_t rp_lc_apply(rp_lc_record_t *rec, int64_t w, int64_t total, int64_t sent);

/* ---- the module (limit_count_module.c) ---- */

extern rp_module_t rp_limit_count_module;

/*
 * Decides on one request against the quotas of zones[0..n) (limit_count_zone zones,
 * at most 16, in the order of their names), keys[i] the request's key in zones[i] (an
 * empty key: that quota is skipped, d[i].decided 0): every zone's lock is taken,
 * every quota checked, and the request counted in all of them only when all admit
 * (a dry run too: what it would refuse, it does not count). Returns 1 when all admit, 0 when one refuses,
 * -1 when a zone has no room for a new key (d[0..n) then undefined).
 */
int rp_limit_count_take(rp_shm_zone_t *const *zones, const rp_str_t *keys, size_t n,
                        int64_t now, rp_lc_decision_t *d);

/* What rp_limit_count_take would decide for key in zone (a limit_count_zone's) at now,
 * without counting the request: 0 with *d set, -1 when the zone's table is damaged. */
int rp_limit_count_peek(rp_shm_zone_t *zone, rp_str_t key, int64_t now, rp_lc_decision_t *d);

/* The operations a `sync` zone gives the sync engine. */
const rp_limit_sync_ops_t *rp_limit_count_sync_ops(void);

/* For tests, which have no engine yet: makes zone count as a `sync` zone does. */
void rp_limit_count_sync_on(rp_shm_zone_t *zone);

#endif
