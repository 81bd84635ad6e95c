/*
 * Telling clients about the limits (issue 12): the IETF RateLimit-Policy and
 * RateLimit response fields and Retry-After, per location:
 *
 *   limit_headers on|off;       RateLimit-Policy and RateLimit (default off)
 *   limit_retry_after on|off;   Retry-After on a 429 or 503 a limit refused (default on)
 *   $ratelimit_policy, $ratelimit   the fields' values, for logs
 *
 * The fields follow draft-ietf-httpapi-ratelimit-headers-10 (September 2025): both
 * are Structured Field Lists whose items are sf-strings naming a policy (the
 * limit's zone), with parameters q (quota), qu (quota unit, "concurrent-requests"
 * for limit_conn; the default "requests" is left out), w (window, seconds) in
 * RateLimit-Policy and r (remaining), t (seconds until quota returns) in RateLimit:
 *
 *   RateLimit-Policy: "api";q=100;w=60, "conn";q=10;qu="concurrent-requests"
 *   RateLimit: "api";r=42;t=17, "conn";r=9
 *
 * Every policy that decided on the request is listed in both fields, in the order
 * the limits ran: the draft defines RateLimit as a list of service limits, one per
 * policy, and leaves it to the client to honour the tightest. Retry-After (delta
 * seconds) is the largest wait among the limits that refused the request, so a
 * client that waits that long is not refused again by any of them for the same
 * reason; it is added to 429 and 503 only, and never over one already present.
 *
 * The limit modules report through rp_limit_report() (limit.h) during the preaccess
 * phase. The reports are kept in the request's arena, and only where something will
 * read them (the location sends a field, or a log uses the variables): elsewhere a
 * report costs a branch. A header filter writes the fields into the response head.
 */
#include "limit/limit_headers.h"
#include "http/request.h"
#include "http/variables.h"
#include "observe/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FILTER_RANK (RP_FILTER_HEADERS + 10) /* after add_header, before gzip */

typedef struct {
    int headers;
    int retry_after;
} loc_conf_t;

typedef struct {
    int for_log; /* a value of the configuration reads $ratelimit or $ratelimit_policy */
} main_conf_t;

typedef struct {
    rp_limit_report_t *reps;
    size_t n, cap;
} ctx_t;

/* ---- the fields' text ---- */

typedef struct {
    char *buf;
    size_t cap, len;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void putf(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(out_t *o, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    put(o, tmp, n < 0 ? 0 : (size_t)n);
}

/* An sf-string (RFC 9651 3.3.3): printable ASCII in quotes, with `"` and `\` escaped.
 * Other bytes cannot appear in one; they are written as '?'. */
static void put_string(out_t *o, const char *s)
{
    put(o, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put(o, "\\", 1);
        char ch = c >= 0x20 && c <= 0x7e ? (char)c : '?';
        put(o, &ch, 1);
    }
    put(o, "\"", 1);
}

static int64_t nonneg(int64_t v)
{
    return v < 0 ? 0 : v;
}

static size_t finish(out_t *o)
{
    if (o->cap > 0)
        o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
    return o->len;
}

size_t rp_limit_policy_field(const rp_limit_report_t *reps, size_t n, char *buf, size_t cap)
{
    out_t o = {buf, cap, 0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put(&o, ", ", 2);
        put_string(&o, reps[i].policy);
        putf(&o, ";q=%" PRId64, nonneg(reps[i].quota));
        if (reps[i].window > 0)
            putf(&o, ";w=%" PRId64, reps[i].window);
        else
            put(&o, ";qu=\"concurrent-requests\"", 25);
    }
    return finish(&o);
}

size_t rp_limit_field(const rp_limit_report_t *reps, size_t n, char *buf, size_t cap)
{
    out_t o = {buf, cap, 0};
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            put(&o, ", ", 2);
        put_string(&o, reps[i].policy);
        putf(&o, ";r=%" PRId64, nonneg(reps[i].remaining));
        if (reps[i].window > 0)
            putf(&o, ";t=%" PRId64, nonneg(reps[i].reset));
    }
    return finish(&o);
}

int64_t rp_limit_retry_after(const rp_limit_report_t *reps, size_t n)
{
    int64_t most = 0;
    for (size_t i = 0; i < n; i++) {
        if (!reps[i].refused)
            continue;
        int64_t t = reps[i].retry_after < 1 ? 1 : reps[i].retry_after;
        if (t > most)
            most = t;
    }
    return most;
}

/* ---- the reports of a request ---- */

static loc_conf_t *loc_conf(rp_request_t *r)
{
    return r->loc_conf ? rp_http_loc_conf(r, rp_limit_headers_module) : NULL;
}

void rp_limit_report(struct rp_request_s *r, const rp_limit_report_t *rep)
{
    rp_metrics_limit(rep->policy,
                     rep->refused ? RP_METRICS_LIMIT_REJECTED : RP_METRICS_LIMIT_PASSED);
    loc_conf_t *lc = loc_conf(r);
    if (lc == NULL || r->srv == NULL)
        return;
    main_conf_t *m = r->srv->ctx->main_conf[rp_limit_headers_module.index];
    if (!lc->headers && !lc->retry_after && !m->for_log)
        return;
    if (!lc->headers && !m->for_log && !rep->refused)
        return; /* only Retry-After is wanted, and this one does not refuse */
    ctx_t *ctx = rp_http_get_ctx(r, rp_limit_headers_module);
    if (ctx == NULL) {
        ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
        rp_http_set_ctx(r, rp_limit_headers_module, ctx);
    }
    for (size_t i = 0; i < ctx->n; i++) {
        if (ctx->reps[i].policy == rep->policy ||
            (ctx->reps[i].policy && rep->policy && strcmp(ctx->reps[i].policy, rep->policy) == 0)) {
            ctx->reps[i] = *rep; /* one item per policy: its latest word */
            return;
        }
    }
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 4;
        rp_limit_report_t *reps = rp_arena_alloc(r->arena, cap * sizeof(*reps));
        if (ctx->n)
            memcpy(reps, ctx->reps, ctx->n * sizeof(*reps));
        ctx->reps = reps;
        ctx->cap = cap;
    }
    ctx->reps[ctx->n++] = *rep;
}

