/*
 * The reverse proxy: `proxy_pass` and its directives (configuration in
 * proxy_module.c), the per-request exchange with an upstream server over HTTP/1.1
 * (proxy.c; over HTTP/2, for an `http2` group and grpc_pass, proxy_h2.h), the
 * bookkeeping both share, and the byte tunnel after an upgrade such as WebSocket
 * (tunnel.c).
 */
#ifndef RP_PROXY_H
#define RP_PROXY_H

#include "http/h1_parser.h"
#include "http/request.h"
#include "http/variables.h"
#include "upstream/upstream.h"

#include <strings.h>

typedef struct {
    rp_str_t name; /* as written */
    rp_cv_t value;
    unsigned request_id : 1; /* the default X-Request-Id: only when the client sent none */
    unsigned upgrade : 1;    /* names Upgrade: replaces the client's token, "" refuses */
    unsigned connection : 1; /* names Connection: read for "upgrade", never sent as is */
} rp_proxy_header_t;

typedef struct {
    rp_upstream_conf_t *upstream; /* NULL: no proxy_pass in this location */
    rp_upstream_tls_t *tls;       /* proxy_pass https://: how to talk TLS; NULL: plain */
    unsigned https : 1;
    rp_str_t host; /* $proxy_host: the upstream name or host:port */
    rp_str_t uri;  /* the URI part of proxy_pass */
    unsigned has_uri : 1;
    size_t match_len; /* length of the location prefix the URI part replaces */
    /* variables in the URL, or a canary split: the upstream is chosen per request
     * (upstream_choose.h); NULL: upstream, tls and host above are the answer */
    struct rp_proxy_route_s *route;

    rp_array_t *set_headers;    /* rp_proxy_header_t as configured here; NULL: inherit */
    rp_array_t *hide_headers;   /* rp_str_t; NULL: inherit */
    rp_proxy_header_t *headers; /* set_headers plus the defaults they do not name */
    size_t nheaders;

    int64_t connect_timeout, send_timeout, read_timeout;
    size_t buffer_size; /* largest response head */

    /* the response rewriting rules of proxy_response.c */
    char *url;             /* proxy_pass as written (literal): proxy_redirect default's */
    const char *loc_name;  /* ... and its location's name */
    int redirect;          /* proxy_redirect: -1 unset, 0 off, 1 on (rules below) */
    rp_array_t *redirects; /* rp_proxy_rewrite_t; NULL: none */
    rp_array_t *cookie_domains, *cookie_paths; /* RP_CONF_UNSET_PTR: inherit; NULL: off */
    rp_array_t *cookie_flags;                  /* rp_proxy_cookie_flags_t; as the two above */
    rp_array_t *pass_headers; /* rp_str_t: proxy_pass_header (inherited with hide_headers) */
    unsigned ignore_headers;  /* RP_PROXY_IGN_* bits: proxy_ignore_headers */
    unsigned ignore_set : 1;
    int pass_request_headers, pass_request_body; /* -1 unset, else on|off */
    size_t limit_rate; /* proxy_limit_rate: response bytes read per second; 0 off */
} rp_proxy_loc_conf_t;

/*
 * proxy_limit_rate's pace, shared by the HTTP/1 and HTTP/2 exchanges: with nginx's
 * one second of allowance, by the time t ms have passed since start, rate * (t + 1000)
 * / 1000 bytes may have been read. Returns what may be read now (<= 0: none), and
 * when that is none, in *wait_ms how long until the next piece may.
 */
static inline int64_t rp_proxy_rate_allowance(size_t rate, int64_t start, int64_t now, int64_t read,
                                              int64_t *wait_ms)
{
    int64_t elapsed = now - start < 0 ? 0 : now - start;
    int64_t may = (int64_t)rate * (elapsed + 1000) / 1000 - read;
    if (may <= 0)
        *wait_ms = -may * 1000 / (int64_t)rate + 1;
    return may;
}

extern rp_module_t rp_proxy_module;

