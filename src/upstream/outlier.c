/*
 * Outlier detection's detectors (outlier.h): what an outcome does to a peer's
 * shared counters, when a peer is ejected and for how long, when it comes back,
 * and the interval's success-rate and failure-percentage verdicts. Every function
 * works on rp_peer_shared_t entries wherever they are (the zone, or a unit test's
 * memory) and changes them only with the counters' atomics, since every worker and
 * the helper update the same entries at once.
 */
#include "upstream/outlier.h"

#include <math.h>
#include <stdlib.h>

#define MULTIPLIER_MAX 1000000 /* a corrupt entry cannot overflow the product */

void rp_outlier_conf_default(rp_outlier_conf_t *c)
{
    c->consecutive_5xx = 5;
    c->consecutive_gateway = 3;
    c->consecutive_connect = 2;
    c->interval = 10000;
    c->base_ejection = 30000;
    c->max_ejection = 300000;
    c->max_ejection_percent = 50;
    c->sr_minimum_hosts = 5;
    c->sr_request_volume = 100;
    c->sr_stdev_factor = 1.9;
    c->fp_threshold = 0;
    c->fp_minimum_hosts = 5;
    c->fp_request_volume = 50;
}

const char *rp_outlier_reason_name(int reason)
{
    switch (reason) {
    case RP_OUTLIER_5XX:
        return "consecutive 5xx";
    case RP_OUTLIER_GATEWAY:
        return "consecutive gateway failures";
    case RP_OUTLIER_CONNECT:
        return "consecutive connect failures";
    case RP_OUTLIER_SUCCESS_RATE:
        return "success rate";
    case RP_OUTLIER_FAILURE_PERCENT:
        return "failure percentage";
    }
    return "none";
}

static int sr_on(const rp_outlier_conf_t *c)
{
    return c->sr_minimum_hosts > 0 && c->sr_request_volume > 0 && c->sr_stdev_factor > 0;
}

static int fp_on(const rp_outlier_conf_t *c)
{
    return c->fp_threshold > 0 && c->fp_minimum_hosts > 0 && c->fp_request_volume > 0;
}

int rp_outlier_windowed(const rp_outlier_conf_t *c)
{
    return sr_on(c) || fp_on(c);
}

/* Zeroes a counter that is not zero: a success on a healthy peer then costs a read, not
 * a write to a cache line every worker shares. */
static void clear(rp_shm_counter_t *c)
{
    if (rp_shm_counter_get(c) != 0)
        rp_shm_counter_set(c, 0);
}

/* Counts one more in a row; whether this one met the threshold (off when 0). */
static int bump(rp_shm_counter_t *c, int threshold)
{
    int64_t n = rp_shm_counter_add(c, 1);
    return threshold > 0 && n == threshold;
}

int rp_outlier_record(const rp_outlier_conf_t *c, rp_peer_shared_t *sh,
                      const rp_upstream_outcome_t *o)
{
    if (o->incomplete && !o->failed)
        return RP_OUTLIER_NONE; /* the client went away: nothing learnt about the peer */
    /* a local failure: no answer, or one cut short; an answer with a 5xx status that the
     * retry policy turned away (failed too) is judged by its status */
    int local = o->failed && o->status < 500;
    int bad = local || o->status >= 500;
    if (rp_outlier_windowed(c)) {
        rp_shm_counter_add(&sh->window_requests, 1);
        if (bad)
            rp_shm_counter_add(&sh->window_failures, 1);
    }
    if (!bad) {
        clear(&sh->consec_5xx);
        clear(&sh->consec_gateway);
        clear(&sh->consec_connect);
        return RP_OUTLIER_NONE;
    }
    /* A local failure (no answer, or an answer cut short) counts as a gateway error, as
     * Envoy maps it to one; a failure to connect is the most specific of the three, so
     * when thresholds are met together it is the reason given. */
    int gateway = local || o->status == 502 || o->status == 503 || o->status == 504;
    int hit = RP_OUTLIER_NONE;
    if (o->failed && o->connect) {
        if (bump(&sh->consec_connect, c->consecutive_connect))
            hit = RP_OUTLIER_CONNECT;
    } else {
        clear(&sh->consec_connect); /* the peer was reached */
    }
    if (gateway) {
        if (bump(&sh->consec_gateway, c->consecutive_gateway) && hit == RP_OUTLIER_NONE)
            hit = RP_OUTLIER_GATEWAY;
    } else {
        clear(&sh->consec_gateway);
    }
    if (bump(&sh->consec_5xx, c->consecutive_5xx) && hit == RP_OUTLIER_NONE)
        hit = RP_OUTLIER_5XX;
    return hit;
}

