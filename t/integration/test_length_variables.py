"""$request_length, $bytes_sent and $connection_time, as nginx: the bytes of a request
(head and body, framing included) as they came, the bytes that went back to the
client for it (head included), and the seconds since the connection was accepted.
The counts are checked against what the client sent and received, and compared with
what nginx logs for the same exchange."""

import re
import socket
import subprocess

import harness
import reference_nginx
from harness import wait_for

FORMAT = "log_format lens '$request_length $bytes_sent $body_bytes_sent $connection_time';"


def http(port, log, backend):
    return f"""
        {FORMAT}
        server {{
            listen 127.0.0.1:{port};
            access_log {log} lens;
            location /r {{ return 200 "hello"; }}
            location /p {{ proxy_pass http://{backend.addr}; }}
        }}"""


def exchange(port, data):
    """Sends data, reads until the server closes; returns the bytes received."""
    return harness.raw_exchange(port, data)


def lines(path, n):
    wait_for(lambda: path.exists() and len(path.read_text().splitlines()) >= n,
             what=f"{n} access log lines")
    return [line.split() for line in path.read_text().splitlines()]


GET = b"GET /r HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nConnection: close\r\n\r\n"
POST = (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\n"
        b"hello world")
CHUNKED = (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")


def check_counts(port, log):
    """Sends GET, POST and chunked POST; asserts the logged counts are the client's."""
    got = [exchange(port, req) for req in (GET, POST, CHUNKED)]
    logged = lines(log, 3)
    for req, resp, line in zip((GET, POST, CHUNKED), got, logged):
        request_length, bytes_sent, body_bytes_sent, connection_time = line
        assert int(request_length) == len(req), (req, line)
        assert int(bytes_sent) == len(resp), (resp, line)
        assert int(body_bytes_sent) == len(resp.partition(b"\r\n\r\n")[2])
        assert re.fullmatch(r"\d+\.\d{3}", connection_time)


def test_counts_are_the_bytes_the_client_sent_and_received(rampart, port, backend):
    log = rampart.prefix / "logs" / "lens.log"
    rampart.configure(http(port, log, backend))
    rampart.start()
    check_counts(port, log)


def test_nginx_logs_the_same_counts_for_the_same_exchanges(tmp_path, backend):
    reference_nginx.require()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nport = harness.free_port()
    log = tmp_path / "nginx" / "logs" / "lens.log"
    nginx.configure(http(nport, log, backend))
    nginx.start()
    try:
        check_counts(nport, log)
    finally:
        nginx.stop()


def test_each_request_of_a_connection_counts_its_own_bytes(rampart, port, backend):
    log = rampart.prefix / "logs" / "lens.log"
    rampart.configure(http(port, log, backend))
    rampart.start()
    first = b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"GET /r?longer-query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(first)
        got = b""
        while b"hello" not in got:
            got += s.recv(65536)
        wait_for(lambda: log.exists() and log.read_text(), what="the first line")
        s.sendall(second)
        rest = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    (l1, l2) = lines(log, 2)
    assert (int(l1[0]), int(l1[1])) == (len(first), len(got))
    assert (int(l2[0]), int(l2[1])) == (len(second), len(rest))
    # the connection's age only grows; the second request came after the first's line
    assert float(l2[3]) >= float(l1[3])


def nghttp(url, *args):
    out = subprocess.run(["nghttp", "-v", "--no-dep", *args, url], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout


def frame_sizes(trace, direction):
    """The payload lengths of stream 1's HEADERS and DATA frames nghttp sent or received."""
    return [int(m.group(1)) for m in re.finditer(
        direction + r" (?:HEADERS|DATA) frame <length=(\d+), flags=0x[0-9a-f]+, stream_id=1>",
        trace)]


def test_http2_counts_the_streams_frames(rampart, port, backend, tmp_path):
    """HTTP/2, as nginx 1.22 counts (checked with the same client): $request_length is
    the request's HEADERS payload (as compressed) plus its body, and $bytes_sent the
    response's HEADERS and DATA frames, their 9-byte headers included."""
    log = rampart.prefix / "logs" / "lens.log"
    rampart.configure(http(port, log, backend).replace(f"listen 127.0.0.1:{port};",
                                                        f"listen 127.0.0.1:{port}; http2 on;"))
    rampart.start()
    body = tmp_path / "body"
    body.write_bytes(b"x" * 1000)
    traces = [nghttp(f"http://127.0.0.1:{port}/r"),
              nghttp(f"http://127.0.0.1:{port}/p", "-d", str(body))]
    logged = lines(log, 2)
    for trace, line in zip(traces, logged):
        sent, received = frame_sizes(trace, "send"), frame_sizes(trace, "recv")
        assert sent and received, trace
        assert int(line[0]) == sum(sent), (line, trace)
        assert int(line[1]) == sum(received) + 9 * len(received), (line, trace)
    assert int(logged[0][2]) == 5


def test_nginx_counts_http2_streams_the_same_way(tmp_path, backend):
    reference_nginx.require()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nport = harness.free_port()
    log = tmp_path / "nginx" / "logs" / "lens.log"
    nginx.configure(http(nport, log, backend).replace(f"listen 127.0.0.1:{nport};",
                                                      f"listen 127.0.0.1:{nport} http2;"))
    nginx.start()
    try:
        body = tmp_path / "body"
        body.write_bytes(b"x" * 1000)
        traces = [nghttp(f"http://127.0.0.1:{nport}/r"),
                  nghttp(f"http://127.0.0.1:{nport}/p", "-d", str(body))]
        for trace, line in zip(traces, lines(log, 2)):
            sent, received = frame_sizes(trace, "send"), frame_sizes(trace, "recv")
            assert int(line[0]) == sum(sent), (line, trace)
            assert int(line[1]) == sum(received) + 9 * len(received), (line, trace)
    finally:
        nginx.stop()
