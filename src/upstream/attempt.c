/*
 * The attempt engine (attempt.h).
 */
#include "upstream/attempt.h"
#include "observe/metrics.h"
#include "upstream/proxy.h"
#include "upstream/retry_module.h"
#include "core/log.h"
#include "core/random.h"
#include "core/time.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rp_attempt_init(rp_attempt_t *a, rp_request_t *r, rp_upstream_conf_t *u)
{
    memset(a, 0, sizeof(*a));
    a->r = r;
    a->ups = u;
    a->pick.r = r;
    a->header_ms = -1;
    a->policy = rp_retry_conf(r);
}

rp_upstream_server_t *rp_attempt_next(rp_attempt_t *a)
{
    rp_upstream_server_t *s = NULL;
    if (a->ups->chooser) {
        a->hooked = 1;
        int rc = a->ups->chooser(a, a->ups->chooser_data, &s);
        a->choosing = rc == RP_AGAIN;
        if (a->choosing)
            return NULL;
        if (rc == RP_ERROR) {
            if (a->hook_status == 0)
                a->hook_status = 500;
            return NULL;
        }
        if (rc == RP_OK && s)
            rp_upstream_take_peer(a->ups, &a->pick, s);
        else
            s = NULL;
    }
    if (s == NULL)
        s = rp_upstream_get_peer(a->ups, &a->pick);
    if (s == NULL)
        return NULL;
    a->peer = s;
    if (a->t_first == 0) {
        a->t_first = rp_time_ms();
        if (a->ups->pool && a->ups->retry_budget_pct > 0)
            /* the request's deposit into the retry budget (retry.h) */
            rp_shm_counter_add(&a->ups->pool->budget_tokens, a->ups->retry_budget_pct * 10);
    }
    if (a->retry_next) {
        a->retry_next = 0;
        rp_shm_counter_add(&s->sh->retries, 1);
    }
    a->tries++;
    a->header_ms = -1;
    a->bytes_in = a->bytes_out = 0;
    a->status = 0;
    a->status_recorded = 0;
    rp_time_now(&a->t_start);
    rp_proxy_record(a->r, &rp_proxy_ctx(a->r)->addr, s->name);
    rp_proxy_ctx(a->r)->live = a;
    return s;
}

int64_t rp_attempt_elapsed(const rp_attempt_t *a)
{
    return rp_time_ms_since(&a->t_start);
}

void rp_attempt_connect_time(rp_attempt_t *a, int64_t ms)
{
    if (ms == 0) /* a kept-alive connection: the usual case, without formatting */
        rp_proxy_record(a->r, &rp_proxy_ctx(a->r)->connect_time, "0.000");
    else
        rp_proxy_record_ms(a->r, &rp_proxy_ctx(a->r)->connect_time, ms);
}

void rp_attempt_header(rp_attempt_t *a, int status)
{
    char code[4] = "000"; /* a status is three digits (the parsers allow 100 to 999) */
    if (status >= 100 && status <= 999) {
        code[0] = (char)('0' + status / 100);
        code[1] = (char)('0' + status / 10 % 10);
        code[2] = (char)('0' + status % 10);
    }
    rp_proxy_record(a->r, &rp_proxy_ctx(a->r)->status, code);
    a->status_recorded = 1;
    a->status = status;
    a->header_ms = rp_attempt_elapsed(a);
    if (rp_proxy_records(a->r) & RP_PROXY_REC_HEADER_TIME)
        rp_proxy_record_ms(a->r, &rp_proxy_ctx(a->r)->header_time, a->header_ms);
}

