/*
 * What the balancers (balancer_*.c) share, and nothing outside them uses: the test
 * for a candidate, the two ranges of a peer set, tables of weights drawn from in
 * logarithmic time, slow_start's ramp applied to a draw, and the round robin scan
 * that the others fall back to.
 *
 * Sizes. A pick must stay flat or logarithmic however large the pool (a DNS name
 * may stand for hundreds of addresses, a service mesh for thousands): a balancer
 * scans a range only when it holds at most RP_BALANCER_SMALL peers (where nginx's
 * exact sequences are kept), or when draws kept hitting peers that cannot be
 * picked (most of the range is down, resting or tried, and a scan is the only
 * way to find the few that are left). Per-worker structures (heaps, weight
 * tables, rings) are made by a balancer's update hook when a process builds a
 * peer set, never per pick.
 *
 * Weights. A table is built from each peer's base weight (the configured one, or
 * the run-time override in the peer table when the set was built); the weight of
 * the moment (rp_upstream_peer_weight: slow_start's ramp) is applied to a draw by
 * rejection, so a ramping peer takes its ramped share without a table rebuilt per
 * pick. Hash balancers reject by the key instead of by chance, so a key that a
 * ramping peer took stays with it as the ramp goes on.
 */
#ifndef RP_BALANCER_H
#define RP_BALANCER_H

#include "upstream/upstream.h"

#include <stdint.h>

#define RP_BALANCER_SMALL 64 /* a range of at most this many peers may be scanned per pick */
#define RP_BALANCER_TRIES 20 /* nginx's draws before a balancer falls back to round robin */

/* The consistent hash (`hash KEY consistent`): a table of its own, named "hash" too. */
extern const rp_upstream_balancer_t rp_upstream_hash_consistent;

/* The two ranges of a set: primaries [0, nprimary), backups [nprimary, n). */
static inline unsigned rp_range_from(const rp_upstream_peers_t *set, int backup)
{
    return backup ? set->nprimary : 0;
}

static inline unsigned rp_range_to(const rp_upstream_peers_t *set, int backup)
{
    return backup ? set->n : set->nprimary;
}

/* Whether a pick may return s: not tried by this request, and usable now. */
static inline int rp_balancer_candidate(rp_upstream_conf_t *u, const rp_upstream_pick_t *pk,
                                        rp_upstream_server_t *s, int64_t now)
{
    return !rp_upstream_tried(pk, s) && rp_upstream_peer_usable(u, s, now);
}

/* s's weight for tables, in the configuration's units (so a hash lands where nginx's
 * does): the configured weight, or the run-time override the peer table holds now. */
static inline int64_t rp_balancer_base_weight(const rp_upstream_server_t *s)
{
    int64_t w = rp_shm_counter_get(&s->sh->weight);
    return w > 0 ? w : s->weight;
}

/*
 * Whether s takes a pick that a table drew by its base weight, while slow_start ramps
 * it up: yes with probability (weight now) / (base weight), decided by draw (64 bits,
 * uniform: random for a random draw, a function of the key for a hash). Always yes for
 * a peer without slow_start or past its ramp.
 */
static inline int rp_balancer_ramp_accept(const rp_upstream_server_t *s, int64_t now, uint64_t draw)
{
    if (s->slow_start == 0)
        return 1;
    int64_t w = rp_upstream_peer_weight(s, now);
    int64_t base = rp_balancer_base_weight(s) * 100; /* in rp_upstream_peer_weight's units */
    return w >= base || (int64_t)(draw % (uint64_t)base) < w;
}

/* A 64-bit mix of x (splitmix64's finalizer): turns a key hash into a uniform draw. */
static inline uint64_t rp_balancer_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ---- weight tables: a draw by weight in O(log n) ---- */

/* One range of a set: end[i] is the sum of the base weights of peers from..from+i. */
typedef struct {
    unsigned from, to;
    uint64_t total; /* 0: an empty range */
    uint64_t *end;
} rp_wrange_t;

/* Both ranges of a set. */
typedef struct {
    rp_wrange_t range[2]; /* primaries, backups */
} rp_wtable_t;

/* Builds t for set (base weights as they are now). */
void rp_wtable_build(rp_wtable_t *t, const rp_upstream_peers_t *set);

/* Frees what rp_wtable_build allocated (t itself is the caller's). */
void rp_wtable_free(rp_wtable_t *t);

/* The index in set->peer of the peer whose share of r holds x (x < r->total). */
unsigned rp_wrange_find(const rp_wrange_t *r, uint64_t x);

/* One random draw from r by base weight: the peer drawn if it is a candidate and the
 * ramp accepts it, else NULL (the caller counts its tries). */
rp_upstream_server_t *rp_wrange_draw(rp_upstream_conf_t *u, const rp_upstream_peers_t *set,
                                     const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                     int64_t now);

/* An update hook for balancers whose per-worker data is a weight table. */
void rp_wtable_update(rp_upstream_conf_t *u, rp_upstream_peers_t *set, void *old_data);

/* ---- hashing ---- */

/* Sets pk->key from the request at its first pick, when a test did not: hash KEY's
 * value, or ip_hash's address bytes (an empty key without a request). */
void rp_balancer_hash_key(rp_upstream_conf_t *u, rp_upstream_pick_t *pk);

/* ---- round robin, the fallback of the others ---- */

/*
 * nginx's smooth weighted round robin over set->peer[from, to): the candidate whose
 * running score, raised by its weight at every scan, is highest; O(to - from). What
 * nginx's other balancers fall back to after RP_BALANCER_TRIES fruitless draws.
 */
rp_upstream_server_t *rp_balancer_rr_scan(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                          const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                          int64_t now);

/* Power of two choices: two distinct usable, untried peers drawn by weight from r, the
 * one with fewer requests in flight for its weight (random two, least_conn on large
 * pools); NULL when the draws ran out first. */
rp_upstream_server_t *rp_balancer_two(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                      const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                      int64_t now);

/*
 * least_conn's exact choice over set->peer[from, to): the candidate with the fewest
 * requests in flight for its weight, ties by smooth round robin; O(to - from). What
 * the balancers that compare loads fall back to when their draws run out.
 */
rp_upstream_server_t *rp_balancer_lc_scan(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                          const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                          int64_t now);

#endif
