/*
 * Running hooks: a coroutine per hook run, suspended when it waits and resumed
 * when its wait ends.
 *
 * A request's rewrite, access and content hooks run inside the phase engine: a
 * wait returns RP_AGAIN from the phase handler, the waker resumes the request's
 * phases, and the handler, called again, resumes the coroutine with the waker's
 * results. Filters and set_by_lua run to their end (they may not wait, as in
 * OpenResty). A detached hook (init_worker, a timer, a log hook that waits) has no
 * phase engine under it: it is resumed from the event loop.
 *
 * The coroutine records are malloc'd, not in the request's arena: a log hook that
 * waits outlives its request.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "core/time.h"
#include "http/request.h"
#include "observe/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static rp_lua_co_t *cur;
static char wait_token;
rp_lua_main_conf_t *rp_lua_main;

void *rp_lua_wait_token(void)
{
    return &wait_token;
}

rp_lua_co_t *rp_lua_current(lua_State *L)
{
    (void)L;
    return cur;
}

rp_request_t *rp_lua_request(lua_State *L)
{
    (void)L;
    return cur ? cur->r : NULL;
}

rp_lua_phase_t rp_lua_phase(lua_State *L)
{
    (void)L;
    return cur ? cur->phase : RP_LUA_INIT;
}

void rp_lua_check_phase(lua_State *L, unsigned mask)
{
    rp_lua_phase_t ph = rp_lua_phase(L);
    if (!(mask & (1u << ph)))
        luaL_error(L, "API disabled in the context of %s", rp_lua_phase_names[ph]);
}

/* ---- coroutine records ---- */

static void on_post(evutil_socket_t fd, short what, void *arg);

static rp_lua_co_t *co_new(lua_State *vm, rp_request_t *r, rp_lua_phase_t phase);

rp_lua_co_t *rp_lua_co_new(rp_request_t *r, rp_lua_phase_t phase)
{
    return co_new(rp_lua_vm(), r, phase);
}

/*
 * Threads that ran a hook to its end, kept for the next hook: a coroutine whose
 * function returned is as good as new once its stack is emptied (LuaJIT resumes it
 * from a fresh function), and making one (lua_newthread and its registry reference)
 * was a fifth of a trivial hook's cost. Threads that failed or were abandoned while
 * suspended are never reused.
 */
#define THREAD_POOL 64
static struct {
    lua_State *L;
    int ref;
} pool[THREAD_POOL];
static unsigned npool;
static lua_State *pool_vm; /* the VM the pooled threads belong to */

static rp_lua_co_t *co_new(lua_State *vm, rp_request_t *r, rp_lua_phase_t phase)
{
    rp_lua_co_t *co = rp_xcalloc(1, sizeof(*co));
    if (pool_vm != vm)
        npool = 0; /* another generation's VM: its threads went with it */
    if (npool) {
        npool--;
        co->L = pool[npool].L;
        co->ref = pool[npool].ref;
    } else {
        pool_vm = vm;
        co->L = lua_newthread(vm);
        co->ref = luaL_ref(vm, LUA_REGISTRYINDEX);
    }
    co->r = r;
    co->phase = phase;
    return co;
}

