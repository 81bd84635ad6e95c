/*
 * The master process: it serves no traffic, so a bug in request handling can
 * never take it down. It owns the listening sockets and the configuration
 * generations, forks the workers and the helper, restarts a child that dies,
 * and turns signals into reloads and stops.
 *
 * Signals are blocked and taken synchronously with sigtimedwait, so every
 * handler runs in the main flow and may allocate, log and fork freely.
 *
 * The binary upgrade (core/upgrade.c), as nginx's: USR2 starts a new master
 * from the binary's path with this one's sockets and zones; WINCH stops this
 * master's workers gracefully but keeps its sockets, so that HUP can start them
 * again (a rollback); QUIT retires it. If the new master exits, this one takes
 * its pid file back and, if WINCH had stopped its workers, serves again.
 */
#include "core/log.h"
#include "core/process.h"
#include "core/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { KIND_WORKER, KIND_HELPER };

typedef struct {
    pid_t pid; /* 0: free slot */
    int kind;
    int index;
    rp_cycle_t *cycle; /* its generation */
    int exiting;       /* told to stop: do not respawn */
    struct timespec started;
    int respawn_pending;
    struct timespec respawn_at;
    double kill_at; /* after a QUIT: when a child that has not exited gets SIGKILL */
} proc_t;

#define MAX_PROCS 4096

static proc_t procs[MAX_PROCS];
static rp_cycle_t *current;
static rp_cycle_t *old_cycles[64];
static size_t nold;
static const char *conf_prefix, *conf_path;
static pid_t master_pid;
static pid_t new_binary; /* the master USR2 started, while it runs */
static int winched;      /* WINCH stopped the workers: HUP starts them again */
static int pid_oldbin;   /* the pid file is renamed PID.oldbin while new_binary runs */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double ts_s(struct timespec ts)
{
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *kind_name(int kind)
{
    return kind == KIND_WORKER ? "worker" : "helper";
}

static proc_t *slot_free(void)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (procs[i].pid == 0 && !procs[i].respawn_pending)
            return &procs[i];
    return NULL;
}

static int spawn(proc_t *p)
{
    pid_t pid = fork();
    if (pid < 0) {
        rp_log_error(RP_LOG_ALERT, errno, "fork() failed while spawning a %s", kind_name(p->kind));
        return -1;
    }
    if (pid == 0) {
        if (p->kind == KIND_WORKER)
            rp_worker_run(p->cycle, p->index, master_pid);
        rp_helper_run(p->cycle, master_pid);
    }
    p->pid = pid;
    p->exiting = 0;
    p->respawn_pending = 0;
    clock_gettime(CLOCK_MONOTONIC, &p->started);
    return 0;
}

static void start_generation(rp_cycle_t *cycle)
{
    int n = rp_core_conf(cycle)->worker_processes;
    for (int i = 0; i <= n; i++) {
        proc_t *p = slot_free();
        if (p == NULL) {
            rp_log_error(RP_LOG_ALERT, 0, "too many processes");
            return;
        }
        memset(p, 0, sizeof(*p));
        p->kind = i < n ? KIND_WORKER : KIND_HELPER;
        p->index = i < n ? i : -1;
        p->cycle = cycle;
        spawn(p);
    }
    rp_log_error(RP_LOG_NOTICE, 0, "started %d worker processes and a helper (generation %u)", n,
                 cycle->generation);
}

static void signal_generation(rp_cycle_t *cycle, int sig, int mark_exiting)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &procs[i];
        if ((cycle == NULL || p->cycle == cycle) && (p->pid || p->respawn_pending)) {
            if (mark_exiting) {
                p->exiting = 1;
                p->respawn_pending = 0;
                if (sig == SIGQUIT)
                    p->kill_at = now_s() +
                                 (double)rp_core_conf(p->cycle)->worker_shutdown_timeout / 1000 + 5;
            }
            if (p->pid)
                kill(p->pid, sig);
        }
    }
}

static int live_count(rp_cycle_t *cycle)
{
    int n = 0;
    for (int i = 0; i < MAX_PROCS; i++)
        if ((procs[i].pid || procs[i].respawn_pending) && (cycle == NULL || procs[i].cycle == cycle))
            n++;
    return n;
}

