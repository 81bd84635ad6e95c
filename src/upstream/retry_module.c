/*
 * The retry policy's directives, in http, server or location and inherited as any:
 *
 *   retry_on connect-failure refused-stream reset timeout invalid-header
 *            gateway-error 5xx retriable-4xx STATUS... cancelled deadline-exceeded
 *            internal resource-exhausted unavailable | off;
 *   retries N;                         retries after the first try (default: as nginx,
 *                                      one try per peer of the pool)
 *   per_try_timeout TIME;              each try's time to its response head
 *   retry_backoff base=TIME [max=TIME] [retry_after_max=TIME] | off;
 *   retry_non_idempotent on|off;
 *
 * nginx's simple form sets the same policy: proxy_next_upstream (error, timeout,
 * invalid_header, http_500, http_502, http_503, http_504, http_403, http_404,
 * http_429, non_idempotent, off), proxy_next_upstream_tries (tries, 0 for no limit)
 * and proxy_next_upstream_timeout (the deadline for starting another try), and the
 * grpc_next_upstream* forms.
 *
 * In the upstream block: retry_budget PERCENT [min=N] | off (default 20% min=3, as
 * Envoy's budgets), which caps the retries in flight to the upstream, across workers.
 *
 * Backoff: Envoy waits between retries by default; nginx never does. A location that
 * says nothing about retries keeps nginx's behaviour (no wait), one with retry_on or
 * retries gets Envoy's 25 ms base (max 250 ms) unless retry_backoff says otherwise.
 */
#include "upstream/retry.h"
#include "upstream/retry_module.h"
#include "upstream/upstream.h"
#include "http/http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void *create_loc(rp_conf_t *cf)
{
    rp_retry_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->non_idempotent = RP_CONF_UNSET;
    c->retries = RP_CONF_UNSET;
    c->per_try_timeout = RP_CONF_UNSET_MSEC;
    c->deadline = RP_CONF_UNSET_MSEC;
    c->backoff_base = RP_CONF_UNSET_MSEC;
    c->backoff_max = RP_CONF_UNSET_MSEC;
    c->retry_after_max = RP_CONF_UNSET_MSEC;
    return c;
}


static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_retry_conf_t *p = parent, *c = child;
    if (!c->set) {
        c->set = p->set;
        c->on = p->on;
        c->ncodes = p->ncodes;
        memcpy(c->codes, p->codes, sizeof(c->codes));
        c->grpc = p->grpc;
    }
    c->policy |= p->policy;
    RP_CONF_MERGE(c->non_idempotent, p->non_idempotent, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->retries, p->retries, RP_CONF_UNSET, RP_CONF_UNSET);
    RP_CONF_MERGE(c->per_try_timeout, p->per_try_timeout, RP_CONF_UNSET_MSEC, 0);
    RP_CONF_MERGE(c->deadline, p->deadline, RP_CONF_UNSET_MSEC, 0);
    RP_CONF_MERGE(c->retry_after_max, p->retry_after_max, RP_CONF_UNSET_MSEC, 10000);
    if (c->backoff_base == RP_CONF_UNSET_MSEC) {
        c->backoff_base = p->backoff_base;
        c->backoff_max = p->backoff_max;
    }
    if (c->backoff_base == RP_CONF_UNSET_MSEC && c->policy) {
        /* retries asked for by policy: Envoy's backoff unless told otherwise */
        c->backoff_base = 25;
        c->backoff_max = 250;
    }
    return RP_CONF_OK;
}

/* The values a request's attempts use: unset backoff means none. */
const rp_retry_conf_t *rp_retry_conf(rp_request_t *r)
{
    return r->loc_conf[rp_retry_module.index];
}

static const struct {
    const char *word;
    unsigned bit;
} words[] = {
    {"connect-failure", RP_RETRY_ON_CONNECT}, {"refused-stream", RP_RETRY_ON_REFUSED},
    {"reset", RP_RETRY_ON_RESET},             {"timeout", RP_RETRY_ON_TIMEOUT},
    {"invalid-header", RP_RETRY_ON_INVALID},  {"gateway-error", RP_RETRY_ON_GATEWAY},
    {"5xx", RP_RETRY_ON_5XX},                 {"retriable-4xx", RP_RETRY_ON_4XX},
};

static const struct {
    const char *word;
    unsigned code;
} grpc_words[] = {
    {"cancelled", 1}, {"deadline-exceeded", 4}, {"resource-exhausted", 8},
    {"internal", 13}, {"unavailable", 14},
};

