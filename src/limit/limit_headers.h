/*
 * The text of the RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10), from the
 * reports of the limits that decided on a request: pure functions, so the formatting
 * is unit-tested without a request (t/unit/test_limit_headers.c).
 */
#ifndef RP_LIMIT_HEADERS_H
#define RP_LIMIT_HEADERS_H

#include "limit/limit.h"

#include <stddef.h>

/* limit_headers, limit_retry_after, $ratelimit_policy, $ratelimit. */
extern rp_module_t rp_limit_headers_module;

/*
 * Writes the RateLimit-Policy field value for reps[0..n): one Quota Policy Item per
 * report, in order, `"NAME";q=QUOTA;w=WINDOW`, or for a concurrency limit (window 0)
 * `"NAME";q=QUOTA;qu="concurrent-requests"`. Returns the length the whole value
 * needs; the text (NUL-terminated) is complete only when that is below cap.
 */
size_t rp_limit_policy_field(const rp_limit_report_t *reps, size_t n, char *buf, size_t cap);

/* The RateLimit field value: one Service Limit Item per report, `"NAME";r=REMAINING;t=RESET`
 * (no t for a concurrency limit). Returns as rp_limit_policy_field. */
size_t rp_limit_field(const rp_limit_report_t *reps, size_t n, char *buf, size_t cap);

/* The Retry-After a refusal carries: the largest retry_after of the refusing reports
 * (at least 1), or 0 when none refused. */
int64_t rp_limit_retry_after(const rp_limit_report_t *reps, size_t n);

#endif
