/*
 * The admin API's overrides in shared memory (admin.h).
 *
 * Why a record of its own, beside the peer table that already holds the state and
 * weight every worker reads: the peer table's entries live as long as some
 * configuration uses them (and two generations more), and a zone whose size or layout
 * changes starts empty. An operator's "drain this peer" must outlive both, and must end
 * when the peer leaves the configuration (a peer removed, then added back a reload
 * later, is a new peer). So the operator's intent is kept here, and each generation
 * applies it to its own peers in the master before its workers fork.
 *
 * The zone holds a fixed array of records (an operator overrides a few peers, not
 * thousands), scanned under the zone's lock: the admin API is not a hot path. A record
 * is keyed by "UPSTREAM\0PEER" (the peer's address as the peer table names it).
 */
#include "upstream/admin.h"
#include "upstream/peers.h"
#include "upstream/upstream.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/shm.h"
#include "http/http.h"

#include <stdio.h>
#include <string.h>

#define ZONE_NAME    "rampart_admin"
#define ZONE_TAG     "admin_api"
#define ZONE_VERSION 1
#define ZONE_SIZE    (256u << 10)
#define MAGIC        0x61646d31u /* "adm1" */
#define KEY_MAX      320

typedef struct {
    uint32_t used;
    int32_t state;
    int64_t weight;
    int64_t since;
    uint32_t key_len;
    char key[KEY_MAX];
} record_t;

typedef struct {
    uint32_t magic;
    uint32_t cap;
    record_t rec[];
} store_t;

static int zone_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    store_t *st = z->addr;
    if (z->avail < sizeof(store_t) + sizeof(record_t)) {
        snprintf(err, errlen, "zone \"%s\" is too small", z->name);
        return -1;
    }
    uint32_t cap = (uint32_t)((z->avail - sizeof(store_t)) / sizeof(record_t));
    if (reused && st->magic == MAGIC && st->cap == cap)
        return 0;
    memset(z->addr, 0, z->avail);
    st->magic = MAGIC;
    st->cap = cap;
    return 0;
}

rp_shm_zone_t *rp_admin_store_declare(rp_conf_t *cf)
{
    return rp_shm_zone_add_versioned(cf, ZONE_NAME, ZONE_SIZE, ZONE_TAG, ZONE_VERSION, zone_init);
}

static size_t make_key(char *key, const char *ups, const char *peer)
{
    size_t a = strlen(ups), b = strlen(peer);
    if (a + 1 + b > KEY_MAX)
        return 0;
    memcpy(key, ups, a);
    key[a] = '\0';
    memcpy(key + a + 1, peer, b);
    return a + 1 + b;
}

static record_t *find_locked(store_t *st, const char *key, size_t len)
{
    for (uint32_t i = 0; i < st->cap; i++)
        if (st->rec[i].used && st->rec[i].key_len == len && memcmp(st->rec[i].key, key, len) == 0)
            return &st->rec[i];
    return NULL;
}

static int lock(rp_shm_zone_t *z)
{
    store_t *st = z->addr;
    if (rp_shm_lock(z) == 1 || st->magic != MAGIC) {
        /* the holder died mid-update: a record may be half written; start afresh */
        rp_log_error(RP_LOG_ALERT, 0, "admin overrides in zone \"%s\" were damaged: cleared",
                     z->name);
        uint32_t cap = (uint32_t)((z->avail - sizeof(store_t)) / sizeof(record_t));
        memset(z->addr, 0, z->avail);
        st->magic = MAGIC;
        st->cap = cap;
    }
    return 0;
}

int rp_admin_store_get(rp_shm_zone_t *z, const char *ups, const char *peer,
                       rp_admin_override_t *out)
{
    char key[KEY_MAX];
    size_t len = make_key(key, ups, peer);
    if (z == NULL || z->addr == NULL || len == 0)
        return 0;
    lock(z);
    record_t *rec = find_locked(z->addr, key, len);
    if (rec) {
        out->state = rec->state;
        out->weight = rec->weight;
        out->since = rec->since;
    }
    rp_shm_unlock(z);
    return rec != NULL;
}

