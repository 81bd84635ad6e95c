/*
 * The real client behind a proxy or an L4 balancer, as nginx's realip module:
 * `set_real_ip_from` names the trusted sources, `real_ip_header` where they say who
 * the client is (X-Real-IP, X-Forwarded-For, any field, or the PROXY protocol
 * header), `real_ip_recursive` whether trusted addresses in X-Forwarded-For are
 * skipped to the last untrusted one. The address found replaces r->peer, so
 * $remote_addr, $binary_remote_addr, $remote_port, the limits' keys, the access log
 * and access rules see the client; $realip_remote_addr and $realip_remote_port keep
 * the connection's.
 *
 * As nginx, it runs twice: first before the server's rewrites with the server's
 * settings (nginx's post-read phase), then, if that changed nothing, before the
 * limits with the location's. Each request has its own address (HTTP/2 streams of
 * one connection may come from different clients through one proxy).
 *
 * This file also gives the PROXY protocol's variables ($proxy_protocol_addr, ...):
 * what the header said, whatever realip does with it.
 */
#include "http/http.h"
#include "http/request.h"
#include "http/variables.h"
#include "net/conn.h"
#include "net/listen.h"
#include "net/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

enum { HDR_X_REAL_IP = 1, HDR_X_FORWARDED_FOR, HDR_PROXY_PROTOCOL, HDR_FIELD };

typedef struct {
    int family; /* AF_INET, AF_INET6, or AF_UNIX for "unix:" */
    unsigned char addr[16], mask[16];
} cidr_t;

typedef struct {
    rp_array_t *from; /* cidr_t; NULL: realip is off here */
    int type;         /* HDR_*; 0: unset */
    rp_str_t field;   /* HDR_FIELD's name */
    int recursive;
} realip_conf_t;

rp_module_t rp_http_realip_module;

/* ---- configuration ---- */

typedef struct {
    int used; /* some set_real_ip_from exists: the phase handlers are added */
} realip_main_conf_t;

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(realip_main_conf_t));
}

static void *create_loc(rp_conf_t *cf)
{
    realip_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->recursive = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    realip_conf_t *p = parent, *c = child;
    if (c->from == NULL)
        c->from = p->from;
    if (c->type == 0) {
        c->type = p->type ? p->type : HDR_X_REAL_IP;
        c->field = p->field;
    }
    RP_CONF_MERGE(c->recursive, p->recursive, RP_CONF_UNSET, 0);
    return RP_CONF_OK;
}

