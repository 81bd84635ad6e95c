/* placeholder */
#include "lua/lua_int.h"
void rp_lua_api_thread(lua_State *L, rp_cycle_t *cycle) { (void)L; (void)cycle; }
