/*
 * split_clients (src/http/split_clients_module.c) and the MurmurHash2 it hashes with
 * (src/core/murmur.h): the hash against known values, the buckets a loaded
 * configuration makes, the shares they give over many keys, and the configuration
 * errors, each naming its line. That the buckets are nginx's own, key for key, is
 * t/integration/test_split_clients.py's to show, against Debian's nginx.
 */
#include "core/murmur.h"
#include "http/variables.h"
#include "unit.h"

#include <stdio.h>
#include <string.h>

static rp_cycle_t *cycle;
static rp_conf_t cf;
static rp_arena_t *arena;
static rp_cv_t value; /* "$v" compiled against the loaded configuration */
static unsigned evals;

static void load(const char *http)
{
    char text[4096];
    snprintf(text, sizeof(text), "http {\n%s\nserver { listen 127.0.0.1:8080; }\n}\n", http);
    cycle = ut_load_ok(text);
    memset(&cf, 0, sizeof(cf));
    cf.cycle = cycle;
    cf.arena = cycle->arena;
    ck_assert_ptr_null(rp_cv_compile(&cf, "$v", &value));
    arena = rp_arena_create(8192);
    evals = 0;
}

static void unload(void)
{
    rp_arena_destroy(arena);
    rp_cycle_destroy(cycle);
}

/* $v for a request whose query string is args (a request of its own: values are kept
 * per request). */
static rp_str_t split(const char *args)
{
    if (++evals % 1000 == 0)
        rp_arena_reset(arena);
    rp_request_t *r = rp_arena_calloc(arena, sizeof(*r));
    r->arena = arena;
    r->method = RP_STR("GET");
    r->uri = RP_STR("/");
    r->args = (rp_str_t){rp_arena_strdup(arena, args), strlen(args)};
    return rp_cv_eval(r, &value);
}

START_TEST(test_murmur_hash2_matches_known_values)
{
    ck_assert_uint_eq(rp_murmur_hash2("", 0), 0);
    ck_assert_uint_eq(rp_murmur_hash2("a", 1), 0x92685f5e);
    ck_assert_uint_eq(rp_murmur_hash2("ab", 2), 0x1aa14063);
    ck_assert_uint_eq(rp_murmur_hash2("abc", 3), 0x13577c9b);
    ck_assert_uint_eq(rp_murmur_hash2("abcd", 4), 0x26873021);
    ck_assert_uint_eq(rp_murmur_hash2("hello", 5), 0xe56129cb);
    ck_assert_uint_eq(rp_murmur_hash2("127.0.0.1AAA", 12), 0xb5fc5e4b);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    ck_assert_uint_eq(rp_murmur_hash2(fox, strlen(fox)), 0x212729d0);
}
END_TEST

START_TEST(test_shares_of_many_keys_follow_the_percentages)
{
    ut_setup_dir();
    load("split_clients \"${arg_k}x\" $v { 10% a; 25.5% b; 0.5% c; * d; }");
    unsigned count[4] = {0};
    const unsigned n = 100000;
    for (unsigned i = 0; i < n; i++) {
        char args[32];
        snprintf(args, sizeof(args), "k=user%u", i);
        rp_str_t v = split(args);
        ck_assert_uint_eq(v.len, 1);
        ck_assert(v.data[0] >= 'a' && v.data[0] <= 'd');
        count[v.data[0] - 'a']++;
    }
    const double want[4] = {10.0, 25.5, 0.5, 64.0};
    for (int k = 0; k < 4; k++) {
        double got = 100.0 * count[k] / n;
        ck_assert_msg(got > want[k] - 0.5 && got < want[k] + 0.5, "share %c: %.2f%%, want %.2f%%",
                      'a' + k, got, want[k]);
    }
    unload();
    ut_teardown_dir();
}
END_TEST

START_TEST(test_the_same_key_always_gets_the_same_value)
{
    ut_setup_dir();
    load("split_clients $arg_k $v { 50% left; * right; }");
    for (unsigned i = 0; i < 200; i++) {
        char args[32];
        snprintf(args, sizeof(args), "k=%u", i);
        rp_str_t first = split(args), again = split(args);
        ck_assert_uint_eq(first.len, again.len);
        ck_assert(memcmp(first.data, again.data, first.len) == 0);
    }
    unload();
    ut_teardown_dir();
}
END_TEST

