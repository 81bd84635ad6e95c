/*
 * The per-worker pool of HTTP/2 client sessions to upstream servers, and the
 * streams proxied requests run on.
 *
 * Each server of an `http2` group (and of every grpc_pass) has a short list of
 * sessions in each worker. A new request takes a stream on the first session
 * with room under the peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 is assumed
 * for a connection still being made), else opens a connection, up to
 * RP_H2U_MAX_SESSIONS; past that it queues on the least busy session. No
 * request goes before the peer's first SETTINGS frame; then those beyond its
 * limit spill to other connections while the cap allows, and nghttp2 holds back
 * the HEADERS of the rest until a stream ends, so the limit is always honoured.
 * Until that frame the connection counts as being made (the connect timeout
 * runs, a failure counts against the server once).
 *
 * A session that has carried keepalive_requests streams, or got a GOAWAY, takes
 * no new ones and closes once its streams are done; streams the GOAWAY left
 * unprocessed are closed as refused, and their owners send them again
 * elsewhere. Sessions without a request are kept for keepalive_timeout, at most
 * `keepalive` per group (one per server without it); those of a configuration
 * that no longer serves close with their last request.
 *
 * The rules of the downstream side (h2_conn.c) hold here too: nghttp2 is driven
 * only from a session's event handlers (read, write, timer, a deferred "run"),
 * its callbacks only record what happened and put the stream on the session's
 * ready list, and owners are notified from that list afterwards. The API calls
 * owners make queue and schedule; a session's memory is never freed while one
 * of its handlers is on the stack.
 *
 * TLS (proxy_pass https:// to an `http2` group, grpc_pass grpcs://): the
 * handshake follows the TCP connect inside the connect phase (same timer, and a
 * failure counts against the server as a refused connect does), the server must
 * select "h2" in ALPN, and every read and write then goes through
 * upstream_ssl.c's helpers on the session's embedded rp_uconn_t, which only
 * lends them its socket, its events and its TLS state. A session carries the
 * TLS object (rp_upstream_tls_t) it was made with, and requests only join
 * sessions with theirs, so a connection verified under one location's rules
 * never carries another's request, nor a cleartext one a TLS request.
 *
 * Flow control follows the consumers: automatic WINDOW_UPDATEs are off and a
 * stream's receive window reopens only as its owner hands the bytes to the
 * client (rp_h2u_consume); the owner reads the client's body only as the
 * server's windows allow (rp_h2u_body_room), and the data provider defers when
 * it has nothing, to be resumed when body bytes come.
 */
#include "upstream/h2_upstream.h"
#include "upstream/upstream_ssl.h"
#include "upstream/breaker.h"
#include "core/log.h"
#include "core/time.h"

#include <openssl/ssl.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK          16384
#define OUT_HIGH            (64 * 1024)  /* framed bytes queued before nghttp2 is asked for more */
#define STREAM_WINDOW       (256 * 1024) /* response bytes one stream may have in flight */
#define CONN_WINDOW         (64 * 1024 * 1024) /* all streams together: the per-stream one binds */
#define BODY_BUFFER         (64 * 1024)        /* request body bytes a stream holds unframed */
#define ASSUMED_MAX_STREAMS 100                /* the peer's limit until its SETTINGS say */

enum { S_CONNECTING, S_HANDSHAKE, S_OPEN, S_DEAD };

struct rp_h2u_session_s {
    int fd;
    int state;
    rp_upstream_conf_t *ups;
    rp_upstream_server_t *peer;
    nghttp2_session *s;
    /* the socket's read and write events (uc.rev, uc.wev) and, for TLS, its state:
     * upstream_ssl.c's helpers work on an rp_uconn_t */
    rp_uconn_t uc;
    rp_upstream_tls_t *tls; /* NULL: cleartext */
    struct event timer, run_ev;
    struct evbuffer *out;
    struct timeval started;
    int64_t connect_timeout;   /* the opener's, for the connections it spills over to */
    unsigned nstreams;         /* stream objects linked here (owned, or waiting for their close) */
    unsigned nowned;           /* of which an owner still holds */
    unsigned total;            /* streams ever started on it */
    unsigned got_settings : 1; /* the peer's first SETTINGS came: streams may start */
    unsigned settled : 1;      /* ... and the waiting ones were submitted */
    unsigned goaway : 1;       /* no new streams: the peer's GOAWAY, or keepalive_requests */
    unsigned idle : 1;         /* counted in ups->h2_idle; the idle timer runs */
    unsigned in_run : 1;
    unsigned zombie : 1; /* closed while run() was on the stack: run() frees the memory */
    rp_h2u_stream_t *streams;
    rp_h2u_stream_t *ready, *ready_tail;
    rp_h2u_session_t *prev, *next;   /* the server's sessions */
    rp_h2u_session_t *aprev, *anext; /* every session of the worker */
};

