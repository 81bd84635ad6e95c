/*
 * `allow` and `deny`, as nginx's access module: each names an address (IPv4 or IPv6),
 * a network in CIDR notation, `unix:` (clients on a Unix-domain socket) or `all`. A
 * request's client address is checked against the location's rules in the access phase,
 * in order; the first that matches decides, and a `deny` answers 403. A location with
 * no rules of its own inherits its server's, a server its http block's (the whole list:
 * rules never add up across levels). A client whose IPv6 address maps an IPv4 one
 * (::ffff:a.b.c.d) is checked against the IPv4 rules, as nginx does.
 *
 *   location /admin/ { allow 127.0.0.1; allow ::1; allow 10.0.0.0/8; deny all; }
 *
 * The admin API relies on it, and it is as useful in front of any location. The
 * handler joins the phase only when some rule exists, so a configuration without any
 * pays nothing per request. Subrequests are not checked (their parent was), and
 * `satisfy` decides how a grant or denial here combines with the phase's other
 * handlers (phases.c).
 */
#include "core/log.h"
#include "http/request.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

typedef struct {
    int family; /* AF_INET, AF_INET6, AF_UNIX; 0: all */
    unsigned char addr[16], mask[16];
    unsigned deny : 1;
} access_rule_t;

typedef struct {
    rp_array_t *rules; /* access_rule_t; NULL: none set at this level */
} access_loc_conf_t;

typedef struct {
    int used; /* some rule exists: the phase handler is added */
} access_main_conf_t;

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(access_main_conf_t));
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(access_loc_conf_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    (void)cf;
    access_loc_conf_t *p = parent, *c = child;
    if (c->rules == NULL)
        c->rules = p->rules;
    return RP_CONF_OK;
}

/* Whether the first bits of a (of len bytes) under mask equal the rule's. */
static int masked_eq(const unsigned char *a, const access_rule_t *rule, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((a[i] & rule->mask[i]) != rule->addr[i])
            return 0;
    return 1;
}

static int rule_matches(const access_rule_t *rule, const rp_sockaddr_t *peer)
{
    if (rule->family == 0)
        return 1;
    int family = peer->sa.sa_family;
    const unsigned char *a;
    if (family == AF_INET6) {
        a = peer->sin6.sin6_addr.s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&peer->sin6.sin6_addr)) {
            family = AF_INET; /* ::ffff:a.b.c.d is a.b.c.d, as nginx treats it */
            a += 12;
        }
    } else if (family == AF_INET) {
        a = (const unsigned char *)&peer->sin.sin_addr;
    } else {
        return rule->family == family; /* unix: */
    }
    if (rule->family != family)
        return 0;
    return masked_eq(a, rule, family == AF_INET ? 4 : 16);
}

static int access_handler(rp_request_t *r)
{
    const access_loc_conf_t *lc = rp_http_loc_conf(r, rp_http_access_module);
    if (lc->rules == NULL)
        return RP_DECLINED;
    const access_rule_t *rule = lc->rules->elts;
    for (size_t i = 0; i < lc->rules->nelts; i++) {
        if (!rule_matches(&rule[i], r->peer)) /* the client realip found, as nginx */
            continue;
        if (!rule[i].deny)
            return RP_OK; /* granted: the phase's other handlers run, unless satisfy any */
        rp_str_t who = rp_http_remote_addr(r);
        rp_log_error(RP_LOG_ERR, 0,
                     "access forbidden by rule, client: %.*s, request: \"%.*s %.*s\"", (int)who.len,
                     who.data, (int)r->method.len, r->method.data, (int)r->request_uri.len,
                     r->request_uri.data);
        return 403; /* the runner answers it, or keeps it under satisfy any */
    }
    return RP_DECLINED;
}

/* Parses "ADDR" or "ADDR/BITS" into rule. NULL, or what is wrong. */
static const char *parse_cidr(rp_conf_t *cf, const char *text, access_rule_t *rule)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(text) >= sizeof(buf))
        return "invalid";
    strcpy(buf, text);
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        if (rp_parse_int(slash + 1, 128, &bits) != 0 || slash[1] == '\0')
            return "invalid";
    }
    size_t len;
    if (inet_pton(AF_INET, buf, rule->addr) == 1) {
        rule->family = AF_INET;
        len = 4;
    } else if (inet_pton(AF_INET6, buf, rule->addr) == 1) {
        rule->family = AF_INET6;
        len = 16;
    } else {
        return "invalid";
    }
    if (bits < 0)
        bits = (long)len * 8;
    if (bits > (long)len * 8)
        return "invalid";
    int meaningless = 0;
    for (size_t i = 0; i < len; i++) {
        long left = bits - (long)i * 8;
        rule->mask[i] = left >= 8 ? 0xff : left <= 0 ? 0 : (unsigned char)(0xff << (8 - left));
        if (rule->addr[i] & ~rule->mask[i])
            meaningless = 1;
        rule->addr[i] &= rule->mask[i];
    }
    if (meaningless)
        rp_conf_warn(cf, "low address bits of %s are meaningless", text);
    return NULL;
}

static const char *set_rule(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    access_loc_conf_t *lc = conf;
    const char *v = cf->argv[1];
    access_rule_t rule;
    memset(&rule, 0, sizeof(rule));
    rule.deny = cmd->post != NULL;
    if (strcmp(v, "all") == 0) {
        rule.family = 0;
    } else if (strcmp(v, "unix:") == 0) {
        rule.family = AF_UNIX;
    } else if (parse_cidr(cf, v, &rule) != NULL) {
        return rp_conf_error(cf,
                             "invalid parameter \"%s\": an address, a CIDR network "
                             "(10.0.0.0/8, 2001:db8::/32), \"unix:\" or \"all\"",
                             v);
    }
    if (lc->rules == NULL) {
        lc->rules = rp_arena_calloc(cf->arena, sizeof(*lc->rules));
        rp_array_init(lc->rules, cf->arena, 4, sizeof(access_rule_t));
    }
    *(access_rule_t *)rp_array_push(lc->rules) = rule;
    access_main_conf_t *m = cf->http_ctx->main_conf[rp_http_access_module.index];
    m->used = 1;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    access_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_http_access_module);
    if (m && m->used)
        rp_http_add_phase_handler(cf, RP_PHASE_ACCESS, access_handler);
    return RP_CONF_OK;
}

#define WHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"allow", WHERE, 0, 1, 1, set_rule, RP_CONF_LOC, 0, NULL},
    {"deny", WHERE, 0, 1, 1, set_rule, RP_CONF_LOC, 0, "deny"},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_access_module = {
    .name = "http_access",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
