/*
 * The cost of one balancer decision: rp_upstream_get_peer followed by
 * rp_upstream_free_peer (what every proxied request pays, sockets aside), for each
 * balancing method over pools of 3, 100 and 10,000 peers. Built by `make bench-pick`,
 * not by `make check`; see bench/README.md.
 *
 * Each cell loads a configuration (one upstream, its zone mapped as the master maps
 * it), makes one pick to build the worker's peer set (rings, heaps, tables), then
 * times PICKS picks RUNS times and prints the median in nanoseconds per pick. Hash
 * methods get a different key per pick from a pool of 4096 (ip_hash: 4096 client
 * networks); every attempt ends well with a response head after 1 ms and its last
 * byte after 2 ms, so the latency averages are updated as in real traffic. The picks
 * run inside an event callback, as a worker's do, so the clock they read is the event
 * loop's cached time (a clock read per pick would add its own cost, about 25 ns here,
 * several times per pick).
 *
 *     bench/pick_bench [PICKS [RUNS [METHOD]]]   (defaults 200000, 7, all methods)
 *
 * METHOD keeps the methods whose label contains it ("hash", "round").
 */
#include "core/cycle.h"
#include "core/shm.h"
#include "core/time.h"
#include "http/http.h"
#include "upstream/upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NKEYS 4096

static const struct {
    const char *label, *directives;
} methods[] = {
    {"round robin", ""},
    {"least_conn", "least_conn;"},
    {"random", "random;"},
    {"random two", "random two least_conn;"},
    {"least_time header", "least_time header;"},
    {"ip_hash", "ip_hash;"},
    {"hash", "hash $request_uri;"},
    {"hash consistent", "hash $request_uri consistent;"},
    {"hash consistent, factor 1.25", "hash $request_uri consistent; hash_balance_factor 1.25;"},
};
static const unsigned sizes[] = {3, 100, 10000};

static char keys[NKEYS][24];
static size_t key_len[NKEYS];
static unsigned char nets[NKEYS][3];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Writes the configuration of one cell into dir/rampart.conf. */
static void write_conf(const char *dir, const char *directives, unsigned npeers)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/rampart.conf", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fprintf(f, "http {\n    upstream u {\n        zone bench 32m;\n        %s\n", directives);
    for (unsigned i = 0; i < npeers; i++)
        fprintf(f, "        server 10.%u.%u.%u:80;\n", i >> 16, (i >> 8) & 255, i & 255);
    fprintf(f, "    }\n    server {\n        listen 127.0.0.1:8080;\n"
               "        location / {\n            proxy_pass http://u;\n        }\n"
               "    }\n}\n");
    fclose(f);
}

static rp_upstream_conf_t *find_u(rp_cycle_t *cycle)
{
    rp_upstream_main_conf_t *m = rp_http_main_conf(cycle, &rp_upstream_module);
    for (size_t i = 0; m && i < m->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = RP_ARRAY_AT(&m->upstreams, rp_upstream_conf_t *, i);
        if (strcmp(u->name, "u") == 0)
            return u;
    }
    fprintf(stderr, "pick_bench: no upstream u\n");
    exit(1);
}

static void one_pick(rp_upstream_conf_t *u, unsigned i, int ip)
{
    static const rp_upstream_outcome_t o = {.header_ms = 1, .last_ms = 2};
    rp_upstream_pick_t pk = {0};
    unsigned k = i & (NKEYS - 1);
    if (ip) {
        pk.key = nets[k];
        pk.key_len = 3;
    } else {
        pk.key = (const unsigned char *)keys[k];
        pk.key_len = key_len[k];
    }
    rp_upstream_server_t *s = rp_upstream_get_peer(u, &pk);
    if (s == NULL) {
        fprintf(stderr, "pick_bench: no peer\n");
        exit(1);
    }
    rp_upstream_free_peer(u, s, &o);
    rp_upstream_pick_done(&pk);
}

typedef struct {
    rp_upstream_conf_t *u;
    int ip;
    unsigned picks, runs;
    double *ns;
} timing_t;

/* One cell's timing, inside a callback of the event loop. */
static void time_picks(evutil_socket_t fd, short what, void *arg)
{
    timing_t *t = arg;
    for (unsigned i = 0; i < 1000; i++) /* builds the set; warms the caches */
        one_pick(t->u, i, t->ip);
    for (unsigned r = 0; r < t->runs; r++) {
        double t0 = now_ns();
        for (unsigned i = 0; i < t->picks; i++)
            one_pick(t->u, i, t->ip);
        t->ns[r] = (now_ns() - t0) / t->picks;
    }
}

/* The median ns per pick+free of one method over npeers. */
static double cell(const char *dir, const char *directives, unsigned npeers, unsigned picks,
                   unsigned runs)
{
    write_conf(dir, directives, npeers);
    char err[1024];
    rp_cycle_t *cycle = rp_cycle_load(dir, "rampart.conf", err, sizeof(err));
    if (cycle == NULL || rp_shm_open(cycle, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "pick_bench: %s\n", err);
        exit(1);
    }
    rp_upstream_conf_t *u = find_u(cycle);
    double *ns = malloc(runs * sizeof(*ns));
    timing_t t = {u, u->balancer == &rp_upstream_ip_hash, picks, runs, ns};
    struct timeval now = {0, 0};
    event_base_once(rp_event_base, -1, EV_TIMEOUT, time_picks, &t, &now);
    event_base_dispatch(rp_event_base);
    qsort(ns, runs, sizeof(*ns), cmp_double);
    double median = ns[runs / 2];
    free(ns);
    rp_upstream_peers_free(u);
    rp_cycle_destroy(cycle);
    return median;
}

int main(int argc, char **argv)
{
    unsigned picks = argc > 1 ? (unsigned)atoi(argv[1]) : 200000;
    unsigned runs = argc > 2 ? (unsigned)atoi(argv[2]) : 7;
    const char *only = argc > 3 ? argv[3] : "";
    if (picks == 0 || runs == 0) {
        fprintf(stderr, "usage: pick_bench [PICKS [RUNS [METHOD]]]\n");
        return 2;
    }
    for (unsigned i = 0; i < NKEYS; i++) {
        key_len[i] = (size_t)snprintf(keys[i], sizeof(keys[i]), "/user/%u", i * 7919u);
        nets[i][0] = (unsigned char)(10 + i % 200);
        nets[i][1] = (unsigned char)(i >> 4);
        nets[i][2] = (unsigned char)(i * 37);
    }
    rp_event_base = event_base_new();
    char dir[] = "/tmp/rampart-pick-bench-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    printf("ns per pick + free (median of %u runs of %u picks)\n\n", runs, picks);
    printf("%-30s %10s %10s %10s\n", "method", "3 peers", "100 peers", "10000 peers");
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        if (strstr(methods[m].label, only) == NULL)
            continue;
        printf("%-30s", methods[m].label);
        fflush(stdout);
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            printf(" %10.0f", cell(dir, methods[m].directives, sizes[s], picks, runs));
            fflush(stdout);
        }
        printf("\n");
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/rampart.conf", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
