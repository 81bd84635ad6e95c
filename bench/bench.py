#!/usr/bin/python3
"""Benchmark rampart, nginx, HAProxy and h2o side by side as reverse proxies.

Every contender runs with one worker (or one thread) and upstream keep-alive
(HTTP/1.1), in front of the same nginx backend on loopback. Five scenarios:
"plain" (keep-alive HTTP/1.1 over TCP), "tls" (a new TLS connection for every
request, the same ECDSA P-256 certificate for all, no session resumption), "h2"
(HTTP/2 over TLS, negotiated by ALPN, a few long-lived connections with several
streams each), "gzip" (plain, with a 24 KB JSON body compressed on the fly at gzip
level 1), "lc" (plain, balanced by least connections over an upstream group of 4
servers) and "idle" (the worker's memory per idle connection: thousands of
connections that each completed one request, over HTTP/1.1, TLS and HTTP/2).
wrk (plain, tls, gzip, lc) or h2load (h2) loads each contender in turn, over several
rounds whose order rotates, so that drift of a shared machine hits all alike. The
report gives, per scenario, the median requests/s and latency (or bytes per idle
connection) of each, and rampart's ratio to each peer. One peer is rampart itself,
"rampart-hc": the same configuration with active health checks and outlier
detection in every upstream block, so its ratio is what they cost (plain, h2 and lc
scenarios); "rampart-lim" and "rampart-sync" add one limit_req and one limit_conn on
every request (the second sharing its limit_req zone through redis), beside
"nginx-lim", nginx with the same limits (plain and h2). See bench/README.md.

Environment:
  BENCH_SCENARIOS    which scenarios, comma-separated: plain, tls, h2, gzip, lc, idle (default all)
  BENCH_ROUNDS       rounds, each loading every contender once per scenario (default 5)
  BENCH_DURATION     seconds of load per contender per round (default 5)
  BENCH_CONNECTIONS  wrk connections, plain, gzip and lc scenarios (default 64)
  BENCH_TLS_CONNECTIONS  wrk connections, tls scenario (default 16)
  BENCH_H2_CONNECTIONS   h2load connections, h2 scenario (default 16)
  BENCH_H2_STREAMS   h2load concurrent streams per connection, h2 scenario (default 10)
  BENCH_IDLE_CONNECTIONS idle connections held open per measurement, idle scenario (default 3000)
  BENCH_IDLE_ROUNDS  rounds of the idle scenario (default 1)
  BENCH_CONTENDERS   only these contenders, comma-separated (default: all)
  BENCH_WARMUP       seconds of unmeasured load per contender before round 1 (default 1)
  BENCH_RESULTS      report file (default bench/results/latest.txt)
  RAMPART_BIN        the rampart binary (default ./rampart beside bench/)
"""
import errno
import gzip
import http.client
import json
import math
import os
import pwd
import random
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

try:  # python3-h2, for the idle scenario's HTTP/2 connections
    import h2.events
    import h2.exceptions
    from h2.config import H2Configuration
    from h2.connection import H2Connection
except ImportError:
    h2 = None

HERE = os.path.dirname(os.path.abspath(__file__))
BODY = "rampart bench backend says hello\n"


def env_int(name, default, minimum=1):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        sys.exit(f"bench: {name}={raw!r} is not a whole number")
    if value < minimum:
        sys.exit(f"bench: {name} must be at least {minimum}")
    return value


ROUNDS = env_int("BENCH_ROUNDS", 5)
DURATION = env_int("BENCH_DURATION", 5)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 64)
TLS_CONNECTIONS = env_int("BENCH_TLS_CONNECTIONS", 16)
H2_CONNECTIONS = env_int("BENCH_H2_CONNECTIONS", 16)
H2_STREAMS = env_int("BENCH_H2_STREAMS", 10)
H2_WARMUP = 1  # seconds h2load runs unmeasured at the start of every h2 round
WARMUP = env_int("BENCH_WARMUP", 1, minimum=0)
RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "results", "latest.txt")
RAMPART = os.environ.get("RAMPART_BIN") or os.path.join(HERE, "..", "rampart")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NOISY = 0.20  # req/s spread across rounds above which the report warns
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
NGHTTP = shutil.which("nghttp") or "/usr/bin/nghttp"
IDLE_CONNECTIONS = env_int("BENCH_IDLE_CONNECTIONS", 3000)
IDLE_ROUNDS = env_int("BENCH_IDLE_ROUNDS", 1)
IDLE_WARMUP = 300       # connections opened, then closed, before the baseline is read
IDLE_WINDOW = 100       # connections being set up at once (connect, handshake, request)
IDLE_TIMEOUT = 300      # seconds every contender keeps an idle connection open
IDLE_KINDS = ("plain", "tls", "h2")  # each kind connects to the listener of that name
IDLE_GOALS = {"plain": 1024, "tls": 4096}  # rampart's goal, bytes of RSS per idle connection
GZIP_PATH = "/bench.json"  # the backend's compressible body
LC_SERVERS = 4  # servers in the lc scenario's upstream group: the backend on as many ports
ALL_SCENARIOS = ("plain", "tls", "h2", "gzip", "lc", "idle")
LOAD_SCENARIOS = ("plain", "tls", "h2", "gzip", "lc")  # the ones wrk or h2load loads
SSL_LISTENERS = ("tls", "h2")  # listeners with TLS; the certificate lines serve both


def scenarios_from_env():
    raw = os.environ.get("BENCH_SCENARIOS", "").strip()
    if raw == "":
        return list(ALL_SCENARIOS)
    names = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in names if s not in ALL_SCENARIOS]
    if bad or not names:
        sys.exit(f"bench: BENCH_SCENARIOS={raw!r}: use a comma-separated list of"
                 f" {', '.join(ALL_SCENARIOS)}")
    return [s for s in ALL_SCENARIOS if s in names]


SCENARIOS = scenarios_from_env()


def extra_listeners():
    """The listeners beside the plain one that the chosen scenarios need, in the order
    they are added to a contender's config (and dropped from it, last first, when it
    does not start with them): the idle scenario needs the tls and h2 ones too."""
    need = set(SCENARIOS)
    if "idle" in need:
        need |= {"tls", "h2"}
    return [name for name in ("tls", "h2", "gzip", "lc") if name in need]


LISTENERS = extra_listeners()
TITLES = {
    "plain": "plain: HTTP/1.1 keep-alive",
    "tls": "tls: new TLS connection per request (one request each, Connection: close)",
    "h2": "h2: HTTP/2 over TLS (ALPN h2), long-lived connections, several streams each",
    "gzip": "gzip: HTTP/1.1 keep-alive, JSON body compressed on the fly (gzip level 1)",
    "lc": f"lc: HTTP/1.1 keep-alive, least-connections balancing over {LC_SERVERS} servers",
    "idle": "idle: worker memory per idle connection (one request each, then idle)",
}


def log(msg=""):
    print(msg, flush=True)


def free_ports(n):
    """n distinct loopback ports that nothing listens on right now."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# Marks of lines that only some contenders keep (Contender's marks): @HC@, the
# health-check and outlier-detection lines of rampart-hc; @LIM@, the limit_req and
# limit_conn lines of rampart-lim, rampart-sync and nginx-lim; @NOSYNC@ and @SYNC@, the
# node-local or Redis-shared form of rampart's limit_req zone.
CONTENDER_MARKS = ("@HC@", "@LIM@", "@NOSYNC@", "@SYNC@")


def render(template, out_path, values, listeners, marks=()):
    """Fill template's @NAME@ placeholders. Lines marked @TLS@ (the tls listener),
    @H2@ (the h2 one), @GZIP@ (the gzip one) or @LC@ (the lc one, and its upstream
    group) are kept, unmarked, when that listener is in listeners and dropped
    otherwise; lines marked @SSL@ (the certificate and TLS settings the tls and h2
    listeners share) are kept when either is; lines marked with one of
    CONTENDER_MARKS are kept when it is in marks."""
    with open(os.path.join(HERE, "conf", template)) as f:
        text = f.read()
    wanted = {"@TLS@": "tls" in listeners, "@H2@": "h2" in listeners,
              "@GZIP@": "gzip" in listeners, "@LC@": "lc" in listeners,
              "@SSL@": bool(set(listeners) & set(SSL_LISTENERS))}
    wanted.update({m: m in marks for m in CONTENDER_MARKS})
    kept = []
    for line in text.splitlines(keepends=True):
        marks = [m for m in wanted if m in line]
        if marks:
            if not all(wanted[m] for m in marks):
                continue
            for m in marks:
                line = line.replace(m, "")
        kept.append(line)
    text = "".join(kept)
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z][A-Z0-9_]*@", text)
    if left:
        raise RuntimeError(f"{template}: no value for {', '.join(sorted(set(left)))}")
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


def version_of(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


class Server:
    """One process group we started; stopped by its own pid at exit."""

    def __init__(self, name, argv, tmp):
        self.name = name
        self.argv = argv
        self.output = os.path.join(tmp, f"{name}.out")
        self.proc = None

    def start(self):
        with open(self.output, "w") as out:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_listening(self, port, timeout=10.0):
        """None once port accepts connections, or why it never did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return f"exited with status {self.proc.returncode}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return None
            except OSError:
                time.sleep(0.05)
        return f"not listening on 127.0.0.1:{port} after {timeout:.0f}s"

    def stop(self):
        """Stop the whole group: TERM, then KILL whatever is left after 5 seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session made our child the group's leader
        try:
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                self.proc.poll()
                os.killpg(pgid, 0)  # raises once no process of the group is left
                time.sleep(0.05)
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def tail(self, extra_logs=(), lines=6):
        """The last lines the server wrote, to explain a failure."""
        text = []
        for path in (self.output, *extra_logs):
            try:
                with open(path, errors="replace") as f:
                    text += [line.rstrip() for line in f
                             if line.strip() and line.rstrip() not in text]
            except OSError:
                pass
        return text[-lines:]


def fetch(port):
    """Status and body of one HTTP/1.1 GET / through port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "bench.test"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def client_context():
    """A client context that accepts the self-signed bench certificate."""
    ctx = ssl._create_unverified_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ResumingHTTPSConnection(http.client.HTTPSConnection):
    """HTTPSConnection that offers a saved TLS session in its handshake."""

    def __init__(self, *args, session=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer = session

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname="bench.test",
                                              session=self.offer)


