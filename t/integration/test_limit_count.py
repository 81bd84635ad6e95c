"""Window quotas (`limit_count_zone`, `limit_count`): exactly `limit` requests pass in a
window, then limit_count_status answers, counted across both workers of a node and
across HTTP/1.1 and HTTP/2. Keys come from a client's address, from a header through
a `map` (one plan per API key), or are empty and not counted. Two quotas in one
location are decided together: a refusal by one counts in neither. Dry run only logs.
$limit_count_remaining and $limit_count_reset reach headers and logs. A fixed window
starts whole at its edge where a sliding one still remembers the last window.

Counts are computed, never guessed: every quota but the ones about windows ending has
a window of a day, so no test races a boundary; those about the edge wait for it by
polling (windows are aligned to the epoch, so the test knows when one ends).
"""

import re
import time

import harness
from h2client import H2Client
from harness import get
from reference_nginx import assert_rampart_refuses

DAY = "window=1d"


def serve(rampart, port, backend, http, locations, workers=2, listen_extra=""):
    rampart.configure(
        f"upstream be {{ server {backend.addr}; }}\n"
        "log_format lc '$pid $status $limit_count_status $limit_count_remaining "
        "$limit_count_reset';\n"
        "access_log logs/lc.log lc;\n"
        f"{http}\n"
        f"server {{\n"
        f"    listen 127.0.0.1:{port}{listen_extra};\n"
        f"{locations}\n"
        f"}}\n", workers=workers)
    rampart.start()


def statuses(port, n, path="/", **kw):
    return [get(port, path, **kw).status for _ in range(n)]


def log_lines(rampart, n, timeout=10.0):
    path = rampart.prefix / "logs" / "lc.log"

    def enough():
        return path.exists() and len(path.read_text().splitlines()) >= n
    harness.wait_for(enough, timeout=timeout, what=f"{n} access log lines")
    return path.read_text().splitlines()


def test_exactly_limit_requests_pass_then_429_from_both_workers(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=7 {DAY};",
          "location / { limit_count zone=ip; proxy_pass http://be; }")
    # each request on a fresh connection: SO_REUSEPORT spreads them over the workers
    got = statuses(port, 40)
    assert got == [200] * 7 + [429] * 33
    assert backend.stats()["requests"] == 7
    lines = log_lines(rampart, 40)
    pids = {line.split()[0] for line in lines}
    assert len(pids) == 2, "both workers must have served for the limit to be shared"
    passed = [line for line in lines if line.split()[1] == "200"]
    assert len(passed) == 7


def test_a_refused_answer_is_429_too_many_requests_with_rampart_page(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=1 {DAY};",
          "location / { limit_count zone=ip; proxy_pass http://be; }", workers=1)
    assert get(port).status == 200
    r = get(port)
    assert (r.status, r.reason) == (429, "Too Many Requests")


def test_limit_count_status_sets_the_refusal_code(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=2 {DAY};",
          "limit_count_status 403;\n"
          "location / { limit_count zone=ip; proxy_pass http://be; }\n"
          "location /own { limit_count zone=ip; limit_count_status 503; proxy_pass http://be; }")
    assert statuses(port, 3) == [200, 200, 403]
    assert get(port, "/own").status == 503


def test_a_header_key_through_map_gives_each_api_key_its_plan(rampart, port, backend):
    serve(rampart, port, backend,
          "map $http_x_api_key $free_key { default $http_x_api_key; ~^gold- \"\"; }\n"
          "map $http_x_api_key $gold_key { default \"\"; ~^gold- $http_x_api_key; }\n"
          f"limit_count_zone $free_key zone=free:1m limit=2 {DAY};\n"
          f"limit_count_zone $gold_key zone=gold:1m limit=5 {DAY};",
          "location / { limit_count zone=free; limit_count zone=gold; proxy_pass http://be; }")

    def run(key, n):
        return statuses(port, n, headers={"X-Api-Key": key} if key else {})
    assert run("free-a", 4) == [200, 200, 429, 429]
    assert run("free-b", 3) == [200, 200, 429]  # another key, its own count
    assert run("gold-a", 7) == [200] * 5 + [429, 429]
    assert run("gold-b", 1) == [200]
    assert run(None, 9) == [200] * 9  # no key: both keys empty, nothing counted


