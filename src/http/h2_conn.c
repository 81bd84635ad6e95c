/*
 * HTTP/2 connections on nghttp2. The connection object (socket, TLS, timer) is
 * net/'s; this file is the protocol on it: the session with its output queue and
 * write event, and its streams, each an ordinary request for the phases.
 *
 * Three rules keep it simple and safe:
 * - nghttp2 is driven only from this file's event handlers (read, write, a
 *   deferred "flush" event). The request API (h2_write, h2_abort, ...) only
 *   queues and schedules, so a stream is never freed under a handler that is
 *   still running.
 * - Streams start after the bytes that opened them are processed, from a ready
 *   list. A stream reset in the same read never starts (Rapid Reset costs no
 *   upstream work), and nothing runs inside nghttp2's callbacks but
 *   bookkeeping.
 * - Flow control follows the consumer: automatic WINDOW_UPDATEs are off, and a
 *   stream's window reopens only as its handler reads the body. Output is
 *   pulled from a stream's buffer as the peer's window allows; the producer
 *   waits while that buffer is full.
 *
 * Defences (each ends the connection with GOAWAY(ENHANCE_YOUR_CALM)): a token
 * bucket for resets of streams by either side (Rapid Reset, CVE-2023-44487, and
 * resets the client provokes, CVE-2025-8671); one for frames that carry no work
 * (SETTINGS, PING, PRIORITY, empty DATA and CONTINUATION); a cap on
 * CONTINUATION frames per header block; the decoded header list limit (HPACK
 * bombs); nghttp2's own limit on queued ACKs for a peer that does not read; and
 * send_timeout for a response that makes no progress (a zero window).
 */
#include "http/h2.h"
#include "http/error_log.h"
#include "core/log.h"
#include "observe/metrics.h"
#include "http/ssl.h"
#include "net/listen.h"
#include "route/route.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 16384
#define OUT_HIGH (64 * 1024)        /* connection output above this: produce no more frames */
#define STREAM_OUT_HIGH (64 * 1024) /* a stream's unsent body above this: its producer waits */
#define STREAM_OUT_LOW (16 * 1024)  /* ... until it is back below this */
#define CONN_WINDOW (1024 * 1024)   /* received body bytes all streams together may hold */

/* Budgets: a burst, refilled at a rate per second. */
#define RESET_BURST 1000
#define RESET_RATE 33
#define IDLE_FRAME_BURST 1000
#define IDLE_FRAME_RATE 100
#define MAX_CONTINUATIONS 16
#define SID_WINDOW        1024 /* client stream ids (512 streams) whose opening is remembered */

typedef struct rp_h2_stream_s stream_t;

struct rp_h2_stream_s {
    int32_t id;
    rp_conn_t *c;
    rp_arena_t *arena;
    rp_request_t *r;
    rp_h2_req_t q;
    struct evbuffer *in;  /* body bytes received, not yet read by the handler */
    struct evbuffer *out; /* response body bytes not yet framed */
    int64_t received;
    int64_t head_bytes; /* the HEADERS frames' payloads: $request_length counts them, as nginx */
    unsigned malformed : 1;
    unsigned headers_done : 1;
    unsigned in_eof : 1;
    unsigned out_eof : 1;
    unsigned head_sent : 1;
    unsigned deferred : 1; /* nghttp2 waits for resume_data */
    unsigned reset : 1;    /* reset or closing: writes fail */
    unsigned start : 1;    /* on the ready list to start its request */
    unsigned notify_body : 1;
    unsigned notify_drain : 1;
    unsigned ready : 1;
    nghttp2_nv *trailers; /* sent after the body (rp_h2_response_trailers) */
    size_t ntrailers;
    stream_t *prev, *next;       /* the connection's streams */
    stream_t *rprev, *rnext;     /* the ready list */
};

enum { T_PREFACE, T_IDLE, T_SEND, T_BODY, T_NONE, T_CLOSING };

typedef struct rp_h2_conn_s {
    rp_conn_t *c;
    nghttp2_session *s;
    struct evbuffer *out; /* frames for the socket */
    struct event wev;     /* writable, added only while output is blocked */
    struct event flush_ev; /* output to produce once the current callback returns */
    rp_h2_srv_conf_t *conf;
    stream_t *streams;
    unsigned nstreams;
    stream_t *ready, *ready_tail;
    unsigned requests;
    double reset_tokens, idle_tokens;
    int64_t refilled; /* ms */
    unsigned continuations;
    unsigned preface_left;          /* client preface bytes the scanner still skips */
    uint8_t scan_hd[13];            /* the start of a frame split across reads */
    uint32_t max_client_sid;        /* the highest stream the client opened with HEADERS */
    uint32_t idle_reset_sid;        /* the highest idle stream grpc-core reset (grpc_cancel) */
    uint64_t opened[SID_WINDOW / 128]; /* which of the last client ids HEADERS opened */
    uint64_t ended[SID_WINDOW / 128];  /* ... and which of those the client ended */
    unsigned scan_len;
    uint32_t scan_skip;             /* payload bytes of the current frame still to come */
    size_t block_size; /* the decoded size of the header block being received */
    uint32_t fatal; /* the GOAWAY code a defence asked for */
    const char *fatal_why;
    int timer_mode;
    unsigned goaway : 1;
    unsigned closing : 1;
    unsigned got_frame : 1;
    unsigned progress : 1;      /* response bytes went out since the timer was set */
    unsigned body_progress : 1; /* request bytes came in since the timer was set */
    unsigned read_paused : 1;
} h2_t;

#define H2(c) ((h2_t *)(c)->data)

static const rp_conn_proto_t h2_proto;
static const rp_http_proto_t h2_http;
static nghttp2_session_callbacks *callbacks;
static nghttp2_option *options;
static stream_t *stream_free;
static unsigned nstream_free;

