/*
 * Window quotas: "so many requests per key per window", the quotas of API plans
 * (Kong's rate-limiting, APISIX's limit-count, AWS usage plans), which nginx's
 * limit_req (a leaky bucket: a rate and a burst) does not express.
 *
 *   limit_count_zone KEY zone=NAME:SIZE limit=N window=TIME [sliding] [sync];   (http)
 *   limit_count zone=NAME;                       (http, server, location; repeatable)
 *   limit_count_status CODE;                     400-599, default 429
 *   limit_count_dry_run on|off;
 *   limit_count_log_level info|notice|warn|error;
 *   $limit_count_status $limit_count_remaining $limit_count_reset
 *
 * Each zone holds one record of counts per key (rp_lc_record_t, limit_count.h) in a
 * shared-memory hash table, so every worker counts in the same place. A location's
 * quotas are decided together, in the preaccess phase: the locks of their zones are
 * taken (in the order of the zones' names, so that two workers never wait on each
 * other), every quota is checked, and only if all admit the request is it counted in
 * all of them; a refused request is counted nowhere (as Kong and APISIX), so a client
 * that keeps knocking on an exhausted per-second quota does not eat its daily one.
 * The locks are held for a few hash lookups and additions, no system call.
 *
 * The refusal is 429 Too Many Requests by default, where limit_req answers 503: a
 * quota is a contract with one client, who has used up its share and should come back
 * later (the RateLimit fields and Retry-After say when), not the server being
 * overloaded; 503 would make clients and monitors blame the service.
 *
 * A zone given `sync` also keeps, per record, what this node accepted and has not
 * sent yet and what it last heard from Redis, and hands them to the sync engine
 * (limit.h) through collect and apply below, run in the helper process.
 */
#include "limit/limit_count.h"
#include "limit/limit.h"
#include "core/log.h"
#include "core/time.h"
#include "core/shm_counter.h"
#include "core/shm_hash.h"
#include "http/request.h"
#include "http/variables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONE_TAG     "limit_count"
#define ZONE_VERSION 1
#define ZONE_MAGIC   0x6c636e74u /* "lcnt" */
/* Room for the allocator's pages, the header and the table's buckets, and records. */
#define MIN_ZONE_SIZE (32 * 1024)
/* Quotas one location may check: they are decided together, locks held at once. */
#define MAX_QUOTAS 16

enum { LC_NONE = 0, LC_PASSED, LC_REJECTED, LC_REJECTED_DRY_RUN };

/* At the root of a zone's allocator. */
typedef struct {
    uint32_t magic;
    uint32_t table;         /* reference to the hash table */
    rp_shm_counter_t dirty; /* records gained unsent counts since the last collect */
} lc_shared_t;

typedef struct {
    const char *name;
    rp_cv_t key;
    rp_lc_quota_t q;
    int sync;
    rp_shm_zone_t *shm; /* NULL while only `limit_count` has named it */
    const char *file;   /* where `limit_count` first named it, for "unknown zone" */
    unsigned line;
} lc_zone_t;

typedef struct {
    rp_array_t zones; /* lc_zone_t * */
} lc_main_conf_t;

typedef struct {
    rp_array_t *quotas; /* lc_zone_t *, sorted by name; NULL: inherited */
    int status;
    int dry_run;
    int log_level;
} lc_loc_conf_t;

typedef struct {
    int status; /* LC_* */
    int64_t remaining, reset;
} lc_ctx_t;

/* ---- the zone ---- */

static const rp_shm_hash_conf_t table_conf = {.buckets = 0, .max_forced = 0, .fifo = 0};

/* Lays the zone out empty: an allocator, the header at its root, the table. */
static lc_shared_t *layout(rp_shm_zone_t *z)
{
    rp_shm_slab_t *slab = rp_shm_slab_init(z->addr, z->avail);
    lc_shared_t *sh = slab ? rp_shm_slab_calloc_locked(slab, sizeof(*sh)) : NULL;
    rp_shm_hash_t *h = sh ? rp_shm_hash_create_locked(slab, &table_conf) : NULL;
    if (h == NULL)
        return NULL;
    sh->table = rp_shm_slab_ref(slab, h);
    sh->magic = ZONE_MAGIC;
    *rp_shm_slab_root(slab) = rp_shm_slab_ref(slab, sh);
    return sh;
}

