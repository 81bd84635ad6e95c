/*
 * Subrequests and kept request bodies (src/http/subrequest.c,
 * src/http/request_body.c) without a socket: a loaded configuration, a parent
 * request on a hand-made connection whose protocol is a stub (its body comes in
 * pieces the test hands out), handlers the tests add to the phases, and a real event
 * loop. What a background subrequest must do: start from the loop, see its own URI
 * and the parent's fields, reach `internal` locations, outlive its parent (whose
 * memory is gone before it even starts), free itself, and end when the worker stops.
 */
#include "http/request.h"
#include "net/conn.h"
#include "net/listen.h"
#include "unit.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdarg.h>

static rp_cycle_t *cycle;
static rp_conf_t cf;
static rp_arena_t *parent_arena;
static rp_request_t *parent;
static rp_conn_t parent_conn;
static rp_listening_t listening;
static rp_header_t parent_headers[4];

/* the parent's body, handed out by the stub as the test allows */
static const char *body_src;
static size_t body_len, body_given, body_allowed;

/* what the handlers saw, "..." notes */
static char trace[2048];

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    size_t n = strlen(trace);
    if (n)
        trace[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trace + n, sizeof(trace) - n, fmt, ap);
    va_end(ap);
}

/* ---- the parent's protocol ---- */

static int stub_send_head(rp_request_t *rq)
{
    note("P%d", rq->status);
    return 0;
}

static int stub_send_body(rp_request_t *rq, const struct iovec *iov, int iovcnt, unsigned flags)
{
    if (flags & RP_BODY_LAST)
        rp_http_request_end(rq);
    return 0;
}

static int stub_flush_head(rp_request_t *rq)
{
    return 0;
}

static int stub_head_sent(const rp_request_t *rq)
{
    return rq->header_sent;
}

static void stub_abort(rp_request_t *rq)
{
    note("P-abort");
    rp_http_request_end(rq);
}

static size_t stub_pending(const rp_request_t *rq)
{
    return 0;
}

static int stub_read_body(rp_request_t *rq, char *buf, size_t cap, size_t *n)
{
    size_t take = body_allowed - body_given;
    if (take > cap)
        take = cap;
    memcpy(buf, body_src + body_given, take);
    body_given += take;
    *n = take;
    return body_given == body_len ? 1 : 0;
}

static int stub_trailers(rp_request_t *rq, const rp_header_t *h, unsigned n)
{
    return -1;
}

static const rp_http_proto_t stub = {
    "stub",     stub_send_head, stub_send_body, stub_flush_head, stub_head_sent,
    stub_abort, stub_pending,   stub_read_body, stub_abort,      stub_trailers,
};

/* ---- set up ---- */

static void setup(void)
{
    ut_setup_dir();
    rp_event_base = event_base_new();
    cycle = ut_load_ok("http {\n"
                       "    access_log off;\n"
                       "    server {\n"
                       "        listen 127.0.0.1:8080;\n"
                       "        location / { }\n"
                       "        location = /sub { internal; }\n"
                       "    }\n"
                       "}\n");
    memset(&cf, 0, sizeof(cf));
    cf.cycle = cycle;
    cf.arena = cycle->arena;

    memset(&listening, 0, sizeof(listening));
    struct sockaddr_in *sin = (struct sockaddr_in *)&listening.sa;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(8080);
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    listening.socklen = sizeof(*sin);
    listening.cycle = cycle;
    memset(&parent_conn, 0, sizeof(parent_conn));
    parent_conn.fd = -1;
    parent_conn.ls = &listening;
    parent_conn.peer.sin.sin_family = AF_INET;
    parent_conn.peer.sin.sin_port = htons(5555);
    inet_pton(AF_INET, "10.1.2.3", &parent_conn.peer.sin.sin_addr);
    parent_conn.peerlen = sizeof(parent_conn.peer.sin);
    parent_conn.number = 7;

    parent_arena = rp_arena_create(8192);
    parent = rp_http_request_new(&parent_conn, parent_arena, &stub);
    parent->srv = ut_server(cycle, 0);
    parent->clcf = ut_srv_loc(parent->srv);
    parent->loc_conf = parent->clcf->loc_conf;
    parent->method = RP_STR("POST");
    parent->request_uri = RP_STR("/a?x=1");
    parent->uri = RP_STR("/a");
    parent->args = RP_STR("x=1");
    parent->host = RP_STR("example.com");
    parent->scheme = RP_STR("http");
    parent->version = 11;
    parent_headers[0] = (rp_header_t){RP_STR("X-Test"), RP_STR("yes")};
    parent_headers[1] = (rp_header_t){RP_STR("Connection"), RP_STR("keep-alive")};
    parent_headers[2] = (rp_header_t){RP_STR("Content-Length"), RP_STR("11")};
    parent->headers = parent_headers;
    parent->nheaders = 3;
    body_src = "hello world";
    body_len = 11;
    body_given = 0;
    body_allowed = body_len;
    parent->content_length = 11;
    trace[0] = '\0';
}