/* proxy_redirect's, proxy_cookie_domain's and proxy_cookie_path's rules. */
typedef struct {
    rp_cv_t pattern;               /* a prefix (a domain), variables allowed */
    struct rp_http_regex_s *regex; /* ~ / ~*: matches the whole value, which it replaces */
    rp_cv_t replacement;
    unsigned domain : 1; /* proxy_cookie_domain: the whole domain, any case */
} rp_proxy_rewrite_t;

/* One proxy_cookie_flags line: the cookie's name (variables, or a ~ regex) and what
 * to do to its Secure, HttpOnly and SameSite attributes. */
typedef struct {
    rp_cv_t name;
    struct rp_http_regex_s *regex;
    unsigned set, clear;  /* RP_COOKIE_SECURE, RP_COOKIE_HTTPONLY, RP_COOKIE_SAMESITE */
    const char *samesite; /* with set & RP_COOKIE_SAMESITE: "Strict", "Lax" or "None" */
} rp_proxy_cookie_flags_t;

enum { RP_COOKIE_SECURE = 1, RP_COOKIE_HTTPONLY = 2, RP_COOKIE_SAMESITE = 4 };

/* proxy_ignore_headers's (and grpc_ignore_headers's) fields, nginx's names. */
enum {
    RP_PROXY_IGN_XA_REDIRECT = 1 << 0,
    RP_PROXY_IGN_XA_EXPIRES = 1 << 1,
    RP_PROXY_IGN_EXPIRES = 1 << 2,
    RP_PROXY_IGN_CACHE_CONTROL = 1 << 3,
    RP_PROXY_IGN_SET_COOKIE = 1 << 4,
    RP_PROXY_IGN_XA_LIMIT_RATE = 1 << 5,
    RP_PROXY_IGN_XA_BUFFERING = 1 << 6,
    RP_PROXY_IGN_XA_CHARSET = 1 << 7,
    RP_PROXY_IGN_VARY = 1 << 8,
};

/* Whether r's location (proxy_pass or grpc_pass) ignores the upstream's field of that
 * bit (proxy_ignore_headers): X-Accel-Buffering's reader asks
 * rp_proxy_ignores(r, RP_PROXY_IGN_XA_BUFFERING) before obeying it. */
int rp_proxy_ignores(const rp_request_t *r, unsigned bit);

/*
 * The proxy's per-request context (its r->ctx slot), shared by the HTTP/1 (proxy.c)
 * and HTTP/2 (proxy_h2.c) exchanges: the records behind $upstream_addr,
 * $upstream_status, $upstream_connect_time and $upstream_response_time (one entry
 * per attempt, joined by ", " as nginx does), $proxy_host, the last upstream
 * response's fields for $upstream_http_NAME (kept only when a variable reads them),
 * and the exchange itself.
 */
typedef struct {
    rp_str_t addr, status, connect_time, response_time;
    rp_str_t header_time, bytes_received, bytes_sent; /* kept when a variable reads them */
    struct rp_attempt_s *live; /* the attempt under way: its byte counts so far follow */
    rp_str_t host;
    rp_header_t *headers;
    unsigned nheaders;
    rp_header_t *trailers; /* an HTTP/2 upstream's, for $upstream_trailer_NAME */
    unsigned ntrailers;
    void *exchange;
} rp_proxy_ctx_t;

/* Makes r's proxy context for an exchange of plcf's location. */
rp_proxy_ctx_t *rp_proxy_ctx_new(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, void *exchange);

#define rp_proxy_ctx(r) ((rp_proxy_ctx_t *)rp_http_get_ctx(r, rp_proxy_module))

/* Keeps a copy of an upstream response's fields for $upstream_http_NAME, when the
 * configuration reads any (the bytes they point into go back to the connection). */
void rp_proxy_keep_headers(rp_request_t *r, const rp_header_t *h, unsigned n);
int rp_proxy_keeps_headers(const rp_request_t *r);
/* ... and of its trailer fields, for $upstream_trailer_NAME. */
void rp_proxy_keep_trailers(rp_request_t *r, const rp_header_t *h, unsigned n);

/* Which of the records only some configurations read are kept (RP_PROXY_REC_*). */
enum { RP_PROXY_REC_HEADER_TIME = 1, RP_PROXY_REC_BYTES = 2 };
unsigned rp_proxy_records(const rp_request_t *r);