static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static rp_h2u_session_t *all;
static rp_h2u_stream_t *stream_free;
static unsigned nstream_free;

static void run(rp_h2u_session_t *ss);
static void settle(rp_h2u_session_t *ss);
static void handshake(rp_h2u_session_t *ss);
static rp_h2u_session_t *session_new(rp_upstream_conf_t *u, rp_upstream_server_t *p,
                                     int64_t connect_timeout, rp_upstream_tls_t *tls);

static void set_timer(struct event *ev, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(ev, &tv);
}

static void schedule(rp_h2u_session_t *ss)
{
    if (!ss->in_run)
        event_active(&ss->run_ev, EV_WRITE, 1);
}

/* ---- streams ---- */

static void ready_add(rp_h2u_session_t *ss, rp_h2u_stream_t *st)
{
    if (st->ready || st->owner == NULL)
        return;
    st->ready = 1;
    st->rnext = NULL;
    st->rprev = ss->ready_tail;
    if (ss->ready_tail)
        ss->ready_tail->rnext = st;
    else
        ss->ready = st;
    ss->ready_tail = st;
    schedule(ss);
}

static void ready_remove(rp_h2u_session_t *ss, rp_h2u_stream_t *st)
{
    if (!st->ready)
        return;
    st->ready = 0;
    if (st->rprev)
        st->rprev->rnext = st->rnext;
    else
        ss->ready = st->rnext;
    if (st->rnext)
        st->rnext->rprev = st->rprev;
    else
        ss->ready_tail = st->rprev;
}

static rp_h2u_stream_t *stream_get(void)
{
    rp_h2u_stream_t *st = stream_free;
    if (st) {
        stream_free = st->next;
        nstream_free--;
    } else {
        st = rp_xcalloc(1, sizeof(*st));
        st->in = evbuffer_new();
        st->out = evbuffer_new();
    }
    struct evbuffer *in = st->in, *out = st->out;
    memset(st, 0, sizeof(*st));
    st->in = in;
    st->out = out;
    return st;
}

/* Unlinks st from its session and frees it; window its owner never used goes back. */
static void stream_release(rp_h2u_stream_t *st)
{
    rp_h2u_session_t *ss = st->sess;
    if (ss) {
        ready_remove(ss, st);
        size_t unread = evbuffer_get_length(st->in);
        if (ss->s && st->id > 0) {
            nghttp2_session_set_stream_user_data(ss->s, st->id, NULL);
            if (unread)
                nghttp2_session_consume(ss->s, st->id, unread);
        }
        if (st->prev)
            st->prev->next = st->next;
        else
            ss->streams = st->next;
        if (st->next)
            st->next->prev = st->prev;
        ss->nstreams--;
        if (st->owner)
            ss->nowned--;
        schedule(ss);
    }
    evbuffer_drain(st->in, evbuffer_get_length(st->in));
    evbuffer_drain(st->out, evbuffer_get_length(st->out));
    if (nstream_free < 256) {
        st->next = stream_free;
        stream_free = st;
        nstream_free++;
    } else {
        evbuffer_free(st->in);
        evbuffer_free(st->out);
        free(st);
    }
}

static rp_h2u_stream_t *find_stream(rp_h2u_session_t *ss, int32_t id)
{
    rp_h2u_stream_t *st = nghttp2_session_get_stream_user_data(ss->s, id);
    if (st)
        return st;
    for (st = ss->streams; st; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

/* Copies a field into the owner's arena, growing the list as needed. */
static void add_field(rp_h2u_stream_t *st, rp_header_t **list, unsigned *n, unsigned *cap,
                      const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    if (*n == *cap) {
        unsigned ncap = *cap ? *cap * 2 : 16;
        rp_header_t *h = rp_arena_alloc(st->arena, ncap * sizeof(*h));
        if (*n)
            memcpy(h, *list, *n * sizeof(*h));
        *list = h;
        *cap = ncap;
    }
    char *b = rp_arena_alloc(st->arena, nlen + vlen + 2);
    memcpy(b, name, nlen);
    b[nlen] = '\0';
    memcpy(b + nlen + 1, value, vlen);
    b[nlen + 1 + vlen] = '\0';
    (*list)[*n].name = (rp_str_t){b, nlen};
    (*list)[*n].value = (rp_str_t){b + nlen + 1, vlen};
    (*n)++;
}

/* ---- nghttp2 callbacks: bookkeeping only ---- */

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    rp_h2u_stream_t *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st == NULL || st->owner == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    st->field_bytes += namelen + valuelen + 32; /* counted as HPACK does */
    if (st->field_bytes > RP_H2U_FIELDS_MAX) {
        st->too_large = 1;
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    }
    if (st->head) {
        add_field(st, &st->trailers, &st->ntrailers, &st->tcap, name, namelen, value, valuelen);
        return 0;
    }
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        /* nghttp2 checked it: three digits */
        st->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        st->interim = st->status < 200;
        return 0;
    }
    if (!st->interim)
        add_field(st, &st->headers, &st->nheaders, &st->hcap, name, namelen, value, valuelen);
    return 0;
}

