"""HTTP/2 from clients: `listen ... ssl http2` (ALPN h2, preferred to http/1.1) and
`listen ... http2` in clear (prior knowledge, and HTTP/1.1 on the same port); the
SETTINGS rampart advertises and the http2_* directives behind them; requests over
h2 routed, answered and proxied like HTTP/1.1 ones; malformed requests reset on
their stream alone; flow control tied to the upstream's pace; GOAWAY on QUIT,
HUP, http2_max_requests and keepalive_timeout; and the limits a well-behaved
client never meets.

The client is h2raw.H2Conn (frames built with hyperframe, so a test sends exactly
what it means, malformed or not); curl, nghttp and h2load check the same things
from the outside. The backend is backend.py (`echo=1` describes the request it
got), except where a test needs a backend that holds a request body unread.
Attacks on the HTTP/2 layer are in test_h2_attacks.py.
"""

import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from backend import pattern, pattern_sha256
from h2raw import (INITIAL_WINDOW_SIZE, MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_SIZE, NO_ERROR,
                   PROTOCOL_ERROR, REFUSED_STREAM, H2Conn, data_frame, error_name,
                   headers_frame, request_fields)
from harness import get, wait_for
from test_proxy import RssWatch, sent, worker_pid
from test_tls import context

MB = 1 << 20

OK = 'location /ok { return 200 "ok\\n"; }\n'
TLS_BODY = '"$server_name $scheme $server_protocol"'


# -- configuration -------------------------------------------------------------------------


def cleartext(rampart, port, backend=None, server="", http="", locations=None):
    """Starts rampart with one server on `listen 127.0.0.1:port http2` (prior knowledge
    and HTTP/1.1 on one port). /ok answers "ok\\n"; with a backend, every other path is
    proxied to it (upstream be). `locations` replaces both."""
    upstream = f"upstream be {{ server {backend.addr}; keepalive 8; }}\n" if backend else ""
    if locations is None:
        locations = OK + ("location / { proxy_pass http://be; }\n" if backend else "")
    rampart.configure(f"{http}\n{upstream}"
                      f"server {{\n"
                      f"    listen 127.0.0.1:{port} http2;\n"
                      f"    client_max_body_size 0;\n"
                      f"    {server}\n"
                      f"{locations}"
                      f"}}\n")
    return rampart.start()


def tls_server(certs, port, name, listen="ssl http2", extra="", body=TLS_BODY, backend=False):
    """A TLS server block for name (a.test or b.test) with its ECDSA certificate."""
    location = ("location / { proxy_pass http://be; }\n" if backend
                else f"location / {{ return 200 {body}; }}\n")
    return (f"server {{\n"
            f"    listen 127.0.0.1:{port} {listen};\n"
            f"    server_name {name};\n"
            f"    {certs.directives(name)}"
            f"    {extra}\n"
            f"    {OK}"
            f"    {location}"
            f"}}\n")


def over_tls(rampart, certs, port, names=("a.test",), listen="ssl http2", extra="", http="",
             backend=None):
    upstream = f"upstream be {{ server {backend.addr}; }}\n" if backend else ""
    rampart.configure(http + "\n" + upstream +
                      "".join(tls_server(certs, port, n, listen, extra, backend=bool(backend))
                              for n in names))
    return rampart.start()


def h2_context(certs, alpn=("h2", "http/1.1")):
    return context(certs, alpn=list(alpn))


def echo(r):
    """The backend's description of the request (echo=1), from a 200 response."""
    assert r.status == 200 and r.ended, r
    return json.loads(bytes(r.body))


def curl(*args, timeout=10):
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True,
                          timeout=timeout)


# -- TLS: ALPN and SNI ------------------------------------------------------------------------


def test_alpn_selects_h2_on_a_listen_with_http2(rampart, certs, port):
    over_tls(rampart, certs, port)
    with H2Conn(port, tls=h2_context(certs), sni="a.test") as c:
        assert c.alpn == "h2"
        r = c.get("/", authority="a.test", scheme="https")
    assert (r.status, r.text) == (200, "a.test https HTTP/2.0")


def test_alpn_prefers_h2_even_when_the_client_lists_http11_first(rampart, certs, port):
    over_tls(rampart, certs, port)
    with H2Conn(port, tls=h2_context(certs, alpn=("http/1.1", "h2")), sni="a.test",
                handshake=False) as c:
        assert c.alpn == "h2"


def test_alpn_offers_only_http11_on_a_listen_without_http2(rampart, certs, port):
    over_tls(rampart, certs, port, listen="ssl")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with h2_context(certs).wrap_socket(raw, server_hostname="a.test") as s:
            assert s.selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize("name", ["a.test", "b.test"])
