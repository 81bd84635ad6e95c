/*
 * TLS termination, as nginx configures it: `listen ... ssl`, ssl_certificate and
 * ssl_certificate_key (several pairs: an ECDSA and an RSA certificate, OpenSSL
 * picks by what the client supports), ssl_protocols, ssl_ciphers,
 * ssl_prefer_server_ciphers, ssl_handshake_timeout and ssl_reject_handshake,
 * client certificates, session tickets and OCSP stapling. The session cache is in
 * ssl_session.c.
 *
 * Each server with certificates gets its own SSL_CTX, built when the
 * configuration loads, so a bad file is a configuration error with file:line
 * and a reload with it keeps the old one serving. Every handshake starts on one
 * front context with no certificate; the ClientHello callback reads the SNI name,
 * picks the server the way Host would, and moves the handshake to that server's
 * context before any certificate is chosen. OpenSSL keeps asking the context a
 * handshake started on about sessions and ticket keys, so the front one carries
 * those callbacks, and they act for the server the ClientHello chose.
 */
#include "http/ssl.h"
#include "net/tls.h"
#include "core/log.h"
#include "http/variables.h"
#include "net/conn.h"
#include "net/listen.h"
#include "route/route.h"

#include <errno.h>
#include <stdlib.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include <strings.h>

static void *create_srv(rp_conf_t *cf)
{
    rp_ssl_srv_conf_t *s = rp_arena_calloc(cf->arena, sizeof(*s));
    s->protocols = RP_CONF_UNSET;
    s->prefer_server_ciphers = RP_CONF_UNSET;
    s->reject_handshake = RP_CONF_UNSET;
    s->handshake_timeout = RP_CONF_UNSET_MSEC;
    s->verify_client = RP_CONF_UNSET;
    s->verify_depth = RP_CONF_UNSET;
    s->session_tickets = RP_CONF_UNSET;
    s->session_timeout = RP_CONF_UNSET_MSEC;
    s->session_cache = RP_CONF_UNSET;
    return s;
}

static void *create_main(rp_conf_t *cf)
{
    rp_ssl_main_conf_t *mc = rp_arena_calloc(cf->arena, sizeof(*mc));
    rp_array_init(&mc->cached, cf->arena, 4, sizeof(rp_ssl_srv_conf_t *));
    return mc;
}

static const char *merge_srv(rp_conf_t *cf, void *parent, void *child)
{
    rp_ssl_srv_conf_t *p = parent, *c = child;
    if (c->certs.nelts == 0 && c->keys.nelts == 0) {
        c->certs = p->certs;
        c->keys = p->keys;
    }
    RP_CONF_MERGE(c->protocols, p->protocols, RP_CONF_UNSET, RP_TLS12 | RP_TLS13);
    RP_CONF_MERGE(c->prefer_server_ciphers, p->prefer_server_ciphers, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->reject_handshake, p->reject_handshake, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->handshake_timeout, p->handshake_timeout, RP_CONF_UNSET_MSEC, 60000);
    if (c->ciphers == NULL)
        c->ciphers = p->ciphers ? p->ciphers : "HIGH:!aNULL:!MD5";
    if (!c->ecdh_set) {
        c->ecdh_curve = p->ecdh_curve;
        c->ecdh_set = p->ecdh_set;
    }
    if (c->verify_client == RP_CONF_UNSET) {
        c->verify_client = p->verify_client == RP_CONF_UNSET ? RP_SSL_VERIFY_OFF
                                                              : p->verify_client;
        c->verify_file = p->verify_file;
        c->verify_line = p->verify_line;
    }
    RP_CONF_MERGE(c->verify_depth, p->verify_depth, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->session_tickets, p->session_tickets, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->session_timeout, p->session_timeout, RP_CONF_UNSET_MSEC, 300000);
    if (c->session_cache == RP_CONF_UNSET) {
        c->session_cache = p->session_cache == RP_CONF_UNSET ? RP_SSL_CACHE_NONE : p->session_cache;
        c->cache_zone = p->cache_zone;
    }
    if (c->ticket_keys.nelts == 0)
        c->ticket_keys = p->ticket_keys;
    if (c->ocsp == NULL) {
        c->ocsp = p->ocsp;
        c->ocsp_len = p->ocsp_len;
    }
    if (c->client_certificate == NULL) {
        c->client_certificate = p->client_certificate;
        c->ca_file = p->ca_file;
        c->ca_line = p->ca_line;
    }
    return RP_CONF_OK;
}

