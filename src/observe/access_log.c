/*
 * The access log, as nginx has it. `log_format NAME [escape=...] STRING...`
 * defines a line, compiled once when the configuration loads into literal
 * pieces and variable getters; `access_log FILE [FORMAT] [buffer=] [flush=]
 * [if=]` sends the line of every request that ends in a location to FILE.
 * Several access_log lines at one level all log, a level without any inherits
 * its parent's, and `access_log off` stops the inheritance. Without any,
 * `logs/access.log combined` (relative to the prefix) applies, as in nginx.
 *
 * Files belong to a configuration generation and are shared by every
 * directive of that generation that names the same path. The master opens
 * them before forking (rp_access_log_open), so a worker never starts without
 * its logs, and the workers inherit the descriptors. USR1 makes each process
 * reopen its files itself, the way the error log is rotated.
 *
 * Writes. A regular file opened with O_APPEND is written with one write() per
 * line (or per buffer), which Linux appends atomically, so the lines of
 * several workers never interleave. Such a write never returns EAGAIN and
 * never waits for a reader: it cannot stall the event loop the way a socket
 * can. A file that was renamed or removed keeps accepting writes through its
 * descriptor until USR1 reopens the path (logrotate's rename-then-reopen
 * relies on that). A path that is not a regular file (a FIFO, a terminal) is
 * switched to O_NONBLOCK, so a reader that stops reading costs lines, never a
 * stalled worker. Any failed write (ENOSPC, EBADF, EAGAIN, ...) drops its data
 * and logs one alert per file per second at most: a full disk must not turn
 * into a full error log or a worker that stops serving.
 *
 * Buffering is per worker and per file, and only with buffer= (nginx's rule):
 * lines gather until the next one does not fit, until flush= has elapsed since
 * the first of them (a timer armed only while data waits), at USR1, and when
 * the worker exits. A request's line is formatted without malloc: into the
 * file's buffer, or into a reusable line buffer of the worker for an
 * unbuffered file; only a line longer than either goes to request memory and
 * is written on its own.
 */
#include "observe/access_log.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "core/syslog.h"
#include "core/time.h"
#include "net/conn.h"
#include "http/request.h"
#include "http/variables.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_BUFFER (64u << 20)

typedef struct {
    const char *name;
    int escape; /* RP_LOG_ESCAPE_* */
    rp_cv_t cv;
} log_fmt_t;

typedef struct al_file_s al_file_t;

struct al_file_s {
    const char *path; /* with the prefix */
    const char *file; /* the access_log line that first named it, for messages */
    unsigned line;
    rp_cycle_t *cycle;
    int fd;           /* -1 until the master opens it */
    size_t size;      /* buffer=; 0 writes every line at once */
    int64_t flush_ms; /* flush=; 0 for none */
    char *buf;
    size_t len;
    struct event timer;
    unsigned timer_ready : 1;
    unsigned linked : 1;
    time_t last_error;      /* when a failed write was last reported */
    al_file_t *prev, *next; /* this process's open files */
};

typedef struct {
    al_file_t *file;     /* NULL for syslog */
    rp_syslog_t *syslog; /* access_log syslog:...; NULL for a file */
    const log_fmt_t *fmt;
    rp_cv_t *cond; /* if=: no line when it is empty or "0" */
} al_log_t;

/* One per cycle: formats and files are http-wide, and the master finds the files here. */
typedef struct {
    rp_array_t formats; /* log_fmt_t * */
    rp_array_t files;   /* al_file_t * */
    rp_array_t *default_logs;
} al_main_conf_t;

typedef struct {
    rp_array_t *logs; /* al_log_t; NULL until access_log or inheritance sets it */
    int off;
} al_loc_conf_t;

static al_file_t *open_files;

/* The reusable line of an unbuffered file; fork gives every worker its own. */
static char line_buf[8192];

static al_main_conf_t *main_conf(const rp_cycle_t *cycle)
{
    return cycle->main_conf[rp_access_log_module.index];
}

/* ---- escaping ---------------------------------------------------------------------------- */

