/*
 * An HTTP/2 request's header fields to the protocol-neutral request
 * (rp_h2_req_field, rp_h2_req_finish; RFC 9113 section 8):
 *
 *   - every malformed request of RFC 9113 8.1.1 and 8.2 is refused (-1, a stream
 *     error), each with its reason: names not lowercase tokens, connection-specific
 *     fields, te other than "trailers", pseudo-header fields unknown, repeated, empty,
 *     missing or after a regular field, NUL, CR, LF (and, since every field goes on in
 *     HTTP/1, any other control byte but HTAB) in a value, whitespace around a value,
 *     content-length invalid, conflicting or promising a body the stream does not carry;
 *   - what the request means in HTTP/1 terms: Cookie crumbs joined with "; ", Host
 *     from :authority, one Host when both agree, the target, path and query, the body
 *     framing (a length, or chunked when DATA is to come without one);
 *   - well-formed requests that are refused: CONNECT (405), a path or host that does not
 *     normalize (400).
 *
 * The functions only use the arena, so each test hands them fields directly.
 */
#include "http/h2.h"
#include "unit.h"

#include <stdarg.h>
#include <string.h>

static rp_arena_t *arena;
static rp_h2_req_t q;
static rp_request_t r;
static int refused_at; /* index of the field refused, -1 when every field went in */

static void setup(void)
{
    arena = rp_arena_create(4096);
}

static void teardown(void)
{
    rp_arena_destroy(arena);
}

static int field_n(const char *name, const char *value, size_t vlen)
{
    return rp_h2_req_field(&q, arena, (const uint8_t *)name, strlen(name), (const uint8_t *)value,
                           vlen);
}

/* Feeds the name/value pairs of f (a NULL name ends them) as the connection does: the first
 * field refused makes the request malformed (-1); otherwise the result of finishing it. */
static int h2_ms(int end_stream, int merge_slashes, const char *const *f)
{
    rp_h2_req_init(&q);
    memset(&r, 0, sizeof(r));
    r.arena = arena;
    refused_at = -1;
    for (int i = 0; f[2 * i]; i++) {
        if (field_n(f[2 * i], f[2 * i + 1], strlen(f[2 * i + 1])) != 0) {
            ck_assert_ptr_nonnull(q.why);
            refused_at = i;
            return -1;
        }
    }
    int rc = rp_h2_req_finish(&q, &r, end_stream, merge_slashes);
    if (rc != 0)
        ck_assert_ptr_nonnull(q.why);
    return rc;
}

#define REQ(end_stream, ...)       h2_ms((end_stream), 0, (const char *const[]){__VA_ARGS__, NULL})
#define REQ_MERGE(end_stream, ...) h2_ms((end_stream), 1, (const char *const[]){__VA_ARGS__, NULL})

/* A complete GET; tests add fields after it. */
#define BASE ":method", "GET", ":scheme", "https", ":authority", "example.com", ":path", "/"

#define ck_str(s, lit)                                                                             \
    do {                                                                                           \
        rp_str_t s_ = (s);                                                                         \
        ck_assert_ptr_nonnull(s_.data);                                                            \
        ck_assert_int_eq((int)s_.len, (int)strlen(lit));                                           \
        ck_assert_mem_eq(s_.data, (lit), s_.len);                                                  \
    } while (0)

/* The request was refused as malformed, for this reason. */
#define ck_malformed(rc, reason)                                                                   \
    do {                                                                                           \
        ck_assert_int_eq((rc), -1);                                                                \
        ck_assert_str_eq(q.why, (reason));                                                         \
    } while (0)

/* The value of the request's only header named name, or fails. */
static rp_str_t header(const char *name)
{
    rp_str_t v = RP_NULL_STR;
    int n = 0;
    for (unsigned i = 0; i < r.nheaders; i++)
        if (rp_str_eq(r.headers[i].name, name)) {
            v = r.headers[i].value;
            n++;
        }
    ck_assert_msg(n == 1, "%d %s headers", n, name);
    return v;
}

static int count(const char *name)
{
    int n = 0;
    for (unsigned i = 0; i < r.nheaders; i++)
        n += rp_str_eq(r.headers[i].name, name);
    return n;
}

/* ---- malformed: field names ---- */

