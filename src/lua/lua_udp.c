/*
 * OpenResty's UDP cosockets: ngx.socket.udp() and its setpeername, send, receive,
 * settimeout and close. A datagram socket connected to its peer (so the kernel
 * drops datagrams from anyone else); receive waits on one libevent event with
 * the socket's read timeout, yielding the hook like the TCP cosockets do.
 */
#include "lua/lua_socket.h"

#include "core/log.h"
#include "core/time.h"
#include "http/request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MT           "rampart.socket.udp"
#define OBJ_MT       "rampart.socket.udp.object"
#define MAX_DATAGRAM 8192 /* OpenResty's receive buffer, and its cap */

static void *const DEAD_OWNER = (void *)&DEAD_OWNER;

typedef struct {
    int fd;
    struct event *ev;
    void *owner;
    rp_request_t *r;
    rp_http_cleanup_t *cln;
    const rp_lua_socket_conf_t *conf;
    int64_t timeout; /* 0: lua_socket_read_timeout */
    rp_lua_co_t *co; /* waiting: resolving (rq) or receiving */
    rp_lua_resolve_t *rq;
    size_t rsize;
    rp_lua_co_t *hook; /* made by a detached hook: closed when it ends */
    void *next, *prev;
} udp_t;

static udp_t *hook_udps;

static void hook_unlink(udp_t *u)
{
    if (u->hook == NULL)
        return;
    udp_t *prev = u->prev, *next = u->next;
    if (prev)
        prev->next = next;
    else
        hook_udps = next;
    if (next)
        next->prev = prev;
    u->next = u->prev = NULL;
    u->hook = NULL;
}

typedef struct {
    udp_t *u;
} udp_ud_t;

static void udp_reset(udp_t *u)
{
    if (u->rq) {
        rp_lua_resolve_cancel(u->rq);
        u->rq = NULL;
    }
    if (u->co && u->co->cancel_data == u)
        u->co->cancel = NULL;
    u->co = NULL;
    if (u->ev) {
        event_free(u->ev);
        u->ev = NULL;
    }
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
}

static void on_request_end(rp_request_t *r, void *data)
{
    udp_t *u = data;
    (void)r;
    u->cln = NULL;
    udp_reset(u);
    u->owner = DEAD_OWNER;
}

void rp_lua_udp_hook_free(rp_lua_co_t *co)
{
    udp_t *u = hook_udps;
    while (u) {
        udp_t *next = u->next;
        if (u->hook == co) {
            hook_unlink(u);
            udp_reset(u);
            u->owner = DEAD_OWNER;
        }
        u = next;
    }
}

static int udp_gc(lua_State *L)
{
    udp_ud_t *ud = luaL_checkudata(L, 1, MT);
    udp_t *u = ud->u;
    if (u == NULL)
        return 0;
    ud->u = NULL;
    hook_unlink(u);
    udp_reset(u);
    if (u->cln)
        u->cln->fn = NULL;
    free(u);
    return 0;
}

/* The object is a table holding the state's userdata at [1], as OpenResty's. */
static udp_t *check_udp(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_rawgeti(L, 1, 1);
    udp_ud_t *ud = luaL_checkudata(L, -1, MT);
    lua_pop(L, 1);
    if (ud->u == NULL)
        luaL_error(L, "attempt to use a closed socket");
    if (ud->u->owner != rp_lua_socket_owner(L))
        luaL_error(L, "bad request");
    if (ud->u->co)
        luaL_error(L, "socket busy");
    return ud->u;
}

