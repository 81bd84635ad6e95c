/*
 * `metrics;`: the exposition. Answers GET with every family, in Prometheus's text
 * format 0.0.4, or in OpenMetrics 1.0 when the Accept header asks for
 * application/openmetrics-text (what Prometheus sends when it prefers it). The two
 * differ only where OpenMetrics insists: a counter family is named without `_total`
 * (its samples keep it), and the text ends with `# EOF`.
 *
 * Counted series (metrics.c) are summed over the worker slots of the shared zone;
 * upstream peers, breakers and queues are read from the shared peer table, as
 * `upstream_status` reads them. Only the series of the configuration this worker
 * serves are shown: a location removed by a reload drops out of the scrape (its
 * counts stay in the zone, and come back if it does).
 */
#include "observe/metrics_int.h"
#include "http/http.h"
#include "http/request.h"
#include "core/time.h"
#include "upstream/breaker.h"
#include "upstream/retry.h"
#include "upstream/upstream.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <string.h>

typedef struct {
    struct evbuffer *b;
    int om; /* OpenMetrics */
} out_t;

/* # HELP and # TYPE of a family; name is the sample name (with _total for counters). */
static void family(out_t *o, const char *name, const char *type, const char *help)
{
    size_t len = strlen(name);
    if (o->om && strcmp(type, "counter") == 0 && len > 6 && strcmp(name + len - 6, "_total") == 0)
        len -= 6;
    evbuffer_add_printf(o->b, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len,
                        name, type);
}

static void label_value(struct evbuffer *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            evbuffer_add(b, "\\\\", 2);
        else if (*s == '"')
            evbuffer_add(b, "\\\"", 2);
        else if (*s == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, s, 1);
    }
}

/* name{k1="v1",k2="v2"} value: labels is a NULL-terminated list of key, value pairs. */
static void sample(out_t *o, const char *name, const char *const *labels, const char *value)
{
    evbuffer_add_printf(o->b, "%s", name);
    if (labels && labels[0]) {
        evbuffer_add(o->b, "{", 1);
        for (size_t i = 0; labels[i]; i += 2) {
            evbuffer_add_printf(o->b, "%s%s=\"", i ? "," : "", labels[i]);
            label_value(o->b, labels[i + 1]);
            evbuffer_add(o->b, "\"", 1);
        }
        evbuffer_add(o->b, "}", 1);
    }
    evbuffer_add_printf(o->b, " %s\n", value);
}

static void sample_i(out_t *o, const char *name, const char *const *labels, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    sample(o, name, labels, buf);
}

static void sample_f(out_t *o, const char *name, const char *const *labels, double v)
{
    char buf[40];
    snprintf(buf, sizeof(buf), "%.6f", v);
    sample(o, name, labels, buf);
}

/* A histogram's samples from its 12 words (buckets then +Inf) and its sum in us. */
static void histogram(out_t *o, const char *name, const char **labels, size_t nl,
                      const rp_metrics_shm_t *m, int series, unsigned first, unsigned sum)
{
    char n[128];
    int64_t cum = 0;
    snprintf(n, sizeof(n), "%s_bucket", name);
    for (unsigned k = 0; k <= RP_METRICS_NBUCKETS; k++) {
        cum += rp_metrics_sum(m, series, first + k);
        labels[nl] = "le";
        labels[nl + 1] = k < RP_METRICS_NBUCKETS ? rp_metrics_bucket_text[k] : "+Inf";
        labels[nl + 2] = NULL;
        sample_i(o, n, labels, cum);
    }
    labels[nl] = NULL;
    snprintf(n, sizeof(n), "%s_count", name);
    sample_i(o, n, labels, cum);
    snprintf(n, sizeof(n), "%s_sum", name);
    sample_f(o, n, labels, (double)rp_metrics_sum(m, series, sum) / 1e6);
}

/* Whether series s was shown already (several locations share one). */
static int seen(uint64_t *bits, int s)
{
    uint64_t bit = 1ull << (s % 64);
    if (bits[s / 64] & bit)
        return 1;
    bits[s / 64] |= bit;
    return 0;
}

