/*
 * The prober of active health checks: it runs once per node (the helper, or the
 * single process with master_process off), probes every peer of every upstream with
 * `health_check` on its own schedule (interval ± jitter), and writes the verdicts into
 * the shared peer table, where the workers' balancers read them.
 *
 * A probe is one non-blocking connection on this process's event loop: connect, then
 * TLS when asked (verification off), then the exchange of its type: none for tcp
 * (the connect, and the handshake, are the check), an HTTP/1.1 GET with
 * "Connection: close" read up to the body limit (health_match.c judges it), or a gRPC
 * Health/Check call over HTTP/2 (health_grpc.c). The timeout covers all of it.
 *
 * Verdicts follow Envoy's rule: `rise` consecutive passes make an unhealthy peer
 * healthy, `fall` consecutive failures make a healthy one unhealthy, and the first
 * check of a peer of unknown health decides at once. The consecutive counts live in
 * this process; the verdict in shared memory, so a reload (a new helper) keeps it, and
 * the new helper probes a peer with a verdict after an interval, not at once. A peer
 * that outlier detection ejected, whose ejection time is over, returns when a check
 * passes: the workers keep it out until then when checks are configured (peers.c).
 *
 * The set of peers is read again at every tick (rp_upstream_peers): addresses a DNS
 * answer adds are probed within a second, those it drops are let go.
 */
#include "upstream/health.h"
#include "core/log.h"
#include "core/random.h"
#include "core/time.h"
#include "net/listen.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/err.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS    1000 /* the set of peers is read again at least this often */
#define READ_CHUNK 16384
#define MIN_GAP_MS 10 /* however the jitter falls, probes of a peer are this far apart */

typedef struct hc_ups_s hc_ups_t;
typedef struct hc_peer_s hc_peer_t;
typedef struct probe_s probe_t;

enum { P_CONNECT, P_HANDSHAKE, P_EXCHANGE };

struct probe_s {
    hc_peer_t *hp;
    int fd;
    int state; /* P_* */
    SSL *ssl;
    struct event ev, timer;
    struct evbuffer *out;
    rp_health_response_t resp; /* type=http */
    rp_health_grpc_t *grpc;    /* type=grpc */
    int64_t started;
};

struct hc_peer_s {
    hc_ups_t *hu;
    rp_upstream_server_t *s; /* held (a dynamic one: a reference) while in the list */
    int64_t due;             /* ms: the next probe */
    unsigned passes, fails;  /* consecutive */
    probe_t *probe;          /* the one in flight */
    unsigned seen : 1;
    hc_peer_t *next;
};

struct hc_ups_s {
    rp_upstream_conf_t *u;
    const rp_health_conf_t *hc;
    hc_peer_t *peers;
    struct event timer;
    hc_ups_t *next;
};

struct rp_health_runtime_s {
    hc_ups_t *ups;
};

static void arm(hc_ups_t *hu);
static void step(probe_t *p);

/* ---- schedule ---- */

static int64_t next_gap(const rp_health_conf_t *hc)
{
    int64_t j = hc->jitter >= 0 ? hc->jitter : hc->interval * hc->jitter_pct / 100;
    int64_t gap = hc->interval;
    if (j > 0)
        gap += (int64_t)rp_random_below((uint64_t)(2 * j + 1)) - j;
    return gap < MIN_GAP_MS ? MIN_GAP_MS : gap;
}

/* ---- the verdict ---- */

int rp_health_apply(const rp_health_conf_t *hc, rp_peer_shared_t *sh, unsigned *passes,
                    unsigned *fails, int ok, int64_t now, int slow_start)
{
    int changed = 0;
    /* the counters move before the verdict: whoever sees a new verdict sees the checks
     * that made it */
    rp_shm_counter_add(&sh->checks, 1);
    if (!ok)
        rp_shm_counter_add(&sh->check_fails, 1);
    int64_t h = rp_shm_counter_get(&sh->health);
    if (ok) {
        *fails = 0;
        ++*passes;
        if (h != RP_HEALTH_HEALTHY && (h == RP_HEALTH_UNKNOWN || *passes >= hc->rise)) {
            if (h == RP_HEALTH_UNHEALTHY && slow_start)
                rp_shm_counter_set(&sh->usable_since, now); /* it ramps up again */
            rp_shm_counter_set(&sh->health_since, now);
            rp_shm_counter_set(&sh->health, RP_HEALTH_HEALTHY);
            changed |= h == RP_HEALTH_UNKNOWN ? RP_HEALTH_BECAME_HEALTHY
                                              : RP_HEALTH_BECAME_HEALTHY | RP_HEALTH_AGAIN;
        }
        /* an ejection whose time is over ends with a passing check (peers.c keeps the
         * peer out until then); one a worker set anew meanwhile is left alone */
        int64_t until = rp_shm_counter_get(&sh->ejected_until);
        if (until && now >= until && rp_shm_counter_cas(&sh->ejected_until, &until, 0))
            changed |= RP_HEALTH_EJECTION_ENDED;
        return changed;
    }
    *passes = 0;
    ++*fails;
    if (h != RP_HEALTH_UNHEALTHY && (h == RP_HEALTH_UNKNOWN || *fails >= hc->fall)) {
        rp_shm_counter_set(&sh->health_since, now);
        rp_shm_counter_set(&sh->health, RP_HEALTH_UNHEALTHY);
        changed |= RP_HEALTH_BECAME_UNHEALTHY;
    }
    return changed;
}

