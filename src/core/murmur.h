/*
 * MurmurHash2 (Austin Appleby's 32-bit hash, seed 0, words read little-endian), the
 * hash nginx gives split_clients: the same string lands in the same bucket under
 * rampart as under nginx, so a split carried over keeps every client where it was.
 */
#ifndef RP_MURMUR_H
#define RP_MURMUR_H

#include <stddef.h>
#include <stdint.h>

/* The MurmurHash2 of data[0..len). */
static inline uint32_t rp_murmur_hash2(const void *data, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    const unsigned char *p = data;
    uint32_t h = (uint32_t)len; /* the seed (0) mixed with the length */

    for (; len >= 4; p += 4, len -= 4) {
        uint32_t k =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h = h * m ^ k;
    }
    /* the last one to three bytes */
    switch (len) {
    case 3:
        h ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        h ^= p[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

#endif
