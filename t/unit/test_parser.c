/*
 * Loading a configuration: the grammar around directives (blocks, ";", "}"),
 * includes and their globs, the checks every directive goes through (known,
 * allowed here, number of arguments, value), duplicates, and inputs that must be
 * refused without a crash. Every refusal is checked word for word, with the file
 * and line it names: that message is all an operator sees of a failed reload.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "core/log.h"
#include "upstream/proxy.h"
#include "upstream/upstream.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* errors the parser reports about the text around directives */

START_TEST(test_unknown_directive_names_file_and_line)
{
    ut_expect_error("worker_processes 1;\n"
                    "\n"
                    "foo bar;\n",
                    "@/rampart.conf:3: unknown directive \"foo\"");
}
END_TEST

START_TEST(test_unknown_directive_inside_a_block)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        bogus on;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: unknown directive \"bogus\"");
}
END_TEST

START_TEST(test_directive_in_the_wrong_context_names_the_context)
{
    ut_expect_error("http {\n"
                    "    listen 80;\n"
                    "}\n",
                    "@/rampart.conf:2: \"listen\": not allowed in the http context");
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        worker_processes 2;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"worker_processes\": not allowed in the server context");
    ut_expect_error("server {\n"
                    "}\n",
                    "@/rampart.conf:1: \"server\": not allowed in the main context");
}
END_TEST

START_TEST(test_too_many_arguments_says_how_many)
{
    ut_expect_error("worker_processes 1 2;\n",
                    "@/rampart.conf:1: \"worker_processes\": takes 1 argument, got 2");
}
END_TEST

START_TEST(test_missing_arguments_say_how_many_are_needed)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"listen\": takes 1 or more arguments, got 0");
    ut_expect_error("http {\n"
                    "    keepalive_timeout;\n"
                    "}\n",
                    "@/rampart.conf:2: \"keepalive_timeout\": takes 1 argument, got 0");
}
END_TEST

START_TEST(test_argument_range_is_named)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        location = /a /b {\n"
                    "        }\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"location\": takes 1 to 2 arguments, got 3");
    ut_expect_error("events x {\n"
                    "}\n",
                    "@/rampart.conf:1: \"events\": takes 0 arguments, got 1");
}
END_TEST

START_TEST(test_missing_semicolon_before_closing_brace)
{
    ut_expect_error("http {\n"
                    "    default_type text/plain\n"
                    "}\n",
                    "@/rampart.conf:2: \"default_type\": missing \";\" before \"}\"");
}
END_TEST

START_TEST(test_missing_semicolon_at_end_of_file)
{
    ut_expect_error(
        "daemon off;\n"
        "worker_processes 1",
        "@/rampart.conf:2: \"worker_processes\": unexpected end of file: missing \";\"");
}
END_TEST

START_TEST(test_directive_spanning_lines_is_reported_at_its_first_line)
{
    ut_expect_error("worker_processes\n"
                    "    1\n"
                    "    2;\n",
                    "@/rampart.conf:1: \"worker_processes\": takes 1 argument, got 2");
}
END_TEST

START_TEST(test_missing_closing_brace_names_where_the_block_opened)
{
    /* the end of file is after the last newline: line 6 */
    ut_expect_error(
        "events {\n"
        "}\n"
        "http {\n"
        "    server {\n"
        "    }\n",
        "@/rampart.conf:6: unexpected end of file: missing \"}\" for \"http\" opened at "
        "@/rampart.conf:3");
}
END_TEST

START_TEST(test_missing_closing_brace_names_the_innermost_block)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;",
                    "@/rampart.conf:3: unexpected end of file: missing \"}\" for \"server\" opened "
                    "at @/rampart.conf:2");
}
END_TEST

START_TEST(test_stray_closing_brace)
{
    ut_expect_error("worker_processes 1;\n"
                    "}\n",
                    "@/rampart.conf:2: unexpected \"}\"");
}
END_TEST

START_TEST(test_stray_semicolon)
{
    ut_expect_error("http {\n"
                    "    ;\n"
                    "}\n",
                    "@/rampart.conf:2: unexpected \";\"");
}
END_TEST

START_TEST(test_stray_opening_brace)
{
    ut_expect_error("\n"
                    "{\n"
                    "}\n",
                    "@/rampart.conf:2: unexpected \"{\"");
}
END_TEST

START_TEST(test_block_directive_without_a_block)
{
    ut_expect_error("http;\n",
                    "@/rampart.conf:1: \"http\": missing \"{\": this directive takes a block");
}
END_TEST

START_TEST(test_simple_directive_with_a_block)
{
    ut_expect_error(
        "worker_processes 1 {\n"
        "}\n",
        "@/rampart.conf:1: \"worker_processes\": unexpected \"{\": this directive takes "
        "no block (missing \";\"?)");
}
END_TEST

START_TEST(test_lexer_errors_carry_file_and_line)
{
    ut_expect_error("http {\n"
                    "    default_type \"text/plain;\n"
                    "}\n",
                    "@/rampart.conf:2: unterminated quoted string");
    ut_expect_error("http {\n"
                    "\n"
                    "    default_type \"text\"/plain;\n"
                    "}\n",
                    "@/rampart.conf:3: unexpected \"/\" after a quoted string");
}
END_TEST

START_TEST(test_nul_byte_in_a_file_is_refused_with_its_line)
{
    ut_write_n("rampart.conf", "daemon off;\nworker_\0processes 1;\n", 33);
    ck_assert_ptr_null(ut_load_file("rampart.conf"));
    ck_assert_str_eq(ut_err, ut_expand("@/rampart.conf:2: unexpected NUL byte"));
}
END_TEST

/* values refused by setters */

START_TEST(test_worker_processes_must_be_auto_or_a_number)
{
    ut_expect_error("worker_processes abc;\n",
                    "@/rampart.conf:1: \"worker_processes\": invalid value \"abc\", it must be "
                    "\"auto\" or a number from 1 to 1024");
    ut_expect_error("worker_processes 0;\n",
                    "@/rampart.conf:1: \"worker_processes\": invalid value \"0\", it must be "
                    "\"auto\" or a number from 1 to 1024");
    ut_expect_error("worker_processes 1025;\n",
                    "@/rampart.conf:1: \"worker_processes\": invalid value \"1025\", it must be "
                    "\"auto\" or a number from 1 to 1024");
}
END_TEST

