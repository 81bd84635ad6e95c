/*
 * Fault injection for chaos testing, per location, after Envoy's fault filter:
 *
 *   fault_delay TIME [percent=P];               delay P% (default all) of requests
 *   fault_delay header=NAME [max=TIME] [percent=P];
 *                                               delay by what the request's NAME field
 *                                               says (milliseconds, or a time such as
 *                                               "2s"), up to max (default 10s); only
 *                                               requests carrying it
 *   fault_abort CODE [percent=P];               answer P% of requests with CODE
 *   fault_abort header=NAME [percent=P];        answer with the status NAME carries
 *
 * A delay comes first, then an abort, as in Envoy. It runs in the precontent
 * phase (after access control and limits) and suspends the request, never the
 * worker: the handler returns RP_AGAIN and a timer of the request resumes it, so
 * a client that leaves, a reset stream or a stopping worker cancels the wait with
 * the request's other cleanups. The header forms let an operator rehearse a
 * failure in production for chosen requests only.
 */
#include "http/request.h"
#include "core/log.h"
#include "core/random.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_DELAY 10000

typedef struct {
    int64_t ms;           /* fixed; -1 when taken from a header */
    const char *header;   /* lowercase field name, or NULL */
    int64_t max;          /* header delays are capped here */
    unsigned permille;    /* share of requests, in tenths of a percent */
} fault_delay_t;

typedef struct {
    int status;         /* 0 when taken from a header */
    const char *header; /* lowercase field name, or NULL */
    unsigned permille;
} fault_abort_t;

typedef struct {
    fault_delay_t *delay; /* NULL: none here (inherited as a whole) */
    fault_abort_t *abort;
} fault_conf_t;

typedef struct {
    unsigned delayed : 1; /* the delay was decided (and, if any, has passed) */
} fault_ctx_t;

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(fault_conf_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    fault_conf_t *p = parent, *c = child;
    if (c->delay == NULL)
        c->delay = p->delay;
    if (c->abort == NULL)
        c->abort = p->abort;
    return RP_CONF_OK;
}

/* "percent=12.5" into tenths of a percent. */
static const char *parse_percent(rp_conf_t *cf, const char *v, unsigned *permille)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || d < 0 || d > 100)
        return rp_conf_error(cf, "invalid percent \"%s\", it must be 0 to 100", v);
    *permille = (unsigned)(d * 10 + 0.5);
    return RP_CONF_OK;
}

