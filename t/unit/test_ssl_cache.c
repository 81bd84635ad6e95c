/*
 * The TLS session cache's data structure (src/http/ssl_cache.c) on ordinary
 * memory: what is stored comes back byte for byte under its key and only under
 * it, expired sessions are never returned, a full cache makes room by dropping its
 * oldest sessions (expired ones before live ones, and resuming a session does not
 * make it younger), the newest session always survives, and a damaged block is
 * emptied rather than followed.
 */
#include "http/ssl_cache.h"
#include "unit.h"

#include <stdint.h>

static unsigned char *mem;
static size_t mem_size;

static void *block(size_t size)
{
    free(mem);
    mem = malloc(size);
    ck_assert_ptr_nonnull(mem);
    memset(mem, 0xa5, size); /* the cache must not rely on zeroed memory */
    mem_size = size;
    ck_assert_int_eq(rp_ssl_cache_init(mem, size), 0);
    return mem;
}

static void teardown(void)
{
    free(mem);
    mem = NULL;
}

/* A session ID made from n, so tests can name sessions by number. */
typedef struct {
    unsigned char id[32];
    rp_ssl_cache_key_t key;
} test_key_t;

static const unsigned char ctx_a[32] = "server a context................";
static const unsigned char ctx_b[32] = "server b context................";

static rp_ssl_cache_key_t *key(test_key_t *k, uint32_t n, const unsigned char *ctx)
{
    memset(k->id, 0, sizeof(k->id));
    for (int i = 0; i < 32; i++)
        k->id[i] = (unsigned char)((n >> (8 * (i % 4))) ^ (unsigned)(i * 37));
    k->key.id = k->id;
    k->key.id_len = 32;
    k->key.ctx = ctx;
    k->key.ctx_len = 32;
    return &k->key;
}

/* Session bytes derived from n and len, so a mix-up between sessions shows. */
static void fill(unsigned char *der, size_t len, uint32_t n)
{
    for (size_t i = 0; i < len; i++)
        der[i] = (unsigned char)(n * 131 + i * 7);
}

static int put(uint32_t n, size_t len, int64_t expires, int64_t now)
{
    unsigned char der[RP_SSL_CACHE_MAX_DER];
    test_key_t k;
    fill(der, len, n);
    return rp_ssl_cache_put(mem, mem_size, key(&k, n, ctx_a), der, len, expires, now);
}

/* Whether session n of length len comes back intact at now. */
static int has(uint32_t n, size_t len, int64_t now)
{
    unsigned char out[RP_SSL_CACHE_MAX_DER], want[RP_SSL_CACHE_MAX_DER];
    test_key_t k;
    long got = rp_ssl_cache_get(mem, mem_size, key(&k, n, ctx_a), out, sizeof(out), now);
    if (got < 0)
        return 0;
    fill(want, len, n);
    ck_assert_int_eq(got, (long)len);
    ck_assert_msg(memcmp(out, want, len) == 0, "session %u came back altered", n);
    return 1;
}

static rp_ssl_cache_stats_t stats(void)
{
    rp_ssl_cache_stats_t st;
    rp_ssl_cache_stats(mem, mem_size, &st);
    return st;
}

START_TEST(test_a_block_below_the_minimum_is_refused)
{
    size_t min = rp_ssl_cache_min_size();
    unsigned char *small = malloc(min);
    ck_assert_int_eq(rp_ssl_cache_init(small, min - 8), -1);
    free(small);
    /* three sessions of the largest size fit at the minimum, and a 16k zone has it */
    ck_assert_uint_le(min, 16 * 1024 - 64);
    block(min);
    for (uint32_t n = 0; n < 3; n++)
        ck_assert_int_eq(put(n, RP_SSL_CACHE_MAX_DER, 1000, 0), 0);
    for (uint32_t n = 0; n < 3; n++)
        ck_assert(has(n, RP_SSL_CACHE_MAX_DER, 1));
    ck_assert_uint_eq(stats().evicted, 0);
}
END_TEST

START_TEST(test_a_megabyte_holds_about_four_thousand_typical_sessions)
{
    /* a TLS 1.2 or 1.3 session without a client certificate is about 190 bytes of DER */
    block(1024 * 1024);
    uint32_t n;
    for (n = 0; stats().evicted == 0 && n < 100000; n++)
        ck_assert_int_eq(put(n, 190, 1000, 0), 0);
    uint32_t held = 0;
    for (uint32_t i = 0; i < n; i++)
        held += (uint32_t)has(i, 190, 1);
    ck_assert_uint_ge(held, 3500);
}
END_TEST

START_TEST(test_a_stored_session_comes_back_under_its_key)
{
    block(64 * 1024);
    ck_assert_int_eq(put(1, 200, 1000, 0), 0);
    ck_assert_int_eq(put(2, 300, 1000, 0), 0);
    ck_assert(has(1, 200, 10));
    ck_assert(has(2, 300, 10));
    ck_assert(!has(3, 200, 10));
    ck_assert_uint_eq(stats().entries, 2);
}
END_TEST

