/*
 * Command line and startup: find the prefix and configuration, test or print
 * it (-t, -T), signal a running master (-s), or start serving.
 */
#include "config.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "rp_paths.h" /* RP_CONF_PATH: written by make from the configured paths */
#include "core/upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <nghttp2/nghttp2ver.h>
#include <openssl/opensslv.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: rampart [-hvVtTq] [-s signal] [-p prefix] [-c filename]\n"
            "\n"
            "Options:\n"
            "  -h            this help\n"
            "  -v            show version and exit\n"
            "  -V            show version and build details and exit\n"
            "  -t            test the configuration and exit\n"
            "  -T            test the configuration, print it and exit\n"
            "  -q            quiet: only errors while testing the configuration\n"
            "  -s signal     send a signal to the master: stop, quit, reload, reopen\n"
            "  -p prefix     set the prefix path (default: the current directory)\n"
            "  -c filename   set the configuration file (default: %s)\n",
            RP_CONF_PATH);
}

static int send_signal(rp_cycle_t *cycle, const char *name)
{
    int sig;
    if (strcmp(name, "stop") == 0)
        sig = SIGTERM;
    else if (strcmp(name, "quit") == 0)
        sig = SIGQUIT;
    else if (strcmp(name, "reload") == 0)
        sig = SIGHUP;
    else if (strcmp(name, "reopen") == 0)
        sig = SIGUSR1;
    else {
        fprintf(stderr, "rampart: invalid signal \"%s\": use stop, quit, reload or reopen\n", name);
        return 1;
    }
    const char *path = rp_core_conf(cycle)->pid;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "rampart: cannot open pid file \"%s\": %s (is rampart running?)\n", path,
                strerror(errno));
        return 1;
    }
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid) == 1 && pid > 1;
    fclose(f);
    if (!ok) {
        fprintf(stderr, "rampart: invalid pid in \"%s\"\n", path);
        return 1;
    }
    if (kill((pid_t)pid, sig) != 0) {
        fprintf(stderr, "rampart: kill(%ld, %s) failed: %s\n", pid, name, strerror(errno));
        return 1;
    }
    return 0;
}

/*
 * Goes into the background. The first process exits only once the daemon has written
 * its pid file (daemon_ready): a service manager following the pid file (systemd's
 * Type=forking) reads it as soon as the first process exits.
 */
static int ready_fd = -1;

static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char c;
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
            ;
        _exit(n == 1 ? 0 : 1);
    }
    close(p[0]);
    ready_fd = p[1];
    if (setsid() < 0)
        return -1;
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return -1;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
    return 0;
}

/* The daemon's pid file holds its pid: the first process may exit (0). */
static void daemon_ready(const char *pid_path)
{
    if (ready_fd < 0)
        return;
    if (rp_pid_write(pid_path) == 0 && write(ready_fd, "1", 1) != 1)
        rp_log_error(RP_LOG_ALERT, errno, "cannot tell the starting process rampart runs");
    close(ready_fd);
    ready_fd = -1;
}

static const char *single_pid_path;
static pid_t single_pid;

static void remove_single_pid(void)
{
    if (getpid() == single_pid)
        unlink(single_pid_path);
}

/* master_process off: the single process serves, for debugging under gdb or valgrind. It
 * still writes the pid file, so rampart -s finds it. */
static int run_single(rp_cycle_t *cycle)
{
    const char *path = rp_core_conf(cycle)->pid;
    if (rp_pid_write(path) != 0)
        return 1;
    single_pid_path = path;
    single_pid = getpid();
    atexit(remove_single_pid);
    rp_worker_run(cycle, 0, 0);
}

