/*
 * gzip, as nginx's ngx_http_gzip_module: `gzip`, `gzip_types`, `gzip_min_length`,
 * `gzip_comp_level`, `gzip_proxied`, `gzip_vary`, `gzip_http_version`,
 * `gzip_disable` and `gzip_buffers`, with nginx's defaults and decisions. A
 * response is compressed when gzip is on for its location, its status is 200,
 * 403 or 404, it is not already encoded, its length (when known) is at least
 * gzip_min_length, its type is among gzip_types (text/html always), the client
 * accepts gzip (q > 0), its HTTP version is at least gzip_http_version, its
 * User-Agent is not disabled, and, for a request that came through a proxy (it
 * has Via), gzip_proxied allows it. The compressed response loses its
 * Content-Length and Accept-Ranges, its ETag is weakened (a strong one would be
 * a lie), and it gets Content-Encoding: gzip; with gzip_vary, "Vary:
 * Accept-Encoding" goes on every response that could have been compressed.
 *
 * The header filter decides; the body filter compresses as the body streams:
 * output goes on in pieces of the gzip_buffers size as soon as zlib produces
 * them, so memory stays at zlib's state and one piece whatever the body's size,
 * and the producer's back-pressure holds. A producer with nothing more for now
 * says so (RP_BODY_FLUSH) and what was compressed so far goes out at once
 * (Z_SYNC_FLUSH): a stream of events is not held back until the end.
 *
 * zlib's state (about 256k at the default window) is not allocated per request:
 * a worker keeps the states it made, by window and level, and resets one for the
 * next response, so a warm worker compresses without malloc.
 */
#include "http/request.h"
#include "core/time.h"
#include "core/log.h"
#include "http/grpc.h"
#include "http/h1_parser.h"
#include "http/variables.h"
#include "route/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define STATES_KEPT 16

/* gzip_proxied flags, as nginx's */
enum {
    PX_OFF = 0x0002,
    PX_EXPIRED = 0x0004,
    PX_NO_CACHE = 0x0008,
    PX_NO_STORE = 0x0010,
    PX_PRIVATE = 0x0020,
    PX_NO_LM = 0x0040,
    PX_NO_ETAG = 0x0080,
    PX_AUTH = 0x0100,
    PX_ANY = 0x0200,
};

typedef struct {
    int enable;
    int level;
    int vary;
    int http_version; /* 10, 11 */
    size_t min_length;
    unsigned proxied;
    size_t piece; /* the output piece: gzip_buffers' size */
    rp_array_t *types; /* rp_str_t, lowercase; NULL: text/html only */
    int any_type;
    rp_array_t *disable; /* pcre2_code *; NULL: none */
    int disable_msie6;
} gzip_conf_t;

/* A zlib state a worker keeps between responses. */
typedef struct gz_state_s {
    z_stream zs;
    int level, wbits, memlevel;
    unsigned char *out;
    size_t cap;
    struct gz_state_s *next;
} gz_state_t;

typedef struct {
    gz_state_t *st;
    size_t piece;
    int64_t in, out; /* bytes, for $gzip_ratio */
    unsigned dirty : 1; /* input since the last flush */
    unsigned done : 1;
} gz_ctx_t;

static gz_state_t *kept;
static unsigned nkept;

/* ---- configuration ---- */

static void *create_loc(rp_conf_t *cf)
{
    gzip_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->enable = RP_CONF_UNSET;
    c->level = RP_CONF_UNSET;
    c->vary = RP_CONF_UNSET;
    c->http_version = RP_CONF_UNSET;
    c->min_length = RP_CONF_UNSET_SIZE;
    c->proxied = 0;
    c->piece = RP_CONF_UNSET_SIZE;
    c->disable_msie6 = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    gzip_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->enable, p->enable, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->level, p->level, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->vary, p->vary, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->http_version, p->http_version, RP_CONF_UNSET, 11);
    RP_CONF_MERGE(c->min_length, p->min_length, RP_CONF_UNSET_SIZE, 20);
    RP_CONF_MERGE(c->piece, p->piece, RP_CONF_UNSET_SIZE, 8192);
    if (c->proxied == 0)
        c->proxied = p->proxied ? p->proxied : PX_OFF;
    if (c->types == NULL && !c->any_type) {
        c->types = p->types;
        c->any_type = p->any_type;
    }
    if (c->disable == NULL && c->disable_msie6 == RP_CONF_UNSET) {
        c->disable = p->disable;
        c->disable_msie6 = p->disable_msie6;
    }
    if (c->disable_msie6 == RP_CONF_UNSET)
        c->disable_msie6 = 0;
    return RP_CONF_OK;
}

