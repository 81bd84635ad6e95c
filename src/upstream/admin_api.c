/*
 * `admin_api [write=on|off];`: a location that answers an admin API in JSON, as nginx
 * Plus's `api`: the upstreams and their peers with their state (the fields
 * `upstream_status` shows), and, with write=on, changes to a peer at run time: drain
 * and undrain, mark down and up, set its weight, clear what was set. It belongs in a
 * server of its own, on its own listen address, protected by `allow`/`deny`
 * (access_module.c), `admin_api_token` and/or client certificates:
 *
 *   server {
 *       listen 127.0.0.1:9901;
 *       location /api/ { allow 127.0.0.1; deny all; admin_api_token file=api.token;
 *                        admin_api write=on; }
 *   }
 *
 * The API's paths follow the location's prefix (the whole URI for other locations):
 *
 *   GET    /upstreams                           every upstream block, its peers in brief
 *   GET    /upstreams/NAME                      one, with its peers in full
 *   GET    /upstreams/NAME/peers                its peers in full
 *   GET    /upstreams/NAME/peers/PEER           one peer (PEER: its address, or its id)
 *   PATCH  /upstreams/NAME/peers/PEER           {"state": "up"|"down"|"draining",
 *                                                "weight": N|null} changes what is given
 *   PUT    /upstreams/NAME/peers/PEER           the same, and what is absent is cleared
 *   DELETE /upstreams/NAME/peers/PEER           clears the peer's override
 *   POST   /upstreams/NAME/peers/PEER/ACTION    drain, undrain, down, up
 *
 * A change is written to the shared peer table, which every worker's balancer reads at
 * its next pick (a weight change also moves the pool's generation, so the balancers
 * that build tables from weights rebuild them), and to the override record
 * (admin_store.c), which the next configuration generation applies to its peers: a
 * change holds across reloads until it is cleared, or until the peer leaves the
 * configuration. Every change is logged at notice level with the client's address and
 * the state and weight before and after.
 */
#include "upstream/admin.h"
#include "upstream/peers.h"
#include "upstream/status.h"
#include "upstream/upstream.h"
#include "core/log.h"
#include "core/shm.h"
#include "core/time.h"
#include "http/http.h"
#include "http/request.h"

#include <event2/buffer.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BODY_MAX   4096
#define WEIGHT_MAX 1000000
#define TOKEN_MAX  4096

typedef struct {
    int write;       /* admin_api write=on; RP_CONF_UNSET where admin_api is not set */
    rp_str_t *token; /* admin_api_token; RP_CONF_UNSET_PTR: inherit; NULL: none */
} admin_loc_conf_t;

typedef struct {
    rp_shm_zone_t *zone; /* the overrides (admin_store.c); NULL without upstreams */
} admin_main_conf_t;

/* ---- JSON out ---- */

