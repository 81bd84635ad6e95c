"""The idle scenario: the worker's memory per idle connection.

IdleConn is one non-blocking client connection (HTTP/1.1, TLS or HTTP/2 with the
python3-h2 package) that completes one verified request and then stays idle;
open_idle() opens thousands of them, and measure_idle() reads the worker's memory
before and after. Also the /proc readers of which process holds which socket
(group_sockets, socket_holder, upstream_conns); the lc scenario's checks and wrk runs
use upstream_conns too.
"""
import errno
import os
import select
import selectors
import socket
import ssl
import time

from common import BODY, IDLE_CONNECTIONS, IDLE_WARMUP, IDLE_WINDOW, client_context

try:  # python3-h2, for the idle scenario's HTTP/2 connections
    import h2.events
    import h2.exceptions
    from h2.config import H2Configuration
    from h2.connection import H2Connection
except ImportError:
    h2 = None


class IdleError(Exception):
    """Why a measurement of the idle scenario has no figure."""


def parse_http1(buf):
    """Status, headers and body of the HTTP/1.1 response at the start of buf, or None
    while it is incomplete. Raises IdleError for an answer whose end cannot be told."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        raise IdleError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    rest = bytes(buf[end + 4:])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            eol = rest.find(b"\r\n")
            if eol < 0:
                return None
            size = int(rest[:eol].split(b";")[0], 16)
            if len(rest) < eol + 2 + size + 2:
                return None
            body += rest[eol + 2:eol + 2 + size]
            rest = rest[eol + 2 + size + 2:]
            if size == 0:
                return status, headers, body
    if "content-length" not in headers:
        raise IdleError("response without Content-Length or chunked encoding")
    length = int(headers["content-length"])
    return (status, headers, rest[:length]) if len(rest) >= length else None


class IdleConn:
    """One client connection of the idle scenario: connect, TLS handshake (kinds tls
    and h2), one GET / (HTTP/1.1, or a stream of HTTP/2 with the h2 package), check that
    the answer is a 200 with the backend's body, then nothing. Non-blocking: step()
    advances it as far as it can and returns the selector events it waits for, or 0
    once it is idle; it raises IdleError (or OSError, ssl.SSLError) when it fails."""

    def __init__(self, kind, port, ctx):
        self.kind = kind
        self.ctx = ctx
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.state = "connect"
        self.out = b""
        self.inp = bytearray()
        self.h2 = None
        self.status = None
        self.body = b""
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            self.sock.close()
            raise IdleError(f"connect: {os.strerror(err)}")

    def step(self):
        if self.state == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise IdleError(f"connect: {os.strerror(err)}")
            if self.kind == "plain":
                self.out = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
                self.state = "exchange"
            else:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="bench.test",
                                                 do_handshake_on_connect=False)
                self.state = "handshake"
        if self.state == "handshake":
            try:
                self.sock.do_handshake()
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            alpn = self.sock.selected_alpn_protocol()
            if self.kind == "h2":
                if alpn != "h2":
                    raise IdleError(f"ALPN selected {alpn or 'nothing'}, not h2")
                self.h2 = H2Connection(H2Configuration(client_side=True,
                                                       header_encoding="utf-8"))
                self.h2.initiate_connection()
                self.h2.send_headers(1, [(":method", "GET"), (":scheme", "https"),
                                         (":authority", "bench.test"), (":path", "/")],
                                     end_stream=True)
                self.out = self.h2.data_to_send()
            else:
                self.out = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
            self.state = "exchange"
        # exchange: write what is pending, read until the response is complete; then
        # flush what is left (h2: acknowledgements), and the connection is idle.
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, ssl.SSLWantWriteError):
                return selectors.EVENT_WRITE
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            self.out = self.out[n:]
        while self.state == "exchange":
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError):
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            if not data:
                raise IdleError("closed by the server before the response ended")
            if self.h2:
                self.receive_h2(data)
            else:
                self.inp += data
                done = parse_http1(self.inp)
                if done:
                    self.status, headers, self.body = done
                    if "close" in headers.get("connection", "").lower():
                        raise IdleError("answered with Connection: close")
                    self.state = "done"
            if self.state == "done":
                if self.status != 200 or self.body != BODY.encode():
                    raise IdleError(f"wrong answer: {self.status} {self.body[:80]!r}")
                return self.step() if self.out else 0
        return 0

    def receive_h2(self, data):
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.status = int(dict(event.headers).get(":status", 0))
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length,
                                                  event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.state = "done"
            elif isinstance(event, h2.events.StreamReset):
                raise IdleError(f"stream reset, error code {event.error_code}")
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise IdleError(f"GOAWAY, error code {event.error_code}")
        self.out += self.h2.data_to_send()

    def close(self):
        self.sock.close()


def idle_context(kind):
    """The client TLS context of kind: ALPN http/1.1 for tls, h2 for h2."""
    ctx = client_context()
    ctx.set_alpn_protocols(["h2"] if kind == "h2" else ["http/1.1"])
    return ctx


def open_idle(kind, port, n, timeout):
    """n connections of kind to port, each idle after one verified request. At most
    IDLE_WINDOW are being set up at once, so thousands of TLS handshakes neither
    overflow a listen backlog nor wait on each other. Raises IdleError (after
    closing them all) when one fails or the lot takes longer than timeout."""
    ctx = None if kind == "plain" else idle_context(kind)
    sel = selectors.DefaultSelector()
    busy, idle = {}, []
    started = 0
    deadline = time.monotonic() + timeout
    try:
        while len(idle) < n:
            while started < n and len(busy) < IDLE_WINDOW:
                conn = IdleConn(kind, port, ctx)
                started += 1
                busy[conn.fd] = conn
                sel.register(conn.fd, selectors.EVENT_WRITE, conn)
            if time.monotonic() > deadline:
                raise IdleError(f"{n - len(idle)} of {n} connections not through their request"
                                f" after {timeout:.0f}s")
            for key, _ in sel.select(timeout=1.0):
                conn = key.data
                try:
                    wants = conn.step()
                except (IdleError, OSError, h2.exceptions.ProtocolError) as e:
                    raise IdleError(f"a {kind} connection failed ({len(idle)} of {n} were"
                                    f" idle): {e}")
                if wants:
                    sel.modify(conn.fd, wants, conn)
                else:
                    sel.unregister(conn.fd)
                    del busy[conn.fd]
                    idle.append(conn)
        return idle
    except BaseException:
        close_all(idle + list(busy.values()))
        raise
    finally:
        sel.close()


def close_all(conns):
    for conn in conns:
        conn.close()


def closed_by_peer(conns):
    """How many of conns the server has closed (or reset) since they went idle."""
    poller = select.poll()
    for conn in conns:
        poller.register(conn.fd, select.POLLRDHUP)
    return sum(1 for _, ev in poller.poll(0)
               if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR))


def group_sockets(pgid):
    """pid -> the inodes of the sockets it holds, for every process of group pgid."""
    held = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[2]) != pgid:
                    continue
            links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except (OSError, ValueError):
            continue
        held[int(pid)] = {link[8:-1] for link in links if link.startswith("socket:[")}
    return held


def socket_holder(pgid, port, conn):
    """The pid of the process in group pgid that holds the server end of conn's
    connection to port (found through its socket's inode in /proc/net/tcp), or None:
    the worker, whatever the contender's process layout (master, helper, threads)."""
    mine = conn.sock.getsockname()[1]
    server_end = (f"0100007F:{port:04X}", f"0100007F:{mine:04X}")
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            if (fields[1], fields[2]) == server_end:
                inode = fields[9]
                break
    if inode is None:
        return None
    return next((pid for pid, inodes in group_sockets(pgid).items() if inode in inodes), None)


def upstream_conns(pgid, ports):
    """How many established connections the processes of group pgid hold to each of
    ports on loopback, in the order of ports: in the lc scenario, the proxy's
    connections to each server of its upstream group (other contenders' pools to the
    same ports are told apart by their sockets' inodes)."""
    mine = set().union(*group_sockets(pgid).values())
    index = {f"0100007F:{port:04X}": i for i, port in enumerate(ports)}
    counts = [0] * len(ports)
    with open("/proc/net/tcp") as f:
        for line in f:
            fields = line.split()
            # remote address, state 01 (ESTABLISHED), inode
            if fields[2] in index and fields[3] == "01" and fields[9] in mine:
                counts[index[fields[2]]] += 1
    return counts


def memory(pid):
    """pid's Rss, Pss and Private_Dirty in bytes (/proc/PID/smaps_rollup), and its
    number of open files."""
    figures = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Rss", "Pss", "Private_Dirty"):
                figures[name.lower()] = int(rest.split()[0]) * 1024
    figures["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return figures


def settled_memory(pid, timeout=5.0):
    """memory(pid) once it has stopped changing (two reads 0.2 s apart agree, the
    open files included, so the server has handled every close), or the last read."""
    last = memory(pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = memory(pid)
        if now == last:
            return now
        last = now
    return last


def measure_idle(c, kind):
    """Memory per idle connection of kind in c, just (re)started. IDLE_WARMUP
    connections are opened and closed (one-time allocations: pools, the first TLS
    handshake), then as many again are opened and kept (they take the memory the
    closed ones freed, which would otherwise make the first IDLE_WARMUP measured
    connections look free); the worker's memory is read, IDLE_CONNECTIONS more are
    opened and left idle after their request, and the memory is read again. A dict of
    the growth per connection (rss, pss, private_dirty, in bytes), the worker's pid
    and seconds taken; raises IdleError."""
    port = c.ports[kind]
    pgid = c.server.proc.pid
    # Generous: a few hundred handshakes a second on a busy two-core machine.
    timeout = 60 + IDLE_CONNECTIONS / 50
    warm = open_idle(kind, port, IDLE_WARMUP, timeout)
    pid = socket_holder(pgid, port, warm[0])
    close_all(warm)
    if pid is None:
        raise IdleError(f"no process of its group holds the connections to port {port}")
    conns = []
    try:
        settled_memory(pid)  # the server has handled the closes
        conns = open_idle(kind, port, IDLE_WARMUP, timeout)
        before = settled_memory(pid)
        started = time.monotonic()
        conns += open_idle(kind, port, IDLE_CONNECTIONS, timeout)
        took = time.monotonic() - started
        after = settled_memory(pid)
        closed = closed_by_peer(conns)
        if closed:
            raise IdleError(f"the server closed {closed} of {len(conns)} idle connections")
        if socket_holder(pgid, port, conns[-1]) != pid:
            raise IdleError(f"the connections are not all held by worker {pid}")
    except OSError as e:  # the worker's /proc entries vanished: it exited
        raise IdleError(f"worker {pid} gone: {e}")
    finally:
        close_all(conns)
    run = {"kind": kind, "pid": pid, "seconds": took,
           "fds": after["fds"] - before["fds"]}
    for key in ("rss", "pss", "private_dirty"):
        run[key] = (after[key] - before[key]) / IDLE_CONNECTIONS
    return run
