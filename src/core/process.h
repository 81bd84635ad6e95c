/*
 * The process model: a master that owns sockets and supervises, workers that
 * serve, one helper for once-per-node background work.
 */
#ifndef RP_PROCESS_H
#define RP_PROCESS_H

#include "core/cycle.h"

#include <sys/types.h>

/* What this process is, for the modules' process hooks. */
enum { RP_PROCESS_MASTER, RP_PROCESS_WORKER, RP_PROCESS_HELPER, RP_PROCESS_SINGLE };

typedef struct {
    int kind;   /* RP_PROCESS_* */
    int index;  /* a worker's number: it serves listening socket `index` of each address */
    pid_t master; /* 0 without a master */
} rp_process_t;

extern rp_process_t rp_process;

/* Serves traffic on socket `index` of every address until told to stop; never returns. */
void rp_worker_run(rp_cycle_t *cycle, int index, pid_t master) __attribute__((noreturn));

/*
 * master_process off: lets the single process reload itself on HUP, re-reading
 * conf_file under prefix.
 */
void rp_worker_enable_reload(const char *prefix, const char *conf_file);

/*
 * Work other than connections that a graceful stop lets finish (a Lua timer's callback
 * still running): +1 when it starts, -1 when it ends. A draining worker exits once no
 * connection and no hold is left, or when worker_shutdown_timeout passes.
 */
void rp_worker_hold(int delta);

/* Runs the helper's event loop until told to stop; never returns. */
void rp_helper_run(rp_cycle_t *cycle, pid_t master) __attribute__((noreturn));

/*
 * Runs the master: forks the workers and the helper, then supervises them and
 * handles signals until a stop. Returns the process exit code.
 */
int rp_master_run(rp_cycle_t *cycle, const char *prefix, const char *conf_file);

/*
 * Opens path (creating one missing folder level) and takes an exclusive lock on it,
 * held for the life of this process and its daemonized self: a second rampart on the
 * same pid file is refused, with the running one's pid in err. Returns 0 or -1.
 */
int rp_pid_lock(const char *path, char *err, size_t errlen);

/* Writes this process's pid into the locked pid file. Returns 0 or -1 (logged). */
int rp_pid_write(const char *path);

/* Lets go of the pid file's lock (a child, which must not hold it). */
void rp_pid_release(void);

/* Creates the folder that path is in, one level deep, if it is missing. */
void rp_mkdir_parent(const char *path);

/*
 * A worker's (kind RP_PROCESS_WORKER, number index) or the helper's own settings, before
 * its modules start: worker_priority, worker_cpu_affinity (workers), then the user
 * directive's user, for good. Exits (2) if the user cannot be taken.
 */
void rp_process_setup(const rp_cycle_t *cycle, int kind, int index);

/* Common start of a child process: unblocks signals, ties its life to the master's. */
void rp_child_init(pid_t master);

#endif
