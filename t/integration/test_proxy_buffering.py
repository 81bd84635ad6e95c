"""proxy_buffering, as nginx's default: the upstream's response is read as fast as
the upstream sends it (memory buffers, then a temporary file), so the upstream
connection is released while a slow client still reads; beyond the bound the
upstream waits for the client; X-Accel-Buffering: no turns it off per response;
proxy_buffering off keeps streaming (test_proxy.py's streaming tests run with it).

A slow client here is a socket with a small SO_RCVBUF that reads a little and
then stops: the test never reads a whole 10 MB at 1 KB/s, it checks what the
upstream side did meanwhile, then closes."""

import hashlib
import os
import socket
import subprocess
import time

from backend import pattern_sha256
from h2client import h2_request
import harness
from harness import wait_for

MB = 1 << 20


def serve(rampart, port, backend, location="", upstream="", http="", listen=""):
    rampart.configure(f"{http}\n"
                      f"upstream be {{ server {backend.addr}; {upstream} }}\n"
                      f"server {{\n listen 127.0.0.1:{port}{listen};\n"
                      f" location / {{ proxy_pass http://be; {location} }}\n}}")
    rampart.start()
    return rampart


def slow_client(port, target):
    """A client that sends one GET and then reads only what it is asked to."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.settimeout(10)
    s.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return s


def read_head(s):
    """Reads up to the end of the head; returns (head text, body bytes already read)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(1024)
        assert chunk, "connection closed before the head"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def header(head, name):
    for line in head.split("\r\n")[1:]:
        n, _, v = line.partition(":")
        if n.strip().lower() == name.lower():
            return v.strip()
    return None


def read_rest(s, have, total):
    """Reads the rest of a Content-Length body quickly; returns its sha256."""
    h = hashlib.sha256(have)
    n = len(have)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    while n < total:
        chunk = s.recv(65536)
        assert chunk, f"connection closed after {n} of {total} bytes"
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest()


def test_slow_client_does_not_hold_the_upstream_connection(rampart, port, backend):
    # no keepalive: the upstream connection closes once rampart has the whole response
    serve(rampart, port, backend)
    s = slow_client(port, f"/big?size={10 * MB}")
    try:
        head, _ = read_head(s)
        assert " 200 " in head.split("\r\n")[0]
        s.recv(1024)  # the client reads a little, and then no more
        # the whole 10 MB went into rampart's buffers and temporary file: the upstream
        # connection is gone although the client has read almost none of it (a wide
        # margin for ASan: on an idle machine it is well under a second)
        wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=10,
                 what="the upstream connection released")
        assert backend.stats()["requests"] == 1
    finally:
        s.close()
    rampart.wait_log("buffered to a temporary file")


def test_released_connection_goes_back_to_the_keepalive_pool(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 4;")
    s = slow_client(port, f"/big?size={10 * MB}")
    try:
        head, _ = read_head(s)
        first = header(head, "X-Backend-Connection")
        wait_for(lambda: backend.stats()["requests"] == 1)
        # once the response is read whole the connection is idle in the pool: the next
        # request goes over it while the first client still has nearly all to read
        def reused():
            s2 = socket.create_connection(("127.0.0.1", port), timeout=10)
            s2.sendall(b"GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            h, _ = read_head(s2)
            s2.close()
            return header(h, "X-Backend-Connection") == first
        wait_for(reused, timeout=10, what="the second request on the first's connection")
    finally:
        s.close()


def test_buffered_and_spilled_response_is_byte_exact(rampart, port, backend):
    size = 3 * MB + 17
    serve(rampart, port, backend)
    s = slow_client(port, f"/big?size={size}&chunked=1")
    try:
        head, rest = read_head(s)
        wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=10)
        # the client now reads it all: memory first, then the temporary file
        body = b""
        data = rest
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        while not data.endswith(b"0\r\n\r\n") or len(data) < size:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
        # undo the chunked framing of rampart's answer
        while True:
            line, _, data = data.partition(b"\r\n")
            n = int(line, 16)
            if n == 0:
                break
            body += data[:n]
            data = data[n + 2:]
        assert len(body) == size
        assert hashlib.sha256(body).hexdigest() == pattern_sha256(size)
    finally:
        s.close()


def test_temporary_files_leave_nothing_on_disk(rampart, port, backend):
    serve(rampart, port, backend)
    s = slow_client(port, f"/big?size={4 * MB}")
    try:
        read_head(s)
        wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=10)
        temp = rampart.prefix / "proxy_temp"
        assert temp.is_dir()
        assert os.listdir(temp) == []  # the file was unlinked as soon as it was opened
    finally:
        s.close()


