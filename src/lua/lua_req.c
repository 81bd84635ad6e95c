/*
 * ngx.req (the request as the client sent it, and changes to it before it goes on)
 * and ngx.exec (an internal redirect), as OpenResty's.
 *
 * Header changes replace r->headers with a copy in the request's arena, so what the
 * proxy sends, $http_NAME and the log see the new fields. URI and argument changes
 * set r->uri_rewritten (the proxy then sends them, not the target as sent).
 *
 * ngx.req.read_body keeps the body in memory (rp_http_keep_body): there are no
 * temporary files, so get_body_file is always nil. It waits without holding the
 * worker: the body is read from the event loop (a zero timer, then each arrival of
 * bytes), never on the hook's stack, because a body that cannot be read ends the
 * request, and with it the running hook; the hook is woken when the body is whole.
 */
#include "lua/lua_int.h"

#include "core/log.h"
#include "http/h1.h"
#include "http/request.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define MAX_ARGS    100 /* OpenResty's default for get_uri_args/get_post_args */
#define MAX_HEADERS 100 /* ... and for get_headers */

#define BODY_PHASES ((1u << RP_LUA_REWRITE) | (1u << RP_LUA_ACCESS) | (1u << RP_LUA_CONTENT))

/* ---- small helpers ---- */

static char *arena_copy(rp_request_t *r, const char *s, size_t len)
{
    char *d = rp_arena_alloc(r->arena, len + 1);
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Pushes s decoded as a form component: %XX and "+" for a space. */
static void push_unescaped(lua_State *L, const char *s, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            luaL_addchar(&b, (char)(hi << 4 | lo));
            i += 2;
        } else if (s[i] == '+') {
            luaL_addchar(&b, ' ');
        } else {
            luaL_addchar(&b, s[i]);
        }
    }
    luaL_pushresult(&b);
}

/* Text built in request memory (no leak when a Lua error cuts the building). */
typedef struct {
    rp_arena_t *a;
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = rp_arena_alloc(b->a, cap);
        if (b->len)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Appends s escaped as a URI component (all but A-Z a-z 0-9 - . _ ~). */
static void sb_escaped(sbuf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            sb_add(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_add(b, e, 3);
        }
    }
}

/* t[key] = value, or a list of the values when key is there already (as OpenResty).
 * Key and value are on the top of the stack (value on top); both are popped. */
static void add_multi(lua_State *L, int t)
{
    lua_pushvalue(L, -2);
    lua_rawget(L, t);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_rawset(L, t);
        return;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_pushvalue(L, -2);
        lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
        lua_pop(L, 3);
        return;
    }
    lua_createtable(L, 2, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 2);
    lua_remove(L, -2); /* the value: key, list */
    lua_rawset(L, t);
}

/* The optional maximum at index i: 0 means none. */
static int opt_max(lua_State *L, int i, int dflt)
{
    if (lua_isnoneornil(L, i))
        return dflt;
    int max = (int)luaL_checkinteger(L, i);
    return max < 0 ? dflt : max;
}

/* Parses "a=1&b&c=%20" into the table at the top: repeated keys make lists, a key
 * without "=" is true. Returns 1 when more than max (not 0) were there. */
static int parse_args(lua_State *L, const char *s, size_t len, int max)
{
    int t = lua_gettop(L), n = 0;
    const char *end = s + len;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *stop = amp ? amp : end;
        if (stop > s) {
            const char *eq = memchr(s, '=', (size_t)(stop - s));
            if (eq != s) { /* "=v" has no name: skipped, as OpenResty */
                if (max && n == max)
                    return 1;
                n++;
                if (eq) {
                    push_unescaped(L, s, (size_t)(eq - s));
                    push_unescaped(L, eq + 1, (size_t)(stop - eq - 1));
                } else {
                    push_unescaped(L, s, (size_t)(stop - s));
                    lua_pushboolean(L, 1);
                }
                add_multi(L, t);
            }
        }
        s = stop + 1;
    }
    return 0;
}

/* One "key[=value]" of a query string; a false value adds nothing, true the key
 * alone, as ngx.encode_args. The value is at the top of the stack. */
