/*
 * Server and location selection, and the path normalization they rely on.
 */
#include "route/route.h"
#include "http/variables.h"

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

rp_http_core_srv_conf_t *rp_route_server_match(const rp_http_addr_t *addr, const char *host,
                                               size_t len, const rp_server_name_t **matched)
{
    const rp_server_name_t *names = addr->names.elts;
    if (matched)
        *matched = NULL;
    const rp_server_name_t *best_head = NULL, *best_tail = NULL;

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
    for (size_t i = 0; i < addr->names.nelts; i++) {
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

enum { FOUND_NONE, FOUND_PREFIX, FOUND_FINAL };

static int find(rp_http_core_loc_conf_t *parent, const char *path, size_t len,
                rp_http_core_loc_conf_t **out)
{
    rp_http_core_loc_conf_t **v = parent->exact.elts;
    for (size_t i = 0; i < parent->exact.nelts; i++) {
        if (v[i]->name_len == len && memcmp(v[i]->name, path, len) == 0) {
            *out = v[i];
            return FOUND_FINAL;
        }
    }

    int rc = FOUND_NONE, noregex = 0;
    v = parent->prefix.elts;
    for (size_t i = 0; i < parent->prefix.nelts; i++) {
        if (v[i]->name_len <= len && memcmp(v[i]->name, path, v[i]->name_len) == 0) {
            *out = v[i];
            noregex = v[i]->kind == RP_LOC_PREFIX_NOREGEX;
            if (find(v[i], path, len, out) == FOUND_FINAL)
                return FOUND_FINAL;
            rc = FOUND_PREFIX;
            break; /* sorted longest first: the first match is the longest */
        }
    }

    if (!noregex) {
        v = parent->regex.elts;
        for (size_t i = 0; i < parent->regex.nelts; i++) {
            if (rp_regex_match(v[i]->re->re, path, len)) {
                *out = v[i];
                find(v[i], path, len, out);
                return FOUND_FINAL;
            }
        }
    }
    return rc;
}

rp_http_core_loc_conf_t *rp_route_location(rp_http_core_loc_conf_t *server_loc, const char *path,
                                           size_t len)
{
    rp_http_core_loc_conf_t *found = server_loc;
    find(server_loc, path, len, &found);
    return found;
}

const char *rp_route_add_location(rp_http_core_loc_conf_t *parent, rp_http_core_loc_conf_t *child)
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
    rp_http_core_loc_conf_t **v = list->elts;
    for (size_t i = 0; i < list->nelts; i++) {
        int same_kind = v[i]->kind == child->kind ||
                        (list == &parent->prefix); /* "/a" and "^~ /a" are the same prefix */
        if (same_kind && strcmp(v[i]->name, child->name) == 0)
            return "duplicate location";
    }
    *(rp_http_core_loc_conf_t **)rp_array_push(list) = child;
    child->parent = parent;
    return NULL;
}

static int by_length_desc(const void *a, const void *b)
{
    const rp_http_core_loc_conf_t *x = *(rp_http_core_loc_conf_t *const *)a;
    const rp_http_core_loc_conf_t *y = *(rp_http_core_loc_conf_t *const *)b;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? 1 : -1;
    return strcmp(x->name, y->name);
}

void rp_route_sort(rp_http_core_loc_conf_t *parent)
{
    qsort(parent->prefix.elts, parent->prefix.nelts, sizeof(void *), by_length_desc);
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
