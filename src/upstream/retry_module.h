/*
 * The retry policy of a request's location (retry_module.c).
 */
#ifndef RP_RETRY_MODULE_H
#define RP_RETRY_MODULE_H

#include "http/request.h"
#include "upstream/retry.h"

extern rp_module_t rp_retry_module;

const rp_retry_conf_t *rp_retry_conf(rp_request_t *r);

#endif
