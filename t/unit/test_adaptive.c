/*
 * Adaptive concurrency's pure controller (src/upstream/adaptive.c) on plain memory with a
 * fake clock: the histogram and its percentile; the first minRTT measurement, pinned to
 * min_concurrency and blind to requests sent before it; the limit growing while latency
 * stays at minRTT, shrinking once it passes minRTT + buffer, and staying within
 * [min_concurrency, max_concurrency]; the periodic re-measurement (with its jitter) and
 * the one forced by 5 windows at the floor; the breakers' verdict on the dynamic limit.
 * Also the directive: what it sets, and the values it refuses with file and line.
 */
#include "core/shm.h"
#include "upstream/adaptive.h"
#include "upstream/breaker.h"
#include "unit.h"

static rp_adaptive_shared_t rec;
static rp_adaptive_conf_t conf;
static int64_t clock_ms; /* the fake clock */

static void fresh(void)
{
    rp_adaptive_conf_default(&conf);
    conf.jitter = 0; /* measurements start on time unless a test says otherwise */
    clock_ms = 1000000;
    rp_adaptive_init(&rec, &conf, clock_ms);
}

static int64_t limit(void)
{
    return rp_adaptive_limit(&rec);
}

static int phase(void)
{
    return (int)rec.phase.v;
}

/* n responses of latency ms each, sent just now, seen at the fake clock's time. */
static void responses(int n, int64_t ms)
{
    for (int i = 0; i < n; i++)
        rp_adaptive_sample(&rec, &conf, ms, clock_ms - ms, clock_ms, 7);
}

/* Completes the measurement that is under way with responses of latency ms. */
static void measure(int64_t ms)
{
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT);
    clock_ms += ms;
    responses(conf.min_rtt_requests, ms);
    ck_assert_int_eq(phase(), RP_ADAPTIVE_SAMPLING);
}

/* One sampling window: responses of latency ms in it, and the first one after its end
 * (which moves the limit). */
static void window(int64_t ms)
{
    responses(10, ms);
    clock_ms += conf.interval;
    responses(1, ms);
}

/* ---- the histogram ---- */

START_TEST(test_buckets_are_exact_below_32_ms_and_within_4_percent_above)
{
    for (int64_t ms = 0; ms < 32; ms++)
        ck_assert_int_eq(rp_adaptive_bucket(ms), ms);
    for (int64_t ms = 32; ms < 131072; ms += ms / 7 + 1) {
        double v = rp_adaptive_bucket_ms(rp_adaptive_bucket(ms));
        ck_assert_msg(v >= ms * 0.96 && v <= ms * 1.04, "%lld ms reads as %.1f", (long long)ms, v);
    }
    ck_assert_int_eq(rp_adaptive_bucket(INT64_C(1) << 40), RP_ADAPTIVE_BUCKETS - 1);
    ck_assert_int_eq(rp_adaptive_bucket(-3), 0);
}
END_TEST

START_TEST(test_the_percentile_is_the_nearest_rank_of_the_samples)
{
    int64_t h[RP_ADAPTIVE_BUCKETS] = {0};
    h[10] = 90; /* 90 samples of 10 ms, 10 of 200 ms */
    h[rp_adaptive_bucket(200)] = 10;
    ck_assert_double_eq(rp_adaptive_percentile(h, 100, 50), 10.5);
    ck_assert_double_eq(rp_adaptive_percentile(h, 100, 90), 10.5);
    double p99 = rp_adaptive_percentile(h, 100, 99);
    ck_assert(p99 >= 200 && p99 <= 214);
    ck_assert_double_eq(rp_adaptive_percentile(h, 0, 50), 0);
}
END_TEST

/* ---- the controller ---- */

START_TEST(test_a_new_group_measures_min_rtt_first_with_the_limit_pinned)
{
    fresh();
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT);
    ck_assert_int_eq(limit(), 3);
    clock_ms += 20;
    responses(conf.min_rtt_requests - 1, 20);
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT); /* one response short */
    ck_assert_int_eq(limit(), 3);
    responses(1, 20);
    ck_assert_int_eq(phase(), RP_ADAPTIVE_SAMPLING);
    ck_assert_int_eq(rec.min_rtt_us.v, 20500);
    ck_assert_int_eq(rec.measurements.v, 1);
    ck_assert_int_eq(rec.next_min_rtt.v, clock_ms + 60000);
}
END_TEST

START_TEST(test_responses_to_requests_sent_before_the_measurement_are_not_counted)
{
    fresh();
    clock_ms += 500;
    /* a slow response to a request sent before the measurement began */
    for (int i = 0; i < 100; i++)
        rp_adaptive_sample(&rec, &conf, 900, clock_ms - 900, clock_ms, 7);
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT);
    ck_assert_int_eq(rec.count.v, 0);
    measure(12);
    ck_assert_int_eq(rec.min_rtt_us.v, 12500);
}
END_TEST