static const char *set_from(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    realip_conf_t *c = conf;
    const char *a = cf->argv[1];
    realip_main_conf_t *m = cf->http_ctx->main_conf[rp_http_realip_module.index];
    m->used = 1;
    if (c->from == NULL) {
        c->from = rp_arena_alloc(cf->arena, sizeof(rp_array_t));
        rp_array_init(c->from, cf->arena, 4, sizeof(cidr_t));
    }
    cidr_t v;
    memset(&v, 0, sizeof(v));
    if (strcmp(a, "unix:") == 0) {
        v.family = AF_UNIX;
        *(cidr_t *)rp_array_push(c->from) = v;
        return RP_CONF_OK;
    }
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(a, '/');
    size_t hl = slash ? (size_t)(slash - a) : strlen(a);
    if (hl == 0 || hl >= sizeof(host))
        return rp_conf_error(cf, "invalid parameter \"%s\"", a);
    memcpy(host, a, hl);
    host[hl] = '\0';
    size_t alen;
    if (inet_pton(AF_INET, host, v.addr) == 1) {
        v.family = AF_INET;
        alen = 4;
    } else if (inet_pton(AF_INET6, host, v.addr) == 1) {
        v.family = AF_INET6;
        alen = 16;
    } else if (slash == NULL) {
        /* a host name: its addresses now, as nginx resolves it at configuration time */
        struct sockaddr_storage sa[16];
        socklen_t lens[16];
        unsigned n = rp_addr_lookup(host, 0, sa, lens, 16);
        if (n == 0)
            return rp_conf_error(cf, "host not found in set_real_ip_from \"%s\"", a);
        for (unsigned i = 0; i < n; i++) {
            cidr_t h;
            memset(&h, 0, sizeof(h));
            h.family = sa[i].ss_family;
            size_t k = h.family == AF_INET ? 4 : 16;
            if (h.family == AF_INET)
                memcpy(h.addr, &((struct sockaddr_in *)&sa[i])->sin_addr, 4);
            else
                memcpy(h.addr, &((struct sockaddr_in6 *)&sa[i])->sin6_addr, 16);
            memset(h.mask, 0xff, k);
            *(cidr_t *)rp_array_push(c->from) = h;
        }
        return RP_CONF_OK;
    } else {
        return rp_conf_error(cf, "invalid parameter \"%s\"", a);
    }
    long bits = (long)alen * 8;
    if (slash && (rp_parse_int(slash + 1, (long)alen * 8, &bits) != 0))
        return rp_conf_error(cf, "invalid mask in \"%s\"", a);
    int meaningless = 0;
    for (size_t i = 0; i < alen; i++) {
        long b = bits - (long)i * 8;
        v.mask[i] = b >= 8 ? 0xff : b <= 0 ? 0 : (unsigned char)(0xff << (8 - b));
        if (v.addr[i] & ~v.mask[i])
            meaningless = 1;
        v.addr[i] &= v.mask[i];
    }
    if (meaningless)
        rp_conf_warn(cf, "low address bits of %s are meaningless", a); /* nginx's words */
    *(cidr_t *)rp_array_push(c->from) = v;
    return RP_CONF_OK;
}

static const char *set_header(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    realip_conf_t *c = conf;
    const char *a = cf->argv[1];
    if (c->type)
        return "is duplicate";
    if (strcasecmp(a, "X-Real-IP") == 0) {
        c->type = HDR_X_REAL_IP;
    } else if (strcasecmp(a, "X-Forwarded-For") == 0) {
        c->type = HDR_X_FORWARDED_FOR;
    } else if (strcmp(a, "proxy_protocol") == 0) {
        c->type = HDR_PROXY_PROTOCOL;
    } else {
        for (const char *p = a; *p; p++)
            if (*p <= ' ' || *p == ':' || *p >= 0x7f)
                return rp_conf_error(cf, "invalid header name \"%s\"", a);
        c->type = HDR_FIELD;
        c->field = (rp_str_t){a, strlen(a)};
    }
    return RP_CONF_OK;
}

/* ---- the handler ---- */

/* Whether sa is one of the trusted sources (an IPv4-mapped IPv6 address counts as
 * its IPv4 one, as nginx's ngx_cidr_match). */
static int trusted(const rp_array_t *from, const rp_sockaddr_t *sa)
{
    const unsigned char *a;
    int family = sa->sa.sa_family;
    if (family == AF_INET) {
        a = (const unsigned char *)&sa->sin.sin_addr;
    } else if (family == AF_INET6) {
        a = sa->sin6.sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&sa->sin6.sin6_addr)) {
            family = AF_INET;
            a += 12;
        }
    } else {
        family = AF_UNIX;
        a = NULL;
    }
    const cidr_t *v = from->elts;
    for (size_t i = 0; i < from->nelts; i++) {
        if (v[i].family != family)
            continue;
        if (family == AF_UNIX)
            return 1;
        size_t n = family == AF_INET ? 4 : 16, k;
        for (k = 0; k < n; k++)
            if ((a[k] & v[i].mask[k]) != v[i].addr[k])
                break;
        if (k == n)
            return 1;
    }
    return 0;
}

/* An address as a header gives it: "1.2.3.4", "1.2.3.4:80", "::1", "[::1]", "[::1]:80"
 * (nginx's ngx_parse_addr_port). */
