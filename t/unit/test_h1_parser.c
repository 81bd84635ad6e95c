/*
 * The HTTP/1 request-head parser and the chunked decoder. Both are incremental,
 * so every case is fed three ways: whole, split in two at every byte, and one
 * byte more at a time into the same parser. All three must give the same result
 * (fields, offsets, status and reason); a parser that remembers its place wrongly
 * shows up only when the network splits a request where the test did not.
 */
#include "http/h1_parser.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LINE 8192
#define MAX_HEAD 32768

static const char *cur; /* the request of the running check, for span() */

/* A span of the current request as a string (valid until the next call). */
static const char *span(rp_span_t s)
{
    static char bufs[4][MAX_HEAD];
    static unsigned next;
    char *b = bufs[next++ % 4];
    memcpy(b, cur + s.off, s.len);
    b[s.len] = '\0';
    return b;
}

static void assert_same(const rp_h1_parser_t *a, rp_h1_result_t ra, const rp_h1_parser_t *b,
                        rp_h1_result_t rb, const char *how)
{
    ck_assert_msg(ra == rb, "%s: result %d, whole: %d", how, rb, ra);
    if (ra == RP_H1_ERROR) {
        ck_assert_msg(a->status == b->status, "%s: status %d, whole: %d", how, b->status,
                      a->status);
        ck_assert_msg(strcmp(a->reason, b->reason) == 0, "%s: \"%s\", whole: \"%s\"", how,
                      b->reason, a->reason);
        return;
    }
    if (ra != RP_H1_DONE)
        return;
    ck_assert_msg(a->pos == b->pos, "%s: pos %u, whole: %u", how, b->pos, a->pos);
    ck_assert_msg(memcmp(&a->method, &b->method, sizeof(a->method)) == 0 &&
                      memcmp(&a->target, &b->target, sizeof(a->target)) == 0 &&
                      a->version == b->version,
                  "%s: request line differs", how);
    ck_assert_msg(a->nheaders == b->nheaders, "%s: %u headers, whole: %u", how, b->nheaders,
                  a->nheaders);
    ck_assert_msg(memcmp(a->headers, b->headers, a->nheaders * sizeof(a->headers[0])) == 0,
                  "%s: header offsets differ", how);
}

/* Feeds buf[0..len) in two calls, the first with n bytes; each call sees exactly its bytes. */
static rp_h1_result_t feed_split(rp_h1_parser_t *p, const char *buf, size_t len, size_t n)
{
    char *first = malloc(n ? n : 1);
    memcpy(first, buf, n);
    rp_h1_result_t rc = rp_h1_parse_request(p, first, n);
    free(first);
    if (rc != RP_H1_AGAIN)
        return rc;
    char *all = malloc(len ? len : 1);
    memcpy(all, buf, len);
    rc = rp_h1_parse_request(p, all, len);
    free(all);
    return rc;
}

static rp_h1_result_t feed_bytewise(rp_h1_parser_t *p, const char *buf, size_t len)
{
    rp_h1_result_t rc = RP_H1_AGAIN;
    for (size_t n = 1; n <= len && rc == RP_H1_AGAIN; n++) {
        char *b = malloc(n);
        memcpy(b, buf, n);
        rc = rp_h1_parse_request(p, b, n);
        free(b);
    }
    return rc;
}

/* Parses len bytes whole into *p, then checks every split gives the same outcome. */
static rp_h1_result_t parse_limits(const char *buf, size_t len, uint32_t max_line,
                                   uint32_t max_head, rp_h1_parser_t *p)
{
    cur = buf;
    rp_h1_parser_init(p, max_line, max_head);
    rp_h1_result_t whole = rp_h1_parse_request(p, buf, len);

    rp_h1_parser_t q;
    char how[64];
    for (size_t n = 0; n <= len; n++) {
        rp_h1_parser_init(&q, max_line, max_head);
        snprintf(how, sizeof(how), "split at %zu", n);
        assert_same(p, whole, &q, feed_split(&q, buf, len, n), how);
    }
    rp_h1_parser_init(&q, max_line, max_head);
    assert_same(p, whole, &q, feed_bytewise(&q, buf, len), "byte by byte");
    return whole;
}

