/*
 * nginx's request limits, as nginx spells and means them:
 *
 *   limit_req_zone KEY zone=NAME:SIZE [rate=Nr/s|Nr/m] [sync];   (http)
 *   limit_req zone=NAME [burst=N] [nodelay | delay=N];           (http, server, location)
 *   limit_req_status CODE;            400-599, default 503
 *   limit_req_log_level info|notice|warn|error;   default error; delays one level lower
 *   limit_req_dry_run on|off;
 *   $limit_req_status                 PASSED, DELAYED, REJECTED, DELAYED_DRY_RUN,
 *                                     REJECTED_DRY_RUN
 *
 * This file is the shell: the directives, the zones, the preaccess handler and the
 * variable. The arithmetic (the leaky bucket, how several limits combine) is in
 * limit_req.c. A request over the rate but within the burst waits by suspending the
 * request (a timer of the request; RP_AGAIN), never the worker; a client that leaves
 * meanwhile ends the request, which cancels the timer with its other cleanups. What a
 * limit decided is kept with the request so that neither the wake-up nor an internal
 * redirect limits the request a second time (nginx keeps it in the main request).
 * Subrequests (mirror) are not limited: the request they belong to was.
 */
#include "limit/limit_req.h"
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"
#include "observe/metrics.h"

#include <stdio.h>
#include <string.h>

#define ZONE_TAG     "limit_req"
#define ZONE_VERSION 1
#define MIN_ZONE     (32 * 1024) /* nginx's eight pages */
#define MAX_RATE     1000000     /* requests per second or minute */
#define MAX_BURST    100000000L

/* A zone, from its declaration (or first reference) on. */
typedef struct {
    const char *name;
    rp_cv_t key;
    const char *key_text;
    rp_limit_req_table_t table;
    rp_shm_zone_t *shm;
    int declared;
    const char *ref_file; /* where a limit_req first named it, for "unknown zone" */
    unsigned ref_line;
} lr_zone_t;

typedef struct {
    rp_array_t zones; /* lr_zone_t * */
} lr_main_conf_t;

typedef struct {
    rp_array_t *limits; /* rp_limit_req_limit_t; NULL: none at this level (inherited) */
    rp_array_t *zones;  /* lr_zone_t *, beside limits */
    int status;
    int log_level;
    int delay_log_level;
    int dry_run;
} lr_loc_conf_t;

/* What limit_req decided for a request: found again through its cleanup list after an
 * internal redirect, which clears module contexts. */
typedef struct {
    int status; /* LR_* below */
} lr_state_t;

enum {
    LR_PASSED = 1,
    LR_DELAYED,
    LR_REJECTED,
    LR_DELAYED_DRY_RUN,
    LR_REJECTED_DRY_RUN,
};

static const rp_str_t status_names[] = {
    {"PASSED", 6},           {"DELAYED", 7},           {"REJECTED", 8},
    {"DELAYED_DRY_RUN", 15}, {"REJECTED_DRY_RUN", 16},
};

/* ---- configuration ---- */

static void *create_main(rp_conf_t *cf)
{
    lr_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->zones, cf->arena, 4, sizeof(lr_zone_t *));
    return m;
}

static void *create_loc(rp_conf_t *cf)
{
    lr_loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->status = RP_CONF_UNSET;
    c->log_level = RP_CONF_UNSET;
    c->dry_run = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    lr_loc_conf_t *p = parent, *c = child;
    if (c->limits == NULL) { /* as nginx: a level with its own limits inherits none */
        c->limits = p->limits;
        c->zones = p->zones;
    }
    RP_CONF_MERGE(c->status, p->status, RP_CONF_UNSET, 503);
    RP_CONF_MERGE(c->log_level, p->log_level, RP_CONF_UNSET, RP_LOG_ERR);
    RP_CONF_MERGE(c->dry_run, p->dry_run, RP_CONF_UNSET, 0);
    c->delay_log_level = c->log_level == RP_LOG_INFO ? RP_LOG_INFO : c->log_level + 1;
    return RP_CONF_OK;
}

static lr_zone_t *zone_named(rp_conf_t *cf, const char *name, size_t len)
{
    lr_main_conf_t *m = cf->http_ctx->main_conf[rp_http_limit_req_module.index];
    for (size_t i = 0; i < m->zones.nelts; i++) {
        lr_zone_t *z = RP_ARRAY_AT(&m->zones, lr_zone_t *, i);
        if (strlen(z->name) == len && memcmp(z->name, name, len) == 0)
            return z;
    }
    lr_zone_t *z = rp_arena_calloc(cf->arena, sizeof(*z));
    char *n = rp_arena_alloc(cf->arena, len + 1);
    memcpy(n, name, len);
    n[len] = '\0';
    z->name = n;
    *(lr_zone_t **)rp_array_push(&m->zones) = z;
    return z;
}

