/*
 * Listening socket creation, reuse across reloads and across a binary upgrade
 * (sockets inherited from the old master, see core/upgrade.c), and address
 * parsing.
 */
#include "net/listen.h"
#include "core/log.h"
#include "core/process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <unistd.h>

void rp_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%d", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%d", host, ntohs(s4->sin_port));
    }
}

const char *rp_listen_parse_addr(rp_arena_t *arena, const char *text, struct sockaddr_storage *sa,
                                 socklen_t *len, char **canonical)
{
    char host[256] = "";
    const char *port;
    memset(sa, 0, sizeof(*sa));

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || (size_t)(close - text - 1) >= sizeof(host))
            return rp_arena_sprintf(arena, "invalid address \"%s\"", text);
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        if (close[1] != ':')
            return rp_arena_sprintf(arena, "no port in \"%s\"", text);
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon) {
            if ((size_t)(colon - text) >= sizeof(host))
                return rp_arena_sprintf(arena, "invalid address \"%s\"", text);
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            port = colon + 1;
        } else {
            int all_digits = text[0] != '\0';
            for (const char *p = text; *p; p++)
                if (*p < '0' || *p > '9')
                    all_digits = 0;
            if (!all_digits)
                return rp_arena_sprintf(arena, "no port in \"%s\"", text);
            port = text;
        }
    }

    long p = 0;
    if (rp_parse_int(port, 65535, &p) != 0 || p < 1)
        return rp_arena_sprintf(arena, "invalid port in \"%s\"", text);

    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        s4->sin_port = htons((uint16_t)p);
        *len = sizeof(*s4);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
            s4->sin_family = AF_INET;
            s4->sin_port = htons((uint16_t)p);
            *len = sizeof(*s4);
        } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)p);
            *len = sizeof(*s6);
        } else {
            struct addrinfo hints = {0}, *res = NULL;
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            int rc = getaddrinfo(host, NULL, &hints, &res);
            if (rc != 0 || res == NULL)
                return rp_arena_sprintf(arena, "host not found in \"%s\"", text);
            memcpy(sa, res->ai_addr, res->ai_addrlen);
            *len = res->ai_addrlen;
            freeaddrinfo(res);
            if (sa->ss_family == AF_INET)
                ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)p);
            else
                ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)p);
        }
    }
    char buf[128];
    rp_sockaddr_text((struct sockaddr *)sa, buf, sizeof(buf));
    *canonical = rp_arena_strdup(arena, buf);
    return NULL;
}

const char *rp_addr_split(rp_arena_t *arena, const char *text, int dflt, char *host, size_t cap,
                          int *port)
{
    const char *p, *h = text;
    size_t hl;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return rp_arena_sprintf(arena, "invalid address \"%s\"", text);
        h = text + 1;
        hl = (size_t)(close - h);
        p = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = strchr(text, ':');
        if (colon && strchr(colon + 1, ':'))
            return rp_arena_sprintf(
                arena, "invalid address \"%s\" (an IPv6 address is written in brackets)", text);
        hl = colon ? (size_t)(colon - text) : strlen(text);
        p = colon ? colon + 1 : NULL;
    }
    if (hl == 0 || hl >= cap)
        return rp_arena_sprintf(arena, "invalid address \"%s\"", text);
    memcpy(host, h, hl);
    host[hl] = '\0';
    long v = dflt;
    if (p && (rp_parse_int(p, 65535, &v) != 0 || v < 1))
        return rp_arena_sprintf(arena, "invalid port in \"%s\"", text);
    *port = (int)v;
    return NULL;
}

int rp_addr_literal(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len)
{
    memset(sa, 0, sizeof(*sa));
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len = sizeof(*s4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*s6);
        return 0;
    }
    return -1;
}

unsigned rp_addr_lookup(const char *host, int port, struct sockaddr_storage *sa, socklen_t *lens,
                        unsigned max)
{
    if (max == 0)
        return 0;
    if (rp_addr_literal(host, port, &sa[0], &lens[0]) == 0)
        return 1;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return 0;
    unsigned n = 0;
    for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(sa[n]))
            continue;
        memset(&sa[n], 0, sizeof(sa[n]));
        memcpy(&sa[n], ai->ai_addr, ai->ai_addrlen);
        if (sa[n].ss_family == AF_INET)
            ((struct sockaddr_in *)&sa[n])->sin_port = htons((uint16_t)port);
        else
            ((struct sockaddr_in6 *)&sa[n])->sin6_port = htons((uint16_t)port);
        int dup = 0;
        for (unsigned i = 0; i < n && !dup; i++)
            dup = lens[i] == ai->ai_addrlen && memcmp(&sa[i], &sa[n], ai->ai_addrlen) == 0;
        if (!dup)
            lens[n++] = (socklen_t)ai->ai_addrlen;
    }
    freeaddrinfo(res);
    return n;
}

static void set_buffers(int fd, const rp_listening_t *ls)
{
    if (ls->rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &ls->rcvbuf, sizeof(ls->rcvbuf));
    if (ls->sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &ls->sndbuf, sizeof(ls->sndbuf));
}

