/*
 * HTTP/1 message framing: what rp_h1_framing makes of a parsed request head
 * (Content-Length, Transfer-Encoding, Host, Expect, Connection, and a
 * smuggler's variations on them), and the chunked decoder. Heads are fed whole,
 * split in two at every byte and one byte more at a time (h1_unit.h); chunked
 * bodies the same way (decode below). All must agree.
 */

#include "h1_unit.h"

/* A POST of HTTP/1.1 with a Host and the given header lines (each ending in CRLF). */
static const char *post_with(const char *lines)
{
    static char bufs[4][1024];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "POST / HTTP/1.1\r\nHost: a\r\n%s\r\n", lines);
    return b;
}

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
    /* chunked is not the final coding of the combined list: 400 (RFC 9112 6.3) */
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

static Suite *h1_framing_suite(void)
{
    Suite *s = suite_create("h1_framing");
    TCase *tc = tcase_create("framing");
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
    return s;
}

int main(void)
{
    return ut_run(h1_framing_suite());
}
