"""The servers and the contenders.

Server starts and stops one process group; render() fills a config template of
bench/conf/; Contender and all_contenders() list the proxies under test and how to
start them, Track holds one contender's rounds in one scenario; start_backend(),
start_redis(), make_certificate(), launch() and start_contender() bring them up, and
the check_* functions verify, before any load, that one request through each
listener gets the backend's answer (fetch, TLS without resumption, ALPN h2, gzip,
least-connections spread).
"""
import gzip
import http.client
import json
import math
import os
import pwd
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time

import common
from common import (BODY, GZIP_PATH, HERE, IDLE_CONNECTIONS, IDLE_KINDS, IDLE_TIMEOUT,
                    LC_SERVERS, LISTENERS, NGHTTP, OPENSSL, RAMPART, SCENARIOS,
                    SSL_LISTENERS, client_context)
from idle import upstream_conns


# Marks of lines that only some contenders keep (Contender's marks): @HC@, the
# health-check and outlier-detection lines of rampart-hc; @LIM@, the limit_req and
# limit_conn lines of rampart-lim, rampart-sync and nginx-lim; @NOSYNC@ and @SYNC@, the
# node-local or Redis-shared form of rampart's limit_req zone.
# @LUA@, the access_by_lua line of rampart-lua and nginx-lua; @LUABAL@, the
# balancer_by_lua block of rampart-luabal and nginx-luabal; @LUAMOD@, nginx's
# load_module lines for its lua module (Debian's libnginx-mod-http-lua).
CONTENDER_MARKS = ("@HC@", "@LIM@", "@NOSYNC@", "@SYNC@", "@LUA@", "@LUABAL@", "@LUAMOD@")


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
              "@PP@": "pp" in listeners,
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
    counts = upstream_conns(pgid, common.LC_BACKEND_PORTS)
    spread = "/".join(map(str, counts))
    if not all(counts):
        return (f"did not use every server of its group: {2 * LC_SERVERS} requests left it"
                f" {spread} connections to the {LC_SERVERS} servers"), None
    return None, (f"{2 * LC_SERVERS} requests one after another reached all {LC_SERVERS}"
                  f" servers ({spread} upstream connections)")


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


# rampart-lua and nginx-lua (OpenResty: Debian's nginx with its lua module): the same
# trivial access_by_lua_block on every request, against rampart and nginx without it
# (the hook's cost) and against each other. rampart-luabal and nginx-luabal: a
# balancer_by_lua_block choosing the server instead of the built-in balancer.
LUA_SCENARIOS = ("plain", "h2")
LUA_MODULE = "/usr/lib/nginx/modules/ngx_http_lua_module.so"


def lua_contenders(tmp):
    only = (LUA_SCENARIOS, "skipped: the Lua contenders run in"
            f" {', '.join(LUA_SCENARIOS)} only")
    unsupported = {s: only[1] for s in ("tls", "gzip", "lc")}
    out = []
    for name, marks in (("lua", ("@LUA@",)), ("luabal", ("@LUABAL@",))):
        refused = ([RAMPART, "-t", "-p", tmp, "-c", "{conf}"],
                   r'unknown directive "(\w+_by_lua_block)"',
                   "skipped: this rampart has no Lua hooks (rampart -t: {detail})")
        out.append(Contender(f"rampart-{name}", RAMPART, [RAMPART, "-v"], "rampart.conf",
                             [RAMPART, "-p", tmp, "-c", "{conf}"],
                             error_log=os.path.join(tmp, f"rampart-{name}.error.log"),
                             marks=marks, rendered=f"rampart-{name}.conf", only=only,
                             unsupported=unsupported, refused=refused))
        if os.path.exists(LUA_MODULE):
            log = os.path.join(tmp, f"nginx-{name}.error.log")
            out.append(Contender(f"nginx-{name}", "/usr/sbin/nginx",
                                 ["/usr/sbin/nginx", "-v"], "nginx.conf",
                                 ["/usr/sbin/nginx", "-p", tmp, "-e", log, "-c", "{conf}",
                                  *NGINX_USER],
                                 error_log=log, marks=marks + ("@LUAMOD@",),
                                 rendered=f"nginx-{name}.conf", only=only,
                                 unsupported=unsupported))
    return out


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
        *lua_contenders(tmp),
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
                               " \"argument cannot be a sequence\")",
                               "pp": "skipped: h2o 2.2 reads version 1 of the PROXY protocol"
                               " only (its proxy-protocol listener answers a v2 header with"
                               " 400), and the balancer sends v2 to every contender"}),
    ]


