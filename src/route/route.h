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
 * rp_regex_ovector() holds its captures.
 */
rp_http_core_loc_conf_t *rp_route_location(rp_http_core_loc_conf_t *server_loc, const char *path,
                                           size_t len);

/*
 * Adds child under parent's location lists. Returns NULL or an error message
 * (duplicate location).
 */
const char *rp_route_add_location(rp_http_core_loc_conf_t *parent, rp_http_core_loc_conf_t *child);

/* Sorts parent's prefix locations, longest first; call once all are added. */
void rp_route_sort(rp_http_core_loc_conf_t *parent);

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
