/*
 * Hedging's directive, its per-worker latency histograms and its delay (hedge.h).
 */
#include "upstream/hedge.h"
#include "upstream/upstream.h"
#include "http/request.h"
#include "http/http.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

extern rp_module_t rp_hedge_module;

/* Buckets: 1 ms wide below 16 ms, then four per power of two (at most 25% wide). */
static unsigned bucket_of(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 16)
        return (unsigned)ms;
    unsigned e = 63 - (unsigned)__builtin_clzll((unsigned long long)ms); /* >= 4 */
    unsigned sub = (unsigned)(ms >> (e - 2)) & 3;
    unsigned i = 16 + (e - 4) * 4 + sub;
    return i < RP_HEDGE_BUCKETS ? i : RP_HEDGE_BUCKETS - 1;
}

/* The largest value of bucket i. */
static int64_t bucket_top(unsigned i)
{
    if (i < 16)
        return i;
    unsigned e = (i - 16) / 4 + 4, sub = (i - 16) % 4;
    return ((int64_t)(4 + sub + 1) << (e - 2)) - 1;
}

void rp_hedge_hist_add(rp_hedge_hist_t *h, int64_t ms)
{
    if (h->total >= RP_HEDGE_WINDOW) {
        /* halve: the recent past weighs as much as all before it */
        h->total = 0;
        for (unsigned i = 0; i < RP_HEDGE_BUCKETS; i++) {
            h->n[i] /= 2;
            h->total += h->n[i];
        }
    }
    h->n[bucket_of(ms)]++;
    h->total++;
}

int64_t rp_hedge_hist_percentile(const rp_hedge_hist_t *h, int p)
{
    if (h->total < RP_HEDGE_MIN_SAMPLES)
        return -1;
    uint64_t want = ((uint64_t)h->total * (unsigned)p + 99) / 100, seen = 0;
    for (unsigned i = 0; i < RP_HEDGE_BUCKETS; i++) {
        seen += h->n[i];
        if (seen >= want)
            return bucket_top(i);
    }
    return bucket_top(RP_HEDGE_BUCKETS - 1);
}

/* ---- configuration ---- */

static void *create_loc(rp_conf_t *cf)
{
    rp_hedge_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->delay = RP_CONF_UNSET_MSEC;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_hedge_conf_t *p = parent, *c = child;
    if (c->delay == RP_CONF_UNSET_MSEC)
        *c = *p;
    if (c->delay == RP_CONF_UNSET_MSEC)
        c->delay = 0;
    return RP_CONF_OK;
}

static const char *set_hedging(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_hedge_conf_t *c = conf;
    if (c->delay != RP_CONF_UNSET_MSEC)
        return "is duplicate";
    const char *a = cf->argv[1];
    c->delay = 0;
    c->percentile = 0;
    c->min = 0;
    if (strcmp(a, "off") == 0) {
        if (cf->argc > 2)
            return rp_conf_error(cf, "\"off\" takes no parameters");
        return RP_CONF_OK;
    }
    if (a[0] == 'p') {
        long pct;
        if (rp_parse_int(a + 1, 99, &pct) != 0 || pct < 1)
            return rp_conf_error(cf, "invalid percentile \"%s\", it must be p1 to p99", a);
        c->percentile = (int)pct;
    } else if (rp_parse_msec(a, &c->delay) != 0 || c->delay <= 0) {
        return rp_conf_error(cf, "invalid delay \"%s\", it must be a time or a percentile "
                                 "such as p95",
                             a);
    }
    for (size_t i = 2; i < cf->argc; i++) {
        if (strncmp(cf->argv[i], "min=", 4) != 0 || c->percentile == 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[i]);
        if (rp_parse_msec(cf->argv[i] + 4, &c->min) != 0)
            return rp_conf_error(cf, "invalid time in \"%s\"", cf->argv[i]);
    }
    return RP_CONF_OK;
}

/* ---- requests ---- */

const rp_hedge_conf_t *rp_hedge_conf(rp_request_t *r)
{
    const rp_hedge_conf_t *c = r->loc_conf[rp_hedge_module.index];
    return c->delay > 0 || c->percentile > 0 ? c : NULL;
}

int rp_hedge_eligible(const rp_request_t *r)
{
    if (r->chunked || r->content_length > 0)
        return 0;
    rp_str_t m = r->method;
    return rp_str_eq(m, "GET") || rp_str_eq(m, "HEAD") || rp_str_eq(m, "OPTIONS") ||
           rp_str_eq(m, "PUT") || rp_str_eq(m, "DELETE") || rp_str_eq(m, "TRACE");
}

int64_t rp_hedge_delay(const rp_hedge_conf_t *c, rp_upstream_conf_t *u)
{
    if (c->percentile == 0)
        return c->delay;
    int64_t v = u->hedge_hist ? rp_hedge_hist_percentile(u->hedge_hist, c->percentile) : -1;
    if (v < 0)
        return c->min > 0 ? c->min : -1;
    return v < c->min ? c->min : v;
}

void rp_hedge_sample(rp_upstream_conf_t *u, int64_t ms)
{
    if (u->hedge_hist == NULL)
        u->hedge_hist = calloc(1, sizeof(rp_hedge_hist_t)); /* once per pool and worker */
    if (u->hedge_hist)
        rp_hedge_hist_add(u->hedge_hist, ms);
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"hedging", ANYWHERE, 0, 1, 2, set_hedging, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_hedge_module = {
    .name = "hedge",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
};