START_TEST(test_the_same_id_under_another_context_is_another_session)
{
    block(64 * 1024);
    ck_assert_int_eq(put(1, 200, 1000, 0), 0);
    test_key_t k;
    unsigned char out[RP_SSL_CACHE_MAX_DER];
    ck_assert_int_eq(rp_ssl_cache_get(mem, mem_size, key(&k, 1, ctx_b), out, sizeof(out), 10), -1);
    /* nor does a shorter ID that is a prefix of a stored one match */
    key(&k, 1, ctx_a);
    k.key.id_len = 16;
    ck_assert_int_eq(rp_ssl_cache_get(mem, mem_size, &k.key, out, sizeof(out), 10), -1);
    ck_assert(has(1, 200, 10));
}
END_TEST

START_TEST(test_storing_a_key_again_replaces_its_session)
{
    block(64 * 1024);
    unsigned char der[100];
    test_key_t k;
    memset(der, 'x', sizeof(der));
    ck_assert_int_eq(rp_ssl_cache_put(mem, mem_size, key(&k, 7, ctx_a), der, sizeof(der), 1000, 0),
                     0);
    ck_assert_int_eq(put(7, 250, 1000, 0), 0);
    ck_assert(has(7, 250, 1));
    ck_assert_uint_eq(stats().entries, 1);
}
END_TEST

START_TEST(test_an_expired_session_is_not_returned_and_is_dropped)
{
    block(64 * 1024);
    ck_assert_int_eq(put(1, 200, 100, 0), 0);
    ck_assert(has(1, 200, 99));
    ck_assert(!has(1, 200, 100));
    ck_assert_uint_eq(stats().entries, 0);
}
END_TEST

START_TEST(test_a_removed_session_is_gone)
{
    block(64 * 1024);
    test_key_t k;
    ck_assert_int_eq(put(1, 200, 1000, 0), 0);
    ck_assert_int_eq(put(2, 200, 1000, 0), 0);
    ck_assert_int_eq(rp_ssl_cache_remove(mem, mem_size, key(&k, 1, ctx_a)), 1);
    ck_assert_int_eq(rp_ssl_cache_remove(mem, mem_size, key(&k, 1, ctx_a)), 0);
    ck_assert(!has(1, 200, 1));
    ck_assert(has(2, 200, 1));
}
END_TEST

START_TEST(test_sessions_too_large_or_badly_keyed_are_not_stored)
{
    block(64 * 1024);
    static unsigned char der[RP_SSL_CACHE_MAX_DER + 1];
    test_key_t k;
    ck_assert_int_eq(rp_ssl_cache_put(mem, mem_size, key(&k, 1, ctx_a), der, sizeof(der), 1000, 0),
                     -1);
    ck_assert_int_eq(rp_ssl_cache_put(mem, mem_size, key(&k, 1, ctx_a), der, 0, 1000, 0), -1);
    key(&k, 1, ctx_a)->id_len = 0;
    ck_assert_int_eq(rp_ssl_cache_put(mem, mem_size, &k.key, der, 10, 1000, 0), -1);
    key(&k, 1, ctx_a)->id_len = 33;
    ck_assert_int_eq(rp_ssl_cache_put(mem, mem_size, &k.key, der, 10, 1000, 0), -1);
    ck_assert_int_eq(
        rp_ssl_cache_put(mem, mem_size, key(&k, 1, ctx_a), der, RP_SSL_CACHE_MAX_DER, 1000, 0), 0);
    ck_assert_uint_eq(stats().entries, 1);
}
END_TEST

START_TEST(test_a_full_cache_drops_its_oldest_sessions_first)
{
    block(rp_ssl_cache_min_size());
    uint32_t n;
    for (n = 0; stats().evicted == 0; n++)
        ck_assert_int_eq(put(n, 300, 1000, 0), 0);
    /* the first one went first; the newest ones are all there */
    ck_assert(!has(0, 300, 1));
    uint64_t kept = stats().entries;
    ck_assert_uint_gt(kept, 10);
    for (uint32_t i = n - (uint32_t)kept; i < n; i++)
        ck_assert_msg(has(i, 300, 1), "session %u of the last %lu is missing", i,
                      (unsigned long)kept);
    for (uint32_t i = 0; i < n - (uint32_t)kept; i++)
        ck_assert_msg(!has(i, 300, 1), "session %u should have been dropped", i);
}
END_TEST

