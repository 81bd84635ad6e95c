/*
 * OpenResty's TCP cosockets: ngx.socket.tcp(), ngx.socket.connect() and the
 * socket object's methods (connect, send, receive, receiveuntil, receiveany,
 * settimeout(s), setoption, setkeepalive, getreusedtimes, sslhandshake, close).
 *
 * A socket is non-blocking on the worker's libevent loop: one event per socket
 * (for reading or for writing, whichever the pending operation waits on, with
 * that operation's timeout) and a read buffer, so bytes read past what one
 * receive asked for wait there for the next. An operation that cannot finish at
 * once yields the hook (rp_lua_yield); the event completes it, pushes its
 * results and wakes the hook (rp_lua_wake). If the hook is abandoned first (the
 * request ended), co->cancel drops the wait and closes the socket.
 *
 * The socket state is malloc'd apart from its Lua userdata: a socket made in a
 * request is closed when the request ends (a cleanup), as OpenResty's, even while
 * Lua still holds the object; the object then says "closed", and "bad request" in
 * any other request.
 */
#include "lua/lua_socket.h"

#include "core/log.h"
#include "core/time.h"
#include "http/request.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MT         "rampart.socket.tcp"
#define OBJ_MT     "rampart.socket.tcp.object"
#define SESSION_MT "rampart.ssl.session"
#define READ_CHUNK 16384

enum { OP_NONE, OP_RESOLVE, OP_POOL, OP_CONNECT, OP_SEND, OP_RECV, OP_HANDSHAKE };
enum { RECV_LINE, RECV_ALL, RECV_SIZE, RECV_ANY, RECV_UNTIL };

static void *const DEAD_OWNER = (void *)&DEAD_OWNER; /* its request ended */

typedef struct {
    int fd;
    SSL *ssl;
    struct event *ev;
    char *buf; /* read buffer: bytes start..end */
    size_t start, end, cap;
    unsigned eof : 1;        /* the peer closed its side */
    unsigned want_write : 1; /* TLS must write before it can read (or the reverse) */
    unsigned counted : 1;    /* holds a slot of pool's backlog */
    unsigned until_done : 1; /* receiveuntil with a size returned the last chunk */
    unsigned tried : 1;      /* connect was called once */
    void *owner;
    rp_request_t *r;
    rp_http_cleanup_t *cln;
    rp_lua_socket_conf_t *conf;
    int64_t connect_timeout, send_timeout, read_timeout; /* 0: the conf's */
    unsigned reused;
    char *pool_key;
    rp_lua_pool_t *pool; /* with a backlog: whose slot it holds */
    int pool_size, backlog;
    rp_lua_dns_t dns;  /* who resolves the connect's name */
    rp_lua_co_t *hook; /* made by a detached hook: closed when it ends */
    void *next, *prev; /* in the list of such sockets */
    /* the pending operation */
    int op;
    rp_lua_co_t *co;
    rp_lua_resolve_t *rq;
    rp_lua_pool_waiter_t waiter;
    int port;
    char *sbuf; /* send: what is left to write */
    size_t slen, soff;
    int rmode; /* receive */
    size_t rsize;
    char *pat; /* receiveuntil's pattern, while it waits */
    size_t patlen;
    int inclusive;
    int hs_verify, hs_want_session; /* sslhandshake */
    char *hs_name;
} lsock_t;

typedef struct {
    lsock_t *s;
} lsock_ud_t;

/* ---- closing ---- */

static void sock_reset_op(lsock_t *s)
{
    if (s->rq) {
        rp_lua_resolve_cancel(s->rq);
        s->rq = NULL;
    }
    rp_lua_pool_unwait(&s->waiter);
    if (s->ev)
        event_del(s->ev);
    free(s->sbuf);
    s->sbuf = NULL;
    free(s->pat);
    s->pat = NULL;
    free(s->hs_name);
    s->hs_name = NULL;
}

/* Forgets the hook waiting on s (it is being torn down, or s is). */
static void detach_co(lsock_t *s)
{
    if (s->co && s->co->cancel_data == s)
        s->co->cancel = NULL;
    s->co = NULL;
    s->op = OP_NONE;
}

static void sock_close(lsock_t *s)
{
    sock_reset_op(s);
    if (s->ev) {
        event_free(s->ev);
        s->ev = NULL;
    }
    if (s->fd >= 0 || s->ssl)
        rp_lua_close_conn(s->fd, s->ssl);
    s->fd = -1;
    s->ssl = NULL;
    if (s->counted) {
        s->counted = 0;
        rp_lua_pool_release(s->pool);
    }
    s->start = s->end = 0;
    s->eof = 0;
}

/* ---- the sockets of detached hooks ---- */

static lsock_t *hook_socks; /* made by detached hooks still running */

static void hook_unlink(lsock_t *s)
{
    if (s->hook == NULL)
        return;
    lsock_t *prev = s->prev, *next = s->next;
    if (prev)
        prev->next = next;
    else
        hook_socks = next;
    if (next)
        next->prev = prev;
    s->next = s->prev = NULL;
    s->hook = NULL;
}

void rp_lua_socket_hook_free(rp_lua_co_t *co)
{
    lsock_t *s = hook_socks;
    while (s) {
        lsock_t *next = s->next;
        if (s->hook == co) {
            hook_unlink(s);
            detach_co(s);
            sock_close(s);
            s->owner = DEAD_OWNER;
        }
        s = next;
    }
    rp_lua_udp_hook_free(co);
}

static void hook_link(lsock_t *s, rp_lua_co_t *co)
{
    s->hook = co;
    s->prev = NULL;
    s->next = hook_socks;
    if (hook_socks)
        hook_socks->prev = s;
    hook_socks = s;
    co->on_free = rp_lua_socket_hook_free;
}

