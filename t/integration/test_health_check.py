"""Active health checks: `health_check` in an upstream block and `match` blocks.

The helper probes every peer once per node (never once per worker) and writes the
verdict into the shared peer table: `upstream_status` shows it, and the balancers of
every worker follow it. The backends are health_backend.HealthBackend (threads of this
process, so a test changes what /healthz answers between two probes and counts the
probes) and, for gRPC checks, a real grpcio server implementing
grpc.health.v1.Health/Check with hand-encoded protobuf bytes.

Waits are for events (a verdict in upstream_status, a line in the error log, a probe
at a backend), with generous bounds for ASan on shared cores.
"""

import json
import threading
import time
from concurrent import futures

import grpc
import pytest

import harness
import reference_nginx
from dns_server import DnsServer
from harness import get
from health_backend import HealthBackend

WAIT = 15  # seconds for what takes a few probe intervals; generous for ASan on CI


@pytest.fixture
def hb():
    """Starts HealthBackends: hb("a", cert=..., key=...); stopped after the test."""
    made = []

    def make(name, **kw):
        b = HealthBackend(name, **kw).start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


def conf(port, servers, check, upstream="", http="", location=""):
    lines = "\n        ".join(f"server {s};" for s in servers)
    return f"""
    {http}
    upstream pool {{
        {lines}
        health_check {check};
        {upstream}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://pool;
            proxy_connect_timeout 2s;
            {location}
        }}
        location = /upstreams {{
            upstream_status;
        }}
    }}
    """


def peers(port, name="pool"):
    r = get(port, "/upstreams", headers={"Connection": "close"})
    assert r.status == 200
    [u] = [u for u in json.loads(r.text)["upstreams"] if u["name"] == name]
    return {p["address"]: p for p in u["peers"]}


def wait_health(port, want, timeout=WAIT):
    """Waits until each address of want ({addr: "healthy"|"unhealthy"|"unknown"}) has that
    health; returns the peers then."""
    def ok():
        ps = peers(port)
        return ps if all(a in ps and ps[a]["health"] == h for a, h in want.items()) else None
    return harness.wait_for(ok, timeout=timeout, what=f"health {want}")


def served(port, n):
    """Sends n requests through rampart; the names of the backends that answered them."""
    out = []
    for _ in range(n):
        r = get(port, "/", headers={"Connection": "close"})
        assert r.status == 200, r
        out.append(r.text.strip())
    return out


# --- verdicts -------------------------------------------------------------------------


def test_failing_healthz_makes_a_peer_unhealthy_after_fall_failures_and_rise_passes_readmit_it(
        rampart, port, hb):
    a, b, c = hb("a"), hb("b"), hb("c")
    rampart.configure(conf(port, [a.addr, b.addr, c.addr],
                           "interval=300ms jitter=0 fall=3 rise=2 uri=/healthz"), workers=2)
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "healthy", c.addr: "healthy"})

    # its /healthz fails while its normal traffic would still succeed
    base = peers(port)[c.addr]
    c.set_health(503)
    seen = []

    def unhealthy():
        p = peers(port)[c.addr]
        seen.append((p["check_fails"] - base["check_fails"], p["health"], p["state"]))
        return p["health"] == "unhealthy"
    harness.wait_for(unhealthy, timeout=WAIT, what="c unhealthy")
    # healthy through the first fall-1 failures, unhealthy from the fall-th
    assert all(h == "healthy" for fails, h, _ in seen if fails < 3), seen
    assert {1, 2} <= {fails for fails, h, _ in seen if h == "healthy"}, seen
    assert seen[-1][0] >= 3 and seen[-1][2] == "unhealthy", seen
    rampart.wait_log(rf'\[warn\] .*peer {c.addr} of upstream "pool" is unhealthy: status 503')

    hits = c.hits()
    names = served(port, 30)
    assert "c" not in names and set(names) == {"a", "b"}
    assert c.hits() == hits

    # rise passes re-admit it
    base = peers(port)[c.addr]
    c.set_health(200)
    seen = []

    def healthy():
        p = peers(port)[c.addr]
        passes = (p["checks"] - p["check_fails"]) - (base["checks"] - base["check_fails"])
        seen.append((passes, p["health"]))
        return p["health"] == "healthy"
    harness.wait_for(healthy, timeout=WAIT, what="c healthy again")
    assert all(h == "unhealthy" for passes, h in seen if passes < 2), seen
    assert 1 in {passes for passes, h in seen if h == "unhealthy"}, seen
    rampart.wait_log(rf'\[notice\] .*peer {c.addr} of upstream "pool" is healthy again')
    assert "c" in served(port, 30)


