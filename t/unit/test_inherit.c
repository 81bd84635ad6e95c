/*
 * Inheritance of settings down http -> server -> location -> nested location:
 * what a level does not set it takes from the level around it, what it sets
 * wins for itself and what it encloses, and never leaks to a sibling or back up.
 * Where nothing sets a value, nginx's default applies.
 */
#include "core/cycle.h"
#include "unit.h"

#define SEC(n) ((int64_t)(n)*1000)

static rp_cycle_t *cycle;

static const char *http_level_conf = "http {\n"
                                     "    keepalive_timeout 10s;\n"
                                     "    send_timeout 20s;\n"
                                     "    default_type application/json;\n"
                                     "    limit_rate 100k;\n"
                                     "    server_tokens off;\n"
                                     "    server {\n"
                                     "        listen 127.0.0.1:8080;\n"
                                     "        location /a {\n"
                                     "            location /a/b {\n"
                                     "            }\n"
                                     "        }\n"
                                     "        location /c {\n"
                                     "            keepalive_timeout 1s;\n"
                                     "            send_timeout 2s;\n"
                                     "            default_type text/html;\n"
                                     "            limit_rate 1k;\n"
                                     "            server_tokens on;\n"
                                     "            location /c/d {\n"
                                     "            }\n"
                                     "        }\n"
                                     "        location /e {\n"
                                     "        }\n"
                                     "        location = /exact {\n"
                                     "        }\n"
                                     "        location ~ \\.php$ {\n"
                                     "            location ~ ^/x {\n"
                                     "            }\n"
                                     "        }\n"
                                     "    }\n"
                                     "}\n";

static void setup(void)
{
    ut_setup_dir();
    cycle = ut_load_ok(http_level_conf);
}

static void teardown(void)
{
    rp_cycle_destroy(cycle);
    ut_teardown_dir();
}

static rp_http_core_loc_conf_t *root(void)
{
    return ut_srv_loc(ut_server(cycle, 0));
}

static void assert_http_level(const rp_http_core_loc_conf_t *l)
{
    ck_assert_int_eq(l->keepalive_timeout, SEC(10));
    ck_assert_int_eq(l->send_timeout, SEC(20));
    ck_assert_str_eq(l->default_type, "application/json");
    ck_assert_int_eq(l->server_tokens, 0);
}

static void assert_location_c_level(const rp_http_core_loc_conf_t *l)
{
    ck_assert_int_eq(l->keepalive_timeout, SEC(1));
    ck_assert_int_eq(l->send_timeout, SEC(2));
    ck_assert_str_eq(l->default_type, "text/html");
    ck_assert_int_eq(l->server_tokens, 1);
}

START_TEST(test_http_level_values_reach_a_server)
{
    assert_http_level(root());
}
END_TEST

START_TEST(test_http_level_values_reach_a_location_and_its_nested_location)
{
    rp_http_core_loc_conf_t *a = ut_loc(root(), "/a");
    assert_http_level(a);
    assert_http_level(ut_loc(a, "/a/b"));
}
END_TEST

START_TEST(test_http_level_values_reach_exact_and_regex_locations)
{
    assert_http_level(ut_loc(root(), "/exact"));
    rp_http_core_loc_conf_t *php = ut_loc(root(), "\\.php$");
    assert_http_level(php);
    assert_http_level(ut_loc(php, "^/x"));
}
END_TEST

START_TEST(test_location_override_wins_for_itself_and_its_nested_location)
{
    rp_http_core_loc_conf_t *c = ut_loc(root(), "/c");
    assert_location_c_level(c);
    assert_location_c_level(ut_loc(c, "/c/d"));
}
END_TEST

START_TEST(test_sibling_location_does_not_see_an_override)
{
    assert_http_level(ut_loc(root(), "/e"));
}
END_TEST

START_TEST(test_location_override_does_not_leak_up_to_its_server)
{
    assert_http_level(root());
    rp_http_conf_ctx_t *http = *(rp_http_conf_ctx_t **)cycle->main_conf[rp_http_module.index];
    rp_http_core_loc_conf_t *h = http->loc_conf[rp_http_core_module.index];
    ck_assert_int_eq(h->keepalive_timeout, SEC(10));
    ck_assert_str_eq(h->default_type, "application/json");
}
END_TEST

