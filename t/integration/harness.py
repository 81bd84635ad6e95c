"""Helpers for rampart's integration tests: start the real binary, find its
processes, talk to it over loopback.

Everything here polls with short intervals against a deadline; nothing sleeps
for a fixed time hoping a process got somewhere. Only processes this harness
started (the master, and the children that master forked) are ever signalled,
always by pid.
"""

import http.client
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path(os.environ.get("RAMPART_SRC") or HERE.parent.parent).resolve()
BIN = Path(os.environ.get("RAMPART_BIN") or SRC / "rampart").resolve()

START_DEADLINE = 10.0
POLL = 0.02


class RampartError(AssertionError):
    pass


# Under pytest-xdist (PYTEST_JOBS=2) two test processes pick ports at once, and the
# kernel's pick for port 0 can hand both the same free port; rampart's listeners use
# SO_REUSEPORT, so both servers would then share it and answer each other's clients.
# Each xdist worker therefore takes its ports from its own range below the ephemeral
# ones (10000 + 2000 x worker number, wrapping), skipping any in use.
_XDIST = os.environ.get("PYTEST_XDIST_WORKER", "")
_next_port = 0


def _port_range():
    """This process's own range of ports, below the kernel's ephemeral range: a port the
    kernel picks for port 0 can be handed out again at once as the local port of some
    outgoing connection (a readiness probe's, an upstream connection's), and a server
    started later on it then fails to bind. Each xdist worker takes 2000 ports from
    10000; a serial run takes the 6000 below the ephemeral range. None when the
    ephemeral range leaves no room (then the kernel picks)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    if _XDIST.startswith("gw"):
        base, span = 10000 + 2000 * int(_XDIST[2:]), 2000
    else:
        base, span = low - 6000, 6000
    if base < 1024 or base + span > low:
        return None
    return base, span


_RANGE = _port_range()


def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now: the next free one of this process's range
    (see _port_range), or the kernel's pick for port 0 when there is none."""
    global _next_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if _RANGE is None:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    base, span = _RANGE
    for _ in range(span):
        port = base + _next_port % span
        _next_port += 1
        with socket.socket(family, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}..{base + span - 1}")