static void on_request_end(rp_request_t *r, void *data)
{
    lsock_t *s = data;
    (void)r;
    s->cln = NULL;
    detach_co(s);
    sock_close(s);
    s->owner = DEAD_OWNER;
    s->r = NULL;
}

static int sock_gc(lua_State *L)
{
    lsock_ud_t *u = luaL_checkudata(L, 1, MT);
    lsock_t *s = u->s;
    if (s == NULL)
        return 0;
    u->s = NULL;
    hook_unlink(s);
    detach_co(s);
    sock_close(s);
    if (s->cln)
        s->cln->fn = NULL;
    free(s->buf);
    free(s->pool_key);
    free(s);
    return 0;
}

/* ---- results ---- */

static int push_err(lua_State *L, const char *err)
{
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
}

#define errtext rp_lua_errtext

/* Ends the pending operation: its results (pushed by fn on the hook's stack) wake it. */
static void finish(lsock_t *s, int nresults)
{
    rp_lua_co_t *co = s->co;
    if (co && co->cancel_data == s)
        co->cancel = NULL;
    s->co = NULL;
    s->op = OP_NONE;
    if (s->ev)
        event_del(s->ev);
    if (co)
        rp_lua_wake(co, nresults);
}

static void finish_err(lsock_t *s, const char *err, int close_it)
{
    if (close_it)
        sock_close(s);
    lua_State *L = s->co->L;
    lua_pushnil(L);
    lua_pushstring(L, err);
    finish(s, 2);
}

static void on_cancel(rp_lua_co_t *co, void *data)
{
    lsock_t *s = data;
    (void)co;
    s->co = NULL;
    sock_close(s); /* an operation cut in the middle leaves the stream unusable */
}

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Waits for the socket (EV_READ or EV_WRITE) for ms. */
static void arm(lsock_t *s, short what, int64_t ms)
{
    if (s->ev == NULL)
        s->ev = event_new(rp_event_base, s->fd, what, on_event, s);
    else {
        event_del(s->ev);
        event_assign(s->ev, rp_event_base, s->fd, what, on_event, s);
    }
    if (ms > 0)
        rp_timer_add(s->ev, ms);
    else
        event_add(s->ev, NULL);
}

/* Yields the running hook for s's pending operation. */
static int wait_op(lua_State *L, lsock_t *s, int op)
{
    rp_lua_co_t *co = rp_lua_current(L);
    if (co == NULL || co->sync)
        return rp_lua_yield(L); /* raises the error */
    s->op = op;
    s->co = co;
    co->cancel = on_cancel;
    co->cancel_data = s;
    return rp_lua_yield(L);
}

static int64_t tmo(lsock_t *s, int64_t own, int64_t conf)
{
    (void)s;
    return own > 0 ? own : conf;
}
#define CONNECT_TMO(s) tmo(s, (s)->connect_timeout, (s)->conf->connect_timeout)
#define SEND_TMO(s)    tmo(s, (s)->send_timeout, (s)->conf->send_timeout)
#define READ_TMO(s)    tmo(s, (s)->read_timeout, (s)->conf->read_timeout)

/* ---- the object ---- */

/* The object is a table, as OpenResty's (the script may add fields to it); its state is
 * the userdata at [1], which the collector finalizes. */
static lsock_ud_t *object_ud(lua_State *L, int idx, const char *mt)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_rawgeti(L, idx, 1);
    void *u = luaL_checkudata(L, -1, mt);
    lua_pop(L, 1); /* the table keeps it */
    return u;
}

static void push_object(lua_State *L, const char *mt, const char *obj_mt)
{
    /* the userdata is on the top: wrap it */
    luaL_getmetatable(L, mt);
    lua_setmetatable(L, -2);
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    luaL_getmetatable(L, obj_mt);
    lua_setmetatable(L, -2);
}

static lsock_t *check_sock(lua_State *L)
{
    lsock_ud_t *u = object_ud(L, 1, MT);
    if (u->s == NULL)
        luaL_error(L, "attempt to use a closed socket");
    if (u->s->owner != rp_lua_socket_owner(L))
        luaL_error(L, "bad request");
    if (u->s->op != OP_NONE)
        luaL_error(L, "socket busy");
    return u->s;
}

static void watch_request(lsock_t *s)
{
    if (s->r && s->cln == NULL)
        s->cln = rp_http_cleanup_add(s->r, on_request_end, s);
}

static int sock_new(lua_State *L)
{
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    lsock_ud_t *u = lua_newuserdata(L, sizeof(*u));
    u->s = NULL;
    push_object(L, MT, OBJ_MT);
    lsock_t *s = rp_xcalloc(1, sizeof(*s));
    s->fd = -1;
    s->owner = rp_lua_socket_owner(L);
    s->conf = (rp_lua_socket_conf_t *)rp_lua_socket_conf(L);
    s->r = rp_lua_socket_request(L);
    watch_request(s); /* even before it connects: the owner ends with the request */
    if (s->r == NULL && rp_lua_current(L))
        hook_link(s, rp_lua_current(L));
    u->s = s;
    return 1;
}

/* ---- connect ---- */

static int connected(lsock_t *s)
{
    return s->fd >= 0;
}

/* Starts connecting to addr: 1 connected, 0 in progress (event armed), -1 failed (err). */
static int start_connect(lsock_t *s, const struct sockaddr *addr, socklen_t len, char *err,
                         size_t errlen)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errtext(errno, err, errlen);
        return -1;
    }
    if (addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    s->fd = fd;
    if (connect(fd, addr, len) == 0)
        return 1;
    if (errno == EINPROGRESS) {
        arm(s, EV_WRITE, CONNECT_TMO(s));
        return 0;
    }
    errtext(errno, err, errlen);
    close(fd);
    s->fd = -1;
    return -1;
}