START_TEST(test_the_limit_grows_while_latency_stays_at_min_rtt)
{
    fresh();
    measure(20);
    int64_t prev = limit();
    for (int i = 0; i < 10; i++) {
        window(20);
        ck_assert_msg(limit() > prev, "window %d: %lld after %lld", i, (long long)limit(),
                      (long long)prev);
        prev = limit();
    }
    /* the gradient is (20.5 + 5.1) / 20.5 = 1.25, and the headroom comes on top */
    ck_assert_int_eq(rec.gradient.v, 1250);
    ck_assert_int_eq(rec.sample_rtt_us.v, 20500);
}
END_TEST

START_TEST(test_the_limit_stays_below_max_concurrency)
{
    fresh();
    conf.max_concurrency = 40;
    measure(20);
    for (int i = 0; i < 40; i++) {
        window(20);
        ck_assert_int_le(limit(), 40);
    }
    ck_assert_int_eq(limit(), 40);
}
END_TEST

START_TEST(test_the_limit_shrinks_when_latency_passes_min_rtt_and_buffer)
{
    fresh();
    measure(20);
    for (int i = 0; i < 15; i++)
        window(20);
    int64_t high = limit();
    ck_assert_int_gt(high, 100);
    /* within the buffer (25%: up to 25.6 ms): not punished */
    window(24);
    ck_assert_int_ge(limit(), high);
    high = limit();
    /* twice minRTT: the gradient is 25.6 / 41 = 0.625, the limit drops by about a third */
    window(40);
    ck_assert_int_eq(rec.gradient.v, 625);
    ck_assert_int_lt(limit(), high * 2 / 3 + 1);
    ck_assert_int_gt(limit(), high / 2);
    /* far above: it halves at most in one window (the gradient's floor is 0.5) */
    int64_t before = limit();
    window(400);
    ck_assert_int_eq(rec.gradient.v, 500);
    ck_assert_int_ge(limit(), before / 2);
    ck_assert_int_lt(limit(), before * 3 / 4);
}
END_TEST

START_TEST(test_the_limit_stays_at_min_concurrency_under_lasting_overload)
{
    fresh();
    conf.min_concurrency = 5;
    rp_adaptive_init(&rec, &conf, clock_ms);
    ck_assert_int_eq(limit(), 5);
    measure(20);
    for (int i = 0; i < 8; i++)
        window(20);
    for (int i = 0; i < 30 && phase() == RP_ADAPTIVE_SAMPLING; i++) {
        window(2000);
        ck_assert_int_ge(limit(), 5);
    }
    ck_assert_int_eq(limit(), 5);
}
END_TEST

START_TEST(test_five_windows_at_min_concurrency_start_a_new_measurement)
{
    fresh();
    measure(20);
    for (int i = 0; i < 5; i++)
        window(20);
    ck_assert_int_gt(limit(), 10);
    for (int i = 0; i < 20 && limit() > 3; i++)
        window(2000);
    ck_assert_int_eq(limit(), 3);
    ck_assert_int_eq(rec.at_min.v, 1);
    for (int i = 0; i < 3; i++)
        window(2000);
    ck_assert_int_eq(phase(), RP_ADAPTIVE_SAMPLING);
    window(2000); /* the fifth */
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT);
    /* the backend is slower for good now: minRTT follows, and the limit grows again */
    measure(200);
    ck_assert_int_eq(rec.min_rtt_us.v, rp_adaptive_bucket_ms(rp_adaptive_bucket(200)) * 1000);
    window(200);
    ck_assert_int_gt(limit(), 3);
}
END_TEST

START_TEST(test_min_rtt_is_measured_again_each_interval_with_the_limit_pinned_meanwhile)
{
    fresh();
    conf.min_rtt_interval = 10000;
    measure(20);
    for (int i = 0; i < 12; i++)
        window(20);
    int64_t grown = limit();
    ck_assert_int_gt(grown, 50);
    /* the interval runs out: the next response starts a measurement */
    clock_ms = rec.next_min_rtt.v;
    responses(1, 20);
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT);
    ck_assert_int_eq(limit(), 3);
    ck_assert_int_eq(rec.deferred.v, grown);
    /* the backend got faster: minRTT follows, and the limit from before comes back */
    measure(8);
    ck_assert_int_eq(rec.min_rtt_us.v, 8500);
    ck_assert_int_eq(limit(), grown);
    ck_assert_int_eq(rec.measurements.v, 2);
}
END_TEST

