/*
 * The shared-memory hash table: a header with its bucket array, and one slab
 * allocation per entry holding the entry's links, its key and its value.
 *
 * An entry is on its bucket's chain and on one of two lists: the LRU list (the
 * most recently used at the head, eviction at the tail) or, for a pinned entry,
 * the list of entries that are never evicted. Entries link each other with 32-bit
 * slab references, and each entry records its own reference, scrambled, which
 * is cleared when it is freed: a reference that leads anywhere but to a live
 * entry is caught before it is followed, and every walk stops after as many
 * steps as there are entries. What a damaged table finds sets a flag that makes
 * every later call answer RP_SHM_DAMAGED; the user then lays the zone out again.
 *
 * Keys are hashed with SipHash-1-3 under a key drawn when the table is laid out,
 * so that keys a client chooses (a header, an address) cannot be made to collide
 * into one long chain walked under the zone's lock.
 */
#include "core/shm_hash.h"

#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAGIC     0x72706874u /* "rpht" */
#define CHECK     0x5a17c3e9u /* scrambles an entry's record of its own reference */
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

/* When room is short, expired entries are looked for this far from the old end. */
#define EXPIRED_SCAN 32
/* Each insertion drops up to this many expired entries at the old end, unasked. */
#define EXPIRED_EAGER 4

typedef struct {
    int64_t expires;
    uint32_t hash;
    uint32_t next;         /* on the bucket's chain */
    uint32_t newer, older; /* on the LRU list or the pinned list */
    uint32_t value_len;
    uint32_t flags;
    uint16_t key_len;
    uint8_t kind;
    uint8_t pinned;
    uint32_t check;       /* its own reference ^ CHECK while it lives */
    unsigned char data[]; /* the key, then the value at the next multiple of 8 */
} ent_t;

typedef struct {
    uint32_t head, tail;
} list_t;

struct rp_shm_hash_s {
    uint32_t magic;
    uint32_t self;     /* its own reference */
    uint64_t slab_off; /* from the slab's header to this one */
    uint64_t seed[2];
    uint32_t mask;  /* buckets - 1 */
    uint32_t count; /* entries, pinned ones included */
    list_t lru;
    list_t pinned;
    uint32_t max_forced;
    uint8_t fifo;
    uint8_t damaged;
    uint16_t pad;
    uint64_t stored, forced, expired;
    uint32_t buckets[];
};

#define ENT_SIZE(klen, vlen) (sizeof(ent_t) + ALIGN8(klen) + (vlen))

/* ---- SipHash-1-3 (Aumasson and Bernstein), one compression round, three final ---- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32);                                  \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32);                                  \
    } while (0)

static uint32_t hash_key(const rp_shm_hash_t *h, const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t k0 = h->seed[0], k1 = h->seed[1];
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull, v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull, v3 = k1 ^ 0x7465646279746573ull;
    size_t n = len;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t m;
        memcpy(&m, p, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = 0; i < n; i++)
        last |= (uint64_t)p[i] << (8 * i);
    v3 ^= last;
    SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return (uint32_t)(v0 ^ v1 ^ v2 ^ v3);
}

/* ---- entries and their lists ---- */

static rp_shm_slab_t *slab_of(const rp_shm_hash_t *h)
{
    return (rp_shm_slab_t *)((char *)h - h->slab_off);
}

/* The live entry ref names; NULL, and the table marked damaged, when it names none. */
static ent_t *ent(rp_shm_hash_t *h, uint32_t ref)
{
    rp_shm_slab_t *s = slab_of(h);
    ent_t *e = rp_shm_slab_ptr(s, ref);
    if (e == NULL || rp_shm_slab_ptr(s, ref + sizeof(ent_t) / 8 - 1) == NULL ||
        e->check != (ref ^ CHECK)) {
        h->damaged = 1;
        return NULL;
    }
    return e;
}

static uint32_t ref_of(rp_shm_hash_t *h, const ent_t *e)
{
    return e->check ^ CHECK;
}

