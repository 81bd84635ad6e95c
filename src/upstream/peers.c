/*
 * The runtime peer table (peers.h): entries in shared memory, each worker's peer
 * sets, what makes a peer usable, and the accounting around every balancer's pick.
 *
 * The table is a hash (core/shm_hash.c) in the upstream's zone with three kinds of
 * entries, all pinned (never evicted, so counters updated without the lock stay
 * where they are):
 *   "p" NAME "\0" ADDRESS              a peer's rp_peer_shared_t
 *   "g" NAME                           the pool's entry (rp_pool_shared_t): its generation,
 *                                      moved by every DNS change, and its totals
 *   "r" NAME "\0" LINE " " HOST:PORT   the addresses of a `resolve` line (dns_record_t)
 *   "e"                                the last configuration epoch (below)
 * Entries are made in the master when the zone is mapped (rp_shm_open calls the
 * zone's init), before the workers fork, so a worker's lookups are lock-free
 * pointer reads; a worker takes the lock only to rebuild a set after a DNS change.
 * A record's key names the host as well as the line, so a reload that edits the
 * line does not inherit the addresses of the name it replaced; one that keeps it
 * keeps its addresses, and the new workers serve them before the new helper asks.
 *
 * Each configuration that maps the zone counts one epoch. Peer entries and records
 * carry the last epoch that used them (the master stamps those its configuration
 * names, and the addresses of its records; the helper and the workers stamp the
 * addresses they publish and use). One that no configuration has used for two is
 * deleted, and a peer entry only while no request or connection is on it: the
 * workers of the generation before may still be finishing requests with pointers
 * to it.
 */
#include "upstream/peers.h"
#include "upstream/upstream.h"
#include "core/log.h"
#include "core/shm.h"
#include "core/shm_hash.h"
#include "core/time.h"
#include "core/cycle.h"
#include "net/listen.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZONE_TAG "upstream"
#define ZONE_VERSION 4
#define DEFAULT_ZONE "rampart_upstreams"
#define DEFAULT_ZONE_SIZE (4u << 20)
#define EWMA_TAU_MS 10000.0 /* Finagle's and linkerd's decay time */

/* An address in a record: family, port and address in network order, 20 bytes rather
 * than a sockaddr_storage's 128. */
typedef struct {
    uint8_t family; /* AF_INET, AF_INET6 */
    uint8_t pad;
    uint16_t port;
    uint8_t addr[16];
} rec_addr_t;

typedef struct {
    uint32_t n;
    uint32_t epoch;    /* the last configuration generation with the line */
    uint32_t answered; /* an answer was published (the first one's peers do not ramp up) */
    uint32_t spare;
    rec_addr_t a[RP_UPSTREAM_MAX_ADDRS];
} dns_record_t;


/* What a zone's data holds: the table and the pools using it in this generation. */
typedef struct {
    rp_shm_hash_t *h;
    rp_array_t ups; /* rp_upstream_conf_t * */
    unsigned epoch; /* this configuration's: counted in the zone by each one mapping it */
} zone_data_t;

/* ---- keys ---- */