static rp_h1_result_t parse_n(const char *buf, size_t len, rp_h1_parser_t *p)
{
    return parse_limits(buf, len, MAX_LINE, MAX_HEAD, p);
}

static rp_h1_result_t parse(const char *text, rp_h1_parser_t *p)
{
    return parse_n(text, strlen(text), p);
}

#define expect_refused_n(text, len, want_status, want_reason)                                      \
    do {                                                                                           \
        rp_h1_parser_t p_;                                                                         \
        ck_assert_int_eq(parse_n((text), (len), &p_), RP_H1_ERROR);                                \
        ck_assert_int_eq(p_.status, (want_status));                                                \
        ck_assert_str_eq(p_.reason, (want_reason));                                                \
    } while (0)

#define expect_refused(text, want_status, want_reason)                                             \
    expect_refused_n((text), strlen(text), (want_status), (want_reason))

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
    const char *bad[] = {"HTTP/1.1x", "HTTX/1.1", "HTTP/11",   "http/1.1",  "HTTP/1.",
                         "HTTP/a.1",  "HTTP/1,1", "HTTP/1.1 ", "HTTP/1.1 x"};
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

/* chunked transfer coding */

typedef struct {
    int rc;
    char data[8192];
    size_t len;      /* data bytes out */
    size_t consumed; /* input bytes used */
    const char *reason;
} decoded_t;

/* Decodes in[0..len) fed as pieces cut at cuts[] (ascending), each piece in its own buffer. */
static void decode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                          decoded_t *d)
{
    rp_chunked_t c;
    rp_chunked_init(&c);
    memset(d, 0, sizeof(*d));
    size_t start = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t n = end - start;
        char *piece = malloc(n ? n : 1);
        memcpy(piece, in + start, n);
        size_t out = n, used = 0;
        d->rc = rp_chunked_decode(&c, piece, &out, &used);
        ck_assert_uint_le(out, n);
        ck_assert_uint_le(used, n);
        ck_assert_uint_le(d->len + out, sizeof(d->data));
        memcpy(d->data + d->len, piece, out);
        free(piece);
        d->len += out;
        d->consumed += used;
        start = end;
        if (d->rc != 0)
            break;
        ck_assert_uint_eq(used, n); /* more input needed: all of this piece was taken */
    }
    d->reason = c.reason;
}

/* Decodes whole into *d and checks every two-piece split and byte-by-byte agree. */
static void decode(const char *in, size_t len, decoded_t *d)
{
    decode_pieces(in, len, NULL, 0, d);
    decoded_t *e = malloc(sizeof(*e));
    for (size_t s = 0; s <= len; s++) {
        decode_pieces(in, len, &s, 1, e);
        ck_assert_msg(e->rc == d->rc, "split at %zu: rc %d, whole: %d", s, e->rc, d->rc);
        if (d->rc == 1) {
            ck_assert_msg(e->len == d->len && memcmp(e->data, d->data, d->len) == 0,
                          "split at %zu: data differs", s);
            ck_assert_msg(e->consumed == d->consumed, "split at %zu: consumed %zu, whole %zu", s,
                          e->consumed, d->consumed);
        }
        if (d->rc == -1)
            ck_assert_str_eq(e->reason, d->reason);
    }
    size_t *cuts = malloc((len ? len : 1) * sizeof(size_t));
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    decode_pieces(in, len, cuts, len ? len - 1 : 0, e);
    ck_assert_msg(e->rc == d->rc, "byte by byte: rc %d, whole: %d", e->rc, d->rc);
    if (d->rc == 1)
        ck_assert(e->len == d->len && memcmp(e->data, d->data, d->len) == 0);
    if (d->rc == -1)
        ck_assert_str_eq(e->reason, d->reason);
    free(cuts);
    free(e);
}