def test_several_variables_joined_make_one_key(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr:$http_x_tenant zone=t:1m limit=2 {DAY};",
          "location / { limit_count zone=t; proxy_pass http://be; }", workers=1)
    assert statuses(port, 3, headers={"X-Tenant": "a"}) == [200, 200, 429]
    assert statuses(port, 3, headers={"X-Tenant": "b"}) == [200, 200, 429]


def test_two_quotas_in_one_location_a_refusal_counts_in_neither(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=burst:1m limit=3 {DAY};\n"
          f"limit_count_zone $binary_remote_addr zone=plan:1m limit=5 {DAY};",
          "location /a { limit_count zone=burst; limit_count zone=plan; proxy_pass http://be; }\n"
          "location /b { limit_count zone=plan; proxy_pass http://be; }")
    # burst refuses after 3; the 5 refusals do not eat the plan
    assert statuses(port, 8, "/a") == [200] * 3 + [429] * 5
    # the plan counted 3: two more pass on /b, then it refuses
    assert statuses(port, 3, "/b") == [200, 200, 429]
    lines = log_lines(rampart, 11)
    assert [line.split()[2] for line in lines].count("REJECTED") == 6


def test_a_location_with_its_own_quota_inherits_none_of_the_servers(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=srv:1m limit=1 {DAY};\n"
          f"limit_count_zone $binary_remote_addr zone=loc:1m limit=3 {DAY};",
          "limit_count zone=srv;\n"
          "location /inherits { proxy_pass http://be; }\n"
          "location /own { limit_count zone=loc; proxy_pass http://be; }", workers=1)
    assert statuses(port, 2, "/inherits") == [200, 429]
    assert statuses(port, 4, "/own") == [200, 200, 200, 429]


def test_dry_run_passes_everything_and_logs_what_it_would_refuse(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=2 {DAY};",
          "location / { limit_count zone=ip; limit_count_dry_run on; proxy_pass http://be; }")
    assert statuses(port, 5) == [200] * 5
    assert backend.stats()["requests"] == 5
    lines = log_lines(rampart, 5)
    assert [line.split()[2] for line in lines] == ["PASSED"] * 2 + ["REJECTED_DRY_RUN"] * 3
    rampart.wait_log(r'\[error\] .*limiting requests by zone "ip": quota of 2 per 1d used up, '
                     r'client: 127\.0\.0\.1, dry run')
    assert len(re.findall("dry run", rampart.log_text())) == 3


def test_limit_count_log_level_sets_the_refusals_level(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=1 {DAY};",
          "limit_count_log_level notice;\n"
          "location / { limit_count zone=ip; proxy_pass http://be; }", workers=1)
    assert statuses(port, 2) == [200, 429]
    rampart.wait_log(r'\[notice\] .*limiting requests by zone "ip": quota of 1 per 1d used up')
    assert "[error]" not in rampart.log_text()


def test_remaining_and_reset_reach_headers_and_logs(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=4 {DAY};\n"
          "limit_count_zone $binary_remote_addr zone=hour:1m limit=10 window=1h;",
          "location / { limit_count zone=ip; limit_count zone=hour; proxy_pass http://be;\n"
          "  add_header X-Remaining $limit_count_remaining;\n"
          "  add_header X-Reset $limit_count_reset; }")
    rs = [get(port) for _ in range(5)]
    assert [r.status for r in rs] == [200] * 4 + [429]
    # the smallest remaining of the two quotas (the day's 4), and when that one resets
    assert [r.headers["X-Remaining"] for r in rs[:4]] == ["3", "2", "1", "0"]
    left = 86400 - int(time.time()) % 86400
    for r in rs[:4]:
        assert abs(int(r.headers["X-Reset"]) - left) <= 2
    lines = log_lines(rampart, 5)
    assert [line.split()[3] for line in lines] == ["3", "2", "1", "0", "0"]


