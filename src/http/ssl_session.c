/*
 * TLS sessions kept by the server: `ssl_session_cache off | none | shared:NAME:SIZE`,
 * each server's session ID context, and the OpenSSL callbacks that store sessions
 * in, and fetch them from, a shared memory zone every worker sees, so that a client
 * resumes whichever worker its next connection lands on. With TLS 1.3 and
 * `ssl_session_tickets off`, the tickets OpenSSL hands out are keys into this cache
 * ("stateful" tickets), so TLS 1.3 resumes through it too.
 *
 * OpenSSL consults the context a handshake started on (the "session context") for
 * everything about sessions, not the one SNI moved it to. Every handshake starts on
 * one front context (ssl_module.c), and the callbacks here act for the server the
 * ClientHello chose: its cache, its session ID context, its ssl_session_timeout.
 * Server contexts carry the same callbacks, so nothing depends on which context
 * OpenSSL asks.
 *
 * The zone's lock is held only to copy bytes in or out: a session is serialized
 * before it is taken and parsed after it is released.
 */
#include "core/log.h"
#include "http/ssl.h"
#include "core/time.h"
#include "http/ssl_cache.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Three sessions of the largest size kept, or some thirty typical ones. */
#define MIN_ZONE (16 * 1024)
/* Some four million sessions: more than any server resumes within a session timeout. */
#define MAX_ZONE ((size_t)2 * 1024 * 1024 * 1024)

#define ZONE_TAG "ssl_session_cache"

/* Where a context's ex_data keeps the http level's ssl configuration (for the removal
 * callback, which is given a context and a session but no connection), and a server
 * context its server's: after the ClientHello the connection's context is the chosen
 * server's, so the callbacks find it without routing the SNI name again. */
static int main_index = -1, srv_index = -1;

static void ensure_indexes(void)
{
    if (main_index < 0) {
        main_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        srv_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    }
}

static int init_zone(rp_shm_zone_t *zone, int reused, char *err, size_t errlen)
{
    if (reused) {
        /* The sessions stay: that is the point of keeping the zone. Old workers still
         * use it, so one laid out by other code is redone under its lock. */
        rp_shm_lock(zone);
        if (!rp_ssl_cache_valid(zone->addr, zone->avail))
            rp_ssl_cache_init(zone->addr, zone->avail);
        rp_shm_unlock(zone);
        return 0;
    }
    if (rp_ssl_cache_init(zone->addr, zone->avail) != 0) {
        snprintf(err, errlen, "%s:%u: \"ssl_session_cache\": zone \"%s\" is too small", zone->file,
                 zone->line, zone->name);
        return -1;
    }
    return 0;
}

/* "shared:NAME:SIZE" into a zone; NULL after reporting in cf->error. */
static rp_shm_zone_t *shared_zone(rp_conf_t *cf, const char *arg)
{
    const char *spec = arg + sizeof("shared:") - 1;
    const char *colon = strrchr(spec, ':');
    if (colon == NULL) {
        rp_conf_error(cf, "invalid value \"%s\": expected shared:NAME:SIZE", arg);
        return NULL;
    }
    if (colon == spec) {
        rp_conf_error(cf, "invalid value \"%s\": the zone has no name (shared:NAME:SIZE)", arg);
        return NULL;
    }
    size_t size;
    if (rp_parse_size(colon + 1, &size) != 0) {
        rp_conf_error(cf, "invalid zone size \"%s\" in \"%s\" (shared:NAME:SIZE)", colon + 1, arg);
        return NULL;
    }
    char *name = rp_arena_strndup(cf->arena, spec, (size_t)(colon - spec));
    char a[32], b[32];
    if (size < MIN_ZONE) {
        rp_conf_error(cf, "zone \"%s\" is too small: %s, at least %s", name,
                      rp_shm_size_text(size, a, sizeof(a)),
                      rp_shm_size_text(MIN_ZONE, b, sizeof(b)));
        return NULL;
    }
    if (size > MAX_ZONE) {
        rp_conf_error(cf, "zone \"%s\" is too large: %s, at most %s", name,
                      rp_shm_size_text(size, a, sizeof(a)),
                      rp_shm_size_text(MAX_ZONE, b, sizeof(b)));
        return NULL;
    }
    return rp_shm_zone_add_versioned(cf, name, size, ZONE_TAG, RP_SSL_CACHE_LAYOUT, init_zone);
}

const char *rp_ssl_set_session_cache(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    if (s->session_cache != RP_CONF_UNSET)
        return "is duplicate";
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strcmp(a, "off") == 0 || strcmp(a, "none") == 0) {
            if (cf->argc > 2)
                return rp_conf_error(cf, "\"%s\" cannot be combined with other values", a);
            s->session_cache = a[1] == 'f' ? RP_SSL_CACHE_OFF : RP_SSL_CACHE_NONE;
        } else if (strcmp(a, "builtin") == 0 || strncmp(a, "builtin:", 8) == 0) {
            return rp_conf_error(cf,
                                 "\"%s\" is not supported: a cache per worker resumes a session "
                                 "only on the worker that stored it; use shared:NAME:SIZE",
                                 a);
        } else if (strncmp(a, "shared:", 7) == 0) {
            if (s->cache_zone)
                return rp_conf_error(cf, "\"%s\": a server keeps its sessions in one zone only", a);
            if ((s->cache_zone = shared_zone(cf, a)) == NULL)
                return RP_CONF_ERROR;
            s->session_cache = RP_SSL_CACHE_SHARED;
        } else {
            return rp_conf_error(cf, "invalid value \"%s\" (off, none or shared:NAME:SIZE)", a);
        }
    }
    return RP_CONF_OK;
}

