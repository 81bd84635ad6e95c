/*
 * The health module's directives and process hooks:
 *
 *   upstream NAME {
 *       health_check [interval=2s] [jitter=10%|TIME] [timeout=1s] [rise=2] [fall=3]
 *                    [uri=/] [port=N] [type=http|tcp|grpc] [tls] [mandatory]
 *                    [match=NAME] [grpc_service=NAME] [header="Name: value"]...;
 *   }
 *   match NAME { status ...; header ...; body ...; }          (http level)
 *
 * nginx Plus's spellings are accepted where it has them: passes= and fails= for rise=
 * and fall=, jitter=TIME, and `persistent` (a kept state is the rule here: peers keep
 * their health across reloads, keyed by upstream and address). The checks are set in
 * the upstream block, not in a location, so every location using the pool shares one
 * set of probes.
 *
 * Once the configuration is read, the targets (upstream and settings) are settled:
 * match names resolved, TLS contexts made. The helper probes them (health_check.c), or
 * the single process with master_process off, which starts over with each
 * configuration it loads, as the resolve module does.
 */
#include "upstream/health.h"
#include "core/process.h"
#include "http/http.h"

#include <ctype.h>
#include <openssl/err.h>
#include <string.h>

typedef struct {
    rp_array_t matches; /* rp_health_match_t * */
    rp_array_t targets; /* rp_health_target_t */
} health_main_conf_t;

static void *create_http_main(rp_conf_t *cf)
{
    health_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->matches, cf->arena, 2, sizeof(void *));
    rp_array_init(&m->targets, cf->arena, 2, sizeof(rp_health_target_t));
    return m;
}

static void *create_ups(rp_conf_t *cf)
{
    rp_health_conf_t *hc = rp_arena_calloc(cf->arena, sizeof(*hc));
    rp_array_init(&hc->headers, cf->arena, 1, sizeof(rp_health_header_t));
    return hc;
}

/* ---- match ---- */

static rp_health_match_t *find_match(health_main_conf_t *m, const char *name)
{
    rp_health_match_t **v = m->matches.elts;
    for (size_t i = 0; i < m->matches.nelts; i++)
        if (strcmp(v[i]->name, name) == 0)
            return v[i];
    return NULL;
}

static const char *match_entry(rp_conf_t *cf, void *data)
{
    const char *err = rp_health_match_parse(cf->arena, data, cf->argv, cf->argc);
    return err ? rp_conf_error(cf, "%s", err) : RP_CONF_OK;
}

static const char *set_match(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    health_main_conf_t *m = conf;
    rp_health_match_t *dup = find_match(m, cf->argv[1]);
    if (dup)
        return rp_conf_error(cf, "duplicate match \"%s\", first defined at %s:%u", cf->argv[1],
                             dup->file, dup->line);
    rp_health_match_t *hm = rp_arena_calloc(cf->arena, sizeof(*hm));
    hm->name = cf->argv[1];
    hm->file = cf->file;
    hm->line = cf->line;
    rp_array_init(&hm->tests, cf->arena, 4, sizeof(rp_health_test_t));
    *(rp_health_match_t **)rp_array_push(&m->matches) = hm;
    return rp_conf_parse_entries(cf, RP_CTX_HTTP, match_entry, hm);
}

/* ---- health_check ---- */

static int token_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* header="Name: value": a request header every probe sends. */
static const char *add_header(rp_conf_t *cf, rp_health_conf_t *hc, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg)
        return rp_conf_error(cf, "invalid header \"%s\" (header=\"Name: value\")", arg);
    for (const char *p = arg; p < colon; p++)
        if (!token_char((unsigned char)*p))
            return rp_conf_error(cf, "invalid header name in \"%s\"", arg);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return rp_conf_error(cf, "invalid header value in \"%s\"", arg);
    rp_health_header_t *h = rp_array_push(&hc->headers);
    h->name = rp_arena_strndup(cf->arena, arg, (size_t)(colon - arg));
    h->value = rp_arena_strdup(cf->arena, v);
    size_t n = strlen(h->value);
    while (n && (h->value[n - 1] == ' ' || h->value[n - 1] == '\t'))
        h->value[--n] = '\0';
    if (strcasecmp(h->name, "connection") == 0)
        return rp_conf_error(cf, "a probe's \"Connection\" header is always \"close\"");
    if (strcasecmp(h->name, "host") == 0)
        hc->has_host = 1;
    return RP_CONF_OK;
}

static const char *parse_count(rp_conf_t *cf, const char *arg, const char *v, unsigned *out)
{
    long n;
    if (rp_parse_int(v, 1000, &n) != 0 || n < 1)
        return rp_conf_error(cf, "invalid value \"%s\" (a count from 1 to 1000)", arg);
    *out = (unsigned)n;
    return RP_CONF_OK;
}

