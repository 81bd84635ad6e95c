/*
 * The retry policy's decisions (retry.h), kept pure for unit tests.
 */
#include "upstream/retry.h"
#include "core/time.h"

#include <math.h>
#include <stddef.h>

int rp_retry_wants(const rp_retry_conf_t *c, unsigned reason, int status, int grpc_status)
{
    unsigned on = c->set ? c->on : RP_RETRY_DEFAULT_ON;
    switch (reason) {
    case RP_RETRY_CONNECT:
        return (on & RP_RETRY_ON_CONNECT) != 0;
    case RP_RETRY_REFUSED:
        return (on & RP_RETRY_ON_REFUSED) != 0;
    case RP_RETRY_RESET:
        return (on & RP_RETRY_ON_RESET) != 0;
    case RP_RETRY_TIMEOUT:
        return (on & RP_RETRY_ON_TIMEOUT) != 0;
    case RP_RETRY_INVALID:
        return (on & RP_RETRY_ON_INVALID) != 0;
    case RP_RETRY_HEDGE:
        return 1;
    case RP_RETRY_STATUS:
        break;
    default:
        return 0;
    }
    if (grpc_status > 0 && grpc_status < 32 && (c->grpc >> grpc_status) & 1)
        return 1;
    if (status >= 500 && status <= 599 && (on & RP_RETRY_ON_5XX))
        return 1;
    if ((status == 502 || status == 503 || status == 504) && (on & RP_RETRY_ON_GATEWAY))
        return 1;
    if (status == 409 && (on & RP_RETRY_ON_4XX))
        return 1;
    for (unsigned i = 0; c->set && i < c->ncodes; i++)
        if (c->codes[i] == status)
            return 1;
    return 0;
}

int rp_retry_unprocessed(unsigned reason, int status, int not_processed)
{
    if (reason == RP_RETRY_CONNECT || reason == RP_RETRY_REFUSED)
        return 1;
    return reason == RP_RETRY_STATUS && status == 503 && not_processed;
}

int64_t rp_retry_backoff(const rp_retry_conf_t *c, unsigned n, uint64_t r)
{
    if (c->backoff_base <= 0 || n == 0)
        return 0;
    int64_t cap = c->backoff_max > 0 ? c->backoff_max : c->backoff_base * 10;
    int64_t span = c->backoff_base;
    for (unsigned i = 1; i < n && span < cap; i++)
        span *= 2;
    if (span > cap)
        span = cap;
    /* full jitter (AWS's "exponential backoff and jitter"): uniform in [0, span] */
    return (int64_t)(r % (uint64_t)(span + 1));
}

int64_t rp_retry_budget_leak(int64_t balance, int64_t dt_ms)
{
    if (dt_ms <= 0 || balance <= 0)
        return balance;
    return (int64_t)((double)balance * exp(-(double)dt_ms / RP_RETRY_BUDGET_TAU_MS));
}

int rp_retry_budget_allows(int64_t retries_inflight, int64_t balance, int pct, int min,
                           int *take)
{
    *take = 0;
    if (pct < 0)
        return 1;
    if (retries_inflight < min)
        return 1;
    if (balance >= 1000) {
        *take = 1;
        return 1;
    }
    return 0;
}

int64_t rp_retry_after_ms(const char *v, unsigned len, int64_t now_s)
{
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len == 0)
        return -1;
    if (v[0] >= '0' && v[0] <= '9') {
        int64_t s = 0;
        for (unsigned i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9' || s > 100000000)
                return -1;
            s = s * 10 + (v[i] - '0');
        }
        return s * 1000;
    }
    int64_t t = rp_http_time_parse(v, len);
    if (t < 0)
        return -1;
    return t > now_s ? (t - now_s) * 1000 : 0;
}