START_TEST(test_bad_time_is_refused)
{
    ut_expect_error("http {\n"
                    "    keepalive_timeout 5x;\n"
                    "}\n",
                    "@/rampart.conf:2: \"keepalive_timeout\": invalid time \"5x\"");
}
END_TEST

START_TEST(test_bad_size_is_refused)
{
    ut_expect_error("http {\n"
                    "    client_header_buffer_size 1q;\n"
                    "}\n",
                    "@/rampart.conf:2: \"client_header_buffer_size\": invalid size \"1q\"");
}
END_TEST

START_TEST(test_bad_flag_is_refused)
{
    ut_expect_error("http {\n"
                    "    server_tokens maybe;\n"
                    "}\n",
                    "@/rampart.conf:2: \"server_tokens\": invalid value \"maybe\", it must be "
                    "\"on\" or \"off\"");
}
END_TEST

START_TEST(test_bad_number_is_refused)
{
    ut_expect_error("events {\n"
                    "    worker_connections lots;\n"
                    "}\n",
                    "@/rampart.conf:2: \"worker_connections\": invalid number \"lots\"");
}
END_TEST

START_TEST(test_bad_log_level_is_refused)
{
    ut_expect_error(
        "error_log stderr loud;\n",
        "@/rampart.conf:1: \"error_log\": invalid log level \"loud\", it must be one of "
        "debug, info, notice, warn, error, crit, alert, emerg");
}
END_TEST

static const char *listen_conf(const char *args)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    server {\n"
             "        listen %s;\n"
             "    }\n"
             "}\n",
             args);
    return buf;
}

START_TEST(test_listen_with_a_bad_port_is_refused)
{
    ut_expect_error(listen_conf("127.0.0.1:99999"),
                    "@/rampart.conf:3: \"listen\": invalid port in \"127.0.0.1:99999\"");
    ut_expect_error(listen_conf("0"), "@/rampart.conf:3: \"listen\": invalid port in \"0\"");
    ut_expect_error(listen_conf("127.0.0.1:http"),
                    "@/rampart.conf:3: \"listen\": invalid port in \"127.0.0.1:http\"");
    ut_expect_error(listen_conf("127.0.0.1:"),
                    "@/rampart.conf:3: \"listen\": invalid port in \"127.0.0.1:\"");
}
END_TEST

START_TEST(test_listen_without_a_port_is_refused)
{
    ut_expect_error(listen_conf("[::1]"), "@/rampart.conf:3: \"listen\": no port in \"[::1]\"");
}
END_TEST

START_TEST(test_listen_with_an_unknown_parameter_is_refused)
{
    ut_expect_error(listen_conf("127.0.0.1:8080 fast"),
                    "@/rampart.conf:3: \"listen\": invalid parameter \"fast\"");
    ut_expect_error(listen_conf("127.0.0.1:8080 backlog=0"),
                    "@/rampart.conf:3: \"listen\": invalid backlog \"0\"");
    ut_expect_error(listen_conf("127.0.0.1:8080 ssl"),
                    "@/rampart.conf:3: \"listen\": no \"ssl_certificate\" is defined for the "
                    "listen ... ssl directive in @/rampart.conf:3");
}
END_TEST

START_TEST(test_listen_with_a_malformed_address_is_refused)
{
    ut_expect_error(listen_conf("[::1:8080"),
                    "@/rampart.conf:3: \"listen\": invalid address \"[::1:8080\"");
}
END_TEST

START_TEST(test_listen_with_bad_socket_options_is_refused)
{
    ut_expect_error(listen_conf("127.0.0.1:8080 rcvbuf=1x"),
                    "@/rampart.conf:3: \"listen\": invalid size in \"rcvbuf=1x\"");
    ut_expect_error(listen_conf("127.0.0.1:8080 sndbuf=3g"),
                    "@/rampart.conf:3: \"listen\": invalid size in \"sndbuf=3g\"");
    ut_expect_error(listen_conf("[::1]:8080 ipv6only=maybe"),
                    "@/rampart.conf:3: \"listen\": invalid value in \"ipv6only=maybe\", it must be "
                    "on or off");
}
END_TEST

START_TEST(test_header_buffer_count_and_size_are_checked)
{
    ut_expect_error("http {\n"
                    "    large_client_header_buffers 0 8k;\n"
                    "}\n",
                    "@/rampart.conf:2: \"large_client_header_buffers\": invalid number of buffers "
                    "\"0\"");
    ut_expect_error(
        "http {\n"
        "    large_client_header_buffers 4 32;\n"
        "}\n",
        "@/rampart.conf:2: \"large_client_header_buffers\": invalid buffer size \"32\"");
    ut_expect_error("http {\n"
                    "    large_client_header_buffers 4 32m;\n"
                    "}\n",
                    "@/rampart.conf:2: \"large_client_header_buffers\": invalid buffer size "
                    "\"32m\"");
    ut_expect_error("http {\n"
                    "    large_client_header_buffers 4;\n"
                    "}\n",
                    "@/rampart.conf:2: \"large_client_header_buffers\": takes 2 arguments, got 1");
}
END_TEST

static const char *return_conf(const char *args)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    server {\n"
             "        listen 127.0.0.1:8080;\n"
             "        location / {\n"
             "            return %s;\n"
             "        }\n"
             "    }\n"
             "}\n",
             args);
    return buf;
}

START_TEST(test_return_with_a_bad_code_is_refused)
{
    ut_expect_error(return_conf("99"), "@/rampart.conf:5: \"return\": invalid return code \"99\"");
    ut_expect_error(return_conf("1000"),
                    "@/rampart.conf:5: \"return\": invalid return code \"1000\"");
    ut_expect_error(return_conf("abc"),
                    "@/rampart.conf:5: \"return\": invalid return code \"abc\"");
    ut_expect_error(return_conf("/relative \"x\""),
                    "@/rampart.conf:5: \"return\": invalid return code \"/relative\"");
}
END_TEST

START_TEST(test_return_with_an_unknown_variable_is_refused)
{
    ut_expect_error(return_conf("200 \"hello $nosuch\""),
                    "@/rampart.conf:5: \"return\": unknown variable \"$nosuch\"");
    ut_expect_error(
        return_conf("200 \"${host\""),
        "@/rampart.conf:5: \"return\": missing \"}\" in variable reference in \"${host\"");
}
END_TEST

START_TEST(test_return_with_an_empty_variable_name_is_refused)
{
    ut_expect_error(return_conf("200 \"cost: $\""),
                    "@/rampart.conf:5: \"return\": invalid variable name in \"cost: $\"");
    ut_expect_error(return_conf("200 \"${}\""),
                    "@/rampart.conf:5: \"return\": invalid variable name in \"${}\"");
}
END_TEST

