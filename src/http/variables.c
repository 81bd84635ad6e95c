/*
 * The variable registry of a configuration, the per-request values, compiled
 * values, and regexes whose captures become $1..$9 and named variables.
 *
 * The registry is the cycle's: modules add their tables before the files are
 * parsed, directives add what they declare while they are parsed. A variable
 * gets a slot in the request's values only once a compiled value refers to it,
 * so a request pays (one zeroed array, grown on first use) only for the
 * variables its configuration reads.
 */
#include "http/variables.h"
#include "core/cycle.h"
#include "core/log.h"
#include "route/route.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- the registry ---- */

/* Names are compared without regard to case, as nginx does: "$HOST" is $host, and
 * "set $Foo" then "$foo" is one variable. A name keeps the spelling of its first use. */
static rp_var_t *lookup(rp_cycle_t *cycle, const char *name, size_t len)
{
    rp_var_t **v = cycle->vars.elts;
    for (size_t i = 0; i < cycle->vars.nelts; i++)
        if (v[i]->name.len == len && strncasecmp(v[i]->name.data, name, len) == 0)
            return v[i];
    return NULL;
}

static rp_var_t *add(rp_conf_t *cf, const char *name, size_t len)
{
    rp_var_t *v = rp_arena_calloc(cf->arena, sizeof(*v));
    v->name = (rp_str_t){rp_arena_strndup(cf->arena, name, len), len};
    v->index = -1;
    *(rp_var_t **)rp_array_push(&cf->cycle->vars) = v;
    return v;
}

const char *rp_var_register(rp_conf_t *cf, const rp_var_def_t *defs)
{
    for (const rp_var_def_t *d = defs; d->name; d++) {
        size_t len = strlen(d->name);
        if (lookup(cf->cycle, d->name, len))
            return rp_arena_sprintf(cf->arena, "the variable \"$%s\" is registered twice", d->name);
        rp_var_t *v = add(cf, d->name, len);
        v->get = d->get;
        v->set = d->set;
        v->flags = d->flags;
        v->data = d->data;
    }
    return NULL;
}

rp_var_t *rp_var_find(rp_conf_t *cf, const char *name, size_t len)
{
    rp_var_t *v = lookup(cf->cycle, name, len);
    if (v)
        return v;
    /* a member of a prefix family: made once, then found like any other */
    rp_var_t **all = cf->cycle->vars.elts;
    for (size_t i = 0; i < cf->cycle->vars.nelts; i++) {
        rp_var_t *p = all[i];
        if (!(p->flags & RP_VAR_PREFIX) || len <= p->name.len ||
            strncasecmp(name, p->name.data, p->name.len) != 0)
            continue;
        v = add(cf, name, len);
        v->get = p->get;
        v->set = p->set;
        v->flags = p->flags & ~RP_VAR_PREFIX;
        v->data = p->data;
        v->arg = (rp_str_t){v->name.data + p->name.len, len - p->name.len};
        v->prefix = p;
        return v;
    }
    return NULL;
}

rp_var_t *rp_var_declare(rp_conf_t *cf, const char *name, size_t len, unsigned flags)
{
    rp_var_t *v = rp_var_find(cf, name, len);
    if (v && (v->flags & RP_VAR_UNKNOWN)) {
        v->flags = flags | RP_VAR_CHANGEABLE; /* used further up, declared here */
        return v;
    }
    if (v && v->prefix) {
        /* a member of a family ($arg_x, $http_x, $cookie_x): as nginx, a directive may
         * assign it, and until it does in a request the variable reads as the family's */
        v->flags |= RP_VAR_CHANGEABLE;
        return v;
    }
    if (v) {
        if (!(v->flags & RP_VAR_CHANGEABLE)) {
            rp_conf_error(cf, "the variable \"$%.*s\" cannot be assigned", (int)len, name);
            return NULL;
        }
        return v;
    }
    v = add(cf, name, len);
    v->flags = flags | RP_VAR_CHANGEABLE;
    return v;
}