static const char *add_path(rp_conf_t *cf, rp_array_t *a)
{
    if (a->elts == NULL)
        rp_array_init(a, cf->arena, 2, sizeof(rp_ssl_file_t));
    rp_ssl_file_t *f = rp_array_push(a);
    f->path = rp_conf_conf_path(cf, cf->argv[1]);
    f->file = cf->file;
    f->line = cf->line;
    return RP_CONF_OK;
}

static const char *set_certificate(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return add_path(cf, &((rp_ssl_srv_conf_t *)conf)->certs);
}

static const char *set_key(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return add_path(cf, &((rp_ssl_srv_conf_t *)conf)->keys);
}

static const char *set_protocols(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return rp_tls_parse_protocols(cf, &((rp_ssl_srv_conf_t *)conf)->protocols);
}

static const char *set_verify_client(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    if (s->verify_client != RP_CONF_UNSET)
        return "is duplicate";
    const char *a = cf->argv[1];
    if (strcmp(a, "on") == 0)
        s->verify_client = RP_SSL_VERIFY_ON;
    else if (strcmp(a, "optional") == 0)
        s->verify_client = RP_SSL_VERIFY_OPTIONAL;
    else if (strcmp(a, "off") == 0)
        s->verify_client = RP_SSL_VERIFY_OFF;
    else
        return rp_conf_error(cf, "invalid value \"%s\" (on, optional or off)", a);
    s->verify_file = cf->file;
    s->verify_line = cf->line;
    return RP_CONF_OK;
}

static const char *set_client_certificate(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    if (s->client_certificate)
        return "is duplicate";
    s->client_certificate = rp_conf_conf_path(cf, cf->argv[1]);
    s->ca_file = cf->file;
    s->ca_line = cf->line;
    return RP_CONF_OK;
}

/*
 * ssl_session_ticket_key FILE: 80 bytes (name, AES-256 key, HMAC key) or 48 (nginx's
 * AES-128 format, not accepted here: say so). The first key issues tickets; later
 * ones only open tickets issued before a rotation.
 */
static const char *set_ticket_key(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    char *path = rp_conf_conf_path(cf, cf->argv[1]);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return rp_conf_error(cf, "cannot open \"%s\": %s", path, strerror(errno));
    unsigned char buf[81];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n != 80)
        return rp_conf_error(cf, "\"%s\" must hold exactly 80 bytes (16 of name, 32 of AES "
                                 "key, 32 of HMAC key), it holds %zu",
                             path, n);
    if (s->ticket_keys.elts == NULL)
        rp_array_init(&s->ticket_keys, cf->arena, 2, sizeof(rp_ssl_ticket_key_t));
    rp_ssl_ticket_key_t *k = rp_array_push(&s->ticket_keys);
    memcpy(k->name, buf, 16);
    memcpy(k->aes, buf + 16, 32);
    memcpy(k->hmac, buf + 48, 32);
    return RP_CONF_OK;
}

/*
 * ssl_stapling_file FILE: an OCSP response (DER, as `openssl ocsp -respout` writes
 * it) stapled to every handshake that asks for the certificate status. It is read
 * at load time and checked to be an OCSP response; refreshing it is a reload.
 */
static const char *set_stapling_file(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    if (s->ocsp)
        return "is duplicate";
    char *path = rp_conf_conf_path(cf, cf->argv[1]);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return rp_conf_error(cf, "cannot open \"%s\": %s", path, strerror(errno));
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), f);
    int more = fgetc(f) != EOF;
    fclose(f);
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp = n && !more ? d2i_OCSP_RESPONSE(NULL, &p, (long)n) : NULL;
    if (resp == NULL) {
        ERR_clear_error();
        return rp_conf_error(cf, "\"%s\" is not a DER OCSP response (64k at most)", path);
    }
    OCSP_RESPONSE_free(resp);
    s->ocsp = rp_arena_alloc(cf->arena, n);
    memcpy(s->ocsp, buf, n);
    s->ocsp_len = n;
    return RP_CONF_OK;
}

