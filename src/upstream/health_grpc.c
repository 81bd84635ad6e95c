/*
 * The gRPC health checking protocol (grpc.health.v1.Health/Check) as a client, for
 * `health_check type=grpc`: one HTTP/2 session per probe that sends
 *
 *   POST /grpc.health.v1.Health/Check  content-type: application/grpc  te: trailers
 *   HealthCheckRequest { string service = 1; }        (length-prefixed, uncompressed)
 *
 * and passes when the call ends with grpc-status 0 and a HealthCheckResponse whose
 * status (field 1) is SERVING (1). There is no generated code: the two messages are
 * one field each, so their bytes are written and read here.
 *
 * The session works on memory (nghttp2_session_mem_send / mem_recv): the prober moves
 * the bytes over a plain or TLS socket, and nothing here touches one.
 */
#include "upstream/health.h"
#include "core/arena.h"

#include <event2/buffer.h>
#include <nghttp2/nghttp2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESSAGE 4096 /* a HealthCheckResponse is a few bytes; more is not read */
#define MAX_SERVICE 1024

struct rp_health_grpc_s {
    nghttp2_session *s;
    int32_t stream;
    int http_status; /* :status; 0 until it came */
    int grpc_status; /* grpc-status, -1 until it came */
    char grpc_message[128];
    uint8_t msg[MAX_MESSAGE];
    size_t msg_len;
    unsigned closed : 1; /* the stream ended */
    uint32_t reset_code; /* its RST_STREAM code, NGHTTP2_NO_ERROR when it ended well */
    uint8_t *req;        /* the request body: 5-byte prefix and message */
    size_t req_len, req_off;
};

