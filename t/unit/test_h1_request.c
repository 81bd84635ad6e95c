/*
 * The HTTP/1 request-head parser: request lines and header lines that are
 * accepted, the line, header-count and head-size limits, and every malformed
 * head it refuses. Each case is fed whole, split in two at every byte and one
 * byte more at a time (h1_unit.h), and all three must agree.
 */

#include "h1_unit.h"

/* A request whose first line is "GET /" + target bytes + " HTTP/1.1": exactly line_len long. */
static char *request_line_of(size_t line_len)
{
    char *b = malloc(line_len + 16);
    size_t fixed = strlen("GET / HTTP/1.1");
    memcpy(b, "GET /", 5);
    memset(b + 5, 'a', line_len - fixed);
    strcpy(b + 5 + line_len - fixed, " HTTP/1.1\r\n\r\n");
    return b;
}

/* A request with one header line "X:" + fill bytes, exactly line_len long. */
static char *header_line_of(size_t line_len, char fill)
{
    char *b = malloc(line_len + 64);
    size_t n = (size_t)sprintf(b, "GET / HTTP/1.1\r\nX:");
    memset(b + n, fill, line_len - 2);
    strcpy(b + n + line_len - 2, "\r\n\r\n");
    return b;
}

/* valid requests */

START_TEST(test_get_with_headers_is_parsed)
{
    const char *req = "GET /index.html?q=1 HTTP/1.1\r\n"
                      "Host: example.com\r\n"
                      "Accept: */*\r\n"
                      "\r\n";
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(req, &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.method), "GET");
    ck_assert_str_eq(span(p.target), "/index.html?q=1");
    ck_assert_int_eq(p.version, 11);
    ck_assert_uint_eq(p.nheaders, 2);
    ck_assert_str_eq(span(p.headers[0].name), "Host");
    ck_assert_str_eq(span(p.headers[0].value), "example.com");
    ck_assert_str_eq(span(p.headers[1].name), "Accept");
    ck_assert_str_eq(span(p.headers[1].value), "*/*");
    ck_assert_uint_eq(p.pos, strlen(req));
}
END_TEST

START_TEST(test_absolute_form_target_is_kept_whole)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n", &p),
                     RP_H1_DONE);
    ck_assert_str_eq(span(p.target), "http://example.com:8080/a/b?c=d");
}
END_TEST

START_TEST(test_http_1_0_request_has_version_10)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("HEAD / HTTP/1.0\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.method), "HEAD");
    ck_assert_int_eq(p.version, 10);
    ck_assert_uint_eq(p.nheaders, 0);
}
END_TEST

START_TEST(test_leading_empty_lines_are_skipped)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("\r\n\n\r\nPOST /x HTTP/1.1\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.method), "POST");
    ck_assert_uint_eq(p.method.off, 5);
    ck_assert_str_eq(span(p.target), "/x");
}
END_TEST

START_TEST(test_bare_lf_line_ends_are_accepted)
{
    const char *req = "GET / HTTP/1.1\nHost: a\nX-Y: b\n\n";
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(req, &p), RP_H1_DONE);
    ck_assert_uint_eq(p.nheaders, 2);
    ck_assert_str_eq(span(p.headers[0].value), "a");
    ck_assert_str_eq(span(p.headers[1].name), "X-Y");
    ck_assert_str_eq(span(p.headers[1].value), "b");
    ck_assert_uint_eq(p.pos, strlen(req));
}
END_TEST

START_TEST(test_ows_around_a_value_is_trimmed)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nA: \t x  y \t \r\nB:z\t\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.headers[0].value), "x  y");
    ck_assert_str_eq(span(p.headers[1].value), "z");
}
END_TEST

START_TEST(test_empty_value_is_allowed)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nA:\r\nB:   \r\nC: c\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_uint_eq(p.nheaders, 3);
    ck_assert_uint_eq(p.headers[0].value.len, 0);
    ck_assert_uint_eq(p.headers[1].value.len, 0);
    ck_assert_str_eq(span(p.headers[1].name), "B");
    ck_assert_str_eq(span(p.headers[2].value), "c");
}
END_TEST