static void connect_done(lsock_t *s)
{
    s->reused = 0;
    watch_request(s);
    lua_pushinteger(s->co->L, 1);
    finish(s, 1);
}

static void connect_failed(lsock_t *s, const char *err)
{
    sock_close(s);
    finish_err(s, err, 0);
}

/* Where a resolution that answered within the call (an address, /etc/hosts) leaves
 * its answer. */
typedef struct {
    int done;
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
} sync_answer_t;

static sync_answer_t *sync_answer; /* set while rp_lua_resolve runs */

static void on_resolved(void *arg, const struct sockaddr *addr, socklen_t len, const char *err)
{
    lsock_t *s = arg;
    s->rq = NULL;
    if (sync_answer) {
        sync_answer->done = 1;
        if (addr) {
            memcpy(&sync_answer->ss, addr, len);
            sync_answer->len = len;
            sync_answer->err[0] = '\0';
        } else {
            snprintf(sync_answer->err, sizeof(sync_answer->err), "%s", err);
        }
        return;
    }
    if (s->co == NULL) { /* nobody waits for it any more */
        sock_close(s);
        return;
    }
    if (addr == NULL) {
        connect_failed(s, err);
        return;
    }
    char e[128];
    int rc = start_connect(s, addr, len, e, sizeof(e));
    if (rc < 0)
        connect_failed(s, e);
    else if (rc > 0)
        connect_done(s);
    else
        s->op = OP_CONNECT;
}

/* Connects to addr from within the Lua call: results, or yields. */
static int connect_now(lua_State *L, lsock_t *s, const struct sockaddr *addr, socklen_t len)
{
    char err[128];
    int rc = start_connect(s, addr, len, err, sizeof(err));
    if (rc < 0) {
        sock_close(s);
        return push_err(L, err);
    }
    if (rc > 0) {
        s->reused = 0;
        watch_request(s);
        lua_pushinteger(L, 1);
        return 1;
    }
    return wait_op(L, s, OP_CONNECT);
}

/* The connect after the pool was checked (and a backlog slot held, if any): the
 * name's address, then the socket. Returns Lua results, or yields. */
static int do_connect(lua_State *L, lsock_t *s, const char *host)
{
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        if (strlen(host + 5) >= sizeof(sun.sun_path)) {
            sock_close(s);
            return push_err(L, "path too long");
        }
        strcpy(sun.sun_path, host + 5);
        return connect_now(L, s, (struct sockaddr *)&sun, sizeof(sun));
    }
    sync_answer_t now;
    now.done = 0;
    sync_answer = &now;
    rp_lua_resolve_t *q = rp_lua_resolve(&s->dns, host, s->port, SOCK_STREAM, on_resolved, s);
    sync_answer = NULL;
    if (now.done) {
        if (now.err[0]) {
            sock_close(s);
            return push_err(L, now.err);
        }
        return connect_now(L, s, (struct sockaddr *)&now.ss, now.len);
    }
    s->rq = q;
    return wait_op(L, s, OP_RESOLVE);
}

/* A connect that waited in the backlog goes on (how: 1 take an idle one, 2 a slot is
 * held for it) or gives up (0: timeout). */
static void on_pool_wake(rp_lua_pool_waiter_t *w, int how);

/* Takes an idle connection of s's pool: 1 when it did. */
static int take_idle(lsock_t *s, rp_lua_pool_t *pool)
{
    rp_lua_idle_t idle;
    if (!rp_lua_pool_take(pool, &idle))
        return 0;
    s->fd = idle.fd;
    s->ssl = idle.ssl;
    s->reused = idle.reused;
    if (rp_lua_pool_has_backlog(pool)) {
        s->counted = 1;
        s->pool = pool;
    }
    watch_request(s);
    return 1;
}

static char *pending_host(lsock_t *s)
{
    return s->hs_name; /* connect keeps its host there while it waits in the backlog */
}

static void on_pool_wake(rp_lua_pool_waiter_t *w, int how)
{
    lsock_t *s = (lsock_t *)((char *)w - offsetof(lsock_t, waiter));
    if (s->co == NULL) {
        if (how == 2) /* the slot it was given goes back */
            rp_lua_pool_release(rp_lua_pool_get(s->pool_key, s->pool_size, s->backlog));
        return;
    }
    rp_lua_pool_t *pool = rp_lua_pool_get(s->pool_key, s->pool_size, s->backlog);
    if (how == 0) {
        finish_err(s, "timeout", 0);
        return;
    }
    if (how == 1 && take_idle(s, pool)) {
        lua_pushinteger(s->co->L, 1);
        finish(s, 1);
        return;
    }
    if (how == 1) { /* someone took it first: wait again, or take the free slot */
        int rc = rp_lua_pool_acquire(pool, &s->waiter, CONNECT_TMO(s));
        if (rc == 0)
            return;
        if (rc < 0) {
            finish_err(s, "too many waiting connect operations", 0);
            return;
        }
    }
    s->counted = 1;
    s->pool = pool;
    /* connect for real: the name is resolved from the loop */
    char *host = pending_host(s);
    s->hs_name = NULL;
    if (strncmp(host, "unix:", 5) == 0) {
        struct sockaddr_un sun;
        memset(&sun, 0, sizeof(sun));
        sun.sun_family = AF_UNIX;
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", host + 5);
        free(host);
        char e[128];
        int rc = start_connect(s, (struct sockaddr *)&sun, sizeof(sun), e, sizeof(e));
        if (rc < 0)
            connect_failed(s, e);
        else if (rc > 0)
            connect_done(s);
        else
            s->op = OP_CONNECT;
        return;
    }
    sync_answer_t now;
    now.done = 0;
    sync_answer = &now;
    rp_lua_resolve_t *q = rp_lua_resolve(&s->dns, host, s->port, SOCK_STREAM, on_resolved, s);
    sync_answer = NULL;
    free(host);
    if (!now.done) {
        s->rq = q;
        s->op = OP_RESOLVE;
        return;
    }
    if (now.err[0]) {
        connect_failed(s, now.err);
        return;
    }
    char e[128];
    int rc = start_connect(s, (struct sockaddr *)&now.ss, now.len, e, sizeof(e));
    if (rc < 0)
        connect_failed(s, e);
    else if (rc > 0)
        connect_done(s);
    else
        s->op = OP_CONNECT;
}

