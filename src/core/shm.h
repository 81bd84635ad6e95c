/*
 * Shared memory zones: named, fixed-size blocks of memory that every worker of a
 * generation sees at the same address. A directive registers a zone while the
 * configuration is parsed (nothing is mapped then, so `rampart -t` maps nothing);
 * the master maps the zones of a generation before forking its workers. A reload
 * keeps a zone whose name, size, user and layout version are unchanged, so what it
 * holds (TLS sessions, counters) survives; a zone is unmapped when the last
 * generation using it has ended. Each zone carries a process-shared lock for
 * short operations.
 *
 * What a zone holds is built with the toolkit beside this file: a slab allocator
 * (shm_slab.h), a hash table with expiry and LRU eviction on it (shm_hash.h), and
 * counters updated with atomics outside the lock (shm_counter.h).
 */
#ifndef RP_SHM_H
#define RP_SHM_H

#include "conf/conf.h"

#include <stddef.h>

typedef struct rp_shm_zone_s rp_shm_zone_t;
typedef struct rp_shm_seg_s rp_shm_seg_t;

/*
 * Lays out the memory of a zone: a new one (reused 0, zero-filled) or one kept from
 * the previous generation (reused 1), which the callback may check and keep or lay
 * out afresh. Returns 0, or -1 with a message in err.
 */
typedef int (*rp_shm_init_pt)(rp_shm_zone_t *zone, int reused, char *err, size_t errlen);

struct rp_shm_zone_s {
    const char *name;
    size_t size;      /* as configured: the whole mapping, the zone's lock included */
    const char *tag;  /* its user ("ssl_session_cache"): users never share a zone's memory */
    unsigned version; /* of the user's layout of the memory: a reload keeps a zone only
                       * when it is unchanged */
    const char *file; /* where it was first declared, for messages */
    unsigned line;
    rp_shm_init_pt init;
    void *data; /* the user's */

    /* Set once the zone is mapped (rp_shm_open): the bytes the user may lay out. */
    void *addr;
    size_t avail;
    rp_shm_seg_t *seg;
    int owner_died; /* this process found the lock abandoned: logged at unlock */
};

/*
 * Declares (or finds) zone name for the directive being parsed. The same name may be
 * declared again with the same size by the same user, and then is the same zone.
 * Returns NULL after formatting an error into cf->error (RP_CONF_ERROR style) when
 * the name is taken by another user or declared with another size.
 */
rp_shm_zone_t *rp_shm_zone_add(rp_conf_t *cf, const char *name, size_t size, const char *tag,
                               rp_shm_init_pt init);

/*
 * As rp_shm_zone_add, for a user that versions the layout of its memory: raise
 * version whenever the code lays the zone out differently (or the configuration
 * does, if it shapes the layout). A zone kept from a generation that recorded
 * another version is not shared but mapped anew, empty, and a notice says so: the
 * old workers go on reading the old layout in the old memory. rp_shm_zone_add
 * declares version 0. Declaring one name with two versions is an error.
 */
rp_shm_zone_t *rp_shm_zone_add_versioned(rp_conf_t *cf, const char *name, size_t size,
                                         const char *tag, unsigned version, rp_shm_init_pt init);

/*
 * Maps every zone of cycle, in the process that will fork its workers. A zone that
 * prev (the generation being replaced, or NULL) has with the same name, size, user
 * and layout version is shared, not copied. Returns 0, or -1 with a message in err;
 * what was mapped is released when the cycle is destroyed either way.
 */
int rp_shm_open(rp_cycle_t *cycle, const rp_cycle_t *prev, char *err, size_t errlen);

/*
 * The binary upgrade. rp_shm_export writes this master's segments as
 * "fd:address:name:tag;..." (name and tag in hex) into buf (cap bytes) and their
 * descriptors into fds; their number, or -1 when either is too small.
 * rp_shm_inherit, in the new master before anything else is mapped, maps each
 * segment named in value at its old address; rp_shm_open then gives it to the zone
 * of the same name, user, size and layout version, and drops those left over.
 */
int rp_shm_export(char *buf, size_t cap, int *fds, int maxfds);
void rp_shm_inherit(const char *value);

/* In a child after fork: unmaps the zones inherited from other generations than cycle. */
void rp_shm_keep_only(const rp_cycle_t *cycle);

/*
 * Takes the zone's lock. Returns 0, or 1 when the process that held it died holding
 * it: the zone may then be half-updated, and the caller must repair or reset it
 * before unlocking. Hold it for a few memory operations only, never across a system
 * call or an allocation.
 *
 * The lock is a futex: taking it when nobody holds it, and releasing it when nobody
 * waits, is one atomic instruction in this process and no system call (the robust
 * list the kernel walks when a thread dies is registered once per thread, by the C
 * library). Only a process that finds it taken sleeps in the kernel, and only the
 * release that has a sleeper to wake calls it.
 */
int rp_shm_lock(rp_shm_zone_t *zone);

void rp_shm_unlock(rp_shm_zone_t *zone);

/* Writes a size as a configuration would ("16k", "1m", "2g", "1000"). */
const char *rp_shm_size_text(size_t size, char *buf, size_t len);

/* The module that maps a generation's zones (init_master) and, in a child, lets go of
 * the other generations' (init_worker, init_helper). */
extern rp_module_t rp_shm_module;

#endif
