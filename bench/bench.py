#!/usr/bin/python3
"""Benchmark rampart, nginx, HAProxy and h2o side by side as HTTP/1.1 reverse proxies.

Every contender runs with one worker (or one thread) and upstream keep-alive, in
front of the same nginx backend on loopback. Two scenarios: "plain" (keep-alive
HTTP/1.1 over TCP) and "tls" (a new TLS connection for every request, the same
ECDSA P-256 certificate for all, no session resumption). wrk loads each contender
in turn, over several rounds whose order rotates, so that drift of a shared machine
hits all alike. The report gives, per scenario, the median requests/s and p99
latency of each, and rampart's ratio to each peer. See bench/README.md.

Environment:
  BENCH_SCENARIOS    which scenarios, comma-separated: plain, tls (default both)
  BENCH_ROUNDS       rounds, each loading every contender once per scenario (default 5)
  BENCH_DURATION     seconds of load per contender per round (default 5)
  BENCH_CONNECTIONS  wrk connections, plain scenario (default 64)
  BENCH_TLS_CONNECTIONS  wrk connections, tls scenario (default 16)
  BENCH_WARMUP       seconds of unmeasured load per contender before round 1 (default 1)
  BENCH_RESULTS      report file (default bench/results/latest.txt)
  RAMPART_BIN        the rampart binary (default ./rampart beside bench/)
"""
import http.client
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

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
WARMUP = env_int("BENCH_WARMUP", 1, minimum=0)
RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "results", "latest.txt")
RAMPART = os.environ.get("RAMPART_BIN") or os.path.join(HERE, "..", "rampart")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NOISY = 0.20  # req/s spread across rounds above which the report warns
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def scenarios_from_env():
    raw = os.environ.get("BENCH_SCENARIOS", "").strip()
    if raw == "":
        return ["plain", "tls"]
    names = [s.strip() for s in raw.split(",") if s.strip()]
    bad = [s for s in names if s not in ("plain", "tls")]
    if bad or not names:
        sys.exit(f"bench: BENCH_SCENARIOS={raw!r}: use plain, tls or plain,tls")
    return [s for s in ("plain", "tls") if s in names]


SCENARIOS = scenarios_from_env()
TITLES = {
    "plain": "plain: HTTP/1.1 keep-alive",
    "tls": "tls: new TLS connection per request (one request each, Connection: close)",
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


def render(template, out_path, values, tls):
    """Fill template's @NAME@ placeholders. Lines marked @TLS@ (the TLS listener and
    its settings) are kept, unmarked, when tls is true and dropped otherwise."""
    with open(os.path.join(HERE, "conf", template)) as f:
        text = f.read()
    kept = []
    for line in text.splitlines(keepends=True):
        if "@TLS@" in line:
            if not tls:
                continue
            line = line.replace("@TLS@", "")
        kept.append(line)
    text = "".join(kept)
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]+@", text)
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


def passive_opens():
    """TCP connections accepted so far on this machine (network namespace)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Tcp:")]
        return int(rows[1][rows[0].index("PassiveOpens")])
    except (OSError, IndexError, ValueError):
        return None


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def group_cpu(pgid):
    """CPU seconds (user + system) used so far by the processes of group pgid."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:          # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wrk_argv(scenario, port, seconds):
    if scenario == "tls":
        return [WRK, "-t1", f"-c{TLS_CONNECTIONS}", f"-d{seconds}s", "--latency",
                "-H", "Connection: close", f"https://127.0.0.1:{port}/"]
    return [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}/"]


def run_wrk(scenario, port, seconds, pgid):
    """One wrk run; a dict of rps, p99_ms, requests, errors, conns (TCP connections
    accepted on the machine meanwhile, None if unknown), cpu_s (CPU seconds the
    server's process group pgid used meanwhile)."""
    argv = wrk_argv(scenario, port, seconds)
    opens, cpu = passive_opens(), group_cpu(pgid)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    after, cpu = passive_opens(), group_cpu(pgid) - cpu
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
    return {"rps": float(rps.group(1)), "p99_ms": float(p99.group(1)) * UNITS_MS[p99.group(2)],
            "requests": int(total.group(1)), "errors": errors,
            "conns": after - opens if opens is not None and after is not None else None,
            "cpu_s": cpu}


