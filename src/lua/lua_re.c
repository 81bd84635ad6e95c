/*
 * ngx.re: OpenResty's regular expressions (match, find, gmatch, sub, gsub) on
 * PCRE2, as lua-nginx-module 0.10.x with lua-resty-core gives them to scripts.
 *
 * Options are OpenResty's letters: a (anchored), d (DFA: the longest match,
 * pcre2_dfa_match), D (duplicate names: a list per name), i, j (JIT), J
 * (JavaScript compatibility: PCRE2's ALT_BSUX, ALLOW_EMPTY_CLASS and
 * MATCH_UNSET_BACKREF, which replaced PCRE1's JAVASCRIPT_COMPAT), m, o (compile
 * once), s, u (UTF-8), U (UTF-8, subject not checked), x. An unknown letter is
 * an error raised, a pattern that does not compile a (nil, message) return, as
 * OpenResty. Match tables hold [0], the numbered captures (false when a group
 * did not take part) and the named ones.
 *
 * Per VM (each API part call makes its own state, an upvalue of the functions):
 * the match data, grown to the largest capture count seen and reused, and the
 * "o" cache of compiled patterns keyed by (pattern, compile options), LRU with
 * OpenResty's lua_regex_cache_max_entries default of 1024 entries. A pattern
 * compiled without "o" lives in a userdata for the call, so an error in the
 * middle (a replacement function's) cannot leak it; a cached one that a gmatch
 * iterator or a running gsub callback still uses is counted, so eviction does
 * not free it under them.
 */
#include "lua/lua_re.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define RE_CACHE_MAX     1024 /* lua_regex_cache_max_entries' default */
#define RE_BUCKETS       2048 /* hash buckets of the cache (a power of two) */
#define RE_DFA_WORKSPACE 100  /* ints, as OpenResty */
#define RE_SMALL_PAIRS   32   /* captures copied on the C stack up to this many */

/* Option letters that are not compile options. */
#define RE_ONCE         0x01
#define RE_JIT          0x02
#define RE_DFA          0x04
#define RE_DUPNAMES     0x08
#define RE_NO_UTF_CHECK 0x10

typedef struct re_entry_s re_entry_t;

struct re_entry_s {
    re_entry_t *hnext;       /* the bucket's chain */
    re_entry_t *prev, *next; /* the LRU list, most recent first */
    pcre2_code *code;
    uint32_t hash, options;
    uint32_t ncaptures, name_count, name_entry_size;
    PCRE2_SPTR name_table;
    unsigned refs; /* handles (iterators, running calls) holding it */
    unsigned in_cache : 1;
    unsigned jitted : 1;
    size_t len;
    char pattern[];
};

typedef struct {
    pcre2_match_data *md;
    uint32_t md_pairs;
    re_entry_t **buckets;
    re_entry_t lru; /* sentinel: lru.next is the most recent */
    unsigned count, max;
} re_state_t;

/* A counted reference to an entry, held by a userdata (its __gc releases it). */
typedef struct {
    re_entry_t *e;
} re_handle_t;

/* gmatch's iterator: the entry it matches with and where it is. */
typedef struct {
    re_entry_t *e;
    int flags;
    int done;
    size_t pos;
} re_iter_t;

#define STATE_NAME  "rampart.ngx.re"
#define HANDLE_NAME "rampart.ngx.re.handle"
#define ITER_NAME   "rampart.ngx.re.iterator"

static re_state_t *state_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static void entry_free(re_entry_t *e)
{
    pcre2_code_free(e->code);
    free(e);
}

static void entry_release(re_entry_t *e)
{
    if (e != NULL && --e->refs == 0 && !e->in_cache)
        entry_free(e);
}

static int handle_gc(lua_State *L)
{
    re_handle_t *h = lua_touserdata(L, 1);
    entry_release(h->e);
    h->e = NULL;
    return 0;
}

static int iter_gc(lua_State *L)
{
    re_iter_t *it = lua_touserdata(L, 1);
    entry_release(it->e);
    it->e = NULL;
    return 0;
}