/* Every stream still sending its body may have room now. */
static void wake_senders(rp_h2u_session_t *ss)
{
    for (rp_h2u_stream_t *st = ss->streams; st; st = st->next)
        if (st->has_body && !st->out_eof && !st->closed)
            ready_add(ss, st);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    rp_h2u_session_t *ss = user;
    rp_h2u_stream_t *st;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (st == NULL)
            return 0;
        if (!st->head && st->interim) {
            /* 1xx: not passed on (as for HTTP/1); the final head follows */
            st->interim = 0;
            st->status = 0;
            st->nheaders = 0;
        } else if (!st->head && st->status >= 200) {
            st->head = 1;
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            st->eof = 1;
        ready_add(ss, st);
        break;
    case NGHTTP2_DATA:
        st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            st->eof = 1;
            ready_add(ss, st);
        }
        break;
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
            ss->got_settings = 1;
            wake_senders(ss); /* INITIAL_WINDOW_SIZE may have grown */
        }
        break;
    case NGHTTP2_WINDOW_UPDATE:
        if (frame->hd.stream_id == 0) {
            wake_senders(ss);
        } else if ((st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id)) != NULL) {
            ready_add(ss, st);
        }
        break;
    case NGHTTP2_GOAWAY:
        /* nghttp2 closes the streams above last_stream_id as refused */
        ss->goaway = 1;
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    rp_h2u_session_t *ss = user;
    rp_h2u_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st == NULL || st->owner == NULL) {
        nghttp2_session_consume(s, id, len); /* nobody reads it: give the window back */
        return 0;
    }
    evbuffer_add(st->in, data, len);
    ready_add(ss, st);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    rp_h2u_session_t *ss = user;
    rp_h2u_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    st->closed = 1;
    st->error_code = code;
    if (code == NGHTTP2_REFUSED_STREAM && !st->head)
        st->refused = 1; /* RFC 9113 8.7: not processed, safe to send again */
    if (st->owner == NULL) {
        stream_release(st);
        return 0;
    }
    ready_add(ss, st);
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    rp_h2u_session_t *ss = user;
    rp_h2u_stream_t *st;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (st && !st->sent_headers) {
            st->sent_headers = 1;
            ready_add(ss, st); /* its body may go now */
        }
        break;
    case NGHTTP2_DATA:
        st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
        if (st)
            ready_add(ss, st); /* progress: more room, and the send timeout restarts */
        break;
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *frame, int lib_error,
                             void *user)
{
    rp_h2u_session_t *ss = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* A request that never left, typically because a GOAWAY came first: it was not
     * processed, and nghttp2 may not report it closed. */
    rp_h2u_stream_t *st = find_stream(ss, frame->hd.stream_id);
    if (st == NULL || st->closed)
        return 0;
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, NULL);
    st->closed = 1;
    st->refused = 1;
    st->error_code = NGHTTP2_REFUSED_STREAM;
    if (st->owner == NULL)
        stream_release(st);
    else
        ready_add(ss, st);
    return 0;
}

