/*
 * limit_req's arithmetic (src/limit/limit_req.c) on plain memory with a fake clock:
 * nginx's leaky bucket with burst, nodelay and delay=N, rates per minute truncated as
 * nginx truncates them, the rule that combines the several limits of a location, an
 * empty key, a full zone, the numbers reported for the RateLimit fields, and what a
 * `sync` zone hands the Redis engine and folds back in.
 */
#include "limit/limit_req.h"
#include "unit.h"

#include <stdint.h>

#define T0 1700000000000LL /* a wall-clock ms, as rp_time_ms gives */

typedef struct {
    rp_limit_req_table_t t;
    void *mem;
} table_t;

static table_t tables[4];
static size_t ntables;

static rp_limit_req_table_t *table(int64_t rate, size_t size, int sync)
{
    table_t *tb = &tables[ntables++];
    tb->mem = malloc(size);
    ck_assert_ptr_nonnull(tb->mem);
    memset(tb->mem, 0xa5, size);
    ck_assert_int_eq(rp_limit_req_table_init(&tb->t, tb->mem, size), 0);
    tb->t.rate = rate;
    tb->t.sync = sync;
    return &tb->t;
}

static void teardown(void)
{
    for (size_t i = 0; i < ntables; i++)
        free(tables[i].mem);
    ntables = 0;
}

static rp_limit_req_limit_t limit(rp_limit_req_table_t *t, int64_t burst, int64_t delay)
{
    rp_limit_req_limit_t l = {t, burst * 1000, delay < 0 ? RP_LIMIT_REQ_NODELAY : delay * 1000};
    return l;
}

static rp_str_t key(const char *s)
{
    return (rp_str_t){s, strlen(s)};
}

/* One request of key k under one limit at now: the outcome, with its delay in *delay. */
static int one(const rp_limit_req_limit_t *l, const char *k, int64_t now, int64_t *delay)
{
    rp_str_t keys[1] = {key(k)};
    rp_limit_req_result_t res;
    rp_limit_req_decide(l, 1, keys, now, NULL, &res);
    if (delay)
        *delay = res.delay;
    return res.outcome;
}

START_TEST(test_the_first_request_passes_and_the_burst_is_delayed_at_the_rate)
{
    rp_limit_req_limit_t l = limit(table(10000, 64 * 1024, 0), 2, 0); /* 10r/s burst=2 */
    int64_t d;
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_DELAYED);
    ck_assert_int_eq(d, 100);
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_DELAYED);
    ck_assert_int_eq(d, 200);
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_REJECTED); /* excess 3 > burst 2 */
    ck_assert_int_eq(one(&l, "a", T0 + 99, &d), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&l, "a", T0 + 100, &d), RP_LIMIT_REQ_DELAYED); /* one leaked */
    ck_assert_int_eq(d, 200);
    /* another key has a bucket of its own */
    ck_assert_int_eq(one(&l, "b", T0 + 100, &d), RP_LIMIT_REQ_PASSED);
    /* idle long enough, the bucket is empty again */
    ck_assert_int_eq(one(&l, "a", T0 + 10000, &d), RP_LIMIT_REQ_PASSED);
}
END_TEST

START_TEST(test_without_burst_a_second_request_within_the_interval_is_rejected)
{
    rp_limit_req_limit_t l = limit(table(2000, 64 * 1024, 0), 0, 0); /* 2r/s */
    ck_assert_int_eq(one(&l, "a", T0, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0 + 499, NULL), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&l, "a", T0 + 500, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0 + 999, NULL), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&l, "a", T0 + 1000, NULL), RP_LIMIT_REQ_PASSED);
}
END_TEST

START_TEST(test_nodelay_passes_the_whole_burst_at_once_and_rejects_beyond)
{
    rp_limit_req_limit_t l = limit(table(10000, 64 * 1024, 0), 3, -1);
    int64_t d;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_PASSED);
        ck_assert_int_eq(d, 0);
    }
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&l, "a", T0 + 100, &d), RP_LIMIT_REQ_PASSED);
}
END_TEST

START_TEST(test_delay_n_passes_n_at_once_then_delays_the_rest_of_the_burst)
{
    rp_limit_req_limit_t l = limit(table(10000, 64 * 1024, 0), 4, 2); /* burst=4 delay=2 */
    int64_t d;
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_PASSED); /* excess 0 */
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_PASSED); /* 1 */
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_PASSED); /* 2 = delay */
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_DELAYED);
    ck_assert_int_eq(d, 100); /* (3 - 2) / 10r/s */
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_DELAYED);
    ck_assert_int_eq(d, 200);
    ck_assert_int_eq(one(&l, "a", T0, &d), RP_LIMIT_REQ_REJECTED);
}
END_TEST