static void json_str(struct evbuffer *b, const char *s, size_t len)
{
    evbuffer_add(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            evbuffer_add_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            evbuffer_add_printf(b, "\\u%04x", c);
        else
            evbuffer_add(b, &s[i], 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void json_cstr(struct evbuffer *b, const char *s)
{
    json_str(b, s, strlen(s));
}

static int send_json(rp_request_t *r, int status, struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    char *body = rp_arena_alloc(r->arena, len ? len : 1);
    evbuffer_remove(b, body, len);
    evbuffer_free(b);
    rp_http_add_header(r, RP_STR("Cache-Control"), RP_STR("no-store"));
    return rp_http_send_response(r, status, RP_STR("application/json"), (rp_str_t){body, len});
}

static int send_error(rp_request_t *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int send_error(rp_request_t *r, int status, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return rp_http_send_error(r, 500);
    evbuffer_add_printf(b, "{\"error\":{\"status\":%d,\"text\":", status);
    json_cstr(b, text);
    evbuffer_add(b, "}}\n", 3);
    return send_json(r, status, b);
}

/* ---- what is shown ---- */

static const char *admin_state_name(int64_t st)
{
    return st == RP_PEER_DOWN ? "down" : st == RP_PEER_DRAINING ? "draining" : "up";
}

static void override_json(struct evbuffer *b, admin_main_conf_t *m, rp_upstream_conf_t *u,
                          rp_upstream_server_t *s)
{
    rp_admin_override_t o;
    if (!rp_admin_store_get(m->zone, u->name, s->name, &o)) {
        evbuffer_add(b, ",\"override\":null", 16);
        return;
    }
    evbuffer_add(b, ",\"override\":{\"state\":", 21);
    if (o.state >= 0)
        evbuffer_add_printf(b, "\"%s\"", admin_state_name(o.state));
    else
        evbuffer_add(b, "null", 4);
    if (o.weight > 0)
        evbuffer_add_printf(b, ",\"weight\":%lld", (long long)o.weight);
    else
        evbuffer_add(b, ",\"weight\":null", 14);
    evbuffer_add_printf(b, ",\"since_ms\":%lld}", (long long)o.since);
}

static void peer_json(struct evbuffer *b, admin_main_conf_t *m, rp_upstream_conf_t *u,
                      rp_upstream_server_t *s, unsigned id, int64_t now)
{
    evbuffer_add_printf(b, "{\"id\":%u,", id);
    rp_upstream_status_peer_fields(b, u, s, now);
    int64_t w = rp_shm_counter_get(&s->sh->weight);
    evbuffer_add_printf(b, ",\"current_weight\":%lld", (long long)(w > 0 ? w : s->weight));
    override_json(b, m, u, s);
    evbuffer_add(b, "}", 1);
}

static void peers_json(struct evbuffer *b, admin_main_conf_t *m, rp_upstream_conf_t *u, int64_t now)
{
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    evbuffer_add(b, "[", 1);
    for (unsigned k = 0; k < set->n; k++) {
        if (k)
            evbuffer_add(b, ",", 1);
        peer_json(b, m, u, set->peer[k], k, now);
    }
    evbuffer_add(b, "]", 1);
}

static void upstream_head_json(struct evbuffer *b, rp_upstream_conf_t *u)
{
    evbuffer_add(b, "{\"name\":", 8);
    json_cstr(b, u->name);
    evbuffer_add_printf(b, ",\"balancer\":\"%s\",\"zone\":", u->balancer->name);
    json_cstr(b, u->zone ? u->zone->name : "");
    evbuffer_add_printf(b, ",\"file\":");
    json_cstr(b, u->file ? u->file : "");
    evbuffer_add_printf(b, ",\"line\":%u", u->line);
}

static int list_upstreams(rp_request_t *r, rp_upstream_main_conf_t *um)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return rp_http_send_error(r, 500);
    int64_t now = rp_time_ms();
    evbuffer_add(b, "{\"upstreams\":[", 14);
    rp_upstream_conf_t **ups = um->upstreams.elts;
    int first = 1;
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = ups[i];
        if (u->implicit)
            continue;
        if (!first)
            evbuffer_add(b, ",", 1);
        first = 0;
        upstream_head_json(b, u);
        evbuffer_add(b, ",\"peers\":[", 10);
        rp_upstream_peers_t *set = rp_upstream_peers(u);
        for (unsigned k = 0; k < set->n; k++) {
            rp_upstream_server_t *s = set->peer[k];
            int64_t w = rp_shm_counter_get(&s->sh->weight);
            evbuffer_add_printf(b, "%s{\"id\":%u,\"address\":", k ? "," : "", k);
            json_cstr(b, s->name);
            evbuffer_add_printf(b, ",\"state\":\"%s\",\"weight\":%lld,\"backup\":%s}",
                                rp_upstream_status_state(u, s, now),
                                (long long)(w > 0 ? w : s->weight), s->backup ? "true" : "false");
        }
        evbuffer_add(b, "]}", 2);
    }
    evbuffer_add(b, "]}\n", 3);
    return send_json(r, 200, b);
}

/* ---- JSON in: one flat object of strings, integers, booleans and nulls ---- */

enum { JV_NONE, JV_STRING, JV_INT, JV_TRUE, JV_FALSE, JV_NULL };

typedef struct {
    int state_set, state; /* state: RP_PEER_USABLE, _DOWN, _DRAINING */
    int weight_set;
    int64_t weight; /* 0: the configured one */
} change_t;

typedef struct {
    const char *p, *end;
    const char *err;
} jparse_t;

static void skip_ws(jparse_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* A JSON string without escapes beyond \" \\ \/ (the values here are words). */
static int parse_string(jparse_t *j, char *out, size_t cap)
{
    if (j->p >= j->end || *j->p != '"')
        return -1;
    j->p++;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c == '\\') {
            if (j->p >= j->end || *j->p == '\0' || !strchr("\"\\/", *j->p))
                return -1;
            c = *j->p++;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    if (j->p >= j->end)
        return -1;
    j->p++;
    out[n] = '\0';
    return 0;
}

static int parse_value(jparse_t *j, char *str, size_t cap, int64_t *num)
{
    skip_ws(j);
    if (j->p >= j->end)
        return JV_NONE;
    if (*j->p == '"')
        return parse_string(j, str, cap) == 0 ? JV_STRING : JV_NONE;
    static const struct {
        const char *word;
        int kind;
    } words[] = {{"true", JV_TRUE}, {"false", JV_FALSE}, {"null", JV_NULL}};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(words[i].word);
        if ((size_t)(j->end - j->p) >= l && memcmp(j->p, words[i].word, l) == 0) {
            j->p += l;
            return words[i].kind;
        }
    }
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    int64_t v = 0;
    int digits = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return JV_NONE;
        v = v * 10 + (*j->p++ - '0');
        digits++;
    }
    if (!digits || (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')))
        return JV_NONE; /* weights are integers */
    *num = *s == '-' ? -v : v;
    return JV_INT;
}

static int state_word(const char *w)
{
    if (strcmp(w, "up") == 0 || strcmp(w, "usable") == 0)
        return RP_PEER_USABLE;
    if (strcmp(w, "down") == 0)
        return RP_PEER_DOWN;
    if (strcmp(w, "draining") == 0 || strcmp(w, "drain") == 0)
        return RP_PEER_DRAINING;
    return -1;
}

/* Parses a change: {"state": "up"|"down"|"draining", "weight": N|null}; nginx Plus's
 * {"down": bool} and {"drain": true} too. NULL, or what is wrong. */
static const char *parse_change(const char *body, size_t len, change_t *c)
{
    jparse_t j = {body, body + len, NULL};
    skip_ws(&j);
    if (j.p >= j.end || *j.p != '{')
        return "the body must be a JSON object";
    j.p++;
    skip_ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
        goto end;
    }
    for (;;) {
        char key[64], str[64];
        int64_t num = 0;
        skip_ws(&j);
        if (parse_string(&j, key, sizeof(key)) != 0)
            return "malformed JSON: a member name was expected";
        skip_ws(&j);
        if (j.p >= j.end || *j.p != ':')
            return "malformed JSON: \":\" was expected";
        j.p++;
        int kind = parse_value(&j, str, sizeof(str), &num);
        if (kind == JV_NONE)
            return "malformed JSON: a value was expected (a string, an integer, true, false "
                   "or null)";
        if (strcmp(key, "state") == 0) {
            if (kind != JV_STRING || state_word(str) < 0)
                return "\"state\" must be \"up\", \"down\" or \"draining\"";
            c->state_set = 1;
            c->state = state_word(str);
        } else if (strcmp(key, "weight") == 0) {
            if (kind == JV_NULL) {
                num = 0;
            } else if (kind != JV_INT || num < 1 || num > WEIGHT_MAX) {
                return "\"weight\" must be an integer from 1 to 1000000, or null for the "
                       "configured one";
            }
            c->weight_set = 1;
            c->weight = num;
        } else if (strcmp(key, "down") == 0 || strcmp(key, "drain") == 0) {
            if (kind != JV_TRUE && kind != JV_FALSE)
                return "\"down\" and \"drain\" must be true or false";
            if (kind == JV_TRUE || !c->state_set) {
                c->state_set = 1;
                c->state = kind == JV_FALSE ? RP_PEER_USABLE
                           : key[1] == 'o'  ? RP_PEER_DOWN
                                            : RP_PEER_DRAINING;
            }
        } else {
            return "unknown member: the members are \"state\" and \"weight\"";
        }
        skip_ws(&j);
        if (j.p < j.end && *j.p == ',') {
            j.p++;
            continue;
        }
        if (j.p < j.end && *j.p == '}') {
            j.p++;
            break;
        }
        return "malformed JSON: \",\" or \"}\" was expected";
    }
end:
    skip_ws(&j);
    if (j.p != j.end)
        return "malformed JSON: bytes after the object";
    return NULL;
}

/* ---- changes ---- */

static int64_t base_weight(const rp_upstream_server_t *s)
{
    int64_t w = rp_shm_counter_get(&s->sh->weight);
    return w > 0 ? w : s->weight;
}

/* Applies c to s (clear: the override goes, state and weight back to the configured
 * ones), in the peer table and the override record, and logs it. Sends the response. */
static int change_peer(rp_request_t *r, admin_main_conf_t *m, rp_upstream_conf_t *u,
                       rp_upstream_server_t *s, unsigned id, const change_t *c, int clear)
{
    if (s->down && c->state_set && c->state != RP_PEER_DOWN)
        return send_error(r, 409,
                          "peer \"%s\" of upstream \"%s\" is down in the configuration (%s:%u)",
                          s->name, u->name, u->file, u->line);
    rp_admin_override_t o = {-1, 0, 0};
    rp_admin_store_get(m->zone, u->name, s->name, &o);
    int64_t st0 = rp_shm_counter_get(&s->sh->state), w0 = base_weight(s);
    int64_t st1 = st0, wover = rp_shm_counter_get(&s->sh->weight);
    if (clear) {
        o.state = -1;
        o.weight = 0;
        st1 = RP_PEER_USABLE;
        wover = 0;
    }
    if (c->state_set) {
        st1 = c->state;
        o.state = c->state == RP_PEER_USABLE ? -1 : c->state;
    }
    if (c->weight_set) {
        wover = c->weight;
        o.weight = c->weight;
    }
    o.since = rp_time_ms();
    if (rp_admin_store_set(m->zone, u->name, s->name, &o) != 0)
        return send_error(r, 507, "no room for another override in the admin zone");
    if (st0 != RP_PEER_POOL)
        rp_shm_counter_set(&s->sh->state, st1);
    if (wover != rp_shm_counter_get(&s->sh->weight)) {
        rp_shm_counter_set(&s->sh->weight, wover);
        /* balancers that build tables from weights (random, hash) rebuild them */
        if (u->gen)
            rp_shm_counter_add(u->gen, 1);
    }
    if (st1 == RP_PEER_USABLE && st0 != RP_PEER_USABLE && s->slow_start)
        rp_shm_counter_set(&s->sh->usable_since, rp_time_ms());
    rp_str_t who = rp_http_remote_addr(r);
    rp_log_error(
        RP_LOG_NOTICE, 0,
        "admin api: client %.*s %s peer \"%s\" of upstream \"%s\": state %s -> %s, "
        "weight %lld -> %lld%s",
        (int)who.len, who.data, clear && !c->state_set && !c->weight_set ? "cleared" : "changed",
        s->name, u->name, admin_state_name(st0), admin_state_name(st1), (long long)w0,
        (long long)base_weight(s), o.state < 0 && o.weight <= 0 ? " (no override left)" : "");
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return rp_http_send_error(r, 500);
    peer_json(b, m, u, s, id, rp_time_ms());
    evbuffer_add(b, "\n", 1);
    return send_json(r, 200, b);
}

/* ---- routing ---- */

static rp_upstream_conf_t *find_upstream(rp_upstream_main_conf_t *um, const char *name, size_t len)
{
    rp_upstream_conf_t **v = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++)
        if (!v[i]->implicit && strlen(v[i]->name) == len && memcmp(v[i]->name, name, len) == 0)
            return v[i];
    return NULL;
}

/* The peer of u named by its address or its id; NULL. */
static rp_upstream_server_t *find_peer(rp_upstream_conf_t *u, const char *name, size_t len,
                                       unsigned *id)
{
    rp_upstream_peers_t *set = rp_upstream_peers(u);
    for (unsigned i = 0; i < set->n; i++) {
        if (strlen(set->peer[i]->name) == len && memcmp(set->peer[i]->name, name, len) == 0) {
            *id = i;
            return set->peer[i];
        }
    }
    if (len == 0 || len > 6)
        return NULL;
    unsigned long n = 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return NULL;
        n = n * 10 + (unsigned long)(name[i] - '0');
    }
    if (n >= set->n)
        return NULL;
    *id = (unsigned)n;
    return set->peer[n];
}

