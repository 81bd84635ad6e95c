/*
 * nginx's rewrite module: `rewrite`, `return`, `set`, `break` and `if`. The
 * directives of one level (a server, or a location) form a script that runs in
 * the order written: at the server level before a location is chosen
 * (SERVER_REWRITE, the usual "redirect everything" idiom), at a location's once
 * it is chosen (REWRITE). As in nginx, a location runs only its own script, not
 * its parent's.
 *
 * `return CODE [TEXT|URL]` and `return URL`: for 301, 302, 303, 307 and 308 the
 * argument is the Location; for other codes it is the body. Code 444 closes the
 * connection without an answer. `set $var VALUE` declares $var (a user variable)
 * or assigns a variable that allows it ($args, $limit_rate).
 *
 * `rewrite REGEX REPLACEMENT [FLAG]` matches the URI; on a match the replacement
 * (with $1..$9 and named captures) becomes the URI, or the Location of a redirect
 * when it starts with http://, https:// or $scheme, or with the flags redirect and
 * permanent. The request's arguments follow unless the replacement ends with "?".
 * `last` ends the script and lets POST_REWRITE find the location again, `break`
 * ends it and stays; without a flag the script goes on.
 *
 * `if (CONDITION) { ... }`: the block's directives are compiled into the same
 * script, behind a test that jumps over them when the condition fails (nginx's
 * shape). In a location, the block is also a configuration level of its own,
 * inheriting from the enclosing one: when the condition holds the request goes on
 * with it (its proxy_pass, add_header, ...). Only the modules whose directives
 * appear in the block get a configuration of their own there; for the others the
 * level is the enclosing one, the very same structure.
 */
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

enum { OP_RETURN, OP_SET, OP_STEP, OP_REWRITE, OP_BREAK, OP_IF };

/* rewrite flags */
enum { F_NONE, F_LAST, F_BREAK, F_REDIRECT, F_PERMANENT };

/* if conditions */
enum { C_VAR, C_EQ, C_NE, C_RE, C_FILE };

/* A location's `if` block as a configuration level. */
typedef struct if_level_s {
    struct if_level_s *parent; /* the enclosing `if` level, or NULL: the location */
    rp_http_conf_ctx_t *ctx;   /* the block's own configurations */
    unsigned char *touched;    /* modules with a directive in the block */
    void **loc_conf;           /* what a request uses: ctx's or the enclosing level's */
    rp_http_core_loc_conf_t *clcf;
} if_level_t;

typedef struct {
    int op;
    int code; /* return; rewrite: the redirect's status, or 0 */
    int has_text;
    rp_cv_t value;       /* return's text, set's value, rewrite's URI part, if's left side */
    const rp_var_t *var; /* set */
    int (*step)(rp_request_t *r, const void *data); /* another module's step */
    const void *data;
    /* rewrite */
    rp_http_regex_t *re;
    const char *pattern;
    int flag;
    int has_args; /* the replacement has its own "?args": in args */
    int add_args; /* the request's arguments follow (no final "?") */
    rp_cv_t args;
    /* if */
    int cond;
    int negate;
    char test; /* -f, -d, -e, -x: 'f', 'd', 'e', 'x' */
    rp_cv_t right;
    size_t next;       /* the op after the block */
    if_level_t *level; /* in a location; NULL at the server level */
} op_t;

typedef struct {
    rp_array_t *ops;   /* op_t; NULL when the level has none; an if block shares its level's */
    rp_array_t *ifs;   /* if_level_t *, in the order written: a location's if blocks */
    if_level_t *level; /* in an if block's level: that block */
    int log;           /* rewrite_log */
    int uninit_warn;   /* uninitialized_variable_warn */
} rewrite_conf_t;

static void *create_conf(rp_conf_t *cf)
{
    rewrite_conf_t *rc = rp_arena_calloc(cf->arena, sizeof(rewrite_conf_t));
    rc->log = RP_CONF_UNSET;
    rc->uninit_warn = RP_CONF_UNSET;
    return rc;
}

