/*
 * The circuit breakers' pure parts (src/upstream/breaker.c): the verdict on a request
 * at and over each limit, and the queue's ticket order on a pool entry's spare words:
 * FIFO, a ticket that leaves early is skipped, the queue and the ring refuse when full,
 * a front ticket whose worker died is passed after the stall time, and the ring wraps
 * around without taking an earlier lap's mark for a later ticket. Also the directives:
 * what they set, and the values they refuse with file and line.
 */
#include "core/shm.h"
#include "upstream/breaker.h"
#include "unit.h"

static rp_shm_counter_t q[24]; /* a pool entry's spare words */

static void fresh_queue(void)
{
    memset(q, 0, sizeof(q));
}

static int check(int64_t max_req, int64_t max_conn, int64_t max_pend, int64_t inflight,
                 int64_t conns, int64_t pending, int idle)
{
    rp_breaker_limits_t l = {
        .max_connections = max_conn, .max_requests = max_req, .max_pending = max_pend};
    rp_breaker_counts_t c = {
        .inflight = inflight, .conns = conns, .pending = pending, .idle_here = idle};
    return rp_breaker_check(&l, &c);
}

/* ---- verdicts ---- */

START_TEST(test_max_requests_admits_below_the_limit_and_trips_at_it)
{
    ck_assert_int_eq(check(2, 0, 0, 0, 0, 0, 0), RP_BREAKER_PASS);
    ck_assert_int_eq(check(2, 0, 0, 1, 0, 0, 0), RP_BREAKER_PASS);
    ck_assert_int_eq(check(2, 0, 0, 2, 0, 0, 0), RP_BREAKER_MAX_REQUESTS);
    ck_assert_int_eq(check(2, 0, 0, 7, 0, 0, 0), RP_BREAKER_MAX_REQUESTS);
    /* an idle connection does not lift it: the request would still be one more */
    ck_assert_int_eq(check(2, 0, 0, 2, 0, 0, 1), RP_BREAKER_MAX_REQUESTS);
}
END_TEST

START_TEST(test_max_connections_trips_only_for_a_request_that_needs_a_new_connection)
{
    ck_assert_int_eq(check(0, 3, 0, 9, 2, 0, 0), RP_BREAKER_PASS);
    ck_assert_int_eq(check(0, 3, 0, 9, 3, 0, 0), RP_BREAKER_MAX_CONNECTIONS);
    ck_assert_int_eq(check(0, 3, 0, 9, 4, 0, 0), RP_BREAKER_MAX_CONNECTIONS);
    ck_assert_int_eq(check(0, 3, 0, 9, 3, 0, 1), RP_BREAKER_PASS);
}
END_TEST

START_TEST(test_max_pending_trips_only_for_a_request_that_needs_a_new_connection)
{
    ck_assert_int_eq(check(0, 0, 1, 5, 5, 0, 0), RP_BREAKER_PASS);
    ck_assert_int_eq(check(0, 0, 1, 5, 5, 1, 0), RP_BREAKER_MAX_PENDING);
    ck_assert_int_eq(check(0, 0, 1, 5, 5, 1, 1), RP_BREAKER_PASS);
}
END_TEST

START_TEST(test_zero_limits_never_trip_and_max_requests_is_named_first)
{
    ck_assert_int_eq(check(0, 0, 0, 1000000, 1000000, 1000000, 0), RP_BREAKER_PASS);
    ck_assert_int_eq(check(1, 1, 1, 1, 1, 1, 0), RP_BREAKER_MAX_REQUESTS);
    ck_assert_int_eq(check(0, 1, 1, 1, 1, 1, 0), RP_BREAKER_MAX_CONNECTIONS);
    ck_assert_str_eq(rp_breaker_verdict_name(RP_BREAKER_MAX_REQUESTS), "max_requests");
    ck_assert_str_eq(rp_breaker_verdict_name(RP_BREAKER_MAX_CONNECTIONS), "max_connections");
    ck_assert_str_eq(rp_breaker_verdict_name(RP_BREAKER_MAX_PENDING), "max_pending");
    ck_assert_str_eq(rp_breaker_verdict_name(RP_BREAKER_QUEUE_FULL), "queue_full");
    ck_assert_str_eq(rp_breaker_verdict_name(RP_BREAKER_QUEUE_TIMEOUT), "queue_timeout");
}
END_TEST

/* ---- the ticket ring ---- */

static int64_t take(int64_t size, int64_t now)
{
    int64_t t = -1;
    ck_assert_int_eq(rp_breaker_ticket_take(q, size, now, &t), 0);
    return t;
}

static int64_t head(void)
{
    return rp_breaker_queue_pass(q, 0, 0);
}

START_TEST(test_tickets_go_in_the_order_they_were_taken)
{
    fresh_queue();
    for (int64_t i = 0; i < 5; i++)
        ck_assert_int_eq(take(10, 0), i);
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 5);
    for (int64_t i = 0; i < 5; i++) {
        ck_assert_int_eq(head(), i); /* only ticket i may go now */
        rp_breaker_ticket_done(q, i);
        ck_assert_int_eq(rp_breaker_queue_waiting(q), 4 - i);
    }
    ck_assert_int_eq(head(), 5);
    ck_assert_int_eq(q[RP_BQ_QUEUED].v, 5);
}
END_TEST

