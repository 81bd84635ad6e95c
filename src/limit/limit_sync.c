/*
 * Scaffolding until the sync engine lands (issue 12): a `sync` zone is refused.
 */
#include "limit/limit.h"

const char *rp_limit_sync_zone(rp_conf_t *cf, rp_shm_zone_t *zone, const char *name,
                               const rp_limit_sync_ops_t *ops)
{
    (void)cf;
    (void)zone;
    (void)name;
    (void)ops;
    return "\"sync\" needs the limit_sync engine, which this build does not have yet";
}
