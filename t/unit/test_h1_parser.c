/*
 * The HTTP/1 request- and response-head parser, the framing checks and the
 * chunked decoder. All are incremental, so every case is fed three ways: whole,
 * split in two at every byte, and one byte more at a time into the same parser.
 * All three must give the same result (fields, offsets, status and reason, and
 * what rp_h1_framing makes of a complete head); a parser that remembers its place
 * wrongly shows up only when the network splits a request where the test did not.
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

/* The framing of a complete head, with every field compared by assert_same. */
typedef struct {
    int status;
    const char *why;
    rp_h1_framing_t f;
} framed_t;

static void frame(const rp_h1_parser_t *p, framed_t *out)
{
    out->why = NULL;
    out->status = rp_h1_framing(p, cur, &out->f, &out->why);
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
                      a->version == b->version && a->code == b->code,
                  "%s: request or status line differs", how);
    ck_assert_msg(a->nheaders == b->nheaders, "%s: %u headers, whole: %u", how, b->nheaders,
                  a->nheaders);
    ck_assert_msg(memcmp(a->headers, b->headers, a->nheaders * sizeof(a->headers[0])) == 0,
                  "%s: header offsets differ", how);

    framed_t fa, fb;
    frame(a, &fa);
    frame(b, &fb);
    ck_assert_msg(fa.status == fb.status, "%s: framing status %d, whole: %d", how, fb.status,
                  fa.status);
    if (fa.status) {
        ck_assert_msg(strcmp(fa.why, fb.why) == 0, "%s: framing \"%s\", whole: \"%s\"", how, fb.why,
                      fa.why);
        return;
    }
    ck_assert_msg(fa.f.content_length == fb.f.content_length && fa.f.chunked == fb.f.chunked &&
                      fa.f.te == fb.f.te && fa.f.conn_close == fb.f.conn_close &&
                      fa.f.conn_keepalive == fb.f.conn_keepalive &&
                      fa.f.conn_upgrade == fb.f.conn_upgrade &&
                      fa.f.expect_continue == fb.f.expect_continue && fa.f.hosts == fb.f.hosts &&
                      fa.f.host == fb.f.host,
                  "%s: framing differs", how);
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

enum { REQUEST, RESPONSE };

static void init_as(rp_h1_parser_t *p, int kind, uint32_t max_line, uint32_t max_head)
{
    if (kind == RESPONSE)
        rp_h1_response_parser_init(p, max_head);
    else
        rp_h1_parser_init(p, max_line, max_head);
}

/* Parses len bytes whole into *p, then checks every split gives the same outcome. */
static rp_h1_result_t parse_as(int kind, const char *buf, size_t len, uint32_t max_line,
                               uint32_t max_head, rp_h1_parser_t *p)
{
    cur = buf;
    init_as(p, kind, max_line, max_head);
    rp_h1_result_t whole = rp_h1_parse_request(p, buf, len);

    rp_h1_parser_t q;
    char how[64];
    for (size_t n = 0; n <= len; n++) {
        init_as(&q, kind, max_line, max_head);
        snprintf(how, sizeof(how), "split at %zu", n);
        assert_same(p, whole, &q, feed_split(&q, buf, len, n), how);
    }
    init_as(&q, kind, max_line, max_head);
    assert_same(p, whole, &q, feed_bytewise(&q, buf, len), "byte by byte");
    return whole;
}

static rp_h1_result_t parse_limits(const char *buf, size_t len, uint32_t max_line,
                                   uint32_t max_head, rp_h1_parser_t *p)
{
    return parse_as(REQUEST, buf, len, max_line, max_head, p);
}

static rp_h1_result_t parse_n(const char *buf, size_t len, rp_h1_parser_t *p)
{
    return parse_limits(buf, len, MAX_LINE, MAX_HEAD, p);
}

static rp_h1_result_t parse(const char *text, rp_h1_parser_t *p)
{
    return parse_n(text, strlen(text), p);
}

static rp_h1_result_t parse_response(const char *text, rp_h1_parser_t *p)
{
    return parse_as(RESPONSE, text, strlen(text), MAX_HEAD, MAX_HEAD, p);
}

#define expect_refused_as(kind, text, len, want_status, want_reason)                               \
    do {                                                                                           \
        rp_h1_parser_t p_;                                                                         \
        ck_assert_int_eq(parse_as((kind), (text), (len), MAX_LINE, MAX_HEAD, &p_), RP_H1_ERROR);   \
        ck_assert_int_eq(p_.status, (want_status));                                                \
        ck_assert_str_eq(p_.reason, (want_reason));                                                \
    } while (0)

#define expect_refused_n(text, len, want_status, want_reason)                                      \
    expect_refused_as(REQUEST, (text), (len), (want_status), (want_reason))

#define expect_refused(text, want_status, want_reason)                                             \
    expect_refused_n((text), strlen(text), (want_status), (want_reason))

