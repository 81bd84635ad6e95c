"""Outlier detection (passive health) and the panic threshold, against real backends.

A peer that fails in a row (gateway errors, connects) is ejected after exactly the
threshold counted across both workers, takes no traffic while ejected and comes back
when its time is up; one that flaps is ejected for longer each time, up to the cap;
max_ejection_percent keeps part of the pool in; the success-rate and failure-percentage
detectors eject the peer that does far worse than the others; a reload keeps who is
ejected and until when; below panic_threshold healthy peers, the pool balances over
all of its peers again. upstream_status shows it all.

The backends here are small HTTP/1.1 servers in the test process whose status the test
sets (a peer turns bad or good while rampart runs).
"""

import http.client
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import harness
import reference_nginx
from harness import get, wait_for

WIDE = 20.0  # seconds: deadlines for events, wide for ASan on 2 shared cores
SKEW = 100  # ms: each worker reads its clock once per loop turn, so two may differ a little


class Flaky:
    """An HTTP/1.1 backend answering every request with `status` (settable), its name as
    the body; `count` is the requests it answered."""

    def __init__(self, name, status=200):
        self.name = name
        self.status = status
        self.count = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with owner.lock:
                    owner.count += 1
                    status = owner.status
                body = (owner.name + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky():
    made = []

    def make(name, status=200):
        b = Flaky(name, status)
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def dead_addr():
    """An address nobody listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return addr


def conf(port, servers, upstream):
    lines = "\n        ".join(f"server {s};" for s in servers)
    return f"""
    upstream pool {{
        {lines}
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        add_header X-Worker $pid always;
        location / {{
            proxy_pass http://pool;
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
        }}
        location = /upstreams {{
            upstream_status;
        }}
    }}
    """


def status(port):
    r = get(port, "/upstreams", headers={"Connection": "close"})
    assert r.status == 200
    [u] = [u for u in json.loads(r.text)["upstreams"] if u["name"] == "pool"]
    return u


def peer(port, addr):
    [p] = [p for p in status(port)["peers"] if p["address"] == addr]
    return p


def send(port, conn=None):
    """One request to the pool (on conn, a kept-alive connection, if given): (status,
    worker pid)."""
    if conn is None:
        r = get(port, "/", headers={"Connection": "close"})
        return r.status, r.headers["X-Worker"]
    conn.request("GET", "/")
    r = conn.getresponse()
    r.read()
    return r.status, r.getheader("X-Worker")


def worker_connections(port):
    """Two kept-alive connections, each to a different one of the two workers (found by
    asking the status page, which sends nothing to the pool)."""
    by_worker = {}
    for _ in range(200):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/upstreams")
        r = c.getresponse()
        r.read()
        w = r.getheader("X-Worker")
        if w in by_worker:
            c.close()
        else:
            by_worker[w] = c
        if len(by_worker) == 2:
            return list(by_worker.values())
    pytest.fail("connections never reached both workers")


def drive(port, until, conns=None, limit=400):
    """Sends requests (alternating over conns when given) until until() holds; returns
    what they got: [(status, worker)]."""
    got = []
    while not until():
        assert len(got) < limit, f"no outcome after {limit} requests: {got[-5:]}"
        got.append(send(port, conns[len(got) % len(conns)] if conns else None))
    return got


def ejected(port, addr):
    return peer(port, addr)["ejected"]


def log_addr(addr):
    return re.escape(addr)


# ---- consecutive detectors ----------------------------------------------------------


def test_a_peer_answering_502_is_ejected_after_exactly_the_threshold_across_workers(
        rampart, port, flaky):
    good, bad = flaky("good"), flaky("bad", 502)
    rampart.configure(conf(port, [good.addr, bad.addr],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=3 "
                           "interval=1h base_ejection_time=2s;"), workers=2)
    rampart.start()
    rampart.wait_processes(2)
    conns = worker_connections(port)
    # each worker alternates the two peers; alternating the workers, the bad peer's
    # answers come from both (counted per worker, neither would reach 3)
    got = drive(port, lambda: bad.count == 3, conns)
    assert len({w for st, w in got if st == 502}) == 2, got
    p = peer(port, bad.addr)
    assert (p["ejected"], p["state"], p["ejections"], p["ejected_total"]) == \
        (True, "ejected", 1, 1), p
    assert p["consecutive_gateway_failure"] == 0  # the run was judged: it starts over
    assert 0 < p["ejection_left_ms"] <= 2000 + SKEW
    rampart.wait_log(r"upstream \"pool\": peer " + log_addr(bad.addr) +
                     r" ejected for 2000ms: consecutive gateway failures \(3 in a row\)")
    # ejected: it takes no traffic
    for i in range(20):
        assert send(port, conns[i % 2])[0] == 200
    assert bad.count == 3
    # its time is up: it takes traffic again, and the return is logged
    bad.status = 200
    wait_for(lambda: not ejected(port, bad.addr), timeout=WIDE, what="the peer's return")
    rampart.wait_log(r"upstream \"pool\": peer " + log_addr(bad.addr) +
                     r" is back after its ejection", timeout=WIDE)
    for i in range(10):
        assert send(port, conns[i % 2])[0] == 200
    assert bad.count > 3
    for c in conns:
        c.close()


def test_a_flapping_peer_is_ejected_longer_each_time_up_to_max_ejection_time(
        rampart, port, flaky):
    good, bad = flaky("good"), flaky("bad", 503)
    rampart.configure(conf(port, [good.addr, bad.addr],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=3 "
                           "interval=1h base_ejection_time=1s max_ejection_time=2500ms;"),
                      workers=2)
    rampart.start()
    rampart.wait_processes(2)
    for n, (length, low) in enumerate([(1000, 0), (2000, 1000), (2500, 2000)], start=1):
        # it keeps failing: each return ends three answers later in a longer ejection
        drive(port, lambda: bad.count == 3 * n)
        p = peer(port, bad.addr)
        assert (p["ejected"], p["ejections"], p["ejected_total"]) == (True, n, n), p
        assert low < p["ejection_left_ms"] <= length + SKEW, p
        rampart.wait_log(r"peer " + log_addr(bad.addr) + f" ejected for {length}ms: "
                         r"consecutive gateway failures \(3 in a row\), "
                         f"ejection multiplier {n}")
        wait_for(lambda: not ejected(port, bad.addr), timeout=WIDE, what="the peer's return")
    # capped: the next one is max_ejection_time again
    drive(port, lambda: bad.count == 12)
    p = peer(port, bad.addr)
    assert (p["ejected"], p["ejected_total"]) == (True, 4)
    assert 2000 < p["ejection_left_ms"] <= 2500 + SKEW, p
    assert len(re.findall(r"ejected for 2500ms", rampart.log_text())) == 2


def test_a_peer_whose_port_is_closed_is_ejected_after_consecutive_connect_failures(
        rampart, port, flaky):
    good, dead = flaky("good"), dead_addr()
    rampart.configure(conf(port, [good.addr, f"{dead} max_fails=0"],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=0 "
                           "consecutive_connect_failure=2 base_ejection_time=30s;"), workers=2)
    rampart.start()
    rampart.wait_processes(2)
    workers = set()
    for _ in range(40):
        st, w = send(port)
        assert st == 200  # a refused connect moves on to the good peer
        workers.add(w)
    assert len(workers) == 2
    p = peer(port, dead)
    assert (p["ejected"], p["requests"], p["failures"], p["ejected_total"]) == (True, 2, 2, 1), p
    rampart.wait_log(r"peer " + log_addr(dead) +
                     r" ejected for 30000ms: consecutive connect failures \(2 in a row\)")


def test_max_ejection_percent_keeps_part_of_the_pool_in(rampart, port, flaky):
    good = flaky("good")
    bad = [flaky(f"bad{i}", 502) for i in range(3)]
    rampart.configure(conf(port, [good.addr] + [b.addr for b in bad],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=2 "
                           "base_ejection_time=30s max_ejection_percent=50;"), workers=2)
    rampart.start()
    # two of the four may be out; the third bad peer keeps its traffic
    drive(port, lambda: sum(b.count for b in bad) >= 12)
    ps = {p["address"]: p for p in status(port)["peers"]}
    out = [b for b in bad if ps[b.addr]["ejected"]]
    kept = [b for b in bad if not ps[b.addr]["ejected"]]
    assert len(out) == 2 and len(kept) == 1, ps
    assert ps[kept[0].addr]["ejected_total"] == 0
    assert kept[0].count >= 4  # two runs of two, both judged
    assert not ps[good.addr]["ejected"]
    rampart.wait_log(r"peer " + log_addr(kept[0].addr) + r" not ejected for consecutive "
                     r"gateway failures: max_ejection_percent 50% of the pool is ejected already")
    assert status(port)["panic"] is False  # two of four healthy is not below 50%


# ---- interval detectors -------------------------------------------------------------


def test_success_rate_ejects_the_peer_far_below_the_others(rampart, port, flaky):
    good = [flaky(f"good{i}") for i in range(4)]
    bad = flaky("bad", 500)
    rampart.configure(conf(port, [b.addr for b in good] + [bad.addr],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=0 "
                           "consecutive_connect_failure=0 interval=1s base_ejection_time=30s "
                           "success_rate_minimum_hosts=5 success_rate_request_volume=5;"),
                      workers=2)
    rampart.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.monotonic() + WIDE
    while not ejected(port, bad.addr):
        assert time.monotonic() < deadline, "the success-rate detector never ejected"
        for _ in range(25):
            send(port, conn)
    conn.close()
    ps = {p["address"]: p for p in status(port)["peers"]}
    assert ps[bad.addr]["ejected_total"] == 1
    assert all(ps[b.addr]["ejected_total"] == 0 for b in good), ps
    # all others at 100%: the threshold is mean 80% - 1.9 x stdev 40% = 4%
    rampart.wait_log(r"peer " + log_addr(bad.addr) + r" ejected for 30000ms: success rate "
                     r"0\.0% below the pool's threshold 4\.0% \(\d+ requests\)")
    before = bad.count
    for _ in range(20):
        assert send(port)[0] == 200
    assert bad.count == before


def test_failure_percentage_ejects_a_peer_failing_at_its_threshold(rampart, port, flaky):
    good = [flaky(f"good{i}") for i in range(2)]
    bad = flaky("bad", 503)
    rampart.configure(conf(port, [b.addr for b in good] + [bad.addr],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=0 "
                           "interval=1s base_ejection_time=30s success_rate_minimum_hosts=0 "
                           "failure_percentage_threshold=90 failure_percentage_minimum_hosts=3 "
                           "failure_percentage_request_volume=5;"), workers=2)
    rampart.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.monotonic() + WIDE
    while not ejected(port, bad.addr):
        assert time.monotonic() < deadline, "the failure-percentage detector never ejected"
        for _ in range(15):
            send(port, conn)
    conn.close()
    rampart.wait_log(r"peer " + log_addr(bad.addr) + r" ejected for 30000ms: failure "
                     r"percentage 100\.0% at or above 90%")
    assert not any(peer(port, b.addr)["ejected"] for b in good)


# ---- state kept, panic ----------------------------------------------------------------


def test_an_ejection_survives_a_reload_with_its_deadline(rampart, port, flaky):
    good, bad = flaky("good"), flaky("bad", 502)
    text = conf(port, [good.addr, bad.addr],
                "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=2 "
                "base_ejection_time=30s;")
    rampart.configure(text, workers=2)
    rampart.start()
    drive(port, lambda: bad.count == 2)
    # the client can have its answer just before the worker records the attempt's outcome
    wait_for(lambda: ejected(port, bad.addr), timeout=WIDE, what="the ejection")
    p = peer(port, bad.addr)
    deadline = time.time() * 1000 + p["ejection_left_ms"]

    rampart.configure(text, workers=2)
    mark = rampart.log_size()
    rampart.reload()
    rampart.wait_log(r"generation 0 has drained", since=mark, timeout=WIDE)
    p = peer(port, bad.addr)
    assert (p["ejected"], p["ejections"], p["ejected_total"]) == (True, 1, 1), p
    # the same deadline (an ejection made afresh would end 30s from now)
    assert abs(time.time() * 1000 + p["ejection_left_ms"] - deadline) < 1500
    for _ in range(10):
        assert send(port)[0] == 200
    assert bad.count == 2


def test_below_panic_threshold_the_pool_balances_over_all_its_peers(rampart, port, flaky):
    good = flaky("good")
    bad = [flaky(f"bad{i}", 502) for i in range(2)]
    rampart.configure(conf(port, [good.addr] + [b.addr for b in bad],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=2 "
                           "base_ejection_time=30s max_ejection_percent=100;"), workers=2)
    rampart.start()
    drive(port, lambda: all(ejected(port, b.addr) for b in bad))
    counts = [b.count for b in bad]
    # one of three healthy, below 50%: ejected peers take traffic again
    drive(port, lambda: all(b.count > c for b, c in zip(bad, counts)))
    u = status(port)
    assert (u["panic"], u["panics"], u["panic_threshold"]) == (True, 1, 50), u
    assert all(p["ejected"] for p in u["peers"] if p["address"] != good.addr)
    rampart.wait_log(r"upstream \"pool\" in panic: 1 of 3 peers healthy, below "
                     r"panic_threshold 50%; balancing over all of them")


def test_panic_threshold_0_never_panics(rampart, port, flaky):
    good = flaky("good")
    bad = [flaky(f"bad{i}", 502) for i in range(2)]
    rampart.configure(conf(port, [good.addr] + [b.addr for b in bad],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=2 "
                           "base_ejection_time=30s max_ejection_percent=100;\n"
                           "        panic_threshold 0;"), workers=2)
    rampart.start()
    drive(port, lambda: all(ejected(port, b.addr) for b in bad))
    counts = [b.count for b in bad]
    for _ in range(30):
        assert send(port)[0] == 200  # the good peer takes it all
    assert [b.count for b in bad] == counts
    u = status(port)
    assert (u["panic"], u["panics"], u["panic_threshold"]) == (False, 0, 0), u
    assert "in panic" not in rampart.log_text()


def test_a_single_process_returns_ejected_peers_by_itself(rampart, port, flaky):
    # master_process off: no helper; the one process does the interval's work
    good, bad = flaky("good"), flaky("bad", 502)
    rampart.configure(conf(port, [good.addr, bad.addr],
                           "outlier_detection consecutive_5xx=0 consecutive_gateway_failure=2 "
                           "base_ejection_time=1s;"), main="master_process off;")
    rampart.start()
    drive(port, lambda: bad.count == 2)
    wait_for(lambda: ejected(port, bad.addr), timeout=WIDE, what="the ejection")
    rampart.wait_log(r"peer " + log_addr(bad.addr) + r" is back after its ejection",
                     timeout=WIDE)
    assert not ejected(port, bad.addr)


def test_upstream_status_shows_the_outlier_settings(rampart, port, flaky):
    good = flaky("good")
    rampart.configure(conf(port, [good.addr],
                           "outlier_detection consecutive_5xx=4 interval=3s "
                           "success_rate_stdev_factor=2.5;\n        panic_threshold 30;"))
    rampart.start()
    u = status(port)
    assert u["panic_threshold"] == 30
    od = u["outlier_detection"]
    assert (od["consecutive_5xx"], od["consecutive_gateway_failure"],
            od["consecutive_connect_failure"]) == (4, 3, 2)
    assert (od["interval_ms"], od["base_ejection_time_ms"], od["max_ejection_time_ms"],
            od["max_ejection_percent"]) == (3000, 30000, 300000, 50)
    assert od["success_rate_stdev_factor"] == 2.5
    assert od["failure_percentage_threshold"] == 0


# ---- configuration ------------------------------------------------------------------


@pytest.mark.parametrize("directive, message", [
    ("outlier_detection consecutive_5xx=x;",
     '"outlier_detection": invalid consecutive_5xx "x" (expected 0 to 2147483647)'),
    ("outlier_detection base_ejection_time=0;",
     '"outlier_detection": invalid base_ejection_time "0" (expected a time above 0)'),
    ("outlier_detection max_ejection_percent=150;",
     '"outlier_detection": invalid max_ejection_percent "150" (expected 0 to 100)'),
    ("outlier_detection failure_percentage_threshold=101;",
     '"outlier_detection": invalid failure_percentage_threshold "101" (expected 0 to 100)'),
    ("outlier_detection success_rate_stdev_factor=-1;",
     '"outlier_detection": invalid success_rate_stdev_factor "-1" (expected 0 to 100)'),
    ("outlier_detection consecutive_5xx;", '"outlier_detection": invalid parameter '
                                           '"consecutive_5xx"'),
    ("outlier_detection; outlier_detection;", '"outlier_detection": is duplicate'),
    ("panic_threshold 120;",
     '"panic_threshold": invalid value "120" (expected a percentage, 0 to 100)'),
    ("panic_threshold half;",
     '"panic_threshold": invalid value "half" (expected a percentage, 0 to 100)'),
])
def test_bad_values_are_refused_with_file_and_line(tmp_path, directive, message):
    http = ("upstream pool {\n"
            "    server 127.0.0.1:9;\n"
            f"    {directive}\n"
            "}\n")
    reference_nginx.assert_rampart_refuses(tmp_path, http, 5, message)


def test_the_directives_belong_in_an_upstream_block(tmp_path):
    http = ("server {\n"
            "    listen 127.0.0.1:9;\n"
            "    panic_threshold 50;\n"
            "}\n")
    reference_nginx.assert_rampart_refuses(
        tmp_path, http, 5, '"panic_threshold": not allowed in the server context')