START_TEST(test_uppercase_name_is_malformed)
{
    ck_malformed(REQ(1, BASE, "Accept", "*/*"), "uppercase or invalid character in a field name");
    ck_malformed(REQ(1, BASE, "x-Y", "1"), "uppercase or invalid character in a field name");
}
END_TEST

START_TEST(test_invalid_name_characters_are_malformed)
{
    ck_malformed(REQ(1, BASE, "x y", "1"), "uppercase or invalid character in a field name");
    ck_malformed(REQ(1, BASE, "x:y", "1"), "uppercase or invalid character in a field name");
    ck_malformed(REQ(1, BASE, "x(y", "1"), "uppercase or invalid character in a field name");
    ck_malformed(REQ(1, BASE, "caf\xc3\xa9", "1"),
                 "uppercase or invalid character in a field name");
    ck_malformed(REQ(1, ":Method", "GET"), "invalid field name");
    ck_malformed(REQ(1, BASE, "", "1"), "empty field name");
}
END_TEST

START_TEST(test_connection_specific_fields_are_malformed)
{
    /* RFC 9113 8.2.2 */
    const char *names[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                           "upgrade"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_malformed(REQ(1, BASE, names[i], "x"), "connection-specific field");
    ck_malformed(REQ(0, BASE, "transfer-encoding", "chunked"), "connection-specific field");
}
END_TEST

START_TEST(test_te_other_than_trailers_is_malformed)
{
    ck_malformed(REQ(1, BASE, "te", "gzip"), "te other than trailers");
    ck_malformed(REQ(1, BASE, "te", "trailers, gzip"), "te other than trailers");
    ck_malformed(REQ(1, BASE, "te", "Trailers"), "te other than trailers");
    ck_malformed(REQ(1, BASE, "te", ""), "te other than trailers");
}
END_TEST

START_TEST(test_te_trailers_is_accepted_and_not_forwarded)
{
    ck_assert_int_eq(REQ(1, BASE, "te", "trailers"), 0);
    ck_assert_int_eq(count("te"), 0);
}
END_TEST

/* ---- malformed: pseudo-header fields ---- */

START_TEST(test_pseudo_header_after_a_regular_field_is_malformed)
{
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", "accept", "*/*", ":path", "/"),
                 "pseudo-header field after a regular field");
    ck_assert_int_eq(refused_at, 3);
}
END_TEST

START_TEST(test_duplicated_pseudo_header_is_malformed)
{
    ck_malformed(REQ(1, BASE, ":method", "GET"), "duplicated pseudo-header field");
    ck_malformed(REQ(1, BASE, ":scheme", "https"), "duplicated pseudo-header field");
    ck_malformed(REQ(1, BASE, ":authority", "example.com"), "duplicated pseudo-header field");
    ck_malformed(REQ(1, BASE, ":path", "/"), "duplicated pseudo-header field");
    ck_malformed(REQ(1, ":authority", "", ":authority", "a"), "duplicated pseudo-header field");
}
END_TEST

START_TEST(test_unknown_or_response_pseudo_header_is_malformed)
{
    ck_malformed(REQ(1, ":method", "GET", ":status", "200"),
                 "unknown or response pseudo-header field");
    ck_malformed(REQ(1, ":method", "CONNECT", ":protocol", "websocket"),
                 "unknown or response pseudo-header field");
    ck_malformed(REQ(1, ":", "x"), "unknown or response pseudo-header field");
}
END_TEST

START_TEST(test_empty_pseudo_header_is_malformed)
{
    ck_malformed(REQ(1, ":method", ""), "empty pseudo-header field");
    ck_malformed(REQ(1, ":scheme", ""), "empty pseudo-header field");
    ck_malformed(REQ(1, ":path", ""), "empty pseudo-header field");
}
END_TEST

START_TEST(test_missing_pseudo_header_is_malformed)
{
    ck_malformed(REQ(1, ":scheme", "https", ":authority", "a", ":path", "/"), "no :method");
    ck_malformed(REQ(1, ":method", "GET", ":authority", "a", ":path", "/"), "no :scheme");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "a"), "no :path");
}
END_TEST

START_TEST(test_invalid_method_is_malformed)
{
    ck_malformed(REQ(1, ":method", "GE T", ":scheme", "https", ":path", "/"), "invalid :method");
    ck_malformed(REQ(1, ":method", "GE(T", ":scheme", "https", ":path", "/"), "invalid :method");
    ck_malformed(REQ(1, ":method", "G\xc3\xa9T", ":scheme", "https", ":path", "/"),
                 "invalid :method");
}
END_TEST

START_TEST(test_invalid_path_is_malformed)
{
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":path", "/a b"),
                 "invalid character in :path");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":path", "index.html"),
                 ":path is not absolute");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":path", "http://a/"),
                 ":path is not absolute");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":path", "*"),
                 "asterisk :path outside OPTIONS");
}
END_TEST

/* ---- malformed: field values ---- */

START_TEST(test_nul_cr_lf_in_a_value_are_malformed)
{
    /* RFC 9113 8.2.1 */
    ck_malformed(REQ(1, BASE, "x-a", "a\rb"), "NUL, CR or LF in a field value");
    ck_malformed(REQ(1, BASE, "x-a", "a\nx-injected: 1"), "NUL, CR or LF in a field value");
    ck_malformed(REQ(1, BASE, "x-a", "a\r\n"), "NUL, CR or LF in a field value");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":path", "/\r\nx: y"),
                 "NUL, CR or LF in a field value");
    rp_h2_req_init(&q);
    ck_assert_int_eq(field_n("x-a", "a\0b", 3), -1);
    ck_assert_str_eq(q.why, "NUL, CR or LF in a field value");
}
END_TEST

