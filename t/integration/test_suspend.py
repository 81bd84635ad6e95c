"""
Requests that wait: a phase handler that suspends (fault_delay, which returns
RP_AGAIN and is resumed by a timer of the request), fault_abort, and every way
a suspended request can end before it resumes — the client closes, an HTTP/2
stream is reset, the worker reloads, stops gracefully or at once. A request that
ends while suspended must have its timer cancelled by its cleanups: a timer left
behind would fire on freed memory (a crash the harness reports, or an
AddressSanitizer error in CI's sanitizer run).

Waits are for events (log lines, bytes, ports); the only time bounds are lower
bounds (a delay did delay) or the delay itself as a generous ceiling.
"""

import signal
import socket
import time

import h2.config
import h2.connection
import h2.events

from harness import get, run, wait_for

ACCESS = "log_format t '$status $request_uri';\naccess_log logs/access.log t;\n"


def access_lines(rampart):
    try:
        return (rampart.prefix / "logs" / "access.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def conf(port, backend_port, location_body):
    return (ACCESS +
            f"server {{\n    listen 127.0.0.1:{port};\n"
            f"    location / {{\n{location_body}\n"
            f"        proxy_pass http://127.0.0.1:{backend_port};\n    }}\n}}\n")


def backend_requests(backend):
    return backend.stats()["requests"]


def open_request(port, path):
    """Sends a request and returns the socket, response not yet read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_fault_delay_suspends_the_request_then_proxies_it(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay 400ms;"))
    rampart.start()
    started = time.monotonic()
    r = get(port, "/d")
    took = time.monotonic() - started
    assert r.status == 200
    assert took >= 0.4
    assert "fault injection: request delayed 400ms" in rampart.log_text()
    assert backend_requests(backend) == 1


def test_a_suspended_request_leaves_the_worker_free_for_others(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay header=x-delay max=20s;"))
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Delay: 5000\r\n\r\n")
        rampart.wait_log(r"request delayed 5000ms")
        # with one worker, a request that waits must not hold up this one
        assert get(port, "/fast").status == 200
    finally:
        s.close()


def test_fault_abort_answers_without_reaching_the_backend(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_abort 503;"))
    rampart.start()
    r = get(port, "/a")
    assert r.status == 503
    assert backend_requests(backend) == 0
    assert "fault injection: request aborted with 503" in rampart.log_text()


def test_header_controlled_faults_touch_only_requests_that_ask(rampart, port, backend):
    rampart.configure(conf(port, backend.port,
                           "fault_delay header=x-fault-delay max=2s;\n"
                           "fault_abort header=x-fault-abort;"))
    rampart.start()
    assert get(port, "/plain").status == 200
    assert get(port, "/x", headers={"X-Fault-Abort": "418"}).status == 418
    assert get(port, "/x", headers={"X-Fault-Abort": "99"}).status == 200  # not a status
    started = time.monotonic()
    assert get(port, "/x", headers={"X-Fault-Delay": "300"}).status == 200
    assert time.monotonic() - started >= 0.3
    # the header asks for more than max: capped
    r = get(port, "/x", headers={"X-Fault-Delay": "60s"})
    assert r.status == 200
    assert "request delayed 2000ms" in rampart.log_text()
    assert backend_requests(backend) == 4


def test_percent_zero_never_injects(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_abort 500 percent=0;"))
    rampart.start()
    for _ in range(20):
        assert get(port, "/p").status == 200


def test_percent_splits_requests(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_abort 502 percent=50;"))
    rampart.start()
    codes = [get(port, "/p").status for _ in range(200)]
    # 200 draws at one half: fewer than 40 of either is a 1-in-10^17 event
    assert 40 < codes.count(502) < 160
    assert codes.count(502) + codes.count(200) == 200


def test_client_closing_while_suspended_ends_the_request(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay header=x-delay max=30s;"))
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\nX-Delay: 30000\r\n\r\n")
    rampart.wait_log(r"request delayed 30000ms")
    s.close()
    # the request ends now (499, as nginx logs a client that left), not in 30 s
    wait_for(lambda: "499 /gone" in access_lines(rampart), timeout=10,
             what="the 499 of the request whose client left")
    assert backend_requests(backend) == 0
    # the worker is sound and serves on (a timer left behind would crash it)
    assert get(port, "/after").status == 200


def test_http2_stream_reset_while_suspended_ends_only_that_request(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay header=x-delay max=30s;")
                      .replace(f"listen 127.0.0.1:{port};", f"listen 127.0.0.1:{port} http2;"))
    rampart.start()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, [(":method", "GET"), (":path", "/reset"), (":scheme", "http"),
                       (":authority", "x"), ("x-delay", "30000")], end_stream=True)
    sock.sendall(c.data_to_send())
    rampart.wait_log(r"request delayed 30000ms")
    c.reset_stream(1)
    sock.sendall(c.data_to_send())
    wait_for(lambda: "499 /reset" in access_lines(rampart), timeout=10,
             what="the 499 of the reset stream")
    # the connection goes on: a second stream is answered
    c.send_headers(3, [(":method", "GET"), (":path", "/next"), (":scheme", "http"),
                       (":authority", "x")], end_stream=True)
    sock.sendall(c.data_to_send())
    status = None
    deadline = time.monotonic() + 10
    while status is None and time.monotonic() < deadline:
        data = sock.recv(65536)
        assert data, "the connection closed"
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == 3:
                status = dict(ev.headers)[b":status"]
        sock.sendall(c.data_to_send())
    sock.close()
    assert status == b"200"
    assert backend_requests(backend) == 1


def test_reload_while_suspended_lets_the_request_finish(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay header=x-delay max=30s;"))
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"GET /across HTTP/1.1\r\nHost: x\r\nX-Delay: 1500\r\n\r\n")
    rampart.wait_log(r"request delayed 1500ms")
    rampart.reload()
    head = read_response(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert backend_requests(backend) == 1


def test_fast_stop_while_suspended_ends_the_request_cleanly(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay 30s;"))
    rampart.start()
    s = open_request(port, "/stopped")
    rampart.wait_log(r"request delayed 30000ms")
    rampart.signal(signal.SIGTERM)  # every connection closes, every request ends
    s.settimeout(10)
    assert s.recv(1024) == b""
    s.close()
    assert rampart.wait_exit(timeout=15) == 0
    # ended, and logged with nothing sent
    assert "000 /stopped" in access_lines(rampart)
    assert backend_requests(backend) == 0


def test_graceful_stop_waits_for_the_suspended_request(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_delay header=x-delay max=30s;"))
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port), timeout=15)
    s.sendall(b"GET /q HTTP/1.1\r\nHost: x\r\nX-Delay: 1000\r\n\r\n")
    rampart.wait_log(r"request delayed 1000ms")
    rampart.signal(signal.SIGQUIT)
    head = read_response(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 200")
    assert rampart.wait_exit(timeout=15) == 0


def test_fault_directives_refuse_bad_values_with_file_and_line(rampart, port):
    rampart.configure(conf(port, 1, "fault_delay soon;"))
    p = run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert p.returncode == 1
    assert 'rampart.conf:' in p.stderr and '"fault_delay": invalid delay "soon"' in p.stderr
    rampart.configure(conf(port, 1, "fault_abort 99;"))
    p = run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert '"fault_abort": invalid status "99", it must be 200 to 599' in p.stderr
    rampart.configure(conf(port, 1, "fault_abort 503 percent=101;"))
    p = run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert '"fault_abort": invalid percent "101", it must be 0 to 100' in p.stderr


def test_fault_abort_444_closes_without_an_answer(rampart, port, backend):
    rampart.configure(conf(port, backend.port, "fault_abort 444;"))
    rampart.start()
    s = open_request(port, "/quiet")
    s.settimeout(10)
    assert s.recv(1024) == b""
    s.close()
    assert backend_requests(backend) == 0