class Track:
    """One contender in one scenario: whether it runs, and its rounds."""

    def __init__(self):
        self.status = "ok"        # or "skipped: ...", "failed to start: ...", ...
        self.runs = []
        self.detail = ""          # e.g. the negotiated TLS version and cipher

    def rps(self):
        return statistics.median(r["rps"] for r in self.runs)

    def p99(self):
        return statistics.median(r["p99_ms"] for r in self.runs)

    def spread(self):
        """(max - min) / median of requests/s over the rounds: how noisy the rounds were."""
        rates = [r["rps"] for r in self.runs]
        return (max(rates) - min(rates)) / self.rps() if self.rps() else 0.0

    def errors(self):
        total = {}
        for run in self.runs:
            for kind, n in run["errors"].items():
                total[kind] = total.get(kind, 0) + n
        return total

    def cpu_per_request(self):
        """The server's CPU microseconds per request wrk completed, all rounds."""
        requests = sum(r["requests"] for r in self.runs)
        return sum(r["cpu_s"] for r in self.runs) * 1e6 / requests if requests else None

    def conns_per_request(self):
        """Connections accepted on the machine per request wrk completed, all rounds."""
        if not self.runs or any(r["conns"] is None for r in self.runs):
            return None
        requests = sum(r["requests"] for r in self.runs)
        return sum(r["conns"] for r in self.runs) / requests if requests else None


class Contender:
    def __init__(self, name, binary, version_argv, config, argv, error_log=None):
        self.name = name
        self.binary = binary
        self.version_argv = version_argv
        self.config = config      # template in bench/conf/, rendered into the temp dir
        self.argv = argv          # command line; {conf} is the rendered file
        self.error_log = error_log
        self.version = ""
        self.ports = {}           # scenario -> port
        self.server = None
        self.tracks = {s: Track() for s in SCENARIOS}

    def set_status(self, status):
        """Mark every scenario that still runs (a failed one keeps its reason)."""
        for track in self.tracks.values():
            if track.status == "ok":
                track.status = status


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
    """The proxies under test, rampart first; each listed with how to start it."""
    nginx_log = os.path.join(tmp, "nginx.error.log")
    return [
        Contender("rampart", RAMPART, [RAMPART, "-v"], "rampart.conf",
                  [RAMPART, "-p", tmp, "-c", "{conf}"],
                  error_log=os.path.join(tmp, "rampart.error.log")),
        Contender("nginx", "/usr/sbin/nginx", ["/usr/sbin/nginx", "-v"],
                  "nginx.conf",
                  ["/usr/sbin/nginx", "-p", tmp, "-e", nginx_log, "-c", "{conf}", *NGINX_USER],
                  error_log=nginx_log),
        Contender("haproxy", "/usr/sbin/haproxy", ["/usr/sbin/haproxy", "-v"],
                  "haproxy.cfg",
                  ["/usr/sbin/haproxy", "-db", "-f", "{conf}"]),
        Contender("h2o", "/usr/bin/h2o", ["/usr/bin/h2o", "-v"], "h2o.conf",
                  ["/usr/bin/h2o", "-c", "{conf}"],
                  error_log=os.path.join(tmp, "h2o.error.log")),
    ]


def start_backend(tmp, port):
    os.makedirs(os.path.join(tmp, "backend-tmp"), exist_ok=True)
    conf = render("backend.conf", os.path.join(tmp, "backend.conf"),
                  {"TMP": tmp, "BACKEND_PORT": port, "BODY": BODY.replace("\n", "\\n")},
                  tls=False)
    error_log = os.path.join(tmp, "backend.error.log")
    server = Server("backend", ["/usr/sbin/nginx", "-p", tmp, "-e", error_log, "-c", conf,
                                *NGINX_USER], tmp)
    server.start()
    why = server.wait_listening(port)
    if why is None:
        try:
            status, body = fetch(port)
            if status != 200 or body != BODY:
                why = f"answered {status} {body[:80]!r}"
        except (OSError, http.client.HTTPException) as e:
            why = f"failed a request: {e}"
    if why:
        detail = "\n  ".join(server.tail([error_log]))
        raise RuntimeError(f"backend nginx on 127.0.0.1:{port} {why}\n  {detail}")
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