#define expect_response_refused_n(text, len, want_reason)                                          \
    expect_refused_as(RESPONSE, (text), (len), 502, (want_reason))

#define expect_response_refused(text, want_reason)                                                 \
    expect_response_refused_n((text), strlen(text), (want_reason))

/* Parses a complete head (every split agreeing) and returns what rp_h1_framing says. */
static void framing_as(int kind, const char *text, framed_t *out)
{
    rp_h1_parser_t p;
    ck_assert_msg(parse_as(kind, text, strlen(text), MAX_LINE, MAX_HEAD, &p) == RP_H1_DONE,
                  "head not parsed: %s (%d)", p.reason ? p.reason : "incomplete", p.status);
    frame(&p, out);
}

/* A POST of HTTP/1.1 with a Host and the given header lines (each ending in CRLF). */
static const char *post_with(const char *lines)
{
    static char bufs[4][1024];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "POST / HTTP/1.1\r\nHost: a\r\n%s\r\n", lines);
    return b;
}

/* A 200 response of HTTP/1.1 with the given header lines. */
static const char *response_with(const char *lines)
{
    static char bufs[4][1024];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "HTTP/1.1 200 OK\r\n%s\r\n", lines);
    return b;
}

#define expect_framing_refused_as(kind, text, want_status, want_why)                               \
    do {                                                                                           \
        framed_t fr_;                                                                              \
        framing_as((kind), (text), &fr_);                                                          \
        ck_assert_msg(fr_.status == (want_status), "%s: framing status %d", (text), fr_.status);   \
        ck_assert_str_eq(fr_.why, (want_why));                                                     \
    } while (0)

#define expect_framing_refused(text, want_status, want_why)                                        \
    expect_framing_refused_as(REQUEST, (text), (want_status), (want_why))

#define expect_response_framing_refused(text, want_why)                                            \
    expect_framing_refused_as(RESPONSE, (text), 502, (want_why))

/* The framing of a head that must be accepted. */
static rp_h1_framing_t framed_as(int kind, const char *text)
{
    framed_t fr;
    framing_as(kind, text, &fr);
    ck_assert_msg(fr.status == 0, "%s: framing refused with %d (%s)", text, fr.status, fr.why);
    return fr.f;
}

static rp_h1_framing_t framed(const char *text)
{
    return framed_as(REQUEST, text);
}

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

/* Inserts byte at every position of base in turn; each result must be refused with status. */
static void refused_wherever_inserted(int kind, const char *base, char byte, int status)
{
    size_t len = strlen(base);
    char *in = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        memcpy(in, base, i);
        in[i] = byte;
        memcpy(in + i + 1, base + i, len - i);
        rp_h1_parser_t p;
        rp_h1_result_t rc = parse_as(kind, in, len + 1, MAX_LINE, MAX_HEAD, &p);
        ck_assert_msg(rc == RP_H1_ERROR && p.status == status,
                      "byte 0x%02x at %zu: result %d, status %d", (unsigned char)byte, i, rc,
                      p.status);
    }
    free(in);
}

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

/* framing (rp_h1_framing on a parsed request head) */

START_TEST(test_content_length_is_read)
{
    rp_h1_framing_t f = framed(post_with("Content-Length: 3\r\n"));
    ck_assert_int_eq(f.content_length, 3);
    ck_assert(!f.chunked && !f.te);
    ck_assert_uint_eq(f.hosts, 1);
    ck_assert_int_eq(f.host, 0);
    ck_assert_int_eq(framed(post_with("Content-Length: 0\r\n")).content_length, 0);
    ck_assert_int_eq(framed(post_with("")).content_length, -1);
}
END_TEST

START_TEST(test_ows_around_content_length_is_not_part_of_it)
{
    ck_assert_int_eq(framed(post_with("Content-Length:  3 \r\n")).content_length, 3);
    ck_assert_int_eq(framed(post_with("Content-Length:\t3\t\r\n")).content_length, 3);
    ck_assert_int_eq(framed(post_with("Content-Length:3\r\n")).content_length, 3);
    ck_assert_int_eq(framed(post_with("Content-Length: 3 \t \n")).content_length, 3);
}
END_TEST

START_TEST(test_content_length_leading_zeros_are_decimal)
{
    ck_assert_int_eq(framed(post_with("Content-Length: 007\r\n")).content_length, 7);
    ck_assert_int_eq(framed(post_with("Content-Length: 010\r\n")).content_length, 10);
}
END_TEST

START_TEST(test_content_length_with_transfer_encoding_is_400)
{
    const char *why = "both Content-Length and Transfer-Encoding";
    expect_framing_refused(post_with("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"), 400,
                           why);
    expect_framing_refused(post_with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"), 400,
                           why);
    expect_framing_refused(post_with("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"), 400,
                           why);
    expect_framing_refused(post_with("Transfer-Encoding: gzip\r\nContent-Length: 3\r\n"), 400, why);
}
END_TEST

