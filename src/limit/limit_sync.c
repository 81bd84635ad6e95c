/*
 * Sharing limits between gateway nodes through Redis (issue 12): the directives,
 *
 *   http {
 *       limit_sync redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] [interval=10ms]
 *                  [timeout=TIME] [tls];
 *       limit_sync_ssl_verify on|off;                 (off)
 *       limit_sync_ssl_trusted_certificate FILE;
 *       limit_sync_ssl_name NAME;                     (the URL's host)
 *       limit_sync_ssl_certificate FILE;
 *       limit_sync_ssl_certificate_key FILE;
 *   }
 *
 * the registry of the zones declared with `sync` (rp_limit_sync_zone, the seam of
 * limit.h), and the process hooks that run the engine (limit_sync_conn.c) in the
 * helper, or in the single process with master_process off, as the health checks do.
 *
 * Everything that can be wrong is found at load time, with the file and line of the
 * directive at fault: a bad URL or option, a host with no address, a `sync` zone with
 * no limit_sync to share it through, TLS settings without `tls`, a certificate that
 * does not load. The host is resolved then, as nginx resolves proxy_pass hosts; a
 * reload resolves it again.
 */
#include "limit/limit_sync.h"
#include "core/process.h"
#include "http/http.h"
#include "net/listen.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* A directive's value with its place, for messages that point at it. */
typedef struct {
    const char *value;
    const char *file;
    unsigned line;
} placed_t;

typedef struct {
    rp_limit_sync_conf_t sync;
    int set; /* limit_sync was given */
    const char *file;
    unsigned line;
    rp_array_t zones; /* rp_limit_sync_zone_t */
    placed_t trusted, certificate, certificate_key, name, verify;
    int ssl_verify;
} sync_main_conf_t;

static void *create_http_main(rp_conf_t *cf)
{
    sync_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->zones, cf->arena, 2, sizeof(rp_limit_sync_zone_t));
    return m;
}

/* Formats an error at a place other than the directive being read. */
static const char *error_at(rp_conf_t *cf, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static const char *error_at(rp_conf_t *cf, const char *file, unsigned line, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(cf->error, sizeof(cf->error), "%s:%u: %s", file, line, msg);
    return RP_CONF_ERROR;
}

/* ---- the seam: zones declared with `sync` ---- */

const char *rp_limit_sync_zone(rp_conf_t *cf, rp_shm_zone_t *zone, const char *name,
                               const rp_limit_sync_ops_t *ops)
{
    if (cf->http_ctx == NULL)
        return "\"sync\" is only possible in the http block";
    sync_main_conf_t *m = cf->http_ctx->main_conf[rp_limit_sync_module.index];
    if (name[0] == '\0')
        return "a \"sync\" zone needs a name";
    /* the name is a part of the Redis keys, between colons */
    for (const char *p = name; *p; p++)
        if (*p == ':' || (unsigned char)*p <= 0x20 || *p == 0x7f)
            return rp_arena_sprintf(cf->arena,
                                    "the name of a \"sync\" zone is part of its Redis keys: "
                                    "\"%s\" may not hold \":\", spaces or control characters",
                                    name);
    rp_limit_sync_zone_t *z = m->zones.elts;
    for (size_t i = 0; i < m->zones.nelts; i++) {
        if (z[i].zone == zone)
            return NULL;
        if (strcmp(z[i].name, name) == 0)
            return rp_arena_sprintf(cf->arena,
                                    "zone \"%s\" is already shared with \"sync\" at %s:%u", name,
                                    z[i].file, z[i].line);
    }
    rp_limit_sync_zone_t *nz = rp_array_push(&m->zones);
    nz->zone = zone;
    nz->ops = ops;
    nz->name = rp_arena_strdup(cf->arena, name);
    nz->directive = rp_arena_strdup(cf->arena, cf->argv ? cf->argv[0] : "");
    nz->file = cf->file;
    nz->line = cf->line;
    return NULL;
}

/* ---- limit_sync ---- */

static const char *set_limit_sync(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    sync_main_conf_t *m = conf;
    rp_limit_sync_conf_t *s = &m->sync;
    if (m->set)
        return "is duplicate";
    const char *err = rp_limit_sync_parse_url(cf->arena, cf->argv[1], &s->url);
    if (err)
        return rp_conf_error(cf, "%s", err);
    s->tls = s->url.tls;
    s->interval = 10;
    s->timeout = -1;
    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        if (strcmp(a, "tls") == 0) {
            s->tls = 1;
        } else if (strncmp(a, "interval=", 9) == 0) {
            if (rp_parse_msec(a + 9, &s->interval) != 0 || s->interval < 1 || s->interval > 60000)
                return rp_conf_error(cf, "invalid interval \"%s\" (1ms to 60s)", a + 9);
        } else if (strncmp(a, "timeout=", 8) == 0) {
            if (rp_parse_msec(a + 8, &s->timeout) != 0 || s->timeout < 1 || s->timeout > 600000)
                return rp_conf_error(cf, "invalid timeout \"%s\" (1ms to 10m)", a + 8);
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }
    if (s->timeout < 0)
        s->timeout = rp_limit_sync_default_timeout(s->interval);
    s->naddrs =
        rp_addr_lookup(s->url.host, s->url.port, s->addrs, s->lens, RP_LIMIT_SYNC_MAX_ADDRS);
    if (s->naddrs == 0)
        return rp_conf_error(cf, "host not found in \"%s\"", s->url.host);
    m->set = 1;
    m->file = cf->file;
    m->line = cf->line;
    return RP_CONF_OK;
}

static const char *set_placed(rp_conf_t *cf, placed_t *p, const char *value)
{
    if (p->value)
        return "is duplicate";
    p->value = value;
    p->file = cf->file;
    p->line = cf->line;
    return RP_CONF_OK;
}

static const char *set_ssl_file(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    placed_t *p = (placed_t *)((char *)conf + cmd->offset);
    return set_placed(cf, p, rp_conf_conf_path(cf, cf->argv[1]));
}

static const char *set_ssl_name(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    sync_main_conf_t *m = conf;
    const char *v = cf->argv[1];
    if (v[0] == '\0' || strlen(v) > 255)
        return rp_conf_error(cf, "invalid name \"%s\"", v);
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return rp_conf_error(cf, "invalid name \"%s\"", v);
    return set_placed(cf, &m->name, v);
}

static const char *set_ssl_verify(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    sync_main_conf_t *m = conf;
    int on;
    if (rp_parse_flag(cf->argv[1], &on) != 0)
        return rp_conf_error(cf, "invalid value \"%s\" (on or off)", cf->argv[1]);
    const char *err = set_placed(cf, &m->verify, cf->argv[1]);
    if (err == RP_CONF_OK)
        m->ssl_verify = on;
    return err;
}

/* ---- once the configuration is read ---- */

static void free_ctx(void *ctx)
{
    SSL_CTX_free(ctx);
}

static const char *ssl_error_text(rp_conf_t *cf)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    ERR_clear_error();
    return rp_arena_strdup(cf->arena, buf);
}

