/*
 * The `http` block: creates the configuration arrays every module gets at the
 * http level, parses the block, merges each server and location with what
 * encloses it, and builds the address tables that map a listening socket to the
 * servers behind it.
 */
#include "core/cycle.h"
#include "core/log.h"
#include "http/h1.h"
#include "http/http.h"
#include "http/variables.h"
#include "http/ssl.h"
#include "net/listen.h"
#include "route/route.h"

#include <stdio.h>
#include <string.h>

static const char *merge_locations(rp_conf_t *cf, rp_http_core_loc_conf_t *parent,
                                   rp_http_conf_ctx_t *srv_ctx)
{
    rp_array_t *lists[] = {&parent->exact, &parent->prefix, &parent->regex, &parent->named};
    for (size_t l = 0; l < 4; l++) {
        rp_http_core_loc_conf_t **v = lists[l]->elts;
        for (size_t i = 0; i < lists[l]->nelts; i++) {
            rp_http_core_loc_conf_t *child = v[i];
            for (size_t m = 0; m < rp_nmodules; m++) {
                const rp_module_t *mod = rp_modules[m];
                if (mod->merge_loc) {
                    cf->file = child->file;
                    cf->line = child->line;
                    const char *rv = mod->merge_loc(cf, parent->loc_conf[m], child->loc_conf[m]);
                    if (rv != RP_CONF_OK)
                        return rv;
                }
            }
            const char *rv = rp_http_rewrite_merge_ifs(cf, child->loc_conf);
            if (rv != RP_CONF_OK)
                return rv;
            rv = merge_locations(cf, child, srv_ctx);
            if (rv != RP_CONF_OK)
                return rv;
        }
    }
    return rp_route_build(cf, parent);
}

static const char *merge_servers(rp_conf_t *cf, rp_http_conf_ctx_t *http_ctx,
                                 rp_http_core_main_conf_t *cmcf)
{
    rp_http_core_srv_conf_t **servers = cmcf->servers.elts;
    for (size_t s = 0; s < cmcf->servers.nelts; s++) {
        rp_http_conf_ctx_t *sctx = servers[s]->ctx;
        cf->file = servers[s]->file;
        cf->line = servers[s]->line;
        for (size_t m = 0; m < rp_nmodules; m++) {
            const rp_module_t *mod = rp_modules[m];
            const char *rv;
            if (mod->merge_srv) {
                rv = mod->merge_srv(cf, http_ctx->srv_conf[m], sctx->srv_conf[m]);
                if (rv != RP_CONF_OK)
                    return rv;
            }
            if (mod->merge_loc) {
                rv = mod->merge_loc(cf, http_ctx->loc_conf[m], sctx->loc_conf[m]);
                if (rv != RP_CONF_OK)
                    return rv;
            }
        }
        const char *rv =
            merge_locations(cf, sctx->loc_conf[rp_http_core_module.index], sctx);
        if (rv != RP_CONF_OK)
            return rv;
    }
    return RP_CONF_OK;
}

static rp_listening_t *find_listening(rp_cycle_t *cycle, const rp_listen_opt_t *lo)
{
    rp_listening_t **ls = cycle->listening.elts;
    for (size_t i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i]->socklen == lo->socklen && memcmp(&ls[i]->sa, &lo->sa, lo->socklen) == 0)
            return ls[i];
    }
    return NULL;
}

static int name_order(int kind)
{
    return kind; /* exact < wildcard head < wildcard tail < regex, as enum order */
}

