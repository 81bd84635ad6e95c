"""Upstream names resolved at run time: `server NAME resolve`, `resolver`,
`resolver_timeout`, and the addresses of plain server names taken at
configuration time.

The name servers are dns_server.DnsServer, a table the test changes while rampart
runs. Backends behind one name listen on one port at different loopback addresses
(127.0.0.2, 127.0.0.3, ...), since a DNS answer gives addresses and the server line
the port. Every wait is for an event: a line in the error log, a backend seeing
requests, the name server seeing questions.
"""

import json
import shutil
import subprocess
import threading

import pytest

import backend as backend_mod
import harness
from dns_server import DnsServer
from h2_backend import H2Backend
from h2client import H2Client

WAIT = 15  # seconds for what takes a TTL (1 s) and a round trip; generous for ASan on CI


@pytest.fixture
def dns():
    server = DnsServer().start()
    yield server
    server.stop()


def backends_on_one_port(backend_factory, hosts):
    """Backends on each of hosts (loopback addresses), all on one port, named by host."""
    last = None
    for _ in range(5):
        first = backend_factory(name=hosts[0], host=hosts[0])
        try:
            return [first] + [backend_factory(name=h, host=h, port=first.port)
                              for h in hosts[1:]]
        except backend_mod.BackendError as e:  # the port is taken on another address
            last = e
    raise last


def http_conf(port, upstream, resolver="", extra=""):
    return f"""
{resolver}
upstream pool {{
{upstream}
}}
server {{
    listen {port};
    location / {{ proxy_pass http://pool; }}
}}
{extra}
"""


def who(port):
    """The name of the backend that answered one request through rampart (None: none)."""
    r = harness.get(port)
    return r.headers.get("X-Backend-Name") if r.status == 200 else None


def answered_by(port, names, timeout=WAIT):
    """Waits until requests have been answered by each backend of names."""
    seen = set()

    def all_seen():
        n = who(port)
        if n:
            seen.add(n)
        return set(names) <= seen
    harness.wait_for(all_seen, timeout=timeout, interval=0.01, what=f"answers from {names}")


class Load:
    """Requests through rampart, one after another on fresh connections, from a few
    threads, for as long as it runs; every answer (status, backend) is kept."""

    def __init__(self, port, threads=2):
        self.port = port
        self.results = []
        self.errors = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                r = harness.get(self.port, timeout=10)
                item = (r.status, r.headers.get("X-Backend-Name"))
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                item = (0, repr(e))
            with self._lock:
                self.results.append(item)

    def __enter__(self):
        for t in self._threads:
            t.start()
        harness.wait_for(lambda: len(self.results) >= 5, timeout=WAIT, what="load running")
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)

    def count(self):
        with self._lock:
            return len(self.results)

    def failures(self):
        with self._lock:
            return [r for r in self.results if r[0] != 200]


def resolved(rampart, since, text):
    """Waits for the helper to log that the pool's name now resolves to text."""
    return rampart.wait_log(r'"pool": "[^"]+" resolves to ' + text, since=since, timeout=WAIT)


# --- resolving at run time -------------------------------------------------------------


def test_name_with_two_addresses_serves_both(rampart, dns, backend_factory, port):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;"), workers=2)
    rampart.start()
    resolved(rampart, 0, rf"127\.0\.0\.2:{b2.port}, 127\.0\.0\.3:{b2.port}")
    answered_by(port, ["127.0.0.2", "127.0.0.3"])