/* The client context for `tls`: TLS 1.2 and up, trust, the client certificate. */
static const char *make_ssl_ctx(rp_conf_t *cf, sync_main_conf_t *m)
{
    rp_limit_sync_conf_t *s = &m->sync;
    if (m->ssl_verify && m->trusted.value == NULL)
        return error_at(cf, m->verify.file, m->verify.line,
                        "\"limit_sync_ssl_verify\": no \"limit_sync_ssl_trusted_certificate\" "
                        "is defined for it");
    if (m->certificate.value && m->certificate_key.value == NULL)
        return error_at(cf, m->certificate.file, m->certificate.line,
                        "\"limit_sync_ssl_certificate\": no \"limit_sync_ssl_certificate_key\" "
                        "is defined for certificate \"%s\"",
                        m->certificate.value);
    if (m->certificate_key.value && m->certificate.value == NULL)
        return error_at(cf, m->certificate_key.file, m->certificate_key.line,
                        "\"limit_sync_ssl_certificate_key\": no \"limit_sync_ssl_certificate\" "
                        "is defined for key \"%s\"",
                        m->certificate_key.value);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return error_at(cf, m->file, m->line, "\"limit_sync\": cannot create a TLS context: %s",
                        ssl_error_text(cf));
    rp_arena_cleanup(cf->arena, free_ctx, ctx);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (m->trusted.value && SSL_CTX_load_verify_locations(ctx, m->trusted.value, NULL) != 1)
        return error_at(cf, m->trusted.file, m->trusted.line,
                        "\"limit_sync_ssl_trusted_certificate\": cannot load \"%s\": %s",
                        m->trusted.value, ssl_error_text(cf));
    SSL_CTX_set_verify(ctx, m->ssl_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (m->certificate.value) {
        if (SSL_CTX_use_certificate_chain_file(ctx, m->certificate.value) != 1)
            return error_at(cf, m->certificate.file, m->certificate.line,
                            "\"limit_sync_ssl_certificate\": cannot load \"%s\": %s",
                            m->certificate.value, ssl_error_text(cf));
        if (SSL_CTX_use_PrivateKey_file(ctx, m->certificate_key.value, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1)
            return error_at(cf, m->certificate_key.file, m->certificate_key.line,
                            "\"limit_sync_ssl_certificate_key\": cannot use \"%s\" with \"%s\": %s",
                            m->certificate_key.value, m->certificate.value, ssl_error_text(cf));
    }
    s->ssl_ctx = ctx;
    s->ssl_name = m->name.value ? m->name.value : s->url.host;
    struct sockaddr_storage ss;
    socklen_t len;
    s->ssl_name_is_ip = rp_addr_literal(s->ssl_name, 0, &ss, &len) == 0;
    s->ssl_verify = m->ssl_verify;
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    sync_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_limit_sync_module);
    if (m == NULL)
        return RP_CONF_OK;
    rp_limit_sync_zone_t *z = m->zones.elts;
    if (m->zones.nelts && !m->set)
        return error_at(cf, z[0].file, z[0].line,
                        "\"%s\": zone \"%s\" is declared \"sync\", but no \"limit_sync\" in the "
                        "http block names the Redis server to share it through",
                        z[0].directive, z[0].name);
    const placed_t *tls_only[] = {&m->verify, &m->trusted, &m->name, &m->certificate,
                                  &m->certificate_key};
    const char *names[] = {"limit_sync_ssl_verify", "limit_sync_ssl_trusted_certificate",
                           "limit_sync_ssl_name", "limit_sync_ssl_certificate",
                           "limit_sync_ssl_certificate_key"};
    for (size_t i = 0; i < sizeof(tls_only) / sizeof(tls_only[0]); i++)
        if (tls_only[i]->value && !(m->set && m->sync.tls))
            return error_at(cf, tls_only[i]->file, tls_only[i]->line, "\"%s\": %s", names[i],
                            m->set ? "the \"limit_sync\" connection has no \"tls\""
                                   : "there is no \"limit_sync\" with \"tls\"");
    if (!m->set)
        return RP_CONF_OK;
    if (m->sync.tls && make_ssl_ctx(cf, m) != RP_CONF_OK)
        return RP_CONF_ERROR;
    m->sync.zones = m->zones.elts;
    m->sync.nzones = (unsigned)m->zones.nelts;
    return RP_CONF_OK;
}

/* ---- process hooks ---- */

static rp_limit_sync_engine_t *engine;

static rp_limit_sync_engine_t *start(rp_cycle_t *cycle)
{
    sync_main_conf_t *m = rp_http_main_conf(cycle, &rp_limit_sync_module);
    if (m == NULL || !m->set)
        return NULL;
    return rp_limit_sync_start(&m->sync);
}

static int init_helper(rp_cycle_t *cycle)
{
    engine = start(cycle);
    return 0;
}

static void exit_helper(rp_cycle_t *cycle)
{
    rp_limit_sync_stop(engine);
    engine = NULL;
}

/* master_process off: no helper, so the one process syncs, for the configuration it
 * serves now (a reload stops the old one's engine and starts the new one's). */
static int init_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE)
        engine = start(cycle);
    return 0;
}

