"""Static files (root, alias, index, types, etag, if_modified_since, max_ranges) answered
as Debian's nginx answers them: the same http-block content runs under /usr/sbin/nginx
(reference_nginx.py) and rampart, over the same document root, and the same requests
must get the same status and the same Content-Type, Content-Length, ETag,
Last-Modified, Content-Range, Location (with the port each listens on) and, for the
files themselves, the same bytes. Then what nginx cannot be compared with on: a large
file byte for byte over HTTP/1, TLS and HTTP/2, and a client that does not read a
large file stalls no other client of the same worker.
"""

import gzip
import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

import harness
import reference_nginx

SRC = Path(os.environ.get("RAMPART_SRC", Path(__file__).resolve().parents[2]))
MIME = SRC / "conf" / "mime.types"
BIG = 3 * 1024 * 1024 + 12345
COMPARED = ("content-type", "content-length", "etag", "last-modified", "content-range",
            "accept-ranges", "location")


def make_root(root):
    (root / "dir").mkdir(parents=True)
    (root / "noindex").mkdir()
    (root / "multi").mkdir()
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "openapi.json").write_text('{"openapi": "3.1.0", "info": {"title": "t"}}\n')
    (root / "spec.yaml").write_text("openapi: 3.1.0\n")
    (root / "style.CSS").write_text("body {}\n")
    (root / "data.cst").write_text("custom\n")
    (root / "noext").write_text("plain\n")
    (root / "empty.txt").write_text("")
    (root / "dir" / "index.html").write_text("<p>dir</p>\n")
    (root / "dir" / "page.html").write_text("<p>page</p>\n")
    (root / "multi" / "second.html").write_text("<p>second</p>\n")
    (root / "digits.txt").write_text("0123456789abcdefghij\n")
    with open(root / "big.bin", "wb") as f:
        f.write(os.urandom(BIG))
    # one fixed mtime for every file, so that nothing depends on when the test ran
    for p in [root, *root.rglob("*")]:
        os.utime(p, (1700000000, 1700000000))


def http_block(port, root):
    return (f"include {MIME};\n"
            f"default_type application/octet-stream;\n"
            f"server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    root {root};\n"
            f"    location /alias/ {{ alias {root}/dir/; }}\n"
            f"    location ~ ^/re/(.+)$ {{ alias {root}/dir/$1; }}\n"
            f"    location /multi/ {{ index none.html second.html; }}\n"
            f"    location /noetag/ {{ etag off; alias {root}/; }}\n"
            f"    location /before/ {{ if_modified_since before; alias {root}/; }}\n"
            f"    location /imsoff/ {{ if_modified_since off; alias {root}/; }}\n"
            f"    location /one/ {{ max_ranges 1; alias {root}/; }}\n"
            f"    location /none/ {{ max_ranges 0; alias {root}/; }}\n"
            f"    location /typed/ {{ types {{ application/x-custom cst; }} "
            f"default_type text/x-default; alias {root}/; }}\n"
            f"    location /vars/ {{ return 200 \"$document_root|$request_filename|"
            f"$realpath_root\"; }}\n"
            f"}}\n")


