"""WebSocket (and any HTTP/1.1 upgrade) through the proxy: the upgrade request is
forwarded without configuration, the upstream's 101 reaches the client, and
both connections become a tunnel with back-pressure, half-closes, an idle
timeout (proxy_read_timeout), one access-log line, and a graceful stop that
waits for it.

The WebSocket server is ws_backend.py (python3-websockets) in its own process;
clients are the websockets asyncio client, or raw sockets where the bytes
themselves matter. A few tests use backend.py (`backend`) to see the request
the upstream received, or a small raw upstream in a thread for a protocol
that is not WebSocket."""

import asyncio
import base64
import hashlib
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import websockets

import harness
from harness import wait_for
from test_proxy import Client, RssWatch, echo_of, sent, worker_pid

HERE = Path(__file__).resolve().parent
MB = 1 << 20
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the WebSocket server -------------------------------------------------------------


class WsBackend:
    """ws_backend.py in its own process; stopped by pid."""

    def __init__(self, folder):
        folder.mkdir(parents=True, exist_ok=True)
        self.events_path = folder / "ws-events.txt"
        self.events_path.write_text("")
        self.stderr_path = folder / "ws-backend.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "ws_backend.py"),
                                      str(self.events_path)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr)
        line = self.proc.stdout.readline()
        if not line.startswith(b"PORT "):
            self.stop()
            raise AssertionError(f"ws_backend did not start: {line!r}\n"
                                 f"{self.stderr_path.read_text()}")
        self.port = int(line.split()[1])
        self.addr = f"127.0.0.1:{self.port}"

    def events(self):
        return self.events_path.read_text().splitlines()

    def wait_event(self, prefix, timeout=5.0):
        return wait_for(lambda: [e for e in self.events() if e.startswith(prefix)],
                        timeout=timeout, what=f"ws_backend event {prefix!r}")[0]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._stderr.close()


@pytest.fixture
def ws(tmp_path):
    server = WsBackend(tmp_path / "ws")
    yield server
    server.stop()


def serve(rampart, port, upstream_addr, location="", server="", http="", listen_extra="",
          main=""):
    """rampart on port with `upstream up` at upstream_addr behind location /."""
    rampart.configure(f"{http}\n"
                      f"upstream up {{ server {upstream_addr}; keepalive 4; }}\n"
                      f"server {{\n listen 127.0.0.1:{port}{listen_extra};\n {server}\n"
                      f" location / {{ proxy_pass http://up; {location} }}\n}}", main=main)
    rampart.start()
    return rampart


