/*
 * ngx.shared.DICT: OpenResty's shared dictionaries in Lua. Each dictionary object
 * (ngx.shared.NAME, a userdata) names a zone that lua_shdict_module.c declared;
 * its methods are OpenResty's, with OpenResty's returns and error strings (the
 * lua-resty-core versions: set -> ok, err, forcible; get -> value, flags), so code
 * written for OpenResty runs unchanged. Beyond OpenResty, a table may be stored: it
 * is encoded (lua_codec.c) and comes back as a new table.
 *
 * Every operation is one call into the zone's hash table under the zone's lock, so
 * it is atomic across workers (incr counts exactly, add lets one caller win). No
 * Lua allocation happens under the lock: a value is copied into a buffer of this
 * process first and pushed after the lock is released (a Lua allocation may run a
 * __gc finalizer, which may call the dictionary again, and a finalizer or an
 * allocation failure raising an error would leave the lock held). When the buffer
 * is too small for what is found, the lock is released, the buffer grown, and the
 * operation starts again.
 *
 * A list (lpush, rpush, lpop, rpop, llen) is one entry whose value is a deque: a
 * header, then elements packed between a start and an end offset with room on both
 * sides, each element [type][length][bytes][length] so it can be read from either
 * end. A push writes in place while there is room on its side, otherwise the list
 * is copied out and laid out again in twice the room; a pop shrinks a list left
 * mostly empty. Both are amortized constant time.
 */
#include "lua/lua_shdict.h"
#include "core/cycle.h"
#include "core/time.h"
#include "http/http.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DICT_MT "rampart.shdict"

typedef struct {
    rp_shm_zone_t *zone;
} dict_t;

static int64_t (*clock_ms)(void) = rp_time_ms;

void rp_lua_shdict_set_clock(int64_t (*now)(void))
{
    clock_ms = now ? now : rp_time_ms;
}

/* This process's buffer for values on their way in and out of the zone. */
static char *scratch;
static size_t scratch_cap;

static void grow(lua_State *L, size_t n)
{
    if (n <= scratch_cap)
        return;
    size_t cap = scratch_cap ? scratch_cap : 4096;
    while (cap < n)
        cap *= 2;
    char *b = realloc(scratch, cap);
    if (b == NULL)
        luaL_error(L, "no memory");
    scratch = b;
    scratch_cap = cap;
}

static dict_t *check_dict(lua_State *L)
{
    dict_t *d = lua_touserdata(L, 1);
    int ok = 0;
    if (d != NULL && lua_getmetatable(L, 1)) {
        luaL_getmetatable(L, DICT_MT);
        ok = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!ok)
        luaL_error(L, "bad \"zone\" argument");
    if (d->zone->addr == NULL)
        luaL_error(L, "lua_shared_dict \"%s\" is not mapped yet", d->zone->name);
    return d;
}

/*
 * The key at index 2, as OpenResty takes it: a number is turned into its string,
 * anything else through tostring(). Returns 0, or the count of the values pushed
 * (nil and the message) for the caller to return.
 */
static int check_key(lua_State *L, const char **key, size_t *len)
{
    int t = lua_type(L, 2);
    if (t == LUA_TNIL || t == LUA_TNONE) {
        lua_pushnil(L);
        lua_pushliteral(L, "nil key");
        return 2;
    }
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, 2);
        lua_call(L, 1, 1);
        lua_replace(L, 2);
    }
    *key = lua_tolstring(L, 2, len);
    if (*key == NULL || *len == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "empty key");
        return 2;
    }
    if (*len > RP_SHM_HASH_MAX_KEY) {
        lua_pushnil(L);
        lua_pushliteral(L, "key too long");
        return 2;
    }
    return 0;
}

/* Takes the lock and returns the table, laid out afresh when it is not one any more
 * or a process died holding the lock and left it damaged. */