def test_sni_picks_the_certificate_and_the_server_over_h2(rampart, certs, port, name):
    over_tls(rampart, certs, port, names=("a.test", "b.test"))
    with H2Conn(port, tls=h2_context(certs), sni=name) as c:
        assert certs.which(c.sock.getpeercert(binary_form=True)) == (name, "ecdsa")
        r = c.get("/", authority=name, scheme="https")
    assert (r.status, r.text) == (200, f"{name} https HTTP/2.0")


@pytest.mark.parametrize("name", ["a.test", "b.test"])
def test_curl_http2_gets_h2_from_each_name_on_one_port_with_its_certificate(
        rampart, certs, port, name):
    over_tls(rampart, certs, port, names=("a.test", "b.test"))
    p = curl("-v", "--http2", "--resolve", f"{name}:{port}:127.0.0.1", "--cacert", certs.ca,
             "-w", "\n%{http_code} %{http_version}", f"https://{name}:{port}/")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{name} https HTTP/2.0\n200 2"
    assert re.search(rf"subject: CN\s*=\s*{re.escape(name)}\s*$", p.stderr, re.M), p.stderr
    assert "ALPN: server accepted h2" in p.stderr or "ALPN, server accepted to use h2" in \
        p.stderr, p.stderr


@pytest.mark.parametrize("name", ["a.test", "b.test"])
def test_curl_http11_gets_http11_from_each_name_on_an_http2_listen(rampart, certs, port, name):
    over_tls(rampart, certs, port, names=("a.test", "b.test"))
    p = curl("-v", "--http1.1", "--resolve", f"{name}:{port}:127.0.0.1", "--cacert", certs.ca,
             "-w", "\n%{http_code} %{http_version}", f"https://{name}:{port}/")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{name} https HTTP/1.1\n200 1.1"
    assert re.search(rf"subject: CN\s*=\s*{re.escape(name)}\s*$", p.stderr, re.M), p.stderr


def test_curl_http2_falls_back_to_http11_on_a_listen_without_http2(rampart, certs, port):
    over_tls(rampart, certs, port, listen="ssl")
    p = curl("--http2", "--resolve", f"a.test:{port}:127.0.0.1", "--cacert", certs.ca,
             "-w", "\n%{http_code} %{http_version}", f"https://a.test:{port}/")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "a.test https HTTP/1.1\n200 1.1"


def test_tls_session_is_resumed_on_an_h2_connection(rampart, certs, port):
    over_tls(rampart, certs, port, extra='location /reused { return 200 "$ssl_session_reused"; }')
    ctx = h2_context(certs, alpn=("h2",))
    with H2Conn(port, tls=ctx, sni="a.test") as first:
        r = first.get("/reused", authority="a.test", scheme="https")
        assert (r.status, r.text) == (200, ".")
        # TLS 1.3 tickets come after the handshake: the response has been read, so they
        # have been too
        session = first.sock.session
    assert session is not None
    with H2Conn(port, tls=ctx, sni="a.test", session=session) as second:
        assert second.alpn == "h2"
        assert second.sock.session_reused
        r = second.get("/reused", authority="a.test", scheme="https")
    assert (r.status, r.text) == (200, "r")


MTLS = ('ssl_verify_client on;\n'
        '    location /who { return 200 "$ssl_client_verify $ssl_client_s_dn"; }\n')


def test_mtls_over_h2_serves_a_client_with_a_valid_certificate(rampart, certs, port):
    over_tls(rampart, certs, port, extra=f"ssl_client_certificate {certs.ca};\n" + MTLS)
    ctx = h2_context(certs, alpn=("h2",))
    ctx.load_cert_chain(*map(str, certs.client("trusted")))
    with H2Conn(port, tls=ctx, sni="a.test") as c:
        r = c.get("/who", authority="a.test", scheme="https")
    assert (r.status, r.text) == (200, f"SUCCESS {certs.CLIENT_DN}")


def test_mtls_over_h2_answers_400_on_the_stream_without_a_client_certificate(
        rampart, certs, port):
    over_tls(rampart, certs, port, extra=f"ssl_client_certificate {certs.ca};\n" + MTLS)
    with H2Conn(port, tls=h2_context(certs, alpn=("h2",)), sni="a.test") as c:
        r = c.get("/who", authority="a.test", scheme="https")
    assert r.status == 400, r


# -- cleartext: prior knowledge and HTTP/1.1 on one port ------------------------------------------


def test_curl_with_prior_knowledge_gets_h2_on_a_cleartext_http2_listen(rampart, port):
    cleartext(rampart, port)
    p = curl("--http2-prior-knowledge", "-w", "%{http_code} %{http_version}",
             f"http://127.0.0.1:{port}/ok")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n200 2"