def test_probes_are_sent_once_per_node_not_once_per_worker(rampart, port, hb):
    a = hb("a")
    rampart.configure(conf(port, [a.addr], "interval=250ms jitter=0 uri=/healthz"), workers=4)
    rampart.start()
    wait_health(port, {a.addr: "healthy"})
    checks0, hits0 = peers(port)[a.addr]["checks"], a.health_hits()
    harness.wait_for(lambda: a.health_hits() >= hits0 + 9, timeout=WAIT, what="9 more probes")
    checks1, hits1 = peers(port)[a.addr]["checks"], a.health_hits()
    times = [t for t, _ in a.health_requests()[hits0:hits1]]
    elapsed = times[-1] - times[0]
    rounds = len(times) - 1
    # one prober: one probe per interval, so the window spans the rounds it holds (four
    # probers, one per worker, would fit them in a quarter of it)
    assert elapsed >= (rounds - 1) * 0.25, (rounds, elapsed)
    # and the helper's own count agrees with what the backend saw (one probe in flight)
    assert abs((checks1 - checks0) - (hits1 - hits0)) <= 1, (checks1 - checks0, hits1 - hits0)
    # five processes, one prober: no two probes close together
    gaps = [t2 - t1 for t1, t2 in zip(times, times[1:])]
    assert min(gaps) >= 0.125, gaps


def test_health_state_survives_a_reload(rampart, port, hb):
    a, b, c, d = hb("a"), hb("b"), hb("c"), hb("d")
    c.set_health(503)
    check = "interval=20s jitter=0 rise=1 uri=/healthz"
    rampart.configure(conf(port, [a.addr, b.addr, c.addr], check), workers=2)
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "healthy", c.addr: "unhealthy"})
    since = peers(port)[c.addr]
    # a probe would now pass (rise=1): only a probe soon after the reload could change it
    c.set_health(200)
    c_probes = c.health_hits()
    mark = rampart.log_size()
    rampart.configure(conf(port, [a.addr, b.addr, c.addr, d.addr], check), workers=2)
    rampart.reload()
    rampart.wait_log(r"configuration reloaded", since=mark)
    # the new helper probes the new peer at once: once it has a verdict, that helper has
    # looked at every peer
    ps = wait_health(port, {d.addr: "healthy"})
    assert ps[c.addr]["health"] == "unhealthy" and ps[c.addr]["state"] == "unhealthy", ps
    assert ps[a.addr]["health"] == "healthy" and ps[b.addr]["health"] == "healthy", ps
    assert ps[c.addr]["check_fails"] == since["check_fails"]
    assert c.health_hits() == c_probes
    hits = c.hits()
    assert set(served(port, 30)) == {"a", "b", "d"}
    assert c.hits() == hits


def test_mandatory_peer_takes_no_traffic_until_its_first_check_passes(rampart, port, hb):
    a, b, c = hb("a"), hb("b"), hb("c")
    c.hold()  # its first probe waits
    rampart.configure(conf(port, [a.addr, b.addr, c.addr],
                           "interval=200ms timeout=20s uri=/healthz mandatory"), workers=2)
    rampart.start()
    # no request before a and b are healthy: a worker that balanced while all three were
    # unknown would be in panic (none healthy) for a moment, sending to all of them
    for x in (a, b):
        rampart.wait_log(rf'peer {x.addr} of upstream "pool" is healthy', timeout=WAIT)
    harness.wait_for(lambda: c.health_hits() >= 1, timeout=WAIT, what="c's first probe")
    assert set(served(port, 30)) == {"a", "b"}
    assert c.hits() == 0
    p = peers(port)[c.addr]
    assert p["health"] == "unknown" and p["state"] == "unknown"
    c.release()
    wait_health(port, {c.addr: "healthy"})
    assert "c" in served(port, 30)


