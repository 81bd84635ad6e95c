/*
 * Outlier detection's detectors (src/upstream/outlier.c) on peer entries in ordinary
 * memory: each consecutive detector ejects at exactly its threshold and a success
 * starts the runs over; ejection times grow base x count up to the cap and the
 * multiplier decays once a peer has been back for base_ejection_time;
 * max_ejection_percent holds, one peer may always be ejected, and an ejection that a
 * racing one took past the share is undone; the success-rate threshold is
 * mean - factor x stdev; failure percentage ejects at its threshold. Also the
 * directives: what outlier_detection and panic_threshold set, and what they refuse.
 */
#include "upstream/outlier.h"
#include "upstream/upstream.h"
#include "unit.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>

static const rp_upstream_outcome_t R500 = {.status = 500, .header_ms = 1, .last_ms = 2};
static const rp_upstream_outcome_t R502 = {.status = 502, .header_ms = 1, .last_ms = 2};
static const rp_upstream_outcome_t R404 = {.status = 404, .header_ms = 1, .last_ms = 2};
static const rp_upstream_outcome_t REFUSED = {.failed = 1, .connect = 1, .header_ms = -1,
                                              .last_ms = -1};
static const rp_upstream_outcome_t TIMEOUT = {.failed = 1, .timeout = 1, .header_ms = -1,
                                              .last_ms = -1};
/* a 500 the retry policy turned away: failed, with its status */
static const rp_upstream_outcome_t R500_RETRIED = {.failed = 1, .status = 500, .header_ms = 1,
                                                   .last_ms = -1};
static const rp_upstream_outcome_t CUT = {.failed = 1, .status = 200, .header_ms = 1,
                                          .last_ms = -1};
static const rp_upstream_outcome_t GONE = {.incomplete = 1, .status = 502, .header_ms = 1,
                                           .last_ms = -1};

static rp_outlier_conf_t conf(void)
{
    rp_outlier_conf_t c;
    rp_outlier_conf_default(&c);
    c.base_ejection = 1000;
    c.max_ejection = 3000;
    return c;
}

/* Feeds o to sh k times; the reason the last one returned, failing if an earlier one
 * already met a threshold. */
static int feed(const rp_outlier_conf_t *c, rp_peer_shared_t *sh, const rp_upstream_outcome_t *o,
                int k)
{
    int r = RP_OUTLIER_NONE;
    for (int i = 0; i < k; i++) {
        ck_assert_int_eq(r, RP_OUTLIER_NONE);
        r = rp_outlier_record(c, sh, o);
    }
    return r;
}

START_TEST(test_five_5xx_in_a_row_meet_consecutive_5xx)
{
    rp_outlier_conf_t c = conf();
    c.consecutive_gateway = 0;
    rp_peer_shared_t sh = {0};
    ck_assert_int_eq(feed(&c, &sh, &R500, 4), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &R500), RP_OUTLIER_5XX);
    /* past the threshold the same run does not fire again */
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &R500), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_5xx), 6);
}
END_TEST

START_TEST(test_gateway_errors_and_local_failures_meet_consecutive_gateway_failure)
{
    rp_outlier_conf_t c = conf();
    rp_peer_shared_t sh = {0};
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &R502), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &TIMEOUT), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &R502), RP_OUTLIER_GATEWAY);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_5xx), 3);

    /* a 500 is a 5xx but not a gateway error: it ends the gateway run only */
    rp_peer_shared_t sh2 = {0};
    feed(&c, &sh2, &R502, 2);
    ck_assert_int_eq(rp_outlier_record(&c, &sh2, &R500), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_shm_counter_get(&sh2.consec_gateway), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh2.consec_5xx), 3);

    /* a retried 500 is still a 500; a body cut short is a local failure */
    rp_peer_shared_t sh3 = {0};
    feed(&c, &sh3, &R502, 2);
    rp_outlier_record(&c, &sh3, &R500_RETRIED);
    ck_assert_int_eq(rp_shm_counter_get(&sh3.consec_gateway), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh3.consec_5xx), 3);
    feed(&c, &sh3, &CUT, 2);
    ck_assert_int_eq(rp_outlier_record(&c, &sh3, &CUT), RP_OUTLIER_GATEWAY);
}
END_TEST