static int staple(SSL *ssl, void *arg)
{
    rp_ssl_srv_conf_t *sc = rp_ssl_conn_conf(ssl);
    if (sc->ocsp == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    /* OpenSSL frees what it is given: hand it a copy */
    unsigned char *copy = OPENSSL_malloc(sc->ocsp_len);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, sc->ocsp, sc->ocsp_len);
    SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)sc->ocsp_len);
    return SSL_TLSEXT_ERR_OK;
}

/*
 * Without key files, ticket keys are derived from a secret drawn when the
 * configuration loads, in the master, so every worker holds the same keys and a
 * ticket issued by one is opened by any other. The key in use changes every
 * ssl_session_timeout (the epoch is the time divided by it), and the previous
 * epoch's key still opens tickets, so a ticket lives one to two timeouts and no
 * key outlives two: rotation without any communication between workers.
 */
static unsigned char ticket_secret[32];
static int ticket_secret_set;

static void derive_key(int64_t epoch, rp_ssl_ticket_key_t *k)
{
    unsigned char in[9], out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    for (int i = 0; i < 8; i++)
        in[i] = (unsigned char)(epoch >> (56 - 8 * i));
    in[8] = 1;
    HMAC(EVP_sha512(), ticket_secret, sizeof(ticket_secret), in, sizeof(in), out, &len);
    memcpy(k->name, out, 16);
    memcpy(k->aes, out + 16, 32);
    in[8] = 2;
    HMAC(EVP_sha512(), ticket_secret, sizeof(ticket_secret), in, sizeof(in), out, &len);
    memcpy(k->hmac, out, 32);
}

static int ticket_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *ectx,
                     EVP_MAC_CTX *hctx, int enc)
{
    rp_ssl_srv_conf_t *sc = rp_ssl_conn_conf(ssl);
    rp_ssl_ticket_key_t derived[2];
    const rp_ssl_ticket_key_t *keys;
    size_t nkeys;
    if (sc->ticket_keys.nelts) {
        keys = sc->ticket_keys.elts;
        nkeys = sc->ticket_keys.nelts;
    } else {
        int64_t epoch = (int64_t)time(NULL) * 1000 / (sc->session_timeout > 0 ? sc->session_timeout
                                                                              : 300000);
        derive_key(epoch, &derived[0]);
        derive_key(epoch - 1, &derived[1]);
        keys = derived;
        nkeys = 2;
    }
    const rp_ssl_ticket_key_t *k = NULL;
    int renew = 0;
    if (enc) {
        k = &keys[0];
        memcpy(name, k->name, 16);
        if (RAND_bytes(iv, 16) != 1)
            return -1;
    } else {
        for (size_t i = 0; i < nkeys && !k; i++)
            if (memcmp(name, keys[i].name, 16) == 0) {
                k = &keys[i];
                renew = i > 0; /* issued under an older key: hand out a fresh ticket */
            }
        if (k == NULL)
            return 0; /* unknown key: a full handshake */
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string("key", (void *)k->hmac, 32),
        OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    if ((enc ? EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv)
             : EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv)) != 1)
        return -1;
    return renew ? 2 : 1;
}

/* Accepts any client certificate during the handshake: whether it verified is kept
 * for $ssl_client_verify, and `ssl_verify_client on` refuses the request at the HTTP
 * level with a 400, as nginx does, so the client gets an answer it can read. */
static int verify_keep_going(int ok, X509_STORE_CTX *store)
{
    return 1;
}

/* ssl_ecdh_curve auto | GROUP[:GROUP...]: the key exchange groups offered, in order
 * (nginx's name; X25519, prime256v1, secp384r1, ...); auto is OpenSSL's list. */
