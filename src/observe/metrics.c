/*
 * Metrics: what is counted, where, and how it survives workers and reloads.
 *
 *   location = /metrics { metrics; allow 127.0.0.1; deny all; }
 *   location /api/ { metrics_name api; proxy_pass http://backend; }
 *
 * Counting. The counters live in one shared zone ("rampart:metrics"), declared when
 * the configuration has a `metrics` or `stub_status` location. It holds up to 1024
 * series (a label set: one location of one server, an upstream, a limit zone, and
 * series 0 for the process-wide words), each 32 words of 64 bits, once per worker slot:
 * worker i adds into slot i % 16 only, so the workers of a generation never write the
 * same cache line, and a scrape sums the slots of a series. Any worker answers the same
 * totals, because they all read the same memory.
 *
 * Why the adds are atomic all the same (relaxed: one `lock add`, no fence, no lock,
 * no system call): during a reload the old generation's worker i drains while the new
 * generation's worker i already counts into the same slot, and beyond 16 workers two
 * share one. An atomic add keeps every count exact in both cases; a plain one would
 * lose increments exactly when an operator watches a reload. Without contention it
 * costs a few cycles.
 *
 * Reloads and replaced workers. The zone is versioned (shm.h): a reload keeps it while
 * its layout version is unchanged, and the series keep their numbers because the
 * master assigns them by their labels (a key table in the zone, append-only, written
 * only by the master before it forks a generation). A worker that exits or crashes
 * loses nothing: what it counted stays in its slot, which its successor (same index)
 * goes on adding to, so counters only ever grow, as Prometheus expects. The gauges
 * (connections active, reading, writing) are +1/-1 pairs kept per process instead, in
 * an entry the worker claims when it starts; the master zeroes and frees the entry when
 * the worker exits (child_exited), so a worker that crashes with connections open does
 * not leave them counted for ever (nginx's stub_status does).
 *
 * Labels. A location's requests are counted under {server, location}: server is the
 * server's first server_name, else its first listen address; location is the
 * `metrics_name` in effect (set on the location, or inherited from the server or http
 * level), else "" (all the server's locations without a name share that series).
 *
 * What is read, not counted: upstream peers' attempts, failures, retries, health,
 * ejections, in-flight requests and latency averages, and the breakers' trips and
 * queues, already live in the shared peer table (peers.h); metrics_output.c reads them
 * at scrape time rather than counting them twice.
 */
#include "observe/metrics_int.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "core/time.h"
#include "http/http.h"
#include "http/request.h"
#include "net/conn.h"
#include "upstream/retry.h"
#include "upstream/upstream.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ZONE_NAME "rampart:metrics"
#define ZONE_TAG  "metrics"

const int64_t rp_metrics_bucket_us[RP_METRICS_NBUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
const char *const rp_metrics_bucket_text[RP_METRICS_NBUCKETS] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
};

/* Where this process counts before (or without) a zone: its own memory. */
static int64_t local_words[RP_METRICS_WORDS];
int64_t *rp_metrics_g = local_words;
/* Where this process's gauges are: its entry's words, or (no entry) rp_metrics_g's. */
static int64_t *gauges = local_words + RP_MG_CONN_ACTIVE;

static inline void gauge_add(unsigned word, int64_t n)
{
    __atomic_add_fetch(&gauges[word - RP_MG_CONN_ACTIVE], n, __ATOMIC_RELAXED);
}

rp_metrics_shm_t *rp_metrics_shm;
rp_metrics_main_conf_t *rp_metrics_conf;
static int64_t *slot_base; /* this worker's slot: series s is slot_base + s * WORDS */

int64_t rp_metrics_sum(const rp_metrics_shm_t *m, int series, unsigned word)
{
    int64_t t = 0;
    for (unsigned i = 0; i < RP_METRICS_SLOTS; i++)
        t += __atomic_load_n(&m->w[i][series][word], __ATOMIC_RELAXED);
    return t;
}

int64_t rp_metrics_gauge(const rp_metrics_shm_t *m, unsigned word)
{
    int64_t t = rp_metrics_sum(m, 0, word);
    for (unsigned i = 0; i < RP_METRICS_PROCS; i++)
        t += __atomic_load_n(&m->procs[i].g[word - RP_MG_CONN_ACTIVE], __ATOMIC_RELAXED);
    return t;
}

static inline void add_word(int series, unsigned word, int64_t n)
{
    __atomic_add_fetch(&slot_base[(size_t)series * RP_METRICS_WORDS + word], n, __ATOMIC_RELAXED);
}

