/*
 * The process model: a master that owns sockets and supervises, workers that
 * serve, one helper for once-per-node background work.
 */
#ifndef RP_PROCESS_H
#define RP_PROCESS_H

#include "core/cycle.h"

#include <sys/types.h>

/* Serves traffic on socket `index` of every address until told to stop; never returns. */
void rp_worker_run(rp_cycle_t *cycle, int index, pid_t master) __attribute__((noreturn));

/*
 * master_process off: lets the single process reload itself on HUP, re-reading
 * conf_file under prefix.
 */
void rp_worker_enable_reload(const char *prefix, const char *conf_file);

/* Runs the helper's event loop until told to stop; never returns. */
void rp_helper_run(rp_cycle_t *cycle, pid_t master) __attribute__((noreturn));

/*
 * Runs the master: forks the workers and the helper, then supervises them and
 * handles signals until a stop. Returns the process exit code.
 */
int rp_master_run(rp_cycle_t *cycle, const char *prefix, const char *conf_file);

/* Writes this process's pid to path (atomically, creating one missing folder level). */
int rp_pid_write(const char *path);

/* Creates the folder that path is in, one level deep, if it is missing. */
void rp_mkdir_parent(const char *path);

/* Common start of a child process: unblocks signals, ties its life to the master's. */
void rp_child_init(pid_t master);

#endif