static void run(rp_conn_t *c);
static void h2_release(rp_conn_t *c);
static void h2_abort(rp_request_t *r);

static void schedule(rp_conn_t *c)
{
    event_active(&H2(c)->flush_ev, EV_WRITE, 1);
}

static rp_http_core_loc_conf_t *default_loc(rp_conn_t *c)
{
    rp_http_core_srv_conf_t *srv = c->ls->http->default_server;
    return srv->ctx->loc_conf[rp_http_core_module.index];
}

/* ---- budgets ---- */

static void refill(h2_t *h2)
{
    int64_t now = rp_time_ms();
    double dt = (double)(now - h2->refilled) / 1000.0;
    if (dt <= 0)
        return;
    h2->refilled = now;
    h2->reset_tokens += dt * RESET_RATE;
    if (h2->reset_tokens > RESET_BURST)
        h2->reset_tokens = RESET_BURST;
    h2->idle_tokens += dt * IDLE_FRAME_RATE;
    if (h2->idle_tokens > IDLE_FRAME_BURST)
        h2->idle_tokens = IDLE_FRAME_BURST;
}

static void trip(h2_t *h2, const char *why)
{
    if (h2->fatal == 0) {
        h2->fatal = NGHTTP2_ENHANCE_YOUR_CALM;
        h2->fatal_why = why;
        rp_metrics_h2_flood(why);
    }
}

static int spend(h2_t *h2, double *tokens, const char *why)
{
    refill(h2);
    if (*tokens < 1) {
        trip(h2, why);
        return -1;
    }
    *tokens -= 1;
    return 0;
}

/* ---- streams ---- */

static void ready_add(h2_t *h2, stream_t *st)
{
    if (st->ready)
        return;
    st->ready = 1;
    st->rnext = NULL;
    st->rprev = h2->ready_tail;
    if (h2->ready_tail)
        h2->ready_tail->rnext = st;
    else
        h2->ready = st;
    h2->ready_tail = st;
}

static void ready_remove(h2_t *h2, stream_t *st)
{
    if (!st->ready)
        return;
    st->ready = 0;
    if (st->rprev)
        st->rprev->rnext = st->rnext;
    else
        h2->ready = st->rnext;
    if (st->rnext)
        st->rnext->rprev = st->rprev;
    else
        h2->ready_tail = st->rprev;
}

static stream_t *stream_new(rp_conn_t *c, int32_t id)
{
    stream_t *st = stream_free;
    if (st) {
        stream_free = st->next;
        nstream_free--;
    } else {
        st = rp_xcalloc(1, sizeof(*st));
        st->arena = rp_arena_create(8192);
        st->in = evbuffer_new();
        st->out = evbuffer_new();
    }
    rp_arena_t *a = st->arena;
    struct evbuffer *in = st->in, *out = st->out;
    memset(st, 0, sizeof(*st));
    st->arena = a;
    st->in = in;
    st->out = out;
    st->id = id;
    st->c = c;
    rp_h2_req_init(&st->q);
    h2_t *h2 = H2(c);
    st->next = h2->streams;
    if (h2->streams)
        h2->streams->prev = st;
    h2->streams = st;
    h2->nstreams++;
    return st;
}

/* Ends the stream's request (release, log) and frees the stream. */
static void stream_close(rp_conn_t *c, stream_t *st)
{
    h2_t *h2 = H2(c);
    rp_request_t *r = st->r;
    ready_remove(h2, st);
    if (h2->s)
        nghttp2_session_set_stream_user_data(h2->s, st->id, NULL);
    size_t unread = evbuffer_get_length(st->in);
    if (unread && h2->s)
        nghttp2_session_consume_connection(h2->s, unread); /* window the handler never used */
    if (r) {
        if (!r->response_started)
            r->status = 499; /* the client reset the stream before its answer, as nginx logs */
        rp_http_request_end(r);
    }
    if (st->prev)
        st->prev->next = st->next;
    else
        h2->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    h2->nstreams--;
    evbuffer_drain(st->in, evbuffer_get_length(st->in));
    evbuffer_drain(st->out, evbuffer_get_length(st->out));
    rp_arena_reset(st->arena);
    if (nstream_free < 256) {
        st->next = stream_free;
        stream_free = st;
        nstream_free++;
    } else {
        evbuffer_free(st->in);
        evbuffer_free(st->out);
        rp_arena_destroy(st->arena);
        free(st);
    }
}

static stream_t *get_stream(h2_t *h2, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h2->s, id);
}

/* ---- nghttp2 callbacks: bookkeeping only ---- */

/*
 * Frame accounting, done on the raw byte stream before nghttp2 sees it: nghttp2
 * silently drops some frames (DATA on a closed stream, for one) without telling
 * its callbacks, and a flood of those costs as much as any other.
 */
static int account(h2_t *h2, const uint8_t *hd)
{
    uint32_t length = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
    uint8_t type = hd[3], flags = hd[4];
    int idle = 0;
    switch (type) {
    case NGHTTP2_DATA:
        idle = length == 0 && !(flags & NGHTTP2_FLAG_END_STREAM);
        break;
    case NGHTTP2_HEADERS:
        h2->continuations = 0;
        idle = length == 0;
        break;
    case NGHTTP2_CONTINUATION:
        if (++h2->continuations > MAX_CONTINUATIONS) {
            trip(h2, "too many CONTINUATION frames");
            return -1;
        }
        idle = length == 0;
        break;
    case NGHTTP2_PRIORITY:
        idle = 1;
        break;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        idle = !(flags & NGHTTP2_FLAG_ACK);
        break;
    case NGHTTP2_RST_STREAM:
        return spend(h2, &h2->reset_tokens, "too many stream resets");
    }
    if (idle)
        return spend(h2, &h2->idle_tokens, "flood of frames without work");
    return 0;
}

