/*
 * The shared-memory hash table (src/core/shm_hash.c) on ordinary memory, its clock
 * given by each call: values come back under their keys only; set, add and
 * replace treat a current entry as lua_shared_dict does; incr makes and grows
 * numbers; entries expire; a full zone forces out the least recently used
 * entries first, expired ones before live ones, and what survives is intact;
 * a fifo table ignores reads; safe stores, pinned entries and records updated in
 * place; iteration, flushes, and a damaged table reported rather than followed.
 * The last tests hammer one table and its counters from several processes.
 */
#include "core/shm.h"
#include "core/shm_counter.h"
#include "core/shm_hash.h"
#include "unit.h"

#include <sched.h>
#include <stdint.h>
#include <sys/wait.h>

static unsigned char *mem;
static size_t mem_size;

static rp_shm_hash_t *table_of(size_t size, int fifo)
{
    free(mem);
    mem = malloc(size);
    ck_assert_ptr_nonnull(mem);
    memset(mem, 0x5a, size);
    mem_size = size;
    rp_shm_hash_conf_t conf = {.fifo = fifo};
    rp_shm_hash_t *h = rp_shm_hash_init(mem, size, &conf);
    ck_assert_ptr_nonnull(h);
    return h;
}

static void teardown(void)
{
    free(mem);
    mem = NULL;
}

static int store(rp_shm_hash_t *h, const char *key, const char *value, int64_t expires,
                 unsigned mode, int64_t now)
{
    rp_shm_hash_item_t it = {.key = key,
                             .key_len = strlen(key),
                             .value = value,
                             .value_len = strlen(value),
                             .expires = expires};
    return rp_shm_hash_store_locked(h, &it, mode, now, NULL);
}

static int set(rp_shm_hash_t *h, const char *key, const char *value)
{
    return store(h, key, value, 0, RP_SHM_HASH_SET, 0);
}

/* The value of key at now as a string (static), or NULL when there is none. */
static const char *get(rp_shm_hash_t *h, const char *key, int64_t now)
{
    static char buf[8192];
    rp_shm_hash_item_t it;
    int rc = rp_shm_hash_get_locked(h, key, strlen(key), now, 0, &it);
    if (rc == RP_SHM_NOT_FOUND)
        return NULL;
    ck_assert_int_eq(rc, RP_SHM_OK);
    ck_assert_uint_lt(it.value_len, sizeof(buf));
    memcpy(buf, it.value, it.value_len);
    buf[it.value_len] = '\0';
    return buf;
}

static rp_shm_hash_stats_t hstats(rp_shm_hash_t *h)
{
    rp_shm_hash_stats_t st;
    rp_shm_hash_stats_locked(h, &st);
    return st;
}

static size_t pages_free(rp_shm_hash_t *h)
{
    rp_shm_slab_stats_t st;
    rp_shm_slab_stats_locked(rp_shm_hash_slab(h), &st);
    return st.pages_free;
}

START_TEST(test_a_stored_value_comes_back_under_its_key_only)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    ck_assert_int_eq(set(h, "alpha", "one"), RP_SHM_OK);
    ck_assert_int_eq(set(h, "alphabet", "two"), RP_SHM_OK);
    /* binary keys: a NUL inside is part of the key */
    rp_shm_hash_item_t it = {.key = "a\0b", .key_len = 3, .value = "x\0y", .value_len = 3};
    ck_assert_int_eq(rp_shm_hash_store_locked(h, &it, RP_SHM_HASH_SET, 0, NULL), RP_SHM_OK);
    ck_assert_str_eq(get(h, "alpha", 0), "one");
    ck_assert_str_eq(get(h, "alphabet", 0), "two");
    ck_assert_ptr_null(get(h, "alph", 0));
    ck_assert_ptr_null(get(h, "a", 0)); /* "a\0b" is not "a" */
    rp_shm_hash_item_t out;
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "a\0b", 3, 0, 0, &out), RP_SHM_OK);
    ck_assert_uint_eq(out.value_len, 3);
    ck_assert_int_eq(memcmp(out.value, "x\0y", 3), 0);
    ck_assert_uint_eq(hstats(h).entries, 3);
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "", 0, 0, 0, &out), RP_SHM_INVALID);
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
}
END_TEST