static void verdict(hc_peer_t *hp, int ok, const char *why)
{
    rp_upstream_conf_t *u = hp->hu->u;
    rp_upstream_server_t *s = hp->s;
    int64_t before = rp_shm_counter_get(&s->sh->health);
    int changed = rp_health_apply(hp->hu->hc, s->sh, &hp->passes, &hp->fails, ok, rp_time_ms(),
                                  s->slow_start != 0);
    if (changed & RP_HEALTH_BECAME_HEALTHY)
        rp_log_error(RP_LOG_NOTICE, 0, "peer %s of upstream \"%s\" is healthy%s", s->name, u->name,
                     changed & RP_HEALTH_AGAIN ? " again" : "");
    if (changed & RP_HEALTH_EJECTION_ENDED)
        rp_log_error(RP_LOG_NOTICE, 0,
                     "peer %s of upstream \"%s\" returns from its ejection: its time is over "
                     "and a health check passed",
                     s->name, u->name);
    if (changed & RP_HEALTH_BECAME_UNHEALTHY)
        rp_log_error(RP_LOG_WARN, 0, "peer %s of upstream \"%s\" is unhealthy: %s", s->name,
                     u->name, why);
    else if (!ok && before != RP_HEALTH_UNHEALTHY)
        /* one of the failures that count toward fall */
        rp_log_error(RP_LOG_INFO, 0, "health check of peer %s of upstream \"%s\" failed: %s",
                     s->name, u->name, why);
}

/* ---- a probe ---- */

/* Lets go of everything a probe holds; the peer has none in flight after. */
static void probe_free(probe_t *p)
{
    event_del(&p->ev);
    event_del(&p->timer);
    if (p->ssl) {
        ERR_clear_error();
        SSL_free(p->ssl);
    }
    if (p->fd >= 0)
        close(p->fd);
    if (p->out)
        evbuffer_free(p->out);
    rp_health_response_free(&p->resp);
    rp_health_grpc_free(p->grpc);
    p->hp->probe = NULL;
    free(p);
}

static void finish(probe_t *p, int ok, const char *why)
{
    char reason[512];
    snprintf(reason, sizeof(reason), "%s", why ? why : "");
    hc_peer_t *hp = p->hp;
    int64_t started = p->started;
    probe_free(p);
    verdict(hp, ok, reason);
    int64_t now = rp_time_ms();
    hp->due = started + next_gap(hp->hu->hc);
    if (hp->due < now)
        hp->due = now;
    arm(hp->hu);
}

static void fail_errno(probe_t *p, const char *what, int err)
{
    char why[256];
    snprintf(why, sizeof(why), "%s (%d: %s)", what, err, strerror(err));
    finish(p, 0, why);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    step(arg);
}

static void wait_io(probe_t *p, short what)
{
    event_del(&p->ev);
    event_assign(&p->ev, rp_event_base, p->fd, what, on_io, p);
    event_add(&p->ev, NULL);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    probe_t *p = arg;
    static const char *const stage[] = {"timed out connecting", "timed out in the TLS handshake",
                                        "timed out waiting for the response"};
    finish(p, 0, stage[p->state]);
}

/* I/O through TLS or straight: > 0 bytes, 0 the end, -1 an error (errno), -2 wait to
 * read, -3 wait to write. */
