"""proxy_request_buffering, as nginx's default: the client's whole body is read
(client_body_buffer_size in memory, then a temporary file) before an upstream is
chosen and connected, so a slow uploader holds no upstream connection; a chunked
body then goes upstream with a Content-Length. Retries resend a buffered body
whatever its size. proxy_request_buffering off keeps streaming, and
proxy_http_version 1.0 speaks HTTP/1.0 upstream (Connection: close, a buffered
body with its length)."""

import hashlib
import json
import socket
import time

from h2client import h2_request
from harness import request, wait_for


def serve(rampart, port, servers, location="", upstream="", listen=""):
    lines = "".join(f"server {b.addr}; " for b in servers)
    rampart.configure(f"upstream be {{ {lines}{upstream} }}\n"
                      f"server {{\n listen 127.0.0.1:{port}{listen};\n"
                      f" location / {{ proxy_pass http://be; {location} }}\n}}")
    rampart.start()
    return rampart


def body_bytes(n):
    return bytes((i * 7 + 3) % 251 for i in range(n))


def read_response(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def trickle_chunked(port, body, pieces, pause, before_last=None):
    """Sends a chunked POST in pieces, `pause` seconds apart; calls before_last() just
    before the last piece. Returns the raw response."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"POST /up?echo=1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    step = (len(body) + pieces - 1) // pieces
    parts = [body[i:i + step] for i in range(0, len(body), step)]
    for i, part in enumerate(parts):
        if i == len(parts) - 1 and before_last:
            before_last()
        s.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        time.sleep(pause)
    s.sendall(b"0\r\n\r\n")
    data = read_response(s)
    s.close()
    return data


def echo_of(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    if b"transfer-encoding: chunked" in head.lower():
        out = b""
        while True:
            line, _, body = body.partition(b"\r\n")
            n = int(line, 16)
            if n == 0:
                break
            out += body[:n]
            body = body[n + 2:]
        body = out
    return json.loads(body)


def field(echo, name):
    vals = [v for n, v in echo["headers"] if n.lower() == name.lower()]
    return vals[-1] if vals else None


def test_trickled_body_reaches_the_upstream_whole_with_a_length(rampart, port, backend):
    serve(rampart, port, [backend])
    body = body_bytes(3000)  # about 1 KB/s: 6 pieces half a second apart

    def nothing_upstream_yet():
        # the client is still sending: no upstream connection was made for it
        assert backend.stats()["connections_accepted"] == 0

    echo = echo_of(trickle_chunked(port, body, 6, 0.5, before_last=nothing_upstream_yet))
    assert echo["body_length"] == 3000
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert field(echo, "Content-Length") == "3000"  # chunked became a length (as nginx)
    assert field(echo, "Transfer-Encoding") is None
    assert backend.stats()["connections_accepted"] == 1


def test_request_buffering_off_streams_the_body(rampart, port, backend):
    serve(rampart, port, [backend], location="proxy_request_buffering off;")
    body = body_bytes(3000)

    def upstream_already_connected():
        wait_for(lambda: backend.stats()["connections_accepted"] == 1, timeout=10)

    echo = echo_of(trickle_chunked(port, body, 4, 0.2, before_last=upstream_already_connected))
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert field(echo, "Transfer-Encoding") == "chunked"


def test_large_body_spills_to_a_temporary_file_byte_exact(rampart, port, backend):
    serve(rampart, port, [backend], location="client_body_buffer_size 1k;")
    body = body_bytes(300 * 1024)
    r = request(port, "/up?echo=1", method="PUT", body=body, timeout=15)
    echo = json.loads(r.body)
    assert echo["body_length"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    rampart.wait_log("a client request body is buffered to a temporary file")
    assert list((rampart.prefix / "client_body_temp").iterdir()) == []


def test_client_body_in_file_only_keeps_a_small_body_in_a_file(rampart, port, backend):
    serve(rampart, port, [backend], location="client_body_in_file_only on;")
    r = request(port, "/up?echo=1", method="POST", body=b"tiny")
    assert json.loads(r.body)["body_length"] == 4
    rampart.wait_log("a client request body is buffered to a temporary file")


def test_next_upstream_resends_a_buffered_body(rampart, port, backend_factory):
    slow = backend_factory(name="slow", delay=5)
    good = backend_factory(name="good")
    # the first server does not answer in time; the second gets the same 200 KB body
    # (beyond what a streamed body keeps for another try)
    serve(rampart, port, [slow, good],
          location="proxy_read_timeout 1s; proxy_next_upstream error timeout;")
    body = body_bytes(200 * 1024)
    r = request(port, "/up?echo=1", method="PUT", body=body, timeout=15)
    assert r.status == 200
    echo = json.loads(r.body)
    assert r.headers["X-Backend-Name"] == "good"
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    wait_for(lambda: slow.stats()["requests"] == 1)


def test_http_version_1_0_upstream(rampart, port, backend):
    serve(rampart, port, [backend], location="proxy_http_version 1.0;",
          upstream="keepalive 4;")
    echo = echo_of(trickle_chunked(port, b"x" * 100, 1, 0))
    assert echo["version"] == "HTTP/1.0"
    assert field(echo, "Connection") == "close"
    assert field(echo, "Content-Length") == "100"
    r = request(port, "/?echo=1")
    assert r.status == 200
    assert backend.stats()["connections_accepted"] == 2  # no keep-alive over HTTP/1.0


def test_client_body_timeout_while_buffering_answers_408_without_an_upstream(rampart, port,
                                                                            backend):
    serve(rampart, port, [backend], location="client_body_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
                  b"0123456789")
        reply = read_response(s)
    assert reply.startswith(b"HTTP/1.1 408 ")
    rampart.wait_log(r"client timed out \(client_body_timeout\)")
    assert backend.stats()["connections_accepted"] == 0  # never connected for it


def test_http2_client_body_goes_upstream_with_its_length(rampart, port, backend):
    serve(rampart, port, [backend], listen=" http2")
    body = body_bytes(100 * 1024)  # no content-length from the client: buffered, then framed
    resp = h2_request(port, "POST", "/up?echo=1", body=body)
    assert resp.status == 200
    echo = json.loads(bytes(resp.body))
    assert field(echo, "Content-Length") == str(len(body))
    assert field(echo, "Transfer-Encoding") is None
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
