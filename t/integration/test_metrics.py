"""`metrics;`: Prometheus's text format (and OpenMetrics when asked), read with
prometheus_client's own parsers. Counts are exact after known traffic through two
workers, whichever worker answers the scrape; they keep counting across a reload."""

import re
import subprocess

from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

import harness
from harness import get


def conf(port, mport, backend, extra_http="", extra_server=""):
    return f"""
    limit_req_zone $binary_remote_addr zone=perip:1m rate=1r/m;
    upstream pool {{ server {backend.addr}; }}
    {extra_http}
    server {{
        listen 127.0.0.1:{port} http2;
        server_name api.test;
        add_header X-Worker $pid always;
        location /api/ {{ metrics_name api; proxy_pass http://pool; }}
        location /other/ {{ proxy_pass http://pool; }}
        location /limited {{ metrics_name limited; limit_req zone=perip; proxy_pass http://pool; }}
        location /lua {{ metrics_name lua; content_by_lua_block {{ error("boom") }} }}
        {extra_server}
    }}
    server {{
        listen 127.0.0.1:{mport};
        location = /metrics {{ metrics; }}
    }}
    """


def start(rampart, backend, workers=2, **kw):
    port, mport = harness.free_port(), harness.free_port()
    rampart.configure(conf(port, mport, backend, **kw), workers=workers)
    rampart.start()
    return port, mport


def scrape(mport, openmetrics=False):
    headers = {"Accept": "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"} \
        if openmetrics else None
    r = get(mport, "/metrics", headers=headers)
    assert r.status == 200, r
    return r


def samples(text, parser=text_string_to_metric_families):
    out = {}
    for fam in parser(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def settled(mport, done, openmetrics=False):
    """The samples of a scrape once done(samples) holds: a worker counts a request in
    its log phase, which may run just after the client has read the response."""
    got = {}

    def check():
        got["s"] = samples(scrape(mport, openmetrics).text,
                           openmetrics_families if openmetrics else
                           text_string_to_metric_families)
        return done(got["s"])
    harness.wait_for(check, what="the counts")
    return got["s"]


def value(s, name, **labels):
    return s.get((name, tuple(sorted(labels.items()))), 0)


def requests(s, location, cls, proto="HTTP/1.1", server="api.test"):
    return value(s, "rampart_http_requests_total", server=server, location=location,
                 status_class=cls, protocol=proto)


def test_requests_are_counted_exactly_by_location_class_and_protocol_across_two_workers(
        rampart, backend):
    port, mport = start(rampart, backend)
    pids = set()
    for i in range(30):
        r = get(port, f"/api/{i}")
        assert r.status == 200
        pids.add(r.headers["X-Worker"])
    for i in range(4):
        assert get(port, "/other/x").status == 200
    assert len(pids) == 2, "both workers served"
    h2 = subprocess.run(["h2load", "-n", "20", "-c", "2", f"http://127.0.0.1:{port}/api/h2"],
                        capture_output=True, text=True, timeout=20)
    assert "20 succeeded" in h2.stdout, h2.stdout + h2.stderr
    curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "--http1.0",
                           f"http://127.0.0.1:{port}/api/ten"], timeout=10)
    assert curl.returncode == 0

    # every scrape (new connections: either worker) sees the same node-wide totals
    settled(mport, lambda s: requests(s, "api", "2xx") == 30 and requests(s, "", "2xx") == 4
            and requests(s, "api", "2xx", "HTTP/2") == 20
            and requests(s, "api", "2xx", "HTTP/1.0") == 1)
    seen = set()
    for _ in range(8):
        s = samples(scrape(mport).text)
        seen.add((requests(s, "api", "2xx"), requests(s, "api", "2xx", "HTTP/2"),
                  requests(s, "api", "2xx", "HTTP/1.0"), requests(s, "", "2xx")))
    assert seen == {(30, 20, 1, 4)}
    s = samples(scrape(mport).text)
    assert value(s, "rampart_http2_streams_total") == 20
    assert value(s, "rampart_http_request_duration_seconds_count", server="api.test",
                 location="api") == 51
    assert value(s, "rampart_connections_accepted_total") >= 30 + 4 + 2 + 1
    assert value(s, "rampart_received_bytes_total") > 0
    assert value(s, "rampart_sent_bytes_total") > 0


