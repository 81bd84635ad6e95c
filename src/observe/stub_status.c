/*
 * nginx's `stub_status;` and its variables, over the counters of metrics.c:
 *
 *   location = /basic_status { stub_status; }
 *
 * answers, byte for byte in nginx's format (trailing spaces included, as scripts
 * written for nginx split on them):
 *
 *   Active connections: 2
 *   server accepts handled requests
 *    16 16 31
 *   Reading: 0 Writing: 1 Waiting: 1
 *
 * The numbers are the whole node's (every worker's slot of the metrics zone, which a
 * stub_status location declares as a metrics location does). $connections_active,
 * $connections_reading, $connections_writing and $connections_waiting are the same
 * numbers; without a metrics or stub_status location they are this worker's alone.
 * Waiting is active minus reading minus writing (at least 0): an HTTP/2 connection's
 * streams each count as writing, as in nginx.
 */
#include "observe/metrics_int.h"
#include "http/http.h"
#include "http/request.h"
#include "http/variables.h"

#include <stdio.h>
#include <string.h>

/* The four gauges, and the three counters of the second line. */
typedef struct {
    int64_t active, reading, writing, waiting, accepted, handled, requests;
} status_t;

static void read_status(status_t *s)
{
    int64_t v[RP_MG_NWORDS];
    for (unsigned w = 0; w < RP_MG_NWORDS; w++)
        v[w] = rp_metrics_shm == NULL ? __atomic_load_n(&rp_metrics_g[w], __ATOMIC_RELAXED)
               : w >= RP_MG_CONN_ACTIVE && w <= RP_MG_CONN_WRITING
                   ? rp_metrics_gauge(rp_metrics_shm, w)
                   : rp_metrics_sum(rp_metrics_shm, 0, w);
    s->active = v[RP_MG_CONN_ACTIVE];
    s->reading = v[RP_MG_CONN_READING];
    s->writing = v[RP_MG_CONN_WRITING];
    s->waiting = s->active - s->reading - s->writing;
    if (s->waiting < 0)
        s->waiting = 0;
    s->accepted = v[RP_MG_CONN_ACCEPTED];
    s->handled = v[RP_MG_CONN_HANDLED];
    s->requests = v[RP_MG_REQUESTS];
}

static int stub_status_handler(rp_request_t *r)
{
    if (!rp_str_eq(r->method, "GET") && !rp_str_eq(r->method, "HEAD"))
        return rp_http_send_response(r, 405, RP_STR("text/plain"), RP_STR("method not allowed\n"));
    status_t s;
    read_status(&s);
    char *body = rp_arena_alloc(r->arena, 256);
    int n = snprintf(body, 256,
                     "Active connections: %lld \n"
                     "server accepts handled requests\n"
                     " %lld %lld %lld \n"
                     "Reading: %lld Writing: %lld Waiting: %lld \n",
                     (long long)s.active, (long long)s.accepted, (long long)s.handled,
                     (long long)s.requests, (long long)s.reading, (long long)s.writing,
                     (long long)s.waiting);
    rp_http_add_header(r, RP_STR("Cache-Control"), RP_STR("no-cache"));
    return rp_http_send_response(r, 200, RP_STR("text/plain"), (rp_str_t){body, (size_t)n});
}

static const char *set_stub_status(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    (void)conf;
    return rp_metrics_set_content(cf, stub_status_handler);
}

enum { V_ACTIVE, V_READING, V_WRITING, V_WAITING };

static int get_connections(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    status_t s;
    read_status(&s);
    int64_t x = v->data == V_ACTIVE    ? s.active
                : v->data == V_READING ? s.reading
                : v->data == V_WRITING ? s.writing
                                       : s.waiting;
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)x);
    out->data = rp_arena_strndup(r->arena, buf, (size_t)n);
    out->len = (size_t)n;
    return 0;
}

#define NC RP_VAR_NOCACHE
static const rp_var_def_t variables[] = {
    {"connections_active", get_connections, NULL, NC, V_ACTIVE},
    {"connections_reading", get_connections, NULL, NC, V_READING},
    {"connections_writing", get_connections, NULL, NC, V_WRITING},
    {"connections_waiting", get_connections, NULL, NC, V_WAITING},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static const rp_command_t commands[] = {
    {"stub_status", RP_CTX_LOCATION, 0, 0, 1, set_stub_status, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_stub_status_module = {
    .name = "stub_status",
    .commands = commands,
    .preconfiguration = preconfiguration,
};
