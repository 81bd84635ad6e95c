/*
 * The balancers (src/upstream/balancer_*.c) and what the peer table decides for all
 * of them (peers.c): shares that follow the weights, choices that follow the load and
 * the latency in the shared table, hashes that keep a key or client on one peer and
 * move few keys when the pool grows, bounded loads, slow_start's ramp, and the rules
 * every pick keeps (tried peers, backups, max_conns, max_fails and the probe after a
 * rest). No sockets: a configuration is loaded, its zones mapped, and picks made with
 * rp_upstream_get_peer / rp_upstream_free_peer; what other workers would have done is
 * staged by writing the counters of the shared table directly.
 */
#include "core/shm.h"
#include "core/time.h"
#include "upstream/upstream.h"
#include "unit.h"

#include <math.h>

static rp_cycle_t *cycle;

/* A configuration with upstream "u" made of `servers` lines (and any directives). */
static const char *conf_with(const char *upstream_body)
{
    static char *buf;
    free(buf);
    size_t cap = strlen(upstream_body) + 512;
    buf = malloc(cap);
    snprintf(buf, cap,
             "http {\n"
             "    upstream u {\n"
             "%s"
             "    }\n"
             "    server {\n"
             "        listen 127.0.0.1:8080;\n"
             "        location / {\n"
             "            proxy_pass http://u;\n"
             "        }\n"
             "    }\n"
             "}\n",
             upstream_body);
    return buf;
}

/* Loads the upstream block body, maps the zones, and returns upstream "u". */
static rp_upstream_conf_t *load(const char *upstream_body)
{
    cycle = ut_load_ok(conf_with(upstream_body));
    char err[512];
    ck_assert_msg(rp_shm_open(cycle, NULL, err, sizeof(err)) == 0, "%s", err);
    rp_upstream_main_conf_t *m = rp_http_main_conf(cycle, &rp_upstream_module);
    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < m->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = RP_ARRAY_AT(&m->upstreams, rp_upstream_conf_t *, i);
        if (strcmp(u->name, "u") == 0)
            return u;
    }
    ck_abort_msg("no upstream u");
    return NULL;
}

/* Lets go of the loaded configuration: each pool's peer set (this process's), then it. */
static void unload_cycle(rp_cycle_t *c)
{
    rp_upstream_main_conf_t *m = rp_http_main_conf(c, &rp_upstream_module);
    for (size_t i = 0; i < m->upstreams.nelts; i++)
        rp_upstream_peers_free(RP_ARRAY_AT(&m->upstreams, rp_upstream_conf_t *, i));
    rp_cycle_destroy(c);
}

static void unload(void)
{
    unload_cycle(cycle);
    cycle = NULL;
}

/* n servers 10.A.B.C:80 with weight weights[i % nweights] (NULL: weight 1), then extra
 * directives; the text is malloc'd. */
static char *servers(unsigned n, const int *weights, unsigned nweights, const char *params,
                     const char *extra)
{
    size_t cap = (size_t)n * 96 + strlen(extra) + 64;
    char *b = malloc(cap), *p = b;
    for (unsigned i = 0; i < n; i++) {
        int w = weights ? weights[i % nweights] : 1;
        p += sprintf(p, "        server 10.%u.%u.%u:80 weight=%d %s;\n", i >> 16, (i >> 8) & 255,
                     i & 255, w, params);
    }
    p += sprintf(p, "%s", extra);
    return b;
}

static rp_upstream_conf_t *load_n(unsigned n, const int *weights, unsigned nweights,
                                  const char *params, const char *extra)
{
    char *text = servers(n, weights, nweights, params, extra);
    rp_upstream_conf_t *u = load(text);
    free(text);
    return u;
}

/* Check reports every passed assertion to its parent (a write each): the helpers that
 * run per pick test without asserting, and abort only on a failure. */
static rp_upstream_server_t *peer(rp_upstream_conf_t *u, unsigned i)
{
    if (i >= u->servers.nelts)
        ck_abort_msg("no server %u", i);
    return &((rp_upstream_server_t *)u->servers.elts)[i];
}

static unsigned index_of(rp_upstream_conf_t *u, const rp_upstream_server_t *s)
{
    if (s == NULL)
        ck_abort_msg("no peer picked");
    return (unsigned)(s - (rp_upstream_server_t *)u->servers.elts);
}

static const rp_upstream_outcome_t ok = {.header_ms = -1, .last_ms = -1};

/* One pick of a fresh request with key (NULL: none), freed at once (no latency). */
static rp_upstream_server_t *pick_key(rp_upstream_conf_t *u, const char *key, size_t len)
{
    rp_upstream_pick_t pk = {0};
    pk.key = (const unsigned char *)key;
    pk.key_len = len;
    rp_upstream_server_t *s = rp_upstream_get_peer(u, &pk);
    if (s)
        rp_upstream_free_peer(u, s, &ok);
    rp_upstream_pick_done(&pk);
    return s;
}

static rp_upstream_server_t *pick(rp_upstream_conf_t *u)
{
    return pick_key(u, NULL, 0);
}

/* Counts the picks of npicks fresh requests per server into count[]. */
static void tally(rp_upstream_conf_t *u, unsigned npicks, unsigned *count)
{
    memset(count, 0, u->servers.nelts * sizeof(*count));
    for (unsigned i = 0; i < npicks; i++)
        count[index_of(u, pick(u))]++;
}

/* Asserts that count[] over npicks follows the weights of u's servers: within rel of each
 * expected share (relative) plus abs (absolute, for draws that are random). */
static void assert_shares(rp_upstream_conf_t *u, const unsigned *count, unsigned npicks, double rel,
                          double abs)
{
    double total = 0;
    for (size_t i = 0; i < u->servers.nelts; i++)
        total += peer(u, i)->weight;
    for (size_t i = 0; i < u->servers.nelts; i++) {
        double want = peer(u, i)->weight / total, got = (double)count[i] / npicks;
        ck_assert_msg(fabs(got - want) <= want * rel + abs,
                      "server %zu (weight %d): share %.4f, expected %.4f", i, peer(u, i)->weight,
                      got, want);
    }
}

