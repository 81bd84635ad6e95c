"""
Adaptive concurrency of an upstream group (`adaptive_concurrency` in the upstream block):
the limit of requests in flight follows the latency the group shows, so a backend that
slows down with its load is kept near its unloaded latency and the excess is shed at the
gateway, 503 with X-Rampart-Overloaded: adaptive_concurrency, or waits in the group's
queue when it has one.

Real rampart with 2 workers (one limit for the node: the workers share the record) and a
backend whose every answer takes 20 ms + 2 ms per request in flight (latency_backend.py),
which counts its own maximum in flight and its longest delay. The load is 120 (60 with
the queue) keep-alive clients, each sending its next request as soon as the last one is
answered (after 5 ms when it was refused, as a client backing off). The load runs until
upstream_status shows what the test waits for; the assertions are on what the backend
counted and on the answers, with wide margins (CI runs under ASan on 2 shared cores).
"""

import asyncio
import json
import os
import subprocess
import sys
import threading

import pytest

import reference_nginx
from test_retry import mode_backend  # noqa: F401  (the fixture)

from harness import get, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 2


class LatencyBackend:
    """latency_backend.py in its own process."""

    def __init__(self, base_ms=20, per_inflight_ms=2):
        args = [sys.executable, os.path.join(HERE, "latency_backend.py"),
                "--base-ms", str(base_ms), "--per-inflight-ms", str(per_inflight_ms)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.addr = "127.0.0.1:%d" % self.port

    def stats(self):
        return json.loads(get(self.port, "/__stats", headers={"Connection": "close"}).text)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def latency_backend():
    b = LatencyBackend()
    yield b
    b.stop()


class Load:
    """n keep-alive clients in an asyncio loop of their own thread, each sending GET /work
    again as soon as it has its answer, until stop(). answers: (status, the
    X-Rampart-Overloaded header or None) of every request."""

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.answers = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the load did not stop"
        assert not self.errors, self.errors[:3]

    async def _run(self):
        await asyncio.gather(*(self._client() for _ in range(self.n)))

    async def _client(self):
        reader = writer = None
        try:
            while not self._stop.is_set():
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.write(b"GET /work HTTP/1.1\r\nHost: localhost\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ")[1])
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                self.answers.append((status, headers.get("x-rampart-overloaded")))
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
                if status == 503:
                    await asyncio.sleep(0.005)
        except Exception as e:  # noqa: BLE001 (reported by stop())
            self.errors.append(repr(e))
        finally:
            if writer is not None:
                writer.close()

    def statuses(self, status, overloaded=None):
        return [a for a in self.answers if a[0] == status and
                (overloaded is None or a[1] == overloaded)]


def conf(port, backend_addr, limits):
    return f"""
    upstream pool {{
        server {backend_addr};
        {limits}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_read_timeout 60s;
        }}
        location = /upstreams {{
            upstream_status;
        }}
    }}
    """


def start(rampart, port, backend, limits):
    rampart.configure(conf(port, backend.addr, limits), workers=WORKERS)
    rampart.start()
    rampart.wait_processes(WORKERS)


def pool(port):
    r = get(port, "/upstreams", headers={"Connection": "close"})
    assert r.status == 200
    (p,) = [u for u in json.loads(r.text)["upstreams"] if u["name"] == "pool"]
    return p


def adaptive(port):
    return pool(port)["adaptive_concurrency"]


def test_adaptive_concurrency_keeps_the_backend_near_its_unloaded_latency_and_sheds_the_rest(
        rampart, port, latency_backend):
    start(rampart, port, latency_backend, "adaptive_concurrency;")
    a = adaptive(port)
    assert a["phase"] == "min_rtt" and a["limit"] == 3  # a new group measures minRTT first
    load = Load(port, 120).start()
    # two seconds of windows after the first measurement, and load shed meanwhile
    # (and 200 answered: under ASan the windows can pass before that many are served)
    wait_for(lambda: (lambda s: s["updates"] >= 20 and s["shed"] >= 50)(adaptive(port))
             and len(load.statuses(200)) >= 200,
             timeout=120, what="the limit to move 20 times, shed 50 and pass 200 requests")
    load.stop()
    seen = latency_backend.stats()
    a = adaptive(port)
    # 120 clients, and the backend never saw more than half of them at once: its
    # latency stayed within 20 + 2 x 60 ms (unlimited, it goes past 200: the next test)
    assert seen["max_inflight"] <= 60, seen
    assert seen["max_delay_ms"] <= 140, seen
    assert a["min_rtt_measurements"] >= 1
    assert a["min_rtt_ms"] >= 20, a  # the backend's base latency, at least
    assert 3 <= a["limit"] <= 60, a
    ok, shed = load.statuses(200), load.statuses(503)
    assert len(ok) >= 200, (len(ok), len(shed))
    # every refusal is the adaptive limit's, and the status counted each one
    assert shed and all(o == "adaptive_concurrency" for _, o in shed), set(shed)
    assert a["shed"] == len(shed), (a["shed"], len(shed))
    assert pool(port)["breaker_tripped"] == len(shed)
    assert len(load.answers) == len(ok) + len(shed)
    assert rampart.wait_log(r'upstream "pool": adaptive concurrency measured minRTT')
    assert rampart.wait_log(r'upstream "pool" overloaded: adaptive_concurrency')


