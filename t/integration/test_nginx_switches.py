"""nginx's server-level switches: `underscores_in_headers`, `ignore_invalid_headers`
(header fields with odd names dropped or kept, compared with Debian's nginx on the
same configuration: what reaches the upstream and the $http_ variables), and
`http2 on;` (nginx 1.25.1's form: HTTP/2 on the server's listen addresses)."""

import json
import socket
import subprocess

import pytest

import harness
import reference_nginx
from harness import free_port

ODD = [("X_Under", "u"), ("X.Dot", "d"), ("X-Plain", "p")]


def servers(backend_addr, ports):
    """One server per setting, each proxying to the echoing backend."""
    settings = ["", "underscores_in_headers on;", "ignore_invalid_headers off;"]
    return "".join(f"""
server {{
    listen 127.0.0.1:{p};
    {s}
    location /var {{ return 200 "[$http_x_under][$http_x_plain]"; }}
    location / {{ proxy_pass http://{backend_addr}; }}
}}""" for p, s in zip(ports, settings))


def ask(port, path):
    lines = "".join(f"{k}: {v}\r\n" for k, v in ODD)
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{lines}\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        resp = b""
        while chunk := s.recv(65536):
            resp += chunk
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp[:300]
    return body


def received(port):
    """The odd fields the backend received, in order."""
    body = ask(port, "/?echo=1")
    names = {k.lower() for k, _ in ODD}
    return [n for n, _ in json.loads(body)["headers"] if n.lower() in names]


@pytest.fixture
def pair(tmp_path, rampart, backend):
    rp = [free_port() for _ in range(3)]
    ng = [free_port() for _ in range(3)]
    rampart.configure(servers(backend.addr, rp))
    rampart.start()
    reference_nginx.require()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(servers(backend.addr, ng))
    nginx.start()
    yield rampart, rp, ng
    nginx.stop()


def test_by_default_underscored_and_dotted_names_are_dropped_as_nginx_does(pair):
    rampart, rp, ng = pair
    assert received(rp[0]) == received(ng[0]) == ["X-Plain"]
    assert ask(rp[0], "/var") == ask(ng[0], "/var") == b"[][p]"
    rampart.wait_log(r'client sent invalid header line: "X_Under"')


def test_underscores_in_headers_on_lets_underscored_names_through_as_nginx_does(pair):
    _, rp, ng = pair
    assert received(rp[1]) == received(ng[1]) == ["X_Under", "X-Plain"]
    assert ask(rp[1], "/var") == ask(ng[1], "/var") == b"[u][p]"


def test_ignore_invalid_headers_off_keeps_every_name_as_nginx_does(pair):
    _, rp, ng = pair
    assert received(rp[2]) == received(ng[2]) == ["X_Under", "X.Dot", "X-Plain"]
    assert ask(rp[2], "/var") == ask(ng[2], "/var") == b"[u][p]"


def test_http2_on_in_a_server_speaks_http2_on_its_cleartext_port(rampart):
    port = free_port()
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    http2 on;
    location / {{ return 200 "$server_protocol"; }}
}}""")
    rampart.start()
    out = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{port}/"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert "HTTP/2.0" in out.stdout
    # HTTP/1.1 goes on beside it, as with `listen ... http2`
    assert harness.get(port, "/").body == b"HTTP/1.1"


def test_http2_on_at_http_level_reaches_every_server(rampart):
    port = free_port()
    rampart.configure(f"""
http2 on;
server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "$server_protocol"; }}
}}""")
    rampart.start()
    out = subprocess.run(["nghttp", f"http://127.0.0.1:{port}/"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0 and out.stdout == "HTTP/2.0", (out.stdout, out.stderr)


def test_http2_off_leaves_a_server_on_http1(rampart):
    port = free_port()
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    http2 off;
    location / {{ return 200 "$server_protocol"; }}
}}""")
    rampart.start()
    out = subprocess.run(["nghttp", f"http://127.0.0.1:{port}/"], capture_output=True,
                         text=True, timeout=20)
    assert out.stdout == "" and "not processed" in out.stderr, (out.stdout, out.stderr)
    assert harness.get(port, "/").body == b"HTTP/1.1"


def test_switch_with_a_bad_value_is_refused_at_its_line(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, "underscores_in_headers maybe;", 3,
        '"underscores_in_headers": invalid value "maybe", it must be "on" or "off"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, "server {\n listen 127.0.0.1:9;\n location / { http2 on; }\n}", 5,
        '"http2": not allowed in the location context')


def test_hostname_and_nginx_version_variables(rampart):
    port = free_port()
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "$hostname|$nginx_version|$rampart_version"; }}
}}""")
    rampart.start()
    host, nginx_version, version = harness.get(port, "/").body.decode().split("|")
    assert host == socket.gethostname()
    assert nginx_version == version != ""


def s_client_groups(port, groups):
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "a.test", "-groups", groups, "-brief"],
                       input="", capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def test_ssl_ecdh_curve_limits_the_key_exchange_groups(rampart, certs):
    port = free_port()
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} ssl;
    server_name a.test;
    {certs.directives("a.test")}
    ssl_ecdh_curve secp384r1:prime256v1;
    return 200 "ok";
}}""")
    rampart.start()
    rc, out = s_client_groups(port, "X25519")
    assert rc != 0, out  # a group the server does not offer: no handshake
    rc, out = s_client_groups(port, "X25519:secp384r1")
    assert rc == 0 and "secp384r1" in out, out


def test_ssl_ecdh_curve_with_an_unknown_group_is_refused_at_its_line(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, "ssl_ecdh_curve prime256v1:nosuchcurve;", 3,
        '"ssl_ecdh_curve": invalid curve list "prime256v1:nosuchcurve"')