START_TEST(test_jitter_delays_the_next_measurement_by_up_to_its_share_of_the_interval)
{
    fresh();
    conf.jitter = 10;
    clock_ms += 20;
    for (int i = 0; i < conf.min_rtt_requests; i++)
        rp_adaptive_sample(&rec, &conf, 20, clock_ms - 20, clock_ms, 12345);
    ck_assert_int_eq(rec.next_min_rtt.v, clock_ms + 60000 + 12345 % 6001);
}
END_TEST

START_TEST(test_no_response_in_a_window_leaves_the_limit_where_it_was)
{
    fresh();
    measure(20);
    window(20);
    int64_t l = limit();
    int64_t updates = rec.updates.v;
    clock_ms += 10 * conf.interval; /* quiet: the window ends with nothing in it */
    rp_adaptive_update(&rec, &conf, clock_ms, 0);
    ck_assert_int_eq(limit(), l);
    ck_assert_int_eq(rec.updates.v, updates);
}
END_TEST

START_TEST(test_a_stale_update_holder_is_overtaken)
{
    fresh();
    measure(20);
    rec.busy.v = clock_ms; /* a worker took it and died */
    responses(10, 20);
    clock_ms += conf.interval;
    responses(1, 20);
    ck_assert_int_eq(rec.updates.v, 0); /* held: the others go on */
    clock_ms += 2000;
    responses(1, 20);
    ck_assert_int_eq(rec.updates.v, 1);
    ck_assert_int_eq(rec.busy.v, 0);
}
END_TEST

START_TEST(test_a_clock_set_back_does_not_freeze_the_limit)
{
    fresh();
    measure(20);
    window(20);
    int64_t updates = rec.updates.v, l = limit();
    clock_ms -= 3600000; /* the wall clock is set back an hour */
    responses(1, 20);
    /* every due time is out of reach now: minRTT is measured again, and all goes on from
     * the new time */
    ck_assert_int_eq(phase(), RP_ADAPTIVE_MIN_RTT);
    measure(20);
    ck_assert_int_eq(limit(), l);
    ck_assert_int_eq(rec.next_update.v, clock_ms + conf.interval);
    window(20);
    ck_assert_int_eq(rec.updates.v, updates + 1);
    ck_assert_int_gt(limit(), l);
}
END_TEST

START_TEST(test_the_breakers_refuse_at_the_adaptive_limit)
{
    rp_breaker_limits_t l = {.adaptive = 4};
    rp_breaker_counts_t c = {.inflight = 3};
    ck_assert_int_eq(rp_breaker_check(&l, &c), RP_BREAKER_PASS);
    c.inflight = 4;
    ck_assert_int_eq(rp_breaker_check(&l, &c), RP_BREAKER_ADAPTIVE);
    ck_assert_str_eq(rp_breaker_verdict_name(RP_BREAKER_ADAPTIVE), "adaptive_concurrency");
    l.max_requests = 2; /* a fixed limit below it is named first */
    ck_assert_int_eq(rp_breaker_check(&l, &c), RP_BREAKER_MAX_REQUESTS);
    l.adaptive = 0;
    l.max_requests = 0;
    ck_assert_int_eq(rp_breaker_check(&l, &c), RP_BREAKER_PASS);
}
END_TEST

/* ---- the directive ---- */

static const char *conf_with(const char *upstream_body)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    upstream u {\n"
             "        server 10.0.0.1:80;\n"
             "%s"
             "    }\n"
             "    server {\n"
             "        listen 127.0.0.1:8080;\n"
             "        location / {\n"
             "            proxy_pass http://u;\n"
             "        }\n"
             "    }\n"
             "}\n",
             upstream_body);
    return buf;
}

static rp_adaptive_conf_t *loaded_conf(rp_cycle_t *cycle)
{
    rp_upstream_main_conf_t *m = rp_http_main_conf(cycle, &rp_upstream_module);
    rp_upstream_conf_t *u = *(rp_upstream_conf_t **)m->upstreams.elts;
    ck_assert(rp_adaptive_configured(u));
    return u->module_conf[rp_adaptive_module.index]; /* its conf begins so */
}

