/*
 * The phase runner, request cleanups, suspension and the filter chains
 * (src/http/phases.c, src/http/request.c), without a socket: a loaded
 * configuration, a hand-made request whose protocol is a stub that records what
 * reaches it, test handlers added to the phases, and a real event loop for the
 * timers and resumptions.
 */
#include "core/time.h"
#include "http/request.h"
#include "unit.h"

#include <event2/event.h>

static rp_cycle_t *cycle;
static rp_conf_t cf;
static rp_arena_t *arena;
static rp_request_t *r;

/* what the stub protocol saw */
static int heads, ends, aborts;
static char body[4096];
static size_t body_len;
static int status_sent;

/* a trace of calls, "S1 R1 C1 ..." */
static char trace[1024];

static void note(const char *what)
{
    size_t n = strlen(trace);
    snprintf(trace + n, sizeof(trace) - n, "%s%s", n ? " " : "", what);
}

static int stub_send_head(rp_request_t *rq)
{
    heads++;
    status_sent = rq->status;
    return 0;
}

static int stub_send_body(rp_request_t *rq, const struct iovec *iov, int iovcnt, unsigned flags)
{
    for (int i = 0; i < iovcnt; i++) {
        memcpy(body + body_len, iov[i].iov_base, iov[i].iov_len);
        body_len += iov[i].iov_len;
    }
    if (flags & RP_BODY_LAST) {
        ends++;
        rp_http_request_end(rq); /* as a protocol does once the response is out */
    }
    return 0;
}

static int stub_flush_head(rp_request_t *rq)
{
    return 0;
}

static int stub_head_sent(const rp_request_t *rq)
{
    return heads > 0;
}

static void stub_abort(rp_request_t *rq)
{
    aborts++;
    rp_http_request_end(rq);
}

static size_t stub_pending(const rp_request_t *rq)
{
    return 0;
}

static int stub_read_body(rp_request_t *rq, char *buf, size_t cap, size_t *n)
{
    *n = 0;
    return 1;
}

static void stub_close_now(rp_request_t *rq)
{
    stub_abort(rq);
}

static int stub_trailers(rp_request_t *rq, const rp_header_t *h, unsigned n)
{
    return -1;
}

static const rp_http_proto_t stub = {
    "stub",        stub_send_head, stub_send_body, stub_flush_head, stub_head_sent,
    stub_abort,    stub_pending,   stub_read_body, stub_close_now,  stub_trailers,
};

static void setup(void)
{
    ut_setup_dir();
    rp_event_base = event_base_new();
    cycle = ut_load_ok("http {\n"
                       "    access_log off;\n"
                       "    server {\n"
                       "        listen 127.0.0.1:8080;\n"
                       "        location / { }\n"
                       "        location /other/ { }\n"
                       "    }\n"
                       "}\n");
    memset(&cf, 0, sizeof(cf));
    cf.cycle = cycle;
    cf.arena = cycle->arena;
    arena = rp_arena_create(8192);
    r = rp_http_request_new(NULL, arena, &stub);
    r->srv = ut_server(cycle, 0);
    r->clcf = ut_srv_loc(r->srv);
    r->loc_conf = r->clcf->loc_conf;
    r->method = RP_STR("GET");
    r->uri = RP_STR("/a");
    r->version = 11;
    heads = ends = aborts = 0;
    body_len = 0;
    status_sent = 0;
    trace[0] = '\0';
}

static void teardown(void)
{
    rp_arena_destroy(arena);
    rp_cycle_destroy(cycle);
    event_base_free(rp_event_base);
    rp_event_base = NULL;
    ut_teardown_dir();
}

/* Runs the loop until nothing is left to do (timers included). */
static void run_loop(void)
{
    event_base_dispatch(rp_event_base);
}

/* ---- handlers the tests add ---- */

static int answer(rp_request_t *rq, const char *text)
{
    return rp_http_send_response(rq, 200, RP_STR("text/plain"), (rp_str_t){text, strlen(text)});
}

static int h_declined_a(rp_request_t *rq)
{
    note("A");
    return RP_DECLINED;
}

static int h_ok_b(rp_request_t *rq)
{
    note("B");
    return RP_OK;
}

static int h_never(rp_request_t *rq)
{
    note("NEVER");
    return RP_DECLINED;
}

static int h_content(rp_request_t *rq)
{
    note("content");
    return answer(rq, "done");
}

static int h_error(rp_request_t *rq)
{
    note("E");
    return RP_ERROR;
}

static int h_done(rp_request_t *rq)
{
    note("D");
    return answer(rq, "early");
}

static int sleeps;

