/*
 * error_page's question for the proxies (error_page_module.c): whether an upstream's
 * answer with this status is replaced by the location's error page.
 */
#ifndef RP_ERROR_PAGE_H
#define RP_ERROR_PAGE_H

#include "http/request.h"

/* 1 when r's location has proxy_intercept_errors (grpc_intercept_errors for a
 * grpc_pass, grpc != 0) on and an error_page for status (>= 300): the proxy then drops
 * the upstream's head and body and answers with rp_http_send_error(r, status) (the
 * page, or rampart's plain one when no more page may be served, as nginx). */
int rp_http_error_page_intercept(rp_request_t *r, int status, int grpc);

/* For an intercepted answer's header field: as nginx, a 401's WWW-Authenticate stays
 * (copied), so the client still learns how to authenticate; the others go. */
void rp_http_error_page_keep_field(rp_request_t *r, int status, rp_str_t name, rp_str_t value);

#endif
