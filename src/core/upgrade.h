/*
 * The binary upgrade (USR2): a new master exec'd from the binary's path, taking
 * over the listening sockets and shared memory segments of the running one.
 */
#ifndef RP_UPGRADE_H
#define RP_UPGRADE_H

#include "core/cycle.h"

#include <sys/types.h>

/*
 * At startup, before the configuration is loaded: remembers argv and the absolute path
 * of the binary for a later upgrade and, in a master that an upgrade started, maps the
 * inherited segments back at their addresses and notes the inherited sockets (the
 * configuration then claims what it still uses; shm.c and listen.c close the rest).
 */
void rp_upgrade_init(int argc, char **argv);

/* The old master's pid when this master was started by an upgrade, else 0. */
pid_t rp_upgrade_parent(void);

/* The binary's path as resolved at startup. */
const char *rp_upgrade_exe(void);

/*
 * Forks and execs the binary with the sockets and segments of cycle (the current
 * generation). Returns the new master's pid, or -1 (logged).
 */
pid_t rp_upgrade_start(const rp_cycle_t *cycle);

#endif