static char *lower_dup(rp_conf_t *cf, const char *s)
{
    char *d = rp_arena_strdup(cf->arena, s);
    for (char *p = d; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    return d;
}

static const char *set_delay(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    fault_conf_t *fc = conf;
    if (fc->delay)
        return "duplicate directive";
    fault_delay_t *d = rp_arena_calloc(cf->arena, sizeof(*d));
    d->permille = 1000;
    d->max = DEFAULT_MAX_DELAY;
    const char *first = cf->argv[1];
    if (strncmp(first, "header=", 7) == 0) {
        if (first[7] == '\0')
            return rp_conf_error(cf, "empty header name in \"%s\"", first);
        d->header = lower_dup(cf, first + 7);
        d->ms = -1;
    } else if (rp_parse_msec(first, &d->ms) != 0) {
        return rp_conf_error(cf, "invalid delay \"%s\"", first);
    }
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strncmp(a, "percent=", 8) == 0) {
            const char *rv = parse_percent(cf, a + 8, &d->permille);
            if (rv != RP_CONF_OK)
                return rv;
        } else if (strncmp(a, "max=", 4) == 0 && d->header) {
            if (rp_parse_msec(a + 4, &d->max) != 0)
                return rp_conf_error(cf, "invalid time in \"%s\"", a);
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    fc->delay = d;
    return RP_CONF_OK;
}

static const char *set_abort(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    fault_conf_t *fc = conf;
    if (fc->abort)
        return "duplicate directive";
    fault_abort_t *a = rp_arena_calloc(cf->arena, sizeof(*a));
    a->permille = 1000;
    const char *first = cf->argv[1];
    long code;
    if (strncmp(first, "header=", 7) == 0) {
        if (first[7] == '\0')
            return rp_conf_error(cf, "empty header name in \"%s\"", first);
        a->header = lower_dup(cf, first + 7);
    } else if (rp_parse_int(first, 599, &code) == 0 && code >= 200) {
        a->status = (int)code;
    } else {
        return rp_conf_error(cf, "invalid status \"%s\", it must be 200 to 599", first);
    }
    for (size_t i = 2; i < cf->argc; i++) {
        if (strncmp(cf->argv[i], "percent=", 8) != 0)
            return rp_conf_error(cf, "invalid parameter \"%s\"", cf->argv[i]);
        const char *rv = parse_percent(cf, cf->argv[i] + 8, &a->permille);
        if (rv != RP_CONF_OK)
            return rv;
    }
    fc->abort = a;
    return RP_CONF_OK;
}

static int chosen(unsigned permille)
{
    return permille >= 1000 || rp_random_below(1000) < permille;
}

/* The delay a request gets: 0 for none. */
static int64_t delay_of(rp_request_t *r, const fault_delay_t *d)
{
    int64_t ms = d->ms;
    if (d->header) {
        rp_str_t v = rp_request_header(r, d->header);
        char buf[32];
        if (v.data == NULL || v.len == 0 || v.len >= sizeof(buf))
            return 0;
        memcpy(buf, v.data, v.len);
        buf[v.len] = '\0';
        if (strspn(buf, "0123456789") == v.len)
            ms = v.len > 12 ? d->max : atoll(buf); /* a plain number is ms, as Envoy's */
        else if (rp_parse_msec(buf, &ms) != 0)
            return 0;
        if (ms > d->max)
            ms = d->max;
    }
    return ms > 0 && chosen(d->permille) ? ms : 0;
}

/* The status an abort answers with: 0 for none. */
static int abort_of(rp_request_t *r, const fault_abort_t *a)
{
    int status = a->status;
    if (a->header) {
        rp_str_t v = rp_request_header(r, a->header);
        status = 0;
        for (size_t i = 0; v.data && i < v.len && i < 4; i++) {
            if (v.data[i] < '0' || v.data[i] > '9') {
                status = 0;
                break;
            }
            status = status * 10 + (v.data[i] - '0');
        }
        if (status < 200 || status > 599)
            return 0;
    }
    return chosen(a->permille) ? status : 0;
}

static int handler(rp_request_t *r)
{
    fault_conf_t *fc = r->loc_conf[rp_http_fault_module.index];
    if (fc->delay == NULL && fc->abort == NULL)
        return RP_DECLINED;
    fault_ctx_t *ctx = rp_http_get_ctx(r, rp_http_fault_module);
    if (ctx == NULL) {
        ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
        rp_http_set_ctx(r, rp_http_fault_module, ctx);
    }
    if (!ctx->delayed) {
        ctx->delayed = 1;
        int64_t ms = fc->delay ? delay_of(r, fc->delay) : 0;
        if (ms > 0) {
            rp_log_error(RP_LOG_INFO, 0, "fault injection: request delayed %lldms",
                         (long long)ms);
            return rp_http_sleep(r, ms); /* called again when the time is up */
        }
    }
    int status = fc->abort ? abort_of(r, fc->abort) : 0;
    if (status) {
        rp_log_error(RP_LOG_INFO, 0, "fault injection: request aborted with %d", status);
        if (status == 444) {
            r->status = 444; /* as `return 444`: no answer, the connection closes */
            rp_http_close_now(r);
            return RP_DONE;
        }
        return rp_http_send_error(r, status);
    }
    return RP_DECLINED;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_PRECONTENT, handler);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"fault_delay", ANYWHERE, 0, 1, 3, set_delay, RP_CONF_LOC, 0, NULL},
    {"fault_abort", ANYWHERE, 0, 1, 2, set_abort, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_fault_module = {
    .name = "http_fault",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