START_TEST(test_a_hash_beyond_every_share_without_a_star_is_empty)
{
    ut_setup_dir();
    load("split_clients $arg_k $v { 1% one; }");
    unsigned empty = 0, one = 0;
    for (unsigned i = 0; i < 2000; i++) {
        char args[32];
        snprintf(args, sizeof(args), "k=%u", i);
        rp_str_t v = split(args);
        if (v.len == 0)
            empty++;
        else if (v.len == 3 && memcmp(v.data, "one", 3) == 0)
            one++;
        else
            ck_abort_msg("unexpected value \"%.*s\"", (int)v.len, v.data);
    }
    ck_assert_uint_eq(empty + one, 2000);
    ck_assert_uint_gt(one, 0);
    ck_assert_uint_gt(empty, 1900);
    unload();
    ut_teardown_dir();
}
END_TEST

START_TEST(test_the_empty_string_hashes_to_zero_and_takes_the_first_share)
{
    ut_setup_dir();
    /* hash 0 is below every bound: the first share, however small */
    load("split_clients \"$arg_nope\" $v { 0.01% first; * rest; }");
    rp_str_t v = split("");
    ck_assert_int_eq((int)v.len, 5);
    ck_assert(memcmp(v.data, "first", 5) == 0);
    unload();
    ut_teardown_dir();
}
END_TEST

START_TEST(test_values_are_taken_literally_and_may_be_empty)
{
    ut_setup_dir();
    load("split_clients $arg_k $v { 100% \"$host\"; }\nsplit_clients $arg_k $w { * \"\"; }");
    rp_str_t v = split("k=1");
    ck_assert_int_eq((int)v.len, 5);
    ck_assert(memcmp(v.data, "$host", 5) == 0);
    unload();
    ut_teardown_dir();
}
END_TEST

START_TEST(test_configuration_errors_name_the_line)
{
    ut_setup_dir();
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n50% a;\n60% b;\n}\n}\n",
                    "@/rampart.conf:4: \"60%\": percent total is greater than 100%");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n* a;\n0.01% b;\n}\n}\n",
                    "@/rampart.conf:4: \"0.01%\": percent total is greater than 100%");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n0% a;\n}\n}\n",
                    "@/rampart.conf:3: \"0%\": invalid percent value \"0%\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n0.555% a;\n}\n}\n",
                    "@/rampart.conf:3: \"0.555%\": invalid percent value \"0.555%\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n5 a;\n}\n}\n",
                    "@/rampart.conf:3: \"5\": invalid percent value \"5\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n1..5% a;\n}\n}\n",
                    "@/rampart.conf:3: \"1..5%\": invalid percent value \"1..5%\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n-5% a;\n}\n}\n",
                    "@/rampart.conf:3: \"-5%\": invalid percent value \"-5%\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n.% a;\n}\n}\n",
                    "@/rampart.conf:3: \".%\": invalid percent value \".%\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $v {\n5% a b;\n}\n}\n",
                    "@/rampart.conf:3: \"5%\": invalid number of the split_clients parameters");
    ut_expect_error("http {\nsplit_clients $remote_addr v {\n5% a;\n}\n}\n",
                    "@/rampart.conf:2: \"split_clients\": invalid variable name \"v\"");
    ut_expect_error("http {\nsplit_clients $remote_addr $host {\n5% a;\n}\n}\n",
                    "@/rampart.conf:2: \"split_clients\": the variable \"$host\" cannot be "
                    "assigned");
    ut_teardown_dir();
}
END_TEST

START_TEST(test_percentages_with_up_to_two_decimals_are_accepted)
{
    ut_setup_dir();
    rp_cycle_destroy(ut_load_ok("http {\nsplit_clients $remote_addr $v {\n.5% a;\n1.% b;\n"
                                "33.33% c;\n65.17% d;\n}\n}\n"));
    rp_cycle_destroy(ut_load_ok("http {\nsplit_clients $remote_addr $v {\n100% a;\n* b;\n}\n}\n"));
    ut_teardown_dir();
}
END_TEST

static Suite *split_suite(void)
{
    Suite *s = suite_create("split_clients");
    TCase *tc = tcase_create("split_clients");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_murmur_hash2_matches_known_values);
    tcase_add_test(tc, test_shares_of_many_keys_follow_the_percentages);
    tcase_add_test(tc, test_the_same_key_always_gets_the_same_value);
    tcase_add_test(tc, test_a_hash_beyond_every_share_without_a_star_is_empty);
    tcase_add_test(tc, test_the_empty_string_hashes_to_zero_and_takes_the_first_share);
    tcase_add_test(tc, test_values_are_taken_literally_and_may_be_empty);
    tcase_add_test(tc, test_configuration_errors_name_the_line);
    tcase_add_test(tc, test_percentages_with_up_to_two_decimals_are_accepted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(split_suite());
}
