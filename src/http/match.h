/*
 * Location request matchers (match_method, match_header, match_arg): see
 * match_module.c.
 */
#ifndef RP_HTTP_MATCH_H
#define RP_HTTP_MATCH_H

#include "http/request.h"

/*
 * The location for r's URI in server_loc, its matchers counted. NULL when the path
 * matched a location refused only for its method, and no variant of that path took
 * the method: the answer is 405, the Allow header is added and r's location set to
 * the refused one.
 */
rp_http_core_loc_conf_t *rp_http_match_location(rp_request_t *r,
                                                rp_http_core_loc_conf_t *server_loc);

extern rp_module_t rp_http_match_module;

#endif
