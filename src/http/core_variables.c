/*
 * The http core module's variables: the request's line, fields, addresses and
 * times, the response's status and fields, the connection's numbers. Values are
 * made in request memory; what nginx recomputes at each use (what a rewrite or
 * the response can change) is RP_VAR_NOCACHE here too.
 */
#include "http/variables.h"
#include "observe/trace_context.h"
#include "core/cycle.h"
#include "core/random.h"
#include "core/time.h"
#include "net/listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
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

static int get_server_name(rp_request_t *r, const rp_var_t *v, rp_str_t *out);

/* nginx's order: the request line's host, the Host header, else the server's name. */
static int get_host(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    if (r->host.len) {
        *out = r->host;
        return 0;
    }
    return get_server_name(r, v, out);
}

static int get_uri(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->uri;
    return 0;
}

static int get_request_uri(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->request_uri;
    return 0;
}

static int get_args(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->args;
    return 0;
}

static int get_is_args(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->args.len ? RP_STR("?") : RP_STR("");
    return 0;
}

static int get_method(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->method;
    return 0;
}

static int get_scheme(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->scheme;
    return 0;
}

static int get_protocol(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = r->version == 10 ? RP_STR("HTTP/1.0") : r->version == 20 ? RP_STR("HTTP/2.0")
                                                                     : RP_STR("HTTP/1.1");
    return 0;
}

/* Reads the address through the union's own members: rp_sockaddr_t is smaller than a
 * sockaddr_storage, and reading it as one is out of bounds (GCC says so under ASan). */
static void addr_text(const rp_sockaddr_t *sa, char *buf, size_t len, int *port)
{
    if (sa->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &sa->sin6.sin6_addr, buf, (socklen_t)len);
        *port = ntohs(sa->sin6.sin6_port);
    } else if (sa->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &sa->sin.sin_addr, buf, (socklen_t)len);
        *port = ntohs(sa->sin.sin_port);
    } else {
        snprintf(buf, len, "unix:");
        *port = 0;
    }
}

/* "a.b.c.d" without printf (inet_ntop's way): every proxied request formats it. */
static size_t ipv4_text(const unsigned char *a, char *out)
{
    char *p = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = '.';
    }
    return (size_t)(p - out - 1);
}

rp_str_t rp_http_remote_addr(rp_request_t *r)
{
    const rp_sockaddr_t *peer = r->peer;
    if (peer->sa.sa_family == AF_INET) {
        char *b = rp_arena_alloc(r->arena, 16);
        size_t n = ipv4_text((const unsigned char *)&peer->sin.sin_addr, b);
        b[n] = '\0';
        return (rp_str_t){b, n};
    }
    char buf[INET6_ADDRSTRLEN + 8];
    int port;
    addr_text(peer, buf, sizeof(buf), &port);
    return dup_str(r, buf);
}

/* Cached for the request like any variable; every proxied request sends it
 * (X-Forwarded-For). */
static int get_remote_addr(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = rp_http_remote_addr(r);
    return 0;
}

/* The client's address as its bytes (4 for IPv4, 16 for IPv6), nginx's compact key
 * for limit zones. */
static int get_binary_remote_addr(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const rp_sockaddr_t *peer = r->peer;
    if (peer->sa.sa_family == AF_INET)
        *out = (rp_str_t){(const char *)&peer->sin.sin_addr, 4};
    else if (peer->sa.sa_family == AF_INET6)
        *out = (rp_str_t){(const char *)&peer->sin6.sin6_addr, 16};
    else
        *out = rp_http_remote_addr(r);
    return 0;
}

static int get_remote_port(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[64];
    int port;
    addr_text(r->peer, buf, sizeof(buf), &port);
    /* as nginx: an address realip took without a port has none */
    if (port <= 0) {
        *out = RP_STR("");
        return 0;
    }
    snprintf(buf, sizeof(buf), "%d", port);
    *out = dup_str(r, buf);
    return 0;
}

/* The address the connection arrived on: the listening address unless it listens on a
 * wildcard, which only the socket itself can tell. A connection without a socket (a
 * background subrequest's) has the listening address. */
static void local_addr(rp_request_t *r, char *buf, size_t len, int *port)
{
    rp_sockaddr_t local;
    socklen_t n = sizeof(local);
    memset(&local, 0, sizeof(local));
    if (r->conn->fd < 0 && r->conn->ls) {
        size_t k = r->conn->ls->socklen < sizeof(local) ? r->conn->ls->socklen : sizeof(local);
        memcpy(&local, &r->conn->ls->sa, k);
    } else if (getsockname(r->conn->fd, &local.sa, &n) != 0) {
        memset(&local, 0, sizeof(local));
    }
    addr_text(&local, buf, len, port);
}

