/*
 * TLS helpers shared by the client and upstream sides (see tls.h).
 */
#include "net/tls.h"

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