/* Pushes a handle holding e, so that e outlives the call even through errors. */
static void push_handle(lua_State *L, re_entry_t *e)
{
    re_handle_t *h = lua_newuserdata(L, sizeof(*h));
    h->e = e;
    e->refs++;
    luaL_getmetatable(L, HANDLE_NAME);
    lua_setmetatable(L, -2);
}

static void lru_unlink(re_entry_t *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(re_state_t *st, re_entry_t *e)
{
    e->next = st->lru.next;
    e->prev = &st->lru;
    st->lru.next->prev = e;
    st->lru.next = e;
}

/* Takes e out of the cache; frees it unless a handle still holds it. */
static void cache_remove(re_state_t *st, re_entry_t *e)
{
    re_entry_t **p = &st->buckets[e->hash & (RE_BUCKETS - 1)];
    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
    lru_unlink(e);
    e->in_cache = 0;
    st->count--;
    if (e->refs == 0)
        entry_free(e);
}

static int state_gc(lua_State *L)
{
    re_state_t *st = lua_touserdata(L, 1);
    if (st->buckets != NULL) {
        while (st->lru.next != &st->lru)
            cache_remove(st, st->lru.next);
        free(st->buckets);
        st->buckets = NULL;
    }
    pcre2_match_data_free(st->md);
    st->md = NULL;
    return 0;
}

static uint32_t hash_of(const char *s, size_t len, uint32_t options)
{
    uint32_t h = 2166136261u ^ options;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Reads OpenResty's option letters into compile options and RE_* flags; an
 * unknown letter raises an error, as OpenResty. */
static void parse_options(lua_State *L, int idx, uint32_t *options, int *flags)
{
    *options = 0;
    *flags = 0;
    if (lua_isnoneornil(L, idx) || (lua_isboolean(L, idx) && !lua_toboolean(L, idx)))
        return;
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case 'a':
            *options |= PCRE2_ANCHORED;
            break;
        case 'd':
            *flags |= RE_DFA;
            break;
        case 'D':
            *options |= PCRE2_DUPNAMES;
            *flags |= RE_DUPNAMES;
            break;
        case 'i':
            *options |= PCRE2_CASELESS;
            break;
        case 'j':
            *flags |= RE_JIT;
            break;
        case 'J':
            *options |= PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_MATCH_UNSET_BACKREF;
            break;
        case 'm':
            *options |= PCRE2_MULTILINE;
            break;
        case 'o':
            *flags |= RE_ONCE;
            break;
        case 's':
            *options |= PCRE2_DOTALL;
            break;
        case 'u':
            *options |= PCRE2_UTF;
            break;
        case 'U':
            *options |= PCRE2_UTF;
            *flags |= RE_NO_UTF_CHECK;
            break;
        case 'x':
            *options |= PCRE2_EXTENDED;
            break;
        default:
            luaL_error(L, "unknown flag \"%c\" (flags \"%s\")", s[i], s);
        }
    }
}

/* Pushes OpenResty's message for a pattern that does not compile. */
static void push_compile_error(lua_State *L, int code, size_t off, const char *pat, size_t len)
{
    PCRE2_UCHAR msg[128];
    if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
        snprintf((char *)msg, sizeof(msg), "error %d", code);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "pcre2_compile() failed: ");
    luaL_addstring(&b, (const char *)msg);
    luaL_addstring(&b, " in \"");
    luaL_addlstring(&b, pat, len);
    luaL_addchar(&b, '"');
    if (off < len) {
        luaL_addstring(&b, " at \"");
        luaL_addlstring(&b, pat + off, len - off);
        luaL_addchar(&b, '"');
    }
    luaL_pushresult(&b);
}

/*
 * The compiled pattern for the pattern at pidx with the options at oidx. With
 * "o" it comes from (or goes into) the cache; without, it is held by a handle
 * pushed on the stack, freed by the collector after the call. When want_handle
 * is set a cached entry gets a handle as well (the caller runs Lua code while
 * using it). Returns NULL with nil and the message pushed when it does not
 * compile.
 */
