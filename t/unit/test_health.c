/*
 * The pure parts of active health checks (src/upstream/health_match.c, health_grpc.c,
 * health_check.c's rp_health_apply): reading a probe's HTTP/1 response however its
 * bytes arrive (Content-Length, chunked, until the close, interim 1xx heads, the body
 * limit), match blocks' tests and their refusals, nginx's default expectation, the
 * HealthCheckResponse decoding of gRPC checks, and how probe outcomes become verdicts
 * (rise, fall, the first check of an unknown peer, the end of an ejection).
 */
#include "upstream/health.h"
#include "unit.h"

static rp_arena_t *arena;

static void setup(void)
{
    arena = rp_arena_create(4096);
}

static void teardown(void)
{
    rp_arena_destroy(arena);
}

/* Feeds text to r one byte at a time: the parser must not care how bytes arrive. */
static int feed_bytewise(rp_health_response_t *r, const char *text)
{
    size_t n = strlen(text);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        rc = rp_health_response_feed(r, text + i, 1);
        if (rc != 0)
            return i + 1 == n ? rc : 100 + rc; /* done early: bytes were left over */
    }
    return rc;
}

static int parsed(rp_health_response_t *r, const char *text)
{
    rp_health_response_init(r);
    return rp_health_response_feed(r, text, strlen(text));
}

static rp_health_match_t *match(const char *const *lines)
{
    rp_health_match_t *m = rp_arena_calloc(arena, sizeof(*m));
    m->name = "m";
    rp_array_init(&m->tests, arena, 4, sizeof(rp_health_test_t));
    for (; *lines; lines++) {
        char *argv[8];
        size_t argc = 0;
        char *copy = rp_arena_strdup(arena, *lines);
        for (char *tok = strtok(copy, " "); tok && argc < 8; tok = strtok(NULL, " "))
            argv[argc++] = tok;
        const char *err = rp_health_match_parse(arena, m, argv, argc);
        ck_assert_msg(err == NULL, "%s: %s", *lines, err);
    }
    return m;
}