static int parse_addr_port(const char *s, size_t n, rp_sockaddr_t *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *h = s, *port = NULL;
    size_t hl = n;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        if ((size_t)(close - s) + 1 < n) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1) == NULL) {
            hl = (size_t)(colon - s); /* one colon: IPv4 with a port */
            port = colon + 1;
        }
    }
    if (hl == 0 || hl >= sizeof(host))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    unsigned p = 0;
    if (port) {
        size_t pl = n - (size_t)(port - s);
        if (pl == 0 || pl > 5)
            return -1;
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9')
                return -1;
            p = p * 10 + (unsigned)(port[i] - '0');
        }
        if (p == 0 || p > 65535)
            return -1;
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, &out->sin.sin_addr) == 1) {
        out->sin.sin_family = AF_INET;
        out->sin.sin_port = htons((uint16_t)p);
    } else if (inet_pton(AF_INET6, host, &out->sin6.sin6_addr) == 1) {
        out->sin6.sin6_family = AF_INET6;
        out->sin6.sin6_port = htons((uint16_t)p);
    } else {
        return -1;
    }
    return 0;
}

/*
 * nginx's ngx_http_get_forwarded_addr: when addr is trusted, the last element of the
 * list replaces it; recursively, so long as the replacement is trusted too. Returns
 * 1 when *addr changed, 0 when not.
 */
static int forwarded(const rp_array_t *from, rp_sockaddr_t *addr, const char *v, size_t n,
                     int recursive)
{
    int changed = 0;
    while (trusted(from, addr)) {
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == ','))
            n--;
        size_t start = n;
        while (start > 0 && v[start - 1] != ' ' && v[start - 1] != ',')
            start--;
        rp_sockaddr_t next;
        if (n == 0 || parse_addr_port(v + start, n - start, &next) != 0)
            break;
        *addr = next;
        changed = 1;
        n = start;
        if (!recursive || n == 0)
            break;
    }
    return changed;
}

/* The request's fields named name, several joined by ", " as one list (RFC 9110 5.3). */
static rp_str_t field_value(rp_request_t *r, const char *name, size_t len)
{
    rp_str_t first = RP_NULL_STR;
    size_t total = 0, count = 0;
    for (unsigned i = 0; i < r->nheaders; i++) {
        rp_str_t hn = r->headers[i].name;
        if (hn.len == len && strncasecmp(hn.data, name, len) == 0) {
            if (count++ == 0)
                first = r->headers[i].value;
            total += r->headers[i].value.len + 2;
        }
    }
    if (count <= 1)
        return first;
    char *b = rp_arena_alloc(r->arena, total), *o = b;
    for (unsigned i = 0; i < r->nheaders; i++) {
        rp_str_t hn = r->headers[i].name;
        if (hn.len == len && strncasecmp(hn.data, name, len) == 0) {
            if (o != b) {
                memcpy(o, ", ", 2);
                o += 2;
            }
            memcpy(o, r->headers[i].value.data, r->headers[i].value.len);
            o += r->headers[i].value.len;
        }
    }
    return (rp_str_t){b, (size_t)(o - b)};
}

static int realip_handler(rp_request_t *r)
{
    realip_conf_t *c = rp_http_loc_conf(r, rp_http_realip_module);
    if (c == NULL || c->from == NULL || r->conn == NULL)
        return RP_DECLINED;
    if (r->peer != &r->conn->peer)
        return RP_DECLINED; /* found already (the server's pass, or before a redirect) */
    rp_sockaddr_t addr = r->conn->peer;
    if (c->type == HDR_PROXY_PROTOCOL) {
        const rp_proxy_addrs_t *pp = r->conn->proxy;
        if (pp == NULL || !trusted(c->from, &addr))
            return RP_DECLINED;
        memset(&addr, 0, sizeof(addr));
        if (pp->family == AF_INET)
            addr.sin = *(const struct sockaddr_in *)&pp->src;
        else if (pp->family == AF_INET6)
            addr.sin6 = *(const struct sockaddr_in6 *)&pp->src;
        else
            addr.sa.sa_family = AF_UNIX; /* $remote_addr "unix:", as a local client's */
    } else {
        rp_str_t v = c->type == HDR_X_REAL_IP         ? field_value(r, "x-real-ip", 9)
                     : c->type == HDR_X_FORWARDED_FOR ? field_value(r, "x-forwarded-for", 15)
                                                      : field_value(r, c->field.data, c->field.len);
        if (v.data == NULL || !forwarded(c->from, &addr, v.data, v.len, c->recursive))
            return RP_DECLINED;
    }
    rp_sockaddr_t *peer = rp_arena_alloc(r->arena, sizeof(*peer));
    *peer = addr;
    r->peer = peer;
    return RP_DECLINED;
}