def test_pool_follows_added_and_removed_addresses_under_load_without_failures(
        rampart, dns, backend_factory, port):
    b2, b3, b4 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;\nkeepalive 8;",
                                f"resolver {dns.addr} ipv6=off;"), workers=2)
    rampart.start()
    resolved(rampart, 0, rf"127\.0\.0\.2:{b2.port}, 127\.0\.0\.3:{b2.port}")
    with Load(port) as load:
        # a third address joins: it gets requests
        mark = rampart.log_size()
        dns.set("backend.test", a=["127.0.0.2", "127.0.0.3", "127.0.0.4"], ttl=1)
        resolved(rampart, mark, rf"127\.0\.0\.2:\d+, 127\.0\.0\.3:\d+, 127\.0\.0\.4:{b4.port}")
        harness.wait_for(lambda: b4.stats()["requests"] >= 5, timeout=WAIT,
                         what="the added backend taking requests")
        # the first one leaves: it stops getting requests, and its idle connections close
        mark = rampart.log_size()
        dns.set("backend.test", a=["127.0.0.3", "127.0.0.4"], ttl=1)
        resolved(rampart, mark, rf"127\.0\.0\.3:\d+, 127\.0\.0\.4:{b4.port}$")
        before = b2.stats()["requests"]
        seen3, seen4 = b3.stats()["requests"], b4.stats()["requests"]
        harness.wait_for(lambda: b3.stats()["requests"] >= seen3 + 10 and
                         b4.stats()["requests"] >= seen4 + 10, timeout=WAIT,
                         what="the remaining backends taking requests")
        # at most the requests in flight when the answer came (one per load thread)
        assert b2.stats()["requests"] <= before + 2
        harness.wait_for(lambda: b2.stats()["open_connections"] == 0, timeout=WAIT,
                         what="the removed backend's connections to close")
    assert load.count() > 20
    assert load.failures() == []


def test_request_in_flight_to_a_removed_address_finishes(rampart, dns, backend_factory, port):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("backend.test", a=["127.0.0.2"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;\nkeepalive 4;",
                                f"resolver {dns.addr} ipv6=off;"))
    rampart.start()
    answered_by(port, ["127.0.0.2"])
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=harness.get(port, "/?delay=3",
                                                                   timeout=20)))
    before = b2.stats()["requests"]
    t.start()
    harness.wait_for(lambda: b2.stats()["requests"] > before, what="the slow request upstream")
    mark = rampart.log_size()
    dns.set("backend.test", a=["127.0.0.3"], ttl=1)
    resolved(rampart, mark, rf"127\.0\.0\.3:{b2.port}$")
    assert {who(port) for _ in range(5)} == {"127.0.0.3"}
    t.join(timeout=20)
    assert slow["r"].status == 200
    assert slow["r"].headers["X-Backend-Name"] == "127.0.0.2"
    # its connection is not kept: the address has left the pool
    harness.wait_for(lambda: b2.stats()["open_connections"] == 0, timeout=WAIT,
                     what="the removed backend's connection to close")


def test_name_unknown_at_start_gives_502_until_it_resolves(rampart, dns, backend_factory, port):
    (b2,) = backends_on_one_port(backend_factory, ["127.0.0.2"])
    rampart.configure(http_conf(port, f"server late.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;"))
    rampart.start()
    rampart.wait_log(r'"late.test" could not be resolved \(host not found\)', timeout=WAIT)
    r = harness.get(port)
    assert r.status == 502
    rampart.wait_log("no live upstreams")
    dns.set("late.test", a=["127.0.0.2"], ttl=1)
    answered_by(port, ["127.0.0.2"])


def test_name_that_stops_existing_empties_its_part_of_the_pool(rampart, dns, backend_factory,
                                                                port):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("gone.test", a=["127.0.0.2"], ttl=1)
    dns.set("stays.test", a=["127.0.0.3"], ttl=1)
    rampart.configure(http_conf(port, f"server gone.test:{b2.port} resolve;\n"
                                      f"server stays.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;"))
    rampart.start()
    answered_by(port, ["127.0.0.2", "127.0.0.3"])
    mark = rampart.log_size()
    dns.remove("gone.test")  # NXDOMAIN: as nginx, its addresses leave the pool
    rampart.wait_log(r'"gone.test:\d+" resolves to no address', since=mark, timeout=WAIT)
    assert {who(port) for _ in range(10)} == {"127.0.0.3"}


