/*
 * nginx's connection limits, with nginx's directives and meaning:
 *
 *   limit_conn_zone KEY zone=NAME:SIZE;     (http) counts per value of KEY in zone NAME
 *   limit_conn ZONE N;                      at most N requests of one key at once; several
 *                                           per level, inherited only by a level with none
 *   limit_conn_status CODE;                 the answer to a refused request (503)
 *   limit_conn_log_level info|notice|warn|error;
 *   limit_conn_dry_run on|off;              count and log, refuse nothing
 *   $limit_conn_status                      PASSED, REJECTED or REJECTED_DRY_RUN
 *
 * As in nginx, what is counted is requests in progress, not TCP connections: the
 * preaccess phase counts a request once (an HTTP/2 stream is one request, so a
 * client cannot hide many behind one connection), and the count is given back
 * when the request ends, however it ends. An empty key is not limited; a key
 * longer than 255 bytes is logged and not limited (nginx's rule); a zone too full
 * to hold one more key refuses the request with the status.
 *
 * The counts live in a shared-memory hash table (core/shm_hash.h), so every worker
 * of the node sees the same number. A record is the key's count, an int64 updated
 * under the zone's lock (a few memory operations; no atomics needed beside it) and
 * deleted when it falls back to 0, as nginx frees its node: the zone holds only
 * the keys with requests in flight. Records are stored "safe" and never expire, so
 * a full zone refuses the newcomer rather than forcing out a key in use.
 *
 * Giving back. One cleanup per request (rp_http_cleanup_add) gives back every
 * count the request took: it runs once on completion, a client gone, a timeout, a
 * reset HTTP/2 stream or the worker stopping, and forgets what it gave back, so
 * nothing is released twice (a refusal by a later limit gives back the earlier
 * ones at once, as nginx's cleanup_all does, and leaves nothing for the cleanup).
 * The cleanup finds the record again by key rather than keeping its address: a
 * zone found damaged after a crash is laid out again, and a stale address would
 * then point into someone else's record.
 *
 * A worker that dies holding counts (a crash, or killed at the end of
 * worker_shutdown_timeout) never runs its cleanups; nginx leaks such counts for
 * good, and the key stays limited below its number until a restart. rampart gives
 * them back: each worker takes a slot in a small table of its own zone (by pid, at
 * start), a record keeps beside its count the part each of the first SLOTS slots
 * holds (16 bits each), and when the master reaps a worker it subtracts that
 * worker's parts from every record of every limit_conn zone and frees the slot. It
 * costs 32 bytes per record and nothing per request beyond the two increments; a
 * worker beyond the first SLOTS slots at once (many workers, or several
 * generations during reloads) counts without a part, and its counts leak as
 * nginx's would. A lock held by the dying worker does not wedge the zone: the next
 * locker checks the table and lays it out again if it was left half-updated.
 */
#include "limit/limit_conn.h"
#include "limit/limit.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "core/shm.h"
#include "core/shm_hash.h"
#include "core/time.h"
#include "http/request.h"
#include "http/variables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZONE_TAG     "limit_conn_zone"
#define ZONE_VERSION 2 /* 2: records carry each worker's part */
#define SLOTS        16
#define WORKERS_ZONE "rampart_limit_conn_workers"
#define WORKERS_MAX  128
#define MIN_ZONE     (32 * 1024) /* nginx's 8 pages */
#define MAX_KEY      255
#define MAX_CONN     65535

enum { ST_NONE, ST_PASSED, ST_REJECTED, ST_REJECTED_DRY_RUN };

static const rp_str_t status_text[] = {
    {NULL, 0},
    {(char *)"PASSED", 6},
    {(char *)"REJECTED", 8},
    {(char *)"REJECTED_DRY_RUN", 16},
};

/* What limit_conn_zone declared; the shm zone's data. */
typedef struct {
    rp_shm_zone_t *shm;
    rp_cv_t key;
    const char *key_text;
} zone_t;

