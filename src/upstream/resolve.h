/*
 * Run-time resolution of the names of `server NAME resolve` lines: the `resolver`
 * and `resolver_timeout` settings (resolve_module.c reads them) and the resolver
 * that asks the configured name servers, follows each answer's TTL and publishes
 * the addresses into the peer table (resolve.c). It runs once per node: in the
 * helper process, or in the single process with `master_process off`.
 */
#ifndef RP_RESOLVE_H
#define RP_RESOLVE_H

#include "upstream/upstream.h"

#include <stdint.h>
#include <sys/socket.h>

/* A `resolver` line: the name servers to ask, and how. */
typedef struct {
    struct sockaddr_storage *addrs;
    socklen_t *lens;
    unsigned naddrs;
    int64_t valid;     /* ms an answer is kept (valid=); 0: its TTL */
    unsigned ipv4 : 1; /* ask for A records (ipv4=, on by default) */
    unsigned ipv6 : 1; /* ask for AAAA records (ipv6=, on by default) */
    const char *file;  /* where it was set */
    unsigned line;
} rp_resolver_t;

/* The settings of one level (http, server, location or upstream). */
typedef struct {
    rp_resolver_t *resolver; /* RP_CONF_UNSET_PTR until a level sets it */
    int64_t timeout;         /* resolver_timeout; RP_CONF_UNSET_MSEC until set */
} rp_resolver_conf_t;

#define RP_RESOLVER_TIMEOUT 30000 /* nginx's resolver_timeout */

/* One name to keep resolved: u's resolve line `line`, with the resolver in effect for it. */
typedef struct {
    rp_upstream_conf_t *u;
    unsigned line;
    const rp_resolver_t *resolver;
    int64_t timeout; /* ms */
} rp_resolve_target_t;

extern rp_module_t rp_resolve_module;

typedef struct rp_resolve_runtime_s rp_resolve_runtime_t;

/*
 * Starts resolving targets (n of them, living as long as the configuration) in this
 * process's event loop (rp_event_base): each name is asked at once, then again when
 * its answer's TTL (or valid=) runs out, and after a failure with a growing delay.
 * The addresses each name had in shared memory stay until an answer replaces them.
 * Returns NULL when a resolver cannot be set up (logged).
 */
rp_resolve_runtime_t *rp_resolve_start(const rp_resolve_target_t *targets, unsigned n);

/* Stops asking (the loop goes on: a configuration replaced in the single process); the
 * memory goes once the queries still out have been called back. */
void rp_resolve_stop(rp_resolve_runtime_t *rt);

/* Frees every runtime of the process at once: it is exiting and its loop will not run
 * again. */
void rp_resolve_free_all(void);

#endif