int rp_lua_udp_new(lua_State *L)
{
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    udp_ud_t *ud = lua_newuserdata(L, sizeof(*ud));
    ud->u = NULL;
    luaL_getmetatable(L, MT);
    lua_setmetatable(L, -2);
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    luaL_getmetatable(L, OBJ_MT);
    lua_setmetatable(L, -2);
    udp_t *u = rp_xcalloc(1, sizeof(*u));
    u->fd = -1;
    u->owner = rp_lua_socket_owner(L);
    u->r = rp_lua_socket_request(L);
    u->conf = rp_lua_socket_conf(L);
    rp_lua_co_t *co = rp_lua_current(L);
    if (u->r == NULL && co) { /* a detached hook's: closed when the hook ends */
        u->hook = co;
        u->next = hook_udps;
        if (hook_udps)
            hook_udps->prev = u;
        hook_udps = u;
        co->on_free = rp_lua_socket_hook_free;
    }
    ud->u = u;
    return 1;
}

static int push_err(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

static void on_cancel(rp_lua_co_t *co, void *data)
{
    udp_t *u = data;
    (void)co;
    u->co = NULL;
    udp_reset(u);
}

static int wait_here(lua_State *L, udp_t *u)
{
    rp_lua_co_t *co = rp_lua_current(L);
    if (co == NULL || co->sync)
        return rp_lua_yield(L); /* raises the error */
    u->co = co;
    co->cancel = on_cancel;
    co->cancel_data = u;
    return rp_lua_yield(L);
}

static void wake(udp_t *u, int n)
{
    rp_lua_co_t *co = u->co;
    u->co = NULL;
    if (co->cancel_data == u)
        co->cancel = NULL;
    rp_lua_wake(co, n);
}

/* Connects a datagram socket to addr: NULL, or the error. */
static const char *peer_connect(udp_t *u, const struct sockaddr *addr, socklen_t len, char *err,
                                size_t errlen)
{
    if (u->ev) {
        event_free(u->ev);
        u->ev = NULL;
    }
    if (u->fd >= 0)
        close(u->fd);
    u->fd = socket(addr->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0 || connect(u->fd, addr, len) != 0) {
        rp_lua_errtext(errno, err, errlen);
        if (u->fd >= 0)
            close(u->fd);
        u->fd = -1;
        return err;
    }
    if (u->r && u->cln == NULL)
        u->cln = rp_http_cleanup_add(u->r, on_request_end, u);
    return NULL;
}

static int resolving_now; /* rp_lua_resolve may answer within the call */
static struct {
    int done;
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
} answer;

static void on_resolved(void *arg, const struct sockaddr *addr, socklen_t len, const char *err)
{
    udp_t *u = arg;
    u->rq = NULL;
    if (resolving_now) {
        answer.done = 1;
        answer.err[0] = '\0';
        if (addr) {
            memcpy(&answer.ss, addr, len);
            answer.len = len;
        } else {
            snprintf(answer.err, sizeof(answer.err), "%s", err);
        }
        return;
    }
    lua_State *L = u->co->L;
    char e[128];
    if (addr == NULL || (err = peer_connect(u, addr, len, e, sizeof(e))) != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        wake(u, 2);
        return;
    }
    lua_pushinteger(L, 1);
    wake(u, 1);
}

static int udp_setpeername(lua_State *L)
{
    udp_t *u = check_udp(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    const char *host = luaL_checkstring(L, 2);
    char err[128];
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(host + 5) >= sizeof(sun.sun_path))
            return push_err(L, "path too long");
        strcpy(sun.sun_path, host + 5);
        const char *e = peer_connect(u, (struct sockaddr *)&sun, sizeof(sun), err, sizeof(err));
        if (e)
            return push_err(L, e);
        /* bind to an autobound abstract name, so the peer can answer */
        struct sockaddr_un me = {.sun_family = AF_UNIX};
        bind(u->fd, (struct sockaddr *)&me, sizeof(sa_family_t));
        lua_pushinteger(L, 1);
        return 1;
    }
    lua_Integer port = luaL_checkinteger(L, 3);
    if (port < 0 || port > 65535) {
        lua_pushnil(L);
        lua_pushfstring(L, "bad port number: %d", (int)port);
        return 2;
    }
    answer.done = 0;
    resolving_now = 1;
    rp_lua_dns_t dns;
    rp_lua_socket_dns(L, &dns);
    rp_lua_resolve_t *q = rp_lua_resolve(&dns, host, (int)port, SOCK_DGRAM, on_resolved, u);
    resolving_now = 0;
    if (answer.done) {
        if (answer.err[0])
            return push_err(L, answer.err);
        const char *e =
            peer_connect(u, (struct sockaddr *)&answer.ss, answer.len, err, sizeof(err));
        if (e)
            return push_err(L, e);
        lua_pushinteger(L, 1);
        return 1;
    }
    u->rq = q;
    return wait_here(L, u);
}

