/*
 * Static files: `root`, `alias`, `index`, `types`, `etag`, `if_modified_since`,
 * `max_ranges`, `sendfile`, `tcp_nopush`, `tcp_nodelay`, and the variables
 * $document_root, $realpath_root and $request_filename. A gateway answers a few
 * things from disk without a backend: a maintenance page, an OpenAPI file.
 *
 * nginx's semantics: a URI ending in "/" goes to the first `index` file that
 * exists (an internal redirect), else 403 for an existing directory, 404 for
 * none; any other URI is the file root + URI (alias: the location's prefix
 * replaced), 301 with a slash added for a directory, 403 when it cannot be
 * read, 404 when missing, 405 for a method other than GET and HEAD on a file.
 * Conditional requests (If-Modified-Since, If-None-Match, If-Unmodified-Since,
 * If-Match) answer 304 and 412 as nginx's not_modified filter does; Range
 * answers 206 (one range, or multipart/byteranges), 416 with "bytes *\/len".
 *
 * What blocks: nothing of the file on the loop. open, fstat, stat and pread run
 * in the worker's file thread pool (file_io.c); the body goes out through the
 * filter chain (gzip, limit_rate apply) one chunk at a time, the next read
 * submitted only when the protocol has drained the last (back-pressure for
 * slow clients, HTTP/2 and TLS alike). `sendfile on` is accepted and means the
 * same: rampart never sends a file with sendfile(2) (a filter may change the
 * body, and one path for every protocol keeps back-pressure in one place);
 * `tcp_nopush` and `tcp_nodelay` are accepted for the same configurations and
 * change nothing (rampart's connections always set TCP_NODELAY).
 *
 * A location serves files only when root, alias, index or try_files is set for it
 * (inherited counts); without them rampart keeps answering 404 as before, where
 * nginx would look in its default root "html".
 */
#include "http/static.h"

#include "core/cycle.h"
#include "core/log.h"
#include "core/time.h"
#include "http/file_io.h"
#include "http/variables.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK   (64 * 1024) /* one read of the pool, one write to the filters */
#define PREREAD (16 * 1024) /* read with the open: a small file takes one trip */

enum { IMS_OFF, IMS_EXACT, IMS_BEFORE };

typedef struct {
    rp_str_t ext, type;
} mime_t;

typedef struct {
    rp_cv_t *root; /* root or alias; NULL: unset */
    int alias;
    int whole_alias;    /* alias in a regex location, with captures: the path itself */
    size_t loc_len;     /* alias: the location prefix it replaces */
    const char *prefix; /* for a relative root with variables */
    rp_array_t *types;  /* mime_t; NULL: unset */
    rp_array_t *index;  /* rp_cv_t; NULL: unset */
    int root_default;   /* root is nginx's default "html", not said anywhere */
    int enabled;        /* root, alias, index or try_files said here or above */
    int etag, ims, max_ranges, sendfile, tcp_nopush, tcp_nodelay;
} static_loc_t;

typedef struct {
    off_t start, end; /* [start, end) */
} range_t;

typedef struct {
    rp_file_t *file;
    rp_request_t *r;
    /* the answer being sent */
    range_t *ranges;
    int nranges, cur;
    off_t pos;
    off_t pre_n; /* bytes [0, pre_n) are in the opening job's buffer */
    int big;     /* the job now has a CHUNK buffer for reads */
    int multipart;
    rp_str_t boundary, part_type;
    int add_uri_to_alias; /* try_files found a file under an alias with captures */
    /* index: the URIs of the candidates */
    rp_str_t *index_uris;
    int nindex;
} static_ctx_t;

static rp_str_t default_index = RP_STR("index.html");
static const mime_t default_types[] = {
    {RP_STR("html"), RP_STR("text/html")},
    {RP_STR("gif"), RP_STR("image/gif")},
    {RP_STR("jpg"), RP_STR("image/jpeg")},
};

static const rp_str_t methods_ok[] = {RP_STR("GET"), RP_STR("HEAD"), RP_STR("POST")};

/* ---- configuration ---- */

