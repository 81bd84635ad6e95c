/*
 * The variable table and the compiled-value evaluator.
 */
#include "http/variables.h"
#include "http/conn.h"
#include "core/cycle.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static rp_str_t dup_str(rp_request_t *r, const char *s)
{
    size_t n = strlen(s);
    return (rp_str_t){rp_arena_strndup(r->arena, s, n), n};
}

static int get_server_name(rp_request_t *r, rp_str_t arg, rp_str_t *out);

/* nginx's order: the request line's host, the Host header, else the server's name. */
static int get_host(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    if (r->host.len) {
        *out = r->host;
        return 0;
    }
    return get_server_name(r, arg, out);
}

static int get_uri(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->uri;
    return 0;
}

static int get_request_uri(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->request_uri;
    return 0;
}

static int get_args(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->args;
    return 0;
}

static int get_is_args(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->args.len ? RP_STR("?") : RP_STR("");
    return 0;
}

static int get_method(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->method;
    return 0;
}

static int get_scheme(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->scheme;
    return 0;
}

static int get_protocol(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->version == 10 ? RP_STR("HTTP/1.0") : r->version == 20 ? RP_STR("HTTP/2.0")
                                                                     : RP_STR("HTTP/1.1");
    return 0;
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t len, int *port)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, (socklen_t)len);
        *port = ntohs(s6->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t)len);
        *port = ntohs(s4->sin_port);
    } else {
        snprintf(buf, len, "unix:");
        *port = 0;
    }
}

/* Formatted once per connection: every proxied request sends it (X-Forwarded-For). */
static int get_remote_addr(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    rp_conn_t *c = r->conn;
    if (c->peer_text_len == 0) {
        int port;
        addr_text(&c->peer, c->peer_text, sizeof(c->peer_text), &port);
        c->peer_text_len = (unsigned)strlen(c->peer_text);
    }
    *out = (rp_str_t){c->peer_text, c->peer_text_len};
    return 0;
}

static int get_remote_port(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[64];
    int port;
    addr_text(&r->conn->peer, buf, sizeof(buf), &port);
    snprintf(buf, sizeof(buf), "%d", port);
    *out = dup_str(r, buf);
    return 0;
}

static void local_addr(rp_conn_t *c)
{
    if (c->locallen == 0) {
        c->locallen = sizeof(c->local);
        if (getsockname(c->fd, (struct sockaddr *)&c->local, &c->locallen) != 0)
            c->locallen = 0;
    }
}

static int get_server_addr(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[64];
    int port;
    local_addr(r->conn);
    addr_text(&r->conn->local, buf, sizeof(buf), &port);
    *out = dup_str(r, buf);
    return 0;
}

static int get_server_port(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[64];
    int port;
    local_addr(r->conn);
    addr_text(&r->conn->local, buf, sizeof(buf), &port);
    snprintf(buf, sizeof(buf), "%d", port);
    *out = dup_str(r, buf);
    return 0;
}

static int get_server_name(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    if (r->srv && r->srv->names.nelts) {
        const rp_server_name_t *n = r->srv->names.elts;
        *out = n[0].text;
    } else {
        *out = RP_STR("");
    }
    return 0;
}

static int get_status(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%03d", r->status);
    *out = r->status ? dup_str(r, buf) : RP_STR("000");
    return 0;
}

static int get_connection(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->conn->number);
    *out = dup_str(r, buf);
    return 0;
}

static int get_connection_requests(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%u", r->conn->requests);
    *out = dup_str(r, buf);
    return 0;
}

static int get_pid(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)getpid());
    *out = dup_str(r, buf);
    return 0;
}

static int get_msec(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    struct timeval tv;
    event_base_gettimeofday_cached(rp_event_base, &tv);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld.%03d", (long long)tv.tv_sec, (int)(tv.tv_usec / 1000));
    *out = dup_str(r, buf);
    return 0;
}

