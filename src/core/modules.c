/*
 * The module registry. Order matters twice: directives are looked up in this
 * order, and phase handlers run in the order modules register them.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "http/http.h"
#include "observe/access_log.h"

rp_module_t *const rp_modules[] = {
    &rp_core_module,        &rp_http_module,     &rp_http_core_module,
    &rp_http_return_module, &rp_upstream_module, &rp_proxy_module,
    &rp_proxy_ssl_module,   &rp_grpc_ssl_module, &rp_grpc_module,
    &rp_http_headers_module, &rp_access_log_module,  &rp_ssl_module,
    &rp_http2_module,
};

const size_t rp_nmodules = sizeof(rp_modules) / sizeof(rp_modules[0]);

void rp_modules_init(void)
{
    for (size_t i = 0; i < rp_nmodules; i++)
        rp_modules[i]->index = i;
}
