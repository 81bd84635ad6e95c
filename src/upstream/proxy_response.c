/*
 * What an upstream's response head becomes for the client, by nginx's directives:
 * proxy_redirect rewrites Location and Refresh, proxy_cookie_domain and
 * proxy_cookie_path rewrite the attributes of Set-Cookie, proxy_pass_header lets
 * through a field the proxy hides by default (the X-Accel-* controls),
 * proxy_ignore_headers turns the controls off, X-Accel-Limit-Rate sets the
 * response's rate and X-Accel-Redirect sends the request elsewhere, the upstream's
 * answer dropped. Kept apart from the exchanges (proxy.c, proxy_h2.c): they call
 * rp_proxy_response_field once per field, and most fields cost a length switch.
 */
#include "upstream/proxy.h"
#include "http/h1_parser.h"
#include "http/http.h"
#include "upstream/upstream_choose.h"
#include "net/conn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void rp_http_limit_rate_set(rp_request_t *r, size_t rate);
extern rp_module_t rp_grpc_module;

/* ---- the rules ---- */

/* value[0..prefix) + replacement + value[prefix + len..], in request memory. */
static rp_str_t splice(rp_request_t *r, rp_str_t value, size_t prefix, size_t len, rp_str_t repl)
{
    size_t n = value.len - len + repl.len;
    char *b = rp_arena_alloc(r->arena, n + 1);
    memcpy(b, value.data, prefix);
    memcpy(b + prefix, repl.data, repl.len);
    memcpy(b + prefix + repl.len, value.data + prefix + len, value.len - prefix - len);
    b[n] = '\0';
    return (rp_str_t){b, n};
}

/* Applies the first of the rules that matches value from prefix on: 1 with *out, or 0. */
static int rewrite(rp_request_t *r, const rp_array_t *rules, rp_str_t value, size_t prefix,
                   rp_str_t *out)
{
    const rp_proxy_rewrite_t *pr = rules->elts;
    for (size_t i = 0; i < rules->nelts; i++) {
        rp_str_t rest = {value.data + prefix, value.len - prefix};
        if (pr[i].regex) {
            if (!rp_http_regex_exec(r, pr[i].regex, rest))
                continue;
            *out = splice(r, value, prefix, rest.len, rp_cv_eval(r, &pr[i].replacement));
            return 1;
        }
        rp_str_t pat = pr[i].pattern.has_vars ? rp_cv_eval(r, &pr[i].pattern) : pr[i].pattern.value;
        if (pr[i].domain) {
            size_t p = prefix;
            if (rest.len && rest.data[0] == '.') {
                p++;
                rest.data++;
                rest.len--;
            }
            if (pat.len != rest.len || strncasecmp(pat.data, rest.data, rest.len) != 0)
                continue;
            *out = splice(r, value, p, rest.len, rp_cv_eval(r, &pr[i].replacement));
            return 1;
        }
        if (pat.len > rest.len || memcmp(pat.data, rest.data, pat.len) != 0)
            continue;
        *out = splice(r, value, prefix, pat.len, rp_cv_eval(r, &pr[i].replacement));
        return 1;
    }
    return 0;
}

/* The first proxy_cookie_flags rule naming the cookie, or NULL. */
static const rp_proxy_cookie_flags_t *flags_for(rp_request_t *r, const rp_array_t *rules,
                                                rp_str_t name)
{
    const rp_proxy_cookie_flags_t *f = rules->elts;
    for (size_t i = 0; i < rules->nelts; i++) {
        if (f[i].regex) {
            if (rp_http_regex_exec(r, f[i].regex, name))
                return &f[i];
            continue;
        }
        rp_str_t want = f[i].name.has_vars ? rp_cv_eval(r, &f[i].name) : f[i].name.value;
        if (want.len == name.len && strncasecmp(want.data, name.data, name.len) == 0)
            return &f[i];
    }
    return NULL;
}

/* Set-Cookie with its Domain and Path attributes rewritten and its flags set as the
 * location says; 0 when nothing changed. */
