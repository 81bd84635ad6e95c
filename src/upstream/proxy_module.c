/*
 * proxy_pass and the directives that shape the upstream request: which headers
 * are set or hidden, the timeouts, the largest response head. Also the target
 * rewriting rules, kept pure so unit tests can cover them. The proxy_ssl_*
 * directives of an https proxy_pass are in proxy_ssl_module.c.
 */
#include "upstream/proxy.h"
#include "http/http.h"
#include "http/variables.h"
#include "upstream/upstream_choose.h"
#include "upstream/upstream_ssl.h"
#include "upstream/attempt.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* proxy_pass lines whose host is resolved once the whole file is read: an upstream
 * block may come after the proxy_pass that names it, as in nginx. */
typedef struct {
    rp_proxy_loc_conf_t *plcf;
    rp_http_conf_ctx_t *ctx;
    char *url;
    const char *file;
    unsigned line;
} pending_t;

typedef struct {
    rp_array_t pending; /* pending_t */
    int keep_headers;   /* some value reads $upstream_http_NAME or $upstream_cookie_NAME */
    int keep_trailers;  /* ... $upstream_trailer_NAME */
    unsigned records;   /* RP_PROXY_REC_*: $upstream_header_time, $upstream_bytes_* */
} proxy_main_conf_t;

static void *create_main(rp_conf_t *cf)
{
    proxy_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->pending, cf->arena, 8, sizeof(pending_t));
    return m;
}

static void *create_loc(rp_conf_t *cf)
{
    rp_proxy_loc_conf_t *p = rp_arena_calloc(cf->arena, sizeof(*p));
    p->connect_timeout = RP_CONF_UNSET_MSEC;
    p->send_timeout = RP_CONF_UNSET_MSEC;
    p->read_timeout = RP_CONF_UNSET_MSEC;
    p->buffer_size = RP_CONF_UNSET_SIZE;
    p->limit_rate = RP_CONF_UNSET_SIZE;
    p->redirect = -1;
    p->cookie_domains = p->cookie_paths = p->cookie_flags = RP_CONF_UNSET_PTR;
    p->pass_request_headers = p->pass_request_body = -1;
    return p;
}

/* What every proxied request carries unless proxy_set_header names the header. */
static const struct {
    const char *name, *value;
} defaults[] = {
    {"Host", "$proxy_host"},
    {"X-Forwarded-For", "$proxy_add_x_forwarded_for"},
    {"X-Forwarded-Proto", "$scheme"},
    {"X-Forwarded-Host", "$host"},
    {"X-Request-Id", "$request_id"},
};

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_proxy_loc_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->connect_timeout, p->connect_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->send_timeout, p->send_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->read_timeout, p->read_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->buffer_size, p->buffer_size, RP_CONF_UNSET_SIZE, 8192);
    RP_CONF_MERGE(c->limit_rate, p->limit_rate, RP_CONF_UNSET_SIZE, 0);
    /* As nginx: a level with its own proxy_set_header (or proxy_hide_header) lines
     * replaces the inherited ones. */
    if (c->set_headers == NULL)
        c->set_headers = p->set_headers;
    /* proxy_hide_header and proxy_pass_header are inherited together, as nginx */
    if (c->hide_headers == NULL && c->pass_headers == NULL) {
        c->hide_headers = p->hide_headers;
        c->pass_headers = p->pass_headers;
    }
    const char *rerr = rp_proxy_merge_response(cf, p, c);
    if (rerr != RP_CONF_OK)
        return rerr;

    size_t nset = c->set_headers ? c->set_headers->nelts : 0;
    size_t ndef = sizeof(defaults) / sizeof(defaults[0]);
    c->headers = rp_arena_calloc(cf->arena, (nset + ndef) * sizeof(rp_proxy_header_t));
    c->nheaders = 0;
    for (size_t i = 0; i < nset; i++)
        c->headers[c->nheaders++] = ((rp_proxy_header_t *)c->set_headers->elts)[i];
    for (size_t d = 0; d < ndef; d++) {
        int named = 0;
        for (size_t i = 0; i < nset; i++)
            named |= strcasecmp(c->headers[i].name.data, defaults[d].name) == 0;
        if (named)
            continue;
        rp_proxy_header_t *h = &c->headers[c->nheaders++];
        h->name = (rp_str_t){defaults[d].name, strlen(defaults[d].name)};
        const char *err = rp_cv_compile(cf, defaults[d].value, &h->value);
        if (err)
            return err;
        h->request_id = strcmp(defaults[d].name, "X-Request-Id") == 0;
    }
    return RP_CONF_OK;
}

