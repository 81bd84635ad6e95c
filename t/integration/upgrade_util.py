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


def _goaway_aware_client():
    import struct

    import h2.events
    from h2client import H2Client

    class Client(H2Client):
        """python3-h2 closes its state machine at a GOAWAY and then refuses the answers
        of the streams the GOAWAY lets finish; this client keeps GOAWAY frames from it,
        noting the last stream id, and reads on."""

        def __init__(self, *a, **kw):
            self.pending = b""
            super().__init__(*a, **kw)

        def _read(self, streams):
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed by rampart")
            buf = self.pending + data
            keep, pos = bytearray(), 0
            while len(buf) - pos >= 9:
                length = int.from_bytes(buf[pos:pos + 3], "big")
                if len(buf) - pos < 9 + length:
                    break
                ftype = buf[pos + 3]
                frame = buf[pos:pos + 9 + length]
                if ftype == 7:  # GOAWAY
                    last = struct.unpack("!I", frame[9:13])[0] & 0x7FFFFFFF
                    ev = h2.events.ConnectionTerminated()
                    ev.last_stream_id = last
                    ev.error_code = struct.unpack("!I", frame[13:17])[0]
                    self.goaway = ev
                else:
                    keep += frame
                pos += 9 + length
            self.pending = buf[pos:]
            if keep:
                self._events(bytes(keep), streams)

        def _events(self, data, streams):
            """What H2Client._read does with the bytes it received."""
            for ev in self.h2.receive_data(data):
                sid = getattr(ev, "stream_id", None)
                r = streams.get(sid)
                if isinstance(ev, h2.events.ResponseReceived) and r is not None:
                    r.headers = list(ev.headers)
                    r.status = int(dict(r.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    if r is not None:
                        r.body += ev.data
                    if ev.flow_controlled_length:
                        self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded) and r is not None:
                    r.ended = True
                elif isinstance(ev, h2.events.StreamReset) and r is not None:
                    r.reset = ev.error_code
                    r.ended = True
            self.flush()
    return Client


def GoawayAwareClient(*a, **kw):
    return _goaway_aware_client()(*a, **kw)


class H2Load:
    """HTTP/2 (python3-h2, h2c prior knowledge) from `threads` threads until stopped, each
    with `streams` requests at once on its connection. A GOAWAY ends a connection the
    way RFC 9113 6.8 says: streams above its last stream id were not processed, and are
    sent again on a new connection (counted in retried); every other stream must end
    with a 200. h2load does not reconnect after a GOAWAY in its timed mode, so it could
    not load a run that spans reloads."""

    def __init__(self, port, path="/", threads=2, streams=4):
        self.port, self.path, self.streams = port, path, streams
        self.ok = 0
        self.retried = 0
        self.connections = 0
        self.failures = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def _batch(self, conn, n):
        """Sends n requests at once; returns (ok, refused, failures)."""
        from h2client import H2Response
        streams = {}
        hdrs = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                (":path", self.path)]
        broken = None
        try:
            for _ in range(n):
                sid = conn.h2.get_next_available_stream_id()
                conn.h2.send_headers(sid, hdrs, end_stream=True)
                streams[sid] = H2Response()
            conn.flush()
            deadline = time.monotonic() + 20
            while not all(r.ended for r in streams.values()):
                if time.monotonic() > deadline:
                    raise TimeoutError("responses incomplete")
                conn._read(streams)
        except (EOFError, OSError) as e:
            broken = e
        last = conn.goaway.last_stream_id if conn.goaway is not None else None
        ok, refused, failures = 0, 0, []
        for sid, r in streams.items():
            if r.ended and r.reset is None and r.status == 200:
                ok += 1
            elif r.reset == 7 or (last is not None and sid > last and r.status is None):
                refused += 1  # REFUSED_STREAM, or above the GOAWAY's last id: not processed
            else:
                failures.append(f"h2 stream {sid}: {r!r} last={last} {broken!r}")
        if len(streams) < n:  # never sent: the connection was done
            refused += n - len(streams)
        return ok, refused, failures, broken is not None or conn.goaway is not None

    def _run(self):
        import select
        conn, carry = None, 0
        while not self.stopping.is_set() or carry:
            try:
                if conn is None:
                    conn = GoawayAwareClient(self.port, timeout=20)
                    with self.lock:
                        self.connections += 1
                # a GOAWAY that came while the connection was idle is read first
                while select.select([conn.sock], [], [], 0)[0]:
                    conn._read({})
                if conn.goaway is not None:
                    raise EOFError("GOAWAY while idle")
            except (EOFError, OSError):
                if conn:
                    conn.close()
                conn = None
                continue
            n = carry or self.streams
            ok, refused, failures, done = self._batch(conn, n)
            with self.lock:
                self.ok += ok
                self.retried += refused
                self.failures += failures
            carry = refused
            if done:
                conn.close()
                conn = None
            time.sleep(0.002)
        if conn:
            conn.close()
