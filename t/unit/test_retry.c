/*
 * The retry policy's pure decisions (retry.c): which failures retry, which requests
 * count as never processed, the backoff's bounds and jitter, the budget, Retry-After.
 */
#include "unit.h"
#include "upstream/retry.h"
#include "upstream/hedge.h"

#include <string.h>

static rp_retry_conf_t conf_on(unsigned on)
{
    rp_retry_conf_t c;
    memset(&c, 0, sizeof(c));
    c.set = 1;
    c.on = on;
    c.retries = -1;
    return c;
}

START_TEST(default_policy_is_nginx_error_timeout)
{
    rp_retry_conf_t c;
    memset(&c, 0, sizeof(c));
    ck_assert(rp_retry_wants(&c, RP_RETRY_CONNECT, 0, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_REFUSED, 0, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_RESET, 0, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_TIMEOUT, 0, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_INVALID, 0, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 503, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 500, -1));
}
END_TEST

START_TEST(gateway_error_is_502_503_504_only)
{
    rp_retry_conf_t c = conf_on(RP_RETRY_ON_GATEWAY);
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 502, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 503, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 504, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 500, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 200, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_CONNECT, 0, -1));
}
END_TEST

START_TEST(fivexx_and_named_codes)
{
    rp_retry_conf_t c = conf_on(RP_RETRY_ON_5XX);
    c.codes[c.ncodes++] = 429;
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 500, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 599, -1));
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 429, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 404, -1));
    rp_retry_conf_t d = conf_on(RP_RETRY_ON_4XX);
    ck_assert(rp_retry_wants(&d, RP_RETRY_STATUS, 409, -1));
    ck_assert(!rp_retry_wants(&d, RP_RETRY_STATUS, 400, -1));
}
END_TEST

START_TEST(grpc_codes_retry_on_their_own)
{
    rp_retry_conf_t c = conf_on(0);
    c.grpc = 1u << 14; /* unavailable */
    ck_assert(rp_retry_wants(&c, RP_RETRY_STATUS, 200, 14));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 200, 13));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 200, 0));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 200, -1));
}
END_TEST

START_TEST(off_retries_nothing)
{
    rp_retry_conf_t c = conf_on(0);
    ck_assert(!rp_retry_wants(&c, RP_RETRY_CONNECT, 0, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_TIMEOUT, 0, -1));
    ck_assert(!rp_retry_wants(&c, RP_RETRY_STATUS, 503, -1));
}
END_TEST

START_TEST(unprocessed_only_when_the_peer_never_had_it)
{
    ck_assert(rp_retry_unprocessed(RP_RETRY_CONNECT, 0, 0));
    ck_assert(rp_retry_unprocessed(RP_RETRY_REFUSED, 0, 0));
    ck_assert(!rp_retry_unprocessed(RP_RETRY_RESET, 0, 0));
    ck_assert(!rp_retry_unprocessed(RP_RETRY_TIMEOUT, 0, 0));
    ck_assert(!rp_retry_unprocessed(RP_RETRY_STATUS, 503, 0));
    ck_assert(rp_retry_unprocessed(RP_RETRY_STATUS, 503, 1));
    ck_assert(!rp_retry_unprocessed(RP_RETRY_STATUS, 502, 1));
}
END_TEST

START_TEST(backoff_grows_exponentially_within_the_cap)
{
    rp_retry_conf_t c = conf_on(0);
    c.backoff_base = 25;
    c.backoff_max = 250;
    /* the largest draw gives the span: 25, 50, 100, 200, then 250 for good */
    uint64_t top[] = {25, 50, 100, 200, 250, 250, 250};
    for (unsigned n = 1; n <= 7; n++) {
        ck_assert_int_eq(rp_retry_backoff(&c, n, top[n - 1]), (int64_t)top[n - 1]);
        ck_assert_int_eq(rp_retry_backoff(&c, n, top[n - 1] + 1), 0); /* wraps: jitter */
        for (uint64_t r = 0; r < 1000; r += 7)
            ck_assert(rp_retry_backoff(&c, n, r * 2654435761u) <= (int64_t)top[n - 1]);
    }
}
END_TEST

START_TEST(backoff_full_jitter_spreads_over_the_span)
{
    rp_retry_conf_t c = conf_on(0);
    c.backoff_base = 100;
    c.backoff_max = 100;
    int low = 0, high = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t w = rp_retry_backoff(&c, 1, x);
        ck_assert(w >= 0 && w <= 100);
        low += w < 50;
        high += w >= 50;
    }
    ck_assert(low > 4500 && high > 4500); /* uniform, not pinned to the top */
}
END_TEST

START_TEST(no_backoff_without_base)
{
    rp_retry_conf_t c = conf_on(0);
    ck_assert_int_eq(rp_retry_backoff(&c, 3, 12345), 0);
}
END_TEST

