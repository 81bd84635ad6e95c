"""limit_req as nginx's: `limit_req_zone`, `limit_req` with burst, nodelay and delay=N,
`limit_req_status`, `limit_req_log_level`, `limit_req_dry_run` and `$limit_req_status`,
through 2 workers sharing one zone, with real clients over HTTP/1.1 and HTTP/2.

The counts are computed from the rate and the burst: a slow rate (a few requests a
minute) leaks less than one request over the whole run, so what passes of a quick
sequence is exactly burst + 1, however slow the machine. Paces are measured loosely
(ASan on 2 shared cores): a delay is never shorter than the bucket says, and not much
longer.
"""

import socket
import threading
import time

from h2client import H2Client
from harness import get, wait_for
from reference_nginx import assert_rampart_refuses

LOG_FORMAT = "log_format lr '$pid $limit_req_status $status $http_x_seq';\n"


def start(rampart, backend, port, zone, location, http="", workers=2, listen=""):
    rampart.configure(LOG_FORMAT +
                      "access_log logs/access.log lr;\n"
                      f"{zone}\n{http}\n"
                      f"server {{\n"
                      f"    listen 127.0.0.1:{port} {listen};\n"
                      f"    location / {{ {location} proxy_pass http://{backend.addr}; }}\n"
                      f"}}\n", workers=workers)
    return rampart.start()


def access_lines(rampart, n):
    path = rampart.prefix / "logs" / "access.log"

    def lines():
        try:
            got = path.read_text().splitlines()
        except FileNotFoundError:
            return None
        return got if len(got) >= n else None
    return [line.split() for line in wait_for(lines, timeout=15, what=f"{n} access log lines")]


def in_parallel(port, n, path="/", headers=None):
    """n requests at once, each on its own connection: [(status, seconds)] in order sent."""
    out = [None] * n
    start_at = time.monotonic()
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        r = get(port, path, headers=dict(headers or {}, **{"X-Seq": str(i)}), timeout=30)
        out[i] = (r.status, time.monotonic() - start_at)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# -- counts ----------------------------------------------------------------------------------


def test_a_client_over_its_rate_gets_exactly_the_refusals_that_rate_and_burst_leave(
        rampart, backend, port):
    # 6r/m leaks one request in 10 s: of 30 quick requests burst + 1 = 5 pass, 25 are refused
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=6r/m;",
          "limit_req zone=one burst=4 nodelay;")
    statuses = [get(port, "/", headers={"X-Seq": str(i)}).status for i in range(30)]
    assert statuses == [200] * 5 + [503] * 25
    assert backend.stats()["requests"] == 5


def test_the_limit_holds_across_workers(rampart, backend, port):
    # fresh connections land on both workers; the zone is one: still exactly 5 pass
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=6r/m;",
          "limit_req zone=one burst=4 nodelay;")
    statuses = []
    for batch in range(6):
        statuses += [s for s, _ in in_parallel(port, 5)]
    assert statuses.count(200) == 5 and statuses.count(503) == 25
    lines = access_lines(rampart, 30)
    pids = {pid for pid, *_ in lines}
    assert len(pids) == 2, f"one worker served everything: {pids}"
    assert sorted(st for _, st, *_ in lines).count("PASSED") == 5
    assert sorted(st for _, st, *_ in lines).count("REJECTED") == 25


def test_requests_over_an_api_key_are_counted_per_key(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $http_x_api_key zone=keys:1m rate=6r/m;",
          "limit_req zone=keys burst=1 nodelay;")
    a = [get(port, "/", headers={"X-Api-Key": "a"}).status for _ in range(4)]
    b = [get(port, "/", headers={"X-Api-Key": "b"}).status for _ in range(4)]
    assert a == [200, 200, 503, 503] and b == [200, 200, 503, 503]


def test_an_empty_key_is_not_limited(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $http_x_api_key zone=keys:1m rate=6r/m;",
          "limit_req zone=keys;")
    assert [get(port, "/").status for _ in range(10)] == [200] * 10
    assert [get(port, "/", headers={"X-Api-Key": "k"}).status for _ in range(2)] == [200, 503]
    lines = access_lines(rampart, 12)
    assert [st for _, st, *_ in lines[:10]] == ["-"] * 10


# -- delays ----------------------------------------------------------------------------------


def test_delayed_requests_pass_at_the_rate(rampart, backend, port):
    # 5r/s burst=5: of 6 at once, one passes now and the others every 200 ms
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=5r/s;",
          "limit_req zone=one burst=5;")
    got = in_parallel(port, 6)
    assert all(s == 200 for s, _ in got)
    times = sorted(t for _, t in got)
    for k, t in enumerate(times):
        assert t >= k * 0.2 - 0.05, f"request {k} came back after {t:.3f}s: {times}"
        assert t <= k * 0.2 + 1.0, f"request {k} came back after {t:.3f}s: {times}"
    statuses = sorted(st for _, st, *_ in access_lines(rampart, 6))
    assert statuses == ["DELAYED"] * 5 + ["PASSED"]


