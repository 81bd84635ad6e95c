/*
 * The http core module: `server`, `location`, `listen`, `server_name`, the
 * client-side timeouts and limits, and the variables of every request ($host,
 * $uri, $http_NAME, ...). The phase runner (phases.c) picks the location.
 */
#include "core/cycle.h"
#include "core/log.h"
#include "http/request.h"
#include "http/variables.h"
#include "net/listen.h"
#include "route/route.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *create_http_main(rp_conf_t *cf)
{
    rp_http_core_main_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    rp_array_init(&c->servers, cf->arena, 4, sizeof(void *));
    rp_array_init(&c->addrs, cf->arena, 4, sizeof(void *));
    for (int i = 0; i < RP_NPHASES; i++)
        rp_array_init(&c->phases[i], cf->arena, 4, sizeof(rp_phase_handler_pt));
    c->header_filters = &rp_http_header_filter_end;
    c->body_filters = &rp_http_body_filter_end;
    return c;
}

static void *create_srv(rp_conf_t *cf)
{
    rp_http_core_srv_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    rp_array_init(&c->names, cf->arena, 2, sizeof(rp_server_name_t));
    rp_array_init(&c->listens, cf->arena, 2, sizeof(rp_listen_opt_t));
    c->client_header_buffer_size = RP_CONF_UNSET_SIZE;
    c->large_client_header_buffers = RP_CONF_UNSET_SIZE;
    c->large_header_line = RP_CONF_UNSET_SIZE;
    c->client_header_timeout = RP_CONF_UNSET_MSEC;
    c->merge_slashes = RP_CONF_UNSET;
    return c;
}

static const char *merge_srv(rp_conf_t *cf, void *parent, void *child)
{
    rp_http_core_srv_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->client_header_buffer_size, p->client_header_buffer_size, RP_CONF_UNSET_SIZE,
                  1024);
    RP_CONF_MERGE(c->large_client_header_buffers, p->large_client_header_buffers,
                  RP_CONF_UNSET_SIZE, 4 * 8192);
    RP_CONF_MERGE(c->large_header_line, p->large_header_line, RP_CONF_UNSET_SIZE, 8192);
    RP_CONF_MERGE(c->client_header_timeout, p->client_header_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->merge_slashes, p->merge_slashes, RP_CONF_UNSET, 1);

    if (c->listens.nelts == 0) {
        /* nginx's default: port 80 as root, 8000 otherwise. */
        rp_listen_opt_t *lo = rp_array_push(&c->listens);
        const char *err = rp_listen_parse_addr(cf->arena, geteuid() == 0 ? "*:80" : "*:8000",
                                               &lo->sa, &lo->socklen, &lo->text);
        if (err)
            return err;
        lo->backlog = 511;
        lo->file = c->file;
        lo->line = c->line;
    }
    return RP_CONF_OK;
}

static void *create_loc(rp_conf_t *cf)
{
    rp_http_core_loc_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    rp_array_init(&c->exact, cf->arena, 2, sizeof(void *));
    rp_array_init(&c->prefix, cf->arena, 2, sizeof(void *));
    rp_array_init(&c->regex, cf->arena, 2, sizeof(void *));
    rp_array_init(&c->named, cf->arena, 1, sizeof(void *));
    c->keepalive_timeout = RP_CONF_UNSET_MSEC;
    c->keepalive_requests = RP_CONF_UNSET;
    c->send_timeout = RP_CONF_UNSET_MSEC;
    c->client_body_timeout = RP_CONF_UNSET_MSEC;
    c->client_max_body_size = RP_CONF_UNSET_SIZE;
    c->server_tokens = RP_CONF_UNSET;
    c->log_subrequest = RP_CONF_UNSET;
    c->satisfy = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    rp_http_core_loc_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->keepalive_timeout, p->keepalive_timeout, RP_CONF_UNSET_MSEC, 75000);
    RP_CONF_MERGE(c->keepalive_requests, p->keepalive_requests, RP_CONF_UNSET, 1000);
    RP_CONF_MERGE(c->send_timeout, p->send_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->client_body_timeout, p->client_body_timeout, RP_CONF_UNSET_MSEC, 60000);
    RP_CONF_MERGE(c->client_max_body_size, p->client_max_body_size, RP_CONF_UNSET_SIZE,
                  1024 * 1024);
    RP_CONF_MERGE(c->server_tokens, p->server_tokens, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->log_subrequest, p->log_subrequest, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->satisfy, p->satisfy, RP_CONF_UNSET, 0);
    if (c->default_type == NULL)
        c->default_type = p->default_type ? p->default_type : "text/plain";
    return RP_CONF_OK;
}

