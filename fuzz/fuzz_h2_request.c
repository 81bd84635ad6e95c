/*
 * libFuzzer target: an HTTP/2 request's decoded header fields through
 * rp_h2_req_field and rp_h2_req_finish (src/http/h2_request.c), and the request
 * they make serialized as the proxy sends it upstream in HTTP/1.1, then read back
 * by the strict HTTP/1 parser (rp_h1_parse_request, rp_h1_framing).
 *
 * Input encoding (text, so a corpus file reads as the header block it stands for):
 *
 *   byte 0     flags: bit 0 (0x01) end_stream, the HEADERS frame ended the stream;
 *              bit 1 (0x02) merge_slashes. So a file starting "1" is a request without
 *              a body, "0" one whose DATA is to come; "2" and "3" merge slashes.
 *   the rest   one field per line, lines ending in LF (a last line needs none). The first
 *              raw space of a line ends the name; the rest of the line is the value (so
 *              "x  a" has the value " a"). A line without a space is a name with an empty
 *              value, a line starting with a space a field with an empty name, and an
 *              empty line nothing at all. Name and value are then unescaped: \n LF, \r CR,
 *              \0 NUL, \t HTAB, \s SP, \\ backslash, \xHH any byte; a backslash before
 *              anything else stays as it is. Raw CR, NUL and other bytes are themselves.
 *
 *   1
 *   :method GET
 *   :scheme https
 *   :authority example.com
 *   :path /index.html
 *
 * The fields go to rp_h2_req_field in order, each in an allocation of exactly its length
 * (a read past it is an ASan error). As the connection does (h2_conn.c), the first field
 * refused makes the request malformed and rp_h2_req_finish is not called; otherwise it
 * runs on a zeroed rp_request_t with its own arena. Everything runs twice, the second
 * time on an arena with small chunks; then every check below. A broken one is a crash
 * (abort() after a line naming it), so libFuzzer keeps the input.
 *
 *  - Contract: a refusal says why; finish returns -1, 0, 400 or 405.
 *  - Determinism: both runs stop at the same field with the same reason, and give the
 *    same result, request fields and header list.
 *  - What an accepted request may hold: methods are tokens; header names are non-empty
 *    lowercase tokens, never pseudo-headers, connection-specific fields, te or expect;
 *    values hold no control byte but HTAB and no whitespace at either end; the target
 *    holds no control byte or space; r->uri starts with "/" and holds no NUL (it is
 *    percent-decoded: %0D%0A there is a CR LF, as on HTTP/1, and every place that emits
 *    it filters them); r->host is normalized; at most one host, cookie and
 *    content-length field; chunked only without a length; version 20.
 *  - HTTP/1 round trip: "METHOD SP request_uri SP HTTP/1.1", each header as
 *    "name: value", then what the proxy adds: "host: upstream" when the request has none
 *    (its Host: $proxy_host), "transfer-encoding: chunked" when r->chunked, and the empty
 *    line. rp_h1_parse_request must take all of it, with the same method, target, every
 *    header name and value byte for byte; rp_h1_framing must accept it with the same
 *    Content-Length and chunked. With more than RP_H1_MAX_HEADERS fields the parser must
 *    refuse exactly "too many headers" (a resource limit, not a syntax difference: the
 *    HTTP/2 limit is http2_max_header_list_size), and each window of that many fields
 *    must then parse on its own.
 */
#include "fuzz.h"
#include "http/h1_parser.h"
#include "http/h2.h"

#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t *name, *value;
    size_t nlen, vlen;
} field_t;

