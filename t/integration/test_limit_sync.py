"""Sharing limits between nodes through Redis (`limit_sync`): a real redis-server
started by each test on a free loopback port (no persistence), inspected with raw
RESP over a socket (Python has no redis module here).

The helper process holds the connection: AUTH (a password, or a Redis 6 ACL user),
SELECT, TLS with verification and a client certificate; a Redis that goes away,
refuses the password, or stops answering is logged once and tried again with a
growing backoff, and its return is logged once. The tests wait for log lines and
for what Redis itself reports (CLIENT LIST, its ACL log, its own log), never for
the clock.

Two nodes (two rampart instances, 2 workers each, separate prefixes and ports)
share one `limit_count_zone ... sync`: under h2load against both at once they
accept the limit within 5%; with Redis killed mid-run no request fails or waits,
each node counts alone, and once Redis is back on its port they see each other's
counts again. Quotas have a window of a day, so a run sits in one window. Two
nodes sharing a `limit_req_zone ... sync` pass its burst within 5% together.

Only processes these tests started are ever signalled, by pid."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

import harness
import reference_nginx
from harness import RampartError, get, wait_for

REDIS_BIN = "/usr/bin/redis-server"

UNAVAILABLE = r"limit_sync: redis at [^\n]* is unavailable"
RECOVERED = r"limit_sync: redis at [^\n]* answers again"
CONNECTED = r"limit_sync: connected to redis at "


# -- a real redis-server -------------------------------------------------------


class RedisError(Exception):
    pass


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RedisError(f"unreadable reply {line!r}")


class Redis:
    """One redis-server this test started: a plain port (and a TLS one when asked),
    no persistence, its log in its folder."""

    def __init__(self, folder, port=None, password=None, tls=None):
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or harness.free_port()
        self.password = password
        self.tls = tls  # None, or (cert, key, ca, auth_clients)
        self.tls_port = None
        self.proc = None
        self.log = self.dir / "redis.log"
        self.own = 0  # connections the test itself made, to tell rampart's apart

    def start(self):
        args = [REDIS_BIN, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--logfile", str(self.log), "--loglevel", "verbose"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            cert, key, ca, auth_clients = self.tls
            self.tls_port = self.tls_port or harness.free_port()
            args += ["--tls-port", str(self.tls_port), "--tls-cert-file", str(cert),
                     "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
                     "--tls-auth-clients", "yes" if auth_clients else "no"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def _answers(self):
        if self.proc.poll() is not None:
            raise RampartError(f"redis-server exited: {self.log.read_text(errors='replace')}")
        try:
            return self.command("PING") == "PONG"
        except (OSError, RedisError):
            return False

    def command(self, *args):
        return self.command_db(None, *args)

    def command_db(self, db, *args):
        """One command (in database db, unless None) on a connection of its own."""
        self.own += 1
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(resp("AUTH", self.password))
                read_reply(f)
            if db is not None:
                s.sendall(resp("SELECT", db))
                read_reply(f)
            s.sendall(resp(*args))
            return read_reply(f)

    def clients(self):
        """CLIENT LIST as dicts, without our own inspecting connection."""
        text = self.command("CLIENT", "LIST").decode()
        out = []
        for line in text.splitlines():
            fields = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
            if fields.get("cmd") != "client|list":
                out.append(fields)
        return out

    def sync_clients(self):
        return [c for c in self.clients() if c.get("name") == "rampart-limit-sync"]

    def auth_failures(self):
        """Refused AUTHs, from the ACL log (identical ones are counted in one entry)."""
        n = 0
        for entry in self.command("ACL", "LOG"):
            fields = dict(zip(entry[::2], entry[1::2]))
            if fields[b"reason"] == b"auth":
                n += fields[b"count"]
        return n

    def tls_refusals(self):
        """TLS handshakes that failed, from Redis's log (verbose)."""
        return self.log.read_text(errors="replace").count("Error accepting a client connection")

    def kill(self):
        """SIGKILL, by pid: this redis-server only."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.resume()
        harness.stop_escalating(self.proc, ((signal.SIGTERM, 5), (signal.SIGKILL, 5)))


@pytest.fixture
def redis_factory(tmp_path):
    if not os.access(REDIS_BIN, os.X_OK):
        pytest.fail(f"{REDIS_BIN} not found: install the Debian package redis-server",
                    pytrace=False)
    made = []

    def make(name="redis", **kw):
        r = Redis(tmp_path / name, **kw)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


# -- rampart -------------------------------------------------------------------


def node(rampart, port, sync, workers=1, extra="", main=""):
    """A rampart with limit_sync lines `sync` and one server answering 200."""
    rampart.configure(f"{sync}\n{extra}\nserver {{\n listen 127.0.0.1:{port};\n"
                      f" location / {{ return 200 \"ok\\n\"; }}\n}}", workers=workers,
                      main=main)
    return rampart


def count(rampart, pattern):
    return len(re.findall(pattern, rampart.log_text()))


# -- configuration refusals ------------------------------------------------------


def test_limit_sync_refuses_a_bad_url_with_file_and_line(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "limit_sync redis://127.0.0.1:6379/db2;", 3,
        '"limit_sync": invalid database "db2" in "redis://127.0.0.1:6379/db2" '
        '(a number, as in redis://HOST:PORT/2)')


def test_limit_sync_refuses_a_url_that_is_not_redis(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "limit_sync http://127.0.0.1:6379;", 3,
        '"limit_sync": invalid URL "http://127.0.0.1:6379" (redis://HOST:PORT or rediss://)')


def test_limit_sync_refuses_bad_interval_and_unknown_parameters(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "limit_sync redis://127.0.0.1:6379 interval=soon;", 3,
        '"limit_sync": invalid interval "soon" (1ms to 60s)')
    reference_nginx.assert_rampart_refuses(
        tmp_path, "limit_sync redis://127.0.0.1:6379 ssl;", 3,
        '"limit_sync": invalid parameter "ssl"')


def test_limit_sync_is_only_allowed_in_the_http_block(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "server {\n limit_sync redis://127.0.0.1:6379;\n}", 4,
        '"limit_sync": not allowed in the server context')


def test_limit_sync_ssl_settings_without_tls_are_refused(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "limit_sync redis://127.0.0.1:6379;\nlimit_sync_ssl_name a.test;", 4,
        '"limit_sync_ssl_name": the "limit_sync" connection has no "tls"')


def test_limit_sync_ssl_verify_needs_trusted_certificates(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "limit_sync rediss://127.0.0.1:6379;\n\nlimit_sync_ssl_verify on;", 5,
        '"limit_sync_ssl_verify": no "limit_sync_ssl_trusted_certificate" is defined for it')


def test_limit_sync_refuses_a_trusted_certificate_it_cannot_load(tmp_path, certs):
    http = (f"limit_sync redis://127.0.0.1:6379 tls;\n"
            f"limit_sync_ssl_trusted_certificate {certs.not_pem};")
    (tmp_path / "rampart.conf").write_text(reference_nginx.rampart_text(http))
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1
    assert (f"rampart.conf:4: \"limit_sync_ssl_trusted_certificate\": cannot load "
            f"\"{certs.not_pem}\"") in p.stderr


# -- the connection ---------------------------------------------------------------


def test_helper_connects_with_password_and_database(rampart, redis_factory, port):
    redis = redis_factory(password="s3cret").start()
    node(rampart, port, f"limit_sync redis://:s3cret@127.0.0.1:{redis.port}/3;").start()
    rampart.wait_log(CONNECTED + rf"127\.0\.0\.1:{redis.port} \(db 3\)")
    clients = wait_for(redis.sync_clients, what="rampart's connection in CLIENT LIST")
    assert len(clients) == 1
    assert clients[0]["db"] == "3"
    assert clients[0]["user"] == "default"
    # one per node: the helper's, not the worker's
    _, helpers = rampart.wait_processes(workers=1)
    assert get(port).status == 200


def test_helper_authenticates_as_an_acl_user(rampart, redis_factory, port):
    redis = redis_factory().start()
    redis.command("ACL", "SETUSER", "limiter", "on", ">l1m%t", "~rampart:*", "+@all")
    node(rampart, port, f"limit_sync redis://limiter:l1m%25t@127.0.0.1:{redis.port};").start()
    rampart.wait_log(CONNECTED)
    clients = wait_for(redis.sync_clients, what="rampart's connection in CLIENT LIST")
    assert clients[0]["user"] == "limiter"


def test_single_process_connects_too(rampart, redis_factory, port):
    redis = redis_factory().start()
    node(rampart, port, f"limit_sync redis://127.0.0.1:{redis.port};",
         main="master_process off;").start()
    rampart.wait_log(CONNECTED)
    wait_for(redis.sync_clients, what="rampart's connection in CLIENT LIST")


def test_reload_replaces_the_connection_with_the_new_helpers(rampart, redis_factory, port):
    redis = redis_factory().start()
    node(rampart, port, f"limit_sync redis://127.0.0.1:{redis.port}/1;").start()
    rampart.wait_log(CONNECTED + r"[^\n]*\(db 1\)")
    wait_for(redis.sync_clients, what="rampart's connection in CLIENT LIST")
    mark = rampart.log_size()
    node(rampart, port, f"limit_sync redis://127.0.0.1:{redis.port}/2;")
    assert "configuration reloaded" in rampart.reload().group(0)
    rampart.wait_log(CONNECTED + r"[^\n]*\(db 2\)", since=mark)
    # the old helper's connection goes with it: one connection per node, in the new db
    wait_for(lambda: [c["db"] for c in redis.sync_clients()] == ["2"],
             what="only the new helper's connection")


def test_wrong_password_is_logged_once_retried_and_recovers(rampart, redis_factory, port):
    redis = redis_factory(password="right").start()
    node(rampart, port, f"limit_sync redis://:wrong@127.0.0.1:{redis.port};").start()
    rampart.wait_log(UNAVAILABLE + r"[^\n]*authentication failed: WRONGPASS")
    # it keeps trying (100 ms, 200 ms, 400 ms...), and says so only once
    wait_for(lambda: redis.auth_failures() >= 4, timeout=10, what="three more attempts")
    assert count(rampart, UNAVAILABLE) == 1
    assert get(port).status == 200
    # Redis takes the password rampart has: the next attempt gets in
    redis.command("CONFIG", "SET", "requirepass", "wrong")
    redis.password = "wrong"
    # never connected before: its first connection is the recovery
    rampart.wait_log(CONNECTED, timeout=10)
    assert count(rampart, UNAVAILABLE) == 1
    assert count(rampart, CONNECTED) == 1
    wait_for(redis.sync_clients, what="rampart's connection in CLIENT LIST")


def test_redis_killed_is_logged_once_retried_with_backoff_and_back(rampart, redis_factory,
                                                                    port):
    redis = redis_factory().start()
    node(rampart, port, f"limit_sync redis://127.0.0.1:{redis.port};").start()
    rampart.wait_log(CONNECTED)
    redis.kill()
    rampart.wait_log(UNAVAILABLE + r"[^\n]*it closed the connection")

    # something that accepts and hangs up at once stands on the port: each attempt
    # is one connection, and they come further and further apart
    stamps = []
    with socket.socket() as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", redis.port))
        ls.listen(16)
        ls.settimeout(10)
        while len(stamps) < 5:
            conn, _ = ls.accept()
            stamps.append(time.monotonic())
            conn.close()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert gaps[-1] > gaps[0], gaps  # the backoff grows
    assert gaps[-1] >= 0.3, gaps  # 100 ms doubled at least twice by then
    assert count(rampart, UNAVAILABLE) == 1
    assert get(port).status == 200

    again = redis_factory("redis2", port=redis.port).start()
    rampart.wait_log(RECOVERED, timeout=10)
    wait_for(again.sync_clients, what="rampart's connection in CLIENT LIST")
    assert count(rampart, UNAVAILABLE) == 1
    assert count(rampart, RECOVERED) == 1


def test_redis_that_stops_answering_is_an_outage_until_it_answers(rampart, redis_factory, port):
    redis = redis_factory().start()
    node(rampart, port, f"limit_sync redis://127.0.0.1:{redis.port} timeout=300ms;").start()
    rampart.wait_log(CONNECTED)
    redis.pause()
    # with nothing to send, a PING every second checks the connection
    rampart.wait_log(UNAVAILABLE + r"[^\n]*no answer to a batch within 300 ms", timeout=10)
    t0 = time.monotonic()
    assert get(port).status == 200
    assert time.monotonic() - t0 < 2
    redis.resume()
    rampart.wait_log(RECOVERED, timeout=10)
    assert count(rampart, UNAVAILABLE) == 1


def tls_redis(redis_factory, certs, auth_clients=True):
    return redis_factory(tls=(certs.cert("a.test"), certs.key("a.test"), certs.ca,
                              auth_clients)).start()


def test_tls_with_verification_and_a_client_certificate(rampart, redis_factory, certs, port):
    redis = tls_redis(redis_factory, certs)
    cert, key = certs.client("trusted")
    node(rampart, port, f"limit_sync redis://127.0.0.1:{redis.tls_port}/1 tls;\n"
                        f"limit_sync_ssl_verify on;\n"
                        f"limit_sync_ssl_trusted_certificate {certs.ca};\n"
                        f"limit_sync_ssl_name a.test;\n"
                        f"limit_sync_ssl_certificate {cert};\n"
                        f"limit_sync_ssl_certificate_key {key};").start()
    rampart.wait_log(CONNECTED + rf"127\.0\.0\.1:{redis.tls_port} \(db 1, tls\)")
    clients = wait_for(redis.sync_clients, what="rampart's connection in CLIENT LIST")
    assert clients[0]["laddr"].endswith(f":{redis.tls_port}")
    assert clients[0]["db"] == "1"


def test_tls_certificate_for_another_name_is_an_outage_logged_once(rampart, redis_factory, certs,
                                                                   port):
    redis = tls_redis(redis_factory, certs, auth_clients=False)
    node(rampart, port, f"limit_sync rediss://127.0.0.1:{redis.tls_port};\n"
                        f"limit_sync_ssl_verify on;\n"
                        f"limit_sync_ssl_trusted_certificate {certs.ca};\n"
                        f"limit_sync_ssl_name b.test;").start()
    rampart.wait_log(UNAVAILABLE + r"[^\n]*the certificate does not verify: hostname mismatch")
    wait_for(lambda: redis.tls_refusals() >= 3, timeout=10, what="two more attempts")
    assert count(rampart, UNAVAILABLE) == 1
    assert redis.sync_clients() == []
    assert get(port).status == 200


# -- two nodes sharing a limit_count zone ------------------------------------------------


ZONE = "shared"


def shared_nodes(rampart_factory, redis, backend, limit, url=None, interval="", workers=2,
                 extra=""):
    """Two nodes (separate prefixes and ports, `workers` workers each) sharing one
    limit_count zone keyed by the X-Client header, through redis, in front of backend.
    Each logs every request's status; X-Remaining says what the node believes is left."""
    url = url or f"redis://127.0.0.1:{redis.port}"
    nodes = []
    for name in ("node-a", "node-b"):
        r = rampart_factory(name)
        port = harness.free_port()
        r.configure(f"limit_sync {url} {interval};\n{extra}\n"
                    f"limit_count_zone $http_x_client zone={ZONE}:1m limit={limit} "
                    f"window=1d sync;\n"
                    "log_format st '$status';\n"
                    "access_log logs/status.log st;\n"
                    f"upstream be {{ server {backend.addr}; keepalive 16; }}\n"
                    f"server {{\n listen 127.0.0.1:{port};\n"
                    f" location / {{ limit_count zone={ZONE};\n"
                    f"  add_header X-Remaining $limit_count_remaining always;\n"
                    f"  proxy_pass http://be; }}\n}}", workers=workers)
        nodes.append(r)
    for r in nodes:
        r.start()
    return nodes