static int sock_connect(lua_State *L)
{
    lsock_t *s = check_sock(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    int n = lua_gettop(L);
    const char *host = luaL_checkstring(L, 2);
    int port = 0, opts = 0;
    char key[300];
    if (strncmp(host, "unix:", 5) == 0) {
        if (n >= 3 && lua_istable(L, 3))
            opts = 3;
        snprintf(key, sizeof(key), "%s", host);
    } else {
        if (lua_isnoneornil(L, 3))
            return push_err(L, "missing the port number");
        if (!lua_isnumber(L, 3))
            return luaL_error(L, "bad argument #2 to 'connect' (number expected, got %s)",
                              luaL_typename(L, 3));
        lua_Integer p = lua_tointeger(L, 3);
        if (p < 0 || p > 65535) {
            lua_pushnil(L);
            lua_pushfstring(L, "bad port number: %d", (int)p);
            return 2;
        }
        port = (int)p;
        if (n >= 4 && lua_istable(L, 4))
            opts = 4;
        snprintf(key, sizeof(key), "%s:%d", host, port);
    }
    int pool_size = s->conf->pool_size, backlog = -1;
    if (opts) {
        lua_getfield(L, opts, "pool");
        if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
            snprintf(key, sizeof(key), "%s", lua_tostring(L, -1));
        else if (!lua_isnil(L, -1))
            return luaL_error(L, "bad \"pool\" option type: %s", luaL_typename(L, -1));
        lua_pop(L, 1);
        lua_getfield(L, opts, "pool_size");
        if (!lua_isnil(L, -1)) {
            if (!lua_isnumber(L, -1) || lua_tointeger(L, -1) <= 0)
                return luaL_error(L, "bad \"pool_size\" option value: %s",
                                  lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
            pool_size = (int)lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
        lua_getfield(L, opts, "backlog");
        if (!lua_isnil(L, -1)) {
            if (!lua_isnumber(L, -1) || lua_tointeger(L, -1) < 0)
                return luaL_error(L, "bad \"backlog\" option value: %s",
                                  lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
            backlog = (int)lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
    }
    if (connected(s))
        sock_close(s); /* a connect on a connected socket closes it first, as OpenResty */
    s->tried = 1;
    free(s->pool_key);
    s->pool_key = rp_xstrdup(key);
    s->pool_size = pool_size;
    s->backlog = backlog;
    s->port = port;
    rp_lua_socket_dns(L, &s->dns);
    rp_lua_pool_t *pool = rp_lua_pool_get(key, pool_size, backlog);
    if (take_idle(s, pool)) {
        lua_pushinteger(L, 1);
        return 1;
    }
    if (rp_lua_pool_has_backlog(pool)) {
        int rc = rp_lua_pool_acquire(pool, &s->waiter, CONNECT_TMO(s));
        if (rc < 0)
            return push_err(L, "too many waiting connect operations");
        if (rc == 0) {
            s->hs_name = rp_xstrdup(host);
            s->waiter.wake = on_pool_wake;
            return wait_op(L, s, OP_POOL);
        }
        s->counted = 1;
        s->pool = pool;
    }
    return do_connect(L, s, host);
}

/* ---- reading and writing ---- */

static void ssl_errtext(lsock_t *s, int e, char *err, size_t len)
{
    unsigned long ee = ERR_peek_last_error();
    if (e == SSL_ERROR_SYSCALL && errno) {
        errtext(errno, err, len);
    } else if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ee == 0)) {
        snprintf(err, len, "closed");
    } else {
        const char *why = ee ? ERR_reason_error_string(ee) : NULL;
        snprintf(err, len, "%s", why ? why : "SSL error");
    }
    (void)s;
    ERR_clear_error();
}

/* Writes what it can of p: bytes written (> 0), 0 when it would block (*need: the
 * event to wait for), -1 on an error (err). */
static ssize_t io_send(lsock_t *s, const char *p, size_t n, short *need, char *err, size_t len)
{
    if (s->ssl) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_write(s->ssl, p, (int)(n > 1 << 30 ? 1 << 30 : n));
        if (rc > 0)
            return rc;
        int e = SSL_get_error(s->ssl, rc);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            *need = e == SSL_ERROR_WANT_WRITE ? EV_WRITE : EV_READ;
            return 0;
        }
        ssl_errtext(s, e, err, len);
        return -1;
    }
    for (;;) {
        ssize_t rc = send(s->fd, p, n, MSG_NOSIGNAL);
        if (rc >= 0)
            return rc > 0 ? rc : 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *need = EV_WRITE;
            return 0;
        }
        errtext(errno, err, len);
        return -1;
    }
}

/* Reads what the socket has into the buffer: bytes (> 0), 0 when it would block (*need),
 * -1 on an error (err), -2 at the end of the stream. */