START_TEST(test_a_ticket_that_left_early_is_skipped_when_its_turn_comes)
{
    fresh_queue();
    for (int i = 0; i < 4; i++)
        take(10, 0);
    rp_breaker_ticket_done(q, 2); /* its client left while 0 and 1 still wait */
    rp_breaker_ticket_done(q, 1);
    ck_assert_int_eq(head(), 0); /* the front still waits: nobody behind it goes */
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 2);
    rp_breaker_ticket_done(q, 0);
    ck_assert_int_eq(head(), 3); /* 1 and 2 are passed at once */
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 1);
}
END_TEST

START_TEST(test_the_queue_refuses_past_its_size_and_takes_again_once_one_left)
{
    fresh_queue();
    take(3, 0);
    take(3, 0);
    take(3, 0);
    int64_t t;
    ck_assert_int_eq(rp_breaker_ticket_take(q, 3, 0, &t), -1);
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 3); /* the refusal is not counted */
    rp_breaker_ticket_done(q, 1);                     /* one in the middle left */
    ck_assert_int_eq(take(3, 0), 3);
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 3);
}
END_TEST

START_TEST(test_the_ring_refuses_when_left_tickets_fill_it_behind_a_waiting_front)
{
    fresh_queue();
    int64_t size = RP_BREAKER_RING;
    take(size, 0); /* ticket 0 waits at the front */
    for (int i = 1; i < RP_BREAKER_RING; i++)
        rp_breaker_ticket_done(q, take(size, 0)); /* each leaves, but cannot be passed yet */
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 1);
    int64_t t;
    ck_assert_int_eq(rp_breaker_ticket_take(q, size, 0, &t), -1);
    rp_breaker_ticket_done(q, 0);
    ck_assert_int_eq(head(), RP_BREAKER_RING);
    ck_assert_int_eq(take(size, 0), RP_BREAKER_RING);
}
END_TEST

START_TEST(test_the_ring_wraps_around_and_an_earlier_laps_mark_is_not_this_tickets)
{
    fresh_queue();
    int64_t n = 5 * RP_BREAKER_RING + 7;
    for (int64_t i = 0; i < n; i++) {
        /* two at once, the second leaving first: order holds at every slot of every lap */
        int64_t a = take(4, 0), b = take(4, 0);
        ck_assert_int_eq(a, 2 * i);
        ck_assert_int_eq(b, 2 * i + 1);
        rp_breaker_ticket_done(q, b);
        ck_assert_int_eq(head(), a);
        rp_breaker_ticket_done(q, a);
        ck_assert_int_eq(head(), b + 1);
    }
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 0);
    /* ticket t + RING shares t's slot, which holds t's done mark: it still waits */
    int64_t t = take(4, 0);
    rp_breaker_ticket_done(q, t);
    head();
    int64_t later = take(4, 0), last = -1;
    ck_assert_int_eq(later, t + 1);
    while (last < t + RP_BREAKER_RING - 1) {
        last = take(4, 0);
        rp_breaker_ticket_done(q, later);
        head();
        later = last;
    }
    ck_assert_int_eq(head(), t + RP_BREAKER_RING - 1);
    int64_t same_slot = take(4, 0);
    ck_assert_int_eq(same_slot, t + RP_BREAKER_RING);
    rp_breaker_ticket_done(q, last);
    ck_assert_int_eq(head(), same_slot); /* not passed on t's mark */
}
END_TEST

START_TEST(test_a_front_ticket_whose_worker_died_is_passed_after_the_stall_time)
{
    fresh_queue();
    take(10, 1000); /* at the front from 1000 ms */
    take(10, 1010);
    ck_assert_int_eq(rp_breaker_queue_pass(q, 1500, 2000), 0);
    ck_assert_int_eq(rp_breaker_queue_pass(q, 2999, 2000), 0);
    ck_assert_int_eq(rp_breaker_queue_pass(q, 3000, 2000), 1); /* its worker never came back */
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 1);
    /* the next front has its own stall time, from when it reached the front */
    ck_assert_int_eq(rp_breaker_queue_pass(q, 4999, 2000), 1);
    /* a late owner of the passed ticket does not count it twice */
    rp_breaker_ticket_done(q, 0);
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 1);
    rp_breaker_ticket_done(q, 1);
    ck_assert_int_eq(rp_breaker_queue_pass(q, 5000, 2000), 2);
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 0);
}
END_TEST

START_TEST(test_the_waiting_count_never_exceeds_the_tickets_not_passed)
{
    fresh_queue();
    take(10, 0);
    take(10, 0);
    q[RP_BQ_WAITING].v += 5; /* a worker died between counting and leaving */
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 2);
    rp_breaker_ticket_done(q, 0);
    rp_breaker_ticket_done(q, 1);
    head();
    ck_assert_int_eq(rp_breaker_queue_waiting(q), 0);
}
END_TEST