@pytest.mark.parametrize("failure", ["silent", "servfail"])
def test_failing_name_server_keeps_the_last_addresses(rampart, dns, backend_factory, port,
                                                      failure):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;\nresolver_timeout 1s;"))
    rampart.start()
    answered_by(port, ["127.0.0.2", "127.0.0.3"])
    mark = rampart.log_size()
    dns.mode = failure
    rampart.wait_log(r'"backend.test" could not be resolved .*its last addresses stay',
                     since=mark, timeout=WAIT)
    answered_by(port, ["127.0.0.2", "127.0.0.3"])
    # back again: changes are followed once more
    mark = rampart.log_size()
    dns.set("backend.test", a=["127.0.0.3"], ttl=1)
    dns.mode = "answer"
    resolved(rampart, mark, rf"127\.0\.0\.3:{b2.port}$")
    assert {who(port) for _ in range(10)} == {"127.0.0.3"}


def test_reload_keeps_resolved_peers_serving_without_failures(rampart, dns, backend_factory,
                                                               port):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
    upstream = f"server backend.test:{b2.port} resolve;\nkeepalive 4;"
    resolver = f"resolver {dns.addr} ipv6=off;\nresolver_timeout 1s;"
    rampart.configure(http_conf(port, upstream, resolver), workers=2)
    rampart.start()
    answered_by(port, ["127.0.0.2", "127.0.0.3"])
    # the name server goes silent: the new generation can only have the addresses from
    # shared memory
    dns.mode = "silent"
    with Load(port) as load:
        for i in range(2):
            rampart.configure(http_conf(port, upstream, resolver,
                                        extra=f"# generation {i + 1}"), workers=2)
            out = rampart.reload()
            assert "configuration reloaded" in out.group(0)
            b2_before, b3_before = b2.stats()["requests"], b3.stats()["requests"]
            harness.wait_for(lambda: b2.stats()["requests"] > b2_before + 3 and
                             b3.stats()["requests"] > b3_before + 3, timeout=WAIT,
                             what="both backends serving after the reload")
    assert load.failures() == []


def test_helper_restart_keeps_the_addresses(rampart, dns, backend_factory, port):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("backend.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;\nresolver_timeout 1s;"))
    rampart.start()
    answered_by(port, ["127.0.0.2", "127.0.0.3"])
    dns.mode = "silent"
    workers, (helper,) = rampart.wait_processes(1)
    mark = rampart.log_size()
    rampart.kill(helper)
    rampart.wait_processes(1, exclude=[helper], timeout=WAIT)
    rampart.wait_log(r'"backend.test" could not be resolved .*its last addresses stay',
                     since=mark, timeout=WAIT)
    answered_by(port, ["127.0.0.2", "127.0.0.3"])


def test_resolve_works_with_master_process_off(rampart, dns, backend_factory, port):
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    dns.set("backend.test", a=["127.0.0.2"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;"), main="master_process off;")
    rampart.start()
    answered_by(port, ["127.0.0.2"])
    mark = rampart.log_size()
    dns.set("backend.test", a=["127.0.0.3"], ttl=1)
    resolved(rampart, mark, rf"127\.0\.0\.3:{b2.port}$")
    assert {who(port) for _ in range(5)} == {"127.0.0.3"}
    # an in-place reload resolves with the new configuration, from where the old left off
    dns.mode = "silent"
    with Load(port, threads=1) as load:
        rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                    f"resolver {dns.addr} ipv6=off;\nresolver_timeout 1s;"),
                          main="master_process off;")
        rampart.reload()
        seen = b3.stats()["requests"]
        harness.wait_for(lambda: b3.stats()["requests"] > seen + 3, timeout=WAIT,
                         what="serving after the reload")
    assert load.failures() == []