static const char *set_comp_level(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    gzip_conf_t *c = conf;
    long v;
    if (c->level != RP_CONF_UNSET)
        return "duplicate directive";
    if (rp_parse_int(cf->argv[1], 9, &v) != 0 || v < 1)
        return rp_conf_error(cf, "invalid compression level \"%s\", it must be 1 to 9",
                             cf->argv[1]);
    c->level = (int)v;
    return RP_CONF_OK;
}

static const char *set_http_version(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    gzip_conf_t *c = conf;
    if (c->http_version != RP_CONF_UNSET)
        return "duplicate directive";
    if (strcmp(cf->argv[1], "1.0") == 0)
        c->http_version = 10;
    else if (strcmp(cf->argv[1], "1.1") == 0)
        c->http_version = 11;
    else
        return rp_conf_error(cf, "invalid value \"%s\", it must be \"1.0\" or \"1.1\"",
                             cf->argv[1]);
    return RP_CONF_OK;
}

static const char *set_types(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    gzip_conf_t *c = conf;
    if (c->types || c->any_type)
        return "duplicate directive";
    c->types = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
    rp_array_init(c->types, cf->arena, cf->argc, sizeof(rp_str_t));
    for (size_t i = 1; i < cf->argc; i++) {
        if (strcmp(cf->argv[i], "*") == 0) {
            c->any_type = 1;
            continue;
        }
        char *t = rp_arena_strdup(cf->arena, cf->argv[i]);
        for (char *q = t; *q; q++)
            if (*q >= 'A' && *q <= 'Z')
                *q = (char)(*q + 32);
        *(rp_str_t *)rp_array_push(c->types) = (rp_str_t){t, strlen(t)};
    }
    return RP_CONF_OK;
}

static const char *set_proxied(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    static const struct {
        const char *name;
        unsigned flag;
    } names[] = {
        {"off", PX_OFF},         {"expired", PX_EXPIRED},        {"no-cache", PX_NO_CACHE},
        {"no-store", PX_NO_STORE}, {"private", PX_PRIVATE},       {"no_last_modified", PX_NO_LM},
        {"no_etag", PX_NO_ETAG}, {"auth", PX_AUTH},              {"any", PX_ANY},
    };
    gzip_conf_t *c = conf;
    if (c->proxied)
        return "duplicate directive";
    for (size_t i = 1; i < cf->argc; i++) {
        size_t k = 0;
        while (k < sizeof(names) / sizeof(names[0]) && strcmp(names[k].name, cf->argv[i]) != 0)
            k++;
        if (k == sizeof(names) / sizeof(names[0]))
            return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[i]);
        c->proxied |= names[k].flag;
    }
    if ((c->proxied & PX_OFF) && c->proxied != PX_OFF)
        return rp_conf_error(cf, "\"off\" cannot be combined with other values");
    return RP_CONF_OK;
}

static const char *set_buffers(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    gzip_conf_t *c = conf;
    long n;
    size_t size;
    if (c->piece != RP_CONF_UNSET_SIZE)
        return "duplicate directive";
    if (rp_parse_int(cf->argv[1], 1024, &n) != 0 || n < 1)
        return rp_conf_error(cf, "invalid number of buffers \"%s\"", cf->argv[1]);
    if (rp_parse_size(cf->argv[2], &size) != 0 || size < 512 || size > (1u << 20))
        return rp_conf_error(cf, "invalid buffer size \"%s\"", cf->argv[2]);
    /* the stream needs one piece at a time; the number is nginx's and says nothing here */
    c->piece = size;
    return RP_CONF_OK;
}