static void encode_pair(lua_State *L, sbuf_t *b, const char *k, size_t klen)
{
    int t = lua_type(L, -1);
    if (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))
        return;
    if (t != LUA_TBOOLEAN && t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "attempt to use %s as query arg value", lua_typename(L, t));
    if (b->len)
        sb_add(b, "&", 1);
    sb_escaped(b, k, klen);
    if (t != LUA_TBOOLEAN) {
        size_t vlen;
        const char *v = lua_tolstring(L, -1, &vlen);
        sb_add(b, "=", 1);
        sb_escaped(b, v, vlen);
    }
}

/* The string or table at index i as a query string (request memory). */
static rp_str_t args_value(lua_State *L, rp_request_t *r, int i)
{
    size_t len;
    const char *s;
    switch (lua_type(L, i)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        s = lua_tolstring(L, i, &len);
        return (rp_str_t){arena_copy(r, s, len), len};
    case LUA_TTABLE: {
        sbuf_t b = {r->arena, NULL, 0, 0};
        lua_pushnil(L);
        while (lua_next(L, i)) {
            lua_pushvalue(L, -2); /* a copy: tolstring on a number key would confuse next */
            size_t klen;
            const char *k = lua_tolstring(L, -1, &klen);
            if (k == NULL)
                luaL_error(L, "attempt to use %s as query arg key", luaL_typename(L, -3));
            if (lua_type(L, -2) == LUA_TTABLE) {
                int n = (int)lua_objlen(L, -2);
                for (int j = 1; j <= n; j++) {
                    lua_rawgeti(L, -2, j);
                    encode_pair(L, &b, k, klen);
                    lua_pop(L, 1);
                }
            } else {
                lua_pushvalue(L, -2);
                encode_pair(L, &b, k, klen);
                lua_pop(L, 1);
            }
            lua_pop(L, 2);
        }
        return b.len ? (rp_str_t){b.p, b.len} : RP_STR("");
    }
    default:
        luaL_error(L, "bad argument #%d: string, number, or table expected, got %s", i,
                   luaL_typename(L, i));
        return RP_NULL_STR;
    }
}

/* ---- headers ---- */

static int headers_index(lua_State *L)
{
    size_t len;
    const char *k = lua_tolstring(L, 2, &len);
    if (k == NULL)
        return 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++)
        luaL_addchar(&b, k[i] == '_' ? '-' : (char)tolower((unsigned char)k[i]));
    luaL_pushresult(&b);
    lua_rawget(L, 1);
    return 1;
}

static int req_get_headers(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    int max = opt_max(L, 1, MAX_HEADERS);
    int raw = lua_toboolean(L, 2);
    unsigned n = r->nheaders;
    int truncated = 0;
    if (max && n > (unsigned)max) {
        n = (unsigned)max;
        truncated = 1;
    }
    lua_createtable(L, 0, (int)n);
    int t = lua_gettop(L);
    for (unsigned i = 0; i < n; i++) {
        const rp_header_t *h = &r->headers[i];
        if (raw) {
            lua_pushlstring(L, h->name.data, h->name.len);
        } else {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (size_t j = 0; j < h->name.len; j++)
                luaL_addchar(&b, (char)tolower((unsigned char)h->name.data[j]));
            luaL_pushresult(&b);
        }
        lua_pushlstring(L, h->value.data, h->value.len);
        add_multi(L, t);
    }
    if (!raw) {
        lua_getfield(L, lua_upvalueindex(1), "headers_mt");
        lua_setmetatable(L, t);
    }
    if (truncated) {
        lua_pushliteral(L, "truncated");
        return 2;
    }
    return 1;
}

/* A header name or value with CR or LF would split the head the proxy sends: as
 * OpenResty, they are sent escaped (%0D, %0A). */
static rp_str_t header_text(rp_request_t *r, const char *s, size_t len)
{
    size_t extra = 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n')
            extra += 2;
    char *d = rp_arena_alloc(r->arena, len + extra + 1), *o = d;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n') {
            memcpy(o, s[i] == '\r' ? "%0D" : "%0A", 3);
            o += 3;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return (rp_str_t){d, (size_t)(o - d)};
}

/* The host as r->host keeps it: lowercase, without the port. */
static void set_host(rp_request_t *r, rp_str_t value)
{
    size_t len = value.len;
    if (len && value.data[0] != '[') {
        const char *colon = memchr(value.data, ':', len);
        if (colon)
            len = (size_t)(colon - value.data);
    } else if (len) {
        const char *close = memchr(value.data, ']', len);
        if (close)
            len = (size_t)(close - value.data) + 1;
    }
    char *h = rp_arena_alloc(r->arena, len + 1);
    for (size_t i = 0; i < len; i++)
        h[i] = (char)tolower((unsigned char)value.data[i]);
    h[len] = '\0';
    r->host = (rp_str_t){h, len};
}