static ssize_t io_read(probe_t *p, void *buf, size_t n)
{
    if (p->ssl == NULL) {
        ssize_t k = read(p->fd, buf, n);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return -2;
        return k < 0 && errno == EINTR ? -2 : k;
    }
    ERR_clear_error();
    errno = 0;
    int k = SSL_read(p->ssl, buf, (int)(n > INT32_MAX ? INT32_MAX : n));
    if (k > 0)
        return k;
    switch (SSL_get_error(p->ssl, k)) {
    case SSL_ERROR_WANT_READ:
        return -2;
    case SSL_ERROR_WANT_WRITE:
        return -3;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            return 0; /* closed without close_notify: the end of what came */
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t io_write(probe_t *p, const void *buf, size_t n)
{
    if (p->ssl == NULL) {
        ssize_t k = send(p->fd, buf, n, MSG_NOSIGNAL);
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return -3;
        return k;
    }
    ERR_clear_error();
    errno = 0;
    /* the bytes stay at the head of out until taken: a retried write repeats them */
    int k = SSL_write(p->ssl, buf, (int)(n > 16384 ? 16384 : n));
    if (k > 0)
        return k;
    switch (SSL_get_error(p->ssl, k)) {
    case SSL_ERROR_WANT_READ:
        return -2;
    case SSL_ERROR_WANT_WRITE:
        return -3;
    default:
        if (errno == 0)
            errno = EPROTO;
        return -1;
    }
}

/* The name a probe gives the peer (Host, :authority; SNI when not an address): the
 * `resolve` line's name for a peer a DNS answer made, else its address; with port=,
 * the probed port. */
static void peer_host(const hc_peer_t *hp, char *buf, size_t len, char *sni, size_t snilen)
{
    const rp_upstream_server_t *s = hp->s;
    const rp_upstream_conf_t *u = hp->hu->u;
    const char *name = s->name;
    if (s->dynamic && s->line_index < u->resolve.nelts)
        name = ((const rp_upstream_resolve_t *)u->resolve.elts)[s->line_index].hostport;
    const char *colon = strrchr(name, ':');
    size_t hlen = colon ? (size_t)(colon - name) : strlen(name);
    if (hp->hu->hc->port)
        snprintf(buf, len, "%.*s:%d", (int)hlen, name, hp->hu->hc->port);
    else
        snprintf(buf, len, "%s", name);
    /* SNI is a name, never an address (RFC 6066 3) */
    const char *h = name;
    size_t n = hlen;
    if (n && h[0] == '[') {
        h++;
        n = n >= 2 ? n - 2 : 0;
    }
    snprintf(sni, snilen, "%.*s", (int)n, h);
    unsigned char a[16];
    if (inet_pton(AF_INET, sni, a) == 1 || inet_pton(AF_INET6, sni, a) == 1)
        sni[0] = '\0';
}

/* Connected (and through TLS): what the probe's type sends. 0, or -1 when it ended. */
static int begin_exchange(probe_t *p)
{
    const rp_health_conf_t *hc = p->hp->hu->hc;
    if (hc->type == RP_HC_TCP) {
        finish(p, 1, NULL);
        return -1;
    }
    char host[300], sni[300];
    peer_host(p->hp, host, sizeof(host), sni, sizeof(sni));
    p->out = evbuffer_new();
    if (p->out == NULL) {
        finish(p, 0, "out of memory");
        return -1;
    }
    if (hc->type == RP_HC_GRPC) {
        if (p->ssl) {
            const unsigned char *proto = NULL;
            unsigned plen = 0;
            SSL_get0_alpn_selected(p->ssl, &proto, &plen);
            if (plen != 2 || memcmp(proto, "h2", 2) != 0) {
                finish(p, 0, "the server did not choose HTTP/2 in ALPN");
                return -1;
            }
        }
        p->grpc = rp_health_grpc_new(host, hc->grpc_service, p->ssl != NULL);
        if (p->grpc == NULL || rp_health_grpc_output(p->grpc, p->out) != 0) {
            finish(p, 0, "cannot start an HTTP/2 session");
            return -1;
        }
    } else {
        rp_health_response_init(&p->resp);
        evbuffer_add_printf(p->out, "GET %s HTTP/1.1\r\n", hc->uri);
        if (!hc->has_host)
            evbuffer_add_printf(p->out, "Host: %s\r\n", host);
        int agent = 0;
        const rp_health_header_t *h = hc->headers.elts;
        for (size_t i = 0; i < hc->headers.nelts; i++) {
            evbuffer_add_printf(p->out, "%s: %s\r\n", h[i].name, h[i].value);
            agent |= strcasecmp(h[i].name, "user-agent") == 0;
        }
        if (!agent)
            evbuffer_add_printf(p->out, "User-Agent: rampart-health-check\r\n");
        evbuffer_add_printf(p->out, "Connection: close\r\n\r\n");
    }
    p->state = P_EXCHANGE;
    return 0;
}

static int start_tls(probe_t *p)
{
    const rp_health_conf_t *hc = p->hp->hu->hc;
    char host[300], sni[300];
    p->ssl = SSL_new(hc->ssl_ctx);
    if (p->ssl == NULL || SSL_set_fd(p->ssl, p->fd) != 1) {
        ERR_clear_error();
        finish(p, 0, "cannot start TLS");
        return -1;
    }
    SSL_set_connect_state(p->ssl);
    peer_host(p->hp, host, sizeof(host), sni, sizeof(sni));
    if (sni[0])
        SSL_set_tlsext_host_name(p->ssl, sni);
    p->state = P_HANDSHAKE;
    return 0;
}

/* A complete answer came (or the connection ended): the verdict of its type. */
static void judge(probe_t *p, int eof)
{
    char why[400] = "";
    const rp_health_conf_t *hc = p->hp->hu->hc;
    if (p->grpc) {
        int ok = rp_health_grpc_verdict(p->grpc, why, sizeof(why));
        finish(p, ok, why);
        return;
    }
    if (eof && rp_health_response_end(&p->resp) < 0) {
        finish(p, 0, p->resp.error);
        return;
    }
    int ok = rp_health_match_check(hc->match, &p->resp, why, sizeof(why));
    finish(p, ok, why);
}

/* Feeds bytes received to the exchange: 1 when it ended (the probe is finished), 0 to
 * go on. */
static int take(probe_t *p, const char *buf, size_t n)
{
    char why[300];
    if (p->grpc) {
        int rc = rp_health_grpc_input(p->grpc, (const uint8_t *)buf, n, why, sizeof(why));
        if (rc < 0) {
            finish(p, 0, why);
            return 1;
        }
        if (rc == 1) {
            judge(p, 0);
            return 1;
        }
        if (rp_health_grpc_output(p->grpc, p->out) != 0) {
            finish(p, 0, "HTTP/2 session failed");
            return 1;
        }
        return 0;
    }
    int rc = rp_health_response_feed(&p->resp, buf, n);
    if (rc < 0) {
        snprintf(why, sizeof(why), "invalid response: %s", p->resp.error);
        finish(p, 0, why);
        return 1;
    }
    if (rc == 1) {
        judge(p, 0);
        return 1;
    }
    return 0;
}

/* Moves the probe on as far as the socket allows, then waits for it. */
static void step(probe_t *p)
{
    for (;;) {
        if (p->state == P_CONNECT) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
            if (err) {
                fail_errno(p, "connect() failed", err);
                return;
            }
            int rc = p->hp->hu->hc->tls ? start_tls(p) : begin_exchange(p);
            if (rc != 0)
                return;
            continue;
        }
        if (p->state == P_HANDSHAKE) {
            ERR_clear_error();
            errno = 0;
            int rc = SSL_do_handshake(p->ssl);
            if (rc == 1) {
                if (begin_exchange(p) != 0)
                    return;
                continue;
            }
            int e = SSL_get_error(p->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                wait_io(p, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
                return;
            }
            char why[300], text[200] = "the connection closed";
            unsigned long first = ERR_peek_error();
            if (first)
                ERR_error_string_n(first, text, sizeof(text));
            snprintf(why, sizeof(why), "TLS handshake failed (%s)", text);
            finish(p, 0, why);
            return;
        }
        /* the exchange: write what is queued, then read what came */
        short want = 0;
        while (evbuffer_get_length(p->out)) {
            size_t n = evbuffer_get_length(p->out);
            const void *data = evbuffer_pullup(p->out, (ev_ssize_t)(n > 16384 ? 16384 : n));
            ssize_t k = io_write(p, data, n > 16384 ? 16384 : n);
            if (k > 0) {
                evbuffer_drain(p->out, (size_t)k);
                continue;
            }
            if (k == -1) {
                fail_errno(p, "sending the probe failed", errno);
                return;
            }
            want |= k == -2 ? EV_READ : EV_WRITE;
            break;
        }
        char buf[READ_CHUNK];
        int again = 0;
        for (;;) {
            ssize_t k = io_read(p, buf, sizeof(buf));
            if (k > 0) {
                if (take(p, buf, (size_t)k))
                    return;
                if (evbuffer_get_length(p->out)) {
                    again = 1; /* the session has something to say first */
                    break;
                }
                continue;
            }
            if (k == 0) {
                judge(p, 1);
                return;
            }
            if (k == -1) {
                fail_errno(p, "reading the answer failed", errno);
                return;
            }
            want |= k == -2 ? EV_READ : EV_WRITE;
            break;
        }
        if (again)
            continue;
        if (evbuffer_get_length(p->out))
            want |= EV_WRITE;
        wait_io(p, want ? want : EV_READ);
        return;
    }
}

static void start_probe(hc_peer_t *hp)
{
    const rp_health_conf_t *hc = hp->hu->hc;
    probe_t *p = rp_xcalloc(1, sizeof(*p));
    p->hp = hp;
    p->fd = -1;
    p->started = rp_time_ms();
    hp->probe = p;
    event_assign(&p->ev, rp_event_base, -1, 0, on_io, p);
    evtimer_assign(&p->timer, rp_event_base, on_timeout, p);
    rp_timer_add(&p->timer, hc->timeout);

    struct sockaddr_storage sa;
    memcpy(&sa, &hp->s->sa, sizeof(sa));
    socklen_t salen = hp->s->socklen;
    if (hc->port) {
        if (sa.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)hc->port);
        else
            ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)hc->port);
    }
    p->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        fail_errno(p, "socket() failed", errno);
        return;
    }
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->state = P_CONNECT;
    if (connect(p->fd, (struct sockaddr *)&sa, salen) != 0 && errno != EINPROGRESS) {
        fail_errno(p, "connect() failed", errno);
        return;
    }
    wait_io(p, EV_WRITE); /* writable: the connect ended, one way or the other */
}

