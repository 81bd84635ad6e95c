/*
 * The `rampart` Lua module (require "rampart", from package.preload; it sets no
 * global): what nginx's API does not show a script.
 *
 *   rampart.upstream(name)        an upstream block's runtime: :peers() (each peer's
 *                                 state, requests in flight, peak-EWMA latency, failures,
 *                                 health, from the shared peer table), :mark_down(peer,
 *                                 on) and :set_weight(peer, w) (administrative state and
 *                                 run-time weight in that table: every worker sees them
 *                                 at its next pick), :name()
 *   rampart.limit(zone, opts)     a limit_req_zone or limit_count_zone as an object,
 *                                 :incoming(key, commit) as lua-resty-limit-traffic's,
 *                                 on the zone's own buckets and counts (the limit
 *                                 modules' functions, under their locks): what a script
 *                                 takes, the zone's limit_req or limit_count lines see
 *   rampart.request_id()          $request_id of the running request
 *   rampart.trace_id(), span_id() $trace_id and $span_id (W3C trace context of rampart's
 *                                 span); nil where trace_context is off
 *
 * The configuration is the one of the VM's generation (the cycle the API part was
 * given): the objects point into it and stay valid as long as the VM does.
 */
#include "lua/lua_int.h"

#include "core/time.h"
#include "http/http.h"
#include "http/variables.h"
#include "limit/limit_count.h"
#include "limit/limit_req.h"
#include "observe/trace_context.h"
#include "upstream/upstream.h"

#include <string.h>

#define UPS_MT   "rampart.upstream"
#define LIMIT_MT "rampart.limit"

static rp_cycle_t *vm_cycle; /* the generation whose VM this is */

/* ---- upstreams ---- */