/* The request body's data provider: what the owner queued, as the windows allow. */
static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    rp_h2u_session_t *ss = user;
    rp_h2u_stream_t *st = nghttp2_session_get_stream_user_data(s, id);
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* its owner left: reset */
    size_t avail = evbuffer_get_length(st->out);
    if (avail == 0) {
        if (st->out_eof) {
            /* request trailers are not forwarded: the body's end is the stream's */
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    int n = evbuffer_remove(st->out, buf, length < avail ? length : avail);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if ((size_t)n == avail && st->out_eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    ready_add(ss, st);
    return n;
}

static void init_library(void)
{
    if (callbacks)
        return;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, on_frame_not_send);
    nghttp2_option_new(&options);
    nghttp2_option_set_no_auto_window_update(options, 1);
    nghttp2_option_set_peer_max_concurrent_streams(options, ASSUMED_MAX_STREAMS);
    /* a head of up to RP_H2U_FIELDS_MAX in 16k frames: that cap, which resets only the
     * stream, applies before nghttp2's, which ends the connection */
    nghttp2_option_set_max_continuations(options, 2 * RP_H2U_FIELDS_MAX / 16384);
}

/* ---- sessions ---- */

static unsigned stream_limit(rp_h2u_session_t *ss)
{
    if (!ss->settled)
        return ASSUMED_MAX_STREAMS;
    return nghttp2_session_get_remote_settings(ss->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

static int idle_limit(rp_upstream_conf_t *u)
{
    if (u->keepalive)
        return u->keepalive;
    return u->live ? (int)u->live->n : (int)u->servers.nelts; /* resolved peers count too */
}

static void set_idle(rp_h2u_session_t *ss, int idle)
{
    if (ss->idle == (unsigned)idle)
        return;
    ss->idle = (unsigned)idle;
    ss->ups->h2_idle += idle ? 1 : -1;
    if (idle)
        set_timer(&ss->timer, ss->ups->keepalive_timeout);
    else
        event_del(&ss->timer);
}

static void submit(rp_h2u_session_t *ss, rp_h2u_stream_t *st)
{
    nghttp2_data_provider prd = {.source = {.ptr = NULL}, .read_callback = read_body};
    int32_t id =
        nghttp2_submit_request(ss->s, NULL, st->nva, st->nnv, st->has_body ? &prd : NULL, st);
    st->nva = NULL;
    st->connected = 1;
    if (id < 0) {
        /* stream ids ran out: the server never saw it */
        st->closed = 1;
        st->refused = 1;
        ss->goaway = 1;
        ready_add(ss, st);
        return;
    }
    st->id = id;
    if (++ss->total >= (unsigned)ss->ups->keepalive_requests)
        ss->goaway = 1; /* retire it once its streams are done */
}

/* The connection is up (or failed): it no longer counts as being opened (breaker.h). */
static void connect_over(rp_h2u_session_t *ss)
{
    if (ss->uc.connecting) {
        ss->uc.connecting = 0;
        rp_breaker_pending_add(ss->ups, -1);
    }
}

/* Ends the session: its streams must have no owner left (see fail_streams). Its memory
 * goes too, unless run() is on the stack: then run() frees it, without touching what the
 * session pointed to (a retired configuration may be gone by then). */
static void session_free(rp_h2u_session_t *ss)
{
    set_idle(ss, 0);
    rp_upstream_server_t *p = ss->peer;
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        p->h2 = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    p->h2_sessions--;
    if (ss->aprev)
        ss->aprev->anext = ss->anext;
    else
        all = ss->anext;
    if (ss->anext)
        ss->anext->aprev = ss->aprev;
    while (ss->streams) {
        rp_h2u_stream_t *st = ss->streams;
        if (st->owner) {
            /* still held (its owner closes it later): it just leaves the session */
            ss->streams = st->next;
            ready_remove(ss, st);
            st->sess = NULL;
            st->prev = st->next = NULL;
            continue;
        }
        st->sess = NULL;
        ss->streams = st->next;
        stream_release(st);
    }
    event_del(&ss->uc.rev);
    event_del(&ss->uc.wev);
    event_del(&ss->timer);
    event_del(&ss->run_ev);
    if (ss->uc.ssl)
        rp_uconn_tls_close(&ss->uc);
    if (ss->fd >= 0)
        close(ss->fd);
    if (ss->s)
        nghttp2_session_del(ss->s);
    ss->s = NULL;
    ss->fd = -1;
    connect_over(ss);
    rp_peer_conns_add(p->sh, -1);
    rp_breaker_conns_add(ss->ups, -1);
    rp_upstream_peer_unref(p);
    evbuffer_free(ss->out);
    ss->out = NULL;
    ss->ready = ss->ready_tail = NULL;
    if (ss->in_run) {
        ss->zombie = 1;
        return;
    }
    free(ss);
}

/* The connection failed: every stream still open fails with it, and owners hear. why:
 * a TLS failure in nginx's words (NULL: err says it). */
static void fail_streams(rp_h2u_session_t *ss, int connecting, int timed_out, int err,
                         const char *why)
{
    int handshaking = ss->state == S_HANDSHAKE;
    ss->state = S_DEAD;
    connect_over(ss);
    event_del(&ss->uc.rev);
    event_del(&ss->uc.wev);
    event_del(&ss->timer);
    if (connecting)
        rp_upstream_peer_failed(ss->ups, ss->peer); /* once, whatever number of requests waited */
    for (rp_h2u_stream_t *st = ss->streams; st; st = st->next) {
        if (st->closed)
            continue;
        st->closed = 1;
        st->conn_error = 1;
        st->connecting = (unsigned)connecting;
        st->timed_out = (unsigned)timed_out;
        st->sys_errno = err;
        st->handshaking = (unsigned)(connecting && handshaking);
        if (why && st->owner && st->arena)
            st->tls_error = rp_arena_strdup(st->arena, why);
        st->refused = !st->sent_headers; /* a request that never left may go elsewhere */
        ready_add(ss, st);
    }
}

/* A polite end for a session nobody uses: GOAWAY if it can go now, then close. */
static void session_close(rp_h2u_session_t *ss)
{
    if (ss->state == S_OPEN && ss->s) {
        nghttp2_session_terminate_session(ss->s, NGHTTP2_NO_ERROR);
        const uint8_t *data;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(ss->s, &data)) > 0)
            evbuffer_add(ss->out, data, (size_t)n);
        /* best effort: the server copes with a bare close */
        if (ss->uc.ssl)
            rp_uconn_tls_flush(&ss->uc);
        else
            evbuffer_write(ss->out, ss->fd);
    }
    fail_streams(ss, 0, 0, 0, NULL);
    session_free(ss);
}

/* Moves frames from nghttp2 to the socket. Returns -1 when the connection failed. */
static int flush(rp_h2u_session_t *ss)
{
    for (;;) {
        while (evbuffer_get_length(ss->out) < OUT_HIGH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(ss->s, &data);
            if (n < 0) {
                rp_log_error(RP_LOG_ERR, 0, "http2 upstream %s: %s", ss->peer->name,
                             nghttp2_strerror((int)n));
                fail_streams(ss, !ss->got_settings, 0, EPROTO, NULL);
                return -1;
            }
            if (n == 0)
                break;
            evbuffer_add(ss->out, data, (size_t)n);
        }
        if (evbuffer_get_length(ss->out) == 0)
            break;
        /* TLS: a record at a time from ss->out (uc.out), which only grows between a
         * WANT_WRITE and its retry, as SSL_write needs */
        int k = ss->uc.ssl ? rp_uconn_tls_flush(&ss->uc) : evbuffer_write(ss->out, ss->fd);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                event_add(&ss->uc.wev, NULL);
                return 0;
            }
            fail_streams(ss, !ss->got_settings, 0, errno, NULL);
            return -1;
        }
    }
    event_del(&ss->uc.wev);
    return 0;
}

