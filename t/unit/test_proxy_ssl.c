/*
 * The configuration side of proxy_pass https://: which upstream group an https
 * URL makes (port 443 by default, never the plain group of the same address),
 * how the proxy_ssl_* settings are inherited, and how TLS contexts and TLS
 * objects are shared: one context per distinct set of context settings, one
 * object per group, name and per-connection flags. The handshake itself is
 * covered end to end by t/integration/test_proxy_tls.py.
 */
#include "upstream/proxy.h"
#include "upstream/upstream_ssl.h"
#include "net/tls.h"
#include "unit.h"

static rp_cycle_t *cycle;

static const char *conf =
    "http {\n"
    "    proxy_ssl_server_name on;\n"
    "    upstream be { server 127.0.0.1:9443; keepalive 2; }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        location /a { proxy_pass https://be; }\n"
    "        location /b { proxy_pass https://be/b/; }\n"
    "        location /name { proxy_ssl_name api.test; proxy_pass https://be; }\n"
    "        location /v13 { proxy_ssl_protocols TLSv1.3; proxy_pass https://be; }\n"
    "        location /plain { proxy_pass http://be; }\n"
    "        location /imp { proxy_pass https://127.0.0.1:9443; }\n"
    "        location /imp-plain { proxy_pass http://127.0.0.1:9443; }\n"
    "        location /default-port { proxy_pass https://127.0.0.1; }\n"
    "        location /no-sni { proxy_ssl_server_name off; proxy_ssl_session_reuse off;\n"
    "                           proxy_pass https://be; }\n"
    "    }\n"
    "}\n";

static void setup(void)
{
    ut_setup_dir();
    cycle = ut_load_ok(conf);
}

static void teardown(void)
{
    rp_cycle_destroy(cycle);
    ut_teardown_dir();
}

static rp_proxy_loc_conf_t *proxy(const char *name)
{
    rp_http_core_loc_conf_t *l = ut_loc(ut_srv_loc(ut_server(cycle, 0)), name);
    return l->loc_conf[rp_proxy_module.index];
}

static rp_upstream_ssl_conf_t *ssl_conf(const char *name)
{
    rp_http_core_loc_conf_t *l = ut_loc(ut_srv_loc(ut_server(cycle, 0)), name);
    return l->loc_conf[rp_proxy_ssl_module.index];
}

START_TEST(test_defaults_apply_where_nothing_sets_them)
{
    rp_upstream_ssl_conf_t *s = ssl_conf("/a");
    ck_assert_int_eq(s->verify, 0);
    ck_assert_int_eq(s->verify_depth, 1);
    ck_assert_int_eq(s->session_reuse, 1);
    ck_assert_int_eq(s->protocols, RP_TLS12 | RP_TLS13);
    ck_assert_ptr_null(s->name);
    ck_assert_ptr_null(s->trusted.value);
}
END_TEST

START_TEST(test_http_level_setting_is_inherited_and_a_location_overrides_it)
{
    ck_assert_int_eq(ssl_conf("/a")->server_name, 1);
    ck_assert_int_eq(ssl_conf("/no-sni")->server_name, 0);
    ck_assert_int_eq(ssl_conf("/no-sni")->session_reuse, 0);
}
END_TEST

START_TEST(test_the_default_name_is_the_proxy_pass_host_without_port)
{
    ck_assert_str_eq(proxy("/a")->tls->name, "be");
    ck_assert_uint_eq(proxy("/a")->tls->sni, 1);
    ck_assert_str_eq(proxy("/imp")->tls->name, "127.0.0.1");
    ck_assert_uint_eq(proxy("/imp")->tls->name_is_ip, 1);
    ck_assert_uint_eq(proxy("/imp")->tls->sni, 0); /* an address is never SNI */
    ck_assert_str_eq(proxy("/name")->tls->name, "api.test");
}
END_TEST

START_TEST(test_locations_with_the_same_settings_share_one_tls_object)
{
    ck_assert_ptr_eq(proxy("/a")->tls, proxy("/b")->tls);
    ck_assert_ptr_null(proxy("/plain")->tls);
    ck_assert_uint_eq(proxy("/a")->https, 1);
    ck_assert_uint_eq(proxy("/plain")->https, 0);
}
END_TEST

