/*
 * least_conn, as nginx's: the candidate with the fewest requests in flight for its
 * weight, counted across all workers in the peer table (nginx counts per worker
 * unless a zone is configured; here there always is one); ties go round robin among
 * the tied peers, so with equal loads the shares follow the weights exactly.
 *
 * That is a scan of the range, which is what nginx does and what a range of up to
 * RP_BALANCER_SMALL peers keeps. An exact least over thousands of peers cannot be
 * kept in a per-worker structure (the counts move in every worker at once) and a
 * scan of them costs microseconds per request, so a larger range is balanced by the
 * power of two choices instead (Envoy's least_request, nginx's `random two`): two
 * distinct candidates drawn by weight, the one with fewer in flight for its weight.
 * The drawn pair is random, so no peer is herded on, and the most loaded peer stays
 * within O(log log n) of the mean (Mitzenmacher). Draws that keep hitting peers that
 * cannot be picked fall back to the exact scan.
 *
 * Backups are considered only when no primary can be picked.
 */
#include "upstream/balancer.h"

#include <stdlib.h>

/* Whether a carries less load than b for their weights: inflight_a / w_a < inflight_b / w_b. */
static int lighter(int64_t load_a, int64_t w_a, int64_t load_b, int64_t w_b)
{
    return load_a * w_b < load_b * w_a;
}

rp_upstream_server_t *rp_balancer_lc_scan(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                          const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                          int64_t now)
{
    rp_upstream_server_t *best = NULL;
    int64_t best_load = 0, best_w = 1;
    unsigned ties = 0;
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_balancer_candidate(u, pk, s, now))
            continue;
        int64_t load = rp_shm_counter_get(&s->sh->inflight);
        int64_t w = rp_upstream_peer_weight(s, now);
        if (best == NULL || lighter(load, w, best_load, best_w)) {
            best = s;
            best_load = load;
            best_w = w;
            ties = 1;
        } else if (load * best_w == best_load * w) {
            ties++;
        }
    }
    if (best == NULL || ties == 1)
        return best;
    /* several with the same load: smooth round robin among them */
    rp_upstream_server_t *pick = NULL;
    int64_t total = 0;
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_balancer_candidate(u, pk, s, now))
            continue;
        int64_t w = rp_upstream_peer_weight(s, now);
        if (rp_shm_counter_get(&s->sh->inflight) * best_w != best_load * w)
            continue;
        s->current_weight += w;
        total += w;
        if (pick == NULL || s->current_weight > pick->current_weight)
            pick = s;
    }
    if (pick == NULL)
        return best; /* the counts moved under us: the first least one will do */
    pick->current_weight -= total;
    return pick;
}

rp_upstream_server_t *rp_balancer_two(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                      const rp_upstream_pick_t *pk, const rp_wrange_t *r,
                                      int64_t now)
{
    rp_upstream_server_t *first = NULL;
    for (unsigned tries = 0; tries < RP_BALANCER_TRIES; tries++) {
        rp_upstream_server_t *s = rp_wrange_draw(u, set, pk, r, now);
        if (s == NULL || s == first)
            continue;
        if (first == NULL) {
            first = s;
            continue;
        }
        int64_t la = rp_shm_counter_get(&first->sh->inflight);
        int64_t lb = rp_shm_counter_get(&s->sh->inflight);
        return lighter(lb, rp_upstream_peer_weight(s, now), la, rp_upstream_peer_weight(first, now))
                   ? s
                   : first;
    }
    return NULL;
}

static rp_upstream_server_t *lc_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                     rp_upstream_pick_t *pk)
{
    int64_t now = pk->now; /* rp_upstream_get_peer read the clock */
    rp_wtable_t *t = set->data;
    for (int b = 0; b <= 1; b++) {
        unsigned from = rp_range_from(set, b), to = rp_range_to(set, b);
        if (from == to)
            continue;
        rp_upstream_server_t *s = NULL;
        if (to - from > RP_BALANCER_SMALL && t && t->range[b].total)
            s = rp_balancer_two(u, set, pk, &t->range[b], now);
        if (s == NULL)
            s = rp_balancer_lc_scan(u, set, pk, from, to, now);
        if (s)
            return s;
    }
    return NULL;
}

const rp_upstream_balancer_t rp_upstream_least_conn = {
    .name = "least_conn",
    .update = rp_wtable_update,
    .pick = lc_pick,
};