static unsigned char *value_of(ent_t *e)
{
    return e->data + ALIGN8(e->key_len);
}

static int expired(const ent_t *e, int64_t now)
{
    return e->expires != 0 && now >= e->expires;
}

static list_t *list_of(rp_shm_hash_t *h, const ent_t *e)
{
    return e->pinned ? &h->pinned : &h->lru;
}

static void list_unlink(rp_shm_hash_t *h, ent_t *e)
{
    list_t *l = list_of(h, e);
    ent_t *n = NULL, *o = NULL;
    if ((e->newer && (n = ent(h, e->newer)) == NULL) ||
        (e->older && (o = ent(h, e->older)) == NULL))
        return;
    if (n)
        n->older = e->older;
    else
        l->head = e->older;
    if (o)
        o->newer = e->newer;
    else
        l->tail = e->newer;
}

static void list_push(rp_shm_hash_t *h, ent_t *e)
{
    list_t *l = list_of(h, e);
    uint32_t ref = ref_of(h, e);
    ent_t *first = NULL;
    if (l->head && (first = ent(h, l->head)) == NULL)
        return;
    e->newer = 0;
    e->older = l->head;
    if (first)
        first->newer = ref;
    else
        l->tail = ref;
    l->head = ref;
}

static void touch(rp_shm_hash_t *h, ent_t *e)
{
    if (h->fifo || e->pinned || h->lru.head == ref_of(h, e))
        return;
    list_unlink(h, e);
    list_push(h, e);
}

/* The entry of key and the link that points at it (*link), or NULL. */
static ent_t *find(rp_shm_hash_t *h, const void *key, size_t len, uint32_t hv, uint32_t **link)
{
    uint32_t *l = &h->buckets[hv & h->mask];
    for (uint32_t steps = 0; *l; steps++) {
        ent_t *e = steps < h->count ? ent(h, *l) : NULL;
        if (e == NULL) {
            h->damaged = 1;
            return NULL;
        }
        if (e->hash == hv && e->key_len == len && memcmp(e->data, key, len) == 0) {
            *link = l;
            return e;
        }
        l = &e->next;
    }
    return NULL;
}

/* Takes e, whose chain link is link, out of the table and frees it. */
static void drop_at(rp_shm_hash_t *h, ent_t *e, uint32_t *link)
{
    *link = e->next;
    list_unlink(h, e);
    h->count--;
    e->check = 0;
    if (rp_shm_slab_free_locked(slab_of(h), e) != 0)
        h->damaged = 1;
}

/* Drops e, finding its chain link first. */
static void drop(rp_shm_hash_t *h, ent_t *e)
{
    uint32_t ref = ref_of(h, e);
    uint32_t *l = &h->buckets[e->hash & h->mask];
    for (uint32_t steps = 0; *l && steps < h->count; steps++) {
        if (*l == ref) {
            drop_at(h, e, l);
            return;
        }
        ent_t *c = ent(h, *l);
        if (c == NULL)
            return;
        l = &c->next;
    }
    h->damaged = 1; /* an entry on a list but on no chain */
}

/*
 * Drops expired entries from the old end of the LRU list, looking at up to scan
 * entries; at the first unexpired one it stops unless skip_live.
 */
static void drop_expired_tail(rp_shm_hash_t *h, unsigned scan, int skip_live, int64_t now)
{
    uint32_t ref = h->lru.tail;
    for (unsigned i = 0; ref && i < scan && !h->damaged; i++) {
        ent_t *e = ent(h, ref);
        if (e == NULL)
            return;
        ref = e->newer;
        if (expired(e, now)) {
            drop(h, e);
            h->expired++;
        } else if (!skip_live) {
            return;
        }
    }
}

/* Room for an entry of need bytes: expired entries first, then, unless mode is safe,
 * the least recently used. */