static int rewrite_cookie(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_str_t v,
                          rp_str_t *out)
{
    enum { MAX_ATTRS = 32 };
    rp_str_t key[MAX_ATTRS + 3], val[MAX_ATTRS + 3];
    unsigned n = 0, changed = 0;
    const char *p = v.data, *end = v.data + v.len;
    while (p < end && n < MAX_ATTRS) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *e = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *ke = eq ? eq : e;
        while (ke > p && (ke[-1] == ' ' || ke[-1] == '\t'))
            ke--;
        key[n] = (rp_str_t){p, (size_t)(ke - p)};
        if (eq) {
            const char *vs = eq + 1, *ve = e;
            while (vs < ve && (*vs == ' ' || *vs == '\t'))
                vs++;
            while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            val[n] = (rp_str_t){vs, (size_t)(ve - vs)};
        } else {
            val[n] = (rp_str_t){NULL, 0};
        }
        if (n > 0 && val[n].data) {
            const rp_array_t *rules = NULL;
            if (key[n].len == 6 && rp_str_ieq(key[n], "domain"))
                rules = plcf->cookie_domains;
            else if (key[n].len == 4 && rp_str_ieq(key[n], "path"))
                rules = plcf->cookie_paths;
            if (rules && rewrite(r, rules, val[n], 0, &val[n]))
                changed = 1;
        }
        n++;
        p = semi ? semi + 1 : end;
    }
    if (p < end)
        return 0;
    const rp_proxy_cookie_flags_t *fl =
        plcf->cookie_flags && n ? flags_for(r, plcf->cookie_flags, key[0]) : NULL;
    if (fl) {
        /* as nginx: an attribute asked for is added at the end, or has its value set;
         * one to clear is dropped */
        unsigned have = 0;
        for (unsigned i = 1; i < n; i++) {
            unsigned bit = rp_str_ieq(key[i], "secure")     ? RP_COOKIE_SECURE
                           : rp_str_ieq(key[i], "httponly") ? RP_COOKIE_HTTPONLY
                           : rp_str_ieq(key[i], "samesite") ? RP_COOKIE_SAMESITE
                                                            : 0;
            if (bit & fl->clear) {
                key[i].len = 0;
                key[i].data = NULL;
                changed = 1;
            } else if (bit == RP_COOKIE_SAMESITE && (fl->set & bit)) {
                val[i] = (rp_str_t){fl->samesite, strlen(fl->samesite)};
                changed = 1;
            }
            have |= bit;
        }
        if ((fl->set & RP_COOKIE_SECURE) && !(have & RP_COOKIE_SECURE))
            key[n] = RP_STR("Secure"), val[n++] = (rp_str_t){NULL, 0};
        if ((fl->set & RP_COOKIE_HTTPONLY) && !(have & RP_COOKIE_HTTPONLY))
            key[n] = RP_STR("HttpOnly"), val[n++] = (rp_str_t){NULL, 0};
        if ((fl->set & RP_COOKIE_SAMESITE) && !(have & RP_COOKIE_SAMESITE))
            key[n] = RP_STR("SameSite"), val[n++] = (rp_str_t){fl->samesite, strlen(fl->samesite)};
        changed |= (fl->set & ~have) != 0;
    }
    if (!changed)
        return 0;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++)
        len += 2 + key[i].len + 1 + val[i].len;
    char *b = rp_arena_alloc(r->arena, len + 1), *o = b;
    for (unsigned i = 0; i < n; i++) {
        if (key[i].data == NULL)
            continue; /* a flag cleared */
        if (i) {
            memcpy(o, "; ", 2);
            o += 2;
        }
        memcpy(o, key[i].data, key[i].len);
        o += key[i].len;
        if (val[i].data) {
            *o++ = '=';
            memcpy(o, val[i].data, val[i].len);
            o += val[i].len;
        }
    }
    *out = (rp_str_t){b, (size_t)(o - b)};
    return 1;
}

/* X-Accel-Limit-Rate: bytes per second, or "off". */
static void accel_limit_rate(rp_request_t *r, rp_str_t v)
{
    if (v.len == 3 && rp_str_ieq(v, "off")) {
        rp_http_limit_rate_set(r, 0);
        return;
    }
    size_t rate = 0;
    if (v.len == 0 || v.len > 18)
        return;
    for (size_t i = 0; i < v.len; i++) {
        if (v.data[i] < '0' || v.data[i] > '9')
            return; /* nginx: an invalid value is ignored */
        rate = rate * 10 + (size_t)(v.data[i] - '0');
    }
    rp_http_limit_rate_set(r, rate);
}