START_TEST(budget_allows_min_in_flight_then_whole_tokens)
{
    int take;
    /* fewer than min retries in flight: always, and without taking a token */
    ck_assert(rp_retry_budget_allows(0, 0, 20, 3, &take) && !take);
    ck_assert(rp_retry_budget_allows(2, 0, 20, 3, &take) && !take);
    /* beyond: only with a whole token (thousandths), which the retry takes */
    ck_assert(!rp_retry_budget_allows(3, 999, 20, 3, &take));
    ck_assert(rp_retry_budget_allows(3, 1000, 20, 3, &take) && take);
    ck_assert(rp_retry_budget_allows(50, 7000, 20, 3, &take) && take);
    /* off */
    ck_assert(rp_retry_budget_allows(1000, 0, -1, 3, &take) && !take);
}
END_TEST

START_TEST(budget_balance_leaks_with_its_time_constant)
{
    ck_assert_int_eq(rp_retry_budget_leak(100000, 0), 100000);
    int64_t tau = rp_retry_budget_leak(100000, RP_RETRY_BUDGET_TAU_MS);
    ck_assert(tau >= 36700 && tau <= 36800); /* 1/e */
    ck_assert(rp_retry_budget_leak(100000, 10 * RP_RETRY_BUDGET_TAU_MS) < 10);
    ck_assert_int_eq(rp_retry_budget_leak(-500, 1000), -500); /* a debt is not forgiven */
}
END_TEST

START_TEST(budget_storm_is_bounded_by_the_share)
{
    /* 10,000 requests at once, every try failing, 20%, min 3: the balance pays for about
     * 2,000 retries, whatever the order */
    int64_t balance = 0, retries = 0;
    int take;
    for (int i = 0; i < 10000; i++) {
        balance += 20 * 10;
        if (rp_retry_budget_allows(3, balance, 20, 3, &take)) {
            retries++;
            if (take)
                balance -= 1000;
        }
    }
    ck_assert_int_eq(retries, 2000);
}
END_TEST

START_TEST(retry_after_seconds_and_dates)
{
    ck_assert_int_eq(rp_retry_after_ms("2", 1, 0), 2000);
    ck_assert_int_eq(rp_retry_after_ms(" 0 ", 3, 0), 0);
    ck_assert_int_eq(rp_retry_after_ms("1.5", 3, 0), -1);
    ck_assert_int_eq(rp_retry_after_ms("", 0, 0), -1);
    const char *d = "Sun, 06 Nov 1994 08:49:37 GMT";
    ck_assert_int_eq(rp_retry_after_ms(d, (unsigned)strlen(d), 784111777 - 3), 3000);
    ck_assert_int_eq(rp_retry_after_ms(d, (unsigned)strlen(d), 784111777 + 60), 0);
    ck_assert_int_eq(rp_retry_after_ms("soon", 4, 0), -1);
}
END_TEST

START_TEST(hedge_percentile_needs_samples_then_tracks_them)
{
    rp_hedge_hist_t h;
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < RP_HEDGE_MIN_SAMPLES - 1; i++)
        rp_hedge_hist_add(&h, 10);
    ck_assert_int_eq(rp_hedge_hist_percentile(&h, 50), -1);
    memset(&h, 0, sizeof(h));
    for (int i = 1; i <= 1000; i++)
        rp_hedge_hist_add(&h, i); /* 1..1000 ms */
    int64_t p50 = rp_hedge_hist_percentile(&h, 50), p90 = rp_hedge_hist_percentile(&h, 90);
    /* buckets are at most a quarter wide: the answer is within 25% above the truth */
    ck_assert(p50 >= 500 && p50 <= 625);
    ck_assert(p90 >= 900 && p90 <= 1125);
    ck_assert_int_eq(rp_hedge_hist_percentile(&h, 1) <= 13, 1);
}
END_TEST

START_TEST(hedge_histogram_forgets_the_old_past)
{
    rp_hedge_hist_t h;
    memset(&h, 0, sizeof(h));
    for (int i = 0; i < RP_HEDGE_WINDOW; i++)
        rp_hedge_hist_add(&h, 1000); /* a slow past */
    for (int i = 0; i < 4 * RP_HEDGE_WINDOW; i++)
        rp_hedge_hist_add(&h, 5); /* a fast present */
    ck_assert_int_eq(rp_hedge_hist_percentile(&h, 95), 5);
    ck_assert(h.total <= RP_HEDGE_WINDOW + 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("retry");
    TCase *tc = tcase_create("policy");
    tcase_add_test(tc, default_policy_is_nginx_error_timeout);
    tcase_add_test(tc, gateway_error_is_502_503_504_only);
    tcase_add_test(tc, fivexx_and_named_codes);
    tcase_add_test(tc, grpc_codes_retry_on_their_own);
    tcase_add_test(tc, off_retries_nothing);
    tcase_add_test(tc, unprocessed_only_when_the_peer_never_had_it);
    tcase_add_test(tc, backoff_grows_exponentially_within_the_cap);
    tcase_add_test(tc, backoff_full_jitter_spreads_over_the_span);
    tcase_add_test(tc, no_backoff_without_base);
    tcase_add_test(tc, budget_allows_min_in_flight_then_whole_tokens);
    tcase_add_test(tc, budget_balance_leaks_with_its_time_constant);
    tcase_add_test(tc, budget_storm_is_bounded_by_the_share);
    tcase_add_test(tc, retry_after_seconds_and_dates);
    tcase_add_test(tc, hedge_percentile_needs_samples_then_tracks_them);
    tcase_add_test(tc, hedge_histogram_forgets_the_old_past);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
