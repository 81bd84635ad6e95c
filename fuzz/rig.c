/*
 * The fuzz targets' bench (rig.h): rampart's own code from configuration to
 * connection, run in the fuzzer's process with one event loop and no fork, so a
 * target can drive a whole HTTP/2 connection or an upstream session with its input
 * and libFuzzer sees the coverage of all of it.
 */
#include "rig.h"
#include "core/log.h"
#include "core/process.h"
#include "core/time.h"
#include "net/conn.h"
#include "net/listen.h"
#include "upstream/h2_upstream.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RIG_CHECK(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rig: %s failed (%s:%d): %s\n", #cond, __FILE__, __LINE__,             \
                    strerror(errno));                                                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char dir[64];
static int rig_log; /* RIG_LOG is set: rampart's error log and the backend's reads shown */

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "rig: could not remove %s\n", dir);
}

const char *rig_dir(void)
{
    if (dir[0] == '\0') {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof(dir), "%s/rampart-fuzz-XXXXXX", base);
        RIG_CHECK(mkdtemp(dir) != NULL);
        atexit(remove_dir);
    }
    return dir;
}

rp_cycle_t *rig_load(const char *name, const char *text, size_t len, char *err, size_t errlen)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", rig_dir(), name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    RIG_CHECK(fd >= 0);
    RIG_CHECK(len == 0 || write(fd, text, len) == (ssize_t)len);
    close(fd);
    return rp_cycle_load(rig_dir(), name, err, errlen);
}

static int listen_loopback(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    RIG_CHECK(fd >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    RIG_CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    socklen_t sl = sizeof(sin);
    RIG_CHECK(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

int rig_free_port(void)
{
    int port;
    close(listen_loopback(&port));
    return port;
}

void rig_serve(rp_cycle_t *cycle)
{
    char err[1024];
    signal(SIGPIPE, SIG_IGN);
    /* RIG_LOG=1 shows rampart's error log (debugging a target); otherwise it would
     * cost more than the work it describes */
    rig_log = getenv("RIG_LOG") != NULL;
    RIG_CHECK(rp_log_open(rig_log ? NULL : "/dev/null", rig_log ? RP_LOG_DEBUG : RP_LOG_EMERG) ==
              0);
    rp_event_base = event_base_new();
    RIG_CHECK(rp_event_base != NULL);
    rp_process.kind = RP_PROCESS_SINGLE;
    rp_process.index = 0;
    rp_process.master = 0;
    if (rp_modules_init_master(cycle, NULL, RP_INIT_SINGLE, err, sizeof(err)) != 0) {
        fprintf(stderr, "rig: init_master: %s\n", err);
        abort();
    }
    RIG_CHECK(rp_modules_init_process(cycle) == 0);
}

int rig_client(rp_cycle_t *cycle)
{
    int sv[2];
    RIG_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    RIG_CHECK(cycle->listening.nelts > 0);
    rp_listening_t *ls = RP_ARRAY_AT(&cycle->listening, rp_listening_t *, 0);
    /* the peer rampart sees: a loopback client, as on the real port */
    struct sockaddr_in peer = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(40000)};
    rp_conn_accept(sv[1], (struct sockaddr *)&peer, sizeof(peer), ls);
    return sv[0];
}

/* ---- the scripted backend ---- */

#define MAX_BACKEND 16

typedef struct {
    int fd;
    struct event ev;
    int sent;     /* the script went out */
    size_t nseen; /* bytes of what rampart sent, kept in seen[] for the trigger */
    uint8_t seen[16384];
} bconn_t;

static int backend_fd = -1, backend_port;
static struct event backend_ev;
static bconn_t bconns[MAX_BACKEND];
static unsigned nbconns, accepted;
static const uint8_t *script;
static size_t script_len;
static size_t moved; /* bytes the backend read: progress for rig_run */
static int (*trigger)(const uint8_t *seen, size_t n);
static const uint8_t *greeting;
static size_t greeting_len;

static void write_all(int fd, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

static void send_script(bconn_t *b)
{
    /* the whole script at once: it is smaller than a loopback socket's buffer */
    b->sent = 1;
    write_all(b->fd, script, script_len);
}

static void bconn_read(evutil_socket_t fd, short what, void *arg)
{
    bconn_t *b = arg;
    char buf[16384];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
        moved += (size_t)n;
        if (rig_log) {
            fprintf(stderr, "rig: backend read %zd bytes (script %s):", n,
                    b->sent ? "sent" : "not sent");
            for (ssize_t i = 0; i < n && i < 64; i++)
                fprintf(stderr, " %02x", (uint8_t)buf[i]);
            fprintf(stderr, "\n");
        }
        if (!b->sent) {
            size_t k =
                (size_t)n < sizeof(b->seen) - b->nseen ? (size_t)n : sizeof(b->seen) - b->nseen;
            memcpy(b->seen + b->nseen, buf, k);
            b->nseen += k;
            if (trigger(b->seen, b->nseen))
                send_script(b);
        }
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        event_del(&b->ev); /* rampart closed: wait for close_all */
    }
}

static void backend_accept(evutil_socket_t fd, short what, void *arg)
{
    for (;;) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0)
            return;
        accepted++;
        moved++;
        if (nbconns == MAX_BACKEND) {
            close(c);
            continue;
        }
        bconn_t *b = &bconns[nbconns++];
        b->fd = c;
        b->sent = 0;
        b->nseen = 0;
        write_all(c, greeting, greeting_len);
        if (trigger == NULL)
            send_script(b);
        event_assign(&b->ev, rp_event_base, c, EV_READ | EV_PERSIST, bconn_read, b);
        event_add(&b->ev, NULL);
    }
}

