/*
 * ngx.thread: OpenResty's light threads (spawn, wait, kill).
 *
 * A light thread is a coroutine of its own record (rp_lua_co_t, its `resume` seam set) that
 * serves the same request as the code that spawned it, and runs concurrently with it:
 * a wait in one suspends that one only. spawn runs it at once until it first waits or
 * ends, then returns to the parent; afterwards it is resumed from the event loop when
 * its wait ends (lua_run.c's on_post calls co->resume), never through the request's
 * phases.
 *
 * The request's light threads form one flat group (nested spawns included), kept in
 * the request's Lua state. As in OpenResty:
 *   - the phase that spawned them ends only after the last one ended: the entry
 *     coroutine, once finished, is marked `done` and lua_run.c keeps answering RP_AGAIN
 *     until this file resumes the request (for content, the response ends then);
 *   - an uncaught error in a light thread is logged ("lua user thread aborted") and
 *     does not disturb the others; wait returns false and the error;
 *   - ngx.exit in any thread ends them all and the phase with that code; so does an
 *     error in the entry coroutine (lua_run.c calls rp_lua_threads_kill);
 *   - the request ending (client gone) ends them (rp_lua_threads_cleanup).
 * A thread that ended keeps its results (true, values... or false, error) in a table
 * (off its stack: coroutine.status says "dead", as OpenResty's) until its parent waits
 * for it or kills it, or the request ends.
 *
 * Light threads of a timer (no request) run in a group of the worker: nothing waits
 * for them but ngx.thread.wait, and the timer's end does not wait for them (unlike
 * OpenResty's, where the timer waits); when the timer's coroutine goes, its threads
 * that ended go too, and the others run on as orphans.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "http/request.h"

#include <stdlib.h>

typedef struct lthread_s lthread_t;
struct lthread_s {
    rp_lua_co_t *co;        /* NULL once waited or killed (the record then goes) */
    rp_lua_co_t *parent;    /* only the parent may wait or kill; NULL if it is gone */
    rp_lua_co_t *waited_by; /* the parent, while it waits in ngx.thread.wait */
    struct rp_lua_threads_s *group;
    unsigned ended : 1;    /* a zombie: its results kept in `results` */
    int results;           /* registry: {true, values...} or {false, error}, with n */
    unsigned in_spawn : 1; /* being run by spawn, inside its parent's call */
    lthread_t *next;
};

typedef struct rp_lua_threads_s {
    rp_request_t *r; /* NULL for the timers' group */
    lthread_t *head;
    int live;                  /* not ended */
    unsigned exit_pending : 1; /* a thread run inside spawn called ngx.exit */
    int exit_code;
} group_t;

static group_t detached_group; /* light threads of timers */

static group_t *group_of(rp_request_t *r, int create)
{
    if (r == NULL)
        return &detached_group;
    rp_lua_req_t *ctx = rp_lua_req(r);
    if (ctx->threads == NULL && create) {
        ctx->threads = rp_xcalloc(1, sizeof(group_t));
        ctx->threads->r = r;
    }
    return ctx->threads;
}

static lthread_t *find(group_t *g, lua_State *co)
{
    for (lthread_t *t = g ? g->head : NULL; t; t = t->next)
        if (t->co && t->co->L == co)
            return t;
    return NULL;
}

/* Frees t's coroutine (cancelling what it waits for) and takes t off the group. */
static void remove_thread(lthread_t *t)
{
    group_t *g = t->group;
    for (lthread_t **pp = &g->head; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    /* its children are orphans now: nobody may wait for them or kill them */
    for (lthread_t *c = g->head; c; c = c->next) {
        if (c->parent == t->co)
            c->parent = NULL;
        if (c->waited_by == t->co)
            c->waited_by = NULL;
    }
    if (!t->ended)
        g->live--;
    lua_State *vm = rp_lua_vm();
    if (vm && t->results != LUA_NOREF)
        luaL_unref(vm, LUA_REGISTRYINDEX, t->results);
    rp_lua_co_free(t->co);
    free(t);
}

/* ---- waiting ---- */

/* Moves t's results (true, values... or false, error) onto L; returns their count. */
static int take_results(lthread_t *t, lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->results);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 1, "too many results");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    remove_thread(t);
    return n;
}

/* The parent's ngx.thread.wait is abandoned (its request ended, it was killed). */
static void wait_cancel(rp_lua_co_t *co, void *data)
{
    group_t *g = data;
    for (lthread_t *t = g->head; t; t = t->next)
        if (t->waited_by == co)
            t->waited_by = NULL;
}

/* ---- running ---- */

static void exit_request(group_t *g, int code);

/* t ended with status rc (0, an error, or ngx.exit): keeps its results, tells the
 * waiting parent, and resumes the phase after the last thread. */