/*
 * Escaping follows nginx's documentation of log_format
 * (https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format):
 * "For default escaping, characters '"', '\', and other characters with values
 * less than 32 or above 126 are escaped as '\xXX'. If the variable value is not
 * found, a hyphen ('-') will be logged. For json escaping, all characters not
 * allowed in JSON strings will be escaped: characters '"' and '\' are escaped as
 * '\"' and '\\', characters with values less than 32 are escaped as '\n', '\r',
 * '\t', '\b', '\f', or '\u00XX'." nginx prints both the \xXX and the \u00XX
 * digits in upper case; so does rampart. With json and none, a value
 * that is not found logs nothing. Only variables are escaped, never the literal
 * text of the format. A value found empty (a field sent empty) logs nothing in
 * every mode, as in nginx; t/integration/test_log_escape_vs_nginx.py compares the
 * lines of both for the same requests.
 */
static int needs_default_escape(unsigned char c)
{
    return c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
}

size_t rp_access_log_escape(int mode, const char *src, size_t len, char *dst)
{
    static const char upper[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)src;
    size_t n = 0;

    if (mode == RP_LOG_ESCAPE_NONE) {
        if (dst && len)
            memcpy(dst, src, len);
        return len;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (mode == RP_LOG_ESCAPE_DEFAULT) {
            if (!needs_default_escape(c)) {
                if (dst)
                    dst[n] = (char)c;
                n++;
            } else {
                if (dst) {
                    dst[n] = '\\';
                    dst[n + 1] = 'x';
                    dst[n + 2] = upper[c >> 4];
                    dst[n + 3] = upper[c & 0xf];
                }
                n += 4;
            }
            continue;
        }
        /* json */
        char short_esc = 0;
        switch (c) {
        case '"':
            short_esc = '"';
            break;
        case '\\':
            short_esc = '\\';
            break;
        case '\n':
            short_esc = 'n';
            break;
        case '\r':
            short_esc = 'r';
            break;
        case '\t':
            short_esc = 't';
            break;
        case '\b':
            short_esc = 'b';
            break;
        case '\f':
            short_esc = 'f';
            break;
        }
        if (short_esc) {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = short_esc;
            }
            n += 2;
        } else if (c < 0x20) {
            if (dst) {
                memcpy(dst + n, "\\u00", 4);
                dst[n + 4] = upper[c >> 4];
                dst[n + 5] = upper[c & 0xf];
            }
            n += 6;
        } else {
            if (dst)
                dst[n] = (char)c;
            n++;
        }
    }
    return n;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Writes n bytes, or drops them; a failure is reported at most once a second per file. */
static void write_out(al_file_t *f, const char *p, size_t n)
{
    size_t total = n;
    int err = EBADF;
    if (f->fd < 0)
        goto fail;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        err = w < 0 ? errno : 0;
        goto fail;
    }
    return;

fail:;
    time_t now = (time_t)(rp_time_ms() / 1000);
    if (now == f->last_error)
        return;
    f->last_error = now;
    if (n == total)
        rp_log_error(RP_LOG_ALERT, err, "write() to \"%s\" failed, %zu bytes of access log dropped",
                     f->path, total);
    else
        rp_log_error(RP_LOG_ALERT, err,
                     "write() to \"%s\" was incomplete: %zu of %zu bytes of access log dropped",
                     f->path, n, total);
}

static void flush_file(al_file_t *f)
{
    if (f->len) {
        write_out(f, f->buf, f->len);
        f->len = 0;
    }
    if (f->timer_ready)
        evtimer_del(&f->timer);
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    flush_file(arg);
}

/* Reserves len bytes at the end of f's buffer, flushing first when they do not fit; NULL
 * when the line is longer than the whole buffer. */
static char *buffer_space(al_file_t *f, size_t len)
{
    if (len > f->size) {
        flush_file(f); /* keep the lines in order */
        return NULL;
    }
    if (f->len + len > f->size)
        flush_file(f);
    if (f->len == 0 && f->flush_ms > 0 && rp_event_base) {
        if (!f->timer_ready) {
            evtimer_assign(&f->timer, rp_event_base, on_flush_timer, f);
            f->timer_ready = 1;
        }
        struct timeval tv = {(time_t)(f->flush_ms / 1000),
                             (suseconds_t)((f->flush_ms % 1000) * 1000)};
        evtimer_add(&f->timer, &tv);
    }
    char *p = f->buf + f->len;
    f->len += len;
    return p;
}