int main(int argc, char **argv)
{
    const char *prefix = NULL, *conf = RP_CONF_PATH, *sig = NULL;
    int test = 0, dump = 0, quiet = 0;
    int opt;

    while ((opt = getopt(argc, argv, "hvVtTqs:p:c:")) != -1) {
        switch (opt) {
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("rampart version: rampart/%s\n", PACKAGE_VERSION);
            return 0;
        case 'V':
            printf("rampart version: rampart/%s\n", PACKAGE_VERSION);
            printf("built with libevent %s, nghttp2 %s, %s\n", event_get_version(),
                   NGHTTP2_VERSION, OPENSSL_VERSION_TEXT);
            printf("default configuration: %s\n", RP_CONF_PATH);
            return 0;
        case 't':
            test = 1;
            break;
        case 'T':
            test = dump = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 's':
            sig = optarg;
            break;
        case 'p':
            prefix = optarg;
            break;
        case 'c':
            conf = optarg;
            break;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rampart: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    /* before the configuration is loaded: inherited segments go back to their addresses */
    if (!test && !sig)
        rp_upgrade_init(argc, argv);

    char cwd[PATH_MAX];
    if (prefix == NULL) {
        if (getcwd(cwd, sizeof(cwd)) == NULL) {
            fprintf(stderr, "rampart: getcwd() failed: %s\n", strerror(errno));
            return 1;
        }
        prefix = cwd;
    }
    /* -c is relative to the directory rampart was started in when no -p was given. */
    char err[2048];
    rp_cycle_t *cycle = rp_cycle_load(prefix, conf, err, sizeof(err));
    if (cycle == NULL) {
        fprintf(stderr, "rampart: %s\n", err);
        if (test)
            fprintf(stderr, "rampart: configuration file %s%s%s test failed\n",
                    conf[0] == '/' ? "" : prefix, conf[0] == '/' ? "" : "/", conf);
        return 1;
    }
    if (test) {
        /* open what a start would open (logs), bind and map nothing, as nginx -t */
        if (rp_modules_init_master(cycle, NULL, RP_INIT_TEST, err, sizeof(err)) != 0) {
            fprintf(stderr, "rampart: %s\n", err);
            fprintf(stderr, "rampart: configuration file %s test failed\n", cycle->conf_file);
            rp_cycle_destroy(cycle);
            return 1;
        }
        if (!quiet) {
            fprintf(stderr, "rampart: the configuration file %s syntax is ok\n",
                    cycle->conf_file);
            fprintf(stderr, "rampart: configuration file %s test is successful\n",
                    cycle->conf_file);
        }
        if (dump)
            rp_cycle_dump(cycle, 1);
        rp_cycle_destroy(cycle);
        return 0;
    }
    if (sig) {
        int rc = send_signal(cycle, sig);
        rp_cycle_destroy(cycle);
        return rc;
    }

    rp_core_conf_t *ccf = rp_core_conf(cycle);
    if (ccf->error_log && strncmp(ccf->error_log, "syslog:", 7) != 0)
        rp_mkdir_parent(ccf->error_log);
    if (rp_log_open(ccf->error_log, ccf->error_log_level) != 0) {
        fprintf(stderr, "rampart: cannot open error log \"%s\": %s\n", ccf->error_log,
                strerror(errno));
        rp_cycle_destroy(cycle);
        return 1;
    }
    /* Before anything is bound: SO_REUSEPORT would let a second instance bind beside the
     * first and take half its connections. */
    if (rp_pid_lock(ccf->pid, err, sizeof(err)) != 0) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        if (ccf->error_log)
            fprintf(stderr, "rampart: %s\n", err);
        rp_cycle_destroy(cycle);
        return 1;
    }
    rp_cycle_apply_limits(cycle);
    if (rp_modules_init_master(cycle, NULL, ccf->master_process ? 0 : RP_INIT_SINGLE, err,
                               sizeof(err)) != 0) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        if (ccf->error_log)
            fprintf(stderr, "rampart: %s\n", err);
        unlink(ccf->pid); /* ours: it is locked */
        rp_cycle_destroy(cycle);
        return 1;
    }
    /* a master started by a binary upgrade stays the old master's child, as nginx's: the
     * old one learns of its exit */
    if (ccf->daemon && rp_upgrade_parent() == 0 && daemonize() != 0) {
        rp_log_error(RP_LOG_EMERG, errno, "daemon() failed");
        return 1;
    }
    daemon_ready(ccf->pid);
    if (!ccf->master_process) {
        rp_worker_enable_reload(prefix, conf);
        return run_single(cycle);
    }
    return rp_master_run(cycle, prefix, conf);
}