def launch(c, tmp, backend_port, tls_files, tls):
    """Render c's config (with its TLS listener if tls) and start it; None once its
    plain port listens, or why it does not."""
    values = {"TMP": tmp, "PORT": c.ports["plain"], "BACKEND_PORT": backend_port,
              "H2O_USER": H2O_USER}
    if tls:
        values.update(tls_files, TLS_PORT=c.ports["tls"])
    conf = render(c.config, os.path.join(tmp, c.config), values, tls)
    c.server = Server(c.name, [a.replace("{conf}", conf) for a in c.argv], tmp)
    c.server.start()
    return c.server.wait_listening(c.ports["plain"])


def failed_start(c, why):
    logs = [c.error_log] if c.error_log else []
    detail = " | ".join(c.server.tail(logs, lines=4))
    return f"failed to start: {why}" + (f": {detail}" if detail else "")


def start_contender(c, tmp, backend_port, tls_files):
    """Start c and check that one request through it, per scenario, returns the
    backend's body; a scenario that fails is marked, the other may still run."""
    if not (os.path.isfile(c.binary) and os.access(c.binary, os.X_OK)):
        c.set_status(f"skipped: {c.binary} not found")
        return
    c.version = version_of(c.version_argv)
    os.makedirs(os.path.join(tmp, f"{c.name}-tmp"), exist_ok=True)
    tls = "tls" in SCENARIOS
    why = launch(c, tmp, backend_port, tls_files, tls)
    if why and tls and "plain" in SCENARIOS:
        # Perhaps only its TLS settings keep it from starting: the plain row still runs.
        c.tracks["tls"].status = failed_start(c, why + " (with its TLS listener)")
        c.server.stop()
        tls = False
        why = launch(c, tmp, backend_port, tls_files, tls)
    if why:
        for track in c.tracks.values():
            if track.status == "ok":
                track.status = failed_start(c, why)
        return
    if "plain" in SCENARIOS:
        try:
            status, body = fetch(c.ports["plain"])
            if status != 200 or body != BODY:
                why = f"proxied wrong answer: {status} {body[:120]!r}"
        except (OSError, http.client.HTTPException) as e:
            why = f"request through it failed: {e}"
        if why is None and not c.server.alive():
            why = f"exited with status {c.server.proc.returncode}"
        if why:
            c.tracks["plain"].status = failed_start(c, why)
    if tls:
        why = c.server.wait_listening(c.ports["tls"])
        detail = None
        if why is None:
            try:
                why, detail = check_tls(c.ports["tls"])
            except (OSError, http.client.HTTPException) as e:
                why = f"TLS request through it failed: {e}"
        if why is None and not c.server.alive():
            why = f"exited with status {c.server.proc.returncode}"
        if why:
            c.tracks["tls"].status = failed_start(c, why)
        else:
            c.tracks["tls"].detail = detail


def fmt_ratio(x):
    return f"{x:.2f}x"


def load_line(scenario):
    if scenario == "tls":
        return (f"load: wrk -t1 -c{TLS_CONNECTIONS} -d{DURATION}s --latency"
                f" -H 'Connection: close' https://...: one request per new TLS connection,"
                f" so req/s = full TLS handshakes/s; ECDSA P-256 certificate, each server's"
                f" default TLS settings, no session resumption")
    return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency http://...:"
            f" HTTP/1.1 keep-alive")


