/*
 * The attempt engine: for one proxied request, the peers tried, the current
 * attempt's peer and clock, the $upstream_addr, $upstream_status,
 * $upstream_connect_time and $upstream_response_time records (one entry per
 * attempt, joined by ", " as nginx), and the outcome of each attempt reported to
 * the peer table and the balancer. The HTTP/1 exchange (proxy.c) and the HTTP/2 and
 * gRPC one (proxy_h2.c) both drive their attempts through it, so what an attempt is
 * (and what the next modules, retries and outlier detection, learn from it) is
 * written once.
 */
#ifndef RP_ATTEMPT_H
#define RP_ATTEMPT_H

#include "http/request.h"
#include "upstream/upstream.h"
#include "upstream/retry.h"

#include <sys/time.h>

/* How an attempt ended (rp_attempt_end). */
enum {
    RP_ATTEMPT_OK = 0,         /* the response came whole */
    RP_ATTEMPT_FAILED = 1,     /* the peer failed it: counts toward max_fails */
    RP_ATTEMPT_INCOMPLETE = 2, /* it stopped for another reason (client gone) */
    RP_ATTEMPT_COUNTED = 4,    /* with FAILED: the failure was counted already */
    RP_ATTEMPT_CONNECT = 8,    /* with FAILED: connecting failed (or its TLS handshake) */
    RP_ATTEMPT_TIMEOUT = 16,   /* with FAILED: the peer did not answer in time */
};

typedef struct {
    rp_request_t *r;
    rp_upstream_conf_t *ups;
    rp_upstream_pick_t pick;
    rp_upstream_server_t *peer; /* the current attempt's, until it ends */
    unsigned tries;             /* attempts counted (a stale keep-alive connection is not) */
    unsigned last_timeout : 1;  /* the last failed attempt timed out */
    unsigned status_recorded : 1;
    struct timeval t_start;     /* the current attempt's start */
    int64_t header_ms;          /* to its response head; -1 before it */
    int status;                 /* its response status; 0 before the head */
    /* The request body read from the client so far, kept while it fits in
     * RP_ATTEMPT_KEEP_MAX, so another attempt can carry it again. */
    struct evbuffer *kept;
    unsigned body_lost : 1;     /* bytes were read and not kept: no other attempt may go */
    unsigned body_complete : 1; /* the client's body was read whole */
    /* the retry policy (retry_module.c) */
    const rp_retry_conf_t *policy;
    int64_t t_first;            /* ms: the first try's start (the deadline counts from it) */
    unsigned retrying : 1;      /* holds one of the pool's retries in flight (budget) */
    unsigned retry_next : 1;    /* the next try is a retry (its peer's count moves) */
} rp_attempt_t;

#define RP_ATTEMPT_KEEP_MAX (64 * 1024)

void rp_attempt_init(rp_attempt_t *a, rp_request_t *r, rp_upstream_conf_t *u);

/* Starts the next attempt on a peer the balancer picks (one not tried yet, when another
 * is usable): records $upstream_addr and starts the clock. NULL when none is left. */
rp_upstream_server_t *rp_attempt_next(rp_attempt_t *a);

/* The attempt's connection: ms to establish it (0 for a kept-alive one, -1 failed). */
void rp_attempt_connect_time(rp_attempt_t *a, int64_t ms);

/* The response head arrived with this status: $upstream_status and the time to it. */
void rp_attempt_header(rp_attempt_t *a, int status);

/* Ends the current attempt (how: RP_ATTEMPT_*). status, when not NULL and no head was
 * recorded, goes to $upstream_status ("502", "504"); $upstream_response_time gets the
 * attempt's duration; the outcome goes to the peer table and the balancer. */
void rp_attempt_end(rp_attempt_t *a, unsigned how, const char *status);

/* Gives up the current attempt without counting it: the peer did nothing wrong (a kept-
 * alive connection it had closed, a stream it refused unprocessed); it may be picked again. */
void rp_attempt_again(rp_attempt_t *a);

/* Body bytes read from the client (last: the body is complete): kept for another
 * attempt while they fit. */
void rp_attempt_body_read(rp_attempt_t *a, const char *data, size_t n, int last);

/* Whether another attempt may still be made: no body byte was lost. */
static inline int rp_attempt_may_replay(const rp_attempt_t *a)
{
    return !a->body_lost;
}

/* Whether a request that may have reached the peer may go again (a kept-alive
 * connection closed without an answer): its body was kept and its method is idempotent
 * (RFC 9110 9.2.2), as nginx's proxy_next_upstream without non_idempotent. A request the
 * peer certainly did not process (connect failed, stream refused) needs only
 * rp_attempt_may_replay. */
int rp_attempt_may_resend(const rp_attempt_t *a);

/* How many body bytes are kept, and copies n of them from off into buf. */
size_t rp_attempt_kept_len(const rp_attempt_t *a);
void rp_attempt_kept_copy(const rp_attempt_t *a, size_t off, char *buf, size_t n);

/*
 * After the current attempt failed for `reason` (RP_RETRY_*; for RP_RETRY_STATUS the
 * response's status, grpc_status its grpc-status or -1, not_processed when the peer
 * marked a 503 as not processed, retry_after_ms its Retry-After or -1), and before
 * rp_attempt_end: whether the request goes to another try. The policy of the request's
 * location decides (the condition, the tries left, the deadline, whether the request
 * may have reached the peer and may be sent again), then the upstream's budget and
 * max_retries. Returns the wait before the next try in ms (backoff, Retry-After), or -1:
 * no other try, the caller answers the client (with the peer's own response when it has
 * one). A retry is logged with its reason and counted.
 */
int64_t rp_attempt_retry(rp_attempt_t *a, unsigned reason, int status, int grpc_status,
                         int not_processed, int64_t retry_after_ms);

/* Prepares hedge (rp_attempt_init'ed for the same request) for a hedged try beside
 * first's: the peers first tried are not picked again, and the try counts as a retry. */
void rp_attempt_hedge_of(rp_attempt_t *hedge, const rp_attempt_t *first);

/* The time the current try may still wait for its response head: dflt (the transport's
 * read timeout), shortened by per_try_timeout. At least 1 ms. */
int64_t rp_attempt_head_timeout(const rp_attempt_t *a, int64_t dflt);

/* The request is done with the engine: an attempt still open ends as incomplete. */
void rp_attempt_done(rp_attempt_t *a);

/* Milliseconds since the current attempt began. */
int64_t rp_attempt_elapsed(const rp_attempt_t *a);

#endif
