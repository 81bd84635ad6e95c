"""HTTP/2 over TLS to upstream servers: `proxy_pass https://NAME` where the
upstream block says `http2`. The session's connection does TLS with ALPN "h2"
under the location's proxy_ssl_* settings, and requests multiplex on it as on a
cleartext one; a failed verification, or a server that does not select h2, fails
the connect (next server, else 502) with a line naming the cause.

The backend is h2_backend.py with --tls-cert/--tls-key (certificates of the
session-wide `certs` fixture); its /__stats is fetched through rampart."""

import hashlib
import json
import re
import socket
import threading
import time

import pytest

from h2_backend import H2Backend
from h2client import H2Client
from harness import request

MB = 1 << 20

VERIFY_ERROR_20 = ("upstream SSL certificate verify error: (20:unable to get local issuer "
                   "certificate) while SSL handshaking to upstream")


@pytest.fixture
def tls_h2(certs):
    made = []

    def make(name="a.test", **kw):
        b = H2Backend(tls_cert=certs.cert(name), tls_key=certs.key(name), **kw).start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def serve(rampart, port, servers, location="", upstream="", server=""):
    lines = "".join(f" server {getattr(s, 'addr', s)};" for s in servers)
    rampart.configure(f"client_max_body_size 0;\n"
                      f"upstream a.test {{{lines} http2; {upstream} }}\n"
                      f"server {{\n listen 127.0.0.1:{port} http2;\n {server}\n"
                      f" location / {{ proxy_pass https://a.test; {location} }}\n}}")
    rampart.start()
    return rampart


def trust(certs):
    return f"proxy_ssl_verify on; proxy_ssl_trusted_certificate {certs.ca};"


def stats(port):
    r = request(port, "/__stats")
    assert r.status == 200, (r.status, r.body[:200])
    return json.loads(r.body)


def test_get_goes_over_tls_and_http2(rampart, port, tls_h2, certs):
    be = tls_h2()
    serve(rampart, port, [be], location=trust(certs))
    r = request(port, "/a?echo=1")
    assert r.status == 200, r.body[:300]
    e = json.loads(r.body)
    assert e["path"] == "/a?echo=1" and e["scheme"] == "https"
    s = stats(port)
    assert s["tls_connections"] == 1 and s["connections"] == 1
    assert "[error]" not in rampart.log_text()