/* ---- session ID context ---- */

static void digest_str(EVP_MD_CTX *md, const char *s, size_t len)
{
    EVP_DigestUpdate(md, s, len);
    EVP_DigestUpdate(md, "", 1); /* a separator: "ab"+"c" differs from "a"+"bc" */
}

static void digest_file(EVP_MD_CTX *md, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return; /* it was read a moment ago; the path is in the digest anyway */
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    fclose(f);
}

/*
 * A server's session ID context: a digest of what a resumed session takes for
 * granted, so that a session resumes only on the server that made it, and not after
 * a reload changed its certificates, client verification or protocols. It depends on
 * nothing else, so it is the same in every worker and across reloads.
 */
static int session_context(rp_http_core_srv_conf_t *srv, rp_ssl_srv_conf_t *sc)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return -1;
    }
    rp_server_name_t *names = srv->names.elts;
    for (size_t i = 0; i < srv->names.nelts; i++)
        digest_str(md, names[i].text.data, names[i].text.len);
    rp_listen_opt_t *lo = srv->listens.elts;
    for (size_t i = 0; i < srv->listens.nelts; i++)
        digest_str(md, lo[i].text, strlen(lo[i].text));
    rp_ssl_file_t *certs = sc->certs.elts;
    for (size_t i = 0; i < sc->certs.nelts; i++) {
        digest_str(md, certs[i].path, strlen(certs[i].path));
        digest_file(md, certs[i].path);
    }
    char settings[64];
    int n = snprintf(settings, sizeof(settings), "%d %d %d", sc->verify_client, sc->verify_depth,
                     sc->protocols);
    digest_str(md, settings, (size_t)n);
    digest_str(md, sc->ciphers, strlen(sc->ciphers));
    if (sc->verify_client != RP_SSL_VERIFY_OFF && sc->client_certificate)
        digest_file(md, sc->client_certificate);
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(md, sc->sid_ctx, &len) == 1 && len == sizeof(sc->sid_ctx);
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

/* ---- callbacks ---- */

static long timeout_s(const rp_ssl_srv_conf_t *sc)
{
    return sc->session_timeout / 1000 > 0 ? (long)(sc->session_timeout / 1000) : 1;
}

static rp_ssl_cache_key_t key_of(const rp_ssl_srv_conf_t *sc, const unsigned char *id,
                                 size_t id_len)
{
    rp_ssl_cache_key_t k = {id, id_len, sc->sid_ctx, sizeof(sc->sid_ctx)};
    return k;
}

/* Takes a zone's lock; a zone whose last holder died mid-change is emptied, not trusted:
 * losing the sessions costs full handshakes, following a torn chain could cost a crash. */
static void lock_cache(rp_shm_zone_t *z)
{
    if (rp_shm_lock(z))
        rp_ssl_cache_init(z->addr, z->avail);
}

/* The server the ClientHello chose (NULL before it did). */
static rp_ssl_srv_conf_t *chosen(SSL *ssl)
{
    return SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), srv_index);
}

/*
 * A session's lifetime is its server's ssl_session_timeout. OpenSSL gives a new session
 * the session context's timeout, and the front context is no server's, so the chosen
 * server's is set here, before a ticket announcing it is built.
 */
static int ticket_issuing(SSL *ssl, void *arg)
{
    rp_ssl_srv_conf_t *sc = chosen(ssl);
    SSL_SESSION *sess = SSL_get0_session(ssl);
    if (sc && sess)
        SSL_SESSION_set_timeout(sess, timeout_s(sc));
    return 1;
}

/* A new session, at the end of a full handshake or with each TLS 1.3 ticket. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    rp_ssl_srv_conf_t *sc = chosen(ssl);
    if (sc == NULL)
        return 0;
    long timeout = timeout_s(sc);
    SSL_SESSION_set_timeout(sess, timeout);
    if (sc->session_cache != RP_SSL_CACHE_SHARED)
        return 0;
    /* With TLS 1.3 tickets on, the ticket carries the session itself: OpenSSL reports
     * the session all the same, but no client will ever ask for it by ID. */
    if (SSL_version(ssl) == TLS1_3_VERSION && !(SSL_get_options(ssl) & SSL_OP_NO_TICKET))
        return 0;
    unsigned int id_len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &id_len);
    int len = i2d_SSL_SESSION(sess, NULL);
    if (id_len == 0 || len <= 0 || len > RP_SSL_CACHE_MAX_DER)
        return 0; /* a session with a long client certificate chain is not worth the room */
    unsigned char der[RP_SSL_CACHE_MAX_DER], *p = der;
    if (i2d_SSL_SESSION(sess, &p) != len)
        return 0;
    rp_ssl_cache_key_t key = key_of(sc, id, id_len);
    int64_t expires = (int64_t)SSL_SESSION_get_time(sess) + timeout;
    int64_t now = rp_time_ms() / 1000;
    rp_shm_zone_t *z = sc->cache_zone;
    lock_cache(z);
    rp_ssl_cache_put(z->addr, z->avail, &key, der, (size_t)len, expires, now);
    rp_shm_unlock(z);
    return 0; /* no reference kept: the cache holds a copy */
}

