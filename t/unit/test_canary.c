/*
 * Canary splits and the routes of locations whose upstream is chosen per request
 * (upstream_choose.h, canary_module.c): the key hash that makes a split sticky
 * (fixed, spread evenly, so a weight takes its share of the keys and a larger
 * weight is a superset), the words of the forcing header, how weights and
 * targets are read, and what a proxy_pass or grpc_pass with variables becomes.
 */
#include "upstream/upstream_choose.h"
#include "unit.h"

#include <string.h>

static rp_str_t S(const char *s)
{
    return (rp_str_t){s, strlen(s)};
}

/* The location / of the first server. */
static rp_http_core_loc_conf_t *root_loc(rp_cycle_t *cycle)
{
    return ut_loc(ut_srv_loc(ut_server(cycle, 0)), "/");
}

static rp_proxy_loc_conf_t *proxy_of(rp_http_core_loc_conf_t *loc)
{
    return loc->loc_conf[rp_proxy_module.index];
}

/* ---- the key hash ---- */

START_TEST(test_hash_of_a_key_is_fixed_and_in_range)
{
    uint32_t a = rp_canary_hash(S("user-42"));
    ck_assert_uint_eq(a, rp_canary_hash(S("user-42")));
    ck_assert_uint_lt(a, RP_CANARY_SCALE);
    ck_assert_uint_lt(rp_canary_hash(S("")), RP_CANARY_SCALE);
    /* keys one character apart land far apart, not next to each other */
    int64_t d = (int64_t)rp_canary_hash(S("user-1")) - (int64_t)rp_canary_hash(S("user-2"));
    ck_assert_int_gt(d < 0 ? -d : d, 1000);
}
END_TEST

START_TEST(test_weight_takes_its_share_of_many_keys)
{
    static const uint32_t weights[] = {10000, 50000, 300000, 500000, 990000}; /* 1% .. 99% */
    char key[32];
    for (size_t w = 0; w < sizeof(weights) / sizeof(weights[0]); w++) {
        unsigned below = 0, n = 100000;
        for (unsigned i = 0; i < n; i++) {
            int k = snprintf(key, sizeof(key), "session-%u", i);
            below += rp_canary_hash((rp_str_t){key, (size_t)k}) < weights[w];
        }
        double share = (double)below / n, want = (double)weights[w] / RP_CANARY_SCALE;
        ck_assert_msg(share > want - 0.01 && share < want + 0.01, "weight %u: share %f", weights[w],
                      share);
    }
}
END_TEST

/* ---- the forcing header ---- */

START_TEST(test_forcing_words_in_any_case)
{
    const char *canary[] = {"1", "on", "true", "canary", "ON", "True", "CANARY"};
    const char *primary[] = {"0", "off", "false", "stable", "primary", "OFF", "Stable"};
    const char *neither[] = {"", "2", "yes", "no", "canaryx", " on", "stable "};
    for (size_t i = 0; i < sizeof(canary) / sizeof(*canary); i++)
        ck_assert_int_eq(rp_canary_forced(S(canary[i])), 1);
    for (size_t i = 0; i < sizeof(primary) / sizeof(*primary); i++)
        ck_assert_int_eq(rp_canary_forced(S(primary[i])), 0);
    for (size_t i = 0; i < sizeof(neither) / sizeof(*neither); i++)
        ck_assert_int_eq(rp_canary_forced(S(neither[i])), -1);
}
END_TEST

/* ---- the directives ---- */

static const char *with_location(const char *body)
{
    static char text[2048];
    snprintf(text, sizeof(text),
             "http {\n"
             "upstream stable { server 127.0.0.1:9001; }\n"
             "upstream next { server 127.0.0.1:9002; }\n"
             "server {\nlisten 127.0.0.1:8080;\nlocation / {\n%s\n}\n}\n}\n",
             body);
    return text;
}

