/*
 * The proxy's header policy, written once for the HTTP/1 (proxy.c) and the HTTP/2
 * and gRPC (proxy_h2.c) exchanges: which fields go upstream (the location's
 * proxy_set_header values, then the client's fields minus those describing the
 * connection, those the location sets, those named by Connection and those with an
 * underscore) and which response fields come back to the client (not those
 * describing the connection, not Date and Server, which rampart writes, not the
 * proxy_hide_header ones).
 */
#include "upstream/proxy.h"
#include "core/wbuf.h"
#include "http/h1_parser.h"
#include "observe/trace_context.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The fields rampart writes itself in a request, whatever the client sent. */
static int written_by_rampart(rp_str_t n)
{
    return (n.len == 4 && rp_str_ieq(n, "host")) || (n.len == 6 && rp_str_ieq(n, "expect")) ||
           (n.len == 14 && rp_str_ieq(n, "content-length"));
}

/* Whether a Connection field among h[0..n) names this field. */
static int named_by_connection(const rp_header_t *h, unsigned n, rp_str_t name)
{
    char tok[64];
    if (name.len >= sizeof(tok))
        return 0;
    memcpy(tok, name.data, name.len);
    tok[name.len] = '\0';
    for (unsigned i = 0; i < n; i++)
        if (rp_str_ieq(h[i].name, "connection") &&
            rp_h1_token_list_has(h[i].value.data, h[i].value.len, tok))
            return 1;
    return 0;
}

/* A value that would end the field early (one pass: values are short). */
static int bad_value(rp_str_t v)
{
    for (size_t i = 0; i < v.len; i++)
        if (v.data[i] == '\r' || v.data[i] == '\n')
            return 1;
    return 0;
}

static int set_by_location(const rp_proxy_loc_conf_t *plcf, rp_str_t name)
{
    for (size_t k = 0; k < plcf->nheaders; k++)
        if (!plcf->headers[k].request_id && plcf->headers[k].name.len == name.len &&
            strncasecmp(plcf->headers[k].name.data, name.data, name.len) == 0)
            return 1;
    return 0;
}

void rp_proxy_request_fields(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, unsigned flags,
                             rp_proxy_fields_t *out)
{
    int h2 = (flags & RP_PROXY_FIELDS_H2) != 0;
    int client_request_id = 0, connection = 0;
    memset(out, 0, sizeof(*out));
    out->upgrade = !h2 && (flags & RP_PROXY_FIELDS_UPGRADE) != 0;
    out->f = rp_arena_alloc(r->arena, sizeof(*out->f) * (plcf->nheaders + r->nheaders + 2));
    /* W3C trace context: rampart's span replaces the client's traceparent (and the
     * tracestate goes on only with a valid one), unless the location sets the field. */
    rp_str_t traceparent, tracestate;
    int trace = rp_trace_upstream(r, &traceparent, &tracestate);

    for (unsigned i = 0; i < r->nheaders; i++) {
        rp_str_t n = r->headers[i].name;
        if (n.len == 12 && rp_str_ieq(n, "x-request-id"))
            client_request_id = 1;
        else if (n.len == 10 && rp_str_ieq(n, "connection"))
            connection = 1;
    }

    /* A Connection the location sets (nginx's "proxy_set_header Connection
     * $connection_upgrade") lets an upgrade go on only when it says "upgrade", as the
     * field nginx would send; rampart writes the field itself. */
    for (size_t i = 0; i < plcf->nheaders && out->upgrade; i++) {
        const rp_proxy_header_t *h = &plcf->headers[i];
        if (h->connection) {
            rp_str_t v = rp_cv_eval(r, &h->value);
            if (!rp_h1_token_list_has(v.data, v.len, "upgrade"))
                out->upgrade = 0;
        }
    }

    for (size_t i = 0; i < plcf->nheaders; i++) {
        const rp_proxy_header_t *h = &plcf->headers[i];
        if (h->connection)
            continue;
        if (h->request_id && client_request_id)
            continue; /* the client's own id goes through with its other fields */
        if (h->upgrade && !out->upgrade)
            continue; /* Upgrade means nothing without the "Connection: upgrade" we write */
        rp_str_t v = rp_cv_eval(r, &h->value);
        if (h->upgrade) {
            /* an empty value is how a location refuses upgrades */
            if (v.len == 0 || bad_value(v)) {
                out->upgrade = 0;
                continue;
            }
            out->upgrade_set = 1;
        }
        if (h2 && h->name.len == 4 && rp_str_ieq(h->name, "host")) {
            out->host = v; /* HTTP/2 carries the Host as :authority */
            continue;
        }
        if (v.len == 0 || bad_value(v))
            continue; /* an empty value removes the field, as nginx */
        if (h2 && (rp_proxy_hop_by_hop(h->name) || written_by_rampart(h->name)))
            continue;
        out->f[out->n++] = (rp_header_t){h->name, v};
    }

    if (trace && !set_by_location(plcf, RP_STR("traceparent")))
        out->f[out->n++] = (rp_header_t){RP_STR("traceparent"), traceparent};
    if (trace && tracestate.len && !set_by_location(plcf, RP_STR("tracestate")))
        out->f[out->n++] = (rp_header_t){RP_STR("tracestate"), tracestate};

    /* proxy_pass_request_headers off: the location's fields only */
    unsigned nclient = plcf->pass_request_headers ? r->nheaders : 0;
    for (unsigned i = 0; i < nclient; i++) {
        rp_str_t n = r->headers[i].name, v = r->headers[i].value;
        if (trace && ((n.len == 11 && rp_str_ieq(n, "traceparent")) ||
                      (n.len == 10 && rp_str_ieq(n, "tracestate"))))
            continue;
        if (h2 && n.len == 2 && rp_str_ieq(n, "te")) {
            /* the one TE HTTP/2 allows, which gRPC servers expect */
            out->te_trailers |= rp_h1_token_list_has(v.data, v.len, "trailers");
            continue;
        }
        if (rp_proxy_hop_by_hop(n) || written_by_rampart(n))
            continue;
        /* A name with "_" is gone already unless underscores_in_headers or
         * ignore_invalid_headers off let it in (http/compat_http_module.c): then it
         * goes on, as in nginx. */
        if (set_by_location(plcf, n) ||
            (connection && named_by_connection(r->headers, r->nheaders, n)))
            continue;
        out->f[out->n++] = r->headers[i];
    }
    if (h2 && out->host.len == 0)
        out->host = rp_request_header(r, "host");
    if (h2 && out->host.len == 0)
        out->host = plcf->host;
}