static rp_upstream_conf_t *find_upstream(const char *name)
{
    rp_upstream_main_conf_t *um =
        vm_cycle ? rp_http_main_conf(vm_cycle, &rp_upstream_module) : NULL;
    if (um == NULL)
        return NULL;
    rp_upstream_conf_t **v = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++)
        if (!v[i]->implicit && strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static rp_upstream_conf_t *check_ups(lua_State *L)
{
    return *(rp_upstream_conf_t **)luaL_checkudata(L, 1, UPS_MT);
}

static const char *state_word(const rp_upstream_conf_t *u, const rp_upstream_server_t *s,
                              int64_t now)
{
    switch (rp_upstream_peer_state(u, s, now)) {
    case RP_PEER_DOWN:
        return "down";
    case RP_PEER_DRAINING:
        return "draining";
    case RP_PEER_UNHEALTHY:
        return "unhealthy";
    case RP_PEER_EJECTED:
        return "ejected";
    case RP_PEER_UNKNOWN:
        return "unknown"; /* checks configured, none has judged it yet */
    default:
        return "up";
    }
}

static void set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* up:peers() -> { {name, addr, weight, state, inflight, ewma_ms, fails, health, ...} } */
static int ups_peers(lua_State *L)
{
    rp_upstream_conf_t *u = check_ups(L);
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    int64_t now = rp_time_ms();
    lua_createtable(L, (int)set->n, 0);
    for (unsigned i = 0; i < set->n; i++) {
        rp_upstream_server_t *s = set->peer[i];
        rp_peer_shared_t *sh = s->sh;
        lua_createtable(L, 0, 14);
        const char *name = s->name;
        if (s->dynamic && s->line_index < u->resolve.nelts)
            name = ((const rp_upstream_resolve_t *)u->resolve.elts)[s->line_index].hostport;
        set_str(L, "name", name);
        set_str(L, "addr", s->name);
        int64_t w = rp_shm_counter_get(&sh->weight);
        set_num(L, "weight", (double)(w > 0 ? w : s->weight));
        set_str(L, "state", state_word(u, s, now));
        set_num(L, "inflight", (double)rp_shm_counter_get(&sh->inflight));
        set_num(L, "conns", (double)rp_shm_counter_get(&sh->conns));
        set_num(L, "ewma_ms", rp_upstream_peer_latency(s, 0, now));
        set_num(L, "ewma_last_ms", rp_upstream_peer_latency(s, 1, now));
        set_num(L, "fails", (double)rp_shm_counter_get(&sh->fails));
        set_num(L, "requests", (double)rp_shm_counter_get(&sh->requests));
        set_num(L, "failures", (double)rp_shm_counter_get(&sh->failures));
        int64_t h = rp_shm_counter_get(&sh->health);
        set_str(L, "health",
                !u->health_checks          ? "unchecked"
                : h == RP_HEALTH_HEALTHY   ? "healthy"
                : h == RP_HEALTH_UNHEALTHY ? "unhealthy"
                                           : "unknown");
        lua_pushboolean(L, s->backup);
        lua_setfield(L, -2, "backup");
        lua_pushboolean(L, rp_upstream_peer_resting(u, s, now));
        lua_setfield(L, -2, "resting");
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

/* The peer of u whose address is name; NULL. */
static rp_upstream_server_t *peer_named(rp_upstream_conf_t *u, const char *name)
{
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    for (unsigned i = 0; i < set->n; i++)
        if (strcmp(set->peer[i]->name, name) == 0)
            return set->peer[i];
    return NULL;
}

/* up:mark_down(peer, on): the administrative state in the shared peer table */
static int ups_mark_down(lua_State *L)
{
    rp_upstream_conf_t *u = check_ups(L);
    const char *name = luaL_checkstring(L, 2);
    int down = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
    rp_upstream_server_t *s = peer_named(u, name);
    if (s == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "no peer \"%s\" in upstream \"%s\"", name, u->name);
        return 2;
    }
    rp_shm_counter_set(&s->sh->state, down ? RP_PEER_DOWN : RP_PEER_USABLE);
    lua_pushboolean(L, 1);
    return 1;
}

/* up:set_weight(peer, w): the run-time weight (0 gives the configured one back). Round
 * robin and least_conn read it at every pick; the balancers with weight tables (random,
 * hash) when they next build them. */
static int ups_set_weight(lua_State *L)
{
    rp_upstream_conf_t *u = check_ups(L);
    const char *name = luaL_checkstring(L, 2);
    lua_Integer w = luaL_checkinteger(L, 3);
    if (w < 0 || w > 1000000)
        return luaL_argerror(L, 3, "weight must be 0 to 1000000");
    rp_upstream_server_t *s = peer_named(u, name);
    if (s == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "no peer \"%s\" in upstream \"%s\"", name, u->name);
        return 2;
    }
    rp_shm_counter_set(&s->sh->weight, (int64_t)w);
    lua_pushboolean(L, 1);
    return 1;
}

static int ups_name(lua_State *L)
{
    lua_pushstring(L, check_ups(L)->name);
    return 1;
}

static int rampart_upstream(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    rp_upstream_conf_t *u = find_upstream(name);
    if (u == NULL) {
        lua_pushnil(L);
        lua_pushfstring(L, "no upstream \"%s\"", name);
        return 2;
    }
    rp_upstream_conf_t **ud = lua_newuserdata(L, sizeof(*ud));
    *ud = u;
    luaL_getmetatable(L, UPS_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- limits ---- */

enum { LIM_REQ, LIM_COUNT };

typedef struct {
    int kind;
    rp_shm_zone_t *zone;
    rp_limit_req_table_t *t; /* LIM_REQ */
    int64_t burst;           /* LIM_REQ: thousandths */
} lim_t;

static rp_shm_zone_t *find_zone(const char *name, const char *tag)
{
    if (vm_cycle == NULL)
        return NULL;
    for (size_t i = 0; i < vm_cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&vm_cycle->shm_zones, rp_shm_zone_t *, i);
        if (strcmp(z->name, name) == 0 && strcmp(z->tag, tag) == 0)
            return z;
    }
    return NULL;
}

/* rampart.limit(zone, {burst = n}) -> object, or nil and an error */
static int rampart_limit(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lim_t l = {0};
    if ((l.zone = find_zone(name, "limit_req")) != NULL) {
        l.kind = LIM_REQ;
        l.t = rp_limit_req_zone_table(l.zone);
    } else if ((l.zone = find_zone(name, "limit_count")) != NULL) {
        l.kind = LIM_COUNT;
    }
    if (l.zone == NULL || (l.kind == LIM_REQ && l.t == NULL)) {
        lua_pushnil(L);
        lua_pushfstring(L, "no limit_req_zone or limit_count_zone \"%s\"", name);
        return 2;
    }
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "burst");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 0)
                return luaL_error(L, "bad burst");
            l.burst = (int64_t)(lua_tonumber(L, -1) * 1000);
        }
        lua_pop(L, 1);
    }
    lim_t *ud = lua_newuserdata(L, sizeof(*ud));
    *ud = l;
    luaL_getmetatable(L, LIMIT_MT);
    lua_setmetatable(L, -2);
    return 1;
}

static int rejected(lua_State *L, const char *why)
{
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
}

