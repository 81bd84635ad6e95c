"""gzip, as nginx's gzip module: what is compressed and what is not (Accept-Encoding
and its q, gzip_http_version, gzip_types, gzip_min_length, the status, HEAD, a body
encoded already, gzip_proxied for requests with Via, gzip_disable), the fields a
compressed answer gains and loses (Content-Encoding, Content-Length, Vary, ETag,
Accept-Ranges), bodies that decompress to the original over HTTP/1.1 and HTTP/2 (in
clear and over TLS) for `return` and for proxied bodies of every framing, events
that are not held back until the end, a slow client that slows the upstream down
instead of filling memory, gzip_comp_level, $gzip_ratio, limit_rate after gzip, and
the configuration errors.

Every compressed body is checked two independent ways: Python's zlib decompresses
the raw bytes (one gzip member, nothing after it, CRC and length checked) and curl
--compressed decodes what it fetched itself; both must give the original bytes.

The backend is backend.py (`backend` fixture) where it can make the answer; Origin,
an HTTP/1.1 origin in a thread of the test, serves what it cannot: text that
compresses like text, text that compresses only about 2:1, and events sent one at
a time when the test says so.
"""

import email.utils
import functools
import hashlib
import os
import random
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import zlib

import pytest

from backend import pattern
from h2_backend import H2Backend
from h2raw import H2Conn, rst_stream_frame
from harness import run, wait_for
from test_h2 import h2_context
from test_proxy import Client, RssWatch, b64, q, worker_pid

MB = 1 << 20

# The body of the `return` locations: compressible, and nothing the configuration's
# quoting would change.
TEXT = b"rampart compresses this sentence again and again, " * 8
SMALL = 1000
LARGE = 2 * MB


# -- configuration ---------------------------------------------------------------------------

RETURNS = (f'location = /html {{ default_type text/html; return 200 "{TEXT.decode()}"; }}\n'
           f'location = /plain {{ return 200 "{TEXT.decode()}"; }}\n'
           f'location = /missing {{ return 404; }}\n')


def start(rampart, port, gz="gzip on;", backend=None, listen="", server="", http="",
          locations=""):
    """Starts rampart with one server on port: `gz` at the server level; /html answers TEXT
    as text/html and /plain as text/plain (return); /missing is rampart's own 404 page;
    with a backend (anything with .addr), every other path is proxied to it."""
    upstream = f"upstream be {{ server {backend.addr}; keepalive 4; }}\n" if backend else ""
    proxy = "location / { proxy_pass http://be; }\n" if backend else ""
    rampart.configure(f"{http}\n{upstream}"
                      f"server {{\n"
                      f"    listen 127.0.0.1:{port}{listen};\n"
                      f"    {gz}\n"
                      f"    {server}\n"
                      f"{locations}{RETURNS}{proxy}"
                      f"}}\n")
    return rampart.start()


def be(ctype="text/html", headers=(), **params):
    """A target for backend.py: its answer carries Content-Type ctype (none when None) and
    the fields in headers ("Name:value"); params are its other parameters."""
    fields = ([f"Content-Type:{ctype}"] if ctype else []) + list(headers)
    return "/?" + q(header=fields, **params)


# -- checking bodies -------------------------------------------------------------------------


def gunzip(data):
    """The original of a gzip body: exactly one complete member (CRC and length checked by
    zlib), nothing after it."""
    d = zlib.decompressobj(wbits=31)
    out = d.decompress(bytes(data))
    assert d.eof, f"the gzip stream is cut short ({len(data)} bytes)"
    assert d.unused_data == b"", f"{len(d.unused_data)} bytes after the gzip stream"
    return out