START_TEST(test_refused_connects_meet_consecutive_connect_failure_first)
{
    rp_outlier_conf_t c = conf();
    rp_peer_shared_t sh = {0};
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &REFUSED), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &REFUSED), RP_OUTLIER_CONNECT);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_gateway), 2);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_5xx), 2);

    /* an answer, even a 502, says the peer was reached: the connect run ends */
    rp_peer_shared_t sh2 = {0};
    rp_outlier_record(&c, &sh2, &REFUSED);
    rp_outlier_record(&c, &sh2, &R502);
    ck_assert_int_eq(rp_shm_counter_get(&sh2.consec_connect), 0);
    c.consecutive_gateway = 0;
    ck_assert_int_eq(rp_outlier_record(&c, &sh2, &REFUSED), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_shm_counter_get(&sh2.consec_connect), 1);
}
END_TEST

START_TEST(test_a_success_starts_every_run_over_and_a_client_gone_counts_nothing)
{
    rp_outlier_conf_t c = conf();
    rp_peer_shared_t sh = {0};
    feed(&c, &sh, &REFUSED, 1);
    feed(&c, &sh, &R502, 1);
    feed(&c, &sh, &GONE, 5);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_gateway), 2);
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &R404), RP_OUTLIER_NONE); /* < 500: success */
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_5xx), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_gateway), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.consec_connect), 0);
    ck_assert_int_eq(feed(&c, &sh, &R502, 3), RP_OUTLIER_GATEWAY);
    /* the window counts the outcomes that say something about the peer */
    ck_assert_int_eq(rp_shm_counter_get(&sh.window_requests), 6);
    ck_assert_int_eq(rp_shm_counter_get(&sh.window_failures), 5);
}
END_TEST

START_TEST(test_a_threshold_of_zero_turns_its_detector_off)
{
    rp_outlier_conf_t c = conf();
    c.consecutive_5xx = c.consecutive_gateway = c.consecutive_connect = 0;
    c.sr_minimum_hosts = 0;
    rp_peer_shared_t sh = {0};
    ck_assert_int_eq(feed(&c, &sh, &REFUSED, 50), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_outlier_record(&c, &sh, &REFUSED), RP_OUTLIER_NONE);
    ck_assert_int_eq(rp_shm_counter_get(&sh.window_requests), 0); /* no window either */
}
END_TEST

START_TEST(test_ejection_time_grows_base_times_count_up_to_the_cap)
{
    rp_outlier_conf_t c = conf(); /* base 1s, max 3s */
    rp_peer_shared_t sh = {0};
    rp_peer_shared_t *pool[] = {&sh};
    int64_t now = 1000000, ms = 0;
    int64_t want[] = {1000, 2000, 3000, 3000, 3000};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(rp_outlier_eject(&c, &sh, pool, 1, now, 0, &ms), RP_OUTLIER_EJECTED);
        ck_assert_int_eq(ms, want[i]);
        ck_assert_int_eq(rp_shm_counter_get(&sh.ejected_until), now + want[i]);
        /* ejected: a second detector finds it out already */
        ck_assert_int_eq(rp_outlier_eject(&c, &sh, pool, 1, now + 1, 0, &ms), RP_OUTLIER_ALREADY);
        now += want[i];
        /* the time is up: without checks it is back even before the return is logged */
        ck_assert(!rp_outlier_is_ejected(&sh, now, 0));
    }
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejected_total), 5);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejections), 3); /* stops growing at the cap */

    /* a max below base: base is the cap */
    c.max_ejection = 10;
    ck_assert_int_eq(rp_outlier_ejection_ms(&c, 0), 1000);
    ck_assert_int_eq(rp_outlier_ejection_ms(&c, 7), 1000);
}
END_TEST