START_TEST(test_delete_drops_an_entry_and_gives_its_memory_back)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    size_t free0 = pages_free(h);
    static char big[6000];
    memset(big, 'b', sizeof(big) - 1);
    ck_assert_int_eq(set(h, "big", big), RP_SHM_OK);
    ck_assert_int_eq(set(h, "small", "s"), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_delete_locked(h, "big", 3, 0), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_delete_locked(h, "big", 3, 0), RP_SHM_NOT_FOUND);
    ck_assert_int_eq(rp_shm_hash_delete_locked(h, "small", 5, 0), RP_SHM_OK);
    ck_assert_ptr_null(get(h, "big", 0));
    ck_assert_uint_eq(hstats(h).entries, 0);
    ck_assert_uint_eq(pages_free(h), free0);
}
END_TEST

START_TEST(test_add_stores_only_a_new_key_and_replace_only_an_existing_one)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    ck_assert_int_eq(store(h, "k", "v1", 0, RP_SHM_HASH_REPLACE, 0), RP_SHM_NOT_FOUND);
    ck_assert_ptr_null(get(h, "k", 0));
    ck_assert_int_eq(store(h, "k", "v1", 100, RP_SHM_HASH_ADD, 0), RP_SHM_OK);
    ck_assert_int_eq(store(h, "k", "v2", 0, RP_SHM_HASH_ADD, 0), RP_SHM_EXISTS);
    ck_assert_str_eq(get(h, "k", 0), "v1");
    ck_assert_int_eq(store(h, "k", "v3", 100, RP_SHM_HASH_REPLACE, 0), RP_SHM_OK);
    ck_assert_str_eq(get(h, "k", 0), "v3");
    /* an expired entry counts as none: add succeeds, replace does not */
    ck_assert_int_eq(store(h, "k", "v4", 0, RP_SHM_HASH_REPLACE, 100), RP_SHM_NOT_FOUND);
    ck_assert_int_eq(store(h, "k", "v5", 0, RP_SHM_HASH_ADD, 100), RP_SHM_OK);
    ck_assert_str_eq(get(h, "k", 1000), "v5");
    ck_assert_uint_eq(hstats(h).entries, 1);
}
END_TEST

START_TEST(test_set_replaces_a_value_of_any_new_size)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    static char v[5000];
    /* shrinking stays in place, growing moves: each time the value is the new one */
    size_t sizes[] = {100, 20, 90, 3000, 10, 4999, 1};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memset(v, 'a' + (int)i, sizes[i]);
        v[sizes[i]] = '\0';
        ck_assert_int_eq(set(h, "key", v), RP_SHM_OK);
        ck_assert_str_eq(get(h, "key", 0), v);
        ck_assert_uint_eq(hstats(h).entries, 1);
    }
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
}
END_TEST

START_TEST(test_incr_grows_a_number_and_creates_it_from_init_with_its_ttl)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    double r = 0, init = 10;
    ck_assert_int_eq(rp_shm_hash_incr_locked(h, "n", 1, 1, NULL, 0, 0, &r, NULL), RP_SHM_NOT_FOUND);
    ck_assert_int_eq(rp_shm_hash_incr_locked(h, "n", 1, 1, &init, 50, 0, &r, NULL), RP_SHM_OK);
    ck_assert(r == 11);
    ck_assert_int_eq(rp_shm_hash_incr_locked(h, "n", 1, -2.5, &init, 900, 10, &r, NULL), RP_SHM_OK);
    ck_assert(r == 8.5);
    int64_t ttl;
    ck_assert_int_eq(rp_shm_hash_ttl_locked(h, "n", 1, 10, &ttl), RP_SHM_OK);
    ck_assert_int_eq(ttl, 40); /* init_ttl applies when the entry is made, not after */
    /* once expired, init starts it again */
    ck_assert_int_eq(rp_shm_hash_incr_locked(h, "n", 1, 1, &init, 0, 50, &r, NULL), RP_SHM_OK);
    ck_assert(r == 11);
    ck_assert_int_eq(rp_shm_hash_ttl_locked(h, "n", 1, 60, &ttl), RP_SHM_OK);
    ck_assert_int_eq(ttl, 0);
    ck_assert_int_eq(set(h, "s", "text"), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_incr_locked(h, "s", 1, 1, &init, 0, 0, &r, NULL),
                     RP_SHM_NOT_NUMBER);
    ck_assert_str_eq(get(h, "s", 0), "text");
}
END_TEST