static void *create_loc(rp_conf_t *cf)
{
    static_loc_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->enabled = RP_CONF_UNSET;
    c->etag = RP_CONF_UNSET;
    c->ims = RP_CONF_UNSET;
    c->max_ranges = RP_CONF_UNSET;
    c->sendfile = RP_CONF_UNSET;
    c->tcp_nopush = RP_CONF_UNSET;
    c->tcp_nodelay = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    static_loc_t *p = parent, *c = child;
    if (c->root == NULL) {
        c->root = p->root;
        c->root_default = p->root_default;
        c->alias = p->alias;
        c->whole_alias = p->whole_alias;
        c->loc_len = p->loc_len;
        c->prefix = p->prefix;
    }
    if (c->types == NULL)
        c->types = p->types;
    if (c->index == NULL)
        c->index = p->index;
    if (c->enabled == RP_CONF_UNSET)
        c->enabled = p->enabled;
    if ((c->root && !c->root_default) || c->index)
        c->enabled = 1;
    RP_CONF_MERGE(c->etag, p->etag, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->ims, p->ims, RP_CONF_UNSET, IMS_EXACT);
    RP_CONF_MERGE(c->max_ranges, p->max_ranges, RP_CONF_UNSET, INT_MAX);
    RP_CONF_MERGE(c->sendfile, p->sendfile, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->tcp_nopush, p->tcp_nopush, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->tcp_nodelay, p->tcp_nodelay, RP_CONF_UNSET, 1);
    if (c->root == NULL) {
        /* nginx's default root, for a location that serves by index or try_files */
        c->root = rp_arena_calloc(cf->arena, sizeof(*c->root));
        char *html = rp_conf_full_path(cf, "html");
        c->root->value = (rp_str_t){html, strlen(html)};
        c->root_default = 1;
    }
    if (c->enabled == RP_CONF_UNSET)
        c->enabled = 0;
    return RP_CONF_OK;
}

void rp_http_static_enable(void *conf)
{
    ((static_loc_t *)conf)->enabled = 1;
}

static const char *set_root(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    static_loc_t *c = conf;
    int alias = strcmp(cmd->name, "alias") == 0;
    if (c->root)
        return c->alias == alias ? "duplicate directive"
                                 : rp_conf_error(cf, "\"%s\" directive was specified earlier",
                                                 c->alias ? "alias" : "root");
    const char *v = cf->argv[1];
    if (*v == '\0')
        return rp_conf_error(cf, "\"%s\" needs a path", cmd->name);
    if (strchr(v, '$') == NULL && strncmp(v, "$document_root", 14) != 0)
        v = rp_conf_full_path(cf, v);
    char *copy = rp_arena_strdup(cf->arena, v);
    size_t n = strlen(copy);
    if (!alias && n > 1 && copy[n - 1] == '/')
        copy[n - 1] = '\0'; /* nginx drops a root's last slash: the URI brings its own */
    c->root = rp_arena_calloc(cf->arena, sizeof(*c->root));
    const char *err = rp_cv_compile(cf, copy, c->root);
    if (err)
        return err == RP_CONF_ERROR ? err : rp_conf_error(cf, "%s", err);
    c->alias = alias;
    c->prefix = rp_conf_full_path(cf, "");
    if (alias && cf->http_ctx) {
        rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
        if (clcf->kind == RP_LOC_SERVER)
            return rp_conf_error(cf, "\"alias\" directive is not allowed here");
        if (clcf->kind == RP_LOC_REGEX || clcf->kind == RP_LOC_REGEX_CASELESS) {
            /* nginx: in a regex location the alias is the whole path (it should use the
             * captures; without them every URI names the same path) */
            c->whole_alias = 1;
        } else {
            c->loc_len = clcf->name_len;
        }
    }
    c->enabled = 1;
    return RP_CONF_OK;
}

static const char *set_index(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    static_loc_t *c = conf;
    if (c->index == NULL) {
        c->index = rp_arena_calloc(cf->arena, sizeof(*c->index));
        rp_array_init(c->index, cf->arena, 2, sizeof(rp_cv_t));
    }
    for (size_t i = 1; i < cf->argc; i++) {
        if (cf->argv[i][0] == '\0')
            return rp_conf_error(cf, "index \"%s\" in \"index\" directive is invalid", cf->argv[i]);
        if (c->index->nelts >= RP_FILE_MAX_PROBES - 1)
            return rp_conf_error(cf, "too many index files (at most %d)", RP_FILE_MAX_PROBES - 1);
        rp_cv_t *cv = rp_array_push(c->index);
        const char *err = rp_cv_compile(cf, cf->argv[i], cv);
        if (err)
            return err == RP_CONF_ERROR ? err : rp_conf_error(cf, "%s", err);
    }
    c->enabled = 1;
    return RP_CONF_OK;
}

