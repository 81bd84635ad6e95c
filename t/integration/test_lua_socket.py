"""OpenResty's cosockets in rampart's Lua hooks (ngx.socket.tcp / udp / connect):
non-blocking sockets on the worker's event loop, waited on by yielding the hook.

Each test runs real peers on loopback: a redis-server started here (its pid ended
after), the test backend (backend.py), Python servers for what must misbehave (never
answer, echo datagrams, speak TLS with the test CA). Answers come back over HTTP/1.1
and HTTP/2 clients. The same Redis script also runs under Debian's nginx with its
lua module (libnginx-mod-http-lua), and both must answer the same.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

import harness
import reference_nginx
from dns_server import DnsServer
from h2client import H2Client
from test_proxy_tls import intermediate_leaf

REDIS_BIN = "/usr/bin/redis-server"

# -- peers -----------------------------------------------------------------------


class Redis:
    """A redis-server this test started on a free loopback port; ended by its pid."""

    def __init__(self, folder):
        if not os.access(REDIS_BIN, os.X_OK):
            pytest.fail(f"{REDIS_BIN} not found: install the Debian package redis-server",
                        pytrace=False)
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = harness.free_port()
        self.log = self.dir / "redis.log"
        self.proc = subprocess.Popen(
            [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_for(self._answers, timeout=10, what=f"redis-server on {self.port}")

    def _answers(self):
        if self.proc.poll() is not None:
            raise harness.RampartError(f"redis-server exited: {self.log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path / "redis")
    yield r
    r.stop()


class Server:
    """A TCP (or unix-socket) server on a thread: handler(conn) per connection."""

    def __init__(self, handler, unix=None, tls=None):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(str(unix))
            self.port = None
        else:
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        self.handler = handler
        self.tls = tls
        self.conns = []
        self.accepted = 0
        self.stopped = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.tls:
                c = self.tls.wrap_socket(c, server_side=True)
                self.conns.append(c)
            self.handler(c)
        except (OSError, ssl.SSLError):
            pass

    def stop(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def line_echo(c):
    """Answers each line with "echo: LINE"; several lines in one go, as received."""
    f = c.makefile("rb")
    for line in f:
        c.sendall(b"echo: " + line)


def silent(c):
    """Reads and never answers."""
    while c.recv(65536):
        pass


# -- running --------------------------------------------------------------------


def serve(rampart, locations, http_extra="", workers=1, main=""):
    """Starts rampart with one server holding these locations (HTTP/1.1 and, with prior
    knowledge, HTTP/2 on the same port)."""
    port = harness.free_port()
    rampart.configure(
        f"{http_extra}\nserver {{\n    listen 127.0.0.1:{port} http2;\n{locations}\n}}\n",
        workers=workers, main=main)
    rampart.start()
    return port


def h2_get(port, path):
    with H2Client(port) as c:
        (r,) = c.exchange([("GET", path, [], b"")])
    return r.status, bytes(r.body).decode()


REDIS_CLIENT = r"""
local function redis_cmd(sock, ...)
    -- RESP, as a Redis client written for OpenResty does it
    local args = {...}
    local req = {"*", #args, "\r\n"}
    for _, a in ipairs(args) do
        a = tostring(a)
        req[#req + 1] = {"$", #a, "\r\n", a, "\r\n"}
    end
    return req
end

local function read_reply(sock)
    local line, err = sock:receive()
    if not line then return nil, err end
    local t, rest = line:sub(1, 1), line:sub(2)
    if t == "+" or t == "-" then return rest end
    if t == ":" then return tonumber(rest) end
    if t == "$" then
        local n = tonumber(rest)
        if n < 0 then return ngx.null end
        local data, err = sock:receive(n + 2)
        if not data then return nil, err end
        return data:sub(1, n)
    end
    return nil, "unknown reply " .. line
end

local function redis_script(port, key)
    local sock = ngx.socket.tcp()
    sock:settimeout(5000)
    local ok, err = sock:connect("127.0.0.1", port)
    if not ok then return "connect: " .. err end
    local out = {}
    sock:send(redis_cmd(sock, "SET", key, "hello"))
    out[#out + 1] = read_reply(sock)
    sock:send(redis_cmd(sock, "GET", key))
    out[#out + 1] = read_reply(sock)
    sock:send(redis_cmd(sock, "DEL", key .. ":n"))
    read_reply(sock)
    -- pipelining: three commands in one send of a nested table
    local bytes = sock:send({redis_cmd(sock, "INCR", key .. ":n"),
                             redis_cmd(sock, "INCRBY", key .. ":n", 10),
                             redis_cmd(sock, "GET", key .. ":n")})
    for i = 1, 3 do out[#out + 1] = tostring(read_reply(sock)) end
    sock:send(redis_cmd(sock, "GET", key .. ":missing"))
    out[#out + 1] = tostring(read_reply(sock) == ngx.null)
    sock:setkeepalive()
    return table.concat(out, ",") .. " sent=" .. tostring(bytes > 0)
end
"""

REDIS_ANSWER = "OK,hello,1,11,11,true sent=true"


def redis_location(redis_port):
    return (f"    location /redis {{\n        content_by_lua_block {{\n{REDIS_CLIENT}\n"
            f"            ngx.say(redis_script({redis_port}, 'k'))\n"
            f"        }}\n    }}\n")


# -- Redis -------------------------------------------------------------------------


def test_redis_client_over_a_cosocket_answers_http1_and_http2(rampart, redis):
    port = serve(rampart, redis_location(redis.port))
    r = harness.get(port, "/redis")
    assert (r.status, r.text) == (200, REDIS_ANSWER + "\n")
    assert h2_get(port, "/redis") == (200, REDIS_ANSWER + "\n")


def nginx_answers(tmp_path, locations, paths):
    """Runs these locations under Debian's nginx with its lua module; the answers to a GET
    of each path, as (status, body) pairs."""
    reference_nginx.require()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nport = harness.free_port()
    nginx.configure(f"server {{ listen 127.0.0.1:{nport};\n{locations}\n}}")
    # the lua module is loaded in the main context, ahead of everything
    nginx.conf_text = ("load_module /usr/lib/nginx/modules/ndk_http_module.so; "
                       "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so; "
                       + nginx.conf_text)
    nginx.conf_path.write_text(nginx.conf_text)
    nginx.start()
    try:
        out = []
        for path in paths:
            r = harness.get(nport, path)
            out.append((r.status, r.text))
        return out
    finally:
        nginx.stop()


def test_redis_script_answers_as_under_nginx_with_the_lua_module(rampart, redis, tmp_path):
    port = serve(rampart, redis_location(redis.port))
    mine = harness.get(port, "/redis")
    theirs = nginx_answers(tmp_path, redis_location(redis.port), ["/redis"])
    assert [(mine.status, mine.text)] == theirs
    assert mine.text == REDIS_ANSWER + "\n"


# -- HTTP through a cosocket -------------------------------------------------------

HTTP_GET = r"""
local sock = ngx.socket.tcp()
sock:settimeout(5000)
local ok, err = sock:connect("localhost", %d)
if not ok then ngx.say("connect: ", err) return end
local bytes, err = sock:send("GET /x?body=from-backend HTTP/1.1\r\nHost: b\r\n\r\n")
if not bytes then ngx.say("send: ", err) return end
local read_head = sock:receiveuntil("\r\n\r\n")
local head, err = read_head()
if not head then ngx.say("head: ", err) return end
local len = tonumber(head:match("[Cc]ontent%%-[Ll]ength: *(%%d+)"))
local body, err = sock:receive(len)
if not body then ngx.say("body: ", err) return end
sock:setkeepalive()
ngx.print(body)
"""


def test_http_get_to_a_backend_from_an_access_hook(rampart, backend):
    loc = (f"    location / {{\n        access_by_lua_block {{\n{HTTP_GET % backend.port}\n"
           f"            ngx.exit(ngx.OK)\n        }}\n"
           f"        content_by_lua_block {{ ngx.say(' then content') }}\n    }}\n")
    port = serve(rampart, loc)
    r = harness.get(port, "/")
    assert (r.status, r.text) == (200, "from-backend then content\n")
    assert h2_get(port, "/") == (200, "from-backend then content\n")


# -- keepalive pools -------------------------------------------------------------


def test_setkeepalive_reuses_the_connection_across_requests(rampart, redis):
    loc = f"""    location /reuse {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {redis.port}))
            local n = sock:getreusedtimes()
            sock:send("PING\\r\\n")
            local line = sock:receive()
            local ok, err = sock:setkeepalive(10000, 5)
            ngx.say(n, " ", line, " ", ok)
        }}
    }}
"""
    port = serve(rampart, loc)
    got = [harness.get(port, "/reuse").text for _ in range(3)]
    got.append(h2_get(port, "/reuse")[1])
    assert got == ["0 +PONG 1\n", "1 +PONG 1\n", "2 +PONG 1\n", "3 +PONG 1\n"]


def test_a_named_pool_is_not_shared_with_another_name(rampart, redis):
    loc = "".join(f"""    location /{p} {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {redis.port}, {{pool = "{p}"}}))
            ngx.say(sock:getreusedtimes())
            sock:setkeepalive()
        }}
    }}
