/*
 * The attempt engine (attempt.h).
 */
#include "upstream/attempt.h"
#include "upstream/proxy.h"
#include "core/time.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <string.h>

void rp_attempt_init(rp_attempt_t *a, rp_request_t *r, rp_upstream_conf_t *u)
{
    memset(a, 0, sizeof(*a));
    a->r = r;
    a->ups = u;
    a->pick.r = r;
    a->header_ms = -1;
}

rp_upstream_server_t *rp_attempt_next(rp_attempt_t *a)
{
    rp_upstream_server_t *s = rp_upstream_get_peer(a->ups, &a->pick);
    if (s == NULL)
        return NULL;
    a->peer = s;
    a->tries++;
    a->header_ms = -1;
    a->status = 0;
    a->status_recorded = 0;
    rp_time_now(&a->t_start);
    rp_proxy_record(a->r, &rp_proxy_ctx(a->r)->addr, s->name);
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
    rp_upstream_free_peer(a->ups, s, &o);
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

void rp_attempt_done(rp_attempt_t *a)
{
    if (a->peer)
        rp_attempt_end(a, RP_ATTEMPT_INCOMPLETE, NULL);
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
    rp_str_t m = a->r->method;
    if (!rp_attempt_may_replay(a))
        return 0;
    return rp_str_eq(m, "GET") || rp_str_eq(m, "HEAD") || rp_str_eq(m, "PUT") ||
           rp_str_eq(m, "DELETE") || rp_str_eq(m, "OPTIONS") || rp_str_eq(m, "TRACE");
}
