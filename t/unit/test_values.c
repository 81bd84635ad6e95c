/*
 * Value parsers: sizes ("10k"), times ("1m30s"), bounded integers and on/off
 * flags. They follow nginx's spelling; what they refuse matters as much as what
 * they accept, since a refused value is a configuration error with a line number
 * and an accepted one is silently in effect.
 */
#include "conf/conf.h"
#include "unit.h"

#include <limits.h>
#include <stdint.h>

#define SENTINEL_SIZE ((size_t)0x5a5a5a5a)
#define SENTINEL_MSEC ((int64_t)0x5a5a5a5a)

static size_t size_of(const char *s)
{
    size_t v = SENTINEL_SIZE;
    ck_assert_msg(rp_parse_size(s, &v) == 0, "size \"%s\" refused", s);
    return v;
}

static int size_refused(const char *s)
{
    size_t v = SENTINEL_SIZE;
    int rc = rp_parse_size(s, &v);
    /* a refused value must leave the destination alone */
    return rc == -1 && v == SENTINEL_SIZE;
}

static int64_t msec_of(const char *s)
{
    int64_t v = SENTINEL_MSEC;
    ck_assert_msg(rp_parse_msec(s, &v) == 0, "time \"%s\" refused", s);
    return v;
}

static int msec_refused(const char *s)
{
    int64_t v = SENTINEL_MSEC;
    int rc = rp_parse_msec(s, &v);
    return rc == -1 && v == SENTINEL_MSEC;
}

static int int_refused(const char *s, long max)
{
    long v = 12345;
    int rc = rp_parse_int(s, max, &v);
    return rc == -1 && v == 12345;
}

/* sizes */

START_TEST(test_size_without_unit_is_bytes)
{
    ck_assert_uint_eq(size_of("512"), 512);
    ck_assert_uint_eq(size_of("1"), 1);
}
END_TEST

START_TEST(test_size_units_are_powers_of_1024)
{
    ck_assert_uint_eq(size_of("10k"), 10 * 1024);
    ck_assert_uint_eq(size_of("1m"), 1024 * 1024);
    ck_assert_uint_eq(size_of("1g"), 1024 * 1024 * 1024);
    ck_assert_uint_eq(size_of("3g"), (size_t)3 << 30);
}
END_TEST

START_TEST(test_size_units_may_be_uppercase)
{
    ck_assert_uint_eq(size_of("10K"), 10 * 1024);
    ck_assert_uint_eq(size_of("2M"), 2 * 1024 * 1024);
    ck_assert_uint_eq(size_of("1G"), 1024 * 1024 * 1024);
}
END_TEST

START_TEST(test_size_zero_is_allowed)
{
    ck_assert_uint_eq(size_of("0"), 0);
    ck_assert_uint_eq(size_of("0k"), 0);
}
END_TEST

START_TEST(test_size_without_digits_is_refused)
{
    ck_assert(size_refused(""));
    ck_assert(size_refused("k"));
    ck_assert(size_refused("M"));
}
END_TEST

START_TEST(test_size_with_a_fraction_is_refused)
{
    ck_assert(size_refused("1.5k"));
    ck_assert(size_refused("0.5"));
}
END_TEST

START_TEST(test_negative_size_is_refused)
{
    ck_assert(size_refused("-1"));
    ck_assert(size_refused("-1k"));
    ck_assert(size_refused("+1"));
}
END_TEST

START_TEST(test_size_with_unknown_unit_or_spaces_is_refused)
{
    ck_assert(size_refused("1q"));
    ck_assert(size_refused("1kb"));
    ck_assert(size_refused("1t"));
    ck_assert(size_refused("1 k"));
    ck_assert(size_refused(" 1"));
    ck_assert(size_refused("1 "));
}
END_TEST