static void free_finished_generations(void)
{
    for (size_t i = 0; i < nold;) {
        if (live_count(old_cycles[i]) == 0) {
            rp_log_error(RP_LOG_INFO, 0, "generation %u has drained", old_cycles[i]->generation);
            rp_cycle_destroy(old_cycles[i]);
            old_cycles[i] = old_cycles[--nold];
        } else {
            i++;
        }
    }
}

static void upgrade_ended(int status, int stopping);

static void reap(int stopping)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        proc_t *p = NULL;
        for (int i = 0; i < MAX_PROCS; i++)
            if (procs[i].pid == pid)
                p = &procs[i];
        if (p == NULL) {
            if (pid == new_binary && new_binary)
                upgrade_ended(status, stopping);
            continue;
        }

        char why[64];
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        /* first, while its generation (and the memory it used) is surely still mapped */
        rp_modules_child_exited(p->cycle, (int)pid, clean);
        if (WIFSIGNALED(status))
            snprintf(why, sizeof(why), "on signal %d%s", WTERMSIG(status),
                     WCOREDUMP(status) ? " (core dumped)" : "");
        else
            snprintf(why, sizeof(why), "with code %d", WEXITSTATUS(status));

        p->pid = 0;
        if (p->exiting || stopping || p->cycle != current) {
            rp_log_error(clean ? RP_LOG_INFO : RP_LOG_WARN, 0, "%s process %d exited %s",
                         kind_name(p->kind), (int)pid, why);
            memset(p, 0, sizeof(*p));
            continue;
        }
        rp_log_error(RP_LOG_ALERT, 0, "%s process %d exited %s; starting a new one",
                     kind_name(p->kind), (int)pid, why);
        /* A child that dies right after starting is throttled so a crash loop cannot spin. */
        if (now_s() - ts_s(p->started) < 1.0) {
            p->respawn_pending = 1;
            clock_gettime(CLOCK_MONOTONIC, &p->respawn_at);
            p->respawn_at.tv_sec += 1;
        } else {
            spawn(p);
        }
    }
}

static void run_pending_respawns(void)
{
    double now = now_s();
    for (int i = 0; i < MAX_PROCS; i++) {
        proc_t *p = &procs[i];
        if (p->respawn_pending && !p->exiting && now >= ts_s(p->respawn_at))
            spawn(p);
    }
}

void rp_mkdir_parent(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0755); /* one level, like a fresh checkout's "logs/" */
    }
}

/* The pid file this process holds locked; -1 for none. */
static int pid_fd = -1;

int rp_pid_lock(const char *path, char *err, size_t errlen)
{
    rp_mkdir_parent(path);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open pid file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        long pid = n > 0 ? strtol(buf, NULL, 10) : 0;
        if (errno == EWOULDBLOCK || errno == EAGAIN)
            snprintf(err, errlen, "rampart is already running (pid %ld, pid file \"%s\")", pid,
                     path);
        else
            snprintf(err, errlen, "cannot lock pid file \"%s\": %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (pid_fd >= 0)
        close(pid_fd); /* a reload moved the pid file: the old lock goes */
    pid_fd = fd;
    return 0;
}

int rp_pid_write(const char *path)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (pid_fd < 0 || ftruncate(pid_fd, 0) != 0 || pwrite(pid_fd, buf, (size_t)n, 0) != n) {
        rp_log_error(RP_LOG_ALERT, errno, "cannot write pid file \"%s\"", path);
        return -1;
    }
    return 0;
}

void rp_pid_release(void)
{
    if (pid_fd >= 0)
        close(pid_fd);
    pid_fd = -1;
}

/* Whether the kernel moves pending connections of a closing reuseport socket to its peers. */
static int migrate_req_on(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v == 1;
}

