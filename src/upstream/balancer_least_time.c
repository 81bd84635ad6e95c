/*
 * least_time header | last_byte [inflight] (nginx Plus's grammar), balanced as
 * Finagle's and linkerd's peak-EWMA balancer: each peer's cost is its latency as a
 * peak EWMA (rp_upstream_peer_latency: to the response head, or to the last byte)
 * times the requests it has in flight, for its weight:
 *
 *     cost = (latency_ms + 1) * (inflight + 1) / weight
 *
 * and a pick draws two distinct candidates at random and takes the cheaper (the power
 * of two choices). A slow peer is avoided at once (the peak EWMA jumps to a slow
 * sample); as it goes unpicked its average decays toward zero with time (tau 10s),
 * so it is tried again later and keeps its share if it has recovered. The in-flight
 * factor makes a fast peer that is piling up requests look slower before its
 * latencies show it, and the random pair keeps every worker from herding onto the
 * one cheapest peer. The averages and counts are the peer table's, so all workers
 * learn from every response.
 *
 * `inflight` makes requests that ended before their last byte (the client went away)
 * count toward the last-byte average with the time they took (rp_upstream_free_peer),
 * as nginx Plus counts incomplete requests.
 *
 * When the draws keep hitting peers that cannot be picked, the range is scanned for
 * its cheapest candidate instead. Backups are considered only when no primary can be
 * picked.
 */
#include "upstream/balancer.h"
#include "core/random.h"

#define LT_DRAWS 8 /* random draws for each of the two before a scan */

static double cost(const rp_upstream_conf_t *u, const rp_upstream_server_t *s, int64_t now)
{
    double lat = rp_upstream_peer_latency(s, u->lt_measure == RP_LT_LAST_BYTE, now);
    int64_t inflight = rp_shm_counter_get(&s->sh->inflight);
    if (inflight < 0)
        inflight = 0;
    return (lat + 1.0) * (double)(inflight + 1) / (double)rp_upstream_peer_weight(s, now);
}

static rp_upstream_server_t *lt_scan(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                     const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                     int64_t now)
{
    rp_upstream_server_t *best = NULL;
    double best_cost = 0;
    unsigned ties = 0;
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_balancer_candidate(u, pk, s, now))
            continue;
        double c = cost(u, s, now);
        if (best == NULL || c < best_cost) {
            best = s;
            best_cost = c;
            ties = 1;
        } else if (c == best_cost && rp_random_below(++ties) == 0) {
            best = s; /* equal costs (idle peers not yet measured): any of them, evenly */
        }
    }
    return best;
}

/* A uniformly drawn candidate of [from, to) other than not; NULL after LT_DRAWS misses. */
static rp_upstream_server_t *draw(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                  const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                  const rp_upstream_server_t * not, int64_t now)
{
    for (unsigned k = 0; k < LT_DRAWS; k++) {
        rp_upstream_server_t *s = set->peer[from + rp_random_below(to - from)];
        if (s != not &&rp_balancer_candidate(u, pk, s, now))
            return s;
    }
    return NULL;
}

static rp_upstream_server_t *lt_range(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                      const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                      int64_t now)
{
    if (to - from <= 2)
        return lt_scan(u, set, pk, from, to, now); /* the pair is the range */
    rp_upstream_server_t *a = draw(u, set, pk, from, to, NULL, now);
    rp_upstream_server_t *b = a ? draw(u, set, pk, from, to, a, now) : NULL;
    if (b == NULL)
        return lt_scan(u, set, pk, from, to, now); /* few are left: find them */
    return cost(u, b, now) < cost(u, a, now) ? b : a;
}

static rp_upstream_server_t *lt_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                     rp_upstream_pick_t *pk)
{
    int64_t now = pk->now; /* rp_upstream_get_peer read the clock */
    rp_upstream_server_t *s = lt_range(u, set, pk, 0, set->nprimary, now);
    return s ? s : lt_range(u, set, pk, set->nprimary, set->n, now);
}

const rp_upstream_balancer_t rp_upstream_least_time = {
    .name = "least_time",
    .pick = lt_pick,
};
