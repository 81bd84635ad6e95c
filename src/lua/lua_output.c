/*
 * The response from Lua: ngx.say, ngx.print, ngx.flush, ngx.eof, ngx.header,
 * ngx.redirect. The first output sends the head (status from ngx.status, else
 * 200; the location's default_type unless ngx.header set a Content-Type), with a
 * body of unknown length (chunked over HTTP/1.1). Output goes straight to the
 * filters; when the client reads slower than the script writes and more than
 * RP_LUA_OUTPUT_HIGH bytes wait, the script waits for them to drain (a request
 * may wait, never the worker), so a slow client cannot make a script hold
 * unbounded memory.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "http/request.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define RP_LUA_OUTPUT_HIGH (256 * 1024)

#define OUTPUT_PHASES ((1u << RP_LUA_REWRITE) | (1u << RP_LUA_ACCESS) | (1u << RP_LUA_CONTENT))

/* The worker's output buffer, reused by every call (no allocation once warm). */
static char *obuf;
static size_t olen, ocap;

static void oput(const char *p, size_t n)
{
    if (olen + n > ocap) {
        size_t cap = ocap ? ocap : 4096;
        while (cap < olen + n)
            cap *= 2;
        obuf = rp_xrealloc(obuf, cap);
        ocap = cap;
    }
    memcpy(obuf + olen, p, n);
    olen += n;
}

/* Appends one value of ngx.say's arguments: strings, numbers, booleans, nil, ngx.null,
 * and (nested) arrays of them, as OpenResty. */
static void add_value(lua_State *L, int idx, int depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        oput("nil", 3);
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            oput("true", 4);
        else
            oput("false", 5);
        return;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            oput("null", 4);
            return;
        }
        break;
    case LUA_TNUMBER:
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        oput(s, len);
        return;
    }
    case LUA_TTABLE: {
        if (depth > 64)
            break;
        int n = (int)lua_objlen(L, idx);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            add_value(L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        return;
    }
    default:
        break;
    }
    luaL_error(L, "bad argument to ngx.say/ngx.print: %s not allowed", luaL_typename(L, idx));
}

/* Sends the head if it is not out yet. 0, or -1 when it cannot be sent. */
int rp_lua_send_head(rp_request_t *r)
{
    if (r->response_started)
        return rp_lua_req(r)->failed ? -1 : 0;
    if (r->status == 0)
        r->status = 200;
    if (rp_http_out_header(r, "content-type") == NULL && rp_http_status_has_body(r->status)) {
        const char *type = r->clcf->default_type;
        rp_str_t ct = {type, strlen(type)};
        /* Content-Type first, as nginx writes it */
        rp_header_t *old = r->out_headers;
        unsigned n = r->nout_headers;
        r->out_headers = NULL;
        r->nout_headers = r->out_cap = 0;
        rp_http_add_header(r, RP_STR("Content-Type"), ct);
        for (unsigned i = 0; i < n; i++)
            rp_http_add_header(r, old[i].name, old[i].value);
    }
    r->response_started = 1;
    if (rp_http_response_begin(r, r->out_length >= 0 ? r->out_length : -1) != 0) {
        /* the head could not go (a filter failed): the hook's end cuts the response */
        rp_lua_req(r)->failed = 1;
        return -1;
    }
    return 0;
}

/* The entry coroutine and light threads may all wait for the output to drain: they
 * are woken together. */
static void drained(rp_request_t *r)
{
    rp_lua_req_t *ctx = rp_lua_req(r);
    rp_lua_co_t *co = ctx->drain_waiters;
    ctx->drain_waiters = NULL;
    while (co) {
        rp_lua_co_t *next = co->drain_next;
        co->drain_next = NULL;
        co->cancel = NULL;
        if (co->waiting && !co->woken) {
            lua_pushinteger(co->L, 1);
            rp_lua_wake(co, 1);
        }
        co = next;
    }
}

static void drain_cancel(rp_lua_co_t *co, void *data)
{
    rp_lua_req_t *ctx = data;
    for (rp_lua_co_t **pp = &ctx->drain_waiters; *pp; pp = &(*pp)->drain_next) {
        if (*pp == co) {
            *pp = co->drain_next;
            break;
        }
    }
    co->drain_next = NULL;
}