static const char *types_entry(rp_conf_t *cf, void *data)
{
    static_loc_t *c = data;
    if (cf->argc < 2)
        return rp_conf_error(cf, "a \"types\" entry needs a MIME type and extensions");
    const char *type = rp_arena_strdup(cf->arena, cf->argv[0]);
    if (strchr(type, '/') == NULL)
        return rp_conf_error(cf, "is not a MIME type (TYPE/SUBTYPE) in \"types\"");
    for (size_t i = 1; i < cf->argc; i++) {
        char *ext = rp_arena_strdup(cf->arena, cf->argv[i]);
        if (*ext == '\0' || strchr(ext, '/') || strchr(ext, '.'))
            return rp_conf_error(cf, "invalid extension \"%s\"", cf->argv[i]);
        for (char *p = ext; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        mime_t *m = rp_array_push(c->types);
        m->ext = (rp_str_t){ext, strlen(ext)};
        m->type = (rp_str_t){type, strlen(type)};
    }
    return RP_CONF_OK;
}

static const char *set_types(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    static_loc_t *c = conf;
    if (c->types == NULL) {
        c->types = rp_arena_calloc(cf->arena, sizeof(*c->types));
        rp_array_init(c->types, cf->arena, 64, sizeof(mime_t));
    }
    return rp_conf_parse_entries(cf, cf->ctx, types_entry, c);
}

static const char *ims_values[] = {"off", "exact", "before", NULL};

static const char *set_ims(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    static_loc_t *c = conf;
    if (c->ims != RP_CONF_UNSET)
        return "duplicate directive";
    for (int i = 0; ims_values[i]; i++)
        if (strcmp(cf->argv[1], ims_values[i]) == 0) {
            c->ims = i;
            return RP_CONF_OK;
        }
    return rp_conf_error(cf, "invalid value \"%s\", it must be \"off\", \"exact\" or \"before\"",
                         cf->argv[1]);
}

/* ---- paths ---- */

static static_loc_t *loc_of(rp_request_t *r)
{
    return rp_http_loc_conf(r, rp_http_static_module);
}

int rp_http_static_enabled(rp_request_t *r)
{
    return loc_of(r)->enabled;
}

int rp_http_static_whole_alias(rp_request_t *r)
{
    return loc_of(r)->whole_alias;
}

static rp_str_t document_root(rp_request_t *r, const static_loc_t *c)
{
    rp_str_t root = c->root->has_vars ? rp_cv_eval(r, c->root) : c->root->value;
    if (c->root->has_vars && (root.len == 0 || root.data[0] != '/')) {
        size_t pl = strlen(c->prefix);
        char *p = rp_arena_alloc(r->arena, pl + root.len + 2);
        memcpy(p, c->prefix, pl);
        size_t k = pl;
        if (k == 0 || p[k - 1] != '/')
            p[k++] = '/';
        memcpy(p + k, root.data, root.len);
        root = (rp_str_t){p, k + root.len};
    }
    return root;
}

rp_str_t rp_http_static_map(rp_request_t *r, rp_str_t uri, size_t *root_len)
{
    const static_loc_t *c = loc_of(r);
    rp_str_t root = document_root(r, c);
    rp_str_t tail = uri;
    static_ctx_t *ctx = rp_http_get_ctx(r, rp_http_static_module);
    if (c->whole_alias && !(ctx && ctx->add_uri_to_alias)) {
        tail = RP_NULL_STR;
    } else if (c->alias) {
        size_t skip = c->loc_len < uri.len ? c->loc_len : uri.len;
        tail = (rp_str_t){uri.data + skip, uri.len - skip};
    }
    char *p = rp_arena_alloc(r->arena, root.len + tail.len + 1);
    memcpy(p, root.data, root.len);
    if (tail.len)
        memcpy(p + root.len, tail.data, tail.len);
    p[root.len + tail.len] = '\0';
    if (root_len)
        *root_len = root.len;
    return (rp_str_t){p, root.len + tail.len};
}

/* ---- variables ---- */

static int get_document_root(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)v;
    *out = document_root(r, loc_of(r));
    return 0;
}

/* realpath(3) runs on the loop: only a configuration that logs or uses the variable
 * pays for it, and it walks what is almost always in the dentry cache. */
static int get_realpath_root(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)v;
    rp_str_t root = document_root(r, loc_of(r));
    char *z = rp_arena_alloc(r->arena, root.len + 1);
    memcpy(z, root.data, root.len);
    z[root.len] = '\0';
    char buf[PATH_MAX];
    if (realpath(z, buf) == NULL)
        return -1;
    size_t n = strlen(buf);
    char *p = rp_arena_alloc(r->arena, n);
    memcpy(p, buf, n);
    *out = (rp_str_t){p, n};
    return 0;
}

static int get_request_filename(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    (void)v;
    *out = rp_http_static_map(r, r->uri, NULL);
    return 0;
}

static const rp_var_def_t static_vars[] = {
    {"document_root", get_document_root, NULL, RP_VAR_NOCACHE, 0},
    {"realpath_root", get_realpath_root, NULL, RP_VAR_NOCACHE, 0},
    {"request_filename", get_request_filename, NULL, RP_VAR_NOCACHE, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, static_vars);
}

/* ---- the answer ---- */

