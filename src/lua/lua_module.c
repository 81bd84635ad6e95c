/*
 * OpenResty's directives: the *_by_lua_block / *_by_lua_file hooks, the package
 * paths, the code cache and the VM's memory cap, and where each hook runs.
 *
 *   init           in the master, once the configuration is loaded (not for -t)
 *   init_worker    in each worker as it starts, detached (it may wait)
 *   set            a step of the rewrite script, in order with `set` (no waits)
 *   rewrite        REWRITE phase, after the rewrite module's script
 *   access         ACCESS phase
 *   content        the location's content handler
 *   header_filter  a header filter after add_header's (no waits)
 *   body_filter    a body filter before gzip (no waits): ngx.arg[1], ngx.arg[2]
 *   log            LOG phase; a log hook that waits goes on after the request
 *
 * Phase handlers and filters are registered only when some hook needs them: a
 * configuration without Lua pays nothing. Hooks set at the http or server level
 * are inherited by locations that set none, as in OpenResty.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "core/process.h"
#include "http/request.h"
#include "http/variables.h"

#include <string.h>

enum { H_REWRITE, H_ACCESS, H_CONTENT, H_HEADER, H_BODY, H_LOG, H_SET, H_N };

typedef struct {
    rp_lua_main_conf_t m;
    int has[H_N];
} lua_main_t;

/* ---- configuration ---- */

static void *create_http_main(rp_conf_t *cf)
{
    lua_main_t *lm = rp_arena_calloc(cf->arena, sizeof(*lm));
    lm->m.code_cache = RP_CONF_UNSET;
    lm->m.max_memory = RP_CONF_UNSET_SIZE;
    lm->m.max_running_time = RP_CONF_UNSET_MSEC;
    return lm;
}

