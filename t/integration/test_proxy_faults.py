"""The reverse proxy when things go wrong: upstreams that refuse, never answer
the SYN, answer late, stop reading, or die mid-body; the balancer's weights,
backups, down servers, max_conns and failure bookkeeping; stale keep-alive
connections; and the client-side timeouts of a proxied location.

Every upstream is on loopback. A connect that times out is made with a
listening socket whose accept queue is full (backlog 0 and one connection
never accepted): the kernel then drops further SYNs, so the connect hangs.
Timeouts in these configurations are 1s so each test stays short.
"""

import contextlib
import hashlib
import json
import re
import socket
import threading
import time

import pytest

import harness
from backend import pattern


# -- helpers -------------------------------------------------------------------


def front(rampart, port, servers, upstream="", location="", http="", read_timeout="1s"):
    """Starts rampart proxying 127.0.0.1:port to an upstream block `pool` with these
    server lines; connect and send timeouts are 1s."""
    server_lines = "\n        ".join(f"server {s};" for s in servers)
    rampart.configure(f"""
    {http}
    upstream pool {{
        {server_lines}
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name front;
        location / {{
            proxy_pass http://pool;
            proxy_connect_timeout 1s;
            proxy_send_timeout 1s;
            proxy_read_timeout {read_timeout};
            {location}
        }}
    }}
    """)
    rampart.start()
    return rampart


class Reply:
    """A response read off a raw socket, and how its connection ended."""

    def __init__(self, status, headers, body, complete, ended):
        self.status = status      # "HTTP/1.1 200 OK"
        self.headers = headers    # {lowercase name: value}
        self.body = body          # decoded data bytes (chunk framing removed)
        self.complete = complete  # the framing said the body was whole
        self.ended = ended        # "eof", "reset", "open" (still open at the deadline)

    def __repr__(self):
        return (f"<Reply {self.status!r} body={len(self.body)}B complete={self.complete} "
                f"ended={self.ended}>")


def _recv(s):
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return None, "reset"
    except socket.timeout:
        return None, "open"
    return data, ("eof" if not data else None)


def read_reply(s, head_request=False, close_wait=0.3):
    """Reads one response from s: the head, then the body as its framing says (whole,
    or until the connection ends), then whether the connection ends right after it
    (within close_wait seconds)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data, end = _recv(s)
        if end:
            raise AssertionError(f"connection {end} before a full response head: {buf!r}")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()

    body, complete, ended = b"", False, None
    if head_request:
        complete = True
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        raw = rest
        while True:
            # decode what we have; stop at the last chunk
            body, complete, used = _dechunk(raw)
            if complete:
                rest = raw[used:]
                break
            data, ended = _recv(s)
            if ended:
                break
            raw += data
    elif "content-length" in headers:
        want = int(headers["content-length"])
        body = rest
        while len(body) < want:
            data, ended = _recv(s)
            if ended:
                break
            body += data
        complete = len(body) >= want
        body = body[:want]
    else:
        body = rest
        while True:
            data, ended = _recv(s)
            if ended:
                break
            body += data
        complete = ended == "eof"  # close-delimited: a FIN is its end
    if ended is None:
        # the response is whole: does the connection close after it?
        saved = s.gettimeout()
        s.settimeout(close_wait)
        data, ended = _recv(s)
        s.settimeout(saved)
        if data:
            ended = "open"  # more bytes: certainly not closed
    return Reply(lines[0], headers, body, complete, ended)


def _dechunk(raw):
    """(data, complete, bytes used) of a chunked body received so far."""
    out, i = b"", 0
    while True:
        j = raw.find(b"\r\n", i)
        if j < 0:
            return out, False, i
        size = int(raw[i:j].split(b";")[0], 16)
        if size == 0:
            k = raw.find(b"\r\n\r\n", j)
            if raw[j:j + 4] == b"\r\n\r\n":
                return out, True, j + 4
            if k < 0:
                return out, False, i
            return out, True, k + 4
        if len(raw) < j + 2 + size + 2:
            out += raw[j + 2:j + 2 + size]  # a chunk cut short: keep what came
            return out, False, i
        out += raw[j + 2:j + 2 + size]
        i = j + 2 + size + 2


def ask(port, target="/", version="1.1", extra="Connection: close\r\n", timeout=5.0,
        method="GET", body=b""):
    """Sends one request on a fresh connection and reads the reply. It asks for the close
    unless told otherwise (extra=""): a test that checks rampart closes a cut response
    asks for keep-alive."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    with s:
        s.sendall(f"{method} {target} HTTP/{version}\r\nHost: front\r\n{extra}\r\n".encode()
                  + body)
        return read_reply(s, head_request=method == "HEAD")


