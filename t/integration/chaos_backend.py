#!/usr/bin/env python3
"""A lean HTTP/1.1 backend for the chaos tests (test_chaos.py), run as its own process.

The chaos tests break backends the way an estate breaks them: SIGKILL (the process
is gone, its port refuses), SIGSTOP (it hangs: the kernel still completes connects
into the listen backlog, nothing answers), a share of 503s, a peer that reads a POST
and closes. For that each backend must be one OS process with no helper threads, so
that a signal to its pid stops or kills all of it, and it must be fast enough that
tens of thousands of requests through rampart take seconds: one thread, one
selectors loop, keep-alive, no parsing beyond what framing needs.

    chaos_backend.py [--name NAME] [--delay-ms D] [--fail-every N] [--status S]
                     [--post-close]

It prints "PORT <n>" once it listens on a kernel-chosen loopback port, and stops on
SIGTERM. Every request counted gets an answer decided by a counter of the process
(deterministic, whatever the connection or the worker that sent it):

  --fail-every N   every Nth request (the Nth, 2Nth, ...) is answered 503; N=2 is
                   "every other request"
  --status S       every request is answered S (e.g. 503: a sick pool)
  --post-close     a POST's body is read whole, then the connection is closed
                   without an answer (the request reached the peer, which died)
  --delay-ms D     every answer leaves D ms after its request was read (on a timer of
                   the loop, so other connections go on meanwhile): requests are in
                   flight at the peer when it is killed or stopped, as in production

Other requests get 200 with the body "NAME\\n". Control requests are not counted:
  GET /__stats     {"requests", "by_status", "by_method", "connections"}
"""

import argparse
import heapq
import itertools
import json
import selectors
import signal
import socket
import sys
import time

MAX_HEAD = 65536


class Server:
    def __init__(self, args):
        self.name = args.name
        self.fail_every = args.fail_every
        self.status = args.status
        self.post_close = args.post_close
        self.delay = args.delay_ms / 1000.0
        self.due = []  # heap of (time, seq, conn, bytes): answers waiting for their delay
        self.seq = itertools.count()
        self.requests = 0
        self.by_status = {}
        self.by_method = {}
        self.connections = 0
        self.sel = selectors.DefaultSelector()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1024)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)

    def answer(self, method, target, body_len):
        """The status of a counted request, or None to close without an answer."""
        if target == "/__stats":
            return "stats"
        self.requests += 1
        self.by_method[method] = self.by_method.get(method, 0) + 1
        if method == "POST" and self.post_close:
            status = None
        elif self.status:
            status = self.status
        elif self.fail_every and self.requests % self.fail_every == 0:
            status = 503
        else:
            status = 200
        key = str(status) if status else "closed"
        self.by_status[key] = self.by_status.get(key, 0) + 1
        return status

    def response(self, status):
        if status == "stats":
            body = json.dumps({"requests": self.requests, "by_status": self.by_status,
                               "by_method": self.by_method,
                               "connections": self.connections}).encode()
            status = 200
        else:
            body = (self.name + "\n").encode()
        reason = {200: "OK", 503: "Service Unavailable"}.get(status, "Status")
        return (f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
                f"X-Backend-Name: {self.name}\r\n\r\n").encode() + body

    def serve(self):
        print(f"PORT {self.lsock.getsockname()[1]}", flush=True)
        while True:
            timeout = max(0.0, self.due[0][0] - time.monotonic()) if self.due else None
            for key, _ in self.sel.select(timeout):
                if key.data is None:
                    self.accept()
                else:
                    self.readable(key.fileobj, key.data)
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                _, _, conn, data = heapq.heappop(self.due)
                self.send(conn, data)

    def accept(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sel.register(conn, selectors.EVENT_READ, {"buf": b"", "counted": False})

    def close(self, conn):
        if conn.fileno() >= 0:
            self.sel.unregister(conn)
            conn.close()

    def send(self, conn, data):
        if conn.fileno() < 0:
            return  # closed by the peer meanwhile
        try:
            conn.sendall(data)  # small answers: the socket buffer takes them
        except OSError:
            self.close(conn)

    def readable(self, conn, st):
        try:
            data = conn.recv(65536)
        except (ConnectionResetError, BlockingIOError):
            data = b""
        if not data:
            self.close(conn)
            return
        buf = st["buf"] + data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self.close(conn)
                    return
                break
            head = buf[:end].decode("latin-1").split("\r\n")
            parts = head[0].split(" ")
            if len(parts) != 3:
                self.close(conn)
                return
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(buf) < end + 4 + length:
                break  # the body is not all here yet
            buf = buf[end + 4 + length:]
            if parts[1] != "/__stats" and not st["counted"]:
                st["counted"] = True
                self.connections += 1
            status = self.answer(parts[0], parts[1], length)
            if status is None:
                self.close(conn)
                return
            out.append(self.response(status))
        st["buf"] = buf
        if out and self.delay and parts[1] != "/__stats":
            heapq.heappush(self.due, (time.monotonic() + self.delay, next(self.seq), conn,
                                      b"".join(out)))
        elif out:
            self.send(conn, b"".join(out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", default="backend")
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--status", type=int, default=0)
    p.add_argument("--post-close", action="store_true")
    p.add_argument("--delay-ms", type=float, default=0)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Server(args).serve()


if __name__ == "__main__":
    main()