START_TEST(test_several_content_length_headers_are_400)
{
    const char *why = "several Content-Length headers";
    expect_framing_refused(post_with("Content-Length: 3\r\nContent-Length: 4\r\n"), 400, why);
    expect_framing_refused(post_with("Content-Length: 3\r\nContent-Length: 3\r\n"), 400, why);
    expect_framing_refused(post_with("Content-Length: 3\r\nX: y\r\ncontent-length: 3\r\n"), 400,
                           why);
}
END_TEST

START_TEST(test_content_length_list_is_400)
{
    expect_framing_refused(post_with("Content-Length: 3, 3\r\n"), 400, "invalid Content-Length");
    expect_framing_refused(post_with("Content-Length: 3, 4\r\n"), 400, "invalid Content-Length");
    expect_framing_refused(post_with("Content-Length: 3,3\r\n"), 400, "invalid Content-Length");
    expect_framing_refused(post_with("Content-Length: ,3\r\n"), 400, "invalid Content-Length");
}
END_TEST

START_TEST(test_content_length_with_a_sign_or_base_is_400)
{
    const char *bad[] = {"+3", "-1", "-0", "0x10", "0X10", "1e3", "3.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Content-Length: %s\r\n", bad[i]);
        expect_framing_refused(post_with(line), 400, "invalid Content-Length");
    }
}
END_TEST

START_TEST(test_content_length_with_other_bytes_is_400)
{
    /* only digits; whitespace other than SP/HTAB around them is no OWS */
    /* the last two: a no-break space before 3, and a fullwidth 3 */
    const char *bad[] = {"3a", "a3", "3 3", "3;", "\"3\"", "3\xa0", "\302\2403", "\xef\xbc\x93"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Content-Length: %s\r\n", bad[i]);
        expect_framing_refused(post_with(line), 400, "invalid Content-Length");
    }
    /* vertical tab, form feed and CR are control bytes: the head itself is refused */
    expect_refused(post_with("Content-Length: 3\v\r\n"), 400, "invalid character in header value");
    expect_refused(post_with("Content-Length: \f3\r\n"), 400, "invalid character in header value");
    expect_refused(post_with("Content-Length: 3\r\r\n"), 400, "bare CR in header");
}
END_TEST

START_TEST(test_empty_content_length_is_400)
{
    expect_framing_refused(post_with("Content-Length:\r\n"), 400, "invalid Content-Length");
    expect_framing_refused(post_with("Content-Length:  \t \r\n"), 400, "invalid Content-Length");
}
END_TEST

START_TEST(test_content_length_of_18_digits_is_accepted)
{
    ck_assert_int_eq(framed(post_with("Content-Length: 999999999999999999\r\n")).content_length,
                     999999999999999999LL);
}
END_TEST

START_TEST(test_content_length_of_19_or_more_digits_is_400)
{
    /* at most 18 digits, so the value cannot overflow; no body that large is real */
    const char *bad[] = {"1000000000000000000",        "9223372036854775807",
                         "9223372036854775808",        "18446744073709551616",
                         "99999999999999999999999999", "0000000000000000003"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Content-Length: %s\r\n", bad[i]);
        expect_framing_refused(post_with(line), 400, "invalid Content-Length");
    }
}
END_TEST

START_TEST(test_transfer_encoding_chunked_is_accepted)
{
    rp_h1_framing_t f = framed(post_with("Transfer-Encoding: chunked\r\n"));
    ck_assert(f.chunked && f.te);
    ck_assert_int_eq(f.content_length, -1);
}
END_TEST

START_TEST(test_transfer_encoding_ignores_case)
{
    ck_assert(framed(post_with("Transfer-Encoding: Chunked\r\n")).chunked);
    ck_assert(framed(post_with("Transfer-Encoding: CHUNKED\r\n")).chunked);
    ck_assert(framed(post_with("transfer-encoding: chunked\r\n")).chunked);
    ck_assert(framed(post_with("TRANSFER-ENCODING: chunked\r\n")).chunked);
}
END_TEST

START_TEST(test_ows_around_chunked_is_not_part_of_it)
{
    ck_assert(framed(post_with("Transfer-Encoding: chunked \r\n")).chunked);
    ck_assert(framed(post_with("Transfer-Encoding:\tchunked\t\r\n")).chunked);
    ck_assert(framed(post_with("Transfer-Encoding:chunked\r\n")).chunked);
}
END_TEST

START_TEST(test_unknown_transfer_coding_is_501)
{
    /* a framing we cannot read, but well formed: Not Implemented (RFC 9112 6.1) */
    const char *codings[] = {"gzip",   "identity",    "deflate",    "gzip, deflate",
                             "chunky", "chunked;q=1", "chunked\xa0"};
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Transfer-Encoding: %s\r\n", codings[i]);
        expect_framing_refused(post_with(line), 501, "unsupported Transfer-Encoding");
    }
}
END_TEST

