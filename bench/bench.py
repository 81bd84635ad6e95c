#!/usr/bin/python3
"""Benchmark rampart, nginx, HAProxy and h2o side by side as HTTP/1.1 reverse proxies.

Every contender runs with one worker (or one thread) and upstream keep-alive, in
front of the same nginx backend on loopback. wrk loads each in turn, over several
rounds whose order rotates, so that drift of a shared machine hits all alike. The
report gives the median requests/s and p99 latency of each, and rampart's ratio to
each peer. See bench/README.md.

Environment:
  BENCH_ROUNDS       rounds, each loading every contender once (default 5)
  BENCH_DURATION     seconds of load per contender per round (default 5)
  BENCH_CONNECTIONS  wrk connections (default 64)
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
WARMUP = env_int("BENCH_WARMUP", 1, minimum=0)
RESULTS = os.environ.get("BENCH_RESULTS") or os.path.join(HERE, "results", "latest.txt")
RAMPART = os.environ.get("RAMPART_BIN") or os.path.join(HERE, "..", "rampart")
WRK = shutil.which("wrk") or "/usr/bin/wrk"
NOISY = 0.20  # req/s spread across rounds above which the report warns


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


def render(template, out_path, values):
    with open(os.path.join(HERE, "conf", template)) as f:
        text = f.read()
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


UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def run_wrk(port, seconds):
    """One wrk run; a dict of rps, p99_ms, requests, errors (and text on failure)."""
    argv = [WRK, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency",
            f"http://127.0.0.1:{port}/"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
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
            "requests": int(total.group(1)), "errors": errors}


class Contender:
    def __init__(self, name, binary, version_argv, config, argv, error_log=None):
        self.name = name
        self.binary = binary
        self.version_argv = version_argv
        self.config = config      # template in bench/conf/, rendered into the temp dir
        self.argv = argv          # command line; {conf} is the rendered file
        self.error_log = error_log
        self.version = ""
        self.port = None
        self.server = None
        self.status = "ok"        # or "skipped: ...", "failed to start: ..."
        self.runs = []

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
                  {"TMP": tmp, "BACKEND_PORT": port, "BODY": BODY.replace("\n", "\\n")})
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


def start_contender(c, tmp, backend_port):
    """Start c and check that one request through it returns the backend's body."""
    if not (os.path.isfile(c.binary) and os.access(c.binary, os.X_OK)):
        c.status = f"skipped: {c.binary} not found"
        return
    c.version = version_of(c.version_argv)
    os.makedirs(os.path.join(tmp, f"{c.name}-tmp"), exist_ok=True)
    conf = render(c.config, os.path.join(tmp, c.config),
                  {"TMP": tmp, "PORT": c.port, "BACKEND_PORT": backend_port,
                   "H2O_USER": H2O_USER})
    c.server = Server(c.name, [a.replace("{conf}", conf) for a in c.argv], tmp)
    c.server.start()
    why = c.server.wait_listening(c.port)
    if why is None:
        try:
            status, body = fetch(c.port)
            if status != 200 or body != BODY:
                why = f"proxied wrong answer: {status} {body[:120]!r}"
        except (OSError, http.client.HTTPException) as e:
            why = f"request through it failed: {e}"
    if why is None and not c.server.alive():
        why = f"exited with status {c.server.proc.returncode}"
    if why:
        logs = [c.error_log] if c.error_log else []
        detail = " | ".join(c.server.tail(logs, lines=4))
        c.status = f"failed to start: {why}" + (f": {detail}" if detail else "")


def fmt_ratio(x):
    return f"{x:.2f}x"