static unsigned bucket_of(int64_t us)
{
    unsigned b = 0;
    while (b < RP_METRICS_NBUCKETS && us > rp_metrics_bucket_us[b])
        b++;
    return b; /* RP_METRICS_NBUCKETS: +Inf */
}

/* ---- the hooks other files call ---- */

void rp_metrics_conn_open(void)
{
    rp_metrics_add(RP_MG_CONN_ACCEPTED, 1);
    rp_metrics_add(RP_MG_CONN_HANDLED, 1);
    gauge_add(RP_MG_CONN_ACTIVE, 1);
}

void rp_metrics_conn_closed(rp_conn_t *c)
{
    if (c->metrics_reading)
        rp_metrics_conn_reading(c, 0);
    if (c->metrics_open) {
        c->metrics_open = 0;
        gauge_add(RP_MG_CONN_ACTIVE, -1);
    }
}

void rp_metrics_conn_reading(rp_conn_t *c, int on)
{
    if (c->metrics_reading == (unsigned)(on != 0))
        return;
    c->metrics_reading = on != 0;
    gauge_add(RP_MG_CONN_READING, on ? 1 : -1);
}

void rp_metrics_tls_handshake(rp_conn_t *c, int ok)
{
    if (!ok) {
        rp_metrics_add(RP_MG_TLS_FAILED, 1);
        return;
    }
    rp_metrics_add(RP_MG_TLS_HANDSHAKES, 1);
    if (c->ssl && SSL_session_reused(c->ssl))
        rp_metrics_add(RP_MG_TLS_RESUMED, 1);
}

