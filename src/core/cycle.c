/*
 * Loading a configuration generation: let every module register what the
 * files may refer to (variables), create every module's main conf, parse the
 * files, let each module finish its configuration, then run the cross-module
 * postconfiguration hooks (routing tables, phase handlers, filters).
 */
#include "core/cycle.h"
#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

rp_cycle_t *rp_cycle_load(const char *prefix, const char *conf_file, char *err, size_t errlen)
{
    rp_modules_init();

    rp_arena_t *arena = rp_arena_create(16384);
    rp_cycle_t *cycle = rp_arena_calloc(arena, sizeof(*cycle));
    cycle->arena = arena;
    cycle->prefix = rp_arena_strdup(arena, prefix ? prefix : "");
    if (conf_file[0] == '/' || cycle->prefix[0] == '\0')
        cycle->conf_file = rp_arena_strdup(arena, conf_file);
    else
        cycle->conf_file = rp_arena_sprintf(arena, "%s/%s", cycle->prefix, conf_file);
    /* nginx's conf_prefix: the folder of the file, "" (the current one) when it names none */
    const char *slash = strrchr(cycle->conf_file, '/');
    if (slash == NULL)
        cycle->conf_prefix = "";
    else if (slash == cycle->conf_file)
        cycle->conf_prefix = "/";
    else
        cycle->conf_prefix =
            rp_arena_sprintf(arena, "%.*s", (int)(slash - cycle->conf_file), cycle->conf_file);
    cycle->main_conf = rp_arena_calloc(arena, rp_nmodules * sizeof(void *));
    rp_array_init(&cycle->files, arena, 4, sizeof(rp_conf_file_t));
    rp_array_init(&cycle->listening, arena, 4, sizeof(void *));
    rp_array_init(&cycle->shm_zones, arena, 4, sizeof(void *));
    rp_array_init(&cycle->vars, arena, 64, sizeof(void *));

    rp_conf_t *cf = rp_arena_calloc(arena, sizeof(*cf));
    cf->cycle = cycle;
    cf->arena = arena;
    cf->file = cycle->conf_file;

    for (size_t i = 0; i < rp_nmodules; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->preconfiguration) {
            const char *rv = m->preconfiguration(cf);
            if (rv != RP_CONF_OK) {
                if (rv != RP_CONF_ERROR)
                    snprintf(cf->error, sizeof(cf->error), "%s: %s", cycle->conf_file, rv);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < rp_nmodules; i++) {
        if (rp_modules[i]->create_main)
            cycle->main_conf[i] = rp_modules[i]->create_main(cf);
    }

    if (rp_conf_parse_file(cf, cycle->conf_file, RP_CTX_MAIN) != 0)
        goto fail;

    cf->argv = NULL;
    cf->file = cycle->conf_file;
    cf->line = 0;
    for (size_t i = 0; i < rp_nmodules; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->init_main) {
            const char *rv = m->init_main(cf, cycle->main_conf[i]);
            if (rv != RP_CONF_OK) {
                if (rv != RP_CONF_ERROR)
                    snprintf(cf->error, sizeof(cf->error), "%s: %s", cycle->conf_file, rv);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < rp_nmodules; i++) {
        const rp_module_t *m = rp_modules[i];
        if (m->postconfiguration) {
            const char *rv = m->postconfiguration(cf);
            if (rv != RP_CONF_OK) {
                if (rv != RP_CONF_ERROR)
                    snprintf(cf->error, sizeof(cf->error), "%s: %s", cycle->conf_file, rv);
                goto fail;
            }
        }
    }
    return cycle;

fail:
    snprintf(err, errlen, "%s", cf->error);
    rp_arena_destroy(arena);
    return NULL;
}

void rp_cycle_destroy(rp_cycle_t *cycle)
{
    if (cycle)
        rp_arena_destroy(cycle->arena);
}

rp_core_conf_t *rp_core_conf(const rp_cycle_t *cycle)
{
    return cycle->main_conf[rp_core_module.index];
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void rp_cycle_dump(const rp_cycle_t *cycle, int fd)
{
    for (size_t i = 0; i < cycle->files.nelts; i++) {
        const rp_conf_file_t *f = &RP_ARRAY_AT(&cycle->files, rp_conf_file_t, i);
        char head[4200];
        int n = snprintf(head, sizeof(head), "# configuration file %s:\n", f->path);
        write_all(fd, head, (size_t)n);
        write_all(fd, f->text, f->len);
        if (f->len == 0 || f->text[f->len - 1] != '\n')
            write_all(fd, "\n", 1);
        write_all(fd, "\n", 1);
    }
}

void rp_cycle_apply_limits(const rp_cycle_t *cycle)
{
    const rp_core_conf_t *ccf = rp_core_conf(cycle);
    if (ccf->worker_rlimit_nofile <= 0)
        return;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rl.rlim_cur = (rlim_t)ccf->worker_rlimit_nofile;
    /* Raise the hard limit only when needed (root): lowering it could never be undone. */
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
        rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rp_log_error(RP_LOG_ALERT, errno, "setrlimit(RLIMIT_NOFILE, %d) failed",
                     ccf->worker_rlimit_nofile);
}

void rp_cycle_apply_log(const rp_cycle_t *old, const rp_cycle_t *fresh)
{
    const rp_core_conf_t *o = rp_core_conf(old), *n = rp_core_conf(fresh);
    int same_file = (n->error_log == NULL) == (o->error_log == NULL) &&
                    (n->error_log == NULL || strcmp(n->error_log, o->error_log) == 0);
    if (same_file && n->error_log_level == o->error_log_level)
        return;
    if (rp_log_open(n->error_log, n->error_log_level) != 0)
        rp_log_error(RP_LOG_ALERT, errno, "cannot open error log \"%s\": keeping the old one",
                     n->error_log);
}