/* Writes the parts of a line (vals, as log_line gathered them) at p; returns the end. */
static char *format_parts(const log_fmt_t *fmt, const rp_str_t *vals, char *p)
{
    const rp_cv_t *cv = &fmt->cv;
    for (size_t i = 0; i < cv->nparts; i++) {
        if (rp_cv_part_literal(&cv->parts[i])) {
            if (vals[i].len)
                memcpy(p, vals[i].data, vals[i].len);
            p += vals[i].len;
        } else if (vals[i].data == NULL) {
            if (fmt->escape == RP_LOG_ESCAPE_DEFAULT)
                *p++ = '-';
        } else {
            p += rp_access_log_escape(fmt->escape, vals[i].data, vals[i].len, p);
        }
    }
    return p;
}

/* One datagram per line: the RFC 5424 header, then the line without its newline. */
static void syslog_line(rp_request_t *r, const al_log_t *log, const rp_str_t *vals, size_t len)
{
    char head[RP_SYSLOG_HEADER_MAX];
    size_t hl = rp_syslog_header(log->syslog, -1, rp_time_ms(), head);
    size_t total = hl + len - 1;
    char *msg = total <= sizeof(line_buf) ? line_buf : rp_arena_alloc(r->arena, total + 1);
    memcpy(msg, head, hl);
    format_parts(log->fmt, vals, msg + hl);
    int err = rp_syslog_send(log->syslog, msg, total);
    if (err == 0)
        return;
    time_t now = (time_t)(rp_time_ms() / 1000);
    if (now == log->syslog->last_error)
        return;
    log->syslog->last_error = now;
    rp_log_error(RP_LOG_ALERT, err,
                 "sendto() to syslog server \"%s\" failed, a line of access "
                 "log dropped",
                 log->syslog->server);
}

/* Formats the line of one log for r and hands it to its file or syslog server. */
static void log_line(rp_request_t *r, const al_log_t *log)
{
    const log_fmt_t *fmt = log->fmt;
    const rp_cv_t *cv = &fmt->cv;
    rp_str_t stack[64];
    rp_str_t *vals =
        cv->nparts <= 64 ? stack : rp_arena_alloc(r->arena, cv->nparts * sizeof(*vals));

    size_t len = 1; /* the newline */
    for (size_t i = 0; i < cv->nparts; i++) {
        const rp_cv_part_t *part = &cv->parts[i];
        if (rp_cv_part_literal(part)) {
            vals[i] = part->literal;
            len += part->literal.len;
            continue;
        }
        /* As nginx: "-" (default escaping) for a value not found, nothing for an empty
         * value found (a field sent empty); data NULL marks the former */
        if (rp_cv_part_value(r, part, &vals[i]) != 0 || vals[i].data == NULL)
            vals[i] = RP_NULL_STR;
        if (vals[i].data == NULL)
            len += fmt->escape == RP_LOG_ESCAPE_DEFAULT; /* "-" */
        else
            len += rp_access_log_escape(fmt->escape, vals[i].data, vals[i].len, NULL);
    }

    if (log->syslog) {
        syslog_line(r, log, vals, len);
        return;
    }

    al_file_t *f = log->file;
    char *line = NULL;
    int direct = 1;
    if (f->size) {
        line = buffer_space(f, len);
        direct = line == NULL;
    } else if (len <= sizeof(line_buf)) {
        line = line_buf;
    }
    if (line == NULL)
        line = rp_arena_alloc(r->arena, len);

    char *p = format_parts(fmt, vals, line);
    *p = '\n';
    if (direct)
        write_out(f, line, len);
}

static int log_handler(rp_request_t *r)
{
    void **lc = r->loc_conf ? r->loc_conf : r->srv->ctx->loc_conf;
    const al_loc_conf_t *llcf = lc[rp_access_log_module.index];
    if (llcf->off || llcf->logs == NULL)
        return RP_OK;
    const rp_http_core_loc_conf_t *clcf = lc[rp_http_core_module.index];
    if (r->subrequest && !clcf->log_subrequest)
        return RP_OK; /* as nginx: a mirror's copy is not the client's request */
    const al_log_t *logs = llcf->logs->elts;
    for (size_t i = 0; i < llcf->logs->nelts; i++) {
        if (logs[i].cond) {
            rp_str_t v = rp_cv_eval(r, logs[i].cond);
            if (v.len == 0 || (v.len == 1 && v.data[0] == '0'))
                continue;
        }
        log_line(r, &logs[i]);
    }
    return RP_OK;
}

