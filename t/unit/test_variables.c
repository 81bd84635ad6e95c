/*
 * Compiled values: a directive argument such as "https://$host$request_uri" is
 * split once when the configuration loads and evaluated per request. These tests
 * compile against the variables a loaded configuration registered and evaluate
 * against a hand-built request, so they show both halves without a socket.
 */
#include "http/variables.h"
#include "unit.h"

#include <string.h>

static rp_arena_t *arena;
static rp_cycle_t *cycle;
static rp_conf_t cf;
static rp_request_t r;
static rp_header_t headers[8];

static void setup(void)
{
    ut_setup_dir();
    cycle = ut_load_ok("http { server { listen 127.0.0.1:8080; } }\n");
    arena = rp_arena_create(4096);
    memset(&cf, 0, sizeof(cf));
    cf.cycle = cycle;
    cf.arena = cycle->arena;
    memset(&r, 0, sizeof(r));
    r.arena = arena;
    r.method = RP_STR("GET");
    r.scheme = RP_STR("https");
    r.host = RP_STR("example.com");
    r.uri = RP_STR("/a/b");
    r.request_uri = RP_STR("/a/%62?x=1");
    r.args = RP_STR("x=1");
    r.version = 11;
    headers[0] = (rp_header_t){RP_STR("X-Forwarded-For"), RP_STR("10.0.0.1")};
    headers[1] = (rp_header_t){RP_STR("Cookie"), RP_STR("a=1; sid=xyz; b")};
    r.headers = headers;
    r.nheaders = 2;
}

static void teardown(void)
{
    rp_arena_destroy(arena);
    rp_cycle_destroy(cycle);
    ut_teardown_dir();
}

/* Compiles src and evaluates it against r; the compile error if there is one. A variable
 * nothing declared is an error only once the whole configuration is read (a map further
 * on may declare it): here it is reported as that check would. */
static const char *eval(const char *src)
{
    static char buf[8192];
    rp_cv_t cv;
    const char *err = rp_cv_compile(&cf, src, &cv);
    if (err) {
        snprintf(buf, sizeof(buf), "ERROR: %s", err);
        return buf;
    }
    for (size_t i = 0; i < cv.nparts; i++) {
        const rp_var_t *v = cv.parts[i].var;
        if (v && (v->flags & RP_VAR_UNKNOWN)) {
            snprintf(buf, sizeof(buf), "ERROR: unknown variable \"$%.*s\"", (int)v->name.len,
                     v->name.data);
            return buf;
        }
    }
    rp_str_t v = rp_cv_eval(&r, &cv);
    snprintf(buf, sizeof(buf), "%.*s", (int)v.len, v.data ? v.data : "");
    return buf;
}

START_TEST(test_text_without_variables_is_kept_as_is)
{
    rp_cv_t cv;
    ck_assert_ptr_null(rp_cv_compile(&cf, "hello, world", &cv));
    ck_assert_int_eq(cv.has_vars, 0);
    ck_assert(rp_str_eq(cv.value, "hello, world"));
    ck_assert_str_eq(eval("hello, world"), "hello, world");
    ck_assert_str_eq(eval(""), "");
}
END_TEST

START_TEST(test_escaped_dollar_is_a_literal_dollar)
{
    rp_cv_t cv;
    ck_assert_ptr_null(rp_cv_compile(&cf, "cost: \\$5 \\$host", &cv));
    ck_assert_int_eq(cv.has_vars, 0);
    ck_assert_str_eq(eval("cost: \\$5 \\$host"), "cost: $5 $host");
}
END_TEST

START_TEST(test_variables_are_replaced_by_their_values)
{
    ck_assert_str_eq(eval("$scheme://$host$uri$is_args$args"), "https://example.com/a/b?x=1");
    ck_assert_str_eq(eval("[$request_method $request_uri $server_protocol]"),
                     "[GET /a/%62?x=1 HTTP/1.1]");
}
END_TEST

START_TEST(test_unset_variable_is_empty)
{
    r.args = RP_NULL_STR;
    ck_assert_str_eq(eval("$uri$is_args$args."), "/a/b.");
    ck_assert_str_eq(eval("<$arg_nope$http_nope$cookie_nope>"), "<>");
}
END_TEST

START_TEST(test_braced_variable_may_touch_letters)
{
    ck_assert_str_eq(eval("${host}name"), "example.comname");
    ck_assert_str_eq(eval("$hostnames"), "ERROR: unknown variable \"$hostnames\"");
}
END_TEST

