/*
 * Routing: path and Host normalization, then which location answers a path and
 * which server answers a Host, with nginx's precedence. Locations and servers
 * come from configurations loaded from files, so the tests also show that what
 * the parser builds (sorted prefixes, regexes in order, default servers) is what
 * the matcher expects.
 */
#include "net/listen.h"
#include "route/route.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

/* rp_uri_normalize into a buffer of exactly the promised size; "REFUSED" for -1. */
static const char *norm_n(const char *path, size_t len, int merge_slashes)
{
    static char result[1024];
    char *out = malloc(len + 1);
    size_t out_len = 0;
    int rc = rp_uri_normalize(path, len, out, &out_len, merge_slashes);
    if (rc == 0) {
        ck_assert_uint_le(out_len, len);
        ck_assert_uint_eq(strlen(out), out_len);
        snprintf(result, sizeof(result), "%s", out);
    } else {
        ck_assert_int_eq(rc, -1);
        snprintf(result, sizeof(result), "REFUSED");
    }
    free(out);
    return result;
}

static const char *norm(const char *path)
{
    return norm_n(path, strlen(path), 1);
}

static const char *norm_keep_slashes(const char *path)
{
    return norm_n(path, strlen(path), 0);
}

static const char *host_n(const char *host, size_t len)
{
    static char result[1024];
    char *out = malloc(len + 1);
    size_t out_len = 0;
    if (rp_host_normalize(host, len, out, &out_len) == 0) {
        ck_assert_uint_le(out_len, len);
        snprintf(result, sizeof(result), "%.*s", (int)out_len, out);
    } else {
        snprintf(result, sizeof(result), "REFUSED");
    }
    free(out);
    return result;
}

static const char *host(const char *h)
{
    return host_n(h, strlen(h));
}

/* path normalization */

START_TEST(test_plain_path_is_unchanged)
{
    ck_assert_str_eq(norm("/"), "/");
    ck_assert_str_eq(norm("/a/b/c.html"), "/a/b/c.html");
    ck_assert_str_eq(norm("/a/b/"), "/a/b/");
}
END_TEST

START_TEST(test_percent_escapes_are_decoded_once)
{
    ck_assert_str_eq(norm("/a%20b/%41%62"), "/a b/Ab");
    ck_assert_str_eq(norm("/%7euser/%7Efile"), "/~user/~file");
    /* "%25" is a literal "%": what it spells is not decoded again */
    ck_assert_str_eq(norm("/a/%252e%252e/b"), "/a/%2e%2e/b");
}
END_TEST

START_TEST(test_encoded_dot_segments_are_resolved)
{
    ck_assert_str_eq(norm("/a/%2e%2e/admin"), "/admin");
    ck_assert_str_eq(norm("/a/%2E%2E/admin"), "/admin");
    ck_assert_str_eq(norm("/a/.%2e/admin"), "/admin");
    ck_assert_str_eq(norm("/a/%2e./admin"), "/admin");
    ck_assert_str_eq(norm("/%2e/admin"), "/admin");
}
END_TEST

START_TEST(test_encoded_slash_separates_segments)
{
    ck_assert_str_eq(norm("/a%2fb"), "/a/b");
    ck_assert_str_eq(norm("/a%2f..%2fadmin"), "/admin");
    ck_assert_str_eq(norm("/a/..%2Fadmin"), "/admin");
}
END_TEST

START_TEST(test_dot_segments_are_resolved)
{
    ck_assert_str_eq(norm("/a/./b"), "/a/b");
    ck_assert_str_eq(norm("/a/b/../c"), "/a/c");
    ck_assert_str_eq(norm("/a/b/c/../../d"), "/a/d");
    ck_assert_str_eq(norm("/a/b/.."), "/a/");
    ck_assert_str_eq(norm("/a/."), "/a/");
    ck_assert_str_eq(norm("/a/.."), "/");
    ck_assert_str_eq(norm("/."), "/");
    ck_assert_str_eq(norm("/./"), "/");
}
END_TEST

START_TEST(test_dots_inside_a_segment_are_kept)
{
    ck_assert_str_eq(norm("/a./b"), "/a./b");
    ck_assert_str_eq(norm("/.well-known/x"), "/.well-known/x");
    ck_assert_str_eq(norm("/a..b/..c/c.."), "/a..b/..c/c..");
    ck_assert_str_eq(norm("/.../x"), "/.../x");
}
END_TEST