START_TEST(test_return_text_with_known_and_escaped_variables_loads)
{
    rp_cycle_t *cycle = ut_load_ok(return_conf("200 \"$host ${request_uri} \\$nosuch $http_x_a\""));
    rp_cycle_destroy(cycle);
    cycle = ut_load_ok(return_conf("https://$host$request_uri"));
    rp_cycle_destroy(cycle);
}
END_TEST

static const char *location_conf(const char *locations)
{
    static char buf[2048];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    server {\n"
             "        listen 127.0.0.1:8080;\n"
             "%s"
             "    }\n"
             "}\n",
             locations);
    return buf;
}

START_TEST(test_invalid_regex_location_is_refused)
{
    ut_expect_error(location_conf("        location ~ \"(\" {\n"
                                  "        }\n"),
                    "@/rampart.conf:4: \"location\": invalid regex \"(\": missing closing "
                    "parenthesis at offset 1");
}
END_TEST

START_TEST(test_invalid_regex_server_name_is_refused)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        server_name example.com \"~^(www\";\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server_name\": invalid regex \"^(www\": missing closing "
                    "parenthesis at offset 5");
}
END_TEST

START_TEST(test_invalid_wildcard_server_name_is_refused)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        server_name www.*.com;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server_name\": invalid server name \"www.*.com\": a "
                    "wildcard must be \"*.\" at the start or \".*\" at the end");
}
END_TEST

START_TEST(test_location_path_must_start_with_a_slash)
{
    ut_expect_error(location_conf("        location api {\n"
                                  "        }\n"),
                    "@/rampart.conf:4: \"location\": location \"api\" must start with \"/\"");
}
END_TEST

START_TEST(test_nested_location_must_be_inside_its_parent)
{
    ut_expect_error(location_conf("        location /a {\n"
                                  "            location /b {\n"
                                  "            }\n"
                                  "        }\n"),
                    "@/rampart.conf:5: \"location\": location \"/b\" is outside location \"/a\"");
}
END_TEST

START_TEST(test_exact_location_cannot_have_nested_locations)
{
    ut_expect_error(location_conf("        location = /a {\n"
                                  "            location /a/b {\n"
                                  "            }\n"
                                  "        }\n"),
                    "@/rampart.conf:5: \"location\": location \"/a/b\" cannot be inside the exact "
                    "location \"/a\"");
}
END_TEST

START_TEST(test_unknown_location_modifier_is_refused)
{
    ut_expect_error(location_conf("        location ~~ /a {\n"
                                  "        }\n"),
                    "@/rampart.conf:4: \"location\": invalid location modifier \"~~\"");
}
END_TEST

START_TEST(test_location_nested_in_a_named_location_is_refused)
{
    ut_expect_error(location_conf("        location @fallback {\n"
                                  "            location /x { }\n"
                                  "        }\n"),
                    "@/rampart.conf:5: \"location\": location \"/x\" could not be inside the "
                    "named location \"@fallback\"");
}
END_TEST

START_TEST(test_upstream_without_servers_is_refused_at_its_line)
{
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:2: \"upstream\": no servers in upstream \"backend\"");
}
END_TEST

START_TEST(test_upstream_server_with_a_bad_parameter_is_refused)
{
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:8081 weight=0;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid weight \"0\"");
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:8081 fail_timeout=10x;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid fail_timeout \"10x\"");
    ut_expect_error(
        "http {\n"
        "    upstream backend {\n"
        "        server 127.0.0.1:8081 backup down;\n"
        "    }\n"
        "}\n",
        "@/rampart.conf:3: \"server\": a server cannot be both \"backup\" and \"down\"");
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:8081 max_conns=-1;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid max_conns \"-1\"");
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:8081 max_fails=x;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid max_fails \"x\"");
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:8081 slow_start=soon;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid slow_start \"soon\"");
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:8081 resolved;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid parameter \"resolved\"");
    ut_expect_error("http {\n"
                    "    upstream backend {\n"
                    "        server 127.0.0.1:0;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:3: \"server\": invalid port in \"127.0.0.1:0\"");
}
END_TEST

START_TEST(test_header_buffers_above_the_limit_are_refused_at_the_directive)
{
    ut_expect_error("http {\n"
                    "    large_client_header_buffers 8 16m;\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:2: \"large_client_header_buffers\": 8 buffers of 16m exceed "
                    "the limit of 64m");
}
END_TEST

/* duplicates */

START_TEST(test_worker_processes_twice_is_a_duplicate)
{
    ut_expect_error("worker_processes 1;\n"
                    "worker_processes 2;\n",
                    "@/rampart.conf:2: \"worker_processes\": duplicate directive");
}
END_TEST

START_TEST(test_same_directive_twice_in_one_block_is_a_duplicate)
{
    ut_expect_error("http {\n"
                    "    keepalive_timeout 10s;\n"
                    "    server {\n"
                    "        keepalive_timeout 5s;\n"
                    "        keepalive_timeout 6s;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:5: \"keepalive_timeout\": duplicate directive");
}
END_TEST

START_TEST(test_duplicate_location_is_refused)
{
    ut_expect_error(location_conf("        location /a {\n"
                                  "        }\n"
                                  "        location /a {\n"
                                  "        }\n"),
                    "@/rampart.conf:6: \"location\": duplicate location \"/a\"");
}
END_TEST

START_TEST(test_prefix_and_no_regex_prefix_of_the_same_path_are_duplicates)
{
    ut_expect_error(location_conf("        location /a {\n"
                                  "        }\n"
                                  "        location ^~ /a {\n"
                                  "        }\n"),
                    "@/rampart.conf:6: \"location\": duplicate location \"/a\"");
}
END_TEST

START_TEST(test_duplicate_exact_and_regex_locations_are_refused)
{
    ut_expect_error(location_conf("        location = /a {\n"
                                  "        }\n"
                                  "        location =/a {\n"
                                  "        }\n"),
                    "@/rampart.conf:6: \"location\": duplicate location \"/a\"");
    ut_expect_error(location_conf("        location ~ ^/a {\n"
                                  "        }\n"
                                  "        location ~ ^/a {\n"
                                  "        }\n"),
                    "@/rampart.conf:6: \"location\": duplicate location \"^/a\"");
}
END_TEST