static void ended(lthread_t *t, int rc)
{
    rp_lua_co_t *co = t->co;
    group_t *g = t->group;
    t->ended = 1;
    g->live--;
    if (rc != 0) {
        const char *msg = lua_tostring(co->L, -1);
        if (msg == NULL)
            msg = rc == LUA_ERRMEM ? "not enough memory" : "(error object is not a string)";
        luaL_traceback(co->L, co->L, msg, 0);
        rp_log_error(RP_LOG_ERR, 0, "lua user thread aborted: %s error: %s",
                     rc == LUA_ERRMEM ? "memory" : "runtime", lua_tostring(co->L, -1));
        lua_pop(co->L, 1);
        lua_pushvalue(co->L, -1); /* the error */
        lua_replace(co->L, 1);
        lua_settop(co->L, 1);
        lua_pushboolean(co->L, 0);
        lua_insert(co->L, 1);
    } else {
        lua_pushboolean(co->L, 1);
        lua_insert(co->L, 1);
    }
    /* the results go to a table, so the coroutine is dead to coroutine.status */
    int nres = lua_gettop(co->L);
    lua_createtable(co->L, nres, 1);
    lua_insert(co->L, 1);
    for (int i = nres; i >= 1; i--)
        lua_rawseti(co->L, 1, i);
    lua_pushinteger(co->L, nres);
    lua_setfield(co->L, 1, "n");
    t->results = luaL_ref(co->L, LUA_REGISTRYINDEX);
    if (co->exited && g->r) {
        if (t->in_spawn) { /* the parent is running: spawn passes the exit on */
            g->exit_pending = 1;
            g->exit_code = co->exit_code;
            return;
        }
        exit_request(g, co->exit_code);
        return;
    }
    if (g->r == NULL && t->parent == NULL) {
        remove_thread(t); /* a timer's thread whose parent is gone: nobody can wait */
        return;
    }
    rp_lua_co_t *waiter = t->waited_by;
    if (waiter) {
        wait_cancel(waiter, g); /* it waits no more for the others */
        waiter->cancel = NULL;
        int n = take_results(t, waiter->L);
        rp_lua_wake(waiter, n);
    }
    if (g->live == 0 && g->r) {
        rp_lua_co_t *entry = rp_lua_req(g->r)->co;
        if (entry && entry->done)
            rp_http_resume(g->r); /* the phase goes on: the last light thread ended */
    }
}

static void run(lthread_t *t, int nargs)
{
    rp_lua_co_t *co = t->co;
    int rc = rp_lua_co_resume(co, nargs);
    if (rc == LUA_YIELD && !co->exited) {
        lua_settop(co->L, 0);
        if (!co->waiting) { /* a bare coroutine.yield(): go on at the next turn */
            co->waiting = 1;
            rp_lua_wake(co, 0);
        }
        return;
    }
    if (rc == LUA_YIELD) /* ngx.exit: no results */
        lua_settop(co->L, 0);
    ended(t, rc == LUA_YIELD ? 0 : rc);
}

static void resumed(rp_lua_co_t *co)
{
    group_t *g = group_of(co->r, 0);
    lthread_t *t = find(g, co->L);
    if (t == NULL || t->ended)
        return;
    run(t, co->nresults);
}

/* ngx.exit in a light thread run from the loop: every other thread ends, and the
 * entry coroutine (waiting, or done) ends its phase with the code. */
static void exit_request(group_t *g, int code)
{
    rp_request_t *r = g->r;
    rp_lua_threads_kill(r);
    rp_lua_co_t *entry = rp_lua_req(r)->co;
    if (entry == NULL)
        return;
    if (entry->cancel) {
        void (*cancel)(rp_lua_co_t *, void *) = entry->cancel;
        entry->cancel = NULL;
        cancel(entry, entry->cancel_data);
    }
    entry->exited = 1;
    entry->exit_code = code;
    entry->done = 1;
    rp_http_resume(r);
}

/* ---- the API ---- */

#define THREAD_PHASES                                                                              \
    ((1u << RP_LUA_REWRITE) | (1u << RP_LUA_ACCESS) | (1u << RP_LUA_CONTENT) | (1u << RP_LUA_TIMER))

static int thread_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    rp_lua_check_phase(L, THREAD_PHASES);
    rp_lua_co_t *parent = rp_lua_current(L);
    if (parent == NULL || parent->sync)
        return luaL_error(L, "API disabled in the context of %s",
                          rp_lua_phase_names[rp_lua_phase(L)]);
    int nargs = lua_gettop(L) - 1;
    group_t *g = group_of(parent->r, 1);
    rp_lua_co_t *co = rp_lua_co_new(parent->r, parent->phase);
    co->resume = resumed; /* woken: continued from the loop, here */
    co->no_pool = 1;      /* the coroutine is the handle Lua keeps: never reused */
    lthread_t *t = rp_xcalloc(1, sizeof(*t));
    t->co = co;
    t->results = LUA_NOREF;
    t->parent = parent;
    t->group = g;
    t->next = g->head;
    g->head = t;
    g->live++;
    lua_pushthread(co->L); /* the thread object is the coroutine, as OpenResty's */
    lua_xmove(co->L, L, 1);
    lua_insert(L, 1);
    lua_xmove(L, co->L, nargs + 1); /* the function and its arguments */
    t->in_spawn = 1;
    run(t, nargs);
    t->in_spawn = 0;
    if (g->exit_pending) { /* it called ngx.exit: the parent exits too */
        g->exit_pending = 0;
        return rp_lua_exit(L, g->exit_code);
    }
    return 1;
}