/* A connection error the scanner found (nghttp2 would not). */
static void refuse(h2_t *h2, uint32_t code, const char *why)
{
    if (h2->fatal == 0) {
        h2->fatal = code;
        h2->fatal_why = why;
    }
}

/* Sets of the last SID_WINDOW / 2 odd stream ids, as rings of bits. */
static unsigned sid_bit(uint32_t sid)
{
    return (sid >> 1) % (SID_WINDOW / 2);
}

static int sid_get(const uint64_t *set, uint32_t sid)
{
    return set[sid_bit(sid) / 64] >> sid_bit(sid) % 64 & 1;
}

static void sid_put(uint64_t *set, uint32_t sid, int on)
{
    if (on)
        set[sid_bit(sid) / 64] |= UINT64_C(1) << sid_bit(sid) % 64;
    else
        set[sid_bit(sid) / 64] &= ~(UINT64_C(1) << sid_bit(sid) % 64);
}

/*
 * A client's HEADERS on odd stream sid: 0 when it breaks RFC 9113 5.1.1 (an id lower
 * than one the client opened already, and never opened itself: a stream the first
 * use of a higher id closed). nghttp2 cannot tell, as it forgets closed streams, and
 * ignores such a HEADERS, where h2spec (5.1.1/2) and the RFC want a connection error.
 * HEADERS on a stream that was opened (trailers, or a stream already closed) stay
 * nghttp2's to judge (and client_ended's), and so do ids older than the window.
 */
static int headers_sid_ok(h2_t *h2, uint32_t sid)
{
    if (sid > h2->max_client_sid) {
        if (sid - h2->max_client_sid >= SID_WINDOW) {
            memset(h2->opened, 0, sizeof(h2->opened));
            memset(h2->ended, 0, sizeof(h2->ended));
        } else {
            for (uint32_t i = h2->max_client_sid + 2; i < sid; i += 2) { /* skipped */
                sid_put(h2->opened, i, 0);
                sid_put(h2->ended, i, 0);
            }
        }
        sid_put(h2->opened, sid, 1);
        sid_put(h2->ended, sid, 0);
        h2->max_client_sid = sid;
        return 1;
    }
    return h2->max_client_sid - sid >= SID_WINDOW || sid_get(h2->opened, sid);
}

/*
 * RFC 9113 5.1: once the client has ended its side of a stream (END_STREAM, or its own
 * RST_STREAM), DATA or HEADERS from it on that stream is an error of type
 * STREAM_CLOSED, whatever the server did meanwhile: the client knows what it sent.
 * nghttp2 answers it while it holds the stream (a connection error), not once it has
 * forgotten the stream (rampart keeps no closed streams): this remembers the client's
 * ends over the same window as headers_sid_ok (h2spec 5.1/8, 9, 11, 12). Returns 1
 * for such a frame. A stream the server reset is not ended by that: frames the client
 * had in flight then are ignored, as RFC 9113 5.1 wants.
 */
static int client_ended(h2_t *h2, const uint8_t *hd, uint32_t sid)
{
    uint8_t type = hd[3];
    int data = type == NGHTTP2_DATA || type == NGHTTP2_HEADERS;
    if (!(sid & 1) || sid > h2->max_client_sid || h2->max_client_sid - sid >= SID_WINDOW ||
        !(data || type == NGHTTP2_RST_STREAM))
        return 0;
    if (data && sid_get(h2->ended, sid))
        return 1;
    if (type == NGHTTP2_RST_STREAM || (hd[4] & NGHTTP2_FLAG_END_STREAM))
        sid_put(h2->ended, sid, 1);
    return 0;
}

/*
 * A RST_STREAM on an idle client stream: RFC 9113 5.1 and 6.4 make it a connection
 * error PROTOCOL_ERROR (nghttp2 answers it so), but grpc-core sends one when a call
 * is cancelled after its stream id was allocated and before its HEADERS were
 * written, and ending every other call of the connection for it helps no one. What
 * it sends was recorded between python3-grpcio (grpc-core 1.51) and rampart during
 * cancellation storms (t/integration/h2relay.py, test_h2_conformance.py): RST_STREAM
 * with CANCEL, on the next ids after the highest stream it had opened (top + 2,
 * top + 4), HEADERS on that connection before it, and never HEADERS for that id
 * after. Only that is ignored here (1): CANCEL, an odd id above every stream opened,
 * after at least one HEADERS, and no further ahead than the ids a client could have
 * allocated within SETTINGS_MAX_CONCURRENT_STREAMS (counted from the highest id
 * opened or so reset). Anything else on an idle stream goes to nghttp2 and ends the
 * connection (h2spec 5.1/3 resets stream 1 before any HEADERS).
 */
static int grpc_cancel(h2_t *h2, uint32_t sid, const uint8_t *payload)
{
    uint32_t code = (uint32_t)payload[0] << 24 | (uint32_t)payload[1] << 16 |
                    (uint32_t)payload[2] << 8 | payload[3];
    uint64_t base =
        h2->max_client_sid > h2->idle_reset_sid ? h2->max_client_sid : h2->idle_reset_sid;
    if (code != NGHTTP2_CANCEL || !(sid & 1) || h2->max_client_sid == 0 ||
        sid <= h2->max_client_sid || sid > base + 2 * (uint64_t)h2->conf->max_concurrent_streams)
        return 0;
    if (sid > h2->idle_reset_sid)
        h2->idle_reset_sid = sid;
    return 1;
}