/* Builds, per distinct address, the list of servers and the default one. */
static const char *build_addrs(rp_conf_t *cf, rp_http_core_main_conf_t *cmcf)
{
    rp_cycle_t *cycle = cf->cycle;
    rp_http_core_srv_conf_t **servers = cmcf->servers.elts;

    for (size_t s = 0; s < cmcf->servers.nelts; s++) {
        rp_http_core_srv_conf_t *srv = servers[s];
        rp_listen_opt_t *los = srv->listens.elts;
        for (size_t l = 0; l < srv->listens.nelts; l++) {
            rp_listen_opt_t *lo = &los[l];
            rp_listening_t *ls = find_listening(cycle, lo);
            if (ls == NULL) {
                ls = rp_arena_calloc(cf->arena, sizeof(*ls));
                memcpy(&ls->sa, &lo->sa, lo->socklen);
                ls->socklen = lo->socklen;
                ls->text = lo->text;
                ls->backlog = lo->backlog;
                ls->ipv6only = lo->ipv6only;
                ls->rcvbuf = lo->rcvbuf;
                ls->sndbuf = lo->sndbuf;
                ls->http = rp_arena_calloc(cf->arena, sizeof(rp_http_addr_t));
                ls->http->listening = ls;
                ls->http->cycle = cycle;
                ls->cycle = cycle;
                ls->handler = rp_http_init_connection;
                rp_array_init(&ls->http->names, cf->arena, 4, sizeof(rp_server_name_t));
                *(rp_listening_t **)rp_array_push(&cycle->listening) = ls;
                *(rp_http_addr_t **)rp_array_push(&cmcf->addrs) = ls->http;
            }
            if (lo->has_opts) {
                /* Socket options belong to the address, so only one listen may set them. */
                if (ls->opts_from) {
                    snprintf(cf->error, sizeof(cf->error),
                             "%s:%u: \"listen\": duplicate listen options for %s, already set at "
                             "%s:%u",
                             lo->file, lo->line, lo->text, ls->opts_from->file,
                             ls->opts_from->line);
                    return RP_CONF_ERROR;
                }
                ls->opts_from = lo;
                ls->backlog = lo->backlog;
                ls->ipv6only = lo->ipv6only;
                ls->rcvbuf = lo->rcvbuf;
                ls->sndbuf = lo->sndbuf;
            }
            rp_http_addr_t *addr = ls->http;
            if (lo->ssl)
                addr->ssl = 1;
            if (lo->http2)
                addr->http2 = 1;
            if (lo->proxy_protocol)
                addr->proxy_protocol = 1;
            if (lo->default_server) {
                if (addr->explicit_default && addr->default_server != srv) {
                    cf->file = lo->file;
                    cf->line = lo->line;
                    snprintf(cf->error, sizeof(cf->error),
                             "%s:%u: \"listen\": a duplicate default server for %s", lo->file,
                             lo->line, lo->text);
                    return RP_CONF_ERROR;
                }
                addr->default_server = srv;
                addr->explicit_default = 1;
            } else if (addr->default_server == NULL) {
                addr->default_server = srv; /* the first server of an address is its default */
            }
            /* Server names of this server become reachable through this address. */
            rp_server_name_t *names = srv->names.elts;
            for (size_t n = 0; n < srv->names.nelts; n++) {
                rp_server_name_t *have = addr->names.elts;
                int dup = 0;
                for (size_t k = 0; k < addr->names.nelts; k++) {
                    if (have[k].kind == names[n].kind && strcmp(have[k].name, names[n].name) == 0 &&
                        names[n].kind != RP_NAME_REGEX) {
                        dup = 1;
                        if (have[k].server != srv)
                            rp_log_error(RP_LOG_WARN, 0,
                                         "%s:%u: conflicting server name \"%s\" on %s, ignored",
                                         srv->file, srv->line, names[n].name, ls->text);
                    }
                }
                if (!dup)
                    *(rp_server_name_t *)rp_array_push(&addr->names) = names[n];
            }
        }
    }

    /* Exact names first, then wildcards, then regexes (which keep their order). */
    rp_http_addr_t **addrs = cmcf->addrs.elts;
    for (size_t a = 0; a < cmcf->addrs.nelts; a++) {
        rp_server_name_t *v = addrs[a]->names.elts;
        size_t n = addrs[a]->names.nelts;
        for (size_t i = 1; i < n; i++) {
            rp_server_name_t key = v[i];
            size_t j = i;
            while (j > 0 && name_order(v[j - 1].kind) > name_order(key.kind)) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = key;
        }
        rp_route_build_names(cf->arena, addrs[a]);
    }
    return RP_CONF_OK;
}