def test_max_temp_file_size_zero_waits_for_the_client(rampart, port, backend):
    size = 10 * MB  # well beyond what the sockets' buffers hold on the way
    serve(rampart, port, backend, location="proxy_max_temp_file_size 0;")
    s = slow_client(port, f"/big?size={size}")
    try:
        head, rest = read_head(s)
        wait_for(lambda: backend.stats()["requests"] == 1)
        time.sleep(1)  # what buffering without a file would have done by now
        assert backend.stats()["open_connections"] == 1  # the upstream waits
        assert read_rest(s, rest, size) == pattern_sha256(size)
    finally:
        s.close()
    assert "temporary file" not in rampart.log_text()


def test_x_accel_buffering_no_streams_that_response(rampart, port, backend):
    serve(rampart, port, backend)
    s = slow_client(port, f"/big?size={10 * MB}&header=X-Accel-Buffering:no")
    try:
        head, _ = read_head(s)
        assert header(head, "X-Accel-Buffering") is None  # meant for the proxy (as nginx)
        wait_for(lambda: backend.stats()["requests"] == 1)
        time.sleep(1)  # a buffered response would have been read whole by now
        assert backend.stats()["open_connections"] == 1
    finally:
        s.close()
    assert "temporary file" not in rampart.log_text()


def test_x_accel_buffering_yes_buffers_despite_proxy_buffering_off(rampart, port, backend):
    serve(rampart, port, backend, location="proxy_buffering off;")
    s = slow_client(port, f"/big?size={10 * MB}&header=X-Accel-Buffering:yes")
    try:
        read_head(s)
        wait_for(lambda: backend.stats()["open_connections"] == 0, timeout=10,
                 what="the upstream connection released")
    finally:
        s.close()


def test_proxy_buffering_off_streams(rampart, port, backend):
    serve(rampart, port, backend, location="proxy_buffering off;")
    s = slow_client(port, f"/big?size={10 * MB}")
    try:
        read_head(s)
        wait_for(lambda: backend.stats()["requests"] == 1)
        time.sleep(1)
        assert backend.stats()["open_connections"] == 1
    finally:
        s.close()


def test_http2_client_gets_a_buffered_response_whole(rampart, port, backend):
    size = 2 * MB + 5
    serve(rampart, port, backend, listen=" http2")
    # the stream's flow-control window holds the output back: the response is buffered
    resp = h2_request(port, path=f"/big?size={size}")
    assert resp.status == 200
    assert len(resp.body) == size
    assert hashlib.sha256(bytes(resp.body)).hexdigest() == pattern_sha256(size)


def test_small_response_with_a_fast_client_is_unchanged(rampart, port, backend):
    serve(rampart, port, backend, upstream="keepalive 2;")
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /?size=1000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        assert len(data.partition(b"\r\n\r\n")[2]) == 1000
    assert backend.stats()["connections_accepted"] == 1
    assert "temporary file" not in rampart.log_text()


def test_bad_buffering_values_are_refused_with_file_and_line(rampart, port, backend):
    cases = [
        ("proxy_buffers 1 4k;", "invalid number of buffers"),
        ("proxy_buffers 8 0;", "invalid buffer size"),
        ("proxy_buffering maybe;", "proxy_buffering"),
        ("proxy_http_version 2.0;", "invalid value \"2.0\""),
        ("proxy_temp_path /tmp/x 3;", "invalid level"),
        ("proxy_busy_buffers_size 1m;", "proxy_busy_buffers_size"),
        ("proxy_max_temp_file_size 100;", "proxy_max_temp_file_size"),
        ("client_body_in_file_only sometimes;", "invalid value"),
        ("client_body_buffer_size lots;", "client_body_buffer_size"),
    ]
    for directive, words in cases:
        rampart.configure(f"upstream be {{ server {backend.addr}; }}\n"
                          f"server {{\n listen 127.0.0.1:{port};\n"
                          f" location / {{\n proxy_pass http://be;\n {directive}\n }}\n}}")
        p = subprocess.run([str(harness.BIN), "-t", "-p", str(rampart.prefix), "-c",
                            "rampart.conf"], capture_output=True, text=True, timeout=10)
        out = p.stdout + p.stderr
        assert p.returncode != 0, directive
        assert words in out, (directive, out)
        assert "rampart.conf:" in out, (directive, out)