START_TEST(test_tab_and_non_ascii_bytes_inside_a_value_are_kept)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\nA: x\ty \xc3\xa9\xff\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.headers[0].value), "x\ty \xc3\xa9\xff");
}
END_TEST

START_TEST(test_header_names_may_use_every_token_character)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.headers[0].name), "!#$%&'*+-.^_`|~09azAZ");
}
END_TEST

START_TEST(test_method_may_be_any_token)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("M-SEARCH * HTTP/1.1\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.method), "M-SEARCH");
    ck_assert_str_eq(span(p.target), "*");
}
END_TEST

START_TEST(test_body_bytes_after_the_head_are_left_unread)
{
    const char *head = "POST /u HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
    char req[256];
    snprintf(req, sizeof(req), "%shelloGET / HTTP/1.1\r\n\r\n", head);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(req, &p), RP_H1_DONE);
    ck_assert_uint_eq(p.pos, strlen(head));
}
END_TEST

START_TEST(test_incomplete_head_needs_more_bytes)
{
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t len = strlen(req);
    for (size_t n = 0; n < len; n++) {
        rp_h1_parser_t p;
        rp_h1_parser_init(&p, MAX_LINE, MAX_HEAD);
        ck_assert_int_eq(rp_h1_parse_request(&p, req, n), RP_H1_AGAIN);
        ck_assert_uint_eq(p.pos, n);
    }
}
END_TEST

START_TEST(test_span_comparison_ignores_case)
{
    const char *buf = "xContent-Lengthx";
    rp_span_t s = {1, 14};
    ck_assert(rp_span_ieq(buf, s, "content-length"));
    ck_assert(!rp_span_ieq(buf, s, "content-type"));
    ck_assert(!rp_span_ieq(buf, s, "content-lengthx"));
}
END_TEST

/* limits */

START_TEST(test_request_line_at_the_limit_is_accepted)
{
    char *req = request_line_of(100);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, strlen(req), 100, 4096, &p), RP_H1_DONE);
    ck_assert_uint_eq(p.target.len, 100 - strlen("GET  HTTP/1.1"));
    free(req);
}
END_TEST

START_TEST(test_request_line_too_long_is_414)
{
    char *req = request_line_of(101);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, strlen(req), 100, 4096, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 414);
    ck_assert_str_eq(p.reason, "request line too long");
    free(req);
}
END_TEST

START_TEST(test_header_line_at_the_limit_is_accepted)
{
    char *req = header_line_of(100, 'v');
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, strlen(req), 100, 4096, &p), RP_H1_DONE);
    ck_assert_uint_eq(p.headers[0].value.len, 98);
    free(req);
}
END_TEST

START_TEST(test_header_line_too_long_is_431)
{
    char *req = header_line_of(101, 'v');
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, strlen(req), 100, 4096, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 431);
    ck_assert_str_eq(p.reason, "header line too long");
    free(req);
}
END_TEST

START_TEST(test_header_line_too_long_counts_whitespace_after_the_colon)
{
    char *req = header_line_of(101, ' ');
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, strlen(req), 100, 4096, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 431);
    ck_assert_str_eq(p.reason, "header line too long");
    free(req);
}
END_TEST

START_TEST(test_long_header_name_is_431)
{
    char req[512];
    size_t n = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    memset(req + n, 'N', 101);
    strcpy(req + n + 101, ": v\r\n\r\n");
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, strlen(req), 100, 4096, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 431);
    ck_assert_str_eq(p.reason, "header line too long");
}
END_TEST