static int thread_wait(lua_State *L)
{
    int n = lua_gettop(L);
    if (n == 0)
        return luaL_error(L, "at least one coroutine should be specified");
    rp_lua_check_phase(L, THREAD_PHASES);
    rp_lua_co_t *self = rp_lua_current(L);
    group_t *g = group_of(self ? self->r : NULL, 0);
    /* OpenResty's order: a thread waited for or killed already is passed over unless it
     * is the last argument; the first that ended gives its results; else all are
     * waited for (marked only once it is sure this call waits) */
    for (int i = 1; i <= n; i++) {
        luaL_checktype(L, i, LUA_TTHREAD);
        lthread_t *t = find(g, lua_tothread(L, i));
        if (t == NULL) {
            if (i < n)
                continue;
            lua_pushnil(L);
            lua_pushliteral(L, "already waited or killed");
            return 2;
        }
        if (t->parent != self)
            return luaL_error(L, "only the parent coroutine can wait on the thread");
        if (t->ended)
            return take_results(t, L);
    }
    for (int i = 1; i <= n; i++) {
        lthread_t *t = find(g, lua_tothread(L, i));
        if (t)
            t->waited_by = self;
    }
    self->cancel = wait_cancel;
    self->cancel_data = g;
    return rp_lua_yield(L);
}

static int thread_kill(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    rp_lua_check_phase(L, THREAD_PHASES);
    rp_lua_co_t *self = rp_lua_current(L);
    group_t *g = group_of(self ? self->r : NULL, 0);
    lthread_t *t = find(g, lua_tothread(L, 1));
    if (t == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "already waited or killed");
        return 2;
    }
    if (t->parent != self) {
        lua_pushnil(L);
        lua_pushliteral(L, "not user thread's parent");
        return 2;
    }
    if (t->ended) {
        remove_thread(t);
        lua_pushnil(L);
        lua_pushliteral(L, "already terminated");
        return 2;
    }
    remove_thread(t);
    lua_pushinteger(L, 1);
    return 1;
}

/* ---- the timers' side ---- */

void rp_lua_threads_orphan(rp_lua_co_t *co)
{
    group_t *g = &detached_group;
again:
    for (lthread_t *t = g->head; t; t = t->next) {
        if (t->waited_by == co)
            t->waited_by = NULL;
        if (t->parent != co)
            continue;
        t->parent = NULL;
        if (t->ended) {
            remove_thread(t); /* may free others (its own zombies): scan again */
            goto again;
        }
    }
}

/* ---- the request's side ---- */

int rp_lua_threads_live(rp_request_t *r)
{
    rp_lua_req_t *ctx = rp_lua_req(r);
    return ctx->threads ? ctx->threads->live : 0;
}

void rp_lua_threads_kill(rp_request_t *r)
{
    group_t *g = r ? rp_lua_req(r)->threads : NULL;
    if (g == NULL)
        return;
    while (g->head)
        remove_thread(g->head);
    g->live = 0;
}

void rp_lua_threads_cleanup(rp_request_t *r)
{
    rp_lua_req_t *ctx = rp_http_get_ctx(r, rp_lua_module);
    if (ctx == NULL || ctx->threads == NULL)
        return;
    rp_lua_threads_kill(r);
    free(ctx->threads);
    ctx->threads = NULL;
}

/* coroutine.status: "zombie" for a light thread that ended and was not waited for, as
 * OpenResty's; the library's answer otherwise */
static int co_status(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TTHREAD) {
        rp_lua_co_t *self = rp_lua_current(L);
        lthread_t *t = find(group_of(self ? self->r : NULL, 0), lua_tothread(L, 1));
        if (t && t->ended) {
            lua_pushliteral(L, "zombie");
            return 1;
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

void rp_lua_api_thread(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    lua_getglobal(L, "coroutine");
    lua_getfield(L, -1, "status");
    lua_pushcclosure(L, co_status, 1);
    lua_setfield(L, -2, "status");
    lua_pop(L, 1);

    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, thread_spawn);
    lua_setfield(L, -2, "spawn");
    lua_pushcfunction(L, thread_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, thread_kill);
    lua_setfield(L, -2, "kill");
    lua_setfield(L, -2, "thread");
}