static rp_str_t copy(rp_request_t *r, rp_str_t s)
{
    return (rp_str_t){rp_arena_strndup(r->arena, s.data, s.len), s.len};
}

/* The fields nginx keeps in the response when it follows an X-Accel-Redirect. */
static int kept_across_redirect(rp_str_t n)
{
    return rp_str_ieq(n, "set-cookie") || rp_str_ieq(n, "content-disposition") ||
           rp_str_ieq(n, "cache-control") || rp_str_ieq(n, "expires") ||
           rp_str_ieq(n, "accept-ranges");
}

void rp_proxy_response_field(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_str_t n,
                             rp_str_t v, int accel)
{
    if (n.len >= 8 && (n.data[0] | 0x20) == 'x' && strncasecmp(n.data, "x-accel-", 8) == 0) {
        if (n.len == 18 && rp_str_ieq(n, "x-accel-limit-rate") &&
            !(plcf->ignore_headers & RP_PROXY_IGN_XA_LIMIT_RATE))
            accel_limit_rate(r, v);
    }
    if (!rp_proxy_response_field_passes(plcf, n))
        return;
    if (accel && !kept_across_redirect(n))
        return;
    switch (n.len) {
    case 7: /* Refresh: the URL after "url=" */
        if (plcf->redirects && rp_str_ieq(n, "refresh")) {
            for (size_t i = 0; i + 4 <= v.len; i++) {
                if (strncasecmp(v.data + i, "url=", 4) == 0) {
                    rewrite(r, plcf->redirects, v, i + 4, &v);
                    break;
                }
            }
        }
        break;
    case 8:
        if (plcf->redirects && v.len && rp_str_ieq(n, "location") &&
            rewrite(r, plcf->redirects, v, 0, &v))
            v = rp_http_absolute_location(r, v); /* as nginx's header filter */
        break;
    case 10:
        if ((plcf->cookie_domains || plcf->cookie_paths || plcf->cookie_flags) &&
            rp_str_ieq(n, "set-cookie"))
            rewrite_cookie(r, plcf, v, &v);
        break;
    }
    if (accel) {
        n = copy(r, n); /* the upstream's buffer goes back with its connection */
        v = copy(r, v);
    }
    rp_http_add_header(r, n, v);
}

/* ---- X-Accel-Redirect ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void rp_proxy_accel_redirect(rp_request_t *r, rp_str_t target)
{
    r->response_started = 0;
    r->status = 0;
    r->reason = RP_NULL_STR;
    r->on_body = NULL;
    r->on_drain = NULL;
    if (target.data[0] == '@') {
        rp_http_named_redirect(r, target); /* the method stays, as nginx */
        return;
    }
    if (!rp_str_eq(r->method, "HEAD"))
        r->method = RP_STR("GET");
    /* nginx's ngx_http_parse_unsafe_uri: arguments after '?', %XX decoded in the path,
     * and a path that is not absolute or climbs out with ".." refused (404) */
    const char *q = memchr(target.data, '?', target.len);
    size_t plen = q ? (size_t)(q - target.data) : target.len;
    rp_str_t args = q ? copy(r, (rp_str_t){q + 1, target.len - plen - 1}) : RP_STR("");
    char *u = rp_arena_alloc(r->arena, plen + 1);
    size_t k = 0;
    int bad = plen == 0 || target.data[0] != '/';
    for (size_t i = 0; i < plen && !bad; i++) {
        char c = target.data[i];
        if (c == '%' && i + 2 < plen && hexval(target.data[i + 1]) >= 0 &&
            hexval(target.data[i + 2]) >= 0) {
            c = (char)(hexval(target.data[i + 1]) * 16 + hexval(target.data[i + 2]));
            i += 2;
        }
        if (c == '\0')
            bad = 1;
        u[k++] = c;
    }
    u[k] = '\0';
    /* ".." as a whole segment */
    for (size_t i = 0; i + 1 < k && !bad; i++)
        if (u[i] == '.' && u[i + 1] == '.' && (i == 0 || u[i - 1] == '/') &&
            (i + 2 == k || u[i + 2] == '/'))
            bad = 1;
    if (bad) {
        rp_http_send_error(r, 404);
        return;
    }
    rp_http_internal_redirect(r, (rp_str_t){u, k}, args);
}

