/*
 * The core module: directives of the main context that shape the process
 * model (worker_processes, daemon, master_process, worker_shutdown_timeout,
 * worker_rlimit_nofile), where the pid file and error log go, the `events`
 * block, and `include`, which is allowed everywhere.
 */
#include "core/cycle.h"
#include "core/log.h"

#include "core/process.h"

#include <errno.h>
#include <fcntl.h>
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
    c->error_log = strcmp(path, "stderr") == 0 ? NULL : rp_conf_full_path(cf, path);
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
    if (!(flags & RP_INIT_TEST) || c->error_log == NULL)
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
