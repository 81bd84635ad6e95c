"""Request smuggling through the proxy: heads that a front end and a back end
could frame differently must be refused at the edge, before any byte of them
(or of a request hidden behind them) reaches the upstream.

Each case is sent on a raw socket to rampart proxying to the test backend,
with a second, "smuggled" request right behind it. The client must get exactly
one answer, with the expected status and "Connection: close", and then see the
connection close. Then a fence request goes through rampart on a new
connection; the backend's log must hold that fence and nothing else: neither
the refused request nor the smuggled one.
"""

import json
import socket
import threading

import pytest

import harness
from harness import split_responses

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: front\r\n\r\n"


@pytest.fixture
def proxied(rampart, port, backend):
    rampart.configure(f"""
    upstream pool {{ server {backend.addr}; keepalive 2; }}
    server {{
        listen 127.0.0.1:{port};
        server_name front;
        location / {{ proxy_pass http://pool; proxy_read_timeout 2s; }}
        # a streamed body: the backend can answer before it has come
        location /stream/ {{ proxy_pass http://pool; proxy_read_timeout 2s;
                             proxy_request_buffering off; }}
    }}
    """)
    rampart.start()
    return port, backend


def exchange(port, data, timeout=3.0):
    """Sends data on a fresh connection; returns (bytes received, how it ended: "eof",
    "reset" or "open" when still open after timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return got, "reset"
            except socket.timeout:
                return got, "open"
            if not chunk:
                return got, "eof"
            got += chunk


def backend_saw_only_the_fence(port, backend):
    """Sends a fence request through rampart; returns the targets the backend got."""
    fence = harness.get(port, "/fence", host="front")
    assert fence.status == 200
    return [e["target"] for e in backend.log()]


def H(text):
    return text.encode("latin-1")


POST = "POST / HTTP/1.1\r\nHost: front\r\n"

# (id, request head and body, expected status line)
REFUSED = [
    ("cl-and-te", POST + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400),
    ("te-and-cl", POST + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
     400),
    ("two-content-lengths-same", POST + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
     400),
    ("two-content-lengths-different", POST + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n"
     "abcd", 400),
    ("two-content-lengths-other-case", POST + "Content-Length: 3\r\ncontent-length: 4\r\n"
     "\r\nabcd", 400),
    ("content-length-plus-sign", POST + "Content-Length: +3\r\n\r\nabc", 400),
    ("content-length-hex", POST + "Content-Length: 0x3\r\n\r\nabc", 400),
    ("content-length-list", POST + "Content-Length: 3,3\r\n\r\nabc", 400),
    ("content-length-list-spaced", POST + "Content-Length: 3, 3\r\n\r\nabc", 400),
    ("content-length-overflow", POST + "Content-Length: 99999999999999999999\r\n\r\nabc", 400),
    ("content-length-empty", POST + "Content-Length: \r\n\r\nabc", 400),
    ("content-length-negative", POST + "Content-Length: -3\r\n\r\nabc", 400),
    ("te-gzip", POST + "Transfer-Encoding: gzip\r\n\r\nabc", 501),
    ("te-unknown-xchunked", POST + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    ("te-chunked-then-gzip", POST + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip-then-chunked", POST + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-gzip-then-chunked-two-headers", POST + "Transfer-Encoding: gzip\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-twice", POST + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
     "\r\n0\r\n\r\n", 400),
    ("te-vertical-tab", POST + "Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("te-space-before-colon", POST + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-in-http10", "POST / HTTP/1.0\r\nHost: front\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n", 400),
    ("obs-fold", "GET / HTTP/1.1\r\nHost: front\r\nX-A: 1\r\n 2\r\n\r\n", 400),
    ("obs-fold-tab", "GET / HTTP/1.1\r\nHost: front\r\nX-A: 1\r\n\t2\r\n\r\n", 400),
    ("bare-cr-in-value", "GET / HTTP/1.1\r\nHost: front\r\nX-A: 1\rX-B: 2\r\n\r\n", 400),
    ("bare-cr-line-end", "GET / HTTP/1.1\r\nHost: front\rX-A: 1\r\n\r\n", 400),
    ("nul-in-value", "GET / HTTP/1.1\r\nHost: front\r\nX-A: a\x00b\r\n\r\n", 400),
    ("del-in-value", "GET / HTTP/1.1\r\nHost: front\r\nX-A: a\x7fb\r\n\r\n", 400),
    ("space-before-colon", POST + "Content-Length : 5\r\n\r\nhello", 400),
    ("tab-before-colon", POST + "Content-Length\t: 5\r\n\r\nhello", 400),
    ("whitespace-before-first-header", "GET / HTTP/1.1\r\n Host: front\r\n\r\n", 400),
    ("invalid-char-in-name", "GET / HTTP/1.1\r\nHost: front\r\nX(A): 1\r\n\r\n", 400),
    ("non-ascii-in-name", "GET / HTTP/1.1\r\nHost: front\r\nX-\xe9: 1\r\n\r\n", 400),
    ("empty-header-name", "GET / HTTP/1.1\r\nHost: front\r\n: 1\r\n\r\n", 400),
    ("http11-without-host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    ("two-hosts", "GET / HTTP/1.1\r\nHost: front\r\nHost: other\r\n\r\n", 400),
    ("http20-request-line", "GET / HTTP/2.0\r\nHost: front\r\n\r\n", 505),
    ("http30-request-line", "GET / HTTP/3.0\r\nHost: front\r\n\r\n", 505),
    ("http09-request-line", "GET /\r\n\r\n", 400),
    ("double-space-in-request-line", "GET  / HTTP/1.1\r\nHost: front\r\n\r\n", 400),
    ("lowercase-http-version", "GET / http/1.1\r\nHost: front\r\n\r\n", 400),
    ("space-in-target", "GET /a b HTTP/1.1\r\nHost: front\r\n\r\n", 400),
    ("request-line-too-long", "GET /" + "a" * 10000 + " HTTP/1.1\r\nHost: front\r\n\r\n", 414),
    ("header-too-large", "GET / HTTP/1.1\r\nHost: front\r\nX-Big: " + "b" * 9000 + "\r\n\r\n",
     431),
    ("too-many-headers", "GET / HTTP/1.1\r\nHost: front\r\n" +
     "".join(f"X-H{i}: 1\r\n" for i in range(120)) + "\r\n", 431),
    # the classic pairs: a front end that frames by one header and a back end by the other
    ("classic-cl-te", POST + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\nG", 400),
    ("classic-te-cl", POST + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
     "5c\r\nGPOST /smuggled2 HTTP/1.1\r\nHost: front\r\nContent-Type: x\r\n"
     "Content-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n", 400),
    ("classic-te-te-obfuscated", POST + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-encoding: cow\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", 400),
]

REASONS = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 505: "HTTP Version Not Supported"}


@pytest.mark.parametrize("head, status", [pytest.param(H(h), s, id=i) for i, h, s in REFUSED])
def test_ambiguous_head_is_refused_and_nothing_reaches_the_backend(proxied, head, status):
    port, backend = proxied
    data, ended = exchange(port, head + SMUGGLED)
    responses = split_responses(data)
    # HTTP/1.1 for HTTP/1.0 requests too (RFC 9110 2.5: the server's own version)
    assert [r[0] for r in responses] == [f"HTTP/1.1 {status} {REASONS[status]}"]
    assert responses[0][1].get("connection") == "close"
    assert ended == "eof"
    assert backend.stats()["connections_accepted"] == 0  # not even a connect
    assert backend_saw_only_the_fence(port, backend) == ["/fence"]


def test_chunked_then_gzip_in_two_headers_is_a_bad_request(proxied):
    port, backend = proxied
    data, ended = exchange(port, H(POST + "Transfer-Encoding: chunked\r\n"
                                          "Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n") + SMUGGLED)
    responses = split_responses(data)
    assert [r[0] for r in responses] == ["HTTP/1.1 400 Bad Request"]
    assert ended == "eof"
    assert backend_saw_only_the_fence(port, backend) == ["/fence"]


# Bodies whose chunked framing breaks after the head went upstream (rampart streams the
# body): the client gets 400, the upstream connection is dropped, and the backend never
# gets a whole request, let alone the one hidden in the body.
BAD_CHUNKS = [
    ("chunk-size-overflow", "FFFFFFFFFFFFFFFFFF\r\n" + SMUGGLED.decode()),
    ("chunk-size-overflow-then-data", "10000000000000003\r\nabc\r\n0\r\n\r\n"),
    ("chunk-size-lf-only", "3\nabc\n0\n\n"),
    ("chunk-data-too-long", "3\r\nabcGET /smuggled HTTP/1.1\r\n\r\n0\r\n\r\n"),
    ("chunk-size-hex-prefix", "0x3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-size-negative", "-3\r\nabc\r\n0\r\n\r\n"),
    ("chunk-extension-bare-cr", "3;a=\rb\r\nabc\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("body", [pytest.param(H(b), id=i) for i, b in BAD_CHUNKS])
def test_broken_chunked_body_is_refused_and_the_backend_gets_no_request(proxied, body):
    port, backend = proxied
    head = H(POST + "Transfer-Encoding: chunked\r\n\r\n")
    data, ended = exchange(port, head + body + SMUGGLED)
    responses = split_responses(data)
    assert [r[0] for r in responses] == ["HTTP/1.1 400 Bad Request"]
    assert ended == "eof"
    harness.wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=3,
                     what="rampart to drop its upstream connection")
    assert backend.stats()["requests"] == 0
    assert backend_saw_only_the_fence(port, backend) == ["/fence"]


def test_pipelined_request_after_a_whole_body_is_forwarded_on_its_own(proxied):
    # The control for the cases above: a well-framed body followed by a second request is
    # two requests, and the backend sees both, each whole.
    port, backend = proxied
    data, ended = exchange(port, H(POST + "Content-Length: 5\r\n\r\nhello") + SMUGGLED)
    assert [r[0] for r in split_responses(data)] == ["HTTP/1.1 200 OK"] * 2
    assert [(e["method"], e["target"], e["body_length"]) for e in backend.log()] == [
        ("POST", "/", 5), ("GET", "/smuggled", 0)]


def test_higher_http1_minor_version_is_served_as_http11(proxied):
    port, backend = proxied
    data, ended = exchange(port, b"GET /?echo=1 HTTP/1.2\r\nHost: front\r\n"
                                 b"Connection: close\r\n\r\n")
    (status, headers, body), = split_responses(data)
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body)["version"] == "HTTP/1.1"
    assert len(backend.log()) == 1


def test_lf_only_request_reaches_the_backend_as_one_request(proxied):
    port, backend = proxied
    data, ended = exchange(port, b"POST /lf?echo=1 HTTP/1.1\nHost: front\nX-A: 1\n"
                                 b"Content-Length: 5\nConnection: close\n\nhello")
    (status, headers, body), = split_responses(data)
    assert status == "HTTP/1.1 200 OK"
    seen = json.loads(body)
    assert (seen["method"], seen["target"], seen["body_length"]) == ("POST", "/lf?echo=1", 5)
    assert ["X-A", "1"] in seen["headers"]
    assert len(backend.log()) == 1


class CaptureUpstream:
    """A raw upstream that records the exact bytes of the one request it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.received = b""
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(2)
            try:
                while b"\r\n\r\n" not in self.received:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
                head = self.received.split(b"\r\n\r\n", 1)[0].lower()
                want = 0
                for line in head.split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        want = int(line.split(b":", 1)[1])
                while len(self.received.split(b"\r\n\r\n", 1)[1]) < want:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                c.settimeout(0.3)  # anything more than one request?
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except OSError:
                pass
        self.done.set()

    def close(self):
        self.sock.close()