#define expect_decoded(body, want)                                                                 \
    do {                                                                                           \
        decoded_t d_;                                                                              \
        decode((body), strlen(body), &d_);                                                         \
        ck_assert_int_eq(d_.rc, 1);                                                                \
        ck_assert_uint_eq(d_.len, strlen(want));                                                   \
        ck_assert(memcmp(d_.data, (want), d_.len) == 0);                                           \
        ck_assert_uint_eq(d_.consumed, strlen(body));                                              \
    } while (0)

#define expect_chunked_refused_n(body, n, why)                                                     \
    do {                                                                                           \
        decoded_t d_;                                                                              \
        decode((body), (n), &d_);                                                                  \
        ck_assert_int_eq(d_.rc, -1);                                                               \
        ck_assert_str_eq(d_.reason, (why));                                                        \
    } while (0)

#define expect_chunked_refused(body, why) expect_chunked_refused_n((body), strlen(body), (why))

START_TEST(test_chunked_single_chunk)
{
    expect_decoded("5\r\nhello\r\n0\r\n\r\n", "hello");
}
END_TEST

START_TEST(test_chunked_multiple_chunks_with_hex_sizes)
{
    expect_decoded("3\r\nabc\r\n"
                   "a\r\n0123456789\r\n"
                   "B\r\nABCDEFGHIJK\r\n"
                   "10\r\n0123456789abcdef\r\n"
                   "0\r\n\r\n",
                   "abc0123456789ABCDEFGHIJK0123456789abcdef");
}
END_TEST

START_TEST(test_chunked_extensions_are_ignored)
{
    expect_decoded("5;name=value\r\nhello\r\n"
                   "3 ; a=\"b;c\"\r\nxyz\r\n"
                   "0;last\r\n\r\n",
                   "helloxyz");
}
END_TEST

START_TEST(test_chunked_trailers_are_skipped)
{
    expect_decoded("5\r\nhello\r\n0\r\nX-Checksum: 1234\r\nX-Other: a b\r\n\r\n", "hello");
}
END_TEST

START_TEST(test_chunked_empty_body)
{
    expect_decoded("0\r\n\r\n", "");
    expect_decoded("000\r\n\r\n", "");
}
END_TEST

START_TEST(test_chunked_leading_zeros_are_not_an_overflow)
{
    expect_decoded("00000000000000000000000005\r\nhello\r\n0\r\n\r\n", "hello");
}
END_TEST

START_TEST(test_chunked_stops_after_the_last_chunk)
{
    const char *in = "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    decoded_t d;
    decode(in, strlen(in), &d);
    ck_assert_int_eq(d.rc, 1);
    ck_assert_uint_eq(d.len, 2);
    ck_assert_uint_eq(d.consumed, strlen("2\r\nhi\r\n0\r\n\r\n"));
}
END_TEST

START_TEST(test_chunked_incomplete_body_needs_more)
{
    const char *in = "5\r\nhello\r\n0\r\nX: y\r\n\r\n";
    for (size_t n = 0; n < strlen(in); n++) {
        decoded_t d;
        decode_pieces(in, n, NULL, 0, &d);
        ck_assert_msg(d.rc == 0, "%zu bytes: rc %d", n, d.rc);
        ck_assert_uint_eq(d.consumed, n);
    }
}
END_TEST

START_TEST(test_chunked_size_overflow_is_refused)
{
    expect_chunked_refused("ffffffffffffffffffff\r\n", "chunk size overflow");
    expect_chunked_refused("10000000000000000\r\n", "chunk size overflow");
}
END_TEST

START_TEST(test_chunked_invalid_size_is_refused)
{
    expect_chunked_refused("g\r\nabc\r\n", "invalid chunk size");
    expect_chunked_refused("\r\n", "invalid chunk size");
    expect_chunked_refused(" 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size");
    expect_chunked_refused("-1\r\n", "invalid chunk size");
    expect_chunked_refused("0x5\r\nhello\r\n", "invalid chunk size");
    expect_chunked_refused("5g\r\nhello\r\n", "invalid chunk size");
    expect_chunked_refused(";x\r\n", "invalid chunk size");
}
END_TEST

