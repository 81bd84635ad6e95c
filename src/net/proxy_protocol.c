/*
 * The PROXY protocol, v1 and v2 (see proxy_protocol.h), on a listening address that
 * says `proxy_protocol`: the header is read before anything else runs on the
 * connection, and the addresses it carries are kept on the connection for
 * $proxy_protocol_addr and friends and for `real_ip_header proxy_protocol`.
 *
 * No byte past the header is taken from the socket: the reader peeks, and reads for
 * good only what it knows is header (all of what it saw while the header is not
 * complete, exactly the header's length once it is). The bytes that follow stay in
 * the kernel for TLS or HTTP, which then start as on any connection. A header split
 * over many segments is put together here, under client_header_timeout as nginx.
 */
#include "net/proxy_protocol.h"
#include "core/arena.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#define V1_MAX  107 /* "PROXY TCP6 " + two full IPv6 addresses + two ports + CRLF */
#define V2_HEAD 16

static const unsigned char v1_sig[] = "PROXY ";
static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* ---- the parser ---- */

/* An address of a v1 line (up to the next space) into sa; -1 when it is none. */
static int v1_addr(const char *s, size_t n, int family, struct sockaddr_storage *sa, socklen_t *len)
{
    char text[INET6_ADDRSTRLEN];
    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    memset(sa, 0, sizeof(*sa));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)sa;
        if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
            return -1;
        sin->sin_family = AF_INET;
        *len = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
        if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
            return -1;
        sin6->sin6_family = AF_INET6;
        *len = sizeof(*sin6);
    }
    return 0;
}

/* A v1 port: decimal, 0..65535, no sign, no leading zero (the spec's form). */
static int v1_port(const char *s, size_t n)
{
    if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v > 65535 ? -1 : (int)v;
}

static void set_port(struct sockaddr_storage *sa, int port)
{
    if (sa->ss_family == AF_INET)
        ((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
    else if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

static int parse_v1(const unsigned char *buf, size_t len, rp_proxy_addrs_t *out, const char **why)
{
    const unsigned char *crlf = NULL;
    for (size_t i = 0; i < len && i < V1_MAX; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == len)
                break; /* the LF may be on its way */
            if (buf[i + 1] != '\n') {
                *why = "a CR without LF in the v1 line";
                return -1;
            }
            crlf = buf + i;
            break;
        }
        if (buf[i] == '\n' || buf[i] == '\0') {
            *why = "a bare line feed or NUL in the v1 line";
            return -1;
        }
    }
    if (crlf == NULL) {
        if (len >= V1_MAX) {
            *why = "no CRLF in the first 107 bytes";
            return -1;
        }
        return 0;
    }
    size_t hlen = (size_t)(crlf - buf) + 2;
    const char *p = (const char *)buf + 6, *end = (const char *)crlf;
    out->version = 1;
    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' ')) {
        /* the spec: the rest of the line is ignored, the connection's addresses stand */
        out->family = AF_UNSPEC;
        return (int)hlen;
    }
    int family;
    if (end - p >= 5 && memcmp(p, "TCP4 ", 5) == 0)
        family = AF_INET;
    else if (end - p >= 5 && memcmp(p, "TCP6 ", 5) == 0)
        family = AF_INET6;
    else {
        *why = "an unknown protocol in the v1 line";
        return -1;
    }
    p += 5;
    /* four fields, single spaces between them */
    const char *f[4];
    size_t fl[4];
    for (int i = 0; i < 4; i++) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = i < 3 ? sp : end;
        if (e == NULL || (i == 3 && sp != NULL)) {
            *why = "not four fields in the v1 line";
            return -1;
        }
        f[i] = p;
        fl[i] = (size_t)(e - p);
        p = e + 1;
    }
    if (v1_addr(f[0], fl[0], family, &out->src, &out->srclen) != 0 ||
        v1_addr(f[1], fl[1], family, &out->dst, &out->dstlen) != 0) {
        *why = "an invalid address in the v1 line";
        return -1;
    }
    int sport = v1_port(f[2], fl[2]), dport = v1_port(f[3], fl[3]);
    if (sport < 0 || dport < 0) {
        *why = "an invalid port in the v1 line";
        return -1;
    }
    set_port(&out->src, sport);
    set_port(&out->dst, dport);
    out->family = family;
    return (int)hlen;
}