const char *rp_var_check_declared(rp_conf_t *cf)
{
    rp_var_t **v = cf->cycle->vars.elts;
    for (size_t i = 0; i < cf->cycle->vars.nelts; i++) {
        if (v[i]->flags & RP_VAR_UNKNOWN) {
            snprintf(cf->error, sizeof(cf->error), "%s:%u: \"%s\": unknown variable \"$%.*s\"",
                     v[i]->file, v[i]->line, v[i]->directive, (int)v[i]->name.len,
                     v[i]->name.data);
            return RP_CONF_ERROR;
        }
    }
    return RP_CONF_OK;
}

void rp_var_use(rp_conf_t *cf, rp_var_t *v)
{
    if (v->index < 0)
        v->index = (int)cf->cycle->nvar_slots++;
}

int rp_var_used(const rp_cycle_t *cycle, const char *prefix)
{
    size_t n = strlen(prefix);
    rp_var_t **v = cycle->vars.elts;
    for (size_t i = 0; i < cycle->vars.nelts; i++)
        if (v[i]->index >= 0 && v[i]->name.len >= n && strncasecmp(v[i]->name.data, prefix, n) == 0)
            return 1;
    return 0;
}

/* ---- values in a request ---- */

static rp_var_value_t *slot(rp_request_t *r, int index)
{
    if ((unsigned)index >= r->nvars) {
        unsigned n = r->nvars ? r->nvars * 2 : 16;
        while (n <= (unsigned)index)
            n *= 2;
        rp_var_value_t *vals = rp_arena_calloc(r->arena, n * sizeof(*vals));
        if (r->nvars)
            memcpy(vals, r->vars, r->nvars * sizeof(*vals));
        r->vars = vals;
        r->nvars = n;
    }
    return &r->vars[index];
}

/* As nginx: a value that needs itself (`map $a $b` and `map $b $a`, or `map $m $m`) is
 * given up, as not found, after this many nested evaluations instead of exhausting the
 * worker's stack. */
#define MAX_DEPTH 100
static unsigned depth;

int rp_var_get(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_var_value_t *s = v->index >= 0 ? slot(r, v->index) : NULL;
    if (s && s->valid && (!(v->flags & RP_VAR_NOCACHE) || s->assigned)) {
        *out = s->value;
        return s->not_found ? -1 : 0;
    }
    if (v->get == NULL) { /* a slot variable not assigned in this request */
        *out = RP_STR("");
        return -1;
    }
    if (depth == MAX_DEPTH) {
        rp_log_error(RP_LOG_ERR, 0, "cycle while evaluating variable \"%.*s\"",
                     (int)v->name.len, v->name.data);
        *out = RP_STR("");
        return -1;
    }
    depth++;
    int rc = v->get(r, v, out);
    depth--;
    if (rc != 0)
        *out = RP_STR("");
    if (s && !(v->flags & RP_VAR_NOCACHE)) {
        s->value = *out;
        s->valid = 1;
        s->not_found = rc != 0;
    }
    return rc;
}

void rp_var_set(rp_request_t *r, const rp_var_t *v, rp_str_t value)
{
    if (v->set) {
        v->set(r, v, value);
        if (v->index >= 0)
            slot(r, v->index)->valid = 0; /* read through the getter again */
        return;
    }
    if (v->index < 0)
        return; /* nobody reads it */
    /* as nginx: an assigned value stands for the rest of the request, even for a
     * variable otherwise evaluated at every use (a volatile map, $arg_x) */
    rp_var_value_t *s = slot(r, v->index);
    s->value = value;
    s->valid = 1;
    s->not_found = 0;
    s->assigned = 1;
}

/* ---- compiled values ---- */

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

