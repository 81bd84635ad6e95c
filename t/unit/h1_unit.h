/*
 * Helpers shared by the HTTP/1 unit tests (test_h1_request.c, test_h1_response.c,
 * test_h1_framing.c). The request- and response-head parsers are incremental, so
 * every case is fed three ways: whole, split in two at every byte, and one byte
 * more at a time into the same parser. All three must give the same result
 * (fields, offsets, status and reason, and what rp_h1_framing makes of a complete
 * head); a parser that remembers its place wrongly shows up only when the network
 * splits a request where the test did not.
 */
#ifndef RP_H1_UNIT_H
#define RP_H1_UNIT_H

#include "http/h1_parser.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#define MAX_LINE 8192
#define MAX_HEAD 32768

static const char *cur; /* the request of the running check, for span() */

/* A span of the current request as a string (valid until the next call). */
static inline const char *span(rp_span_t s)
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

static inline void frame(const rp_h1_parser_t *p, framed_t *out)
{
    out->why = NULL;
    out->status = rp_h1_framing(p, cur, &out->f, &out->why);
}

static inline void assert_same(const rp_h1_parser_t *a, rp_h1_result_t ra, const rp_h1_parser_t *b,
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
static inline rp_h1_result_t feed_split(rp_h1_parser_t *p, const char *buf, size_t len, size_t n)
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

static inline rp_h1_result_t feed_bytewise(rp_h1_parser_t *p, const char *buf, size_t len)
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

static inline void init_as(rp_h1_parser_t *p, int kind, uint32_t max_line, uint32_t max_head)
{
    if (kind == RESPONSE)
        rp_h1_response_parser_init(p, max_head);
    else
        rp_h1_parser_init(p, max_line, max_head);
}

/* Parses len bytes whole into *p, then checks every split gives the same outcome. */
static inline rp_h1_result_t parse_as(int kind, const char *buf, size_t len, uint32_t max_line,
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

static inline rp_h1_result_t parse_limits(const char *buf, size_t len, uint32_t max_line,
                                          uint32_t max_head, rp_h1_parser_t *p)
{
    return parse_as(REQUEST, buf, len, max_line, max_head, p);
}

static inline rp_h1_result_t parse_n(const char *buf, size_t len, rp_h1_parser_t *p)
{
    return parse_limits(buf, len, MAX_LINE, MAX_HEAD, p);
}

static inline rp_h1_result_t parse(const char *text, rp_h1_parser_t *p)
{
    return parse_n(text, strlen(text), p);
}

static inline rp_h1_result_t parse_response(const char *text, rp_h1_parser_t *p)
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
static inline void framing_as(int kind, const char *text, framed_t *out)
{
    rp_h1_parser_t p;
    ck_assert_msg(parse_as(kind, text, strlen(text), MAX_LINE, MAX_HEAD, &p) == RP_H1_DONE,
                  "head not parsed: %s (%d)", p.reason ? p.reason : "incomplete", p.status);
    frame(&p, out);
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
static inline rp_h1_framing_t framed_as(int kind, const char *text)
{
    framed_t fr;
    framing_as(kind, text, &fr);
    ck_assert_msg(fr.status == 0, "%s: framing refused with %d (%s)", text, fr.status, fr.why);
    return fr.f;
}

static inline rp_h1_framing_t framed(const char *text)
{
    return framed_as(REQUEST, text);
}

/* Inserts byte at every position of base in turn; each result must be refused with status. */
static inline void refused_wherever_inserted(int kind, const char *base, char byte, int status)
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

#endif
