/*
 * The byte tunnel after an upgrade (WebSocket, or any protocol a client and an
 * upstream agree on with 101 Switching Protocols): the client connection and
 * the upstream connection carry opaque bytes both ways until both are done.
 *
 * Each direction moves through one worker-wide scratch buffer: read a piece,
 * write it at once, and keep only what the receiving socket did not take (on
 * the client's output queue, or the upstream's). A side is read only while the
 * other side's queue is empty, so a slow reader holds at most one piece per
 * direction in rampart and slows the writer through TCP, whatever the traffic.
 *
 * An end of stream from one side is passed on as a half-close of the other
 * (after its queue drained, and after TLS close_notify towards a TLS client);
 * the tunnel closes when both directions have ended, when either side fails, or
 * when it was idle for proxy_read_timeout (nothing read or written either way),
 * as nginx's proxy_read_timeout does for upgraded connections. A write that
 * waits longer than proxy_send_timeout (to the upstream) or send_timeout (to the
 * client) closes it too. Closing the client connection ends the request: its
 * cleanup (proxy.c) closes the upstream connection and the request is logged
 * once, with status 101 and the bytes the client was sent.
 *
 * A WebSocket tunnel also follows the frame headers going by in each direction
 * (only their lengths: payloads are skipped, never looked at), so that when the
 * worker closes it at worker_shutdown_timeout it can say goodbye as a server going
 * away does: a close frame with code 1001 to the client and, masked, to the
 * upstream, each only when its direction is between two frames and nothing waits
 * in its queue (a frame cannot be cut), and only if the socket takes the frame at
 * once. Otherwise the connection just closes, as before.
 */
#include "core/log.h"
#include "http/h1.h"
#include "upstream/proxy.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <openssl/ssl.h>
#include <event2/buffer.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads per event and direction before the loop serves other connections. */
#define ROUNDS 8

/* Where a direction of a WebSocket stands in its framing (RFC 6455 5.2). */
typedef struct {
    uint8_t head[14]; /* a frame header being gathered */
    unsigned have;    /* its bytes so far */
    uint64_t left;    /* payload bytes of the current frame still to pass */
} ws_track_t;

typedef struct {
    rp_request_t *r;
    rp_conn_t *c;
    rp_uconn_t *uc;
    int64_t read_timeout, send_timeout;
    struct timeval active;    /* when a byte last moved either way */
    struct timeval up_moved;  /* when the upstream last took bytes of a waiting write */
    unsigned client_eof : 1;  /* the client ended its direction */
    unsigned up_eof : 1;      /* the upstream ended its direction */
    unsigned up_shut : 1;     /* ... and the upstream was told (after its queue drained) */
    unsigned client_shut : 1; /* ... and the client was told */
    unsigned websocket : 1;   /* Upgrade: websocket: the framing is followed */
    ws_track_t down, up;      /* upstream to client, client to upstream */
} tunnel_t;

/* One piece of either direction on its way; 64k, as the proxy's request scratch. */
static char scratch[65536];

static void set_timer(tunnel_t *t, int64_t ms)
{
    rp_timer_add(&t->uc->timer, ms < 1 ? 1 : ms);
}

static void moved(tunnel_t *t)
{
    rp_time_now(&t->active);
}

/* ---- WebSocket framing, followed for a clean goodbye ---- */

static void ws_feed(ws_track_t *w, const uint8_t *p, size_t n)
{
    while (n) {
        if (w->left) {
            size_t k = n < w->left ? n : (size_t)w->left;
            w->left -= k;
            p += k;
            n -= k;
            continue;
        }
        w->head[w->have++] = *p++;
        n--;
        if (w->have < 2)
            continue;
        unsigned len7 = w->head[1] & 0x7f;
        unsigned need = 2 + (w->head[1] & 0x80 ? 4 : 0) + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
        if (w->have < need)
            continue;
        uint64_t len = len7;
        if (len7 == 126)
            len = (uint64_t)w->head[2] << 8 | w->head[3];
        else if (len7 == 127) {
            len = 0;
            for (int i = 2; i < 10; i++)
                len = len << 8 | w->head[i];
        }
        w->left = len;
        w->have = 0;
    }
}

static int ws_between_frames(const ws_track_t *w)
{
    return w->have == 0 && w->left == 0;
}

/* Close frames with code 1001 ("going away") both ways, where they fit (see above). */
static void ws_goodbye(tunnel_t *t)
{
    if (!t->websocket)
        return;
    if (!t->client_shut && ws_between_frames(&t->down) && !rp_conn_tunnel_pending(t->c)) {
        static const uint8_t frame[] = {0x88, 0x02, 0x03, 0xe9};
        rp_conn_tunnel_write(t->c, frame, sizeof(frame)); /* what it could not send is lost */
    }
    if (!t->up_shut && ws_between_frames(&t->up) && evbuffer_get_length(t->uc->out) == 0) {
        /* a client's frame is masked; a zero mask is as valid as any other */
        static const uint8_t frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9};
        struct iovec iov = {(void *)frame, sizeof(frame)};
        rp_uconn_writev(t->uc, &iov, 1);
    }
}

