/*
 * What TLS toward clients (http/ssl_module.c, http/h1_conn.c) and toward upstream
 * servers (upstream/upstream_ssl.c) have in common: the protocol list of the
 * *_protocols directives, and writing an iovec through a record-sized SSL_write.
 */
#ifndef RP_TLS_H
#define RP_TLS_H

#include "conf/conf.h"

#include <openssl/ssl.h>
#include <sys/types.h>
#include <sys/uio.h>

enum { RP_TLS10 = 1, RP_TLS11 = 2, RP_TLS12 = 4, RP_TLS13 = 8 };

/* One TLS record's worth: writes are never split into records smaller than needed. */
#define RP_TLS_RECORD 16384

/* The setter body of ssl_protocols / proxy_ssl_protocols: cf->argv[1..] into *mask
 * (RP_CONF_UNSET before: a second directive is a duplicate). */
const char *rp_tls_parse_protocols(rp_conf_t *cf, int *mask);

/* Limits ctx to the lowest and highest protocol in mask. */
void rp_tls_set_protocols(SSL_CTX *ctx, int mask);

/*
 * Like writev(2) through write(io, buf, n), a wrapper of SSL_write that keeps its
 * own retry bookkeeping. Small pieces go out as one record (copied into a worker
 * buffer), large ones a record at a time; returns what was taken, or -1 when
 * nothing was (errno set by write).
 */
ssize_t rp_tls_writev(void *io, ssize_t (*write)(void *io, const void *buf, size_t n),
                      const struct iovec *iov, int iovcnt);

#endif