static re_entry_t *re_get(lua_State *L, int pidx, int oidx, int *flags, int want_handle)
{
    re_state_t *st = state_of(L);
    uint32_t options;
    size_t len;
    const char *pat = luaL_checklstring(L, pidx, &len);
    parse_options(L, oidx, &options, flags);
    int once = (*flags & RE_ONCE) && st->max > 0;
    uint32_t hash = hash_of(pat, len, options);
    re_entry_t *e = NULL;

    if (once) {
        for (e = st->buckets[hash & (RE_BUCKETS - 1)]; e != NULL; e = e->hnext)
            if (e->hash == hash && e->options == options && e->len == len &&
                memcmp(e->pattern, pat, len) == 0)
                break;
        if (e != NULL) {
            lru_unlink(e);
            lru_push_front(st, e);
        }
    }

    if (e == NULL) {
        int code;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, options, &code, &off, NULL);
        if (re == NULL) {
            lua_pushnil(L);
            push_compile_error(L, code, off, pat, len);
            return NULL;
        }
        e = calloc(1, sizeof(*e) + len + 1);
        if (e == NULL) {
            pcre2_code_free(re);
            luaL_error(L, "no memory");
        }
        e->code = re;
        e->hash = hash;
        e->options = options;
        e->len = len;
        memcpy(e->pattern, pat, len);
        pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &e->ncaptures);
        pcre2_pattern_info(re, PCRE2_INFO_NAMECOUNT, &e->name_count);
        if (e->name_count > 0) {
            pcre2_pattern_info(re, PCRE2_INFO_NAMEENTRYSIZE, &e->name_entry_size);
            pcre2_pattern_info(re, PCRE2_INFO_NAMETABLE, &e->name_table);
        }
        if (once) {
            if (st->count >= st->max) {
                /* evict the least recently used that no one holds, else the oldest */
                re_entry_t *victim = st->lru.prev;
                while (victim != &st->lru && victim->refs > 0)
                    victim = victim->prev;
                cache_remove(st, victim != &st->lru ? victim : st->lru.prev);
            }
            re_entry_t **b = &st->buckets[hash & (RE_BUCKETS - 1)];
            e->hnext = *b;
            *b = e;
            lru_push_front(st, e);
            e->in_cache = 1;
            st->count++;
        } else {
            push_handle(L, e);
            want_handle = 0;
        }
    }

    if ((*flags & RE_JIT) && !e->jitted) {
        /* a pattern the JIT cannot take still matches, interpreted (as OpenResty) */
        pcre2_jit_compile(e->code, PCRE2_JIT_COMPLETE);
        e->jitted = 1;
    }
    if (want_handle)
        push_handle(L, e);
    return e;
}

/*
 * Matches e against subj from pos with the VM's match data and copies the
 * captures' offsets into ov (2 per group, PCRE2_UNSET for a group that did not
 * take part). Returns PCRE2's count of groups set (at least 1 on a match), or
 * its negative error code. ov must hold ovec_pairs(e, flags) pairs.
 */
static uint32_t ovec_pairs(const re_entry_t *e, int flags)
{
    return flags & RE_DFA ? 1 : e->ncaptures + 1;
}