static const char *set_disable(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    gzip_conf_t *c = conf;
    if (c->disable || c->disable_msie6 != RP_CONF_UNSET)
        return "duplicate directive";
    c->disable_msie6 = 0;
    for (size_t i = 1; i < cf->argc; i++) {
        if (strcmp(cf->argv[i], "msie6") == 0) {
            c->disable_msie6 = 1;
            continue;
        }
        char err[512];
        pcre2_code *re = rp_regex_compile(cf->arena, cf->argv[i], 1, err, sizeof(err));
        if (re == NULL)
            return rp_conf_error(cf, "%s", err);
        if (c->disable == NULL) {
            c->disable = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
            rp_array_init(c->disable, cf->arena, 2, sizeof(pcre2_code *));
        }
        *(pcre2_code **)rp_array_push(c->disable) = re;
    }
    return RP_CONF_OK;
}

/* ---- the decision ---- */

/* Whether an Accept-Encoding value accepts gzip: a "gzip" token whose q is not 0. */
static int accepts_gzip(rp_str_t ae)
{
    const char *p = ae.data, *end = ae.data + ae.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t tlen = (size_t)(p - tok);
        int gzip = (tlen == 4 && strncasecmp(tok, "gzip", 4) == 0);
        double q = 1;
        while (p < end && *p != ',') {
            if (*p == ';') {
                p++;
                while (p < end && (*p == ' ' || *p == '\t'))
                    p++;
                if (p + 1 < end && (*p == 'q' || *p == 'Q') && p[1] == '=') {
                    char num[16];
                    size_t k = 0;
                    p += 2;
                    while (p < end && k < sizeof(num) - 1 && ((*p >= '0' && *p <= '9') || *p == '.'))
                        num[k++] = *p++;
                    num[k] = '\0';
                    q = k ? strtod(num, NULL) : 0;
                }
                continue;
            }
            p++;
        }
        if (gzip)
            return q > 0;
    }
    return 0;
}

static int type_listed(const gzip_conf_t *c, rp_request_t *r)
{
    if (c->any_type)
        return 1;
    rp_header_t *ct = rp_http_out_header(r, "content-type");
    if (ct == NULL)
        return 0;
    size_t n = 0;
    while (n < ct->value.len && ct->value.data[n] != ';' && ct->value.data[n] != ' ')
        n++;
    rp_str_t t = {ct->value.data, n};
    if (n == 9 && strncasecmp(t.data, "text/html", 9) == 0)
        return 1; /* always, as nginx */
    if (c->types == NULL)
        return 0;
    const rp_str_t *v = c->types->elts;
    for (size_t i = 0; i < c->types->nelts; i++) {
        if (v[i].len == n && strncasecmp(v[i].data, t.data, n) == 0)
            return 1;
        /* a type family, "text/..." written with a star */
        if (v[i].len >= 2 && v[i].data[v[i].len - 1] == '*' && v[i].data[v[i].len - 2] == '/' &&
            n > v[i].len - 1 && strncasecmp(v[i].data, t.data, v[i].len - 1) == 0)
            return 1;
    }
    return 0;
}

static int has_token(rp_header_t *h, const char *token)
{
    return h && rp_h1_token_list_has(h->value.data, h->value.len, token);
}

/* gzip_proxied expired: the answer's Expires has passed, so no cache keeps it (nginx's
 * test; a mere Expires, often a date to cache until, would not do). An Expires that is
 * not a date counts as not expired, as in nginx. */
static int expired(rp_request_t *r)
{
    rp_header_t *e = rp_http_out_header(r, "expires");
    if (e == NULL)
        return 0;
    int64_t t = rp_http_time_parse(e->value.data, e->value.len);
    struct timeval now;
    rp_time_now(&now);
    return t >= 0 && t < (int64_t)now.tv_sec;
}

/* gzip_proxied for a request that came through a proxy (it has Via). */
static int proxied_ok(const gzip_conf_t *c, rp_request_t *r)
{
    unsigned p = c->proxied;
    if (p & PX_OFF)
        return 0;
    if (p & PX_ANY)
        return 1;
    if ((p & PX_AUTH) && rp_request_header(r, "authorization").data)
        return 1;
    if ((p & PX_EXPIRED) && expired(r))
        return 1;
    rp_header_t *cc = rp_http_out_header(r, "cache-control");
    if ((p & PX_NO_CACHE) && has_token(cc, "no-cache"))
        return 1;
    if ((p & PX_NO_STORE) && has_token(cc, "no-store"))
        return 1;
    if ((p & PX_PRIVATE) && has_token(cc, "private"))
        return 1;
    if ((p & PX_NO_LM) && rp_http_out_header(r, "last-modified") == NULL)
        return 1;
    if ((p & PX_NO_ETAG) && rp_http_out_header(r, "etag") == NULL)
        return 1;
    return 0;
}

