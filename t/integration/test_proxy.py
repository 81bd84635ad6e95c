"""The HTTP/1.1 reverse proxy, end to end: proxy_pass to an upstream block or to
host:port, keep-alive to the upstream, nginx's URI rules, the headers added,
removed and rewritten both ways, response framing, strict parsing of upstream
responses, timeouts and failover, request bodies (Expect, chunked, size limits),
bounded memory on big transfers, balancing, and the $upstream_* variables.

A bug found here gets a test that fails until it is fixed.

The backend is backend.py (the `backend` fixture): each request says how it
wants to be answered with query parameters or X-Backend-* headers, and
`echo=1` returns the request as the backend received it."""

import base64
import hashlib
import json
import os
import re
import socket
import threading
import time
import urllib.parse

import pytest

from backend import BAD_RESPONSES, pattern, pattern_sha256
from harness import request, wait_for

MB = 1 << 20


# -- configuration -------------------------------------------------------------


def serve(rampart, port, backend, location="proxy_pass http://be;", upstream="keepalive 4;",
          server="", http="", locations=None):
    """Starts rampart with `upstream be` pointing at backend and one server on port.
    `locations` replaces the default `location / { <location> }`."""
    if locations is None:
        locations = f"location / {{ {location} }}"
    rampart.configure(f"{http}\n"
                      f"upstream be {{ server {backend.addr}; {upstream} }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n {server}\n {locations}\n}}")
    rampart.start()
    return rampart


def q(**params):
    """A query string for the backend; list values repeat the parameter."""
    pairs = []
    for k, v in params.items():
        for item in (v if isinstance(v, list) else [v]):
            pairs.append((k, str(item)))
    return urllib.parse.urlencode(pairs)


# -- a raw HTTP/1 client that sees the framing ---------------------------------


class Resp:
    def __init__(self, version, status, headers, body, framing, raw_head):
        self.version = version
        self.status = status
        self.headers = headers  # [(name, value)] in order
        self.body = body
        self.framing = framing  # "length", "chunked", "close" or "none"
        self.raw_head = raw_head

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name):
        vals = self.all(name)
        return vals[-1] if vals else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Resp {self.status} {self.framing} {self.body[:60]!r}>"


class Client:
    """One client connection; reads responses exactly by their framing."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_request(self, target="/", method="GET", headers=(), body=b"", version="1.1",
                     host="localhost"):
        lines = [f"{method} {target} HTTP/{version}"]
        if host is not None:
            lines.append(f"Host: {host}")
        lines += [f"{n}: {v}" for n, v in headers]
        if body and not any(n.lower() in ("content-length", "transfer-encoding")
                            for n, _ in headers):
            lines.append(f"Content-Length: {len(body)}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def request(self, target="/", method="GET", **kw):
        self.send_request(target, method, **kw)
        return self.response(method)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; unread: {self.buf[:200]!r}")
        self.buf += chunk

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ")[:2]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        return version, int(status), headers, raw

    def response(self, method="GET"):
        version, status, headers, raw = self.head()
        r = Resp(version, status, headers, b"", "none", raw)
        te = r.header("Transfer-Encoding")
        cl = r.header("Content-Length")
        if method == "HEAD" or status in (204, 304) or status < 200:
            return r
        if te is not None:
            assert te.lower() == "chunked", te
            r.framing = "chunked"
            body = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                body.append(self._take(size))
                assert self._take(2) == b"\r\n"
            r.body = b"".join(body)
        elif cl is not None:
            r.framing = "length"
            r.body = self._take(int(cl))
        else:
            r.framing = "close"
            try:
                while True:
                    self._more()
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
        return r

    def at_eof(self, timeout=2.0):
        """True when the server closed the connection (nothing more to read)."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def b64(data):
    """raw= for the backend: these exact bytes are its answer."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def echo_of(r):
    """The backend's description of the request it received (echo=1)."""
    assert r.status == 200, (r.status, r.body[:300])
    return json.loads(r.body)


def sent(e, name):
    """Values of one request header as the backend received it."""
    return [v for n, v in e["headers"] if n.lower() == name.lower()]


def names(e):
    return {n.lower() for n, _ in e["headers"]}


def get_echo(port, target="/", headers=None, **kw):
    """Asks through rampart on a fresh connection with echo on; returns the echo."""
    hdrs = {"X-Backend-Echo": "1"}
    hdrs.update(headers or {})
    return echo_of(request(port, target, headers=hdrs, **kw))


# -- 1. the basic exchange -------------------------------------------------------


def test_get_through_upstream_block_passes_status_body_and_headers(rampart, port, backend):
    serve(rampart, port, backend)
    r = request(port, "/x?" + q(status=201, body="hello there\n", header="X-Custom: yes"))
    assert r.status == 201
    assert r.body == b"hello there\n"
    assert r.headers["X-Custom"] == "yes"
    assert r.headers["X-Backend-Name"] == backend.name
    assert r.headers["Content-Length"] == "12"


def test_get_through_host_port_reaches_the_server_with_host_header(rampart, port, backend):
    serve(rampart, port, backend, location=f"proxy_pass http://{backend.addr};")
    r = request(port, "/p/q?a=1&echo=1")
    e = echo_of(r)
    assert e["method"] == "GET"
    assert e["target"] == "/p/q?a=1&echo=1"
    assert e["version"] == "HTTP/1.1"
    assert sent(e, "Host") == [backend.addr]


def test_post_body_arrives_intact(rampart, port, backend):
    serve(rampart, port, backend)
    body = os.urandom(300_000)
    e = echo_of(request(port, "/upload?echo=1", method="POST", body=body))
    assert e["method"] == "POST"
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert sent(e, "Content-Length") == [str(len(body))]


