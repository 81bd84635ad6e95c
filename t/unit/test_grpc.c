/*
 * gRPC's pieces that need no socket: the grpc-timeout format both ways, the
 * gRPC status rampart answers for an HTTP error status, the status fields
 * (grpc-message percent-encoded), and the configuration of grpc_pass and of
 * `http2` in an upstream block.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "http/grpc.h"
#include "upstream/proxy.h"
#include "unit.h"

#include <string.h>

static int64_t parse(const char *v)
{
    return rp_grpc_timeout_parse((rp_str_t){v, strlen(v)});
}

static const char *format(int64_t ms)
{
    static char buf[16];
    size_t n = rp_grpc_timeout_format(ms, buf);
    buf[n] = '\0';
    return buf;
}

/* ---- grpc-timeout ---- */

START_TEST(test_timeout_units_convert_to_milliseconds)
{
    ck_assert_int_eq(parse("2H"), 7200000);
    ck_assert_int_eq(parse("3M"), 180000);
    ck_assert_int_eq(parse("5S"), 5000);
    ck_assert_int_eq(parse("100m"), 100);
    ck_assert_int_eq(parse("0m"), 0);
    ck_assert_int_eq(parse("99999999S"), 99999999000LL);
}
END_TEST

START_TEST(test_timeout_below_a_millisecond_rounds_up)
{
    ck_assert_int_eq(parse("1u"), 1);
    ck_assert_int_eq(parse("1000u"), 1);
    ck_assert_int_eq(parse("1001u"), 2);
    ck_assert_int_eq(parse("1n"), 1);
    ck_assert_int_eq(parse("2000000n"), 2);
}
END_TEST

START_TEST(test_malformed_timeouts_are_refused)
{
    ck_assert_int_eq(parse(""), -1);
    ck_assert_int_eq(parse("S"), -1);
    ck_assert_int_eq(parse("10"), -1);
    ck_assert_int_eq(parse("10s"), -1);        /* units are case-sensitive */
    ck_assert_int_eq(parse("123456789S"), -1); /* at most 8 digits */
    ck_assert_int_eq(parse("-1S"), -1);
    ck_assert_int_eq(parse("1 S"), -1);
}
END_TEST

START_TEST(test_timeout_is_written_in_milliseconds_while_it_fits)
{
    ck_assert_str_eq(format(0), "0m");
    ck_assert_str_eq(format(-5), "0m");
    ck_assert_str_eq(format(1234), "1234m");
    ck_assert_str_eq(format(99999999), "99999999m");
    ck_assert_str_eq(format(100000000), "100000S");
    ck_assert_str_eq(format(100000001), "100001S"); /* rounded up, never shorter */
    ck_assert_int_eq(parse(format(4567)), 4567);
}
END_TEST

/* ---- statuses ---- */

/* found by fuzzing (fuzz_grpc_timeout): past 99999999 seconds the value is written in
 * hours, and was rounded down, so the upstream got a deadline up to an hour shorter than
 * the client's */
START_TEST(test_timeout_written_in_hours_rounds_up)
{
    ck_assert_str_eq(format(100000000000LL), "27778H"); /* 27777.8 hours */
    ck_assert_int_ge(parse(format(105690555228469LL)), 105690555228469LL);
    ck_assert_str_eq(format(27778LL * 3600000), "27778H"); /* exact: unchanged */
    ck_assert_str_eq(format(99999999LL * 3600000), "99999999H");
    ck_assert_str_eq(format(INT64_MAX), "99999999H"); /* the most the format holds */
}
END_TEST

/* found by fuzzing (fuzz_grpc_timeout): just past 99999999 seconds, rounding up made a
 * ninth digit, a value gRPC servers refuse (TimeoutValue is at most 8 digits) */
START_TEST(test_timeout_rounded_up_keeps_eight_digits)
{
    ck_assert_str_eq(format(99999999000LL), "99999999S");
    ck_assert_str_eq(format(99999999001LL), "27778H");
    ck_assert_int_ge(parse(format(99999999001LL)), 99999999001LL);
}
END_TEST

START_TEST(test_http_errors_map_to_grpc_statuses)
{
    ck_assert_int_eq(rp_grpc_status_of_http(502), RP_GRPC_UNAVAILABLE);
    ck_assert_int_eq(rp_grpc_status_of_http(503), RP_GRPC_UNAVAILABLE);
    ck_assert_int_eq(rp_grpc_status_of_http(504), RP_GRPC_UNAVAILABLE);
    ck_assert_int_eq(rp_grpc_status_of_http(429), RP_GRPC_UNAVAILABLE);
    ck_assert_int_eq(rp_grpc_status_of_http(404), RP_GRPC_UNIMPLEMENTED);
    ck_assert_int_eq(rp_grpc_status_of_http(403), RP_GRPC_PERMISSION_DENIED);
    ck_assert_int_eq(rp_grpc_status_of_http(401), RP_GRPC_UNAUTHENTICATED);
    ck_assert_int_eq(rp_grpc_status_of_http(413), RP_GRPC_RESOURCE_EXHAUSTED);
    ck_assert_int_eq(rp_grpc_status_of_http(500), RP_GRPC_INTERNAL);
    ck_assert_int_eq(rp_grpc_status_of_http(400), RP_GRPC_INTERNAL);
}
END_TEST

START_TEST(test_grpc_message_is_percent_encoded)
{
    rp_arena_t *a = rp_arena_create(1024);
    rp_request_t r;
    memset(&r, 0, sizeof(r));
    r.arena = a;
    rp_header_t f[2];
    rp_grpc_status_fields(&r, 14, "100% gone\n\xc3\xa9", f);
    ck_assert(rp_str_eq(f[0].name, "grpc-status") && rp_str_eq(f[0].value, "14"));
    ck_assert(rp_str_eq(f[1].name, "grpc-message"));
    ck_assert(rp_str_eq(f[1].value, "100%25 gone%0A%C3%A9"));
    rp_arena_destroy(a);
}
END_TEST