static int method_is(const rp_request_t *r, const char *m)
{
    return rp_str_eq(r->method, m);
}

static int not_allowed(rp_request_t *r, const admin_loc_conf_t *lc, const char *writes)
{
    const char *allow = lc->write && writes ? writes : "GET, HEAD";
    rp_http_add_header(r, RP_STR("Allow"), (rp_str_t){allow, strlen(allow)});
    int write_method = method_is(r, "PATCH") || method_is(r, "POST") || method_is(r, "PUT") ||
                       method_is(r, "DELETE");
    if (write_method && !lc->write && writes)
        return send_error(r, 405, "the admin API is read only here (admin_api write=off)");
    return send_error(r, 405, "method %.*s is not allowed here", (int)r->method.len,
                      r->method.data);
}

/* Whether the request carries the location's bearer token; constant time in the token. */
static int token_ok(rp_request_t *r, const rp_str_t *token)
{
    rp_str_t h = rp_request_header(r, "authorization");
    if (h.len < 7 || strncasecmp(h.data, "Bearer ", 7) != 0)
        return 0;
    const unsigned char *cand = (const unsigned char *)h.data + 7;
    size_t len = h.len - 7;
    while (len && *cand == ' ')
        cand++, len--;
    while (len && cand[len - 1] == ' ')
        len--;
    const unsigned char *tok = (const unsigned char *)token->data;
    unsigned diff = len != token->len;
    for (size_t i = 0; i < token->len; i++)
        diff |= tok[i] ^ (i < len ? cand[i] : 0);
    return diff == 0;
}

