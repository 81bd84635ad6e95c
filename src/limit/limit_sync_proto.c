/*
 * What the sync engine says to Redis and what the answers mean, with no socket (see
 * limit_sync.h): the `limit_sync` URL, the keys of the counters, a batch's pipelined
 * commands and its replies, and the commands that set a connection up.
 *
 * Every record's delta is one INCRBY on the key of its zone, window and key, and a
 * PEXPIRE with the zone's time to live. INCRBY answers with the key's new total, the
 * sum of what every node added to that window, which is exactly what the zone needs
 * to learn the other nodes' share (limit.h); PEXPIRE (rather than a SET ... EX or a
 * script) keeps each record to two plain commands any Redis since 2.6 runs, and the
 * counter of a window lives only as long as the window matters.
 */
#include "limit/limit_sync.h"
#include "net/listen.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* ---- the URL ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into an arena string; NULL when malformed or holding a NUL. */
static char *pct_decode(rp_arena_t *arena, const char *s, size_t n)
{
    char *out = rp_arena_alloc(arena, n + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n)
            return NULL;
        int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return NULL;
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

const char *rp_limit_sync_parse_url(rp_arena_t *arena, const char *text, rp_redis_url_t *url)
{
    memset(url, 0, sizeof(*url));
    const char *p;
    if (strncmp(text, "redis://", 8) == 0) {
        p = text + 8;
    } else if (strncmp(text, "rediss://", 9) == 0) {
        p = text + 9;
        url->tls = 1;
    } else {
        return rp_arena_sprintf(arena, "invalid URL \"%s\" (redis://HOST:PORT or rediss://)", text);
    }

    /* The credentials end at the last "@": a password may hold "/" or "@" unescaped,
     * a host and a database number never do. */
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return rp_arena_sprintf(arena,
                                    "invalid URL \"%s\" (credentials are written "
                                    "\"[USER]:PASSWORD@\")",
                                    text);
        if (colon > p && (url->user = pct_decode(arena, p, (size_t)(colon - p))) == NULL)
            return rp_arena_sprintf(arena, "invalid user name in \"%s\"", text);
        size_t plen = (size_t)(at - colon - 1);
        if (plen == 0)
            return rp_arena_sprintf(arena, "empty password in \"%s\"", text);
        if ((url->password = pct_decode(arena, colon + 1, plen)) == NULL)
            return rp_arena_sprintf(arena, "invalid password in \"%s\" (a %% starts %%XX)", text);
        p = at + 1;
    }

    const char *slash = strchr(p, '/');
    size_t hlen = slash ? (size_t)(slash - p) : strlen(p);
    if (hlen == 0)
        return rp_arena_sprintf(arena, "no host in \"%s\"", text);
    char *hostport = rp_arena_strndup(arena, p, hlen);
    char host[256];
    const char *err = rp_addr_split(arena, hostport, 6379, host, sizeof(host), &url->port);
    if (err)
        return rp_arena_sprintf(arena, "%s in \"%s\"", err, text);
    url->host = rp_arena_strdup(arena, host);

    if (slash && slash[1] != '\0') {
        const char *d = slash + 1;
        for (const char *q = d; *q; q++)
            if (!isdigit((unsigned char)*q))
                return rp_arena_sprintf(arena,
                                        "invalid database \"%s\" in \"%s\" (a number, as in "
                                        "redis://HOST:PORT/2)",
                                        d, text);
        if (rp_parse_int(d, 2147483647L, &url->db) != 0)
            return rp_arena_sprintf(arena, "invalid database \"%s\" in \"%s\"", d, text);
    }
    return NULL;
}

/* ---- keys ---- */

size_t rp_limit_sync_key(char *buf, size_t cap, const char *zone, int64_t window, const void *key,
                         size_t key_len)
{
    char head[256];
    int n = snprintf(head, sizeof(head), RP_LIMIT_SYNC_PREFIX "%s:%" PRId64 ":", zone, window);
    size_t hl = n < 0 ? 0 : (size_t)n >= sizeof(head) ? sizeof(head) - 1 : (size_t)n;
    size_t total = hl + key_len;
    if (total <= cap) {
        memcpy(buf, head, hl);
        if (key_len)
            memcpy(buf + hl, key, key_len);
    }
    return total;
}

