"""The balancing methods end to end: the real binary with two workers in front of real
backends, load from h2load (HTTP/1.1 keep-alive clients), and what each backend
served counted by the backend itself.

Round robin's weighted shares hold across workers; least_conn and least_time send
little to a slow backend; consistent hashing keeps a key, and ip_hash a client
network, on one backend; and what the shared peer table learnt (a peer resting
after its failures, a peer's latency) survives a reload, so the new workers do not
learn it again at the clients' expense.

Run with RAMPART_BIN=/abs/path/to/rampart /usr/bin/python3 -m pytest.
"""
import http.client
import re
import shutil
import subprocess
import time

import pytest

import harness

pytestmark = pytest.mark.skipif(shutil.which("h2load") is None,
                                reason="h2load (nghttp2-client) is not installed")


def start(rampart, port, backends, method="", weights=None, params="", workers=2, extra=""):
    """rampart with `upstream u` over backends (with weights and server parameters)."""
    lines = []
    for i, b in enumerate(backends):
        w = f" weight={weights[i]}" if weights else ""
        lines.append(f"server {b.addr}{w} {params};")
    rampart.configure(f"upstream u {{\n {' '.join(lines)}\n {method}\n keepalive 32;\n}}\n"
                      f"{extra}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      f" location / {{ proxy_pass http://u; }}\n}}",
                      workers=workers)
    rampart.start()
    return rampart


def load(port, n, clients=8, headers=(), path="/"):
    """n requests over `clients` HTTP/1.1 keep-alive connections; asserts all succeeded."""
    cmd = ["h2load", "--h1", "-n", str(n), "-c", str(clients), "-m", "1", "-T", "20"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    m = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", run.stdout)
    assert m and int(m.group(2)) == n, run.stdout
    m = re.search(r"status codes: (\d+) 2xx", run.stdout)
    assert m and int(m.group(1)) == n, run.stdout


def served(backends):
    return [b.stats()["requests"] for b in backends]


def reset(backends):
    for b in backends:
        b.reset()


# -- shares and loads ------------------------------------------------------------


def test_round_robin_weighted_shares_hold_across_two_workers(rampart, port, backend_factory):
    backends = [backend_factory(name) for name in "abc"]
    start(rampart, port, backends, weights=[1, 2, 3])
    load(port, 10000)
    counts = served(backends)
    assert sum(counts) == 10000
    for count, weight in zip(counts, [1, 2, 3]):
        want = weight / 6
        assert abs(count / 10000 - want) <= want * 0.05, counts


def test_least_conn_sends_fewer_requests_to_a_slow_backend(rampart, port, backend_factory):
    fast = [backend_factory("fast1"), backend_factory("fast2")]
    slow = backend_factory("slow", delay=0.05)
    backends = fast + [slow]
    start(rampart, port, backends, method="least_conn;")
    load(port, 3000)
    counts = served(backends)
    assert counts[2] < 3000 * 0.15, counts
    assert min(counts[:2]) > 3000 * 0.35, counts


def test_least_time_header_sends_under_a_tenth_to_a_backend_50ms_slower(
        rampart, port, backend_factory):
    fast = [backend_factory("fast1"), backend_factory("fast2")]
    slow = backend_factory("slow", delay=0.05)
    backends = fast + [slow]
    start(rampart, port, backends, method="least_time header;")
    load(port, 3000, clients=6)
    counts = served(backends)
    assert counts[2] < 3000 * 0.10, counts
    assert min(counts[:2]) > 3000 * 0.3, counts


def test_random_two_sends_fewer_requests_to_a_slow_backend(rampart, port, backend_factory):
    fast = [backend_factory("fast1"), backend_factory("fast2")]
    slow = backend_factory("slow", delay=0.05)
    backends = fast + [slow]
    start(rampart, port, backends, method="random two least_conn;")
    load(port, 3000)
    counts = served(backends)
    assert counts[2] < 3000 * 0.15, counts


# -- stickiness ------------------------------------------------------------------


def backend_of(conn, headers=None):
    conn.request("GET", "/", headers=dict(headers or {}, Host="localhost"))
    r = conn.getresponse()
    r.read()
    assert r.status == 200
    return r.getheader("X-Backend-Name")


def test_consistent_hash_keeps_each_key_on_one_backend(rampart, port, backend_factory):
    backends = [backend_factory(name) for name in "abc"]
    start(rampart, port, backends, method="hash $http_x_user consistent;")
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(3)]
    homes = {}
    for round_ in range(4):
        for user in range(40):
            name = backend_of(conns[(user + round_) % 3], {"X-User": f"user-{user}"})
            assert homes.setdefault(user, name) == name, f"user-{user} moved"
    assert len(set(homes.values())) == 3, homes
    for c in conns:
        c.close()


def test_consistent_hash_moves_only_the_keys_of_a_backend_that_fails(
        rampart, port, backend_factory):
    backends = [backend_factory(name) for name in "abc"]
    start(rampart, port, backends, method="hash $http_x_user consistent;",
          params="max_fails=1 fail_timeout=30s")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    homes = {u: backend_of(conn, {"X-User": f"user-{u}"}) for u in range(60)}
    gone = backends[1]
    gone.stop()
    after = {}
    for u in range(60):  # the first request to the stopped one fails over, and it rests
        after[u] = backend_of(conn, {"X-User": f"user-{u}"})
    for u in range(60):
        assert after[u] != "b"
        if homes[u] != "b":
            assert after[u] == homes[u], f"user-{u} moved from {homes[u]} to {after[u]}"
    conn.close()


def test_ip_hash_keeps_each_client_network_on_one_backend(rampart, port, backend_factory):
    backends = [backend_factory(name) for name in "abc"]
    start(rampart, port, backends, method="ip_hash;")
    homes = {}
    for net in range(1, 25):
        for i in range(3):
            # 127.0.NET.x: a /24 of its own on loopback; the last octet does not count
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                              source_address=(f"127.0.{net}.{i + 1}", 0))
            name = backend_of(conn)
            conn.close()
            assert homes.setdefault(net, name) == name, f"127.0.{net}.0/24 moved"
    assert len(set(homes.values())) >= 2, homes


# -- what survives a reload --------------------------------------------------------


def upstream_addrs(rampart, since=0):
    text = (rampart.prefix / "logs" / "upstream.log").read_text()
    return [line.strip() for line in text[since:].splitlines() if line.strip()]


def test_a_resting_peer_stays_resting_across_a_reload(rampart, port, backend_factory):
    live = backend_factory("live")
    dead = harness.free_port()  # nothing listens: every connect is refused
    log = ("log_format ups '$upstream_addr';\n"
           "access_log logs/upstream.log ups;")
    rampart.configure(
        f"{log}\n"
        f"upstream u {{\n server 127.0.0.1:{dead} max_fails=1 fail_timeout=60s;\n"
        f" server {live.addr};\n keepalive 8;\n}}\n"
        f"server {{\n listen 127.0.0.1:{port};\n location / {{ proxy_pass http://u; }}\n}}",
        workers=2)
    rampart.start()
    # until both workers have met the dead peer (each request that does is retried)
    for _ in range(20):
        assert harness.get(port).status == 200
    harness.wait_for(lambda: len(upstream_addrs(rampart)) >= 20, what="20 log lines")
    tried_dead = [a for a in upstream_addrs(rampart) if f":{dead}" in a]
    assert tried_dead, "the dead peer was never tried"
    size = (rampart.prefix / "logs" / "upstream.log").stat().st_size
    rampart.reload()
    harness.wait_for(lambda: len(rampart.children()) == 3, what="the new generation")
    # a fresh table would send each new worker's first pick (round robin) to the dead peer
    for _ in range(40):
        assert harness.get(port).status == 200
    # a request's log line is written once its response has gone: wait for all of them
    harness.wait_for(lambda: len(upstream_addrs(rampart, size)) >= 40, what="40 log lines")
    after = upstream_addrs(rampart, size)
    assert not [a for a in after if f":{dead}" in a], after


def test_a_peers_latency_survives_a_reload(rampart, port, backend_factory):
    fast = [backend_factory("fast1"), backend_factory("fast2")]
    slow = backend_factory("slow", delay=0.05)
    start(rampart, port, fast + [slow], method="least_time header;")
    load(port, 300, clients=4)
    assert slow.stats()["requests"] >= 1  # its latency is known
    # the slow backend is replaced by a fast one on the same address, and rampart
    # reloads: the peer's average (about 50 ms, decaying over tens of seconds) is kept,
    # so the new workers still steer clear of it; a fresh table would give it a third
    slow_port = slow.port
    slow.stop()
    quick = backend_factory("quick", port=slow_port)
    rampart.reload()
    harness.wait_for(lambda: len(rampart.children()) == 3, what="the new generation")
    reset(fast)
    for _ in range(150):
        assert harness.get(port).status == 200
    got = quick.stats()["requests"]
    assert got < 150 * 0.1, (got, served(fast))
