"""The proxy to upstream servers over TLS: `proxy_pass https://...` to an upstream
block or to host:port, keep-alive and session resumption of TLS connections,
certificate and host name verification, SNI, client certificates, protocols,
handshake failures and timeouts that move on to the next server, configuration
errors, and one upstream block shared by http:// and https:// locations.

The backend is backend.py speaking HTTPS (tls_cert/tls_key): every response says
whether its TLS session was resumed, the SNI it got and the client certificate's
CN (X-Backend-TLS-*). Its certificates come from the session-wide `certs`
fixture: a private CA and leaves for a.test and b.test."""

import hashlib
import json
import os
import re
import subprocess
import socket
import time

import pytest

from backend import pattern_sha256
from harness import request, run, wait_for

MB = 1 << 20

VERIFY_ERROR_20 = ("upstream SSL certificate verify error: (20:unable to get local issuer "
                   "certificate) while SSL handshaking to upstream")


# -- helpers ---------------------------------------------------------------------


def tls_backend(backend_factory, certs, name="a.test", client_ca=False, **options):
    """An HTTPS backend with the leaf of name; client_ca: it requires a client
    certificate signed by the test CA."""
    extra = {}
    if client_ca:
        extra = {"tls_client_ca": certs.ca, "control_cert": certs.client()}
    return backend_factory(tls_cert=certs.cert(name), tls_key=certs.key(name), **extra,
                           **options)


def serve(rampart, port, location, upstreams="", server="", http=""):
    """Starts rampart with one server on port whose `location /` holds location."""
    rampart.configure(f"{http}\n{upstreams}\n"
                      f"server {{\n    listen 127.0.0.1:{port};\n    {server}\n"
                      f"    location / {{ {location} }}\n}}")
    return rampart.start()


def block(name, *servers, extra="keepalive 4;"):
    """An upstream block of these backends (or host:port strings)."""
    lines = "".join(f" server {getattr(s, 'addr', s)};" for s in servers)
    return f"upstream {name} {{{lines} {extra} }}"


def trust(certs, *more):
    return f"proxy_ssl_verify on; proxy_ssl_trusted_certificate {certs.ca}; " + " ".join(more)


def tls_of(r):
    """(resumed, sni, client CN) as the backend saw the TLS connection."""
    assert r.status == 200, (r.status, r.body[:300])
    return (r.headers["X-Backend-TLS-Resumed"], r.headers["X-Backend-TLS-SNI"],
            r.headers["X-Backend-TLS-Client"])


def echo_of(r):
    assert r.status == 200, (r.status, r.body[:300])
    return json.loads(r.body)


def line_of(text, needle):
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the configuration")


def check(conf_dir, http_text):
    """Runs `rampart -t` on a configuration with this http{} body; (path, text, result)."""
    text = "worker_processes 1;\npid logs/rampart.pid;\n\nhttp {\n" + http_text + "\n}\n"
    path = conf_dir / "rampart.conf"
    path.write_text(text)
    return path, text, run("-t", "-p", conf_dir, "-c", "rampart.conf")


