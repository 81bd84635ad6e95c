"""Active and passive health together: an ejection by outlier detection ends only when
its time is over and an active check then passes; the panic threshold counts peers
that either mechanism took out."""

import json
import time

import harness
from harness import get
from test_retry import mode_backend, pool_status  # noqa: F401  (the fixture)


def conf(port, servers, upstream, location=""):
    lines = "\n        ".join(f"server {s} max_fails=0;" for s in servers)
    return f"""
    match alive {{ status 200-599; }}
    upstream pool {{
        {lines}
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://pool; {location} }}
        location = /upstreams {{ upstream_status; }}
    }}
    """


def peer(port, addr):
    return {p["address"]: p for p in pool_status(port)["peers"]}[addr]


def test_an_ejection_ends_only_when_an_active_check_passes_after_its_time(rampart, port,
                                                                          mode_backend):
    bad, good = mode_backend("503", "bad"), mode_backend("ok", "good")
    # the checks pass (the process answers), the traffic fails: outlier detection ejects
    rampart.configure(conf(port, [bad.addr, good.addr],
                           "health_check interval=3s match=alive;\n"
                           "outlier_detection consecutive_gateway_failure=2 "
                           "base_ejection_time=300ms;"), workers=2)
    rampart.start()
    harness.wait_for(lambda: peer(port, bad.addr)["health"] == "healthy", timeout=15,
                     what="the first checks")
    for _ in range(6):
        get(port, "/")
    harness.wait_for(lambda: peer(port, bad.addr)["ejected"], timeout=10, what="ejection")
    since = rampart.log_size()
    time.sleep(0.6)  # its 300 ms are over, but no check has passed since
    p = peer(port, bad.addr)
    assert p["ejected"] and p["ejection_left_ms"] == 0 and p["state"] == "ejected"
    assert all(get(port, "/").text == "good\n" for _ in range(6))  # still out
    rampart.wait_log(r"returns from its ejection: its time is over and a health check passed",
                     since=since, timeout=15)
    assert not peer(port, bad.addr)["ejected"]


def test_panic_counts_peers_out_by_either_mechanism(rampart, port, mode_backend):
    # a fails its checks (it closes without answering): unhealthy; b passes them (any
    # answer does, match alive) but answers 503: ejected by its traffic; c is fine
    a, b, c = mode_backend("close", "a"), mode_backend("503", "b"), mode_backend("ok", "c")
    rampart.configure(conf(port, [a.addr, b.addr, c.addr],
                           "health_check interval=1s match=alive;\n"
                           "outlier_detection consecutive_gateway_failure=2 "
                           "base_ejection_time=60s max_ejection_percent=100;"), workers=1,
                      log_level="notice")
    rampart.start()
    harness.wait_for(lambda: peer(port, a.addr)["health"] == "unhealthy"
                     and peer(port, b.addr)["health"] == "healthy", timeout=15,
                     what="the checks' verdicts")
    assert pool_status(port)["panic"] is False  # 2 of 3 healthy
    for _ in range(6):
        get(port, "/")
    harness.wait_for(lambda: peer(port, b.addr)["ejected"], timeout=10, what="b ejected")
    # 1 of 3 healthy, below 50%: the pool balances over all three rather than crush c
    seen = set()
    harness.wait_for(lambda: (seen.add(get(port, "/").status), len(seen) > 1)[1],
                     timeout=10, what="traffic to the out peers too")
    assert pool_status(port)["panic"] is True
    rampart.wait_log(r'upstream "pool" in panic: 1 of 3 peers healthy, below panic_threshold 50%')
