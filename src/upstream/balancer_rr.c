/*
 * Weighted round robin, the default balancer.
 *
 * Up to RP_BALANCER_SMALL peers in a range: nginx's smooth weighted round robin.
 * Every pick adds each candidate's effective weight to its current weight, takes
 * the largest, and subtracts the total from the winner, so weights 5:1:1 give
 * a a b a c a a rather than bursts, exactly as nginx orders them. That is a scan of
 * the range per pick.
 *
 * Beyond that, an earliest-deadline-first schedule (as Envoy's EDF scheduler): each
 * peer has a deadline in virtual time, a binary heap keeps the earliest on top, and
 * a pick takes the top and moves its deadline on by 1/weight, so over any stretch
 * each peer is picked in proportion to its weight, with the picks of a peer spread
 * evenly, in O(log n). The weight is read at every turn, so slow_start's ramp and
 * run-time overrides take effect at once. A peer that cannot be picked when its turn
 * comes (down, resting, at max_conns, tried by this request) loses that turn: its
 * deadline moves on as if picked, so it keeps pace with the others and does not
 * crowd the top of the heap while it is out. Each worker starts its schedule at a
 * random phase, so workers do not all begin with the same peer.
 *
 * The current weights and the heaps are per worker (no lock, no shared write per
 * pick); each worker's sequence holds the shares, so their sum does. Effective
 * weights come from the peer table (a run-time override, slow_start's ramp).
 * Backups are considered only when no primary can be picked.
 */
#include "upstream/balancer.h"
#include "core/random.h"
#include "core/time.h"

#include <stdlib.h>

#define EDF_STEP   (1ull << 40) /* a turn is EDF_STEP / weight in hundredths: 2^40/100 at 1 */
#define EDF_REBASE (1ull << 62) /* deadlines past this are moved back toward zero */

rp_upstream_server_t *rp_balancer_rr_scan(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                          const rp_upstream_pick_t *pk, unsigned from, unsigned to,
                                          int64_t now)
{
    rp_upstream_server_t *best = NULL;
    int64_t total = 0; /* 10,000 peers of weight 1,000,000 overflow an int */
    for (unsigned i = from; i < to; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (!rp_balancer_candidate(u, pk, s, now))
            continue;
        int64_t w = rp_upstream_peer_weight(s, now);
        s->current_weight += w;
        total += w;
        if (best == NULL || s->current_weight > best->current_weight)
            best = s;
    }
    if (best)
        best->current_weight -= total;
    return best;
}

/* ---- the earliest-deadline-first schedule of a large range ---- */

typedef struct {
    uint64_t deadline;
    uint32_t idx; /* in set->peer */
} edf_entry_t;

typedef struct {
    edf_entry_t *heap; /* NULL: the range is small enough to scan */
    unsigned n;
} edf_t;

typedef struct {
    edf_t range[2]; /* primaries, backups */
} rr_data_t;

static int edf_before(const edf_entry_t *a, const edf_entry_t *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->idx < b->idx);
}

static void edf_sift_down(edf_t *e, unsigned i)
{
    edf_entry_t x = e->heap[i];
    for (;;) {
        unsigned c = 2 * i + 1;
        if (c >= e->n)
            break;
        if (c + 1 < e->n && edf_before(&e->heap[c + 1], &e->heap[c]))
            c++;
        if (!edf_before(&e->heap[c], &x))
            break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    e->heap[i] = x;
}

static uint64_t edf_turn(int w)
{
    return EDF_STEP / (uint64_t)(w > 0 ? w : 1);
}

static void edf_build(edf_t *e, const rp_upstream_peers_t *set, unsigned from, unsigned to,
                      int64_t now)
{
    e->n = to - from;
    e->heap = rp_xmalloc(e->n * sizeof(*e->heap));
    for (unsigned i = 0; i < e->n; i++) {
        /* a random phase within each peer's first turn */
        uint64_t turn = edf_turn(rp_upstream_peer_weight(set->peer[from + i], now));
        e->heap[i].deadline = rp_random_below(turn);
        e->heap[i].idx = from + i;
    }
    for (unsigned i = e->n / 2; i-- > 0;)
        edf_sift_down(e, i);
}

/* Virtual time only grows; long before it could wrap, every deadline moves back by the
 * earliest (once in billions of picks, O(n)). */
static void edf_rebase(edf_t *e)
{
    uint64_t base = e->heap[0].deadline;
    for (unsigned i = 0; i < e->n; i++)
        e->heap[i].deadline -= base;
}

static rp_upstream_server_t *edf_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                      const rp_upstream_pick_t *pk, edf_t *e, int64_t now)
{
    if (e->heap[0].deadline > EDF_REBASE)
        edf_rebase(e);
    /* at most one turn each: a range with no candidate at all costs O(n log n) */
    for (unsigned k = 0; k < e->n; k++) {
        edf_entry_t *top = &e->heap[0];
        rp_upstream_server_t *s = set->peer[top->idx];
        top->deadline += edf_turn(rp_upstream_peer_weight(s, now));
        edf_sift_down(e, 0);
        if (rp_balancer_candidate(u, pk, s, now))
            return s;
    }
    return NULL;
}

static void rr_update(rp_upstream_conf_t *u, rp_upstream_peers_t *set, void *old_data)
{
    rr_data_t *old = old_data;
    if (old) {
        free(old->range[0].heap);
        free(old->range[1].heap);
        free(old);
    }
    if (set == NULL)
        return;
    rr_data_t *d = rp_xcalloc(1, sizeof(*d));
    int64_t now = rp_time_ms();
    for (int b = 0; b <= 1; b++) {
        unsigned from = rp_range_from(set, b), to = rp_range_to(set, b);
        if (to - from > RP_BALANCER_SMALL)
            edf_build(&d->range[b], set, from, to, now);
    }
    set->data = d;
}

static rp_upstream_server_t *rr_pick(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                     rp_upstream_pick_t *pk)
{
    int64_t now = pk->now; /* rp_upstream_get_peer read the clock */
    rr_data_t *d = set->data;
    for (int b = 0; b <= 1; b++) {
        rp_upstream_server_t *s =
            d && d->range[b].heap
                ? edf_pick(u, set, pk, &d->range[b], now)
                : rp_balancer_rr_scan(u, set, pk, rp_range_from(set, b), rp_range_to(set, b), now);
        if (s)
            return s;
    }
    return NULL;
}

const rp_upstream_balancer_t rp_upstream_round_robin = {
    .name = "round_robin",
    .update = rr_update,
    .pick = rr_pick,
};
