/*
 * OpenResty's shared dictionaries (lua_shared_dict, ngx.shared.DICT): each one a
 * shared-memory zone laid out as one hash table (core/shm_hash.h) whose entries
 * keep a Lua value with its type, the user's flags and an expiry in milliseconds.
 * The directive (lua_shdict_module.c) declares the zones; the API part
 * (lua_shdict.c) hands them to Lua as ngx.shared; the codec (lua_codec.c) turns a
 * table into bytes and back, which OpenResty does not store at all.
 */
#ifndef RP_LUA_SHDICT_H
#define RP_LUA_SHDICT_H

#include "core/shm.h"
#include "core/shm_hash.h"
#include "lua/lua.h"

#include <stdint.h>

/* OpenResty's minimum (NGX_HTTP_LUA_SHDICT_MINSIZE): an 8k zone still holds a few
 * dozen small entries here. */
#define RP_LUA_SHDICT_MIN_SIZE (8 * 1024)

/* Value kinds kept with each entry: Lua's own type codes for the scalar types (so a
 * number is RP_SHM_HASH_NUMBER, which incr works on), then ours. */
enum {
    RP_LUA_SHDICT_BOOLEAN = 1, /* one byte, 0 or 1 */
    RP_LUA_SHDICT_NUMBER = 3,  /* a double */
    RP_LUA_SHDICT_STRING = 4,  /* the bytes */
    RP_LUA_SHDICT_TABLE = 5,   /* rp_lua_encode's bytes */
    RP_LUA_SHDICT_LIST = 10,   /* lpush/rpush's list (lua_shdict.c) */
};

/* One dictionary: its name (the key of ngx.shared) and zone. */
typedef struct {
    const char *name;
    rp_shm_zone_t *zone;
} rp_lua_shdict_t;

/* The http main configuration of rp_lua_shdict_module: the dictionaries, in order. */
typedef struct {
    rp_array_t dicts; /* rp_lua_shdict_t * */
} rp_lua_shdict_conf_t;

extern rp_module_t rp_lua_shdict_module;

/* How every dictionary's table is laid out. */
extern const rp_shm_hash_conf_t rp_lua_shdict_table_conf;

/* Pushes the dictionary object of zone (the value of ngx.shared[name]); the
 * metatable is made once per VM. Used by rp_lua_api_shdict and by tests. */
void rp_lua_shdict_push(lua_State *L, rp_shm_zone_t *zone);

/* The clock of expiry, in milliseconds (rp_time_ms, the loop's cached time); tests
 * set their own. NULL restores rp_time_ms. */
void rp_lua_shdict_set_clock(int64_t (*now)(void));

/*
 * Appends the encoding of the table at index idx to the buffer *buf of *len bytes
 * (capacity *cap, grown with realloc): strings, numbers, booleans and nested tables,
 * as keys (tables excepted) and values. Returns 0, or -1 with a message in err for a
 * function, userdata, thread or cdata, a table inside itself, or nesting deeper than
 * RP_LUA_CODEC_DEPTH. Raises no Lua error.
 */
#define RP_LUA_CODEC_DEPTH 100
int rp_lua_encode(lua_State *L, int idx, char **buf, size_t *len, size_t *cap, char *err,
                  size_t errlen);

/* Pushes the table encoded in p..p+len. Returns 0, or -1 (nothing pushed) when the
 * bytes are not an encoding. */
int rp_lua_decode(lua_State *L, const void *p, size_t len);

#endif