static ssize_t io_recv(lsock_t *s, short *need, char *err, size_t len)
{
    if (s->start == s->end)
        s->start = s->end = 0;
    if (s->cap - s->end < READ_CHUNK) {
        if (s->start > 0) {
            memmove(s->buf, s->buf + s->start, s->end - s->start);
            s->end -= s->start;
            s->start = 0;
        }
        if (s->cap - s->end < READ_CHUNK) {
            s->cap = s->cap ? s->cap * 2 : READ_CHUNK;
            while (s->cap - s->end < READ_CHUNK)
                s->cap *= 2;
            s->buf = rp_xrealloc(s->buf, s->cap);
        }
    }
    size_t room = s->cap - s->end;
    if (s->ssl) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_read(s->ssl, s->buf + s->end, (int)(room > 1 << 30 ? 1 << 30 : room));
        if (rc > 0) {
            s->end += (size_t)rc;
            return rc;
        }
        int e = SSL_get_error(s->ssl, rc);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            *need = e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
            return 0;
        }
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
            ERR_clear_error();
            return -2;
        }
        ssl_errtext(s, e, err, len);
        return -1;
    }
    for (;;) {
        ssize_t rc = recv(s->fd, s->buf + s->end, room, 0);
        if (rc > 0) {
            s->end += (size_t)rc;
            return rc;
        }
        if (rc == 0)
            return -2;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *need = EV_READ;
            return 0;
        }
        errtext(errno, err, len);
        return -1;
    }
}

/* ---- send ---- */