/* One `limit_conn ZONE N`. */
typedef struct {
    const char *name; /* resolved to zone in postconfiguration: the zone may come later */
    zone_t *zone;
    unsigned conn;
    const char *file;
    unsigned line;
} limit_t;

typedef struct {
    rp_array_t limits; /* limit_t; elts NULL when this level says none */
    int status;
    int log_level;
    int dry_run;
} loc_conf_t;

typedef struct {
    rp_array_t zones;  /* zone_t * */
    rp_array_t limits; /* loc_conf_t *: the levels with limit_conn, to resolve zones */
} main_conf_t;

/* A key's record in the zone: requests in progress, and each worker slot's part. */
typedef struct {
    int64_t count;
    uint16_t part[SLOTS];
} record_t;

/* The workers' slots: a worker's index is where its pid is. */
typedef struct {
    int64_t pid[WORKERS_MAX]; /* 0: free */
} workers_t;

static int my_slot = -1; /* this worker's, or -1: its counts have no part */

/* A count this request holds. */
typedef struct {
    zone_t *zone;
    rp_str_t key;
} held_t;

/* The request's state; it outlives internal redirects through its cleanup's data (the
 * redirect clears r->ctx, but nginx keeps the decision on r->main: counted once). */
typedef struct {
    int status;
    unsigned nheld, cap;
    held_t *held;
    rp_http_cleanup_t *cleanup;
} req_t;

static const rp_shm_hash_conf_t table_conf = {.buckets = 0, .max_forced = 0, .fifo = 0};

/* ---- the zone ---- */

static int zone_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    /* a kept zone keeps its counts: the old generation's requests give them back into it */
    if (reused && rp_shm_hash_attach(z->addr, z->avail) != NULL)
        return 0;
    if (rp_shm_hash_init(z->addr, z->avail, &table_conf) == NULL) {
        snprintf(err, errlen, "%s:%u: \"limit_conn_zone\": zone \"%s\" is too small", z->file,
                 z->line, z->name);
        return -1;
    }
    return 0;
}

/* Takes the zone's lock and returns its table, laid out afresh when it is not sound (a
 * holder died mid-update). NULL (unlocked) only when even that fails. */
static rp_shm_hash_t *lock_table(rp_shm_zone_t *z)
{
    int died = rp_shm_lock(z);
    rp_shm_hash_t *h = rp_shm_hash_attach(z->addr, z->avail);
    if (h == NULL || (died && rp_shm_hash_verify_locked(h) != 0)) {
        rp_log_error(RP_LOG_ALERT, 0, "limit_conn_zone \"%s\" was damaged: its counts start over",
                     z->name);
        h = rp_shm_hash_init(z->addr, z->avail, &table_conf);
    }
    if (h == NULL)
        rp_shm_unlock(z);
    return h;
}

/* Gives back one count of key. */
static void release(zone_t *zone, rp_str_t key)
{
    rp_shm_hash_t *h = lock_table(zone->shm);
    if (h == NULL)
        return;
    rp_shm_hash_item_t it;
    if (rp_shm_hash_get_locked(h, key.data, key.len, 0, 0, &it) == RP_SHM_OK &&
        it.value_len == sizeof(record_t)) {
        record_t *rec = (record_t *)it.value;
        if (my_slot >= 0 && my_slot < SLOTS && rec->part[my_slot] > 0)
            rec->part[my_slot]--;
        if (--rec->count <= 0)
            rp_shm_hash_delete_locked(h, key.data, key.len, 0);
    }
    rp_shm_unlock(zone->shm);
}

/* Counts one more request of key if it stays within conn: 1 counted, 0 refused (the
 * limit is reached), -1 refused (no room for the key). *now_count: the count after. */