def test_an_exhausted_window_resets_at_its_end(rampart, port, backend):
    serve(rampart, port, backend,
          "limit_count_zone $binary_remote_addr zone=ip:1m limit=2 window=2s;",
          "location / { limit_count zone=ip; proxy_pass http://be;"
          " add_header X-Reset $limit_count_reset; }")
    # start at a window's beginning so that both requests fall in it
    wait_window_start(2)
    first = get(port)
    assert first.status == 200 and int(first.headers["X-Reset"]) in (1, 2)
    assert get(port).status == 200
    assert get(port).status == 429
    refused_at = time.time()
    # polling: a refused request is not counted, so knocking does not delay the reset
    harness.wait_for(lambda: get(port).status == 200, timeout=6.0, interval=0.05,
                     what="the next window")
    assert time.time() - refused_at <= 3.5  # the window's end, and a wide margin


def wait_window_start(seconds, margin=0.05):
    """Waits until a window of this length (aligned to the epoch) has just begun."""
    now = time.time()
    time.sleep(seconds - now % seconds + margin)


def test_sliding_remembers_the_last_window_where_fixed_starts_whole(rampart, port, backend):
    W, N = 6, 10
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=fixed:1m limit={N} window={W}s;\n"
          f"limit_count_zone $binary_remote_addr zone=sliding:1m limit={N} window={W}s sliding;",
          "location /fixed { limit_count zone=fixed; proxy_pass http://be; }\n"
          "location /sliding { limit_count zone=sliding; proxy_pass http://be; }", workers=1)
    wait_window_start(W)
    assert statuses(port, N, "/fixed") == [200] * N
    assert statuses(port, N, "/sliding") == [200] * N
    wait_window_start(W)
    edge = time.time() - time.time() % W
    fixed = statuses(port, N, "/fixed")
    sliding = statuses(port, N, "/sliding")
    elapsed = time.time() - edge
    assert fixed == [200] * N  # a fixed window starts whole at its edge
    # sliding: N * (W - e) / W of the last window still counts, e at most `elapsed`
    assert elapsed < W / 2, "the burst took too long to say anything"
    assert sliding.count(200) <= int(N * elapsed / W) + 1
    assert sliding.count(200) < N // 2 + 1


def test_http2_requests_are_counted_with_http1_ones(rampart, port, backend):
    serve(rampart, port, backend,
          f"limit_count_zone $binary_remote_addr zone=ip:1m limit=6 {DAY};",
          "location / { limit_count zone=ip; proxy_pass http://be; }", listen_extra=" http2")
    with H2Client(port) as c:
        rs = c.exchange([("GET", "/", [], b"")] * 8)
    got = sorted(r.status for r in rs)
    assert got == [200] * 6 + [429] * 2
    assert get(port).status == 429


def test_a_refused_request_is_not_counted(rampart, port, backend):
    serve(rampart, port, backend,
          "limit_count_zone $binary_remote_addr zone=ip:1m limit=3 window=1d;",
          "location / { limit_count zone=ip; proxy_pass http://be;"
          " add_header X-Remaining $limit_count_remaining; }", workers=1)
    assert statuses(port, 10) == [200] * 3 + [429] * 7
    lines = log_lines(rampart, 10)
    # each refusal saw the count at 3, not growing
    assert {line.split()[3] for line in lines[3:]} == {"0"}


# -- configuration errors ---------------------------------------------------------------------

ZONE = "limit_count_zone $binary_remote_addr zone=z:1m limit=5 window=1m;"


def refuses(conf_dir, http, line, message):
    assert_rampart_refuses(conf_dir, http, line, message)