def test_curl_http11_gets_http11_on_the_same_cleartext_http2_listen(rampart, port):
    cleartext(rampart, port)
    p = curl("--http1.1", "-w", "%{http_code} %{http_version}", f"http://127.0.0.1:{port}/ok")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "ok\n200 1.1"


def test_h2c_upgrade_is_not_performed_and_the_request_is_answered_over_http11(rampart, port):
    cleartext(rampart, port)
    # --http2 on an http:// URL asks for "Upgrade: h2c"; rampart does not switch (no 101)
    p = curl("-v", "--http2", "-w", "%{http_code} %{http_version}",
             f"http://127.0.0.1:{port}/ok")
    assert p.returncode == 0, p.stderr
    assert "Upgrade: h2c" in p.stderr  # curl did ask
    assert "101" not in re.findall(r"^< HTTP/\S+ (\d+)", p.stderr, re.M)
    assert p.stdout == "ok\n200 1.1"


def test_h2_and_http11_connections_alternate_on_one_cleartext_port(rampart, port):
    cleartext(rampart, port)
    for _ in range(3):
        with H2Conn(port) as c:
            assert c.get("/ok").status == 200
        r = get(port, "/ok")
        assert (r.status, r.version, r.text) == (200, 11, "ok\n")


def test_client_header_timeout_bounds_the_wait_for_the_rest_of_the_preface(rampart, port):
    cleartext(rampart, port, server="client_header_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n")  # the first line of the preface, then nothing
        started = time.monotonic()
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        waited = time.monotonic() - started
    assert 0.5 < waited < 5, f"closed after {waited:.2f}s"


