/*
 * Routing: which server answers a Host, which location answers a path, and the
 * path normalization that must happen before either (so "/a/%2e%2e/admin" cannot
 * slip past "location /admin"). Pure functions over configuration data: no
 * sockets, no request object, so they are unit-tested directly.
 */
#ifndef RP_ROUTE_H
#define RP_ROUTE_H

#include "http/http.h"

#include <stddef.h>

/*
 * Decodes %XX escapes in path[0..len), resolves "." and ".." segments and, with
 * merge_slashes, collapses runs of "/". out must hold len + 1 bytes. Returns 0
 * and sets *out_len, or -1 for a path a client must not send (not starting with
 * "/", a bad or NUL escape, ".." above the root).
 */
int rp_uri_normalize(const char *path, size_t len, char *out, size_t *out_len, int merge_slashes);

/*
 * Lowercases and validates a Host value into out (len + 1 bytes), dropping the
 * port and a trailing dot. Returns 0, or -1 when the host is malformed.
 */
int rp_host_normalize(const char *host, size_t len, char *out, size_t *out_len);

/* Hashes addr's exact and wildcard names, so that choosing a server costs the same
 * with 10 or 10,000 names; call once its names are complete and ordered. */
void rp_route_build_names(rp_arena_t *arena, rp_http_addr_t *addr);

/* Chooses the server for a normalized host; the address's default when none matches. */
rp_http_core_srv_conf_t *rp_route_server(const rp_http_addr_t *addr, const char *host,
                                         size_t len);

/* The same, and the name that matched (NULL for the default server); after a regex name
 * matched, rp_regex_ovector() holds its captures. */
rp_http_core_srv_conf_t *rp_route_server_match(const rp_http_addr_t *addr, const char *host,
                                               size_t len, const rp_server_name_t **matched);

/*
 * Chooses the location for a normalized path inside a server, with nginx's
 * precedence: "=" exact, then the longest prefix ("^~" stops there), its nested
 * locations, then regexes in order; the longest prefix if no regex matched. Returns
 * the server's own location when nothing matched. When a regex location is returned,
 * rp_regex_ovector() holds its captures. Locations with matchers are taken as
 * accepting every request.
 */
rp_http_core_loc_conf_t *rp_route_location(rp_http_core_loc_conf_t *server_loc, const char *path,
                                           size_t len);

/* What a location's request matchers (match_method, match_header, match_arg) say. */
enum { RP_ROUTE_REFUSE = 0, RP_ROUTE_ACCEPT = 1, RP_ROUTE_REFUSE_METHOD = 2 };

typedef struct {
    /* RP_ROUTE_ACCEPT when loc's matchers hold for the request; with ignore_method,
     * the method matcher is not consulted. Called only for locations with matchers. */
    int (*check)(void *arg, const rp_http_core_loc_conf_t *loc, int ignore_method);
    void *arg;
    int ignore_method;
    int method_refused; /* out: some location was refused for its method alone */
} rp_route_match_t;

/*
 * The same search where a location whose matchers refuse the request counts as if
 * its path had not matched: the search goes on with the same path's other variants
 * in configuration order, then with what the precedence would choose next.
 */
rp_http_core_loc_conf_t *rp_route_location_match(rp_http_core_loc_conf_t *server_loc,
                                                 const char *path, size_t len,
                                                 rp_route_match_t *m);

/* Adds child under parent's location lists, in configuration order. */
void rp_route_add_location(rp_http_core_loc_conf_t *parent, rp_http_core_loc_conf_t *child);

/*
 * Compiles parent's child locations for lookup once all are added and their matchers
 * parsed: a hash of exact names, the prefixes sorted for binary search, the regexes
 * filtered by the literal text their pattern starts with. Links the variants of a
 * path; refuses (cf->error naming its file:line) a duplicate location, one
 * with the same kind, path and matchers as an earlier one.
 */
const char *rp_route_build(rp_conf_t *cf, rp_http_core_loc_conf_t *parent);

/* The literal text every match of an anchored pattern ("^/api/v1/x") starts with, for
 * the regex prefilter: its length (0: none can be read) and the text in out (as long
 * as pattern). Exposed for the unit tests. */
size_t rp_regex_literal_prefix(const char *pattern, int caseless, char *out);

/* Compiles a regex for a location or server name; returns NULL and sets err on failure. */
pcre2_code *rp_regex_compile(rp_arena_t *arena, const char *pattern, int caseless, char *err,
                             size_t errlen);

/* Whether subject matches re: the number of capture pairs set (> 0), or 0. The match
 * data is per process: rp_regex_ovector() and rp_regex_pairs() describe the last match
 * until the next call. */
int rp_regex_match(pcre2_code *re, const char *subject, size_t len);
const size_t *rp_regex_ovector(void);
unsigned rp_regex_pairs(void);

#endif
