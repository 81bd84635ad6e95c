/*
 * A compact encoding of Lua tables, so that a shared dictionary can keep one as a
 * value (OpenResty's refuses tables; users then store JSON and parse it on every
 * read). Only what survives the trip between processes is accepted: strings,
 * numbers, booleans and tables of them, nested; a function, userdata, thread or
 * cdata, or a table inside itself, is refused with a message rather than stored
 * half.
 *
 * Each value is a tag byte and its payload: false, true; a number that is an
 * integer of up to 53 bits as a zigzag varint (most keys and counters take one or
 * two bytes), any other as the 8 bytes of the double; a string as a varint length
 * and its bytes; a table as its pairs, key then value, and an end byte. Decoding
 * checks every length against the bytes left, and nesting against
 * RP_LUA_CODEC_DEPTH, so damaged bytes come back as an error, never as a read
 * outside them.
 */
#include "lua/lua_shdict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T_END = 0, T_FALSE, T_TRUE, T_INT, T_DOUBLE, T_STRING, T_TABLE };

typedef struct {
    lua_State *L;
    char **buf;
    size_t *len, *cap;
    char *err;
    size_t errlen;
    int seen; /* stack index of the set of tables being encoded (a cycle's witness) */
} enc_t;

static int put(enc_t *e, const void *p, size_t n)
{
    if (*e->len + n > *e->cap) {
        size_t cap = *e->cap ? *e->cap : 256;
        while (cap < *e->len + n)
            cap *= 2;
        char *b = realloc(*e->buf, cap);
        if (b == NULL) {
            snprintf(e->err, e->errlen, "no memory");
            return -1;
        }
        *e->buf = b;
        *e->cap = cap;
    }
    memcpy(*e->buf + *e->len, p, n);
    *e->len += n;
    return 0;
}

static int put_byte(enc_t *e, unsigned char c)
{
    return put(e, &c, 1);
}

static int put_varint(enc_t *e, uint64_t v)
{
    unsigned char b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (unsigned char)v;
    return put(e, b, n);
}

static int encode_table(enc_t *e, int idx, int depth);

/* The value at idx (absolute); key: it is a table's key, where a table is refused. */
static int encode_value(enc_t *e, int idx, int depth, int key)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return put_byte(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
    case LUA_TNUMBER: {
        double d = lua_tonumber(L, idx);
        if (d == floor(d) && fabs(d) <= 9007199254740992.0 && !(d == 0 && signbit(d))) {
            int64_t i = (int64_t)d;
            if (put_byte(e, T_INT) != 0)
                return -1;
            return put_varint(e, ((uint64_t)i << 1) ^ (uint64_t)(i >> 63));
        }
        if (put_byte(e, T_DOUBLE) != 0)
            return -1;
        return put(e, &d, sizeof(d));
    }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (put_byte(e, T_STRING) != 0 || put_varint(e, n) != 0)
            return -1;
        return put(e, s, n);
    }
    case LUA_TTABLE:
        if (!key)
            return encode_table(e, idx, depth + 1);
        snprintf(e->err, e->errlen, "cannot store a table key");
        return -1;
    default:
        snprintf(e->err, e->errlen, "cannot store a %s", lua_typename(L, lua_type(L, idx)));
        return -1;
    }
}

static int encode_table(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth > RP_LUA_CODEC_DEPTH) {
        snprintf(e->err, e->errlen, "table nested too deep");
        return -1;
    }
    if (!lua_checkstack(L, 4)) {
        snprintf(e->err, e->errlen, "no memory");
        return -1;
    }
    lua_pushvalue(L, idx);
    lua_rawget(L, e->seen);
    int inside = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (inside) {
        snprintf(e->err, e->errlen, "cannot store a table inside itself");
        return -1;
    }
    /* only the tables on the path from the root: one met twice elsewhere is copied */
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->seen);
    if (put_byte(e, T_TABLE) != 0)
        return -1;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int top = lua_gettop(L);
        if (encode_value(e, top - 1, depth, 1) != 0 || encode_value(e, top, depth, 0) != 0) {
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, e->seen);
    return put_byte(e, T_END);
}

int rp_lua_encode(lua_State *L, int idx, char **buf, size_t *len, size_t *cap, char *err,
                  size_t errlen)
{
    if (idx < 0)
        idx = lua_gettop(L) + idx + 1;
    if (!lua_checkstack(L, 2)) {
        snprintf(err, errlen, "no memory");
        return -1;
    }
    int top = lua_gettop(L);
    lua_newtable(L);
    enc_t e = {L, buf, len, cap, err, errlen, lua_gettop(L)};
    int rc = encode_table(&e, idx, 1);
    lua_settop(L, top);
    return rc;
}

typedef struct {
    lua_State *L;
    const unsigned char *p, *end;
} dec_t;

static int get_varint(dec_t *d, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64 && d->p < d->end; shift += 7) {
        unsigned char c = *d->p++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

static int decode_value(dec_t *d, int depth);

static int decode_table(dec_t *d, int depth)
{
    if (depth > RP_LUA_CODEC_DEPTH || !lua_checkstack(d->L, 4))
        return -1;
    lua_newtable(d->L);
    while (d->p < d->end && *d->p != T_END) {
        if (decode_value(d, depth) != 0) {
            lua_pop(d->L, 1);
            return -1;
        }
        if ((lua_type(d->L, -1) == LUA_TNUMBER && isnan(lua_tonumber(d->L, -1))) ||
            decode_value(d, depth) != 0) {
            lua_pop(d->L, 2);
            return -1;
        }
        lua_rawset(d->L, -3);
    }
    if (d->p >= d->end) {
        lua_pop(d->L, 1);
        return -1;
    }
    d->p++; /* T_END */
    return 0;
}

/* Pushes one value, or returns -1 having pushed nothing. */
static int decode_value(dec_t *d, int depth)
{
    if (d->p >= d->end)
        return -1;
    uint64_t u;
    switch (*d->p++) {
    case T_FALSE:
    case T_TRUE:
        lua_pushboolean(d->L, d->p[-1] == T_TRUE);
        return 0;
    case T_INT:
        if (get_varint(d, &u) != 0)
            return -1;
        lua_pushnumber(d->L, (double)((int64_t)(u >> 1) ^ -(int64_t)(u & 1)));
        return 0;
    case T_DOUBLE: {
        double v;
        if ((size_t)(d->end - d->p) < sizeof(v))
            return -1;
        memcpy(&v, d->p, sizeof(v));
        d->p += sizeof(v);
        lua_pushnumber(d->L, v);
        return 0;
    }
    case T_STRING:
        if (get_varint(d, &u) != 0 || u > (uint64_t)(d->end - d->p))
            return -1;
        lua_pushlstring(d->L, (const char *)d->p, (size_t)u);
        d->p += u;
        return 0;
    case T_TABLE:
        return decode_table(d, depth + 1);
    default:
        return -1;
    }
}

int rp_lua_decode(lua_State *L, const void *p, size_t len)
{
    dec_t d = {L, p, (const unsigned char *)p + len};
    if (len == 0 || *d.p != T_TABLE)
        return -1;
    if (decode_value(&d, 0) != 0)
        return -1;
    if (d.p != d.end) {
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}
