/*
 * try_files FILE ... URI | =CODE | @name: in the precontent phase, the first FILE
 * that exists (an argument ending in "/" asks for a directory) becomes the URI the
 * content phase serves; when none does, the last argument decides: an internal
 * redirect to a URI (which may carry arguments), a status code, or a named
 * location. nginx's semantics, with its alias rules. The candidates are stat(2)ed
 * in the worker's file thread pool (file_io.c), all in one job, so a slow disk
 * never stalls the loop.
 */
#include "core/log.h"
#include "http/file_io.h"
#include "http/static.h"
#include "http/variables.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    rp_cv_t *names; /* the FILE arguments, without a directory's last "/" */
    unsigned char *dir;
    int nnames;
    rp_cv_t fallback; /* the last argument: a URI or @name */
    int code;         /* =CODE: 0 for none */
} tf_loc_t;

typedef struct {
    rp_request_t *r;
    rp_file_t *file;
    rp_str_t uris[RP_FILE_MAX_PROBES]; /* what each candidate makes the URI */
    int done;
} tf_ctx_t;

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(tf_loc_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf, (void)parent, (void)child; /* not inherited, as in nginx */
    return RP_CONF_OK;
}

static const char *set_try_files(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    tf_loc_t *t = conf;
    if (t->names)
        return "duplicate directive";
    int n = (int)cf->argc - 2;
    if (n >= RP_FILE_MAX_PROBES)
        return rp_conf_error(cf, "too many files in \"try_files\" (at most %d)",
                             RP_FILE_MAX_PROBES - 1);
    t->names = rp_arena_calloc(cf->arena, (size_t)(n ? n : 1) * sizeof(rp_cv_t));
    t->dir = rp_arena_calloc(cf->arena, (size_t)(n ? n : 1));
    t->nnames = n;
    for (int i = 0; i < n; i++) {
        char *v = rp_arena_strdup(cf->arena, cf->argv[i + 1]);
        size_t len = strlen(v);
        if (len == 0)
            return rp_conf_error(cf, "empty file in \"try_files\"");
        if (v[len - 1] == '/') {
            t->dir[i] = 1;
            v[len - 1] = '\0';
        }
        const char *err = rp_cv_compile(cf, v, &t->names[i]);
        if (err)
            return err == RP_CONF_ERROR ? err : rp_conf_error(cf, "%s", err);
    }
    const char *last = cf->argv[cf->argc - 1];
    if (last[0] == '=') {
        char *end;
        long code = strtol(last + 1, &end, 10);
        if (last[1] == '\0' || *end != '\0' || code < 0 || code > 999)
            return rp_conf_error(cf, "invalid code \"%s\"", last);
        t->code = (int)code;
        if (t->code == 0)
            return rp_conf_error(cf, "invalid code \"%s\"", last);
    } else {
        if (last[0] == '\0')
            return rp_conf_error(cf, "empty URI in \"try_files\"");
        const char *err = rp_cv_compile(cf, last, &t->fallback);
        if (err)
            return err == RP_CONF_ERROR ? err : rp_conf_error(cf, "%s", err);
    }
    rp_http_static_enable(cf->http_ctx->loc_conf[rp_http_static_module.index]);
    return RP_CONF_OK;
}

static int fallback(rp_request_t *r, const tf_loc_t *t)
{
    if (t->code) {
        rp_http_send_error(r, t->code);
        return RP_DONE;
    }
    rp_str_t v = t->fallback.has_vars ? rp_cv_eval(r, &t->fallback) : t->fallback.value;
    if (v.len && v.data[0] == '@')
        return rp_http_named_redirect(r, v);
    rp_str_t args = RP_NULL_STR;
    const char *q = memchr(v.data, '?', v.len);
    if (q) {
        args = (rp_str_t){q + 1, (size_t)(v.data + v.len - q - 1)};
        v.len = (size_t)(q - v.data);
    } /* else none: nginx drops the request's arguments (say $args to keep them) */
    return rp_http_internal_redirect(r, v, args);
}

static void tf_cleanup(rp_request_t *r, void *data)
{
    (void)r;
    tf_ctx_t *ctx = data;
    rp_file_free(ctx->file);
    ctx->file = NULL;
}

static void probe_done(rp_file_t *f)
{
    tf_ctx_t *ctx = f->data;
    rp_request_t *r = ctx->r;
    const tf_loc_t *t = rp_http_loc_conf(r, rp_http_try_files_module);
    ctx->done = 1;
    if (f->found >= 0) {
        if (rp_http_static_whole_alias(r)) {
            if (f->dir[f->found]) { /* nginx leaves the URI alone for a directory there */
                rp_http_resume(r);
                return;
            }
            rp_http_static_add_uri_to_alias(r);
        }
        r->uri = ctx->uris[f->found];
        rp_http_resume(r); /* the handler is called again and lets the phase go on */
        return;
    }
    int rc = fallback(r, t);
    (void)rc; /* a redirect resumes from the loop; an error page was sent */
}

static int try_files_handler(rp_request_t *r)
{
    const tf_loc_t *t = rp_http_loc_conf(r, rp_http_try_files_module);
    if (t->names == NULL)
        return RP_DECLINED;
    tf_ctx_t *ctx = rp_http_get_ctx(r, rp_http_try_files_module);
    if (ctx && ctx->done)
        return RP_DECLINED; /* found: the URI is set, the content phase serves it */
    if (t->nnames == 0)
        return fallback(r, t);

    ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    ctx->r = r;
    rp_str_t paths[RP_FILE_MAX_PROBES];
    size_t total = 0;
    int whole = rp_http_static_whole_alias(r);
    for (int i = 0; i < t->nnames; i++) {
        rp_str_t v = t->names[i].has_vars ? rp_cv_eval(r, &t->names[i]) : t->names[i].value;
        ctx->uris[i] = v;
        if (whole) {
            /* an alias with captures is the directory: the name is added to it */
            size_t rl;
            rp_str_t base = rp_http_static_map(r, r->uri, &rl);
            char *p = rp_arena_alloc(r->arena, base.len + v.len + 1);
            memcpy(p, base.data, base.len);
            memcpy(p + base.len, v.data, v.len);
            p[base.len + v.len] = '\0';
            paths[i] = (rp_str_t){p, base.len + v.len};
        } else {
            paths[i] = rp_http_static_map(r, v, NULL);
        }
        total += paths[i].len + 1;
    }
    ctx->file = rp_file_new(total);
    if (ctx->file == NULL)
        return RP_ERROR;
    rp_http_set_ctx(r, rp_http_try_files_module, ctx);
    rp_http_cleanup_add(r, tf_cleanup, ctx);
    rp_file_t *f = ctx->file;
    char *p = (char *)(f + 1);
    for (int i = 0; i < t->nnames; i++) {
        if (memchr(paths[i].data, '\0', paths[i].len)) {
            paths[i].len = 0; /* a NUL in a path: no file is named so */
        }
        memcpy(p, paths[i].data, paths[i].len);
        p[paths[i].len] = '\0';
        f->paths[i] = p;
        f->dir[i] = t->dir[i];
        p += paths[i].len + 1;
    }
    f->npaths = t->nnames;
    f->op = RP_FILE_PROBE;
    f->done = probe_done;
    f->data = ctx;
    if (rp_file_submit(f) != 0)
        return RP_ERROR;
    return RP_AGAIN;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_PRECONTENT, try_files_handler);
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"try_files", RP_CTX_SERVER | RP_CTX_LOCATION, 0, 2, RP_ARGS_ANY, set_try_files, RP_CONF_LOC, 0,
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_try_files_module = {
    .name = "http_try_files",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
