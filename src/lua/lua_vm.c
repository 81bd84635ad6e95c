/*
 * The VM of a configuration generation and the `ngx` table it exposes.
 *
 * One LuaJIT VM per cycle, made in the master while the configuration is read (so
 * every hook compiles there, and a syntax error refuses the configuration with
 * file and line), finished in init_master once the shared memory is mapped (the
 * `ngx` table, package paths, `init_by_lua`), and inherited by each worker by fork:
 * one VM per worker, as OpenResty. A reload makes a new VM for the new generation;
 * the old one is closed with its cycle.
 *
 * The allocator counts what the VM holds, so `lua_max_memory` caps it: an
 * allocation beyond the cap fails and the script gets Lua's "not enough memory"
 * error, never the worker.
 *
 * The prelude (Lua, below) replaces the coroutine library's resume and wrap so a
 * wait (rp_lua_yield: a sleep, a cosocket, a semaphore) inside the script's own
 * coroutines reaches the entry coroutine and the request is suspended, as in
 * OpenResty: a wait yields a sentinel, and every resume on the way passes it up,
 * then passes the results back down when the hook is woken.
 */
#include "rp_paths.h" /* RP_LUA_DIR: written by make from the configured paths */
#include "lua/lua_int.h"

#include "core/log.h"
#include "core/process.h"

#include <luajit.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const rp_lua_phase_names[RP_LUA_NPHASES] = {
    "init",     "init_worker", "set",           "rewrite",     "access", "content",
    "balancer", "header_filter", "body_filter", "log",         "timer",
};

/* The API parts, in the order they are installed. */
static const rp_lua_api_pt api_parts[] = {
    rp_lua_api_core, rp_lua_api_output, rp_lua_api_re, rp_lua_api_string, rp_lua_api_shdict,
    rp_lua_api_var,  rp_lua_api_req, rp_lua_api_socket,
    rp_lua_api_timer, rp_lua_api_thread, rp_lua_api_sema,
    rp_lua_api_balancer, rp_lua_api_rampart,
};

static lua_State *worker_vm;

lua_State *rp_lua_vm(void)
{
    return worker_vm;
}

void rp_lua_set_vm(lua_State *L)
{
    worker_vm = L;
}

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    rp_lua_vm_t *vm = ud;
    if (nsize == 0) {
        free(ptr);
        vm->used -= ptr ? osize : 0;
        return NULL;
    }
    size_t old = ptr ? osize : 0;
    /* Only while a hook runs: there Lua raises "not enough memory" in the script. The
     * C side between runs (making a coroutine, a traceback for the log) calls Lua
     * unprotected, where a failed allocation is a panic that ends the worker. */
    if (nsize > old && vm->cap && vm->running && vm->used + (nsize - old) > vm->cap)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        vm->used = vm->used - old + nsize;
    return p;
}

static void vm_close(void *data)
{
    rp_lua_vm_t *vm = data;
    if (vm->L) {
        if (worker_vm == vm->L)
            worker_vm = NULL;
        lua_close(vm->L);
        vm->L = NULL;
    }
}

rp_lua_vm_t *rp_lua_vm_get(rp_conf_t *cf, rp_lua_main_conf_t *lmcf)
{
    if (lmcf->vm)
        return lmcf->vm;
    rp_lua_vm_t *vm = rp_arena_calloc(cf->arena, sizeof(*vm));
    vm->L = lua_newstate(vm_alloc, vm);
    if (vm->L == NULL)
        return NULL;
    rp_arena_cleanup(cf->arena, vm_close, vm);
    rp_lua_set_panic(vm->L);
    luaL_openlibs(vm->L);
    lmcf->vm = vm;
    return vm;
}

/* ---- compiling hooks ---- */

const char *rp_lua_full_place(lua_State *L, const char *msg, const char *full)
{
    /* Lua names a chunk by at most 59 bytes, "..." and the end of a longer name: a
     * message about a script deep in a tree would lose its folder */
    if (msg && full && strncmp(msg, "...", 3) == 0) {
        const char *colon = strchr(msg + 3, ':');
        size_t n = colon ? (size_t)(colon - (msg + 3)) : 0, fl = strlen(full);
        if (colon && n <= fl && memcmp(full + fl - n, msg + 3, n) == 0)
            return lua_pushfstring(L, "%s%s", full, colon);
    }
    return lua_pushstring(L, msg ? msg : "?"), lua_tostring(L, -1);
}

const char *rp_lua_compile(rp_conf_t *cf, rp_lua_main_conf_t *lmcf, rp_lua_hook_t *hook)
{
    rp_lua_vm_t *vm = rp_lua_vm_get(cf, lmcf);
    if (vm == NULL)
        return rp_conf_error(cf, "cannot make a Lua VM");
    lua_State *L = vm->L;
    int rc;
    if (hook->path) {
        rc = luaL_loadfile(L, hook->path);
    } else {
        /* blank lines up to the block's line, so Lua's line numbers are the file's */
        size_t pad = hook->line > 1 ? hook->line - 1 : 0;
        char *code = rp_xmalloc(pad + hook->len + 1);
        memset(code, '\n', pad);
        memcpy(code + pad, hook->src, hook->len);
        code[pad + hook->len] = '\0';
        char *name = rp_arena_sprintf(cf->arena, "@%s", hook->file);
        rc = luaL_loadbuffer(L, code, pad + hook->len, name);
        free(code);
    }
    if (rc != 0) {
        const char *msg =
            rp_lua_full_place(L, lua_tostring(L, -1), hook->path ? hook->path : hook->file);
        const char *err = rp_conf_error(cf, "%s", msg);
        lua_pop(L, 2);
        return err;
    }
    hook->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* remembered for rp_lua_vm_finish (lua_max_running_time may come later in the file) */
    int *refs = rp_arena_alloc(cf->arena, (vm->nhooks + 1) * sizeof(int));
    if (vm->nhooks)
        memcpy(refs, vm->hook_refs, vm->nhooks * sizeof(int));
    refs[vm->nhooks++] = hook->ref;
    vm->hook_refs = refs;
    return RP_CONF_OK;
}

