/*
 * Metrics counted on the request path and read by `metrics;` (Prometheus / OpenMetrics)
 * and `stub_status;`. The counting lives in metrics.c (the shared zone, the series and
 * the module), the exposition in metrics_output.c, nginx's status page and its
 * $connections_* variables in stub_status.c.
 *
 * What other files call is here, each one call per event: an add on this worker's own
 * slot of the shared zone (a relaxed atomic add on a cache line no other worker of this
 * generation writes; see metrics.c for why it is atomic all the same). Without a `metrics`
 * or `stub_status` location the calls count into this process's own memory, which nobody
 * reads but the $connections_* variables.
 */
#ifndef RP_METRICS_H
#define RP_METRICS_H

#include "conf/conf.h"

#include <stdint.h>

struct rp_request_s;
struct rp_conn_s;
struct rp_upstream_conf_s;

/* The words of the process-wide series, in the order metrics_output.c shows them. */
enum {
    RP_MG_CONN_ACCEPTED = 0,
    RP_MG_CONN_HANDLED,
    RP_MG_CONN_ACTIVE,  /* gauge: +1 at accept, -1 at close */
    RP_MG_CONN_READING, /* gauge: connections reading a request head */
    RP_MG_CONN_WRITING, /* gauge: requests being processed (after the head) */
    RP_MG_BYTES_IN,
    RP_MG_BYTES_OUT,
    RP_MG_REQUESTS, /* every request with a head, subrequests excepted (stub_status) */
    RP_MG_TLS_HANDSHAKES,
    RP_MG_TLS_RESUMED,
    RP_MG_TLS_FAILED,
    RP_MG_H2_STREAMS,
    RP_MG_H2_FLOOD, /* RP_MG_H2_FLOOD + RP_METRICS_FLOOD_*: the defences tripped */
    RP_MG_LUA_ERRORS = RP_MG_H2_FLOOD + 5,
    RP_MG_NWORDS
};

/* Which HTTP/2 defence tripped (h2_conn.c's reasons). */
enum {
    RP_METRICS_FLOOD_CONTINUATION = 0,
    RP_METRICS_FLOOD_RESET,
    RP_METRICS_FLOOD_IDLE,
    RP_METRICS_FLOOD_LIBRARY, /* nghttp2's own limits (settings, ping, outbound queue) */
    RP_METRICS_FLOOD_OTHER,
    RP_METRICS_NFLOOD
};

/* This process's words of the process-wide series: never NULL. */
extern int64_t *rp_metrics_g;

static inline void rp_metrics_add(unsigned word, int64_t n)
{
    __atomic_add_fetch(&rp_metrics_g[word], n, __ATOMIC_RELAXED);
}

/* An accepted connection (conn.c), and its end (counted once, for accepted ones). */
void rp_metrics_conn_open(void);
void rp_metrics_conn_closed(struct rp_conn_s *c);

/* A connection starts (on 1) or stops (on 0) reading a request head. */
void rp_metrics_conn_reading(struct rp_conn_s *c, int on);

/* A TLS handshake ended: ok, or failed (an error or its timeout). */
void rp_metrics_tls_handshake(struct rp_conn_s *c, int ok);

/* An HTTP/2 defence tripped: why is h2_conn.c's reason text (NULL: nghttp2's). */
void rp_metrics_h2_flood(const char *why);

/* A request's head was read and its processing begins, and it ended (phases.c). */
void rp_metrics_request_begin(struct rp_request_s *r);
void rp_metrics_request_end(struct rp_request_s *r);

/* A limit (its zone) decided on a request: passed, delayed or refused. */
enum { RP_METRICS_LIMIT_PASSED = 0, RP_METRICS_LIMIT_DELAYED, RP_METRICS_LIMIT_REJECTED };
void rp_metrics_limit(const char *zone, int outcome);

/* An upstream retry (or hedge) was sent, for reason RP_RETRY_* (retry.h). */
void rp_metrics_upstream_retry(struct rp_upstream_conf_s *u, unsigned reason);

/* A Lua error ended a handler, a timer or a hook. */
static inline void rp_metrics_lua_error(void)
{
    rp_metrics_add(RP_MG_LUA_ERRORS, 1);
}

extern rp_module_t rp_metrics_module;
extern rp_module_t rp_stub_status_module;

#endif
