/*
 * Shared memory zones (src/core/shm.c): loading a configuration maps nothing; the
 * process that forks maps a generation's zones, and a reload shares a zone whose
 * name, size and layout version are unchanged and maps a new one otherwise (the
 * old generation keeping its own); memory stays while a generation still uses it;
 * the lock excludes other processes and is handed on, with a warning, when its
 * holder dies. ssl_session_cache is the zone's user here.
 */
#include "core/shm.h"
#include "http/ssl.h"
#include "unit.h"

#include <sys/wait.h>

static const char *conf(const char *zone)
{
    static char buf[512];
    snprintf(buf, sizeof(buf),
             "http {\n"
             "    ssl_session_cache %s;\n"
             "    server {\n"
             "        listen 127.0.0.1:8080;\n"
             "    }\n"
             "}\n",
             zone);
    return buf;
}

static rp_shm_zone_t *only_zone(rp_cycle_t *cycle)
{
    ck_assert_uint_eq(cycle->shm_zones.nelts, 1);
    return RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, 0);
}

static rp_cycle_t *load_open(const char *zone, rp_cycle_t *prev)
{
    rp_cycle_t *cycle = ut_load_ok(conf(zone));
    char err[512];
    ck_assert_msg(rp_shm_open(cycle, prev, err, sizeof(err)) == 0, "%s", err);
    return cycle;
}

START_TEST(test_loading_a_configuration_maps_nothing)
{
    rp_cycle_t *cycle = ut_load_ok(conf("shared:T:16k"));
    rp_shm_zone_t *z = only_zone(cycle);
    ck_assert_str_eq(z->name, "T");
    ck_assert_uint_eq(z->size, 16 * 1024);
    ck_assert_ptr_null(z->addr);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_a_reload_shares_a_zone_of_the_same_name_and_size)
{
    rp_cycle_t *old = load_open("shared:T:16k", NULL);
    rp_shm_zone_t *a = only_zone(old);
    ck_assert_ptr_nonnull(a->addr);
    ck_assert_uint_ge(a->avail, 16 * 1024 - 256);
    rp_cycle_t *fresh = load_open("shared:T:16k", old);
    ck_assert_ptr_eq(only_zone(fresh)->addr, a->addr);
    /* the old generation ends: the memory stays for the new one */
    rp_cycle_destroy(old);
    unsigned char *p = only_zone(fresh)->addr;
    p[only_zone(fresh)->avail - 1] = 1;
    rp_cycle_destroy(fresh);
}
END_TEST

START_TEST(test_a_new_size_or_name_gets_new_memory)
{
    rp_cycle_t *old = load_open("shared:T:16k", NULL);
    rp_cycle_t *bigger = load_open("shared:T:32k", old);
    ck_assert_ptr_ne(only_zone(bigger)->addr, only_zone(old)->addr);
    rp_cycle_t *renamed = load_open("shared:U:32k", bigger);
    ck_assert_ptr_ne(only_zone(renamed)->addr, only_zone(bigger)->addr);
    rp_cycle_destroy(old);
    rp_cycle_destroy(bigger);
    rp_cycle_destroy(renamed);
}
END_TEST

START_TEST(test_a_kept_zone_keeps_its_bytes_when_its_layout_version_is_unchanged)
{
    rp_cycle_t *old = load_open("shared:T:16k", NULL);
    rp_shm_zone_t *a = only_zone(old);
    unsigned char *last = (unsigned char *)a->addr + a->avail - 1;
    *last = 0x77;
    rp_cycle_t *fresh = load_open("shared:T:16k", old);
    ck_assert_ptr_eq(only_zone(fresh)->addr, a->addr);
    ck_assert_uint_eq(only_zone(fresh)->version, a->version);
    ck_assert_uint_eq(*last, 0x77);
    rp_cycle_destroy(old);
    rp_cycle_destroy(fresh);
}
END_TEST

