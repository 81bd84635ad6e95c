/*
 * error_log in http, server and location (http/error_log.c): a request's own logs.
 */
#ifndef RP_HTTP_ERROR_LOG_H
#define RP_HTTP_ERROR_LOG_H

#include "core/log.h"
#include "conf/conf.h"

struct rp_request_s;

/* The logs of r's location (NULL: the main log); what rp_log_enter makes current. */
const rp_log_t *rp_http_error_log(const struct rp_request_s *r);

/* Makes r's logs current while its work runs; rp_log_leave(saved) after. */
static inline const rp_log_t *rp_log_enter(const struct rp_request_s *r)
{
    return rp_log_switch(rp_http_error_log(r));
}

extern rp_module_t rp_http_error_log_module;

#endif