static rp_shm_hash_t *lock(dict_t *d)
{
    rp_shm_zone_t *z = d->zone;
    int died = rp_shm_lock(z);
    rp_shm_hash_t *h = rp_shm_hash_attach(z->addr, z->avail);
    if (h != NULL && died && rp_shm_hash_verify_locked(h) != 0)
        h = NULL;
    if (h == NULL)
        h = rp_shm_hash_init(z->addr, z->avail, &rp_lua_shdict_table_conf);
    return h; /* the zone was laid out at start: it is large enough */
}

static void unlock(dict_t *d)
{
    rp_shm_unlock(d->zone);
}

/* OpenResty's word for what an operation answered (under the lock: a damaged table
 * is laid out again, empty, which is all that can be done with it). */
static const char *rc_text(dict_t *d, int rc)
{
    switch (rc) {
    case RP_SHM_NOT_FOUND:
        return "not found";
    case RP_SHM_EXISTS:
        return "exists";
    case RP_SHM_NO_MEMORY:
        return "no memory";
    case RP_SHM_NOT_NUMBER:
        return "not a number";
    case RP_SHM_INVALID:
        return "invalid key";
    case RP_SHM_DAMAGED:
        rp_shm_hash_init(d->zone->addr, d->zone->avail, &rp_lua_shdict_table_conf);
        return "dictionary damaged: emptied";
    default:
        return "unknown error";
    }
}

static int64_t expiry(int64_t now, lua_Number seconds)
{
    int64_t ms = (int64_t)(seconds * 1000);
    return ms > 0 ? now + ms : 0;
}

/* Pushes a value of kind copied out of the zone. Returns 0, or -1 (nothing pushed)
 * for bytes that are not a value of that kind. */
static int push_value(lua_State *L, unsigned kind, const char *p, size_t len)
{
    switch (kind) {
    case RP_LUA_SHDICT_BOOLEAN:
        if (len != 1)
            return -1;
        lua_pushboolean(L, p[0] != 0);
        return 0;
    case RP_LUA_SHDICT_NUMBER: {
        double v;
        if (len != sizeof(v))
            return -1;
        memcpy(&v, p, sizeof(v));
        lua_pushnumber(L, v);
        return 0;
    }
    case RP_LUA_SHDICT_STRING:
        lua_pushlstring(L, p, len);
        return 0;
    case RP_LUA_SHDICT_TABLE: {
        /* anchored in a Lua string first: decoding allocates, and an allocation may
         * run a finalizer that uses (and grows) the scratch buffer */
        lua_pushlstring(L, p, len);
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        int rc = rp_lua_decode(L, s, n);
        lua_remove(L, rc == 0 ? -2 : -1);
        return rc;
    }
    default:
        return -1;
    }
}

/* ---- get, get_stale ---- */

static int get_helper(lua_State *L, int stale)
{
    dict_t *d = check_dict(L);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    int64_t now = clock_ms();
    rp_shm_hash_item_t it;
    for (;;) {
        rp_shm_hash_t *h = lock(d);
        /* get too reads with STALE, so that an expired entry stays for get_stale (the
         * hash drops what a plain read finds expired; OpenResty leaves it) */
        int rc = rp_shm_hash_get_locked(h, key, klen, now, RP_SHM_HASH_STALE, &it);
        if (rc == RP_SHM_NOT_FOUND || (rc == RP_SHM_OK && it.stale && !stale)) {
            unlock(d);
            lua_pushnil(L);
            return 1;
        }
        if (rc != RP_SHM_OK) {
            const char *msg = rc_text(d, rc);
            unlock(d);
            lua_pushnil(L);
            lua_pushstring(L, msg);
            return 2;
        }
        if (it.kind == RP_LUA_SHDICT_LIST) {
            unlock(d);
            lua_pushnil(L);
            lua_pushliteral(L, "value is a list");
            return 2;
        }
        if (it.value_len > scratch_cap) {
            unlock(d);
            grow(L, it.value_len);
            continue;
        }
        memcpy(scratch, it.value, it.value_len);
        unlock(d);
        break;
    }
    if (push_value(L, it.kind, scratch, it.value_len) != 0)
        return luaL_error(L, "bad value in lua_shared_dict \"%s\"", d->zone->name);
    if (it.flags != 0)
        lua_pushnumber(L, it.flags);
    else if (stale)
        lua_pushnil(L);
    if (!stale)
        return it.flags != 0 ? 2 : 1;
    lua_pushboolean(L, it.stale);
    return 3;
}

