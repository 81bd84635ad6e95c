/*
 * A worker: one libevent loop that accepts on its own SO_REUSEPORT socket of
 * every address and serves HTTP. QUIT drains (stop accepting, finish what is in
 * flight, exit, at the latest after worker_shutdown_timeout); TERM and INT exit
 * at once; USR1 reopens the error log.
 */
#include "core/log.h"
#include "core/process.h"
#include "net/conn.h"
#include "net/listen.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

typedef struct {
    struct event ev;
    rp_listening_t *ls;
    int fd;
} acceptor_t;

static acceptor_t *acceptors;
static size_t nacceptors;
static int accepting;
static int draining;
static int max_conns;
static struct event resume_timer;
static struct event shutdown_timer; /* worker_shutdown_timeout, once draining */
static rp_cycle_t *cur_cycle;
static unsigned holds; /* rp_worker_hold: work a graceful stop waits for */

/* master_process off: the process reloads itself, keeping old generations until their
 * last connection ends. */
static const char *reload_prefix, *reload_conf;
static rp_cycle_t *retired[64];
static size_t nretired;

static void retire_drained(void);

static void accept_enable(int on)
{
    if (draining)
        on = 0;
    if (on == accepting)
        return;
    for (size_t i = 0; i < nacceptors; i++) {
        if (on)
            event_add(&acceptors[i].ev, NULL);
        else
            event_del(&acceptors[i].ev);
    }
    accepting = on;
}

static void conn_count_changed(void)
{
    unsigned n = rp_conn_count();
    if (nretired)
        retire_drained();
    if (draining) {
        if (n == 0 && holds == 0)
            event_base_loopexit(rp_event_base, NULL);
        return;
    }
    if (n >= (unsigned)max_conns) {
        /*
         * Every slot is taken: new clients wait in this worker's listen backlog until one
         * frees, as with HAProxy's maxconn, instead of being accepted and closed (nginx's
         * "worker_connections are not enough") or answered 503: a waiting client is
         * served, not refused, as soon as any connection ends; no descriptor is spent
         * beyond the limit; and it is the same for TLS and HTTP/2, where a plain-text
         * answer is impossible before a handshake. The kernel bounds the wait (the
         * listen backlog), client_header_timeout and keepalive_timeout bound how long a
         * slot stays with a client that sends nothing. Said once a minute at most.
         */
        static int64_t warned;
        int64_t now = rp_time_ms();
        if (accepting && (warned == 0 || now - warned >= 60000)) {
            warned = now;
            rp_log_error(RP_LOG_WARN, 0,
                         "worker_connections are not enough (%u): new clients wait in the "
                         "listen backlog until a connection ends",
                         n);
        }
        accept_enable(0);
    } else if (!accepting && !evtimer_pending(&resume_timer, NULL))
        accept_enable(1);
}

void rp_worker_hold(int delta)
{
    holds += (unsigned)delta;
    if (delta < 0 && draining)
        conn_count_changed(); /* the last hold may have been what kept us */
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    conn_count_changed();
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    acceptor_t *a = arg;
    /* A bounded batch per wakeup keeps one busy address from starving the others. */
    for (int i = 0; i < 64 && accepting; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment rather than spin. */
                rp_log_error(RP_LOG_CRIT, errno, "accept() on %s failed", a->ls->text);
                accept_enable(0);
                struct timeval tv = {0, 500000};
                evtimer_add(&resume_timer, &tv);
                return;
            }
            rp_log_error(RP_LOG_ERR, errno, "accept() on %s failed", a->ls->text);
            return;
        }
        rp_conn_accept(c, (struct sockaddr *)&ss, len, a->ls);
    }
}

static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    rp_log_error(RP_LOG_NOTICE, 0, "worker_shutdown_timeout reached with %u connections open",
                 rp_conn_count());
    rp_conn_close_all();
    event_base_loopexit(rp_event_base, NULL);
}

static void setup_acceptors(rp_cycle_t *cycle, int index);
static void reload_in_place(void);

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    rp_cycle_t *cycle = cur_cycle;
    switch (sig) {
    case SIGQUIT:
        if (draining)
            return;
        /* Take what is already queued on our sockets before letting go of them: a socket
         * this generation has no successor for (fewer workers) closes with us, and a
         * connection left in its backlog would be reset. New connections are already
         * steered elsewhere (rp_listen_steer). */
        for (int round = 0; round < 8; round++) /* up to 512 per socket */
            for (size_t i = 0; i < nacceptors; i++)
                on_accept(acceptors[i].fd, EV_READ, &acceptors[i]);
        draining = 1;
        accept_enable(0);
        for (size_t i = 0; i < nacceptors; i++) {
            close(acceptors[i].fd); /* the master and the next generation keep the socket */
            acceptors[i].fd = -1;
        }
        rp_log_error(RP_LOG_NOTICE, 0, "gracefully shutting down");
        rp_modules_stop_process(cycle);
        rp_conn_drain_all();
        if (rp_conn_count() == 0 && holds == 0) {
            event_base_loopexit(rp_event_base, NULL);
        } else {
            int64_t ms = rp_core_conf(cycle)->worker_shutdown_timeout;
            struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
            evtimer_assign(&shutdown_timer, rp_event_base, on_shutdown_timeout, NULL);
            event_add(&shutdown_timer, &tv);
        }
        break;
    case SIGTERM:
    case SIGINT:
        rp_conn_close_all();
        event_base_loopbreak(rp_event_base);
        break;
    case SIGUSR1:
        rp_log_reopen();
        rp_modules_reopen(cycle);
        /* in the new error log: tells logrotate's user (and the tests) this one follows */
        rp_log_error(RP_LOG_NOTICE, 0, "logs reopened");
        break;
    case SIGHUP:
        if (reload_conf && !draining)
            reload_in_place();
        break;
    }
}

