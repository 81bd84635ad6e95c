/*
 * ngx.semaphore: OpenResty's semaphores (lua-resty-core's `ngx.semaphore` module,
 * `local semaphore = require "ngx.semaphore"`), for the Lua code of one worker:
 * requests, light threads and timers wait on one another without holding the worker.
 *
 *   semaphore.new(n)   a semaphore holding n resources (n >= 0)
 *   sema:post(n)       gives back n resources (default 1), waking as many waiters
 *   sema:wait(timeout) takes one: true, or nil/false and "timeout" after timeout seconds
 *                      (0: do not wait)
 *   sema:count()       resources minus waiters (negative when some wait)
 *
 * Waiters are served first come, first served. A waiter is a small record in the
 * semaphore's queue with its own timer; it is the waiting coroutine's cancel data, so
 * a request that ends while it waits leaves the queue at once (rp_lua_co_free).
 * A semaphore is a full userdata: a coroutine waiting on it holds it on its stack,
 * so the collector never takes a semaphore somebody waits on.
 */
#include "lua/lua_int.h"

#include "core/time.h"

#include <stdlib.h>

#define SEMA_MT "rampart.semaphore"

typedef struct waiter_s waiter_t;

typedef struct {
    int resources;
    int nwaiters;
    waiter_t *head, *tail; /* the queue, oldest first */
} sema_t;

struct waiter_s {
    sema_t *sema;
    rp_lua_co_t *co;
    struct event *timer; /* NULL without a timeout */
    waiter_t *prev, *next;
};

static void unqueue(waiter_t *w)
{
    sema_t *s = w->sema;
    if (w->prev)
        w->prev->next = w->next;
    else
        s->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        s->tail = w->prev;
    s->nwaiters--;
}

static void waiter_free(waiter_t *w)
{
    if (w->timer)
        event_free(w->timer);
    free(w);
}

/* Ends w's wait with `ok` (true, or false and "timeout"): resumes its coroutine. */
static void finish(waiter_t *w, int ok)
{
    rp_lua_co_t *co = w->co;
    unqueue(w);
    co->cancel = NULL;
    co->cancel_data = NULL;
    waiter_free(w);
    lua_pushboolean(co->L, ok);
    if (ok) {
        rp_lua_wake(co, 1);
    } else {
        lua_pushliteral(co->L, "timeout");
        rp_lua_wake(co, 2);
    }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, 0);
}

/* The waiting coroutine is abandoned (its request ended, the worker stops). */
static void waiter_cancel(rp_lua_co_t *co, void *data)
{
    (void)co;
    waiter_t *w = data;
    unqueue(w);
    waiter_free(w);
}

static void serve(sema_t *s)
{
    while (s->resources > 0 && s->head) {
        s->resources--;
        finish(s->head, 1);
    }
}

/* ---- the module's functions ---- */

static sema_t *check_sema(lua_State *L)
{
    sema_t *s = luaL_testudata(L, 1, SEMA_MT);
    if (s == NULL)
        luaL_error(L, "not a semaphore instance");
    return s;
}

static int sema_new(lua_State *L)
{
    lua_Number n = lua_isnumber(L, 1) ? lua_tonumber(L, 1) : 0;
    if (n < 0) {
        return luaL_error(L, "no negative number");
    }
    sema_t *s = lua_newuserdata(L, sizeof(*s));
    s->resources = (int)n;
    s->nwaiters = 0;
    s->head = s->tail = NULL;
    luaL_getmetatable(L, SEMA_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int sema_wait(lua_State *L)
{
    sema_t *s = check_sema(L);
    lua_Number sec = luaL_optnumber(L, 2, 0);
    if (sec < 0) {
        return luaL_error(L, "no negative number");
    }
    if (s->resources > 0 && s->head == NULL) {
        s->resources--;
        lua_pushboolean(L, 1);
        return 1;
    }
    rp_lua_co_t *co = rp_lua_current(L);
    if (co == NULL || co->sync || co->phase == RP_LUA_INIT) {
        lua_pushnil(L);
        lua_pushfstring(L, "API disabled in the context of %s",
                        rp_lua_phase_names[co ? co->phase : RP_LUA_INIT]);
        return 2;
    }
    int64_t ms = (int64_t)(sec * 1000);
    if (ms == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    waiter_t *w = rp_xcalloc(1, sizeof(*w));
    w->sema = s;
    w->co = co;
    w->prev = s->tail;
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    s->nwaiters++;
    w->timer = evtimer_new(rp_event_base, on_timeout, w);
    rp_timer_add(w->timer, ms);
    co->cancel = waiter_cancel;
    co->cancel_data = w;
    return rp_lua_yield(L);
}

static int sema_post(lua_State *L)
{
    sema_t *s = check_sema(L);
    lua_Number n = lua_isnoneornil(L, 2) ? 1 : luaL_checknumber(L, 2);
    if (n < 1) {
        return luaL_error(L, "positive number required");
    }
    s->resources += (int)n;
    serve(s); /* the woken continue from the loop, never on this stack */
    lua_pushboolean(L, 1);
    return 1;
}

static int sema_count(lua_State *L)
{
    sema_t *s = check_sema(L);
    lua_pushinteger(L, s->resources - s->nwaiters);
    return 1;
}

static int sema_gc(lua_State *L)
{
    /* nobody waits on a semaphore the collector takes (a waiter holds it): nothing
     * to let go of, the record is the userdata's own memory */
    (void)L;
    return 0;
}

static int sema_loader(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    return 1;
}

void rp_lua_api_sema(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    static const luaL_Reg methods[] = {
        {"wait", sema_wait},
        {"post", sema_post},
        {"count", sema_count},
        {NULL, NULL},
    };
    /* the module: new() and the methods, as lua-resty-core's */
    lua_newtable(L);
    lua_pushcfunction(L, sema_new);
    lua_setfield(L, -2, "new");
    luaL_setfuncs(L, methods, 0);
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "version");

    luaL_newmetatable(L, SEMA_MT);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, sema_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    /* package.preload["ngx.semaphore"] returns it */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, sema_loader, 1);
    lua_setfield(L, -2, "ngx.semaphore");
    lua_pop(L, 3);
}