/* The zone's header and table, as laid out; NULL when the memory holds something else. */
static lc_shared_t *shared_of(rp_shm_zone_t *z, rp_shm_hash_t **h)
{
    rp_shm_slab_t *slab = rp_shm_slab_attach(z->addr, z->avail);
    lc_shared_t *sh = slab ? rp_shm_slab_ptr(slab, *rp_shm_slab_root(slab)) : NULL;
    if (sh == NULL || sh->magic != ZONE_MAGIC)
        return NULL;
    *h = rp_shm_slab_ptr(slab, sh->table);
    return *h ? sh : NULL;
}

static int zone_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    rp_shm_hash_t *h;
    if (reused && shared_of(z, &h))
        return 0; /* the counts survive a reload */
    if (layout(z) == NULL) {
        snprintf(err, errlen, "%s:%u: zone \"%s\" is too small", z->file, z->line, z->name);
        return -1;
    }
    return 0;
}

/*
 * Takes z's lock and finds its table. A process that died holding the lock may have
 * left the table half-changed: it is checked then, and a damaged one (or a header
 * that is not ours) laid out afresh: losing counts lets a few requests too many
 * through, following a torn chain could crash every worker.
 */
static rp_shm_hash_t *lock_table(rp_shm_zone_t *z, lc_shared_t **shp)
{
    int died = rp_shm_lock(z);
    rp_shm_hash_t *h = NULL;
    lc_shared_t *sh = shared_of(z, &h);
    if (sh == NULL || (died && rp_shm_hash_verify_locked(h) != 0)) {
        rp_log_error(RP_LOG_ALERT, 0, "limit_count zone \"%s\" was damaged, counts start afresh",
                     z->name);
        h = NULL;
        if (layout(z))
            sh = shared_of(z, &h);
    }
    if (shp)
        *shp = sh;
    return h;
}

/* The record of key in window w, made (or rolled) as needed; NULL when there is no room. */
static rp_lc_record_t *record_locked(rp_shm_zone_t *z, rp_shm_hash_t **hp, const lc_zone_t *lz,
                                     const void *key, size_t len, int64_t w, int64_t now)
{
    int64_t W = lz->q.window_ms;
    /* kept until the end of the window, or of the next one when the next window's
     * sliding estimate or the sync engine still needs the count */
    int64_t expires = (w + 1 + (lz->q.sliding || lz->sync)) * W;
    rp_shm_hash_item_t it = {.key = key, .key_len = len, .value_len = sizeof(rp_lc_record_t),
                             .expires = expires};
    void *v;
    int rc = rp_shm_hash_reserve_locked(*hp, &it, 0, now, &v, NULL);
    if (rc == RP_SHM_DAMAGED) {
        lc_shared_t *sh = layout(z);
        if (sh == NULL || shared_of(z, hp) == NULL)
            return NULL;
        rc = rp_shm_hash_reserve_locked(*hp, &it, 0, now, &v, NULL);
    }
    if (rc < 0)
        return NULL;
    rp_lc_record_t *rec = v;
    /* Each worker reads its own cached loop time, a few ms apart: when a worker whose
     * clock is a little ahead already opened the next window, this one counts in it too
     * (the caller decides at that window's start) rather than rolling the record back
     * and losing the window's count. A window one back by more than a second, or further
     * back, is a clock set back or a window changed by a reload: the record starts anew. */
    if (w == rec->window - 1 && rec->window * W - now <= RP_LC_CLOCK_SKEW)
        return rec;
    if (rec->window != w) {
        rp_lc_roll(rec, w);
        if (rc == RP_SHM_OK) /* an older record: it now lives as long as this window's */
            rp_shm_hash_expire_locked(*hp, key, len, expires, now);
    }
    return rec;
}