static int get_version(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = RP_STR(PACKAGE_VERSION);
    return 0;
}

static int get_http(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    /* arg is the header name with "_" for "-", lowercase */
    for (unsigned i = 0; i < r->nheaders; i++) {
        const rp_header_t *h = &r->headers[i];
        if (h->name.len != arg.len)
            continue;
        size_t k = 0;
        for (; k < arg.len; k++) {
            char c = h->name.data[k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (c == '-')
                c = '_';
            if (c != arg.data[k])
                break;
        }
        if (k == arg.len) {
            *out = h->value;
            return 0;
        }
    }
    *out = RP_STR("");
    return 0;
}

/* Finds name=value in a list separated by sep (args: '&', cookies: ';'). */
static rp_str_t find_pair(rp_str_t list, rp_str_t name, char sep, int trim)
{
    const char *p = list.data, *end = list.data + list.len;
    while (p < end) {
        const char *item_end = memchr(p, sep, (size_t)(end - p));
        if (item_end == NULL)
            item_end = end;
        while (trim && p < item_end && *p == ' ')
            p++;
        const char *eq = memchr(p, '=', (size_t)(item_end - p));
        size_t nlen = eq ? (size_t)(eq - p) : (size_t)(item_end - p);
        if (nlen == name.len && strncasecmp(p, name.data, nlen) == 0)
            return eq ? (rp_str_t){eq + 1, (size_t)(item_end - eq - 1)} : RP_STR("");
        p = item_end + 1;
    }
    return RP_STR("");
}

static int get_arg(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = find_pair(r->args, arg, '&', 0);
    return 0;
}

static int get_cookie(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = RP_STR("");
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (rp_str_ieq(r->headers[i].name, "cookie")) {
            rp_str_t v = find_pair(r->headers[i].value, arg, ';', 1);
            if (v.len) {
                *out = v;
                return 0;
            }
        }
    }
    return 0;
}

static int get_body_bytes_sent(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)r->body_bytes_sent);
    *out = dup_str(r, buf);
    return 0;
}

/* Seconds with millisecond resolution since the first byte of the request was read. */
static int get_request_time(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    struct timeval now;
    event_base_gettimeofday_cached(rp_event_base, &now);
    int64_t ms = (int64_t)(now.tv_sec - r->start.tv_sec) * 1000 +
                 (now.tv_usec - r->start.tv_usec) / 1000;
    if (ms < 0)
        ms = 0;
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld.%03d", (long long)(ms / 1000), (int)(ms % 1000));
    *out = dup_str(r, buf);
    return 0;
}

/* xoshiro256** seeded from the kernel once per process: request ids need to be unique,
 * not secret, and this costs no syscall per request. */
static uint64_t rng_s[4];
static int rng_seeded;

static void rng_forked(void)
{
    rng_seeded = 0;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        /* a forked worker must not repeat its parent's sequence */
        static int hooked;
        if (!hooked && pthread_atfork(NULL, NULL, rng_forked) == 0)
            hooked = 1;
        if (getentropy(rng_s, sizeof(rng_s)) != 0) {
            struct timeval tv;
            gettimeofday(&tv, NULL);
            rng_s[0] = (uint64_t)tv.tv_sec * 1000003u ^ (uint64_t)tv.tv_usec;
            rng_s[1] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
            rng_s[2] = rng_s[0] ^ 0xda942042e4dd58b5ull;
            rng_s[3] = rng_s[1] ^ 0x2545f4914f6cdd1dull;
        }
        rng_seeded = hooked;
    }
    uint64_t result = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return result;
}

rp_str_t rp_request_id(rp_request_t *r)
{
    if (r->request_id[0] == '\0') {
        static const char hex[] = "0123456789abcdef";
        uint64_t v[2] = {rng_next(), rng_next()};
        for (int k = 0; k < 32; k++)
            r->request_id[k] = hex[(v[k / 16] >> (60 - 4 * (k % 16))) & 15];
        r->request_id[32] = '\0';
    }
    return (rp_str_t){r->request_id, 32};
}

