/*
 * TLS on connections to upstream servers: the client contexts (built in the
 * master when the configuration loads, one per distinct set of proxy_ssl_*
 * settings, freed with the configuration), and per connection the handshake,
 * the reads and writes, session resumption and the close.
 *
 * The handshake runs inside the proxy's connect phase and reports a failure in
 * nginx's words, so the proxy can count it against the server and move on as
 * it does for a refused connect. Verification is OpenSSL's own (SSL_VERIFY_PEER
 * with the host or address set on the connection), so a certificate that does
 * not verify ends the handshake with an alert instead of carrying a request.
 *
 * Sessions: each worker keeps, per TLS object and server, the last session the
 * server gave (TLS 1.3 tickets arrive after the handshake, with the first
 * response bytes, hence the new-session callback rather than asking after the
 * handshake) and offers it on the next new connection. Sessions are kept per TLS
 * object and not per server alone: one made under verification must never let
 * a location that verifies differently skip its own check by resuming it.
 */
#include "upstream/upstream_ssl.h"
#include "net/tls.h"
#include "core/log.h"
#include "http/http.h"

#include <event2/buffer.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* A context with the settings that went into it, to share it between locations. */
typedef struct {
    SSL_CTX *ctx;
    int protocols, verify, verify_depth;
    int h2; /* offers ALPN "h2": the context of `http2` groups and grpc_pass */
    const char *ciphers, *trusted, *certificate, *certificate_key;
} built_ctx_t;

static int same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* The first OpenSSL error queued, for a message; clears the queue. */
static const char *ssl_error_text(rp_conf_t *cf)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return rp_arena_strdup(cf->arena, buf);
}

static int new_session(SSL *ssl, SSL_SESSION *sess);

