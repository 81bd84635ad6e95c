/*
 * `limit_rate RATE` and `limit_rate_after SIZE`, as nginx: a response body goes
 * to the client no faster than RATE bytes per second, after its first SIZE bytes
 * went at full speed; `set $limit_rate` changes the rate of one request. The
 * limit is per request (an HTTP/2 stream is a request), with nginx's one second
 * of allowance: by the time t seconds have passed since the body began,
 * RATE * (t + 1) bytes beyond limit_rate_after may have gone.
 *
 * It is a body filter that waits: what the rate does not allow yet is held back
 * (counted in r->held, so the producer stops and waits for on_drain, and memory
 * stays at one producer's write) and let go by a timer of the request. A request
 * without a rate costs one comparison per write.
 *
 * `map ... $limit_rate { ... }` sets the rate too (nginx before 1.17 documented it
 * so): the map takes the variable over, and a request whose rate `set` did not
 * give reads the map's value (a size) as its rate, the location's when the map
 * gives none or no size.
 */
#include "http/request.h"
#include "http/variables.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#define PIECE (16 * 1024) /* let go at most this much at a time, so the pace is smooth */

typedef struct {
    size_t rate, after;
} limit_rate_conf_t;

typedef struct {
    const rp_var_t *mapped; /* $limit_rate when a map defines it, else NULL */
} limit_rate_main_t;

typedef struct {
    size_t rate, after; /* this request's: the location's, or what `set $limit_rate` said */
    unsigned rate_set : 1;
    int64_t sent;       /* body bytes let go */
    struct evbuffer *held;
    rp_http_timer_t *timer;
    unsigned started : 1; /* the body began: the clock runs */
    unsigned last : 1;    /* the end of the body is held too */
    unsigned flush : 1;
    unsigned failed : 1;
    const rp_http_body_filter_t *self;
} limit_rate_ctx_t;

static void *create_loc(rp_conf_t *cf)
{
    limit_rate_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->rate = RP_CONF_UNSET_SIZE;
    c->after = RP_CONF_UNSET_SIZE;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    limit_rate_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->rate, p->rate, RP_CONF_UNSET_SIZE, 0);
    RP_CONF_MERGE(c->after, p->after, RP_CONF_UNSET_SIZE, 0);
    return RP_CONF_OK;
}

static void held_cleanup(rp_request_t *r, void *data)
{
    limit_rate_ctx_t *ctx = data;
    evbuffer_free(ctx->held);
    ctx->held = NULL;
    r->held = 0;
}

static limit_rate_ctx_t *get_ctx(rp_request_t *r)
{
    limit_rate_ctx_t *ctx = rp_http_get_ctx(r, rp_http_limit_rate_module);
    if (ctx == NULL) {
        ctx = rp_arena_calloc(r->arena, sizeof(*ctx));
        rp_http_set_ctx(r, rp_http_limit_rate_module, ctx);
    }
    return ctx;
}

static int parse_rate(rp_str_t value, size_t *rate)
{
    char buf[32];
    if (value.len == 0 || value.len >= sizeof(buf))
        return -1;
    memcpy(buf, value.data, value.len);
    buf[value.len] = '\0';
    return rp_parse_size(buf, rate);
}

/* The location's rate, unless `set $limit_rate` gave this request its own or a map of
 * $limit_rate gives one. */
static size_t rate_of(rp_request_t *r, const limit_rate_ctx_t *ctx)
{
    limit_rate_conf_t *conf = r->loc_conf[rp_http_limit_rate_module.index];
    if (ctx && ctx->rate_set)
        return ctx->rate;
    limit_rate_main_t *m = r->srv->ctx->main_conf[rp_http_limit_rate_module.index];
    rp_str_t value;
    size_t rate;
    if (m->mapped && rp_var_get(r, m->mapped, &value) == 0 && parse_rate(value, &rate) == 0)
        return rate;
    return conf->rate;
}

/* Bytes the rate allows to go now (may be negative: ahead of the pace). The clock is the
 * request's, as nginx's: what the response waited for counts as allowance. */
static int64_t allowance(const rp_request_t *r, const limit_rate_ctx_t *ctx)
{
    if (ctx->rate == 0)
        return INT64_MAX; /* `set $limit_rate 0` lifted it */
    int64_t ms = rp_time_ms_since(&r->start);
    if (ms < 0)
        ms = 0;
    return (int64_t)ctx->rate * (ms + 1000) / 1000 - (ctx->sent - (int64_t)ctx->after);
}

static void on_timer(rp_request_t *r, void *data);

/* Lets go what the rate allows and arms the timer for the rest: 0, 1 when the end went
 * too (the request may be gone), or -1 when the client is gone. */
static int pump(rp_request_t *r, limit_rate_ctx_t *ctx)
{
    size_t held = evbuffer_get_length(ctx->held);
    while (held > 0) {
        int64_t may = allowance(r, ctx);
        if (may <= 0) {
            /* when the next PIECE (or what is left) is allowed */
            int64_t need = (int64_t)(held < PIECE ? held : PIECE) - may;
            int64_t wait = need * 1000 / (int64_t)ctx->rate;
            if (ctx->timer == NULL)
                ctx->timer = rp_http_timer_new(r, on_timer, ctx);
            rp_http_timer_add(ctx->timer, wait < 1 ? 1 : wait);
            r->held = held;
            return 0;
        }
        size_t n = held;
        if ((int64_t)n > may)
            n = (size_t)may;
        if (n > PIECE)
            n = PIECE;
        struct iovec iov = {evbuffer_pullup(ctx->held, (ssize_t)n), n};
        ctx->sent += (int64_t)n;
        held -= n;
        unsigned flags = held == 0 && ctx->flush ? RP_BODY_FLUSH : 0;
        int rc = rp_http_next_body(r, ctx->self, &iov, 1, flags);
        evbuffer_drain(ctx->held, n);
        if (rc != 0)
            return -1;
    }
    r->held = 0;
    ctx->flush = 0;
    if (ctx->last) {
        /* the end: the request may be gone once it returns, so nothing of it is touched */
        ctx->last = 0;
        rp_http_next_body(r, ctx->self, NULL, 0, RP_BODY_LAST);
        return 1;
    }
    return 0;
}