""" for p in ("a", "b"))
    port = serve(rampart, loc)
    got = [harness.get(port, f"/{p}").text for p in ("a", "a", "b", "a")]
    assert got == ["0\n", "1\n", "0\n", "2\n"]


def test_setkeepalive_with_unread_bytes_is_refused_and_the_socket_stays(rampart, redis, tmp_path):
    loc = f"""    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {redis.port}))
            sock:send("PING\\r\\nPING\\r\\n")
            sock:receive()
            sock:receive(1)
            ngx.say(sock:setkeepalive())
            ngx.say(sock:send("x"))
        }}
    }}
"""
    port = serve(rampart, loc)
    expected = "nilunread data in buffer\n1\n"
    assert harness.get(port, "/").text == expected
    assert nginx_answers(tmp_path, loc, ["/"]) == [(200, expected)]


def test_backlog_full_fails_the_extra_connect(rampart, redis, tmp_path):
    loc = f"""    location / {{
        content_by_lua_block {{
            local opts = {{pool = "capped", pool_size = 1, backlog = 0}}
            local a = ngx.socket.tcp()
            ngx.say(a:connect("127.0.0.1", {redis.port}, opts))
            local b = ngx.socket.tcp()
            ngx.say(b:connect("127.0.0.1", {redis.port}, opts))
            a:close()
            ngx.say(b:connect("127.0.0.1", {redis.port}, opts))
        }}
    }}