def lc_backend_ports():
    """LC_BACKEND_PORT_1.. placeholders: the backend's ports for the lc scenario."""
    return {f"LC_BACKEND_PORT_{i + 1}": p for i, p in enumerate(common.LC_BACKEND_PORTS)}


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
                  listeners=("lc",) if common.LC_BACKEND_PORTS else ())
    error_log = os.path.join(tmp, "backend.error.log")
    server = Server("backend", ["/usr/sbin/nginx", "-p", tmp, "-e", error_log, "-c", conf,
                                *NGINX_USER], tmp)
    server.start()
    for p in [port] + common.LC_BACKEND_PORTS:
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


def start_redis(tmp, cs):
    """The redis-server rampart-sync shares its limit through, on REDIS_PORT (no
    persistence: it holds counters). Without one, rampart-sync is skipped, saying why."""
    sync = next(c for c in cs if c.name == "rampart-sync")
    if not os.access(REDIS, os.X_OK):
        sync.set_status(f"skipped: {REDIS} not found (install the Debian package redis-server)")
        return None
    server = Server("redis", [REDIS, "--port", str(common.REDIS_PORT), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], tmp)
    server.start()
    why = server.wait_listening(common.REDIS_PORT)
    if why:
        sync.set_status(f"skipped: redis-server on 127.0.0.1:{common.REDIS_PORT} {why}")
    return server


HAPROXY = "/usr/sbin/haproxy"


def start_front(tmp, cs):
    """The pp scenario's L4 balancer: one HAProxy (mode tcp, one thread) with a listener
    per contender, each forwarding to that contender's pp port with a PROXY protocol v2
    header (send-proxy-v2), the same hop for all. Without HAProxy the pp scenario is
    skipped for every contender, saying why."""
    if not os.access(HAPROXY, os.X_OK):
        for c in cs:
            if "pp" in c.tracks:
                c.tracks["pp"].status = (f"skipped: {HAPROXY} not found (the pp scenario's"
                                         " balancer; install the Debian package haproxy)")
        return None
    lines = ["global", "    nbthread 1", f"    maxconn {MAX_CONNECTIONS}", "defaults",
             "    mode tcp", "    timeout connect 5s", f"    timeout client {IDLE_TIMEOUT}s",
             f"    timeout server {IDLE_TIMEOUT}s"]
    for c in cs:
        lines += [f"listen front_{c.name}", f"    bind 127.0.0.1:{c.ports['pp']}",
                  f"    server {c.name} 127.0.0.1:{c.ports['pp_back']} send-proxy-v2"]
    conf = os.path.join(tmp, "front.cfg")
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    server = Server("front", [HAPROXY, "-db", "-f", conf], tmp)
    server.start()
    for c in cs:
        why = server.wait_listening(c.ports["pp"])
        if why:
            raise RuntimeError(f"the pp scenario's HAProxy {why}: "
                               + " | ".join(server.tail()))
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
              "GZIP_PATH": GZIP_PATH, "REDIS_PORT": common.REDIS_PORT, **lc_backend_ports()}
    if set(listeners) & set(SSL_LISTENERS):
        values.update(tls_files)
    for name in listeners:
        # pp: the contender listens on its own port behind the front balancer's
        values[f"{name.upper()}_PORT"] = c.ports.get(f"{name}_back", c.ports[name])
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
            if name in ("plain", "pp"):
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