START_TEST(test_chunked_data_not_followed_by_crlf_is_refused)
{
    expect_chunked_refused("5\r\nhelloX\r\n0\r\n\r\n", "chunk data not followed by CRLF");
    expect_chunked_refused("5\r\nhello\rX0\r\n\r\n", "chunk data not followed by CRLF");
    expect_chunked_refused("3\r\nhello\r\n0\r\n\r\n", "chunk data not followed by CRLF");
}
END_TEST

START_TEST(test_chunked_bare_lf_is_refused)
{
    /* RFC 9112 7.1 frames chunks with CRLF; a lenient LF is how bodies get smuggled */
    expect_chunked_refused("5\nhello\r\n0\r\n\r\n", "invalid chunk size");
    expect_chunked_refused("5;ext\nhello\r\n0\r\n\r\n", "invalid chunk extension");
    expect_chunked_refused("5\r\nhello\n0\r\n\r\n", "chunk data not followed by CRLF");
    expect_chunked_refused("5\r\nhello\r\n0\r\n\n", "invalid trailer");
    expect_chunked_refused("0\r\nX: y\n\r\n", "invalid trailer");
}
END_TEST

START_TEST(test_chunked_bare_cr_is_refused)
{
    expect_chunked_refused("5\rhello\r\n0\r\n\r\n", "bare CR in chunk size line");
    expect_chunked_refused("0\r\nX: y\rz\r\n\r\n", "bare CR in trailer");
    expect_chunked_refused("0\r\n\rX", "bare CR after last chunk");
}
END_TEST

START_TEST(test_chunked_control_bytes_in_extensions_and_trailers_are_refused)
{
    expect_chunked_refused_n("5;a\0b\r\nhello\r\n0\r\n\r\n", 19, "invalid chunk extension");
    expect_chunked_refused("5;a\x7f\r\nhello\r\n0\r\n\r\n", "invalid chunk extension");
    expect_chunked_refused_n("0\r\nX: a\0b\r\n\r\n", 13, "invalid trailer");
    expect_chunked_refused("0\r\n X: folded\r\n\r\n", "invalid trailer");
}
END_TEST