START_TEST(test_an_expired_entry_is_absent_and_dropped)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    ck_assert_int_eq(store(h, "k", "v", 100, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    ck_assert_str_eq(get(h, "k", 99), "v");
    /* get_stale still sees it, and keeps it */
    rp_shm_hash_item_t it;
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "k", 1, 100, RP_SHM_HASH_STALE, &it), RP_SHM_OK);
    ck_assert_uint_eq(it.stale, 1);
    ck_assert_uint_eq(hstats(h).entries, 1);
    ck_assert_ptr_null(get(h, "k", 100));
    ck_assert_uint_eq(hstats(h).entries, 0);
    ck_assert_uint_eq(hstats(h).expired, 1);
}
END_TEST

START_TEST(test_ttl_and_expire_read_and_change_an_entrys_lifetime)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    int64_t ttl;
    ck_assert_int_eq(store(h, "k", "v", 100, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_ttl_locked(h, "k", 1, 30, &ttl), RP_SHM_OK);
    ck_assert_int_eq(ttl, 70);
    ck_assert_int_eq(rp_shm_hash_expire_locked(h, "k", 1, 0, 30), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_ttl_locked(h, "k", 1, 5000, &ttl), RP_SHM_OK);
    ck_assert_int_eq(ttl, 0);
    ck_assert_int_eq(rp_shm_hash_expire_locked(h, "k", 1, 6000, 5000), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_ttl_locked(h, "k", 1, 6000, &ttl), RP_SHM_NOT_FOUND);
    ck_assert_int_eq(rp_shm_hash_expire_locked(h, "k", 1, 0, 6000), RP_SHM_NOT_FOUND);
}
END_TEST

START_TEST(test_flush_expired_drops_only_expired_entries_oldest_first)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(store(h, key, "v", i % 2 ? 0 : 50, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    }
    ck_assert_uint_eq(rp_shm_hash_flush_expired_locked(h, 0, 49), 0);
    ck_assert_uint_eq(rp_shm_hash_flush_expired_locked(h, 2, 50), 2);
    ck_assert_uint_eq(hstats(h).entries, 8);
    /* the two oldest expired ones went */
    rp_shm_hash_item_t it;
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "k0", 2, 50, RP_SHM_HASH_STALE, &it),
                     RP_SHM_NOT_FOUND);
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "k2", 2, 50, RP_SHM_HASH_STALE, &it),
                     RP_SHM_NOT_FOUND);
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "k4", 2, 50, RP_SHM_HASH_STALE, &it), RP_SHM_OK);
    ck_assert_uint_eq(rp_shm_hash_flush_expired_locked(h, 0, 50), 3);
    ck_assert_uint_eq(hstats(h).entries, 5);
    for (int i = 1; i < 10; i += 2) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_str_eq(get(h, key, 50), "v");
    }
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
}
END_TEST

START_TEST(test_flush_all_empties_the_table_and_gives_the_memory_back)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    size_t free0 = pages_free(h);
    char key[16];
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        rp_shm_hash_item_t it = {.key = key, .key_len = strlen(key), .value_len = 20 + i * 3};
        ck_assert_int_eq(rp_shm_hash_store_locked(h, &it, i % 7 ? 0 : RP_SHM_HASH_PIN, 0, NULL),
                         RP_SHM_OK);
    }
    rp_shm_hash_flush_all_locked(h);
    ck_assert_uint_eq(hstats(h).entries, 0);
    ck_assert_uint_eq(pages_free(h), free0);
    ck_assert_ptr_null(get(h, "k1", 0));
    ck_assert_int_eq(set(h, "k1", "again"), RP_SHM_OK);
    ck_assert_str_eq(get(h, "k1", 0), "again");
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
}
END_TEST

typedef struct {
    char keys[8][8];
    int n;
} seen_t;

static int collect(const rp_shm_hash_item_t *it, void *arg)
{
    seen_t *seen = arg;
    ck_assert_uint_lt(it->key_len, 8);
    memcpy(seen->keys[seen->n], it->key, it->key_len);
    seen->keys[seen->n][it->key_len] = '\0';
    return ++seen->n == 8;
}