def test_a_zone_without_zone_limit_or_window_is_refused(conf_dir):
    refuses(conf_dir, "limit_count_zone $binary_remote_addr limit=5 window=1m sliding;", 3,
            '"limit_count_zone": no "zone" parameter')
    refuses(conf_dir, "limit_count_zone $binary_remote_addr zone=z:1m window=1m x;", 3,
            '"limit_count_zone": invalid parameter "x"')
    refuses(conf_dir, "limit_count_zone $binary_remote_addr zone=z:1m window=1m sliding;", 3,
            '"limit_count_zone": no "limit" parameter')
    refuses(conf_dir, "limit_count_zone $binary_remote_addr zone=z:1m limit=5 sliding;", 3,
            '"limit_count_zone": no "window" parameter')


def test_bad_zone_limit_and_window_values_are_refused(conf_dir):
    refuses(conf_dir, "limit_count_zone $a zone=z limit=5 window=1m;", 3,
            '"limit_count_zone": invalid zone "z", it must be NAME:SIZE')
    refuses(conf_dir, "limit_count_zone $a zone=z:1q limit=5 window=1m;", 3,
            '"limit_count_zone": invalid zone size "1q"')
    refuses(conf_dir, "limit_count_zone $a zone=z:8k limit=5 window=1m;", 3,
            '"limit_count_zone": zone "z" is too small, it must be at least 32k')
    refuses(conf_dir, "limit_count_zone $binary_remote_addr zone=z:1m limit=0 window=1m;", 3,
            '"limit_count_zone": invalid limit "0", it must be a count of 1 or more')
    for window in ("500ms", "1500ms", "2y", "0", "1x"):
        refuses(conf_dir, f"limit_count_zone $binary_remote_addr zone=z:1m limit=5 "
                f"window={window};", 3,
                f'"limit_count_zone": invalid window "{window}", it must be whole seconds '
                f'from 1s to 1y')
    refuses(conf_dir, "limit_count_zone $nosuch zone=z:1m limit=5 window=1m;", 3,
            '"limit_count_zone": unknown variable "$nosuch"')


def test_a_zone_defined_twice_is_refused(conf_dir):
    refuses(conf_dir, f"{ZONE}\n{ZONE}", 4, '"limit_count_zone": zone "z" is already defined')


def test_limit_count_naming_an_unknown_zone_is_refused_where_it_is_used(conf_dir):
    refuses(conf_dir, f"{ZONE}\nserver {{\n  listen 127.0.0.1:1;\n  limit_count zone=nope;\n}}",
            6, '"limit_count": unknown zone "nope"')
    refuses(conf_dir, f"{ZONE}\nlimit_count zone=z;\nlimit_count zone=z;", 5,
            '"limit_count": zone "z" is duplicate')
    refuses(conf_dir, f"{ZONE}\nlimit_count z;", 4,
            '"limit_count": invalid parameter "z", it must be zone=NAME')


def test_bad_status_dry_run_and_log_level_are_refused(conf_dir):
    refuses(conf_dir, "limit_count_status 399;", 3,
            '"limit_count_status": value must be between 400 and 599')
    refuses(conf_dir, "limit_count_status 600;", 3,
            '"limit_count_status": value must be between 400 and 599')
    refuses(conf_dir, "limit_count_dry_run maybe;", 3,
            '"limit_count_dry_run": invalid value "maybe", it must be "on" or "off"')
    refuses(conf_dir, "limit_count_log_level debug;", 3,
            '"limit_count_log_level": invalid value "debug", it must be info, notice, warn '
            'or error')
    refuses(conf_dir, "server {\n  limit_count_zone $a zone=z:1m limit=5 window=1m;\n}", 4,
            '"limit_count_zone": not allowed in the server context')


def test_a_sync_zone_without_the_engine_is_refused_at_its_line(conf_dir):
    (conf_dir / "rampart.conf").write_text(
        "worker_processes 1; error_log logs/error.log info; pid logs/rampart.pid;\n"
        "http {\n"
        "limit_count_zone $binary_remote_addr zone=z:1m limit=5 window=1m sync;\n"
        "}\n")
    p = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    # refused at the zone's line today; once the engine lands, for want of limit_sync
    assert f"{conf_dir / 'rampart.conf'}:" in p.stderr and "sync" in p.stderr, p.stderr