int rp_lua_push_hook(lua_State *L, const rp_lua_hook_t *hook, int code_cache)
{
    if (hook->path && !code_cache) {
        /* lua_code_cache off: the file as it is now, for development */
        if (luaL_loadfile(L, hook->path) != 0)
            return -1;
        if (rp_lua_main && rp_lua_main->vm->jit_off)
            luaJIT_setmode(L, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
        return 0;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, hook->ref);
    return 0;
}

/* ---- the prelude ---- */

static const char prelude[] =
    "local WAIT = ...\n"
    "local co_resume, co_yield, co_create = coroutine.resume, coroutine.yield, coroutine.create\n"
    "local select, unpack, error = select, unpack, error\n"
    "local function pass(co, ok, ...)\n"
    "  if ok and (...) == WAIT then\n"
    "    return pass(co, co_resume(co, co_yield(WAIT)))\n"
    "  end\n"
    "  return ok, ...\n"
    "end\n"
    "local function resume(co, ...) return pass(co, co_resume(co, ...)) end\n"
    "coroutine.resume = resume\n"
    "coroutine.wrap = function(f)\n"
    "  local co = co_create(f)\n"
    "  return function(...)\n"
    "    local function out(ok, ...)\n"
    "      if not ok then error((...), 2) end\n"
    "      return ...\n"
    "    end\n"
    "    return out(resume(co, ...))\n"
    "  end\n"
    "end\n"
    /* lua-resty-core's bindings are built in here: requiring it does nothing */
    "package.preload['resty.core'] = function() return true end\n"
    "package.preload['resty.core.base'] = function() return { version = 1 } end\n";

static void set_paths(lua_State *L, const char *which, const char *conf,
                             const char *own)
{
    /* ";;" in the directive stands for the default path, as in OpenResty */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, which);
    const char *def = lua_tostring(L, -1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (conf) {
        const char *p = conf;
        const char *dd;
        while ((dd = strstr(p, ";;")) != NULL) {
            luaL_addlstring(&b, p, (size_t)(dd - p));
            luaL_addstring(&b, ";");
            if (own) {
                luaL_addstring(&b, own);
                luaL_addstring(&b, ";");
            }
            luaL_addstring(&b, def ? def : "");
            luaL_addstring(&b, ";");
            p = dd + 2;
        }
        luaL_addstring(&b, p);
    } else {
        if (own) {
            luaL_addstring(&b, own);
            luaL_addstring(&b, ";");
        }
        luaL_addstring(&b, def ? def : "");
    }
    luaL_pushresult(&b);
    lua_setfield(L, -3, which);
    lua_pop(L, 2);
}

int rp_lua_vm_finish(rp_cycle_t *cycle, rp_lua_main_conf_t *lmcf, char *err, size_t errlen)
{
    lua_State *L = lmcf->vm->L;
    lmcf->vm->cap = lmcf->max_memory;

    /* lua_max_running_time stops a run through a count hook, and LuaJIT runs no hook
     * inside a compiled trace: a loop in a hook compiled by the JIT (even one calling
     * string.gsub or a C function: LuaJIT stitches those into traces) could never be
     * stopped. So, with the limit, the hooks' own code (each chunk and the functions
     * defined in it) runs in LuaJIT's interpreter, where the hook fires; modules they
     * require keep the JIT. A hook turns it back on with jit.on(true, true). */
    if (lmcf->max_running_time > 0) {
        lmcf->vm->jit_off = 1;
        for (size_t i = 0; i < lmcf->vm->nhooks; i++) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, lmcf->vm->hook_refs[i]);
            luaJIT_setmode(L, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF);
            lua_pop(L, 1);
        }
    }

    /* the project's own lua/ (under the prefix, then where it is installed) */
    const char *own = rp_arena_sprintf(cycle->arena, "%s/lua/?.lua;%s/lua/?/init.lua;"
                                       RP_LUA_DIR "/?.lua",
                                       cycle->prefix, cycle->prefix);
    set_paths(L, "path", lmcf->package_path, own);
    set_paths(L, "cpath", lmcf->package_cpath, NULL);

    /* ngx: the constants, then each API part */
    lua_newtable(L);
    for (size_t i = 0; i < sizeof(api_parts) / sizeof(api_parts[0]); i++) {
        api_parts[i](L, cycle);
    }
    lua_pushvalue(L, -1);
    lua_setglobal(L, "ngx");
    /* package.loaded.ngx, as OpenResty: `local ngx = require "ngx"` */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "ngx");
    lua_pop(L, 3);

    if (luaL_loadbuffer(L, prelude, sizeof(prelude) - 1, "=rampart.prelude") != 0) {
        snprintf(err, errlen, "lua prelude: %s", lua_tostring(L, -1));
        return -1;
    }
    lua_pushlightuserdata(L, rp_lua_wait_token());
    if (lua_pcall(L, 1, 0, 0) != 0) {
        snprintf(err, errlen, "lua prelude: %s", lua_tostring(L, -1));
        return -1;
    }
    return 0;
}