void rp_attempt_end(rp_attempt_t *a, unsigned how, const char *status)
{
    rp_upstream_server_t *s = a->peer;
    if (s == NULL)
        return;
    a->peer = NULL;
    rp_request_t *r = a->r;
    if (status && !a->status_recorded)
        rp_proxy_record(r, &rp_proxy_ctx(r)->status, status);
    struct timeval tv;
    rp_time_now(&tv);
    int64_t ms = (int64_t)(tv.tv_sec - a->t_start.tv_sec) * 1000 +
                 (tv.tv_usec - a->t_start.tv_usec) / 1000;
    rp_proxy_record_ms(r, &rp_proxy_ctx(r)->response_time, ms);
    unsigned extra = rp_proxy_records(r);
    if (rp_proxy_ctx(r)->live == a)
        rp_proxy_ctx(r)->live = NULL;
    if ((extra & RP_PROXY_REC_HEADER_TIME) && a->header_ms < 0)
        rp_proxy_record(r, &rp_proxy_ctx(r)->header_time, "-"); /* no head came */
    if (extra & RP_PROXY_REC_BYTES) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", (long long)a->bytes_in);
        rp_proxy_record(r, &rp_proxy_ctx(r)->bytes_received, num);
        snprintf(num, sizeof(num), "%lld", (long long)a->bytes_out);
        rp_proxy_record(r, &rp_proxy_ctx(r)->bytes_sent, num);
    }
    rp_upstream_outcome_t o = {
        .failed = (how & RP_ATTEMPT_FAILED) != 0,
        .incomplete = (how & RP_ATTEMPT_INCOMPLETE) != 0,
        .counted = (how & RP_ATTEMPT_COUNTED) != 0,
        .connect = (how & RP_ATTEMPT_CONNECT) != 0,
        .timeout = (how & RP_ATTEMPT_TIMEOUT) != 0,
        .status = a->status,
        .header_ms = a->header_ms,
        .last_ms = how == RP_ATTEMPT_OK ? ms : -1,
        .now = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000,
    };
    if (o.failed || (o.incomplete && a->status >= 400)) {
        /* what the next try's chooser learns (get_last_failure): as nginx, a 403 or 404
         * that sent the request on is "next", anything else "failed" */
        int code = a->status;
        if (code == 0)
            code = status && status[0] >= '1' && status[0] <= '9' ? atoi(status) : 502;
        a->last_status = code;
        a->last_state = code == 403 || code == 404 ? RP_ATTEMPT_LAST_NEXT : RP_ATTEMPT_LAST_FAILED;
    }
    rp_upstream_free_peer(a->ups, s, &o);
}

void rp_attempt_keepalive_to(const rp_attempt_t *a, rp_uconn_t *uc)
{
    uc->keep_asked = a->keepalive_set;
    uc->keepalive_timeout = a->keepalive_set ? a->keepalive_timeout : 0;
    uc->keepalive_requests = a->keepalive_set ? a->keepalive_requests : 0;
}

void rp_attempt_again(rp_attempt_t *a)
{
    rp_upstream_server_t *s = a->peer;
    if (s == NULL)
        return;
    a->peer = NULL;
    if (a->pick.ntried && a->pick.tried[a->pick.ntried - 1] == s)
        a->pick.ntried--;
    a->tries--;
    rp_upstream_outcome_t o = {.incomplete = 1, .header_ms = -1, .last_ms = -1};
    rp_upstream_free_peer(a->ups, s, &o);
}

/* The pool's retry budget balance now: leaked at most every 100 ms (by the process whose
 * swap moves the stamp; the others may see it a moment later: relaxed, as counters are). */
static int64_t budget_balance(rp_pool_shared_t *pool, int64_t now)
{
    int64_t stamp = rp_shm_counter_get(&pool->budget_stamp);
    if (now - stamp >= 100 && rp_shm_counter_cas(&pool->budget_stamp, &stamp, now)) {
        int64_t b = rp_shm_counter_get(&pool->budget_tokens);
        int64_t left = rp_retry_budget_leak(b, stamp ? now - stamp : 0);
        rp_shm_counter_add(&pool->budget_tokens, left - b);
    }
    return rp_shm_counter_get(&pool->budget_tokens);
}

static const char *reason_name(unsigned reason)
{
    switch (reason) {
    case RP_RETRY_CONNECT:
        return "connect failure";
    case RP_RETRY_REFUSED:
        return "refused stream";
    case RP_RETRY_RESET:
        return "connection reset or closed";
    case RP_RETRY_TIMEOUT:
        return "timeout";
    case RP_RETRY_INVALID:
        return "invalid response header";
    case RP_RETRY_HEDGE:
        return "hedge";
    default:
        return "status";
    }
}

/* Whether the method is idempotent (RFC 9110 9.2.2). */
static int idempotent(const rp_request_t *r)
{
    rp_str_t m = r->method;
    return rp_str_eq(m, "GET") || rp_str_eq(m, "HEAD") || rp_str_eq(m, "PUT") ||
           rp_str_eq(m, "DELETE") || rp_str_eq(m, "OPTIONS") || rp_str_eq(m, "TRACE");
}