static void reload(void)
{
    char err[2048];
    rp_log_error(RP_LOG_NOTICE, 0, "reloading configuration from %s", conf_path);
    rp_cycle_t *fresh = rp_cycle_load(conf_prefix, conf_path, err, sizeof(err));
    if (fresh == NULL) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        rp_log_error(RP_LOG_ERR, 0, "reload failed: the previous configuration keeps serving");
        return;
    }
    if (nold == sizeof(old_cycles) / sizeof(old_cycles[0])) {
        rp_log_error(RP_LOG_ERR, 0, "reload refused: too many generations still draining");
        rp_cycle_destroy(fresh);
        return;
    }
    /* Files, zones (kept when unchanged) and sockets (taken over) of the new generation. */
    rp_core_conf_t *ccf = rp_core_conf(fresh);
    rp_core_conf_t *old = rp_core_conf(current);
    if (strcmp(ccf->pid, old->pid) != 0 && rp_pid_lock(ccf->pid, err, sizeof(err)) != 0) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        rp_log_error(RP_LOG_ERR, 0, "reload failed: the previous configuration keeps serving");
        rp_cycle_destroy(fresh);
        return;
    }
    if (rp_modules_init_master(fresh, current, 0, err, sizeof(err)) != 0) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        rp_log_error(RP_LOG_ERR, 0, "reload failed: the previous configuration keeps serving");
        if (strcmp(ccf->pid, old->pid) != 0)
            rp_pid_lock(old->pid, err, sizeof(err)); /* back to the file still in use */
        rp_cycle_destroy(fresh);
        return;
    }
    if (ccf->worker_processes < rp_core_conf(current)->worker_processes && !migrate_req_on())
        rp_log_error(RP_LOG_NOTICE, 0,
                     "fewer workers: handshakes still in progress on the sockets being removed "
                     "may be reset; set net.ipv4.tcp_migrate_req=1 to have the kernel move them");
    rp_cycle_apply_limits(fresh);
    rp_cycle_apply_log(current, fresh);
    if (strcmp(ccf->pid, old->pid) != 0) {
        rp_pid_write(ccf->pid);
        unlink(old->pid);
    }

    fresh->generation = current->generation + 1;
    rp_cycle_t *prev = current;
    current = fresh;
    /* Close the sockets the new generation did not take over before forking it: a new child
     * would otherwise inherit them, keep them in the SO_REUSEPORT group after the old workers
     * exit, and the kernel would queue connections on them that nobody accepts. The old
     * workers hold their own copies until they drain. */
    rp_modules_stop_master(prev);
    start_generation(fresh);

    /* The old generation drains; sockets it alone still holds close with it. */
    signal_generation(prev, SIGQUIT, 1);
    old_cycles[nold++] = prev;
    rp_log_error(RP_LOG_NOTICE, 0, "configuration reloaded (generation %u)", fresh->generation);
}

static void oldbin_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s.oldbin", rp_core_conf(current)->pid);
}

/* USR2: a new master from the binary's path, with our sockets and zones. */
static void upgrade_binary(void)
{
    if (new_binary) {
        rp_log_error(RP_LOG_ERR, 0,
                     "binary upgrade refused: the new master %d started by the last one still "
                     "runs (QUIT it, or QUIT this one)",
                     (int)new_binary);
        return;
    }
    pid_t parent = rp_upgrade_parent();
    if (parent > 1 && getppid() == parent) {
        rp_log_error(RP_LOG_ERR, 0,
                     "binary upgrade refused: the old master %d still runs (QUIT it first)",
                     (int)parent);
        return;
    }
    const char *pid = rp_core_conf(current)->pid;
    char oldbin[4200];
    oldbin_path(oldbin, sizeof(oldbin));
    if (rename(pid, oldbin) != 0) {
        rp_log_error(RP_LOG_ALERT, errno, "binary upgrade refused: rename(\"%s\", \"%s\") failed",
                     pid, oldbin);
        return;
    }
    pid_t child = rp_upgrade_start(current);
    if (child < 0) {
        rename(oldbin, pid);
        return;
    }
    new_binary = child;
    pid_oldbin = 1;
}

/* The master USR2 started has exited: ours again, the pid file and, after WINCH, the
 * traffic. */
