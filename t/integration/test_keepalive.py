"""Keep-alive limits: keepalive_timeout and keepalive_requests end a
connection, and the last response says so with "Connection: close"."""

import socket
import time

from harness import split_responses


def serve(rampart, port, http_lines):
    rampart.configure(f'{http_lines}\nserver {{ listen 127.0.0.1:{port}; return 200 "$uri"; }}')
    rampart.start()


def exchange(s, path):
    """Sends one request on s and reads exactly one response."""
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    data = b""
    while True:
        try:
            return split_responses(data)[0]
        except (ValueError, IndexError):
            chunk = s.recv(65536)
            assert chunk, f"connection closed before a full response: {data!r}"
            data += chunk


def test_keepalive_timeout_zero_announces_close_and_closes(rampart, port):
    serve(rampart, port, "keepalive_timeout 0;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        status, headers, body = exchange(s, "/once")
        assert (status, body) == ("HTTP/1.1 200 OK", b"/once")
        assert headers.get("connection") == "close"
        assert s.recv(4096) == b""


def test_keepalive_requests_limit_closes_after_the_last_one(rampart, port):
    serve(rampart, port, "keepalive_requests 3;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        answers = [exchange(s, f"/{i}") for i in range(1, 4)]
        assert [a[2] for a in answers] == [b"/1", b"/2", b"/3"]
        assert [a[1].get("connection") for a in answers] == [None, None, "close"]
        assert s.recv(4096) == b""


def test_idle_connection_is_closed_after_keepalive_timeout(rampart, port):
    serve(rampart, port, "keepalive_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        exchange(s, "/")
        idle_from = time.monotonic()
        assert s.recv(4096) == b""
        idle = time.monotonic() - idle_from
    assert 0.8 < idle < 2.0


def test_silent_connection_is_closed_after_client_header_timeout(rampart, port):
    serve(rampart, port, "client_header_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")  # the head never ends
        started = time.monotonic()
        assert s.recv(4096) == b""
        waited = time.monotonic() - started
    assert 0.8 < waited < 2.0
    rampart.wait_log(r"client timed out sending the request head")