/* Creates the configuration arrays of a new server or location level. */
static rp_http_conf_ctx_t *new_level(rp_conf_t *cf, int server)
{
    rp_http_conf_ctx_t *ctx = rp_arena_calloc(cf->arena, sizeof(*ctx));
    ctx->main_conf = cf->http_ctx->main_conf;
    ctx->srv_conf = server ? rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *))
                           : cf->http_ctx->srv_conf;
    ctx->loc_conf = rp_arena_calloc(cf->arena, rp_nmodules * sizeof(void *));
    for (size_t m = 0; m < rp_nmodules; m++) {
        const rp_module_t *mod = rp_modules[m];
        if (server && mod->create_srv)
            ctx->srv_conf[m] = mod->create_srv(cf);
        if (mod->create_loc)
            ctx->loc_conf[m] = mod->create_loc(cf);
    }
    return ctx;
}

static const char *set_server(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_conf_ctx_t *ctx = new_level(cf, 1);
    rp_http_core_srv_conf_t *srv = ctx->srv_conf[rp_http_core_module.index];
    srv->ctx = ctx;
    srv->file = cf->file;
    srv->line = cf->line;
    rp_http_core_loc_conf_t *root = ctx->loc_conf[rp_http_core_module.index];
    root->loc_conf = ctx->loc_conf;
    root->kind = RP_LOC_SERVER;
    root->name = "";
    root->file = cf->file;
    root->line = cf->line;

    rp_http_core_main_conf_t *cmcf = cf->http_ctx->main_conf[rp_http_core_module.index];
    *(rp_http_core_srv_conf_t **)rp_array_push(&cmcf->servers) = srv;

    rp_http_conf_ctx_t *saved = cf->http_ctx;
    cf->http_ctx = ctx;
    const char *rv = rp_conf_parse_block(cf, RP_CTX_SERVER);
    cf->http_ctx = saved;
    return rv;
}

