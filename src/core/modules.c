/*
 * The module registry and the process hooks. Order matters: directives are
 * looked up in this order, phase handlers run in the order modules register
 * them, and the init hooks run in this order (the exit hooks in reverse), so the
 * modules that open files come before those that map memory and bind sockets.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "core/shm.h"
#include "http/http.h"
#include "http/match.h"
#include "http/static.h"
#include "limit/limit_count.h"
#include "lua/lua_int.h"
#include "lua/lua_socket.h"
#include "limit/limit_req.h"
#include "limit/limit_conn.h"
#include "limit/limit_headers.h"
#include "limit/limit_sync.h"
#include "lua/lua_shdict.h"
#include "net/listen.h"
#include "observe/access_log.h"
#include "http/error_log.h"
#include "observe/trace_context.h"
#include "observe/metrics.h"
#include "upstream/outlier.h"
#include "upstream/health.h"
#include "upstream/breaker.h"
#include "upstream/adaptive.h"
#include "upstream/resolve.h"
#include "upstream/admin.h"
#include "upstream/proxy_buffer.h"

#include <stdio.h>

rp_process_t rp_process;

rp_module_t *const rp_modules[] = {
    &rp_core_module,        &rp_http_module,        &rp_http_core_module,
    &rp_http_compat_module, /* before realip: a header nginx ignores is gone for all */
    &rp_http_realip_module, /* first of the phase handlers: every later one sees the client */
    &rp_http_rewrite_module, &rp_http_redirect_module, &rp_http_map_module, &rp_http_split_clients_module,
    &rp_upstream_module,    &rp_breaker_module,
    &rp_adaptive_module,
    &rp_proxy_module,       &rp_proxy_ssl_module,   &rp_grpc_ssl_module,
    &rp_proxy_buffer_module,
    &rp_grpc_module,        &rp_upstream_choose_module, &rp_canary_module,
    &rp_retry_module, &rp_hedge_module,
    &rp_http_headers_module, &rp_http_gzip_module,
    &rp_http_error_page_module,
    &rp_http_limit_rate_module,
    &rp_http_limit_req_module,
    &rp_http_mirror_module, &rp_http_fault_module,
    &rp_http_access_module, /* before lua: allow/deny run first in the access phase */
    &rp_http_auth_basic_module, /* after allow/deny, as nginx orders its access phase */
    &rp_http_auth_request_module, /* after auth_basic, before lua */
    &rp_http_match_module, /* no phase handler: find_config asks it about locations */
    &rp_limit_count_module,
    &rp_limit_conn_module,
    &rp_limit_headers_module,
    &rp_upstream_status_module,
    &rp_access_log_module,
    &rp_http_error_log_module,
    &rp_trace_context_module,
    &rp_lua_shdict_module,
    &rp_ssl_module,         &rp_http2_module,       &rp_shm_module,
    &rp_metrics_module, /* after shm: its init_master numbers the series in the zone */
    &rp_stub_status_module,
    &rp_limit_sync_module, /* after shm: it runs in the helper and touches the zones */
    &rp_listen_module,      &rp_resolve_module, /* after shm: it writes into the zones */
    &rp_outlier_module,
    &rp_health_module,      /* after shm: it writes into the zones */
    &rp_admin_api_module,   /* after shm: it applies the admin overrides to the peer table */
    &rp_lua_timer_module, /* before lua: its limits are set when init_worker_by_lua runs */
    &rp_lua_module, /* after shm: init_by_lua may use the shared dictionaries */
    &rp_lua_socket_module,
    &rp_lua_balancer_module,
    &rp_http_static_module, /* last content handler: after proxy, grpc and lua */
    &rp_http_try_files_module,
    &rp_compat_module, /* last: only nginx's no-op tuning directives */
};

const size_t rp_nmodules = sizeof(rp_modules) / sizeof(rp_modules[0]);

void rp_modules_init(void)
{
    for (size_t i = 0; i < rp_nmodules; i++)
        rp_modules[i]->index = i;
}

int rp_modules_init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < rp_nmodules; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->init_master && m->init_master(cycle, prev, flags, err, errlen) != 0)
            return -1;
    }
    return 0;
}

void rp_modules_stop_master(rp_cycle_t *cycle)
{
    for (size_t i = rp_nmodules; i-- > 0;)
        if (rp_modules[i]->stop_master)
            rp_modules[i]->stop_master(cycle);
}

void rp_modules_reopen(rp_cycle_t *cycle)
{
    for (size_t i = 0; i < rp_nmodules; i++)
        if (rp_modules[i]->reopen)
            rp_modules[i]->reopen(cycle);
}

void rp_modules_child_exited(rp_cycle_t *cycle, int pid, int clean)
{
    for (size_t i = 0; i < rp_nmodules; i++)
        if (rp_modules[i]->child_exited)
            rp_modules[i]->child_exited(cycle, pid, clean);
}

int rp_modules_init_process(rp_cycle_t *cycle)
{
    int helper = rp_process.kind == RP_PROCESS_HELPER;
    for (size_t i = 0; i < rp_nmodules; i++) {
        const rp_module_t *m = rp_modules[i];
        int (*init)(rp_cycle_t *) = helper ? m->init_helper : m->init_worker;
        if (init && init(cycle) != 0) {
            rp_log_error(RP_LOG_EMERG, 0, "module \"%s\" failed to start in the %s", m->name,
                         helper ? "helper" : "worker");
            return -1;
        }
    }
    return 0;
}

void rp_modules_stop_process(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_HELPER)
        return;
    for (size_t i = rp_nmodules; i-- > 0;)
        if (rp_modules[i]->stop_worker)
            rp_modules[i]->stop_worker(cycle);
}

void rp_modules_exit_process(rp_cycle_t *cycle)
{
    int helper = rp_process.kind == RP_PROCESS_HELPER;
    for (size_t i = rp_nmodules; i-- > 0;) {
        const rp_module_t *m = rp_modules[i];
        void (*fini)(rp_cycle_t *) = helper ? m->exit_helper : m->exit_worker;
        if (fini)
            fini(cycle);
    }
}