START_TEST(test_merge_slashes_collapses_runs_of_slashes)
{
    ck_assert_str_eq(norm("//a///b//"), "/a/b/");
    ck_assert_str_eq(norm("/a/.//b"), "/a/b");
    ck_assert_str_eq(norm("/a%2f%2fb"), "/a/b");
}
END_TEST

START_TEST(test_merge_slashes_off_keeps_runs_of_slashes)
{
    ck_assert_str_eq(norm_keep_slashes("//a///b//"), "//a///b//");
    ck_assert_str_eq(norm_keep_slashes("/a/.//b"), "/a//b");
    ck_assert_str_eq(norm_keep_slashes("/a//../b"), "/a/b");
    ck_assert_str_eq(norm_keep_slashes("/a/./b/../c"), "/a/c");
}
END_TEST

START_TEST(test_dot_dot_above_the_root_is_refused)
{
    ck_assert_str_eq(norm("/.."), "REFUSED");
    ck_assert_str_eq(norm("/../a"), "REFUSED");
    ck_assert_str_eq(norm("/a/../.."), "REFUSED");
    ck_assert_str_eq(norm("/a/../../b"), "REFUSED");
    ck_assert_str_eq(norm("/%2e%2e"), "REFUSED");
    ck_assert_str_eq(norm("/a/%2e%2e/%2e%2e/etc/passwd"), "REFUSED");
    ck_assert_str_eq(norm_keep_slashes("/../a"), "REFUSED");
}
END_TEST

START_TEST(test_encoded_nul_is_refused)
{
    ck_assert_str_eq(norm("/a%00b"), "REFUSED");
    ck_assert_str_eq(norm("/a%00"), "REFUSED");
}
END_TEST

START_TEST(test_bad_escape_is_refused)
{
    ck_assert_str_eq(norm("/a%"), "REFUSED");
    ck_assert_str_eq(norm("/a%2"), "REFUSED");
    ck_assert_str_eq(norm("/a%zz"), "REFUSED");
    ck_assert_str_eq(norm("/a%g0/b"), "REFUSED");
    ck_assert_str_eq(norm("/a%0g/b"), "REFUSED");
}
END_TEST

START_TEST(test_path_not_starting_with_a_slash_is_refused)
{
    ck_assert_str_eq(norm(""), "REFUSED");
    ck_assert_str_eq(norm("a/b"), "REFUSED");
    ck_assert_str_eq(norm("%2fa"), "REFUSED");
    ck_assert_str_eq(norm("*"), "REFUSED");
}
END_TEST

START_TEST(test_normalization_reads_only_the_given_length)
{
    /* the path is a slice of the request line: bytes after len are not part of it */
    ck_assert_str_eq(norm_n("/a/..?x=/../..", 5, 1), "/");
    ck_assert_str_eq(norm_n("/a%2e%2e", 4, 1), "REFUSED");
}
END_TEST

/* host normalization */

START_TEST(test_host_is_lowercased)
{
    ck_assert_str_eq(host("Example.COM"), "example.com");
    ck_assert_str_eq(host("localhost"), "localhost");
}
END_TEST

START_TEST(test_host_port_is_removed)
{
    ck_assert_str_eq(host("example.com:8080"), "example.com");
    ck_assert_str_eq(host("10.0.0.1:80"), "10.0.0.1");
}
END_TEST

START_TEST(test_host_trailing_dot_is_removed)
{
    ck_assert_str_eq(host("example.com."), "example.com");
    ck_assert_str_eq(host("Example.com.:443"), "example.com");
}
END_TEST

START_TEST(test_ipv6_literal_keeps_its_brackets_and_loses_its_port)
{
    ck_assert_str_eq(host("[::1]:8080"), "[::1]");
    ck_assert_str_eq(host("[::1]"), "[::1]");
    ck_assert_str_eq(host("[2001:DB8::1]:443"), "[2001:db8::1]");
}
END_TEST

START_TEST(test_host_with_invalid_characters_is_refused)
{
    ck_assert_str_eq(host("exa mple.com"), "REFUSED");
    ck_assert_str_eq(host("a/b.com"), "REFUSED");
    ck_assert_str_eq(host("a\\b.com"), "REFUSED");
    ck_assert_str_eq(host("a\tb"), "REFUSED");
    ck_assert_str_eq(host("a\x7f"), "REFUSED");
    ck_assert_str_eq(host_n("a\0b", 3), "REFUSED");
}
END_TEST