START_TEST(test_empty_transfer_encoding_is_501)
{
    expect_framing_refused(post_with("Transfer-Encoding:\r\n"), 501,
                           "unsupported Transfer-Encoding");
}
END_TEST

START_TEST(test_coding_before_chunked_is_400)
{
    /* chunked is final, but we cannot undo gzip for a backend that expects it decoded */
    expect_framing_refused(post_with("Transfer-Encoding: gzip, chunked\r\n"), 400,
                           "unsupported Transfer-Encoding");
    expect_framing_refused(post_with("Transfer-Encoding: identity, chunked\r\n"), 400,
                           "unsupported Transfer-Encoding");
}
END_TEST

START_TEST(test_coding_after_chunked_is_400)
{
    expect_framing_refused(post_with("Transfer-Encoding: chunked, gzip\r\n"), 400,
                           "unsupported Transfer-Encoding");
}
END_TEST

START_TEST(test_transfer_encoding_in_two_headers_is_refused)
{
    expect_framing_refused(
        post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400,
        "unsupported Transfer-Encoding");
    expect_framing_refused(post_with("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
                           400, "unsupported Transfer-Encoding");
    /* chunked named, but not as the final coding of the combined list: malformed, not an
     * unknown coding (RFC 9112 6.3) */
    expect_framing_refused(post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n"),
                           400, "unsupported Transfer-Encoding");
}
END_TEST

START_TEST(test_chunked_in_a_longer_list_is_400)
{
    const char *lists[] = {"chunked,", ", chunked", "chunked, chunked", "chunked,,"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Transfer-Encoding: %s\r\n", lists[i]);
        expect_framing_refused(post_with(line), 400, "unsupported Transfer-Encoding");
    }
}
END_TEST

START_TEST(test_transfer_encoding_in_http_1_0_is_400)
{
    expect_framing_refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                           "Transfer-Encoding in an HTTP/1.0 message");
    expect_framing_refused("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
                           "Transfer-Encoding in an HTTP/1.0 message");
}
END_TEST

START_TEST(test_http_1_1_without_host_is_400)
{
    expect_framing_refused("GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, "HTTP/1.1 request without Host");
    expect_framing_refused("GET http://a/ HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 request without Host");
}
END_TEST

START_TEST(test_several_host_headers_are_400)
{
    expect_framing_refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400,
                           "several Host headers");
    expect_framing_refused("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400,
                           "several Host headers");
    expect_framing_refused("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400,
                           "several Host headers");
}
END_TEST

START_TEST(test_http_1_0_without_host_is_accepted)
{
    rp_h1_framing_t f = framed("GET / HTTP/1.0\r\n\r\n");
    ck_assert_uint_eq(f.hosts, 0);
    ck_assert_int_eq(f.host, -1);
}
END_TEST

START_TEST(test_host_index_is_reported)
{
    rp_h1_framing_t f = framed("GET / HTTP/1.1\r\nA: b\r\nHOST: x\r\n\r\n");
    ck_assert_uint_eq(f.hosts, 1);
    ck_assert_int_eq(f.host, 1);
}
END_TEST

START_TEST(test_expect_other_than_100_continue_is_417)
{
    const char *bad[] = {
        "foo", "", "100-continued", "101-continue", "100-continue, foo", "100-continue;a=b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Expect: %s\r\n", bad[i]);
        expect_framing_refused(post_with(line), 417, "unsupported Expect");
    }
}
END_TEST

START_TEST(test_expect_100_continue_ignores_case)
{
    ck_assert(framed(post_with("Expect: 100-continue\r\n")).expect_continue);
    ck_assert(framed(post_with("Expect: 100-Continue\r\n")).expect_continue);
    ck_assert(framed(post_with("expect:  100-CONTINUE \r\n")).expect_continue);
    ck_assert(!framed(post_with("")).expect_continue);
}
END_TEST

START_TEST(test_connection_options_are_read)
{
    rp_h1_framing_t f = framed(post_with("Connection: close\r\n"));
    ck_assert(f.conn_close && !f.conn_keepalive && !f.conn_upgrade);
    f = framed(post_with("connection: Keep-Alive\r\n"));
    ck_assert(!f.conn_close && f.conn_keepalive);
    f = framed(post_with("Connection: Upgrade, foo\r\nConnection: CLOSE\r\n"));
    ck_assert(f.conn_close && f.conn_upgrade);
    f = framed(post_with("Connection: closed, x-close\r\n"));
    ck_assert(!f.conn_close);
}
END_TEST

/* a smuggler's variations on the framing headers */

