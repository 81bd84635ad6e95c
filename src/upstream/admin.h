/*
 * The admin API's overrides (admin_store.c): what an operator changed about a peer at
 * run time (its administrative state, its weight), kept in a shared-memory zone of
 * their own, keyed by upstream name and peer address, so that they hold across reloads
 * until cleared. The peer table (peers.h) is what the balancers read; this record is
 * what a new configuration generation applies to its peers before its workers start,
 * and what it forgets for peers it no longer has.
 */
#ifndef RP_UPSTREAM_ADMIN_H
#define RP_UPSTREAM_ADMIN_H

#include "conf/conf.h"

#include <stdint.h>

typedef struct rp_shm_zone_s rp_shm_zone_t;

typedef struct {
    int state;      /* RP_PEER_DOWN or RP_PEER_DRAINING; -1: not overridden */
    int64_t weight; /* the run-time weight; 0: not overridden */
    int64_t since;  /* ms (wall clock): when it was last changed */
} rp_admin_override_t;

/* Declares the overrides zone for the configuration being read (its http block). */
rp_shm_zone_t *rp_admin_store_declare(rp_conf_t *cf);

/* The override of (ups, peer): 1 and *out, or 0 when there is none. */
int rp_admin_store_get(rp_shm_zone_t *z, const char *ups, const char *peer,
                       rp_admin_override_t *out);

/* Records o for (ups, peer); one that overrides nothing (state -1, weight 0) deletes the
 * record. 0, or -1 when the zone is full or the names too long. */
int rp_admin_store_set(rp_shm_zone_t *z, const char *ups, const char *peer,
                       const rp_admin_override_t *o);

/*
 * In the master, once cycle's zones are mapped (before its workers fork): applies each
 * record to the peer it names in cycle's upstreams (state and weight into the shared
 * peer table), and deletes the records of peers cycle no longer has, giving their
 * entries (which prev may still use) their configured state back, so that a peer
 * removed and later added again starts afresh.
 */
void rp_admin_store_apply(rp_shm_zone_t *z, rp_cycle_t *cycle, const rp_cycle_t *prev);

/* The module: admin_api, admin_api_token (admin_api.c). */
extern rp_module_t rp_admin_api_module;

#endif
