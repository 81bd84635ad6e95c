/*
 * Where a relative path in the configuration leads, by nginx's rule: files that
 * are part of the configuration (include, certificates, keys, CA lists, ticket
 * keys) are found in the folder of the main configuration file, whichever file
 * names them; files rampart writes at run time (pid, error_log, access_log) go
 * under the prefix. Each test puts the configuration in a subfolder of the
 * prefix, or outside it, so that the two rules lead to different places.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "http/ssl.h"
#include "upstream/proxy.h"
#include "upstream/upstream_ssl.h"
#include "unit.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static rp_cycle_t *load_ok(const char *rel)
{
    rp_cycle_t *cycle = ut_load_file(rel);
    ck_assert_msg(cycle != NULL, "configuration refused: %s", ut_err);
    return cycle;
}

START_TEST(test_include_in_an_included_file_is_relative_to_the_main_files_folder)
{
    ut_write("conf/rampart.conf", "http {\n"
                                  "    include conf.d/http.conf;\n"
                                  "}\n");
    ut_write("conf/conf.d/http.conf", "include conf.d/servers/*.conf;\n");
    ut_write("conf/conf.d/servers/20-b.conf", "server {\n"
                                              "    listen 127.0.0.1:8002;\n"
                                              "}\n");
    ut_write("conf/conf.d/servers/10-a.conf", "server {\n"
                                              "    listen 127.0.0.1:8001;\n"
                                              "}\n");
    ut_write("conf/conf.d/servers/README", "not a configuration file\n");
    /* where the same pattern leads from the including file's folder, and from the prefix */
    ut_write("conf/conf.d/conf.d/servers/decoy.conf", "bogus;\n");
    ut_write("conf.d/servers/decoy.conf", "bogus;\n");

    rp_cycle_t *cycle = load_ok("conf/rampart.conf");
    ck_assert_uint_eq(cycle->files.nelts, 4);
    const char *want[] = {"@/conf/rampart.conf", "@/conf/conf.d/http.conf",
                          "@/conf/conf.d/servers/10-a.conf", "@/conf/conf.d/servers/20-b.conf"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(RP_ARRAY_AT(&cycle->files, rp_conf_file_t, i).path, ut_expand(want[i]));

    /* glob order is the order of the servers */
    rp_http_core_srv_conf_t *a = ut_server(cycle, 0), *b = ut_server(cycle, 1);
    ck_assert_str_eq(RP_ARRAY_AT(&a->listens, rp_listen_opt_t, 0).text, "127.0.0.1:8001");
    ck_assert_str_eq(RP_ARRAY_AT(&b->listens, rp_listen_opt_t, 0).text, "127.0.0.1:8002");
    ck_assert_str_eq(a->file, ut_expand("@/conf/conf.d/servers/10-a.conf"));
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_include_follows_a_configuration_outside_the_prefix)
{
    ut_write("elsewhere/main.conf", "include core.conf;\n");
    ut_write("elsewhere/core.conf", "worker_processes 3;\n");
    ut_write("core.conf", "bogus;\n"); /* the same name under the prefix */

    rp_cycle_t *cycle = load_ok(ut_path("elsewhere/main.conf"));
    ck_assert_int_eq(rp_core_conf(cycle)->worker_processes, 3);
    ck_assert_str_eq(cycle->conf_prefix, ut_expand("@/elsewhere"));
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_upstream_tls_files_are_relative_to_the_main_files_folder)
{
    ut_write("conf/rampart.conf", "http {\n"
                                  "    server {\n"
                                  "        listen 127.0.0.1:8080;\n"
                                  "        include conf.d/locations.conf;\n"
                                  "    }\n"
                                  "}\n");
    /* a cleartext proxy_pass stores the files without reading them */
    ut_write("conf/conf.d/locations.conf",
             "location /p {\n"
             "    proxy_ssl_certificate tls/client.crt;\n"
             "    proxy_ssl_certificate_key tls/client.key;\n"
             "    proxy_ssl_trusted_certificate /etc/ssl/ca.crt;\n"
             "    proxy_pass http://127.0.0.1:9001;\n"
             "}\n"
             "location /g {\n"
             "    grpc_ssl_trusted_certificate tls/ca.crt;\n"
             "    grpc_pass grpc://127.0.0.1:9002;\n"
             "}\n");

    rp_cycle_t *cycle = load_ok("conf/rampart.conf");
    rp_http_core_loc_conf_t *srv = ut_srv_loc(ut_server(cycle, 0));
    rp_upstream_ssl_conf_t *p = ut_loc(srv, "/p")->loc_conf[rp_proxy_ssl_module.index];
    rp_upstream_ssl_conf_t *g = ut_loc(srv, "/g")->loc_conf[rp_grpc_ssl_module.index];
    ck_assert_str_eq(p->certificate.value, ut_expand("@/conf/tls/client.crt"));
    ck_assert_str_eq(p->certificate_key.value, ut_expand("@/conf/tls/client.key"));
    ck_assert_str_eq(p->trusted.value, "/etc/ssl/ca.crt");
    ck_assert_str_eq(g->trusted.value, ut_expand("@/conf/tls/ca.crt"));
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_server_tls_files_are_relative_to_the_main_files_folder)
{
    char key[80];
    memset(key, 'k', sizeof(key));
    ut_write_n("conf/tls/ticket.key", key, sizeof(key));
    ut_write("conf/rampart.conf", "http {\n"
                                  "    server {\n"
                                  "        listen 127.0.0.1:8443 ssl;\n"
                                  "        ssl_session_ticket_key tls/ticket.key;\n"
                                  "        ssl_certificate tls/missing.crt;\n"
                                  "        ssl_certificate_key tls/missing.key;\n"
                                  "    }\n"
                                  "}\n");

    /* the ticket key was read from conf/tls; the certificate is looked for there too */
    ck_assert_ptr_null(ut_load_file("conf/rampart.conf"));
    const char *want = ut_expand("@/conf/rampart.conf:5: \"ssl_certificate\": cannot load "
                                 "\"@/conf/tls/missing.crt\": ");
    ck_assert_msg(strncmp(ut_err, want, strlen(want)) == 0, "%s", ut_err);
}
END_TEST

START_TEST(test_run_time_files_are_relative_to_the_prefix)
{
    ut_write("conf/rampart.conf", "pid run/rampart.pid;\n"
                                  "error_log logs/error.log;\n");
    rp_cycle_t *cycle = load_ok("conf/rampart.conf");
    ck_assert_str_eq(rp_core_conf(cycle)->pid, ut_expand("@/run/rampart.pid"));
    ck_assert_str_eq(rp_core_conf(cycle)->error_log, ut_expand("@/logs/error.log"));
    rp_cycle_destroy(cycle);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("paths");
    TCase *tc = tcase_create("paths");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_include_in_an_included_file_is_relative_to_the_main_files_folder);
    tcase_add_test(tc, test_include_follows_a_configuration_outside_the_prefix);
    tcase_add_test(tc, test_upstream_tls_files_are_relative_to_the_main_files_folder);
    tcase_add_test(tc, test_server_tls_files_are_relative_to_the_main_files_folder);
    tcase_add_test(tc, test_run_time_files_are_relative_to_the_prefix);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(suite());
}