/* Sleeps the first time, goes on the second: a rate-limit delay's shape. */
static int h_sleep(rp_request_t *rq)
{
    if (rp_http_get_ctx(rq, rp_http_core_module) == NULL) {
        rp_http_set_ctx(rq, rp_http_core_module, (void *)1);
        note("sleep");
        sleeps++;
        return rp_http_sleep(rq, 20);
    }
    note("woke");
    return RP_OK;
}

static void add(rp_phase_t phase, rp_phase_handler_pt h)
{
    rp_http_add_phase_handler(&cf, phase, h);
}

/* ---- the return codes ---- */

START_TEST(test_declined_tries_the_next_handler_of_the_same_phase)
{
    add(RP_PHASE_ACCESS, h_declined_a);
    add(RP_PHASE_ACCESS, h_ok_b);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "A B content");
    ck_assert_int_eq(ends, 1);
}
END_TEST

START_TEST(test_ok_skips_the_rest_of_the_phase)
{
    add(RP_PHASE_PREACCESS, h_ok_b);
    add(RP_PHASE_PREACCESS, h_never);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "B content");
}
END_TEST

/* ---- the access phase's checker (satisfy) ---- */

static int h_deny_403(rp_request_t *rq)
{
    note("403");
    return 403;
}

static int h_deny_401(rp_request_t *rq)
{
    note("401");
    rp_http_add_header(rq, RP_STR("WWW-Authenticate"), RP_STR("Basic realm=\"t\""));
    return 401;
}

START_TEST(test_access_grant_under_all_asks_the_next_check)
{
    add(RP_PHASE_ACCESS, h_ok_b);
    add(RP_PHASE_ACCESS, h_declined_a);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "B A content");
}
END_TEST

START_TEST(test_access_first_denial_under_all_answers)
{
    add(RP_PHASE_ACCESS, h_ok_b);
    add(RP_PHASE_ACCESS, h_deny_403);
    add(RP_PHASE_ACCESS, h_never);
    add(RP_PHASE_CONTENT, h_never);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "B 403");
    ck_assert_int_eq(status_sent, 403);
}
END_TEST

START_TEST(test_access_grant_under_any_ends_the_phase_and_drops_the_challenge)
{
    r->clcf->satisfy = 1;
    r->phase = RP_PHASE_ACCESS; /* in the location made `satisfy any` */
    add(RP_PHASE_ACCESS, h_deny_401);
    add(RP_PHASE_ACCESS, h_ok_b);
    add(RP_PHASE_ACCESS, h_never);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "401 B content");
    ck_assert_int_eq(status_sent, 200);
    ck_assert_ptr_null(rp_http_out_header(r, "www-authenticate"));
}
END_TEST

START_TEST(test_access_without_a_grant_under_any_prefers_401)
{
    r->clcf->satisfy = 1;
    r->phase = RP_PHASE_ACCESS; /* in the location made `satisfy any` */
    add(RP_PHASE_ACCESS, h_deny_401);
    add(RP_PHASE_ACCESS, h_deny_403);
    add(RP_PHASE_ACCESS, h_declined_a);
    add(RP_PHASE_CONTENT, h_never);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "401 403 A");
    ck_assert_int_eq(status_sent, 401);
    ck_assert_ptr_nonnull(rp_http_out_header(r, "www-authenticate"));
}
END_TEST

START_TEST(test_access_is_skipped_by_subrequests)
{
    r->subrequest = 1;
    add(RP_PHASE_ACCESS, h_never);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "content");
}
END_TEST

START_TEST(test_done_stops_the_phases)
{
    add(RP_PHASE_PREACCESS, h_done);
    add(RP_PHASE_ACCESS, h_never);
    add(RP_PHASE_CONTENT, h_never);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "D");
    ck_assert_int_eq(status_sent, 200);
    ck_assert_int_eq(ends, 1);
}
END_TEST

START_TEST(test_error_answers_500_and_stops)
{
    add(RP_PHASE_ACCESS, h_error);
    add(RP_PHASE_CONTENT, h_never);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "E");
    ck_assert_int_eq(status_sent, 500);
}
END_TEST

START_TEST(test_no_content_handler_answers_404)
{
    add(RP_PHASE_ACCESS, h_declined_a);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "A");
    ck_assert_int_eq(status_sent, 404);
}
END_TEST

static int h_location_content(rp_request_t *rq)
{
    note("location");
    return RP_DECLINED; /* hands the request to the phase's handlers */
}

START_TEST(test_location_content_handler_runs_before_the_phase_handlers)
{
    ut_loc(ut_srv_loc(r->srv), "/")->content = h_location_content; /* where /a goes */
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "location content");
}
END_TEST