static void on_timer(rp_request_t *r, void *data)
{
    limit_rate_ctx_t *ctx = data;
    int rc = pump(r, ctx);
    if (rc > 0)
        return; /* the response ended */
    if (rc < 0) {
        ctx->failed = 1;
        rp_http_abort(r);
        return;
    }
    if (r->held == 0)
        rp_http_filter_drained(r); /* the producer may go on */
}

static int body_filter(rp_request_t *r, const rp_http_body_filter_t *self, const struct iovec *iov,
                       int iovcnt, unsigned flags)
{
    limit_rate_ctx_t *ctx = rp_http_get_ctx(r, rp_http_limit_rate_module);
    if (ctx && ctx->failed)
        return -1;
    if (r->head || (ctx == NULL && rate_of(r, NULL) == 0))
        return rp_http_next_body(r, self, iov, iovcnt, flags);
    ctx = get_ctx(r);
    if (!ctx->started) {
        /* the rate and the allowance are the location's as the body begins */
        limit_rate_conf_t *conf = r->loc_conf[rp_http_limit_rate_module.index];
        ctx->started = 1;
        ctx->rate = rate_of(r, ctx);
        ctx->after = conf->after;
    }
    if (ctx->rate == 0 && (ctx->held == NULL || evbuffer_get_length(ctx->held) == 0))
        return rp_http_next_body(r, self, iov, iovcnt, flags);
    ctx->self = self;
    size_t n = 0;
    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    size_t held = ctx->held ? evbuffer_get_length(ctx->held) : 0;
    if (held == 0 && (int64_t)n <= allowance(r, ctx)) {
        /* within the pace: straight through, no copy */
        ctx->sent += (int64_t)n;
        return rp_http_next_body(r, self, iov, iovcnt, flags);
    }
    if (ctx->held == NULL) {
        ctx->held = evbuffer_new();
        rp_http_cleanup_add(r, held_cleanup, ctx);
    }
    for (int i = 0; i < iovcnt; i++)
        evbuffer_add(ctx->held, iov[i].iov_base, iov[i].iov_len);
    if (flags & RP_BODY_LAST)
        ctx->last = 1;
    if (flags & RP_BODY_FLUSH)
        ctx->flush = 1;
    if (ctx->timer && rp_http_timer_pending(ctx->timer)) {
        r->held = evbuffer_get_length(ctx->held);
        return 0; /* the timer lets it go */
    }
    return pump(r, ctx) < 0 ? -1 : 0;
}

/* $limit_rate: the request's rate, which `set $limit_rate` changes. */
static int get_limit_rate(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%zu", rate_of(r, rp_http_get_ctx(r, rp_http_limit_rate_module)));
    size_t n = strlen(buf);
    *out = (rp_str_t){rp_arena_strndup(r->arena, buf, n), n};
    return 0;
}

static void set_limit_rate(rp_request_t *r, const rp_var_t *v, rp_str_t value)
{
    size_t rate;
    if (parse_rate(value, &rate) == 0) {
        limit_rate_ctx_t *ctx = get_ctx(r);
        ctx->rate = rate;
        ctx->rate_set = 1;
    }
}

/* An upstream's X-Accel-Limit-Rate (proxy_response.c): this response's rate, as `set
 * $limit_rate` would; 0 turns the limit off. */
void rp_http_limit_rate_set(rp_request_t *r, size_t rate);
void rp_http_limit_rate_set(rp_request_t *r, size_t rate)
{
    limit_rate_ctx_t *ctx = get_ctx(r);
    ctx->rate = rate;
    ctx->rate_set = 1;
}

static const rp_var_def_t variables[] = {
    {"limit_rate", get_limit_rate, set_limit_rate, RP_VAR_CHANGEABLE | RP_VAR_NOCACHE, 0},
    {NULL, NULL, NULL, 0, 0},
};

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, variables);
}

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(limit_rate_main_t));
}

static const char *postconfiguration(rp_conf_t *cf)
{
    limit_rate_main_t *m = rp_http_main_conf(cf->cycle, &rp_http_limit_rate_module);
    rp_var_t *v = rp_var_find(cf, "limit_rate", 10);
    if (m && v && v->get != get_limit_rate) {
        rp_var_use(cf, v); /* a map took it over */
        m->mapped = v;
    }
    rp_http_add_body_filter(cf, RP_FILTER_LIMIT_RATE, "limit_rate", body_filter);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"limit_rate", ANYWHERE | RP_CTX_LIF, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC,
     offsetof(limit_rate_conf_t, rate), NULL},
    {"limit_rate_after", ANYWHERE | RP_CTX_LIF, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC,
     offsetof(limit_rate_conf_t, after), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_limit_rate_module = {
    .name = "http_limit_rate",
    .commands = commands,
    .preconfiguration = preconfiguration,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