START_TEST(test_framing_header_names_ignore_case)
{
    expect_framing_refused(post_with("content-length: 3\r\nTRANSFER-ENCODING: chunked\r\n"), 400,
                           "both Content-Length and Transfer-Encoding");
    expect_framing_refused(post_with("CONTENT-LENGTH: 1\r\ncOnTeNt-LeNgTh: 2\r\n"), 400,
                           "several Content-Length headers");
}
END_TEST

START_TEST(test_names_near_the_framing_headers_do_not_frame)
{
    /* ordinary headers to us; a name with "_" is no Transfer-Encoding to any HTTP parser */
    const char *names[] = {"Transfer_Encoding: chunked",  "Content_Length: 5",
                           "Transfer-Encodings: chunked", "X-Content-Length: 5",
                           "Content-Length5: 5",          "Transfer-Encoding-: chunked"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s\r\n", names[i]);
        rp_h1_framing_t f = framed(post_with(line));
        ck_assert_msg(f.content_length == -1 && !f.te && !f.chunked, "%s framed", names[i]);
    }
}
END_TEST

START_TEST(test_whitespace_before_the_colon_of_a_framing_header_is_400)
{
    expect_refused(post_with("Content-Length : 3\r\n"), 400, "whitespace before colon in header");
    expect_refused(post_with("Content-Length\t: 3\r\n"), 400, "whitespace before colon in header");
    expect_refused(post_with("Transfer-Encoding : chunked\r\n"), 400,
                   "whitespace before colon in header");
}
END_TEST

START_TEST(test_folded_framing_header_is_400)
{
    expect_refused(post_with("Transfer-Encoding:\r\n chunked\r\n"), 400, "obsolete line folding");
    expect_refused(post_with("Content-Length: 3\r\n\t4\r\n"), 400, "obsolete line folding");
    expect_refused(post_with("X: y\r\n Transfer-Encoding: chunked\r\n"), 400,
                   "obsolete line folding");
}
END_TEST