static int is_reading(const rp_request_t *r)
{
    return method_is(r, "GET") || method_is(r, "HEAD");
}

static int admin_handler(rp_request_t *r)
{
    admin_loc_conf_t *lc = rp_http_loc_conf(r, rp_admin_api_module);
    admin_main_conf_t *m = r->srv->ctx->main_conf[rp_admin_api_module.index];
    rp_upstream_main_conf_t *um = r->srv->ctx->main_conf[rp_upstream_module.index];

    if (lc->token && !token_ok(r, lc->token)) {
        int given = rp_request_header(r, "authorization").len != 0;
        const char *auth = given ? "Bearer realm=\"rampart admin\", error=\"invalid_token\""
                                 : "Bearer realm=\"rampart admin\"";
        rp_http_add_header(r, RP_STR("WWW-Authenticate"), (rp_str_t){auth, strlen(auth)});
        return send_error(r, 401,
                          given ? "the bearer token is wrong" : "a bearer token is required");
    }

    /* the API's path: what follows the location's prefix */
    const char *p = r->uri.data, *end = r->uri.data + r->uri.len;
    rp_http_core_loc_conf_t *clcf = r->clcf;
    if ((clcf->kind == RP_LOC_PREFIX || clcf->kind == RP_LOC_PREFIX_NOREGEX) &&
        r->uri.len >= clcf->name_len && memcmp(p, clcf->name, clcf->name_len) == 0) {
        p += clcf->name_len;
        if (clcf->name_len && clcf->name[clcf->name_len - 1] == '/')
            p--; /* keep the slash */
    }
    while (p < end && *p == '/')
        p++;
    while (end > p && end[-1] == '/')
        end--;
    size_t len = (size_t)(end - p);

    if (len == 0) {
        if (!is_reading(r))
            return not_allowed(r, lc, NULL);
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            return rp_http_send_error(r, 500);
        evbuffer_add_printf(b, "{\"endpoints\":[\"upstreams\"],\"write\":%s}\n",
                            lc->write ? "true" : "false");
        return send_json(r, 200, b);
    }
    if (len < 9 || memcmp(p, "upstreams", 9) != 0 || (len > 9 && p[9] != '/'))
        return send_error(r, 404, "no such endpoint: the endpoint is \"upstreams\"");
    p += 9;
    if (p == end) {
        if (!is_reading(r))
            return not_allowed(r, lc, NULL);
        return list_upstreams(r, um);
    }
    p++;
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *name_end = slash ? slash : end;
    rp_upstream_conf_t *u = find_upstream(um, p, (size_t)(name_end - p));
    if (u == NULL)
        return send_error(r, 404, "no upstream \"%.*s\"", (int)(name_end - p), p);
    int64_t now = rp_time_ms();
    if (name_end == end) {
        if (!is_reading(r))
            return not_allowed(r, lc, NULL);
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            return rp_http_send_error(r, 500);
        upstream_head_json(b, u);
        evbuffer_add(b, ",\"peers\":", 9);
        peers_json(b, m, u, now);
        evbuffer_add(b, "}\n", 2);
        return send_json(r, 200, b);
    }
    p = name_end + 1;
    size_t rest = (size_t)(end - p);
    if (rest < 5 || memcmp(p, "peers", 5) != 0 || (rest > 5 && p[5] != '/'))
        return send_error(r, 404, "no such endpoint under upstream \"%s\": it has \"peers\"",
                          u->name);
    if (rest == 5) {
        if (!is_reading(r))
            return not_allowed(r, lc, NULL);
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            return rp_http_send_error(r, 500);
        peers_json(b, m, u, now);
        evbuffer_add(b, "\n", 1);
        return send_json(r, 200, b);
    }
    p += 6;
    unsigned id = 0;
    const char *action = NULL;
    rp_upstream_server_t *s = find_peer(u, p, (size_t)(end - p), &id);
    if (s == NULL) {
        /* PEER/ACTION (a peer's address may hold slashes: unix:/path) */
        const char *last = end;
        while (last > p && last[-1] != '/')
            last--;
        if (last > p + 1)
            s = find_peer(u, p, (size_t)(last - 1 - p), &id);
        if (s == NULL)
            return send_error(r, 404, "no peer \"%.*s\" in upstream \"%s\"", (int)(end - p), p,
                              u->name);
        action = last;
    }

    change_t c = {0};
    if (action) {
        size_t al = (size_t)(end - action);
        static const struct {
            const char *word;
            int state;
        } actions[] = {{"drain", RP_PEER_DRAINING},
                       {"undrain", RP_PEER_USABLE},
                       {"down", RP_PEER_DOWN},
                       {"up", RP_PEER_USABLE}};
        int state = -1;
        for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
            if (strlen(actions[i].word) == al && memcmp(actions[i].word, action, al) == 0)
                state = actions[i].state;
        if (state < 0)
            return send_error(r, 404,
                              "no action \"%.*s\": the actions are drain, undrain, down and up",
                              (int)al, action);
        if (!method_is(r, "POST") || !lc->write)
            return not_allowed(r, lc, "POST");
        c.state_set = 1;
        c.state = state;
        return change_peer(r, m, u, s, id, &c, 0);
    }

    if (is_reading(r)) {
        struct evbuffer *b = evbuffer_new();
        if (b == NULL)
            return rp_http_send_error(r, 500);
        peer_json(b, m, u, s, id, now);
        evbuffer_add(b, "\n", 1);
        return send_json(r, 200, b);
    }
    const char *writes = "GET, HEAD, PATCH, PUT, DELETE";
    if (!lc->write || !(method_is(r, "PATCH") || method_is(r, "PUT") || method_is(r, "DELETE")))
        return not_allowed(r, lc, writes);
    if (method_is(r, "DELETE"))
        return change_peer(r, m, u, s, id, &c, 1);

    int rc = rp_http_keep_body(r);
    if (rc != RP_OK)
        return rc;
    size_t blen = rp_http_kept_body_length(r);
    if (blen > BODY_MAX)
        return send_error(r, 413, "the body is larger than %d bytes", BODY_MAX);
    char *body = rp_arena_alloc(r->arena, blen + 1);
    size_t got = 0;
    while (got < blen) {
        size_t n = 0;
        int more = rp_http_read_body(r, body + got, blen - got, &n);
        got += n;
        if (more != 0 || n == 0)
            break;
    }
    if (got != blen)
        return send_error(r, 400, "the body could not be read");
    const char *why = parse_change(body, blen, &c);
    if (why)
        return send_error(r, 400, "%s", why);
    /* PUT replaces the whole override: what it does not give goes back to configured */
    return change_peer(r, m, u, s, id, &c, method_is(r, "PUT"));
}