static ent_t *alloc_entry(rp_shm_hash_t *h, size_t need, unsigned mode, int64_t now,
                          unsigned *forced)
{
    rp_shm_slab_t *s = slab_of(h);
    void *p = rp_shm_slab_alloc_locked(s, need);
    if (p || need > rp_shm_slab_max_alloc(s))
        return p;
    drop_expired_tail(h, EXPIRED_SCAN, 1, now);
    if (h->damaged || (p = rp_shm_slab_alloc_locked(s, need)) != NULL || (mode & RP_SHM_HASH_SAFE))
        return p;
    unsigned n = 0;
    while (h->lru.tail && !h->damaged && (h->max_forced == 0 || n < h->max_forced)) {
        ent_t *e = ent(h, h->lru.tail);
        if (e == NULL)
            break;
        if (expired(e, now)) {
            h->expired++;
        } else {
            h->forced++;
            n++;
        }
        drop(h, e);
        if (!h->damaged && (p = rp_shm_slab_alloc_locked(s, need)) != NULL)
            break;
    }
    if (forced)
        *forced += n;
    return h->damaged ? NULL : p;
}

static void describe(ent_t *e, rp_shm_hash_item_t *out)
{
    out->key = e->data;
    out->key_len = e->key_len;
    out->value = value_of(e);
    out->value_len = e->value_len;
    out->expires = e->expires;
    out->flags = e->flags;
    out->kind = e->kind;
    out->stale = 0;
}

static void write_value(ent_t *e, const rp_shm_hash_item_t *it)
{
    e->value_len = (uint32_t)it->value_len;
    e->expires = it->expires;
    e->flags = it->flags;
    e->kind = it->kind;
    if (it->value)
        memmove(value_of(e), it->value, it->value_len);
    else
        memset(value_of(e), 0, it->value_len);
}

static int key_ok(const void *key, size_t len)
{
    return key && len > 0 && len <= RP_SHM_HASH_MAX_KEY;
}

/* A store (reserve 0) or a find-or-create (reserve 1); *value is where the value lies. */
static int put(rp_shm_hash_t *h, const rp_shm_hash_item_t *it, unsigned mode, int reserve,
               int64_t now, void **value, unsigned *forced)
{
    if (h->damaged)
        return RP_SHM_DAMAGED;
    if (!key_ok(it->key, it->key_len))
        return RP_SHM_INVALID;
    if (it->value_len > UINT32_MAX)
        return RP_SHM_NO_MEMORY;
    uint32_t hv = hash_key(h, it->key, it->key_len), *link = NULL;
    ent_t *e = find(h, it->key, it->key_len, hv, &link);
    if (e && expired(e, now)) {
        drop_at(h, e, link);
        h->expired++;
        e = NULL;
    }
    if (h->damaged)
        return RP_SHM_DAMAGED;
    unsigned op = mode & 3;
    if (op == RP_SHM_HASH_ADD && e)
        return RP_SHM_EXISTS;
    if (op == RP_SHM_HASH_REPLACE && !e)
        return RP_SHM_NOT_FOUND;
    uint8_t pin = (mode & RP_SHM_HASH_PIN) != 0;
    size_t need = ENT_SIZE(it->key_len, it->value_len);
    if (e && (reserve ? e->value_len == it->value_len
                      : rp_shm_slab_size_locked(slab_of(h), e) >= need)) {
        /* in place: a reserved record keeps its bytes, a store overwrites them */
        if (!reserve) {
            write_value(e, it);
            h->stored++;
        }
        if (!reserve || e->pinned != pin) {
            list_unlink(h, e);
            e->pinned = pin;
            list_push(h, e);
        } else {
            touch(h, e);
        }
        if (value)
            *value = value_of(e);
        return h->damaged ? RP_SHM_DAMAGED : RP_SHM_OK;
    }
    if (e)
        drop_at(h, e, link);
    drop_expired_tail(h, EXPIRED_EAGER, 0, now);
    ent_t *n = h->damaged ? NULL : alloc_entry(h, need, mode, now, forced);
    if (n == NULL)
        return h->damaged ? RP_SHM_DAMAGED : RP_SHM_NO_MEMORY;
    uint32_t ref = rp_shm_slab_ref(slab_of(h), n);
    memset(n, 0, sizeof(*n));
    n->check = ref ^ CHECK;
    n->hash = hv;
    n->key_len = (uint16_t)it->key_len;
    n->pinned = pin;
    memcpy(n->data, it->key, it->key_len);
    write_value(n, it);
    uint32_t *b = &h->buckets[hv & h->mask];
    n->next = *b;
    *b = ref;
    list_push(h, n);
    h->count++;
    h->stored++;
    if (value)
        *value = value_of(n);
    if (h->damaged)
        return RP_SHM_DAMAGED;
    return reserve ? RP_SHM_CREATED : RP_SHM_OK;
}

