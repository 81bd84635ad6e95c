/*
 * Shared HTTP types: the phase codes, the http core module's configuration at
 * its three levels, the phase list and the filter chains. A protocol (HTTP/1,
 * HTTP/2) produces an rp_request_t and hands it to the phase runner; the phases
 * and the filters never know which protocol carried the request.
 */
#ifndef RP_HTTP_H
#define RP_HTTP_H

#include "conf/conf.h"
#include "core/str.h"

#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

typedef struct rp_request_s rp_request_t;
typedef struct rp_conn_s rp_conn_t;

/* What a phase handler returns. */
enum {
    RP_OK = 0,        /* this phase is done: go to the next phase */
    RP_ERROR = -1,    /* fail the request with 500 */
    RP_AGAIN = -2,    /* suspended: an event will resume the runner */
    RP_DONE = -4,     /* a response was produced: stop running phases */
    RP_DECLINED = -5, /* not mine: try the next handler of this phase */
};

/*
 * The phases, in nginx's order and with nginx's meaning. Modules add handlers to
 * every phase but FIND_CONFIG and POST_REWRITE, which the runner does itself.
 */
typedef enum {
    RP_PHASE_SERVER_REWRITE, /* before a location is chosen: server-level `return`, `set` */
    RP_PHASE_FIND_CONFIG,    /* choose the location (built in) */
    RP_PHASE_REWRITE,        /* location-level `return`, `set` */
    RP_PHASE_POST_REWRITE,   /* the URI changed: find the location again, at most 10 times */
    RP_PHASE_PREACCESS,      /* limits */
    RP_PHASE_ACCESS,         /* authentication, authorization */
    RP_PHASE_PRECONTENT,     /* after access, before content: fault injection, try_files */
    RP_PHASE_CONTENT, /* produce the response: the location's handler (proxy, ...) first */
    RP_PHASE_LOG,     /* after the response, once: access log; return codes are ignored */
    RP_NPHASES,
} rp_phase_t;

typedef int (*rp_phase_handler_pt)(rp_request_t *r);

/*
 * The ACCESS phase is nginx's: its handlers grant (RP_OK), decline (RP_DECLINED), or
 * deny by returning 401 or 403 without answering (a 401 adds its WWW-Authenticate
 * field first). The runner combines them by the location's `satisfy`: with `all`
 * every handler runs and the first denial answers; with `any` the first grant ends
 * the phase, and when none grants the denial answers (401 before 403). Any other
 * status a handler returns is answered at once. Subrequests skip the phase.
 */

/*
 * Filter chains. A response's head passes through the header filters and each
 * piece of its body through the body filters, in rank order, before the protocol
 * sends it. A filter does its work and passes on with rp_http_next_header() /
 * rp_http_next_body(); it may change the status, the fields and the body, and a
 * body filter may hold data back and pass it on later (it then counts what it
 * holds in r->held and calls rp_http_filter_drained() once it let go). A header
 * filter may wait too: it returns RP_AGAIN and later calls
 * rp_http_header_resume(); what the producer writes meanwhile is held for it.
 * Header filters return 0, RP_AGAIN, or -1 when the response cannot be sent;
 * body filters 0, or -1 when the client is gone.
 */
typedef struct rp_http_header_filter_s rp_http_header_filter_t;
typedef struct rp_http_body_filter_s rp_http_body_filter_t;

struct rp_http_header_filter_s {
    int (*fn)(rp_request_t *r, const rp_http_header_filter_t *self);
    const rp_http_header_filter_t *next;
    int rank;
    const char *name;
};

#define RP_BODY_LAST  0x01u /* the body ends here */
#define RP_BODY_FLUSH 0x02u /* the producer has nothing more for now: send what is held */

struct rp_http_body_filter_s {
    int (*fn)(rp_request_t *r, const rp_http_body_filter_t *self, const struct iovec *iov,
              int iovcnt, unsigned flags);
    const rp_http_body_filter_t *next;
    int rank;
    const char *name;
};

/* Filter ranks: lower runs first. The protocol sends the result last of all. */
enum {
    RP_FILTER_HEADERS = 100,    /* add_header */
    RP_FILTER_LUA = 150,        /* header_filter_by_lua, body_filter_by_lua */
    RP_FILTER_GZIP = 500,       /* gzip */
    RP_FILTER_LIMIT_RATE = 900, /* limit_rate: paces what the others produced */
};

/* Location kinds, as nginx spells them. */
enum {
    RP_LOC_SERVER,         /* the implicit location of a server block */
    RP_LOC_PREFIX,         /* location /path */
    RP_LOC_PREFIX_NOREGEX, /* location ^~ /path */
    RP_LOC_EXACT,          /* location = /path */
    RP_LOC_REGEX,          /* location ~ re */
    RP_LOC_REGEX_CASELESS, /* location ~* re */
    RP_LOC_NAMED,          /* location @name: reached only by rp_http_named_redirect() */
};

