/*
 * The http2_* directives. They apply per listening address, as in nginx: a
 * connection takes them from the default server of the address it arrived on,
 * because its SETTINGS go out before any request names a server.
 */
#include "http/h2.h"

#include <stddef.h>

static void *create_srv(rp_conf_t *cf)
{
    rp_h2_srv_conf_t *s = rp_arena_calloc(cf->arena, sizeof(*s));
    s->max_concurrent_streams = RP_CONF_UNSET;
    s->max_requests = RP_CONF_UNSET;
    s->max_header_list_size = RP_CONF_UNSET_SIZE;
    s->body_preread_size = RP_CONF_UNSET_SIZE;
    return s;
}

static const char *merge_srv(rp_conf_t *cf, void *parent, void *child)
{
    rp_h2_srv_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->max_concurrent_streams, p->max_concurrent_streams, RP_CONF_UNSET, 128);
    RP_CONF_MERGE(c->max_requests, p->max_requests, RP_CONF_UNSET, 1000);
    RP_CONF_MERGE(c->max_header_list_size, p->max_header_list_size, RP_CONF_UNSET_SIZE,
                  32 * 1024);
    RP_CONF_MERGE(c->body_preread_size, p->body_preread_size, RP_CONF_UNSET_SIZE, 65535);
    if (c->max_concurrent_streams < 1)
        return rp_conf_error(cf, "http2_max_concurrent_streams must be at least 1");
    if (c->max_requests < 1)
        return rp_conf_error(cf, "http2_max_requests must be at least 1");
    if (c->max_header_list_size < 1024)
        return rp_conf_error(cf, "http2_max_header_list_size must be at least 1k");
    if (c->body_preread_size > 0x7fffffff)
        return rp_conf_error(cf, "http2_body_preread_size must be below 2g");
    return RP_CONF_OK;
}

#define HS (RP_CTX_HTTP | RP_CTX_SERVER)

static const rp_command_t commands[] = {
    {"http2_max_concurrent_streams", HS, 0, 1, 1, rp_conf_set_num, RP_CONF_SRV,
     offsetof(rp_h2_srv_conf_t, max_concurrent_streams), NULL},
    {"http2_max_requests", HS, 0, 1, 1, rp_conf_set_num, RP_CONF_SRV,
     offsetof(rp_h2_srv_conf_t, max_requests), NULL},
    {"http2_max_header_list_size", HS, 0, 1, 1, rp_conf_set_size, RP_CONF_SRV,
     offsetof(rp_h2_srv_conf_t, max_header_list_size), NULL},
    {"http2_body_preread_size", HS, 0, 1, 1, rp_conf_set_size, RP_CONF_SRV,
     offsetof(rp_h2_srv_conf_t, body_preread_size), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http2_module = {
    .name = "http2",
    .commands = commands,
    .create_srv = create_srv,
    .merge_srv = merge_srv,
};