static int re_exec(lua_State *L, re_entry_t *e, int flags, const char *subj, size_t len, size_t pos,
                   PCRE2_SIZE *ov)
{
    re_state_t *st = state_of(L);
    uint32_t pairs = ovec_pairs(e, flags);
    if (st->md == NULL || st->md_pairs < pairs) {
        uint32_t want = pairs < 16 ? 16 : pairs;
        pcre2_match_data *md = pcre2_match_data_create(want, NULL);
        if (md == NULL)
            luaL_error(L, "no memory");
        pcre2_match_data_free(st->md);
        st->md = md;
        st->md_pairs = want;
    }
    uint32_t opts = flags & RE_NO_UTF_CHECK ? PCRE2_NO_UTF_CHECK : 0;
    int rc;
    if (flags & RE_DFA) {
        int ws[RE_DFA_WORKSPACE];
        rc = pcre2_dfa_match(e->code, (PCRE2_SPTR)subj, len, pos, opts, st->md, NULL, ws,
                             RE_DFA_WORKSPACE);
        if (rc == 0)
            rc = 1; /* more matches than the vector holds: the longest is first */
    } else {
        rc = pcre2_match(e->code, (PCRE2_SPTR)subj, len, pos, opts, st->md, NULL);
    }
    if (rc > 0) {
        PCRE2_SIZE *v = pcre2_get_ovector_pointer(st->md);
        for (uint32_t i = 0; i < pairs; i++) {
            int set = (int)i < rc && v[2 * i] != PCRE2_UNSET && v[2 * i + 1] >= v[2 * i];
            ov[2 * i] = set ? v[2 * i] : PCRE2_UNSET;
            ov[2 * i + 1] = set ? v[2 * i + 1] : PCRE2_UNSET;
        }
    }
    return rc;
}

/* Room for e's captures: on the C stack (small) when they fit, else a userdata. */
static PCRE2_SIZE *ovec_for(lua_State *L, const re_entry_t *e, int flags, PCRE2_SIZE *small)
{
    uint32_t pairs = ovec_pairs(e, flags);
    if (pairs <= RE_SMALL_PAIRS)
        return small;
    return lua_newuserdata(L, 2 * sizeof(PCRE2_SIZE) * pairs);
}

/* The subject as OpenResty takes it: tostring(subj). Replaces it on the stack. */
static const char *subject_arg(lua_State *L, int idx, size_t *len)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        return lua_tolstring(L, idx, len);
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (!lua_isstring(L, -1))
        luaL_error(L, "'tostring' must return a string");
    lua_replace(L, idx);
    return lua_tolstring(L, idx, len);
}

/* Where to start: ctx.pos (1-based) when ctx is a table, else the beginning. */
static size_t ctx_pos(lua_State *L, int ctx)
{
    if (!lua_istable(L, ctx))
        return 0;
    lua_getfield(L, ctx, "pos");
    lua_Number pos = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return pos > 0 ? (size_t)pos - 1 : 0;
}

static void ctx_set_pos(lua_State *L, int ctx, PCRE2_SIZE end)
{
    if (!lua_istable(L, ctx))
        return;
    lua_pushnumber(L, (lua_Number)end + 1);
    lua_setfield(L, ctx, "pos");
}

/*
 * Fills the match table (res, or a new one when res is 0) and leaves it on the
 * stack: [0], the numbered captures, false for those that did not take part,
 * and each name: its group's value, or with D a list of the values of the
 * groups of that name that matched (absent when none did).
 */
static void push_captures(lua_State *L, const re_entry_t *e, int flags, const char *subj,
                          const PCRE2_SIZE *ov, int res)
{
    uint32_t ncap = flags & RE_DFA ? 0 : e->ncaptures;
    if (res)
        lua_pushvalue(L, res);
    else
        lua_createtable(L, (int)ncap, flags & RE_DFA ? 0 : (int)e->name_count);
    int t = lua_gettop(L);
    for (uint32_t i = 0; i <= ncap; i++) {
        if (ov[2 * i] == PCRE2_UNSET)
            lua_pushboolean(L, 0);
        else
            lua_pushlstring(L, subj + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
        lua_rawseti(L, t, (int)i);
    }
    if (flags & RE_DFA)
        return;
    PCRE2_SPTR entry = e->name_table;
    for (uint32_t i = 0; i < e->name_count; i++, entry += e->name_entry_size) {
        int n = entry[0] << 8 | entry[1];
        const char *name = (const char *)entry + 2;
        lua_rawgeti(L, t, n);
        if (!(flags & RE_DUPNAMES)) {
            lua_setfield(L, t, name);
            continue;
        }
        if (!lua_toboolean(L, -1)) { /* unmatched groups are not listed */
            lua_pop(L, 1);
            continue;
        }
        lua_getfield(L, t, name);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            lua_createtable(L, 2, 0);
            lua_pushvalue(L, -1);
            lua_setfield(L, t, name);
        }
        lua_insert(L, -2); /* list value */
        lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
        lua_pop(L, 1);
    }
}

