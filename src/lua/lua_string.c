/*
 * The `ngx` API's pure string functions, as OpenResty (lua-nginx-module 0.10.x
 * with lua-resty-core) has them: base64, md5/sha1/hmac_sha1 digests, crc32, URI
 * escaping, query-string encoding and decoding, and SQL string quoting.
 *
 * They touch no request, so any phase (and init) may call them. Every detail a
 * script can observe follows OpenResty: which bytes escape_uri escapes for each
 * type (its tables, checked byte by byte against Debian's nginx), that
 * decode_base64 stops at the first '=' and refuses a stray character, that
 * encode_args walks the table in lua_next order, that decode_args counts pairs
 * at each '&' and returns "truncated" once it reaches the limit, and the error
 * messages for bad arguments.
 *
 * Results are built in a luaL_Buffer (on the C stack up to LUAL_BUFFERSIZE, as
 * encode_args' up to 2 KB) and the digests reuse a per-VM OpenSSL context, so a
 * call allocates nothing beyond the Lua string it returns (encode_args of a
 * larger table writes into a userdata first, as OpenResty does).
 */
#include "lua/lua.h"

#include <openssl/evp.h>
#include <string.h>
#include <zlib.h>

#define RP_LUA_MAX_ARGS 100 /* decode_args' default limit, as NGX_HTTP_LUA_MAX_ARGS */

/* escape_uri's types, as OpenResty numbers them (NGX_ESCAPE_*). */
enum {
    ESC_URI,
    ESC_ARGS,
    ESC_URI_COMPONENT,
    ESC_HTML,
    ESC_REFRESH,
    ESC_MEMCACHED,
    ESC_MAIL_AUTH,
};

/*
 * The bytes each type escapes, one bit per byte (32 bytes a word). These are
 * OpenResty's sets: URI_COMPONENT escapes all but ALPHA DIGIT - . _ ~; the
 * others are nginx's; MAIL_AUTH is the same as MEMCACHED.
 */
