/*
 * ngx.var: the configuration's variables from Lua, by name at run time.
 *
 * The configuration's registry (cycle->vars, http/variables.c) knows every
 * variable by the time the VM is finished, but a variable gets a slot in the
 * request only when a compiled value refers to it, and a prefix family's member
 * ($http_x_foo, $arg_page) exists only if the configuration spelled it. Lua names
 * variables only at run time, so:
 *  - the names are put in a Lua table once, when the VM is made (one hash lookup
 *    per access instead of a scan of the registry);
 *  - a variable without a slot is read through its getter each time, uncached;
 *    changeable variables (`set`, `map`, split_clients) are given a slot when the VM
 *    is made, so that what Lua writes is what Lua, `set` and the logs read later;
 *  - a member of a family the configuration never spelled is made in the request's
 *    memory for the one read: it costs nothing to the requests that do not ask.
 * $1..$9 are ngx.var[1]..ngx.var[9], the last regex match's captures.
 *
 * Writes follow OpenResty: only changeable variables, with its error messages.
 */
#include "lua/lua_int.h"

#include "http/variables.h"

#include <ctype.h>
#include <string.h>

#define MAX_NAME 256

/* Lowercases name into buf (at most MAX_NAME bytes); its length, or 0 when too long. */
static size_t lower_name(const char *name, size_t len, char *buf)
{
    if (len == 0 || len > MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower((unsigned char)name[i]);
    return len;
}

/* The registry's variable named so (lowercase), or NULL. The table of names is
 * upvalue 1, the cycle upvalue 2. */
static rp_var_t *find_registered(lua_State *L, const char *name, size_t len)
{
    lua_pushlstring(L, name, len);
    lua_rawget(L, lua_upvalueindex(1));
    rp_var_t *v = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The family a name belongs to ($http_, $arg_, $cookie_, $sent_http_...), or NULL. */
static const rp_var_t *find_family(lua_State *L, const char *name, size_t len)
{
    rp_cycle_t *cycle = lua_touserdata(L, lua_upvalueindex(2));
    rp_var_t **all = cycle->vars.elts;
    const rp_var_t *best = NULL;
    for (size_t i = 0; i < cycle->vars.nelts; i++) {
        const rp_var_t *p = all[i];
        if ((p->flags & RP_VAR_PREFIX) && len > p->name.len &&
            strncasecmp(name, p->name.data, p->name.len) == 0 &&
            (best == NULL || p->name.len > best->name.len))
            best = p; /* the longest: $sent_http_ before a shorter family */
    }
    return best;
}

/*
 * A member of a prefix family nothing in the configuration named ($http_x_deny read
 * only from Lua): made once and kept in the name table (a userdata, so the VM frees
 * it), up to MEMBERS_KEPT of them; past that, made in the request for this read.
 */
#define MEMBERS_KEPT 1024
static unsigned members_kept;

static const rp_var_t *make_member(lua_State *L, rp_request_t *r, const rp_var_t *family,
                                   const char *name, size_t len)
{
    rp_var_t *m;
    char *copy;
    int keep = members_kept < MEMBERS_KEPT;
    if (keep) {
        m = lua_newuserdata(L, sizeof(*m) + len);
        memset(m, 0, sizeof(*m));
        copy = (char *)(m + 1);
    } else {
        m = rp_arena_calloc(r->arena, sizeof(*m));
        copy = rp_arena_alloc(r->arena, len);
    }
    memcpy(copy, name, len);
    m->name = (rp_str_t){copy, len};
    m->get = family->get;
    m->flags = family->flags & ~RP_VAR_PREFIX;
    m->data = family->data;
    m->arg = (rp_str_t){copy + family->name.len, len - family->name.len};
    m->index = -1;
    m->prefix = family;
    if (keep) {
        members_kept++;
        lua_pushlstring(L, name, len);
        lua_insert(L, -2);
        lua_rawset(L, lua_upvalueindex(1));
    }
    return m;
}

/* ngx.var[n]: capture n of the last regex match, nil without one. */
static int push_capture(lua_State *L, rp_request_t *r, lua_Integer n)
{
    if (n <= 0 || (size_t)n >= r->ncaptures) {
        lua_pushnil(L);
        return 1;
    }
    size_t from = r->captures[2 * n], to = r->captures[2 * n + 1];
    if (from == (size_t)-1 || to < from)
        lua_pushliteral(L, "");
    else
        lua_pushlstring(L, r->captures_subject.data + from, to - from);
    return 1;
}

static int var_index(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    if (lua_type(L, 2) == LUA_TNUMBER)
        return push_capture(L, r, lua_tointeger(L, 2));
    /* the name as written first: a lowercase name is found without copying it */
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    const rp_var_t *v = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (v == NULL) {
        size_t len;
        const char *key = luaL_checklstring(L, 2, &len);
        char name[MAX_NAME];
        len = lower_name(key, len, name);
        if (len == 0) {
            lua_pushnil(L);
            return 1;
        }
        v = find_registered(L, name, len);
        if (v == NULL) {
            const rp_var_t *family = find_family(L, name, len);
            if (family == NULL) {
                lua_pushnil(L);
                return 1;
            }
            v = make_member(L, r, family, name, len);
        }
    }
    rp_str_t value;
    if (rp_var_get(r, v, &value) != 0)
        lua_pushnil(L);
    else
        lua_pushlstring(L, value.data ? value.data : "", value.len);
    return 1;
}

/* The members of $http_ that nginx registers by name (a write to them is "not
 * changeable" there; to any other member, "not found for writing"). */
static int nginx_builtin_member(const char *name, size_t len)
{
    static const char *const names[] = {"http_host", "http_user_agent",      "http_referer",
                                        "http_via",  "http_x_forwarded_for", "http_cookie"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return 1;
    return 0;
}

static int var_newindex(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    if (lua_type(L, 2) == LUA_TNUMBER)
        return luaL_error(L, "variable \"%d\" not changeable", (int)lua_tointeger(L, 2));
    size_t len;
    const char *key = luaL_checklstring(L, 2, &len);
    char name[MAX_NAME];
    size_t n = lower_name(key, len, name);
    const rp_var_t *v = n ? find_registered(L, name, n) : NULL;
    if (v == NULL && n && nginx_builtin_member(name, n))
        return luaL_error(L, "variable \"%s\" not changeable", key);
    if (v && v->prefix && !(v->flags & RP_VAR_CHANGEABLE) && nginx_builtin_member(name, n))
        return luaL_error(L, "variable \"%s\" not changeable", key);
    if (v == NULL || (v->prefix && !(v->flags & RP_VAR_CHANGEABLE)))
        return luaL_error(L,
                          "variable \"%s\" not found for writing; maybe it is a built-in "
                          "variable that is not changeable or you forgot to use \"set $%s "
                          "'';\" in the config file to define it first",
                          key, key);
    if (!(v->flags & RP_VAR_CHANGEABLE))
        return luaL_error(L, "variable \"%s\" not changeable", key);

    rp_str_t value = RP_STR("");
    int unset = 0;
    switch (lua_type(L, 3)) {
    case LUA_TNIL:
        unset = 1;
        break;
    case LUA_TNUMBER:
    case LUA_TSTRING: {
        size_t vlen;
        const char *s = lua_tolstring(L, 3, &vlen);
        char *copy = rp_arena_alloc(r->arena, vlen + 1);
        memcpy(copy, s, vlen);
        copy[vlen] = '\0';
        value = (rp_str_t){copy, vlen};
        break;
    }
    default:
        return luaL_error(L, "bad variable value");
    }
    rp_var_set(r, v, value);
    if (unset && v->index >= 0 && (unsigned)v->index < r->nvars)
        r->vars[v->index].not_found = 1; /* nil: reads as "not found" again */
    return 0;
}

void rp_lua_api_var(lua_State *L, rp_cycle_t *cycle)
{
    lua_newtable(L); /* ngx.var */
    lua_newtable(L); /* its metatable */

    /* the names, lowercase, and slots for the changeable variables */
    lua_createtable(L, 0, (int)cycle->vars.nelts);
    rp_var_t **all = cycle->vars.elts;
    for (size_t i = 0; i < cycle->vars.nelts; i++) {
        rp_var_t *v = all[i];
        char name[MAX_NAME];
        size_t len = lower_name(v->name.data, v->name.len, name);
        if (len == 0 || (v->flags & (RP_VAR_PREFIX | RP_VAR_UNKNOWN)))
            continue;
        if ((v->flags & RP_VAR_CHANGEABLE) && v->index < 0)
            v->index = (int)cycle->nvar_slots++;
        lua_pushlstring(L, name, len);
        lua_pushlightuserdata(L, v);
        lua_rawset(L, -3);
    }
    lua_pushlightuserdata(L, cycle);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -2);
    lua_pushcclosure(L, var_index, 2);
    lua_setfield(L, -4, "__index");
    lua_pushcclosure(L, var_newindex, 2);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "var");
}
