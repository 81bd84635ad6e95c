/*
 * Authorization by a subrequest, as nginx's auth_request module:
 *
 *   location /api/ {
 *       auth_request /_auth;
 *       auth_request_set $user $upstream_http_x_user;
 *       proxy_set_header X-User $user;
 *       proxy_pass http://api;
 *   }
 *   location = /_auth { internal; proxy_pass http://authd; }
 *
 * In the access phase the request makes a GET subrequest to the URI carrying its
 * own header fields (no body) and waits for it, suspended (the worker goes on). The
 * subrequest's status decides: 2xx grants, 401 denies with the subrequest's
 * WWW-Authenticate passed on, 403 denies, anything else fails with 500. The grant
 * or denial goes to the phase runner, which combines it with allow/deny, auth_basic
 * and access_by_lua by `satisfy` (phases.c). The subrequest's body is discarded.
 *
 * auth_request_set evaluates its value in the subrequest, once it is over (so
 * $upstream_http_NAME is the auth service's field, $upstream_status its status),
 * and assigns the variable in the request when it resumes.
 */
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"

#include <string.h>

typedef struct {
    const rp_var_t *var;
    rp_cv_t value;
} auth_set_t;

typedef struct {
    rp_str_t uri, args; /* uri.data NULL: unset; off: uri.len 0 with data "" */
    rp_array_t *sets;   /* auth_set_t; NULL: none at this level */
} auth_request_loc_conf_t;

typedef struct {
    int used;
} auth_request_main_conf_t;

/* A request's wait for its subrequest. */
typedef struct {
    rp_request_t *r;
    rp_request_t *sr; /* while it runs */
    int done;
    int status;
    rp_str_t www_authenticate;
    rp_str_t *values; /* auth_request_set's, in the parent's memory */
} auth_ctx_t;

static rp_str_t copy(rp_arena_t *a, rp_str_t s)
{
    if (s.data == NULL)
        return s;
    return (rp_str_t){rp_arena_strndup(a, s.data, s.len), s.len};
}

/* The subrequest is over: keep what the parent needs, wake it. */
static void on_done(rp_request_t *sr, void *data)
{
    auth_ctx_t *ctx = data;
    rp_request_t *r = ctx->r;
    const auth_request_loc_conf_t *lc = rp_http_loc_conf(r, rp_http_auth_request_module);
    ctx->sr = NULL;
    ctx->done = 1;
    ctx->status = sr->response_started ? sr->status : 0;
    rp_header_t *h = rp_http_out_header(sr, "www-authenticate");
    if (h)
        ctx->www_authenticate = copy(r->arena, h->value);
    if (lc->sets) {
        const auth_set_t *set = lc->sets->elts;
        ctx->values = rp_arena_alloc(r->arena, lc->sets->nelts * sizeof(rp_str_t));
        for (size_t i = 0; i < lc->sets->nelts; i++)
            ctx->values[i] = copy(r->arena, rp_cv_eval(sr, &set[i].value));
    }
    rp_http_resume(r);
}

/* The request ends while its subrequest runs: the subrequest goes on, alone. */
static void ctx_cleanup(rp_request_t *r, void *data)
{
    auth_ctx_t *ctx = data;
    if (ctx->sr)
        rp_http_subrequest_on_done(ctx->sr, NULL, NULL);
    ctx->sr = NULL;
}