static const char *set_ecdh_curve(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    if (s->ecdh_set)
        return "is duplicate";
    s->ecdh_set = 1;
    if (strcmp(cf->argv[1], "auto") == 0)
        return RP_CONF_OK;
    SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
    int ok = probe && SSL_CTX_set1_groups_list(probe, cf->argv[1]) == 1;
    SSL_CTX_free(probe);
    if (!ok) {
        ERR_clear_error();
        return rp_conf_error(cf, "invalid curve list \"%s\"", cf->argv[1]);
    }
    s->ecdh_curve = cf->argv[1];
    return RP_CONF_OK;
}

static const char *set_ciphers(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_ssl_srv_conf_t *s = conf;
    if (s->ciphers)
        return "is duplicate";
    s->ciphers = cf->argv[1];
    return RP_CONF_OK;
}

/* The first OpenSSL error in its queue, for a configuration message. */
static const char *ssl_error_text(rp_conf_t *cf)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return rp_arena_strdup(cf->arena, buf);
}

/* ---- runtime callbacks ---- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    /* h2 first where the listen said http2: SSL_select_next_proto goes by our order */
    static const unsigned char h1[] = "\x08http/1.1", both[] = "\x02h2\x08http/1.1";
    rp_conn_t *c = SSL_get_app_data(ssl);
    int h2 = c && c->ls->http->http2;
    const unsigned char *ours = h2 ? both : h1;
    unsigned ours_len = h2 ? sizeof(both) - 1 : sizeof(h1) - 1;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301 3.2: no_application_protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* Reads the host_name from a ClientHello's server_name extension (RFC 6066 3). */
static int client_hello_sni(SSL *ssl, const char **name, size_t *len)
{
    const unsigned char *p;
    size_t n;
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &n) || n < 5)
        return 0;
    size_t list = ((size_t)p[0] << 8) | p[1];
    if (list + 2 != n || p[2] != TLSEXT_NAMETYPE_host_name)
        return 0;
    size_t hl = ((size_t)p[3] << 8) | p[4];
    if (hl == 0 || hl + 5 > n)
        return 0;
    *name = (const char *)p + 5;
    *len = hl;
    return 1;
}