START_TEST(test_a_rate_per_minute_is_kept_in_thousandths_truncated_as_nginx)
{
    /* 30r/m is 500 thousandths a second: one request every 2 s */
    rp_limit_req_limit_t l = limit(table(30 * 1000 / 60, 64 * 1024, 0), 0, 0);
    ck_assert_int_eq(one(&l, "a", T0, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0 + 1999, NULL), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&l, "a", T0 + 2000, NULL), RP_LIMIT_REQ_PASSED);
    /* 1r/m is 16 thousandths (not 16.67): after 60 s 960 leaked, and 62.5 s are needed */
    rp_limit_req_limit_t m = limit(table(1000 / 60, 64 * 1024, 0), 0, 0);
    ck_assert_int_eq(one(&m, "a", T0, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&m, "a", T0 + 60000, NULL), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&m, "a", T0 + 62499, NULL), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&m, "a", T0 + 62500, NULL), RP_LIMIT_REQ_PASSED);
}
END_TEST

START_TEST(test_the_leak_is_truncated_per_update_so_frequent_requests_leak_less)
{
    /* 1r/m leaks 16 * 1 / 1000 = 0 per millisecond: requests every ms never leak */
    rp_limit_req_limit_t l = limit(table(16, 64 * 1024, 0), 5, -1);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(one(&l, "a", T0 + i, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0 + 6, NULL), RP_LIMIT_REQ_REJECTED);
}
END_TEST

START_TEST(test_a_clock_that_went_back_leaks_nothing_and_far_back_restarts)
{
    rp_limit_req_limit_t l = limit(table(1000, 64 * 1024, 0), 1, -1);
    ck_assert_int_eq(one(&l, "a", T0, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0 - 5000, NULL), RP_LIMIT_REQ_PASSED); /* excess 1 */
    ck_assert_int_eq(one(&l, "a", T0 - 5000, NULL), RP_LIMIT_REQ_REJECTED);
    /* more than a minute back: counted as 1 ms, still full */
    ck_assert_int_eq(one(&l, "a", T0 - 120000, NULL), RP_LIMIT_REQ_REJECTED);
}
END_TEST

START_TEST(test_several_limits_a_rejection_charges_none_of_the_earlier_ones)
{
    rp_limit_req_table_t *wide = table(1000, 64 * 1024, 0), *narrow = table(1000, 64 * 1024, 0);
    rp_limit_req_limit_t ls[2] = {limit(wide, 5, -1), limit(narrow, 0, 0)};
    rp_str_t keys[2] = {key("k"), key("k")};
    rp_limit_req_seen_t seen[2];
    rp_limit_req_result_t res;
    rp_limit_req_decide(ls, 2, keys, T0, seen, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_PASSED);
    ck_assert(seen[0].charged && seen[1].charged);
    for (int i = 0; i < 3; i++) {
        rp_limit_req_decide(ls, 2, keys, T0, seen, &res);
        ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_REJECTED);
        ck_assert_uint_eq(res.which, 1);
        ck_assert(seen[0].looked && !seen[0].charged && !seen[0].refused);
        ck_assert(seen[1].refused);
    }
    /* the wide limit holds only the one request that passed: 5 more pass it alone */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(one(&ls[0], "k", T0, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&ls[0], "k", T0, NULL), RP_LIMIT_REQ_REJECTED);
}
END_TEST

START_TEST(test_several_limits_the_first_that_overflows_refuses)
{
    rp_limit_req_table_t *a = table(1000, 64 * 1024, 0), *b = table(1000, 64 * 1024, 0);
    rp_limit_req_limit_t ls[2] = {limit(a, 0, 0), limit(b, 0, 0)};
    rp_str_t keys[2] = {key("k"), key("k")};
    rp_limit_req_result_t res;
    rp_limit_req_decide(ls, 2, keys, T0, NULL, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_PASSED);
    rp_limit_req_decide(ls, 2, keys, T0, NULL, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_REJECTED);
    ck_assert_uint_eq(res.which, 0);
    ck_assert_int_eq(res.excess, 1000);
}
END_TEST