static void upgrade_ended(int status, int stopping)
{
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    rp_log_error(clean ? RP_LOG_NOTICE : RP_LOG_ALERT, 0,
                 "the new binary's master %d exited %s %d: this one goes on", (int)new_binary,
                 WIFSIGNALED(status) ? "on signal" : "with code",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    new_binary = 0;
    if (pid_oldbin) {
        char oldbin[4200];
        oldbin_path(oldbin, sizeof(oldbin));
        if (rename(oldbin, rp_core_conf(current)->pid) != 0)
            rp_log_error(RP_LOG_ALERT, errno, "rename(\"%s\", \"%s\") failed", oldbin,
                         rp_core_conf(current)->pid);
        pid_oldbin = 0;
    }
    if (winched && !stopping) {
        winched = 0;
        start_generation(current);
    }
}

/* WINCH: the workers stop gracefully; the sockets stay open here for a rollback. */
static void winch(void)
{
    if (winched)
        return;
    if (new_binary == 0)
        rp_log_error(RP_LOG_WARN, 0, "WINCH without a new binary: nothing serves until HUP");
    rp_log_error(RP_LOG_NOTICE, 0, "gracefully shutting down the worker processes");
    winched = 1;
    signal_generation(NULL, SIGQUIT, 1);
}

/* HUP after WINCH: the workers of the current configuration again, without a reload. */
static void unwinch(void)
{
    winched = 0;
    rp_log_error(RP_LOG_NOTICE, 0, "starting the worker processes again");
    start_generation(current);
}

int rp_master_run(rp_cycle_t *cycle, const char *prefix, const char *conf_file)
{
    master_pid = getpid();
    current = cycle;
    conf_prefix = prefix;
    conf_path = conf_file;

    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGCHLD, SIGWINCH, SIGUSR2};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (rp_pid_write(rp_core_conf(cycle)->pid) != 0)
        return 1;
    start_generation(cycle);

    int stopping = 0; /* SIGQUIT or SIGTERM: children told, waiting for them */
    double deadline = 0;

    for (;;) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        siginfo_t info;
        int sig = sigtimedwait(&set, &info, &tick);

        switch (sig) {
        case SIGCHLD:
            break; /* reaped below */
        case SIGHUP:
            if (!stopping && winched)
                unwinch();
            else if (!stopping)
                reload();
            break;
        case SIGUSR2:
            if (!stopping)
                upgrade_binary();
            break;
        case SIGWINCH:
            if (!stopping)
                winch();
            break;
        case SIGQUIT:
            if (!stopping) {
                rp_log_error(RP_LOG_NOTICE, 0, "graceful shutdown requested");
                stopping = SIGQUIT;
                signal_generation(NULL, SIGQUIT, 1);
                rp_modules_stop_master(current); /* refuse new connections now */
                deadline = now_s() + (double)rp_core_conf(current)->worker_shutdown_timeout / 1000 +
                           5;
            }
            break;
        case SIGTERM:
        case SIGINT:
            if (stopping != SIGTERM) {
                rp_log_error(RP_LOG_NOTICE, 0, "fast shutdown requested");
                stopping = SIGTERM;
                signal_generation(NULL, SIGTERM, 1);
                rp_modules_stop_master(current);
                deadline = now_s() + 5;
            }
            break;
        case SIGUSR1:
            rp_log_reopen();
            rp_modules_reopen(current);
            signal_generation(NULL, SIGUSR1, 0);
            break;
        default:
            break;
        }

        reap(stopping);
        if (!stopping && !winched)
            run_pending_respawns();
        free_finished_generations();

        /* Workers enforce worker_shutdown_timeout themselves; one that is stuck is killed. */
        double now = now_s();
        for (int i = 0; i < MAX_PROCS; i++) {
            if (procs[i].pid && procs[i].exiting && procs[i].kill_at > 0 && now > procs[i].kill_at) {
                rp_log_error(RP_LOG_ALERT, 0, "%s process %d did not drain in time: killing it",
                             kind_name(procs[i].kind), (int)procs[i].pid);
                kill(procs[i].pid, SIGKILL);
                procs[i].kill_at = 0;
            }
        }

        if (stopping) {
            if (live_count(NULL) == 0)
                break;
            if (now_s() > deadline) {
                rp_log_error(RP_LOG_ALERT, 0, "children did not exit in time: killing them");
                signal_generation(NULL, SIGKILL, 1);
                deadline = now_s() + 5;
            }
        }
    }

    rp_modules_stop_master(current);
    if (pid_oldbin) {
        char oldbin[4200];
        oldbin_path(oldbin, sizeof(oldbin));
        unlink(oldbin); /* the pid file is the new master's */
    } else {
        unlink(rp_core_conf(current)->pid);
    }
    rp_log_error(RP_LOG_NOTICE, 0, "exiting");
    return 0;
}
