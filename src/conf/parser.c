/*
 * Configuration parser: turns tokens into directives, checks each against the
 * module tables (context, block or not, number of arguments), and calls its
 * setter. Block directives parse their own bodies through rp_conf_parse_block,
 * so the parser never needs to know what a `server` or an `upstream` is.
 *
 * Every error carries the file and line of the directive it is about. Nothing
 * read from a file, however broken, can crash the parser: words are bounded only
 * by memory, nesting and includes are bounded by RP_MAX_DEPTH.
 */
#include "conf/conf.h"
#include "core/cycle.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RP_MAX_DEPTH 64
#define RP_MAX_CONF_FILE (64u << 20)

struct rp_include_s {
    rp_include_t *prev;
    const char *path;     /* as written, for messages */
    const char *realpath; /* for cycle detection */
};

typedef struct {
    const char *file; /* where the enclosing block opened, for "missing }" */
    unsigned line;
    const char *name;
} block_t;

const char *rp_conf_error(rp_conf_t *cf, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(cf->error, sizeof(cf->error), "%s:%u: \"%s\": %s", cf->file, cf->line,
             cf->argv ? cf->argv[0] : "", msg);
    return RP_CONF_ERROR;
}

static int place_error(rp_conf_t *cf, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int place_error(rp_conf_t *cf, const char *file, unsigned line, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(cf->error, sizeof(cf->error), "%s:%u: %s", file, line, msg);
    return -1;
}

void rp_conf_warn(rp_conf_t *cf, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rp_log_error(RP_LOG_WARN, 0, "%s:%u: \"%s\": %s", cf->file, cf->line,
                 cf->argv ? cf->argv[0] : "", msg);
}

/* path under folder; an absolute path, or an empty folder (the current one), keeps path. */
static char *path_under(rp_conf_t *cf, const char *folder, const char *path)
{
    if (path[0] == '/' || folder == NULL || folder[0] == '\0')
        return rp_arena_strdup(cf->arena, path);
    size_t n = strlen(folder);
    return rp_arena_sprintf(cf->arena, "%s%s%s", folder, folder[n - 1] == '/' ? "" : "/", path);
}

char *rp_conf_full_path(rp_conf_t *cf, const char *path)
{
    return path_under(cf, cf->cycle->prefix, path);
}

char *rp_conf_conf_path(rp_conf_t *cf, const char *path)
{
    return path_under(cf, cf->cycle->conf_prefix, path);
}

static const char *context_name(unsigned ctx)
{
    switch (ctx) {
    case RP_CTX_MAIN:
        return "main";
    case RP_CTX_EVENTS:
        return "events";
    case RP_CTX_HTTP:
        return "http";
    case RP_CTX_SERVER:
        return "server";
    case RP_CTX_LOCATION:
        return "location";
    case RP_CTX_UPSTREAM:
        return "upstream";
    case RP_CTX_SIF:
    case RP_CTX_LIF:
        return "if";
    }
    return "unknown";
}

static void *conf_for(rp_conf_t *cf, const rp_command_t *cmd, size_t index)
{
    switch (cmd->conf) {
    case RP_CONF_MAIN:
        return cf->cycle->main_conf[index];
    case RP_CONF_HTTP_MAIN:
        return cf->http_ctx ? cf->http_ctx->main_conf[index] : NULL;
    case RP_CONF_SRV:
        return cf->http_ctx ? cf->http_ctx->srv_conf[index] : NULL;
    case RP_CONF_LOC:
        return cf->http_ctx ? cf->http_ctx->loc_conf[index] : NULL;
    case RP_CONF_UPS:
        return cf->ups_conf ? cf->ups_conf[index] : NULL;
    }
    return NULL;
}

const char *rp_conf_arity_text(const rp_command_t *cmd, char *buf, size_t len)
{
    if (cmd->max_args == RP_ARGS_ANY)
        snprintf(buf, len, "%u or more arguments", cmd->min_args);
    else if (cmd->min_args == cmd->max_args)
        snprintf(buf, len, "%u argument%s", cmd->min_args, cmd->min_args == 1 ? "" : "s");
    else
        snprintf(buf, len, "%u to %u arguments", cmd->min_args, cmd->max_args);
    return buf;
}

static int dispatch(rp_conf_t *cf, int opens_block)
{
    const char *name = cf->argv[0];
    int known = 0;

    if (cf->handler && strcmp(name, "include") != 0) {
        /* a block of entries, not directives (map's): its owner reads each one */
        if (opens_block) {
            rp_conf_error(cf, "unexpected \"{\"");
            return -1;
        }
        const char *rv = cf->handler(cf, cf->handler_data);
        if (rv == RP_CONF_OK)
            return 0;
        if (rv != RP_CONF_ERROR)
            rp_conf_error(cf, "%s", rv);
        return -1;
    }

    for (size_t m = 0; m < rp_nmodules; m++) {
        const rp_module_t *mod = rp_modules[m];
        if (mod->commands == NULL)
            continue;
        for (const rp_command_t *cmd = mod->commands; cmd->name; cmd++) {
            if (strcmp(cmd->name, name) != 0)
                continue;
            known = 1;
            if (!(cmd->ctx & cf->ctx))
                continue;

            if ((cmd->flags & RP_CMD_BLOCK) && !opens_block) {
                rp_conf_error(cf, "missing \"{\": this directive takes a block");
                return -1;
            }
            if (!(cmd->flags & RP_CMD_BLOCK) && opens_block) {
                rp_conf_error(cf, "unexpected \"{\": this directive takes no block (missing \";\"?)");
                return -1;
            }
            size_t nargs = cf->argc - 1;
            if (nargs < cmd->min_args || (cmd->max_args != RP_ARGS_ANY && nargs > cmd->max_args)) {
                char buf[64];
                rp_conf_error(cf, "takes %s, got %zu", rp_conf_arity_text(cmd, buf, sizeof(buf)), nargs);
                return -1;
            }
            void *conf = conf_for(cf, cmd, mod->index);
            if (cf->touched)
                cf->touched[mod->index] = 1;
            const char *rv = cmd->set(cf, cmd, conf);
            if (rv == RP_CONF_OK)
                return 0;
            if (rv != RP_CONF_ERROR)
                rp_conf_error(cf, "%s", rv);
            return -1;
        }
    }
    if (known && (cf->ctx & (RP_CTX_SIF | RP_CTX_LIF))) {
        /* nginx's words for what an `if` block cannot hold */
        place_error(cf, cf->file, cf->line, "\"%s\" directive is not allowed here", name);
    } else if (known) {
        place_error(cf, cf->file, cf->line, "\"%s\": not allowed in the %s context", name,
                    context_name(cf->ctx));
    } else if (rp_conf_nginx_directive(name)) {
        place_error(cf, cf->file, cf->line,
                    "\"%s\": nginx directive not supported by rampart (see rampart.conf(5), "
                    "DIFFERENCES)",
                    name);
    } else {
        place_error(cf, cf->file, cf->line, "unknown directive \"%s\"", name);
    }
    return -1;
}

/* Parses directives until EOF (block == NULL) or the "}" closing block. */
static int parse(rp_conf_t *cf, const block_t *block)
{
    rp_lexer_t *lx = cf->lexer;
    rp_array_t args;

    for (;;) {
        rp_tok_type_t t = rp_lexer_next(lx);
        switch (t) {
        case RP_TOK_EOF:
            if (block) {
                return place_error(cf, lx->name, lx->tok_line,
                                   "unexpected end of file: missing \"}\" for \"%s\" opened at "
                                   "%s:%u",
                                   block->name, block->file, block->line);
            }
            return 0;
        case RP_TOK_RBRACE:
            if (block)
                return 0;
            return place_error(cf, lx->name, lx->tok_line, "unexpected \"}\"");
        case RP_TOK_SEMI:
            return place_error(cf, lx->name, lx->tok_line, "unexpected \";\"");
        case RP_TOK_LBRACE:
            return place_error(cf, lx->name, lx->tok_line, "unexpected \"{\"");
        case RP_TOK_ERROR:
            return place_error(cf, lx->name, lx->tok_line, "%s", lx->error);
        case RP_TOK_WORD:
            break;
        }

        unsigned line = lx->tok_line;
        rp_array_init(&args, cf->arena, 8, sizeof(char *));
        *(char **)rp_array_push(&args) = rp_arena_strndup(cf->arena, lx->buf, lx->buf_len);

        int opens_block = -1;
        while (opens_block < 0) {
            t = rp_lexer_next(lx);
            switch (t) {
            case RP_TOK_WORD:
                *(char **)rp_array_push(&args) = rp_arena_strndup(cf->arena, lx->buf, lx->buf_len);
                break;
            case RP_TOK_SEMI:
                opens_block = 0;
                break;
            case RP_TOK_LBRACE:
                opens_block = 1;
                break;
            case RP_TOK_RBRACE:
                return place_error(cf, lx->name, line, "\"%s\": missing \";\" before \"}\"",
                                   RP_ARRAY_AT(&args, char *, 0));
            case RP_TOK_EOF:
                return place_error(cf, lx->name, line,
                                   "\"%s\": unexpected end of file: missing \";\"",
                                   RP_ARRAY_AT(&args, char *, 0));
            case RP_TOK_ERROR:
                return place_error(cf, lx->name, lx->tok_line, "%s", lx->error);
            }
        }

        cf->argv = args.elts;
        cf->argc = args.nelts;
        cf->file = lx->name;
        cf->line = line;
        if (dispatch(cf, opens_block) != 0)
            return -1;
    }
}

const char *rp_conf_parse_entries(rp_conf_t *cf, unsigned ctx,
                                  const char *(*handler)(rp_conf_t *cf, void *data), void *data)
{
    const char *(*saved)(rp_conf_t *, void *) = cf->handler;
    void *saved_data = cf->handler_data;
    cf->handler = handler;
    cf->handler_data = data;
    const char *rv = rp_conf_parse_block(cf, ctx);
    cf->handler = saved;
    cf->handler_data = saved_data;
    return rv;
}

const char *rp_conf_parse_block(rp_conf_t *cf, unsigned ctx)
{
    /* depth counts the file being read too: the 64th nested block opens at depth 64 */
    if (cf->depth > RP_MAX_DEPTH)
        return rp_conf_error(cf, "blocks nested too deep (limit %d)", RP_MAX_DEPTH);

    block_t block = {cf->file, cf->line, cf->argv[0]};
    char **argv = cf->argv;
    size_t argc = cf->argc;
    unsigned saved_ctx = cf->ctx;

    cf->ctx = ctx;
    cf->depth++;
    int rc = parse(cf, &block);
    cf->depth--;
    cf->ctx = saved_ctx;

    /* Setters may look at their own arguments again after the body. */
    cf->argv = argv;
    cf->argc = argc;
    cf->file = block.file;
    cf->line = block.line;
    return rc == 0 ? RP_CONF_OK : RP_CONF_ERROR;
}

/* read_file's error for a file that is neither regular nor a folder (a FIFO, a device) */
#define NOT_REGULAR (-1)

static const char *open_error(int err)
{
    return err == NOT_REGULAR ? "not a regular file" : strerror(err);
}

static char *read_file(const char *path, size_t *len, int *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err = errno;
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)RP_MAX_CONF_FILE) {
        *err = S_ISDIR(st.st_mode) ? EISDIR : S_ISREG(st.st_mode) ? EFBIG : NOT_REGULAR;
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = rp_xmalloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = rp_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            free(buf);
            close(fd);
            return NULL;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > RP_MAX_CONF_FILE) {
            *err = EFBIG;
            free(buf);
            close(fd);
            return NULL;
        }
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void free_text(void *p)
{
    free(p);
}

