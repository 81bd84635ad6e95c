/*
 * The outlier module: passive health from real traffic, in the `upstream` block.
 *
 *   upstream api {
 *       server 10.0.0.1:8080;
 *       server 10.0.0.2:8080;
 *       outlier_detection consecutive_5xx=5 interval=10s base_ejection_time=30s;
 *       panic_threshold 50;
 *   }
 *
 * `outlier_detection [NAME=VALUE ...]` turns detection on with Envoy's parameters
 * (outlier.h has the detectors); `panic_threshold PERCENT` says below which share of
 * healthy peers the pool balances over all of them (peers.c applies it).
 *
 * Three places run the detection. Every worker feeds each attempt's outcome to the
 * pool's observer, which counts in the shared peer table and ejects a peer inline
 * when a consecutive detector's threshold is met, so the count is the node's and
 * not a worker's. The helper (once per node; the single process with
 * master_process off) runs a timer per pool: every `interval` the success-rate and
 * failure-percentage detectors and the multipliers' decay, and every second (or
 * interval, if shorter) the returns of peers whose ejection time is over, which it
 * logs. The state is all in the peer table, so a reload keeps who is ejected and
 * until when.
 */
#include "upstream/outlier.h"
#include "upstream/upstream.h"
#include "core/log.h"
#include "core/process.h"
#include "core/time.h"
#include "http/http.h"

#include <event2/event.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define RETURN_CHECK_MS 1000 /* how late a return may be logged, at most */
#define REFUSAL_LOG_MS 10000 /* a pool at its share logs refusals this often, at most */

typedef struct {
    rp_outlier_conf_t c;
    unsigned on : 1; /* outlier_detection given */
    rp_upstream_observer_t ob;
    int panic_set; /* panic_threshold given */
    int64_t refusal_logged; /* ms: this process last logged a refusal (a pool held at
                             * max_ejection_percent would refuse every run of failures) */
} outlier_ups_t;

static void *create_ups(rp_conf_t *cf)
{
    outlier_ups_t *oc = rp_arena_calloc(cf->arena, sizeof(*oc));
    rp_outlier_conf_default(&oc->c);
    return oc;
}

const rp_outlier_conf_t *rp_outlier_conf_of(const rp_upstream_conf_t *u)
{
    if (!u->outlier || u->module_conf == NULL)
        return NULL;
    const outlier_ups_t *oc = u->module_conf[rp_outlier_module.index];
    return oc && oc->on ? &oc->c : NULL;
}

/* ---- the pool's peers ---- */

/* The shared entries of u's peers in this process's set, in pool (n of them): from the
 * stack for usual pools, else allocated (the caller frees it when it is not stack). */
static rp_peer_shared_t **pool_entries(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                       rp_peer_shared_t **stack, unsigned cap)
{
    rp_peer_shared_t **pool = set->n <= cap ? stack : rp_xmalloc(set->n * sizeof(*pool));
    for (unsigned i = 0; i < set->n; i++)
        pool[i] = set->peer[i]->sh;
    return pool;
}

/* ---- in the workers: every attempt's outcome ---- */

static int threshold_of(const rp_outlier_conf_t *c, int reason)
{
    switch (reason) {
    case RP_OUTLIER_5XX:
        return c->consecutive_5xx;
    case RP_OUTLIER_GATEWAY:
        return c->consecutive_gateway;
    case RP_OUTLIER_CONNECT:
        return c->consecutive_connect;
    }
    return 0;
}

static void eject_inline(rp_upstream_conf_t *u, outlier_ups_t *oc, rp_upstream_server_t *s,
                         int reason, int64_t now)
{
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    rp_peer_shared_t *stack[64];
    rp_peer_shared_t **pool = pool_entries(u, set, stack, 64);
    int64_t ms = 0;
    int rc = rp_outlier_eject(&oc->c, s->sh, pool, set->n, now, u->health_checks, &ms);
    if (pool != stack)
        free(pool);
    rp_outlier_reset_consecutive(s->sh); /* the run is judged: the next one starts over */
    if (rc == RP_OUTLIER_EJECTED)
        rp_log_error(RP_LOG_WARN, 0,
                     "upstream \"%s\": peer %s ejected for %lldms: %s (%d in a row), "
                     "ejection multiplier %lld",
                     u->name, s->name, (long long)ms, rp_outlier_reason_name(reason),
                     threshold_of(&oc->c, reason),
                     (long long)rp_shm_counter_get(&s->sh->ejections));
    else if (rc == RP_OUTLIER_REFUSED && now - oc->refusal_logged >= REFUSAL_LOG_MS) {
        oc->refusal_logged = now;
        rp_log_error(RP_LOG_WARN, 0,
                     "upstream \"%s\": peer %s not ejected for %s: max_ejection_percent %d%% "
                     "of the pool is ejected already",
                     u->name, s->name, rp_outlier_reason_name(reason),
                     oc->c.max_ejection_percent);
    }
}

