/*
 * The peer table's side of run-time resolution (src/upstream/peers.c): a DNS
 * answer published for a `resolve` line becomes one peer per address in a worker's
 * set; only a change moves the pool's generation; an address that stays keeps its
 * peer object and its shared entry; a dropped peer stays allocated while an attempt
 * or a connection still uses it (ASan reports the use after free this guards
 * against); a reload keeps the addresses of a line naming the same host, not of one
 * naming another; and what no configuration has used for two reloads is deleted.
 * Plain server names give one peer per address.
 */
#include "core/shm.h"
#include "core/time.h"
#include "upstream/upstream.h"
#include "unit.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <sys/socket.h>

static rp_cycle_t *load_open(const char *host, rp_cycle_t *prev)
{
    char text[512];
    snprintf(text, sizeof(text),
             "http {\n"
             "    resolver 127.0.0.1;\n"
             "    upstream pool {\n"
             "        server %s:8080 resolve;\n"
             "        keepalive 4;\n"
             "    }\n"
             "}\n",
             host);
    rp_cycle_t *cycle = ut_load_ok(text);
    char err[512];
    ck_assert_msg(rp_shm_open(cycle, prev, err, sizeof(err)) == 0, "%s", err);
    return cycle;
}

static rp_upstream_conf_t *pool(rp_cycle_t *cycle)
{
    rp_upstream_main_conf_t *m = rp_http_main_conf(cycle, &rp_upstream_module);
    ck_assert_ptr_nonnull(m);
    for (size_t i = 0; i < m->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = RP_ARRAY_AT(&m->upstreams, rp_upstream_conf_t *, i);
        if (strcmp(u->name, "pool") == 0)
            return u;
    }
    ck_abort_msg("no upstream pool");
    return NULL;
}

/* Publishes the IPv4 addresses of the NULL-ended list for the pool's line 0. */
static void publish(rp_upstream_conf_t *u, const char *const *ips)
{
    struct sockaddr_storage sa[8];
    socklen_t lens[8];
    unsigned n = 0;
    for (; ips[n]; n++) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sa[n];
        memset(&sa[n], 0, sizeof(sa[n]));
        s4->sin_family = AF_INET;
        s4->sin_port = htons(8080);
        ck_assert_int_eq(inet_pton(AF_INET, ips[n], &s4->sin_addr), 1);
        lens[n] = sizeof(*s4);
    }
    ck_assert_int_eq(rp_upstream_publish_addrs(u, 0, sa, lens, n), 0);
}

static rp_upstream_server_t *find(rp_upstream_peers_t *set, const char *name)
{
    for (unsigned i = 0; i < set->n; i++)
        if (strcmp(set->peer[i]->name, name) == 0)
            return set->peer[i];
    return NULL;
}