/* Shares summed per weight class (for large sets, where each peer has few picks). */
static void assert_class_shares(rp_upstream_conf_t *u, const unsigned *count, unsigned npicks,
                                double rel, double abs)
{
    double total = 0, want[8] = {0}, got[8] = {0};
    for (size_t i = 0; i < u->servers.nelts; i++) {
        int w = peer(u, i)->weight;
        ck_assert_int_lt(w, 8);
        total += w;
        want[w] += w;
        got[w] += count[i];
    }
    for (int w = 1; w < 8; w++) {
        if (want[w] == 0)
            continue;
        ck_assert_msg(fabs(got[w] / npicks - want[w] / total) <= want[w] / total * rel + abs,
                      "weight %d: share %.4f, expected %.4f", w, got[w] / npicks, want[w] / total);
    }
}

static const int w1234[] = {1, 2, 3, 4};

/* ---- round robin ---- */

START_TEST(test_round_robin_keeps_nginx_smooth_sequence)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 weight=5;\n"
                                 "server 10.0.0.2:80;\n"
                                 "server 10.0.0.3:80;\n");
    const char *want = "aabacaa"
                       "aabacaa";
    for (size_t i = 0; want[i]; i++)
        ck_assert_int_eq('a' + (int)index_of(u, pick(u)), want[i]);
}
END_TEST

START_TEST(test_round_robin_shares_follow_weights_in_a_small_set)
{
    rp_upstream_conf_t *u = load_n(4, w1234, 4, "", "");
    unsigned count[4];
    tally(u, 100000, count);
    assert_shares(u, count, 100000, 0.02, 0);
}
END_TEST

START_TEST(test_round_robin_shares_follow_weights_in_a_large_set)
{
    /* 1,000 peers: the earliest-deadline-first schedule, not a scan */
    rp_upstream_conf_t *u = load_n(1000, w1234, 4, "", "zone big 4m;\n");
    unsigned *count = calloc(1000, sizeof(*count));
    tally(u, 100000, count);
    assert_class_shares(u, count, 100000, 0.02, 0);
    /* and each peer's own share, a deterministic schedule: within a pick or two */
    for (unsigned i = 0; i < 1000; i++)
        ck_assert_msg(abs((int)count[i] - (int)(100000 * peer(u, i)->weight / 2500)) <= 2,
                      "peer %u of weight %d: %u picks", i, peer(u, i)->weight, count[i]);
    free(count);
}
END_TEST

START_TEST(test_round_robin_in_a_large_set_spreads_a_peers_picks_evenly)
{
    /* 100 equal peers: in every stretch of 100 picks each peer comes up once */
    rp_upstream_conf_t *u = load_n(100, NULL, 0, "", "");
    for (int round = 0; round < 20; round++) {
        unsigned seen[100] = {0};
        for (int i = 0; i < 100; i++)
            seen[index_of(u, pick(u))]++;
        for (int i = 0; i < 100; i++)
            ck_assert_uint_eq(seen[i], 1);
    }
}
END_TEST

START_TEST(test_round_robin_in_a_large_set_skips_unusable_peers)
{
    rp_upstream_conf_t *u = load_n(200, NULL, 0, "", "");
    for (unsigned i = 0; i < 200; i += 2)
        rp_shm_counter_set(&peer(u, i)->sh->state, RP_PEER_DOWN);
    unsigned count[200];
    tally(u, 10000, count);
    for (unsigned i = 0; i < 200; i++)
        ck_assert_uint_eq(count[i], i % 2 ? 100 : 0);
}
END_TEST

/* ---- random ---- */

START_TEST(test_random_shares_follow_weights)
{
    rp_upstream_conf_t *u = load_n(4, w1234, 4, "", "random;\n");
    unsigned count[4];
    tally(u, 100000, count);
    assert_shares(u, count, 100000, 0, 0.01);
}
END_TEST

START_TEST(test_random_shares_follow_weights_in_a_large_set)
{
    rp_upstream_conf_t *u = load_n(10000, w1234, 4, "", "zone big 16m;\nrandom;\n");
    unsigned *count = calloc(10000, sizeof(*count));
    tally(u, 100000, count);
    assert_class_shares(u, count, 100000, 0, 0.01);
    free(count);
}
END_TEST

START_TEST(test_random_two_prefers_the_peer_with_fewer_in_flight)
{
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "random two least_conn;\n");
    rp_shm_counter_set(&peer(u, 0)->sh->inflight, 5); /* other workers' requests */
    unsigned count[3];
    tally(u, 3000, count);
    ck_assert_uint_eq(count[0], 0); /* any pair it is drawn in has a lighter peer */
    ck_assert_uint_gt(count[1], 1000);
    ck_assert_uint_gt(count[2], 1000);
}
END_TEST

START_TEST(test_random_two_weighs_in_flight_by_weight)
{
    /* 4 in flight on weight 4 is lighter than 2 on weight 1 */
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 weight=4;\n"
                                 "server 10.0.0.2:80;\n"
                                 "random two;\n");
    rp_shm_counter_set(&peer(u, 0)->sh->inflight, 4);
    rp_shm_counter_set(&peer(u, 1)->sh->inflight, 2);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(index_of(u, pick(u)), 0);
}
END_TEST

/* ---- least_conn ---- */

START_TEST(test_least_conn_shares_follow_weights_under_equal_load)
{
    rp_upstream_conf_t *u = load_n(4, w1234, 4, "", "least_conn;\n");
    unsigned count[4];
    tally(u, 100000, count);
    assert_shares(u, count, 100000, 0.02, 0);
}
END_TEST