/* Writes s's pending bytes: 1 done (results pushed on L), 0 waiting (armed). */
static int send_step(lsock_t *s, lua_State *L)
{
    char err[128];
    while (s->soff < s->slen) {
        short need = EV_WRITE;
        ssize_t n = io_send(s, s->sbuf + s->soff, s->slen - s->soff, &need, err, sizeof(err));
        if (n < 0) {
            sock_close(s);
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
        if (n == 0) {
            arm(s, need, SEND_TMO(s));
            return 0;
        }
        s->soff += (size_t)n;
    }
    lua_pushinteger(L, (lua_Integer)s->slen);
    free(s->sbuf);
    s->sbuf = NULL;
    return 1;
}

static int sock_send(lua_State *L)
{
    lsock_t *s = check_sock(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    if (!connected(s))
        return push_err(L, "closed");
    rp_lua_socket_flatten(L, 2);
    size_t len;
    const char *data = lua_tolstring(L, -1, &len);
    if (len == 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    /* at once if the socket takes it all (the common case): no copy */
    char err[128];
    short need = EV_WRITE;
    ssize_t n = io_send(s, data, len, &need, err, sizeof(err));
    if (n < 0) {
        sock_close(s);
        return push_err(L, err);
    }
    if ((size_t)n == len) {
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
    }
    s->sbuf = rp_xmalloc(len);
    memcpy(s->sbuf, data, len);
    s->slen = len;
    s->soff = (size_t)n;
    arm(s, need, SEND_TMO(s));
    return wait_op(L, s, OP_SEND);
}

/* ---- receive ---- */

static void consume_push(lsock_t *s, lua_State *L, size_t n, size_t skip)
{
    lua_pushlstring(L, s->buf + s->start, n);
    s->start += n + skip;
}

/* Pushes the buffer's bytes (what was read of an unfinished receive) and empties it. */
static void push_partial(lsock_t *s, lua_State *L)
{
    lua_pushlstring(L, s->buf ? s->buf + s->start : "", s->end - s->start);
    s->start = s->end = 0;
}

/* The longest tail of the buffer that begins the pattern: bytes that may not be handed
 * out before more arrive. */
static size_t held_back(const char *p, size_t n, const char *pat, size_t plen)
{
    size_t k = plen - 1 < n ? plen - 1 : n;
    for (; k > 0; k--) {
        if (memcmp(p + n - k, pat, k) == 0)
            return k;
    }
    return 0;
}

/* Completes the receive from the buffer if it can: the count of results pushed, or 0. */
static int recv_match(lsock_t *s, lua_State *L)
{
    size_t avail = s->end - s->start;
    const char *p = s->buf ? s->buf + s->start : "";
    switch (s->rmode) {
    case RECV_SIZE:
        if (avail < s->rsize)
            return 0;
        consume_push(s, L, s->rsize, 0);
        return 1;
    case RECV_ANY:
        if (avail == 0)
            return 0;
        consume_push(s, L, avail < s->rsize ? avail : s->rsize, 0);
        return 1;
    case RECV_LINE: {
        const char *nl = memchr(p, '\n', avail);
        if (nl == NULL)
            return 0;
        size_t n = (size_t)(nl - p);
        /* CRs are dropped, as OpenResty's *l does */
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < n; i++) {
            if (p[i] != '\r')
                luaL_addchar(&b, p[i]);
        }
        luaL_pushresult(&b);
        s->start += n + 1;
        return 1;
    }
    case RECV_UNTIL: {
        const char *m = s->patlen ? memmem(p, avail, s->pat, s->patlen) : p;
        if (s->rsize == 0) {
            if (m == NULL)
                return 0;
            size_t k = (size_t)(m - p);
            consume_push(s, L, k + (s->inclusive ? s->patlen : 0), s->inclusive ? 0 : s->patlen);
            return 1;
        }
        if (m) {
            /* as OpenResty: chunks of size while the data before the pattern lasts,
             * then the rest (maybe "") with the pattern consumed; the next call ends */
            size_t k = (size_t)(m - p);
            if (k >= s->rsize) {
                consume_push(s, L, s->rsize, 0);
                return 1;
            }
            consume_push(s, L, k + (s->inclusive ? s->patlen : 0), s->inclusive ? 0 : s->patlen);
            s->until_done = 1;
            return 1;
        }
        size_t safe = avail - held_back(p, avail, s->pat, s->patlen);
        if (safe >= s->rsize) {
            consume_push(s, L, s->rsize, 0);
            return 1;
        }
        return 0;
    }
    default: /* RECV_ALL: up to the end of the stream */
        return 0;
    }
}

/* Moves the receive on: results pushed on L (their count), or 0 when it waits (armed). */
static int recv_step(lsock_t *s, lua_State *L)
{
    char err[128];
    for (;;) {
        int n = recv_match(s, L);
        if (n)
            return n;
        if (s->eof) {
            if (s->rmode == RECV_ALL) {
                push_partial(s, L);
                return 1;
            }
            lua_pushnil(L);
            lua_pushliteral(L, "closed");
            push_partial(s, L);
            sock_close(s);
            return 3;
        }
        short need = EV_READ;
        ssize_t rc = io_recv(s, &need, err, sizeof(err));
        if (rc == 0) {
            arm(s, need, READ_TMO(s));
            return 0;
        }
        if (rc == -2) {
            s->eof = 1;
            continue;
        }
        if (rc < 0) {
            lua_pushnil(L);
            lua_pushstring(L, err);
            push_partial(s, L);
            sock_close(s);
            return 3;
        }
    }
}

static int start_recv(lua_State *L, lsock_t *s)
{
    if (!connected(s)) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        return 2;
    }
    int n = recv_step(s, L);
    if (n)
        return n;
    return wait_op(L, s, OP_RECV);
}

static int sock_receive(lua_State *L)
{
    lsock_t *s = check_sock(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    s->rmode = RECV_LINE;
    if (lua_gettop(L) >= 2 && !lua_isnil(L, 2)) {
        if (lua_type(L, 2) == LUA_TSTRING) {
            const char *pat = lua_tostring(L, 2);
            if (pat[0] == '*')
                pat++;
            if (strcmp(pat, "l") == 0)
                s->rmode = RECV_LINE;
            else if (strcmp(pat, "a") == 0)
                s->rmode = RECV_ALL;
            else
                return luaL_argerror(L, 2, "bad pattern argument");
        } else if (lua_isnumber(L, 2)) {
            lua_Number v = lua_tonumber(L, 2);
            if (v < 0)
                return luaL_argerror(L, 2, "bad pattern argument");
            s->rmode = RECV_SIZE;
            s->rsize = (size_t)v;
        } else {
            return luaL_argerror(L, 2, "bad pattern argument");
        }
    }
    return start_recv(L, s);
}

static int sock_receiveany(lua_State *L)
{
    lsock_t *s = check_sock(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    lua_Number v = luaL_checknumber(L, 2);
    if (v <= 0)
        return luaL_argerror(L, 2, "bad max argument");
    s->rmode = RECV_ANY;
    s->rsize = (size_t)v;
    return start_recv(L, s);
}

/* The iterator receiveuntil returns: upvalues the socket, the pattern, inclusive. */
static int until_iter(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lsock_t *s = check_sock(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    size_t size = 0;
    if (lua_gettop(L) >= 2 && !lua_isnil(L, 2)) {
        lua_Number v = luaL_checknumber(L, 2);
        if (v < 0)
            return luaL_argerror(L, 1, "bad size argument");
        size = (size_t)v;
    }
    if (s->until_done) { /* the pattern was reached: the end, then a new search */
        s->until_done = 0;
        lua_pushnil(L);
        return 1;
    }
    size_t plen;
    const char *pat = lua_tolstring(L, lua_upvalueindex(2), &plen);
    free(s->pat);
    s->pat = rp_xmalloc(plen + 1);
    memcpy(s->pat, pat, plen);
    s->patlen = plen;
    s->inclusive = lua_toboolean(L, lua_upvalueindex(3));
    s->rmode = RECV_UNTIL;
    s->rsize = size;
    return start_recv(L, s);
}

static int sock_receiveuntil(lua_State *L)
{
    check_sock(L);
    size_t plen;
    luaL_checklstring(L, 2, &plen);
    if (plen == 0)
        return push_err(L, "pattern is empty");
    int inclusive = 0;
    if (lua_gettop(L) >= 3 && lua_istable(L, 3)) {
        lua_getfield(L, 3, "inclusive");
        if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
            return luaL_error(L, "bad \"inclusive\" option value type: %s", luaL_typename(L, -1));
        inclusive = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushboolean(L, inclusive);
    lua_pushcclosure(L, until_iter, 3);
    return 1;
}

/* ---- TLS ---- */

static int session_gc(lua_State *L)
{
    SSL_SESSION **u = luaL_checkudata(L, 1, SESSION_MT);
    if (*u) {
        SSL_SESSION_free(*u);
        *u = NULL;
    }
    return 0;
}

static int is_address(const char *name)
{
    unsigned char b[16];
    return inet_pton(AF_INET, name, b) == 1 || inet_pton(AF_INET6, name, b) == 1;
}

/* The handshake's end: the verdicts, then true or the session. */
static int hs_results(lsock_t *s, lua_State *L)
{
    if (s->hs_verify) {
        long v = SSL_get_verify_result(s->ssl);
        X509 *cert = SSL_get_peer_certificate(s->ssl);
        char err[256];
        if (cert == NULL) {
            snprintf(err, sizeof(err), "no peer certificate");
        } else if (v != X509_V_OK) {
            snprintf(err, sizeof(err), "%ld: %s", v, X509_verify_cert_error_string(v));
            rp_log_error(RP_LOG_ERR, 0, "lua ssl certificate verify error: (%s)", err);
        } else if (s->hs_name &&
                   (is_address(s->hs_name) ? X509_check_ip_asc(cert, s->hs_name, 0)
                                           : X509_check_host(cert, s->hs_name, 0, 0, NULL)) != 1) {
            snprintf(err, sizeof(err), "certificate host mismatch");
            rp_log_error(RP_LOG_ERR, 0, "lua ssl certificate does not match host \"%s\"",
                         s->hs_name);
        } else {
            err[0] = '\0';
        }
        if (cert)
            X509_free(cert);
        if (err[0]) {
            sock_close(s);
            lua_pushnil(L);
            lua_pushstring(L, err);
            return 2;
        }
    }
    if (!s->hs_want_session) {
        lua_pushboolean(L, 1);
        return 1;
    }
    SSL_SESSION *sess = SSL_get1_session(s->ssl);
    if (sess == NULL) {
        lua_pushboolean(L, 1);
        return 1;
    }
    SSL_SESSION **u = lua_newuserdata(L, sizeof(*u));
    *u = sess;
    luaL_getmetatable(L, SESSION_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* Moves the handshake on: results pushed (count), or 0 waiting (armed). */
static int hs_step(lsock_t *s, lua_State *L)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1)
        return hs_results(s, L);
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        arm(s, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE, CONNECT_TMO(s));
        return 0;
    }
    unsigned long ee = ERR_peek_last_error();
    const char *why = ee ? ERR_reason_error_string(ee) : NULL;
    rp_log_error(RP_LOG_ERR, 0, "lua ssl handshake failed: %s",
                 why ? why : (errno ? strerror(errno) : "the peer closed the connection"));
    ERR_clear_error();
    sock_close(s);
    lua_pushnil(L);
    lua_pushliteral(L, "handshake failed");
    return 2;
}

static int sock_sslhandshake(lua_State *L)
{
    lsock_t *s = check_sock(L);
    rp_lua_check_phase(L, RP_LUA_SOCKET_PHASES);
    if (!s->tried)
        return luaL_error(L, "socket is never created nor connected");
    if (!connected(s))
        return push_err(L, "closed");
    int n = lua_gettop(L);
    SSL_SESSION *reuse = NULL;
    s->hs_want_session = 1;
    if (n >= 2) {
        if (lua_type(L, 2) == LUA_TBOOLEAN && !lua_toboolean(L, 2))
            s->hs_want_session = 0;
        else if (lua_type(L, 2) == LUA_TUSERDATA) {
            SSL_SESSION **u = luaL_checkudata(L, 2, SESSION_MT);
            reuse = *u;
        }
    }
    const char *name = NULL;
    if (n >= 3 && !lua_isnil(L, 3))
        name = luaL_checkstring(L, 3);
    s->hs_verify = n >= 4 && lua_toboolean(L, 4);
    free(s->hs_name);
    s->hs_name = name ? rp_xstrdup(name) : NULL;
    if (s->ssl) /* taken from the pool: TLS is up already */
        return hs_results(s, L);
    SSL_CTX *ctx = rp_lua_socket_ssl_ctx(s->conf);
    if (ctx == NULL)
        return push_err(L, "failed to create ssl context");
    s->ssl = SSL_new(ctx);
    if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1) {
        ERR_clear_error();
        return push_err(L, "failed to create ssl connection");
    }
    SSL_set_connect_state(s->ssl);
    if (name && !is_address(name))
        SSL_set_tlsext_host_name(s->ssl, name);
    if (reuse)
        SSL_set_session(s->ssl, reuse);
    int rc = hs_step(s, L);
    if (rc)
        return rc;
    return wait_op(L, s, OP_HANDSHAKE);
}

/* ---- the event of a pending operation ---- */

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    lsock_t *s = arg;
    (void)fd;
    if (s->co == NULL)
        return;
    lua_State *L = s->co->L;
    int n;
    switch (s->op) {
    case OP_CONNECT: {
        if (what & EV_TIMEOUT) {
            connect_failed(s, "timeout");
            return;
        }
        int e = 0;
        socklen_t l = sizeof(e);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &e, &l) != 0)
            e = errno;
        if (e) {
            char err[128];
            connect_failed(s, errtext(e, err, sizeof(err)));
            return;
        }
        connect_done(s);
        return;
    }
    case OP_SEND:
        if (what & EV_TIMEOUT) {
            finish_err(s, "timeout", 1);
            return;
        }
        n = send_step(s, L);
        break;
    case OP_RECV:
        if (what & EV_TIMEOUT) {
            /* the connection stays: a later receive may still get the answer */
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            push_partial(s, L);
            finish(s, 3);
            return;
        }
        n = recv_step(s, L);
        break;
    case OP_HANDSHAKE:
        if (what & EV_TIMEOUT) {
            finish_err(s, "timeout", 1);
            return;
        }
        n = hs_step(s, L);
        break;
    default:
        return;
    }
    if (n)
        finish(s, n);
}