static const char *refusal(const char *line)
{
    rp_health_match_t *m = rp_arena_calloc(arena, sizeof(*m));
    rp_array_init(&m->tests, arena, 4, sizeof(rp_health_test_t));
    char *argv[8];
    size_t argc = 0;
    char *copy = rp_arena_strdup(arena, line);
    for (char *tok = strtok(copy, " "); tok && argc < 8; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    return rp_health_match_parse(arena, m, argv, argc);
}

/* Whether the response text passes m (NULL: the default expectation). */
static int passes(const rp_health_match_t *m, const char *text, char *why, size_t whylen)
{
    rp_health_response_t r;
    rp_health_response_init(&r);
    int rc = rp_health_response_feed(&r, text, strlen(text));
    if (rc == 0)
        rc = rp_health_response_end(&r);
    ck_assert_int_eq(rc, 1);
    why[0] = '\0';
    int ok = rp_health_match_check(m, &r, why, whylen);
    rp_health_response_free(&r);
    return ok;
}

/* ---- responses ---- */

START_TEST(test_content_length_body_read_byte_by_byte)
{
    rp_health_response_t r;
    rp_health_response_init(&r);
    ck_assert_int_eq(feed_bytewise(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                       "X-A: b\r\n\r\nhello"),
                     1);
    ck_assert_int_eq(rp_health_response_status(&r), 200);
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert_int_eq(memcmp(r.buf + r.body_off, "hello", 5), 0);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_bytes_past_the_body_are_ignored)
{
    rp_health_response_t r;
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"), 1);
    ck_assert_uint_eq(r.body_len, 2);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_chunked_body_is_decoded)
{
    rp_health_response_t r;
    rp_health_response_init(&r);
    ck_assert_int_eq(feed_bytewise(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       "3\r\n{\"s\r\n8;ext=1\r\n\":\"up\"}\n\r\n0\r\n"
                                       "X-Trailer: 1\r\n\r\n"),
                     1);
    ck_assert_uint_eq(r.body_len, 11);
    ck_assert_int_eq(memcmp(r.buf + r.body_off, "{\"s\":\"up\"}\n", 11), 0);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_interim_responses_are_skipped)
{
    rp_health_response_t r;
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                                "Link: </a>\r\n\r\nHTTP/1.1 503 No\r\nX-Final: 1\r\n"
                                "Content-Length: 0\r\n\r\n"),
                     1);
    ck_assert_int_eq(rp_health_response_status(&r), 503);
    char why[200];
    ck_assert_int_eq(rp_health_match_check(match((const char *const[]){"header X-Final", NULL}), &r,
                                           why, sizeof(why)),
                     1);
    ck_assert_int_eq(rp_health_match_check(match((const char *const[]){"header Link", NULL}), &r,
                                           why, sizeof(why)),
                     0);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_body_until_the_close)
{
    rp_health_response_t r;
    ck_assert_int_eq(parsed(&r, "HTTP/1.0 200 OK\r\n\r\nall of it"), 0);
    ck_assert_int_eq(rp_health_response_end(&r), 1);
    ck_assert_uint_eq(r.body_len, 9);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_no_body_for_204_and_304)
{
    rp_health_response_t r;
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 204 No Content\r\n\r\n"), 1);
    ck_assert_uint_eq(r.body_len, 0);
    rp_health_response_free(&r);
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 304 Not Modified\r\n\r\n"), 1);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_body_beyond_the_limit_is_cut_and_judged)
{
    size_t n = RP_HEALTH_MAX_BODY + 100000;
    char head[100];
    snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    rp_health_response_t r;
    rp_health_response_init(&r);
    ck_assert_int_eq(rp_health_response_feed(&r, head, strlen(head)), 0);
    char *body = malloc(n);
    memset(body, 'x', n);
    memcpy(body + n - 4, "TAIL", 4);
    int rc = 0;
    size_t off = 0;
    while (rc == 0 && off < n) {
        size_t k = n - off < 10000 ? n - off : 10000;
        rc = rp_health_response_feed(&r, body + off, k);
        off += k;
    }
    ck_assert_int_eq(rc, 1);
    ck_assert(off < n); /* it stopped reading */
    ck_assert(r.truncated);
    ck_assert_uint_eq(r.body_len, RP_HEALTH_MAX_BODY);
    char why[200];
    ck_assert_int_eq(rp_health_match_check(match((const char *const[]){"body ~ TAIL", NULL}), &r,
                                           why, sizeof(why)),
                     0);
    free(body);
    rp_health_response_free(&r);
}
END_TEST

START_TEST(test_malformed_and_cut_responses_fail)
{
    rp_health_response_t r;
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 2x0 OK\r\n\r\n"), -1);
    ck_assert_ptr_nonnull(r.error);
    rp_health_response_free(&r);
    ck_assert_int_eq(parsed(&r, "garbage\r\n\r\n"), -1);
    rp_health_response_free(&r);
    ck_assert_int_eq(
        parsed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), -1);
    rp_health_response_free(&r);
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), -1);
    rp_health_response_free(&r);
    /* the close before the promised body ends */
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), 0);
    ck_assert_int_eq(rp_health_response_end(&r), -1);
    ck_assert_str_eq(r.error, "the connection closed before the end of the response body");
    rp_health_response_free(&r);
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 200 OK\r\nCont"), 0);
    ck_assert_int_eq(rp_health_response_end(&r), -1);
    ck_assert_str_eq(r.error, "the connection closed inside the response head");
    rp_health_response_free(&r);
    rp_health_response_init(&r);
    ck_assert_int_eq(rp_health_response_end(&r), -1);
    ck_assert_str_eq(r.error, "the connection closed without a response");
    rp_health_response_free(&r);
    ck_assert_int_eq(parsed(&r, "HTTP/1.1 101 Switching Protocols\r\n\r\n"), -1);
    rp_health_response_free(&r);
}
END_TEST

