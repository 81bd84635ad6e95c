/*
 * hash KEY (without `consistent`) and ip_hash, as nginx's.
 *
 * Both map a request to a point of the range's total weight and take the peer whose
 * share holds it (the running sums of the weights, searched in O(log n); nginx walks
 * them, with the same result). A peer that cannot be picked (down, resting, at
 * max_conns, tried by this request) makes the pick hash again, as nginx does, and
 * after RP_BALANCER_TRIES such rehashes the pick falls back to round robin.
 *
 *   hash KEY: the key's CRC32, as nginx's (compatible with Cache::Memcached): the
 *   n-th hash is ((crc32(n KEY) >> 16) & 0x7fff) added to the ones before, with n
 *   omitted the first time; the point is that sum modulo the total weight.
 *
 *   ip_hash: the client address: the first three octets of an IPv4 address (so a
 *   /24 stays together), the whole of an IPv6 one; the hash starts at 89 and takes
 *   each byte as hash = (hash * 113 + byte) % 6271, again for every rehash.
 *
 * So with the same servers and weights a key or client goes to the same server as
 * under nginx. A retry starts the sequence again and skips the peers tried, which
 * reaches the peer nginx's continued sequence reaches.
 *
 * slow_start: a ramping peer takes a key when a draw made from the key is below its
 * ramped share, so the keys it takes during the ramp stay with it as the ramp goes
 * on (the others rehash as from an unusable peer). Unlike nginx, backups may be
 * configured: they are hashed alike when no primary can be picked.
 */
#include "upstream/balancer.h"
#include "http/variables.h"
#include "net/conn.h"

#include <stdio.h>
#include <zlib.h>

static const unsigned char pseudo_addr[3]; /* ip_hash's key when the client is no IP */

void rp_balancer_hash_key(rp_upstream_conf_t *u, rp_upstream_pick_t *pk)
{
    if (pk->key)
        return;
    pk->key = (const unsigned char *)"";
    pk->key_len = 0;
    if (pk->r == NULL)
        return;
    if (u->balancer == &rp_upstream_ip_hash) {
        const rp_sockaddr_t *a = pk->r->peer; /* the client realip found, as nginx */
        if (a->sa.sa_family == AF_INET) {
            pk->key = (const unsigned char *)&a->sin.sin_addr;
            pk->key_len = 3;
        } else if (a->sa.sa_family == AF_INET6) {
            pk->key = a->sin6.sin6_addr.s6_addr;
            pk->key_len = 16;
        } else {
            pk->key = pseudo_addr;
            pk->key_len = sizeof(pseudo_addr);
        }
        return;
    }
    if (u->hash_key) {
        rp_str_t v = rp_cv_eval(pk->r, u->hash_key);
        pk->key = (const unsigned char *)v.data;
        pk->key_len = v.len;
    }
}

/* The peer of r that the point x lands on, if it may take this key. */
static rp_upstream_server_t *at(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                const rp_upstream_pick_t *pk, const rp_wrange_t *r, uint64_t x,
                                uint64_t keydraw, int64_t now)
{
    rp_upstream_server_t *s = set->peer[rp_wrange_find(r, x % r->total)];
    if (!rp_balancer_candidate(u, pk, s, now) || !rp_balancer_ramp_accept(s, now, keydraw))
        return NULL;
    return s;
}

static rp_upstream_server_t *hash_range(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                        const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                        int64_t now)
{
    uint32_t key_crc = (uint32_t)crc32(0L, pk->key, (uInt)pk->key_len);
    uint64_t keydraw = rp_balancer_mix(key_crc);
    uint64_t sum = 0;
    for (unsigned n = 0; n < RP_BALANCER_TRIES; n++) {
        uint32_t h = key_crc;
        if (n > 0) {
            char buf[16];
            int len = snprintf(buf, sizeof(buf), "%u", n);
            h = (uint32_t)crc32(0L, (const Bytef *)buf, (uInt)len);
            h = (uint32_t)crc32(h, pk->key, (uInt)pk->key_len);
        }
        sum += (h >> 16) & 0x7fff;
        rp_upstream_server_t *s = at(u, set, pk, r, sum, keydraw, now);
        if (s)
            return s;
    }
    return NULL;
}

static rp_upstream_server_t *ip_hash_range(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                           const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                           int64_t now)
{
    uint64_t h = 89;
    uint64_t keydraw = 0;
    for (unsigned n = 0; n < RP_BALANCER_TRIES; n++) {
        for (size_t i = 0; i < pk->key_len; i++)
            h = (h * 113 + pk->key[i]) % 6271;
        if (n == 0)
            keydraw = rp_balancer_mix(h);
        rp_upstream_server_t *s = at(u, set, pk, r, h, keydraw, now);
        if (s)
            return s;
    }
    return NULL;
}

static rp_upstream_server_t *pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                  rp_upstream_pick_t *pk, int ip)
{
    int64_t now = pk->now; /* rp_upstream_get_peer read the clock */
    rp_wtable_t *t = set->data;
    rp_balancer_hash_key(u, pk);
    for (int b = 0; b <= 1; b++) {
        unsigned from = rp_range_from(set, b), to = rp_range_to(set, b);
        if (from == to)
            continue;
        rp_upstream_server_t *s = NULL;
        /* nginx: one server is round robin's */
        if (to - from >= 2 && t && t->range[b].total)
            s = ip ? ip_hash_range(u, set, pk, &t->range[b], now)
                   : hash_range(u, set, pk, &t->range[b], now);
        if (s == NULL)
            s = rp_balancer_rr_scan(u, set, pk, from, to, now);
        if (s)
            return s;
    }
    return NULL;
}

static rp_upstream_server_t *hash_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                       rp_upstream_pick_t *pk)
{
    return pick(u, set, pk, 0);
}

static rp_upstream_server_t *ip_hash_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                          rp_upstream_pick_t *pk)
{
    return pick(u, set, pk, 1);
}

const rp_upstream_balancer_t rp_upstream_hash = {
    .name = "hash",
    .update = rp_wtable_update,
    .pick = hash_pick,
};

const rp_upstream_balancer_t rp_upstream_ip_hash = {
    .name = "ip_hash",
    .update = rp_wtable_update,
    .pick = ip_hash_pick,
};