"""
    port = serve(rampart, loc)
    expected = "1\nniltoo many waiting connect operations\n1\n"
    assert harness.get(port, "/").text == expected
    assert nginx_answers(tmp_path, loc, ["/"]) == [(200, expected)]


def test_a_connect_waiting_in_the_backlog_takes_the_connection_kept_alive(rampart, redis):
    loc = f"""    location /hold {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {redis.port},
                                {{pool = "one", pool_size = 1, backlog = 5}}))
            ngx.log(ngx.NOTICE, "holding the pool's connection")
            ngx.sleep(0.5)
            sock:setkeepalive()
            ngx.say("held")
        }}
    }}
    location /wait {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            local ok, err = sock:connect("127.0.0.1", {redis.port},
                                         {{pool = "one", pool_size = 1, backlog = 5}})
            ngx.say(ok, err, " reused ", sock:getreusedtimes())
        }}
    }}
"""
    port = serve(rampart, loc)
    held = {}
    t = threading.Thread(target=lambda: held.setdefault("r", harness.get(port, "/hold")))
    t.start()
    rampart.wait_log("holding the pool's connection")
    r = harness.get(port, "/wait")
    t.join()
    assert held["r"].text == "held\n"
    assert r.text == "1nil reused 1\n"


# -- timeouts and errors ------------------------------------------------------------


def test_a_peer_that_never_answers_times_out_the_receive(rampart):
    srv = Server(silent)
    try:
        loc = f"""    lua_socket_read_timeout 300ms;
    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {srv.port}))
            sock:send("hello\\n")
            local t0 = ngx.now()
            local data, err, partial = sock:receive()
            ngx.update_time()
            local took = ngx.now() - t0
            ngx.say(data, " ", err, " [", partial, "] ", took >= 0.25)
            -- a read timeout leaves the connection open
            sock:settimeout(100)
            ngx.say(sock:send("again\\n"))
            ngx.say(sock:receive(10))
        }}
    }}