def section(cs, scenario):
    """The table, ratios and rounds of one scenario."""
    lines = []
    add = lines.append
    tracks = [(c, c.tracks[scenario]) for c in cs]
    ok = [(c, t) for c, t in tracks if t.status == "ok" and t.runs]
    add(f"== {TITLES[scenario]}")
    add(load_line(scenario))
    add("")
    head = (f"{'contender':10} {'req/s':>10} {'spread':>7} {'p99':>9} {'cpu/req':>8}"
            f" {'conn/req':>8}  {'errors':<24}")
    add(head.rstrip())
    add("-" * len(head))
    for c, t in tracks:
        if t.status != "ok" or not t.runs:
            add(f"{c.name:10} {t.status if t.status != 'ok' else 'no rounds ran'}")
            continue
        errs = t.errors()
        err_text = "none" if not errs else \
            "!! " + ", ".join(f"{k} {n}" for k, n in sorted(errs.items()))
        cpr = t.conns_per_request()
        cpr_text = "?" if cpr is None else f"{cpr:.2f}"
        cpu = t.cpu_per_request()
        cpu_text = "?" if cpu is None else f"{cpu:.0f}us"
        add(f"{c.name:10} {t.rps():>10.0f} {t.spread() * 100:>6.1f}% {t.p99():>7.2f}ms"
            f" {cpu_text:>8} {cpr_text:>8}  {err_text}")
    add("")
    add("req/s and p99 are medians over the rounds; spread is (max-min)/median of req/s;")
    add("cpu/req = CPU time (user+system) of the proxy's processes during load / requests;")
    add("conn/req = TCP connections the machine accepted during load / requests wrk completed")
    add("(/proc/net/snmp PassiveOpens; the backend's new upstream connections count too).")
    if scenario == "tls":
        negotiated = [f"{c.name:8} {t.detail}" for c, t in tracks if t.status == "ok" and t.detail]
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

    ramp = next((t for c, t in ok if c.name == "rampart"), None)
    peers = [(c, t) for c, t in ok if c.name != "rampart"]
    add("")
    if ramp is None:
        why = next((t.status.split(":")[0] for c, t in tracks if c.name == "rampart"), "not run")
        add(f"rampart ratios: n/a (rampart {why})")
    elif not peers:
        add("rampart ratios: n/a (no peer ran)")
    else:
        add(f"{'rampart vs':14} {'req/s ratio':>12} {'p99 ratio':>10} {'cpu/req ratio':>14}")
        for c, t in peers:
            suspect = "  !! errors, not comparable" if ramp.errors() or t.errors() else ""
            mine, theirs = ramp.cpu_per_request(), t.cpu_per_request()
            cpu_ratio = fmt_ratio(mine / theirs) if mine and theirs else "?"
            add(f"  {c.name:12} {fmt_ratio(ramp.rps() / t.rps()):>12}"
                f" {fmt_ratio(ramp.p99() / t.p99()):>10} {cpu_ratio:>14}{suspect}")
        add("req/s ratio = rampart/peer, above 1 means rampart serves more;")
        add("p99 ratio = rampart/peer, below 1 means rampart's tail latency is lower;")
        add("cpu/req ratio = rampart/peer, below 1 means rampart spends less CPU per request.")
    noisy = [c.name for c, t in ok if t.spread() > NOISY]
    if noisy:
        add("")
        add(f"!! req/s spread above {NOISY:.0%} for: {', '.join(noisy)} — the machine was busy;"
            " rerun with more rounds before trusting a ratio near 1.")
    flagged = [c.name for c, t in ok if t.errors()]
    if flagged:
        add("")
        add(f"!! errors during load from: {', '.join(flagged)} — their numbers are not"
            " comparable until that is fixed.")
    add("")
    add("per round (req/s / p99 / the proxy's CPU use, % of one core):")
    for c, t in ok:
        runs = "  ".join(f"{r['rps']:.0f}/{r['p99_ms']:.2f}ms/{r['cpu_s'] * 100 / DURATION:.0f}%"
                         for r in t.runs)
        add(f"  {c.name:8} {runs}")
    return lines