START_TEST(test_size_that_overflows_is_refused)
{
    /* 2^34 gigabytes is 2^64 bytes: one more than size_t holds */
    ck_assert(size_refused("17179869184g"));
    ck_assert_uint_eq(size_of("17179869183g"), (size_t)17179869183u << 30);
    ck_assert(size_refused("18014398509481984k"));
    ck_assert(size_refused("99999999999999999999"));
    ck_assert(size_refused("999999999999999999999999999999"));
}
END_TEST

/* times */

START_TEST(test_time_units_from_milliseconds_to_weeks)
{
    ck_assert_int_eq(msec_of("500ms"), 500);
    ck_assert_int_eq(msec_of("30s"), 30 * 1000);
    ck_assert_int_eq(msec_of("5m"), 5 * 60 * 1000);
    ck_assert_int_eq(msec_of("2h"), 2 * 3600 * 1000);
    ck_assert_int_eq(msec_of("1d"), 86400 * 1000);
    ck_assert_int_eq(msec_of("1w"), 7 * 86400 * 1000);
}
END_TEST

START_TEST(test_bare_time_number_is_seconds)
{
    ck_assert_int_eq(msec_of("30"), 30 * 1000);
    ck_assert_int_eq(msec_of("0"), 0);
}
END_TEST

START_TEST(test_time_parts_add_up_from_largest_to_smallest)
{
    ck_assert_int_eq(msec_of("1m30s"), 90 * 1000);
    ck_assert_int_eq(msec_of("1h30m"), 90 * 60 * 1000);
    ck_assert_int_eq(msec_of("1s500ms"), 1500);
    ck_assert_int_eq(msec_of("1w1d2h3m4s5ms"), ((((8LL * 24 + 2) * 60 + 3) * 60 + 4) * 1000) + 5);
    /* a trailing bare number is seconds, as in nginx */
    ck_assert_int_eq(msec_of("1m30"), 90 * 1000);
}
END_TEST

START_TEST(test_time_parts_out_of_order_are_refused)
{
    ck_assert(msec_refused("30s1m"));
    ck_assert(msec_refused("500ms1s"));
    ck_assert(msec_refused("1d1w"));
    ck_assert(msec_refused("1s30"));
}
END_TEST

START_TEST(test_time_unit_repeated_is_refused)
{
    ck_assert(msec_refused("1m1m"));
    ck_assert(msec_refused("1s1s"));
    ck_assert(msec_refused("1ms1ms"));
}
END_TEST

START_TEST(test_time_without_digits_or_with_unknown_unit_is_refused)
{
    ck_assert(msec_refused(""));
    ck_assert(msec_refused("s"));
    ck_assert(msec_refused("ms"));
    ck_assert(msec_refused("5x"));
    ck_assert(msec_refused("1y"));
    ck_assert(msec_refused("1M"));
    ck_assert(msec_refused("1.5s"));
    ck_assert(msec_refused("-1s"));
    ck_assert(msec_refused("1m  30s"));
    ck_assert(msec_refused(" 1m"));
    ck_assert(msec_refused("1m30s "));
}
END_TEST

START_TEST(test_time_that_overflows_is_refused)
{
    ck_assert(msec_refused("99999999999999999999"));
    ck_assert(msec_refused("9223372036854775808ms"));
    /* each part fits on its own, the product or the sum does not */
    ck_assert_int_eq(msec_of("15000000000w"), 15000000000LL * 7 * 86400 * 1000);
    ck_assert(msec_refused("20000000000w"));
    ck_assert(msec_refused("9223372036854776s"));
    ck_assert(msec_refused("15000000000w2000000000d"));
}
END_TEST

/* integers */