START_TEST(test_least_conn_prefers_the_peer_with_fewer_in_flight)
{
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "least_conn;\n");
    rp_shm_counter_set(&peer(u, 0)->sh->inflight, 3);
    rp_shm_counter_set(&peer(u, 1)->sh->inflight, 1);
    rp_shm_counter_set(&peer(u, 2)->sh->inflight, 2);
    ck_assert_uint_eq(index_of(u, pick(u)), 1);
    /* requests this worker keeps in flight count too: 1 then gets 2, then 2 and 1 are tied */
    rp_upstream_pick_t pk = {0};
    ck_assert_uint_eq(index_of(u, rp_upstream_get_peer(u, &pk)), 1);
    rp_upstream_pick_done(&pk);
    unsigned next = index_of(u, pick(u));
    ck_assert(next == 1 || next == 2);
}
END_TEST

START_TEST(test_least_conn_in_a_large_set_prefers_peers_with_fewer_in_flight)
{
    rp_upstream_conf_t *u = load_n(200, NULL, 0, "", "least_conn;\n");
    for (unsigned i = 0; i < 100; i++)
        rp_shm_counter_set(&peer(u, i)->sh->inflight, 10);
    unsigned count[200];
    tally(u, 20000, count);
    unsigned loaded = 0;
    for (unsigned i = 0; i < 100; i++)
        loaded += count[i];
    /* two choices: a loaded peer only when both drawn are loaded, a quarter of the time */
    ck_assert_msg(loaded < 20000 * 0.3, "loaded peers got %u of 20000", loaded);
}
END_TEST

START_TEST(test_least_conn_shares_follow_weights_in_a_large_set)
{
    rp_upstream_conf_t *u = load_n(1000, w1234, 4, "", "zone big 4m;\nleast_conn;\n");
    unsigned *count = calloc(1000, sizeof(*count));
    tally(u, 100000, count);
    assert_class_shares(u, count, 100000, 0, 0.01);
    free(count);
}
END_TEST

/* ---- least_time ---- */

static void set_latency(rp_upstream_server_t *s, double ms, int64_t stamp)
{
    rp_shm_double_set(&s->sh->ewma_header, ms);
    rp_shm_double_set(&s->sh->ewma_last, ms);
    rp_shm_counter_set(&s->sh->ewma_stamp, stamp);
}

START_TEST(test_least_time_steers_away_from_a_slow_peer)
{
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "least_time header;\n");
    int64_t now = rp_time_ms();
    set_latency(peer(u, 0), 500, now);
    set_latency(peer(u, 1), 10, now);
    set_latency(peer(u, 2), 12, now);
    unsigned count[3];
    tally(u, 3000, count);
    ck_assert_uint_eq(count[0], 0);
    ck_assert_uint_gt(count[1], count[2]); /* drawn together, the faster wins */
}
END_TEST

START_TEST(test_least_time_tries_a_slow_peer_again_once_its_latency_decays)
{
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "least_time header;\n");
    int64_t now = rp_time_ms();
    /* slow a minute ago and unpicked since: 500 ms decays to about 1 ms (tau 10 s) */
    set_latency(peer(u, 0), 500, now - 60000);
    set_latency(peer(u, 1), 10, now);
    set_latency(peer(u, 2), 10, now);
    ck_assert_double_lt(rp_upstream_peer_latency(peer(u, 0), 0, now), 2);
    unsigned count[3];
    tally(u, 3000, count);
    ck_assert_uint_gt(count[0], 1500); /* it wins every pair it is drawn in */
    /* its next response is slow again: avoided again at once (peak EWMA) */
    rp_upstream_pick_t pk = {0};
    rp_upstream_server_t *s;
    while ((s = rp_upstream_get_peer(u, &pk)) != peer(u, 0)) {
        rp_upstream_free_peer(u, s, &ok);
        rp_upstream_pick_done(&pk);
        memset(&pk, 0, sizeof(pk));
    }
    rp_upstream_outcome_t slow = {.header_ms = 400, .last_ms = 450};
    rp_upstream_free_peer(u, s, &slow);
    rp_upstream_pick_done(&pk);
    tally(u, 3000, count);
    ck_assert_uint_eq(count[0], 0);
}
END_TEST

START_TEST(test_least_time_counts_requests_in_flight)
{
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "least_time last_byte;\n");
    int64_t now = rp_time_ms();
    for (unsigned i = 0; i < 3; i++)
        set_latency(peer(u, i), 20, now);
    rp_shm_counter_set(&peer(u, 2)->sh->inflight, 10);
    unsigned count[3];
    tally(u, 3000, count);
    ck_assert_uint_eq(count[2], 0);
    ck_assert_uint_gt(count[0], 1000);
    ck_assert_uint_gt(count[1], 1000);
}
END_TEST

START_TEST(test_least_time_measures_the_response_head_or_the_last_byte)
{
    /* peer 0 answers its head fast and its body slowly */
    const char *measure[] = {"least_time header;\n", "least_time last_byte inflight;\n"};
    for (int m = 0; m < 2; m++) {
        rp_upstream_conf_t *u = load_n(2, NULL, 0, "", measure[m]);
        int64_t now = rp_time_ms();
        set_latency(peer(u, 0), 5, now);
        rp_shm_double_set(&peer(u, 0)->sh->ewma_last, 300);
        set_latency(peer(u, 1), 50, now);
        unsigned count[2];
        tally(u, 100, count);
        ck_assert_uint_eq(count[m == 0 ? 0 : 1], 100);
        unload();
    }
}
END_TEST

/* ---- ip_hash ---- */

/* nginx's ip_hash by its definition, to compare with */
static unsigned nginx_ip_hash(const unsigned char *a, size_t len, unsigned total_weight)
{
    unsigned h = 89;
    for (size_t i = 0; i < len; i++)
        h = (h * 113 + a[i]) % 6271;
    return h % total_weight;
}