static int client_hello(SSL *ssl, int *alert, void *arg)
{
    rp_conn_t *c = SSL_get_app_data(ssl);
    rp_http_addr_t *addr = c->ls->http;
    rp_http_core_srv_conf_t *srv = addr->default_server;
    const char *name;
    size_t len;
    if (client_hello_sni(ssl, &name, &len)) {
        char host[256];
        size_t hlen;
        if (len < sizeof(host) && rp_host_normalize(name, len, host, &hlen) == 0) {
            srv = rp_route_server(addr, host, hlen);
            host[hlen] = '\0';
            free(c->sni); /* a second ClientHello (HelloRetryRequest) names it again */
            c->sni = rp_xstrdup(host);
        }
    }
    rp_ssl_srv_conf_t *sc = srv->ctx->srv_conf[rp_ssl_module.index];
    if (sc->reject_handshake || sc->ctx == NULL) {
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (SSL_get_SSL_CTX(ssl) != sc->ctx) {
        SSL_set_SSL_CTX(ssl, sc->ctx);
        /* nor how many TLS 1.3 tickets to send: none when the server has neither
         * tickets nor a cache for them to point into */
        SSL_set_num_tickets(ssl, SSL_CTX_get_num_tickets(sc->ctx));
        /* nor the verification mode: each server asks for client certificates or not */
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(sc->ctx), SSL_CTX_get_verify_callback(sc->ctx));
        SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(sc->ctx));
        /* SSL_set_SSL_CTX moves certificates, not options: take the server's too */
        SSL_clear_options(ssl, SSL_get_options(ssl) ^ SSL_CTX_get_options(sc->ctx));
        SSL_set_options(ssl, SSL_CTX_get_options(sc->ctx));
        SSL_set_min_proto_version(ssl, SSL_CTX_get_min_proto_version(sc->ctx));
        SSL_set_max_proto_version(ssl, SSL_CTX_get_max_proto_version(sc->ctx));
        SSL_set_cipher_list(ssl, sc->ciphers);
        if (sc->ecdh_curve)
            SSL_set1_groups_list(ssl, sc->ecdh_curve); /* checked when configured */
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* What every context shares, the front one included: a client connection's mode. */
static void common_settings(SSL_CTX *ctx)
{
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
}

/* Builds a server's SSL_CTX from its directives; NULL or an error message. */
static const char *build_ctx(rp_conf_t *cf, rp_http_core_srv_conf_t *srv, rp_ssl_srv_conf_t *sc)
{
    rp_ssl_file_t *certs = sc->certs.elts, *keys = sc->keys.elts;
    if (sc->certs.nelts > sc->keys.nelts) {
        rp_ssl_file_t *c = &certs[sc->keys.nelts];
        return rp_arena_sprintf(cf->arena,
                                "%s:%u: \"ssl_certificate\": no \"ssl_certificate_key\" is defined "
                                "for certificate \"%s\"",
                                c->file, c->line, c->path);
    }
    if (sc->keys.nelts > sc->certs.nelts) {
        rp_ssl_file_t *k = &keys[sc->certs.nelts];
        return rp_arena_sprintf(cf->arena,
                                "%s:%u: \"ssl_certificate_key\": no \"ssl_certificate\" is defined "
                                "for key \"%s\"",
                                k->file, k->line, k->path);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return ssl_error_text(cf);
    rp_arena_cleanup(cf->arena, free_ctx, ctx);
    sc->ctx = ctx;

    rp_tls_set_protocols(ctx, sc->protocols);
    common_settings(ctx);
    if (sc->prefer_server_ciphers)
        SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, sc->ciphers) != 1)
        return rp_arena_sprintf(cf->arena, "%s:%u: \"ssl_ciphers\": no usable cipher in \"%s\"",
                                srv->file, srv->line, sc->ciphers);
    if (sc->ecdh_curve)
        SSL_CTX_set1_groups_list(ctx, sc->ecdh_curve); /* checked when configured */

    for (size_t i = 0; i < sc->certs.nelts; i++) {
        if (SSL_CTX_use_certificate_chain_file(ctx, certs[i].path) != 1)
            return rp_arena_sprintf(cf->arena, "%s:%u: \"ssl_certificate\": cannot load \"%s\": %s",
                                    certs[i].file, certs[i].line, certs[i].path,
                                    ssl_error_text(cf));
        if (SSL_CTX_use_PrivateKey_file(ctx, keys[i].path, SSL_FILETYPE_PEM) != 1)
            return rp_arena_sprintf(cf->arena,
                                    "%s:%u: \"ssl_certificate_key\": cannot load \"%s\" for \"%s\": %s",
                                    keys[i].file, keys[i].line, keys[i].path, certs[i].path,
                                    ssl_error_text(cf));
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            return rp_arena_sprintf(cf->arena,
                                    "%s:%u: \"ssl_certificate_key\": \"%s\" does not match \"%s\"",
                                    keys[i].file, keys[i].line, keys[i].path, certs[i].path);
        }
    }
    if (sc->verify_client != RP_SSL_VERIFY_OFF) {
        if (sc->client_certificate == NULL)
            return rp_arena_sprintf(cf->arena,
                                    "%s:%u: \"ssl_verify_client\": no \"ssl_client_certificate\" "
                                    "is defined for it",
                                    sc->verify_file, sc->verify_line);
        if (SSL_CTX_load_verify_locations(ctx, sc->client_certificate, NULL) != 1)
            return rp_arena_sprintf(cf->arena,
                                    "%s:%u: \"ssl_client_certificate\": cannot load \"%s\": %s",
                                    sc->ca_file, sc->ca_line, sc->client_certificate,
                                    ssl_error_text(cf));
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(sc->client_certificate);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names); /* what the CertificateRequest names */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_keep_going);
        SSL_CTX_set_verify_depth(ctx, sc->verify_depth);
    }
    const char *err = rp_ssl_sessions_setup(cf, srv, sc);
    if (err)
        return rp_arena_sprintf(cf->arena, "%s:%u: %s", srv->file, srv->line, err);
    if (sc->session_tickets) {
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    } else {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        /* A TLS 1.3 server without tickets may still send "stateful" ones, mere keys into
         * its session cache: only worth it when there is a cache all workers share. */
        SSL_CTX_set_num_tickets(ctx, sc->session_cache == RP_SSL_CACHE_SHARED ? 2 : 0);
    }
    /* on every context: the handshake may move to another server's after SNI */
    SSL_CTX_set_tlsext_status_cb(ctx, staple);
    SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return NULL;
}

