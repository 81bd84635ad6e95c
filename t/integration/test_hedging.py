"""Hedging: an idempotent request whose first try has not answered after a delay gets a
second try on another peer, the first answer wins and the other try is cancelled;
hedges take slots of the retry budget; requests with bodies or unsafe methods are never
hedged."""

import json
import threading
import time

from harness import get, request
from reference_nginx import assert_rampart_refuses
from test_retry import mode_backend, pool_status  # noqa: F401  (the fixture)

import pytest


def conf(port, servers, location, upstream=""):
    lines = "\n        ".join(f"server {s} max_fails=0;" for s in servers)
    return f"""
    upstream pool {{
        {lines}
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_read_timeout 20s;
            add_header X-Up-Addr $upstream_addr always;
            {location}
        }}
        location = /upstreams {{ upstream_status; }}
    }}
    """


def p99(samples):
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def timed_gets(port, n, path="/"):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = get(port, path, timeout=30)
        assert r.status == 200
        out.append(time.monotonic() - t0)
    return out


def test_a_slow_first_try_is_raced_by_a_hedge_and_the_first_answer_wins(rampart, port,
                                                                         mode_backend):
    slow = mode_backend("ok", "slow", delay=3)
    fast = mode_backend("ok", "fast")
    rampart.configure(conf(port, [slow.addr, fast.addr], "hedging 100ms;"), workers=1)
    rampart.start()
    for _ in range(4):
        t0 = time.monotonic()
        r = get(port, "/", timeout=30)
        assert r.status == 200 and r.text == "fast\n"
        assert time.monotonic() - t0 < 2.5  # the slow peer's 3 s never reach the client
    assert slow.stats()["requests"] == 2 and fast.stats()["requests"] == 4
    rampart.wait_log(r"hedging \"GET /\" to another peer: 127\.0\.0\.1:%d has not answered"
                     % slow.port)
    assert pool_status(port)["retried"] == 2


def test_hedging_lowers_p99_when_one_peer_is_slow_on_a_tenth_of_requests(rampart, port,
                                                                          mode_backend):
    a = mode_backend("ok", "a", delay=0.6, slow_every=5)  # 10% of all requests are slow
    b = mode_backend("ok", "b")
    rampart.configure(conf(port, [a.addr, b.addr], ""), workers=1)
    rampart.start()
    plain = timed_gets(port, 100)
    rampart.configure(conf(port, [a.addr, b.addr], "hedging 50ms;"), workers=1)
    rampart.reload()
    hedged = timed_gets(port, 100)
    assert p99(plain) >= 0.55
    assert p99(hedged) < p99(plain) / 2
    u = pool_status(port)
    # only the slow requests (and at most as many as there were) were hedged
    assert 1 <= u["retried"] <= 12
    assert u["budget_denied"] == 0


def test_the_budget_caps_hedges_when_every_peer_is_slow(rampart, port, mode_backend):
    a = mode_backend("ok", "a", delay=1)
    b = mode_backend("ok", "b", delay=1)
    rampart.configure(conf(port, [a.addr, b.addr], "hedging 50ms;",
                           upstream="retry_budget 20% min=1;"), workers=1)
    rampart.start()
    done = []

    def one():
        done.append(get(port, "/", timeout=30).status)
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert done == [200] * 6
    u = pool_status(port)
    assert u["budget_denied"] >= 1
    # with 6 in flight a 20% budget (min 1) lets one hedge at a time: never six
    assert u["retried"] + u["budget_denied"] == 6
    assert u["retried"] <= 2
    assert a.stats()["requests"] + b.stats()["requests"] == 6 + u["retried"]


def test_a_post_is_never_hedged(rampart, port, mode_backend):
    slow = mode_backend("ok", "slow", delay=1)
    fast = mode_backend("ok", "fast")
    rampart.configure(conf(port, [slow.addr, fast.addr], "hedging 50ms;"), workers=1)
    rampart.start()
    names = sorted(request(port, "/", method="POST", body=b"x", timeout=30).text
                   for _ in range(2))
    assert names == ["fast\n", "slow\n"]
    assert pool_status(port)["retried"] == 0


def test_a_percentile_delay_follows_the_pools_latency(rampart, port, mode_backend):
    a = mode_backend("ok", "a", delay=2, slow_every=10)
    b = mode_backend("ok", "b")
    rampart.configure(conf(port, [a.addr, b.addr], "hedging p80 min=30ms;"), workers=1)
    rampart.start()
    samples = timed_gets(port, 60)
    # the slow tenth of a's answers are hedged after about the pool's p80 (tens of ms)
    assert max(samples) < 1.5
    assert pool_status(port)["retried"] >= 1


@pytest.mark.parametrize("line,message", [
    ("hedging soon;", 'invalid delay "soon", it must be a time or a percentile such as p95'),
    ("hedging p100;", 'invalid percentile "p100", it must be p1 to p99'),
    ("hedging 50ms min=10ms;", 'invalid parameter "min=10ms"'),
    ("hedging off min=1s;", '"off" takes no parameters'),
])
def test_bad_hedging_is_refused_with_file_and_line(conf_dir, line, message):
    http = ("server {\n listen 127.0.0.1:1;\n location / {\n proxy_pass http://127.0.0.1:1;\n"
            f" {line}\n }}\n}}\n")
    assert_rampart_refuses(conf_dir, http, 7, '"hedging": %s' % message)


def test_an_http2_upstream_try_that_hangs_is_raced_by_a_hedge(rampart, port):
    import os
    import signal
    from h2_backend import H2Backend
    a, b = H2Backend().start(), H2Backend().start()
    try:
        rampart.configure(conf(port, [a.addr, b.addr], "hedging 100ms;", upstream="http2;"),
                          workers=1)
        rampart.start()
        assert all(get(port, "/").status == 200 for _ in range(4))  # both connections up
        os.kill(a.proc.pid, signal.SIGSTOP)  # a hangs: its streams never answer
        try:
            for _ in range(6):
                t0 = time.monotonic()
                r = get(port, "/", timeout=30)
                assert r.status == 200
                assert time.monotonic() - t0 < 5
            assert pool_status(port)["retried"] >= 3
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
    finally:
        a.stop()
        b.stop()