static int zone_init(rp_shm_zone_t *shm, int reused, char *err, size_t errlen)
{
    lr_zone_t *z = shm->data;
    if (reused && rp_limit_req_table_attach(&z->table, shm->addr, shm->avail) == 0)
        return 0; /* a reload keeps the buckets */
    if (rp_limit_req_table_init(&z->table, shm->addr, shm->avail) != 0) {
        snprintf(err, errlen, "%s:%u: zone \"%s\" is too small", shm->file, shm->line, shm->name);
        return -1;
    }
    return 0;
}

rp_limit_req_table_t *rp_limit_req_zone_table(rp_shm_zone_t *zone)
{
    lr_zone_t *z = zone->data;
    return z && z->table.h ? &z->table : NULL;
}

static void sync_collect(rp_shm_zone_t *shm, int64_t now, rp_limit_sync_collect_pt fn, void *arg)
{
    lr_zone_t *z = shm->data;
    rp_limit_req_collect(&z->table, now, fn, arg);
}

static void sync_apply(rp_shm_zone_t *shm, const void *key, size_t key_len, int64_t window,
                       int64_t total, int64_t sent, int64_t now)
{
    lr_zone_t *z = shm->data;
    rp_limit_req_apply(&z->table, key, key_len, window, total, sent, now);
}

static const rp_limit_sync_ops_t sync_ops = {sync_collect, sync_apply};

/* "rate=10r/s", "rate=30r/m", or a plain number of requests per second, as nginx reads
 * it: the rate in thousandths per second, truncated (1r/m is 16). */
static int parse_rate(const char *v, int64_t *rate)
{
    char buf[32];
    size_t len = strlen(v);
    long scale = 1;
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, v, len + 1);
    if (len > 3 && strcmp(buf + len - 3, "r/s") == 0) {
        buf[len - 3] = '\0';
    } else if (len > 3 && strcmp(buf + len - 3, "r/m") == 0) {
        buf[len - 3] = '\0';
        scale = 60;
    }
    long n;
    if (rp_parse_int(buf, MAX_RATE, &n) != 0 || n <= 0)
        return -1;
    *rate = (int64_t)n * 1000 / scale;
    return *rate > 0 ? 0 : -1;
}

static const char *set_zone(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *name = NULL;
    size_t name_len = 0, size = 0;
    int64_t rate = 1000; /* nginx's default: 1r/s */
    int sync = 0;
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "zone=", 5) == 0) {
            const char *colon = strchr(a + 5, ':');
            if (colon == NULL || rp_parse_size(colon + 1, &size) != 0)
                return rp_conf_error(cf, "invalid zone size \"%s\"", a);
            name = a + 5;
            name_len = (size_t)(colon - name);
            if (name_len == 0)
                return rp_conf_error(cf, "empty zone name in \"%s\"", a);
            if (size < MIN_ZONE)
                return rp_conf_error(cf, "zone \"%s\" is too small", a);
        } else if (strncmp(a, "rate=", 5) == 0) {
            if (parse_rate(a + 5, &rate) != 0)
                return rp_conf_error(cf, "invalid rate \"%s\"", a);
        } else if (strcmp(a, "sync") == 0) {
            sync = 1;
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    if (name == NULL)
        return rp_conf_error(cf, "\"%s\" must have \"zone\" parameter", cmd->name);
    lr_zone_t *z = zone_named(cf, name, name_len);
    if (z->declared)
        return rp_conf_error(cf, "%s \"%s\" is already bound to key \"%s\"", cmd->name, z->name,
                             z->key_text);
    const char *rv = rp_cv_compile(cf, cf->argv[1], &z->key);
    if (rv != NULL)
        return rp_conf_error(cf, "%s", rv);
    z->key_text = rp_arena_strdup(cf->arena, cf->argv[1]);
    z->shm = rp_shm_zone_add_versioned(cf, z->name, size, ZONE_TAG, ZONE_VERSION, zone_init);
    if (z->shm == NULL)
        return RP_CONF_ERROR;
    z->shm->data = z;
    z->table.zone = z->shm;
    z->table.rate = rate;
    z->table.sync = sync;
    z->declared = 1;
    if (sync) {
        const char *msg = rp_limit_sync_zone(cf, z->shm, z->name, &sync_ops);
        if (msg != NULL)
            return rp_conf_error(cf, "%s", msg);
    }
    return RP_CONF_OK;
}

