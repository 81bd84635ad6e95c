/*
 * What a worker or the helper changes about its own process before it serves: its
 * scheduling priority (worker_priority), the CPUs it runs on (worker_cpu_affinity,
 * workers only) and, last, its user (user). The master keeps root to bind sockets,
 * read keys and reopen logs; its children give it up for good before the modules'
 * init_process hooks run, so nothing they open or start runs privileged.
 */
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

/* Worker index's CPUs: its own mask, or its share of the auto mask. */
static int worker_cpus(const rp_core_conf_t *c, int index, cpu_set_t *out)
{
    if (c->cpu_affinity == NULL || index < 0)
        return -1;
    if (!c->cpu_affinity_auto) {
        *out = c->cpu_affinity[index < c->cpu_affinity_n ? index : c->cpu_affinity_n - 1];
        return 0;
    }
    const cpu_set_t *mask = &c->cpu_affinity[0];
    int n = CPU_COUNT(mask), want = index % n;
    CPU_ZERO(out);
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, mask) && want-- == 0) {
            CPU_SET(cpu, out);
            return 0;
        }
    }
    return -1;
}

static void drop_user(const rp_core_conf_t *c)
{
    if (c->user_name == NULL || c->user_name[0] == '\0' || geteuid() != 0)
        return;
    /* group first: once the uid is not 0, nothing else may change */
    if (setgid(c->user_gid) != 0) {
        rp_log_error(RP_LOG_EMERG, errno, "setgid(%u) failed", (unsigned)c->user_gid);
        exit(2);
    }
    if (initgroups(c->user_name, c->user_gid) != 0) {
        rp_log_error(RP_LOG_EMERG, errno, "initgroups(%s, %u) failed", c->user_name,
                     (unsigned)c->user_gid);
        exit(2);
    }
    /* setuid from root sets the real, effective and saved uids, and empties the permitted,
     * effective and ambient capability sets (no SECBIT_KEEP_CAPS is set) */
    if (setuid(c->user_uid) != 0) {
        rp_log_error(RP_LOG_EMERG, errno, "setuid(%u) failed", (unsigned)c->user_uid);
        exit(2);
    }
    if (c->user_uid != 0 && setuid(0) == 0) {
        rp_log_error(RP_LOG_EMERG, 0, "root privileges could be regained after setuid(%u)",
                     (unsigned)c->user_uid);
        exit(2);
    }
    /* nor regained through a set-user-ID program a Lua script might run */
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
#if defined(__SANITIZE_ADDRESS__)
    /* Changing the uid made the process undumpable, which also keeps other processes of
     * the user from reading its memory (the keys). LeakSanitizer's exit check ptraces
     * the process from a helper task, so only a sanitizer build is made dumpable again. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
}

void rp_process_setup(const rp_cycle_t *cycle, int kind, int index)
{
    const rp_core_conf_t *c = rp_core_conf(cycle);
    if (c->worker_priority != RP_CONF_UNSET &&
        setpriority(PRIO_PROCESS, 0, c->worker_priority) != 0)
        rp_log_error(RP_LOG_ALERT, errno, "setpriority(%d) failed", c->worker_priority);
    cpu_set_t cpus;
    if (kind == RP_PROCESS_WORKER && worker_cpus(c, index, &cpus) == 0 &&
        sched_setaffinity(0, sizeof(cpus), &cpus) != 0)
        rp_log_error(RP_LOG_ALERT, errno, "sched_setaffinity() of worker %d failed", index);
    drop_user(c);
}
