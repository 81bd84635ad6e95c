/*
 * Active health checks: `health_check` in an `upstream` block and the `match` blocks
 * it may name (health_module.c), the pure parts a probe's verdict rests on (reading
 * an HTTP/1 response and testing it against a match, health_match.c; the gRPC health
 * protocol's exchange, health_grpc.c), and the prober that runs them once per node
 * and writes each peer's health into the shared peer table (health_check.c).
 *
 * Only the helper probes (or the single process with master_process off): probes
 * made per worker would multiply the load on the backends by the number of workers
 * and let the workers disagree about a peer. The verdict lives in the peer's
 * shared entry (rp_peer_shared_t.health), keyed by upstream and address, so a reload
 * keeps it and every worker reads the same one.
 */
#ifndef RP_HEALTH_H
#define RP_HEALTH_H

#include "conf/conf.h"
#include "http/h1_parser.h"
#include "upstream/upstream.h"

#include <openssl/ssl.h>
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <stdint.h>

struct evbuffer;

/* ---- match blocks (health_match.c) ---- */

enum { RP_HM_STATUS, RP_HM_HEADER, RP_HM_BODY };
enum { RP_HM_PRESENT, RP_HM_EQUAL, RP_HM_REGEX };

typedef struct {
    int lo, hi;
} rp_health_range_t;

/* One line of a match block: every line must hold for a response to match. */
typedef struct {
    int kind;                  /* RP_HM_* */
    int op;                    /* RP_HM_PRESENT, _EQUAL, _REGEX (headers and bodies) */
    unsigned negate : 1;       /* "!", "!=", "!~": the test holds when the plain one does not */
    rp_health_range_t *ranges; /* status: the codes and ranges listed */
    unsigned nranges;
    char *name;     /* header: its name, lowercase */
    char *value;    /* header =: the value */
    pcre2_code *re; /* header ~, body ~ */
    char *text;     /* the line as written, for the log */
} rp_health_test_t;

typedef struct {
    char *name;
    const char *file;
    unsigned line;
    rp_array_t tests; /* rp_health_test_t */
} rp_health_match_t;

/*
 * Adds the test one line of a match block states (argv[0] is "status", "header" or
 * "body"). Returns NULL, or an error message (in arena) without a place.
 */
const char *rp_health_match_parse(rp_arena_t *arena, rp_health_match_t *m, char **argv,
                                  size_t argc);

/* ---- a probe's HTTP/1 response (health_match.c) ---- */

#define RP_HEALTH_MAX_HEAD (64 * 1024)
#define RP_HEALTH_MAX_BODY (256 * 1024) /* as nginx Plus: only the first 256k are examined */

/* A response read incrementally: the head, then the body decoded (chunked) and kept up
 * to RP_HEALTH_MAX_BODY bytes. */
typedef struct {
    char *buf; /* head bytes from head_base, then the body from body_off; malloc'd */
    uint32_t len, cap;
    uint32_t head_base; /* where the final head starts (after 1xx ones) */
    uint32_t body_off, body_len;
    int state;         /* internal */
    int64_t remaining; /* Content-Length still to come; -1: until the close */
    unsigned chunked : 1;
    unsigned truncated : 1; /* the body went past the limit: only the start is kept */
    rp_h1_parser_t head;
    rp_chunked_t chunk;
    const char *error; /* with -1: what was wrong */
} rp_health_response_t;

void rp_health_response_init(rp_health_response_t *r);
void rp_health_response_free(rp_health_response_t *r);

/* Feeds bytes received. 1: the response is complete (or the body limit reached); 0:
 * more are needed; -1: malformed (r->error). */
int rp_health_response_feed(rp_health_response_t *r, const char *data, size_t n);

/* The peer closed the connection: 1 when what came is a complete response (a body
 * delimited by the close), -1 otherwise (r->error). */
int rp_health_response_end(rp_health_response_t *r);

/* The response's status code (after rp_health_response_feed returned 1). */
static inline int rp_health_response_status(const rp_health_response_t *r)
{
    return r->head.code;
}

/*
 * Whether a complete response passes: every test of m, or without a match (m NULL)
 * a 2xx or 3xx status, nginx's default. 1, or 0 with why (NUL-terminated) saying what
 * failed.
 */
int rp_health_match_check(const rp_health_match_t *m, const rp_health_response_t *r, char *why,
                          size_t whylen);