/* Notifies the owners of streams with news. */
static void dispatch(rp_h2u_session_t *ss)
{
    rp_h2u_stream_t *st;
    while (!ss->zombie && (st = ss->ready) != NULL) {
        ready_remove(ss, st);
        if (st->owner && st->notify) {
            const rp_log_t *saved = rp_log_switch(st->log);
            st->notify(st->owner);
            rp_log_leave(saved);
        }
    }
}

/* After any event: notify, send, and retire or keep the session when it has no work. */
static void run(rp_h2u_session_t *ss)
{
    ss->in_run = 1;
    if (ss->state == S_OPEN && ss->got_settings && !ss->settled)
        settle(ss);
    for (int round = 0; round < 16; round++) {
        dispatch(ss);
        if (ss->zombie || ss->state != S_OPEN)
            break;
        if (flush(ss) != 0)
            continue; /* failed: owners hear it in the next round */
        if (ss->ready == NULL)
            break;
    }
    ss->in_run = 0;
    if (ss->zombie) {
        free(ss);
        return;
    }
    if (ss->ready) {
        schedule(ss); /* more to do: after other events had their turn */
        return;
    }
    if (ss->state == S_DEAD) {
        session_free(ss);
        return;
    }
    if (ss->state != S_OPEN || !ss->settled || ss->nowned > 0) {
        set_idle(ss, 0);
        return;
    }
    /* no request uses it */
    if (ss->goaway || !rp_upstream_is_live(ss->ups) || ss->peer->retired ||
        (!nghttp2_session_want_read(ss->s) && !nghttp2_session_want_write(ss->s))) {
        session_close(ss);
        return;
    }
    if (!ss->idle && ss->ups->h2_idle >= idle_limit(ss->ups)) {
        session_close(ss);
        return;
    }
    set_idle(ss, 1);
}