START_TEST(test_host_with_empty_labels_is_refused)
{
    ck_assert_str_eq(host("a..b"), "REFUSED");
    ck_assert_str_eq(host(".example.com"), "REFUSED");
    ck_assert_str_eq(host("."), "REFUSED");
    ck_assert_str_eq(host("example.com.."), "REFUSED");
}
END_TEST

START_TEST(test_empty_host_is_refused)
{
    ck_assert_str_eq(host(""), "REFUSED");
    ck_assert_str_eq(host(":80"), "REFUSED");
}
END_TEST

START_TEST(test_host_with_a_bad_port_or_bracket_is_refused)
{
    ck_assert_str_eq(host("example.com:8x"), "REFUSED");
    ck_assert_str_eq(host("example.com:80:90"), "REFUSED");
    ck_assert_str_eq(host("[::1"), "REFUSED");
    ck_assert_str_eq(host("[::1]x"), "REFUSED");
    ck_assert_str_eq(host("[::1]:8x"), "REFUSED");
}
END_TEST

/* location precedence */

static rp_cycle_t *cycle;

static const char *locations_conf = "http {\n"
                                    "    server {\n"
                                    "        listen 127.0.0.1:8080;\n"
                                    "        location / {\n"
                                    "        }\n"
                                    "        location = /exact {\n"
                                    "        }\n"
                                    "        location /exact {\n"
                                    "        }\n"
                                    "        location /static/ {\n"
                                    "        }\n"
                                    "        location /static/images/ {\n"
                                    "        }\n"
                                    "        location ^~ /assets/ {\n"
                                    "            location ~ \\.map$ {\n"
                                    "            }\n"
                                    "        }\n"
                                    "        location /assets/js/ {\n"
                                    "        }\n"
                                    "        location ~ \\.php$ {\n"
                                    "        }\n"
                                    "        location ~* \\.(png|jpg)$ {\n"
                                    "        }\n"
                                    "        location ~ ^/static/images/big {\n"
                                    "        }\n"
                                    "        location /api/ {\n"
                                    "            location /api/v1/ {\n"
                                    "            }\n"
                                    "            location ~ ^/api/.*\\.json$ {\n"
                                    "            }\n"
                                    "            location = /api/ping {\n"
                                    "            }\n"
                                    "        }\n"
                                    "    }\n"
                                    "}\n";

static void locations_setup(void)
{
    ut_setup_dir();
    cycle = ut_load_ok(locations_conf);
}

static void locations_teardown(void)
{
    rp_cycle_destroy(cycle);
    ut_teardown_dir();
}

/* The chosen location, spelled as in the configuration ("= /exact", "~ \.php$"). */
static const char *route(const char *path)
{
    static char buf[256];
    rp_http_core_loc_conf_t *root = ut_srv_loc(ut_server(cycle, 0));
    rp_http_core_loc_conf_t *l = rp_route_location(root, path, strlen(path));
    ck_assert_ptr_nonnull(l);
    const char *mod = "";
    switch (l->kind) {
    case RP_LOC_SERVER:
        return "(server)";
    case RP_LOC_EXACT:
        mod = "= ";
        break;
    case RP_LOC_PREFIX_NOREGEX:
        mod = "^~ ";
        break;
    case RP_LOC_REGEX:
        mod = "~ ";
        break;
    case RP_LOC_REGEX_CASELESS:
        mod = "~* ";
        break;
    }
    snprintf(buf, sizeof(buf), "%s%s", mod, l->name);
    return buf;
}

START_TEST(test_exact_location_beats_a_prefix)
{
    ck_assert_str_eq(route("/exact"), "= /exact");
    ck_assert_str_eq(route("/exact/"), "/exact");
    ck_assert_str_eq(route("/exactly"), "/exact");
}
END_TEST

START_TEST(test_longest_prefix_wins_whatever_the_order)
{
    ck_assert_str_eq(route("/static/images/a.gif"), "/static/images/");
    ck_assert_str_eq(route("/static/css/a.css"), "/static/");
    ck_assert_str_eq(route("/static"), "/");
    ck_assert_str_eq(route("/other"), "/");
}
END_TEST

START_TEST(test_no_regex_prefix_stops_regex_checking)
{
    ck_assert_str_eq(route("/assets/x.php"), "^~ /assets/");
    ck_assert_str_eq(route("/assets/logo.png"), "^~ /assets/");
}
END_TEST