START_TEST(test_a_return_is_reported_once_and_with_checks_waits_for_them)
{
    rp_outlier_conf_t c = conf();
    rp_peer_shared_t sh = {0};
    rp_peer_shared_t *pool[] = {&sh};
    int64_t ms;
    ck_assert_int_eq(rp_outlier_eject(&c, &sh, pool, 1, 5000, 0, &ms), RP_OUTLIER_EJECTED);
    ck_assert_int_eq(rp_outlier_check_return(&sh, 5999, 0), 0);
    ck_assert_int_eq(rp_outlier_check_return(&sh, 6200, 0), 1);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejected_until), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejection_ended), 6000);
    ck_assert_int_eq(rp_outlier_check_return(&sh, 6300, 0), 0);

    /* with active checks the deadline stands until a check clears it */
    rp_peer_shared_t hc = {0};
    rp_peer_shared_t *pool2[] = {&hc};
    ck_assert_int_eq(rp_outlier_eject(&c, &hc, pool2, 1, 5000, 1, &ms), RP_OUTLIER_EJECTED);
    ck_assert(rp_outlier_is_ejected(&hc, 9000, 1));
    ck_assert_int_eq(rp_outlier_check_return(&hc, 9000, 1), 0);
    ck_assert_int_eq(rp_shm_counter_get(&hc.ejected_until), 6000);
    rp_shm_counter_set(&hc.ejected_until, 0); /* what the health check does after a pass */
    ck_assert_int_eq(rp_outlier_check_return(&hc, 9500, 1), 0);
    ck_assert_int_eq(rp_shm_counter_get(&hc.ejection_ended), 9500);
}
END_TEST

START_TEST(test_the_multiplier_decays_once_the_peer_has_been_back_for_base)
{
    rp_outlier_conf_t c = conf();
    rp_peer_shared_t sh = {0};
    rp_peer_shared_t *pool[] = {&sh};
    int64_t ms, now = 10000;
    rp_outlier_eject(&c, &sh, pool, 1, now, 0, &ms);
    now += ms;
    rp_outlier_check_return(&sh, now, 0);
    rp_outlier_eject(&c, &sh, pool, 1, now, 0, &ms); /* flapped: 2s */
    ck_assert_int_eq(ms, 2000);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejections), 2);
    ck_assert_int_eq(rp_outlier_decay(&c, &sh, now + 1000, 0), 0); /* still out */
    now += ms;
    ck_assert_int_eq(rp_outlier_check_return(&sh, now, 0), 1);
    ck_assert_int_eq(rp_outlier_decay(&c, &sh, now + 999, 0), 0); /* back, not long enough */
    ck_assert_int_eq(rp_outlier_decay(&c, &sh, now + 1000, 0), 1);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejections), 1);
    ck_assert_int_eq(rp_outlier_decay(&c, &sh, now + 2000, 0), 1);
    ck_assert_int_eq(rp_outlier_decay(&c, &sh, now + 3000, 0), 0); /* not below 0 */
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejections), 0);
    rp_outlier_eject(&c, &sh, pool, 1, now + 4000, 0, &ms);
    ck_assert_int_eq(ms, 1000); /* forgiven: base again */
}
END_TEST

