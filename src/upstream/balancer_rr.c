/*
 * Smooth weighted round robin (the default) and least_conn, as nginx's.
 *
 * Round robin: every pick adds each usable peer's effective weight to its current
 * weight, takes the largest, and subtracts the total from the winner, so weights
 * 5:1:1 give a a b a c a a rather than bursts. The current weights are per worker
 * (no lock, no shared write per pick); each worker's sequence holds the shares, so
 * their sum does. Effective weights come from the peer table (a run-time override,
 * slow_start's ramp).
 *
 * least_conn: the usable peer with the fewest requests in flight for its weight,
 * counted across all workers in the peer table (nginx counts per worker unless a
 * zone is configured; here there is always one); ties go round robin among the tied
 * peers, as nginx.
 *
 * Backups are considered only when no primary is usable, for both.
 */
#include "upstream/upstream.h"

static rp_upstream_server_t *rr_range(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                      rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                      int64_t now)
{
    rp_upstream_server_t *best = NULL;
    int total = 0;
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_upstream_peer_usable(u, s, now) || rp_upstream_tried(pk, s))
            continue;
        int w = rp_upstream_peer_weight(s, now);
        s->current_weight += w;
        total += w;
        if (best == NULL || s->current_weight > best->current_weight)
            best = s;
    }
    if (best)
        best->current_weight -= total;
    return best;
}

static rp_upstream_server_t *rr_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                     rp_upstream_pick_t *pk)
{
    int64_t now = pk->now;
    rp_upstream_server_t *s = rr_range(u, set, pk, 0, set->nprimary, now);
    return s ? s : rr_range(u, set, pk, set->nprimary, set->n, now);
}

const rp_upstream_balancer_t rp_upstream_round_robin = {
    .name = "round_robin",
    .pick = rr_pick,
};

static rp_upstream_server_t *lc_range(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                      rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                      int64_t now)
{
    /* the least load: inflight / weight, compared as inflight_a * w_b < inflight_b * w_a */
    rp_upstream_server_t *best = NULL;
    int64_t best_load = 0;
    int best_w = 1, ties = 0;
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_upstream_peer_usable(u, s, now) || rp_upstream_tried(pk, s))
            continue;
        int64_t load = rp_shm_counter_get(&s->sh->inflight);
        int w = rp_upstream_peer_weight(s, now);
        if (best == NULL || load * best_w < best_load * w) {
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
    int total = 0;
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_upstream_peer_usable(u, s, now) || rp_upstream_tried(pk, s))
            continue;
        int w = rp_upstream_peer_weight(s, now);
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

static rp_upstream_server_t *lc_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                     rp_upstream_pick_t *pk)
{
    int64_t now = pk->now;
    rp_upstream_server_t *s = lc_range(u, set, pk, 0, set->nprimary, now);
    return s ? s : lc_range(u, set, pk, set->nprimary, set->n, now);
}

const rp_upstream_balancer_t rp_upstream_least_conn = {
    .name = "least_conn",
    .pick = lc_pick,
};