static int get_request_id(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = rp_request_id(r);
    return 0;
}

/* "$request_method $request_uri $server_protocol", as the request line was sent */
static int get_request_line(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    rp_str_t proto;
    get_protocol(r, arg, &proto);
    if (r->method.len == 0) {
        *out = RP_STR("");
        return 0;
    }
    size_t n = r->method.len + 1 + r->request_uri.len + 1 + proto.len;
    char *b = rp_arena_alloc(r->arena, n + 1);
    snprintf(b, n + 1, "%.*s %.*s %.*s", (int)r->method.len, r->method.data,
             (int)r->request_uri.len, r->request_uri.data, (int)proto.len, proto.data);
    *out = (rp_str_t){b, n};
    return 0;
}

/* No authentication exists yet; combined-format logs print "-" as nginx does. */
static int get_remote_user(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = RP_STR("");
    return 0;
}

static int get_time(rp_request_t *r, rp_str_t arg, rp_str_t *out, int iso)
{
    static char cache[2][40];
    static time_t last[2];
    struct timeval tv;
    event_base_gettimeofday_cached(rp_event_base, &tv);
    if (tv.tv_sec != last[iso] || cache[iso][0] == '\0') {
        struct tm tm;
        localtime_r(&tv.tv_sec, &tm);
        strftime(cache[iso], sizeof(cache[iso]), iso ? "%Y-%m-%dT%H:%M:%S%z" : "%d/%b/%Y:%H:%M:%S %z",
                 &tm);
        if (iso) {
            /* ISO 8601 wants the offset as +00:00 */
            size_t n = strlen(cache[iso]);
            memmove(cache[iso] + n - 1, cache[iso] + n - 2, 3);
            cache[iso][n - 2] = ':';
        }
        last[iso] = tv.tv_sec;
    }
    *out = dup_str(r, cache[iso]);
    return 0;
}

static int get_time_local(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    return get_time(r, arg, out, 0);
}

static int get_time_iso8601(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    return get_time(r, arg, out, 1);
}

static int get_upstream_addr(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->upstream_addr;
    return 0;
}

static int get_upstream_status(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->upstream_status;
    return 0;
}

static int get_upstream_connect_time(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->upstream_connect_time;
    return 0;
}

static int get_upstream_response_time(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->upstream_response_time;
    return 0;
}

/* TLS variables: empty on a cleartext connection. */
static int get_https(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->conn->ssl ? RP_STR("on") : RP_STR("");
    return 0;
}

static int get_ssl_protocol(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = RP_STR("");
    if (r->conn->ssl) {
        const char *v = SSL_get_version(r->conn->ssl);
        *out = (rp_str_t){v, strlen(v)};
    }
    return 0;
}

static int get_ssl_cipher(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = RP_STR("");
    if (r->conn->ssl) {
        const char *v = SSL_CIPHER_get_name(SSL_get_current_cipher(r->conn->ssl));
        if (v)
            *out = (rp_str_t){v, strlen(v)};
    }
    return 0;
}

static int get_ssl_server_name(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = (rp_str_t){r->conn->sni, r->conn->ssl ? strlen(r->conn->sni) : 0};
    return 0;
}

static int get_ssl_session_reused(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = RP_STR("");
    if (r->conn->ssl)
        *out = SSL_session_reused(r->conn->ssl) ? RP_STR("r") : RP_STR(".");
    return 0;
}

static int get_ssl_client_verify(rp_request_t *r, rp_str_t arg, rp_str_t *out)
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

static int get_ssl_client_s_dn(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    return client_dn(r, out, 0);
}

static int get_ssl_client_i_dn(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    return client_dn(r, out, 1);
}

static int get_proxy_host(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    *out = r->proxy_host;
    return 0;
}