/* ---- configuration ---- */

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(admin_main_conf_t));
}

static void *create_loc(rp_conf_t *cf)
{
    admin_loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->write = RP_CONF_UNSET;
    c->token = RP_CONF_UNSET_PTR;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    admin_loc_conf_t *p = parent, *c = child;
    if (c->write == RP_CONF_UNSET)
        c->write = 0; /* read only, wherever admin_api did not say write=on */
    if (c->token == RP_CONF_UNSET_PTR)
        c->token = p->token == RP_CONF_UNSET_PTR ? NULL : p->token;
    return RP_CONF_OK; /* admin_api itself is not inherited: it is a location's handler */
}

static const char *set_admin_api(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    admin_loc_conf_t *lc = conf;
    rp_http_core_loc_conf_t *clcf = cf->http_ctx->loc_conf[rp_http_core_module.index];
    if (clcf->content || lc->write != RP_CONF_UNSET)
        return "is duplicate";
    lc->write = 0;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "write=", 6) != 0 || rp_parse_flag(a + 6, &lc->write) != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\": write=on or write=off", a);
    }
    clcf->content = admin_handler;
    return RP_CONF_OK;
}

/* A token a client can send in an Authorization field: visible ASCII, no spaces. */
static const char *check_token(rp_conf_t *cf, const char *t, size_t len, const char *from)
{
    if (len == 0)
        return rp_conf_error(cf, "the token%s is empty", from);
    if (len < 16)
        rp_conf_warn(cf, "a token of %zu characters is short: use 32 random ones or more", len);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return rp_conf_error(cf,
                                 "the token%s holds a space or a character beyond "
                                 "visible ASCII",
                                 from);
    return NULL;
}

