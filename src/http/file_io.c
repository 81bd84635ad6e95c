/*
 * The worker's file thread pool (file_io.h).
 *
 * What blocks and what does not: open(2), fstat(2), stat(2) and pread(2) on a
 * file may sleep on the disk, so they run here, on one of RP_FILE_THREADS
 * threads; the event loop only takes finished jobs off a list when an eventfd
 * says there are some. The pool is made on first use, in the worker (after the
 * fork: threads do not survive one), and is bounded: a fixed number of threads,
 * and at most one job in flight per request, so the queue is bounded by the
 * worker's connections. The threads touch nothing but the job they hold; all
 * request and response work stays on the loop's thread.
 */
#include "http/file_io.h"

#include "core/log.h"
#include "core/time.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Enough to keep a few disk reads going while a slow one waits; file work is short. */
#define RP_FILE_THREADS 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static rp_file_t *todo_head, *todo_tail; /* guarded by lock */
static rp_file_t *done_head, *done_tail; /* guarded by lock */
static int efd = -1;
static struct event *ev;
static pid_t pool_pid; /* the process the threads run in */

rp_file_t *rp_file_new(size_t extra)
{
    /* only the job is zeroed: its room (a read buffer) is written before it is read */
    rp_file_t *f = malloc(sizeof(*f) + extra);
    if (f == NULL)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->fd = -1;
    f->found = -1;
    return f;
}

void rp_file_free(rp_file_t *f)
{
    if (f == NULL)
        return;
    if (f->in_flight) {
        f->orphan = 1;
        return;
    }
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

static void run_job(rp_file_t *f)
{
    switch (f->op) {
    case RP_FILE_OPEN:
        f->fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (f->fd < 0) {
            f->err = errno;
        } else if (fstat(f->fd, &f->st) != 0) {
            f->err = errno;
            close(f->fd);
            f->fd = -1;
        } else if (f->cap && S_ISREG(f->st.st_mode)) {
            /* the first bytes while we are here: a small file is then answered with
             * one trip through the pool */
            size_t want = (off_t)f->cap < f->st.st_size ? f->cap : (size_t)f->st.st_size;
            do {
                f->n = want ? pread(f->fd, f->buf, want, 0) : 0;
            } while (f->n < 0 && errno == EINTR);
            if (f->n < 0)
                f->n = 0;
        }
        break;
    case RP_FILE_READ:
        do {
            f->n = pread(f->fd, f->buf, f->len, f->off);
        } while (f->n < 0 && errno == EINTR);
        f->err = f->n < 0 ? errno : 0;
        break;
    case RP_FILE_PROBE:
        f->found = -1;
        f->err = 0;
        for (int i = 0; i < f->npaths; i++) {
            if (stat(f->paths[i], &f->st) != 0) {
                f->err = errno;
                if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG)
                    continue;
                if (f->any[i]) { /* index: a file there we may not read is an answer */
                    f->found = i;
                    break;
                }
                continue;
            }
            f->err = 0;
            if (f->any[i] || (S_ISDIR(f->st.st_mode) != 0) == (f->dir[i] != 0)) {
                f->found = i;
                break;
            }
        }
        break;
    }
}

static void *worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (todo_head == NULL)
            pthread_cond_wait(&cond, &lock);
        rp_file_t *f = todo_head;
        todo_head = f->next;
        if (todo_head == NULL)
            todo_tail = NULL;
        pthread_mutex_unlock(&lock);

        run_job(f);

        pthread_mutex_lock(&lock);
        f->next = NULL;
        if (done_tail)
            done_tail->next = f;
        else
            done_head = f;
        done_tail = f;
        pthread_mutex_unlock(&lock);
        uint64_t one = 1;
        ssize_t w = write(efd, &one, sizeof(one));
        (void)w; /* the counter only saturates; the loop reads the list anyway */
    }
    return NULL;
}

/* In the loop: hands the finished jobs back to their requests. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)what, (void)arg;
    uint64_t n;
    ssize_t rd = read(fd, &n, sizeof(n));
    (void)rd;
    pthread_mutex_lock(&lock);
    rp_file_t *f = done_head;
    done_head = done_tail = NULL;
    pthread_mutex_unlock(&lock);
    while (f) {
        rp_file_t *next = f->next;
        f->next = NULL;
        f->in_flight = 0;
        if (f->orphan)
            rp_file_free(f);
        else
            f->done(f);
        f = next;
    }
}

static int pool_start(void)
{
    if (efd >= 0 && pool_pid == getpid())
        return 0;
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
        rp_log_error(RP_LOG_ERR, errno, "eventfd() for the file threads failed");
        return -1;
    }
    ev = event_new(rp_event_base, efd, EV_READ | EV_PERSIST, on_done, NULL);
    if (ev == NULL || event_add(ev, NULL) != 0) {
        rp_log_error(RP_LOG_ERR, 0, "cannot watch the file threads");
        return -1;
    }
    /* The threads take no signals: the worker's loop handles them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = 0;
    for (int i = 0; i < RP_FILE_THREADS; i++) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        if (pthread_create(&t, &attr, worker_main, NULL) == 0)
            started++;
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started == 0) {
        rp_log_error(RP_LOG_ERR, 0, "cannot start the file threads");
        return -1;
    }
    pool_pid = getpid();
    return 0;
}

int rp_file_submit(rp_file_t *f)
{
    if (pool_start() != 0)
        return -1;
    f->in_flight = 1;
    f->next = NULL;
    pthread_mutex_lock(&lock);
    if (todo_tail)
        todo_tail->next = f;
    else
        todo_head = f;
    todo_tail = f;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    return 0;
}