int rp_shm_hash_store_locked(rp_shm_hash_t *h, const rp_shm_hash_item_t *item, unsigned mode,
                             int64_t now, unsigned *forced)
{
    return put(h, item, mode, 0, now, NULL, forced);
}

int rp_shm_hash_reserve_locked(rp_shm_hash_t *h, const rp_shm_hash_item_t *item, unsigned mode,
                               int64_t now, void **value, unsigned *forced)
{
    return put(h, item, (mode & ~3u) | RP_SHM_HASH_SET, 1, now, value, forced);
}

/* The unexpired entry of key, an expired one being dropped; NULL when there is none. */
static ent_t *live(rp_shm_hash_t *h, const void *key, size_t len, int64_t now, int *rc)
{
    *rc = RP_SHM_NOT_FOUND;
    if (h->damaged) {
        *rc = RP_SHM_DAMAGED;
        return NULL;
    }
    if (!key_ok(key, len)) {
        *rc = RP_SHM_INVALID;
        return NULL;
    }
    uint32_t *link = NULL;
    ent_t *e = find(h, key, len, hash_key(h, key, len), &link);
    if (e && expired(e, now)) {
        drop_at(h, e, link);
        h->expired++;
        e = NULL;
    }
    if (h->damaged) {
        *rc = RP_SHM_DAMAGED;
        return NULL;
    }
    if (e)
        *rc = RP_SHM_OK;
    return e;
}

int rp_shm_hash_get_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t now,
                           unsigned flags, rp_shm_hash_item_t *out)
{
    int rc;
    if ((flags & RP_SHM_HASH_STALE) && !h->damaged && key_ok(key, key_len)) {
        uint32_t *link = NULL;
        ent_t *e = find(h, key, key_len, hash_key(h, key, key_len), &link);
        if (e && expired(e, now)) {
            describe(e, out);
            out->stale = 1;
            return h->damaged ? RP_SHM_DAMAGED : RP_SHM_OK;
        }
    }
    ent_t *e = live(h, key, key_len, now, &rc);
    if (e == NULL)
        return rc;
    touch(h, e);
    describe(e, out);
    return h->damaged ? RP_SHM_DAMAGED : RP_SHM_OK;
}

int rp_shm_hash_delete_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t now)
{
    int rc;
    ent_t *e = live(h, key, key_len, now, &rc);
    if (e)
        drop(h, e);
    return h->damaged ? RP_SHM_DAMAGED : rc;
}

int rp_shm_hash_incr_locked(rp_shm_hash_t *h, const void *key, size_t key_len, double by,
                            const double *init, int64_t init_expires, int64_t now, double *result,
                            unsigned *forced)
{
    int rc;
    ent_t *e = live(h, key, key_len, now, &rc);
    if (e) {
        if (e->kind != RP_SHM_HASH_NUMBER || e->value_len != sizeof(double))
            return RP_SHM_NOT_NUMBER;
        double v;
        memcpy(&v, value_of(e), sizeof(v));
        v += by;
        memcpy(value_of(e), &v, sizeof(v));
        touch(h, e);
        *result = v;
        return h->damaged ? RP_SHM_DAMAGED : RP_SHM_OK;
    }
    if (rc != RP_SHM_NOT_FOUND || init == NULL)
        return rc;
    double v = *init + by;
    rp_shm_hash_item_t it = {key, key_len, &v, sizeof(v), init_expires, 0, RP_SHM_HASH_NUMBER, 0};
    rc = put(h, &it, RP_SHM_HASH_SET, 0, now, NULL, forced);
    if (rc == RP_SHM_OK)
        *result = v;
    return rc;
}