/* Reads and parses one file in the current context; the caller reports errors. */
static int parse_one(rp_conf_t *cf, const char *path, int *open_err)
{
    char real[PATH_MAX];
    if (realpath(path, real) == NULL) {
        *open_err = errno;
        return -1;
    }
    for (rp_include_t *inc = cf->include; inc; inc = inc->prev) {
        if (strcmp(inc->realpath, real) == 0) {
            char chain[1024];
            size_t n = 0;
            chain[0] = '\0';
            /* Oldest first, so the message reads in include order. */
            const char *names[RP_MAX_DEPTH + 1];
            size_t k = 0;
            for (rp_include_t *i = cf->include; i && k < RP_MAX_DEPTH; i = i->prev)
                names[k++] = i->path;
            while (k > 0 && n < sizeof(chain) - 1)
                n += (size_t)snprintf(chain + n, sizeof(chain) - n, "%s -> ", names[--k]);
            if (n < sizeof(chain) - 1)
                snprintf(chain + n, sizeof(chain) - n, "%s", path);
            rp_conf_error(cf, "include cycle: %s", chain);
            return -1;
        }
    }
    if (cf->depth >= RP_MAX_DEPTH) {
        rp_conf_error(cf, "includes nested too deep (limit %d)", RP_MAX_DEPTH);
        return -1;
    }

    size_t len = 0;
    char *text = read_file(path, &len, open_err);
    if (text == NULL)
        return -1;
    rp_arena_cleanup(cf->arena, free_text, text);

    rp_conf_file_t *f = rp_array_push(&cf->cycle->files);
    f->path = rp_arena_strdup(cf->arena, path);
    f->text = text;
    f->len = len;

    rp_include_t inc = {cf->include, f->path, real};
    rp_lexer_t lx, *saved_lx = cf->lexer;
    rp_lexer_init(&lx, f->path, text, len);

    char **argv = cf->argv;
    size_t argc = cf->argc;
    const char *file = cf->file;
    unsigned line = cf->line;

    cf->include = &inc;
    cf->lexer = &lx;
    cf->depth++;
    int rc = parse(cf, NULL);
    cf->depth--;
    cf->lexer = saved_lx;
    cf->include = inc.prev;
    rp_lexer_free(&lx);

    cf->argv = argv;
    cf->argc = argc;
    cf->file = file;
    cf->line = line;
    return rc;
}

