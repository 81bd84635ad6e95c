/* Placeholders for API parts still being written (removed as each lands). */
#include "lua/lua_int.h"

void rp_lua_api_shdict(lua_State *L, rp_cycle_t *cycle)
{
    (void)L;
    (void)cycle;
}