START_TEST(test_server_level_value_reaches_its_locations_but_not_another_server)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    keepalive_timeout 10s;\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        keepalive_timeout 5s;\n"
                               "        default_type text/css;\n"
                               "        location /a {\n"
                               "            location /a/b {\n"
                               "            }\n"
                               "        }\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8081;\n"
                               "        location /a {\n"
                               "        }\n"
                               "    }\n"
                               "}\n");
    rp_http_core_loc_conf_t *one = ut_srv_loc(ut_server(c, 0));
    rp_http_core_loc_conf_t *nested = ut_loc(ut_loc(one, "/a"), "/a/b");
    ck_assert_int_eq(one->keepalive_timeout, SEC(5));
    ck_assert_int_eq(nested->keepalive_timeout, SEC(5));
    ck_assert_str_eq(nested->default_type, "text/css");

    rp_http_core_loc_conf_t *two = ut_loc(ut_srv_loc(ut_server(c, 1)), "/a");
    ck_assert_int_eq(two->keepalive_timeout, SEC(10));
    ck_assert_str_eq(two->default_type, "text/plain");
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_location_defaults_apply_when_set_nowhere)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        location /a {\n"
                               "        }\n"
                               "    }\n"
                               "}\n");
    rp_http_core_loc_conf_t *levels[] = {ut_srv_loc(ut_server(c, 0)),
                                         ut_loc(ut_srv_loc(ut_server(c, 0)), "/a")};
    for (size_t i = 0; i < 2; i++) {
        rp_http_core_loc_conf_t *l = levels[i];
        ck_assert_int_eq(l->keepalive_timeout, SEC(75));
        ck_assert_int_eq(l->keepalive_requests, 1000);
        ck_assert_int_eq(l->send_timeout, SEC(60));
        ck_assert_int_eq(l->client_body_timeout, SEC(60));
        ck_assert_str_eq(l->default_type, "text/plain");
        ck_assert_int_eq(l->server_tokens, 1);
    }
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_server_defaults_apply_when_set_nowhere)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "    }\n"
                               "}\n");
    rp_http_core_srv_conf_t *srv = ut_server(c, 0);
    ck_assert_uint_eq(srv->client_header_buffer_size, 1024);
    ck_assert_uint_eq(srv->large_header_line, 8192);
    ck_assert_uint_eq(srv->large_client_header_buffers, 4 * 8192);
    ck_assert_int_eq(srv->client_header_timeout, SEC(60));
    ck_assert_int_eq(srv->merge_slashes, 1);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_server_settings_inherit_from_http_unless_the_server_sets_them)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    client_header_timeout 7s;\n"
                               "    merge_slashes off;\n"
                               "    large_client_header_buffers 2 1k;\n"
                               "    client_header_buffer_size 512;\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8081;\n"
                               "        client_header_timeout 3s;\n"
                               "        merge_slashes on;\n"
                               "        large_client_header_buffers 8 16k;\n"
                               "    }\n"
                               "}\n");
    rp_http_core_srv_conf_t *a = ut_server(c, 0), *b = ut_server(c, 1);
    ck_assert_int_eq(a->client_header_timeout, SEC(7));
    ck_assert_int_eq(a->merge_slashes, 0);
    ck_assert_uint_eq(a->large_header_line, 1024);
    ck_assert_uint_eq(a->large_client_header_buffers, 2 * 1024);
    ck_assert_uint_eq(a->client_header_buffer_size, 512);
    ck_assert_int_eq(b->client_header_timeout, SEC(3));
    ck_assert_int_eq(b->merge_slashes, 1);
    ck_assert_uint_eq(b->large_header_line, 16 * 1024);
    ck_assert_uint_eq(b->large_client_header_buffers, 8 * 16 * 1024);
    ck_assert_uint_eq(b->client_header_buffer_size, 512);
    rp_cycle_destroy(c);
}
END_TEST

static Suite *inherit_suite(void)
{
    Suite *s = suite_create("inherit");
    TCase *tc = tcase_create("from http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_http_level_values_reach_a_server);
    tcase_add_test(tc, test_http_level_values_reach_a_location_and_its_nested_location);
    tcase_add_test(tc, test_http_level_values_reach_exact_and_regex_locations);
    tcase_add_test(tc, test_location_override_wins_for_itself_and_its_nested_location);
    tcase_add_test(tc, test_sibling_location_does_not_see_an_override);
    tcase_add_test(tc, test_location_override_does_not_leak_up_to_its_server);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels and defaults");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_server_level_value_reaches_its_locations_but_not_another_server);
    tcase_add_test(tc, test_location_defaults_apply_when_set_nowhere);
    tcase_add_test(tc, test_server_defaults_apply_when_set_nowhere);
    tcase_add_test(tc, test_server_settings_inherit_from_http_unless_the_server_sets_them);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(inherit_suite());
}