/* The request's side of the decision (nginx's ngx_http_gzip_ok). */
static int request_ok(const gzip_conf_t *c, rp_request_t *r)
{
    rp_str_t ae = rp_request_header(r, "accept-encoding");
    if (ae.data == NULL || r->version < c->http_version || !accepts_gzip(ae))
        return 0;
    rp_str_t ua = rp_request_header(r, "user-agent");
    if (ua.data && c->disable_msie6) {
        /* "MSIE 4." to "MSIE 6." without "SV1", nginx's msie6 */
        const char *m = memmem(ua.data, ua.len, "MSIE ", 5);
        if (m && m + 6 < ua.data + ua.len && m[5] >= '4' && m[5] <= '6' && m[6] == '.' &&
            memmem(ua.data, ua.len, "SV1", 3) == NULL)
            return 0;
    }
    if (ua.data && c->disable) {
        pcre2_code **re = c->disable->elts;
        for (size_t i = 0; i < c->disable->nelts; i++)
            if (rp_regex_match(re[i], ua.data, ua.len))
                return 0;
    }
    if (rp_request_header(r, "via").data == NULL)
        return 1;
    return proxied_ok(c, r);
}

static void add_vary(rp_request_t *r)
{
    rp_header_t *v = rp_http_out_header(r, "vary");
    if (v && (rp_h1_token_list_has(v->value.data, v->value.len, "accept-encoding") ||
              rp_h1_token_list_has(v->value.data, v->value.len, "*")))
        return;
    rp_http_add_header(r, RP_STR("Vary"), RP_STR("Accept-Encoding"));
}

/* A compressed body is not the one a strong validator named (nginx's weak ETag). */
static void weaken_etag(rp_request_t *r)
{
    rp_header_t *e = rp_http_out_header(r, "etag");
    if (e == NULL || (e->value.len >= 2 && e->value.data[0] == 'W' && e->value.data[1] == '/'))
        return;
    if (e->value.len && e->value.data[0] == '"') {
        char *w = rp_arena_alloc(r->arena, e->value.len + 2);
        memcpy(w, "W/", 2);
        memcpy(w + 2, e->value.data, e->value.len);
        e->value = (rp_str_t){w, e->value.len + 2};
        return;
    }
    e->name.len = 0; /* not a valid entity tag: dropped */
}

/* ---- zlib states ---- */

static void *z_alloc(void *opaque, unsigned items, unsigned size)
{
    return rp_xcalloc(items, size);
}

static void z_free(void *opaque, void *p)
{
    free(p);
}

