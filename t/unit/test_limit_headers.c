/*
 * The text of the RateLimit fields (src/limit/limit_headers.c) as
 * draft-ietf-httpapi-ratelimit-headers-10 writes it: one Structured Field List item
 * per policy, its name an sf-string, its parameters q, qu, w (RateLimit-Policy) and
 * r, t (RateLimit); and the Retry-After a refusal carries. That a response carries
 * them is t/integration/test_limit_headers.py's to show.
 */
#include "limit/limit_headers.h"
#include "unit.h"

#include <string.h>

static const rp_limit_report_t day = {
    .policy = "day", .quota = 1000, .window = 86400, .remaining = 999, .reset = 3600};
static const rp_limit_report_t conn = {.policy = "conn", .quota = 10, .window = 0, .remaining = 7};

START_TEST(test_one_window_policy_is_written_as_the_draft_example)
{
    char buf[256];
    ck_assert_uint_eq(rp_limit_policy_field(&day, 1, buf, sizeof(buf)), 20);
    ck_assert_str_eq(buf, "\"day\";q=1000;w=86400");
    ck_assert_uint_eq(rp_limit_field(&day, 1, buf, sizeof(buf)), 18);
    ck_assert_str_eq(buf, "\"day\";r=999;t=3600");
}
END_TEST

START_TEST(test_a_concurrency_limit_has_a_quota_unit_and_no_window_or_reset)
{
    char buf[256];
    rp_limit_policy_field(&conn, 1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"conn\";q=10;qu=\"concurrent-requests\"");
    rp_limit_field(&conn, 1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"conn\";r=7");
}
END_TEST

START_TEST(test_several_policies_are_listed_in_the_order_reported)
{
    rp_limit_report_t reps[2] = {day, conn};
    char buf[256];
    rp_limit_policy_field(reps, 2, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"day\";q=1000;w=86400, \"conn\";q=10;qu=\"concurrent-requests\"");
    rp_limit_field(reps, 2, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"day\";r=999;t=3600, \"conn\";r=7");
}
END_TEST

START_TEST(test_policy_names_are_escaped_into_valid_sf_strings)
{
    rp_limit_report_t r = day;
    r.policy = "a\"b\\c\x01\xc3\xa9";
    char buf[256];
    rp_limit_field(&r, 1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"a\\\"b\\\\c???\";r=999;t=3600");
}
END_TEST

START_TEST(test_negative_numbers_are_written_as_zero)
{
    rp_limit_report_t r = day;
    r.remaining = -5;
    r.reset = -1;
    r.quota = -2;
    char buf[256];
    rp_limit_field(&r, 1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"day\";r=0;t=0");
    rp_limit_policy_field(&r, 1, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"day\";q=0;w=86400");
}
END_TEST

START_TEST(test_a_short_buffer_gets_a_truncated_text_and_the_length_needed)
{
    char buf[8];
    size_t need = rp_limit_field(&day, 1, buf, sizeof(buf));
    ck_assert_uint_eq(need, strlen("\"day\";r=999;t=3600"));
    ck_assert_str_eq(buf, "\"day\";r");
    ck_assert_uint_eq(rp_limit_field(&day, 1, NULL, 0), need);
}
END_TEST

START_TEST(test_retry_after_is_the_longest_wait_among_the_refusals)
{
    rp_limit_report_t reps[3] = {day, conn, day};
    ck_assert_int_eq(rp_limit_retry_after(reps, 3), 0); /* none refused */
    reps[0].refused = 1;
    reps[0].retry_after = 30;
    reps[1].refused = 1;
    reps[1].retry_after = 0;   /* a refusal always waits at least a second */
    reps[2].retry_after = 500; /* not refusing: not counted */
    ck_assert_int_eq(rp_limit_retry_after(reps, 3), 30);
    ck_assert_int_eq(rp_limit_retry_after(reps + 1, 1), 1);
}
END_TEST

static Suite *headers_suite(void)
{
    Suite *s = suite_create("limit_headers");
    TCase *tc = tcase_create("fields");
    tcase_add_test(tc, test_one_window_policy_is_written_as_the_draft_example);
    tcase_add_test(tc, test_a_concurrency_limit_has_a_quota_unit_and_no_window_or_reset);
    tcase_add_test(tc, test_several_policies_are_listed_in_the_order_reported);
    tcase_add_test(tc, test_policy_names_are_escaped_into_valid_sf_strings);
    tcase_add_test(tc, test_negative_numbers_are_written_as_zero);
    tcase_add_test(tc, test_a_short_buffer_gets_a_truncated_text_and_the_length_needed);
    tcase_add_test(tc, test_retry_after_is_the_longest_wait_among_the_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(headers_suite());
}