def log_count(rampart, pattern_text):
    return len(re.findall(pattern_text, rampart.log_text()))


def served_by(reply):
    return reply.headers.get("x-backend-name")


@pytest.fixture
def refused_addr():
    """host:port of a bound socket that does not listen: a connect to it is refused
    (and, held for the test, nobody else can take the port)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    yield f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


@pytest.fixture
def blackhole_addr():
    """host:port where a connect never completes: a listener with backlog 0 whose accept
    queue already holds a connection nobody accepts, so the kernel drops new SYNs."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    addr = lst.getsockname()
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(addr)
        fillers.append(c)
    time.sleep(0.05)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(addr)
        connected = True
    except (socket.timeout, TimeoutError):
        connected = False
    finally:
        probe.close()
    if connected:
        for c in fillers:
            c.close()
        lst.close()
        pytest.skip("this kernel completes connects to a full accept queue: no loopback "
                    "address here makes a connect time out")
    yield f"{addr[0]}:{addr[1]}"
    for c in fillers:
        c.close()
    lst.close()


# -- connect failures ----------------------------------------------------------


def test_refused_connect_gives_502_and_logs_the_upstream_address(rampart, port, refused_addr):
    front(rampart, port, [refused_addr])
    reply = ask(port, "/some/path?q=1")
    assert reply.status == "HTTP/1.1 502 Bad Gateway"
    rampart.wait_log(
        r"\[error\] .*connect\(\) failed \(111: Connection refused\) while connecting to "
        r"upstream, client: 127\.0\.0\.1, server: front, request: \"GET /some/path\?q=1 "
        r"HTTP/1\.1\", upstream: \"http://" + re.escape(refused_addr) +
        r"/some/path\?q=1\", host: \"front\"")


def test_refused_connect_leaves_no_libevent_warnings(rampart, port, refused_addr):
    front(rampart, port, [refused_addr])
    assert ask(port, "/").status == "HTTP/1.1 502 Bad Gateway"
    rampart.wait_log(r"Connection refused")
    assert "event has no event_base" not in rampart.stderr_text()


def test_refused_server_is_passed_over_for_the_next_one(rampart, port, refused_addr, backend):
    front(rampart, port, [refused_addr, backend.addr])
    reply = ask(port, "/")
    assert (reply.status, served_by(reply)) == ("HTTP/1.1 200 OK", backend.name)
    rampart.wait_log(r"connect\(\) failed \(111: Connection refused\).*upstream: \"http://" +
                     re.escape(refused_addr))


def test_request_body_goes_whole_to_the_server_after_a_refused_one(rampart, port,
                                                                   refused_addr, backend):
    front(rampart, port, [refused_addr, backend.addr])
    body = bytes(range(256)) * 400
    reply = harness.request(port, "/?echo=1", method="POST", body=body, host="front")
    seen = json.loads(reply.body)
    assert (reply.status, seen["body_length"]) == (200, len(body))
    assert seen["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_failed_server_rests_for_fail_timeout_after_max_fails(rampart, port, refused_addr,
                                                              backend):
    front(rampart, port, [f"{refused_addr} max_fails=1 fail_timeout=2s", backend.addr])
    refused = r"connect\(\) failed \(111: Connection refused\)"
    started = time.monotonic()
    for _ in range(6):
        reply = ask(port, "/")
        assert (reply.status, served_by(reply)) == ("HTTP/1.1 200 OK", backend.name)
    assert time.monotonic() - started < 1.5, "too slow to finish inside fail_timeout"
    # tried once, then left alone: one refusal for six requests
    assert log_count(rampart, refused) == 1
    rampart.wait_log(r"\[warn\] .*upstream server temporarily disabled: upstream \"pool\", "
                     r"server " + re.escape(refused_addr))
    assert backend.stats()["requests"] == 6

    time.sleep(2.2)  # fail_timeout is over: the server gets one more chance (one try,
    # when its turn in the round robin comes, within the next two requests)
    for _ in range(2):
        assert ask(port, "/").status == "HTTP/1.1 200 OK"
    assert log_count(rampart, refused) == 2