START_TEST(test_each_visits_unexpired_entries_most_recent_first)
{
    rp_shm_hash_t *h = table_of(256 * 1024, 0);
    ck_assert_int_eq(store(h, "a", "1", 0, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    ck_assert_int_eq(store(h, "b", "2", 10, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    ck_assert_int_eq(store(h, "c", "3", 0, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    ck_assert_int_eq(store(h, "p", "4", 0, RP_SHM_HASH_SET | RP_SHM_HASH_PIN, 0), RP_SHM_OK);
    ck_assert_int_eq(store(h, "d", "5", 0, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    ck_assert_str_eq(get(h, "a", 20), "1"); /* a is now the most recent */
    seen_t seen = {0};
    ck_assert_uint_eq(rp_shm_hash_each_locked(h, 20, collect, &seen), 4);
    ck_assert_int_eq(seen.n, 4);
    ck_assert_str_eq(seen.keys[0], "a");
    ck_assert_str_eq(seen.keys[1], "d");
    ck_assert_str_eq(seen.keys[2], "c");
    ck_assert_str_eq(seen.keys[3], "p"); /* b has expired; pinned ones come last */
}
END_TEST

/* Value bytes of entry n, of a length varying with n, so a mix-up shows. */
static size_t value_len(uint32_t n)
{
    uint32_t x = n * 2654435761u;
    return 1 + (x >> 8) % (x % 5 ? 300 : 3000); /* mostly small, some of a page or so */
}

static void value_bytes(unsigned char *v, size_t len, uint32_t n)
{
    for (size_t i = 0; i < len; i++)
        v[i] = (unsigned char)(n * 31 + i * 7);
}

static int store_n(rp_shm_hash_t *h, uint32_t n, unsigned *forced)
{
    unsigned char v[3000];
    char key[16];
    size_t len = value_len(n);
    value_bytes(v, len, n);
    snprintf(key, sizeof(key), "key-%u", n);
    rp_shm_hash_item_t it = {.key = key, .key_len = strlen(key), .value = v, .value_len = len};
    return rp_shm_hash_store_locked(h, &it, RP_SHM_HASH_SET, 0, forced);
}

/* Whether entry n is there (checking its bytes when it is). */
static int holds_n(rp_shm_hash_t *h, uint32_t n, int64_t now)
{
    unsigned char want[3000];
    char key[16];
    snprintf(key, sizeof(key), "key-%u", n);
    rp_shm_hash_item_t it;
    int rc = rp_shm_hash_get_locked(h, key, strlen(key), now, 0, &it);
    if (rc == RP_SHM_NOT_FOUND)
        return 0;
    ck_assert_int_eq(rc, RP_SHM_OK);
    size_t len = value_len(n);
    value_bytes(want, len, n);
    ck_assert_msg(it.value_len == len && memcmp(it.value, want, len) == 0,
                  "entry %u came back altered", n);
    return 1;
}

START_TEST(test_full_zone_evicts_least_recently_used_first)
{
    rp_shm_hash_t *h = table_of(128 * 1024, 0);
    enum { N = 3000 };
    unsigned forced = 0;
    for (uint32_t n = 0; n < N; n++)
        ck_assert_int_eq(store_n(h, n, &forced), RP_SHM_OK);
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
    rp_shm_hash_stats_t st = hstats(h);
    ck_assert_uint_eq(st.forced, forced);
    ck_assert_uint_eq(st.entries + forced, N); /* well past capacity: most went */
    ck_assert_uint_gt(forced, N / 2);
    /* the survivors are exactly the newest ones, byte for byte */
    uint32_t first = N - (uint32_t)st.entries;
    for (uint32_t n = 0; n < N; n++)
        ck_assert_msg(holds_n(h, n, 0) == (n >= first), "entry %u: expected %s", n,
                      n >= first ? "kept" : "evicted");
}
END_TEST

START_TEST(test_a_read_entry_outlives_older_unread_ones)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 0);
    uint32_t n;
    for (n = 0; hstats(h).forced == 0; n++) {
        ck_assert(n < 3 || holds_n(h, 0, 0)); /* entry 0 is read before every store */
        ck_assert_int_eq(store_n(h, n, NULL), RP_SHM_OK);
    }
    ck_assert(holds_n(h, 0, 0));
    ck_assert(!holds_n(h, 1, 0));
}
END_TEST

START_TEST(test_a_fifo_table_evicts_in_storing_order_whatever_is_read)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 1);
    uint32_t n;
    for (n = 0; hstats(h).forced == 0; n++) {
        ck_assert(n < 3 || holds_n(h, 0, 0));
        ck_assert_int_eq(store_n(h, n, NULL), RP_SHM_OK);
    }
    ck_assert(!holds_n(h, 0, 0));
    ck_assert(holds_n(h, n - 1, 0));
}
END_TEST

START_TEST(test_expired_entries_at_the_old_end_go_before_live_ones_are_forced_out)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 0);
    static const char v[] = "0123456789012345678901234567890123456789";
    char key[16];
    /* a few live entries, the least recently used, then entries expiring at 10 until
     * the zone is full */
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "old%d", i);
        ck_assert_int_eq(store(h, key, v, 0, RP_SHM_HASH_SET, 0), RP_SHM_OK);
    }
    for (uint32_t n = 0; hstats(h).forced == 0; n++) {
        snprintf(key, sizeof(key), "k%u", n);
        ck_assert_int_eq(store(h, key, v, 10, RP_SHM_HASH_SET, 1), RP_SHM_OK);
    }
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
    /* the first forced ones were old live ones: that was before anything expired */
    uint64_t forced = hstats(h).forced, room = hstats(h).entries;
    uint64_t old_left = 0;
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "old%d", i);
        int64_t ttl; /* asking for it leaves the entry's place in the LRU list */
        old_left += rp_shm_hash_ttl_locked(h, key, strlen(key), 1, &ttl) == RP_SHM_OK;
    }
    /* at 10, as many new entries as expired ones fit, and no live one is forced out */
    for (uint32_t i = 0; i < room - old_left; i++) {
        snprintf(key, sizeof(key), "new%u", i);
        ck_assert_int_eq(store(h, key, v, 0, RP_SHM_HASH_SET, 10), RP_SHM_OK);
    }
    ck_assert_uint_eq(hstats(h).forced, forced);
    ck_assert_uint_eq(hstats(h).entries, room);
    ck_assert_uint_gt(old_left, 0);
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
}
END_TEST