void rp_worker_enable_reload(const char *prefix, const char *conf_file)
{
    reload_prefix = prefix;
    reload_conf = conf_file;
}

static void retire_drained(void)
{
    for (size_t i = 0; i < nretired;) {
        if (rp_conn_count_of(retired[i]) == 0) {
            rp_cycle_destroy(retired[i]);
            retired[i] = retired[--nretired];
        } else {
            i++;
        }
    }
}

/* The single-process reload: the same steps as the master's, within one loop. */
static void reload_in_place(void)
{
    char err[2048];
    rp_log_error(RP_LOG_NOTICE, 0, "reloading configuration from %s", reload_conf);
    rp_cycle_t *fresh = rp_cycle_load(reload_prefix, reload_conf, err, sizeof(err));
    if (fresh == NULL) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        rp_log_error(RP_LOG_ERR, 0, "reload failed: the previous configuration keeps serving");
        return;
    }
    if (nretired == sizeof(retired) / sizeof(retired[0]))
        snprintf(err, sizeof(err), "too many generations still draining");
    else if (rp_modules_init_master(fresh, cur_cycle, RP_INIT_SINGLE, err, sizeof(err)) == 0)
        err[0] = '\0';
    if (err[0]) {
        rp_log_error(RP_LOG_EMERG, 0, "%s", err);
        rp_log_error(RP_LOG_ERR, 0, "reload failed: the previous configuration keeps serving");
        rp_cycle_destroy(fresh);
        return;
    }
    rp_cycle_apply_log(cur_cycle, fresh);
    rp_cycle_apply_limits(fresh);
    fresh->generation = cur_cycle->generation + 1;

    accept_enable(0);
    for (size_t i = 0; i < nacceptors; i++)
        event_del(&acceptors[i].ev);
    free(acceptors);
    rp_modules_stop_master(cur_cycle); /* sockets the new configuration no longer listens on */
    retired[nretired++] = cur_cycle;
    rp_modules_stop_process(cur_cycle); /* idle upstream connections belong to the old pools */
    cur_cycle = fresh;
    rp_modules_init_process(fresh);
    setup_acceptors(fresh, 0);
    max_conns = rp_core_conf(fresh)->worker_connections;
    accept_enable(1);
    retire_drained();
    rp_log_error(RP_LOG_NOTICE, 0, "configuration reloaded (generation %u)", fresh->generation);
}

void rp_child_init(pid_t master)
{
    signal(SIGPIPE, SIG_IGN);
    if (master == 0)
        return; /* master_process off: there is no master to outlive */
    rp_pid_release(); /* the master's lock stays the master's */
    /* If the master dies, drain and exit rather than serve on unsupervised. */
    prctl(PR_SET_PDEATHSIG, SIGQUIT);
    if (getppid() != master)
        raise(SIGQUIT);
}

static void add_signals(struct event_base *base, rp_cycle_t *cycle)
{
    int sigs[] = {SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGHUP};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct event *ev = evsignal_new(base, sigs[i], on_signal, cycle);
        event_add(ev, NULL);
    }
}

/* The cycle's sockets of this worker (its module hook closed the other workers'). */
static void setup_acceptors(rp_cycle_t *cycle, int index)
{
    nacceptors = cycle->listening.nelts;
    acceptors = rp_xcalloc(nacceptors ? nacceptors : 1, sizeof(acceptor_t));
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < nacceptors; i++) {
        acceptors[i].ls = ls[i];
        acceptors[i].fd = ls[i]->fds[index];
        event_assign(&acceptors[i].ev, rp_event_base, acceptors[i].fd, EV_READ | EV_PERSIST,
                     on_accept, &acceptors[i]);
    }
    accepting = 0;
}

void rp_worker_run(rp_cycle_t *cycle, int index, pid_t master)
{
    rp_log_set_ident(index);
    /* The changelist folds an event_del and event_add of the same fd within one loop
     * iteration into nothing: a keep-alive request that parks and re-arms its sockets
     * then costs no epoll_ctl calls. */
    struct event_config *ecfg = event_config_new();
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (base == NULL) {
        rp_log_error(RP_LOG_EMERG, 0, "event_base_new() failed");
        exit(2);
    }
    rp_event_base = base;
    rp_conn_count_changed = conn_count_changed;
    max_conns = rp_core_conf(cycle)->worker_connections;
    add_signals(base, cycle);

    cur_cycle = cycle;
    rp_process.kind = master ? RP_PROCESS_WORKER : RP_PROCESS_SINGLE;
    rp_process.index = index;
    rp_process.master = master;
    if (master)
        rp_process_setup(cycle, RP_PROCESS_WORKER, index);
    if (rp_modules_init_process(cycle) != 0)
        exit(2);
    setup_acceptors(cycle, index);
    evtimer_assign(&resume_timer, base, on_resume, NULL);
    accept_enable(1);

    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    rp_child_init(master);

    event_base_dispatch(base);
    rp_modules_exit_process(cur_cycle); /* every stop, graceful or fast, ends here */
    exit(0);
}