/* ---- batches ---- */

void rp_limit_sync_batch_reset(rp_limit_sync_batch_t *b)
{
    b->nrecs = 0;
    b->keys_len = 0;
    b->ping = 0;
    b->replies = 0;
}

void rp_limit_sync_batch_free(rp_limit_sync_batch_t *b)
{
    free(b->recs);
    free(b->keys);
    free(b->scratch);
    memset(b, 0, sizeof(*b));
}

void rp_limit_sync_batch_add(rp_limit_sync_batch_t *b, unsigned zone, const void *key,
                             size_t key_len, int64_t window, int64_t delta, int64_t ttl_ms)
{
    if (b->nrecs == b->caprecs) {
        b->caprecs = b->caprecs ? b->caprecs * 2 : 64;
        b->recs = rp_xrealloc(b->recs, b->caprecs * sizeof(*b->recs));
    }
    if (b->keys_len + key_len > b->keys_cap) {
        size_t cap = b->keys_cap ? b->keys_cap : 4096;
        while (cap < b->keys_len + key_len)
            cap *= 2;
        b->keys = rp_xrealloc(b->keys, cap);
        b->keys_cap = cap;
    }
    rp_limit_sync_rec_t *r = &b->recs[b->nrecs++];
    r->zone = zone;
    r->key_off = b->keys_len;
    r->key_len = key_len;
    r->window = window;
    r->delta = delta;
    r->ttl_ms = ttl_ms;
    if (key_len)
        memcpy(b->keys + b->keys_len, key, key_len);
    b->keys_len += key_len;
}

size_t rp_limit_sync_batch_expected(const rp_limit_sync_batch_t *b)
{
    return b->ping ? 1 : 2 * b->nrecs;
}

/* Appends one command, given as argv with lengths, in RESP to out. */
static int put_command(struct evbuffer *out, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0)
        return -1;
    int rc = evbuffer_add(out, cmd, (size_t)n);
    redisFreeCommand(cmd);
    return rc == 0 ? 0 : -1;
}

int rp_limit_sync_batch_encode(rp_limit_sync_batch_t *b, const rp_limit_sync_zone_t *zones,
                               struct evbuffer *out)
{
    if (b->ping) {
        const char *argv[] = {"PING"};
        size_t lens[] = {4};
        return put_command(out, 1, argv, lens);
    }
    for (size_t i = 0; i < b->nrecs; i++) {
        const rp_limit_sync_rec_t *r = &b->recs[i];
        const char *k = b->keys + r->key_off;
        size_t klen = rp_limit_sync_key(b->scratch, b->scratch_cap, zones[r->zone].name, r->window,
                                        k, r->key_len);
        if (klen > b->scratch_cap) {
            b->scratch_cap = klen < 256 ? 256 : klen * 2;
            b->scratch = rp_xrealloc(b->scratch, b->scratch_cap);
            rp_limit_sync_key(b->scratch, b->scratch_cap, zones[r->zone].name, r->window, k,
                              r->key_len);
        }
        char num[24], ttl[24];
        int nl = snprintf(num, sizeof(num), "%" PRId64, r->delta);
        int tl = snprintf(ttl, sizeof(ttl), "%" PRId64, r->ttl_ms > 0 ? r->ttl_ms : 1);
        const char *incr[] = {"INCRBY", b->scratch, num};
        size_t incr_lens[] = {6, klen, (size_t)nl};
        const char *expire[] = {"PEXPIRE", b->scratch, ttl};
        size_t expire_lens[] = {7, klen, (size_t)tl};
        if (put_command(out, 3, incr, incr_lens) != 0 ||
            put_command(out, 3, expire, expire_lens) != 0)
            return -1;
    }
    return 0;
}

/* A reply's text for a message: an error's or a status's own words, else its type. */
static const char *reply_text(const redisReply *reply)
{
    switch (reply->type) {
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
        return reply->str;
    case REDIS_REPLY_INTEGER:
        return "an integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_ARRAY:
        return "an array";
    default:
        return "a string";
    }
}

