/*
 * HTTP/2 request fields to the protocol-neutral request (RFC 9113 section 8).
 * nghttp2 already refuses most malformed header blocks; this is the second,
 * independent check, and the one place that decides what an HTTP/2 request
 * means in HTTP/1 terms (method, target, Host, one Cookie, body framing) before
 * the phases and the proxy see it. It allocates only from the request arena and
 * knows nothing of sessions, so the fuzzer drives it directly.
 */
#include "http/h2.h"
#include "route/route.h"

#include <string.h>

/* RFC 9110 5.6.2 tchar, without uppercase letters (RFC 9113 8.2.1). */
static int name_char(unsigned char ch)
{
    if (ch >= 'a' && ch <= 'z')
        return 1;
    if (ch >= '0' && ch <= '9')
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int eq(const uint8_t *s, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    return n == k && memcmp(s, lit, k) == 0;
}

static int bad(rp_h2_req_t *q, const char *why)
{
    q->why = why;
    return -1;
}

void rp_h2_req_init(rp_h2_req_t *q)
{
    memset(q, 0, sizeof(*q));
    q->content_length = -1;
    q->cookie = -1;
}

static rp_str_t copy(rp_arena_t *a, const uint8_t *s, size_t n)
{
    char *d = rp_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return (rp_str_t){d, n};
}

static void push(rp_h2_req_t *q, rp_arena_t *a, rp_str_t name, rp_str_t value)
{
    if (q->nheaders == q->cap) {
        unsigned cap = q->cap ? q->cap * 2 : 16;
        rp_header_t *h = rp_arena_alloc(a, sizeof(*h) * (cap + 1));
        if (q->nheaders)
            memcpy(h, q->headers, sizeof(*h) * q->nheaders);
        q->headers = h;
        q->cap = cap;
    }
    q->headers[q->nheaders].name = name;
    q->headers[q->nheaders].value = value;
    q->nheaders++;
}

static int pseudo(rp_h2_req_t *q, rp_arena_t *a, const uint8_t *name, size_t nlen,
                  const uint8_t *value, size_t vlen)
{
    rp_str_t *slot;
    if (q->regular_seen)
        return bad(q, "pseudo-header field after a regular field");
    if (eq(name, nlen, ":method"))
        slot = &q->method;
    else if (eq(name, nlen, ":scheme"))
        slot = &q->scheme;
    else if (eq(name, nlen, ":authority"))
        slot = &q->authority;
    else if (eq(name, nlen, ":path"))
        slot = &q->path;
    else
        return bad(q, "unknown or response pseudo-header field");
    if (slot->data)
        return bad(q, "duplicated pseudo-header field");
    if (slot != &q->authority && vlen == 0)
        return bad(q, "empty pseudo-header field");
    *slot = copy(a, value, vlen);
    return 0;
}

static int parse_length(const uint8_t *v, size_t n, int64_t *out)
{
    int64_t x = 0;
    if (n == 0 || n > 18)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

int rp_h2_req_field(rp_h2_req_t *q, rp_arena_t *a, const uint8_t *name, size_t nlen,
                    const uint8_t *value, size_t vlen)
{
    if (nlen == 0)
        return bad(q, "empty field name");
    for (size_t i = 0; i < vlen; i++) {
        if (value[i] == '\0' || value[i] == '\r' || value[i] == '\n')
            return bad(q, "NUL, CR or LF in a field value");
        /* RFC 9110 5.5: no other CTL but HTAB either. HTTP/2 only requires the three
         * above, but every field goes on in HTTP/1, whose parsers (ours included)
         * refuse the rest: forwarded, they would reach upstreams that refuse them or read
         * them differently. */
        if ((value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
            return bad(q, "control character in a field value");
    }
    if (vlen && (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' ||
                 value[vlen - 1] == '\t'))
        return bad(q, "whitespace around a field value");
    if (name[0] == ':') {
        for (size_t i = 1; i < nlen; i++)
            if (!name_char(name[i]))
                return bad(q, "invalid field name");
        return pseudo(q, a, name, nlen, value, vlen);
    }
    for (size_t i = 0; i < nlen; i++)
        if (!name_char(name[i]))
            return bad(q, "uppercase or invalid character in a field name");
    q->regular_seen = 1;

    switch (nlen) {
    case 2:
        if (eq(name, nlen, "te")) {
            if (!eq(value, vlen, "trailers"))
                return bad(q, "te other than trailers");
            return 0; /* hop-by-hop: not forwarded */
        }
        break;
    case 4:
        if (eq(name, nlen, "host")) {
            if (q->host.data)
                return bad(q, "several host fields");
            q->host = copy(a, value, vlen);
        }
        break;
    case 6:
        if (eq(name, nlen, "cookie")) {
            /* RFC 9113 8.2.3: crumbs travel apart and join with "; " for HTTP/1; an
             * empty one adds nothing (joined, it would leave a trailing space) */
            if (vlen == 0)
                return 0;
            if (q->cookie < 0) {
                q->cookie = (int)q->nheaders;
                break;
            }
            rp_str_t old = q->headers[q->cookie].value;
            char *d = rp_arena_alloc(a, old.len + 2 + vlen + 1);
            memcpy(d, old.data, old.len);
            memcpy(d + old.len, "; ", 2);
            memcpy(d + old.len + 2, value, vlen);
            d[old.len + 2 + vlen] = '\0';
            q->headers[q->cookie].value = (rp_str_t){d, old.len + 2 + vlen};
            return 0;
        }
        if (eq(name, nlen, "expect"))
            return 0; /* 100-continue means nothing over HTTP/2: flow control does its job */
        break;
    case 7:
        if (eq(name, nlen, "upgrade"))
            return bad(q, "connection-specific field");
        break;
    case 10:
        if (eq(name, nlen, "connection") || eq(name, nlen, "keep-alive"))
            return bad(q, "connection-specific field");
        break;
    case 14:
        if (eq(name, nlen, "content-length")) {
            int64_t n;
            if (parse_length(value, vlen, &n) != 0)
                return bad(q, "invalid content-length");
            if (q->content_length >= 0 && q->content_length != n)
                return bad(q, "conflicting content-length fields");
            if (q->content_length >= 0)
                return 0;
            q->content_length = n;
        }
        break;
    case 16:
        if (eq(name, nlen, "proxy-connection"))
            return bad(q, "connection-specific field");
        break;
    case 17:
        if (eq(name, nlen, "transfer-encoding"))
            return bad(q, "connection-specific field");
        break;
    }
    push(q, a, copy(a, name, nlen), copy(a, value, vlen));
    return 0;
}

int rp_h2_req_finish(rp_h2_req_t *q, rp_request_t *r, int end_stream, int merge_slashes)
{
    rp_arena_t *a = r->arena;
    if (q->method.data == NULL)
        return bad(q, "no :method");
    if (rp_str_eq(q->method, "CONNECT")) {
        /* RFC 9113 8.5 without extended CONNECT: only :authority, and we tunnel nothing */
        if (q->scheme.data || q->path.data || q->authority.len == 0)
            return bad(q, "malformed CONNECT");
        q->why = "CONNECT is not supported";
        return 405;
    }
    if (q->scheme.data == NULL)
        return bad(q, "no :scheme");
    if (q->path.data == NULL)
        return bad(q, "no :path");
    for (size_t i = 0; i < q->method.len; i++)
        if (!name_char((unsigned char)q->method.data[i]) &&
            !(q->method.data[i] >= 'A' && q->method.data[i] <= 'Z'))
            return bad(q, "invalid :method");
    for (size_t i = 0; i < q->path.len; i++) {
        unsigned char ch = (unsigned char)q->path.data[i];
        if (ch <= 0x20 || ch == 0x7f)
            return bad(q, "invalid character in :path");
    }
    if (q->authority.data && q->host.data && !rp_str_eq(q->authority, "") &&
        (q->authority.len != q->host.len ||
         strncasecmp(q->authority.data, q->host.data, q->host.len) != 0))
        return bad(q, ":authority and host differ");

    r->method = q->method;
    r->scheme = q->scheme;
    r->request_uri = q->path;
    r->version = 20;
    r->head = rp_str_eq(r->method, "HEAD");
    r->content_length = q->content_length;
    /* no length and DATA to come: the body's end is the stream's (chunked upstream) */
    r->chunked = !end_stream && q->content_length < 0;
    if (end_stream && q->content_length > 0)
        return bad(q, "content-length without DATA");
    r->keepalive = 1;

    rp_str_t host = q->authority.len ? q->authority : q->host;
    if (host.data && host.len && q->host.data == NULL) {
        /* HTTP/1 has no :authority: the request carries it as Host, as nginx does */
        push(q, a, RP_STR("host"), host);
    }
    r->headers = q->headers;
    r->nheaders = q->nheaders;

    rp_str_t target = q->path;
    if (rp_str_eq(target, "*")) {
        if (!rp_str_eq(r->method, "OPTIONS"))
            return bad(q, "asterisk :path outside OPTIONS");
        target = RP_STR("/");
    } else if (target.data[0] != '/') {
        return bad(q, ":path is not absolute");
    }
    const char *qm = memchr(target.data, '?', target.len);
    size_t plen = qm ? (size_t)(qm - target.data) : target.len;
    r->args = qm ? (rp_str_t){qm + 1, target.len - plen - 1} : RP_NULL_STR;
    char *norm = rp_arena_alloc(a, plen + 2);
    size_t nlen;
    if (rp_uri_normalize(target.data, plen, norm, &nlen, merge_slashes) != 0) {
        q->why = "invalid path";
        return 400;
    }
    r->uri = (rp_str_t){norm, nlen};

    if (host.data && host.len) {
        char *h = rp_arena_alloc(a, host.len + 1);
        size_t hlen;
        if (rp_host_normalize(host.data, host.len, h, &hlen) != 0) {
            q->why = "invalid host";
            return 400;
        }
        r->host = (rp_str_t){h, hlen};
    } else {
        r->host = RP_STR("");
    }
    return 0;
}