/* The context every handshake starts on: no certificate, only what OpenSSL reads from
 * the starting context whatever server SNI picks (session and ticket callbacks). */
static const char *build_front(rp_conf_t *cf, rp_ssl_main_conf_t *mc)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return ssl_error_text(cf);
    rp_arena_cleanup(cf->arena, free_ctx, ctx);
    mc->front = ctx;
    common_settings(ctx);
    if (!ticket_secret_set) {
        if (RAND_bytes(ticket_secret, sizeof(ticket_secret)) != 1)
            return ssl_error_text(cf);
        ticket_secret_set = 1;
    }
    /* Called only for a server with tickets on: the others' connections get
     * SSL_OP_NO_TICKET from their context in the ClientHello callback. */
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
    SSL_CTX_set_tlsext_status_cb(ctx, staple);
    SSL_CTX_set_client_hello_cb(ctx, client_hello, NULL);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    rp_ssl_sessions_front(mc);
    return NULL;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cf->cycle);
    if (cmcf == NULL)
        return RP_CONF_OK;
    rp_ssl_main_conf_t *mc = rp_http_main_conf(cf->cycle, &rp_ssl_module);
    rp_http_core_srv_conf_t **servers = cmcf->servers.elts;
    for (size_t i = 0; i < cmcf->servers.nelts; i++) {
        rp_http_core_srv_conf_t *srv = servers[i];
        rp_ssl_srv_conf_t *sc = srv->ctx->srv_conf[rp_ssl_module.index];
        if (sc->certs.nelts || sc->keys.nelts) {
            const char *err = build_ctx(cf, srv, sc);
            if (err == NULL && mc->front == NULL)
                err = build_front(cf, mc);
            if (err) {
                snprintf(cf->error, sizeof(cf->error), "%s", err);
                return RP_CONF_ERROR;
            }
        }
    }
    /* Every server reachable on a TLS address needs a certificate, unless it refuses
     * handshakes (nginx's ssl_reject_handshake idiom for a catch-all default). */
    for (size_t i = 0; i < cmcf->servers.nelts; i++) {
        rp_http_core_srv_conf_t *srv = servers[i];
        rp_ssl_srv_conf_t *sc = srv->ctx->srv_conf[rp_ssl_module.index];
        rp_listen_opt_t *lo = srv->listens.elts;
        for (size_t l = 0; l < srv->listens.nelts; l++) {
            if (!rp_http_listen_is_ssl(cf->cycle, &lo[l]) || sc->ctx || sc->reject_handshake)
                continue;
            snprintf(cf->error, sizeof(cf->error),
                     "%s:%u: \"listen\": no \"ssl_certificate\" is defined for the listen ... ssl "
                     "directive in %s:%u",
                     lo[l].file, lo[l].line, lo[l].file, lo[l].line);
            return RP_CONF_ERROR;
        }
    }
    return RP_CONF_OK;
}

rp_ssl_srv_conf_t *rp_ssl_conn_conf(SSL *ssl)
{
    rp_conn_t *c = SSL_get_app_data(ssl);
    rp_http_addr_t *addr = c->ls->http;
    rp_http_core_srv_conf_t *srv = addr->default_server;
    if (c->sni)
        srv = rp_route_server(addr, c->sni, strlen(c->sni));
    return srv->ctx->srv_conf[rp_ssl_module.index];
}

