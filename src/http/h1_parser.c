/*
 * HTTP/1.x request-head parser and chunked decoder. See h1_parser.h for the
 * contract. The state machine works a byte at a time but keeps its place, so a
 * head that arrives one byte per read costs the same total work as one that
 * arrives whole.
 */
#include "http/h1_parser.h"

#include <string.h>
#include <strings.h>

enum {
    S_START,   /* before the method; leading empty lines are skipped (RFC 9112 2.2) */
    S_START_LF, /* after CR of a leading empty line */
    S_METHOD,
    S_TARGET,
    S_VERSION,
    S_RL_LF,   /* after CR of the request line */
    S_HDR,     /* at the start of a header line */
    S_NAME,
    S_OWS,     /* after the colon, before the value */
    S_VALUE,
    S_HDR_LF,  /* after CR of a header line */
    S_END_LF,  /* after CR of the empty line */
    S_RVERSION, /* response: "HTTP/1.1" */
    S_RCODE,    /* response: three digits */
    S_RREASON,  /* response: reason phrase, ignored */
};

/* RFC 9110 tchar */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* Everything but the header table, whose entries are written before they are read: a
 * parser is made for every request and every upstream response, and the table is
 * most of its size. */
static void reset(rp_h1_parser_t *p)
{
    memset(p, 0, offsetof(rp_h1_parser_t, headers));
    memset(&p->nheaders, 0, sizeof(*p) - offsetof(rp_h1_parser_t, nheaders));
}

void rp_h1_parser_init(rp_h1_parser_t *p, uint32_t max_line, uint32_t max_head)
{
    reset(p);
    p->max_line = max_line;
    p->max_header = max_line;
    p->max_head = max_head;
    p->state = S_START;
}

void rp_h1_response_parser_init(rp_h1_parser_t *p, uint32_t max_head)
{
    rp_h1_parser_init(p, max_head, max_head);
    p->state = S_RVERSION;
    p->response = 1;
}

static rp_h1_result_t fail(rp_h1_parser_t *p, int status, const char *reason)
{
    /* whatever is wrong with a response head, the client is answered 502 */
    p->status = p->response ? 502 : status;
    p->reason = reason;
    return RP_H1_ERROR;
}

static int parse_version(rp_h1_parser_t *p, const char *v, size_t n)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return fail(p, 400, "malformed HTTP version"), -1;
    if (v[5] != '1')
        return fail(p, 505, "unsupported HTTP version"), -1;
    /* RFC 9110 2.5: a higher minor version of a major we speak is handled as our highest. */
    p->version = v[7] == '0' ? 10 : 11;
    return 0;
}

static rp_h1_result_t end_value(rp_h1_parser_t *p)
{
    rp_h1_header_t *h = &p->headers[p->nheaders - 1];
    h->value.len = p->value_end > h->value.off ? p->value_end - h->value.off : 0;
    return RP_H1_AGAIN;
}