static const char *set_proxy_pass(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    if (p->host.data || (p->route && p->route->dynamic))
        return "is duplicate";
    const char *url = cf->argv[1];
    proxy_main_conf_t *m = cf->http_ctx->main_conf[rp_proxy_module.index];
    if (strchr(url, '$')) {
        /* chosen per request (upstream_choose.c); its TLS settings once they are merged */
        const char *err = rp_proxy_route_compile(cf, p, url, 0);
        if (err != RP_CONF_OK)
            return err;
        pending_t *pd = rp_array_push(&m->pending);
        pd->plcf = p;
        pd->ctx = cf->http_ctx;
        pd->url = cf->argv[1];
        pd->file = cf->file;
        pd->line = cf->line;
        return RP_CONF_OK;
    }
    if (strncasecmp(url, "https://", 8) == 0)
        p->https = 1;
    else if (strncasecmp(url, "http://", 7) != 0)
        return rp_conf_error(cf, "invalid URL prefix in \"%s\" (expected http:// or https://)",
                             url);
    const char *host = url + (p->https ? 8 : 7);
    const char *slash = strchr(host, '/');
    size_t hlen = slash ? (size_t)(slash - host) : strlen(host);
    if (hlen == 0)
        return rp_conf_error(cf, "no host in \"%s\"", url);
    if (memchr(host, '?', hlen) || memchr(host, '#', hlen) || memchr(host, '@', hlen))
        return rp_conf_error(cf, "invalid host in \"%s\"", url);
    char *name = rp_arena_strndup(cf->arena, host, hlen);
    p->host = (rp_str_t){name, hlen};
    p->url = cf->argv[1];

    pending_t *pd = rp_array_push(&m->pending);
    pd->plcf = p;
    pd->ctx = cf->http_ctx;
    pd->url = cf->argv[1];
    pd->file = cf->file;
    pd->line = cf->line;

    rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
    p->loc_name = clcf->name;
    if (slash) {
        p->has_uri = 1;
        p->uri = (rp_str_t){rp_arena_strdup(cf->arena, slash), strlen(slash)};
        if (clcf->kind == RP_LOC_REGEX || clcf->kind == RP_LOC_REGEX_CASELESS ||
            clcf->kind == RP_LOC_NAMED)
            return rp_conf_error(cf, "\"proxy_pass\" cannot have URI part in location given by "
                                     "regular expression, or inside named location");
        p->match_len = clcf->name_len;
    }
    return RP_CONF_OK;
}

static const char *set_header(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    const char *hname = cf->argv[1];
    /* The body's framing is rampart's to state; an empty Content-Length, the idiom of
     * nginx's auth_request locations (a subrequest has no body, and rampart sends no
     * length for none), changes nothing. Connection is rampart's too (use keepalive in
     * the upstream block), but nginx's WebSocket idiom sets it, "upgrade" or "close" by
     * a map of $http_upgrade: its value is read for the upgrade token only. */
    if (strcasecmp(hname, "content-length") == 0 && cf->argv[2][0] == '\0')
        return RP_CONF_OK;
    if (strcasecmp(hname, "content-length") == 0 || strcasecmp(hname, "transfer-encoding") == 0)
        return rp_conf_error(cf, "\"%s\" cannot be set: rampart writes it itself", hname);
    return rp_proxy_add_header(cf, p, hname, cf->argv[2]);
}

