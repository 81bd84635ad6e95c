"""The test backend (backend.py) does what it promises, so a proxy test that uses
it fails only for the proxy's faults. These talk to it directly, without rampart."""

import hashlib
import http.client
import json
import socket
import threading
import time

from backend import BAD_RESPONSES, pattern, pattern_sha256


def raw(port, data, timeout=5.0):
    """Sends bytes on a fresh connection; returns everything read until the backend closes
    it, and whether it ended with a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return b"".join(chunks), True
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)


def head_and_body(data):
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_counts_connections_and_requests_and_resets(backend):
    c1 = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    c2 = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    for c, path in ((c1, "/a"), (c1, "/b"), (c2, "/c")):
        c.request("GET", path)
        r = c.getresponse()
        assert (r.status, r.read()) == (200, f"{backend.name}\n".encode())
    assert backend.stats() == {"connections_accepted": 2, "requests": 3, "open_connections": 2}
    assert [e["target"] for e in backend.log()] == ["/a", "/b", "/c"]
    c1.close()
    backend.reset()
    c2.request("GET", "/d")
    c2.getresponse().read()
    # c2 stays open across the reset: live, but accepted before it
    assert backend.stats() == {"connections_accepted": 0, "requests": 1, "open_connections": 1}
    c2.close()


def test_status_reason_delay_and_extra_headers(backend):
    c = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    start = time.monotonic()
    c.request("GET", "/?status=503&reason=Gone+Fishing&delay=0.3&header=X-A:1&header=X-B:%202")
    r = c.getresponse()
    r.read()
    assert time.monotonic() - start >= 0.3
    assert (r.status, r.reason, r.getheader("X-A"), r.getheader("X-B")) == (
        503, "Gone Fishing", "1", "2")
    # the same parameters as X-Backend-* headers
    c.request("GET", "/", headers={"X-Backend-Status": "418", "X-Backend-Body": "teapot"})
    r = c.getresponse()
    assert (r.status, r.read()) == (418, b"teapot")


def test_generated_body_with_content_length_or_chunked(backend):
    c = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    c.request("GET", "/?size=300000")
    r = c.getresponse()
    assert r.getheader("Content-Length") == "300000"
    assert r.read() == pattern(300000)
    data, _ = raw(backend.port, b"GET /?size=70000&chunked=1&chunk_size=30000&trailers=1 "
                                b"HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    head, body = head_and_body(data)
    assert "Transfer-Encoding: chunked" in head
    p = pattern(70000)
    assert body == (b"7530\r\n" + p[:30000] + b"\r\n7530\r\n" + p[30000:60000] + b"\r\n"
                    b"2710\r\n" + p[60000:] + b"\r\n0\r\nX-Backend-Trailer: done\r\n\r\n")


def test_hundred_megabytes_are_streamed_without_holding_them(backend):
    n = 100 * 1024 * 1024
    h = hashlib.sha256()
    got = 0
    with socket.create_connection(("127.0.0.1", backend.port), timeout=10) as s:
        s.sendall(f"GET /?size={n} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        head, _, first = head.partition(b"\r\n\r\n")
        h.update(first)
        got += len(first)
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
    assert got == n and h.hexdigest() == pattern_sha256(n)
    with open(f"/proc/{backend.pid}/status") as f:
        rss_kb = int(next(ln for ln in f if ln.startswith("VmHWM:")).split()[1])
    assert rss_kb < 64 * 1024, f"backend peaked at {rss_kb} kB for a {n}-byte body"


def test_abort_mid_body_and_close_delimited_body(backend):
    data, reset = raw(backend.port, b"GET /?size=1000&abort=300 HTTP/1.1\r\nHost: b\r\n\r\n")
    head, body = head_and_body(data)
    assert "Content-Length: 1000" in head and body == pattern(300) and not reset
    data, _ = raw(backend.port, b"GET /?size=1000&abort=10&chunked=1 HTTP/1.1\r\nHost: b\r\n\r\n")
    assert head_and_body(data)[1] == b"3e8\r\n" + pattern(10)
    data, reset = raw(backend.port,
                      b"GET /?size=100000&abort=5000&reset=1 HTTP/1.1\r\nHost: b\r\n\r\n")
    assert reset
    data, _ = raw(backend.port, b"GET /?size=5000&no_length=1 HTTP/1.1\r\nHost: b\r\n\r\n")
    head, body = head_and_body(data)
    assert "Content-Length" not in head and "Transfer-Encoding" not in head
    assert "Connection: close" in head and body == pattern(5000)


def test_echo_describes_the_request_and_its_body(backend):
    body = b"x" * 100000
    c = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    c.request("POST", "/p/q?echo=1&k=v", body=body, headers={"X-Custom": "a  b"})
    r = c.getresponse()
    echo = json.loads(r.read())
    assert (echo["method"], echo["target"], echo["path"], echo["version"]) == (
        "POST", "/p/q?echo=1&k=v", "/p/q", "HTTP/1.1")
    assert ["X-Custom", "a  b"] in echo["headers"]
    assert (echo["body_length"], echo["body_sha256"]) == (len(body),
                                                          hashlib.sha256(body).hexdigest())
    # a chunked request body is decoded, trailers and all
    data, _ = raw(backend.port, b"PUT /?echo=1 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n"
                                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    echo = json.loads(head_and_body(data)[1])
    assert (echo["body_length"], echo["body_sha256"]) == (
        11, hashlib.sha256(b"hello world").hexdigest())


def test_slow_read_holds_the_sender_back(backend_factory):
    b = backend_factory(rcvbuf=4096)
    size, rate = 400_000, 400_000  # a second's worth
    sent_at = {}
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        start = time.monotonic()

        def upload():
            s.sendall(f"POST /?echo=1&read_rate={rate} HTTP/1.1\r\nHost: b\r\n"
                      f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
            s.sendall(b"z" * size)
            sent_at["t"] = time.monotonic() - start
        t = threading.Thread(target=upload)
        t.start()
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        t.join()
    elapsed = time.monotonic() - start
    assert json.loads(head_and_body(data)[1])["body_length"] == size
    assert elapsed >= 0.9 * size / rate
    # with small buffers both ways, most of the body waited for the reader
    assert sent_at["t"] >= 0.5 * size / rate


def test_keepalive_ends_after_max_requests(backend_factory):
    b = backend_factory(max_requests=2)
    data, _ = raw(b.port, b"GET /1 HTTP/1.1\r\nHost: b\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n"
                          b"GET /3 HTTP/1.1\r\nHost: b\r\n\r\n")
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert b"X-Backend-Request: 1\r\nConnection: keep-alive" in data
    assert b"X-Backend-Request: 2\r\nConnection: close" in data
    # the backend's connection thread may still be finishing its close: give it a moment
    deadline = time.monotonic() + 5
    while b.stats()["open_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b.stats() == {"connections_accepted": 1, "requests": 2, "open_connections": 0}


def test_invalid_heads_interim_responses_and_bodiless_answers(backend):
    for kind in ("cl_te", "two_cl", "bare_lf", "obs_fold"):
        data, _ = raw(backend.port, f"GET /?bad={kind} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
        assert data == BAD_RESPONSES[kind]
    data, _ = raw(backend.port, b"GET /?interim=100,103&body=x HTTP/1.1\r\nHost: b\r\n"
                                b"Connection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                           b"Link: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\nx")
    data, _ = raw(backend.port, b"HEAD /?size=1234 HTTP/1.1\r\nHost: b\r\n\r\n"
                                b"GET /?status=204 HTTP/1.1\r\nHost: b\r\n\r\n"
                                b"GET /?status=304 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
    heads = data.split(b"\r\n\r\n")
    assert heads[-1] == b"" and len(heads) == 4  # three heads, no body after any
    assert b"Content-Length: 1234" in heads[0]
    assert b"Content-Length" not in heads[1] and heads[1].startswith(b"HTTP/1.1 204 ")
    assert b"Content-Length" not in heads[2] and heads[2].startswith(b"HTTP/1.1 304 ")


def test_client_leaving_early_does_not_hurt_the_backend(backend):
    # gone mid-head, mid-body, and while a large response is being written
    for data in (b"GET / HTTP/1.1\r\nHo", b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 9\r\n\r\nab",
                 b"GET /?size=50000000 HTTP/1.1\r\nHost: b\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", backend.port), timeout=5)
        s.sendall(data)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    c = http.client.HTTPConnection("127.0.0.1", backend.port, timeout=5)
    c.request("GET", "/")
    assert c.getresponse().status == 200
    c.close()
    deadline = time.monotonic() + 5
    while backend.stats()["open_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backend.stats()["open_connections"] == 0
    assert backend.problems() == []