/* ---- suspension ---- */

START_TEST(test_again_suspends_and_a_timer_resumes_the_same_handler)
{
    add(RP_PHASE_PRECONTENT, h_declined_a);
    add(RP_PHASE_PRECONTENT, h_sleep);
    add(RP_PHASE_CONTENT, h_content);
    sleeps = 0;
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "A sleep");
    ck_assert_int_eq(heads, 0); /* nothing answered while it sleeps */
    run_loop();
    /* resumed at the sleeping handler, not at the start of its phase */
    ck_assert_str_eq(trace, "A sleep woke content");
    ck_assert_int_eq(sleeps, 1);
    ck_assert_int_eq(ends, 1);
}
END_TEST

static int resumed_inside;

static int h_resume_now(rp_request_t *rq)
{
    if (rp_http_get_ctx(rq, rp_http_core_module) == NULL) {
        rp_http_set_ctx(rq, rp_http_core_module, (void *)1);
        note("ask");
        rp_http_resume(rq); /* an event that already happened */
        resumed_inside = strstr(trace, "again") != NULL;
        return RP_AGAIN;
    }
    note("again");
    return RP_OK;
}

START_TEST(test_resume_runs_from_the_loop_never_inside_the_caller)
{
    add(RP_PHASE_ACCESS, h_resume_now);
    add(RP_PHASE_CONTENT, h_content);
    resumed_inside = -1;
    rp_http_run_phases(r);
    ck_assert_int_eq(resumed_inside, 0);
    ck_assert_str_eq(trace, "ask");
    run_loop();
    ck_assert_str_eq(trace, "ask again content");
}
END_TEST

/* ---- cleanups ---- */

static void cleanup_note(rp_request_t *rq, void *data)
{
    note(data);
}

static int h_with_cleanups(rp_request_t *rq)
{
    rp_http_cleanup_add(rq, cleanup_note, "c1");
    rp_http_cleanup_add(rq, cleanup_note, "c2");
    rp_http_cleanup_add(rq, cleanup_note, "c3");
    return RP_DECLINED;
}

START_TEST(test_cleanups_run_once_newest_first_when_the_response_completes)
{
    add(RP_PHASE_ACCESS, h_with_cleanups);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "content c3 c2 c1");
    rp_http_request_end(r); /* a second ending changes nothing */
    ck_assert_str_eq(trace, "content c3 c2 c1");
}
END_TEST

START_TEST(test_cleanups_run_once_when_the_client_leaves_a_suspended_request)
{
    add(RP_PHASE_ACCESS, h_with_cleanups);
    add(RP_PHASE_PRECONTENT, h_sleep);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "sleep");
    /* the protocol learns the client is gone (connection closed, stream reset, worker
     * stopping: each ends the request the same way) */
    rp_http_request_end(r);
    ck_assert_str_eq(trace, "sleep c3 c2 c1");
    /* the sleep's timer was cancelled with the request: the loop has nothing to run */
    ck_assert_int_eq(event_base_loop(rp_event_base, EVLOOP_NONBLOCK), 1);
    ck_assert_str_eq(trace, "sleep c3 c2 c1");
    ck_assert_int_eq(heads, 0);
}
END_TEST

START_TEST(test_cleanups_run_early_once_when_a_handler_answers_in_their_place)
{
    /* a timeout: the protocol lets the handler's resources go, then answers 408 */
    add(RP_PHASE_ACCESS, h_with_cleanups);
    add(RP_PHASE_PRECONTENT, h_sleep);
    rp_http_run_phases(r);
    rp_http_run_cleanups(r);
    ck_assert_str_eq(trace, "sleep c3 c2 c1");
    rp_http_send_error(r, 408);
    ck_assert_int_eq(status_sent, 408);
    ck_assert_str_eq(trace, "sleep c3 c2 c1");
    run_loop();
    ck_assert_str_eq(trace, "sleep c3 c2 c1"); /* the sleep never resumes */
}
END_TEST

START_TEST(test_a_request_resumed_after_it_ended_stays_ended)
{
    add(RP_PHASE_ACCESS, h_resume_now);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r); /* posted for resumption */
    rp_http_request_end(r);
    run_loop();
    ck_assert_str_eq(trace, "ask");
}
END_TEST

/* ---- internal redirects ---- */

static int redirects;

static int h_redirect_once(rp_request_t *rq)
{
    if (rq->internal) {
        note(rq->clcf->name);
        return RP_DECLINED;
    }
    note("redirect");
    return rp_http_internal_redirect(rq, RP_STR("/other/x"), RP_STR(""));
}