/*
 * Runs the accounting over received bytes and passes them to nghttp2, holding back
 * a frame header split across reads, and leaving out the client's SETTINGS
 * acknowledgements. Why the latter: nghttp2 1.52 answers a client that opens
 * more streams than an acknowledged SETTINGS_MAX_CONCURRENT_STREAMS with a
 * connection error, where RFC 9113 5.1.2 wants the stream refused; with the
 * limit never acknowledged as far as nghttp2 knows, it refuses the stream
 * (REFUSED_STREAM) and the connection goes on. Nothing else in our SETTINGS needs
 * the acknowledgement: the initial window stays at the protocol's default, and
 * streams get a larger one by WINDOW_UPDATE.
 * buf has RP_H2_HOLD bytes of room before p. Returns -1 when the connection must end.
 */
#define RP_H2_HOLD 13

static int receive(h2_t *h2, uint8_t *p, size_t n, ssize_t *rv)
{
    *rv = 0;
    if (h2->preface_left) {
        size_t k = n < h2->preface_left ? n : h2->preface_left;
        h2->preface_left -= (unsigned)k;
        if (k) {
            *rv = nghttp2_session_mem_recv(h2->s, p, k);
            if (*rv < 0)
                return -1;
        }
        p += k;
        n -= k;
    }
    if (h2->scan_len) {
        p -= h2->scan_len; /* the held-back start of a frame header goes first */
        memcpy(p, h2->scan_hd, h2->scan_len);
        n += h2->scan_len;
        h2->scan_len = 0;
    }
    size_t pos = 0;
    while (pos < n) {
        if (h2->scan_skip) {
            size_t k = n - pos < h2->scan_skip ? n - pos : h2->scan_skip;
            h2->scan_skip -= (uint32_t)k;
            pos += k;
            continue;
        }
        const uint8_t *hd = p + pos;
        uint32_t length = n - pos >= 3 ? (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2] : 0;
        int rst = n - pos >= 4 && hd[3] == NGHTTP2_RST_STREAM && length == 4;
        if (n - pos < 9 || (rst && n - pos < 13)) {
            /* hold the start back: a whole header (and a whole RST_STREAM) is judged at once */
            h2->scan_len = (unsigned)(n - pos);
            memcpy(h2->scan_hd, p + pos, h2->scan_len);
            n = pos;
            break;
        }
        uint32_t sid = (uint32_t)(hd[5] & 0x7f) << 24 | (uint32_t)hd[6] << 16 |
                       (uint32_t)hd[7] << 8 | hd[8];
        if (account(h2, hd) != 0)
            return -1;
        if (hd[3] == NGHTTP2_HEADERS && (sid & 1) && !headers_sid_ok(h2, sid)) {
            refuse(h2, NGHTTP2_PROTOCOL_ERROR,
                   "client sent HEADERS on a stream lower than one it opened");
            return -1;
        }
        if (client_ended(h2, hd, sid)) {
            refuse(h2, NGHTTP2_STREAM_CLOSED, "client sent a frame on a stream it had ended");
            return -1;
        }
        size_t drop = 0;
        if (hd[3] == NGHTTP2_SETTINGS && (hd[4] & NGHTTP2_FLAG_ACK) && length == 0)
            drop = 9;
        else if (rst && grpc_cancel(h2, sid, hd + 9))
            drop = 13; /* ignored (it still counted against the reset budget) */
        if (drop) {
            memmove(p + pos, p + pos + drop, n - pos - drop);
            n -= drop;
            continue;
        }
        h2->scan_skip = length;
        pos += 9;
    }
    if (n)
        *rv = nghttp2_session_mem_recv(h2->s, p, n);
    return *rv < 0 || h2->fatal ? -1 : 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    rp_conn_t *c = user;
    h2_t *h2 = H2(c);
    h2->block_size = 0;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    if (h2->goaway || h2->closing || h2->requests >= (unsigned)h2->conf->max_requests) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    h2->requests++;
    stream_t *st = stream_new(c, frame->hd.stream_id);
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
    if (h2->conf->body_preread_size > NGHTTP2_INITIAL_WINDOW_SIZE)
        nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                              (int32_t)h2->conf->body_preread_size);
    if (h2->requests == (unsigned)h2->conf->max_requests) {
        /* the last one: the client learns now and opens a new connection for more */
        nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR, NULL, 0);
        h2->goaway = 1;
    }
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    rp_conn_t *c = user;
    h2_t *h2 = H2(c);
    /* counted per block, whether or not the stream was accepted */
    h2->block_size += namelen + valuelen + 32;
    if (h2->block_size > h2->conf->max_header_list_size) {
        /* nginx's answer to an oversized header list; it also stops HPACK bombs */
        trip(h2, "client exceeded http2_max_header_list_size");
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    stream_t *st = get_stream(h2, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST || st->malformed)
        return 0; /* trailers of a request are not forwarded */
    if (rp_h2_req_field(&st->q, st->arena, name, namelen, value, valuelen) != 0)
        st->malformed = 1;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    rp_conn_t *c = user;
    h2_t *h2 = H2(c);
    h2->got_frame = 1;
    stream_t *st;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = get_stream(h2, frame->hd.stream_id);
        if (st == NULL)
            return 0;
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            st->in_eof = 1;
        st->head_bytes += (int64_t)frame->hd.length;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST && !st->headers_done) {
            st->headers_done = 1;
            st->start = 1;
            ready_add(h2, st);
        } else if (st->in_eof && st->r && st->r->on_body) {
            st->notify_body = 1;
            ready_add(h2, st);
        }
        break;
    case NGHTTP2_DATA:
        st = get_stream(h2, frame->hd.stream_id);
        if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
            st->in_eof = 1;
            h2->body_progress = 1;
            if (st->r && st->r->on_body) {
                st->notify_body = 1;
                ready_add(h2, st);
            }
        }
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    rp_conn_t *c = user;
    h2_t *h2 = H2(c);
    stream_t *st = get_stream(h2, id);
    if (st == NULL || st->reset) {
        nghttp2_session_consume(s, id, len); /* nobody reads it: give the window back */
        return 0;
    }
    evbuffer_add(st->in, data, len);
    st->received += (int64_t)len;
    if (st->r)
        st->r->request_length += (int64_t)len;
    h2->body_progress = 1;
    if (st->r && st->r->on_body) {
        st->notify_body = 1;
        ready_add(h2, st);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    rp_conn_t *c = user;
    stream_t *st = get_stream(H2(c), id);
    if (st)
        stream_close(c, st);
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    rp_conn_t *c = user;
    h2_t *h2 = H2(c);
    switch (frame->hd.type) {
    case NGHTTP2_RST_STREAM:
        /* resets we were made to send count like the client's own (CVE-2025-8671) */
        if (frame->rst_stream.error_code != NGHTTP2_NO_ERROR)
            spend(h2, &h2->reset_tokens, "too many stream resets");
        break;
    case NGHTTP2_GOAWAY:
        h2->goaway = 1;
        break;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
        /* $bytes_sent: a stream's frames, their 9-byte headers included (nginx's count) */
        stream_t *st = get_stream(h2, frame->hd.stream_id);
        if (st && st->r)
            st->r->bytes_sent += (int64_t)frame->hd.length + 9;
    }
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
            !nghttp2_session_get_stream_remote_close(s, frame->hd.stream_id)) {
            /* answered before the request body ended: tell the client to stop sending
             * (RFC 9113 8.1) */
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_NO_ERROR);
        }
        break;
    }
    return 0;
}