static int parse_v2(const unsigned char *buf, size_t len, rp_proxy_addrs_t *out, const char **why)
{
    if (len < V2_HEAD)
        return 0;
    unsigned ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
    unsigned fam = buf[13] >> 4, proto = buf[13] & 0x0f;
    size_t alen = (size_t)buf[14] << 8 | buf[15];
    if (ver != 2) {
        *why = "an unknown v2 version";
        return -1;
    }
    if (cmd > 1) {
        *why = "an unknown v2 command";
        return -1;
    }
    if (fam > 3 || proto > 2) {
        *why = "an unknown v2 address family or transport";
        return -1;
    }
    if (V2_HEAD + alen > RP_PROXY_PROTOCOL_MAX) {
        *why = "a v2 header too large";
        return -1;
    }
    static const size_t need[4] = {0, 12, 36, 216};
    if (cmd == 1 && alen < need[fam]) {
        *why = "a v2 address block shorter than its family";
        return -1;
    }
    if (len < V2_HEAD + alen)
        return 0;
    const unsigned char *a = buf + V2_HEAD;
    out->version = 2;
    out->family = AF_UNSPEC;
    /* LOCAL (the balancer's own health check) and UNSPEC keep the socket's addresses;
     * TLVs after the addresses are skipped, as the spec allows a receiver to. */
    if (cmd == 0 || fam == 0)
        return (int)(V2_HEAD + alen);
    memset(&out->src, 0, sizeof(out->src));
    memset(&out->dst, 0, sizeof(out->dst));
    if (fam == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&out->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&out->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        out->srclen = out->dstlen = sizeof(*s);
        out->family = AF_INET;
    } else if (fam == 2) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&out->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&out->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        out->srclen = out->dstlen = sizeof(*s);
        out->family = AF_INET6;
    } else {
        /* two 108-byte paths, NUL-padded (a path may fill all 108 bytes) */
        struct sockaddr_un *s = (struct sockaddr_un *)&out->src;
        struct sockaddr_un *d = (struct sockaddr_un *)&out->dst;
        s->sun_family = d->sun_family = AF_UNIX;
        size_t cap = sizeof(s->sun_path) < 108 ? sizeof(s->sun_path) : 108;
        memcpy(s->sun_path, a, cap);
        memcpy(d->sun_path, a + 108, cap);
        out->srclen = out->dstlen = sizeof(*s);
        out->family = AF_UNIX;
    }
    return (int)(V2_HEAD + alen);
}

int rp_proxy_protocol_parse(const unsigned char *buf, size_t len, rp_proxy_addrs_t *out,
                            const char **why)
{
    *why = NULL;
    /* Which version: tell as soon as the bytes seen disagree with both signatures. */
    size_t n1 = len < 6 ? len : 6, n2 = len < 12 ? len : 12;
    int v1 = memcmp(buf, v1_sig, n1) == 0, v2 = memcmp(buf, v2_sig, n2) == 0;
    if (!v1 && !v2) {
        *why = "no PROXY protocol signature";
        return -1;
    }
    if (v1 && len >= 6)
        return parse_v1(buf, len, out, why);
    if (v2 && len >= 12)
        return parse_v2(buf, len, out, why);
    return 0;
}

void rp_proxy_addr_text(const struct sockaddr_storage *sa, char *buf, size_t len, int *port)
{
    *port = 0;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s->sin_addr, buf, (socklen_t)len);
        *port = ntohs(s->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s->sin6_addr, buf, (socklen_t)len);
        *port = ntohs(s->sin6_port);
    } else if (sa->ss_family == AF_UNIX) {
        const struct sockaddr_un *s = (const struct sockaddr_un *)sa;
        snprintf(buf, len, "unix:%.*s", (int)strnlen(s->sun_path, sizeof(s->sun_path)),
                 s->sun_path);
    } else if (len) {
        buf[0] = '\0';
    }
}