START_TEST(test_chunked_line_too_long_is_refused)
{
    char in[8192];
    size_t n = (size_t)sprintf(in, "5;");
    memset(in + n, 'e', 5000);
    strcpy(in + n + 5000, "\r\nhello\r\n0\r\n\r\n");
    rp_chunked_t c;
    rp_chunked_init(&c);
    size_t len = strlen(in), used = 0;
    ck_assert_int_eq(rp_chunked_decode(&c, in, &len, &used), -1);
    ck_assert_str_eq(c.reason, "chunk line too long");
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

/* Parses a response head whole, split at every byte and byte by byte; all must agree. */
static rp_h1_result_t parse_response(const char *text, rp_h1_parser_t *p)
{
    size_t len = strlen(text);
    cur = text;
    rp_h1_response_parser_init(p, MAX_HEAD);
    rp_h1_result_t whole = rp_h1_parse_response(p, text, len);
    rp_h1_parser_t q;
    char how[64];
    for (size_t n = 0; n <= len; n++) {
        rp_h1_response_parser_init(&q, MAX_HEAD);
        snprintf(how, sizeof(how), "split at %zu", n);
        assert_same(p, whole, &q, feed_split(&q, text, len, n), how);
    }
    rp_h1_response_parser_init(&q, MAX_HEAD);
    assert_same(p, whole, &q, feed_bytewise(&q, text, len), "byte by byte");
    return whole;
}

#define expect_response_refused(text, want_reason)                                                 \
    do {                                                                                           \
        rp_h1_parser_t p_;                                                                         \
        ck_assert_int_eq(parse_response((text), &p_), RP_H1_ERROR);                                \
        ck_assert_int_eq(p_.status, 502);                                                          \
        ck_assert_str_eq(p_.reason, (want_reason));                                                \
    } while (0)

START_TEST(test_every_malformed_response_head_is_502)
{
    /* a broken upstream head is the upstream's fault: 502, never a client-error status */
    expect_response_refused("HTTP/1.1 200 OK\rX: y\r\n\r\n", "bare CR in status line");
    expect_response_refused("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "obsolete line folding");
    expect_response_refused("HTTP/1.1 200 OK\r\nX: a\rY: b\r\n\r\n", "bare CR in header");
    expect_response_refused("HTTP/1.1 200 OK\r\n\rX", "bare CR at end of head");
    expect_response_refused("HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
                            "whitespace before colon in header");
    expect_response_refused("HTTP/1.1 200 OK\r\nX: a\x01\r\n\r\n",
                            "invalid character in header value");
    expect_response_refused("HTTP/1.1 200 OK\r\n(: a\r\n\r\n", "invalid character in header name");
}
END_TEST

START_TEST(test_response_with_too_many_headers_is_502)
{
    char head[4096];
    size_t n = (size_t)sprintf(head, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i <= RP_H1_MAX_HEADERS; i++)
        n += (size_t)sprintf(head + n, "X-%d: %d\r\n", i, i);
    strcpy(head + n, "\r\n");
    rp_h1_parser_t p;
    rp_h1_response_parser_init(&p, MAX_HEAD);
    ck_assert_int_eq(rp_h1_parse_response(&p, head, strlen(head)), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 502);
    ck_assert_str_eq(p.reason, "too many headers");
}
END_TEST

START_TEST(test_status_code_is_exactly_three_digits)
{
    /* leading zeros kept the code under 100, so more digits were taken: "0200" read as 200 */
    expect_response_refused("HTTP/1.1 0200 OK\r\n\r\n", "invalid status code");
    expect_response_refused("HTTP/1.1 000000000100 Continue\r\n\r\n", "invalid status code");
    expect_response_refused("HTTP/1.1 2000 OK\r\n\r\n", "invalid status code");
    expect_response_refused("HTTP/1.1 20 OK\r\n\r\n", "invalid status code");
    expect_response_refused("HTTP/1.1 099 OK\r\n\r\n", "invalid status code");
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_response("HTTP/1.1 200 OK\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 200);
    ck_assert_int_eq(parse_response("HTTP/1.0 599\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 599);
    ck_assert_int_eq(p.version, 10);
}
END_TEST

static Suite *h1_suite(void)
{
    Suite *s = suite_create("h1_parser");
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
    suite_add_tcase(s, tc);

    tc = tcase_create("chunked");
    tcase_add_test(tc, test_chunked_single_chunk);
    tcase_add_test(tc, test_chunked_multiple_chunks_with_hex_sizes);
    tcase_add_test(tc, test_chunked_extensions_are_ignored);
    tcase_add_test(tc, test_chunked_trailers_are_skipped);
    tcase_add_test(tc, test_chunked_empty_body);
    tcase_add_test(tc, test_chunked_leading_zeros_are_not_an_overflow);
    tcase_add_test(tc, test_chunked_stops_after_the_last_chunk);
    tcase_add_test(tc, test_chunked_incomplete_body_needs_more);
    tcase_add_test(tc, test_chunked_size_overflow_is_refused);
    tcase_add_test(tc, test_chunked_invalid_size_is_refused);
    tcase_add_test(tc, test_chunked_data_not_followed_by_crlf_is_refused);
    tcase_add_test(tc, test_chunked_bare_lf_is_refused);
    tcase_add_test(tc, test_chunked_bare_cr_is_refused);
    tcase_add_test(tc, test_chunked_control_bytes_in_extensions_and_trailers_are_refused);
    tcase_add_test(tc, test_chunked_line_too_long_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz findings");
    tcase_add_test(tc, test_head_limit_near_uint32_max_does_not_hide_the_input);
    tcase_add_test(tc, test_every_malformed_response_head_is_502);
    tcase_add_test(tc, test_response_with_too_many_headers_is_502);
    tcase_add_test(tc, test_status_code_is_exactly_three_digits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(h1_suite());
}