static int udp_send(lua_State *L)
{
    udp_t *u = check_udp(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    if (u->fd < 0)
        return push_err(L, "closed");
    rp_lua_socket_flatten(L, 2);
    size_t len;
    const char *p = lua_tolstring(L, -1, &len);
    ssize_t n;
    do {
        n = send(u->fd, p, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        char err[128];
        return push_err(L, rp_lua_errtext(errno, err, sizeof(err)));
    }
    lua_pushinteger(L, 1);
    return 1;
}

/* Reads one datagram: results pushed on L (count), or 0 when none is there yet. */
static int try_recv(udp_t *u, lua_State *L)
{
    char buf[MAX_DATAGRAM];
    ssize_t n;
    do {
        n = recv(u->fd, buf, u->rsize, 0);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        lua_pushlstring(L, buf, (size_t)n);
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    char err[128];
    lua_pushnil(L);
    lua_pushstring(L, rp_lua_errtext(errno, err, sizeof(err)));
    return 2;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    udp_t *u = arg;
    (void)fd;
    if (u->co == NULL)
        return;
    lua_State *L = u->co->L;
    int n;
    if (what & EV_TIMEOUT) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        n = 2;
    } else {
        n = try_recv(u, L);
        if (n == 0) {
            int64_t ms = u->timeout > 0 ? u->timeout : u->conf->read_timeout;
            rp_timer_add(u->ev, ms);
            return;
        }
    }
    wake(u, n);
}

static int udp_receive(lua_State *L)
{
    udp_t *u = check_udp(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    if (u->fd < 0)
        return push_err(L, "closed");
    u->rsize = MAX_DATAGRAM;
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer v = luaL_checkinteger(L, 2);
        if (v <= 0)
            return luaL_argerror(L, 2, "bad size");
        if (v < MAX_DATAGRAM)
            u->rsize = (size_t)v;
    }
    int n = try_recv(u, L);
    if (n)
        return n;
    if (u->ev == NULL)
        u->ev = event_new(rp_event_base, u->fd, EV_READ, on_readable, u);
    int64_t ms = u->timeout > 0 ? u->timeout : u->conf->read_timeout;
    rp_timer_add(u->ev, ms);
    return wait_here(L, u);
}

static int udp_settimeout(lua_State *L)
{
    udp_t *u = check_udp(L);
    lua_Number v = luaL_optnumber(L, 2, 0);
    if (v < 0)
        return luaL_error(L, "bad timeout value");
    u->timeout = (int64_t)v;
    return 0;
}

static int udp_close(lua_State *L)
{
    udp_t *u = check_udp(L);
    if (u->fd < 0)
        return push_err(L, "closed");
    udp_reset(u);
    lua_pushinteger(L, 1);
    return 1;
}

static const luaL_Reg methods[] = {
    {"setpeername", udp_setpeername}, {"send", udp_send},   {"receive", udp_receive},
    {"settimeout", udp_settimeout},   {"close", udp_close}, {NULL, NULL},
};

void rp_lua_udp_register(lua_State *L)
{
    luaL_newmetatable(L, MT);
    lua_pushcfunction(L, udp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, OBJ_MT);
    lua_newtable(L);
    for (const luaL_Reg *m = methods; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