def test_a_5xx_from_the_backend_is_counted_in_its_class_and_its_upstream(rampart, backend):
    port, mport = start(rampart, backend)
    assert get(port, "/api/x?status=503").status == 503
    assert get(port, "/api/y?status=500").status == 500
    assert get(port, "/api/z?status=404").status == 404
    s = settled(mport, lambda s: requests(s, "api", "4xx") == 1)
    assert requests(s, "api", "5xx") == 2
    assert requests(s, "api", "4xx") == 1
    assert requests(s, "api", "2xx") == 0
    peer = dict(upstream="pool", peer=backend.addr)
    assert value(s, "rampart_upstream_peer_attempts_total", **peer) == 3
    assert value(s, "rampart_upstream_peer_state", state="up", **peer) == 1
    assert value(s, "rampart_upstream_peer_state", state="down", **peer) == 0
    assert value(s, "rampart_upstream_response_duration_seconds_count", upstream="pool") == 3
    assert value(s, "rampart_upstream_peer_requests_in_flight", **peer) == 0


def test_a_limit_req_rejection_is_counted_for_its_zone(rampart, backend):
    port, mport = start(rampart, backend)
    statuses = [get(port, "/limited").status for _ in range(3)]
    assert statuses == [200, 503, 503]
    s = settled(mport, lambda s: requests(s, "limited", "5xx") >= 2)
    assert value(s, "rampart_limit_requests_total", zone="perip", outcome="passed") == 1
    assert value(s, "rampart_limit_requests_total", zone="perip", outcome="rejected") == 2
    assert requests(s, "limited", "5xx") == 2


def test_a_lua_error_is_counted(rampart, backend):
    port, mport = start(rampart, backend)
    assert get(port, "/lua").status == 500
    assert get(port, "/lua").status == 500
    s = settled(mport, lambda s: requests(s, "lua", "5xx") >= 2)
    assert value(s, "rampart_lua_errors_total") == 2
    assert requests(s, "lua", "5xx") == 2


def test_counters_keep_counting_across_a_reload(rampart, backend):
    port, mport = start(rampart, backend)
    for _ in range(6):
        assert get(port, "/api/a").status == 200
    before = settled(mport, lambda s: requests(s, "api", "2xx") >= 6)
    assert requests(before, "api", "2xx") == 6
    # a reload that changes the configuration (a new location) keeps the zone
    rampart.configure(conf(port, mport, backend,
                           extra_server="location /new/ { metrics_name new; return 204; }"),
                      workers=2)
    assert "reloaded" in rampart.reload().group(0)
    harness.wait_for(lambda: get(port, "/new/").status == 204, what="the new generation")
    for _ in range(5):
        assert get(port, "/api/b").status == 200
    after = settled(mport, lambda s: requests(s, "api", "2xx") >= 11)
    assert requests(after, "api", "2xx") == 11
    assert requests(after, "new", "2xx") >= 1
    assert value(after, "rampart_connections_accepted_total") > \
        value(before, "rampart_connections_accepted_total")


def test_openmetrics_is_answered_when_asked_and_parses(rampart, backend):
    port, mport = start(rampart, backend)
    assert get(port, "/api/x").status == 200
    settled(mport, lambda s: requests(s, "api", "2xx") == 1, openmetrics=True)
    r = scrape(mport, openmetrics=True)
    assert r.headers["Content-Type"] == \
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert r.text.endswith("# EOF\n")
    assert "# TYPE rampart_http_requests counter\n" in r.text
    assert requests(samples(r.text, openmetrics_families), "api", "2xx") == 1
    plain = scrape(mport)
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# EOF" not in plain.text
    assert "# TYPE rampart_http_requests_total counter\n" in plain.text