static void global_families(out_t *o, const rp_metrics_shm_t *m)
{
    static const struct {
        unsigned word;
        const char *name, *type, *help;
    } g[] = {
        {RP_MG_CONN_ACCEPTED, "rampart_connections_accepted_total", "counter",
         "Client connections accepted."},
        {RP_MG_CONN_HANDLED, "rampart_connections_handled_total", "counter",
         "Client connections handled (accepted and not refused for want of room)."},
        {RP_MG_CONN_ACTIVE, "rampart_connections_active", "gauge",
         "Client connections open, waiting ones included."},
        {RP_MG_CONN_READING, "rampart_connections_reading", "gauge",
         "Client connections reading a request head."},
        {RP_MG_CONN_WRITING, "rampart_connections_writing", "gauge",
         "Requests being processed (HTTP/2 streams each count)."},
        {RP_MG_BYTES_IN, "rampart_received_bytes_total", "counter",
         "Bytes received from clients (after TLS)."},
        {RP_MG_BYTES_OUT, "rampart_sent_bytes_total", "counter",
         "Bytes sent to clients (before TLS)."},
        {RP_MG_TLS_HANDSHAKES, "rampart_tls_handshakes_total", "counter",
         "TLS handshakes completed with clients."},
        {RP_MG_TLS_RESUMED, "rampart_tls_session_resumptions_total", "counter",
         "TLS handshakes that resumed a session (ticket or cache)."},
        {RP_MG_TLS_FAILED, "rampart_tls_handshake_failures_total", "counter",
         "TLS handshakes that failed or timed out."},
        {RP_MG_H2_STREAMS, "rampart_http2_streams_total", "counter",
         "HTTP/2 streams that carried a request."},
        {RP_MG_LUA_ERRORS, "rampart_lua_errors_total", "counter",
         "Lua errors that aborted a handler, hook or timer."},
    };
    int64_t v[RP_MG_NWORDS];
    for (unsigned w = 0; w < RP_MG_NWORDS; w++)
        v[w] = w >= RP_MG_CONN_ACTIVE && w <= RP_MG_CONN_WRITING ? rp_metrics_gauge(m, w)
                                                                 : rp_metrics_sum(m, 0, w);
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        family(o, g[i].name, g[i].type, g[i].help);
        sample_i(o, g[i].name, NULL, v[g[i].word]);
        if (g[i].word == RP_MG_CONN_WRITING) {
            int64_t waiting = v[RP_MG_CONN_ACTIVE] - v[RP_MG_CONN_READING] - v[RP_MG_CONN_WRITING];
            family(o, "rampart_connections_waiting", "gauge",
                   "Idle client connections (active - reading - writing, at least 0).");
            sample_i(o, "rampart_connections_waiting", NULL, waiting < 0 ? 0 : waiting);
        }
    }
    static const char *const defences[RP_METRICS_NFLOOD] = {"continuation", "rst_stream",
                                                            "idle_frames", "nghttp2", "other"};
    family(o, "rampart_http2_flood_defences_tripped_total", "counter",
           "HTTP/2 connections closed with ENHANCE_YOUR_CALM, by defence.");
    for (unsigned k = 0; k < RP_METRICS_NFLOOD; k++) {
        const char *l[] = {"defence", defences[k], NULL};
        sample_i(o, "rampart_http2_flood_defences_tripped_total", l, v[RP_MG_H2_FLOOD + k]);
    }
}