static int push_exec_error(lua_State *L, int rc, int nils)
{
    for (int i = 0; i < nils; i++)
        lua_pushnil(L);
    lua_pushfstring(L, "pcre_exec() failed: %d", rc);
    return nils + 1;
}

/* ngx.re.match(subject, regex, options?, ctx?, res_table?) */
static int l_match(lua_State *L)
{
    lua_settop(L, 5);
    size_t len;
    const char *subj = subject_arg(L, 1, &len);
    int flags;
    re_entry_t *e = re_get(L, 2, 3, &flags, 0);
    if (e == NULL)
        return 2;
    PCRE2_SIZE small[2 * RE_SMALL_PAIRS];
    PCRE2_SIZE *ov = ovec_for(L, e, flags, small);
    int rc = re_exec(L, e, flags, subj, len, ctx_pos(L, 4), ov);
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0)
        return push_exec_error(L, rc, 1);
    ctx_set_pos(L, 4, ov[1]);
    push_captures(L, e, flags, subj, ov, lua_istable(L, 5) ? 5 : 0);
    return 1;
}

/* ngx.re.find(subject, regex, options?, ctx?, nth?): from, to of the match (or
 * of its nth capture). */
static int l_find(lua_State *L)
{
    lua_settop(L, 5);
    size_t len;
    const char *subj = subject_arg(L, 1, &len);
    int flags;
    re_entry_t *e = re_get(L, 2, 3, &flags, 0);
    if (e == NULL) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 3;
    }
    PCRE2_SIZE small[2 * RE_SMALL_PAIRS];
    PCRE2_SIZE *ov = ovec_for(L, e, flags, small);
    int rc = re_exec(L, e, flags, subj, len, ctx_pos(L, 4), ov);
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0)
        return push_exec_error(L, rc, 2);
    ctx_set_pos(L, 4, ov[1]);
    lua_Number nth = lua_tonumber(L, 5);
    if (nth < 0)
        nth = 0;
    uint32_t ncap = flags & RE_DFA ? 0 : e->ncaptures;
    if (nth > ncap) {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushliteral(L, "nth out of bound");
        return 3;
    }
    size_t n = (size_t)nth;
    if (ov[2 * n] == PCRE2_UNSET) {
        lua_pushnil(L);
        lua_pushnil(L);
        return 2;
    }
    lua_pushnumber(L, (lua_Number)ov[2 * n] + 1);
    lua_pushnumber(L, (lua_Number)ov[2 * n + 1]);
    return 2;
}

/* Where to search after a match [start, end): its end, or past one character
 * when it was empty (a whole UTF-8 character in UTF mode). */
static size_t next_pos(const re_entry_t *e, const char *subj, size_t len, PCRE2_SIZE start,
                       PCRE2_SIZE end)
{
    if (end != start)
        return end;
    size_t pos = end + 1;
    if (e->options & PCRE2_UTF)
        while (pos < len && ((unsigned char)subj[pos] & 0xc0) == 0x80)
            pos++;
    return pos;
}

/* The iterator ngx.re.gmatch returns: the next match table, nil at the end. */
static int l_gmatch_next(lua_State *L)
{
    re_iter_t *it = lua_touserdata(L, lua_upvalueindex(2));
    size_t len;
    const char *subj = lua_tolstring(L, lua_upvalueindex(3), &len);
    if (it->done) {
        lua_pushnil(L);
        return 1;
    }
    PCRE2_SIZE small[2 * RE_SMALL_PAIRS];
    PCRE2_SIZE *ov = ovec_for(L, it->e, it->flags, small);
    int rc = re_exec(L, it->e, it->flags, subj, len, it->pos, ov);
    if (rc < 0) {
        it->done = 1;
        if (rc == PCRE2_ERROR_NOMATCH) {
            lua_pushnil(L);
            return 1;
        }
        return push_exec_error(L, rc, 1);
    }
    it->pos = next_pos(it->e, subj, len, ov[0], ov[1]);
    if (it->pos > len)
        it->done = 1;
    push_captures(L, it->e, it->flags, subj, ov, 0);
    return 1;
}

