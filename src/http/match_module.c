/*
 * Request matchers of a location, which nginx lacks: a location can require a
 * method, a request header or a query argument, so that one path can lead to
 * different places (a REST resource: GET and PUT /users/ID to one upstream, DELETE
 * to another), as HAProxy's ACLs and Envoy's route matches allow.
 *
 *   location /users/ { match_method GET HEAD; proxy_pass http://read; }
 *   location /users/ { match_method PUT DELETE; match_header X-Role admin; ... }
 *
 *   match_method METHOD ...;              the request's method is one of these
 *                                         (GET allows HEAD too)
 *   match_header NAME;                    the header is present
 *   match_header NAME VALUE;              ... with exactly this value
 *   match_header NAME ~ REGEX;            ... with a value the regex finds (~*: caseless)
 *   match_arg NAME [VALUE | ~ REGEX | ~* REGEX];   the same for a query argument
 *
 * All of a location's matchers must hold. The search (route.c) treats a location whose
 * matchers fail as if its path had not matched; the 405 rule is here
 * (rp_http_match_location). The matchers are the location's own: nested locations do
 * not inherit them.
 */
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"
#include "http/match.h"
#include "route/route.h"

#include <stdio.h>
#include <string.h>

enum { OP_PRESENT, OP_EQUAL, OP_REGEX };

typedef struct {
    rp_str_t name; /* headers: lowercase */
    int op;
    rp_str_t value;
    pcre2_code *re;
} cond_t;

typedef struct {
    rp_str_t *methods; /* NULL: any method */
    unsigned nmethods;
    rp_array_t *headers, *args; /* cond_t; NULL: none */
} match_conf_t;

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(match_conf_t));
}

/* Ties m to its location and appends the directive to the location's canonical key,
 * by which two locations of one path with the same matchers are refused. */
static const char *attach(rp_conf_t *cf, match_conf_t *m)
{
    rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
    if (clcf->kind == RP_LOC_NAMED) /* reached by name, never chosen: they would not count */
        return rp_conf_error(cf, "request matchers are not allowed in the named location "
                                 "\"%s\"",
                             clcf->name);
    clcf->match = m;
    size_t len = clcf->match_key ? strlen(clcf->match_key) : 0;
    for (size_t i = 0; i < cf->argc; i++)
        len += strlen(cf->argv[i]) + 1;
    char *key = rp_arena_alloc(cf->arena, len + 2);
    size_t n = (size_t)snprintf(key, len + 2, "%s", clcf->match_key ? clcf->match_key : "");
    for (size_t i = 0; i < cf->argc; i++)
        n += (size_t)snprintf(key + n, len + 2 - n, "%s%c", cf->argv[i],
                              i + 1 < cf->argc ? ' ' : ';');
    clcf->match_key = key;
    return RP_CONF_OK;
}

static int token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?={}", c);
}

static const char *set_method(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    match_conf_t *m = conf;
    if (m->methods)
        return "duplicate directive";
    m->methods = rp_arena_alloc(cf->arena, cf->argc * sizeof(rp_str_t));
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        for (const char *p = a; *p; p++)
            if (!token_char((unsigned char)*p) || (*p >= 'a' && *p <= 'z'))
                return rp_conf_error(cf, "invalid method \"%s\": methods are uppercase tokens", a);
        for (unsigned j = 0; j < m->nmethods; j++)
            if (strcmp(m->methods[j].data, a) == 0)
                return rp_conf_error(cf, "duplicate method \"%s\"", a);
        m->methods[m->nmethods++] = (rp_str_t){a, strlen(a)};
    }
    return attach(cf, m);
}

