/*
 * The slab allocator of a shared memory block (src/core/shm_slab.c), on ordinary
 * memory: every size class hands out slots of its size and takes them back, large
 * allocations take runs of whole pages, freed runs merge with their free
 * neighbours so that the whole block can be one allocation again, a full block
 * answers NULL and recovers, allocations never overlap whatever the mix of
 * sizes, the statistics count what is handed out, and what is not an allocation
 * cannot be freed.
 */
#include "core/shm_slab.h"
#include "unit.h"

#include <stdint.h>

static unsigned char *mem;

static rp_shm_slab_t *block(size_t size)
{
    free(mem);
    mem = malloc(size);
    ck_assert_ptr_nonnull(mem);
    memset(mem, 0xa5, size); /* the allocator must not rely on zeroed memory */
    rp_shm_slab_t *s = rp_shm_slab_init(mem, size);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void teardown(void)
{
    free(mem);
    mem = NULL;
}

static rp_shm_slab_stats_t stats(rp_shm_slab_t *s)
{
    rp_shm_slab_stats_t st;
    rp_shm_slab_stats_locked(s, &st);
    return st;
}

/* Whether nothing is handed out: all pages free, no slot used. */
static int empty(rp_shm_slab_t *s)
{
    rp_shm_slab_stats_t st = stats(s);
    for (unsigned c = 0; c < st.nclasses; c++)
        if (st.classes[c].used || st.classes[c].pages)
            return 0;
    return st.pages_free == st.pages_total && st.run_pages == 0;
}

START_TEST(test_every_class_hands_out_slots_of_its_size_and_takes_them_back)
{
    rp_shm_slab_t *s = block(1024 * 1024);
    rp_shm_slab_stats_t st = stats(s);
    ck_assert_uint_eq(st.page_size, 4096);
    ck_assert_uint_eq(st.nclasses, 9);
    enum { PER = 40 };
    void *p[RP_SHM_SLAB_MAX_CLASSES][PER];
    for (unsigned c = 0; c < st.nclasses; c++) {
        size_t size = st.classes[c].size;
        ck_assert_uint_eq(size, (size_t)8 << c);
        for (int i = 0; i < PER; i++) {
            /* the smallest size of the class and its full size both land in it */
            size_t ask = i % 2 ? size : size / 2 + 1;
            p[c][i] = rp_shm_slab_alloc_locked(s, ask);
            ck_assert_ptr_nonnull(p[c][i]);
            ck_assert_uint_eq((uintptr_t)p[c][i] % 8, 0);
            ck_assert_uint_eq(rp_shm_slab_size_locked(s, p[c][i]), size);
        }
        ck_assert_uint_eq(stats(s).classes[c].used, PER);
        ck_assert_uint_eq(stats(s).classes[c].pages, (PER * size + 4095) / 4096);
    }
    for (unsigned c = 0; c < st.nclasses; c++)
        for (int i = 0; i < PER; i++)
            ck_assert_int_eq(rp_shm_slab_free_locked(s, p[c][i]), 0);
    ck_assert(empty(s));
}
END_TEST

START_TEST(test_a_large_allocation_takes_a_run_of_whole_pages)
{
    rp_shm_slab_t *s = block(1024 * 1024);
    size_t free0 = stats(s).pages_free;
    void *p = rp_shm_slab_alloc_locked(s, 3 * 4096 - 100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(rp_shm_slab_size_locked(s, p), 3 * 4096);
    ck_assert_uint_eq(stats(s).run_pages, 3);
    ck_assert_uint_eq(stats(s).pages_free, free0 - 3);
    /* just over half a page is a page of its own */
    void *q = rp_shm_slab_alloc_locked(s, 2049);
    ck_assert_uint_eq(rp_shm_slab_size_locked(s, q), 4096);
    ck_assert_int_eq(rp_shm_slab_free_locked(s, p), 0);
    ck_assert_int_eq(rp_shm_slab_free_locked(s, q), 0);
    ck_assert(empty(s));
}
END_TEST

START_TEST(test_freed_runs_merge_so_the_whole_block_is_one_allocation_again)
{
    rp_shm_slab_t *s = block(256 * 1024);
    size_t page = stats(s).page_size, n = stats(s).pages_total;
    void **p = calloc(n, sizeof(void *));
    for (size_t i = 0; i < n; i++)
        ck_assert_ptr_nonnull(p[i] = rp_shm_slab_alloc_locked(s, page));
    ck_assert_ptr_null(rp_shm_slab_alloc_locked(s, 8));
    /* free them in an order that merges on the left, on the right and on both sides */
    for (size_t i = 0; i < n; i += 3)
        ck_assert_int_eq(rp_shm_slab_free_locked(s, p[i]), 0);
    for (size_t i = 2; i < n; i += 3)
        ck_assert_int_eq(rp_shm_slab_free_locked(s, p[i]), 0);
    ck_assert_ptr_null(rp_shm_slab_alloc_locked(s, 3 * page)); /* no three in a row yet */
    for (size_t i = 1; i < n; i += 3)
        ck_assert_int_eq(rp_shm_slab_free_locked(s, p[i]), 0);
    void *all = rp_shm_slab_alloc_locked(s, rp_shm_slab_max_alloc(s));
    ck_assert_ptr_nonnull(all);
    ck_assert_int_eq(rp_shm_slab_free_locked(s, all), 0);
    ck_assert(empty(s));
    free(p);
}
END_TEST

START_TEST(test_a_full_block_answers_null_and_recovers_when_memory_comes_back)
{
    rp_shm_slab_t *s = block(64 * 1024);
    void *p[10000];
    size_t n = 0;
    while ((p[n] = rp_shm_slab_alloc_locked(s, 100)) != NULL)
        ck_assert_uint_lt(++n, 10000);
    ck_assert_uint_gt(n, 300);
    uint64_t failures = stats(s).failures;
    ck_assert_uint_eq(stats(s).pages_free, 0);
    ck_assert_ptr_null(rp_shm_slab_alloc_locked(s, 100));
    ck_assert_ptr_null(rp_shm_slab_alloc_locked(s, 5000));
    ck_assert_uint_eq(stats(s).failures, failures + 2);
    /* a freed slot serves its class at once */
    ck_assert_int_eq(rp_shm_slab_free_locked(s, p[n / 2]), 0);
    ck_assert_ptr_eq(rp_shm_slab_alloc_locked(s, 100), p[n / 2]);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(rp_shm_slab_free_locked(s, p[i]), 0);
    ck_assert(empty(s));
    ck_assert_ptr_nonnull(rp_shm_slab_alloc_locked(s, 5000));
}
END_TEST

/* Bytes derived from an allocation's number, so that an overlap shows. */
static void paint(unsigned char *p, size_t len, uint32_t n)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(n * 29 + i * 13 + (i >> 8));
}

static int intact(const unsigned char *p, size_t len, uint32_t n)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (unsigned char)(n * 29 + i * 13 + (i >> 8)))
            return 0;
    return 1;
}

