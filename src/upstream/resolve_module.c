/*
 * The resolve module: `resolver ADDRESS ... [valid=TIME] [ipv4=on|off] [ipv6=on|off]`
 * and `resolver_timeout TIME`, in http, server, location and upstream, and the
 * resolution of the names of `server NAME resolve` lines at run time.
 *
 * The names of an upstream block are resolved with the block's own resolver, else
 * the http block's (as nginx; a server's or a location's resolver is accepted and
 * inherited as nginx does, and has no name to resolve yet). A resolve line without a
 * resolver in effect is an error at its line. Which names to resolve, with which
 * resolver, is settled once the configuration is read (the targets); the helper
 * process resolves them (resolve.c), or the single process with master_process off,
 * which starts over with each configuration it loads.
 */
#include "upstream/resolve.h"
#include "core/process.h"
#include "http/http.h"
#include "net/listen.h"

#include <string.h>

typedef struct {
    rp_array_t targets; /* rp_resolve_target_t */
} resolve_main_conf_t;

static void *create_conf(rp_conf_t *cf)
{
    rp_resolver_conf_t *rc = rp_arena_calloc(cf->arena, sizeof(*rc));
    rc->resolver = RP_CONF_UNSET_PTR;
    rc->timeout = RP_CONF_UNSET_MSEC;
    return rc;
}

static const char *merge_conf(rp_conf_t *cf, void *parent, void *child)
{
    rp_resolver_conf_t *prev = parent, *conf = child;
    RP_CONF_MERGE(conf->resolver, prev->resolver, RP_CONF_UNSET_PTR, RP_CONF_UNSET_PTR);
    RP_CONF_MERGE(conf->timeout, prev->timeout, RP_CONF_UNSET_MSEC, RP_CONF_UNSET_MSEC);
    return RP_CONF_OK;
}

static void *create_main(rp_conf_t *cf)
{
    resolve_main_conf_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    rp_array_init(&m->targets, cf->arena, 4, sizeof(rp_resolve_target_t));
    return m;
}

/* Adds the addresses of one name server argument (port 53 unless given). */
static const char *add_nameserver(rp_conf_t *cf, rp_array_t *addrs, const char *arg)
{
    char host[256];
    int port;
    const char *err = rp_addr_split(cf->arena, arg, 53, host, sizeof(host), &port);
    if (err)
        return rp_conf_error(cf, "%s", err);
    struct sockaddr_storage sa[16];
    socklen_t lens[16];
    unsigned n = rp_addr_lookup(host, port, sa, lens, 16);
    if (n == 0)
        return rp_conf_error(cf, "host not found in resolver \"%s\"", arg);
    for (unsigned i = 0; i < n; i++) {
        struct sockaddr_storage *slot = rp_array_push(addrs);
        memcpy(slot, &sa[i], sizeof(*slot));
    }
    return RP_CONF_OK;
}

static const char *set_resolver(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_resolver_conf_t *rc = conf;
    if (rc->resolver != RP_CONF_UNSET_PTR)
        return "is duplicate";
    rp_resolver_t *r = rp_arena_calloc(cf->arena, sizeof(*r));
    r->ipv4 = r->ipv6 = 1;
    r->file = cf->file;
    r->line = cf->line;
    rp_array_t addrs;
    rp_array_init(&addrs, cf->arena, 2, sizeof(struct sockaddr_storage));
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        int on;
        if (strncmp(a, "valid=", 6) == 0) {
            if (rp_parse_msec(a + 6, &r->valid) != 0 || r->valid <= 0)
                return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        } else if (strncmp(a, "ipv4=", 5) == 0) {
            if (rp_parse_flag(a + 5, &on) != 0)
                return rp_conf_error(cf, "invalid parameter \"%s\"", a);
            r->ipv4 = (unsigned)on;
        } else if (strncmp(a, "ipv6=", 5) == 0) {
            if (rp_parse_flag(a + 5, &on) != 0)
                return rp_conf_error(cf, "invalid parameter \"%s\"", a);
            r->ipv6 = (unsigned)on;
        } else if (strchr(a, '=')) {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        } else {
            const char *err = add_nameserver(cf, &addrs, a);
            if (err != RP_CONF_OK)
                return err;
        }
    }
    if (!r->ipv4 && !r->ipv6)
        return rp_conf_error(cf, "\"ipv4\" and \"ipv6\" cannot both be \"off\"");
    if (addrs.nelts == 0)
        return rp_conf_error(cf, "no name server address");
    r->naddrs = (unsigned)addrs.nelts;
    r->addrs = addrs.elts;
    r->lens = rp_arena_calloc(cf->arena, r->naddrs * sizeof(socklen_t));
    for (unsigned i = 0; i < r->naddrs; i++)
        r->lens[i] = r->addrs[i].ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in);
    rc->resolver = r;
    return RP_CONF_OK;
}

