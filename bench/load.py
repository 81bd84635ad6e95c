"""The load runners: one wrk run (plain, tls, gzip, lc scenarios) or one h2load run
(h2 scenario), their output parsed into a dict of figures, and the accounting around
each run: the CPU seconds of the proxy's and the backend's process groups and of the
load generator, and the TCP connections the machine accepted meanwhile.
"""
import math
import os
import re
import resource
import subprocess
import threading

import common
from common import (CONNECTIONS, GZIP_PATH, H2_CONNECTIONS, H2_STREAMS, H2_WARMUP, H2LOAD,
                    TLS_CONNECTIONS, WRK)
from idle import upstream_conns


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


def snapshot(pgid):
    """Connections accepted so far, and CPU seconds of the proxy (group pgid) and
    of the backend."""
    proxy, backend = group_cpu(pgid, common.BACKEND_PGID)
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
    per_server = upstream_conns(pgid, common.LC_BACKEND_PORTS) if scenario == "lc" else None
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