int rig_backend_port(void)
{
    if (backend_fd < 0) {
        backend_fd = listen_loopback(&backend_port);
        RIG_CHECK(listen(backend_fd, 64) == 0);
    }
    return backend_port;
}

void rig_backend_script(const uint8_t *data, size_t len, int (*when)(const uint8_t *seen, size_t n))
{
    script = data;
    script_len = len;
    trigger = when;
    if (rp_event_base && !event_initialized(&backend_ev)) {
        rig_backend_port();
        event_assign(&backend_ev, rp_event_base, backend_fd, EV_READ | EV_PERSIST, backend_accept,
                     NULL);
        event_add(&backend_ev, NULL);
    }
}

int rig_seen_h2_headers(const uint8_t *p, size_t n)
{
    /* after the 24-byte client preface: frame headers, 9 bytes each, then the payload */
    size_t off = 24;
    while (n >= off + 9) {
        if (p[off + 3] == 1)
            return 1;
        off += 9 + ((size_t)p[off] << 16 | (size_t)p[off + 1] << 8 | p[off + 2]);
    }
    return 0;
}

int rig_seen_h1_head(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (memcmp(p + i, "\r\n\r\n", 4) == 0)
            return 1;
    return 0;
}

void rig_backend_greeting(const uint8_t *data, size_t len)
{
    greeting = data;
    greeting_len = len;
}

unsigned rig_backend_accepted(void)
{
    return accepted;
}

void rig_backend_close_all(void)
{
    for (unsigned i = 0; i < nbconns; i++) {
        event_del(&bconns[i].ev);
        close(bconns[i].fd);
    }
    nbconns = 0;
}

/* ---- running ---- */

void rig_run(int client_fd, uint8_t *out, size_t cap, size_t *outlen)
{
    /* Quiet: an iteration that ran nothing that moved bytes and left nothing active.
     * Three in a row, since a write in one iteration is seen by the next one's poll. */
    unsigned quiet = 0;
    for (unsigned i = 0; i < 100000 && quiet < 3; i++) {
        size_t before = moved;
        event_base_loop(rp_event_base, EVLOOP_NONBLOCK);
        if (client_fd >= 0) {
            for (;;) {
                uint8_t buf[16384];
                ssize_t n = read(client_fd, buf, sizeof(buf));
                if (n <= 0)
                    break;
                moved += (size_t)n;
                if (out && outlen) {
                    size_t k = (size_t)n < cap - *outlen ? (size_t)n : cap - *outlen;
                    memcpy(out + *outlen, buf, k);
                    *outlen += k;
                }
            }
        }
        if (moved == before &&
            event_base_get_num_events(rp_event_base, EVENT_BASE_COUNT_ACTIVE) == 0)
            quiet++;
        else
            quiet = 0;
    }
}

void rig_finish(int client_fd)
{
    if (client_fd >= 0)
        close(client_fd);
    rig_backend_close_all();
    rig_run(-1, NULL, 0, NULL); /* both EOFs reach rampart and run their paths */
    rp_conn_close_all();
    rp_h2u_close_idle();
    rig_run(-1, NULL, 0, NULL);
}

/* ---- name resolution: numeric only ---- */

/*
 * Every getaddrinfo of the process (`server name`, `listen name:port` resolve at load
 * time, as in nginx) answers numeric hosts and "localhost" alone: a fuzzed
 * configuration must not send DNS queries, and a run must not depend on the network.
 */
#include <dlfcn.h>
#include <netdb.h>

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    if (real == NULL)
        real = (int (*)(const char *, const char *, const struct addrinfo *,
                        struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
    struct addrinfo h = {0};
    if (hints)
        h = *hints;
    h.ai_flags |= AI_NUMERICHOST;
    if (node && strcmp(node, "localhost") == 0)
        node = "127.0.0.1";
    return real(node, service, &h, res);
}