const char *rp_cv_compile(rp_conf_t *cf, const char *src, rp_cv_t *cv)
{
    rp_array_t parts;
    rp_array_init(&parts, cf->arena, 4, sizeof(rp_cv_part_t));
    char *lit = rp_arena_alloc(cf->arena, strlen(src) + 1);
    size_t litlen = 0;
    const char *p = src;
    cv->has_vars = 0;

    while (*p) {
        if (p[0] == '\\' && p[1] == '$') {
            lit[litlen++] = '$';
            p += 2;
            continue;
        }
        if (*p != '$') {
            lit[litlen++] = *p++;
            continue;
        }
        const char *name;
        size_t nlen;
        int capture = 0;
        if (p[1] >= '0' && p[1] <= '9') {
            /* $1..$9 (one digit, as nginx: "$12" is $1 and a "2") */
            name = p + 1;
            nlen = 1;
            capture = p[1] - '0';
            p += 2;
        } else if (p[1] == '{') {
            name = p + 2;
            const char *close = strchr(name, '}');
            if (close == NULL)
                return rp_arena_sprintf(cf->arena, "missing \"}\" in variable reference in \"%s\"",
                                        src);
            nlen = (size_t)(close - name);
            p = close + 1;
            if (nlen == 1 && name[0] >= '0' && name[0] <= '9')
                capture = name[0] - '0';
        } else {
            name = p + 1;
            nlen = 0;
            while (name_char(name[nlen]))
                nlen++;
            p = name + nlen;
        }
        if (nlen == 0)
            return rp_arena_sprintf(cf->arena, "invalid variable name in \"%s\"", src);
        if (litlen) {
            rp_cv_part_t *lp = rp_array_push(&parts);
            lp->literal = (rp_str_t){lit, litlen};
            lit += litlen + 1;
            litlen = 0;
        }
        rp_cv_part_t *vp = rp_array_push(&parts);
        if (capture || (nlen == 1 && name[0] == '0')) {
            vp->capture = capture ? capture : 10; /* $0: the whole match */
        } else {
            rp_var_t *v = rp_var_find(cf, name, nlen);
            if (v == NULL) {
                /* as nginx: a map or set further on may declare it; if nothing does,
                 * the configuration fails at its end, naming this place */
                v = add(cf, name, nlen);
                v->flags = RP_VAR_UNKNOWN;
                v->file = cf->file;
                v->line = cf->line;
                v->directive = cf->argv ? rp_arena_strdup(cf->arena, cf->argv[0]) : "";
            }
            rp_var_use(cf, v);
            vp->var = v;
        }
        cv->has_vars = 1;
    }
    if (litlen || parts.nelts == 0) {
        rp_cv_part_t *lp = rp_array_push(&parts);
        lp->literal = (rp_str_t){lit, litlen};
    }
    cv->parts = parts.elts;
    cv->nparts = parts.nelts;
    if (!cv->has_vars)
        cv->value = cv->parts[0].literal;
    return NULL;
}

/* The text of capture n (10: the whole match) of r's last regex match; empty if none. */
static rp_str_t capture_value(rp_request_t *r, int n)
{
    unsigned k = n == 10 ? 0 : (unsigned)n;
    if (k >= r->ncaptures || r->captures[2 * k] == (size_t)-1)
        return RP_STR("");
    size_t from = r->captures[2 * k], to = r->captures[2 * k + 1];
    return (rp_str_t){r->captures_subject.data + from, to - from};
}

int rp_cv_part_value(rp_request_t *r, const rp_cv_part_t *part, rp_str_t *out)
{
    if (part->var)
        return rp_var_get(r, part->var, out);
    if (part->capture) {
        *out = capture_value(r, part->capture);
        return 0;
    }
    *out = part->literal;
    return 0;
}

