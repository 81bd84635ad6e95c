/*
 * The request body as handlers read it: as it arrives from the protocol
 * (rp_http_read_body streams it, with back-pressure on the client), or read whole
 * first and kept in memory (rp_http_keep_body), for a handler that needs all of it
 * before the request may go on (mirror_request_body) and for bodies that have more
 * than one reader (the proxy and every mirror).
 *
 * A kept body is an evbuffer behind a reference count: each request that holds it
 * (the one that read it and the subrequests that send it) drops its reference when
 * it ends, and the last one frees it, so a background subrequest may send a body its
 * parent is long done with. Each holder reads it from its own offset
 * (r->body_read). Requests that never keep a body pay one pointer test per read.
 *
 * The proxy keeps a body with a memory bound (rp_http_keep_body_spill, for
 * proxy_request_buffering): past client_body_buffer_size what was read moves to a
 * temporary file, unlinked at once, so the body is the file's bytes followed by the
 * memory's. The worker writes it itself, as nginx does without aio: each write is what
 * accumulated past the bound (a few reads of the client), and it lands in the page cache.
 */
#include "core/log.h"
#include "http/request.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK 16384

struct rp_http_body_s {
    struct evbuffer *data; /* what follows the file's bytes */
    unsigned refs;
    unsigned complete : 1;
    int fd;             /* the temporary file, or -1 */
    size_t file_len;    /* bytes in it (the body's first ones) */
    size_t mem_max;     /* beyond this the memory moves to the file (with temp_dir) */
    const char *temp_dir;
};

int rp_temp_file_open(const char *dir)
{
    int fd;
#ifdef O_TMPFILE
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
#endif
    char path[4096];
    snprintf(path, sizeof(path), "%s/rpXXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0)
        unlink(path);
    return fd;
}

/* Moves the kept memory to the end of the file. 0, or -1 (logged). */
static int spill(rp_http_body_t *b)
{
    if (b->fd < 0) {
        b->fd = rp_temp_file_open(b->temp_dir);
        if (b->fd < 0) {
            rp_log_error(RP_LOG_CRIT, errno, "cannot open a temporary file in \"%s\"",
                         b->temp_dir);
            return -1;
        }
        rp_log_error(RP_LOG_WARN, 0, "a client request body is buffered to a temporary file");
    }
    struct evbuffer_iovec v[8];
    while (evbuffer_get_length(b->data)) {
        int nv = evbuffer_peek(b->data, -1, NULL, v, 8);
        struct iovec iov[8];
        for (int i = 0; i < nv && i < 8; i++)
            iov[i] = (struct iovec){v[i].iov_base, v[i].iov_len};
        ssize_t k = pwritev(b->fd, iov, nv < 8 ? nv : 8, (off_t)b->file_len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rp_log_error(RP_LOG_CRIT, errno, "pwritev() to a temporary file in \"%s\" failed",
                         b->temp_dir);
            return -1;
        }
        b->file_len += (size_t)k;
        evbuffer_drain(b->data, (size_t)k);
    }
    return 0;
}

/* Allocation failure aborts, as everywhere in rampart (core/arena.h). */
static void out_of_memory(const char *what)
{
    fprintf(stderr, "rampart: out of memory: %s\n", what);
    abort();
}

static void body_unref(rp_http_body_t *b)
{
    if (--b->refs == 0) {
        evbuffer_free(b->data);
        if (b->fd >= 0)
            close(b->fd);
        free(b);
    }
}

/* A holder's end (a cleanup of its request). */
static void body_release(rp_request_t *r, void *data)
{
    rp_http_body_t *b = data;
    if (r->body == b) {
        r->body = NULL;
        r->body_read = 0;
    }
    body_unref(b);
}

/* Hands out the kept body from where r stopped reading it. */
static int read_kept(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    rp_http_body_t *b = r->body;
    struct evbuffer *data = b->data;
    size_t len = b->file_len + evbuffer_get_length(data), take = len - r->body_read;
    if (take > cap)
        take = cap;
    *n = 0;
    if (take && r->body_read < b->file_len) {
        if (take > b->file_len - r->body_read)
            take = b->file_len - r->body_read;
        ssize_t k = pread(b->fd, buf, take, (off_t)r->body_read);
        if (k < 0) {
            rp_log_error(RP_LOG_CRIT, errno, "pread() of a request body's temporary file failed");
            r->body_status = 500;
            return -1;
        }
        r->body_read += (size_t)k;
        *n = (size_t)k;
    } else if (take) {
        struct evbuffer_ptr at;
        evbuffer_ptr_set(data, &at, r->body_read - b->file_len, EVBUFFER_PTR_SET);
        ev_ssize_t k = evbuffer_copyout_from(data, &at, buf, take);
        if (k > 0) {
            r->body_read += (size_t)k;
            *n = (size_t)k;
        }
    }
    return r->body_read == len ? 1 : 0;
}

int rp_http_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    if (r->body && r->body->complete)
        return read_kept(r, buf, cap, n);
    return r->proto->read_body(r, buf, cap, n);
}

