/*
 * Server and location selection, and the path normalization they rely on.
 */
#include "route/route.h"
#include "http/variables.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int rp_uri_normalize(const char *path, size_t len, char *out, size_t *out_len, int merge_slashes)
{
    if (len == 0 || path[0] != '/')
        return -1;
    size_t o = 0;
    size_t i = 0;
    int dot_removed = 0; /* the last segment was "." or "..": its slash is already out */
    while (i < len) {
        unsigned char c = (unsigned char)path[i++];
        if (c == '%') {
            if (i + 2 > len)
                return -1;
            int h = hexval((unsigned char)path[i]), l = hexval((unsigned char)path[i + 1]);
            if (h < 0 || l < 0)
                return -1;
            c = (unsigned char)(h * 16 + l);
            if (c == 0)
                return -1;
            i += 2;
        }
        if (c == '/') {
            if ((merge_slashes || dot_removed) && o > 0 && out[o - 1] == '/') {
                dot_removed = 0;
                continue;
            }
            out[o++] = '/';
            continue;
        }
        dot_removed = 0;
        out[o++] = (char)c;
        /* A segment just ended or may end: resolve "." and ".." when the segment is complete. */
        int at_end = i >= len || path[i] == '/' ||
                     (path[i] == '%' && i + 2 < len && path[i + 1] == '2' &&
                      (path[i + 2] == 'f' || path[i + 2] == 'F'));
        if (!at_end)
            continue;
        if (o >= 2 && out[o - 1] == '.' && out[o - 2] == '/') {
            o -= 1; /* "/." -> "/" */
            dot_removed = 1;
        } else if (o >= 3 && out[o - 1] == '.' && out[o - 2] == '.' && out[o - 3] == '/') {
            if (o == 3)
                return -1; /* "/.." above the root */
            o -= 3;
            while (o > 0 && out[o - 1] != '/')
                o--;
            dot_removed = 1;
        }
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    *out_len = o;
    return 0;
}

int rp_host_normalize(const char *host, size_t len, char *out, size_t *out_len)
{
    size_t o = 0;
    int in_brackets = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c == '[' && i == 0) {
            in_brackets = 1;
        } else if (c == ']' && in_brackets) {
            in_brackets = 0;
            out[o++] = ']';
            if (i + 1 < len && host[i + 1] != ':')
                return -1;
            continue;
        } else if (c == ':' && !in_brackets) {
            /* port: digits only */
            for (size_t j = i + 1; j < len; j++)
                if (host[j] < '0' || host[j] > '9')
                    return -1;
            break;
        } else if (c == '/' || c == '\\' || c < 0x21 || c == 0x7f) {
            return -1;
        } else if (c == '.' && o > 0 && out[o - 1] == '.') {
            return -1; /* ".." */
        }
        out[o++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    if (in_brackets)
        return -1;
    if (o > 0 && out[o - 1] == '.')
        o--;
    if (o == 0 || out[0] == '.')
        return -1;
    out[o] = '\0';
    *out_len = o;
    return 0;
}

/* Exact names, "*.example.com" (as ".example.com") and "www.example.*" (as
 * "www.example.") in one open-addressing hash keyed by kind and name; regexes after,
 * in order, as nginx tries them. */
struct rp_route_names_s {
    const rp_server_name_t **slots;
    size_t mask;
    size_t regex_from; /* the first regex in addr->names */
    size_t nkind[RP_NAME_REGEX]; /* how many names of each hashed kind: a kind with none
                                  * costs no hashing per request */
};

static uint32_t hash_name(const char *s, size_t len);

static uint32_t name_key(int kind, const char *s, size_t len)
{
    return hash_name(s, len) ^ ((uint32_t)kind * 0x9e3779b9u);
}

static const rp_server_name_t *names_find(const struct rp_route_names_s *ix, int kind,
                                          const char *s, size_t len)
{
    for (size_t i = name_key(kind, s, len) & ix->mask;; i = (i + 1) & ix->mask) {
        const rp_server_name_t *n = ix->slots[i];
        if (n == NULL)
            return NULL;
        if (n->kind == kind && n->len == len && memcmp(n->name, s, len) == 0)
            return n;
    }
}

void rp_route_build_names(rp_arena_t *arena, rp_http_addr_t *addr)
{
    const rp_server_name_t *names = addr->names.elts;
    struct rp_route_names_s *ix = rp_arena_calloc(arena, sizeof(*ix));
    size_t slots = 4;
    while (slots < addr->names.nelts * 2)
        slots *= 2;
    ix->slots = rp_arena_calloc(arena, slots * sizeof(void *));
    ix->mask = slots - 1;
    ix->regex_from = addr->names.nelts;
    for (size_t i = 0; i < addr->names.nelts; i++) {
        const rp_server_name_t *n = &names[i];
        if (n->kind == RP_NAME_REGEX) {
            if (ix->regex_from > i)
                ix->regex_from = i;
            continue;
        }
        if (names_find(ix, n->kind, n->name, n->len))
            continue; /* the first of equal names counts, as in the linear search */
        ix->nkind[n->kind]++;
        size_t s = name_key(n->kind, n->name, n->len) & ix->mask;
        while (ix->slots[s])
            s = (s + 1) & ix->mask;
        ix->slots[s] = n;
    }
    addr->index = ix;
}

rp_http_core_srv_conf_t *rp_route_server_match(const rp_http_addr_t *addr, const char *host,
                                               size_t len, const rp_server_name_t **matched)
{
    const rp_server_name_t *names = addr->names.elts;
    if (matched)
        *matched = NULL;
    const rp_server_name_t *best_head = NULL, *best_tail = NULL;
    size_t regex_from = 0;

    if (addr->index) {
        const struct rp_route_names_s *ix = addr->index;
        const rp_server_name_t *n;
        if (ix->nkind[RP_NAME_EXACT] && (n = names_find(ix, RP_NAME_EXACT, host, len)))
            return n->server;
        /* the longest "*.rest" first: the leftmost dot with something before it */
        for (size_t i = 1; ix->nkind[RP_NAME_WILD_HEAD] && i < len; i++)
            if (host[i] == '.' && (n = names_find(ix, RP_NAME_WILD_HEAD, host + i, len - i)))
                return n->server;
        /* the longest "start.*": the rightmost dot with something after it */
        for (size_t i = len; ix->nkind[RP_NAME_WILD_TAIL] && i-- > 0;)
            if (i + 1 < len && host[i] == '.' &&
                (n = names_find(ix, RP_NAME_WILD_TAIL, host, i + 1)))
                return n->server;
        regex_from = ix->regex_from;
    } else {
        for (size_t i = 0; i < addr->names.nelts; i++) {
            const rp_server_name_t *n = &names[i];
            switch (n->kind) {
            case RP_NAME_EXACT:
                if (n->len == len && memcmp(n->name, host, len) == 0)
                    return n->server;
                break;
            case RP_NAME_WILD_HEAD: /* "*.example.com" stored as ".example.com" */
                if (len > n->len && memcmp(host + len - n->len, n->name, n->len) == 0 &&
                    (best_head == NULL || n->len > best_head->len))
                    best_head = n;
                break;
            case RP_NAME_WILD_TAIL: /* "www.example.*" stored as "www.example." */
                if (len > n->len && memcmp(host, n->name, n->len) == 0 &&
                    (best_tail == NULL || n->len > best_tail->len))
                    best_tail = n;
                break;
            }
        }
        if (best_head)
            return best_head->server;
        if (best_tail)
            return best_tail->server;
    }
    for (size_t i = regex_from; i < addr->names.nelts; i++) {
        if (names[i].kind == RP_NAME_REGEX && rp_regex_match(names[i].re->re, host, len)) {
            if (matched)
                *matched = &names[i];
            return names[i].server;
        }
    }
    return addr->default_server;
}

rp_http_core_srv_conf_t *rp_route_server(const rp_http_addr_t *addr, const char *host, size_t len)
{
    return rp_route_server_match(addr, host, len, NULL);
}

/* ---- locations ----
 *
 * Each level (a server, a location with nested ones) keeps its children compiled
 * at configuration time, so a lookup costs the same with 10 or 10,000 locations:
 * - exact names in an open-addressing hash;
 * - prefixes sorted bytewise, each knowing the longest other prefix it starts with
 *   ("up"): the longest prefix of a path is found by a binary search for the last
 *   prefix <= path, then by following "up" until one is a prefix of the path (every
 *   prefix of the path lies on that chain, so the first found is the longest);
 * - regexes in configuration order, each filed under the literal text its pattern
 *   starts with ("^/api/v1/users/" -> "/api/v1/users/"), in a table searched like the
 *   prefixes; patterns without one are always tried. Only the candidates are run, in
 *   configuration order, with PCRE2's JIT when the platform has it.
 */

typedef struct {
    const char *name;
    size_t len;
    int up;                         /* the longest entry this one starts with; -1 */
    rp_http_core_loc_conf_t *first; /* prefixes: the variants, by next_variant */
    unsigned *idx;                  /* regex literals: regex indexes, ascending */
    unsigned nidx;
} entry_t;

typedef struct {
    entry_t *v;
    size_t n;
    /* The entries from "from" on all start with "common" bytes (those the entry at
     * from and the last share); the ones before are prefixes of all the others ("/"). */
    size_t from, common;
} table_t;

struct rp_route_tree_s {
    rp_http_core_loc_conf_t **exact; /* hash slots: the first variant, or NULL */
    size_t exact_mask;               /* slots - 1; no slots when there is no exact */
    table_t prefix;
    rp_http_core_loc_conf_t **regex; /* configuration order */
    size_t nregex;
    table_t lit, ilit; /* literal starts of case-sensitive and caseless regexes */
    unsigned *always;  /* regexes without a literal start, ascending */
    size_t nalways;
};

enum { FOUND_NONE, FOUND_PREFIX, FOUND_FINAL };

/* Bytewise order of names, shorter first on a common start: the order of the tables. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static uint32_t hash_name(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The last entry <= path, or -1. A binary search that remembers how many bytes the
 * path shares with the bounds on either side: every entry between them shares at
 * least the smaller of the two, so each comparison starts there (the names of an API
 * share long starts, "/api/v1/svc", checked once for all). */
static int table_floor(const table_t *t, const char *path, size_t len)
{
    size_t lo = 0, hi = t->n, llcp = 0, rlcp = 0;
    if (t->n && t->common <= len && memcmp(t->v[t->n - 1].name, path, t->common) == 0) {
        /* One memcmp for what the entries share; those before "from" are prefixes of
         * that shared start, so of the path: <= path. */
        lo = t->from;
        llcp = rlcp = t->common;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const entry_t *e = &t->v[mid];
        size_t k = llcp < rlcp ? llcp : rlcp;
        size_t m = e->len < len ? e->len : len;
        while (k < m && e->name[k] == path[k])
            k++;
        int c = k < m ? (unsigned char)e->name[k] - (unsigned char)path[k]
                      : (e->len < len ? -1 : e->len > len);
        if (c <= 0) {
            lo = mid + 1;
            llcp = k;
        } else {
            hi = mid;
            rlcp = k;
        }
    }
    return (int)lo - 1;
}

/* The next entry, longest first, that path starts with: start with i = table_floor(),
 * then the previous answer's up. -1 when none is left. */
static int table_next(const table_t *t, int i, const char *path, size_t len)
{
    while (i >= 0 && !(t->v[i].len <= len && memcmp(t->v[i].name, path, t->v[i].len) == 0))
        i = t->v[i].up;
    return i;
}

static int accepts(rp_route_match_t *m, rp_http_core_loc_conf_t *loc)
{
    if (loc->match == NULL || m == NULL)
        return 1;
    int rc = m->check(m->arg, loc, m->ignore_method);
    if (rc == RP_ROUTE_REFUSE_METHOD)
        m->method_refused = 1;
    return rc == RP_ROUTE_ACCEPT;
}

static int regex_try(rp_route_match_t *m, rp_http_core_loc_conf_t *loc, const char *path,
                     size_t len, rp_http_core_loc_conf_t **out);

/* The candidates among the regexes (ascending indexes) into buf; -1 when there are
 * more than fit, or the path is too long to lowercase: then every regex is tried. */
static int regex_candidates(const struct rp_route_tree_s *t, const char *path, size_t len,
                            unsigned *buf, size_t cap)
{
    size_t n = 0;
    char low[2048];
    for (size_t i = 0; i < t->nalways && n < cap; i++)
        buf[n++] = t->always[i];
    if (n < t->nalways)
        return -1;
    const table_t *tabs[2] = {&t->lit, &t->ilit};
    for (int k = 0; k < 2; k++) {
        const table_t *tab = tabs[k];
        if (tab->n == 0)
            continue;
        const char *p = path;
        if (k == 1) {
            if (len > sizeof(low))
                return -1;
            for (size_t i = 0; i < len; i++)
                low[i] = (char)((path[i] >= 'A' && path[i] <= 'Z') ? path[i] + 32 : path[i]);
            p = low;
        }
        for (int i = table_next(tab, table_floor(tab, p, len), p, len); i >= 0;
             i = table_next(tab, tab->v[i].up, p, len)) {
            if (n + tab->v[i].nidx > cap)
                return -1;
            memcpy(buf + n, tab->v[i].idx, tab->v[i].nidx * sizeof(unsigned));
            n += tab->v[i].nidx;
        }
    }
    /* configuration order: insertion sort, the lists are short and mostly sorted */
    for (size_t i = 1; i < n; i++) {
        unsigned x = buf[i];
        size_t j = i;
        while (j > 0 && buf[j - 1] > x) {
            buf[j] = buf[j - 1];
            j--;
        }
        buf[j] = x;
    }
    return (int)n;
}

static int find(rp_http_core_loc_conf_t *parent, const char *path, size_t len,
                rp_http_core_loc_conf_t **out, rp_route_match_t *m)
{
    const struct rp_route_tree_s *t = parent->tree;
    if (t == NULL)
        return FOUND_NONE;

    if (t->exact_mask) {
        uint32_t h = hash_name(path, len);
        for (size_t s = h & t->exact_mask;; s = (s + 1) & t->exact_mask) {
            rp_http_core_loc_conf_t *e = t->exact[s];
            if (e == NULL)
                break;
            if (e->name_len == len && memcmp(e->name, path, len) == 0) {
                for (; e; e = e->next_variant) {
                    if (accepts(m, e)) {
                        *out = e;
                        return FOUND_FINAL;
                    }
                }
                break;
            }
        }
    }

    int rc = FOUND_NONE, noregex = 0;
    const table_t *pt = &t->prefix;
    /* the longest prefix first; one whose variants all refuse leaves the next shorter */
    for (int i = table_next(pt, table_floor(pt, path, len), path, len); i >= 0;
         i = table_next(pt, pt->v[i].up, path, len)) {
        rp_http_core_loc_conf_t *v = pt->v[i].first;
        while (v && !accepts(m, v))
            v = v->next_variant;
        if (v == NULL)
            continue;
        *out = v;
        noregex = v->kind == RP_LOC_PREFIX_NOREGEX;
        if (find(v, path, len, out, m) == FOUND_FINAL)
            return FOUND_FINAL;
        rc = FOUND_PREFIX;
        break;
    }

    if (!noregex && t->nregex) {
        unsigned buf[256];
        int n = regex_candidates(t, path, len, buf, sizeof(buf) / sizeof(buf[0]));
        if (n < 0) {
            for (size_t i = 0; i < t->nregex; i++)
                if (regex_try(m, t->regex[i], path, len, out))
                    return FOUND_FINAL;
        } else {
            for (int i = 0; i < n; i++)
                if (regex_try(m, t->regex[buf[i]], path, len, out))
                    return FOUND_FINAL;
        }
    }
    return rc;
}

static int regex_try(rp_route_match_t *m, rp_http_core_loc_conf_t *loc, const char *path,
                     size_t len, rp_http_core_loc_conf_t **out)
{
    if (!rp_regex_match(loc->re->re, path, len) || !accepts(m, loc))
        return 0;
    *out = loc;
    if (loc->tree) {
        find(loc, path, len, out, m);
        if (*out == loc) /* a nested regex that failed left its own ovector: redo ours */
            rp_regex_match(loc->re->re, path, len);
    }
    return 1;
}

rp_http_core_loc_conf_t *rp_route_location_match(rp_http_core_loc_conf_t *server_loc,
                                                 const char *path, size_t len, rp_route_match_t *m)
{
    rp_http_core_loc_conf_t *found = server_loc;
    find(server_loc, path, len, &found, m);
    return found;
}

rp_http_core_loc_conf_t *rp_route_location(rp_http_core_loc_conf_t *server_loc, const char *path,
                                           size_t len)
{
    return rp_route_location_match(server_loc, path, len, NULL);
}

void rp_route_add_location(rp_http_core_loc_conf_t *parent, rp_http_core_loc_conf_t *child)
{
    rp_array_t *list;
    switch (child->kind) {
    case RP_LOC_EXACT:
        list = &parent->exact;
        break;
    case RP_LOC_REGEX:
    case RP_LOC_REGEX_CASELESS:
        list = &parent->regex;
        break;
    default:
        list = &parent->prefix;
    }
    *(rp_http_core_loc_conf_t **)rp_array_push(list) = child;
    child->parent = parent;
    child->first_variant = child;
}

/* ---- building ---- */

typedef struct {
    rp_http_core_loc_conf_t *loc;
    size_t order;
} ordered_t;

static int by_name_then_order(const void *a, const void *b)
{
    const ordered_t *x = a, *y = b;
    int c = name_cmp(x->loc->name, x->loc->name_len, y->loc->name, y->loc->name_len);
    if (c == 0 && x->loc->re) /* regexes: "~" and "~*" of one pattern are not variants */
        c = x->loc->kind - y->loc->kind;
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int same_matchers(const rp_http_core_loc_conf_t *a, const rp_http_core_loc_conf_t *b)
{
    const char *x = a->match_key ? a->match_key : "", *y = b->match_key ? b->match_key : "";
    return strcmp(x, y) == 0;
}

/* Sorts list's locations by name (then kind for regexes, then configuration order)
 * into sorted, links the variants of each name and refuses duplicates. Returns the
 * number of distinct names, or -1 with the error in *err. */
static long group_variants(rp_conf_t *cf, rp_array_t *list, ordered_t *sorted, const char **err)
{
    rp_http_core_loc_conf_t **v = list->elts;
    for (size_t i = 0; i < list->nelts; i++)
        sorted[i] = (ordered_t){v[i], i};
    qsort(sorted, list->nelts, sizeof(*sorted), by_name_then_order);
    long groups = 0;
    for (size_t i = 0; i < list->nelts; i++) {
        rp_http_core_loc_conf_t *loc = sorted[i].loc;
        loc->first_variant = loc;
        loc->next_variant = NULL;
        if (i > 0) {
            rp_http_core_loc_conf_t *prev = sorted[i - 1].loc;
            int same = prev->name_len == loc->name_len &&
                       memcmp(prev->name, loc->name, loc->name_len) == 0 &&
                       (loc->re == NULL || prev->kind == loc->kind);
            if (same) {
                for (rp_http_core_loc_conf_t *o = prev->first_variant; o; o = o->next_variant) {
                    if (same_matchers(o, loc)) {
                        snprintf(cf->error, sizeof(cf->error),
                                 "%s:%u: \"location\": duplicate location \"%s\"", loc->file,
                                 loc->line, loc->name);
                        *err = RP_CONF_ERROR;
                        return -1;
                    }
                }
                loc->first_variant = prev->first_variant;
                prev->next_variant = loc;
                continue;
            }
        }
        groups++;
    }
    return groups;
}

/* Sets each entry's up: the longest entry that is a prefix of it (entries sorted). */
static void link_up(table_t *t)
{
    if (t->n) {
        const entry_t *b = &t->v[t->n - 1];
        size_t f = 0;
        while (f + 1 < t->n && t->v[f].len <= b->len &&
               memcmp(t->v[f].name, b->name, t->v[f].len) == 0)
            f++; /* a prefix of the last is a prefix of everything between */
        const entry_t *a = &t->v[f];
        t->from = f;
        size_t c = 0;
        while (c < a->len && c < b->len && a->name[c] == b->name[c])
            c++;
        t->common = c;
    }
    int *stack = malloc((t->n + 1) * sizeof(int)); /* configuration time */
    int depth = 0;
    if (stack == NULL)
        abort();
    for (size_t i = 0; i < t->n; i++) {
        entry_t *e = &t->v[i];
        while (depth > 0) {
            entry_t *top = &t->v[stack[depth - 1]];
            if (top->len <= e->len && memcmp(top->name, e->name, top->len) == 0)
                break;
            depth--;
        }
        e->up = depth > 0 ? stack[depth - 1] : -1;
        stack[depth++] = (int)i;
    }
    free(stack);
}

static int skip_escape_or_class(const char *p, size_t *i)
{
    if (p[*i] == '\\') {
        if (p[*i + 1] == 'Q')
            return -1; /* quoted text may hold anything: not read */
        if (p[*i + 1] != '\0')
            (*i)++;
        return 1;
    }
    if (p[*i] == '[') {
        size_t j = *i + 1;
        if (p[j] == '^')
            j++;
        if (p[j] == ']')
            j++;
        for (; p[j] && p[j] != ']'; j++) {
            if (p[j] == '\\' && p[j + 1])
                j++;
            else if (p[j] == '[' && p[j + 1] == ':')
                return -1;
        }
        if (p[j] == '\0')
            return -1;
        *i = j;
        return 1;
    }
    return 0;
}

size_t rp_regex_literal_prefix(const char *pattern, int caseless, char *out)
{
    if (pattern[0] != '^')
        return 0;
    /* an alternative at the top ("^/a|/b") would match without the start */
    int depth = 0;
    for (size_t i = 0; pattern[i]; i++) {
        int s = skip_escape_or_class(pattern, &i);
        if (s < 0)
            return 0;
        if (s > 0)
            continue;
        if (pattern[i] == '(')
            depth++;
        else if (pattern[i] == ')')
            depth--;
        else if (pattern[i] == '|' && depth <= 0)
            return 0;
    }
    size_t n = 0;
    for (size_t i = 1; pattern[i];) {
        unsigned char c = (unsigned char)pattern[i];
        size_t next;
        if (c == '\\') {
            unsigned char e = (unsigned char)pattern[i + 1];
            if (e == '\0' || e >= 0x80 || (e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') ||
                (e >= 'A' && e <= 'Z'))
                break; /* \d, \x2f, \Q, \1 ...: not one literal byte */
            c = e;
            next = i + 2;
        } else if (c >= 0x80 || c < 0x20 || strchr(".[]()*+?{}|^$#", c)) {
            break;
        } else {
            next = i + 1;
        }
        char q = pattern[next];
        if (q == '?' || q == '*' || q == '{')
            break; /* the byte is optional or repeated: the literal ends before it */
        if (caseless && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        out[n++] = (char)c;
        i = next;
        if (q == '+')
            break;
    }
    return n;
}

static int by_entry_name(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    return name_cmp(x->name, x->len, y->name, y->len);
}

/* Files the regexes under their literal starts. */
static void build_regex_filter(rp_arena_t *arena, struct rp_route_tree_s *t)
{
    entry_t *ents[2];
    size_t counts[2] = {0, 0};
    ents[0] = rp_arena_calloc(arena, (t->nregex + 1) * sizeof(entry_t));
    ents[1] = rp_arena_calloc(arena, (t->nregex + 1) * sizeof(entry_t));
    t->always = rp_arena_calloc(arena, (t->nregex + 1) * sizeof(unsigned));
    for (size_t i = 0; i < t->nregex; i++) {
        rp_http_core_loc_conf_t *loc = t->regex[i];
        int caseless = loc->kind == RP_LOC_REGEX_CASELESS;
        char *lit = rp_arena_alloc(arena, loc->name_len + 1);
        size_t n = rp_regex_literal_prefix(loc->name, caseless, lit);
        if (n == 0) {
            t->always[t->nalways++] = (unsigned)i;
            continue;
        }
        entry_t *e = &ents[caseless][counts[caseless]++];
        e->name = lit;
        e->len = n;
        e->idx = rp_arena_alloc(arena, sizeof(unsigned));
        e->idx[0] = (unsigned)i;
        e->nidx = 1;
    }
    table_t *tabs[2] = {&t->lit, &t->ilit};
    for (int k = 0; k < 2; k++) {
        entry_t *e = ents[k];
        size_t n = counts[k];
        /* stable by regex index: merge equal literals into one entry, indexes ascending */
        qsort(e, n, sizeof(*e), by_entry_name);
        size_t out = 0;
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && e[j].len == e[i].len && memcmp(e[j].name, e[i].name, e[i].len) == 0)
                j++;
            entry_t merged = e[i];
            merged.nidx = (unsigned)(j - i);
            merged.idx = rp_arena_alloc(arena, merged.nidx * sizeof(unsigned));
            for (size_t k2 = i; k2 < j; k2++)
                merged.idx[k2 - i] = e[k2].idx[0];
            for (size_t a = 1; a < merged.nidx; a++) { /* qsort is not stable */
                unsigned x = merged.idx[a];
                size_t b = a;
                while (b > 0 && merged.idx[b - 1] > x) {
                    merged.idx[b] = merged.idx[b - 1];
                    b--;
                }
                merged.idx[b] = x;
            }
            e[out++] = merged;
            i = j;
        }
        tabs[k]->v = e;
        tabs[k]->n = out;
        link_up(tabs[k]);
    }
}

const char *rp_route_build(rp_conf_t *cf, rp_http_core_loc_conf_t *parent)
{
    size_t total = parent->exact.nelts + parent->prefix.nelts + parent->regex.nelts;
    if (total == 0)
        return RP_CONF_OK;
    rp_arena_t *arena = cf->arena;
    struct rp_route_tree_s *t = rp_arena_calloc(arena, sizeof(*t));
    ordered_t *sorted = rp_arena_alloc(arena, (total + 1) * sizeof(ordered_t));
    const char *err = NULL;

    /* exact names */
    long groups = group_variants(cf, &parent->exact, sorted, &err);
    if (groups < 0)
        return err;
    if (groups > 0) {
        size_t slots = 4;
        while (slots < (size_t)groups * 2)
            slots *= 2;
        t->exact = rp_arena_calloc(arena, slots * sizeof(void *));
        t->exact_mask = slots - 1;
        for (size_t i = 0; i < parent->exact.nelts; i++) {
            rp_http_core_loc_conf_t *loc = sorted[i].loc;
            if (loc->first_variant != loc)
                continue;
            size_t s = hash_name(loc->name, loc->name_len) & t->exact_mask;
            while (t->exact[s])
                s = (s + 1) & t->exact_mask;
            t->exact[s] = loc;
        }
    }

    /* prefixes: "/a" and "^~ /a" are variants of one path */
    groups = group_variants(cf, &parent->prefix, sorted, &err);
    if (groups < 0)
        return err;
    t->prefix.v = rp_arena_calloc(arena, ((size_t)groups + 1) * sizeof(entry_t));
    for (size_t i = 0; i < parent->prefix.nelts; i++) {
        rp_http_core_loc_conf_t *loc = sorted[i].loc;
        if (loc->first_variant != loc)
            continue;
        entry_t *e = &t->prefix.v[t->prefix.n++];
        e->name = loc->name;
        e->len = loc->name_len;
        e->first = loc;
    }
    link_up(&t->prefix);

    /* regexes: the variants are linked for 405's Allow; the search runs them in order */
    if (group_variants(cf, &parent->regex, sorted, &err) < 0)
        return err;
    t->regex = parent->regex.elts;
    t->nregex = parent->regex.nelts;
    build_regex_filter(arena, t);
    parent->tree = t;
    return RP_CONF_OK;
}

static void free_code(void *p)
{
    pcre2_code_free(p);
}

pcre2_code *rp_regex_compile(rp_arena_t *arena, const char *pattern, int caseless, char *err,
                             size_t errlen)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   caseless ? PCRE2_CASELESS : 0, &code, &off, NULL);
    if (re == NULL) {
        char msg[256];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        snprintf(err, errlen, "invalid regex \"%s\": %s at offset %zu", pattern, msg, (size_t)off);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* best effort: the interpreter is the fallback */
    rp_arena_cleanup(arena, free_code, re);
    return re;
}

#define MAX_PAIRS 32

static pcre2_match_data *md;
static unsigned last_pairs;

int rp_regex_match(pcre2_code *re, const char *subject, size_t len)
{
    if (md == NULL)
        md = pcre2_match_data_create(MAX_PAIRS, NULL);
    int rc = pcre2_match(re, (PCRE2_SPTR)subject, len, 0, 0, md, NULL);
    if (rc < 0)
        return 0;
    last_pairs = rc == 0 ? MAX_PAIRS : (unsigned)rc; /* 0: more groups than pairs kept */
    return (int)last_pairs;
}

const size_t *rp_regex_ovector(void)
{
    return md ? pcre2_get_ovector_pointer(md) : NULL;
}

unsigned rp_regex_pairs(void)
{
    return last_pairs;
}
