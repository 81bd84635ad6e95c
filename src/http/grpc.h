/*
 * What the HTTP layer knows of gRPC (over HTTP/2): which requests are gRPC
 * calls, how rampart answers one with an error (a gRPC status, never a page),
 * and the grpc-timeout header's format. The proxying itself is grpc_pass
 * (src/upstream/grpc_module.c, proxy_h2.c).
 */
#ifndef RP_GRPC_H
#define RP_GRPC_H

#include "http/request.h"

#include <stdint.h>

/* gRPC status codes rampart produces itself. */
enum {
    RP_GRPC_OK = 0,
    RP_GRPC_CANCELLED = 1,
    RP_GRPC_UNKNOWN = 2,
    RP_GRPC_DEADLINE_EXCEEDED = 4,
    RP_GRPC_PERMISSION_DENIED = 7,
    RP_GRPC_RESOURCE_EXHAUSTED = 8,
    RP_GRPC_UNIMPLEMENTED = 12,
    RP_GRPC_INTERNAL = 13,
    RP_GRPC_UNAVAILABLE = 14,
    RP_GRPC_UNAUTHENTICATED = 16,
};

/* Whether r is a gRPC call: it came to a grpc_pass location, or its Content-Type is
 * application/grpc (or a subtype: application/grpc+proto, application/grpc-web). */
int rp_grpc_is_request(const rp_request_t *r);

/*
 * Ends r with a gRPC status: a "trailers-only" response (:status 200, content-type
 * application/grpc, grpc-status, grpc-message percent-encoded). Only before the response
 * began. Returns RP_DONE.
 */
int rp_grpc_send_error(rp_request_t *r, int code, const char *message);

/* The gRPC status for an HTTP error status rampart would have answered with. */
int rp_grpc_status_of_http(int status);

/* The fields grpc-status and grpc-message for code and message, made in r's arena, into
 * out[2]. */
void rp_grpc_status_fields(rp_request_t *r, int code, const char *message, rp_header_t out[2]);

/* A grpc-timeout value ("100m", "5S": 1 to 8 digits and a unit of H M S m u n) in
 * milliseconds, rounded up; -1 when malformed. */
int64_t rp_grpc_timeout_parse(rp_str_t v);

/* Writes ms as a grpc-timeout value into buf (at least 16 bytes), rounded up to the unit
 * it needs (never a shorter deadline); returns its length. */
size_t rp_grpc_timeout_format(int64_t ms, char *buf);

#endif