const char *rp_proxy_add_header(rp_conf_t *cf, rp_proxy_loc_conf_t *p, const char *name,
                                const char *value)
{
    const char *bad = rp_conf_check_header(cf, name, value);
    if (bad)
        return bad;
    if (p->set_headers == NULL) {
        p->set_headers = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(p->set_headers, cf->arena, 4, sizeof(rp_proxy_header_t));
    }
    rp_proxy_header_t *h = rp_array_push(p->set_headers);
    memset(h, 0, sizeof(*h));
    h->name = (rp_str_t){name, strlen(name)};
    h->upgrade = strcasecmp(name, "upgrade") == 0;
    h->connection = strcasecmp(name, "connection") == 0 && value[0] != '\0';
    return rp_cv_compile(cf, value, &h->value);
}

const char *rp_proxy_set_hide(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    if (p->hide_headers == NULL) {
        p->hide_headers = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(p->hide_headers, cf->arena, 4, sizeof(rp_str_t));
    }
    rp_str_t *s = rp_array_push(p->hide_headers);
    *s = (rp_str_t){cf->argv[1], strlen(cf->argv[1])};
    return RP_CONF_OK;
}

static const char *set_buffer_size(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    const char *err = rp_conf_set_size(cf, cmd, conf);
    if (err != RP_CONF_OK)
        return err;
    if (p->buffer_size < 1024 || p->buffer_size > 128 * 1024)
        return rp_conf_error(cf, "proxy_buffer_size must be between 1k and 128k");
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    if (rp_http_core_main_conf(cf->cycle) == NULL)
        return RP_CONF_OK;
    rp_http_add_phase_handler(cf, RP_PHASE_CONTENT, rp_proxy_handler);

    /* An upstream block of the proxy_pass host's name first (nginx's rule), wherever it
     * is in the file; otherwise the host:port itself. */
    proxy_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_proxy_module);
    pending_t *pd = m->pending.elts;
    for (size_t i = 0; i < m->pending.nelts; i++) {
        rp_proxy_loc_conf_t *p = pd[i].plcf;
        char *argv[] = {"proxy_pass", pd[i].url, NULL};
        cf->file = pd[i].file;
        cf->line = pd[i].line;
        cf->argv = argv;
        cf->http_ctx = pd[i].ctx;
        if (p->route && p->route->dynamic) {
            const char *err = rp_proxy_route_tls(cf, p, pd[i].ctx);
            if (err != RP_CONF_OK)
                return err;
            continue;
        }
        const char *name = p->host.data;
        const char *rerr = rp_upstream_resolve(cf, name, p->https, &p->upstream);
        if (rerr != RP_CONF_OK)
            return rerr;
        if (p->https) {
            /* the location's proxy_ssl_* settings, merged by now */
            rp_upstream_ssl_conf_t *sc = pd[i].ctx->loc_conf[rp_proxy_ssl_module.index];
            const char *err =
                rp_upstream_tls_get(cf, sc, p->upstream, name, p->upstream->http2, &p->tls);
            if (err != RP_CONF_OK)
                return err;
        }
    }
    cf->argv = NULL;
    m->keep_headers = rp_var_used(cf->cycle, "upstream_http_") ||
                      rp_var_used(cf->cycle, "upstream_cookie_");
    m->keep_trailers = rp_var_used(cf->cycle, "upstream_trailer_");
    m->records = (rp_var_used(cf->cycle, "upstream_header_time") ? RP_PROXY_REC_HEADER_TIME : 0) |
                 (rp_var_used(cf->cycle, "upstream_bytes_") ? RP_PROXY_REC_BYTES : 0);
    cf->http_ctx = NULL;
    return RP_CONF_OK;
}