START_TEST(test_a_safe_store_fails_rather_than_force_out_a_live_entry)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 0);
    uint32_t n;
    for (n = 0; hstats(h).forced == 0; n++)
        ck_assert_int_eq(store_n(h, n, NULL), RP_SHM_OK);
    uint64_t entries = hstats(h).entries;
    static char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    ck_assert_int_eq(store(h, "big", big, 0, RP_SHM_HASH_SET | RP_SHM_HASH_SAFE, 0),
                     RP_SHM_NO_MEMORY);
    ck_assert_uint_eq(hstats(h).entries, entries);
    unsigned forced = 0;
    rp_shm_hash_item_t it = {.key = "big", .key_len = 3, .value = big, .value_len = 2999};
    ck_assert_int_eq(rp_shm_hash_store_locked(h, &it, RP_SHM_HASH_SET, 0, &forced), RP_SHM_OK);
    ck_assert_uint_gt(forced, 0); /* lua_shared_dict's "forcible" */
}
END_TEST

START_TEST(test_max_forced_bounds_what_one_store_forces_out)
{
    free(mem);
    mem = malloc(64 * 1024);
    rp_shm_hash_conf_t conf = {.max_forced = 2};
    rp_shm_hash_t *h = rp_shm_hash_init(mem, 64 * 1024, &conf);
    char key[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        store(h, key, "0123456789012345678901234567890123456789", 0, RP_SHM_HASH_SET, 0);
    }
    static char big[9000];
    memset(big, 'x', sizeof(big) - 1);
    uint64_t entries = hstats(h).entries;
    unsigned forced = 0;
    rp_shm_hash_item_t it = {.key = "big", .key_len = 3, .value = big, .value_len = 8999};
    ck_assert_int_eq(rp_shm_hash_store_locked(h, &it, RP_SHM_HASH_SET, 0, &forced),
                     RP_SHM_NO_MEMORY);
    ck_assert_uint_eq(forced, 2);
    ck_assert_uint_eq(hstats(h).entries, entries - 2);
}
END_TEST