/* A field's value in the request's arena, or a NULL string when there are no reports. */
static rp_str_t field_text(rp_request_t *r, const ctx_t *ctx,
                           size_t (*fmt)(const rp_limit_report_t *, size_t, char *, size_t))
{
    if (ctx == NULL || ctx->n == 0)
        return (rp_str_t){NULL, 0};
    char small[256];
    size_t len = fmt(ctx->reps, ctx->n, small, sizeof(small));
    char *text = rp_arena_alloc(r->arena, len + 1);
    if (len < sizeof(small))
        memcpy(text, small, len + 1);
    else
        fmt(ctx->reps, ctx->n, text, len + 1);
    return (rp_str_t){text, len};
}

static int header_filter(rp_request_t *r, const rp_http_header_filter_t *self)
{
    ctx_t *ctx = rp_http_get_ctx(r, rp_limit_headers_module);
    loc_conf_t *lc = loc_conf(r);
    if (ctx == NULL || ctx->n == 0 || lc == NULL)
        return rp_http_next_header(r, self);
    if (lc->headers) {
        rp_http_add_header(r, RP_STR("RateLimit-Policy"),
                           field_text(r, ctx, rp_limit_policy_field));
        rp_http_add_header(r, RP_STR("RateLimit"), field_text(r, ctx, rp_limit_field));
    }
    int64_t wait;
    if (lc->retry_after && (r->status == 429 || r->status == 503) &&
        (wait = rp_limit_retry_after(ctx->reps, ctx->n)) > 0 &&
        rp_http_out_header(r, "retry-after") == NULL) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%" PRId64, wait);
        rp_http_add_header(r, RP_STR("Retry-After"),
                           (rp_str_t){rp_arena_strndup(r->arena, buf, (size_t)n), (size_t)n});
    }
    return rp_http_next_header(r, self);
}

/* ---- $ratelimit_policy, $ratelimit ---- */

static int get_field(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    ctx_t *ctx = rp_http_get_ctx(r, rp_limit_headers_module);
    *out = field_text(r, ctx, v->data ? rp_limit_field : rp_limit_policy_field);
    return out->data ? 0 : -1;
}

static const rp_var_def_t variables[] = {
    {"ratelimit_policy", get_field, NULL, RP_VAR_NOCACHE, 0},
    {"ratelimit", get_field, NULL, RP_VAR_NOCACHE, 1},
    {NULL, NULL, NULL, 0, 0},
};

/* ---- configuration ---- */

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(main_conf_t));
}

static void *create_loc(rp_conf_t *cf)
{
    loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->headers = RP_CONF_UNSET;
    c->retry_after = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    loc_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->headers, p->headers, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->retry_after, p->retry_after, RP_CONF_UNSET, 1);
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_limit_headers_module);
    if (m == NULL)
        return RP_CONF_OK; /* no http block */
    m->for_log = rp_var_used(cf->cycle, "ratelimit");
    rp_http_add_header_filter(cf, FILTER_RANK, "limit_headers", header_filter);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"limit_headers", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(loc_conf_t, headers), NULL},
    {"limit_retry_after", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(loc_conf_t, retry_after), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_limit_headers_module = {
    .name = "limit_headers",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
