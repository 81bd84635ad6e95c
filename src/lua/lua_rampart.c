/* placeholder: filled below */
#include "lua/lua_int.h"
void rp_lua_api_rampart(lua_State *L, rp_cycle_t *cycle) { (void)L; (void)cycle; }