static void location_families(out_t *o, const rp_metrics_shm_t *m, rp_metrics_main_conf_t *mc)
{
    static const char *const cls[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    static const char *const proto[3] = {"HTTP/1.0", "HTTP/1.1", "HTTP/2"};
    rp_metrics_loc_conf_t **locs = mc->locs.elts;
    for (int pass = 0; pass < 3; pass++) {
        uint64_t bits[RP_METRICS_SERIES / 64] = {0};
        if (pass == 0)
            family(o, "rampart_http_requests_total", "counter",
                   "Requests by server, location (metrics_name), status class and protocol.");
        else if (pass == 1)
            family(o, "rampart_http_request_duration_seconds", "histogram",
                   "Time from the first byte of the request to its end.");
        else
            family(o, "rampart_http_response_body_bytes_total", "counter",
                   "Response body bytes sent.");
        for (size_t i = 0; i < mc->locs.nelts; i++) {
            int s = locs[i]->series;
            if (s < 0 || seen(bits, s))
                continue;
            const char *server = locs[i]->server, *loc = locs[i]->name ? locs[i]->name : "";
            if (pass == 0) {
                for (unsigned c = 0; c < 5; c++)
                    for (unsigned p = 0; p < 3; p++) {
                        int64_t n = rp_metrics_sum(m, s, RP_ML_REQ + c * 3 + p);
                        if (n == 0 && c != 1)
                            continue; /* 2xx always shown: the series exists */
                        const char *l[] = {"server", server,     "location", loc, "status_class",
                                           cls[c],   "protocol", proto[p],   NULL};
                        sample_i(o, "rampart_http_requests_total", l, n);
                    }
            } else if (pass == 1) {
                const char *l[8] = {"server", server, "location", loc, NULL};
                histogram(o, "rampart_http_request_duration_seconds", l, 4, m, s, RP_ML_HIST,
                          RP_ML_SUM_US);
            } else {
                const char *l[] = {"server", server, "location", loc, NULL};
                sample_i(o, "rampart_http_response_body_bytes_total", l,
                         rp_metrics_sum(m, s, RP_ML_BODY_SENT));
            }
        }
    }
}

static void limit_families(out_t *o, const rp_metrics_shm_t *m, rp_metrics_main_conf_t *mc)
{
    static const char *const outcome[3] = {"passed", "delayed", "rejected"};
    family(o, "rampart_limit_requests_total", "counter",
           "Requests a limit zone decided on, by outcome (dry runs count as passed).");
    rp_metrics_named_t *l = mc->limits.elts;
    for (size_t i = 0; i < mc->limits.nelts; i++) {
        if (l[i].series < 0)
            continue;
        for (unsigned k = 0; k < 3; k++) {
            const char *lb[] = {"zone", l[i].name, "outcome", outcome[k], NULL};
            sample_i(o, "rampart_limit_requests_total", lb, rp_metrics_sum(m, l[i].series, k));
        }
    }
}

static const char *peer_state(rp_upstream_conf_t *u, rp_upstream_server_t *s, int64_t now)
{
    int st = rp_upstream_peer_state(u, s, now);
    if (st != RP_PEER_USABLE && st != RP_PEER_HEALTHY)
        return rp_upstream_peer_state_name(st);
    if (s->max_conns && rp_shm_counter_get(&s->sh->inflight) >= s->max_conns)
        return "full";
    if (!u->panic && rp_upstream_peer_resting(u, s, now))
        return "unavailable";
    return st == RP_PEER_HEALTHY ? "healthy" : "up";
}

/* The peer table's families: one pass per family over every upstream's peers. */
static void peer_families(out_t *o, rp_upstream_main_conf_t *um)
{
    static const struct {
        const char *name, *type, *help;
        size_t off; /* of the counter in rp_peer_shared_t */
    } f[] = {
        {"rampart_upstream_peer_attempts_total", "counter", "Attempts sent to the peer.",
         offsetof(rp_peer_shared_t, requests)},
        {"rampart_upstream_peer_failures_total", "counter", "Attempts on the peer that failed.",
         offsetof(rp_peer_shared_t, failures)},
        {"rampart_upstream_peer_retries_total", "counter", "Retries sent to the peer.",
         offsetof(rp_peer_shared_t, retries)},
        {"rampart_upstream_peer_ejections_total", "counter",
         "Times outlier detection ejected the peer.", offsetof(rp_peer_shared_t, ejected_total)},
        {"rampart_upstream_peer_health_checks_total", "counter", "Active health checks sent.",
         offsetof(rp_peer_shared_t, checks)},
        {"rampart_upstream_peer_health_check_failures_total", "counter",
         "Active health checks that failed.", offsetof(rp_peer_shared_t, check_fails)},
        {"rampart_upstream_peer_requests_in_flight", "gauge", "Requests in flight on the peer.",
         offsetof(rp_peer_shared_t, inflight)},
        {"rampart_upstream_peer_connections", "gauge", "Connections open to the peer.",
         offsetof(rp_peer_shared_t, conns)},
    };
    static const char *const states[] = {"up",       "healthy", "unhealthy",   "unknown", "down",
                                         "draining", "ejected", "unavailable", "full"};
    rp_upstream_conf_t **ups = um->upstreams.elts;
    int64_t now = rp_time_ms();
    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]) + 2; k++) {
        if (k < sizeof(f) / sizeof(f[0]))
            family(o, f[k].name, f[k].type, f[k].help);
        else if (k == sizeof(f) / sizeof(f[0]))
            family(o, "rampart_upstream_peer_state", "gauge",
                   "1 for the state the peer is in (as upstream_status shows it), else 0.");
        else
            family(o, "rampart_upstream_peer_latency_seconds", "gauge",
                   "Peak-EWMA latency of the peer, to the response head or the last byte.");
        for (size_t i = 0; i < um->upstreams.nelts; i++) {
            rp_upstream_conf_t *u = ups[i];
            rp_upstream_peers_t *set = rp_upstream_peers(u);
            for (unsigned p = 0; set && p < set->n; p++) {
                rp_upstream_server_t *s = set->peer[p];
                if (s->sh == NULL)
                    continue;
                if (k < sizeof(f) / sizeof(f[0])) {
                    const char *l[] = {"upstream", u->name, "peer", s->name, NULL};
                    const rp_shm_counter_t *c =
                        (const rp_shm_counter_t *)((const char *)s->sh + f[k].off);
                    sample_i(o, f[k].name, l, rp_shm_counter_get(c));
                } else if (k == sizeof(f) / sizeof(f[0])) {
                    const char *cur = peer_state(u, s, now);
                    for (size_t j = 0; j < sizeof(states) / sizeof(states[0]); j++) {
                        const char *l[] = {"upstream", u->name,   "peer", s->name,
                                           "state",    states[j], NULL};
                        sample_i(o, "rampart_upstream_peer_state", l, strcmp(cur, states[j]) == 0);
                    }
                } else {
                    const char *lh[] = {"upstream", u->name, "peer", s->name, "to", "header", NULL};
                    sample_f(o, "rampart_upstream_peer_latency_seconds", lh,
                             rp_upstream_peer_latency(s, 0, now) / 1000.0);
                    const char *ll[] = {"upstream", u->name,     "peer", s->name,
                                        "to",       "last_byte", NULL};
                    sample_f(o, "rampart_upstream_peer_latency_seconds", ll,
                             rp_upstream_peer_latency(s, 1, now) / 1000.0);
                }
            }
        }
    }
}

