/*
 * A fast per-process random number generator (xoshiro256**), seeded from the
 * kernel once and again after a fork, so workers never share a sequence.
 */
#ifndef RP_RANDOM_H
#define RP_RANDOM_H

#include <stdint.h>

/* 64 random bits. */
uint64_t rp_random(void);

/* A random number in [0, n) (n > 0). */
static inline uint64_t rp_random_below(uint64_t n)
{
    return rp_random() % n;
}

#endif
