/*
 * The TLS session cache's data structure. One block of memory holds a header, a
 * fixed table of hash buckets and a ring of variable-size records, each one
 * session: its key (session ID and session ID context), when it expires, and the
 * session as DER.
 *
 * New records go at the head of the ring; room is made at the tail, so the record
 * pushed out is always the oldest one stored. For TLS sessions that is the right
 * victim, better than the least recently used: a session's life is counted from
 * its creation and resuming it does not extend it, so the oldest session is the
 * one closest to expiring anyway, and a ring never fragments the way freeing
 * records of different sizes in place would. A removed record (a failed
 * resumption, an expired lookup) leaves its bucket chain at once and its bytes
 * are reclaimed when the tail passes them.
 *
 * Offsets, not pointers, link the records: the block is shared between processes
 * and kept across reloads. Walks are bounded and offsets checked, so a damaged
 * block is emptied rather than followed.
 */
#include "http/ssl_cache.h"

#include <string.h>

#define MAGIC  0x72707363u /* "rpsc" */
#define LAYOUT 1u

typedef struct {
    uint32_t size; /* of the whole record, a multiple of 8 */
    uint32_t next; /* the next record of its bucket: ring offset + 1, 0 ends the chain */
    uint32_t hash;
    uint16_t der_len;
    uint8_t id_len, ctx_len;
    uint8_t live; /* 0: removed, its bytes wait for the tail */
    uint8_t pad[7];
    int64_t expires;
    unsigned char id[RP_SSL_CACHE_MAX_ID];
    unsigned char ctx[RP_SSL_CACHE_MAX_CTX];
    unsigned char der[];
} rec_t;

typedef struct {
    uint32_t magic, version;
    uint64_t size;     /* of the whole block */
    uint64_t ring_off; /* from the start of the block */
    uint32_t ring_size;
    uint32_t mask; /* buckets - 1 */
    /* Records lie in [tail, head), or once the head has wrapped to the start, in
     * [tail, wrap) and [0, head). */
    uint32_t head, tail, wrap, wrapped;
    uint32_t nrec;  /* records in the ring, removed ones included */
    uint32_t nlive; /* records in the bucket chains */
    uint64_t used;  /* bytes the records take */
    uint64_t stored, evicted;
    uint32_t buckets[]; /* ring offset + 1 of a chain's first record; 0: empty */
} cache_t;

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define MAX_REC   ALIGN8(sizeof(rec_t) + RP_SSL_CACHE_MAX_DER)
#define MIN_RING  (3 * MAX_REC)

/* One bucket per 256 bytes of ring: a typical record (a TLS 1.2 or 1.3 session without
 * a client certificate) takes 250 to 350, so chains stay shorter than one on average. */
#define BYTES_PER_BUCKET 256

size_t rp_ssl_cache_min_size(void)
{
    /* the bucket table of a block this small has at most 64 entries */
    return ALIGN8(sizeof(cache_t) + 64 * sizeof(uint32_t)) + MIN_RING;
}

static rec_t *rec_at(cache_t *c, uint32_t off)
{
    return (rec_t *)((char *)c + c->ring_off + off);
}

/* Whether off can be the start of a record: inside the ring, aligned, sized sensibly. */
static int rec_ok(cache_t *c, uint32_t off)
{
    if (off % 8 || (uint64_t)off + sizeof(rec_t) > c->ring_size)
        return 0;
    rec_t *r = rec_at(c, off);
    return r->size >= sizeof(rec_t) && r->size % 8 == 0 &&
           (uint64_t)off + r->size <= c->ring_size && r->der_len <= r->size - sizeof(rec_t);
}

static void lay_out(cache_t *c, size_t size, uint32_t nbuckets)
{
    memset(c, 0, sizeof(*c));
    c->magic = MAGIC;
    c->version = LAYOUT;
    c->size = size;
    c->mask = nbuckets - 1;
    c->ring_off = ALIGN8(sizeof(cache_t) + (size_t)nbuckets * sizeof(uint32_t));
    c->ring_size = (uint32_t)((size - c->ring_off) & ~(size_t)7);
    memset(c->buckets, 0, (size_t)nbuckets * sizeof(uint32_t));
}