static int d_get(lua_State *L)
{
    return get_helper(L, 0);
}

static int d_get_stale(lua_State *L)
{
    return get_helper(L, 1);
}

/* ---- set, safe_set, add, safe_add, replace, delete ---- */

static int store_result(lua_State *L, const char *err, unsigned forced)
{
    if (err == NULL) {
        lua_pushboolean(L, 1);
        lua_pushnil(L);
    } else {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err);
    }
    lua_pushboolean(L, forced > 0);
    return 3;
}

static int store(lua_State *L, unsigned mode)
{
    dict_t *d = check_dict(L);
    lua_Number exptime = 0;
    if (!lua_isnoneornil(L, 4)) {
        exptime = luaL_checknumber(L, 4);
        if (exptime < 0)
            return luaL_error(L, "bad \"exptime\" argument");
    }
    uint32_t flags = (uint32_t)luaL_optinteger(L, 5, 0);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;

    rp_shm_hash_item_t it = {.key = key, .key_len = klen, .flags = flags};
    double num;
    unsigned char boolean;
    switch (lua_type(L, 3)) {
    case LUA_TSTRING:
        it.kind = RP_LUA_SHDICT_STRING;
        it.value = lua_tolstring(L, 3, &it.value_len);
        break;
    case LUA_TNUMBER:
        it.kind = RP_LUA_SHDICT_NUMBER;
        num = lua_tonumber(L, 3);
        it.value = &num;
        it.value_len = sizeof(num);
        break;
    case LUA_TBOOLEAN:
        it.kind = RP_LUA_SHDICT_BOOLEAN;
        boolean = (unsigned char)lua_toboolean(L, 3);
        it.value = &boolean;
        it.value_len = 1;
        break;
    case LUA_TNIL:
    case LUA_TNONE:
        it.kind = 0;
        break;
    case LUA_TTABLE: {
        char err[128];
        size_t len = 0;
        if (rp_lua_encode(L, 3, &scratch, &len, &scratch_cap, err, sizeof(err)) != 0) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        it.kind = RP_LUA_SHDICT_TABLE;
        it.value = scratch;
        it.value_len = len;
        break;
    }
    default:
        lua_pushnil(L);
        lua_pushliteral(L, "bad value type");
        return 2;
    }

    if (it.kind == 0 && (mode & 3u) != RP_SHM_HASH_SET)
        return store_result(L, "attempt to add or replace nil values", 0);
    int64_t now = clock_ms();
    it.expires = expiry(now, exptime);
    unsigned forced = 0;
    const char *err = NULL;
    rp_shm_hash_t *h = lock(d);
    int rc;
    if (it.kind == 0) { /* set and safe_set: delete */
        rc = rp_shm_hash_delete_locked(h, key, klen, now);
        if (rc == RP_SHM_NOT_FOUND)
            rc = RP_SHM_OK;
    } else {
        rc = rp_shm_hash_store_locked(h, &it, mode, now, &forced);
    }
    if (rc != RP_SHM_OK)
        err = rc_text(d, rc);
    unlock(d);
    return store_result(L, err, forced);
}

static int d_set(lua_State *L)
{
    return store(L, RP_SHM_HASH_SET);
}

static int d_safe_set(lua_State *L)
{
    return store(L, RP_SHM_HASH_SET | RP_SHM_HASH_SAFE);
}