/* At the body's end: trailer fields, when the handler gave some, end the stream instead. */
static void end_with_trailers(nghttp2_session *s, stream_t *st, uint32_t *flags)
{
    if (st->trailers == NULL)
        return;
    *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (nghttp2_submit_trailer(s, st->id, st->trailers, st->ntrailers) != 0)
        *flags &= ~(uint32_t)NGHTTP2_DATA_FLAG_NO_END_STREAM;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    rp_conn_t *c = user;
    h2_t *h2 = H2(c);
    stream_t *st = get_stream(h2, id);
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t avail = evbuffer_get_length(st->out);
    if (avail == 0) {
        if (st->out_eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            end_with_trailers(s, st, flags);
            return 0;
        }
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    int n = evbuffer_remove(st->out, buf, length < avail ? length : avail);
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    h2->progress = 1;
    avail -= (size_t)n;
    if (avail == 0 && st->out_eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        end_with_trailers(s, st, flags);
    }
    if (avail <= STREAM_OUT_LOW && st->r && st->r->on_drain) {
        st->notify_drain = 1;
        ready_add(h2, st);
    }
    return n;
}

static void init_library(void)
{
    if (callbacks)
        return;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, on_frame_send);
    nghttp2_option_new(&options);
    nghttp2_option_set_no_auto_window_update(options, 1);
    /* closed streams are kept only for the priority tree RFC 9113 retired: an idle
     * session need not hold its last streams */
    nghttp2_option_set_no_closed_streams(options, 1);
    /* our budgets trip first and answer ENHANCE_YOUR_CALM; nghttp2's stay as a backstop */
    nghttp2_option_set_stream_reset_rate_limit(options, RESET_BURST * 4, RESET_RATE * 4);
    nghttp2_option_set_max_continuations(options, MAX_CONTINUATIONS * 4);
}

/* ---- requests ---- */