START_TEST(test_several_limits_the_delay_is_the_longest_of_theirs)
{
    rp_limit_req_table_t *slow = table(1000, 64 * 1024, 0), *fast = table(4000, 64 * 1024, 0);
    rp_limit_req_limit_t ls[2] = {limit(slow, 5, 0), limit(fast, 5, 0)};
    rp_str_t keys[2] = {key("k"), key("k")};
    rp_limit_req_result_t res;
    rp_limit_req_decide(ls, 2, keys, T0, NULL, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_PASSED);
    rp_limit_req_decide(ls, 2, keys, T0, NULL, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_DELAYED);
    ck_assert_int_eq(res.delay, 1000); /* the slow one's 1 s, not the fast one's 250 ms */
    ck_assert_uint_eq(res.which, 0);
    /* in the other order too: the last limit's delay is replaced only by a longer one */
    rp_limit_req_limit_t rs[2] = {limit(fast, 5, 0), limit(slow, 5, 0)};
    rp_str_t k2[2] = {key("j"), key("j")};
    rp_limit_req_decide(rs, 2, k2, T0, NULL, &res);
    rp_limit_req_decide(rs, 2, k2, T0, NULL, &res);
    ck_assert_int_eq(res.delay, 1000);
    ck_assert_uint_eq(res.which, 1);
}
END_TEST

START_TEST(test_an_empty_key_is_not_limited_and_the_others_still_are)
{
    rp_limit_req_table_t *a = table(1000, 64 * 1024, 0), *b = table(1000, 64 * 1024, 0);
    rp_limit_req_limit_t ls[2] = {limit(a, 0, 0), limit(b, 0, 0)};
    rp_str_t none[2] = {key(""), key("")};
    rp_limit_req_result_t res;
    for (int i = 0; i < 5; i++) {
        rp_limit_req_decide(ls, 2, none, T0, NULL, &res);
        ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_NONE);
    }
    /* the last one empty: the first is charged all the same */
    rp_str_t first[2] = {key("k"), key("")};
    rp_limit_req_seen_t seen[2];
    rp_limit_req_decide(ls, 2, first, T0, seen, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_PASSED);
    ck_assert(seen[0].charged && !seen[1].looked);
    rp_limit_req_decide(ls, 2, first, T0, seen, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_REJECTED);
    ck_assert_uint_eq(res.which, 0);
}
END_TEST

START_TEST(test_a_full_zone_forces_out_old_keys_and_a_key_too_large_for_it_is_refused)
{
    rp_limit_req_limit_t l = limit(table(1000, 32 * 1024, 0), 0, 0);
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof(k), "client-%d", i);
        ck_assert_int_eq(one(&l, k, T0, NULL), RP_LIMIT_REQ_PASSED);
    }
    /* the newest keys are still there, the oldest were forced out */
    ck_assert_int_eq(one(&l, "client-4999", T0, NULL), RP_LIMIT_REQ_REJECTED);
    ck_assert_int_eq(one(&l, "client-0", T0, NULL), RP_LIMIT_REQ_PASSED);
    char *huge = malloc(40000);
    memset(huge, 'x', 39999);
    huge[39999] = '\0';
    ck_assert_int_eq(one(&l, huge, T0, NULL), RP_LIMIT_REQ_NOMEM);
    free(huge);
}
END_TEST

START_TEST(test_the_report_gives_quota_window_remaining_reset_and_retry_after)
{
    rp_limit_req_limit_t l = limit(table(2000, 64 * 1024, 0), 3, -1); /* 2r/s burst=3 */
    rp_str_t keys[1] = {key("a")};
    rp_limit_req_seen_t s;
    rp_limit_req_result_t res;
    rp_limit_report_t rep;
    rp_limit_req_decide(&l, 1, keys, T0, &s, &res);
    rp_limit_req_report_of(&l, &s, &rep);
    ck_assert_int_eq(rep.quota, 4);
    ck_assert_int_eq(rep.window, 2); /* 4 requests drain in 2 s */
    ck_assert_int_eq(rep.remaining, 3);
    ck_assert_int_eq(rep.reset, 0);
    ck_assert_int_eq(rep.refused, 0);
    for (int i = 0; i < 3; i++)
        rp_limit_req_decide(&l, 1, keys, T0, &s, &res);
    rp_limit_req_report_of(&l, &s, &rep);
    ck_assert_int_eq(rep.remaining, 0);
    ck_assert_int_eq(rep.reset, 2); /* excess 3 at 2r/s: 1.5 s, rounded up */
    rp_limit_req_decide(&l, 1, keys, T0 + 100, &s, &res);
    ck_assert_int_eq(res.outcome, RP_LIMIT_REQ_REJECTED);
    rp_limit_req_report_of(&l, &s, &rep);
    ck_assert_int_eq(rep.refused, 1);
    ck_assert_int_eq(rep.remaining, 0);
    ck_assert_int_eq(rep.retry_after, 1); /* 0.8 over: 400 ms, at least 1 s */
    /* a slow rate: 1r/m, burst 0 */
    rp_limit_req_limit_t m = limit(table(1000 / 60, 64 * 1024, 0), 0, 0);
    rp_limit_req_decide(&m, 1, keys, T0, &s, &res);
    rp_limit_req_report_of(&m, &s, &rep);
    ck_assert_int_eq(rep.quota, 1);
    ck_assert_int_eq(rep.window, 63); /* 1000 / 16 thousandths a second: 62.5 s */
    rp_limit_req_decide(&m, 1, keys, T0 + 30000, &s, &res);
    rp_limit_req_report_of(&m, &s, &rep);
    ck_assert_int_eq(rep.retry_after, 33); /* 520 thousandths left at 16 a second */
}
END_TEST