"""
        port = serve(rampart, loc)
        t0 = time.monotonic()
        r = harness.get(port, "/")
        assert r.text == "nil timeout [] true\n6\nniltimeout\n"
        assert time.monotonic() - t0 < 10
    finally:
        srv.stop()


def test_partial_data_comes_with_the_timeout(rampart, tmp_path):
    def half(c):
        c.recv(100)
        c.sendall(b"abc")
        silent(c)
    srv = Server(half)
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            sock:settimeouts(1000, 1000, 200)
            assert(sock:connect("127.0.0.1", {srv.port}))
            sock:send("go")
            ngx.say(sock:receive(10))
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/").text == "niltimeoutabc\n"
        assert nginx_answers(tmp_path, loc, ["/"]) == [(200, "niltimeoutabc\n")]
    finally:
        srv.stop()


def test_a_closed_port_refuses_the_connect(rampart):
    closed = harness.free_port()
    loc = f"""    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            ngx.say(sock:connect("127.0.0.1", {closed}))
            ngx.say(ngx.socket.connect("localhost", {closed}))
            ngx.say(sock:send("x"))
        }}
    }}
"""
    port = serve(rampart, loc)
    assert harness.get(port, "/").text == ("nilconnection refused\nnilconnection refused\n"
                                           "nilclosed\n")


def test_names_are_resolved_by_the_resolver_in_effect(rampart, redis):
    dns = DnsServer().start()
    try:
        dns.set("redis.test", a=["127.0.0.1"])
        loc = f"""    resolver {dns.addr} ipv6=off;
    resolver_timeout 5s;
    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            ngx.say(sock:connect("redis.test", {redis.port}))
            sock:send("PING\\r\\n")
            ngx.say(sock:receive())
            ngx.say(sock:connect("missing.test", {redis.port}))
            local u = ngx.socket.udp()
            ngx.say(u:setpeername("redis.test", 9))
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/").text == (
            "1\n+PONG\nnilmissing.test could not be resolved (3: Host not found)\n1\n")
        assert dns.queries("redis.test", "A") >= 1
    finally:
        dns.stop()


def test_the_connect_timeout_directive_ends_a_connect_nobody_accepts(rampart):
    # a listener whose accept queue is full: the kernel drops further SYNs
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    fillers = []
    try:
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(lsn.getsockname())
            fillers.append(f)
        time.sleep(0.2)
        loc = f"""    lua_socket_connect_timeout 300ms;
    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            ngx.say(sock:connect("127.0.0.1", {lsn.getsockname()[1]}))
        }}
    }}
"""
        port = serve(rampart, loc)
        t0 = time.monotonic()
        assert harness.get(port, "/").text == "niltimeout\n"
        assert time.monotonic() - t0 < 10
    finally:
        for f in fillers:
            f.close()
        lsn.close()