def curl(tmp_path, url, *args):
    """curl --compressed: (version, status, {lowercase name: [values]}, decoded body)."""
    head, body = tmp_path / "curl.head", tmp_path / "curl.body"
    p = subprocess.run(["curl", "-sS", "--compressed", "-D", str(head), "-o", str(body),
                        "--max-time", "20", *args, url], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0, p.stderr
    blocks = head.read_bytes().decode("latin-1").strip().split("\r\n\r\n")
    lines = blocks[-1].split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    version, status = lines[0].split()[:2]
    return version, int(status), fields, body.read_bytes()


def get1(port, target, ae="gzip", headers=(), method="GET", version="1.1"):
    """One HTTP/1 request on a fresh connection (Accept-Encoding: ae unless None), read by
    its framing: a test_proxy.Resp."""
    hdrs = ([("Accept-Encoding", ae)] if ae is not None else []) + list(headers)
    with Client(port, timeout=20) as c:
        return c.request(target, method, headers=hdrs, version=version)


def is_gzipped(r, original, http10=False):
    """r (HTTP/1) is the compressed form of original, framed as a compressed body must be
    (chunked, or close-delimited for an HTTP/1.0 request: the status line says HTTP/1.1
    either way, RFC 9110 2.5)."""
    assert r.status in (200, 403, 404), r
    assert r.all("Content-Encoding") == ["gzip"], r.raw_head
    assert r.header("Content-Length") is None, r.raw_head
    assert r.framing == ("close" if http10 else "chunked"), r.raw_head
    assert gunzip(r.body) == original
    return True


def is_plain(r, original=None):
    """r (HTTP/1) went as it was: no Content-Encoding, and original when given."""
    assert r.header("Content-Encoding") is None, r.raw_head
    if original is not None:
        assert r.body == original
    return True


def vary_tokens(values):
    return [t.strip().lower() for v in values for t in v.split(",") if t.strip()]


# -- an origin for the bodies backend.py cannot make -----------------------------------------


@functools.lru_cache(maxsize=None)
def words(n, seed=7):
    """n bytes of text made of a small vocabulary, as text compresses (about 3:1)."""
    vocab = [w.encode() for w in (
        "gateway upstream request response header body stream window buffer client "
        "server proxy route location balance health limit retry budget timeout worker "
        "master signal reload compress deflate window token cookie session ticket cipher "
        "the a of to and in is it that for on with as was at by an be this are from or "
        "have not but had his they which one you were her all she there would their we").split()]
    rnd = random.Random(seed)
    out, size = [], 0
    while size < n:
        line = b" ".join(rnd.choice(vocab) for _ in range(rnd.randint(4, 14))) + b".\n"
        out.append(line)
        size += len(line)
    return b"".join(out)[:n]


HEX_BLOCK = os.urandom(MB // 2).hex().encode()  # 1 MB of hex digits: compresses about 2:1


def hex_pieces(n, step=65536):
    """hex_text(n) in pieces of step bytes (a divisor of 1 MB), never all of it at once."""
    view = memoryview(HEX_BLOCK)
    for at in range(0, n, step):
        yield view[at % len(HEX_BLOCK):][:min(step, n - at)]


def hex_text(n):
    return b"".join(hex_pieces(n))


def hex_sha256(n):
    h = hashlib.sha256()
    for piece in hex_pieces(n):
        h.update(piece)
    return h.hexdigest()


class Origin:
    """An HTTP/1.1 origin in threads of the test (one per connection, each answer closes
    it). By the last segment of the path:

      .../words?size=N[&chunked=1]  words(N), text/html, Content-Length or chunked
      .../hex?size=N                hex_text(N), text/html, Content-Length, sent in 64k
                                    writes counted in .sent (a client that stops reading
                                    shows as .sent standing still)
      .../events?n=K                K server-sent events, text/event-stream, chunked; the
                                    first goes at once, event i once .gates[i] is set, and
                                    the end of the body once .gates[K] is set
    """

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.sent = 0
        self.gates = [threading.Event() for _ in range(16)]
        self.errors = []
        self.requests = []
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def event(i):
        return f"id: {i}\nevent: tick\ndata: event number {i} of the stream\n\n".encode()

    def close(self):
        for g in self.gates:
            g.set()
        self.listener.close()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            with conn:
                conn.settimeout(30)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                line = buf.split(b"\r\n", 1)[0].decode("latin-1")
                self.requests.append(buf.split(b"\r\n\r\n", 1)[0].decode("latin-1"))
                target = urllib.parse.urlsplit(line.split(" ")[1])
                args = dict(urllib.parse.parse_qsl(target.query))
                kind = target.path.rsplit("/", 1)[-1]
                if kind == "words":
                    self._body(conn, words(int(args["size"])), args.get("chunked") == "1")
                elif kind == "hex":
                    self._hex(conn, int(args["size"]))
                elif kind == "events":
                    self._events(conn, int(args["n"]))
                else:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy left: a test that abandons a response does that
        except Exception as e:  # noqa: BLE001 - the test reports it
            self.errors.append(repr(e))

    def _body(self, conn, body, chunked):
        framing = (b"Transfer-Encoding: chunked" if chunked
                   else b"Content-Length: %d" % len(body))
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n%s\r\n"
                     b"Connection: close\r\n\r\n" % framing)
        for i in range(0, len(body), 16384):
            piece = body[i:i + 16384]
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            conn.sendall(b"0\r\n\r\n")

    def _hex(self, conn, size):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
        for piece in hex_pieces(size):
            conn.sendall(piece)
            self.sent += len(piece)

    def _events(self, conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n")
        for i in range(n + 1):
            if i and not self.gates[i].wait(30):
                raise TimeoutError(f"gate {i} never opened")
            if i == n:
                conn.sendall(b"0\r\n\r\n")
            else:
                e = self.event(i)
                conn.sendall(b"%x\r\n%s\r\n" % (len(e), e))


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()
    assert not o.errors, o.errors


def next_chunk(c):
    """The next chunk's data of a chunked body being read on c (a test_proxy.Client), or
    None at its end."""
    size = int(c._line().split(b";")[0], 16)
    if size == 0:
        while c._line() != b"":
            pass
        return None
    data = c._take(size)
    assert c._take(2) == b"\r\n"
    return data


# -- compressed bodies decompress to the original: HTTP/1.1 -------------------------------


def test_return_body_is_gzipped_and_decompresses_to_the_original_over_http11(
        rampart, port, tmp_path):
    start(rampart, port)
    assert is_gzipped(get1(port, "/html"), TEXT)
    _, status, fields, body = curl(tmp_path, f"http://127.0.0.1:{port}/html", "--http1.1")
    assert (status, fields["content-encoding"], body) == (200, ["gzip"], TEXT)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["small", "2mb"])
def test_proxied_body_is_gzipped_and_decompresses_to_the_original_over_http11(
        rampart, port, backend, tmp_path, size, chunked):
    start(rampart, port, backend=backend)
    target = be(size=size, chunked=int(chunked))
    assert is_gzipped(get1(port, target), pattern(size))
    _, status, fields, body = curl(tmp_path, f"http://127.0.0.1:{port}{target}", "--http1.1")
    assert (status, fields["content-encoding"], body) == (200, ["gzip"], pattern(size))
    assert "content-length" not in fields and fields["transfer-encoding"] == ["chunked"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_text_body_decompresses_to_the_original(rampart, port, origin, tmp_path, chunked):
    # text that compresses like text: many output pieces, not a few
    start(rampart, port, backend=origin)
    target = f"/words?size={LARGE}&chunked={int(chunked)}"
    assert is_gzipped(get1(port, target), words(LARGE))
    _, status, _, body = curl(tmp_path, f"http://127.0.0.1:{port}{target}", "--http1.1")
    assert (status, body) == (200, words(LARGE))


def test_keepalive_connection_carries_compressed_and_plain_answers_in_turn(
        rampart, port, backend):
    start(rampart, port, backend=backend)
    with Client(port, timeout=20) as c:
        gz = [("Accept-Encoding", "gzip")]
        assert is_gzipped(c.request("/html", headers=gz), TEXT)
        assert is_gzipped(c.request(be(size=LARGE, chunked=1), headers=gz), pattern(LARGE))
        r = c.request(be(size=SMALL))
        assert is_plain(r, pattern(SMALL)) and r.framing == "length"
        assert is_gzipped(c.request(be(size=SMALL), headers=gz), pattern(SMALL))
        assert is_gzipped(c.request("/html", headers=gz), TEXT)


def test_response_abandoned_mid_body_leaves_the_next_compressed_answers_intact(
        rampart, port, origin):
    # the worker keeps zlib states between responses: one left mid-stream must not leak
    # its history into the next
    start(rampart, port, backend=origin)
    with Client(port, timeout=20) as c:
        c.send_request("/hex?size=33554432", headers=[("Accept-Encoding", "gzip")])
        c.head()
        assert next_chunk(c)
    # the abandoned request has ended (its state went back to the worker) once it is logged
    log = rampart.prefix / "logs" / "access.log"
    wait_for(lambda: log.exists() and "/hex?size" in log.read_text(), timeout=20,
             what="the abandoned request's access log line")
    for target, original in (("/html", TEXT), (f"/words?size={SMALL}", words(SMALL)),
                             (f"/words?size={LARGE}", words(LARGE))):
        assert is_gzipped(get1(port, target), original)


def test_close_delimited_upstream_body_is_compressed_whole(rampart, port, backend):
    start(rampart, port, backend=backend)
    assert is_gzipped(get1(port, be(size=LARGE, no_length=1)), pattern(LARGE))


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_upstream_dying_mid_body_cuts_the_compressed_answer(rampart, port, backend, chunked):
    # the client must see the answer cut, not a gzip stream that ends well and is short
    start(rampart, port, backend=backend)
    with Client(port, timeout=20) as c:
        c.send_request(be(size=LARGE, chunked=int(chunked), abort=MB),
                       headers=[("Accept-Encoding", "gzip")])
        _, status, fields, raw = c.head()
        assert status == 200 and ("Content-Encoding", "gzip") in fields, raw
        d = zlib.decompressobj(wbits=31)
        seen = b""
        with pytest.raises(EOFError):
            while (data := next_chunk(c)) is not None:
                seen += d.decompress(data)
        assert not d.eof and pattern(len(seen)) == seen
    rampart.wait_log(r"upstream prematurely closed connection")


def test_empty_bodies_follow_gzip_min_length(rampart, port, backend):
    start(rampart, port, backend=backend)
    r = get1(port, be(size=0))
    assert is_plain(r, b"") and r.header("Content-Length") == "0"
    # a chunked body's length is unknown: compressed, to an empty gzip stream
    assert is_gzipped(get1(port, be(size=0, chunked=1)), b"")


def test_gzip_min_length_0_compresses_an_empty_body(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_min_length 0;", backend=backend)
    assert is_gzipped(get1(port, be(size=0)), b"")


def test_pipelined_requests_get_their_compressed_answers_in_order(rampart, port, backend):
    start(rampart, port, backend=backend)
    targets = [("/html", TEXT), (be(size=LARGE, chunked=1), pattern(LARGE)),
               (be(size=SMALL), pattern(SMALL)), ("/html", TEXT)]
    with Client(port, timeout=20) as c:
        c.send(b"".join(b"GET %s HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"
                        % t.encode() for t, _ in targets))
        for _, original in targets:
            assert is_gzipped(c.response(), original)


def test_small_gzip_buffers_still_give_the_whole_body(rampart, port, origin):
    start(rampart, port, gz="gzip on; gzip_buffers 4 512;", backend=origin, listen=" http2")
    assert is_gzipped(get1(port, f"/words?size={LARGE}&chunked=1"), words(LARGE))
    with H2Conn(port, timeout=20) as c:
        s = c.get(f"/words?size={LARGE}", headers=[("accept-encoding", "gzip")])
    assert h2_gzipped(s, words(LARGE))


# -- compressed bodies decompress to the original: HTTP/2 ---------------------------------


H2_TARGETS = {
    "return": ("/html", TEXT),
    "proxied-small": (be(size=SMALL), pattern(SMALL)),
    "proxied-2mb-content-length": (be(size=LARGE), pattern(LARGE)),
    "proxied-2mb-chunked": (be(size=LARGE, chunked=1), pattern(LARGE)),
}


def h2_gzipped(s, original):
    assert (s.status, s.ended) == (200, True), s
    assert s.all("content-encoding") == ["gzip"], s.headers
    assert s.header("content-length") is None, s.headers
    assert gunzip(s.body) == original
    return True


@pytest.mark.parametrize("which", list(H2_TARGETS))
def test_body_is_gzipped_over_cleartext_h2_with_prior_knowledge(
        rampart, port, backend, tmp_path, which):
    target, original = H2_TARGETS[which]
    start(rampart, port, backend=backend, listen=" http2")
    with H2Conn(port, timeout=20) as c:
        assert h2_gzipped(c.get(target, headers=[("accept-encoding", "gzip")]), original)
    version, status, fields, body = curl(tmp_path, f"http://127.0.0.1:{port}{target}",
                                         "--http2-prior-knowledge")
    assert (version, status, fields["content-encoding"], body) == \
        ("HTTP/2", 200, ["gzip"], original)


@pytest.mark.parametrize("which", list(H2_TARGETS))
def test_body_is_gzipped_over_h2_with_tls_and_alpn(rampart, port, backend, certs, tmp_path,
                                                     which):
    target, original = H2_TARGETS[which]
    start(rampart, port, backend=backend, listen=" ssl http2",
          server=f"server_name a.test;\n{certs.directives('a.test')}")
    with H2Conn(port, tls=h2_context(certs), sni="a.test", timeout=20) as c:
        assert c.alpn == "h2"
        s = c.get(target, authority="a.test", scheme="https",
                  headers=[("accept-encoding", "gzip")])
        assert h2_gzipped(s, original)
    version, status, fields, body = curl(tmp_path, f"https://a.test:{port}{target}", "--http2",
                                         "--resolve", f"a.test:{port}:127.0.0.1",
                                         "--cacert", certs.ca)
    assert (version, status, fields["content-encoding"], body) == \
        ("HTTP/2", 200, ["gzip"], original)


def test_concurrent_h2_streams_are_compressed_independently(rampart, port, origin):
    start(rampart, port, backend=origin, listen=" http2")
    sizes = [SMALL, 300_000, LARGE, 50_000, LARGE // 2]
    with H2Conn(port, timeout=20) as c:
        sids = [c.request("GET", f"/s{i}/words?size={n}&chunked={i % 2}",
                          headers=[("accept-encoding", "gzip")]) for i, n in enumerate(sizes)]
        for sid, n in zip(sids, sizes):
            assert h2_gzipped(c.response(sid, timeout=20), words(n))


def test_client_resetting_an_h2_stream_mid_body_leaves_the_other_streams_intact(
        rampart, port, origin):
    start(rampart, port, backend=origin, listen=" http2")
    gz = [("accept-encoding", "gzip")]
    with H2Conn(port, timeout=20) as c:
        big = c.request("GET", "/hex?size=33554432", headers=gz)
        other = c.request("GET", f"/words?size={LARGE}", headers=gz)
        c.read_until(lambda: len(c.streams[big].body) > 0, what="the first compressed bytes")
        c.send(rst_stream_frame(big))
        assert h2_gzipped(c.response(other, timeout=20), words(LARGE))
        log = rampart.prefix / "logs" / "access.log"
        wait_for(lambda: log.exists() and "/hex?size" in log.read_text(), timeout=20,
                 what="the reset stream's access log line")
        assert h2_gzipped(c.get("/html", headers=gz), TEXT)


@pytest.fixture
def h2_origin():
    b = H2Backend().start()
    yield b
    b.stop()


def test_body_from_an_h2_upstream_is_compressed_and_flushed_as_it_comes(
        rampart, port, h2_origin):
    rampart.configure(f"upstream be {{ server {h2_origin.addr}; http2; }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n gzip on; gzip_types *;\n"
                      f" location / {{ proxy_pass http://be; }}\n}}")
    rampart.start()
    assert is_gzipped(get1(port, f"/?size={LARGE}"), pattern(LARGE))
    # two 16k blocks three seconds apart: the first decompresses alone, before the second
    with Client(port, timeout=20) as c:
        c.send_request("/?size=32768&body_delay=3", headers=[("Accept-Encoding", "gzip")])
        _, status, fields, raw = c.head()
        assert status == 200 and ("Content-Encoding", "gzip") in fields, raw
        d = zlib.decompressobj(wbits=31)
        seen = b""
        while len(seen) < 16384:
            seen += d.decompress(next_chunk(c))
        assert seen == pattern(16384)
        while (data := next_chunk(c)) is not None:
            seen += d.decompress(data)
        assert d.eof and seen == pattern(32768)


def test_trailers_from_an_h2_upstream_follow_the_compressed_body(rampart, port, h2_origin):
    rampart.configure(f"upstream be {{ server {h2_origin.addr}; http2; }}\n"
                      f"server {{\n listen 127.0.0.1:{port} http2;\n gzip on; gzip_types *;\n"
                      f" location / {{ proxy_pass http://be; }}\n}}")
    rampart.start()
    with H2Conn(port, timeout=20) as c:
        s = c.get(f"/?size={LARGE}&trailers=1", headers=[("accept-encoding", "gzip")])
    assert h2_gzipped(s, pattern(LARGE))
    assert s.trailers == [("x-trailer", "done")], s.trailers


# -- the fields of a compressed answer -------------------------------------------------------


def test_gzip_vary_marks_compressed_and_uncompressed_answers_alike(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_vary on;", backend=backend)
    r = get1(port, "/html")
    assert is_gzipped(r, TEXT) and r.all("Vary") == ["Accept-Encoding"]
    # a client without Accept-Encoding gets the plain body, and a cache learns it varies
    r = get1(port, "/html", ae=None)
    assert is_plain(r, TEXT) and r.all("Vary") == ["Accept-Encoding"]
    r = get1(port, be(size=SMALL), ae="identity")
    assert is_plain(r, pattern(SMALL)) and r.all("Vary") == ["Accept-Encoding"]
    # a type gzip never compresses does not vary on Accept-Encoding
    r = get1(port, be(ctype="image/png", size=SMALL))
    assert is_plain(r) and r.all("Vary") == []


def test_without_gzip_vary_no_vary_is_added(rampart, port):
    start(rampart, port)
    assert get1(port, "/html").all("Vary") == []
    assert get1(port, "/html", ae=None).all("Vary") == []


def test_gzip_vary_does_not_repeat_what_the_upstream_vary_says(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_vary on;", backend=backend)
    r = get1(port, be(size=SMALL, headers=["Vary:accept-encoding"]))
    assert is_gzipped(r, pattern(SMALL))
    assert vary_tokens(r.all("Vary")) == ["accept-encoding"]
    r = get1(port, be(size=SMALL, headers=["Vary:Origin"]))
    assert is_gzipped(r, pattern(SMALL))
    assert sorted(vary_tokens(r.all("Vary"))) == ["accept-encoding", "origin"]


def test_compressed_answer_weakens_the_etag_and_drops_accept_ranges(rampart, port, backend):
    start(rampart, port, backend=backend)
    fields = ['ETag:"v1"', "Accept-Ranges:bytes"]
    r = get1(port, be(size=SMALL, headers=fields))
    assert is_gzipped(r, pattern(SMALL))
    assert r.all("ETag") == ['W/"v1"'] and r.all("Accept-Ranges") == []
    # the uncompressed answer keeps both as they were
    r = get1(port, be(size=SMALL, headers=fields), ae=None)
    assert is_plain(r, pattern(SMALL))
    assert r.all("ETag") == ['"v1"'] and r.all("Accept-Ranges") == ["bytes"]


def test_a_weak_etag_stays_as_it_was(rampart, port, backend):
    start(rampart, port, backend=backend)
    r = get1(port, be(size=SMALL, headers=['ETag:W/"v2"']))
    assert is_gzipped(r, pattern(SMALL)) and r.all("ETag") == ['W/"v2"']


def test_compressed_answer_over_h2_has_no_content_length_and_a_weak_etag(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_vary on;", backend=backend, listen=" http2")
    with H2Conn(port, timeout=20) as c:
        s = c.get(be(size=SMALL, headers=['ETag:"v1"', "Accept-Ranges:bytes"]),
                  headers=[("accept-encoding", "gzip")])
    assert h2_gzipped(s, pattern(SMALL))
    assert s.all("etag") == ['W/"v1"'] and s.all("accept-ranges") == []
    assert s.all("vary") == ["Accept-Encoding"]


# -- the decision ----------------------------------------------------------------------------


def test_no_accept_encoding_gets_the_plain_body_with_its_length(rampart, port, backend):
    start(rampart, port, backend=backend)
    r = get1(port, "/html", ae=None)
    assert is_plain(r, TEXT) and r.framing == "length"
    r = get1(port, be(size=LARGE), ae=None)
    assert is_plain(r, pattern(LARGE)) and r.header("Content-Length") == str(LARGE)


@pytest.mark.parametrize("ae", ["gzip;q=0", "gzip; q=0.000", "deflate, gzip;q=0, br",
                                "deflate, br", "x-gzip", "identity", ""])
def test_accept_encoding_without_gzip_or_with_q_0_gets_the_plain_body(rampart, port, ae):
    start(rampart, port)
    assert is_plain(get1(port, "/html", ae=ae), TEXT)


@pytest.mark.parametrize("ae", ["gzip", "GZIP", "deflate, gzip", "gzip;q=0.5",
                                "br;q=1.0, gzip;q=0.001", "gzip, deflate, br, zstd", "*, gzip"])
def test_accept_encoding_with_gzip_q_above_0_gets_the_compressed_body(rampart, port, ae):
    start(rampart, port)
    assert is_gzipped(get1(port, "/html", ae=ae), TEXT)


def test_http10_is_not_compressed_by_default(rampart, port, backend):
    start(rampart, port, backend=backend)
    assert is_plain(get1(port, "/html", version="1.0"), TEXT)
    assert is_plain(get1(port, be(size=SMALL), version="1.0"), pattern(SMALL))


def test_gzip_http_version_1_0_compresses_for_http10_with_a_close_delimited_body(
        rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_http_version 1.0;", backend=backend)
    r = get1(port, be(size=LARGE), version="1.0")
    assert is_gzipped(r, pattern(LARGE), http10=True)
    assert r.header("Connection") == "close"


def test_types_outside_gzip_types_are_not_compressed_and_text_html_always_is(
        rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_types application/json;", backend=backend)
    assert is_plain(get1(port, "/plain"), TEXT)  # text/plain: not listed
    assert is_plain(get1(port, be(ctype="text/css", size=SMALL)), pattern(SMALL))
    assert is_plain(get1(port, be(ctype=None, size=SMALL)), pattern(SMALL))
    assert is_gzipped(get1(port, "/html"), TEXT)
    assert is_gzipped(get1(port, be(ctype="application/json", size=SMALL)), pattern(SMALL))
    assert is_gzipped(get1(port, be(ctype="Application/JSON; charset=utf-8", size=SMALL)),
                      pattern(SMALL))
    assert is_gzipped(get1(port, be(ctype="text/html;charset=utf-8", size=SMALL)),
                      pattern(SMALL))


def test_default_gzip_types_is_text_html_alone(rampart, port):
    start(rampart, port)
    assert is_plain(get1(port, "/plain"), TEXT)
    assert is_gzipped(get1(port, "/html"), TEXT)


def test_gzip_types_star_compresses_every_type(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_types *;", backend=backend)
    assert is_gzipped(get1(port, "/plain"), TEXT)
    assert is_gzipped(get1(port, be(ctype="image/x-anything", size=SMALL)), pattern(SMALL))


def test_gzip_types_in_a_location_replaces_the_servers(rampart, port):
    def loc(path, ctype, extra=""):
        return (f'location = {path} {{ default_type {ctype}; {extra} '
                f'return 200 "{TEXT.decode()}"; }}\n')
    start(rampart, port, gz="gzip on; gzip_types text/css;",
          locations=loc("/css", "text/css") +
          loc("/own/js", "application/javascript", "gzip_types application/javascript;") +
          loc("/own/css", "text/css", "gzip_types application/javascript;"))
    assert is_gzipped(get1(port, "/css"), TEXT)
    assert is_gzipped(get1(port, "/own/js"), TEXT)
    assert is_plain(get1(port, "/own/css"), TEXT)


def test_a_body_shorter_than_gzip_min_length_is_not_compressed_when_its_length_is_known(
        rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_min_length 1000;", backend=backend)
    assert is_plain(get1(port, be(size=999)), pattern(999))
    assert is_gzipped(get1(port, be(size=1000)), pattern(1000))
    # of a chunked body the length is not known: it is compressed, however short
    assert is_gzipped(get1(port, be(size=10, chunked=1)), pattern(10))
    assert len(TEXT) < 1000 and is_plain(get1(port, "/html"), TEXT)


def test_default_gzip_min_length_is_20(rampart, port, backend):
    start(rampart, port, backend=backend)
    assert is_plain(get1(port, be(size=19)), pattern(19))
    assert is_gzipped(get1(port, be(size=20)), pattern(20))


@pytest.mark.parametrize("status,compressed", [(200, True), (403, True), (404, True),
                                               (201, False), (206, False), (410, False),
                                               (500, False), (503, False)])
def test_only_200_403_and_404_are_compressed(rampart, port, backend, status, compressed):
    start(rampart, port, backend=backend)
    r = get1(port, be(size=SMALL, status=status))
    assert r.status == status
    assert is_gzipped(r, pattern(SMALL)) if compressed else is_plain(r, pattern(SMALL))


def test_rampart_own_404_page_is_compressed(rampart, port):
    start(rampart, port)
    r = get1(port, "/missing")
    assert r.status == 404
    assert b"404 Not Found" in gunzip(r.body) and r.header("Content-Encoding") == "gzip"


def test_head_says_what_a_get_would_get_as_nginx_does(rampart, port, backend):
    # nginx's gzip header filter runs before HEAD makes the answer header-only, so a
    # HEAD says Content-Encoding: gzip, Vary, and no length (operators check with curl -I)
    start(rampart, port, gz="gzip on; gzip_vary on;", backend=backend)
    for target in ("/html", be(size=LARGE)):
        r = get1(port, target, method="HEAD")
        assert (r.status, r.header("Content-Encoding"), r.header("Content-Length"),
                r.header("Vary")) == (200, "gzip", None, "Accept-Encoding"), r.raw_head
        assert r.body == b""
    # and the connection goes on: the HEAD had no body, compressed or not
    assert is_gzipped(get1(port, "/html"), TEXT)


def test_a_body_encoded_by_the_upstream_passes_untouched(rampart, port, backend):
    start(rampart, port, backend=backend)
    pre = zlib.compress(TEXT, wbits=31)  # a gzip member
    raw = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(pre), pre))
    r = get1(port, "/?" + q(raw=b64(raw)))
    assert r.all("Content-Encoding") == ["gzip"] and r.header("Content-Length") == str(len(pre))
    assert r.body == pre and gunzip(r.body) == TEXT  # compressed once, not twice
    # another coding is not wrapped in gzip either
    r = get1(port, be(size=SMALL, headers=["Content-Encoding:br"]))
    assert r.all("Content-Encoding") == ["br"] and r.body == pattern(SMALL)


VIA = [("Via", "1.1 cache.example")]


def test_request_through_a_proxy_is_not_compressed_by_default(rampart, port, backend):
    start(rampart, port, backend=backend)
    assert is_plain(get1(port, "/html", headers=VIA), TEXT)
    assert is_plain(get1(port, be(size=SMALL), headers=VIA), pattern(SMALL))


def test_gzip_proxied_any_compresses_requests_through_a_proxy(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_proxied any;", backend=backend)
    assert is_gzipped(get1(port, "/html", headers=VIA), TEXT)
    assert is_gzipped(get1(port, be(size=SMALL), headers=VIA), pattern(SMALL))


def test_gzip_proxied_off_does_not_compress_requests_through_a_proxy(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_proxied off;", backend=backend)
    assert is_plain(get1(port, be(size=SMALL), headers=VIA), pattern(SMALL))
    assert is_gzipped(get1(port, be(size=SMALL)), pattern(SMALL))  # without Via it is


def test_gzip_proxied_no_cache_follows_the_responses_cache_control(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_proxied no-cache;", backend=backend)
    r = get1(port, be(size=SMALL, headers=["Cache-Control:private, no-cache"]), headers=VIA)
    assert is_gzipped(r, pattern(SMALL))
    r = get1(port, be(size=SMALL, headers=["Cache-Control:max-age=60"]), headers=VIA)
    assert is_plain(r, pattern(SMALL))


def test_gzip_proxied_auth_compresses_requests_with_authorization(rampart, port, backend):
    start(rampart, port, gz="gzip on; gzip_proxied auth;", backend=backend)
    target = be(size=SMALL, headers=["Cache-Control:public"])
    assert is_gzipped(get1(port, target, headers=VIA + [("Authorization", "Basic eDp5")]),
                      pattern(SMALL))
    assert is_plain(get1(port, target, headers=VIA), pattern(SMALL))


def http_date(offset):
    """An IMF-fixdate offset seconds from now."""
    return email.utils.formatdate(time.time() + offset, usegmt=True)


@pytest.mark.parametrize("expires,compressed", [
    (http_date(-3600), True),                        # expired: no cache keeps it
    ("Sunday, 06-Nov-94 08:49:37 GMT", True),        # RFC 850, long past
    ("Sun Nov  6 08:49:37 1994", True),              # asctime, long past
    (http_date(3600), False),                        # a cache may keep it an hour
    ("0", False),                                    # not a date
], ids=["past", "rfc850-past", "asctime-past", "future", "not-a-date"])
def test_gzip_proxied_expired_compresses_only_answers_whose_expires_has_passed(
        rampart, port, backend, expires, compressed):
    start(rampart, port, gz="gzip on; gzip_proxied expired;", backend=backend)
    r = get1(port, be(size=SMALL, headers=[f"Expires:{expires}"]), headers=VIA)
    assert is_gzipped(r, pattern(SMALL)) if compressed else is_plain(r, pattern(SMALL))


def test_gzip_disable_regex_matches_the_user_agent(rampart, port):
    start(rampart, port, gz='gzip on; gzip_disable "^curl/" "(?i)wget";')
    for ua in ("curl/8.1.2", "GNU Wget/1.21"):
        assert is_plain(get1(port, "/html", headers=[("User-Agent", ua)]), TEXT), ua
    for ua in ("Mozilla/5.0 (X11; Linux x86_64)", "my-curl/1"):
        assert is_gzipped(get1(port, "/html", headers=[("User-Agent", ua)]), TEXT), ua
    assert is_gzipped(get1(port, "/html"), TEXT)  # no User-Agent at all


@pytest.mark.parametrize("ua,compressed", [
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.0)", False),
    ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", False),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", True),
    ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", True),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", True),
])
def test_gzip_disable_msie6_spares_only_old_internet_explorers(rampart, port, ua, compressed):
    start(rampart, port, gz="gzip on; gzip_disable msie6;")
    r = get1(port, "/html", headers=[("User-Agent", ua)])
    assert is_gzipped(r, TEXT) if compressed else is_plain(r, TEXT)


def test_gzip_off_in_a_location_leaves_it_uncompressed(rampart, port):
    start(rampart, port, locations='location = /raw { default_type text/html; gzip off; '
                                   f'return 200 "{TEXT.decode()}"; }}\n')
    assert is_plain(get1(port, "/raw"), TEXT)
    assert is_gzipped(get1(port, "/html"), TEXT)


def test_directives_of_the_http_level_hold_in_a_location_that_sets_none(rampart, port, backend):
    start(rampart, port, gz="", backend=backend,
          http='gzip on; gzip_types application/json; gzip_min_length 500; gzip_vary on;\n'
               'gzip_proxied any; gzip_disable msie6 "^bot/";',
          locations=f"location /inner/ {{ proxy_pass http://{backend.addr}/; }}\n")
    json_ = "application/json"
    r = get1(port, "/inner" + be(ctype=json_, size=SMALL), headers=VIA)
    assert is_gzipped(r, pattern(SMALL)) and r.all("Vary") == ["Accept-Encoding"]
    assert is_plain(get1(port, "/inner" + be(ctype=json_, size=499)), pattern(499))
    assert is_plain(get1(port, "/inner" + be(ctype="text/css", size=SMALL)), pattern(SMALL))
    for ua in ("bot/1.0", "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.0)"):
        r = get1(port, "/inner" + be(ctype=json_, size=SMALL), headers=[("User-Agent", ua)])
        assert is_plain(r, pattern(SMALL)), ua


# -- compression level -----------------------------------------------------------------------


def test_comp_level_9_is_smaller_than_level_1_and_both_decompress(rampart, port, origin):
    start(rampart, port,
          locations=f"location /l1/ {{ gzip_comp_level 1; proxy_pass http://{origin.addr}; }}\n"
                    f"location /l9/ {{ gzip_comp_level 9; proxy_pass http://{origin.addr}; }}\n")
    size = 512 * 1024
    fast, best = get1(port, f"/l1/words?size={size}"), get1(port, f"/l9/words?size={size}")
    assert is_gzipped(fast, words(size)) and is_gzipped(best, words(size))
    assert len(best.body) < len(fast.body) * 0.95, (len(best.body), len(fast.body))
    assert len(fast.body) < size / 2


# -- streaming: a producer with nothing more for now gets its bytes out ----------------------


def test_events_reach_an_http11_client_before_the_upstream_sends_the_next(
        rampart, port, origin):
    start(rampart, port, gz="gzip on; gzip_types text/event-stream;", backend=origin)
    n = 3
    with Client(port, timeout=20) as c:
        c.send_request(f"/events?n={n}", headers=[("Accept-Encoding", "gzip")])
        _, status, fields, raw = c.head()
        assert status == 200 and ("Content-Encoding", "gzip") in fields, raw
        d = zlib.decompressobj(wbits=31)
        seen = b""
        for i in range(n):
            # event i, all of it, decompresses before the origin may send anything more
            while Origin.event(i) not in seen:
                data = next_chunk(c)
                assert data is not None, f"the body ended before event {i}: {seen!r}"
                seen += d.decompress(data)
            origin.gates[i + 1].set()
        while (data := next_chunk(c)) is not None:
            seen += d.decompress(data)
        assert d.eof and d.unused_data == b""
    assert seen == b"".join(Origin.event(i) for i in range(n))


def test_events_reach_an_h2_client_before_the_upstream_sends_the_next(rampart, port, origin):
    start(rampart, port, gz="gzip on; gzip_types text/event-stream;", backend=origin,
          listen=" http2")
    n = 3
    with H2Conn(port, timeout=20) as c:
        sid = c.request("GET", f"/events?n={n}", headers=[("accept-encoding", "gzip")])
        s = c.streams[sid]
        for i in range(n):
            want = Origin.event(i)
            c.read_until(lambda: want in zlib.decompressobj(wbits=31).decompress(bytes(s.body)),
                         timeout=20, what=f"event {i} to decompress")
            origin.gates[i + 1].set()
        s = c.response(sid, timeout=20)
    assert h2_gzipped(s, b"".join(Origin.event(i) for i in range(n)))


# -- back-pressure -----------------------------------------------------------------------------


class SmallWindowClient(Client):
    """A Client whose receive buffer is 16k (set before connecting, so the TCP window stays
    small): when it stops reading, the sender feels it at once."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""


def test_slow_client_of_a_compressed_body_slows_the_upstream_and_memory_stays_bounded(
        rampart, port, origin):
    # streamed (proxy_buffering off): the upstream feels the client's pace
    start(rampart, port, backend=origin, server="proxy_buffering off;")
    assert is_gzipped(get1(port, f"/words?size={SMALL}"), words(SMALL))  # warm the worker
    total = 128 * MB
    pid = worker_pid(rampart)
    with RssWatch(pid) as rss, SmallWindowClient(port, timeout=20) as c:
        c.send_request(f"/hex?size={total}", headers=[("Accept-Encoding", "gzip")])
        _, status, fields, raw = c.head()
        assert status == 200 and ("Content-Encoding", "gzip") in fields, raw
        d = zlib.decompressobj(wbits=31)
        h = hashlib.sha256()
        got = 0
        while got < 4096:  # a few KB, then the client stops reading
            data = next_chunk(c)
            h.update(d.decompress(data))
            got += len(data)

        # the origin stops being read: what it sent stands still, far short of the body
        def stalled():
            before = origin.sent
            time.sleep(0.5)
            return origin.sent == before and before > 0
        wait_for(stalled, timeout=20, interval=0, what="the origin to be held back")
        held_back, during = origin.sent, rss.peak
        assert held_back < total // 2, f"{held_back / MB:.0f} MB read for a client not reading"
        # the client reads again: the rest arrives, intact
        while (data := next_chunk(c)) is not None:
            h.update(d.decompress(data))
        h.update(d.flush())
        assert d.eof and d.unused_data == b""
    growth = (during - rss.base) / 1024
    assert growth < 32, f"worker RSS grew by {growth:.1f} MB while the client was not reading"
    assert h.hexdigest() == hex_sha256(total)


def test_slow_h2_client_of_a_compressed_body_slows_the_upstream_and_memory_stays_bounded(
        rampart, port, origin):
    start(rampart, port, backend=origin, listen=" http2", server="proxy_buffering off;")
    gz = [("accept-encoding", "gzip")]
    with H2Conn(port, timeout=20) as warm:
        assert h2_gzipped(warm.get(f"/words?size={SMALL}", headers=gz), words(SMALL))
    total = 64 * MB
    with RssWatch(worker_pid(rampart)) as rss, H2Conn(port, timeout=20) as c:
        sid = c.request("GET", f"/hex?size={total}", headers=gz)
        s = c.streams[sid]
        c.read_until(lambda: len(s.body) >= 4096, what="the first compressed bytes")

        # the client stops reading: what the origin sent stands still, far short of it all
        def stalled():
            before = origin.sent
            time.sleep(0.5)
            return origin.sent == before and before > 0
        wait_for(stalled, timeout=20, interval=0, what="the origin to be held back")
        held_back, during = origin.sent, rss.peak
        assert held_back < total // 2, f"{held_back / MB:.0f} MB read for a client not reading"
        s = c.response(sid, timeout=20)
    growth = (during - rss.base) / 1024
    assert growth < 32, f"worker RSS grew by {growth:.1f} MB while the client was not reading"
    assert (s.status, s.all("content-encoding")) == (200, ["gzip"])
    d = zlib.decompressobj(wbits=31)
    h = hashlib.sha256()
    view = memoryview(s.body)
    for at in range(0, len(view), MB):
        h.update(d.decompress(view[at:at + MB]))
    assert d.eof and h.hexdigest() == hex_sha256(total)


# -- $gzip_ratio -------------------------------------------------------------------------------


def test_gzip_ratio_is_logged_for_compressed_answers_and_dash_for_others(rampart, port, tmp_path):
    start(rampart, port, http="log_format gz '$uri $status $gzip_ratio';\n"
                               "access_log logs/gz.log gz;")
    assert is_gzipped(get1(port, "/html"), TEXT)
    assert is_plain(get1(port, "/html", ae=None), TEXT)
    assert is_plain(get1(port, "/plain"), TEXT)
    log = rampart.prefix / "logs" / "gz.log"
    lines = wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 3 and
                     log.read_text().splitlines(), timeout=10, what="three access log lines")
    uri, status, ratio = lines[0].split(" ")
    assert (uri, status) == ("/html", "200") and re.fullmatch(r"\d+\.\d\d", ratio), lines[0]
    assert float(ratio) > 1
    assert lines[1:] == ["/html 200 -", "/plain 200 -"]


# -- limit_rate paces the compressed body ------------------------------------------------------


def test_gzip_with_limit_rate_gives_a_paced_decompressible_body(rampart, port, origin):
    rate = 64 * 1024
    start(rampart, port, backend=origin, server=f"limit_rate {rate};")
    size = 400_000  # hex: about 220 KB once compressed, three and a half seconds' worth
    t0 = time.monotonic()
    r = get1(port, f"/hex?size={size}")
    elapsed = time.monotonic() - t0
    assert is_gzipped(r, hex_text(size))
    # nginx's pace: RATE * (t + 1) bytes by time t
    least = len(r.body) / rate - 1
    assert least > 1.5 and elapsed >= least * 0.9, (len(r.body), elapsed)


def test_gzip_with_limit_rate_over_h2_gives_a_paced_decompressible_body(rampart, port, origin):
    rate = 64 * 1024
    start(rampart, port, backend=origin, server=f"limit_rate {rate};", listen=" http2")
    size = 400_000
    with H2Conn(port, timeout=20) as c:
        t0 = time.monotonic()
        s = c.get(f"/hex?size={size}", headers=[("accept-encoding", "gzip")], timeout=20)
        elapsed = time.monotonic() - t0
    assert h2_gzipped(s, hex_text(size))
    least = len(s.body) / rate - 1
    assert least > 1.5 and elapsed >= least * 0.9, (len(s.body), elapsed)


# -- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize("line,message", [
    ("gzip_comp_level 0;", '"gzip_comp_level": invalid compression level "0", it must be 1 to 9'),
    ("gzip_comp_level 10;",
     '"gzip_comp_level": invalid compression level "10", it must be 1 to 9'),
    ("gzip_http_version 2.0;",
     '"gzip_http_version": invalid value "2.0", it must be "1.0" or "1.1"'),
    ("gzip_proxied off any;", '"gzip_proxied": "off" cannot be combined with other values'),
    ("gzip_proxied sometimes;", '"gzip_proxied": invalid value "sometimes"'),
    ('gzip_disable "(";',
     '"gzip_disable": invalid regex "(": missing closing parenthesis at offset 1'),
    ("gzip_buffers 16 1;", '"gzip_buffers": invalid buffer size "1"'),
    ("gzip_comp_level 5; gzip_comp_level 6;", '"gzip_comp_level": duplicate directive'),
])
def test_invalid_gzip_directive_fails_the_test_with_file_and_line(conf_dir, line, message):
    path = conf_dir / "rampart.conf"
    path.write_text("worker_processes 1;\npid logs/rampart.pid;\nhttp {\n    gzip on;\n"
                    "    server {\n        listen 127.0.0.1:8080;\n"
                    f"        location / {{\n            {line}\n"
                    '            return 200 "ok";\n        }\n    }\n}\n')
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr == (f"rampart: {path}:8: {message}\n"
                        f"rampart: configuration file {path} test failed\n")


def test_every_gzip_directive_is_accepted_at_each_level(conf_dir):
    block = ("gzip on; gzip_types text/css application/json; gzip_min_length 100; "
             "gzip_comp_level 6; gzip_proxied expired no-cache no-store private "
             "no_last_modified no_etag auth; gzip_vary on; gzip_http_version 1.0; "
             "gzip_buffers 16 8k; gzip_disable msie6 \"^Lynx\";")
    (conf_dir / "rampart.conf").write_text(
        f"worker_processes 1;\npid logs/rampart.pid;\nhttp {{\n {block}\n server {{\n"
        f"  listen 127.0.0.1:8080;\n {block}\n  location / {{ {block} return 200 \"ok\"; }}\n"
        f" }}\n}}\n")
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 0, p.stderr



# -- a response restarted before its head went out --------------------------------------------

# a head that gzip compresses, then a body the proxy refuses before anything was sent
BAD_BODY = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nok\r\n0\r\n\r\n")


def test_upstream_failing_before_the_head_went_out_gets_a_plain_502(rampart, port, backend):
    # gzip had chosen to compress the upstream's head, which never went out: the 502 page
    # that replaces it must go as its fields say, plain
    start(rampart, port, backend=backend)
    with Client(port, timeout=20) as c:
        r = c.request("/?" + q(raw=b64(BAD_BODY)), headers=[("Accept-Encoding", "gzip")])
        assert r.status == 502, r
        assert is_plain(r) and b"502 Bad Gateway" in r.body, (r.raw_head, r.body)
        # the connection's framing held: the next answer on it is whole
        assert is_gzipped(c.request("/html", headers=[("Accept-Encoding", "gzip")]), TEXT)

