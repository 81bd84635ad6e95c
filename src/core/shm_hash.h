/*
 * A hash table in shared memory, on the zone's slab allocator: binary keys and
 * values of any length, each entry with an expiry time and a place in a
 * least-recently-used list, so that a full zone makes room by forcing out what
 * was used least recently (what has expired first). It is what TLS sessions,
 * rate-limit state, the upstream peer table and Lua shared dictionaries are kept
 * in; its operations are those lua_shared_dict needs (get, set, safe_set, add,
 * replace, delete, incr, ttl, expire, flush_all, flush_expired, get_keys) and the
 * "find or create, then update in place" of a limit_req record.
 *
 * Every function named _locked is called with the zone's lock held. None of the
 * operations on entries makes a system call (only laying a table out does, to
 * draw its hash key), and none reads a clock: `now` is the caller's, in the unit
 * it picks for the table (seconds for TLS sessions, milliseconds for Lua), and an
 * entry whose `expires` is not 0 has expired once now >= expires. Walks are
 * bounded by the number of entries and every reference is checked before it is
 * followed: a table found damaged answers RP_SHM_DAMAGED from then on, and the
 * user lays the zone out afresh.
 */
#ifndef RP_SHM_HASH_H
#define RP_SHM_HASH_H

#include "core/shm_slab.h"

#include <stddef.h>
#include <stdint.h>

typedef struct rp_shm_hash_s rp_shm_hash_t;

/* What the operations answer. */
enum {
    RP_SHM_CREATED = 1,     /* rp_shm_hash_reserve_locked made a new entry */
    RP_SHM_OK = 0,          /* done (reserve: found) */
    RP_SHM_NOT_FOUND = -1,  /* no entry, or an expired one */
    RP_SHM_EXISTS = -2,     /* add: an unexpired entry holds the key */
    RP_SHM_NO_MEMORY = -3,  /* no room, even after forcing out what the call may (or a
                             * value larger than the zone, which forces nothing out) */
    RP_SHM_NOT_NUMBER = -4, /* incr on an entry that is not an RP_SHM_HASH_NUMBER */
    RP_SHM_INVALID = -5,    /* an empty or over-long key */
    RP_SHM_DAMAGED = -6,    /* the table leads where no entry can be: lay the zone out again */
};

/* How a store treats the key's current entry (one of the first three), and flags. */
enum {
    RP_SHM_HASH_SET = 0,     /* store, replacing any entry (lua set) */
    RP_SHM_HASH_ADD = 1,     /* only when there is no unexpired entry (lua add) */
    RP_SHM_HASH_REPLACE = 2, /* only when there is one (lua replace) */
    RP_SHM_HASH_SAFE = 0x10, /* never force out an unexpired entry for room (safe_set) */
    RP_SHM_HASH_PIN = 0x20,  /* keep the entry out of the LRU list: it is never evicted, so
                              * its value stays where it is until the entry is deleted or
                              * stored again larger (counters updated without the lock
                              * live in such entries) */
};

/* rp_shm_hash_get_locked's flags. */
enum {
    RP_SHM_HASH_STALE = 1, /* return an expired entry too, and keep it (lua get_stale) */
};

/* The kind of an entry incr works on: an 8-byte double. Kinds are the user's tags for
 * the type of a value; this one is LUA_TNUMBER, so a Lua dictionary stores Lua's type
 * codes as they are. */
#define RP_SHM_HASH_NUMBER 3

#define RP_SHM_HASH_MAX_KEY 65535

typedef struct {
    const void *key;   /* any bytes */
    size_t key_len;    /* 1 to RP_SHM_HASH_MAX_KEY */
    const void *value; /* get: in the zone, valid under the lock */
    size_t value_len;  /* a store with a NULL value writes value_len zero bytes */
    int64_t expires;   /* 0: never */
    uint32_t flags;    /* the user's, kept with the entry (lua_shared_dict's flags) */
    uint8_t kind;      /* the user's type tag */
    uint8_t stale;     /* get: the entry has expired (RP_SHM_HASH_STALE only) */
} rp_shm_hash_item_t;

typedef struct {
    size_t buckets;      /* 0: one per 256 bytes of the zone, a power of two */
    unsigned max_forced; /* unexpired entries one store may force out; 0: what it takes */
    int fifo;            /* reading an entry leaves its place: the order of eviction is
                          * the order of storing (TLS sessions) */
} rp_shm_hash_conf_t;

typedef struct {
    uint64_t entries;
    uint64_t buckets;
    uint64_t stored;  /* stores and creations since the table was laid out */
    uint64_t forced;  /* unexpired entries forced out to make room */
    uint64_t expired; /* expired entries dropped */
} rp_shm_hash_stats_t;

/* Called for each entry of rp_shm_hash_each_locked; returns non-zero to stop. */
typedef int (*rp_shm_hash_visit_pt)(const rp_shm_hash_item_t *item, void *arg);

/*
 * Lays out size bytes at mem as a slab allocator holding one empty table, its root:
 * the whole zone is the table's. Returns the table, or NULL when size is too small.
 */