def test_all_servers_refusing_gives_502_after_trying_each(rampart, port):
    holders = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        holders.append(s)
    addrs = [f"127.0.0.1:{s.getsockname()[1]}" for s in holders]
    try:
        front(rampart, port, addrs)
        assert ask(port, "/").status == "HTTP/1.1 502 Bad Gateway"
        for a in addrs:
            rampart.wait_log(r"Connection refused.*upstream: \"http://" + re.escape(a))
    finally:
        for s in holders:
            s.close()


def test_connect_timeout_gives_504_and_logs_it(rampart, port, blackhole_addr):
    front(rampart, port, [blackhole_addr])
    started = time.monotonic()
    reply = ask(port, "/slow")
    waited = time.monotonic() - started
    assert reply.status == "HTTP/1.1 504 Gateway Timeout"
    assert 0.8 < waited < 3.0
    rampart.wait_log(r"\[error\] .*upstream timed out \(110: Connection timed out\) while "
                     r"connecting to upstream, client: 127\.0\.0\.1, server: front, request: "
                     r"\"GET /slow HTTP/1\.1\", upstream: \"http://" +
                     re.escape(blackhole_addr) + r"/slow\"")


def test_connect_timeout_moves_on_to_the_next_server(rampart, port, blackhole_addr, backend):
    front(rampart, port, [blackhole_addr, backend.addr])
    started = time.monotonic()
    reply = ask(port, "/")
    assert (reply.status, served_by(reply)) == ("HTTP/1.1 200 OK", backend.name)
    assert time.monotonic() - started > 0.8  # it waited for the first one
    rampart.wait_log(r"while connecting to upstream.*upstream: \"http://" +
                     re.escape(blackhole_addr))
    # max_fails=1 (the default): the silent server now rests, the next request goes
    # straight to the live one
    started = time.monotonic()
    assert served_by(ask(port, "/")) == backend.name
    assert time.monotonic() - started < 0.9  # less than the connect timeout
    assert log_count(rampart, r"timed out \(110: Connection timed out\) while connecting") == 1


# -- timeouts while exchanging -------------------------------------------------


def test_late_response_head_gives_504_after_proxy_read_timeout(rampart, port, backend):
    front(rampart, port, [backend.addr])
    started = time.monotonic()
    reply = ask(port, "/?delay=3")
    waited = time.monotonic() - started
    assert reply.status == "HTTP/1.1 504 Gateway Timeout"
    assert 0.8 < waited < 2.5
    rampart.wait_log(r"\[error\] .*upstream timed out \(110: Connection timed out\) while "
                     r"reading response header from upstream, client: 127\.0\.0\.1, server: "
                     r"front, request: \"GET /\?delay=3 HTTP/1\.1\", upstream: \"http://" +
                     re.escape(backend.addr) + r"/\?delay=3\"")