START_TEST(test_a_kept_zone_with_another_layout_version_is_laid_out_fresh)
{
    rp_cycle_t *old = load_open("shared:T:16k", NULL);
    rp_shm_zone_t *a = only_zone(old);
    unsigned char *last = (unsigned char *)a->addr + a->avail - 1;
    *last = 0x77;
    /* the same directive, but its user now lays the zone out differently */
    rp_cycle_t *fresh = ut_load_ok(conf("shared:T:16k"));
    rp_shm_zone_t *b = only_zone(fresh);
    b->version = a->version + 1;
    char err[512];
    ck_assert_msg(rp_shm_open(fresh, old, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_ne(b->addr, a->addr);
    ck_assert_uint_eq(((unsigned char *)b->addr)[b->avail - 1], 0);
    /* the old generation keeps its memory and its lock; the new one has its own */
    ck_assert_uint_eq(*last, 0x77);
    ck_assert_int_eq(rp_shm_lock(a), 0);
    ck_assert_int_eq(rp_shm_lock(b), 0);
    rp_shm_unlock(b);
    rp_shm_unlock(a);
    /* and the next reload at the new version keeps the new memory */
    rp_cycle_t *next = ut_load_ok(conf("shared:T:16k"));
    only_zone(next)->version = b->version;
    ck_assert_msg(rp_shm_open(next, fresh, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_eq(only_zone(next)->addr, b->addr);
    rp_cycle_destroy(old);
    rp_cycle_destroy(fresh);
    rp_cycle_destroy(next);
}
END_TEST

START_TEST(test_the_lock_excludes_other_processes)
{
    rp_cycle_t *cycle = load_open("shared:T:16k", NULL);
    rp_shm_zone_t *z = only_zone(cycle);
    volatile uint64_t *counter = z->addr;
    *counter = 0;
    enum { N = 200000 };
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        for (int i = 0; i < N; i++) {
            rp_shm_lock(z);
            *counter = *counter + 1;
            rp_shm_unlock(z);
        }
        _exit(0);
    }
    for (int i = 0; i < N; i++) {
        rp_shm_lock(z);
        *counter = *counter + 1;
        rp_shm_unlock(z);
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_uint_eq(*counter, 2 * N);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_a_lock_its_holder_died_with_is_taken_and_reported)
{
    rp_cycle_t *cycle = load_open("shared:T:16k", NULL);
    rp_shm_zone_t *z = only_zone(cycle);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        rp_shm_lock(z);
        _exit(0); /* dies holding it */
    }
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_int_eq(rp_shm_lock(z), 1);
    rp_shm_unlock(z);
    ck_assert_int_eq(rp_shm_lock(z), 0);
    rp_shm_unlock(z);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_one_name_with_two_sizes_is_an_error)
{
    ut_expect_error("http {\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8080;\n"
                    "        ssl_session_cache shared:T:16k;\n"
                    "    }\n"
                    "    server {\n"
                    "        listen 127.0.0.1:8081;\n"
                    "        ssl_session_cache shared:T:1m;\n"
                    "    }\n"
                    "}\n",
                    "@/rampart.conf:8: \"ssl_session_cache\": zone \"T\" of size 1m is already "
                    "declared with size 16k in @/rampart.conf:4");
}
END_TEST

START_TEST(test_a_server_inherits_the_http_levels_zone)
{
    rp_cycle_t *cycle = ut_load_ok(conf("shared:T:16k"));
    rp_ssl_srv_conf_t *sc = ut_server(cycle, 0)->ctx->srv_conf[rp_ssl_module.index];
    ck_assert_int_eq(sc->session_cache, RP_SSL_CACHE_SHARED);
    ck_assert_ptr_eq(sc->cache_zone, only_zone(cycle));
    rp_cycle_destroy(cycle);
    cycle = ut_load_ok("http {\n    server {\n        listen 127.0.0.1:8080;\n    }\n}\n");
    sc = ut_server(cycle, 0)->ctx->srv_conf[rp_ssl_module.index];
    ck_assert_int_eq(sc->session_cache, RP_SSL_CACHE_NONE);
    ck_assert_uint_eq(cycle->shm_zones.nelts, 0);
    rp_cycle_destroy(cycle);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shm");
    TCase *tc = tcase_create("zones");
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_loading_a_configuration_maps_nothing);
    tcase_add_test(tc, test_a_reload_shares_a_zone_of_the_same_name_and_size);
    tcase_add_test(tc, test_a_new_size_or_name_gets_new_memory);
    tcase_add_test(tc, test_a_kept_zone_keeps_its_bytes_when_its_layout_version_is_unchanged);
    tcase_add_test(tc, test_a_kept_zone_with_another_layout_version_is_laid_out_fresh);
    tcase_add_test(tc, test_the_lock_excludes_other_processes);
    tcase_add_test(tc, test_a_lock_its_holder_died_with_is_taken_and_reported);
    tcase_add_test(tc, test_one_name_with_two_sizes_is_an_error);
    tcase_add_test(tc, test_a_server_inherits_the_http_levels_zone);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