def report(cs, started_at, load_at_start):
    ok = [c for c in cs if c.status == "ok" and c.runs]
    lines = []
    add = lines.append
    add("rampart bench — HTTP/1.1 reverse proxy, one worker each, upstream keep-alive")
    add(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(started_at))}"
        f"   host: {os.uname().nodename} ({os.uname().sysname} {os.uname().release}),"
        f" {os.cpu_count()} cpus, load avg at start {load_at_start:.2f}")
    add(f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency, {ROUNDS} round(s) in rotating"
        f" order, {WARMUP}s warm-up each; backend: nginx, 1 worker, return 200"
        f" ({len(BODY)}-byte body)")
    add("")
    for c in cs:
        add(f"  {c.name:8} {c.version or '-'}")
    add("")
    head = f"{'contender':10} {'req/s':>10} {'spread':>7} {'p99':>9}  {'errors':<24}"
    add(head.rstrip())
    add("-" * len(head))
    for c in cs:
        if c.status != "ok" or not c.runs:
            add(f"{c.name:10} {c.status}")
            continue
        errs = c.errors()
        err_text = "none" if not errs else \
            "!! " + ", ".join(f"{k} {n}" for k, n in sorted(errs.items()))
        add(f"{c.name:10} {c.rps():>10.0f} {c.spread() * 100:>6.1f}% {c.p99():>7.2f}ms"
            f"  {err_text}")
    add("")
    add("req/s and p99 are medians over the rounds; spread is (max-min)/median of req/s.")

    ramp = next((c for c in ok if c.name == "rampart"), None)
    peers = [c for c in ok if c.name != "rampart"]
    add("")
    if ramp is None:
        why = next((c.status.split(":")[0] for c in cs if c.name == "rampart"), "not run")
        add(f"rampart ratios: n/a (rampart {why})")
    elif not peers:
        add("rampart ratios: n/a (no peer ran)")
    else:
        add(f"{'rampart vs':14} {'req/s ratio':>12} {'p99 ratio':>10}")
        for p in peers:
            suspect = "  !! errors, not comparable" if ramp.errors() or p.errors() else ""
            add(f"  {p.name:12} {fmt_ratio(ramp.rps() / p.rps()):>12}"
                f" {fmt_ratio(ramp.p99() / p.p99()):>10}{suspect}")
        add("req/s ratio = rampart/peer, above 1 means rampart serves more;")
        add("p99 ratio = rampart/peer, below 1 means rampart's tail latency is lower.")
    noisy = [c.name for c in ok if c.spread() > NOISY]
    if noisy:
        add("")
        add(f"!! req/s spread above {NOISY:.0%} for: {', '.join(noisy)} — the machine was busy;"
            " rerun with more rounds before trusting a ratio near 1.")
    flagged = [c.name for c in ok if c.errors()]
    if flagged:
        add("")
        add(f"!! errors during load from: {', '.join(flagged)} — their numbers are not"
            " comparable until that is fixed.")
    add("")
    add("Read the ratios, not the absolute numbers: wrk, the proxy and the backend share this")
    add("machine's cores, so only figures from one run, measured side by side, compare.")
    add("")
    add("per round (req/s, p99):")
    for c in ok:
        runs = "  ".join(f"{r['rps']:.0f}/{r['p99_ms']:.2f}ms" for r in c.runs)
        add(f"  {c.name:8} {runs}")
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
        ports = free_ports(len(cs) + 1)
        backend_port = ports[0]
        for c, port in zip(cs, ports[1:]):
            c.port = port
        log(f"bench: temp dir {tmp}; backend nginx on 127.0.0.1:{backend_port}")
        servers.append(start_backend(tmp, backend_port))
        for c in cs:
            start_contender(c, tmp, backend_port)
            if c.server:
                servers.append(c.server)
            shown = f"127.0.0.1:{c.port}" if c.status == "ok" else c.status
            log(f"bench: {c.name:8} {shown}")
        live = [c for c in cs if c.status == "ok"]
        if not live:
            raise RuntimeError("no contender started")
        if WARMUP:
            for c in live:
                try:
                    run_wrk(c.port, WARMUP)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    c.status = f"failed under load: {e}"
                    log(f"bench: warm-up  {c.name:8} {c.status}")
        for rnd in range(ROUNDS):
            k = rnd % len(live)
            for c in live[k:] + live[:k]:
                if c.status != "ok":
                    continue
                if not c.server.alive():
                    c.status = f"failed: exited with status {c.server.proc.returncode} under load"
                    continue
                try:
                    run = run_wrk(c.port, DURATION)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    c.status = f"failed under load: {e}"
                    log(f"bench: round {rnd + 1}/{ROUNDS} {c.name:8} {c.status}")
                    continue
                c.runs.append(run)
                errs = " ERRORS " + str(run["errors"]) if run["errors"] else ""
                log(f"bench: round {rnd + 1}/{ROUNDS} {c.name:8} {run['rps']:>9.0f} req/s"
                    f"  p99 {run['p99_ms']:.2f}ms{errs}")
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