int rp_limit_count_take(rp_shm_zone_t *const *zones, const rp_str_t *keys, size_t n,
                        int64_t now, rp_lc_decision_t *d)
{
    rp_lc_record_t *recs[MAX_QUOTAS];
    lc_shared_t *sh[MAX_QUOTAS];
    size_t locked = 0;
    int refused = 0, failed = 0;
    if (n > MAX_QUOTAS)
        return -1;
    for (; locked < n; locked++) {
        const lc_zone_t *lz = zones[locked]->data;
        recs[locked] = NULL;
        d[locked].decided = 0;
        if (keys[locked].len == 0)
            continue;
        rp_shm_hash_t *h = lock_table(zones[locked], &sh[locked]);
        int64_t w = rp_lc_window_of(now, lz->q.window_ms);
        if (h)
            recs[locked] = record_locked(zones[locked], &h, lz, keys[locked].data,
                                         keys[locked].len, w, now);
        if (recs[locked] == NULL) {
            failed = 1;
            locked++;
            break;
        }
        /* the record may be in the next window (another worker's clock is ahead) */
        int64_t at = recs[locked]->window > w ? recs[locked]->window * lz->q.window_ms : now;
        rp_lc_decide(&lz->q, recs[locked], at, &d[locked]);
        refused |= !d[locked].admit;
    }
    /* only now, every quota having admitted, is the request counted in each */
    for (size_t i = 0; !failed && !refused && i < n; i++) {
        const lc_zone_t *lz = zones[i]->data;
        if (recs[i] == NULL)
            continue;
        rp_lc_count(recs[i], lz->sync);
        if (lz->sync)
            rp_shm_counter_set(&sh[i]->dirty, 1);
    }
    for (size_t i = locked; i-- > 0;)
        if (keys[i].len)
            rp_shm_unlock(zones[i]);
    if (failed) {
        rp_log_error(RP_LOG_ERR, 0, "limit_count: zone \"%s\" has no room for a new key",
                     zones[locked - 1]->name);
        return -1;
    }
    return !refused;
}

int rp_limit_count_peek(rp_shm_zone_t *zone, rp_str_t key, int64_t now, rp_lc_decision_t *d)
{
    const lc_zone_t *lz = zone->data;
    rp_shm_hash_t *h = lock_table(zone, NULL);
    if (h == NULL) {
        rp_shm_unlock(zone);
        return -1;
    }
    int64_t w = rp_lc_window_of(now, lz->q.window_ms);
    rp_lc_record_t rec = {.window = w};
    rp_shm_hash_item_t it;
    if (rp_shm_hash_get_locked(h, key.data, key.len, now, 0, &it) == RP_SHM_OK &&
        it.value_len == sizeof(rec))
        memcpy(&rec, it.value, sizeof(rec));
    rp_shm_unlock(zone);
    /* a copy rolled to now's window, as record_locked rolls the stored one */
    int64_t at = now;
    if (rec.window == w + 1 && rec.window * lz->q.window_ms - now <= RP_LC_CLOCK_SKEW)
        at = rec.window * lz->q.window_ms;
    else if (rec.window != w)
        rp_lc_roll(&rec, w);
    rp_lc_decide(&lz->q, &rec, at, d);
    d->decided = 1;
    return 0;
}

/* ---- the sync engine's operations (run in the helper) ---- */

#define COLLECT_BATCH 64
#define COLLECT_KEY   256

typedef struct {
    const lc_zone_t *lz;
    int64_t now;
    unsigned n, more;
    struct {
        rp_lc_unsent_t u[2];
        int nu;
        size_t key_len;
        unsigned char key[COLLECT_KEY];
    } out[COLLECT_BATCH];
    unsigned char *long_key; /* a key longer than COLLECT_KEY, handed out alone */
    size_t long_len;
    rp_lc_unsent_t long_u[2];
    int long_nu;
} collect_t;

static int collect_visit(const rp_shm_hash_item_t *it, void *arg)
{
    collect_t *c = arg;
    rp_lc_record_t *rec = (rp_lc_record_t *)it->value; /* counts change; the table does not */
    if (it->value_len != sizeof(*rec) || (rec->unsent == 0 && rec->prev_unsent == 0))
        return 0;
    if (c->n == COLLECT_BATCH) {
        c->more = 1;
        return 1;
    }
    if (it->key_len > COLLECT_KEY) {
        if (c->long_key) { /* one at a time: the next pass takes the next */
            c->more = 1;
            return 0;
        }
        c->long_key = malloc(it->key_len);
        if (c->long_key == NULL) {
            c->more = 1;
            return 1;
        }
        memcpy(c->long_key, it->key, it->key_len);
        c->long_len = it->key_len;
        c->long_nu = rp_lc_collect(rec, c->lz->q.window_ms, c->now, c->long_u);
        return 0;
    }
    memcpy(c->out[c->n].key, it->key, it->key_len);
    c->out[c->n].key_len = it->key_len;
    c->out[c->n].nu = rp_lc_collect(rec, c->lz->q.window_ms, c->now, c->out[c->n].u);
    c->n++;
    return 0;
}