START_TEST(test_ip_hash_sends_a_client_to_the_peer_nginx_would)
{
    rp_upstream_conf_t *u = load_n(5, NULL, 0, "", "ip_hash;\n");
    for (unsigned i = 0; i < 1000; i++) {
        unsigned char a[4] = {10, (unsigned char)(i * 7), (unsigned char)(i * 13), 1};
        rp_upstream_server_t *s = pick_key(u, (const char *)a, 3);
        ck_assert_uint_eq(index_of(u, s), nginx_ip_hash(a, 3, 5));
        ck_assert_ptr_eq(pick_key(u, (const char *)a, 3), s);
    }
}
END_TEST

START_TEST(test_ip_hash_spreads_clients_by_weight)
{
    rp_upstream_conf_t *u = load_n(4, w1234, 4, "", "ip_hash;\n");
    unsigned count[4] = {0};
    for (unsigned i = 0; i < 20000; i++) {
        unsigned char a[3] = {(unsigned char)(i >> 8), (unsigned char)i, (unsigned char)(i * 31)};
        count[index_of(u, pick_key(u, (const char *)a, 3))]++;
    }
    assert_shares(u, count, 20000, 0, 0.03);
}
END_TEST

START_TEST(test_ip_hash_rehashes_past_an_unusable_peer)
{
    rp_upstream_conf_t *u = load_n(5, NULL, 0, "", "ip_hash;\n");
    const unsigned char a[3] = {192, 168, 7};
    rp_upstream_server_t *home = pick_key(u, (const char *)a, 3);
    rp_shm_counter_set(&home->sh->state, RP_PEER_DOWN);
    rp_upstream_server_t *away = pick_key(u, (const char *)a, 3);
    ck_assert_ptr_ne(away, home);
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_eq(pick_key(u, (const char *)a, 3), away); /* still sticky */
    rp_shm_counter_set(&home->sh->state, RP_PEER_USABLE);
    ck_assert_ptr_eq(pick_key(u, (const char *)a, 3), home);
}
END_TEST

/* ---- hash ---- */

START_TEST(test_hash_sends_a_key_to_the_same_peer_and_spreads_keys)
{
    rp_upstream_conf_t *u = load_n(4, NULL, 0, "", "hash $request_uri;\n");
    unsigned count[4] = {0};
    for (unsigned i = 0; i < 10000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "/item/%u", i);
        rp_upstream_server_t *s = pick_key(u, key, (size_t)n);
        ck_assert_ptr_eq(pick_key(u, key, (size_t)n), s);
        count[index_of(u, s)]++;
    }
    assert_shares(u, count, 10000, 0, 0.03);
}
END_TEST

START_TEST(test_hash_lands_where_nginx_does)
{
    /* nginx: ((crc32(KEY) >> 16) & 0x7fff) % total weight; crc32("/a") = 0x69707b5c */
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "hash $uri;\n");
    ck_assert_uint_eq(index_of(u, pick_key(u, "/a", 2)), ((0x69707b5cu >> 16) & 0x7fff) % 3);
}
END_TEST

START_TEST(test_hash_rehashes_past_a_tried_peer)
{
    rp_upstream_conf_t *u = load_n(4, NULL, 0, "", "hash $request_uri;\n");
    rp_upstream_pick_t pk = {0};
    pk.key = (const unsigned char *)"/k";
    pk.key_len = 2;
    rp_upstream_server_t *seen[4];
    for (int i = 0; i < 4; i++) {
        seen[i] = rp_upstream_get_peer(u, &pk);
        ck_assert_ptr_nonnull(seen[i]);
        for (int j = 0; j < i; j++)
            ck_assert_ptr_ne(seen[i], seen[j]);
    }
    ck_assert_ptr_null(rp_upstream_get_peer(u, &pk)); /* all four tried */
    for (int i = 0; i < 4; i++)
        rp_upstream_free_peer(u, seen[i], &ok);
    rp_upstream_pick_done(&pk);
}
END_TEST

/* ---- consistent hash ---- */

static void map_keys(rp_upstream_conf_t *u, unsigned nkeys, const char **owner)
{
    for (unsigned i = 0; i < nkeys; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "user-%u", i);
        owner[i] = pick_key(u, key, (size_t)n)->name;
    }
}

START_TEST(test_consistent_hash_moves_about_one_nth_of_the_keys_when_a_peer_joins)
{
    enum { NKEYS = 10000 };
    const char **before = calloc(NKEYS, sizeof(*before)), **after = calloc(NKEYS, sizeof(*after));
    rp_upstream_conf_t *u10 = load_n(10, NULL, 0, "", "hash $arg_user consistent;\n");
    map_keys(u10, NKEYS, before);
    rp_cycle_t *first = cycle;
    rp_upstream_conf_t *u11 = load_n(11, NULL, 0, "", "hash $arg_user consistent;\n");
    map_keys(u11, NKEYS, after);
    const char *newcomer = peer(u11, 10)->name;
    unsigned moved = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        if (strcmp(before[i], after[i]) == 0)
            continue;
        moved++;
        ck_assert_str_eq(after[i], newcomer); /* a key moves only to the new peer */
    }
    ck_assert_msg(moved <= NKEYS * 1.5 / 11 && moved >= NKEYS * 0.5 / 11, "%u of %d keys moved",
                  moved, NKEYS);
    unload_cycle(first);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_consistent_hash_spreads_keys_by_weight)
{
    rp_upstream_conf_t *u = load_n(4, w1234, 4, "", "hash $arg_user consistent;\n");
    unsigned count[4] = {0};
    for (unsigned i = 0; i < 20000; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "user-%u", i);
        count[index_of(u, pick_key(u, key, (size_t)n))]++;
    }
    assert_shares(u, count, 20000, 0.15, 0);
}
END_TEST

