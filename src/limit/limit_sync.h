/*
 * The Redis sync engine's parts, behind the seam of limit.h (rp_limit_sync_zone):
 *
 *  - limit_sync_proto.c: what is said to Redis and what its answers mean, with no
 *    socket: the `limit_sync` URL, the keys, a batch's commands (hiredis's
 *    redisFormatCommandArgv encodes them) and the replies (hiredis's redisReader
 *    parses them; the functions here give them meaning and call the zones' apply).
 *    Pure, so t/unit/test_limit_sync.c tests it with fake zones.
 *  - limit_sync_conn.c: the engine in the helper: one connection (libevent
 *    bufferevent, plain or OpenSSL, so plain and TLS take one path), the interval's
 *    tick, one pipelined batch in flight at most, failing open, reconnection.
 *  - limit_sync.c: the directives, the registry of `sync` zones, the TLS context and
 *    the process hooks.
 *
 * hiredis's own async client is not used: Debian's hiredis 0.14 has no TLS, and
 * bufferevent_openssl gives TLS and plain connections the same code. This departs
 * from DESIGN.md, which names "hiredis (with its libevent adapter)": hiredis still
 * speaks the protocol and libevent still carries it, but the adapter is replaced by a
 * bufferevent so that `tls` to Redis works with Debian's hiredis.
 */
#ifndef RP_LIMIT_SYNC_H
#define RP_LIMIT_SYNC_H

#include "limit/limit.h"

#include <hiredis/hiredis.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct evbuffer;

/* ---- the URL ---- */

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS. */
typedef struct {
    char *user;     /* NULL: AUTH with the password alone (Redis before 6, or "default") */
    char *password; /* NULL: no AUTH */
    char *host;     /* a name or an address, IPv6 without its brackets */
    int port;       /* 6379 when the URL has none */
    long db;        /* 0: no SELECT */
    int tls;        /* the scheme was rediss:// */
} rp_redis_url_t;

/*
 * Parses text into url (strings in arena, user and password percent-decoded).
 * Returns NULL, or an error message (arena-allocated) saying what is wrong.
 */
const char *rp_limit_sync_parse_url(rp_arena_t *arena, const char *text, rp_redis_url_t *url);

/* ---- keys ---- */

#define RP_LIMIT_SYNC_PREFIX "rampart:limit:"

/*
 * Writes the Redis key of a zone's record for a window, "rampart:limit:ZONE:WINDOW:"
 * followed by the record's key bytes as they are (binary-safe: Redis keys are byte
 * strings, and the commands carry their lengths), into buf of cap bytes. Returns the
 * key's length; when that is more than cap, nothing useful is in buf and the caller
 * asks again with room for it.
 */
size_t rp_limit_sync_key(char *buf, size_t cap, const char *zone, int64_t window, const void *key,
                         size_t key_len);

/* ---- zones and batches ---- */

/* A zone declared with `sync`. */
typedef struct {
    rp_shm_zone_t *zone;
    const rp_limit_sync_ops_t *ops;
    const char *name; /* its part of the keys */
    const char *directive;
    const char *file; /* where it was declared, for messages */
    unsigned line;
} rp_limit_sync_zone_t;

/* One record's delta in a batch: INCRBY and PEXPIRE on its key. */
typedef struct {
    unsigned zone;  /* index in the zones */
    size_t key_off; /* the record's key bytes, in the batch's keys */
    size_t key_len;
    int64_t window;
    int64_t delta;
    int64_t ttl_ms;
} rp_limit_sync_rec_t;

/*
 * What goes to Redis in one round trip and what its replies must be: two per record
 * (INCRBY's new total, then PEXPIRE's 0 or 1), or one PONG for a batch that only
 * checks the connection. Kept between batches, so its arrays grow to the largest
 * batch (bounded by what the zones can hold) and are then reused.
 */
typedef struct {
    rp_limit_sync_rec_t *recs;
    size_t nrecs, caprecs;
    char *keys; /* every record's key bytes, one after another */
    size_t keys_len, keys_cap;
    char *scratch; /* a whole Redis key, while encoding */
    size_t scratch_cap;
    int ping;       /* a PING alone: the connection is checked, nothing counted */
    size_t replies; /* received so far */
} rp_limit_sync_batch_t;

/* Empties b for the next batch (keeps its memory). */
void rp_limit_sync_batch_reset(rp_limit_sync_batch_t *b);