/* The proxy's bookkeeping: an entry appended to one of the ", "-joined $upstream_*
 * records (a time as "0.004", or "-" when negative); an error-log line in nginx's
 * form, naming the client, request and upstream URL. */
void rp_proxy_record(rp_request_t *r, rp_str_t *field, const char *text);
void rp_proxy_record_ms(rp_request_t *r, rp_str_t *field, int64_t ms);
void rp_proxy_log_error(rp_request_t *r, int level, const char *what, int err, const char *where,
                        const char *scheme, const char *peer, rp_str_t target);

/* For proxy_set_header and grpc_set_header, once the directive's own refusals passed:
 * checks and adds the field to p's list. proxy_hide_header's and grpc_hide_header's
 * setter. */
const char *rp_proxy_add_header(rp_conf_t *cf, rp_proxy_loc_conf_t *p, const char *name,
                                const char *value);
const char *rp_proxy_set_hide(rp_conf_t *cf, const rp_command_t *cmd, void *conf);

/* ---- the header policy (proxy_headers.c) ---- */

/* Whether a field describes the connection, not the message (never forwarded). Inline:
 * every field of every proxied request and response passes through it. */
static inline int rp_proxy_hop_by_hop(rp_str_t n)
{
    switch (n.len) {
    case 2:
        return rp_str_ieq(n, "te");
    case 7:
        return rp_str_ieq(n, "trailer") || rp_str_ieq(n, "upgrade");
    case 10:
        return rp_str_ieq(n, "connection") || rp_str_ieq(n, "keep-alive");
    case 14:
        return rp_str_ieq(n, "http2-settings"); /* h2c's, never passed on */
    case 17:
        return rp_str_ieq(n, "transfer-encoding");
    }
    return n.len >= 6 && strncasecmp(n.data, "proxy-", 6) == 0;
}

enum {
    RP_PROXY_FIELDS_H2 = 1,      /* for an HTTP/2 request (Host as :authority, TE: trailers) */
    RP_PROXY_FIELDS_UPGRADE = 2, /* HTTP/1: the client asks to switch protocols */
};

/* The fields of the request going upstream, in order: the location's, then the client's. */
typedef struct {
    rp_header_t *f;
    unsigned n;
    rp_str_t host;            /* H2: :authority (the location's Host, else the client's) */
    unsigned upgrade : 1;     /* the upgrade goes on (the location did not refuse it) */
    unsigned upgrade_set : 1; /* ... with the location's Upgrade value among f */
    unsigned te_trailers : 1; /* H2: the client's TE names trailers */
} rp_proxy_fields_t;

void rp_proxy_request_fields(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, unsigned flags,
                             rp_proxy_fields_t *out);

enum {
    RP_PROXY_HEAD_UPGRADE = 1, /* the head asks the server to switch protocols */
    RP_PROXY_HEAD_CHUNKED = 2, /* the body goes chunked */
};

/*
 * Writes the HTTP/1 request head for r into buf[0..cap): the request line to target
 * (HTTP/1.0 or 1.1 as http_version says), the fields, the connection's fields
 * (upgrade, or close when the connection is not kept) and the body's framing; sets
 * *flags (RP_PROXY_HEAD_*). Returns its length, or 0 when cap is too small.
 */
size_t rp_proxy_request_head(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_str_t target,
                             int http_version, int keepalive, unsigned *flags, char *buf,
                             size_t cap);

/* Whether the upstream response field i is named by one of its Connection fields (a
 * hop-by-hop field, not passed on), and whether any Connection field names fields at
 * all (anything but "keep-alive" or "close": only then is each field checked). */
int rp_proxy_named_by_connection(const rp_h1_parser_t *ps, const char *b, unsigned i);
int rp_proxy_connection_lists_fields(const rp_h1_parser_t *ps, const char *b);

/* Whether an upstream response field goes to the client (Content-Length never: the
 * protocol frames the body anew). */
int rp_proxy_response_field_passes(const rp_proxy_loc_conf_t *plcf, rp_str_t name);

