/*
 * The adaptive concurrency module: the `upstream` block's adaptive_concurrency
 * directive, the group's record in shared memory, the observer that feeds it every
 * attempt's latency, and the record in upstream_status. The admission is the breakers'
 * (breaker_module.c reads the limit through rp_adaptive_of as a dynamic max_requests,
 * so a request over it gets 503 `X-Rampart-Overloaded: adaptive_concurrency`, or waits
 * in the group's queue); the controller is adaptive.c.
 *
 * Each group with the directive has a zone of its own, "adaptive_concurrency/NAME": a
 * reload that keeps the group keeps its limit and minRTT (the zone is kept when its name,
 * size and layout are unchanged), and a new group starts by measuring minRTT.
 */
#include "upstream/adaptive.h"
#include "core/log.h"
#include "core/random.h"
#include "core/shm.h"
#include "core/time.h"
#include "http/http.h"

#include <event2/buffer.h>

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define ZONE_TAG     "adaptive_concurrency"
#define ZONE_VERSION 1
#define ZONE_SIZE    8192 /* the record (about 2 KB) and the zone's head */

typedef struct {
    rp_adaptive_conf_t c; /* first: the unit tests read it */
    unsigned on : 1;
    rp_upstream_conf_t *u;
    rp_shm_zone_t *zone;
    rp_upstream_observer_t ob;
    int64_t measurements; /* this process's last look at the record's count (for the log) */
} adaptive_ups_t;

_Static_assert(sizeof(rp_adaptive_shared_t) + 64 <= ZONE_SIZE, "the record must fit in the zone");

static adaptive_ups_t *conf_of(rp_upstream_conf_t *u)
{
    return u->module_conf ? u->module_conf[rp_adaptive_module.index] : NULL;
}

int rp_adaptive_configured(rp_upstream_conf_t *u)
{
    adaptive_ups_t *ac = conf_of(u);
    return ac && ac->on;
}

rp_adaptive_shared_t *rp_adaptive_of(rp_upstream_conf_t *u)
{
    adaptive_ups_t *ac = conf_of(u);
    if (ac == NULL || !ac->on || ac->zone->addr == NULL)
        return NULL;
    return ac->zone->addr;
}

/* ---- the samples ---- */

static void observe(rp_upstream_conf_t *u, rp_upstream_server_t *s, const rp_upstream_outcome_t *o,
                    void *data)
{
    adaptive_ups_t *ac = data;
    rp_adaptive_shared_t *a = ac->zone->addr;
    /* No response head, no latency: a failed connect says nothing of load. Nor does a
     * 502, 503 or 504 (or an answer the retry policy took as a failure): a backend, or a
     * proxy behind it, refusing fast must not look like one with room to spare. */
    if (o->header_ms < 0 || o->failed || (o->status >= 502 && o->status <= 504) || a == NULL)
        return;
    int64_t now = o->now ? o->now : rp_time_ms();
    int64_t sent = now - (o->last_ms >= 0 ? o->last_ms : o->header_ms);
    if (!rp_adaptive_sample(a, &ac->c, o->header_ms, sent, now, rp_random()))
        return;
    int64_t m = rp_shm_counter_get(&a->measurements);
    if (m != ac->measurements) {
        ac->measurements = m;
        if (rp_shm_counter_get(&a->phase) == RP_ADAPTIVE_SAMPLING)
            rp_log_error(RP_LOG_INFO, 0,
                         "upstream \"%s\": adaptive concurrency measured minRTT %.1f ms, "
                         "limit %lld",
                         u->name, rp_shm_counter_get(&a->min_rtt_us) / 1000.0,
                         (long long)rp_shm_counter_get(&a->limit));
    }
}

/* ---- upstream_status ---- */

void rp_adaptive_status_json(struct evbuffer *b, rp_upstream_conf_t *u)
{
    adaptive_ups_t *ac = conf_of(u);
    rp_adaptive_shared_t *a = rp_adaptive_of(u);
    if (a == NULL)
        return;
    const rp_adaptive_conf_t *c = &ac->c;
    evbuffer_add_printf(
        b,
        ",\"adaptive_concurrency\":{\"limit\":%lld,\"phase\":\"%s\",\"min_rtt_ms\":%.3f,"
        "\"sample_rtt_ms\":%.3f,\"gradient\":%.3f,\"shed\":%lld,\"updates\":%lld,"
        "\"min_rtt_measurements\":%lld,\"interval_ms\":%lld,\"percentile\":%d,\"buffer\":%d,"
        "\"min_rtt_interval_ms\":%lld,\"min_rtt_requests\":%d,\"jitter\":%d,"
        "\"min_concurrency\":%lld,\"max_concurrency\":%lld}",
        (long long)rp_adaptive_limit(a),
        rp_shm_counter_get(&a->phase) == RP_ADAPTIVE_MIN_RTT ? "min_rtt" : "sampling",
        rp_shm_counter_get(&a->min_rtt_us) / 1000.0, rp_shm_counter_get(&a->sample_rtt_us) / 1000.0,
        rp_shm_counter_get(&a->gradient) / 1000.0, (long long)rp_shm_counter_get(&a->shed),
        (long long)rp_shm_counter_get(&a->updates), (long long)rp_shm_counter_get(&a->measurements),
        (long long)c->interval, c->percentile, c->buffer, (long long)c->min_rtt_interval,
        c->min_rtt_requests, c->jitter, (long long)c->min_concurrency,
        (long long)c->max_concurrency);
}