int64_t rp_attempt_retry(rp_attempt_t *a, unsigned reason, int status, int grpc_status,
                         int not_processed, int64_t retry_after_ms)
{
    const rp_retry_conf_t *c = a->policy;
    rp_upstream_conf_t *u = a->ups;
    rp_request_t *r = a->r;
    if (c == NULL || !rp_retry_wants(c, reason, status, grpc_status))
        return -1;
    /* a body that was not kept whole cannot go again */
    if (!rp_attempt_may_replay(a))
        return -1;
    /* A gRPC status the operator named is retried whatever the method (every call is a
     * POST), as gRPC's own retry policy does: the service declares those codes safe. */
    int grpc_named = reason == RP_RETRY_STATUS && grpc_status > 0 && grpc_status < 32 &&
                     ((c->grpc >> grpc_status) & 1);
    if (!rp_retry_unprocessed(reason, status, not_processed) && !grpc_named && !idempotent(r) &&
        c->non_idempotent != 1)
        return -1; /* it may have reached the peer: POST and PATCH go once (RFC 9110 9.2.2) */
    unsigned max_tries;
    if (a->hooked) {
        /* as nginx under balancer_by_lua: one try per peer of the pool and the chooser's
         * set_more_tries, within proxy_next_upstream_tries */
        max_tries = rp_upstream_peers(u)->n + a->more_tries;
        if (c->retries >= 0 && max_tries > (unsigned)c->retries + 1)
            max_tries = (unsigned)c->retries + 1;
    } else if (c->retries >= 0) {
        max_tries = (unsigned)c->retries + 1;
    } else {
        max_tries = rp_upstream_peers(u)->n; /* as nginx: until every peer was tried */
    }
    if (a->tries >= max_tries)
        return -1;
    int64_t now = rp_time_ms();
    if (c->deadline > 0 && now - a->t_first >= c->deadline)
        return -1;
    int hedge = reason == RP_RETRY_HEDGE;
    int64_t wait = hedge ? 0 : rp_retry_backoff(c, a->tries, rp_random());
    if (!hedge && retry_after_ms >= 0 && c->retry_after_max > 0) {
        if (retry_after_ms > c->retry_after_max)
            return -1; /* the peer asks for longer than we would hold the client */
        if (retry_after_ms > wait)
            wait = retry_after_ms;
    }
    if (c->deadline > 0 && now + wait - a->t_first >= c->deadline)
        return -1;
    rp_pool_shared_t *pool = u->pool;
    if (!a->retrying && pool) {
        /* one retry in flight per retrying request, across workers */
        int64_t retrying = rp_shm_counter_get(&pool->retries.inflight);
        int64_t balance = budget_balance(pool, now);
        int over_max = u->max_retries > 0 && retrying >= u->max_retries;
        int take = 0;
        if (over_max || !rp_retry_budget_allows(retrying, balance, u->retry_budget_pct,
                                                u->retry_budget_min, &take)) {
            rp_shm_counter_add(&pool->budget_denied, 1);
            rp_log_error(RP_LOG_WARN, 0,
                         "upstream \"%s\": no retry of \"%.*s %.*s\" after %s from %s: %s "
                         "(%lld retries in flight, %lld tokens)",
                         u->name, (int)r->method.len, r->method.data, (int)r->request_uri.len,
                         r->request_uri.data, reason_name(reason),
                         a->peer ? a->peer->name : "?",
                         over_max ? "max_retries reached" : "retry budget exhausted",
                         (long long)retrying, (long long)(balance / 1000));
            return -1;
        }
        if (take)
            rp_shm_counter_add(&pool->budget_tokens, -1000);
        a->retrying = 1;
        rp_peer_inflight_add(&pool->retries, 1);
    }
    if (pool)
        rp_shm_counter_add(&pool->retried, 1);
    rp_metrics_upstream_retry(u, (unsigned)reason);
    if (hedge) {
        rp_log_error(RP_LOG_NOTICE, 0,
                     "upstream \"%s\": hedging \"%.*s %.*s\" to another peer: %s has not "
                     "answered in %lldms",
                     u->name, (int)r->method.len, r->method.data, (int)r->request_uri.len,
                     r->request_uri.data, a->peer ? a->peer->name : "?",
                     (long long)rp_attempt_elapsed(a));
        return 0;
    }
    a->retry_next = 1;
    char what[48] = "";
    if (reason == RP_RETRY_STATUS && grpc_status > 0)
        snprintf(what, sizeof(what), "grpc-status %d", grpc_status);
    else if (reason == RP_RETRY_STATUS)
        snprintf(what, sizeof(what), "status %d", status);
    rp_log_error(RP_LOG_WARN, 0,
                 "upstream \"%s\": retrying \"%.*s %.*s\" after %s from %s (try %u of %u), "
                 "in %lldms",
                 u->name, (int)r->method.len, r->method.data, (int)r->request_uri.len,
                 r->request_uri.data, what[0] ? what : reason_name(reason),
                 a->peer ? a->peer->name : "?", a->tries + 1, max_tries, (long long)wait);
    return wait;
}