static int collect(lua_State *L)
{
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

void rp_lua_co_free(rp_lua_co_t *co)
{
    if (co == NULL)
        return;
    if (co->cancel) {
        void (*cancel)(rp_lua_co_t *, void *) = co->cancel;
        co->cancel = NULL;
        cancel(co, co->cancel_data);
    }
    if (co->on_free)
        co->on_free(co);
    if (co->timer)
        event_free(co->timer);
    if (co->post)
        event_free(co->post);
    rp_lua_threads_orphan(co); /* a timer's light threads outlive it (lua_thread.c) */
    lua_State *vm = rp_lua_vm();
    if (vm && vm == pool_vm && npool < THREAD_POOL && lua_status(co->L) == 0 && !co->waiting &&
        !co->no_pool) {
        lua_settop(co->L, 0);
        pool[npool].L = co->L;
        pool[npool].ref = co->ref;
        npool++;
    } else if (vm) {
        luaL_unref(vm, LUA_REGISTRYINDEX, co->ref);
    }
    free(co);
}

/* How deep resumes nest (a hook that spawns a thread or a timer resumes it at once),
 * and the number of the outermost run, published for the watchdog (lua_watchdog.c):
 * the worker is "in Lua" from the outermost resume to its return. */
static unsigned depth;
static uint64_t last_run;

static int co_resume(rp_lua_co_t *co, int nargs);

int rp_lua_co_resume(rp_lua_co_t *co, int nargs)
{
    return co_resume(co, nargs);
}

static int co_resume(rp_lua_co_t *co, int nargs)
{
    rp_lua_co_t *saved = cur;
    cur = co;
    co->waiting = 0;
    co->woken = 0;
    rp_lua_vm_t *vm = rp_lua_main ? rp_lua_main->vm : NULL;
    if (vm)
        vm->running++;
    if (depth++ == 0)
        atomic_store_explicit(&rp_lua_running_run, ++last_run, memory_order_relaxed);
    int rc = lua_resume(co->L, nargs);
    if (vm)
        vm->running--;
    if (--depth == 0) {
        atomic_store_explicit(&rp_lua_running_run, 0, memory_order_relaxed);
        rp_lua_watchdog_run_ended(co->L);
    }
    cur = saved;
    return rc;
}

/* After a hook ran out of memory (lua_max_memory) and was freed: collect now, so what it
 * held is not counted against the next hooks (Lua 5.1 has no emergency collection). */
static void collect_after(int rc)
{
    lua_State *vm = rp_lua_vm();
    /* protected: a script's finalizer (__gc) that raises would otherwise panic the VM */
    if (rc == LUA_ERRMEM && vm && lua_cpcall(vm, collect, NULL) != 0) {
        rp_log_error(RP_LOG_ERR, 0, "lua: a finalizer failed: %s", lua_tostring(vm, -1));
        lua_pop(vm, 1);
    }
}

int rp_lua_yield(lua_State *L)
{
    rp_lua_co_t *co = cur;
    if (co == NULL || co->sync || co->phase == RP_LUA_INIT)
        return luaL_error(L, "API disabled in the context of %s",
                          rp_lua_phase_names[co ? co->phase : RP_LUA_INIT]);
    co->waiting = 1;
    lua_pushlightuserdata(L, &wait_token);
    return lua_yield(L, 1);
}

void rp_lua_wake(rp_lua_co_t *co, int nresults)
{
    co->woken = 1;
    co->nresults = nresults;
    if (co->r && !co->detached && co->resume == NULL) {
        rp_http_resume(co->r);
        return;
    }
    if (co->post == NULL)
        co->post = event_new(rp_event_base, -1, 0, on_post, co);
    event_active(co->post, EV_WRITE, 1);
}

void rp_lua_log_error(lua_State *co, int status, const char *what)
{
    const char *msg = lua_tostring(co, -1);
    if (msg == NULL)
        msg = status == LUA_ERRMEM ? "not enough memory" : "(error object is not a string)";
    luaL_traceback(co, co, msg, 0);
    rp_metrics_lua_error();
    rp_log_error(RP_LOG_ERR, 0, "lua entry thread aborted: %s error in %s: %s",
                 status == LUA_ERRMEM ? "memory" : "runtime", what, lua_tostring(co, -1));
    lua_pop(co, 1);
}

/* A hook's error message with its file name whole (Lua keeps only the end of a long one). */
static void full_error_place(rp_lua_co_t *co, const rp_lua_hook_t *hook)
{
    if (lua_type(co->L, -1) != LUA_TSTRING)
        return;
    rp_lua_full_place(co->L, lua_tostring(co->L, -1), hook->path ? hook->path : hook->file);
    lua_replace(co->L, -2);
}

/* ---- detached hooks ---- */

static void run_detached(rp_lua_co_t *co, int nargs)
{
    int rc = co_resume(co, nargs);
    if (rc == LUA_YIELD && !co->exited) {
        lua_settop(co->L, 0);
        if (!co->waiting) { /* a bare coroutine.yield(): go on at the next turn */
            co->waiting = 1;
            rp_lua_wake(co, 0);
        }
        return;
    }
    if (rc != 0 && rc != LUA_YIELD)
        rp_lua_log_error(co->L, rc, rp_lua_phase_names[co->phase]);
    if (co->on_done)
        co->on_done(co, rc == LUA_YIELD ? 0 : rc);
    rp_lua_co_free(co);
    collect_after(rc);
}

static void on_post(evutil_socket_t fd, short what, void *arg)
{
    rp_lua_co_t *co = arg;
    (void)fd;
    (void)what;
    if (co->resume) {
        co->resume(co);
        return;
    }
    run_detached(co, co->nresults);
}

rp_lua_co_t *rp_lua_spawn(lua_State *L, int nargs, rp_lua_phase_t phase,
                          void (*on_done)(rp_lua_co_t *co, int status), void *user)
{
    lua_State *vm = rp_lua_vm();
    rp_lua_co_t *co = co_new(vm, NULL, phase);
    co->detached = 1;
    co->on_done = on_done;
    co->user = user;
    lua_xmove(L, co->L, nargs + 1);
    run_detached(co, nargs);
    return NULL; /* it may have ended: the caller keeps no pointer */
}

/* ---- a request's hooks ---- */

static void req_cleanup(rp_request_t *r, void *data)
{
    rp_lua_req_t *ctx = data;
    if (ctx->co) {
        rp_lua_co_free(ctx->co);
        ctx->co = NULL;
    }
    if (ctx->hf_co) {
        rp_lua_co_free(ctx->hf_co);
        ctx->hf_co = NULL;
    }
    rp_lua_threads_cleanup(r); /* after the entry: its wait on a thread is cancelled first */
}

/* ngx.ctx lives until the request's memory goes: the request's cleanups run before its
 * log phase, and log_by_lua reads ngx.ctx too. */
static void ctx_release(void *data)
{
    rp_lua_req_t *ctx = data;
    lua_State *vm = rp_lua_vm();
    if (vm && ctx->ctx_ref != LUA_NOREF)
        luaL_unref(vm, LUA_REGISTRYINDEX, ctx->ctx_ref);
    ctx->ctx_ref = LUA_NOREF;
}

rp_lua_req_t *rp_lua_req(rp_request_t *r)
{
    rp_lua_req_t *ctx = rp_http_get_ctx(r, rp_lua_module);
    if (ctx)
        return ctx;
    ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    ctx->ctx_ref = LUA_NOREF;
    rp_http_set_ctx(r, rp_lua_module, ctx);
    rp_http_cleanup_add(r, req_cleanup, ctx);
    rp_arena_cleanup(r->arena, ctx_release, ctx);
    return ctx;
}

static int exit_result(rp_request_t *r, int code, rp_lua_phase_t phase)
{
    if (code == 0)
        return RP_OK; /* in access_by_lua: a grant (satisfy any ends the phase) */
    if (code == RP_LUA_EXIT_MOVED)
        return RP_AGAIN; /* ngx.exec: the phases restart from the loop */
    if (code == -1 && !r->response_started) {
        /* ngx.ERROR: the request is abandoned, as nginx's NGX_ERROR: no answer */
        rp_http_close_now(r);
        return RP_DONE;
    }
    if (r->response_started) {
        if (rp_lua_req(r)->failed) /* a filter failed: the response is cut */
            rp_http_abort(r);
        else if (!r->ended)
            rp_http_response_end(r);
        return RP_DONE;
    }
    if (code == 444) {
        r->status = 444;
        rp_http_close_now(r);
        return RP_DONE;
    }
    if (phase == RP_LUA_ACCESS && (code == 401 || code == 403))
        return code; /* a denial: the phase runner answers it, or keeps it (satisfy any) */
    if (code >= 300 || code < 200)
        return rp_http_send_error(r, code);
    /* a 2xx without output: the head as the first ngx.say would send it, and the end
     * (OpenResty's answer: default_type, no body) */
    r->status = code;
    if (rp_lua_send_head(r) != 0) {
        rp_http_abort(r);
        return RP_DONE;
    }
    rp_http_response_end(r);
    return RP_DONE;
}

int rp_lua_run_request_hook(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase)
{
    rp_lua_req_t *ctx = rp_lua_req(r);
    rp_lua_co_t *co = ctx->co;
    int nargs = 0;
    if (co && co->phase == phase && co->done) {
        /* the entry coroutine ended before its light threads: the phase waits for the
         * last one (which resumes the request), or for a light thread's ngx.exit */
        if (!co->exited && rp_lua_threads_live(r))
            return RP_AGAIN;
        goto ended;
    }
    if (co && co->phase == phase && co->waiting) {
        if (!co->woken)
            return RP_AGAIN; /* resumed by something else: still waiting */
        nargs = co->nresults;
    } else {
        if (co)
            rp_lua_co_free(co);
        co = ctx->co = co_new(rp_lua_vm(), r, phase);
        if (rp_lua_push_hook(co->L, hook, rp_lua_main->code_cache) != 0) {
            rp_lua_log_error(co->L, LUA_ERRSYNTAX, rp_lua_phase_names[phase]);
            ctx->co = NULL;
            rp_lua_co_free(co);
            return RP_ERROR;
        }
    }
    int rc = co_resume(co, nargs);
    if (co->detached) {
        /* ngx.eof() ended the response and let the hook go on without the request
         * (lua_output.c): it runs from the loop now; the request is answered */
        if (rc == LUA_YIELD && !co->exited) {
            lua_settop(co->L, 0);
            if (!co->waiting) {
                co->waiting = 1;
                rp_lua_wake(co, 0);
            } else if (co->woken) {
                rp_lua_wake(co, co->nresults);
            }
            return RP_DONE;
        }
        if (rc != 0 && rc != LUA_YIELD)
            rp_lua_log_error(co->L, rc, rp_lua_phase_names[phase]);
        rp_lua_co_free(co);
        return RP_DONE;
    }
    if (rc == LUA_YIELD && !co->exited) {
        lua_settop(co->L, 0);
        if (!co->waiting) { /* a bare coroutine.yield() in the entry coroutine */
            co->waiting = 1;
            rp_lua_wake(co, 0);
        }
        return RP_AGAIN;
    }
    if (rc != 0 && rc != LUA_YIELD) {
        full_error_place(co, hook);
        ctx->co = NULL;
        rp_lua_log_error(co->L, rc, rp_lua_phase_names[phase]);
        rp_lua_threads_kill(r); /* the entry thread's error ends its light threads */
        rp_lua_co_free(co);
        collect_after(rc);
        return RP_ERROR;
    }
    if (co->exited) {
        rp_lua_threads_kill(r); /* ngx.exit ends every thread of the request */
    } else if (rp_lua_threads_live(r)) {
        co->done = 1; /* OpenResty: the phase ends after the last light thread */
        return RP_AGAIN;
    }
ended:
    ctx->co = NULL;
    int exited = co->exited, code = co->exit_code;
    rp_lua_co_free(co);
    if (r->ended)
        return RP_DONE;
    if (!exited) /* access_by_lua that just ends neither grants nor denies, as OpenResty */
        return phase == RP_LUA_ACCESS ? RP_DECLINED : RP_OK;
    return exit_result(r, code, phase);
}

int rp_lua_run_log_hook(rp_request_t *r, const rp_lua_hook_t *hook)
{
    rp_lua_co_t *co = co_new(rp_lua_vm(), r, RP_LUA_LOG);
    if (rp_lua_push_hook(co->L, hook, rp_lua_main->code_cache) != 0) {
        rp_lua_log_error(co->L, LUA_ERRSYNTAX, "log");
        rp_lua_co_free(co);
        return RP_ERROR;
    }
    int rc = co_resume(co, 0);
    if (rc == LUA_YIELD && !co->exited) {
        /* it waits: it goes on after the request, without it (OpenResty forbids the
         * wait; here the client already has its answer and nothing holds it) */
        lua_settop(co->L, 0);
        co->r = NULL;
        co->detached = 1;
        if (!co->waiting) {
            co->waiting = 1;
            rp_lua_wake(co, 0);
        } else if (co->woken) {
            rp_lua_wake(co, co->nresults);
        }
        return RP_OK;
    }
    if (rc != 0 && rc != LUA_YIELD) {
        full_error_place(co, hook);
        rp_lua_log_error(co->L, rc, "log");
    }
    rp_lua_co_free(co);
    collect_after(rc);
    return RP_OK;
}

int rp_lua_run_attached(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase,
                        void (*on_done)(rp_lua_co_t *co, int status), void *user,
                        rp_lua_co_t **out)
{
    rp_lua_co_t *co = co_new(rp_lua_vm(), r, phase);
    co->user = user;
    *out = co;
    if (rp_lua_push_hook(co->L, hook, rp_lua_main->code_cache) != 0) {
        rp_lua_log_error(co->L, LUA_ERRSYNTAX, rp_lua_phase_names[phase]);
        return -1;
    }
    int rc = co_resume(co, 0);
    if (rc == LUA_YIELD && !co->exited) {
        /* it waits: it goes on from the loop (detached from the phases, still serving
         * r), and on_done tells its end; the caller frees it if r ends first */
        lua_settop(co->L, 0);
        co->detached = 1;
        co->on_done = on_done;
        if (!co->waiting) {
            co->waiting = 1;
            rp_lua_wake(co, 0);
        }
        return 1;
    }
    if (rc != 0 && rc != LUA_YIELD) {
        rp_lua_log_error(co->L, rc, rp_lua_phase_names[phase]);
        return -1;
    }
    return 0;
}

int rp_lua_run_sync(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase,
                    rp_lua_co_t **out)
{
    rp_lua_co_t *co = co_new(rp_lua_vm(), r, phase);
    co->sync = 1;
    *out = co;
    if (rp_lua_push_hook(co->L, hook, rp_lua_main->code_cache) != 0) {
        rp_lua_log_error(co->L, LUA_ERRSYNTAX, rp_lua_phase_names[phase]);
        return -1;
    }
    int rc = co_resume(co, 0);
    if (rc == LUA_YIELD) {
        if (co->exited)
            return 0;
        rp_log_error(RP_LOG_ERR, 0, "lua entry thread aborted: attempt to yield in %s",
                     rp_lua_phase_names[phase]);
        return -1;
    }
    if (rc != 0) {
        full_error_place(co, hook);
        rp_lua_log_error(co->L, rc, rp_lua_phase_names[phase]);
        return -1;
    }
    return 0;
}