rp_shm_hash_t *rp_shm_hash_init(void *mem, size_t size, const rp_shm_hash_conf_t *conf);

/* The table rp_shm_hash_init laid out at mem over exactly size bytes, or NULL. */
rp_shm_hash_t *rp_shm_hash_attach(void *mem, size_t size);

/* An empty table allocated from slab, for a zone holding other structures too (the
 * caller keeps the reference); NULL when there is no room. */
rp_shm_hash_t *rp_shm_hash_create_locked(rp_shm_slab_t *slab, const rp_shm_hash_conf_t *conf);

/*
 * Finds key's entry and describes it in out; its key and value point into the zone,
 * valid until the lock is released or the table changes. An expired entry is
 * dropped and RP_SHM_NOT_FOUND answered, unless flags has RP_SHM_HASH_STALE. The
 * entry becomes the most recently used unless the table is fifo.
 */
int rp_shm_hash_get_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t now,
                           unsigned flags, rp_shm_hash_item_t *out);

/*
 * Stores item under mode (RP_SHM_HASH_SET, _ADD or _REPLACE, with _SAFE and _PIN);
 * an expired entry counts as none. The new entry is the most recently used. When
 * room is short, expired entries near the old end of the LRU list go first, then
 * (without _SAFE) the least recently used, up to max_forced; *forced (may be NULL)
 * says how many unexpired entries were forced out. Under SET, a current entry is
 * dropped before room is made, so RP_SHM_NO_MEMORY leaves the key without one.
 * Returns RP_SHM_OK, _EXISTS, _NOT_FOUND, _NO_MEMORY, _INVALID or _DAMAGED.
 */
int rp_shm_hash_store_locked(rp_shm_hash_t *h, const rp_shm_hash_item_t *item, unsigned mode,
                             int64_t now, unsigned *forced);

/*
 * Finds or creates key's entry holding a value of exactly item->value_len bytes, to
 * be read and updated in place under the lock (a rate-limit record): an unexpired
 * entry of that length is kept as it is (RP_SHM_OK); otherwise one is made from item
 * (a NULL value: zeros) as a store would (RP_SHM_CREATED). *value is the value's
 * address, 8-byte aligned, valid while the entry lives. mode may carry
 * RP_SHM_HASH_SAFE and RP_SHM_HASH_PIN. Errors as rp_shm_hash_store_locked.
 */
int rp_shm_hash_reserve_locked(rp_shm_hash_t *h, const rp_shm_hash_item_t *item, unsigned mode,
                               int64_t now, void **value, unsigned *forced);

/* Drops key's entry: RP_SHM_OK, or RP_SHM_NOT_FOUND when there was none (an expired
 * one is dropped all the same). */
int rp_shm_hash_delete_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t now);

/*
 * Adds by to the number stored under key and sets *result to the sum (lua incr).
 * Without an unexpired entry: RP_SHM_NOT_FOUND when init is NULL, else an entry of
 * init + by is made expiring at init_expires (0: never), forcing out entries as a
 * store does (*forced). An entry of another kind: RP_SHM_NOT_NUMBER. An existing
 * entry keeps its expiry and becomes the most recently used unless the table is fifo.
 */
int rp_shm_hash_incr_locked(rp_shm_hash_t *h, const void *key, size_t key_len, double by,
                            const double *init, int64_t init_expires, int64_t now, double *result,
                            unsigned *forced);

/* The time key's unexpired entry has left in *ttl (0: it never expires), or
 * RP_SHM_NOT_FOUND (lua ttl). */
int rp_shm_hash_ttl_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t now,
                           int64_t *ttl);

/* Sets when key's unexpired entry expires (0: never), or RP_SHM_NOT_FOUND (lua expire). */
int rp_shm_hash_expire_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t expires,
                              int64_t now);

/* Drops every entry, pinned ones included, and gives their memory back. */
void rp_shm_hash_flush_all_locked(rp_shm_hash_t *h);

/* Drops expired entries, at most max of them (0: all), oldest first; returns how many. */
size_t rp_shm_hash_flush_expired_locked(rp_shm_hash_t *h, size_t max, int64_t now);

/*
 * Calls visit for each unexpired entry, most recently used first and pinned entries
 * last, until it returns non-zero; it must not change the table. Returns the number
 * of entries visited (lua get_keys).
 */
size_t rp_shm_hash_each_locked(rp_shm_hash_t *h, int64_t now, rp_shm_hash_visit_pt visit,
                               void *arg);

/*
 * Checks every chain and the LRU list: references in bounds, entries where their
 * hash puts them, the two lists agreeing on the count. Returns 0, or -1 when the
 * table is damaged (it then answers RP_SHM_DAMAGED). Costs a walk of the whole
 * table: for after a process died holding the lock, and for tests.
 */
int rp_shm_hash_verify_locked(rp_shm_hash_t *h);

void rp_shm_hash_stats_locked(const rp_shm_hash_t *h, rp_shm_hash_stats_t *st);

/* The slab allocator the table takes its memory from (its capacity and free space). */
rp_shm_slab_t *rp_shm_hash_slab(const rp_shm_hash_t *h);

#endif