def test_the_send_timeout_directive_ends_a_send_the_peer_does_not_take(rampart):
    lsn = socket.socket()  # accepted by the kernel, never read
    lsn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(8)
    try:
        loc = f"""    lua_socket_send_timeout 300ms;
    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {lsn.getsockname()[1]}))
            ngx.say(sock:setoption("sndbuf", 4096))
            ngx.say(sock:send(string.rep("x", 8 * 1024 * 1024)))
            ngx.say(sock:send("more"))
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/").text == "true\nniltimeout\nnilclosed\n"
    finally:
        lsn.close()


# -- reading patterns, unix sockets, coroutines ------------------------------------


def test_receive_patterns_over_a_unix_socket_answer_as_under_nginx(rampart, tmp_path):
    path = tmp_path / "echo.sock"

    def feed(c):
        c.recv(100)
        c.sendall(b"line one\r\nline two\nABCDEFGHIJ--end--xy--end----end--tail bytes")
        c.shutdown(socket.SHUT_WR)
        silent(c)
    srv = Server(feed, unix=path)
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("unix:{path}"))
            sock:send("go")
            ngx.say("[", sock:receive("*l"), "]")
            ngx.say("[", sock:receive(), "]")
            ngx.say("[", sock:receive(3), "]")
            ngx.say("[", sock:receiveany(2), "]")
            local it = sock:receiveuntil("--end--")
            for i = 1, 6 do ngx.print("[", tostring(it(2)), "]") end
            ngx.say()
            ngx.say("[", tostring(it()), "]")
            ngx.say("[", sock:receive("*a"), "]")
            ngx.say(sock:receive())
        }}
    }}
"""
        port = serve(rampart, loc)
        expected = ("[line one]\n[line two]\n[ABC]\n[DE]\n"
                    "[FG][HI][J][nil][xy][]\n[nil]\n[--end--tail bytes]\nnilclosed\n")
        assert harness.get(port, "/").text == expected
        assert nginx_answers(tmp_path, loc, ["/"]) == [(200, expected)]
    finally:
        srv.stop()


def test_receiveuntil_inclusive_and_a_closed_peer_give_the_partial(rampart, tmp_path):
    def feed(c):
        c.recv(100)
        c.sendall(b"head\r\n\r\nbody-without-end")
        c.close()
    srv = Server(feed)
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {srv.port}))
            sock:send("go")
            local it = sock:receiveuntil("\\r\\n\\r\\n", {{inclusive = true}})
            ngx.say(#it())
            local rest = sock:receiveuntil("END")
            ngx.say(rest())
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/").text == "8\nnilclosedbody-without-end\n"
        assert nginx_answers(tmp_path, loc, ["/"]) == [(200, "8\nnilclosedbody-without-end\n")]
    finally:
        srv.stop()


def test_a_cosocket_waits_inside_a_user_coroutine(rampart):
    srv = Server(line_echo)
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local co = coroutine.create(function(a)
                local sock = ngx.socket.tcp()
                assert(sock:connect("127.0.0.1", {srv.port}))
                sock:send(a .. "\\n")
                local got = sock:receive()
                local b = coroutine.yield(got)
                sock:send(b .. "\\n")
                return sock:receive()
            end)
            local ok1, r1 = coroutine.resume(co, "first")
            local ok2, r2 = coroutine.resume(co, "second")
            local w = coroutine.wrap(function()
                local sock = ngx.socket.tcp()
                assert(sock:connect("127.0.0.1", {srv.port}))
                sock:send("wrapped\\n")
                return sock:receive()
            end)
            ngx.say(ok1, " ", r1, "|", ok2, " ", r2, "|", w())
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/").text == ("true echo: first|true echo: second|"
                                               "echo: wrapped\n")
    finally:
        srv.stop()


def test_a_socket_of_another_request_is_a_bad_request(rampart):
    srv = Server(line_echo)
    try:
        loc = f"""    location /make {{
        content_by_lua_block {{
            kept = ngx.socket.tcp()
            assert(kept:connect("127.0.0.1", {srv.port}))
            ngx.say("made")
        }}
    }}
    location /use {{
        content_by_lua_block {{
            local ok, err = pcall(kept.send, kept, "x\\n")
            ngx.say(ok, " ", err)
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/make").text == "made\n"
        r = harness.get(port, "/use")
        assert r.text.startswith("false ") and r.text.rstrip().endswith("bad request"), r.text
    finally:
        srv.stop()


def test_cosockets_are_disabled_where_a_hook_may_not_wait(rampart):
    loc = """    location / {
        set_by_lua_block $x { local ok, err = pcall(ngx.socket.tcp) return tostring(err) }
        return 200 "$x";
    }
