"""A backend for the health-check tests, served from threads of the test process so
a test can change its health endpoint between two probes and count the probes.

    b = HealthBackend("a").start()          # b.addr "127.0.0.1:PORT", b.port
    b.set_health(503)                        # /healthz answers 503 from now on
    b.set_health(200, body="ok", headers={"X-Ready": "1"})
    b.hold()                                 # /healthz requests wait ...
    b.release()                              # ... until released
    b.health_hits()                          # probes received so far
    b.hits()                                 # other requests received so far

Every other path answers 200 with the backend's name and a newline, so a test counts
which backend served a proxied request. With cert and key it speaks HTTPS; host and
port choose where it listens (127.0.0.1 and a port the kernel picks by default).
"""

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HealthBackend:
    def __init__(self, name, path="/healthz", cert=None, key=None, host="127.0.0.1", port=0):
        self.name = name
        self.host, self.bind_port = host, port
        self.path = path
        self.cert, self.key = cert, key
        self.lock = threading.Lock()
        self.status, self.body, self.headers = 200, "ok\n", {}
        self.released = threading.Event()
        self.released.set()
        self._health_hits = []  # (monotonic time, request headers) of each probe
        self._hits = 0
        self.server = None

    # -- control ------------------------------------------------------------

    def set_health(self, status, body="ok\n", headers=None):
        with self.lock:
            self.status, self.body, self.headers = status, body, dict(headers or {})

    def hold(self):
        """Health requests wait (the probe times out, or waits for release())."""
        self.released.clear()

    def release(self):
        self.released.set()

    def health_hits(self):
        with self.lock:
            return len(self._health_hits)

    def health_requests(self):
        """(monotonic time, headers) of every probe so far."""
        with self.lock:
            return list(self._health_hits)

    def hits(self):
        with self.lock:
            return self._hits

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    # -- lifecycle ----------------------------------------------------------

    def start(self):
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.split("?")[0] == backend.path:
                    with backend.lock:
                        backend._health_hits.append((time.monotonic(), dict(self.headers)))
                    backend.released.wait()
                    with backend.lock:
                        status, body, headers = backend.status, backend.body, backend.headers
                else:
                    with backend.lock:
                        backend._hits += 1
                    status, body, headers = 200, backend.name + "\n", {}
                data = body.encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the prober gave up (timed out) and closed

        self.server = _Server((self.host, self.bind_port), Handler)
        if self.cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.cert), str(self.key))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.released.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
