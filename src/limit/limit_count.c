/*
 * The arithmetic of window quotas (limit_count.h): window numbers, roll-over, the
 * fixed and sliding counts, what a refused client is told, and the record's side of
 * the sync engine's collect and apply. Pure: every function takes the time it needs.
 *
 * The sliding estimate is the sliding-window counter Cloudflare and Kong describe:
 * with e the milliseconds elapsed in the current window of length W,
 *
 *     used = count + prev_count * (W - e) / W
 *
 * as if the previous window's requests had come evenly spread. It needs two counters
 * per key instead of a log of timestamps, and errs little where traffic is steady.
 * Products of counts and milliseconds are taken in 128 bits: a year in milliseconds
 * times a large count does not fit in 64.
 */
#include "limit/limit_count.h"

#include <ctype.h>

typedef __int128 wide_t;

int rp_lc_parse_window(const char *s, int64_t *ms)
{
    /* nginx's units, largest first, each at most once: y M w d h m s ms */
    static const struct {
        const char *unit;
        int64_t mul;
    } units[] = {
        {"y", RP_LC_YEAR}, {"M", RP_LC_MONTH}, {"w", 7 * RP_LC_DAY}, {"d", RP_LC_DAY},
        {"h", 3600 * RP_LC_SECOND}, {"ms", 1}, {"m", 60 * RP_LC_SECOND}, {"s", RP_LC_SECOND},
    };
    /* rank of each table entry in the order units must come ("ms" is checked before
     * "m" but comes last) */
    static const int rank[] = {7, 6, 5, 4, 3, 0, 2, 1};
    if (s == NULL || *s == '\0')
        return -1;
    int64_t total = 0;
    int last = 8;
    while (*s) {
        if (!isdigit((unsigned char)*s))
            return -1;
        int64_t v = 0;
        while (isdigit((unsigned char)*s)) {
            if (v > RP_LC_MAX_WINDOW)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        /* a number without a unit is seconds, as rp_parse_msec reads "90" and "1m30" */
        int64_t mul = RP_LC_SECOND;
        int r = 1;
        if (*s) {
            size_t i, n = sizeof(units) / sizeof(units[0]);
            for (i = 0; i < n; i++) {
                const char *u = units[i].unit;
                if (s[0] == u[0] && (u[1] == '\0' || s[1] == u[1]))
                    break;
            }
            if (i == n)
                return -1;
            mul = units[i].mul;
            r = rank[i];
            s += units[i].unit[1] ? 2 : 1;
        }
        if (r >= last || v > RP_LC_MAX_WINDOW / mul + 1)
            return -1;
        last = r;
        total += v * mul;
        if (total > RP_LC_MAX_WINDOW)
            return -1;
    }
    if (total < RP_LC_MIN_WINDOW || total % RP_LC_SECOND != 0)
        return -1;
    *ms = total;
    return 0;
}

int64_t rp_lc_window_of(int64_t now, int64_t window_ms)
{
    int64_t w = now / window_ms;
    return now % window_ms < 0 ? w - 1 : w; /* floor, for a clock before 1970 */
}

int64_t rp_lc_window_left(int64_t now, int64_t window_ms)
{
    return (rp_lc_window_of(now, window_ms) + 1) * window_ms - now;
}

void rp_lc_roll(rp_lc_record_t *rec, int64_t w)
{
    if (rec->window == w)
        return;
    if (w == rec->window + 1) {
        rec->prev_count = rec->count;
        rec->prev_unsent = rec->unsent;
        rec->prev_heard = rec->heard;
    } else {
        rec->prev_count = rec->prev_unsent = rec->prev_heard = 0;
    }
    rec->count = rec->unsent = rec->heard = 0;
    rec->window = w;
}

/* The previous window's weighted share at e ms into the current one, rounded down. */
static int64_t prev_share(const rp_lc_quota_t *q, int64_t prev, int64_t e)
{
    if (prev <= 0)
        return 0;
    return (int64_t)((wide_t)prev * (q->window_ms - e) / q->window_ms);
}

int64_t rp_lc_used(const rp_lc_quota_t *q, const rp_lc_record_t *rec, int64_t now)
{
    if (!q->sliding)
        return rec->count;
    int64_t e = q->window_ms - rp_lc_window_left(now, q->window_ms);
    return rec->count + prev_share(q, rec->prev_count, e);
}

static int64_t ceil_div(wide_t a, wide_t b)
{
    return (int64_t)((a + b - 1) / b);
}

/*
 * Milliseconds until a sliding quota admits one more request, nothing else counted:
 * the first elapsed time e (in this window or the next) at which
 * prev * (W - e) < (limit - count) * W, the exact form of used + 1 <= limit.
 */
static int64_t sliding_wait(const rp_lc_quota_t *q, const rp_lc_record_t *rec, int64_t now)
{
    int64_t W = q->window_ms, left = rp_lc_window_left(now, W), e = W - left;
    int64_t room = q->limit - rec->count;
    if (room >= 1 && rec->prev_count > 0) {
        /* W - e' < room * W / prev, i.e. e' >= W - ceil(room * W / prev) + 1 */
        int64_t need = W - ceil_div((wide_t)room * W, rec->prev_count) + 1;
        if (need <= W - 1)
            return need > e ? need - e : 1;
    }
    if (room >= 1)
        return left; /* the next window starts with this window's count, under limit */
    /* next window: its previous count is this window's, its own count 0 */
    int64_t need = W - ceil_div((wide_t)q->limit * W, rec->count) + 1;
    return left + (need > 0 ? need : 0);
}

void rp_lc_decide(const rp_lc_quota_t *q, const rp_lc_record_t *rec, int64_t now,
                  rp_lc_decision_t *d)
{
    int64_t left = rp_lc_window_left(now, q->window_ms);
    d->decided = 1;
    d->used = rp_lc_used(q, rec, now);
    d->admit = d->used < q->limit;
    d->remaining = d->admit ? q->limit - d->used - 1 : 0;
    d->reset = ceil_div(left, RP_LC_SECOND);
    d->retry_after = 0;
    if (!d->admit) {
        int64_t wait = q->sliding ? sliding_wait(q, rec, now) : left;
        d->retry_after = ceil_div(wait, RP_LC_SECOND);
        if (d->retry_after < 1)
            d->retry_after = 1;
    }
}

void rp_lc_count(rp_lc_record_t *rec, int sync)
{
    rec->count++;
    if (sync)
        rec->unsent++;
}

int rp_lc_collect(rp_lc_record_t *rec, int64_t window_ms, int64_t now, rp_lc_unsent_t out[2])
{
    int n = 0;
    /* Redis keeps a window's counter until the end of the window after it: the time
     * left in the current window plus one window, and the same end for the previous. */
    int64_t end = (rec->window + 2) * window_ms;
    if (rec->unsent != 0) {
        out[n++] = (rp_lc_unsent_t){rec->window, rec->unsent, end - now};
        rec->unsent = 0;
    }
    if (rec->prev_unsent != 0) {
        out[n++] = (rp_lc_unsent_t){rec->window - 1, rec->prev_unsent, end - window_ms - now};
        rec->prev_unsent = 0;
    }
    for (int i = 0; i < n; i++)
        if (out[i].ttl_ms < 1)
            out[i].ttl_ms = 1;
    return n;
}

int64_t rp_lc_apply(rp_lc_record_t *rec, int64_t w, int64_t total, int64_t sent)
{
    if (w > rec->window)
        rp_lc_roll(rec, w);
    int64_t *count, *heard;
    if (w == rec->window) {
        count = &rec->count, heard = &rec->heard;
    } else if (w == rec->window - 1) {
        count = &rec->prev_count, heard = &rec->prev_heard;
    } else {
        return 0;
    }
    int64_t others = total - sent - *heard;
    if (others < 0)
        others = 0;
    *count += others;
    if (total > *heard)
        *heard = total;
    return others;
}
