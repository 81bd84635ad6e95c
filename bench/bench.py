#!/usr/bin/python3
"""Benchmark rampart, nginx, HAProxy and h2o side by side as reverse proxies.

Every contender runs with one worker (or one thread) and upstream keep-alive
(HTTP/1.1), in front of the same nginx backend on loopback. Five scenarios:
"plain" (keep-alive HTTP/1.1 over TCP), "tls" (a new TLS connection for every
request, the same ECDSA P-256 certificate for all, no session resumption), "h2"
(HTTP/2 over TLS, negotiated by ALPN, a few long-lived connections with several
streams each), "gzip" (plain, with a 24 KB JSON body compressed on the fly at gzip
level 1), "lc" (plain, balanced by least connections over an upstream group of 4
servers), "pp" (plain, through an L4 balancer, HAProxy in mode tcp, that sends each
connection's PROXY protocol v2 header; the proxies take the client address from it) and
"idle" (the worker's memory per idle connection: thousands of
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
  BENCH_SCENARIOS    which scenarios, comma-separated: plain, tls, h2, gzip, lc, pp, idle (default all)
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
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# The rest of the bench, one module per concern, beside this file: common (the
# environment, constants, small helpers and the run's shared state), servers (the
# backend, the contenders and their checks), load (wrk, h2load, CPU accounting), idle
# (the idle scenario's connections and memory readings) and report (the text).
import common
from common import (DURATION, H2_WARMUP, H2LOAD, IDLE_CONNECTIONS, IDLE_KINDS, IDLE_ROUNDS,
                    LC_SERVERS, LISTENERS, LOAD_SCENARIOS, RESULTS, ROUNDS, SCENARIOS,
                    SSL_LISTENERS, WARMUP, WRK, free_ports, log)
from idle import IdleError, h2, measure_idle
from load import run_h2load, run_wrk
from report import fmt_ms, report
from servers import (MAX_CONNECTIONS, contenders, failed_start, launch, make_certificate,
                     start_backend, start_contender, start_front, start_redis)


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
    backend = redis = front = None
    clear_logs()
    cs = contenders(tmp)
    try:
        listeners = ["plain"] + LISTENERS + (["pp_back"] if "pp" in LISTENERS else [])
        lc_servers = LC_SERVERS if "lc" in LISTENERS else 0
        ports = free_ports(2 + lc_servers + len(cs) * len(listeners))
        backend_port = ports.pop(0)
        common.REDIS_PORT = ports.pop(0)
        common.LC_BACKEND_PORTS[:] = [ports.pop(0) for _ in range(lc_servers)]
        for c in cs:
            for s in listeners:
                c.ports[s] = ports.pop(0)
        lc_text = (f" (lc: also {', '.join(map(str, common.LC_BACKEND_PORTS))})"
                   if common.LC_BACKEND_PORTS else "")
        log(f"bench: temp dir {tmp}; backend nginx on 127.0.0.1:{backend_port}{lc_text};"
            f" scenarios {', '.join(SCENARIOS)}")
        tls_files = make_certificate(tmp) if set(LISTENERS) & set(SSL_LISTENERS) else {}
        backend = start_backend(tmp, backend_port)
        common.BACKEND_PGID = backend.proc.pid
        if "pp" in LISTENERS:
            front = start_front(tmp, cs)
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
        for server in [c.server for c in reversed(cs)] + [front, backend, redis]:
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