/* ---- reading it from a connection ---- */

typedef struct {
    void (*next)(rp_conn_t *c);
    size_t have;
    unsigned char buf[RP_PROXY_PROTOCOL_MAX];
} reader_t;

static void reader_release(rp_conn_t *c)
{
    free(c->data);
    c->data = NULL;
}

/* The first bytes, printable, for the log line (nginx shows the header it refused). */
static void show(const unsigned char *b, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02X", b[i]);
    }
    out[o] = '\0';
}

static void refuse(rp_conn_t *c, int level, const char *what)
{
    char client[INET6_ADDRSTRLEN + 8] = "unix:";
    if (c->peer.sa.sa_family == AF_INET)
        inet_ntop(AF_INET, &c->peer.sin.sin_addr, client, sizeof(client));
    else if (c->peer.sa.sa_family == AF_INET6)
        inet_ntop(AF_INET6, &c->peer.sin6.sin6_addr, client, sizeof(client));
    rp_log_error(level, 0, "%s while reading PROXY protocol, client: %s, server: %s", what, client,
                 c->ls->text);
    c->failed = 1;
    rp_conn_free(c);
}

static void reader_read(rp_conn_t *c)
{
    reader_t *rd = c->data;
    ssize_t n;
    do
        n = recv(c->fd, rd->buf + rd->have, sizeof(rd->buf) - rd->have, MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        /* gone before the header: nginx logs this at info, like any silent client */
        refuse(c, RP_LOG_INFO, n == 0 ? "client closed connection" : "recv() failed");
        return;
    }
    rp_proxy_addrs_t addrs;
    const char *why;
    int h = rp_proxy_protocol_parse(rd->buf, rd->have + (size_t)n, &addrs, &why);
    if (h < 0 || (h == 0 && rd->have + (size_t)n >= sizeof(rd->buf))) {
        char text[200], line[300];
        size_t seen = rd->have + (size_t)n;
        show(rd->buf, seen < 48 ? seen : 48, text, sizeof(text));
        snprintf(line, sizeof(line), "broken header: \"%s\" (%s)", text,
                 why ? why : "a header too large");
        refuse(c, RP_LOG_ERR, line);
        return;
    }
    /* Take for good what is header: all of it seen so far, or exactly up to its end. */
    size_t take = h > 0 ? (size_t)h - rd->have : (size_t)n;
    ssize_t k;
    do
        k = read(c->fd, rd->buf + rd->have, take);
    while (k < 0 && errno == EINTR);
    if (k != (ssize_t)take) {
        refuse(c, RP_LOG_INFO, "read() failed");
        return;
    }
    rd->have += take;
    if (h == 0)
        return;

    void (*next)(rp_conn_t *) = rd->next;
    free(rd);
    rp_conn_set_proto(c, NULL, NULL);
    event_del(&c->timer);
    c->proxy_read = 1;
    if (addrs.family != AF_UNSPEC) {
        c->proxy = rp_xmalloc(sizeof(*c->proxy));
        *c->proxy = addrs;
    }
    next(c);
}

static void reader_timeout(rp_conn_t *c)
{
    refuse(c, RP_LOG_INFO, "client timed out");
}

static const rp_conn_proto_t reader_proto = {
    .name = "proxy-protocol",
    .read = reader_read,
    .timeout = reader_timeout,
    .drain = NULL, /* a header on its way is a request on its way: let it come */
    .release = reader_release,
};

void rp_proxy_protocol_read(rp_conn_t *c, int64_t timeout_ms, void (*next)(rp_conn_t *c))
{
    reader_t *rd = rp_xmalloc(sizeof(*rd));
    rd->next = next;
    rd->have = 0;
    rp_conn_set_proto(c, &reader_proto, rd);
    rp_conn_set_timer(c, timeout_ms);
}