START_TEST(test_whitespace_around_a_value_is_malformed)
{
    ck_malformed(REQ(1, BASE, "x-a", " a"), "whitespace around a field value");
    ck_malformed(REQ(1, BASE, "x-a", "a "), "whitespace around a field value");
    ck_malformed(REQ(1, BASE, "x-a", "\ta"), "whitespace around a field value");
    ck_malformed(REQ(1, BASE, "x-a", "a\t"), "whitespace around a field value");
    ck_malformed(REQ(1, BASE, "x-a", " "), "whitespace around a field value");
    ck_malformed(REQ(1, ":method", "GET", ":path", "/ "), "whitespace around a field value");
}
END_TEST

START_TEST(test_inner_whitespace_and_obs_text_in_a_value_are_accepted)
{
    ck_assert_int_eq(REQ(1, BASE, "x-a", "a b\tc", "x-b", "caf\xc3\xa9", "x-c", ""), 0);
    ck_str(header("x-a"), "a b\tc");
    ck_str(header("x-b"), "caf\xc3\xa9");
    ck_str(header("x-c"), "");
}
END_TEST

/* ---- body framing ---- */

START_TEST(test_content_length_is_parsed)
{
    ck_assert_int_eq(REQ(0, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/",
                         "content-length", "42"),
                     0);
    ck_assert_int_eq(r.content_length, 42);
    ck_assert_int_eq(r.chunked, 0);
    ck_str(header("content-length"), "42");

    ck_assert_int_eq(REQ(0, BASE, "content-length", "999999999999999999"), 0);
    ck_assert_int_eq(r.content_length, 999999999999999999LL);
    ck_assert_int_eq(REQ(0, BASE, "content-length", "007"), 0);
    ck_assert_int_eq(r.content_length, 7);
}
END_TEST