"""
    port = serve(rampart, loc)
    assert harness.get(port, "/").text == "API disabled in the context of set"


# -- TLS -----------------------------------------------------------------------------


def tls_server(certs, chain=None, key=None):
    """A TLS line server for a.test (the test CA's, or the chain given), answering each
    line with the SNI name it was given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain or certs.cert("a.test"), key or certs.key("a.test"))
    names = {}

    def sni(sslsock, name, _ctx):
        names[id(sslsock)] = name

    ctx.sni_callback = sni

    def handler(c):
        f = c.makefile("rb")
        for line in f:
            c.sendall(b"sni=%s %s" % (str(names.get(id(c))).encode(), line))
    return Server(handler, tls=ctx)


TLS_SCRIPT = r"""
local function try(name, verify)
    local sock = ngx.socket.tcp()
    sock:settimeout(5000)
    assert(sock:connect("127.0.0.1", %d))
    local sess, err = sock:sslhandshake(nil, name, verify)
    if not sess then return "nil " .. err end
    sock:send("ping\n")
    local line, err = sock:receive()
    sock:close()
    return type(sess) .. " " .. tostring(line)
end
"""


def test_sslhandshake_verifies_the_certificate_and_its_name(rampart, certs):
    srv = tls_server(certs)
    try:
        script = TLS_SCRIPT % srv.port
        loc = f"""    location /trusted {{
        lua_ssl_trusted_certificate {certs.ca};
        content_by_lua_block {{
{script}
            ngx.say(try("a.test", true))
            ngx.say(try("b.test", true))
            ngx.say(try("b.test", false))
        }}
    }}
    location /untrusted {{
        content_by_lua_block {{
{script}
            ngx.say(try("a.test", true))
            ngx.say(try(nil, false))
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/trusted").text == (
            "userdata sni=a.test ping\n"
            "nil certificate host mismatch\n"
            "userdata sni=b.test ping\n")
        assert h2_get(port, "/untrusted") == (
            200, "nil 20: unable to get local issuer certificate\nuserdata sni=None ping\n")
        rampart.wait_log(r"lua ssl certificate verify error: \(20: unable to get local issuer")
    finally:
        srv.stop()


def test_the_verify_depth_directive_counts_intermediate_cas(rampart, certs, tmp_path):
    chain, key = intermediate_leaf(certs, tmp_path)
    srv = tls_server(certs, chain, key)
    try:
        script = TLS_SCRIPT % srv.port
        loc = "".join(f"""    location /{name} {{
        lua_ssl_trusted_certificate {certs.ca};
        {extra}
        content_by_lua_block {{
{script}
            ngx.say(try("depth.test", true))
        }}
    }}
""" for name, extra in (("shallow", "lua_ssl_verify_depth 0;"), ("default", "")))
        port = serve(rampart, loc)
        assert harness.get(port, "/shallow").text == "nil 22: certificate chain too long\n"
        assert harness.get(port, "/default").text == "userdata sni=depth.test ping\n"
    finally:
        srv.stop()


def test_a_tls_connection_kept_alive_is_reused_with_its_session(rampart, certs):
    srv = tls_server(certs)
    try:
        loc = f"""    lua_ssl_trusted_certificate {certs.ca};
    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {srv.port}))
            local n = sock:getreusedtimes()
            local ok, err = sock:sslhandshake(false, "a.test", true)
            sock:send({{"re", "use", "\\n"}})
            ngx.say(n, " ", ok, " ", sock:receive())
            sock:setkeepalive()
        }}
    }}
