/*
 * The PROXY protocol (HAProxy's doc/proxy-protocol.txt), versions 1 (text) and 2
 * (binary), as a listening address with `listen ... proxy_protocol` receives it: an L4
 * balancer in front says who the client is before the first byte of the client's own
 * stream (before TLS, before HTTP/1 or the HTTP/2 preface).
 *
 * rp_proxy_protocol_parse is the pure core (bytes in, addresses out: unit-tested and
 * fuzzable); rp_proxy_protocol_read runs it on a connection, reading no byte past the
 * header, so the protocol that follows finds the client's stream intact.
 */
#ifndef RP_NET_PROXY_PROTOCOL_H
#define RP_NET_PROXY_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest header accepted: v1's 107 bytes, or v2's 16 plus its addresses and TLVs.
 * A v2 header announcing more is refused as too large (as HAProxy: its buffer bounds it). */
#define RP_PROXY_PROTOCOL_MAX 4096

/* What the header said. family is AF_INET, AF_INET6 or AF_UNIX when it carried
 * addresses; AF_UNSPEC for a v1 "UNKNOWN", a v2 LOCAL command or a v2 UNSPEC family,
 * where the connection's own addresses stand (the spec's rule). */
typedef struct rp_proxy_addrs_s {
    int family;
    int version; /* 1 or 2 */
    struct sockaddr_storage src, dst;
    socklen_t srclen, dstlen;
} rp_proxy_addrs_t;

/*
 * Parses a header at the start of buf (len bytes, the stream so far). Returns the
 * header's length (> 0) with *out filled, 0 when more bytes are needed to tell, or -1
 * for a broken header (*why says what is wrong).
 */
int rp_proxy_protocol_parse(const unsigned char *buf, size_t len, rp_proxy_addrs_t *out,
                            const char **why);

struct rp_conn_s;

/*
 * Reads the header from c's socket, bounded by timeout_ms, then calls next(c) with
 * c->proxy set (c->proxy_read set in any case). A missing, broken or too large
 * header, a timeout, or a client gone closes the connection (and logs, as nginx:
 * "broken header: ... while reading PROXY protocol").
 */
void rp_proxy_protocol_read(struct rp_conn_s *c, int64_t timeout_ms,
                            void (*next)(struct rp_conn_s *c));

/* Formats an address of a header: "1.2.3.4", "::1", "unix:/path"; *port 0 for unix. */
void rp_proxy_addr_text(const struct sockaddr_storage *sa, char *buf, size_t len, int *port);

#endif
