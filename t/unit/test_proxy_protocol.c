/*
 * The PROXY protocol parser (net/proxy_protocol.c): every prefix of a valid header
 * asks for more bytes rather than failing, so a header split anywhere is put
 * together; the header's length excludes what follows; broken headers are told
 * apart as soon as the bytes allow.
 */
#include "unit.h"
#include "net/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                      0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static int parse(const void *b, size_t n, rp_proxy_addrs_t *a)
{
    const char *why;
    int rc = rp_proxy_protocol_parse(b, n, a, &why);
    if (rc < 0)
        ck_assert_ptr_nonnull(why);
    return rc;
}

static void every_prefix_wants_more(const unsigned char *b, size_t n)
{
    rp_proxy_addrs_t a;
    for (size_t i = 1; i < n; i++)
        ck_assert_msg(parse(b, i, &a) == 0, "prefix of %zu bytes", i);
}

START_TEST(v1_tcp4_with_a_request_after_it)
{
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
    size_t hl = strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    rp_proxy_addrs_t a;
    every_prefix_wants_more((const unsigned char *)h, hl);
    ck_assert_int_eq(parse(h, strlen(h), &a), (int)hl);
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_int_eq(a.version, 1);
    char t[64];
    int port;
    rp_proxy_addr_text(&a.src, t, sizeof(t), &port);
    ck_assert_str_eq(t, "192.0.2.1");
    ck_assert_int_eq(port, 56324);
    rp_proxy_addr_text(&a.dst, t, sizeof(t), &port);
    ck_assert_str_eq(t, "198.51.100.2");
    ck_assert_int_eq(port, 443);
}
END_TEST

START_TEST(v1_longest_tcp6_line_fits_107_bytes)
{
    const char *h = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    rp_proxy_addrs_t a;
    ck_assert_int_eq(strlen(h), 104);
    ck_assert_int_eq(parse(h, strlen(h), &a), 104);
    ck_assert_int_eq(a.family, AF_INET6);
}
END_TEST

START_TEST(v1_broken_lines)
{
    const char *bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        "PROXX",
        "GET / HTTP/1.1\r\n",
    };
    rp_proxy_addrs_t a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(parse(bad[i], strlen(bad[i]), &a) == -1, "%s", bad[i]);
    char longl[200];
    memset(longl, '1', sizeof(longl));
    memcpy(longl, "PROXY TCP4 ", 11);
    ck_assert_int_eq(parse(longl, 106, &a), 0);
    ck_assert_int_eq(parse(longl, 107, &a), -1);
}
END_TEST

START_TEST(v2_inet_with_tlvs)
{
    unsigned char h[64];
    memcpy(h, sig, 12);
    h[12] = 0x21;
    h[13] = 0x11;
    h[14] = 0;
    h[15] = 12 + 7;
    unsigned char addrs[12] = {192, 0, 2, 1, 192, 0, 2, 2, 0x01, 0xbb, 0x00, 0x50};
    memcpy(h + 16, addrs, 12);
    memcpy(h + 28, "\x01\x00\x02h2\x04\x00", 7);
    memcpy(h + 35, "GET", 3);
    every_prefix_wants_more(h, 35);
    rp_proxy_addrs_t a;
    ck_assert_int_eq(parse(h, 38, &a), 35);
    ck_assert_int_eq(a.family, AF_INET);
    ck_assert_int_eq(a.version, 2);
    char t[64];
    int port;
    rp_proxy_addr_text(&a.src, t, sizeof(t), &port);
    ck_assert_str_eq(t, "192.0.2.1");
    ck_assert_int_eq(port, 443);
}
END_TEST

START_TEST(v2_local_and_unspec_carry_no_client)
{
    unsigned char h[28];
    memcpy(h, sig, 12);
    h[12] = 0x20; /* LOCAL, with addresses the receiver must ignore */
    h[13] = 0x11;
    h[14] = 0;
    h[15] = 12;
    memset(h + 16, 7, 12);
    rp_proxy_addrs_t a;
    ck_assert_int_eq(parse(h, 28, &a), 28);
    ck_assert_int_eq(a.family, AF_UNSPEC);
    h[12] = 0x21;
    h[13] = 0x00;
    h[15] = 0;
    ck_assert_int_eq(parse(h, 16, &a), 16);
    ck_assert_int_eq(a.family, AF_UNSPEC);
}
END_TEST

START_TEST(v2_unix_paths)
{
    unsigned char h[16 + 216];
    memset(h, 0, sizeof(h));
    memcpy(h, sig, 12);
    h[12] = 0x21;
    h[13] = 0x31;
    h[14] = 0;
    h[15] = 216;
    memcpy(h + 16, "/a.sock", 7);
    memset(h + 16 + 108, 'b', 108); /* a path filling all 108 bytes, no NUL */
    rp_proxy_addrs_t a;
    ck_assert_int_eq(parse(h, sizeof(h), &a), (int)sizeof(h));
    ck_assert_int_eq(a.family, AF_UNIX);
    char t[200];
    int port;
    rp_proxy_addr_text(&a.src, t, sizeof(t), &port);
    ck_assert_str_eq(t, "unix:/a.sock");
    rp_proxy_addr_text(&a.dst, t, sizeof(t), &port);
    ck_assert_int_eq(strlen(t), 5 + 108);
}
END_TEST

START_TEST(v2_broken_headers_fail_on_the_fixed_part)
{
    unsigned char h[16];
    memcpy(h, sig, 12);
    rp_proxy_addrs_t a;
    const unsigned char bad[][4] = {
        {0x11, 0x11, 0, 12},      /* version 1 */
        {0x22, 0x11, 0, 12},      /* command 2 */
        {0x21, 0x41, 0, 12},      /* family 4 */
        {0x21, 0x13, 0, 12},      /* transport 3 */
        {0x21, 0x21, 0, 12},      /* INET6 in 12 bytes */
        {0x21, 0x31, 0, 36},      /* UNIX in 36 bytes */
        {0x21, 0x11, 0xff, 0xff}, /* larger than accepted */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(h + 12, bad[i], 4);
        ck_assert_msg(parse(h, 16, &a) == -1, "case %zu", i);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("proxy_protocol");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, v1_tcp4_with_a_request_after_it);
    tcase_add_test(tc, v1_longest_tcp6_line_fits_107_bytes);
    tcase_add_test(tc, v1_broken_lines);
    tcase_add_test(tc, v2_inet_with_tlvs);
    tcase_add_test(tc, v2_local_and_unspec_carry_no_client);
    tcase_add_test(tc, v2_unix_paths);
    tcase_add_test(tc, v2_broken_headers_fail_on_the_fixed_part);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