"""
        port = serve(rampart, loc)
        got = [harness.get(port, "/").text for _ in range(3)]
        assert got == ["0 true sni=a.test reuse\n", "1 true sni=a.test reuse\n",
                       "2 true sni=a.test reuse\n"]
        assert srv.accepted == 1
    finally:
        srv.stop()


# -- UDP ------------------------------------------------------------------------------


def test_udp_send_and_receive_with_a_python_echo_server(rampart):
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind(("127.0.0.1", 0))

    def echo():
        while True:
            try:
                data, addr = us.recvfrom(65536)
            except OSError:
                return
            if data != b"quiet":
                us.sendto(b"echo:" + data, addr)
    threading.Thread(target=echo, daemon=True).start()
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local u = ngx.socket.udp()
            ngx.say(u:setpeername("localhost", {us.getsockname()[1]}))
            ngx.say(u:send({{"da", "ta"}}))
            ngx.say(u:receive())
            u:send("0123456789")
            ngx.say(u:receive(8))
            u:settimeout(200)
            u:send("quiet")
            ngx.say(u:receive())
            ngx.say(u:close())
            ngx.say(u:send("x"))
        }}
    }}
"""
        port = serve(rampart, loc)
        expected = "1\n1\necho:data\necho:012\nniltimeout\n1\nnilclosed\n"
        assert harness.get(port, "/").text == expected
        assert h2_get(port, "/") == (200, expected)
    finally:
        us.close()


# -- where cosockets run ------------------------------------------------------------


def test_init_worker_and_log_hooks_use_cosockets(rampart, redis):
    http = f"""init_worker_by_lua_block {{
    local sock = ngx.socket.tcp()
    assert(sock:connect("127.0.0.1", {redis.port}))
    sock:send("SET from:init_worker yes\\r\\n")
    ngx.log(ngx.NOTICE, "init_worker redis said ", sock:receive())
    sock:close()
}}"""
    loc = f"""    location / {{
        content_by_lua_block {{ ngx.say("logged later") }}
        log_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {redis.port}))
            sock:send("INCR from:log\\r\\n")
            ngx.log(ngx.NOTICE, "log hook redis said ", sock:receive())
            sock:setkeepalive()
        }}
    }}
"""
    port = serve(rampart, loc, http_extra=http)
    rampart.wait_log(r"init_worker redis said \+OK")
    assert harness.get(port, "/").text == "logged later\n"
    rampart.wait_log(r"log hook redis said :1")
    assert h2_get(port, "/") == (200, "logged later\n")
    rampart.wait_log(r"log hook redis said :2")


# -- directives -------------------------------------------------------------------------


def test_the_pool_size_and_keepalive_timeout_directives(rampart, redis):
    loc = f"""    lua_socket_pool_size 1;
    lua_socket_keepalive_timeout 200ms;
    location /two {{
        content_by_lua_block {{
            local a, b = ngx.socket.tcp(), ngx.socket.tcp()
            assert(a:connect("127.0.0.1", {redis.port}))
            assert(b:connect("127.0.0.1", {redis.port}))
            a:setkeepalive()
            b:setkeepalive()    -- the pool holds one: a's connection is closed
            local c, d = ngx.socket.tcp(), ngx.socket.tcp()
            assert(c:connect("127.0.0.1", {redis.port}))
            assert(d:connect("127.0.0.1", {redis.port}))
            ngx.say(c:getreusedtimes(), d:getreusedtimes())
            c:setkeepalive()
            ngx.sleep(0.6)      -- longer than the keepalive timeout
            local e = ngx.socket.tcp()
            assert(e:connect("127.0.0.1", {redis.port}))
            ngx.say(e:getreusedtimes())
        }}
    }}
"""
    port = serve(rampart, loc)
    assert harness.get(port, "/two").text == "10\n0\n"


@pytest.mark.parametrize("line, message", [
    ("lua_socket_read_timeout soon;", 'invalid time "soon"'),
    ("lua_socket_connect_timeout -1;", 'invalid time "-1"'),
    ("lua_socket_send_timeout 1x;", 'invalid time "1x"'),
    ("lua_socket_keepalive_timeout forever;", 'invalid time "forever"'),
    ("lua_socket_pool_size 0;", 'invalid value "0"'),
    ("lua_ssl_verify_depth deep;", 'invalid number "deep"'),
])
def test_bad_values_are_refused_with_file_and_line(tmp_path, line, message):
    name = line.split()[0]
    reference_nginx.assert_rampart_refuses(tmp_path, f"{line}\n", 3, f'"{name}": {message}')