START_TEST(test_allocations_never_overlap_whatever_the_mix_of_sizes)
{
    rp_shm_slab_t *s = block(512 * 1024);
    enum { SLOTS = 600 };
    unsigned char *p[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    uint32_t seed = 7;
    for (int step = 0; step < 30000; step++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t k = (seed >> 8) % SLOTS;
        if (p[k]) {
            ck_assert_msg(intact(p[k], len[k], k), "allocation %u was overwritten", k);
            ck_assert_int_eq(rp_shm_slab_free_locked(s, p[k]), 0);
            p[k] = NULL;
            continue;
        }
        /* mostly small, sometimes a few pages */
        len[k] = seed % 5 ? 1 + (seed >> 16) % 600 : 1 + (seed >> 12) % (3 * 4096);
        if ((p[k] = rp_shm_slab_alloc_locked(s, len[k])) == NULL)
            continue; /* full for now */
        ck_assert_uint_ge(rp_shm_slab_size_locked(s, p[k]), len[k]);
        paint(p[k], len[k], k);
    }
    for (uint32_t k = 0; k < SLOTS; k++) {
        if (p[k]) {
            ck_assert_msg(intact(p[k], len[k], k), "allocation %u was overwritten", k);
            ck_assert_int_eq(rp_shm_slab_free_locked(s, p[k]), 0);
        }
    }
    ck_assert(empty(s));
}
END_TEST

START_TEST(test_what_is_not_an_allocation_cannot_be_freed)
{
    rp_shm_slab_t *s = block(256 * 1024);
    char *run = rp_shm_slab_alloc_locked(s, 3 * 4096);
    char *slot = rp_shm_slab_alloc_locked(s, 64);
    rp_shm_slab_stats_t before = stats(s);
    ck_assert_int_eq(rp_shm_slab_free_locked(s, run + 4096), -1); /* inside a run */
    ck_assert_int_eq(rp_shm_slab_free_locked(s, slot + 8), -1);   /* inside a slot */
    ck_assert_int_eq(rp_shm_slab_free_locked(s, slot + 64), -1);  /* never handed out */
    ck_assert_int_eq(rp_shm_slab_free_locked(s, mem + 8), -1);    /* the header */
    ck_assert_int_eq(rp_shm_slab_free_locked(s, run + 1), -1);    /* misaligned */
    ck_assert_uint_eq(rp_shm_slab_size_locked(s, run + 4096), 0);
    rp_shm_slab_stats_t after = stats(s);
    ck_assert_int_eq(memcmp(&before, &after, sizeof(before)), 0);
    ck_assert_int_eq(rp_shm_slab_free_locked(s, run), 0);
    ck_assert_int_eq(rp_shm_slab_free_locked(s, slot), 0);
    ck_assert(empty(s));
}
END_TEST

START_TEST(test_a_small_block_gets_smaller_pages)
{
    rp_shm_slab_t *s = block(16 * 1024);
    ck_assert_uint_eq(stats(s).page_size, 512);
    ck_assert_uint_ge(stats(s).pages_total, 28);
    ck_assert_uint_eq(stats(s).nclasses, 6); /* 8 to 256 */
    void *p = rp_shm_slab_alloc_locked(s, 256);
    ck_assert_uint_eq(rp_shm_slab_size_locked(s, p), 256);
    void *q = rp_shm_slab_alloc_locked(s, 257);
    ck_assert_uint_eq(rp_shm_slab_size_locked(s, q), 512);
    ck_assert_ptr_null(rp_shm_slab_init(mem, 2048)); /* too small for a few pages */
}
END_TEST

START_TEST(test_a_block_is_attached_only_at_its_size)
{
    rp_shm_slab_t *s = block(64 * 1024);
    ck_assert_ptr_eq(rp_shm_slab_attach(mem, 64 * 1024), s);
    ck_assert_ptr_null(rp_shm_slab_attach(mem, 32 * 1024));
    *rp_shm_slab_root(s) = 1234;
    ck_assert_uint_eq(*rp_shm_slab_root(rp_shm_slab_attach(mem, 64 * 1024)), 1234);
    memset(mem, 0, 16);
    ck_assert_ptr_null(rp_shm_slab_attach(mem, 64 * 1024));
}
END_TEST

START_TEST(test_a_reference_names_its_address_and_a_stray_one_names_none)
{
    rp_shm_slab_t *s = block(64 * 1024);
    void *p = rp_shm_slab_alloc_locked(s, 40);
    uint32_t ref = rp_shm_slab_ref(s, p);
    ck_assert_uint_ne(ref, 0);
    ck_assert_ptr_eq(rp_shm_slab_ptr(s, ref), p);
    ck_assert_uint_eq(rp_shm_slab_ref(s, NULL), 0);
    ck_assert_ptr_null(rp_shm_slab_ptr(s, 0));
    ck_assert_ptr_null(rp_shm_slab_ptr(s, 1));          /* the header */
    ck_assert_ptr_null(rp_shm_slab_ptr(s, UINT32_MAX)); /* past the block */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shm_slab");
    TCase *tc = tcase_create("slab");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_every_class_hands_out_slots_of_its_size_and_takes_them_back);
    tcase_add_test(tc, test_a_large_allocation_takes_a_run_of_whole_pages);
    tcase_add_test(tc, test_freed_runs_merge_so_the_whole_block_is_one_allocation_again);
    tcase_add_test(tc, test_a_full_block_answers_null_and_recovers_when_memory_comes_back);
    tcase_add_test(tc, test_allocations_never_overlap_whatever_the_mix_of_sizes);
    tcase_add_test(tc, test_what_is_not_an_allocation_cannot_be_freed);
    tcase_add_test(tc, test_a_small_block_gets_smaller_pages);
    tcase_add_test(tc, test_a_block_is_attached_only_at_its_size);
    tcase_add_test(tc, test_a_reference_names_its_address_and_a_stray_one_names_none);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