/* server_name kinds */
enum {
    RP_NAME_EXACT,
    RP_NAME_WILD_HEAD, /* *.example.com */
    RP_NAME_WILD_TAIL, /* www.example.* */
    RP_NAME_REGEX,     /* ~^(www\.)?example\.com$ */
};

typedef struct rp_http_core_srv_conf_s rp_http_core_srv_conf_t;
typedef struct rp_http_core_loc_conf_s rp_http_core_loc_conf_t;

typedef struct {
    rp_str_t text; /* as written, for $server_name */
    char *name;       /* lowercase; for wildcards, without the "*." or ".*" */
    size_t len;
    int kind;
    struct rp_http_regex_s *re;
    rp_http_core_srv_conf_t *server;
} rp_server_name_t;

/* One `listen` of one server. */
typedef struct {
    struct sockaddr_storage sa;
    socklen_t socklen;
    char *text; /* "127.0.0.1:8080", "[::1]:8080" */
    int default_server;
    int backlog;
    int ipv6only;
    int rcvbuf, sndbuf;
    int has_opts; /* backlog=, rcvbuf=, sndbuf= or ipv6only= was given */
    int ssl;      /* connections on this address speak TLS first */
    int http2;    /* HTTP/2: by ALPN with ssl, else by prior knowledge beside HTTP/1 */
    int proxy_protocol; /* a PROXY protocol header comes first on every connection */
    const char *file;
    unsigned line;
} rp_listen_opt_t;

/* The servers reachable through one listening address, for name-based selection. */
typedef struct {
    rp_cycle_t *cycle; /* the generation this table belongs to */
    struct rp_listening_s *listening;
    rp_http_core_srv_conf_t *default_server;
    int explicit_default; /* set by a `listen ... default_server` */
    int ssl;              /* some listen of this address said ssl: all of it is TLS */
    int http2;            /* some listen of this address said http2 */
    int proxy_protocol;   /* some listen of this address said proxy_protocol: all of it
                           * expects the header (nginx's rule: the socket has it or not) */
    rp_array_t names; /* rp_server_name_t, exact first, then wildcards, then regexes */
    struct rp_route_names_s *index; /* names hashed for lookup (rp_route_build_names) */
} rp_http_addr_t;

typedef struct {
    rp_array_t servers; /* rp_http_core_srv_conf_t * */
    rp_array_t addrs;   /* rp_http_addr_t * */
    rp_array_t phases[RP_NPHASES]; /* rp_phase_handler_pt */
    const rp_http_header_filter_t *header_filters; /* the first of the chain */
    const rp_http_body_filter_t *body_filters;
} rp_http_core_main_conf_t;

struct rp_http_core_srv_conf_s {
    rp_http_conf_ctx_t *ctx;
    rp_array_t names;   /* rp_server_name_t */
    rp_array_t listens; /* rp_listen_opt_t */
    const char *file;
    unsigned line;
    int has_listen;

    size_t client_header_buffer_size;   /* initial head buffer */
    size_t large_header_line;           /* longest request line or header line */
    size_t large_client_header_buffers; /* whole request head */
    int64_t client_header_timeout;
    int merge_slashes;
};

struct rp_http_core_loc_conf_s {
    char *name;
    size_t name_len;
    int kind;
    struct rp_http_regex_s *re;
    void **loc_conf; /* every module's configuration for this location */
    /* The location's content handler (proxy_pass, grpc_pass, ...): runs first in the
     * content phase; NULL leaves the phase to its handlers. */
    rp_phase_handler_pt content;
    rp_http_core_loc_conf_t *parent;
    const char *file;
    unsigned line;

    /* Children, split by kind, in configuration order; rp_route_build compiles them
     * into tree for lookup. */
    rp_array_t exact, prefix, regex; /* rp_http_core_loc_conf_t * */
    rp_array_t named;                /* a server's `location @name`s */
    struct rp_route_tree_s *tree;
    /* Request matchers (match_module.c): NULL when the location has none; match_key is
     * their canonical text, to refuse a duplicate location with the same ones. */
    void *match;
    const char *match_key;
    /* The locations of the same kind and path (variants with other matchers), in
     * configuration order: the first of them, and the next after this one. */
    rp_http_core_loc_conf_t *first_variant, *next_variant;

    int64_t keepalive_timeout;
    int keepalive_requests;
    int64_t send_timeout;
    int64_t client_body_timeout;
    char *default_type;
    size_t client_max_body_size; /* 0: unlimited */
    int server_tokens;
    int internal;       /* `internal`: only internal redirects and subrequests reach it */
    int log_subrequest; /* access_log writes subrequests too */
    int satisfy;        /* 0: all access handlers must grant; 1: any one (phases.c) */
};