def test_body_stalling_past_proxy_read_timeout_cuts_the_client_short(rampart, port, backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=3000&chunk_size=1000&body_delay=3", extra="", timeout=3)
    assert reply.status == "HTTP/1.1 200 OK"
    assert reply.headers["content-length"] == "3000"
    assert not reply.complete and reply.ended == "eof"
    assert reply.body == pattern(1000)
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while reading upstream")


@pytest.fixture
def deaf_addr():
    """host:port of a listener that completes connects but never reads: a small receive
    buffer fills and the sender's writes stall."""
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted ones
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    yield f"127.0.0.1:{lst.getsockname()[1]}"
    lst.close()


def test_upstream_not_reading_the_body_times_out_after_proxy_send_timeout(rampart, port,
                                                                          deaf_addr):
    front(rampart, port, [deaf_addr], location="client_max_body_size 0;")
    total = 64 << 20
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    stop = threading.Event()

    def upload():
        block = b"u" * 65536
        with contextlib.suppress(OSError):
            s.sendall(f"POST /up HTTP/1.1\r\nHost: front\r\nContent-Length: {total}\r\n\r\n"
                      .encode())
            sent = 0
            while sent < total and not stop.is_set():
                sent += s.send(block)
    t = threading.Thread(target=upload, daemon=True)
    started = time.monotonic()
    t.start()
    try:
        reply = read_reply(s)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
        t.join(5)
    assert reply.status == "HTTP/1.1 504 Gateway Timeout"
    assert elapsed < 5
    rampart.wait_log(r"\[error\] .*upstream timed out \(110: Connection timed out\) while "
                     r"sending request to upstream, client: 127\.0\.0\.1, server: front, "
                     r"request: \"POST /up HTTP/1\.1\"")


# -- upstream dying mid-response -----------------------------------------------

PREMATURE = r"\[error\] .*upstream prematurely closed connection while reading upstream"


def test_upstream_closing_inside_a_content_length_body_cuts_the_client_short(rampart, port,
                                                                             backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&abort=70000", extra="", timeout=3)
    assert reply.status == "HTTP/1.1 200 OK"
    assert reply.headers["content-length"] == "200000"
    assert not reply.complete and reply.ended in ("eof", "reset")
    assert reply.body == pattern(70000)
    rampart.wait_log(PREMATURE + r".*request: \"GET /\?size=200000&abort=70000 HTTP/1\.1\"")


def test_upstream_closing_inside_a_chunked_body_leaves_out_the_last_chunk(rampart, port,
                                                                          backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&chunked=1&chunk_size=10000&abort=70000", extra="",
                timeout=3)
    assert reply.status == "HTTP/1.1 200 OK"
    assert reply.headers["transfer-encoding"] == "chunked"
    assert not reply.complete and reply.ended in ("eof", "reset")
    assert reply.body == pattern(70000)
    rampart.wait_log(PREMATURE)


def test_upstream_closing_inside_a_chunked_body_resets_an_http10_client(rampart, port,
                                                                         backend):
    # HTTP/1.0 gets the body close-delimited: only a reset can tell it the body is cut
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&chunked=1&chunk_size=10000&abort=70000", version="1.0",
                extra="", timeout=3)
    assert reply.status == "HTTP/1.1 200 OK"  # RFC 9110 2.5: our own version
    assert "content-length" not in reply.headers and "transfer-encoding" not in reply.headers
    assert reply.ended == "reset"
    rampart.wait_log(PREMATURE)


def test_upstream_reset_inside_a_content_length_body_cuts_the_client_short(rampart, port,
                                                                           backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&abort=70000&reset=1", extra="", timeout=3)
    assert reply.headers["content-length"] == "200000"
    assert not reply.complete and reply.ended in ("eof", "reset")
    assert len(reply.body) <= 70000
    rampart.wait_log(r"\[error\] .*(upstream prematurely closed connection|recv\(\) failed)"
                     r".*while reading upstream")


def test_upstream_reset_is_logged_with_its_errno(rampart, port, backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&abort=70000&reset=1", extra="", timeout=3)
    assert not reply.complete
    rampart.wait_log(r"recv\(\) failed \(104: Connection reset by peer\) while reading upstream",
                     timeout=1)


def test_close_delimited_body_ended_by_a_fin_is_forwarded_whole(rampart, port, backend):
    # Without a length, the upstream's FIN is the body's end: nothing is missing.
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=50000&no_length=1")
    assert reply.headers.get("transfer-encoding") == "chunked"
    assert reply.complete and reply.body == pattern(50000)


def test_upstream_reset_inside_a_close_delimited_body_is_not_completed_chunked(
        rampart, port, backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&abort=70000&no_length=1&reset=1", extra="",
                timeout=3)
    assert reply.status == "HTTP/1.1 200 OK"
    assert not reply.complete, "the client got a complete-looking chunked body"
    assert reply.ended in ("eof", "reset")
    rampart.wait_log(r"\[error\] .*(recv\(\) failed \(104: Connection reset by peer\)|"
                     r"upstream prematurely closed connection).*while reading upstream",
                     timeout=1)


def test_upstream_reset_inside_a_close_delimited_body_resets_the_client(rampart, port,
                                                                        backend):
    front(rampart, port, [backend.addr])
    reply = ask(port, "/?size=200000&abort=70000&no_length=1&reset=1", version="1.0")
    assert reply.status == "HTTP/1.1 200 OK"  # RFC 9110 2.5: our own version
    assert "content-length" not in reply.headers
    assert reply.ended == "reset", "the client saw a clean end of a cut body"


# -- balancing -----------------------------------------------------------------


def test_weights_3_to_1_split_40_requests_30_and_10_in_smooth_order(rampart, port,
                                                                    backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    front(rampart, port, [f"{a.addr} weight=3", f"{b.addr} weight=1"])
    order = [served_by(ask(port, "/")) for _ in range(40)]
    assert order.count("a") == 30 and order.count("b") == 10
    # smooth weighted round robin: never more than three a's in a row
    assert order[:8] == ["a", "a", "b", "a"] * 2
    assert (a.stats()["requests"], b.stats()["requests"]) == (30, 10)


def test_backup_server_gets_traffic_only_when_the_primary_is_down(rampart, port,
                                                                  backend_factory):
    a, b = backend_factory("primary"), backend_factory("backup")
    front(rampart, port, [a.addr, f"{b.addr} backup"])
    for _ in range(5):
        assert served_by(ask(port, "/")) == "primary"
    assert b.stats() == {"connections_accepted": 0, "requests": 0, "open_connections": 0}
    a.stop()
    for _ in range(5):
        reply = ask(port, "/")
        assert (reply.status, served_by(reply)) == ("HTTP/1.1 200 OK", "backup")
    assert b.stats()["requests"] == 5


def test_down_server_gets_no_traffic(rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    front(rampart, port, [a.addr, f"{b.addr} down"])
    for _ in range(6):
        assert served_by(ask(port, "/")) == "a"
    assert b.stats()["connections_accepted"] == 0


def _concurrent(port, n, target):
    """n requests at once, each on its own connection; their replies in start order."""
    out = [None] * n

    def one(i):
        out[i] = ask(port, target)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # in order, so every earlier one is in flight
    for t in threads:
        t.join(10)
    return out


def test_max_conns_sends_the_excess_to_the_other_server(rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    front(rampart, port, [f"{a.addr} max_conns=1", b.addr],
          read_timeout="5s")
    replies = _concurrent(port, 3, "/?delay=0.7")
    assert [r.status for r in replies] == ["HTTP/1.1 200 OK"] * 3
    # the first takes a's only slot; the other two go to b while it is busy
    assert [served_by(r) for r in replies] == ["a", "b", "b"]


def test_max_conns_everywhere_full_gives_502_no_live_upstreams(rampart, port,
                                                               backend_factory):
    # As nginx: when every server is at max_conns the request is not queued.
    a, b = backend_factory("a"), backend_factory("b")
    front(rampart, port, [f"{a.addr} max_conns=1", f"{b.addr} max_conns=1"],
          read_timeout="5s")
    replies = _concurrent(port, 3, "/?delay=0.7")
    assert [r.status for r in replies] == ["HTTP/1.1 200 OK"] * 2 + ["HTTP/1.1 502 Bad Gateway"]
    assert sorted(served_by(r) for r in replies[:2]) == ["a", "b"]
    rampart.wait_log(r"\[error\] .*no live upstreams while connecting to upstream")


# -- keep-alive to the upstream ------------------------------------------------


def test_request_after_the_backend_closed_its_idle_connection_succeeds(rampart, port,
                                                                       backend_factory):
    b = backend_factory("b", idle_timeout=0.3)
    front(rampart, port, [b.addr], upstream="keepalive 4;")
    first = ask(port, "/")
    assert first.status == "HTTP/1.1 200 OK"
    harness.wait_for(lambda: b.stats()["open_connections"] == 0, timeout=3,
                     what="the backend to close its idle connection")
    second = ask(port, "/")
    assert (second.status, served_by(second)) == ("HTTP/1.1 200 OK", "b")
    assert b.stats()["connections_accepted"] == 2


class ClosesAfterFirstAnswer:
    """A raw upstream whose first connection answers one request with keep-alive, then
    reads the next request and closes without a word: the race where a cached connection
    dies just as it is reused. Later connections answer every request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.bodies = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                first = self.connections == 1
            threading.Thread(target=self._serve, args=(c, first), daemon=True).start()

    def _serve(self, c, first):
        c.settimeout(5)
        buf = b""
        answered = 0
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = c.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                size = int(m.group(1)) if m else 0
                while len(buf) < size:
                    try:
                        data = c.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                body, buf = buf[:size], buf[size:]
                with self.lock:
                    self.requests += 1
                    self.bodies.append(body)
                if first and answered == 1:
                    return  # read the request, close without answering
                body = b"conn %d\n" % (1 if first else 2)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                answered += 1

    def close(self):
        self.sock.close()


def test_cached_connection_closed_without_an_answer_is_retried_on_a_new_one(rampart, port):
    up = ClosesAfterFirstAnswer()
    try:
        front(rampart, port, [up.addr], upstream="keepalive 4;")
        assert ask(port, "/one").body == b"conn 1\n"
        reply = ask(port, "/two")
        assert (reply.status, reply.body) == ("HTTP/1.1 200 OK", b"conn 2\n")
        assert (up.connections, up.requests) == (2, 3)
    finally:
        up.close()


def test_cached_connection_closed_without_an_answer_is_not_retried_with_a_body(rampart,
                                                                               port):
    # As nginx for a non-idempotent request: the body went out once and is not repeated.
    up = ClosesAfterFirstAnswer()
    try:
        front(rampart, port, [up.addr], upstream="keepalive 4;")
        assert ask(port, "/one").body == b"conn 1\n"
        reply = ask(port, "/two", method="POST",
                    extra="Content-Length: 5\r\nConnection: close\r\n", body=b"hello")
        assert reply.status == "HTTP/1.1 502 Bad Gateway"
        assert (up.connections, up.requests) == (1, 2)
    finally:
        up.close()
    rampart.wait_log(r"upstream prematurely closed connection while reading response header "
                     r"from upstream.*request: \"POST /two HTTP/1\.1\"")


def test_cached_connection_closed_without_an_answer_resends_an_idempotent_body(rampart,
                                                                               port):
    # The attempt engine keeps a small body: a PUT (idempotent) goes again, whole, on a
    # new connection, as an HTTP/2 upstream replays a refused stream's body.
    up = ClosesAfterFirstAnswer()
    try:
        front(rampart, port, [up.addr], upstream="keepalive 4;")
        assert ask(port, "/one").body == b"conn 1\n"
        reply = ask(port, "/two", method="PUT",
                    extra="Content-Length: 5\r\nConnection: close\r\n", body=b"hello")
        assert (reply.status, reply.body) == ("HTTP/1.1 200 OK", b"conn 2\n")
        assert (up.connections, up.requests) == (2, 3)
        assert up.bodies[-1] == b"hello"
    finally:
        up.close()


# -- client-side timeouts on a proxied location --------------------------------


def test_client_stalling_its_body_is_closed_after_client_body_timeout(rampart, port,
                                                                      backend):
    front(rampart, port, [backend.addr], location="client_body_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: front\r\nContent-Length: 100\r\n\r\n0123456789")
        started = time.monotonic()
        data, ended = b"", None
        while ended is None:
            chunk, ended = _recv(s)
            data += chunk or b""
        waited = time.monotonic() - started
    assert ended in ("eof", "reset") and 0.8 < waited < 3
    rampart.wait_log(r"client timed out \(client_body_timeout\)")
    harness.wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=3,
                     what="rampart to close its upstream connection")
    assert backend.stats()["requests"] == 0  # the backend never got the whole request


def test_client_not_reading_a_big_response_is_closed_after_send_timeout(rampart, port,
                                                                        backend):
    front(rampart, port, [backend.addr], location="send_timeout 1s;")
    size = 256 << 20
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    with s:
        s.sendall(f"GET /?size={size} HTTP/1.1\r\nHost: front\r\n\r\n".encode())
        rampart.wait_log(r"client timed out \(send_timeout\)", timeout=5)
        # what was already on its way still arrives, then the end
        got, ended = 0, None
        while ended is None:
            chunk, ended = _recv(s)
            got += len(chunk or b"")
    assert ended in ("eof", "reset")
    assert got < size
    harness.wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=3,
                     what="rampart to close its upstream connection")


def test_idle_client_connection_is_closed_after_keepalive_timeout(rampart, port, backend):
    front(rampart, port, [backend.addr], http="keepalive_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: front\r\n\r\n")
        s.settimeout(0.5)
        reply = read_reply(s)
        assert reply.complete and reply.ended == "open"
        s.settimeout(5)
        started = time.monotonic()
        data, ended = _recv(s)
        idle = time.monotonic() - started
    assert ended == "eof" and 0.3 < idle < 2.0


def test_keepalive_requests_closes_after_the_nth_with_connection_close(rampart, port,
                                                                       backend):
    front(rampart, port, [backend.addr], http="keepalive_requests 3;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.settimeout(0.3)
        replies = []
        for i in range(3):
            s.sendall(f"GET /{i} HTTP/1.1\r\nHost: front\r\n\r\n".encode())
            replies.append(read_reply(s))
    assert [r.status for r in replies] == ["HTTP/1.1 200 OK"] * 3
    assert [r.headers.get("connection") for r in replies] == [None, None, "close"]
    assert [r.ended for r in replies] == ["open", "open", "eof"]