int rp_shm_hash_ttl_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t now,
                           int64_t *ttl)
{
    int rc;
    ent_t *e = live(h, key, key_len, now, &rc);
    if (e)
        *ttl = e->expires ? e->expires - now : 0;
    return rc;
}

int rp_shm_hash_expire_locked(rp_shm_hash_t *h, const void *key, size_t key_len, int64_t expires,
                              int64_t now)
{
    int rc;
    ent_t *e = live(h, key, key_len, now, &rc);
    if (e)
        e->expires = expires;
    return rc;
}

void rp_shm_hash_flush_all_locked(rp_shm_hash_t *h)
{
    rp_shm_slab_t *s = slab_of(h);
    list_t *lists[] = {&h->lru, &h->pinned};
    uint32_t steps = 0;
    for (int l = 0; l < 2; l++) {
        for (uint32_t ref = lists[l]->head; ref && !h->damaged;) {
            ent_t *e = ++steps <= h->count ? ent(h, ref) : NULL;
            if (e == NULL) {
                h->damaged = 1;
                break;
            }
            ref = e->older;
            e->check = 0;
            if (rp_shm_slab_free_locked(s, e) != 0)
                h->damaged = 1;
        }
        lists[l]->head = lists[l]->tail = 0;
    }
    memset(h->buckets, 0, ((size_t)h->mask + 1) * sizeof(uint32_t));
    h->count = 0;
}

size_t rp_shm_hash_flush_expired_locked(rp_shm_hash_t *h, size_t max, int64_t now)
{
    size_t dropped = 0;
    list_t *lists[] = {&h->lru, &h->pinned};
    for (int l = 0; l < 2; l++) {
        uint32_t ref = lists[l]->tail, steps = h->count;
        while (ref && steps-- > 0 && !h->damaged && (max == 0 || dropped < max)) {
            ent_t *e = ent(h, ref);
            if (e == NULL)
                break;
            ref = e->newer;
            if (expired(e, now)) {
                drop(h, e);
                h->expired++;
                dropped++;
            }
        }
    }
    return dropped;
}

size_t rp_shm_hash_each_locked(rp_shm_hash_t *h, int64_t now, rp_shm_hash_visit_pt visit, void *arg)
{
    size_t visited = 0;
    uint32_t steps = h->count;
    list_t *lists[] = {&h->lru, &h->pinned};
    for (int l = 0; l < 2; l++) {
        for (uint32_t ref = lists[l]->head; ref && !h->damaged; steps--) {
            ent_t *e = steps > 0 ? ent(h, ref) : NULL;
            if (e == NULL) {
                h->damaged = 1;
                return visited;
            }
            ref = e->older;
            if (expired(e, now))
                continue;
            rp_shm_hash_item_t it;
            describe(e, &it);
            visited++;
            if (visit(&it, arg))
                return visited;
        }
    }
    return visited;
}

/* Walks list l from its head: every entry live, linked both ways, pinned as the list is. */
static int verify_list(rp_shm_hash_t *h, const list_t *l, uint8_t pinned, uint32_t *n)
{
    uint32_t prev = 0;
    for (uint32_t ref = l->head; ref; (*n)++) {
        ent_t *e = *n < h->count ? ent(h, ref) : NULL;
        if (e == NULL || e->newer != prev || e->pinned != pinned)
            return -1;
        prev = ref;
        ref = e->older;
    }
    return l->tail == prev ? 0 : -1;
}

