/*
 * Where a redirect sends the client: nginx writes a Location that starts with "/"
 * (from `return 301 /x`, `rewrite ... permanent`, or a proxied answer) as an
 * absolute URL, built from the scheme, the request's host (or the server's first
 * name, with server_name_in_redirect) and the port it arrived on (left out when it
 * is the scheme's own, or with port_in_redirect off). absolute_redirect off keeps
 * it relative. As in nginx, this applies to the redirects rampart makes itself
 * (return, rewrite; error_page and a folder's trailing slash should call it too):
 * a proxied answer's Location is the backend's, and OpenResty's ngx.redirect keeps
 * a relative target as it is.
 */
#include "http/request.h"
#include "net/conn.h"
#include "net/listen.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    int absolute;    /* absolute_redirect */
    int server_name; /* server_name_in_redirect */
    int port;        /* port_in_redirect */
} redirect_conf_t;

static void *create_loc(rp_conf_t *cf)
{
    redirect_conf_t *c = rp_arena_calloc(cf->arena, sizeof(*c));
    c->absolute = c->server_name = c->port = RP_CONF_UNSET;
    return c;
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    redirect_conf_t *p = parent, *c = child;
    RP_CONF_MERGE(c->absolute, p->absolute, RP_CONF_UNSET, 1);
    RP_CONF_MERGE(c->server_name, p->server_name, RP_CONF_UNSET, 0);
    RP_CONF_MERGE(c->port, p->port, RP_CONF_UNSET, 1);
    return RP_CONF_OK;
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

rp_str_t rp_http_safe_location(rp_request_t *r, rp_str_t v)
{
    size_t bad = 0;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.data[i] < 0x20 || v.data[i] == 0x7f)
            bad++;
    if (bad == 0)
        return v;
    char *d = rp_arena_alloc(r->arena, v.len + 2 * bad);
    size_t k = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.data[i];
        if (ch < 0x20 || ch == 0x7f) {
            d[k++] = '%';
            d[k++] = "0123456789ABCDEF"[ch >> 4];
            d[k++] = "0123456789ABCDEF"[ch & 15];
        } else {
            d[k++] = (char)ch;
        }
    }
    return (rp_str_t){d, k};
}

rp_str_t rp_http_absolute_location(rp_request_t *r, rp_str_t loc)
{
    if (loc.len == 0 || loc.data[0] != '/' || r->loc_conf == NULL || r->conn == NULL)
        return loc;
    const redirect_conf_t *rc = r->loc_conf[rp_http_redirect_module.index];
    if (rc == NULL || rc->absolute == 0)
        return loc;
    rp_conn_t *c = r->conn;

    /* the local address: the listening socket's, unless it is a wildcard (then the
     * connection's, by a syscall: only for a request without a Host or a port to name) */
    char local[INET6_ADDRSTRLEN + 2] = "";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int have_local = 0;
    rp_str_t host = r->host;
    int need_addr = !(rc->server_name == 1 && r->srv->names.nelts) && host.len == 0;
    if (c->ls && !need_addr) {
        memcpy(&ss, &c->ls->sa, sizeof(ss));
        have_local = 1;
    } else {
        have_local = getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0;
    }
    if (rc->server_name == 1 && r->srv->names.nelts) {
        host = ((rp_server_name_t *)r->srv->names.elts)[0].text;
    } else if (host.len == 0 && have_local) {
        /* no Host: the address the request arrived on, as nginx */
        if (ss.ss_family == AF_INET6) {
            local[0] = '[';
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, local + 1,
                      INET6_ADDRSTRLEN);
            strcat(local, "]");
        } else {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, local, sizeof(local));
        }
        host = (rp_str_t){local, strlen(local)};
    }
    unsigned port = 0;
    if (rc->port && have_local) {
        port = port_of(&ss);
        if ((c->ssl && port == 443) || (!c->ssl && port == 80))
            port = 0;
    }
    size_t cap = 8 + host.len + 6 + loc.len + 1;
    char *d = rp_arena_alloc(r->arena, cap);
    int n = snprintf(d, cap, "%s://%.*s", c->ssl ? "https" : "http", (int)host.len, host.data);
    if (port)
        n += snprintf(d + n, cap - (size_t)n, ":%u", port);
    memcpy(d + n, loc.data, loc.len);
    n += (int)loc.len;
    d[n] = '\0';
    return (rp_str_t){d, (size_t)n};
}

#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"absolute_redirect", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(redirect_conf_t, absolute), NULL},
    {"server_name_in_redirect", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(redirect_conf_t, server_name), NULL},
    {"port_in_redirect", ANYWHERE, 0, 1, 1, rp_conf_set_flag, RP_CONF_LOC,
     offsetof(redirect_conf_t, port), NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_redirect_module = {
    .name = "http_redirect",
    .commands = commands,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
};