void rp_outlier_reset_consecutive(rp_peer_shared_t *sh)
{
    clear(&sh->consec_5xx);
    clear(&sh->consec_gateway);
    clear(&sh->consec_connect);
}

static int64_t cap_ms(const rp_outlier_conf_t *c)
{
    return c->max_ejection > c->base_ejection ? c->max_ejection : c->base_ejection;
}

int64_t rp_outlier_ejection_ms(const rp_outlier_conf_t *c, int64_t ejections)
{
    if (ejections < 0)
        ejections = 0;
    if (ejections > MULTIPLIER_MAX)
        ejections = MULTIPLIER_MAX;
    int64_t cap = cap_ms(c);
    int64_t ms = c->base_ejection * (ejections + 1);
    return ms > cap || ms <= 0 ? cap : ms;
}

/* The multiplier stops growing once its ejection reaches the cap: past that, a longer
 * run of good behaviour would be needed to bring the time down, for no longer ejection. */
static int64_t multiplier_max(const rp_outlier_conf_t *c)
{
    if (c->base_ejection <= 0)
        return 1;
    int64_t m = (cap_ms(c) + c->base_ejection - 1) / c->base_ejection;
    return m < 1 ? 1 : m > MULTIPLIER_MAX ? MULTIPLIER_MAX : m;
}

int rp_outlier_is_ejected(const rp_peer_shared_t *sh, int64_t now, int checks)
{
    int64_t until = rp_shm_counter_get(&sh->ejected_until);
    return until != 0 && (checks || now < until);
}

unsigned rp_outlier_count_ejected(rp_peer_shared_t *const *pool, unsigned n, int64_t now,
                                  int checks)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        k += rp_outlier_is_ejected(pool[i], now, checks);
    return k;
}

int rp_outlier_share_allows(int pct, unsigned ejected, unsigned n)
{
    if (ejected == 0)
        return 1;
    return (uint64_t)(ejected + 1) * 100 <= (uint64_t)pct * n;
}

int rp_outlier_eject(const rp_outlier_conf_t *c, rp_peer_shared_t *sh, rp_peer_shared_t *const *pool,
                     unsigned n, int64_t now, int checks, int64_t *ms)
{
    int64_t until = rp_shm_counter_get(&sh->ejected_until);
    /* an expired deadline that the interval work has not cleared yet is no ejection
     * (without checks); with checks, a deadline stands until a check clears it */
    if (until != 0 && (checks || now < until))
        return RP_OUTLIER_ALREADY;
    if (!rp_outlier_share_allows(c->max_ejection_percent,
                                 rp_outlier_count_ejected(pool, n, now, checks), n))
        return RP_OUTLIER_REFUSED;
    int64_t e = rp_shm_counter_get(&sh->ejections);
    int64_t len = rp_outlier_ejection_ms(c, e);
    int64_t deadline = now + len;
    if (deadline == 0)
        deadline = 1;
    if (!rp_shm_counter_cas(&sh->ejected_until, &until, deadline))
        return RP_OUTLIER_ALREADY;
    /* Another process may have ejected another peer since the count: count again, with
     * this one out, and step back if that took the pool past its share. */
    unsigned out = rp_outlier_count_ejected(pool, n, now, checks);
    if (out > 1 && !rp_outlier_share_allows(c->max_ejection_percent, out - 1, n)) {
        int64_t mine = deadline;
        rp_shm_counter_cas(&sh->ejected_until, &mine, until);
        return RP_OUTLIER_REFUSED;
    }
    rp_shm_counter_set(&sh->ejection_ended, 0);
    /* only the process whose swap succeeded gets here: the multiplier moves once */
    if (e < multiplier_max(c))
        rp_shm_counter_add(&sh->ejections, 1);
    rp_shm_counter_add(&sh->ejected_total, 1);
    *ms = len;
    return RP_OUTLIER_EJECTED;
}

int rp_outlier_check_return(rp_peer_shared_t *sh, int64_t now, int checks)
{
    int64_t until = rp_shm_counter_get(&sh->ejected_until);
    if (checks) {
        /* the health-check code cleared the deadline after a pass: note when */
        if (until == 0 && rp_shm_counter_get(&sh->ejection_ended) == 0 &&
            rp_shm_counter_get(&sh->ejections) > 0)
            rp_shm_counter_set(&sh->ejection_ended, now);
        return 0;
    }
    if (until == 0 || now < until)
        return 0;
    /* a worker may eject it again meanwhile (from the expired deadline): then the swap
     * fails and that ejection stands */
    if (!rp_shm_counter_cas(&sh->ejected_until, &until, 0))
        return 0;
    rp_shm_counter_set(&sh->ejection_ended, until);
    return 1;
}

