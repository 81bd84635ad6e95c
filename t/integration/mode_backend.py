#!/usr/bin/env python3
"""A backend process that misbehaves in one fixed way, for the retry and resilience
tests: unlike backend.py, whose requests say how to answer, each of these is told by
its command line, so that peers of one pool behind one proxied request can differ.

    mode_backend.py --mode MODE [--name NAME] [--port 0] [--retry-after S]
                    [--delay S [--slow-every N]]

MODE is one of
    ok           200 with the name as body
    503          503 with "NAME unavailable" as body (and Retry-After S if given)
    overloaded   503 with X-Rampart-Overloaded: max_requests (not processed)
    alternate    503 to every other request (the 1st, 3rd, ...), 200 to the others
    hang         reads the request, never answers (until the connection closes)
    close        reads the request (and its body), closes without answering
    grpc-unavailable  a trailers-only gRPC answer with grpc-status 14 (over HTTP/1.1,
                 enough to show what a proxy does with the status; not a gRPC server)

--delay S waits S seconds before answering (every request, or with --slow-every N only
the Nth, 2Nth, ... request: a peer slow on a share of its requests).

It prints "PORT <n>" once it listens. GET /__stats answers {"requests": N, "posts": N,
"by_path": {...}} (these control requests are not counted); POST /__reset zeroes them.
"""

import argparse
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend-Name", self.server.name)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        srv = self.server
        if self.path == "/__stats":
            with srv.lock:
                doc = {"requests": srv.requests, "posts": srv.posts, "by_path": dict(srv.by_path)}
            self._send(200, json.dumps(doc).encode(), [("Content-Type", "application/json")])
            return
        if self.path == "/__reset" and self.command == "POST":
            with srv.lock:
                srv.requests = srv.posts = 0
                srv.by_path.clear()
            self._send(204, b"")
            return
        self._body()
        with srv.lock:
            srv.requests += 1
            n = srv.requests
            srv.posts += self.command == "POST"
            srv.by_path[self.path] = srv.by_path.get(self.path, 0) + 1
        if srv.delay and (srv.slow_every == 0 or n % srv.slow_every == 0):
            time.sleep(srv.delay)
        mode = srv.mode
        name = srv.name.encode()
        if mode == "ok" or (mode == "alternate" and n % 2 == 0):
            self._send(200, name + b"\n")
        elif mode in ("503", "alternate"):
            hdrs = [("Retry-After", str(srv.retry_after))] if srv.retry_after is not None else []
            self._send(503, name + b" unavailable\n", hdrs)
        elif mode == "overloaded":
            self._send(503, name + b" overloaded\n", [("X-Rampart-Overloaded", "max_requests")])
        elif mode == "grpc-unavailable":
            self._send(200, b"", [("Content-Type", "application/grpc"), ("grpc-status", "14"),
                                  ("grpc-message", "down")])
        elif mode == "hang":
            # hold the connection until the peer closes it
            self.connection.settimeout(None)
            try:
                while self.connection.recv(1024):
                    pass
            except OSError:
                pass
            self.close_connection = True
        elif mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--name", default="")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--retry-after", type=int, default=None)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--slow-every", type=int, default=0)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.mode, srv.name, srv.retry_after = a.mode, a.name or a.mode, a.retry_after
    srv.delay, srv.slow_every = a.delay, a.slow_every
    srv.lock = threading.Lock()
    srv.requests = srv.posts = 0
    srv.by_path = {}
    print("PORT %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
