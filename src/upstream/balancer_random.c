/*
 * random [two [least_conn]], as nginx's.
 *
 * random: a peer drawn at random by weight (a draw in [0, total weight) found among
 * the running sums of the weights, O(log n)). A draw that lands on a peer that cannot
 * be picked (down, resting, at max_conns, tried by this request) is drawn again; after
 * RP_BALANCER_TRIES such draws the pick falls back to round robin, as nginx's does, so
 * a range where few peers are left still finds them (random two falls back to
 * least_conn's exact choice instead, which keeps to its method where nginx's would not).
 *
 * random two: two distinct peers drawn so, and the one with fewer requests in flight
 * for its weight (counted across all workers in the peer table) is taken: the power
 * of two choices, which keeps loads even without every worker herding onto the same
 * least-loaded peer. least_conn is the only method, and the default, as in nginx.
 *
 * slow_start's ramp applies by rejection (balancer.h). Backups are considered only
 * when no primary can be picked.
 */
#include "upstream/balancer.h"

static rp_upstream_server_t *random_one(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                        const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                        int64_t now)
{
    for (unsigned tries = 0; tries < RP_BALANCER_TRIES; tries++) {
        rp_upstream_server_t *s = rp_wrange_draw(u, set, pk, r, now);
        if (s)
            return s;
    }
    return NULL;
}

static rp_upstream_server_t *random_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                         rp_upstream_pick_t *pk)
{
    int64_t now = pk->now; /* rp_upstream_get_peer read the clock */
    rp_wtable_t *t = set->data;
    for (int b = 0; b <= 1; b++) {
        unsigned from = rp_range_from(set, b), to = rp_range_to(set, b);
        if (from == to)
            continue;
        rp_upstream_server_t *s = NULL;
        /* nginx: a range of one is round robin's (which also honours tried and usable) */
        if (to - from >= 2 && t && t->range[b].total)
            s = u->random_two ? rp_balancer_two(u, set, pk, &t->range[b], now)
                              : random_one(u, set, pk, &t->range[b], now);
        if (s == NULL) /* the draws ran out: nginx goes round robin; two compares loads */
            s = u->random_two ? rp_balancer_lc_scan(u, set, pk, from, to, now)
                              : rp_balancer_rr_scan(u, set, pk, from, to, now);
        if (s)
            return s;
    }
    return NULL;
}

const rp_upstream_balancer_t rp_upstream_random = {
    .name = "random",
    .update = rp_wtable_update,
    .pick = random_pick,
};