def test_resolve_with_http2_upstream(rampart, dns, tmp_path, port):
    made = []
    try:
        for _ in range(5):
            first = H2Backend(host="127.0.0.2").start()
            made.append(first)
            second = H2Backend(host="127.0.0.3", port=first.port)
            made.append(second)
            try:
                second.start()
                break
            except AssertionError:
                continue
        dns.set("h2.test", a=["127.0.0.2", "127.0.0.3"], ttl=1)
        rampart.configure(http_conf(port, f"server h2.test:{first.port} resolve;\nhttp2;",
                                    f"resolver {dns.addr} ipv6=off;"))
        rampart.start()
        resolved(rampart, 0, rf"127\.0\.0\.2:{first.port}, 127\.0\.0\.3:{first.port}")

        def stats(b):
            with H2Client(b.port, host=b.host) as c:
                return json.loads(c.request("GET", "/__stats").body)

        def both_served():
            assert harness.get(port).status == 200
            return stats(first)["requests"] > 0 and stats(second)["requests"] > 0
        harness.wait_for(both_served, timeout=WAIT, what="both HTTP/2 backends serving")
        mark = rampart.log_size()
        dns.set("h2.test", a=["127.0.0.3"], ttl=1)
        resolved(rampart, mark, rf"127\.0\.0\.3:{first.port}$")
        before = stats(first)["requests"]
        for _ in range(10):
            assert harness.get(port).status == 200
        assert stats(first)["requests"] == before
        # the session to the address that left closes (the one open is the stats request's)
        harness.wait_for(lambda: stats(first)["open_connections"] == 1, timeout=WAIT,
                         what="the HTTP/2 session to the removed backend to close")
    finally:
        for b in made:
            b.stop()


def test_ipv6_answers_are_used_unless_ipv6_is_off(rampart, dns, backend_factory, port):
    try:
        (b6,) = backends_on_one_port(backend_factory, ["::1"])
    except backend_mod.BackendError:
        pytest.skip("no IPv6 loopback here")
    dns.set("v6.test", aaaa=["::1"], ttl=1)
    rampart.configure(http_conf(port, f"server v6.test:{b6.port} resolve;",
                                f"resolver {dns.addr};"))
    rampart.start()
    answered_by(port, ["::1"])
    assert dns.queries("v6.test", "A") >= 1


def test_ipv6_off_asks_no_aaaa(rampart, dns, backend_factory, port):
    (b2,) = backends_on_one_port(backend_factory, ["127.0.0.2"])
    dns.set("backend.test", a=["127.0.0.2"], aaaa=["::1"], ttl=1)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                f"resolver {dns.addr} ipv6=off;"))
    rampart.start()
    harness.wait_for(lambda: dns.queries("backend.test", "A") >= 3, timeout=WAIT,
                     what="the name asked again as its TTL runs out")
    assert dns.queries("backend.test", "AAAA") == 0


def test_valid_replaces_the_ttl(rampart, dns, backend_factory, port):
    (b2,) = backends_on_one_port(backend_factory, ["127.0.0.2"])
    dns.set("backend.test", a=["127.0.0.2"], ttl=3600)
    rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;",
                                f"resolver {dns.addr} valid=1s ipv6=off;"))
    rampart.start()
    harness.wait_for(lambda: dns.queries("backend.test", "A") >= 3, timeout=WAIT,
                     what="the name asked again every second despite a TTL of an hour")


def test_upstream_resolver_is_used_before_the_http_one(rampart, dns, backend_factory, port):
    (b2,) = backends_on_one_port(backend_factory, ["127.0.0.2"])
    other = DnsServer().start()
    try:
        dns.set("backend.test", a=["127.0.0.2"], ttl=1)
        rampart.configure(http_conf(port, f"server backend.test:{b2.port} resolve;\n"
                                          f"resolver {dns.addr} ipv6=off;",
                                    f"resolver {other.addr};"))
        rampart.start()
        answered_by(port, ["127.0.0.2"])
        assert other.queries("backend.test", "A") == 0
    finally:
        other.stop()


# --- configuration -----------------------------------------------------------------------


def check(conf_dir, http):
    """`rampart -t` of a file with http { http }: (CompletedProcess, its path)."""
    path = conf_dir / "rampart.conf"
    path.write_text("pid logs/rampart.pid;\nhttp {\n" + http + "\n}\n")
    return harness.run("-t", "-p", conf_dir, "-c", "rampart.conf"), path


def failed(path, message):
    return f"rampart: {message}\nrampart: configuration file {path} test failed\n"