START_TEST(test_another_name_shares_the_context_but_not_the_object)
{
    rp_upstream_tls_t *a = proxy("/a")->tls, *n = proxy("/name")->tls;
    ck_assert_ptr_ne(a, n);
    ck_assert_ptr_eq(a->ctx, n->ctx);
    rp_upstream_tls_t *off = proxy("/no-sni")->tls;
    ck_assert_ptr_ne(a, off); /* sessions of one are not offered by the other */
    ck_assert_ptr_eq(a->ctx, off->ctx);
    ck_assert_uint_eq(off->reuse, 0);
}
END_TEST

START_TEST(test_other_protocols_make_another_context)
{
    ck_assert_ptr_ne(proxy("/a")->tls->ctx, proxy("/v13")->tls->ctx);
}
END_TEST

START_TEST(test_an_upstream_block_serves_both_schemes)
{
    ck_assert_ptr_eq(proxy("/a")->upstream, proxy("/plain")->upstream);
    ck_assert_str_eq(proxy("/a")->upstream->name, "be");
}
END_TEST

START_TEST(test_https_and_http_to_one_address_are_two_implicit_groups)
{
    rp_upstream_conf_t *tls = proxy("/imp")->upstream, *plain = proxy("/imp-plain")->upstream;
    ck_assert_ptr_ne(tls, plain);
    ck_assert_uint_eq(tls->implicit_tls, 1);
    ck_assert_uint_eq(plain->implicit_tls, 0);
    ck_assert_str_eq(tls->name, "127.0.0.1:9443");
}
END_TEST

START_TEST(test_https_without_a_port_goes_to_443)
{
    rp_upstream_conf_t *u = proxy("/default-port")->upstream;
    ck_assert_str_eq(u->name, "127.0.0.1:443");
    ck_assert_str_eq(RP_ARRAY_AT(&u->servers, rp_upstream_server_t, 0).name, "127.0.0.1:443");
}
END_TEST

START_TEST(test_verify_without_a_trusted_certificate_is_refused_at_its_line)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;\n"
                    "        proxy_ssl_verify on;\n"
                    "        location / { proxy_pass https://127.0.0.1:9443; }\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:4: \"proxy_ssl_verify\": no \"proxy_ssl_trusted_certificate\" "
                    "is defined for it");
}
END_TEST

START_TEST(test_the_settings_of_a_plain_location_are_not_loaded)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        proxy_ssl_verify on;\n"
                               "        location / { proxy_pass http://127.0.0.1:9443; }\n"
                               "    }\n"
                               "}\n");
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_a_scheme_other_than_http_and_https_is_refused)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;\n"
                    "        location / { proxy_pass ftp://127.0.0.1:9443; }\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:4: \"proxy_pass\": invalid URL prefix in "
                    "\"ftp://127.0.0.1:9443\" (expected http:// or https://)");
}
END_TEST

static Suite *proxy_ssl_suite(void)
{
    Suite *s = suite_create("proxy_ssl");
    TCase *tc = tcase_create("sharing and inheritance");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults_apply_where_nothing_sets_them);
    tcase_add_test(tc, test_http_level_setting_is_inherited_and_a_location_overrides_it);
    tcase_add_test(tc, test_the_default_name_is_the_proxy_pass_host_without_port);
    tcase_add_test(tc, test_locations_with_the_same_settings_share_one_tls_object);
    tcase_add_test(tc, test_another_name_shares_the_context_but_not_the_object);
    tcase_add_test(tc, test_other_protocols_make_another_context);
    tcase_add_test(tc, test_an_upstream_block_serves_both_schemes);
    tcase_add_test(tc, test_https_and_http_to_one_address_are_two_implicit_groups);
    tcase_add_test(tc, test_https_without_a_port_goes_to_443);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_verify_without_a_trusted_certificate_is_refused_at_its_line);
    tcase_add_test(tc, test_the_settings_of_a_plain_location_are_not_loaded);
    tcase_add_test(tc, test_a_scheme_other_than_http_and_https_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(proxy_ssl_suite());
}