def test_mandatory_pool_takes_no_traffic_before_its_first_checks_pass(rampart, port, hb):
    # no peer judged yet is no panic: the pool waits for its checks rather than sending
    # to every peer
    a, b = hb("a"), hb("b")
    a.hold()
    b.hold()
    rampart.configure(conf(port, [a.addr, b.addr],
                           "interval=200ms timeout=20s uri=/healthz mandatory"), workers=2)
    rampart.start()
    harness.wait_for(lambda: a.health_hits() and b.health_hits(), timeout=WAIT,
                     what="the first probes")
    for _ in range(10):
        assert get(port, "/", headers={"Connection": "close"}).status == 502
    assert a.hits() == 0 and b.hits() == 0
    assert "in panic" not in rampart.log_text()
    a.release()
    wait_health(port, {a.addr: "healthy", b.addr: "unknown"})
    assert set(served(port, 10)) == {"a"}
    b.release()


def test_without_mandatory_a_peer_of_unknown_health_takes_traffic(rampart, port, hb):
    a, b, c = hb("a"), hb("b"), hb("c")
    c.hold()
    rampart.configure(conf(port, [a.addr, b.addr, c.addr],
                           "interval=200ms timeout=20s uri=/healthz"), workers=2)
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "healthy"})
    harness.wait_for(lambda: c.health_hits() >= 1, timeout=WAIT, what="c's first probe")
    assert peers(port)[c.addr]["health"] == "unknown"
    assert "c" in served(port, 30)
    assert peers(port)[c.addr]["health"] == "unknown"
    c.release()


def test_a_new_peers_first_failed_check_makes_it_unhealthy_at_once(rampart, port, hb):
    # a peer of unknown health: its first check decides, as Envoy's (fall=3 is for a
    # healthy one)
    a, b = hb("a"), hb("b")
    b.set_health(500)
    rampart.configure(conf(port, [a.addr, b.addr], "interval=10s fall=3 uri=/healthz"))
    rampart.start()
    ps = wait_health(port, {a.addr: "healthy", b.addr: "unhealthy"})
    assert ps[b.addr]["check_fails"] == 1 and b.health_hits() == 1


def test_probe_timeout_makes_a_peer_unhealthy(rampart, port, hb):
    a, b = hb("a"), hb("b")
    b.hold()
    rampart.configure(conf(port, [a.addr, b.addr], "interval=10s timeout=300ms uri=/healthz"))
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "unhealthy"})
    rampart.wait_log(rf'peer {b.addr} of upstream "pool" is unhealthy: timed out waiting for '
                     r'the response')
    b.release()


def test_probe_request_carries_uri_host_and_configured_headers(rampart, port, hb):
    a = hb("a", path="/status/live")
    rampart.configure(conf(port, [a.addr], 'interval=10s uri=/status/live?full=1 '
                                           'header="X-Probe: rampart" header="Accept: */*"'))
    rampart.start()
    wait_health(port, {a.addr: "healthy"})
    [(_, headers)] = a.health_requests()
    assert headers["Host"] == a.addr
    assert headers["X-Probe"] == "rampart" and headers["Accept"] == "*/*"
    assert headers["Connection"] == "close"


def test_port_parameter_probes_another_port_of_the_peer(rampart, port, hb):
    traffic, health = hb("traffic"), hb("health")
    health.set_health(503)
    rampart.configure(conf(port, [traffic.addr], f"interval=10s port={health.port} uri=/healthz"))
    rampart.start()
    wait_health(port, {traffic.addr: "unhealthy"})
    assert health.health_hits() == 1 and traffic.health_hits() == 0
    [(_, headers)] = health.health_requests()
    assert headers["Host"] == f"127.0.0.1:{health.port}"


def test_checks_run_with_master_process_off(rampart, port, hb):
    a, b = hb("a"), hb("b")
    b.set_health(503)
    text = rampart.render(conf(port, [a.addr, b.addr], "interval=200ms uri=/healthz"),
                          main="master_process off;")
    rampart.configure(text=text)
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "unhealthy"})
    b.set_health(200)
    wait_health(port, {b.addr: "healthy"})