START_TEST(test_invalid_content_length_is_malformed)
{
    const char *bad[] = {"", "+5", "-1", "5,5", "0x10", "1e3", "5 5", "9999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_malformed(REQ(0, BASE, "content-length", bad[i]), "invalid content-length");
}
END_TEST

START_TEST(test_repeated_content_length_must_agree)
{
    ck_malformed(REQ(0, BASE, "content-length", "5", "content-length", "6"),
                 "conflicting content-length fields");
    /* the same length twice is one content-length */
    ck_assert_int_eq(REQ(0, BASE, "content-length", "5", "content-length", "005"), 0);
    ck_assert_int_eq(r.content_length, 5);
    ck_assert_int_eq(count("content-length"), 1);
}
END_TEST

START_TEST(test_content_length_without_data_is_malformed)
{
    /* RFC 9113 8.1.1: the stream ended with the headers, so the body is 0 bytes long */
    ck_malformed(REQ(1, BASE, "content-length", "5"), "content-length without DATA");
    ck_assert_int_eq(REQ(1, BASE, "content-length", "0"), 0);
    ck_assert_int_eq(r.content_length, 0);
}
END_TEST

START_TEST(test_body_without_length_is_chunked)
{
    ck_assert_int_eq(REQ(0, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/"),
                     0);
    ck_assert_int_eq(r.chunked, 1);
    ck_assert_int_eq(r.content_length, -1);
    ck_assert_int_eq(count("transfer-encoding"), 0); /* the proxy adds its own */

    ck_assert_int_eq(REQ(1, ":method", "POST", ":scheme", "https", ":authority", "a", ":path", "/"),
                     0);
    ck_assert_int_eq(r.chunked, 0);
    ck_assert_int_eq(r.content_length, -1);
}
END_TEST

START_TEST(test_expect_is_dropped)
{
    ck_assert_int_eq(REQ(0, BASE, "content-length", "3", "expect", "100-continue"), 0);
    ck_assert_int_eq(count("expect"), 0);
    ck_assert_int_eq(r.expect_continue, 0);
}
END_TEST

/* ---- cookies ---- */

START_TEST(test_cookie_crumbs_are_joined)
{
    /* RFC 9113 8.2.3: one Cookie for HTTP/1, where the first crumb was */
    ck_assert_int_eq(
        REQ(1, BASE, "cookie", "a=1", "accept", "*/*", "cookie", "b=2", "cookie", "c=3"), 0);
    ck_str(header("cookie"), "a=1; b=2; c=3");
    ck_assert_uint_eq(r.nheaders, 3);
    ck_str(r.headers[0].name, "cookie");
    ck_str(r.headers[1].name, "accept");
    ck_str(r.headers[2].name, "host");
}
END_TEST

START_TEST(test_single_cookie_is_kept)
{
    ck_assert_int_eq(REQ(1, BASE, "cookie", "a=1; b=2"), 0);
    ck_str(header("cookie"), "a=1; b=2");
}
END_TEST

START_TEST(test_empty_cookie_crumbs_are_dropped)
{
    /* fuzz finding: a last empty crumb joined as "...; " left a trailing space */
    ck_assert_int_eq(REQ(1, BASE, "cookie", "a=1", "cookie", "", "cookie", "b=2", "cookie", ""), 0);
    ck_str(header("cookie"), "a=1; b=2");
    ck_assert_int_eq(REQ(1, BASE, "cookie", ""), 0);
    ck_assert_int_eq(count("cookie"), 0);
}
END_TEST

/* ---- host ---- */

START_TEST(test_host_comes_from_authority)
{
    ck_assert_int_eq(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "Example.COM:8443",
                         ":path", "/"),
                     0);
    ck_str(header("host"), "Example.COM:8443"); /* HTTP/1 has no :authority */
    ck_str(r.host, "example.com");
}
END_TEST

START_TEST(test_host_field_without_authority)
{
    ck_assert_int_eq(
        REQ(1, ":method", "GET", ":scheme", "https", ":path", "/", "host", "h.example:80"), 0);
    ck_str(header("host"), "h.example:80");
    ck_str(r.host, "h.example");
    ck_assert_int_eq(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "", ":path", "/",
                         "host", "h.example"),
                     0);
    ck_str(header("host"), "h.example");
    ck_str(r.host, "h.example");
}
END_TEST

START_TEST(test_authority_and_host_that_agree_make_one_host)
{
    ck_assert_int_eq(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "Example.com",
                         ":path", "/", "host", "example.COM"),
                     0);
    ck_str(header("host"), "example.COM");
    ck_str(r.host, "example.com");
}
END_TEST

START_TEST(test_authority_and_host_that_differ_are_malformed)
{
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "a.example", ":path",
                     "/", "host", "b.example"),
                 ":authority and host differ");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "a.example", ":path",
                     "/", "host", "a.example:443"),
                 ":authority and host differ");
}
END_TEST

START_TEST(test_several_host_fields_are_malformed)
{
    ck_malformed(
        REQ(1, ":method", "GET", ":scheme", "https", ":path", "/", "host", "a", "host", "a"),
        "several host fields");
}
END_TEST

START_TEST(test_no_host_at_all)
{
    ck_assert_int_eq(REQ(1, ":method", "GET", ":scheme", "https", ":path", "/"), 0);
    ck_str(r.host, "");
    ck_assert_int_eq(count("host"), 0);
}
END_TEST

START_TEST(test_invalid_host_is_400)
{
    ck_assert_int_eq(
        REQ(1, ":method", "GET", ":scheme", "https", ":authority", "a..b", ":path", "/"), 400);
    ck_assert_str_eq(q.why, "invalid host");
    ck_assert_int_eq(
        REQ(1, ":method", "GET", ":scheme", "https", ":authority", "a/b", ":path", "/"), 400);
    ck_assert_int_eq(
        REQ(1, ":method", "GET", ":scheme", "https", ":authority", "a:8x", ":path", "/"), 400);
}
END_TEST

