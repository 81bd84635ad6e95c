/*
 * The request target rampart sends upstream, by nginx's rules (rp_proxy_uri):
 *
 *   - proxy_pass without a URI part: the client's target goes as it was sent,
 *     with its query and without normalization; an absolute-form target is cut
 *     down to its path and query, since its authority became the Host header;
 *   - proxy_pass with a URI part: the part of the normalized path the location
 *     matched is replaced by that URI, the rest of the path is escaped again
 *     where it must be, and the query string follows after "?".
 *
 * The function is pure, so every case is a call with the pieces a request would
 * hand it: the raw target ($request_uri), the normalized path ($uri) and the
 * query ($args).
 */
#include "upstream/proxy.h"
#include "unit.h"

#include <string.h>

static rp_arena_t *arena;

static void setup(void)
{
    arena = rp_arena_create(4096);
}

static void teardown(void)
{
    rp_arena_destroy(arena);
}

/* proxy_pass without a URI part, for a request whose raw target is raw. */
static const char *no_uri(const char *raw, const char *uri, const char *args)
{
    static char buf[1024];
    rp_str_t t = rp_proxy_uri(arena, 0, RP_NULL_STR, 0, (rp_str_t){raw, strlen(raw)},
                              (rp_str_t){uri, strlen(uri)}, (rp_str_t){args, strlen(args)});
    snprintf(buf, sizeof(buf), "%.*s", (int)t.len, t.data ? t.data : "");
    return buf;
}

/* proxy_pass with the URI part pass in a location whose URI is location_uri. */
static const char *with_uri(const char *location_uri, const char *pass, const char *raw,
                            const char *uri, const char *args)
{
    static char buf[1024];
    rp_str_t t = rp_proxy_uri(arena, 1, (rp_str_t){pass, strlen(pass)}, strlen(location_uri),
                              (rp_str_t){raw, strlen(raw)}, (rp_str_t){uri, strlen(uri)},
                              (rp_str_t){args, strlen(args)});
    snprintf(buf, sizeof(buf), "%.*s", (int)t.len, t.data ? t.data : "");
    return buf;
}

/* ---- without a URI part ---- */

START_TEST(test_no_uri_part_sends_the_raw_target_with_its_query)
{
    ck_assert_str_eq(no_uri("/search?q=a%20b&x=1", "/search", "q=a%20b&x=1"),
                     "/search?q=a%20b&x=1");
}
END_TEST

START_TEST(test_no_uri_part_keeps_the_path_unnormalized)
{
    /* dot segments, doubled slashes and escapes go as the client wrote them */
    ck_assert_str_eq(no_uri("//a/./b/../%63", "/a/c", ""), "//a/./b/../%63");
}
END_TEST

START_TEST(test_no_uri_part_keeps_an_empty_query_mark)
{
    ck_assert_str_eq(no_uri("/p?", "/p", ""), "/p?");
}
END_TEST

START_TEST(test_absolute_form_is_cut_to_path_and_query)
{
    ck_assert_str_eq(no_uri("http://h/p?q", "/p", "q"), "/p?q");
}
END_TEST

START_TEST(test_absolute_form_without_path_but_with_query_gets_a_slash)
{
    ck_assert_str_eq(no_uri("http://h?q", "/", "q"), "/?q");
}
END_TEST

START_TEST(test_absolute_form_without_path_is_a_slash)
{
    ck_assert_str_eq(no_uri("http://h", "/", ""), "/");
}
END_TEST

START_TEST(test_absolute_form_scheme_is_matched_in_any_case_and_https_too)
{
    ck_assert_str_eq(no_uri("HTTP://h:8080/a/b", "/a/b", ""), "/a/b");
    ck_assert_str_eq(no_uri("https://h/x?y", "/x", "y"), "/x?y");
}
END_TEST

START_TEST(test_asterisk_target_stays_an_asterisk)
{
    /* OPTIONS * : the normalized path is "/" but the target is sent as it came */
    ck_assert_str_eq(no_uri("*", "/", ""), "*");
}
END_TEST

/* ---- with a URI part ---- */

START_TEST(test_prefix_location_part_is_replaced_by_the_uri_part)
{
    /* location /v1/ { proxy_pass http://b/api/; }  GET /v1/x?q */
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/x?q", "/v1/x", "q"), "/api/x?q");
}
END_TEST

START_TEST(test_prefix_without_trailing_slash_and_slash_uri_gives_a_double_slash)
{
    /* location /v1 { proxy_pass http://b/; }  GET /v1/x: "/v1" is replaced by "/" and
     * "/x" follows, so the upstream sees "//x". nginx sends exactly the same. */
    ck_assert_str_eq(with_uri("/v1", "/", "/v1/x", "/v1/x", ""), "//x");
    ck_assert_str_eq(with_uri("/v1", "/", "/v1/x?q", "/v1/x", "q"), "//x?q");
}
END_TEST

START_TEST(test_root_location_appends_the_whole_path_to_the_uri_part)
{
    /* location / { proxy_pass http://b/app/; }  GET /x/y */
    ck_assert_str_eq(with_uri("/", "/app/", "/x/y", "/x/y", ""), "/app/x/y");
}
END_TEST

START_TEST(test_path_equal_to_the_location_is_the_uri_part_alone)
{
    /* location /v1/ { proxy_pass http://b/api/; }  GET /v1/ */
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/", "/v1/", ""), "/api/");
}
END_TEST

