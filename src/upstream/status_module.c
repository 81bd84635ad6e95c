/*
 * `upstream_status;`: a location that answers with the state of every upstream of
 * the configuration serving now, as JSON: its balancer and zone, and for each peer
 * its address, state, configured and effective weight, requests and connections in
 * flight (all workers), peak-EWMA latencies, the failure window and all-time totals,
 * read from the shared peer table (so every worker answers alike). Read only: the
 * admin API (admin_api.c) shows the same fields of each peer and changes them.
 *
 *   location = /upstreams { upstream_status; allow 127.0.0.1; }
 *
 * Peers of `resolve` lines are those this worker's set holds now.
 */
#include "upstream/breaker.h"
#include "upstream/outlier.h"
#include "upstream/status.h"
#include "upstream/upstream.h"
#include "http/http.h"
#include "http/request.h"
#include "core/shm.h"
#include "core/time.h"

#include <event2/buffer.h>

#include <stdio.h>
#include <string.h>

static void json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            evbuffer_add_printf(b, "\\%c", c);
        else if (c < 0x20)
            evbuffer_add_printf(b, "\\u%04x", c);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

const char *rp_upstream_status_state(rp_upstream_conf_t *u, rp_upstream_server_t *s, int64_t now)
{
    int st = rp_upstream_peer_state(u, s, now);
    if (st != RP_PEER_USABLE && st != RP_PEER_HEALTHY)
        return rp_upstream_peer_state_name(st);
    if (s->max_conns && rp_shm_counter_get(&s->sh->inflight) >= s->max_conns)
        return "full";
    if (!u->panic && rp_upstream_peer_resting(u, s, now))
        return "unavailable"; /* resting after max_fails within fail_timeout */
    return st == RP_PEER_HEALTHY ? "healthy" : "up";
}

void rp_upstream_status_peer_fields(struct evbuffer *b, rp_upstream_conf_t *u,
                                    rp_upstream_server_t *s, int64_t now)
{
    rp_peer_shared_t *sh = s->sh;
    evbuffer_add(b, "\"address\":", 10);
    json_str(b, s->name);
    evbuffer_add_printf(b, ",\"state\":\"%s\",\"backup\":%s,\"resolved\":%s", rp_upstream_status_state(u, s, now),
                        s->backup ? "true" : "false", s->dynamic ? "true" : "false");
    evbuffer_add_printf(b, ",\"weight\":%d,\"effective_weight\":%.2f", s->weight,
                        rp_upstream_peer_weight(s, now) / 100.0);
    evbuffer_add_printf(b, ",\"inflight\":%lld,\"connections\":%lld",
                        (long long)rp_shm_counter_get(&sh->inflight),
                        (long long)rp_shm_counter_get(&sh->conns));
    evbuffer_add_printf(b, ",\"latency_header_ms\":%.3f,\"latency_last_byte_ms\":%.3f",
                        rp_upstream_peer_latency(s, 0, now), rp_upstream_peer_latency(s, 1, now));
    evbuffer_add_printf(b, ",\"fails\":%lld,\"max_fails\":%d,\"fail_timeout_ms\":%lld",
                        (long long)rp_shm_counter_get(&sh->fails), s->max_fails,
                        (long long)s->fail_timeout);
    evbuffer_add_printf(b, ",\"max_conns\":%d,\"slow_start_ms\":%lld", s->max_conns,
                        (long long)s->slow_start);
    evbuffer_add_printf(b, ",\"requests\":%lld,\"failures\":%lld,\"retries\":%lld",
                        (long long)rp_shm_counter_get(&sh->requests),
                        (long long)rp_shm_counter_get(&sh->failures),
                        (long long)rp_shm_counter_get(&sh->retries));
    static const char *const health[] = {"unknown", "healthy", "unhealthy"};
    int64_t h = rp_shm_counter_get(&sh->health);
    evbuffer_add_printf(b, ",\"health\":\"%s\",\"checks\":%lld,\"check_fails\":%lld",
                        u->health_checks && h >= 0 && h <= 2 ? health[h] : "unchecked",
                        (long long)rp_shm_counter_get(&sh->checks),
                        (long long)rp_shm_counter_get(&sh->check_fails));
    int64_t until = rp_shm_counter_get(&sh->ejected_until);
    evbuffer_add_printf(b, ",\"ejected\":%s,\"ejection_left_ms\":%lld,\"ejections\":%lld,"
                           "\"ejected_total\":%lld",
                        until && (u->health_checks || now < until) ? "true" : "false",
                        (long long)(until > now ? until - now : 0),
                        (long long)rp_shm_counter_get(&sh->ejections),
                        (long long)rp_shm_counter_get(&sh->ejected_total));
    evbuffer_add_printf(b, ",\"consecutive_5xx\":%lld,\"consecutive_gateway_failure\":%lld,"
                           "\"consecutive_connect_failure\":%lld,\"window_requests\":%lld,"
                           "\"window_failures\":%lld",
                        (long long)rp_shm_counter_get(&sh->consec_5xx),
                        (long long)rp_shm_counter_get(&sh->consec_gateway),
                        (long long)rp_shm_counter_get(&sh->consec_connect),
                        (long long)rp_shm_counter_get(&sh->window_requests),
                        (long long)rp_shm_counter_get(&sh->window_failures));
}

