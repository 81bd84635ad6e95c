/*
 * What an HTTP health check's verdict rests on, without sockets: reading the probe's
 * response (HTTP/1.x, with the same strict head parser and chunked decoder as the
 * proxy, so a response the proxy would refuse fails the check too) and testing it
 * against a `match` block, as nginx Plus's:
 *
 *   match ok {
 *       status 200-399;            status ! 500 503;
 *       header Content-Type = application/json;
 *       header X-Ready;            header ! X-Maintenance;
 *       header X-Version ~ "^2\.";  header X-Role !~ standby;
 *       body ~ "\"status\":\s*\"up\"";
 *   }
 *
 * Every line must hold. Without a match, a 2xx or 3xx status passes (nginx's rule).
 * Only the first RP_HEALTH_MAX_BODY bytes of a body are kept and examined.
 */
#include "upstream/health.h"
#include "route/route.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- match lines ---- */

static const char *join_args(rp_arena_t *a, char **argv, size_t argc)
{
    size_t n = 0;
    for (size_t i = 0; i < argc; i++)
        n += strlen(argv[i]) + 1;
    char *s = rp_arena_alloc(a, n + 1), *p = s;
    for (size_t i = 0; i < argc; i++) {
        size_t k = strlen(argv[i]);
        if (i)
            *p++ = ' ';
        memcpy(p, argv[i], k);
        p += k;
    }
    *p = '\0';
    return s;
}

/* A status code of a status line: three digits, 100 to 599. */
static int parse_code(const char *s, const char *end, int *out)
{
    if (end - s != 3)
        return -1;
    int v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 100 || v > 599)
        return -1;
    *out = v;
    return 0;
}

static const char *parse_status(rp_arena_t *a, rp_health_test_t *t, char **argv, size_t argc)
{
    size_t i = 1;
    if (i < argc && strcmp(argv[i], "!") == 0) {
        t->negate = 1;
        i++;
    }
    if (i == argc)
        return "no status code in \"status\"";
    t->nranges = (unsigned)(argc - i);
    t->ranges = rp_arena_calloc(a, t->nranges * sizeof(*t->ranges));
    for (unsigned k = 0; i < argc; i++, k++) {
        const char *s = argv[i], *dash = strchr(s, '-'), *end = s + strlen(s);
        rp_health_range_t *r = &t->ranges[k];
        if (dash ? parse_code(s, dash, &r->lo) != 0 || parse_code(dash + 1, end, &r->hi) != 0 ||
                       r->lo > r->hi
                 : parse_code(s, end, &r->lo) != 0)
            return rp_arena_sprintf(a,
                                    "invalid status \"%s\" (a code from 100 to 599, or a "
                                    "range such as 200-399)",
                                    s);
        if (!dash)
            r->hi = r->lo;
    }
    return NULL;
}

/* "=", "!=", "~", "!~", "~*", "!~*": sets op, negate and caseless; -1 for anything else. */
static int parse_op(const char *s, rp_health_test_t *t, int *caseless)
{
    t->negate = s[0] == '!';
    if (t->negate)
        s++;
    *caseless = 0;
    if (strcmp(s, "=") == 0) {
        t->op = RP_HM_EQUAL;
        return 0;
    }
    if (strcmp(s, "~") == 0 || strcmp(s, "~*") == 0) {
        t->op = RP_HM_REGEX;
        *caseless = s[1] == '*';
        return 0;
    }
    return -1;
}