/* ---- files of the process ---------------------------------------------------------------- */

static void link_file(al_file_t *f)
{
    f->prev = NULL;
    f->next = open_files;
    if (open_files)
        open_files->prev = f;
    open_files = f;
    f->linked = 1;
}

static void unlink_file(al_file_t *f)
{
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

static void close_file(al_file_t *f)
{
    if (f->timer_ready)
        evtimer_del(&f->timer);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    unlink_file(f);
}

/* The cycle's arena is going away: what a worker still buffers is written first. */
static void file_cleanup(void *data)
{
    al_file_t *f = data;
    flush_file(f);
    close_file(f);
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    else
        rp_log_give(fd); /* the workers reopen it after a rotation */
    return fd;
}

int rp_access_log_open(rp_cycle_t *cycle, char *err, size_t errlen)
{
    al_main_conf_t *mc = main_conf(cycle);
    for (size_t i = 0; i < mc->files.nelts; i++) {
        al_file_t *f = RP_ARRAY_AT(&mc->files, al_file_t *, i);
        if (f->fd >= 0)
            continue;
        rp_mkdir_parent(f->path);
        f->fd = open_path(f->path);
        if (f->fd < 0) {
            snprintf(err, errlen, "%s:%u: \"access_log\": cannot open \"%s\": %s", f->file, f->line,
                     f->path, strerror(errno));
            return -1;
        }
        link_file(f);
    }
    return 0;
}

void rp_access_log_reopen(void)
{
    for (al_file_t *f = open_files; f; f = f->next) {
        int fd = open_path(f->path);
        if (fd < 0) {
            rp_log_error(RP_LOG_ALERT, errno, "reopening access log \"%s\" failed", f->path);
            continue;
        }
        flush_file(f); /* what was logged before the signal goes to the old file */
        close(f->fd);
        f->fd = fd;
    }
}

void rp_access_log_keep_only(const rp_cycle_t *cycle)
{
    al_file_t *f = open_files;
    while (f) {
        al_file_t *next = f->next;
        if (f->cycle != cycle)
            close_file(f);
        f = next;
    }
}

void rp_access_log_flush_all(void)
{
    for (al_file_t *f = open_files; f; f = f->next)
        flush_file(f);
}

/* ---- configuration ----------------------------------------------------------------------- */

static const char combined_format[] = "$remote_addr - $remote_user [$time_local] \"$request\" "
                                      "$status $body_bytes_sent \"$http_referer\" "
                                      "\"$http_user_agent\"";

static void *create_main(rp_conf_t *cf)
{
    al_main_conf_t *mc = rp_arena_calloc(cf->arena, sizeof(*mc));
    rp_array_init(&mc->formats, cf->arena, 4, sizeof(log_fmt_t *));
    rp_array_init(&mc->files, cf->arena, 4, sizeof(al_file_t *));
    log_fmt_t *combined = rp_arena_calloc(cf->arena, sizeof(*combined));
    combined->name = "combined";
    combined->escape = RP_LOG_ESCAPE_DEFAULT;
    if (rp_cv_compile(cf, combined_format, &combined->cv) != NULL)
        return NULL; /* cannot happen: every variable of it exists */
    *(log_fmt_t **)rp_array_push(&mc->formats) = combined;
    return mc;
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(al_loc_conf_t));
}

static const log_fmt_t *find_format(const al_main_conf_t *mc, const char *name)
{
    for (size_t i = 0; i < mc->formats.nelts; i++) {
        const log_fmt_t *fmt = RP_ARRAY_AT(&mc->formats, log_fmt_t *, i);
        if (strcmp(fmt->name, name) == 0)
            return fmt;
    }
    return NULL;
}