static void start_stream(rp_conn_t *c, stream_t *st)
{
    h2_t *h2 = H2(c);
    rp_request_t *r = rp_http_request_new(c, st->arena, &h2_http);
    r->pdata = st;
    r->version = 20;
    r->request_length = st->head_bytes + st->received;
    st->r = r;
    c->requests++;

    rp_http_core_srv_conf_t *dsrv = c->ls->http->default_server;
    int rc = -1;
    if (!st->malformed)
        rc = rp_h2_req_finish(&st->q, r, st->in_eof && st->received == 0, dsrv->merge_slashes);
    if (rc < 0) {
        rp_log_error(RP_LOG_INFO, 0, "client sent a malformed HTTP/2 request (%s), stream %d",
                     st->q.why ? st->q.why : "invalid header field", st->id);
        st->reset = 1;
        st->r = NULL; /* never routed: nothing to log */
        nghttp2_submit_rst_stream(h2->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
        return;
    }
    /* $scheme is the connection's, as for HTTP/1 and in nginx: :scheme is the client's
     * word, and X-Forwarded-Proto must not repeat a claim of "https" over cleartext */
    r->scheme = c->ssl ? RP_STR("https") : RP_STR("http");
    rp_http_process_request(r, rc, rc ? st->q.why : NULL);
}

/* Starts streams and wakes handlers whose stream got body bytes or room to write. */
static void dispatch(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    stream_t *st;
    while ((st = h2->ready) != NULL) {
        ready_remove(h2, st);
        if (st->start) {
            st->start = 0;
            start_stream(c, st);
            continue;
        }
        rp_request_t *r = st->r;
        if (r == NULL)
            continue;
        const rp_log_t *saved = rp_log_enter(r); /* the stream's error_log */
        if (st->notify_body) {
            st->notify_body = 0;
            if (r->on_body) {
                void (*fn)(rp_request_t *) = r->on_body;
                r->on_body = NULL;
                fn(r);
            }
        }
        if (st->notify_drain && st->r == r) {
            st->notify_drain = 0;
            if (r->on_drain && evbuffer_get_length(st->out) <= STREAM_OUT_LOW)
                rp_http_drained(r);
        }
        rp_log_leave(saved);
    }
}

/* ---- the connection ---- */

static void set_mode(rp_conn_t *c, int mode, int64_t ms, int restart)
{
    h2_t *h2 = H2(c);
    if (h2->timer_mode != mode || restart) {
        h2->timer_mode = mode;
        if (ms > 0)
            rp_conn_set_timer(c, ms);
        else
            event_del(&c->timer);
    }
}

static void rearm(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    if (h2->closing || !h2->got_frame)
        return;
    rp_http_core_loc_conf_t *clcf = default_loc(c);
    int sending = evbuffer_get_length(H2(c)->out) > 0, body_wait = 0;
    for (stream_t *st = h2->streams; st && !sending; st = st->next) {
        if (evbuffer_get_length(st->out) > 0)
            sending = 1;
        else if (st->r && st->r->on_body)
            body_wait = 1;
    }
    if (sending)
        set_mode(c, T_SEND, clcf->send_timeout, h2->progress);
    else if (h2->nstreams == 0)
        set_mode(c, T_IDLE, clcf->keepalive_timeout > 0 ? clcf->keepalive_timeout : 1, 0);
    else if (body_wait)
        set_mode(c, T_BODY, clcf->client_body_timeout, h2->body_progress);
    else
        set_mode(c, T_NONE, 0, 0);
    h2->progress = 0;
    h2->body_progress = 0;
}

/* A defence tripped or the peer broke the protocol: GOAWAY, then close once it is out. */
static void fail(rp_conn_t *c, int lib_error)
{
    h2_t *h2 = H2(c);
    if (h2->closing) {
        rp_conn_free(c);
        return;
    }
    uint32_t code = h2->fatal;
    if (code == 0 && lib_error == NGHTTP2_ERR_FLOODED)
        rp_metrics_h2_flood(NULL);
    if (code == 0)
        code = lib_error == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
    if (h2->fatal)
        rp_log_error(RP_LOG_INFO, 0, "http2 connection closed: %s, client: fd %d",
                     h2->fatal_why ? h2->fatal_why : "", c->fd);
    else
        rp_log_error(RP_LOG_INFO, 0, "http2 connection closed: %s, client: fd %d",
                     nghttp2_strerror(lib_error), c->fd);
    h2->fatal = code;
    h2->closing = 1;
    /* the streams end now: a flood must not keep upstream work alive */
    while (h2->streams)
        stream_close(c, h2->streams);
    if (lib_error == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        rp_conn_free(c);
        return;
    }
    nghttp2_session_terminate_session(h2->s, code);
    event_del(&c->rev);
    h2->timer_mode = T_CLOSING;
    rp_conn_set_timer(c, 3000);
    schedule(c);
}

/* Moves frames from nghttp2 to the socket. Returns -1 when the connection is gone. */
static int flush(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    for (;;) {
        while (evbuffer_get_length(H2(c)->out) < OUT_HIGH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(h2->s, &data);
            if (n < 0) {
                if (h2->closing) {
                    rp_conn_free(c);
                    return -1;
                }
                fail(c, (int)n);
                return 0;
            }
            if (n == 0)
                break;
            evbuffer_add(H2(c)->out, data, (size_t)n);
        }
        if (evbuffer_get_length(H2(c)->out) == 0)
            break;
        int k = rp_conn_write_buffer(c, H2(c)->out, -1);
        if (k < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                event_add(&H2(c)->wev, NULL);
                return 0;
            }
            rp_conn_free(c);
            return -1;
        }
    }
    event_del(&H2(c)->wev);
    if (h2->read_paused && !h2->closing) {
        h2->read_paused = 0;
        event_add(&c->rev, NULL);
        event_active(&c->rev, EV_READ, 1);
    }
    return 0;
}

/* After any event: start and wake streams, send, and close when the session is over. */
static void run(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    for (int round = 0; round < 8; round++) {
        if (!h2->closing)
            dispatch(c);
        if (h2->fatal && !h2->closing) {
            fail(c, 0);
        }
        if (flush(c) != 0)
            return;
        if (h2->fatal && !h2->closing) {
            fail(c, 0);
            continue;
        }
        if (h2->ready == NULL)
            break;
    }
    if (h2->ready)
        schedule(c); /* more to do: after other connections had their turn */
    if (evbuffer_get_length(H2(c)->out) == 0 && !nghttp2_session_want_write(h2->s) &&
        (!nghttp2_session_want_read(h2->s) || h2->closing ||
         (h2->goaway && h2->nstreams == 0))) {
        h2_release(c);
        rp_conn_linger(c);
        return;
    }
    rearm(c);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    rp_conn_t *c = arg;
    if (c->proto == &h2_proto)
        run(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    run(arg);
}

void rp_h2_start(rp_conn_t *c, const char *data, size_t len)
{
    init_library();
    h2_t *h2 = rp_xcalloc(1, sizeof(*h2));
    h2->c = c;
    h2->out = evbuffer_new();
    rp_conn_set_proto(c, &h2_proto, h2);
    event_assign(&h2->wev, rp_event_base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    rp_http_core_srv_conf_t *dsrv = c->ls->http->default_server;
    h2->conf = dsrv->ctx->srv_conf[rp_http2_module.index];
    h2->reset_tokens = RESET_BURST;
    h2->idle_tokens = IDLE_FRAME_BURST;
    h2->refilled = rp_time_ms();
    event_assign(&h2->flush_ev, rp_event_base, -1, 0, on_flush, c);
    if (nghttp2_session_server_new2(&h2->s, callbacks, c, options) != 0) {
        rp_conn_free(c);
        return;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)h2->conf->max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)h2->conf->max_header_list_size},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)h2->conf->body_preread_size},
    };
    /* a smaller window is announced (nghttp2 keeps the default as its bound, see
     * receive()); a larger one is given to each stream as it opens */
    size_t niv = h2->conf->body_preread_size < NGHTTP2_INITIAL_WINDOW_SIZE ? 3 : 2;
    nghttp2_submit_settings(h2->s, NGHTTP2_FLAG_NONE, iv, niv);
    size_t window = CONN_WINDOW + h2->conf->body_preread_size;
    nghttp2_session_set_local_window_size(h2->s, NGHTTP2_FLAG_NONE, 0, (int32_t)window);
    h2->timer_mode = T_PREFACE;
    rp_conn_set_timer(c, dsrv->client_header_timeout);
    h2->preface_left = RP_H2_PREFACE_LEN;
    while (len) {
        /* bytes that came before we knew it was HTTP/2: the same path as a read */
        uint8_t buf[RP_H2_HOLD + READ_CHUNK];
        size_t k = len < READ_CHUNK ? len : READ_CHUNK;
        memcpy(buf + RP_H2_HOLD, data, k);
        data += k;
        len -= k;
        ssize_t rv;
        if (receive(h2, buf + RP_H2_HOLD, k, &rv) != 0) {
            fail(c, (int)rv);
            return;
        }
    }
    run(c);
}

