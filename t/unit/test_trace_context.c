/*
 * W3C Trace Context parsing: which traceparent values rampart continues (version 00
 * exactly, later versions by their first 55 characters) and which it replaces with a
 * new trace, and which tracestate values it passes on.
 */
#include "observe/trace_context.h"
#include "unit.h"

#include <string.h>

#define TP_OK "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static int tp(const char *s)
{
    char trace[32], parent[16];
    unsigned flags = 99;
    return rp_trace_parse_traceparent(s, strlen(s), trace, parent, &flags);
}

static int ts(const char *s)
{
    return rp_trace_tracestate_valid(s, strlen(s));
}

START_TEST(test_version_00_gives_trace_parent_and_flags)
{
    char trace[32], parent[16];
    unsigned flags = 0;
    ck_assert_int_eq(rp_trace_parse_traceparent(TP_OK, 55, trace, parent, &flags), 0);
    ck_assert(memcmp(trace, "0af7651916cd43dd8448eb211c80319c", 32) == 0);
    ck_assert(memcmp(parent, "b7ad6b7169203331", 16) == 0);
    ck_assert_uint_eq(flags, 1);
}
END_TEST

START_TEST(test_version_00_must_be_exactly_55_characters)
{
    ck_assert_int_eq(tp(TP_OK "-extra"), -1);
    ck_assert_int_eq(tp("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0"), -1);
}
END_TEST

START_TEST(test_uppercase_hex_is_refused)
{
    ck_assert_int_eq(tp("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"), -1);
    ck_assert_int_eq(tp("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01"), -1);
}
END_TEST

START_TEST(test_all_zero_ids_are_refused)
{
    ck_assert_int_eq(tp("00-00000000000000000000000000000000-b7ad6b7169203331-01"), -1);
    ck_assert_int_eq(tp("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"), -1);
}
END_TEST

START_TEST(test_version_ff_is_refused)
{
    ck_assert_int_eq(tp("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), -1);
}
END_TEST

START_TEST(test_a_later_version_is_read_by_its_first_55_characters)
{
    ck_assert_int_eq(tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), 0);
    ck_assert_int_eq(tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-next"), 0);
    ck_assert_int_eq(tp("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01what"), -1);
}
END_TEST

START_TEST(test_bad_separators_are_refused)
{
    ck_assert_int_eq(tp("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), -1);
    ck_assert_int_eq(tp("00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01"), -1);
    ck_assert_int_eq(tp(""), -1);
}
END_TEST

START_TEST(test_tracestate_valid_lists)
{
    ck_assert(ts("congo=t61rcWkgMzE"));
    ck_assert(ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    ck_assert(ts(" rojo=1 ,, congo=2 ,")); /* empty members and spaces are allowed */
    ck_assert(ts("fw529a3039@dt=abc,a*b/c_d-e=v v"));
}
END_TEST

START_TEST(test_tracestate_invalid_lists)
{
    ck_assert(!ts("Rojo=1"));        /* uppercase key */
    ck_assert(!ts("rojo"));          /* no value */
    ck_assert(!ts("rojo=1,rojo=2")); /* a key twice */
    ck_assert(!ts("rojo=a=b"));      /* "=" in a value */
    ck_assert(!ts("rojo=\x01"));     /* a control byte */
    ck_assert(!ts("t@"));            /* no system id */
    ck_assert(!ts("t@toolongsystemid=1"));
}
END_TEST

START_TEST(test_tracestate_of_more_than_32_members_is_refused)
{
    char buf[512];
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%sk%d=v", i ? "," : "", i);
    ck_assert(!rp_trace_tracestate_valid(buf, n));
    char *last = strrchr(buf, ',');
    ck_assert(rp_trace_tracestate_valid(buf, (size_t)(last - buf)));
}
END_TEST

START_TEST(test_hex64_writes_16_lowercase_digits_most_significant_first)
{
    static const uint64_t vs[] = {
        0, 1, 0x0123456789abcdefull, 0xfedcba9876543210ull, 0xa0b0c0d0e0f00909ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
        char got[17] = {0}, want[17];
        rp_trace_hex64(got, vs[i]);
        snprintf(want, sizeof(want), "%016llx", (unsigned long long)vs[i]);
        ck_assert_str_eq(got, want);
    }
}
END_TEST

static Suite *trace_suite(void)
{
    Suite *s = suite_create("trace_context");
    TCase *tc = tcase_create("parsing");
    tcase_add_test(tc, test_version_00_gives_trace_parent_and_flags);
    tcase_add_test(tc, test_version_00_must_be_exactly_55_characters);
    tcase_add_test(tc, test_uppercase_hex_is_refused);
    tcase_add_test(tc, test_all_zero_ids_are_refused);
    tcase_add_test(tc, test_version_ff_is_refused);
    tcase_add_test(tc, test_a_later_version_is_read_by_its_first_55_characters);
    tcase_add_test(tc, test_bad_separators_are_refused);
    tcase_add_test(tc, test_tracestate_valid_lists);
    tcase_add_test(tc, test_tracestate_invalid_lists);
    tcase_add_test(tc, test_tracestate_of_more_than_32_members_is_refused);
    tcase_add_test(tc, test_hex64_writes_16_lowercase_digits_most_significant_first);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(trace_suite());
}