START_TEST(test_pinned_entries_are_never_forced_out)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 0);
    ck_assert_int_eq(store(h, "peer-a", "state", 0, RP_SHM_HASH_SET | RP_SHM_HASH_PIN, 0),
                     RP_SHM_OK);
    rp_shm_hash_item_t it;
    rp_shm_hash_get_locked(h, "peer-a", 6, 0, 0, &it);
    const void *where = it.value;
    for (uint32_t n = 0; n < 2000; n++)
        ck_assert_int_eq(store_n(h, n, NULL), RP_SHM_OK);
    ck_assert_uint_gt(hstats(h).forced, 100);
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "peer-a", 6, 0, 0, &it), RP_SHM_OK);
    ck_assert_ptr_eq(it.value, where);
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), 0);
}
END_TEST

typedef struct {
    int64_t excess;
    int64_t last;
} limit_state_t;

START_TEST(test_reserve_finds_or_creates_a_record_updated_in_place)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 0);
    rp_shm_hash_item_t it = {
        .key = "10.0.0.1", .key_len = 8, .value_len = sizeof(limit_state_t), .expires = 100};
    limit_state_t *st = NULL, *again = NULL;
    ck_assert_int_eq(rp_shm_hash_reserve_locked(h, &it, 0, 0, (void **)&st, NULL), RP_SHM_CREATED);
    ck_assert_uint_eq((uintptr_t)st % 8, 0);
    ck_assert_int_eq(st->excess, 0); /* made of zeros */
    st->excess = 7;
    st->last = 42;
    ck_assert_int_eq(rp_shm_hash_reserve_locked(h, &it, 0, 1, (void **)&again, NULL), RP_SHM_OK);
    ck_assert_ptr_eq(again, st);
    ck_assert_int_eq(again->excess, 7);
    /* expired, it is made afresh */
    ck_assert_int_eq(rp_shm_hash_reserve_locked(h, &it, 0, 100, (void **)&again, NULL),
                     RP_SHM_CREATED);
    ck_assert_int_eq(again->excess, 0);
    ck_assert_uint_eq(hstats(h).entries, 1);
}
END_TEST

START_TEST(test_a_damaged_chain_is_reported_not_followed)
{
    rp_shm_hash_t *h = table_of(64 * 1024, 0);
    ck_assert_int_eq(set(h, "k", "value"), RP_SHM_OK);
    rp_shm_hash_item_t it;
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "k", 1, 0, 0, &it), RP_SHM_OK);
    /* the entry's header lies before its key: scribble over it */
    memset((char *)it.key - 40, 0xee, 40);
    ck_assert_int_eq(rp_shm_hash_get_locked(h, "k", 1, 0, 0, &it), RP_SHM_DAMAGED);
    ck_assert_int_eq(rp_shm_hash_verify_locked(h), -1);
    ck_assert_int_eq(set(h, "other", "v"), RP_SHM_DAMAGED);
    /* laid out again, it works */
    h = rp_shm_hash_init(mem, mem_size, &(rp_shm_hash_conf_t){0});
    ck_assert_int_eq(set(h, "other", "v"), RP_SHM_OK);
    ck_assert_str_eq(get(h, "other", 0), "v");
}
END_TEST

START_TEST(test_buckets_follow_the_zone_size)
{
    ck_assert_uint_eq(hstats(table_of(64 * 1024, 0)).buckets, 128);
    ck_assert_uint_eq(hstats(table_of(1024 * 1024, 0)).buckets, 2048);
    rp_shm_hash_t *h = table_of(1024 * 1024, 0);
    ck_assert_ptr_eq(rp_shm_hash_attach(mem, mem_size), h);
    ck_assert_ptr_null(rp_shm_hash_attach(mem, mem_size / 2));
}
END_TEST

/* ---- several processes ---- */

/* A zone borrowed from an ssl_session_cache directive: its lock and its memory. */
static rp_cycle_t *cycle;
static rp_shm_zone_t *zone;