/*
 * Hands out every unsent count and zeroes it. The zone-wide dirty counter says
 * whether any request was accepted since the last collect; only then is the table
 * walked, which costs a visit of every record (live keys of the zone) under the lock.
 * The walk goes by batches of COLLECT_BATCH records copied out under the lock, so
 * fn (which builds the Redis pipeline, and may allocate) runs without it and the
 * workers wait at most one batch; a walk that filled a batch starts again, finding
 * the records it already emptied to skip.
 */
static void sync_collect(rp_shm_zone_t *z, int64_t now, rp_limit_sync_collect_pt fn, void *arg)
{
    lc_zone_t *lz = z->data;
    collect_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return;
    lc_shared_t *sh;
    rp_shm_hash_t *h = lock_table(z, &sh);
    if (h == NULL || rp_shm_counter_get(&sh->dirty) == 0) {
        rp_shm_unlock(z);
        free(c);
        return;
    }
    rp_shm_counter_set(&sh->dirty, 0);
    for (;;) {
        c->lz = lz;
        c->now = now;
        c->n = c->more = 0;
        c->long_key = NULL;
        rp_shm_hash_each_locked(h, now, collect_visit, c);
        rp_shm_unlock(z);
        for (unsigned i = 0; i < c->n; i++)
            for (int j = 0; j < c->out[i].nu; j++)
                fn(arg, c->out[i].key, c->out[i].key_len, c->out[i].u[j].window,
                   c->out[i].u[j].delta, c->out[i].u[j].ttl_ms);
        for (int j = 0; c->long_key && j < c->long_nu; j++)
            fn(arg, c->long_key, c->long_len, c->long_u[j].window, c->long_u[j].delta,
               c->long_u[j].ttl_ms);
        free(c->long_key);
        if (!c->more)
            break;
        if ((h = lock_table(z, &sh)) == NULL) {
            rp_shm_unlock(z);
            break;
        }
    }
    free(c);
}

static void sync_apply(rp_shm_zone_t *z, const void *key, size_t key_len, int64_t window,
                       int64_t total, int64_t sent, int64_t now)
{
    lc_zone_t *lz = z->data;
    if (key_len == 0 || key_len > RP_SHM_HASH_MAX_KEY)
        return;
    rp_shm_hash_t *h = lock_table(z, NULL);
    int64_t cur = rp_lc_window_of(now, lz->q.window_ms);
    /* a window over (but the one before the current, still read by sliding estimates)
     * has nothing left to decide: no record is made for it */
    if (h && window >= cur - 1) {
        rp_lc_record_t *rec =
            record_locked(z, &h, lz, key, key_len, window > cur ? window : cur, now);
        if (rec)
            rp_lc_apply(rec, window, total, sent);
    }
    rp_shm_unlock(z);
}

static const rp_limit_sync_ops_t sync_ops = {sync_collect, sync_apply};

const rp_limit_sync_ops_t *rp_limit_count_sync_ops(void)
{
    return &sync_ops;
}

void rp_limit_count_sync_on(rp_shm_zone_t *zone)
{
    lc_zone_t *lz = zone->data;
    lz->sync = 1;
}

/* ---- configuration ---- */

static void *create_http_main(rp_conf_t *cf)
{
    lc_main_conf_t *mc = rp_arena_calloc(cf->arena, sizeof(*mc));
    rp_array_init(&mc->zones, cf->arena, 4, sizeof(lc_zone_t *));
    return mc;
}

static void *create_loc(rp_conf_t *cf)
{
    lc_loc_conf_t *lc = rp_arena_calloc(cf->arena, sizeof(*lc));
    lc->status = RP_CONF_UNSET;
    lc->dry_run = RP_CONF_UNSET;
    lc->log_level = RP_CONF_UNSET;
    return lc;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    lc_loc_conf_t *p = parent, *c = child;
    (void)cf;
    if (c->quotas == NULL) /* as limit_req: a level with its own quotas inherits none */
        c->quotas = p->quotas;
    RP_CONF_MERGE(c->status, p->status, RP_CONF_UNSET, 429);
    RP_CONF_MERGE(c->dry_run, p->dry_run, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->log_level, p->log_level, RP_CONF_UNSET, RP_LOG_ERR);
    return RP_CONF_OK;
}