static int acquire(zone_t *zone, rp_str_t key, unsigned conn, int64_t *now_count)
{
    rp_shm_hash_t *h = lock_table(zone->shm);
    if (h == NULL)
        return -1;
    rp_shm_hash_item_t it = {.key = key.data, .key_len = key.len, .value_len = sizeof(record_t)};
    void *value;
    int rc = rp_shm_hash_reserve_locked(h, &it, RP_SHM_HASH_SAFE, 0, &value, NULL);
    if (rc != RP_SHM_OK && rc != RP_SHM_CREATED) {
        rp_shm_unlock(zone->shm);
        return -1;
    }
    record_t *rec = value;
    int ok = rec->count < (int64_t)conn;
    if (ok) {
        rec->count++;
        if (my_slot >= 0 && my_slot < SLOTS)
            rec->part[my_slot]++;
    }
    *now_count = rec->count;
    rp_shm_unlock(zone->shm);
    return ok;
}

/* ---- the request ---- */

static void release_all(req_t *q)
{
    /* newest first, as nginx's pool cleanups; forgotten as they go, so never twice */
    while (q->nheld > 0) {
        held_t *h = &q->held[--q->nheld];
        release(h->zone, h->key);
    }
}

static void cleanup(rp_request_t *r, void *data)
{
    (void)r;
    release_all(data);
}

/* This request's state, found again after an internal redirect cleared r->ctx. */
static req_t *find_req(rp_request_t *r)
{
    req_t *q = rp_http_get_ctx(r, rp_limit_conn_module);
    if (q)
        return q;
    for (rp_http_cleanup_t *cl = r->cleanups; cl; cl = cl->next) {
        if (cl->fn == cleanup) {
            rp_http_set_ctx(r, rp_limit_conn_module, cl->data);
            return cl->data;
        }
    }
    return NULL;
}

static req_t *new_req(rp_request_t *r, unsigned cap)
{
    req_t *q = rp_arena_calloc(r->arena, sizeof(*q));
    q->held = rp_arena_alloc(r->arena, cap * sizeof(held_t));
    q->cap = cap;
    q->cleanup = rp_http_cleanup_add(r, cleanup, q);
    rp_http_set_ctx(r, rp_limit_conn_module, q);
    return q;
}

static void report(rp_request_t *r, const limit_t *l, int64_t count, int refused)
{
    int64_t remaining = (int64_t)l->conn - count;
    rp_limit_report_t rep = {
        .policy = l->zone->shm->name,
        .quota = l->conn,
        .window = 0, /* a concurrency limit: no window */
        .remaining = remaining < 0 || refused ? 0 : remaining,
        .reset = 0,
        .retry_after = refused ? 1 : 0,
        .refused = refused,
    };
    rp_limit_report(r, &rep);
}

static int handler(rp_request_t *r)
{
    if (r->subrequest)
        return RP_DECLINED; /* its main request was counted */
    loc_conf_t *lc = rp_http_loc_conf(r, rp_limit_conn_module);
    if (lc->limits.nelts == 0)
        return RP_DECLINED;
    req_t *q = find_req(r);
    if (q && q->status != ST_NONE)
        return RP_DECLINED; /* decided before an internal redirect: counted once */
    for (size_t i = 0; i < lc->limits.nelts; i++) {
        limit_t *l = &RP_ARRAY_AT(&lc->limits, limit_t, i);
        rp_str_t key = rp_cv_eval(r, &l->zone->key);
        if (key.len == 0)
            continue;
        if (key.len > MAX_KEY) {
            rp_log_error(RP_LOG_ERR, 0,
                         "the value of the \"%s\" key is more than %d bytes: \"%.*s\"",
                         l->zone->key_text, MAX_KEY, (int)key.len, key.data);
            continue;
        }
        if (q == NULL)
            q = new_req(r, (unsigned)lc->limits.nelts);
        q->status = ST_PASSED;
        int64_t count = 0;
        int rc = acquire(l->zone, key, l->conn, &count);
        if (rc <= 0) {
            rp_str_t addr = rp_http_remote_addr(r);
            if (rc < 0)
                rp_log_error(RP_LOG_ERR, 0,
                             "limit_conn_zone \"%s\" has no room for key \"%.*s\", client: %.*s",
                             l->zone->shm->name, (int)key.len, key.data, (int)addr.len, addr.data);
            else
                rp_log_error(lc->log_level, 0,
                             "limiting connections%s by zone \"%s\", client: %.*s, "
                             "request: \"%.*s %.*s\"",
                             lc->dry_run ? ", dry run," : "", l->zone->shm->name, (int)addr.len,
                             addr.data, (int)r->method.len, r->method.data, (int)r->request_uri.len,
                             r->request_uri.data);
            release_all(q); /* the counts this request took for the limits before */
            report(r, l, count, !lc->dry_run);
            if (lc->dry_run) {
                q->status = ST_REJECTED_DRY_RUN;
                return RP_DECLINED;
            }
            q->status = ST_REJECTED;
            return rp_http_send_error(r, lc->status);
        }
        held_t *h = &q->held[q->nheld++];
        h->zone = l->zone;
        h->key = key; /* in the request's arena, as long as the request */
        report(r, l, count, 0);
    }
    return RP_DECLINED;
}