/* Formats a configuration error at a directive's own place; returns RP_CONF_ERROR. */
static const char *at(rp_conf_t *cf, const rp_upstream_ssl_val_t *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static const char *at(rp_conf_t *cf, const rp_upstream_ssl_val_t *v, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(cf->error, sizeof(cf->error), "%s:%u: %s", v->file, v->line, msg);
    return RP_CONF_ERROR;
}

/* Builds the client context for sc's settings, or finds the one already built. */
static const char *get_ctx(rp_conf_t *cf, rp_upstream_ssl_conf_t *sc, int h2, SSL_CTX **out)
{
    const char *pre = sc->prefix ? sc->prefix : "proxy";
    rp_upstream_main_conf_t *m = cf->http_ctx->main_conf[rp_upstream_module.index];
    built_ctx_t **v = m->tls_ctxs.elts;
    for (size_t i = 0; i < m->tls_ctxs.nelts; i++) {
        built_ctx_t *b = v[i];
        if (b->protocols == sc->protocols && b->h2 == h2 && b->verify == sc->verify &&
            b->verify_depth == sc->verify_depth && same(b->ciphers, sc->ciphers.value) &&
            same(b->trusted, sc->trusted.value) && same(b->certificate, sc->certificate.value) &&
            same(b->certificate_key, sc->certificate_key.value)) {
            *out = b->ctx;
            return RP_CONF_OK;
        }
    }

    /* the checks that need no OpenSSL first: they name the directive at fault */
    if (sc->verify && sc->trusted.value == NULL)
        return at(cf, &sc->verify_at,
                  "\"%s_ssl_verify\": no \"%s_ssl_trusted_certificate\" "
                  "is defined for it",
                  pre, pre);
    if (sc->certificate.value && sc->certificate_key.value == NULL)
        return at(cf, &sc->certificate,
                  "\"%s_ssl_certificate\": no "
                  "\"%s_ssl_certificate_key\" is defined for "
                  "certificate \"%s\"",
                  pre, pre, sc->certificate.value);
    if (sc->certificate_key.value && sc->certificate.value == NULL)
        return at(cf, &sc->certificate_key,
                  "\"%s_ssl_certificate_key\": no "
                  "\"%s_ssl_certificate\" is defined for key \"%s\"",
                  pre, pre, sc->certificate_key.value);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return rp_conf_error(cf, "cannot create a TLS context: %s", ssl_error_text(cf));
    rp_arena_cleanup(cf->arena, free_ctx, ctx);

    rp_tls_set_protocols(ctx, sc->protocols);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* the proxy queues what a write did not take and retries from its queue, whose
     * storage may move; a partial write lets a large body go record by record */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (sc->ciphers.value && SSL_CTX_set_cipher_list(ctx, sc->ciphers.value) != 1) {
        ERR_clear_error();
        return at(cf, &sc->ciphers, "\"%s_ssl_ciphers\": no usable cipher in \"%s\"", pre,
                  sc->ciphers.value);
    }

    if (sc->trusted.value && SSL_CTX_load_verify_locations(ctx, sc->trusted.value, NULL) != 1)
        return at(cf, &sc->trusted, "\"%s_ssl_trusted_certificate\": cannot load \"%s\": %s", pre,
                  sc->trusted.value, ssl_error_text(cf));
    if (sc->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(ctx, sc->verify_depth);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }

    if (sc->certificate.value) {
        if (SSL_CTX_use_certificate_chain_file(ctx, sc->certificate.value) != 1)
            return at(cf, &sc->certificate, "\"%s_ssl_certificate\": cannot load \"%s\": %s", pre,
                      sc->certificate.value, ssl_error_text(cf));
        int loaded =
            SSL_CTX_use_PrivateKey_file(ctx, sc->certificate_key.value, SSL_FILETYPE_PEM) == 1;
        unsigned long e = ERR_peek_error();
        int mismatch = !loaded && ERR_GET_LIB(e) == ERR_LIB_X509 &&
                       (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                        ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
        if (!loaded && !mismatch)
            return at(cf, &sc->certificate_key,
                      "\"%s_ssl_certificate_key\": cannot load \"%s\" for \"%s\": %s", pre,
                      sc->certificate_key.value, sc->certificate.value, ssl_error_text(cf));
        if (mismatch || SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            return at(cf, &sc->certificate_key,
                      "\"%s_ssl_certificate_key\": \"%s\" does not match \"%s\"", pre,
                      sc->certificate_key.value, sc->certificate.value);
        }
    }

    /* HTTP/2 needs the server to agree to it in ALPN (RFC 9113 3.2); h2_upstream.c
     * checks the answer after the handshake */
    static const unsigned char alpn_h2[] = {2, 'h', '2'};
    if (h2 && SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2)) != 0)
        return rp_conf_error(cf, "cannot set ALPN on a TLS context: %s", ssl_error_text(cf));

    /* No internal store: the sessions live with the TLS objects, per server. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, new_session);

    built_ctx_t *b = rp_arena_calloc(cf->arena, sizeof(*b));
    b->ctx = ctx;
    b->protocols = sc->protocols;
    b->h2 = h2;
    b->verify = sc->verify;
    b->verify_depth = sc->verify_depth;
    b->ciphers = sc->ciphers.value;
    b->trusted = sc->trusted.value;
    b->certificate = sc->certificate.value;
    b->certificate_key = sc->certificate_key.value;
    *(built_ctx_t **)rp_array_push(&m->tls_ctxs) = b;
    *out = ctx;
    return RP_CONF_OK;
}

static void free_sessions(void *arg)
{
    rp_upstream_tls_t *t = arg;
    for (size_t i = 0; i < t->ups->servers.nelts; i++) {
        if (t->sessions[i])
            SSL_SESSION_free(t->sessions[i]);
        t->sessions[i] = NULL;
    }
}

/* The name a proxy_pass host stands for: without its port, and an IPv6 address without
 * its brackets. */
static char *host_name(rp_conf_t *cf, const char *host)
{
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        size_t n = end ? (size_t)(end - host - 1) : strlen(host + 1);
        return rp_arena_strndup(cf->arena, host + 1, n);
    }
    const char *colon = strrchr(host, ':');
    return rp_arena_strndup(cf->arena, host, colon ? (size_t)(colon - host) : strlen(host));
}

const char *rp_upstream_tls_get(rp_conf_t *cf, rp_upstream_ssl_conf_t *sc, rp_upstream_conf_t *u,
                                const char *host, int h2, rp_upstream_tls_t **out)
{
    SSL_CTX *ctx = NULL;
    const char *err = get_ctx(cf, sc, h2, &ctx);
    if (err != RP_CONF_OK)
        return err;
    char *name = sc->name ? sc->name : host_name(cf, host);
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    /* RFC 6066 3: an address is not a server name, so it is never sent as SNI */
    int sni = sc->server_name && !is_ip;

    rp_upstream_main_conf_t *m = cf->http_ctx->main_conf[rp_upstream_module.index];
    rp_upstream_tls_t **v = m->tls.elts;
    for (size_t i = 0; i < m->tls.nelts; i++) {
        rp_upstream_tls_t *t = v[i];
        if (t->ctx == ctx && t->ups == u && strcmp(t->name, name) == 0 && t->sni == (unsigned)sni &&
            t->verify == (unsigned)!!sc->verify && t->reuse == (unsigned)!!sc->session_reuse) {
            *out = t;
            return RP_CONF_OK;
        }
    }
    rp_upstream_tls_t *t = rp_arena_calloc(cf->arena, sizeof(*t));
    t->ctx = ctx;
    t->ups = u;
    t->name = name;
    t->sni = sni;
    t->verify = !!sc->verify;
    t->reuse = !!sc->session_reuse;
    t->name_is_ip = is_ip;
    t->sessions = rp_arena_calloc(cf->arena, u->servers.nelts * sizeof(SSL_SESSION *));
    rp_arena_cleanup(cf->arena, free_sessions, t);
    *(rp_upstream_tls_t **)rp_array_push(&m->tls) = t;
    *out = t;
    return RP_CONF_OK;
}