static lc_main_conf_t *main_conf(rp_conf_t *cf)
{
    return cf->http_ctx->main_conf[rp_limit_count_module.index];
}

static lc_zone_t *find_zone(lc_main_conf_t *mc, const char *name)
{
    lc_zone_t **z = mc->zones.elts;
    for (size_t i = 0; i < mc->zones.nelts; i++)
        if (strcmp(z[i]->name, name) == 0)
            return z[i];
    return NULL;
}

static const char *set_zone(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    (void)conf;
    const char *zone = NULL, *limit = NULL, *window = NULL;
    int sliding = 0, sync = 0;
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "zone=", 5) == 0)
            zone = a + 5;
        else if (strncmp(a, "limit=", 6) == 0)
            limit = a + 6;
        else if (strncmp(a, "window=", 7) == 0)
            window = a + 7;
        else if (strcmp(a, "sliding") == 0)
            sliding = 1;
        else if (strcmp(a, "sync") == 0)
            sync = 1;
        else
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
    }
    if (zone == NULL)
        return rp_conf_error(cf, "no \"zone\" parameter");
    if (limit == NULL)
        return rp_conf_error(cf, "no \"limit\" parameter");
    if (window == NULL)
        return rp_conf_error(cf, "no \"window\" parameter");

    const char *colon = strchr(zone, ':');
    size_t size;
    if (colon == NULL || colon == zone)
        return rp_conf_error(cf, "invalid zone \"%s\", it must be NAME:SIZE", zone);
    if (rp_parse_size(colon + 1, &size) != 0)
        return rp_conf_error(cf, "invalid zone size \"%s\"", colon + 1);
    if (size < MIN_ZONE_SIZE)
        return rp_conf_error(cf, "zone \"%.*s\" is too small, it must be at least 32k",
                             (int)(colon - zone), zone);
    char *name = rp_arena_strndup(cf->arena, zone, (size_t)(colon - zone));

    long n;
    if (rp_parse_int(limit, INT32_MAX, &n) != 0 || n < 1)
        return rp_conf_error(cf, "invalid limit \"%s\", it must be a count of 1 or more", limit);
    int64_t ms;
    if (rp_lc_parse_window(window, &ms) != 0)
        return rp_conf_error(cf, "invalid window \"%s\", it must be whole seconds from 1s to 1y",
                             window);

    lc_main_conf_t *mc = main_conf(cf);
    lc_zone_t *lz = find_zone(mc, name);
    if (lz && lz->shm)
        return rp_conf_error(cf, "zone \"%s\" is already defined", name);
    if (lz == NULL) {
        lz = rp_arena_calloc(cf->arena, sizeof(*lz));
        lz->name = name;
        *(lc_zone_t **)rp_array_push(&mc->zones) = lz;
    }
    const char *err = rp_cv_compile(cf, cf->argv[1], &lz->key);
    if (err)
        return rp_conf_error(cf, "%s", err);
    lz->q = (rp_lc_quota_t){.limit = n, .window_ms = ms, .sliding = sliding};
    lz->sync = sync;
    lz->shm = rp_shm_zone_add_versioned(cf, name, size, ZONE_TAG, ZONE_VERSION, zone_init);
    if (lz->shm == NULL)
        return RP_CONF_ERROR;
    lz->shm->data = lz;
    if (sync && (err = rp_limit_sync_zone(cf, lz->shm, name, &sync_ops)) != NULL)
        return rp_conf_error(cf, "%s", err);
    return RP_CONF_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(lc_zone_t *const *)a)->name, (*(lc_zone_t *const *)b)->name);
}

