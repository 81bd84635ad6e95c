/*
 * ngx.re's compiled-pattern cache ("o" option), seen from C: its bound (what a
 * lua_regex_cache_max_entries directive would set; 1024 by default, 0 turns
 * caching off) and how many patterns it holds (for tests). L is the VM whose
 * ngx.re was built by rp_lua_api_re(); re_index is where ngx.re is on its stack.
 */
#ifndef RP_LUA_RE_H
#define RP_LUA_RE_H

#include "lua/lua.h"

void rp_lua_re_set_cache_max(lua_State *L, int re_index, unsigned max);
unsigned rp_lua_re_cache_count(lua_State *L, int re_index);

#endif
