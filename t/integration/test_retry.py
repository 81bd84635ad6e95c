"""Retries as a policy: which failures send a request to another peer (retry_on and
nginx's proxy_next_upstream), how many tries (retries, proxy_next_upstream_tries), the
per-try timeout and the deadline, backoff and Retry-After, what may be sent twice
(POST only when the peer never had it), the budget that keeps retries from
multiplying an outage, and that the client gets the last peer's own answer."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import harness
from harness import get, request
from reference_nginx import assert_rampart_refuses

HERE = os.path.dirname(os.path.abspath(__file__))


class ModeBackend:
    """A backend process answering every request one way (mode_backend.py)."""

    def __init__(self, mode, name=None, retry_after=None, delay=0, slow_every=0):
        args = [sys.executable, os.path.join(HERE, "mode_backend.py"), "--mode", mode,
                "--name", name or mode, "--delay", str(delay), "--slow-every", str(slow_every)]
        if retry_after is not None:
            args += ["--retry-after", str(retry_after)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])
        self.addr = "127.0.0.1:%d" % self.port

    def stats(self):
        r = get(self.port, "/__stats", headers={"Connection": "close"})
        return json.loads(r.text)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def mode_backend():
    made = []

    def make(mode, name=None, **kw):
        b = ModeBackend(mode, name, **kw)
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def dead_addr():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    return addr


def conf(port, servers, location="", upstream="", balancer=""):
    # max_fails=0: a failed try does not also rest the peer (nginx's max_fails=1 would),
    # so round robin alternates predictably
    lines = "\n        ".join(f"server {s} max_fails=0;" for s in servers)
    return f"""
    upstream pool {{
        {balancer}
        {lines}
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_connect_timeout 2s;
            proxy_read_timeout 10s;
            add_header X-Up-Addr $upstream_addr always;
            add_header X-Up-Status $upstream_status always;
            add_header X-Up-Time $upstream_response_time always;
            {location}
        }}
        location = /upstreams {{
            upstream_status;
        }}
    }}
    """


def pool_status(port):
    doc = json.loads(get(port, "/upstreams", headers={"Connection": "close"}).text)
    [u] = [u for u in doc["upstreams"] if u["name"] == "pool"]
    return u


def test_a_gateway_error_goes_to_the_next_peer_and_both_tries_are_listed(rampart, port,
                                                                          mode_backend):
    bad, good = mode_backend("503", "bad"), mode_backend("ok", "good")
    rampart.configure(conf(port, [bad.addr, good.addr], "retry_on gateway-error;",
                           balancer=""), workers=1, log_level="warn")
    rampart.start()
    seen_two_tries = False
    for _ in range(6):
        r = get(port, "/x")
        assert r.status == 200 and r.text == "good\n"
        if r.headers["X-Up-Status"] == "503, 200":
            seen_two_tries = True
            assert r.headers["X-Up-Addr"] == f"{bad.addr}, {good.addr}"
    assert seen_two_tries
    rampart.wait_log(r'retrying "GET /x" after status 503 from 127\.0\.0\.1:%d \(try 2 of 2\)'
                     % bad.port)


def test_without_a_status_condition_a_503_goes_to_the_client(rampart, port, mode_backend):
    bad = mode_backend("503", "bad")
    good = mode_backend("ok", "good")
    rampart.configure(conf(port, [bad.addr, good.addr]), workers=1)
    rampart.start()
    statuses = sorted(get(port, "/").status for _ in range(4))
    assert statuses == [200, 200, 503, 503]  # nginx's default: error timeout only
    assert bad.stats()["requests"] == 2


def test_when_every_try_fails_the_client_gets_the_last_peers_own_answer(rampart, port,
                                                                       mode_backend):
    a, b = mode_backend("503", "alpha"), mode_backend("503", "beta")
    rampart.configure(conf(port, [a.addr, b.addr], "retry_on 5xx; retry_backoff off;"),
                      workers=1)
    rampart.start()
    r = get(port, "/")
    assert r.status == 503
    # the body is the backend's, not rampart's error page
    assert r.text in ("alpha unavailable\n", "beta unavailable\n")
    assert r.headers["X-Up-Status"] == "503, 503"
    assert r.headers.get("X-Backend-Name") in ("alpha", "beta")


def test_retries_caps_the_tries(rampart, port, mode_backend):
    peers = [mode_backend("503", f"b{i}") for i in range(4)]
    rampart.configure(conf(port, [p.addr for p in peers], "retry_on 503; retries 2;"),
                      workers=1)
    rampart.start()
    r = get(port, "/")
    assert r.status == 503
    assert r.headers["X-Up-Status"] == "503, 503, 503"
    assert sum(p.stats()["requests"] for p in peers) == 3


def test_nginx_next_upstream_tries_counts_the_first_try(rampart, port, mode_backend):
    peers = [mode_backend("503", f"b{i}") for i in range(4)]
    rampart.configure(conf(port, [p.addr for p in peers],
                           "proxy_next_upstream http_503; proxy_next_upstream_tries 2;"),
                      workers=1)
    rampart.start()
    r = get(port, "/")
    assert r.headers["X-Up-Status"] == "503, 503"
    assert sum(p.stats()["requests"] for p in peers) == 2


def test_next_upstream_off_answers_a_refused_connect_with_502(rampart, port, mode_backend):
    good = mode_backend("ok", "good")
    dead = dead_addr()
    rampart.configure(conf(port, [dead, good.addr], "proxy_next_upstream off;"), workers=1)
    rampart.start()
    statuses = sorted(get(port, "/").status for _ in range(4))
    assert statuses == [200, 200, 502, 502]


def test_a_refused_connect_goes_to_the_next_peer_by_default(rampart, port, mode_backend):
    good = mode_backend("ok", "good")
    rampart.configure(conf(port, [dead_addr(), good.addr]), workers=1)
    rampart.start()
    for _ in range(4):
        assert get(port, "/").status == 200


def test_a_hanging_peer_fails_over_after_the_per_try_timeout(rampart, port, mode_backend):
    hang, good = mode_backend("hang", "hang"), mode_backend("ok", "good")
    rampart.configure(conf(port, [hang.addr, good.addr],
                           "retry_on timeout; per_try_timeout 300ms;"), workers=1)
    rampart.start()
    for _ in range(4):
        t0 = time.monotonic()
        r = get(port, "/")
        assert r.status == 200 and r.text == "good\n"
        # far below proxy_read_timeout's 10s: the per-try timeout moved it on
        assert time.monotonic() - t0 < 8
    assert hang.stats()["requests"] == 2
    rampart.wait_log(r"retrying \"GET /\" after timeout from 127\.0\.0\.1:%d" % hang.port)


def test_the_deadline_stops_further_tries(rampart, port, mode_backend):
    peers = [mode_backend("hang", f"h{i}") for i in range(3)]
    rampart.configure(conf(port, [p.addr for p in peers],
                           "per_try_timeout 400ms; retry_backoff off; "
                           "proxy_next_upstream_timeout 600ms;"), workers=1)
    rampart.start()
    r = get(port, "/")
    assert r.status == 504
    # two tries started within the deadline, the third would start after it
    assert r.headers["X-Up-Status"] == "504, 504"


def test_a_post_is_not_sent_again_after_it_reached_a_peer(rampart, port, mode_backend):
    a, b = mode_backend("close", "a"), mode_backend("close", "b")
    rampart.configure(conf(port, [a.addr, b.addr]), workers=1)
    rampart.start()
    r = request(port, "/", method="POST", body=b"pay=1")
    assert r.status == 502
    assert a.stats()["posts"] + b.stats()["posts"] == 1
    # a GET may go again: it is idempotent
    r = get(port, "/")
    assert r.status == 502
    assert r.headers["X-Up-Status"] == "502, 502"


def test_a_post_goes_to_the_next_peer_after_a_refused_connect(rampart, port, mode_backend):
    good = mode_backend("ok", "good")
    rampart.configure(conf(port, [dead_addr(), good.addr], "proxy_next_upstream_tries 2;"),
                      workers=1)
    rampart.start()
    for _ in range(4):
        r = request(port, "/", method="POST", body=b"pay=1")
        assert r.status == 200
    assert good.stats()["posts"] == 4


def test_a_post_goes_again_after_a_503_the_peer_marks_unprocessed(rampart, port,
                                                                  mode_backend):
    busy, good = mode_backend("overloaded", "busy"), mode_backend("ok", "good")
    rampart.configure(conf(port, [busy.addr, good.addr], "retry_on 503;"), workers=1)
    rampart.start()
    for _ in range(4):
        r = request(port, "/", method="POST", body=b"x")
        assert r.status == 200
    # but a plain 503 after a POST reached the peer is the client's answer
    plain = mode_backend("503", "plain")
    rampart.configure(conf(port, [plain.addr, good.addr], "retry_on 503;"), workers=1)
    rampart.reload()
    harness.wait_for(lambda: "plain" in get(port, "/").text or True)
    posts = [request(port, "/", method="POST", body=b"x").status for _ in range(4)]
    assert sorted(posts) == [200, 200, 503, 503]


def test_retry_non_idempotent_lets_a_post_go_again(rampart, port, mode_backend):
    a, good = mode_backend("close", "a"), mode_backend("ok", "good")
    rampart.configure(conf(port, [a.addr, good.addr], "retry_non_idempotent on;"), workers=1)
    rampart.start()
    for _ in range(4):
        assert request(port, "/", method="POST", body=b"x").status == 200
    assert a.stats()["posts"] == 2


def test_retry_after_is_waited_before_the_next_try(rampart, port, mode_backend):
    slow, good = mode_backend("503", "slow", retry_after=1), mode_backend("ok", "good")
    rampart.configure(conf(port, [slow.addr, good.addr], "retry_on 503;"), workers=1)
    rampart.start()
    waited = None
    for _ in range(2):
        t0 = time.monotonic()
        r = get(port, "/")
        assert r.status == 200
        if r.headers["X-Up-Status"] == "503, 200":
            waited = time.monotonic() - t0
    assert waited is not None and waited >= 0.95
    rampart.wait_log(r"after status 503 from .* in 1000ms")


def test_a_retry_after_beyond_the_cap_ends_the_retries(rampart, port, mode_backend):
    slow, good = mode_backend("503", "slow", retry_after=60), mode_backend("ok", "good")
    rampart.configure(conf(port, [slow.addr, good.addr],
                           "retry_on 503; retry_backoff base=10ms retry_after_max=2s;"),
                      workers=1)
    rampart.start()
    statuses = sorted(get(port, "/").status for _ in range(4))
    assert statuses == [200, 200, 503, 503]


def test_the_backoff_waits_within_its_bounds(rampart, port, mode_backend):
    peers = [mode_backend("503", f"b{i}") for i in range(3)]
    rampart.configure(conf(port, [p.addr for p in peers],
                           "retry_on 503; retry_backoff base=200ms max=300ms;"),
                      workers=1, log_level="warn")
    rampart.start()
    for _ in range(3):
        assert get(port, "/").headers["X-Up-Status"] == "503, 503, 503"
    waits = [int(m) for m in re.findall(r"retrying .* in (\d+)ms", rampart.log_text())]
    assert len(waits) == 6
    firsts, seconds = waits[0::2], waits[1::2]
    assert all(0 <= w <= 200 for w in firsts)      # base x 1
    assert all(0 <= w <= 300 for w in seconds)     # base x 2, capped at max
    assert len(set(waits)) > 1                     # jittered, not fixed


def test_the_budget_refuses_retries_beyond_its_share(rampart, port, mode_backend):
    hang = mode_backend("hang", "hang")
    bad = mode_backend("503", "bad")
    # Every request fails its first try; retries wait on the hanging peer, so each
    # retry stays in flight: only min=1 of them may be in flight at once.
    rampart.configure(conf(port, [bad.addr, hang.addr],
                           "retry_on 503 timeout; per_try_timeout 3s; retry_backoff off;",
                           upstream="retry_budget 20% min=1;", balancer=""),
                      workers=1, log_level="warn")
    rampart.start()
    results = []

    def one():
        try:
            results.append(get(port, "/", timeout=20).status)
        except Exception as e:  # noqa: BLE001
            results.append(repr(e))
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    u = pool_status(port)
    assert u["budget_denied"] >= 1
    assert u["retries_inflight"] == 0
    assert u["retried"] + u["budget_denied"] >= 2
    rampart.wait_log(r"no retry of \"GET /\" after .*retry budget exhausted")


def test_retry_counts_show_in_upstream_status(rampart, port, mode_backend):
    bad, good = mode_backend("503", "bad"), mode_backend("ok", "good")
    rampart.configure(conf(port, [bad.addr, good.addr], "retry_on 503;"), workers=2)
    rampart.start()
    for _ in range(10):
        assert get(port, "/").status == 200
    u = pool_status(port)
    assert u["retried"] == bad.stats()["requests"] > 0
    peers = {p["address"]: p for p in u["peers"]}
    assert peers[good.addr]["retries"] == u["retried"]
    assert u["retries_inflight"] == 0


def test_a_policy_in_http_is_inherited_and_a_location_overrides_it(rampart, port,
                                                                   mode_backend):
    bad, good = mode_backend("503", "bad"), mode_backend("ok", "good")
    text = f"""
    retry_on 503;
    upstream pool {{ server {bad.addr} max_fails=0; server {good.addr} max_fails=0; }}
    server {{
        listen 127.0.0.1:{port};
        location /inherits {{ proxy_pass http://pool; }}
        location /off {{ proxy_pass http://pool; retry_on off; }}
    }}
    """
    rampart.configure(text, workers=1)
    rampart.start()
    assert all(get(port, "/inherits").status == 200 for _ in range(4))
    assert sorted(get(port, "/off").status for _ in range(4)) == [200, 200, 503, 503]


@pytest.mark.parametrize("line,message", [
    ("retry_on sometimes;", 'invalid retry condition "sometimes"'),
    ("retry_on 5xx off;", '"off" cannot be combined with other conditions'),
    ("retries many;", 'invalid number "many"'),
    ("per_try_timeout soon;", 'invalid time "soon"'),
    ("retry_backoff max=1s;", '"base=" must be given and above zero'),
    ("retry_backoff base=1s max=10ms;", '"max=" must not be below "base="'),
    ("proxy_next_upstream http_418;", 'invalid value "http_418"'),
    ("retry_non_idempotent maybe;", 'invalid value "maybe", it must be "on" or "off"'),
])
def test_bad_retry_directives_are_refused_with_file_and_line(conf_dir, line, message):
    http = ("server {\n listen 127.0.0.1:1;\n location / {\n proxy_pass http://127.0.0.1:1;\n"
            f" {line}\n }}\n}}\n")
    assert_rampart_refuses(conf_dir, http, 7, '"%s": %s' % (line.split()[0], message))


@pytest.mark.parametrize("line,message", [
    ("retry_budget lots;", 'invalid budget "lots", it must be a percentage such as 20%'),
    ("retry_budget 0%;", 'invalid budget "0%", it must be 1% to 100%'),
    ("retry_budget 20% floor=3;", 'invalid parameter "floor=3"'),
])
def test_bad_retry_budgets_are_refused_with_file_and_line(conf_dir, line, message):
    http = (f"upstream pool {{\n server 127.0.0.1:1;\n {line}\n}}\n"
            "server {\n listen 127.0.0.1:1;\n location / { proxy_pass http://pool; }\n}\n")
    assert_rampart_refuses(conf_dir, http, 5, '"%s": %s' % (line.split()[0], message))


def test_max_retries_caps_the_retries_in_flight(rampart, port, mode_backend):
    hang, bad = mode_backend("hang", "hang"), mode_backend("503", "bad")
    # every first try on bad fails and its retry waits on hang: one retry in flight at most
    rampart.configure(conf(port, [bad.addr, hang.addr],
                           "retry_on 503 timeout; per_try_timeout 2s; retry_backoff off;",
                           upstream="retry_budget off; max_retries 1;"),
                      workers=1, log_level="warn")
    rampart.start()
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(port, "/", timeout=20).status))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    u = pool_status(port)
    assert u["budget_denied"] >= 1 and u["retries_inflight"] == 0
    rampart.wait_log(r"no retry of \"GET /\" after .*: max_retries reached")