static const char *set_health_check(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_health_conf_t *hc = conf;
    rp_upstream_conf_t *u = cf->ups_conf[rp_upstream_module.index];
    if (hc->enabled)
        return "is duplicate";
    hc->enabled = 1;
    hc->type = RP_HC_HTTP;
    hc->interval = 2000;
    hc->timeout = 1000;
    hc->jitter = -1;
    hc->jitter_pct = 10;
    hc->rise = 2;
    hc->fall = 3;
    hc->uri = "/";
    hc->grpc_service = "";
    hc->file = cf->file;
    hc->line = cf->line;
    int mandatory = 0, has_uri = 0, has_service = 0;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        const char *eq = strchr(a, '=');
        const char *v = eq ? eq + 1 : "";
        size_t klen = eq ? (size_t)(eq - a) : strlen(a);
#define KEY(k) (klen == sizeof(k) - 1 && strncmp(a, k, klen) == 0)
        const char *err = RP_CONF_OK;
        if (eq == NULL && strcmp(a, "tls") == 0) {
            hc->tls = 1;
        } else if (eq == NULL && strcmp(a, "mandatory") == 0) {
            mandatory = 1;
        } else if (eq == NULL && strcmp(a, "persistent") == 0) {
            /* nginx Plus's: keep the state over a reload, which is always so here */
        } else if (eq && KEY("interval")) {
            if (rp_parse_msec(v, &hc->interval) != 0 || hc->interval <= 0)
                return rp_conf_error(cf, "invalid interval \"%s\"", v);
        } else if (eq && KEY("timeout")) {
            if (rp_parse_msec(v, &hc->timeout) != 0 || hc->timeout <= 0)
                return rp_conf_error(cf, "invalid timeout \"%s\"", v);
        } else if (eq && KEY("jitter")) {
            size_t n = strlen(v);
            long pct;
            if (n > 1 && v[n - 1] == '%') {
                char num[16];
                if (n - 1 >= sizeof(num))
                    return rp_conf_error(cf, "invalid jitter \"%s\"", v);
                memcpy(num, v, n - 1);
                num[n - 1] = '\0';
                if (rp_parse_int(num, 100, &pct) != 0)
                    return rp_conf_error(cf, "invalid jitter \"%s\" (0%% to 100%%, or a time)", v);
                hc->jitter = -1;
                hc->jitter_pct = (int)pct;
            } else if (rp_parse_msec(v, &hc->jitter) != 0) {
                return rp_conf_error(cf, "invalid jitter \"%s\" (0%% to 100%%, or a time)", v);
            }
        } else if (eq && (KEY("rise") || KEY("passes"))) {
            err = parse_count(cf, a, v, &hc->rise);
        } else if (eq && (KEY("fall") || KEY("fails"))) {
            err = parse_count(cf, a, v, &hc->fall);
        } else if (eq && KEY("uri")) {
            if (v[0] != '/')
                return rp_conf_error(cf, "invalid uri \"%s\" (it starts with \"/\")", v);
            for (const char *p = v; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                    return rp_conf_error(cf, "invalid uri \"%s\"", v);
            hc->uri = (char *)v;
            has_uri = 1;
        } else if (eq && KEY("port")) {
            long port;
            if (rp_parse_int(v, 65535, &port) != 0 || port < 1)
                return rp_conf_error(cf, "invalid port \"%s\"", v);
            hc->port = (int)port;
        } else if (eq && KEY("type")) {
            if (strcmp(v, "http") == 0)
                hc->type = RP_HC_HTTP;
            else if (strcmp(v, "tcp") == 0)
                hc->type = RP_HC_TCP;
            else if (strcmp(v, "grpc") == 0)
                hc->type = RP_HC_GRPC;
            else
                return rp_conf_error(cf, "invalid type \"%s\" (http, tcp or grpc)", v);
        } else if (eq && KEY("match")) {
            if (*v == '\0')
                return rp_conf_error(cf, "invalid parameter \"%s\"", a);
            hc->match_name = (char *)v;
        } else if (eq && KEY("grpc_service")) {
            if (strlen(v) > 1024)
                return rp_conf_error(cf, "invalid grpc_service (longer than 1024 bytes)");
            hc->grpc_service = (char *)v;
            has_service = 1;
        } else if (eq && KEY("header")) {
            /* header="Name: value": the lexer, like nginx's, takes a quote only at the
             * start of a word, so this arrives as header="Name: and value" */
            if (v[0] == '"') {
                size_t vlen = strlen(v);
                const char *joined = v + 1;
                while (vlen < 2 || v[vlen - 1] != '"') {
                    if (++i == cf->argc)
                        return rp_conf_error(cf, "unterminated quote in \"%s\"", a);
                    joined = rp_arena_sprintf(cf->arena, "%s %s", joined, cf->argv[i]);
                    v = cf->argv[i];
                    vlen = strlen(v);
                }
                size_t jlen = strlen(joined);
                v = rp_arena_strndup(cf->arena, joined, jlen - 1);
            }
            err = add_header(cf, hc, v);
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
#undef KEY
        if (err != RP_CONF_OK)
            return err;
    }
    if (hc->type != RP_HC_HTTP && (has_uri || hc->match_name))
        return rp_conf_error(cf, "\"%s\" needs type=http", has_uri ? "uri" : "match");
    if (hc->type != RP_HC_HTTP && hc->headers.nelts)
        return rp_conf_error(cf, "\"header\" needs type=http");
    if (has_service && hc->type != RP_HC_GRPC)
        return rp_conf_error(cf, "\"grpc_service\" needs type=grpc");
    u->health_checks = 1;
    u->health_mandatory = (unsigned)mandatory;
    return RP_CONF_OK;
}

/* ---- once the configuration is read ---- */

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* The client context of an upstream's TLS probes. Verification is off: a probe asks
 * whether the peer answers, and the proxy's own connections verify what they carry. */
static const char *make_ssl_ctx(rp_conf_t *cf, rp_health_conf_t *hc)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        ERR_clear_error();
        return rp_conf_error(cf, "cannot create a TLS context");
    }
    rp_arena_cleanup(cf->arena, free_ctx, ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* a write that must wait is retried from the probe's buffer, which may move */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char alpn_h2[] = {2, 'h', '2'};
    static const unsigned char alpn_h1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    int rc = hc->type == RP_HC_GRPC   ? SSL_CTX_set_alpn_protos(ctx, alpn_h2, sizeof(alpn_h2))
             : hc->type == RP_HC_HTTP ? SSL_CTX_set_alpn_protos(ctx, alpn_h1, sizeof(alpn_h1))
                                      : 0;
    if (rc != 0) {
        ERR_clear_error();
        return rp_conf_error(cf, "cannot set ALPN on a TLS context");
    }
    hc->ssl_ctx = ctx;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    health_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_health_module);
    if (um == NULL || m == NULL)
        return RP_CONF_OK;
    rp_upstream_conf_t **ups = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = ups[i];
        rp_health_conf_t *hc = u->module_conf ? u->module_conf[rp_health_module.index] : NULL;
        if (hc == NULL || !hc->enabled)
            continue;
        char *argv[] = {"health_check", NULL};
        cf->file = hc->file;
        cf->line = hc->line;
        cf->argv = argv;
        cf->argc = 1;
        if (hc->match_name && (hc->match = find_match(m, hc->match_name)) == NULL) {
            rp_conf_error(cf, "no match \"%s\" is defined", hc->match_name);
            cf->argv = NULL;
            return RP_CONF_ERROR;
        }
        if (hc->tls && make_ssl_ctx(cf, hc) != RP_CONF_OK) {
            cf->argv = NULL;
            return RP_CONF_ERROR;
        }
        cf->argv = NULL;
        rp_health_target_t *t = rp_array_push(&m->targets);
        t->u = u;
        t->hc = hc;
    }
    return RP_CONF_OK;
}

