/*
 * What the static module shares with try_files (try_files_module.c): where a URI
 * lies on disk for a request's location (root or alias), and whether the location
 * serves files at all.
 */
#ifndef RP_STATIC_H
#define RP_STATIC_H

#include "http/request.h"

extern rp_module_t rp_http_static_module;
extern rp_module_t rp_http_try_files_module;

/* Whether r's location serves files: root, alias, index or try_files is set for it. */
int rp_http_static_enabled(rp_request_t *r);

/* Marks r's location as one that serves files (try_files does). */
void rp_http_static_enable(void *static_loc_conf);

/*
 * The file path of uri in r's location, NUL-terminated in r's arena; *root_len is the
 * length of its root part (the path is root + the URI's part). With alias, the
 * location's prefix is replaced; in a regex location whose alias has captures the
 * alias alone is the path (try_files then appends the tested name).
 */
rp_str_t rp_http_static_map(rp_request_t *r, rp_str_t uri, size_t *root_len);

/* Whether the alias of r's location is a whole path (a regex location with captures). */
int rp_http_static_whole_alias(rp_request_t *r);

/* try_files found r's file under such an alias: from now on the path is alias + URI, as
 * nginx's add_uri_to_alias. */
void rp_http_static_add_uri_to_alias(rp_request_t *r);

#endif