static int same_name(rp_str_t a, rp_str_t b)
{
    return a.len == b.len && strncasecmp(a.data, b.data, a.len) == 0;
}

/* Replaces every field named name with the values at index vi (nil: none, a string or
 * number, or a list of them), as ngx.req.set_header. */
static void set_header(lua_State *L, rp_request_t *r, int ni, int vi)
{
    if (lua_isnoneornil(L, ni))
        luaL_error(L, "bad 'name' argument: string expected, got nil");
    lua_pushvalue(L, ni);
    size_t nlen;
    const char *name = lua_tolstring(L, -1, &nlen);
    if (name == NULL) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, ni);
        lua_call(L, 1, 1);
        name = lua_tolstring(L, -1, &nlen);
    }
    int nvals = 0;
    switch (lua_type(L, vi)) {
    case LUA_TNIL:
    case LUA_TNONE:
        break;
    case LUA_TTABLE:
        nvals = (int)lua_objlen(L, vi);
        break;
    default:
        nvals = 1;
    }
    rp_str_t n = header_text(r, name, nlen);
    lua_pop(L, 1);

    /* a new array: the old one may be the protocol's (HTTP/1's points into the head) */
    unsigned keep = 0;
    for (unsigned i = 0; i < r->nheaders; i++)
        if (!same_name(r->headers[i].name, n))
            keep++;
    rp_header_t *h = rp_arena_alloc(r->arena, sizeof(*h) * (keep + (unsigned)nvals + 1));
    unsigned k = 0;
    for (unsigned i = 0; i < r->nheaders; i++)
        if (!same_name(r->headers[i].name, n))
            h[k++] = r->headers[i];
    for (int j = 1; j <= nvals; j++) {
        if (lua_type(L, vi) == LUA_TTABLE)
            lua_rawgeti(L, vi, j);
        else
            lua_pushvalue(L, vi);
        size_t vlen;
        const char *v = lua_tolstring(L, -1, &vlen);
        if (v == NULL) {
            lua_getglobal(L, "tostring");
            lua_insert(L, -2);
            lua_call(L, 1, 1);
            v = lua_tolstring(L, -1, &vlen);
        }
        h[k].name = n;
        h[k].value = header_text(r, v, vlen);
        k++;
        lua_pop(L, 1);
    }
    r->headers = h;
    r->nheaders = k;
    /* as OpenResty: a new Host is the request's host ($host, server_name's view) */
    if (n.len == 4 && rp_str_ieq(n, "host") && nvals)
        set_host(r, h[k - 1].value);
}

static int req_set_header(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    lua_settop(L, 2);
    set_header(L, r, 1, 2);
    return 0;
}

static int req_clear_header(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    lua_settop(L, 1);
    lua_pushnil(L);
    set_header(L, r, 1, 2);
    return 0;
}

/* ---- method, version, time, internal ---- */

static const struct {
    int id;
    const char *name;
} methods[] = {
    {0x0002, "GET"},     {0x0004, "HEAD"},     {0x0008, "POST"},      {0x0010, "PUT"},
    {0x0020, "DELETE"},  {0x0040, "MKCOL"},    {0x0080, "COPY"},      {0x0100, "MOVE"},
    {0x0200, "OPTIONS"}, {0x0400, "PROPFIND"}, {0x0800, "PROPPATCH"}, {0x1000, "LOCK"},
    {0x2000, "UNLOCK"},  {0x4000, "PATCH"},    {0x8000, "TRACE"},
};

static int req_get_method(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    lua_pushlstring(L, r->method.data, r->method.len);
    return 1;
}

static int req_set_method(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    if (lua_type(L, 1) != LUA_TNUMBER)
        return luaL_error(L, "bad method number");
    lua_Integer id = lua_tointeger(L, 1);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (methods[i].id == id) {
            r->method = (rp_str_t){methods[i].name, strlen(methods[i].name)};
            r->head = id == 0x0004;
            return 0;
        }
    }
    return luaL_error(L, "unsupported HTTP method: %d", (int)id);
}