/* Empties a cache found damaged, keeping its geometry. */
static void reset(cache_t *c)
{
    lay_out(c, c->size, c->mask + 1);
}

int rp_ssl_cache_init(void *mem, size_t size)
{
    if (size < rp_ssl_cache_min_size() || size > UINT32_MAX / 2)
        return -1;
    uint32_t nbuckets = 8;
    while ((size_t)nbuckets * 2 <= size / BYTES_PER_BUCKET)
        nbuckets *= 2;
    lay_out(mem, size, nbuckets);
    return ((cache_t *)mem)->ring_size >= MIN_RING ? 0 : -1;
}

int rp_ssl_cache_valid(const void *mem, size_t size)
{
    const cache_t *c = mem;
    return c->magic == MAGIC && c->version == LAYOUT && c->size == size;
}

static uint32_t hash_key(const rp_ssl_cache_key_t *k)
{
    uint32_t h = 2166136261u; /* FNV-1a: session IDs are random, any spread will do */
    for (size_t i = 0; i < k->id_len; i++)
        h = (h ^ k->id[i]) * 16777619u;
    for (size_t i = 0; i < k->ctx_len; i++)
        h = (h ^ k->ctx[i]) * 16777619u;
    return h;
}

static int key_ok(const rp_ssl_cache_key_t *k)
{
    return k->id_len > 0 && k->id_len <= RP_SSL_CACHE_MAX_ID && k->ctx_len <= RP_SSL_CACHE_MAX_CTX;
}

/*
 * The link (a bucket or a record's next) that points at the live record of key, or
 * NULL. *damaged is set when the chain leads somewhere no record can be.
 */
static uint32_t *lookup(cache_t *c, const rp_ssl_cache_key_t *k, uint32_t h, int *damaged)
{
    uint32_t *link = &c->buckets[h & c->mask];
    for (uint32_t steps = 0; *link; steps++) {
        uint32_t off = *link - 1;
        if (steps >= c->nlive || !rec_ok(c, off) || !rec_at(c, off)->live) {
            *damaged = 1;
            return NULL;
        }
        rec_t *r = rec_at(c, off);
        if (r->hash == h && r->id_len == k->id_len && r->ctx_len == k->ctx_len &&
            memcmp(r->id, k->id, k->id_len) == 0 && memcmp(r->ctx, k->ctx, k->ctx_len) == 0)
            return link;
        link = &r->next;
    }
    return NULL;
}

/* Takes the record link points at out of its chain; its bytes stay until the tail. */
static void unlink_at(cache_t *c, uint32_t *link)
{
    rec_t *r = rec_at(c, *link - 1);
    *link = r->next;
    r->live = 0;
    c->nlive--;
}

/* Takes the record at off out of its chain, finding the link that points at it. */
static int unlink_rec(cache_t *c, uint32_t off)
{
    uint32_t *link = &c->buckets[rec_at(c, off)->hash & c->mask];
    for (uint32_t steps = 0; *link; steps++) {
        if (steps >= c->nlive || !rec_ok(c, *link - 1))
            return -1;
        if (*link - 1 == off) {
            unlink_at(c, link);
            return 0;
        }
        link = &rec_at(c, *link - 1)->next;
    }
    return -1;
}

/* Drops the oldest record. Returns -1 when the ring turns out damaged. */
static int pop_tail(cache_t *c, int64_t now)
{
    if (!rec_ok(c, c->tail))
        return -1;
    rec_t *r = rec_at(c, c->tail);
    if (r->live) {
        if (r->expires > now)
            c->evicted++;
        if (unlink_rec(c, c->tail) != 0)
            return -1;
    }
    c->tail += r->size;
    c->used -= r->size;
    if (--c->nrec == 0) {
        c->head = c->tail = 0;
        c->wrapped = 0;
    } else if (c->wrapped && c->tail == c->wrap) {
        c->tail = 0;
        c->wrapped = 0;
    } else if (c->tail > (c->wrapped ? c->wrap : c->head)) {
        return -1;
    }
    return 0;
}