static int get_server_addr(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[64];
    int port;
    local_addr(r, buf, sizeof(buf), &port);
    *out = dup_str(r, buf);
    return 0;
}

static int get_server_port(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[64];
    int port;
    local_addr(r, buf, sizeof(buf), &port);
    snprintf(buf, sizeof(buf), "%d", port);
    *out = dup_str(r, buf);
    return 0;
}

static int get_server_name(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    if (r->srv && r->srv->names.nelts) {
        const rp_server_name_t *n = r->srv->names.elts;
        *out = n[0].text;
    } else {
        *out = RP_STR("");
    }
    return 0;
}

static int get_status(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[16];
    int status = r->err_status ? r->err_status : r->status; /* an error page: its answer's */
    snprintf(buf, sizeof(buf), "%03d", status);
    *out = status ? dup_str(r, buf) : RP_STR("000");
    return 0;
}

static int get_connection(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->conn->number);
    *out = dup_str(r, buf);
    return 0;
}

static int get_connection_requests(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%u", r->conn->requests);
    *out = dup_str(r, buf);
    return 0;
}

static int get_pid(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)getpid());
    *out = dup_str(r, buf);
    return 0;
}

static int get_msec(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    struct timeval tv;
    rp_time_now(&tv);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld.%03d", (long long)tv.tv_sec, (int)(tv.tv_usec / 1000));
    *out = dup_str(r, buf);
    return 0;
}

static int get_version(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = RP_STR(PACKAGE_VERSION);
    return 0;
}

/* Whether a field name is the variable's: "_" stands for "-", case does not matter. */
static int field_is(rp_str_t field, rp_str_t arg)
{
    if (field.len != arg.len)
        return 0;
    for (size_t k = 0; k < arg.len; k++) {
        char a = field.data[k], b = arg.data[k];
        a = (char)(a >= 'A' && a <= 'Z' ? a + 32 : a == '-' ? '_' : a);
        b = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b == '-' ? '_' : b);
        if (a != b)
            return 0;
    }
    return 1;
}

int rp_http_find_field(const rp_header_t *h, unsigned n, rp_str_t arg, rp_str_t *out)
{
    for (unsigned i = 0; i < n; i++) {
        if (h[i].name.len && field_is(h[i].name, arg)) {
            *out = h[i].value;
            return 0;
        }
    }
    return -1;
}

static int get_http(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return rp_http_find_field(r->headers, r->nheaders, v->arg, out);
}

/* A response field; Content-Length is the response's length, not a field. */
static int get_sent_http(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    if (field_is(RP_STR("content_length"), v->arg)) {
        if (r->out_length < 0 || !r->header_sent)
            return -1;
        char buf[24];
        snprintf(buf, sizeof(buf), "%lld", (long long)r->out_length);
        *out = dup_str(r, buf);
        return 0;
    }
    return rp_http_find_field(r->out_headers, r->nout_headers, v->arg, out);
}

/* Finds name=value in a list separated by sep (args: '&', cookies: ';'). */
static int find_pair(rp_str_t list, rp_str_t name, char sep, int trim, rp_str_t *out)
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
        if (nlen == name.len && strncasecmp(p, name.data, nlen) == 0) {
            *out = eq ? (rp_str_t){eq + 1, (size_t)(item_end - eq - 1)} : RP_STR("");
            return 0;
        }
        p = item_end + 1;
    }
    return -1;
}

static int get_arg(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return find_pair(r->args, v->arg, '&', 0, out);
}

static int get_cookie(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    for (unsigned i = 0; i < r->nheaders; i++)
        if (rp_str_ieq(r->headers[i].name, "cookie") &&
            find_pair(r->headers[i].value, v->arg, ';', 1, out) == 0)
            return 0;
    return -1;
}

static int get_body_bytes_sent(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)r->body_bytes_sent);
    *out = dup_str(r, buf);
    return 0;
}

static int int_var(rp_request_t *r, int64_t n, rp_str_t *out)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)n);
    *out = dup_str(r, buf);
    return 0;
}

static int get_bytes_sent(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return int_var(r, r->bytes_sent, out);
}

static int get_request_length(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return int_var(r, r->request_length, out);
}

/* Seconds with millisecond resolution since the connection was accepted. */
static int get_connection_time(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    if (r->conn == NULL)
        return -1;
    int64_t ms = rp_time_ms_since(&r->conn->accepted);
    if (ms < 0)
        ms = 0;
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld.%03d", (long long)(ms / 1000), (int)(ms % 1000));
    *out = dup_str(r, buf);
    return 0;
}

/* Seconds with millisecond resolution since the first byte of the request was read. */
static int get_request_time(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    int64_t ms = rp_time_ms_since(&r->start);
    if (ms < 0)
        ms = 0;
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld.%03d", (long long)(ms / 1000), (int)(ms % 1000));
    *out = dup_str(r, buf);
    return 0;
}