int rp_outlier_decay(const rp_outlier_conf_t *c, rp_peer_shared_t *sh, int64_t now, int checks)
{
    if (rp_outlier_is_ejected(sh, now, checks))
        return 0;
    int64_t e = rp_shm_counter_get(&sh->ejections);
    int64_t back = rp_shm_counter_get(&sh->ejection_ended);
    if (e <= 0 || back == 0 || now - back < c->base_ejection)
        return 0;
    /* only the helper decays; the swap keeps an ejection's raise made meanwhile */
    return rp_shm_counter_cas(&sh->ejections, &e, e - 1);
}

/* A peer's success rate in percent, failures clamped to its requests (the two counts are
 * taken one after the other while workers add to both). */
static double success_rate(int64_t req, int64_t fail)
{
    if (fail > req)
        fail = req;
    if (fail < 0)
        fail = 0;
    return 100.0 * (double)(req - fail) / (double)req;
}

double rp_outlier_success_threshold(const rp_outlier_conf_t *c, const int64_t *req,
                                    const int64_t *fail, unsigned n)
{
    if (!sr_on(c))
        return -1;
    unsigned k = 0;
    double sum = 0;
    for (unsigned i = 0; i < n; i++) {
        if (req[i] >= c->sr_request_volume) {
            sum += success_rate(req[i], fail[i]);
            k++;
        }
    }
    if (k == 0 || k < (unsigned)c->sr_minimum_hosts)
        return -1;
    double mean = sum / k, var = 0;
    for (unsigned i = 0; i < n; i++) {
        if (req[i] >= c->sr_request_volume) {
            double d = success_rate(req[i], fail[i]) - mean;
            var += d * d;
        }
    }
    double t = mean - c->sr_stdev_factor * sqrt(var / k);
    return t < 0 ? 0 : t;
}

int rp_outlier_failure_judges(const rp_outlier_conf_t *c, const int64_t *req, unsigned n)
{
    if (!fp_on(c))
        return 0;
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        k += req[i] >= c->fp_request_volume;
    return k >= (unsigned)c->fp_minimum_hosts;
}

/* Takes a window counter's count and starts it again, keeping what workers add between
 * the read and the subtraction. */
static int64_t take(rp_shm_counter_t *w)
{
    int64_t v = rp_shm_counter_get(w);
    if (v != 0)
        rp_shm_counter_add(w, -v);
    return v < 0 ? 0 : v;
}

void rp_outlier_interval(const rp_outlier_conf_t *c, rp_peer_shared_t *const *pool, unsigned n,
                         int64_t now, int checks, rp_outlier_verdict_t *v)
{
    int64_t stack_req[64] = {0}, stack_fail[64] = {0};
    int64_t *req = n <= 64 ? stack_req : malloc(n * sizeof(*req));
    int64_t *fail = n <= 64 ? stack_fail : malloc(n * sizeof(*fail));
    if (req == NULL || fail == NULL)
        abort();
    for (unsigned i = 0; i < n; i++) {
        v[i] = (rp_outlier_verdict_t){.reason = RP_OUTLIER_NONE, .threshold = -1};
        req[i] = v[i].requests = take(&pool[i]->window_requests);
        fail[i] = v[i].failures = take(&pool[i]->window_failures);
        /* decay first: an ejection this interval raises the multiplier afresh */
        v[i].decayed = (unsigned)rp_outlier_decay(c, pool[i], now, checks);
    }
    double t = rp_outlier_success_threshold(c, req, fail, n);
    int fp = rp_outlier_failure_judges(c, req, n);
    for (unsigned i = 0; i < n; i++) {
        int reason = RP_OUTLIER_NONE;
        if (t >= 0 && req[i] >= c->sr_request_volume && success_rate(req[i], fail[i]) < t)
            reason = RP_OUTLIER_SUCCESS_RATE;
        else if (fp && req[i] >= c->fp_request_volume &&
                 100.0 - success_rate(req[i], fail[i]) >= (double)c->fp_threshold)
            reason = RP_OUTLIER_FAILURE_PERCENT;
        v[i].threshold = t;
        if (reason == RP_OUTLIER_NONE)
            continue;
        v[i].reason = reason;
        v[i].result = rp_outlier_eject(c, pool[i], pool, n, now, checks, &v[i].ms);
    }
    if (req != stack_req)
        free(req);
    if (fail != stack_fail)
        free(fail);
}
