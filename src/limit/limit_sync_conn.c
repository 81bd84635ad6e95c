/*
 * The sync engine at run time, in the helper process (one per node; the single
 * process with master_process off): one connection to Redis and a tick every
 * `interval`.
 *
 * Each tick collects what the workers of this node counted since the last one, from
 * every `sync` zone, and sends it as ONE pipelined batch; each INCRBY's answer goes
 * back to its zone (limit.h). At most one batch is in flight: a tick that finds one
 * still waiting collects nothing, so the deltas go on accumulating in the zones'
 * records (a counter per record, not a queue) and leave with the next batch. Nothing
 * here is on a request's path: workers only ever touch shared memory, and decide
 * locally.
 *
 * Failing open. Redis down, refusing, answering errors, or slow (a connection or a
 * batch not done within `timeout`) ends the connection: the zones go on deciding on
 * what this node counts plus what they last heard from the others. The outage is
 * logged once (warn) and the recovery once (notice); in between, reconnection is
 * tried with a growing backoff (100 ms doubling to 5 s), and every tick collects and
 * DROPS what the zones counted: those requests were decided without the others'
 * counts, the other nodes will never wait for them, and sending them once Redis
 * returns would charge a window (perhaps a past one) at once with a whole outage's
 * traffic. Dropping keeps the node's memory flat, and Redis's counters start again
 * from what happens after the outage. A batch in flight when the connection fails is
 * dropped the same way.
 *
 * The connection is a libevent bufferevent, an OpenSSL one for `tls`: the handshake,
 * SNI and verification are libevent's and OpenSSL's, and everything above it is the
 * same for both. hiredis formats the commands and parses the replies.
 */
#include "limit/limit_sync.h"
#include "core/log.h"
#include "core/time.h"
#include "net/listen.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

enum { S_DOWN, S_CONNECTING, S_SETUP, S_READY };

