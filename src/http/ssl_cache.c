/*
 * The TLS session cache's data structure: the whole block is a shared-memory hash
 * table (src/core/shm_hash.c) whose entries are sessions, keyed by session ID
 * context and session ID, valued by the session as DER, expiring when the
 * session does.
 *
 * When the block is full, the oldest session stored makes room, not the least
 * recently resumed: the table is "fifo", a lookup does not move a session. A
 * session's life is counted from its creation and resuming it does not extend it,
 * so the oldest session is the one closest to expiring anyway, while a session
 * stored a moment ago and not yet resumed is the likeliest to be asked for next
 * (TLS 1.3 stateful tickets are single-use: each resumption stores a new
 * session). Expired sessions at the old end are dropped before any live one.
 *
 * The table checks every reference it follows; a block found damaged (or whose
 * header is not this code's) is laid out again, empty: losing sessions costs
 * full handshakes, following a torn chain could cost a crash.
 */
#include "http/ssl_cache.h"
#include "core/shm_hash.h"

#include <openssl/sha.h>
#include <string.h>

/*
 * A key: 128 bits of SHA-256 over the context's length, the context and the session
 * ID, rather than the 65 bytes themselves. The table's slots are powers of two, and
 * a TLS 1.3 or 1.2 session (about 190 bytes of DER) with a 40-byte entry head fits a
 * 256-byte slot with this key and needs a 512-byte one with the other: twice the
 * sessions per megabyte. A collision of 128-bit digests is out of reach, so two
 * sessions never share a key (a client cannot aim one ID at another's session).
 */
#define KEY_LEN 16

/* Three of the largest sessions fit in a block of this size (test_ssl_cache.c checks),
 * which a 16k zone leaves after its lock. */
#define MIN_SIZE (15 * 1024)

static const rp_shm_hash_conf_t table_conf = {.buckets = 0, .max_forced = 0, .fifo = 1};

size_t rp_ssl_cache_min_size(void)
{
    return MIN_SIZE;
}

int rp_ssl_cache_init(void *mem, size_t size)
{
    if (size < MIN_SIZE)
        return -1;
    return rp_shm_hash_init(mem, size, &table_conf) ? 0 : -1;
}

int rp_ssl_cache_valid(void *mem, size_t size)
{
    return rp_shm_hash_attach(mem, size) != NULL;
}

/* The table in mem, laid out afresh when what mem holds is not one. */
static rp_shm_hash_t *table(void *mem, size_t size)
{
    rp_shm_hash_t *h = rp_shm_hash_attach(mem, size);
    return h ? h : rp_shm_hash_init(mem, size, &table_conf);
}

static size_t key_bytes(const rp_ssl_cache_key_t *k, unsigned char *out)
{
    if (k->id_len == 0 || k->id_len > RP_SSL_CACHE_MAX_ID || k->ctx_len > RP_SSL_CACHE_MAX_CTX)
        return 0;
    unsigned char in[1 + RP_SSL_CACHE_MAX_CTX + RP_SSL_CACHE_MAX_ID], md[SHA256_DIGEST_LENGTH];
    in[0] = (unsigned char)k->ctx_len;
    memcpy(in + 1, k->ctx, k->ctx_len);
    memcpy(in + 1 + k->ctx_len, k->id, k->id_len);
    SHA256(in, 1 + k->ctx_len + k->id_len, md);
    memcpy(out, md, KEY_LEN);
    return KEY_LEN;
}

int rp_ssl_cache_put(void *mem, size_t size, const rp_ssl_cache_key_t *key,
                     const unsigned char *der, size_t len, int64_t expires, int64_t now)
{
    unsigned char kb[KEY_LEN];
    size_t klen = key_bytes(key, kb);
    if (klen == 0 || len == 0 || len > RP_SSL_CACHE_MAX_DER)
        return -1;
    rp_shm_hash_t *h = table(mem, size);
    if (h == NULL)
        return -1;
    rp_shm_hash_item_t it = {
        .key = kb, .key_len = klen, .value = der, .value_len = len, .expires = expires};
    int rc = rp_shm_hash_store_locked(h, &it, RP_SHM_HASH_SET, now, NULL);
    if (rc == RP_SHM_DAMAGED && (h = rp_shm_hash_init(mem, size, &table_conf)) != NULL)
        rc = rp_shm_hash_store_locked(h, &it, RP_SHM_HASH_SET, now, NULL);
    return rc == RP_SHM_OK ? 0 : -1;
}

long rp_ssl_cache_get(void *mem, size_t size, const rp_ssl_cache_key_t *key, unsigned char *out,
                      size_t cap, int64_t now)
{
    unsigned char kb[KEY_LEN];
    size_t klen = key_bytes(key, kb);
    rp_shm_hash_t *h = klen ? table(mem, size) : NULL;
    if (h == NULL)
        return -1;
    rp_shm_hash_item_t it;
    int rc = rp_shm_hash_get_locked(h, kb, klen, now, 0, &it);
    if (rc == RP_SHM_DAMAGED)
        rp_shm_hash_init(mem, size, &table_conf);
    if (rc != RP_SHM_OK || it.value_len > cap)
        return -1;
    memcpy(out, it.value, it.value_len);
    return (long)it.value_len;
}

int rp_ssl_cache_remove(void *mem, size_t size, const rp_ssl_cache_key_t *key)
{
    unsigned char kb[KEY_LEN];
    size_t klen = key_bytes(key, kb);
    rp_shm_hash_t *h = klen ? table(mem, size) : NULL;
    if (h == NULL)
        return 0;
    /* expiry is the lookup's business: a removal drops whatever is stored */
    int rc = rp_shm_hash_delete_locked(h, kb, klen, INT64_MIN);
    if (rc == RP_SHM_DAMAGED)
        rp_shm_hash_init(mem, size, &table_conf);
    return rc == RP_SHM_OK;
}

void rp_ssl_cache_stats(void *mem, size_t size, rp_ssl_cache_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    rp_shm_hash_t *h = table(mem, size);
    if (h == NULL)
        return;
    rp_shm_hash_stats_t hs;
    rp_shm_slab_stats_t ss;
    rp_shm_hash_stats_locked(h, &hs);
    rp_shm_slab_stats_locked(rp_shm_hash_slab(h), &ss);
    st->entries = hs.entries;
    st->stored = hs.stored;
    st->evicted = hs.forced;
    st->used = (uint64_t)(ss.pages_total - ss.pages_free) * ss.page_size;
    st->capacity = (uint64_t)ss.pages_total * ss.page_size;
}
