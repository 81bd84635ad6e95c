/*
 * Outlier detection (passive health): the detectors, as pure functions over peers'
 * entries of the shared peer table (rp_peer_shared_t), so that they are tested on
 * entries in ordinary memory, without sockets or a mapped zone. outlier_module.c
 * is the shell: the `outlier_detection` and `panic_threshold` directives, the
 * observer that feeds every attempt's outcome in (in the worker that made it), and
 * the interval timer (once per node, in the helper).
 *
 * The model is Envoy's. Consecutive detectors run inline, on the outcome that
 * reaches their threshold; the counters are shared, so the count is the pool's
 * across all workers. Success rate and failure percentage run every interval
 * over the window of outcomes the interval gathered. An ejection lasts
 * base_ejection_time x (the peer's multiplier + 1), capped at
 * max(base_ejection_time, max_ejection_time); each ejection raises the multiplier,
 * and every interval a peer that has been back for base_ejection_time or longer
 * lowers it by one, so a peer that flaps is kept out longer each time and one that
 * recovered is forgiven. No ejection takes the pool past max_ejection_percent of
 * its peers ejected, except that one peer may always be.
 *
 * Without active checks an ejected peer comes back when its time is up (the workers
 * compare the deadline with their clock; the interval work logs the return and
 * clears the deadline); with active checks it stays out past the time until a
 * check passes, and the health-check code clears the deadline.
 */
#ifndef RP_OUTLIER_H
#define RP_OUTLIER_H

#include "conf/conf.h"
#include "upstream/peers.h"

#include <stdint.h>

typedef struct {
    int consecutive_5xx;      /* 5xx responses and local failures in a row; 0: off */
    int consecutive_gateway;  /* 502/503/504 and local failures in a row; 0: off */
    int consecutive_connect;  /* failures to connect in a row; 0: off */
    int64_t interval;         /* ms between the interval detectors' runs */
    int64_t base_ejection;    /* ms */
    int64_t max_ejection;     /* ms: the cap is the larger of this and base_ejection */
    int max_ejection_percent; /* of the pool's peers ejected at once */
    int sr_minimum_hosts;     /* success rate: peers with the volume needed; 0: off */
    int sr_request_volume;    /* ... requests in the interval for a peer to count; 0: off */
    double sr_stdev_factor;   /* outlier below mean - factor x stdev; 0: off */
    int fp_threshold;         /* failure percentage: outlier at or above it; 0: off */
    int fp_minimum_hosts;     /* 0: off */
    int fp_request_volume;    /* 0: off */
} rp_outlier_conf_t;

/* Why a peer was found an outlier. */
enum {
    RP_OUTLIER_NONE = 0,
    RP_OUTLIER_5XX,
    RP_OUTLIER_GATEWAY,
    RP_OUTLIER_CONNECT,
    RP_OUTLIER_SUCCESS_RATE,
    RP_OUTLIER_FAILURE_PERCENT,
};

/* What an ejection attempt did. */
enum {
    RP_OUTLIER_EJECTED = 0, /* the peer is out for the time returned */
    RP_OUTLIER_ALREADY,     /* it was ejected already (or another process just ejected it) */
    RP_OUTLIER_REFUSED,     /* max_ejection_percent: the pool has too many out */
};

/* Envoy's defaults, with max_ejection_percent 50 and failure percentage off. */
void rp_outlier_conf_default(rp_outlier_conf_t *c);

/* The reason's words for the log ("consecutive 5xx", "success rate", ...). */
const char *rp_outlier_reason_name(int reason);

/* Whether any interval detector is on (then every outcome counts in the window). */
int rp_outlier_windowed(const rp_outlier_conf_t *c);

/*
 * Folds one attempt's outcome into sh: a 5xx response (retried or not) or a local
 * failure (connect error, timeout, reset, an answer cut short: o->failed without a 5xx
 * status) counts toward consecutive_5xx; 502, 503, 504 and
 * local failures toward consecutive_gateway (another 5xx ends that run); a failure
 * to connect toward consecutive_connect (any other ending ends that run); any other
 * response ends all three. An outcome that ended for another reason (the client went
 * away: o->incomplete) counts nothing. With an interval detector on, it also counts
 * in the window. Returns the detector whose threshold this outcome reached, or
 * RP_OUTLIER_NONE: the counters are shared and the threshold is met by exactly one
 * increment, so exactly one caller across all processes sees it.
 */
int rp_outlier_record(const rp_outlier_conf_t *c, rp_peer_shared_t *sh,
                      const rp_upstream_outcome_t *o);