void rp_attempt_hedge_of(rp_attempt_t *hedge, const rp_attempt_t *first)
{
    const rp_upstream_pick_t *pk = &first->pick;
    unsigned n = pk->ntried < RP_UPSTREAM_TRIED_INLINE ? pk->ntried : RP_UPSTREAM_TRIED_INLINE;
    hedge->pick.tried = hedge->pick.tried_inline;
    hedge->pick.tried_cap = RP_UPSTREAM_TRIED_INLINE;
    for (unsigned i = 0; i < n; i++)
        hedge->pick.tried_inline[i] = pk->tried[i];
    hedge->pick.ntried = n;
    hedge->pick.hash = pk->hash;
    hedge->pick.hashed = pk->hashed;
    hedge->pick.tries = pk->tries;
    hedge->t_first = first->t_first;
    hedge->tries = first->tries;
    hedge->retry_next = 1;
    /* what the chooser set for the request holds for its hedged try too */
    hedge->more_tries = first->more_tries;
    hedge->connect_timeout = first->connect_timeout;
    hedge->send_timeout = first->send_timeout;
    hedge->read_timeout = first->read_timeout;
}

int64_t rp_attempt_head_timeout(const rp_attempt_t *a, int64_t dflt)
{
    const rp_retry_conf_t *c = a->policy;
    if (c == NULL || c->per_try_timeout <= 0)
        return dflt;
    int64_t left = c->per_try_timeout - rp_attempt_elapsed(a);
    if (left < 1)
        left = 1;
    return left < dflt ? left : dflt;
}

void rp_attempt_done(rp_attempt_t *a)
{
    if (a->peer)
        rp_attempt_end(a, RP_ATTEMPT_INCOMPLETE, NULL);
    if (a->retrying) {
        a->retrying = 0;
        if (a->ups->pool)
            rp_peer_inflight_add(&a->ups->pool->retries, -1);
    }
    rp_upstream_pick_done(&a->pick);
    if (a->kept) {
        evbuffer_free(a->kept);
        a->kept = NULL;
    }
}

void rp_attempt_body_read(rp_attempt_t *a, const char *data, size_t n, int last)
{
    if (last)
        a->body_complete = 1;
    if (n == 0 || a->body_lost)
        return;
    size_t have = a->kept ? evbuffer_get_length(a->kept) : 0;
    if (have + n <= RP_ATTEMPT_KEEP_MAX) {
        if (a->kept == NULL)
            a->kept = evbuffer_new();
        if (a->kept && evbuffer_add(a->kept, data, n) == 0)
            return;
    }
    /* too large to keep: this attempt is the only one */
    a->body_lost = 1;
    if (a->kept) {
        evbuffer_free(a->kept);
        a->kept = NULL;
    }
}

size_t rp_attempt_kept_len(const rp_attempt_t *a)
{
    return a->kept ? evbuffer_get_length(a->kept) : 0;
}

void rp_attempt_kept_copy(const rp_attempt_t *a, size_t off, char *buf, size_t n)
{
    struct evbuffer_ptr at;
    evbuffer_ptr_set(a->kept, &at, off, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(a->kept, &at, buf, n);
}

int rp_attempt_may_resend(const rp_attempt_t *a)
{
    return rp_attempt_may_replay(a) && (idempotent(a->r) || a->policy->non_idempotent == 1);
}