def test_empty_response_body_keeps_content_length_zero(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?body=")
        assert (r.status, r.framing, r.body) == (200, "length", b"")
        assert r.header("Content-Length") == "0"
        assert c.request("/?body=next").body == b"next"


def test_empty_post_sends_content_length_zero(rampart, port, backend):
    serve(rampart, port, backend)
    e = echo_of(request(port, "/?echo=1", method="POST", body=b""))
    assert sent(e, "Content-Length") == ["0"]
    assert e["body_length"] == 0


# -- 2. keep-alive to the upstream -------------------------------------------------


def test_keepalive_pool_carries_sequential_requests_over_one_connection(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4;")
    seen = set()
    for i in range(20):
        r = request(port, f"/{i}")  # each on a new client connection
        assert r.status == 200
        seen.add(r.headers["X-Backend-Connection"])
    assert len(seen) == 1
    stats = backend.stats()
    assert (stats["connections_accepted"], stats["requests"]) == (1, 20)


def test_keepalive_pool_sends_no_connection_close_upstream(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4;")
    e = get_echo(port, "/")
    assert sent(e, "Connection") == []


def test_without_keepalive_each_request_gets_a_new_connection_with_close(rampart, port, backend):
    serve(rampart, port, backend, upstream="")
    conns = []
    for i in range(5):
        e = get_echo(port, f"/{i}")
        assert sent(e, "Connection") == ["close"]
        assert e["request_on_connection"] == 1
        conns.append(e["connection"])
    assert len(set(conns)) == 5
    assert backend.stats()["connections_accepted"] == 5


def test_keepalive_requests_limits_requests_per_upstream_connection(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4; keepalive_requests 5;")
    with Client(port) as c:
        per_conn = [(r.header("X-Backend-Connection"), r.header("X-Backend-Request"))
                    for r in (c.request(f"/{i}") for i in range(20))]
    assert [int(n) for _, n in per_conn] == [1, 2, 3, 4, 5] * 4
    assert len({conn for conn, _ in per_conn}) == 4
    assert backend.stats()["connections_accepted"] == 4


def test_upstream_connection_close_is_not_reused(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4;")
    first = request(port, "/?close=1")
    second = request(port, "/")
    assert (first.status, second.status) == (200, 200)
    assert first.headers.get("Connection") is None  # the client's connection stays open
    assert first.headers["X-Backend-Connection"] != second.headers["X-Backend-Connection"]
    assert backend.stats()["connections_accepted"] == 2


def test_client_connection_close_does_not_close_the_upstream_connection(
        rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4;")
    for _ in range(3):
        with Client(port) as c:
            r = c.request("/", headers=[("Connection", "close")])
            assert r.status == 200
            assert r.header("Connection") == "close"
            assert c.at_eof()
    assert backend.stats()["connections_accepted"] == 1


def test_head_204_and_304_leave_the_upstream_connection_reusable(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4;")
    with Client(port) as c:
        answers = [c.request("/?size=100", method="HEAD"), c.request("/?status=204"),
                   c.request("/?status=304"), c.request("/?body=last")]
    assert [r.status for r in answers] == [200, 204, 304, 200]
    assert answers[-1].body == b"last"
    assert len({r.header("X-Backend-Connection") for r in answers}) == 1


def test_idle_upstream_connection_closes_after_keepalive_timeout(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4; keepalive_timeout 300ms;")
    first = request(port, "/").headers["X-Backend-Connection"]
    wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=3,
             what="rampart to close the idle upstream connection")
    assert request(port, "/").headers["X-Backend-Connection"] != first


def test_backend_closing_an_idle_connection_is_noticed(backend_factory, rampart, port):
    backend = backend_factory(idle_timeout=0.3)
    serve(rampart, port, backend, upstream="keepalive 4;")
    first = request(port, "/").headers["X-Backend-Connection"]
    wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=3,
             what="the backend to close its idle connection")
    r = request(port, "/")
    assert r.status == 200
    assert r.headers["X-Backend-Connection"] != first


def test_keepalive_caps_the_idle_connections_kept(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 1;")
    results = []
    threads = [threading.Thread(target=lambda: results.append(request(port, "/?delay=0.3")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == [200] * 3
    assert len({r.headers["X-Backend-Connection"] for r in results}) == 3
    wait_for(lambda: backend.stats()["open_connections"] == 1, timeout=3,
             what="only one idle upstream connection to stay open")


def test_reload_sends_new_requests_to_the_new_upstream(rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")

    def conf(be):
        return (f"upstream be {{ server {be.addr}; keepalive 4; }}\n"
                f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://be; }} }}")
    rampart.configure(conf(a))
    rampart.start()
    assert request(port, "/").headers["X-Backend-Name"] == "a"
    rampart.configure(conf(b))
    assert "configuration reloaded" in rampart.reload().group(0)
    assert [request(port, "/").headers["X-Backend-Name"] for _ in range(3)] == ["b"] * 3
    # the old generation's pooled connection does not linger
    wait_for(lambda: a.stats()["open_connections"] == 0, timeout=5,
             what="the old pool's connection to close")


# -- 3. client pipelining --------------------------------------------------------


def test_pipelined_requests_through_the_proxy_are_answered_in_order(rampart, port, backend):
    serve(rampart, port, backend)
    reqs = b"".join(f"GET /{i}?{q(body=f'answer {i}', delay=0.2 if i == 0 else 0)} HTTP/1.1\r\n"
                    f"Host: a\r\n\r\n".encode() for i in range(4))
    with Client(port) as c:
        c.send(reqs)  # all four in one write
        bodies = [c.response().body for _ in range(4)]
    assert bodies == [b"answer 0", b"answer 1", b"answer 2", b"answer 3"]


def test_pipelined_posts_each_deliver_their_own_body(rampart, port, backend):
    serve(rampart, port, backend)
    bodies = [os.urandom(n) for n in (10, 70_000, 0, 3000)]
    wire = b"".join(b"POST /%d?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
                    % (i, len(b), b) for i, b in enumerate(bodies))
    with Client(port) as c:
        c.send(wire)
        echoes = [echo_of(c.response()) for _ in bodies]
    assert [e["path"] for e in echoes] == ["/0", "/1", "/2", "/3"]
    assert [e["body_sha256"] for e in echoes] == [hashlib.sha256(b).hexdigest() for b in bodies]


# -- 4. the request target (nginx's URI rules) -------------------------------------


def test_proxy_pass_without_uri_sends_the_target_as_the_client_wrote_it(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        e = echo_of(c.request("/a/../b//c/%7Efoo?q=a%20b&r=/x", headers=[("X-Backend-Echo", "1")]))
    assert e["target"] == "/a/../b//c/%7Efoo?q=a%20b&r=/x"


def test_proxy_pass_with_uri_replaces_the_location_prefix(rampart, port, backend):
    serve(rampart, port, backend, locations="location /v1/ { proxy_pass http://be/api/; }")
    e = get_echo(port, "/v1/x/y?q=1")
    assert e["target"] == "/api/x/y?q=1"


def test_proxy_pass_with_uri_uses_the_normalized_path(rampart, port, backend):
    serve(rampart, port, backend, locations="location /v1/ { proxy_pass http://be/api/; }")
    with Client(port) as c:
        e = echo_of(c.request("/v1/a/../b//c", headers=[("X-Backend-Echo", "1")]))
    assert e["target"] == "/api/b/c"


def test_proxy_pass_with_uri_in_exact_location_replaces_the_whole_path(rampart, port, backend):
    serve(rampart, port, backend, locations="location = /exact { proxy_pass http://be/other; }")
    e = get_echo(port, "/exact?z=2")
    assert e["target"] == "/other?z=2"


def test_proxy_pass_with_uri_escapes_decoded_characters_again(rampart, port, backend):
    serve(rampart, port, backend, locations="location /v1/ { proxy_pass http://be/api/; }")
    with Client(port) as c:
        e = echo_of(c.request("/v1/a%20b/%3F%23/c", headers=[("X-Backend-Echo", "1")]))
    assert e["target"] == "/api/a%20b/%3F%23/c"


def test_absolute_form_target_goes_upstream_in_origin_form(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        e = echo_of(c.request("http://example.com/p?q=1", host="other.example",
                              headers=[("X-Backend-Echo", "1")]))
        assert e["target"] == "/p?q=1"
        assert sent(e, "X-Forwarded-Host") == ["example.com"]
        e = echo_of(c.request("http://example.com", host="other.example",
                              headers=[("X-Backend-Echo", "1")]))
        assert e["target"] == "/"


def test_options_asterisk_goes_upstream_as_asterisk(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        e = echo_of(c.request("*", method="OPTIONS", headers=[("X-Backend-Echo", "1")]))
    assert (e["method"], e["target"]) == ("OPTIONS", "*")


# -- 5. headers ----------------------------------------------------------------------


def test_x_forwarded_for_is_the_client_address_alone_by_default(rampart, port, backend):
    serve(rampart, port, backend)
    e = get_echo(port)
    assert sent(e, "X-Forwarded-For") == ["127.0.0.1"]


def test_x_forwarded_for_appends_the_client_address_to_the_clients_list(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        e = echo_of(c.request("/", headers=[("X-Backend-Echo", "1"),
                                            ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
                                            ("X-Forwarded-For", "10.0.0.3")]))
    assert sent(e, "X-Forwarded-For") == ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]


def test_x_forwarded_proto_and_host_replace_what_the_client_sent(rampart, port, backend):
    serve(rampart, port, backend)
    e = get_echo(port, host="app.example.org",
                 headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"})
    assert sent(e, "X-Forwarded-Proto") == ["http"]
    assert sent(e, "X-Forwarded-Host") == ["app.example.org"]


def test_x_request_id_is_generated_per_request(rampart, port, backend):
    serve(rampart, port, backend)
    ids = [sent(get_echo(port), "X-Request-Id") for _ in range(3)]
    for one in ids:
        assert len(one) == 1 and re.fullmatch(r"[0-9a-f]{32}", one[0]), one
    assert len({one[0] for one in ids}) == 3


def test_x_request_id_from_the_client_is_kept(rampart, port, backend):
    serve(rampart, port, backend)
    e = get_echo(port, headers={"X-Request-Id": "client-chosen-42"})
    assert sent(e, "X-Request-Id") == ["client-chosen-42"]


def test_host_is_the_upstream_name_by_default(rampart, port, backend):
    serve(rampart, port, backend)
    e = get_echo(port, host="app.example.org")
    assert sent(e, "Host") == ["be"]


def test_proxy_set_header_host_passes_the_clients_host(rampart, port, backend):
    serve(rampart, port, backend, location="proxy_pass http://be; proxy_set_header Host $host;")
    e = get_echo(port, host="App.Example.ORG:8080")
    assert sent(e, "Host") == ["app.example.org"]  # $host: lower case, without the port


def test_proxy_set_header_sets_a_value_with_variables(rampart, port, backend):
    serve(rampart, port, backend,
          location='proxy_pass http://be; proxy_set_header X-Path "uri=$uri m=$request_method";')
    e = get_echo(port, "/some/where", headers={"X-Path": "from-client"})
    assert sent(e, "X-Path") == ["uri=/some/where m=GET"]


def test_proxy_set_header_with_empty_value_removes_the_header(rampart, port, backend):
    serve(rampart, port, backend, location='proxy_pass http://be; '
                                           'proxy_set_header User-Agent ""; '
                                           'proxy_set_header X-Forwarded-For "";')
    e = get_echo(port, headers={"User-Agent": "curious/1.0", "X-Forwarded-For": "10.1.1.1"})
    assert "user-agent" not in names(e)
    assert "x-forwarded-for" not in names(e)
    assert sent(e, "X-Forwarded-Proto") == ["http"]  # the other defaults stay


def test_proxy_set_header_in_location_replaces_inherited_ones_but_defaults_stay(
        rampart, port, backend):
    serve(rampart, port, backend, server="proxy_set_header X-Srv srv;",
          locations="location / { proxy_pass http://be; }\n"
                    "location /own { proxy_pass http://be; proxy_set_header X-Loc loc; }")
    inherited = get_echo(port, "/")
    assert sent(inherited, "X-Srv") == ["srv"]
    own = get_echo(port, "/own")
    assert sent(own, "X-Loc") == ["loc"]
    assert sent(own, "X-Srv") == []
    assert sent(own, "Host") == ["be"]
    assert sent(own, "X-Forwarded-For") == ["127.0.0.1"]
    assert len(sent(own, "X-Request-Id")) == 1


def test_decoded_uri_in_a_header_value_cannot_inject_headers(rampart, port, backend):
    serve(rampart, port, backend, location="proxy_pass http://be; proxy_set_header X-Uri $uri; "
                                           "add_header X-Uri $uri;")
    with Client(port) as c:
        r = c.request("/a%0d%0aInjected:%20yes?echo=1")
        assert r.status == 200
        assert r.header("Injected") is None and r.header("X-Uri") is None
        e = r.json()
    assert "injected" not in names(e) and "x-uri" not in names(e)


def test_hop_by_hop_request_headers_do_not_reach_the_backend(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/", headers=[("X-Backend-Echo", "1"),
                                    ("Connection", "X-Foo, close"),
                                    ("X-Foo", "named-in-connection"),
                                    ("Keep-Alive", "timeout=5"),
                                    ("TE", "trailers"),
                                    ("Trailer", "X-Sum"),
                                    ("Upgrade", "websocket"),
                                    ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
                                    ("Proxy-Connection", "keep-alive"),
                                    ("X-Keep", "end-to-end")])
        e = echo_of(r)
    assert sent(e, "X-Keep") == ["end-to-end"]
    leaked = names(e) & {"x-foo", "keep-alive", "te", "trailer", "upgrade",
                         "proxy-authorization", "proxy-connection"}
    assert leaked == set()
    assert sent(e, "Connection") == []  # ours is not forwarded (the pool keeps it alive)


def test_hop_by_hop_response_headers_do_not_reach_the_client(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?" + q(header=["Connection: X-Secret", "X-Secret: 1",
                                       "Keep-Alive: timeout=99", "Upgrade: h2c",
                                       "Trailer: X-Sum", "Proxy-Authenticate: Basic",
                                       "X-Kept: yes"]))
        assert r.status == 200
        got = {n.lower() for n, _ in r.headers}
        assert r.header("X-Kept") == "yes"
        assert got & {"x-secret", "keep-alive", "upgrade", "trailer", "proxy-authenticate",
                      "connection"} == set()
        assert c.request("/again").status == 200  # still a keep-alive connection


def test_repeated_response_headers_pass_in_order(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?" + q(header=["Set-Cookie: a=1", "Set-Cookie: b=2", "X-Empty:"]))
    assert r.all("Set-Cookie") == ["a=1", "b=2"]
    assert r.all("X-Empty") == [""]


def test_repeated_request_headers_pass_in_order(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        e = echo_of(c.request("/?echo=1", headers=[("Cookie", "a=1"), ("X-Multi", "one"),
                                                   ("Cookie", "b=2"), ("X-Multi", "two")]))
    assert sent(e, "Cookie") == ["a=1", "b=2"]
    assert sent(e, "X-Multi") == ["one", "two"]


def test_proxy_hide_header_drops_a_response_header(rampart, port, backend):
    serve(rampart, port, backend, location="proxy_pass http://be; proxy_hide_header X-Internal;")
    r = request(port, "/?" + q(header=["X-Internal: secret", "X-Public: ok"]))
    assert r.headers.get_all("X-Internal") is None
    assert r.headers["X-Public"] == "ok"


def test_upstream_server_and_date_are_replaced_by_rampart(rampart, port, backend):
    serve(rampart, port, backend)
    r = request(port, "/?" + q(header=["Server: backend-httpd/0.1",
                                       "Date: Mon, 01 Jan 2001 00:00:00 GMT"]))
    assert len(r.headers.get_all("Server")) == 1
    assert r.headers["Server"].startswith("rampart")
    assert len(r.headers.get_all("Date")) == 1
    assert "2001" not in r.headers["Date"]


def test_add_header_applies_to_200_and_with_always_to_404(rampart, port, backend):
    serve(rampart, port, backend,
          location="proxy_pass http://be; add_header X-Plain p; add_header X-Always a always;")
    ok = request(port, "/")
    assert (ok.headers["X-Plain"], ok.headers["X-Always"]) == ("p", "a")
    missing = request(port, "/?status=404")
    assert missing.status == 404
    assert missing.headers.get_all("X-Plain") is None
    assert missing.headers["X-Always"] == "a"


def test_add_header_in_location_replaces_server_level_ones(rampart, port, backend):
    serve(rampart, port, backend, server="add_header X-Srv s;",
          locations="location / { proxy_pass http://be; }\n"
                    "location /own { proxy_pass http://be; add_header X-Loc l; }")
    assert request(port, "/").headers["X-Srv"] == "s"
    own = request(port, "/own")
    assert own.headers["X-Loc"] == "l"
    assert own.headers.get_all("X-Srv") is None


# -- 6. response framing ----------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [7000, 100_000])  # smaller and larger than a read
def test_chunked_upstream_response_reaches_client_chunked_and_intact(
        rampart, port, backend, chunk_size):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?" + q(size=200_000, chunked=1, chunk_size=chunk_size))
        assert r.framing == "chunked"
        assert r.body == pattern(200_000)
        assert c.request("/?body=next").body == b"next"


def test_chunked_response_with_trailers_reaches_client_intact(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?" + q(size=50_000, chunked=1, trailers=1))
        assert (r.framing, r.body) == ("chunked", pattern(50_000))
        assert r.header("Trailer") is None  # hop-by-hop: the trailers are not forwarded
        assert c.request("/?body=next").body == b"next"


def test_chunked_upstream_response_is_close_delimited_for_http10(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send_request("/?" + q(size=50_000, chunked=1), version="1.0")
        r = c.response()
        # RFC 9110 2.5: our own version in the status line, HTTP/1.0's framing
        assert (r.version, r.framing) == ("HTTP/1.1", "close")
        assert r.body == pattern(50_000)


def test_http10_close_delimited_upstream_response_is_relayed(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?raw=" + b64(b"HTTP/1.0 200 OK\r\n\r\nold server body"))
        assert (r.status, r.framing, r.body) == (200, "chunked", b"old server body")
        assert c.request("/?body=next").body == b"next"


def test_bytes_past_the_content_length_are_not_forwarded(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?raw=" + b64(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"))
        assert (r.status, r.body) == (200, b"ok")
        r = c.request("/?body=next")
        assert (r.status, r.body) == (200, b"next")


def test_unknown_status_code_passes_through(rampart, port, backend):
    serve(rampart, port, backend)
    r = request(port, "/?status=299")
    assert (r.status, r.body) == (299, f"{backend.name}\n".encode())


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_response_body_streams_to_the_client_as_it_arrives(rampart, port, backend, framing):
    serve(rampart, port, backend)
    extra = {"length": "", "chunked": "&chunked=1", "close": "&no_length=1"}[framing]
    with Client(port) as c:
        started = time.monotonic()
        c.send_request(f"/?size=30&chunk_size=10&body_delay=0.3{extra}")
        c.head()
        while not c.buf:
            c._more()
        first = time.monotonic() - started
        piece = 10 if framing == "length" else 15  # "a\r\n" + 10 bytes + "\r\n" when chunked
        got = len(c.buf)
        while got < 2 * piece:
            got += len(c.sock.recv(100))
        second = time.monotonic() - started
    assert first < 0.25, f"the first piece came after {first:.2f}s"
    assert second >= 0.25


def test_close_delimited_upstream_response_is_chunked_for_http11_clients(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?" + q(size=100_000, no_length=1))
        assert r.framing == "chunked"
        assert r.body == pattern(100_000)
        assert c.request("/?body=next").body == b"next"


def test_close_delimited_upstream_response_is_close_delimited_for_http10(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send_request("/?" + q(size=100_000, no_length=1), version="1.0")
        r = c.response()
        assert r.version == "HTTP/1.1"  # RFC 9110 2.5; the framing is HTTP/1.0's
        assert r.framing == "close"
        assert r.body == pattern(100_000)


def test_length_framed_response_to_http10_keep_alive_client(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?size=1000", version="1.0", headers=[("Connection", "keep-alive")])
        assert (r.framing, r.body) == ("length", pattern(1000))
        assert r.header("Connection").lower() == "keep-alive"
        r = c.request("/?body=next", version="1.0", headers=[("Connection", "keep-alive")])
        assert r.body == b"next"


def test_head_keeps_content_length_and_sends_no_body(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?size=1234", method="HEAD")
        assert r.status == 200
        assert r.header("Content-Length") == "1234"
        r = c.request("/?body=next")  # a body sent after the HEAD would show up here
        assert r.body == b"next"


def test_head_of_chunked_resource_sends_no_body(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?size=5000&chunked=1", method="HEAD")
        assert r.status == 200
        assert r.header("Content-Length") is None
        assert c.request("/?body=next").body == b"next"


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status_sends_no_body_and_keeps_the_connection(rampart, port, backend, status):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request(f"/?status={status}")
        assert r.status == status
        assert r.header("Content-Length") is None
        assert r.header("Transfer-Encoding") is None
        assert c.request("/?body=next").body == b"next"


def test_body_sent_with_204_is_not_forwarded(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        r = c.request("/?" + q(status=204, force_body=1, body="stray bytes"))
        assert r.status == 204
        time.sleep(0.3)  # the stray bytes have arrived by now
        r = c.request("/?body=next")
        assert (r.status, r.body) == (200, b"next")
    # the upstream connection carrying the stray body was not reused
    assert backend.stats()["connections_accepted"] == 2


def test_interim_responses_are_not_forwarded_to_http1_clients(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send_request("/?" + q(interim="100,103", body="final"))
        r = c.response()
        assert r.status == 200
        assert r.body == b"final"
        assert c.request("/?body=next").body == b"next"


# -- 7. strict parsing of upstream responses ---------------------------------------------

# What the error log gives as the reason for each response the backend can get wrong.
REASONS = {
    "bare_cr": "upstream sent an invalid response head (bare CR in header)",
    "cl_te": "upstream sent an invalid response head (both Content-Length and Transfer-Encoding)",
    "two_cl": "upstream sent an invalid response head (several Content-Length headers)",
    "cl_list": "upstream sent an invalid response head (invalid Content-Length)",
    "bad_cl": "upstream sent an invalid response head (invalid Content-Length)",
    "negative_cl": "upstream sent an invalid response head (invalid Content-Length)",
    "obs_fold": "upstream sent an invalid response head (obsolete line folding)",
    "space_before_colon":
        "upstream sent an invalid response head (whitespace before colon in header)",
    "nul": "upstream sent an invalid response head (invalid character in header value)",
    "te_gzip": "upstream sent an invalid response head (unsupported Transfer-Encoding)",
    "te_http10":
        "upstream sent an invalid response head (Transfer-Encoding in an HTTP/1.0 message)",
    "bad_chunk": "upstream sent invalid chunked response (invalid chunk size)",
    "bad_status": "upstream sent an invalid response head (invalid status code)",
    "leading_zero_status": "upstream sent an invalid response head (invalid status code)",
    "http2_status": "upstream sent an invalid response head (invalid status line)",
    "garbage": "upstream sent an invalid response head (invalid status line)",
    "http09": "upstream sent an invalid response head (invalid status line)",
    "empty": "upstream prematurely closed connection while reading response header from upstream",
    "huge_head": "upstream sent an invalid response head (response head too large)",
}
def test_every_invalid_response_the_backend_knows_is_covered():
    assert set(REASONS) == set(BAD_RESPONSES) - {"bare_lf"}


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_invalid_upstream_response_gives_502_and_an_error_log_line(rampart, port, backend, kind):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send_request(f"/bad?bad={kind}")
        try:
            r = c.response()
        except EOFError:
            r = None
        line = rampart.wait_log(r"\[error\] .*").group(0)
        assert REASONS[kind] in line
        assert f'upstream: "http://{backend.addr}/bad?bad={kind}"' in line
        assert r is not None, "the connection was closed without a response"
        assert r.status == 502
        assert b"502 Bad Gateway" in r.body


def test_bare_lf_upstream_response_is_accepted(rampart, port, backend):
    serve(rampart, port, backend)
    r = request(port, "/?bad=bare_lf")
    assert (r.status, r.body) == (200, b"ok\n")


def test_upstream_dying_mid_body_cuts_the_client_response(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send_request("/?" + q(size=100_000, abort=30_000))
        version, status, headers, _ = c.head()
        assert status == 200
        got = len(c.buf)
        c.buf = b""
        try:
            while True:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < 100_000
    rampart.wait_log(r"upstream prematurely closed connection while reading upstream")


def test_unrequested_101_switching_protocols_gives_502(rampart, port, backend):
    serve(rampart, port, backend)
    r = request(port, "/?raw=" + b64(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"))
    assert r.status == 502
    rampart.wait_log(r"upstream sent 101 Switching Protocols without an upgrade request")


def test_response_head_over_proxy_buffer_size_gives_502(rampart, port, backend):
    serve(rampart, port, backend, server="large_client_header_buffers 4 64k;")
    r = request(port, "/", headers={"X-Backend-Header": "X-Big: " + "b" * 20_000})
    assert r.status == 502
    rampart.wait_log(r"response head too large")


def test_proxy_buffer_size_admits_a_bigger_response_head(rampart, port, backend):
    serve(rampart, port, backend, server="large_client_header_buffers 4 64k;",
          location="proxy_pass http://be; proxy_buffer_size 64k;")
    r = request(port, "/", headers={"X-Backend-Header": "X-Big: " + "b" * 20_000})
    assert r.status == 200
    assert r.headers["X-Big"] == "b" * 20_000


def test_proxy_buffer_size_holds_on_a_connection_reused_from_another_location(
        rampart, port, backend):
    serve(rampart, port, backend, server="large_client_header_buffers 4 64k;",
          locations="location /small { proxy_pass http://be; }\n"
                    "location /big { proxy_pass http://be; proxy_buffer_size 64k; }")
    assert request(port, "/small").status == 200  # opens the pooled connection
    r = request(port, "/big", headers={"X-Backend-Header": "X-Big: " + "b" * 20_000})
    assert r.status == 200
    assert r.headers["X-Big"] == "b" * 20_000


def test_upstream_status_is_502_for_a_refused_response_head(rampart, port, backend):
    serve(rampart, port, backend,
          location='proxy_pass http://be; add_header X-S "$upstream_status" always;')
    garbage, cl_te = request(port, "/?bad=garbage"), request(port, "/?bad=cl_te")
    assert (garbage.status, garbage.headers["X-S"]) == (502, "502")
    assert (cl_te.status, cl_te.headers["X-S"]) == (502, "502")


def test_error_log_names_the_rewritten_upstream_target(rampart, port, backend):
    serve(rampart, port, backend, locations="location /v1/ { proxy_pass http://be/api/; }")
    assert request(port, "/v1/x?bad=garbage").status == 502
    line = rampart.wait_log(r"\[error\] .*").group(0)
    assert f'upstream: "http://{backend.addr}/api/x?bad=garbage"' in line


def test_proxy_read_timeout_gives_504(rampart, port, backend):
    serve(rampart, port, backend, location="proxy_pass http://be; proxy_read_timeout 300ms; "
                                           'add_header X-U "$upstream_status" always;')
    started = time.monotonic()
    r = request(port, "/?delay=2")
    assert r.status == 504
    assert time.monotonic() - started < 1.5
    assert r.headers["X-U"] == "504"
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while reading "
                     r"response header from upstream")


def test_proxy_send_timeout_gives_504_when_the_upstream_stops_reading(
        rampart, port, backend_factory):
    backend = backend_factory(rcvbuf=4096)
    serve(rampart, port, backend, server="client_max_body_size 0;",
          location="proxy_pass http://be; proxy_send_timeout 500ms;")
    body = os.urandom(4 * MB)
    with Client(port, timeout=10) as c:
        def push():
            try:
                c.send(b"POST /?read_rate=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s"
                       % (len(body), body))
            except OSError:
                pass
        threading.Thread(target=push, daemon=True).start()
        started = time.monotonic()
        assert c.response().status == 504
        assert time.monotonic() - started < 2.5
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while sending request "
                     r"to upstream")


def test_proxy_connect_timeout_moves_on_to_the_next_server(rampart, port, backend):
    # A listener whose accept queue is full: Linux drops further SYNs, so connect() hangs.
    stuck = socket.socket()
    fillers = []
    try:
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(0)
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(stuck.getsockname())
            fillers.append(f)
        dead = "127.0.0.1:%d" % stuck.getsockname()[1]
        rampart.configure(
            f"upstream be {{ server {dead}; server {backend.addr}; }}\n"
            f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://be;"
            f" proxy_connect_timeout 300ms;"
            f' add_header X-U "$upstream_addr|$upstream_status|$upstream_connect_time"; }} }}')
        rampart.start()
        started = time.monotonic()
        r = request(port, "/")
        took = time.monotonic() - started
    finally:
        for f in fillers:
            f.close()
        stuck.close()
    assert r.status == 200
    assert 0.25 < took < 2.0
    addrs, statuses, connect_times = r.headers["X-U"].split("|")
    assert (addrs, statuses) == (f"{dead}, {backend.addr}", "504, 200")
    assert re.fullmatch(r"-, \d+\.\d{3}", connect_times), connect_times
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while connecting to "
                     rf'upstream.*upstream: "http://{dead}/"')


def test_max_conns_refuses_requests_beyond_the_limit(rampart, port, backend):
    rampart.configure(f"upstream be {{ server {backend.addr} max_conns=1; }}\n"
                      f"server {{ listen 127.0.0.1:{port};"
                      f" location / {{ proxy_pass http://be; }} }}")
    rampart.start()
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(request(port, "/?delay=0.3").status))
               for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # the first one holds the only connection
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 502]
    rampart.wait_log(r"no live upstreams while connecting to upstream")


def test_refused_upstream_gives_502(rampart, port, free_port):
    dead = f"127.0.0.1:{free_port()}"
    rampart.configure(f"server {{ listen 127.0.0.1:{port};"
                      f" location / {{ proxy_pass http://{dead}; }} }}")
    rampart.start()
    assert request(port, "/").status == 502
    rampart.wait_log(r"connect\(\) failed \(111: Connection refused\) while connecting to "
                     rf'upstream.*upstream: "http://{dead}/"')


# -- 8. request bodies: Expect and chunked ----------------------------------------------


def test_expect_100_continue_gets_continue_then_the_response(rampart, port, backend):
    serve(rampart, port, backend)
    body = os.urandom(50_000)
    with Client(port) as c:
        c.send(f"POST /up?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n"
               f"Expect: 100-continue\r\n\r\n".encode())
        version, status, _, _ = c.head()
        assert status == 100
        c.send(body)
        e = echo_of(c.response())
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert "expect" not in names(e)


def test_expect_100_continue_from_an_http10_client_is_ignored(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send(b"POST /up?echo=1 HTTP/1.0\r\nHost: a\r\nContent-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")
        time.sleep(0.3)  # an HTTP/1.0 client does not wait for 100; this one is merely slow
        c.send(b"hello")
        r = c.response()
        assert (r.version, r.status) == ("HTTP/1.1", 200)
        assert r.json()["body_length"] == 5


def test_chunked_request_body_arrives_intact(rampart, port, backend):
    serve(rampart, port, backend)
    parts = [os.urandom(n) for n in (1, 5000, 70_000, 3)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    with Client(port) as c:
        c.send(b"POST /up?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.05)
        c.send(wire)
        e = echo_of(c.response())
        body = b"".join(parts)
        assert e["body_length"] == len(body)
        assert e["body_sha256"] == hashlib.sha256(body).hexdigest()
        assert sent(e, "Transfer-Encoding") == ["chunked"] or \
            sent(e, "Content-Length") == [str(len(body))]
        assert c.request("/?body=next").body == b"next"


def post_early(port, size, delay=0.0):
    """POSTs size bytes to a backend that answers 403 without reading them (early=1);
    returns the client (for a next request) and the status, or the error, it got."""
    c = Client(port, timeout=10)
    body = os.urandom(size)

    def push():
        try:
            c.send(b"POST /?early=1&delay=%g&status=403&body=no HTTP/1.1\r\nHost: a\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (delay, len(body), body))
        except OSError:
            pass
    sender = threading.Thread(target=push, daemon=True)
    sender.start()
    try:
        r = c.response()
        outcome = (r.status, r.body)
    except (EOFError, OSError) as e:
        outcome = repr(e)
    sender.join(10)
    return c, outcome


def test_client_leaving_mid_upload_closes_the_upstream_connection(rampart, port, backend):
    # a streamed upload (with request buffering the upstream is not connected yet)
    serve(rampart, port, backend, location="proxy_pass http://be; proxy_request_buffering off;")
    with Client(port) as c:
        c.send(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 500000\r\n\r\n"
               + b"x" * 100_000)
        wait_for(lambda: backend.stats()["open_connections"] == 1, timeout=3,
                 what="the upload to reach the backend")
    wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=3,
             what="the upstream connection of the abandoned upload to close")
    assert backend.stats()["requests"] == 0  # the backend never saw a whole request
    rampart.wait_log(r"client closed the connection while sending the request body to upstream")
    assert request(port, "/").status == 200


def test_upstream_answering_before_reading_the_body_keeps_the_client_connection(
        rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 0;")
    # the backend waits, so the body stops in the socket buffers before the answer comes
    c, outcome = post_early(port, MB, delay=0.3)
    with c:
        assert outcome == (403, b"no")
        assert c.request("/?body=next").body == b"next"


def test_early_upstream_answer_survives_the_upstream_closing_mid_body(rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 0;")
    outcomes = []
    for _ in range(10):  # each attempt races; most lose it
        c, outcome = post_early(port, 8 * MB)
        c.close()
        outcomes.append(outcome)
    assert outcomes == [(403, b"no")] * 10


def test_failover_sends_the_request_body_to_the_next_server(rampart, port, backend, free_port):
    dead = f"127.0.0.1:{free_port()}"
    rampart.configure(f"upstream be {{ server {dead}; server {backend.addr}; }}\n"
                      f"server {{ listen 127.0.0.1:{port};"
                      f" location / {{ proxy_pass http://be; }} }}")
    rampart.start()
    body = os.urandom(100_000)
    e = echo_of(request(port, "/?echo=1", method="POST", body=body))
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_concurrent_uploads_keep_their_bodies_apart(rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 0;")
    bodies = [os.urandom(MB + i) for i in range(6)]
    echoes = [None] * len(bodies)

    def upload(i):
        echoes[i] = echo_of(request(port, f"/{i}?echo=1", method="POST", body=bodies[i],
                                    timeout=15))
    threads = [threading.Thread(target=upload, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, b in enumerate(bodies):
        assert echoes[i] is not None, f"upload {i} failed"
        assert (echoes[i]["path"], echoes[i]["body_sha256"]) == (
            f"/{i}", hashlib.sha256(b).hexdigest())


def test_chunked_body_with_extensions_and_trailers_then_a_pipelined_request(
        rampart, port, backend):
    serve(rampart, port, backend)
    body = os.urandom(100_000)
    pieces = [body[i:i + 30_000] for i in range(0, len(body), 30_000)]
    wire = (b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces)
            + b"0\r\nX-Trailer: t\r\n\r\n")
    with Client(port) as c:
        c.send(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               + wire + b"GET /?body=pipelined HTTP/1.1\r\nHost: a\r\n\r\n")
        e = echo_of(c.response())
        assert (e["body_length"], e["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
        assert c.response().body == b"pipelined"


def test_invalid_chunked_request_body_gets_400(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        c.send(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\nzz\r\n")
        assert c.response().status == 400
        assert c.at_eof()
    assert backend.stats()["requests"] == 0


def test_get_with_a_body_forwards_the_body(rampart, port, backend):
    serve(rampart, port, backend)
    with Client(port) as c:
        e = echo_of(c.request("/?echo=1", body=b"hello"))
    assert (e["method"], e["body_length"], sent(e, "Content-Length")) == ("GET", 5, ["5"])


def test_request_head_accepted_from_the_client_is_forwarded(rampart, port, backend):
    serve(rampart, port, backend, server="large_client_header_buffers 8 64k;")
    with Client(port) as c:
        r = c.request("/?echo=1", headers=[(f"X-Big{i}", "v" * 30_000) for i in range(3)])
        assert r.status == 200
        assert sent(r.json(), "X-Big2") == ["v" * 30_000]


# -- 9. big transfers, bounded memory ----------------------------------------------------


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class RssWatch:
    """Samples a process's resident size in the background; .peak is the largest seen."""

    def __init__(self, pid):
        self.pid = pid
        self.base = rss_kb(pid)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kb(self.pid))
            except (OSError, AssertionError):
                return
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kb(self.pid))

    @property
    def growth_mb(self):
        return (self.peak - self.base) / 1024


def worker_pid(rampart):
    workers, _ = rampart.wait_processes(1)
    return workers[0]


def warm_up(port):
    """One small proxied request, so buffers every request needs exist before measuring."""
    assert request(port, "/?size=100000").status == 200


def test_100mb_upload_streams_with_bounded_memory(rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 0; proxy_request_buffering off;")
    warm_up(port)
    total = 100 * MB
    block = os.urandom(MB)
    h = hashlib.sha256()
    for _ in range(100):
        h.update(block)
    with RssWatch(worker_pid(rampart)) as rss, Client(port, timeout=20) as c:
        c.send(f"PUT /up?echo=1 HTTP/1.1\r\nHost: a\r\nContent-Length: {total}\r\n\r\n".encode())
        for _ in range(100):
            c.send(block)
        e = echo_of(c.response())
    assert (e["body_length"], e["body_sha256"]) == (total, h.hexdigest())
    assert rss.growth_mb < 32, f"worker RSS grew by {rss.growth_mb:.1f} MB"


def test_100mb_download_streams_with_bounded_memory(rampart, port, backend):
    serve(rampart, port, backend)
    warm_up(port)
    total = 100 * MB
    with RssWatch(worker_pid(rampart)) as rss, Client(port, timeout=20) as c:
        c.send_request(f"/?size={total}")
        version, status, headers, _ = c.head()
        assert status == 200
        h = hashlib.sha256(c.buf)
        got, c.buf = len(c.buf), b""
        while got < total:
            chunk = c.sock.recv(min(1 << 18, total - got))
            assert chunk, f"closed after {got} bytes"
            h.update(chunk)
            got += len(chunk)
    assert h.hexdigest() == pattern_sha256(total)
    assert rss.growth_mb < 32, f"worker RSS grew by {rss.growth_mb:.1f} MB"


def test_slow_client_download_applies_back_pressure_to_the_upstream(rampart, port, backend):
    # streamed (proxy_buffering off); buffered, test_proxy_buffering.py
    serve(rampart, port, backend, location="proxy_pass http://be; proxy_buffering off;")
    warm_up(port)
    total = 300 * MB
    pid = worker_pid(rampart)
    with RssWatch(pid) as rss, Client(port, timeout=10) as c:
        c.send_request(f"/?size={total}")
        c.head()
        got = len(c.buf)
        c.buf = b""
        while got < MB:
            got += len(c.sock.recv(65536))
        time.sleep(2.0)  # the client stops reading; the backend could send 300 MB meanwhile
        during = rss.peak
        # still streaming, from where it stopped
        data = c.sock.recv(65536)
        assert data and data == pattern(len(data), got)
    growth = (during - rss.base) / 1024
    assert growth < 32, f"worker RSS grew by {growth:.1f} MB"
    # the client left mid-body: the upstream connection is closed, not kept
    wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=5,
             what="the upstream connection of the abandoned download to close")


def test_slow_backend_upload_applies_back_pressure_to_the_client(
        rampart, port, backend_factory):
    backend = backend_factory(rcvbuf=65536)
    serve(rampart, port, backend, server="client_max_body_size 0; proxy_request_buffering off;")
    warm_up(port)
    total = 200 * MB
    block = os.urandom(MB)
    sent_bytes = [0]

    def push(c):
        try:
            for _ in range(total // MB):
                c.send(block)
                sent_bytes[0] += MB
        except OSError:
            pass  # the test closes the connection before the end
    with RssWatch(worker_pid(rampart)) as rss, Client(port, timeout=10) as c:
        c.send(f"PUT /?read_rate=1000000 HTTP/1.1\r\nHost: a\r\n"
               f"Content-Length: {total}\r\n\r\n".encode())
        pusher = threading.Thread(target=push, args=(c,), daemon=True)
        pusher.start()
        time.sleep(2.0)
        during, pushed = rss.peak, sent_bytes[0]
        c.sock.shutdown(socket.SHUT_RDWR)
    pusher.join(5)
    # the client could not run far ahead of a backend reading 1 MB/s
    assert pushed < 40 * MB, f"the client pushed {pushed / MB:.0f} MB in 2 s"
    growth = (during - rss.base) / 1024
    assert growth < 32, f"worker RSS grew by {growth:.1f} MB"


# -- 10. client_max_body_size ----------------------------------------------------------------


def test_content_length_over_the_limit_gets_413_and_never_reaches_the_backend(
        rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 1k;")
    with Client(port) as c:
        c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n" + b"x" * 1025)
        r = c.response()
        assert r.status == 413
        assert c.at_eof()
    assert backend.stats()["connections_accepted"] == 0


def test_default_limit_is_one_megabyte(rampart, port, backend):
    serve(rampart, port, backend)
    assert request(port, "/?echo=1", method="POST", body=b"x" * MB).status == 200
    with Client(port) as c:
        c.send(f"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {MB + 1}\r\n\r\n".encode())
        assert c.response().status == 413
    assert backend.stats()["requests"] == 1


def test_chunked_body_growing_over_the_limit_gets_413(rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 10k;")
    chunk = b"%x\r\n%s\r\n" % (4096, b"y" * 4096)
    with Client(port) as c:
        c.send(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send(chunk * 4 + b"0\r\n\r\n")  # 16 KiB
        r = c.response()
        assert r.status == 413
        assert c.at_eof()
    # the backend never got a complete request bigger than the limit
    assert backend.stats()["requests"] == 0


def test_chunked_body_under_the_limit_passes(rampart, port, backend):
    serve(rampart, port, backend, server="client_max_body_size 10k;")
    body = b"z" * 10240
    with Client(port) as c:
        c.send(b"POST /?echo=1 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        e = echo_of(c.response())
    assert e["body_length"] == len(body)


# -- 11. $upstream_* variables ---------------------------------------------------------------


def test_upstream_addr_and_status_are_available_to_add_header(rampart, port, backend):
    serve(rampart, port, backend,
          location='proxy_pass http://be; add_header X-U "$upstream_addr $upstream_status" always;')
    assert request(port, "/").headers["X-U"] == f"{backend.addr} 200"
    assert request(port, "/?status=404").headers["X-U"] == f"{backend.addr} 404"


def test_upstream_connect_time_is_zero_on_a_reused_connection(rampart, port, backend):
    serve(rampart, port, backend,
          location='proxy_pass http://be; add_header X-C "$upstream_connect_time";')
    first = request(port, "/").headers["X-C"]
    second = request(port, "/").headers["X-C"]
    assert re.fullmatch(r"\d+\.\d{3}", first), first
    assert second == "0.000"


def test_upstream_variables_list_every_server_tried(rampart, port, backend, free_port):
    dead = f"127.0.0.1:{free_port()}"
    rampart.configure(f"upstream be {{ server {dead}; server {backend.addr}; }}\n"
                      f"server {{ listen 127.0.0.1:{port};\n"
                      f' location / {{ proxy_pass http://be;'
                      f' add_header X-U "$upstream_addr|$upstream_status"; }} }}')
    rampart.start()
    r = request(port, "/")
    assert r.status == 200
    assert r.headers["X-U"] == f"{dead}, {backend.addr}|502, 200"
    rampart.wait_log(r"connect\(\) failed \(111: Connection refused\)")
    # the failed server rests for fail_timeout (10s by default): the next goes straight on
    assert request(port, "/").headers["X-U"] == f"{backend.addr}|200"



def test_weights_share_requests_between_servers(rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    rampart.configure(f"upstream be {{ server {a.addr} weight=2; server {b.addr}; keepalive 4; }}\n"
                      f"server {{ listen 127.0.0.1:{port};"
                      f" location / {{ proxy_pass http://be; }} }}")
    rampart.start()
    names = [request(port, "/").headers["X-Backend-Name"] for _ in range(9)]
    assert (names.count("a"), names.count("b")) == (6, 3)


def test_backup_serves_only_while_primaries_fail_and_down_never(
        rampart, port, backend_factory, free_port):
    main, spare, off = backend_factory("main"), backend_factory("spare"), backend_factory("off")
    dead = f"127.0.0.1:{free_port()}"
    rampart.configure(
        f"upstream ok {{ server {main.addr}; server {off.addr} down;"
        f" server {spare.addr} backup; }}\n"
        f"upstream failing {{ server {dead}; server {off.addr} down;"
        f" server {spare.addr} backup; }}\n"
        f"server {{ listen 127.0.0.1:{port};"
        f" location /ok {{ proxy_pass http://ok; }}"
        f" location /failing {{ proxy_pass http://failing; }} }}")
    rampart.start()
    assert {request(port, "/ok").headers["X-Backend-Name"] for _ in range(4)} == {"main"}
    assert {request(port, "/failing").headers["X-Backend-Name"] for _ in range(2)} == {"spare"}
    assert off.stats()["connections_accepted"] == 0
