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

/*
 * A peer's state as shown (rp_upstream_peer_state). The table keeps three independent
 * facts: the administrative state (`state`: USABLE, DOWN, DRAINING; set at run time),
 * the health from active checks (`health`: RP_HEALTH_*, written by the helper) and an
 * ejection by outlier detection (`ejected_until`). What a peer is shown as is the first
 * that applies of: down, draining, ejected, unhealthy, unknown (checks configured, no
 * verdict yet), healthy (checks passed) or usable (no checks).
 */
enum {
    RP_PEER_USABLE = 0,    /* takes traffic (no checks configured) */
    RP_PEER_DOWN = 1,      /* marked down at run time: no traffic */
    RP_PEER_DRAINING = 2,  /* no new requests; those in flight finish */
    RP_PEER_UNHEALTHY = 3, /* active checks failed */
    RP_PEER_EJECTED = 4,   /* outlier detection ejected it */
    RP_PEER_UNKNOWN = 5,   /* checks configured, no verdict yet */
    RP_PEER_POOL = 6,      /* not a peer: a pool's totals, laid out as a peer's entry */
    RP_PEER_HEALTHY = 7,   /* checks configured, and it passes them */
};

/* A peer's health from active checks (health_check.c, in the helper). A new entry is
 * zeroed: unknown. */
enum { RP_HEALTH_UNKNOWN = 0, RP_HEALTH_HEALTHY = 1, RP_HEALTH_UNHEALTHY = 2 };

/* One peer's entry in the shared table: counters updated without the zone's lock. */
typedef struct {
    rp_shm_counter_t inflight;     /* requests in flight on it, all workers */
    rp_shm_counter_t conns;        /* upstream connections open to it, all workers */
    rp_shm_double_t ewma_header;   /* ms to the response head, peak EWMA */
    rp_shm_double_t ewma_last;     /* ms to the last byte, peak EWMA */
    rp_shm_counter_t ewma_stamp;   /* ms: when the averages last moved */
    rp_shm_counter_t fails;        /* failures in the current window (max_fails) */
    rp_shm_counter_t fail_start;   /* ms: when that window began */
    rp_shm_counter_t state;        /* RP_PEER_USABLE, _DOWN or _DRAINING (administrative) */
    rp_shm_counter_t usable_since; /* ms: became usable again (slow_start); 0: from the start */
    rp_shm_counter_t requests;     /* attempts made on it, all time */
    rp_shm_counter_t failures;     /* failed attempts, all time */
    rp_shm_counter_t weight;       /* run-time weight override; 0: the configured one */
    rp_shm_counter_t epoch;        /* the last configuration generation that had it */
    /* active health checks (health_check.c: only the helper writes these) */
    rp_shm_counter_t health;         /* RP_HEALTH_* */
    rp_shm_counter_t health_since;   /* ms: when health last changed */
    rp_shm_counter_t checks;         /* probes sent, all time */
    rp_shm_counter_t check_fails;    /* probes failed, all time */
    /* outlier detection (outlier.c) */
    rp_shm_counter_t ejected_until;  /* ms: ejected until then; 0: not ejected. With
                                      * active checks, it stays ejected past that until a
                                      * check passes (the helper clears it) */
    rp_shm_counter_t ejections;      /* the ejection multiplier: the next one lasts
                                      * base x (n + 1), capped; decays while it behaves */
    rp_shm_counter_t ejected_total;  /* times ejected, all time */
    rp_shm_counter_t consec_5xx;     /* consecutive 5xx responses (and local failures) */
    rp_shm_counter_t consec_gateway; /* consecutive 502/503/504 and local failures */
    rp_shm_counter_t consec_connect; /* consecutive failures to connect */
    rp_shm_counter_t window_requests;/* this interval's attempts (success rate) */
    rp_shm_counter_t window_failures;/* ... and those that failed */
    rp_shm_counter_t retries;        /* retries made on it, all time */
    rp_shm_counter_t ejection_ended; /* ms: when its last ejection ended; 0 while ejected
                                      * (the multiplier decays from then: outlier.c) */
    rp_shm_counter_t spare[6];       /* room for the next modules without a new layout */
} rp_peer_shared_t;

/*
 * A pool's entry in the table: what all workers share about an upstream as a whole.
 * Its counts of requests in flight are laid out as peers' entries, so that they are
 * journalled and given back when a worker dies holding them, as a peer's are.
 */