rp_h1_result_t rp_h1_parse_request(rp_h1_parser_t *p, const char *buf, size_t len)
{
    /* Never look beyond the limit; the check below fires. In 64 bits: a limit near
     * UINT32_MAX must not wrap to a handful of bytes. */
    if ((uint64_t)len > (uint64_t)p->max_head + 4)
        len = (size_t)((uint64_t)p->max_head + 4);

    while (p->pos < len) {
        unsigned char c = (unsigned char)buf[p->pos];
        uint32_t i = p->pos++;

        if (p->pos > p->max_head)
            return fail(p, p->response ? 502 : p->state <= S_RL_LF ? 414 : 431,
                        p->response ? "response head too large" : "request head too large");

        switch (p->state) {
        case S_START:
            /* RFC 9112 2.2: ignore empty lines (CRLF or LF) before the request line */
            if (c == '\r')
                p->state = S_START_LF;
            if (c == '\r' || c == '\n')
                break;
            if (!tchar[c])
                return fail(p, 400, "invalid character in method");
            p->line_start = i;
            p->method.off = i;
            p->state = S_METHOD;
            break;

        case S_START_LF:
            if (c != '\n')
                return fail(p, 400, "bare CR before the request line");
            p->state = S_START;
            break;

        case S_METHOD:
            if (c == ' ') {
                p->method.len = i - p->method.off;
                p->target.off = i + 1;
                p->state = S_TARGET;
            } else if (!tchar[c]) {
                return fail(p, 400, "invalid character in method");
            }
            break;

        case S_TARGET:
            if (c == ' ') {
                p->target.len = i - p->target.off;
                if (p->target.len == 0)
                    return fail(p, 400, "empty request target");
                p->state = S_VERSION;
                p->value_end = i + 1; /* start of the version */
            } else if (c <= 0x20 || c == 0x7f) {
                if (c == '\r' || c == '\n')
                    return fail(p, 400, "request line without HTTP version");
                return fail(p, 400, "invalid character in request target");
            }
            break;

        case S_VERSION:
            if (c == '\r' || c == '\n') {
                if (parse_version(p, buf + p->value_end, i - p->value_end) != 0)
                    return RP_H1_ERROR;
                p->state = c == '\r' ? S_RL_LF : S_HDR;
                p->line_start = i + 1;
            } else if (c == ' ' || i - p->value_end >= 8) {
                return fail(p, 400, "malformed HTTP version");
            }
            break;

        case S_RL_LF:
            if (c != '\n')
                return fail(p, 400,
                            p->response ? "bare CR in status line" : "bare CR in request line");
            p->state = S_HDR;
            p->line_start = i + 1;
            break;

        case S_RVERSION:
            /* "HTTP/1.x " exactly; a backend speaking anything else is not trusted */
            if (i - p->line_start < 8) {
                if (c != "HTTP/1.x"[i - p->line_start] && i - p->line_start != 7)
                    return fail(p, 502, "invalid status line");
                if (i - p->line_start == 7) {
                    if (c < '0' || c > '9')
                        return fail(p, 502, "invalid status line");
                    p->version = c == '0' ? 10 : 11;
                }
            } else if (c != ' ') {
                return fail(p, 502, "invalid status line");
            } else {
                p->state = S_RCODE;
                p->code = 0;
                p->value_end = i + 1; /* start of the status code */
            }
            break;

        case S_RCODE:
            /* exactly three digits, 100 or more, then SP or the line end */
            if (i - p->value_end < 3) {
                if (c < '0' || c > '9')
                    return fail(p, 502, "invalid status code");
                p->code = p->code * 10 + (c - '0');
            } else if (p->code < 100 || (c != ' ' && c != '\r' && c != '\n')) {
                return fail(p, 502, "invalid status code");
            } else if (c == ' ') {
                p->state = S_RREASON;
                p->phrase.off = i + 1;
            } else {
                p->state = c == '\r' ? S_RL_LF : S_HDR;
                p->line_start = i + 1;
            }
            break;

        case S_RREASON:
            if (c == '\r' || c == '\n') {
                p->phrase.len = i - p->phrase.off;
                p->state = c == '\r' ? S_RL_LF : S_HDR;
                p->line_start = i + 1;
            } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return fail(p, 502, "invalid character in reason phrase");
            }
            break;

        case S_HDR:
            if (c == '\r') {
                p->state = S_END_LF;
            } else if (c == '\n') {
                return RP_H1_DONE;
            } else if (c == ' ' || c == '\t') {
                return fail(p, 400, p->nheaders ? "obsolete line folding"
                                                : "whitespace before the first header");
            } else if (!tchar[c]) {
                return fail(p, 400, "invalid character in header name");
            } else {
                if (p->nheaders == RP_H1_MAX_HEADERS)
                    return fail(p, 431, "too many headers");
                rp_h1_header_t *h = &p->headers[p->nheaders++];
                h->name.off = i;
                h->name.len = 0;
                p->line_start = i;
                p->state = S_NAME;
            }
            break;

        case S_NAME:
            if (c == ':') {
                rp_h1_header_t *h = &p->headers[p->nheaders - 1];
                h->name.len = i - h->name.off;
                h->value.off = i + 1;
                p->value_end = i + 1;
                p->state = S_OWS;
            } else if (c == ' ' || c == '\t') {
                return fail(p, 400, "whitespace before colon in header");
            } else if (!tchar[c]) {
                return fail(p, 400, "invalid character in header name");
            }
            break;

        case S_OWS:
            if (c == ' ' || c == '\t') {
                p->headers[p->nheaders - 1].value.off = i + 1;
                p->value_end = i + 1;
                break;
            }
            p->state = S_VALUE;
            /* fall through */
        case S_VALUE:
            if (c == '\r') {
                end_value(p);
                p->state = S_HDR_LF;
            } else if (c == '\n') {
                end_value(p);
                p->state = S_HDR;
            } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return fail(p, 400, "invalid character in header value");
            } else {
                if (c != ' ' && c != '\t')
                    p->value_end = i + 1;
                if (i - p->line_start >= p->max_header)
                    return fail(p, 431, "header line too long");
            }
            break;

        case S_HDR_LF:
            if (c != '\n')
                return fail(p, 400, "bare CR in header");
            p->state = S_HDR;
            break;

        case S_END_LF:
            if (c != '\n')
                return fail(p, 400, "bare CR at end of head");
            return RP_H1_DONE;
        }

        if (p->state >= S_METHOD && p->state <= S_VERSION && i - p->line_start >= p->max_line)
            return fail(p, 414, "request line too long");
        if (p->state >= S_RVERSION && i - p->line_start >= p->max_line)
            return fail(p, 502, "status line too long");
        if ((p->state == S_NAME || p->state == S_OWS) && i - p->line_start >= p->max_header)
            return fail(p, 431, "header line too long");
    }
    return RP_H1_AGAIN;
}