static int open_one(rp_listening_t *ls, char *err, size_t errlen)
{
    int fd = socket(ls->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket() for %s failed: %s", ls->text, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        snprintf(err, errlen, "setsockopt(SO_REUSEPORT) for %s failed: %s", ls->text,
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (ls->sa.ss_family == AF_INET6) {
        int v6only = ls->ipv6only;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    set_buffers(fd, ls);
    if (bind(fd, (struct sockaddr *)&ls->sa, ls->socklen) != 0) {
        snprintf(err, errlen, "bind() to %s failed: %s", ls->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, ls->backlog) != 0) {
        snprintf(err, errlen, "listen() on %s failed: %s", ls->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Two listenings can share sockets when the address and what a bound socket cannot
 * change (ipv6only) are the same. */
static int same_addr(const rp_listening_t *a, const rp_listening_t *b)
{
    return a->socklen == b->socklen && memcmp(&a->sa, &b->sa, a->socklen) == 0 &&
           (a->sa.ss_family != AF_INET6 || a->ipv6only == b->ipv6only);
}

/* Options that a bound, listening socket still accepts. */
static void apply_live_opts(int fd, const rp_listening_t *ls)
{
    listen(fd, ls->backlog);
    set_buffers(fd, ls);
}

int rp_listen_steer(rp_cycle_t *cycle, int nworkers)
{
    /* A = random; A %= n; return A. The index is the socket's place in the group, which
     * is the order of binding: socket k of every generation keeps place k because sockets
     * are only ever added at the end and removed from the end. */
    struct sock_filter code[] = {
        {BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM)},
        {BPF_ALU | BPF_MOD | BPF_K, 0, 0, (uint32_t)nworkers},
        {BPF_RET | BPF_A, 0, 0, 0},
    };
    struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
    int rc = 0;
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i]->nfds == 0 || ls[i]->fds[0] < 0)
            continue;
        if (setsockopt(ls[i]->fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog,
                       sizeof(prog)) != 0) {
            rp_log_error(RP_LOG_WARN, errno, "cannot steer connections on %s", ls[i]->text);
            rc = -1;
        }
    }
    return rc;
}

/* ---- sockets inherited from the master that exec'd this one (USR2) ---- */

typedef struct {
    rp_listening_t addr; /* only sa, socklen and ipv6only are set */
    int fd;
    int index;
} inherited_t;

static inherited_t *inherited;
static size_t ninherited;

void rp_listen_inherit(const char *value)
{
    for (const char *p = value; *p;) {
        char *end;
        long fd = strtol(p, &end, 10);
        long k = -1;
        if (*end == ':')
            k = strtol(end + 1, &end, 10);
        int acc = 0;
        socklen_t alen = sizeof(acc);
        inherited_t in = {.fd = (int)fd, .index = (int)k};
        in.addr.socklen = sizeof(in.addr.sa);
        /* only a listening TCP socket is taken: the variable could be stale or forged */
        if (fd > 2 && k >= 0 && getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &alen) == 0 &&
            acc && getsockname((int)fd, (struct sockaddr *)&in.addr.sa, &in.addr.socklen) == 0) {
            if (in.addr.sa.ss_family == AF_INET6) {
                socklen_t ol = sizeof(in.addr.ipv6only);
                getsockopt((int)fd, IPPROTO_IPV6, IPV6_V6ONLY, &in.addr.ipv6only, &ol);
            }
            fcntl((int)fd, F_SETFD, FD_CLOEXEC); /* cleared only for the exec that brought it */
            inherited = rp_xrealloc(inherited, (ninherited + 1) * sizeof(*inherited));
            inherited[ninherited++] = in;
        }
        const char *semi = strchr(end, ';');
        if (semi == NULL)
            break;
        p = semi + 1;
    }
}

static int same_addr(const rp_listening_t *a, const rp_listening_t *b);

/* The inherited socket for address ls, worker slot k, or -1; it is then the caller's. */
static int inherited_take(const rp_listening_t *ls, int k)
{
    for (size_t i = 0; i < ninherited; i++) {
        if (inherited[i].fd >= 0 && inherited[i].index == k && same_addr(&inherited[i].addr, ls)) {
            int fd = inherited[i].fd;
            inherited[i].fd = -1;
            return fd;
        }
    }
    return -1;
}

/* After the first generation opened its sockets: those it did not claim are closed (the
 * old master keeps its own copies for as long as it runs). */
static void inherited_done(void)
{
    size_t taken = 0;
    for (size_t i = 0; i < ninherited; i++) {
        if (inherited[i].fd >= 0)
            close(inherited[i].fd);
        else
            taken++;
    }
    if (ninherited)
        rp_log_error(RP_LOG_NOTICE, 0, "took over %zu of %zu listening sockets from the old master",
                     taken, ninherited);
    free(inherited);
    inherited = NULL;
    ninherited = 0;
}