static rp_str_t content_type(rp_request_t *r, const static_loc_t *c)
{
    rp_str_t uri = r->uri;
    size_t i = uri.len;
    while (i > 0 && uri.data[i - 1] != '.' && uri.data[i - 1] != '/')
        i--;
    if (i > 0 && uri.data[i - 1] == '.' && i < uri.len && uri.len - i <= 32) {
        char ext[32]; /* lowercase, as the table is */
        size_t len = uri.len - i;
        for (size_t k = 0; k < len; k++) {
            char ch = uri.data[i + k];
            ext[k] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
        const mime_t *m = c->types ? c->types->elts : default_types;
        size_t n = c->types ? c->types->nelts : sizeof(default_types) / sizeof(default_types[0]);
        /* the last mention of an extension wins, as nginx's later line replaces */
        for (size_t k = n; k-- > 0;)
            if (m[k].ext.len == len && m[k].ext.data[0] == ext[0] &&
                memcmp(m[k].ext.data, ext, len) == 0)
                return m[k].type;
    }
    rp_http_core_loc_conf_t *clcf = r->clcf;
    return clcf->default_type ? (rp_str_t){clcf->default_type, strlen(clcf->default_type)}
                              : RP_STR("text/plain");
}

static rp_str_t http_time(rp_request_t *r, time_t t)
{
    static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* the same files are served again and again: the last date formatted is kept */
    static time_t last = -1;
    static char text[32];
    static int len;
    if (t != last) {
        struct tm tm;
        gmtime_r(&t, &tm);
        len = snprintf(text, sizeof(text), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                       tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                       tm.tm_sec);
        last = t;
    }
    char *p = rp_arena_alloc(r->arena, (size_t)len);
    memcpy(p, text, (size_t)len);
    return (rp_str_t){p, (size_t)len};
}

static size_t put_hex(char *p, uint64_t v)
{
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    for (size_t k = 0; k < n; k++)
        p[k] = tmp[n - 1 - k];
    return n;
}

/* nginx's entity tag: "mtime-size" in hexadecimal */
static rp_str_t make_etag(rp_request_t *r, uint64_t mtime, uint64_t size)
{
    char *e = rp_arena_alloc(r->arena, 40);
    size_t n = 0;
    e[n++] = '"';
    n += put_hex(e + n, mtime);
    e[n++] = '-';
    n += put_hex(e + n, size);
    e[n++] = '"';
    return (rp_str_t){e, n};
}

/* Whether an If-Match / If-None-Match list names etag (weak: W/ ignored on both). */
static int etag_listed(rp_str_t list, rp_str_t etag, int weak)
{
    if (list.len == 1 && list.data[0] == '*')
        return 1;
    if (etag.len == 0)
        return 0;
    if (weak && etag.len > 2 && etag.data[0] == 'W' && etag.data[1] == '/')
        etag.data += 2, etag.len -= 2;
    const char *s = list.data, *end = list.data + list.len;
    while (s < end) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == ','))
            s++;
        if (s == end)
            break;
        if (weak && end - s > 2 && s[0] == 'W' && s[1] == '/')
            s += 2;
        if ((size_t)(end - s) >= etag.len && memcmp(s, etag.data, etag.len) == 0) {
            const char *q = s + etag.len;
            while (q < end && (*q == ' ' || *q == '\t'))
                q++;
            if (q == end || *q == ',')
                return 1;
        }
        while (s < end && *s != ',')
            s++;
    }
    return 0;
}

/*
 * nginx's range parser: 0 with the ranges, 416 when none is satisfiable (or the
 * header is malformed), -1 when the whole file is to be sent instead (too many
 * ranges, ranges adding up to more than the file, "bytes=0-" of an empty file).
 */
static int parse_ranges(rp_request_t *r, rp_str_t h, off_t len, int max, static_ctx_t *ctx)
{
    const char *p = h.data + 6, *end = h.data + h.len;
    off_t size = 0;
    int left = max, cap = 4;
    ctx->ranges = rp_arena_alloc(r->arena, cap * sizeof(range_t));
    ctx->nranges = 0;
    for (;;) {
        off_t start = 0, stop = 0;
        int suffix = 0;
        while (p < end && *p == ' ')
            p++;
        if (p < end && *p != '-') {
            if (*p < '0' || *p > '9')
                return 416;
            while (p < end && *p >= '0' && *p <= '9') {
                if (start >= (INT64_MAX - 9) / 10)
                    return 416;
                start = start * 10 + (*p++ - '0');
            }
            while (p < end && *p == ' ')
                p++;
            if (p == end || *p++ != '-')
                return 416;
            while (p < end && *p == ' ')
                p++;
            if (p == end || *p == ',') {
                stop = len;
                goto found;
            }
        } else {
            suffix = 1;
            p++;
        }
        if (p >= end || *p < '0' || *p > '9')
            return 416;
        while (p < end && *p >= '0' && *p <= '9') {
            if (stop >= (INT64_MAX - 9) / 10)
                return 416;
            stop = stop * 10 + (*p++ - '0');
        }
        while (p < end && *p == ' ')
            p++;
        if (p < end && *p != ',')
            return 416;
        if (suffix) {
            start = stop < len ? len - stop : 0;
            stop = len - 1;
        }
        if (stop >= len)
            stop = len;
        else
            stop++;
    found:
        if (start < stop) {
            if (left-- == 0)
                return -1;
            if (ctx->nranges == cap) {
                range_t *n = rp_arena_alloc(r->arena, 2 * cap * sizeof(range_t));
                memcpy(n, ctx->ranges, cap * sizeof(range_t));
                ctx->ranges = n, cap *= 2;
            }
            ctx->ranges[ctx->nranges++] = (range_t){start, stop};
            size += stop - start;
        } else if (start == 0) {
            return -1;
        }
        if (p >= end || *p++ != ',')
            break;
    }
    if (ctx->nranges == 0)
        return 416;
    if (size > len)
        return -1;
    return 0;
}