static void zone_setup(void)
{
    ut_setup_dir();
    cycle = ut_load_ok("http {\n"
                       "    ssl_session_cache shared:T:4m;\n"
                       "    server {\n"
                       "        listen 127.0.0.1:8080;\n"
                       "    }\n"
                       "}\n");
    char err[512];
    ck_assert_msg(rp_shm_open(cycle, NULL, err, sizeof(err)) == 0, "%s", err);
    zone = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, 0);
}

static void zone_teardown(void)
{
    rp_cycle_destroy(cycle);
    ut_teardown_dir();
}

/* Runs body(i) in each of n child processes and waits for them all to exit 0. */
static void in_children(int n, void (*body)(int))
{
    pid_t pids[16];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            body(i);
            _exit(0);
        }
    }
    for (int i = 0; i < n; i++) {
        int status;
        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", i);
    }
}

enum { CHILDREN = 4, INCRS = 50000, KEYS = 16, ADDS = 500000 };

typedef struct {
    rp_shm_counter_t ready; /* children at the start line */
    rp_shm_counter_t hits;
    rp_shm_counter_t peak;
    rp_shm_double_t sum;
} shared_counters_t;

static rp_shm_hash_t *table;
static shared_counters_t *counters;

static void hammer(int child)
{
    /* start together, or the first child could be done before the last is forked */
    rp_shm_counter_add(&counters->ready, 1);
    while (rp_shm_counter_get(&counters->ready) < CHILDREN)
        sched_yield();
    for (int i = 0; i < INCRS; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%d", i % KEYS);
        double zero = 0, r;
        rp_shm_lock(zone);
        int rc = rp_shm_hash_incr_locked(table, key, strlen(key), 1, &zero, 0, 0, &r, NULL);
        rp_shm_unlock(zone);
        if (rc != RP_SHM_OK)
            _exit(1);
        rp_shm_counter_max(&counters->peak, child * INCRS + i);
    }
    /* without the lock, as fast as they go: only atomic updates keep every one */
    for (int i = 0; i < ADDS; i++) {
        rp_shm_counter_add(&counters->hits, 1);
        rp_shm_double_add(&counters->sum, 0.5);
    }
}

START_TEST(test_processes_hammering_one_table_and_its_counters_get_exact_totals)
{
    rp_shm_lock(zone);
    table = rp_shm_hash_init(zone->addr, zone->avail, &(rp_shm_hash_conf_t){0});
    ck_assert_ptr_nonnull(table);
    counters = rp_shm_slab_calloc_locked(rp_shm_hash_slab(table), sizeof(*counters));
    rp_shm_unlock(zone);
    in_children(CHILDREN, hammer);
    rp_shm_lock(zone);
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof(key), "key%d", k);
        rp_shm_hash_item_t it;
        ck_assert_int_eq(rp_shm_hash_get_locked(table, key, strlen(key), 0, 0, &it), RP_SHM_OK);
        double v;
        memcpy(&v, it.value, sizeof(v));
        ck_assert_msg(v == CHILDREN * INCRS / KEYS, "%s counted %f", key, v);
    }
    ck_assert_int_eq(rp_shm_hash_verify_locked(table), 0);
    rp_shm_unlock(zone);
    ck_assert_int_eq(rp_shm_counter_get(&counters->hits), CHILDREN * ADDS);
    ck_assert_int_eq(rp_shm_counter_get(&counters->peak), CHILDREN * INCRS - 1);
    ck_assert(rp_shm_double_get(&counters->sum) == CHILDREN * ADDS * 0.5);
}
END_TEST

enum { OWN_KEYS = 3000 };

static void insert_and_delete(int child)
{
    char key[32], value[32];
    for (int i = 0; i < OWN_KEYS; i++) {
        snprintf(key, sizeof(key), "child%d-key%d", child, i);
        snprintf(value, sizeof(value), "value of %d/%d", child, i);
        rp_shm_hash_item_t it = {
            .key = key, .key_len = strlen(key), .value = value, .value_len = strlen(value)};
        rp_shm_lock(zone);
        int rc = rp_shm_hash_store_locked(table, &it, RP_SHM_HASH_ADD, 0, NULL);
        rp_shm_unlock(zone);
        if (rc != RP_SHM_OK)
            _exit(1);
        if (i % 3 == 0) {
            snprintf(key, sizeof(key), "child%d-key%d", child, i / 2);
            rp_shm_lock(zone);
            rc = rp_shm_hash_delete_locked(table, key, strlen(key), 0);
            rp_shm_unlock(zone);
            if (rc != RP_SHM_OK && rc != RP_SHM_NOT_FOUND)
                _exit(2);
        }
    }
}