/* ---- the rest of the methods ---- */

static int64_t check_ms(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx))
        return 0;
    lua_Number v = luaL_checknumber(L, idx);
    if (v < 0)
        luaL_error(L, "bad timeout value");
    return (int64_t)v;
}

static int sock_settimeout(lua_State *L)
{
    lsock_t *s = check_sock(L);
    int64_t ms = check_ms(L, 2);
    s->connect_timeout = s->send_timeout = s->read_timeout = ms;
    return 0;
}

static int sock_settimeouts(lua_State *L)
{
    lsock_t *s = check_sock(L);
    s->connect_timeout = check_ms(L, 2);
    s->send_timeout = check_ms(L, 3);
    s->read_timeout = check_ms(L, 4);
    return 0;
}

static int sock_setoption(lua_State *L)
{
    lsock_t *s = check_sock(L);
    const char *opt = luaL_checkstring(L, 2);
    if (!connected(s))
        return push_err(L, "closed");
    int level = SOL_SOCKET, name, v;
    if (lua_isboolean(L, 3))
        v = lua_toboolean(L, 3);
    else
        v = (int)luaL_checkinteger(L, 3);
    if (strcmp(opt, "keepalive") == 0)
        name = SO_KEEPALIVE;
    else if (strcmp(opt, "reuseaddr") == 0)
        name = SO_REUSEADDR;
    else if (strcmp(opt, "tcp-nodelay") == 0) {
        level = IPPROTO_TCP;
        name = TCP_NODELAY;
    } else if (strcmp(opt, "sndbuf") == 0)
        name = SO_SNDBUF;
    else if (strcmp(opt, "rcvbuf") == 0)
        name = SO_RCVBUF;
    else {
        lua_pushnil(L);
        lua_pushfstring(L, "unsupported option %s", opt);
        return 2;
    }
    if (setsockopt(s->fd, level, name, &v, sizeof(v)) != 0) {
        char err[128];
        return push_err(L, errtext(errno, err, sizeof(err)));
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int sock_getreusedtimes(lua_State *L)
{
    lsock_t *s = check_sock(L);
    if (!connected(s))
        return push_err(L, "closed");
    lua_pushinteger(L, s->reused);
    return 1;
}

static int sock_close_m(lua_State *L)
{
    lsock_t *s = check_sock(L);
    if (!connected(s))
        return push_err(L, "closed");
    sock_close(s);
    lua_pushinteger(L, 1);
    return 1;
}

static int sock_setkeepalive(lua_State *L)
{
    lsock_t *s = check_sock(L);
    if (!connected(s))
        return push_err(L, "closed");
    if (s->end > s->start) /* refused; the connection stays usable, as OpenResty's */
        return push_err(L, "unread data in buffer");
    int64_t timeout = s->conf->keepalive_timeout;
    if (!lua_isnoneornil(L, 2)) {
        lua_Number v = luaL_checknumber(L, 2);
        if (v >= 0) /* a negative one keeps lua_socket_keepalive_timeout, as OpenResty */
            timeout = (int64_t)v;
    }
    int size = s->pool_size;
    if (!lua_isnoneornil(L, 3)) {
        lua_Integer v = luaL_checkinteger(L, 3);
        if (v <= 0)
            return luaL_error(L,
                              "bad argument #3 to 'setkeepalive' (bad \"pool_size\" "
                              "option value: %d)",
                              (int)v);
        size = (int)v;
    }
    if (s->eof || s->pool_key == NULL) { /* the peer is gone: nothing to keep */
        sock_close(s);
        lua_pushinteger(L, 1);
        return 1;
    }
    rp_lua_pool_t *pool = rp_lua_pool_get(s->pool_key, size, s->backlog);
    rp_lua_idle_t idle = {.fd = s->fd, .ssl = s->ssl, .reused = s->reused};
    if (s->ev) {
        event_free(s->ev);
        s->ev = NULL;
    }
    s->fd = -1;
    s->ssl = NULL;
    if (s->counted && s->pool != pool) {
        s->counted = 0;
        rp_lua_pool_release(s->pool);
    }
    int counted = s->counted;
    s->counted = 0; /* pool_put moves its slot from busy to idle */
    rp_lua_pool_put(pool, &idle, timeout, counted);
    lua_pushinteger(L, 1);
    return 1;
}

/* ngx.socket.connect(host, port | "unix:path", opts?): tcp() then connect. */
static const char connect_lua[] = "local tcp = ...\n"
                                  "return function(...)\n"
                                  "  local sock = tcp()\n"
                                  "  local ok, err = sock:connect(...)\n"
                                  "  if not ok then return nil, err end\n"
                                  "  return sock\n"
                                  "end\n";

static const luaL_Reg methods[] = {
    {"connect", sock_connect},
    {"send", sock_send},
    {"receive", sock_receive},
    {"receiveany", sock_receiveany},
    {"receiveuntil", sock_receiveuntil},
    {"settimeout", sock_settimeout},
    {"settimeouts", sock_settimeouts},
    {"setoption", sock_setoption},
    {"setkeepalive", sock_setkeepalive},
    {"getreusedtimes", sock_getreusedtimes},
    {"sslhandshake", sock_sslhandshake},
    {"close", sock_close_m},
    {NULL, NULL},
};

void rp_lua_api_socket(lua_State *L, rp_cycle_t *cycle)
{
    (void)cycle;
    luaL_newmetatable(L, SESSION_MT);
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, MT); /* the state */
    lua_pushcfunction(L, sock_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, OBJ_MT); /* the object */
    lua_newtable(L);
    for (const luaL_Reg *m = methods; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    rp_lua_udp_register(L);

    lua_newtable(L); /* ngx.socket */
    lua_pushcfunction(L, sock_new);
    lua_setfield(L, -2, "tcp");
    lua_pushcfunction(L, rp_lua_udp_new);
    lua_setfield(L, -2, "udp");
    if (luaL_loadbuffer(L, connect_lua, sizeof(connect_lua) - 1, "=ngx.socket.connect") == 0) {
        lua_pushcfunction(L, sock_new);
        lua_call(L, 1, 1);
        lua_setfield(L, -2, "connect");
    } else {
        lua_pop(L, 1);
    }
    lua_setfield(L, -2, "socket");
}