START_TEST(test_max_ejection_percent_holds_and_one_peer_may_always_go)
{
    rp_outlier_conf_t c = conf();
    c.max_ejection_percent = 50;
    rp_peer_shared_t sh[4];
    memset(sh, 0, sizeof(sh));
    rp_peer_shared_t *pool[] = {&sh[0], &sh[1], &sh[2], &sh[3]};
    int64_t ms;
    ck_assert_int_eq(rp_outlier_eject(&c, &sh[0], pool, 4, 1000, 0, &ms), RP_OUTLIER_EJECTED);
    ck_assert_int_eq(rp_outlier_eject(&c, &sh[1], pool, 4, 1000, 0, &ms), RP_OUTLIER_EJECTED);
    ck_assert_int_eq(rp_outlier_eject(&c, &sh[2], pool, 4, 1000, 0, &ms), RP_OUTLIER_REFUSED);
    ck_assert_int_eq(rp_shm_counter_get(&sh[2].ejected_until), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh[2].ejected_total), 0);
    ck_assert_int_eq(rp_outlier_count_ejected(pool, 4, 1500, 0), 2);
    /* once the first ones are back, there is room again */
    ck_assert_int_eq(rp_outlier_eject(&c, &sh[2], pool, 4, 2000, 0, &ms), RP_OUTLIER_EJECTED);

    /* 10% of 3 peers is less than one peer: one may go all the same, a second may not */
    c.max_ejection_percent = 10;
    rp_peer_shared_t t[3];
    memset(t, 0, sizeof(t));
    rp_peer_shared_t *p3[] = {&t[0], &t[1], &t[2]};
    ck_assert_int_eq(rp_outlier_eject(&c, &t[0], p3, 3, 1000, 0, &ms), RP_OUTLIER_EJECTED);
    ck_assert_int_eq(rp_outlier_eject(&c, &t[1], p3, 3, 1000, 0, &ms), RP_OUTLIER_REFUSED);
    ck_assert(rp_outlier_share_allows(0, 0, 3));
    ck_assert(!rp_outlier_share_allows(0, 1, 3));
    ck_assert(rp_outlier_share_allows(100, 2, 3));
}
END_TEST

/* Two threads, each ejecting its own peer of a pool of two at the same moment, as two
 * workers would: with max_ejection_percent 50 only one of them may be out. Each round
 * they meet at a spinning barrier, so that both count the pool within nanoseconds of
 * each other; then the first checks the table and clears it for the next round. */
enum { RACE_ROUNDS = 60000 };

typedef struct {
    const rp_outlier_conf_t *c;
    rp_peer_shared_t *sh; /* the pool's two entries */
    rp_peer_shared_t **pool;
    int arrived;          /* atomic: threads at the barrier, counting up for ever */
    int result[2];
    int over, none;       /* rounds with both out (a broken share), with none out */
} race_t;

static void race_barrier(race_t *r, int target)
{
    __atomic_add_fetch(&r->arrived, 1, __ATOMIC_SEQ_CST);
    for (unsigned spin = 0; __atomic_load_n(&r->arrived, __ATOMIC_SEQ_CST) < target; spin++)
        if (spin > 100000)
            sched_yield(); /* the other thread is not running: let it */
}

typedef struct {
    race_t *r;
    int k;
} racer_t;

static void *race(void *arg)
{
    racer_t *me = arg;
    race_t *r = me->r;
    for (int i = 0; i < RACE_ROUNDS; i++) {
        race_barrier(r, 4 * i + 2);
        int64_t ms;
        r->result[me->k] = rp_outlier_eject(r->c, &r->sh[me->k], r->pool, 2, 1000, 0, &ms);
        race_barrier(r, 4 * i + 4);
        if (me->k == 0) {
            int out = rp_outlier_count_ejected(r->pool, 2, 1000, 0);
            int said = (r->result[0] == RP_OUTLIER_EJECTED) + (r->result[1] == RP_OUTLIER_EJECTED);
            if (out > 1 || said != out)
                r->over++;
            r->none += out == 0;
            memset(r->sh, 0, 2 * sizeof(*r->sh));
        }
    }
    return NULL;
}