/* The client's X-Forwarded-For with $remote_addr appended, or $remote_addr alone. */
static int get_proxy_add_xff(rp_request_t *r, rp_str_t arg, rp_str_t *out)
{
    rp_str_t addr, prev = RP_NULL_STR;
    get_remote_addr(r, arg, &addr);
    unsigned n = 0;
    size_t total = 0;
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (rp_str_ieq(r->headers[i].name, "x-forwarded-for")) {
            prev = r->headers[i].value;
            total += prev.len + 2;
            n++;
        }
    }
    if (n == 0) {
        *out = addr;
        return 0;
    }
    /* several X-Forwarded-For lines are one list (RFC 9110 5.3) */
    char *b = rp_arena_alloc(r->arena, total + addr.len + 1), *o = b;
    for (unsigned i = 0; i < r->nheaders; i++) {
        if (rp_str_ieq(r->headers[i].name, "x-forwarded-for")) {
            memcpy(o, r->headers[i].value.data, r->headers[i].value.len);
            o += r->headers[i].value.len;
            memcpy(o, ", ", 2);
            o += 2;
        }
    }
    memcpy(o, addr.data, addr.len);
    o += addr.len;
    *out = (rp_str_t){b, (size_t)(o - b)};
    return 0;
}

typedef struct {
    const char *name;
    rp_var_get_pt get;
    int prefix;
} var_t;

static const var_t vars[] = {
    {"host", get_host, 0},
    {"uri", get_uri, 0},
    {"document_uri", get_uri, 0},
    {"request_uri", get_request_uri, 0},
    {"args", get_args, 0},
    {"query_string", get_args, 0},
    {"is_args", get_is_args, 0},
    {"request_method", get_method, 0},
    {"scheme", get_scheme, 0},
    {"server_protocol", get_protocol, 0},
    {"remote_addr", get_remote_addr, 0},
    {"remote_port", get_remote_port, 0},
    {"server_addr", get_server_addr, 0},
    {"server_port", get_server_port, 0},
    {"server_name", get_server_name, 0},
    {"status", get_status, 0},
    {"connection", get_connection, 0},
    {"connection_requests", get_connection_requests, 0},
    {"pid", get_pid, 0},
    {"msec", get_msec, 0},
    {"rampart_version", get_version, 0},
    {"body_bytes_sent", get_body_bytes_sent, 0},
    {"request_time", get_request_time, 0},
    {"request_id", get_request_id, 0},
    {"request", get_request_line, 0},
    {"remote_user", get_remote_user, 0},
    {"time_local", get_time_local, 0},
    {"time_iso8601", get_time_iso8601, 0},
    {"upstream_addr", get_upstream_addr, 0},
    {"proxy_host", get_proxy_host, 0},
    {"https", get_https, 0},
    {"ssl_protocol", get_ssl_protocol, 0},
    {"ssl_cipher", get_ssl_cipher, 0},
    {"ssl_server_name", get_ssl_server_name, 0},
    {"ssl_session_reused", get_ssl_session_reused, 0},
    {"ssl_client_verify", get_ssl_client_verify, 0},
    {"ssl_client_s_dn", get_ssl_client_s_dn, 0},
    {"ssl_client_i_dn", get_ssl_client_i_dn, 0},
    {"proxy_add_x_forwarded_for", get_proxy_add_xff, 0},
    {"upstream_status", get_upstream_status, 0},
    {"upstream_connect_time", get_upstream_connect_time, 0},
    {"upstream_response_time", get_upstream_response_time, 0},
    {"http_", get_http, 1},
    {"arg_", get_arg, 1},
    {"cookie_", get_cookie, 1},
    {NULL, NULL, 0},
};

rp_var_get_pt rp_var_lookup(const char *name, size_t len, rp_str_t *arg)
{
    for (const var_t *v = vars; v->name; v++) {
        size_t n = strlen(v->name);
        if (v->prefix) {
            if (len > n && strncmp(name, v->name, n) == 0) {
                *arg = (rp_str_t){name + n, len - n};
                return v->get;
            }
        } else if (len == n && strncmp(name, v->name, n) == 0) {
            *arg = RP_NULL_STR;
            return v->get;
        }
    }
    return NULL;
}

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

