#!/usr/bin/python3
"""Location choice at scale: rampart beside nginx, one worker each, `return 200` in
the chosen location, so what differs between sizes is the cost of choosing it.

Sizes: 10, 1,000 and 10,000 prefix locations (/api/v1/svcNNNN/resM/, requests spread
evenly over all of them; numbers zero-padded, so that every size sends paths of the
same length and only the choice differs), and 1,000 regex locations (~ ^/api/v2/svcN/item/(\\d+)$,
requests spread over them, beside 10 prefixes). Both servers load the same generated
configuration file (only the prefix paths in it differ). wrk (one thread, keep-alive)
loads each in turn, over several rounds whose order rotates; the report gives the
median requests/s of each and the ratios: rampart at each size to rampart at 10, and
rampart to nginx at each size. See bench/README.md.

With BENCH_INSTRUCTIONS=1 it counts instead, under valgrind's callgrind, the
instructions one more request costs in each (h2load, HTTP/1.1, 4 connections, the same
spread of paths; (Ir(N2) - Ir(N1)) / (N2 - N1), N1 = 1000, N2 = 3000): a figure a
busy machine does not disturb.

Environment: BENCH_ROUNDS (default 3), BENCH_DURATION (seconds, default 4),
BENCH_CONNECTIONS (default 32), RAMPART_BIN (default ./rampart beside bench/),
BENCH_RESULTS (default bench/results/locations.txt).
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import WRK, free_ports, log  # noqa: E402
from servers import NGINX_USER, Server  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RAMPART = os.environ.get("RAMPART_BIN", os.path.join(HERE, "..", "rampart"))
NGINX = "/usr/sbin/nginx"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "4"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(HERE, "results", "locations.txt"))
SIZES = [("prefix-10", 10, 0), ("prefix-1k", 1000, 0), ("prefix-10k", 10000, 0),
         ("regex-1k", 10, 1000)]
RESOURCES = 10  # resources per service: /api/v1/svc{i // 10}/res{i % 10}/


def prefix_path(i):
    return f"/api/v1/svc{i // RESOURCES:04d}/res{i % RESOURCES}/"


def locations(prefixes, regexes):
    out = ['location / { return 200 "root"; }']
    for i in range(prefixes):
        out.append(f'location {prefix_path(i)} {{ return 200 "p{i:05d}"; }}')
    for i in range(regexes):
        out.append(f'location ~ ^/api/v2/svc{i:04d}/item/(\\d+)$ {{ return 200 "r{i:05d}"; }}')
    return "\n        ".join(out)


def conf(prefix, port, prefixes, regexes):
    return f"""worker_processes 1;
