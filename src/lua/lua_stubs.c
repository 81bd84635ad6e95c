/* Placeholders for API parts still being written (removed as each lands). */
#include "lua/lua_int.h"
