/*
 * File work off the event loop: a small pool of threads per worker that opens,
 * stats and reads files for the static module (and probes candidate paths for
 * index and try_files), and hands each result back to the event loop. A disk
 * that stalls (a cold cache, a network file system) then stalls one request,
 * never the worker's other connections.
 *
 * A job is one malloc'd rp_file_t owned by its request while idle; while a
 * thread works on it (in_flight) the request may end: it then marks the job
 * orphan and the loop frees it (closing its file) when the thread hands it back.
 */
#ifndef RP_FILE_IO_H
#define RP_FILE_IO_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

enum {
    RP_FILE_OPEN,  /* open path read-only and fstat it: fd, st, err; with a buf, its first
                    * cap bytes too: n */
    RP_FILE_READ,  /* pread len bytes at off into buf: n (-1 with err) */
    RP_FILE_PROBE, /* stat each of npaths paths in turn: found (-1: none), st, err */
};

#define RP_FILE_MAX_PROBES 16

typedef struct rp_file_s rp_file_t;
struct rp_file_s {
    rp_file_t *next;
    int op;
    unsigned in_flight : 1;
    unsigned orphan : 1;        /* the request ended while a thread had it */
    void (*done)(rp_file_t *f); /* in the loop, unless orphaned */
    void *data;

    int fd; /* -1 when none; closed by rp_file_free */
    struct stat st;
    int err;

    /* RP_FILE_OPEN */
    char *path;
    /* RP_FILE_READ */
    off_t off;
    size_t len;
    ssize_t n;
    char *buf;
    size_t cap;
    /* RP_FILE_PROBE: paths[i] is tested as a directory when dir[i], else as anything that
     * is not one (try_files), or as anything at all when any[i] (index) */
    const char *paths[RP_FILE_MAX_PROBES];
    unsigned char dir[RP_FILE_MAX_PROBES], any[RP_FILE_MAX_PROBES];
    int npaths;
    int found;
};

/* A job with room for extra bytes after it (f->path or f->buf point there as the caller
 * chooses); fd -1. NULL when memory is short. */
rp_file_t *rp_file_new(size_t extra);

/* Closes the job's file and frees it; an in-flight job is orphaned instead. */
void rp_file_free(rp_file_t *f);

/* Hands f to a thread; f->done runs in the loop when it is through. 0, or -1 when the
 * pool cannot start (logged). */
int rp_file_submit(rp_file_t *f);

#endif