static int wait_drain(lua_State *L, rp_request_t *r)
{
    rp_lua_co_t *co = rp_lua_current(L);
    if (co == NULL || co->sync || rp_http_pending(r) == 0) {
        lua_pushinteger(L, 1);
        return 1;
    }
    rp_lua_req_t *ctx = rp_lua_req(r);
    co->drain_next = ctx->drain_waiters;
    ctx->drain_waiters = co;
    co->cancel = drain_cancel;
    co->cancel_data = ctx;
    r->on_drain = drained;
    return rp_lua_yield(L);
}

/* The running hook went on after ngx.eof() (detached from its request). */
static int after_eof(lua_State *L)
{
    rp_lua_co_t *co = rp_lua_current(L);
    return co && co->detached && co->r == NULL && (OUTPUT_PHASES & (1u << co->phase));
}

static int output(lua_State *L, int newline)
{
    if (after_eof(L)) {
        lua_pushnil(L);
        lua_pushliteral(L, "seen eof");
        return 2;
    }
    rp_request_t *r = rp_lua_check_request(L);
    rp_lua_check_phase(L, OUTPUT_PHASES);
    rp_lua_req_t *ctx = rp_lua_req(r);
    if (ctx->eof || r->ended) {
        lua_pushnil(L);
        lua_pushliteral(L, "seen eof");
        return 2;
    }
    olen = 0;
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++)
        add_value(L, i, 0);
    if (newline)
        oput("\n", 1);
    if (rp_lua_send_head(r) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot send the response head");
        return 2;
    }
    if (olen && !r->head) {
        struct iovec iov = {obuf, olen};
        if (rp_http_write(r, &iov, 1) != 0) {
            rp_lua_req(r)->failed = 1; /* a body filter failed: cut at the hook's end */
            lua_pushnil(L);
            lua_pushliteral(L, "closed");
            return 2;
        }
    }
    if (rp_http_pending(r) > RP_LUA_OUTPUT_HIGH)
        return wait_drain(L, r);
    lua_pushinteger(L, 1);
    return 1;
}

static int ngx_say(lua_State *L)
{
    return output(L, 1);
}

static int ngx_print(lua_State *L)
{
    return output(L, 0);
}

static int ngx_flush(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    rp_lua_check_phase(L, OUTPUT_PHASES);
    int wait = lua_toboolean(L, 1);
    if (!r->response_started) {
        lua_pushinteger(L, 1);
        return 1;
    }
    if (rp_http_flush(r) != 0)
        rp_lua_req(r)->failed = 1;
    if (wait)
        return wait_drain(L, r);
    lua_pushinteger(L, 1);
    return 1;
}

/*
 * ngx.eof(): the client gets the end of the answer now (the last chunk, END_STREAM) and
 * the hook goes on. The request ends with its answer (its log phase runs, a keep-alive
 * connection takes the next request), so the hook is detached from it as a log hook
 * that waits is: what follows may sleep or log, but output gives "seen eof" and
 * request APIs "no request found". (OpenResty keeps the request, and the connection,
 * until the handler returns.)
 */
static int ngx_eof(lua_State *L)
{
    if (after_eof(L)) {
        lua_pushinteger(L, 1);
        return 1;
    }
    rp_request_t *r = rp_lua_check_request(L);
    rp_lua_check_phase(L, OUTPUT_PHASES);
    rp_lua_req_t *ctx = rp_lua_req(r);
    if (ctx->eof || r->ended) {
        lua_pushinteger(L, 1);
        return 1;
    }
    if (rp_lua_send_head(r) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot send the response head");
        return 2;
    }
    ctx->eof = 1;
    rp_lua_co_t *co = rp_lua_current(L);
    if (co && ctx->co == co) {
        /* the request's cleanups must not free the running hook */
        ctx->co = NULL;
        co->detached = 1;
        co->r = NULL;
    }
    if (!r->ended)
        rp_http_response_end(r);
    lua_pushinteger(L, 1);
    return 1;
}

static int ngx_redirect(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    rp_lua_check_phase(L, OUTPUT_PHASES);
    size_t len;
    const char *uri = luaL_checklstring(L, 1, &len);
    int status = (int)luaL_optinteger(L, 2, 302);
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        return luaL_error(L, "only ngx.HTTP_MOVED_TEMPORARILY, ngx.HTTP_MOVED_PERMANENTLY, "
                             "ngx.HTTP_PERMANENT_REDIRECT, ngx.HTTP_SEE_OTHER, and "
                             "ngx.HTTP_TEMPORARY_REDIRECT are allowed");
    if (r->response_started)
        return luaL_error(L, "attempt to call ngx.redirect after sending out the headers");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)uri[i] < 0x20 || uri[i] == 0x7f)
            return luaL_error(L, "unsafe byte in redirect uri");
    rp_http_add_header(r, RP_STR("Location"),
                       (rp_str_t){rp_arena_strndup(r->arena, uri, len), len});
    return rp_lua_exit(L, status);
}

