/*
 * The binary upgrade, as nginx's: on USR2 the master starts a new master from
 * the binary at the path it was itself started from (which may hold a new file
 * by then), handing it the listening sockets and the shared memory segments, so
 * that no connection is refused and no counter starts over while both run.
 *
 * What is handed over travels as inherited file descriptors, named in two
 * environment variables (nginx passes its sockets in NGINX the same way):
 * RAMPART_LISTEN ("fd:index;..." for the sockets, index being the worker slot of
 * the socket in its address's SO_REUSEPORT group) and RAMPART_SHM (memfd
 * segments, see shm.c). The descriptors keep FD_CLOEXEC in the old master and
 * lose it only in the forked child, just before exec, so no worker or helper
 * exec'd later could leak them.
 *
 * The old master renames its pid file to PID.oldbin first; the new master writes
 * PID once it serves. The new master is a child of the old one: when it exits
 * (a bad configuration, a crash, or QUIT during a rollback) the old master is
 * told by SIGCHLD, renames PID.oldbin back and, if WINCH had stopped its workers,
 * starts them again (master.c).
 */
#include "core/upgrade.h"
#include "core/log.h"
#include "core/shm.h"
#include "net/listen.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_LISTEN "RAMPART_LISTEN"
#define ENV_SHM    "RAMPART_SHM"
#define ENV_PARENT "RAMPART_UPGRADE_FROM"
#define ENV_CAP    65536
#define MAX_FDS    4096

static char exe_path[PATH_MAX];
static char **saved_argv;
static pid_t upgraded_from; /* the old master's pid, when USR2 started this one */

/* The path the binary was started from, absolute, resolved now: the working directory
 * may change, and the file may be replaced (that is the point). A path through a symlink
 * stays a path through it, so a link moved to a new version is followed, as nginx does. */
static void resolve_exe(const char *argv0)
{
    if (argv0 && argv0[0] == '/') {
        snprintf(exe_path, sizeof(exe_path), "%s", argv0);
        return;
    }
    if (argv0 && strchr(argv0, '/')) {
        char cwd[PATH_MAX];
        while (argv0[0] == '.' && argv0[1] == '/')
            argv0 += 2; /* "./rampart": the same file, a plainer name in the logs */
        if (getcwd(cwd, sizeof(cwd)) != NULL &&
            strlen(cwd) + strlen(argv0) + 2 <= sizeof(exe_path)) {
            strcpy(exe_path, cwd);
            strcat(exe_path, "/");
            strcat(exe_path, argv0);
            return;
        }
    }
    const char *path = getenv("PATH");
    while (argv0 && path && *path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        if (n > 0 && path[0] == '/' && n + strlen(argv0) + 2 <= sizeof(exe_path)) {
            memcpy(exe_path, path, n);
            exe_path[n] = '/';
            strcpy(exe_path + n + 1, argv0);
            if (access(exe_path, X_OK) == 0)
                return;
        }
        path = end ? end + 1 : path + n;
    }
    /* the file it runs from now (the last resort: if replaced, its name ends "(deleted)") */
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    exe_path[n > 0 ? n : 0] = '\0';
}

void rp_upgrade_init(int argc, char **argv)
{
    (void)argc;
    saved_argv = argv;
    resolve_exe(argv[0]);

    const char *from = getenv(ENV_PARENT);
    if (from == NULL)
        return;
    upgraded_from = (pid_t)strtol(from, NULL, 10);
    /* the segments first, before anything else takes address space: they go back to the
     * addresses they had, as the structures in them hold plain pointers */
    const char *shm = getenv(ENV_SHM);
    if (shm)
        rp_shm_inherit(shm);
    const char *ls = getenv(ENV_LISTEN);
    if (ls)
        rp_listen_inherit(ls);
    /* the workers, and a later upgrade of this master, must not see them */
    unsetenv(ENV_SHM);
    unsetenv(ENV_LISTEN);
    unsetenv(ENV_PARENT);
}

pid_t rp_upgrade_parent(void)
{
    return upgraded_from;
}

const char *rp_upgrade_exe(void)
{
    return exe_path;
}

pid_t rp_upgrade_start(const rp_cycle_t *cycle)
{
    char *lenv = rp_xcalloc(1, ENV_CAP), *senv = rp_xcalloc(1, ENV_CAP);
    static int fds[MAX_FDS];
    int nl = rp_listen_export(cycle, lenv, ENV_CAP, fds, MAX_FDS);
    int ns = nl < 0 ? -1 : rp_shm_export(senv, ENV_CAP, fds + nl, MAX_FDS - nl);
    if (nl < 0 || ns < 0) {
        rp_log_error(RP_LOG_ALERT, 0, "binary upgrade refused: too many sockets and zones to pass");
        free(lenv);
        free(senv);
        return -1;
    }
    char parent[32];
    snprintf(parent, sizeof(parent), "%d", (int)getpid());

    pid_t pid = fork();
    if (pid < 0) {
        rp_log_error(RP_LOG_ALERT, errno, "fork() failed while starting the new binary");
    } else if (pid == 0) {
        for (int i = 0; i < nl + ns; i++) {
            int fl = fcntl(fds[i], F_GETFD);
            if (fl >= 0)
                fcntl(fds[i], F_SETFD, fl & ~FD_CLOEXEC);
        }
        setenv(ENV_LISTEN, lenv, 1);
        setenv(ENV_SHM, senv, 1);
        setenv(ENV_PARENT, parent, 1);
        /* signals stay blocked across exec: the new master blocks the same ones before it
         * unblocks anything, so a signal sent too early waits instead of killing it */
        execv(exe_path, saved_argv);
        rp_log_error(RP_LOG_ALERT, errno, "execv(\"%s\") failed", exe_path);
        _exit(2);
    } else {
        rp_log_error(RP_LOG_NOTICE, 0, "started the new binary %s as pid %d (%d sockets, %d zones)",
                     exe_path, (int)pid, nl, ns);
    }
    free(lenv);
    free(senv);
    return pid;
}