START_TEST(test_two_racing_ejections_never_take_the_pool_past_its_share)
{
    rp_outlier_conf_t c = conf();
    c.max_ejection_percent = 50;
    rp_peer_shared_t sh[2];
    memset(sh, 0, sizeof(sh));
    rp_peer_shared_t *pool[] = {&sh[0], &sh[1]};
    race_t r = {.c = &c, .sh = sh, .pool = pool};
    racer_t who[2] = {{&r, 0}, {&r, 1}};
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&th[k], NULL, race, &who[k]);
    for (int k = 0; k < 2; k++)
        pthread_join(th[k], NULL);
    ck_assert_int_eq(r.over, 0);
    /* stepping back errs toward capacity; most rounds still eject one */
    ck_assert_int_lt(r.none, RACE_ROUNDS / 2);
}
END_TEST

START_TEST(test_the_success_rate_threshold_is_mean_minus_factor_stdev)
{
    rp_outlier_conf_t c = conf();
    c.sr_minimum_hosts = 5;
    c.sr_request_volume = 10;
    c.sr_stdev_factor = 1.9;
    int64_t req[6] = {100, 100, 100, 100, 100, 5};
    int64_t fail[6] = {0, 2, 4, 0, 60, 5}; /* rates 100 98 96 100 40; the 6th lacks volume */
    double rates[5] = {100, 98, 96, 100, 40};
    double mean = (100 + 98 + 96 + 100 + 40) / 5.0, var = 0;
    for (int i = 0; i < 5; i++)
        var += (rates[i] - mean) * (rates[i] - mean);
    double want = mean - 1.9 * sqrt(var / 5);
    double t = rp_outlier_success_threshold(&c, req, fail, 6);
    ck_assert_double_eq_tol(t, want, 1e-9);
    ck_assert(40 < t && 96 > t);
    /* too few peers with the volume: no verdict */
    c.sr_minimum_hosts = 6;
    ck_assert(rp_outlier_success_threshold(&c, req, fail, 6) < 0);
    /* all alike: the threshold is the mean, and nobody is below it */
    c.sr_minimum_hosts = 3;
    int64_t same_req[3] = {50, 50, 50}, same_fail[3] = {5, 5, 5};
    ck_assert_double_eq_tol(rp_outlier_success_threshold(&c, same_req, same_fail, 3), 90, 1e-9);
}
END_TEST

/* Fills peer i's window with req[i] requests, fail[i] of them failed. */
static void windows(rp_peer_shared_t *sh, const int64_t *req, const int64_t *fail, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        rp_shm_counter_set(&sh[i].window_requests, req[i]);
        rp_shm_counter_set(&sh[i].window_failures, fail[i]);
    }
}

START_TEST(test_the_interval_ejects_the_success_rate_outlier_and_starts_the_windows_over)
{
    rp_outlier_conf_t c = conf();
    c.sr_minimum_hosts = 5;
    c.sr_request_volume = 20;
    rp_peer_shared_t sh[5];
    memset(sh, 0, sizeof(sh));
    rp_peer_shared_t *pool[] = {&sh[0], &sh[1], &sh[2], &sh[3], &sh[4]};
    int64_t req[5] = {40, 40, 40, 40, 40}, fail[5] = {0, 1, 0, 1, 30};
    windows(sh, req, fail, 5);
    rp_outlier_verdict_t v[5];
    rp_outlier_interval(&c, pool, 5, 50000, 0, v);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(v[i].reason, RP_OUTLIER_NONE);
        ck_assert_int_eq(rp_shm_counter_get(&sh[i].ejected_until), 0);
    }
    ck_assert_int_eq(v[4].reason, RP_OUTLIER_SUCCESS_RATE);
    ck_assert_int_eq(v[4].result, RP_OUTLIER_EJECTED);
    ck_assert_int_eq(v[4].ms, 1000);
    ck_assert_int_eq(v[4].requests, 40);
    ck_assert_int_eq(rp_shm_counter_get(&sh[4].ejected_until), 51000);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(rp_shm_counter_get(&sh[i].window_requests), 0);
    /* the next interval judges its own window only: too little volume, no verdict */
    rp_outlier_interval(&c, pool, 5, 60000, 0, v);
    ck_assert_int_eq(v[4].reason, RP_OUTLIER_NONE);
}
END_TEST