static const uint32_t esc_uri[8] = {0xffffffff, 0x80000029, 0x00000000, 0x80000000,
                                    0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
static const uint32_t esc_args[8] = {0xffffffff, 0x80000829, 0x00000000, 0x80000000,
                                     0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
static const uint32_t esc_component[8] = {0xffffffff, 0xfc00987d, 0x78000001, 0xb8000001,
                                          0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
static const uint32_t esc_html[8] = {0xffffffff, 0x000000ad, 0x00000000, 0x80000000,
                                     0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
static const uint32_t esc_refresh[8] = {0xffffffff, 0x00000085, 0x00000000, 0x80000000,
                                        0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff};
static const uint32_t esc_memcached[8] = {0xffffffff, 0x00000021, 0, 0, 0, 0, 0, 0};

static const uint32_t *const esc_maps[] = {esc_uri,     esc_args,      esc_component, esc_html,
                                           esc_refresh, esc_memcached, esc_memcached};

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Per-VM digest contexts, reused by every call (freed when the VM closes). */
typedef struct {
    EVP_MD *md5, *sha1;
    EVP_MD_CTX *ctx;
} str_state_t;

#define STATE_NAME "rampart.ngx.string"

/*
 * The string OpenResty's Lua wrappers make of an argument: nil and false are "",
 * strings and numbers as they are, anything else through tostring(). The result
 * replaces the argument on the stack, so it stays alive while used.
 */
static const char *arg_string(lua_State *L, int idx, size_t *len)
{
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
        return lua_tolstring(L, idx, len);
    case LUA_TNONE:
    case LUA_TNIL:
        *len = 0;
        return "";
    case LUA_TBOOLEAN:
        if (!lua_toboolean(L, idx)) {
            *len = 0;
            return "";
        }
        break;
    default:
        break;
    }
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (!lua_isstring(L, -1))
        luaL_error(L, "'tostring' must return a string");
    lua_replace(L, idx);
    return lua_tolstring(L, idx, len);
}

static str_state_t *state_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int state_gc(lua_State *L)
{
    str_state_t *st = lua_touserdata(L, 1);
    EVP_MD_CTX_free(st->ctx);
    EVP_MD_free(st->md5);
    EVP_MD_free(st->sha1);
    memset(st, 0, sizeof(*st));
    return 0;
}

/* Digests data with md into out (EVP_MAX_MD_SIZE), on the VM's reused context. */
static unsigned digest(lua_State *L, EVP_MD *md, const void *a, size_t alen, const void *b,
                       size_t blen, unsigned char *out)
{
    str_state_t *st = state_of(L);
    unsigned n = 0;
    if (md == NULL || st->ctx == NULL || !EVP_DigestInit_ex(st->ctx, md, NULL) ||
        !EVP_DigestUpdate(st->ctx, a, alen) || (blen && !EVP_DigestUpdate(st->ctx, b, blen)) ||
        !EVP_DigestFinal_ex(st->ctx, out, &n))
        luaL_error(L, "digest failed");
    return n;
}

/* ngx.encode_base64(str, no_padding?) */
static int l_encode_base64(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)arg_string(L, 1, &len);
    int no_padding = 0;
    if (lua_toboolean(L, 2)) {
        if (!lua_isboolean(L, 2))
            return luaL_error(L, "bad no_padding: boolean expected, got %s", luaL_typename(L, 2));
        no_padding = 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; len > 2; s += 3, len -= 3) {
        luaL_addchar(&b, b64_chars[s[0] >> 2]);
        luaL_addchar(&b, b64_chars[((s[0] & 3) << 4) | (s[1] >> 4)]);
        luaL_addchar(&b, b64_chars[((s[1] & 0x0f) << 2) | (s[2] >> 6)]);
        luaL_addchar(&b, b64_chars[s[2] & 0x3f]);
    }
    if (len) {
        luaL_addchar(&b, b64_chars[s[0] >> 2]);
        if (len == 1) {
            luaL_addchar(&b, b64_chars[(s[0] & 3) << 4]);
            if (!no_padding)
                luaL_addchar(&b, '=');
        } else {
            luaL_addchar(&b, b64_chars[((s[0] & 3) << 4) | (s[1] >> 4)]);
            luaL_addchar(&b, b64_chars[(s[1] & 0x0f) << 2]);
        }
        if (!no_padding)
            luaL_addchar(&b, '=');
    }
    luaL_pushresult(&b);
    return 1;
}

/*
 * ngx.decode_base64(str): nil when str is not base64. As nginx decodes: the data
 * ends at the first '=' (what follows is not looked at), padding is optional, a
 * character outside the alphabet before it or a lone last character is refused.
 */
static int l_decode_base64(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "string argument only");
    size_t slen, len;
    const unsigned char *s = (const unsigned char *)lua_tolstring(L, 1, &slen);
    for (len = 0; len < slen && s[len] != '='; len++)
        if (rp_base64_value(s[len]) < 0) {
            lua_pushnil(L);
            return 1;
        }
    if (len % 4 == 1) {
        lua_pushnil(L);
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (; len > 3; s += 4, len -= 4) {
        int v0 = rp_base64_value(s[0]), v1 = rp_base64_value(s[1]), v2 = rp_base64_value(s[2]), v3 = rp_base64_value(s[3]);
        luaL_addchar(&b, (char)(v0 << 2 | v1 >> 4));
        luaL_addchar(&b, (char)(v1 << 4 | v2 >> 2));
        luaL_addchar(&b, (char)(v2 << 6 | v3));
    }
    if (len > 1)
        luaL_addchar(&b, (char)(rp_base64_value(s[0]) << 2 | rp_base64_value(s[1]) >> 4));
    if (len > 2)
        luaL_addchar(&b, (char)(rp_base64_value(s[1]) << 4 | rp_base64_value(s[2]) >> 2));
    luaL_pushresult(&b);
    return 1;
}

static void push_hex(lua_State *L, const unsigned char *d, unsigned n)
{
    static const char hex[] = "0123456789abcdef";
    char out[2 * EVP_MAX_MD_SIZE];
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 0xf];
    }
    lua_pushlstring(L, out, 2 * n);
}

