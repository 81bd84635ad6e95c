/*
 * Buffering for proxy_pass, nginx's defaults: the response is read from the upstream
 * as fast as it sends it, into memory (proxy_buffers) and then a temporary file
 * (proxy_max_temp_file_size), so the upstream connection goes back to the keep-alive
 * pool once the whole response is read, however slowly the client reads; and the
 * request body is read whole (client_body_buffer_size in memory, then a temporary
 * file) before an upstream is chosen, so a slow uploader holds no upstream connection.
 * This file has the directives, the temporary directories (made at start, owned by
 * `user`) and the response buffer; the request body's spilling is request_body.c's,
 * the exchange's use of both is proxy.c's.
 *
 * The temporary files are read and written by the worker itself, in its event loop,
 * as nginx does without aio: a write is at most what one upstream read brought
 * (proxy_temp_file_write_size bounds what one event writes before the loop turns), a
 * read at most 16 KB per client write, and both hit the page cache, which on a
 * gateway's small temporary files is where they stay. A response that fits in the
 * memory buffers never touches a file, and one whose client keeps up never touches
 * the buffers (the bytes go straight to the client, as with buffering off).
 */
#include "upstream/proxy_buffer.h"
#include "conf/conf.h"
#include "core/cycle.h"
#include "core/log.h"
#include "http/http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the directives ---- */

typedef struct {
    rp_array_t paths; /* char *: the temporary directories to make at start */
} buf_main_conf_t;

static void *create_main(rp_conf_t *cf)
{
    buf_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->paths, cf->arena, 4, sizeof(char *));
    return m;
}

static void *create_loc(rp_conf_t *cf)
{
    rp_proxy_buf_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->buffering = RP_CONF_UNSET;
    c->request_buffering = RP_CONF_UNSET;
    c->nbufs = RP_CONF_UNSET_SIZE;
    c->bufsize = RP_CONF_UNSET_SIZE;
    c->busy_size = RP_CONF_UNSET_SIZE;
    c->max_temp = RP_CONF_UNSET_SIZE;
    c->temp_write_size = RP_CONF_UNSET_SIZE;
    c->body_buffer_size = RP_CONF_UNSET_SIZE;
    c->body_in_file_only = RP_CONF_UNSET;
    c->body_in_single_buffer = RP_CONF_UNSET;
    c->http_version = RP_CONF_UNSET;
    return c;
}

static void add_path(rp_conf_t *cf, const char *path)
{
    buf_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_proxy_buffer_module);
    for (size_t i = 0; i < m->paths.nelts; i++)
        if (strcmp(((char **)m->paths.elts)[i], path) == 0)
            return;
    *(const char **)rp_array_push(&m->paths) = path;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_proxy_buf_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->buffering, p->buffering, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->request_buffering, p->request_buffering, RP_CONF_UNSET, 1);
    if (c->nbufs == RP_CONF_UNSET_SIZE) {
        c->nbufs = p->nbufs == RP_CONF_UNSET_SIZE ? 8 : p->nbufs;
        c->bufsize = p->bufsize == RP_CONF_UNSET_SIZE ? 4096 : p->bufsize;
    }
    RP_CONF_MERGE(c->busy_size, p->busy_size, RP_CONF_UNSET_SIZE, 2 * c->bufsize);
    RP_CONF_MERGE(c->max_temp, p->max_temp, RP_CONF_UNSET_SIZE, (size_t)1024 * 1024 * 1024);
    RP_CONF_MERGE(c->temp_write_size, p->temp_write_size, RP_CONF_UNSET_SIZE, 2 * c->bufsize);
    RP_CONF_MERGE(c->body_buffer_size, p->body_buffer_size, RP_CONF_UNSET_SIZE, 16384);
    RP_CONF_MERGE(c->body_in_file_only, p->body_in_file_only, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->body_in_single_buffer, p->body_in_single_buffer, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->http_version, p->http_version, RP_CONF_UNSET, 11);
    if (c->temp_path == NULL)
        c->temp_path = p->temp_path;
    if (c->temp_path == NULL) {
        c->temp_path = rp_conf_full_path(cf, "proxy_temp");
        add_path(cf, c->temp_path);
    }
    if (c->body_temp_path == NULL)
        c->body_temp_path = p->body_temp_path;
    if (c->body_temp_path == NULL) {
        c->body_temp_path = rp_conf_full_path(cf, "client_body_temp");
        add_path(cf, c->body_temp_path);
    }
    /* nginx's own consistency rules */
    if (c->busy_size >= (c->nbufs - 1) * c->bufsize)
        return "\"proxy_busy_buffers_size\" must be less than the size of all "
               "\"proxy_buffers\" minus one buffer";
    if (c->temp_write_size < c->bufsize)
        return "\"proxy_temp_file_write_size\" must be equal to or greater than the size "
               "of one \"proxy_buffers\" buffer";
    if (c->max_temp != 0 && c->max_temp < c->bufsize)
        return "\"proxy_max_temp_file_size\" must be equal to zero to disable temporary "
               "files usage or must be equal to or greater than the size of one "
               "\"proxy_buffers\" buffer";
    return RP_CONF_OK;
}