static const char *set_cond(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    match_conf_t *m = conf;
    int header = cmd->offset == 0;
    rp_array_t **list = header ? &m->headers : &m->args;
    if (*list == NULL) {
        *list = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(*list, cf->arena, 2, sizeof(cond_t));
    }
    cond_t c;
    memset(&c, 0, sizeof(c));
    const char *name = cf->argv[1];
    if (name[0] == '\0')
        return rp_conf_error(cf, "empty %s name", header ? "header" : "argument");
    for (const char *p = name; *p; p++)
        if (header ? !token_char((unsigned char)*p) : (*p == '&' || *p == '=' || *p == '#'))
            return rp_conf_error(cf, "invalid %s name \"%s\"", header ? "header" : "argument",
                                 name);
    char *n = rp_arena_strdup(cf->arena, name);
    if (header)
        for (char *p = n; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
    c.name = (rp_str_t){n, strlen(n)};
    if (cf->argc == 2) {
        c.op = OP_PRESENT;
    } else if (cf->argc == 3) {
        c.op = OP_EQUAL;
        c.value = (rp_str_t){cf->argv[2], strlen(cf->argv[2])};
    } else {
        const char *op = cf->argv[2];
        if (strcmp(op, "~") != 0 && strcmp(op, "~*") != 0)
            return rp_conf_error(cf, "invalid operator \"%s\": use ~ or ~*", op);
        char err[512];
        c.op = OP_REGEX;
        c.value = (rp_str_t){cf->argv[3], strlen(cf->argv[3])};
        c.re = rp_regex_compile(cf->arena, cf->argv[3], op[1] == '*', err, sizeof(err));
        if (c.re == NULL)
            return rp_conf_error(cf, "%s", err);
    }
    *(cond_t *)rp_array_push(*list) = c;
    return attach(cf, m);
}

/* ---- per request ---- */

static pcre2_match_data *md; /* the matchers' own: a location regex's captures stay */

static int value_ok(const cond_t *c, rp_str_t v)
{
    switch (c->op) {
    case OP_PRESENT:
        return 1;
    case OP_EQUAL:
        return v.len == c->value.len && memcmp(v.data, c->value.data, v.len) == 0;
    default:
        if (md == NULL && (md = pcre2_match_data_create(1, NULL)) == NULL)
            return 0;
        return pcre2_match(c->re, (PCRE2_SPTR)(v.data ? v.data : ""), v.len, 0, 0, md, NULL) >= 0;
    }
}

/* The raw value of query argument name (case-insensitive, as nginx's $arg_NAME). */
static int find_arg(rp_str_t args, rp_str_t name, rp_str_t *value)
{
    const char *p = args.data, *end = args.data + args.len;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == name.len && strncasecmp(p, name.data, name.len) == 0) {
            *value = eq ? (rp_str_t){eq + 1, (size_t)(stop - eq - 1)} : (rp_str_t){"", 0};
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

static int conds_ok(const rp_request_t *r, const match_conf_t *m)
{
    if (m->headers) {
        const cond_t *c = m->headers->elts;
        for (size_t i = 0; i < m->headers->nelts; i++) {
            rp_str_t v = rp_request_header(r, c[i].name.data);
            if (v.data == NULL || !value_ok(&c[i], v))
                return 0;
        }
    }
    if (m->args) {
        const cond_t *c = m->args->elts;
        for (size_t i = 0; i < m->args->nelts; i++) {
            rp_str_t v;
            if (!find_arg(r->args, c[i].name, &v) || !value_ok(&c[i], v))
                return 0;
        }
    }
    return 1;
}

static int method_ok(const rp_request_t *r, const match_conf_t *m)
{
    if (m->methods == NULL)
        return 1;
    int head = r->method.len == 4 && memcmp(r->method.data, "HEAD", 4) == 0;
    for (unsigned i = 0; i < m->nmethods; i++) {
        if (rp_str_eq(r->method, m->methods[i].data))
            return 1;
        if (head && strcmp(m->methods[i].data, "GET") == 0)
            return 1;
    }
    return 0;
}

static int check(void *arg, const rp_http_core_loc_conf_t *loc, int ignore_method)
{
    const rp_request_t *r = arg;
    const match_conf_t *m = loc->match;
    if (!conds_ok(r, m))
        return RP_ROUTE_REFUSE;
    if (!ignore_method && !method_ok(r, m))
        return RP_ROUTE_REFUSE_METHOD;
    return RP_ROUTE_ACCEPT;
}

/* Adds the Allow header: the methods of loc's variants whose other matchers hold. */
static void add_allow(rp_request_t *r, const rp_http_core_loc_conf_t *loc)
{
    size_t cap = 64, n = 0;
    for (const rp_http_core_loc_conf_t *v = loc->first_variant; v; v = v->next_variant) {
        const match_conf_t *m = v->match;
        if (m && m->methods)
            for (unsigned i = 0; i < m->nmethods; i++)
                cap += m->methods[i].len + 2;
    }
    char *buf = rp_arena_alloc(r->arena, cap);
    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        for (const rp_http_core_loc_conf_t *v = loc->first_variant; v; v = v->next_variant) {
            const match_conf_t *m = v->match;
            if (m == NULL || m->methods == NULL || !conds_ok(r, m))
                continue;
            for (unsigned i = 0; i < m->nmethods; i++) {
                /* pass 1 adds HEAD after a GET that brought it, unless written */
                const char *name = m->methods[i].data;
                if (pass == 1) {
                    if (strcmp(name, "GET") != 0)
                        continue;
                    name = "HEAD";
                }
                size_t len = strlen(name);
                int seen = 0;
                for (const char *p = buf; *p;) {
                    const char *e = strchr(p, ',');
                    size_t l = e ? (size_t)(e - p) : strlen(p);
                    if (l == len && memcmp(p, name, len) == 0)
                        seen = 1;
                    p = e ? e + 2 : p + l;
                }
                if (!seen)
                    n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", name);
            }
        }
    }
    rp_http_add_header(r, RP_STR("Allow"), (rp_str_t){buf, n});
}

rp_http_core_loc_conf_t *rp_http_match_location(rp_request_t *r,
                                                rp_http_core_loc_conf_t *server_loc)
{
    rp_route_match_t m = {check, r, 0, 0};
    rp_http_core_loc_conf_t *clcf =
        rp_route_location_match(server_loc, r->uri.data, r->uri.len, &m);
    if (!m.method_refused)
        return clcf;
    /* Some location was refused for its method alone: had the method not counted, the
     * search would have stopped at it (or an earlier one). Unless the location chosen
     * is a variant of that same path, its path matched and only the method failed. */
    m.ignore_method = 1;
    rp_http_core_loc_conf_t *any = rp_route_location_match(server_loc, r->uri.data, r->uri.len, &m);
    if (any == clcf || any->first_variant == clcf->first_variant) {
        if (clcf->re) /* the second search left its own captures */
            rp_regex_match(clcf->re->re, r->uri.data, r->uri.len);
        return clcf;
    }
    add_allow(r, any);
    r->clcf = any;
    r->loc_conf = any->loc_conf;
    return NULL;
}

#define IN_LOC RP_CTX_LOCATION

static const rp_command_t commands[] = {
    {"match_method", IN_LOC, 0, 1, RP_ARGS_ANY, set_method, RP_CONF_LOC, 0, NULL},
    {"match_header", IN_LOC, 0, 1, 3, set_cond, RP_CONF_LOC, 0, NULL},
    {"match_arg", IN_LOC, 0, 1, 3, set_cond, RP_CONF_LOC, 1, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_match_module = {
    .name = "http_match",
    .commands = commands,
    .create_loc = create_loc,
};