def test_dynamic_peers_of_a_resolve_line_are_probed_with_the_lines_name(rampart, port, hb):
    dns = DnsServer().start()
    try:
        b2 = hb("b2", host="127.0.0.2")
        b3 = hb("b3", host="127.0.0.3", port=b2.port)
        b3.set_health(503)
        dns.set("backend.test", a=["127.0.0.2"], ttl=1)
        rampart.configure(conf(port, [f"backend.test:{b2.port} resolve"],
                               "interval=200ms uri=/healthz",
                               http=f"resolver {dns.addr} ipv6=off;"), workers=2)
        rampart.start()
        wait_health(port, {b2.addr: "healthy"})
        assert b2.health_requests()[0][1]["Host"] == f"backend.test:{b2.port}"
        # an address the name gains is probed too, and kept out when it fails
        dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
        wait_health(port, {b2.addr: "healthy", b3.addr: "unhealthy"})
        assert set(served(port, 20)) == {"b2"}
    finally:
        dns.stop()


# --- match blocks ---------------------------------------------------------------------


MATCHES = [
    # (match block body, what /healthz answers: status, body, headers; expected health)
    ("status 200-299;", (302, "", {"Location": "/x"}), "unhealthy"),
    ("status 200-299;", (204, "", {}), "healthy"),
    ("status ! 500 503;", (503, "", {}), "unhealthy"),
    ("status ! 500 503;", (404, "", {}), "healthy"),
    ("header X-Ready = yes;", (200, "", {"X-Ready": "no"}), "unhealthy"),
    ("header X-Ready = yes;", (200, "", {"X-Ready": "yes"}), "healthy"),
    ("header ! X-Maintenance;", (200, "", {"X-Maintenance": "1"}), "unhealthy"),
    ("header X-Version ~ \"^2\\.\";", (200, "", {"X-Version": "2.4"}), "healthy"),
    ('body ~ "\\"status\\":\\s*\\"up\\"";', (200, '{"status": "down"}', {}), "unhealthy"),
    ('body ~ "\\"status\\":\\s*\\"up\\"";', (200, '{"status":  "up"}', {}), "healthy"),
    ('body !~ maintenance;', (200, "in maintenance", {}), "unhealthy"),
]


@pytest.mark.parametrize("tests,answer,expected", MATCHES)
def test_match_block_decides_the_verdict(rampart, port, hb, tests, answer, expected):
    a = hb("a")
    a.set_health(answer[0], body=answer[1], headers=answer[2])
    rampart.configure(conf(port, [a.addr], "interval=10s uri=/healthz match=ready",
                           http=f"match ready {{ {tests} }}"))
    rampart.start()
    wait_health(port, {a.addr: expected})
    if expected == "unhealthy":
        rampart.wait_log(rf'peer {a.addr} of upstream "pool" is unhealthy: status '
                         rf'{answer[0]}: failed ".*" of match "ready"')


def test_without_match_a_3xx_passes_and_a_4xx_fails(rampart, port, hb):
    a, b = hb("a"), hb("b")
    a.set_health(301, headers={"Location": "/"})
    b.set_health(404)
    rampart.configure(conf(port, [a.addr, b.addr], "interval=10s uri=/healthz"))
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "unhealthy"})


# --- tcp, tls, grpc -------------------------------------------------------------------


def test_tcp_check_passes_on_a_connect_and_fails_on_a_refused_one(rampart, port, hb):
    a = hb("a")
    a.set_health(503)  # not asked: a tcp check sends nothing
    dead = "127.0.0.1:%d" % harness.free_port()
    rampart.configure(conf(port, [a.addr, dead], "type=tcp interval=10s"))
    rampart.start()
    wait_health(port, {a.addr: "healthy", dead: "unhealthy"})
    assert a.health_hits() == 0
    rampart.wait_log(rf'peer {dead} of upstream "pool" is unhealthy: connect\(\) failed '
                     r'\(111: Connection refused\)')


def test_tls_check_against_a_tls_backend(rampart, port, hb, certs):
    a = hb("a", cert=certs.cert("a.test"), key=certs.key("a.test"))
    b = hb("b", cert=certs.cert("a.test"), key=certs.key("a.test"))
    b.set_health(503)
    rampart.configure(conf(port, [a.addr, b.addr], "tls interval=10s uri=/healthz"))
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "unhealthy"})
    assert a.health_hits() == 1 and b.health_hits() == 1


def test_tls_check_fails_against_a_plain_backend(rampart, port, hb, certs):
    a = hb("a", cert=certs.cert("a.test"), key=certs.key("a.test"))
    plain = hb("plain")
    rampart.configure(conf(port, [a.addr, plain.addr], "tls interval=10s uri=/healthz"))
    rampart.start()
    wait_health(port, {a.addr: "healthy", plain.addr: "unhealthy"})
    rampart.wait_log(rf'peer {plain.addr} of upstream "pool" is unhealthy: TLS handshake failed')
    assert plain.health_hits() == 0