/* The generation's file for path (already prefixed), made on first mention. */
static al_file_t *get_file(rp_conf_t *cf, al_main_conf_t *mc, const char *path)
{
    for (size_t i = 0; i < mc->files.nelts; i++) {
        al_file_t *f = RP_ARRAY_AT(&mc->files, al_file_t *, i);
        if (strcmp(f->path, path) == 0)
            return f;
    }
    al_file_t *f = rp_arena_calloc(cf->arena, sizeof(*f));
    f->path = path;
    f->file = cf->file;
    f->line = cf->line;
    f->cycle = cf->cycle;
    f->fd = -1;
    rp_arena_cleanup(cf->arena, file_cleanup, f);
    *(al_file_t **)rp_array_push(&mc->files) = f;
    return f;
}

static const char *set_log_format(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    al_main_conf_t *mc = conf;
    const char *name = cf->argv[1];
    if (find_format(mc, name))
        return rp_conf_error(cf, "duplicate \"log_format\" name \"%s\"", name);

    log_fmt_t *fmt = rp_arena_calloc(cf->arena, sizeof(*fmt));
    fmt->name = name;
    fmt->escape = RP_LOG_ESCAPE_DEFAULT;
    size_t first = 2;
    if (strncmp(cf->argv[2], "escape=", 7) == 0) {
        const char *mode = cf->argv[2] + 7;
        if (strcmp(mode, "default") == 0)
            fmt->escape = RP_LOG_ESCAPE_DEFAULT;
        else if (strcmp(mode, "json") == 0)
            fmt->escape = RP_LOG_ESCAPE_JSON;
        else if (strcmp(mode, "none") == 0)
            fmt->escape = RP_LOG_ESCAPE_NONE;
        else
            return rp_conf_error(cf,
                                 "unknown log format escaping \"%s\", it must be default, "
                                 "json or none",
                                 mode);
        first = 3;
        if (cf->argc == 3)
            return rp_conf_error(cf, "no format string after \"%s\"", cf->argv[2]);
    }

    /* As in nginx, the strings are one format: "a" "b" is "ab". */
    size_t total = 1;
    for (size_t i = first; i < cf->argc; i++)
        total += strlen(cf->argv[i]);
    char *text = rp_arena_alloc(cf->arena, total);
    size_t off = 0;
    for (size_t i = first; i < cf->argc; i++) {
        size_t n = strlen(cf->argv[i]);
        memcpy(text + off, cf->argv[i], n);
        off += n;
    }
    text[off] = '\0';
    const char *err = rp_cv_compile(cf, text, &fmt->cv);
    if (err)
        return err;
    *(log_fmt_t **)rp_array_push(&mc->formats) = fmt;
    return RP_CONF_OK;
}

static al_log_t *push_log(rp_conf_t *cf, al_loc_conf_t *lc)
{
    if (lc->logs == NULL) {
        lc->logs = rp_arena_calloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(lc->logs, cf->arena, 2, sizeof(al_log_t));
    }
    al_log_t *log = rp_array_push(lc->logs);
    memset(log, 0, sizeof(*log));
    return log;
}

static void syslog_cleanup(void *data)
{
    rp_syslog_close(data);
}