/* Characters a path segment cannot carry raw (RFC 3986 plus what nginx escapes). */
static int must_escape(unsigned char ch)
{
    return ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '#' || ch == '%' || ch == '?' ||
           ch == '<' || ch == '>' || ch == '\\' || ch == '^' || ch == '`' || ch == '{' ||
           ch == '|' || ch == '}';
}

static rp_str_t configured_target(rp_request_t *r, const rp_proxy_loc_conf_t *plcf)
{
    /* as nginx: after `rewrite ... break` the whole changed URI is sent, even when
     * proxy_pass has a URI part */
    if ((!plcf->has_uri || r->location_rewritten) && r->uri_rewritten)
        return rp_proxy_uri(r->arena, 1, RP_STR(""), 0, r->request_uri, r->uri, r->args);
    return rp_proxy_uri(r->arena, plcf->has_uri, plcf->uri, plcf->match_len, r->request_uri, r->uri,
                        r->args);
}

/* Kept out of the way of a literal proxy_pass, which never gets here. */
static __attribute__((noinline, cold)) rp_str_t chosen_target(rp_request_t *r,
                                                              const rp_proxy_loc_conf_t *plcf)
{
    /* proxy_pass with variables and a URI part: that URI, as it is (nginx's rule) */
    const rp_proxy_choice_t *c = rp_proxy_choice(r, plcf);
    if (c && c->has_uri)
        return c->uri;
    return configured_target(r, plcf);
}

rp_str_t rp_proxy_target(rp_request_t *r, const rp_proxy_loc_conf_t *plcf)
{
    if (plcf->route)
        return chosen_target(r, plcf);
    return configured_target(r, plcf);
}

rp_str_t rp_proxy_uri(rp_arena_t *a, int has_uri, rp_str_t pass_uri, size_t match_len,
                      rp_str_t raw_target, rp_str_t uri, rp_str_t args)
{
    if (!has_uri) {
        rp_str_t t = raw_target;
        size_t skip = 0;
        if (t.len >= 7 && strncasecmp(t.data, "http://", 7) == 0)
            skip = 7;
        else if (t.len >= 8 && strncasecmp(t.data, "https://", 8) == 0)
            skip = 8;
        if (skip) {
            /* absolute-form: the authority went into Host; send origin-form */
            size_t i = skip;
            while (i < t.len && t.data[i] != '/' && t.data[i] != '?')
                i++;
            if (i == t.len)
                return RP_STR("/");
            if (t.data[i] == '?') {
                char *b = rp_arena_alloc(a, t.len - i + 2);
                b[0] = '/';
                memcpy(b + 1, t.data + i, t.len - i);
                return (rp_str_t){b, t.len - i + 1};
            }
            return (rp_str_t){t.data + i, t.len - i};
        }
        if (rp_str_eq(t, "*"))
            return RP_STR("*");
        return t;
    }

    size_t keep = match_len <= uri.len ? match_len : uri.len;
    const char *tail = uri.data + keep;
    size_t tlen = uri.len - keep, esc = 0;
    for (size_t i = 0; i < tlen; i++)
        esc += must_escape((unsigned char)tail[i]) ? 2 : 0;
    size_t n = pass_uri.len + tlen + esc + (args.len ? args.len + 1 : 0);
    char *b = rp_arena_alloc(a, n + 1), *o = b;
    memcpy(o, pass_uri.data, pass_uri.len);
    o += pass_uri.len;
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < tlen; i++) {
        unsigned char ch = (unsigned char)tail[i];
        if (must_escape(ch)) {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        } else {
            *o++ = (char)ch;
        }
    }
    if (args.len) {
        *o++ = '?';
        memcpy(o, args.data, args.len);
        o += args.len;
    }
    *o = '\0';
    return (rp_str_t){b, (size_t)(o - b)};
}

/* ---- the per-request context and its variables ---- */