/* ngx.md5(str): the hex digest; ngx.md5_bin(str): the 16 bytes. */
static int l_md5(lua_State *L)
{
    size_t len;
    const char *s = arg_string(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    push_hex(L, md, digest(L, state_of(L)->md5, s, len, NULL, 0, md));
    return 1;
}

static int l_md5_bin(lua_State *L)
{
    size_t len;
    const char *s = arg_string(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    lua_pushlstring(L, (char *)md, digest(L, state_of(L)->md5, s, len, NULL, 0, md));
    return 1;
}

/* ngx.sha1_bin(str): the 20 bytes. */
static int l_sha1_bin(lua_State *L)
{
    size_t len;
    const char *s = arg_string(L, 1, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    lua_pushlstring(L, (char *)md, digest(L, state_of(L)->sha1, s, len, NULL, 0, md));
    return 1;
}

/*
 * ngx.hmac_sha1(key, data): the 20-byte HMAC (RFC 2104), computed here on the
 * reused SHA-1 context rather than through OpenSSL's HMAC(), which allocates
 * its contexts on every call.
 */
static int l_hmac_sha1(lua_State *L)
{
    if (lua_gettop(L) != 2)
        return luaL_error(L, "expecting 2 arguments, but got %d", lua_gettop(L));
    size_t klen, dlen;
    const unsigned char *key = (const unsigned char *)luaL_checklstring(L, 1, &klen);
    const char *data = luaL_checklstring(L, 2, &dlen);
    EVP_MD *sha1 = state_of(L)->sha1;
    unsigned char k0[64] = {0}, pad[64], inner[EVP_MAX_MD_SIZE], md[EVP_MAX_MD_SIZE];
    if (klen > sizeof(k0))
        digest(L, sha1, key, klen, NULL, 0, k0);
    else
        memcpy(k0, key, klen);
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x36;
    unsigned n = digest(L, sha1, pad, sizeof(pad), data, dlen, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x5c;
    lua_pushlstring(L, (char *)md, digest(L, sha1, pad, sizeof(pad), inner, n, md));
    return 1;
}

/* ngx.crc32_short(str) / ngx.crc32_long(str): the same IEEE CRC-32 (nginx only
 * picks a different table walk by length). */
static int l_crc32(lua_State *L)
{
    size_t len;
    const char *s = arg_string(L, 1, &len);
    lua_pushnumber(L, (lua_Number)crc32_z(0, (const Bytef *)s, len));
    return 1;
}

static int escapes(const uint32_t *map, unsigned char c)
{
    return (map[c >> 5] >> (c & 0x1f)) & 1;
}

/* Writes s escaped with map at p; returns the end. */
static char *put_escaped(char *p, const uint32_t *map, const unsigned char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        if (escapes(map, s[i])) {
            *p++ = '%';
            *p++ = hex[s[i] >> 4];
            *p++ = hex[s[i] & 0xf];
        } else {
            *p++ = (char)s[i];
        }
    }
    return p;
}

static size_t count_escapes(const uint32_t *map, const unsigned char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += escapes(map, s[i]);
    return n;
}

/* ngx.escape_uri(str, type?): type 2 (URI component) unless given, 0 to 6. */
static int l_escape_uri(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)arg_string(L, 1, &len);
    int type = ESC_URI_COMPONENT;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER)
            return luaL_error(L, "\"type\" is not a number");
        lua_Number t = lua_tonumber(L, 2);
        if (t < ESC_URI || t > ESC_MAIL_AUTH)
            return luaL_error(L, "\"type\" %s out of range", lua_tostring(L, 2));
        type = (int)t;
    }
    const uint32_t *map = esc_maps[type];
    size_t n = count_escapes(map, s, len);
    if (n == 0) {
        lua_pushlstring(L, (const char *)s, len);
        return 1;
    }
    static const char hex[] = "0123456789ABCDEF";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        if (escapes(map, s[i])) {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, hex[s[i] >> 4]);
            luaL_addchar(&b, hex[s[i] & 0xf]);
        } else {
            luaL_addchar(&b, (char)s[i]);
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Pushes the URI component s[0, len) unescaped: %XX is the byte, '+' a space,
 * a '%' not followed by two hex digits stays as it is. */
static void push_unescaped(lua_State *L, const char *s, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_value((unsigned char)s[i + 1])) >= 0 &&
            (lo = hex_value((unsigned char)s[i + 2])) >= 0) {
            luaL_addchar(&b, (char)(hi << 4 | lo));
            i += 2;
        } else {
            luaL_addchar(&b, s[i] == '+' ? ' ' : s[i]);
        }
    }
    luaL_pushresult(&b);
}