typedef struct {
    int calls;
    char key[64];
    int64_t window, delta, ttl;
} collected_t;

static void on_collect(void *arg, const void *k, size_t len, int64_t window, int64_t delta,
                       int64_t ttl)
{
    collected_t *c = arg;
    c->calls++;
    snprintf(c->key, sizeof(c->key), "%.*s", (int)len, (const char *)k);
    c->window = window;
    c->delta = delta;
    c->ttl = ttl;
}

START_TEST(test_collect_hands_out_the_unsent_count_once_and_only_after_a_change)
{
    rp_limit_req_table_t *t = table(10000, 64 * 1024, 1);
    rp_limit_req_limit_t l = limit(t, 10, -1);
    collected_t c = {0};
    rp_limit_req_collect(t, T0, on_collect, &c);
    ck_assert_int_eq(c.calls, 0);
    for (int i = 0; i < 3; i++)
        one(&l, "a", T0 + 10, NULL);
    for (int i = 0; i < 20; i++)
        one(&l, "a", T0 + 10, NULL); /* refused ones are not counted */
    ck_assert_int_eq(t->sh->dirty, 11);
    rp_limit_req_collect(t, T0 + 20, on_collect, &c);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_str_eq(c.key, "a");
    ck_assert_int_eq(c.window, (T0 + 10) / 1000);
    ck_assert_int_eq(c.delta, 11);
    ck_assert_int_gt(c.ttl, 1000);
    ck_assert_int_eq(t->sh->dirty, 0);
    rp_limit_req_collect(t, T0 + 30, on_collect, &c);
    ck_assert_int_eq(c.calls, 1); /* nothing new: the table is not walked */
}
END_TEST

START_TEST(test_apply_folds_in_only_what_the_other_nodes_added)
{
    rp_limit_req_table_t *t = table(1000, 64 * 1024, 1); /* 1r/s */
    rp_limit_req_limit_t l = limit(t, 10, -1);
    int64_t w = T0 / 1000;
    one(&l, "a", T0, NULL); /* excess 0 */
    collected_t c = {0};
    rp_limit_req_collect(t, T0, on_collect, &c);
    ck_assert_int_eq(c.delta, 1);
    /* Redis says 5 in this second, 1 of them ours: 4 from the others */
    rp_limit_req_apply(t, "a", 1, w, 5, 1, T0);
    /* the same total again: nothing new */
    rp_limit_req_apply(t, "a", 1, w, 5, 0, T0);
    /* excess is now 4: 6 more pass with burst 10, the 7th is refused */
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(one(&l, "a", T0, NULL), RP_LIMIT_REQ_PASSED);
    ck_assert_int_eq(one(&l, "a", T0, NULL), RP_LIMIT_REQ_REJECTED);
    /* a key this node never saw is made from the others' share */
    rp_limit_req_apply(t, "b", 1, w, 11, 0, T0);
    ck_assert_int_eq(one(&l, "b", T0, NULL), RP_LIMIT_REQ_REJECTED);
    /* an answer for a second long gone changes nothing */
    rp_limit_req_apply(t, "b", 1, w - 5, 100, 0, T0 + 3000);
    ck_assert_int_eq(one(&l, "b", T0 + 3000, NULL), RP_LIMIT_REQ_PASSED); /* 11 - 3 + 1 */
}
END_TEST

