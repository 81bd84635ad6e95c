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

#include "conf/conf.h"
#include "http/request.h"

/* An API part: sets its fields on the table at the top of L's stack. */
typedef void (*rp_lua_api_pt)(lua_State *L, rp_cycle_t *cycle);

/* The API parts (each in its own file of src/lua/). */
void rp_lua_api_re(lua_State *L, rp_cycle_t *cycle);     /* ngx.re.* (lua_re.c) */
void rp_lua_api_string(lua_State *L, rp_cycle_t *cycle); /* encoders, digests (lua_string.c) */
void rp_lua_api_shdict(lua_State *L, rp_cycle_t *cycle); /* ngx.shared (lua_shdict.c) */

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

/* The request the running Lua code serves, or NULL outside a request. */
rp_request_t *rp_lua_request(lua_State *L);

/* The phase the running Lua code runs in. */
rp_lua_phase_t rp_lua_phase(lua_State *L);

/* Raises a Lua error unless the running code serves a request in one of the phases
 * of mask (1u << RP_LUA_*): "API disabled in the context of PHASE", as OpenResty. */
void rp_lua_check_phase(lua_State *L, unsigned mask);

#endif