int rp_limit_sync_batch_reply(rp_limit_sync_batch_t *b, const rp_limit_sync_zone_t *zones,
                              const redisReply *reply, int64_t now, char *why, size_t whylen)
{
    size_t i = b->replies++;
    if (i >= rp_limit_sync_batch_expected(b)) {
        snprintf(why, whylen, "a reply nothing asked for (%s)", reply_text(reply));
        return -1;
    }
    if (b->ping) {
        if (reply->type != REDIS_REPLY_STATUS && reply->type != REDIS_REPLY_STRING) {
            snprintf(why, whylen, "PING answered %s", reply_text(reply));
            return -1;
        }
        return 1;
    }
    const rp_limit_sync_rec_t *r = &b->recs[i / 2];
    const char *cmd = i % 2 == 0 ? "INCRBY" : "PEXPIRE";
    if (reply->type != REDIS_REPLY_INTEGER) {
        snprintf(why, whylen, "%s on zone \"%s\" answered %s", cmd, zones[r->zone].name,
                 reply_text(reply));
        return -1;
    }
    if (i % 2 == 0) {
        const rp_limit_sync_zone_t *z = &zones[r->zone];
        z->ops->apply(z->zone, b->keys + r->key_off, r->key_len, r->window, (int64_t)reply->integer,
                      r->delta, now);
    }
    return b->replies == rp_limit_sync_batch_expected(b) ? 1 : 0;
}

/* ---- setting a connection up ---- */

enum { SETUP_AUTH, SETUP_SELECT, SETUP_NAME };

/* Which command the setup's reply i answers. */
static int setup_kind(const rp_redis_url_t *url, int i)
{
    if (url->password && i-- == 0)
        return SETUP_AUTH;
    if (url->db != 0 && i-- == 0)
        return SETUP_SELECT;
    return SETUP_NAME;
}

int rp_limit_sync_setup_encode(const rp_redis_url_t *url, struct evbuffer *out)
{
    int n = 0;
    if (url->password) {
        /* AUTH user password (Redis 6 ACLs) or AUTH password (the "default" user) */
        const char *argv[3] = {"AUTH"};
        size_t lens[3] = {4};
        int argc = 1;
        if (url->user) {
            argv[argc] = url->user;
            lens[argc++] = strlen(url->user);
        }
        argv[argc] = url->password;
        lens[argc++] = strlen(url->password);
        if (put_command(out, argc, argv, lens) != 0)
            return -1;
        n++;
    }
    if (url->db != 0) {
        char db[24];
        int dl = snprintf(db, sizeof(db), "%ld", url->db);
        const char *argv[] = {"SELECT", db};
        size_t lens[] = {6, (size_t)dl};
        if (put_command(out, 2, argv, lens) != 0)
            return -1;
        n++;
    }
    const char *argv[] = {"CLIENT", "SETNAME", "rampart-limit-sync"};
    size_t lens[] = {6, 7, 18};
    if (put_command(out, 3, argv, lens) != 0)
        return -1;
    return n + 1;
}

int rp_limit_sync_setup_reply(const rp_redis_url_t *url, int i, const redisReply *reply, char *why,
                              size_t whylen)
{
    int ok = reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0;
    switch (setup_kind(url, i)) {
    case SETUP_AUTH:
        if (!ok) {
            snprintf(why, whylen, "authentication failed: %s", reply_text(reply));
            return -1;
        }
        return 0;
    case SETUP_SELECT:
        if (!ok) {
            snprintf(why, whylen, "SELECT %ld refused: %s", url->db, reply_text(reply));
            return -1;
        }
        return 0;
    default:
        return 0;
    }
}

/* ---- timing ---- */

int64_t rp_limit_sync_backoff(int64_t prev)
{
    if (prev <= 0)
        return RP_LIMIT_SYNC_BACKOFF_MIN;
    return prev * 2 > RP_LIMIT_SYNC_BACKOFF_MAX ? RP_LIMIT_SYNC_BACKOFF_MAX : prev * 2;
}

int64_t rp_limit_sync_default_timeout(int64_t interval)
{
    return interval * 50 > 1000 ? interval * 50 : 1000;
}
