/*
 * Window quotas (src/limit/limit_count.c and the zone side of limit_count_module.c)
 * with a fake clock: the windows' syntax and their epoch alignment, fixed windows at
 * their boundaries, sliding estimates and what a refused client is told, month
 * windows, several quotas decided together in shared memory (a refusal by one counts
 * in none), and the sync engine's collect and apply, driven as the engine will.
 */
#include "core/shm.h"
#include "limit/limit_count.h"
#include "unit.h"

#define S   1000LL
#define MIN (60 * S)
/* 2026-12-06T12:00:00Z, in ms: a Sunday, in the middle of a day */
#define NOON 1796558400000LL

static rp_lc_record_t at(int64_t now, int64_t window_ms)
{
    rp_lc_record_t rec = {0};
    rp_lc_roll(&rec, rp_lc_window_of(now, window_ms));
    return rec;
}

/* Takes n requests at now, returning how many were admitted (and counted). */
static int take_n(const rp_lc_quota_t *q, rp_lc_record_t *rec, int64_t now, int n)
{
    int passed = 0;
    for (int i = 0; i < n; i++) {
        rp_lc_decision_t d;
        rp_lc_roll(rec, rp_lc_window_of(now, q->window_ms));
        rp_lc_decide(q, rec, now, &d);
        if (d.admit) {
            rp_lc_count(rec, 0);
            passed++;
        }
    }
    return passed;
}

START_TEST(test_windows_read_nginx_times_with_months_and_years)
{
    int64_t ms;
    ck_assert_int_eq(rp_lc_parse_window("1s", &ms), 0);
    ck_assert_int_eq(ms, S);
    ck_assert_int_eq(rp_lc_parse_window("90", &ms), 0); /* bare: seconds */
    ck_assert_int_eq(ms, 90 * S);
    ck_assert_int_eq(rp_lc_parse_window("1h30m", &ms), 0);
    ck_assert_int_eq(ms, 90 * MIN);
    ck_assert_int_eq(rp_lc_parse_window("1w", &ms), 0);
    ck_assert_int_eq(ms, 7 * RP_LC_DAY);
    ck_assert_int_eq(rp_lc_parse_window("1M", &ms), 0);
    ck_assert_int_eq(ms, 30 * RP_LC_DAY);
    ck_assert_int_eq(rp_lc_parse_window("1M2d", &ms), 0);
    ck_assert_int_eq(ms, 32 * RP_LC_DAY);
    ck_assert_int_eq(rp_lc_parse_window("1y", &ms), 0);
    ck_assert_int_eq(ms, 365 * RP_LC_DAY);
    ck_assert_int_eq(rp_lc_parse_window("1m30", &ms), 0); /* as rp_parse_msec */
    ck_assert_int_eq(ms, 90 * S);
    ck_assert_int_eq(rp_lc_parse_window("2000ms", &ms), 0);
    ck_assert_int_eq(ms, 2 * S);
}
END_TEST