START_TEST(test_same_path_with_different_kinds_is_not_a_duplicate)
{
    rp_cycle_t *cycle = ut_load_ok(location_conf("        location /a {\n"
                                                 "        }\n"
                                                 "        location = /a {\n"
                                                 "        }\n"
                                                 "        location ~ /a {\n"
                                                 "        }\n"
                                                 "        location ~* /a {\n"
                                                 "        }\n"));
    rp_http_core_loc_conf_t *root = ut_srv_loc(ut_server(cycle, 0));
    ck_assert_uint_eq(root->exact.nelts, 1);
    ck_assert_uint_eq(root->prefix.nelts, 1);
    ck_assert_uint_eq(root->regex.nelts, 2);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_duplicate_upstream_names_the_first_definition)
{
    ut_expect_error("http {\n"
                    "    upstream b {\n"
                    "        server 127.0.0.1:8081;\n"
                    "    }\n"
                    "    upstream b {\n"
                    "        server 127.0.0.1:8082;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:5: \"upstream\": duplicate upstream \"b\", first defined at "
                    "@/rampart.conf:2");
}
END_TEST

START_TEST(test_duplicate_default_server_for_one_address_is_refused)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080 default_server;\n"
                    "    }\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080 default_server;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:6: \"listen\": a duplicate default server for 127.0.0.1:8080");
}
END_TEST

START_TEST(test_default_servers_of_different_addresses_are_not_duplicates)
{
    rp_cycle_t *cycle = ut_load_ok("http {\n"
                                   "    server {\n"
                                   "        listen 127.0.0.1:8080 default_server;\n"
                                   "    }\n"
                                   "    server {\n"
                                   "        listen 127.0.0.1:8081 default_server;\n"
                                   "    }\n"
                                   "}\n");
    ck_assert_uint_eq(rp_http_core_main_conf(cycle)->addrs.nelts, 2);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_duplicate_listen_in_one_server_is_refused)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;\n"
                    "        listen 127.0.0.1:8080;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:4: \"listen\": duplicate listen 127.0.0.1:8080");
}
END_TEST

START_TEST(test_second_http_block_is_a_duplicate)
{
    ut_expect_error("http {\n"
                    "}\n"
                    "http {\n"
                    "}\n",
                    "@/rampart.conf:3: \"http\": duplicate directive");
}
END_TEST

/* includes */

START_TEST(test_missing_include_is_refused_with_the_including_line)
{
    ut_expect_error(
        "daemon off;\n"
        "include missing.conf;\n",
        "@/rampart.conf:2: \"include\": cannot open \"@/missing.conf\": No such file or "
        "directory");
}
END_TEST

START_TEST(test_including_a_directory_is_refused)
{
    ut_write("sub/a.conf", "daemon off;\n");
    ut_expect_error("include sub;\n",
                    "@/rampart.conf:1: \"include\": cannot open \"@/sub\": Is a directory");
}
END_TEST

START_TEST(test_including_a_fifo_is_refused_without_waiting_for_a_writer)
{
    /* opening a FIFO for reading blocks until someone writes: a reload would hang */
    ck_assert_int_eq(mkfifo(ut_path("pipe.conf"), 0644), 0);
    ut_expect_error(
        "include pipe.conf;\n",
        "@/rampart.conf:1: \"include\": cannot open \"@/pipe.conf\": not a regular file");
}
END_TEST

START_TEST(test_include_cycle_names_the_chain)
{
    ut_write("a.conf", "daemon off;\n"
                       "include b.conf;\n");
    ut_write("b.conf", "\n"
                       "\n"
                       "include a.conf;\n");
    ut_expect_error("include a.conf;\n",
                    "@/b.conf:3: \"include\": include cycle: @/rampart.conf -> @/a.conf -> "
                    "@/b.conf -> @/a.conf");
}
END_TEST

START_TEST(test_file_including_itself_is_a_cycle)
{
    ut_expect_error("include rampart.conf;\n",
                    "@/rampart.conf:1: \"include\": include cycle: @/rampart.conf -> "
                    "@/rampart.conf");
}
END_TEST

START_TEST(test_same_file_included_twice_in_sequence_is_not_a_cycle)
{
    ut_write("types.conf", "default_type text/html;\n");
    rp_cycle_t *cycle = ut_load_ok("http {\n"
                                   "    server {\n"
                                   "        listen 127.0.0.1:8080;\n"
                                   "        include types.conf;\n"
                                   "    }\n"
                                   "    server {\n"
                                   "        listen 127.0.0.1:8081;\n"
                                   "        include types.conf;\n"
                                   "    }\n"
                                   "}\n");
    ck_assert_str_eq(ut_srv_loc(ut_server(cycle, 1))->default_type, "text/html");
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_include_glob_matching_nothing_is_fine)
{
    ut_write("conf.d/README", "no configuration here\n");
    rp_cycle_t *cycle = ut_load_ok("include conf.d/*.conf;\n"
                                   "worker_processes 3;\n");
    ck_assert_int_eq(rp_core_conf(cycle)->worker_processes, 3);
    ck_assert_uint_eq(cycle->files.nelts, 1);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_include_glob_in_a_missing_folder_is_fine)
{
    rp_cycle_t *cycle = ut_load_ok("include nothing/*.conf;\n"
                                   "worker_processes 3;\n");
    ck_assert_int_eq(rp_core_conf(cycle)->worker_processes, 3);
    ck_assert_uint_eq(cycle->files.nelts, 1);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_include_glob_skips_directories)
{
    ut_write("conf.d/a.conf", "worker_processes 2;\n");
    ut_write("conf.d/sub.conf/x", "bogus;\n");
    rp_cycle_t *cycle = ut_load_ok("include conf.d/*.conf;\n");
    ck_assert_int_eq(rp_core_conf(cycle)->worker_processes, 2);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_include_with_an_absolute_path)
{
    ut_write("abs/core.conf", "worker_processes 5;\n");
    char text[PATH_MAX + 64];
    snprintf(text, sizeof(text), "include %s;\n", ut_path("abs/core.conf"));
    rp_cycle_t *cycle = ut_load_ok(text);
    ck_assert_int_eq(rp_core_conf(cycle)->worker_processes, 5);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_error_in_an_included_file_names_that_file)
{
    ut_write("conf.d/x.conf", "daemon off;\n"
                              "\n"
                              "bogus;\n");
    ut_expect_error("worker_processes 1;\n"
                    "include conf.d/*.conf;\n",
                    "@/conf.d/x.conf:3: unknown directive \"bogus\"");
}
END_TEST