/* ---- $limit_conn_status ---- */

static int get_status(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)v;
    req_t *q = find_req(r);
    if (q == NULL || q->status == ST_NONE)
        return -1;
    *out = status_text[q->status];
    return 0;
}

static const rp_var_def_t variables[] = {
    {"limit_conn_status", get_status, NULL, RP_VAR_NOCACHE, 0},
    {NULL, NULL, NULL, 0, 0},
};

/* ---- a worker's slot, and giving back a dead worker's counts ---- */

static int workers_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    if (z->avail < sizeof(workers_t)) {
        snprintf(err, errlen, "zone \"%s\" is too small", z->name);
        return -1;
    }
    if (!reused)
        memset(z->addr, 0, sizeof(workers_t));
    return 0;
}

static workers_t *workers_of(const rp_cycle_t *cycle)
{
    for (size_t i = 0; i < cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
        if (strcmp(z->name, WORKERS_ZONE) == 0 && z->addr)
            return z->addr;
    }
    return NULL;
}

static int init_worker(rp_cycle_t *cycle)
{
    my_slot = -1;
    workers_t *w = workers_of(cycle);
    if (w == NULL || rp_process.kind != RP_PROCESS_WORKER)
        return 0; /* a single process has nobody to give its counts back for it */
    int64_t pid = getpid();
    for (int i = 0; i < WORKERS_MAX; i++) {
        int64_t expected = 0;
        if (__atomic_compare_exchange_n(&w->pid[i], &expected, pid, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            my_slot = i;
            break;
        }
    }
    if (my_slot < 0 || my_slot >= SLOTS)
        rp_log_error(RP_LOG_NOTICE, 0,
                     "limit_conn: %d workers already hold a slot: this "
                     "worker's counts are not given back if it crashes",
                     SLOTS);
    return 0;
}

typedef struct {
    int slot;
    long given;
    rp_str_t *dead; /* keys whose count fell to 0, to delete after the walk */
    size_t ndead, cap;
} give_back_t;

static int give_back_visit(const rp_shm_hash_item_t *it, void *arg)
{
    give_back_t *g = arg;
    if (it->value_len != sizeof(record_t))
        return 0;
    record_t *rec = (record_t *)it->value; /* in place: the walk changes no link */
    unsigned part = rec->part[g->slot];
    if (part == 0)
        return 0;
    rec->part[g->slot] = 0;
    rec->count -= part;
    g->given += part;
    if (rec->count <= 0) {
        if (g->ndead == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 16;
            g->dead = rp_xrealloc(g->dead, g->cap * sizeof(rp_str_t));
        }
        char *k = rp_xmalloc(it->key_len);
        memcpy(k, it->key, it->key_len);
        g->dead[g->ndead++] = (rp_str_t){k, it->key_len};
    }
    return 0;
}

/* In the master: worker pid has exited; what its slot holds in every zone goes back. */
static void child_exited(rp_cycle_t *cycle, int pid, int clean)
{
    workers_t *w = workers_of(cycle);
    if (w == NULL)
        return;
    for (int slot = 0; slot < WORKERS_MAX; slot++) {
        if (w->pid[slot] != pid)
            continue;
        long given = 0;
        for (size_t i = 0; slot < SLOTS && i < cycle->shm_zones.nelts; i++) {
            rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
            if (z->addr == NULL || strcmp(z->tag, ZONE_TAG) != 0)
                continue;
            rp_shm_hash_t *h = lock_table(z);
            if (h == NULL)
                continue;
            give_back_t g = {.slot = slot};
            rp_shm_hash_each_locked(h, 0, give_back_visit, &g);
            for (size_t k = 0; k < g.ndead; k++) {
                rp_shm_hash_delete_locked(h, g.dead[k].data, g.dead[k].len, 0);
                free((void *)g.dead[k].data);
            }
            rp_shm_unlock(z);
            free(g.dead);
            given += g.given;
        }
        if (given)
            rp_log_error(clean ? RP_LOG_INFO : RP_LOG_NOTICE, 0,
                         "worker process %d left %ld requests counted by limit_conn: given back",
                         pid, given);
        __atomic_store_n(&w->pid[slot], 0, __ATOMIC_SEQ_CST);
    }
}

/* ---- configuration ---- */

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static void *create_http_main(rp_conf_t *cf)
{
    main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->zones, cf->arena, 2, sizeof(zone_t *));
    rp_array_init(&m->limits, cf->arena, 4, sizeof(loc_conf_t *));
    return m;
}