/* ---- the directives ---- */

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

START_TEST(test_the_directives_set_the_groups_limits)
{
    rp_cycle_t *cycle = ut_load_ok(conf_with("        max_requests 2;\n"
                                             "        max_connections 3;\n"
                                             "        max_pending 4;\n"
                                             "        max_retries 5;\n"
                                             "        queue 10 timeout=250ms;\n"));
    rp_upstream_main_conf_t *m = rp_http_main_conf(cycle, &rp_upstream_module);
    rp_upstream_conf_t *u = *(rp_upstream_conf_t **)m->upstreams.elts;
    ck_assert_int_eq(u->max_retries, 5);
    rp_breaker_limits_t *l = u->module_conf[rp_breaker_module.index]; /* its conf begins so */
    ck_assert_int_eq(l->max_requests, 2);
    ck_assert_int_eq(l->max_connections, 3);
    ck_assert_int_eq(l->max_pending, 4);
    ck_assert_int_eq(l->queue, 10);
    ck_assert_int_eq(l->queue_timeout, 250);
    rp_cycle_destroy(cycle);
    /* unset: none, and a queue waits 60 s unless told */
    cycle = ut_load_ok(conf_with("        max_requests 1;\n        queue 3;\n"));
    m = rp_http_main_conf(cycle, &rp_upstream_module);
    u = *(rp_upstream_conf_t **)m->upstreams.elts;
    l = u->module_conf[rp_breaker_module.index];
    ck_assert_int_eq(l->max_connections, 0);
    ck_assert_int_eq(l->max_pending, 0);
    ck_assert_int_eq(u->max_retries, 0);
    ck_assert_int_eq(l->queue_timeout, 60000);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_the_directives_refuse_bad_values_with_file_and_line)
{
    static const struct {
        const char *directive;
        unsigned line;
        const char *error;
    } cases[] = {
        {"max_requests many;", 4, "\"max_requests\": invalid number \"many\""},
        {"max_connections -1;", 4, "\"max_connections\": invalid number \"-1\""},
        {"max_pending 99999999999;", 4, "\"max_pending\": invalid number \"99999999999\""},
        {"max_retries 1.5;", 4, "\"max_retries\": invalid number \"1.5\""},
        {"max_requests 1;\n        max_requests 2;", 5, "\"max_requests\": is duplicate"},
        {"max_requests 1;\n        queue 193;", 5, "\"queue\": a queue holds at most 192 requests"},
        {"max_requests 1;\n        queue 5 timeout=0;", 5, "\"queue\": invalid timeout \"0\""},
        {"max_requests 1;\n        queue 5 timeout=soon;", 5,
         "\"queue\": invalid timeout \"soon\""},
        {"max_requests 1;\n        queue 5 wait=1s;", 5,
         "\"queue\": invalid parameter \"wait=1s\""},
        {"queue 5;", 4,
         "\"queue\": upstream \"u\" has no max_requests, max_connections or max_pending for "
         "requests to wait for"},
        {"max_requests;", 4, "\"max_requests\": takes 1 argument, got 0"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256], want[512];
        snprintf(body, sizeof(body), "        %s\n", cases[i].directive);
        snprintf(want, sizeof(want), "@/rampart.conf:%u: %s", cases[i].line, cases[i].error);
        ut_expect_error(conf_with(body), want);
    }
    ut_expect_error("http {\n    server {\n        max_requests 2;\n    }\n}\n",
                    "@/rampart.conf:3: \"max_requests\": not allowed in the server context");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("breaker");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_max_requests_admits_below_the_limit_and_trips_at_it);
    tcase_add_test(tc, test_max_connections_trips_only_for_a_request_that_needs_a_new_connection);
    tcase_add_test(tc, test_max_pending_trips_only_for_a_request_that_needs_a_new_connection);
    tcase_add_test(tc, test_zero_limits_never_trip_and_max_requests_is_named_first);
    tcase_add_test(tc, test_tickets_go_in_the_order_they_were_taken);
    tcase_add_test(tc, test_a_ticket_that_left_early_is_skipped_when_its_turn_comes);
    tcase_add_test(tc, test_the_queue_refuses_past_its_size_and_takes_again_once_one_left);
    tcase_add_test(tc, test_the_ring_refuses_when_left_tickets_fill_it_behind_a_waiting_front);
    tcase_add_test(tc, test_the_ring_wraps_around_and_an_earlier_laps_mark_is_not_this_tickets);
    tcase_add_test(tc, test_a_front_ticket_whose_worker_died_is_passed_after_the_stall_time);
    tcase_add_test(tc, test_the_waiting_count_never_exceeds_the_tickets_not_passed);
    tcase_add_test(tc, test_the_directives_set_the_groups_limits);
    tcase_add_test(tc, test_the_directives_refuse_bad_values_with_file_and_line);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
