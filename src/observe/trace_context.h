/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) at the gateway: rampart's
 * hop is a span. A request's context is made on first use (a variable, the proxy, Lua):
 * the client's `traceparent` continues its trace, or a new trace id is drawn; a new
 * span id is drawn for every request and goes upstream as the parent-id.
 */
#ifndef RP_TRACE_CONTEXT_H
#define RP_TRACE_CONTEXT_H

#include "core/str.h"
#include "http/request.h"

#include <stddef.h>
#include <stdint.h>

/* r->trace.state */
enum { RP_TRACE_UNSET = 0, RP_TRACE_OFF, RP_TRACE_MADE };

/* trace_context's modes (r->trace.mode) */
enum { RP_TRACE_CTX_OFF = 0, RP_TRACE_CTX_EXTRACT, RP_TRACE_CTX_INJECT, RP_TRACE_CTX_PROPAGATE };

/*
 * Parses a traceparent value: version 00 exactly (55 characters), a later version by
 * its first 55 characters (followed by the end or a "-"), lowercase hex only, version
 * ff, an all-zero trace-id or parent-id refused. 0 with the trace-id's 32 and the
 * parent-id's 16 hex digits copied out and the flags, or -1.
 */
int rp_trace_parse_traceparent(const char *s, size_t len, char *trace_id, char *parent_id,
                               unsigned *flags);

/* Whether a (combined) tracestate value is one to pass on: at most 32 list-members, each
 * a valid key=value, no key twice. Empty list-members and spaces around them are
 * allowed, as the spec says. */
int rp_trace_tracestate_valid(const char *s, size_t len);

/* Writes v as 16 lower-case hexadecimal digits (no terminator). */
void rp_trace_hex64(char *out, uint64_t v);

/* r's trace context, made on first use; 0, or -1 when trace_context is off for it. */
int rp_trace_get(rp_request_t *r);

static inline rp_str_t rp_trace_id(rp_request_t *r)
{
    return rp_trace_get(r) == 0 ? (rp_str_t){r->trace.traceparent + 3, 32} : RP_NULL_STR;
}

static inline rp_str_t rp_trace_span_id(rp_request_t *r)
{
    return rp_trace_get(r) == 0 ? (rp_str_t){r->trace.traceparent + 36, 16} : RP_NULL_STR;
}

/*
 * What the proxy sends upstream for r: 1 with the traceparent of rampart's span and
 * the tracestate to pass on (possibly empty) when the location's trace_context injects
 * (the client's traceparent and tracestate then do not go), 0 to leave the client's
 * fields as they are.
 */
int rp_trace_upstream(rp_request_t *r, rp_str_t *traceparent, rp_str_t *tracestate);

/* A subrequest (a mirror's copy) is a child span of its parent's: same trace, flags and
 * tracestate, the parent's span as its parent-id. */
void rp_trace_inherit(rp_request_t *sub, rp_request_t *parent);

extern rp_module_t rp_trace_context_module;

#endif