static void h2_read(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    uint8_t buf[RP_H2_HOLD + READ_CHUNK];
    for (int i = 0; i < 8; i++) {
        ssize_t n = rp_conn_read(c, buf + RP_H2_HOLD, READ_CHUNK);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (n <= 0) {
            rp_conn_free(c);
            return;
        }
        ssize_t rv;
        if (receive(h2, buf + RP_H2_HOLD, (size_t)n, &rv) != 0) {
            fail(c, (int)rv);
            return;
        }
        if (evbuffer_get_length(H2(c)->out) > 4 * OUT_HIGH) {
            /* the peer is not reading what we send: stop reading what it sends */
            h2->read_paused = 1;
            event_del(&c->rev);
            break;
        }
        if (h2->ready)
            break; /* start what arrived before reading more */
    }
    if (c->ssl && !h2->read_paused && SSL_pending(c->ssl))
        event_active(&c->rev, EV_READ, 1);
    run(c);
}

static void h2_timeout(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    switch (h2->timer_mode) {
    case T_PREFACE:
    case T_CLOSING:
        rp_conn_free(c);
        return;
    case T_IDLE:
        h2->closing = 1; /* keepalive_timeout: a polite goodbye */
        nghttp2_submit_goaway(h2->s, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h2->s), NGHTTP2_NO_ERROR,
                              NULL, 0);
        h2->timer_mode = T_CLOSING;
        rp_conn_set_timer(c, 3000);
        run(c);
        return;
    case T_SEND:
        trip(h2, "client timed out (send_timeout)");
        fail(c, 0);
        return;
    case T_BODY:
        for (stream_t *st = h2->streams; st; st = st->next) {
            rp_request_t *r = st->r;
            if (r == NULL || r->on_body == NULL)
                continue;
            rp_log_error(RP_LOG_INFO, 0, "client timed out (client_body_timeout), stream %d",
                         st->id);
            r->on_body = NULL;
            if (r->response_started) {
                h2_abort(r);
                continue;
            }
            rp_http_run_cleanups(r);
            rp_http_send_error(r, 408);
        }
        h2->timer_mode = T_NONE;
        run(c);
        return;
    }
}

static void h2_drain(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    if (h2->goaway || h2->closing)
        return;
    nghttp2_submit_goaway(h2->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h2->s),
                          NGHTTP2_NO_ERROR, NULL, 0);
    h2->goaway = 1;
    schedule(c);
}

/* Ends every stream's request and frees the session (the connection closes, or lingers). */
static void h2_release(rp_conn_t *c)
{
    h2_t *h2 = H2(c);
    if (h2 == NULL)
        return;
    event_del(&h2->flush_ev);
    event_del(&h2->wev);
    while (h2->streams)
        stream_close(c, h2->streams);
    nghttp2_session_del(h2->s);
    h2->s = NULL;
    evbuffer_free(h2->out);
    free(h2);
    c->data = NULL;
}

static const rp_conn_proto_t h2_proto = {
    .name = "h2",
    .read = h2_read,
    .timeout = h2_timeout,
    .drain = h2_drain,
    .release = h2_release,
};

/* ---- the request API ---- */

/* Connection-specific fields (RFC 9113 8.2.2) never go out over HTTP/2. */
static int connection_specific(rp_str_t n)
{
    return rp_str_ieq(n, "connection") || rp_str_ieq(n, "keep-alive") ||
           rp_str_ieq(n, "proxy-connection") || rp_str_ieq(n, "transfer-encoding") ||
           rp_str_ieq(n, "upgrade") || rp_str_ieq(n, "content-length") ||
           rp_str_ieq(n, "server") || rp_str_ieq(n, "date");
}

static nghttp2_nv nv(rp_str_t name, rp_str_t value)
{
    return (nghttp2_nv){(uint8_t *)name.data, (uint8_t *)value.data, name.len, value.len,
                        NGHTTP2_NV_FLAG_NONE};
}