/* $proxy_host of an upstream chosen per request; out of the way of a literal proxy_pass. */
static __attribute__((noinline, cold)) rp_proxy_ctx_t *
chosen_host(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_proxy_ctx_t *ctx)
{
    const rp_proxy_choice_t *c = rp_proxy_choice(r, plcf);
    if (c)
        ctx->host = c->host;
    return ctx;
}

rp_proxy_ctx_t *rp_proxy_ctx_new(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, void *exchange)
{
    rp_proxy_ctx_t *ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    ctx->host = plcf->host;
    ctx->exchange = exchange;
    rp_http_set_ctx(r, rp_proxy_module, ctx);
    if (plcf->route)
        return chosen_host(r, plcf, ctx);
    return ctx;
}

int rp_proxy_keeps_headers(const rp_request_t *r)
{
    proxy_main_conf_t *m = r->srv->ctx->main_conf[rp_proxy_module.index];
    return m->keep_headers;
}

unsigned rp_proxy_records(const rp_request_t *r)
{
    proxy_main_conf_t *m = r->srv->ctx->main_conf[rp_proxy_module.index];
    return m->records;
}

static rp_header_t *copy_fields(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    rp_header_t *copy = rp_arena_alloc(r->arena, (n ? n : 1) * sizeof(*copy));
    for (unsigned i = 0; i < n; i++) {
        copy[i].name = (rp_str_t){rp_arena_strndup(r->arena, h[i].name.data, h[i].name.len),
                                  h[i].name.len};
        copy[i].value = (rp_str_t){rp_arena_strndup(r->arena, h[i].value.data, h[i].value.len),
                                   h[i].value.len};
    }
    return copy;
}

void rp_proxy_keep_trailers(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    proxy_main_conf_t *m = r->srv->ctx->main_conf[rp_proxy_module.index];
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (!m->keep_trailers || ctx == NULL)
        return;
    ctx->trailers = copy_fields(r, h, n);
    ctx->ntrailers = n;
}

void rp_proxy_keep_headers(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (!rp_proxy_keeps_headers(r) || ctx == NULL)
        return;
    ctx->headers = copy_fields(r, h, n);
    ctx->nheaders = n;
}

/* A record of the proxy's context: v->data is its offset. */
static int get_record(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (ctx == NULL)
        return -1;
    *out = *(rp_str_t *)((char *)ctx + v->data);
    return out->len ? 0 : -1;
}

/* $upstream_bytes_received and _sent: the ended attempts' counts, then the count so far
 * of the one under way (nginx's are counted as the bytes go). v->data: which. */
static int get_bytes(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (ctx == NULL)
        return -1;
    rp_str_t done = v->data ? ctx->bytes_sent : ctx->bytes_received;
    if (ctx->live == NULL) {
        *out = done;
        return done.len ? 0 : -1;
    }
    long long now = (long long)(v->data ? ctx->live->bytes_out : ctx->live->bytes_in);
    size_t cap = done.len + 32;
    char *b = rp_arena_alloc(r->arena, cap);
    int k = done.len ? snprintf(b, cap, "%.*s, %lld", (int)done.len, done.data, now)
                     : snprintf(b, cap, "%lld", now);
    *out = (rp_str_t){b, (size_t)k};
    return 0;
}

static int get_upstream_http(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (ctx == NULL)
        return -1;
    return rp_http_find_field(ctx->headers, ctx->nheaders, v->arg, out);
}

static int get_upstream_trailer(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (ctx == NULL)
        return -1;
    return rp_http_find_field(ctx->trailers, ctx->ntrailers, v->arg, out);
}

/* $upstream_cookie_NAME: the value of the cookie NAME the upstream set (its first
 * Set-Cookie of that name; the value ends at ';'), as nginx. */
