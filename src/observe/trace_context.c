/*
 * W3C Trace Context at the gateway (https://www.w3.org/TR/trace-context/).
 *
 * `trace_context off | extract | inject | propagate` (nginx's otel_trace_context
 * words, with off for its ignore) says what rampart does with a request's context:
 * extract reads the client's traceparent (continuing its trace, else starting one) but
 * leaves the fields that go upstream alone; inject starts a new trace for every
 * request and sends it upstream in place of the client's; propagate (the default, as
 * a gateway should) continues the client's trace, or starts one when it sent none or
 * an invalid one, and sends rampart's span upstream as the parent-id, with the
 * client's tracestate when both were valid. off makes no context at all: $trace_id,
 * $span_id and $parent_span_id are empty and the client's fields pass as any other.
 * `trace_context_sampled on|off` is the sampled flag of a trace rampart starts; a
 * continued trace keeps the client's.
 *
 * Cost: nothing until something asks (a variable, the proxy, Lua). Then one pass over
 * the request's fields and three or four draws of the worker's xoshiro generator,
 * written as hex into the request itself: no allocation (but for the rare tracestate
 * sent in several fields, joined in request memory), no system call.
 */
#include "observe/trace_context.h"
#include "core/random.h"
#include "http/http.h"
#include "http/variables.h"

#include <string.h>

typedef struct {
    int mode;    /* RP_TRACE_CTX_*; RP_CONF_UNSET until merged */
    int sampled; /* trace_context_sampled */
} trace_loc_conf_t;

static const char hex[] = "0123456789abcdef";

/* ---- parsing (pure) ---------------------------------------------------------------------- */

static int lowhex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return 1;
}

static int all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return 0;
    return 1;
}