int rp_h1_token_list_has(const char *v, size_t len, const char *token)
{
    size_t n = strlen(token);
    const char *p = v, *end = v + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == n && strncasecmp(s, token, n) == 0)
            return 1;
    }
    return 0;
}

int rp_h1_framing(const rp_h1_parser_t *p, const char *buf, rp_h1_framing_t *f, const char **why)
{
    int bad = p->response ? 502 : 400;
    unsigned cls = 0, tes = 0, te_lists_chunked = 0;
    rp_span_t te = {0, 0};

    memset(f, 0, sizeof(*f));
    f->content_length = -1;
    f->host = -1;

#define FAIL(code, text)                                                                       \
    do {                                                                                       \
        *why = (text);                                                                         \
        return (code);                                                                         \
    } while (0)

    for (unsigned i = 0; i < p->nheaders; i++) {
        rp_span_t name = p->headers[i].name, value = p->headers[i].value;
        const char *v = buf + value.off;
        switch (name.len) {
        case 4:
            if (!p->response && rp_span_ieq(buf, name, "host")) {
                f->hosts++;
                f->host = (int)i;
            }
            break;
        case 6:
            /* RFC 9110 10.1.1: an expectation in HTTP/1.0 is ignored (and a 1xx must never
             * go to an HTTP/1.0 client) */
            if (!p->response && p->version == 11 && rp_span_ieq(buf, name, "expect")) {
                if (value.len != 12 || strncasecmp(v, "100-continue", 12) != 0)
                    FAIL(417, "unsupported Expect");
                f->expect_continue = 1;
            }
            break;
        case 10:
            if (rp_span_ieq(buf, name, "connection")) {
                if (rp_h1_token_list_has(v, value.len, "close"))
                    f->conn_close = 1;
                if (rp_h1_token_list_has(v, value.len, "keep-alive"))
                    f->conn_keepalive = 1;
                if (rp_h1_token_list_has(v, value.len, "upgrade"))
                    f->conn_upgrade = 1;
            }
            break;
        case 14:
            if (rp_span_ieq(buf, name, "content-length")) {
                if (cls++)
                    FAIL(bad, "several Content-Length headers");
                /* digits only: no sign, no hex, no list, at most 18 so it cannot overflow */
                if (value.len == 0 || value.len > 18)
                    FAIL(bad, "invalid Content-Length");
                int64_t n = 0;
                for (uint32_t k = 0; k < value.len; k++) {
                    if (v[k] < '0' || v[k] > '9')
                        FAIL(bad, "invalid Content-Length");
                    n = n * 10 + (v[k] - '0');
                }
                f->content_length = n;
            }
            break;
        case 17:
            if (rp_span_ieq(buf, name, "transfer-encoding")) {
                tes++;
                te = value;
                te_lists_chunked |= rp_h1_token_list_has(v, value.len, "chunked");
            }
            break;
        }
    }

    if (tes) {
        f->te = 1;
        if (p->version == 10)
            FAIL(bad, "Transfer-Encoding in an HTTP/1.0 message");
        if (cls)
            FAIL(bad, "both Content-Length and Transfer-Encoding");
        if (tes > 1 || te.len != 7 || strncasecmp(buf + te.off, "chunked", 7) != 0) {
            /* chunked must be the one and final coding; anything else we cannot frame */
            /* RFC 9112 6.3: chunked present but not alone and final is a 400; a coding we
             * do not know, without chunked, is a 501 */
            if (p->response || te_lists_chunked)
                FAIL(bad, "unsupported Transfer-Encoding");
            FAIL(501, "unsupported Transfer-Encoding");
        }
        f->chunked = 1;
    }
    if (!p->response) {
        if (f->hosts > 1)
            FAIL(400, "several Host headers");
        if (f->hosts == 0 && p->version == 11)
            FAIL(400, "HTTP/1.1 request without Host");
    }
#undef FAIL
    return 0;
}