/* ---- method, target and path ---- */

START_TEST(test_ordinary_get)
{
    ck_assert_int_eq(REQ(1, ":method", "GET", ":scheme", "https", ":authority", "example.com",
                         ":path", "/index.html", "accept", "*/*"),
                     0);
    ck_str(r.method, "GET");
    ck_str(r.scheme, "https");
    ck_str(r.request_uri, "/index.html");
    ck_str(r.uri, "/index.html");
    ck_assert_ptr_null(r.args.data);
    ck_str(r.host, "example.com");
    ck_assert_int_eq(r.version, 20);
    ck_assert_int_eq(r.keepalive, 1);
    ck_assert_int_eq(r.head, 0);
    ck_assert_int_eq(r.content_length, -1);
    ck_assert_int_eq(r.chunked, 0);
    ck_assert_uint_eq(r.nheaders, 2);
    ck_str(r.headers[0].name, "accept");
    ck_str(r.headers[0].value, "*/*");
    ck_str(r.headers[1].name, "host");
    ck_str(r.headers[1].value, "example.com");
}
END_TEST

START_TEST(test_head_is_marked)
{
    ck_assert_int_eq(REQ(1, ":method", "HEAD", ":scheme", "https", ":path", "/"), 0);
    ck_assert_int_eq(r.head, 1);
}
END_TEST

START_TEST(test_any_token_method_is_accepted)
{
    ck_assert_int_eq(REQ(1, ":method", "purge", ":scheme", "https", ":path", "/"), 0);
    ck_str(r.method, "purge");
}
END_TEST

START_TEST(test_path_is_normalized_and_the_query_split)
{
    ck_assert_int_eq(
        REQ(1, ":method", "GET", ":scheme", "https", ":path", "//a/./b/../%63?x=1&y=%2F?z"), 0);
    ck_str(r.request_uri, "//a/./b/../%63?x=1&y=%2F?z");
    ck_str(r.uri, "//a/c");
    ck_str(r.args, "x=1&y=%2F?z");
    ck_assert_int_eq(REQ_MERGE(1, ":method", "GET", ":scheme", "https", ":path", "//a//b?"), 0);
    ck_str(r.uri, "/a/b");
    ck_str(r.args, "");
}
END_TEST

START_TEST(test_path_that_does_not_normalize_is_400)
{
    const char *bad[] = {"/..", "/a/../../b", "/%zz", "/%0", "/%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(REQ(1, ":method", "GET", ":scheme", "https", ":path", bad[i]), 400);
        ck_assert_str_eq(q.why, "invalid path");
    }
}
END_TEST

START_TEST(test_asterisk_path_with_options)
{
    ck_assert_int_eq(
        REQ(1, ":method", "OPTIONS", ":scheme", "https", ":authority", "a", ":path", "*"), 0);
    ck_str(r.request_uri, "*");
    ck_str(r.uri, "/");
    ck_assert_ptr_null(r.args.data);
}
END_TEST

START_TEST(test_connect_is_405)
{
    /* RFC 9113 8.5: only :method and :authority; rampart tunnels nothing */
    ck_assert_int_eq(REQ(1, ":method", "CONNECT", ":authority", "example.com:443"), 405);
    ck_assert_str_eq(q.why, "CONNECT is not supported");
}
END_TEST

START_TEST(test_malformed_connect)
{
    ck_malformed(REQ(1, ":method", "CONNECT", ":scheme", "https", ":authority", "a:443"),
                 "malformed CONNECT");
    ck_malformed(REQ(1, ":method", "CONNECT", ":authority", "a:443", ":path", "/"),
                 "malformed CONNECT");
    ck_malformed(REQ(1, ":method", "CONNECT"), "malformed CONNECT");
    ck_malformed(REQ(1, ":method", "CONNECT", ":authority", ""), "malformed CONNECT");
}
END_TEST

/* ---- found by fuzzing (fuzz/fuzz_h2_request.c): each of these once failed ---- */