SERVING, NOT_SERVING = 1, 2


class HealthServer:
    """A gRPC server implementing grpc.health.v1.Health/Check on raw bytes: statuses
    maps a service name ("" for the server) to its serving status; an unknown one
    answers NOT_FOUND, as grpc's own health service does."""

    def __init__(self, statuses, certs=None):
        self.statuses = dict(statuses)
        self.asked = []
        self.lock = threading.Lock()
        handlers = {"Check": grpc.unary_unary_rpc_method_handler(self.check)}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("grpc.health.v1.Health", handlers),))
        if certs is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            creds = grpc.ssl_server_credentials(
                [(certs.key("a.test").read_bytes(), certs.cert("a.test").read_bytes())])
            self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()
        self.addr = "127.0.0.1:%d" % self.port

    @staticmethod
    def service_of(request):
        # HealthCheckRequest { string service = 1; }: tag 0x0a, a one-byte length here
        if not request:
            return ""
        assert request[0] == 0x0A and request[1] == len(request) - 2, request
        return request[2:].decode()

    def check(self, request, ctx):
        service = self.service_of(request)
        with self.lock:
            self.asked.append(service)
        if service not in self.statuses:
            ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return bytes([0x08, self.statuses[service]])  # status = 1: a varint

    def stop(self):
        self.server.stop(0)


@pytest.fixture
def grpc_servers():
    made = []

    def make(statuses, certs=None):
        s = HealthServer(statuses, certs)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def grpc_conf(port, servers, check):
    return conf(port, servers, check, upstream="http2;")


def test_grpc_check_serving_is_healthy_and_not_serving_unhealthy(rampart, port, grpc_servers):
    up = grpc_servers({"": SERVING})
    down = grpc_servers({"": NOT_SERVING})
    rampart.configure(grpc_conf(port, [up.addr, down.addr], "type=grpc interval=10s"))
    rampart.start()
    wait_health(port, {up.addr: "healthy", down.addr: "unhealthy"})
    rampart.wait_log(rf'peer {down.addr} of upstream "pool" is unhealthy: NOT_SERVING')
    assert up.asked == [""] and down.asked == [""]


def test_grpc_check_asks_for_the_configured_service(rampart, port, grpc_servers):
    s = grpc_servers({"": NOT_SERVING, "shop.Cart": SERVING})
    other = grpc_servers({"": SERVING})  # has no shop.Cart: NOT_FOUND
    rampart.configure(grpc_conf(port, [s.addr, other.addr],
                                "type=grpc grpc_service=shop.Cart interval=10s"))
    rampart.start()
    wait_health(port, {s.addr: "healthy", other.addr: "unhealthy"})
    assert s.asked == ["shop.Cart"]
    rampart.wait_log(rf'peer {other.addr} of upstream "pool" is unhealthy: grpc-status 5: '
                     r'unknown service')


def test_grpc_check_over_tls(rampart, port, grpc_servers, certs):
    up = grpc_servers({"": SERVING}, certs=certs)
    down = grpc_servers({"": NOT_SERVING}, certs=certs)
    rampart.configure(grpc_conf(port, [up.addr, down.addr], "type=grpc tls interval=10s"))
    rampart.start()
    wait_health(port, {up.addr: "healthy", down.addr: "unhealthy"})


def test_grpc_status_changes_are_followed(rampart, port, grpc_servers):
    a = grpc_servers({"": SERVING})
    b = grpc_servers({"": SERVING})
    rampart.configure(grpc_conf(port, [a.addr, b.addr],
                                "type=grpc interval=200ms fall=2 rise=2"))
    rampart.start()
    wait_health(port, {a.addr: "healthy", b.addr: "healthy"})
    b.statuses[""] = NOT_SERVING
    wait_health(port, {b.addr: "unhealthy"})
    b.statuses[""] = SERVING
    wait_health(port, {b.addr: "healthy"})


# --- configuration --------------------------------------------------------------------