/* ---- verdicts of matches ---- */

START_TEST(test_default_expectation_is_2xx_or_3xx)
{
    char why[200];
    ck_assert_int_eq(passes(NULL, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", why, 200), 1);
    ck_assert_int_eq(passes(NULL, "HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n", why, 200), 1);
    ck_assert_int_eq(passes(NULL, "HTTP/1.1 399 X\r\nContent-Length: 0\r\n\r\n", why, 200), 1);
    ck_assert_int_eq(passes(NULL, "HTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\n", why, 200), 0);
    ck_assert_str_eq(why, "status 404 (a 2xx or 3xx one passes)");
    ck_assert_int_eq(passes(NULL, "HTTP/1.1 400 X\r\nContent-Length: 0\r\n\r\n", why, 200), 0);
}
END_TEST

START_TEST(test_status_lists_ranges_and_negation)
{
    char why[200];
    const char *ok = "HTTP/1.1 204 OK\r\n\r\n";
    const char *bad = "HTTP/1.1 503 No\r\nContent-Length: 0\r\n\r\n";
    rp_health_match_t *m = match((const char *const[]){"status 200 204", NULL});
    ck_assert_int_eq(passes(m, ok, why, 200), 1);
    ck_assert_int_eq(passes(m, bad, why, 200), 0);
    ck_assert_str_eq(why, "status 503: failed \"status 200 204\" of match \"m\"");
    m = match((const char *const[]){"status 200-299 301-303", NULL});
    ck_assert_int_eq(passes(m, "HTTP/1.1 302 F\r\nContent-Length: 0\r\n\r\n", why, 200), 1);
    ck_assert_int_eq(passes(m, "HTTP/1.1 304 N\r\n\r\n", why, 200), 0);
    m = match((const char *const[]){"status ! 500-599", NULL});
    ck_assert_int_eq(passes(m, "HTTP/1.1 404 N\r\nContent-Length: 0\r\n\r\n", why, 200), 1);
    ck_assert_int_eq(passes(m, bad, why, 200), 0);
    /* a match with no status line takes any status */
    m = match((const char *const[]){"body ~ .*", NULL});
    ck_assert_int_eq(passes(m, bad, why, 200), 1);
}
END_TEST

START_TEST(test_header_tests)
{
    char why[200];
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: application/JSON\r\nX-Role: primary\r\n"
                       "X-Role: ready\r\nContent-Length: 0\r\n\r\n";
    struct {
        const char *line;
        int want;
    } cases[] = {
        {"header x-role", 1},
        {"header ! X-Role", 0},
        {"header ! X-Maintenance", 1},
        {"header X-Missing", 0},
        {"header X-Role = ready", 1}, /* any of the headers of that name */
        {"header X-Role = Ready", 0}, /* values compare exactly */
        {"header X-Role != standby", 1},
        {"header X-Role != primary", 0},
        {"header X-Missing != x", 1}, /* absent: no value is x */
        {"header Content-Type ~ json", 0},
        {"header Content-Type ~* json", 1},
        {"header Content-Type !~ ^text/", 1},
        {"header Content-Type !~* JSON$", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_health_match_t *m = match((const char *const[]){cases[i].line, NULL});
        ck_assert_msg(passes(m, resp, why, sizeof(why)) == cases[i].want, "%s", cases[i].line);
    }
}
END_TEST

START_TEST(test_body_tests_and_all_lines_must_hold)
{
    char why[200];
    const char *up = "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{\"status\": \"UP\"}\n";
    rp_health_match_t *m = match((const char *const[]){"body ~ \"status\":\\s*\"UP\"", NULL});
    ck_assert_int_eq(passes(m, up, why, 200), 1);
    m = match((const char *const[]){"body ~ up", NULL});
    ck_assert_int_eq(passes(m, up, why, 200), 0);
    m = match((const char *const[]){"body ~* up", NULL});
    ck_assert_int_eq(passes(m, up, why, 200), 1);
    m = match((const char *const[]){"body !~ DOWN", NULL});
    ck_assert_int_eq(passes(m, up, why, 200), 1);
    m = match((const char *const[]){"status 200", "header X-Ready", "body ~ UP", NULL});
    ck_assert_int_eq(passes(m, up, why, 200), 0);
    ck_assert_str_eq(why, "status 200: failed \"header X-Ready\" of match \"m\"");
    /* the regex sees the body, not the head */
    m = match((const char *const[]){"body ~ Content", NULL});
    ck_assert_int_eq(passes(m, up, why, 200), 0);
}
END_TEST

START_TEST(test_match_lines_refused)
{
    ck_assert_str_eq(refusal("status"), "no status code in \"status\"");
    ck_assert_str_eq(refusal("status 99"), "invalid status \"99\" (a code from 100 to 599, or a "
                                           "range such as 200-399)");
    ck_assert_ptr_nonnull(refusal("status 600"));
    ck_assert_ptr_nonnull(refusal("status 300-200"));
    ck_assert_ptr_nonnull(refusal("status 2xx"));
    ck_assert_ptr_nonnull(refusal("status 200-"));
    ck_assert_str_eq(refusal("header"), "invalid \"header\" test (header NAME, header ! NAME, or "
                                        "header NAME OP VALUE)");
    ck_assert_str_eq(refusal("header X =~ y"), "invalid operator \"=~\" in \"header\" (=, !=, ~, "
                                               "!~, ~* or !~*)");
    ck_assert_str_eq(refusal("header X(1) = y"), "invalid header name \"X(1)\"");
    ck_assert_ptr_nonnull(refusal("header X ~ ("));
    ck_assert_ptr_nonnull(refusal("body = x"));
    ck_assert_ptr_nonnull(refusal("body ~"));
    ck_assert_str_eq(refusal("require $x"), "unknown test \"require\" (status, header or body)");
}
END_TEST

/* ---- gRPC ---- */

START_TEST(test_health_check_response_decoding)
{
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x08\x01", 2), 1);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x08\x02", 2), 2);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x08\x03", 2), 3);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"", 0), 0); /* UNKNOWN */
    /* fields a later version adds are skipped */
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x12\x03"
                                                             "abc\x08\x01",
                                            7),
                     1);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x08\x01\x1d\x00\x00\x00\x00", 7), 1);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x08\x81\x00", 3), 1);
    /* malformed: a cut varint, a length past the end, a wire type that does not exist */
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x08\x81", 2), -1);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x12\x09"
                                                             "abc",
                                            5),
                     -1);
    ck_assert_int_eq(rp_health_grpc_serving((const uint8_t *)"\x0f\x01", 2), -1);
}
END_TEST