def test_lf_only_request_goes_upstream_with_crlf_line_ends(rampart, port):
    up = CaptureUpstream()
    try:
        rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ proxy_pass http://{up.addr}; proxy_read_timeout 2s; }}
        }}
        """)
        rampart.start()
        data, _ = exchange(port, b"POST /lf HTTP/1.1\nHost: front\nX-A: 1\nContent-Length: 5\n"
                                 b"Connection: close\n\nhello")
        assert split_responses(data)[0][0] == "HTTP/1.1 200 OK"
        assert up.done.wait(3)
    finally:
        up.close()
    head, sep, body = up.received.partition(b"\r\n\r\n")
    assert sep and body == b"hello"
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /lf HTTP/1.1"
    assert all(b"\n" not in ln and b"\r" not in ln for ln in lines)
    assert b"X-A: 1" in lines and b"Content-Length: 5" in lines
    assert sum(ln.startswith(b"POST ") for ln in lines) == 1


@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
def test_body_left_unread_by_an_early_answer_is_not_read_as_a_request(proxied, transfer):
    # The backend answers without reading the body (early=1). The body, sent only after that
    # answer, holds a request line: rampart must discard it as body, not serve it.
    port, backend = proxied
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        if transfer == "chunked":
            s.sendall(H(POST.replace("/", "/stream/?early=1", 1) +
                        "Transfer-Encoding: chunked\r\n\r\n"))
            hidden = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)
        else:
            s.sendall(H(POST.replace("/", "/stream/?early=1", 1) +
                        f"Content-Length: {len(SMUGGLED)}\r\n\r\n"))
            hidden = SMUGGLED
        got = b""
        while b"\r\n\r\n" not in got or not split_responses(got):
            chunk = s.recv(65536)
            assert chunk, "closed before the early answer"
            got += chunk
        assert split_responses(got)[0][0] == "HTTP/1.1 200 OK"
        s.sendall(hidden + b"GET /after HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n")
        rest = b""
        s.settimeout(3)
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            rest += chunk
    targets = backend_saw_only_the_fence(port, backend)
    assert "/smuggled" not in targets
    assert targets[0] == "/stream/?early=1" and targets[-1] == "/fence"
    # the connection either carried on to /after, or was closed after the early answer
    assert targets[1:-1] in ([], ["/after"])