/* ngx.re.gmatch(subject, regex, options?): an iterator over the matches. */
static int l_gmatch(lua_State *L)
{
    lua_settop(L, 3);
    size_t len;
    subject_arg(L, 1, &len);
    int flags;
    re_entry_t *e = re_get(L, 2, 3, &flags, 0);
    if (e == NULL)
        return 2;
    re_iter_t *it = lua_newuserdata(L, sizeof(*it));
    it->e = e;
    e->refs++;
    it->flags = flags;
    it->done = 0;
    it->pos = 0;
    luaL_getmetatable(L, ITER_NAME);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, -2);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, l_gmatch_next, 3);
    return 1;
}

/* The group a name in a replacement template stands for: the first of that name
 * that took part in the match (with D there can be several), or -1. */
static int group_of_name(const re_entry_t *e, const char *name, size_t nlen, const PCRE2_SIZE *ov)
{
    int found = -1;
    PCRE2_SPTR entry = e->name_table;
    for (uint32_t i = 0; i < e->name_count; i++, entry += e->name_entry_size) {
        const char *n = (const char *)entry + 2;
        if (strncmp(n, name, nlen) != 0 || n[nlen] != '\0')
            continue;
        int g = entry[0] << 8 | entry[1];
        if (ov == NULL || ov[2 * g] != PCRE2_UNSET)
            return g;
        if (found < 0)
            found = g;
    }
    return found;
}

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/*
 * Walks a replacement template: $$ is a dollar, $N and ${N} capture N (empty
 * when N is past the groups or did not take part), $name and ${name} the named
 * capture (an extension: OpenResty refuses names). With b NULL only checks it
 * (returns -1 when it is invalid); else appends the expansion for the match ov.
 */
