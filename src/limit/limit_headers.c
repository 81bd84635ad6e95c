/*
 * Scaffolding until the RateLimit fields land (issue 12): the limit modules report
 * into it already; reports are dropped.
 */
#include "limit/limit.h"

void rp_limit_report(struct rp_request_s *r, const rp_limit_report_t *rep)
{
    (void)r;
    (void)rep;
}
