/*
 * Helpers for the unit tests of the `ngx` API parts: a bare LuaJIT VM with the
 * standard libraries and a global `ngx` table built from one API part, and a
 * runner for Lua snippets that fails the test with the snippet's own error.
 *
 * Snippets check their results with eq(got, want, what), defined here, which
 * names both values when they differ, and with same(t, want) for tables.
 */
#ifndef RP_LUA_UNIT_H
#define RP_LUA_UNIT_H

#include "lua/lua.h"
#include "unit.h"

static const char lu_prelude[] =
    "local function show(v)\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  if type(v) ~= 'table' then return tostring(v) end\n"
    "  local keys = {}\n"
    "  for k in pairs(v) do keys[#keys + 1] = k end\n"
    "  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "  local out = {}\n"
    "  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. '=' .. show(v[k]) end\n"
    "  return '{' .. table.concat(out, ',') .. '}'\n"
    "end\n"
    "_G.show = show\n"
    "function eq(got, want, what)\n"
    "  if got ~= want then\n"
    "    error((what or 'value') .. ': got ' .. show(got) .. ', want ' .. show(want), 2)\n"
    "  end\n"
    "end\n"
    "function same(got, want, what)\n"
    "  if show(got) ~= show(want) then\n"
    "    error((what or 'table') .. ': got ' .. show(got) .. ', want ' .. show(want), 2)\n"
    "  end\n"
    "end\n";

/* A VM whose global `ngx` holds what part sets. */
static inline lua_State *lu_vm(rp_lua_api_pt part)
{
    lua_State *L = luaL_newstate();
    ck_assert_ptr_nonnull(L);
    luaL_openlibs(L);
    lua_newtable(L);
    int top = lua_gettop(L);
    part(L, NULL);
    ck_assert_int_eq(lua_gettop(L), top); /* the part leaves the stack as it found it */
    lua_setglobal(L, "ngx");
    if (luaL_dostring(L, lu_prelude) != 0)
        ck_abort_msg("prelude: %s", lua_tostring(L, -1));
    return L;
}

/* Runs code in L; a Lua error fails the test with its message. */
static inline void lu_run(lua_State *L, const char *code)
{
    if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 0, 0) != 0)
        ck_abort_msg("%s", lua_tostring(L, -1));
}

/* Runs code in a fresh VM built from part, then closes it. */
static inline void lu_check(rp_lua_api_pt part, const char *code)
{
    lua_State *L = lu_vm(part);
    lu_run(L, code);
    lua_close(L);
}

#endif