/* ---- the directives ---- */

static const char *compile_rule(rp_conf_t *cf, rp_array_t **rules, const char *pattern,
                                const char *replacement, int domain)
{
    if (*rules == NULL || *rules == RP_CONF_UNSET_PTR) {
        *rules = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(*rules, cf->arena, 2, sizeof(rp_proxy_rewrite_t));
    }
    rp_proxy_rewrite_t *pr = rp_array_push(*rules);
    memset(pr, 0, sizeof(*pr));
    if (pattern[0] == '~') {
        int caseless = domain; /* proxy_cookie_domain's regexes ignore case, as nginx */
        pattern++;
        if (pattern[0] == '*') {
            caseless = 1;
            pattern++;
        }
        char err[256];
        pr->regex = rp_http_regex_compile(cf, pattern, caseless, err, sizeof(err));
        if (pr->regex == NULL)
            return rp_conf_error(cf, "%s", err);
    } else {
        if (domain && pattern[0] == '.')
            pattern++;
        pr->domain = domain != 0;
        const char *err = rp_cv_compile(cf, pattern, &pr->pattern);
        if (err)
            return err;
    }
    return rp_cv_compile(cf, replacement, &pr->replacement);
}

static const char *default_rule(rp_conf_t *cf, rp_proxy_loc_conf_t *p)
{
    const char *loc_name = p->loc_name ? p->loc_name : "/";
    char *pat, *repl;
    if (p->has_uri) {
        pat = p->url;
        repl = rp_arena_strdup(cf->arena, loc_name);
    } else {
        size_t n = strlen(p->url);
        pat = rp_arena_alloc(cf->arena, n + 2);
        memcpy(pat, p->url, n);
        pat[n] = '/';
        pat[n + 1] = '\0';
        repl = "/";
    }
    /* literal text: neither may be read as variables or a regex */
    if (p->redirects == NULL) {
        p->redirects = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(p->redirects, cf->arena, 2, sizeof(rp_proxy_rewrite_t));
    }
    rp_proxy_rewrite_t *pr = rp_array_push(p->redirects);
    memset(pr, 0, sizeof(*pr));
    pr->pattern.value = (rp_str_t){pat, strlen(pat)};
    pr->replacement.value = (rp_str_t){repl, strlen(repl)};
    return RP_CONF_OK;
}

const char *rp_proxy_set_redirect(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    if (p->redirect == 0)
        return RP_CONF_OK; /* nginx: lines after "off" are ignored */
    size_t n = cf->argc - 1;
    const char *a = cf->argv[1];
    if (n == 1 && strcmp(a, "off") == 0) {
        if (p->redirects)
            return "is duplicate"; /* nginx's word for "off" after rules */
        p->redirect = 0;
        return RP_CONF_OK;
    }
    if (n == 1 && strcmp(a, "default") != 0)
        return rp_conf_error(cf, "invalid parameter \"%s\"", a);
    p->redirect = 1;
    if (n == 1) {
        if (p->route && p->route->dynamic)
            return rp_conf_error(cf, "\"proxy_redirect default\" cannot be used with "
                                     "\"proxy_pass\" directive with variables");
        if (p->url == NULL)
            return rp_conf_error(cf, "\"proxy_redirect default\" should be placed after the "
                                     "\"proxy_pass\" directive");
        return default_rule(cf, p);
    }
    return compile_rule(cf, &p->redirects, a, cf->argv[2], 0);
}

const char *rp_proxy_set_cookie_rule(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    int domain = strcmp(cmd->name + strlen(cmd->name) - 6, "domain") == 0;
    rp_array_t **rules = domain ? &p->cookie_domains : &p->cookie_paths;
    if (*rules == NULL)
        return RP_CONF_OK; /* nginx: lines after "off" are ignored */
    if (cf->argc == 2) {
        if (strcmp(cf->argv[1], "off") != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[1]);
        if (*rules != RP_CONF_UNSET_PTR)
            return "is duplicate"; /* nginx's word for "off" after rules */
        *rules = NULL;
        return RP_CONF_OK;
    }
    return compile_rule(cf, rules, cf->argv[1], cf->argv[2], domain);
}