static int req_http_version(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    switch (r->version) {
    case 9:
        lua_pushnumber(L, 0.9);
        break;
    case 10:
        lua_pushnumber(L, 1.0);
        break;
    case 11:
        lua_pushnumber(L, 1.1);
        break;
    case 20:
        lua_pushnumber(L, 2.0);
        break;
    default:
        lua_pushnil(L);
    }
    return 1;
}

static int req_start_time(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    lua_pushnumber(L, (double)r->start.tv_sec + (double)(r->start.tv_usec / 1000) / 1000.0);
    return 1;
}

static int req_is_internal(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    lua_pushboolean(L, r->internal);
    return 1;
}

/* The head as received (HTTP/1: it stays at the start of the connection's input
 * while its request runs), else rebuilt from the request line and the fields:
 * "METHOD target HTTP/x.y\r\n" and "Name: value\r\n" (HTTP/2, subrequests). */
static int req_raw_header(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    int no_line = lua_toboolean(L, 1);
    if (r->proto && strcmp(r->proto->name, "HTTP/1.1") == 0 && r->conn && r->conn->data) {
        const rp_h1_t *h = r->conn->data;
        const char *in = h->in;
        size_t len = h->in_len, from = 0, end = 0;
        while (from < len && (in[from] == '\r' || in[from] == '\n'))
            from++; /* blank lines before a request line are allowed, and not the head */
        for (size_t i = from; i + 1 < len && !end; i++) {
            if (in[i] != '\n')
                continue;
            if (in[i + 1] == '\n')
                end = i + 2;
            else if (in[i + 1] == '\r' && i + 2 < len && in[i + 2] == '\n')
                end = i + 3;
        }
        if (end) {
            if (no_line) {
                const char *nl = memchr(in + from, '\n', end - from);
                from = (size_t)(nl - in) + 1;
            }
            lua_pushlstring(L, in + from, end - from);
            return 1;
        }
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (!no_line) {
        luaL_addlstring(&b, r->method.data, r->method.len);
        luaL_addchar(&b, ' ');
        luaL_addlstring(&b, r->request_uri.data, r->request_uri.len);
        lua_pushfstring(L, " HTTP/%d.%d\r\n", r->version / 10, r->version % 10);
        luaL_addvalue(&b);
    }
    for (unsigned i = 0; i < r->nheaders; i++) {
        luaL_addlstring(&b, r->headers[i].name.data, r->headers[i].name.len);
        luaL_addlstring(&b, ": ", 2);
        luaL_addlstring(&b, r->headers[i].value.data, r->headers[i].value.len);
        luaL_addlstring(&b, "\r\n", 2);
    }
    luaL_addlstring(&b, "\r\n", 2);
    luaL_pushresult(&b);
    return 1;
}

/* ---- URI and arguments ---- */

static int req_get_uri_args(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    int max = opt_max(L, 1, MAX_ARGS);
    lua_settop(L, 1);
    lua_newtable(L);
    if (parse_args(L, r->args.data, r->args.data ? r->args.len : 0, max)) {
        lua_settop(L, 2);
        lua_pushliteral(L, "truncated");
        return 2;
    }
    lua_settop(L, 2);
    return 1;
}

static int req_set_uri_args(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    r->args = args_value(L, r, 1);
    r->uri_rewritten = 1;
    return 0;
}

static int req_set_uri(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    size_t len;
    const char *uri = luaL_checklstring(L, 1, &len);
    if (len == 0)
        return luaL_error(L, "attempt to use zero-length uri");
    int jump = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TBOOLEAN);
        jump = lua_toboolean(L, 2);
    }
    if (jump)
        rp_lua_check_phase(L, 1u << RP_LUA_REWRITE);
    r->uri = (rp_str_t){arena_copy(r, uri, len), len};
    r->uri_rewritten = 1;
    if (!jump)
        return 0;
    /* as the rewrite module's `rewrite ... last`: the location is found again for the
     * new URI (POST_REWRITE, at most 10 times), and this hook ends here */
    r->uri_changed = 1;
    r->internal = 1; /* as OpenResty: the request now runs where the client did not ask */
    return rp_lua_exit(L, 0);
}

