/*
 * The layout of the metrics zone and the module's configuration, shared by metrics.c
 * (counting), metrics_output.c (the exposition) and stub_status.c. Nothing outside
 * src/observe/ includes this: the rest of rampart calls metrics.h.
 */
#ifndef RP_METRICS_INT_H
#define RP_METRICS_INT_H

#include "observe/metrics.h"
#include "core/arena.h"
#include "core/shm.h"

#include <stdint.h>

#define RP_METRICS_SLOTS   16   /* worker slots: worker i counts in slot i % 16 */
#define RP_METRICS_SERIES  1024 /* series (label sets) the zone can hold, all kinds */
#define RP_METRICS_WORDS   32   /* 64-bit words per series and slot: 256 bytes */
#define RP_METRICS_KEY     120  /* a series' labels, joined by \x1f, NUL-terminated */
#define RP_METRICS_MAGIC   0x72706d6574726963ull /* "rpmetric" */
#define RP_METRICS_VERSION 2u                    /* of the layout below: raise it when it changes */

/* What a series counts. */
enum {
    RP_MK_GLOBAL = 1, /* series 0: the process-wide words (RP_MG_*) */
    RP_MK_LOCATION,   /* server x location: requests, latency, body bytes */
    RP_MK_UPSTREAM,   /* an upstream: its latency histogram and retries by reason */
    RP_MK_LIMIT,      /* a limit zone: passed, delayed, rejected */
};

/* Request latency buckets (seconds as Prometheus's client defaults), in microseconds. */
#define RP_METRICS_NBUCKETS 11
extern const int64_t rp_metrics_bucket_us[RP_METRICS_NBUCKETS];
extern const char *const rp_metrics_bucket_text[RP_METRICS_NBUCKETS];

/* A location series' words. */
enum {
    RP_ML_REQ = 0,   /* [status class 1..5 - 1][protocol 0..2]: 15 words */
    RP_ML_HIST = 15, /* buckets, then +Inf: 12 words, not cumulative */
    RP_ML_SUM_US = 27,
    RP_ML_BODY_SENT = 28,
};

/* An upstream series' words. */
enum {
    RP_MU_HIST = 0, /* 12 words */
    RP_MU_SUM_US = 12,
    RP_MU_RETRY = 13, /* + RP_RETRY_* (1..7) */
    RP_MU_NRETRY = 8,
};

typedef struct {
    uint32_t kind; /* RP_MK_*; 0: free */
    uint32_t pad;
    char key[RP_METRICS_KEY];
} rp_metrics_key_t;

/* The gauges of one process (connections active, reading, writing), on a cache line of
 * its own: claimed by a worker when it starts, zeroed and freed by the master when it
 * exits, however it ends, so a crashed worker's connections do not stay counted. */
#define RP_METRICS_GAUGES 3 /* RP_MG_CONN_ACTIVE .. RP_MG_CONN_WRITING */
#define RP_METRICS_PROCS  256
typedef struct {
    int64_t pid; /* 0: free */
    int64_t g[RP_METRICS_GAUGES];
    int64_t pad[4];
} rp_metrics_proc_t;

typedef struct {
    uint64_t magic;
    uint64_t nseries; /* published with a release store, after the key */
    rp_metrics_key_t keys[RP_METRICS_SERIES];
    rp_metrics_proc_t procs[RP_METRICS_PROCS];
    int64_t w[RP_METRICS_SLOTS][RP_METRICS_SERIES][RP_METRICS_WORDS];
} rp_metrics_shm_t;

/* A gauge (RP_MG_CONN_ACTIVE .. _WRITING) summed over the processes, and the slots (where
 * a process that found no free entry counts). */
int64_t rp_metrics_gauge(const rp_metrics_shm_t *m, unsigned word);

/* A location's configuration (also the server's and http's, inherited). */
typedef struct {
    char *name;         /* metrics_name; NULL: unset */
    const char *server; /* the server's label, set at postconfiguration */
    int series;         /* -1 until the master assigns it */
} rp_metrics_loc_conf_t;

/* An upstream or a limit zone with its series. */
typedef struct {
    const char *name;
    struct rp_upstream_conf_s *u; /* upstreams */
    int series;
} rp_metrics_named_t;

typedef struct {
    int enabled; /* a metrics or stub_status location exists */
    rp_shm_zone_t *zone;
    rp_array_t locs;   /* rp_metrics_loc_conf_t *: every location, servers' included */
    rp_array_t ups;    /* rp_metrics_named_t * */
    rp_array_t limits; /* rp_metrics_named_t */
} rp_metrics_main_conf_t;

/* The zone of the generation this process serves (NULL: not enabled), and its
 * configuration. */
extern rp_metrics_shm_t *rp_metrics_shm;
extern rp_metrics_main_conf_t *rp_metrics_conf;

/* Sum of one word of a series over every slot. */
int64_t rp_metrics_sum(const rp_metrics_shm_t *m, int series, unsigned word);

/* The content handlers (metrics_output.c, stub_status.c). */
struct rp_request_s;
int rp_metrics_handler(struct rp_request_s *r);

/* Makes handler the location's content and enables the zone (directive setters). */
const char *rp_metrics_set_content(rp_conf_t *cf, int (*handler)(struct rp_request_s *r));

#endif
