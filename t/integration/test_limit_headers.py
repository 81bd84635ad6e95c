"""
Telling clients about limits: the RateLimit-Policy and RateLimit fields
(draft-ietf-httpapi-ratelimit-headers-10) with `limit_headers on`, and Retry-After
on a 429 or 503 a limit refused (`limit_retry_after`, on by default).

Against limit_conn, a concurrency quota (`"ZONE";q=N;qu="concurrent-requests"` and
`"ZONE";r=REMAINING`; requests are held in progress with fault_delay), and
limit_count, a window quota (`"ZONE";q=N;w=WINDOW` and `"ZONE";r=REMAINING;t=RESET`),
and limit_req, a leaky bucket (its quota burst + 1, its window the time those take
to drain at the rate, its reset when the bucket is empty), alone and together.
2 workers throughout.
"""

import re
import socket

from harness import get, wait_for

HOLD = "x-delay"


def conf(port, backend_port, location="", server="", zones=("one",), limits="limit_conn one 3;"):
    text = "log_format rl '$status [$ratelimit_policy] [$ratelimit]';\n"
    text += "access_log logs/access.log rl;\n"
    for z in zones:
        text += f"limit_conn_zone $http_x_key zone={z}:1m;\n"
    return text + (f"server {{\n    listen 127.0.0.1:{port};\n    {server}\n"
                   f"    location / {{\n        {limits}\n        {location}\n"
                   f"        fault_delay header={HOLD} max=60s;\n"
                   f"        proxy_pass http://127.0.0.1:{backend_port};\n    }}\n}}\n")


def hold(rampart, port, socks, key="k", n=1):
    """n requests of key held in progress (each on its own connection)."""
    for i in range(n):
        since = rampart.log_size()
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
        s.sendall(f"GET /held{i} HTTP/1.1\r\nHost: x\r\nX-Key: {key}\r\n"
                  f"X-Delay: 60000\r\n\r\n".encode())
        rampart.wait_log(r"fault injection: request delayed 60000ms", since=since)


def probe(port, key="k", path="/probe", **kw):
    return get(port, path, headers={"X-Key": key, **kw})


def access_lines(rampart):
    try:
        return (rampart.prefix / "logs" / "access.log").read_text().splitlines()
    except FileNotFoundError:
        return []


def test_fields_carry_the_policy_and_what_remains(rampart, port, backend):
    rampart.configure(conf(port, backend.port, location="limit_headers on;"), workers=2)
    rampart.start()
    socks = []
    try:
        r = probe(port)
        assert r.status == 200
        assert r.headers.get_all("RateLimit-Policy") == ['"one";q=3;qu="concurrent-requests"']
        assert r.headers.get_all("RateLimit") == ['"one";r=2']
        assert r.headers.get("Retry-After") is None
        hold(rampart, port, socks, n=2)
        r = probe(port)
        assert r.status == 200
        assert r.headers["RateLimit"] == '"one";r=0'  # this request took the last slot
    finally:
        for s in socks:
            s.close()


def test_a_refusal_carries_retry_after_and_nothing_remaining(rampart, port, backend):
    rampart.configure(conf(port, backend.port, location="limit_headers on;",
                           limits="limit_conn one 1;"), workers=2)
    rampart.start()
    socks = []
    try:
        hold(rampart, port, socks)
        r = probe(port)
        assert r.status == 503
        assert r.headers["RateLimit-Policy"] == '"one";q=1;qu="concurrent-requests"'
        assert r.headers["RateLimit"] == '"one";r=0'
        assert r.headers.get_all("Retry-After") == ["1"]
    finally:
        for s in socks:
            s.close()


def test_fields_are_off_by_default_but_retry_after_is_on(rampart, port, backend):
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;",
                           location="limit_conn_status 429;"), workers=2)
    rampart.start()
    socks = []
    try:
        r = probe(port)
        assert r.status == 200
        assert r.headers.get("RateLimit-Policy") is None and r.headers.get("RateLimit") is None
        hold(rampart, port, socks)
        r = probe(port)
        assert r.status == 429
        assert r.headers.get("RateLimit") is None
        assert r.headers.get_all("Retry-After") == ["1"]
    finally:
        for s in socks:
            s.close()