static int token_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *parse_header(rp_arena_t *a, rp_health_test_t *t, char **argv, size_t argc)
{
    size_t i = 1;
    const char *name;
    if (argc == 3 && strcmp(argv[1], "!") == 0) {
        t->negate = 1;
        t->op = RP_HM_PRESENT;
        name = argv[2];
    } else if (argc == 2) {
        t->op = RP_HM_PRESENT;
        name = argv[1];
    } else if (argc == 4) {
        name = argv[i];
        int caseless;
        if (parse_op(argv[2], t, &caseless) != 0)
            return rp_arena_sprintf(a,
                                    "invalid operator \"%s\" in \"header\" (=, !=, ~, !~, "
                                    "~* or !~*)",
                                    argv[2]);
        if (t->op == RP_HM_EQUAL) {
            t->value = rp_arena_strdup(a, argv[3]);
        } else {
            char err[400];
            t->re = rp_regex_compile(a, argv[3], caseless, err, sizeof(err));
            if (t->re == NULL)
                return rp_arena_strdup(a, err);
        }
    } else {
        return "invalid \"header\" test (header NAME, header ! NAME, or header NAME OP VALUE)";
    }
    if (!*name)
        return "empty header name";
    for (const char *p = name; *p; p++)
        if (!token_char((unsigned char)*p))
            return rp_arena_sprintf(a, "invalid header name \"%s\"", name);
    t->name = rp_arena_strdup(a, name);
    for (char *p = t->name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return NULL;
}

static const char *parse_body(rp_arena_t *a, rp_health_test_t *t, char **argv, size_t argc)
{
    int caseless;
    if (argc != 3)
        return "invalid \"body\" test (body ~ REGEX, body !~ REGEX, or ~* and !~* for "
               "caseless)";
    if (parse_op(argv[1], t, &caseless) != 0 || t->op != RP_HM_REGEX)
        return rp_arena_sprintf(a, "invalid operator \"%s\" in \"body\" (~, !~, ~* or !~*)",
                                argv[1]);
    char err[400];
    t->re = rp_regex_compile(a, argv[2], caseless, err, sizeof(err));
    return t->re ? NULL : rp_arena_strdup(a, err);
}

const char *rp_health_match_parse(rp_arena_t *a, rp_health_match_t *m, char **argv, size_t argc)
{
    rp_health_test_t t;
    memset(&t, 0, sizeof(t));
    const char *err;
    if (strcmp(argv[0], "status") == 0) {
        t.kind = RP_HM_STATUS;
        err = parse_status(a, &t, argv, argc);
    } else if (strcmp(argv[0], "header") == 0) {
        t.kind = RP_HM_HEADER;
        err = parse_header(a, &t, argv, argc);
    } else if (strcmp(argv[0], "body") == 0) {
        t.kind = RP_HM_BODY;
        err = parse_body(a, &t, argv, argc);
    } else {
        return rp_arena_sprintf(a, "unknown test \"%s\" (status, header or body)", argv[0]);
    }
    if (err)
        return err;
    t.text = (char *)join_args(a, argv, argc);
    *(rp_health_test_t *)rp_array_push(&m->tests) = t;
    return NULL;
}

/* ---- the response ---- */

enum { R_HEAD, R_BODY, R_DONE };

void rp_health_response_init(rp_health_response_t *r)
{
    memset(r, 0, sizeof(*r));
    rp_h1_response_parser_init(&r->head, RP_HEALTH_MAX_HEAD);
    r->state = R_HEAD;
    r->remaining = -1;
}

void rp_health_response_free(rp_health_response_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

static int fail(rp_health_response_t *r, const char *why)
{
    r->error = why;
    return -1;
}

/* The head is complete: what frames the body. */
static int head_done(rp_health_response_t *r)
{
    rp_h1_framing_t f;
    const char *why = NULL;
    if (rp_h1_framing(&r->head, r->buf + r->head_base, &f, &why) != 0)
        return fail(r, why ? why : "invalid response framing");
    r->body_off = r->head_base + r->head.pos;
    r->body_len = 0;
    int code = r->head.code;
    if (code == 204 || code == 304) {
        r->state = R_DONE;
        return 1;
    }
    if (f.chunked) {
        r->chunked = 1;
        rp_chunked_init(&r->chunk);
    } else {
        r->remaining = f.content_length; /* -1: until the close */
    }
    r->state = R_BODY;
    return 0;
}

/* Moves the body on with the raw bytes after what is decoded already. */
static int body_more(rp_health_response_t *r)
{
    uint32_t at = r->body_off + r->body_len;
    char *raw = r->buf + at;
    size_t rawlen = r->len - at;
    if (r->chunked) {
        size_t out = rawlen, used = 0;
        int rc = rp_chunked_decode(&r->chunk, raw, &out, &used);
        if (rc < 0)
            return fail(r, r->chunk.reason ? r->chunk.reason : "invalid chunked body");
        memmove(raw + out, raw + used, rawlen - used);
        r->len -= (uint32_t)(used - out);
        r->body_len += (uint32_t)out;
        if (rc == 1) {
            r->len = r->body_off + r->body_len; /* nothing after the trailers counts */
            r->state = R_DONE;
        }
    } else if (r->remaining >= 0) {
        size_t take = rawlen < (uint64_t)r->remaining ? rawlen : (size_t)r->remaining;
        r->body_len += (uint32_t)take;
        r->remaining -= (int64_t)take;
        r->len = r->body_off + r->body_len; /* bytes past the body are not ours */
        if (r->remaining == 0)
            r->state = R_DONE;
    } else {
        r->body_len += (uint32_t)rawlen;
    }
    if (r->state != R_DONE && r->body_len >= RP_HEALTH_MAX_BODY) {
        /* enough to judge: the rest is not read */
        r->body_len = RP_HEALTH_MAX_BODY;
        r->len = r->body_off + r->body_len;
        r->truncated = 1;
        r->state = R_DONE;
    }
    return r->state == R_DONE;
}

int rp_health_response_feed(rp_health_response_t *r, const char *data, size_t n)
{
    if (r->state == R_DONE)
        return 1;
    if (r->error)
        return -1;
    if ((size_t)r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < (size_t)r->len + n)
            cap *= 2;
        r->buf = rp_xrealloc(r->buf, cap);
        r->cap = (uint32_t)cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += (uint32_t)n;
    for (;;) {
        if (r->state == R_HEAD) {
            rp_h1_result_t rc =
                rp_h1_parse_response(&r->head, r->buf + r->head_base, r->len - r->head_base);
            if (rc == RP_H1_AGAIN)
                return 0;
            if (rc == RP_H1_ERROR)
                return fail(r, r->head.reason ? r->head.reason : "invalid response head");
            if (r->head.code == 101)
                return fail(r, "the server switched protocols");
            if (r->head.code < 200) {
                /* an interim response (100, 103): the final one follows */
                r->head_base += r->head.pos;
                rp_h1_response_parser_init(&r->head, RP_HEALTH_MAX_HEAD);
                continue;
            }
            int hd = head_done(r);
            if (hd != 0)
                return hd;
        }
        return body_more(r);
    }
}

int rp_health_response_end(rp_health_response_t *r)
{
    if (r->state == R_DONE)
        return 1;
    if (r->error)
        return -1;
    if (r->state == R_HEAD)
        return fail(r, r->len ? "the connection closed inside the response head"
                              : "the connection closed without a response");
    if (r->chunked || r->remaining > 0)
        return fail(r, "the connection closed before the end of the response body");
    r->state = R_DONE; /* a body delimited by the close */
    return 1;
}

/* ---- the verdict ---- */

static int status_in(const rp_health_test_t *t, int code)
{
    for (unsigned i = 0; i < t->nranges; i++)
        if (code >= t->ranges[i].lo && code <= t->ranges[i].hi)
            return 1;
    return 0;
}

/* Whether some header named t->name satisfies the plain (not negated) test. */
static int header_holds(const rp_health_test_t *t, const rp_health_response_t *r)
{
    const char *base = r->buf + r->head_base;
    for (unsigned i = 0; i < r->head.nheaders; i++) {
        const rp_h1_header_t *h = &r->head.headers[i];
        if (!rp_span_ieq(base, h->name, t->name))
            continue;
        const char *v = base + h->value.off;
        size_t n = h->value.len;
        switch (t->op) {
        case RP_HM_PRESENT:
            return 1;
        case RP_HM_EQUAL:
            if (strlen(t->value) == n && memcmp(t->value, v, n) == 0)
                return 1;
            break;
        default:
            if (rp_regex_match(t->re, v, n))
                return 1;
        }
    }
    return 0;
}

static int test_holds(const rp_health_test_t *t, const rp_health_response_t *r)
{
    int plain;
    switch (t->kind) {
    case RP_HM_STATUS:
        plain = status_in(t, r->head.code);
        break;
    case RP_HM_HEADER:
        plain = header_holds(t, r);
        break;
    default:
        plain = rp_regex_match(t->re, r->buf + r->body_off, r->body_len) > 0;
    }
    return t->negate ? !plain : plain;
}

int rp_health_match_check(const rp_health_match_t *m, const rp_health_response_t *r, char *why,
                          size_t whylen)
{
    int code = r->head.code;
    if (m == NULL) {
        if (code >= 200 && code < 400)
            return 1;
        snprintf(why, whylen, "status %d (a 2xx or 3xx one passes)", code);
        return 0;
    }
    const rp_health_test_t *t = m->tests.elts;
    for (size_t i = 0; i < m->tests.nelts; i++) {
        if (!test_holds(&t[i], r)) {
            snprintf(why, whylen, "status %d: failed \"%s\" of match \"%s\"", code, t[i].text,
                     m->name);
            return 0;
        }
    }
    return 1;
}