static void *create_loc(rp_conf_t *cf)
{
    loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->status = RP_CONF_UNSET;
    c->log_level = RP_CONF_UNSET;
    c->dry_run = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    loc_conf_t *p = parent, *c = child;
    if (c->limits.elts == NULL)
        c->limits = p->limits; /* nginx: inherited only by a level that has none */
    RP_CONF_MERGE(c->status, p->status, RP_CONF_UNSET, 503);
    RP_CONF_MERGE(c->log_level, p->log_level, RP_CONF_UNSET, RP_LOG_ERR);
    RP_CONF_MERGE(c->dry_run, p->dry_run, RP_CONF_UNSET, 0);
    return RP_CONF_OK;
}

static main_conf_t *main_conf(rp_conf_t *cf)
{
    return cf->http_ctx->main_conf[rp_limit_conn_module.index];
}

static const char *set_zone(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    const char *name = NULL;
    size_t name_len = 0, size = 0;
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "zone=", 5) != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        const char *colon = strrchr(a + 5, ':');
        if (colon == NULL || rp_parse_size(colon + 1, &size) != 0)
            return rp_conf_error(cf, "invalid zone size \"%s\"", a);
        name = a + 5;
        name_len = (size_t)(colon - name);
        if (name_len == 0)
            return rp_conf_error(cf, "invalid zone name \"%s\"", a);
        if (size < MIN_ZONE)
            return rp_conf_error(cf, "zone \"%s\" is too small", a);
    }
    if (name == NULL)
        return rp_conf_error(cf, "\"limit_conn_zone\" must have \"zone\" parameter");
    char *zname = rp_arena_strndup(cf->arena, name, name_len);
    rp_shm_zone_t *shm =
        rp_shm_zone_add_versioned(cf, zname, size, ZONE_TAG, ZONE_VERSION, zone_init);
    if (shm == NULL)
        return RP_CONF_ERROR;
    /* the mapping also holds the zone's lock and header: leave room for them */
    if (rp_shm_zone_add_versioned(cf, WORKERS_ZONE, (sizeof(workers_t) + 8192) & ~(size_t)4095,
                                  "limit_conn workers", 1, workers_init) == NULL)
        return RP_CONF_ERROR;
    if (shm->data) {
        zone_t *z = shm->data;
        return rp_conf_error(cf, "zone \"%s\" is already bound to key \"%s\"", zname, z->key_text);
    }
    zone_t *z = rp_arena_calloc(cf->arena, sizeof(*z));
    const char *err = rp_cv_compile(cf, cf->argv[1], &z->key);
    if (err)
        return err;
    z->shm = shm;
    z->key_text = rp_arena_strdup(cf->arena, cf->argv[1]);
    shm->data = z;
    *(zone_t **)rp_array_push(&((main_conf_t *)conf)->zones) = z;
    return RP_CONF_OK;
}

