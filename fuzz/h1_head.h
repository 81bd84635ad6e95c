/*
 * The body of the two head-parser targets (requests and responses). An input is a
 * stream of messages as a connection would carry them: each head is parsed whole
 * and again in pieces, every way of cutting must give the same decision and the
 * same offsets, a parsed head must satisfy what the parser promises about it, and
 * rp_h1_framing must agree with an independent reading of the framing headers.
 * Then the body is stepped over as the connection would (Content-Length, chunked,
 * none for 1xx, 204 and 304) and the next head, if any, goes through the same.
 */
#ifndef RP_FUZZ_H1_HEAD_H
#define RP_FUZZ_H1_HEAD_H

#include "fuzz.h"
#include "http/h1_parser.h"

#include <strings.h>

#define HEAD_MAX_MESSAGES 8
#define HEAD_BYTEWISE_MAX 512 /* cutting after every byte costs len^2 copies */

typedef struct {
    uint32_t max_line, max_head;
    int response;
} head_mode_t;

/* Limits derived from the input: rampart's defaults half the time, otherwise small ones
 * (so that every limit is reached by short inputs) or the largest a uint32_t allows. */
static void head_limits(uint64_t h, head_mode_t *m)
{
    switch (h % 8) {
    case 0:
    case 1:
    case 2:
    case 3:
        m->max_line = 8192;
        m->max_head = 32768;
        break;
    case 4:
    case 5:
        m->max_line = 1 + (uint32_t)((h >> 8) % 128);
        m->max_head = 1 + (uint32_t)((h >> 24) % 1024);
        break;
    case 6:
        m->max_line = 16 + (uint32_t)((h >> 8) % 4096);
        m->max_head = m->max_line + (uint32_t)((h >> 24) % 4096);
        break;
    default:
        m->max_line = UINT32_MAX - (uint32_t)((h >> 8) % 8);
        m->max_head = UINT32_MAX - (uint32_t)((h >> 16) % 8);
        break;
    }
}

static void head_init(rp_h1_parser_t *p, const head_mode_t *m)
{
    if (m->response)
        rp_h1_response_parser_init(p, m->max_head);
    else
        rp_h1_parser_init(p, m->max_line, m->max_head);
}

/* Feeds data[0..len) as the growing buffer of a connection: one call per cut, each with
 * every byte so far in a fresh allocation (the buffer may move between calls). */
static rp_h1_result_t head_feed(rp_h1_parser_t *p, const uint8_t *data, size_t len,
                                const size_t *cuts, size_t ncuts)
{
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        char *b = fuzz_copy(data, end);
        rp_h1_result_t rc = rp_h1_parse_request(p, b, end);
        free(b);
        if (rc != RP_H1_AGAIN)
            return rc;
    }
    return RP_H1_AGAIN;
}

static int is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int span_in(rp_span_t s, uint32_t end)
{
    return s.off <= end && s.len <= end - s.off;
}