def test_resolve_without_resolver_is_a_configuration_error(conf_dir):
    r, path = check(conf_dir, "upstream pool {\n    server 127.0.0.1:9;\n"
                              "    server backend.test:8080 resolve;\n}")
    assert r.returncode == 1
    assert r.stderr == failed(path, f'{path}:5: "server": no resolver defined to resolve '
                                    f'backend.test')


def test_resolver_after_the_upstream_block_counts(conf_dir):
    r, _ = check(conf_dir, "upstream pool { server backend.test:8080 resolve weight=2 "
                           "max_fails=3 fail_timeout=5s max_conns=10 slow_start=10s; }\n"
                           "resolver 127.0.0.1:5353 [::1] valid=30s ipv6=off;\n"
                           "resolver_timeout 5s;")
    assert r.returncode == 0, r.stderr


def test_resolver_in_a_server_and_a_location_is_accepted(conf_dir):
    r, _ = check(conf_dir, "upstream pool { server backend.test:8080 resolve; }\n"
                           "resolver 127.0.0.1;\n"
                           "server { resolver 127.0.0.2; resolver_timeout 2s;\n"
                           "  location / { resolver 127.0.0.3 ipv4=off; proxy_pass http://pool; } }")
    assert r.returncode == 0, r.stderr


def test_resolve_of_an_address_literal_needs_no_resolver(conf_dir):
    r, _ = check(conf_dir, "upstream pool { server 127.0.0.1:8080 resolve; }")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("line, message", [
    ("resolver 127.0.0.1 ipv4=off ipv6=off;",
     '"resolver": "ipv4" and "ipv6" cannot both be "off"'),
    ("resolver 127.0.0.1 valid=0;", '"resolver": invalid parameter "valid=0"'),
    ("resolver 127.0.0.1 status_zone=x;", '"resolver": invalid parameter "status_zone=x"'),
    ("resolver nosuch.invalid;", '"resolver": host not found in resolver "nosuch.invalid"'),
    ("resolver 127.0.0.1:99999;", '"resolver": invalid port in "127.0.0.1:99999"'),
    ("resolver_timeout 0;", '"resolver_timeout": invalid value "0"'),
])
def test_invalid_resolver_lines_are_errors(conf_dir, line, message):
    r, path = check(conf_dir, line)
    assert r.returncode == 1
    assert r.stderr == failed(path, f"{path}:3: {message}")


def test_second_resolver_at_one_level_is_an_error(conf_dir):
    r, path = check(conf_dir, "resolver 127.0.0.1;\nresolver 127.0.0.2;")
    assert r.returncode == 1
    assert r.stderr == failed(path, f'{path}:4: "resolver": is duplicate')


def test_unknown_host_without_resolve_is_a_configuration_error(conf_dir):
    r, path = check(conf_dir, "upstream pool {\n    server nosuch.invalid:8080;\n}")
    assert r.returncode == 1
    assert r.stderr == failed(path, f'{path}:4: "server": host not found in upstream '
                                    f'"nosuch.invalid:8080"')


def _unshare_works():
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_name_with_two_addresses_without_resolve_gives_two_peers(rampart, backend_factory,
                                                                  tmp_path, port):
    """A plain server name becomes one peer per address, as nginx: rampart runs with a
    hosts file of its own (a mount namespace) where two.test has two addresses."""
    if not _unshare_works():
        pytest.skip("cannot make a mount namespace here (unshare -rm)")
    b2, b3 = backends_on_one_port(backend_factory, ["127.0.0.2", "127.0.0.3"])
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.2 two.test\n127.0.0.3 two.test\n")
    nss = tmp_path / "nsswitch.conf"
    nss.write_text("hosts: files\n")
    rampart.configure(http_conf(port, f"server two.test:{b2.port};"))
    script = (f'mount --bind "{hosts}" /etc/hosts && '
              f'mount --bind "{nss}" /etc/nsswitch.conf && exec "$@"')
    rampart.start(wrap=["unshare", "-rm", "sh", "-c", script, "sh"])
    answered_by(port, ["127.0.0.2", "127.0.0.3"])
