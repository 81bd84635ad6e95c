/*
 * The core module: directives of the main context that shape the process
 * model (worker_processes, daemon, master_process, worker_shutdown_timeout,
 * worker_rlimit_nofile), where the pid file and error log go, the `events`
 * block, and `include`, which is allowed everywhere. The directives that shape a
 * worker's process (user, worker_priority, worker_cpu_affinity) are parsed here and
 * applied by process_setup.c.
 */
#include "core/syslog.h"
#include "core/cycle.h"
#include "core/log.h"

#include "core/process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *rp_conf_include(rp_conf_t *cf, const rp_command_t *cmd, void *conf);

static void *create_main(rp_conf_t *cf)
{
    rp_core_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->worker_processes = RP_CONF_UNSET;
    c->daemon = RP_CONF_UNSET;
    c->master_process = RP_CONF_UNSET;
    c->error_log_level = RP_CONF_UNSET;
    c->worker_shutdown_timeout = RP_CONF_UNSET_MSEC;
    c->worker_connections = RP_CONF_UNSET;
    c->worker_rlimit_nofile = RP_CONF_UNSET;
    c->worker_priority = RP_CONF_UNSET;
    return c;
}

static const char *init_main(rp_conf_t *cf, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->worker_processes == RP_CONF_UNSET)
        c->worker_processes = 1;
    if (c->daemon == RP_CONF_UNSET)
        c->daemon = 0;
    if (c->master_process == RP_CONF_UNSET)
        c->master_process = 1;
    if (c->pid == NULL)
        c->pid = rp_conf_full_path(cf, "logs/rampart.pid");
    if (c->error_log_level == RP_CONF_UNSET) {
        /* stderr in the foreground; a daemon has no stderr, so it logs to a file. */
        c->error_log_level = RP_LOG_ERR;
        if (c->daemon)
            c->error_log = rp_conf_full_path(cf, "logs/error.log");
    }
    if (c->worker_shutdown_timeout == RP_CONF_UNSET_MSEC)
        c->worker_shutdown_timeout = 30000;
    if (c->worker_connections == RP_CONF_UNSET)
        c->worker_connections = 1024;
    if (c->cpu_affinity && !c->cpu_affinity_auto && c->cpu_affinity_n > 1 &&
        c->cpu_affinity_n != c->worker_processes)
        rp_log_error(RP_LOG_WARN, 0,
                     "the number of worker_processes (%d) is not equal to the number of "
                     "worker_cpu_affinity masks (%d): the last mask serves the workers after it",
                     c->worker_processes, c->cpu_affinity_n);
    return RP_CONF_OK;
}

/*
 * user USER [GROUP]: resolved now, so that a name that does not exist fails the
 * configuration test rather than a worker's start. Only a master running as root can
 * change its workers' user; otherwise the directive is ignored with a warning, as nginx.
 * Without GROUP the workers take USER's primary group (nobody: nogroup on Debian).
 */
static const char *set_user(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->user_name)
        return "duplicate directive";
    if (geteuid() != 0) {
        rp_conf_warn(cf, "the master process does not run as root, ignored");
        c->user_name = ""; /* seen, for the duplicate check; applies nothing */
        return RP_CONF_OK;
    }
    struct passwd *pw = getpwnam(cf->argv[1]);
    if (pw == NULL)
        return rp_conf_error(cf, "unknown user \"%s\"", cf->argv[1]);
    c->user_uid = pw->pw_uid;
    c->user_gid = pw->pw_gid;
    if (cf->argc > 2) {
        struct group *gr = getgrnam(cf->argv[2]);
        if (gr == NULL)
            return rp_conf_error(cf, "unknown group \"%s\"", cf->argv[2]);
        c->user_gid = gr->gr_gid;
    }
    c->user_name = rp_arena_strdup(cf->arena, cf->argv[1]);
    return RP_CONF_OK;
}

/* worker_priority N: a nice value, -20 (most favoured) to 20, as setpriority(2). */
static const char *set_worker_priority(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->worker_priority != RP_CONF_UNSET)
        return "duplicate directive";
    const char *v = cf->argv[1];
    int neg = v[0] == '-';
    long n;
    if (rp_parse_int(v + (neg || v[0] == '+'), 20, &n) != 0)
        return rp_conf_error(cf, "invalid priority \"%s\", it must be a number from -20 to 20", v);
    c->worker_priority = (int)(neg ? -n : n);
    return RP_CONF_OK;
}