static const char *add_code(rp_conf_t *cf, rp_retry_conf_t *c, long code)
{
    for (unsigned i = 0; i < c->ncodes; i++)
        if (c->codes[i] == code)
            return RP_CONF_OK;
    if (c->ncodes == RP_RETRY_MAX_CODES)
        return rp_conf_error(cf, "too many status codes, at most %d", RP_RETRY_MAX_CODES);
    c->codes[c->ncodes++] = (uint16_t)code;
    return RP_CONF_OK;
}

static const char *set_retry_on(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_retry_conf_t *c = conf;
    if (c->set)
        return "is duplicate";
    c->set = 1;
    c->policy = 1;
    if (cf->argc == 2 && strcmp(cf->argv[1], "off") == 0)
        return RP_CONF_OK;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        int found = 0;
        for (size_t k = 0; k < sizeof(words) / sizeof(words[0]) && !found; k++)
            if (strcmp(a, words[k].word) == 0) {
                c->on |= words[k].bit;
                found = 1;
            }
        for (size_t k = 0; k < sizeof(grpc_words) / sizeof(grpc_words[0]) && !found; k++)
            if (strcmp(a, grpc_words[k].word) == 0) {
                c->grpc |= 1u << grpc_words[k].code;
                found = 1;
            }
        if (found)
            continue;
        long code;
        if (rp_parse_int(a, 999, &code) == 0 && code >= 300 && code <= 599) {
            const char *err = add_code(cf, c, code);
            if (err)
                return err;
            continue;
        }
        if (strcmp(a, "off") == 0)
            return rp_conf_error(cf, "\"off\" cannot be combined with other conditions");
        return rp_conf_error(cf, "invalid retry condition \"%s\"", a);
    }
    return RP_CONF_OK;
}

/* nginx's proxy_next_upstream / grpc_next_upstream. */
static const char *set_next_upstream(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_retry_conf_t *c = conf;
    if (c->set)
        return "is duplicate";
    c->set = 1;
    if (cf->argc == 2 && strcmp(cf->argv[1], "off") == 0) {
        c->non_idempotent = 0;
        return RP_CONF_OK;
    }
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strcmp(a, "error") == 0) {
            c->on |= RP_RETRY_ON_CONNECT | RP_RETRY_ON_REFUSED | RP_RETRY_ON_RESET;
        } else if (strcmp(a, "timeout") == 0) {
            c->on |= RP_RETRY_ON_TIMEOUT;
        } else if (strcmp(a, "invalid_header") == 0) {
            c->on |= RP_RETRY_ON_INVALID;
        } else if (strcmp(a, "non_idempotent") == 0) {
            c->non_idempotent = 1;
        } else if (strncmp(a, "http_", 5) == 0) {
            long code;
            if (rp_parse_int(a + 5, 999, &code) != 0 ||
                !(code == 500 || code == 502 || code == 503 || code == 504 || code == 403 ||
                  code == 404 || code == 429))
                return rp_conf_error(cf, "invalid value \"%s\"", a);
            const char *err = add_code(cf, c, code);
            if (err)
                return err;
        } else if (strcmp(a, "off") == 0) {
            return rp_conf_error(cf, "\"off\" cannot be combined with other values");
        } else {
            return rp_conf_error(cf, "invalid value \"%s\"", a);
        }
    }
    return RP_CONF_OK;
}

static const char *set_retries(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_retry_conf_t *c = conf;
    if (c->retries != RP_CONF_UNSET)
        return "is duplicate";
    long n;
    if (rp_parse_int(cf->argv[1], 1000, &n) != 0)
        return rp_conf_error(cf, "invalid number \"%s\"", cf->argv[1]);
    if (strstr(cmd->name, "next_upstream_tries"))
        c->retries = n == 0 ? RP_RETRIES_UNLIMITED : (int)n - 1; /* tries count the first */
    else {
        c->retries = (int)n;
        c->policy = 1;
    }
    return RP_CONF_OK;
}

static const char *set_time(rp_conf_t *cf, int64_t *f)
{
    if (*f != RP_CONF_UNSET_MSEC)
        return "is duplicate";
    if (rp_parse_msec(cf->argv[1], f) != 0)
        return rp_conf_error(cf, "invalid time \"%s\"", cf->argv[1]);
    return RP_CONF_OK;
}

static const char *set_per_try(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_time(cf, &((rp_retry_conf_t *)conf)->per_try_timeout);
}

static const char *set_deadline(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_time(cf, &((rp_retry_conf_t *)conf)->deadline);
}

static const char *set_non_idempotent(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_retry_conf_t *c = conf;
    if (c->non_idempotent != RP_CONF_UNSET)
        return "is duplicate";
    if (rp_parse_flag(cf->argv[1], &c->non_idempotent) != 0)
        return rp_conf_error(cf, "invalid value \"%s\", it must be \"on\" or \"off\"",
                             cf->argv[1]);
    return RP_CONF_OK;
}

