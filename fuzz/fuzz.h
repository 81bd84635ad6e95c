/*
 * What the fuzz targets share: a contract check that crashes, and the ways an
 * input is cut into the pieces a network could deliver it in.
 *
 * The cuts are derived from the input itself (a hash of its bytes seeds a small
 * generator, and the syntax it contains gives natural boundaries), so every input
 * replays exactly, a corpus file stays a plain HTTP message, and a mutation that
 * changes one byte also tries the message under different cuts. The parsers
 * promise that how the bytes are cut never changes what they decide; a target
 * checks that promise and aborts, leaving libFuzzer's crash artifact, if it breaks.
 */
#ifndef RP_FUZZ_H
#define RP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken contract is a crash, so libFuzzer saves the input and CI fails. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: contract violated: %s (%s:%d)\n", #cond, __FILE__, __LINE__);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* FNV-1a: the seed of everything the target derives from an input. */
static inline uint64_t fuzz_hash(const uint8_t *data, size_t len, uint64_t salt)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ salt;
    for (size_t i = 0; i < len; i++) {
        h ^= data[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* splitmix64 */
static inline uint64_t fuzz_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A copy of data[0..len) in its own allocation of exactly len bytes, so ASan sees any read
 * past what the parser was given (malloc(0) may return NULL; one byte keeps it valid). */
static inline char *fuzz_copy(const uint8_t *data, size_t len)
{
    char *b = malloc(len ? len : 1);
    FUZZ_CHECK(b != NULL);
    if (len)
        memcpy(b, data, len);
    return b;
}

#define FUZZ_MAX_CUTS 4096

typedef enum {
    CUT_BYTES,  /* after every byte */
    CUT_SYNTAX, /* after every CR, LF, colon, space and semicolon: where states change */
    CUT_RANDOM, /* a few cuts from the generator, repeats allowed (a read that added nothing) */
    CUT_KINDS,
} fuzz_cut_kind_t;

/*
 * Fills cuts[] (ascending, each in 1..len-1 except CUT_RANDOM's repeats) with the
 * cut points of one kind and returns how many. The pieces are data[0..cuts[0]),
 * data[cuts[0]..cuts[1]), ..., data[cuts[n-1]..len).
 */
static inline size_t fuzz_cuts(fuzz_cut_kind_t kind, const uint8_t *data, size_t len, uint64_t seed,
                               size_t *cuts)
{
    size_t n = 0;
    if (len < 2)
        return 0;
    switch (kind) {
    case CUT_BYTES:
        for (size_t i = 1; i < len && n < FUZZ_MAX_CUTS; i++)
            cuts[n++] = i;
        break;
    case CUT_SYNTAX:
        for (size_t i = 0; i + 1 < len && n < FUZZ_MAX_CUTS; i++) {
            uint8_t c = data[i];
            if (c == '\r' || c == '\n' || c == ':' || c == ' ' || c == ';')
                cuts[n++] = i + 1;
        }
        break;
    case CUT_RANDOM: {
        uint64_t st = seed;
        size_t k = 1 + fuzz_next(&st) % 16;
        for (size_t j = 0; j < k; j++)
            cuts[n++] = 1 + fuzz_next(&st) % (len - 1);
        /* insertion sort: k is small */
        for (size_t a = 1; a < n; a++)
            for (size_t b = a; b > 0 && cuts[b - 1] > cuts[b]; b--) {
                size_t t = cuts[b];
                cuts[b] = cuts[b - 1];
                cuts[b - 1] = t;
            }
        break;
    }
    default:
        break;
    }
    return n;
}

#endif