/* Only the flags are inherited: a script belongs to its level. */
static const char *merge_conf(rp_conf_t *cf, void *parent, void *child)
{
    rewrite_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->log, p->log, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->uninit_warn, p->uninit_warn, RP_CONF_UNSET, 1);
    return RP_CONF_OK;
}

static rp_array_t *ops_of(rp_conf_t *cf, rewrite_conf_t *rc)
{
    if (rc->ops == NULL) {
        rc->ops = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(rc->ops, cf->arena, 4, sizeof(op_t));
    }
    return rc->ops;
}

static op_t *add_op(rp_conf_t *cf, rewrite_conf_t *rc, int kind)
{
    op_t *op = rp_array_push(ops_of(cf, rc));
    memset(op, 0, sizeof(*op));
    op->op = kind;
    return op;
}

/* The rewrite configuration a directive of the current context writes to. */
static rewrite_conf_t *current(rp_conf_t *cf)
{
    return cf->ctx & (RP_CTX_LOCATION | RP_CTX_LIF)
               ? cf->http_ctx->loc_conf[rp_http_rewrite_module.index]
               : cf->http_ctx->srv_conf[rp_http_rewrite_module.index];
}

/*
 * Another module's step in the script of the level being read (set_by_lua): it runs
 * in order with `set` and `return`. It returns RP_OK to go on, anything else to end
 * the script with that result.
 */
void rp_http_rewrite_add_step(rp_conf_t *cf, int (*step)(rp_request_t *r, const void *data),
                              const void *data)
{
    op_t *op = add_op(cf, current(cf), OP_STEP);
    op->step = step;
    op->data = data;
}

