/*
 * The runtime peer table and the balancer interface.
 *
 * Configuration (`upstream` blocks, server lines) is read-only. What every worker
 * must agree on about a peer (one address of one upstream) lives in shared memory,
 * in the peer table of the upstream's zone (`zone NAME SIZE;`, else the default
 * zone "upstreams"): requests in flight, latency as a peak EWMA (to the response
 * head and to the last byte), failures in the current fail_timeout window, the
 * peer's state (usable, down, draining, and the health states of the resilience
 * module), the moment it became usable again (for slow_start), and totals. An
 * entry is keyed by (upstream name, address), so a reload that keeps both keeps
 * what was learnt, and a peer that a DNS answer adds or drops at run time keeps
 * the state of every address that stays.
 *
 * Each worker holds its own view of a pool: a peer set (the peers usable in
 * principle, primaries first, then backups), rebuilt when the pool's generation
 * in shared memory moves (a DNS answer changed its addresses). Checking costs one
 * relaxed load per pick. The per-worker parts of a peer (smooth round robin's
 * current weight, the keep-alive and HTTP/2 connections to it) stay per worker,
 * where they need no lock; round robin therefore interleaves per worker, and the
 * shares hold across workers because each worker's sequence holds them.
 *
 * A balancer is a table of functions: init (configuration time), update (a
 * process built or rebuilt a peer set: rings and tables are made here), pick,
 * report (the outcome and latency of an attempt) and release. The attempt engine
 * calls rp_upstream_get_peer and rp_upstream_free_peer, which wrap the balancer's
 * pick and report with what every balancer needs: skipping peers that are down,
 * resting after max_fails, at max_conns or already tried by this request; the
 * shared in-flight count; failure accounting; latency.
 *
 * A worker's part of the in-flight and connection counts is also journalled
 * (peer_journal.c), so the master gives it back when the worker dies holding it.
 */
#ifndef RP_PEERS_H
#define RP_PEERS_H

#include "core/shm_counter.h"

#include <stdint.h>
#include <sys/socket.h>

typedef struct rp_upstream_conf_s rp_upstream_conf_t;
typedef struct rp_upstream_server_s rp_upstream_server_t;
typedef struct rp_request_s rp_request_t;
typedef struct rp_shm_zone_s rp_shm_zone_t;

/* A peer's administrative and health state, as kept in the table. */
enum {
    RP_PEER_USABLE = 0,    /* takes traffic (health unknown or healthy) */
    RP_PEER_DOWN = 1,      /* marked down at run time: no traffic */
    RP_PEER_DRAINING = 2,  /* no new requests; those in flight finish */
    RP_PEER_UNHEALTHY = 3, /* active checks failed (resilience module) */
    RP_PEER_EJECTED = 4,   /* outlier detection ejected it (resilience module) */
    RP_PEER_UNKNOWN = 5,   /* never checked yet, where checks are configured */
    RP_PEER_POOL = 6,      /* not a peer: a pool's totals, laid out as a peer's entry */
};

/* One peer's entry in the shared table: counters updated without the zone's lock. */
typedef struct {
    rp_shm_counter_t inflight;     /* requests in flight on it, all workers */
    rp_shm_counter_t conns;        /* upstream connections open to it, all workers */
    rp_shm_double_t ewma_header;   /* ms to the response head, peak EWMA */
    rp_shm_double_t ewma_last;     /* ms to the last byte, peak EWMA */
    rp_shm_counter_t ewma_stamp;   /* ms: when the averages last moved */
    rp_shm_counter_t fails;        /* failures in the current window (max_fails) */
    rp_shm_counter_t fail_start;   /* ms: when that window began */
    rp_shm_counter_t state;        /* RP_PEER_* */
    rp_shm_counter_t usable_since; /* ms: became usable again (slow_start); 0: from the start */
    rp_shm_counter_t requests;     /* attempts made on it, all time */
    rp_shm_counter_t failures;     /* failed attempts, all time */
    rp_shm_counter_t weight;       /* run-time weight override; 0: the configured one */
    rp_shm_counter_t epoch;        /* the last configuration generation that had it */
    rp_shm_counter_t spare[3];     /* room for the next modules without a new layout */
} rp_peer_shared_t;