/* ---- the peers of an upstream ---- */

static void peer_drop(hc_peer_t *hp)
{
    if (hp->probe)
        probe_free(hp->probe);
    rp_upstream_peer_unref(hp->s);
    free(hp);
}

/* Reads the pool's peer set again: new peers join (probed at once when their health is
 * unknown), peers it no longer has leave. */
static void sync_peers(hc_ups_t *hu, int64_t now)
{
    rp_upstream_peers_t *set = rp_upstream_peers(hu->u);
    for (hc_peer_t *hp = hu->peers; hp; hp = hp->next)
        hp->seen = 0;
    for (unsigned i = 0; i < set->n; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (s->down || s->sh == NULL)
            continue; /* takes no traffic whatever its health */
        hc_peer_t *hp = hu->peers;
        while (hp && hp->s != s)
            hp = hp->next;
        if (hp == NULL) {
            hp = rp_xcalloc(1, sizeof(*hp));
            hp->hu = hu;
            hp->s = s;
            if (s->dynamic)
                s->refs++;
            /* a verdict kept from before (a reload) stands until its next check */
            hp->due = rp_shm_counter_get(&s->sh->health) == RP_HEALTH_UNKNOWN
                          ? now
                          : now + next_gap(hu->hc);
            hp->next = hu->peers;
            hu->peers = hp;
        }
        hp->seen = 1;
    }
    for (hc_peer_t **pp = &hu->peers; *pp;) {
        hc_peer_t *hp = *pp;
        if (hp->seen) {
            pp = &hp->next;
            continue;
        }
        *pp = hp->next;
        peer_drop(hp);
    }
}

