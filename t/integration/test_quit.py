"""Stopping: QUIT drains (in-flight responses finish, idle connections close,
new ones are refused), TERM stops at once, worker_shutdown_timeout bounds a
drain."""

import signal
import socket
import time

import pytest

import harness
from harness import get, split_responses, wait_for


def big_body(size):
    """size bytes of numbered lines, so a lost or repeated chunk shows."""
    lines, n = [], 0
    while sum(map(len, lines)) < size:
        lines.append(f"line {n:06d} ............................................\n")
        n += 1
    return "".join(lines)[:size]


def slow_conf(port, body, rate="20k", main=""):
    return dict(http=f"""
        server {{
            listen 127.0.0.1:{port};
            location /slow {{
                limit_rate {rate};
                return 200 "{body}";
            }}
            location / {{
                return 200 "fast";
            }}
        }}""", main=main)


class SlowDownload:
    """A GET of /slow on a raw socket, read incrementally."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        self.data = b""
        self.eof = False

    def body_len(self):
        head, sep, body = self.data.partition(b"\r\n\r\n")
        return len(body) if sep else 0

    def read_until(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while not predicate() and not self.eof:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.data += chunk
            if time.monotonic() > deadline:
                break
        return predicate()

    def close(self):
        self.sock.close()


@pytest.fixture
def body():
    return big_body(60 * 1024)


def test_quit_lets_slow_in_flight_response_finish(rampart, port, body):
    rampart.configure(**slow_conf(port, body))
    rampart.start()
    dl = SlowDownload(port)
    try:
        # Past the first second's burst: the rest is paced at 20k/s, ~1 s more.
        assert dl.read_until(lambda: dl.body_len() > 25 * 1024, timeout=5)
        quit_at = time.monotonic()
        rampart.signal(signal.SIGQUIT)
        dl.read_until(lambda: dl.eof, timeout=10)
        finished_after = time.monotonic() - quit_at
    finally:
        dl.close()
    (status, headers, got), = split_responses(dl.data)
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(len(body))
    assert got == body.encode()
    assert finished_after > 0.3  # it really was still sending when QUIT came
    assert rampart.wait_exit(timeout=10) == 0
    assert not rampart.pid_file.exists()
    log = rampart.log_text()
    assert "graceful shutdown requested" in log
    assert log.rstrip().endswith(f"[notice] {rampart.pid}#0: exiting")


def test_new_connections_are_refused_while_draining(rampart, port, body):
    rampart.configure(**slow_conf(port, body))
    rampart.start()
    dl = SlowDownload(port)
    try:
        assert dl.read_until(lambda: dl.body_len() > 25 * 1024, timeout=5)
        rampart.signal(signal.SIGQUIT)
        rampart.wait_log(r"gracefully shutting down")

        def refused():
            try:
                get(port, timeout=0.5)
            except ConnectionRefusedError:
                return True
            return False
        # Refused at once, not queued in a backlog nobody will accept from.
        wait_for(refused, timeout=0.5, what=f"connections to {port} to be refused")
        assert rampart.running()
        dl.read_until(lambda: dl.eof, timeout=10)
    finally:
        dl.close()
    assert split_responses(dl.data)[0][2] == body.encode()
    assert rampart.wait_exit(timeout=10) == 0


def test_quit_closes_idle_keepalive_connection_and_exits_promptly(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while not data.endswith(b"ok"):
            data += s.recv(4096)
        rampart.signal(signal.SIGQUIT)
        # Not kept for keepalive_timeout (75 s): closed with the drain.
        assert s.recv(4096) == b""
    assert rampart.wait_exit(timeout=5) == 0


def test_quit_answers_request_on_connection_opened_before_it(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "late"; }}')
    rampart.start()
    (worker,), _ = rampart.wait_processes(1)
    listeners = harness._socket_inodes(rampart.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        wait_for(lambda: harness._socket_inodes(worker) - listeners,
                 what="the worker to accept the connection")
        rampart.signal(signal.SIGQUIT)
        rampart.wait_log(r"gracefully shutting down")
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    (status, headers, got), = split_responses(data)
    assert (status, got) == ("HTTP/1.1 200 OK", b"late")
    assert headers["connection"] == "close"
    assert rampart.wait_exit(timeout=5) == 0


def test_term_stops_at_once_cutting_slow_response(rampart, port, body):
    rampart.configure(**slow_conf(port, body, rate="5k"))
    rampart.start()
    dl = SlowDownload(port)
    try:
        assert dl.read_until(lambda: dl.body_len() > 1024, timeout=5)
        term_at = time.monotonic()
        rampart.signal(signal.SIGTERM)
        assert dl.read_until(lambda: dl.eof, timeout=5)
        assert rampart.wait_exit(timeout=5) == 0
        stopped_after = time.monotonic() - term_at
    finally:
        dl.close()
    assert dl.body_len() < len(body)
    assert stopped_after < 1.5
    assert not rampart.pid_file.exists()
    assert "fast shutdown requested" in rampart.log_text()


def test_int_stops_like_term(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    children = rampart.children()
    rampart.signal(signal.SIGINT)
    assert rampart.wait_exit(timeout=5) == 0
    assert "fast shutdown requested" in rampart.log_text()
    wait_for(lambda: not any(harness.pid_alive(pid) for pid in children), what="children to exit")


def test_worker_shutdown_timeout_cuts_a_drain_that_takes_too_long(rampart, port, body):
    rampart.configure(**slow_conf(port, body, rate="5k", main="worker_shutdown_timeout 1s;"))
    rampart.start()
    dl = SlowDownload(port)
    try:
        assert dl.read_until(lambda: dl.body_len() > 1024, timeout=5)
        quit_at = time.monotonic()
        rampart.signal(signal.SIGQUIT)
        assert dl.read_until(lambda: dl.eof, timeout=5)
        cut_after = time.monotonic() - quit_at
        assert rampart.wait_exit(timeout=5) == 0
    finally:
        dl.close()
    assert dl.body_len() < len(body)
    assert 0.8 < cut_after < 2.5
    assert "worker_shutdown_timeout reached with 1 connections open" in rampart.log_text()


def test_signal_quit_command_stops_the_master(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    p = harness.run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "quit")
    assert (p.returncode, p.stderr) == (0, "")
    assert rampart.wait_exit(timeout=5) == 0
    assert "graceful shutdown requested" in rampart.log_text()


def test_signal_stop_command_stops_the_master(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    p = harness.run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "stop")
    assert (p.returncode, p.stderr) == (0, "")
    assert rampart.wait_exit(timeout=5) == 0
    assert "fast shutdown requested" in rampart.log_text()