int rp_admin_store_set(rp_shm_zone_t *z, const char *ups, const char *peer,
                       const rp_admin_override_t *o)
{
    char key[KEY_MAX];
    size_t len = make_key(key, ups, peer);
    if (z == NULL || z->addr == NULL || len == 0)
        return -1;
    int empty = o->state < 0 && o->weight <= 0;
    lock(z);
    store_t *st = z->addr;
    record_t *rec = find_locked(st, key, len);
    for (uint32_t i = 0; rec == NULL && !empty && i < st->cap; i++)
        if (!st->rec[i].used)
            rec = &st->rec[i];
    int rc = 0;
    if (rec == NULL) {
        rc = empty ? 0 : -1;
    } else if (empty) {
        memset(rec, 0, sizeof(*rec));
    } else {
        rec->state = o->state;
        rec->weight = o->weight;
        rec->since = o->since;
        rec->key_len = (uint32_t)len;
        memcpy(rec->key, key, len);
        rec->used = 1;
    }
    rp_shm_unlock(z);
    return rc;
}

/* The upstream block named name in cycle (NULL: none, or cycle has no http block). */
static rp_upstream_conf_t *find_upstream(const rp_cycle_t *cycle, const char *name)
{
    rp_upstream_main_conf_t *um = cycle ? rp_http_main_conf(cycle, &rp_upstream_module) : NULL;
    if (um == NULL)
        return NULL;
    rp_upstream_conf_t **v = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++)
        if (!v[i]->implicit && strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static rp_upstream_server_t *find_server(rp_upstream_conf_t *u, const char *name)
{
    rp_upstream_server_t *srv = u ? u->servers.elts : NULL;
    for (size_t i = 0; u && i < u->servers.nelts; i++)
        if (strcmp(srv[i].name, name) == 0 && srv[i].sh)
            return &srv[i];
    return NULL;
}

void rp_admin_store_apply(rp_shm_zone_t *z, rp_cycle_t *cycle, const rp_cycle_t *prev)
{
    if (z == NULL || z->addr == NULL)
        return;
    lock(z);
    store_t *st = z->addr;
    for (uint32_t i = 0; i < st->cap; i++) {
        record_t *rec = &st->rec[i];
        if (!rec->used)
            continue;
        if (rec->key_len > KEY_MAX) {
            memset(rec, 0, sizeof(*rec));
            continue;
        }
        char key[KEY_MAX + 1];
        memcpy(key, rec->key, rec->key_len);
        key[rec->key_len] = '\0';
        const char *ups = key, *peer = key + strlen(key) + 1;
        if (peer > key + rec->key_len) {
            memset(rec, 0, sizeof(*rec));
            continue;
        }
        rp_upstream_conf_t *u = find_upstream(cycle, ups);
        rp_upstream_server_t *s = find_server(u, peer);
        if (s) {
            if (rec->state == RP_PEER_DOWN || rec->state == RP_PEER_DRAINING)
                rp_shm_counter_set(&s->sh->state, rec->state);
            if (rec->weight > 0)
                rp_shm_counter_set(&s->sh->weight, rec->weight);
            continue;
        }
        if (u && u->resolve.nelts)
            continue; /* maybe one of its resolved addresses: their entries keep it */
        /* The peer left the configuration: so does its override. Its entry (the old
         * generation's, still serving) goes back to the configured state, so that the
         * peer, added back before the entry is swept, does not come back drained. */
        rp_upstream_server_t *old = find_server(find_upstream(prev, ups), peer);
        if (old) {
            rp_shm_counter_set(&old->sh->state, RP_PEER_USABLE);
            rp_shm_counter_set(&old->sh->weight, 0);
        }
        rp_log_error(RP_LOG_NOTICE, 0,
                     "admin api: the override of peer \"%s\" of upstream \"%s\" is dropped: "
                     "the configuration no longer has it",
                     peer, ups);
        memset(rec, 0, sizeof(*rec));
    }
    rp_shm_unlock(z);
}