/* ---- configuration ---- */

static const char *grpc_conf(const char *location)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "http {\n upstream g { server 127.0.0.1:9; }\n server {\n listen 127.0.0.1:1;\n"
             " location / { %s }\n }\n}\n",
             location);
    return buf;
}

START_TEST(test_grpc_pass_accepts_a_group_or_an_address)
{
    ut_setup_dir();
    rp_cycle_destroy(ut_load_ok(grpc_conf("grpc_pass grpc://g;")));
    rp_cycle_destroy(ut_load_ok(grpc_conf("grpc_pass grpc://127.0.0.1:50051;")));
    rp_cycle_destroy(ut_load_ok(grpc_conf("grpc_pass 127.0.0.1:50051;")));
    rp_cycle_destroy(ut_load_ok(grpc_conf("grpc_pass grpcs://g;")));
    rp_cycle_destroy(
        ut_load_ok(grpc_conf("grpc_pass grpcs://127.0.0.1:50051; "
                             "grpc_ssl_server_name on; grpc_ssl_name a.test; "
                             "grpc_ssl_protocols TLSv1.3; grpc_ssl_session_reuse off;")));
    rp_cycle_destroy(ut_load_ok(grpc_conf("grpc_pass grpc://g; grpc_read_timeout 5m; "
                                          "grpc_send_timeout 1s; grpc_connect_timeout 2s; "
                                          "grpc_set_header x-a b; grpc_hide_header x-c;")));
    ut_teardown_dir();
}
END_TEST

START_TEST(test_grpc_pass_refusals_name_the_cause)
{
    ut_setup_dir();
    /* the grpc_ssl_* settings' own errors name the grpc_ssl_* directive */
    ut_expect_error(grpc_conf("grpc_pass grpcs://g; grpc_ssl_verify on;"),
                    "@/rampart.conf:5: \"grpc_ssl_verify\": no \"grpc_ssl_trusted_certificate\" "
                    "is defined for it");
    ut_expect_error(grpc_conf("grpc_pass grpc://g/x;"),
                    "@/rampart.conf:5: \"grpc_pass\": \"grpc_pass\" cannot have a URI part in "
                    "\"grpc://g/x\"");
    ut_expect_error(grpc_conf("grpc_pass http://g;"),
                    "@/rampart.conf:5: \"grpc_pass\": invalid URL prefix in \"http://g\" "
                    "(expected grpc:// or grpcs://)");
    ut_expect_error(grpc_conf("grpc_pass grpc://g; proxy_pass http://g;"),
                    "@/rampart.conf:5: \"grpc_pass\": \"grpc_pass\" and \"proxy_pass\" in the "
                    "same location");
    ut_expect_error(grpc_conf("grpc_pass grpc://g; grpc_set_header TE x;"),
                    "@/rampart.conf:5: \"grpc_set_header\": \"TE\" cannot be set: rampart "
                    "writes it itself");
    ut_teardown_dir();
}
END_TEST

START_TEST(test_http2_in_an_upstream_block)
{
    ut_setup_dir();
    rp_cycle_t *c = ut_load_ok("http {\n upstream a { server 127.0.0.1:9; http2; }\n"
                               " server { listen 127.0.0.1:1; location / { proxy_pass http://a; }"
                               " }\n}\n");
    rp_http_core_srv_conf_t *srv = ut_server(c, 0);
    rp_http_core_loc_conf_t *root = ut_loc(ut_srv_loc(srv), "/");
    rp_proxy_loc_conf_t *p = root->loc_conf[rp_proxy_module.index];
    ck_assert_ptr_nonnull(p->upstream);
    ck_assert(p->upstream->http2);
    rp_cycle_destroy(c);
    ut_expect_error("http {\n upstream a { server 127.0.0.1:9; http2; http2; }\n}\n",
                    "@/rampart.conf:2: \"http2\": is duplicate");
    ut_expect_error("http {\n upstream a { server 127.0.0.1:9; http2 on; }\n}\n",
                    "@/rampart.conf:2: \"http2\": takes 0 arguments, got 1");
    ut_teardown_dir();
}
END_TEST

static Suite *grpc_suite(void)
{
    Suite *s = suite_create("grpc");
    TCase *tc = tcase_create("grpc-timeout");
    tcase_add_test(tc, test_timeout_units_convert_to_milliseconds);
    tcase_add_test(tc, test_timeout_below_a_millisecond_rounds_up);
    tcase_add_test(tc, test_malformed_timeouts_are_refused);
    tcase_add_test(tc, test_timeout_is_written_in_milliseconds_while_it_fits);
    tcase_add_test(tc, test_timeout_written_in_hours_rounds_up);
    tcase_add_test(tc, test_timeout_rounded_up_keeps_eight_digits);
    suite_add_tcase(s, tc);

    tc = tcase_create("statuses");
    tcase_add_test(tc, test_http_errors_map_to_grpc_statuses);
    tcase_add_test(tc, test_grpc_message_is_percent_encoded);
    suite_add_tcase(s, tc);

    tc = tcase_create("configuration");
    tcase_add_test(tc, test_grpc_pass_accepts_a_group_or_an_address);
    tcase_add_test(tc, test_grpc_pass_refusals_name_the_cause);
    tcase_add_test(tc, test_http2_in_an_upstream_block);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(grpc_suite());
}