typedef struct {
    int end_stream, merge_slashes;
    field_t *f;
    size_t n;
} input_t;

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Unescapes s[0..n) into a new allocation of exactly the result's length. */
static uint8_t *unescape(const uint8_t *s, size_t n, size_t *out_len)
{
    uint8_t *tmp = malloc(n ? n : 1);
    FUZZ_CHECK(tmp != NULL);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            tmp[o++] = s[i];
            continue;
        }
        uint8_t c = s[i + 1];
        int h, l;
        switch (c) {
        case 'n':
            tmp[o++] = '\n';
            i++;
            break;
        case 'r':
            tmp[o++] = '\r';
            i++;
            break;
        case '0':
            tmp[o++] = '\0';
            i++;
            break;
        case 't':
            tmp[o++] = '\t';
            i++;
            break;
        case 's':
            tmp[o++] = ' ';
            i++;
            break;
        case '\\':
            tmp[o++] = '\\';
            i++;
            break;
        case 'x':
            if (i + 3 < n && (h = hexval(s[i + 2])) >= 0 && (l = hexval(s[i + 3])) >= 0) {
                tmp[o++] = (uint8_t)(h * 16 + l);
                i += 3;
                break;
            }
            /* fall through: not an escape */
        default:
            tmp[o++] = '\\';
            break;
        }
    }
    uint8_t *r = (uint8_t *)fuzz_copy(tmp, o);
    free(tmp);
    *out_len = o;
    return r;
}

static void decode(const uint8_t *data, size_t size, input_t *in)
{
    memset(in, 0, sizeof(*in));
    in->end_stream = data[0] & 1;
    in->merge_slashes = (data[0] >> 1) & 1;
    size_t cap = 1;
    for (size_t i = 1; i < size; i++)
        cap += data[i] == '\n';
    in->f = calloc(cap, sizeof(field_t));
    FUZZ_CHECK(in->f != NULL);
    size_t i = 1;
    while (i < size) {
        const uint8_t *line = data + i;
        const uint8_t *nl = memchr(line, '\n', size - i);
        size_t len = nl ? (size_t)(nl - line) : size - i;
        i += len + 1;
        if (len == 0)
            continue;
        const uint8_t *sp = memchr(line, ' ', len);
        size_t nlen = sp ? (size_t)(sp - line) : len;
        const uint8_t *v = sp ? sp + 1 : line + len;
        size_t vlen = sp ? len - nlen - 1 : 0;
        field_t *f = &in->f[in->n++];
        f->name = unescape(line, nlen, &f->nlen);
        f->value = unescape(v, vlen, &f->vlen);
    }
}

static void input_free(input_t *in)
{
    for (size_t k = 0; k < in->n; k++) {
        free(in->f[k].name);
        free(in->f[k].value);
    }
    free(in->f);
}

typedef struct {
    rp_arena_t *arena;
    rp_h2_req_t q;
    rp_request_t r;
    size_t stopped; /* index of the field refused, or the number of fields */
    int field_rc;
    int rc; /* finish's result, or -1 when a field was refused */
} run_t;

static void run(const input_t *in, size_t chunk, run_t *out)
{
    memset(out, 0, sizeof(*out));
    out->arena = rp_arena_create(chunk);
    rp_h2_req_init(&out->q);
    out->stopped = in->n;
    for (size_t k = 0; k < in->n; k++) {
        const field_t *f = &in->f[k];
        int rc = rp_h2_req_field(&out->q, out->arena, f->name, f->nlen, f->value, f->vlen);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (rc != 0) {
            FUZZ_CHECK(out->q.why != NULL);
            out->stopped = k;
            out->field_rc = rc;
            out->rc = -1;
            return;
        }
    }
    out->r.arena = out->arena;
    out->rc = rp_h2_req_finish(&out->q, &out->r, in->end_stream, in->merge_slashes);
    FUZZ_CHECK(out->rc == -1 || out->rc == 0 || out->rc == 400 || out->rc == 405);
    if (out->rc != 0)
        FUZZ_CHECK(out->q.why != NULL);
}

static int str_same(rp_str_t a, rp_str_t b)
{
    if ((a.data == NULL) != (b.data == NULL) || a.len != b.len)
        return 0;
    return a.len == 0 || memcmp(a.data, b.data, a.len) == 0;
}