START_TEST(test_consistent_hash_hands_the_keys_of_an_unusable_peer_on_and_takes_them_back)
{
    enum { NKEYS = 2000 };
    rp_upstream_conf_t *u = load_n(5, NULL, 0, "", "hash $arg_user consistent;\n");
    const char **before = calloc(NKEYS, sizeof(*before)), **during = calloc(NKEYS, sizeof(*during));
    map_keys(u, NKEYS, before);
    rp_upstream_server_t *out = peer(u, 2);
    rp_shm_counter_set(&out->sh->state, RP_PEER_DOWN);
    map_keys(u, NKEYS, during);
    unsigned handed = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        ck_assert_str_ne(during[i], out->name);
        if (strcmp(before[i], out->name) == 0)
            handed++;
        else
            ck_assert_str_eq(during[i], before[i]); /* only its keys moved */
    }
    ck_assert_uint_gt(handed, NKEYS / 10);
    rp_shm_counter_set(&out->sh->state, RP_PEER_USABLE);
    map_keys(u, NKEYS, during);
    for (unsigned i = 0; i < NKEYS; i++)
        ck_assert_str_eq(during[i], before[i]);
    free(before);
    free(during);
}
END_TEST

START_TEST(test_consistent_hash_of_10000_peers_moves_few_keys_when_one_joins)
{
    enum { NKEYS = 10000 };
    const char **before = calloc(NKEYS, sizeof(*before)), **after = calloc(NKEYS, sizeof(*after));
    rp_upstream_conf_t *u =
        load_n(10000, NULL, 0, "", "zone big 16m;\nhash $arg_user consistent;\n");
    map_keys(u, NKEYS, before);
    char **keep = calloc(NKEYS, sizeof(*keep));
    for (unsigned i = 0; i < NKEYS; i++)
        keep[i] = strdup(before[i]); /* the first configuration's names go with it */
    unload();
    u = load_n(10001, NULL, 0, "", "zone big 16m;\nhash $arg_user consistent;\n");
    map_keys(u, NKEYS, after);
    unsigned moved = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        moved += strcmp(keep[i], after[i]) != 0;
        free(keep[i]);
    }
    ck_assert_msg(moved <= 10, "%u of %d keys moved", moved, NKEYS); /* about 1 expected */
    free(keep);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_hash_balance_factor_keeps_every_peer_within_its_bound)
{
    const double f = 1.25;
    rp_upstream_conf_t *u =
        load_n(10, NULL, 0, "", "hash $arg_user consistent;\nhash_balance_factor 1.25;\n");
    /* hot keys: 20 distinct keys, each asked 100 times, none finished */
    enum { N = 2000 };
    rp_upstream_pick_t *pk = calloc(N, sizeof(*pk));
    char(*keys)[16] = calloc(N, sizeof(*keys));
    for (unsigned i = 0; i < N; i++) {
        int64_t total = rp_shm_counter_get(&u->totals->inflight);
        int n = snprintf(keys[i], sizeof(keys[i]), "hot-%u", i % 20);
        pk[i].key = (const unsigned char *)keys[i];
        pk[i].key_len = (size_t)n;
        rp_upstream_server_t *s = rp_upstream_get_peer(u, &pk[i]);
        ck_assert_ptr_nonnull(s);
        double bound = ceil(f * (double)(total + 1) / 10);
        ck_assert_msg(rp_shm_counter_get(&s->sh->inflight) <= bound,
                      "pick %u: %s has %lld in flight, bound %.0f", i, s->name,
                      (long long)rp_shm_counter_get(&s->sh->inflight), bound);
    }
    ck_assert_int_eq(rp_shm_counter_get(&u->totals->inflight), N);
    for (unsigned i = 0; i < N; i++) {
        rp_upstream_free_peer(u, pk[i].tried[0], &ok);
        rp_upstream_pick_done(&pk[i]);
    }
    ck_assert_int_eq(rp_shm_counter_get(&u->totals->inflight), 0);
    free(pk);
    free(keys);
}
END_TEST

START_TEST(test_hash_balance_factor_keeps_keys_home_while_loads_are_even)
{
    rp_upstream_conf_t *plain = load_n(10, NULL, 0, "", "hash $arg_user consistent;\n");
    const char *home[200];
    map_keys(plain, 200, home);
    rp_cycle_t *first = cycle;
    rp_upstream_conf_t *u =
        load_n(10, NULL, 0, "", "hash $arg_user consistent;\nhash_balance_factor 1.5;\n");
    const char *bounded[200];
    map_keys(u, 200, bounded); /* each finished at once: no load builds up */
    for (unsigned i = 0; i < 200; i++)
        ck_assert_str_eq(bounded[i], home[i]);
    unload_cycle(first);
}
END_TEST

/* ---- slow_start ---- */

/* The share of peer 0 (slow_start=10s, ramping since `ago` ms) among npeers equal ones. */
static double ramp_share(const char *balancer, int64_t ago, unsigned npeers)
{
    char extra[128];
    snprintf(extra, sizeof(extra), "zone big 4m;\n%s", balancer);
    char *rest = servers(npeers - 1, NULL, 0, "", extra);
    char *text = malloc(strlen(rest) + 64);
    sprintf(text, "server 10.255.0.1:80 slow_start=10s;\n%s", rest);
    rp_upstream_conf_t *u = load(text);
    free(rest);
    free(text);
    ck_assert_int_eq(peer(u, 0)->slow_start, 10000);
    unsigned n = npeers > 2 ? 300000 : 20000, got = 0;
    for (unsigned i = 0; i < n; i++) {
        if (i % 1000 == 0) /* the clock runs on: hold the ramp where it is measured */
            rp_shm_counter_set(&peer(u, 0)->sh->usable_since, rp_time_ms() - ago);
        char key[32];
        int len = snprintf(key, sizeof(key), "k%u", i);
        got += pick_key(u, key, (size_t)len) == peer(u, 0);
    }
    unload();
    return (double)got / n;
}