static void send_next(rp_request_t *r);

static void read_done(rp_file_t *f)
{
    static_ctx_t *ctx = f->data;
    rp_request_t *r = ctx->r;
    if (f->n <= 0) {
        rp_log_error(RP_LOG_ERR, f->n < 0 ? f->err : 0, "pread() of a file being served %s",
                     f->n < 0 ? "failed" : "ended early (the file shrank)");
        rp_http_abort(r);
        return;
    }
    struct iovec iov = {f->buf, (size_t)f->n};
    ctx->pos += f->n;
    if (rp_http_write(r, &iov, 1) != 0) {
        rp_http_abort(r);
        return;
    }
    if (rp_http_pending(r)) {
        r->on_drain = send_next;
        return;
    }
    send_next(r);
}

/* Sends the next piece: a part header, a read of the file, or the end. */
static void send_next(rp_request_t *r)
{
    static_ctx_t *ctx = rp_http_get_ctx(r, rp_http_static_module);
    for (;;) {
        range_t *rg = &ctx->ranges[ctx->cur];
        if (ctx->pos < rg->end && ctx->pos < ctx->pre_n) {
            off_t upto = rg->end < ctx->pre_n ? rg->end : ctx->pre_n;
            struct iovec iov = {ctx->file->buf + ctx->pos, (size_t)(upto - ctx->pos)};
            ctx->pos = upto;
            if (rp_http_write(r, &iov, 1) != 0) {
                rp_http_abort(r);
                return;
            }
            if (rp_http_pending(r)) {
                r->on_drain = send_next;
                return;
            }
            continue;
        }
        if (ctx->pos < rg->end) {
            if (!ctx->big) {
                /* past what the open read: a job with a reading buffer takes the file */
                rp_file_t *old = ctx->file, *f = rp_file_new(CHUNK);
                if (f == NULL) {
                    rp_http_abort(r);
                    return;
                }
                f->fd = old->fd;
                f->st = old->st;
                f->buf = (char *)(f + 1);
                f->cap = CHUNK;
                old->fd = -1;
                rp_file_free(old);
                ctx->file = f;
                ctx->pre_n = 0;
                ctx->big = 1;
            }
            rp_file_t *f = ctx->file;
            f->op = RP_FILE_READ;
            f->off = ctx->pos;
            f->len = (size_t)(rg->end - ctx->pos) < f->cap ? (size_t)(rg->end - ctx->pos) : f->cap;
            f->done = read_done;
            f->data = ctx;
            if (rp_file_submit(f) != 0)
                rp_http_abort(r);
            return;
        }
        if (++ctx->cur < ctx->nranges) {
            ctx->pos = ctx->ranges[ctx->cur].start;
            if (ctx->multipart) {
                char *h = rp_arena_alloc(r->arena, 160 + ctx->part_type.len);
                int n = snprintf(h, 160 + ctx->part_type.len,
                                 "\r\n--%.*s\r\nContent-Type: %.*s\r\nContent-Range: bytes "
                                 "%" PRId64 "-%" PRId64 "/%" PRId64 "\r\n\r\n",
                                 (int)ctx->boundary.len, ctx->boundary.data,
                                 (int)ctx->part_type.len, ctx->part_type.data, (int64_t)ctx->pos,
                                 (int64_t)ctx->ranges[ctx->cur].end - 1,
                                 (int64_t)ctx->file->st.st_size);
                struct iovec iov = {h, (size_t)n};
                if (rp_http_write(r, &iov, 1) != 0) {
                    rp_http_abort(r);
                    return;
                }
            }
            continue;
        }
        if (ctx->multipart) {
            char *h = rp_arena_alloc(r->arena, 64);
            int n = snprintf(h, 64, "\r\n--%.*s--\r\n", (int)ctx->boundary.len, ctx->boundary.data);
            struct iovec iov = {h, (size_t)n};
            if (rp_http_write(r, &iov, 1) != 0) {
                rp_http_abort(r);
                return;
            }
        }
        rp_http_response_end(r);
        return;
    }
}

static int method_ok(rp_request_t *r)
{
    for (size_t i = 0; i < sizeof(methods_ok) / sizeof(methods_ok[0]); i++)
        if (r->method.len == methods_ok[i].len &&
            memcmp(r->method.data, methods_ok[i].data, r->method.len) == 0)
            return 1;
    return 0;
}

static void redirect_dir(rp_request_t *r)
{
    /* the URI with its slash, made absolute as every redirect (absolute_redirect) */
    size_t cap = r->uri.len + r->args.len + 3;
    char *loc = rp_arena_alloc(r->arena, cap);
    int n = snprintf(loc, cap, "%.*s/%s%.*s", (int)r->uri.len, r->uri.data, r->args.len ? "?" : "",
                     (int)r->args.len, r->args.data);
    rp_http_add_header(r, RP_STR("Location"),
                       rp_http_absolute_location(r, (rp_str_t){loc, (size_t)n}));
    rp_http_send_error(r, 301);
}