static void on_run(evutil_socket_t fd, short what, void *arg)
{
    run(arg);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    rp_h2u_session_t *ss = arg;
    if (ss->state == S_HANDSHAKE) {
        handshake(ss);
        return;
    }
    uint8_t buf[READ_CHUNK];
    for (int i = 0; i < 8 && ss->state == S_OPEN; i++) {
        ssize_t n = ss->uc.ssl ? rp_uconn_tls_read(&ss->uc, buf, sizeof(buf))
                               : read(ss->fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            int err = n < 0 ? errno : 0;
            if (ss->nowned)
                rp_log_error(RP_LOG_INFO, 0, "http2 upstream %s closed the connection%s%s",
                             ss->peer->name, err ? ": " : "", err ? strerror(err) : "");
            fail_streams(ss, !ss->got_settings, 0, err ? err : ECONNRESET, NULL);
            break;
        }
        ssize_t rv = nghttp2_session_mem_recv(ss->s, buf, (size_t)n);
        if (rv < 0) {
            rp_log_error(RP_LOG_ERR, 0, "http2 upstream %s broke the protocol: %s", ss->peer->name,
                         nghttp2_strerror((int)rv));
            fail_streams(ss, !ss->got_settings, 0, EPROTO, NULL);
            break;
        }
    }
    /* bytes TLS already decrypted make the socket no more readable: come back for them */
    if (ss->uc.ssl && ss->state == S_OPEN && rp_uconn_tls_pending(&ss->uc))
        event_active(&ss->uc.rev, EV_READ, 1);
    run(ss);
}

static void connected(rp_h2u_session_t *ss);

/* Moves the TLS handshake on (the connect timer still runs); once done, the server must
 * have chosen "h2" in ALPN, or the connection fails as a handshake does. */
static void handshake(rp_h2u_session_t *ss)
{
    char why[320];
    int err = 0;
    int rc = rp_uconn_handshake(&ss->uc, why, sizeof(why), &err);
    if (rc == 1)
        return;
    if (rc == 0) {
        const unsigned char *proto = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(ss->uc.ssl, &proto, &len);
        if (len == 2 && memcmp(proto, "h2", 2) == 0) {
            connected(ss);
            run(ss);
            return;
        }
        if (len)
            snprintf(why, sizeof(why),
                     "upstream SSL: the server selected \"%.*s\" in ALPN, not \"h2\"", (int)len,
                     (const char *)proto);
        else
            snprintf(why, sizeof(why), "upstream SSL: the server did not select \"h2\" in ALPN");
        rc = -1;
    }
    fail_streams(ss, 1, 0, err, why);
    run(ss);
}

/* TCP is up: our preface goes, and the connect timeout keeps running until the peer's
 * SETTINGS come (a server that does not speak HTTP/2 fails as a connect). */
static void connected(rp_h2u_session_t *ss)
{
    ss->state = S_OPEN;
    connect_over(ss);
    event_add(&ss->uc.rev, NULL);
}

/* The peer's SETTINGS came: its MAX_CONCURRENT_STREAMS is known, so the waiting requests
 * go now (nghttp2 holds back those beyond it), never more than the peer allows. */
/* Moves a stream that was never submitted to another session of its server with room
 * (opening one if the cap allows). Returns 0, or -1 when it stays. */
static int spill(rp_h2u_session_t *ss, rp_h2u_stream_t *st)
{
    rp_h2u_session_t *t;
    unsigned same = 0; /* sessions with ss's TLS settings: the cap counts those */
    for (t = ss->peer->h2; t; t = t->next) {
        if (t->tls != ss->tls)
            continue;
        same++;
        if (t != ss && t->state != S_DEAD && !t->goaway && !t->zombie &&
            t->nowned < stream_limit(t))
            break;
    }
    if (t == NULL && same < RP_H2U_MAX_SESSIONS)
        t = session_new(ss->ups, ss->peer, ss->connect_timeout, ss->tls);
    if (t == NULL)
        return -1;
    ready_remove(ss, st);
    if (st->prev)
        st->prev->next = st->next;
    else
        ss->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    ss->nstreams--;
    ss->nowned--;
    st->sess = t;
    st->prev = NULL;
    st->next = t->streams;
    if (t->streams)
        t->streams->prev = st;
    t->streams = st;
    t->nstreams++;
    t->nowned++;
    set_idle(t, 0);
    if (t->settled) {
        st->connect_ms = 0;
        submit(t, st);
        ready_add(t, st);
    }
    return 0;
}