/* One mask of worker_cpu_affinity: binary digits, the rightmost one CPU 0, as nginx. */
static const char *parse_cpu_mask(rp_conf_t *cf, const char *s, cpu_set_t *set)
{
    size_t len = strlen(s);
    CPU_ZERO(set);
    if (len == 0 || len > CPU_SETSIZE)
        return rp_conf_error(cf, "invalid mask \"%s\", it must be 1 to %d binary digits", s,
                             CPU_SETSIZE);
    for (size_t i = 0; i < len; i++) {
        char ch = s[len - 1 - i];
        if (ch != '0' && ch != '1')
            return rp_conf_error(cf, "invalid character \"%c\" in mask \"%s\", only 0 and 1 "
                                     "are allowed",
                                 ch, s);
        if (ch == '1')
            CPU_SET(i, set);
    }
    if (CPU_COUNT(set) == 0)
        return rp_conf_error(cf, "mask \"%s\" names no CPU", s);
    return RP_CONF_OK;
}

/*
 * worker_cpu_affinity MASK...: worker i runs on mask i (the last mask for the workers
 * after the last one). worker_cpu_affinity auto [MASK]: worker i runs on the (i mod n)th
 * of the n CPUs of MASK, by default those the master may run on.
 */
static const char *set_cpu_affinity(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->cpu_affinity)
        return "duplicate directive";
    size_t i = 1;
    if (strcmp(cf->argv[1], "auto") == 0) {
        if (cf->argc > 3)
            return rp_conf_error(cf, "\"auto\" takes at most one mask");
        c->cpu_affinity_auto = 1;
        i = 2;
    }
    int n = c->cpu_affinity_auto ? 1 : (int)cf->argc - 1;
    c->cpu_affinity = rp_arena_calloc(cf->arena, sizeof(cpu_set_t) * (size_t)n);
    c->cpu_affinity_n = n;
    if (c->cpu_affinity_auto && cf->argc == 2) {
        if (sched_getaffinity(0, sizeof(cpu_set_t), &c->cpu_affinity[0]) != 0) {
            long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            for (long k = 0; k < (ncpu > 0 ? ncpu : 1) && k < CPU_SETSIZE; k++)
                CPU_SET(k, &c->cpu_affinity[0]);
        }
        return RP_CONF_OK;
    }
    for (int k = 0; i < cf->argc; i++, k++) {
        const char *rv = parse_cpu_mask(cf, cf->argv[i], &c->cpu_affinity[k]);
        if (rv != RP_CONF_OK)
            return rv;
    }
    return RP_CONF_OK;
}

static const char *set_worker_processes(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->worker_processes != RP_CONF_UNSET)
        return "duplicate directive";
    if (strcmp(cf->argv[1], "auto") == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->worker_processes = n > 0 ? (int)n : 1;
        return RP_CONF_OK;
    }
    long v;
    if (rp_parse_int(cf->argv[1], 1024, &v) != 0 || v < 1)
        return rp_conf_error(cf, "invalid value \"%s\", it must be \"auto\" or a number from 1 "
                                 "to 1024",
                             cf->argv[1]);
    c->worker_processes = (int)v;
    return RP_CONF_OK;
}

static const char *set_error_log(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->error_log_level != RP_CONF_UNSET)
        return "duplicate directive";
    const char *path = cf->argv[1];
    if (strncmp(path, "syslog:", 7) == 0) {
        rp_syslog_t s;
        char err[256];
        if (rp_syslog_parse(path + 7, &s, err, sizeof(err)) != 0)
            return rp_conf_error(cf, "%s", err);
        c->error_log = rp_arena_strndup(cf->arena, path, strlen(path)); /* no prefix */
    } else {
        c->error_log = strcmp(path, "stderr") == 0 ? NULL : rp_conf_full_path(cf, path);
    }
    c->error_log_level = RP_LOG_ERR;
    c->error_log_file = cf->file;
    c->error_log_line = cf->line;
    if (cf->argc > 2 && rp_log_level_parse(cf->argv[2], &c->error_log_level) != 0)
        return rp_conf_error(cf, "invalid log level \"%s\", it must be one of debug, info, notice, "
                                 "warn, error, crit, alert, emerg",
                             cf->argv[2]);
    return RP_CONF_OK;
}

