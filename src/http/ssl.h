/*
 * TLS termination: the ssl module's per-server configuration and what the
 * connection layer needs from it.
 */
#ifndef RP_SSL_H
#define RP_SSL_H

#include "http/http.h"

#include <openssl/ssl.h>

/* A session ticket key: 16 bytes of name, then AES-256 and HMAC-SHA256 keys. */
typedef struct {
    unsigned char name[16], aes[32], hmac[32];
} rp_ssl_ticket_key_t;

typedef struct {
    char *path;
    const char *file; /* where the directive was, for messages */
    unsigned line;
} rp_ssl_file_t;

typedef struct {
    rp_array_t certs, keys; /* rp_ssl_file_t, paired in order */
    int protocols; /* bit set */
    char *ciphers;
    int prefer_server_ciphers;
    int reject_handshake;
    int64_t handshake_timeout;
    int verify_client; /* RP_SSL_VERIFY_* */
    int verify_depth;
    char *client_certificate; /* CA bundle client certificates must chain to */
    const char *verify_file;  /* where ssl_verify_client was, for messages */
    unsigned verify_line;
    const char *ca_file; /* where ssl_client_certificate was */
    unsigned ca_line;
    int session_tickets;
    int64_t session_timeout;
    rp_array_t ticket_keys; /* rp_ssl_ticket_key_t from ssl_session_ticket_key files */
    unsigned char *ocsp; /* ssl_stapling_file: a DER OCSP response to staple */
    size_t ocsp_len;
    SSL_CTX *ctx; /* NULL: no certificate */
} rp_ssl_srv_conf_t;

enum { RP_SSL_VERIFY_OFF, RP_SSL_VERIFY_ON, RP_SSL_VERIFY_OPTIONAL };

extern rp_module_t rp_ssl_module;

/* The ssl configuration of the server a TLS connection's handshake chose. */
rp_ssl_srv_conf_t *rp_ssl_conn_conf(SSL *ssl);

/* For ssl_verify_client on|optional: NULL when the request may go on, else why not (for
 * the log), with *title set to the error page's title, as nginx words it. */
const char *rp_ssl_client_refused(SSL *ssl, const char **title);

/* The context a new TLS connection on addr starts its handshake with (NULL: none). */
SSL_CTX *rp_ssl_default_ctx(const rp_http_addr_t *addr);

/* How long a TLS handshake on addr may take. */
int64_t rp_ssl_handshake_timeout(const rp_http_addr_t *addr);

/* Whether the address of a listen line accepts TLS (any listen on it said ssl). */
int rp_http_listen_is_ssl(const rp_cycle_t *cycle, const rp_listen_opt_t *lo);

#endif