START_TEST(test_control_bytes_in_a_value_are_malformed)
{
    /* HTTP/2 only forbids NUL, CR and LF, but every value is forwarded in HTTP/1, whose
     * parsers refuse the other CTLs: the fuzzer's first finding was ":scheme https\f..." */
    ck_malformed(
        REQ(1, ":method", "POST", ":scheme", "https\x0c:authority api.example", ":path", "/"),
        "control character in a field value");
    ck_malformed(REQ(1, BASE, "x-a", "a\x01"), "control character in a field value");
    ck_malformed(REQ(1, BASE, "x-a",
                     "a\x1f"
                     "b"),
                 "control character in a field value");
    ck_malformed(REQ(1, BASE, "x-a", "a\x7f"), "control character in a field value");
    ck_malformed(REQ(1, BASE, "x-a",
                     "a\x0b"
                     "b"),
                 "control character in a field value");
    ck_malformed(REQ(1, ":method", "GET", ":scheme", "https", ":authority",
                     "a\x08"
                     "b"),
                 "control character in a field value");
    ck_malformed(REQ(1, BASE, "cookie", "a=1", "cookie", "b\x1b"),
                 "control character in a field value");
    /* HTAB inside a value is fine in both */
    ck_assert_int_eq(REQ(1, BASE, "x-a", "a\tb"), 0);
}
END_TEST

static Suite *h2_request_suite(void)
{
    Suite *s = suite_create("h2_request");
    TCase *tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_uppercase_name_is_malformed);
    tcase_add_test(tc, test_invalid_name_characters_are_malformed);
    tcase_add_test(tc, test_connection_specific_fields_are_malformed);
    tcase_add_test(tc, test_te_other_than_trailers_is_malformed);
    tcase_add_test(tc, test_pseudo_header_after_a_regular_field_is_malformed);
    tcase_add_test(tc, test_duplicated_pseudo_header_is_malformed);
    tcase_add_test(tc, test_unknown_or_response_pseudo_header_is_malformed);
    tcase_add_test(tc, test_empty_pseudo_header_is_malformed);
    tcase_add_test(tc, test_missing_pseudo_header_is_malformed);
    tcase_add_test(tc, test_invalid_method_is_malformed);
    tcase_add_test(tc, test_invalid_path_is_malformed);
    tcase_add_test(tc, test_nul_cr_lf_in_a_value_are_malformed);
    tcase_add_test(tc, test_whitespace_around_a_value_is_malformed);
    tcase_add_test(tc, test_invalid_content_length_is_malformed);
    tcase_add_test(tc, test_repeated_content_length_must_agree);
    tcase_add_test(tc, test_content_length_without_data_is_malformed);
    tcase_add_test(tc, test_authority_and_host_that_differ_are_malformed);
    tcase_add_test(tc, test_several_host_fields_are_malformed);
    tcase_add_test(tc, test_malformed_connect);
    suite_add_tcase(s, tc);

    tc = tcase_create("translation");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ordinary_get);
    tcase_add_test(tc, test_te_trailers_is_accepted_and_not_forwarded);
    tcase_add_test(tc, test_inner_whitespace_and_obs_text_in_a_value_are_accepted);
    tcase_add_test(tc, test_content_length_is_parsed);
    tcase_add_test(tc, test_body_without_length_is_chunked);
    tcase_add_test(tc, test_expect_is_dropped);
    tcase_add_test(tc, test_cookie_crumbs_are_joined);
    tcase_add_test(tc, test_single_cookie_is_kept);
    tcase_add_test(tc, test_empty_cookie_crumbs_are_dropped);
    tcase_add_test(tc, test_host_comes_from_authority);
    tcase_add_test(tc, test_host_field_without_authority);
    tcase_add_test(tc, test_authority_and_host_that_agree_make_one_host);
    tcase_add_test(tc, test_no_host_at_all);
    tcase_add_test(tc, test_head_is_marked);
    tcase_add_test(tc, test_any_token_method_is_accepted);
    tcase_add_test(tc, test_path_is_normalized_and_the_query_split);
    tcase_add_test(tc, test_asterisk_path_with_options);
    suite_add_tcase(s, tc);

    tc = tcase_create("refused");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_connect_is_405);
    tcase_add_test(tc, test_invalid_host_is_400);
    tcase_add_test(tc, test_path_that_does_not_normalize_is_400);
    suite_add_tcase(s, tc);

    tc = tcase_create("fuzz findings");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_control_bytes_in_a_value_are_malformed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(h2_request_suite());
}