static int d_add(lua_State *L)
{
    return store(L, RP_SHM_HASH_ADD);
}

static int d_safe_add(lua_State *L)
{
    return store(L, RP_SHM_HASH_ADD | RP_SHM_HASH_SAFE);
}

static int d_replace(lua_State *L)
{
    return store(L, RP_SHM_HASH_REPLACE);
}

static int d_delete(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushnil(L);
    return store(L, RP_SHM_HASH_SET);
}

/* ---- incr ---- */

/* The number at idx, or a string that reads as one, as tonumber() would. */
static int to_number(lua_State *L, int idx, lua_Number *out)
{
    if (lua_type(L, idx) == LUA_TNUMBER ||
        (lua_type(L, idx) == LUA_TSTRING && lua_isnumber(L, idx))) {
        *out = lua_tonumber(L, idx);
        return 0;
    }
    return -1;
}

static int d_incr(lua_State *L)
{
    dict_t *d = check_dict(L);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    lua_Number by, init = 0, init_ttl = 0;
    if (to_number(L, 3, &by) != 0) /* OpenResty's words: tonumber() gave it nil */
        return luaL_error(L, "cannot convert 'nil' to 'double'");
    int has_init = lua_toboolean(L, 4);
    if (has_init && to_number(L, 4, &init) != 0)
        return luaL_error(L, "bad init arg: number expected, got %s", luaL_typename(L, 4));
    if (!lua_isnoneornil(L, 5)) {
        if (to_number(L, 5, &init_ttl) != 0)
            return luaL_error(L, "bad init_ttl arg: number expected, got %s", luaL_typename(L, 5));
        if (init_ttl < 0)
            return luaL_error(L, "bad \"init_ttl\" argument");
        if (!has_init)
            return luaL_error(L, "must provide \"init\" when providing \"init_ttl\"");
    }
    int64_t now = clock_ms();
    double init_d = init, result = 0;
    unsigned forced = 0;
    rp_shm_hash_t *h = lock(d);
    int rc = rp_shm_hash_incr_locked(h, key, klen, by, has_init ? &init_d : NULL,
                                     expiry(now, init_ttl), now, &result, &forced);
    const char *err = rc == RP_SHM_OK ? NULL : rc_text(d, rc);
    unlock(d);
    if (err != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushnumber(L, result);
    if (!has_init)
        return 1;
    lua_pushnil(L);
    lua_pushboolean(L, forced > 0);
    return 3;
}

/* ---- ttl, expire ---- */

static int d_ttl(lua_State *L)
{
    dict_t *d = check_dict(L);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    int64_t now = clock_ms(), ttl = 0;
    rp_shm_hash_t *h = lock(d);
    /* as OpenResty: an expired entry not yet dropped has a negative ttl (and stays for
     * get_stale) */
    rp_shm_hash_item_t it;
    int rc = rp_shm_hash_get_locked(h, key, klen, now, RP_SHM_HASH_STALE, &it);
    if (rc == RP_SHM_OK)
        ttl = it.expires ? it.expires - now : 0;
    const char *err = rc == RP_SHM_OK ? NULL : rc_text(d, rc);
    unlock(d);
    if (err != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushnumber(L, (lua_Number)ttl / 1000);
    return 1;
}

static int d_expire(lua_State *L)
{
    dict_t *d = check_dict(L);
    if (lua_isnoneornil(L, 3))
        return luaL_error(L, "bad \"exptime\" argument");
    lua_Number exptime = luaL_checknumber(L, 3);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    int64_t now = clock_ms();
    rp_shm_hash_t *h = lock(d);
    int rc = rp_shm_hash_expire_locked(h, key, klen, expiry(now, exptime), now);
    const char *err = rc == RP_SHM_OK ? NULL : rc_text(d, rc);
    unlock(d);
    if (err != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- flush_all, flush_expired, get_keys, capacity, free_space ---- */

static int d_flush_all(lua_State *L)
{
    dict_t *d = check_dict(L);
    rp_shm_hash_t *h = lock(d);
    rp_shm_hash_flush_all_locked(h);
    unlock(d);
    return 0;
}

static int d_flush_expired(lua_State *L)
{
    dict_t *d = check_dict(L);
    lua_Integer max = luaL_optinteger(L, 2, 0);
    int64_t now = clock_ms();
    rp_shm_hash_t *h = lock(d);
    size_t n = rp_shm_hash_flush_expired_locked(h, max > 0 ? (size_t)max : 0, now);
    unlock(d);
    lua_pushnumber(L, (lua_Number)n);
    return 1;
}

typedef struct {
    size_t len, need, n, max;
} keys_t;

/* Copies each key into the scratch buffer as its length and its bytes. */
static int collect_key(const rp_shm_hash_item_t *it, void *arg)
{
    keys_t *k = arg;
    size_t sz = sizeof(uint32_t) + it->key_len;
    if (k->len + sz <= scratch_cap) {
        uint32_t l = (uint32_t)it->key_len;
        memcpy(scratch + k->len, &l, sizeof(l));
        memcpy(scratch + k->len + sizeof(l), it->key, it->key_len);
        k->len += sz;
    }
    k->need += sz;
    k->n++;
    return k->max && k->n >= k->max;
}

static int d_get_keys(lua_State *L)
{
    dict_t *d = check_dict(L);
    lua_Integer max = luaL_optinteger(L, 2, 1024);
    if (max < 0)
        max = 0; /* all, as OpenResty */
    int64_t now = clock_ms();
    keys_t k;
    for (;;) {
        k = (keys_t){.max = (size_t)max};
        rp_shm_hash_t *h = lock(d);
        rp_shm_hash_each_locked(h, now, collect_key, &k);
        unlock(d);
        if (k.need <= scratch_cap)
            break;
        grow(L, k.need);
    }
    lua_createtable(L, (int)k.n, 0);
    size_t off = 0;
    for (int i = 1; off < k.len; i++) {
        uint32_t l;
        memcpy(&l, scratch + off, sizeof(l));
        lua_pushlstring(L, scratch + off + sizeof(l), l); /* may run a finalizer: copy first */
        off += sizeof(l) + l;
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int d_capacity(lua_State *L)
{
    dict_t *d = check_dict(L);
    lua_pushnumber(L, (lua_Number)d->zone->size);
    return 1;
}

static int d_free_space(lua_State *L)
{
    dict_t *d = check_dict(L);
    rp_shm_slab_stats_t st;
    rp_shm_hash_t *h = lock(d);
    rp_shm_slab_stats_locked(rp_shm_hash_slab(h), &st);
    unlock(d);
    lua_pushnumber(L, (lua_Number)(st.pages_free * st.page_size));
    return 1;
}

/* ---- lists ---- */

typedef struct {
    uint32_t start, end, count, pad; /* offsets into the data after the header */
} list_head_t;

#define ELEM_OVERHEAD (1 + 2 * sizeof(uint32_t))

/* Writes an element (type, bytes) at p. */
static void elem_write(char *p, unsigned char type, const void *v, uint32_t len)
{
    p[0] = (char)type;
    memcpy(p + 1, &len, sizeof(len));
    memcpy(p + 1 + sizeof(len), v, len);
    memcpy(p + 1 + sizeof(len) + len, &len, sizeof(len));
}

/* The list in a found entry, checked: NULL when its header does not hold together. */
static list_head_t *list_of(const rp_shm_hash_item_t *it, size_t *cap)
{
    if (it->value_len < sizeof(list_head_t))
        return NULL;
    list_head_t *lh = (list_head_t *)(uintptr_t)it->value;
    *cap = it->value_len - sizeof(list_head_t);
    if (lh->start > lh->end || lh->end > *cap || (lh->count == 0) != (lh->start == lh->end))
        return NULL;
    return lh;
}

/*
 * Stores a list of the used bytes in scratch (after the element at left or right of
 * them when elem is not NULL) in a new entry of room cap, keeping expires and flags.
 * Returns the hash's answer.
 */
static int list_layout(rp_shm_hash_t *h, const char *key, size_t klen, size_t used, uint32_t count,
                       const char *elem, size_t esz, int left, size_t cap, int64_t expires,
                       uint32_t flags, int64_t now, unsigned *forced)
{
    rp_shm_hash_item_t ni = {.key = key,
                             .key_len = klen,
                             .value_len = sizeof(list_head_t) + cap,
                             .expires = expires,
                             .flags = flags,
                             .kind = RP_LUA_SHDICT_LIST};
    void *v;
    int rc = rp_shm_hash_reserve_locked(h, &ni, 0, now, &v, forced);
    if (rc != RP_SHM_OK && rc != RP_SHM_CREATED)
        return rc;
    list_head_t *lh = v;
    char *data = (char *)(lh + 1);
    size_t start = (cap - used - esz) / 2;
    if (elem && left) {
        memcpy(data + start, elem, esz);
        if (used) /* scratch may not exist yet */
            memcpy(data + start + esz, scratch, used);
    } else {
        if (used)
            memcpy(data + start, scratch, used);
        if (elem)
            memcpy(data + start + used, elem, esz);
    }
    lh->start = (uint32_t)start;
    lh->end = (uint32_t)(start + used + esz);
    lh->count = count;
    lh->pad = 0;
    return RP_SHM_OK;
}

/* OpenResty's list methods are C functions that count their arguments. */
static void check_args(lua_State *L, int n)
{
    if (lua_gettop(L) != n)
        luaL_error(L, "expecting %d arguments, but only seen %d", n, lua_gettop(L));
}

static int push(lua_State *L, int left)
{
    check_args(L, 3);
    dict_t *d = check_dict(L);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    unsigned char type;
    const void *v;
    size_t len;
    double num;
    if (lua_type(L, 3) == LUA_TSTRING) {
        type = RP_LUA_SHDICT_STRING;
        v = lua_tolstring(L, 3, &len);
    } else if (lua_type(L, 3) == LUA_TNUMBER) {
        type = RP_LUA_SHDICT_NUMBER;
        num = lua_tonumber(L, 3);
        v = &num;
        len = sizeof(num);
    } else {
        lua_pushnil(L);
        lua_pushliteral(L, "bad value type");
        return 2;
    }
    if (len > UINT32_MAX / 4) {
        lua_pushnil(L);
        lua_pushliteral(L, "no memory");
        return 2;
    }
    /* the element is built here, outside the lock, for in-place and re-laid-out pushes */
    size_t esz = ELEM_OVERHEAD + len;
    char small[256];
    char *elem = esz <= sizeof(small) ? small : lua_newuserdata(L, esz);
    elem_write(elem, type, v, (uint32_t)len);

    int64_t now = clock_ms();
    for (;;) {
        rp_shm_hash_t *h = lock(d);
        rp_shm_hash_item_t it;
        int rc = rp_shm_hash_get_locked(h, key, klen, now, 0, &it);
        size_t used = 0, cap = 0;
        uint32_t count = 0, flags = 0;
        int64_t expires = 0;
        if (rc == RP_SHM_OK) {
            if (it.kind != RP_LUA_SHDICT_LIST) {
                unlock(d);
                lua_pushnil(L);
                lua_pushliteral(L, "value not a list");
                return 2;
            }
            list_head_t *lh = list_of(&it, &cap);
            if (lh != NULL) {
                char *data = (char *)(lh + 1);
                if (left ? lh->start >= esz : cap - lh->end >= esz) {
                    if (left) {
                        lh->start -= (uint32_t)esz;
                        memcpy(data + lh->start, elem, esz);
                    } else {
                        memcpy(data + lh->end, elem, esz);
                        lh->end += (uint32_t)esz;
                    }
                    count = ++lh->count;
                    unlock(d);
                    lua_pushnumber(L, count);
                    return 1;
                }
                used = lh->end - lh->start;
                if (used > scratch_cap) {
                    unlock(d);
                    grow(L, used);
                    continue;
                }
                memcpy(scratch, data + lh->start, used);
                count = lh->count;
                expires = it.expires;
                flags = it.flags;
            } /* a list that does not hold together is started afresh */
        } else if (rc != RP_SHM_NOT_FOUND) {
            const char *err = rc_text(d, rc);
            unlock(d);
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        unsigned forced = 0;
        rc = list_layout(h, key, klen, used, count + 1, elem, esz, left, 2 * (used + esz) + 32,
                         expires, flags, now, &forced);
        if (rc == RP_SHM_NO_MEMORY) /* no room to spare: exactly what it holds */
            rc = list_layout(h, key, klen, used, count + 1, elem, esz, left, used + esz, expires,
                             flags, now, &forced);
        if (rc == RP_SHM_NO_MEMORY && used > 0) /* the old list was dropped: put it back */
            list_layout(h, key, klen, used, count, NULL, 0, 0, used, expires, flags, now, &forced);
        const char *err = rc == RP_SHM_OK ? NULL : rc_text(d, rc);
        unlock(d);
        if (err != NULL) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        lua_pushnumber(L, count + 1);
        return 1;
    }
}

static int d_lpush(lua_State *L)
{
    return push(L, 1);
}

static int d_rpush(lua_State *L)
{
    return push(L, 0);
}

static int pop(lua_State *L, int left)
{
    check_args(L, 2);
    dict_t *d = check_dict(L);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    int64_t now = clock_ms();
    unsigned char type;
    uint32_t len;
    for (;;) {
        rp_shm_hash_t *h = lock(d);
        rp_shm_hash_item_t it;
        int rc = rp_shm_hash_get_locked(h, key, klen, now, 0, &it);
        if (rc == RP_SHM_NOT_FOUND) {
            unlock(d);
            lua_pushnil(L);
            return 1;
        }
        if (rc != RP_SHM_OK) {
            const char *err = rc_text(d, rc);
            unlock(d);
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        if (it.kind != RP_LUA_SHDICT_LIST) {
            unlock(d);
            lua_pushnil(L);
            lua_pushliteral(L, "value not a list");
            return 2;
        }
        size_t cap;
        list_head_t *lh = list_of(&it, &cap);
        char *data = lh ? (char *)(lh + 1) : NULL;
        size_t at = 0;
        int ok = lh != NULL && lh->count > 0 && lh->end - lh->start >= ELEM_OVERHEAD;
        if (ok && left) {
            at = lh->start;
            memcpy(&len, data + at + 1, sizeof(len));
            ok = len <= lh->end - lh->start - ELEM_OVERHEAD;
        } else if (ok) {
            memcpy(&len, data + lh->end - sizeof(len), sizeof(len));
            ok = len <= lh->end - lh->start - ELEM_OVERHEAD;
            at = ok ? lh->end - ELEM_OVERHEAD - len : 0;
        }
        if (!ok) { /* an empty or broken list: gone */
            rp_shm_hash_delete_locked(h, key, klen, now);
            unlock(d);
            lua_pushnil(L);
            return 1;
        }
        if (len > scratch_cap) {
            unlock(d);
            grow(L, len);
            continue;
        }
        type = (unsigned char)data[at];
        memcpy(scratch, data + at + 1 + sizeof(len), len);
        if (left)
            lh->start += ELEM_OVERHEAD + len;
        else
            lh->end -= ELEM_OVERHEAD + len;
        if (--lh->count == 0) {
            rp_shm_hash_delete_locked(h, key, klen, now);
        } else {
            /* a list left mostly empty gives its room back, when the buffer (which
             * holds the popped value) has room for the rest too */
            size_t used = lh->end - lh->start;
            if (cap > 4096 && used * 4 < cap && len + used <= scratch_cap) {
                memmove(scratch + used, scratch, len);
                memcpy(scratch, data + lh->start, used);
                unsigned forced;
                list_layout(h, key, klen, used, lh->count, NULL, 0, 0, 2 * used + 32, it.expires,
                            it.flags, now, &forced);
                memmove(scratch, scratch + used, len);
            }
        }
        unlock(d);
        break;
    }
    if (push_value(L, type, scratch, len) != 0)
        return luaL_error(L, "bad value in lua_shared_dict \"%s\"", d->zone->name);
    return 1;
}

static int d_lpop(lua_State *L)
{
    return pop(L, 1);
}

static int d_rpop(lua_State *L)
{
    return pop(L, 0);
}

static int d_llen(lua_State *L)
{
    check_args(L, 2);
    dict_t *d = check_dict(L);
    const char *key;
    size_t klen;
    int n = check_key(L, &key, &klen);
    if (n)
        return n;
    int64_t now = clock_ms();
    rp_shm_hash_t *h = lock(d);
    rp_shm_hash_item_t it;
    int rc = rp_shm_hash_get_locked(h, key, klen, now, 0, &it);
    uint32_t count = 0;
    const char *err = NULL;
    if (rc == RP_SHM_OK && it.kind != RP_LUA_SHDICT_LIST) {
        err = "value not a list";
    } else if (rc == RP_SHM_OK) {
        size_t cap;
        list_head_t *lh = list_of(&it, &cap);
        count = lh ? lh->count : 0;
    } else if (rc != RP_SHM_NOT_FOUND) {
        err = rc_text(d, rc);
    }
    unlock(d);
    if (err != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushnumber(L, count);
    return 1;
}

/* ---- the objects ---- */

static int d_tostring(lua_State *L)
{
    dict_t *d = lua_touserdata(L, 1);
    lua_pushfstring(L, "lua_shared_dict: %s", d->zone->name);
    return 1;
}

static const luaL_Reg methods[] = {
    {"get", d_get},
    {"get_stale", d_get_stale},
    {"set", d_set},
    {"safe_set", d_safe_set},
    {"add", d_add},
    {"safe_add", d_safe_add},
    {"replace", d_replace},
    {"delete", d_delete},
    {"incr", d_incr},
    {"ttl", d_ttl},
    {"expire", d_expire},
    {"flush_all", d_flush_all},
    {"flush_expired", d_flush_expired},
    {"get_keys", d_get_keys},
    {"capacity", d_capacity},
    {"free_space", d_free_space},
    {"lpush", d_lpush},
    {"rpush", d_rpush},
    {"lpop", d_lpop},
    {"rpop", d_rpop},
    {"llen", d_llen},
    {NULL, NULL},
};

void rp_lua_shdict_push(lua_State *L, rp_shm_zone_t *zone)
{
    dict_t *d = lua_newuserdata(L, sizeof(*d));
    d->zone = zone;
    if (luaL_newmetatable(L, DICT_MT)) {
        lua_newtable(L);
        luaL_register(L, NULL, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, d_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_setmetatable(L, -2);
}

void rp_lua_api_shdict(lua_State *L, rp_cycle_t *cycle)
{
    rp_lua_shdict_conf_t *c = cycle ? rp_http_main_conf(cycle, &rp_lua_shdict_module) : NULL;
    size_t n = c ? c->dicts.nelts : 0;
    lua_createtable(L, 0, (int)n);
    for (size_t i = 0; i < n; i++) {
        rp_lua_shdict_t *d = RP_ARRAY_AT(&c->dicts, rp_lua_shdict_t *, i);
        rp_lua_shdict_push(L, d->zone);
        lua_setfield(L, -2, d->name);
    }
    lua_setfield(L, -2, "shared");
}
