/*
 * nginx's connection limits (limit_conn_zone, limit_conn, limit_conn_status,
 * limit_conn_log_level, limit_conn_dry_run, $limit_conn_status): limit_conn_module.c.
 */
#ifndef RP_LIMIT_CONN_H
#define RP_LIMIT_CONN_H

#include "conf/conf.h"

extern rp_module_t rp_limit_conn_module;

#endif