/* The upstream's controls nginx hides from the client by default (other X-Accel-*
 * fields pass). */
static int hidden_control(rp_str_t n)
{
    if (n.len == 5)
        return rp_str_ieq(n, "x-pad");
    if (n.len < 15 || strncasecmp(n.data, "x-accel-", 8) != 0)
        return 0;
    return rp_str_ieq(n, "x-accel-redirect") || rp_str_ieq(n, "x-accel-expires") ||
           rp_str_ieq(n, "x-accel-limit-rate") || rp_str_ieq(n, "x-accel-buffering") ||
           rp_str_ieq(n, "x-accel-charset");
}

/* Whether proxy_pass_header names the field. */
static int passed_by_location(const rp_proxy_loc_conf_t *plcf, rp_str_t n)
{
    rp_array_t *pass = plcf->pass_headers;
    if (pass == NULL)
        return 0;
    rp_str_t *ps = pass->elts;
    for (size_t k = 0; k < pass->nelts; k++)
        if (ps[k].len == n.len && strncasecmp(ps[k].data, n.data, n.len) == 0)
            return 1;
    return 0;
}

int rp_proxy_response_field_passes(const rp_proxy_loc_conf_t *plcf, rp_str_t n)
{
    if (rp_proxy_hop_by_hop(n) || (n.len == 14 && rp_str_ieq(n, "content-length")) ||
        (n.len == 4 && rp_str_ieq(n, "date")) || (n.len == 6 && rp_str_ieq(n, "server")))
        return 0;
    /* nginx hides the upstream's controls (X-Accel-Redirect, -Limit-Rate, -Buffering,
     * -Expires, -Charset) and X-Pad, unless proxy_pass_header names them */
    if (n.len >= 5 && (n.data[0] | 0x20) == 'x' && hidden_control(n) &&
        !passed_by_location(plcf, n))
        return 0;
    rp_array_t *hide = plcf->hide_headers;
    if (hide) {
        rp_str_t *hs = hide->elts;
        for (size_t k = 0; k < hide->nelts; k++)
            if (hs[k].len == n.len && strncasecmp(hs[k].data, n.data, n.len) == 0)
                return 0;
    }
    return 1;
}

/* ---- the request head ---- */

/*
 * Whether the client asks to switch protocols and rampart passes that on: over
 * HTTP/1.1 (an HTTP/1.0 client cannot take a 101, and an HTTP/2 stream is not a
 * connection to hand over), with "Connection: upgrade", and without a body (the
 * body's end would be the tunnel's start, which nobody could frame). h2c is never
 * passed: a backend speaking HTTP/2 behind the tunnel would take requests that
 * rampart's locations never saw ("h2c smuggling").
 */