static const char *set_location(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_loc_conf_t *parent = conf;
    if (parent->kind == RP_LOC_EXACT)
        return rp_conf_error(cf, "location \"%s\" cannot be inside the exact location \"%s\"",
                             cf->argv[cf->argc - 1], parent->name);
    if (parent->kind == RP_LOC_NAMED)
        return rp_conf_error(cf, "location \"%s\" could not be inside the named location \"%s\"",
                             cf->argv[cf->argc - 1], parent->name);

    const char *mod = cf->argc == 3 ? cf->argv[1] : NULL;
    const char *name = cf->argv[cf->argc - 1];
    int kind = RP_LOC_PREFIX;
    if (mod == NULL) {
        if (name[0] == '=' && name[1] != '\0') {
            kind = RP_LOC_EXACT, name++;
        } else if (name[0] == '~' && name[1] == '*' && name[2] != '\0') {
            kind = RP_LOC_REGEX_CASELESS, name += 2;
        } else if (name[0] == '~' && name[1] != '\0' && name[1] != '*') {
            kind = RP_LOC_REGEX, name++;
        } else if (name[0] == '^' && name[1] == '~' && name[2] != '\0') {
            kind = RP_LOC_PREFIX_NOREGEX, name += 2;
        } else if (name[0] == '@') {
            /* as nginx: only in a server, and nothing nested in one */
            if (parent->kind != RP_LOC_SERVER)
                return rp_conf_error(cf, "location \"%s\" could not be inside location \"%s\"",
                                     name, parent->name);
            if (name[1] == '\0')
                return rp_conf_error(cf, "invalid location name \"%s\"", name);
            kind = RP_LOC_NAMED;
        }
    } else if (strcmp(mod, "=") == 0) {
        kind = RP_LOC_EXACT;
    } else if (strcmp(mod, "~") == 0) {
        kind = RP_LOC_REGEX;
    } else if (strcmp(mod, "~*") == 0) {
        kind = RP_LOC_REGEX_CASELESS;
    } else if (strcmp(mod, "^~") == 0) {
        kind = RP_LOC_PREFIX_NOREGEX;
    } else {
        return rp_conf_error(cf, "invalid location modifier \"%s\"", mod);
    }

    rp_http_conf_ctx_t *ctx = new_level(cf, 0);
    rp_http_core_loc_conf_t *loc = ctx->loc_conf[rp_http_core_module.index];
    loc->loc_conf = ctx->loc_conf;
    loc->kind = kind;
    loc->name = rp_arena_strdup(cf->arena, name);
    loc->name_len = strlen(name);
    loc->file = cf->file;
    loc->line = cf->line;

    if (kind == RP_LOC_NAMED) {
        rp_http_core_loc_conf_t **v = parent->named.elts;
        for (size_t i = 0; i < parent->named.nelts; i++)
            if (strcmp(v[i]->name, name) == 0)
                return rp_conf_error(cf, "duplicate location \"%s\"", name);
        *(rp_http_core_loc_conf_t **)rp_array_push(&parent->named) = loc;
        loc->parent = parent;
        loc->internal = 1;
        rp_http_conf_ctx_t *saved = cf->http_ctx;
        cf->http_ctx = ctx;
        const char *rv = rp_conf_parse_block(cf, RP_CTX_LOCATION);
        cf->http_ctx = saved;
        return rv;
    } else if (kind == RP_LOC_REGEX || kind == RP_LOC_REGEX_CASELESS) {
        char err[512];
        loc->re = rp_http_regex_compile(cf, name, kind == RP_LOC_REGEX_CASELESS, err, sizeof(err));
        if (loc->re == NULL)
            return rp_conf_error(cf, "%s", err);
    } else if (name[0] != '/') {
        return rp_conf_error(cf, "location \"%s\" must start with \"/\"", name);
    } else if (parent->kind != RP_LOC_SERVER && parent->kind != RP_LOC_REGEX &&
               parent->kind != RP_LOC_REGEX_CASELESS &&
               strncmp(name, parent->name, parent->name_len) != 0) {
        return rp_conf_error(cf, "location \"%s\" is outside location \"%s\"", name,
                             parent->name);
    }

    rp_route_add_location(parent, loc); /* duplicates are refused once matchers are known */

    rp_http_conf_ctx_t *saved = cf->http_ctx;
    cf->http_ctx = ctx;
    const char *rv = rp_conf_parse_block(cf, RP_CTX_LOCATION);
    cf->http_ctx = saved;
    return rv;
}

static const char *set_listen(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_srv_conf_t *srv = conf;
    rp_listen_opt_t lo;
    memset(&lo, 0, sizeof(lo));
    const char *err = rp_listen_parse_addr(cf->arena, cf->argv[1], &lo.sa, &lo.socklen, &lo.text);
    if (err)
        return err;
    lo.backlog = 511;
    lo.ipv6only = 1;
    lo.file = cf->file;
    lo.line = cf->line;

    for (size_t i = 2; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        long v;
        if (strcmp(a, "default_server") == 0 || strcmp(a, "default") == 0) {
            lo.default_server = 1;
        } else if (strcmp(a, "reuseport") == 0) {
            /* always on: every worker has its own socket */
        } else if (strncmp(a, "backlog=", 8) == 0) {
            if (rp_parse_int(a + 8, INT_MAX, &v) != 0 || v < 1)
                return rp_conf_error(cf, "invalid backlog \"%s\"", a + 8);
            lo.backlog = (int)v;
            lo.has_opts = 1;
        } else if (strncmp(a, "rcvbuf=", 7) == 0 || strncmp(a, "sndbuf=", 7) == 0) {
            size_t sz;
            if (rp_parse_size(a + 7, &sz) != 0 || sz > INT_MAX)
                return rp_conf_error(cf, "invalid size in \"%s\"", a);
            if (a[0] == 'r')
                lo.rcvbuf = (int)sz;
            else
                lo.sndbuf = (int)sz;
            lo.has_opts = 1;
        } else if (strncmp(a, "ipv6only=", 9) == 0) {
            int flag;
            if (rp_parse_flag(a + 9, &flag) != 0)
                return rp_conf_error(cf, "invalid value in \"%s\", it must be on or off", a);
            lo.ipv6only = flag;
            lo.has_opts = 1;
        } else if (strcmp(a, "ssl") == 0) {
            lo.ssl = 1;
        } else if (strcmp(a, "http2") == 0) {
            lo.http2 = 1;
        } else if (strcmp(a, "proxy_protocol") == 0) {
            lo.proxy_protocol = 1;
        } else {
            return rp_conf_error(cf, "invalid parameter \"%s\"", a);
        }
    }

    rp_listen_opt_t *have = srv->listens.elts;
    for (size_t i = 0; i < srv->listens.nelts; i++) {
        if (have[i].socklen == lo.socklen && memcmp(&have[i].sa, &lo.sa, lo.socklen) == 0)
            return rp_conf_error(cf, "duplicate listen %s", lo.text);
    }
    *(rp_listen_opt_t *)rp_array_push(&srv->listens) = lo;
    srv->has_listen = 1;
    return RP_CONF_OK;
}

