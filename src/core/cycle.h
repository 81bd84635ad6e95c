/*
 * A cycle is one generation of configuration: everything parsed from the files,
 * the listening addresses it asks for, and the arena all of it lives in. The
 * master keeps the current cycle and, during a reload, the previous one until its
 * workers have drained; a worker only ever sees the cycle it was forked with.
 */
#ifndef RP_CYCLE_H
#define RP_CYCLE_H

#include "conf/conf.h"
#include "core/arena.h"

#include <sched.h>
#include <stdint.h>
#include <sys/types.h>

struct rp_cycle_s {
    rp_arena_t *arena;
    const char *prefix;      /* relative paths of run-time files (pid, logs) start here */
    const char *conf_file;   /* as resolved against the prefix */
    const char *conf_prefix; /* conf_file's folder: relative configuration files start here */
    void **main_conf;      /* per module, by index */
    rp_array_t files;      /* rp_conf_file_t: every file read, for -T */
    rp_array_t listening;  /* rp_listening_t *: addresses to listen on */
    rp_array_t shm_zones;  /* rp_shm_zone_t *: shared memory zones it declares (core/shm.h) */
    rp_array_t vars;       /* rp_var_t *: the variables it knows (http/variables.h) */
    unsigned nvar_slots;   /* variables a value refers to: slots in a request */
    unsigned generation;
};

/* The core module's configuration: process model and logging. */
typedef struct {
    int worker_processes; /* resolved: "auto" becomes the number of online CPUs */
    int daemon;
    char *pid;
    char *error_log; /* NULL for stderr */
    int error_log_level;
    const char *error_log_file; /* where error_log was set, for messages */
    unsigned error_log_line;
    int64_t worker_shutdown_timeout;
    int worker_connections;
    int worker_rlimit_nofile;
    int master_process; /* off: one process serves (debugging) */
    int events_seen;    /* the events block was parsed: a second one is an error */
    /* user: who the workers and the helper run as (user_name NULL: who the master is) */
    const char *user_name;
    uid_t user_uid;
    gid_t user_gid;
    int worker_priority;     /* nice value of the workers and the helper; UNSET: unchanged */
    int cpu_affinity_auto;   /* worker_cpu_affinity auto [MASK] */
    int cpu_affinity_n;      /* masks given (auto: 1, the CPUs to spread over) */
    cpu_set_t *cpu_affinity; /* NULL: workers not pinned */
} rp_core_conf_t;

/*
 * Parses conf_file (relative to prefix when not absolute) into a new cycle.
 * Returns NULL with a message in err ("FILE:LINE: ...") when the configuration is
 * invalid; nothing is started or bound by loading.
 */
rp_cycle_t *rp_cycle_load(const char *prefix, const char *conf_file, char *err, size_t errlen);

/* Frees the cycle and everything its arena owns. */
void rp_cycle_destroy(rp_cycle_t *cycle);

/* The core module's configuration of a cycle. */
rp_core_conf_t *rp_core_conf(const rp_cycle_t *cycle);

/* Applies process limits (worker_rlimit_nofile) in the master, before forking workers. */
void rp_cycle_apply_limits(const rp_cycle_t *cycle);

/* Follows a reload's error_log change; keeps the old log if the new one cannot be opened. */
void rp_cycle_apply_log(const rp_cycle_t *old, const rp_cycle_t *fresh);

/* Writes every configuration file read, nginx -T style, to fd. */
void rp_cycle_dump(const rp_cycle_t *cycle, int fd);

extern rp_module_t rp_core_module;
extern rp_module_t rp_compat_module; /* nginx's tuning directives, accepted as no-ops */

#endif