/*
 * The ramp: the weight grows from a tenth to the whole over 10 s. Balancers that weigh
 * peers against each other give the peer w / (w + npeers - 1); hashes, which keep the
 * keys of the others where they are, give it w times its share of keys, w / npeers.
 */
static void assert_ramp(const char *balancer, unsigned npeers, int hashed, double tol)
{
    double last = 0;
    for (int64_t ago = 1000; ago <= 9000; ago += 4000) {
        double w = 0.1 + 0.9 * ago / 10000.0;
        double want = hashed ? w / npeers : w / (w + npeers - 1);
        double got = ramp_share(balancer, ago, npeers);
        ck_assert_msg(fabs(got - want) <= want * tol,
                      "%s %lld ms into the ramp: share %.4f, "
                      "expected %.4f",
                      balancer, (long long)ago, got, want);
        ck_assert_double_gt(got, last);
        last = got;
    }
}

START_TEST(test_slow_start_ramps_a_peers_share_under_round_robin)
{
    assert_ramp("", 2, 0, 0.05);
}
END_TEST

START_TEST(test_slow_start_ramps_a_peers_share_in_a_large_round_robin_set)
{
    assert_ramp("", 100, 0, 0.05);
}
END_TEST

START_TEST(test_slow_start_ramps_a_peers_share_under_random_and_least_conn)
{
    assert_ramp("random;\n", 2, 0, 0.1);
    assert_ramp("least_conn;\n", 2, 0, 0.05);
}
END_TEST

START_TEST(test_slow_start_ramps_a_peers_share_of_keys_under_hashes)
{
    assert_ramp("hash $arg_k;\n", 4, 1, 0.25);
    assert_ramp("hash $arg_k consistent;\n", 4, 1, 0.25);
}
END_TEST

/* ---- what every pick keeps ---- */

static const char *all_balancers[] = {
    "",
    "least_conn;\n",
    "random;\n",
    "random two;\n",
    "least_time header;\n",
    "ip_hash;\n",
    "hash $request_uri;\n",
    "hash $request_uri consistent;\n",
    "hash $request_uri consistent;\nhash_balance_factor 1.25;\n",
};
#define NBALANCERS (sizeof(all_balancers) / sizeof(all_balancers[0]))

START_TEST(test_no_balancer_picks_a_tried_peer_while_another_is_usable)
{
    for (size_t b = 0; b < NBALANCERS; b++) {
        for (unsigned n = 3; n <= 100; n += 97) {
            rp_upstream_conf_t *u = load_n(n, NULL, 0, "", all_balancers[b]);
            for (int trial = 0; trial < (n > 64 ? 3 : 20); trial++) {
                rp_upstream_pick_t pk = {0};
                pk.key = (const unsigned char *)"k";
                pk.key_len = 1;
                for (unsigned i = 0; i < n; i++) {
                    rp_upstream_server_t *s = rp_upstream_get_peer(u, &pk);
                    if (s == NULL)
                        ck_abort_msg("%s: no peer at try %u of %u", all_balancers[b], i, n);
                    for (unsigned j = 0; j < i; j++)
                        if (pk.tried[j] == s)
                            ck_abort_msg("%s: tried peer picked again", all_balancers[b]);
                }
                ck_assert_ptr_null(rp_upstream_get_peer(u, &pk));
                for (unsigned i = 0; i < n; i++)
                    rp_upstream_free_peer(u, pk.tried[i], &ok);
                rp_upstream_pick_done(&pk);
            }
            unload();
        }
    }
}
END_TEST

START_TEST(test_backups_take_requests_only_when_no_primary_is_usable)
{
    for (size_t b = 0; b < NBALANCERS; b++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "server 10.0.0.1:80;\nserver 10.0.0.2:80;\n"
                 "server 10.0.1.1:80 backup;\nserver 10.0.1.2:80 backup;\n%s",
                 all_balancers[b]);
        rp_upstream_conf_t *u = load(text);
        for (int i = 0; i < 200; i++) {
            char key[16];
            int n = snprintf(key, sizeof(key), "%d", i);
            ck_assert_msg(!pick_key(u, key, (size_t)n)->backup, "%s", all_balancers[b]);
        }
        rp_shm_counter_set(&peer(u, 0)->sh->state, RP_PEER_DOWN);
        rp_shm_counter_set(&peer(u, 1)->sh->inflight, 0);
        peer(u, 1)->max_conns = 1;
        rp_shm_counter_set(&peer(u, 1)->sh->inflight, 1); /* at max_conns in another worker */
        unsigned seen[4] = {0};
        for (int i = 0; i < 200; i++) {
            char key[16];
            int n = snprintf(key, sizeof(key), "%d", i);
            seen[index_of(u, pick_key(u, key, (size_t)n))]++;
        }
        ck_assert_msg(seen[0] == 0 && seen[1] == 0 && seen[2] > 0 && seen[3] > 0, "%s: %u %u %u %u",
                      all_balancers[b], seen[0], seen[1], seen[2], seen[3]);
        rp_shm_counter_set(&peer(u, 1)->sh->inflight, 0);
        for (int i = 0; i < 50; i++)
            ck_assert_uint_eq(index_of(u, pick(u)), 1);
        unload();
    }
}
END_TEST

START_TEST(test_max_conns_counts_requests_in_flight_in_every_worker)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 max_conns=2;\nserver 10.0.0.2:80;\n");
    rp_upstream_server_t *a = peer(u, 0);
    rp_upstream_pick_t pk = {0};
    ck_assert_ptr_eq(rp_upstream_get_peer(u, &pk), a); /* one of ours in flight on a */
    ck_assert_int_eq(rp_shm_counter_get(&a->sh->inflight), 1);
    rp_shm_counter_add(&a->sh->inflight, 1); /* and one of another worker's */
    for (int i = 0; i < 20; i++)
        ck_assert_uint_eq(index_of(u, pick(u)), 1);
    rp_shm_counter_add(&a->sh->inflight, -1); /* the other worker's ended */
    unsigned count[2];
    tally(u, 20, count);
    ck_assert_uint_gt(count[0], 0);
}
END_TEST