/* Ends the tunnel; t is gone afterwards. Always returns -1 for the caller to pass on. */
static int end(tunnel_t *t)
{
    rp_conn_free(t->c); /* the request's cleanup closes the upstream, then it is logged */
    return -1;
}

/* A side failed: nginx's words, at error level for the upstream's side and info for the
 * client's (clients go away all the time). */
static int fail(tunnel_t *t, int level, const char *what, int err)
{
    rp_proxy_log(t->r, level, what, err, "while proxying upgraded connection");
    return end(t);
}

/* Both directions ended and were passed on: nothing can move any more. */
static int check_done(tunnel_t *t)
{
    return t->up_shut && t->client_shut ? end(t) : 0;
}

/* ---- client to upstream ---- */

/* Writes what waits for the upstream. 0 when all went, 1 when it must wait, -1 on error. */
static int flush_up(tunnel_t *t)
{
    rp_uconn_t *uc = t->uc;
    while (evbuffer_get_length(uc->out)) {
        int n = rp_uconn_flush(uc);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return 1;
            return -1;
        }
        rp_time_now(&t->up_moved);
    }
    return 0;
}

/* Passes the client's end of stream on once the upstream has everything before it. */
static int shut_up(tunnel_t *t)
{
    if (!t->client_eof || t->up_shut || evbuffer_get_length(t->uc->out))
        return 0;
    t->up_shut = 1;
    if (t->uc->ssl)
        SSL_shutdown(t->uc->ssl); /* close_notify: TLS's own end of stream */
    if (shutdown(t->uc->fd, SHUT_WR) != 0)
        return fail(t, RP_LOG_ERR, "shutdown() failed", errno);
    return check_done(t);
}

static int to_upstream(tunnel_t *t, const char *data, size_t n)
{
    rp_uconn_t *uc = t->uc;
    struct iovec iov = {(void *)data, n};
    ssize_t k = rp_uconn_writev(uc, &iov, 1);
    if (k < 0) {
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        k = 0;
    }
    if ((size_t)k < n) {
        /* the upstream is behind: the client is not read until this went */
        evbuffer_add(uc->out, data + k, n - (size_t)k);
        event_add(&uc->wev, NULL);
        t->up_moved = t->active;
        set_timer(t, t->send_timeout);
    }
    return 0;
}

/* Moves client bytes to the upstream while it takes them. Returns -1 when the tunnel ended. */
static int pump_up(tunnel_t *t)
{
    rp_conn_t *c = t->c;
    int rounds = 0;
    while (!t->client_eof) {
        if (evbuffer_get_length(t->uc->out)) {
            rp_conn_tunnel_read_enable(c, 0); /* on_up_write resumes */
            return 0;
        }
        if (rounds++ == ROUNDS) {
            rp_conn_tunnel_read_enable(c, 1); /* more may wait: come back after the others */
            return 0;
        }
        ssize_t n = rp_conn_tunnel_read(c, scratch, sizeof(scratch));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                rp_conn_tunnel_read_enable(c, 1);
                return 0;
            }
            return fail(t, RP_LOG_INFO, "client connection failed", errno);
        }
        if (n == 0) {
            t->client_eof = 1;
            rp_conn_tunnel_read_enable(c, 0);
            break;
        }
        moved(t);
        if (t->websocket)
            ws_feed(&t->up, (const uint8_t *)scratch, (size_t)n);
        if (to_upstream(t, scratch, (size_t)n) != 0)
            return fail(t, RP_LOG_ERR, "writev() failed", errno);
    }
    return shut_up(t);
}

/* ---- upstream to client ---- */

/* Passes the upstream's end of stream on once the client has everything before it. */
static int shut_client(tunnel_t *t)
{
    if (!t->up_eof || t->client_shut || rp_conn_tunnel_pending(t->c))
        return 0;
    t->client_shut = 1;
    if (rp_conn_tunnel_shutdown(t->c) != 0)
        return end(t);
    return check_done(t);
}

