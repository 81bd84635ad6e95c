/*
 * The core of the `ngx` table: constants, logging, time, phases, the worker,
 * ngx.ctx, ngx.status, ngx.sleep and ngx.exit. (Output is lua_output.c's; regexes,
 * encoders and shared dictionaries have their own files.)
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "core/process.h"
#include "core/time.h"
#include "http/request.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

rp_request_t *rp_lua_check_request(lua_State *L)
{
    rp_request_t *r = rp_lua_request(L);
    if (r == NULL)
        luaL_error(L, "no request found");
    return r;
}

/* ---- logging ---- */

/* Appends the arguments from index `from` as ngx.log and print do: nil, booleans and
 * ngx.null spelled out, numbers and strings as they are. */
static void concat_args(lua_State *L, int from, luaL_Buffer *b)
{
    int n = lua_gettop(L);
    for (int i = from; i <= n; i++) {
        switch (lua_type(L, i)) {
        case LUA_TNIL:
            luaL_addstring(b, "nil");
            break;
        case LUA_TBOOLEAN:
            luaL_addstring(b, lua_toboolean(L, i) ? "true" : "false");
            break;
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(L, i) == NULL) {
                luaL_addstring(b, "null");
                break;
            }
            /* fall through */
        case LUA_TNUMBER:
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, i, &len);
            if (s) {
                luaL_addlstring(b, s, len);
                break;
            }
        }
            /* fall through */
        default: {
            lua_getglobal(L, "tostring");
            lua_pushvalue(L, i);
            lua_call(L, 1, 1);
            luaL_addvalue(b);
        }
        }
    }
}

static int do_log(lua_State *L, int level, int from)
{
    /* levels as nginx's: ngx.STDERR (0) is always written */
    int rp_level = level <= 0 ? RP_LOG_EMERG : level - 1;
    if (rp_level > RP_LOG_DEBUG)
        rp_level = RP_LOG_DEBUG;
    if (!rp_log_enabled(rp_level))
        return 0;
    luaL_Buffer b;
    lua_Debug ar;
    luaL_buffinit(L, &b);
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
        /* the whole file name (short_src keeps only the end of a long one) */
        lua_pushfstring(L, "[lua] %s:%d: ", ar.source[0] == '@' ? ar.source + 1 : ar.short_src,
                        ar.currentline);
        luaL_addvalue(&b);
    } else {
        luaL_addstring(&b, "[lua] ");
    }
    concat_args(L, from, &b);
    luaL_pushresult(&b);
    rp_log_error(rp_level, 0, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return 0;
}

static int ngx_log(lua_State *L)
{
    int level = (int)luaL_checkinteger(L, 1);
    if (level < 0 || level > 8)
        return luaL_error(L, "bad log level: %d", level);
    return do_log(L, level, 2);
}

static int lua_print(lua_State *L)
{
    return do_log(L, 6 /* ngx.NOTICE, as OpenResty's print */, 1);
}

/* ---- time ---- */

static int ngx_now(lua_State *L)
{
    struct timeval tv;
    rp_time_now(&tv);
    lua_pushnumber(L, (double)tv.tv_sec + (double)(tv.tv_usec / 1000) / 1000.0);
    return 1;
}

static int ngx_time(lua_State *L)
{
    struct timeval tv;
    rp_time_now(&tv);
    lua_pushinteger(L, (lua_Integer)tv.tv_sec);
    return 1;
}

static int ngx_update_time(lua_State *L)
{
    (void)L;
    if (rp_event_base)
        event_base_update_cache_time(rp_event_base);
    return 0;
}

static int fmt_time(lua_State *L, const char *fmt, int local, time_t t)
{
    struct tm tm;
    char buf[64];
    if (local)
        localtime_r(&t, &tm);
    else
        gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof(buf), fmt, &tm);
    lua_pushlstring(L, buf, n);
    return 1;
}

static time_t now_sec(void)
{
    struct timeval tv;
    rp_time_now(&tv);
    return tv.tv_sec;
}

static int ngx_today(lua_State *L)
{
    return fmt_time(L, "%Y-%m-%d", 1, now_sec());
}