START_TEST(test_failure_percentage_ejects_at_its_threshold)
{
    rp_outlier_conf_t c = conf();
    c.sr_minimum_hosts = 0; /* success rate off: failure percentage alone */
    c.fp_threshold = 50;
    c.fp_minimum_hosts = 3;
    c.fp_request_volume = 10;
    c.max_ejection_percent = 100;
    rp_peer_shared_t sh[4];
    memset(sh, 0, sizeof(sh));
    rp_peer_shared_t *pool[] = {&sh[0], &sh[1], &sh[2], &sh[3]};
    /* 50% exactly, 49%, 90% with too little volume, 100% */
    int64_t req[4] = {10, 100, 9, 10}, fail[4] = {5, 49, 8, 10};
    windows(sh, req, fail, 4);
    rp_outlier_verdict_t v[4];
    rp_outlier_interval(&c, pool, 4, 1000, 0, v);
    ck_assert_int_eq(v[0].reason, RP_OUTLIER_FAILURE_PERCENT);
    ck_assert_int_eq(v[1].reason, RP_OUTLIER_NONE);
    ck_assert_int_eq(v[2].reason, RP_OUTLIER_NONE);
    ck_assert_int_eq(v[3].reason, RP_OUTLIER_FAILURE_PERCENT);
    ck_assert_int_eq(rp_outlier_count_ejected(pool, 4, 1000, 0), 2);
    /* fewer than the minimum hosts with the volume: no verdict */
    int64_t req2[4] = {10, 10, 1, 1}, fail2[4] = {10, 10, 1, 1};
    ck_assert(!rp_outlier_failure_judges(&c, req2, 4));
    (void)fail2;
}
END_TEST

/* ---- the directives ---- */

static rp_upstream_conf_t *pool_of(rp_cycle_t *cycle)
{
    rp_upstream_main_conf_t *m = rp_http_main_conf(cycle, &rp_upstream_module);
    return RP_ARRAY_AT(&m->upstreams, rp_upstream_conf_t *, 0);
}

START_TEST(test_outlier_detection_sets_its_parameters_and_watches_the_pool)
{
    rp_cycle_t *c = ut_load_ok(
        "http {\n"
        "    upstream pool {\n"
        "        server 127.0.0.1:8080;\n"
        "        outlier_detection consecutive_5xx=7 consecutive_gateway_failure=0 interval=2s\n"
        "            base_ejection_time=500ms max_ejection_time=1m max_ejection_percent=30\n"
        "            success_rate_stdev_factor=2.5 failure_percentage_threshold=80;\n"
        "        panic_threshold 40%;\n"
        "    }\n"
        "}\n");
    rp_upstream_conf_t *u = pool_of(c);
    ck_assert(u->outlier);
    ck_assert_int_eq(u->panic_threshold, 40);
    ck_assert_ptr_nonnull(u->observers);
    const rp_outlier_conf_t *oc = rp_outlier_conf_of(u);
    ck_assert_ptr_nonnull(oc);
    ck_assert_int_eq(oc->consecutive_5xx, 7);
    ck_assert_int_eq(oc->consecutive_gateway, 0);
    ck_assert_int_eq(oc->consecutive_connect, 2);
    ck_assert_int_eq(oc->interval, 2000);
    ck_assert_int_eq(oc->base_ejection, 500);
    ck_assert_int_eq(oc->max_ejection, 60000);
    ck_assert_int_eq(oc->max_ejection_percent, 30);
    ck_assert_double_eq(oc->sr_stdev_factor, 2.5);
    ck_assert_int_eq(oc->sr_request_volume, 100);
    ck_assert_int_eq(oc->fp_threshold, 80);
    rp_cycle_destroy(c);

    c = ut_load_ok("http { upstream pool { server 127.0.0.1:8080; } }\n");
    ck_assert(!pool_of(c)->outlier);
    ck_assert_ptr_null(rp_outlier_conf_of(pool_of(c)));
    ck_assert_int_eq(pool_of(c)->panic_threshold, -1);
    rp_cycle_destroy(c);
}
END_TEST