static int errno_status(int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
    case ELOOP:
        return 404;
    case EACCES:
    case EPERM:
        return 403;
    default:
        return 500;
    }
}

static void open_done(rp_file_t *f)
{
    static_ctx_t *ctx = f->data;
    rp_request_t *r = ctx->r;
    static_loc_t *c = loc_of(r);

    if (f->fd < 0) {
        int st = errno_status(f->err);
        rp_log_error(st == 500 ? RP_LOG_CRIT : RP_LOG_ERR, f->err, "open() \"%s\" failed", f->path);
        rp_http_send_error(r, st);
        return;
    }
    if (S_ISDIR(f->st.st_mode)) {
        redirect_dir(r);
        return;
    }
    if (!S_ISREG(f->st.st_mode)) {
        rp_http_send_error(r, 404);
        return;
    }
    if (rp_str_eq(r->method, "POST")) {
        rp_http_send_error(r, 405);
        return;
    }

    off_t len = f->st.st_size;
    time_t mtime = f->st.st_mtime;
    ctx->pre_n = f->n > 0 ? f->n : 0;
    rp_str_t etag = RP_NULL_STR;
    if (c->etag) {
        etag = make_etag(r, (uint64_t)mtime, (uint64_t)len);
    }
    rp_str_t lm = http_time(r, mtime);
    rp_str_t type = content_type(r, c);

    /* nginx's not_modified and range filters act on a 200 only: not on an error page
     * (error_page) served from a file, which keeps its status and is sent whole */
    int cond = r->err_status == 0;
    static const rp_str_t none;

    /* nginx's not_modified filter */
    rp_str_t ius = cond ? rp_request_header(r, "if-unmodified-since") : none;
    if (ius.data) {
        int64_t t = rp_http_time_parse(ius.data, ius.len);
        if (t < 0 || t < (int64_t)mtime) {
            rp_http_send_error(r, 412);
            return;
        }
    }
    rp_str_t im = cond ? rp_request_header(r, "if-match") : none;
    if (im.data && !etag_listed(im, etag, 0)) {
        rp_http_send_error(r, 412);
        return;
    }
    rp_str_t ims = cond ? rp_request_header(r, "if-modified-since") : none;
    rp_str_t inm = cond ? rp_request_header(r, "if-none-match") : none;
    if (ims.data || inm.data) {
        int modified = 0;
        if (ims.data) {
            int64_t t = rp_http_time_parse(ims.data, ims.len);
            if (c->ims == IMS_OFF)
                modified = 1;
            else if (c->ims == IMS_EXACT)
                modified = t != (int64_t)mtime;
            else
                modified = t < (int64_t)mtime;
        }
        if (!modified && inm.data && !etag_listed(inm, etag, 1))
            modified = 1;
        if (!modified) {
            rp_http_add_header(r, RP_STR("Last-Modified"), lm);
            if (etag.len)
                rp_http_add_header(r, RP_STR("ETag"), etag);
            r->status = 304;
            r->response_started = 1;
            if (rp_http_response_begin(r, -1) != 0) {
                rp_http_abort(r);
                return;
            }
            rp_http_response_end(r);
            return;
        }
    }

    /* nginx's range filter */
    ctx->ranges = rp_arena_alloc(r->arena, sizeof(range_t));
    ctx->ranges[0] = (range_t){0, len};
    ctx->nranges = 1;
    int status = 200;
    rp_str_t range = cond ? rp_request_header(r, "range") : none;
    int use_range =
        range.len >= 7 && strncasecmp(range.data, "bytes=", 6) == 0 && c->max_ranges > 0;
    rp_str_t ifr = rp_request_header(r, "if-range");
    if (use_range && ifr.data) {
        if (ifr.len >= 2 && ifr.data[ifr.len - 1] == '"')
            use_range = etag.len == ifr.len && memcmp(etag.data, ifr.data, ifr.len) == 0;
        else
            use_range = rp_http_time_parse(ifr.data, ifr.len) == (int64_t)mtime;
    }
    if (use_range) {
        int rc = parse_ranges(r, range, len, c->max_ranges, ctx);
        if (rc == 416) {
            char *cr = rp_arena_alloc(r->arena, 40);
            int n = snprintf(cr, 40, "bytes */%" PRId64, (int64_t)len);
            rp_http_add_header(r, RP_STR("Content-Range"), (rp_str_t){cr, (size_t)n});
            rp_http_send_error(r, 416);
            return;
        }
        if (rc < 0) {
            ctx->ranges = rp_arena_alloc(r->arena, sizeof(range_t));
            ctx->ranges[0] = (range_t){0, len};
            ctx->nranges = 1;
        } else {
            status = 206;
        }
    }

    int64_t body_len = len;
    rp_http_add_header(r, RP_STR("Content-Type"), type);
    if (status == 206 && ctx->nranges == 1) {
        char *cr = rp_arena_alloc(r->arena, 64);
        int n =
            snprintf(cr, 64, "bytes %" PRId64 "-%" PRId64 "/%" PRId64,
                     (int64_t)ctx->ranges[0].start, (int64_t)ctx->ranges[0].end - 1, (int64_t)len);
        body_len = ctx->ranges[0].end - ctx->ranges[0].start;
        rp_http_add_header(r, RP_STR("Last-Modified"), lm);
        if (etag.len)
            rp_http_add_header(r, RP_STR("ETag"), etag);
        rp_http_add_header(r, RP_STR("Content-Range"), (rp_str_t){cr, (size_t)n});
    } else if (status == 206) {
        /* multipart/byteranges: a boundary of twenty digits, as nginx's */
        static uint64_t counter;
        char *b = rp_arena_alloc(r->arena, 24);
        int bn = snprintf(b, 24, "%020" PRIu64,
                          (uint64_t)++counter + (uint64_t)rp_time_ms() % 1000000000u);
        ctx->boundary = (rp_str_t){b, (size_t)bn};
        ctx->part_type = type;
        ctx->multipart = 1;
        char *ct = rp_arena_alloc(r->arena, 64);
        int cn = snprintf(ct, 64, "multipart/byteranges; boundary=%s", b);
        r->out_headers[r->nout_headers - 1].value = (rp_str_t){ct, (size_t)cn};
        body_len = 0;
        for (int i = 0; i < ctx->nranges; i++) {
            char tmp[160];
            int hn = snprintf(tmp, sizeof(tmp),
                              "\r\n--%s\r\nContent-Type: \r\nContent-Range: bytes "
                              "%" PRId64 "-%" PRId64 "/%" PRId64 "\r\n\r\n",
                              b, (int64_t)ctx->ranges[i].start, (int64_t)ctx->ranges[i].end - 1,
                              (int64_t)len);
            body_len += hn + (int64_t)type.len + (ctx->ranges[i].end - ctx->ranges[i].start);
        }
        body_len += 4 + bn + 4; /* "\r\n--" boundary "--\r\n" */
        rp_http_add_header(r, RP_STR("Last-Modified"), lm);
        if (etag.len)
            rp_http_add_header(r, RP_STR("ETag"), etag);
    } else {
        rp_http_add_header(r, RP_STR("Last-Modified"), lm);
        if (etag.len)
            rp_http_add_header(r, RP_STR("ETag"), etag);
        if (c->max_ranges > 0) /* max_ranges 0: nginx offers no ranges */
            rp_http_add_header(r, RP_STR("Accept-Ranges"), RP_STR("bytes"));
    }
    r->status = status;
    r->response_started = 1;
    if (rp_http_response_begin(r, body_len) != 0) {
        rp_http_abort(r);
        return;
    }
    if (r->head || body_len == 0) {
        rp_http_response_end(r);
        return;
    }
    /* start with the first range (multipart: with its part header) */
    ctx->cur = 0;
    ctx->pos = ctx->ranges[0].start;
    if (ctx->multipart) {
        /* a zero-length pseudo range before the first makes send_next write its header */
        range_t *n = rp_arena_alloc(r->arena, (ctx->nranges + 1) * sizeof(range_t));
        n[0] = (range_t){0, 0};
        memcpy(n + 1, ctx->ranges, ctx->nranges * sizeof(range_t));
        ctx->ranges = n;
        ctx->nranges++;
        ctx->pos = 0;
    }
    send_next(r);
}