START_TEST(test_included_file_is_parsed_in_the_including_context)
{
    ut_write("srv.conf", "listen 127.0.0.1:8080;\n");
    ut_expect_error("include srv.conf;\n",
                    "@/srv.conf:1: \"listen\": not allowed in the main context");
}
END_TEST

START_TEST(test_included_file_cannot_close_the_including_block)
{
    ut_write("close.conf", "}\n");
    ut_expect_error("http {\n"
                    "    include close.conf;\n"
                    "}\n",
                    "@/close.conf:1: unexpected \"}\"");
}
END_TEST

START_TEST(test_block_left_open_in_an_included_file_is_reported_there)
{
    ut_write("open.conf", "server {\n"
                          "    listen 127.0.0.1:8080;\n");
    ut_expect_error("http {\n"
                    "    include open.conf;\n"
                    "}\n",
                    "@/open.conf:3: unexpected end of file: missing \"}\" for \"server\" opened at "
                    "@/open.conf:1");
}
END_TEST

START_TEST(test_includes_nested_too_deep_are_refused)
{
    /* rampart.conf and f1..f63 make 64 files deep; f63 may not include f64 */
    char name[32], text[64];
    for (int i = 1; i <= 70; i++) {
        snprintf(name, sizeof(name), "f%d.conf", i);
        snprintf(text, sizeof(text), "include f%d.conf;\n", i + 1);
        ut_write(name, text);
    }
    ut_write("f71.conf", "");
    ut_expect_error("include f1.conf;\n",
                    "@/f63.conf:1: \"include\": includes nested too deep (limit 64)");
}
END_TEST

START_TEST(test_missing_configuration_file_is_named)
{
    ck_assert_ptr_null(ut_load_file("nope.conf"));
    ck_assert_str_eq(ut_err, ut_expand("cannot open configuration file \"@/nope.conf\": No such "
                                       "file or directory"));
}
END_TEST

/* nasty inputs */

START_TEST(test_configuration_file_that_is_a_directory_is_refused)
{
    ut_write("sub/x", "");
    ck_assert_ptr_null(ut_load_file("sub"));
    ck_assert_str_eq(ut_err, ut_expand("cannot open configuration file \"@/sub\": Is a directory"));
}
END_TEST

START_TEST(test_empty_file_and_comments_only_load)
{
    rp_cycle_t *cycle = ut_load_ok("");
    ck_assert_ptr_null(rp_http_core_main_conf(cycle));
    rp_cycle_destroy(cycle);
    cycle = ut_load_ok("# nothing here\n   \n# nor here ; { }\n");
    rp_cycle_destroy(cycle);
}
END_TEST

static char *nested(unsigned locations)
{
    size_t cap = 64 + locations * 32;
    char *t = malloc(cap);
    size_t n = (size_t)snprintf(t, cap, "http {\nserver {\nlisten 127.0.0.1:8080;\n");
    for (unsigned i = 0; i < locations; i++)
        n += (size_t)snprintf(t + n, cap - n, "location / {\n");
    for (unsigned i = 0; i < locations + 2; i++)
        n += (size_t)snprintf(t + n, cap - n, "}\n");
    return t;
}

START_TEST(test_blocks_nested_to_the_limit_load)
{
    /* http + server + 62 locations: 64 nested blocks */
    char *text = nested(62);
    rp_cycle_t *cycle = ut_load_ok(text);
    rp_cycle_destroy(cycle);
    free(text);
}
END_TEST

START_TEST(test_blocks_nested_beyond_the_limit_are_refused)
{
    /* the 65th nested block opens on line 66 (line 3 is the listen) */
    char *text = nested(1000);
    ut_expect_error(text, "@/rampart.conf:66: \"location\": blocks nested too deep (limit 64)");
    free(text);
}
END_TEST

START_TEST(test_very_long_word_is_reported_truncated)
{
    size_t n = 100000;
    char *text = malloc(n + 64);
    size_t k = (size_t)sprintf(text, "daemon off;\n");
    memset(text + k, 'x', n);
    strcpy(text + k + n, ";\n");
    ck_assert_ptr_null(ut_load(text));
    const char *want = ut_expand("@/rampart.conf:2: unknown directive \"xxxxxxxx");
    ck_assert_msg(strncmp(ut_err, want, strlen(want)) == 0, "got %.200s", ut_err);
    ck_assert_uint_lt(strlen(ut_err), sizeof(ut_err) - 1);
    free(text);
}
END_TEST

START_TEST(test_very_long_quoted_value_is_kept_whole)
{
    size_t n = 100000;
    char *text = malloc(n + 128);
    size_t k = (size_t)sprintf(text, "http {\n    default_type \"");
    memset(text + k, 'a', n);
    strcpy(text + k + n, "\";\n}\n");
    rp_cycle_t *cycle = ut_load_ok(text);
    rp_http_conf_ctx_t *http = *(rp_http_conf_ctx_t **)cycle->main_conf[rp_http_module.index];
    rp_http_core_loc_conf_t *loc = http->loc_conf[rp_http_core_module.index];
    ck_assert_uint_eq(strlen(loc->default_type), n);
    rp_cycle_destroy(cycle);
    free(text);
}
END_TEST

/* A tiny deterministic generator: the same "random" files on every run. */
static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

START_TEST(test_random_bytes_never_crash_the_loader)
{
    rng_state = 12345;
    char buf[2048];
    for (int round = 0; round < 300; round++) {
        size_t len = rng() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)(rng() & 0xff);
        ut_write_n("rampart.conf", buf, len);
        rp_cycle_t *cycle = ut_load_file("rampart.conf");
        if (cycle)
            rp_cycle_destroy(cycle);
        else
            ck_assert_msg(ut_err[0] != '\0', "refused without a message (round %d)", round);
    }
}
END_TEST

