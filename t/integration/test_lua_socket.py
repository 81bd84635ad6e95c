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
from h2client import H2Client

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
            f"            ngx.say(redis_script({redis_port}, ngx.var and ngx.var.arg_k or 'k'))\n"
            f"        }}\n    }}\n")


# -- Redis -------------------------------------------------------------------------


def test_redis_client_over_a_cosocket_answers_http1_and_http2(rampart, redis):
    port = serve(rampart, redis_location(redis.port))
    r = harness.get(port, "/redis")
    assert (r.status, r.text) == (200, REDIS_ANSWER + "\n")
    assert h2_get(port, "/redis") == (200, REDIS_ANSWER + "\n")


def test_redis_script_answers_as_under_nginx_with_the_lua_module(rampart, redis, tmp_path):
    reference_nginx.require()
    port = serve(rampart, redis_location(redis.port))
    mine = harness.get(port, "/redis")
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nport = harness.free_port()
    nginx.configure(f"server {{ listen 127.0.0.1:{nport};\n{redis_location(redis.port)}\n}}")
    # the lua module is loaded in the main context, ahead of everything
    nginx.conf_text = ("load_module /usr/lib/nginx/modules/ndk_http_module.so; "
                       "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so; "
                       + nginx.conf_text)
    nginx.conf_path.write_text(nginx.conf_text)
    nginx.start()
    try:
        theirs = harness.get(nport, "/redis")
    finally:
        nginx.stop()
    assert theirs.status == 200, nginx.text(nginx.error_log)
    assert (mine.status, mine.text) == (theirs.status, theirs.text)
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