static int ngx_localtime(lua_State *L)
{
    return fmt_time(L, "%Y-%m-%d %H:%M:%S", 1, now_sec());
}

static int ngx_utctime(lua_State *L)
{
    return fmt_time(L, "%Y-%m-%d %H:%M:%S", 0, now_sec());
}

static int ngx_http_time(lua_State *L)
{
    return fmt_time(L, "%a, %d %b %Y %H:%M:%S GMT", 0, (time_t)luaL_checknumber(L, 1));
}

static int ngx_cookie_time(lua_State *L)
{
    return fmt_time(L, "%a, %d-%b-%y %H:%M:%S GMT", 0, (time_t)luaL_checknumber(L, 1));
}

static int ngx_parse_http_time(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int64_t t = rp_http_time_parse(s, len);
    if (t < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)t);
    return 1;
}

/* ---- phases, worker, config ---- */

static int ngx_get_phase(lua_State *L)
{
    lua_pushstring(L, rp_lua_phase_names[rp_lua_phase(L)]);
    return 1;
}

static int worker_id(lua_State *L)
{
    if (rp_process.kind == RP_PROCESS_WORKER)
        lua_pushinteger(L, rp_process.index);
    else if (rp_process.kind == RP_PROCESS_SINGLE)
        lua_pushinteger(L, 0);
    else
        lua_pushnil(L);
    return 1;
}

static int worker_count(lua_State *L)
{
    lua_pushinteger(L, rp_lua_main ? rp_lua_main->worker_count : 1);
    return 1;
}

static int worker_pid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

int rp_lua_worker_exiting;

static int worker_exiting(lua_State *L)
{
    lua_pushboolean(L, rp_lua_worker_exiting);
    return 1;
}

static int config_prefix(lua_State *L)
{
    /* with a trailing slash, as nginx's prefix: scripts write prefix() .. "logs/x" */
    const char *p = rp_lua_main && rp_lua_main->prefix ? rp_lua_main->prefix : "";
    size_t n = strlen(p);
    if (n && p[n - 1] == '/')
        lua_pushstring(L, p);
    else
        lua_pushfstring(L, "%s/", p);
    return 1;
}

static int config_configure(lua_State *L)
{
    lua_pushliteral(L, "");
    return 1;
}

/* ---- sleep and exit ---- */

static void sleep_done(evutil_socket_t fd, short what, void *arg)
{
    rp_lua_co_t *co = arg;
    (void)fd;
    (void)what;
    co->cancel = NULL;
    rp_lua_wake(co, 0);
}

static void sleep_cancel(rp_lua_co_t *co, void *data)
{
    (void)data;
    if (co->timer)
        event_del(co->timer);
}

static int ngx_sleep(lua_State *L)
{
    double sec = luaL_checknumber(L, 1);
    if (sec < 0)
        return luaL_error(L, "invalid sleep duration \"%f\"", sec);
    rp_lua_check_phase(L, (1u << RP_LUA_REWRITE) | (1u << RP_LUA_ACCESS) |
                              (1u << RP_LUA_CONTENT) | (1u << RP_LUA_TIMER) |
                              (1u << RP_LUA_INIT_WORKER) | (1u << RP_LUA_LOG) |
                              (1u << RP_LUA_BALANCER) | (1u << RP_LUA_HEADER_FILTER));
    rp_lua_co_t *co = rp_lua_current(L);
    if (co == NULL || co->sync)
        return rp_lua_yield(L); /* raises the error */
    if (co->timer == NULL)
        co->timer = evtimer_new(rp_event_base, sleep_done, co);
    rp_timer_add(co->timer, (int64_t)(sec * 1000 + 0.5));
    co->cancel = sleep_cancel;
    return rp_lua_yield(L);
}

static int ngx_exit(lua_State *L)
{
    return rp_lua_exit(L, (int)luaL_checkinteger(L, 1));
}

