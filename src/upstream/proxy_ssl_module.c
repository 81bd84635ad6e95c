/*
 * The proxy_ssl_* directives: how a location talks TLS to the servers of a
 * `proxy_pass https://...`. They are set at the http, server or location level
 * and inherited like the other proxy_* directives; only the locations whose
 * proxy_pass is https use them, and those get their TLS context when the
 * configuration is complete (rp_upstream_tls_get, called by the proxy module's
 * postconfiguration), so a bad file is a configuration error with the place of
 * the directive that named it.
 *
 * The grpc_ssl_* directives are the same settings under nginx's other names,
 * for `grpc_pass grpcs://...`: a second module sharing the struct and the
 * handlers, whose prefix makes the messages name the directive that was used.
 */
#include "http/http.h"
#include "upstream/upstream_ssl.h"
#include "net/tls.h"

#include <string.h>

static void *create_loc_as(rp_conf_t *cf, const char *prefix)
{
    rp_upstream_ssl_conf_t *s = rp_arena_calloc(cf->arena, sizeof(*s));
    s->prefix = prefix;
    s->verify = RP_CONF_UNSET;
    s->verify_depth = RP_CONF_UNSET;
    s->server_name = RP_CONF_UNSET;
    s->session_reuse = RP_CONF_UNSET;
    s->protocols = RP_CONF_UNSET;
    return s;
}

static void *create_loc(rp_conf_t *cf)
{
    return create_loc_as(cf, "proxy");
}

static void *create_grpc_loc(rp_conf_t *cf)
{
    return create_loc_as(cf, "grpc");
}

static void merge_val(rp_upstream_ssl_val_t *c, const rp_upstream_ssl_val_t *p)
{
    if (c->value == NULL)
        *c = *p;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_upstream_ssl_conf_t *p = parent, *c = child;
    if (c->verify == RP_CONF_UNSET) {
        c->verify = p->verify == RP_CONF_UNSET ? 0 : p->verify;
        c->verify_at = p->verify_at; /* where it was said, for the error without a CA */
    }
    RP_CONF_MERGE(c->verify_depth, p->verify_depth, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->server_name, p->server_name, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->session_reuse, p->session_reuse, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->protocols, p->protocols, RP_CONF_UNSET, RP_TLS12 | RP_TLS13);
    if (c->name == NULL)
        c->name = p->name;
    merge_val(&c->ciphers, &p->ciphers);
    merge_val(&c->trusted, &p->trusted);
    /* the certificate and its key go together: a level that names either replaces both */
    if (c->certificate.value == NULL && c->certificate_key.value == NULL) {
        c->certificate = p->certificate;
        c->certificate_key = p->certificate_key;
    }
    return RP_CONF_OK;
}

static const char *set_val(rp_conf_t *cf, rp_upstream_ssl_val_t *v, int is_path)
{
    if (v->value)
        return "is duplicate";
    v->value = is_path ? rp_conf_conf_path(cf, cf->argv[1]) : cf->argv[1];
    v->file = cf->file;
    v->line = cf->line;
    return RP_CONF_OK;
}

static const char *set_trusted(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_val(cf, &((rp_upstream_ssl_conf_t *)conf)->trusted, 1);
}

static const char *set_certificate(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_val(cf, &((rp_upstream_ssl_conf_t *)conf)->certificate, 1);
}

static const char *set_key(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_val(cf, &((rp_upstream_ssl_conf_t *)conf)->certificate_key, 1);
}

static const char *set_ciphers(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return set_val(cf, &((rp_upstream_ssl_conf_t *)conf)->ciphers, 0);
}

static const char *set_verify(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_ssl_conf_t *s = conf;
    const char *rv = rp_conf_set_flag(cf, cmd, conf);
    if (rv != RP_CONF_OK)
        return rv;
    s->verify_at = (rp_upstream_ssl_val_t){NULL, cf->file, cf->line};
    return RP_CONF_OK;
}

static const char *set_name(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_upstream_ssl_conf_t *s = conf;
    if (s->name)
        return "is duplicate";
    const char *n = cf->argv[1];
    if (strchr(n, '$'))
        return rp_conf_error(cf, "variables are not supported in \"%s\"", n);
    if (n[0] == '\0' || strlen(n) > 253)
        return rp_conf_error(cf, "invalid name \"%s\"", n);
    s->name = cf->argv[1];
    return RP_CONF_OK;
}

static const char *set_protocols(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return rp_tls_parse_protocols(cf, &((rp_upstream_ssl_conf_t *)conf)->protocols);
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)
#define LOC(f)   offsetof(rp_upstream_ssl_conf_t, f)

static const rp_command_t commands[] = {
    {"proxy_ssl_verify", ANYWHERE, 0, 1, 1, set_verify, RP_CONF_LOC, LOC(verify), NULL},
    {"proxy_ssl_trusted_certificate", ANYWHERE, 0, 1, 1, set_trusted, RP_CONF_LOC, 0, NULL},
    {"proxy_ssl_verify_depth", ANYWHERE, 0, 1, 1, rp_conf_set_num, RP_CONF_LOC, LOC(verify_depth),
     NULL},
    {"proxy_ssl_server_name", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(server_name),
     NULL},
    {"proxy_ssl_name", ANYWHERE, 0, 1, 1, set_name, RP_CONF_LOC, 0, NULL},
    {"proxy_ssl_certificate", ANYWHERE, 0, 1, 1, set_certificate, RP_CONF_LOC, 0, NULL},
    {"proxy_ssl_certificate_key", ANYWHERE, 0, 1, 1, set_key, RP_CONF_LOC, 0, NULL},
    {"proxy_ssl_protocols", ANYWHERE, 0, 1, 4, set_protocols, RP_CONF_LOC, 0, NULL},
    {"proxy_ssl_ciphers", ANYWHERE, 0, 1, 1, set_ciphers, RP_CONF_LOC, 0, NULL},
    {"proxy_ssl_session_reuse", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     LOC(session_reuse), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

static const rp_command_t grpc_commands[] = {
    {"grpc_ssl_verify", ANYWHERE, 0, 1, 1, set_verify, RP_CONF_LOC, LOC(verify), NULL},
    {"grpc_ssl_trusted_certificate", ANYWHERE, 0, 1, 1, set_trusted, RP_CONF_LOC, 0, NULL},
    {"grpc_ssl_verify_depth", ANYWHERE, 0, 1, 1, rp_conf_set_num, RP_CONF_LOC, LOC(verify_depth),
     NULL},
    {"grpc_ssl_server_name", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(server_name),
     NULL},
    {"grpc_ssl_name", ANYWHERE, 0, 1, 1, set_name, RP_CONF_LOC, 0, NULL},
    {"grpc_ssl_certificate", ANYWHERE, 0, 1, 1, set_certificate, RP_CONF_LOC, 0, NULL},
    {"grpc_ssl_certificate_key", ANYWHERE, 0, 1, 1, set_key, RP_CONF_LOC, 0, NULL},
    {"grpc_ssl_protocols", ANYWHERE, 0, 1, 4, set_protocols, RP_CONF_LOC, 0, NULL},
    {"grpc_ssl_ciphers", ANYWHERE, 0, 1, 1, set_ciphers, RP_CONF_LOC, 0, NULL},
    {"grpc_ssl_session_reuse", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(session_reuse),
     NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_proxy_ssl_module = {
    .name = "proxy_ssl",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
};

rp_module_t rp_grpc_ssl_module = {
    .name = "grpc_ssl",
    .commands = grpc_commands,
    .create_loc = create_grpc_loc,
    .merge_loc = merge_loc,
};