def wait_for(predicate, timeout=5.0, interval=POLL, what="condition"):
    """Polls predicate until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RampartError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_escalating(proc, steps=((signal.SIGQUIT, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5))):
    """Signals proc (a Popen this test run started) with each signal of steps in turn,
    waiting up to its grace in seconds, until it has exited."""
    for sig, grace in steps:
        if proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue


def sweep(pids, is_ours, what="child"):
    """Waits for each pid that is_ours(pid) still says is one of ours to exit; one that
    does not within 5 s gets SIGKILL (by pid: never a process of someone else's)."""
    for pid in sorted(pids):
        try:
            wait_for(lambda: not is_ours(pid), timeout=5, what=f"{what} {pid} to exit")
        except RampartError:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run(*args, cwd=None, timeout=10):
    """Runs the rampart binary with args (e.g. -t) and returns the CompletedProcess."""
    return subprocess.run([str(BIN), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def children_of(ppid):
    """Live (non-zombie) child pids of ppid, in pid order."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        if int(rest[1]) == ppid and rest[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def _socket_inodes(pid):
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(link[8:-1])
    return found


def fd_targets(pid):
    """Paths the open descriptors of pid point to."""
    out = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


_SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")
_DIED_RE = re.compile(r"(worker|helper) process (\d+) exited on signal \d+[^\n]*")

_LISTEN_RE = re.compile(r"^\s*listen\s+([^\s;]+)", re.M)


def listen_addresses(conf_text):
    """(host, port) of every `listen` in a configuration text."""
    out = []
    for addr in _LISTEN_RE.findall(conf_text):
        if addr.startswith("["):
            host, port = addr[1:].split("]:")
        elif ":" in addr:
            host, port = addr.rsplit(":", 1)
        else:
            host, port = "127.0.0.1", addr
        if host in ("*", "0.0.0.0", ""):
            host = "127.0.0.1"
        out.append((host, int(port)))
    return out


class Rampart:
    """One rampart master started in the foreground from a temporary prefix.

    The configuration lives in PREFIX/rampart.conf (a test may point conf_path
    elsewhere under the prefix: -c names it relative to the prefix); the error log
    in PREFIX/logs/error.log; the pid file in PREFIX/logs/rampart.pid.
    """

    def __init__(self, prefix):
        self.prefix = Path(prefix)
        self.conf_path = self.prefix / "rampart.conf"
        self.error_log = self.prefix / "logs" / "error.log"
        self.pid_file = self.prefix / "logs" / "rampart.pid"
        self.stderr_path = self.prefix / "stderr.txt"
        self.proc = None
        self.seen_pids = set()
        self.killed = set()  # children the test itself killed: their deaths are expected
        self.conf_text = ""

    # -- configuration -------------------------------------------------

    def render(self, http=None, workers=1, main="", log_level="info"):
        """The text of a configuration: the managed main-context lines, `main`, then http{}."""
        text = (f"worker_processes {workers};\n"
                f"error_log logs/error.log {log_level};\n"
                f"pid logs/rampart.pid;\n")
        if main:
            text += main.rstrip() + "\n"
        if http is not None:
            text += "http {\n" + http.rstrip() + "\n}\n"
        return text

    def configure(self, http=None, workers=1, main="", log_level="info", text=None):
        """Writes the configuration: `text` verbatim, or render()ed from the parts."""
        if text is None:
            text = self.render(http, workers=workers, main=main, log_level=log_level)
        self.conf_text = text
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.conf_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.conf_path)  # a reload never sees a half-written file
        return self.conf_path

    @property
    def ports(self):
        return [port for _, port in listen_addresses(self.conf_text)]

    @property
    def port(self):
        return self.ports[0]

    # -- lifecycle -----------------------------------------------------

    def start(self, wait=True, wrap=()):
        """Starts the master in the foreground; by default waits until it serves. wrap: a
        command that execs the rest of its arguments (the same pid goes on as rampart),
        e.g. to start it in namespaces of its own."""
        assert self.proc is None, "already started"
        (self.prefix / "logs").mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "wb")
        conf = self.conf_path.relative_to(self.prefix)
        self.proc = subprocess.Popen(
            [*map(str, wrap), str(BIN), "-p", str(self.prefix), "-c", str(conf)],
            cwd=self.prefix, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=self._stderr)
        self.seen_pids.add(self.proc.pid)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_DEADLINE):
        """Waits for the pid file, a TCP connect on every listen address, and all children."""
        deadline = time.monotonic() + timeout
        addrs = listen_addresses(self.conf_text)
        pending = list(addrs)
        while True:
            if self.proc.poll() is not None:
                raise RampartError(
                    f"rampart exited early with code {self.proc.returncode}\n"
                    f"--- stderr ---\n{self.stderr_text()}\n--- error log ---\n{self.log_text()}")
            if self._pid_file_is_ours():
                pending = [a for a in pending if not _connects(a)]
                if not pending and len(self.children()) >= self.expected_children():
                    return
            if time.monotonic() > deadline:
                raise RampartError(
                    f"rampart did not become ready in {timeout}s (still closed: {pending})\n"
                    f"--- stderr ---\n{self.stderr_text()}\n--- error log ---\n{self.log_text()}")
            time.sleep(POLL)

    def _pid_file_is_ours(self):
        try:
            return int(self.pid_file.read_text().strip()) == self.proc.pid
        except (OSError, ValueError):
            return False

    def expected_children(self):
        """Workers plus the helper; none when one process serves (master_process off)."""
        if re.search(r"^\s*master_process\s+off;", self.conf_text, re.M):
            return 0
        return self.expected_workers() + 1

    def expected_workers(self):
        m = re.search(r"^\s*worker_processes\s+(\S+);", self.conf_text, re.M)
        if m is None:
            return 1
        return os.cpu_count() if m.group(1) == "auto" else int(m.group(1))

    @property
    def pid(self):
        """The master's pid."""
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.remember_children()
        os.kill(self.proc.pid, sig)

    def reload(self, wait=True):
        """Sends HUP; by default waits until the master logs the reload's outcome."""
        mark = self.log_size()
        self.signal(signal.SIGHUP)
        if wait:
            return self.wait_log(r"configuration reloaded \(generation \d+\)|reload failed",
                                 since=mark)
        return None

    def wait_exit(self, timeout=10.0):
        """Waits for the master to exit and returns its exit code."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RampartError(f"rampart {self.proc.pid} did not exit in {timeout}s") from None

    def stop(self):
        """QUIT, then TERM, then KILL the master we started; then sweep its children."""
        if self.proc is None:
            return
        self.remember_children()
        stop_escalating(self.proc)
        # Children die with their master (PR_SET_PDEATHSIG); make sure, by pid, and only ours.
        sweep(self.seen_pids - {self.proc.pid}, self._is_ours)
        self._stderr.close()

    def _is_ours(self, pid):
        """pid is alive and still a rampart started with our prefix (not a reused pid)."""
        if not pid_alive(pid):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            return False
        return str(BIN).encode() in argv and str(self.prefix).encode() in argv

    def problems(self):
        """What went wrong that no test asked for: sanitizer reports on stderr, and children
        that died on a signal nobody sent them (a crash the master quietly replaced)."""
        found = [line for line in self.stderr_text().splitlines()
                 if _SANITIZER_RE.search(line)]
        for m in _DIED_RE.finditer(self.log_text()):
            if int(m.group(2)) not in self.killed:
                found.append(m.group(0))
        return found

    # -- processes -----------------------------------------------------

    def kill(self, pid, sig=None):
        """Sends sig (default SIGKILL) to one of our children, and expects its death."""
        assert pid in self.children(), f"{pid} is not a child of rampart {self.proc.pid}"
        self.killed.add(pid)
        os.kill(pid, signal.SIGKILL if sig is None else sig)

    def children(self):
        kids = children_of(self.proc.pid)
        self.seen_pids.update(kids)
        return kids

    def remember_children(self):
        if self.running():
            self.children()

    def roles(self):
        """(workers, others): children holding a listening socket of ours, and the rest.

        The master's only sockets are the listeners of the current generation. A worker
        keeps its own SO_REUSEPORT listener; the helper closes every listener right after
        fork, and a draining worker closes its listener on QUIT.
        """
        listeners = _socket_inodes(self.proc.pid)
        workers, others = [], []
        for pid in self.children():
            (workers if _socket_inodes(pid) & listeners else others).append(pid)
        return workers, others

    def wait_processes(self, workers, helpers=1, timeout=5.0, exclude=()):
        """Waits until exactly `workers` workers and `helpers` other children run, none of
        them in exclude; returns (workers, helper pids)."""
        def settled():
            w, o = self.roles()
            if len(w) == workers and len(o) == helpers and not set(w + o) & set(exclude):
                return w, o
            return None
        return wait_for(settled, timeout=timeout,
                        what=f"{workers} workers and {helpers} helper(s) (have {self.roles()})")

    # -- logs ----------------------------------------------------------

    def log_text(self):
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern, since=0, timeout=5.0):
        """Waits for a line matching pattern in the error log after byte offset since."""
        rx = re.compile(pattern)

        def found():
            with open(self.error_log, "rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
            return rx.search(text)
        return wait_for(found, timeout=timeout, what=f"/{pattern}/ in {self.error_log}")


def _connects(addr):
    host, port = addr
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


# -- HTTP clients ------------------------------------------------------------


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage: case-insensitive
        self.body = body
        self.version = version

    @property
    def text(self):
        return self.body.decode()

    def __repr__(self):
        return f"<Response {self.status} {self.body[:60]!r}>"


def request(port, path="/", method="GET", host="localhost", headers=None, body=None,
            addr="127.0.0.1", timeout=5.0):
    """One request on a fresh connection; returns a Response."""
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        hdrs = {"Host": host} if host is not None else {}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.headers, data, r.version)
    finally:
        conn.close()


def get(port, path="/", **kw):
    return request(port, path, **kw)


def raw_exchange(port, data, addr="127.0.0.1", timeout=5.0):
    """Sends bytes on a fresh connection and reads until the server closes it."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((addr, port))
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def split_responses(data):
    """Splits a byte stream of HTTP/1 responses framed by Content-Length (no HEAD)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"incomplete response head: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        n = int(headers.get("content-length", "0"))
        out.append((lines[0], headers, rest[:n]))
        data = rest[n:]
    return out
