/*
 * The HTTP/1 response-head parser and the framing of an upstream's response:
 * status lines, the limits, and every malformed head or framing it refuses, all
 * with 502 (a broken upstream head is never the client's fault). Each case is
 * fed whole, split in two at every byte and one byte more at a time
 * (h1_unit.h), and all three must agree.
 */

#include "h1_unit.h"

/* A 200 response of HTTP/1.1 with the given header lines. */
static const char *response_with(const char *lines)
{
    static char bufs[4][1024];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof(bufs[0]), "HTTP/1.1 200 OK\r\n%s\r\n", lines);
    return b;
}

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

/* found by fuzzing (fuzz/): each of these once failed */

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

static Suite *h1_response_suite(void)
{
    Suite *s = suite_create("h1_response");
    TCase *tc = tcase_create("responses");
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

    tc = tcase_create("fuzz findings");
    tcase_add_test(tc, test_every_malformed_response_head_is_502);
    tcase_add_test(tc, test_status_code_is_exactly_three_digits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(h1_response_suite());
}