const char *rp_ssl_client_refused(SSL *ssl, const char **title)
{
    rp_ssl_srv_conf_t *sc = rp_ssl_conn_conf(ssl);
    if (sc->verify_client == RP_SSL_VERIFY_OFF)
        return NULL;
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) {
        if (sc->verify_client == RP_SSL_VERIFY_OPTIONAL)
            return NULL;
        *title = "No required SSL certificate was sent";
        return "client sent no required SSL certificate";
    }
    /* as nginx, `optional` still refuses a certificate that does not verify */
    if (SSL_get_verify_result(ssl) != X509_V_OK) {
        *title = "The SSL certificate error";
        return "client SSL certificate verify error";
    }
    return NULL;
}

SSL_CTX *rp_ssl_default_ctx(const rp_http_addr_t *addr)
{
    /* The handshake starts on the front context, if some server of the address can
     * answer it; the ClientHello callback moves it to the chosen server's. */
    rp_ssl_main_conf_t *mc = rp_http_main_conf(addr->cycle, &rp_ssl_module);
    rp_ssl_srv_conf_t *sc = addr->default_server->ctx->srv_conf[rp_ssl_module.index];
    if (sc->ctx)
        return mc->front;
    rp_server_name_t *names = addr->names.elts;
    for (size_t i = 0; i < addr->names.nelts; i++) {
        rp_ssl_srv_conf_t *o = names[i].server->ctx->srv_conf[rp_ssl_module.index];
        if (o->ctx)
            return mc->front;
    }
    return NULL;
}

int64_t rp_ssl_handshake_timeout(const rp_http_addr_t *addr)
{
    rp_ssl_srv_conf_t *sc = addr->default_server->ctx->srv_conf[rp_ssl_module.index];
    return sc->handshake_timeout;
}

#define SRV (RP_CTX_HTTP | RP_CTX_SERVER)
#define S(f) offsetof(rp_ssl_srv_conf_t, f)

static const rp_command_t commands[] = {
    {"ssl_certificate", SRV, 0, 1, 1, set_certificate, RP_CONF_SRV, 0, NULL},
    {"ssl_certificate_key", SRV, 0, 1, 1, set_key, RP_CONF_SRV, 0, NULL},
    {"ssl_protocols", SRV, 0, 1, 4, set_protocols, RP_CONF_SRV, 0, NULL},
    {"ssl_ciphers", SRV, 0, 1, 1, set_ciphers, RP_CONF_SRV, 0, NULL},
    {"ssl_ecdh_curve", SRV, 0, 1, 1, set_ecdh_curve, RP_CONF_SRV, 0, NULL},
    {"ssl_prefer_server_ciphers", SRV, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV,
     S(prefer_server_ciphers), NULL},
    {"ssl_reject_handshake", SRV, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV, S(reject_handshake),
     NULL},
    {"ssl_verify_client", SRV, 0, 1, 1, set_verify_client, RP_CONF_SRV, 0, NULL},
    {"ssl_client_certificate", SRV, 0, 1, 1, set_client_certificate, RP_CONF_SRV, 0, NULL},
    {"ssl_verify_depth", SRV, 0, 1, 1, rp_conf_set_num, RP_CONF_SRV, S(verify_depth), NULL},
    {"ssl_session_tickets", SRV, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV, S(session_tickets), NULL},
    {"ssl_session_timeout", SRV, 0, 1, 1, rp_conf_set_msec, RP_CONF_SRV, S(session_timeout), NULL},
    {"ssl_session_ticket_key", SRV, 0, 1, 1, set_ticket_key, RP_CONF_SRV, 0, NULL},
    {"ssl_session_cache", SRV, 0, 1, RP_ARGS_ANY, rp_ssl_set_session_cache, RP_CONF_SRV, 0, NULL},
    {"ssl_stapling_file", SRV, 0, 1, 1, set_stapling_file, RP_CONF_SRV, 0, NULL},
    {"ssl_handshake_timeout", SRV, 0, 1, 1, rp_conf_set_msec, RP_CONF_SRV, S(handshake_timeout),
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, rp_ssl_variables);
}

rp_module_t rp_ssl_module = {
    .name = "ssl",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_main,
    .create_srv = create_srv,
    .merge_srv = merge_srv,
    .postconfiguration = postconfiguration,
};