/* ---- verdicts of probes ---- */

static rp_health_conf_t conf_rise_fall(unsigned rise, unsigned fall)
{
    rp_health_conf_t hc;
    memset(&hc, 0, sizeof(hc));
    hc.rise = rise;
    hc.fall = fall;
    return hc;
}

START_TEST(test_first_check_of_an_unknown_peer_decides)
{
    rp_health_conf_t hc = conf_rise_fall(3, 3);
    rp_peer_shared_t sh;
    unsigned passes = 0, fails = 0;
    memset(&sh, 0, sizeof(sh));
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 1000, 0),
                     RP_HEALTH_BECAME_HEALTHY);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health), RP_HEALTH_HEALTHY);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health_since), 1000);
    memset(&sh, 0, sizeof(sh));
    passes = fails = 0;
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 1000, 0),
                     RP_HEALTH_BECAME_UNHEALTHY);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health), RP_HEALTH_UNHEALTHY);
    ck_assert_int_eq(rp_shm_counter_get(&sh.checks), 1);
    ck_assert_int_eq(rp_shm_counter_get(&sh.check_fails), 1);
}
END_TEST

START_TEST(test_fall_failures_in_a_row_and_rise_passes_in_a_row)
{
    rp_health_conf_t hc = conf_rise_fall(2, 3);
    rp_peer_shared_t sh;
    memset(&sh, 0, sizeof(sh));
    rp_shm_counter_set(&sh.health, RP_HEALTH_HEALTHY);
    unsigned passes = 0, fails = 0;
    /* two failures, a pass: the count starts over */
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 1, 0), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 2, 0), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 3, 0), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 4, 0), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 5, 0), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health), RP_HEALTH_HEALTHY);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 6, 0),
                     RP_HEALTH_BECAME_UNHEALTHY);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health_since), 6);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 7, 0), 0);
    /* one pass, a failure, two passes */
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 8, 1), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 9, 1), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 10, 1), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health), RP_HEALTH_UNHEALTHY);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 11, 1),
                     RP_HEALTH_BECAME_HEALTHY | RP_HEALTH_AGAIN);
    ck_assert_int_eq(rp_shm_counter_get(&sh.health), RP_HEALTH_HEALTHY);
    /* with slow_start it ramps up from the moment it came back */
    ck_assert_int_eq(rp_shm_counter_get(&sh.usable_since), 11);
    ck_assert_int_eq(rp_shm_counter_get(&sh.checks), 11);
    ck_assert_int_eq(rp_shm_counter_get(&sh.check_fails), 7);
}
END_TEST