/* The pools' families (breakers, queues, retries), and the counted upstream series. */
static void upstream_families(out_t *o, const rp_metrics_shm_t *m, rp_metrics_main_conf_t *mc,
                              rp_upstream_main_conf_t *um)
{
    static const struct {
        const char *name, *type, *help;
    } f[] = {
        {"rampart_upstream_retries_total", "counter", "Retries and hedges sent, all reasons."},
        {"rampart_upstream_retry_budget_denied_total", "counter",
         "Retries the retry budget or max_retries refused."},
        {"rampart_upstream_breaker_trips_total", "counter",
         "Requests a circuit breaker answered 503."},
        {"rampart_upstream_panics_total", "counter", "Times the pool entered panic."},
        {"rampart_upstream_queue_length", "gauge", "Requests waiting in the pool's queue."},
        {"rampart_upstream_requests_in_flight", "gauge", "Requests in flight on the pool."},
    };
    rp_upstream_conf_t **ups = um->upstreams.elts;
    for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
        family(o, f[k].name, f[k].type, f[k].help);
        for (size_t i = 0; i < um->upstreams.nelts; i++) {
            rp_pool_shared_t *ps = ups[i]->pool;
            if (ps == NULL)
                continue;
            const rp_shm_counter_t *c[] = {&ps->retried, &ps->budget_denied, &ps->breaker_tripped,
                                           &ps->panics};
            int64_t v = k < 4    ? rp_shm_counter_get(c[k])
                        : k == 4 ? rp_breaker_queue_waiting(ps->spare)
                                 : rp_shm_counter_get(&ps->totals.inflight);
            const char *l[] = {"upstream", ups[i]->name, NULL};
            sample_i(o, f[k].name, l, v);
        }
    }

    static const char *const reasons[RP_MU_NRETRY] = {
        "",        "connect_failure", "refused_stream", "reset",
        "timeout", "invalid_header",  "status",         "hedge"};
    rp_metrics_named_t **n = mc->ups.elts;
    family(o, "rampart_upstream_retries_by_reason_total", "counter",
           "Retries and hedges sent, by the reason the previous attempt gave.");
    for (size_t i = 0; i < mc->ups.nelts; i++) {
        if (n[i]->series < 0)
            continue;
        for (unsigned r = 1; r < RP_MU_NRETRY; r++) {
            const char *l[] = {"upstream", n[i]->name, "reason", reasons[r], NULL};
            sample_i(o, "rampart_upstream_retries_by_reason_total", l,
                     rp_metrics_sum(m, n[i]->series, RP_MU_RETRY + r));
        }
    }
    family(o, "rampart_upstream_response_duration_seconds", "histogram",
           "Time of each attempt that got a response head, to its last byte.");
    for (size_t i = 0; i < mc->ups.nelts; i++) {
        if (n[i]->series < 0)
            continue;
        const char *l[6] = {"upstream", n[i]->name, NULL};
        histogram(o, "rampart_upstream_response_duration_seconds", l, 2, m, n[i]->series,
                  RP_MU_HIST, RP_MU_SUM_US);
    }
    (void)RP_RETRY_HEDGE;
}

