/*
 * The Lua hooks' seams (issue 13): one LuaJIT VM per worker running OpenResty's
 * phases and `ngx` API.
 *
 * The VM belongs to a configuration generation (cycle): the master creates it
 * when it loads the configuration, compiles every hook there (so a syntax error
 * names file and line and a reload with it keeps the old configuration), runs
 * `init_by_lua` in it, and the workers inherit it by fork, as OpenResty does.
 *
 * The `ngx` table is built from API parts. Each part is a function that sets its
 * fields on the table at the top of the stack (and leaves the stack as it found
 * it); lua_vm.c calls them in the order of its list when it makes the VM. A part
 * that needs the configuration (ngx.shared's zones) reads it from the cycle.
 *
 * A hook runs in a coroutine. rp_lua_request() is the request the running Lua
 * code serves (NULL in init, init_worker and timers); functions that wait (sleep,
 * cosockets, semaphores) yield with rp_lua_yield() and are woken with
 * rp_lua_wake(): the request stays suspended (RP_AGAIN), never the worker.
 */
#ifndef RP_LUA_H
#define RP_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <event2/event.h>

#include "conf/conf.h"
#include "http/request.h"

/* An API part: sets its fields on the table at the top of L's stack. */
typedef void (*rp_lua_api_pt)(lua_State *L, rp_cycle_t *cycle);

/* The API parts (each in its own file of src/lua/). */
void rp_lua_api_re(lua_State *L, rp_cycle_t *cycle);     /* ngx.re.* (lua_re.c) */
void rp_lua_api_string(lua_State *L, rp_cycle_t *cycle); /* encoders, digests (lua_string.c) */
void rp_lua_api_shdict(lua_State *L, rp_cycle_t *cycle); /* ngx.shared (lua_shdict.c) */
void rp_lua_api_var(lua_State *L, rp_cycle_t *cycle);    /* ngx.var (lua_var.c) */
void rp_lua_api_req(lua_State *L, rp_cycle_t *cycle);    /* ngx.req, ngx.exec (lua_req.c) */
void rp_lua_api_socket(lua_State *L, rp_cycle_t *cycle); /* ngx.socket (lua_socket.c) */
void rp_lua_api_timer(lua_State *L, rp_cycle_t *cycle);  /* ngx.timer (lua_timer.c) */
void rp_lua_api_thread(lua_State *L, rp_cycle_t *cycle); /* ngx.thread (lua_thread.c) */
void rp_lua_api_sema(lua_State *L, rp_cycle_t *cycle);   /* ngx.semaphore (lua_sema.c) */
/* package.preload["ngx.balancer"] (lua_balancer.c) */
void rp_lua_api_balancer(lua_State *L, rp_cycle_t *cycle);
/* package.preload["rampart"] (lua_rampart.c) */
void rp_lua_api_rampart(lua_State *L, rp_cycle_t *cycle);

/* OpenResty's phase names, as ngx.get_phase() returns them. */
typedef enum {
    RP_LUA_INIT,
    RP_LUA_INIT_WORKER,
    RP_LUA_SET,
    RP_LUA_REWRITE,
    RP_LUA_ACCESS,
    RP_LUA_CONTENT,
    RP_LUA_BALANCER,
    RP_LUA_HEADER_FILTER,
    RP_LUA_BODY_FILTER,
    RP_LUA_LOG,
    RP_LUA_TIMER,
    RP_LUA_NPHASES,
} rp_lua_phase_t;

extern const char *const rp_lua_phase_names[RP_LUA_NPHASES];

/*
 * A running hook: its entry coroutine and what it waits for. A request's hooks
 * (rewrite, access, content) are resumed through the request's phases; a detached
 * one (init_worker, timers, a log hook that waits) from the event loop.
 */
typedef struct rp_lua_co_s rp_lua_co_t;
struct rp_lua_co_s {
    lua_State *L;   /* the entry coroutine */
    int ref;        /* in the registry: keeps it from the collector */
    rp_request_t *r; /* NULL when detached from any request */
    rp_lua_phase_t phase;
    unsigned waiting : 1; /* yielded by rp_lua_yield: a wake will continue it */
    unsigned woken : 1;   /* rp_lua_wake was called: resume with nresults */
    unsigned exited : 1;  /* ngx.exit was called */
    unsigned detached : 1;
    unsigned sync : 1; /* may not wait: header and body filters, set_by_lua */
    unsigned done : 1;  /* a request's entry coroutine ended, its light threads still run:
                         * the phase waits for them */
    unsigned no_pool : 1; /* Lua code holds its lua_State (a light thread's handle):
                           * rp_lua_co_free must not reuse it for another hook */
    rp_lua_co_t *drain_next; /* lua_output.c: the next coroutine waiting for a drain */
    int exit_code;
    int nresults; /* what the waker pushed on L */
    /* What the pending wait holds (a timer, a socket): cancel() lets go of it when the
     * coroutine is abandoned (the request ended, the worker stops). */
    void (*cancel)(rp_lua_co_t *co, void *data);
    void *cancel_data;
    struct event *timer; /* ngx.sleep's, made on first use */
    struct event *post;  /* a detached coroutine's wake-up from the loop */
    void *user;          /* for the hook's owner */
    /* Set when neither the request's phases nor the detached runner continue it (a
     * header filter that waits): called from the loop once it is woken. */
    void (*resume)(rp_lua_co_t *co);
    void (*on_done)(rp_lua_co_t *co, int status); /* a detached run ended (0 or LUA_ERR*) */
    /* Called when the record is freed (the hook ended or was abandoned): the cosockets
     * of a detached hook (timer, init_worker, a log hook gone on) close then, as
     * OpenResty's do when such a hook ends. */
    void (*on_free)(rp_lua_co_t *co);
};

/* The running hook, or NULL when no hook runs (a bare VM in unit tests). */
rp_lua_co_t *rp_lua_current(lua_State *L);

/*
 * For a C function that waits: arrange the wake-up (rp_lua_wake from an event), set
 * co->cancel if the wait holds something, then `return rp_lua_yield(L);`. The values
 * the waker pushes become the function's results. Raises an error where waiting is
 * not allowed (header and body filters, set_by_lua).
 */
int rp_lua_yield(lua_State *L);

/* Continues a waiting hook: push nresults values on co->L first. Never runs Lua on
 * the caller's stack: the hook continues from the event loop. */
void rp_lua_wake(rp_lua_co_t *co, int nresults);

/* Runs fn (on the top of L's stack, with nargs arguments above it) as a detached hook
 * in phase: now until it waits or ends, then from the loop. on_done (may be NULL) is
 * told when it ends. Returns the record, or NULL when it ended already. */
rp_lua_co_t *rp_lua_spawn(lua_State *L, int nargs, rp_lua_phase_t phase,
                          void (*on_done)(rp_lua_co_t *co, int status), void *user);

/* The worker's VM (NULL when the configuration has no Lua). */
lua_State *rp_lua_vm(void);

/* Logs a hook's error with its traceback, as "lua entry thread aborted: ...". */
void rp_lua_log_error(lua_State *co, int status, const char *what);

/* The request the running Lua code serves, or NULL outside a request. */
rp_request_t *rp_lua_request(lua_State *L);

/* The phase the running Lua code runs in. */
rp_lua_phase_t rp_lua_phase(lua_State *L);

/* Raises a Lua error unless the running code serves a request in one of the phases
 * of mask (1u << RP_LUA_*): "API disabled in the context of PHASE", as OpenResty. */
void rp_lua_check_phase(lua_State *L, unsigned mask);

#endif