/* Finds room for need bytes at the head, dropping the oldest records; its offset or -1. */
static int64_t make_room(cache_t *c, uint32_t need, int64_t now)
{
    for (;;) {
        if (c->nrec == 0) {
            c->head = c->tail = 0;
            c->wrapped = 0;
        }
        if (!c->wrapped) {
            if (c->ring_size - c->head >= need)
                return c->head;
            /* no room before the end: continue from the start, behind the tail */
            c->wrap = c->head;
            c->head = 0;
            c->wrapped = 1;
            continue;
        }
        if (c->tail - c->head >= need)
            return c->head;
        if (pop_tail(c, now) != 0)
            return -1;
    }
}

int rp_ssl_cache_put(void *mem, const rp_ssl_cache_key_t *key, const unsigned char *der, size_t len,
                     int64_t expires, int64_t now)
{
    cache_t *c = mem;
    if (!key_ok(key) || len == 0 || len > RP_SSL_CACHE_MAX_DER)
        return -1;
    uint32_t h = hash_key(key);
    int damaged = 0;
    uint32_t *link = lookup(c, key, h, &damaged);
    if (link)
        unlink_at(c, link);
    /* what expired or was removed at the old end goes first, whether room is short or not */
    while (!damaged && c->nrec > 0) {
        if (!rec_ok(c, c->tail)) {
            damaged = 1;
            break;
        }
        rec_t *t = rec_at(c, c->tail);
        if (t->live && t->expires > now)
            break;
        if (pop_tail(c, now) != 0)
            damaged = 1;
    }
    if (damaged)
        reset(c);
    uint32_t need = (uint32_t)ALIGN8(sizeof(rec_t) + len);
    int64_t off = make_room(c, need, now);
    if (off < 0) {
        reset(c);
        off = make_room(c, need, now);
    }
    rec_t *r = rec_at(c, (uint32_t)off);
    memset(r, 0, sizeof(*r));
    r->size = need;
    r->hash = h;
    r->der_len = (uint16_t)len;
    r->id_len = (uint8_t)key->id_len;
    r->ctx_len = (uint8_t)key->ctx_len;
    r->live = 1;
    r->expires = expires;
    memcpy(r->id, key->id, key->id_len);
    memcpy(r->ctx, key->ctx, key->ctx_len);
    memcpy(r->der, der, len);
    r->next = c->buckets[h & c->mask];
    c->buckets[h & c->mask] = (uint32_t)off + 1;
    c->head = (uint32_t)off + need;
    c->nrec++;
    c->nlive++;
    c->used += need;
    c->stored++;
    return 0;
}

long rp_ssl_cache_get(void *mem, const rp_ssl_cache_key_t *key, unsigned char *out, size_t cap,
                      int64_t now)
{
    cache_t *c = mem;
    if (!key_ok(key))
        return -1;
    int damaged = 0;
    uint32_t *link = lookup(c, key, hash_key(key), &damaged);
    if (damaged)
        reset(c);
    if (link == NULL)
        return -1;
    rec_t *r = rec_at(c, *link - 1);
    if (r->expires <= now) {
        unlink_at(c, link);
        return -1;
    }
    if (r->der_len > cap)
        return -1;
    memcpy(out, r->der, r->der_len);
    return r->der_len;
}

int rp_ssl_cache_remove(void *mem, const rp_ssl_cache_key_t *key)
{
    cache_t *c = mem;
    if (!key_ok(key))
        return 0;
    int damaged = 0;
    uint32_t *link = lookup(c, key, hash_key(key), &damaged);
    if (damaged)
        reset(c);
    if (link == NULL)
        return 0;
    unlink_at(c, link);
    return 1;
}

void rp_ssl_cache_stats(const void *mem, rp_ssl_cache_stats_t *st)
{
    const cache_t *c = mem;
    st->entries = c->nlive;
    st->stored = c->stored;
    st->evicted = c->evicted;
    st->used = c->used;
    st->capacity = c->ring_size;
}