static size_t pool_key(char *buf, size_t cap, char kind, const rp_upstream_conf_t *u)
{
    /* An https implicit pool and a plain one to the same address are different pools. */
    int n = snprintf(buf, cap, "%c%s%s", kind, u->implicit_tls ? "https://" : "", u->name);
    return n < 0 || (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static size_t peer_key(char *buf, size_t cap, const rp_upstream_conf_t *u, const char *addr)
{
    size_t n = pool_key(buf, cap, 'p', u);
    int k = snprintf(buf + n + 1, cap - n - 1, "%s", addr);
    buf[n] = '\0';
    return k < 0 ? n : n + 1 + ((size_t)k >= cap - n - 1 ? cap - n - 2 : (size_t)k);
}

static size_t record_key(char *buf, size_t cap, const rp_upstream_conf_t *u, unsigned line)
{
    const rp_upstream_resolve_t *rl = &((const rp_upstream_resolve_t *)u->resolve.elts)[line];
    size_t n = pool_key(buf, cap, 'r', u);
    int k = snprintf(buf + n + 1, cap - n - 1, "%u %s", line, rl->hostport);
    buf[n] = '\0';
    return k < 0 ? n : n + 1 + ((size_t)k >= cap - n - 1 ? cap - n - 2 : (size_t)k);
}

/* ---- record addresses ---- */

static void rec_pack(rec_addr_t *r, const struct sockaddr_storage *sa)
{
    memset(r, 0, sizeof(*r));
    r->family = (uint8_t)sa->ss_family;
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        r->port = s6->sin6_port;
        memcpy(r->addr, &s6->sin6_addr, 16);
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        r->port = s4->sin_port;
        memcpy(r->addr, &s4->sin_addr, 4);
    }
}

static socklen_t rec_unpack(const rec_addr_t *r, struct sockaddr_storage *sa)
{
    memset(sa, 0, sizeof(*sa));
    if (r->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = r->port;
        memcpy(&s6->sin6_addr, r->addr, 16);
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    s4->sin_family = AF_INET;
    s4->sin_port = r->port;
    memcpy(&s4->sin_addr, r->addr, 4);
    return sizeof(*s4);
}

/* ---- entries (under the zone's lock) ---- */

static int reserve_locked(zone_data_t *zd, const char *key, size_t klen, size_t vlen, void **value)
{
    rp_shm_hash_item_t it = {.key = key, .key_len = klen, .value_len = vlen};
    return rp_shm_hash_reserve_locked(zd->h, &it, RP_SHM_HASH_PIN, 0, value, NULL);
}

/* Records that generation epoch uses the entry (never moving it back: a helper of the
 * generation before may still be publishing). */
static void stamp(rp_shm_counter_t *c, unsigned epoch)
{
    int64_t e = rp_shm_counter_get(c);
    while (e < (int64_t)epoch && !rp_shm_counter_cas(c, &e, epoch))
        ;
}

/* Finds or makes the entry of peer name; on a new one the peer is usable from the start. */
static rp_peer_shared_t *peer_entry_locked(zone_data_t *zd, rp_upstream_conf_t *u, const char *name,
                                           unsigned epoch)
{
    char key[512];
    size_t klen = peer_key(key, sizeof(key), u, name);
    void *v;
    if (reserve_locked(zd, key, klen, sizeof(rp_peer_shared_t), &v) < 0)
        return NULL;
    rp_peer_shared_t *sh = v;
    if (epoch)
        stamp(&sh->epoch, epoch);
    return sh;
}

static int attach_peer_locked(zone_data_t *zd, rp_upstream_conf_t *u, rp_upstream_server_t *s,
                              unsigned epoch)
{
    rp_peer_shared_t *sh = peer_entry_locked(zd, u, s->name, epoch);
    if (sh == NULL)
        return -1;
    s->sh = sh;
    s->ups = u;
    return 0;
}

/* Finds or makes (empty) the record of u's resolve line, stamped with epoch. */
static dns_record_t *record_locked(zone_data_t *zd, rp_upstream_conf_t *u, unsigned line,
                                   unsigned epoch)
{
    char key[600];
    size_t klen = record_key(key, sizeof(key), u, line);
    void *v;
    if (reserve_locked(zd, key, klen, sizeof(dns_record_t), &v) < 0)
        return NULL;
    dns_record_t *rec = v;
    if (rec->n > RP_UPSTREAM_MAX_ADDRS)
        rec->n = 0; /* not ours to trust */
    if (epoch > rec->epoch)
        rec->epoch = epoch;
    return rec;
}

/* Stamps the peer entries of rec's addresses with epoch (made when missing). */
static int stamp_record_peers_locked(zone_data_t *zd, rp_upstream_conf_t *u,
                                     const dns_record_t *rec, unsigned epoch)
{
    for (uint32_t i = 0; i < rec->n; i++) {
        struct sockaddr_storage sa;
        char name[80];
        rec_unpack(&rec->a[i], &sa);
        rp_sockaddr_text((struct sockaddr *)&sa, name, sizeof(name));
        if (peer_entry_locked(zd, u, name, epoch) == NULL)
            return -1;
    }
    return 0;
}

static int lock_zone(rp_shm_zone_t *z, zone_data_t *zd)
{
    if (rp_shm_lock(z) == 1 && rp_shm_hash_verify_locked(zd->h) != 0) {
        /* the holder died mid-update and left the table broken: start it afresh */
        rp_log_error(RP_LOG_ALERT, 0, "peer table in zone \"%s\" was damaged: it starts empty",
                     z->name);
        rp_shm_hash_flush_all_locked(zd->h);
    }
    return 0;
}

/* Attaches every peer of u's plain server lines, the records of its resolve lines with
 * the peers they hold, and u's generation entry. */
static int attach_pool_locked(zone_data_t *zd, rp_upstream_conf_t *u, unsigned epoch)
{
    rp_upstream_server_t *srv = u->servers.elts;
    for (size_t i = 0; i < u->servers.nelts; i++)
        if (attach_peer_locked(zd, u, &srv[i], epoch) != 0)
            return -1;
    for (unsigned line = 0; line < u->resolve.nelts; line++) {
        dns_record_t *rec = record_locked(zd, u, line, epoch);
        if (rec == NULL || stamp_record_peers_locked(zd, u, rec, epoch) != 0)
            return -1;
    }
    char key[300];
    size_t klen = pool_key(key, sizeof(key), 'g', u);
    void *v;
    if (reserve_locked(zd, key, klen, sizeof(rp_pool_shared_t), &v) < 0)
        return -1;
    u->pool = v;
    u->gen = &u->pool->gen;
    u->totals = &u->pool->totals;
    rp_shm_counter_set(&u->pool->retries.state, RP_PEER_POOL);
    rp_shm_counter_set(&u->totals->state, RP_PEER_POOL);
    return 0;
}

typedef struct {
    char keys[64][300];
    size_t lens[64];
    unsigned n, more;
    unsigned epoch;
} sweep_t;

static int sweep_visit(const rp_shm_hash_item_t *it, void *arg)
{
    sweep_t *sw = arg;
    char kind = it->key_len ? ((const char *)it->key)[0] : 0;
    if (kind == 'p' && it->value_len == sizeof(rp_peer_shared_t)) {
        rp_peer_shared_t *sh = (rp_peer_shared_t *)it->value;
        int64_t e = rp_shm_counter_get(&sh->epoch);
        if (e + 2 > (int64_t)sw->epoch || rp_shm_counter_get(&sh->inflight) > 0 ||
            rp_shm_counter_get(&sh->conns) > 0)
            return 0;
    } else if (kind == 'r' && it->value_len == sizeof(dns_record_t)) {
        const dns_record_t *rec = (const dns_record_t *)it->value;
        if ((int64_t)rec->epoch + 2 > (int64_t)sw->epoch)
            return 0;
    } else {
        return 0;
    }
    if (sw->n == 64 || it->key_len > sizeof(sw->keys[0])) {
        sw->more = 1;
        return sw->n == 64;
    }
    memcpy(sw->keys[sw->n], it->key, it->key_len);
    sw->lens[sw->n++] = it->key_len;
    return 0;
}

/* Deletes peer entries and records no configuration has used for two generations. */
static void sweep_locked(zone_data_t *zd, unsigned epoch)
{
    sweep_t *sw = rp_xmalloc(sizeof(*sw));
    do {
        sw->n = sw->more = 0;
        sw->epoch = epoch;
        rp_shm_hash_each_locked(zd->h, 0, sweep_visit, sw);
        for (unsigned i = 0; i < sw->n; i++)
            rp_shm_hash_delete_locked(zd->h, sw->keys[i], sw->lens[i], 0);
    } while (sw->more && sw->n == 64);
    free(sw);
}

static int zone_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    zone_data_t *zd = z->data;
    zd->h = reused ? rp_shm_hash_attach(z->addr, z->avail) : NULL;
    if (zd->h == NULL) {
        rp_shm_hash_conf_t hc = {0};
        zd->h = rp_shm_hash_init(z->addr, z->avail, &hc);
        if (zd->h == NULL) {
            snprintf(err, errlen, "%s:%u: zone \"%s\" is too small for a peer table", z->file,
                     z->line, z->name);
            return -1;
        }
    }
    lock_zone(z, zd);
    /* This configuration's epoch: one more than the last one that mapped the zone (the
     * generation number is not known yet when a configuration is loaded). */
    void *v;
    if (reserve_locked(zd, "e", 1, sizeof(rp_shm_counter_t), &v) < 0) {
        rp_shm_unlock(z);
        snprintf(err, errlen, "%s:%u: zone \"%s\" is too small for a peer table", z->file, z->line,
                 z->name);
        return -1;
    }
    zd->epoch = (unsigned)rp_shm_counter_add(v, 1);
    rp_upstream_conf_t **u = zd->ups.elts;
    for (size_t i = 0; i < zd->ups.nelts; i++) {
        if (attach_pool_locked(zd, u[i], zd->epoch) != 0) {
            rp_shm_unlock(z);
            snprintf(err, errlen, "%s:%u: zone \"%s\" is too small for the peers of upstream \"%s\"",
                     z->file, z->line, z->name, u[i]->name);
            return -1;
        }
    }
    sweep_locked(zd, zd->epoch);
    rp_shm_unlock(z);
    return 0;
}

static void peers_cleanup(void *data)
{
    rp_upstream_peers_free(data);
}

const char *rp_upstream_zone_attach(void *cfp, rp_upstream_conf_t *u)
{
    rp_conf_t *cf = cfp;
    const char *name = u->zone_name ? u->zone_name : DEFAULT_ZONE;
    size_t size = u->zone_name ? u->zone_size : DEFAULT_ZONE_SIZE;
    rp_shm_zone_t *z = rp_shm_zone_add_versioned(cf, name, size, ZONE_TAG, ZONE_VERSION, zone_init);
    if (z == NULL || rp_peer_journal_declare(cf) != RP_CONF_OK)
        return RP_CONF_ERROR;
    if (u->zone_name == NULL && z->size != size)
        return rp_conf_error(cf, "zone \"%s\" is rampart's default peer table", name);
    zone_data_t *zd = z->data;
    if (zd == NULL) {
        zd = rp_arena_calloc(cf->arena, sizeof(*zd));
        rp_array_init(&zd->ups, cf->arena, 8, sizeof(void *));
        z->data = zd;
    }
    *(rp_upstream_conf_t **)rp_array_push(&zd->ups) = u;
    u->zone = z;
    /* a process that retires the configuration (master_process off) frees its sets */
    rp_arena_cleanup(cf->arena, peers_cleanup, u);
    return RP_CONF_OK;
}

const char *rp_upstream_default_zone(void *cfp)
{
    rp_conf_t *cf = cfp;
    rp_shm_zone_t *z = rp_shm_zone_add_versioned(cf, DEFAULT_ZONE, DEFAULT_ZONE_SIZE, ZONE_TAG,
                                                 ZONE_VERSION, zone_init);
    if (z == NULL || rp_peer_journal_declare(cf) != RP_CONF_OK)
        return RP_CONF_ERROR;
    if (z->data == NULL) {
        zone_data_t *zd = rp_arena_calloc(cf->arena, sizeof(*zd));
        rp_array_init(&zd->ups, cf->arena, 8, sizeof(void *));
        zd->epoch = cf->cycle->generation + 1;
        z->data = zd;
    }
    return RP_CONF_OK;
}

int rp_upstream_attach_runtime(rp_upstream_conf_t *u)
{
    rp_shm_zone_t *z = u->zone;
    for (size_t i = 0; z == NULL && u->cycle && i < u->cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *c = RP_ARRAY_AT(&u->cycle->shm_zones, rp_shm_zone_t *, i);
        if (strcmp(c->name, DEFAULT_ZONE) == 0 && strcmp(c->tag, ZONE_TAG) == 0)
            z = c;
    }
    if (z == NULL || z->data == NULL || ((zone_data_t *)z->data)->h == NULL)
        return -1;
    u->zone = z;
    zone_data_t *zd = z->data;
    lock_zone(z, zd);
    int rc = attach_pool_locked(zd, u, zd->epoch);
    rp_shm_unlock(z);
    return rc;
}

/* Addresses of fresh that rec does not have join the pool now: with slow_start, they ramp
 * up from now (in every worker alike: the moment is in the shared entry). */
static void ramp_joining_locked(zone_data_t *zd, rp_upstream_conf_t *u, unsigned line,
                                const dns_record_t *rec, const dns_record_t *fresh)
{
    const rp_upstream_resolve_t *rl = &((const rp_upstream_resolve_t *)u->resolve.elts)[line];
    if (rl->tmpl.slow_start == 0)
        return;
    for (uint32_t i = 0; i < fresh->n; i++) {
        int had = 0;
        for (uint32_t j = 0; j < rec->n && !had; j++)
            had = memcmp(&rec->a[j], &fresh->a[i], sizeof(rec_addr_t)) == 0;
        if (had)
            continue;
        struct sockaddr_storage sa;
        char name[80];
        rec_unpack(&fresh->a[i], &sa);
        rp_sockaddr_text((struct sockaddr *)&sa, name, sizeof(name));
        rp_peer_shared_t *sh = peer_entry_locked(zd, u, name, 0);
        if (sh)
            rp_shm_counter_set(&sh->usable_since, rp_time_ms());
    }
}

int rp_upstream_publish_addrs(rp_upstream_conf_t *u, unsigned line,
                              const struct sockaddr_storage *addrs, const socklen_t *lens,
                              unsigned n)
{
    rp_shm_zone_t *z = u->zone;
    if (z == NULL || z->data == NULL || u->gen == NULL || line >= u->resolve.nelts)
        return -1;
    zone_data_t *zd = z->data;
    if (n > RP_UPSTREAM_MAX_ADDRS)
        n = RP_UPSTREAM_MAX_ADDRS;
    (void)lens; /* the family says */
    dns_record_t fresh;
    fresh.n = n;
    for (unsigned i = 0; i < n; i++)
        rec_pack(&fresh.a[i], &addrs[i]);
    lock_zone(z, zd);
    int rc = -1;
    dns_record_t *rec = record_locked(zd, u, line, zd->epoch);
    if (rec) {
        /* the peer entries first: a worker that sees the generation move finds them */
        rc = stamp_record_peers_locked(zd, u, &fresh, zd->epoch);
        if (rc == 0 && (rec->n != n || memcmp(rec->a, fresh.a, n * sizeof(rec_addr_t)) != 0)) {
            if (rec->answered)
                ramp_joining_locked(zd, u, line, rec, &fresh);
            rec->n = n;
            memcpy(rec->a, fresh.a, n * sizeof(rec_addr_t));
            rp_shm_counter_add(u->gen, 1);
        }
        rec->answered = 1;
    }
    rp_shm_unlock(z);
    return rc;
}

unsigned rp_upstream_read_addrs(rp_upstream_conf_t *u, unsigned line,
                                struct sockaddr_storage *addrs, socklen_t *lens, unsigned max)
{
    rp_shm_zone_t *z = u->zone;
    if (z == NULL || z->data == NULL || line >= u->resolve.nelts)
        return 0;
    zone_data_t *zd = z->data;
    char key[600];
    size_t klen = record_key(key, sizeof(key), u, line);
    unsigned n = 0;
    lock_zone(z, zd);
    rp_shm_hash_item_t it;
    if (rp_shm_hash_get_locked(zd->h, key, klen, 0, 0, &it) == RP_SHM_OK &&
        it.value_len == sizeof(dns_record_t)) {
        const dns_record_t *rec = it.value;
        for (uint32_t i = 0; i < rec->n && i < RP_UPSTREAM_MAX_ADDRS && n < max; i++, n++)
            lens[n] = rec_unpack(&rec->a[i], &addrs[n]);
    }
    rp_shm_unlock(z);
    return n;
}

/* ---- a worker's peer sets ---- */

static void peer_free(rp_upstream_server_t *s)
{
    free(s->name);
    free(s);
}

void rp_upstream_peer_unref(rp_upstream_server_t *s)
{
    if (s->dynamic && --s->refs == 0 && s->retired)
        peer_free(s);
}

static rp_upstream_server_t *find_dynamic(rp_upstream_peers_t *old, unsigned line,
                                          const struct sockaddr_storage *sa, socklen_t len)
{
    if (old == NULL)
        return NULL;
    for (unsigned i = 0; i < old->n; i++) {
        rp_upstream_server_t *s = old->peer[i];
        if (s->dynamic && !s->retired && s->line_index == line && s->socklen == len &&
            memcmp(&s->sa, sa, len) == 0)
            return s;
    }
    return NULL;
}

/* A peer for an address of a resolve line, with the line's parameters. */
static rp_upstream_server_t *dynamic_new(rp_upstream_conf_t *u, unsigned line,
                                         const struct sockaddr_storage *sa, socklen_t len)
{
    rp_upstream_resolve_t *rl = &((rp_upstream_resolve_t *)u->resolve.elts)[line];
    rp_upstream_server_t *s = rp_xmalloc(sizeof(*s));
    *s = rl->tmpl;
    s->dynamic = 1;
    s->retired = 0;
    s->line_index = line;
    s->refs = 1; /* the set's own */
    s->sa = *sa;
    s->socklen = len;
    s->sh = NULL;
    s->h2 = NULL;
    s->h2_sessions = 0;
    s->current_weight = 0;
    char name[80];
    rp_sockaddr_text((const struct sockaddr *)sa, name, sizeof(name));
    s->name = rp_xstrdup(name);
    return s;
}

static void push_peer(rp_upstream_peers_t *set, unsigned *cap, rp_upstream_server_t *s)
{
    if (set->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        set->peer = rp_xrealloc(set->peer, *cap * sizeof(*set->peer));
    }
    set->peer[set->n++] = s;
}

/* Adds the peers of u's resolve lines whose backup flag is backup, from the zone's records:
 * an address the old set had keeps its peer (and its per-worker state). */
static void add_dynamic(rp_upstream_conf_t *u, rp_upstream_peers_t *set, unsigned *cap,
                        rp_upstream_peers_t *old, int backup)
{
    if (u->resolve.nelts == 0 || u->zone == NULL || u->zone->data == NULL)
        return;
    zone_data_t *zd = u->zone->data;
    rp_upstream_resolve_t *rl = u->resolve.elts;
    for (unsigned line = 0; line < u->resolve.nelts; line++) {
        if (rl[line].tmpl.backup != (unsigned)backup)
            continue;
        char key[600];
        size_t klen = record_key(key, sizeof(key), u, line);
        lock_zone(u->zone, zd);
        rp_shm_hash_item_t it;
        const dns_record_t *rec = NULL;
        if (rp_shm_hash_get_locked(zd->h, key, klen, 0, 0, &it) == RP_SHM_OK &&
            it.value_len == sizeof(dns_record_t))
            rec = it.value;
        for (uint32_t i = 0; rec && i < rec->n && i < RP_UPSTREAM_MAX_ADDRS; i++) {
            struct sockaddr_storage sa;
            socklen_t len = rec_unpack(&rec->a[i], &sa);
            rp_upstream_server_t *s = find_dynamic(old, line, &sa, len);
            if (s == NULL) {
                s = dynamic_new(u, line, &sa, len);
                if (attach_peer_locked(zd, u, s, zd->epoch) != 0) {
                    rp_log_error(RP_LOG_ERR, 0, "upstream \"%s\": no room in zone \"%s\" for peer %s",
                                 u->name, u->zone->name, s->name);
                    peer_free(s);
                    continue;
                }
            } else {
                s->refs++; /* the new set's; the old set lets go of its own below */
                stamp(&s->sh->epoch, zd->epoch);
            }
            push_peer(set, cap, s);
        }
        rp_shm_unlock(u->zone);
    }
}

static rp_upstream_peers_t *rebuild(rp_upstream_conf_t *u)
{
    rp_upstream_peers_t *old = u->live;
    rp_upstream_peers_t *set = rp_xcalloc(1, sizeof(*set));
    unsigned cap = 0;
    set->generation = u->gen ? rp_shm_counter_get(u->gen) : 0;
    rp_upstream_server_t *srv = u->servers.elts;
    for (int backup = 0; backup <= 1; backup++) {
        for (size_t i = 0; i < u->servers.nelts; i++)
            if (srv[i].backup == (unsigned)backup)
                push_peer(set, &cap, &srv[i]);
        add_dynamic(u, set, &cap, old, backup);
        if (!backup)
            set->nprimary = set->n;
    }
    void *old_data = old ? old->data : NULL;
    u->live = set;
    if (u->balancer->update)
        u->balancer->update(u, set, old_data);
    if (old) {
        for (unsigned i = 0; i < old->n; i++) {
            rp_upstream_server_t *s = old->peer[i];
            if (!s->dynamic)
                continue;
            int kept = 0;
            for (unsigned j = 0; j < set->n && !kept; j++)
                kept = set->peer[j] == s;
            if (!kept) {
                s->retired = 1;
                rp_upstream_close_idle_to(u, s);
            }
            rp_upstream_peer_unref(s);
        }
        free(old->peer);
        free(old);
    }
    return set;
}

rp_upstream_peers_t *rp_upstream_peers(rp_upstream_conf_t *u)
{
    rp_upstream_peers_t *set = u->live;
    if (set && (u->gen == NULL || rp_shm_counter_get(u->gen) == set->generation))
        return set;
    return rebuild(u);
}

void rp_upstream_peers_free(rp_upstream_conf_t *u)
{
    free(u->hedge_hist);
    u->hedge_hist = NULL;
    rp_upstream_peers_t *set = u->live;
    if (set == NULL)
        return;
    u->live = NULL;
    if (u->balancer->update)
        u->balancer->update(u, NULL, set->data);
    for (unsigned i = 0; i < set->n; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (s->dynamic) {
            s->retired = 1;
            rp_upstream_peer_unref(s);
        }
    }
    free(set->peer);
    free(set);
}

/* ---- usability, weight, latency ---- */

static int resting(const rp_upstream_server_t *s, int64_t now, int single)
{
    if (single || s->max_fails == 0 || rp_shm_counter_get(&s->sh->fails) < s->max_fails)
        return 0;
    return now - rp_shm_counter_get(&s->sh->fail_start) < s->fail_timeout ? 1 : 2;
}

int rp_upstream_peer_healthy(const rp_upstream_conf_t *u, const rp_upstream_server_t *s,
                             int64_t now)
{
    const rp_peer_shared_t *sh = s->sh;
    int64_t until = rp_shm_counter_get(&sh->ejected_until);
    /* with active checks an ejection ends when a check passes (the helper clears it) */
    if (until && (u->health_checks || now < until))
        return 0;
    int64_t h = rp_shm_counter_get(&sh->health);
    if (h == RP_HEALTH_UNHEALTHY)
        return 0;
    return h != RP_HEALTH_UNKNOWN || !u->health_mandatory || !u->health_checks;
}

/* The panic threshold's percent for u, 0 when u has none. */
static int panic_threshold(const rp_upstream_conf_t *u)
{
    if (!u->health_checks && !u->outlier)
        return 0; /* nothing makes a peer unhealthy: no panic to have */
    return u->panic_threshold < 0 ? 50 : u->panic_threshold;
}

int rp_upstream_in_panic(rp_upstream_conf_t *u, int64_t now)
{
    int pct = panic_threshold(u);
    if (pct == 0 || u->live == NULL)
        return 0;
    if (u->panic_checked && now - u->panic_checked < 100 && now >= u->panic_checked)
        return u->panic;
    u->panic_checked = now;
    rp_upstream_peers_t *set = u->live;
    unsigned n = 0, healthy = 0;
    for (unsigned i = 0; i < set->nprimary; i++) {
        rp_upstream_server_t *s = set->peer[i];
        if (s->down || s->retired)
            continue;
        /* a peer no check has judged yet, where such peers wait for one (mandatory), is
         * neither sick nor well: counting it would put a pool whose checks have not run
         * yet (a start) in panic, and send it the traffic mandatory holds back */
        if (u->health_mandatory && u->health_checks &&
            rp_shm_counter_get(&s->sh->health) == RP_HEALTH_UNKNOWN &&
            rp_shm_counter_get(&s->sh->ejected_until) == 0)
            continue;
        n++;
        healthy += rp_upstream_peer_healthy(u, s, now);
    }
    unsigned panic = n > 0 && healthy * 100 < (unsigned)pct * n;
    if (panic != u->panic && u->pool) {
        /* one worker logs the change: the one whose swap moves the shared flag */
        int64_t expect = !panic;
        if (rp_shm_counter_cas(&u->pool->panic, &expect, panic)) {
            if (panic)
                rp_shm_counter_add(&u->pool->panics, 1);
            rp_log_error(panic ? RP_LOG_WARN : RP_LOG_NOTICE, 0,
                         panic ? "upstream \"%s\" in panic: %u of %u peers healthy, below "
                                 "panic_threshold %d%%; balancing over all of them"
                               : "upstream \"%s\" out of panic: %u of %u peers healthy "
                                 "(panic_threshold %d%%)",
                         u->name, healthy, n, pct);
        }
    }
    u->panic = panic;
    return panic;
}

int rp_upstream_peer_usable(rp_upstream_conf_t *u, rp_upstream_server_t *s, int64_t now)
{
    if (s->down || s->retired)
        return 0;
    int64_t st = rp_shm_counter_get(&s->sh->state);
    if (st != RP_PEER_USABLE)
        return 0;
    if (s->max_conns && rp_shm_counter_get(&s->sh->inflight) >= s->max_conns)
        return 0;
    if (u->panic)
        return 1; /* in panic, over all peers: health and rests do not count */
    if ((u->health_checks || u->outlier) && !rp_upstream_peer_healthy(u, s, now))
        return 0;
    /* 2: the rest is over; the pick claims the one probing request (get_peer) */
    return resting(s, now, u->live && u->live->n == 1) != 1;
}

int rp_upstream_peer_resting(const rp_upstream_conf_t *u, const rp_upstream_server_t *s,
                             int64_t now)
{
    return resting(s, now, u->live && u->live->n == 1) == 1;
}

int rp_upstream_peer_state(const rp_upstream_conf_t *u, const rp_upstream_server_t *s, int64_t now)
{
    if (s->down)
        return RP_PEER_DOWN;
    int64_t st = rp_shm_counter_get(&s->sh->state);
    if (st == RP_PEER_DOWN || st == RP_PEER_DRAINING)
        return (int)st;
    int64_t until = rp_shm_counter_get(&s->sh->ejected_until);
    if (until && (u->health_checks || now < until))
        return RP_PEER_EJECTED;
    if (!u->health_checks)
        return RP_PEER_USABLE;
    switch (rp_shm_counter_get(&s->sh->health)) {
    case RP_HEALTH_HEALTHY:
        return RP_PEER_HEALTHY;
    case RP_HEALTH_UNHEALTHY:
        return RP_PEER_UNHEALTHY;
    default:
        return RP_PEER_UNKNOWN;
    }
}

const char *rp_upstream_peer_state_name(int state)
{
    static const char *const names[] = {"usable",  "down",    "draining", "unhealthy",
                                        "ejected", "unknown", "pool",     "healthy"};
    return state >= 0 && state < (int)(sizeof(names) / sizeof(names[0])) ? names[state] : "?";
}

void rp_upstream_observe(rp_upstream_conf_t *u, rp_upstream_observer_t *ob)
{
    rp_upstream_observer_t **p = &u->observers;
    while (*p)
        p = &(*p)->next;
    ob->next = NULL;
    *p = ob;
}

int rp_upstream_peer_weight(const rp_upstream_server_t *s, int64_t now)
{
    int64_t w = rp_shm_counter_get(&s->sh->weight);
    if (w <= 0)
        w = s->weight;
    w *= 100;
    if (s->slow_start) {
        int64_t since = rp_shm_counter_get(&s->sh->usable_since);
        if (since && now - since < s->slow_start && now >= since) {
            int64_t floor = w / 10 ? w / 10 : 1;
            w = floor + (w - floor) * (now - since) / s->slow_start;
        }
    }
    return (int)w;
}

double rp_upstream_peer_latency(const rp_upstream_server_t *s, int last_byte, int64_t now)
{
    double v = rp_shm_double_get(last_byte ? &s->sh->ewma_last : &s->sh->ewma_header);
    int64_t dt = now - rp_shm_counter_get(&s->sh->ewma_stamp);
    if (dt > 0)
        v *= exp(-(double)dt / EWMA_TAU_MS);
    return v;
}

/* Folds a latency sample in: a time-based peak EWMA (the weight of a sample grows with
 * the time since the last one, so the average decays by time, not by request count). */
static void latency_sample(rp_upstream_server_t *s, rp_shm_double_t *d, double ms, int64_t now)
{
    int64_t dt = now - rp_shm_counter_get(&s->sh->ewma_stamp);
    double w = dt > 0 ? 1.0 - exp(-(double)dt / EWMA_TAU_MS) : 0.0;
    double cur = rp_shm_double_get(d);
    if (cur == 0.0)
        w = 1.0; /* the first sample is the average */
    rp_shm_double_peak_ewma(d, ms, w);
}

/* ---- the pick and its end ---- */

static void tried_push(rp_upstream_pick_t *pk, rp_upstream_server_t *s)
{
    if (pk->tried == NULL) {
        pk->tried = pk->tried_inline;
        pk->tried_cap = RP_UPSTREAM_TRIED_INLINE;
    }
    if (pk->ntried == pk->tried_cap) {
        /* more tries than peers usually have: only then an allocation */
        unsigned cap = pk->tried_cap * 2;
        rp_upstream_server_t **t = rp_xmalloc(cap * sizeof(*t));
        memcpy(t, pk->tried, pk->ntried * sizeof(*t));
        if (pk->tried != pk->tried_inline)
            free(pk->tried);
        pk->tried = t;
        pk->tried_cap = cap;
    }
    pk->tried[pk->ntried++] = s;
}

void rp_upstream_pick_done(rp_upstream_pick_t *pk)
{
    if (pk->tried && pk->tried != pk->tried_inline)
        free(pk->tried);
    pk->tried = NULL;
    pk->ntried = pk->tried_cap = 0;
}

rp_upstream_server_t *rp_upstream_get_peer(rp_upstream_conf_t *u, rp_upstream_pick_t *pk)
{
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    int64_t now = rp_time_ms();
    pk->now = now;
    if (u->health_checks || u->outlier)
        rp_upstream_in_panic(u, now);
    unsigned base = pk->ntried;
    rp_upstream_server_t *s;
    for (;;) {
        s = set->n ? u->balancer->pick(u, set, pk) : NULL;
        if (s == NULL)
            break;
        if (resting(s, now, set->n == 1) == 2) {
            /* its rest is over: the first worker to move the window's start gets the
             * one probing request; to the others it still rests */
            int64_t start = rp_shm_counter_get(&s->sh->fail_start);
            if (now - start < s->fail_timeout ||
                !rp_shm_counter_cas(&s->sh->fail_start, &start, now)) {
                tried_push(pk, s); /* skipped for this pick only */
                continue;
            }
        }
        break;
    }
    pk->ntried = base; /* forget the skipped ones */
    pk->tries++;
    if (s == NULL)
        return NULL;
    tried_push(pk, s);
    rp_peer_inflight_add(s->sh, 1);
    if (u->totals)
        rp_peer_inflight_add(u->totals, 1);
    rp_shm_counter_add(&s->sh->requests, 1);
    if (s->dynamic)
        s->refs++;
    return s;
}

void rp_upstream_take_peer(rp_upstream_conf_t *u, rp_upstream_pick_t *pk, rp_upstream_server_t *s)
{
    pk->now = rp_time_ms();
    pk->tries++;
    tried_push(pk, s);
    rp_peer_inflight_add(s->sh, 1);
    if (u->totals)
        rp_peer_inflight_add(u->totals, 1);
    rp_shm_counter_add(&s->sh->requests, 1);
    if (s->dynamic)
        s->refs++;
}

rp_peer_shared_t *rp_upstream_peer_entry(rp_upstream_conf_t *u, const char *name)
{
    rp_shm_zone_t *z = u->zone;
    if (z == NULL || z->data == NULL || ((zone_data_t *)z->data)->h == NULL)
        return NULL;
    zone_data_t *zd = z->data;
    lock_zone(z, zd);
    rp_peer_shared_t *sh = peer_entry_locked(zd, u, name, zd->epoch);
    rp_shm_unlock(z);
    return sh;
}

/* A failure toward max_fails within fail_timeout, counted across workers. */
static void count_failure(rp_upstream_conf_t *u, rp_upstream_server_t *s, int64_t now)
{
    rp_peer_shared_t *sh = s->sh;
    if (s->max_fails == 0)
        return;
    int64_t start = rp_shm_counter_get(&sh->fail_start);
    int64_t fails = rp_shm_counter_get(&sh->fails);
    if (fails == 0 || (fails < s->max_fails && now - start >= s->fail_timeout)) {
        /* failures count within one fail_timeout window */
        rp_shm_counter_set(&sh->fails, 0);
        rp_shm_counter_set(&sh->fail_start, now);
    } else if (fails >= s->max_fails) {
        rp_shm_counter_set(&sh->fail_start, now); /* the probe failed: rest again */
    }
    int64_t n = rp_shm_counter_add(&sh->fails, 1);
    int single = u->live && u->live->n == 1;
    if (n == s->max_fails && !single)
        rp_log_error(RP_LOG_WARN, 0,
                     "upstream server temporarily disabled: upstream \"%s\", server %s, "
                     "%d failures within %lldms",
                     u->name, s->name, s->max_fails, (long long)s->fail_timeout);
}

void rp_upstream_peer_failed(rp_upstream_conf_t *u, rp_upstream_server_t *s)
{
    count_failure(u, s, rp_time_ms());
}

void rp_upstream_free_peer(rp_upstream_conf_t *u, rp_upstream_server_t *s,
                           const rp_upstream_outcome_t *o)
{
    rp_peer_shared_t *sh = s->sh;
    int64_t now = o->now ? o->now : rp_time_ms();
    if (o->header_ms >= 0 && !o->failed)
        latency_sample(s, &sh->ewma_header, (double)o->header_ms, now);
    if (o->last_ms >= 0 && !o->failed)
        latency_sample(s, &sh->ewma_last, (double)o->last_ms, now);
    else if (o->incomplete && u->lt_inflight && o->last_ms < 0 && o->header_ms >= 0)
        latency_sample(s, &sh->ewma_last, (double)o->header_ms, now);
    if (o->header_ms >= 0 || o->last_ms >= 0)
        rp_shm_counter_set(&sh->ewma_stamp, now);

    if (o->failed) {
        rp_shm_counter_add(&sh->failures, 1);
        if (!o->counted)
            count_failure(u, s, now);
    } else if (!o->incomplete && rp_shm_counter_get(&sh->fails) != 0) {
        /* as nginx: a success ends the failure window; a peer back from a rest ramps up */
        if (rp_shm_counter_get(&sh->fails) >= s->max_fails && s->slow_start)
            rp_shm_counter_set(&sh->usable_since, now);
        rp_shm_counter_set(&sh->fails, 0);
    }
    if (u->balancer->report)
        u->balancer->report(u, s, o);
    for (rp_upstream_observer_t *ob = u->observers; ob; ob = ob->next)
        ob->report(u, s, o, ob->data);
    rp_peer_inflight_add(sh, -1);
    if (u->totals)
        rp_peer_inflight_add(u->totals, -1);
    rp_upstream_peer_unref(s);
}