static void refused(const char *directive, const char *message)
{
    char text[512];
    snprintf(text, sizeof(text),
             "http {\n    upstream pool {\n        server 127.0.0.1:8080;\n        %s\n"
             "    }\n}\n",
             directive);
    rp_cycle_t *c = ut_load(text);
    ck_assert_msg(c == NULL, "accepted: %s", directive);
    ck_assert_str_eq(ut_err, ut_expand(message));
}

START_TEST(test_bad_values_are_refused_at_their_line)
{
    refused("outlier_detection consecutive_5xx=-1;",
            "@/rampart.conf:4: \"outlier_detection\": invalid consecutive_5xx \"-1\" (expected 0 to 2147483647)");
    refused("outlier_detection interval=0;",
            "@/rampart.conf:4: \"outlier_detection\": invalid interval \"0\" (expected a time above 0)");
    refused("outlier_detection max_ejection_percent=101;",
            "@/rampart.conf:4: \"outlier_detection\": invalid max_ejection_percent \"101\" (expected 0 to 100)");
    refused("outlier_detection success_rate_stdev_factor=abc;",
            "@/rampart.conf:4: \"outlier_detection\": invalid success_rate_stdev_factor \"abc\" (expected 0 to 100)");
    refused("outlier_detection fast=1;", "@/rampart.conf:4: \"outlier_detection\": invalid parameter \"fast=1\"");
    refused("outlier_detection; outlier_detection;",
            "@/rampart.conf:4: \"outlier_detection\": is duplicate");
    refused("panic_threshold 101;",
            "@/rampart.conf:4: \"panic_threshold\": invalid value \"101\" (expected a percentage, 0 to 100)");
    refused("panic_threshold 50 60;",
            "@/rampart.conf:4: \"panic_threshold\": takes 1 argument, got 2");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("outlier");
    TCase *tc = tcase_create("detectors");
    tcase_set_timeout(tc, 60); /* the race runs many rounds, slower under ASan */
    tcase_add_test(tc, test_five_5xx_in_a_row_meet_consecutive_5xx);
    tcase_add_test(tc, test_gateway_errors_and_local_failures_meet_consecutive_gateway_failure);
    tcase_add_test(tc, test_refused_connects_meet_consecutive_connect_failure_first);
    tcase_add_test(tc, test_a_success_starts_every_run_over_and_a_client_gone_counts_nothing);
    tcase_add_test(tc, test_a_threshold_of_zero_turns_its_detector_off);
    tcase_add_test(tc, test_ejection_time_grows_base_times_count_up_to_the_cap);
    tcase_add_test(tc, test_a_return_is_reported_once_and_with_checks_waits_for_them);
    tcase_add_test(tc, test_the_multiplier_decays_once_the_peer_has_been_back_for_base);
    tcase_add_test(tc, test_max_ejection_percent_holds_and_one_peer_may_always_go);
    tcase_add_test(tc, test_two_racing_ejections_never_take_the_pool_past_its_share);
    tcase_add_test(tc, test_the_success_rate_threshold_is_mean_minus_factor_stdev);
    tcase_add_test(tc, test_the_interval_ejects_the_success_rate_outlier_and_starts_the_windows_over);
    tcase_add_test(tc, test_failure_percentage_ejects_at_its_threshold);
    suite_add_tcase(s, tc);
    TCase *td = tcase_create("directives");
    tcase_add_checked_fixture(td, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(td, test_outlier_detection_sets_its_parameters_and_watches_the_pool);
    tcase_add_test(td, test_bad_values_are_refused_at_their_line);
    suite_add_tcase(s, td);
    return ut_run(s);
}