static const char *set_access_log(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    al_loc_conf_t *lc = conf;
    al_main_conf_t *mc = main_conf(cf->cycle);
    const char *path = cf->argv[1];

    if (strcmp(path, "off") == 0) {
        if (cf->argc > 2)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[2]);
        lc->off = 1;
        return RP_CONF_OK;
    }
    rp_syslog_t *syslog = NULL;
    if (strncmp(path, "syslog:", 7) == 0) {
        char err[256];
        syslog = rp_arena_calloc(cf->arena, sizeof(*syslog));
        if (rp_syslog_parse(path + 7, syslog, err, sizeof(err)) != 0)
            return rp_conf_error(cf, "%s", err);
        rp_arena_cleanup(cf->arena, syslog_cleanup, syslog);
    }
    if (strchr(path, '$'))
        return rp_conf_error(cf, "variables in the file name are not supported yet");

    const char *name = cf->argc > 2 ? cf->argv[2] : "combined";
    const log_fmt_t *fmt = find_format(mc, name);
    if (fmt == NULL)
        return rp_conf_error(cf, "unknown log format \"%s\"", name);

    size_t size = 0;
    int64_t flush = 0;
    rp_cv_t *cond = NULL;
    for (size_t i = 3; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "buffer=", 7) == 0) {
            if (rp_parse_size(a + 7, &size) != 0 || size == 0)
                return rp_conf_error(cf, "invalid buffer size \"%s\"", a + 7);
            if (size > MAX_BUFFER)
                return rp_conf_error(cf, "buffer size \"%s\" is over the limit of 64m", a + 7);
        } else if (strncmp(a, "flush=", 6) == 0) {
            if (rp_parse_msec(a + 6, &flush) != 0 || flush == 0)
                return rp_conf_error(cf, "invalid flush time \"%s\"", a + 6);
        } else if (strncmp(a, "if=", 3) == 0) {
            cond = rp_arena_calloc(cf->arena, sizeof(*cond));
            const char *err = rp_cv_compile(cf, a + 3, cond);
            if (err)
                return err;
        } else if (strcmp(a, "gzip") == 0 || strncmp(a, "gzip=", 5) == 0) {
            return rp_conf_error(cf, "the \"gzip\" parameter is not supported yet");
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    if (flush && size == 0)
        return rp_conf_error(cf, "no buffer is defined for access_log \"%s\"", path);
    if (syslog && size)
        return rp_conf_error(cf, "logs to syslog cannot be buffered");
    if (syslog) {
        al_log_t *log = push_log(cf, lc);
        log->syslog = syslog;
        log->fmt = fmt;
        log->cond = cond;
        return RP_CONF_OK;
    }

    al_file_t *f = get_file(cf, mc, rp_conf_full_path(cf, path));
    if (size) {
        /* The buffer belongs to the file: every access_log of it that sets one must agree. */
        if (f->size && (f->size != size || f->flush_ms != flush))
            return rp_conf_error(cf,
                                 "access_log \"%s\" already defined with conflicting "
                                 "parameters",
                                 path);
        if (f->size == 0) {
            f->size = size;
            f->flush_ms = flush;
            f->buf = rp_arena_alloc(cf->arena, size);
        }
    }

    al_log_t *log = push_log(cf, lc);
    log->file = f;
    log->fmt = fmt;
    log->cond = cond;
    return RP_CONF_OK;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    al_loc_conf_t *p = parent, *c = child;
    if (c->logs || c->off)
        return RP_CONF_OK;
    c->logs = p->logs;
    c->off = p->off;
    if (c->logs || c->off)
        return RP_CONF_OK;

    /* No level says anything: nginx's default, one file shared by every such server. */
    al_main_conf_t *mc = main_conf(cf->cycle);
    if (mc->default_logs == NULL) {
        mc->default_logs = rp_arena_calloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(mc->default_logs, cf->arena, 1, sizeof(al_log_t));
        al_log_t *log = rp_array_push(mc->default_logs);
        log->file = get_file(cf, mc, rp_conf_full_path(cf, "logs/access.log"));
        log->fmt = find_format(mc, "combined");
    }
    c->logs = mc->default_logs;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_LOG, log_handler);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"log_format", RP_CTX_HTTP, 0, 2, RP_ARGS_ANY, set_log_format, RP_CONF_MAIN, 0, NULL},
    {"access_log", ANYWHERE | RP_CTX_LIF, 0, 1, RP_ARGS_ANY, set_access_log, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

/* ---- process hooks ---- */

static int al_init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                          size_t errlen)
{
    return rp_access_log_open(cycle, err, errlen); /* rampart -t too: a start would */
}

static void al_reopen(rp_cycle_t *cycle)
{
    rp_access_log_reopen();
}

static int al_init_worker(rp_cycle_t *cycle)
{
    /* A worker keeps its generation's files; alone (master_process off) it has no
     * other generation's to drop, and after a reload in place the old ones still log. */
    if (rp_process.kind != RP_PROCESS_SINGLE)
        rp_access_log_keep_only(cycle);
    return 0;
}

static void al_exit_worker(rp_cycle_t *cycle)
{
    rp_access_log_flush_all(); /* every stop, graceful or fast, ends here */
}

static int al_init_helper(rp_cycle_t *cycle)
{
    rp_access_log_keep_only(NULL); /* it logs no requests: rotated files must not stay open */
    return 0;
}

rp_module_t rp_access_log_module = {
    .name = "access_log",
    .commands = commands,
    .init_master = al_init_master,
    .reopen = al_reopen,
    .init_worker = al_init_worker,
    .exit_worker = al_exit_worker,
    .init_helper = al_init_helper,
    .create_main = create_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