/* ---- process hooks ---- */

static rp_health_runtime_t *start(rp_cycle_t *cycle)
{
    health_main_conf_t *m = rp_http_main_conf(cycle, &rp_health_module);
    if (m == NULL)
        return NULL;
    return rp_health_start(m->targets.elts, (unsigned)m->targets.nelts);
}

static rp_health_runtime_t *runtime;

static int init_helper(rp_cycle_t *cycle)
{
    runtime = start(cycle);
    return 0;
}

static void exit_helper(rp_cycle_t *cycle)
{
    rp_health_stop(runtime);
    runtime = NULL;
}

/* master_process off: no helper, so the one process probes, for the configuration it
 * serves now (a reload stops the old one's probes and starts the new one's). */
static int init_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE)
        runtime = start(cycle);
    return 0;
}

static void stop_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE) {
        rp_health_stop(runtime);
        runtime = NULL;
    }
}

static const rp_command_t commands[] = {
    {"health_check", RP_CTX_UPSTREAM, 0, 0, RP_ARGS_ANY, set_health_check, RP_CONF_UPS, 0, NULL},
    {"match", RP_CTX_HTTP, RP_CMD_BLOCK, 1, 1, set_match, RP_CONF_HTTP_MAIN, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_health_module = {
    .name = "health",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_ups = create_ups,
    .postconfiguration = postconfiguration,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
    .exit_worker = stop_worker,
    .init_helper = init_helper,
    .exit_helper = exit_helper,
};