def fetch(port, method, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    fields = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, fields, body


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """nginx and rampart with the same configuration over one document root."""
    reference_nginx.require()
    base = tmp_path_factory.mktemp("static")
    root = base / "www"
    make_root(root)
    nginx = reference_nginx.Nginx(base / "nginx")
    rampart = harness.Rampart(base / "rampart")
    nport, rport = harness.free_port(), harness.free_port()
    nginx.configure(http_block(nport, root))
    rampart.configure(http_block(rport, root))
    nginx.start()
    try:
        rampart.start()
        yield nginx, rampart, root
    finally:
        rampart.stop()
        nginx.stop()
    assert rampart.problems() == []


def same(pair, method, path, headers=None):
    """Sends one request to both; asserts the answers agree; returns rampart's."""
    nginx, rampart, _ = pair
    want = fetch(nginx.port, method, path, headers)
    got = fetch(rampart.port, method, path, headers)
    where = f"{method} {path} {headers or ''}"
    assert got[0] == want[0], where
    for name in COMPARED:
        w, g = want[1].get(name), got[1].get(name)
        if name == "location" and w:
            w = w.replace(f":{nginx.port}", ":PORT")
            g = g and g.replace(f":{rampart.port}", ":PORT")
        if name == "content-length" and want[0] >= 300 and want[0] != 304:
            continue  # nginx's error pages say "nginx", rampart's "rampart"
        if name == "content-type" and "multipart" in (w or ""):
            w, g = w.split("boundary=")[0], g and g.split("boundary=")[0]
        assert g == w, f"{where}: {name}"
    if want[0] in (200, 206) and "multipart" not in want[1].get("content-type", ""):
        assert got[2] == want[2], where
    return got


def test_a_file_under_root_has_nginx_fields_and_bytes(pair):
    status, fields, body = same(pair, "GET", "/openapi.json")
    assert status == 200 and fields["content-type"] == "application/json"
    assert body.startswith(b'{"openapi"')
    assert fields["etag"] == '"%x-%x"' % (1700000000, len(body))


def test_types_come_from_the_extension_any_case_else_default_type(pair):
    for path in ("/spec.yaml", "/style.CSS", "/noext", "/data.cst", "/index.html"):
        same(pair, "GET", path)


def test_a_types_block_and_default_type_in_a_location(pair):
    assert same(pair, "GET", "/typed/data.cst")[1]["content-type"] == "application/x-custom"
    assert same(pair, "GET", "/typed/spec.yaml")[1]["content-type"] == "text/x-default"


def test_index_is_an_internal_redirect_to_the_first_that_exists(pair):
    assert same(pair, "GET", "/")[2] == b"<h1>home</h1>\n"
    assert same(pair, "GET", "/dir/")[2] == b"<p>dir</p>\n"
    assert same(pair, "GET", "/multi/")[2] == b"<p>second</p>\n"


def test_a_directory_without_slash_is_a_301_with_the_slash_and_the_arguments(pair):
    status, fields, _ = same(pair, "GET", "/dir?x=1")
    assert status == 301 and fields["location"].endswith("/dir/?x=1")


def test_a_directory_without_index_is_403_and_a_missing_one_404(pair):
    assert same(pair, "GET", "/noindex/")[0] == 403
    assert same(pair, "GET", "/nothing/")[0] == 404
    assert same(pair, "GET", "/missing.html")[0] == 404
    assert same(pair, "GET", "/index.html/x")[0] == 404


def test_methods_other_than_get_and_head_on_a_file_are_405(pair):
    assert same(pair, "POST", "/index.html")[0] == 405
    assert same(pair, "DELETE", "/index.html")[0] == 405
    assert same(pair, "POST", "/missing.html")[0] == 404
    status, fields, body = same(pair, "HEAD", "/index.html")
    assert status == 200 and body == b"" and fields["content-length"] == "14"


def test_alias_replaces_the_location_prefix(pair):
    assert same(pair, "GET", "/alias/page.html")[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/alias/")[2] == b"<p>dir</p>\n"


def test_alias_with_captures_in_a_regex_location_is_the_whole_path(pair):
    assert same(pair, "GET", "/re/page.html")[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/re/nope.html")[0] == 404


def test_if_none_match_and_if_modified_since_answer_304(pair):
    etag = same(pair, "GET", "/index.html")[1]["etag"]
    lm = "Tue, 14 Nov 2023 22:13:20 GMT"  # the files' mtime
    assert same(pair, "GET", "/index.html", {"If-None-Match": etag})[0] == 304
    assert same(pair, "GET", "/index.html", {"If-None-Match": f'"x", W/{etag}'})[0] == 304
    assert same(pair, "GET", "/index.html", {"If-None-Match": '"other"'})[0] == 200
    assert same(pair, "GET", "/index.html", {"If-Modified-Since": lm})[0] == 304
    later = "Wed, 15 Nov 2023 00:00:00 GMT"
    assert same(pair, "GET", "/index.html", {"If-Modified-Since": later})[0] == 200
    assert same(pair, "GET", "/before/index.html", {"If-Modified-Since": later})[0] == 304
    assert same(pair, "GET", "/imsoff/index.html", {"If-Modified-Since": lm})[0] == 200
    assert same(pair, "GET", "/noetag/index.html", {"If-None-Match": etag})[0] == 200


def test_if_match_and_if_unmodified_since_answer_412(pair):
    etag = same(pair, "GET", "/index.html")[1]["etag"]
    assert same(pair, "GET", "/index.html", {"If-Match": '"other"'})[0] == 412
    assert same(pair, "GET", "/index.html", {"If-Match": etag})[0] == 200
    early = "Mon, 13 Nov 2023 00:00:00 GMT"
    assert same(pair, "GET", "/index.html", {"If-Unmodified-Since": early})[0] == 412


def test_a_single_range_is_206_with_content_range(pair):
    for r in ("bytes=0-3", "bytes=5-", "bytes=-4", "bytes=10-1000", "bytes=0-0"):
        status, _, _ = same(pair, "GET", "/digits.txt", {"Range": r})
        assert status == 206, r


def test_ranges_nginx_sends_whole_or_refuses(pair):
    assert same(pair, "GET", "/digits.txt", {"Range": "bytes=100-"})[0] == 416
    assert same(pair, "GET", "/digits.txt", {"Range": "bytes=x"})[0] == 416
    assert same(pair, "GET", "/digits.txt", {"Range": "items=0-1"})[0] == 200
    assert same(pair, "GET", "/empty.txt", {"Range": "bytes=0-"})[0] == 200
    assert same(pair, "GET", "/one/digits.txt", {"Range": "bytes=0-1,4-5"})[0] == 200
    assert same(pair, "GET", "/none/digits.txt", {"Range": "bytes=0-1"})[0] == 200


def test_if_range_keeps_the_range_only_for_the_current_file(pair):
    etag = same(pair, "GET", "/digits.txt")[1]["etag"]
    assert same(pair, "GET", "/digits.txt", {"Range": "bytes=0-1", "If-Range": etag})[0] == 206
    assert same(pair, "GET", "/digits.txt",
                {"Range": "bytes=0-1", "If-Range": '"old"'})[0] == 200
    lm = "Tue, 14 Nov 2023 22:13:20 GMT"
    assert same(pair, "GET", "/digits.txt", {"Range": "bytes=0-1", "If-Range": lm})[0] == 206


def test_several_ranges_are_multipart_byteranges(pair):
    status, fields, body = same(pair, "GET", "/digits.txt", {"Range": "bytes=0-1,4-5"})
    assert status == 206
    boundary = fields["content-type"].split("boundary=")[1]
    assert len(body) == int(fields["content-length"])
    assert body == (f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n"
                    f"Content-Range: bytes 0-1/21\r\n\r\n01"
                    f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n"
                    f"Content-Range: bytes 4-5/21\r\n\r\n45"
                    f"\r\n--{boundary}--\r\n").encode()


def test_document_root_request_filename_and_realpath_root(pair):
    _, _, root = pair
    _, _, body = same(pair, "GET", "/vars/x")
    assert body.decode() == f"{root}|{root}/vars/x|{os.path.realpath(root)}"


def test_a_large_file_is_byte_exact(pair):
    _, _, root = pair
    status, _, body = same(pair, "GET", "/big.bin")
    assert status == 200 and body == (root / "big.bin").read_bytes()
    status, _, body = same(pair, "GET", "/big.bin", {"Range": "bytes=1000000-2999999"})
    assert status == 206 and body == (root / "big.bin").read_bytes()[1000000:3000000]


def test_static_directives_refuse_bad_values(conf_dir):
    refuse = reference_nginx.assert_rampart_refuses
    refuse(conf_dir, "server { listen 127.0.0.1:1; root /a; root /b; }", 3,
           '"root": duplicate directive')
    refuse(conf_dir, "server { listen 127.0.0.1:1;\nlocation / { root /a; alias /b; } }", 4,
           '"alias": "root" directive was specified earlier')
    refuse(conf_dir, "etag maybe;", 3, '"etag": invalid value "maybe", it must be "on" or "off"')
    refuse(conf_dir, "if_modified_since later;", 3,
           '"if_modified_since": invalid value "later", it must be "off", "exact" or "before"')
    refuse(conf_dir, "max_ranges -1;", 3, '"max_ranges": invalid number "-1"')
    refuse(conf_dir, "sendfile yes;", 3,
           '"sendfile": invalid value "yes", it must be "on" or "off"')
    refuse(conf_dir, "tcp_nopush 2;", 3,
           '"tcp_nopush": invalid value "2", it must be "on" or "off"')
    refuse(conf_dir, "tcp_nodelay x;", 3,
           '"tcp_nodelay": invalid value "x", it must be "on" or "off"')
    refuse(conf_dir, "types {\ntext/html;\n}", 4,
           '"text/html": a "types" entry needs a MIME type and extensions')
    refuse(conf_dir, "types {\nhtml text;\n}", 4,
           '"html": is not a MIME type (TYPE/SUBTYPE) in "types"')
    refuse(conf_dir, "index;", 3, '"index": takes 1 or more arguments, got 0')


def test_a_large_file_is_byte_exact_over_tls_and_http2(rampart, certs, free_port, tmp_path):
    root = tmp_path / "www"
    make_root(root)
    want = hashlib.sha256((root / "big.bin").read_bytes()).hexdigest()
    h2c, tls = free_port(), free_port()
    rampart.configure(f"server {{ listen 127.0.0.1:{h2c} http2; root {root}; }}\n"
                      f"server {{ listen 127.0.0.1:{tls} ssl http2; server_name a.test;\n"
                      f"    {certs.directives('a.test')} root {root}; }}\n")
    rampart.start()
    runs = {
        "h2c": ["--http2-prior-knowledge", f"http://127.0.0.1:{h2c}/big.bin"],
        "tls-h1": ["--http1.1", "--cacert", str(certs.ca), "--resolve",
                   f"a.test:{tls}:127.0.0.1", f"https://a.test:{tls}/big.bin"],
        "tls-h2": ["--http2", "--cacert", str(certs.ca), "--resolve",
                   f"a.test:{tls}:127.0.0.1", f"https://a.test:{tls}/big.bin"],
    }
    for name, args in runs.items():
        out = tmp_path / f"{name}.bin"
        p = subprocess.run(["curl", "-sS", "-o", str(out), "-w", "%{http_version} %{http_code}",
                            *args], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (name, p.stderr)
        version, code = p.stdout.split()
        assert code == "200" and version == ("1.1" if name == "tls-h1" else "2"), name
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want, name


def test_a_client_that_does_not_read_stalls_no_other_client(rampart, port, tmp_path):
    root = tmp_path / "www"
    make_root(root)
    rampart.configure(f"server {{ listen 127.0.0.1:{port}; root {root}; }}\n", workers=1)
    rampart.start()
    stalled = []
    for _ in range(4):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(s)
    s.recv(1)  # the worker started answering the last of them
    try:
        start = time.monotonic()
        for _ in range(20):
            status, _, body = fetch(port, "GET", "/index.html")
            assert status == 200 and body == b"<h1>home</h1>\n"
        assert time.monotonic() - start < 10
    finally:
        for s in stalled:
            s.close()


def test_gzip_compresses_a_file_through_the_filters(rampart, port, tmp_path):
    root = tmp_path / "www"
    make_root(root)
    (root / "api.json").write_text('{"paths": {}}' * 2000)
    rampart.configure(f"include {MIME};\n"
                      f"server {{ listen 127.0.0.1:{port}; root {root};\n"
                      f"    gzip on; gzip_types application/json; }}\n")
    rampart.start()
    status, fields, body = fetch(port, "GET", "/api.json", {"Accept-Encoding": "gzip"})
    assert status == 200 and fields["content-encoding"] == "gzip"
    assert gzip.decompress(body) == (root / "api.json").read_bytes()
    assert len(body) < 2000


def test_limit_rate_paces_a_file(rampart, port, tmp_path):
    root = tmp_path / "www"
    make_root(root)
    (root / "paced.bin").write_bytes(os.urandom(96 * 1024))
    rampart.configure(f"server {{ listen 127.0.0.1:{port}; root {root}; limit_rate 32k; }}\n")
    rampart.start()
    start = time.monotonic()
    status, _, body = fetch(port, "GET", "/paced.bin")
    took = time.monotonic() - start
    assert status == 200 and body == (root / "paced.bin").read_bytes()
    assert took >= 1.5  # 96 KB at 32 KB/s: about 3 s (the first second's worth goes at once)


def raw_get(port, target):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_no_uri_reaches_a_file_outside_the_root_and_a_nul_is_refused(rampart, port, tmp_path):
    root = tmp_path / "www"
    make_root(root)
    (tmp_path / "secret.txt").write_text("SECRET\n")
    rampart.configure(f"server {{ listen 127.0.0.1:{port}; root {root}; }}\n")
    rampart.start()
    assert raw_get(port, b"/dir/../index.html") == (200, b"<h1>home</h1>\n")
    for target in (b"/../secret.txt", b"/%2e%2e/secret.txt", b"/dir/..%2f..%2fsecret.txt",
                   b"/dir/%2E%2E/%2e%2E/secret.txt", b"/./../../secret.txt"):
        status, body = raw_get(port, target)
        assert status in (400, 404) and b"SECRET" not in body, target
    assert raw_get(port, b"/index.html%00.txt")[0] == 400


def test_include_mime_types_beside_the_configuration_as_shipped(rampart, port, tmp_path):
    root = tmp_path / "www"
    make_root(root)
    for name in ("font.woff2", "app.wasm", "logo.svg", "feed.atom", "clip.mp4"):
        (root / name).write_bytes(b"x")
    rampart.prefix.mkdir(parents=True, exist_ok=True)
    (rampart.prefix / "mime.types").write_bytes(MIME.read_bytes())
    rampart.configure(f"include mime.types;\n"
                      f"server {{ listen 127.0.0.1:{port}; root {root}; }}\n")
    rampart.start()
    want = {"/font.woff2": "font/woff2", "/app.wasm": "application/wasm",
            "/logo.svg": "image/svg+xml", "/feed.atom": "application/atom+xml",
            "/clip.mp4": "video/mp4", "/openapi.json": "application/json",
            "/spec.yaml": "text/yaml", "/noext": "text/plain"}
    for path, ctype in want.items():
        status, fields, _ = fetch(port, "GET", path)
        assert status == 200 and fields["content-type"] == ctype, path


def test_an_http2_client_that_does_not_read_stalls_no_other_client(rampart, port, free_port,
                                                                   tmp_path):
    import h2.config
    import h2.connection
    root = tmp_path / "www"
    make_root(root)
    h2port = free_port()
    rampart.configure(f"server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{h2port} http2;\n"
                      f"    root {root}; }}\n", workers=1)
    rampart.start()
    s = socket.create_connection(("127.0.0.1", h2port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    for sid in (1, 3, 5):  # three streams of the large file that nobody reads
        conn.send_headers(sid, [(":method", "GET"), (":path", "/big.bin"), (":scheme", "http"),
                                (":authority", "x")], end_stream=True)
    s.sendall(conn.data_to_send())
    s.recv(1)  # the worker answers
    try:
        for _ in range(20):
            status, _, body = fetch(port, "GET", "/index.html")
            assert status == 200 and body == b"<h1>home</h1>\n"
    finally:
        s.close()
