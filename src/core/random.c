/*
 * The worker's random numbers: request ids, fault injection, and later the
 * balancers' choices. They need to be unpredictable enough and unique, not
 * secret, and must cost no system call per request.
 */
#include "core/random.h"

#include <pthread.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

/* xoshiro256** seeded from the kernel once per process: request ids need to be unique,
 * not secret, and this costs no syscall per request. */
static uint64_t rng_s[4];
static int rng_seeded;

static void rng_forked(void)
{
    rng_seeded = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rp_random(void)
{
    if (!rng_seeded) {
        /* a forked worker must not repeat its parent's sequence */
        static int hooked;
        if (!hooked && pthread_atfork(NULL, NULL, rng_forked) == 0)
            hooked = 1;
        if (getentropy(rng_s, sizeof(rng_s)) != 0) {
            struct timeval tv;
            gettimeofday(&tv, NULL);
            rng_s[0] = (uint64_t)tv.tv_sec * 1000003u ^ (uint64_t)tv.tv_usec;
            rng_s[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
            rng_s[2] = rng_s[0] ^ 0xda942042e4dd58b5ull;
            rng_s[3] = rng_s[1] ^ 0x2545f4914f6cdd1dull;
        }
        rng_seeded = hooked;
    }
    uint64_t result = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return result;
}