void rp_metrics_h2_flood(const char *why)
{
    static const struct {
        const char *why;
        unsigned kind;
    } reasons[] = {
        {"too many CONTINUATION frames", RP_METRICS_FLOOD_CONTINUATION},
        {"too many stream resets", RP_METRICS_FLOOD_RESET},
        {"flood of frames without work", RP_METRICS_FLOOD_IDLE},
    };
    unsigned kind = why ? RP_METRICS_FLOOD_OTHER : RP_METRICS_FLOOD_LIBRARY;
    for (size_t i = 0; why && i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (strcmp(why, reasons[i].why) == 0)
            kind = reasons[i].kind;
    rp_metrics_add(RP_MG_H2_FLOOD + kind, 1);
}

void rp_metrics_request_begin(rp_request_t *r)
{
    if (r->subrequest || r->metrics_writing)
        return;
    r->metrics_writing = 1;
    gauge_add(RP_MG_CONN_WRITING, 1);
    rp_metrics_add(RP_MG_REQUESTS, 1);
    if (r->version == 20)
        rp_metrics_add(RP_MG_H2_STREAMS, 1);
}

void rp_metrics_request_end(rp_request_t *r)
{
    if (r->metrics_writing) {
        r->metrics_writing = 0;
        gauge_add(RP_MG_CONN_WRITING, -1);
    }
}

void rp_metrics_limit(const char *zone, int outcome)
{
    if (rp_metrics_conf == NULL || zone == NULL)
        return;
    rp_metrics_named_t *l = rp_metrics_conf->limits.elts;
    for (size_t i = 0; i < rp_metrics_conf->limits.nelts; i++)
        if (l[i].series >= 0 && (l[i].name == zone || strcmp(l[i].name, zone) == 0)) {
            add_word(l[i].series, (unsigned)outcome, 1);
            return;
        }
}

static void upstream_observe(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                             const rp_upstream_outcome_t *o, void *data);

void rp_metrics_upstream_retry(rp_upstream_conf_t *u, unsigned reason)
{
    if (slot_base == NULL || reason >= RP_MU_NRETRY)
        return;
    for (rp_upstream_observer_t *ob = u->observers; ob; ob = ob->next)
        if (ob->report == upstream_observe) {
            rp_metrics_named_t *n = ob->data;
            if (n->series >= 0)
                add_word(n->series, RP_MU_RETRY + reason, 1);
            return;
        }
}

static void upstream_observe(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                             const rp_upstream_outcome_t *o, void *data)
{
    (void)u;
    (void)s;
    rp_metrics_named_t *n = data;
    if (slot_base == NULL || n->series < 0 || o->header_ms < 0)
        return;
    int64_t us = (o->last_ms >= 0 ? o->last_ms : o->header_ms) * 1000;
    add_word(n->series, RP_MU_HIST + bucket_of(us), 1);
    add_word(n->series, RP_MU_SUM_US, us);
}

/* The log phase: one request of a location, its status class, protocol and latency. */
static int log_handler(rp_request_t *r)
{
    if (slot_base == NULL || r->subrequest || r->loc_conf == NULL)
        return RP_OK;
    rp_metrics_loc_conf_t *lc = r->loc_conf[rp_metrics_module.index];
    int series = lc->series;
    if (series < 0) {
        /* a location the walk did not see (named ones): its server's series */
        rp_metrics_loc_conf_t *sc = r->srv->ctx->loc_conf[rp_metrics_module.index];
        series = sc->series;
        if (series < 0)
            return RP_OK;
    }
    int cls = r->status / 100;
    if (r->status == 0)
        cls = 4; /* the client went away first: nginx logs 499 */
    if (cls < 1 || cls > 5)
        cls = 5;
    int proto = r->version >= 20 ? 2 : r->version == 11 ? 1 : 0;
    add_word(series, RP_ML_REQ + (unsigned)((cls - 1) * 3 + proto), 1);

    struct timeval now;
    rp_time_now(&now);
    int64_t us =
        (int64_t)(now.tv_sec - r->start.tv_sec) * 1000000 + (now.tv_usec - r->start.tv_usec);
    if (us < 0)
        us = 0;
    add_word(series, RP_ML_HIST + bucket_of(us), 1);
    add_word(series, RP_ML_SUM_US, us);
    add_word(series, RP_ML_BODY_SENT, r->body_bytes_sent);
    return RP_OK;
}

/* ---- configuration ---- */

static void *create_http_main(rp_conf_t *cf)
{
    rp_metrics_main_conf_t *mc = rp_arena_calloc(cf->arena, sizeof(*mc));
    rp_array_init(&mc->locs, cf->arena, 16, sizeof(rp_metrics_loc_conf_t *));
    rp_array_init(&mc->ups, cf->arena, 4, sizeof(rp_metrics_named_t *));
    rp_array_init(&mc->limits, cf->arena, 4, sizeof(rp_metrics_named_t));
    return mc;
}

static void *create_loc(rp_conf_t *cf)
{
    rp_metrics_loc_conf_t *lc = rp_arena_calloc(cf->arena, sizeof(*lc));
    lc->series = -1;
    return lc;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    rp_metrics_loc_conf_t *p = parent, *c = child;
    if (c->name == NULL)
        c->name = p->name;
    return RP_CONF_OK;
}

static const char *set_name(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    rp_metrics_loc_conf_t *lc = conf;
    if (lc->name)
        return "is duplicate";
    const char *v = cf->argv[1];
    size_t len = strlen(v);
    if (len == 0 || len > 60)
        return rp_conf_error(cf, "invalid metrics name \"%s\": 1 to 60 characters", v);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return rp_conf_error(cf, "invalid metrics name \"%s\": control character", v);
    lc->name = rp_arena_strdup(cf->arena, v);
    return RP_CONF_OK;
}

const char *rp_metrics_set_content(rp_conf_t *cf, rp_phase_handler_pt handler)
{
    rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
    if (clcf->content)
        return "is duplicate";
    clcf->content = handler;
    rp_metrics_main_conf_t *mc = cf->http_ctx->main_conf[rp_metrics_module.index];
    mc->enabled = 1;
    return RP_CONF_OK;
}

static const char *set_metrics(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    (void)conf;
    return rp_metrics_set_content(cf, rp_metrics_handler);
}

/* The server's label: its first name, else its first listen address. */
static const char *server_label(rp_conf_t *cf, rp_http_core_srv_conf_t *srv)
{
    rp_server_name_t *names = srv->names.elts;
    for (size_t i = 0; i < srv->names.nelts; i++)
        if (names[i].text.len)
            return rp_arena_strndup(cf->arena, names[i].text.data,
                                    names[i].text.len > 58 ? 58 : names[i].text.len);
    rp_listen_opt_t *ls = srv->listens.elts;
    if (srv->listens.nelts)
        return ls[0].text;
    return "";
}

static void walk_locations(rp_metrics_main_conf_t *mc, rp_http_core_loc_conf_t *clcf,
                           const char *server)
{
    rp_metrics_loc_conf_t *lc = clcf->loc_conf[rp_metrics_module.index];
    lc->server = server;
    *(rp_metrics_loc_conf_t **)rp_array_push(&mc->locs) = lc;
    rp_array_t *kids[] = {&clcf->exact, &clcf->prefix, &clcf->regex};
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < kids[k]->nelts; i++)
            walk_locations(mc, RP_ARRAY_AT(kids[k], rp_http_core_loc_conf_t *, i), server);
}