def test_client_header_timeout_bounds_the_wait_for_the_preface_after_alpn_h2(
        rampart, certs, port):
    over_tls(rampart, certs, port, http="client_header_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with h2_context(certs, alpn=("h2",)).wrap_socket(raw, server_hostname="a.test") as s:
            assert s.selected_alpn_protocol() == "h2"
            started = time.monotonic()
            try:
                while s.recv(65536):  # the server's SETTINGS may come; then the close
                    pass
            except (ConnectionResetError, ssl.SSLError):
                pass
            waited = time.monotonic() - started
    assert 0.5 < waited < 5, f"closed after {waited:.2f}s"


# -- SETTINGS ---------------------------------------------------------------------------------


def test_settings_advertise_the_defaults(rampart, port):
    cleartext(rampart, port)
    with H2Conn(port) as c:
        settings = c.server_settings
    assert settings[MAX_CONCURRENT_STREAMS] == 128
    assert settings[MAX_HEADER_LIST_SIZE] == 32 * 1024
    # http2_body_preread_size 64k is the initial window; 65535 (the protocol's default,
    # so possibly not sent at all) is accepted too, as the specification allows
    assert settings.get(INITIAL_WINDOW_SIZE, 65535) in (65535, 65536), settings


def test_settings_advertise_the_values_configured_at_the_http_level(rampart, port):
    cleartext(rampart, port, http="http2_max_concurrent_streams 7;\n"
                                   "http2_max_header_list_size 8k;\n"
                                   "http2_body_preread_size 16k;")
    with H2Conn(port) as c:
        settings = c.server_settings
    assert (settings[MAX_CONCURRENT_STREAMS], settings[MAX_HEADER_LIST_SIZE],
            settings[INITIAL_WINDOW_SIZE]) == (7, 8192, 16384)


def test_settings_of_the_server_level_override_the_http_level(rampart, port):
    cleartext(rampart, port, http="http2_max_concurrent_streams 7;\n"
                                   "http2_body_preread_size 16k;",
              server="http2_max_concurrent_streams 9;\nhttp2_body_preread_size 32k;")
    with H2Conn(port) as c:
        settings = c.server_settings
    assert (settings[MAX_CONCURRENT_STREAMS], settings[INITIAL_WINDOW_SIZE]) == (9, 32768)


def test_nghttp_sees_max_concurrent_streams_128_over_tls(rampart, certs, port):
    over_tls(rampart, certs, port)
    p = subprocess.run(["nghttp", "-nv", f"https://127.0.0.1:{port}/ok"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[SETTINGS_MAX_CONCURRENT_STREAMS(0x03):128]" in p.stdout, p.stdout
    window = re.search(r"\[SETTINGS_INITIAL_WINDOW_SIZE\(0x04\):(\d+)\]", p.stdout)
    assert window is None or int(window.group(1)) in (65535, 65536), p.stdout
    assert re.search(r"recv \(stream_id=\d+\) :status: 200$", p.stdout, re.M), p.stdout


# -- requests -----------------------------------------------------------------------------------


def test_authority_chooses_the_server(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port} http2; server_name one.test; '
                      f'return 200 "one"; }}\n'
                      f'server {{ listen 127.0.0.1:{port} http2; server_name two.test; '
                      f'return 200 "two"; }}\n')
    rampart.start()
    with H2Conn(port) as c:
        assert c.get("/", authority="two.test").text == "two"
        assert c.get("/", authority="one.test").text == "one"
        assert c.get("/", authority="TWO.test:80").text == "two"


def test_locations_return_and_add_header_answer_over_h2(rampart, port):
    cleartext(rampart, port, locations='location /a { add_header X-Where "in a"; '
                                       'return 200 "a\\n"; }\n'
                                       'location /b { return 201 "b\\n"; }\n')
    with H2Conn(port) as c:
        a = c.get("/a/x")
        b = c.get("/b")
        missing = c.get("/c")
    assert (a.status, a.text, a.header("x-where")) == (200, "a\n", "in a")
    assert (b.status, b.text, b.header("x-where")) == (201, "b\n", None)
    assert missing.status == 404


def test_access_log_writes_the_h2_request_line_protocol_and_scheme(rampart, port):
    cleartext(rampart, port, http="log_format h2 '$request|$server_protocol|$scheme|$status';\n"
                                   "access_log logs/h2.log h2;")
    with H2Conn(port) as c:
        assert c.get("/ok?x=1").status == 200
    path = rampart.prefix / "logs" / "h2.log"
    lines = wait_for(lambda: path.exists() and path.read_text().splitlines(),
                     what="the access log line")
    assert lines == ["GET /ok?x=1 HTTP/2.0|HTTP/2.0|http|200"]


def test_access_log_writes_https_for_h2_over_tls(rampart, certs, port):
    over_tls(rampart, certs, port,
             http="log_format h2 '$request|$server_protocol|$scheme|$status';\n"
                  "access_log logs/h2.log h2;")
    with H2Conn(port, tls=h2_context(certs), sni="a.test") as c:
        assert c.get("/ok", authority="a.test", scheme="https").status == 200
    path = rampart.prefix / "logs" / "h2.log"
    lines = wait_for(lambda: path.exists() and path.read_text().splitlines(),
                     what="the access log line")
    assert lines == ["GET /ok HTTP/2.0|HTTP/2.0|https|200"]


def test_proxied_request_goes_upstream_as_http11_with_host_from_authority(
        rampart, port, backend):
    cleartext(rampart, port, backend, server="proxy_set_header Host $host;")
    with H2Conn(port) as c:
        e = echo(c.get("/p?echo=1", authority="h2.example"))
    assert (e["method"], e["target"], e["version"]) == ("GET", "/p?echo=1", "HTTP/1.1")
    assert sent(e, "Host") == ["h2.example"]
    assert sent(e, "X-Forwarded-Host") == ["h2.example"]
    assert sent(e, "X-Forwarded-Proto") == ["http"]
    assert not [n for n, _ in e["headers"] if n.startswith(":")]


def test_host_field_stands_in_for_a_missing_authority(rampart, port, backend):
    cleartext(rampart, port, backend, server="proxy_set_header Host $host;")
    with H2Conn(port) as c:
        e = echo(c.get("/p?echo=1", authority=None, headers=[("host", "fallback.example")]))
    assert sent(e, "Host") == ["fallback.example"]
    assert sent(e, "X-Forwarded-Host") == ["fallback.example"]


def test_cookie_fields_are_joined_into_one_cookie_header(rampart, port, backend):
    cleartext(rampart, port, backend)
    with H2Conn(port) as c:
        e = echo(c.get("/p?echo=1", headers=[("cookie", "a=1"), ("x-between", "y"),
                                             ("cookie", "b=2"), ("cookie", "c=3")]))
    assert sent(e, "Cookie") == ["a=1; b=2; c=3"]
    assert sent(e, "X-Between") == ["y"]


def test_request_body_with_content_length_goes_upstream_with_it(rampart, port, backend):
    cleartext(rampart, port, backend)
    body = os.urandom(300_000)
    with H2Conn(port) as c:
        sid = c.request("POST", "/up?echo=1", body=body,
                        headers=[("content-length", str(len(body)))])
        e = echo(c.response(sid))
    assert sent(e, "Content-Length") == [str(len(body))]
    assert sent(e, "Transfer-Encoding") == []
    assert (e["body_length"], e["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_request_body_without_content_length_goes_upstream_chunked(rampart, port, backend):
    # streamed (buffered, it goes with its length: test_request_buffering.py)
    cleartext(rampart, port, backend, server="proxy_request_buffering off;")
    body = os.urandom(300_000)
    with H2Conn(port) as c:
        sid = c.request("POST", "/up?echo=1", body=body)
        e = echo(c.response(sid))
    assert sent(e, "Transfer-Encoding") == ["chunked"]
    assert sent(e, "Content-Length") == []
    assert (e["body_length"], e["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_x_forwarded_proto_is_https_for_h2_over_tls(rampart, certs, port, backend):
    over_tls(rampart, certs, port, backend=backend)
    with H2Conn(port, tls=h2_context(certs), sni="a.test") as c:
        e = echo(c.get("/p?echo=1", authority="a.test", scheme="https"))
    assert sent(e, "X-Forwarded-Proto") == ["https"]
    assert e["version"] == "HTTP/1.1"


def test_cleartext_client_claiming_https_scheme_is_forwarded_as_http(rampart, port, backend):
    # $scheme and X-Forwarded-Proto come from the connection, not the client's :scheme
    cleartext(rampart, port, backend)
    with H2Conn(port) as c:
        e = echo(c.get("/p?echo=1", scheme="https"))
    assert sent(e, "X-Forwarded-Proto") == ["http"]


def test_te_trailers_is_accepted_and_not_passed_upstream(rampart, port, backend):
    cleartext(rampart, port, backend)
    with H2Conn(port) as c:
        e = echo(c.get("/p?echo=1", headers=[("te", "trailers")]))
    assert sent(e, "TE") == []


def test_response_has_lowercase_names_and_no_connection_specific_fields(rampart, port, backend):
    cleartext(rampart, port, backend, locations='location / { proxy_pass http://be; '
                                                'add_header X-Added yes; }\n')
    # a chunked answer (Transfer-Encoding), with Keep-Alive and Upgrade fields besides the
    # backend's own Connection field
    target = ("/p?chunked=1&size=5000&header=Keep-Alive:timeout%3D5&header=Upgrade:foo"
              "&header=X-Mixed-Case:Value")
    with H2Conn(port) as c:
        r = c.get(target)
    assert r.status == 200 and r.ended
    names = [n for n, _ in r.headers]
    assert names[0] == ":status"
    assert all(n == n.lower() for n in names), names
    assert not {"connection", "keep-alive", "transfer-encoding", "upgrade",
                "proxy-connection"} & set(names), names
    assert (r.header("x-mixed-case"), r.header("x-added")) == ("Value", "yes")
    assert bytes(r.body) == pattern(5000)


def test_response_carries_the_backends_content_length(rampart, port, backend):
    cleartext(rampart, port, backend)
    with H2Conn(port) as c:
        r = c.get("/p?size=12345")
    assert r.status == 200
    assert r.all("content-length") == ["12345"]
    assert len(r.body) == 12345


@pytest.mark.parametrize("method,target,status", [
    ("HEAD", "/p?size=1000", 200),
    ("GET", "/p?status=204", 204),
    ("GET", "/p?status=304", 304),
], ids=["head", "204", "304"])
def test_bodiless_response_ends_on_its_headers_frame_without_data(
        rampart, port, backend, method, target, status):
    cleartext(rampart, port, backend)
    with H2Conn(port) as c:
        r = c.get(target, method=method)
    assert r.status == status
    assert r.data_frames == 0 and r.ended, r.events
    # END_STREAM on the HEADERS frame itself: both events come from one frame
    assert [kind for kind, _ in r.events] == ["headers", "end"], r.events
    assert r.events[0][1] == r.events[1][1], r.events
    if method == "HEAD":
        assert r.header("content-length") == "1000"


def test_10mb_download_arrives_intact(rampart, port, backend):
    cleartext(rampart, port, backend)
    total = 10 * MB
    with H2Conn(port, timeout=10) as c:
        r = c.get(f"/p?size={total}", timeout=10)
    assert (r.status, r.ended, r.header("content-length")) == (200, True, str(total))
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(total)


def test_10mb_upload_arrives_intact(rampart, port, backend):
    cleartext(rampart, port, backend)
    body = os.urandom(10 * MB)
    with H2Conn(port, timeout=10) as c:
        sid = c.request("PUT", "/up?echo=1", body=body, timeout=10,
                        headers=[("content-length", str(len(body)))])
        e = echo(c.response(sid, timeout=10))
    assert (e["body_length"], e["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


# -- malformed requests (RFC 9113 8.1.1, 8.2, 8.3) ---------------------------------------------


def fields(path, *extra, method="GET"):
    return request_fields(method, path, headers=list(extra))


MALFORMED = {
    "uppercase-name": fields("/bad", ("X-Upper", "1")),
    "connection": fields("/bad", ("connection", "keep-alive")),
    "keep-alive": fields("/bad", ("keep-alive", "timeout=5")),
    "proxy-connection": fields("/bad", ("proxy-connection", "keep-alive")),
    "transfer-encoding": fields("/bad", ("transfer-encoding", "chunked")),
    "upgrade": fields("/bad", ("upgrade", "websocket")),
    "te-not-trailers": fields("/bad", ("te", "gzip")),
    "no-method": [(":scheme", "http"), (":authority", "localhost"), (":path", "/bad")],
    "no-scheme": [(":method", "GET"), (":authority", "localhost"), (":path", "/bad")],
    "no-path": [(":method", "GET"), (":scheme", "http"), (":authority", "localhost")],
    "duplicate-pseudo-header": fields("/bad") + [(":path", "/bad2")],
    "pseudo-header-after-regular": [(":method", "GET"), (":scheme", "http"),
                                    (":authority", "localhost"), ("x-a", "1"),
                                    (":path", "/bad")],
    "unknown-pseudo-header": fields("/bad") + [(":foo", "1")],
    "status-in-request": fields("/bad") + [(":status", "200")],
    "empty-path": fields(""),
    "cr-in-value": fields("/bad", ("x-a", "a\rb")),
    "lf-in-value": fields("/bad", ("x-a", "a\nb")),
    "nul-in-value": fields("/bad", ("x-a", "a\x00b")),
}

# (content-length, DATA sent before END_STREAM)
LENGTH_MISMATCH = {
    "content-length-below-data": (5, b"0123456789"),
    "content-length-above-data": (10, b"01234"),
}


def expect_protocol_error_reset(r):
    """A malformed request's stream ends in RST_STREAM(PROTOCOL_ERROR). RFC 9113 8.1.1
    lets a server answer such a request before resetting its stream, so a 400 may come
    first; nothing else may."""
    assert r.reset == PROTOCOL_ERROR, f"{r}: reset {error_name(r.reset)}"
    assert r.status in (None, 400), r


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_is_reset_with_protocol_error_and_the_connection_goes_on(
        rampart, port, backend, case):
    cleartext(rampart, port, backend)
    with H2Conn(port) as c:
        sid = c.new_stream_id()
        c.send_headers(sid, MALFORMED[case], end_stream=True)
        expect_protocol_error_reset(c.response(sid))
        after = c.get("/after")
        assert not c.goaways, c.goaways
    assert after.status == 200
    assert [e["target"] for e in backend.log()] == ["/after"]


@pytest.mark.parametrize("case", list(LENGTH_MISMATCH))
def test_body_not_matching_content_length_is_reset_with_protocol_error(
        rampart, port, backend, case):
    cleartext(rampart, port, backend)
    length, body = LENGTH_MISMATCH[case]
    with H2Conn(port) as c:
        sid = c.new_stream_id()
        # head and body in one write: the mismatch is known before any upstream could
        # have been reached
        c.send(headers_frame(sid, fields("/bad", ("content-length", str(length)),
                                         method="POST"), end_stream=False),
               data_frame(sid, body, end_stream=True))
        expect_protocol_error_reset(c.response(sid))
        after = c.get("/after")
        assert not c.goaways, c.goaways
    assert after.status == 200
    assert [e["target"] for e in backend.log()] == ["/after"]


# -- flow control follows the upstream ----------------------------------------------------------


class GatedBackend:
    """An HTTP/1.1 backend for one request that reads its head, then nothing more until
    open() is called; its socket's receive buffer is 16k, so until then the body waits
    in rampart. Then it reads the body (Content-Length) and answers 200 with
    {"length", "sha256", "head"} as JSON. It runs in a thread of the test."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.gate = threading.Event()
        self.head = None
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def open(self):
        self.gate.set()

    def _serve(self):
        try:
            self.listener.settimeout(20)
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(20)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(1024)
                    if not chunk:
                        raise EOFError("closed inside the head")
                    buf += chunk
                head, rest = buf.split(b"\r\n\r\n", 1)
                self.head = head.decode("latin-1")
                if not self.gate.wait(20):
                    raise TimeoutError("never opened")
                m = re.search(r"^content-length:\s*(\d+)\s*$", self.head, re.I | re.M)
                if m is None:
                    raise ValueError(f"no Content-Length in {self.head!r}")
                left = int(m.group(1)) - len(rest)
                h = hashlib.sha256(rest)
                length = len(rest)
                while left > 0:
                    chunk = conn.recv(min(left, 1 << 18))
                    if not chunk:
                        raise EOFError(f"closed with {left} body bytes to come")
                    h.update(chunk)
                    length += len(chunk)
                    left -= len(chunk)
                body = json.dumps({"length": length, "sha256": h.hexdigest(),
                                   "head": self.head}).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s" % (len(body), body))
        except Exception as e:  # noqa: BLE001 - the test reports it
            self.error = e
        finally:
            self.listener.close()


def test_upload_is_held_by_flow_control_until_the_backend_reads(rampart, port):
    gated = GatedBackend()
    cleartext(rampart, port, gated, server="proxy_request_buffering off;")  # streamed
    with H2Conn(port, timeout=10) as warm:
        assert warm.get("/ok").status == 200
    total = 20 * MB
    body = os.urandom(total)
    view = memoryview(body)
    with RssWatch(worker_pid(rampart)) as rss, H2Conn(port, timeout=10) as c:
        sid = c.request("POST", "/up", headers=[("content-length", str(total))],
                        end_stream=False)
        sent_bytes, last_progress = 0, time.monotonic()
        deadline = last_progress + 10
        # push while the windows allow; stop when nothing has moved for 2 s
        while time.monotonic() - last_progress < 2.0:
            assert time.monotonic() < deadline, f"still moving after 10 s ({sent_bytes} bytes)"
            n = c.push(sid, view[sent_bytes:])
            if n:
                sent_bytes += n
                last_progress = time.monotonic()
                assert sent_bytes < total, "the whole body went through a backend not reading"
                continue
            try:
                c.read_frame(0.1)
            except TimeoutError:
                pass
        held = rss.peak
        assert sent_bytes < 8 * MB, f"{sent_bytes / MB:.1f} MB sent to a backend not reading"
        assert gated.head is not None and \
            re.search(rf"^content-length: {total}\r?$", gated.head, re.I | re.M), gated.head
        gated.open()
        c.send_data(sid, view[sent_bytes:], timeout=10)
        r = c.response(sid, timeout=10)
    growth = (held - rss.base) / 1024
    # a few MB: the stream holds one window (64k); the rest is allocator slack, larger
    # under the sanitizer build (its quarantine keeps freed chains resident)
    assert growth < 8, f"worker RSS grew by {growth:.1f} MB while the upload was held"
    assert gated.error is None, gated.error
    assert r.status == 200, r
    got = json.loads(bytes(r.body))
    assert (got["length"], got["sha256"]) == (total, hashlib.sha256(body).hexdigest())


def test_download_the_client_stops_reading_stops_reading_the_upstream(rampart, port, backend):
    cleartext(rampart, port, backend)
    with H2Conn(port) as warm:
        assert warm.get("/p?size=100000").status == 200
    total = 50 * MB
    with RssWatch(worker_pid(rampart)) as rss, H2Conn(port, timeout=10) as c:
        sid = c.request("GET", f"/p?size={total}")
        stream = c.streams[sid]
        c.read_until(lambda: len(stream.body) >= MB, what="the first megabyte")
        # the client neither reads nor opens its window for two seconds: the scenario itself
        time.sleep(2.0)
        held = rss.peak
        r = c.response(sid, timeout=10)
    growth = (held - rss.base) / 1024
    assert growth < 10, f"worker RSS grew by {growth:.1f} MB while the client was not reading"
    assert (r.status, r.ended) == (200, True)
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(total)


# -- limits and GOAWAY --------------------------------------------------------------------------


def test_streams_beyond_max_concurrent_streams_are_refused_and_the_first_complete(
        rampart, port, backend):
    cleartext(rampart, port, backend, server="http2_max_concurrent_streams 4;")
    with H2Conn(port) as c:
        assert c.server_settings[MAX_CONCURRENT_STREAMS] == 4
        sids = [c.new_stream_id() for _ in range(10)]
        # ten at once, in one write; each of the first four waits 0.5 s upstream
        c.send(*[headers_frame(sid, request_fields(path=f"/slow?delay=0.5&n={sid}"))
                 for sid in sids])
        streams = [c.response(sid) for sid in sids]
        after = c.get("/ok")
    for s in streams[:4]:
        assert (s.status, s.ended, s.reset) == (200, True, None), s
    for s in streams[4:]:
        # RFC 9113 5.1.2: a stream over the advertised limit is a stream error of type
        # PROTOCOL_ERROR or REFUSED_STREAM; both are right, and nothing else is
        assert s.status is None and s.reset in (REFUSED_STREAM, PROTOCOL_ERROR), s
    assert after.status == 200
    assert backend.stats()["requests"] == 4


def test_max_requests_ends_the_connection_with_goaway_no_error_after_the_nth_stream(
        rampart, port):
    cleartext(rampart, port, server="http2_max_requests 3;")
    with H2Conn(port) as c:
        statuses = [c.get("/ok").status for _ in range(3)]
        ending = c.read_until_goaway(timeout=5)
    assert statuses == [200, 200, 200]
    assert (ending.code, ending.last_stream_id, ending.closed) == (NO_ERROR, 5, True), ending


def test_max_requests_lets_the_stream_in_flight_finish_before_closing(rampart, port, backend):
    cleartext(rampart, port, backend, server="http2_max_requests 2;")
    with H2Conn(port) as c:
        slow = c.request("GET", "/slow?delay=1")
        wait_for(lambda: backend.stats()["requests"] == 1, what="the slow request upstream")
        fast = c.get("/ok")
        r = c.response(slow, timeout=10)
        ending = c.read_until_goaway(timeout=5)
    assert fast.status == 200
    assert (r.status, r.ended) == (200, True)
    assert (ending.code, ending.last_stream_id, ending.closed) == (NO_ERROR, 3, True), ending
    # the GOAWAY came while the slow stream was still in flight, not after it
    assert c.goaway_seq[0] < r.events[0][1], (c.goaway_seq, r.events)


def test_default_max_requests_is_1000(rampart, port):
    cleartext(rampart, port)
    with H2Conn(port) as c:
        statuses = []
        for _ in range(20):  # 50 streams at a time, under the 128 allowed
            sids = [c.new_stream_id() for _ in range(50)]
            c.send(*[headers_frame(sid, request_fields(path="/ok")) for sid in sids])
            statuses += [c.response(sid).status for sid in sids]
        ending = c.read_until_goaway(timeout=5)
    assert statuses == [200] * 1000
    assert (ending.code, ending.last_stream_id, ending.closed) == (NO_ERROR, 1999, True), ending


def test_idle_h2_connection_ends_with_goaway_no_error_after_keepalive_timeout(rampart, port):
    cleartext(rampart, port, server="keepalive_timeout 1s;")
    with H2Conn(port) as c:
        assert c.get("/ok").status == 200
        ending = c.read_until_goaway(timeout=6)
    assert (ending.code, ending.closed) == (NO_ERROR, True), ending
    assert 0.5 < ending.waited < 5, ending


def test_2000_sequential_requests_on_one_connection_all_succeed(rampart, port):
    cleartext(rampart, port, server="http2_max_requests 10000;")
    with H2Conn(port) as c:
        statuses = [c.get("/ok").status for _ in range(2000)]
        assert not c.goaways and not c.closed, c.goaways
    assert statuses == [200] * 2000


def test_h2load_5000_requests_on_4_connections_all_succeed(rampart, port):
    # h2load does not reconnect after a GOAWAY (checked with nginx 1.22 and its
    # keepalive_requests 1000: 1000 of 5000 failed); 4 connections make 1250 requests
    # each, over the default http2_max_requests, so it is raised here
    cleartext(rampart, port, server="http2_max_requests 10000;")
    p = subprocess.run(["h2load", "-n", "5000", "-c", "4", "-m", "10",
                        f"http://127.0.0.1:{port}/ok"],
                       capture_output=True, text=True, timeout=15)
    assert p.returncode == 0, p.stdout + p.stderr
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", p.stdout, re.M)
    assert m, p.stdout
    assert [int(x) for x in m.groups()] == [5000, 5000, 5000, 5000, 0, 0, 0], p.stdout
    assert re.search(r"^status codes: 5000 2xx,", p.stdout, re.M), p.stdout


def in_flight(rampart, port, backend):
    """An h2 connection with one request the backend holds for a second; returns
    (connection, stream id) once the backend has the request."""
    cleartext(rampart, port, backend)
    c = H2Conn(port)
    assert c.get("/ok").status == 200
    sid = c.request("GET", "/slow?delay=1")
    wait_for(lambda: backend.stats()["requests"] == 1, what="the request upstream")
    return c, sid


def test_quit_sends_goaway_no_error_at_once_and_lets_the_stream_in_flight_finish(
        rampart, port, backend):
    c, sid = in_flight(rampart, port, backend)
    with c:
        rampart.signal(signal.SIGQUIT)
        r = c.response(sid, timeout=10)
        ending = c.read_until_goaway(timeout=10)
    assert (r.status, r.ended) == (200, True), r
    assert ending.goaways and all(code == NO_ERROR for code, _, _ in ending.goaways), ending
    assert ending.last_stream_id >= sid, ending
    assert ending.closed, ending
    # told at once, not when the stream ended (the backend answers a second later)
    assert c.goaway_seq[0] < r.events[0][1], (c.goaway_seq, r.events)
    assert rampart.wait_exit(timeout=10) == 0


def test_hup_sends_goaway_no_error_at_once_and_lets_the_stream_in_flight_finish(
        rampart, port, backend):
    c, sid = in_flight(rampart, port, backend)
    with c:
        rampart.reload()
        r = c.response(sid, timeout=10)
        ending = c.read_until_goaway(timeout=10)
    assert (r.status, r.ended) == (200, True), r
    assert ending.goaways and all(code == NO_ERROR for code, _, _ in ending.goaways), ending
    assert ending.last_stream_id >= sid, ending
    assert ending.closed, ending
    assert c.goaway_seq[0] < r.events[0][1], (c.goaway_seq, r.events)
    with H2Conn(port) as fresh:
        assert fresh.get("/ok").status == 200