/* How an attempt on a peer went, for rp_upstream_free_peer and balancers. */
typedef struct {
    unsigned failed : 1;      /* counts toward max_fails (connect error, timeout, 502...) */
    unsigned incomplete : 1;  /* ended before the last byte (client gone, aborted) */
    unsigned counted : 1;     /* the failure was counted already (rp_upstream_peer_failed:
                               * one failed HTTP/2 connection, however many requests) */
    int status;               /* the response status, 0 when none came */
    int64_t header_ms;        /* to the response head; -1 when none came */
    int64_t last_ms;          /* to the last byte; -1 when it did not end well */
    int64_t now;              /* ms now, if the caller has it (0: read the clock) */
} rp_upstream_outcome_t;

#define RP_UPSTREAM_TRIED_INLINE 8

/* One pick: the request (NULL in unit tests) and the peers it has tried already.
 * Zero it before the first pick; rp_upstream_pick_done lets go of it. */
typedef struct {
    rp_request_t *r;
    rp_upstream_server_t **tried; /* tried_inline, or allocated beyond it */
    rp_upstream_server_t *tried_inline[RP_UPSTREAM_TRIED_INLINE];
    unsigned ntried, tried_cap;
    int64_t now;         /* ms, set by rp_upstream_get_peer for the balancer's pick */
    uint32_t hash;       /* for hash balancers: computed on the first pick */
    unsigned hashed : 1;
    unsigned tries : 8;  /* picks so far (a hash balancer rehashes on a repeat) */
    /* For hash balancers: what is hashed (hash KEY's value, the client address's bytes
     * for ip_hash), taken from r at the first pick when NULL; unit tests set it. */
    const unsigned char *key;
    size_t key_len;
} rp_upstream_pick_t;

/* A worker's view of a pool: the peers in principle usable, primaries first. */
typedef struct {
    rp_upstream_server_t **peer;
    unsigned n, nprimary;
    int64_t generation; /* of the pool in shared memory this set was built from */
    void *data;         /* the balancer's (ring, table), made by its update */
} rp_upstream_peers_t;

typedef struct {
    const char *name;
    /* Configuration time, once the upstream block is complete: checks and prepares
     * what the directives set (NULL or an error, RP_CONF_ERROR style). May be NULL. */
    const char *(*init)(void *cf, rp_upstream_conf_t *u);
    /* A process built a new peer set for u (startup, or a DNS change): ring or table
     * here, in set->data (freed by the balancer at the next update). May be NULL. */
    void (*update)(rp_upstream_conf_t *u, rp_upstream_peers_t *set, void *old_data);
    /* Chooses among the set's usable peers that pk has not tried; NULL when none is. */
    rp_upstream_server_t *(*pick)(rp_upstream_conf_t *u, rp_upstream_peers_t *set,
                                  rp_upstream_pick_t *pk);
    /* How an attempt went (after the generic accounting). May be NULL. */
    void (*report)(rp_upstream_conf_t *u, rp_upstream_server_t *s, const rp_upstream_outcome_t *o);
} rp_upstream_balancer_t;

extern const rp_upstream_balancer_t rp_upstream_round_robin;
extern const rp_upstream_balancer_t rp_upstream_least_conn;
extern const rp_upstream_balancer_t rp_upstream_random;
extern const rp_upstream_balancer_t rp_upstream_least_time;
extern const rp_upstream_balancer_t rp_upstream_ip_hash;
extern const rp_upstream_balancer_t rp_upstream_hash;

/* The pool's current peer set in this process (rebuilt when its generation moved). */
rp_upstream_peers_t *rp_upstream_peers(rp_upstream_conf_t *u);

/*
 * Chooses a peer for an attempt through u's balancer and counts it in flight
 * (shared); records it in pk->tried. NULL when none is usable.
 */
rp_upstream_server_t *rp_upstream_get_peer(rp_upstream_conf_t *u, rp_upstream_pick_t *pk);

/* Ends an attempt on s: failure accounting, latency, totals, the balancer's report,
 * and s leaves the in-flight count. */
void rp_upstream_free_peer(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                           const rp_upstream_outcome_t *o);

/* Frees what the picks of one request allocated (only beyond 8 tries). */
void rp_upstream_pick_done(rp_upstream_pick_t *pk);

/* Lets go of a reference to a peer (a connection closing): a dynamic peer that a DNS
 * answer dropped is freed with its last one. */
void rp_upstream_peer_unref(rp_upstream_server_t *s);