START_TEST(test_the_directive_sets_the_parameters_and_envoys_defaults)
{
    rp_cycle_t *cycle =
        ut_load_ok(conf_with("        adaptive_concurrency interval=250ms percentile=90 buffer=50%"
                             " min_rtt_interval=30s min_rtt_requests=20 jitter=5 min_concurrency=2"
                             " max_concurrency=64;\n"));
    rp_adaptive_conf_t *c = loaded_conf(cycle);
    ck_assert_int_eq(c->interval, 250);
    ck_assert_int_eq(c->percentile, 90);
    ck_assert_int_eq(c->buffer, 50);
    ck_assert_int_eq(c->min_rtt_interval, 30000);
    ck_assert_int_eq(c->min_rtt_requests, 20);
    ck_assert_int_eq(c->jitter, 5);
    ck_assert_int_eq(c->min_concurrency, 2);
    ck_assert_int_eq(c->max_concurrency, 64);
    rp_cycle_destroy(cycle);
    cycle = ut_load_ok(conf_with("        adaptive_concurrency;\n        queue 10;\n"));
    c = loaded_conf(cycle);
    ck_assert_int_eq(c->interval, 100);
    ck_assert_int_eq(c->percentile, 50);
    ck_assert_int_eq(c->buffer, 25);
    ck_assert_int_eq(c->min_rtt_interval, 60000);
    ck_assert_int_eq(c->min_rtt_requests, 50);
    ck_assert_int_eq(c->jitter, 10);
    ck_assert_int_eq(c->min_concurrency, 3);
    ck_assert_int_eq(c->max_concurrency, 1000);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_the_directive_refuses_bad_values_with_file_and_line)
{
    static const struct {
        const char *directive;
        unsigned line;
        const char *error;
    } cases[] = {
        {"adaptive_concurrency interval=0;", 4,
         "\"adaptive_concurrency\": invalid interval \"0\" (expected a time above 0)"},
        {"adaptive_concurrency percentile=0;", 4,
         "\"adaptive_concurrency\": invalid percentile \"0\" (expected 1 to 100)"},
        {"adaptive_concurrency buffer=150%;", 4,
         "\"adaptive_concurrency\": invalid buffer \"150%\" (expected 0 to 100)"},
        {"adaptive_concurrency jitter=lots;", 4,
         "\"adaptive_concurrency\": invalid jitter \"lots\" (expected 0 to 100)"},
        {"adaptive_concurrency min_rtt_requests=0;", 4,
         "\"adaptive_concurrency\": invalid min_rtt_requests \"0\" (expected 1 to 1000000)"},
        {"adaptive_concurrency min_concurrency=0;", 4,
         "\"adaptive_concurrency\": invalid min_concurrency \"0\" (expected 1 to 2147483647)"},
        {"adaptive_concurrency min_concurrency=10 max_concurrency=5;", 4,
         "\"adaptive_concurrency\": min_concurrency 10 is above max_concurrency 5"},
        {"adaptive_concurrency limit=5;", 4,
         "\"adaptive_concurrency\": invalid parameter \"limit=5\""},
        {"adaptive_concurrency fast;", 4, "\"adaptive_concurrency\": invalid parameter \"fast\""},
        {"adaptive_concurrency;\n        adaptive_concurrency;", 5,
         "\"adaptive_concurrency\": is duplicate"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256], want[512];
        snprintf(body, sizeof(body), "        %s\n", cases[i].directive);
        snprintf(want, sizeof(want), "@/rampart.conf:%u: %s", cases[i].line, cases[i].error);
        ut_expect_error(conf_with(body), want);
    }
    ut_expect_error(
        "http {\n    server {\n        adaptive_concurrency;\n    }\n}\n",
        "@/rampart.conf:3: \"adaptive_concurrency\": not allowed in the server context");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adaptive");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_buckets_are_exact_below_32_ms_and_within_4_percent_above);
    tcase_add_test(tc, test_the_percentile_is_the_nearest_rank_of_the_samples);
    tcase_add_test(tc, test_a_new_group_measures_min_rtt_first_with_the_limit_pinned);
    tcase_add_test(tc, test_responses_to_requests_sent_before_the_measurement_are_not_counted);
    tcase_add_test(tc, test_the_limit_grows_while_latency_stays_at_min_rtt);
    tcase_add_test(tc, test_the_limit_stays_below_max_concurrency);
    tcase_add_test(tc, test_the_limit_shrinks_when_latency_passes_min_rtt_and_buffer);
    tcase_add_test(tc, test_the_limit_stays_at_min_concurrency_under_lasting_overload);
    tcase_add_test(tc, test_five_windows_at_min_concurrency_start_a_new_measurement);
    tcase_add_test(tc,
                   test_min_rtt_is_measured_again_each_interval_with_the_limit_pinned_meanwhile);
    tcase_add_test(tc, test_jitter_delays_the_next_measurement_by_up_to_its_share_of_the_interval);
    tcase_add_test(tc, test_no_response_in_a_window_leaves_the_limit_where_it_was);
    tcase_add_test(tc, test_a_stale_update_holder_is_overtaken);
    tcase_add_test(tc, test_a_clock_set_back_does_not_freeze_the_limit);
    tcase_add_test(tc, test_the_breakers_refuse_at_the_adaptive_limit);
    tcase_add_test(tc, test_the_directive_sets_the_parameters_and_envoys_defaults);
    tcase_add_test(tc, test_the_directive_refuses_bad_values_with_file_and_line);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
