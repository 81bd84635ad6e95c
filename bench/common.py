"""The bench's settings and the small helpers every part of it uses.

The environment (BENCH_*, RAMPART_BIN, see bench.py) is read once, when this module is
first imported: the rounds, durations and connection counts, the scenarios and the
listeners they need, the tools' paths. Also log(), free_ports(), client_context(), and
the state of one run that bench.py's main() fills in once the servers run
(BACKEND_PGID, LC_BACKEND_PORTS, REDIS_PORT): the other modules read those as
common.NAME, so that all see the one value main() set.
"""
import os
import shutil
import socket
import ssl
import sys


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
ALL_SCENARIOS = ("plain", "tls", "h2", "gzip", "lc", "pp", "idle")
LOAD_SCENARIOS = ("plain", "tls", "h2", "gzip", "lc", "pp")  # the ones wrk or h2load loads
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
    return [name for name in ("tls", "h2", "gzip", "lc", "pp") if name in need]


LISTENERS = extra_listeners()
TITLES = {
    "plain": "plain: HTTP/1.1 keep-alive",
    "tls": "tls: new TLS connection per request (one request each, Connection: close)",
    "h2": "h2: HTTP/2 over TLS (ALPN h2), long-lived connections, several streams each",
    "gzip": "gzip: HTTP/1.1 keep-alive, JSON body compressed on the fly (gzip level 1)",
    "lc": f"lc: HTTP/1.1 keep-alive, least-connections balancing over {LC_SERVERS} servers",
    "pp": "pp: HTTP/1.1 keep-alive through an L4 balancer (HAProxy, mode tcp, send-proxy-v2)",
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


def client_context():
    """A client context that accepts the self-signed bench certificate."""
    ctx = ssl._create_unverified_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# The state of one run, set by bench.py's main(); read it as common.NAME.
BACKEND_PGID = None  # the backend's process group, once it runs
LC_BACKEND_PORTS = []  # the backend's ports that are the lc scenario's servers, once picked
REDIS_PORT = 0  # the redis-server of rampart-sync, once picked
