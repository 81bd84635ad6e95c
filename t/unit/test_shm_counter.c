/*
 * Counters updated without the zone's lock (src/core/shm_counter.h), in one
 * process: adding and subtracting, compare-and-swap that reports what it found,
 * a maximum that only rises, and averages of doubles (plain and peak EWMA).
 * test_shm_hash.c hammers them from several processes at once.
 */
#include "core/shm_counter.h"
#include "unit.h"

START_TEST(test_a_counter_adds_and_subtracts)
{
    rp_shm_counter_t c = {0};
    ck_assert_int_eq(rp_shm_counter_add(&c, 5), 5);
    ck_assert_int_eq(rp_shm_counter_add(&c, -7), -2);
    rp_shm_counter_set(&c, 40);
    ck_assert_int_eq(rp_shm_counter_get(&c), 40);
}
END_TEST

START_TEST(test_compare_and_swap_changes_only_what_it_expected)
{
    rp_shm_counter_t c = {3};
    int64_t expected = 4;
    ck_assert_int_eq(rp_shm_counter_cas(&c, &expected, 10), 0);
    ck_assert_int_eq(expected, 3); /* what it found */
    ck_assert_int_eq(rp_shm_counter_get(&c), 3);
    ck_assert_int_eq(rp_shm_counter_cas(&c, &expected, 10), 1);
    ck_assert_int_eq(rp_shm_counter_get(&c), 10);
}
END_TEST

START_TEST(test_a_maximum_only_rises)
{
    rp_shm_counter_t c = {0};
    ck_assert_int_eq(rp_shm_counter_max(&c, 7), 7);
    ck_assert_int_eq(rp_shm_counter_max(&c, 3), 7);
    ck_assert_int_eq(rp_shm_counter_get(&c), 7);
}
END_TEST

START_TEST(test_an_ewma_moves_toward_its_samples_by_its_weight)
{
    rp_shm_double_t d = {0};
    rp_shm_double_set(&d, 100);
    ck_assert(rp_shm_double_ewma(&d, 200, 0.25) == 125);
    ck_assert(rp_shm_double_ewma(&d, 125, 0.5) == 125);
    ck_assert(rp_shm_double_add(&d, 0.5) == 125.5);
}
END_TEST

START_TEST(test_a_peak_ewma_jumps_up_at_once_and_decays_gradually)
{
    rp_shm_double_t d = {0};
    rp_shm_double_set(&d, 10);
    ck_assert(rp_shm_double_peak_ewma(&d, 50, 0.1) == 50); /* a slow answer counts at once */
    ck_assert(rp_shm_double_peak_ewma(&d, 10, 0.5) == 30); /* fast ones pull it down */
    ck_assert(rp_shm_double_get(&d) == 30);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("shm_counter");
    TCase *tc = tcase_create("counter");
    tcase_add_test(tc, test_a_counter_adds_and_subtracts);
    tcase_add_test(tc, test_compare_and_swap_changes_only_what_it_expected);
    tcase_add_test(tc, test_a_maximum_only_rises);
    tcase_add_test(tc, test_an_ewma_moves_toward_its_samples_by_its_weight);
    tcase_add_test(tc, test_a_peak_ewma_jumps_up_at_once_and_decays_gradually);
    suite_add_tcase(s, tc);
    return ut_run(s);
}