static const char *set_limit(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    lc_loc_conf_t *lc = conf;
    const char *a = cf->argv[1];
    if (strncmp(a, "zone=", 5) != 0 || a[5] == '\0')
        return rp_conf_error(cf, "invalid parameter \"%s\", it must be zone=NAME", a);
    lc_main_conf_t *mc = main_conf(cf);
    lc_zone_t *lz = find_zone(mc, a + 5);
    if (lz == NULL) { /* declared further on, or an error at the end */
        lz = rp_arena_calloc(cf->arena, sizeof(*lz));
        lz->name = rp_arena_strdup(cf->arena, a + 5);
        lz->file = cf->file;
        lz->line = cf->line;
        *(lc_zone_t **)rp_array_push(&mc->zones) = lz;
    }
    if (lc->quotas == NULL) {
        lc->quotas = rp_arena_calloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(lc->quotas, cf->arena, 2, sizeof(lc_zone_t *));
    }
    lc_zone_t **q = lc->quotas->elts;
    for (size_t i = 0; i < lc->quotas->nelts; i++)
        if (q[i] == lz)
            return rp_conf_error(cf, "zone \"%s\" is duplicate", lz->name);
    if (lc->quotas->nelts == MAX_QUOTAS)
        return rp_conf_error(cf, "more than %d quotas in one place", MAX_QUOTAS);
    *(lc_zone_t **)rp_array_push(lc->quotas) = lz;
    /* the order the locks are taken in: by name, the same in every generation */
    qsort(lc->quotas->elts, lc->quotas->nelts, sizeof(lc_zone_t *), by_name);
    return RP_CONF_OK;
}

/* ---- requests ---- */

/* Marks a request decided; survives the context reset of an internal redirect, so the
 * phases running again do not count the request twice. */
static void decided(rp_request_t *r, void *data)
{
    (void)r;
    (void)data;
}

static lc_ctx_t *get_ctx(rp_request_t *r)
{
    lc_ctx_t *ctx = rp_http_get_ctx(r, rp_limit_count_module);
    for (rp_http_cleanup_t *cl = r->cleanups; ctx == NULL && cl; cl = cl->next)
        if (cl->fn == decided)
            rp_http_set_ctx(r, rp_limit_count_module, ctx = cl->data);
    return ctx;
}

static const char *window_text(int64_t ms, char *buf, size_t len)
{
    static const struct {
        int64_t ms;
        const char *unit;
    } u[] = {{RP_LC_YEAR, "y"}, {RP_LC_MONTH, "M"}, {7 * RP_LC_DAY, "w"}, {RP_LC_DAY, "d"},
             {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
        if (ms % u[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / u[i].ms), u[i].unit);
            break;
        }
    return buf;
}

static int handler(rp_request_t *r)
{
    lc_loc_conf_t *lc = r->loc_conf[rp_limit_count_module.index];
    if (lc->quotas == NULL || r->subrequest || get_ctx(r))
        return RP_DECLINED;

    lc_zone_t **zones = lc->quotas->elts;
    size_t nz = lc->quotas->nelts;
    rp_str_t keys[MAX_QUOTAS];
    int any = 0;
    for (size_t i = 0; i < nz; i++) {
        keys[i] = rp_cv_eval(r, &zones[i]->key);
        if (keys[i].len > RP_SHM_HASH_MAX_KEY) {
            rp_log_error(RP_LOG_ERR, 0, "limit_count: key of zone \"%s\" is %zu bytes, over %d",
                         zones[i]->name, keys[i].len, RP_SHM_HASH_MAX_KEY);
            return RP_ERROR;
        }
        any |= keys[i].len > 0; /* an empty key is not counted, as nginx's limits */
    }
    if (!any)
        return RP_DECLINED;

    lc_ctx_t *ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    rp_http_set_ctx(r, rp_limit_count_module, ctx);
    rp_http_cleanup_add(r, decided, ctx);

    rp_shm_zone_t *shm[MAX_QUOTAS];
    rp_lc_decision_t d[MAX_QUOTAS];
    for (size_t i = 0; i < nz; i++)
        shm[i] = zones[i]->shm;
    int rc = rp_limit_count_take(shm, keys, nz, rp_time_ms(), d);
    if (rc < 0)
        return RP_ERROR; /* logged */
    int refused = rc == 0;

    /* Tell the log, the variables and the RateLimit fields. */
    ctx->status = !refused ? LC_PASSED : lc->dry_run ? LC_REJECTED_DRY_RUN : LC_REJECTED;
    ctx->remaining = INT64_MAX;
    for (size_t i = 0; i < nz; i++) {
        if (!d[i].decided)
            continue;
        lc_zone_t *lz = zones[i];
        int64_t remaining = refused ? (d[i].admit ? lz->q.limit - d[i].used : 0) : d[i].remaining;
        if (remaining < ctx->remaining || (remaining == ctx->remaining && d[i].reset > ctx->reset)) {
            ctx->remaining = remaining;
            ctx->reset = d[i].reset;
        }
        if (!d[i].admit) {
            char wt[32];
            rp_log_error(lc->log_level, 0,
                         "limiting requests by zone \"%s\": quota of %lld per %s used up, "
                         "client: %.*s%s",
                         lz->name, (long long)lz->q.limit,
                         window_text(lz->q.window_ms, wt, sizeof(wt)),
                         (int)rp_http_remote_addr(r).len, rp_http_remote_addr(r).data,
                         lc->dry_run ? ", dry run" : "");
        }
        rp_limit_report_t rep = {
            .policy = lz->name,
            .quota = lz->q.limit,
            .window = lz->q.window_ms / RP_LC_SECOND,
            .remaining = remaining,
            .reset = d[i].reset,
            .retry_after = !d[i].admit && !lc->dry_run ? d[i].retry_after : 0,
            .refused = !d[i].admit && !lc->dry_run,
        };
        rp_limit_report(r, &rep);
    }
    if (!refused || lc->dry_run)
        return RP_DECLINED;
    if (lc->status == 444) { /* as `return 444`: no answer, the connection closes */
        r->status = 444;
        rp_http_close_now(r);
        return RP_DONE;
    }
    return rp_http_send_error(r, lc->status);
}

/* ---- variables ---- */

static int get_status(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)v;
    static const rp_str_t names[] = {RP_STR("PASSED"), RP_STR("REJECTED"),
                                     RP_STR("REJECTED_DRY_RUN")};
    lc_ctx_t *ctx = get_ctx(r);
    if (ctx == NULL || ctx->status == LC_NONE)
        return -1;
    *out = names[ctx->status - 1];
    return 0;
}