static void ctx_cleanup(rp_request_t *r, void *data)
{
    (void)r;
    static_ctx_t *ctx = data;
    rp_file_free(ctx->file); /* in flight: the pool frees it when the thread is through */
    ctx->file = NULL;
}

void rp_http_static_add_uri_to_alias(rp_request_t *r)
{
    static_ctx_t *ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    ctx->r = r;
    ctx->add_uri_to_alias = 1;
    rp_http_set_ctx(r, rp_http_static_module, ctx);
}

static static_ctx_t *new_ctx(rp_request_t *r, size_t extra)
{
    static_ctx_t *old = rp_http_get_ctx(r, rp_http_static_module);
    static_ctx_t *ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
    ctx->add_uri_to_alias = old && old->add_uri_to_alias;
    ctx->r = r;
    ctx->file = rp_file_new(extra);
    if (ctx->file == NULL)
        return NULL;
    rp_http_set_ctx(r, rp_http_static_module, ctx);
    rp_http_cleanup_add(r, ctx_cleanup, ctx);
    return ctx;
}

static void index_done(rp_file_t *f)
{
    static_ctx_t *ctx = f->data;
    rp_request_t *r = ctx->r;
    if (f->found >= 0 && f->found < ctx->nindex) {
        rp_str_t uri = ctx->index_uris[f->found];
        rp_http_internal_redirect(r, uri, r->args);
        return;
    }
    if (f->found == ctx->nindex) {
        rp_log_error(RP_LOG_ERR, 0, "directory index of \"%s\" is forbidden",
                     f->paths[ctx->nindex]);
        rp_http_send_error(r, 403);
        return;
    }
    rp_log_error(RP_LOG_ERR, f->err, "\"%s\" is not found", f->paths[ctx->nindex]);
    rp_http_send_error(r, 404);
}