START_TEST(test_weights_are_read_as_parts_per_million)
{
    static const struct {
        const char *text;
        uint32_t ppm;
    } cases[] = {{"0%", 0},      {"5%", 50000},     {"0.5%", 5000},     {"12.25%", 122500},
                 {"0.0001%", 1}, {"100%", 1000000}, {"100.0%", 1000000}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char body[256];
        snprintf(body, sizeof(body), "proxy_pass http://stable; proxy_canary next weight=%s;",
                 cases[i].text);
        rp_cycle_t *cycle = ut_load_ok(with_location(body));
        rp_proxy_loc_conf_t *p = proxy_of(root_loc(cycle));
        ck_assert_ptr_nonnull(p->route);
        ck_assert_ptr_nonnull(p->route->canary);
        ck_assert_uint_eq(p->route->canary->weight, cases[i].ppm);
        ck_assert(!p->route->dynamic);
        rp_cycle_destroy(cycle);
    }
}
END_TEST

START_TEST(test_bad_weights_are_refused)
{
    const char *bad[] = {"5", "5 %", "-1%", "100.0001%", "101%", "0.00001%", "%", "1.%", "x%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char body[256], want[512];
        snprintf(body, sizeof(body), "proxy_pass http://stable; proxy_canary next \"weight=%s\";",
                 bad[i]);
        snprintf(want, sizeof(want),
                 "@/rampart.conf:7: \"proxy_canary\": invalid weight \"%s\" (a percentage from "
                 "0%% to 100%%, such as 5%% or 0.5%%)",
                 bad[i]);
        ut_expect_error(with_location(body), want);
    }
}
END_TEST

START_TEST(test_canary_target_names_a_block_or_an_address_with_the_pass_scheme)
{
    rp_cycle_t *cycle = ut_load_ok(with_location(
        "proxy_pass http://stable; proxy_canary 127.0.0.1:9003 weight=1% key=$cookie_u "
        "header=X-Canary;"));
    rp_proxy_canary_t *c = proxy_of(root_loc(cycle))->route->canary;
    ck_assert(c->upstream->implicit);
    ck_assert_str_eq(c->upstream->name, "127.0.0.1:9003");
    ck_assert_ptr_null(c->tls);
    ck_assert(c->has_key);
    ck_assert_str_eq(c->header, "x-canary");
    ck_assert_int_eq((int)c->host.len, 14);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_proxy_pass_with_variables_becomes_a_route)
{
    rp_cycle_t *cycle = ut_load_ok(with_location("proxy_pass http://$arg_pool$request_uri;"));
    rp_proxy_loc_conf_t *p = proxy_of(root_loc(cycle));
    ck_assert_ptr_null(p->upstream);
    ck_assert_ptr_nonnull(p->route);
    ck_assert(p->route->dynamic);
    ck_assert(!p->route->grpc);
    ck_assert_int_eq(p->route->scheme_tls, 0);
    ck_assert_ptr_null(p->route->tls_h1); /* http:// cannot turn https */
    ck_assert_ptr_null(p->route->canary);
    rp_cycle_destroy(cycle);

    cycle = ut_load_ok(with_location("proxy_pass $arg_scheme://$arg_host;"));
    p = proxy_of(root_loc(cycle));
    ck_assert_int_eq(p->route->scheme_tls, -1);
    ck_assert_ptr_nonnull(p->route->tls_h1); /* it may: the location's settings are ready */
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_literal_proxy_pass_without_canary_has_no_route)
{
    rp_cycle_t *cycle = ut_load_ok(with_location("proxy_pass http://stable;"));
    rp_proxy_loc_conf_t *p = proxy_of(root_loc(cycle));
    ck_assert_ptr_null(p->route);
    ck_assert_ptr_nonnull(p->upstream);
    rp_cycle_destroy(cycle);
}
END_TEST

static Suite *canary_suite(void)
{
    Suite *s = suite_create("canary");
    TCase *tc = tcase_create("decision");
    tcase_add_test(tc, test_hash_of_a_key_is_fixed_and_in_range);
    tcase_add_test(tc, test_weight_takes_its_share_of_many_keys);
    tcase_add_test(tc, test_forcing_words_in_any_case);
    suite_add_tcase(s, tc);

    tc = tcase_create("configuration");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_weights_are_read_as_parts_per_million);
    tcase_add_test(tc, test_bad_weights_are_refused);
    tcase_add_test(tc, test_canary_target_names_a_block_or_an_address_with_the_pass_scheme);
    tcase_add_test(tc, test_proxy_pass_with_variables_becomes_a_route);
    tcase_add_test(tc, test_literal_proxy_pass_without_canary_has_no_route);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(canary_suite());
}