static int is_redirect(int code)
{
    return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

static const char *set_return(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *first = cf->argv[1];
    long code;
    const char *text = NULL;
    if (rp_parse_int(first, 999, &code) == 0) {
        if (code > 999 || (code < 100))
            return rp_conf_error(cf, "invalid return code \"%s\"", first);
        if (cf->argc == 3)
            text = cf->argv[2];
    } else if (cf->argc == 2 &&
               (strncmp(first, "http://", 7) == 0 || strncmp(first, "https://", 8) == 0 ||
                strncmp(first, "$scheme", 7) == 0)) {
        code = 302;
        text = first;
    } else {
        return rp_conf_error(cf, "invalid return code \"%s\"", first);
    }
    op_t *op = add_op(cf, conf, OP_RETURN);
    op->code = (int)code;
    if (text) {
        const char *err = rp_cv_compile(cf, text, &op->value);
        if (err)
            return err;
        op->has_text = 1;
    }
    return RP_CONF_OK;
}

/* A `set` variable read before the request assigned it: empty, with nginx's warning. */
static int uninitialized(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const rewrite_conf_t *lc = r->loc_conf ? r->loc_conf[rp_http_rewrite_module.index] : NULL;
    if (lc && lc->uninit_warn == 1)
        rp_log_error(RP_LOG_WARN, 0, "using uninitialized \"%.*s\" variable", (int)v->name.len,
                     v->name.data);
    *out = RP_STR("");
    return -1;
}

static const char *set_set(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *name = cf->argv[1];
    if (name[0] != '$' || name[1] == '\0')
        return rp_conf_error(cf, "invalid variable name \"%s\"", name);
    rp_var_t *v = rp_var_declare(cf, name + 1, strlen(name + 1), RP_VAR_SLOT);
    if (v == NULL)
        return RP_CONF_ERROR;
    if (v->get == NULL && v->set == NULL && v->prefix == NULL)
        v->get = uninitialized; /* read before any `set` ran in the request */
    op_t *op = add_op(cf, conf, OP_SET);
    /* compile the value first: "set $a $a;" reads the variable before it is assigned */
    const char *err = rp_cv_compile(cf, cf->argv[2], &op->value);
    if (err)
        return err;
    rp_var_use(cf, v);
    op->var = v;
    return RP_CONF_OK;
}

static int run_return(rp_request_t *r, const op_t *op)
{
    if (op->code == 444) {
        r->status = 444;
        rp_http_close_now(r);
        return RP_DONE;
    }
    if (is_redirect(op->code)) {
        if (op->has_text) {
            rp_str_t loc = rp_http_safe_location(r, rp_cv_eval(r, &op->value));
            loc = rp_http_absolute_location(r, loc);
            rp_http_add_header(r, RP_STR("Location"), loc);
        }
        return rp_http_send_error(r, op->code);
    }
    if (!op->has_text) {
        if (op->code >= 400)
            return rp_http_send_error(r, op->code);
        return rp_http_send_response(r, op->code, RP_NULL_STR, RP_STR(""));
    }
    rp_str_t body = rp_cv_eval(r, &op->value);
    const char *type = r->clcf->default_type;
    return rp_http_send_response(r, op->code, (rp_str_t){type, strlen(type)}, body);
}

/* ---- rewrite ---- */

static const char *set_rewrite(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *pattern = cf->argv[1];
    const char *repl = cf->argv[2];
    int flag = F_NONE;
    if (cf->argc == 4) {
        const char *f = cf->argv[3];
        if (strcmp(f, "last") == 0)
            flag = F_LAST;
        else if (strcmp(f, "break") == 0)
            flag = F_BREAK;
        else if (strcmp(f, "redirect") == 0)
            flag = F_REDIRECT;
        else if (strcmp(f, "permanent") == 0)
            flag = F_PERMANENT;
        else
            return rp_conf_error(cf, "invalid parameter \"%s\"", f);
    }
    char err[512];
    rp_http_regex_t *re = rp_http_regex_compile(cf, pattern, 0, err, sizeof(err));
    if (re == NULL)
        return rp_conf_error(cf, "%s", err);

    op_t *op = add_op(cf, conf, OP_REWRITE);
    op->re = re;
    op->pattern = pattern;
    op->flag = flag;
    if (strncmp(repl, "http://", 7) == 0 || strncmp(repl, "https://", 8) == 0 ||
        strncmp(repl, "$scheme", 7) == 0)
        op->code = flag == F_PERMANENT ? 301 : 302;
    else if (flag == F_REDIRECT)
        op->code = 302;
    else if (flag == F_PERMANENT)
        op->code = 301;

    /* a final "?" drops the request's arguments; the first "?" starts the new ones */
    size_t len = strlen(repl);
    char *uri = rp_arena_strdup(cf->arena, repl);
    op->add_args = 1;
    if (len > 0 && uri[len - 1] == '?') {
        uri[--len] = '\0';
        op->add_args = 0;
    }
    char *q = strchr(uri, '?');
    const char *e;
    if (q) {
        *q = '\0';
        op->has_args = 1;
        if ((e = rp_cv_compile(cf, q + 1, &op->args)) != NULL)
            return e;
    }
    if ((e = rp_cv_compile(cf, uri, &op->value)) != NULL)
        return e;
    return RP_CONF_OK;
}

static const rewrite_conf_t *log_conf(rp_request_t *r)
{
    return r->loc_conf ? r->loc_conf[rp_http_rewrite_module.index] : NULL;
}

static int logging(rp_request_t *r)
{
    const rewrite_conf_t *lc = log_conf(r);
    return lc && lc->log == 1;
}

static rp_str_t concat(rp_request_t *r, rp_str_t a, const char *sep, rp_str_t b)
{
    size_t sl = strlen(sep);
    char *d = rp_arena_alloc(r->arena, a.len + sl + b.len + 1);
    memcpy(d, a.data, a.len);
    memcpy(d + a.len, sep, sl);
    if (b.len)
        memcpy(d + a.len + sl, b.data, b.len);
    d[a.len + sl + b.len] = '\0';
    return (rp_str_t){d, a.len + sl + b.len};
}

/* nginx's NGX_ESCAPE_ARGS: space # % & + ; ? and bytes outside 0x21..0x7e */
static int args_escape(unsigned char ch)
{
    return ch <= 0x20 || ch >= 0x7f || ch == '#' || ch == '%' || ch == '&' || ch == '+' ||
           ch == ';' || ch == '?';
}

/*
 * The replacement's value. As nginx: when the request's path was percent-encoded
 * (or had a "+"), the captures, taken from the decoded URI, are encoded again where
 * they land in a redirect or in arguments, so "/old/a%20b" redirects to ".../a%20b".
 */
static rp_str_t eval_replacement(rp_request_t *r, const rp_cv_t *cv, int escape)
{
    if (!escape || !cv->has_vars)
        return rp_cv_eval(r, cv);
    size_t total = 0;
    for (size_t i = 0; i < cv->nparts; i++) {
        rp_str_t v;
        rp_cv_part_value(r, &cv->parts[i], &v);
        total += cv->parts[i].capture ? 3 * v.len : v.len;
    }
    char *d = rp_arena_alloc(r->arena, total + 1);
    size_t k = 0;
    for (size_t i = 0; i < cv->nparts; i++) {
        rp_str_t v;
        rp_cv_part_value(r, &cv->parts[i], &v);
        for (size_t j = 0; j < v.len; j++) {
            unsigned char ch = (unsigned char)v.data[j];
            if (cv->parts[i].capture && args_escape(ch)) {
                d[k++] = '%';
                d[k++] = "0123456789ABCDEF"[ch >> 4];
                d[k++] = "0123456789ABCDEF"[ch & 15];
            } else {
                d[k++] = (char)ch;
            }
        }
    }
    d[k] = '\0';
    return (rp_str_t){d, k};
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * nginx's last touch on a rewrite's redirect (NGX_UNESCAPE_REDIRECT): up to the first
 * "?", an encoded byte between "%" and DEL exclusive is decoded, the others (space,
 * controls, "%" itself, bytes over 0x7e) stay encoded.
 */
static rp_str_t redirect_unescape(rp_request_t *r, rp_str_t v)
{
    if (memchr(v.data, '%', v.len) == NULL)
        return v;
    char *d = rp_arena_alloc(r->arena, v.len + 1);
    size_t k = 0, i = 0;
    for (; i < v.len && v.data[i] != '?'; i++) {
        int hi, lo;
        if (v.data[i] == '%' && i + 2 < v.len && (hi = hexval(v.data[i + 1])) >= 0 &&
            (lo = hexval(v.data[i + 2])) >= 0) {
            int ch = hi * 16 + lo;
            if (ch > '%' && ch < 0x7f) {
                d[k++] = (char)ch;
                i += 2;
                continue;
            }
        }
        d[k++] = v.data[i];
    }
    memcpy(d + k, v.data + i, v.len - i);
    k += v.len - i;
    d[k] = '\0';
    return (rp_str_t){d, k};
}

/* Whether the request's path, as sent, was percent-encoded or had a "+" (nginx's
 * quoted_uri and plus_in_uri). */
static int quoted_path(const rp_request_t *r)
{
    const char *p = r->request_uri.data;
    size_t n = r->request_uri.len;
    const char *q = p ? memchr(p, '?', n) : NULL;
    if (q)
        n = (size_t)(q - p);
    return p && (memchr(p, '%', n) || memchr(p, '+', n));
}

/* RP_OK: no match, go on; RP_DECLINED: the script ends; RP_DONE: answered. *stop set
 * when the script ends. */
static int run_rewrite(rp_request_t *r, const op_t *op, int *stop)
{
    rp_str_t uri = r->uri;
    if (!rp_http_regex_exec(r, op->re, uri)) {
        if (logging(r))
            rp_log_error(RP_LOG_NOTICE, 0, "\"%s\" does not match \"%.*s\"", op->pattern,
                         (int)uri.len, uri.data);
        return RP_OK;
    }
    if (logging(r))
        rp_log_error(RP_LOG_NOTICE, 0, "\"%s\" matches \"%.*s\"", op->pattern, (int)uri.len,
                     uri.data);
    int quoted = quoted_path(r);
    rp_str_t path = eval_replacement(r, &op->value, quoted && op->code);
    rp_str_t args = op->has_args ? eval_replacement(r, &op->args, quoted) : RP_NULL_STR;

    if (op->code) {
        rp_str_t loc = path;
        if (op->has_args)
            loc = concat(r, loc, "?", args);
        loc = redirect_unescape(r, loc);
        if (op->add_args && r->args.len)
            loc = concat(r, loc, op->has_args ? "&" : "?", r->args);
        if (logging(r))
            rp_log_error(RP_LOG_NOTICE, 0, "rewritten redirect: \"%.*s\"", (int)loc.len, loc.data);
        loc = rp_http_absolute_location(r, rp_http_safe_location(r, loc));
        rp_http_add_header(r, RP_STR("Location"), loc);
        *stop = 1;
        return rp_http_send_error(r, op->code);
    }

    if (op->has_args) {
        if (op->add_args && r->args.len)
            args = concat(r, args, "&", r->args);
        r->args = args;
    } else if (!op->add_args) {
        r->args = RP_STR("");
    }
    if (logging(r))
        rp_log_error(RP_LOG_NOTICE, 0, "rewritten data: \"%.*s\", args: \"%.*s\"", (int)path.len,
                     path.data, (int)r->args.len, r->args.data);
    if (path.len == 0) {
        rp_log_error(RP_LOG_ERR, 0, "the rewritten URI has a zero length");
        *stop = 1;
        return rp_http_send_error(r, 500);
    }
    r->uri = path;
    r->uri_rewritten = 1;
    r->internal = 1; /* as nginx: a rewritten request may reach `internal` locations */
    if (op->flag == F_BREAK) {
        r->uri_changed = 0;
        r->location_rewritten = 1;
    } else {
        r->uri_changed = 1;
    }
    if (op->flag == F_LAST || op->flag == F_BREAK) {
        *stop = 1;
        return RP_DECLINED;
    }
    return RP_OK;
}

/* ---- if ---- */

/* nginx's if conditions: "(" and ")" may stick to the first and last words or stand
 * alone; the words between are the condition. */
static const char *set_if(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    size_t argc = cf->argc;
    char **v = rp_arena_alloc(cf->arena, argc * sizeof(char *));
    for (size_t i = 0; i < argc; i++)
        v[i] = rp_arena_strdup(cf->arena, cf->argv[i]);
    size_t cur, last = argc - 1;
    if (v[1][0] != '(')
        return rp_conf_error(cf, "invalid condition \"%s\"", v[1]);
    if (v[1][1] == '\0') {
        cur = 2;
    } else {
        cur = 1;
        v[1]++;
    }
    size_t ll = strlen(v[last]);
    if (ll < 1 || v[last][ll - 1] != ')')
        return rp_conf_error(cf, "invalid condition \"%s\"", v[last]);
    if (ll == 1) {
        if (last == 0 || last < cur)
            return rp_conf_error(cf, "invalid condition \"%s\"", v[last]);
        last--;
    } else {
        v[last][ll - 1] = '\0';
    }
    if (cur > last)
        return rp_conf_error(cf, "invalid condition \"%s\"", cf->argv[1]);

    rewrite_conf_t *rc = conf;
    size_t index = ops_of(cf, rc)->nelts;
    op_t *op = add_op(cf, rc, OP_IF);
    const char *p = v[cur], *e;
    size_t len = strlen(p);

    if (len > 1 && p[0] == '$') {
        if (cur != last && cur + 2 != last)
            return rp_conf_error(cf, "invalid condition \"%s\"", v[cur]);
        if ((e = rp_cv_compile(cf, p, &op->value)) != NULL)
            return e;
        if (cur == last) {
            op->cond = C_VAR;
        } else {
            const char *o = v[cur + 1];
            if (strcmp(o, "=") == 0 || strcmp(o, "!=") == 0) {
                op->cond = o[0] == '=' ? C_EQ : C_NE;
                if ((e = rp_cv_compile(cf, v[last], &op->right)) != NULL)
                    return e;
            } else if (strcmp(o, "~") == 0 || strcmp(o, "~*") == 0 || strcmp(o, "!~") == 0 ||
                       strcmp(o, "!~*") == 0) {
                char err[512];
                op->cond = C_RE;
                op->negate = o[0] == '!';
                op->pattern = v[last];
                op->re =
                    rp_http_regex_compile(cf, v[last], o[strlen(o) - 1] == '*', err, sizeof(err));
                if (op->re == NULL)
                    return rp_conf_error(cf, "%s", err);
            } else {
                return rp_conf_error(cf, "unexpected \"%s\" in condition", o);
            }
        }
    } else if ((len == 2 && p[0] == '-') || (len == 3 && p[0] == '!' && p[1] == '-')) {
        if (cur + 1 != last)
            return rp_conf_error(cf, "invalid condition \"%s\"", v[cur]);
        char t = p[len - 1];
        if (t != 'f' && t != 'd' && t != 'e' && t != 'x')
            return rp_conf_error(cf, "invalid condition \"%s\"", v[cur]);
        op->cond = C_FILE;
        op->test = t;
        op->negate = p[0] == '!';
        if ((e = rp_cv_compile(cf, v[last], &op->value)) != NULL)
            return e;
    } else {
        return rp_conf_error(cf, "invalid condition \"%s\"", v[cur]);
    }

    unsigned char *saved_touched = cf->touched;
    const char *rv;
    if (!(cf->ctx & (RP_CTX_LOCATION | RP_CTX_LIF))) {
        /* a server's if: its block is only more of the server's script */
        cf->touched = NULL;
        rv = rp_conf_parse_block(cf, RP_CTX_SIF);
    } else {
        /* a location's if: a configuration level of its own */
        if (rc->ifs == NULL) {
            rc->ifs = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
            rp_array_init(rc->ifs, cf->arena, 2, sizeof(if_level_t *));
        }
        if_level_t *lv = rp_arena_calloc(cf->arena, sizeof(*lv));
        lv->parent = rc->level;
        rp_http_conf_ctx_t *ctx = rp_arena_calloc(cf->arena, sizeof(*ctx));
        ctx->main_conf = cf->http_ctx->main_conf;
        ctx->srv_conf = cf->http_ctx->srv_conf;
        ctx->loc_conf = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
        for (size_t m = 0; m < rp_nmodules; m++)
            if (rp_modules[m]->create_loc)
                ctx->loc_conf[m] = rp_modules[m]->create_loc(cf);
        lv->ctx = ctx;
        lv->touched = rp_arena_calloc(cf->arena, rp_nmodules);
        rewrite_conf_t *nrc = ctx->loc_conf[rp_http_rewrite_module.index];
        nrc->ops = rc->ops; /* the block's directives are compiled into this script */
        nrc->ifs = rc->ifs;
        nrc->level = lv;
        *(if_level_t **)rp_array_push(rc->ifs) = lv;
        RP_ARRAY_AT(rc->ops, op_t, index).level = lv;

        rp_http_core_loc_conf_t *pclcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
        rp_http_core_loc_conf_t *clcf = ctx->loc_conf[rp_http_core_module.index];
        clcf->name = pclcf->name;
        clcf->name_len = pclcf->name_len;
        clcf->kind = pclcf->kind;
        clcf->re = pclcf->re;
        clcf->parent = pclcf;
        clcf->file = cf->file;
        clcf->line = cf->line;
        lv->clcf = clcf;

        rp_http_conf_ctx_t *saved = cf->http_ctx;
        cf->http_ctx = ctx;
        cf->touched = lv->touched;
        rv = rp_conf_parse_block(cf, RP_CTX_LIF);
        cf->http_ctx = saved;
    }
    cf->touched = saved_touched;
    if (rv != RP_CONF_OK)
        return rv;
    RP_ARRAY_AT(rc->ops, op_t, index).next = rc->ops->nelts;
    return RP_CONF_OK;
}

/*
 * Merges a location's if levels once the location itself is merged (http_block.c
 * calls it): in the order written, so an enclosing if is ready before the ones
 * inside it.
 */
const char *rp_http_rewrite_merge_ifs(rp_conf_t *cf, void **loc_conf)
{
    rewrite_conf_t *rc = loc_conf[rp_http_rewrite_module.index];
    if (rc == NULL || rc->ifs == NULL)
        return RP_CONF_OK;
    if_level_t **ifs = rc->ifs->elts;
    for (size_t i = 0; i < rc->ifs->nelts; i++) {
        if_level_t *lv = ifs[i];
        void **parent = lv->parent ? lv->parent->loc_conf : loc_conf;
        lv->loc_conf = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
        lv->touched[rp_http_core_module.index] = 1;
        lv->touched[rp_http_rewrite_module.index] = 1;
        cf->file = lv->clcf->file;
        cf->line = lv->clcf->line;
        for (size_t m = 0; m < rp_nmodules; m++) {
            if (!lv->touched[m]) {
                lv->loc_conf[m] = parent[m];
                continue;
            }
            if (rp_modules[m]->merge_loc) {
                const char *rv = rp_modules[m]->merge_loc(cf, parent[m], lv->ctx->loc_conf[m]);
                if (rv != RP_CONF_OK)
                    return rv;
            }
            lv->loc_conf[m] = lv->ctx->loc_conf[m];
        }
        rp_http_core_loc_conf_t *pclcf = parent[rp_http_core_module.index];
        lv->clcf->loc_conf = lv->loc_conf;
        lv->clcf->internal = pclcf->internal;
        if (lv->clcf->content == NULL)
            lv->clcf->content = pclcf->content; /* as nginx: the location's handler stays */
    }
    return RP_CONF_OK;
}

static int file_test(rp_request_t *r, const op_t *op)
{
    rp_str_t path = rp_cv_eval(r, &op->value);
    char buf[PATH_MAX];
    if (path.len == 0 || path.len >= sizeof(buf))
        return 0;
    memcpy(buf, path.data, path.len);
    buf[path.len] = '\0';
    struct stat st;
    if (stat(buf, &st) != 0)
        return 0;
    switch (op->test) {
    case 'f':
        return S_ISREG(st.st_mode);
    case 'd':
        return S_ISDIR(st.st_mode);
    case 'x':
        return (st.st_mode & S_IXUSR) != 0; /* as nginx: a folder's search bit counts */
    default:
        return 1;
    }
}

static int condition(rp_request_t *r, const op_t *op)
{
    rp_str_t left, right;
    switch (op->cond) {
    case C_VAR:
        left = rp_cv_eval(r, &op->value);
        return !(left.len == 0 || (left.len == 1 && left.data[0] == '0'));
    case C_EQ:
    case C_NE:
        left = rp_cv_eval(r, &op->value);
        right = rp_cv_eval(r, &op->right);
        return (left.len == right.len && memcmp(left.data, right.data, left.len) == 0) ==
               (op->cond == C_EQ);
    case C_RE: {
        left = rp_cv_eval(r, &op->value);
        int m = rp_http_regex_exec(r, op->re, left);
        if (logging(r))
            rp_log_error(RP_LOG_NOTICE, 0, "\"%s\" %s \"%.*s\"", op->pattern,
                         m ? "matches" : "does not match", (int)left.len, left.data);
        return m != op->negate;
    }
    default:
        return file_test(r, op) != op->negate;
    }
}

/* ---- the script ---- */

static int run(rp_request_t *r, const rewrite_conf_t *rc)
{
    if (rc == NULL || rc->ops == NULL)
        return RP_DECLINED;
    const rp_array_t *a = rc->ops;
    for (size_t i = 0; i < a->nelts; i++) {
        const op_t *op = &((const op_t *)a->elts)[i];
        switch (op->op) {
        case OP_RETURN:
            return run_return(r, op);
        case OP_STEP: {
            int step_rc = op->step(r, op->data);
            if (step_rc != RP_OK)
                return step_rc;
            break;
        }
        case OP_SET:
            rp_var_set(r, op->var, rp_cv_eval(r, &op->value));
            break;
        case OP_REWRITE: {
            int stop = 0;
            int rw = run_rewrite(r, op, &stop);
            if (stop)
                return rw;
            break;
        }
        case OP_BREAK:
            r->uri_changed = 0;
            return RP_DECLINED;
        case OP_IF:
            if (!condition(r, op)) {
                i = op->next - 1;
                break;
            }
            if (op->level) { /* the request goes on with the if block's configuration */
                r->loc_conf = op->level->loc_conf;
                r->clcf = op->level->clcf;
            }
            break;
        }
    }
    return RP_DECLINED;
}

static int server_rewrite(rp_request_t *r)
{
    return run(r, r->srv->ctx->srv_conf[rp_http_rewrite_module.index]);
}

static int location_rewrite(rp_request_t *r)
{
    return run(r, r->loc_conf[rp_http_rewrite_module.index]);
}

static const char *set_break(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    add_op(cf, conf, OP_BREAK);
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_SERVER_REWRITE, server_rewrite);
    rp_http_add_phase_handler(cf, RP_PHASE_REWRITE, location_rewrite);
    return RP_CONF_OK;
}

#define SRV_LEVEL   (RP_CTX_SERVER | RP_CTX_SIF)
#define LOC_LEVEL   (RP_CTX_LOCATION | RP_CTX_LIF)
#define FLAG_LEVELS (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_SIF | RP_CTX_LOCATION | RP_CTX_LIF)

static const rp_command_t commands[] = {
    {"return", SRV_LEVEL, 0, 1, 2, set_return, RP_CONF_SRV, 0, NULL},
    {"return", LOC_LEVEL, 0, 1, 2, set_return, RP_CONF_LOC, 0, NULL},
    {"set", SRV_LEVEL, 0, 2, 2, set_set, RP_CONF_SRV, 0, NULL},
    {"set", LOC_LEVEL, 0, 2, 2, set_set, RP_CONF_LOC, 0, NULL},
    {"rewrite", SRV_LEVEL, 0, 2, 3, set_rewrite, RP_CONF_SRV, 0, NULL},
    {"rewrite", LOC_LEVEL, 0, 2, 3, set_rewrite, RP_CONF_LOC, 0, NULL},
    {"break", SRV_LEVEL, 0, 0, 0, set_break, RP_CONF_SRV, 0, NULL},
    {"break", LOC_LEVEL, 0, 0, 0, set_break, RP_CONF_LOC, 0, NULL},
    /* as nginx: not inside another if */
    {"if", RP_CTX_SERVER, RP_CMD_BLOCK, 1, RP_ARGS_ANY, set_if, RP_CONF_SRV, 0, NULL},
    {"if", RP_CTX_LOCATION, RP_CMD_BLOCK, 1, RP_ARGS_ANY, set_if, RP_CONF_LOC, 0, NULL},
    {"rewrite_log", FLAG_LEVELS, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(rewrite_conf_t, log), NULL},
    {"uninitialized_variable_warn", FLAG_LEVELS, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(rewrite_conf_t, uninit_warn), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

/* The scripts do not merge (a server's runs before locations, a location's is its own);
 * rewrite_log and uninitialized_variable_warn do. */
rp_module_t rp_http_rewrite_module = {
    .name = "http_rewrite",
    .commands = commands,
    .create_srv = create_conf,
    .create_loc = create_conf,
    .merge_loc = merge_conf,
    .postconfiguration = postconfiguration,
};