static int index_handler(rp_request_t *r, static_loc_t *c)
{
    const rp_cv_t *idx = c->index ? c->index->elts : NULL;
    size_t n = c->index ? c->index->nelts : 1;
    rp_str_t *uris = rp_arena_alloc(r->arena, n * sizeof(rp_str_t));
    rp_str_t *paths = rp_arena_alloc(r->arena, (n + 1) * sizeof(rp_str_t));
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        rp_str_t name =
            idx ? (idx[i].has_vars ? rp_cv_eval(r, &idx[i]) : idx[i].value) : default_index;
        if (name.len && name.data[0] == '/') {
            uris[i] = name;
            if (i == n - 1) /* nginx: a last absolute index is redirected to untested */
                return rp_http_internal_redirect(r, name, r->args);
        } else {
            char *u = rp_arena_alloc(r->arena, r->uri.len + name.len);
            memcpy(u, r->uri.data, r->uri.len);
            memcpy(u + r->uri.len, name.data, name.len);
            uris[i] = (rp_str_t){u, r->uri.len + name.len};
        }
        paths[i] = rp_http_static_map(r, uris[i], NULL);
        total += paths[i].len + 1;
    }
    paths[n] = rp_http_static_map(r, r->uri, NULL);
    total += paths[n].len + 1;

    static_ctx_t *ctx = new_ctx(r, total);
    if (ctx == NULL)
        return RP_ERROR;
    rp_file_t *f = ctx->file;
    char *p = (char *)(f + 1);
    for (size_t i = 0; i <= n; i++) {
        memcpy(p, paths[i].data, paths[i].len + 1);
        f->paths[i] = p;
        f->any[i] = i < n;
        f->dir[i] = i == n;
        p += paths[i].len + 1;
    }
    f->npaths = (int)n + 1;
    f->op = RP_FILE_PROBE;
    f->done = index_done;
    f->data = ctx;
    ctx->index_uris = uris;
    ctx->nindex = (int)n;
    if (rp_file_submit(f) != 0)
        return RP_ERROR;
    return RP_AGAIN;
}

static int static_handler(rp_request_t *r)
{
    static_loc_t *c = loc_of(r);
    if (!c->enabled)
        return RP_DECLINED;
    if (r->uri.len == 0 || memchr(r->uri.data, '\0', r->uri.len)) {
        rp_http_send_error(r, 400); /* a path with a NUL names no file */
        return RP_DONE;
    }
    int ends_slash = r->uri.data[r->uri.len - 1] == '/';
    if (!method_ok(r)) {
        rp_http_send_error(r, 405);
        return RP_DONE;
    }
    if (ends_slash)
        return index_handler(r, c);

    size_t root_len;
    rp_str_t path = rp_http_static_map(r, r->uri, &root_len);
    size_t pre = r->head ? 0 : PREREAD;
    static_ctx_t *ctx = new_ctx(r, path.len + 1 + pre);
    if (ctx == NULL)
        return RP_ERROR;
    rp_file_t *f = ctx->file;
    f->path = (char *)(f + 1);
    memcpy(f->path, path.data, path.len + 1);
    f->buf = f->path + path.len + 1;
    f->cap = pre;
    f->op = RP_FILE_OPEN;
    f->done = open_done;
    f->data = ctx;
    if (rp_file_submit(f) != 0)
        return RP_ERROR;
    return RP_AGAIN;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_CONTENT, static_handler);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define LOC(f)   offsetof(static_loc_t, f)

static const rp_command_t commands[] = {
    {"root", ANYWHERE | RP_CTX_LIF, 0, 1, 1, set_root, RP_CONF_LOC, 0, NULL},
    {"alias", RP_CTX_LOCATION, 0, 1, 1, set_root, RP_CONF_LOC, 0, NULL},
    {"index", ANYWHERE, 0, 1, RP_ARGS_ANY, set_index, RP_CONF_LOC, 0, NULL},
    {"types", ANYWHERE, RP_CMD_BLOCK, 0, 0, set_types, RP_CONF_LOC, 0, NULL},
    {"etag", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(etag), NULL},
    {"if_modified_since", ANYWHERE, 0, 1, 1, set_ims, RP_CONF_LOC, 0, NULL},
    {"max_ranges", ANYWHERE, 0, 1, 1, rp_conf_set_num, RP_CONF_LOC, LOC(max_ranges), NULL},
    {"sendfile", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(sendfile), NULL},
    {"tcp_nopush", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(tcp_nopush), NULL},
    {"tcp_nodelay", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(tcp_nodelay), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_static_module = {
    .name = "http_static",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