/* ngx.unescape_uri(str) */
static int l_unescape_uri(lua_State *L)
{
    size_t len;
    const char *s = arg_string(L, 1, &len);
    push_unescaped(L, s, len);
    return 1;
}

/* Writes escape(key) or escape(key)=escape(value) at p ('&' first unless it is
 * the first pair); with p NULL only counts the bytes. Returns the bytes. */
static size_t put_pair(char *p, int *first, const char *key, size_t klen, const char *val,
                       size_t vlen)
{
    const unsigned char *k = (const unsigned char *)key, *v = (const unsigned char *)val;
    size_t n = (*first ? 0 : 1) + klen + 2 * count_escapes(esc_component, k, klen);
    if (val != NULL)
        n += 1 + vlen + 2 * count_escapes(esc_component, v, vlen);
    if (p != NULL) {
        if (!*first)
            *p++ = '&';
        p = put_escaped(p, esc_component, k, klen);
        if (val != NULL) {
            *p++ = '=';
            put_escaped(p, esc_component, v, vlen);
        }
    }
    *first = 0;
    return n;
}

/* A query arg value's text: a string as it is, a number as Lua prints it
 * ("%.14g"), written into num: unlike lua_tolstring, nothing is allocated. */
static const char *value_text(lua_State *L, int idx, char num[32], size_t *len)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        *len = (size_t)snprintf(num, 32, "%.14g", lua_tonumber(L, idx));
        return num;
    }
    return lua_tolstring(L, idx, len);
}

/* One walk of encode_args' table: counts the bytes (out NULL, checking the
 * arguments as OpenResty does) or writes them. The writing walk allocates
 * nothing, so no garbage collection step can run while out is in use. */
static size_t walk_args(lua_State *L, char *out)
{
    size_t n = 0, klen, vlen;
    char num[32];
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, 1) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "attempt to use a non-string key in the \"args\" option table");
        const char *key = lua_tolstring(L, -2, &klen), *val;
        switch (lua_type(L, -1)) {
        case LUA_TNUMBER:
        case LUA_TSTRING:
            val = value_text(L, -1, num, &vlen);
            n += put_pair(out ? out + n : NULL, &first, key, klen, val, vlen);
            break;
        case LUA_TBOOLEAN:
            if (lua_toboolean(L, -1))
                n += put_pair(out ? out + n : NULL, &first, key, klen, NULL, 0);
            break;
        case LUA_TTABLE:
            lua_pushnil(L);
            while (lua_next(L, -2) != 0) {
                int t = lua_type(L, -1);
                if (t == LUA_TBOOLEAN) {
                    if (lua_toboolean(L, -1))
                        n += put_pair(out ? out + n : NULL, &first, key, klen, NULL, 0);
                } else if (t == LUA_TNUMBER || t == LUA_TSTRING) {
                    val = value_text(L, -1, num, &vlen);
                    n += put_pair(out ? out + n : NULL, &first, key, klen, val, vlen);
                } else {
                    luaL_error(L, "attempt to use %s as query arg value", luaL_typename(L, -1));
                }
                lua_pop(L, 1);
            }
            break;
        default:
            luaL_error(L, "attempt to use %s as query arg value", luaL_typename(L, -1));
        }
        lua_pop(L, 1);
    }
    return n;
}

/*
 * ngx.encode_args(table): "k=v&k2=v2" in the table's own (lua_next) order, as
 * OpenResty. A true value gives the key alone, false nothing, a table one pair
 * per element (its booleans as above). Keys must be strings. One walk counts,
 * the second writes: on the C stack when the result is small, else into a
 * userdata (as OpenResty does).
 */
static int l_encode_args(lua_State *L)
{
    if (lua_gettop(L) != 1)
        return luaL_error(L, "expecting 1 argument but seen %d", lua_gettop(L));
    luaL_checktype(L, 1, LUA_TTABLE);
    char small[2048];
    size_t n = walk_args(L, NULL);
    char *out = n <= sizeof(small) ? small : lua_newuserdata(L, n);
    walk_args(L, out);
    lua_pushlstring(L, out, n);
    return 1;
}

/* Sets t[key] = value (both on the stack top), turning a repeated key's value
 * into a list of its values, as OpenResty. */
