"""The shared peer table: what the workers know about each upstream peer (in flight,
failures, latency, totals) is one state for all of them, `upstream_status` shows it
as JSON, and a reload keeps it for the peers that stay."""

import json
import socket
import threading

import pytest

import harness
from h2_backend import H2Backend
from harness import get


@pytest.fixture(params=["http1", "http2"])
def proto(request):
    """The same scenario over HTTP/1.1 and HTTP/2 upstreams: one attempt engine."""
    return request.param


@pytest.fixture
def make_backend(proto, backend_factory):
    made = []

    def make(name):
        if proto == "http1":
            return backend_factory(name).addr
        b = H2Backend().start()
        made.append(b)
        return "127.0.0.1:%d" % b.port
    yield make
    for b in made:
        b.stop()


def h2_line(proto):
    return "http2;" if proto == "http2" else ""


def conf(port, servers, upstream="", workers_note=""):
    lines = "\n        ".join(f"server {s};" for s in servers)
    return f"""
    upstream pool {{
        {lines}
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_connect_timeout 1s;
            proxy_read_timeout 5s;
            add_header X-Worker $pid always;
        }}
        location = /upstreams {{
            upstream_status;
        }}
    }}
    """


def dead_addr():
    """An address nobody listens on (connections are refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return addr


def status(port):
    r = get(port, "/upstreams", headers={"Connection": "close"})
    assert r.status == 200
    assert r.headers.get("Content-Type") == "application/json"
    return json.loads(r.text)


def peers(port, name="pool"):
    doc = status(port)
    [u] = [u for u in doc["upstreams"] if u["name"] == name]
    return {p["address"]: p for p in u["peers"]}


def test_upstream_status_lists_every_peer_with_its_shared_counters(rampart, port,
                                                                   backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    rampart.configure(conf(port, [f"{a.addr} weight=3", f"{b.addr} max_fails=2"]), workers=2)
    rampart.start()
    for _ in range(40):
        assert get(port, "/", headers={"Connection": "close"}).status == 200
    ps = peers(port)
    assert set(ps) == {a.addr, b.addr}
    # fresh connections land on both workers: the totals are theirs together
    assert ps[a.addr]["requests"] + ps[b.addr]["requests"] == 40
    # each worker's smooth sequence (a a b a ...) holds 3:1 to within one request, so
    # the sum is 30:10 give or take one, as the connections split between the workers
    assert abs(ps[a.addr]["requests"] - 30) <= 1, ps
    assert ps[a.addr]["weight"] == 3 and ps[b.addr]["max_fails"] == 2
    assert all(p["state"] == "up" and p["inflight"] == 0 and p["failures"] == 0
               for p in ps.values())
    assert ps[a.addr]["latency_last_byte_ms"] >= 0
    doc = status(port)
    [u] = [u for u in doc["upstreams"] if u["name"] == "pool"]
    assert (u["balancer"], u["implicit"]) == ("round_robin", False)


def test_upstream_status_refuses_other_methods(rampart, port, backend):
    rampart.configure(conf(port, [backend.addr]))
    rampart.start()
    r = get(port, "/upstreams", method="POST", headers={"Connection": "close"})
    assert r.status == 405


def test_failures_count_across_workers(rampart, port, proto, make_backend):
    # max_fails=3 with two workers: per-worker counting (nginx without a zone) would let
    # up to six requests fail on the dead peer before both workers rest it.
    live, dead = make_backend("live"), dead_addr()
    rampart.configure(conf(port, [live, f"{dead} max_fails=3 fail_timeout=60s"],
                           upstream=h2_line(proto)), workers=2)
    rampart.start()
    rampart.wait_processes(2)
    workers = set()
    for _ in range(60):
        r = get(port, "/", headers={"Connection": "close"})
        assert r.status == 200  # a refused connect moves on to the live peer
        workers.add(r.headers["X-Worker"])
    assert len(workers) == 2  # both workers took requests
    ps = peers(port)
    assert ps[dead]["failures"] == 3
    assert ps[dead]["state"] == "unavailable"
    rampart.wait_log(r"upstream server temporarily disabled: upstream \"pool\", server "
                     + dead.replace(".", r"\.") + r", 3 failures")


def test_a_reload_keeps_the_state_of_peers_that_stay(rampart, port, proto, make_backend):
    live, dead = make_backend("live"), dead_addr()
    rampart.configure(conf(port, [live, f"{dead} max_fails=2 fail_timeout=60s"],
                           upstream=h2_line(proto)))
    rampart.start()
    for _ in range(10):
        assert get(port, "/?delay=0.02", headers={"Connection": "close"}).status == 200
    before = peers(port)
    assert before[dead]["failures"] == 2 and before[dead]["state"] == "unavailable"
    assert before[live]["latency_last_byte_ms"] > 0

    # a new configuration with one more peer: the two that stay keep what was learnt
    extra = make_backend("extra")
    rampart.configure(conf(port, [live, f"{dead} max_fails=2 fail_timeout=60s", extra],
                           upstream=h2_line(proto)))
    mark = rampart.log_size()
    rampart.reload()
    rampart.wait_log(r"generation 0 has drained", since=mark)  # the new workers answer
    after = peers(port)
    assert set(after) == {live, dead, extra}
    assert after[dead]["failures"] == 2 and after[dead]["fails"] == 2
    assert after[dead]["state"] == "unavailable"  # still resting: no request goes there
    assert after[live]["requests"] == before[live]["requests"]
    assert after[live]["latency_last_byte_ms"] > 0
    assert after[extra]["requests"] == 0
    for _ in range(10):
        assert get(port, "/", headers={"Connection": "close"}).status == 200
    assert peers(port)[dead]["failures"] == 2


def test_max_conns_counts_requests_in_flight_across_workers(rampart, port, backend_factory):
    # One slow request holds the only slot of `a` (its weight makes it every worker's first
    # choice); while it runs, requests through either worker go to `b`.
    a, b = backend_factory("a"), backend_factory("b")
    rampart.configure(conf(port, [f"{a.addr} max_conns=1 weight=1000", b.addr]), workers=2)
    rampart.start()
    rampart.wait_processes(2)
    slow = {}

    def hold():
        slow["r"] = get(port, "/?delay=3", headers={"Connection": "close"}, timeout=10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        harness.wait_for(lambda: peers(port)[a.addr]["inflight"] == 1,
                         what="the slow request in flight on a")
        assert peers(port)[a.addr]["state"] == "full"
        for _ in range(10):
            r = get(port, "/", headers={"Connection": "close"})
            assert (r.status, r.text) == (200, "b\n")
    finally:
        t.join()
    assert (slow["r"].status, slow["r"].text) == (200, "a\n")
    assert peers(port)[a.addr]["state"] == "up"


def test_a_worker_killed_mid_request_gives_its_counts_back(rampart, port, backend_factory):
    # Two requests in flight on `a` (each holding a connection), then their worker dies:
    # the master gives back what the dead worker held, or least_conn and max_conns would
    # see `a` busy for ever.
    a = backend_factory("a")
    rampart.configure(conf(port, [f"{a.addr} max_conns=2"], upstream="least_conn;"))
    rampart.start()
    [worker], _ = rampart.wait_processes(1)
    results = []

    def hold():
        try:
            results.append(get(port, "/?delay=5", headers={"Connection": "close"}, timeout=10))
        except Exception as e:  # noqa: BLE001 - the worker dies under it
            results.append(e)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    harness.wait_for(lambda: peers(port)[a.addr]["inflight"] == 2, what="two requests in flight")
    assert peers(port)[a.addr]["state"] == "full"
    mark = rampart.log_size()
    rampart.kill(worker)
    rampart.wait_log(r"worker process %d left 2 requests and 2 connections to upstream peers "
                     r"counted: given back" % worker, since=mark)
    for t in threads:
        t.join()
    rampart.wait_processes(1, exclude=(worker,))
    ps = peers(port)
    assert (ps[a.addr]["inflight"], ps[a.addr]["connections"], ps[a.addr]["state"]) == (0, 0, "up")
    assert get(port, "/", headers={"Connection": "close"}).status == 200