def upstream_with(check, extra=""):
    # the upstream's health_check is on line 5 of the file (the http content begins on 3)
    return (f"{extra}\nupstream u {{\n server 127.0.0.1:1;\n health_check {check};\n}}\n"
            "server { listen 127.0.0.1:1; location / { proxy_pass http://u; } }")


@pytest.mark.parametrize("check,message", [
    ("foo=1", '"health_check": invalid parameter "foo=1"'),
    ("interval=abc", '"health_check": invalid interval "abc"'),
    ("interval=0", '"health_check": invalid interval "0"'),
    ("timeout=-1s", '"health_check": invalid timeout "-1s"'),
    ("jitter=120%", '"health_check": invalid jitter "120%" (0% to 100%, or a time)'),
    ("rise=0", '"health_check": invalid value "rise=0" (a count from 1 to 1000)'),
    ("fails=x", '"health_check": invalid value "fails=x" (a count from 1 to 1000)'),
    ("port=70000", '"health_check": invalid port "70000"'),
    ("type=udp", '"health_check": invalid type "udp" (http, tcp or grpc)'),
    ("uri=healthz", '"health_check": invalid uri "healthz" (it starts with "/")'),
    ("type=tcp uri=/x", '"health_check": "uri" needs type=http'),
    ("grpc_service=x", '"health_check": "grpc_service" needs type=grpc'),
    ('header=NoColon', '"health_check": invalid header "NoColon" (header="Name: value")'),
    ('"header=Connection: keep-alive"',
     '"health_check": a probe\'s "Connection" header is always "close"'),
    ("match=nope", '"health_check": no match "nope" is defined'),
])
def test_bad_health_check_is_refused_with_file_and_line(conf_dir, check, message):
    reference_nginx.assert_rampart_refuses(conf_dir, upstream_with(check), 6, message)


def test_second_health_check_in_one_upstream_is_refused(conf_dir):
    http = ("upstream u {\n server 127.0.0.1:1;\n health_check;\n health_check;\n}\n"
            "server { listen 127.0.0.1:1; location / { proxy_pass http://u; } }")
    reference_nginx.assert_rampart_refuses(conf_dir, http, 6, '"health_check": is duplicate')


@pytest.mark.parametrize("body,message", [
    ("status 2000;", '"status": invalid status "2000" (a code from 100 to 599, or a range '
                     'such as 200-399)'),
    ("status 399-200;", '"status": invalid status "399-200" (a code from 100 to 599, or a '
                        'range such as 200-399)'),
    ("status !;", '"status": no status code in "status"'),
    ("header X-A == b;", '"header": invalid operator "==" in "header" (=, !=, ~, !~, ~* or !~*)'),
    ("body = x;", '"body": invalid operator "=" in "body" (~, !~, ~* or !~*)'),
    ('body ~ "(";', '"body": invalid regex "(": missing closing parenthesis at offset 1'),
    ("require $x;", '"require": unknown test "require" (status, header or body)'),
])
def test_bad_match_line_is_refused_with_file_and_line(conf_dir, body, message):
    http = f"match m {{\n{body}\n}}\n" + upstream_with("match=m")
    reference_nginx.assert_rampart_refuses(conf_dir, http, 4, message)


def test_duplicate_match_is_refused(conf_dir):
    http = "match m { status 200; }\nmatch m { status 201; }\n" + upstream_with("match=m")
    path = conf_dir / "rampart.conf"
    reference_nginx.assert_rampart_refuses(
        conf_dir, http, 4, f'"match": duplicate match "m", first defined at {path}:3')


def test_health_check_outside_an_upstream_is_refused(conf_dir):
    http = "server { listen 127.0.0.1:1; location / { health_check; } }"
    p = reference_nginx.rampart_text(http)
    (conf_dir / "rampart.conf").write_text(p)
    r = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert r.returncode == 1
    assert '"health_check": not allowed in the location context' in r.stderr


def test_full_syntax_is_accepted(conf_dir):
    http = ('match ok {\n status 200-399;\n header Content-Type ~* json;\n'
            ' body ~ "up";\n}\n'
            + upstream_with('interval=5s jitter=500ms timeout=2s passes=2 fails=3 uri=/hz '
                            'port=8081 tls mandatory persistent match=ok '
                            '"header=Host: api.test" header=X-A:1'))
    (conf_dir / "rampart.conf").write_text(reference_nginx.rampart_text(http))
    r = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert r.returncode == 0, r.stderr