def report(cs, started_at, load_at_start):
    lines = []
    add = lines.append
    add("rampart bench — HTTP/1.1 reverse proxy, one worker each, upstream keep-alive")
    add(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(started_at))}"
        f"   host: {os.uname().nodename} ({os.uname().sysname} {os.uname().release}),"
        f" {os.cpu_count()} cpus, load avg at start {load_at_start:.2f}")
    add(f"scenarios: {', '.join(SCENARIOS)}; {ROUNDS} round(s) in rotating order, each"
        f" running every scenario for every contender; {WARMUP}s warm-up per contender and"
        f" scenario; backend: nginx, 1 worker, return 200 ({len(BODY)}-byte body)")
    add("")
    for c in cs:
        add(f"  {c.name:8} {c.version or '-'}")
    if "tls" in SCENARIOS:
        add(f"  {'openssl':8} {version_of([OPENSSL, 'version'])} (the system's; wrk uses it)")
    for scenario in SCENARIOS:
        add("")
        lines += section(cs, scenario)
    add("")
    add("Read the ratios, not the absolute numbers: wrk, the proxy and the backend share this")
    add("machine's cores, so only figures from one run, measured side by side, compare.")
    return "\n".join(lines) + "\n"


def main():
    if not os.access(WRK, os.X_OK):
        sys.exit(f"bench: wrk not found ({WRK}); install the Debian package wrk")
    if not os.access("/usr/sbin/nginx", os.X_OK):
        sys.exit("bench: /usr/sbin/nginx not found; it is the backend for every contender")
    started_at = time.time()
    load_at_start = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="rampart-bench-")
    servers = []
    cs = contenders(tmp)
    try:
        tls = "tls" in SCENARIOS
        ports = free_ports(1 + len(cs) * (2 if tls else 1))
        backend_port = ports.pop(0)
        for c in cs:
            c.ports["plain"] = ports.pop(0)
            if tls:
                c.ports["tls"] = ports.pop(0)
        log(f"bench: temp dir {tmp}; backend nginx on 127.0.0.1:{backend_port};"
            f" scenarios {', '.join(SCENARIOS)}")
        tls_files = make_certificate(tmp) if tls else {}
        servers.append(start_backend(tmp, backend_port))
        for c in cs:
            start_contender(c, tmp, backend_port, tls_files)
            if c.server:
                servers.append(c.server)
            for s, t in c.tracks.items():
                shown = f"127.0.0.1:{c.ports[s]}" if t.status == "ok" else t.status
                log(f"bench: {c.name:8} {s:5} {shown}")
        live = [c for c in cs if any(t.status == "ok" for t in c.tracks.values())]
        if not live:
            raise RuntimeError("no contender started")

        def load(c, s, seconds, what):
            """One wrk run of c in scenario s; None if it did not run."""
            t = c.tracks[s]
            if t.status != "ok":
                return None
            if not c.server.alive():
                c.set_status(f"failed: exited with status {c.server.proc.returncode}"
                             " under load")
                return None
            try:
                return run_wrk(s, c.ports[s], seconds, c.server.proc.pid)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                t.status = f"failed under load: {e}"
                log(f"bench: {what} {c.name:8} {s:5} {t.status}")
                return None

        if WARMUP:
            for c in live:
                for s in SCENARIOS:
                    load(c, s, WARMUP, "warm-up")
        for rnd in range(ROUNDS):
            k = rnd % len(live)
            for c in live[k:] + live[:k]:
                for s in SCENARIOS:
                    run = load(c, s, DURATION, f"round {rnd + 1}/{ROUNDS}")
                    if run is None:
                        continue
                    c.tracks[s].runs.append(run)
                    errs = " ERRORS " + str(run["errors"]) if run["errors"] else ""
                    cpr = (f"  {run['conns'] / run['requests']:.2f} conn/req"
                           if run["conns"] is not None and run["requests"] else "")
                    log(f"bench: round {rnd + 1}/{ROUNDS} {c.name:8} {s:5}"
                        f" {run['rps']:>9.0f} req/s  p99 {run['p99_ms']:.2f}ms"
                        f"  cpu {run['cpu_s'] * 100 / DURATION:.0f}%{cpr}{errs}")
        text = report(cs, started_at, load_at_start)
        log("")
        log(text.rstrip())
        os.makedirs(os.path.dirname(os.path.abspath(RESULTS)), exist_ok=True)
        with open(RESULTS, "w") as f:
            f.write(text)
        log("")
        log(f"bench: written to {RESULTS} (took {time.time() - started_at:.0f}s)")
    finally:
        for server in reversed(servers):
            server.stop()
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