static int zone_init(rp_shm_zone_t *zone, int reused, char *err, size_t errlen)
{
    if (zone->avail < sizeof(rp_metrics_shm_t)) {
        snprintf(err, errlen, "metrics zone too small");
        return -1;
    }
    rp_metrics_shm_t *m = zone->addr;
    if (!reused || m->magic != RP_METRICS_MAGIC) {
        if (reused) /* a new zone is zero-filled: its pages stay untouched until counted */
            memset(m, 0, sizeof(*m));
        m->keys[0].kind = RP_MK_GLOBAL;
        m->nseries = 1;
        m->magic = RP_METRICS_MAGIC;
    }
    return 0;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_metrics_main_conf_t *mc = rp_http_main_conf(cf->cycle, &rp_metrics_module);
    if (mc == NULL || !mc->enabled)
        return RP_CONF_OK;
    size_t size = (sizeof(rp_metrics_shm_t) + 65535) & ~(size_t)65535;
    mc->zone = rp_shm_zone_add_versioned(cf, ZONE_NAME, size + 65536, ZONE_TAG, RP_METRICS_VERSION,
                                         zone_init);
    if (mc->zone == NULL)
        return RP_CONF_ERROR;

    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cf->cycle);
    for (size_t i = 0; i < cmcf->servers.nelts; i++) {
        rp_http_core_srv_conf_t *srv = RP_ARRAY_AT(&cmcf->servers, rp_http_core_srv_conf_t *, i);
        walk_locations(mc, srv->ctx->loc_conf[rp_http_core_module.index], server_label(cf, srv));
    }

    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    for (size_t i = 0; um && i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = RP_ARRAY_AT(&um->upstreams, rp_upstream_conf_t *, i);
        rp_metrics_named_t *n = rp_arena_calloc(cf->arena, sizeof(*n));
        n->name = u->name;
        n->u = u;
        n->series = -1;
        *(rp_metrics_named_t **)rp_array_push(&mc->ups) = n;
        rp_upstream_observer_t *ob = rp_arena_calloc(cf->arena, sizeof(*ob));
        ob->report = upstream_observe;
        ob->data = n;
        rp_upstream_observe(u, ob);
    }

    /* the limit zones: limit_req, limit_conn and limit_count declare theirs as shm zones */
    rp_shm_zone_t **zones = cf->cycle->shm_zones.elts;
    for (size_t i = 0; i < cf->cycle->shm_zones.nelts; i++) {
        const char *tag = zones[i]->tag;
        if (strcmp(tag, "limit_req") && strcmp(tag, "limit_conn_zone") &&
            strcmp(tag, "limit_count"))
            continue;
        rp_metrics_named_t *n = rp_array_push(&mc->limits);
        n->name = zones[i]->name;
        n->u = NULL;
        n->series = -1;
    }

    rp_http_add_phase_handler(cf, RP_PHASE_LOG, log_handler);
    return RP_CONF_OK;
}

/* ---- the series table (the master, before it forks a generation) ---- */

static int series_of(rp_metrics_shm_t *m, unsigned kind, const char *a, const char *b)
{
    char key[RP_METRICS_KEY];
    if (b)
        snprintf(key, sizeof(key), "%s\x1f%s", a, b);
    else
        snprintf(key, sizeof(key), "%s", a);
    uint64_t n = __atomic_load_n(&m->nseries, __ATOMIC_ACQUIRE);
    for (uint64_t i = 1; i < n; i++)
        if (m->keys[i].kind == kind && strcmp(m->keys[i].key, key) == 0)
            return (int)i;
    if (n >= RP_METRICS_SERIES) {
        rp_log_error(RP_LOG_WARN, 0, "metrics: no room for more series: \"%s\" not counted", key);
        return -1;
    }
    m->keys[n].kind = kind;
    memcpy(m->keys[n].key, key, sizeof(key));
    __atomic_store_n(&m->nseries, n + 1, __ATOMIC_RELEASE);
    return (int)n;
}