/* Frees this process's peer set of u (worker exit, tests). */
void rp_upstream_peers_free(rp_upstream_conf_t *u);

/* Declares the default peer table zone for the http block being read (the pools made
 * at run time for proxy_pass with variables use it). */
const char *rp_upstream_default_zone(void *cf);

/* Attaches u's peers to its zone (the default one when u has none) from a worker: a
 * pool made at run time. 0, or -1 when there is no room. */
int rp_upstream_attach_runtime(rp_upstream_conf_t *u);

/* Counts one failure of s toward max_fails outside an attempt (a connection that
 * several attempts waited on). */
void rp_upstream_peer_failed(rp_upstream_conf_t *u, rp_upstream_server_t *s);

/* Whether pk tried s already. */
static inline int rp_upstream_tried(const rp_upstream_pick_t *pk, const rp_upstream_server_t *s)
{
    for (unsigned i = 0; i < pk->ntried; i++)
        if (pk->tried[i] == s)
            return 1;
    return 0;
}

/*
 * Whether s may take a request now, for a balancer's pick: not down or draining (in
 * the configuration or at run time), not at max_conns (counted across workers), not
 * resting after max_fails failures within fail_timeout. When a rest ends, exactly one
 * worker gets the peer for one probing request (the others see it resting until that
 * request succeeds or fails). As nginx, the only peer of a pool never rests.
 */
int rp_upstream_peer_usable(rp_upstream_conf_t *u, rp_upstream_server_t *s, int64_t now);

/*
 * s's effective weight in hundredths (weight 1 = 100): the configured one (or a run-time
 * override), ramped over slow_start from a tenth after s became usable again.
 */
int rp_upstream_peer_weight(const rp_upstream_server_t *s, int64_t now);

/* The peak-EWMA latency of s in ms (header or last byte), decayed toward zero with the
 * time since it last moved, as Finagle's: a peer not picked for a while gets tried again. */
double rp_upstream_peer_latency(const rp_upstream_server_t *s, int last_byte, int64_t now);

/* ---- what this worker holds (peer_journal.c) ---- */

struct rp_cycle_s;

/* Records this worker's part of a peer's counters, for the master to give back if the
 * worker dies holding it. */
void rp_peer_journal_add(rp_peer_shared_t *sh, int inflight, int conns);
const char *rp_peer_journal_declare(void *cf);
void rp_peer_journal_start(struct rp_cycle_s *cycle);
void rp_peer_journal_child_exited(struct rp_cycle_s *cycle, int pid, int clean);

/* A peer's in-flight requests or open connections change by d (shared, and journalled). */
static inline void rp_peer_inflight_add(rp_peer_shared_t *sh, int d)
{
    rp_shm_counter_add(&sh->inflight, d);
    rp_peer_journal_add(sh, d, 0);
}

static inline void rp_peer_conns_add(rp_peer_shared_t *sh, int d)
{
    rp_shm_counter_add(&sh->conns, d);
    rp_peer_journal_add(sh, 0, d);
}

/* ---- the table in shared memory ---- */

/*
 * Declares u's zone (its `zone` directive's, else the default) for configuration time,
 * once the block is complete. Returns NULL or an error.
 */
const char *rp_upstream_zone_attach(void *cf, rp_upstream_conf_t *u);

/*
 * A DNS answer for one `resolve` server line of u (index line in u->resolve): the
 * addresses now behind the name, each with the line's port (n may be 0; beyond
 * RP_UPSTREAM_MAX_ADDRS they are dropped). The caller keeps them in one order (sorted)
 * so that an answer listing the same addresses differently changes nothing. Makes the
 * peer entries of the addresses, and moves the pool's generation when the set changed:
 * workers see it at their next pick and rebuild their sets. Called by the process that
 * resolves (the helper; the single process with master_process off). Returns 0, or -1
 * when the zone is full.
 */
int rp_upstream_publish_addrs(rp_upstream_conf_t *u, unsigned line,
                              const struct sockaddr_storage *addrs, const socklen_t *lens,
                              unsigned n);

/* The addresses last published for u's resolve line (by this generation or one before
 * whose line named the same host and port), up to max; their number. */
unsigned rp_upstream_read_addrs(rp_upstream_conf_t *u, unsigned line,
                                struct sockaddr_storage *addrs, socklen_t *lens, unsigned max);

#define RP_UPSTREAM_MAX_ADDRS 64 /* addresses kept per resolved name */

#endif
