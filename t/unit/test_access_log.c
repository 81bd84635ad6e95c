/*
 * Access log escaping, byte by byte: what each escape= mode makes of quotes,
 * backslashes, control bytes, DEL and bytes above it, and that the length it
 * predicts is the length it writes (the log line is sized before it is formatted).
 */
#include "observe/access_log.h"
#include "unit.h"

#include <string.h>

/* Escapes src (n bytes) in mode into a static buffer, checking the predicted length. */
static const char *esc(int mode, const char *src, size_t n)
{
    static char out[1024];
    size_t want = rp_access_log_escape(mode, src, n, NULL);
    ck_assert_uint_lt(want, sizeof(out));
    memset(out, '#', sizeof(out));
    size_t got = rp_access_log_escape(mode, src, n, out);
    ck_assert_uint_eq(got, want);
    ck_assert_int_eq(out[got], '#'); /* nothing written past the predicted end */
    out[got] = '\0';
    return out;
}

#define ESC(mode, lit) esc(mode, lit, sizeof(lit) - 1)

START_TEST(test_default_keeps_printable_ascii)
{
    ck_assert_str_eq(ESC(RP_LOG_ESCAPE_DEFAULT, "GET /a?b=1 {}'~"), "GET /a?b=1 {}'~");
}
END_TEST

START_TEST(test_default_writes_quote_backslash_and_control_bytes_as_upper_hex)
{
    ck_assert_str_eq(ESC(RP_LOG_ESCAPE_DEFAULT, "a\"b\\c\td\n\x01\x1f"),
                     "a\\x22b\\x5Cc\\x09d\\x0A\\x01\\x1F");
}
END_TEST

START_TEST(test_default_writes_del_and_high_bytes_as_hex)
{
    ck_assert_str_eq(ESC(RP_LOG_ESCAPE_DEFAULT, "\x7f\x80\xc3\xa9\xff"),
                     "\\x7F\\x80\\xC3\\xA9\\xFF");
}
END_TEST

START_TEST(test_default_writes_a_nul_byte_as_hex)
{
    ck_assert_str_eq(esc(RP_LOG_ESCAPE_DEFAULT, "a\0b", 3), "a\\x00b");
}
END_TEST

START_TEST(test_json_uses_short_escapes_where_json_has_them)
{
    ck_assert_str_eq(ESC(RP_LOG_ESCAPE_JSON, "\"\\\n\r\t\b\f"), "\\\"\\\\\\n\\r\\t\\b\\f");
}
END_TEST

START_TEST(test_json_writes_other_control_bytes_as_upper_unicode_escapes)
{
    ck_assert_str_eq(esc(RP_LOG_ESCAPE_JSON, "\x00\x01\x1f\x0b", 4),
                     "\\u0000\\u0001\\u001F\\u000B");
}
END_TEST

START_TEST(test_json_keeps_del_and_utf8_as_they_are)
{
    ck_assert_str_eq(ESC(RP_LOG_ESCAPE_JSON, "caf\xc3\xa9 \x7f /'"), "caf\xc3\xa9 \x7f /'");
}
END_TEST

START_TEST(test_none_changes_nothing)
{
    ck_assert_str_eq(ESC(RP_LOG_ESCAPE_NONE, "a\"b\\c\t\x01\xff"), "a\"b\\c\t\x01\xff");
}
END_TEST

START_TEST(test_empty_value_is_empty_in_every_mode)
{
    /* The "-" of the default mode is the formatter's, for a whole variable. */
    for (int mode = RP_LOG_ESCAPE_DEFAULT; mode <= RP_LOG_ESCAPE_NONE; mode++)
        ck_assert_str_eq(esc(mode, "", 0), "");
}
END_TEST

static Suite *access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = tcase_create("escaping");
    tcase_add_test(tc, test_default_keeps_printable_ascii);
    tcase_add_test(tc, test_default_writes_quote_backslash_and_control_bytes_as_upper_hex);
    tcase_add_test(tc, test_default_writes_del_and_high_bytes_as_hex);
    tcase_add_test(tc, test_default_writes_a_nul_byte_as_hex);
    tcase_add_test(tc, test_json_uses_short_escapes_where_json_has_them);
    tcase_add_test(tc, test_json_writes_other_control_bytes_as_upper_unicode_escapes);
    tcase_add_test(tc, test_json_keeps_del_and_utf8_as_they_are);
    tcase_add_test(tc, test_none_changes_nothing);
    tcase_add_test(tc, test_empty_value_is_empty_in_every_mode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(access_log_suite());
}
