/*
 * TLS termination: the ssl module's configuration and what the connection layer
 * needs from it; the session cache's side (ssl_session.c) is declared at the end.
 */
#ifndef RP_SSL_H
#define RP_SSL_H

#include "core/shm.h"
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
    char *ecdh_curve; /* ssl_ecdh_curve: OpenSSL's group list; NULL: "auto" */
    int ecdh_set;     /* ssl_ecdh_curve was given here (auto included) */
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
    int session_cache;         /* RP_SSL_CACHE_* */
    rp_shm_zone_t *cache_zone; /* shared: the zone its sessions go to */
    /* the session ID context: no session resumes on another server */
    unsigned char sid_ctx[SSL_MAX_SID_CTX_LENGTH];
    rp_array_t ticket_keys; /* rp_ssl_ticket_key_t from ssl_session_ticket_key files */
    unsigned char *ocsp; /* ssl_stapling_file: a DER OCSP response to staple */
    size_t ocsp_len;
    SSL_CTX *ctx; /* NULL: no certificate */
} rp_ssl_srv_conf_t;

enum { RP_SSL_VERIFY_OFF, RP_SSL_VERIFY_ON, RP_SSL_VERIFY_OPTIONAL };

/* ssl_session_cache: off (no reuse, and the client is told so), none (the client is
 * told sessions may be reused, none is kept), shared (kept in a zone all workers see). */
enum { RP_SSL_CACHE_OFF, RP_SSL_CACHE_NONE, RP_SSL_CACHE_SHARED };

/* The http level's share: the context every handshake starts on. */
typedef struct {
    SSL_CTX *front;    /* NULL: no server has a certificate */
    rp_array_t cached; /* rp_ssl_srv_conf_t *: the servers with a shared session cache */
} rp_ssl_main_conf_t;

extern rp_module_t rp_ssl_module;

/* The TLS variables ($https, $ssl_*), registered by the ssl module (ssl_variables.c). */
struct rp_var_def_s;
extern const struct rp_var_def_s *const rp_ssl_variables;

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

/* ---- sessions (ssl_session.c) ---- */

/* The ssl_session_cache directive's setter. */
const char *rp_ssl_set_session_cache(rp_conf_t *cf, const rp_command_t *cmd, void *conf);

/*
 * Session settings of a server's new context (its certificates loaded): its session
 * ID context, whether ServerHello offers reuse, the cache callbacks. Returns NULL or
 * an error message.
 */
const char *rp_ssl_sessions_setup(rp_conf_t *cf, rp_http_core_srv_conf_t *srv,
                                  rp_ssl_srv_conf_t *sc);

/* Session settings of the context handshakes start on, which OpenSSL consults for
 * every session of the handshake whatever server SNI chooses. */
void rp_ssl_sessions_front(rp_ssl_main_conf_t *mc);

#endif
