/*
 * Choosing the upstream of a proxied request when the configuration does not fix
 * it: proxy_pass and grpc_pass with variables (`proxy_pass http://$pool;`), and
 * canary splits (`proxy_canary`, `grpc_canary`: canary_module.c) that send a share
 * of a location's traffic to another upstream.
 *
 * A location whose proxy_pass names its upstream literally and has no canary has
 * no route (plcf->route is NULL), and rp_proxy_choose costs it one branch: the
 * answer is the location's own upstream, TLS settings and $proxy_host. Otherwise
 * upstream_choose.c decides once per request: the canary side first, then the
 * evaluated URL, whose host names an upstream block (exactly, as nginx looks
 * blocks up) or else an address literal, which gets a one-server pool of its own
 * kept per worker, so its keep-alive connections serve the next requests too.
 */
#ifndef RP_UPSTREAM_CHOOSE_H
#define RP_UPSTREAM_CHOOSE_H

#include "http/http.h"
#include "upstream/proxy.h"

#include <stdint.h>

/* Canary weights are in parts per million of requests (or of keys). */
#define RP_CANARY_SCALE 1000000u

/* A location's canary split (proxy_canary or grpc_canary). */
typedef struct {
    rp_upstream_conf_t *upstream; /* where the canary share goes */
    rp_upstream_tls_t *tls;       /* its TLS settings; NULL: plain */
    rp_str_t host;                /* its $proxy_host */
    uint32_t weight;              /* share, in RP_CANARY_SCALE units */
    rp_cv_t key;                  /* key=: the side is a hash of it (has_vars or value) */
    unsigned has_key : 1;
    const char *header; /* header=, lowercase: a request carrying it may force the side */
} rp_proxy_canary_t;

/* What is chosen per request in a location (plcf->route). */
typedef struct rp_proxy_route_s {
    /* proxy_pass or grpc_pass with variables: the URL, evaluated per request */
    unsigned dynamic : 1;
    unsigned grpc : 1;
    int scheme_tls; /* the URL's literal scheme: 1 https (grpcs), 0 http (grpc), -1 a variable */
    rp_cv_t url;
    /* https:// (grpcs://) at request time: the location's *_ssl_* settings, for HTTP/1 and
     * for HTTP/2 groups; NULL when the URL cannot be https */
    rp_upstream_tls_t *tls_h1, *tls_h2;
    const char *file; /* the pass directive, for the pools it makes */
    unsigned line;

    rp_proxy_canary_t *canary; /* NULL: none */
} rp_proxy_route_t;

/* What was chosen for a request (its context in rp_upstream_choose_module's slot). */
typedef struct {
    const rp_proxy_loc_conf_t *plcf; /* the location it was chosen for */
    rp_upstream_conf_t *upstream;
    rp_upstream_tls_t *tls;
    rp_str_t host; /* $proxy_host */
    rp_str_t uri;  /* the URI part of the evaluated URL, sent as it is */
    unsigned has_uri : 1;
    unsigned canary : 1; /* $upstream_canary */
    void *pinned;        /* the per-worker address pool held for this request */
} rp_proxy_choice_t;

/*
 * The slow path of rp_proxy_choose, for a location with a route. Decides once per
 * request and location (a second call, such as the HTTP/2 exchange's after the HTTP/1
 * handler handed the request over, gets the same answer). Returns RP_OK, or the HTTP
 * status to answer with, the reason being in the error log in nginx's words: 500 for a
 * URL that is not one, 502 for a host that names neither an upstream block nor an address
 * ("no resolver defined to resolve HOST").
 */
int rp_proxy_choose_route(rp_request_t *r, const rp_proxy_loc_conf_t *plcf, rp_upstream_conf_t **u,
                          rp_upstream_tls_t **tls, rp_str_t *host);

/*
 * The upstream group r goes to, with the TLS settings to use (NULL: plain) and its
 * $proxy_host (host may be NULL: rp_proxy_ctx_new records it anyway): the location's own
 * for a literal proxy_pass or grpc_pass without a canary (nothing else is done then), else
 * chosen by rp_proxy_choose_route. RP_OK or a status.
 */
static inline int rp_proxy_choose(rp_request_t *r, const rp_proxy_loc_conf_t *plcf,
                                  rp_upstream_conf_t **u, rp_upstream_tls_t **tls, rp_str_t *host)
{
    if (plcf->route == NULL) {
        *u = plcf->upstream;
        *tls = plcf->tls;
        if (host)
            *host = plcf->host;
        return RP_OK;
    }
    return rp_proxy_choose_route(r, plcf, u, tls, host);
}

/* What was chosen for r in plcf's location; NULL when nothing was (yet). */
const rp_proxy_choice_t *rp_proxy_choice(rp_request_t *r, const rp_proxy_loc_conf_t *plcf);

/*
 * For the pass directives (proxy_module.c, grpc_module.c): a URL with variables becomes
 * p's route, evaluated per request. grpc: grpc_pass's schemes. RP_CONF_OK or an error.
 */
const char *rp_proxy_route_compile(rp_conf_t *cf, rp_proxy_loc_conf_t *p, const char *url,
                                   int grpc);

/* Once the location's *_ssl_* settings are merged (postconfiguration; ctx is the
 * location's): the TLS contexts a route's URL may need when it turns out https. RP_CONF_OK
 * or RP_CONF_ERROR with the message in cf->error. */
const char *rp_proxy_route_tls(rp_conf_t *cf, rp_proxy_loc_conf_t *p, rp_http_conf_ctx_t *ctx);

/* p's route, made empty (no variables, no canary) if it has none yet. */
rp_proxy_route_t *rp_proxy_route_get(rp_conf_t *cf, rp_proxy_loc_conf_t *p);

/* ---- canary (canary_module.c) ---- */

/* Whether r goes to the canary of c: the forcing header, else the key's hash, else chance.
 * 1 or 0. */
int rp_canary_pick(rp_request_t *r, const rp_proxy_canary_t *c);

/* The key's point in [0, RP_CANARY_SCALE): the same for a key in every worker and every
 * run, and evenly spread, so a weight of w sends the keys below w to the canary and
 * raising w only adds keys to it. */
uint32_t rp_canary_hash(rp_str_t key);

/* A forcing header's value: 1 canary ("1", "on", "true", "canary"), 0 primary ("0",
 * "off", "false", "stable", "primary"), any case; -1 for anything else (ignored). */
int rp_canary_forced(rp_str_t value);

#endif