const char *rp_cv_compile(rp_conf_t *cf, const char *src, rp_cv_t *cv)
{
    rp_array_t parts;
    rp_array_init(&parts, cf->arena, 4, sizeof(rp_cv_part_t));
    char *lit = rp_arena_alloc(cf->arena, strlen(src) + 1);
    size_t litlen = 0;
    const char *p = src;
    cv->has_vars = 0;

    while (*p) {
        if (p[0] == '\\' && p[1] == '$') {
            lit[litlen++] = '$';
            p += 2;
            continue;
        }
        if (*p != '$') {
            lit[litlen++] = *p++;
            continue;
        }
        const char *name;
        size_t nlen;
        if (p[1] == '{') {
            name = p + 2;
            const char *close = strchr(name, '}');
            if (close == NULL)
                return rp_arena_sprintf(cf->arena, "missing \"}\" in variable reference in \"%s\"",
                                        src);
            nlen = (size_t)(close - name);
            p = close + 1;
        } else {
            name = p + 1;
            nlen = 0;
            while (name_char(name[nlen]))
                nlen++;
            p = name + nlen;
        }
        if (nlen == 0)
            return rp_arena_sprintf(cf->arena, "invalid variable name in \"%s\"", src);
        if (litlen) {
            rp_cv_part_t *lp = rp_array_push(&parts);
            lp->literal = (rp_str_t){lit, litlen};
            lit += litlen + 1;
            litlen = 0;
        }
        rp_cv_part_t *vp = rp_array_push(&parts);
        rp_str_t arg;
        vp->get = rp_var_lookup(name, nlen, &arg);
        if (vp->get == NULL)
            return rp_arena_sprintf(cf->arena, "unknown variable \"$%.*s\"", (int)nlen, name);
        if (arg.data) {
            /* $http_X_Y matches header "x-y": normalize the argument once here. */
            char *a = rp_arena_strndup(cf->arena, arg.data, arg.len);
            if (vp->get == get_http) {
                for (size_t k = 0; k < arg.len; k++) {
                    if (a[k] >= 'A' && a[k] <= 'Z')
                        a[k] = (char)(a[k] + 32);
                    if (a[k] == '-')
                        a[k] = '_';
                }
            }
            vp->arg = (rp_str_t){a, arg.len};
        }
        cv->has_vars = 1;
    }
    if (litlen || parts.nelts == 0) {
        rp_cv_part_t *lp = rp_array_push(&parts);
        lp->literal = (rp_str_t){lit, litlen};
    }
    cv->parts = parts.elts;
    cv->nparts = parts.nelts;
    if (!cv->has_vars)
        cv->value = cv->parts[0].literal;
    return NULL;
}

rp_str_t rp_cv_eval(rp_request_t *r, const rp_cv_t *cv)
{
    if (!cv->has_vars)
        return cv->value;
    rp_str_t stack[64];
    size_t total = 0, n = cv->nparts;
    rp_str_t *vals = n <= 64 ? stack : rp_arena_alloc(r->arena, n * sizeof(rp_str_t));
    for (size_t i = 0; i < n; i++) {
        const rp_cv_part_t *part = &cv->parts[i];
        if (part->get) {
            if (part->get(r, part->arg, &vals[i]) != 0)
                vals[i] = RP_STR("");
        } else {
            vals[i] = part->literal;
        }
        total += vals[i].len;
    }
    char *buf = rp_arena_alloc(r->arena, total + 1);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (vals[i].len)
            memcpy(buf + off, vals[i].data, vals[i].len);
        off += vals[i].len;
    }
    buf[off] = '\0';
    return (rp_str_t){buf, off};
}
