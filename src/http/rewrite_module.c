/*
 * nginx's rewrite module, as far as rampart has it: `return` and `set`. The
 * directives of one level (a server, or a location) form a script that runs in
 * the order written: at the server level before a location is chosen
 * (SERVER_REWRITE, the usual "redirect everything" idiom), at a location's once
 * it is chosen (REWRITE). A `return` ends the script with a response; a `set`
 * assigns a variable for the rest of the request. As in nginx, a location runs
 * only its own script, not its parent's.
 *
 * `return CODE [TEXT|URL]` and `return URL`: for 301, 302, 303, 307 and 308 the
 * argument is the Location; for other codes it is the body. Code 444 closes the
 * connection without an answer. `set $var VALUE` declares $var (a user variable)
 * or assigns a variable that allows it ($args, $limit_rate).
 */
#include "http/request.h"
#include "http/variables.h"

#include <limits.h>
#include <string.h>

enum { OP_RETURN, OP_SET, OP_STEP };

typedef struct {
    int op;
    int code; /* return */
    int has_text;
    rp_cv_t value; /* return's text, set's value */
    const rp_var_t *var; /* set */
    int (*step)(rp_request_t *r, const void *data); /* another module's step */
    const void *data;
} op_t;

typedef struct {
    rp_array_t *ops; /* op_t; NULL when the level has none */
} rewrite_conf_t;

static void *create_conf(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(rewrite_conf_t));
}

static op_t *add_op(rp_conf_t *cf, rewrite_conf_t *rc, int kind)
{
    if (rc->ops == NULL) {
        rc->ops = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(rc->ops, cf->arena, 2, sizeof(op_t));
    }
    op_t *op = rp_array_push(rc->ops);
    op->op = kind;
    return op;
}

/*
 * Another module's step in the script of the level being read (set_by_lua): it runs
 * in order with `set` and `return`. It returns RP_OK to go on, anything else to end
 * the script with that result.
 */
void rp_http_rewrite_add_step(rp_conf_t *cf, int (*step)(rp_request_t *r, const void *data),
                              const void *data)
{
    rewrite_conf_t *rc = cf->ctx & RP_CTX_LOCATION
                             ? cf->http_ctx->loc_conf[rp_http_rewrite_module.index]
                             : cf->http_ctx->srv_conf[rp_http_rewrite_module.index];
    op_t *op = add_op(cf, rc, OP_STEP);
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
    } else if (cf->argc == 2 && (strncmp(first, "http://", 7) == 0 ||
                                 strncmp(first, "https://", 8) == 0 ||
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

static const char *set_set(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *name = cf->argv[1];
    if (name[0] != '$' || name[1] == '\0')
        return rp_conf_error(cf, "invalid variable name \"%s\"", name);
    rp_var_t *v = rp_var_declare(cf, name + 1, strlen(name + 1), RP_VAR_SLOT);
    if (v == NULL)
        return RP_CONF_ERROR;
    op_t *op = add_op(cf, conf, OP_SET);
    /* compile the value first: "set $a $a;" reads the variable before it is assigned */
    const char *err = rp_cv_compile(cf, cf->argv[2], &op->value);
    if (err)
        return err;
    rp_var_use(cf, v);
    op->var = v;
    return RP_CONF_OK;
}

/*
 * A redirect's target may hold variables the client controls ($uri is decoded, so
 * "%0d%0a" in the request becomes CR LF there): control bytes are percent-encoded
 * back, so they can never split the response head (nginx's well-known pitfall with
 * `return 301 https://host$uri`).
 */
static rp_str_t safe_location(rp_request_t *r, rp_str_t v)
{
    size_t bad = 0;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.data[i] < 0x20 || v.data[i] == 0x7f)
            bad++;
    if (bad == 0)
        return v;
    char *d = rp_arena_alloc(r->arena, v.len + 2 * bad);
    size_t k = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.data[i];
        if (ch < 0x20 || ch == 0x7f) {
            d[k++] = '%';
            d[k++] = "0123456789ABCDEF"[ch >> 4];
            d[k++] = "0123456789ABCDEF"[ch & 15];
        } else {
            d[k++] = (char)ch;
        }
    }
    return (rp_str_t){d, k};
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
            rp_str_t loc = safe_location(r, rp_cv_eval(r, &op->value));
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

static int run(rp_request_t *r, const rewrite_conf_t *rc)
{
    if (rc == NULL || rc->ops == NULL)
        return RP_DECLINED;
    const op_t *ops = rc->ops->elts;
    for (size_t i = 0; i < rc->ops->nelts; i++) {
        if (ops[i].op == OP_RETURN)
            return run_return(r, &ops[i]);
        if (ops[i].op == OP_STEP) {
            int step_rc = ops[i].step(r, ops[i].data);
            if (step_rc != RP_OK)
                return step_rc;
            continue;
        }
        rp_var_set(r, ops[i].var, rp_cv_eval(r, &ops[i].value));
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

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_SERVER_REWRITE, server_rewrite);
    rp_http_add_phase_handler(cf, RP_PHASE_REWRITE, location_rewrite);
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"return", RP_CTX_SERVER, 0, 1, 2, set_return, RP_CONF_SRV, 0, NULL},
    {"return", RP_CTX_LOCATION, 0, 1, 2, set_return, RP_CONF_LOC, 0, NULL},
    {"set", RP_CTX_SERVER, 0, 2, 2, set_set, RP_CONF_SRV, 0, NULL},
    {"set", RP_CTX_LOCATION, 0, 2, 2, set_set, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

/* Neither level merges: a server's script runs before locations, a location's is its own. */
rp_module_t rp_http_rewrite_module = {
    .name = "http_rewrite",
    .commands = commands,
    .create_srv = create_conf,
    .create_loc = create_conf,
    .postconfiguration = postconfiguration,
};