static const char *set_limit(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    lr_loc_conf_t *c = conf;
    lr_zone_t *z = NULL;
    long burst = 0, delay = 0;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "zone=", 5) == 0) {
            if (a[5] == '\0')
                return rp_conf_error(cf, "empty zone name in \"%s\"", a);
            z = zone_named(cf, a + 5, strlen(a + 5));
        } else if (strncmp(a, "burst=", 6) == 0) {
            if (rp_parse_int(a + 6, MAX_BURST, &burst) != 0 || burst <= 0)
                return rp_conf_error(cf, "invalid burst value \"%s\"", a);
        } else if (strncmp(a, "delay=", 6) == 0) {
            if (rp_parse_int(a + 6, MAX_BURST, &delay) != 0 || delay <= 0)
                return rp_conf_error(cf, "invalid delay value \"%s\"", a);
        } else if (strcmp(a, "nodelay") == 0) {
            delay = -1;
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    if (z == NULL)
        return rp_conf_error(cf, "\"%s\" must have \"zone\" parameter", cmd->name);
    if (c->limits == NULL) {
        c->limits = rp_arena_calloc(cf->arena, sizeof(rp_array_t));
        c->zones = rp_arena_calloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(c->limits, cf->arena, 2, sizeof(rp_limit_req_limit_t));
        rp_array_init(c->zones, cf->arena, 2, sizeof(lr_zone_t *));
    }
    for (size_t i = 0; i < c->zones->nelts; i++)
        if (RP_ARRAY_AT(c->zones, lr_zone_t *, i) == z)
            return rp_conf_error(cf, "zone \"%s\" is used twice at this level", z->name);
    if (c->zones->nelts >= RP_LIMIT_REQ_MAX_LIMITS)
        return rp_conf_error(cf, "more than %d \"limit_req\" at this level",
                             RP_LIMIT_REQ_MAX_LIMITS);
    if (z->ref_file == NULL) {
        z->ref_file = cf->file;
        z->ref_line = cf->line;
    }
    rp_limit_req_limit_t *l = rp_array_push(c->limits);
    l->t = &z->table; /* filled in when the zone is declared, before or after this line */
    l->burst = (int64_t)burst * 1000;
    l->delay = delay < 0 ? RP_LIMIT_REQ_NODELAY : (int64_t)delay * 1000;
    *(lr_zone_t **)rp_array_push(c->zones) = z;
    return RP_CONF_OK;
}

/* ---- the request ---- */

static void state_mark(rp_request_t *r, void *data)
{
    (void)r;
    (void)data; /* only a place to find the state by: nothing to release */
}

static lr_state_t *state_of(rp_request_t *r)
{
    lr_state_t *st = rp_http_get_ctx(r, rp_http_limit_req_module);
    if (st)
        return st;
    for (rp_http_cleanup_t *cl = r->cleanups; cl; cl = cl->next) {
        if (cl->fn == state_mark) {
            rp_http_set_ctx(r, rp_http_limit_req_module, cl->data);
            return cl->data;
        }
    }
    return NULL;
}

static void log_line(int level, rp_request_t *r, const char *what, int dry_run, int64_t excess,
                     const char *zone)
{
    if (!rp_log_enabled(level))
        return;
    rp_str_t addr = rp_http_remote_addr(r);
    rp_log_error(level, 0,
                 "%s%s, excess: %lld.%03lld by zone \"%s\", client: %.*s, request: \"%.*s %.*s\"",
                 what, dry_run ? ", dry run" : "", (long long)(excess / 1000),
                 (long long)(excess % 1000), zone, (int)addr.len, addr.data, (int)r->method.len,
                 r->method.data, (int)r->request_uri.len, r->request_uri.data);
}

#define ON_STACK 8