def fetch_tls(port, ctx, session=None):
    """Status, body, TLS version, cipher, whether the session was resumed, and the
    session to offer next time, of one HTTPS GET / (Connection: close) through port."""
    conn = ResumingHTTPSConnection("127.0.0.1", port, timeout=5, context=ctx, session=session)
    try:
        conn.connect()
        sock = conn.sock  # http.client lets go of it once a closing response arrives
        conn.request("GET", "/", headers={"Host": "bench.test", "Connection": "close"})
        resp = conn.getresponse()
        # TLS 1.3 tickets come before the response, so the session is complete here;
        # read it before the body, whose end closes the socket.
        tls = (sock.version(), sock.cipher()[0], sock.session_reused, sock.session)
        body = resp.read().decode(errors="replace")
        return (resp.status, body, *tls)
    finally:
        conn.close()


def check_tls(port):
    """None and a description of the TLS answer, or why it is wrong.

    A second connection offers the first one's session: a contender that resumes it
    would skip the full handshake the others pay, so that counts as a failure."""
    ctx = client_context()
    status, body, version, cipher, _, session = fetch_tls(port, ctx)
    if status != 200 or body != BODY:
        return f"proxied wrong answer over TLS: {status} {body[:120]!r}", None
    status, body, _, _, reused, _ = fetch_tls(port, ctx, session)
    if status != 200 or body != BODY:
        return f"proxied wrong answer over TLS: {status} {body[:120]!r}", None
    if reused:
        return "resumed a TLS session; resumption must be off for every contender", None
    return None, f"{version} {cipher}, no resumption"


