/*
 * The TLS variables of a client connection ($https, $ssl_protocol, $ssl_cipher,
 * $ssl_server_name, $ssl_session_reused, $ssl_client_*), registered by the ssl
 * module. Each is empty on a cleartext connection.
 */
#include "http/ssl.h"
#include "http/variables.h"

#include <openssl/bio.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

static int get_https(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->conn->ssl ? RP_STR("on") : RP_STR("");
    return 0;
}

static int get_ssl_protocol(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = RP_STR("");
    if (r->conn->ssl) {
        const char *name = SSL_get_version(r->conn->ssl);
        *out = (rp_str_t){name, strlen(name)};
    }
    return 0;
}

static int get_ssl_cipher(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = RP_STR("");
    if (r->conn->ssl) {
        const char *name = SSL_CIPHER_get_name(SSL_get_current_cipher(r->conn->ssl));
        if (name)
            *out = (rp_str_t){name, strlen(name)};
    }
    return 0;
}

static int get_ssl_server_name(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const char *sni = r->conn->ssl ? r->conn->sni : NULL;
    *out = sni ? (rp_str_t){sni, strlen(sni)} : RP_STR("");
    return 0;
}

static int get_ssl_session_reused(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = RP_STR("");
    if (r->conn->ssl)
        *out = SSL_session_reused(r->conn->ssl) ? RP_STR("r") : RP_STR(".");
    return 0;
}

static int get_ssl_client_verify(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    SSL *ssl = r->conn->ssl;
    *out = RP_STR("");
    if (ssl == NULL)
        return 0;
    if (SSL_get0_peer_certificate(ssl) == NULL) {
        *out = RP_STR("NONE");
        return 0;
    }
    long res = SSL_get_verify_result(ssl);
    if (res == X509_V_OK) {
        *out = RP_STR("SUCCESS");
        return 0;
    }
    const char *why = X509_verify_cert_error_string(res);
    char *b = rp_arena_alloc(r->arena, strlen(why) + 8);
    size_t n = (size_t)sprintf(b, "FAILED:%s", why);
    *out = (rp_str_t){b, n};
    return 0;
}

/* A DN of the client certificate in RFC 2253 form ("CN=client,O=Example"). */
static int client_dn(rp_request_t *r, rp_str_t *out, int issuer)
{
    *out = RP_STR("");
    X509 *cert = r->conn->ssl ? SSL_get0_peer_certificate(r->conn->ssl) : NULL;
    if (cert == NULL)
        return 0;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return 0;
    X509_NAME_print_ex(bio, issuer ? X509_get_issuer_name(cert) : X509_get_subject_name(cert), 0,
                       XN_FLAG_RFC2253);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0)
        *out = (rp_str_t){rp_arena_strndup(r->arena, data, (size_t)n), (size_t)n};
    BIO_free(bio);
    return 0;
}

static int get_ssl_client_s_dn(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return client_dn(r, out, 0);
}

static int get_ssl_client_i_dn(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return client_dn(r, out, 1);
}


static const rp_var_def_t variables[] = {
    {"https", get_https, NULL, 0, 0},
    {"ssl_protocol", get_ssl_protocol, NULL, 0, 0},
    {"ssl_cipher", get_ssl_cipher, NULL, 0, 0},
    {"ssl_server_name", get_ssl_server_name, NULL, 0, 0},
    {"ssl_session_reused", get_ssl_session_reused, NULL, 0, 0},
    {"ssl_client_verify", get_ssl_client_verify, NULL, 0, 0},
    {"ssl_client_s_dn", get_ssl_client_s_dn, NULL, 0, 0},
    {"ssl_client_i_dn", get_ssl_client_i_dn, NULL, 0, 0},
    {NULL, NULL, NULL, 0, 0},
};

const rp_var_def_t *const rp_ssl_variables = variables;