START_TEST(test_int_accepts_decimal_digits_up_to_max)
{
    long v = -1;
    ck_assert_int_eq(rp_parse_int("0", 10, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(rp_parse_int("1024", 1024, &v), 0);
    ck_assert_int_eq(v, 1024);
    ck_assert_int_eq(rp_parse_int("007", 10, &v), 0);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(rp_parse_int("9223372036854775807", LONG_MAX, &v), 0);
    ck_assert_int_eq(v, LONG_MAX);
}
END_TEST

START_TEST(test_int_above_max_is_refused)
{
    ck_assert(int_refused("1025", 1024));
    ck_assert(int_refused("65536", 65535));
    ck_assert(int_refused("9223372036854775808", LONG_MAX));
    ck_assert(int_refused("100000000000000000000", LONG_MAX));
}
END_TEST

START_TEST(test_int_above_a_single_digit_max_is_refused)
{
    ck_assert(int_refused("7", 5));
    ck_assert(int_refused("1", 0));
    ck_assert(int_refused("07", 5));
}
END_TEST

START_TEST(test_int_that_is_not_plain_digits_is_refused)
{
    ck_assert(int_refused("", 100));
    ck_assert(int_refused("-1", 100));
    ck_assert(int_refused("+1", 100));
    ck_assert(int_refused("1a", 100));
    ck_assert(int_refused(" 1", 100));
    ck_assert(int_refused("0x10", 100));
}
END_TEST

/* flags */

START_TEST(test_flag_is_on_or_off)
{
    int v = -1;
    ck_assert_int_eq(rp_parse_flag("on", &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(rp_parse_flag("off", &v), 0);
    ck_assert_int_eq(v, 0);
}
END_TEST

START_TEST(test_flag_ignores_case_like_nginx)
{
    int v = 7;
    ck_assert_int_eq(rp_parse_flag("OFF", &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(rp_parse_flag("On", &v), 0);
    ck_assert_int_eq(v, 1);
}
END_TEST

START_TEST(test_time_parts_may_be_separated_by_one_space)
{
    ck_assert_int_eq(msec_of("1m 30s"), 90000);
    ck_assert_int_eq(msec_of("1h 1m 1s"), 3661000);
}
END_TEST

START_TEST(test_flag_other_words_are_refused)
{
    const char *bad[] = {"", "yes", "no", "1", "0", "true", "onn", "of", "on "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int v = 7;
        ck_assert_msg(rp_parse_flag(bad[i], &v) == -1 && v == 7, "flag \"%s\" accepted", bad[i]);
    }
}
END_TEST

static Suite *values_suite(void)
{
    Suite *s = suite_create("values");
    TCase *tc = tcase_create("sizes");
    tcase_add_test(tc, test_size_without_unit_is_bytes);
    tcase_add_test(tc, test_size_units_are_powers_of_1024);
    tcase_add_test(tc, test_size_units_may_be_uppercase);
    tcase_add_test(tc, test_size_zero_is_allowed);
    tcase_add_test(tc, test_size_without_digits_is_refused);
    tcase_add_test(tc, test_size_with_a_fraction_is_refused);
    tcase_add_test(tc, test_negative_size_is_refused);
    tcase_add_test(tc, test_size_with_unknown_unit_or_spaces_is_refused);
    tcase_add_test(tc, test_size_that_overflows_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("times");
    tcase_add_test(tc, test_time_units_from_milliseconds_to_weeks);
    tcase_add_test(tc, test_bare_time_number_is_seconds);
    tcase_add_test(tc, test_time_parts_add_up_from_largest_to_smallest);
    tcase_add_test(tc, test_time_parts_out_of_order_are_refused);
    tcase_add_test(tc, test_time_unit_repeated_is_refused);
    tcase_add_test(tc, test_time_without_digits_or_with_unknown_unit_is_refused);
    tcase_add_test(tc, test_time_that_overflows_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("integers and flags");
    tcase_add_test(tc, test_int_accepts_decimal_digits_up_to_max);
    tcase_add_test(tc, test_int_above_max_is_refused);
    tcase_add_test(tc, test_int_above_a_single_digit_max_is_refused);
    tcase_add_test(tc, test_int_that_is_not_plain_digits_is_refused);
    tcase_add_test(tc, test_flag_is_on_or_off);
    tcase_add_test(tc, test_flag_other_words_are_refused);
    tcase_add_test(tc, test_flag_ignores_case_like_nginx);
    tcase_add_test(tc, test_time_parts_may_be_separated_by_one_space);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(values_suite());
}