static int req_get_post_args(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    int max = opt_max(L, 1, MAX_ARGS);
    if (r->body == NULL || !rp_http_body_kept(r)) {
        if (rp_http_body_kept(r)) { /* no body at all */
            lua_newtable(L);
            return 1;
        }
        return luaL_error(L, "no request body found; maybe you should turn on "
                             "lua_need_request_body?");
    }
    size_t len = rp_http_kept_body_length(r);
    char *data = rp_arena_alloc(r->arena, len + 1);
    size_t saved = r->body_read, got = 0;
    r->body_read = 0;
    while (got < len) {
        size_t n = 0;
        rp_http_read_body(r, data + got, len - got, &n);
        if (n == 0)
            break;
        got += n;
    }
    r->body_read = saved;
    lua_settop(L, 1);
    lua_newtable(L);
    if (parse_args(L, data, got, max)) {
        lua_settop(L, 2);
        lua_pushliteral(L, "truncated");
        return 2;
    }
    lua_settop(L, 2);
    return 1;
}

/* ---- the body ---- */

/* What the keeper (request_body.c) wants called when bytes arrive; replaced, while a
 * hook waits in read_body, by body_arrived, which does the same from the loop and
 * then wakes the hook. */
static void (*keeper_on_body)(rp_request_t *r);

static void body_arrived(rp_request_t *r);

/* Reads what has come; wakes co when the body is whole. Called from the event loop:
 * a body that cannot be read answers (or cuts) the request, and frees co with it. */
static void body_pump(rp_request_t *r, rp_lua_co_t *co)
{
    int rc = rp_http_keep_body(r);
    if (rc == RP_OK) {
        co->cancel = NULL;
        rp_lua_wake(co, 0);
    } else if (rc == RP_AGAIN && r->on_body && r->on_body != body_arrived) {
        keeper_on_body = r->on_body;
        r->on_body = body_arrived;
    }
    /* RP_DONE: the request was answered (400, 413) or cut: its end frees co */
}

static void body_arrived(rp_request_t *r)
{
    rp_lua_req_t *ctx = rp_http_get_ctx(r, rp_lua_module);
    if (ctx == NULL || ctx->co == NULL || !ctx->co->waiting) {
        keeper_on_body(r); /* no hook waits any more: the keeper's own way */
        return;
    }
    body_pump(r, ctx->co);
}

static void body_start(rp_request_t *r, void *data)
{
    body_pump(r, data);
}

static void body_cancel(rp_lua_co_t *co, void *data)
{
    (void)data;
    if (co->r && co->r->on_body == body_arrived)
        co->r->on_body = keeper_on_body;
}

static int req_read_body(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    rp_lua_check_phase(L, BODY_PHASES);
    if (rp_http_body_kept(r))
        return 0;
    rp_lua_co_t *co = rp_lua_current(L);
    rp_http_timer_t *t = rp_http_timer_new(r, body_start, co);
    rp_http_timer_add(t, 0);
    co->cancel = body_cancel;
    co->cancel_data = NULL;
    return rp_lua_yield(L);
}

static int req_discard_body(lua_State *L)
{
    rp_lua_check_request(L);
    rp_lua_check_phase(L, BODY_PHASES);
    /* nothing to do: a body nobody read is discarded by the protocol once the response
     * is out (HTTP/1 reads and drops it, HTTP/2 resets the stream's rest) */
    return 0;
}