/* A ClientHello offered a session ID (or a TLS 1.3 stateful ticket). */
static SSL_SESSION *get_session(SSL *ssl, const unsigned char *id, int id_len, int *copy)
{
    *copy = 0; /* the session is made here for OpenSSL, which owns its one reference */
    rp_ssl_srv_conf_t *sc = chosen(ssl);
    if (sc == NULL || sc->session_cache != RP_SSL_CACHE_SHARED || id_len <= 0 ||
        id_len > RP_SSL_CACHE_MAX_ID)
        return NULL;
    unsigned char der[RP_SSL_CACHE_MAX_DER];
    rp_ssl_cache_key_t key = key_of(sc, id, (size_t)id_len);
    int64_t now = rp_time_ms() / 1000;
    rp_shm_zone_t *z = sc->cache_zone;
    lock_cache(z);
    long len = rp_ssl_cache_get(z->addr, z->avail, &key, der, sizeof(der), now);
    rp_shm_unlock(z);
    if (len <= 0)
        return NULL;
    const unsigned char *p = der;
    SSL_SESSION *sess = d2i_SSL_SESSION(NULL, &p, len);
    if (sess == NULL)
        ERR_clear_error(); /* not a session after all: a full handshake */
    return sess;
}

/* OpenSSL gives up a session: it expired on lookup, or its connection failed. */
static void remove_session(SSL_CTX *ctx, SSL_SESSION *sess)
{
    rp_ssl_main_conf_t *mc = SSL_CTX_get_ex_data(ctx, main_index);
    if (mc == NULL)
        return;
    unsigned int id_len = 0, ctx_len = 0;
    const unsigned char *id = SSL_SESSION_get_id(sess, &id_len);
    const unsigned char *sid_ctx = SSL_SESSION_get0_id_context(sess, &ctx_len);
    rp_ssl_srv_conf_t **cached = mc->cached.elts;
    for (size_t i = 0; i < mc->cached.nelts; i++) {
        rp_ssl_srv_conf_t *sc = cached[i];
        if (ctx_len != sizeof(sc->sid_ctx) || memcmp(sid_ctx, sc->sid_ctx, ctx_len) != 0)
            continue;
        rp_ssl_cache_key_t key = key_of(sc, id, id_len);
        lock_cache(sc->cache_zone);
        rp_ssl_cache_remove(sc->cache_zone->addr, sc->cache_zone->avail, &key);
        rp_shm_unlock(sc->cache_zone);
    }
}

static void set_callbacks(SSL_CTX *ctx, rp_ssl_main_conf_t *mc)
{
    SSL_CTX_sess_set_new_cb(ctx, new_session);
    SSL_CTX_sess_set_get_cb(ctx, get_session);
    SSL_CTX_sess_set_remove_cb(ctx, remove_session);
    SSL_CTX_set_session_ticket_cb(ctx, ticket_issuing, NULL, NULL);
    SSL_CTX_set_ex_data(ctx, main_index, mc);
}

const char *rp_ssl_sessions_setup(rp_conf_t *cf, rp_http_core_srv_conf_t *srv,
                                  rp_ssl_srv_conf_t *sc)
{
    ensure_indexes();
    rp_ssl_main_conf_t *mc = rp_http_main_conf(cf->cycle, &rp_ssl_module);
    if (session_context(srv, sc) != 0)
        return "cannot compute the session ID context";
    SSL_CTX_set_session_id_context(sc->ctx, sc->sid_ctx, sizeof(sc->sid_ctx));
    /* ServerHello reads this from the server's own context: with off, an empty session
     * ID tells the client that the session will not be resumed by ID. */
    SSL_CTX_set_session_cache_mode(sc->ctx,
                                   sc->session_cache == RP_SSL_CACHE_OFF
                                       ? SSL_SESS_CACHE_OFF
                                       : SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_set_timeout(sc->ctx, timeout_s(sc));
    set_callbacks(sc->ctx, mc);
    SSL_CTX_set_ex_data(sc->ctx, srv_index, sc);
    if (sc->session_cache == RP_SSL_CACHE_SHARED)
        *(rp_ssl_srv_conf_t **)rp_array_push(&mc->cached) = sc;
    return NULL;
}

void rp_ssl_sessions_front(rp_ssl_main_conf_t *mc)
{
    ensure_indexes();
    /* The per-process cache stays off: a session stored by one worker would resume
     * only on that one. The callbacks decide, per server, what is kept. */
    SSL_CTX_set_session_cache_mode(mc->front, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    set_callbacks(mc->front, mc);
}