/* The body could not be read: answer as nginx does, or cut the request when the client
 * is gone. The request may be freed when it returns. */
static int body_failed(rp_request_t *r)
{
    int status = r->body_status;
    r->on_body = NULL;
    if (status == 0) {
        rp_log_error(RP_LOG_INFO, 0,
                     "client prematurely closed connection while reading the "
                     "request body");
        if (!r->response_started)
            r->status = 400; /* what nginx logs for it */
        rp_http_abort(r);
        return RP_DONE;
    }
    if (status == 413)
        rp_log_error(RP_LOG_ERR, 0, "client intended to send too large body");
    else
        rp_log_error(RP_LOG_INFO, 0, "client sent an invalid request body");
    rp_http_send_error(r, status);
    return RP_DONE;
}

static void on_more_body(rp_request_t *r);

/* Reads what the protocol has into the kept body. */
static int read_more(rp_request_t *r)
{
    rp_http_body_t *b = r->body;
    for (;;) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(b->data, READ_CHUNK, &v, 1) < 1)
            out_of_memory("growing a request body buffer");
        size_t n = 0;
        int rc = r->proto->read_body(r, v.iov_base, v.iov_len, &n);
        v.iov_len = rc < 0 ? 0 : n;
        evbuffer_commit_space(b->data, &v, 1);
        if (rc < 0)
            return body_failed(r);
        if (b->temp_dir && evbuffer_get_length(b->data) > b->mem_max && spill(b) != 0) {
            r->body_status = 500;
            return body_failed(r);
        }
        if (rc == 1) {
            b->complete = 1;
            r->body_read = 0;
            return RP_OK;
        }
        if (n == 0) {
            /* the client has sent nothing more yet; its client_body_timeout runs */
            r->on_body = on_more_body;
            return RP_AGAIN;
        }
    }
}

static void on_more_body(rp_request_t *r)
{
    if (read_more(r) == RP_OK)
        rp_http_resume(r); /* the handler that asked is called again, and finds it kept */
}

int rp_http_keep_body(rp_request_t *r)
{
    return rp_http_keep_body_spill(r, 0, NULL);
}

int rp_http_keep_body_spill(rp_request_t *r, size_t mem_max, const char *temp_dir)
{
    rp_http_body_t *b = r->body;
    if (b == NULL) {
        if (!r->chunked && r->content_length <= 0)
            return RP_OK; /* nothing to read */
        b = rp_xcalloc(1, sizeof(*b));
        b->data = evbuffer_new();
        if (b->data == NULL)
            out_of_memory("making a request body buffer");
        b->refs = 1;
        b->fd = -1;
        b->mem_max = mem_max;
        b->temp_dir = temp_dir;
        r->body = b;
        r->body_read = 0;
        rp_http_cleanup_add(r, body_release, b);
    }
    if (b->complete)
        return RP_OK;
    if (r->on_body == on_more_body)
        return RP_AGAIN; /* resumed before the body completed: it is still on its way */
    return read_more(r);
}

int rp_http_body_kept(const rp_request_t *r)
{
    if (r->body)
        return r->body->complete;
    return !r->chunked && r->content_length <= 0;
}

size_t rp_http_kept_body_length(const rp_request_t *r)
{
    return r->body ? r->body->file_len + evbuffer_get_length(r->body->data) : 0;
}

void rp_http_body_share(rp_request_t *parent, rp_request_t *sr)
{
    rp_http_body_t *b = parent->body;
    b->refs++;
    sr->body = b;
    sr->body_read = 0;
    rp_http_cleanup_add(sr, body_release, b);
}