static const rp_upstream_outcome_t failed = {.failed = 1, .header_ms = -1, .last_ms = -1};

/* Picks until s comes up and ends that attempt with o; other picks end well. */
static void attempt_on(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                       const rp_upstream_outcome_t *o)
{
    for (int i = 0; i < 100; i++) {
        rp_upstream_pick_t pk = {0};
        rp_upstream_server_t *got = rp_upstream_get_peer(u, &pk);
        rp_upstream_free_peer(u, got, got == s ? o : &ok);
        rp_upstream_pick_done(&pk);
        if (got == s)
            return;
    }
    ck_abort_msg("%s never picked", s->name);
}

START_TEST(test_max_fails_rests_a_peer_for_fail_timeout)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 max_fails=2 fail_timeout=30s;\n"
                                 "server 10.0.0.2:80;\n");
    rp_upstream_server_t *a = peer(u, 0);
    attempt_on(u, a, &failed);
    /* one failure of two: still usable (a success now would clear the count) */
    ck_assert(rp_upstream_peer_usable(u, a, rp_time_ms()));
    attempt_on(u, a, &failed);
    unsigned count[2];
    tally(u, 50, count);
    ck_assert_uint_eq(count[0], 0);
    ck_assert_int_eq(rp_shm_counter_get(&a->sh->fails), 2);
}
END_TEST

START_TEST(test_after_its_rest_a_peer_gets_one_probe_and_a_success_restores_it)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 max_fails=1 fail_timeout=10s;\n"
                                 "server 10.0.0.2:80;\nserver 10.0.0.3:80;\n");
    rp_upstream_server_t *a = peer(u, 0);
    attempt_on(u, a, &failed);
    /* the rest ended a moment ago */
    rp_shm_counter_set(&a->sh->fail_start, rp_time_ms() - 10001);
    rp_upstream_pick_t probe = {0};
    rp_upstream_server_t *s;
    while ((s = rp_upstream_get_peer(u, &probe)) != a) {
        rp_upstream_free_peer(u, s, &ok);
        rp_upstream_pick_done(&probe);
        memset(&probe, 0, sizeof(probe));
    }
    /* while the probe is out, a is resting to every other pick (of any worker) */
    unsigned count[3];
    tally(u, 100, count);
    ck_assert_uint_eq(count[0], 0);
    rp_upstream_free_peer(u, a, &ok);
    rp_upstream_pick_done(&probe);
    ck_assert_int_eq(rp_shm_counter_get(&a->sh->fails), 0);
    tally(u, 99, count);
    ck_assert_uint_ge(count[0], 32); /* its share again */
}
END_TEST

START_TEST(test_a_failed_probe_rests_the_peer_again)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 max_fails=1 fail_timeout=10s;\n"
                                 "server 10.0.0.2:80;\n");
    rp_upstream_server_t *a = peer(u, 0);
    attempt_on(u, a, &failed);
    rp_shm_counter_set(&a->sh->fail_start, rp_time_ms() - 10001);
    attempt_on(u, a, &failed); /* the probe */
    unsigned count[2];
    tally(u, 50, count);
    ck_assert_uint_eq(count[0], 0);
    ck_assert_int_ge(rp_shm_counter_get(&a->sh->fail_start), rp_time_ms() - 1000);
}
END_TEST

START_TEST(test_the_only_peer_never_rests)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80 max_fails=1;\n");
    for (int i = 0; i < 5; i++)
        attempt_on(u, peer(u, 0), &failed);
    ck_assert_ptr_eq(pick(u), peer(u, 0));
}
END_TEST

START_TEST(test_the_pool_counts_its_requests_in_flight)
{
    rp_upstream_conf_t *u = load_n(3, NULL, 0, "", "");
    rp_upstream_pick_t pk[5] = {{0}};
    for (int i = 0; i < 5; i++)
        rp_upstream_get_peer(u, &pk[i]);
    ck_assert_int_eq(rp_shm_counter_get(&u->totals->inflight), 5);
    for (int i = 0; i < 5; i++) {
        rp_upstream_free_peer(u, pk[i].tried[0], &ok);
        rp_upstream_pick_done(&pk[i]);
    }
    ck_assert_int_eq(rp_shm_counter_get(&u->totals->inflight), 0);
}
END_TEST

/* ---- the directives ---- */