def test_every_family_is_named_by_prometheus_rules(rampart, backend):
    port, mport = start(rampart, backend)
    assert get(port, "/api/x").status == 200
    fams = list(text_string_to_metric_families(scrape(mport).text))
    names = {f.name for f in fams}
    for f in fams:
        assert re.fullmatch(r"rampart_[a-z0-9_]+", f.name), f.name
        if f.type == "counter":
            assert all(s.name.endswith("_total") for s in f.samples), f.name
    for want in ["rampart_connections_active", "rampart_connections_reading",
                 "rampart_connections_writing", "rampart_connections_waiting",
                 "rampart_tls_handshakes", "rampart_tls_session_resumptions",
                 "rampart_tls_handshake_failures", "rampart_http2_flood_defences_tripped",
                 "rampart_upstream_breaker_trips", "rampart_upstream_queue_length",
                 "rampart_upstream_peer_latency_seconds", "rampart_upstream_peer_ejections",
                 "rampart_upstream_retries_by_reason", "rampart_limit_requests",
                 "rampart_lua_errors", "rampart_http_request_duration_seconds"]:
        assert want in names, want


def test_metrics_name_longer_than_60_characters_is_refused_with_file_and_line(tmp_path):
    name = "x" * 61
    text = ("pid logs/rampart.pid;\nhttp {\n    server {\n        listen 127.0.0.1:8080;\n"
            f"        location / {{ metrics_name {name}; return 200; }}\n    }}\n}}\n")
    (tmp_path / "rampart.conf").write_text(text)
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1
    assert f'{tmp_path / "rampart.conf"}:5: "metrics_name": invalid metrics name "{name}"' in p.stderr