static int template_walk(luaL_Buffer *b, const re_entry_t *e, uint32_t ncap, const char *tpl,
                         size_t tlen, const char *subj, const PCRE2_SIZE *ov)
{
    for (size_t i = 0; i < tlen;) {
        if (tpl[i] != '$') {
            size_t j = i;
            while (j < tlen && tpl[j] != '$')
                j++;
            if (b)
                luaL_addlstring(b, tpl + i, j - i);
            i = j;
            continue;
        }
        if (++i == tlen)
            return -1;
        if (tpl[i] == '$') {
            if (b)
                luaL_addchar(b, '$');
            i++;
            continue;
        }
        int bracket = tpl[i] == '{';
        if (bracket && ++i == tlen)
            return -1;
        size_t start = i;
        int numeric = tpl[i] >= '0' && tpl[i] <= '9';
        while (i < tlen && (numeric ? (tpl[i] >= '0' && tpl[i] <= '9') : is_name_char(tpl[i])))
            i++;
        size_t nlen = i - start;
        if (bracket) {
            if (i == tlen || tpl[i] != '}')
                return -1;
            i++;
        }
        if (nlen == 0)
            return -1;
        long g;
        if (numeric) {
            g = 0;
            for (size_t k = start; k < start + nlen && g <= (long)ncap; k++)
                g = g * 10 + (tpl[k] - '0');
        } else {
            g = group_of_name(e, tpl + start, nlen, b ? ov : NULL);
            if (g < 0)
                return -1;
        }
        if (b && g <= (long)ncap && ov[2 * g] != PCRE2_UNSET)
            luaL_addlstring(b, subj + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    }
    return 0;
}

/*
 * ngx.re.sub / ngx.re.gsub(subject, regex, replace, options?): the new string
 * and the number of replacements, or nil, nil, error. replace is a template
 * string or a function given each match table and returning the replacement.
 */
static int re_substitute(lua_State *L, int global)
{
    lua_settop(L, 4);
    size_t len, tlen = 0;
    const char *subj = subject_arg(L, 1, &len);
    const char *tpl = NULL;
    int func = lua_isfunction(L, 3);
    if (!func)
        tpl = subject_arg(L, 3, &tlen);
    int flags;
    re_entry_t *e = re_get(L, 2, 4, &flags, func);
    if (e == NULL) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 3;
    }
    uint32_t ncap = flags & RE_DFA ? 0 : e->ncaptures;
    if (!func && template_walk(NULL, e, ncap, tpl, tlen, NULL, NULL) < 0) {
        lua_pushnil(L);
        lua_pushnil(L);
        lua_pushliteral(L, "failed to compile the replacement template");
        return 3;
    }
    PCRE2_SIZE small[2 * RE_SMALL_PAIRS];
    PCRE2_SIZE *ov = ovec_for(L, e, flags, small);

    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t pos = 0, copied = 0;
    int count = 0;
    while (pos <= len) {
        int rc = re_exec(L, e, flags, subj, len, pos, ov);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return push_exec_error(L, rc, 2);
        count++;
        PCRE2_SIZE start = ov[0], end = ov[1];
        luaL_addlstring(&b, subj + copied, start - copied);
        if (func) {
            lua_pushvalue(L, 3);
            push_captures(L, e, flags, subj, ov, 0);
            lua_call(L, 1, 1);
            if (!lua_isstring(L, -1)) {
                lua_getglobal(L, "tostring");
                lua_insert(L, -2);
                lua_call(L, 1, 1);
            }
            luaL_addvalue(&b);
        } else {
            template_walk(&b, e, ncap, tpl, tlen, subj, ov);
        }
        copied = end;
        pos = next_pos(e, subj, len, start, end);
        if (!global)
            break;
    }
    if (count == 0) {
        lua_pushvalue(L, 1);
        lua_pushinteger(L, 0);
        return 2;
    }
    luaL_addlstring(&b, subj + copied, len - copied);
    luaL_pushresult(&b);
    lua_pushinteger(L, count);
    return 2;
}

static int l_sub(lua_State *L)
{
    return re_substitute(L, 0);
}

static int l_gsub(lua_State *L)
{
    return re_substitute(L, 1);
}

/* The state behind the ngx.re table at re_index (an upvalue of its match). */
static re_state_t *state_behind(lua_State *L, int re_index)
{
    lua_getfield(L, re_index, "match");
    lua_getupvalue(L, -1, 1);
    re_state_t *st = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return st;
}

void rp_lua_re_set_cache_max(lua_State *L, int re_index, unsigned max)
{
    re_state_t *st = state_behind(L, re_index);
    st->max = max;
    while (st->count > max)
        cache_remove(st, st->lru.prev);
}

unsigned rp_lua_re_cache_count(lua_State *L, int re_index)
{
    return state_behind(L, re_index)->count;
}

void rp_lua_api_re(lua_State *L, rp_cycle_t *cycle)
{
    static const luaL_Reg fns[] = {
        {"match", l_match}, {"find", l_find}, {"gmatch", l_gmatch},
        {"sub", l_sub},     {"gsub", l_gsub}, {NULL, NULL},
    };

    if (luaL_newmetatable(L, HANDLE_NAME)) {
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, ITER_NAME)) {
        lua_pushcfunction(L, iter_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);

    lua_createtable(L, 0, 5); /* ngx.re */
    re_state_t *st = lua_newuserdata(L, sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->lru.next = st->lru.prev = &st->lru;
    st->max = RE_CACHE_MAX;
    st->buckets = calloc(RE_BUCKETS, sizeof(*st->buckets));
    if (st->buckets == NULL)
        luaL_error(L, "no memory");
    if (luaL_newmetatable(L, STATE_NAME)) {
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);

    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushvalue(L, -1);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -3, f->name);
    }
    lua_pop(L, 1);
    lua_setfield(L, -2, "re");
}