START_TEST(test_balancing_directives_follow_nginx_grammar)
{
    static const struct {
        const char *directive;
        unsigned line;
        const char *error;
    } cases[] = {
        {"random three;", 4, "\"random\": invalid parameter \"three\""},
        {"random two most;", 4, "\"random\": invalid parameter \"most\""},
        {"least_time first_byte;", 4, "\"least_time\": invalid parameter \"first_byte\""},
        {"least_time header all;", 4, "\"least_time\": invalid parameter \"all\""},
        {"least_time;", 4, "\"least_time\": takes 1 to 2 arguments, got 0"},
        {"hash $uri ring;", 4, "\"hash\": invalid parameter \"ring\""},
        {"hash $nosuchvar;", 4, "\"hash\": unknown variable \"$nosuchvar\""},
        {"ip_hash;\n        least_conn;", 5,
         "\"least_conn\": load balancing method redefined (was ip_hash)"},
        {"hash $uri;\n        random;", 5,
         "\"random\": load balancing method redefined (was hash)"},
        {"hash_balance_factor 1.25;", 4,
         "\"hash_balance_factor\": needs \"hash ... consistent\" in upstream \"u\""},
        {"hash $uri;\n        hash_balance_factor 1.25;", 5,
         "\"hash_balance_factor\": needs \"hash ... consistent\", not \"hash\""},
        {"hash_balance_factor 0.9;", 4,
         "\"hash_balance_factor\": invalid value \"0.9\" (a number from 1 to 100, such as 1.25)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char body[256], want[256];
        snprintf(body, sizeof(body), "        server 10.0.0.1:80;\n        %s\n",
                 cases[i].directive);
        snprintf(want, sizeof(want), "@/rampart.conf:%u: %s", cases[i].line, cases[i].error);
        ut_expect_error(conf_with(body), want);
    }
    ut_expect_error(conf_with("        hash_balance_factor 1.25;\n"
                              "        server 10.0.0.1:80;\n"
                              "        hash $uri;\n"),
                    "@/rampart.conf:5: \"hash\": \"hash_balance_factor\" (@/rampart.conf:3) "
                    "needs \"hash ... consistent\"");
}
END_TEST

START_TEST(test_balancing_directives_set_the_upstreams_method)
{
    rp_upstream_conf_t *u = load("server 10.0.0.1:80;\nleast_time last_byte inflight;\n");
    ck_assert_ptr_eq(u->balancer, &rp_upstream_least_time);
    ck_assert_uint_eq(u->lt_measure, RP_LT_LAST_BYTE);
    ck_assert_uint_eq(u->lt_inflight, 1);
    unload();
    u = load("server 10.0.0.1:80;\nrandom two least_conn;\n");
    ck_assert_ptr_eq(u->balancer, &rp_upstream_random);
    ck_assert_uint_eq(u->random_two, 1);
    unload();
    u = load("hash_balance_factor 1.5;\nserver 10.0.0.1:80;\nhash $uri$arg_x consistent;\n");
    ck_assert(u->hash_consistent);
    ck_assert_double_eq(u->hash_balance_factor, 1.5);
    unload();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("balancers");
    TCase *tc = tcase_create("balancers");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_round_robin_keeps_nginx_smooth_sequence);
    tcase_add_test(tc, test_round_robin_shares_follow_weights_in_a_small_set);
    tcase_add_test(tc, test_round_robin_shares_follow_weights_in_a_large_set);
    tcase_add_test(tc, test_round_robin_in_a_large_set_spreads_a_peers_picks_evenly);
    tcase_add_test(tc, test_round_robin_in_a_large_set_skips_unusable_peers);
    tcase_add_test(tc, test_random_shares_follow_weights);
    tcase_add_test(tc, test_random_shares_follow_weights_in_a_large_set);
    tcase_add_test(tc, test_random_two_prefers_the_peer_with_fewer_in_flight);
    tcase_add_test(tc, test_random_two_weighs_in_flight_by_weight);
    tcase_add_test(tc, test_least_conn_shares_follow_weights_under_equal_load);
    tcase_add_test(tc, test_least_conn_prefers_the_peer_with_fewer_in_flight);
    tcase_add_test(tc, test_least_conn_in_a_large_set_prefers_peers_with_fewer_in_flight);
    tcase_add_test(tc, test_least_conn_shares_follow_weights_in_a_large_set);
    tcase_add_test(tc, test_least_time_steers_away_from_a_slow_peer);
    tcase_add_test(tc, test_least_time_tries_a_slow_peer_again_once_its_latency_decays);
    tcase_add_test(tc, test_least_time_counts_requests_in_flight);
    tcase_add_test(tc, test_least_time_measures_the_response_head_or_the_last_byte);
    tcase_add_test(tc, test_ip_hash_sends_a_client_to_the_peer_nginx_would);
    tcase_add_test(tc, test_ip_hash_spreads_clients_by_weight);
    tcase_add_test(tc, test_ip_hash_rehashes_past_an_unusable_peer);
    tcase_add_test(tc, test_hash_sends_a_key_to_the_same_peer_and_spreads_keys);
    tcase_add_test(tc, test_hash_lands_where_nginx_does);
    tcase_add_test(tc, test_hash_rehashes_past_a_tried_peer);
    tcase_add_test(tc, test_consistent_hash_moves_about_one_nth_of_the_keys_when_a_peer_joins);
    tcase_add_test(tc, test_consistent_hash_spreads_keys_by_weight);
    tcase_add_test(tc,
                   test_consistent_hash_hands_the_keys_of_an_unusable_peer_on_and_takes_them_back);
    tcase_add_test(tc, test_consistent_hash_of_10000_peers_moves_few_keys_when_one_joins);
    tcase_add_test(tc, test_hash_balance_factor_keeps_every_peer_within_its_bound);
    tcase_add_test(tc, test_hash_balance_factor_keeps_keys_home_while_loads_are_even);
    tcase_add_test(tc, test_slow_start_ramps_a_peers_share_under_round_robin);
    tcase_add_test(tc, test_slow_start_ramps_a_peers_share_in_a_large_round_robin_set);
    tcase_add_test(tc, test_slow_start_ramps_a_peers_share_under_random_and_least_conn);
    tcase_add_test(tc, test_slow_start_ramps_a_peers_share_of_keys_under_hashes);
    tcase_add_test(tc, test_no_balancer_picks_a_tried_peer_while_another_is_usable);
    tcase_add_test(tc, test_backups_take_requests_only_when_no_primary_is_usable);
    tcase_add_test(tc, test_max_conns_counts_requests_in_flight_in_every_worker);
    tcase_add_test(tc, test_max_fails_rests_a_peer_for_fail_timeout);
    tcase_add_test(tc, test_after_its_rest_a_peer_gets_one_probe_and_a_success_restores_it);
    tcase_add_test(tc, test_a_failed_probe_rests_the_peer_again);
    tcase_add_test(tc, test_the_only_peer_never_rests);
    tcase_add_test(tc, test_the_pool_counts_its_requests_in_flight);
    tcase_add_test(tc, test_balancing_directives_follow_nginx_grammar);
    tcase_add_test(tc, test_balancing_directives_set_the_upstreams_method);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