START_TEST(test_a_passing_check_ends_an_ejection_whose_time_is_over)
{
    rp_health_conf_t hc = conf_rise_fall(2, 3);
    rp_peer_shared_t sh;
    memset(&sh, 0, sizeof(sh));
    rp_shm_counter_set(&sh.health, RP_HEALTH_HEALTHY);
    rp_shm_counter_set(&sh.ejected_until, 5000);
    unsigned passes = 0, fails = 0;
    /* before its time: it stays ejected */
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 4999, 0), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejected_until), 5000);
    /* a failing check after its time does not end it */
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 0, 5000, 0), 0);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejected_until), 5000);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 5001, 0),
                     RP_HEALTH_EJECTION_ENDED);
    ck_assert_int_eq(rp_shm_counter_get(&sh.ejected_until), 0);
    ck_assert_int_eq(rp_health_apply(&hc, &sh, &passes, &fails, 1, 5002, 0), 0);
}
END_TEST

static Suite *health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("responses");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_content_length_body_read_byte_by_byte);
    tcase_add_test(tc, test_bytes_past_the_body_are_ignored);
    tcase_add_test(tc, test_chunked_body_is_decoded);
    tcase_add_test(tc, test_interim_responses_are_skipped);
    tcase_add_test(tc, test_body_until_the_close);
    tcase_add_test(tc, test_no_body_for_204_and_304);
    tcase_add_test(tc, test_body_beyond_the_limit_is_cut_and_judged);
    tcase_add_test(tc, test_malformed_and_cut_responses_fail);
    suite_add_tcase(s, tc);

    tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_default_expectation_is_2xx_or_3xx);
    tcase_add_test(tc, test_status_lists_ranges_and_negation);
    tcase_add_test(tc, test_header_tests);
    tcase_add_test(tc, test_body_tests_and_all_lines_must_hold);
    tcase_add_test(tc, test_match_lines_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("grpc");
    tcase_add_test(tc, test_health_check_response_decoding);
    suite_add_tcase(s, tc);

    tc = tcase_create("verdicts");
    tcase_add_test(tc, test_first_check_of_an_unknown_peer_decides);
    tcase_add_test(tc, test_fall_failures_in_a_row_and_rise_passes_in_a_row);
    tcase_add_test(tc, test_a_passing_check_ends_an_ejection_whose_time_is_over);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(health_suite());
}