START_TEST(test_no_regex_prefix_counts_only_when_it_is_the_longest)
{
    /* "/assets/js/" is longer and plain: regexes are checked again */
    ck_assert_str_eq(route("/assets/js/app.php"), "~ \\.php$");
    ck_assert_str_eq(route("/assets/js/app.js"), "/assets/js/");
}
END_TEST

START_TEST(test_no_regex_prefix_still_checks_its_nested_regexes)
{
    ck_assert_str_eq(route("/assets/app.map"), "~ \\.map$");
}
END_TEST

START_TEST(test_regex_beats_a_plain_prefix)
{
    ck_assert_str_eq(route("/static/x.php"), "~ \\.php$");
    ck_assert_str_eq(route("/static/images/big.gif"), "~ ^/static/images/big");
}
END_TEST

START_TEST(test_first_matching_regex_in_order_wins)
{
    /* matches "\.php$" and "^/static/images/big": the first written wins */
    ck_assert_str_eq(route("/static/images/big.php"), "~ \\.php$");
}
END_TEST

START_TEST(test_caseless_regex_ignores_case_and_plain_regex_does_not)
{
    ck_assert_str_eq(route("/A.PNG"), "~* \\.(png|jpg)$");
    ck_assert_str_eq(route("/X.PHP"), "/");
}
END_TEST

START_TEST(test_nested_locations_refine_their_parent)
{
    ck_assert_str_eq(route("/api/v1/users"), "/api/v1/");
    ck_assert_str_eq(route("/api/v2/users"), "/api/");
    ck_assert_str_eq(route("/api/ping"), "= /api/ping");
}
END_TEST

START_TEST(test_nested_regex_beats_a_nested_prefix)
{
    ck_assert_str_eq(route("/api/v1/users.json"), "~ ^/api/.*\\.json$");
}
END_TEST

START_TEST(test_outer_regex_is_checked_when_nested_locations_have_no_regex_match)
{
    ck_assert_str_eq(route("/api/v1/x.php"), "~ \\.php$");
    ck_assert_str_eq(route("/api/x.php"), "~ \\.php$");
}
END_TEST

START_TEST(test_server_location_answers_when_no_location_matches)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        location /a {\n"
                               "        }\n"
                               "    }\n"
                               "}\n");
    rp_http_core_loc_conf_t *root = ut_srv_loc(ut_server(c, 0));
    ck_assert_ptr_eq(rp_route_location(root, "/b", 2), root);
    ck_assert_ptr_eq(rp_route_location(root, "/a/x", 4), ut_loc(root, "/a"));
    rp_cycle_destroy(c);
}
END_TEST

/* server selection */

/* The index of the server that answers host on address addr. */
static int server_for(rp_cycle_t *c, const char *addr, const char *host_name)
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(c);
    for (size_t a = 0; a < cmcf->addrs.nelts; a++) {
        rp_http_addr_t *ad = RP_ARRAY_AT(&cmcf->addrs, rp_http_addr_t *, a);
        if (strcmp(ad->listening->text, addr) != 0)
            continue;
        rp_http_core_srv_conf_t *srv = rp_route_server(ad, host_name, strlen(host_name));
        for (size_t s = 0; s < cmcf->servers.nelts; s++)
            if (RP_ARRAY_AT(&cmcf->servers, rp_http_core_srv_conf_t *, s) == srv)
                return (int)s;
        ck_abort_msg("server of \"%s\" is not in the http block", host_name);
    }
    ck_abort_msg("no address %s", addr);
    return -1;
}

#define A "127.0.0.1:8080"

static const char *names_conf =
    "http {\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name example.com www.example.com;\n"
    "    }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name *.example.com;\n"
    "    }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name *.api.example.com;\n"
    "    }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name www.example.*;\n"
    "    }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name ~^[a-z]+\\.users\\.test$ ~^u[0-9]+\\.users\\.test$;\n"
    "    }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name ~\\.test$ ~example;\n"
    "    }\n"
    "    server {\n"
    "        listen 127.0.0.1:8080;\n"
    "        server_name .shop.test www.*;\n"
    "    }\n"
    "}\n";

static void names_setup(void)
{
    ut_setup_dir();
    cycle = ut_load_ok(names_conf);
}

