/*
 * Retries as a policy: which failures of an attempt send the request to another
 * try, how many tries, how long each may take and how long all may take, how long
 * to wait between them, and how many retries an upstream may have in flight at
 * once (the budget), after Envoy's retry policy and retry budgets. nginx's
 * proxy_next_upstream, _tries and _timeout (and their grpc_ forms) set the same
 * policy in their simple form.
 *
 * This file is the pure part (no sockets, no shared memory): the decisions, so unit
 * tests can cover them. attempt.c applies them to a request; retry_module.c reads the
 * directives.
 */
#ifndef RP_RETRY_H
#define RP_RETRY_H

#include <stdint.h>

/* What may send a request to another try (retry_on's words; bits of `on`). */
enum {
    RP_RETRY_ON_CONNECT = 1 << 0,  /* connect-failure: refused, unreachable, connect
                                    * timeout, TLS handshake (the peer never saw it) */
    RP_RETRY_ON_REFUSED = 1 << 1,  /* refused-stream: HTTP/2 REFUSED_STREAM or GOAWAY
                                    * beyond the last stream (not processed) */
    RP_RETRY_ON_RESET = 1 << 2,    /* reset: the connection closed or was reset before
                                    * the response head */
    RP_RETRY_ON_TIMEOUT = 1 << 3,  /* timeout: no response head within the per-try
                                    * timeout (or proxy_read_timeout) */
    RP_RETRY_ON_INVALID = 1 << 4,  /* invalid-header: the response head was malformed */
    RP_RETRY_ON_GATEWAY = 1 << 5,  /* gateway-error: 502, 503, 504 */
    RP_RETRY_ON_5XX = 1 << 6,      /* 5xx: any 5xx status */
    RP_RETRY_ON_4XX = 1 << 7,      /* retriable-4xx: 409 (as Envoy) */
};

/* Why an attempt failed, for rp_retry_wants. */
enum {
    RP_RETRY_CONNECT = 1,
    RP_RETRY_REFUSED,
    RP_RETRY_RESET,
    RP_RETRY_TIMEOUT,
    RP_RETRY_INVALID,
    RP_RETRY_STATUS, /* a response head with a status (and maybe a grpc-status) */
    RP_RETRY_HEDGE,  /* not a failure: a hedged try (counted as a retry) */
};

#define RP_RETRY_MAX_CODES 16
#define RP_RETRIES_UNLIMITED (-2)

typedef struct {
    int set;                 /* a retry_on or proxy_next_upstream line set `on` here */
    int policy;              /* retry_on or retries (not nginx's forms) apply here: Envoy's
                              * backoff is the default */
    unsigned on;             /* RP_RETRY_ON_* */
    unsigned ncodes;
    uint16_t codes[RP_RETRY_MAX_CODES]; /* statuses named by number */
    uint32_t grpc;           /* gRPC status codes that retry (bit per code) */
    int non_idempotent;      /* -1 unset; retry requests that may have reached the peer
                              * even when their method is not idempotent */
    int retries;             /* -1 unset, -2 (RETRIES_UNLIMITED) tries 0: as nginx, up to
                              * one try per peer of the pool */
    int64_t per_try_timeout; /* ms; -1 unset; 0 none */
    int64_t deadline;        /* ms from the first try: no try starts after it; -1 unset;
                              * 0 none (proxy_next_upstream_timeout) */
    int64_t backoff_base;    /* ms; -1 unset; 0: no backoff */
    int64_t backoff_max;     /* ms */
    int64_t retry_after_max; /* ms: a Retry-After up to this is waited before the next
                              * try; a longer one stops retrying; 0: Retry-After ignored */
} rp_retry_conf_t;

/* The default policy, nginx's `proxy_next_upstream error timeout`. */
#define RP_RETRY_DEFAULT_ON                                                                 \
    (RP_RETRY_ON_CONNECT | RP_RETRY_ON_REFUSED | RP_RETRY_ON_RESET | RP_RETRY_ON_TIMEOUT)

/* Whether the policy sends a request failed for `reason` to another try. status is the
 * response's for RP_RETRY_STATUS (0 otherwise), grpc_status the grpc-status of a
 * trailers-only answer (-1 when none). */
int rp_retry_wants(const rp_retry_conf_t *c, unsigned reason, int status, int grpc_status);

/* Whether a failure for `reason` means the peer never processed the request (so that any
 * request, idempotent or not, may go again): connect failures, refused streams, and a 503
 * the peer marked as overloaded (not_processed). */
int rp_retry_unprocessed(unsigned reason, int status, int not_processed);

/* The wait before retry number n (1 for the first), exponential with full jitter: a random
 * share (r, 0 to 2^64-1) of min(max, base x 2^(n-1)). 0 when there is no backoff. */
int64_t rp_retry_backoff(const rp_retry_conf_t *c, unsigned n, uint64_t r);

/*
 * The retry budget (retry_budget PERCENT min=N), after Finagle's: every request to the
 * upstream deposits PERCENT/100 of a token, every retry takes one token, and the balance
 * leaks away with a time constant of RP_RETRY_BUDGET_TAU_MS, so it holds about PERCENT
 * of the requests of the last few seconds. A burst of retries after a fault (every
 * request stuck on a hung peer timing out at once) is paid from what the steady traffic
 * saved; a storm (every try failing) gets no more than PERCENT extra attempts. Besides,
 * as Envoy's min_retry_concurrency, fewer than N retries in flight are always allowed,
 * so a quiet upstream can still retry. Balances are in thousandths of a token.
 */
#define RP_RETRY_BUDGET_TAU_MS 10000

/* The balance after dt ms of leaking. */
int64_t rp_retry_budget_leak(int64_t balance, int64_t dt_ms);

/* Whether a retry may go: fewer than min retries in flight, or a whole token in the
 * balance (pct < 0: no budget). *take is set when the retry must take its token. */
int rp_retry_budget_allows(int64_t retries_inflight, int64_t balance, int pct, int min,
                           int *take);

/* A Retry-After field's value (delay-seconds, or an HTTP date against now_s) in ms; -1
 * when absent or malformed. */
int64_t rp_retry_after_ms(const char *v, unsigned len, int64_t now_s);

#endif