int rp_span_ieq(const char *buf, rp_span_t s, const char *lower)
{
    size_t n = strlen(lower);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = buf[s.off + i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return 0;
    }
    return 1;
}

enum {
    C_SIZE,      /* hex digits */
    C_SIZE_WS,   /* whitespace after them: only ";" or the line end may follow */
    C_EXT,       /* chunk extension, ignored up to the line end */
    C_SIZE_LF,
    C_DATA,
    C_DATA_CR,
    C_DATA_LF,
    C_TRAILER,   /* at the start of a trailer line */
    C_TRAILER_LINE,
    C_TRAILER_LF,
    C_END_LF,
    C_DONE,
};

#define CHUNK_LINE_MAX 4096

void rp_chunked_init(rp_chunked_t *c)
{
    memset(c, 0, sizeof(*c));
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int rp_chunked_decode(rp_chunked_t *c, char *buf, size_t *len, size_t *consumed)
{
    size_t in = 0, out = 0, n = *len;

#define CFAIL(why)                                                                             \
    do {                                                                                       \
        c->reason = (why);                                                                     \
        *len = out;                                                                            \
        *consumed = in;                                                                        \
        return -1;                                                                             \
    } while (0)

    while (in < n && c->state != C_DONE) {
        if (c->state == C_DATA) {
            size_t take = n - in;
            if (take > c->remaining)
                take = (size_t)c->remaining;
            memmove(buf + out, buf + in, take);
            out += take;
            in += take;
            c->remaining -= take;
            if (c->remaining == 0)
                c->state = C_DATA_CR;
            continue;
        }
        unsigned char ch = (unsigned char)buf[in++];
        if (++c->line_len > CHUNK_LINE_MAX)
            CFAIL("chunk line too long");
        switch (c->state) {
        case C_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (c->remaining > (UINT64_MAX >> 4) || c->remaining > (1ULL << 59))
                    CFAIL("chunk size overflow");
                c->remaining = (c->remaining << 4) | (uint64_t)v;
                c->seen_digit = 1;
            } else if (!c->seen_digit) {
                CFAIL("invalid chunk size");
            } else if (ch == ' ' || ch == '\t') {
                c->state = C_SIZE_WS;
            } else if (ch == ';') {
                c->state = C_EXT;
            } else if (ch == '\r') {
                c->state = C_SIZE_LF;
            } else {
                CFAIL("invalid chunk size");
            }
            break;
        }
        case C_SIZE_WS:
            if (ch == ';')
                c->state = C_EXT;
            else if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch != ' ' && ch != '\t')
                CFAIL("invalid chunk size");
            break;
        case C_EXT:
            if (ch == '\r')
                c->state = C_SIZE_LF;
            else if (ch == '\n' || ch == 0 || ch == 0x7f)
                CFAIL("invalid chunk extension");
            break;
        case C_SIZE_LF:
            if (ch != '\n')
                CFAIL("bare CR in chunk size line");
            c->line_len = 0;
            c->seen_digit = 0;
            c->state = c->remaining ? C_DATA : C_TRAILER;
            break;
        case C_DATA_CR:
            if (ch != '\r')
                CFAIL("chunk data not followed by CRLF");
            c->state = C_DATA_LF;
            break;
        case C_DATA_LF:
            if (ch != '\n')
                CFAIL("chunk data not followed by CRLF");
            c->line_len = 0;
            c->state = C_SIZE;
            break;
        case C_TRAILER:
            if (ch == '\r') {
                c->state = C_END_LF;
            } else if (ch == '\n' || ch == ' ' || ch == '\t' || !(ch > 0x20 && ch < 0x7f)) {
                CFAIL("invalid trailer");
            } else {
                c->state = C_TRAILER_LINE;
            }
            break;
        case C_TRAILER_LINE:
            if (ch == '\r')
                c->state = C_TRAILER_LF;
            else if (ch == '\n' || ch == 0)
                CFAIL("invalid trailer");
            break;
        case C_TRAILER_LF:
            if (ch != '\n')
                CFAIL("bare CR in trailer");
            c->line_len = 0;
            c->state = C_TRAILER;
            break;
        case C_END_LF:
            if (ch != '\n')
                CFAIL("bare CR after last chunk");
            c->state = C_DONE;
            break;
        }
    }
#undef CFAIL
    *len = out;
    *consumed = in;
    return c->state == C_DONE ? 1 : 0;
}