START_TEST(test_expired_sessions_make_room_before_live_ones_are_evicted)
{
    block(rp_ssl_cache_min_size());
    /* fill the cache (and more) with sessions that all expire at 50 */
    for (uint32_t n = 0; stats().evicted < 10; n++)
        ck_assert_int_eq(put(n, 300, 50, 0), 0);
    uint64_t evicted = stats().evicted, n = stats().entries;
    /* later, as many live ones: the expired ones make the room */
    for (uint32_t i = 0; i < n; i++)
        ck_assert_int_eq(put(1000 + i, 300, 500, 100), 0);
    ck_assert_uint_eq(stats().evicted, evicted);
    ck_assert_uint_eq(stats().entries, n);
    for (uint32_t i = 0; i < n; i++)
        ck_assert(has(1000 + i, 300, 101));
}
END_TEST

START_TEST(test_resuming_a_session_does_not_keep_it_longer)
{
    /* the oldest session goes first even when it is the one clients keep resuming:
     * its lifetime runs from its creation whatever happens */
    block(rp_ssl_cache_min_size());
    ck_assert_int_eq(put(0, 300, 1000, 0), 0);
    uint32_t n;
    for (n = 1; stats().evicted == 0; n++) {
        ck_assert(has(0, 300, 1));
        ck_assert_int_eq(put(n, 300, 1000, 0), 0);
    }
    ck_assert(!has(0, 300, 1));
    ck_assert(has(1, 300, 1));
    ck_assert(has(n - 1, 300, 1));
}
END_TEST

START_TEST(test_the_newest_session_survives_any_mix_of_sizes)
{
    block(rp_ssl_cache_min_size() + 5000);
    /* A fixed pseudo-random sequence of sizes, replacements and removals wraps the ring
     * many times. After each step the session just stored comes back intact, and a
     * session still held is always the one stored last under its key (has() checks
     * the length as well as the bytes). */
    uint32_t seed = 12345;
    size_t lens[64] = {0};
    for (int step = 0; step < 20000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t n = (seed >> 8) % 64;
        size_t len = 1 + (seed >> 16) % RP_SSL_CACHE_MAX_DER;
        if (step % 7 == 3) {
            test_key_t k;
            rp_ssl_cache_remove(mem, mem_size, key(&k, n, ctx_a));
            lens[n] = 0;
            ck_assert(!has(n, len, step));
            continue;
        }
        ck_assert_int_eq(put(n, len, 1000000, step), 0);
        lens[n] = len;
        ck_assert(has(n, len, step));
        if (step % 101 == 0) {
            for (uint32_t i = 0; i < 64; i++)
                if (lens[i] && !has(i, lens[i], step))
                    lens[i] = 0; /* evicted: fine, as long as it never comes back */
        }
        ck_assert_uint_le(stats().used, stats().capacity);
    }
}
END_TEST

START_TEST(test_a_kept_block_is_recognized_only_at_its_size)
{
    block(64 * 1024);
    ck_assert(rp_ssl_cache_valid(mem, 64 * 1024));
    ck_assert(!rp_ssl_cache_valid(mem, 32 * 1024));
    memset(mem, 0, 64);
    ck_assert(!rp_ssl_cache_valid(mem, 64 * 1024));
}
END_TEST

START_TEST(test_a_damaged_block_is_emptied_not_followed)
{
    block(64 * 1024);
    ck_assert_int_eq(put(1, 200, 1000, 0), 0);
    ck_assert_int_eq(put(2, 200, 1000, 0), 0);
    /* Scribble over everything past the header's first 96 bytes: bucket chains and
     * records now lead nowhere a record can be. */
    memset(mem + 96, 0xff, mem_size - 96);
    ck_assert(!has(1, 200, 1));
    ck_assert(!has(2, 200, 1));
    /* emptied, and usable again */
    ck_assert_uint_eq(stats().entries, 0);
    ck_assert_int_eq(put(3, 200, 1000, 0), 0);
    ck_assert(has(3, 200, 1));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ssl_cache");
    TCase *tc = tcase_create("cache");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_a_block_below_the_minimum_is_refused);
    tcase_add_test(tc, test_a_megabyte_holds_about_four_thousand_typical_sessions);
    tcase_add_test(tc, test_a_stored_session_comes_back_under_its_key);
    tcase_add_test(tc, test_the_same_id_under_another_context_is_another_session);
    tcase_add_test(tc, test_storing_a_key_again_replaces_its_session);
    tcase_add_test(tc, test_an_expired_session_is_not_returned_and_is_dropped);
    tcase_add_test(tc, test_a_removed_session_is_gone);
    tcase_add_test(tc, test_sessions_too_large_or_badly_keyed_are_not_stored);
    tcase_add_test(tc, test_a_full_cache_drops_its_oldest_sessions_first);
    tcase_add_test(tc, test_expired_sessions_make_room_before_live_ones_are_evicted);
    tcase_add_test(tc, test_resuming_a_session_does_not_keep_it_longer);
    tcase_add_test(tc, test_the_newest_session_survives_any_mix_of_sizes);
    tcase_add_test(tc, test_a_kept_block_is_recognized_only_at_its_size);
    tcase_add_test(tc, test_a_damaged_block_is_emptied_not_followed);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