static int init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen)
{
    (void)prev;
    (void)err;
    (void)errlen;
    if (flags & RP_INIT_TEST)
        return 0;
    rp_metrics_main_conf_t *mc = rp_http_main_conf(cycle, &rp_metrics_module);
    if (mc == NULL || !mc->enabled || mc->zone == NULL || mc->zone->addr == NULL)
        return 0;
    rp_metrics_shm_t *m = mc->zone->addr;
    rp_metrics_loc_conf_t **locs = mc->locs.elts;
    for (size_t i = 0; i < mc->locs.nelts; i++)
        locs[i]->series =
            series_of(m, RP_MK_LOCATION, locs[i]->server, locs[i]->name ? locs[i]->name : "");
    rp_metrics_named_t **ups = mc->ups.elts;
    for (size_t i = 0; i < mc->ups.nelts; i++)
        ups[i]->series = series_of(m, RP_MK_UPSTREAM, ups[i]->name, NULL);
    rp_metrics_named_t *lim = mc->limits.elts;
    for (size_t i = 0; i < mc->limits.nelts; i++)
        lim[i].series = series_of(m, RP_MK_LIMIT, lim[i].name, NULL);
    return 0;
}

/* This process's entry for its gauges in m, claimed if it has none there yet; NULL
 * when all are taken (then its gauges go to its slot, as counters do). */
static int64_t *claim_gauges(rp_metrics_shm_t *m)
{
    int64_t pid = (int64_t)getpid();
    for (unsigned i = 0; i < RP_METRICS_PROCS; i++)
        if (__atomic_load_n(&m->procs[i].pid, __ATOMIC_ACQUIRE) == pid)
            return m->procs[i].g;
    for (unsigned i = 0; i < RP_METRICS_PROCS; i++) {
        int64_t free_pid = 0;
        if (__atomic_compare_exchange_n(&m->procs[i].pid, &free_pid, pid, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED))
            return m->procs[i].g;
    }
    rp_log_error(RP_LOG_WARN, 0,
                 "metrics: no room for this process's gauges: a crash would "
                 "leave its connections counted");
    return NULL;
}

/* Counts into words g (and gauges into gs) from now; the gauges this process holds go
 * with it (a single process reloading in place keeps its connections, and may go from
 * its own memory to a zone, or back: the old zone may be unmapped soon). */
static void count_into(int64_t *g, int64_t *gs)
{
    if (gauges != gs)
        for (unsigned k = 0; k < RP_METRICS_GAUGES; k++) {
            int64_t v = __atomic_exchange_n(&gauges[k], 0, __ATOMIC_RELAXED);
            __atomic_add_fetch(&gs[k], v, __ATOMIC_RELAXED);
        }
    gauges = gs;
    rp_metrics_g = g;
}

static int init_worker(rp_cycle_t *cycle)
{
    rp_metrics_main_conf_t *mc = rp_http_main_conf(cycle, &rp_metrics_module);
    if (mc == NULL || !mc->enabled || mc->zone == NULL || mc->zone->addr == NULL) {
        rp_metrics_shm = NULL;
        rp_metrics_conf = NULL;
        slot_base = NULL;
        count_into(local_words, local_words + RP_MG_CONN_ACTIVE);
        return 0;
    }
    rp_metrics_shm_t *m = mc->zone->addr;
    unsigned slot = (unsigned)(rp_process.index < 0 ? 0 : rp_process.index) % RP_METRICS_SLOTS;
    rp_metrics_shm = m;
    rp_metrics_conf = mc;
    slot_base = &m->w[slot][0][0];
    int64_t *gs = claim_gauges(m);
    count_into(slot_base, gs ? gs : slot_base + RP_MG_CONN_ACTIVE);
    return 0;
}

/* In the master: a worker of cycle exited; its gauges go (its connections are closed). */
static void child_exited(rp_cycle_t *cycle, int pid, int clean)
{
    (void)clean;
    rp_metrics_main_conf_t *mc = rp_http_main_conf(cycle, &rp_metrics_module);
    if (mc == NULL || !mc->enabled || mc->zone == NULL || mc->zone->addr == NULL)
        return;
    rp_metrics_shm_t *m = mc->zone->addr;
    for (unsigned i = 0; i < RP_METRICS_PROCS; i++)
        if (__atomic_load_n(&m->procs[i].pid, __ATOMIC_ACQUIRE) == pid) {
            for (unsigned k = 0; k < RP_METRICS_GAUGES; k++)
                __atomic_store_n(&m->procs[i].g[k], 0, __ATOMIC_RELAXED);
            __atomic_store_n(&m->procs[i].pid, 0, __ATOMIC_RELEASE);
        }
}

static const rp_command_t commands[] = {
    {"metrics", RP_CTX_LOCATION, 0, 0, 0, set_metrics, RP_CONF_LOC, 0, NULL},
    {"metrics_name", RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION, 0, 1, 1, set_name, RP_CONF_LOC,
     0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_metrics_module = {
    .name = "metrics",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
    .init_master = init_master,
    .init_worker = init_worker,
    .child_exited = child_exited,
};