START_TEST(test_random_configuration_words_never_crash_the_loader)
{
    /* words that reach deeper than random bytes do: real directives, blocks, quotes, globs */
    static const char *vocab[] = {
        "http",
        "server",
        "location",
        "upstream",
        "events",
        "include",
        "listen",
        "return",
        "{",
        "}",
        ";",
        " ",
        "\n",
        "\"",
        "'",
        "\\",
        "#",
        "$",
        "${",
        "~",
        "=",
        "^~",
        "/a",
        "*",
        "*.conf",
        "200",
        "127.0.0.1:8080",
        "80",
        "on",
        "server_name",
        "default_server",
        "keepalive_timeout",
        "1m30s",
        "\0",
        "x",
    };
    size_t nvocab = sizeof(vocab) / sizeof(vocab[0]);
    rng_state = 777;
    ut_write("a.conf", "server { listen 127.0.0.1:8080; }\n");
    char buf[4096];
    for (int round = 0; round < 500; round++) {
        size_t n = 0, words = rng() % 200;
        for (size_t w = 0; w < words; w++) {
            size_t v = rng() % nvocab;
            size_t l = vocab[v][0] ? strlen(vocab[v]) : 1;
            if (n + l + 1 >= sizeof(buf))
                break;
            memcpy(buf + n, vocab[v], l);
            n += l;
            if (rng() % 2)
                buf[n++] = ' ';
        }
        ut_write_n("rampart.conf", buf, n);
        rp_cycle_t *cycle = ut_load_file("rampart.conf");
        if (cycle)
            rp_cycle_destroy(cycle);
        else
            ck_assert_msg(ut_err[0] != '\0', "refused without a message (round %d)", round);
    }
}
END_TEST

/* what the core directives set */

START_TEST(test_core_directives_reach_the_core_configuration)
{
    rp_cycle_t *cycle = ut_load_ok("worker_processes 4;\n"
                                   "daemon on;\n"
                                   "master_process off;\n"
                                   "pid run/rampart.pid;\n"
                                   "error_log logs/error.log warn;\n"
                                   "worker_shutdown_timeout 1m30s;\n"
                                   "worker_rlimit_nofile 4096;\n"
                                   "events {\n"
                                   "    worker_connections 512;\n"
                                   "}\n");
    rp_core_conf_t *cc = rp_core_conf(cycle);
    ck_assert_int_eq(cc->worker_processes, 4);
    ck_assert_int_eq(cc->daemon, 1);
    ck_assert_int_eq(cc->master_process, 0);
    ck_assert_str_eq(cc->pid, ut_expand("@/run/rampart.pid"));
    ck_assert_str_eq(cc->error_log, ut_expand("@/logs/error.log"));
    ck_assert_int_eq(cc->error_log_level, RP_LOG_WARN);
    ck_assert_int_eq(cc->worker_shutdown_timeout, 90000);
    ck_assert_int_eq(cc->worker_rlimit_nofile, 4096);
    ck_assert_int_eq(cc->worker_connections, 512);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_core_defaults_apply_when_nothing_is_set)
{
    rp_cycle_t *cycle = ut_load_ok("");
    rp_core_conf_t *cc = rp_core_conf(cycle);
    ck_assert_int_eq(cc->worker_processes, 1);
    ck_assert_int_eq(cc->daemon, 0);
    ck_assert_int_eq(cc->master_process, 1);
    ck_assert_str_eq(cc->pid, ut_expand("@/logs/rampart.pid"));
    ck_assert_ptr_null(cc->error_log);
    ck_assert_int_eq(cc->worker_shutdown_timeout, 30000);
    ck_assert_int_eq(cc->worker_connections, 1024);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_worker_processes_auto_is_the_number_of_cpus)
{
    rp_cycle_t *cycle = ut_load_ok("worker_processes auto;\n");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(rp_core_conf(cycle)->worker_processes, cpus > 0 ? cpus : 1);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_upstream_servers_keep_their_parameters)
{
    rp_cycle_t *cycle = ut_load_ok("http {\n"
                                   "    upstream backend {\n"
                                   "        server 127.0.0.1:8081 weight=3 max_fails=2 "
                                   "fail_timeout=30s;\n"
                                   "        server [::1]:8082 max_conns=10 backup;\n"
                                   "    }\n"
                                   "    server {\n"
                                   "        listen 127.0.0.1:8080;\n"
                                   "    }\n"
                                   "}\n");
    rp_http_core_srv_conf_t *srv = ut_server(cycle, 0);
    rp_upstream_main_conf_t *umcf = srv->ctx->main_conf[rp_upstream_module.index];
    ck_assert_uint_eq(umcf->upstreams.nelts, 1);
    rp_upstream_conf_t *u = RP_ARRAY_AT(&umcf->upstreams, rp_upstream_conf_t *, 0);
    ck_assert_str_eq(u->name, "backend");
    ck_assert_uint_eq(u->line, 2);
    ck_assert_uint_eq(u->servers.nelts, 2);
    rp_upstream_server_t *s = u->servers.elts;
    ck_assert_str_eq(s[0].name, "127.0.0.1:8081");
    ck_assert_int_eq(s[0].weight, 3);
    ck_assert_int_eq(s[0].max_fails, 2);
    ck_assert_int_eq(s[0].fail_timeout, 30000);
    ck_assert_int_eq(s[0].backup, 0);
    ck_assert_str_eq(s[1].name, "[::1]:8082");
    ck_assert_int_eq(s[1].weight, 1);
    ck_assert_int_eq(s[1].max_fails, 1);
    ck_assert_int_eq(s[1].fail_timeout, 10000);
    ck_assert_int_eq(s[1].max_conns, 10);
    ck_assert_int_eq(s[1].backup, 1);
    ck_assert_uint_eq(s[1].line, 4);
    rp_cycle_destroy(cycle);
}
END_TEST

/* proxy and upstream directives */

/* A location proxying to upstream u, with `line` on line 9 of the file. */
static const char *proxy_conf(const char *line)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    upstream u {\n"
             "        server 127.0.0.1:8081;\n"
             "    }\n"
             "    server {\n"
             "        listen 127.0.0.1:8080;\n"
             "        location / {\n"
             "            proxy_pass http://u;\n"
             "            %s\n"
             "        }\n"
             "    }\n"
             "}\n",
             line);
    return buf;
}

/* An upstream block u holding `lines` on lines 4 and on. */
static const char *upstream_conf(const char *lines)
{
    static char buf[1024];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    upstream u {\n"
             "        server 127.0.0.1:8081;\n"
             "%s"
             "    }\n"
             "}\n",
             lines);
    return buf;
}

START_TEST(test_proxy_set_header_content_length_is_refused)
{
    ut_expect_error(proxy_conf("proxy_set_header Content-Length 10;"),
                    "@/rampart.conf:9: \"proxy_set_header\": \"Content-Length\" cannot be set: "
                    "rampart writes it itself");
}
END_TEST

START_TEST(test_proxy_set_header_transfer_encoding_is_refused)
{
    ut_expect_error(proxy_conf("proxy_set_header transfer-encoding chunked;"),
                    "@/rampart.conf:9: \"proxy_set_header\": \"transfer-encoding\" cannot be set: "
                    "rampart writes it itself");
}
END_TEST