static void settle(rp_h2u_session_t *ss)
{
    ss->settled = 1;
    event_del(&ss->timer);
    int64_t ms = rp_time_ms_since(&ss->started);
    /* oldest first; those past the peer's limit go to other connections while the cap on
     * connections allows, the rest wait here in nghttp2's queue */
    rp_h2u_stream_t *st = ss->streams;
    while (st && st->next)
        st = st->next;
    unsigned limit = stream_limit(ss), started = 0;
    for (rp_h2u_stream_t *prev; st; st = prev) {
        prev = st->prev;
        if (st->closed || st->nva == NULL)
            continue;
        if (started >= limit && spill(ss, st) == 0)
            continue;
        st->connect_ms = ms;
        submit(ss, st);
        ready_add(ss, st);
        started++;
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    rp_h2u_session_t *ss = arg;
    if (ss->state == S_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(ss->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            fail_streams(ss, 1, 0, err, NULL);
            run(ss);
            return;
        }
        if (ss->tls) {
            if (rp_uconn_tls_start(&ss->uc, ss->tls) != 0) {
                fail_streams(ss, 1, 0, ENOMEM, NULL);
                run(ss);
                return;
            }
            ss->state = S_HANDSHAKE;
            handshake(ss);
            return;
        }
        connected(ss);
    } else if (ss->state == S_HANDSHAKE) {
        handshake(ss);
        return;
    }
    run(ss);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    rp_h2u_session_t *ss = arg;
    if (ss->state == S_CONNECTING || ss->state == S_HANDSHAKE || !ss->settled) {
        fail_streams(ss, 1, 1, ETIMEDOUT, NULL);
        run(ss);
        return;
    }
    if (ss->idle) {
        session_close(ss); /* keepalive_timeout */
        return;
    }
}

static rp_h2u_session_t *session_new(rp_upstream_conf_t *u, rp_upstream_server_t *p,
                                     int64_t connect_timeout, rp_upstream_tls_t *tls)
{
    init_library();
    int fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&p->sa, p->socklen) != 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        rp_upstream_peer_failed(u, p);
        errno = err;
        return NULL;
    }
    rp_h2u_session_t *ss = rp_xcalloc(1, sizeof(*ss));
    ss->fd = fd;
    ss->ups = u;
    ss->peer = p;
    ss->state = S_CONNECTING;
    ss->connect_timeout = connect_timeout;
    ss->out = evbuffer_new();
    ss->tls = tls;
    ss->uc.fd = fd;
    ss->uc.ups = u;
    ss->uc.peer = p;
    ss->uc.out = ss->out;
    rp_peer_conns_add(p->sh, 1);
    rp_breaker_conns_add(u, 1);
    ss->uc.connecting = 1;
    rp_breaker_pending_add(u, 1);
    if (p->dynamic)
        p->refs++; /* a peer a DNS answer drops stays until its sessions end */
    rp_time_now(&ss->started);
    if (nghttp2_session_client_new2(&ss->s, callbacks, ss, options) != 0) {
        close(fd);
        rp_peer_conns_add(p->sh, -1);
        rp_breaker_conns_add(u, -1);
        rp_breaker_pending_add(u, -1);
        rp_upstream_peer_unref(p);
        evbuffer_free(ss->out);
        free(ss);
        errno = ENOMEM;
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    nghttp2_submit_settings(ss->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(ss->s, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    event_assign(&ss->uc.rev, rp_event_base, fd, EV_READ | EV_PERSIST, on_read, ss);
    event_assign(&ss->uc.wev, rp_event_base, fd, EV_WRITE | EV_PERSIST, on_write, ss);
    evtimer_assign(&ss->timer, rp_event_base, on_timer, ss);
    event_assign(&ss->run_ev, rp_event_base, -1, 0, on_run, ss);
    event_add(&ss->uc.wev, NULL); /* writable: the connect finished, one way or the other */
    set_timer(&ss->timer, connect_timeout);

    ss->next = p->h2;
    if (p->h2)
        p->h2->prev = ss;
    p->h2 = ss;
    p->h2_sessions++;
    ss->anext = all;
    if (all)
        all->aprev = ss;
    all = ss;
    return ss;
}

/* ---- the API ---- */

rp_h2u_stream_t *rp_h2u_open(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                             const rp_h2u_request_t *q)
{
    rp_h2u_session_t *ss = NULL, *least = NULL;
    unsigned same = 0; /* sessions with the request's TLS settings: the cap counts those */
    for (rp_h2u_session_t *t = s->h2; t; t = t->next) {
        if (t->tls != q->tls)
            continue; /* made under other TLS rules, or cleartext: never shared */
        same++;
        if (t->state == S_DEAD || t->goaway)
            continue;
        if (t->nowned < stream_limit(t)) {
            ss = t;
            break;
        }
        if (least == NULL || t->nowned < least->nowned)
            least = t;
    }
    if (ss == NULL && (least == NULL || same < RP_H2U_MAX_SESSIONS)) {
        ss = session_new(u, s, q->connect_timeout, q->tls);
        if (ss == NULL)
            return NULL;
    }
    if (ss == NULL)
        ss = least;

    rp_h2u_stream_t *st = stream_get();
    st->sess = ss;
    st->owner = q->owner;
    st->log = q->log;
    st->notify = q->notify;
    st->arena = q->arena;
    st->nva = q->nva;
    st->nnv = q->nnv;
    st->has_body = q->has_body != 0;
    st->next = ss->streams;
    if (ss->streams)
        ss->streams->prev = st;
    ss->streams = st;
    ss->nstreams++;
    ss->nowned++;
    set_idle(ss, 0);
    if (ss->settled) {
        submit(ss, st);
        schedule(ss);
    }
    return st;
}

size_t rp_h2u_body_room(const rp_h2u_stream_t *st)
{
    rp_h2u_session_t *ss = st->sess;
    if (ss == NULL || ss->state != S_OPEN || st->closed || st->id <= 0 || !st->sent_headers)
        return 0;
    int32_t w = nghttp2_session_get_stream_remote_window_size(ss->s, st->id);
    int32_t cw = nghttp2_session_get_remote_window_size(ss->s);
    if (cw < w)
        w = cw;
    if (w > BODY_BUFFER)
        w = BODY_BUFFER;
    size_t queued = evbuffer_get_length(st->out);
    return w > 0 && (size_t)w > queued ? (size_t)w - queued : 0;
}

void rp_h2u_send_body(rp_h2u_stream_t *st, const void *data, size_t n, int last)
{
    rp_h2u_session_t *ss = st->sess;
    if (ss == NULL || st->closed)
        return;
    if (n)
        evbuffer_add(st->out, data, n);
    if (last)
        st->out_eof = 1;
    if (st->deferred && ss->state == S_OPEN) {
        st->deferred = 0;
        nghttp2_session_resume_data(ss->s, st->id);
    }
    schedule(ss);
}

void rp_h2u_consume(rp_h2u_stream_t *st, size_t n)
{
    rp_h2u_session_t *ss = st->sess;
    if (ss == NULL || ss->state != S_OPEN || st->id <= 0 || n == 0)
        return;
    nghttp2_session_consume(ss->s, st->id, n);
    schedule(ss); /* the WINDOW_UPDATE */
}

/* A session of a configuration that no longer serves closes with its last request, at
 * once: a single-process reload frees that configuration as soon as its last client
 * connection ends, which may be within this very call chain. */
static void retire_if_unused(rp_h2u_session_t *ss)
{
    if (ss->nowned == 0 && !ss->zombie && !rp_upstream_is_live(ss->ups))
        session_close(ss);
}

void rp_h2u_close(rp_h2u_stream_t *st)
{
    rp_h2u_session_t *ss = st->sess;
    if (ss)
        ready_remove(ss, st);
    if (ss == NULL || st->closed || st->id <= 0 || ss->state != S_OPEN) {
        stream_release(st); /* over, never sent, or its connection is gone */
        if (ss)
            retire_if_unused(ss);
        return;
    }
    /* still open: the server should stop working on it */
    st->owner = NULL;
    st->log = NULL;
    st->notify = NULL;
    st->arena = NULL;
    ss->nowned--;
    size_t unread = evbuffer_get_length(st->in);
    if (unread) {
        nghttp2_session_consume(ss->s, st->id, unread);
        evbuffer_drain(st->in, unread);
    }
    if (!st->eof || !st->out_eof)
        nghttp2_submit_rst_stream(ss->s, NGHTTP2_FLAG_NONE, st->id,
                                  st->eof ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    schedule(ss);
    retire_if_unused(ss);
}

void rp_h2u_close_idle_to(rp_upstream_server_t *s)
{
    for (rp_h2u_session_t *ss = s->h2, *next; ss; ss = next) {
        next = ss->next;
        if (ss->nowned == 0 && !ss->zombie)
            session_close(ss);
    }
}

void rp_h2u_close_idle(void)
{
    for (rp_h2u_session_t *ss = all, *next; ss; ss = next) {
        next = ss->anext;
        if (ss->nowned == 0 && !ss->zombie)
            session_close(ss);
    }
}
