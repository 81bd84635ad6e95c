"""
Circuit breakers and the queue of an upstream group: max_requests, max_connections,
max_pending and max_retries, counted across the workers, and `queue N timeout=T`.

Over a limit a request is answered 503 at once with X-Rampart-Overloaded naming the
limit, and the backend never sees it; with a queue it waits, suspended, and the
waiters go in the order they came, whichever worker holds them, or get 503 with
queue_timeout when their time is up (queue_full when there is no room). A waiter
whose client leaves (a closed connection, a reset HTTP/2 stream) leaves the queue.

Real rampart with 2 workers and a real backend (backend.py; its /__log gives the order
requests arrived in). A request keeps its place in the group for as long as the test
wants by sending its body slowly: the POST's last byte goes when the test releases it.
Waits are for events: a count in upstream_status, a request at the backend, a log
line. The only time bounds are lower bounds or a wide ceiling on "at once".
"""

import hashlib
import http.client
import json
import signal
import socket
import time

import h2.config
import h2.connection
import h2.events

import harness
import reference_nginx
from h2_backend import H2Backend
from h2client import H2Client, h2_request
from harness import get, wait_for

WORKERS = 2


def conf(port, backend_addr, limits, upstream_extra="", location_extra=""):
    return f"""
    upstream pool {{
        server {backend_addr};
        {limits}
        {upstream_extra}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_read_timeout 30s;
            # hold() keeps a request in flight by holding its body back: streamed
            proxy_request_buffering off;
            {location_extra}
        }}
        location = /pid {{
            return 200 "$pid";
        }}
        location = /upstreams {{
            upstream_status;
        }}
    }}
    """


def start(rampart, port, backend_addr, limits, **kw):
    rampart.configure(conf(port, backend_addr, limits, **kw), workers=WORKERS)
    rampart.start()
    rampart.wait_processes(WORKERS)


def pool(port):
    r = get(port, "/upstreams", headers={"Connection": "close"})
    assert r.status == 200
    (p,) = [u for u in json.loads(r.text)["upstreams"] if u["name"] == "pool"]
    return p


def backend_requests(backend):
    return backend.stats()["requests"]


def h2_backend_requests(b):
    return json.loads(h2_request(b.port, "GET", "/__stats").body)["requests"]


def arrivals(backend):
    """The targets the backend received, in the order they arrived."""
    return [e["target"] for e in json.loads(get(backend.port, "/__log").text)]


class Client:
    """One keep-alive connection to rampart: which worker holds it, and one request sent
    now whose response is read later."""

    def __init__(self, port, timeout=25):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", "/pid")
        r = self.conn.getresponse()
        self.worker = int(r.read())

    def send(self, path):
        self.conn.request("GET", path)

    def hold(self, path):
        """A POST whose body's last byte waits for release(): the request keeps its place
        in the group (in flight, its connection open) until then."""
        self.conn.putrequest("POST", path)
        self.conn.putheader("Content-Length", "2")
        self.conn.endheaders()
        self.conn.send(b"a")

    def release(self):
        self.conn.send(b"b")

    def response(self):
        r = self.conn.getresponse()
        body = r.read()
        return harness.Response(r.status, r.reason, r.headers, body, r.version)

    def close(self):
        self.conn.close()


