"""Directives that bound what one client may cost: header buffers and timeouts
for the head, the body and the response, each seen over a real socket."""

import socket
import time

from harness import get, raw_exchange


def serve(rampart, port, http_lines="", body='"$uri"'):
    rampart.configure(f"{http_lines}\nserver {{ listen 127.0.0.1:{port}; return 200 {body}; }}")
    rampart.start()


def status_of(data):
    return int(data.split(b" ", 2)[1])


def test_client_header_timeout_is_a_deadline_for_the_whole_head_not_per_read(rampart, port):
    serve(rampart, port, "client_header_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        started = time.monotonic()
        closed_at = None
        # one byte every 0.2 s: each read resets nothing, the deadline still falls at 1 s
        for byte in b"GET / HTTP/1.1\r\nHost: a\r\nX-Trickle: " + b"a" * 40:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            s.settimeout(0.2)
            try:
                if s.recv(4096) == b"":
                    closed_at = time.monotonic()
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                # closed with our unread bytes in its buffer: the kernel answers with a reset
                closed_at = time.monotonic()
                break
        assert closed_at is not None, "a trickling client kept its connection past the deadline"
        assert 0.8 < closed_at - started < 2.0


def test_large_client_header_buffers_size_limits_one_header_line_with_431(rampart, port):
    serve(rampart, port, "large_client_header_buffers 4 1k;")
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 1100 + b"\r\n\r\n"
    assert status_of(raw_exchange(port, head)) == 431


def test_large_client_header_buffers_number_times_size_limits_the_whole_head(rampart, port):
    serve(rampart, port, "large_client_header_buffers 2 1k;")
    lines = b"".join(b"X-%d: " % i + b"v" * 800 + b"\r\n" for i in range(3))  # each fits, all do not
    assert status_of(raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n" + lines + b"\r\n")) == 431
    ok = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-1: " + b"v" * 800 + b"\r\n\r\n"
    assert status_of(raw_exchange(port, ok)) == 200


def test_client_header_buffer_size_is_a_starting_size_not_a_limit(rampart, port):
    serve(rampart, port, "client_header_buffer_size 256;")
    r = get(port, "/fits", headers={"X-Long": "v" * 4000})
    assert r.status == 200
    assert r.text == "/fits"


def test_client_body_timeout_closes_a_connection_whose_body_stops_arriving(rampart, port):
    serve(rampart, port, "client_body_timeout 1s;")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        started = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        waited = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 200")  # answered at once; the rest of the body never came
    assert 0.8 < waited < 2.5
    rampart.wait_log(r"client timed out \(client_body_timeout\)")


def test_send_timeout_closes_a_connection_whose_client_stops_reading(rampart, port):
    big = "x" * (2 << 20)
    rampart.configure(f"send_timeout 1s;\nserver {{ listen 127.0.0.1:{port} sndbuf=16k; "
                      f'return 200 "{big}"; }}')
    rampart.start()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        rampart.wait_log(r"client timed out \(send_timeout\)", timeout=5)
        received = 0
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < len(big)  # the connection ended before the response could


def test_limit_rate_paces_the_response_body(rampart, port):
    body = "r" * 6000
    serve(rampart, port, "limit_rate 2k;", body=f'"{body}"')
    started = time.monotonic()
    r = get(port)
    took = time.monotonic() - started
    assert r.text == body
    assert took > 1.5  # about 6000 bytes at 2048 a second, after a one-second allowance


def test_limit_rate_paces_each_http2_stream(rampart, port):
    from h2client import H2Client
    body = "s" * 6000
    rampart.configure(f'server {{ listen 127.0.0.1:{port} http2; limit_rate 2k; '
                      f'return 200 "{body}"; }}')
    rampart.start()
    started = time.monotonic()
    with H2Client(port) as c:
        r = c.request(path="/")
    took = time.monotonic() - started
    assert r.status == 200 and bytes(r.body) == body.encode()
    assert took > 1.5  # a per-request limit, now over HTTP/2 too (nginx's rule)


def test_limit_rate_after_sends_the_first_bytes_at_full_speed(rampart, port):
    body = "a" * 6000
    serve(rampart, port, "limit_rate 1k; limit_rate_after 5500;", body=f'"{body}"')
    started = time.monotonic()
    r = get(port)
    took = time.monotonic() - started
    assert r.text == body
    # 500 bytes past limit_rate_after fit in the first second's allowance
    assert took < 3  # without limit_rate_after: about 5 s


def test_set_limit_rate_changes_one_requests_pace(rampart, port):
    body = "v" * 6000
    rampart.configure(f'server {{ listen 127.0.0.1:{port};\n'
                      f'  location /slow {{ set $limit_rate 2k; return 200 "{body}"; }}\n'
                      f'  location /rate {{ set $limit_rate 3k; return 200 "$limit_rate"; }}\n'
                      f'  location / {{ return 200 "{body}"; }}\n}}')
    rampart.start()
    started = time.monotonic()
    assert get(port, "/slow").text == body
    assert time.monotonic() - started > 1.5
    assert get(port, "/rate").text == "3072"