static void teardown(void)
{
    if (parent_arena)
        rp_arena_destroy(parent_arena);
    rp_conn_close_all();
    rp_cycle_destroy(cycle);
    event_base_free(rp_event_base);
    rp_event_base = NULL;
    ut_teardown_dir();
}

static void run_loop(void)
{
    event_base_dispatch(rp_event_base);
}

static void add(rp_phase_t phase, rp_phase_handler_pt h)
{
    rp_http_add_phase_handler(&cf, phase, h);
}

/* Reads r's whole body as a content handler would; "" for none. */
static const char *read_all(rp_request_t *r)
{
    static char buf[256];
    size_t got = 0, n;
    int rc;
    do {
        rc = rp_http_read_body(r, buf + got, sizeof(buf) - 1 - got, &n);
        got += n;
    } while (rc == 0 && n > 0);
    buf[got] = '\0';
    return rc == 1 ? buf : "(incomplete)";
}

/* ---- handlers ---- */

static rp_request_t *made;
static unsigned sub_flags;

/* The parent's: keeps the body (with SUB_BODY) and makes one subrequest to /sub. */
static int h_make(rp_request_t *r)
{
    if (r->subrequest)
        return RP_DECLINED;
    if (sub_flags & RP_HTTP_SUB_BODY) {
        int rc = rp_http_keep_body(r);
        if (rc != RP_OK) {
            note("keep=%s", rc == RP_AGAIN ? "again" : "other");
            return rc;
        }
    }
    ck_assert_int_eq(rp_http_subrequest(r, RP_STR("/sub"), r->args, sub_flags, &made), RP_OK);
    rp_http_subrequest_method(made, r->method);
    note("made");
    return RP_DECLINED;
}

static void cleanup_note(rp_request_t *r, void *data)
{
    note("%s-cleanup", (const char *)data);
}

/* Both requests' content: says who it is and what it got, then answers. */
static int h_content(rp_request_t *r)
{
    if (r->subrequest) {
        ck_assert_ptr_ne(r->conn, &parent_conn);
        ck_assert_str_eq(r->clcf->name, "/sub");
        ck_assert(r->internal);
        ck_assert(rp_str_eq(r->uri, "/sub"));
        ck_assert(rp_str_eq(r->args, "x=1"));
        ck_assert(rp_str_eq(r->request_uri, "/a?x=1"));
        ck_assert(rp_str_eq(r->host, "example.com"));
        ck_assert(rp_str_eq(rp_request_header(r, "x-test"), "yes"));
        ck_assert_ptr_null(rp_request_header(r, "connection").data);
        ck_assert(rp_str_eq(rp_http_remote_addr(r), "10.1.2.3"));
        ck_assert_uint_eq(r->conn->number, 7);
        rp_http_cleanup_add(r, cleanup_note, "S");
        note("S:%.*s:%s:cl=%lld", (int)r->method.len, r->method.data, read_all(r),
             (long long)r->content_length);
    } else {
        rp_http_cleanup_add(r, cleanup_note, "P");
        note("P:%s", read_all(r));
    }
    return rp_http_send_response(r, 200, RP_STR("text/plain"), RP_STR("ok"));
}

/* ---- tests ---- */