static const char *set_limit(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    loc_conf_t *c = conf;
    if (c->limits.elts == NULL) {
        rp_array_init(&c->limits, cf->arena, 1, sizeof(limit_t));
        /* resolved once the whole http block is read (the zone may be declared after) */
        *(loc_conf_t **)rp_array_push(&main_conf(cf)->limits) = c;
    }
    for (size_t i = 0; i < c->limits.nelts; i++)
        if (strcmp(RP_ARRAY_AT(&c->limits, limit_t, i).name, cf->argv[1]) == 0)
            return "is duplicate";
    long n;
    if (rp_parse_int(cf->argv[2], 1000000, &n) != 0 || n <= 0)
        return rp_conf_error(cf, "invalid number of connections \"%s\"", cf->argv[2]);
    if (n > MAX_CONN)
        return rp_conf_error(cf, "connection limit must be less 65536");
    limit_t *l = rp_array_push(&c->limits);
    l->name = rp_arena_strdup(cf->arena, cf->argv[1]);
    l->conn = (unsigned)n;
    l->file = cf->file;
    l->line = cf->line;
    return RP_CONF_OK;
}

static zone_t *find_zone(main_conf_t *m, const char *name)
{
    for (size_t i = 0; i < m->zones.nelts; i++) {
        zone_t *z = RP_ARRAY_AT(&m->zones, zone_t *, i);
        if (strcmp(z->shm->name, name) == 0)
            return z;
    }
    return NULL;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_limit_conn_module);
    if (m == NULL)
        return RP_CONF_OK; /* no http block */
    for (size_t i = 0; i < m->limits.nelts; i++) {
        loc_conf_t *c = RP_ARRAY_AT(&m->limits, loc_conf_t *, i);
        for (size_t k = 0; k < c->limits.nelts; k++) {
            limit_t *l = &RP_ARRAY_AT(&c->limits, limit_t, k);
            if (l->zone)
                continue;
            if ((l->zone = find_zone(m, l->name)) == NULL) {
                snprintf(cf->error, sizeof(cf->error),
                         "%s:%u: \"limit_conn\": unknown limit_conn_zone \"%s\"", l->file, l->line,
                         l->name);
                return RP_CONF_ERROR;
            }
        }
    }
    if (m->limits.nelts > 0)
        rp_http_add_phase_handler(cf, RP_PHASE_PREACCESS, handler);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"limit_conn_zone", RP_CTX_HTTP, 0, 2, 2, set_zone, RP_CONF_HTTP_MAIN, 0, NULL},
    {"limit_conn", ANYWHERE, 0, 2, 2, set_limit, RP_CONF_LOC, 0, NULL},
    {"limit_conn_status", ANYWHERE, 0, 1, 1, rp_limit_set_status, RP_CONF_LOC,
     offsetof(loc_conf_t, status), NULL},
    {"limit_conn_log_level", ANYWHERE, 0, 1, 1, rp_limit_set_log_level, RP_CONF_LOC,
     offsetof(loc_conf_t, log_level), NULL},
    {"limit_conn_dry_run", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(loc_conf_t, dry_run), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_limit_conn_module = {
    .name = "limit_conn",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
    .init_worker = init_worker,
    .child_exited = child_exited,
};