static int handler(rp_request_t *r)
{
    lr_loc_conf_t *c = r->loc_conf[rp_http_limit_req_module.index];
    if (c->limits == NULL || r->subrequest)
        return RP_DECLINED;
    if (state_of(r) != NULL)
        return RP_DECLINED; /* decided: woken after its delay, or redirected since */

    size_t n = c->limits->nelts;
    const rp_limit_req_limit_t *limits = c->limits->elts;
    lr_zone_t **zones = c->zones->elts;
    rp_str_t keys_buf[ON_STACK];
    rp_limit_req_seen_t seen_buf[ON_STACK];
    rp_str_t *keys = n <= ON_STACK ? keys_buf : rp_arena_alloc(r->arena, n * sizeof(*keys));
    rp_limit_req_seen_t *seen =
        n <= ON_STACK ? seen_buf : rp_arena_alloc(r->arena, n * sizeof(*seen));

    for (size_t i = 0; i < n; i++) {
        const rp_cv_t *key = &zones[i]->key;
        keys[i] = key->has_vars ? rp_cv_eval(r, key) : key->value;
        if (keys[i].len > RP_SHM_HASH_MAX_KEY) {
            rp_log_error(RP_LOG_ERR, 0,
                         "the value of the \"%s\" key is more than %d bytes: \"%.*s...\"",
                         zones[i]->key_text, RP_SHM_HASH_MAX_KEY, 64, keys[i].data);
            keys[i].len = 0; /* as nginx: that limit does not apply */
        }
    }

    rp_limit_req_result_t res;
    rp_limit_req_decide(limits, n, keys, rp_time_ms(), seen, &res);
    if (res.outcome == RP_LIMIT_REQ_NONE)
        return RP_DECLINED;

    for (size_t i = 0; i < n; i++) {
        if (!seen[i].looked)
            continue;
        rp_limit_report_t rep;
        rp_limit_req_report_of(&limits[i], &seen[i], &rep);
        rep.policy = zones[i]->name;
        if (c->dry_run) { /* the client is not refused: nothing to wait for */
            rep.refused = 0;
            rep.retry_after = 0;
        }
        rp_limit_report(r, &rep);
    }

    lr_state_t *st = rp_arena_calloc(r->arena, sizeof(*st));
    rp_http_set_ctx(r, rp_http_limit_req_module, st);
    rp_http_cleanup_add(r, state_mark, st);
    const char *zone = zones[res.which]->name;

    switch (res.outcome) {
    case RP_LIMIT_REQ_PASSED:
        st->status = LR_PASSED;
        return RP_DECLINED;
    case RP_LIMIT_REQ_DELAYED:
        log_line(c->delay_log_level, r, "delaying request", c->dry_run, res.excess, zone);
        if (c->dry_run) {
            st->status = LR_DELAYED_DRY_RUN;
            return RP_DECLINED;
        }
        st->status = LR_DELAYED;
        rp_metrics_limit(zone, RP_METRICS_LIMIT_DELAYED);
        return rp_http_sleep(r, res.delay); /* called again when the time is up */
    case RP_LIMIT_REQ_NOMEM:
        rp_log_error(RP_LOG_ALERT, 0, "could not allocate a record in limit_req zone \"%s\"", zone);
        break;
    default:
        log_line(c->log_level, r, "limiting requests", c->dry_run, res.excess, zone);
        break;
    }
    if (c->dry_run) {
        st->status = LR_REJECTED_DRY_RUN;
        return RP_DECLINED;
    }
    st->status = LR_REJECTED;
    return rp_http_send_error(r, c->status);
}

static int get_status(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)v;
    lr_state_t *st = state_of(r);
    if (st == NULL || st->status == 0)
        return -1;
    *out = status_names[st->status - 1];
    return 0;
}

static const rp_var_def_t variables[] = {
    {"limit_req_status", get_status, NULL, RP_VAR_NOCACHE, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    lr_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_http_limit_req_module);
    if (m == NULL)
        return RP_CONF_OK;
    for (size_t i = 0; i < m->zones.nelts; i++) {
        lr_zone_t *z = RP_ARRAY_AT(&m->zones, lr_zone_t *, i);
        if (!z->declared) {
            snprintf(cf->error, sizeof(cf->error),
                     "%s:%u: \"limit_req\": unknown zone \"%s\" (no limit_req_zone declares it)",
                     z->ref_file, z->ref_line, z->name);
            return RP_CONF_ERROR;
        }
    }
    rp_http_add_phase_handler(cf, RP_PHASE_PREACCESS, handler);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"limit_req_zone", RP_CTX_HTTP, 0, 2, 4, set_zone, RP_CONF_HTTP_MAIN, 0, NULL},
    {"limit_req", ANYWHERE, 0, 1, 3, set_limit, RP_CONF_LOC, 0, NULL},
    {"limit_req_status", ANYWHERE, 0, 1, 1, rp_limit_set_status, RP_CONF_LOC,
     offsetof(lr_loc_conf_t, status), NULL},
    {"limit_req_log_level", ANYWHERE, 0, 1, 1, rp_limit_set_log_level, RP_CONF_LOC,
     offsetof(lr_loc_conf_t, log_level), NULL},
    {"limit_req_dry_run", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(lr_loc_conf_t, dry_run), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_limit_req_module = {
    .name = "http_limit_req",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