static const char *set_timeout(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_resolver_conf_t *rc = conf;
    if (rc->timeout != RP_CONF_UNSET_MSEC)
        return "is duplicate";
    if (rp_parse_msec(cf->argv[1], &rc->timeout) != 0 || rc->timeout <= 0)
        return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[1]);
    return RP_CONF_OK;
}

/* Settles, for each resolve line, the resolver that resolves it. */
static const char *postconfiguration(rp_conf_t *cf)
{
    rp_upstream_main_conf_t *um = rp_http_main_conf(cf->cycle, &rp_upstream_module);
    resolve_main_conf_t *m = cf->cycle->main_conf[rp_resolve_module.index];
    if (um == NULL)
        return RP_CONF_OK;
    const rp_resolver_conf_t *http = rp_http_block_loc_conf(cf->cycle, &rp_resolve_module);
    rp_upstream_conf_t **ups = um->upstreams.elts;
    for (size_t i = 0; i < um->upstreams.nelts; i++) {
        rp_upstream_conf_t *u = ups[i];
        if (u->resolve.nelts == 0)
            continue;
        const rp_resolver_conf_t *own =
            u->module_conf ? u->module_conf[rp_resolve_module.index] : NULL;
        const rp_resolver_t *r = own && own->resolver != RP_CONF_UNSET_PTR ? own->resolver
                                 : http->resolver != RP_CONF_UNSET_PTR     ? http->resolver
                                                                           : NULL;
        int64_t timeout = own && own->timeout != RP_CONF_UNSET_MSEC ? own->timeout
                          : http->timeout != RP_CONF_UNSET_MSEC     ? http->timeout
                                                                    : RP_RESOLVER_TIMEOUT;
        rp_upstream_resolve_t *rl = u->resolve.elts;
        for (unsigned line = 0; line < u->resolve.nelts; line++) {
            if (r == NULL) {
                char *argv[] = {"server", NULL};
                cf->file = rl[line].tmpl.file;
                cf->line = rl[line].tmpl.line;
                cf->argv = argv;
                rp_conf_error(cf, "no resolver defined to resolve %s", rl[line].host);
                cf->argv = NULL;
                return RP_CONF_ERROR;
            }
            rp_resolve_target_t *t = rp_array_push(&m->targets);
            t->u = u;
            t->line = line;
            t->resolver = r;
            t->timeout = timeout;
        }
    }
    return RP_CONF_OK;
}

/* ---- process hooks ---- */

static rp_resolve_runtime_t *start(rp_cycle_t *cycle)
{
    resolve_main_conf_t *m = cycle->main_conf[rp_resolve_module.index];
    return rp_resolve_start(m->targets.elts, (unsigned)m->targets.nelts);
}

static int init_helper(rp_cycle_t *cycle)
{
    start(cycle);
    return 0;
}

static void exit_helper(rp_cycle_t *cycle)
{
    rp_resolve_free_all();
}

/* master_process off: no helper, so the one process resolves, for the configuration it
 * serves now (a reload stops the old one's runtime and starts the new one's). */
static rp_resolve_runtime_t *single_rt;

static int init_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE)
        single_rt = start(cycle);
    return 0;
}

static void stop_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE) {
        rp_resolve_stop(single_rt);
        single_rt = NULL;
    }
}

static void exit_worker(rp_cycle_t *cycle)
{
    if (rp_process.kind == RP_PROCESS_SINGLE) {
        single_rt = NULL;
        rp_resolve_free_all();
    }
}

static const rp_command_t commands[] = {
    {"resolver", RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION, 0, 1, RP_ARGS_ANY, set_resolver,
     RP_CONF_LOC, 0, NULL},
    {"resolver", RP_CTX_UPSTREAM, 0, 1, RP_ARGS_ANY, set_resolver, RP_CONF_UPS, 0, NULL},
    {"resolver_timeout", RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION, 0, 1, 1, set_timeout,
     RP_CONF_LOC, 0, NULL},
    {"resolver_timeout", RP_CTX_UPSTREAM, 0, 1, 1, set_timeout, RP_CONF_UPS, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_resolve_module = {
    .name = "resolve",
    .commands = commands,
    .create_main = create_main,
    .create_loc = create_conf,
    .merge_loc = merge_conf,
    .create_ups = create_conf,
    .postconfiguration = postconfiguration,
    .init_worker = init_worker,
    .stop_worker = stop_worker,
    .exit_worker = exit_worker,
    .init_helper = init_helper,
    .exit_helper = exit_helper,
};