/*
 * lim:incoming(key, commit), as lua-resty-limit-traffic's: commit true counts the
 * request, otherwise it is only asked about.
 *   limit_req zone:   delay (seconds the request should wait to keep the rate), excess
 *                     (requests over the rate); nil, "rejected" over the burst
 *   limit_count zone: 0, remaining, reset (seconds to the window's end); nil, "rejected"
 */
static int lim_incoming(lua_State *L)
{
    lim_t *l = luaL_checkudata(L, 1, LIMIT_MT);
    size_t len;
    const char *key = luaL_checklstring(L, 2, &len);
    int commit = lua_toboolean(L, 3);
    if (len == 0 || len > RP_SHM_HASH_MAX_KEY)
        return luaL_argerror(L, 2, "the key must be 1 to 65535 bytes");
    rp_str_t k = {key, len};
    int64_t now = rp_time_ms();
    if (l->kind == LIM_REQ) {
        int64_t excess;
        if (commit) {
            rp_limit_req_limit_t lim = {.t = l->t, .burst = l->burst, .delay = 0};
            rp_limit_req_result_t res;
            rp_limit_req_decide(&lim, 1, &k, now, NULL, &res);
            if (res.outcome == RP_LIMIT_REQ_REJECTED)
                return rejected(L, "rejected");
            if (res.outcome == RP_LIMIT_REQ_NOMEM)
                return rejected(L, "no memory");
            excess = res.excess;
        } else {
            excess = rp_limit_req_peek(l->t, k, now);
            if (excess > l->burst)
                return rejected(L, "rejected");
        }
        lua_pushnumber(L, (double)rp_limit_req_delay_ms(excess, 0, l->t->rate) / 1000.0);
        lua_pushnumber(L, (double)excess / 1000.0);
        return 2;
    }
    rp_lc_decision_t d;
    if (commit) {
        rp_shm_zone_t *zones[1] = {l->zone};
        int rc = rp_limit_count_take(zones, &k, 1, now, &d);
        if (rc < 0)
            return rejected(L, "no memory");
    } else if (rp_limit_count_peek(l->zone, k, now, &d) != 0) {
        return rejected(L, "no memory");
    }
    if (!d.admit)
        return rejected(L, "rejected");
    lua_pushinteger(L, 0);
    lua_pushinteger(L, (lua_Integer)d.remaining);
    lua_pushinteger(L, (lua_Integer)d.reset);
    return 3;
}

/* ---- request identifiers ---- */

static int rampart_request_id(lua_State *L)
{
    rp_request_t *r = rp_lua_request(L);
    if (r == NULL) {
        lua_pushnil(L);
        return 1;
    }
    rp_str_t id = rp_request_id(r);
    lua_pushlstring(L, id.data, id.len);
    return 1;
}

/* The W3C trace context of the running request (observe/trace_context.c): nil outside
 * a request, or where trace_context is off. */
static int push_trace(lua_State *L, int span)
{
    rp_request_t *r = rp_lua_request(L);
    rp_str_t id = RP_NULL_STR;
    if (r)
        id = span ? rp_trace_span_id(r) : rp_trace_id(r);
    if (id.data == NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, id.data, id.len);
    return 1;
}

static int rampart_trace_id(lua_State *L)
{
    return push_trace(L, 0);
}

static int rampart_span_id(lua_State *L)
{
    return push_trace(L, 1);
}

/* ---- the module ---- */

static void methods(lua_State *L, const char *mt, const luaL_Reg *fns)
{
    luaL_newmetatable(L, mt);
    lua_createtable(L, 0, 4);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

static int open_rampart(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"upstream", rampart_upstream},     {"limit", rampart_limit},
        {"request_id", rampart_request_id}, {"trace_id", rampart_trace_id},
        {"span_id", rampart_span_id},      {NULL, NULL},
    };
    lua_createtable(L, 0, 6);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    return 1;
}

void rp_lua_api_rampart(lua_State *L, rp_cycle_t *cycle)
{
    vm_cycle = cycle;
    static const luaL_Reg ups[] = {
        {"peers", ups_peers},
        {"mark_down", ups_mark_down},
        {"set_weight", ups_set_weight},
        {"name", ups_name},
        {NULL, NULL},
    };
    static const luaL_Reg lim[] = {
        {"incoming", lim_incoming},
        {NULL, NULL},
    };
    methods(L, UPS_MT, ups);
    methods(L, LIMIT_MT, lim);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open_rampart);
    lua_setfield(L, -2, "rampart");
    lua_pop(L, 2);
}