static const char *set_buffers(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_buf_conf_t *c = conf;
    (void)cmd;
    if (c->nbufs != RP_CONF_UNSET_SIZE)
        return "is duplicate";
    long n;
    size_t size;
    if (rp_parse_int(cf->argv[1], 1 << 20, &n) != 0 || n < 2)
        return rp_conf_error(cf, "invalid number of buffers \"%s\" (at least 2)", cf->argv[1]);
    if (rp_parse_size(cf->argv[2], &size) != 0 || size < 1024 || size > 16 * 1024 * 1024)
        return rp_conf_error(cf, "invalid buffer size \"%s\" (1k to 16m)", cf->argv[2]);
    c->nbufs = (size_t)n;
    c->bufsize = size;
    return RP_CONF_OK;
}

static const char *set_temp_path(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char **f = (const char **)((char *)conf + cmd->offset);
    if (*f != NULL)
        return "is duplicate";
    /* nginx's levels: up to three, each of 1 or 2 digits; the files here have no names
     * (unlinked at once), so the levels are checked and not used */
    for (unsigned i = 2; i < cf->argc; i++) {
        const char *l = cf->argv[i];
        if (strcmp(l, "1") != 0 && strcmp(l, "2") != 0)
            return rp_conf_error(cf, "invalid level \"%s\" (1 or 2)", l);
    }
    *f = rp_conf_full_path(cf, cf->argv[1]);
    add_path(cf, *f);
    return RP_CONF_OK;
}

static const char *set_http_version(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_buf_conf_t *c = conf;
    (void)cmd;
    if (c->http_version != RP_CONF_UNSET)
        return "is duplicate";
    if (strcmp(cf->argv[1], "1.0") == 0)
        c->http_version = 10;
    else if (strcmp(cf->argv[1], "1.1") == 0)
        c->http_version = 11;
    else
        return rp_conf_error(cf, "invalid value \"%s\" (1.0 or 1.1)", cf->argv[1]);
    return RP_CONF_OK;
}

static const char *set_max_temp(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return rp_conf_set_size(cf, cmd, conf);
}

/* client_body_in_file_only on|clean|off: the body is kept in a file whatever its size
 * (the file is always removed at once here, so clean and on mean the same) */
static const char *set_in_file_only(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_proxy_buf_conf_t *c = conf;
    (void)cmd;
    if (c->body_in_file_only != RP_CONF_UNSET)
        return "is duplicate";
    if (strcmp(cf->argv[1], "on") == 0 || strcmp(cf->argv[1], "clean") == 0)
        c->body_in_file_only = 1;
    else if (strcmp(cf->argv[1], "off") == 0)
        c->body_in_file_only = 0;
    else
        return rp_conf_error(cf, "invalid value \"%s\" (on, clean or off)", cf->argv[1]);
    return RP_CONF_OK;
}

/* Makes the temporary directories (and their parents), owned by `user` when the master
 * runs as root, before the workers start. */
static int init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen)
{
    (void)prev;
    (void)flags;
    buf_main_conf_t *m = rp_http_main_conf(cycle, &rp_proxy_buffer_module);
    if (m == NULL)
        return 0;
    rp_core_conf_t *core = rp_core_conf(cycle);
    for (size_t i = 0; i < m->paths.nelts; i++) {
        const char *path = ((char **)m->paths.elts)[i];
        char buf[4096];
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *s = buf + 1;; s++) {
            char c = *s;
            if (c != '/' && c != '\0')
                continue;
            *s = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "mkdir() \"%s\" failed (%d: %s)", buf, errno,
                         strerror(errno));
                return -1;
            }
            *s = c;
            if (c == '\0')
                break;
        }
        if (core && core->user_name && geteuid() == 0 &&
            chown(path, core->user_uid, core->user_gid) != 0) {
            snprintf(err, errlen, "chown(\"%s\") failed (%d: %s)", path, errno, strerror(errno));
            return -1;
        }
    }
    return 0;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define LOC(f)   offsetof(rp_proxy_buf_conf_t, f)