static char *request_with_headers(unsigned n)
{
    char *b = malloc(32 + n * 16);
    size_t len = (size_t)sprintf(b, "GET / HTTP/1.1\r\n");
    for (unsigned i = 0; i < n; i++)
        len += (size_t)sprintf(b + len, "H%u: v\r\n", i);
    strcpy(b + len, "\r\n");
    return b;
}

START_TEST(test_100_headers_are_accepted)
{
    char *req = request_with_headers(RP_H1_MAX_HEADERS);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(req, &p), RP_H1_DONE);
    ck_assert_uint_eq(p.nheaders, 100);
    ck_assert_str_eq(span(p.headers[99].name), "H99");
    free(req);
}
END_TEST

START_TEST(test_too_many_headers_is_431)
{
    char *req = request_with_headers(RP_H1_MAX_HEADERS + 1);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(req, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 431);
    ck_assert_str_eq(p.reason, "too many headers");
    free(req);
}
END_TEST

START_TEST(test_head_at_the_limit_is_accepted)
{
    char *req = request_with_headers(20);
    uint32_t len = (uint32_t)strlen(req);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, len, 100, len, &p), RP_H1_DONE);
    ck_assert_uint_eq(p.pos, len);
    free(req);
}
END_TEST

START_TEST(test_head_too_large_is_431)
{
    char *req = request_with_headers(20);
    uint32_t len = (uint32_t)strlen(req);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_limits(req, len, 100, len - 1, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 431);
    ck_assert_str_eq(p.reason, "request head too large");
    free(req);
}
END_TEST

/* rejections */

START_TEST(test_bare_cr_in_the_request_line_is_400)
{
    expect_refused("GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR in request line");
}
END_TEST

START_TEST(test_bare_cr_in_a_header_is_400)
{
    expect_refused("GET / HTTP/1.1\r\nA: b\rc: d\r\n\r\n", 400, "bare CR in header");
}
END_TEST

START_TEST(test_bare_cr_at_the_end_of_the_head_is_400)
{
    expect_refused("GET / HTTP/1.1\r\nA: b\r\n\rX", 400, "bare CR at end of head");
}
END_TEST

START_TEST(test_nul_in_a_value_is_400)
{
    expect_refused_n("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 26, 400,
                     "invalid character in header value");
}
END_TEST

