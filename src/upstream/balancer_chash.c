/*
 * hash KEY consistent (ketama, as nginx's) and hash_balance_factor (HAProxy's
 * consistent hashing with bounded loads).
 *
 * The ring. Each peer puts 160 points per unit of weight on a ring of 32-bit hashes,
 * made as nginx makes them (compatible with Cache::Memcached::Fast): a base CRC32 of
 * "HOST\0PORT" from the peer's address, each point the CRC32 of the base followed by
 * the point before it (0 for the first). A key goes to the peer of the first point at
 * or after the CRC32 of the key, so with the same servers a key lands where it does
 * under nginx; a peer added or removed moves only the keys of the arcs its points
 * cover, about 1/n of them. Points that collide keep the first peer's, as nginx. The
 * ring is built per worker by the update hook when a process builds a peer set (at
 * its first request, and when a DNS answer changed the pool), sorted by a radix sort
 * in linear time, and a pick finds its place by binary search. Its size is bounded:
 * beyond RING_MAX points the points per peer shrink in proportion (at least one each),
 * so 10,000 peers cost 8 MB per worker rather than 13.
 *
 * A point whose peer cannot be picked (down, resting, at max_conns, tried by this
 * request) passes the key on to the next point along the ring, so the keys of a peer
 * that is out spread over the others and come back when it does. After RING_WALK
 * points without a candidate the pick falls back to round robin.
 *
 * Bounded loads. With hash_balance_factor F, a peer takes a key only if its requests
 * in flight (all workers, the peer table) would stay within
 *
 *     ceil(F * (in flight on the pool + 1) * weight / total weight)
 *
 * (for equal weights: F times the mean, rounded up); otherwise the key walks on to the
 * next point, so a hot key spills over to the next peers on the ring instead of
 * overloading one (Mirrokni, Thorup and Zadimoghaddam; HAProxy's hash-balance-factor).
 * If every candidate on the walk is at its bound, the first of them takes the key.
 *
 * slow_start: a ramping peer takes a key when a draw made from the key is below its
 * ramped share (the keys it takes stay with it as the ramp goes on); the others walk
 * on. Unlike nginx, backups may be configured: they have a ring of their own, used
 * when no primary can be picked.
 */
#include "upstream/balancer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define POINTS_PER_WEIGHT 160        /* nginx's and ketama's */
#define RING_MAX          (1u << 20) /* points per range: 8 MB */
#define RING_WALK         4096       /* points walked before round robin takes over */

typedef struct {
    uint32_t *hash; /* ascending */
    uint32_t *idx;  /* the peer (index in set->peer) of each point */
    unsigned n;
    uint64_t total_weight; /* of the range's peers, base weights */
    /* A large ring's index by the top `bits` bits of a hash: the first point of each
     * bucket, so a search is one lookup and a few steps instead of twenty cache
     * misses over megabytes (NULL for rings small enough to stay in cache). */
    uint32_t *bucket;
    unsigned bits;
} ring_t;

typedef struct {
    ring_t range[2]; /* primaries, backups */
} chash_data_t;

/* ---- building ---- */

/* The base hash of a peer: CRC32 of HOST "\0" PORT, split as nginx splits a server
 * name (the port is the digits after the last colon). */
static uint32_t base_hash(const char *name)
{
    size_t len = strlen(name), host_len = len, port_at = len;
    for (size_t j = 0; j < len; j++) {
        char c = name[len - j - 1];
        if (c == ':') {
            host_len = len - j - 1;
            port_at = len - j;
            break;
        }
        if (c < '0' || c > '9')
            break;
    }
    uLong h = crc32(0L, (const Bytef *)name, (uInt)host_len);
    h = crc32(h, (const Bytef *)"", 1);
    return (uint32_t)crc32(h, (const Bytef *)name + port_at, (uInt)(len - port_at));
}

/* Sorts points (hash << 32 | idx) by hash, keeping the order of equal hashes: two
 * stable passes over 16-bit digits. */