static unsigned hexval(char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

int rp_trace_parse_traceparent(const char *s, size_t len, char *trace_id, char *parent_id,
                               unsigned *flags)
{
    /* version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 */
    if (len < 55 || !lowhex(s, 2) || (s[0] == 'f' && s[1] == 'f'))
        return -1;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return -1;
    if (!lowhex(s + 3, 32) || !lowhex(s + 36, 16) || !lowhex(s + 53, 2))
        return -1;
    if (s[0] == '0' && s[1] == '0') {
        if (len != 55)
            return -1;
    } else if (len > 55 && s[55] != '-') {
        return -1; /* a later version may add fields, each after a "-" */
    }
    if (all_zero(s + 3, 32) || all_zero(s + 36, 16))
        return -1;
    memcpy(trace_id, s + 3, 32);
    memcpy(parent_id, s + 36, 16);
    *flags = hexval(s[53]) << 4 | hexval(s[54]);
    return 0;
}

static int lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static int key_char(char c)
{
    return lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/*
 * key = simple-key / multi-tenant-key
 * simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * multi-tenant-key = tenant-id "@" system-id
 * tenant-id = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 * system-id = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
 */
static int valid_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (at == NULL) {
        if (n == 0 || n > 256 || !lcalpha(k[0]))
            return 0;
        for (size_t i = 1; i < n; i++)
            if (!key_char(k[i]))
                return 0;
        return 1;
    }
    size_t t = (size_t)(at - k), sys = n - t - 1;
    if (t == 0 || t > 241 || sys == 0 || sys > 14)
        return 0;
    if (!(lcalpha(k[0]) || (k[0] >= '0' && k[0] <= '9')) || !lcalpha(at[1]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (k + i != at && !key_char(k[i]))
            return 0;
    return 1;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C /
 * %x3E-7E (printable ASCII but "," and "=") */
static int valid_value(const char *v, size_t n)
{
    if (n == 0 || n > 256 || v[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
            return 0;
    }
    return 1;
}

int rp_trace_tracestate_valid(const char *s, size_t len)
{
    struct {
        const char *p;
        size_t n;
    } keys[32];
    unsigned nkeys = 0;
    size_t i = 0;
    while (i <= len) {
        size_t end = i;
        while (end < len && s[end] != ',')
            end++;
        size_t a = i, b = end;
        while (a < b && (s[a] == ' ' || s[a] == '\t'))
            a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t'))
            b--;
        if (a < b) { /* an empty list-member is allowed and counts for nothing */
            const char *eq = memchr(s + a, '=', b - a);
            if (eq == NULL || nkeys == 32)
                return 0;
            size_t kn = (size_t)(eq - (s + a));
            if (!valid_key(s + a, kn) || !valid_value(eq + 1, (size_t)(s + b - eq - 1)))
                return 0;
            for (unsigned k = 0; k < nkeys; k++)
                if (keys[k].n == kn && memcmp(keys[k].p, s + a, kn) == 0)
                    return 0;
            keys[nkeys].p = s + a;
            keys[nkeys].n = kn;
            nkeys++;
        }
        i = end + 1;
    }
    return 1;
}

/* ---- the request's context --------------------------------------------------------------- */

/* 16 lower-case hex digits of v, 8 at a time without a loop over digits (SWAR): every
 * nibble spread into a byte of its own, then '0' or 'a' - 10 added to all 8 at once. */
void rp_trace_hex64(char *out, uint64_t v)
{
    for (int half = 0; half < 2; half++) {
        uint64_t x = (uint32_t)(v >> (32 - 32 * half));
        x = ((x & 0xFFFF0000ull) << 16) | (x & 0xFFFFull);
        x = ((x & 0x0000FF000000FF00ull) << 8) | (x & 0x000000FF000000FFull);
        x = ((x & 0x00F000F000F000F0ull) << 4) | (x & 0x000F000F000F000Full);
        uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
        x += 0x3030303030303030ull + letters * 0x27; /* 'a' - '0' - 10 */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        x = __builtin_bswap64(x); /* the first digit is the most significant */
#endif
        memcpy(out + 8 * half, &x, 8);
    }
}

static uint64_t nonzero_random(void)
{
    uint64_t v;
    do
        v = rp_random();
    while (v == 0);
    return v;
}

/* The client's tracestate, its fields joined by "," as the spec says a list split over
 * several fields is to be read; empty when it sent none or an invalid one. */
static rp_str_t incoming_tracestate(rp_request_t *r)
{
    rp_str_t one = RP_NULL_STR;
    unsigned n = 0;
    size_t total = 0;
    for (unsigned i = 0; i < r->nheaders; i++) {
        rp_str_t name = r->headers[i].name;
        if (name.len == 10 && rp_str_ieq(name, "tracestate")) {
            one = r->headers[i].value;
            total += one.len + 1;
            n++;
        }
    }
    if (n > 1) {
        char *p = rp_arena_alloc(r->arena, total);
        size_t off = 0;
        for (unsigned i = 0; i < r->nheaders; i++) {
            rp_str_t name = r->headers[i].name, v = r->headers[i].value;
            if (name.len == 10 && rp_str_ieq(name, "tracestate")) {
                if (off)
                    p[off++] = ',';
                memcpy(p + off, v.data, v.len);
                off += v.len;
            }
        }
        one = (rp_str_t){p, off};
    }
    if (one.len == 0 || !rp_trace_tracestate_valid(one.data, one.len))
        return RP_NULL_STR;
    return one;
}

static const trace_loc_conf_t *loc_conf(rp_request_t *r)
{
    void **lc = r->loc_conf ? r->loc_conf : r->srv ? r->srv->ctx->loc_conf : NULL;
    return lc ? lc[rp_trace_context_module.index] : NULL;
}

static void make(rp_request_t *r)
{
    const trace_loc_conf_t *tc = loc_conf(r);
    int mode = tc ? tc->mode : RP_TRACE_CTX_PROPAGATE;
    int sampled = tc ? tc->sampled : 1;
    r->trace.mode = (uint8_t)mode;
    if (mode == RP_TRACE_CTX_OFF) {
        r->trace.state = RP_TRACE_OFF;
        return;
    }

    char *tp = r->trace.traceparent;
    unsigned flags = sampled ? 1 : 0;
    r->trace.has_parent = 0;
    r->trace.tracestate = RP_NULL_STR;
    if (mode != RP_TRACE_CTX_INJECT) {
        rp_str_t v = RP_NULL_STR;
        unsigned n = 0;
        for (unsigned i = 0; i < r->nheaders; i++) {
            rp_str_t name = r->headers[i].name;
            if (name.len == 11 && rp_str_ieq(name, "traceparent")) {
                v = r->headers[i].value;
                n++;
            }
        }
        /* Two traceparent fields cannot both be the caller's: the spec's answer to any
         * doubt is a new trace. */
        unsigned in_flags;
        if (n == 1 &&
            rp_trace_parse_traceparent(v.data, v.len, tp + 3, r->trace.parent, &in_flags) == 0) {
            r->trace.has_parent = 1;
            flags = in_flags & 1; /* the only flag of version 00 */
            r->trace.tracestate = incoming_tracestate(r);
        }
    }
    if (!r->trace.has_parent) {
        /* 16 random bytes; not all zero, which the spec forbids */
        uint64_t a = rp_random(), b = a ? rp_random() : nonzero_random();
        rp_trace_hex64(tp + 3, a);
        rp_trace_hex64(tp + 19, b);
    }
    memcpy(tp, "00-", 3);
    tp[35] = '-';
    rp_trace_hex64(tp + 36, nonzero_random());
    tp[52] = '-';
    tp[53] = '0';
    tp[54] = hex[flags & 15];
    tp[55] = '\0';
    r->trace.state = RP_TRACE_MADE;
}

int rp_trace_get(rp_request_t *r)
{
    if (r->trace.state == RP_TRACE_UNSET)
        make(r);
    return r->trace.state == RP_TRACE_MADE ? 0 : -1;
}

int rp_trace_upstream(rp_request_t *r, rp_str_t *traceparent, rp_str_t *tracestate)
{
    if (rp_trace_get(r) != 0 || r->trace.mode == RP_TRACE_CTX_EXTRACT)
        return 0;
    *traceparent = (rp_str_t){r->trace.traceparent, 55};
    *tracestate = r->trace.tracestate;
    return 1;
}

void rp_trace_inherit(rp_request_t *sub, rp_request_t *parent)
{
    if (rp_trace_get(parent) != 0)
        return; /* the subrequest decides by its own location */
    sub->trace = parent->trace;
    memcpy(sub->trace.parent, parent->trace.traceparent + 36, 16);
    sub->trace.has_parent = 1;
    rp_trace_hex64(sub->trace.traceparent + 36, nonzero_random());
    rp_str_t ts = parent->trace.tracestate;
    if (ts.len) {
        char *p = rp_arena_alloc(sub->arena, ts.len); /* the parent may end first */
        memcpy(p, ts.data, ts.len);
        sub->trace.tracestate = (rp_str_t){p, ts.len};
    }
}

/* ---- variables --------------------------------------------------------------------------- */

static int get_trace_id(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = rp_trace_id(r);
    return out->data ? 0 : -1;
}

static int get_span_id(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = rp_trace_span_id(r);
    return out->data ? 0 : -1;
}

static int get_parent_span_id(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    if (rp_trace_get(r) != 0 || !r->trace.has_parent)
        return -1;
    *out = (rp_str_t){r->trace.parent, 16};
    return 0;
}

static const rp_var_def_t variables[] = {
    {"trace_id", get_trace_id, NULL, 0, 0},
    {"span_id", get_span_id, NULL, 0, 0},
    {"parent_span_id", get_parent_span_id, NULL, 0, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

/* ---- configuration ----------------------------------------------------------------------- */

static void *create_loc(rp_conf_t *cf)
{
    trace_loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->mode = RP_CONF_UNSET;
    c->sampled = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    trace_loc_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->mode, p->mode, RP_CONF_UNSET, RP_TRACE_CTX_PROPAGATE);
    RP_CONF_MERGE(c->sampled, p->sampled, RP_CONF_UNSET, 1);
    return RP_CONF_OK;
}

static const char *set_trace_context(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    trace_loc_conf_t *c = conf;
    static const char *const names[] = {"off", "extract", "inject", "propagate"};
    if (c->mode != RP_CONF_UNSET)
        return "duplicate directive";
    for (int i = 0; i < 4; i++) {
        if (strcmp(cf->argv[1], names[i]) == 0) {
            c->mode = i;
            return RP_CONF_OK;
        }
    }
    return rp_conf_error(cf, "invalid value \"%s\", it must be off, extract, inject or propagate",
                         cf->argv[1]);
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"trace_context", ANYWHERE, 0, 1, 1, set_trace_context, RP_CONF_LOC, 0, NULL},
    {"trace_context_sampled", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(trace_loc_conf_t, sampled), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_trace_context_module = {
    .name = "trace_context",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
};