def test_tls_handshakes_resumptions_and_failures_are_counted(rampart, certs):
    import socket
    import ssl
    port, mport = harness.free_port(), harness.free_port()
    rampart.configure(f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        {certs.directives("a.test")}
        location / {{ return 200 "$ssl_session_reused"; }}
    }}
    server {{
        listen 127.0.0.1:{mport};
        location = /metrics {{ metrics; }}
    }}
    """, workers=1)
    rampart.start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    session, reused = None, []
    for _ in range(3):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            reused.append(data.endswith(b"r"))
            session = s.session
    assert reused == [False, True, True]
    s = settled(mport, lambda s: value(s, "rampart_tls_handshakes_total") == 3)
    assert value(s, "rampart_tls_session_resumptions_total") == 2
    # (the harness's readiness probe, a connect without a handshake, failed already)
    failed = value(s, "rampart_tls_handshake_failures_total")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as bad:
        bad.sendall(b"\x16\x03\x01\x00\x05hello")  # a record that is no ClientHello
        bad.recv(100)
    settled(mport, lambda s: value(s, "rampart_tls_handshake_failures_total") == failed + 1)


def test_an_http2_flood_tripping_a_defence_is_counted(rampart, backend):
    from h2raw import (ENHANCE_YOUR_CALM, H2Conn, continuation_frame, headers_frame, literal,
                       request_fields, serialize)
    port, mport = start(rampart, backend)
    with H2Conn(port) as conn:
        conn.respond = False
        block = [headers_frame(1, request_fields(path="/api/x"), end_headers=False)]
        block += [continuation_frame(1, literal("x-c", "v")) for _ in range(2000)]
        try:
            conn.sock.sendall(serialize(*block))
        except OSError:
            pass  # closed before the end of the flood: what a defence does
        ending = conn.read_until_goaway()
        assert ending.code == ENHANCE_YOUR_CALM, ending
    s = settled(mport, lambda s: value(s, "rampart_http2_flood_defences_tripped_total",
                                       defence="continuation") == 1)
    assert value(s, "rampart_http2_flood_defences_tripped_total", defence="rst_stream") == 0


def test_a_crashed_worker_loses_no_count_and_leaves_no_connection_counted(rampart, backend):
    import socket
    port, mport = start(rampart, backend, workers=1)
    for _ in range(5):
        assert get(port, "/api/x").status == 200
    # a keep-alive connection left open and a head half sent, both on the worker
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(b"GET /api/y HTTP/1.1\r\nHost: api.test\r\n\r\n")
    assert b"200 OK" in idle.recv(4096)
    partial = socket.create_connection(("127.0.0.1", port))
    partial.sendall(b"GET /api/z HTTP/1.1\r\nHo")
    settled(mport, lambda s: value(s, "rampart_connections_reading") == 1
            and value(s, "rampart_connections_active") == 3
            and requests(s, "api", "2xx") == 6)
    (worker,), _ = rampart.wait_processes(1)
    rampart.kill(worker)
    rampart.wait_processes(1, exclude=[worker])
    s = settled(mport, lambda s: value(s, "rampart_connections_active") == 1)
    assert value(s, "rampart_connections_reading") == 0
    assert value(s, "rampart_connections_writing") == 1  # this scrape
    assert requests(s, "api", "2xx") == 6
    idle.close()
    partial.close()


def test_a_retry_after_a_connect_failure_is_counted_by_reason_and_peer(rampart, backend):
    port, mport = harness.free_port(), harness.free_port()
    dead = f"127.0.0.1:{harness.free_port()}"
    rampart.configure(f"""
    upstream two {{ server {dead}; server {backend.addr}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ metrics_name r; proxy_pass http://two; }}
    }}
    server {{
        listen 127.0.0.1:{mport};
        location = /metrics {{ metrics; }}
    }}
    """, workers=1)
    rampart.start()
    for _ in range(4):
        assert get(port, "/x").status == 200
    s = settled(mport, lambda s: requests(s, "r", "2xx", server=f"127.0.0.1:{port}") == 4)
    retries = value(s, "rampart_upstream_retries_by_reason_total", upstream="two",
                    reason="connect_failure")
    assert retries >= 1
    assert value(s, "rampart_upstream_retries_total", upstream="two") == retries
    assert value(s, "rampart_upstream_peer_retries_total", upstream="two",
                 peer=backend.addr) == retries
    assert value(s, "rampart_upstream_peer_failures_total", upstream="two", peer=dead) == retries
    assert value(s, "rampart_upstream_peer_state", upstream="two", peer=dead,
                 state="unavailable") == 1


def test_a_delayed_request_is_counted_as_delayed(rampart, backend):
    port, mport = start(rampart, backend, extra_http="""
    limit_req_zone $binary_remote_addr zone=slow:1m rate=5r/s;""", extra_server="""
    location /slow { metrics_name slow; limit_req zone=slow burst=5; proxy_pass http://pool; }""")
    assert [get(port, "/slow").status for _ in range(2)] == [200, 200]
    s = settled(mport, lambda s: requests(s, "slow", "2xx") == 2)
    assert value(s, "rampart_limit_requests_total", zone="slow", outcome="delayed") == 1
    assert value(s, "rampart_limit_requests_total", zone="slow", outcome="passed") == 2
    assert value(s, "rampart_limit_requests_total", zone="slow", outcome="rejected") == 0


def test_counters_keep_counting_across_a_binary_upgrade(rampart, backend, tmp_path,
                                                        monkeypatch):
    import upgrade_util as up
    binpath = up.copy_binary(tmp_path / "bin")
    monkeypatch.setattr(harness, "BIN", binpath)
    masters = up.Masters(rampart)
    try:
        port, mport = start(rampart, backend)
        for _ in range(7):
            assert get(port, "/api/a").status == 200
        settled(mport, lambda s: requests(s, "api", "2xx") == 7)
        old = rampart.pid
        up.replace_binary(binpath)
        new = masters.usr2(old, workers=2)
        masters.winch(old, new)
        masters.quit(old)
        for _ in range(3):
            assert get(port, "/api/b").status == 200
        s = settled(mport, lambda s: requests(s, "api", "2xx") >= 10)
        assert requests(s, "api", "2xx") == 10
    finally:
        masters.cleanup()
