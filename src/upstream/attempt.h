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

typedef struct rp_attempt_s {
    rp_request_t *r;
    rp_upstream_conf_t *ups;
    rp_upstream_pick_t pick;
    rp_upstream_server_t *peer; /* the current attempt's, until it ends */
    unsigned tries;             /* attempts counted (a stale keep-alive connection is not) */
    unsigned last_timeout : 1;  /* the last failed attempt timed out */
    unsigned status_recorded : 1;
    struct timeval t_start;     /* the current attempt's start */
    int64_t header_ms;          /* to its response head; -1 before it */
    int64_t bytes_in, bytes_out; /* $upstream_bytes_received/_sent of the current attempt */
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
    /* What the pool's chooser (rp_attempt_chooser_t: balancer_by_lua) set for this request;
     * it lasts for the tries after the one it was set in, as OpenResty's do. */
    unsigned hooked : 1;        /* a chooser ran: tries are counted as nginx counts them */
    unsigned keepalive_set : 1; /* the chooser asked for keep-alive (enable_keepalive) */
    unsigned more_tries;        /* tries allowed beyond one per peer (set_more_tries) */
    int hook_status;            /* the chooser failed: the client gets this status (500) */
    int64_t connect_timeout, send_timeout, read_timeout; /* ms; 0: the location's */
    int64_t keepalive_timeout;  /* ms, for the connection of this try; 0: the pool's */
    unsigned keepalive_requests;/* 0: the pool's */
    /* The last failed try, for the chooser of the next one (get_last_failure): 0 none,
     * RP_ATTEMPT_LAST_NEXT or RP_ATTEMPT_LAST_FAILED (nginx's peer states), and its status. */
    unsigned last_state;
    int last_status;
    /* A chooser that waits (ngx.sleep in balancer_by_lua): rp_attempt_next answered NULL
     * with choosing set, and the chooser calls resume(resume_data) from the loop when it
     * is done; the caller then calls rp_attempt_next again. A caller that cannot wait
     * leaves resume NULL, and the chooser then may not wait. */
    unsigned choosing : 1;
    void (*resume)(void *data);
    void *resume_data;
    void *chooser_state; /* the chooser's, for the request */
} rp_attempt_t;

/* nginx's peer states, as balancer.get_last_failure() names them. */
enum { RP_ATTEMPT_LAST_NEXT = 2, RP_ATTEMPT_LAST_FAILED = 4 };

/*
 * A pool's chooser: code that picks the peer of each try itself (balancer_by_lua), set on
 * the upstream block at configuration time. It runs in rp_attempt_next before the
 * balancer, for the first try and every retry, and returns RP_OK with *peer set (a peer
 * of the pool, or one made for an address outside it: rp_upstream_peer_entry), RP_DECLINED
 * to let the pool's balancer pick (as OpenResty falls back to round robin when no peer was
 * set), RP_ERROR after setting a->hook_status (the request ends with that status), or
 * RP_AGAIN when it waits (only where a->resume is set): it calls a->resume later, and
 * gives its answer to the next call.
 *
 * Why here rather than as a balancer (rp_upstream_balancer_t): a balancer sees the pool's
 * peer set and a pick record, while the chooser needs the request's attempt (the last
 * failure, the tries left, the timeouts and keep-alive of the next connection), may name
 * an address that is not in the set, and must be able to fail the request with a 500.
 */
typedef int (*rp_attempt_chooser_t)(rp_attempt_t *a, void *data, rp_upstream_server_t **peer);

#define RP_ATTEMPT_KEEP_MAX (64 * 1024)

void rp_attempt_init(rp_attempt_t *a, rp_request_t *r, rp_upstream_conf_t *u);

/* Starts the next attempt on a peer the balancer picks (one not tried yet, when another
 * is usable), or the pool's chooser names: records $upstream_addr and starts the clock.
 * NULL when none is left, when the chooser failed (a->hook_status is then the status to
 * answer with), or when it waits (a->choosing: a->resume is called when it is done). */
rp_upstream_server_t *rp_attempt_next(rp_attempt_t *a);

/* The current timeouts (ms): the chooser's when it set them, else dflt (the location's). */
static inline int64_t rp_attempt_connect_timeout(const rp_attempt_t *a, int64_t dflt)
{
    return a->connect_timeout > 0 ? a->connect_timeout : dflt;
}

static inline int64_t rp_attempt_send_timeout(const rp_attempt_t *a, int64_t dflt)
{
    return a->send_timeout > 0 ? a->send_timeout : dflt;
}

static inline int64_t rp_attempt_read_timeout(const rp_attempt_t *a, int64_t dflt)
{
    return a->read_timeout > 0 ? a->read_timeout : dflt;
}

/* The try's connection (new or from the cache) takes the keep-alive settings the chooser
 * gave (enable_keepalive); where the pool keeps connections only on request, one without
 * them is closed after the try. */
void rp_attempt_keepalive_to(const rp_attempt_t *a, rp_uconn_t *uc);

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