/* Whether the Accept header asks for OpenMetrics. */
static int wants_openmetrics(const rp_request_t *r)
{
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (!rp_str_ieq(r->headers[i].name, "accept"))
            continue;
        const char *v = r->headers[i].value.data;
        size_t len = r->headers[i].value.len;
        static const char want[] = "application/openmetrics-text";
        for (size_t k = 0; k + sizeof(want) - 1 <= len; k++)
            if (strncasecmp(v + k, want, sizeof(want) - 1) == 0)
                return 1;
    }
    return 0;
}

int rp_metrics_handler(rp_request_t *r)
{
    if (!rp_str_eq(r->method, "GET") && !rp_str_eq(r->method, "HEAD"))
        return rp_http_send_response(r, 405, RP_STR("text/plain"), RP_STR("method not allowed\n"));
    const rp_metrics_shm_t *m = rp_metrics_shm;
    rp_metrics_main_conf_t *mc = rp_metrics_conf;
    out_t o = {evbuffer_new(), wants_openmetrics(r)};
    if (o.b == NULL || m == NULL || mc == NULL) {
        if (o.b)
            evbuffer_free(o.b);
        return rp_http_send_response(r, 500, RP_NULL_STR, RP_STR(""));
    }
    global_families(&o, m);
    location_families(&o, m, mc);
    limit_families(&o, m, mc);
    rp_upstream_main_conf_t *um = r->srv->ctx->main_conf[rp_upstream_module.index];
    if (um) {
        upstream_families(&o, m, mc, um);
        peer_families(&o, um);
    }
    if (o.om)
        evbuffer_add(o.b, "# EOF\n", 6);
    size_t len = evbuffer_get_length(o.b);
    char *body = rp_arena_alloc(r->arena, len);
    evbuffer_remove(o.b, body, len);
    evbuffer_free(o.b);
    rp_http_add_header(r, RP_STR("Cache-Control"), RP_STR("no-store"));
    rp_str_t type = o.om ? RP_STR("application/openmetrics-text; version=1.0.0; charset=utf-8")
                         : RP_STR("text/plain; version=0.0.4; charset=utf-8");
    return rp_http_send_response(r, 200, type, (rp_str_t){body, len});
}