static void check_same(const run_t *a, const run_t *b)
{
    FUZZ_CHECK(a->stopped == b->stopped);
    FUZZ_CHECK(a->field_rc == b->field_rc);
    FUZZ_CHECK(a->rc == b->rc);
    FUZZ_CHECK((a->q.why == NULL) == (b->q.why == NULL));
    if (a->q.why)
        FUZZ_CHECK(strcmp(a->q.why, b->q.why) == 0);
    if (a->rc != 0)
        return;
    const rp_request_t *x = &a->r, *y = &b->r;
    FUZZ_CHECK(str_same(x->method, y->method));
    FUZZ_CHECK(str_same(x->request_uri, y->request_uri));
    FUZZ_CHECK(str_same(x->uri, y->uri));
    FUZZ_CHECK(str_same(x->args, y->args));
    FUZZ_CHECK(str_same(x->host, y->host));
    FUZZ_CHECK(str_same(x->scheme, y->scheme));
    FUZZ_CHECK(x->version == y->version);
    FUZZ_CHECK(x->content_length == y->content_length);
    FUZZ_CHECK(x->chunked == y->chunked);
    FUZZ_CHECK(x->keepalive == y->keepalive);
    FUZZ_CHECK(x->head == y->head);
    FUZZ_CHECK(x->nheaders == y->nheaders);
    for (unsigned i = 0; i < x->nheaders; i++) {
        FUZZ_CHECK(str_same(x->headers[i].name, y->headers[i].name));
        FUZZ_CHECK(str_same(x->headers[i].value, y->headers[i].value));
    }
}

static int is_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_ctl(uint8_t c)
{
    return c < 0x20 || c == 0x7f;
}

static int has_byte(rp_str_t s, uint8_t c)
{
    return s.len && memchr(s.data, c, s.len) != NULL;
}

static int is_lit(rp_str_t s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.data, lit, s.len) == 0;
}