/* What the header file promises about each outcome, checked against the bytes. */
static void head_check(const rp_h1_parser_t *p, rp_h1_result_t rc, const uint8_t *d, size_t len,
                       const head_mode_t *m)
{
    if (rc == RP_H1_ERROR) {
        FUZZ_CHECK(p->reason != NULL);
        if (m->response)
            FUZZ_CHECK(p->status == 502);
        else
            FUZZ_CHECK(p->status == 400 || p->status == 414 || p->status == 431 ||
                       p->status == 505);
        return;
    }
    if (rc == RP_H1_AGAIN) {
        FUZZ_CHECK(p->pos == len); /* every byte was looked at, none twice */
        FUZZ_CHECK(p->pos <= m->max_head);
        return;
    }
    FUZZ_CHECK(rc == RP_H1_DONE);
    FUZZ_CHECK(p->pos >= 1 && p->pos <= len && p->pos <= m->max_head);
    FUZZ_CHECK(d[p->pos - 1] == '\n');
    FUZZ_CHECK(p->version == 10 || p->version == 11);
    FUZZ_CHECK(p->nheaders <= RP_H1_MAX_HEADERS);
    if (m->response) {
        FUZZ_CHECK(len >= 12 && memcmp(d, "HTTP/1.", 7) == 0 && d[8] == ' ');
        FUZZ_CHECK(p->code >= 100 && p->code <= 999);
        FUZZ_CHECK(p->code == (d[9] - '0') * 100 + (d[10] - '0') * 10 + (d[11] - '0'));
    } else {
        FUZZ_CHECK(p->method.len >= 1 && span_in(p->method, p->pos));
        for (uint32_t i = 0; i < p->method.off; i++)
            FUZZ_CHECK(d[i] == '\r' || d[i] == '\n'); /* only empty lines before it */
        for (uint32_t i = 0; i < p->method.len; i++)
            FUZZ_CHECK(is_tchar(d[p->method.off + i]));
        FUZZ_CHECK(d[p->method.off + p->method.len] == ' ');
        FUZZ_CHECK(p->target.off == p->method.off + p->method.len + 1);
        FUZZ_CHECK(p->target.len >= 1 && span_in(p->target, p->pos));
        for (uint32_t i = 0; i < p->target.len; i++)
            FUZZ_CHECK(d[p->target.off + i] > 0x20 && d[p->target.off + i] != 0x7f);
        FUZZ_CHECK(p->target.len <= m->max_line);
    }
    for (unsigned k = 0; k < p->nheaders; k++) {
        rp_span_t n = p->headers[k].name, v = p->headers[k].value;
        FUZZ_CHECK(n.len >= 1 && span_in(n, p->pos) && span_in(v, p->pos));
        for (uint32_t i = 0; i < n.len; i++)
            FUZZ_CHECK(is_tchar(d[n.off + i]));
        FUZZ_CHECK(d[n.off + n.len] == ':');
        FUZZ_CHECK(v.off > n.off + n.len);
        for (uint32_t i = n.off + n.len + 1; i < v.off; i++)
            FUZZ_CHECK(d[i] == ' ' || d[i] == '\t'); /* only OWS between colon and value */
        for (uint32_t i = 0; i < v.len; i++) {
            uint8_t c = d[v.off + i];
            FUZZ_CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (v.len) { /* trimmed both ends */
            FUZZ_CHECK(d[v.off] != ' ' && d[v.off] != '\t');
            FUZZ_CHECK(d[v.off + v.len - 1] != ' ' && d[v.off + v.len - 1] != '\t');
        }
        /* what follows the value up to the line end is only OWS */
        uint32_t i = v.off + v.len;
        while (i < p->pos && (d[i] == ' ' || d[i] == '\t'))
            i++;
        FUZZ_CHECK(i < p->pos && (d[i] == '\r' || d[i] == '\n'));
        if (k > 0)
            FUZZ_CHECK(n.off > p->headers[k - 1].value.off + p->headers[k - 1].value.len);
    }
}

/* The same decision and the same offsets, however the bytes arrived. */
static void head_same(const rp_h1_parser_t *a, rp_h1_result_t ra, const rp_h1_parser_t *b,
                      rp_h1_result_t rb)
{
    FUZZ_CHECK(ra == rb);
    if (ra == RP_H1_ERROR) {
        FUZZ_CHECK(a->status == b->status);
        FUZZ_CHECK(strcmp(a->reason, b->reason) == 0);
        FUZZ_CHECK(a->pos == b->pos); /* refused at the same byte */
        return;
    }
    FUZZ_CHECK(a->pos == b->pos);
    if (ra != RP_H1_DONE)
        return;
    FUZZ_CHECK(memcmp(&a->method, &b->method, sizeof(a->method)) == 0);
    FUZZ_CHECK(memcmp(&a->target, &b->target, sizeof(a->target)) == 0);
    FUZZ_CHECK(a->version == b->version && a->code == b->code);
    FUZZ_CHECK(a->nheaders == b->nheaders);
    FUZZ_CHECK(memcmp(a->headers, b->headers, a->nheaders * sizeof(a->headers[0])) == 0);
}

static int span_ieq_str(const uint8_t *d, rp_span_t s, const char *lower)
{
    return s.len == strlen(lower) && strncasecmp((const char *)d + s.off, lower, s.len) == 0;
}

/* rp_h1_framing, checked against a plain count of the framing headers. Returns its status. */
static int head_framing(const rp_h1_parser_t *p, const uint8_t *d, const head_mode_t *m,
                        rp_h1_framing_t *f)
{
    const char *why = NULL;
    int st = rp_h1_framing(p, (const char *)d, f, &why);
    if (st != 0) {
        FUZZ_CHECK(why != NULL);
        if (m->response)
            FUZZ_CHECK(st == 502);
        else
            FUZZ_CHECK(st == 400 || st == 417 || st == 501);
        return st;
    }
    unsigned cls = 0, tes = 0, hosts = 0;
    int64_t cl = -1;
    rp_span_t te = {0, 0};
    for (unsigned k = 0; k < p->nheaders; k++) {
        rp_span_t n = p->headers[k].name, v = p->headers[k].value;
        if (span_ieq_str(d, n, "content-length")) {
            cls++;
            FUZZ_CHECK(v.len >= 1 && v.len <= 18);
            cl = 0;
            for (uint32_t i = 0; i < v.len; i++) {
                FUZZ_CHECK(d[v.off + i] >= '0' && d[v.off + i] <= '9');
                cl = cl * 10 + (d[v.off + i] - '0');
            }
        } else if (span_ieq_str(d, n, "transfer-encoding")) {
            tes++;
            te = v;
        } else if (span_ieq_str(d, n, "host")) {
            hosts++;
            FUZZ_CHECK(m->response || f->host == (int)k || hosts > 1);
        }
    }
    FUZZ_CHECK(cls <= 1 && tes <= 1 && !(cls && tes)); /* never two readings of the length */
    FUZZ_CHECK(f->content_length == cl);
    FUZZ_CHECK(f->te == (tes == 1) && f->chunked == (tes == 1));
    if (tes)
        FUZZ_CHECK(p->version == 11 && span_ieq_str(d, te, "chunked"));
    if (!m->response) {
        FUZZ_CHECK(f->hosts == hosts && hosts <= 1);
        FUZZ_CHECK(hosts == 1 || p->version == 10);
        FUZZ_CHECK(hosts == 1 ? f->host >= 0 : f->host == -1);
    }
    return 0;
}

/* Steps over a chunked body at d[0..len); returns the bytes it took, or 0 when it is
 * malformed or incomplete (the stream ends there). */
static size_t head_skip_chunked(const uint8_t *d, size_t len)
{
    rp_chunked_t c;
    rp_chunked_init(&c);
    char *b = fuzz_copy(d, len);
    size_t out = len, used = 0;
    int rc = rp_chunked_decode(&c, b, &out, &used);
    free(b);
    FUZZ_CHECK(used <= len && out <= used);
    return rc == 1 ? used : 0;
}

/* One message head at d[0..len): whole, then cut every way. Returns the head's result. */
static rp_h1_result_t head_one(const uint8_t *d, size_t len, const head_mode_t *m, uint64_t seed,
                               rp_h1_parser_t *whole)
{
    static size_t cuts[FUZZ_MAX_CUTS];
    head_init(whole, m);
    char *b = fuzz_copy(d, len);
    rp_h1_result_t rc = rp_h1_parse_request(whole, b, len);
    free(b);
    head_check(whole, rc, d, len, m);

    for (int kind = 0; kind < CUT_KINDS; kind++) {
        if (kind == CUT_BYTES && len > HEAD_BYTEWISE_MAX)
            continue;
        size_t n = fuzz_cuts((fuzz_cut_kind_t)kind, d, len, seed, cuts);
        rp_h1_parser_t q;
        head_init(&q, m);
        rp_h1_result_t rq = head_feed(&q, d, len, cuts, n);
        head_same(whole, rc, &q, rq);
    }
    return rc;
}

static int head_fuzz(const uint8_t *data, size_t size, int response)
{
    head_mode_t m = {0};
    uint64_t h = fuzz_hash(data, size, 0);
    head_limits(h, &m);
    m.response = response;

    static rp_h1_parser_t p; /* 1.6 kB of headers: keep it off the stack */
    size_t off = 0;
    for (int msg = 0; msg < HEAD_MAX_MESSAGES && off < size; msg++) {
        const uint8_t *d = data + off;
        size_t len = size - off;
        if (head_one(d, len, &m, h + (uint64_t)msg, &p) != RP_H1_DONE)
            break;
        rp_h1_framing_t f;
        if (head_framing(&p, d, &m, &f) != 0)
            break;
        off += p.pos;
        if (response && p.code >= 100 && p.code < 200) {
            if (p.code == 101)
                break; /* the connection is no longer HTTP */
            continue;  /* interim response: the final head follows at once */
        }
        if (response && (p.code == 204 || p.code == 304))
            continue;
        if (f.chunked) {
            size_t used = head_skip_chunked(data + off, size - off);
            if (used == 0)
                break;
            off += used;
        } else if (f.content_length > 0) {
            if ((uint64_t)f.content_length >= size - off)
                break;
            off += (size_t)f.content_length;
        } else if (response && f.content_length < 0) {
            break; /* close-delimited: the rest is body */
        }
    }
    return 0;
}

#endif