START_TEST(test_header_variable_matches_any_case_and_dashes)
{
    ck_assert_str_eq(eval("$http_x_forwarded_for"), "10.0.0.1");
    ck_assert_str_eq(eval("$http_X_Forwarded_For"), "10.0.0.1");
    ck_assert_str_eq(eval("${http_x-forwarded-for}"), "10.0.0.1");
}
END_TEST

START_TEST(test_arg_variable_takes_the_named_argument)
{
    r.args = RP_STR("a=1&b=2&bb=3&c");
    ck_assert_str_eq(eval("$arg_b|$arg_bb|$arg_a|$arg_c|$arg_d"), "2|3|1||");
}
END_TEST

START_TEST(test_cookie_variable_takes_the_named_cookie)
{
    ck_assert_str_eq(eval("$cookie_sid|$cookie_a|$cookie_b|$cookie_x"), "xyz|1||");
}
END_TEST

START_TEST(test_unknown_variable_is_an_error)
{
    ck_assert_str_eq(eval("hello $nosuch"), "ERROR: unknown variable \"$nosuch\"");
    ck_assert_str_eq(eval("${no such}"), "ERROR: unknown variable \"$no such\"");
}
END_TEST

START_TEST(test_unknown_variable_fails_the_check_at_its_first_use)
{
    rp_cv_t cv;
    char *argv[] = {"return", NULL};
    cf.file = "x.conf";
    cf.argv = argv;
    cf.line = 7;
    ck_assert_ptr_null(rp_cv_compile(&cf, "a $nosuch", &cv));
    cf.line = 9;
    ck_assert_ptr_null(rp_cv_compile(&cf, "b $nosuch", &cv));
    ck_assert_ptr_eq(rp_var_check_declared(&cf), RP_CONF_ERROR);
    ck_assert_str_eq(cf.error, "x.conf:7: \"return\": unknown variable \"$nosuch\"");
}
END_TEST

START_TEST(test_variable_names_ignore_case)
{
    ck_assert_str_eq(eval("$HOST|$Request_Method|$ARG_x|$HTTP_X_FORWARDED_FOR"),
                     "example.com|GET|1|10.0.0.1");
}
END_TEST

START_TEST(test_empty_variable_name_is_an_error)
{
    ck_assert_str_eq(eval("a$"), "ERROR: invalid variable name in \"a$\"");
    ck_assert_str_eq(eval("a$-b"), "ERROR: invalid variable name in \"a$-b\"");
    ck_assert_str_eq(eval("${}"), "ERROR: invalid variable name in \"${}\"");
}
END_TEST

START_TEST(test_unclosed_brace_is_an_error)
{
    ck_assert_str_eq(eval("${host"), "ERROR: missing \"}\" in variable reference in \"${host\"");
}
END_TEST

START_TEST(test_value_with_many_variables_is_evaluated_whole)
{
    /* 100 variables and 100 literals: far more parts than a request usually has */
    char src[2048], want[4096];
    size_t n = 0, w = 0;
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(src + n, sizeof(src) - n, "$host/%d,", i);
        w += (size_t)snprintf(want + w, sizeof(want) - w, "example.com/%d,", i);
    }
    ck_assert_str_eq(eval(src), want);
}
END_TEST

static Suite *variables_suite(void)
{
    Suite *s = suite_create("variables");
    TCase *tc = tcase_create("compile and evaluate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_text_without_variables_is_kept_as_is);
    tcase_add_test(tc, test_escaped_dollar_is_a_literal_dollar);
    tcase_add_test(tc, test_variables_are_replaced_by_their_values);
    tcase_add_test(tc, test_unset_variable_is_empty);
    tcase_add_test(tc, test_braced_variable_may_touch_letters);
    tcase_add_test(tc, test_header_variable_matches_any_case_and_dashes);
    tcase_add_test(tc, test_arg_variable_takes_the_named_argument);
    tcase_add_test(tc, test_cookie_variable_takes_the_named_cookie);
    tcase_add_test(tc, test_unknown_variable_is_an_error);
    tcase_add_test(tc, test_unknown_variable_fails_the_check_at_its_first_use);
    tcase_add_test(tc, test_variable_names_ignore_case);
    tcase_add_test(tc, test_empty_variable_name_is_an_error);
    tcase_add_test(tc, test_unclosed_brace_is_an_error);
    tcase_add_test(tc, test_value_with_many_variables_is_evaluated_whole);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(variables_suite());
}