/* ---- gRPC health checks (health_grpc.c) ---- */

typedef struct rp_health_grpc_s rp_health_grpc_t;

/* An HTTP/2 client session that asks grpc.health.v1.Health/Check for service ("" for
 * the server as a whole) on authority; tls: the :scheme is https. NULL when nghttp2
 * could not make one. */
rp_health_grpc_t *rp_health_grpc_new(const char *authority, const char *service, int tls);
void rp_health_grpc_free(rp_health_grpc_t *g);

/* Appends what the session has to send (the preface, the request, acknowledgements) to
 * out. 0, or -1 when the session failed. */
int rp_health_grpc_output(rp_health_grpc_t *g, struct evbuffer *out);

/* Feeds bytes received. 1: the call ended; 0: more are needed; -1: the session failed
 * (why). */
int rp_health_grpc_input(rp_health_grpc_t *g, const uint8_t *data, size_t n, char *why,
                         size_t whylen);

/* After the call ended: 1 when it answered SERVING, else 0 with why. */
int rp_health_grpc_verdict(rp_health_grpc_t *g, char *why, size_t whylen);

/* The status field of a HealthCheckResponse message (protobuf, without the gRPC length
 * prefix): 0 UNKNOWN, 1 SERVING, 2 NOT_SERVING, 3 SERVICE_UNKNOWN; -1 when malformed. */
int rp_health_grpc_serving(const uint8_t *msg, size_t len);

/* ---- the configuration (health_module.c) ---- */

enum { RP_HC_HTTP, RP_HC_TCP, RP_HC_GRPC };

typedef struct {
    char *name, *value;
} rp_health_header_t;

/* One upstream block's `health_check`. */
typedef struct {
    unsigned enabled : 1;
    unsigned tls : 1;
    unsigned has_host : 1;     /* a header= sets Host */
    int type;                  /* RP_HC_* */
    int64_t interval, timeout; /* ms */
    int64_t jitter;            /* ms (jitter=TIME), or -1: jitter_pct of the interval */
    int jitter_pct;
    unsigned rise, fall;
    char *uri;
    int port; /* 0: the peer's own */
    char *match_name;
    rp_health_match_t *match;
    char *grpc_service;
    rp_array_t headers; /* rp_health_header_t */
    const char *file;   /* where health_check was */
    unsigned line;
    SSL_CTX *ssl_ctx; /* with tls: made at load time, verification off */
} rp_health_conf_t;

/* One upstream to check, settled once the configuration is read. */
typedef struct {
    rp_upstream_conf_t *u;
    const rp_health_conf_t *hc;
} rp_health_target_t;

extern rp_module_t rp_health_module;

/* ---- the prober (health_check.c) ---- */

typedef struct rp_health_runtime_s rp_health_runtime_t;

/*
 * Starts probing the peers of targets (n of them, living as long as the configuration)
 * in this process's event loop (rp_event_base). A peer with no verdict yet is probed at
 * once; one that has one (a reload kept it) after an interval. Returns NULL when there
 * is nothing to probe.
 */
rp_health_runtime_t *rp_health_start(const rp_health_target_t *targets, unsigned n);

/* What rp_health_apply changed. */
#define RP_HEALTH_BECAME_HEALTHY   0x1
#define RP_HEALTH_AGAIN            0x2 /* with BECAME_HEALTHY: it was unhealthy before */
#define RP_HEALTH_BECAME_UNHEALTHY 0x4
#define RP_HEALTH_EJECTION_ENDED   0x8

/*
 * Applies one probe's outcome (ok: it passed) at time now to a peer's shared entry:
 * the checks counters, and the verdict by the consecutive passes and fails (the
 * prober's own, moved here): rise passes make an unhealthy peer healthy, fall failures
 * a healthy one unhealthy, and the first check of a peer of unknown health decides, as
 * Envoy's. A pass also ends an ejection whose time is over. slow_start: the peer ramps
 * up when it becomes healthy again. Returns the RP_HEALTH_* bits of what changed.
 */
int rp_health_apply(const rp_health_conf_t *hc, rp_peer_shared_t *sh, unsigned *passes,
                    unsigned *fails, int ok, int64_t now, int slow_start);

/* Stops probing and frees what rt holds (probes in flight are dropped, their sockets
 * closed). NULL is a no-op. */
void rp_health_stop(rp_health_runtime_t *rt);

#endif