/* Frees b's memory. */
void rp_limit_sync_batch_free(rp_limit_sync_batch_t *b);

/* Adds one record's delta (key copied). */
void rp_limit_sync_batch_add(rp_limit_sync_batch_t *b, unsigned zone, const void *key,
                             size_t key_len, int64_t window, int64_t delta, int64_t ttl_ms);

/* The number of replies b waits for. */
size_t rp_limit_sync_batch_expected(const rp_limit_sync_batch_t *b);

/*
 * Appends b's commands to out, pipelined: for each record INCRBY key delta and
 * PEXPIRE key ttl_ms; or PING alone when b->ping. 0, or -1 when hiredis could not
 * format a command (out of memory).
 */
int rp_limit_sync_batch_encode(rp_limit_sync_batch_t *b, const rp_limit_sync_zone_t *zones,
                               struct evbuffer *out);

/*
 * Takes b's next reply in order. An INCRBY's integer is the key's total in the
 * window: its zone's apply gets it with the record's delta as what this node sent.
 * PEXPIRE's integer and PING's status are only checked. Returns 0 when more replies
 * are due, 1 when b is complete, -1 (with why) for an error reply or one of the wrong
 * type: the caller gives up on the connection and the rest of the batch.
 */
int rp_limit_sync_batch_reply(rp_limit_sync_batch_t *b, const rp_limit_sync_zone_t *zones,
                              const redisReply *reply, int64_t now, char *why, size_t whylen);

/* ---- setting a connection up ---- */

/*
 * Appends what a new connection says first to out: AUTH (with the user when the URL
 * has one), SELECT when db is not 0, and CLIENT SETNAME rampart-limit-sync (so that
 * CLIENT LIST shows who is connected). Returns the number of replies to wait for, or
 * -1 when hiredis could not format a command.
 */
int rp_limit_sync_setup_encode(const rp_redis_url_t *url, struct evbuffer *out);

/*
 * Checks the setup's reply number i (0-based, in the order setup_encode sent them).
 * Returns 0 when it is fine, -1 with why when the connection is of no use (AUTH or
 * SELECT refused). A refused CLIENT SETNAME (an ACL user without the right) is fine.
 */
int rp_limit_sync_setup_reply(const rp_redis_url_t *url, int i, const redisReply *reply, char *why,
                              size_t whylen);

/* ---- the engine ---- */

#define RP_LIMIT_SYNC_MAX_ADDRS 8

/* What `limit_sync` and its TLS directives configure, settled at load time. */
typedef struct {
    rp_redis_url_t url;
    int64_t interval; /* ms between batches */
    int64_t timeout;  /* ms a connection or a batch may take before Redis is down */
    int tls;
    struct sockaddr_storage addrs[RP_LIMIT_SYNC_MAX_ADDRS];
    socklen_t lens[RP_LIMIT_SYNC_MAX_ADDRS];
    unsigned naddrs;
    SSL_CTX *ssl_ctx;     /* tls: the client context */
    const char *ssl_name; /* checked against the certificate, sent as SNI (unless an address) */
    int ssl_name_is_ip;
    int ssl_verify;
    rp_limit_sync_zone_t *zones;
    unsigned nzones;
} rp_limit_sync_conf_t;

typedef struct rp_limit_sync_engine_s rp_limit_sync_engine_t;

/* Starts the engine on rp_event_base (the helper's, or the single process's). */
rp_limit_sync_engine_t *rp_limit_sync_start(const rp_limit_sync_conf_t *conf);

/* Stops it: closes the connection (a batch in flight is abandoned) and frees it. */
void rp_limit_sync_stop(rp_limit_sync_engine_t *e);

/* Backoff between connection attempts: from the first to the cap, doubling. */
#define RP_LIMIT_SYNC_BACKOFF_MIN 100
#define RP_LIMIT_SYNC_BACKOFF_MAX 5000

/* With nothing to send, a PING after this long checks that Redis is still there. */
#define RP_LIMIT_SYNC_IDLE_PING 1000

/* The next backoff after one of prev ms (prev 0: the first). */
int64_t rp_limit_sync_backoff(int64_t prev);

/* The default bound for a connection or a batch: 50 intervals, at least a second. */
int64_t rp_limit_sync_default_timeout(int64_t interval);

extern rp_module_t rp_limit_sync_module;

#endif