START_TEST(test_internal_redirect_restarts_the_phases_at_the_new_location)
{
    add(RP_PHASE_REWRITE, h_redirect_once);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "redirect");
    run_loop();
    ck_assert_str_eq(trace, "redirect /other/ content");
    ck_assert(rp_str_eq(r->uri, "/other/x"));
}
END_TEST

static int h_redirect_always(rp_request_t *rq)
{
    redirects++;
    return rp_http_internal_redirect(rq, RP_STR("/again"), RP_STR(""));
}

START_TEST(test_redirect_loop_ends_with_500_after_ten)
{
    add(RP_PHASE_REWRITE, h_redirect_always);
    redirects = 0;
    rp_http_run_phases(r);
    run_loop();
    ck_assert_int_eq(status_sent, 500);
    ck_assert_int_eq(redirects, 11); /* 10 redirects happen, the 11th is refused */
}
END_TEST

static int h_change_uri(rp_request_t *rq)
{
    if (rp_str_eq(rq->uri, "/a")) {
        note("rewrite");
        rq->uri = RP_STR("/other/y");
        rq->uri_changed = 1;
        return RP_OK;
    }
    note(rq->clcf->name);
    return RP_OK;
}

START_TEST(test_changed_uri_finds_the_location_again_after_rewrite)
{
    add(RP_PHASE_REWRITE, h_change_uri);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "rewrite /other/ content");
}
END_TEST

/* ---- filters ---- */

static int hf_one(rp_request_t *rq, const rp_http_header_filter_t *self)
{
    note("h500");
    return rp_http_next_header(rq, self);
}

static int hf_two(rp_request_t *rq, const rp_http_header_filter_t *self)
{
    note("h100");
    rq->status = 203; /* a filter may change the status */
    return rp_http_next_header(rq, self);
}

static int bf_upper(rp_request_t *rq, const rp_http_body_filter_t *self, const struct iovec *iov,
                    int iovcnt, unsigned flags)
{
    char *up = rp_arena_alloc(rq->arena, 64);
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        for (size_t k = 0; k < iov[i].iov_len && n < 64; k++) {
            char ch = ((const char *)iov[i].iov_base)[k];
            up[n++] = (char)(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
        }
    struct iovec out = {up, n};
    return rp_http_next_body(rq, self, &out, n ? 1 : 0, flags);
}

START_TEST(test_filters_run_in_rank_order_and_may_change_status_and_body)
{
    rp_http_add_header_filter(&cf, 500, "one", hf_one);
    rp_http_add_header_filter(&cf, 100, "two", hf_two);
    rp_http_add_body_filter(&cf, 300, "upper", bf_upper);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "content h100 h500");
    ck_assert_int_eq(status_sent, 203);
    body[body_len] = '\0';
    ck_assert_str_eq(body, "DONE");
}
END_TEST

/* A filter that holds everything back until a timer lets it go. */
static struct evbuffer *held_buf;
static const rp_http_body_filter_t *held_self;
static unsigned held_flags;

static void let_go(evutil_socket_t fd, short what, void *arg)
{
    rp_request_t *rq = arg;
    size_t n = evbuffer_get_length(held_buf);
    struct iovec iov = {evbuffer_pullup(held_buf, -1), n};
    rq->held = 0;
    note("let-go");
    unsigned f = held_flags;
    rp_http_next_body(rq, held_self, &iov, n ? 1 : 0, 0);
    evbuffer_drain(held_buf, n);
    if (f & RP_BODY_LAST)
        rp_http_next_body(rq, held_self, NULL, 0, RP_BODY_LAST);
    else
        rp_http_filter_drained(rq);
}

static int bf_hold(rp_request_t *rq, const rp_http_body_filter_t *self, const struct iovec *iov,
                   int iovcnt, unsigned flags)
{
    static struct event ev;
    held_self = self;
    held_flags = flags;
    for (int i = 0; i < iovcnt; i++)
        evbuffer_add(held_buf, iov[i].iov_base, iov[i].iov_len);
    rq->held = evbuffer_get_length(held_buf);
    evtimer_assign(&ev, rp_event_base, let_go, rq);
    struct timeval tv = {0, 10000};
    evtimer_add(&ev, &tv);
    return 0;
}

static void producer_drained(rp_request_t *rq)
{
    note("drained");
    rp_http_response_end(rq);
}

