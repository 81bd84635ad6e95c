"""Slow and greedy clients at the edge: hundreds of slowloris connections (a head
trickled a line at a time) and slow POSTs (a body trickled, then stalled) are closed at
client_header_timeout and client_body_timeout, each connection timed on its own, while a
normal client's requests, fresh connections and proxied ones, keep their unloaded
latency within a wide bound; and when every worker_connections slot of every worker is
taken, a new client waits in the listen backlog (no crash, no refusal), the connections
already accepted keep being served, and the waiting ones are served once slots free.

The slow connections are driven from one thread with a selector (non-blocking sockets),
so that hundreds of them cost the test little; bounds are wide because CI runs this
under ASan on two shared cores.
"""

import selectors
import socket
import statistics
import threading
import time

import harness
from harness import get

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
PERIOD = 0.5     # a slow client sends something this often: below both timeouts
MARGIN = 6.0     # how late a close may come on a loaded two-core machine under ASan
LORIS = 200
POSTS = 200


def serve(rampart, backend, workers=2, events=""):
    port = harness.free_port()
    rampart.configure(f"client_header_timeout {int(HEADER_TIMEOUT * 1000)}ms;\n"
                      f"client_body_timeout {int(BODY_TIMEOUT * 1000)}ms;\n"
                      f"upstream be {{ server {backend.addr}; keepalive 16; }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      f" location /ok {{ return 200 \"ok\"; }}\n"
                      f" location / {{ proxy_pass http://be; }}\n}}",
                      workers=workers, main=events)
    rampart.start()
    return port


class SlowConn:
    def __init__(self, port, kind, pieces):
        self.kind = kind
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.started = time.monotonic()
        self.pieces = list(pieces)   # what to send, one piece per PERIOD, the first now
        self.next_send = self.started
        self.last_sent = None
        self.closed = None
        self.received = b""

    def send_due(self, now):
        if self.closed is not None or not self.pieces or now < self.next_send:
            return
        try:
            self.sock.send(self.pieces.pop(0))
        except (BrokenPipeError, ConnectionResetError):
            self.closed = now
            return
        except BlockingIOError:
            return
        self.last_sent = now
        self.next_send = now + PERIOD

    def readable(self, now):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        if data:
            self.received += data
        else:
            self.closed = now


def loris_pieces():
    # a head that never ends: a new field line every PERIOD for longer than the timeout
    lines = int((HEADER_TIMEOUT + MARGIN) / PERIOD) + 2
    return [b"GET /ok HTTP/1.1\r\nHost: a\r\n"] + [b"X-Slow-%d: y\r\n" % i for i in range(lines)]


def post_pieces():
    # the head and 1 byte at once, 3 more bytes trickled (each within the timeout), then
    # nothing: the body timer runs between reads, as nginx's
    return [b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nx", b"x", b"x", b"x"]


def drive(conns, deadline):
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    while time.monotonic() < deadline:
        now = time.monotonic()
        for c in conns:
            c.send_due(now)
        if all(c.closed is not None for c in conns):
            break
        for key, _ in sel.select(0.05):
            c = key.data
            if c.closed is None:
                c.readable(time.monotonic())
                if c.closed is not None:
                    sel.unregister(c.sock)
    sel.close()
    for c in conns:
        c.sock.close()


class FastClient:
    """Requests one after another, each on a fresh connection, alternating a location
    rampart answers and a proxied one; latencies in seconds."""

    def __init__(self, port):
        self.port = port
        self.latencies = []
        self.failures = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def one(self, i):
        path = "/ok" if i % 2 == 0 else "/p?size=100"
        t = time.monotonic()
        try:
            r = get(self.port, path, timeout=10)
            if r.status != 200:
                self.failures.append((path, r.status))
                return
        except OSError as e:
            self.failures.append((path, repr(e)))
            return
        self.latencies.append(time.monotonic() - t)

    def run(self):
        i = 0
        while not self.stop.is_set():
            self.one(i)
            i += 1
            time.sleep(0.02)

    def baseline(self, n=40):
        for i in range(n):
            self.one(i)
        assert not self.failures, self.failures
        lat, self.latencies = self.latencies, []
        return lat


def p90(values):
    return sorted(values)[int(len(values) * 0.9)]


def test_slowloris_and_slow_posts_are_closed_at_their_timeouts_and_others_are_unaffected(
        rampart, backend):
    port = serve(rampart, backend)
    fast = FastClient(port)
    base = fast.baseline()
    fast.thread.start()
    try:
        conns = [SlowConn(port, "loris", loris_pieces()) for _ in range(LORIS)]
        conns += [SlowConn(port, "post", post_pieces()) for _ in range(POSTS)]
        drive(conns, time.monotonic() + HEADER_TIMEOUT + BODY_TIMEOUT + 4 * PERIOD + MARGIN)
    finally:
        fast.stop.set()
        fast.thread.join(15)
    loris = [c for c in conns if c.kind == "loris"]
    posts = [c for c in conns if c.kind == "post"]

    # slowloris: closed without an answer at client_header_timeout, a deadline for the
    # whole head that the trickled lines do not push back
    open_ = [c for c in loris if c.closed is None]
    assert not open_, f"{len(open_)} slowloris connections outlived client_header_timeout"
    held = [c.closed - c.started for c in loris]
    assert min(held) >= HEADER_TIMEOUT - 0.1, sorted(held)[:5]
    assert max(held) <= HEADER_TIMEOUT + MARGIN, sorted(held)[-5:]
    assert not any(c.received for c in loris), [c.received[:80] for c in loris if c.received][:3]

    # slow POST: every trickled byte came within the timeout and kept it alive; the
    # stall after the last is answered 408 and closed at client_body_timeout
    open_ = [c for c in posts if c.closed is None]
    assert not open_, f"{len(open_)} slow POSTs outlived client_body_timeout"
    assert all(not c.pieces for c in posts), "a slow POST was cut while still trickling"
    stalled = [c.closed - c.last_sent for c in posts]
    assert min(stalled) >= BODY_TIMEOUT - 0.1, sorted(stalled)[:5]
    assert max(stalled) <= BODY_TIMEOUT + MARGIN, sorted(stalled)[-5:]
    assert all(c.received.startswith(b"HTTP/1.1 408 ") for c in posts), \
        {c.received[:40] for c in posts}

    # the normal client: every request answered, latency within a wide bound of the
    # unloaded baseline
    assert not fast.failures, fast.failures[:5]
    assert len(fast.latencies) >= 20, len(fast.latencies)
    bound = 20 * p90(base) + 0.25
    assert p90(fast.latencies) <= bound, (p90(fast.latencies), p90(base),
                                          statistics.median(fast.latencies))
    assert max(fast.latencies) <= 2.0, max(fast.latencies)

    # the slow POSTs reached the backend and were let go there too
    rampart.wait_log("client timed out \\(client_body_timeout\\)")


# -- worker_connections exhausted -------------------------------------------------------------

SLOTS = 64
WORKERS = 2


def answered(sock, timeout):
    """A response head read within timeout, or None."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except (socket.timeout, BlockingIOError):
        return None
    except ConnectionResetError:
        return b""
    return data


def first_heads(socks, count, timeout, settle=0.5):
    """{sock: first bytes} of the sockets that got an answer: waits until `count` did (or
    timeout), then `settle` seconds more for any beyond."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    heads = {}
    deadline = time.monotonic() + timeout
    settled = None
    while True:
        now = time.monotonic()
        if settled is None and len(heads) >= count:
            settled = now + settle
        end = settled if settled is not None else deadline
        if now >= end:
            break
        for key, _ in sel.select(end - now):
            try:
                heads[key.fileobj] = key.fileobj.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                heads[key.fileobj] = b""
            sel.unregister(key.fileobj)
    sel.close()
    for s in socks:
        s.setblocking(True)
    return heads


def test_worker_connections_exhausted_new_clients_wait_and_are_served_when_slots_free(
        rampart, backend):
    port = serve(rampart, backend, workers=WORKERS,
                 events=f"events {{ worker_connections {SLOTS}; }}")
    workers, _ = rampart.wait_processes(WORKERS)
    held = [socket.create_connection(("127.0.0.1", port), timeout=10)
            for _ in range(WORKERS * SLOTS + 72)]
    newcomer = None
    try:
        # every slot of every worker taken: each worker says so once
        harness.wait_for(lambda: rampart.log_text().count(
            f"worker_connections are not enough ({SLOTS})") >= WORKERS,
            timeout=10, what="both workers to fill their worker_connections")

        # a new client is not refused: it waits in the listen backlog
        newcomer = socket.create_connection(("127.0.0.1", port), timeout=10)
        newcomer.sendall(b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert answered(newcomer, 0.5) is None, "served past worker_connections"

        # connections already accepted keep being served: exactly the slots' worth
        for s in held:
            s.sendall(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
        heads = first_heads(held, WORKERS * SLOTS, timeout=10)
        served = [s for s in held if s in heads]
        waiting = [s for s in held if s not in heads]
        assert all(h.startswith(b"HTTP/1.1 200 OK\r\n") for h in heads.values()), heads
        assert len(served) == WORKERS * SLOTS, (len(served), len(waiting))

        # slots free: the waiting clients and the newcomer are all served
        for s in served:
            s.close()
        for s in waiting + [newcomer]:
            head = answered(s, 10)
            assert head and head.startswith(b"HTTP/1.1 200 OK\r\n"), head
        assert sorted(rampart.roles()[0]) == sorted(workers)  # no worker died
    finally:
        for s in held + ([newcomer] if newcomer else []):
            s.close()
    assert get(port, "/ok").status == 200