static void set_multi_value(lua_State *L, int t)
{
    lua_pushvalue(L, -2);
    lua_rawget(L, t); /* key value old */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_rawset(L, t);
        return;
    }
    if (!lua_istable(L, -1)) {
        lua_createtable(L, 4, 0); /* key value old list */
        lua_insert(L, -2);        /* key value list old */
        lua_rawseti(L, -2, 1);    /* key value list */
        lua_insert(L, -2);        /* key list value */
        lua_rawseti(L, -2, 2);    /* key list */
        lua_rawset(L, t);
        return;
    }
    lua_insert(L, -2); /* key list value */
    lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
    lua_pop(L, 2);
}

/* Ends a pair: key (and value, or true when has_value is 0) are pushed; pairs
 * with an empty key are dropped. */
static void end_pair(lua_State *L, int t, int has_value)
{
    if (!has_value)
        lua_pushboolean(L, 1);
    if (lua_objlen(L, -2) == 0)
        lua_pop(L, 2);
    else
        set_multi_value(L, t);
}

/*
 * ngx.decode_args(str, max_args?): the table of a query string. Keys without '='
 * are true, repeated keys give lists. Past max_args pairs (100 unless given; 0
 * or less: no limit) it stops and returns "truncated" as a second value; as in
 * OpenResty the limit is checked at each '&', so "a=1&" with a limit of 1 is
 * truncated too.
 */
static int l_decode_args(lua_State *L)
{
    int n = lua_gettop(L);
    if (n != 1 && n != 2)
        return luaL_error(L, "expecting 1 or 2 arguments but seen %d", n);
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int max = RP_LUA_MAX_ARGS;
    if (n == 2) {
        max = luaL_checkint(L, 2);
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 4);
    int t = lua_gettop(L);
    size_t q = 0;
    int parsing_value = 0, count = 0;
    for (size_t p = 0; p < len; p++) {
        if (s[p] == '=' && !parsing_value) {
            push_unescaped(L, s + q, p - q);
            q = p + 1;
            parsing_value = 1;
        } else if (s[p] == '&') {
            push_unescaped(L, s + q, p - q);
            q = p + 1;
            end_pair(L, t, parsing_value);
            parsing_value = 0;
            if (max > 0 && ++count == max) {
                lua_pushliteral(L, "truncated");
                return 2;
            }
        }
    }
    if (q != len || parsing_value) {
        push_unescaped(L, s + q, len - q);
        end_pair(L, t, parsing_value);
    }
    return 1;
}

/* ngx.quote_sql_str(str): str in single quotes, MySQL-escaped. */
static int l_quote_sql_str(lua_State *L)
{
    if (lua_gettop(L) != 1)
        return luaL_error(L, "expecting one argument");
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '\'');
    for (size_t i = 0; i < len; i++) {
        char esc = 0;
        switch (s[i]) {
        case '\0':
            esc = '0';
            break;
        case '\b':
            esc = 'b';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\t':
            esc = 't';
            break;
        case 26:
            esc = 'Z';
            break;
        case '\\':
        case '\'':
        case '"':
            esc = (char)s[i];
            break;
        }
        if (esc) {
            luaL_addchar(&b, '\\');
            luaL_addchar(&b, esc);
        } else {
            luaL_addchar(&b, (char)s[i]);
        }
    }
    luaL_addchar(&b, '\'');
    luaL_pushresult(&b);
    return 1;
}

void rp_lua_api_string(lua_State *L, rp_cycle_t *cycle)
{
    static const luaL_Reg fns[] = {
        {"encode_base64", l_encode_base64},
        {"decode_base64", l_decode_base64},
        {"md5", l_md5},
        {"md5_bin", l_md5_bin},
        {"sha1_bin", l_sha1_bin},
        {"hmac_sha1", l_hmac_sha1},
        {"crc32_short", l_crc32},
        {"crc32_long", l_crc32},
        {"escape_uri", l_escape_uri},
        {"unescape_uri", l_unescape_uri},
        {"encode_args", l_encode_args},
        {"decode_args", l_decode_args},
        {"quote_sql_str", l_quote_sql_str},
        {NULL, NULL},
    };

    str_state_t *st = lua_newuserdata(L, sizeof(*st));
    memset(st, 0, sizeof(*st));
    if (luaL_newmetatable(L, STATE_NAME)) {
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    st->md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    st->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    st->ctx = EVP_MD_CTX_new();

    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -3, f->name);
    }
    lua_pop(L, 1);
}