static int wants_upgrade(const rp_request_t *r)
{
    int listed = 0, h2c = 0;
    if (r->version != 11 || r->chunked || r->content_length > 0)
        return 0;
    for (unsigned i = 0; i < r->nheaders; i++) {
        const rp_header_t *h = &r->headers[i];
        if (h->name.len == 10 && rp_str_ieq(h->name, "connection"))
            listed |= rp_h1_token_list_has(h->value.data, h->value.len, "upgrade");
        else if (h->name.len == 7 && rp_str_ieq(h->name, "upgrade"))
            h2c |= rp_h1_token_list_has(h->value.data, h->value.len, "h2c");
    }
    return listed && !h2c;
}

size_t rp_proxy_request_head(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_str_t target,
                             int http_version, int keepalive, unsigned *flags, char *buf,
                             size_t cap)
{
    rp_wbuf_t w = {buf, buf + cap};
    int has_conn_hdr = 0, has_upgrade = 0;

    for (unsigned i = 0; i < r->nheaders; i++) {
        if (r->headers[i].name.len == 10 && rp_str_ieq(r->headers[i].name, "connection"))
            has_conn_hdr = 1;
        else if (r->headers[i].name.len == 7 && rp_str_ieq(r->headers[i].name, "upgrade"))
            has_upgrade = 1;
    }
    /* only a request that has both fields pays for the closer look */
    int upgrade = has_conn_hdr && has_upgrade && wants_upgrade(r);
    rp_proxy_fields_t fl;
    rp_proxy_request_fields(r, plcf, upgrade ? RP_PROXY_FIELDS_UPGRADE : 0, &fl);
    int up = fl.upgrade;
    int upgrade_set = fl.upgrade_set, chunked = 0;

    rp_wbuf_put(&w, r->method.data, r->method.len);
    RP_WBUF_LIT(&w, " ");
    rp_wbuf_put(&w, target.data, target.len);
    if (http_version == 10) {
        /* nginx's proxy_http_version 1.0: no keep-alive, no upgrade, no chunked body */
        RP_WBUF_LIT(&w, " HTTP/1.0\r\n");
        up = 0;
    } else {
        RP_WBUF_LIT(&w, " HTTP/1.1\r\n");
    }
    for (unsigned i = 0; i < fl.n; i++) {
        rp_wbuf_put(&w, fl.f[i].name.data, fl.f[i].name.len);
        RP_WBUF_LIT(&w, ": ");
        rp_wbuf_put(&w, fl.f[i].value.data, fl.f[i].value.len);
        RP_WBUF_LIT(&w, "\r\n");
    }

    if (up) {
        for (unsigned i = 0; i < r->nheaders && !upgrade_set; i++) {
            if (r->headers[i].name.len != 7 || !rp_str_ieq(r->headers[i].name, "upgrade"))
                continue;
            RP_WBUF_LIT(&w, "Upgrade: ");
            rp_wbuf_put(&w, r->headers[i].value.data, r->headers[i].value.len);
            RP_WBUF_LIT(&w, "\r\n");
        }
        /* not "close" even without keepalive: a server may refuse to upgrade a connection
         * it is told to close; a refusal's connection is closed (or cached) as usual */
        RP_WBUF_LIT(&w, "Connection: upgrade\r\n");
    } else if (!keepalive || http_version == 10) {
        RP_WBUF_LIT(&w, "Connection: close\r\n");
    }
    if (!plcf->pass_request_body) {
        /* proxy_pass_request_body off: the request goes without its body */
    } else if (r->chunked && r->body && rp_http_body_kept(r)) {
        /* read whole first: it goes with its length, as nginx sends a buffered body */
        char cl[40];
        int k = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", rp_http_kept_body_length(r));
        rp_wbuf_put(&w, cl, (size_t)k);
    } else if (r->chunked) {
        chunked = 1;
        RP_WBUF_LIT(&w, "Transfer-Encoding: chunked\r\n");
    } else if (r->content_length >= 0 &&
               (r->content_length > 0 || rp_str_eq(r->method, "POST") ||
                rp_str_eq(r->method, "PUT") || rp_str_eq(r->method, "PATCH"))) {
        char cl[40];
        int k = snprintf(cl, sizeof(cl), "Content-Length: %lld\r\n", (long long)r->content_length);
        rp_wbuf_put(&w, cl, (size_t)k);
    }
    RP_WBUF_LIT(&w, "\r\n");
    *flags = (up ? RP_PROXY_HEAD_UPGRADE : 0) | (chunked ? RP_PROXY_HEAD_CHUNKED : 0);
    return w.p ? (size_t)(w.p - buf) : 0;
}