static void observe(rp_upstream_conf_t *u, rp_upstream_server_t *s, const rp_upstream_outcome_t *o,
                    void *data)
{
    outlier_ups_t *oc = data;
    int reason = rp_outlier_record(&oc->c, s->sh, o);
    if (reason != RP_OUTLIER_NONE)
        eject_inline(u, oc, s, reason, o->now ? o->now : rp_time_ms());
}

/* ---- once per node: the interval's work ---- */

typedef struct od_timer_s {
    rp_upstream_conf_t *u;
    outlier_ups_t *oc;
    struct event *ev;
    int64_t due; /* ms: when the interval detectors run next */
    struct od_timer_s *next;
} od_timer_t;

static od_timer_t *timers; /* this process's, for the configuration it serves */

static void log_verdict(rp_upstream_conf_t *u, outlier_ups_t *oc, rp_upstream_server_t *s,
                        const rp_outlier_verdict_t *v)
{
    char why[160];
    double fail_pct = v->requests ? 100.0 * (double)v->failures / (double)v->requests : 0;
    if (v->reason == RP_OUTLIER_SUCCESS_RATE)
        snprintf(why, sizeof(why),
                 "success rate %.1f%% below the pool's threshold %.1f%% (%lld requests)",
                 100.0 - fail_pct, v->threshold, (long long)v->requests);
    else
        snprintf(why, sizeof(why), "failure percentage %.1f%% at or above %d%% (%lld requests)",
                 fail_pct, oc->c.fp_threshold, (long long)v->requests);
    if (v->result == RP_OUTLIER_EJECTED)
        rp_log_error(RP_LOG_WARN, 0,
                     "upstream \"%s\": peer %s ejected for %lldms: %s, ejection multiplier %lld",
                     u->name, s->name, (long long)v->ms, why,
                     (long long)rp_shm_counter_get(&s->sh->ejections));
    else if (v->result == RP_OUTLIER_REFUSED)
        rp_log_error(RP_LOG_WARN, 0,
                     "upstream \"%s\": peer %s not ejected: %s; max_ejection_percent %d%% of the "
                     "pool is ejected already",
                     u->name, s->name, why, oc->c.max_ejection_percent);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    od_timer_t *t = arg;
    rp_upstream_conf_t *u = t->u;
    int64_t now = rp_time_ms();
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    for (unsigned i = 0; i < set->n; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (rp_outlier_check_return(s->sh, now, u->health_checks))
            rp_log_error(RP_LOG_NOTICE, 0,
                         "upstream \"%s\": peer %s is back after its ejection "
                         "(ejection multiplier %lld)",
                         u->name, s->name, (long long)rp_shm_counter_get(&s->sh->ejections));
    }
    if (now < t->due)
        return;
    t->due = now + t->oc->c.interval;
    rp_peer_shared_t *stack[64];
    rp_peer_shared_t **pool = pool_entries(u, set, stack, 64);
    rp_outlier_verdict_t vstack[64];
    rp_outlier_verdict_t *v = set->n <= 64 ? vstack : rp_xmalloc(set->n * sizeof(*v));
    rp_outlier_interval(&t->oc->c, pool, set->n, now, u->health_checks, v);
    for (unsigned i = 0; i < set->n; i++)
        if (v[i].reason != RP_OUTLIER_NONE && v[i].result != RP_OUTLIER_ALREADY)
            log_verdict(u, t->oc, set->peer[i], &v[i]);
    if (pool != stack)
        free(pool);
    if (v != vstack)
        free(v);
}

static void start(rp_cycle_t *cycle)
{
    rp_upstream_main_conf_t *um = rp_http_main_conf(cycle, &rp_upstream_module);
    if (um == NULL)
        return;
    int64_t now = rp_time_ms();
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = RP_ARRAY_AT(&um->upstreams, rp_upstream_conf_t *, i);
        outlier_ups_t *oc = u->module_conf ? u->module_conf[rp_outlier_module.index] : NULL;
        if (oc == NULL || !oc->on)
            continue;
        od_timer_t *t = rp_xcalloc(1, sizeof(*t));
        t->u = u;
        t->oc = oc;
        t->due = now + oc->c.interval;
        t->ev = event_new(rp_event_base, -1, EV_PERSIST, tick, t);
        if (t->ev == NULL)
            abort();
        rp_timer_add(t->ev, oc->c.interval < RETURN_CHECK_MS ? oc->c.interval : RETURN_CHECK_MS);
        t->next = timers;
        timers = t;
    }
}

static void stop(void)
{
    while (timers) {
        od_timer_t *t = timers;
        timers = t->next;
        event_free(t->ev);
        free(t);
    }
}

static int init_helper(rp_cycle_t *cycle)
{
    start(cycle);
    return 0;
}

static void exit_helper(rp_cycle_t *cycle)
{
    stop();
}

/* master_process off: no helper, so the one process does the interval's work, for the
 * configuration it serves now. */
static int init_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE)
        start(cycle);
    return 0;
}

static void stop_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE)
        stop();
}

static void exit_worker(rp_cycle_t *cycle)
{
    stop(); /* nothing in a worker; a single process may exit without stopping */
}

/* ---- directives ---- */