def test_nodelay_passes_the_burst_at_once(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;",
          "limit_req zone=one burst=3 nodelay;")
    got = in_parallel(port, 5)
    assert sorted(s for s, _ in got) == [200] * 4 + [503]
    # a delay would be a second or more
    assert all(t < 0.9 for _, t in got), got


def test_delay_n_passes_n_at_once_then_paces_the_rest(rampart, backend, port):
    # 2r/s burst=4 delay=2: of 6 at once, 3 now, 2 at 500 and 1000 ms, 1 refused
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=2r/s;",
          "limit_req zone=one burst=4 delay=2;")
    got = in_parallel(port, 6)
    assert sorted(s for s, _ in got) == [200] * 5 + [503]
    times = sorted(t for s, t in got if s == 200)
    assert all(t < 0.45 for t in times[:3]), times
    assert 0.45 <= times[3] < 1.5 and 0.95 <= times[4] < 2.0, times
    statuses = sorted(st for _, st, *_ in access_lines(rampart, 6))
    assert statuses == ["DELAYED"] * 2 + ["PASSED"] * 3 + ["REJECTED"]


def test_a_client_leaving_while_delayed_ends_its_request_at_once(rampart, backend, port):
    # 1r/m burst=5: a second request waits a minute; its client leaves after 0.3 s
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
          "limit_req zone=one burst=5;")
    assert get(port, "/").status == 200
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Seq: gone\r\n\r\n")
    rampart.wait_log(r"delaying request, excess: \d\.\d{3} by zone \"one\"")
    s.close()
    lines = access_lines(rampart, 2)
    assert lines[1][1:] == ["DELAYED", "499", "gone"]
    assert backend.stats()["requests"] == 1


# -- what a limit answers and logs -----------------------------------------------------------


def test_limit_req_status_sets_the_refusals_status(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
          "limit_req zone=one; limit_req_status 429;")
    assert [get(port, "/").status for _ in range(2)] == [200, 429]


def test_dry_run_only_logs(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
          "limit_req zone=one burst=1; limit_req_dry_run on;")
    statuses = [get(port, "/", headers={"X-Seq": str(i)}).status for i in range(4)]
    assert statuses == [200] * 4
    lines = access_lines(rampart, 4)
    assert [st for _, st, *_ in lines] == ["PASSED", "DELAYED_DRY_RUN", "REJECTED_DRY_RUN",
                                          "REJECTED_DRY_RUN"]
    # (a slow machine leaks a few thousandths between the requests)
    rampart.wait_log(r"\[error\] .*limiting requests, dry run, excess: \d\.\d{3} "
                     r"by zone \"one\"")
    rampart.wait_log(r"\[warn\] .*delaying request, dry run, excess: \d\.\d{3} by zone \"one\"")


def test_log_level_sets_refusals_and_delays_one_level_lower(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;",
          "limit_req zone=one burst=1; limit_req_log_level warn;")
    got = in_parallel(port, 3)
    assert sorted(s for s, _ in got) == [200, 200, 503]
    rampart.wait_log(r"\[warn\] .*limiting requests, excess: \d\.\d{3} by zone \"one\", "
                     r"client: 127\.0\.0\.1")
    rampart.wait_log(r"\[notice\] .*delaying request, excess: \d\.\d{3} by zone \"one\"")


def test_a_location_with_its_own_limits_inherits_none(rampart, backend, port):
    rampart.configure(LOG_FORMAT +
                      "limit_req_zone $binary_remote_addr zone=srv:1m rate=1r/m;\n"
                      "limit_req_zone $binary_remote_addr zone=loc:1m rate=1r/m;\n"
                      f"server {{\n"
                      f"    listen 127.0.0.1:{port};\n"
                      f"    limit_req zone=srv;\n"
                      f"    location / {{ proxy_pass http://{backend.addr}; }}\n"
                      f"    location /own {{ limit_req zone=loc burst=2 nodelay; "
                      f"proxy_pass http://{backend.addr}; }}\n"
                      f"}}\n", workers=2)
    rampart.start()
    assert [get(port, "/").status for _ in range(2)] == [200, 503]
    assert [get(port, "/own").status for _ in range(4)] == [200, 200, 200, 503]