static const char *init_http_main(rp_conf_t *cf, void *conf)
{
    lua_main_t *lm = conf;
    if (lm->m.code_cache == RP_CONF_UNSET)
        lm->m.code_cache = 1;
    if (lm->m.max_memory == RP_CONF_UNSET_SIZE)
        lm->m.max_memory = 0;
    if (lm->m.max_running_time == RP_CONF_UNSET_MSEC)
        lm->m.max_running_time = 0; /* off, as OpenResty: see rampart-lua(7) */
    return RP_CONF_OK;
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(rp_lua_loc_conf_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_lua_loc_conf_t *p = parent, *c = child;
    (void)cf;
    if (c->rewrite == NULL)
        c->rewrite = p->rewrite;
    if (c->access == NULL)
        c->access = p->access;
    if (c->header_filter == NULL)
        c->header_filter = p->header_filter;
    if (c->body_filter == NULL)
        c->body_filter = p->body_filter;
    if (c->log == NULL)
        c->log = p->log;
    return RP_CONF_OK;
}

static lua_main_t *main_of(rp_conf_t *cf)
{
    return cf->http_ctx->main_conf[rp_lua_module.index];
}

/* Reads the hook of the directive being handled: its block, or the file its last
 * argument names; compiles it. */
static const char *read_hook(rp_conf_t *cf, int block, rp_lua_hook_t **out)
{
    rp_lua_hook_t *hook = rp_arena_calloc(cf->arena, sizeof(*hook));
    hook->file = cf->file;
    hook->line = cf->line;
    if (block) {
        size_t start, len;
        unsigned line;
        if (rp_lexer_raw_block(cf->lexer, &start, &len, &line) != 0)
            return rp_conf_error(cf, "%s", cf->lexer->error);
        hook->src = rp_arena_strndup(cf->arena, cf->lexer->text + start, len);
        hook->len = len;
        hook->line = line;
    } else {
        hook->path = rp_conf_conf_path(cf, cf->argv[cf->argc - 1]);
    }
    const char *rv = rp_lua_compile(cf, &main_of(cf)->m, hook);
    if (rv != RP_CONF_OK)
        return rv;
    main_of(cf)->m.has_hooks = 1;
    *out = hook;
    return RP_CONF_OK;
}

const char *rp_lua_read_hook(rp_conf_t *cf, int block, rp_lua_hook_t **out)
{
    return read_hook(cf, block, out);
}

static int kind_of(const rp_command_t *cmd)
{
    return (int)(intptr_t)cmd->post;
}

static const char *set_hook(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_lua_hook_t **slot = (rp_lua_hook_t **)((char *)conf + cmd->offset);
    if (*slot)
        return "is duplicate";
    const char *rv = read_hook(cf, (cmd->flags & RP_CMD_BLOCK) != 0, slot);
    if (rv != RP_CONF_OK)
        return rv;
    int kind = kind_of(cmd);
    if (kind >= 0)
        main_of(cf)->has[kind] = 1;
    if (kind == H_CONTENT) {
        rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
        if (clcf->content)
            return "is duplicate: the location already has a content handler";
        clcf->content = rp_lua_content_handler;
    }
    return RP_CONF_OK;
}

/* ---- set_by_lua ---- */

typedef struct {
    rp_lua_hook_t *hook;
    const rp_var_t *var;
    rp_cv_t *args;
    size_t nargs;
} set_step_t;

static int set_arg_ref = LUA_NOREF; /* the table ngx.arg is during set_by_lua and body_filter */

int rp_lua_push_arg(lua_State *L)
{
    if (set_arg_ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, set_arg_ref);
    return 1;
}

static void arg_set(lua_State *L)
{
    /* the table on the top becomes ngx.arg (popped) */
    if (set_arg_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, set_arg_ref);
    set_arg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void arg_clear(lua_State *L)
{
    if (set_arg_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, set_arg_ref);
    set_arg_ref = LUA_NOREF;
}

static int run_set(rp_request_t *r, const void *data)
{
    const set_step_t *st = data;
    lua_State *L = rp_lua_vm();
    lua_createtable(L, (int)st->nargs, 0);
    for (size_t i = 0; i < st->nargs; i++) {
        rp_str_t v = rp_cv_eval(r, &st->args[i]);
        lua_pushlstring(L, v.data, v.len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    arg_set(L);
    rp_lua_co_t *co;
    int rc = rp_lua_run_sync(r, st->hook, RP_LUA_SET, &co);
    arg_clear(L);
    if (rc != 0) {
        rp_lua_co_free(co);
        return RP_ERROR;
    }
    size_t len = 0;
    const char *s = lua_gettop(co->L) >= 1 ? lua_tolstring(co->L, 1, &len) : NULL;
    rp_str_t value = s ? (rp_str_t){rp_arena_strndup(r->arena, s, len), len} : RP_STR("");
    rp_lua_co_free(co);
    rp_var_set(r, st->var, value);
    return RP_OK;
}

static const char *set_set_by_lua(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)conf;
    int block = (cmd->flags & RP_CMD_BLOCK) != 0;
    const char *name = cf->argv[1];
    if (name[0] != '$' || name[1] == '\0')
        return rp_conf_error(cf, "invalid variable name \"%s\"", name);
    set_step_t *st = rp_arena_calloc(cf->arena, sizeof(*st));
    rp_var_t *v = rp_var_declare(cf, name + 1, strlen(name + 1), RP_VAR_SLOT);
    if (v == NULL)
        return RP_CONF_ERROR;
    rp_var_use(cf, v);
    st->var = v;
    /* set_by_lua_block $v { }: no arguments; set_by_lua_file $v PATH [ARGS]; set_by_lua
     * $v CODE [ARGS] */
    size_t first_arg = block ? 2 : 3;
    if (cf->argc > first_arg) {
        st->nargs = cf->argc - first_arg;
        st->args = rp_arena_calloc(cf->arena, st->nargs * sizeof(rp_cv_t));
        for (size_t i = 0; i < st->nargs; i++) {
            const char *err = rp_cv_compile(cf, cf->argv[first_arg + i], &st->args[i]);
            if (err)
                return err;
        }
    }
    if (!block && strcmp(cf->argv[0], "set_by_lua") == 0) {
        st->hook = rp_arena_calloc(cf->arena, sizeof(*st->hook));
        st->hook->src = cf->argv[2];
        st->hook->len = strlen(cf->argv[2]);
        st->hook->file = cf->file;
        st->hook->line = cf->line;
        const char *rv = rp_lua_compile(cf, &main_of(cf)->m, st->hook);
        if (rv != RP_CONF_OK)
            return rv;
        main_of(cf)->m.has_hooks = 1;
    } else {
        char **argv = cf->argv;
        size_t argc = cf->argc;
        if (!block)
            cf->argc = 3; /* the path is the last argument read_hook looks at */
        const char *rv = read_hook(cf, block, &st->hook);
        cf->argv = argv;
        cf->argc = argc;
        if (rv != RP_CONF_OK)
            return rv;
    }
    rp_http_rewrite_add_step(cf, run_set, st);
    return RP_CONF_OK;
}

/* ---- phase handlers ---- */

static int phase_hook(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase)
{
    if (hook == NULL)
        return RP_DECLINED;
    int rc = rp_lua_run_request_hook(r, hook, phase);
    if (rc != RP_AGAIN && r->response_started && !r->ended && rp_lua_req(r)->failed) {
        rp_http_abort(r); /* a header or body filter failed: the response is cut */
        return RP_DONE;
    }
    if (rc == RP_DECLINED && r->response_started) {
        /* it answered (ngx.say) without ngx.exit: the answer is complete */
        if (!r->ended)
            rp_http_response_end(r);
        return RP_DONE;
    }
    if (rc == RP_ERROR && r->response_started) {
        rp_http_abort(r);
        return RP_DONE;
    }
    return rc;
}

static int rewrite_handler(rp_request_t *r)
{
    rp_lua_loc_conf_t *llcf = rp_http_loc_conf(r, rp_lua_module);
    return phase_hook(r, llcf->rewrite, RP_LUA_REWRITE);
}

static int access_handler(rp_request_t *r)
{
    rp_lua_loc_conf_t *llcf = rp_http_loc_conf(r, rp_lua_module);
    return phase_hook(r, llcf->access, RP_LUA_ACCESS);
}

int rp_lua_content_handler(rp_request_t *r)
{
    rp_lua_loc_conf_t *llcf = rp_http_loc_conf(r, rp_lua_module);
    int rc = rp_lua_run_request_hook(r, llcf->content, RP_LUA_CONTENT);
    switch (rc) {
    case RP_AGAIN:
        return RP_AGAIN;
    case RP_DONE:
        return RP_DONE;
    case RP_ERROR:
        if (r->response_started) {
            rp_http_abort(r);
            return RP_DONE;
        }
        return RP_ERROR;
    default: /* the hook ended: so does the response */
        if (r->ended)
            return RP_DONE;
        if (!r->response_started && r->out_length < 0)
            r->out_length = 0;
        if (rp_lua_send_head(r) != 0) {
            rp_http_abort(r);
            return RP_DONE;
        }
        rp_http_response_end(r);
        return RP_DONE;
    }
}

static int log_handler(rp_request_t *r)
{
    rp_lua_loc_conf_t *llcf = r->loc_conf ? rp_http_loc_conf(r, rp_lua_module) : NULL;
    if (llcf == NULL || llcf->log == NULL || rp_lua_vm() == NULL)
        return RP_OK;
    rp_lua_run_log_hook(r, llcf->log);
    return RP_OK;
}

/* The end of a header_filter_by_lua run: 0 to go on, -1 when it failed (logged). */
static int header_hook_ended(rp_lua_co_t *co, int rc)
{
    if (rc != 0 && rc != LUA_YIELD) {
        rp_lua_log_error(co->L, rc, "header_filter");
        return -1;
    }
    return 0;
}

/* header_filter_by_lua failed (logged) before the head went out: the client gets a bare
 * 500 instead of the response, whose body the body filter drops (OpenResty leaves the
 * request hanging until the client gives up). */
static void fail_head(rp_request_t *r)
{
    rp_lua_req(r)->drop_body = 1;
    r->status = 500;
    r->reason = RP_NULL_STR;
    r->nout_headers = 0;
    r->out_length = 0;
}

/* A header filter hook that waited (beyond OpenResty: a cosocket or ngx.sleep there)
 * was woken: it goes on, and once it ends the head goes on down the chain. */
static void header_filter_continue(rp_lua_co_t *co)
{
    rp_request_t *r = co->r;
    int rc = rp_lua_co_resume(co, co->nresults);
    if (rc == LUA_YIELD && !co->exited) {
        lua_settop(co->L, 0);
        if (!co->waiting) {
            co->waiting = 1;
            rp_lua_wake(co, 0);
        }
        return;
    }
    const rp_http_header_filter_t *self = co->user;
    rp_lua_req(r)->hf_co = NULL;
    int failed = header_hook_ended(co, rc);
    rp_lua_co_free(co);
    if (failed)
        fail_head(r);
    rp_http_header_resume(r, self);
}

static int header_filter(rp_request_t *r, const rp_http_header_filter_t *self)
{
    rp_lua_loc_conf_t *llcf = rp_http_loc_conf(r, rp_lua_module);
    if (llcf->header_filter) {
        rp_lua_co_t *co = rp_lua_co_new(r, RP_LUA_HEADER_FILTER);
        if (rp_lua_push_hook(co->L, llcf->header_filter, rp_lua_main->code_cache) != 0) {
            rp_lua_log_error(co->L, LUA_ERRSYNTAX, "header_filter");
            rp_lua_co_free(co);
            fail_head(r);
            return rp_http_next_header(r, self);
        }
        int rc = rp_lua_co_resume(co, 0);
        if (rc == LUA_YIELD && !co->exited) {
            /* it waits: the head waits with it (what the producer writes meanwhile is
             * held by the filter chain) */
            lua_settop(co->L, 0);
            co->resume = header_filter_continue;
            co->user = (void *)self;
            rp_lua_req(r)->hf_co = co;
            if (!co->waiting) {
                co->waiting = 1;
                rp_lua_wake(co, 0);
            }
            return RP_AGAIN;
        }
        int failed = header_hook_ended(co, rc);
        rp_lua_co_free(co);
        if (failed)
            fail_head(r);
    }
    return rp_http_next_header(r, self);
}

static int body_filter(rp_request_t *r, const rp_http_body_filter_t *self,
                       const struct iovec *iov, int iovcnt, unsigned flags)
{
    rp_lua_loc_conf_t *llcf = rp_http_loc_conf(r, rp_lua_module);
    rp_lua_req_t *failed = rp_http_get_ctx(r, rp_lua_module);
    if (failed && failed->drop_body) /* header_filter_by_lua failed: a bare 500 */
        return (flags & RP_BODY_LAST) ? rp_http_next_body(r, self, NULL, 0, flags) : 0;
    if (llcf->body_filter == NULL)
        return rp_http_next_body(r, self, iov, iovcnt, flags);
    rp_lua_req_t *ctx = rp_lua_req(r);
    if (ctx->body_done) { /* the script ended the body early (ngx.arg[2] = true) */
        if (flags & RP_BODY_LAST)
            return rp_http_next_body(r, self, NULL, 0, flags);
        return 0;
    }
    if (ctx->failed) /* it failed on an earlier chunk: the response is being cut */
        return -1;
    lua_State *L = rp_lua_vm();
    lua_createtable(L, 2, 0);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 0; i < iovcnt; i++)
        luaL_addlstring(&b, iov[i].iov_base, iov[i].iov_len);
    luaL_pushresult(&b);
    lua_rawseti(L, -2, 1);
    lua_pushboolean(L, (flags & RP_BODY_LAST) != 0);
    lua_rawseti(L, -2, 2);
    lua_pushvalue(L, -1);
    arg_set(L);
    rp_lua_co_t *co;
    int rc = rp_lua_run_sync(r, llcf->body_filter, RP_LUA_BODY_FILTER, &co);
    rp_lua_co_free(co);
    arg_clear(L);
    if (rc != 0) {
        ctx->failed = 1;
        lua_pop(L, 1);
        return -1;
    }
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    size_t len = 0;
    const char *data = lua_tolstring(L, -2, &len);
    int eof = lua_toboolean(L, -1);
    if (eof && !(flags & RP_BODY_LAST)) {
        /* the rest of the body is dropped; the end itself goes out when the producer
         * ends it: ending the response here would free the request under a producer
         * that still writes (content_by_lua going on after ngx.say) */
        ctx->body_done = 1;
    }
    struct iovec out = {(void *)data, data ? len : 0};
    /* the string stays referenced on L's stack while the next filters copy it */
    rc = rp_http_next_body(r, self, &out, out.iov_len ? 1 : 0, flags);
    lua_pop(L, 3);
    return rc;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    lua_main_t *lm = rp_http_main_conf(cf->cycle, &rp_lua_module);
    if (lm == NULL || !lm->m.has_hooks)
        return RP_CONF_OK;
    if (lm->has[H_REWRITE])
        rp_http_add_phase_handler(cf, RP_PHASE_REWRITE, rewrite_handler);
    if (lm->has[H_ACCESS])
        rp_http_add_phase_handler(cf, RP_PHASE_ACCESS, access_handler);
    if (lm->has[H_LOG])
        rp_http_add_phase_handler(cf, RP_PHASE_LOG, log_handler);
    if (lm->has[H_HEADER])
        rp_http_add_header_filter(cf, RP_FILTER_LUA, "lua", header_filter);
    if (lm->has[H_BODY] || lm->has[H_HEADER]) /* the header filter's failure drops the body */
        rp_http_add_body_filter(cf, RP_FILTER_LUA, "lua", body_filter);
    return RP_CONF_OK;
}

/* ---- process hooks ---- */

static int init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen)
{
    (void)prev;
    lua_main_t *lm = rp_http_main_conf(cycle, &rp_lua_module);
    if (lm == NULL || lm->m.vm == NULL) {
        rp_lua_main = NULL;
        rp_lua_set_vm(NULL);
        return 0;
    }
    if (flags & RP_INIT_TEST)
        return 0; /* compiled already; init_by_lua runs when it serves */
    lm->m.worker_count = rp_core_conf(cycle)->worker_processes;
    if (!rp_core_conf(cycle)->master_process)
        lm->m.worker_count = 1;
    lm->m.prefix = cycle->prefix;
    if (rp_lua_vm_finish(cycle, &lm->m, err, errlen) != 0)
        return -1;
    rp_lua_main = &lm->m;
    rp_lua_set_vm(lm->m.vm->L);
    if (lm->m.init) {
        rp_lua_co_t *co;
        if (rp_lua_run_sync(NULL, lm->m.init, RP_LUA_INIT, &co) != 0) {
            const rp_lua_hook_t *h = lm->m.init;
            const char *msg =
                rp_lua_full_place(co->L, lua_tostring(co->L, -1), h->path ? h->path : h->file);
            snprintf(err, errlen, "%s:%u: init_by_lua failed: %s", h->file, h->line, msg);
            rp_lua_co_free(co);
            return -1;
        }
        rp_lua_co_free(co);
    }
    return 0;
}

static int init_worker(rp_cycle_t *cycle)
{
    lua_main_t *lm = rp_http_main_conf(cycle, &rp_lua_module);
    if (lm == NULL || lm->m.vm == NULL)
        return 0;
    rp_lua_main = &lm->m;
    rp_lua_set_vm(lm->m.vm->L);
    rp_lua_worker_exiting = 0;
    rp_lua_watchdog_start(lm->m.max_running_time);
    if (lm->m.init_worker) {
        lua_State *L = lm->m.vm->L;
        if (rp_lua_push_hook(L, lm->m.init_worker, lm->m.code_cache) != 0) {
            rp_log_error(RP_LOG_ERR, 0, "init_worker_by_lua: %s", lua_tostring(L, -1));
            lua_pop(L, 1);
            return 0; /* logged, not fatal to the node */
        }
        rp_lua_spawn(L, 0, RP_LUA_INIT_WORKER, NULL, NULL);
    }
    return 0;
}

/* The worker exits: its VM is closed first. Left to the exit, LeakSanitizer reports
 * the memory of JIT-compiled traces, which only the VM's machine code (mapped apart,
 * not scanned) points to. */
static void exit_worker(rp_cycle_t *cycle)
{
    lua_main_t *lm = rp_http_main_conf(cycle, &rp_lua_module);
    if (lm == NULL || lm->m.vm == NULL || lm->m.vm->L == NULL)
        return;
    lua_State *L = lm->m.vm->L;
    lm->m.vm->L = NULL; /* the cycle's own cleanup, if it runs, finds it closed */
    rp_lua_set_vm(NULL);
    rp_lua_main = NULL;
    lua_close(L);
}

static void stop_worker(rp_cycle_t *cycle)
{
    (void)cycle;
    rp_lua_worker_exiting = 1;
}

/* also in a location's if, as OpenResty */
#define LOC_CTX (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION | RP_CTX_LIF)
/* the kind of hook a directive sets (cmd->post); one entry per directive, spelled out so
 * t/integration/test_docs.py reads every name */
#define KIND(k) ((const void *)(intptr_t)(k))

static const rp_command_t commands[] = {
    {"lua_package_path", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_str, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, package_path), NULL},
    {"lua_package_cpath", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_str, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, package_cpath), NULL},
    {"lua_code_cache", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_flag, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, code_cache), NULL},
    {"lua_max_memory", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_size, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, max_memory), NULL},
    {"lua_max_running_time", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_msec, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, max_running_time), NULL},
    {"init_by_lua_block", RP_CTX_HTTP, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, init), KIND(-1)},
    {"init_by_lua_file", RP_CTX_HTTP, 0, 1, 1, set_hook, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, init), KIND(-1)},
    {"init_worker_by_lua_block", RP_CTX_HTTP, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, init_worker), KIND(-1)},
    {"init_worker_by_lua_file", RP_CTX_HTTP, 0, 1, 1, set_hook, RP_CONF_HTTP_MAIN,
     offsetof(rp_lua_main_conf_t, init_worker), KIND(-1)},
    {"rewrite_by_lua_block", LOC_CTX, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, rewrite), KIND(H_REWRITE)},
    {"rewrite_by_lua_file", LOC_CTX, 0, 1, 1, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, rewrite), KIND(H_REWRITE)},
    {"access_by_lua_block", LOC_CTX, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, access), KIND(H_ACCESS)},
    {"access_by_lua_file", LOC_CTX, 0, 1, 1, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, access), KIND(H_ACCESS)},
    {"content_by_lua_block", RP_CTX_LOCATION | RP_CTX_LIF, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, content), KIND(H_CONTENT)},
    {"content_by_lua_file", RP_CTX_LOCATION | RP_CTX_LIF, 0, 1, 1, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, content), KIND(H_CONTENT)},
    {"header_filter_by_lua_block", LOC_CTX, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, header_filter), KIND(H_HEADER)},
    {"header_filter_by_lua_file", LOC_CTX, 0, 1, 1, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, header_filter), KIND(H_HEADER)},
    {"body_filter_by_lua_block", LOC_CTX, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, body_filter), KIND(H_BODY)},
    {"body_filter_by_lua_file", LOC_CTX, 0, 1, 1, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, body_filter), KIND(H_BODY)},
    {"log_by_lua_block", LOC_CTX, RP_CMD_BLOCK, 0, 0, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, log), KIND(H_LOG)},
    {"log_by_lua_file", LOC_CTX, 0, 1, 1, set_hook, RP_CONF_LOC,
     offsetof(rp_lua_loc_conf_t, log), KIND(H_LOG)},
    {"set_by_lua_block", RP_CTX_SERVER | RP_CTX_LOCATION | RP_CTX_SIF | RP_CTX_LIF, RP_CMD_BLOCK, 1, 1, set_set_by_lua,
     RP_CONF_LOC, 0, NULL},
    {"set_by_lua_file", RP_CTX_SERVER | RP_CTX_LOCATION | RP_CTX_SIF | RP_CTX_LIF, 0, 2, RP_ARGS_ANY, set_set_by_lua,
     RP_CONF_LOC, 0, NULL},
    {"set_by_lua", RP_CTX_SERVER | RP_CTX_LOCATION | RP_CTX_SIF | RP_CTX_LIF, 0, 2, RP_ARGS_ANY, set_set_by_lua,
     RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_lua_module = {
    .name = "lua",
    .commands = commands,
    .create_http_main = create_http_main,
    .init_http_main = init_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
    .init_master = init_master,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
    .exit_worker = exit_worker,
};
