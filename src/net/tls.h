/*
 * What TLS toward clients (http/ssl_module.c, net/conn.c) and toward upstream
 * servers (upstream/upstream_ssl.c) have in common: the protocol list of the
 * *_protocols directives, reads and writes with one error mapping and retry rule,
 * and writing an iovec through a record-sized SSL_write.
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

/*
 * Maps a failed SSL_read/SSL_write (k <= 0) to read(2)/write(2) conventions: 0 for
 * the end of a read, else -1 with errno, EAGAIN when TLS must wait. Clears *sound
 * when the session may no longer send close_notify (OpenSSL forbids it after a
 * fatal error). The caller sets errno to 0 before the SSL call.
 */
ssize_t rp_tls_failed(SSL *ssl, int k, int reading, unsigned *sound);

/* SSL_read into buf, like read(2), with rp_tls_failed's conventions. */
ssize_t rp_tls_read(SSL *ssl, void *buf, size_t n, unsigned *sound);

/*
 * SSL_write of buf[0..n), like write(2). After -1/EAGAIN, *retry holds n: OpenSSL
 * wants the retried write no shorter (the caller keeps the bytes queued); a write
 * that went through clears it.
 */
ssize_t rp_tls_write(SSL *ssl, const void *buf, size_t n, uint32_t *retry, unsigned *sound);

#endif