def test_an_unreadable_trusted_certificate_file_is_refused(tmp_path, certs):
    reference_nginx.assert_rampart_refuses(
        tmp_path, f"lua_ssl_trusted_certificate {certs.missing};\n", 3,
        f'"lua_ssl_trusted_certificate": cannot read "{certs.missing}": '
        f'No such file or directory')


def test_a_client_leaving_closes_the_socket_its_request_waits_on(rampart):
    closed = threading.Event()

    def wait_then_note(c):
        silent(c)  # until rampart closes its end
        closed.set()
    srv = Server(wait_then_note)
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {srv.port}))
            ngx.log(ngx.NOTICE, "waiting on the peer")
            ngx.say(sock:receive())
        }}
    }}
    location /ok {{ content_by_lua_block {{ ngx.say("still serving") }} }}
"""
        port = serve(rampart, loc)
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        rampart.wait_log("waiting on the peer")
        c.close()
        assert closed.wait(10), "the cosocket stayed open after its request ended"
        assert harness.get(port, "/ok").text == "still serving\n"
    finally:
        srv.stop()


def test_a_header_filter_asks_redis_for_a_response_header(rampart, redis):
    loc = f"""    location / {{
        content_by_lua_block {{ ngx.say("body") }}
        header_filter_by_lua_block {{
            local sock = ngx.socket.tcp()
            assert(sock:connect("127.0.0.1", {redis.port}))
            sock:send("INCR hf\\r\\n")
            ngx.header["X-Count"] = sock:receive():sub(2)
            sock:setkeepalive()
        }}
    }}
"""
    port = serve(rampart, loc)
    r = harness.get(port, "/")
    assert (r.status, r.headers.get("X-Count"), r.text) == (200, "1", "body\n")
    with H2Client(port) as c:
        (r2,) = c.exchange([("GET", "/", [], b"")])
    assert (r2.status, r2.header("x-count"), bytes(r2.body)) == (200, "2", b"body\n")


def test_udp_over_a_unix_datagram_socket(rampart, tmp_path):
    path = tmp_path / "dgram.sock"
    us = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    us.bind(str(path))

    def echo():
        while True:
            try:
                data, addr = us.recvfrom(65536)
                us.sendto(b"unix:" + data, addr)
            except OSError:
                return
    threading.Thread(target=echo, daemon=True).start()
    try:
        loc = f"""    location / {{
        content_by_lua_block {{
            local u = ngx.socket.udp()
            u:settimeout(5000)
            ngx.say(u:setpeername("unix:{path}"))
            ngx.say(u:send("hello"))
            ngx.say(u:receive())
        }}
    }}
"""
        port = serve(rampart, loc)
        assert harness.get(port, "/").text == "1\n1\nunix:hello\n"
    finally:
        us.close()


def test_the_sockets_of_init_worker_close_when_the_hook_ends(rampart):
    closed = threading.Event()

    def note_close(c):
        silent(c)
        closed.set()
    srv = Server(note_close)
    try:
        http = f"""init_worker_by_lua_block {{
    kept = ngx.socket.tcp()
    assert(kept:connect("127.0.0.1", {srv.port}))
    kept_udp = ngx.socket.udp()
    assert(kept_udp:setpeername("127.0.0.1", {srv.port}))
    ngx.log(ngx.NOTICE, "init_worker connected")
}}"""
        loc = """    location / {
        content_by_lua_block {
            ngx.say(pcall(kept.send, kept, "x"))
            ngx.say(pcall(kept_udp.send, kept_udp, "x"))
        }
    }
"""
        port = serve(rampart, loc, http_extra=http)
        rampart.wait_log("init_worker connected")
        assert closed.wait(10), "init_worker's socket stayed open after the hook ended"
        assert harness.get(port, "/").text == "falsebad request\nfalsebad request\n"
    finally:
        srv.stop()