static rp_str_t lower(rp_arena_t *a, rp_str_t n)
{
    size_t i = 0;
    while (i < n.len && !(n.data[i] >= 'A' && n.data[i] <= 'Z'))
        i++;
    if (i == n.len)
        return n;
    char *d = rp_arena_alloc(a, n.len);
    for (i = 0; i < n.len; i++) {
        char ch = n.data[i];
        d[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    return (rp_str_t){d, n.len};
}

static int h2_send_head(rp_request_t *r)
{
    stream_t *st = r->pdata;
    rp_conn_t *c = st->c;
    int64_t content_length = r->out_length;
    if (st->reset || st->head_sent)
        return 0; /* writes will fail and the handler will learn it then */
    int body = rp_http_status_has_body(r->status);
    unsigned max = r->nout_headers + 4;
    nghttp2_nv *nva = rp_arena_alloc(r->arena, sizeof(*nva) * max);
    unsigned n = 0;
    char *status = rp_arena_alloc(r->arena, 4);
    int code = r->status < 100 || r->status > 999 ? 500 : r->status;
    status[0] = (char)('0' + code / 100);
    status[1] = (char)('0' + code / 10 % 10);
    status[2] = (char)('0' + code % 10);
    nva[n++] = nv(RP_STR(":status"), (rp_str_t){status, 3});
    nva[n++] = nv(RP_STR("server"), r->clcf == NULL || r->clcf->server_tokens
                                         ? RP_STR("rampart/" PACKAGE_VERSION)
                                         : RP_STR("rampart"));
    nva[n++] = nv(RP_STR("date"), (rp_str_t){rp_http_date(), 29});
    for (unsigned i = 0; i < r->nout_headers; i++) {
        const rp_header_t *h = &r->out_headers[i];
        if (h->name.len == 0 || connection_specific(h->name))
            continue;
        nva[n++] = nv(lower(r->arena, h->name), h->value);
    }
    if (content_length >= 0 && (body || r->head)) {
        char *cl = rp_arena_alloc(r->arena, 24);
        int k = snprintf(cl, 24, "%lld", (long long)content_length);
        nva[n++] = nv(RP_STR("content-length"), (rp_str_t){cl, (size_t)k});
    }
    nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = read_body};
    int rv = nghttp2_submit_response(H2(c)->s, st->id, nva, n,
                                     body && !r->head && !r->no_body ? &prd : NULL);
    if (rv != 0) {
        st->reset = 1;
        return 0;
    }
    st->head_sent = 1;
    schedule(c);
    return 0;
}

static int h2_trailers(rp_request_t *r, const rp_header_t *h, unsigned n)
{
    stream_t *st = ((stream_t *)r->pdata);
    /* without a data provider the stream ended with its head: nowhere to put them */
    if (st->reset || !st->head_sent || r->no_body || st->out_eof || r->head ||
        !rp_http_status_has_body(r->status) || n == 0)
        return -1;
    nghttp2_nv *nva = rp_arena_alloc(r->arena, sizeof(*nva) * n);
    size_t k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (h[i].name.len == 0 || connection_specific(h[i].name))
            continue;
        nva[k++] = nv(lower(r->arena, h[i].name), h[i].value);
    }
    st->trailers = nva;
    st->ntrailers = k;
    return 0;
}

static int h2_head_sent(const rp_request_t *r)
{
    return ((stream_t *)r->pdata)->head_sent;
}

static int h2_write(rp_request_t *r, const struct iovec *iov, int iovcnt)
{
    stream_t *st = ((stream_t *)r->pdata);
    if (st->reset)
        return -1;
    for (int i = 0; i < iovcnt; i++)
        evbuffer_add(st->out, iov[i].iov_base, iov[i].iov_len);
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(H2(st->c)->s, st->id);
    }
    schedule(st->c);
    return 0;
}

static void h2_end(rp_request_t *r)
{
    stream_t *st = ((stream_t *)r->pdata);
    r->on_body = NULL;
    r->on_drain = NULL;
    st->out_eof = 1;
    if (st->deferred) {
        st->deferred = 0;
        nghttp2_session_resume_data(H2(st->c)->s, st->id);
    }
    schedule(st->c);
}

static void h2_abort(rp_request_t *r)
{
    stream_t *st = ((stream_t *)r->pdata);
    r->on_body = NULL;
    r->on_drain = NULL;
    if (st->reset)
        return;
    st->reset = 1;
    nghttp2_submit_rst_stream(H2(st->c)->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    schedule(st->c);
}

static size_t h2_pending(const rp_request_t *r)
{
    stream_t *st = ((stream_t *)r->pdata);
    size_t n = evbuffer_get_length(st->out);
    return st->reset || n < STREAM_OUT_HIGH ? 0 : n;
}

static int h2_read_body(rp_request_t *r, char *buf, size_t cap, size_t *n)
{
    stream_t *st = ((stream_t *)r->pdata);
    h2_t *h2 = H2(st->c);
    int64_t max = (int64_t)r->clcf->client_max_body_size;
    *n = 0;
    if (st->reset) {
        r->body_status = 0;
        return -1;
    }
    if (max && (r->content_length > max || st->received > max)) {
        r->body_status = 413;
        return -1;
    }
    size_t avail = evbuffer_get_length(st->in);
    if (avail) {
        int k = evbuffer_remove(st->in, buf, cap < avail ? cap : avail);
        if (k > 0) {
            *n = (size_t)k;
            nghttp2_session_consume(h2->s, st->id, (size_t)k);
            schedule(st->c); /* the WINDOW_UPDATE */
        }
    }
    if (st->in_eof && evbuffer_get_length(st->in) == 0) {
        if (r->content_length >= 0 && st->received != r->content_length) {
            r->body_status = 400; /* nghttp2 resets such streams; this is the backstop */
            return -1;
        }
        return 1;
    }
    return 0;
}

static int h2_send_body(rp_request_t *r, const struct iovec *iov, int iovcnt, unsigned flags)
{
    int rc = 0;
    if (iovcnt)
        rc = h2_write(r, iov, iovcnt);
    if (flags & RP_BODY_LAST)
        h2_end(r);
    return rc;
}

static int h2_flush_head(rp_request_t *r)
{
    return 0; /* the head went to nghttp2 at once */
}

static const rp_http_proto_t h2_http = {
    .name = "HTTP/2.0",
    .send_head = h2_send_head,
    .send_body = h2_send_body,
    .flush_head = h2_flush_head,
    .head_sent = h2_head_sent,
    .abort = h2_abort,
    .pending = h2_pending,
    .read_body = h2_read_body,
    .close_now = h2_abort,
    .trailers = h2_trailers,
};
