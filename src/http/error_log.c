/*
 * `error_log FILE|stderr|syslog:... [LEVEL]` in http, server and location, as nginx
 * has it: the messages logged while a request of that level is handled go to that
 * level's logs (every error_log line of the level, each at its own threshold) and
 * only there; a level without any inherits its parent's, and a request whose levels
 * set none logs to the main context's error_log, which also keeps the process's
 * own messages.
 *
 * A request's log is made current (rp_log_current, core/log.h) by the few places
 * through which its work enters from the event loop: the phase runner, the
 * request's timers and its end (http/phases.c), and the events of its upstream
 * connection (upstream/upstream.c). Everything they call logs there without being
 * told.
 *
 * Files belong to a configuration generation and are shared by every error_log of
 * it that names the same path: the master opens them before forking, the workers
 * inherit them, and USR1 makes each process reopen its own (as the main error log
 * and the access logs are handled).
 */
#include "http/error_log.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "core/syslog.h"
#include "http/request.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct el_file_s el_file_t;

struct el_file_s {
    rp_log_file_t f; /* first: sinks point at it */
    const char *file;
    unsigned line;
    const rp_cycle_t *cycle;
    unsigned linked : 1;
    el_file_t *prev, *next; /* this process's open files */
};

typedef struct {
    rp_array_t files; /* el_file_t * */
} el_main_conf_t;

typedef struct {
    rp_log_t *log; /* NULL: the parent's, or the main log */
} el_loc_conf_t;

static el_file_t *open_files;

static el_main_conf_t *main_conf(const rp_cycle_t *cycle)
{
    return cycle->main_conf[rp_http_error_log_module.index];
}

const rp_log_t *rp_http_error_log(const rp_request_t *r)
{
    if (r == NULL || r->loc_conf == NULL)
        return NULL;
    const el_loc_conf_t *lc = r->loc_conf[rp_http_error_log_module.index];
    return lc ? lc->log : NULL;
}

/* ---- files of the process ---- */

static void link_file(el_file_t *f)
{
    f->prev = NULL;
    f->next = open_files;
    if (open_files)
        open_files->prev = f;
    open_files = f;
    f->linked = 1;
}

static void close_file(el_file_t *f)
{
    if (f->f.fd >= 0)
        close(f->f.fd);
    f->f.fd = -1;
    if (!f->linked)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else
        open_files = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->linked = 0;
}

static void file_cleanup(void *data)
{
    close_file(data);
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        rp_log_give(fd); /* the workers reopen it after a rotation */
    return fd;
}

static int el_init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                          size_t errlen)
{
    el_main_conf_t *mc = main_conf(cycle);
    if (mc == NULL)
        return 0;
    for (size_t i = 0; i < mc->files.nelts; i++) {
        el_file_t *f = RP_ARRAY_AT(&mc->files, el_file_t *, i);
        if (f->f.fd >= 0)
            continue;
        rp_mkdir_parent(f->f.path);
        f->f.fd = open_path(f->f.path);
        if (f->f.fd < 0) {
            snprintf(err, errlen, "%s:%u: \"error_log\": cannot open \"%s\": %s", f->file, f->line,
                     f->f.path, strerror(errno));
            return -1;
        }
        link_file(f);
    }
    return 0;
}

static void el_reopen(rp_cycle_t *cycle)
{
    for (el_file_t *f = open_files; f; f = f->next) {
        int fd = open_path(f->f.path);
        if (fd < 0) {
            rp_log_error(RP_LOG_ALERT, errno, "reopening \"%s\" failed", f->f.path);
            continue;
        }
        close(f->f.fd);
        f->f.fd = fd;
    }
}

/* In a child after fork: the files of other generations (all, for the helper) close. */
static void keep_only(const rp_cycle_t *cycle)
{
    el_file_t *f = open_files;
    while (f) {
        el_file_t *next = f->next;
        if (f->cycle != cycle)
            close_file(f);
        f = next;
    }
}

static int el_init_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind != RP_PROCESS_SINGLE)
        keep_only(cycle);
    return 0;
}

static int el_init_helper(rp_cycle_t *cycle)
{
    keep_only(NULL);
    return 0;
}

/* ---- configuration ---- */

static void *create_main(rp_conf_t *cf)
{
    el_main_conf_t *mc = rp_arena_calloc(cf->arena, sizeof(*mc));
    rp_array_init(&mc->files, cf->arena, 2, sizeof(el_file_t *));
    return mc;
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(el_loc_conf_t));
}

static rp_log_file_t *get_file(rp_conf_t *cf, el_main_conf_t *mc, const char *path)
{
    for (size_t i = 0; i < mc->files.nelts; i++) {
        el_file_t *f = RP_ARRAY_AT(&mc->files, el_file_t *, i);
        if (strcmp(f->f.path, path) == 0)
            return &f->f;
    }
    el_file_t *f = rp_arena_calloc(cf->arena, sizeof(*f));
    f->f.path = path;
    f->f.fd = -1;
    f->file = cf->file;
    f->line = cf->line;
    f->cycle = cf->cycle;
    rp_arena_cleanup(cf->arena, file_cleanup, f);
    *(el_file_t **)rp_array_push(&mc->files) = f;
    return &f->f;
}

static void syslog_cleanup(void *data)
{
    rp_syslog_close(data);
}

static const char *set_error_log(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    el_loc_conf_t *lc = conf;
    const char *path = cf->argv[1];
    rp_log_sink_t sink = {.level = RP_LOG_ERR};
    if (cf->argc > 2 && rp_log_level_parse(cf->argv[2], &sink.level) != 0)
        return rp_conf_error(cf, "invalid log level \"%s\"", cf->argv[2]);
    if (strncmp(path, "syslog:", 7) == 0) {
        char err[256];
        sink.syslog = rp_arena_calloc(cf->arena, sizeof(rp_syslog_t));
        if (rp_syslog_parse(path + 7, sink.syslog, err, sizeof(err)) != 0)
            return rp_conf_error(cf, "%s", err);
        rp_arena_cleanup(cf->arena, syslog_cleanup, sink.syslog);
    } else if (strcmp(path, "stderr") != 0) {
        sink.file = get_file(cf, main_conf(cf->cycle), rp_conf_full_path(cf, path));
    }

    /* Several lines at one level all log: the level's array grows by one. */
    rp_log_t *log = lc->log;
    if (log == NULL) {
        log = lc->log = rp_arena_calloc(cf->arena, sizeof(*log));
        log->max_level = -1;
    }
    rp_log_sink_t *sinks = rp_arena_alloc(cf->arena, (log->nsinks + 1) * sizeof(*sinks));
    if (log->nsinks)
        memcpy(sinks, log->sinks, log->nsinks * sizeof(*sinks));
    sinks[log->nsinks++] = sink;
    log->sinks = sinks;
    if (sink.level > log->max_level)
        log->max_level = sink.level;
    return RP_CONF_OK;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    el_loc_conf_t *p = parent, *c = child;
    if (c->log == NULL)
        c->log = p->log;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"error_log", RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION, 0, 1, 2, set_error_log,
     RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_error_log_module = {
    .name = "http_error_log",
    .commands = commands,
    .init_master = el_init_master,
    .reopen = el_reopen,
    .init_worker = el_init_worker,
    .init_helper = el_init_helper,
    .create_main = create_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
};