/* What an accepted request may hold, whatever the fields were. */
static void check_request(const input_t *in, const run_t *run)
{
    const rp_request_t *r = &run->r;
    const rp_h2_req_t *q = &run->q;

    FUZZ_CHECK(r->version == 20);
    FUZZ_CHECK(r->keepalive);
    FUZZ_CHECK(r->method.data != NULL && r->method.len > 0);
    for (size_t i = 0; i < r->method.len; i++)
        FUZZ_CHECK(is_tchar((uint8_t)r->method.data[i]));
    FUZZ_CHECK(!is_lit(r->method, "CONNECT"));
    FUZZ_CHECK(r->head == is_lit(r->method, "HEAD"));

    FUZZ_CHECK(r->request_uri.data != NULL && r->request_uri.len > 0);
    for (size_t i = 0; i < r->request_uri.len; i++) {
        uint8_t c = (uint8_t)r->request_uri.data[i];
        FUZZ_CHECK(!is_ctl(c) && c != ' ');
    }
    FUZZ_CHECK(r->request_uri.data[0] == '/' ||
               (is_lit(r->request_uri, "*") && is_lit(r->method, "OPTIONS")));
    if (r->args.data) {
        /* the query is the part of the target after the first "?" */
        FUZZ_CHECK(r->args.data > r->request_uri.data &&
                   r->args.data + r->args.len == r->request_uri.data + r->request_uri.len);
        FUZZ_CHECK(r->args.data[-1] == '?');
        FUZZ_CHECK(memchr(r->request_uri.data, '?', r->request_uri.len) == r->args.data - 1);
    } else {
        FUZZ_CHECK(!has_byte(r->request_uri, '?'));
    }

    /* decoded: %0D%0A is a CR LF here as on HTTP/1; NUL never, %00 is refused */
    FUZZ_CHECK(r->uri.data != NULL && r->uri.len > 0 && r->uri.data[0] == '/');
    FUZZ_CHECK(!has_byte(r->uri, '\0'));

    FUZZ_CHECK(r->host.data != NULL);
    for (size_t i = 0; i < r->host.len; i++) {
        uint8_t c = (uint8_t)r->host.data[i];
        FUZZ_CHECK(c > 0x20 && c != 0x7f && !(c >= 'A' && c <= 'Z') && c != '/' && c != '\\');
    }

    FUZZ_CHECK(r->scheme.data != NULL && r->scheme.len > 0);
    for (size_t i = 0; i < r->scheme.len; i++)
        FUZZ_CHECK(!is_ctl((uint8_t)r->scheme.data[i]) || r->scheme.data[i] == '\t');

    FUZZ_CHECK(r->content_length >= -1);
    FUZZ_CHECK(!r->chunked || r->content_length < 0);
    FUZZ_CHECK(r->chunked == (!in->end_stream && r->content_length < 0));
    FUZZ_CHECK(!in->end_stream || r->content_length <= 0);

    unsigned hosts = 0, cookies = 0, lengths = 0;
    for (unsigned i = 0; i < r->nheaders; i++) {
        rp_str_t n = r->headers[i].name, v = r->headers[i].value;
        FUZZ_CHECK(n.data != NULL && n.len > 0);
        FUZZ_CHECK(n.data[0] != ':');
        for (size_t k = 0; k < n.len; k++) {
            uint8_t c = (uint8_t)n.data[k];
            FUZZ_CHECK(is_tchar(c) && !(c >= 'A' && c <= 'Z'));
        }
        FUZZ_CHECK(!is_lit(n, "connection") && !is_lit(n, "keep-alive") &&
                   !is_lit(n, "proxy-connection") && !is_lit(n, "transfer-encoding") &&
                   !is_lit(n, "upgrade") && !is_lit(n, "te") && !is_lit(n, "expect"));
        FUZZ_CHECK(v.data != NULL);
        for (size_t k = 0; k < v.len; k++) {
            uint8_t c = (uint8_t)v.data[k];
            FUZZ_CHECK(!is_ctl(c) || c == '\t');
        }
        if (v.len) {
            FUZZ_CHECK(v.data[0] != ' ' && v.data[0] != '\t');
            FUZZ_CHECK(v.data[v.len - 1] != ' ' && v.data[v.len - 1] != '\t');
        }
        if (is_lit(n, "host")) {
            hosts++;
            /* :authority and host name the same thing, or only one of them is there */
            if (q->authority.len)
                FUZZ_CHECK(v.len == q->authority.len &&
                           strncasecmp(v.data, q->authority.data, v.len) == 0);
        }
        cookies += is_lit(n, "cookie");
        if (is_lit(n, "content-length")) {
            lengths++;
            FUZZ_CHECK(r->content_length >= 0);
        }
    }
    FUZZ_CHECK(cookies <= 1);
    FUZZ_CHECK((lengths == 1) == (r->content_length >= 0));
    /* the host field, else a non-empty :authority, becomes the one host header */
    FUZZ_CHECK(hosts == (q->host.data != NULL || q->authority.len > 0));
    FUZZ_CHECK((r->host.len > 0) == (q->host.len > 0 || q->authority.len > 0));
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void put(sbuf_t *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->buf = realloc(b->buf, cap);
        FUZZ_CHECK(b->buf != NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->buf + b->len, s, n);
    b->len += n;
}

#define PUT_LIT(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_str(sbuf_t *b, rp_str_t s)
{
    put(b, s.data, s.len);
}

/* The head as the proxy writes it: request line, headers[0..n), the extras, empty line. */
static void serialize(sbuf_t *b, const rp_request_t *r, const rp_header_t *h, unsigned n)
{
    b->len = 0;
    put_str(b, r->method);
    PUT_LIT(b, " ");
    put_str(b, r->request_uri);
    PUT_LIT(b, " HTTP/1.1\r\n");
    for (unsigned i = 0; i < n; i++) {
        put_str(b, h[i].name);
        PUT_LIT(b, ": ");
        put_str(b, h[i].value);
        PUT_LIT(b, "\r\n");
    }
    PUT_LIT(b, "\r\n");
}

static int span_is(const char *buf, rp_span_t s, rp_str_t want)
{
    return s.len == want.len && (want.len == 0 || memcmp(buf + s.off, want.data, want.len) == 0);
}

/* Parses b with limits no head reaches; returns the result, the parser in *p. */
static rp_h1_result_t parse(const sbuf_t *b, rp_h1_parser_t *p, char **copy)
{
    uint32_t lim = (uint32_t)(b->len + 16);
    rp_h1_parser_init(p, lim, lim);
    *copy = fuzz_copy((const uint8_t *)b->buf, b->len);
    return rp_h1_parse_request(p, *copy, b->len);
}

static void check_head(const rp_h1_parser_t *p, const char *buf, size_t len, const rp_request_t *r,
                       const rp_header_t *h, unsigned n)
{
    FUZZ_CHECK(p->pos == len);
    FUZZ_CHECK(p->version == 11);
    FUZZ_CHECK(span_is(buf, p->method, r->method));
    FUZZ_CHECK(span_is(buf, p->target, r->request_uri));
    FUZZ_CHECK(p->nheaders == n);
    for (unsigned i = 0; i < n; i++) {
        FUZZ_CHECK(span_is(buf, p->headers[i].name, h[i].name));
        FUZZ_CHECK(span_is(buf, p->headers[i].value, h[i].value));
    }
}

/* The request as the proxy would send it upstream, read back by the HTTP/1 parser. */
static void check_http1(const run_t *run)
{
    const rp_request_t *r = &run->r;
    unsigned n = r->nheaders, has_host = 0;
    rp_header_t *h = calloc(n + 2, sizeof(*h));
    FUZZ_CHECK(h != NULL);
    for (unsigned i = 0; i < n; i++) {
        h[i] = r->headers[i];
        has_host |= is_lit(h[i].name, "host");
    }
    if (!has_host) /* the proxy's Host: $proxy_host */
        h[n++] = (rp_header_t){RP_STR("host"), RP_STR("upstream")};
    if (r->chunked && r->content_length < 0) /* the proxy's own framing */
        h[n++] = (rp_header_t){RP_STR("transfer-encoding"), RP_STR("chunked")};

    sbuf_t b = {0};
    rp_h1_parser_t p;
    char *copy;
    serialize(&b, r, h, n);
    rp_h1_result_t rc = parse(&b, &p, &copy);
    int too_many =
        rc == RP_H1_ERROR && p.status == 431 && strcmp(p.reason, "too many headers") == 0;
    if (rc != RP_H1_DONE && !(too_many && n > RP_H1_MAX_HEADERS))
        fprintf(stderr, "fuzz: HTTP/1 parser refused the translated request: %d %s\n", p.status,
                p.reason ? p.reason : "(incomplete)");

    if (n > RP_H1_MAX_HEADERS) {
        /* a limit of the HTTP/1 parser, not a syntax difference: each window parses */
        FUZZ_CHECK(too_many);
        free(copy);
        for (unsigned w = 0; w < n; w += RP_H1_MAX_HEADERS) {
            unsigned k = n - w < RP_H1_MAX_HEADERS ? n - w : RP_H1_MAX_HEADERS;
            serialize(&b, r, h + w, k);
            rc = parse(&b, &p, &copy);
            if (rc != RP_H1_DONE)
                fprintf(stderr, "fuzz: HTTP/1 parser refused fields %u..%u: %d %s\n", w, w + k,
                        p.status, p.reason ? p.reason : "(incomplete)");
            FUZZ_CHECK(rc == RP_H1_DONE);
            check_head(&p, copy, b.len, r, h + w, k);
            free(copy);
        }
    } else {
        FUZZ_CHECK(rc == RP_H1_DONE);
        check_head(&p, copy, b.len, r, h, n);
        rp_h1_framing_t f;
        const char *why = NULL;
        int st = rp_h1_framing(&p, copy, &f, &why);
        if (st != 0)
            fprintf(stderr, "fuzz: rp_h1_framing refused the translated request: %d %s\n", st, why);
        FUZZ_CHECK(st == 0);
        FUZZ_CHECK(f.content_length == r->content_length);
        FUZZ_CHECK(f.chunked == r->chunked);
        FUZZ_CHECK(f.hosts == 1);
        FUZZ_CHECK(!f.conn_close && !f.conn_keepalive && !f.conn_upgrade);
        FUZZ_CHECK(!f.expect_continue);
        free(copy);
    }
    free(b.buf);
    free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    input_t in;
    decode(data, size, &in);

    run_t a, b;
    run(&in, 4096, &a);
    run(&in, 64, &b); /* small chunks: every copy and the header array cross them */
    check_same(&a, &b);

    if (a.rc == 0) {
        check_request(&in, &a);
        check_http1(&a);
    }

    rp_arena_destroy(a.arena);
    rp_arena_destroy(b.arena);
    input_free(&in);
    return 0;
}