static gz_state_t *state_get(int level, int wbits, int memlevel, size_t piece)
{
    gz_state_t **pp = &kept;
    for (gz_state_t *s = kept; s; pp = &s->next, s = s->next) {
        if (s->level == level && s->wbits == wbits && s->memlevel == memlevel) {
            *pp = s->next;
            nkept--;
            if (deflateReset(&s->zs) == Z_OK && s->cap >= piece)
                return s;
            deflateEnd(&s->zs);
            free(s->out);
            free(s);
            break;
        }
    }
    gz_state_t *s = rp_xcalloc(1, sizeof(*s));
    s->zs.zalloc = z_alloc;
    s->zs.zfree = z_free;
    if (deflateInit2(&s->zs, level, Z_DEFLATED, wbits + 16, memlevel, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(s);
        return NULL;
    }
    s->level = level;
    s->wbits = wbits;
    s->memlevel = memlevel;
    s->cap = piece;
    s->out = rp_xmalloc(piece);
    return s;
}

static void state_put(gz_state_t *s)
{
    if (nkept >= STATES_KEPT) {
        deflateEnd(&s->zs);
        free(s->out);
        free(s);
        return;
    }
    s->next = kept;
    kept = s;
    nkept++;
}

static void ctx_cleanup(rp_request_t *r, void *data)
{
    gz_ctx_t *ctx = data;
    if (ctx->st)
        state_put(ctx->st);
    ctx->st = NULL;
}

/* ---- the filters ---- */

static int header_filter(rp_request_t *r, const rp_http_header_filter_t *self)
{
    gzip_conf_t *c = r->loc_conf[rp_http_gzip_module.index];
    gz_ctx_t *old = rp_http_get_ctx(r, rp_http_gzip_module);
    if (old) {
        /* A second head for the same request: the first was made but never sent (the
         * upstream failed before anything went out, and rampart answers 502 instead).
         * What was decided for the first head does not hold for this one; left in
         * place, the body filter would compress a body its fields call plain. */
        ctx_cleanup(r, old);
        old->done = 1;
        rp_http_set_ctx(r, rp_http_gzip_module, NULL);
    }
    /* a gRPC message is framed by its own protocol (and may be compressed by it):
     * a client cannot read it compressed again, whatever gzip_types says */
    if (!c->enable || (r->status != 200 && r->status != 403 && r->status != 404) ||
        rp_grpc_is_request(r) ||
        r->no_body || (r->out_length >= 0 && (size_t)r->out_length < c->min_length) ||
        !type_listed(c, r))
        return rp_http_next_header(r, self);
    rp_header_t *ce = rp_http_out_header(r, "content-encoding");
    if (ce && ce->value.len)
        return rp_http_next_header(r, self); /* encoded already: never twice */
    if (c->vary)
        add_vary(r);
    if (!request_ok(c, r))
        return rp_http_next_header(r, self);

    /* a small body needs no 32k window (nginx's sizing) */
    int wbits = 15, memlevel = 8;
    if (r->out_length > 0) {
        while (wbits > 9 && r->out_length < ((int64_t)1 << (wbits - 1)) - 262) {
            wbits--;
            memlevel--;
        }
        if (memlevel < 1)
            memlevel = 1;
    }
    gz_ctx_t *ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    if (r->head) {
        /* As nginx: a HEAD answer says what the GET would get (its gzip filter runs before
         * the answer becomes header-only), with no body to compress. */
        ctx->done = 1;
        rp_http_set_ctx(r, rp_http_gzip_module, ctx);
        goto fields;
    }
    ctx->st = state_get(c->level, wbits, memlevel, c->piece);
    if (ctx->st == NULL) {
        rp_log_error(RP_LOG_ALERT, 0, "deflateInit2() failed: the response goes uncompressed");
        return rp_http_next_header(r, self);
    }
    ctx->piece = c->piece;
    ctx->st->zs.next_out = ctx->st->out;
    ctx->st->zs.avail_out = (unsigned)ctx->piece;
    rp_http_cleanup_add(r, ctx_cleanup, ctx);
    rp_http_set_ctx(r, rp_http_gzip_module, ctx);

fields:
    rp_http_add_header(r, RP_STR("Content-Encoding"), RP_STR("gzip"));
    rp_header_t *ar = rp_http_out_header(r, "accept-ranges");
    if (ar)
        ar->name.len = 0; /* ranges of the compressed body cannot be served */
    weaken_etag(r);
    r->out_length = -1;
    return rp_http_next_header(r, self);
}

/* Sends what zlib produced into the piece; 0, or -1 when the client is gone. */
static int emit(rp_request_t *r, const rp_http_body_filter_t *self, gz_ctx_t *ctx, unsigned flags)
{
    z_stream *zs = &ctx->st->zs;
    size_t n = ctx->piece - zs->avail_out;
    struct iovec iov = {ctx->st->out, n};
    zs->next_out = ctx->st->out;
    zs->avail_out = (unsigned)ctx->piece;
    ctx->out += (int64_t)n;
    if (n == 0 && flags == 0)
        return 0;
    return rp_http_next_body(r, self, &iov, n ? 1 : 0, flags);
}

static int body_filter(rp_request_t *r, const rp_http_body_filter_t *self, const struct iovec *iov,
                       int iovcnt, unsigned flags)
{
    gz_ctx_t *ctx = rp_http_get_ctx(r, rp_http_gzip_module);
    if (ctx == NULL || ctx->done)
        return rp_http_next_body(r, self, iov, iovcnt, flags);
    z_stream *zs = &ctx->st->zs;
    for (int i = 0; i < iovcnt; i++) {
        zs->next_in = iov[i].iov_base;
        zs->avail_in = (unsigned)iov[i].iov_len;
        ctx->in += (int64_t)iov[i].iov_len;
        if (iov[i].iov_len)
            ctx->dirty = 1;
        while (zs->avail_in > 0) {
            if (deflate(zs, Z_NO_FLUSH) == Z_STREAM_ERROR)
                return -1;
            if (zs->avail_out == 0 && emit(r, self, ctx, 0) != 0)
                return -1;
        }
    }
    int mode = flags & RP_BODY_LAST ? Z_FINISH : (flags & RP_BODY_FLUSH) && ctx->dirty ? Z_SYNC_FLUSH
                                                                                       : Z_NO_FLUSH;
    if (mode == Z_NO_FLUSH)
        return flags & RP_BODY_FLUSH ? rp_http_next_body(r, self, NULL, 0, flags) : 0;
    for (;;) {
        int rc = deflate(zs, mode);
        if (rc == Z_STREAM_ERROR)
            return -1;
        if (zs->avail_out == 0) {
            if (emit(r, self, ctx, 0) != 0)
                return -1;
            continue;
        }
        if (mode == Z_FINISH && rc != Z_STREAM_END)
            continue;
        break;
    }
    ctx->dirty = 0;
    if (mode == Z_FINISH) {
        /* The state goes back for the next response once its last bytes went down (the
         * request may be gone when the end returns, so nothing of it is touched then). */
        gz_state_t *st = ctx->st;
        size_t n = ctx->piece - zs->avail_out;
        struct iovec last = {st->out, n};
        ctx->out += (int64_t)n;
        ctx->done = 1;
        ctx->st = NULL;
        int rc = rp_http_next_body(r, self, &last, n ? 1 : 0, RP_BODY_LAST);
        state_put(st);
        return rc;
    }
    return emit(r, self, ctx, RP_BODY_FLUSH);
}

/* $gzip_ratio: uncompressed to compressed size, "2.50", once the body is done. */
static int get_ratio(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    gz_ctx_t *ctx = rp_http_get_ctx(r, rp_http_gzip_module);
    if (ctx == NULL || !ctx->done || ctx->out == 0)
        return -1;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%.2f", (double)ctx->in / (double)ctx->out);
    *out = (rp_str_t){rp_arena_strndup(r->arena, buf, (size_t)n), (size_t)n};
    return 0;
}

static const rp_var_def_t variables[] = {
    {"gzip_ratio", get_ratio, NULL, RP_VAR_NOCACHE, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_header_filter(cf, RP_FILTER_GZIP, "gzip", header_filter);
    rp_http_add_body_filter(cf, RP_FILTER_GZIP, "gzip", body_filter);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define C(f) offsetof(gzip_conf_t, f)

static const rp_command_t commands[] = {
    {"gzip", ANYWHERE | RP_CTX_LIF, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, C(enable), NULL},
    {"gzip_types", ANYWHERE, 0, 1, RP_ARGS_ANY, set_types, RP_CONF_LOC, 0, NULL},
    {"gzip_min_length", ANYWHERE, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC, C(min_length), NULL},
    {"gzip_comp_level", ANYWHERE, 0, 1, 1, set_comp_level, RP_CONF_LOC, 0, NULL},
    {"gzip_proxied", ANYWHERE, 0, 1, RP_ARGS_ANY, set_proxied, RP_CONF_LOC, 0, NULL},
    {"gzip_vary", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, C(vary), NULL},
    {"gzip_http_version", ANYWHERE, 0, 1, 1, set_http_version, RP_CONF_LOC, 0, NULL},
    {"gzip_buffers", ANYWHERE, 0, 2, 2, set_buffers, RP_CONF_LOC, 0, NULL},
    {"gzip_disable", ANYWHERE, 0, 1, RP_ARGS_ANY, set_disable, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_gzip_module = {
    .name = "http_gzip",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