START_TEST(test_control_bytes_in_a_framing_header_are_400)
{
    static const char nul[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n";
    expect_refused_n(nul, sizeof(nul) - 1, 400, "invalid character in header value");
    expect_refused(post_with("Transfer-Encoding: chunked\v\r\n"), 400,
                   "invalid character in header value");
    expect_refused(post_with("Transfer-Encoding: chunked\rX: y\r\n"), 400, "bare CR in header");
}
END_TEST

/* responses */

START_TEST(test_response_status_line_is_parsed)
{
    const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: x\r\n\r\n";
    char resp[128];
    snprintf(resp, sizeof(resp), "%shi", head);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_response(resp, &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 200);
    ck_assert_int_eq(p.version, 11);
    ck_assert_uint_eq(p.nheaders, 2);
    ck_assert_str_eq(span(p.headers[1].name), "Server");
    ck_assert_str_eq(span(p.headers[1].value), "x");
    ck_assert_uint_eq(p.pos, strlen(head));

    ck_assert_int_eq(parse_response("HTTP/1.0 204 No Content\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 204);
    ck_assert_int_eq(p.version, 10);
    ck_assert_uint_eq(p.nheaders, 0);

    ck_assert_int_eq(parse_response("HTTP/1.1 404 Not  Found\t\xc3\xa9 \r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 404);
    ck_assert_int_eq(parse_response("HTTP/1.1 599 x\n\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 599);
}
END_TEST

START_TEST(test_response_without_reason_phrase_is_accepted)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_response("HTTP/1.1 200\r\nA: b\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 200);
    ck_assert_uint_eq(p.nheaders, 1);
    ck_assert_int_eq(parse_response("HTTP/1.1 200 \r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 200);
    ck_assert_int_eq(parse_response("HTTP/1.1 301\n\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 301);
}
END_TEST

START_TEST(test_response_higher_minor_version_is_handled_as_1_1)
{
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_response("HTTP/1.2 200 OK\r\n\r\n", &p), RP_H1_DONE);
    ck_assert_int_eq(p.version, 11);
}
END_TEST

START_TEST(test_informational_response_is_a_complete_head)
{
    const char *cont = "HTTP/1.1 100 Continue\r\n\r\n";
    const char *hints = "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n";
    const char *final = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    char buf[256];
    snprintf(buf, sizeof(buf), "%s%s%s", cont, hints, final);

    rp_h1_parser_t p;
    ck_assert_int_eq(parse_response(buf, &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 100);
    ck_assert_uint_eq(p.pos, strlen(cont));
    const char *next = buf + p.pos;
    ck_assert_int_eq(parse_response(next, &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 103);
    ck_assert_uint_eq(p.nheaders, 1);
    ck_assert_str_eq(span(p.headers[0].value), "</s.css>; rel=preload");
    ck_assert_uint_eq(p.pos, strlen(hints));
    next += p.pos;
    ck_assert_int_eq(parse_response(next, &p), RP_H1_DONE);
    ck_assert_int_eq(p.code, 200);
    ck_assert_uint_eq(p.pos, strlen(final));
}
END_TEST

START_TEST(test_response_status_code_not_three_digits_is_502)
{
    const char *bad[] = {
        "HTTP/1.1 20 OK\r\n\r\n",    "HTTP/1.1 20\r\n\r\n",      "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 abc OK\r\n\r\n",   "HTTP/1.1 2x0 OK\r\n\r\n",  "HTTP/1.1 0200 OK\r\n\r\n",
        "HTTP/1.1 00200 OK\r\n\r\n", "HTTP/1.1 00100\r\n\r\n",   "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 \r\n\r\n",         "HTTP/1.1 200\tOK\r\n\r\n", "HTTP/1.1 -200 OK\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_response_refused(bad[i], "invalid status code");
}
END_TEST

START_TEST(test_response_status_code_below_100_is_502)
{
    expect_response_refused("HTTP/1.1 099 X\r\n\r\n", "invalid status code");
    expect_response_refused("HTTP/1.1 000 X\r\n\r\n", "invalid status code");
    expect_response_refused("HTTP/1.1 010\r\n\r\n", "invalid status code");
}
END_TEST

START_TEST(test_response_of_another_protocol_is_502)
{
    const char *bad[] = {"HTTP/2 200\r\n\r\n",       "HTTP/2.0 200 OK\r\n\r\n",
                         "ICY 200 OK\r\n\r\n",       "http/1.1 200 OK\r\n\r\n",
                         "HTTP/1.a 200 OK\r\n\r\n",  "HTTP/1.1200 OK\r\n\r\n",
                         "HTTP/1.10 200 OK\r\n\r\n", "\r\nHTTP/1.1 200 OK\r\n\r\n",
                         " HTTP/1.1 200 OK\r\n\r\n", "HTTP/0.9 200 OK\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_response_refused(bad[i], "invalid status line");
}
END_TEST

START_TEST(test_response_control_bytes_in_reason_phrase_are_502)
{
    expect_response_refused("HTTP/1.1 200 O\x01K\r\n\r\n", "invalid character in reason phrase");
    expect_response_refused("HTTP/1.1 200 OK\x7f\r\n\r\n", "invalid character in reason phrase");
    expect_response_refused("HTTP/1.1 200 OK\rX: y\r\n\r\n", "bare CR in status line");
}
END_TEST

START_TEST(test_response_header_errors_are_502)
{
    expect_response_refused("HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", "obsolete line folding");
    expect_response_refused("HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", "bare CR in header");
    expect_response_refused("HTTP/1.1 200 OK\r\nA: b\r\n\rX", "bare CR at end of head");
    expect_response_refused_n("HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", 27,
                              "invalid character in header value");
    expect_response_refused("HTTP/1.1 200 OK\r\nContent-Length : 3\r\n\r\n",
                            "whitespace before colon in header");
    expect_response_refused("HTTP/1.1 200 OK\r\n A: b\r\n\r\n",
                            "whitespace before the first header");
    expect_response_refused("HTTP/1.1 200 OK\r\nA@: b\r\n\r\n", "invalid character in header name");
    expect_response_refused("HTTP/1.1 200 OK\r\n: b\r\n\r\n", "invalid character in header name");
}
END_TEST

static const char good_response[] = "HTTP/1.1 200 OK\r\nX-A: b c\r\nE:\r\n\r\n";

START_TEST(test_bare_cr_anywhere_in_a_response_head_is_502)
{
    refused_wherever_inserted(RESPONSE, good_response, '\r', 502);
}
END_TEST

START_TEST(test_nul_anywhere_in_a_response_head_is_502)
{
    refused_wherever_inserted(RESPONSE, good_response, '\0', 502);
}
END_TEST

START_TEST(test_response_head_too_large_is_502)
{
    const char *resp = "HTTP/1.1 200 OK\r\nA: b\r\nC: d\r\n\r\n";
    uint32_t len = (uint32_t)strlen(resp);
    rp_h1_parser_t p;
    ck_assert_int_eq(parse_as(RESPONSE, resp, len, len, len, &p), RP_H1_DONE);
    ck_assert_int_eq(parse_as(RESPONSE, resp, len, len - 1, len - 1, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 502);
    ck_assert_str_eq(p.reason, "response head too large");
    ck_assert_int_eq(parse_as(RESPONSE, resp, len, 10, 10, &p), RP_H1_ERROR);
    ck_assert_int_eq(p.status, 502);
    ck_assert_str_eq(p.reason, "response head too large");
}
END_TEST

START_TEST(test_response_with_too_many_headers_is_502)
{
    char *resp = malloc(32 + (RP_H1_MAX_HEADERS + 1) * 16);
    size_t len = (size_t)sprintf(resp, "HTTP/1.1 200 OK\r\n");
    for (unsigned i = 0; i <= RP_H1_MAX_HEADERS; i++)
        len += (size_t)sprintf(resp + len, "H%u: v\r\n", i);
    strcpy(resp + len, "\r\n");
    expect_response_refused(resp, "too many headers");
    free(resp);
}
END_TEST

/* response framing */

START_TEST(test_response_framing_is_read)
{
    rp_h1_framing_t f = framed_as(RESPONSE, response_with("Content-Length: 5\r\n"));
    ck_assert_int_eq(f.content_length, 5);
    ck_assert(!f.chunked);
    f = framed_as(RESPONSE, response_with("Transfer-Encoding: Chunked \r\n"));
    ck_assert(f.chunked && f.te);
    ck_assert_int_eq(f.content_length, -1);
    /* no Host is needed, and Expect means nothing in a response */
    f = framed_as(RESPONSE, response_with("Expect: x\r\nConnection: close\r\n"));
    ck_assert(f.conn_close && !f.expect_continue);
    ck_assert_uint_eq(f.hosts, 0);
}
END_TEST

START_TEST(test_response_with_content_length_and_transfer_encoding_is_502)
{
    expect_response_framing_refused(
        response_with("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
        "both Content-Length and Transfer-Encoding");
    expect_response_framing_refused(
        response_with("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"),
        "both Content-Length and Transfer-Encoding");
}
END_TEST

START_TEST(test_response_with_several_content_length_is_502)
{
    expect_response_framing_refused(response_with("Content-Length: 3\r\nContent-Length: 3\r\n"),
                                    "several Content-Length headers");
    expect_response_framing_refused(response_with("Content-Length: 3\r\nContent-Length: 4\r\n"),
                                    "several Content-Length headers");
}
END_TEST

START_TEST(test_response_with_invalid_content_length_is_502)
{
    const char *bad[] = {"+3", "-1", "0x10", "3a", "", "3, 3", "1000000000000000000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "Content-Length: %s\r\n", bad[i]);
        expect_response_framing_refused(response_with(line), "invalid Content-Length");
    }
}
END_TEST

START_TEST(test_response_transfer_coding_other_than_chunked_is_502)
{
    const char *bad[] = {"Transfer-Encoding: gzip\r\n",
                         "Transfer-Encoding: identity\r\n",
                         "Transfer-Encoding: gzip, chunked\r\n",
                         "Transfer-Encoding: chunked, gzip\r\n",
                         "Transfer-Encoding:\r\n",
                         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_response_framing_refused(response_with(bad[i]), "unsupported Transfer-Encoding");
}
END_TEST

START_TEST(test_http_1_0_response_with_transfer_encoding_is_502)
{
    expect_response_framing_refused("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                                    "Transfer-Encoding in an HTTP/1.0 message");
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
    expect_chunked_refused("FFFFFFFFFFFFFFFFF\r\n", "chunk size overflow");
    expect_chunked_refused("FFFFFFFFFFFFFFFF\r\n", "chunk size overflow");
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

START_TEST(test_chunked_sixteen_hex_digit_size_below_the_limit_is_accepted)
{
    decoded_t d;
    const char *in = "7fffffffffffffff\r\nabc";
    decode(in, strlen(in), &d);
    ck_assert_int_eq(d.rc, 0);
    ck_assert_uint_eq(d.len, 3);
}
END_TEST

START_TEST(test_chunked_garbage_after_the_size_is_refused)
{
    expect_chunked_refused("5 x\r\nhello\r\n0\r\n\r\n", "invalid chunk size");
    expect_chunked_refused("5\tx\r\nhello\r\n0\r\n\r\n", "invalid chunk size");
    expect_chunked_refused("5 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size");
    expect_chunked_refused("0 x\r\n\r\n", "invalid chunk size");
    expect_chunked_refused("5 \nhello\r\n0\r\n\r\n", "invalid chunk size");
}
END_TEST

START_TEST(test_chunked_whitespace_after_the_size_is_accepted)
{
    /* BWS before an extension (RFC 9112 7.1.1), and before the line end as others accept */
    expect_decoded("5 ;a\r\nhello\r\n0\t;b=c\r\n\r\n", "hello");
    expect_decoded("5 \r\nhello\r\n0\t \r\n\r\n", "hello");
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
    tcase_add_test(tc, test_space_inside_a_header_name_is_400);
    tcase_add_test(tc, test_bare_cr_before_the_request_line_is_400);
    tcase_add_test(tc, test_bare_cr_anywhere_in_the_head_is_400);
    tcase_add_test(tc, test_nul_anywhere_in_the_head_is_400);
    tcase_add_test(tc, test_space_inside_the_target_is_400);
    tcase_add_test(tc, test_empty_method_is_400);
    tcase_add_test(tc, test_bare_lf_line_ends_leave_no_cr_or_lf_in_spans);
    tcase_add_test(tc, test_pipelined_request_starts_exactly_at_pos);
    suite_add_tcase(s, tc);

    tc = tcase_create("framing");
    tcase_add_test(tc, test_content_length_is_read);
    tcase_add_test(tc, test_ows_around_content_length_is_not_part_of_it);
    tcase_add_test(tc, test_content_length_leading_zeros_are_decimal);
    tcase_add_test(tc, test_content_length_with_transfer_encoding_is_400);
    tcase_add_test(tc, test_several_content_length_headers_are_400);
    tcase_add_test(tc, test_content_length_list_is_400);
    tcase_add_test(tc, test_content_length_with_a_sign_or_base_is_400);
    tcase_add_test(tc, test_content_length_with_other_bytes_is_400);
    tcase_add_test(tc, test_empty_content_length_is_400);
    tcase_add_test(tc, test_content_length_of_18_digits_is_accepted);
    tcase_add_test(tc, test_content_length_of_19_or_more_digits_is_400);
    tcase_add_test(tc, test_transfer_encoding_chunked_is_accepted);
    tcase_add_test(tc, test_transfer_encoding_ignores_case);
    tcase_add_test(tc, test_ows_around_chunked_is_not_part_of_it);
    tcase_add_test(tc, test_unknown_transfer_coding_is_501);
    tcase_add_test(tc, test_empty_transfer_encoding_is_501);
    tcase_add_test(tc, test_transfer_encoding_in_two_headers_is_refused);
    tcase_add_test(tc, test_coding_before_chunked_is_400);
    tcase_add_test(tc, test_coding_after_chunked_is_400);
    tcase_add_test(tc, test_chunked_in_a_longer_list_is_400);
    tcase_add_test(tc, test_transfer_encoding_in_http_1_0_is_400);
    tcase_add_test(tc, test_http_1_1_without_host_is_400);
    tcase_add_test(tc, test_several_host_headers_are_400);
    tcase_add_test(tc, test_http_1_0_without_host_is_accepted);
    tcase_add_test(tc, test_host_index_is_reported);
    tcase_add_test(tc, test_expect_other_than_100_continue_is_417);
    tcase_add_test(tc, test_expect_100_continue_ignores_case);
    tcase_add_test(tc, test_connection_options_are_read);
    tcase_add_test(tc, test_framing_header_names_ignore_case);
    tcase_add_test(tc, test_names_near_the_framing_headers_do_not_frame);
    tcase_add_test(tc, test_whitespace_before_the_colon_of_a_framing_header_is_400);
    tcase_add_test(tc, test_folded_framing_header_is_400);
    tcase_add_test(tc, test_control_bytes_in_a_framing_header_are_400);
    suite_add_tcase(s, tc);

    tc = tcase_create("responses");
    tcase_add_test(tc, test_response_status_line_is_parsed);
    tcase_add_test(tc, test_response_without_reason_phrase_is_accepted);
    tcase_add_test(tc, test_response_higher_minor_version_is_handled_as_1_1);
    tcase_add_test(tc, test_informational_response_is_a_complete_head);
    tcase_add_test(tc, test_response_status_code_not_three_digits_is_502);
    tcase_add_test(tc, test_response_status_code_below_100_is_502);
    tcase_add_test(tc, test_response_of_another_protocol_is_502);
    tcase_add_test(tc, test_response_control_bytes_in_reason_phrase_are_502);
    tcase_add_test(tc, test_response_header_errors_are_502);
    tcase_add_test(tc, test_bare_cr_anywhere_in_a_response_head_is_502);
    tcase_add_test(tc, test_nul_anywhere_in_a_response_head_is_502);
    tcase_add_test(tc, test_response_head_too_large_is_502);
    tcase_add_test(tc, test_response_with_too_many_headers_is_502);
    tcase_add_test(tc, test_response_framing_is_read);
    tcase_add_test(tc, test_response_with_content_length_and_transfer_encoding_is_502);
    tcase_add_test(tc, test_response_with_several_content_length_is_502);
    tcase_add_test(tc, test_response_with_invalid_content_length_is_502);
    tcase_add_test(tc, test_response_transfer_coding_other_than_chunked_is_502);
    tcase_add_test(tc, test_http_1_0_response_with_transfer_encoding_is_502);
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
    tcase_add_test(tc, test_chunked_sixteen_hex_digit_size_below_the_limit_is_accepted);
    tcase_add_test(tc, test_chunked_garbage_after_the_size_is_refused);
    tcase_add_test(tc, test_chunked_whitespace_after_the_size_is_accepted);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz findings");
    tcase_add_test(tc, test_head_limit_near_uint32_max_does_not_hide_the_input);
    tcase_add_test(tc, test_every_malformed_response_head_is_502);
    tcase_add_test(tc, test_status_code_is_exactly_three_digits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(h1_suite());
}