/* Zeroes sh's consecutive counters (after an ejection attempt, as Envoy). */
void rp_outlier_reset_consecutive(rp_peer_shared_t *sh);

/* How long the next ejection of a peer whose multiplier is `ejections` lasts (ms):
 * base x (ejections + 1), capped at max(base, max_ejection). */
int64_t rp_outlier_ejection_ms(const rp_outlier_conf_t *c, int64_t ejections);

/* Whether sh is ejected at now; checks: the pool has active checks (an ejection then
 * lasts until they clear it). */
int rp_outlier_is_ejected(const rp_peer_shared_t *sh, int64_t now, int checks);

/* How many of pool[0..n) are ejected at now. */
unsigned rp_outlier_count_ejected(rp_peer_shared_t *const *pool, unsigned n, int64_t now,
                                  int checks);

/* Whether max_ejection_percent pct lets one more of n peers out while `ejected` are:
 * (ejected + 1) of n within pct, or none out yet (one may always be). */
int rp_outlier_share_allows(int pct, unsigned ejected, unsigned n);

/*
 * Ejects sh, one of the pool's peers pool[0..n), at now: RP_OUTLIER_EJECTED with the
 * ejection's length in *ms, RP_OUTLIER_ALREADY or RP_OUTLIER_REFUSED. The deadline is
 * set by compare-and-swap, so two processes ejecting the same peer eject it once;
 * the pool is counted again after the swap, and an ejection that another process's
 * (of another peer) took past max_ejection_percent is undone: two racing ejections
 * may both be undone, which errs toward keeping capacity. The consecutive counters
 * are left to the caller (rp_outlier_reset_consecutive).
 */
int rp_outlier_eject(const rp_outlier_conf_t *c, rp_peer_shared_t *sh, rp_peer_shared_t *const *pool,
                     unsigned n, int64_t now, int checks, int64_t *ms);

/*
 * The end of sh's ejection, checked by the interval work: without active checks a
 * peer whose time is up is back (the workers already send it traffic); its deadline
 * is cleared and 1 returned, once, for the caller to log. With active checks the
 * health-check code clears the deadline; the moment is noted here all the same (for
 * the multiplier's decay) and 0 returned.
 */
int rp_outlier_check_return(rp_peer_shared_t *sh, int64_t now, int checks);

/* Lowers sh's multiplier by one if it has been back for base_ejection_time or more
 * (once per interval, as Envoy); returns 1 when it did. */
int rp_outlier_decay(const rp_outlier_conf_t *c, rp_peer_shared_t *sh, int64_t now, int checks);

/*
 * Success rate: among the peers i with req[i] >= sr_request_volume, if there are
 * sr_minimum_hosts or more, the threshold in percent under which one is an outlier:
 * mean - sr_stdev_factor x stdev of their success rates (100 x (req - fail) / req).
 * -1 when the detector is off or too few peers had the volume.
 */
double rp_outlier_success_threshold(const rp_outlier_conf_t *c, const int64_t *req,
                                    const int64_t *fail, unsigned n);

/* Whether failure percentage judges this interval: fp_minimum_hosts or more peers had
 * fp_request_volume requests (and the detector is on). */
int rp_outlier_failure_judges(const rp_outlier_conf_t *c, const int64_t *req, unsigned n);

/* One peer's verdict of an interval, for the caller's log. */
typedef struct {
    int reason;       /* RP_OUTLIER_SUCCESS_RATE or _FAILURE_PERCENT, or NONE */
    int result;       /* with a reason: RP_OUTLIER_EJECTED, _ALREADY or _REFUSED */
    int64_t ms;       /* with EJECTED: the ejection's length */
    int64_t requests; /* the interval's window */
    int64_t failures;
    double threshold; /* success rate: the pool's threshold in percent */
    unsigned decayed : 1; /* its multiplier went down */
} rp_outlier_verdict_t;

/*
 * The interval's work on pool[0..n) at now: takes each peer's window (the counts
 * gathered since the last run, which start again from zero), ejects the outliers of
 * success rate and failure percentage (max_ejection_percent applies), and decays
 * the multipliers of peers back long enough. v[i] says what happened to pool[i].
 */
void rp_outlier_interval(const rp_outlier_conf_t *c, rp_peer_shared_t *const *pool, unsigned n,
                         int64_t now, int checks, rp_outlier_verdict_t *v);

/* ---- the module (outlier_module.c) ---- */

extern rp_module_t rp_outlier_module;

/* u's outlier_detection settings, NULL when it has none (for upstream_status). */
const rp_outlier_conf_t *rp_outlier_conf_of(const rp_upstream_conf_t *u);

#endif