static nghttp2_session_callbacks *callbacks;

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    rp_health_grpc_t *g = user;
    if (frame->hd.stream_id != g->stream)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int v = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++)
            v = v * 10 + (value[i] >= '0' && value[i] <= '9' ? value[i] - '0' : 0);
        g->http_status = v;
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int v = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++) {
            if (value[i] < '0' || value[i] > '9') {
                v = 2; /* UNKNOWN: not a number */
                break;
            }
            v = v * 10 + (value[i] - '0');
        }
        g->grpc_status = valuelen ? v : 2;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        size_t n = valuelen < sizeof(g->grpc_message) - 1 ? valuelen : sizeof(g->grpc_message) - 1;
        for (size_t i = 0; i < n; i++)
            g->grpc_message[i] = value[i] >= 0x20 && value[i] < 0x7f ? (char)value[i] : '?';
        g->grpc_message[n] = '\0';
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    rp_health_grpc_t *g = user;
    if (id != g->stream)
        return 0;
    size_t room = sizeof(g->msg) - g->msg_len;
    size_t n = len < room ? len : room;
    memcpy(g->msg + g->msg_len, data, n);
    g->msg_len += n;
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
    rp_health_grpc_t *g = user;
    if (id == g->stream) {
        g->closed = 1;
        g->reset_code = code;
    }
    return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    rp_health_grpc_t *g = user;
    size_t left = g->req_len - g->req_off;
    size_t n = left < length ? left : length;
    memcpy(buf, g->req + g->req_off, n);
    g->req_off += n;
    if (g->req_off == g->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void init_callbacks(void)
{
    if (callbacks)
        return;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME     \
    }

rp_health_grpc_t *rp_health_grpc_new(const char *authority, const char *service, int tls)
{
    init_callbacks();
    rp_health_grpc_t *g = rp_xcalloc(1, sizeof(*g));
    g->grpc_status = -1;
    /* HealthCheckRequest: field 1 (service), length-delimited; empty: no field at all */
    size_t slen = strlen(service);
    if (slen > MAX_SERVICE)
        slen = MAX_SERVICE;
    size_t mlen = slen ? 1 + (slen < 128 ? 1 : 2) + slen : 0;
    g->req = rp_xmalloc(5 + mlen);
    g->req[0] = 0; /* not compressed */
    g->req[1] = (uint8_t)(mlen >> 24);
    g->req[2] = (uint8_t)(mlen >> 16);
    g->req[3] = (uint8_t)(mlen >> 8);
    g->req[4] = (uint8_t)mlen;
    size_t k = 5;
    if (slen) {
        g->req[k++] = 0x0a; /* field 1, wire type 2 */
        if (slen < 128) {
            g->req[k++] = (uint8_t)slen;
        } else {
            g->req[k++] = (uint8_t)(0x80 | (slen & 0x7f));
            g->req[k++] = (uint8_t)(slen >> 7);
        }
        memcpy(g->req + k, service, slen);
        k += slen;
    }
    g->req_len = k;

    if (nghttp2_session_client_new(&g->s, callbacks, g) != 0) {
        free(g->req);
        free(g);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(g->s, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_nv nva[] = {
        NV(":method", "POST"),
        NV(":scheme", tls ? "https" : "http"),
        NV(":path", "/grpc.health.v1.Health/Check"),
        NV(":authority", authority),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "rampart-health-check"),
    };
    nghttp2_data_provider prd = {.source = {.ptr = NULL}, .read_callback = read_body};
    g->stream = nghttp2_submit_request(g->s, NULL, nva, sizeof(nva) / sizeof(nva[0]), &prd, NULL);
    if (g->stream < 0) {
        rp_health_grpc_free(g);
        return NULL;
    }
    return g;
}

void rp_health_grpc_free(rp_health_grpc_t *g)
{
    if (g == NULL)
        return;
    nghttp2_session_del(g->s);
    free(g->req);
    free(g);
}

int rp_health_grpc_output(rp_health_grpc_t *g, struct evbuffer *out)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(g->s, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (evbuffer_add(out, data, (size_t)n) != 0)
            return -1;
    }
}

int rp_health_grpc_input(rp_health_grpc_t *g, const uint8_t *data, size_t n, char *why,
                         size_t whylen)
{
    ssize_t k = nghttp2_session_mem_recv(g->s, data, n);
    if (k < 0) {
        snprintf(why, whylen, "HTTP/2 error: %s", nghttp2_strerror((int)k));
        return -1;
    }
    return g->closed;
}

/* A protobuf varint at msg[*i..len) into *v; -1 when it runs past the end or 64 bits. */
static int varint(const uint8_t *msg, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (*i == len || shift > 63)
            return -1;
        uint8_t b = msg[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return 0;
    }
}

int rp_health_grpc_serving(const uint8_t *msg, size_t len)
{
    int status = 0; /* proto3: an absent field is its zero value, UNKNOWN */
    size_t i = 0;
    while (i < len) {
        uint64_t key, v; /* a key: field number and wire type */
        if (varint(msg, len, &i, &key) != 0)
            return -1;
        switch (key & 7) {
        case 0: /* varint */
            if (varint(msg, len, &i, &v) != 0)
                return -1;
            if (key >> 3 == 1)
                status = v > 3 ? 0 : (int)v;
            break;
        case 1: /* 64-bit */
            if (len - i < 8)
                return -1;
            i += 8;
            break;
        case 2: /* length-delimited: a field a later version added */
            if (varint(msg, len, &i, &v) != 0 || v > len - i)
                return -1;
            i += (size_t)v;
            break;
        case 5: /* 32-bit */
            if (len - i < 4)
                return -1;
            i += 4;
            break;
        default:
            return -1;
        }
    }
    return status;
}

int rp_health_grpc_verdict(rp_health_grpc_t *g, char *why, size_t whylen)
{
    static const char *const names[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
    if (!g->closed) {
        snprintf(why, whylen, "the connection closed before the call ended");
        return 0;
    }
    if (g->reset_code != NGHTTP2_NO_ERROR && g->grpc_status < 0) {
        snprintf(why, whylen, "the call was reset (%s)", nghttp2_http2_strerror(g->reset_code));
        return 0;
    }
    if (g->http_status != 200) {
        snprintf(why, whylen, "HTTP status %d", g->http_status);
        return 0;
    }
    if (g->grpc_status < 0) {
        snprintf(why, whylen, "no grpc-status in the answer");
        return 0;
    }
    if (g->grpc_status != 0) {
        snprintf(why, whylen, "grpc-status %d%s%s", g->grpc_status, g->grpc_message[0] ? ": " : "",
                 g->grpc_message);
        return 0;
    }
    if (g->msg_len < 5 || g->msg[0] != 0) {
        snprintf(why, whylen, "%s",
                 g->msg_len < 5 ? "no HealthCheckResponse in the answer"
                                : "a compressed HealthCheckResponse");
        return 0;
    }
    size_t mlen =
        (size_t)g->msg[1] << 24 | (size_t)g->msg[2] << 16 | (size_t)g->msg[3] << 8 | g->msg[4];
    if (mlen > g->msg_len - 5) {
        snprintf(why, whylen, "a truncated HealthCheckResponse");
        return 0;
    }
    int st = rp_health_grpc_serving(g->msg + 5, mlen);
    if (st != 1) {
        snprintf(why, whylen, "%s", st < 0 ? "a malformed HealthCheckResponse" : names[st]);
        return 0;
    }
    return 1;
}