/* "name=TIME" into *f: 1 when a is that parameter (*err set when its value is bad), 0
 * when it is another. */
static int param_time(rp_conf_t *cf, const char *a, const char *name, int64_t *f,
                      const char **err)
{
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || a[n] != '=')
        return 0;
    if (rp_parse_msec(a + n + 1, f) != 0)
        *err = rp_conf_error(cf, "invalid time in \"%s\"", a);
    return 1;
}

static const char *set_backoff(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_retry_conf_t *c = conf;
    if (c->backoff_base != RP_CONF_UNSET_MSEC)
        return "is duplicate";
    if (cf->argc == 2 && strcmp(cf->argv[1], "off") == 0) {
        c->backoff_base = 0;
        c->backoff_max = 0;
        return RP_CONF_OK;
    }
    int64_t base = -1, max = -1, ra = -1;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i], *err = RP_CONF_OK;
        if (param_time(cf, a, "base", &base, &err) || param_time(cf, a, "max", &max, &err) ||
            param_time(cf, a, "retry_after_max", &ra, &err)) {
            if (err != RP_CONF_OK)
                return err;
            continue;
        }
        return rp_conf_error(cf, "invalid parameter \"%s\"", a);
    }
    if (base <= 0)
        return rp_conf_error(cf, "\"base=\" must be given and above zero");
    if (max < 0)
        max = base * 10;
    if (max < base)
        return rp_conf_error(cf, "\"max=\" must not be below \"base=\"");
    c->backoff_base = base;
    c->backoff_max = max;
    if (ra >= 0)
        c->retry_after_max = ra;
    return RP_CONF_OK;
}

static const char *set_budget(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    extern rp_module_t rp_upstream_module;
    rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
    if (u->retry_budget_set)
        return "is duplicate";
    u->retry_budget_set = 1;
    if (cf->argc == 2 && strcmp(cf->argv[1], "off") == 0) {
        u->retry_budget_pct = -1;
        return RP_CONF_OK;
    }
    const char *a = cf->argv[1];
    size_t n = strlen(a);
    long pct;
    char buf[16];
    if (n == 0 || n >= sizeof(buf) || a[n - 1] != '%')
        return rp_conf_error(cf, "invalid budget \"%s\", it must be a percentage such as 20%%",
                             a);
    memcpy(buf, a, n - 1);
    buf[n - 1] = '\0';
    if (rp_parse_int(buf, 100, &pct) != 0 || pct == 0)
        return rp_conf_error(cf, "invalid budget \"%s\", it must be 1%% to 100%%", a);
    u->retry_budget_pct = (int)pct;
    for (size_t i = 2; i < cf->argc; i++) {
        long m;
        if (strncmp(cf->argv[i], "min=", 4) != 0 || rp_parse_int(cf->argv[i] + 4, 100000, &m))
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[i]);
        u->retry_budget_min = (int)m;
    }
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"retry_on", ANYWHERE, 0, 1, RP_ARGS_ANY, set_retry_on, RP_CONF_LOC, 0, NULL},
    {"retries", ANYWHERE, 0, 1, 1, set_retries, RP_CONF_LOC, 0, NULL},
    {"per_try_timeout", ANYWHERE, 0, 1, 1, set_per_try, RP_CONF_LOC, 0, NULL},
    {"retry_backoff", ANYWHERE, 0, 1, 4, set_backoff, RP_CONF_LOC, 0, NULL},
    {"retry_non_idempotent", ANYWHERE, 0, 1, 1, set_non_idempotent, RP_CONF_LOC, 0, NULL},
    {"proxy_next_upstream", ANYWHERE, 0, 1, RP_ARGS_ANY, set_next_upstream, RP_CONF_LOC, 0, NULL},
    {"grpc_next_upstream", ANYWHERE, 0, 1, RP_ARGS_ANY, set_next_upstream, RP_CONF_LOC, 0, NULL},
    {"proxy_next_upstream_tries", ANYWHERE, 0, 1, 1, set_retries, RP_CONF_LOC, 0, NULL},
    {"grpc_next_upstream_tries", ANYWHERE, 0, 1, 1, set_retries, RP_CONF_LOC, 0, NULL},
    {"proxy_next_upstream_timeout", ANYWHERE, 0, 1, 1, set_deadline, RP_CONF_LOC, 0, NULL},
    {"grpc_next_upstream_timeout", ANYWHERE, 0, 1, 1, set_deadline, RP_CONF_LOC, 0, NULL},
    {"retry_budget", RP_CTX_UPSTREAM, 0, 1, 2, set_budget, RP_CONF_UPS, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_retry_module = {
    .name = "retry",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
};