int rp_lua_exit(lua_State *L, int code)
{
    rp_lua_co_t *co = rp_lua_current(L);
    if (co == NULL || co->phase == RP_LUA_INIT)
        return luaL_error(L, "API disabled in the context of init");
    if (co->r && (code >= 200 || code < 0) && co->phase != RP_LUA_HEADER_FILTER &&
        co->phase != RP_LUA_BODY_FILTER && co->phase != RP_LUA_LOG && !co->r->response_started)
        co->r->status = code >= 200 ? code : co->r->status;
    co->exited = 1;
    co->exit_code = code;
    if (co->phase == RP_LUA_HEADER_FILTER || co->phase == RP_LUA_BODY_FILTER)
        return 0; /* filters: OpenResty's ngx.exit there only marks, the code goes on */
    lua_pushlightuserdata(L, rp_lua_wait_token());
    return lua_yield(L, 1);
}

/* ---- ngx.ctx and ngx.status: fields computed per request ---- */

static int ngx_index(lua_State *L)
{
    size_t len;
    const char *key = lua_tolstring(L, 2, &len);
    if (key == NULL)
        return 0;
    if (strcmp(key, "ctx") == 0) {
        rp_request_t *r = rp_lua_check_request(L);
        rp_lua_req_t *ctx = rp_lua_req(r);
        if (ctx->ctx_ref == LUA_NOREF) {
            lua_newtable(L);
            lua_pushvalue(L, -1);
            ctx->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
            return 1;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, ctx->ctx_ref);
        return 1;
    }
    if (strcmp(key, "status") == 0) {
        rp_request_t *r = rp_lua_check_request(L);
        lua_pushinteger(L, r->status);
        return 1;
    }
    if (strcmp(key, "arg") == 0)
        return rp_lua_push_arg(L);
    if (strcmp(key, "is_subrequest") == 0) {
        rp_request_t *r = rp_lua_check_request(L);
        lua_pushboolean(L, r->subrequest);
        return 1;
    }
    return 0;
}

static int ngx_newindex(lua_State *L)
{
    const char *key = lua_tostring(L, 2);
    if (key && strcmp(key, "ctx") == 0) {
        rp_request_t *r = rp_lua_check_request(L);
        rp_lua_req_t *ctx = rp_lua_req(r);
        luaL_checktype(L, 3, LUA_TTABLE);
        if (ctx->ctx_ref != LUA_NOREF)
            luaL_unref(L, LUA_REGISTRYINDEX, ctx->ctx_ref);
        lua_pushvalue(L, 3);
        ctx->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 0;
    }
    if (key && strcmp(key, "status") == 0) {
        rp_request_t *r = rp_lua_check_request(L);
        if (r->response_started && rp_lua_phase(L) != RP_LUA_HEADER_FILTER) {
            rp_log_error(RP_LOG_ERR, 0,
                         "attempt to set ngx.status after sending out response headers");
            return 0;
        }
        int st = (int)luaL_checkinteger(L, 3);
        if (st < 100 || st > 999)
            return luaL_error(L, "invalid HTTP status code %d", st);
        r->status = st;
        r->reason = RP_NULL_STR;
        return 0;
    }
    lua_rawset(L, 1);
    return 0;
}

/* ---- installing ---- */

static void set_int(lua_State *L, const char *name, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, name);
}

static void set_fn(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_pushcfunction(L, fn);
    lua_setfield(L, -2, name);
}

