/*
 * Upstream pools as configured: `upstream NAME { server ...; }`. This issue's
 * scope is the configuration model (parsing, validation, lookup by name); the
 * balancer, keep-alive pool and health state build on these structures.
 */
#ifndef RP_UPSTREAM_H
#define RP_UPSTREAM_H

#include "conf/conf.h"

#include <stdint.h>
#include <sys/socket.h>

typedef struct {
    char *name; /* as written: "10.0.0.1:8080", "backend.local:80" */
    struct sockaddr_storage sa;
    socklen_t socklen;
    int weight;
    int max_conns;
    int max_fails;
    int64_t fail_timeout;
    unsigned backup : 1;
    unsigned down : 1;
    const char *file;
    unsigned line;
} rp_upstream_server_t;

typedef struct {
    char *name;
    const char *file;
    unsigned line;
    rp_array_t servers; /* rp_upstream_server_t */
} rp_upstream_conf_t;

typedef struct {
    rp_array_t upstreams; /* rp_upstream_conf_t * */
} rp_upstream_main_conf_t;

/* Finds an upstream block by name in the http block being configured; NULL if none. */
rp_upstream_conf_t *rp_upstream_find(rp_conf_t *cf, const char *name);

#endif