/* ---- the zone ---- */

static int zone_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    adaptive_ups_t *ac = z->data;
    rp_adaptive_shared_t *a = z->addr;
    if (z->avail < sizeof(*a)) {
        snprintf(err, errlen, "%s:%u: zone \"%s\" is too small", z->file, z->line, z->name);
        return -1;
    }
    if (!reused || rp_shm_counter_get(&a->ready) != 1)
        rp_adaptive_init(a, &ac->c, rp_time_ms());
    return 0;
}

/* ---- the directive ---- */

enum { P_COUNT, P_MSEC, P_PERCENT };

typedef struct {
    const char *name;
    int kind;
    size_t offset;
    int wide; /* the field is an int64_t */
    long min, max;
} param_t;

#define OFF(f) offsetof(rp_adaptive_conf_t, f)

static const param_t params[] = {
    {"interval", P_MSEC, OFF(interval), 1, 1, 0},
    {"percentile", P_COUNT, OFF(percentile), 0, 1, 100},
    {"buffer", P_PERCENT, OFF(buffer), 0, 0, 100},
    {"min_rtt_interval", P_MSEC, OFF(min_rtt_interval), 1, 1, 0},
    {"min_rtt_requests", P_COUNT, OFF(min_rtt_requests), 0, 1, 1000000},
    {"jitter", P_PERCENT, OFF(jitter), 0, 0, 100},
    {"min_concurrency", P_COUNT, OFF(min_concurrency), 1, 1, INT_MAX},
    {"max_concurrency", P_COUNT, OFF(max_concurrency), 1, 1, INT_MAX},
};

#define MSEC_MAX (INT64_C(86400000) * 365) /* a year: beyond it, a typo */

static const char *set_param(rp_conf_t *cf, rp_adaptive_conf_t *c, const char *arg)
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
        if (p->kind == P_MSEC) {
            int64_t ms;
            if (rp_parse_msec(val, &ms) != 0 || ms < p->min || ms > MSEC_MAX)
                return rp_conf_error(cf, "invalid %s \"%s\" (expected a time above 0)", p->name,
                                     val);
            *(int64_t *)field = ms;
            return RP_CONF_OK;
        }
        char buf[24];
        const char *num = val;
        size_t vlen = strlen(val);
        if (p->kind == P_PERCENT && vlen && vlen < sizeof(buf) && val[vlen - 1] == '%') {
            memcpy(buf, val, vlen - 1); /* "25%" reads as it is meant */
            buf[vlen - 1] = '\0';
            num = buf;
        }
        long v;
        if (rp_parse_int(num, p->max, &v) != 0 || v < p->min)
            return rp_conf_error(cf, "invalid %s \"%s\" (expected %ld to %ld)", p->name, val,
                                 p->min, p->max);
        if (p->wide)
            *(int64_t *)field = v;
        else
            *(int *)field = (int)v;
        return RP_CONF_OK;
    }
    return rp_conf_error(cf, "invalid parameter \"%s\"", arg);
}

static void *create_ups(rp_conf_t *cf)
{
    adaptive_ups_t *ac = rp_arena_calloc(cf->arena, sizeof(*ac));
    rp_adaptive_conf_default(&ac->c);
    return ac;
}

static const char *set_adaptive(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    adaptive_ups_t *ac = conf;
    if (ac->on)
        return "is duplicate";
    for (size_t i = 1; i < cf->argc; i++) {
        const char *err = set_param(cf, &ac->c, cf->argv[i]);
        if (err != RP_CONF_OK)
            return err;
    }
    if (ac->c.min_concurrency > ac->c.max_concurrency)
        return rp_conf_error(cf, "min_concurrency %lld is above max_concurrency %lld",
                             (long long)ac->c.min_concurrency, (long long)ac->c.max_concurrency);
    rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
    char name[256];
    if ((size_t)snprintf(name, sizeof(name), "%s/%s", ZONE_TAG, u->name) >= sizeof(name))
        return rp_conf_error(cf, "upstream name \"%s\" is too long", u->name);
    ac->zone = rp_shm_zone_add_versioned(cf, name, ZONE_SIZE, ZONE_TAG, ZONE_VERSION, zone_init);
    if (ac->zone == NULL)
        return RP_CONF_ERROR;
    if (ac->zone->data != NULL)
        return rp_conf_error(cf, "upstream \"%s\" has adaptive_concurrency twice", u->name);
    ac->zone->data = ac;
    ac->u = u;
    ac->on = 1;
    ac->ob.report = observe;
    ac->ob.data = ac;
    rp_upstream_observe(u, &ac->ob);
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"adaptive_concurrency", RP_CTX_UPSTREAM, 0, 0, RP_ARGS_ANY, set_adaptive, RP_CONF_UPS, 0,
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_adaptive_module = {
    .name = "upstream_adaptive",
    .commands = commands,
    .create_ups = create_ups,
};