void rp_lua_api_core(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    static const struct {
        const char *name;
        int v;
    } consts[] = {
        {"OK", 0}, {"ERROR", -1}, {"AGAIN", -2}, {"DONE", -4}, {"DECLINED", -5},
        {"STDERR", 0}, {"EMERG", 1}, {"ALERT", 2}, {"CRIT", 3}, {"ERR", 4}, {"WARN", 5},
        {"NOTICE", 6}, {"INFO", 7}, {"DEBUG", 8},
        {"HTTP_GET", 2}, {"HTTP_HEAD", 4}, {"HTTP_POST", 8}, {"HTTP_PUT", 16},
        {"HTTP_DELETE", 32}, {"HTTP_MKCOL", 64}, {"HTTP_COPY", 128}, {"HTTP_MOVE", 256},
        {"HTTP_OPTIONS", 512}, {"HTTP_PROPFIND", 1024}, {"HTTP_PROPPATCH", 2048},
        {"HTTP_LOCK", 4096}, {"HTTP_UNLOCK", 8192}, {"HTTP_PATCH", 16384},
        {"HTTP_TRACE", 32768},
        {"HTTP_CONTINUE", 100}, {"HTTP_SWITCHING_PROTOCOLS", 101}, {"HTTP_OK", 200},
        {"HTTP_CREATED", 201}, {"HTTP_ACCEPTED", 202}, {"HTTP_NO_CONTENT", 204},
        {"HTTP_PARTIAL_CONTENT", 206}, {"HTTP_SPECIAL_RESPONSE", 300},
        {"HTTP_MOVED_PERMANENTLY", 301}, {"HTTP_MOVED_TEMPORARILY", 302},
        {"HTTP_SEE_OTHER", 303}, {"HTTP_NOT_MODIFIED", 304},
        {"HTTP_TEMPORARY_REDIRECT", 307}, {"HTTP_PERMANENT_REDIRECT", 308},
        {"HTTP_BAD_REQUEST", 400}, {"HTTP_UNAUTHORIZED", 401},
        {"HTTP_PAYMENT_REQUIRED", 402}, {"HTTP_FORBIDDEN", 403}, {"HTTP_NOT_FOUND", 404},
        {"HTTP_NOT_ALLOWED", 405}, {"HTTP_NOT_ACCEPTABLE", 406},
        {"HTTP_REQUEST_TIMEOUT", 408}, {"HTTP_CONFLICT", 409}, {"HTTP_GONE", 410},
        {"HTTP_UPGRADE_REQUIRED", 426}, {"HTTP_TOO_MANY_REQUESTS", 429}, {"HTTP_CLOSE", 444},
        {"HTTP_ILLEGAL", 451}, {"HTTP_INTERNAL_SERVER_ERROR", 500},
        {"HTTP_METHOD_NOT_IMPLEMENTED", 501}, {"HTTP_BAD_GATEWAY", 502},
        {"HTTP_SERVICE_UNAVAILABLE", 503}, {"HTTP_GATEWAY_TIMEOUT", 504},
        {"HTTP_VERSION_NOT_SUPPORTED", 505}, {"HTTP_INSUFFICIENT_STORAGE", 507},
    };
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        set_int(L, consts[i].name, consts[i].v);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");

    set_fn(L, "log", ngx_log);
    set_fn(L, "now", ngx_now);
    set_fn(L, "time", ngx_time);
    set_fn(L, "update_time", ngx_update_time);
    set_fn(L, "today", ngx_today);
    set_fn(L, "localtime", ngx_localtime);
    set_fn(L, "utctime", ngx_utctime);
    set_fn(L, "http_time", ngx_http_time);
    set_fn(L, "cookie_time", ngx_cookie_time);
    set_fn(L, "parse_http_time", ngx_parse_http_time);
    set_fn(L, "get_phase", ngx_get_phase);
    set_fn(L, "sleep", ngx_sleep);
    set_fn(L, "exit", ngx_exit);

    lua_newtable(L);
    set_fn(L, "id", worker_id);
    set_fn(L, "count", worker_count);
    set_fn(L, "pid", worker_pid);
    set_fn(L, "exiting", worker_exiting);
    lua_setfield(L, -2, "worker");

    lua_newtable(L);
    lua_pushliteral(L, "http");
    lua_setfield(L, -2, "subsystem");
    /* versions that make lua-resty-* libraries take their modern paths */
    set_int(L, "ngx_lua_version", 10025);
    set_int(L, "nginx_version", 1025003);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "debug");
    set_fn(L, "prefix", config_prefix);
    set_fn(L, "nginx_configure", config_configure);
    lua_setfield(L, -2, "config");

    lua_newtable(L); /* the metatable of ngx */
    set_fn(L, "__index", ngx_index);
    set_fn(L, "__newindex", ngx_newindex);
    lua_setmetatable(L, -2);

    lua_pushcfunction(L, lua_print);
    lua_setglobal(L, "print");
}
