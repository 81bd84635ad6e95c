/*
 * TLS helpers shared by the client and upstream sides (see tls.h).
 */
#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <string.h>

const char *rp_tls_parse_protocols(rp_conf_t *cf, int *mask)
{
    if (*mask != RP_CONF_UNSET)
        return "is duplicate";
    *mask = 0;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strcmp(a, "TLSv1") == 0)
            *mask |= RP_TLS10;
        else if (strcmp(a, "TLSv1.1") == 0)
            *mask |= RP_TLS11;
        else if (strcmp(a, "TLSv1.2") == 0)
            *mask |= RP_TLS12;
        else if (strcmp(a, "TLSv1.3") == 0)
            *mask |= RP_TLS13;
        else
            return rp_conf_error(cf, "invalid value \"%s\" (TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)", a);
    }
    return RP_CONF_OK;
}

static int version(int bit)
{
    switch (bit) {
    case RP_TLS10: return TLS1_VERSION;
    case RP_TLS11: return TLS1_1_VERSION;
    case RP_TLS12: return TLS1_2_VERSION;
    default: return TLS1_3_VERSION;
    }
}

void rp_tls_set_protocols(SSL_CTX *ctx, int mask)
{
    int lo = 0, hi = 0;
    for (int bit = RP_TLS10; bit <= RP_TLS13; bit <<= 1) {
        if (mask & bit) {
            if (!lo)
                lo = bit;
            hi = bit;
        }
    }
    SSL_CTX_set_min_proto_version(ctx, version(lo));
    SSL_CTX_set_max_proto_version(ctx, version(hi));
}

/* Where a head and a small body meet to go out as one record. Per worker. */
static char coalesce[RP_TLS_RECORD];

ssize_t rp_tls_writev(void *io, ssize_t (*write)(void *io, const void *buf, size_t n),
                      const struct iovec *iov, int iovcnt)
{
    size_t sum = 0, total = 0;
    for (int i = 0; i < iovcnt; i++)
        sum += iov[i].iov_len;
    if (iovcnt > 1 && sum <= RP_TLS_RECORD) {
        size_t off = 0;
        for (int i = 0; i < iovcnt; i++) {
            memcpy(coalesce + off, iov[i].iov_base, iov[i].iov_len);
            off += iov[i].iov_len;
        }
        return write(io, coalesce, off);
    }
    for (int i = 0; i < iovcnt; i++) {
        size_t off = 0;
        while (off < iov[i].iov_len) {
            size_t chunk = iov[i].iov_len - off;
            if (chunk > RP_TLS_RECORD)
                chunk = RP_TLS_RECORD;
            ssize_t k = write(io, (const char *)iov[i].iov_base + off, chunk);
            if (k < 0)
                return total ? (ssize_t)total : -1; /* the caller queues from total on */
            off += (size_t)k;
            total += (size_t)k;
            if ((size_t)k < chunk)
                return (ssize_t)total;
        }
    }
    return (ssize_t)total;
}

ssize_t rp_tls_failed(SSL *ssl, int k, int reading, unsigned *sound)
{
    int saved = errno;
    switch (SSL_get_error(ssl, k)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        if (reading)
            return 0; /* close_notify: the session ended soundly */
        break;
    case SSL_ERROR_SYSCALL:
        /* OpenSSL forbids a close_notify after these */
        *sound = 0;
        ERR_clear_error();
        if (reading && saved == 0)
            return 0; /* closed without close_notify */
        if (saved != 0 && saved != EAGAIN) {
            errno = saved;
            return -1;
        }
        break;
    }
    *sound = 0;
    ERR_clear_error();
    errno = reading ? EPROTO : EPIPE;
    return -1;
}

ssize_t rp_tls_read(SSL *ssl, void *buf, size_t n, unsigned *sound)
{
    ERR_clear_error();
    errno = 0;
    int k = SSL_read(ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    return k > 0 ? k : rp_tls_failed(ssl, k, 1, sound);
}

ssize_t rp_tls_write(SSL *ssl, const void *buf, size_t n, uint32_t *retry, unsigned *sound)
{
    ERR_clear_error();
    errno = 0;
    int k = SSL_write(ssl, buf, (int)n);
    if (k > 0) {
        *retry = 0;
        return k;
    }
    ssize_t rc = rp_tls_failed(ssl, k, 0, sound);
    if (errno == EAGAIN)
        *retry = (uint32_t)n; /* OpenSSL wants the retry at least this long */
    return rc;
}