static void stop_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE) {
        rp_limit_sync_stop(engine);
        engine = NULL;
    }
}

#define OFF(f) offsetof(sync_main_conf_t, f)

static const rp_command_t commands[] = {
    {"limit_sync", RP_CTX_HTTP, 0, 1, 4, set_limit_sync, RP_CONF_HTTP_MAIN, 0, NULL},
    {"limit_sync_ssl_verify", RP_CTX_HTTP, 0, 1, 1, set_ssl_verify, RP_CONF_HTTP_MAIN, 0, NULL},
    {"limit_sync_ssl_trusted_certificate", RP_CTX_HTTP, 0, 1, 1, set_ssl_file, RP_CONF_HTTP_MAIN,
     OFF(trusted), NULL},
    {"limit_sync_ssl_name", RP_CTX_HTTP, 0, 1, 1, set_ssl_name, RP_CONF_HTTP_MAIN, 0, NULL},
    {"limit_sync_ssl_certificate", RP_CTX_HTTP, 0, 1, 1, set_ssl_file, RP_CONF_HTTP_MAIN,
     OFF(certificate), NULL},
    {"limit_sync_ssl_certificate_key", RP_CTX_HTTP, 0, 1, 1, set_ssl_file, RP_CONF_HTTP_MAIN,
     OFF(certificate_key), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_limit_sync_module = {
    .name = "limit_sync",
    .commands = commands,
    .create_http_main = create_http_main,
    .postconfiguration = postconfiguration,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
    .exit_worker = stop_worker,
    .init_helper = init_helper,
    .exit_helper = exit_helper,
};