const char *rp_proxy_set_cookie_flags(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    if (p->cookie_flags == NULL)
        return RP_CONF_OK; /* nginx: lines after "off" are ignored */
    if (cf->argc == 2) {
        if (strcmp(cf->argv[1], "off") != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[1]);
        if (p->cookie_flags != RP_CONF_UNSET_PTR)
            return "is duplicate";
        p->cookie_flags = NULL;
        return RP_CONF_OK;
    }
    if (p->cookie_flags == RP_CONF_UNSET_PTR) {
        p->cookie_flags = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(p->cookie_flags, cf->arena, 2, sizeof(rp_proxy_cookie_flags_t));
    }
    rp_proxy_cookie_flags_t *f = rp_array_push(p->cookie_flags);
    memset(f, 0, sizeof(*f));
    const char *name = cf->argv[1];
    if (name[0] == '~') {
        char err[256];
        name++;
        int caseless = name[0] == '*';
        f->regex = rp_http_regex_compile(cf, name + caseless, caseless, err, sizeof(err));
        if (f->regex == NULL)
            return rp_conf_error(cf, "%s", err);
    } else {
        const char *err = rp_cv_compile(cf, name, &f->name);
        if (err)
            return err;
    }
    static const struct {
        const char *word;
        unsigned set, clear;
        const char *samesite;
    } words[] = {
        {"secure", RP_COOKIE_SECURE, 0, NULL},
        {"httponly", RP_COOKIE_HTTPONLY, 0, NULL},
        {"samesite=strict", RP_COOKIE_SAMESITE, 0, "Strict"},
        {"samesite=lax", RP_COOKIE_SAMESITE, 0, "Lax"},
        {"samesite=none", RP_COOKIE_SAMESITE, 0, "None"},
        {"nosecure", 0, RP_COOKIE_SECURE, NULL},
        {"nohttponly", 0, RP_COOKIE_HTTPONLY, NULL},
        {"nosamesite", 0, RP_COOKIE_SAMESITE, NULL},
    };
    for (size_t i = 2; i < cf->argc; i++) {
        size_t k = 0, n = sizeof(words) / sizeof(words[0]);
        while (k < n && strcasecmp(cf->argv[i], words[k].word) != 0)
            k++;
        /* nginx takes any word here (its flags may hold variables) and ignores those it
         * does not know at run time: rampart refuses them, a typo being likelier */
        if (k == n)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[i]);
        unsigned bits = words[k].set | words[k].clear;
        if ((f->set | f->clear) & bits)
            return rp_conf_error(cf, "duplicate parameter \"%s\"", cf->argv[i]);
        f->set |= words[k].set;
        f->clear |= words[k].clear;
        if (words[k].samesite)
            f->samesite = words[k].samesite;
    }
    return RP_CONF_OK;
}

const char *rp_proxy_set_pass_header(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    if (p->pass_headers == NULL) {
        p->pass_headers = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(p->pass_headers, cf->arena, 4, sizeof(rp_str_t));
    }
    rp_str_t *s = rp_array_push(p->pass_headers);
    *s = (rp_str_t){cf->argv[1], strlen(cf->argv[1])};
    return RP_CONF_OK;
}

static const struct {
    const char *name;
    unsigned bit;
} ignorable[] = {
    {"X-Accel-Redirect", RP_PROXY_IGN_XA_REDIRECT},
    {"X-Accel-Expires", RP_PROXY_IGN_XA_EXPIRES},
    {"X-Accel-Limit-Rate", RP_PROXY_IGN_XA_LIMIT_RATE},
    {"X-Accel-Buffering", RP_PROXY_IGN_XA_BUFFERING},
    {"X-Accel-Charset", RP_PROXY_IGN_XA_CHARSET},
    {"Expires", RP_PROXY_IGN_EXPIRES},
    {"Cache-Control", RP_PROXY_IGN_CACHE_CONTROL},
    {"Set-Cookie", RP_PROXY_IGN_SET_COOKIE},
    {"Vary", RP_PROXY_IGN_VARY},
};

const char *rp_proxy_set_ignore_headers(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_loc_conf_t *p = conf;
    p->ignore_set = 1; /* a second line adds to the first, as nginx's bitmask */
    for (size_t i = 1; i < cf->argc; i++) {
        size_t k = 0, n = sizeof(ignorable) / sizeof(ignorable[0]);
        while (k < n && strcasecmp(cf->argv[i], ignorable[k].name) != 0)
            k++;
        if (k == n)
            return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[i]);
        p->ignore_headers |= ignorable[k].bit;
    }
    return RP_CONF_OK;
}

