/*
 * HTTP/2 downstream (RFC 9113) on nghttp2: a connection that chose h2 by ALPN or
 * opened with the client preface becomes a session whose streams are ordinary
 * requests for the phases. h2_conn.c owns the session, the streams, flow control
 * and the flood defences; h2_request.c turns a stream's header fields into the
 * protocol-neutral request; h2_module.c holds the http2_* directives.
 */
#ifndef RP_H2_H
#define RP_H2_H

#include "http/request.h"
#include "net/conn.h"

#include <stdint.h>

typedef struct {
    int max_concurrent_streams;
    int max_requests;
    size_t max_header_list_size;
    size_t body_preread_size; /* a stream's receive window */
} rp_h2_srv_conf_t;

extern rp_module_t rp_http2_module;

/* The client preface (RFC 9113 3.4), which a cleartext http2 port watches for. */
#define RP_H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define RP_H2_PREFACE_LEN 24

/* Turns c into an HTTP/2 connection; data[0..len) are bytes already read from it (copied
 * before it returns). The connection may be closed when it returns. */
void rp_h2_start(rp_conn_t *c, const char *data, size_t len);

/* ---- a stream's header fields to a request (h2_request.c) ---- */

typedef struct {
    rp_str_t method, scheme, authority, path, host;
    rp_header_t *headers; /* regular fields, in the request arena */
    unsigned nheaders, cap;
    int cookie; /* index of the joined Cookie field, -1 before the first */
    int64_t content_length;
    unsigned regular_seen : 1;
    const char *why; /* what made it malformed or refused */
} rp_h2_req_t;

void rp_h2_req_init(rp_h2_req_t *q);

/* Adds one decoded field, copied into a. Returns 0, or -1 when the request is malformed
 * (RFC 9113 8.1.1: a stream error of type PROTOCOL_ERROR), with q->why. */
int rp_h2_req_field(rp_h2_req_t *q, rp_arena_t *a, const uint8_t *name, size_t nlen,
                    const uint8_t *value, size_t vlen);

/* After the last field: checks the pseudo-header fields and fills r's method, target,
 * path, args, host, scheme, headers and body framing. Returns 0, -1 when malformed, or an
 * HTTP status for a well-formed request that is refused (400, 405), with q->why. */
int rp_h2_req_finish(rp_h2_req_t *q, rp_request_t *r, int end_stream, int merge_slashes);

#endif