int rp_conf_parse_file(rp_conf_t *cf, const char *path, unsigned ctx)
{
    int err = 0;
    cf->ctx = ctx;
    if (parse_one(cf, path, &err) == 0)
        return 0;
    if (err) {
        snprintf(cf->error, sizeof(cf->error), "cannot open configuration file \"%s\": %s", path,
                 open_error(err));
    }
    return -1;
}

static int has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static int glob_errno;

/*
 * A folder of the pattern that does not exist matches nothing, as in nginx (a
 * glob under conf.d before conf.d is created); a folder that cannot be read
 * is an error, or files would be left out silently.
 */
static int glob_error(const char *path, int err)
{
    if (err == ENOENT || err == ENOTDIR)
        return 0;
    glob_errno = err;
    return 1;
}

/*
 * include PATTERN: a relative pattern is resolved against the main configuration
 * file's folder, as in nginx, so it means the same in every file that includes it.
 */
const char *rp_conf_include(rp_conf_t *cf, const rp_command_t *cmd, void *conf);

const char *rp_conf_include(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    char *full = rp_conf_conf_path(cf, cf->argv[1]);

    if (!has_glob(full)) {
        int err = 0;
        if (parse_one(cf, full, &err) == 0)
            return RP_CONF_OK;
        if (err)
            return rp_conf_error(cf, "cannot open \"%s\": %s", full, open_error(err));
        return RP_CONF_ERROR;
    }

    glob_t g;
    glob_errno = 0;
    int rc = glob(full, 0, glob_error, &g);
    if (rc == GLOB_NOMATCH)
        return RP_CONF_OK; /* like nginx: a pattern that matches nothing is not an error */
    if (rc != 0) {
        globfree(&g);
        if (glob_errno)
            return rp_conf_error(cf, "cannot read \"%s\": %s", full, strerror(glob_errno));
        return rp_conf_error(cf, "cannot read \"%s\"", full);
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct stat st;
        if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode))
            continue;
        int err = 0;
        if (parse_one(cf, g.gl_pathv[i], &err) != 0) {
            if (err)
                rp_conf_error(cf, "cannot open \"%s\": %s", g.gl_pathv[i], open_error(err));
            globfree(&g);
            return RP_CONF_ERROR;
        }
    }
    globfree(&g);
    return RP_CONF_OK;
}