static void peer_json(struct evbuffer *b, rp_upstream_conf_t *u, rp_upstream_server_t *s,
                      int64_t now)
{
    evbuffer_add(b, "{", 1);
    rp_upstream_status_peer_fields(b, u, s, now);
    evbuffer_add(b, "}", 1);
}

/* The pool's panic threshold in effect (0: none) and its outlier_detection settings
 * (null without). */
static void outlier_json(struct evbuffer *b, const rp_upstream_conf_t *u)
{
    int pt = !u->health_checks && !u->outlier ? 0 : u->panic_threshold < 0 ? 50 : u->panic_threshold;
    evbuffer_add_printf(b, ",\"panic_threshold\":%d,\"outlier_detection\":", pt);
    const rp_outlier_conf_t *c = rp_outlier_conf_of(u);
    if (c == NULL) {
        evbuffer_add(b, "null", 4);
        return;
    }
    evbuffer_add_printf(
        b, "{\"consecutive_5xx\":%d,\"consecutive_gateway_failure\":%d,"
           "\"consecutive_connect_failure\":%d,\"interval_ms\":%lld,"
           "\"base_ejection_time_ms\":%lld,\"max_ejection_time_ms\":%lld,"
           "\"max_ejection_percent\":%d,\"success_rate_minimum_hosts\":%d,"
           "\"success_rate_request_volume\":%d,\"success_rate_stdev_factor\":%.3g,"
           "\"failure_percentage_threshold\":%d,\"failure_percentage_minimum_hosts\":%d,"
           "\"failure_percentage_request_volume\":%d}",
        c->consecutive_5xx, c->consecutive_gateway, c->consecutive_connect,
        (long long)c->interval, (long long)c->base_ejection, (long long)c->max_ejection,
        c->max_ejection_percent, c->sr_minimum_hosts, c->sr_request_volume, c->sr_stdev_factor,
        c->fp_threshold, c->fp_minimum_hosts, c->fp_request_volume);
}

static int status_handler(rp_request_t *r)
{
    if (!rp_str_eq(r->method, "GET") && !rp_str_eq(r->method, "HEAD"))
        return rp_http_send_response(r, 405, RP_STR("text/plain"), RP_STR("method not allowed\n"));
    rp_upstream_main_conf_t *m = r->srv->ctx->main_conf[rp_upstream_module.index];
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return rp_http_send_response(r, 500, RP_NULL_STR, RP_STR(""));
    int64_t now = rp_time_ms();
    evbuffer_add(b, "{\"upstreams\":[", 14);
    rp_upstream_conf_t **ups = m->upstreams.elts;
    for (size_t i = 0; i < m->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = ups[i];
        if (i)
            evbuffer_add(b, ",", 1);
        evbuffer_add(b, "{\"name\":", 8);
        json_str(b, u->name);
        evbuffer_add_printf(b, ",\"implicit\":%s,\"balancer\":\"%s\",\"zone\":",
                            u->implicit ? "true" : "false", u->balancer->name);
        json_str(b, u->zone ? u->zone->name : "");
        rp_upstream_peers_t *set = rp_upstream_peers(u);
        if (u->pool) {
            rp_pool_shared_t *ps = u->pool;
            rp_upstream_in_panic(u, now);
            evbuffer_add_printf(
                b, ",\"inflight\":%lld,\"connections\":%lld,\"retries_inflight\":%lld,"
                   "\"pending\":%lld,\"panic\":%s,\"panics\":%lld,\"retried\":%lld,"
                   "\"budget_denied\":%lld,\"breaker_tripped\":%lld",
                (long long)rp_shm_counter_get(&ps->totals.inflight),
                (long long)rp_shm_counter_get(&ps->totals.conns),
                (long long)rp_shm_counter_get(&ps->retries.inflight),
                (long long)rp_shm_counter_get(&ps->retries.conns),
                rp_shm_counter_get(&ps->panic) ? "true" : "false",
                (long long)rp_shm_counter_get(&ps->panics),
                (long long)rp_shm_counter_get(&ps->retried),
                (long long)rp_shm_counter_get(&ps->budget_denied),
                (long long)rp_shm_counter_get(&ps->breaker_tripped));
            rp_breaker_status_json(b, u);
        }
        outlier_json(b, u);
        evbuffer_add(b, ",\"peers\":[", 10);
        for (unsigned k = 0; k < set->n; k++) {
            if (k)
                evbuffer_add(b, ",", 1);
            peer_json(b, u, set->peer[k], now);
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]}\n", 3);
    size_t len = evbuffer_get_length(b);
    char *body = rp_arena_alloc(r->arena, len);
    evbuffer_remove(b, body, len);
    evbuffer_free(b);
    rp_http_add_header(r, RP_STR("Cache-Control"), RP_STR("no-store"));
    return rp_http_send_response(r, 200, RP_STR("application/json"), (rp_str_t){body, len});
}

static const char *set_status(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
    if (clcf->content)
        return "is duplicate";
    clcf->content = status_handler;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"upstream_status", RP_CTX_LOCATION, 0, 0, 0, set_status, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_upstream_status_module = {
    .name = "upstream_status",
    .commands = commands,
};
