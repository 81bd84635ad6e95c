/*
 * gRPC in the HTTP layer: recognizing a gRPC call, answering one with a gRPC
 * status instead of an error page, and the grpc-timeout format. A gRPC client
 * reads the outcome of a call from grpc-status, not from :status, and shows
 * nothing of an HTML body; so an error rampart makes for it (no upstream, a
 * timeout, a body too large, no route) must be a status it can act on.
 */
#include "http/grpc.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int rp_grpc_is_request(const rp_request_t *r)
{
    if (r->grpc)
        return 1;
    rp_str_t ct = rp_request_header(r, "content-type");
    return ct.len >= 16 && strncasecmp(ct.data, "application/grpc", 16) == 0;
}

int rp_grpc_status_of_http(int status)
{
    /* gRPC's own mapping (doc/http-grpc-status-mapping.md) where it has one; what
     * rampart itself failed at is INTERNAL */
    switch (status) {
    case 401:
        return RP_GRPC_UNAUTHENTICATED;
    case 403:
        return RP_GRPC_PERMISSION_DENIED;
    case 404:
        return RP_GRPC_UNIMPLEMENTED;
    case 413:
        return RP_GRPC_RESOURCE_EXHAUSTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return RP_GRPC_UNAVAILABLE;
    }
    return RP_GRPC_INTERNAL;
}

void rp_grpc_status_fields(rp_request_t *r, int code, const char *message, rp_header_t out[2])
{
    char *num = rp_arena_alloc(r->arena, 12);
    int k = snprintf(num, 12, "%d", code);
    /* grpc-message is percent-encoded: only printable ASCII other than '%' goes raw */
    size_t n = strlen(message), len = 0;
    char *msg = rp_arena_alloc(r->arena, n * 3 + 1);
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)message[i];
        if (ch < 0x20 || ch > 0x7e || ch == '%') {
            msg[len++] = '%';
            msg[len++] = hex[ch >> 4];
            msg[len++] = hex[ch & 15];
        } else {
            msg[len++] = (char)ch;
        }
    }
    out[0] = (rp_header_t){RP_STR("grpc-status"), {num, (size_t)k}};
    out[1] = (rp_header_t){RP_STR("grpc-message"), {msg, len}};
}

int rp_grpc_send_error(rp_request_t *r, int code, const char *message)
{
    r->status = 200;
    r->err_status = 0; /* a gRPC status always rides a 200, whatever error_page said */
    r->reason = RP_NULL_STR;
    r->response_started = 1;
    r->nout_headers = 0; /* a half-made response's fields would describe something else */
    rp_http_add_header(r, RP_STR("Content-Type"), RP_STR("application/grpc"));
    rp_header_t t[2];
    rp_grpc_status_fields(r, code, message, t);
    rp_http_response_trailers_only(r, t, 2);
    return RP_DONE;
}

int64_t rp_grpc_timeout_parse(rp_str_t v)
{
    if (v.len < 2 || v.len > 9)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i + 1 < v.len; i++) {
        if (v.data[i] < '0' || v.data[i] > '9')
            return -1;
        n = n * 10 + (v.data[i] - '0');
    }
    switch (v.data[v.len - 1]) {
    case 'H':
        return n * 3600000;
    case 'M':
        return n * 60000;
    case 'S':
        return n * 1000;
    case 'm':
        return n;
    case 'u':
        return (n + 999) / 1000;
    case 'n':
        return (n + 999999) / 1000000;
    }
    return -1;
}

size_t rp_grpc_timeout_format(int64_t ms, char *buf)
{
    if (ms < 0)
        ms = 0;
    /* rounded up to the unit it needs, so a deadline passed on is never shorter (and
     * without ms + 999, which overflows near INT64_MAX) */
    int64_t s = ms / 1000 + (ms % 1000 != 0);
    int64_t h = ms / 3600000 + (ms % 3600000 != 0);
    int k;
    if (ms <= 99999999)
        k = snprintf(buf, 16, "%lldm", (long long)ms);
    else if (s <= 99999999) /* 8 digits at most, rounded up */
        k = snprintf(buf, 16, "%lldS", (long long)s);
    else
        k = snprintf(buf, 16, "%lldH", (long long)(h > 99999999 ? 99999999 : h));
    return (size_t)k;
}