rp_str_t rp_request_id(rp_request_t *r)
{
    if (r->request_id[0] == '\0') {
        rp_trace_hex64(r->request_id, rp_random());
        rp_trace_hex64(r->request_id + 16, rp_random());
        r->request_id[32] = '\0';
    }
    return (rp_str_t){r->request_id, 32};
}

static int get_request_id(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    *out = rp_request_id(r);
    return 0;
}

/* "$request_method $request_uri $server_protocol", as the request line was sent */
static int get_request_line(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_str_t proto;
    get_protocol(r, v, &proto);
    if (r->method.len == 0)
        return -1; /* no request line parsed: "-" in a log, as nginx */
    size_t n = r->method.len + 1 + r->request_uri.len + 1 + proto.len;
    char *b = rp_arena_alloc(r->arena, n + 1);
    snprintf(b, n + 1, "%.*s %.*s %.*s", (int)r->method.len, r->method.data,
             (int)r->request_uri.len, r->request_uri.data, (int)proto.len, proto.data);
    *out = (rp_str_t){b, n};
    return 0;
}

/* The user of a Basic Authorization field, checked or not, as nginx's. */
static int get_remote_user(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_str_t pw;
    return rp_http_basic_credentials(r, out, &pw);
}

static int get_time(rp_request_t *r, rp_str_t *out, int iso)
{
    static char cache[2][40];
    static time_t last[2];
    struct timeval tv;
    rp_time_now(&tv);
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

static int get_time_local(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return get_time(r, out, 0);
}

static int get_time_iso8601(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    return get_time(r, out, 1);
}

/* The client's X-Forwarded-For with $remote_addr appended, or $remote_addr alone. */
static int get_proxy_add_xff(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    rp_str_t addr, prev = RP_NULL_STR;
    get_remote_addr(r, v, &addr);
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


/* `set $args ...` replaces the query string, as nginx. */
static void set_args(rp_request_t *r, const rp_var_t *v, rp_str_t value)
{
    r->args = value;
    r->uri_rewritten = 1; /* a proxy sends these, not the target as sent */
}

#define NC RP_VAR_NOCACHE

const rp_var_def_t rp_http_core_variables[] = {
    {"host", get_host, NULL, 0, 0},
    {"uri", get_uri, NULL, NC, 0},
    {"document_uri", get_uri, NULL, NC, 0},
    {"request_uri", get_request_uri, NULL, 0, 0},
    {"args", get_args, set_args, NC | RP_VAR_CHANGEABLE, 0},
    {"query_string", get_args, NULL, NC, 0},
    {"is_args", get_is_args, NULL, NC, 0},
    {"request_method", get_method, NULL, 0, 0},
    {"scheme", get_scheme, NULL, 0, 0},
    {"server_protocol", get_protocol, NULL, 0, 0},
    {"remote_addr", get_remote_addr, NULL, 0, 0},
    {"binary_remote_addr", get_binary_remote_addr, NULL, 0, 0},
    {"remote_port", get_remote_port, NULL, 0, 0},
    {"server_addr", get_server_addr, NULL, 0, 0},
    {"server_port", get_server_port, NULL, 0, 0},
    {"server_name", get_server_name, NULL, 0, 0},
    {"status", get_status, NULL, NC, 0},
    {"connection", get_connection, NULL, 0, 0},
    {"connection_requests", get_connection_requests, NULL, 0, 0},
    {"pid", get_pid, NULL, 0, 0},
    {"msec", get_msec, NULL, NC, 0},
    {"rampart_version", get_version, NULL, 0, 0},
    {"body_bytes_sent", get_body_bytes_sent, NULL, NC, 0},
    {"request_time", get_request_time, NULL, NC, 0},
    {"bytes_sent", get_bytes_sent, NULL, NC, 0},
    {"request_length", get_request_length, NULL, NC, 0},
    {"connection_time", get_connection_time, NULL, NC, 0},
    {"request_id", get_request_id, NULL, 0, 0},
    {"request", get_request_line, NULL, 0, 0},
    {"remote_user", get_remote_user, NULL, 0, 0},
    {"time_local", get_time_local, NULL, NC, 0},
    {"time_iso8601", get_time_iso8601, NULL, NC, 0},
    {"proxy_add_x_forwarded_for", get_proxy_add_xff, NULL, 0, 0},
    {"http_", get_http, NULL, RP_VAR_PREFIX, 0},
    {"arg_", get_arg, NULL, RP_VAR_PREFIX | NC, 0},
    {"cookie_", get_cookie, NULL, RP_VAR_PREFIX, 0},
    {"sent_http_", get_sent_http, NULL, RP_VAR_PREFIX | NC, 0},
    {NULL, NULL, NULL, 0, 0},
};