static const char *set_http(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    if (rp_http_core_main_conf(cf->cycle) != NULL)
        return "duplicate directive";

    rp_http_conf_ctx_t *ctx = rp_arena_calloc(cf->arena, sizeof(*ctx));
    ctx->main_conf = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
    ctx->srv_conf = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
    ctx->loc_conf = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
    for (size_t m = 0; m < rp_nmodules; m++) {
        const rp_module_t *mod = rp_modules[m];
        if (mod->create_http_main)
            ctx->main_conf[m] = mod->create_http_main(cf);
        if (mod->create_srv)
            ctx->srv_conf[m] = mod->create_srv(cf);
        if (mod->create_loc)
            ctx->loc_conf[m] = mod->create_loc(cf);
    }
    /* The http module's main conf is the http ctx itself: that is how the cycle finds it. */
    *(rp_http_conf_ctx_t **)conf = ctx;

    rp_http_core_loc_conf_t *root = ctx->loc_conf[rp_http_core_module.index];
    root->loc_conf = ctx->loc_conf;

    rp_http_conf_ctx_t *saved = cf->http_ctx;
    cf->http_ctx = ctx;
    const char *rv = rp_conf_parse_block(cf, RP_CTX_HTTP);
    cf->http_ctx = saved;
    if (rv != RP_CONF_OK)
        return rv;
    rv = rp_var_check_declared(cf);
    if (rv != RP_CONF_OK)
        return rv;

    for (size_t m = 0; m < rp_nmodules; m++) {
        const rp_module_t *mod = rp_modules[m];
        if (mod->init_http_main) {
            rv = mod->init_http_main(cf, ctx->main_conf[m]);
            if (rv != RP_CONF_OK)
                return rv;
        }
    }

    rp_http_core_main_conf_t *cmcf = ctx->main_conf[rp_http_core_module.index];
    rv = merge_servers(cf, ctx, cmcf);
    if (rv != RP_CONF_OK)
        return rv;
    return build_addrs(cf, cmcf);
}

typedef struct {
    rp_http_conf_ctx_t *ctx;
} http_main_t;

static void *create_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(http_main_t));
}

rp_http_core_main_conf_t *rp_http_core_main_conf(const rp_cycle_t *cycle)
{
    http_main_t *hm = cycle->main_conf[rp_http_module.index];
    if (hm == NULL || hm->ctx == NULL)
        return NULL;
    return hm->ctx->main_conf[rp_http_core_module.index];
}

int rp_http_listen_is_ssl(const rp_cycle_t *cycle, const rp_listen_opt_t *lo)
{
    rp_listening_t *ls = find_listening((rp_cycle_t *)cycle, lo);
    return ls && ls->http && ls->http->ssl;
}

void *rp_http_main_conf(const rp_cycle_t *cycle, const rp_module_t *module)
{
    http_main_t *hm = cycle->main_conf[rp_http_module.index];
    if (hm == NULL || hm->ctx == NULL)
        return NULL;
    return hm->ctx->main_conf[module->index];
}

void *rp_http_block_loc_conf(const rp_cycle_t *cycle, const rp_module_t *module)
{
    http_main_t *hm = cycle->main_conf[rp_http_module.index];
    if (hm == NULL || hm->ctx == NULL)
        return NULL;
    return hm->ctx->loc_conf[module->index];
}

void rp_http_add_phase_handler(rp_conf_t *cf, rp_phase_t phase, rp_phase_handler_pt h)
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cf->cycle);
    if (cmcf)
        *(rp_phase_handler_pt *)rp_array_push(&cmcf->phases[phase]) = h;
}

static const rp_command_t commands[] = {
    {"http", RP_CTX_MAIN, RP_CMD_BLOCK, 0, 0, set_http, RP_CONF_MAIN, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_module = {
    .name = "http",
    .commands = commands,
    .create_main = create_main,
};