int rp_shm_hash_verify_locked(rp_shm_hash_t *h)
{
    rp_shm_slab_t *s = slab_of(h);
    uint32_t chained = 0, listed = 0;
    for (uint32_t b = 0; b <= h->mask && !h->damaged; b++) {
        for (uint32_t ref = h->buckets[b]; ref; chained++) {
            ent_t *e = chained < h->count ? ent(h, ref) : NULL;
            if (e == NULL || (e->hash & h->mask) != b ||
                rp_shm_slab_size_locked(s, e) < ENT_SIZE(e->key_len, e->value_len) ||
                e->hash != hash_key(h, e->data, e->key_len)) {
                h->damaged = 1;
                break;
            }
            ref = e->next;
        }
    }
    if (h->damaged || chained != h->count || verify_list(h, &h->lru, 0, &listed) != 0 ||
        verify_list(h, &h->pinned, 1, &listed) != 0 || listed != h->count)
        h->damaged = 1;
    return h->damaged ? -1 : 0;
}

void rp_shm_hash_stats_locked(const rp_shm_hash_t *h, rp_shm_hash_stats_t *st)
{
    st->entries = h->count;
    st->buckets = (uint64_t)h->mask + 1;
    st->stored = h->stored;
    st->forced = h->forced;
    st->expired = h->expired;
}

rp_shm_slab_t *rp_shm_hash_slab(const rp_shm_hash_t *h)
{
    return slab_of(h);
}

/* A key for SipHash: from the kernel when it has one at hand; failing that, from what
 * differs between runs. Either way only the collision resistance depends on it. */
static void draw_seed(uint64_t seed[2])
{
    if (getrandom(seed, 2 * sizeof(uint64_t), GRND_NONBLOCK) == 2 * sizeof(uint64_t))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
    seed[1] = (uint64_t)getpid() * 0xbf58476d1ce4e5b9ull ^ (uint64_t)(uintptr_t)seed;
}

rp_shm_hash_t *rp_shm_hash_create_locked(rp_shm_slab_t *slab, const rp_shm_hash_conf_t *conf)
{
    size_t nb = 16;
    if (conf->buckets) {
        while (nb < conf->buckets && nb < ((size_t)1 << 31))
            nb *= 2;
    } else {
        while (nb * 2 <= rp_shm_slab_max_alloc(slab) / 256)
            nb *= 2;
    }
    rp_shm_hash_t *h = rp_shm_slab_calloc_locked(slab, sizeof(*h) + nb * sizeof(uint32_t));
    if (h == NULL)
        return NULL;
    h->magic = MAGIC;
    h->self = rp_shm_slab_ref(slab, h);
    h->slab_off = (uint64_t)((char *)h - (char *)slab);
    h->mask = (uint32_t)(nb - 1);
    h->max_forced = conf->max_forced;
    h->fifo = conf->fifo != 0;
    draw_seed(h->seed);
    return h;
}

rp_shm_hash_t *rp_shm_hash_init(void *mem, size_t size, const rp_shm_hash_conf_t *conf)
{
    rp_shm_slab_t *s = rp_shm_slab_init(mem, size);
    rp_shm_hash_t *h = s ? rp_shm_hash_create_locked(s, conf) : NULL;
    if (h)
        *rp_shm_slab_root(s) = h->self;
    return h;
}

rp_shm_hash_t *rp_shm_hash_attach(void *mem, size_t size)
{
    rp_shm_slab_t *s = rp_shm_slab_attach(mem, size);
    if (s == NULL)
        return NULL;
    uint32_t ref = *rp_shm_slab_root(s);
    rp_shm_hash_t *h = rp_shm_slab_ptr(s, ref);
    size_t room = h ? rp_shm_slab_size_locked(s, h) : 0;
    if (room < sizeof(*h) || h->magic != MAGIC || h->self != ref ||
        h->slab_off != (uint64_t)((char *)h - (char *)s) ||
        room < sizeof(*h) + ((size_t)h->mask + 1) * sizeof(uint32_t) || (h->mask & (h->mask + 1)))
        return NULL;
    return h;
}