static int h_stream(rp_request_t *rq)
{
    rq->status = 200;
    rp_http_response_begin(rq, -1);
    struct iovec iov = {(void *)"abc", 3};
    rp_http_write(rq, &iov, 1);
    if (rp_http_pending(rq)) {
        note("waits");
        rq->on_drain = producer_drained;
        return RP_DONE;
    }
    rp_http_response_end(rq);
    return RP_DONE;
}

START_TEST(test_a_filter_holding_data_makes_the_producer_wait_until_it_lets_go)
{
    held_buf = evbuffer_new();
    rp_http_add_body_filter(&cf, 300, "hold", bf_hold);
    add(RP_PHASE_CONTENT, h_stream);
    rp_http_run_phases(r);
    ck_assert_str_eq(trace, "waits");
    ck_assert_uint_eq(body_len, 0);
    run_loop();
    ck_assert_str_eq(trace, "waits let-go drained let-go");
    body[body_len] = '\0';
    ck_assert_str_eq(body, "abc");
    ck_assert_int_eq(ends, 1);
    evbuffer_free(held_buf);
}
END_TEST

/* A header filter that waits for a timer before the head may go on. */
static const rp_http_header_filter_t *waiting_self;

static void head_go(evutil_socket_t fd, short what, void *arg)
{
    rp_request_t *rq = arg;
    note("head-go");
    rp_http_header_resume(rq, waiting_self);
}

static int hf_wait(rp_request_t *rq, const rp_http_header_filter_t *self)
{
    static struct event ev;
    note("head-wait");
    waiting_self = self;
    evtimer_assign(&ev, rp_event_base, head_go, rq);
    struct timeval tv = {0, 10000};
    evtimer_add(&ev, &tv);
    return RP_AGAIN;
}

START_TEST(test_a_header_filter_may_wait_and_the_body_follows_its_head)
{
    rp_http_add_header_filter(&cf, 300, "wait", hf_wait);
    add(RP_PHASE_CONTENT, h_stream);
    rp_http_run_phases(r);
    /* the producer wrote and waits: nothing reached the protocol, not even the head */
    ck_assert_str_eq(trace, "head-wait waits");
    ck_assert_int_eq(heads, 0);
    ck_assert_uint_eq(body_len, 0);
    ck_assert(!rp_http_head_sent(r));
    run_loop();
    ck_assert_str_eq(trace, "head-wait waits head-go drained");
    ck_assert_int_eq(heads, 1);
    body[body_len] = '\0';
    ck_assert_str_eq(body, "abc");
    ck_assert_int_eq(ends, 1);
}
END_TEST

static Suite *phases_suite(void)
{
    Suite *s = suite_create("phases");
    TCase *tc = tcase_create("runner");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_declined_tries_the_next_handler_of_the_same_phase);
    tcase_add_test(tc, test_ok_skips_the_rest_of_the_phase);
    tcase_add_test(tc, test_access_grant_under_all_asks_the_next_check);
    tcase_add_test(tc, test_access_first_denial_under_all_answers);
    tcase_add_test(tc, test_access_grant_under_any_ends_the_phase_and_drops_the_challenge);
    tcase_add_test(tc, test_access_without_a_grant_under_any_prefers_401);
    tcase_add_test(tc, test_access_is_skipped_by_subrequests);
    tcase_add_test(tc, test_done_stops_the_phases);
    tcase_add_test(tc, test_error_answers_500_and_stops);
    tcase_add_test(tc, test_no_content_handler_answers_404);
    tcase_add_test(tc, test_location_content_handler_runs_before_the_phase_handlers);
    tcase_add_test(tc, test_again_suspends_and_a_timer_resumes_the_same_handler);
    tcase_add_test(tc, test_resume_runs_from_the_loop_never_inside_the_caller);
    tcase_add_test(tc, test_cleanups_run_once_newest_first_when_the_response_completes);
    tcase_add_test(tc, test_cleanups_run_once_when_the_client_leaves_a_suspended_request);
    tcase_add_test(tc, test_cleanups_run_early_once_when_a_handler_answers_in_their_place);
    tcase_add_test(tc, test_a_request_resumed_after_it_ended_stays_ended);
    tcase_add_test(tc, test_internal_redirect_restarts_the_phases_at_the_new_location);
    tcase_add_test(tc, test_redirect_loop_ends_with_500_after_ten);
    tcase_add_test(tc, test_changed_uri_finds_the_location_again_after_rewrite);
    tcase_add_test(tc, test_filters_run_in_rank_order_and_may_change_status_and_body);
    tcase_add_test(tc, test_a_filter_holding_data_makes_the_producer_wait_until_it_lets_go);
    tcase_add_test(tc, test_a_header_filter_may_wait_and_the_body_follows_its_head);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(phases_suite());
}
