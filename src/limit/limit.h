/*
 * The seams the limit modules share (issue 12). Three kinds of limit decide on a
 * request in the preaccess phase: limit_req (nginx's leaky bucket, limit_req.c),
 * limit_count (window quotas, limit_count.c) and limit_conn (limit_conn.c). Two
 * things cut across them and live behind this header, so that neither needs to know
 * the others' internals:
 *
 *  - Telling clients. Each limit that decided on a request reports what it knows
 *    (rp_limit_report): its policy's quota and window, what remains, when it resets,
 *    how long a refused client should wait. The headers module (limit_headers.c)
 *    turns the reports of a request into the IETF RateLimit-Policy / RateLimit
 *    fields and Retry-After, where the location asks for them.
 *
 *  - Sharing between nodes. A zone declared with `sync` registers with the sync
 *    engine (limit_sync.c, the `limit_sync redis://...` directive), giving it the two
 *    operations below. The engine runs in the helper process (one per node): every
 *    interval it collects what this node's workers counted since the last time,
 *    sends the deltas to Redis in one pipelined batch, and hands each key's new
 *    global total back to the zone, which folds the other nodes' share into its
 *    local state. Requests never wait on Redis: the decision is always local.
 */
#ifndef RP_LIMIT_H
#define RP_LIMIT_H

#include "conf/conf.h"
#include "core/shm.h"

#include <stddef.h>
#include <stdint.h>

struct rp_request_s;

/* ---- telling clients ---- */

/* What one limit says about one request, for the response's fields. */
typedef struct {
    const char *policy;  /* the policy's name: the zone's name */
    int64_t quota;       /* requests (or connections) the policy allows per window */
    int64_t window;      /* the window, in seconds (>= 1); for limit_req the time the
                          * burst takes to drain at the rate, at least 1; 0 for a
                          * concurrency limit (limit_conn: quota in requests in progress,
                          * no window and no reset) */
    int64_t remaining;   /* what the client may still send now (>= 0) */
    int64_t reset;       /* seconds until the quota is whole again (>= 0) */
    int64_t retry_after; /* refused: seconds after which a retry may pass (>= 1); else 0 */
    int refused;         /* this limit refused the request */
} rp_limit_report_t;

/* Called by a limit module for each limit that decided on r (copied). Cheap when the
 * location does not send the fields: nothing is kept. */
void rp_limit_report(struct rp_request_s *r, const rp_limit_report_t *rep);

/* ---- sharing between nodes ---- */

/*
 * Called by rp_limit_sync_ops_t.collect once per record changed since the last
 * collect: key (valid during the call), window (the record's window number: which
 * window of a fixed-window quota, or for limit_req the second it counts in; Redis
 * keeps one counter per key and window, so counts restart with each window), delta
 * (requests this node accepted into that window since the last collect) and ttl_ms
 * (how long Redis should keep the counter).
 */
typedef void (*rp_limit_sync_collect_pt)(void *arg, const void *key, size_t key_len,
                                         int64_t window, int64_t delta, int64_t ttl_ms);

/* What a `sync` zone gives the engine. Both run in the helper process and take the
 * zone's lock themselves, for as short a time as they can. */
typedef struct {
    /* Hands every record with a non-zero unsent count to fn and zeroes that count.
     * now is rp_time_ms(). */
    void (*collect)(rp_shm_zone_t *zone, int64_t now, rp_limit_sync_collect_pt fn, void *arg);
    /*
     * Redis answered for key in window: total is the count all nodes have added to
     * the key's counter in that window, sent what this node added in the batch (the
     * delta collect gave). The zone folds in what the other nodes added since it last
     * heard: total - sent - the total it heard last time for that window (0 in a new
     * window), at least 0; it creates the record when it has none. now is rp_time_ms().
     */
    void (*apply)(rp_shm_zone_t *zone, const void *key, size_t key_len, int64_t window,
                  int64_t total, int64_t sent, int64_t now);
} rp_limit_sync_ops_t;

/*
 * For a zone directive given `sync`: registers zone (already declared with
 * rp_shm_zone_add*) with the engine under name, which is also its part of the Redis
 * keys. Returns NULL, or an error message (the caller formats it as a configuration
 * error). The configuration is refused when a `sync` zone exists without a
 * `limit_sync` directive in the http block.
 */
const char *rp_limit_sync_zone(rp_conf_t *cf, rp_shm_zone_t *zone, const char *name,
                               const rp_limit_sync_ops_t *ops);

/* ---- directives ---- */

/* `limit_*_status CODE` (400-599) and `limit_*_log_level info|notice|warn|error`, into
 * the int field of the location configuration at cmd->offset (limit_conf.c). */
const char *rp_limit_set_status(rp_conf_t *cf, const rp_command_t *cmd, void *conf);
const char *rp_limit_set_log_level(rp_conf_t *cf, const rp_command_t *cmd, void *conf);

#endif
