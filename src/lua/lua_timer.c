/*
 * ngx.timer: OpenResty's timers (ngx.timer.at, every, running_count, pending_count)
 * and their two limits, lua_max_pending_timers and lua_max_running_timers.
 *
 * A timer is a libevent timer holding the callback and its arguments (a table in the
 * registry). When it fires, the callback runs as a detached coroutine (rp_lua_spawn,
 * phase "timer") with `premature` first: it may wait (ngx.sleep, cosockets) without
 * holding the worker. While it runs it holds the worker (rp_worker_hold), so a graceful
 * stop lets it finish, at most until worker_shutdown_timeout.
 *
 * When the worker stops (QUIT, or a reload replaced it), every pending timer fires at
 * once with premature = true, as OpenResty's do, so callbacks can save their state;
 * ngx.timer.every stops repeating, and ngx.timer.at with a positive delay answers
 * nil, "process exiting".
 *
 * An every-timer is rescheduled when it fires, before its callback runs (as
 * OpenResty): it counts as pending all along, and a slow callback may overlap the
 * next one.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "core/process.h"
#include "core/time.h"
#include "http/http.h"

#include <stdlib.h>

typedef struct lua_timer_s lua_timer_t;
struct lua_timer_s {
    struct event *ev;
    int ref;                  /* registry: {callback, arg1, ..., argN} */
    int nargs;                /* N */
    int64_t every;            /* ms; 0 for ngx.timer.at */
    lua_timer_t *prev, *next; /* the pending timers, to fire them at a stop */
};

typedef struct {
    int max_pending;
    int max_running;
} timer_conf_t;

static lua_timer_t *pending_list, *pending_tail;
static int npending, nrunning;
static int max_pending = 1024, max_running = 256;

/* ---- the pending list ---- */

/* at the tail: a stop fires the timers it found, not those their callbacks add */
static void link_timer(lua_timer_t *t)
{
    t->next = NULL;
    t->prev = pending_tail;
    if (pending_tail)
        pending_tail->next = t;
    else
        pending_list = t;
    pending_tail = t;
    npending++;
}

static void unlink_timer(lua_timer_t *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        pending_list = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        pending_tail = t->prev;
    t->prev = t->next = NULL;
    npending--;
}

static void timer_free(lua_timer_t *t)
{
    lua_State *L = rp_lua_vm();
    if (L)
        luaL_unref(L, LUA_REGISTRYINDEX, t->ref);
    if (t->ev)
        event_free(t->ev);
    free(t);
}

/* ---- firing ---- */

static void callback_done(rp_lua_co_t *co, int status)
{
    (void)co;
    (void)status; /* an error was logged by the runner */
    nrunning--;
    rp_worker_hold(-1);
}

static void on_timer(evutil_socket_t fd, short what, void *arg);