static const rp_command_t commands[] = {
    {"proxy_buffering", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(buffering), NULL},
    {"proxy_request_buffering", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     LOC(request_buffering), NULL},
    {"proxy_buffers", ANYWHERE, 0, 2, 2, set_buffers, RP_CONF_LOC, 0, NULL},
    {"proxy_busy_buffers_size", ANYWHERE, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC, LOC(busy_size),
     NULL},
    {"proxy_max_temp_file_size", ANYWHERE, 0, 1, 1, set_max_temp, RP_CONF_LOC, LOC(max_temp), NULL},
    {"proxy_temp_file_write_size", ANYWHERE, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC,
     LOC(temp_write_size), NULL},
    {"proxy_temp_path", ANYWHERE, 0, 1, 4, set_temp_path, RP_CONF_LOC, LOC(temp_path), NULL},
    {"proxy_http_version", ANYWHERE, 0, 1, 1, set_http_version, RP_CONF_LOC, 0, NULL},
    {"client_body_buffer_size", ANYWHERE, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC,
     LOC(body_buffer_size), NULL},
    {"client_body_temp_path", ANYWHERE, 0, 1, 4, set_temp_path, RP_CONF_LOC, LOC(body_temp_path),
     NULL},
    {"client_body_in_file_only", ANYWHERE, 0, 1, 1, set_in_file_only, RP_CONF_LOC, 0, NULL},
    {"client_body_in_single_buffer", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     LOC(body_in_single_buffer), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_proxy_buffer_module = {
    .name = "proxy_buffer",
    .commands = commands,
    .create_http_main = create_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .init_master = init_master,
};

/* ---- the response buffer ---- */

struct rp_rbuf_s {
    rp_request_t *r;
    const rp_proxy_buf_conf_t *c;
    struct evbuffer *mem;
    size_t mem_max;
    int fd;         /* -1 until the memory is full */
    off_t w, rd;    /* the file: written up to, sent up to (both 0 again once equal) */
    size_t written; /* to the file since rp_rbuf_file_written */
};

static void rbuf_free(rp_request_t *r, void *data)
{
    rp_rbuf_t *b = data;
    (void)r;
    evbuffer_free(b->mem);
    if (b->fd >= 0)
        close(b->fd);
}

rp_rbuf_t *rp_rbuf_new(rp_request_t *r, const rp_proxy_buf_conf_t *c)
{
    rp_rbuf_t *b = rp_arena_calloc(r->arena, sizeof(*b));
    b->r = r;
    b->c = c;
    b->mem = evbuffer_new();
    if (b->mem == NULL) {
        fprintf(stderr, "rampart: out of memory: a response buffer\n");
        abort();
    }
    b->mem_max = c->nbufs * c->bufsize;
    b->fd = -1;
    rp_http_cleanup_add(r, rbuf_free, b);
    return b;
}

size_t rp_rbuf_len(const rp_rbuf_t *b)
{
    return evbuffer_get_length(b->mem) + (size_t)(b->w - b->rd);
}

size_t rp_rbuf_room(const rp_rbuf_t *b)
{
    size_t m = evbuffer_get_length(b->mem);
    size_t room = b->w == b->rd && m < b->mem_max ? b->mem_max - m : 0;
    if (b->c->max_temp > (size_t)b->w)
        room += b->c->max_temp - (size_t)b->w;
    return room;
}

size_t rp_rbuf_file_written(rp_rbuf_t *b)
{
    size_t n = b->written;
    b->written = 0;
    return n;
}

int rp_rbuf_put(rp_rbuf_t *b, const char *data, size_t n)
{
    size_t m = evbuffer_get_length(b->mem);
    if (b->c->max_temp == 0) {
        /* no file: the reader asked for no more than rp_rbuf_room */
        evbuffer_add(b->mem, data, n);
        return 0;
    }
    if (b->w == b->rd && m < b->mem_max) {
        /* the file is empty: memory first */
        size_t k = n < b->mem_max - m ? n : b->mem_max - m;
        evbuffer_add(b->mem, data, k);
        data += k;
        n -= k;
    }
    if (n == 0)
        return 0;
    if (b->fd < 0) {
        b->fd = rp_temp_file_open(b->c->temp_path);
        if (b->fd < 0) {
            rp_log_error(RP_LOG_CRIT, errno, "cannot open a temporary file in \"%s\"",
                         b->c->temp_path);
            return -1;
        }
        rp_log_error(RP_LOG_WARN, 0, "an upstream response is buffered to a temporary file");
    }
    while (n) {
        ssize_t k = pwrite(b->fd, data, n, b->w);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rp_log_error(RP_LOG_CRIT, errno, "pwrite() to a temporary file in \"%s\" failed",
                         b->c->temp_path);
            return -1;
        }
        b->w += k;
        b->written += (size_t)k;
        data += k;
        n -= (size_t)k;
    }
    return 0;
}

int rp_rbuf_send(rp_rbuf_t *b)
{
    static char chunk[16384];
    rp_request_t *r = b->r;
    while (!rp_http_pending(r)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(b->mem, -1, NULL, &v, 1) > 0) {
            struct iovec iov = {v.iov_base, v.iov_len};
            if (rp_http_write(r, &iov, 1) != 0)
                return -1;
            evbuffer_drain(b->mem, v.iov_len);
            continue;
        }
        if (b->rd == b->w)
            break;
        size_t want =
            (size_t)(b->w - b->rd) < sizeof(chunk) ? (size_t)(b->w - b->rd) : sizeof(chunk);
        ssize_t k = pread(b->fd, chunk, want, b->rd);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rp_log_error(RP_LOG_CRIT, errno, "pread() of a temporary file failed");
            return -1;
        }
        b->rd += k;
        if (b->rd == b->w)
            b->rd = b->w = 0; /* all sent: the file is reused from its start */
        struct iovec iov = {chunk, (size_t)k};
        if (rp_http_write(r, &iov, 1) != 0)
            return -1;
    }
    return 0;
}