/* Moves upstream bytes to the client while it takes them. Returns -1 when the tunnel ended. */
static int pump_down(tunnel_t *t)
{
    rp_uconn_t *uc = t->uc;
    int rounds = 0;
    while (!t->up_eof) {
        if (rp_conn_tunnel_pending(t->c)) {
            event_del(&uc->rev); /* the client is behind: on_client's EV_WRITE resumes */
            return 0;
        }
        if (rounds++ == ROUNDS) {
            event_add(&uc->rev, NULL); /* more may wait: come back after the others */
            if (uc->ssl && rp_uconn_tls_pending(uc))
                event_active(&uc->rev, EV_READ, 1); /* decrypted: no socket event will say so */
            return 0;
        }
        ssize_t n = rp_uconn_read(uc, scratch, sizeof(scratch));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                event_add(&uc->rev, NULL);
                return 0;
            }
            return fail(t, RP_LOG_ERR, "recv() failed", errno);
        }
        if (n == 0) {
            t->up_eof = 1;
            event_del(&uc->rev);
            break;
        }
        moved(t);
        if (t->websocket)
            ws_feed(&t->down, (const uint8_t *)scratch, (size_t)n);
        t->r->body_bytes_sent += n;
        if (rp_conn_tunnel_write(t->c, scratch, (size_t)n) != 0)
            return fail(t, RP_LOG_INFO, "client connection failed", errno);
    }
    return shut_client(t);
}

/* ---- events ---- */

static void on_client(void *arg, short what)
{
    tunnel_t *t = arg;
    if (what & RP_TUNNEL_GOODBYE) {
        ws_goodbye(t);
        return;
    }
    if (what & EV_READ) {
        pump_up(t);
        return;
    }
    /* the client took everything queued: the upstream may be read again */
    moved(t);
    if (t->up_eof)
        shut_client(t);
    else
        pump_down(t);
}

static void on_up_read(void *arg)
{
    pump_down(arg);
}

static void on_up_write(void *arg)
{
    tunnel_t *t = arg;
    int w = flush_up(t);
    if (w < 0) {
        fail(t, RP_LOG_ERR, "writev() failed", errno);
        return;
    }
    if (w > 0)
        return;
    event_del(&t->uc->wev);
    moved(t);
    set_timer(t, t->read_timeout);
    if (t->client_eof)
        shut_up(t);
    else
        pump_up(t);
}

/*
 * One timer serves the tunnel: armed for proxy_read_timeout, or proxy_send_timeout
 * while a write to the upstream waits. It is not re-armed per byte; when it fires
 * it measures from the last movement and sleeps again for what is left.
 */
static void on_up_timer(void *arg)
{
    tunnel_t *t = arg;
    if (evbuffer_get_length(t->uc->out)) {
        int64_t idle = rp_time_ms_since(&t->up_moved);
        if (idle < t->send_timeout) {
            set_timer(t, t->send_timeout - idle);
            return;
        }
        fail(t, RP_LOG_ERR, "upstream timed out (110: Connection timed out)", 0);
        return;
    }
    if (rp_conn_tunnel_pending(t->c)) {
        /* the client is behind: its send_timeout runs on the connection */
        set_timer(t, t->read_timeout);
        return;
    }
    int64_t idle = rp_time_ms_since(&t->active);
    if (idle < t->read_timeout) {
        set_timer(t, t->read_timeout - idle);
        return;
    }
    /* nginx's words; an idle tunnel is routine, so it is not an error here */
    fail(t, RP_LOG_INFO, "upstream timed out (110: Connection timed out)", 0);
}

void rp_tunnel_start(rp_request_t *r, rp_uconn_t *uc, const rp_proxy_loc_conf_t *plcf,
                     const char *early, size_t n)
{
    rp_conn_t *c = r->conn;
    tunnel_t *t = rp_arena_calloc(r->arena, sizeof(*t));
    t->r = r;
    t->c = c;
    t->uc = uc;
    t->read_timeout = plcf->read_timeout;
    t->send_timeout = plcf->send_timeout;
    rp_str_t proto = rp_request_header(r, "upgrade");
    t->websocket = proto.len == 9 && strncasecmp(proto.data, "websocket", 9) == 0;
    moved(t);
    t->up_moved = t->active;

    uc->owner = t;
    uc->on_read = on_up_read;
    uc->on_write = on_up_write;
    uc->on_timeout = on_up_timer;
    if (evbuffer_get_length(uc->out)) {
        /* the server answered before it had the whole request head: the rest still goes */
        event_add(&uc->wev, NULL);
        set_timer(t, t->send_timeout);
    } else {
        event_del(&uc->wev);
        set_timer(t, t->read_timeout);
    }

    if (rp_conn_tunnel_start(c, on_client, t) != 0) {
        fail(t, RP_LOG_INFO, "client connection failed", errno);
        return;
    }
    if (n) {
        /* the first bytes of the new protocol came with the 101 */
        r->body_bytes_sent += (int64_t)n;
        if (t->websocket)
            ws_feed(&t->down, (const uint8_t *)early, n);
        if (rp_conn_tunnel_write(c, early, n) != 0) {
            fail(t, RP_LOG_INFO, "client connection failed", errno);
            return;
        }
    }
    /* the client may have sent its first bytes behind the request head already */
    if (pump_up(t) == 0)
        pump_down(t);
}