def clients_of_both_workers(port, n):
    """n connections alternating between the two workers (the kernel spreads fresh
    connections over the workers' sockets; those of a worker already taken are closed)."""
    by_worker = {}
    while sum(len(v) for v in by_worker.values()) < 200 and \
            (len(by_worker) < 2 or min(len(v) for v in by_worker.values()) < (n + 1) // 2):
        c = Client(port)
        by_worker.setdefault(c.worker, []).append(c)
    assert len(by_worker) == 2, "every connection went to one worker"
    a, b = by_worker.values()
    mixed = [c for pair in zip(a, b) for c in pair][:n]
    for c in a + b:
        if c not in mixed:
            c.close()
    return mixed


def hold(port, path="/hold"):
    """A request that keeps its place in the group until the test calls release()."""
    c = Client(port)
    c.hold(path)
    return c


def wait_inflight(port, n, what):
    wait_for(lambda: pool(port)["inflight"] == n, timeout=10, what=what)


# ---- max_requests ----


def test_max_requests_answers_503_at_once_and_the_backend_never_sees_it(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 2;")
    held = [hold(port, f"/held{i}") for i in range(2)]
    wait_inflight(port, 2, "both held requests in flight")
    r = get(port, "/third")
    assert r.status == 503
    assert r.headers["X-Rampart-Overloaded"] == "max_requests"
    assert pool(port)["inflight"] == 2  # answered while both still held their places
    for c in held:
        c.release()
        assert c.response().status == 200
    assert arrivals(backend) == ["/held0", "/held1"]
    p = pool(port)
    assert p["breaker_tripped"] == 1
    assert p["max_requests"] == 2 and p["inflight"] == 0
    assert rampart.wait_log(r'\[warn\] .*upstream "pool" overloaded: max_requests, request '
                            r'"GET /third" answered 503')
    # below the limit again: requests pass
    assert get(port, "/after").status == 200


def test_max_requests_counts_the_requests_of_both_workers(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 2;")
    a, b = clients_of_both_workers(port, 2)
    assert a.worker != b.worker
    a.hold("/a")
    b.hold("/b")
    wait_inflight(port, 2, "one request held in each worker")
    refused = [get(port, f"/over{i}") for i in range(6)]  # through either worker
    assert [r.status for r in refused] == [503] * 6
    assert all(r.headers["X-Rampart-Overloaded"] == "max_requests" for r in refused)
    for c in (a, b):
        c.release()
        assert c.response().status == 200
    assert pool(port)["breaker_tripped"] == 6
    assert sorted(arrivals(backend)) == ["/a", "/b"]


# ---- the queue ----


def test_the_queue_releases_waiting_requests_in_arrival_order_across_both_workers(
        rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 10 timeout=25s;")
    waiters = clients_of_both_workers(port, 8)
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    for i, c in enumerate(waiters):
        c.send(f"/q{i}")
        # queued before the next one comes: that is the order they arrived in
        wait_for(lambda: pool(port)["waiting"] == i + 1, timeout=10, what=f"request {i} queued")
    pids = {int(line.split("#")[0].split()[-1]) for line in rampart.log_text().splitlines()
            if 'upstream "pool": request queued' in line}
    assert pids == {c.worker for c in waiters}  # both workers hold waiters
    holder.release()
    assert holder.response().status == 200
    for c in waiters:
        r = c.response()
        assert r.status == 200, r
    assert arrivals(backend) == ["/hold"] + [f"/q{i}" for i in range(8)]
    p = pool(port)
    assert p["waiting"] == 0 and p["inflight"] == 0 and p["breaker_tripped"] == 0
    assert p["queued"] == 8


def test_a_waiting_request_with_a_body_sends_it_whole_when_its_turn_comes(
        rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 5 timeout=25s;")
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    body = bytes(range(256)) * 1024  # sent while it waits: the client's side holds it
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=25)
    c.request("POST", "/upload?echo=1", body=body)
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the upload waiting")
    holder.release()
    assert holder.response().status == 200
    r = c.getresponse()
    echo = json.loads(r.read())
    assert r.status == 200
    assert echo["body_length"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_a_queued_request_whose_wait_runs_out_gets_503_queue_timeout(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 5 timeout=300ms;")
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    started = time.monotonic()
    r = get(port, "/late", timeout=10)
    assert r.status == 503
    assert r.headers["X-Rampart-Overloaded"] == "queue_timeout"
    assert time.monotonic() - started >= 0.25  # it waited (the clock is read per loop turn)
    p = pool(port)
    assert p["waiting"] == 0 and p["queue_timeouts"] == 1 and p["breaker_tripped"] == 1
    assert p["queue"] == 5 and p["queue_timeout_ms"] == 300
    holder.release()
    assert holder.response().status == 200
    assert arrivals(backend) == ["/hold"]


def test_a_full_queue_answers_503_queue_full_at_once(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 1 timeout=25s;")
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    waiter = Client(port)
    waiter.send("/waits")
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the waiter")
    r = get(port, "/no-room")
    assert r.status == 503
    assert r.headers["X-Rampart-Overloaded"] == "queue_full"
    assert pool(port)["waiting"] == 1  # answered while the queue was full, and undisturbed
    holder.release()
    assert holder.response().status == 200
    assert waiter.response().status == 200
    assert arrivals(backend) == ["/hold", "/waits"]
    assert pool(port)["breaker_tripped"] == 1


def test_a_client_that_leaves_the_queue_leaves_no_trace(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 5 timeout=25s;")
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the waiter")
    s.close()
    wait_for(lambda: pool(port)["waiting"] == 0, timeout=10, what="the waiter leaving")
    assert rampart.wait_log(r'upstream "pool": request left the queue before its turn')
    holder.release()
    assert holder.response().status == 200
    # its ticket was skipped: the queue is empty and the next requests pass
    assert [get(port, f"/next{i}").status for i in range(3)] == [200] * 3
    assert arrivals(backend) == ["/hold", "/next0", "/next1", "/next2"]
    p = pool(port)
    assert p["waiting"] == 0 and p["inflight"] == 0 and p["breaker_tripped"] == 0


def test_waiters_of_the_old_workers_keep_their_turn_across_a_reload(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 5 timeout=25s;")
    old_workers, _ = rampart.wait_processes(WORKERS)
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    first = Client(port)
    first.send("/first")
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the first waiter")
    rampart.reload()
    # a request of the new generation queues behind the one the old generation holds
    def new_client():
        c = Client(port)
        if c.worker in old_workers:
            c.close()  # accepted before that worker stopped accepting
            return None
        return c
    second = wait_for(new_client, timeout=10, what="a connection to a new worker")
    second.send("/second")
    wait_for(lambda: pool(port)["waiting"] == 2, timeout=10, what="the second waiter")
    holder.release()
    assert [c.response().status for c in (holder, first, second)] == [200, 200, 200]
    assert arrivals(backend) == ["/hold", "/first", "/second"]
    assert pool(port)["waiting"] == 0


def test_a_fast_stop_ends_waiting_requests_cleanly(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 5 timeout=25s;")
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /waits HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the waiter")
    rampart.signal(signal.SIGTERM)  # every request ends, the waiting one with them
    try:
        assert s.recv(1024) == b""
    except ConnectionResetError:
        pass
    s.close()
    holder.close()
    assert rampart.wait_exit(timeout=15) == 0
    # (Whether /waits reached the backend is not asserted: the master signals the
    # workers one after another, and when the holder's worker ends first, the waiter's
    # worker may admit it in the moment before its own signal comes. Its client got no
    # answer either way, which is what a fast stop promises.)


def test_a_graceful_stop_lets_waiting_requests_have_their_turn(rampart, port, backend):
    start(rampart, port, backend.addr, "max_requests 1;\n        queue 5 timeout=25s;")
    holder = hold(port)
    wait_inflight(port, 1, "the holder")
    waiter = Client(port)
    waiter.send("/waits")
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the waiter")
    rampart.signal(signal.SIGQUIT)
    holder.release()
    assert holder.response().status == 200
    assert waiter.response().status == 200
    assert rampart.wait_exit(timeout=15) == 0
    assert arrivals(backend) == ["/hold", "/waits"]


def h2_headers(method, path):
    return [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x")]


def test_a_waiter_whose_http2_stream_is_reset_leaves_the_queue(rampart, port, backend):
    rampart.configure(conf(port, backend.addr, "max_requests 1;\n        queue 5 timeout=25s;")
                      .replace(f"listen 127.0.0.1:{port};", f"listen 127.0.0.1:{port} http2;"),
                      workers=WORKERS)
    rampart.start()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    c.send_headers(1, h2_headers("POST", "/hold") + [("content-length", "2")])
    c.send_data(1, b"a")
    sock.sendall(c.data_to_send())
    wait_inflight(port, 1, "the holder")
    c.send_headers(3, h2_headers("GET", "/reset"), end_stream=True)
    sock.sendall(c.data_to_send())
    wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the waiting stream")
    c.reset_stream(3)
    sock.sendall(c.data_to_send())
    wait_for(lambda: pool(port)["waiting"] == 0, timeout=10, what="the stream leaving")
    # the holder's stream ends well, and the connection serves on
    c.send_data(1, b"b", end_stream=True)
    c.send_headers(5, h2_headers("GET", "/next"), end_stream=True)
    sock.sendall(c.data_to_send())
    status = {}
    deadline = time.monotonic() + 15
    while len(status) < 2 and time.monotonic() < deadline:
        data = sock.recv(65536)
        assert data, "the connection closed"
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[b":status"]
        sock.sendall(c.data_to_send())
    sock.close()
    assert status == {1: b"200", 5: b"200"}
    assert arrivals(backend) == ["/hold", "/next"]
    assert pool(port)["waiting"] == 0


def test_http2_clients_get_503_over_max_requests_and_wait_in_the_queue(rampart, port, backend):
    rampart.configure(conf(port, backend.addr, "max_requests 1;\n        queue 1 timeout=25s;")
                      .replace(f"listen 127.0.0.1:{port};", f"listen 127.0.0.1:{port} http2;"),
                      workers=WORKERS)
    rampart.start()
    with H2Client(port, timeout=25) as c:
        # on one connection: the first goes, the second waits, the third finds no room
        got = c.exchange([("GET", "/first?delay=1", [], b""), ("GET", "/second", [], b""),
                          ("GET", "/third", [], b"")])
    assert [(r.status, r.header("x-rampart-overloaded")) for r in got] == [
        (200, None), (200, None), (503, "queue_full")]
    assert arrivals(backend) == ["/first?delay=1", "/second"]
    assert pool(port)["queued"] == 1


# ---- max_connections and max_pending ----


def test_max_connections_refuses_a_request_that_needs_a_new_connection(rampart, port, backend):
    start(rampart, port, backend.addr, "max_connections 1;")
    holder = hold(port)
    wait_for(lambda: pool(port)["connections"] == 1, timeout=10, what="the holder's connection")
    r = get(port, "/second")
    assert r.status == 503
    assert r.headers["X-Rampart-Overloaded"] == "max_connections"
    holder.release()
    assert holder.response().status == 200
    wait_for(lambda: pool(port)["connections"] == 0, timeout=10, what="the connection closing")
    assert get(port, "/third").status == 200
    assert arrivals(backend) == ["/hold", "/third"]
    assert pool(port)["max_connections"] == 1


def test_an_idle_kept_alive_connection_lets_a_request_pass_at_max_connections(
        rampart, port, backend):
    rampart.configure(conf(port, backend.addr, "max_connections 1;", "keepalive 4;"), workers=1)
    rampart.start()
    assert get(port, "/first").status == 200
    wait_for(lambda: pool(port)["connections"] == 1, timeout=10, what="the kept connection")
    # the limit is reached, but the worker has an idle connection: no new one is needed
    assert [get(port, f"/again{i}").status for i in range(3)] == [200] * 3
    assert backend.stats()["connections_accepted"] == 1
    assert pool(port)["breaker_tripped"] == 0


class Blackhole:
    """A listening socket that never accepts, its backlog filled: a connect to it hangs
    (the kernel drops its SYNs), so rampart's connection stays in the making."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(f)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", self.port))
            hangs = False
        except (socket.timeout, BlockingIOError):
            hangs = True
        probe.close()
        assert hangs, "the backlog did not fill: connects still complete"

    def close(self):
        for f in self.fillers:
            f.close()
        self.sock.close()


def test_max_pending_refuses_while_connections_are_being_opened(rampart, port, backend):
    hole = Blackhole()
    try:
        start(rampart, port, f"127.0.0.1:{hole.port}", "max_pending 1;",
              location_extra="proxy_connect_timeout 5s;")
        first = Client(port)
        first.send("/first")
        wait_for(lambda: pool(port)["pending"] == 1, timeout=10, what="a connection in the making")
        r = get(port, "/second")
        assert r.status == 503
        assert r.headers["X-Rampart-Overloaded"] == "max_pending"
        assert first.response().status == 504  # its connect timed out
        p = pool(port)
        assert p["pending"] == 0 and p["connections"] == 0
        assert p["max_pending"] == 1 and p["breaker_tripped"] == 1
    finally:
        hole.close()


# ---- an http2 group ----


def test_an_http2_group_counts_its_streams_against_max_requests(rampart, port):
    b = H2Backend().start()
    try:
        start(rampart, port, f"127.0.0.1:{b.port}", "max_requests 1;", upstream_extra="http2;")
        holder = hold(port)
        wait_inflight(port, 1, "the holder's stream")
        assert pool(port)["connections"] == 1  # its session
        r = get(port, "/second")
        assert r.status == 503
        assert r.headers["X-Rampart-Overloaded"] == "max_requests"
        holder.release()
        assert holder.response().status == 200
        wait_inflight(port, 0, "the holder's stream to end")
        assert get(port, "/third").status == 200
        assert h2_backend_requests(b) == 2
    finally:
        b.stop()


def test_an_http2_group_queues_and_releases(rampart, port):
    b = H2Backend().start()
    try:
        start(rampart, port, f"127.0.0.1:{b.port}", "max_requests 1;\n        queue 4 timeout=25s;",
              upstream_extra="http2;")
        holder = hold(port)
        wait_inflight(port, 1, "the holder's stream")
        waiter = Client(port)
        waiter.send("/waits")
        wait_for(lambda: pool(port)["waiting"] == 1, timeout=10, what="the waiter")
        holder.release()
        assert holder.response().status == 200
        assert waiter.response().status == 200
        p = pool(port)
        assert p["queued"] == 1 and p["waiting"] == 0
        assert h2_backend_requests(b) == 2
    finally:
        b.stop()


# ---- status and configuration ----


def test_upstream_status_shows_the_limits_and_the_queue(rampart, port, backend):
    start(rampart, port, backend.addr,
          "max_requests 7;\n        max_connections 8;\n        max_pending 9;\n"
          "        max_retries 3;\n        queue 20 timeout=2s;")
    p = pool(port)
    assert {k: p[k] for k in ("max_requests", "max_connections", "max_pending", "max_retries",
                              "queue", "queue_timeout_ms", "waiting", "queued",
                              "queue_timeouts", "breaker_tripped")} == {
        "max_requests": 7, "max_connections": 8, "max_pending": 9, "max_retries": 3,
        "queue": 20, "queue_timeout_ms": 2000, "waiting": 0, "queued": 0,
        "queue_timeouts": 0, "breaker_tripped": 0}
    assert get(port, "/x").status == 200


def test_bad_breaker_values_are_refused_with_file_and_line(conf_dir):
    def http(line):
        return (f"upstream u {{\n    server 127.0.0.1:1;\n    {line}\n}}\n"
                "server { listen 127.0.0.1:1; location / { proxy_pass http://u; } }")
    reference_nginx.assert_rampart_refuses(conf_dir, http("max_requests lots;"), 5,
                                           '"max_requests": invalid number "lots"')
    reference_nginx.assert_rampart_refuses(conf_dir, http("max_retries -2;"), 5,
                                           '"max_retries": invalid number "-2"')
    reference_nginx.assert_rampart_refuses(conf_dir, http("max_pending 1; queue 5 timeout=never;"),
                                           5, '"queue": invalid timeout "never"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, http("queue 5;"), 5,
        '"queue": upstream "u" has no max_requests, max_connections or max_pending for '
        'requests to wait for')