const char *rp_upstream_tls_template(rp_conf_t *cf, rp_upstream_ssl_conf_t *sc, int h2,
                                     rp_upstream_tls_t **out)
{
    SSL_CTX *ctx = NULL;
    const char *err = get_ctx(cf, sc, h2, &ctx);
    if (err != RP_CONF_OK)
        return err;
    rp_upstream_tls_t *t = rp_arena_calloc(cf->arena, sizeof(*t));
    t->ctx = ctx;
    t->name = sc->name;         /* NULL: each bound copy takes its host's */
    t->sni = !!sc->server_name; /* whether to send it, when the name is not an address */
    t->verify = !!sc->verify;
    t->reuse = !!sc->session_reuse;
    *out = t;
    return RP_CONF_OK;
}

rp_upstream_tls_t *rp_upstream_tls_bind(const rp_upstream_tls_t *tmpl, rp_upstream_conf_t *u,
                                        rp_str_t host)
{
    rp_upstream_tls_t *t = rp_xcalloc(1, sizeof(*t));
    t->ctx = tmpl->ctx;
    t->ups = u;
    if (tmpl->name) {
        t->name = rp_xstrdup(tmpl->name);
    } else {
        /* the host without its port, an IPv6 address without its brackets */
        const char *h = host.data;
        size_t n = host.len;
        if (n && h[0] == '[') {
            const char *end = memchr(h, ']', n);
            n = end ? (size_t)(end - h - 1) : n - 1;
            h++;
        } else {
            const char *colon = memchr(h, ':', n);
            if (colon)
                n = (size_t)(colon - h);
        }
        t->name = rp_xmalloc(n + 1);
        memcpy(t->name, h, n);
        t->name[n] = '\0';
    }
    unsigned char addr[16];
    t->name_is_ip =
        inet_pton(AF_INET, t->name, addr) == 1 || inet_pton(AF_INET6, t->name, addr) == 1;
    t->sni = tmpl->sni && !t->name_is_ip;
    t->verify = tmpl->verify;
    t->reuse = tmpl->reuse;
    t->sessions = rp_xcalloc(u->servers.nelts, sizeof(SSL_SESSION *));
    return t;
}

void rp_upstream_tls_unbind(rp_upstream_tls_t *t)
{
    free_sessions(t);
    free(t->sessions);
    free(t->name);
    free(t);
}

/* ---- per connection ---- */

/* The slot of the session to offer uc's server, or NULL: peers a DNS answer made are not
 * in the configuration's array, and their sessions are not kept. */
static SSL_SESSION **session_slot(rp_uconn_t *uc)
{
    if (uc->peer->dynamic)
        return NULL;
    return &uc->tls->sessions[uc->peer - (rp_upstream_server_t *)uc->ups->servers.elts];
}

/* A session (TLS 1.2: from the handshake; TLS 1.3: a ticket, after it) to offer next
 * time. Returning 1 keeps OpenSSL's reference for us. */
static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    rp_uconn_t *uc = SSL_get_app_data(ssl);
    if (uc == NULL || uc->tls == NULL || !uc->tls->reuse)
        return 0;
    SSL_SESSION **slot = session_slot(uc);
    if (slot == NULL)
        return 0;
    if (*slot)
        SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;
}

int rp_uconn_tls_start(rp_uconn_t *uc, rp_upstream_tls_t *tls)
{
    SSL *ssl = SSL_new(tls->ctx);
    if (ssl == NULL || SSL_set_fd(ssl, uc->fd) != 1)
        goto fail;
    SSL_set_app_data(ssl, uc);
    SSL_set_connect_state(ssl);
    if (tls->sni && SSL_set_tlsext_host_name(ssl, tls->name) != 1)
        goto fail;
    if (tls->verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        int ok = tls->name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, tls->name)
                                 : SSL_set1_host(ssl, tls->name);
        if (ok != 1)
            goto fail;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    SSL_SESSION **slot = NULL;
    if (tls->reuse) {
        uc->tls = tls; /* session_slot reads it */
        slot = session_slot(uc);
    }
    SSL_SESSION *sess = slot ? *slot : NULL;
    if (sess)
        SSL_set_session(ssl, sess);
    uc->ssl = ssl;
    uc->tls = tls;
    uc->tls_retry = 0;
    uc->tls_sound = 0;
    return 0;

fail:
    ERR_clear_error();
    SSL_free(ssl);
    return -1;
}