def test_post_5mb_over_tls(rampart, port, tls_h2, certs):
    be = tls_h2()
    serve(rampart, port, [be], location=trust(certs))
    body = bytes(range(256)) * (5 * MB // 256)
    r = request(port, "/?echo=1", method="POST", body=body, timeout=30)
    assert r.status == 200
    e = json.loads(r.body)
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_large_download_over_tls(rampart, port, tls_h2, certs):
    be = tls_h2()
    serve(rampart, port, [be])
    with H2Client(port, timeout=30) as c:
        r = c.request("GET", f"/?size={5 * MB}")
    assert r.status == 200 and len(r.body) == 5 * MB


def test_concurrent_requests_share_one_tls_connection(rampart, port, tls_h2, certs):
    be = tls_h2()
    serve(rampart, port, [be], location=trust(certs))
    assert request(port, "/").status == 200  # the connection is up
    with H2Client(port, timeout=30) as c:
        rs = c.exchange([("GET", "/?delay=0.2", [], b"")] * 40)
    assert [r.status for r in rs] == [200] * 40
    statuses = []

    def one():
        statuses.append(request(port, "/?delay=0.1").status)
    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 20
    s = stats(port)
    assert s["tls_connections"] == 1 and s["connections"] == 1
    assert s["max_concurrent"] > 1


def test_verify_with_a_wrong_ca_gets_502_and_logs_the_verify_error(
        rampart, port, tls_h2, certs):
    be = tls_h2()
    serve(rampart, port, [be],
          location=f"proxy_ssl_verify on; proxy_ssl_trusted_certificate {certs.intermediate};")
    assert request(port, "/v").status == 502
    rampart.wait_log(re.escape(VERIFY_ERROR_20) +
                     rf', client: 127\.0\.0\.1, .*upstream: "https://{re.escape(be.addr)}/v"')


def test_verify_name_mismatch_gets_502(rampart, port, tls_h2, certs):
    be = tls_h2(name="b.test")
    serve(rampart, port, [be], location=trust(certs))
    assert request(port, "/").status == 502
    rampart.wait_log(r"upstream SSL certificate verify error: \(62:")


def test_proxy_ssl_name_and_server_name_are_honoured(rampart, port, tls_h2, certs):
    be = tls_h2(name="b.test")
    serve(rampart, port, [be],
          location=trust(certs) + " proxy_ssl_name b.test; proxy_ssl_server_name on;")
    assert request(port, "/").status == 200


def test_server_without_h2_in_alpn_gets_502(rampart, port, tls_h2, certs):
    be = tls_h2(alpn="http/1.1")
    serve(rampart, port, [be], location=trust(certs))
    assert request(port, "/").status == 502
    rampart.wait_log(r'upstream SSL: the server did not select "h2" in ALPN while SSL '
                     r'handshaking to upstream')


def test_failed_handshake_moves_on_to_the_next_server(rampart, port, tls_h2, certs):
    bad = tls_h2(alpn="http/1.1")
    good = tls_h2()
    serve(rampart, port, [bad, good], location=trust(certs))
    for _ in range(4):
        assert request(port, "/").status == 200
    assert rampart.log_text().count('did not select "h2"') == 1


def test_cleartext_backend_on_an_https_http2_group_gets_502(rampart, port, certs):
    cleartext = H2Backend().start()
    try:
        rampart.configure(
            f"upstream a.test {{ server {cleartext.addr}; http2; }}\n"
            f"server {{ listen 127.0.0.1:{port};\n"
            f" location / {{ proxy_pass https://a.test; proxy_connect_timeout 3s; }} }}")
        rampart.start()
        assert request(port, "/", timeout=10).status == 502
        rampart.wait_log(r"while SSL handshaking to upstream")
    finally:
        cleartext.stop()


def test_tls_and_cleartext_locations_never_share_a_session(rampart, port, certs):
    be = H2Backend(tls_cert=certs.cert("a.test"), tls_key=certs.key("a.test")).start()
    try:
        rampart.configure(
            f"upstream a.test {{ server {be.addr}; http2; }}\n"
            f"server {{ listen 127.0.0.1:{port};\n"
            f" location /v/ {{ proxy_pass https://a.test; {trust(certs)} }}\n"
            f" location /w/ {{ proxy_pass https://a.test; proxy_ssl_verify off; }}\n"
            f" location /bad/ {{ proxy_pass https://a.test; proxy_ssl_verify on;\n"
            f"   proxy_ssl_trusted_certificate {certs.intermediate}; }}\n"
            f" location / {{ proxy_pass https://a.test; }} }}")
        rampart.start()
        assert request(port, "/v/").status == 200
        assert request(port, "/w/").status == 200
        # a verified session to the same server must not carry a request whose own
        # verification fails
        assert request(port, "/bad/").status == 502
        assert request(port, "/v/").status == 200
        # /v/ and /w/ one each, and the one of `location /` that fetches the stats
        assert stats(port)["tls_connections"] == 3
    finally:
        be.stop()


def test_client_certificate_and_protocols(rampart, port, tls_h2, certs):
    be = tls_h2()
    cert, key = certs.client()
    serve(rampart, port, [be], location=trust(certs) +
          f" proxy_ssl_certificate {cert}; proxy_ssl_certificate_key {key};"
          " proxy_ssl_protocols TLSv1.2;")
    assert request(port, "/").status == 200


def test_handshake_timeout_gets_504_after_proxy_connect_timeout(rampart, port, certs):
    # a listener that never accepts: the TCP connect succeeds, no ServerHello ever comes
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        addr = f"127.0.0.1:{silent.getsockname()[1]}"
        serve(rampart, port, [addr], location="proxy_connect_timeout 500ms;")
        t0 = time.monotonic()
        assert request(port, "/", timeout=10).status == 504
        assert time.monotonic() - t0 < 5
        rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while SSL "
                         r"handshaking to upstream")
    finally:
        silent.close()


@pytest.mark.parametrize("reuse", ["on", "off"])
def test_session_reuse_resumes_on_the_next_connection(rampart, port, tls_h2, certs, reuse):
    be = tls_h2()
    # one request per connection: each request makes a new one, offering the last session
    serve(rampart, port, [be], upstream="keepalive_requests 1;",
          location=trust(certs) + f" proxy_ssl_session_reuse {reuse};")
    for _ in range(3):
        assert request(port, "/").status == 200
    s = stats(port)
    assert s["tls_connections"] >= 3
    if reuse == "on":
        assert s["tls_resumed"] >= 2
    else:
        assert s["tls_resumed"] == 0