START_TEST(test_proxy_set_header_connection_with_a_value_is_accepted)
{
    /* nginx's WebSocket snippet: the value is read for the upgrade token */
    rp_cycle_destroy(ut_load_ok(proxy_conf("proxy_set_header Connection $http_connection;")));
}
END_TEST

START_TEST(test_nginx_directive_rampart_lacks_is_refused_as_unsupported)
{
    ut_expect_error(proxy_conf("proxy_cache_valid 200 1m;"),
                    "@/rampart.conf:9: \"proxy_cache_valid\": nginx directive not supported by "
                    "rampart (see rampart.conf(5), DIFFERENCES)");
}
END_TEST

START_TEST(test_name_nginx_does_not_have_is_an_unknown_directive)
{
    ut_expect_error(proxy_conf("proxy_cache_validity 200 1m;"),
                    "@/rampart.conf:9: unknown directive \"proxy_cache_validity\"");
}
END_TEST

START_TEST(test_proxy_set_header_empty_connection_is_accepted)
{
    rp_cycle_destroy(ut_load_ok(proxy_conf("proxy_set_header Connection \"\";")));
}
END_TEST

START_TEST(test_proxy_buffer_size_above_128k_is_refused)
{
    ut_expect_error(proxy_conf("proxy_buffer_size 129k;"),
                    "@/rampart.conf:9: \"proxy_buffer_size\": proxy_buffer_size must be between "
                    "1k and 128k");
}
END_TEST

START_TEST(test_proxy_buffer_size_below_1k_is_refused)
{
    ut_expect_error(proxy_conf("proxy_buffer_size 1023;"),
                    "@/rampart.conf:9: \"proxy_buffer_size\": proxy_buffer_size must be between "
                    "1k and 128k");
}
END_TEST

START_TEST(test_proxy_buffer_size_of_1k_and_of_128k_are_accepted)
{
    const char *sizes[] = {"1k", "128k"};
    size_t want[] = {1024, 128 * 1024};
    for (size_t i = 0; i < 2; i++) {
        char line[64];
        snprintf(line, sizeof(line), "proxy_buffer_size %s;", sizes[i]);
        rp_cycle_t *cycle = ut_load_ok(proxy_conf(line));
        rp_http_core_loc_conf_t *loc = ut_loc(ut_srv_loc(ut_server(cycle, 0)), "/");
        rp_proxy_loc_conf_t *p = loc->loc_conf[rp_proxy_module.index];
        ck_assert_uint_eq(p->buffer_size, want[i]);
        rp_cycle_destroy(cycle);
    }
}
END_TEST

START_TEST(test_upstream_keepalive_timeout_twice_is_a_duplicate)
{
    ut_expect_error(upstream_conf("        keepalive_timeout 10s;\n"
                                  "        keepalive_timeout 20s;\n"),
                    "@/rampart.conf:5: \"keepalive_timeout\": is duplicate");
}
END_TEST

START_TEST(test_upstream_keepalive_requests_twice_is_a_duplicate)
{
    ut_expect_error(upstream_conf("        keepalive_requests 100;\n"
                                  "        keepalive_requests 200;\n"),
                    "@/rampart.conf:5: \"keepalive_requests\": is duplicate");
}
END_TEST

START_TEST(test_upstream_defined_after_the_proxy_pass_naming_it_is_used)
{
    rp_cycle_t *cycle = ut_load_ok("http {\n"
                                   "    server {\n"
                                   "        listen 127.0.0.1:8080;\n"
                                   "        location / {\n"
                                   "            proxy_pass http://later;\n"
                                   "        }\n"
                                   "    }\n"
                                   "    upstream later {\n"
                                   "        server 127.0.0.1:8081;\n"
                                   "    }\n"
                                   "}\n");
    rp_http_core_loc_conf_t *loc = ut_loc(ut_srv_loc(ut_server(cycle, 0)), "/");
    rp_proxy_loc_conf_t *p = loc->loc_conf[rp_proxy_module.index];
    ck_assert_ptr_nonnull(p->upstream);
    ck_assert_str_eq(p->upstream->name, "later");
    ck_assert_int_eq(p->upstream->implicit, 0);
    ck_assert_uint_eq(p->upstream->line, 8);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_proxy_pass_checked_after_the_whole_file_is_refused_at_its_own_line)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;\n"
                    "        location / {\n"
                    "            proxy_pass http://127.0.0.1:0;\n"
                    "        }\n"
                    "    }\n"
                    "    upstream later {\n"
                    "        server 127.0.0.1:8081;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:5: \"proxy_pass\": invalid port in \"127.0.0.1:0\" (no "
                    "upstream block \"127.0.0.1:0\" either)");
}
END_TEST