static int get_number(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    lc_ctx_t *ctx = get_ctx(r);
    if (ctx == NULL || ctx->status == LC_NONE)
        return -1;
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld",
                     (long long)(v->data ? ctx->reset : ctx->remaining));
    *out = (rp_str_t){rp_arena_strndup(r->arena, buf, (size_t)n), (size_t)n};
    return 0;
}

static const rp_var_def_t variables[] = {
    {"limit_count_status", get_status, NULL, RP_VAR_NOCACHE, 0},
    {"limit_count_remaining", get_number, NULL, RP_VAR_NOCACHE, 0},
    {"limit_count_reset", get_number, NULL, RP_VAR_NOCACHE, 1},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    lc_main_conf_t *mc = rp_http_main_conf(cf->cycle, &rp_limit_count_module);
    lc_zone_t **z = mc ? mc->zones.elts : NULL;
    for (size_t i = 0; mc && i < mc->zones.nelts; i++) {
        if (z[i]->shm == NULL) {
            snprintf(cf->error, sizeof(cf->error), "%s:%u: \"limit_count\": unknown zone \"%s\"",
                     z[i]->file, z[i]->line, z[i]->name);
            return RP_CONF_ERROR;
        }
    }
    rp_http_add_phase_handler(cf, RP_PHASE_PREACCESS, handler);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define C(f)     offsetof(lc_loc_conf_t, f)

static const rp_command_t commands[] = {
    {"limit_count_zone", RP_CTX_HTTP, 0, 4, 6, set_zone, RP_CONF_HTTP_MAIN, 0, NULL},
    {"limit_count", ANYWHERE, 0, 1, 1, set_limit, RP_CONF_LOC, 0, NULL},
    {"limit_count_status", ANYWHERE, 0, 1, 1, rp_limit_set_status, RP_CONF_LOC,
     offsetof(lc_loc_conf_t, status), NULL},
    {"limit_count_dry_run", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, C(dry_run), NULL},
    {"limit_count_log_level", ANYWHERE, 0, 1, 1, rp_limit_set_log_level, RP_CONF_LOC,
     offsetof(lc_loc_conf_t, log_level), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_limit_count_module = {
    .name = "limit_count",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