def check_h2(port):
    """None and a description of the HTTP/2 answer, or why it is wrong.

    ALPN must select h2 when the client offers h2 and http/1.1 (as h2load does), and
    one HTTP/2 GET / through port (nghttp, which refuses anything but h2) must return
    the backend's body."""
    ctx = client_context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="bench.test") as sock:
            alpn, version, cipher = sock.selected_alpn_protocol(), sock.version(), sock.cipher()[0]
    if alpn != "h2":
        return (f"!! did not negotiate h2: ALPN selected {alpn or 'nothing'}"
                " when offered h2,http/1.1"), None
    if not os.access(NGHTTP, os.X_OK):
        return None, f"{version} {cipher}, ALPN h2 (body not checked: no nghttp)"
    r = subprocess.run([NGHTTP, f"https://127.0.0.1:{port}/"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=15)
    if r.returncode != 0 or r.stdout != BODY:
        why = (r.stdout + r.stderr).strip().replace("\n", " | ")
        return f"HTTP/2 GET through it failed (nghttp status {r.returncode}): {why[:200]}", None
    return None, f"{version} {cipher}, ALPN h2"


def make_gzip_body():
    """About 24 KB of JSON shaped like an API's list response (the same bytes every
    run): what an edge gateway compresses in practice, about 5:1 at level 1."""
    rng = random.Random(1822)
    words = ("steel", "walnut", "linen", "copper", "garden", "travel", "classic", "compact",
             "outdoor", "kitchen", "studio", "ceramic", "bamboo", "wool", "solar", "urban")
    tags = ("new", "sale", "eco", "bestseller", "limited", "gift", "bundle", "clearance")
    regions = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
    items = []
    for i in range(88):
        items.append({
            "id": 100000 + i * 7,
            "sku": f"SKU-{rng.randrange(10 ** 6):06d}",
            "name": " ".join(rng.choice(words) for _ in range(3)).title(),
            "price": {"amount": round(rng.uniform(1, 500), 2), "currency": "EUR"},
            "in_stock": rng.random() < 0.8,
            "quantity": rng.randrange(0, 1000),
            "tags": rng.sample(tags, 3),
            "warehouse": {"id": rng.randrange(1, 40), "region": rng.choice(regions)},
            "updated_at": f"2024-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                          f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        })
    doc = {"items": items, "page": 1, "per_page": len(items), "total": 4817,
           "next": "/v1/products?page=2"}
    return (json.dumps(doc) + "\n").encode()


GZIP_BODY = make_gzip_body()


def check_gzip(port):
    """None and a description of the compressed answer, or why it is wrong: GET
    GZIP_PATH with Accept-Encoding: gzip must come back with Content-Encoding: gzip
    and a body that decompresses to the backend's bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", GZIP_PATH, headers={"Host": "bench.test",
                                                "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        raw = resp.read()
        encoding = resp.getheader("Content-Encoding", "")
    finally:
        conn.close()
    if resp.status != 200:
        return f"proxied wrong answer: {resp.status} {raw[:120]!r}", None
    if encoding.lower() != "gzip":
        return (f"did not compress: Content-Encoding {encoding or 'absent'},"
                f" {len(raw)} bytes"), None
    try:
        body = gzip.decompress(raw)
    except (OSError, EOFError, gzip.zlib.error) as e:
        return f"sent a gzip body that does not decompress: {e}", None
    if body != GZIP_BODY:
        return (f"gzip body decompresses to {len(body)} bytes, not the backend's"
                f" {len(GZIP_BODY)}"), None
    return None, f"Content-Encoding: gzip, {len(raw)} bytes for {len(GZIP_BODY)}"


def check_lc(port, pgid):
    """None and how the requests spread, or why the answer is wrong: 2 x LC_SERVERS
    GET / one after another through port must each return the backend's answer and,
    between them, reach every server of the group. With none in flight all servers tie,
    and every contender's least-connections balancer takes tied servers in turn, so the
    proxy (process group pgid) then holds a connection to each."""
    for _ in range(2 * LC_SERVERS):
        status, body = fetch(port)
        if status != 200 or body != BODY:
            return f"proxied wrong answer: {status} {body[:120]!r}", None
    counts = upstream_conns(pgid, LC_BACKEND_PORTS)
    spread = "/".join(map(str, counts))
    if not all(counts):
        return (f"did not use every server of its group: {2 * LC_SERVERS} requests left it"
                f" {spread} connections to the {LC_SERVERS} servers"), None
    return None, (f"{2 * LC_SERVERS} requests one after another reached all {LC_SERVERS}"
                  f" servers ({spread} upstream connections)")


def passive_opens():
    """TCP connections accepted so far on this machine (network namespace)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Tcp:")]
        return int(rows[1][rows[0].index("PassiveOpens")])
    except (OSError, IndexError, ValueError):
        return None


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def children_cpu():
    """CPU seconds used so far by this script's children that have been waited for:
    between two calls around one load generator's run, that run's own CPU."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def group_cpu(*pgids):
    """CPU seconds (user + system) used so far by the processes of each group in
    pgids, one figure per group."""
    total = dict.fromkeys(pgids, 0)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in total:          # pgrp
            total[int(fields[2])] += int(fields[11]) + int(fields[12])  # utime, stime
    return [total[g] / os.sysconf("SC_CLK_TCK") for g in pgids]


BACKEND_PGID = None  # the backend's process group, once it runs
LC_BACKEND_PORTS = []  # the backend's ports that are the lc scenario's servers, once picked


def snapshot(pgid):
    """Connections accepted so far, and CPU seconds of the proxy (group pgid) and
    of the backend."""
    proxy, backend = group_cpu(pgid, BACKEND_PGID)
    return passive_opens(), proxy, backend


def wrk_argv(scenario, port, seconds):
    if scenario == "tls":
        return [WRK, "-t1", f"-c{TLS_CONNECTIONS}", f"-d{seconds}s", "--latency",
                "-H", "Connection: close", f"https://127.0.0.1:{port}/"]
    if scenario == "gzip":
        return [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
                "-H", "Accept-Encoding: gzip", f"http://127.0.0.1:{port}{GZIP_PATH}"]
    return [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}/"]


UNITS_BYTES = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}


def run_wrk(scenario, port, seconds, pgid):
    """One wrk run; a dict of rps, p99_ms, requests, errors, conns (TCP connections
    accepted on the machine meanwhile, None if unknown), cpu_s (CPU seconds the
    server's process group pgid used meanwhile)."""
    argv = wrk_argv(scenario, port, seconds)
    client = children_cpu()
    opens, cpu, backend = snapshot(pgid)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    after, cpu_after, backend_after = snapshot(pgid)
    cpu, backend = cpu_after - cpu, backend_after - backend
    client = children_cpu() - client
    out = r.stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    total = re.search(r"^\s+(\d+) requests in", out, re.M)
    if r.returncode != 0 or not rps or not p99 or not total:
        raise RuntimeError(f"wrk failed (status {r.returncode}): "
                           f"{(r.stderr or out).strip()[:300]}")
    errors = {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        for kind, n in zip(("connect", "read", "write", "timeout"), sock.groups()):
            if int(n):
                errors[kind] = int(n)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx and int(non2xx.group(1)):
        errors["non-2xx"] = int(non2xx.group(1))
    # wrk's bytes read per second (headers included) over its requests per second: in
    # the gzip scenario, whether the responses stayed compressed under load.
    transfer = re.search(r"^Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)\s*$", out, re.M)
    per_response = (float(transfer.group(1)) * UNITS_BYTES[transfer.group(2)]
                    / float(rps.group(1)) if transfer and float(rps.group(1)) else None)
    # lc: the proxy's connections to each server of its group, read as soon as wrk is
    # done (the pools keep them): every server carried part of the load.
    per_server = upstream_conns(pgid, LC_BACKEND_PORTS) if scenario == "lc" else None
    return {"rps": float(rps.group(1)), "p99_ms": float(p99.group(1)) * UNITS_MS[p99.group(2)],
            "bytes_per_response": per_response, "per_server": per_server,
            "requests": int(total.group(1)), "errors": errors,
            "conns": after - opens if opens is not None and after is not None else None,
            "cpu_s": cpu, "client_cpu": client / seconds, "backend_cpu": backend / seconds}


def h2load_argv(port, seconds, warm_up, log_file):
    argv = [H2LOAD, f"-c{H2_CONNECTIONS}", f"-m{H2_STREAMS}", "-t1", f"--duration={seconds}"]
    if warm_up:
        argv.append(f"--warm-up-time={warm_up}")
    if log_file:
        argv.append(f"--log-file={log_file}")
    return argv + [f"https://127.0.0.1:{port}/"]


H2_TIME = r"([\d.]+)(us|ms|s)"


def h2load_ms(value, unit):
    return float(value) * UNITS_MS[unit]


def percentile_ms(log_file, fraction):
    """The fraction-quantile (nearest rank) of the request times, in ms, in an h2load
    --log-file (start us, status, duration us per line; status -1: failed stream)."""
    times = []
    try:
        with open(log_file) as f:
            for line in f:
                fields = line.split("\t")
                if len(fields) >= 3 and fields[1] != "-1":
                    times.append(int(fields[2]))
    except (OSError, ValueError):
        return None
    if not times:
        return None
    times.sort()
    return times[max(0, math.ceil(len(times) * fraction) - 1)] / 1000.0


def run_h2load(port, seconds, pgid, tmp, warm_up=H2_WARMUP):
    """One h2load run; a dict like run_wrk's plus mean_ms and valid (no request
    failed). With warm_up, h2load first loads for warm_up seconds unmeasured; the
    proxy's CPU and the accepted connections are read when h2load announces the
    start and the end of its measured period, so they cover the same requests as
    its figures. Raises RuntimeError unless every connection negotiated h2."""
    log_file = os.path.join(tmp, "h2load.requests.tsv") if warm_up else None
    argv = h2load_argv(port, seconds, warm_up, log_file)
    err_path = os.path.join(tmp, "h2load.stderr")
    marks = {}
    out = []
    client = children_cpu()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err, text=True)
    killed = threading.Event()

    def overdue():
        killed.set()
        proc.kill()
    watchdog = threading.Timer(seconds + warm_up + 60, overdue)
    watchdog.start()
    try:
        for line in proc.stdout:  # h2load flushes each line; read them as they come
            if line.startswith("Main benchmark duration is started"):
                marks["start"] = snapshot(pgid)
            elif line.startswith("Main benchmark duration is over"):
                marks["end"] = snapshot(pgid)
            if not line.startswith("progress:"):
                out.append(line)
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    client = children_cpu() - client
    text = "".join(out)
    with open(err_path, errors="replace") as f:
        stderr = f.read().strip()

    def failure(why):
        detail = " | ".join(line.strip() for line in (stderr or text).splitlines()
                            if line.strip())
        return RuntimeError(f"{why}: {detail[-400:]}")

    if killed.is_set():
        raise failure(f"h2load still running {seconds + warm_up + 60}s after it started;"
                      " killed")
    protocol = re.search(r"^Application protocol: (\S+)", text, re.M)
    if not protocol:
        raise failure("h2load negotiated no protocol (no connection succeeded?)")
    if protocol.group(1) != "h2":
        raise failure(f"!! h2load negotiated {protocol.group(1)}, not h2")
    rps = re.search(r"^finished in \S+, ([\d.]+) req/s", text, re.M)
    counts = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded,"
                       r" (\d+) failed, (\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    times = re.search(rf"^time for request:\s+{H2_TIME}\s+{H2_TIME}\s+{H2_TIME}", text, re.M)
    if proc.returncode != 0 or not (rps and counts and codes and times):
        raise failure(f"h2load failed (status {proc.returncode})")
    if warm_up and not ("start" in marks and "end" in marks):
        raise failure("h2load did not announce its measured period")
    total, started, done, succeeded, failed, errored, timeout = map(int, counts.groups())
    c2xx, c3xx, c4xx, c5xx = map(int, codes.groups())
    errors = {}
    for kind, n in (("failed", failed), ("errored", errored), ("timeout", timeout),
                    ("non-2xx", c3xx + c4xx + c5xx), ("unfinished", started - done)):
        if n:
            errors[kind] = n
    if done == 0:
        errors["no requests"] = 1
    if warm_up:
        (opens0, cpu0, backend0), (opens1, cpu1, backend1) = marks["start"], marks["end"]
    else:
        opens0 = opens1 = cpu0 = cpu1 = backend0 = backend1 = None
    p99 = percentile_ms(log_file, 0.99) if log_file else None
    if log_file:
        try:
            os.unlink(log_file)
        except OSError:
            pass
    return {"output": " ".join(argv) + "\n" + text + stderr,
            "rps": float(rps.group(1)), "mean_ms": h2load_ms(*times.groups()[4:6]),
            "p99_ms": p99 if p99 is not None else float("nan"),
            "requests": succeeded, "errors": errors, "valid": not errors,
            "conns": opens1 - opens0 if opens0 is not None and opens1 is not None else None,
            "cpu_s": cpu1 - cpu0 if cpu0 is not None else 0.0,
            "backend_cpu": (backend1 - backend0) / seconds if backend0 is not None else 0.0,
            "client_cpu": client / (seconds + warm_up)}


class IdleError(Exception):
    """Why a measurement of the idle scenario has no figure."""


def parse_http1(buf):
    """Status, headers and body of the HTTP/1.1 response at the start of buf, or None
    while it is incomplete. Raises IdleError for an answer whose end cannot be told."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise IdleError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    rest = bytes(buf[end + 4:])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            eol = rest.find(b"\r\n")
            if eol < 0:
                return None
            size = int(rest[:eol].split(b";")[0], 16)
            if len(rest) < eol + 2 + size + 2:
                return None
            body += rest[eol + 2:eol + 2 + size]
            rest = rest[eol + 2 + size + 2:]
            if size == 0:
                return status, headers, body
    if "content-length" not in headers:
        raise IdleError("response without Content-Length or chunked encoding")
    length = int(headers["content-length"])
    return (status, headers, rest[:length]) if len(rest) >= length else None


class IdleConn:
    """One client connection of the idle scenario: connect, TLS handshake (kinds tls
    and h2), one GET / (HTTP/1.1, or a stream of HTTP/2 with the h2 package), check that
    the answer is a 200 with the backend's body, then nothing. Non-blocking: step()
    advances it as far as it can and returns the selector events it waits for, or 0
    once it is idle; it raises IdleError (or OSError, ssl.SSLError) when it fails."""

    def __init__(self, kind, port, ctx):
        self.kind = kind
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.state = "connect"
        self.out = b""
        self.inp = bytearray()
        self.h2 = None
        self.status = None
        self.body = b""
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            self.sock.close()
            raise IdleError(f"connect: {os.strerror(err)}")

    def step(self):
        if self.state == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise IdleError(f"connect: {os.strerror(err)}")
            if self.kind == "plain":
                self.out = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
                self.state = "exchange"
            else:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="bench.test",
                                                 do_handshake_on_connect=False)
                self.state = "handshake"
        if self.state == "handshake":
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            alpn = self.sock.selected_alpn_protocol()
            if self.kind == "h2":
                if alpn != "h2":
                    raise IdleError(f"ALPN selected {alpn or 'nothing'}, not h2")
                self.h2 = H2Connection(H2Configuration(client_side=True,
                                                       header_encoding="utf-8"))
                self.h2.initiate_connection()
                self.h2.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                                         (":authority", "bench.test"), (":path", "/")],
                                     end_stream=True)
                self.out = self.h2.data_to_send()
            else:
                self.out = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
            self.state = "exchange"
        # exchange: write what is pending, read until the response is complete; then
        # flush what is left (h2: acknowledgements), and the connection is idle.
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantWriteError):
                return selectors.EVENT_WRITE
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            self.out = self.out[n:]
        while self.state == "exchange":
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            if not data:
                raise IdleError("closed by the server before the response ended")
            if self.h2:
                self.receive_h2(data)
            else:
                self.inp += data
                done = parse_http1(self.inp)
                if done:
                    self.status, headers, self.body = done
                    if "close" in headers.get("connection", "").lower():
                        raise IdleError("answered with Connection: close")
                    self.state = "done"
            if self.state == "done":
                if self.status != 200 or self.body != BODY.encode():
                    raise IdleError(f"wrong answer: {self.status} {self.body[:80]!r}")
                return self.step() if self.out else 0
        return 0

    def receive_h2(self, data):
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.status = int(dict(event.headers).get(":status", 0))
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.state = "done"
            elif isinstance(event, h2.events.StreamReset):
                raise IdleError(f"stream reset, error code {event.error_code}")
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise IdleError(f"GOAWAY, error code {event.error_code}")
        self.out += self.h2.data_to_send()

    def close(self):
        self.sock.close()


def idle_context(kind):
    """The client TLS context of kind: ALPN http/1.1 for tls, h2 for h2."""
    ctx = client_context()
    ctx.set_alpn_protocols(["h2"] if kind == "h2" else ["http/1.1"])
    return ctx


def open_idle(kind, port, n, timeout):
    """n connections of kind to port, each idle after one verified request. At most
    IDLE_WINDOW are being set up at once, so thousands of TLS handshakes neither
    overflow a listen backlog nor wait on each other. Raises IdleError (after
    closing them all) when one fails or the lot takes longer than timeout."""
    ctx = None if kind == "plain" else idle_context(kind)
    sel = selectors.DefaultSelector()
    busy, idle = {}, []
    started = 0
    deadline = time.monotonic() + timeout
    try:
        while len(idle) < n:
            while started < n and len(busy) < IDLE_WINDOW:
                conn = IdleConn(kind, port, ctx)
                started += 1
                busy[conn.fd] = conn
                sel.register(conn.fd, selectors.EVENT_WRITE, conn)
            if time.monotonic() > deadline:
                raise IdleError(f"{n - len(idle)} of {n} connections not through their request"
                                f" after {timeout:.0f}s")
            for key, _ in sel.select(timeout=1.0):
                conn = key.data
                try:
                    wants = conn.step()
                except (IdleError, OSError, h2.exceptions.ProtocolError) as e:
                    raise IdleError(f"a {kind} connection failed ({len(idle)} of {n} were"
                                    f" idle): {e}")
                if wants:
                    sel.modify(conn.fd, wants, conn)
                else:
                    sel.unregister(conn.fd)
                    del busy[conn.fd]
                    idle.append(conn)
        return idle
    except BaseException:
        close_all(idle + list(busy.values()))
        raise
    finally:
        sel.close()


def close_all(conns):
    for conn in conns:
        conn.close()


def closed_by_peer(conns):
    """How many of conns the server has closed (or reset) since they went idle."""
    poller = select.poll()
    for conn in conns:
        poller.register(conn.fd, select.POLLRDHUP)
    return sum(1 for _, ev in poller.poll(0)
               if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR))


def group_sockets(pgid):
    """pid -> the inodes of the sockets it holds, for every process of group pgid."""
    held = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except (OSError, ValueError):
            continue
        held[int(pid)] = {link[8:-1] for link in links if link.startswith("socket:[")}
    return held


def socket_holder(pgid, port, conn):
    """The pid of the process in group pgid that holds the server end of conn's
    connection to port (found through its socket's inode in /proc/net/tcp), or None:
    the worker, whatever the contender's process layout (master, helper, threads)."""
    mine = conn.sock.getsockname()[1]
    server_end = (f"0100007F:{port:04X}", f"0100007F:{mine:04X}")
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if (fields[1], fields[2]) == server_end:
                inode = fields[9]
                break
    if inode is None:
        return None
    return next((pid for pid, inodes in group_sockets(pgid).items() if inode in inodes), None)


def upstream_conns(pgid, ports):
    """How many established connections the processes of group pgid hold to each of
    ports on loopback, in the order of ports: in the lc scenario, the proxy's
    connections to each server of its upstream group (other contenders' pools to the
    same ports are told apart by their sockets' inodes)."""
    mine = set().union(*group_sockets(pgid).values())
    index = {f"0100007F:{port:04X}": i for i, port in enumerate(ports)}
    counts = [0] * len(ports)
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            # remote address, state 01 (ESTABLISHED), inode
            if fields[2] in index and fields[3] == "01" and fields[9] in mine:
                counts[index[fields[2]]] += 1
    return counts


def memory(pid):
    """pid's Rss, Pss and Private_Dirty in bytes (/proc/PID/smaps_rollup), and its
    number of open files."""
    figures = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Private_Dirty"):
                figures[name.lower()] = int(rest.split()[0]) * 1024
    figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return figures


def settled_memory(pid, timeout=5.0):
    """memory(pid) once it has stopped changing (two reads 0.2 s apart agree, the
    open files included, so the server has handled every close), or the last read."""
    last = memory(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = memory(pid)
        if now == last:
            return now
        last = now
    return last


def measure_idle(c, kind):
    """Memory per idle connection of kind in c, just (re)started. IDLE_WARMUP
    connections are opened and closed (one-time allocations: pools, the first TLS
    handshake), then as many again are opened and kept (they take the memory the
    closed ones freed, which would otherwise make the first IDLE_WARMUP measured
    connections look free); the worker's memory is read, IDLE_CONNECTIONS more are
    opened and left idle after their request, and the memory is read again. A dict of
    the growth per connection (rss, pss, private_dirty, in bytes), the worker's pid
    and seconds taken; raises IdleError."""
    port = c.ports[kind]
    pgid = c.server.proc.pid
    # Generous: a few hundred handshakes a second on a busy two-core machine.
    timeout = 60 + IDLE_CONNECTIONS / 50
    warm = open_idle(kind, port, IDLE_WARMUP, timeout)
    pid = socket_holder(pgid, port, warm[0])
    close_all(warm)
    if pid is None:
        raise IdleError(f"no process of its group holds the connections to port {port}")
    conns = []
    try:
        settled_memory(pid)  # the server has handled the closes
        conns = open_idle(kind, port, IDLE_WARMUP, timeout)
        before = settled_memory(pid)
        started = time.monotonic()
        conns += open_idle(kind, port, IDLE_CONNECTIONS, timeout)
        took = time.monotonic() - started
        after = settled_memory(pid)
        closed = closed_by_peer(conns)
        if closed:
            raise IdleError(f"the server closed {closed} of {len(conns)} idle connections")
        if socket_holder(pgid, port, conns[-1]) != pid:
            raise IdleError(f"the connections are not all held by worker {pid}")
    except OSError as e:  # the worker's /proc entries vanished: it exited
        raise IdleError(f"worker {pid} gone: {e}")
    finally:
        close_all(conns)
    run = {"kind": kind, "pid": pid, "seconds": took,
           "fds": after["fds"] - before["fds"]}
    for key in ("rss", "pss", "private_dirty"):
        run[key] = (after[key] - before[key]) / IDLE_CONNECTIONS
    return run


class Track:
    """One contender in one scenario: whether it runs, and its rounds.

    A round of the h2 scenario in which any request failed is invalid: it is shown
    and its errors counted, but it is left out of the medians and per-request
    figures. (wrk rounds are always valid; their errors flag the contender.)"""

    def __init__(self):
        self.status = "ok"        # or "skipped: ...", "failed to start: ...", ...
        self.runs = []
        self.detail = ""          # e.g. the negotiated TLS version and cipher

    def valid(self):
        return [r for r in self.runs if r.get("valid", True)]

    def invalid(self):
        return len(self.runs) - len(self.valid())

    def median(self, key):
        """Median of key over the valid rounds that have it, or None."""
        values = [r[key] for r in self.valid()
                  if r.get(key) is not None and not math.isnan(r[key])]
        return statistics.median(values) if values else None

    def rps(self):
        return self.median("rps")

    def p99(self):
        return self.median("p99_ms")

    def mean(self):
        return self.median("mean_ms")

    def spread(self):
        """(max - min) / median of requests/s over the valid rounds: how noisy they were."""
        rates = [r["rps"] for r in self.valid()]
        return (max(rates) - min(rates)) / self.rps() if rates and self.rps() else 0.0

    def errors(self):
        total = {}
        for run in self.runs:
            for kind, n in run["errors"].items():
                total[kind] = total.get(kind, 0) + n
        return total

    def cpu_per_request(self):
        """The server's CPU microseconds per request the client completed, valid rounds."""
        runs = self.valid()
        requests = sum(r["requests"] for r in runs)
        return sum(r["cpu_s"] for r in runs) * 1e6 / requests if requests else None

    def conns_per_request(self):
        """Connections accepted on the machine per request the client completed."""
        runs = self.valid()
        if not runs or any(r["conns"] is None for r in runs):
            return None
        requests = sum(r["requests"] for r in runs)
        return sum(r["conns"] for r in runs) / requests if requests else None


class Contender:
    def __init__(self, name, binary, version_argv, config, argv, error_log=None,
                 unsupported=None, marks=(), rendered=None, only=None, refused=None):
        self.name = name
        self.binary = binary
        self.version_argv = version_argv
        self.config = config      # template in bench/conf/, rendered into the temp dir
        self.argv = argv          # command line; {conf} is the rendered file
        self.error_log = error_log
        self.unsupported = unsupported or {}  # listener -> why it has none
        self.marks = marks        # CONTENDER_MARKS whose lines it keeps
        self.rendered = rendered or config  # the rendered file's name in the temp dir
        # (scenarios, why): it runs in these scenarios only, the others say why
        self.only = only
        # (test argv, regex, why): when the test of the rendered config fails with output
        # matching regex, the binary lacks what the contender is about: skipped, with why
        self.refused = refused
        self.version = ""
        self.ports = {}           # listener (plain, tls, h2, gzip) -> port
        self.listeners = []       # the extra listeners it runs with
        self.down = {}            # listener -> why it does not serve
        self.detail = {}          # listener -> what its check found (TLS version, ...)
        self.server = None
        self.tracks = {s: Track() for s in SCENARIOS}

    def set_status(self, status):
        """Mark every scenario that still runs (a failed one keeps its reason)."""
        for track in self.tracks.values():
            if track.status == "ok":
                track.status = status

    def apply_listeners(self):
        """Mark each scenario whose listener does not serve with the reason; the idle
        scenario runs while any of its kinds' listeners serves."""
        for s, track in self.tracks.items():
            if s == "idle":
                if all(k in self.down for k in IDLE_KINDS):
                    track.status = self.down["plain"]
            elif s in self.down:
                track.status = self.down[s]
            else:
                track.detail = self.detail.get(s, "")


def as_current_user():
    """nginx arguments and an h2o line that keep a root-started server running as root.

    Started by root, nginx and h2o would switch their workers to "nobody"; any
    other user they run as already. HAProxy and rampart never switch on their own.
    """
    if os.geteuid() != 0:
        return [], ""
    name = pwd.getpwuid(os.geteuid()).pw_name
    return ["-g", f"user {name};"], f"user: {name}"


NGINX_USER, H2O_USER = as_current_user()


def contenders(tmp):
    """The proxies under test, rampart first; each listed with how to start it.
    BENCH_CONTENDERS (comma-separated names) keeps only some of them."""
    wanted = [n for n in os.environ.get("BENCH_CONTENDERS", "").split(",") if n]
    return [c for c in all_contenders(tmp) if not wanted or c.name in wanted]


# rampart-hc: rampart.conf with the lines marked @HC@, active health checks and outlier
# detection in every upstream block; compared with rampart in these scenarios only (the
# others proxy the same way: what they measure is not the upstream's).
HC_SCENARIOS = ("plain", "h2", "lc")
HC_DIRECTIVES = ("health_check", "outlier_detection")

# rampart-lim and nginx-lim: the same configuration with one limit_req and one limit_conn
# on every request, keyed by the client's address (all of wrk's and h2load's connections
# share one key: the one record every request updates is the worst case for the zone's
# lock). The rate and counts are far above what the load reaches, so nothing is refused
# or delayed: what is measured is the decision's cost. rampart-sync: rampart-lim with its
# limit_req zone shared through a local redis-server (`sync`, `limit_sync`).
LIM_SCENARIOS = ("plain", "h2")
LIM_DIRECTIVES = ("limit_req_zone", "limit_conn_zone", "limit_sync")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def all_contenders(tmp):
    nginx_log = os.path.join(tmp, "nginx.error.log")
    hc_only = (HC_SCENARIOS, "skipped: rampart-hc is compared with rampart in"
               f" {', '.join(HC_SCENARIOS)} only")
    nginx_lim_log = os.path.join(tmp, "nginx-lim.error.log")
    lim_only = (LIM_SCENARIOS, "skipped: the limit contenders run in"
                f" {', '.join(LIM_SCENARIOS)} only")
    lim_refused = ([RAMPART, "-t", "-p", tmp, "-c", "{conf}"],
                   r'unknown directive "(%s)"' % "|".join(LIM_DIRECTIVES),
                   "skipped: this rampart has no limit_req, limit_conn or limit_sync"
                   " (rampart -t: {detail})")
    return [
        Contender("rampart", RAMPART, [RAMPART, "-v"], "rampart.conf",
                  [RAMPART, "-p", tmp, "-c", "{conf}"],
                  error_log=os.path.join(tmp, "rampart.error.log")),
        Contender("rampart-hc", RAMPART, [RAMPART, "-v"], "rampart.conf",
                  [RAMPART, "-p", tmp, "-c", "{conf}"],
                  error_log=os.path.join(tmp, "rampart-hc.error.log"),
                  marks=("@HC@",), rendered="rampart-hc.conf", only=hc_only,
                  unsupported={s: hc_only[1] for s in ("tls", "gzip")},
                  refused=([RAMPART, "-t", "-p", tmp, "-c", "{conf}"],
                           r'unknown directive "(%s)"' % "|".join(HC_DIRECTIVES),
                           "skipped: this rampart has no health_check or outlier_detection"
                           " (rampart -t: {detail})")),
        Contender("rampart-lim", RAMPART, [RAMPART, "-v"], "rampart.conf",
                  [RAMPART, "-p", tmp, "-c", "{conf}"],
                  error_log=os.path.join(tmp, "rampart-lim.error.log"),
                  marks=("@LIM@", "@NOSYNC@"), rendered="rampart-lim.conf", only=lim_only,
                  unsupported={s: lim_only[1] for s in ("tls", "gzip", "lc")},
                  refused=lim_refused),
        Contender("rampart-sync", RAMPART, [RAMPART, "-v"], "rampart.conf",
                  [RAMPART, "-p", tmp, "-c", "{conf}"],
                  error_log=os.path.join(tmp, "rampart-sync.error.log"),
                  marks=("@LIM@", "@SYNC@"), rendered="rampart-sync.conf", only=lim_only,
                  unsupported={s: lim_only[1] for s in ("tls", "gzip", "lc")},
                  refused=lim_refused),
        Contender("nginx", "/usr/sbin/nginx", ["/usr/sbin/nginx", "-v"],
                  "nginx.conf",
                  ["/usr/sbin/nginx", "-p", tmp, "-e", nginx_log, "-c", "{conf}", *NGINX_USER],
                  error_log=nginx_log),
        Contender("nginx-lim", "/usr/sbin/nginx", ["/usr/sbin/nginx", "-v"],
                  "nginx.conf",
                  ["/usr/sbin/nginx", "-p", tmp, "-e", nginx_lim_log, "-c", "{conf}",
                   *NGINX_USER],
                  error_log=nginx_lim_log, marks=("@LIM@",), rendered="nginx-lim.conf",
                  only=lim_only, unsupported={s: lim_only[1] for s in ("tls", "gzip", "lc")}),
        Contender("haproxy", "/usr/sbin/haproxy", ["/usr/sbin/haproxy", "-v"],
                  "haproxy.cfg",
                  ["/usr/sbin/haproxy", "-db", "-f", "{conf}"],
                  unsupported={"gzip": "skipped: this HAProxy compresses with libslz"
                               " (USE_SLZ), not zlib, so it has no zlib level 1 to match"}),
        Contender("h2o", "/usr/bin/h2o", ["/usr/bin/h2o", "-v"], "h2o.conf",
                  ["/usr/bin/h2o", "-c", "{conf}"],
                  error_log=os.path.join(tmp, "h2o.error.log"),
                  unsupported={"lc": "skipped: h2o 2.2 has no least-connections balancer"
                               " (proxy.reverse.url takes one URL; a list is refused:"
                               " \"argument cannot be a sequence\")"}),
    ]


def lc_backend_ports():
    """LC_BACKEND_PORT_1.. placeholders: the backend's ports for the lc scenario."""
    return {f"LC_BACKEND_PORT_{i + 1}": p for i, p in enumerate(LC_BACKEND_PORTS)}


def start_backend(tmp, port):
    """The backend nginx on port, and on the LC_BACKEND_PORTS (the lc scenario's
    servers) when they are picked."""
    os.makedirs(os.path.join(tmp, "backend-tmp"), exist_ok=True)
    os.makedirs(os.path.join(tmp, "www"), exist_ok=True)
    with open(os.path.join(tmp, "www", GZIP_PATH.lstrip("/")), "wb") as f:
        f.write(GZIP_BODY)
    conf = render("backend.conf", os.path.join(tmp, "backend.conf"),
                  {"TMP": tmp, "BACKEND_PORT": port, "BODY": BODY.replace("\n", "\\n"),
                   "GZIP_PATH": GZIP_PATH, **lc_backend_ports()},
                  listeners=("lc",) if LC_BACKEND_PORTS else ())
    error_log = os.path.join(tmp, "backend.error.log")
    server = Server("backend", ["/usr/sbin/nginx", "-p", tmp, "-e", error_log, "-c", conf,
                                *NGINX_USER], tmp)
    server.start()
    for p in [port] + LC_BACKEND_PORTS:
        why = server.wait_listening(p)
        if why is None:
            try:
                status, body = fetch(p)
                if status != 200 or body != BODY:
                    why = f"answered {status} {body[:80]!r}"
            except (OSError, http.client.HTTPException) as e:
                why = f"failed a request: {e}"
        if why:
            detail = "\n  ".join(server.tail([error_log]))
            raise RuntimeError(f"backend nginx on 127.0.0.1:{p} {why}\n  {detail}")
    return server


REDIS_PORT = 0  # the redis-server of rampart-sync, once picked


def start_redis(tmp, cs):
    """The redis-server rampart-sync shares its limit through, on REDIS_PORT (no
    persistence: it holds counters). Without one, rampart-sync is skipped, saying why."""
    sync = next(c for c in cs if c.name == "rampart-sync")
    if not os.access(REDIS, os.X_OK):
        sync.set_status(f"skipped: {REDIS} not found (install the Debian package redis-server)")
        return None
    server = Server("redis", [REDIS, "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], tmp)
    server.start()
    why = server.wait_listening(REDIS_PORT)
    if why:
        sync.set_status(f"skipped: redis-server on 127.0.0.1:{REDIS_PORT} {why}")
    return server


def make_certificate(tmp):
    """The one ECDSA P-256 certificate every contender serves: cert, key, cert+key."""
    cert, key, pem = (os.path.join(tmp, n) for n in ("cert.pem", "key.pem", "cert+key.pem"))
    argv = [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=bench.test"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"openssl failed: {e} (BENCH_SCENARIOS=plain runs without it)")
    if r.returncode != 0:
        raise RuntimeError(f"openssl failed (status {r.returncode}): {r.stderr.strip()[:300]}")
    with open(pem, "w") as out:
        for path in (cert, key):   # HAProxy wants both in one file
            with open(path) as f:
                out.write(f.read())
    return {"CERT": cert, "KEY": key, "PEM": pem}


# Connections a contender must hold at once: the idle scenario's, plus its warm-up
# (closing), its connections being set up and their upstream ones.
MAX_CONNECTIONS = max(4096, IDLE_CONNECTIONS + 1024) if "idle" in SCENARIOS else 4096


def launch(c, tmp, backend_port, tls_files, listeners):
    """Render c's config (with the extra listeners in listeners: tls, h2, gzip, lc) and
    start it; None once its plain port listens, or why it does not."""
    values = {"TMP": tmp, "SELF": os.path.splitext(c.rendered)[0],
              "PORT": c.ports["plain"], "BACKEND_PORT": backend_port,
              "H2O_USER": H2O_USER, "MAX_CONNECTIONS": MAX_CONNECTIONS,
              "NOFILE": 2 * MAX_CONNECTIONS + 64, "IDLE_TIMEOUT": IDLE_TIMEOUT,
              "GZIP_PATH": GZIP_PATH, "REDIS_PORT": REDIS_PORT, **lc_backend_ports()}
    if set(listeners) & set(SSL_LISTENERS):
        values.update(tls_files)
    for name in listeners:
        values[f"{name.upper()}_PORT"] = c.ports[name]
    conf = render(c.config, os.path.join(tmp, c.rendered), values, listeners, c.marks)
    if c.refused:
        argv, pattern, why = c.refused
        r = subprocess.run([a.replace("{conf}", conf) for a in argv], capture_output=True,
                           text=True, timeout=30)
        found = re.search(pattern, r.stdout + r.stderr)
        if r.returncode != 0 and found:
            raise Refused(why.replace("{detail}", found.group(0)))
    c.server = Server(c.name, [a.replace("{conf}", conf) for a in c.argv], tmp)
    c.server.start()
    return c.server.wait_listening(c.ports["plain"])


class Refused(Exception):
    """The binary refuses what the contender is there to measure: it is skipped."""


def failed_start(c, why):
    logs = [c.error_log] if c.error_log else []
    detail = " | ".join(c.server.tail(logs, lines=4))
    return f"failed to start: {why}" + (f": {detail}" if detail else "")


def check_listener(c, name):
    """None and what was found, if one request through c's listener name (plain, tls,
    h2, gzip; lc: several) returns the backend's answer; else why not and None."""
    port = c.ports[name]
    why, detail = c.server.wait_listening(port), None
    if why is None:
        try:
            if name == "plain":
                status, body = fetch(port)
                if status != 200 or body != BODY:
                    why = f"proxied wrong answer: {status} {body[:120]!r}"
            elif name == "lc":
                why, detail = check_lc(port, c.server.proc.pid)
            else:
                check = {"tls": check_tls, "h2": check_h2, "gzip": check_gzip}[name]
                why, detail = check(port)
        except (OSError, http.client.HTTPException, subprocess.TimeoutExpired) as e:
            why = f"{'' if name == 'plain' else name + ' '}request through it failed: {e}"
    if why is None and not c.server.alive():
        why = f"exited with status {c.server.proc.returncode}"
    return why, detail


def start_contender(c, tmp, backend_port, tls_files):
    """Start c and check that one request through each of its listeners returns the
    backend's answer; a listener that fails is marked, and with it the scenarios that
    use it, while the others still run."""
    if not (os.path.isfile(c.binary) and os.access(c.binary, os.X_OK)):
        c.set_status(f"skipped: {c.binary} not found")
        return
    c.version = version_of(c.version_argv)
    if c.only:
        scenarios, why = c.only
        for s, track in c.tracks.items():
            if s not in scenarios:
                track.status = why
    os.makedirs(os.path.join(tmp, f"{c.name}-tmp"), exist_ok=True)
    listeners = [name for name in LISTENERS if name not in c.unsupported]
    c.down.update({name: why for name, why in c.unsupported.items() if name in LISTENERS})
    try:
        why = launch(c, tmp, backend_port, tls_files, listeners)
    except Refused as e:
        c.set_status(str(e))
        return
    # Perhaps only the settings of an extra listener keep it from starting (a TLS
    # setting, a directive it lacks): drop them, the last added first (lc, gzip, h2, tls).
    while why and listeners:
        dropped = listeners.pop()
        c.down[dropped] = failed_start(c, why + f" (with its {dropped} listener)")
        c.server.stop()
        why = launch(c, tmp, backend_port, tls_files, listeners)
    c.listeners = listeners
    for name in ["plain"] + listeners:
        failed, detail = (why, None) if why else check_listener(c, name)
        if failed:
            c.down[name] = failed_start(c, failed)
        else:
            c.detail[name] = detail
    c.apply_listeners()


def fmt_ratio(x):
    return f"{x:.2f}x"


def ratio(mine, theirs):
    return fmt_ratio(mine / theirs) if mine and theirs else "?"


def fmt_ms(x):
    return "?" if x is None else f"{x:.2f}ms"


def load_line(scenario):
    if scenario == "tls":
        return (f"load: wrk -t1 -c{TLS_CONNECTIONS} -d{DURATION}s --latency"
                f" -H 'Connection: close' https://...: one request per new TLS connection,"
                f" so req/s = full TLS handshakes/s; ECDSA P-256 certificate, each server's"
                f" default TLS settings, no session resumption")
    if scenario == "h2":
        return (f"load: h2load -c{H2_CONNECTIONS} -m{H2_STREAMS} -t1 --warm-up-time={H2_WARMUP}"
                f" --duration={DURATION} https://...: HTTP/2 by ALPN, {H2_CONNECTIONS}"
                f" connections kept open, {H2_STREAMS} streams in flight on each; the tls"
                f" scenario's certificate and TLS settings")
    if scenario == "gzip":
        return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency -H 'Accept-Encoding:"
                f" gzip' http://...{GZIP_PATH}: HTTP/1.1 keep-alive, {len(GZIP_BODY)} bytes of"
                f" JSON from the backend, compressed by the proxy at gzip level 1")
    if scenario == "lc":
        return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency http://...:"
                f" HTTP/1.1 keep-alive, as plain; the proxy balances by least connections"
                f" over an upstream group of {LC_SERVERS} servers (the backend on"
                f" {LC_SERVERS} ports)")
    return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency http://...:"
            f" HTTP/1.1 keep-alive")


IDLE_TITLES = {
    "plain": "plain: HTTP/1.1 keep-alive over TCP",
    "tls": "tls: HTTP/1.1 over TLS 1.3 (ALPN http/1.1), the tls scenario's listener",
    "h2": "h2: HTTP/2 over TLS 1.3 (ALPN h2), the h2 scenario's listener",
}


def fmt_bytes(x):
    return "?" if x is None else f"{x:.0f}"


def idle_median(runs, kind, key):
    values = [r[key] for r in runs if r["kind"] == kind and "error" not in r]
    return statistics.median(values) if values else None


def idle_section(cs):
    """The idle scenario's tables: per kind, each contender's memory per idle
    connection, rampart's ratio to each and rampart's goal."""
    lines = []
    add = lines.append
    add(f"== {TITLES['idle']}")
    add(f"method: per contender and kind, a fresh start; {IDLE_WARMUP} connections opened,"
        f" one request")
    add(f"each, and closed (warm-up); {IDLE_WARMUP} more opened and kept (they reuse what the"
        f" closed ones")
    add(f"freed); the worker's memory read; {IDLE_CONNECTIONS} more opened ({IDLE_WINDOW} at a"
        f" time), each through")
    add("one GET / (a 200 with the backend's body, checked), then all held open and idle; the")
    add(f"memory read again. Figures: (after - before) / {IDLE_CONNECTIONS}, in bytes, from the"
        f" worker's")
    add(f"/proc/PID/smaps_rollup; keep-alive timeout {IDLE_TIMEOUT}s for all; {IDLE_ROUNDS}"
        f" round(s), medians.")
    for kind in IDLE_KINDS:
        add("")
        add(f"-- {IDLE_TITLES[kind]}")
        head = (f"{'contender':10} {'RSS B/conn':>11} {'Private_Dirty':>14} {'Pss B/conn':>11}"
                f"  {'rounds':<20}")
        add(head.rstrip())
        add("-" * len(head))
        figures = {}
        for c in cs:
            t = c.tracks["idle"]
            runs = [r for r in t.runs if r["kind"] == kind]
            failed = [r for r in runs if "error" in r]
            if t.status != "ok" or kind in c.down:
                add(f"{c.name:10} {c.down.get(kind) or t.status}")
                continue
            if not runs:
                add(f"{c.name:10} no rounds ran")
                continue
            if len(failed) == len(runs):
                add(f"{c.name:10} !! failed: {failed[-1]['error']}")
                continue
            rss, pd, pss = (idle_median(runs, kind, k) for k in ("rss", "private_dirty", "pss"))
            figures[c.name] = (rss, pd)
            note = f"{len(runs) - len(failed)}/{len(runs)} ok"
            if failed:
                note += f"; !! failed: {failed[-1]['error']}"
            add(f"{c.name:10} {fmt_bytes(rss):>11} {fmt_bytes(pd):>14} {fmt_bytes(pss):>11}"
                f"  {note}")
        add("")
        ramp = figures.get("rampart")
        peers = [(name, f) for name, f in figures.items() if name != "rampart"]
        if ramp is None:
            add("rampart ratios: n/a (rampart has no figure)")
        elif not peers:
            add("rampart ratios: n/a (no peer has a figure)")
        else:
            add(f"{'rampart vs':14} {'RSS ratio':>10} {'Private_Dirty ratio':>20}")
            for name, (rss, pd) in peers:
                add(f"  {name:12} {ratio(ramp[0], rss if rss and rss > 0 else None):>10}"
                    f" {ratio(ramp[1], pd if pd and pd > 0 else None):>20}")
        goal = IDLE_GOALS.get(kind)
        if ramp is None:
            pass
        elif goal is None:
            add("goal: none set for HTTP/2 idle connections (the issue's: 1024 B plain,"
                " 4096 B TLS).")
        else:
            met = "met" if ramp[0] <= goal else "NOT MET"
            add(f"goal: rampart at most {goal} B of RSS per idle connection: {met}"
                f" ({fmt_bytes(ramp[0])} B; Private_Dirty {fmt_bytes(ramp[1])} B).")
    add("")
    add("ratio = rampart/peer, below 1 means rampart holds an idle connection in less memory.")
    add("per round (RSS / Private_Dirty / Pss in bytes per connection, seconds to open them all):")
    for c in cs:
        for kind in IDLE_KINDS:
            runs = [r for r in c.tracks["idle"].runs if r["kind"] == kind]
            if runs:
                shown = ["failed" if "error" in r else
                         f"{r['rss']:.0f}/{r['private_dirty']:.0f}/{r['pss']:.0f}"
                         f"/{r['seconds']:.1f}s" for r in runs]
                add(f"  {c.name:8} {kind:5} {'  '.join(shown)}")
    return lines


def section(cs, scenario):
    """The table, ratios and rounds of one scenario."""
    lines = []
    add = lines.append
    h2 = scenario == "h2"
    client = "h2load" if h2 else "wrk"
    tracks = [(c, c.tracks[scenario]) for c in cs]
    ok = [(c, t) for c, t in tracks if t.status == "ok" and t.valid()]
    add(f"== {TITLES[scenario]}")
    add(load_line(scenario))
    add("")
    gz = scenario == "gzip"
    lc = scenario == "lc"
    head = (f"{'contender':10} {'req/s':>10} {'spread':>7}" + (f" {'mean':>9}" if h2 else "")
            + f" {'p99':>9} {'cpu/req':>8} {'conn/req':>8}" + (f" {'B/resp':>7}" if gz else "")
            + (f" {'conns/server':>15}" if lc else "") + f"  {'errors':<24}")
    add(head.rstrip())
    add("-" * len(head))
    for c, t in tracks:
        if t.status != "ok" or not t.valid():
            if t.status != "ok":
                add(f"{c.name:10} {t.status}")
            elif t.runs:
                add(f"{c.name:10} !! no valid round: requests failed in all {len(t.runs)}"
                    f" ({', '.join(f'{k} {n}' for k, n in sorted(t.errors().items()))})")
            else:
                add(f"{c.name:10} no rounds ran")
            continue
        errs = t.errors()
        err_text = "none" if not errs else \
            "!! " + ", ".join(f"{k} {n}" for k, n in sorted(errs.items()))
        if t.invalid():
            err_text += f"; {t.invalid()}/{len(t.runs)} round(s) invalid, left out"
        cpr = t.conns_per_request()
        cpr_text = "?" if cpr is None else f"{cpr:.2f}"
        cpu = t.cpu_per_request()
        cpu_text = "?" if cpu is None else f"{cpu:.0f}us"
        mean_text = f" {fmt_ms(t.mean()):>9}" if h2 else ""
        size = t.median("bytes_per_response") if gz else None
        size_text = (f" {'?' if size is None else f'{size:.0f}':>7}") if gz else ""
        per_server = t.valid()[-1].get("per_server") if lc else None
        servers_text = f" {'/'.join(map(str, per_server)) if per_server else '?':>15}" if lc else ""
        add(f"{c.name:10} {t.rps():>10.0f} {t.spread() * 100:>6.1f}%{mean_text}"
            f" {fmt_ms(t.p99()):>9} {cpu_text:>8} {cpr_text:>8}{size_text}{servers_text}"
            f"  {err_text}")
    add("")
    if h2:
        add("req/s, mean and p99 are medians over the valid rounds; mean is h2load's mean")
        add("time for request; p99 is the 99th percentile of the request times h2load logs")
        add("(--log-file); spread is (max-min)/median of req/s;")
        add("a round in which any request failed (failed, errored, timeout, non-2xx) is invalid")
        add("and left out of every figure but errors;")
    else:
        add("req/s and p99 are medians over the rounds; spread is (max-min)/median of req/s;")
    add("cpu/req = CPU time (user+system) of the proxy's processes during load / requests;")
    add(f"conn/req = TCP connections the machine accepted during load / requests {client} completed")
    add("(/proc/net/snmp PassiveOpens; the backend's new upstream connections count too).")
    if h2:
        add(f"cpu/req and conn/req cover h2load's measured {DURATION}s only, read when h2load")
        add("announces its start and end; the warm-up and the TLS handshakes are outside it.")
    if gz:
        add("B/resp = wrk's bytes read / responses (headers included), median: the responses")
        add(f"stayed compressed under load (uncompressed, the body alone is {len(GZIP_BODY)}"
            " bytes).")
    if lc:
        add(f"conns/server = the proxy's connections to each of the {LC_SERVERS} servers of its")
        add("group when wrk had finished, last round: every server carried part of the load.")
    negotiated = [f"{c.name:8} {t.detail}" for c, t in tracks if t.status == "ok" and t.detail]
    if gz:
        if negotiated:
            add("gzip checked before load (Accept-Encoding: gzip; the body must decompress to the")
            add("backend's bytes):")
            for text in negotiated:
                add(f"  {text}")
        add("The same compressor settings for all: zlib level 1, 32 KB window, memLevel 8")
        add("(nginx: gzip_comp_level 1 and its defaults; h2o: compress: {gzip: 1}).")
    if lc:
        if negotiated:
            add("Balancing checked before load (one GET after another, none in flight: the tied")
            add("servers are taken in turn, so every server gets a connection):")
            for text in negotiated:
                add(f"  {text}")
        add("The same balancing for all: the fewest requests in flight wins, ties in turn")
        add("(rampart least_conn, counts shared by workers; nginx least_conn with a zone, so")
        add("shared too; HAProxy balance leastconn); the plain scenario's upstream keep-alive.")
    if scenario == "tls":
        if negotiated:
            add("TLS checked before load (second connection offered the first's session):")
            for text in negotiated:
                add(f"  {text}")
        bad = [c.name for c, t in ok
               if t.conns_per_request() is not None and t.conns_per_request() < 0.95]
        if bad:
            add(f"!! fewer than one new connection per request for: {', '.join(bad)}"
                " — wrk reused connections; the TLS figures are not handshakes/s.")
        add("wrk (one thread) does the client half of every handshake, which costs more than")
        add("the server half: on a small machine wrk saturates before the proxy, so req/s here")
        add("may be wrk's limit; cpu/req, the proxy's own cost per handshake, compares regardless.")
    if h2:
        if negotiated:
            add("HTTP/2 checked before load (ALPN offered h2,http/1.1; one GET with nghttp), and")
            add("every h2load run must report 'Application protocol: h2':")
            for text in negotiated:
                add(f"  {text}")
        not_h2 = [c.name for c, t in tracks if "not h2" in t.status or "not negotiate h2" in t.status]
        if not_h2:
            add(f"!! did NOT negotiate h2: {', '.join(not_h2)} — no HTTP/2 figures for them.")
        add("h2load, the proxy and the backend share this machine's cores: on 2 cores the")
        add("per-round CPU figures below show who took how much.")

    ramp = next((t for c, t in ok if c.name == "rampart"), None)
    peers = [(c, t) for c, t in ok if c.name != "rampart"]
    add("")
    if ramp is None:
        why = next((t.status.split(":")[0] if t.status != "ok" else "had no valid round"
                    for c, t in tracks if c.name == "rampart"), "not run")
        add(f"rampart ratios: n/a (rampart {why})")
    elif not peers:
        add("rampart ratios: n/a (no peer ran)")
    else:
        add(f"{'rampart vs':14} {'req/s ratio':>12}" + (f" {'mean ratio':>11}" if h2 else "")
            + f" {'p99 ratio':>10} {'cpu/req ratio':>14}")
        for c, t in peers:
            suspect = "  !! errors, not comparable" if ramp.errors() or t.errors() else ""
            mean_text = f" {ratio(ramp.mean(), t.mean()):>11}" if h2 else ""
            add(f"  {c.name:12} {ratio(ramp.rps(), t.rps()):>12}{mean_text}"
                f" {ratio(ramp.p99(), t.p99()):>10}"
                f" {ratio(ramp.cpu_per_request(), t.cpu_per_request()):>14}{suspect}")
        add("req/s ratio = rampart/peer, above 1 means rampart serves more;")
        if h2:
            add("mean ratio = rampart/peer, below 1 means rampart's mean latency is lower (with a")
            add(f"fixed {H2_CONNECTIONS * H2_STREAMS} requests in flight it mirrors the req/s ratio);")
        add("p99 ratio = rampart/peer, below 1 means rampart's tail latency is lower;")
        add("cpu/req ratio = rampart/peer, below 1 means rampart spends less CPU per request.")
        if any(c.name == "rampart-hc" for c, t in peers):
            add("rampart-hc is this rampart with `health_check interval=1s uri=/` and")
            add("`outlier_detection consecutive_5xx=5 interval=10s base_ejection_time=30s` in")
            add("every upstream block: its ratios are what they cost (1.00x: nothing), to be")
            add("read against the spread; its conn/req counts the checks' connections too.")
        lim = {c.name: t for c, t in ok if c.name in ("rampart-lim", "rampart-sync", "nginx-lim")}
        if lim:
            add("rampart-lim is this rampart with one limit_req (rate=100000000r/s burst=100000")
            add("nodelay) and one limit_conn (60000) per request, keyed by the client's address;")
            add("rampart-sync the same with the limit_req zone shared through redis (`sync`);")
            add("nginx-lim is nginx with the same two limits. rampart's ratio to rampart-lim and")
            add("rampart-sync is what the limits cost it (goal: under 5%, a req/s ratio at most")
            add("1.05x); the line below sets rampart and nginx side by side with the same limits.")
        if "rampart-lim" in lim and "nginx-lim" in lim:
            a, b = lim["rampart-lim"], lim["nginx-lim"]
            add(f"  {'rampart-lim vs nginx-lim':26} req/s {ratio(a.rps(), b.rps())}"
                f"  p99 {ratio(a.p99(), b.p99())}"
                f"  cpu/req {ratio(a.cpu_per_request(), b.cpu_per_request())}")
    noisy = [c.name for c, t in ok if t.spread() > NOISY]
    if noisy:
        add("")
        add(f"!! req/s spread above {NOISY:.0%} for: {', '.join(noisy)} — the machine was busy;"
            " rerun with more rounds before trusting a ratio near 1.")
    flagged = [c.name for c, t in tracks if t.status == "ok" and t.errors()]
    if flagged:
        add("")
        add(f"!! errors during load from: {', '.join(flagged)} — their numbers are not"
            " comparable until that is fixed.")
    add("")
    add(f"per round (req/s / {'mean / ' if h2 else ''}p99 / CPU use in % of one core: the"
        f" proxy's, the backend's, {client}'s):")
    for c, t in tracks:
        if not t.runs:
            continue
        shown = []
        for r in t.runs:
            mean_text = f"{fmt_ms(r.get('mean_ms'))}/" if h2 else ""
            p99 = None if math.isnan(r["p99_ms"]) else r["p99_ms"]
            text = (f"{r['rps']:.0f}/{mean_text}{fmt_ms(p99)}/{r['cpu_s'] * 100 / DURATION:.0f}%"
                    f"/{r['backend_cpu'] * 100:.0f}%/{r['client_cpu'] * 100:.0f}%")
            if not r.get("valid", True):
                text += "[INVALID: " + ", ".join(f"{k} {n}" for k, n in sorted(r["errors"].items())) + "]"
            shown.append(text)
        add(f"  {c.name:8} {'  '.join(shown)}")
    return lines


def report(cs, started_at, load_at_start):
    lines = []
    add = lines.append
    add("rampart bench — reverse proxy, one worker each, HTTP/1.1 upstream keep-alive")
    add(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(started_at))}"
        f"   host: {os.uname().nodename} ({os.uname().sysname} {os.uname().release}),"
        f" {os.cpu_count()} cpus, load avg at start {load_at_start:.2f}")
    loaded = [s for s in SCENARIOS if s in LOAD_SCENARIOS]
    if loaded:
        add(f"scenarios: {', '.join(SCENARIOS)}; {ROUNDS} round(s) in rotating order, each"
            f" running every load scenario for every contender; {WARMUP}s warm-up per contender"
            f" and scenario; backend: nginx, 1 worker, return 200 ({len(BODY)}-byte body)")
    if "idle" in SCENARIOS:
        add(f"idle: {IDLE_ROUNDS} round(s) after the load rounds, each contender restarted for"
            f" every measurement, {IDLE_CONNECTIONS} connections per measurement")
    add("")
    for c in cs:
        add(f"  {c.name:8} {c.version or '-'}")
    if set(LISTENERS) & set(SSL_LISTENERS):
        add(f"  {'openssl':8} {version_of([OPENSSL, 'version'])} (the system's; wrk uses it)")
    if "h2" in SCENARIOS:
        add(f"  {'h2load':8} {version_of([H2LOAD, '--version'])}")
    for scenario in SCENARIOS:
        add("")
        lines += idle_section(cs) if scenario == "idle" else section(cs, scenario)
    add("")
    add("Read the ratios, not the absolute numbers: the load generator, the proxy and the")
    add("backend share this machine's cores, so only figures from one run, measured side by")
    add("side, compare.")
    return "\n".join(lines) + "\n"


LOGS = os.path.join(os.path.dirname(os.path.abspath(RESULTS)), "logs")


def keep(name, text):
    """Save text as LOGS/name: evidence of a failed round outlives the temp dir."""
    os.makedirs(LOGS, exist_ok=True)
    with open(os.path.join(LOGS, name), "w") as f:
        f.write(text)


def clear_logs():
    """Remove the previous run's files from LOGS."""
    try:
        for old in os.listdir(LOGS):
            if old.endswith((".error.log", ".out", ".txt")):
                os.unlink(os.path.join(LOGS, old))
    except OSError:
        pass


def keep_logs(tmp):
    """Copy the servers' error logs and output of this run into LOGS, so what a
    server said under load can be read after the temp dir is gone."""
    try:
        names = [n for n in os.listdir(tmp) if n.endswith((".error.log", ".out"))]
        os.makedirs(LOGS, exist_ok=True)
        for n in names:
            shutil.copy(os.path.join(tmp, n), os.path.join(LOGS, n))
    except OSError as e:
        log(f"bench: could not keep the logs in {LOGS}: {e}")


def raise_nofile(need):
    """Raise this script's open-files limit, which the servers inherit, to need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        if os.geteuid() != 0:
            sys.exit(f"bench: the idle scenario needs {need} open files, above the hard limit"
                     f" ({hard}, ulimit -Hn); lower BENCH_IDLE_CONNECTIONS or raise it")
        hard = need
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def log_idle(what, c, run):
    if "error" in run:
        log(f"bench: {what} {c.name:8} {run['kind']:5} failed: {run['error']}")
        return
    log(f"bench: {what} {c.name:8} {run['kind']:5} RSS {run['rss']:6.0f} B/conn"
        f"  Private_Dirty {run['private_dirty']:6.0f} B/conn  Pss {run['pss']:6.0f} B/conn"
        f"  (worker {run['pid']}, {IDLE_CONNECTIONS} opened in {run['seconds']:.1f}s)")


def main():
    global BACKEND_PGID
    if not os.access(WRK, os.X_OK):
        sys.exit(f"bench: wrk not found ({WRK}); install the Debian package wrk")
    if not os.access("/usr/sbin/nginx", os.X_OK):
        sys.exit("bench: /usr/sbin/nginx not found; it is the backend for every contender")
    if "h2" in SCENARIOS and not os.access(H2LOAD, os.X_OK):
        sys.exit(f"bench: h2load not found ({H2LOAD}); install the Debian package"
                 " nghttp2-client, or leave h2 out of BENCH_SCENARIOS")
    if "idle" in SCENARIOS:
        if h2 is None:
            sys.exit("bench: the idle scenario's HTTP/2 client needs the Python h2 package;"
                     " install the Debian package python3-h2, or leave idle out of"
                     " BENCH_SCENARIOS")
        raise_nofile(2 * MAX_CONNECTIONS + 64)
    started_at = time.time()
    load_at_start = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="rampart-bench-")
    backend = redis = None
    clear_logs()
    cs = contenders(tmp)
    try:
        listeners = ["plain"] + LISTENERS
        lc_servers = LC_SERVERS if "lc" in LISTENERS else 0
        global REDIS_PORT
        ports = free_ports(2 + lc_servers + len(cs) * len(listeners))
        backend_port = ports.pop(0)
        REDIS_PORT = ports.pop(0)
        LC_BACKEND_PORTS[:] = [ports.pop(0) for _ in range(lc_servers)]
        for c in cs:
            for s in listeners:
                c.ports[s] = ports.pop(0)
        lc_text = (f" (lc: also {', '.join(map(str, LC_BACKEND_PORTS))})"
                   if LC_BACKEND_PORTS else "")
        log(f"bench: temp dir {tmp}; backend nginx on 127.0.0.1:{backend_port}{lc_text};"
            f" scenarios {', '.join(SCENARIOS)}")
        tls_files = make_certificate(tmp) if set(LISTENERS) & set(SSL_LISTENERS) else {}
        backend = start_backend(tmp, backend_port)
        BACKEND_PGID = backend.proc.pid
        if any(c.name == "rampart-sync" for c in cs):
            redis = start_redis(tmp, cs)
        for c in cs:
            start_contender(c, tmp, backend_port, tls_files)
            for s, t in c.tracks.items():
                if s == "idle":
                    shown = ", ".join(f"{k} {'ok' if k not in c.down else 'down'}"
                                      for k in IDLE_KINDS) if t.status == "ok" else t.status
                else:
                    shown = f"127.0.0.1:{c.ports[s]}" if t.status == "ok" else t.status
                log(f"bench: {c.name:8} {s:5} {shown}")
        live = [c for c in cs if any(t.status == "ok" for t in c.tracks.values())]
        if not live:
            raise RuntimeError("no contender started")

        def load(c, s, seconds, what, warm_up=False):
            """One wrk or h2load run of c in scenario s; None if it did not run.
            A warm-up run of h2load has no unmeasured start of its own."""
            t = c.tracks[s]
            if t.status != "ok":
                return None
            if not c.server.alive():
                c.set_status(f"failed: exited with status {c.server.proc.returncode}"
                             " under load")
                return None
            try:
                if s == "h2":
                    return run_h2load(c.ports[s], seconds, c.server.proc.pid, tmp,
                                      warm_up=0 if warm_up else H2_WARMUP)
                return run_wrk(s, c.ports[s], seconds, c.server.proc.pid)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                t.status = f"failed under load: {e}"
                log(f"bench: {what} {c.name:8} {s:5} {t.status}")
                return None

        def measure(c, kind):
            """One idle measurement of c in kind, in a freshly started c, so that no
            memory freed by an earlier scenario or measurement is reused by this one."""
            c.server.stop()
            why = launch(c, tmp, backend_port, tls_files, c.listeners)
            if why is None:
                why = c.server.wait_listening(c.ports[kind])
            if why:
                return {"kind": kind, "error": failed_start(c, f"restart: {why}")}
            try:
                return measure_idle(c, kind)
            except IdleError as e:
                return {"kind": kind, "error": str(e)}

        loaded = [s for s in SCENARIOS if s in LOAD_SCENARIOS]
        if WARMUP:
            for c in live:
                for s in loaded:
                    load(c, s, WARMUP, "warm-up", warm_up=True)
        for rnd in range(ROUNDS if loaded else 0):
            k = rnd % len(live)
            for c in live[k:] + live[:k]:
                for s in loaded:
                    run = load(c, s, DURATION, f"round {rnd + 1}/{ROUNDS}")
                    if run is None:
                        continue
                    c.tracks[s].runs.append(run)
                    errs = " ERRORS " + str(run["errors"]) if run["errors"] else ""
                    cpr = (f"  {run['conns'] / run['requests']:.2f} conn/req"
                           if run["conns"] is not None and run["requests"] else "")
                    mean = f"  mean {run['mean_ms']:.2f}ms" if "mean_ms" in run else ""
                    invalid = "  INVALID ROUND" if not run.get("valid", True) else ""
                    servers = ("  conns/server " + "/".join(map(str, run["per_server"]))
                               if run.get("per_server") else "")
                    p99 = None if math.isnan(run["p99_ms"]) else run["p99_ms"]
                    log(f"bench: round {rnd + 1}/{ROUNDS} {c.name:8} {s:5}"
                        f" {run['rps']:>9.0f} req/s{mean}  p99 {fmt_ms(p99)}"
                        f"  cpu {run['cpu_s'] * 100 / DURATION:.0f}%"
                        f" backend {run['backend_cpu'] * 100:.0f}%"
                        f" client {run['client_cpu'] * 100:.0f}%{cpr}{servers}{errs}{invalid}")
                    if run["errors"] and "output" in run:
                        keep(f"{s}-{c.name}-round{rnd + 1}.txt", run["output"])
        idle = [c for c in live if "idle" in c.tracks and c.tracks["idle"].status == "ok"]
        for rnd in range(IDLE_ROUNDS if idle else 0):
            k = rnd % len(idle)
            for c in idle[k:] + idle[:k]:
                for kind in IDLE_KINDS:
                    if kind not in c.down:
                        run = measure(c, kind)
                        c.tracks["idle"].runs.append(run)
                        log_idle(f"idle {rnd + 1}/{IDLE_ROUNDS}", c, run)
        text = report(cs, started_at, load_at_start)
        log("")
        log(text.rstrip())
        os.makedirs(os.path.dirname(os.path.abspath(RESULTS)), exist_ok=True)
        with open(RESULTS, "w") as f:
            f.write(text)
        log("")
        log(f"bench: written to {RESULTS} (took {time.time() - started_at:.0f}s)")
    finally:
        for server in [c.server for c in reversed(cs)] + [backend, redis]:
            if server:
                server.stop()
        keep_logs(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    # SIGTERM/SIGHUP unwind like Ctrl-C, so the servers are stopped on the way out.
    def bail(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, bail)
    signal.signal(signal.SIGHUP, bail)
    try:
        main()
    except RuntimeError as e:
        sys.exit(f"bench: {e}")
    except KeyboardInterrupt:
        sys.exit("bench: interrupted")