START_TEST(test_control_characters_in_a_value_are_400)
{
    expect_refused("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400, "invalid character in header value");
    expect_refused("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400, "invalid character in header value");
    expect_refused("GET / HTTP/1.1\r\nA: \x1b[0m\r\n\r\n", 400,
                   "invalid character in header value");
}
END_TEST

START_TEST(test_line_break_inside_a_value_leaves_a_line_without_colon)
{
    /* "A: b<LF>c d" is header A, then a line "c d" that is no header: refused, not joined */
    expect_refused("GET / HTTP/1.1\r\nA: b\nc d\r\n\r\n", 400, "whitespace before colon in header");
    expect_refused("GET / HTTP/1.1\r\nA: b\r\nc\r\n\r\n", 400, "invalid character in header name");
}
END_TEST

START_TEST(test_obs_fold_is_400)
{
    expect_refused("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400, "obsolete line folding");
    expect_refused("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", 400, "obsolete line folding");
}
END_TEST

START_TEST(test_whitespace_before_a_colon_is_400)
{
    expect_refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "whitespace before colon in header");
    expect_refused("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "whitespace before colon in header");
}
END_TEST

START_TEST(test_whitespace_before_the_first_header_is_400)
{
    expect_refused("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "whitespace before the first header");
}
END_TEST

START_TEST(test_invalid_characters_in_a_header_name_are_400)
{
    expect_refused("GET / HTTP/1.1\r\nA@b: c\r\n\r\n", 400, "invalid character in header name");
    expect_refused("GET / HTTP/1.1\r\n(A): c\r\n\r\n", 400, "invalid character in header name");
    expect_refused("GET / HTTP/1.1\r\nA\xc3\xa9: c\r\n\r\n", 400,
                   "invalid character in header name");
    expect_refused("GET / HTTP/1.1\r\n: c\r\n\r\n", 400, "invalid character in header name");
    expect_refused("GET / HTTP/1.1\r\nFoo@: c\r\n\r\n", 400, "invalid character in header name");
    expect_refused("GET / HTTP/1.1\r\n\xff: c\r\n\r\n", 400, "invalid character in header name");
}
END_TEST

START_TEST(test_invalid_characters_in_the_method_are_400)
{
    expect_refused("G(ET / HTTP/1.1\r\n\r\n", 400, "invalid character in method");
    expect_refused("GET\t/ HTTP/1.1\r\n\r\n", 400, "invalid character in method");
    expect_refused(" GET / HTTP/1.1\r\n\r\n", 400, "invalid character in method");
    expect_refused("GE\xc3\x89T / HTTP/1.1\r\n\r\n", 400, "invalid character in method");
}
END_TEST

START_TEST(test_control_characters_in_the_target_are_400)
{
    expect_refused("GET /a\x01 HTTP/1.1\r\n\r\n", 400, "invalid character in request target");
    expect_refused("GET /a\x7f HTTP/1.1\r\n\r\n", 400, "invalid character in request target");
    expect_refused("GET /a\tb HTTP/1.1\r\n\r\n", 400, "invalid character in request target");
    expect_refused_n("GET /a\0 HTTP/1.1\r\n\r\n", 20, 400, "invalid character in request target");
}
END_TEST

START_TEST(test_empty_target_is_400)
{
    expect_refused("GET  / HTTP/1.1\r\n\r\n", 400, "empty request target");
}
END_TEST

START_TEST(test_missing_version_is_400)
{
    expect_refused("GET /\r\n\r\n", 400, "request line without HTTP version");
    expect_refused("GET /a\nHost: b\n\n", 400, "request line without HTTP version");
    expect_refused("GET / \r\n\r\n", 400, "malformed HTTP version");
}
END_TEST

START_TEST(test_malformed_version_is_400)
{
    const char *bad[] = {"HTTP/1.1x", "HTTX/1.1",  "HTTP/11",    "http/1.1",   "HTTP/1.",
                         "HTTP/a.1",  "HTTP/1,1",  "HTTP/1.1 ",  "HTTP/1.1 x", "HTTP/1.10",
                         "HTTP/1",    "HTTP/01.1", "HTTP/1.1.1", "HTTP/ 1.1",  "Http/1.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char req[64];
        snprintf(req, sizeof(req), "GET / %s\r\n\r\n", bad[i]);
        rp_h1_parser_t p;
        ck_assert_msg(parse(req, &p) == RP_H1_ERROR && p.status == 400, "\"%s\" gave status %d",
                      bad[i], p.status);
        ck_assert_str_eq(p.reason, "malformed HTTP version");
    }
}
END_TEST

START_TEST(test_higher_minor_version_is_handled_as_1_1)
{
    /* RFC 9110 2.5: HTTP/1.2 is answered as HTTP/1.1, not refused */
    rp_h1_parser_t p;
    ck_assert_int_eq(parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.version, 11);
    ck_assert_int_eq(parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.version, 11);
}
END_TEST

START_TEST(test_other_major_versions_are_505)
{
    expect_refused("GET / HTTP/2.0\r\n\r\n", 505, "unsupported HTTP version");
    expect_refused("GET / HTTP/3.1\r\n\r\n", 505, "unsupported HTTP version");
    expect_refused("GET / HTTP/0.9\r\n\r\n", 505, "unsupported HTTP version");
}
END_TEST

START_TEST(test_space_inside_a_header_name_is_400)
{
    expect_refused("GET / HTTP/1.1\r\nFo o: c\r\n\r\n", 400, "whitespace before colon in header");
    expect_refused("GET / HTTP/1.1\r\nFo\to: c\r\n\r\n", 400, "whitespace before colon in header");
}
END_TEST

START_TEST(test_bare_cr_before_the_request_line_is_400)
{
    /* only CRLF or LF make the empty lines RFC 9112 2.2 lets a server skip */
    expect_refused("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR before the request line");
    expect_refused("\r\n\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                   "bare CR before the request line");
    expect_refused("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
                   "bare CR before the request line");
}
END_TEST

static const char good_request[] = "GET /a?b HTTP/1.1\r\nHost: h\r\nX-A: b c\r\nE:\r\n\r\n";

START_TEST(test_bare_cr_anywhere_in_the_head_is_400)
{
    refused_wherever_inserted(REQUEST, good_request, '\r', 400);
}
END_TEST

START_TEST(test_nul_anywhere_in_the_head_is_400)
{
    refused_wherever_inserted(REQUEST, good_request, '\0', 400);
}
END_TEST

START_TEST(test_space_inside_the_target_is_400)
{
    /* the first space ends the target, so the rest is no HTTP version */
    expect_refused("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version");
    expect_refused("GET /a\x7f HTTP/1.1\r\n\r\n", 400, "invalid character in request target");
    expect_refused("GET /a\x1b HTTP/1.1\r\n\r\n", 400, "invalid character in request target");
}
END_TEST

START_TEST(test_empty_method_is_400)
{
    expect_refused(" / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid character in method");
}
END_TEST

START_TEST(test_bare_lf_line_ends_leave_no_cr_or_lf_in_spans)
{
    /* a bare LF ends a line like CRLF; neither byte is ever part of a span */
    const char *req = "GET /p HTTP/1.1\nHost: a\r\nX: b \nY:\t\nZ:z\r\n\n";
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(req, &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.target), "/p");
    ck_assert_int_eq(p.version, 11);
    ck_assert_uint_eq(p.nheaders, 4);
    const char *want[][2] = {{"Host", "a"}, {"X", "b"}, {"Y", ""}, {"Z", "z"}};
    for (unsigned i = 0; i < p.nheaders; i++) {
        ck_assert_str_eq(span(p.headers[i].name), want[i][0]);
        ck_assert_str_eq(span(p.headers[i].value), want[i][1]);
        ck_assert(memchr(req + p.headers[i].value.off, '\r', p.headers[i].value.len) == NULL);
        ck_assert(memchr(req + p.headers[i].value.off, '\n', p.headers[i].value.len) == NULL);
    }
    ck_assert_uint_eq(p.pos, strlen(req));
}
END_TEST

START_TEST(test_pipelined_request_starts_exactly_at_pos)
{
    const char *first = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    const char *second = "POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 0\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", first, second);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse(buf, &p), RP_H1_DONE);
    ck_assert_str_eq(span(p.target), "/1");
    ck_assert_uint_eq(p.pos, strlen(first));
    ck_assert_str_eq(buf + p.pos, second);

    rp_h1_parser_t q;
    ck_assert_int_eq(parse(buf + p.pos, &q), RP_H1_DONE);
    ck_assert_str_eq(span(q.method), "POST");
    ck_assert_str_eq(span(q.target), "/2");
    ck_assert_uint_eq(q.pos, strlen(second));
}
END_TEST

/* found by fuzzing (fuzz/): each of these once failed */

START_TEST(test_head_limit_near_uint32_max_does_not_hide_the_input)
{
    /* max_head + 4 wrapped to 0..3, so the parser looked at no more than 3 bytes, ever */
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    rp_h1_parser_t p;
    for (uint32_t k = 0; k < 8; k++) {
        rp_h1_parser_init(&p, UINT32_MAX - k, UINT32_MAX - k);
        ck_assert_int_eq(rp_h1_parse_request(&p, req, strlen(req)), RP_H1_DONE);
        ck_assert_uint_eq(p.pos, strlen(req));
    }
}
END_TEST

static Suite *h1_request_suite(void)
{
    Suite *s = suite_create("h1_request");
    TCase *tc = tcase_create("valid requests");
    tcase_add_test(tc, test_get_with_headers_is_parsed);
    tcase_add_test(tc, test_absolute_form_target_is_kept_whole);
    tcase_add_test(tc, test_http_1_0_request_has_version_10);
    tcase_add_test(tc, test_leading_empty_lines_are_skipped);
    tcase_add_test(tc, test_bare_lf_line_ends_are_accepted);
    tcase_add_test(tc, test_ows_around_a_value_is_trimmed);
    tcase_add_test(tc, test_empty_value_is_allowed);
    tcase_add_test(tc, test_tab_and_non_ascii_bytes_inside_a_value_are_kept);
    tcase_add_test(tc, test_header_names_may_use_every_token_character);
    tcase_add_test(tc, test_method_may_be_any_token);
    tcase_add_test(tc, test_body_bytes_after_the_head_are_left_unread);
    tcase_add_test(tc, test_incomplete_head_needs_more_bytes);
    tcase_add_test(tc, test_span_comparison_ignores_case);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_request_line_at_the_limit_is_accepted);
    tcase_add_test(tc, test_request_line_too_long_is_414);
    tcase_add_test(tc, test_header_line_at_the_limit_is_accepted);
    tcase_add_test(tc, test_header_line_too_long_is_431);
    tcase_add_test(tc, test_header_line_too_long_counts_whitespace_after_the_colon);
    tcase_add_test(tc, test_long_header_name_is_431);
    tcase_add_test(tc, test_100_headers_are_accepted);
    tcase_add_test(tc, test_too_many_headers_is_431);
    tcase_add_test(tc, test_head_at_the_limit_is_accepted);
    tcase_add_test(tc, test_head_too_large_is_431);
    suite_add_tcase(s, tc);

    tc = tcase_create("rejections");
    tcase_add_test(tc, test_bare_cr_in_the_request_line_is_400);
    tcase_add_test(tc, test_bare_cr_in_a_header_is_400);
    tcase_add_test(tc, test_bare_cr_at_the_end_of_the_head_is_400);
    tcase_add_test(tc, test_nul_in_a_value_is_400);
    tcase_add_test(tc, test_control_characters_in_a_value_are_400);
    tcase_add_test(tc, test_line_break_inside_a_value_leaves_a_line_without_colon);
    tcase_add_test(tc, test_obs_fold_is_400);
    tcase_add_test(tc, test_whitespace_before_a_colon_is_400);
    tcase_add_test(tc, test_whitespace_before_the_first_header_is_400);
    tcase_add_test(tc, test_invalid_characters_in_a_header_name_are_400);
    tcase_add_test(tc, test_invalid_characters_in_the_method_are_400);
    tcase_add_test(tc, test_control_characters_in_the_target_are_400);
    tcase_add_test(tc, test_empty_target_is_400);
    tcase_add_test(tc, test_missing_version_is_400);
    tcase_add_test(tc, test_malformed_version_is_400);
    tcase_add_test(tc, test_other_major_versions_are_505);
    tcase_add_test(tc, test_higher_minor_version_is_handled_as_1_1);
    tcase_add_test(tc, test_space_inside_a_header_name_is_400);
    tcase_add_test(tc, test_bare_cr_before_the_request_line_is_400);
    tcase_add_test(tc, test_bare_cr_anywhere_in_the_head_is_400);
    tcase_add_test(tc, test_nul_anywhere_in_the_head_is_400);
    tcase_add_test(tc, test_space_inside_the_target_is_400);
    tcase_add_test(tc, test_empty_method_is_400);
    tcase_add_test(tc, test_bare_lf_line_ends_leave_no_cr_or_lf_in_spans);
    tcase_add_test(tc, test_pipelined_request_starts_exactly_at_pos);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz findings");
    tcase_add_test(tc, test_head_limit_near_uint32_max_does_not_hide_the_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(h1_request_suite());
}