int rp_uconn_handshake(rp_uconn_t *uc, char *why, size_t whylen, int *err)
{
    SSL *ssl = uc->ssl;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        uc->tls_sound = 1;
        event_del(&uc->wev);
        return 0;
    }
    int e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        event_del(&uc->wev);
        event_add(&uc->rev, NULL);
        return 1;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        event_add(&uc->wev, NULL);
        return 1;
    }
    int saved = errno;
    *err = 0;
    long vr = SSL_get_verify_result(ssl);
    unsigned long first = ERR_peek_error();
    if (uc->tls->verify && vr != X509_V_OK) {
        snprintf(why, whylen, "upstream SSL certificate verify error: (%ld:%s)", vr,
                 X509_verify_cert_error_string(vr));
    } else if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) && first == 0) {
        *err = e == SSL_ERROR_SYSCALL ? saved : 0;
        snprintf(why, whylen, "peer closed connection in SSL handshake");
    } else {
        char text[256] = "unknown error";
        if (first)
            ERR_error_string_n(first, text, sizeof(text));
        snprintf(why, whylen, "SSL_do_handshake() failed (SSL: %s)", text);
    }
    ERR_clear_error();
    /* a session that led here is not worth offering again */
    SSL_SESSION **slot = session_slot(uc);
    if (slot && *slot) {
        SSL_SESSION_free(*slot);
        *slot = NULL;
    }
    return -1;
}

ssize_t rp_uconn_tls_read(rp_uconn_t *uc, void *buf, size_t n)
{
    unsigned sound = uc->tls_sound;
    ssize_t k = rp_tls_read(uc->ssl, buf, n, &sound);
    uc->tls_sound = sound;
    return k;
}

/* One TLS record's worth of plaintext: writes are cut to it, so a retried write is
 * never longer than the queue the proxy retries from. */
#define TLS_RECORD RP_TLS_RECORD

static ssize_t tls_write(rp_uconn_t *uc, const void *buf, size_t n)
{
    unsigned sound = uc->tls_sound;
    ssize_t k = rp_tls_write(uc->ssl, buf, n, &uc->tls_retry, &sound);
    uc->tls_sound = sound;
    return k;
}

static ssize_t write_one(void *uc, const void *buf, size_t n)
{
    return tls_write(uc, buf, n);
}

ssize_t rp_uconn_tls_writev(rp_uconn_t *uc, const struct iovec *iov, int iovcnt)
{
    return rp_tls_writev(uc, write_one, iov, iovcnt);
}

int rp_uconn_tls_flush(rp_uconn_t *uc)
{
    size_t len = evbuffer_get_length(uc->out);
    if (len == 0)
        return 0;
    size_t n = len < TLS_RECORD ? len : TLS_RECORD;
    /* n >= tls_retry: what failed was at most a record and is all queued */
    struct evbuffer_iovec first;
    const void *data;
    if (evbuffer_peek(uc->out, -1, NULL, &first, 1) >= 1 && first.iov_len >= n)
        data = first.iov_base;
    else
        data = evbuffer_pullup(uc->out, (ev_ssize_t)n);
    ssize_t k = tls_write(uc, data, n);
    if (k > 0)
        evbuffer_drain(uc->out, (size_t)k);
    return (int)k;
}

int rp_uconn_tls_pending(rp_uconn_t *uc)
{
    return SSL_pending(uc->ssl) > 0;
}

int rp_uconn_tls_idle_ok(rp_uconn_t *uc)
{
    char b;
    ERR_clear_error();
    int k = SSL_read(uc->ssl, &b, 1);
    if (k > 0)
        return 0; /* the server spoke out of turn */
    int e = SSL_get_error(uc->ssl, k);
    if (e == SSL_ERROR_WANT_READ)
        return 1; /* a session ticket, a key update: nothing for a request */
    if (e != SSL_ERROR_ZERO_RETURN)
        uc->tls_sound = 0;
    ERR_clear_error();
    return 0;
}

void rp_uconn_tls_close(rp_uconn_t *uc)
{
    if (uc->tls_sound) {
        /* close_notify, sent if the socket takes it; the answer is not awaited. It also
         * keeps the session resumable: OpenSSL spoils one ended without it. */
        ERR_clear_error();
        SSL_shutdown(uc->ssl);
    }
    ERR_clear_error();
    SSL_free(uc->ssl);
    uc->ssl = NULL;
    uc->tls = NULL;
    uc->tls_sound = 0;
    uc->tls_retry = 0;
}