def test_two_limits_in_a_location_both_apply_and_a_refusal_charges_neither(
        rampart, backend, port):
    # per key 1 + 1, per client 1 + 4: key "a" spends 2, then key "b" spends 2; the
    # client's bucket then holds 4 (the refused ones were not charged), so 1 more passes
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=client:1m rate=1r/m;\n"
          "limit_req_zone $http_x_api_key zone=key:1m rate=1r/m;",
          "limit_req zone=client burst=4 nodelay; limit_req zone=key burst=1 nodelay;")
    a = [get(port, "/", headers={"X-Api-Key": "a"}).status for _ in range(4)]
    b = [get(port, "/", headers={"X-Api-Key": "b"}).status for _ in range(4)]
    c = [get(port, "/", headers={"X-Api-Key": "c"}).status for _ in range(2)]
    assert (a, b, c) == ([200, 200, 503, 503], [200, 200, 503, 503], [200, 503])


def test_two_limits_under_a_concurrent_burst_on_both_workers_pass_exactly_their_room(
        rampart, backend, port):
    # Two zones, the earlier one with room for 5 and the later for 6: 60 requests at once
    # on fresh connections (both workers). Every decision holds both zones' locks, so the
    # earlier bucket's room is never handed out twice: exactly 5 pass. (Checked zone by
    # zone, as nginx does, two workers can both see the earlier bucket's last room.)
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=client:1m rate=1r/m;\n"
          "limit_req_zone $server_port zone=site:1m rate=1r/m;",
          "limit_req zone=client burst=4 nodelay; limit_req zone=site burst=5 nodelay;")
    results = in_parallel(port, 60)
    statuses = [s for s, _ in results]
    assert statuses.count(200) == 5, statuses
    assert statuses.count(503) == 55
    assert backend.stats()["requests"] == 5
    pids = {line[0] for line in access_lines(rampart, 60)}
    assert len(pids) == 2, "both workers decided"


def test_http2_requests_are_limited_too(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
          "limit_req zone=one burst=2 nodelay;", listen="http2")
    with H2Client(port) as c:
        got = c.exchange([("GET", "/", [], b"")] * 6)
    assert sorted(r.status for r in got) == [200] * 3 + [503] * 3


def test_a_reload_keeps_the_buckets(rampart, backend, port):
    start(rampart, backend, port,
          "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
          "limit_req zone=one;", workers=1)
    assert get(port, "/").status == 200
    rampart.reload()
    assert get(port, "/").status == 503
    first, second = access_lines(rampart, 2)
    assert second[0] != first[0], "the old worker answered: the reload was not tested"
    assert second[1:3] == ["REJECTED", "503"]


# -- configuration ---------------------------------------------------------------------------


def test_bad_directives_are_refused_with_file_and_line(conf_dir):
    zone = "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;\n"
    cases = [
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=0r/s;",
         '"limit_req_zone": invalid rate "rate=0r/s"'),
        ("limit_req_zone $binary_remote_addr zone=one rate=1r/s;",
         '"limit_req_zone": invalid zone size "zone=one"'),
        ("limit_req_zone $binary_remote_addr zone=one:8k rate=1r/s;",
         '"limit_req_zone": zone "zone=one:8k" is too small'),
        ("limit_req_zone $binary_remote_addr rate=1r/s;",
         '"limit_req_zone": "limit_req_zone" must have "zone" parameter'),
        ("limit_req_zone $nope zone=one:1m;",
         '"limit_req_zone": unknown variable "$nope"'),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s fast;",
         '"limit_req_zone": invalid parameter "fast"'),
        ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s sync;",
         '"limit_req_zone": zone "one" is declared "sync", but no "limit_sync" in the http '
         'block names the Redis server to share it through'),
        ("limit_req zone=nope;",
         '"limit_req": unknown zone "nope" (no limit_req_zone declares it)'),
        (zone + "limit_req zone=one burst=0;",
         '"limit_req": invalid burst value "burst=0"'),
        (zone + "limit_req zone=one delay=x;",
         '"limit_req": invalid delay value "delay=x"'),
        (zone + "limit_req burst=2;",
         '"limit_req": "limit_req" must have "zone" parameter'),
        (zone + "limit_req zone=one; limit_req zone=one burst=2;",
         '"limit_req": zone "one" is used twice at this level'),
        ("limit_req_status 399;",
         '"limit_req_status": value must be between 400 and 599'),
        ("limit_req_log_level debug;",
         '"limit_req_log_level": invalid value "debug", it must be info, notice, warn or '
         'error'),
        ("limit_req_dry_run maybe;",
         '"limit_req_dry_run": invalid value "maybe", it must be "on" or "off"'),
    ]
    for http, message in cases:
        line = 3 + http.count("\n")
        assert_rampart_refuses(conf_dir, http, line, message)
    assert_rampart_refuses(conf_dir, zone + zone.replace("$binary_remote_addr", "$uri"), 4,
                           '"limit_req_zone": limit_req_zone "one" is already bound to key '
                           '"$binary_remote_addr"')
    assert_rampart_refuses(conf_dir, "server { limit_req_zone $uri zone=a:1m; }", 3,
                           '"limit_req_zone": not allowed in the server context')