/*
 * Adds one upstream response field to r's response as the location says: hidden
 * (rp_proxy_response_field_passes), or passed, Location and Refresh rewritten by
 * proxy_redirect, Set-Cookie by proxy_cookie_domain/proxy_cookie_path; and
 * X-Accel-Limit-Rate obeyed. With accel set (an X-Accel-Redirect is followed), only
 * the fields nginx keeps across that redirect are added, copied out of the upstream's
 * buffer.
 */
void rp_proxy_response_field(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_str_t name,
                             rp_str_t value, int accel);

/* Whether a field is an X-Accel-Redirect the location obeys (one comparison for most). */
static inline int rp_proxy_accel_redirect_field(const rp_proxy_loc_conf_t *plcf, rp_str_t n)
{
    return n.len == 16 && (n.data[0] | 0x20) == 'x' && rp_str_ieq(n, "x-accel-redirect") &&
           !(plcf->ignore_headers & RP_PROXY_IGN_XA_REDIRECT);
}

/*
 * Follows an upstream's X-Accel-Redirect (a URI, with arguments after '?', or
 * @name): the exchange has been let go; for a URI the method becomes GET (HEAD stays); the
 * request restarts there, with the fields rp_proxy_response_field(accel) kept.
 */
void rp_proxy_accel_redirect(rp_request_t *r, rp_str_t target);

/* The directives of proxy_response.c, shared with grpc_module.c where nginx has twins. */
const char *rp_proxy_set_redirect(rp_conf_t *cf, const rp_command_t *cmd, void *conf);
const char *rp_proxy_set_cookie_rule(rp_conf_t *cf, const rp_command_t *cmd, void *conf);
const char *rp_proxy_set_cookie_flags(rp_conf_t *cf, const rp_command_t *cmd, void *conf);
const char *rp_proxy_set_pass_header(rp_conf_t *cf, const rp_command_t *cmd, void *conf);
const char *rp_proxy_set_ignore_headers(rp_conf_t *cf, const rp_command_t *cmd, void *conf);
/* Merges them (create_loc leaves redirect and pass_request_* at -1, the cookie lists at
 * RP_CONF_UNSET_PTR); clcf is the location's, for proxy_redirect default. */
const char *rp_proxy_merge_response(rp_conf_t *cf, rp_proxy_loc_conf_t *p, rp_proxy_loc_conf_t *c);

/* The content handler: runs the exchange for a location with proxy_pass. */
int rp_proxy_handler(rp_request_t *r);

/*
 * The request target sent upstream, by nginx's rules: without a URI part in
 * proxy_pass the client's target goes as sent (an absolute-form target reduced
 * to its path and query); with one, the part of the normalized path the location
 * matched (match_len bytes) is replaced by it, the rest is escaped again, and the
 * query string follows.
 */
rp_str_t rp_proxy_uri(rp_arena_t *a, int has_uri, rp_str_t pass_uri, size_t match_len,
                      rp_str_t raw_target, rp_str_t uri, rp_str_t args);

/*
 * The target of r's request to the upstream: rp_proxy_uri with the location's
 * proxy_pass, except that once the URI or the arguments were changed (an internal
 * redirect, `set $args`), the changed ones go, not the target as sent (as nginx).
 */
rp_str_t rp_proxy_target(rp_request_t *r, const rp_proxy_loc_conf_t *plcf);

/*
 * Turns an upgraded exchange into a byte tunnel: r's 101 head was built by
 * rp_http_response_begin() and not sent yet; uc is the upstream connection that
 * answered 101, early[0..n) the bytes it sent behind that head. From here the
 * tunnel owns both connections until it ends them; the request is logged then,
 * through the cleanup that closes uc. The connection never returns to the pool.
 */
void rp_tunnel_start(rp_request_t *r, rp_uconn_t *uc, const rp_proxy_loc_conf_t *plcf,
                     const char *early, size_t n);

/* Writes an error-log line in the proxy's words (client, request, upstream) for r. */
void rp_proxy_log(rp_request_t *r, int level, const char *what, int err, const char *where);

#endif