/* ---- ngx.header: the response's fields ---- */

/* A field name as ngx.header spells it: "content_type" is "Content-Type". */
static rp_str_t field_name(lua_State *L, rp_request_t *r, int idx)
{
    size_t len;
    const char *k = luaL_checklstring(L, idx, &len);
    char *d = rp_arena_alloc(r->arena, len + 1);
    int up = 1;
    for (size_t i = 0; i < len; i++) {
        char c = k[i] == '_' ? '-' : k[i];
        d[i] = up && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
        up = c == '-';
    }
    d[len] = '\0';
    return (rp_str_t){d, len};
}

static int header_index(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    rp_str_t name = field_name(L, r, 2);
    int found = 0;
    for (unsigned i = 0; i < r->nout_headers; i++) {
        rp_header_t *h = &r->out_headers[i];
        if (h->name.len != name.len || strncasecmp(h->name.data, name.data, name.len) != 0)
            continue;
        if (found == 1) { /* a second one: a table of all of them */
            lua_newtable(L);
            lua_insert(L, -2);
            lua_rawseti(L, -2, 1);
        }
        lua_pushlstring(L, h->value.data, h->value.len);
        if (found >= 1)
            lua_rawseti(L, -2, found + 1);
        found++;
    }
    if (!found) {
        if (name.len == 14 && strncasecmp(name.data, "Content-Length", 14) == 0 &&
            r->out_length >= 0) {
            lua_pushfstring(L, "%d", (int)r->out_length);
            return 1;
        }
        lua_pushnil(L);
    }
    return 1;
}

static void remove_fields(rp_request_t *r, rp_str_t name)
{
    unsigned k = 0;
    for (unsigned i = 0; i < r->nout_headers; i++) {
        rp_header_t *h = &r->out_headers[i];
        if (h->name.len == name.len && strncasecmp(h->name.data, name.data, name.len) == 0)
            continue;
        r->out_headers[k++] = *h;
    }
    r->nout_headers = k;
}

static rp_str_t field_value(lua_State *L, rp_request_t *r, int idx)
{
    size_t len;
    const char *v = lua_tolstring(L, idx, &len);
    if (v == NULL)
        luaL_error(L, "bad header value: %s", luaL_typename(L, idx));
    char *d = rp_arena_alloc(r->arena, len + 1);
    for (size_t i = 0; i < len; i++) /* no line breaks into the head */
        d[i] = v[i] == '\r' || v[i] == '\n' ? ' ' : v[i];
    d[len] = '\0';
    return (rp_str_t){d, len};
}

static int header_newindex(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    rp_str_t name = field_name(L, r, 2);
    if (rp_lua_phase(L) != RP_LUA_HEADER_FILTER && r->response_started) {
        rp_log_error(RP_LOG_ERR, 0,
                     "attempt to set ngx.header.%s after sending out response headers",
                     lua_tostring(L, 2));
        return 0;
    }
    if (name.len == 14 && strncasecmp(name.data, "Content-Length", 14) == 0) {
        if (lua_isnil(L, 3)) {
            r->out_length = -1;
        } else {
            lua_Number n = luaL_checknumber(L, 3);
            r->out_length = n >= 0 ? (int64_t)n : -1;
        }
        return 0;
    }
    remove_fields(r, name);
    if (lua_isnil(L, 3))
        return 0;
    if (lua_type(L, 3) == LUA_TTABLE) {
        int n = (int)lua_objlen(L, 3);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, 3, i);
            rp_http_add_header(r, name, field_value(L, r, -1));
            lua_pop(L, 1);
        }
        return 0;
    }
    rp_http_add_header(r, name, field_value(L, r, 3));
    return 0;
}

void rp_lua_api_output(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    lua_pushcfunction(L, ngx_say);
    lua_setfield(L, -2, "say");
    lua_pushcfunction(L, ngx_print);
    lua_setfield(L, -2, "print");
    lua_pushcfunction(L, ngx_flush);
    lua_setfield(L, -2, "flush");
    lua_pushcfunction(L, ngx_eof);
    lua_setfield(L, -2, "eof");
    lua_pushcfunction(L, ngx_redirect);
    lua_setfield(L, -2, "redirect");
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, header_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, header_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "header");
}
