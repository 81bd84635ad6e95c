/*
 * The weight tables the balancers draw from (balancer.h): per range, the running
 * sums of the peers' base weights, so a draw of x in [0, total) finds its peer by
 * binary search, as nginx's random does over its ranges and as its hash and ip_hash
 * walk the weights (the same peer for the same x, in O(log n) instead of O(n)).
 */
#include "upstream/balancer.h"
#include "core/random.h"

#include <stdlib.h>

static void wrange_build(rp_wrange_t *r, const rp_upstream_peers_t *set, unsigned from, unsigned to)
{
    r->from = from;
    r->to = to;
    r->total = 0;
    r->end = to > from ? rp_xmalloc((to - from) * sizeof(*r->end)) : NULL;
    for (unsigned i = from; i < to; i++) {
        r->total += (uint64_t)rp_balancer_base_weight(set->peer[i]);
        r->end[i - from] = r->total;
    }
}

void rp_wtable_build(rp_wtable_t *t, const rp_upstream_peers_t *set)
{
    wrange_build(&t->range[0], set, 0, set->nprimary);
    wrange_build(&t->range[1], set, set->nprimary, set->n);
}

void rp_wtable_free(rp_wtable_t *t)
{
    free(t->range[0].end);
    free(t->range[1].end);
    t->range[0].end = t->range[1].end = NULL;
}

unsigned rp_wrange_find(const rp_wrange_t *r, uint64_t x)
{
    /* the first peer whose running sum exceeds x */
    unsigned lo = 0, hi = r->to - r->from - 1;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (x < r->end[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return r->from + lo;
}

rp_upstream_server_t *rp_wrange_draw(rp_upstream_conf_t *u, const rp_upstream_peers_t *set,
                                     const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                     int64_t now)
{
    uint64_t x = rp_random();
    rp_upstream_server_t *s = set->peer[rp_wrange_find(r, x % r->total)];
    if (!rp_balancer_candidate(u, pk, s, now))
        return NULL;
    /* the draw's unused high bits decide the ramp: no second random number */
    return rp_balancer_ramp_accept(s, now, rp_balancer_mix(x)) ? s : NULL;
}

void rp_wtable_update(rp_upstream_conf_t *u, rp_upstream_peers_t *set, void *old_data)
{
    if (old_data) {
        rp_wtable_free(old_data);
        free(old_data);
    }
    if (set == NULL)
        return;
    rp_wtable_t *t = rp_xmalloc(sizeof(*t));
    rp_wtable_build(t, set);
    set->data = t;
}