START_TEST(test_concurrent_inserts_and_deletes_of_distinct_keys_leave_a_consistent_table)
{
    rp_shm_lock(zone);
    table = rp_shm_hash_init(zone->addr, zone->avail, &(rp_shm_hash_conf_t){0});
    ck_assert_ptr_nonnull(table);
    rp_shm_unlock(zone);
    in_children(CHILDREN, insert_and_delete);
    /* which keys a child deleted: i/2 for every i divisible by 3 */
    static char deleted[OWN_KEYS];
    for (int i = 0; i < OWN_KEYS; i += 3)
        deleted[i / 2] = 1;
    size_t kept = 0;
    for (int i = 0; i < OWN_KEYS; i++)
        kept += !deleted[i];
    rp_shm_lock(zone);
    ck_assert_int_eq(rp_shm_hash_verify_locked(table), 0);
    ck_assert_uint_eq(hstats(table).entries, CHILDREN * kept);
    ck_assert_uint_eq(hstats(table).forced, 0);
    for (int c = 0; c < CHILDREN; c++) {
        for (int i = 0; i < OWN_KEYS; i++) {
            char key[32], value[32];
            snprintf(key, sizeof(key), "child%d-key%d", c, i);
            snprintf(value, sizeof(value), "value of %d/%d", c, i);
            const char *got = get(table, key, 0);
            if (deleted[i])
                ck_assert_msg(got == NULL, "%s was deleted", key);
            else
                ck_assert_msg(got && strcmp(got, value) == 0, "%s: %s", key, got ? got : "none");
        }
    }
    rp_shm_unlock(zone);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shm_hash");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_a_stored_value_comes_back_under_its_key_only);
    tcase_add_test(tc, test_delete_drops_an_entry_and_gives_its_memory_back);
    tcase_add_test(tc, test_add_stores_only_a_new_key_and_replace_only_an_existing_one);
    tcase_add_test(tc, test_set_replaces_a_value_of_any_new_size);
    tcase_add_test(tc, test_incr_grows_a_number_and_creates_it_from_init_with_its_ttl);
    tcase_add_test(tc, test_an_expired_entry_is_absent_and_dropped);
    tcase_add_test(tc, test_ttl_and_expire_read_and_change_an_entrys_lifetime);
    tcase_add_test(tc, test_flush_expired_drops_only_expired_entries_oldest_first);
    tcase_add_test(tc, test_flush_all_empties_the_table_and_gives_the_memory_back);
    tcase_add_test(tc, test_each_visits_unexpired_entries_most_recent_first);
    tcase_add_test(tc, test_full_zone_evicts_least_recently_used_first);
    tcase_add_test(tc, test_a_read_entry_outlives_older_unread_ones);
    tcase_add_test(tc, test_a_fifo_table_evicts_in_storing_order_whatever_is_read);
    tcase_add_test(tc, test_expired_entries_at_the_old_end_go_before_live_ones_are_forced_out);
    tcase_add_test(tc, test_a_safe_store_fails_rather_than_force_out_a_live_entry);
    tcase_add_test(tc, test_max_forced_bounds_what_one_store_forces_out);
    tcase_add_test(tc, test_pinned_entries_are_never_forced_out);
    tcase_add_test(tc, test_reserve_finds_or_creates_a_record_updated_in_place);
    tcase_add_test(tc, test_a_damaged_chain_is_reported_not_followed);
    tcase_add_test(tc, test_buckets_follow_the_zone_size);
    suite_add_tcase(s, tc);
    TCase *procs = tcase_create("processes");
    tcase_add_checked_fixture(procs, zone_setup, zone_teardown);
    tcase_set_timeout(procs, 300); /* sanitizers on two shared cores: no tight bound */
    tcase_add_test(procs, test_processes_hammering_one_table_and_its_counters_get_exact_totals);
    tcase_add_test(procs,
                   test_concurrent_inserts_and_deletes_of_distinct_keys_leave_a_consistent_table);
    suite_add_tcase(s, procs);
    return ut_run(s);
}
