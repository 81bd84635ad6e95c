/*
 * The lua_shared_dict directive: `lua_shared_dict NAME SIZE;` in http, as
 * OpenResty. Each dictionary is a shared-memory zone (core/shm.h) holding one hash
 * table (core/shm_hash.h); a reload that keeps a dictionary's name and size keeps
 * its zone and what it holds, as nginx keeps a shared zone. The Lua side is
 * lua_shdict.c.
 */
#include "lua/lua_shdict.h"
#include "core/cycle.h"
#include "http/http.h"

#include <stdio.h>
#include <string.h>

#define ZONE_TAG "lua_shared_dict"
/* Raise when the table's layout or the encoding of values changes: a reload then
 * starts the dictionary empty instead of reading the old bytes the new way. */
#define ZONE_VERSION 1

/* Reads with a lookup: an LRU order, as OpenResty's dictionaries; a full zone forces
 * out at most 30 unexpired entries for one store, as OpenResty tries 30 times. */
const rp_shm_hash_conf_t rp_lua_shdict_table_conf = {.buckets = 0, .max_forced = 30, .fifo = 0};

static int zone_init(rp_shm_zone_t *zone, int reused, char *err, size_t errlen)
{
    if (reused && rp_shm_hash_attach(zone->addr, zone->avail) != NULL)
        return 0; /* a reload keeps the entries */
    if (rp_shm_hash_init(zone->addr, zone->avail, &rp_lua_shdict_table_conf) == NULL) {
        snprintf(err, errlen, "%s:%u: lua_shared_dict \"%s\" is too small", zone->file, zone->line,
                 zone->name);
        return -1;
    }
    return 0;
}

static void *create_main(rp_conf_t *cf)
{
    rp_lua_shdict_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    rp_array_init(&c->dicts, cf->arena, 4, sizeof(rp_lua_shdict_t *));
    return c;
}

static const char *set_dict(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_lua_shdict_conf_t *c = conf;
    const char *name = cf->argv[1], *size_arg = cf->argv[2];
    size_t size;
    if (name[0] == '\0')
        return rp_conf_error(cf, "invalid lua shared dict name \"%s\"", name);
    if (rp_parse_size(size_arg, &size) != 0 || size < RP_LUA_SHDICT_MIN_SIZE)
        return rp_conf_error(cf, "invalid lua shared dict size \"%s\"", size_arg);
    for (size_t i = 0; i < c->dicts.nelts; i++) {
        rp_lua_shdict_t *d = RP_ARRAY_AT(&c->dicts, rp_lua_shdict_t *, i);
        if (strcmp(d->name, name) == 0)
            return rp_conf_error(cf, "%s \"%s\" is already defined as \"%s\"", cmd->name, name,
                                 d->name);
    }
    rp_shm_zone_t *z = rp_shm_zone_add_versioned(cf, name, size, ZONE_TAG, ZONE_VERSION, zone_init);
    if (z == NULL)
        return RP_CONF_ERROR;
    rp_lua_shdict_t *d = rp_arena_calloc(cf->arena, sizeof(*d));
    d->name = z->name;
    d->zone = z;
    z->data = d;
    *(rp_lua_shdict_t **)rp_array_push(&c->dicts) = d;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"lua_shared_dict", RP_CTX_HTTP, 0, 2, 2, set_dict, RP_CONF_HTTP_MAIN, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_lua_shdict_module = {
    .name = "lua_shdict",
    .commands = commands,
    .create_http_main = create_main,
};