static void radix_sort(uint64_t *a, unsigned n)
{
    uint64_t *tmp = rp_xmalloc((size_t)n * sizeof(*tmp));
    uint32_t *count = rp_xmalloc(65536 * sizeof(*count));
    uint64_t *src = a, *dst = tmp;
    for (int shift = 32; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof(*count));
        for (unsigned i = 0; i < n; i++)
            count[(src[i] >> shift) & 0xffff]++;
        uint32_t sum = 0;
        for (unsigned d = 0; d < 65536; d++) {
            uint32_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (unsigned i = 0; i < n; i++)
            dst[count[(src[i] >> shift) & 0xffff]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    /* two passes: the sorted points are back in a */
    free(count);
    free(tmp);
}

static void ring_build(ring_t *r, const rp_upstream_peers_t *set, unsigned from, unsigned to)
{
    memset(r, 0, sizeof(*r));
    for (unsigned i = from; i < to; i++)
        r->total_weight += (uint64_t)rp_balancer_base_weight(set->peer[i]);
    if (r->total_weight == 0)
        return;
    uint64_t want = r->total_weight * POINTS_PER_WEIGHT;
    uint64_t npoints = 0;
    for (unsigned i = from; i < to; i++) {
        uint64_t w = (uint64_t)rp_balancer_base_weight(set->peer[i]);
        uint64_t p = want <= RING_MAX ? w * POINTS_PER_WEIGHT : w * RING_MAX / r->total_weight;
        npoints += p ? p : 1;
    }
    uint64_t *pts = rp_xmalloc(npoints * sizeof(*pts));
    unsigned n = 0;
    for (unsigned i = from; i < to; i++) {
        const rp_upstream_server_t *s = set->peer[i];
        uint64_t w = (uint64_t)rp_balancer_base_weight(s);
        uint64_t p = want <= RING_MAX ? w * POINTS_PER_WEIGHT : w * RING_MAX / r->total_weight;
        if (p == 0)
            p = 1;
        uint32_t base = base_hash(s->name), prev = 0;
        for (uint64_t j = 0; j < p; j++) {
            unsigned char le[4] = {prev & 0xff, (prev >> 8) & 0xff, (prev >> 16) & 0xff,
                                   prev >> 24};
            uint32_t h = (uint32_t)crc32(base, le, 4);
            pts[n++] = (uint64_t)h << 32 | i;
            prev = h;
        }
    }
    radix_sort(pts, n);
    r->hash = rp_xmalloc((size_t)n * sizeof(*r->hash));
    r->idx = rp_xmalloc((size_t)n * sizeof(*r->idx));
    for (unsigned i = 0; i < n; i++) {
        uint32_t h = (uint32_t)(pts[i] >> 32);
        if (r->n && r->hash[r->n - 1] == h)
            continue; /* a collision keeps the first peer's point */
        r->hash[r->n] = h;
        r->idx[r->n++] = (uint32_t)pts[i];
    }
    free(pts);
    if (r->n >= 4096) {
        r->bits = 0;
        while (r->bits < 16 && (r->n >> (r->bits + 1)) >= 8)
            r->bits++; /* about 8 points per bucket, at most 2^16 buckets (256 KB) */
        unsigned nb = 1u << r->bits;
        r->bucket = rp_xmalloc((nb + 1) * sizeof(*r->bucket));
        unsigned i = 0;
        for (unsigned b = 0; b < nb; b++) {
            while (i < r->n && (r->hash[i] >> (32 - r->bits)) < b)
                i++;
            r->bucket[b] = i;
        }
        r->bucket[nb] = r->n;
    }
}

static void chash_update(rp_upstream_conf_t *u, rp_upstream_peers_t *set, void *old_data)
{
    chash_data_t *old = old_data;
    if (old) {
        for (int b = 0; b <= 1; b++) {
            free(old->range[b].hash);
            free(old->range[b].idx);
            free(old->range[b].bucket);
        }
        free(old);
    }
    if (set == NULL)
        return;
    chash_data_t *d = rp_xmalloc(sizeof(*d));
    for (int b = 0; b <= 1; b++)
        ring_build(&d->range[b], set, rp_range_from(set, b), rp_range_to(set, b));
    set->data = d;
}

/* ---- picking ---- */

/* The first point at or after h, wrapping around. */
static unsigned ring_find(const ring_t *r, uint32_t h)
{
    unsigned lo = 0, hi = r->n;
    if (r->bucket) {
        unsigned b = h >> (32 - r->bits);
        lo = r->bucket[b];
        hi = r->bucket[b + 1];
    }
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (r->hash[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->n ? 0 : lo;
}

static rp_upstream_server_t *ring_walk(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                       const rp_upstream_pick_t *pk, const ring_t *r, int64_t now)
{
    double f = u->hash_balance_factor;
    double pool_load = 0;
    if (f > 0 && u->totals) {
        int64_t t = rp_shm_counter_get(&u->totals->inflight);
        pool_load = f * (double)((t > 0 ? t : 0) + 1) / (double)r->total_weight;
    }
    uint64_t keydraw = rp_balancer_mix(pk->hash);
    rp_upstream_server_t *spill = NULL, *last = NULL;
    unsigned i = ring_find(r, pk->hash);
    unsigned walk = r->n < RING_WALK ? r->n : RING_WALK;
    for (unsigned k = 0; k < walk; k++, i = i + 1 == r->n ? 0 : i + 1) {
        rp_upstream_server_t *s = set->peer[r->idx[i]];
        if (s == last)
            continue; /* the same peer's next point: judged already */
        last = s;
        if (!rp_balancer_candidate(u, pk, s, now) || !rp_balancer_ramp_accept(s, now, keydraw))
            continue;
        if (f > 0) {
            double bound = ceil(pool_load * (double)rp_balancer_base_weight(s));
            if ((double)(rp_shm_counter_get(&s->sh->inflight) + 1) > bound) {
                if (spill == NULL)
                    spill = s;
                continue;
            }
        }
        return s;
    }
    return spill;
}

static rp_upstream_server_t *chash_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                        rp_upstream_pick_t *pk)
{
    int64_t now = pk->now; /* rp_upstream_get_peer read the clock */
    chash_data_t *d = set->data;
    if (!pk->hashed) {
        rp_balancer_hash_key(u, pk);
        pk->hash = (uint32_t)crc32(0L, pk->key, (uInt)pk->key_len);
        pk->hashed = 1;
    }
    for (int b = 0; b <= 1; b++) {
        unsigned from = rp_range_from(set, b), to = rp_range_to(set, b);
        if (from == to)
            continue;
        rp_upstream_server_t *s =
            d && d->range[b].n ? ring_walk(u, set, pk, &d->range[b], now) : NULL;
        if (s == NULL)
            s = rp_balancer_rr_scan(u, set, pk, from, to, now);
        if (s)
            return s;
    }
    return NULL;
}

const rp_upstream_balancer_t rp_upstream_hash_consistent = {
    .name = "hash",
    .update = chash_update,
    .pick = chash_pick,
};
