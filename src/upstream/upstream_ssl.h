/*
 * TLS to upstream servers (`proxy_pass https://...`): the proxy_ssl_* settings
 * of a configuration level, the client contexts built from them when the
 * configuration loads, and what a connection to a server does with TLS: the
 * non-blocking handshake, reads and writes through it, session resumption and
 * the close.
 *
 * The proxy never touches OpenSSL: it calls rp_uconn_read / rp_uconn_writev /
 * rp_uconn_flush (upstream.h), which go straight to the socket for a plain
 * connection and through the functions here for a TLS one.
 */
#ifndef RP_UPSTREAM_SSL_H
#define RP_UPSTREAM_SSL_H

#include "core/str.h"
#include "upstream/upstream.h"

#include <openssl/ssl.h>

extern rp_module_t rp_proxy_ssl_module; /* the proxy_ssl_* directives (proxy_ssl_module.c) */
extern rp_module_t rp_grpc_ssl_module;  /* the grpc_ssl_* ones, the same settings for grpcs:// */

/* A directive's argument (a file, a cipher list), with where the directive was, for
 * messages that point at it. */
typedef struct {
    char *value; /* NULL: not set */
    const char *file;
    unsigned line;
} rp_upstream_ssl_val_t;

/* The proxy_ssl_* directives of one level (http, server, location), inherited by merging. */
typedef struct {
    const char *prefix; /* "proxy" or "grpc": which directives these are, for messages */
    int verify;         /* proxy_ssl_verify */
    int verify_depth;   /* proxy_ssl_verify_depth */
    int server_name;    /* proxy_ssl_server_name: send SNI */
    int session_reuse;
    int protocols; /* RP_TLS* bits (net/tls.h) */
    char *name;    /* proxy_ssl_name; NULL: the host of proxy_pass */
    rp_upstream_ssl_val_t ciphers, trusted, certificate, certificate_key;
    rp_upstream_ssl_val_t verify_at; /* where proxy_ssl_verify was (value unused) */
} rp_upstream_ssl_conf_t;

/*
 * How the requests of a location talk TLS to the servers of one upstream group:
 * a context (shared by every location with the same protocols, ciphers, trust
 * and client certificate) and what varies per connection (the name). One such
 * object exists per distinct combination; idle connections are only handed to
 * requests with the same object, so a connection verified under one set of
 * rules never carries a request that asked for another, and a plain one never
 * carries a TLS request.
 */
struct rp_upstream_tls_s {
    SSL_CTX *ctx;
    rp_upstream_conf_t *ups;
    char *name;       /* checked against the certificate; sent as SNI when sni */
    unsigned sni : 1; /* proxy_ssl_server_name on, and name is not an address */
    unsigned verify : 1;
    unsigned reuse : 1; /* proxy_ssl_session_reuse */
    unsigned name_is_ip : 1;
    /* per worker: the last session each server of ups gave, offered on the next
     * connection to it (indexed like ups->servers) */
    SSL_SESSION **sessions;
};

/*
 * The TLS object for a location whose proxy_pass is https: builds (or finds)
 * the context for sc's settings, in the master, at load time; host is the host
 * of proxy_pass, the default name; h2: the connections speak HTTP/2 (an `http2`
 * group, grpc_pass), so the context offers ALPN "h2" and is not shared with
 * HTTP/1 ones. Returns RP_CONF_OK, or RP_CONF_ERROR with a
 * "file:line: ..." message in cf->error naming the directive at fault.
 */
const char *rp_upstream_tls_get(rp_conf_t *cf, rp_upstream_ssl_conf_t *sc, rp_upstream_conf_t *u,
                                const char *host, int h2, rp_upstream_tls_t **out);

/*
 * For a proxy_pass https:// (or grpc_pass grpcs://) whose upstream is chosen per request:
 * the context for sc's settings, built at load time like rp_upstream_tls_get's, in an
 * object bound to no group yet. RP_CONF_OK, or RP_CONF_ERROR with the message in cf->error.
 */
const char *rp_upstream_tls_template(rp_conf_t *cf, rp_upstream_ssl_conf_t *sc, int h2,
                                     rp_upstream_tls_t **out);

/* A worker's copy of tmpl for the servers of u, reached as host ("10.0.0.1:8443", "pool"):
 * the name checked and sent is tmpl's proxy_ssl_name, else host without its port. Freed
 * by rp_upstream_tls_unbind once no connection uses it. */
rp_upstream_tls_t *rp_upstream_tls_bind(const rp_upstream_tls_t *tmpl, rp_upstream_conf_t *u,
                                        rp_str_t host);
void rp_upstream_tls_unbind(rp_upstream_tls_t *t);

/* Begins TLS on a connected uc (client side, name, session to offer). 0, or -1 when
 * OpenSSL could not even make the connection object. */
int rp_uconn_tls_start(rp_uconn_t *uc, rp_upstream_tls_t *tls);

/*
 * Moves the handshake on. Returns 0 when it is complete, 1 when it waits for the
 * socket (the read event stays armed; the write event is armed only when TLS
 * must write), -1 when it failed: why holds nginx's wording of the cause and
 * *err an errno worth printing (0 if none).
 */
int rp_uconn_handshake(rp_uconn_t *uc, char *why, size_t whylen, int *err);

/* rp_uconn_tls_read, _writev and _flush, the TLS halves of rp_uconn_read, _writev and
 * _flush, are declared in upstream.h beside them: like read(2), writev(2) and
 * evbuffer_write(3), with -1/EAGAIN when TLS must wait (whichever direction it waits
 * for: a read may need the socket writable and the other way round, which the
 * events of an established connection do not distinguish; renegotiation is off, so
 * only a TLS 1.3 key update could ask for it, and a small write goes through).
 * rp_uconn_tls_pending tells whether decrypted bytes wait inside TLS, which the
 * socket will not signal again. */

/* For an idle TLS connection whose socket became readable: 1 when it only carried TLS
 * housekeeping (a session ticket) and may stay cached, 0 when it must be closed (the
 * server's close_notify, an error, or bytes nobody asked for). */
int rp_uconn_tls_idle_ok(rp_uconn_t *uc);

/* Ends TLS on uc: close_notify when the session is sound, never waiting; frees it. */
void rp_uconn_tls_close(rp_uconn_t *uc);

#endif