def test_limit_retry_after_off_leaves_a_refusal_without_it(rampart, port, backend):
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;",
                           location="limit_retry_after off;"), workers=2)
    rampart.start()
    socks = []
    try:
        hold(rampart, port, socks)
        r = probe(port)
        assert r.status == 503
        assert r.headers.get("Retry-After") is None
    finally:
        for s in socks:
            s.close()


def test_retry_after_only_on_429_and_503(rampart, port, backend):
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;",
                           location="limit_conn_status 403;"), workers=2)
    rampart.start()
    socks = []
    try:
        hold(rampart, port, socks)
        r = probe(port)
        assert r.status == 403
        assert r.headers.get("Retry-After") is None
    finally:
        for s in socks:
            s.close()


def test_a_backends_own_503_gets_no_retry_after_from_the_limits(rampart, port, backend):
    rampart.configure(conf(port, backend.port, location="limit_headers on;"), workers=2)
    rampart.start()
    r = probe(port, path="/?status=503")
    assert r.status == 503
    assert r.headers.get("Retry-After") is None  # no limit refused it
    assert r.headers["RateLimit"] == '"one";r=2'


def test_every_policy_that_decided_is_listed_in_order(rampart, port, backend):
    rampart.configure(conf(port, backend.port, zones=("one", "two"),
                           limits="limit_conn one 3; limit_conn two 5;",
                           location="limit_headers on;"), workers=2)
    rampart.start()
    socks = []
    try:
        hold(rampart, port, socks)
        r = probe(port)
        assert r.headers["RateLimit-Policy"] == (
            '"one";q=3;qu="concurrent-requests", "two";q=5;qu="concurrent-requests"')
        assert r.headers["RateLimit"] == '"one";r=1, "two";r=3'
    finally:
        for s in socks:
            s.close()


def test_a_request_no_limit_decided_on_has_no_fields(rampart, port, backend):
    rampart.configure(conf(port, backend.port, location="limit_headers on;"), workers=2)
    rampart.start()
    r = get(port, "/nokey")  # an empty key is not limited: nothing reported
    assert r.status == 200
    assert r.headers.get("RateLimit") is None and r.headers.get("RateLimit-Policy") is None


def test_the_fields_are_variables_for_the_access_log(rampart, port, backend):
    # the location does not send them: the log alone keeps the reports
    rampart.configure(conf(port, backend.port), workers=2)
    rampart.start()
    r = probe(port)
    assert r.headers.get("RateLimit") is None
    get(port, "/nokey")
    # the access log escapes '"' as nginx does
    logged = '200 ["one";q=3;qu="concurrent-requests"] ["one";r=2]'.replace('"', "\\x22")
    wait_for(lambda: {logged, "200 [-] [-]"} <= set(access_lines(rampart)),
             what="both requests logged")


def test_limit_headers_directives_refuse_bad_values(conf_dir):
    import reference_nginx
    reference_nginx.assert_rampart_refuses(
        conf_dir, "limit_headers yes;",
        3, '"limit_headers": invalid value "yes", it must be "on" or "off"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, "limit_retry_after on; limit_retry_after off;",
        3, '"limit_retry_after": duplicate directive')


# -- with limit_count (window quotas) -------------------------------------------------


def quota_conf(port, backend_port, location="limit_headers on;", conn=""):
    # a day's window: a test never straddles its end (windows are aligned to the epoch)
    return ("limit_count_zone $http_x_key zone=day:1m limit=3 window=1d;\n"
            "limit_conn_zone $http_x_key zone=one:1m;\n"
            f"server {{\n    listen 127.0.0.1:{port};\n"
            f"    location / {{\n        limit_count zone=day;\n        {conn}\n"
            f"        {location}\n"
            f"        proxy_pass http://127.0.0.1:{backend_port};\n    }}\n}}\n")


def reset_of(field):
    m = re.fullmatch(r'"day";r=(\d+);t=(\d+)', field)
    assert m, field
    return int(m.group(1)), int(m.group(2))