START_TEST(test_windows_refuse_fractions_zero_disorder_and_over_a_year)
{
    int64_t ms;
    const char *bad[] = {"", "0", "0s", "500ms", "1500ms", "1s500ms", "1m1h", "1d1d", "2y",
                         "366d", "1x", "s", "-1s", "1s5", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(rp_lc_parse_window(bad[i], &ms) == -1, "\"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(test_windows_are_aligned_to_the_epoch)
{
    ck_assert_int_eq(rp_lc_window_of(0, MIN), 0);
    ck_assert_int_eq(rp_lc_window_of(MIN - 1, MIN), 0);
    ck_assert_int_eq(rp_lc_window_of(MIN, MIN), 1);
    /* noon: a day window began at midnight UTC, half of it is left */
    ck_assert_int_eq(rp_lc_window_left(NOON, RP_LC_DAY), RP_LC_DAY / 2);
    ck_assert_int_eq(rp_lc_window_left(NOON, MIN), MIN);
    ck_assert_int_eq(rp_lc_window_left(NOON + 1, MIN), MIN - 1);
}
END_TEST

START_TEST(test_a_fixed_window_admits_limit_then_refuses_until_its_end)
{
    rp_lc_quota_t q = {.limit = 3, .window_ms = MIN};
    int64_t start = NOON; /* a window's first millisecond */
    rp_lc_record_t rec = at(start, q.window_ms);
    ck_assert_int_eq(take_n(&q, &rec, start, 5), 3);
    /* its last millisecond: still refused, told to wait the 1 ms as a whole second */
    rp_lc_decision_t d;
    rp_lc_decide(&q, &rec, start + MIN - 1, &d);
    ck_assert(!d.admit);
    ck_assert_int_eq(d.remaining, 0);
    ck_assert_int_eq(d.reset, 1);
    ck_assert_int_eq(d.retry_after, 1);
    /* the next window: whole again */
    ck_assert_int_eq(take_n(&q, &rec, start + MIN, 5), 3);
}
END_TEST

START_TEST(test_a_fixed_window_tells_remaining_reset_and_retry_after)
{
    rp_lc_quota_t q = {.limit = 10, .window_ms = MIN};
    rp_lc_record_t rec = at(NOON + 15 * S, q.window_ms);
    rp_lc_decision_t d;
    rp_lc_decide(&q, &rec, NOON + 15 * S, &d);
    ck_assert(d.admit);
    ck_assert_int_eq(d.remaining, 9); /* once this one is counted */
    ck_assert_int_eq(d.reset, 45);
    ck_assert_int_eq(d.retry_after, 0);
    rec.count = 10;
    rp_lc_decide(&q, &rec, NOON + 15 * S + 1, &d); /* 44.999 s left: 45 s */
    ck_assert(!d.admit);
    ck_assert_int_eq(d.used, 10);
    ck_assert_int_eq(d.reset, 45);
    ck_assert_int_eq(d.retry_after, 45);
}
END_TEST

START_TEST(test_sliding_weighs_the_previous_window_by_what_is_left_of_it)
{
    rp_lc_quota_t q = {.limit = 50, .window_ms = MIN, .sliding = 1};
    rp_lc_record_t rec = at(NOON, q.window_ms);
    rec.count = 42;
    rp_lc_roll(&rec, rec.window + 1);
    rec.count = 18;
    /* Cloudflare's example: 15 s into the window, 42 * 45/60 + 18 = 49.5 */
    int64_t now = NOON + MIN + 15 * S;
    ck_assert_int_eq(rp_lc_used(&q, &rec, now), 49);
    rp_lc_decision_t d;
    rp_lc_decide(&q, &rec, now, &d);
    ck_assert(d.admit);
    ck_assert_int_eq(d.remaining, 0);
    rp_lc_count(&rec, 0);
    rp_lc_decide(&q, &rec, now, &d); /* 50.5 */
    ck_assert(!d.admit);
    /* 42 * (60 - e)/60 + 19 < 50 once e > 15.714 s: 715 ms more, told 1 s */
    ck_assert_int_eq(d.retry_after, 1);
    rp_lc_decide(&q, &rec, now + 714, &d);
    ck_assert(!d.admit);
    rp_lc_decide(&q, &rec, now + 715, &d);
    ck_assert(d.admit);
}
END_TEST

START_TEST(test_sliding_refuses_at_a_fixed_windows_edge_what_fixed_admits)
{
    rp_lc_quota_t fixed = {.limit = 10, .window_ms = MIN};
    rp_lc_quota_t sliding = {.limit = 10, .window_ms = MIN, .sliding = 1};
    rp_lc_record_t f = at(NOON, MIN), s = at(NOON, MIN);
    ck_assert_int_eq(take_n(&fixed, &f, NOON + MIN - S, 10), 10);
    ck_assert_int_eq(take_n(&sliding, &s, NOON + MIN - S, 10), 10);
    /* just after the edge fixed starts whole; sliding still sees the burst */
    ck_assert_int_eq(take_n(&fixed, &f, NOON + MIN, 10), 10);
    ck_assert_int_eq(take_n(&sliding, &s, NOON + MIN, 10), 0);
    /* a quarter in, 7.5 of the burst still count: 3 more fit under 10 */
    ck_assert_int_eq(take_n(&sliding, &s, NOON + MIN + 15 * S, 10), 3);
    /* the burst's window is wholly out two windows on */
    ck_assert_int_eq(take_n(&sliding, &s, NOON + 3 * MIN, 20), 10);
}
END_TEST

START_TEST(test_sliding_retry_after_waits_into_the_next_window_when_this_one_is_full)
{
    rp_lc_quota_t q = {.limit = 10, .window_ms = MIN, .sliding = 1};
    rp_lc_record_t rec = at(NOON, MIN);
    rec.count = 10;
    rp_lc_decision_t d;
    rp_lc_decide(&q, &rec, NOON + 50 * S, &d);
    ck_assert(!d.admit);
    /* 10 s to the edge, then 10 * (60 - e)/60 < 10 once e >= 1 ms: 11 s */
    ck_assert_int_eq(d.retry_after, 11);
    ck_assert_int_eq(d.reset, 10);
}
END_TEST

START_TEST(test_a_month_window_spans_thirty_days_from_the_epoch)
{
    rp_lc_quota_t q = {.limit = 1000, .window_ms = RP_LC_MONTH};
    int64_t w = rp_lc_window_of(NOON, q.window_ms);
    ck_assert_int_eq(w, NOON / (30 * RP_LC_DAY));
    int64_t end = (w + 1) * RP_LC_MONTH;
    rp_lc_record_t rec = at(NOON, q.window_ms);
    rec.count = 1000;
    rp_lc_decision_t d;
    rp_lc_decide(&q, &rec, NOON, &d);
    ck_assert(!d.admit);
    ck_assert_int_eq(d.reset, (end - NOON) / S);
    ck_assert_int_eq(d.retry_after, (end - NOON) / S);
    ck_assert_int_eq(take_n(&q, &rec, end - 1, 1), 0);
    ck_assert_int_eq(take_n(&q, &rec, end, 1), 1);
}
END_TEST

START_TEST(test_rolling_keeps_one_previous_window_only)
{
    rp_lc_record_t rec = {.window = 7, .count = 5, .unsent = 2, .heard = 3};
    rp_lc_roll(&rec, 7);
    ck_assert_int_eq(rec.count, 5);
    rp_lc_roll(&rec, 8);
    ck_assert_int_eq(rec.prev_count, 5);
    ck_assert_int_eq(rec.prev_unsent, 2);
    ck_assert_int_eq(rec.prev_heard, 3);
    ck_assert_int_eq(rec.count + rec.unsent + rec.heard, 0);
    rp_lc_roll(&rec, 10);
    ck_assert_int_eq(rec.window, 10);
    ck_assert_int_eq(rec.prev_count + rec.prev_unsent + rec.prev_heard, 0);
    rec.count = 4;
    rp_lc_roll(&rec, 3); /* the window's length changed across a reload */
    ck_assert_int_eq(rec.window, 3);
    ck_assert_int_eq(rec.count + rec.prev_count, 0);
}
END_TEST

START_TEST(test_collect_hands_out_unsent_counts_of_both_windows_once)
{
    int64_t now = NOON + 20 * S;
    rp_lc_record_t rec = at(now, MIN);
    rp_lc_count(&rec, 1);
    rp_lc_count(&rec, 1);
    rp_lc_roll(&rec, rec.window + 1);
    rp_lc_count(&rec, 1);
    now += MIN;
    rp_lc_unsent_t u[2];
    ck_assert_int_eq(rp_lc_collect(&rec, MIN, now, u), 2);
    ck_assert_int_eq(u[0].window, rec.window);
    ck_assert_int_eq(u[0].delta, 1);
    ck_assert_int_eq(u[0].ttl_ms, 40 * S + MIN); /* the rest of the window, and one more */
    ck_assert_int_eq(u[1].window, rec.window - 1);
    ck_assert_int_eq(u[1].delta, 2);
    ck_assert_int_eq(u[1].ttl_ms, 40 * S);
    ck_assert_int_eq(rec.count, 1); /* counts stay: only the unsent ones are zeroed */
    ck_assert_int_eq(rp_lc_collect(&rec, MIN, now, u), 0);
}
END_TEST

START_TEST(test_apply_adds_only_the_other_nodes_share)
{
    rp_lc_record_t rec = at(NOON, MIN);
    int64_t w = rec.window;
    rec.count = 2; /* ours, sent as 2 */
    /* Redis: 5 in all, 2 of them ours: 3 from others */
    ck_assert_int_eq(rp_lc_apply(&rec, w, 5, 2), 3);
    ck_assert_int_eq(rec.count, 5);
    ck_assert_int_eq(rec.heard, 5);
    /* we sent 1 more, others 3 more: 9 */
    rec.count++;
    ck_assert_int_eq(rp_lc_apply(&rec, w, 9, 1), 3);
    ck_assert_int_eq(rec.count, 9);
    /* an answer older than what was heard adds nothing, and never subtracts */
    ck_assert_int_eq(rp_lc_apply(&rec, w, 7, 0), 0);
    ck_assert_int_eq(rec.count, 9);
    ck_assert_int_eq(rec.heard, 9);
    /* the previous window's late total goes to prev_count */
    rp_lc_roll(&rec, w + 1);
    ck_assert_int_eq(rp_lc_apply(&rec, w, 12, 0), 3);
    ck_assert_int_eq(rec.prev_count, 12);
    /* a newer window rolls the record on; an older one is dropped */
    ck_assert_int_eq(rp_lc_apply(&rec, w + 2, 4, 0), 4);
    ck_assert_int_eq(rec.window, w + 2);
    ck_assert_int_eq(rec.count, 4);
    ck_assert_int_eq(rp_lc_apply(&rec, w, 100, 0), 0);
}
END_TEST

/* ---- zones in shared memory ---- */

static rp_shm_zone_t *zone_named(rp_cycle_t *cycle, const char *name)
{
    for (size_t i = 0; i < cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
        if (strcmp(z->name, name) == 0)
            return z;
    }
    ck_abort_msg("no zone %s", name);
    return NULL;
}

static rp_cycle_t *load_zones(void)
{
    rp_cycle_t *cycle = ut_load_ok("http {\n"
                                   "    limit_count_zone $remote_addr zone=day:64k limit=5 "
                                   "window=1d;\n"
                                   "    limit_count_zone $remote_addr zone=sec:64k limit=2 "
                                   "window=1s;\n"
                                   "}\n");
    char err[512];
    ck_assert_msg(rp_shm_open(cycle, NULL, err, sizeof(err)) == 0, "%s", err);
    return cycle;
}

START_TEST(test_a_refusal_by_one_quota_counts_in_none_of_the_others)
{
    rp_cycle_t *cycle = load_zones();
    rp_shm_zone_t *z[2] = {zone_named(cycle, "day"), zone_named(cycle, "sec")};
    rp_str_t keys[2] = {RP_STR("10.0.0.1"), RP_STR("10.0.0.1")};
    rp_lc_decision_t d[2];
    int64_t now = NOON;
    /* the per-second quota lets 2 of 4 through: the day counts those 2 only */
    int passed = 0;
    for (int i = 0; i < 4; i++)
        passed += rp_limit_count_take(z, keys, 2, now, d);
    ck_assert_int_eq(passed, 2);
    ck_assert(d[0].admit);
    ck_assert(!d[1].admit);
    ck_assert_int_eq(d[0].used, 2);
    /* next second: 2 more, then the day (5) refuses the 5th and 6th... */
    for (int i = 0; i < 4; i++)
        passed += rp_limit_count_take(z, keys, 2, now + S, d);
    ck_assert_int_eq(passed, 4);
    passed = 0;
    for (int i = 0; i < 3; i++)
        passed += rp_limit_count_take(z, keys, 2, now + 2 * S, d);
    ck_assert_int_eq(passed, 1);
    /* ...and the second refused by the day did not count in the per-second quota */
    ck_assert(!d[0].admit);
    ck_assert(d[1].admit);
    ck_assert_int_eq(d[1].used, 1);
    /* another key has its own counts; an empty one is not counted */
    rp_str_t other[2] = {RP_STR("10.0.0.2"), RP_NULL_STR};
    ck_assert_int_eq(rp_limit_count_take(z, other, 2, now + 2 * S, d), 1);
    ck_assert_int_eq(d[0].remaining, 4);
    ck_assert(!d[1].decided);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_a_worker_whose_clock_is_a_little_behind_counts_in_the_window_already_opened)
{
    /* one worker's loop time crossed into the next second and counted there; another's,
     * a few ms behind, still reads the second before: it must not roll the record back
     * (which would zero the new window's count) but count in the window opened */
    rp_cycle_t *cycle = load_zones();
    rp_shm_zone_t *sec = zone_named(cycle, "sec");
    rp_str_t key = RP_STR("10.0.0.9");
    rp_lc_decision_t d;
    int64_t edge = (NOON / S + 1) * S;
    ck_assert_int_eq(rp_limit_count_take(&sec, &key, 1, edge + 2, &d), 1);
    ck_assert_int_eq(rp_limit_count_take(&sec, &key, 1, edge - 3, &d), 1);
    ck_assert_int_eq(d.used, 1); /* what it found before counting itself: the first one */
    /* limit 2 in that window: a third is refused, whichever clock asks */
    ck_assert_int_eq(rp_limit_count_take(&sec, &key, 1, edge - 1, &d), 0);
    ck_assert_int_eq(rp_limit_count_take(&sec, &key, 1, edge + 5, &d), 0);
    /* the window after admits again */
    ck_assert_int_eq(rp_limit_count_take(&sec, &key, 1, edge + S, &d), 1);
    rp_cycle_destroy(cycle);
}
END_TEST

typedef struct {
    char key[32];
    int64_t window, delta, ttl_ms;
} sent_t;

typedef struct {
    sent_t s[16];
    int n;
} engine_t;

static void engine_take(void *arg, const void *key, size_t key_len, int64_t window, int64_t delta,
                        int64_t ttl_ms)
{
    engine_t *e = arg;
    ck_assert_int_lt(e->n, 16);
    ck_assert_uint_lt(key_len, sizeof(e->s[0].key));
    sent_t *s = &e->s[e->n++];
    memcpy(s->key, key, key_len);
    s->key[key_len] = '\0';
    s->window = window, s->delta = delta, s->ttl_ms = ttl_ms;
}

START_TEST(test_collect_and_apply_share_a_zones_counts_as_the_engine_drives_them)
{
    rp_cycle_t *cycle = load_zones();
    rp_shm_zone_t *day = zone_named(cycle, "day");
    rp_limit_count_sync_on(day);
    const rp_limit_sync_ops_t *ops = rp_limit_count_sync_ops();
    rp_str_t key = RP_STR("k1");
    rp_lc_decision_t d;
    int64_t now = NOON, w = rp_lc_window_of(now, RP_LC_DAY);

    engine_t e = {.n = 0};
    ops->collect(day, now, engine_take, &e);
    ck_assert_int_eq(e.n, 0); /* nothing counted: nothing to send */
    ck_assert_int_eq(rp_limit_count_take(&day, &key, 1, now, &d), 1);
    ck_assert_int_eq(rp_limit_count_take(&day, &key, 1, now, &d), 1);
    ops->collect(day, now, engine_take, &e);
    ck_assert_int_eq(e.n, 1);
    ck_assert_str_eq(e.s[0].key, "k1");
    ck_assert_int_eq(e.s[0].window, w);
    ck_assert_int_eq(e.s[0].delta, 2);
    ck_assert_int_eq(e.s[0].ttl_ms, RP_LC_DAY / 2 + RP_LC_DAY);
    e.n = 0;
    ops->collect(day, now, engine_take, &e);
    ck_assert_int_eq(e.n, 0); /* handed out once */

    /* Redis: 4 in all for k1, 2 of them ours: the other nodes' 2 count here */
    ops->apply(day, "k1", 2, w, 4, 2, now);
    ck_assert_int_eq(rp_limit_count_take(&day, &key, 1, now, &d), 1);
    ck_assert_int_eq(d.used, 4);
    ck_assert_int_eq(d.remaining, 0);
    ck_assert_int_eq(rp_limit_count_take(&day, &key, 1, now, &d), 0);

    /* a key only other nodes have seen is made here */
    ops->apply(day, "k2", 2, w, 5, 0, now);
    rp_str_t k2 = RP_STR("k2");
    ck_assert_int_eq(rp_limit_count_take(&day, &k2, 1, now, &d), 0);
    ck_assert_int_eq(d.used, 5);
    /* and nothing it was told is sent back: only k1's last accepted request */
    ops->collect(day, now, engine_take, &e);
    ck_assert_int_eq(e.n, 1);
    ck_assert_str_eq(e.s[0].key, "k1");
    ck_assert_int_eq(e.s[0].delta, 1);
    rp_cycle_destroy(cycle);
}
END_TEST

typedef struct {
    int n;
    int64_t sum;
} tally_t;

static void tally(void *arg, const void *key, size_t len, int64_t w, int64_t delta, int64_t ttl)
{
    tally_t *c = arg;
    c->n++;
    c->sum += delta;
}

START_TEST(test_collect_walks_a_zone_of_many_keys_in_batches)
{
    rp_cycle_t *cycle = load_zones();
    rp_shm_zone_t *day = zone_named(cycle, "day");
    rp_limit_count_sync_on(day);
    rp_lc_decision_t d;
    char buf[16];
    for (int i = 0; i < 150; i++) {
        rp_str_t k = {buf, (size_t)snprintf(buf, sizeof(buf), "key%d", i)};
        ck_assert_int_eq(rp_limit_count_take(&day, &k, 1, NOON, &d), 1);
    }
    tally_t c = {0, 0};
    rp_limit_count_sync_ops()->collect(day, NOON, tally, &c);
    ck_assert_int_eq(c.n, 150);
    ck_assert_int_eq(c.sum, 150);
    rp_cycle_destroy(cycle);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limit_count");
    TCase *tc = tcase_create("windows");
    tcase_add_test(tc, test_windows_read_nginx_times_with_months_and_years);
    tcase_add_test(tc, test_windows_refuse_fractions_zero_disorder_and_over_a_year);
    tcase_add_test(tc, test_windows_are_aligned_to_the_epoch);
    tcase_add_test(tc, test_a_fixed_window_admits_limit_then_refuses_until_its_end);
    tcase_add_test(tc, test_a_fixed_window_tells_remaining_reset_and_retry_after);
    tcase_add_test(tc, test_sliding_weighs_the_previous_window_by_what_is_left_of_it);
    tcase_add_test(tc, test_sliding_refuses_at_a_fixed_windows_edge_what_fixed_admits);
    tcase_add_test(tc, test_sliding_retry_after_waits_into_the_next_window_when_this_one_is_full);
    tcase_add_test(tc, test_a_month_window_spans_thirty_days_from_the_epoch);
    tcase_add_test(tc, test_rolling_keeps_one_previous_window_only);
    tcase_add_test(tc, test_collect_hands_out_unsent_counts_of_both_windows_once);
    tcase_add_test(tc, test_apply_adds_only_the_other_nodes_share);
    suite_add_tcase(s, tc);
    TCase *zc = tcase_create("zones");
    tcase_add_checked_fixture(zc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(zc, test_a_refusal_by_one_quota_counts_in_none_of_the_others);
    tcase_add_test(zc, test_a_worker_whose_clock_is_a_little_behind_counts_in_the_window_already_opened);
    tcase_add_test(zc, test_collect_and_apply_share_a_zones_counts_as_the_engine_drives_them);
    tcase_add_test(zc, test_collect_walks_a_zone_of_many_keys_in_batches);
    suite_add_tcase(s, zc);
    return ut_run(s);
}