def run(coro, timeout=25):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(port, path="/echo", **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    return websockets.connect(f"ws://127.0.0.1:{port}{path}", **kw)


# -- raw WebSocket framing, for the tests that look at bytes ---------------------------


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def frame(opcode, payload):
    """A masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class RawWs:
    """A WebSocket client on a plain socket: sends the upgrade, keeps the raw 101 head."""

    def __init__(self, port, path="/echo", rcvbuf=None, headers=()):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key}",
                 "Sec-WebSocket-Version: 13", *headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before the head: {self.buf!r}"
            self.buf += chunk
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self):
        b0, b1 = self._take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return b0 & 0x0F, self._take(n)

    def close(self):
        self.sock.close()


# -- messages through the tunnel ------------------------------------------------------


def test_text_and_binary_messages_echo_through_the_tunnel(rampart, port, ws):
    serve(rampart, port, ws.addr)

    async def go():
        async with connect(port) as c:
            await c.send("hello, tunnel")
            assert await c.recv() == "hello, tunnel"
            await c.send(b"\x00\x01binary\xff")
            assert await c.recv() == b"\x00\x01binary\xff"
            assert c.response_headers["X-Ws-Backend"] == "1"
    run(go())


def test_5mb_message_goes_each_way(rampart, port, ws):
    serve(rampart, port, ws.addr)
    big = os.urandom(5 * MB)

    async def go():
        async with connect(port) as c:
            await c.send(big)
            back = await c.recv()
            assert len(back) == len(big) and hashlib.sha256(back).digest() == \
                hashlib.sha256(big).digest()
    run(go())


def test_many_messages_arrive_whole_and_in_order(rampart, port, ws):
    serve(rampart, port, ws.addr)

    async def go():
        async with connect(port) as c:
            for i in range(2000):
                await c.send(f"message {i} " + "x" * (i % 300))
            for i in range(2000):
                assert await c.recv() == f"message {i} " + "x" * (i % 300)
    run(go())


def test_ping_gets_its_pong_through_the_tunnel(rampart, port, ws):
    serve(rampart, port, ws.addr)

    async def go():
        async with connect(port) as c:
            for _ in range(3):
                pong = await c.ping(os.urandom(8))
                await asyncio.wait_for(pong, 5)
    run(go())


def test_server_close_reaches_the_client_with_its_code(rampart, port, ws):
    serve(rampart, port, ws.addr)

    async def go():
        async with connect(port) as c:
            await c.send("close 4001 server says bye")
            with pytest.raises(websockets.ConnectionClosed):
                await c.recv()
            t0 = time.monotonic()
            await c.wait_closed()
            return c.close_code, c.close_reason, time.monotonic() - t0
    code, reason, wait = run(go())
    assert (code, reason) == (4001, "server says bye")
    # the server's TCP close reached the client as one (not after its close_timeout)
    assert wait < 2
    ws.wait_event("closed /echo 4001 server says bye")


def test_client_close_reaches_the_server_with_its_code(rampart, port, ws):
    serve(rampart, port, ws.addr)

    async def go():
        async with connect(port) as c:
            await c.send("hi")
            await c.recv()
            t0 = time.monotonic()
            await c.close(4002, "client says bye")
            return c.close_code, time.monotonic() - t0
    code, took = run(go())
    assert code == 4002
    assert took < 2, "the closing handshake waited for a timeout"
    ws.wait_event("closed /echo 4002 client says bye")


# -- timeouts -------------------------------------------------------------------------


def test_idle_tunnel_closes_after_proxy_read_timeout(rampart, port, ws):
    serve(rampart, port, ws.addr, location="proxy_read_timeout 1s;")

    async def go():
        async with connect(port) as c:
            t0 = time.monotonic()
            await asyncio.wait_for(c.wait_closed(), 6)
            return time.monotonic() - t0, c.close_code
    took, code = run(go())
    assert 0.9 <= took < 4, took
    assert code == 1006  # the TCP connection ended without a closing handshake
    ws.wait_event("closed /echo")
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while proxying "
                     r"upgraded connection")


def test_tunnel_with_traffic_outlives_proxy_read_timeout(rampart, port, ws):
    serve(rampart, port, ws.addr, location="proxy_read_timeout 1s;")

    async def go():
        async with connect(port) as c:
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < 3:
                await c.send(f"tick {n}")
                assert await c.recv() == f"tick {n}"
                n += 1
                await asyncio.sleep(0.3)
            assert c.open
    run(go())


# -- what is and is not upgraded --------------------------------------------------------


def test_refused_upgrade_is_relayed_as_the_servers_403(rampart, port, ws):
    serve(rampart, port, ws.addr)

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            async with connect(port, "/refuse"):
                pass
        return e.value.status_code
    assert run(go()) == 403
    with Client(port) as c:
        r = c.request("/refuse", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                          ("Sec-WebSocket-Version", "13")])
        assert r.status == 403 and r.body == b"refused\n"
        assert r.header("Upgrade") is None
        # the refusal is an ordinary response: the client connection carries on
        assert c.request("/refuse").status == 403


def test_upgrade_request_is_forwarded_with_upgrade_and_connection(rampart, port, backend):
    serve(rampart, port, backend.addr)
    with Client(port) as c:
        r = c.request("/?echo=1", headers=[("Upgrade", "websocket"),
                                           ("Connection", "keep-alive, Upgrade"),
                                           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                           ("Sec-WebSocket-Version", "13")])
        e = echo_of(r)
    assert sent(e, "Upgrade") == ["websocket"]
    assert sent(e, "Connection") == ["upgrade"]
    assert sent(e, "Sec-WebSocket-Key") == ["dGhlIHNhbXBsZSBub25jZQ=="]
    assert sent(e, "Sec-WebSocket-Version") == ["13"]


@pytest.mark.parametrize("case", ["http10", "body", "no_connection_token", "h2c"])
def test_request_that_cannot_upgrade_goes_without_upgrade(rampart, port, backend, case):
    serve(rampart, port, backend.addr)
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    kw = {}
    if case == "http10":
        kw["version"] = "1.0"
    elif case == "body":
        kw["body"] = b"payload"
    elif case == "no_connection_token":
        headers = [("Upgrade", "websocket"), ("Connection", "keep-alive")]
    elif case == "h2c":
        headers = [("Upgrade", "h2c"), ("Connection", "Upgrade, HTTP2-Settings"),
                   ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
    with Client(port) as c:
        e = echo_of(c.request("/?echo=1", method="POST" if case == "body" else "GET",
                              headers=headers, **kw))
    assert sent(e, "Upgrade") == []
    assert "upgrade" not in ",".join(sent(e, "Connection")).lower()
    assert sent(e, "HTTP2-Settings") == []


def test_proxy_set_header_upgrade_empty_turns_upgrades_off(rampart, port, ws):
    serve(rampart, port, ws.addr, location='proxy_set_header Upgrade "";')

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            async with connect(port):
                pass
        return e.value.status_code
    assert run(go()) == 426  # the server saw a plain GET: "Upgrade Required"


def test_nginx_upgrade_boilerplate_sends_one_upgrade_field(rampart, port, backend):
    serve(rampart, port, backend.addr, location="proxy_set_header Upgrade $http_upgrade;")
    with Client(port) as c:
        e = echo_of(c.request("/?echo=1", headers=[("Upgrade", "websocket"),
                                                   ("Connection", "upgrade")]))
        assert sent(e, "Upgrade") == ["websocket"]
        assert sent(e, "Connection") == ["upgrade"]
        e = echo_of(c.request("/?echo=1"))
        assert sent(e, "Upgrade") == [] and sent(e, "Connection") == []


NGINX_WS_MAP = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }"
NGINX_WS_LOCATION = ("proxy_set_header Upgrade $http_upgrade; "
                     "proxy_set_header Connection $connection_upgrade;")


def test_nginx_websocket_snippet_with_connection_upgrade_map_tunnels(rampart, port, ws):
    serve(rampart, port, ws.addr, http=NGINX_WS_MAP, location=NGINX_WS_LOCATION)

    async def go():
        async with connect(port) as c:
            await c.send("through the map")
            assert await c.recv() == "through the map"
    run(go())


def test_nginx_websocket_snippet_sends_plain_requests_without_upgrade(rampart, port, backend):
    serve(rampart, port, backend.addr, http=NGINX_WS_MAP, location=NGINX_WS_LOCATION)
    with Client(port) as c:
        e = echo_of(c.request("/?echo=1", headers=[("Upgrade", "websocket"),
                                                   ("Connection", "upgrade")]))
        assert sent(e, "Upgrade") == ["websocket"] and sent(e, "Connection") == ["upgrade"]
        # map's '' close: no upgrade token and no "close" either (rampart keeps the
        # upstream connection alive, its own Connection field)
        e = echo_of(c.request("/?echo=1"))
        assert sent(e, "Upgrade") == [] and "close" not in ",".join(sent(e, "Connection"))


def test_proxy_set_header_connection_without_upgrade_turns_upgrades_off(rampart, port, ws):
    serve(rampart, port, ws.addr, location="proxy_set_header Connection close;")

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            async with connect(port):
                pass
        return e.value.status_code
    assert run(go()) == 426  # the server saw a plain GET: "Upgrade Required"


def test_upstream_101_without_upgrade_field_gives_502(rampart, port, backend):
    serve(rampart, port, backend.addr)
    raw = base64.urlsafe_b64encode(b"HTTP/1.1 101 Switching Protocols\r\n\r\n").decode()
    with Client(port) as c:
        r = c.request("/?raw=" + raw.rstrip("="),
                      headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")])
    assert r.status == 502
    rampart.wait_log(r"upstream sent 101 Switching Protocols without an Upgrade field")


# -- the 101 head and the tunnel's bytes ----------------------------------------------


def test_101_head_reaches_the_client_intact(rampart, port, ws):
    serve(rampart, port, ws.addr)
    c = RawWs(port)
    try:
        lines = c.head.decode("latin-1").split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        fields = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        names = [n.lower() for n, _ in fields]
        value = {n.lower(): v for n, v in fields}
        assert value["upgrade"].lower() == "websocket"
        assert value["connection"].lower() == "upgrade"
        assert value["sec-websocket-accept"] == ws_accept(c.key)
        assert value["x-ws-backend"] == "1"
        for once in ("upgrade", "connection", "sec-websocket-accept", "server", "date"):
            assert names.count(once) == 1, (once, lines)
        assert "content-length" not in names and "transfer-encoding" not in names
        c.sock.sendall(frame(1, b"raw hello"))
        assert c.recv_frame() == (1, b"raw hello")
    finally:
        c.close()


class RawUpstream:
    """An upstream in a thread that switches to a made-up protocol ("x-test"): it
    answers 101 with `early` behind the head, then runs `script(conn)`."""

    def __init__(self, script, early=b""):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.script, self.early = script, early
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            self.request_head = head
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-test\r\n"
                         b"Connection: Upgrade\r\n\r\n" + self.early)
            self.result = self.script(conn)
            conn.close()
        except Exception as e:  # reported by the test
            self.error = e

    def join(self):
        self.thread.join(10)
        self.sock.close()
        assert self.error is None, self.error
        return self.result


def read_to_eof(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def raw_tunnel(port, token="x-test"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /t HTTP/1.1\r\nHost: a\r\nUpgrade: {token}\r\n"
              f"Connection: upgrade\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, head, rest


def test_any_upgrade_token_tunnels_and_client_half_close_reaches_the_upstream(rampart, port):
    def script(conn):
        got = read_to_eof(conn)          # the client's half-close arrives as EOF
        conn.sendall(b"after your EOF: " + got)
        return got

    up = RawUpstream(script, early=b"first bytes;")
    serve(rampart, port, up.addr)
    s, head, rest = raw_tunnel(port)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"\r\nUpgrade: x-test" in head
    s.sendall(b"one two three")
    s.shutdown(socket.SHUT_WR)
    data = rest + read_to_eof(s)
    s.close()
    assert up.join() == b"one two three"
    assert data == b"first bytes;after your EOF: one two three"
    assert b"x-test" in up.request_head


def test_upstream_half_close_reaches_the_client_who_may_still_send(rampart, port):
    def script(conn):
        conn.sendall(b"server done")
        conn.shutdown(socket.SHUT_WR)
        return read_to_eof(conn)

    up = RawUpstream(script)
    serve(rampart, port, up.addr)
    s, head, rest = raw_tunnel(port)
    assert rest + read_to_eof(s) == b"server done"  # EOF: rampart half-closed towards us
    s.sendall(b"late words")
    s.shutdown(socket.SHUT_WR)
    assert up.join() == b"late words"
    s.settimeout(5)
    assert read_to_eof(s) == b""
    s.close()


def test_bytes_sent_behind_the_upgrade_request_reach_the_upstream_after_the_101(rampart, port):
    def script(conn):
        return read_to_eof(conn)

    up = RawUpstream(script)
    serve(rampart, port, up.addr)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    # a client that does not wait for the 101 before it speaks the new protocol
    s.sendall(b"GET /t HTTP/1.1\r\nHost: a\r\nUpgrade: x-test\r\nConnection: upgrade\r\n\r\n"
              b"spoken early")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101 ")
    s.sendall(b", and later")
    s.shutdown(socket.SHUT_WR)
    assert up.join() == b"spoken early, and later"
    assert b"spoken early" not in up.request_head
    s.close()


def test_slow_reader_keeps_worker_memory_bounded(rampart, port, ws):
    serve(rampart, port, ws.addr)
    run(_echo_once(port))  # warm: the worker's buffers exist before measuring
    total = 48 * MB
    c = RawWs(port, f"/flood?bytes={total}", rcvbuf=64 * 1024)
    try:
        with RssWatch(worker_pid(rampart)) as rss:
            time.sleep(2.5)  # the client reads nothing: the tunnel must push back
            assert not [e for e in ws.events() if e.startswith("flooded")], \
                "the whole flood was taken while the client read nothing"
        assert rss.growth_mb < 10, f"worker RSS grew by {rss.growth_mb:.1f} MB"
        got = 0
        while got < total:
            op, payload = c.recv_frame()
            assert op in (0, 2)
            got += len(payload)
        assert got == total
    finally:
        c.close()


async def _echo_once(port):
    async with connect(port) as c:
        await c.send(b"x" * 100000)
        await c.recv()


# -- TLS ------------------------------------------------------------------------------


def test_websocket_over_tls(rampart, port, ws, certs):
    serve(rampart, port, ws.addr, listen_extra=" ssl",
          server=f"server_name a.test;\n {certs.directives('a.test')}")
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    big = os.urandom(5 * MB)

    async def go():
        async with websockets.connect(f"wss://a.test:{port}/echo", ssl=ctx, host="127.0.0.1",
                                      port=port, server_hostname="a.test", max_size=None,
                                      ping_interval=None) as c:
            await c.send("over tls")
            assert await c.recv() == "over tls"
            await c.send(big)
            assert await c.recv() == big
            await asyncio.wait_for(await c.ping(), 5)
            t0 = time.monotonic()
            await c.close(4003, "tls bye")
            return c.close_code, time.monotonic() - t0
    code, took = run(go())
    assert code == 4003 and took < 2
    ws.wait_event("closed /echo 4003 tls bye")


# -- logging and stopping -------------------------------------------------------------


LOG_FORMAT = ("log_format tun '$status $body_bytes_sent $upstream_status $request_time "
              "\"$request\"';\naccess_log logs/tunnel.log tun;")


def test_tunnel_is_logged_once_when_it_ends_with_status_101(rampart, port, ws):
    serve(rampart, port, ws.addr, http=LOG_FORMAT)
    log = rampart.prefix / "logs" / "tunnel.log"
    c = RawWs(port)
    try:
        c.sock.sendall(frame(1, b"hello"))
        assert c.recv_frame() == (1, b"hello")
        time.sleep(1.0)
        assert log.read_text() == "", "logged before the tunnel ended"
        c.sock.sendall(frame(8, struct.pack("!H", 1000)))
        received = len(b"\x81\x05hello") + len(c.buf) + len(read_to_eof(c.sock))
    finally:
        c.close()
    line = wait_for(lambda: log.read_text().strip(), what="the access log line")
    assert len(line.splitlines()) == 1
    status, sent_bytes, up_status, rtime, request = line.split(" ", 4)
    assert (status, up_status, request) == ("101", "101", '"GET /echo HTTP/1.1"')
    # every byte the client got after the 101 head: the echo and the server's close frame
    assert int(sent_bytes) == received
    assert float(rtime) >= 1.0


def test_quit_lets_an_open_tunnel_carry_on_until_the_client_closes(rampart, port, ws):
    serve(rampart, port, ws.addr, http=LOG_FORMAT, main="worker_shutdown_timeout 20s;")

    async def go():
        async with connect(port) as c:
            await c.send("before")
            assert await c.recv() == "before"
            rampart.signal(signal.SIGQUIT)
            rampart.wait_log(r"gracefully shutting down")
            for i in range(5):
                await asyncio.sleep(0.2)
                await c.send(f"during {i}")
                assert await c.recv() == f"during {i}"
            assert rampart.running()
            await c.close(1000)
    run(go())
    assert rampart.wait_exit() == 0
    log = (rampart.prefix / "logs" / "tunnel.log").read_text()
    assert log.startswith("101 ")


def test_worker_shutdown_timeout_closes_an_open_tunnel(rampart, port, ws):
    serve(rampart, port, ws.addr, main="worker_shutdown_timeout 1s;")

    async def go():
        async with connect(port) as c:
            await c.send("x")
            await c.recv()
            t0 = time.monotonic()
            rampart.signal(signal.SIGQUIT)
            await asyncio.wait_for(c.wait_closed(), 8)
            return time.monotonic() - t0
    took = run(go())
    assert 0.8 <= took < 5, took
    assert rampart.wait_exit() == 0
    ws.wait_event("closed /echo")