static void arm(hc_ups_t *hu)
{
    int64_t now = rp_time_ms(), next = now + TICK_MS;
    for (hc_peer_t *hp = hu->peers; hp; hp = hp->next)
        if (hp->probe == NULL && hp->due < next)
            next = hp->due;
    rp_timer_add(&hu->timer, next > now ? next - now : 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    hc_ups_t *hu = arg;
    int64_t now = rp_time_ms();
    sync_peers(hu, now);
    for (hc_peer_t *hp = hu->peers; hp; hp = hp->next)
        if (hp->probe == NULL && hp->due <= now)
            start_probe(hp);
    arm(hu);
}

/* ---- the runtime ---- */

rp_health_runtime_t *rp_health_start(const rp_health_target_t *targets, unsigned n)
{
    if (n == 0)
        return NULL;
    rp_health_runtime_t *rt = rp_xcalloc(1, sizeof(*rt));
    for (unsigned i = n; i-- > 0;) {
        hc_ups_t *hu = rp_xcalloc(1, sizeof(*hu));
        hu->u = targets[i].u;
        hu->hc = targets[i].hc;
        evtimer_assign(&hu->timer, rp_event_base, on_tick, hu);
        rp_timer_add(&hu->timer, 0);
        hu->next = rt->ups;
        rt->ups = hu;
    }
    return rt;
}

void rp_health_stop(rp_health_runtime_t *rt)
{
    if (rt == NULL)
        return;
    while (rt->ups) {
        hc_ups_t *hu = rt->ups;
        rt->ups = hu->next;
        event_del(&hu->timer);
        while (hu->peers) {
            hc_peer_t *hp = hu->peers;
            hu->peers = hp->next;
            peer_drop(hp);
        }
        free(hu);
    }
    free(rt);
}