static int req_get_body_data(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    size_t len = r->body ? rp_http_kept_body_length(r) : 0;
    if (r->body == NULL || !rp_http_body_kept(r) || len == 0) {
        lua_pushnil(L);
        return 1;
    }
    if (!lua_isnoneornil(L, 1)) {
        lua_Integer max = luaL_checkinteger(L, 1);
        if (max < 0)
            return luaL_error(L, "bad max_bytes argument");
        if (max > 0 && (size_t)max < len)
            len = (size_t)max;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t saved = r->body_read, got = 0;
    r->body_read = 0;
    while (got < len) {
        char *p = luaL_prepbuffer(&b);
        size_t want = len - got < LUAL_BUFFERSIZE ? len - got : LUAL_BUFFERSIZE, n = 0;
        rp_http_read_body(r, p, want, &n);
        if (n == 0)
            break;
        luaL_addsize(&b, n);
        got += n;
    }
    r->body_read = saved;
    luaL_pushresult(&b);
    return 1;
}

static int req_get_body_file(lua_State *L)
{
    rp_lua_check_request(L);
    lua_pushnil(L); /* bodies are kept in memory: there is never a file */
    return 1;
}

/* ---- ngx.exec ---- */

static int ngx_exec(lua_State *L)
{
    rp_request_t *r = rp_lua_check_request(L);
    rp_lua_check_phase(L, BODY_PHASES);
    size_t len;
    const char *uri = luaL_checklstring(L, 1, &len);
    if (len == 0)
        return luaL_error(L, "The uri argument is empty");
    if (r->response_started)
        return luaL_error(L, "attempt to call ngx.exec after sending out response headers");
    if (uri[0] == '@') {
        /* as OpenResty: a named location, with the arguments left as they are */
        rp_str_t name = {arena_copy(r, uri, len), len};
        if (rp_http_named_location(r, name) == NULL) {
            rp_log_error(RP_LOG_ERR, 0, "could not find named location \"%.*s\"", (int)len, uri);
            return rp_lua_exit(L, 500);
        }
        if (r->uri_changes <= 1) {
            rp_log_error(RP_LOG_ERR, 0, "rewrite or internal redirection cycle while redirect to "
                                        "named location \"%.*s\"",
                         (int)len, uri);
            return rp_lua_exit(L, 500);
        }
        rp_http_named_redirect(r, name);
        return rp_lua_exit(L, RP_LUA_EXIT_MOVED);
    }
    rp_str_t u = {arena_copy(r, uri, len), len}, args = RP_STR("");
    const char *q = memchr(u.data, '?', len);
    if (q) {
        args = (rp_str_t){(char *)q + 1, len - (size_t)(q - u.data) - 1};
        u.len = (size_t)(q - u.data);
        ((char *)u.data)[u.len] = '\0';
    }
    if (u.len == 0 || u.data[0] != '/')
        return luaL_error(L, "unsafe uri");
    /* "..": nginx's unsafe URI check refuses a path climbing out */
    for (size_t i = 0; i + 1 < u.len; i++)
        if (u.data[i] == '/' && u.data[i + 1] == '.' && i + 2 < u.len && u.data[i + 2] == '.' &&
            (i + 3 == u.len || u.data[i + 3] == '/'))
            return luaL_error(L, "unsafe uri");
    if (!lua_isnoneornil(L, 2)) {
        rp_str_t extra = args_value(L, r, 2);
        if (args.len == 0) {
            args = extra;
        } else if (extra.len) {
            char *a = rp_arena_alloc(r->arena, args.len + 1 + extra.len + 1);
            memcpy(a, args.data, args.len);
            a[args.len] = '&';
            memcpy(a + args.len + 1, extra.data, extra.len);
            a[args.len + 1 + extra.len] = '\0';
            args = (rp_str_t){a, args.len + 1 + extra.len};
        }
    }
    if (r->uri_changes <= 1) {
        /* the core would answer 500 at once, ending the request (and this hook's
         * record) under our feet: the hook ends with 500 instead, answered by its
         * handler */
        rp_log_error(RP_LOG_ERR, 0,
                     "rewrite or internal redirection cycle while internally redirecting "
                     "to \"%.*s\"",
                     (int)u.len, u.data);
        return rp_lua_exit(L, 500);
    }
    /* the request goes on at uri: the phases resume from the loop; this hook ends */
    rp_http_internal_redirect(r, u, args);
    return rp_lua_exit(L, RP_LUA_EXIT_MOVED);
}

/* ---- installing ---- */

void rp_lua_api_req(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    static const luaL_Reg fns[] = {
        {"set_header", req_set_header},
        {"clear_header", req_clear_header},
        {"get_method", req_get_method},
        {"set_method", req_set_method},
        {"http_version", req_http_version},
        {"start_time", req_start_time},
        {"is_internal", req_is_internal},
        {"raw_header", req_raw_header},
        {"get_uri_args", req_get_uri_args},
        {"set_uri_args", req_set_uri_args},
        {"set_uri", req_set_uri},
        {"get_post_args", req_get_post_args},
        {"read_body", req_read_body},
        {"discard_body", req_discard_body},
        {"get_body_data", req_get_body_data},
        {"get_body_file", req_get_body_file},
        {NULL, NULL},
    };
    lua_newtable(L); /* ngx.req */
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, -2, f->name);
    }
    /* get_headers keeps its metatable (the "Foo_Bar" → "foo-bar" lookup) in an upvalue */
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, headers_index);
    lua_setfield(L, -2, "__index");
    lua_setfield(L, -2, "headers_mt");
    lua_pushcclosure(L, req_get_headers, 1);
    lua_setfield(L, -2, "get_headers");
    lua_setfield(L, -2, "req");

    lua_pushcfunction(L, ngx_exec);
    lua_setfield(L, -2, "exec");
}