def test_the_same_load_with_a_fixed_large_max_requests_drives_the_backend_up(
        rampart, port, latency_backend):
    start(rampart, port, latency_backend, "max_requests 1000;")
    load = Load(port, 120).start()
    wait_for(lambda: latency_backend.stats()["requests"] >= 600, timeout=120,
             what="600 requests at the backend")
    load.stop()
    seen = latency_backend.stats()
    # nearly every client in flight at once, and the latency that comes with it
    assert seen["max_inflight"] >= 90, seen
    assert seen["max_delay_ms"] >= 200, seen
    assert not load.statuses(503)
    assert "adaptive_concurrency" not in pool(port)


def test_with_a_queue_requests_over_the_adaptive_limit_wait_instead_of_being_shed(
        rampart, port, latency_backend):
    start(rampart, port, latency_backend, "adaptive_concurrency;\n        queue 150 timeout=60s;")
    load = Load(port, 60).start()
    wait_for(lambda: (lambda p: p["queued"] >= 200 and
                      p["adaptive_concurrency"]["updates"] >= 10)(pool(port)),
             timeout=120, what="200 requests to wait in the queue and 10 windows")
    load.stop()
    seen = latency_backend.stats()
    p = pool(port)
    # the backend is held as without the queue; the clients wait instead of failing
    assert seen["max_inflight"] <= 40, seen
    assert p["adaptive_concurrency"]["shed"] == 0
    assert p["queue_timeouts"] == 0
    assert not load.statuses(503), set(load.statuses(503))
    assert len(load.statuses(200)) == len(load.answers) >= 200
    assert p["queued"] >= 200


def test_upstream_status_shows_the_parameters_and_a_new_group_measuring(rampart, port,
                                                                         latency_backend):
    start(rampart, port, latency_backend,
          "adaptive_concurrency interval=250ms percentile=90 buffer=50% min_rtt_interval=30s "
          "min_rtt_requests=20 jitter=5 min_concurrency=4 max_concurrency=64;")
    a = adaptive(port)
    assert a == {"limit": 4, "phase": "min_rtt", "min_rtt_ms": 0, "sample_rtt_ms": 0,
                 "gradient": 0, "shed": 0, "updates": 0, "min_rtt_measurements": 0,
                 "interval_ms": 250, "percentile": 90, "buffer": 50,
                 "min_rtt_interval_ms": 30000, "min_rtt_requests": 20, "jitter": 5,
                 "min_concurrency": 4, "max_concurrency": 64}
    assert get(port, "/work").status == 200


def test_a_reload_keeps_the_groups_limit_and_min_rtt(rampart, port, latency_backend):
    start(rampart, port, latency_backend, "adaptive_concurrency min_rtt_requests=10;")
    load = Load(port, 10).start()
    wait_for(lambda: (lambda s: s["min_rtt_measurements"] >= 1 and s["updates"] >= 3)(
        adaptive(port)), timeout=60, what="a minRTT and 3 windows")
    load.stop()
    before = adaptive(port)
    rampart.reload()
    rampart.wait_processes(WORKERS)
    after = adaptive(port)
    assert after["phase"] == "sampling"
    assert after["min_rtt_ms"] == before["min_rtt_ms"] >= 20
    assert after["min_rtt_measurements"] == before["min_rtt_measurements"]
    assert after["limit"] == before["limit"] > 3


def test_bad_adaptive_concurrency_values_are_refused_with_file_and_line(conf_dir):
    def http(line):
        return (f"upstream u {{\n    server 127.0.0.1:1;\n    {line}\n}}\n"
                "server { listen 127.0.0.1:1; location / { proxy_pass http://u; } }")
    reference_nginx.assert_rampart_refuses(
        conf_dir, http("adaptive_concurrency interval=never;"), 5,
        '"adaptive_concurrency": invalid interval "never" (expected a time above 0)')
    reference_nginx.assert_rampart_refuses(
        conf_dir, http("adaptive_concurrency percentile=101;"), 5,
        '"adaptive_concurrency": invalid percentile "101" (expected 1 to 100)')
    reference_nginx.assert_rampart_refuses(
        conf_dir, http("adaptive_concurrency min_concurrency=9 max_concurrency=8;"), 5,
        '"adaptive_concurrency": min_concurrency 9 is above max_concurrency 8')
    reference_nginx.assert_rampart_refuses(
        conf_dir, http("adaptive_concurrency gradient=2;"), 5,
        '"adaptive_concurrency": invalid parameter "gradient=2"')


def test_fast_503_answers_of_the_backend_give_no_latency_sample(rampart, port, mode_backend):
    refusing = mode_backend("503")
    rampart.configure(conf(port, refusing.addr, "adaptive_concurrency min_rtt_requests=5;"),
                      workers=WORKERS)
    rampart.start()
    rampart.wait_processes(WORKERS)
    for _ in range(20):
        assert get(port, "/work").status == 503
    assert refusing.stats()["requests"] == 20
    # a backend refusing fast has no room to spare: nothing measured, the limit stays low
    a = adaptive(port)
    assert a["min_rtt_measurements"] == 0 and a["phase"] == "min_rtt" and a["limit"] == 3