START_TEST(test_exact_location_is_replaced_whole)
{
    /* location = /login { proxy_pass http://b/auth/signin; }  GET /login?next=/ */
    ck_assert_str_eq(with_uri("/login", "/auth/signin", "/login?next=/", "/login", "next=/"),
                     "/auth/signin?next=/");
}
END_TEST

START_TEST(test_normalized_path_is_used_not_the_raw_target)
{
    /* GET /v1/a/../b%2Fc: $uri is "/v1/b/c" (decoded, dots resolved); the tail is taken
     * from it, so the decoded slash goes as a slash */
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/a/../b%2Fc", "/v1/b/c", ""), "/api/b/c");
}
END_TEST

START_TEST(test_decoded_space_in_the_tail_is_escaped)
{
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/a%20b", "/v1/a b", ""), "/api/a%20b");
}
END_TEST

START_TEST(test_decoded_percent_in_the_tail_is_escaped)
{
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/100%25", "/v1/100%", ""), "/api/100%25");
}
END_TEST

START_TEST(test_decoded_question_mark_in_the_tail_is_escaped)
{
    /* "%3F" in the path is part of the path, not the start of a query */
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/what%3F?x=1", "/v1/what?", "x=1"),
                     "/api/what%3F?x=1");
}
END_TEST

START_TEST(test_decoded_hash_in_the_tail_is_escaped)
{
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/c%23", "/v1/c#", ""), "/api/c%23");
}
END_TEST

START_TEST(test_decoded_non_ascii_in_the_tail_is_escaped_bytewise)
{
    /* "é" in UTF-8 is C3 A9 */
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/caf%C3%A9", "/v1/caf\xC3\xA9", ""),
                     "/api/caf%C3%A9");
}
END_TEST

START_TEST(test_decoded_control_characters_and_unsafe_ascii_are_escaped)
{
    ck_assert_str_eq(with_uri("/", "/", "/x", "/a\tb\"<>\\^`{|}\x7f", ""),
                     "/a%09b%22%3C%3E%5C%5E%60%7B%7C%7D%7F");
}
END_TEST

START_TEST(test_characters_allowed_in_a_path_are_not_escaped)
{
    ck_assert_str_eq(with_uri("/", "/", "/x", "/a-b._~!$&'()*+,;=:@/c", ""),
                     "/a-b._~!$&'()*+,;=:@/c");
}
END_TEST

START_TEST(test_uri_part_itself_is_sent_as_written)
{
    /* the configured part is not escaped again: it is already in wire form */
    ck_assert_str_eq(with_uri("/v1/", "/a%20b/", "/v1/x", "/v1/x", ""), "/a%20b/x");
}
END_TEST

START_TEST(test_args_are_appended_after_a_question_mark)
{
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/x?a=1&b=%20", "/v1/x", "a=1&b=%20"),
                     "/api/x?a=1&b=%20");
}
END_TEST

START_TEST(test_empty_args_add_no_question_mark)
{
    /* GET /v1/x? : the query is empty, so nothing follows the path */
    ck_assert_str_eq(with_uri("/v1/", "/api/", "/v1/x?", "/v1/x", ""), "/api/x");
}
END_TEST

static Suite *proxy_uri_suite(void)
{
    Suite *s = suite_create("proxy_uri");
    TCase *tc = tcase_create("without a URI part");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_no_uri_part_sends_the_raw_target_with_its_query);
    tcase_add_test(tc, test_no_uri_part_keeps_the_path_unnormalized);
    tcase_add_test(tc, test_no_uri_part_keeps_an_empty_query_mark);
    tcase_add_test(tc, test_absolute_form_is_cut_to_path_and_query);
    tcase_add_test(tc, test_absolute_form_without_path_but_with_query_gets_a_slash);
    tcase_add_test(tc, test_absolute_form_without_path_is_a_slash);
    tcase_add_test(tc, test_absolute_form_scheme_is_matched_in_any_case_and_https_too);
    tcase_add_test(tc, test_asterisk_target_stays_an_asterisk);
    suite_add_tcase(s, tc);

    tc = tcase_create("with a URI part");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_prefix_location_part_is_replaced_by_the_uri_part);
    tcase_add_test(tc, test_prefix_without_trailing_slash_and_slash_uri_gives_a_double_slash);
    tcase_add_test(tc, test_root_location_appends_the_whole_path_to_the_uri_part);
    tcase_add_test(tc, test_path_equal_to_the_location_is_the_uri_part_alone);
    tcase_add_test(tc, test_exact_location_is_replaced_whole);
    tcase_add_test(tc, test_normalized_path_is_used_not_the_raw_target);
    tcase_add_test(tc, test_decoded_space_in_the_tail_is_escaped);
    tcase_add_test(tc, test_decoded_percent_in_the_tail_is_escaped);
    tcase_add_test(tc, test_decoded_question_mark_in_the_tail_is_escaped);
    tcase_add_test(tc, test_decoded_hash_in_the_tail_is_escaped);
    tcase_add_test(tc, test_decoded_non_ascii_in_the_tail_is_escaped_bytewise);
    tcase_add_test(tc, test_decoded_control_characters_and_unsafe_ascii_are_escaped);
    tcase_add_test(tc, test_characters_allowed_in_a_path_are_not_escaped);
    tcase_add_test(tc, test_uri_part_itself_is_sent_as_written);
    tcase_add_test(tc, test_args_are_appended_after_a_question_mark);
    tcase_add_test(tc, test_empty_args_add_no_question_mark);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(proxy_uri_suite());
}
