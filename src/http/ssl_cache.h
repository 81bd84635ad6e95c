/*
 * The TLS session cache's data structure, on its own: a block of memory holding
 * serialized sessions keyed by session ID context and session ID, in the shared
 * memory toolkit's hash table. It knows nothing of OpenSSL's sessions (it hashes a
 * key with SHA-256), locks or zones, so it is tested on ordinary memory; ssl_session.c puts it in a shared zone and takes
 * the zone's lock around every call. Every call is given the block's size, so a
 * block whose header is damaged is laid out again rather than trusted.
 */
#ifndef RP_SSL_CACHE_H
#define RP_SSL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#define RP_SSL_CACHE_MAX_ID  32   /* SSL_MAX_SSL_SESSION_ID_LENGTH */
#define RP_SSL_CACHE_MAX_CTX 32   /* SSL_MAX_SID_CTX_LENGTH */
#define RP_SSL_CACHE_MAX_DER 4096 /* a larger session is not cached */
#define RP_SSL_CACHE_LAYOUT  2    /* the zone's layout version (1 was a ring of records) */

typedef struct {
    const unsigned char *id; /* session ID, 1 to RP_SSL_CACHE_MAX_ID bytes */
    size_t id_len;
    const unsigned char *ctx; /* session ID context, up to RP_SSL_CACHE_MAX_CTX bytes */
    size_t ctx_len;
} rp_ssl_cache_key_t;

typedef struct {
    uint64_t entries;  /* sessions held (expired ones included until they are dropped) */
    uint64_t stored;   /* since the cache was laid out */
    uint64_t evicted;  /* pushed out before they expired, to make room */
    uint64_t used;     /* bytes of the pages in use */
    uint64_t capacity; /* bytes of all the pages */
} rp_ssl_cache_stats_t;

/* The smallest block rp_ssl_cache_init accepts: room for three of the largest sessions. */
size_t rp_ssl_cache_min_size(void);

/* Lays out an empty cache in mem; returns 0, or -1 when size is below the minimum. */
int rp_ssl_cache_init(void *mem, size_t size);

/* Whether mem holds a cache of exactly this size laid out by this code (a kept zone). */
int rp_ssl_cache_valid(void *mem, size_t size);

/*
 * Stores a session that expires at `expires` (seconds, as now), replacing one with the
 * same key. Expired sessions at the old end go first, then the oldest ones until the
 * new one fits. Returns 0, or -1 when the session is not cacheable (too large, bad key).
 */
int rp_ssl_cache_put(void *mem, size_t size, const rp_ssl_cache_key_t *key,
                     const unsigned char *der, size_t len, int64_t expires, int64_t now);

/*
 * Copies the unexpired session stored under key into out (cap bytes). Returns its
 * length, or -1 when there is none (an expired one is dropped) or it does not fit.
 */
long rp_ssl_cache_get(void *mem, size_t size, const rp_ssl_cache_key_t *key, unsigned char *out,
                      size_t cap, int64_t now);

/* Drops the session stored under key; returns 1 if there was one. */
int rp_ssl_cache_remove(void *mem, size_t size, const rp_ssl_cache_key_t *key);

void rp_ssl_cache_stats(void *mem, size_t size, rp_ssl_cache_stats_t *st);

#endif