static Suite *parser_suite(void)
{
    Suite *s = suite_create("parser");
    TCase *tc = tcase_create("grammar");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_unknown_directive_names_file_and_line);
    tcase_add_test(tc, test_unknown_directive_inside_a_block);
    tcase_add_test(tc, test_directive_in_the_wrong_context_names_the_context);
    tcase_add_test(tc, test_too_many_arguments_says_how_many);
    tcase_add_test(tc, test_missing_arguments_say_how_many_are_needed);
    tcase_add_test(tc, test_argument_range_is_named);
    tcase_add_test(tc, test_missing_semicolon_before_closing_brace);
    tcase_add_test(tc, test_missing_semicolon_at_end_of_file);
    tcase_add_test(tc, test_directive_spanning_lines_is_reported_at_its_first_line);
    tcase_add_test(tc, test_missing_closing_brace_names_where_the_block_opened);
    tcase_add_test(tc, test_missing_closing_brace_names_the_innermost_block);
    tcase_add_test(tc, test_stray_closing_brace);
    tcase_add_test(tc, test_stray_semicolon);
    tcase_add_test(tc, test_stray_opening_brace);
    tcase_add_test(tc, test_block_directive_without_a_block);
    tcase_add_test(tc, test_simple_directive_with_a_block);
    tcase_add_test(tc, test_lexer_errors_carry_file_and_line);
    tcase_add_test(tc, test_nul_byte_in_a_file_is_refused_with_its_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_worker_processes_must_be_auto_or_a_number);
    tcase_add_test(tc, test_bad_time_is_refused);
    tcase_add_test(tc, test_bad_size_is_refused);
    tcase_add_test(tc, test_bad_flag_is_refused);
    tcase_add_test(tc, test_bad_number_is_refused);
    tcase_add_test(tc, test_bad_log_level_is_refused);
    tcase_add_test(tc, test_listen_with_a_bad_port_is_refused);
    tcase_add_test(tc, test_listen_without_a_port_is_refused);
    tcase_add_test(tc, test_listen_with_an_unknown_parameter_is_refused);
    tcase_add_test(tc, test_listen_with_a_malformed_address_is_refused);
    tcase_add_test(tc, test_listen_with_bad_socket_options_is_refused);
    tcase_add_test(tc, test_header_buffer_count_and_size_are_checked);
    tcase_add_test(tc, test_return_with_a_bad_code_is_refused);
    tcase_add_test(tc, test_return_with_an_unknown_variable_is_refused);
    tcase_add_test(tc, test_return_with_an_empty_variable_name_is_refused);
    tcase_add_test(tc, test_return_text_with_known_and_escaped_variables_loads);
    tcase_add_test(tc, test_invalid_regex_location_is_refused);
    tcase_add_test(tc, test_invalid_regex_server_name_is_refused);
    tcase_add_test(tc, test_invalid_wildcard_server_name_is_refused);
    tcase_add_test(tc, test_location_path_must_start_with_a_slash);
    tcase_add_test(tc, test_nested_location_must_be_inside_its_parent);
    tcase_add_test(tc, test_exact_location_cannot_have_nested_locations);
    tcase_add_test(tc, test_unknown_location_modifier_is_refused);
    tcase_add_test(tc, test_location_nested_in_a_named_location_is_refused);
    tcase_add_test(tc, test_upstream_without_servers_is_refused_at_its_line);
    tcase_add_test(tc, test_upstream_server_with_a_bad_parameter_is_refused);
    tcase_add_test(tc, test_header_buffers_above_the_limit_are_refused_at_the_directive);
    tcase_add_test(tc, test_core_directives_reach_the_core_configuration);
    tcase_add_test(tc, test_core_defaults_apply_when_nothing_is_set);
    tcase_add_test(tc, test_worker_processes_auto_is_the_number_of_cpus);
    tcase_add_test(tc, test_upstream_servers_keep_their_parameters);
    suite_add_tcase(s, tc);

    tc = tcase_create("proxy and upstream");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_proxy_set_header_content_length_is_refused);
    tcase_add_test(tc, test_proxy_set_header_transfer_encoding_is_refused);
    tcase_add_test(tc, test_proxy_set_header_connection_with_a_value_is_accepted);
    tcase_add_test(tc, test_nginx_directive_rampart_lacks_is_refused_as_unsupported);
    tcase_add_test(tc, test_name_nginx_does_not_have_is_an_unknown_directive);
    tcase_add_test(tc, test_proxy_set_header_empty_connection_is_accepted);
    tcase_add_test(tc, test_proxy_buffer_size_above_128k_is_refused);
    tcase_add_test(tc, test_proxy_buffer_size_below_1k_is_refused);
    tcase_add_test(tc, test_proxy_buffer_size_of_1k_and_of_128k_are_accepted);
    tcase_add_test(tc, test_upstream_keepalive_timeout_twice_is_a_duplicate);
    tcase_add_test(tc, test_upstream_keepalive_requests_twice_is_a_duplicate);
    tcase_add_test(tc, test_upstream_defined_after_the_proxy_pass_naming_it_is_used);
    tcase_add_test(tc, test_proxy_pass_checked_after_the_whole_file_is_refused_at_its_own_line);
    suite_add_tcase(s, tc);

    tc = tcase_create("duplicates");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_worker_processes_twice_is_a_duplicate);
    tcase_add_test(tc, test_same_directive_twice_in_one_block_is_a_duplicate);
    tcase_add_test(tc, test_duplicate_location_is_refused);
    tcase_add_test(tc, test_prefix_and_no_regex_prefix_of_the_same_path_are_duplicates);
    tcase_add_test(tc, test_duplicate_exact_and_regex_locations_are_refused);
    tcase_add_test(tc, test_same_path_with_different_kinds_is_not_a_duplicate);
    tcase_add_test(tc, test_duplicate_upstream_names_the_first_definition);
    tcase_add_test(tc, test_duplicate_default_server_for_one_address_is_refused);
    tcase_add_test(tc, test_default_servers_of_different_addresses_are_not_duplicates);
    tcase_add_test(tc, test_duplicate_listen_in_one_server_is_refused);
    tcase_add_test(tc, test_second_http_block_is_a_duplicate);
    suite_add_tcase(s, tc);

    tc = tcase_create("includes");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_missing_include_is_refused_with_the_including_line);
    tcase_add_test(tc, test_including_a_directory_is_refused);
    tcase_add_test(tc, test_including_a_fifo_is_refused_without_waiting_for_a_writer);
    tcase_add_test(tc, test_include_cycle_names_the_chain);
    tcase_add_test(tc, test_file_including_itself_is_a_cycle);
    tcase_add_test(tc, test_same_file_included_twice_in_sequence_is_not_a_cycle);
    tcase_add_test(tc, test_include_glob_matching_nothing_is_fine);
    tcase_add_test(tc, test_include_glob_in_a_missing_folder_is_fine);
    tcase_add_test(tc, test_include_glob_skips_directories);
    tcase_add_test(tc, test_include_with_an_absolute_path);
    tcase_add_test(tc, test_error_in_an_included_file_names_that_file);
    tcase_add_test(tc, test_included_file_is_parsed_in_the_including_context);
    tcase_add_test(tc, test_included_file_cannot_close_the_including_block);
    tcase_add_test(tc, test_block_left_open_in_an_included_file_is_reported_there);
    tcase_add_test(tc, test_includes_nested_too_deep_are_refused);
    tcase_add_test(tc, test_missing_configuration_file_is_named);
    suite_add_tcase(s, tc);

    tc = tcase_create("nasty inputs");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_configuration_file_that_is_a_directory_is_refused);
    tcase_add_test(tc, test_empty_file_and_comments_only_load);
    tcase_add_test(tc, test_blocks_nested_to_the_limit_load);
    tcase_add_test(tc, test_blocks_nested_beyond_the_limit_are_refused);
    tcase_add_test(tc, test_very_long_word_is_reported_truncated);
    tcase_add_test(tc, test_very_long_quoted_value_is_kept_whole);
    tcase_add_test(tc, test_random_bytes_never_crash_the_loader);
    tcase_add_test(tc, test_random_configuration_words_never_crash_the_loader);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(parser_suite());
}