static const char *set_token(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cmd;
    admin_loc_conf_t *lc = conf;
    if (lc->token != RP_CONF_UNSET_PTR)
        return "is duplicate";
    const char *a = cf->argv[1];
    rp_str_t *tok = rp_arena_calloc(cf->arena, sizeof(*tok));
    if (strncmp(a, "file=", 5) != 0) {
        const char *err = check_token(cf, a, strlen(a), "");
        if (err)
            return err;
        tok->data = rp_arena_strdup(cf->arena, a);
        tok->len = strlen(a);
        lc->token = tok;
        return RP_CONF_OK;
    }
    if (a[5] == '\0')
        return rp_conf_error(cf, "file= names no file");
    char *path = rp_conf_conf_path(cf, a + 5);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return rp_conf_error(cf, "cannot open the token file \"%s\": %s", path, strerror(errno));
    char *buf = rp_arena_alloc(cf->arena, TOKEN_MAX + 1);
    size_t n = fread(buf, 1, TOKEN_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return rp_conf_error(cf, "cannot read the token file \"%s\"", path);
    if (n > TOKEN_MAX)
        return rp_conf_error(cf, "the token file \"%s\" is larger than %d bytes", path, TOKEN_MAX);
    while (n &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--; /* the file's final newline is not part of the token */
    buf[n] = '\0';
    char from[600];
    snprintf(from, sizeof(from), " in \"%s\"", path);
    const char *err = check_token(cf, buf, n, from);
    if (err)
        return err;
    tok->data = buf;
    tok->len = n;
    lc->token = tok;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    admin_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_admin_api_module);
    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    if (m == NULL || um == NULL)
        return RP_CONF_OK;
    /* The overrides are applied whether or not this configuration serves the API: a
     * reload that leaves the admin server out must not undo an operator's drain. */
    rp_upstream_conf_t **v = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        if (!v[i]->implicit) {
            m->zone = rp_admin_store_declare(cf);
            return m->zone ? RP_CONF_OK : RP_CONF_ERROR;
        }
    }
    return RP_CONF_OK;
}

static int init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen)
{
    (void)err;
    (void)errlen;
    if (flags & RP_INIT_TEST)
        return 0;
    admin_main_conf_t *m = rp_http_main_conf(cycle, &rp_admin_api_module);
    if (m && m->zone)
        rp_admin_store_apply(m->zone, cycle, prev);
    return 0;
}

#define WHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"admin_api", RP_CTX_LOCATION, 0, 0, 1, set_admin_api, RP_CONF_LOC, 0, NULL},
    {"admin_api_token", WHERE, 0, 1, 1, set_token, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_admin_api_module = {
    .name = "admin_api",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
    .init_master = init_master,
};