def test_a_window_quota_reports_its_quota_window_remaining_and_reset(rampart, port, backend):
    rampart.configure(quota_conf(port, backend.port), workers=2)
    rampart.start()
    for left in (2, 1, 0):
        r = probe(port)
        assert r.status == 200
        assert r.headers["RateLimit-Policy"] == '"day";q=3;w=86400'
        remaining, reset = reset_of(r.headers["RateLimit"])
        assert remaining == left and 0 < reset <= 86400
        assert r.headers.get("Retry-After") is None
    r = probe(port)
    assert r.status == 429
    remaining, reset = reset_of(r.headers["RateLimit"])
    assert remaining == 0
    # the draft: Retry-After not earlier than the reset
    assert int(r.headers["Retry-After"]) >= reset > 0


def test_a_quota_and_a_connection_limit_are_both_listed(rampart, port, backend):
    rampart.configure(quota_conf(port, backend.port, conn="limit_conn one 2;"), workers=2)
    rampart.start()
    r = probe(port)
    assert r.status == 200
    assert r.headers["RateLimit-Policy"] == (
        '"day";q=3;w=86400, "one";q=2;qu="concurrent-requests"')
    day, conn = r.headers["RateLimit"].split(", ")
    assert reset_of(day)[0] == 2
    assert conn == '"one";r=1'


def test_a_dry_run_quota_reports_but_refuses_nothing(rampart, port, backend):
    rampart.configure(quota_conf(port, backend.port,
                                 location="limit_headers on; limit_count_dry_run on;"),
                      workers=2)
    rampart.start()
    for _ in range(3):
        assert probe(port).status == 200
    r = probe(port)
    assert r.status == 200
    assert reset_of(r.headers["RateLimit"])[0] == 0
    assert r.headers.get("Retry-After") is None


# -- with limit_req (leaky buckets) ---------------------------------------------------


def req_conf(port, backend_port, extra=""):
    # 1r/m: 16 thousandths of a request a second, so the test's own pace drains next
    # to nothing; the bucket admits burst + 1 = 3 at once and drains 3 in 188 s
    return ("limit_req_zone $http_x_key zone=r:1m rate=1r/m;\n"
            "limit_count_zone $http_x_key zone=day:1m limit=3 window=1d;\n"
            "limit_conn_zone $http_x_key zone=one:1m;\n"
            f"server {{\n    listen 127.0.0.1:{port};\n"
            f"    location / {{\n        limit_req zone=r burst=2 nodelay;\n        {extra}\n"
            f"        limit_headers on;\n"
            f"        proxy_pass http://127.0.0.1:{backend_port};\n    }}\n}}\n")


def bucket(field):
    m = re.fullmatch(r'"r";r=(\d+);t=(\d+)', field)
    assert m, field
    return int(m.group(1)), int(m.group(2))


def test_a_leaky_bucket_reports_burst_plus_one_per_drain_time(rampart, port, backend):
    rampart.configure(req_conf(port, backend.port), workers=2)
    rampart.start()
    seen = []
    for _ in range(3):
        r = probe(port)
        assert r.status == 200
        assert r.headers["RateLimit-Policy"] == '"r";q=3;w=188'
        seen.append(bucket(r.headers["RateLimit"]))
    # the first makes no excess; each next adds a request that drains in 62.5 s
    assert seen[0] == (2, 0)
    assert seen[1] == (1, 63)
    assert seen[2][0] == 0 and 120 <= seen[2][1] <= 125
    r = probe(port)
    assert r.status == 503
    assert bucket(r.headers["RateLimit"])[0] == 0
    # one more passes once the bucket leaked what this one overflowed: about 62.5 s
    assert 55 <= int(r.headers["Retry-After"]) <= 63


def test_request_quota_and_connection_limits_are_listed_in_the_order_they_ran(rampart, port,
                                                                             backend):
    rampart.configure(req_conf(port, backend.port,
                               extra="limit_count zone=day; limit_conn one 2;"), workers=2)
    rampart.start()
    r = probe(port)
    assert r.status == 200
    assert r.headers["RateLimit-Policy"] == (
        '"r";q=3;w=188, "day";q=3;w=86400, "one";q=2;qu="concurrent-requests"')
    req, day, conn = r.headers["RateLimit"].split(", ")
    assert bucket(req) == (2, 0)
    assert reset_of(day)[0] == 2
    assert conn == '"one";r=1'