START_TEST(test_exact_server_name_wins)
{
    ck_assert_int_eq(server_for(cycle, A, "example.com"), 0);
    ck_assert_int_eq(server_for(cycle, A, "www.example.com"), 0);
}
END_TEST

START_TEST(test_longest_leading_wildcard_wins)
{
    ck_assert_int_eq(server_for(cycle, A, "a.example.com"), 1);
    ck_assert_int_eq(server_for(cycle, A, "x.api.example.com"), 2);
    ck_assert_int_eq(server_for(cycle, A, "api.example.com"), 1);
}
END_TEST

START_TEST(test_leading_wildcard_needs_a_subdomain)
{
    /* "*.api.example.com" does not match "api.example.com", "*.example.com" does */
    ck_assert_int_eq(server_for(cycle, A, "api.example.com"), 1);
}
END_TEST

START_TEST(test_trailing_wildcard_matches_any_ending_longest_first)
{
    ck_assert_int_eq(server_for(cycle, A, "www.example.org"), 3);
    ck_assert_int_eq(server_for(cycle, A, "www.other.net"), 6);
}
END_TEST

START_TEST(test_leading_wildcard_beats_trailing_wildcard)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name www.example.*;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name *.example.com;\n"
                               "    }\n"
                               "}\n");
    ck_assert_int_eq(server_for(c, A, "www.example.com"), 1);
    ck_assert_int_eq(server_for(c, A, "www.example.org"), 0);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_dot_name_matches_the_domain_and_its_subdomains)
{
    ck_assert_int_eq(server_for(cycle, A, "shop.test"), 6);
    ck_assert_int_eq(server_for(cycle, A, "eu.shop.test"), 6);
}
END_TEST

START_TEST(test_dot_name_matches_only_its_domain_wherever_it_is_written)
{
    /* ".example.com" after other names: the list it lands in grows while it is added */
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name first.test;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name foo.test .example.com;\n"
                               "    }\n"
                               "}\n");
    ck_assert_int_eq(server_for(c, A, "example.com"), 1);
    ck_assert_int_eq(server_for(c, A, "a.example.com"), 1);
    ck_assert_int_eq(server_for(c, A, "unknown.test"), 0);
    ck_assert_int_eq(server_for(c, A, "example.org"), 0);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_regex_server_names_are_tried_in_order_after_wildcards)
{
    ck_assert_int_eq(server_for(cycle, A, "bob.users.test"), 4);
    ck_assert_int_eq(server_for(cycle, A, "u42.users.test"), 4);
    ck_assert_int_eq(server_for(cycle, A, "other.test"), 5);
    /* "~example" matches, but the wildcard "*.example.com" comes first */
    ck_assert_int_eq(server_for(cycle, A, "b.example.com"), 1);
    ck_assert_int_eq(server_for(cycle, A, "example.net"), 5);
}
END_TEST

START_TEST(test_first_server_of_an_address_is_its_default)
{
    ck_assert_int_eq(server_for(cycle, A, "unknown.org"), 0);
    ck_assert_int_eq(server_for(cycle, A, ""), 0);
}
END_TEST

START_TEST(test_default_server_flag_beats_the_first_server)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        listen 127.0.0.1:8081;\n"
                               "        server_name a.test;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080 default_server;\n"
                               "        server_name b.test;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8081;\n"
                               "        server_name c.test;\n"
                               "    }\n"
                               "}\n");
    ck_assert_int_eq(server_for(c, "127.0.0.1:8080", "unknown.test"), 1);
    ck_assert_int_eq(server_for(c, "127.0.0.1:8080", "a.test"), 0);
    /* the flag is per address: on 8081 the first server stays the default */
    ck_assert_int_eq(server_for(c, "127.0.0.1:8081", "unknown.test"), 0);
    ck_assert_int_eq(server_for(c, "127.0.0.1:8081", "c.test"), 2);
    /* b.test does not listen on 8081: that name is unknown there */
    ck_assert_int_eq(server_for(c, "127.0.0.1:8081", "b.test"), 0);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_empty_server_name_answers_requests_without_a_host)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name a.test;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name \"\";\n"
                               "    }\n"
                               "}\n");
    ck_assert_int_eq(server_for(c, A, ""), 1);
    ck_assert_int_eq(server_for(c, A, "b.test"), 0);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_server_names_are_matched_case_insensitively)
{
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "    }\n"
                               "    server {\n"
                               "        listen 127.0.0.1:8080;\n"
                               "        server_name Example.COM *.Wild.Test;\n"
                               "    }\n"
                               "}\n");
    /* a Host is lowercased by rp_host_normalize before it gets here */
    ck_assert_int_eq(server_for(c, A, "example.com"), 1);
    ck_assert_int_eq(server_for(c, A, "x.wild.test"), 1);
    rp_cycle_destroy(c);
}
END_TEST

static Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("path normalization");
    tcase_add_test(tc, test_plain_path_is_unchanged);
    tcase_add_test(tc, test_percent_escapes_are_decoded_once);
    tcase_add_test(tc, test_encoded_dot_segments_are_resolved);
    tcase_add_test(tc, test_encoded_slash_separates_segments);
    tcase_add_test(tc, test_dot_segments_are_resolved);
    tcase_add_test(tc, test_dots_inside_a_segment_are_kept);
    tcase_add_test(tc, test_merge_slashes_collapses_runs_of_slashes);
    tcase_add_test(tc, test_merge_slashes_off_keeps_runs_of_slashes);
    tcase_add_test(tc, test_dot_dot_above_the_root_is_refused);
    tcase_add_test(tc, test_encoded_nul_is_refused);
    tcase_add_test(tc, test_bad_escape_is_refused);
    tcase_add_test(tc, test_path_not_starting_with_a_slash_is_refused);
    tcase_add_test(tc, test_normalization_reads_only_the_given_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("host normalization");
    tcase_add_test(tc, test_host_is_lowercased);
    tcase_add_test(tc, test_host_port_is_removed);
    tcase_add_test(tc, test_host_trailing_dot_is_removed);
    tcase_add_test(tc, test_ipv6_literal_keeps_its_brackets_and_loses_its_port);
    tcase_add_test(tc, test_host_with_invalid_characters_is_refused);
    tcase_add_test(tc, test_host_with_empty_labels_is_refused);
    tcase_add_test(tc, test_empty_host_is_refused);
    tcase_add_test(tc, test_host_with_a_bad_port_or_bracket_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("locations");
    tcase_add_checked_fixture(tc, locations_setup, locations_teardown);
    tcase_add_test(tc, test_exact_location_beats_a_prefix);
    tcase_add_test(tc, test_longest_prefix_wins_whatever_the_order);
    tcase_add_test(tc, test_no_regex_prefix_stops_regex_checking);
    tcase_add_test(tc, test_no_regex_prefix_counts_only_when_it_is_the_longest);
    tcase_add_test(tc, test_no_regex_prefix_still_checks_its_nested_regexes);
    tcase_add_test(tc, test_regex_beats_a_plain_prefix);
    tcase_add_test(tc, test_first_matching_regex_in_order_wins);
    tcase_add_test(tc, test_caseless_regex_ignores_case_and_plain_regex_does_not);
    tcase_add_test(tc, test_nested_locations_refine_their_parent);
    tcase_add_test(tc, test_nested_regex_beats_a_nested_prefix);
    tcase_add_test(tc, test_outer_regex_is_checked_when_nested_locations_have_no_regex_match);
    tcase_add_test(tc, test_server_location_answers_when_no_location_matches);
    suite_add_tcase(s, tc);

    tc = tcase_create("servers");
    tcase_add_checked_fixture(tc, names_setup, locations_teardown);
    tcase_add_test(tc, test_exact_server_name_wins);
    tcase_add_test(tc, test_longest_leading_wildcard_wins);
    tcase_add_test(tc, test_leading_wildcard_needs_a_subdomain);
    tcase_add_test(tc, test_trailing_wildcard_matches_any_ending_longest_first);
    tcase_add_test(tc, test_leading_wildcard_beats_trailing_wildcard);
    tcase_add_test(tc, test_dot_name_matches_the_domain_and_its_subdomains);
    tcase_add_test(tc, test_dot_name_matches_only_its_domain_wherever_it_is_written);
    tcase_add_test(tc, test_regex_server_names_are_tried_in_order_after_wildcards);
    tcase_add_test(tc, test_first_server_of_an_address_is_its_default);
    tcase_add_test(tc, test_default_server_flag_beats_the_first_server);
    tcase_add_test(tc, test_empty_server_name_answers_requests_without_a_host);
    tcase_add_test(tc, test_server_names_are_matched_case_insensitively);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(route_suite());
}