typedef struct {
    rp_peer_shared_t totals;  /* inflight: requests in flight on its peers; conns: its
                               * upstream connections open */
    rp_peer_shared_t retries; /* inflight: retries (and hedges) in flight; conns:
                               * requests waiting for a connection (max_pending) */
    rp_shm_counter_t gen;     /* moved by every DNS answer: workers rebuild their sets */
    rp_shm_counter_t panic;   /* 1 while fewer than panic_threshold of its peers are
                               * usable and it balances over all of them */
    rp_shm_counter_t panics;  /* times it entered panic, all time */
    rp_shm_counter_t retried; /* retries made, all time */
    rp_shm_counter_t budget_denied;  /* retries the budget refused, all time */
    rp_shm_counter_t breaker_tripped;/* requests a breaker answered 503, all time */
    rp_shm_counter_t budget_tokens;  /* the retry budget's balance, in thousandths (retry.h) */
    rp_shm_counter_t budget_stamp;   /* ms: when the balance last leaked */
    rp_shm_counter_t spare[24];      /* for the breakers' queue and what comes next */
} rp_pool_shared_t;

/* How an attempt on a peer went, for rp_upstream_free_peer and balancers. */
typedef struct {
    unsigned failed : 1;      /* counts toward max_fails (connect error, timeout, 502...) */
    unsigned incomplete : 1;  /* ended before the last byte (client gone, aborted) */
    unsigned counted : 1;     /* the failure was counted already (rp_upstream_peer_failed:
                               * one failed HTTP/2 connection, however many requests) */
    unsigned connect : 1;     /* with failed: connecting failed (refused, unreachable,
                               * connect timeout, TLS handshake) */
    unsigned timeout : 1;     /* with failed: the peer did not answer in time */
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

/*
 * Counts a peer chosen outside the balancer (balancer_by_lua's set_current_peer) as
 * rp_upstream_get_peer counts its pick: in flight, tried by pk, referenced.
 */
void rp_upstream_take_peer(rp_upstream_conf_t *u, rp_upstream_pick_t *pk, rp_upstream_server_t *s);

/*
 * The shared entry of address name (rp_sockaddr_text's form, or "unix:PATH") in u's peer
 * table, made when missing: for a peer outside u's configuration (an address a
 * balancer_by_lua script names), so that its requests and connections are counted and
 * journalled as any peer's. Kept while a configuration uses it, as DNS peers' are. NULL
 * when the zone is full.
 */
rp_peer_shared_t *rp_upstream_peer_entry(rp_upstream_conf_t *u, const char *name);

/* Ends an attempt on s: failure accounting, latency, totals, the balancer's report,
 * and s leaves the in-flight count. */
void rp_upstream_free_peer(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                           const rp_upstream_outcome_t *o);

/*
 * Something that learns from every attempt's outcome (outlier detection, metrics):
 * registered on an upstream at configuration time, called by rp_upstream_free_peer
 * after the generic accounting, in the worker that made the attempt.
 */
typedef struct rp_upstream_observer_s {
    void (*report)(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                   const rp_upstream_outcome_t *o, void *data);
    void *data;
    struct rp_upstream_observer_s *next;
} rp_upstream_observer_t;

/* Adds an observer to u (configuration time; ob lives in the configuration's arena). */
void rp_upstream_observe(rp_upstream_conf_t *u, rp_upstream_observer_t *ob);

/* Whether s rests after max_fails failures within fail_timeout (shown "unavailable"). */
int rp_upstream_peer_resting(const rp_upstream_conf_t *u, const rp_upstream_server_t *s,
                             int64_t now);

/* s's state as shown (RP_PEER_*), and its name ("usable", "ejected", ...). */
int rp_upstream_peer_state(const rp_upstream_conf_t *u, const rp_upstream_server_t *s, int64_t now);
const char *rp_upstream_peer_state_name(int state);

/* Whether s is healthy for the pool: not unhealthy by active checks, not ejected, and
 * not of unknown health where unknown peers take no traffic (health_check mandatory).
 * The panic threshold compares the share of such peers with the pool's (peers of unknown
 * health under mandatory checks count on neither side: no check has judged them yet). */
int rp_upstream_peer_healthy(const rp_upstream_conf_t *u, const rp_upstream_server_t *s,
                             int64_t now);

/* Whether u is in panic now (this worker's view, refreshed at most every 100 ms). */
int rp_upstream_in_panic(rp_upstream_conf_t *u, int64_t now);

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