const char *rp_proxy_merge_response(rp_conf_t *cf, rp_proxy_loc_conf_t *p, rp_proxy_loc_conf_t *c)
{
    if (c->redirect == -1) {
        c->redirect = p->redirect == -1 ? 1 : p->redirect;
        c->redirects = p->redirects;
    }
    if (c->redirect == 0)
        c->redirects = NULL;
    else if (c->redirects == NULL && c->url) {
        /* proxy_redirect default, implied where proxy_pass is */
        const char *err = default_rule(cf, c);
        if (err != RP_CONF_OK)
            return err;
    }
    if (c->cookie_domains == RP_CONF_UNSET_PTR)
        c->cookie_domains = p->cookie_domains;
    if (c->cookie_paths == RP_CONF_UNSET_PTR)
        c->cookie_paths = p->cookie_paths;
    /* the http level is never merged: an unset list there is none */
    if (c->cookie_domains == RP_CONF_UNSET_PTR)
        c->cookie_domains = NULL;
    if (c->cookie_paths == RP_CONF_UNSET_PTR)
        c->cookie_paths = NULL;
    if (c->cookie_flags == RP_CONF_UNSET_PTR)
        c->cookie_flags = p->cookie_flags;
    if (c->cookie_flags == RP_CONF_UNSET_PTR)
        c->cookie_flags = NULL;
    if (!c->ignore_set) {
        c->ignore_set = p->ignore_set;
        c->ignore_headers = p->ignore_headers;
    }
    RP_CONF_MERGE(c->pass_request_headers, p->pass_request_headers, -1, 1);
    RP_CONF_MERGE(c->pass_request_body, p->pass_request_body, -1, 1);
    return RP_CONF_OK;
}

int rp_proxy_ignores(const rp_request_t *r, unsigned bit)
{
    if (r->loc_conf == NULL)
        return 0;
    const rp_proxy_loc_conf_t *p = r->loc_conf[rp_proxy_module.index];
    if (p->upstream == NULL && p->route == NULL)
        p = r->loc_conf[rp_grpc_module.index];
    return (p->ignore_headers & bit) != 0;
}

/* ---- fields the upstream's Connection field names ---- */

/* Whether the upstream's Connection field names field i (then it is not passed on). */
int rp_proxy_named_by_connection(const rp_h1_parser_t *ps, const char *b, unsigned i)
{
    rp_str_t n = {b + ps->headers[i].name.off, ps->headers[i].name.len};
    for (unsigned k = 0; k < ps->nheaders; k++) {
        if (ps->headers[k].name.len == 10 && rp_span_ieq(b, ps->headers[k].name, "connection")) {
            /* the usual values name no field: no token search for each field */
            rp_span_t cv = ps->headers[k].value;
            if ((cv.len == 10 && strncasecmp(b + cv.off, "keep-alive", 10) == 0) ||
                (cv.len == 5 && strncasecmp(b + cv.off, "close", 5) == 0))
                continue;
            char tok[64];
            if (n.len < sizeof(tok)) {
                memcpy(tok, n.data, n.len);
                tok[n.len] = '\0';
                if (rp_h1_token_list_has(b + ps->headers[k].value.off, ps->headers[k].value.len,
                                         tok))
                    return 1;
            }
        }
    }
    return 0;
}

/* Whether some Connection field names other fields (anything but the usual "keep-alive"
 * or "close"): only then is each field checked against it. */
int rp_proxy_connection_lists_fields(const rp_h1_parser_t *ps, const char *b)
{
    for (unsigned k = 0; k < ps->nheaders; k++) {
        if (ps->headers[k].name.len != 10 || !rp_span_ieq(b, ps->headers[k].name, "connection"))
            continue;
        rp_span_t cv = ps->headers[k].value;
        if (!((cv.len == 10 && strncasecmp(b + cv.off, "keep-alive", 10) == 0) ||
              (cv.len == 5 && strncasecmp(b + cv.off, "close", 5) == 0)))
            return 1;
    }
    return 0;
}