int rp_listen_export(const rp_cycle_t *cycle, char *buf, size_t cap, int *fds, int maxfds)
{
    size_t len = 0;
    int n = 0;
    buf[0] = '\0';
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        for (int k = 0; k < ls[i]->nfds; k++) {
            if (ls[i]->fds[k] < 0)
                continue;
            int w = snprintf(buf + len, cap - len, "%d:%d;", ls[i]->fds[k], k);
            if (n == maxfds || w < 0 || (size_t)w >= cap - len)
                return -1;
            len += (size_t)w;
            fds[n++] = ls[i]->fds[k];
        }
    }
    return n;
}

int rp_listen_open(rp_cycle_t *cycle, rp_cycle_t *old, int nworkers, char *err, size_t errlen)
{
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        ls[i]->nfds = nworkers;
        ls[i]->fds = rp_arena_alloc(cycle->arena, sizeof(int) * (size_t)nworkers);
        for (int k = 0; k < nworkers; k++)
            ls[i]->fds[k] = -1;
    }

    /* First pass: everything that cannot be inherited must open, or nothing changes. */
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        rp_listening_t *oldls = NULL;
        if (old) {
            rp_listening_t **ols = old->listening.elts;
            for (size_t j = 0; j < old->listening.nelts; j++)
                if (same_addr(ls[i], ols[j]))
                    oldls = ols[j];
        }
        for (int k = 0; k < nworkers; k++) {
            if (oldls && k < oldls->nfds && oldls->fds[k] >= 0) {
                apply_live_opts(oldls->fds[k], ls[i]);
                continue;
            }
            int fd = old ? -1 : inherited_take(ls[i], k);
            if (fd >= 0) {
                apply_live_opts(fd, ls[i]);
                ls[i]->fds[k] = fd;
                continue;
            }
            fd = open_one(ls[i], err, errlen);
            if (fd < 0)
                goto fail;
            ls[i]->fds[k] = fd;
        }
    }

    /* Second pass: take over the inherited sockets. */
    for (size_t i = 0; old && i < cycle->listening.nelts; i++) {
        rp_listening_t **ols = old->listening.elts;
        for (size_t j = 0; j < old->listening.nelts; j++) {
            if (!same_addr(ls[i], ols[j]))
                continue;
            for (int k = 0; k < nworkers && k < ols[j]->nfds; k++) {
                if (ols[j]->fds[k] >= 0 && ls[i]->fds[k] < 0) {
                    ls[i]->fds[k] = ols[j]->fds[k];
                    ols[j]->fds[k] = -1;
                }
            }
        }
    }
    return 0;

fail:
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        for (int k = 0; k < ls[i]->nfds; k++) {
            if (ls[i]->fds[k] >= 0)
                close(ls[i]->fds[k]);
            ls[i]->fds[k] = -1;
        }
    }
    return -1;
}

void rp_listen_close(rp_cycle_t *cycle)
{
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        for (int k = 0; k < ls[i]->nfds; k++) {
            if (ls[i]->fds[k] >= 0)
                close(ls[i]->fds[k]);
            ls[i]->fds[k] = -1;
        }
    }
}

void rp_listen_keep_only(rp_cycle_t *cycle, int index)
{
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        for (int k = 0; k < ls[i]->nfds; k++) {
            if (k != index && ls[i]->fds[k] >= 0) {
                close(ls[i]->fds[k]);
                ls[i]->fds[k] = -1;
            }
        }
    }
}

/* ---- the module: sockets opened by the master, kept by each worker ---- */

static void close_all(void *cycle)
{
    rp_listen_close(cycle);
}

static int listen_init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags,
                              char *err, size_t errlen)
{
    if (flags & RP_INIT_TEST)
        return 0; /* rampart -t binds nothing, as nginx -t */
    rp_core_conf_t *ccf = rp_core_conf(cycle);
    int n = (flags & RP_INIT_SINGLE) || !ccf->master_process ? 1 : ccf->worker_processes;
    /* sockets of the same address and index are taken over from prev, which then no
     * longer owns them */
    int rc = rp_listen_open(cycle, (rp_cycle_t *)prev, n, err, errlen);
    if (prev == NULL)
        inherited_done();
    if (rc != 0)
        return -1;
    rp_listen_steer(cycle, n);
    /* whatever the generation still holds when it is freed goes with it */
    rp_arena_cleanup(cycle->arena, close_all, cycle);
    return 0;
}

static void listen_stop_master(rp_cycle_t *cycle)
{
    /* Refuse new connections: the master's copies would keep the sockets open, and the
     * kernel would queue clients nobody will ever accept. Sockets a new generation
     * took over are its own now and stay. */
    rp_listen_close(cycle);
}

static int listen_init_worker(rp_cycle_t *cycle)
{
    rp_listen_keep_only(cycle, rp_process.index); /* the other workers' are theirs */
    return 0;
}

static int listen_init_helper(rp_cycle_t *cycle)
{
    rp_listen_close(cycle); /* it serves nothing */
    return 0;
}

rp_module_t rp_listen_module = {
    .name = "listen",
    .init_master = listen_init_master,
    .stop_master = listen_stop_master,
    .init_worker = listen_init_worker,
    .init_helper = listen_init_helper,
};