START_TEST(test_a_resolve_line_starts_without_peers)
{
    rp_cycle_t *c = load_open("backend.test", NULL);
    rp_upstream_conf_t *u = pool(c);
    ck_assert_uint_eq(u->servers.nelts, 0);
    ck_assert_uint_eq(u->resolve.nelts, 1);
    ck_assert_uint_eq(rp_upstream_peers(u)->n, 0);
    rp_upstream_pick_t pk = {0};
    ck_assert_ptr_null(rp_upstream_get_peer(u, &pk));
    rp_upstream_pick_done(&pk);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_an_answer_gives_one_peer_per_address_and_moves_the_generation_once)
{
    rp_cycle_t *c = load_open("backend.test", NULL);
    rp_upstream_conf_t *u = pool(c);
    int64_t g0 = rp_shm_counter_get(u->gen);
    publish(u, (const char *[]){"127.0.0.2", "127.0.0.3", NULL});
    ck_assert_int_eq(rp_shm_counter_get(u->gen), g0 + 1);
    publish(u, (const char *[]){"127.0.0.2", "127.0.0.3", NULL});
    ck_assert_int_eq(rp_shm_counter_get(u->gen), g0 + 1);
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    ck_assert_uint_eq(set->n, 2);
    ck_assert_uint_eq(set->nprimary, 2);
    rp_upstream_server_t *a = find(set, "127.0.0.2:8080");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(find(set, "127.0.0.3:8080"));
    ck_assert(a->dynamic && !a->retired);
    ck_assert_int_eq(a->max_fails, 1); /* the line's parameters */
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_an_address_that_stays_keeps_its_peer)
{
    rp_cycle_t *c = load_open("backend.test", NULL);
    rp_upstream_conf_t *u = pool(c);
    publish(u, (const char *[]){"127.0.0.2", "127.0.0.3", NULL});
    rp_upstream_server_t *a = find(rp_upstream_peers(u), "127.0.0.2:8080");
    rp_shm_counter_add(&a->sh->failures, 7);
    publish(u, (const char *[]){"127.0.0.2", "127.0.0.4", NULL});
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    ck_assert_uint_eq(set->n, 2);
    ck_assert_ptr_eq(find(set, "127.0.0.2:8080"), a);
    ck_assert_int_eq(rp_shm_counter_get(&a->sh->failures), 7);
    ck_assert_ptr_null(find(set, "127.0.0.3:8080"));
    ck_assert_ptr_nonnull(find(set, "127.0.0.4:8080"));
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_a_dropped_peer_stays_until_its_last_attempt_and_connection_end)
{
    rp_cycle_t *c = load_open("backend.test", NULL);
    rp_upstream_conf_t *u = pool(c);
    publish(u, (const char *[]){"127.0.0.2", NULL});
    rp_upstream_pick_t pk = {0};
    rp_upstream_server_t *a = rp_upstream_get_peer(u, &pk);
    ck_assert_ptr_nonnull(a);
    rp_uconn_t *uc = rp_uconn_new(u, a, 16);
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    rp_event_base = event_base_new();
    rp_upstream_set_live(c); /* its connections may be cached */
    rp_uconn_attach(uc, fds[0]);
    rp_peer_shared_t *sh = a->sh;
    ck_assert_int_eq(rp_shm_counter_get(&sh->inflight), 1);
    ck_assert_int_eq(rp_shm_counter_get(&sh->conns), 1);

    publish(u, (const char *[]){"127.0.0.3", NULL});
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    ck_assert_uint_eq(set->n, 1);
    ck_assert(a->retired);                       /* no new requests */
    ck_assert_str_eq(a->name, "127.0.0.2:8080"); /* still allocated */
    ck_assert(!rp_upstream_peer_usable(u, a, 0));

    rp_upstream_outcome_t o = {.header_ms = 1, .last_ms = 2, .status = 200};
    rp_upstream_free_peer(u, a, &o);
    ck_assert_int_eq(rp_shm_counter_get(&sh->inflight), 0);
    ck_assert_str_eq(a->name, "127.0.0.2:8080"); /* the connection still holds it */
    rp_upstream_release(uc, 1); /* not cached: its peer left; this frees the peer */
    ck_assert_int_eq(rp_shm_counter_get(&sh->conns), 0);
    ck_assert_int_eq(u->nidle, 0);
    close(fds[1]);
    rp_upstream_pick_done(&pk);
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(test_a_reload_keeps_the_addresses_of_a_line_naming_the_same_host)
{
    rp_cycle_t *c1 = load_open("backend.test", NULL);
    rp_upstream_conf_t *u1 = pool(c1);
    publish(u1, (const char *[]){"127.0.0.2", "127.0.0.3", NULL});
    rp_upstream_server_t *a1 = find(rp_upstream_peers(u1), "127.0.0.2:8080");

    rp_cycle_t *c2 = load_open("backend.test", c1);
    rp_upstream_conf_t *u2 = pool(c2);
    struct sockaddr_storage sa[4];
    socklen_t lens[4];
    ck_assert_uint_eq(rp_upstream_read_addrs(u2, 0, sa, lens, 4), 2);
    rp_upstream_peers_t *set = rp_upstream_peers(u2);
    ck_assert_uint_eq(set->n, 2);
    /* the same shared entry: what was learnt about the address stays */
    ck_assert_ptr_eq(find(set, "127.0.0.2:8080")->sh, a1->sh);

    rp_cycle_t *c3 = load_open("other.test", c2);
    ck_assert_uint_eq(rp_upstream_read_addrs(pool(c3), 0, sa, lens, 4), 0);
    ck_assert_uint_eq(rp_upstream_peers(pool(c3))->n, 0);
    rp_cycle_destroy(c1);
    rp_cycle_destroy(c2);
    rp_cycle_destroy(c3);
}
END_TEST

START_TEST(test_what_no_configuration_uses_goes_two_reloads_later)
{
    rp_cycle_t *c1 = load_open("backend.test", NULL);
    rp_upstream_conf_t *u1 = pool(c1);
    publish(u1, (const char *[]){"127.0.0.2", NULL});
    struct sockaddr_storage sa[4];
    socklen_t lens[4];
    rp_cycle_t *c2 = load_open("other.test", c1);
    ck_assert_uint_eq(rp_upstream_read_addrs(u1, 0, sa, lens, 4), 1); /* one reload: kept */
    rp_cycle_t *c3 = load_open("other.test", c2);
    ck_assert_uint_eq(rp_upstream_read_addrs(u1, 0, sa, lens, 4), 0); /* two: gone */
    rp_cycle_destroy(c1);
    rp_cycle_destroy(c2);
    rp_cycle_destroy(c3);
}
END_TEST

START_TEST(test_a_plain_server_name_gives_a_peer_per_address)
{
    /* "localhost" has at least 127.0.0.1 everywhere; the lookup keeps each address once */
    rp_cycle_t *c = ut_load_ok("http {\n"
                               "    upstream pool {\n"
                               "        server localhost:8080 weight=3;\n"
                               "        server 127.0.0.1:9000 resolve;\n"
                               "    }\n"
                               "}\n");
    rp_upstream_conf_t *u = pool(c);
    ck_assert_uint_ge(u->servers.nelts, 2);
    rp_upstream_server_t *s = u->servers.elts;
    int v4 = 0;
    for (size_t i = 0; i + 1 < u->servers.nelts; i++) {
        ck_assert_int_eq(s[i].weight, 3);
        v4 += strcmp(s[i].name, "127.0.0.1:8080") == 0;
    }
    ck_assert_int_eq(v4, 1);
    /* an address literal with resolve is an ordinary server */
    ck_assert_str_eq(s[u->servers.nelts - 1].name, "127.0.0.1:9000");
    ck_assert_uint_eq(u->resolve.nelts, 0);
    rp_cycle_destroy(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peers");
    TCase *tc = tcase_create("resolve");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_a_resolve_line_starts_without_peers);
    tcase_add_test(tc, test_an_answer_gives_one_peer_per_address_and_moves_the_generation_once);
    tcase_add_test(tc, test_an_address_that_stays_keeps_its_peer);
    tcase_add_test(tc, test_a_dropped_peer_stays_until_its_last_attempt_and_connection_end);
    tcase_add_test(tc, test_a_reload_keeps_the_addresses_of_a_line_naming_the_same_host);
    tcase_add_test(tc, test_what_no_configuration_uses_goes_two_reloads_later);
    tcase_add_test(tc, test_a_plain_server_name_gives_a_peer_per_address);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