static const char *set_events(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_core_conf_t *c = conf;
    if (c->events_seen++)
        return "duplicate directive";
    return rp_conf_parse_block(cf, RP_CTX_EVENTS);
}

static const char *set_worker_connections(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *rv = rp_conf_set_num(cf, cmd, conf);
    if (rv == RP_CONF_OK && ((rp_core_conf_t *)conf)->worker_connections < 1)
        return "it must be at least 1";
    return rv;
}

static const char *set_rlimit(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return rp_conf_set_num(cf, cmd, conf);
}

static const rp_command_t commands[] = {
    {"include", RP_CTX_ANY, 0, 1, 1, rp_conf_include, RP_CONF_MAIN, 0, NULL},
    {"worker_processes", RP_CTX_MAIN, 0, 1, 1, set_worker_processes, RP_CONF_MAIN, 0, NULL},
    {"daemon", RP_CTX_MAIN, 0, 1, 1, rp_conf_set_flag, RP_CONF_MAIN,
     offsetof(rp_core_conf_t, daemon), NULL},
    {"master_process", RP_CTX_MAIN, 0, 1, 1, rp_conf_set_flag, RP_CONF_MAIN,
     offsetof(rp_core_conf_t, master_process), NULL},
    {"pid", RP_CTX_MAIN, 0, 1, 1, rp_conf_set_path, RP_CONF_MAIN, offsetof(rp_core_conf_t, pid),
     NULL},
    {"error_log", RP_CTX_MAIN, 0, 1, 2, set_error_log, RP_CONF_MAIN, 0, NULL},
    {"worker_shutdown_timeout", RP_CTX_MAIN, 0, 1, 1, rp_conf_set_msec, RP_CONF_MAIN,
     offsetof(rp_core_conf_t, worker_shutdown_timeout), NULL},
    {"worker_rlimit_nofile", RP_CTX_MAIN, 0, 1, 1, set_rlimit, RP_CONF_MAIN,
     offsetof(rp_core_conf_t, worker_rlimit_nofile), NULL},
    {"user", RP_CTX_MAIN, 0, 1, 2, set_user, RP_CONF_MAIN, 0, NULL},
    {"worker_priority", RP_CTX_MAIN, 0, 1, 1, set_worker_priority, RP_CONF_MAIN, 0, NULL},
    {"worker_cpu_affinity", RP_CTX_MAIN, 0, 1, RP_ARGS_ANY, set_cpu_affinity, RP_CONF_MAIN, 0, NULL},
    {"events", RP_CTX_MAIN, RP_CMD_BLOCK, 0, 0, set_events, RP_CONF_MAIN, 0, NULL},
    {"worker_connections", RP_CTX_EVENTS, 0, 1, 1, set_worker_connections, RP_CONF_MAIN,
     offsetof(rp_core_conf_t, worker_connections), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

/* rampart -t: the error log must open as it will at the start (which opens it itself,
 * before anything else, to have somewhere to report). */
static int init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen)
{
    rp_core_conf_t *c = rp_core_conf(cycle);
    if (!(flags & RP_INIT_TEST)) /* the logs this generation opens go to its workers' user */
        rp_log_set_owner(c->user_name && c->user_name[0] ? c->user_uid : (uid_t)-1);
    if (!(flags & RP_INIT_TEST) || c->error_log == NULL ||
        strncmp(c->error_log, "syslog:", 7) == 0)
        return 0;
    rp_mkdir_parent(c->error_log);
    int fd = open(c->error_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (c->error_log_file)
            snprintf(err, errlen, "%s:%u: \"error_log\": cannot open \"%s\": %s",
                     c->error_log_file, c->error_log_line, c->error_log, strerror(errno));
        else
            snprintf(err, errlen, "cannot open error log \"%s\": %s", c->error_log,
                     strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

rp_module_t rp_core_module = {
    .name = "core",
    .commands = commands,
    .create_main = create_main,
    .init_main = init_main,
    .init_master = init_master,
};