/* ---- variables ---- */

static int text_of(rp_request_t *r, const struct sockaddr_storage *sa, int want_port, rp_str_t *out)
{
    char buf[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    int port;
    rp_proxy_addr_text(sa, buf, sizeof(buf), &port);
    if (want_port) {
        if (sa->ss_family == AF_UNIX)
            return -1;
        snprintf(buf, sizeof(buf), "%d", port);
    }
    size_t n = strlen(buf);
    *out = (rp_str_t){rp_arena_strndup(r->arena, buf, n), n};
    return 0;
}

/* v->data: 0 $proxy_protocol_addr, 1 _port, 2 _server_addr, 3 _server_port */
static int get_proxy_protocol(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const rp_proxy_addrs_t *pp = r->conn->proxy;
    if (pp == NULL)
        return -1; /* no header, or one without addresses: empty, as nginx */
    return text_of(r, v->data < 2 ? &pp->src : &pp->dst, (int)(v->data & 1), out);
}

/* $realip_remote_addr, $realip_remote_port: the connection's own peer. */
static int get_realip_remote(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const rp_sockaddr_t *sa = &r->conn->peer;
    char buf[INET6_ADDRSTRLEN + 8] = "unix:";
    int port = 0;
    if (sa->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &sa->sin.sin_addr, buf, sizeof(buf));
        port = ntohs(sa->sin.sin_port);
    } else if (sa->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &sa->sin6.sin6_addr, buf, sizeof(buf));
        port = ntohs(sa->sin6.sin6_port);
    }
    if (v->data) {
        if (port <= 0) {
            *out = RP_STR("");
            return 0;
        }
        snprintf(buf, sizeof(buf), "%d", port);
    }
    size_t n = strlen(buf);
    *out = (rp_str_t){rp_arena_strndup(r->arena, buf, n), n};
    return 0;
}

static const rp_var_def_t variables[] = {
    {"proxy_protocol_addr", get_proxy_protocol, NULL, 0, 0},
    {"proxy_protocol_port", get_proxy_protocol, NULL, 0, 1},
    {"proxy_protocol_server_addr", get_proxy_protocol, NULL, 0, 2},
    {"proxy_protocol_server_port", get_proxy_protocol, NULL, 0, 3},
    {"realip_remote_addr", get_realip_remote, NULL, 0, 0},
    {"realip_remote_port", get_realip_remote, NULL, 0, 1},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    /* first in both phases: this module comes right after the core in the module list;
     * a configuration without set_real_ip_from pays nothing per request */
    realip_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_http_realip_module);
    if (m && m->used) {
        rp_http_add_phase_handler(cf, RP_PHASE_SERVER_REWRITE, realip_handler);
        rp_http_add_phase_handler(cf, RP_PHASE_PREACCESS, realip_handler);
    }
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"set_real_ip_from", ANYWHERE, 0, 1, 1, set_from, RP_CONF_LOC, 0, NULL},
    {"real_ip_header", ANYWHERE, 0, 1, 1, set_header, RP_CONF_LOC, 0, NULL},
    {"real_ip_recursive", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(realip_conf_t, recursive), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_realip_module = {
    .name = "http_realip",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
