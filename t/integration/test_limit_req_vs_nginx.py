"""limit_req against Debian's nginx: the same limit_req configuration runs under
/usr/sbin/nginx (reference_nginx.py) and rampart (2 workers), both in front of one
local backend, and the same scripted, timed sequence of requests goes to each: bursts
of simultaneous requests at known offsets. Every request is classed as passed at once,
delayed, or refused, and the classes of each burst must be the same under both.

Which request of a burst gets which class depends on who arrives first, so a burst is
compared as a multiset. The rates are 1r/s (4r/s for a second limit) and the offsets
are chosen so that every request's excess is at least half a request away from the
burst or delay threshold it is compared with: half a second of leak, far more than the
jitter of threads starting or of ASan on 2 shared cores. A delay is at least a second,
so "at once" means under half a second.
"""

import threading
import time

import pytest

import harness
import reference_nginx

# name: (zones, the location's limit_req lines, script [(offset s, requests at once)],
#        the expected classes of each burst)
SCENARIOS = {
    # 1r/s burst=3: one now, three delayed 1, 2 and 3 s, two refused; 4.5 s later the
    # bucket is empty again: one now, one delayed
    "burst": ("limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;",
              "limit_req zone=z burst=3;",
              [(0.0, 6), (4.5, 2)],
              [["delayed"] * 3 + ["now"] + ["refused"] * 2, ["delayed", "now"]]),
    # nodelay: the whole burst now; 2.5 s later the bucket holds 0.5: two more fit
    "nodelay": ("limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;",
                "limit_req zone=z burst=3 nodelay;",
                [(0.0, 6), (2.5, 3)],
                [["now"] * 4 + ["refused"] * 2, ["now"] * 2 + ["refused"]]),
    # delay=2: three now, two delayed (1 and 2 s), two refused; later three now, one delayed
    "delay": ("limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;",
              "limit_req zone=z burst=4 delay=2;",
              [(0.0, 7), (5.0, 4)],
              [["delayed"] * 2 + ["now"] * 3 + ["refused"] * 2, ["delayed"] + ["now"] * 3]),
    # two limits: the fast one (4r/s, nodelay) would pass all five; the slow one (1r/s
    # burst=2) delays two and refuses two, and the delay is the slow one's
    "two limits": ("limit_req_zone $binary_remote_addr zone=fast:1m rate=4r/s;\n"
                   "limit_req_zone $binary_remote_addr zone=slow:1m rate=1r/s;",
                   "limit_req zone=fast burst=4 nodelay; limit_req zone=slow burst=2;",
                   [(0.0, 5), (3.5, 4)],
                   [["delayed"] * 2 + ["now"] + ["refused"] * 2,
                    ["delayed"] * 2 + ["now"] + ["refused"]]),
}


def http_for(port, backend, zones, limits):
    return (f"{zones}\n"
            f"server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    location / {{ {limits} proxy_pass http://{backend.addr}; }}\n"
            f"}}\n")


def classify(status, seconds):
    if status == 503:
        return "refused"
    assert status == 200, status
    return "now" if seconds < 0.5 else "delayed"


def run_script(port, script, t0, out):
    """Sends each burst of script at t0 + its offset, each request on its own connection;
    out[burst] gets the sorted classes of its requests."""
    results = [[None] * n for _, n in script]

    def one(b, i, at):
        time.sleep(max(0.0, at - time.monotonic()))
        sent = time.monotonic()
        r = harness.get(port, "/", headers={"X-Seq": f"{b}.{i}"}, timeout=30)
        results[b][i] = classify(r.status, time.monotonic() - sent)

    threads = [threading.Thread(target=one, args=(b, i, t0 + offset))
               for b, (offset, n) in enumerate(script) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.extend(sorted(r) for r in results)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_same_requests_pass_wait_and_fail_as_under_nginx(tmp_path, backend, name):
    reference_nginx.require()
    zones, limits, script, expected = SCENARIOS[name]
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    rampart = harness.Rampart(tmp_path / "rampart")
    try:
        nginx.configure(http_for(harness.free_port(), backend, zones, limits))
        nginx.start()
        text = reference_nginx.rampart_text(
            http_for(harness.free_port(), backend, zones, limits))
        rampart.configure(text=text.replace("worker_processes 1;", "worker_processes 2;"))
        rampart.start()
        # both at once, from one clock: the same offsets for both
        t0 = time.monotonic() + 0.2
        got_nginx, got_rampart = [], []
        other = threading.Thread(target=run_script,
                                 args=(nginx.port, script, t0, got_nginx))
        other.start()
        run_script(rampart.port, script, t0, got_rampart)
        other.join()
    finally:
        rampart.stop()
        nginx.stop()
    assert got_nginx == expected, f"nginx itself did not answer as the script expects"
    assert got_rampart == got_nginx
    problems = rampart.problems()
    assert not problems, "unexpected trouble in rampart:\n" + "\n".join(problems)