daemon off;
pid {prefix}/run.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        {locations(prefixes, regexes)}
    }}
}}
"""


def wrk_script(path, prefixes, regexes):
    """A wrk script sending the paths in turn, spread over every location."""
    paths = paths_of(prefixes, regexes)
    with open(path, "w") as f:
        f.write("local paths = {\n")
        f.write(",\n".join(f'"{p}"' for p in paths))
        f.write("\n}\nlocal n = 0\nrequest = function()\n  n = n % #paths + 1\n"
                "  return wrk.format(\"GET\", paths[n])\nend\n")


def run_wrk(port, script):
    out = subprocess.run([WRK, "-t1", f"-c{CONNECTIONS}", f"-d{DURATION}s", "-s", script,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=DURATION + 30).stdout
    rps = errors = 0.0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "Non-2xx" in line or "Socket errors" in line:
            errors = 1
    if errors:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    return rps


def paths_of(prefixes, regexes):
    if regexes:
        return [f"/api/v2/svc{i:04d}/item/{i * 7:05d}" for i in range(regexes)]
    return [prefix_path(i) + f"x{i:05d}" for i in range(prefixes)]


def count(argv, port, pid_file, uris, n, tmp):
    """Total instructions of one server process (master_process off) over n requests."""
    out = os.path.join(tmp, "cg.out")
    vp = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or vp.poll() is not None:
                    raise RuntimeError(f"{argv[0]} did not start under valgrind")
                time.sleep(0.2)
        subprocess.run(["h2load", "--h1", "-n", str(n), "-c", "4", "-i", uris],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        with open(pid_file) as f:
            os.kill(int(f.read().split()[0]), signal.SIGQUIT)
        vp.wait(timeout=120)
    finally:
        if vp.poll() is None:
            os.killpg(vp.pid, signal.SIGKILL)
            vp.wait()
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("no callgrind totals")


def instructions():
    n1, n2 = 1000, 3000
    tmp = tempfile.mkdtemp(prefix="rampart-bench-loc-")
    per = {}
    try:
        for label, prefixes, regexes in SIZES:
            for name, binary in (("rampart", RAMPART), ("nginx", NGINX)):
                prefix = os.path.join(tmp, f"{name}-{label}")
                os.makedirs(os.path.join(prefix, "logs"))
                port = free_ports(1)[0]
                text = conf(prefix, port, prefixes, regexes).replace(
                    "daemon off;", "daemon off;\nmaster_process off;")
                path = os.path.join(prefix, "nginx.conf")
                with open(path, "w") as f:
                    f.write(text)
                uris = os.path.join(prefix, "uris.txt")
                with open(uris, "w") as f:
                    f.write("".join(f"http://127.0.0.1:{port}{p}\n"
                                    for p in paths_of(prefixes, regexes)))
                argv = [binary, "-p", prefix, "-c", path]
                if name == "nginx":
                    argv[1:1] = ["-e", os.path.join(prefix, "error.log"), *NGINX_USER]
                pid_file = os.path.join(prefix, "run.pid")
                a = count(argv, port, pid_file, uris, n1, tmp)
                b = count(argv, port, pid_file, uris, n2, tmp)
                per[(name, label)] = (b - a) / (n2 - n1)
                log(f"bench: {name:8} {label:11} {per[(name, label)]:9.0f} instructions/request")
        lines = ["locations: instructions per request (callgrind), return 200, one process",
                 f"{'size':12} {'rampart':>10} {'nginx':>10} {'r/nginx':>8} {'r/r-10':>7}"]
        base = per[("rampart", "prefix-10")]
        for label, _, _ in SIZES:
            r, n = per[("rampart", label)], per[("nginx", label)]
            lines.append(f"{label:12} {r:10.0f} {n:10.0f} {r / n:8.2f} {r / base:7.2f}")
        text = "\n".join(lines) + "\n"
        log("")
        log(text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if os.environ.get("BENCH_INSTRUCTIONS"):
        return instructions()
    if not os.access(WRK, os.X_OK):
        sys.exit("bench: wrk not found; install the Debian package wrk")
    tmp = tempfile.mkdtemp(prefix="rampart-bench-loc-")
    servers = []
    results = {}
    try:
        ports = free_ports(2 * len(SIZES))
        setups = []
        for k, (label, prefixes, regexes) in enumerate(SIZES):
            script = os.path.join(tmp, f"{label}.lua")
            wrk_script(script, prefixes, regexes)
            for name, binary in (("rampart", RAMPART), ("nginx", NGINX)):
                prefix = os.path.join(tmp, f"{name}-{label}")
                os.makedirs(os.path.join(prefix, "logs"))
                port = ports.pop(0)
                with open(os.path.join(prefix, "nginx.conf"), "w") as f:
                    f.write(conf(prefix, port, prefixes, regexes))
                argv = [binary, "-p", prefix, "-c", os.path.join(prefix, "nginx.conf")]
                if name == "nginx":
                    argv[1:1] = ["-e", os.path.join(prefix, "error.log"), *NGINX_USER]
                s = Server(f"{name}-{label}", argv, tmp)
                s.start()
                servers.append(s)
                why = s.wait_listening(port, timeout=60)
                if why:
                    raise RuntimeError(f"{name} {label}: {why}\n{open(s.output).read()}")
                setups.append((name, label, port, script))
                results[(name, label)] = []
        for rnd in range(ROUNDS):
            k = rnd % len(setups)
            for name, label, port, script in setups[k:] + setups[:k]:
                rps = run_wrk(port, script)
                results[(name, label)].append(rps)
                log(f"bench: round {rnd + 1}/{ROUNDS} {name:8} {label:11} {rps:9.0f} req/s")
        med = {key: statistics.median(v) for key, v in results.items()}
        lines = [f"locations: one worker, return 200, wrk -t1 -c{CONNECTIONS}, "
                 f"{ROUNDS} rounds of {DURATION}s, medians",
                 f"{'size':12} {'rampart':>10} {'nginx':>10} {'r/nginx':>8} {'r/r-10':>7}"]
        base = med[("rampart", "prefix-10")]
        for label, _, _ in SIZES:
            r, n = med[("rampart", label)], med[("nginx", label)]
            lines.append(f"{label:12} {r:10.0f} {n:10.0f} {r / n:8.2f} {r / base:7.2f}")
        text = "\n".join(lines) + "\n"
        log("")
        log(text)
        os.makedirs(os.path.dirname(os.path.abspath(RESULTS)), exist_ok=True)
        with open(RESULTS, "w") as f:
            f.write(text)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