static const char *set_server_name(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_srv_conf_t *srv = conf;
    for (size_t i = 1; i < cf->argc; i++) {
        const char *a = cf->argv[i];
        rp_server_name_t n;
        memset(&n, 0, sizeof(n));
        n.server = srv;
        n.text = (rp_str_t){a, strlen(a)};
        if (a[0] == '~') {
            char err[512];
            n.kind = RP_NAME_REGEX;
            n.name = rp_arena_strdup(cf->arena, a + 1);
            n.len = strlen(n.name);
            n.re = rp_http_regex_compile(cf, a + 1, 1, err, sizeof(err));
            if (n.re == NULL)
                return rp_conf_error(cf, "%s", err);
            *(rp_server_name_t *)rp_array_push(&srv->names) = n;
            continue;
        }
        size_t len = strlen(a);
        char *low = rp_arena_strdup(cf->arena, a);
        for (char *p = low; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        if (len >= 2 && low[0] == '*' && low[1] == '.') {
            n.kind = RP_NAME_WILD_HEAD;
            n.name = low + 1; /* ".example.com" */
        } else if (len >= 2 && low[0] == '.') {
            /* ".example.com" means the name itself and all its subdomains, as in nginx */
            rp_server_name_t exact = n;
            exact.kind = RP_NAME_EXACT;
            exact.name = low + 1;
            exact.len = len - 1;
            *(rp_server_name_t *)rp_array_push(&srv->names) = exact;
            n.kind = RP_NAME_WILD_HEAD;
            n.name = low;
        } else if (len >= 2 && low[len - 1] == '*' && low[len - 2] == '.') {
            n.kind = RP_NAME_WILD_TAIL;
            low[len - 1] = '\0';
            n.name = low; /* "www.example." */
        } else if (strchr(low, '*')) {
            return rp_conf_error(cf, "invalid server name \"%s\": a wildcard must be \"*.\" at "
                                     "the start or \".*\" at the end",
                                 a);
        } else {
            n.kind = RP_NAME_EXACT;
            n.name = low;
        }
        n.len = strlen(n.name);
        /* Pushed last: a push may move the array, so no pointer into it is kept. */
        *(rp_server_name_t *)rp_array_push(&srv->names) = n;
    }
    return RP_CONF_OK;
}

static const char *set_large_buffers(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_srv_conf_t *srv = conf;
    if (srv->large_client_header_buffers != RP_CONF_UNSET_SIZE)
        return "duplicate directive";
    long n;
    size_t size;
    if (rp_parse_int(cf->argv[1], 1024, &n) != 0 || n < 1)
        return rp_conf_error(cf, "invalid number of buffers \"%s\"", cf->argv[1]);
    if (rp_parse_size(cf->argv[2], &size) != 0 || size < 64 || size > (16u << 20))
        return rp_conf_error(cf, "invalid buffer size \"%s\"", cf->argv[2]);
    if ((size_t)n * size > (64u << 20))
        return rp_conf_error(cf, "%s buffers of %s exceed the limit of 64m", cf->argv[1],
                             cf->argv[2]);
    /* nginx's "N SIZE": a line must fit in SIZE, the head in N * SIZE. */
    srv->large_client_header_buffers = (size_t)n * size;
    srv->large_header_line = size;
    return RP_CONF_OK;
}

static const char *set_default_type(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return rp_conf_set_str(cf, cmd, conf);
}

/* `internal`: not inherited, as in nginx; a location says it of itself. */
static const char *set_internal(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_loc_conf_t *clcf = conf;
    if (clcf->internal)
        return "duplicate directive";
    clcf->internal = 1;
    return RP_CONF_OK;
}

static const char *preconfiguration(rp_conf_t *cf)
{
    return rp_var_register(cf, rp_http_core_variables);
}

#define SRV(f) offsetof(rp_http_core_srv_conf_t, f)
#define LOC(f) offsetof(rp_http_core_loc_conf_t, f)
#define IN_HTTP (RP_CTX_HTTP | RP_CTX_SERVER)
/* `satisfy all|any`: how the access phase's handlers combine (phases.c). */
static const char *set_satisfy(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    rp_http_core_loc_conf_t *c = conf;
    if (c->satisfy != RP_CONF_UNSET)
        return "is duplicate";
    if (strcmp(cf->argv[1], "all") == 0)
        c->satisfy = 0;
    else if (strcmp(cf->argv[1], "any") == 0)
        c->satisfy = 1;
    else
        return rp_conf_error(cf, "invalid value \"%s\": \"all\" or \"any\"", cf->argv[1]);
    return RP_CONF_OK;
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"server", RP_CTX_HTTP, RP_CMD_BLOCK, 0, 0, set_server, RP_CONF_SRV, 0, NULL},
    {"location", RP_CTX_SERVER | RP_CTX_LOCATION, RP_CMD_BLOCK, 1, 2, set_location, RP_CONF_LOC, 0,
     NULL},
    {"listen", RP_CTX_SERVER, 0, 1, RP_ARGS_ANY, set_listen, RP_CONF_SRV, 0, NULL},
    {"server_name", RP_CTX_SERVER, 0, 1, RP_ARGS_ANY, set_server_name, RP_CONF_SRV, 0, NULL},
    {"client_header_timeout", IN_HTTP, 0, 1, 1, rp_conf_set_msec, RP_CONF_SRV,
     SRV(client_header_timeout), NULL},
    {"client_header_buffer_size", IN_HTTP, 0, 1, 1, rp_conf_set_size, RP_CONF_SRV,
     SRV(client_header_buffer_size), NULL},
    {"large_client_header_buffers", IN_HTTP, 0, 2, 2, set_large_buffers, RP_CONF_SRV, 0, NULL},
    {"merge_slashes", IN_HTTP, 0, 1, 1, rp_conf_set_flag, RP_CONF_SRV, SRV(merge_slashes), NULL},
    {"keepalive_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     LOC(keepalive_timeout), NULL},
    {"keepalive_requests", ANYWHERE, 0, 1, 1, rp_conf_set_num, RP_CONF_LOC,
     LOC(keepalive_requests), NULL},
    {"send_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC, LOC(send_timeout), NULL},
    {"client_body_timeout", ANYWHERE, 0, 1, 1, rp_conf_set_msec, RP_CONF_LOC,
     LOC(client_body_timeout), NULL},
    {"default_type", ANYWHERE, 0, 1, 1, set_default_type, RP_CONF_LOC, LOC(default_type), NULL},
    {"client_max_body_size", ANYWHERE, 0, 1, 1, rp_conf_set_size, RP_CONF_LOC,
     LOC(client_max_body_size), NULL},
    {"server_tokens", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(server_tokens), NULL},
    {"internal", RP_CTX_LOCATION, 0, 0, 0, set_internal, RP_CONF_LOC, 0, NULL},
    {"log_subrequest", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC, LOC(log_subrequest),
     NULL},
    {"satisfy", ANYWHERE, 0, 1, 1, set_satisfy, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_core_module = {
    .name = "http_core",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_srv = create_srv,
    .merge_srv = merge_srv,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .preconfiguration = preconfiguration,
};