extern rp_module_t rp_http_module;
extern rp_module_t rp_http_core_module;
extern rp_module_t rp_http_rewrite_module;
extern rp_module_t rp_http_redirect_module;
extern rp_module_t rp_http_realip_module;
extern rp_module_t rp_http_compat_module; /* underscores_in_headers, http2 on, ... */
extern rp_module_t rp_http_map_module;
extern rp_module_t rp_http_gzip_module;
extern rp_module_t rp_http_limit_rate_module;
extern rp_module_t rp_http_fault_module;
extern rp_module_t rp_http_mirror_module;
extern rp_module_t rp_http_split_clients_module;
extern rp_module_t rp_http_access_module;
extern rp_module_t rp_http_auth_basic_module;
extern rp_module_t rp_http_auth_request_module;
extern rp_module_t rp_upstream_module;
extern rp_module_t rp_upstream_status_module;
extern rp_module_t rp_proxy_module;
extern rp_module_t rp_proxy_ssl_module;
extern rp_module_t rp_grpc_ssl_module;
extern rp_module_t rp_grpc_module;
extern rp_module_t rp_upstream_choose_module;
extern rp_module_t rp_canary_module;
extern rp_module_t rp_retry_module;
extern rp_module_t rp_hedge_module;
extern rp_module_t rp_ssl_module;
extern rp_module_t rp_http_headers_module;
extern rp_module_t rp_http_error_page_module;
extern rp_module_t rp_http2_module;

/* The http block's core configuration of a cycle, or NULL when there is no http block. */
rp_http_core_main_conf_t *rp_http_core_main_conf(const rp_cycle_t *cycle);

/* A module's http-level main configuration in a cycle, or NULL without an http block. */
void *rp_http_main_conf(const rp_cycle_t *cycle, const rp_module_t *module);

/* A module's location-level configuration as the http block itself sets it (what its
 * servers and locations inherit), or NULL without an http block. */
void *rp_http_block_loc_conf(const rp_cycle_t *cycle, const rp_module_t *module);

/* Registers a handler for a phase; call from a module's postconfiguration. Handlers of
 * a phase run in the order they were added. FIND_CONFIG and POST_REWRITE take none. */
void rp_http_add_phase_handler(rp_conf_t *cf, rp_phase_t phase, rp_phase_handler_pt h);

/* Joins the header or body filter chain of the configuration at rank (RP_FILTER_*);
 * call from a module's postconfiguration. */
void rp_http_add_header_filter(rp_conf_t *cf, int rank, const char *name,
                               int (*fn)(rp_request_t *r, const rp_http_header_filter_t *self));
void rp_http_add_body_filter(rp_conf_t *cf, int rank, const char *name,
                             int (*fn)(rp_request_t *r, const rp_http_body_filter_t *self,
                                       const struct iovec *iov, int iovcnt, unsigned flags));

/* The ends of the chains: the protocol (request.c). */
extern const rp_http_header_filter_t rp_http_header_filter_end;
extern const rp_http_body_filter_t rp_http_body_filter_end;

/* Passes the response on to the next filter of the chain. */
static inline int rp_http_next_header(rp_request_t *r, const rp_http_header_filter_t *self)
{
    return self->next->fn(r, self->next);
}

static inline int rp_http_next_body(rp_request_t *r, const rp_http_body_filter_t *self,
                                    const struct iovec *iov, int iovcnt, unsigned flags)
{
    return self->next->fn(r, self->next, iov, iovcnt, flags);
}

/* Adds another module's step to the rewrite script of the server or location being
 * read (set_by_lua): it runs in order with `set` and `return`; RP_OK goes on, any
 * other result ends the script with it. */
void rp_http_rewrite_add_step(rp_conf_t *cf, int (*step)(rp_request_t *r, const void *data),
                              const void *data);

/*
 * A redirect's target may hold variables the client controls ($uri is decoded, so
 * "%0d%0a" in the request becomes CR LF there): control bytes are percent-encoded
 * back, so they can never split the response head (nginx's well-known pitfall with
 * `return 301 https://host$uri`). Returns v itself when it has none.
 */
rp_str_t rp_http_safe_location(rp_request_t *r, rp_str_t v);

/* A redirect's target starting with "/" made absolute as nginx writes rampart's own
 * redirects (absolute_redirect, server_name_in_redirect, port_in_redirect); any other
 * target as it is. */
rp_str_t rp_http_absolute_location(rp_request_t *r, rp_str_t loc);

/* Merges the `if` levels of a location once the location is merged (http_block.c). */
const char *rp_http_rewrite_merge_ifs(rp_conf_t *cf, void **loc_conf);

/* Per-module configuration of a request's location / server. */
#define rp_http_loc_conf(r, module) ((r)->loc_conf[(module).index])
#define rp_http_srv_conf(r, module) ((r)->srv->ctx->srv_conf[(module).index])

#endif