static void fire(lua_timer_t *t, int premature)
{
    lua_State *L = rp_lua_vm();
    unlink_timer(t);
    int again = t->every > 0 && !premature && !rp_lua_worker_exiting;
    if (again) { /* the next round first, as OpenResty: it is pending while this one runs */
        link_timer(t);
        rp_timer_add(t->ev, t->every);
    }
    if (L == NULL) {
        if (!again)
            timer_free(t);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_rawgeti(L, -1, 1); /* the callback */
    if (nrunning >= max_running) {
        lua_Debug ar;
        const char *src = "?";
        int line = 0;
        if (lua_getinfo(L, ">S", &ar)) { /* pops the callback */
            src = ar.short_src;
            line = ar.linedefined;
        }
        rp_log_error(RP_LOG_ALERT, 0,
                     "lua failed to run timer with function defined at %s:%d: "
                     "%d lua_max_running_timers are not enough",
                     src, line, max_running);
        lua_pop(L, 1);
        if (!again)
            timer_free(t);
        return;
    }
    int nargs = t->nargs;
    lua_pushboolean(L, premature);
    for (int i = 1; i <= nargs; i++)
        lua_rawgeti(L, -2 - i, i + 1);
    lua_remove(L, -3 - nargs); /* the table */
    if (!again)
        timer_free(t);
    nrunning++;
    rp_worker_hold(1);
    rp_lua_spawn(L, nargs + 1, RP_LUA_TIMER, callback_done, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fire(arg, rp_lua_worker_exiting);
}

/* ---- the API ---- */

#define TIMER_PHASES                                                                               \
    ((1u << RP_LUA_INIT_WORKER) | (1u << RP_LUA_SET) | (1u << RP_LUA_REWRITE) |                    \
     (1u << RP_LUA_ACCESS) | (1u << RP_LUA_CONTENT) | (1u << RP_LUA_BALANCER) |                    \
     (1u << RP_LUA_HEADER_FILTER) | (1u << RP_LUA_BODY_FILTER) | (1u << RP_LUA_LOG) |              \
     (1u << RP_LUA_TIMER))

static int timer_add(lua_State *L, int every)
{
    double delay = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (rp_lua_phase(L) == RP_LUA_INIT)
        return luaL_error(L, "no request"); /* OpenResty's word in init_by_lua */
    rp_lua_check_phase(L, TIMER_PHASES);
    /* OpenResty takes a negative delay without a word; here it means "now" */
    int64_t ms = delay > 0 ? (int64_t)(delay * 1000 + 0.5) : 0;
    if (every && ms == 0)
        return luaL_error(L, "delay cannot be zero");
    if (rp_lua_worker_exiting && (every || ms > 0)) {
        lua_pushnil(L);
        lua_pushliteral(L, "process exiting");
        return 2;
    }
    if (npending >= max_pending) {
        lua_pushnil(L);
        lua_pushliteral(L, "too many pending timers");
        return 2;
    }
    int nargs = lua_gettop(L) - 2;
    /* {callback, args...}: kept in the registry until the timer is done */
    lua_createtable(L, nargs + 1, 0);
    for (int i = 0; i <= nargs; i++) {
        lua_pushvalue(L, 2 + i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_timer_t *t = rp_xcalloc(1, sizeof(*t));
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->nargs = nargs;
    t->every = every ? ms : 0;
    t->ev = evtimer_new(rp_event_base, on_timer, t);
    link_timer(t);
    rp_timer_add(t->ev, ms);
    lua_pushinteger(L, 1);
    return 1;
}

static int timer_at(lua_State *L)
{
    return timer_add(L, 0);
}

static int timer_every(lua_State *L)
{
    return timer_add(L, 1);
}

static int timer_running_count(lua_State *L)
{
    lua_pushinteger(L, nrunning);
    return 1;
}

static int timer_pending_count(lua_State *L)
{
    lua_pushinteger(L, npending);
    return 1;
}

void rp_lua_api_timer(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, timer_at);
    lua_setfield(L, -2, "at");
    lua_pushcfunction(L, timer_every);
    lua_setfield(L, -2, "every");
    lua_pushcfunction(L, timer_running_count);
    lua_setfield(L, -2, "running_count");
    lua_pushcfunction(L, timer_pending_count);
    lua_setfield(L, -2, "pending_count");
    lua_setfield(L, -2, "timer");
}

/* ---- the module: directives and the worker's stop ---- */

static void *create_http_main(rp_conf_t *cf)
{
    timer_conf_t *tc = rp_arena_calloc(cf->arena, sizeof(*tc));
    tc->max_pending = RP_CONF_UNSET;
    tc->max_running = RP_CONF_UNSET;
    return tc;
}

static const char *init_http_main(rp_conf_t *cf, void *conf)
{
    (void)cf;
    timer_conf_t *tc = conf;
    if (tc->max_pending == RP_CONF_UNSET)
        tc->max_pending = 1024;
    if (tc->max_running == RP_CONF_UNSET)
        tc->max_running = 256;
    return RP_CONF_OK;
}

static int init_worker(rp_cycle_t *cycle)
{
    timer_conf_t *tc = rp_http_main_conf(cycle, &rp_lua_timer_module);
    if (tc) {
        max_pending = tc->max_pending;
        max_running = tc->max_running;
    }
    return 0;
}

static void stop_worker(rp_cycle_t *cycle)
{
    (void)cycle;
    rp_lua_worker_exiting = 1;
    /* every pending timer now, with premature = true; those their callbacks add (with
     * no delay: a delay is refused now) fire from the loop, premature too */
    for (int n = npending; n > 0 && pending_list; n--) {
        lua_timer_t *t = pending_list;
        event_del(t->ev);
        fire(t, 1);
    }
}

static const rp_command_t commands[] = {
    {"lua_max_pending_timers", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_num, RP_CONF_HTTP_MAIN,
     offsetof(timer_conf_t, max_pending), NULL},
    {"lua_max_running_timers", RP_CTX_HTTP, 0, 1, 1, rp_conf_set_num, RP_CONF_HTTP_MAIN,
     offsetof(timer_conf_t, max_running), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_lua_timer_module = {
    .name = "lua_timer",
    .commands = commands,
    .create_http_main = create_http_main,
    .init_http_main = init_http_main,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
};