struct rp_limit_sync_engine_s {
    const rp_limit_sync_conf_t *conf;
    struct event *tick;
    struct event *retry;
    struct bufferevent *bev;
    redisReader *reader;
    int state;
    int healthy;  /* the last batch was answered: counts are shared */
    int ever;     /* it has been healthy once: the next loss is an outage, not a failed start */
    int reported; /* the current outage was logged */
    int inflight; /* a batch waits for its replies */
    int setup_expected, setup_got;
    int64_t deadline; /* ms: the connection, its setup or the batch in flight is late after */
    int64_t last_ok;  /* ms: when a batch was last answered */
    int64_t backoff;  /* ms before the next attempt */
    unsigned addr;    /* which of the name's addresses to try next */
    rp_limit_sync_batch_t batch;
    char where[160]; /* "127.0.0.1:6379 (db 2, tls)", for messages */
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

/* ---- the connection's life ---- */

static void close_conn(rp_limit_sync_engine_t *e)
{
    if (e->bev) {
        bufferevent_free(e->bev);
        e->bev = NULL;
    }
    if (e->reader) {
        redisReaderFree(e->reader);
        e->reader = NULL;
    }
    e->inflight = 0;
    e->deadline = 0;
    rp_limit_sync_batch_reset(&e->batch);
}

/*
 * The connection is of no more use (why says how): close it, count locally, try again
 * after the backoff. Only the first failure of an outage is logged above debug.
 */
static void fail(rp_limit_sync_engine_t *e, const char *why)
{
    close_conn(e);
    e->state = S_DOWN;
    e->healthy = 0;
    if (!e->reported) {
        e->reported = 1;
        rp_log_error(RP_LOG_WARN, 0,
                     "limit_sync: redis at %s is unavailable (%s): sync zones count on this "
                     "node alone until it answers",
                     e->where, why);
    } else {
        rp_log_error(RP_LOG_DEBUG, 0, "limit_sync: redis at %s: %s", e->where, why);
    }
    e->backoff = rp_limit_sync_backoff(e->backoff);
    rp_timer_add(e->retry, e->backoff);
}

/* A batch was answered whole: the nodes share their counts. */
static void healthy(rp_limit_sync_engine_t *e, int64_t now)
{
    e->last_ok = now;
    if (e->healthy)
        return;
    e->healthy = 1;
    e->backoff = 0;
    if (e->ever)
        rp_log_error(RP_LOG_NOTICE, 0,
                     "limit_sync: redis at %s answers again: sync zones share their counts "
                     "again",
                     e->where);
    else
        rp_log_error(RP_LOG_NOTICE, 0,
                     "limit_sync: connected to redis at %s: sync zones share their counts",
                     e->where);
    e->ever = 1;
    e->reported = 0;
}

static const char *ssl_why(rp_limit_sync_engine_t *e, char *buf, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(e->bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long err = bufferevent_get_openssl_error(e->bev);
    if (vr != X509_V_OK) {
        snprintf(buf, len, "TLS: the certificate does not verify: %s",
                 X509_verify_cert_error_string(vr));
    } else if (err) {
        char s[256];
        ERR_error_string_n(err, s, sizeof(s));
        snprintf(buf, len, "TLS: %s", s);
    } else {
        return NULL;
    }
    ERR_clear_error();
    return buf;
}

static void connect_now(rp_limit_sync_engine_t *e)
{
    const rp_limit_sync_conf_t *c = e->conf;
    int64_t now = rp_time_ms();
    unsigned i = e->addr++ % c->naddrs;
    e->reader = redisReaderCreate();
    if (c->tls) {
        SSL *ssl = SSL_new(c->ssl_ctx);
        if (ssl == NULL) {
            ERR_clear_error();
            fail(e, "cannot create a TLS connection");
            return;
        }
        int ok = 1;
        if (!c->ssl_name_is_ip)
            ok = SSL_set_tlsext_host_name(ssl, c->ssl_name) == 1;
        if (ok && c->ssl_verify) {
            if (c->ssl_name_is_ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->ssl_name) == 1;
            } else {
                ok = SSL_set1_host(ssl, c->ssl_name) == 1;
                SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            }
        }
        if (ok)
            e->bev = bufferevent_openssl_socket_new(
                rp_event_base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
        if (e->bev == NULL) {
            SSL_free(ssl);
            ERR_clear_error();
            fail(e, "cannot create a TLS connection");
            return;
        }
        /* Redis closes without close_notify at times: an end, not an attack */
        bufferevent_openssl_set_allow_dirty_shutdown(e->bev, 1);
    } else {
        e->bev = bufferevent_socket_new(rp_event_base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (e->bev == NULL) {
            fail(e, "cannot create a connection");
            return;
        }
    }
    bufferevent_setcb(e->bev, on_read, NULL, on_event, e);
    bufferevent_enable(e->bev, EV_READ | EV_WRITE);
    e->state = S_CONNECTING;
    e->deadline = now + c->timeout;
    if (bufferevent_socket_connect(e->bev, (struct sockaddr *)&c->addrs[i], (int)c->lens[i]) < 0) {
        char why[128];
        snprintf(why, sizeof(why), "connect() failed: %s", strerror(errno));
        fail(e, why);
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    rp_limit_sync_engine_t *e = arg;
    if (e->state == S_DOWN)
        connect_now(e);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    rp_limit_sync_engine_t *e = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        e->state = S_SETUP;
        e->setup_got = 0;
        e->setup_expected = rp_limit_sync_setup_encode(&e->conf->url, bufferevent_get_output(bev));
        if (e->setup_expected < 0)
            fail(e, "cannot format the commands that set the connection up");
        return;
    }
    char buf[512];
    const char *why = NULL;
    if (e->conf->tls)
        why = ssl_why(e, buf, sizeof(buf));
    if (why == NULL && (what & BEV_EVENT_ERROR) && err) {
        snprintf(buf, sizeof(buf), "%s%s", e->state == S_CONNECTING ? "connect() failed: " : "",
                 strerror(err));
        why = buf;
    }
    if (why == NULL)
        why = e->state == S_CONNECTING ? "the connection failed" : "it closed the connection";
    fail(e, why);
}

/* ---- replies ---- */

/* One reply, in the order the commands went. 0, or -1 when the connection failed. */
static int take_reply(rp_limit_sync_engine_t *e, const redisReply *reply)
{
    char why[512];
    int64_t now = rp_time_ms();
    if (e->state == S_SETUP) {
        if (rp_limit_sync_setup_reply(&e->conf->url, e->setup_got++, reply, why, sizeof(why)) != 0)
            goto failed;
        if (e->setup_got == e->setup_expected) {
            e->state = S_READY;
            e->deadline = 0;
        }
        return 0;
    }
    if (e->state != S_READY || !e->inflight) {
        snprintf(why, sizeof(why), "a reply nothing asked for");
        goto failed;
    }
    int rc = rp_limit_sync_batch_reply(&e->batch, e->conf->zones, reply, now, why, sizeof(why));
    if (rc < 0)
        goto failed;
    if (rc == 1) {
        e->inflight = 0;
        e->deadline = 0;
        rp_limit_sync_batch_reset(&e->batch);
        healthy(e, now);
    }
    return 0;

failed:
    fail(e, why);
    return -1;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    rp_limit_sync_engine_t *e = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    while ((n = evbuffer_get_contiguous_space(in)) > 0) {
        redisReaderFeed(e->reader, (const char *)evbuffer_pullup(in, (ssize_t)n), n);
        evbuffer_drain(in, n);
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(e->reader, &reply) != REDIS_OK) {
            char why[192];
            snprintf(why, sizeof(why), "unreadable reply: %s", e->reader->errstr);
            fail(e, why);
            return;
        }
        if (reply == NULL)
            return;
        int rc = take_reply(e, reply);
        freeReplyObject(reply);
        if (rc != 0)
            return;
    }
}

/* ---- the tick ---- */

typedef struct {
    rp_limit_sync_engine_t *e;
    unsigned zone;
} collect_ctx_t;

static void collect_one(void *arg, const void *key, size_t key_len, int64_t window, int64_t delta,
                        int64_t ttl_ms)
{
    collect_ctx_t *c = arg;
    rp_limit_sync_batch_add(&c->e->batch, c->zone, key, key_len, window, delta, ttl_ms);
}

/* Redis is down: the zones already counted these locally; see the comment at the top
 * of the file for why they are not kept for later. */
static void drop_one(void *arg, const void *key, size_t key_len, int64_t window, int64_t delta,
                     int64_t ttl_ms)
{
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    rp_limit_sync_engine_t *e = arg;
    const rp_limit_sync_conf_t *c = e->conf;
    int64_t now = rp_time_ms();
    if (e->deadline && now > e->deadline) {
        char why[128];
        snprintf(why, sizeof(why), "%s within %lld ms",
                 e->state == S_CONNECTING ? "no connection"
                 : e->state == S_SETUP    ? "no answer to AUTH/SELECT"
                                          : "no answer to a batch",
                 (long long)c->timeout);
        fail(e, why);
    }
    if (e->state == S_DOWN) {
        for (unsigned z = 0; z < c->nzones; z++)
            c->zones[z].ops->collect(c->zones[z].zone, now, drop_one, NULL);
        return;
    }
    /* connecting, or a batch in flight: the deltas wait in the zones */
    if (e->state != S_READY || e->inflight)
        return;

    rp_limit_sync_batch_reset(&e->batch);
    for (unsigned z = 0; z < c->nzones; z++) {
        collect_ctx_t cc = {e, z};
        c->zones[z].ops->collect(c->zones[z].zone, now, collect_one, &cc);
    }
    if (e->batch.nrecs == 0) {
        if (e->healthy && now - e->last_ok < RP_LIMIT_SYNC_IDLE_PING)
            return;
        e->batch.ping = 1; /* a new connection, or a quiet one: is Redis there? */
    }
    if (rp_limit_sync_batch_encode(&e->batch, c->zones, bufferevent_get_output(e->bev)) != 0) {
        fail(e, "cannot format a batch (out of memory)");
        return;
    }
    e->inflight = 1;
    e->deadline = now + c->timeout;
}

/* ---- start and stop ---- */

rp_limit_sync_engine_t *rp_limit_sync_start(const rp_limit_sync_conf_t *conf)
{
    rp_limit_sync_engine_t *e = rp_xcalloc(1, sizeof(*e));
    e->conf = conf;
    const char *h = conf->url.host;
    int n = snprintf(e->where, sizeof(e->where), strchr(h, ':') ? "[%s]:%d" : "%s:%d", h,
                     conf->url.port);
    size_t len = n > 0 && (size_t)n < sizeof(e->where) ? (size_t)n : 0;
    if (conf->url.db && conf->tls)
        snprintf(e->where + len, sizeof(e->where) - len, " (db %ld, tls)", conf->url.db);
    else if (conf->url.db)
        snprintf(e->where + len, sizeof(e->where) - len, " (db %ld)", conf->url.db);
    else if (conf->tls)
        snprintf(e->where + len, sizeof(e->where) - len, " (tls)");
    e->tick = event_new(rp_event_base, -1, EV_PERSIST, on_tick, e);
    e->retry = evtimer_new(rp_event_base, on_retry, e);
    rp_timer_add(e->tick, conf->interval);
    connect_now(e);
    return e;
}

void rp_limit_sync_stop(rp_limit_sync_engine_t *e)
{
    if (e == NULL)
        return;
    close_conn(e);
    event_free(e->tick);
    event_free(e->retry);
    rp_limit_sync_batch_free(&e->batch);
    free(e);
}
