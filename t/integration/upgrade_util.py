"""What the binary upgrade tests share: a rampart started from a copy of the binary
(so the test can replace the file and see the new one exec'd), the masters an upgrade
starts (found through the pid file, stopped by pid at the end), and HTTP/1.1 clients
that count every request.

The HTTP/1.1 clients retry a request once when a reused keep-alive connection closes
before any byte of the answer came back, as curl and browsers do (RFC 9112 9.3.1): a
draining worker closes idle keep-alive connections, and that race is the client's to
absorb. Anything else (a refused connection, a reset after bytes came, an error status,
a second failure) counts as a failed request.
"""

import http.client
import os
import re
import shutil
import signal
import threading
import time

import harness
from harness import wait_for


def copy_binary(folder):
    """A copy of the built binary under folder, which rampart is started from."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "rampart"
    shutil.copy2(harness.BIN, path)
    return path


def replace_binary(path):
    """Puts a new file at path, as an install does (a rename: the running one's inode
    stays, so its /proc/PID/exe says "(deleted)")."""
    tmp = path.with_name(path.name + ".new")
    shutil.copy2(harness.BIN, tmp)
    os.replace(tmp, path)


def exe_of(pid):
    return os.readlink(f"/proc/{pid}/exe")


def pid_in(path):
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


class Masters:
    """The masters of one prefix across upgrades: r is the harness.Rampart whose
    Popen is the first one."""

    def __init__(self, r):
        self.r = r
        self.started = []  # pids of the masters upgrades started

    @property
    def oldbin(self):
        return r_oldbin(self.r)

    def current(self):
        return pid_in(self.r.pid_file)

    def workers_of(self, pid):
        return harness.children_of(pid)

    def usr2(self, old, workers, timeout=15.0):
        """USR2 to old; waits for the new master to write the pid file and serve with
        its workers and helper. Returns the new master's pid."""
        mark = self.r.log_size()
        os.kill(old, signal.SIGUSR2)
        new = wait_for(lambda: (p := pid_in(self.r.pid_file)) not in (None, old) and p,
                       timeout=timeout, what="the new master's pid file")
        self.started.append(new)
        self.r.wait_log(rf"\b{new}#0: started {workers} worker processes", since=mark,
                        timeout=timeout)
        wait_for(lambda: len(harness.children_of(new)) >= workers + 1, timeout=timeout,
                 what="the new master's children")
        return new

    def winch(self, old, new, timeout=30.0):
        """WINCH to old: waits until its only child left is the new master."""
        os.kill(old, signal.SIGWINCH)
        wait_for(lambda: set(harness.children_of(old)) <= {new}, timeout=timeout,
                 what=f"the workers of {old} to exit")

    def quit(self, pid, timeout=30.0):
        os.kill(pid, signal.SIGQUIT)
        wait_for(lambda: not alive(pid), timeout=timeout, what=f"master {pid} to exit")

    def cleanup(self):
        for pid in self.started:
            if alive(pid) and self._ours(pid):
                kids = harness.children_of(pid)
                os.kill(pid, signal.SIGQUIT)
                try:
                    wait_for(lambda: not alive(pid), timeout=15)
                except harness.RampartError:
                    os.kill(pid, signal.SIGKILL)
                for k in kids:
                    if alive(k) and self._ours(k):
                        os.kill(k, signal.SIGKILL)

    def _ours(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return str(self.r.prefix).encode() in f.read()
        except OSError:
            return False


def r_oldbin(r):
    return r.pid_file.with_name(r.pid_file.name + ".oldbin")


def alive(pid):
    """pid runs (a zombie does not: the old master may not have reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class H1Load:
    """Threads sending GETs to port until stopped: `keepalive` of them on keep-alive
    connections, `fresh` of them on a new connection per request."""

    def __init__(self, port, path="/", keepalive=2, fresh=1, pause=0.002):
        self.port, self.path, self.pause = port, path, pause
        self.ok = 0
        self.retried = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(True,), daemon=True)
                        for _ in range(keepalive)]
        self.threads += [threading.Thread(target=self._run, args=(False,), daemon=True)
                         for _ in range(fresh)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def _one(self, conn):
        conn.request("GET", self.path, headers={"Host": "localhost"})
        resp = conn.getresponse()
        body = resp.read()
        return resp, body

    def _run(self, keepalive):
        conn = None
        served = 0  # requests the current connection answered
        while not self.stopping.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                served = 0
            try:
                try:
                    resp, body = self._one(conn)
                except (http.client.RemoteDisconnected, ConnectionResetError,
                        BrokenPipeError) as e:
                    if served == 0:
                        raise
                    # the reused connection closed before answering: once more, afresh
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                    served = 0
                    with self.lock:
                        self.retried += 1
                    resp, body = self._one(conn)
                served += 1
                with self.lock:
                    if resp.status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {resp.status}: {body[:80]!r}")
                if not keepalive or resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001: every failure is counted and shown
                with self.lock:
                    self.failures.append(f"{type(e).__name__}: {e}")
                if conn:
                    conn.close()
                conn = None
            time.sleep(self.pause)
        if conn:
            conn.close()


def remaining(port, path):
    """The limit_count quota left, from a request's X-Remaining header."""
    r = harness.get(port, path, headers={"Connection": "close"})
    assert r.status == 200, r
    return int(r.headers["X-Remaining"])


def log_pids(text, pattern):
    return [int(m.group(1)) for m in re.finditer(pattern, text)]