enum { P_INT, P_MSEC, P_FACTOR };

typedef struct {
    const char *name;
    int kind;
    size_t offset;
    long min, max; /* P_INT's bounds; P_MSEC: min 1 when 0 is refused */
} param_t;

#define OFF(f) offsetof(rp_outlier_conf_t, f)

static const param_t params[] = {
    {"consecutive_5xx", P_INT, OFF(consecutive_5xx), 0, INT_MAX},
    {"consecutive_gateway_failure", P_INT, OFF(consecutive_gateway), 0, INT_MAX},
    {"consecutive_connect_failure", P_INT, OFF(consecutive_connect), 0, INT_MAX},
    {"interval", P_MSEC, OFF(interval), 1, 0},
    {"base_ejection_time", P_MSEC, OFF(base_ejection), 1, 0},
    {"max_ejection_time", P_MSEC, OFF(max_ejection), 1, 0},
    {"max_ejection_percent", P_INT, OFF(max_ejection_percent), 0, 100},
    {"success_rate_minimum_hosts", P_INT, OFF(sr_minimum_hosts), 0, INT_MAX},
    {"success_rate_request_volume", P_INT, OFF(sr_request_volume), 0, INT_MAX},
    {"success_rate_stdev_factor", P_FACTOR, OFF(sr_stdev_factor), 0, 100},
    {"failure_percentage_threshold", P_INT, OFF(fp_threshold), 0, 100},
    {"failure_percentage_minimum_hosts", P_INT, OFF(fp_minimum_hosts), 0, INT_MAX},
    {"failure_percentage_request_volume", P_INT, OFF(fp_request_volume), 0, INT_MAX},
};

#define MSEC_MAX (INT64_C(86400000) * 365) /* a year: beyond it, a typo */

static const char *set_param(rp_conf_t *cf, rp_outlier_conf_t *c, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        return rp_conf_error(cf, "invalid parameter \"%s\"", arg);
    size_t len = (size_t)(eq - arg);
    const char *val = eq + 1;
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        const param_t *p = &params[i];
        if (strlen(p->name) != len || strncmp(p->name, arg, len) != 0)
            continue;
        char *field = (char *)c + p->offset;
        if (p->kind == P_INT) {
            long v;
            if (rp_parse_int(val, p->max, &v) != 0 || v < p->min)
                return rp_conf_error(cf, "invalid %s \"%s\" (expected %ld to %ld)", p->name, val,
                                     p->min, p->max);
            *(int *)field = (int)v;
        } else if (p->kind == P_MSEC) {
            int64_t ms;
            if (rp_parse_msec(val, &ms) != 0 || ms < p->min || ms > MSEC_MAX)
                return rp_conf_error(cf, "invalid %s \"%s\" (expected a time above 0)", p->name,
                                     val);
            *(int64_t *)field = ms;
        } else {
            char *end;
            double d = strtod(val, &end);
            if (*val == '\0' || *end != '\0' || !isfinite(d) || d < p->min || d > p->max ||
                !(val[0] >= '0' && val[0] <= '9'))
                return rp_conf_error(cf, "invalid %s \"%s\" (expected %ld to %ld)", p->name, val,
                                     p->min, p->max);
            *(double *)field = d;
        }
        return RP_CONF_OK;
    }
    return rp_conf_error(cf, "invalid parameter \"%s\"", arg);
}

static const char *set_outlier(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    outlier_ups_t *oc = conf;
    if (oc->on)
        return "is duplicate";
    for (size_t i = 1; i < cf->argc; i++) {
        const char *err = set_param(cf, &oc->c, cf->argv[i]);
        if (err != RP_CONF_OK)
            return err;
    }
    rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
    oc->on = 1;
    u->outlier = 1;
    oc->ob.report = observe;
    oc->ob.data = oc;
    rp_upstream_observe(u, &oc->ob);
    return RP_CONF_OK;
}

static const char *set_panic(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    outlier_ups_t *oc = conf;
    if (oc->panic_set)
        return "is duplicate";
    char buf[16];
    const char *a = cf->argv[1];
    size_t len = strlen(a);
    if (len && len < sizeof(buf) && a[len - 1] == '%') { /* "50%" reads as it is meant */
        memcpy(buf, a, len - 1);
        buf[len - 1] = '\0';
        a = buf;
    }
    long v;
    if (rp_parse_int(a, 100, &v) != 0)
        return rp_conf_error(cf, "invalid value \"%s\" (expected a percentage, 0 to 100)",
                             cf->argv[1]);
    rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
    u->panic_threshold = (int)v;
    oc->panic_set = 1;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"outlier_detection", RP_CTX_UPSTREAM, 0, 0, RP_ARGS_ANY, set_outlier, RP_CONF_UPS, 0, NULL},
    {"panic_threshold", RP_CTX_UPSTREAM, 0, 1, 1, set_panic, RP_CONF_UPS, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_outlier_module = {
    .name = "outlier",
    .commands = commands,
    .create_ups = create_ups,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
    .exit_worker = exit_worker,
    .init_helper = init_helper,
    .exit_helper = exit_helper,
};