START_TEST(test_apply_for_the_second_before_uses_what_was_heard_for_it)
{
    rp_limit_req_table_t *t = table(1000, 64 * 1024, 1);
    rp_limit_req_limit_t l = limit(t, 100, -1);
    int64_t w = T0 / 1000;
    rp_limit_req_apply(t, "a", 1, w, 3, 0, T0);        /* excess 3 */
    one(&l, "a", T0 + 1000, NULL);                     /* the next second: leaks 1, excess 3 */
    rp_limit_req_apply(t, "a", 1, w, 5, 0, T0 + 1000); /* late answer: 2 more, not 5 */
    rp_str_t keys[1] = {key("a")};
    rp_limit_req_seen_t s;
    rp_limit_req_result_t res;
    rp_limit_req_decide(&l, 1, keys, T0 + 1000, &s, &res);
    ck_assert_int_eq(s.excess, 6000);
}
END_TEST

START_TEST(test_a_worker_whose_clock_is_a_little_behind_counts_in_the_second_already_opened)
{
    /* worker A's loop time is in second w + 1 and opens it; worker B's, a few ms behind,
     * still reads second w: B counts in w + 1 too, so what Redis said of w + 1 stays */
    rp_limit_req_table_t *t = table(1000000, 64 * 1024, 1);
    rp_limit_req_limit_t l = limit(t, 1000, -1);
    int64_t w = T0 / 1000;
    int64_t edge = (w + 1) * 1000;
    one(&l, "a", edge + 2, NULL); /* A */
    collected_t c = {0};
    rp_limit_req_collect(t, edge + 3, on_collect, &c);
    ck_assert_int_eq(c.delta, 1);
    rp_limit_req_apply(t, "a", 1, w + 1, 5, 1, edge + 3); /* 4 from the other nodes */
    one(&l, "a", edge - 3, NULL);                         /* B, 5 ms behind */
    rp_limit_req_collect(t, edge + 10, on_collect, &c);
    ck_assert_int_eq(c.calls, 2);
    ck_assert_int_eq(c.window, w + 1);
    ck_assert_int_eq(c.delta, 1); /* B's request, in the second A opened */
    /* Redis now says 7 of which 1 is ours: 1 more from the others, not 6 again */
    rp_str_t keys[1] = {key("a")};
    rp_limit_req_seen_t before, after;
    rp_limit_req_result_t res;
    rp_limit_req_decide(&l, 1, keys, edge + 10, &before, &res);
    rp_limit_req_apply(t, "a", 1, w + 1, 7, 1, edge + 10);
    rp_limit_req_decide(&l, 1, keys, edge + 10, &after, &res);
    ck_assert_int_eq(after.excess - before.excess, 1000 + 1000); /* this request + 1 remote */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limit_req");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_the_first_request_passes_and_the_burst_is_delayed_at_the_rate);
    tcase_add_test(tc, test_without_burst_a_second_request_within_the_interval_is_rejected);
    tcase_add_test(tc, test_nodelay_passes_the_whole_burst_at_once_and_rejects_beyond);
    tcase_add_test(tc, test_delay_n_passes_n_at_once_then_delays_the_rest_of_the_burst);
    tcase_add_test(tc, test_a_rate_per_minute_is_kept_in_thousandths_truncated_as_nginx);
    tcase_add_test(tc, test_the_leak_is_truncated_per_update_so_frequent_requests_leak_less);
    tcase_add_test(tc, test_a_clock_that_went_back_leaks_nothing_and_far_back_restarts);
    tcase_add_test(tc, test_several_limits_a_rejection_charges_none_of_the_earlier_ones);
    tcase_add_test(tc, test_several_limits_the_first_that_overflows_refuses);
    tcase_add_test(tc, test_several_limits_the_delay_is_the_longest_of_theirs);
    tcase_add_test(tc, test_an_empty_key_is_not_limited_and_the_others_still_are);
    tcase_add_test(tc, test_a_full_zone_forces_out_old_keys_and_a_key_too_large_for_it_is_refused);
    tcase_add_test(tc, test_the_report_gives_quota_window_remaining_reset_and_retry_after);
    tcase_add_test(tc, test_collect_hands_out_the_unsent_count_once_and_only_after_a_change);
    tcase_add_test(tc, test_apply_folds_in_only_what_the_other_nodes_added);
    tcase_add_test(tc, test_apply_for_the_second_before_uses_what_was_heard_for_it);
    tcase_add_test(tc, test_a_worker_whose_clock_is_a_little_behind_counts_in_the_second_already_opened);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