START_TEST(test_background_subrequest_starts_from_the_loop_and_outlives_its_parent)
{
    sub_flags = RP_HTTP_SUB_BACKGROUND;
    add(RP_PHASE_PRECONTENT, h_make);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(parent);
    /* the parent answered and ended; the subrequest did not start within it */
    ck_assert_str_eq(trace, "made P:hello world P200 P-cleanup");
    ck_assert_uint_eq(rp_conn_count(), 1); /* the subrequest's stand-in connection */
    /* the parent's memory goes (its connection's next request reuses it) */
    rp_arena_destroy(parent_arena);
    parent_arena = NULL;
    run_loop();
    ck_assert_str_eq(trace, "made P:hello world P200 P-cleanup S:POST::cl=-1 S-cleanup");
    ck_assert_uint_eq(rp_conn_count(), 0); /* it freed itself */
}
END_TEST

START_TEST(test_subrequest_sends_the_kept_body_read_whole_first)
{
    sub_flags = RP_HTTP_SUB_BACKGROUND | RP_HTTP_SUB_BODY;
    body_allowed = 5; /* the client sent "hello" so far */
    add(RP_PHASE_PRECONTENT, h_make);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(parent);
    ck_assert_str_eq(trace, "keep=again");
    ck_assert_ptr_nonnull(parent->on_body);
    /* the rest arrives: the protocol calls on_body, the phases resume from the loop */
    body_allowed = body_len;
    void (*fn)(rp_request_t *) = parent->on_body;
    parent->on_body = NULL;
    fn(parent);
    ck_assert_str_eq(trace, "keep=again");
    run_loop();
    /* the parent reads the kept body through rp_http_read_body, as its proxy would, and
     * the subrequest its own copy of it, after the parent is gone */
    ck_assert_str_eq(trace, "keep=again made P:hello world P200 P-cleanup "
                            "S:POST:hello world:cl=11 S-cleanup");
    ck_assert_uint_eq(rp_conn_count(), 0);
}
END_TEST

static int h_sub_waits(rp_request_t *r)
{
    if (!r->subrequest)
        return RP_DECLINED;
    rp_http_cleanup_add(r, cleanup_note, "S");
    note("S-waits");
    return RP_AGAIN; /* an upstream that never answers */
}

START_TEST(test_worker_stop_ends_a_waiting_subrequest_and_frees_it)
{
    sub_flags = RP_HTTP_SUB_BACKGROUND;
    add(RP_PHASE_PRECONTENT, h_make);
    add(RP_PHASE_CONTENT, h_sub_waits);
    add(RP_PHASE_CONTENT, h_content);
    rp_http_run_phases(parent);
    run_loop();
    ck_assert_str_eq(trace, "made P:hello world P200 P-cleanup S-waits");
    ck_assert_uint_eq(rp_conn_count(), 1);
    rp_conn_close_all(); /* worker_shutdown_timeout, or a fast stop */
    ck_assert_str_eq(trace, "made P:hello world P200 P-cleanup S-waits S-cleanup");
    ck_assert_uint_eq(rp_conn_count(), 0);
}
END_TEST

START_TEST(test_internal_location_refuses_a_client_request_with_404)
{
    add(RP_PHASE_CONTENT, h_content);
    parent->uri = RP_STR("/sub");
    rp_http_run_phases(parent);
    ck_assert_str_eq(trace, "P404");
}
END_TEST

START_TEST(test_subrequest_of_a_body_not_kept_is_refused)
{
    rp_request_t *sr = NULL;
    ck_assert_int_eq(rp_http_subrequest(parent, RP_STR("/sub"), RP_STR(""),
                                        RP_HTTP_SUB_BACKGROUND | RP_HTTP_SUB_BODY, &sr),
                     RP_ERROR);
    ck_assert_ptr_null(sr);
    ck_assert_uint_eq(rp_conn_count(), 0);
}
END_TEST

static Suite *subrequest_suite(void)
{
    Suite *s = suite_create("subrequest");
    TCase *tc = tcase_create("background");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_background_subrequest_starts_from_the_loop_and_outlives_its_parent);
    tcase_add_test(tc, test_subrequest_sends_the_kept_body_read_whole_first);
    tcase_add_test(tc, test_worker_stop_ends_a_waiting_subrequest_and_frees_it);
    tcase_add_test(tc, test_internal_location_refuses_a_client_request_with_404);
    tcase_add_test(tc, test_subrequest_of_a_body_not_kept_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(subrequest_suite());
}