class Silent:
    """A TCP listener that never accepts: connects succeed (the kernel completes them),
    and nothing ever answers the ClientHello."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = f"127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


@pytest.fixture
def silent():
    s = Silent()
    yield s
    s.close()


# -- 1. the exchange over TLS -------------------------------------------------------


def test_get_through_https_upstream_block_goes_over_tls(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    r = request(port, "/x?body=hello")
    assert (r.status, r.body) == (200, b"hello")
    assert r.headers["X-Backend-Name"] == be.name
    assert r.headers["X-Backend-TLS-Resumed"] == "0"


def test_https_host_port_makes_an_implicit_upstream(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr}/api/;")
    e = echo_of(request(port, "/x?echo=1"))
    assert e["target"] == "/api/x?echo=1"
    assert e["tls"]["version"] in ("TLSv1.2", "TLSv1.3")


def test_request_line_host_and_forwarded_headers_are_as_for_http(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    e = echo_of(request(port, "/p?echo=1", host="front.example"))
    headers = {n.lower(): v for n, v in e["headers"]}
    assert e["target"] == "/p?echo=1"
    assert headers["host"] == "be"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "front.example"


def test_https_without_a_port_goes_to_443(rampart, port):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 443)) == 0:
            pytest.skip("something listens on 127.0.0.1:443")
    serve(rampart, port, "proxy_pass https://127.0.0.1;")
    assert request(port, "/x").status == 502
    rampart.wait_log(r'connect\(\) failed \(111: Connection refused\) while connecting to '
                     r'upstream, .*upstream: "https://127\.0\.0\.1:443/x"')


def test_5mb_upload_arrives_intact_over_tls(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be),
          server="client_max_body_size 0;")
    body = os.urandom(5 * MB)
    e = echo_of(request(port, "/up?echo=1", method="POST", body=body, timeout=20))
    assert (e["body_length"], e["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_5mb_chunked_upload_arrives_intact_over_tls(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be),
          server="client_max_body_size 0;")
    body = os.urandom(5 * MB)
    pieces = (body[i:i + 100_000] for i in range(0, len(body), 100_000))
    # an iterable body without a length: http.client sends it chunked
    e = echo_of(request(port, "/up?echo=1", method="POST", body=pieces, timeout=20))
    assert (e["body_length"], e["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_5mb_download_arrives_intact_over_tls(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    for chunked in (0, 1):
        r = request(port, f"/down?size={5 * MB}&chunked={chunked}", timeout=20)
        assert r.status == 200
        assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(5 * MB)


def test_slow_client_download_over_tls_resumes_and_completes(
        rampart, port, backend_factory, certs):
    """Pausing the upstream read for a slow client must not strand bytes TLS already
    decrypted (the socket does not signal them again)."""
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    total = 20 * MB
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(f"GET /?size={total} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, got = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        h = hashlib.sha256(got)
        n = len(got)
        pauses = 0
        while n < total:
            if n > pauses * 4 * MB and pauses < 4:
                pauses += 1
                time.sleep(0.3)  # the client stops reading; rampart stops reading TLS
            chunk = s.recv(min(65536, total - n))
            assert chunk, f"closed after {n} bytes"
            h.update(chunk)
            n += len(chunk)
    assert h.hexdigest() == pattern_sha256(total)


# -- 2. keep-alive ------------------------------------------------------------------


def test_keepalive_reuses_one_tls_connection_for_several_requests(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    seen = {request(port, f"/{i}").headers["X-Backend-Connection"] for i in range(8)}
    assert len(seen) == 1
    stats = be.stats()
    assert (stats["connections_accepted"], stats["requests"]) == (1, 8)


def test_idle_tls_connection_closed_by_the_backend_is_dropped_not_reused(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, idle_timeout=0.5)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    assert request(port, "/1").headers["X-Backend-Connection"] == "1"
    wait_for(lambda: be.stats()["open_connections"] == 0, timeout=5,
             what="the backend to close the idle connection")
    r = request(port, "/2")
    assert r.status == 200
    assert r.headers["X-Backend-Connection"] != "1"  # (the control requests count too)
    assert "[error]" not in rampart.log_text()


# -- 3. verification -------------------------------------------------------------------


def test_verify_with_the_right_ca_passes(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port, "proxy_pass https://a.test;", block("a.test", be),
          server=trust(certs))
    assert request(port, "/").status == 200


def test_verify_with_a_wrong_ca_gets_502_and_logs_the_verify_error(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    # the intermediate CA did not sign a.test: its issuer (the root) is not trusted
    serve(rampart, port, "proxy_pass https://a.test;", block("a.test", be),
          server=f"proxy_ssl_verify on; proxy_ssl_trusted_certificate {certs.intermediate};")
    assert request(port, "/v").status == 502
    rampart.wait_log(re.escape(VERIFY_ERROR_20) +
                     rf', client: 127\.0\.0\.1, .*upstream: "https://{re.escape(be.addr)}/v"')
    assert be.stats()["requests"] == 0


def intermediate_leaf(certs, tmp_path, name="depth.test"):
    """A server leaf for name signed by the test intermediate CA; (chain file, key):
    the chain is the leaf then the intermediate: one untrusted CA, depth 1."""
    key, crt, chain = tmp_path / "leaf.key", tmp_path / "leaf.crt", tmp_path / "chain.pem"
    subprocess.run(["openssl", "req", "-x509", "-days", "2", "-CA", str(certs.intermediate),
                    "-CAkey", str(certs.intermediate_key), "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "extendedKeyUsage=serverAuth"],
                   check=True, capture_output=True, timeout=30)
    chain.write_bytes(crt.read_bytes() + certs.intermediate.read_bytes())
    return chain, key


def test_verify_depth_0_refuses_a_chain_through_an_intermediate(
        rampart, port, backend_factory, certs, tmp_path):
    chain, key = intermediate_leaf(certs, tmp_path)
    be = backend_factory(tls_cert=chain, tls_key=key)
    serve(rampart, port, "proxy_pass https://depth.test;", block("depth.test", be),
          server=trust(certs, "proxy_ssl_verify_depth 0;"))
    assert request(port, "/").status == 502
    rampart.wait_log(r"upstream SSL certificate verify error: \(22:certificate chain too long\)")
    assert be.stats()["requests"] == 0


def test_default_verify_depth_accepts_a_chain_through_an_intermediate(
        rampart, port, backend_factory, certs, tmp_path):
    chain, key = intermediate_leaf(certs, tmp_path)
    be = backend_factory(tls_cert=chain, tls_key=key)
    serve(rampart, port, "proxy_pass https://depth.test;", block("depth.test", be),
          server=trust(certs))  # proxy_ssl_verify_depth 1
    assert request(port, "/").status == 200


def test_verify_off_accepts_an_untrusted_certificate(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port, "proxy_pass https://b.test;", block("b.test", be),
          server=f"proxy_ssl_trusted_certificate {certs.intermediate};")
    assert request(port, "/").status == 200


def test_verify_with_a_host_name_mismatch_gets_502(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port, "proxy_pass https://b.test;", block("b.test", be),
          server=trust(certs))
    assert request(port, "/").status == 502
    rampart.wait_log(r"upstream SSL certificate verify error: \(62:hostname mismatch\) "
                     r"while SSL handshaking to upstream")


def test_verify_of_an_address_without_it_in_the_certificate_gets_502(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port, f"proxy_pass https://{be.addr};", server=trust(certs))
    assert request(port, "/").status == 502
    rampart.wait_log(r"upstream SSL certificate verify error: \(64:IP address mismatch\)")


def test_proxy_ssl_name_overrides_the_name_verified(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port, "proxy_pass https://b.test;", block("b.test", be),
          server=trust(certs, "proxy_ssl_name a.test;"))
    assert request(port, "/").status == 200


def test_proxy_ssl_name_overrides_an_address_too(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="b.test")
    serve(rampart, port, f"proxy_pass https://{be.addr};",
          server=trust(certs, "proxy_ssl_name b.test;"))
    assert request(port, "/").status == 200


def test_settings_at_http_level_are_inherited_and_a_location_can_override(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    rampart.configure(f"""
    {trust(certs)}
    {block("b.test", be)}
    server {{
        listen 127.0.0.1:{port};
        location /inherit/ {{ proxy_pass https://b.test; }}
        location /override/ {{ proxy_ssl_name a.test; proxy_pass https://b.test; }}
        location /off/ {{ proxy_ssl_verify off; proxy_pass https://b.test; }}
    }}""")
    rampart.start()
    assert request(port, "/inherit/").status == 502
    assert request(port, "/override/").status == 200
    assert request(port, "/off/").status == 200


# -- 4. SNI ------------------------------------------------------------------------


def test_server_name_on_sends_proxy_ssl_name_as_sni(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be),
          server="proxy_ssl_server_name on; proxy_ssl_name a.test;")
    assert tls_of(request(port, "/"))[1] == "a.test"


def test_server_name_on_sends_the_proxy_pass_host_by_default(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://b.test/;", block("b.test", be),
          server="proxy_ssl_server_name on;")
    assert tls_of(request(port, "/"))[1] == "b.test"


def test_server_name_off_sends_no_sni(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://a.test;", block("a.test", be),
          server="proxy_ssl_name a.test;")
    assert tls_of(request(port, "/"))[1] == "-"


def test_server_name_on_never_sends_an_address_as_sni(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr};", server="proxy_ssl_server_name on;")
    assert tls_of(request(port, "/"))[1] == "-"


# -- 5. client certificates -----------------------------------------------------------


def test_client_certificate_is_presented_to_a_backend_that_requires_one(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, client_ca=True)
    cert, key = certs.client()
    serve(rampart, port, "proxy_pass https://be;", block("be", be),
          server=f"proxy_ssl_certificate {cert}; proxy_ssl_certificate_key {key};")
    assert tls_of(request(port, "/"))[2] == "client.test"


def test_backend_requiring_a_client_certificate_refuses_a_proxy_without_one(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, client_ca=True)
    serve(rampart, port, "proxy_pass https://be;", block("be", be))
    assert request(port, "/").status == 502
    assert be.stats()["requests"] == 0


# -- 6. session resumption -----------------------------------------------------------


def test_session_reuse_resumes_the_session_on_the_next_connection(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr};")  # no keepalive: new connections
    first = request(port, "/1")
    second = request(port, "/2")
    assert first.headers["X-Backend-Connection"] != second.headers["X-Backend-Connection"]
    assert (tls_of(first)[0], tls_of(second)[0]) == ("0", "1")


def test_session_reuse_works_with_tls12_sessions(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr};", server="proxy_ssl_protocols TLSv1.2;")
    assert [tls_of(request(port, f"/{i}"))[0] for i in range(3)] == ["0", "1", "1"]


def test_session_reuse_off_never_resumes(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr};", server="proxy_ssl_session_reuse off;")
    assert [tls_of(request(port, f"/{i}"))[0] for i in range(3)] == ["0", "0", "0"]


def test_a_session_is_not_offered_to_a_location_with_other_settings(
        rampart, port, backend_factory, certs):
    """A session made without verification must not let a verifying location skip its
    own check of the certificate."""
    be = tls_backend(backend_factory, certs, name="a.test")
    rampart.configure(f"""
    {block("b.test", be, extra="")}
    server {{
        listen 127.0.0.1:{port};
        location /loose/ {{ proxy_pass https://b.test; }}
        location /strict/ {{ {trust(certs)} proxy_pass https://b.test; }}
    }}""")
    rampart.start()
    assert tls_of(request(port, "/loose/1"))[0] == "0"
    assert tls_of(request(port, "/loose/2"))[0] == "1"
    assert request(port, "/strict/").status == 502  # b.test is not in a.test's certificate


# -- 7. protocols and ciphers ------------------------------------------------------------


def test_proxy_ssl_protocols_limits_the_versions_offered(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr};", server="proxy_ssl_protocols TLSv1.2;")
    assert echo_of(request(port, "/?echo=1"))["tls"]["version"] == "TLSv1.2"


def test_default_protocols_negotiate_tls13(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, f"proxy_pass https://{be.addr};")
    assert echo_of(request(port, "/?echo=1"))["tls"]["version"] == "TLSv1.3"


def test_proxy_ssl_ciphers_without_one_for_the_certificate_fails_the_handshake(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)  # an ECDSA certificate
    serve(rampart, port, f"proxy_pass https://{be.addr};",
          server="proxy_ssl_protocols TLSv1.2; proxy_ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;")
    assert request(port, "/").status == 502
    rampart.wait_log(r"SSL_do_handshake\(\) failed \(SSL: .*\) while SSL handshaking to "
                     r"upstream")


# -- 8. failures that move on, and timeouts -------------------------------------------


def test_plain_http_backend_on_an_https_upstream_gets_502_quickly(rampart, port, backend):
    serve(rampart, port, f"proxy_pass https://{backend.addr};",
          server="proxy_connect_timeout 10s;")
    start = time.monotonic()
    assert request(port, "/", timeout=15).status == 502
    assert time.monotonic() - start < 3
    rampart.wait_log(r"SSL_do_handshake\(\) failed \(SSL: .*\) while SSL handshaking to "
                     rf'upstream, .*upstream: "https://{re.escape(backend.addr)}/"')
    assert backend.stats()["requests"] == 0


def test_failed_handshake_moves_on_to_the_next_server_of_the_group(
        rampart, port, backend, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://pair;", block("pair", backend, be))
    for i in range(4):
        r = request(port, f"/{i}")
        assert (r.status, r.headers["X-Backend-Name"]) == (200, be.name)
    rampart.wait_log(r"SSL_do_handshake\(\) failed .* while SSL handshaking to upstream")


def test_failed_verification_moves_on_to_the_next_server_of_the_group(
        rampart, port, backend_factory, certs):
    wrong = tls_backend(backend_factory, certs, name="b.test")
    right = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port, "proxy_pass https://a.test;", block("a.test", wrong, right),
          server=trust(certs))
    for i in range(3):
        r = request(port, f"/{i}")
        assert (r.status, r.headers["X-Backend-Name"]) == (200, right.name)
    rampart.wait_log(r"\(62:hostname mismatch\) while SSL handshaking to upstream")
    assert wrong.stats()["requests"] == 0


def test_handshake_timeout_gets_504_after_proxy_connect_timeout(rampart, port, silent):
    serve(rampart, port, f"proxy_pass https://{silent.addr};",
          server="proxy_connect_timeout 1s;")
    start = time.monotonic()
    r = request(port, "/", timeout=10)
    elapsed = time.monotonic() - start
    assert r.status == 504
    assert 0.9 <= elapsed < 3, elapsed
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while SSL handshaking "
                     r"to upstream")


def test_handshake_timeout_moves_on_to_the_next_server(
        rampart, port, silent, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://pair;", block("pair", silent.addr, be),
          server="proxy_connect_timeout 500ms;")
    r = request(port, "/", timeout=10)
    assert (r.status, r.headers["X-Backend-Name"]) == (200, be.name)


# -- 9. one upstream block for http:// and https:// ------------------------------------------


def test_tls_connections_in_the_pool_are_never_given_to_plain_requests(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    rampart.configure(f"""
    {block("be", be)}
    server {{
        listen 127.0.0.1:{port};
        location /tls/ {{ proxy_pass https://be; }}
        location /plain/ {{ proxy_pass http://be; }}
    }}""")
    rampart.start()
    assert request(port, "/tls/1").headers["X-Backend-Connection"] == "1"
    # a plain request opens its own connection, which a TLS server refuses
    assert request(port, "/plain/").status == 502
    r = request(port, "/tls/2")
    assert (r.status, r.headers["X-Backend-Connection"]) == (200, "1")


def test_plain_connections_in_the_pool_are_never_given_to_tls_requests(
        rampart, port, backend):
    rampart.configure(f"""
    {block("be", backend)}
    server {{
        listen 127.0.0.1:{port};
        location /tls/ {{ proxy_pass https://be; }}
        location /plain/ {{ proxy_pass http://be; }}
    }}""")
    rampart.start()
    assert request(port, "/plain/1").headers["X-Backend-Connection"] == "1"
    assert request(port, "/tls/").status == 502
    r = request(port, "/plain/2")
    assert (r.status, r.headers["X-Backend-Connection"]) == (200, "1")


def test_http_and_https_to_one_address_are_two_implicit_upstreams(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    rampart.configure(f"""
    server {{
        listen 127.0.0.1:{port};
        location /tls/ {{ proxy_pass https://{be.addr}; }}
        location /plain/ {{ proxy_pass http://{be.addr}; }}
    }}""")
    rampart.start()
    assert request(port, "/tls/").status == 200
    assert request(port, "/plain/").status == 502
    assert request(port, "/tls/").status == 200


# -- 10. configuration -------------------------------------------------------------------


def test_unreadable_trusted_certificate_is_an_error_at_its_line(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port};
        proxy_ssl_verify on;
        proxy_ssl_trusted_certificate {certs.missing};
        location / {{ proxy_pass https://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'proxy_ssl_trusted_certificate')}: "
            f"\"proxy_ssl_trusted_certificate\": cannot load \"{certs.missing}\"") in p.stderr


def test_trusted_certificate_that_is_not_pem_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    proxy_ssl_trusted_certificate {certs.not_pem};
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass https://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'proxy_ssl_trusted_certificate')}: " in p.stderr


def test_verify_on_without_a_trusted_certificate_is_an_error_at_its_line(conf_dir, port):
    path, text, p = check(conf_dir, f"""
    proxy_ssl_verify on;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass https://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'proxy_ssl_verify')}: \"proxy_ssl_verify\": no "
            f"\"proxy_ssl_trusted_certificate\" is defined for it") in p.stderr


def test_mismatched_client_key_is_an_error_at_its_line(conf_dir, certs, port):
    cert, _ = certs.client()
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_ssl_certificate {cert};
            proxy_ssl_certificate_key {certs.mismatched_key};
            proxy_pass https://127.0.0.1:9;
        }}
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'proxy_ssl_certificate_key')}: "
            f"\"proxy_ssl_certificate_key\": \"{certs.mismatched_key}\" does not match "
            f"\"{cert}\"") in p.stderr


def test_unreadable_client_certificate_is_an_error_at_its_line(conf_dir, certs, port):
    _, key = certs.client()
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port};
        proxy_ssl_certificate {certs.missing};
        proxy_ssl_certificate_key {key};
        location / {{ proxy_pass https://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'proxy_ssl_certificate ')}: " in p.stderr


def test_client_certificate_without_a_key_is_an_error(conf_dir, certs, port):
    cert, _ = certs.client()
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port};
        proxy_ssl_certificate {cert};
        location / {{ proxy_pass https://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'proxy_ssl_certificate ')}: \"proxy_ssl_certificate\": "
            f"no \"proxy_ssl_certificate_key\"") in p.stderr


def test_unusable_cipher_list_is_an_error_at_its_line(conf_dir, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port};
        proxy_ssl_ciphers NO-SUCH-CIPHER;
        location / {{ proxy_pass https://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'proxy_ssl_ciphers')}: \"proxy_ssl_ciphers\": no usable "
            f"cipher") in p.stderr


def test_invalid_protocol_and_variable_name_are_errors(conf_dir, port):
    for directive in ("proxy_ssl_protocols TLSv1.2 SSLv3;", "proxy_ssl_name $host;"):
        path, text, p = check(conf_dir, f"""
        server {{
            listen 127.0.0.1:{port};
            {directive}
            location / {{ proxy_pass https://127.0.0.1:9; }}
        }}""")
        assert p.returncode == 1, directive
        assert f"{path}:{line_of(text, directive.split()[0])}: " in p.stderr


def test_ssl_settings_of_a_location_without_https_are_not_loaded(conf_dir, certs, port):
    """As nginx: only a location that proxies to https:// builds a TLS context."""
    path, text, p = check(conf_dir, f"""
    proxy_ssl_trusted_certificate {certs.missing};
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:9; }}
    }}""")
    assert p.returncode == 0, p.stderr


def test_reload_keeps_https_upstreams_working(rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs)
    serve(rampart, port, "proxy_pass https://be;", block("be", be),
          server=trust(certs, "proxy_ssl_name a.test;"))
    assert request(port, "/").status == 200
    rampart.configure(text=rampart.conf_text.replace("proxy_ssl_name a.test;",
                                                     "proxy_ssl_name b.test;"))
    assert rampart.reload().group(0) != "reload failed"
    wait_for(lambda: request(port, "/").status == 502, timeout=5,
             what="the new generation to verify b.test")


def test_https_to_an_http2_group_is_accepted(conf_dir, port):
    # HTTP/2 over TLS (ALPN h2) to an http2 group: test_proxy_h2_tls.py runs it
    path, text, p = check(conf_dir, f"""
    upstream h2grp {{ server 127.0.0.1:9; http2; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass https://h2grp; }}
    }}""")
    assert p.returncode == 0, p.stderr
