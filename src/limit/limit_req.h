/*
 * limit_req's arithmetic: nginx's leaky bucket, kept in a shared-memory hash table
 * (one record per key), with no sockets, no clock and no logging, so that a unit
 * test drives it with a fake clock on plain memory. The module (limit_req_module.c)
 * evaluates the keys, takes the zones' locks through these functions, and turns the
 * result into a pass, a delay or a refusal.
 *
 * The units are nginx's, because "exactly as nginx" is decided by them: a rate is
 * kept in thousandths of a request per second (10r/s is 10000, 1r/m is 1000/60 = 16,
 * truncated as nginx does), a record's excess in thousandths of a request, time in
 * milliseconds, and the leak over ms milliseconds is rate * ms / 1000, truncated.
 */
#ifndef RP_LIMIT_REQ_H
#define RP_LIMIT_REQ_H

#include "core/shm.h"
#include "core/shm_hash.h"
#include "core/str.h"
#include "limit/limit.h"

#include <stddef.h>
#include <stdint.h>

/* One key's state, the value of its hash entry (8-byte aligned, 64 bytes). */
typedef struct {
    int64_t last;   /* ms of the last leak */
    int64_t excess; /* thousandths of a request over the rate, after the last request */
    /* `sync` (see rp_limit_sync_ops_t): requests accepted here not yet collected, the
     * second they count in, the total Redis said for that second, and the same for the
     * second before (an answer may come back after the second turned). */
    int64_t unsent;
    int64_t window, heard;
    int64_t prev_window, prev_heard;
    uint32_t fresh; /* made by a lookup that did not charge it yet: no history */
    uint32_t pad;
} rp_limit_req_rec_t;

/* At the start of a zone, before its table. */
typedef struct {
    uint64_t magic;
    int64_t dirty; /* sync: records charged since the last collect (under the lock) */
    uint64_t spare[6];
} rp_limit_req_shared_t;

/* A zone as the arithmetic sees it. */
typedef struct {
    rp_shm_zone_t *zone;       /* its lock; NULL on plain memory (tests): no locking */
    rp_limit_req_shared_t *sh; /* set when the zone is mapped */
    rp_shm_hash_t *h;
    int64_t rate; /* thousandths of a request per second, > 0 */
    int sync;     /* count what is accepted for the sync engine */
} rp_limit_req_table_t;

/* One `limit_req` line of a location. */
typedef struct {
    rp_limit_req_table_t *t;
    int64_t burst; /* thousandths */
    int64_t delay; /* thousandths: excess up to this passes at once (nodelay: huge) */
} rp_limit_req_limit_t;

#define RP_LIMIT_REQ_NODELAY (INT64_MAX / 4000)

/* limit_req lines one level may have (their zones' locks are held together). */
#define RP_LIMIT_REQ_MAX_LIMITS 32

/* What the lookup of one limit answers, and the outcome of a request. */
enum {
    RP_LIMIT_REQ_NONE = 0, /* every key was empty: not limited, no status */
    RP_LIMIT_REQ_PASSED,
    RP_LIMIT_REQ_DELAYED,
    RP_LIMIT_REQ_REJECTED,
    RP_LIMIT_REQ_NOMEM, /* a new record found no room even after evicting: refused too */
};

/* What became of one limit of a request, for the reports. */
typedef struct {
    unsigned looked : 1;  /* its key was not empty: it was consulted */
    unsigned charged : 1; /* the request counts in its bucket */
    unsigned refused : 1;
    int64_t excess; /* charged: the stored excess; else the excess the request would have
                     * made (over burst when refused) */
} rp_limit_req_seen_t;

typedef struct {
    int outcome;    /* RP_LIMIT_REQ_* */
    size_t which;   /* the limit that refused, or whose delay is the longest */
    int64_t excess; /* that limit's excess, for the log line */
    int64_t delay;  /* ms to wait: the longest of the charged limits' */
} rp_limit_req_result_t;

/* The excess a request arriving at now makes on rec (not stored): the leak since
 * rec->last plus this request's 1000, at least 0; a fresh record makes 0. *ms is the
 * time since the last leak as nginx clamps it (0 when rec->last is ahead, 1 when it is
 * more than a minute ahead: the clock went back). */
int64_t rp_limit_req_excess(const rp_limit_req_rec_t *rec, int64_t rate, int64_t now, int64_t *ms);

/* The ms a request with excess must wait under a limit's delay threshold (0: none). */
int64_t rp_limit_req_delay_ms(int64_t excess, int64_t delay, int64_t rate);

/*
 * Decides on one request: the limits of its location in order, with their keys (an
 * empty key: that limit does not apply). As nginx: the first limit whose bucket would
 * overflow its burst refuses the request and nothing is charged anywhere; the last
 * limit is charged at its lookup, the earlier ones once all have passed; the delay is
 * the longest of theirs. Unlike nginx, the locks of all the zones involved are held
 * for the whole decision (taken in the order of the zones' names), so the check and
 * the charges are one atomic step across workers. seen[n] (may be NULL) gets each
 * limit's part. At most RP_LIMIT_REQ_MAX_LIMITS limits count.
 */
void rp_limit_req_decide(const rp_limit_req_limit_t *limits, size_t n, const rp_str_t *keys,
                         int64_t now, rp_limit_req_seen_t *seen, rp_limit_req_result_t *res);

/* The RateLimit fields of one limit's part (policy left NULL for the caller). */
void rp_limit_req_report_of(const rp_limit_req_limit_t *l, const rp_limit_req_seen_t *s,
                            rp_limit_report_t *rep);

/* Lays a table out over size bytes at mem (a new zone, or one whose layout is not
 * ours); 0, or -1 when too small. attach finds one laid out before: 0 or -1. */
int rp_limit_req_table_init(rp_limit_req_table_t *t, void *mem, size_t size);
int rp_limit_req_table_attach(rp_limit_req_table_t *t, void *mem, size_t size);

/* The sync operations, on a table (the module wraps them for rp_limit_sync_ops_t). */
void rp_limit_req_collect(rp_limit_req_table_t *t, int64_t now, rp_limit_sync_collect_pt fn,
                          void *arg);
void rp_limit_req_apply(rp_limit_req_table_t *t, const void *key, size_t key_len, int64_t window,
                        int64_t total, int64_t sent, int64_t now);

/* The module: directives, zones, the preaccess handler (limit_req_module.c). */
extern rp_module_t rp_http_limit_req_module;

/* The table of a limit_req_zone's shared memory zone (its tag is "limit_req"), for
 * callers outside the module (the Lua `rampart.limit` objects). */
rp_limit_req_table_t *rp_limit_req_zone_table(rp_shm_zone_t *zone);

/* What a request arriving at now would make of key's bucket in t, without charging it:
 * the excess (thousandths; 0 for a key never seen). Takes the zone's lock. */
int64_t rp_limit_req_peek(rp_limit_req_table_t *t, rp_str_t key, int64_t now);

/* How long Redis keeps a one-second counter: long enough for a late answer. */
#define RP_LIMIT_REQ_SYNC_TTL 5000

#endif