def clear_of_midnight():
    """Windows of a day are aligned to the epoch: a run that crosses midnight UTC would
    count in two windows. Waits it out when it is near (at most a minute)."""
    left = 86400 - time.time() % 86400
    if left < 60:
        time.sleep(left + 1)


def h2load(port, n, client, clients=8):
    return subprocess.Popen(
        ["h2load", "--h1", "-n", str(n), "-c", str(clients), "-m", "1", "-T", "20",
         "-H", f"x-client: {client}", f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def h2load_result(proc):
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    assert m, out
    total, done, ok, failed, errored, timeout = map(int, m.groups())
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    lat = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    return {"total": total, "done": done, "failed": failed, "errored": errored,
            "timeout": timeout, "2xx": int(codes.group(1)), "4xx": int(codes.group(3)),
            "other": int(codes.group(2)) + int(codes.group(4)),
            "max_s": seconds(lat.group(2)), "out": out}


def only_the_limits_status(res):
    """Every request was answered, 200 or 429 (h2load counts a 4xx as failed)."""
    return (res["done"] == res["total"] and res["errored"] == res["timeout"] == 0
            and res["other"] == 0 and res["failed"] == res["4xx"]
            and res["2xx"] + res["4xx"] == res["total"])


def seconds(text):
    for unit, f in (("us", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * f
    raise ValueError(text)


def redis_total(redis, client, db=0):
    keys = redis.command_db(db, "KEYS", f"rampart:limit:{ZONE}:*:{client}")
    return sum(int(redis.command_db(db, "GET", k)) for k in keys), keys


def statuses_of(nodes):
    out = []
    for r in nodes:
        path = r.prefix / "logs" / "status.log"
        out += path.read_text().split() if path.exists() else []
    return out


def test_two_nodes_together_accept_the_limit_within_5_percent(rampart_factory, redis_factory,
                                                             backend):
    redis = redis_factory().start()
    limit = 6000
    nodes = shared_nodes(rampart_factory, redis, backend, limit)
    for r in nodes:
        r.wait_log(CONNECTED)
    clear_of_midnight()
    # each node alone would accept `limit`; together, 2 x 6000 offered, 6000 +-5% accepted
    runs = [h2load(r.port, limit, "k1") for r in nodes]
    results = [h2load_result(p) for p in runs]
    for res in results:
        assert only_the_limits_status(res), res["out"]
    accepted = sum(res["2xx"] for res in results)
    assert abs(accepted - limit) <= limit * 0.05, [res["2xx"] for res in results]
    # both nodes took part (neither starved), and Redis holds the sum of what they sent
    assert all(res["2xx"] > limit * 0.2 for res in results), [res["2xx"] for res in results]
    total, keys = wait_for(lambda: (lambda t: t if t[0] == accepted else None)(
        redis_total(redis, "k1")), what=f"redis to hold {accepted}")
    assert len(keys) == 1  # one window


def sequential(port, client, n):
    """n requests one after the other with X-Client: client; their statuses."""
    return [get(port, headers={"x-client": client}).status for _ in range(n)]


def test_sync_zone_without_limit_sync_is_refused_at_the_zone(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, "\nlimit_count_zone $binary_remote_addr zone=api:1m limit=5 window=1m sync;", 4,
        '"limit_count_zone": zone "api" is declared "sync", but no "limit_sync" in the http '
        'block names the Redis server to share it through')


def test_redis_killed_mid_run_requests_neither_fail_nor_wait(rampart_factory, redis_factory,
                                                             backend):
    redis = redis_factory().start()
    limit = 4000
    nodes = shared_nodes(rampart_factory, redis, backend, limit)
    for r in nodes:
        r.wait_log(CONNECTED)
    clear_of_midnight()
    # how long requests take with Redis there
    base = [h2load_result(p) for p in [h2load(r.port, 1000, "warm") for r in nodes]]
    for res in base:
        assert only_the_limits_status(res) and res["4xx"] == 0, res["out"]
    base_max = max(res["max_s"] for res in base)

    runs = [h2load(r.port, 3 * limit, "run") for r in nodes]
    wait_for(lambda: redis_total(redis, "run")[0] > 0, what="the run's first counts in redis")
    assert all(p.poll() is None for p in runs), "the run ended before redis was killed"
    redis.kill()
    results = [h2load_result(p) for p in runs]
    for r in nodes:
        r.wait_log(UNAVAILABLE)

    for res in results:
        assert only_the_limits_status(res), res["out"]
    # nothing on a request's path waits for Redis: the slowest request of the run is of
    # the same order as without an outage (a request that waited for the batch timeout
    # would take a second); the margin is wide for sanitizer builds on shared cores
    run_max = max(res["max_s"] for res in results)
    assert run_max < 3 * base_max + 0.5, (run_max, base_max)
    # what was shared before the outage still counts; after it each node counts alone
    accepted = sum(res["2xx"] for res in results)
    assert limit * 0.95 <= accepted <= 2 * limit, [res["2xx"] for res in results]
    for r in nodes:
        assert count(r, UNAVAILABLE) == 1


def test_without_redis_each_node_counts_alone_then_they_share_again(rampart_factory,
                                                                    redis_factory, backend):
    redis = redis_factory().start()
    limit = 20
    a, b = shared_nodes(rampart_factory, redis, backend, limit)
    for r in (a, b):
        r.wait_log(CONNECTED)
    clear_of_midnight()
    redis.kill()
    for r in (a, b):
        r.wait_log(UNAVAILABLE)
    # fail open: each node allows the whole limit by itself, exactly
    assert sequential(a.port, "alone", limit + 5) == [200] * limit + [429] * 5
    assert sequential(b.port, "alone", limit + 5) == [200] * limit + [429] * 5

    again = redis_factory("redis2", port=redis.port).start()
    for r in (a, b):
        r.wait_log(RECOVERED, timeout=10)
    # node a takes 7; node b, on its first request of the key, hears of them
    assert sequential(a.port, "shared", 7) == [200] * 7
    wait_for(lambda: redis_total(again, "shared")[0] == 7, what="a's 7 in redis")
    assert sequential(b.port, "shared", 1) == [200]
    wait_for(lambda: redis_total(again, "shared")[0] == 8, what="b's first in redis")
    got = sequential(b.port, "shared", limit)
    assert got == [200] * (limit - 8) + [429] * 8
    for r in (a, b):
        assert count(r, UNAVAILABLE) == 1
        assert count(r, RECOVERED) == 1


def test_wrong_password_nodes_fail_open_and_count_alone(rampart_factory, redis_factory,
                                                        backend):
    redis = redis_factory(password="right").start()
    limit = 10
    a, b = shared_nodes(rampart_factory, redis, backend, limit,
                        url=f"redis://:wrong@127.0.0.1:{redis.port}")
    for r in (a, b):
        r.wait_log(UNAVAILABLE + r"[^\n]*authentication failed")
    clear_of_midnight()
    assert sequential(a.port, "k", limit + 3) == [200] * limit + [429] * 3
    assert sequential(b.port, "k", limit + 3) == [200] * limit + [429] * 3
    # both keep trying, and said so once each
    wait_for(lambda: redis.auth_failures() >= 6, timeout=10,
             what="more attempts from both nodes")
    for r in (a, b):
        assert count(r, UNAVAILABLE) == 1
    assert redis.command("DBSIZE") == 0


def test_counts_land_in_the_database_of_the_url(rampart_factory, redis_factory, backend):
    redis = redis_factory().start()
    a, b = shared_nodes(rampart_factory, redis, backend, 100,
                        url=f"redis://127.0.0.1:{redis.port}/5")
    for r in (a, b):
        r.wait_log(CONNECTED + r"[^\n]*\(db 5\)")
    clear_of_midnight()
    assert sequential(a.port, "db", 3) == [200] * 3
    assert sequential(b.port, "db", 2) == [200] * 2
    total, keys = wait_for(lambda: (lambda t: t if t[0] == 5 else None)(
        redis_total(redis, "db", db=5)), what="5 counts in db 5")
    window = int(time.time() * 1000) // 86400000
    assert keys == [f"rampart:limit:{ZONE}:{window}:db".encode()]
    assert redis.command_db(0, "DBSIZE") == 0
    ttl = redis.command_db(5, "PTTL", keys[0])
    assert 0 < ttl <= 2 * 86400000


def test_binary_keys_reach_redis_byte_for_byte(rampart, redis_factory, backend, port):
    redis = redis_factory().start()
    rampart.configure(f"limit_sync redis://127.0.0.1:{redis.port};\n"
                      "limit_count_zone $binary_remote_addr zone=bin:1m limit=50 window=1d sync;\n"
                      f"upstream be {{ server {backend.addr}; }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      " location / { limit_count zone=bin; proxy_pass http://be; }\n}")
    rampart.start()
    rampart.wait_log(CONNECTED)
    clear_of_midnight()
    assert [get(port).status for _ in range(3)] == [200] * 3
    window = int(time.time() * 1000) // 86400000
    key = f"rampart:limit:bin:{window}:".encode() + bytes([127, 0, 0, 1])
    wait_for(lambda: redis.command("GET", key) == b"3", what="3 under the binary key")


# -- two nodes sharing a limit_req zone ---------------------------------------------------


def test_two_nodes_sharing_a_limit_req_zone_pass_its_burst_within_5_percent(rampart_factory,
                                                                            redis_factory,
                                                                            backend):
    redis = redis_factory().start()
    # one request a minute leaks nothing to speak of during the run: a node alone passes
    # burst + 1 requests at once (nodelay), and two nodes sharing the zone as many together
    burst = 5999
    nodes = []
    for name in ("node-a", "node-b"):
        r = rampart_factory(name)
        port = harness.free_port()
        r.configure(f"limit_sync redis://127.0.0.1:{redis.port};\n"
                    "limit_req_zone $http_x_client zone=req:1m rate=1r/m sync;\n"
                    "limit_req_status 429;\n"
                    f"upstream be {{ server {backend.addr}; keepalive 16; }}\n"
                    f"server {{\n listen 127.0.0.1:{port};\n"
                    f" location / {{ limit_req zone=req burst={burst} nodelay;\n"
                    "  proxy_pass http://be; }\n}", workers=2)
        nodes.append(r)
    for r in nodes:
        r.start()
        r.wait_log(CONNECTED)
    runs = [h2load(r.port, burst + 1, "r1") for r in nodes]
    results = [h2load_result(p) for p in runs]
    for res in results:
        assert only_the_limits_status(res), res["out"]
    accepted = sum(res["2xx"] for res in results)
    assert abs(accepted - (burst + 1)) <= (burst + 1) * 0.05, [res["2xx"] for res in results]
    assert all(res["2xx"] > (burst + 1) * 0.2 for res in results), [r["2xx"] for r in results]
    # Redis counts per second: together its counters hold what the nodes passed
    wait_for(lambda: sum(int(redis.command("GET", k))
                         for k in redis.command("KEYS", "rampart:limit:req:*:r1")) == accepted,
             what=f"redis to hold {accepted}")
