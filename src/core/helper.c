/*
 * The helper process: work that must happen once per node rather than once per
 * worker (active health probes, DNS re-resolution, global rate-limit sync) runs
 * here and publishes into shared memory. It serves no traffic. The work belongs to
 * modules, which start it from their init_helper hook and end it in exit_helper
 * (upstream/resolve_module.c keeps the names of `server ... resolve` lines
 * resolved); this file only runs the loop they share.
 */
#include "core/log.h"
#include "core/process.h"
#include "core/time.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>

static rp_cycle_t *helper_cycle;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct event_base *base = arg;
    if (sig == SIGUSR1) {
        rp_log_reopen();
        rp_modules_reopen(helper_cycle);
        return;
    }
    if (sig == SIGHUP)
        return;
    event_base_loopbreak(base);
}

void rp_helper_run(rp_cycle_t *cycle, pid_t master)
{
    rp_log_set_ident(-1);
    rp_process.kind = RP_PROCESS_HELPER;
    rp_process.index = -1;
    rp_process.master = master;
    helper_cycle = cycle;
    struct event_base *base = event_base_new();
    if (base == NULL)
        exit(2);
    rp_event_base = base;
    rp_process_setup(cycle, RP_PROCESS_HELPER, -1);
    /* what the modules find out goes into their generation's zones */
    if (rp_modules_init_process(cycle) != 0)
        exit(2);
    int sigs[] = {SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        event_add(evsignal_new(base, sigs[i], on_signal, base), NULL);

    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    rp_child_init(master);

    /* Keep the loop alive with no events registered yet. */
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    rp_modules_exit_process(cycle);
    exit(0);
}