static int get_upstream_cookie(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_proxy_ctx_t *ctx = rp_proxy_ctx(r);
    if (ctx == NULL)
        return -1;
    for (unsigned i = 0; i < ctx->nheaders; i++) {
        rp_str_t n = ctx->headers[i].name, val = ctx->headers[i].value;
        if (n.len != 10 || !rp_str_ieq(n, "set-cookie"))
            continue;
        const char *p = val.data, *end = val.data + val.len;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (eq == NULL || (semi && semi < eq))
            continue;
        const char *ne = eq;
        while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        if ((size_t)(ne - p) != v->arg.len || strncasecmp(p, v->arg.data, v->arg.len) != 0)
            continue;
        const char *vs = eq + 1, *ve = semi ? semi : end;
        *out = (rp_str_t){vs, (size_t)(ve - vs)};
        return 0;
    }
    return -1;
}

#define REC(f) offsetof(rp_proxy_ctx_t, f)
#define NC RP_VAR_NOCACHE

static const rp_var_def_t variables[] = {
    {"upstream_addr", get_record, NULL, NC, REC(addr)},
    {"upstream_status", get_record, NULL, NC, REC(status)},
    {"upstream_connect_time", get_record, NULL, NC, REC(connect_time)},
    {"upstream_response_time", get_record, NULL, NC, REC(response_time)},
    {"proxy_host", get_record, NULL, 0, REC(host)},
    {"upstream_http_", get_upstream_http, NULL, RP_VAR_PREFIX | NC, 0},
    {"upstream_cookie_", get_upstream_cookie, NULL, RP_VAR_PREFIX | NC, 0},
    {"upstream_trailer_", get_upstream_trailer, NULL, RP_VAR_PREFIX | NC, 0},
    {"upstream_header_time", get_record, NULL, NC, REC(header_time)},
    {"upstream_bytes_received", get_bytes, NULL, NC, 0},
    {"upstream_bytes_sent", get_bytes, NULL, NC, 1},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define LOC(f) offsetof(rp_proxy_loc_conf_t, f)

static const rp_command_t commands[] = {
    {"proxy_pass", RP_CTX_LOCATION | RP_CTX_LIF, 0, 1, 1, set_proxy_pass, RP_CONF_LOC, 0, NULL},
    {"proxy_set_header", ANYWHERE, 0, 2, 2, set_header, RP_CONF_LOC, 0, NULL},
    {"proxy_hide_header", ANYWHERE, 0, 1, 1, rp_proxy_set_hide, RP_CONF_LOC, 0, NULL},
    {"proxy_connect_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     LOC(connect_timeout), NULL},
    {"proxy_send_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC, LOC(send_timeout),
     NULL},
    {"proxy_read_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC, LOC(read_timeout),
     NULL},
    {"proxy_buffer_size", ANYWHERE, 0, 1, 1, set_buffer_size, RP_CONF_LOC, LOC(buffer_size),
     NULL},
    {"proxy_limit_rate", ANYWHERE, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC, LOC(limit_rate),
     NULL},
    {"proxy_redirect", ANYWHERE, 0, 1, 2, rp_proxy_set_redirect, RP_CONF_LOC, 0, NULL},
    {"proxy_cookie_domain", ANYWHERE, 0, 1, 2, rp_proxy_set_cookie_rule, RP_CONF_LOC, 0, NULL},
    {"proxy_cookie_path", ANYWHERE, 0, 1, 2, rp_proxy_set_cookie_rule, RP_CONF_LOC, 0, NULL},
    {"proxy_cookie_flags", ANYWHERE, 0, 1, 9, rp_proxy_set_cookie_flags, RP_CONF_LOC, 0, NULL},
    {"proxy_pass_header", ANYWHERE, 0, 1, 1, rp_proxy_set_pass_header, RP_CONF_LOC, 0, NULL},
    {"proxy_ignore_headers", ANYWHERE, 0, 1, 9, rp_proxy_set_ignore_headers, RP_CONF_LOC, 0,
     NULL},
    {"proxy_pass_request_headers", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     LOC(pass_request_headers), NULL},
    {"proxy_pass_request_body", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     LOC(pass_request_body), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_proxy_module = {
    .name = "proxy",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