static int auth_request_handler(rp_request_t *r)
{
    const auth_request_loc_conf_t *lc = rp_http_loc_conf(r, rp_http_auth_request_module);
    if (lc->uri.len == 0)
        return RP_DECLINED;
    auth_ctx_t *ctx = rp_http_get_ctx(r, rp_http_auth_request_module);
    if (ctx == NULL) {
        ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
        ctx->r = r;
        rp_request_t *sr;
        if (rp_http_subrequest(r, lc->uri, lc->args, RP_HTTP_SUB_BACKGROUND, &sr) != RP_OK)
            return RP_ERROR;
        ctx->sr = sr;
        rp_http_set_ctx(r, rp_http_auth_request_module, ctx);
        rp_http_subrequest_on_done(sr, on_done, ctx);
        rp_http_cleanup_add(r, ctx_cleanup, ctx);
        return RP_AGAIN;
    }
    if (!ctx->done)
        return RP_AGAIN; /* woken by something else: still waiting */

    if (lc->sets) {
        const auth_set_t *set = lc->sets->elts;
        for (size_t i = 0; i < lc->sets->nelts; i++)
            rp_var_set(r, set[i].var, ctx->values[i]);
    }
    if (ctx->status >= 200 && ctx->status < 300)
        return RP_OK;
    if (ctx->status == 401) {
        if (ctx->www_authenticate.data)
            rp_http_add_header(r, RP_STR("WWW-Authenticate"), ctx->www_authenticate);
        return 401;
    }
    if (ctx->status == 403)
        return 403;
    rp_log_error(RP_LOG_ERR, 0, "auth request unexpected status: %d", ctx->status);
    return RP_ERROR;
}

/* ---- configuration ---- */

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(auth_request_main_conf_t));
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(auth_request_loc_conf_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    auth_request_loc_conf_t *p = parent, *c = child;
    if (c->uri.data == NULL) {
        c->uri = p->uri;
        c->args = p->args;
    }
    if (c->sets == NULL)
        c->sets = p->sets;
    return RP_CONF_OK;
}

static const char *set_auth_request(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    auth_request_loc_conf_t *lc = conf;
    if (lc->uri.data)
        return "is duplicate";
    const char *v = cf->argv[1];
    if (strcmp(v, "off") == 0) {
        lc->uri = (rp_str_t){"", 0};
        return RP_CONF_OK;
    }
    if (v[0] != '/')
        return rp_conf_error(cf, "invalid URI \"%s\": it must start with \"/\"", v);
    const char *q = strchr(v, '?');
    size_t len = q ? (size_t)(q - v) : strlen(v);
    lc->uri = (rp_str_t){rp_arena_strndup(cf->arena, v, len), len};
    lc->args =
        q ? (rp_str_t){rp_arena_strdup(cf->arena, q + 1), strlen(q + 1)} : (rp_str_t){NULL, 0};
    auth_request_main_conf_t *m = cf->http_ctx->main_conf[rp_http_auth_request_module.index];
    m->used = 1;
    return RP_CONF_OK;
}

static const char *set_auth_request_set(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    auth_request_loc_conf_t *lc = conf;
    const char *name = cf->argv[1];
    if (name[0] != '$' || name[1] == '\0')
        return rp_conf_error(cf, "invalid variable name \"%s\"", name);
    rp_var_t *v = rp_var_declare(cf, name + 1, strlen(name + 1), RP_VAR_SLOT);
    if (v == NULL)
        return RP_CONF_ERROR;
    if (lc->sets == NULL) {
        lc->sets = rp_arena_calloc(cf->arena, sizeof(*lc->sets));
        rp_array_init(lc->sets, cf->arena, 2, sizeof(auth_set_t));
    }
    auth_set_t *set = rp_array_push(lc->sets);
    const char *err = rp_cv_compile(cf, cf->argv[2], &set->value);
    if (err)
        return err;
    rp_var_use(cf, v);
    set->var = v;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    auth_request_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_http_auth_request_module);
    if (m && m->used)
        rp_http_add_phase_handler(cf, RP_PHASE_ACCESS, auth_request_handler);
    return RP_CONF_OK;
}

#define WHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"auth_request", WHERE, 0, 1, 1, set_auth_request, RP_CONF_LOC, 0, NULL},
    {"auth_request_set", WHERE, 0, 2, 2, set_auth_request_set, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_auth_request_module = {
    .name = "http_auth_request",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