rp_str_t rp_cv_eval(rp_request_t *r, const rp_cv_t *cv)
{
    if (!cv->has_vars)
        return cv->value;
    if (cv->nparts == 1) {
        /* "$host": the value itself, already in request memory, needs no copy */
        rp_str_t v;
        rp_cv_part_value(r, &cv->parts[0], &v);
        return v;
    }
    rp_str_t stack[64];
    size_t total = 0, n = cv->nparts;
    rp_str_t *vals = n <= 64 ? stack : rp_arena_alloc(r->arena, n * sizeof(rp_str_t));
    for (size_t i = 0; i < n; i++) {
        rp_cv_part_value(r, &cv->parts[i], &vals[i]);
        total += vals[i].len;
    }
    char *buf = rp_arena_alloc(r->arena, total + 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (vals[i].len)
            memcpy(buf + off, vals[i].data, vals[i].len);
        off += vals[i].len;
    }
    buf[off] = '\0';
    return (rp_str_t){buf, off};
}

/* ---- regexes ---- */

rp_http_regex_t *rp_http_regex_compile(rp_conf_t *cf, const char *pattern, int caseless,
                                       char *err, size_t errlen)
{
    pcre2_code *code = rp_regex_compile(cf->arena, pattern, caseless, err, errlen);
    if (code == NULL)
        return NULL;
    rp_http_regex_t *re = rp_arena_calloc(cf->arena, sizeof(*re));
    re->re = code;
    uint32_t groups = 0, names = 0, entry = 0;
    PCRE2_SPTR table = NULL;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &names);
    re->ncaptures = groups;
    if (names == 0)
        return re;
    pcre2_pattern_info(code, PCRE2_INFO_NAMEENTRYSIZE, &entry);
    pcre2_pattern_info(code, PCRE2_INFO_NAMETABLE, &table);
    re->named = rp_arena_calloc(cf->arena, names * sizeof(*re->named));
    for (uint32_t i = 0; i < names; i++) {
        const unsigned char *e = table + (size_t)i * entry;
        const char *name = (const char *)e + 2;
        rp_var_t *have = rp_var_find(cf, name, strlen(name));
        if (have && !(have->flags & (RP_VAR_CHANGEABLE | RP_VAR_UNKNOWN))) {
            snprintf(err, errlen, "the variable \"$%s\" cannot be assigned", name);
            return NULL;
        }
        rp_var_t *v = rp_var_declare(cf, name, strlen(name), RP_VAR_SLOT);
        rp_var_use(cf, v);
        re->named[re->nnamed].group = (unsigned)(e[0] << 8 | e[1]);
        re->named[re->nnamed].var = v;
        re->nnamed++;
    }
    return re;
}

void rp_http_regex_captures(rp_request_t *r, const rp_http_regex_t *re, rp_str_t subject,
                            const size_t *ovector, unsigned pairs)
{
    /* A match replaces the captures of an earlier one even when this regex has no
     * groups: nginx then keeps only the whole match, so $1..$9 read empty (a location
     * `~ \.txt$` hides the groups of the server_name regex that chose the server). */
    if (pairs > re->ncaptures + 1)
        pairs = re->ncaptures + 1;
    size_t *caps = rp_arena_alloc(r->arena, 2 * pairs * sizeof(size_t));
    memcpy(caps, ovector, 2 * pairs * sizeof(size_t));
    r->captures = caps;
    r->ncaptures = pairs;
    r->captures_subject = subject;
    for (unsigned i = 0; i < re->nnamed; i++) {
        unsigned g = re->named[i].group;
        rp_str_t value = RP_STR("");
        if (g < pairs && caps[2 * g] != PCRE2_UNSET)
            value = (rp_str_t){subject.data + caps[2 * g], caps[2 * g + 1] - caps[2 * g]};
        rp_var_set(r, re->named[i].var, value);
    }
}

int rp_http_regex_exec(rp_request_t *r, const rp_http_regex_t *re, rp_str_t subject)
{
    int rc = rp_regex_match(re->re, subject.data, subject.len);
    if (rc <= 0)
        return 0;
    rp_http_regex_captures(r, re, subject, rp_regex_ovector(), (unsigned)rc);
    return 1;
}
