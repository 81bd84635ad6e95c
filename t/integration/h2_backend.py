#!/usr/bin/env python3
"""An HTTP/2 backend (cleartext, prior knowledge) for rampart's integration tests,
on python3-h2: one thread per connection, one more per request being answered,
so streams of a connection are served concurrently.

    h2_backend.py [--host 127.0.0.1] [--port 0] [--max-streams N] [--goaway-after N]
                  [--window BYTES] [--tls-cert FILE --tls-key FILE [--alpn h2,...]]

With --tls-cert/--tls-key it speaks TLS and offers ALPN --alpn (default "h2"; a
list without h2 makes a server that only does HTTP/1.1 in ALPN, whose
connections still answer HTTP/2 if a client goes on regardless). GET /__stats
then also counts "tls_connections" whose handshake completed, and of those
"tls_resumed" that resumed a session.

It prints "PORT <n>" once it listens and stops on SIGTERM. Imported, `H2Backend`
starts and stops it as a separate process, by pid.

--max-streams N advertises SETTINGS_MAX_CONCURRENT_STREAMS N (and refuses streams
beyond it). --goaway-after N sends GOAWAY on a connection once N requests came on
it, naming the Nth as the last it processes: it answers the streams up to it,
ignores the later ones (the client must send them again elsewhere), and closes
the connection when the last answer is out.

A request says how to answer with query parameters:
  status=N      the status (default 200)
  size=N        a body of N bytes of backend.pattern() (default: "ok\\n")
  delay=S       seconds to wait before the head
  body_delay=S  seconds to wait between 16k blocks of the body
  echo=1        the body is JSON: method, path, authority, scheme, headers
                ([name, value] pairs), body_length, body_sha256
  trailers=1    end with trailer fields x-trailer: done
  reset=K       reset the stream (INTERNAL_ERROR) after K body bytes
  grpc=1        answer like a gRPC server (also without it, for a request whose
                content-type is application/grpc, unless echo=1): the request's
                messages echoed back, content-type application/grpc, trailers
                grpc-status 0
  hold=S        with grpc: wait S seconds between the head and the rest
  big_header=N  N more header fields of 30000 bytes each
  stall_body=1  never open the stream's window: the request body stalls
  refuse_once=K the first request with this K (after its body) is reset with
                REFUSED_STREAM, as not processed

GET /__stats returns {"connections", "requests", "max_concurrent", "resets",
"open_connections"} (max_concurrent: the most streams open at once on one
connection; resets: streams the client reset) and GET /__reset zeroes the counters; those requests are not counted,
nor is a connection that carried only them.
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
from backend import pattern  # noqa: E402

BLOCK = 16384


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.refused = set()
        self.reset()
        self.open_connections = 0

    def reset(self):
        self.connections = 0
        self.requests = 0
        self.max_concurrent = 0
        self.resets = 0
        self.tls_connections = 0
        self.tls_resumed = 0

    def snapshot(self):
        with self.lock:
            return {"connections": self.connections, "requests": self.requests,
                    "tls_connections": self.tls_connections,
                    "tls_resumed": self.tls_resumed,
                    "max_concurrent": self.max_concurrent, "resets": self.resets,
                    "open_connections": self.open_connections}


class Conn:
    def __init__(self, sock, opts, stats):
        self.sock = sock
        self.opts = opts
        self.stats = stats
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                             validate_inbound_headers=True))
        self.cv = threading.Condition()
        self.streams = {}
        self.open = 0
        self.counted = False
        self.requests = 0
        self.goaway_id = None  # last stream id we said we would process
        self.answering = 0
        self.closed = False

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self):
        try:
            with self.cv:
                self.h2.initiate_connection()
                settings = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.opts.window}
                if self.opts.max_streams:
                    settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = \
                        self.opts.max_streams
                self.h2.update_settings(settings)
                self.h2.increment_flow_control_window(16 * 1024 * 1024)
                self.flush()
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                with self.cv:
                    try:
                        events = self.h2.receive_data(data)
                    except h2.exceptions.ProtocolError:
                        self.flush()
                        break
                    for ev in events:
                        self.event(ev)
                    self.flush()
                    self.cv.notify_all()
        finally:
            with self.cv:
                self.closed = True
                self.cv.notify_all()
            with self.stats.lock:
                self.stats.open_connections -= 1
            try:
                self.sock.close()
            except OSError:
                pass

    def event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            headers = list(ev.headers)
            path = dict(headers).get(":path", "")
            control = path.startswith("/__")
            self.streams[ev.stream_id] = {"headers": headers, "sha": hashlib.sha256(),
                                          "length": 0, "reset": False, "control": control,
                                          "grpc_in": bytearray()}
            if self.goaway_id is not None and ev.stream_id > self.goaway_id:
                self.streams[ev.stream_id]["ignored"] = True
                return
            if not control:
                self.open += 1
                with self.stats.lock:
                    if not self.counted:
                        self.counted = True
                        self.stats.connections += 1
                    self.stats.requests += 1
                    self.stats.max_concurrent = max(self.stats.max_concurrent, self.open)
                self.requests += 1
                if self.opts.goaway_after and self.requests == self.opts.goaway_after:
                    self.goaway_id = ev.stream_id
                    self.flush()
                    frame = GoAwayFrame(0)
                    frame.last_stream_id = ev.stream_id
                    frame.error_code = 0
                    self.sock.sendall(frame.serialize())
            if ev.stream_ended:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            stall = st is not None and "stall_body=1" in dict(st["headers"]).get(":path", "")
            if ev.flow_controlled_length and not stall:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if st is not None:
                st["sha"].update(ev.data)
                st["length"] += len(ev.data)
                if "grpc=1" in dict(st["headers"]).get(":path", "") or \
                        dict(st["headers"]).get("content-type", "").startswith("application/grpc"):
                    st["grpc_in"] += ev.data
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.streams:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.get(ev.stream_id)
            if st is not None and not st["reset"]:
                st["reset"] = True
                if not st["control"]:
                    with self.stats.lock:
                        self.stats.resets += 1
                if not st["control"] and not st.get("ignored") and not st.get("done"):
                    st["done"] = True
                    self.open -= 1

    def start(self, sid):
        st = self.streams[sid]
        if st.get("ignored") or st.get("started"):
            return
        st["started"] = True
        self.answering += 1
        threading.Thread(target=self.answer, args=(sid,), daemon=True).start()

    def ended(self, sid):
        """Counts the stream as no longer open, under the lock, as its END_STREAM goes:
        the client may open the next one the moment it reads it."""
        st = self.streams[sid]
        if not st["control"] and not st.get("done"):
            st["done"] = True
            self.open -= 1

    def send_body(self, sid, data, end):
        """Sends data on sid as the flow-control windows allow; False if the stream is gone."""
        view = memoryview(data)
        while True:
            with self.cv:
                st = self.streams[sid]
                if st["reset"] or self.closed:
                    return False
                if not view:
                    if end:
                        self.h2.end_stream(sid)
                        self.ended(sid)
                        self.flush()
                    return True
                try:
                    window = self.h2.local_flow_control_window(sid)
                except h2.exceptions.StreamClosedError:
                    return False
                n = min(window, self.h2.max_outbound_frame_size, len(view))
                if n <= 0:
                    self.cv.wait(1.0)
                    continue
                self.h2.send_data(sid, view[:n].tobytes(), end_stream=end and n == len(view))
                if end and n == len(view):
                    self.ended(sid)
                self.flush()
                view = view[n:]
                if not view:
                    return True

    def answer(self, sid):
        try:
            self._answer(sid)
        except (OSError, h2.exceptions.ProtocolError, h2.exceptions.StreamClosedError):
            pass
        finally:
            with self.cv:
                self.ended(sid)
                self.answering -= 1
                if self.goaway_id is not None and self.answering == 0 and all(
                        s.get("done") or s.get("ignored") for s in self.streams.values()):
                    try:
                        self.sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def _answer(self, sid):
        st = self.streams[sid]
        hdrs = dict(st["headers"])
        path = hdrs.get(":path", "/")
        u = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/__stats":
            body = json.dumps(self.stats.snapshot()).encode()
            return self.reply(sid, 200, [("content-type", "application/json")], body)
        if u.path == "/__reset":
            with self.stats.lock:
                self.stats.reset()
            return self.reply(sid, 200, [], b"{}")
        key = q.get("refuse_once")
        if key is not None:
            with self.stats.lock:
                first = key not in self.stats.refused
                self.stats.refused.add(key)
            if first:
                with self.cv:
                    self.h2.reset_stream(sid, 7)  # REFUSED_STREAM: not processed
                    self.ended(sid)
                    self.flush()
                return
        delay = float(q.get("delay", 0))
        if delay:
            time.sleep(delay)
        grpc = hdrs.get("content-type", "").startswith("application/grpc")
        if (q.get("grpc") == "1" or grpc) and q.get("echo") != "1":
            return self.reply(sid, 200, [("content-type", "application/grpc")],
                              bytes(st["grpc_in"]), trailers=[("grpc-status", "0")],
                              hold=float(q.get("hold", 0)))
        status = int(q.get("status", 200))
        extra = [("x-backend-stream", str(sid))]
        extra += [(f"x-big-{i}", "b" * 30000) for i in range(int(q.get("big_header", 0)))]
        if q.get("echo") == "1":
            body = json.dumps({
                "method": hdrs.get(":method"), "path": path,
                "authority": hdrs.get(":authority"), "scheme": hdrs.get(":scheme"),
                "headers": [[n, v] for n, v in st["headers"] if not n.startswith(":")],
                "body_length": st["length"], "body_sha256": st["sha"].hexdigest()}).encode()
            extra.append(("content-type", "application/json"))
        elif "size" in q:
            body = pattern(int(q["size"]))
        else:
            body = b"ok\n"
        if status in (204, 304):
            return self.reply(sid, status, extra, b"")
        if hdrs.get(":method") == "HEAD":
            return self.reply(sid, status, extra + [("content-length", str(len(body)))], b"")
        trailers = [("x-trailer", "done")] if q.get("trailers") == "1" else None
        reset = int(q["reset"]) if "reset" in q else None
        self.reply(sid, status, extra + [("content-length", str(len(body)))]
                   if trailers is None and reset is None else extra, body, trailers,
                   body_delay=float(q.get("body_delay", 0)), reset=reset)

    def reply(self, sid, status, headers, body, trailers=None, body_delay=0.0, reset=None,
              hold=0.0):
        with self.cv:
            if self.streams[sid]["reset"]:
                return
            end = not body and not trailers and reset is None
            self.h2.send_headers(sid, [(":status", str(status))] + headers, end_stream=end)
            if end:
                self.ended(sid)
            self.flush()
        if end:
            return
        if hold:
            time.sleep(hold)
        if reset is not None:
            self.send_body(sid, body[:reset], False)
            time.sleep(0.2)  # the head and those bytes reach the client first
            with self.cv:
                self.h2.reset_stream(sid, 2)
                self.ended(sid)
                self.flush()
            return
        if body_delay:
            for i in range(0, len(body), BLOCK):
                last = i + BLOCK >= len(body)
                if not self.send_body(sid, body[i:i + BLOCK], last and not trailers):
                    return
                time.sleep(body_delay)
        elif not self.send_body(sid, body, not trailers):
            return
        if trailers:
            with self.cv:
                if not self.streams[sid]["reset"]:
                    self.h2.send_headers(sid, trailers, end_stream=True)
                    self.ended(sid)
                    self.flush()


class TLSSock:
    """The server side of TLS on a connected socket, with the socket's recv/sendall/
    shutdown/close: OpenSSL runs on memory BIOs under one lock, so the connection's
    reader thread and its answering threads never drive the SSL object at once."""

    def __init__(self, raw, ctx):
        self.raw = raw
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=True)
        self.lock = threading.Lock()

    def _push(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._push()
                data = self.raw.recv(65536)
                if not data:
                    raise OSError("closed during the handshake")
                self.inc.write(data)
        self._push()

    def recv(self, n):
        while True:
            with self.lock:
                try:
                    return self.obj.read(n)
                except ssl.SSLWantReadError:
                    pass
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
                self._push()
            data = self.raw.recv(65536)
            if not data:
                return b""
            with self.lock:
                self.inc.write(data)

    def sendall(self, data):
        with self.lock:
            self.obj.write(data)
            self._push()

    def shutdown(self, how):
        self.raw.shutdown(how)

    def close(self):
        self.raw.close()


def tls_then_run(raw, opts, stats, ctx):
    sock = TLSSock(raw, ctx)
    try:
        sock.handshake()
    except (OSError, ssl.SSLError):
        with stats.lock:
            stats.open_connections -= 1
        raw.close()
        return
    with stats.lock:
        stats.tls_connections += 1
        stats.tls_resumed += sock.obj.session_reused
    Conn(sock, opts, stats).run()


def serve(opts):
    stats = Stats()
    ctx = None
    if opts.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
        ctx.set_alpn_protocols(opts.alpn.split(","))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((opts.host, opts.port))
    srv.listen(128)
    print(f"PORT {srv.getsockname()[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with stats.lock:
            stats.open_connections += 1
        if ctx is not None:
            threading.Thread(target=tls_then_run, args=(sock, opts, stats, ctx),
                             daemon=True).start()
            continue
        threading.Thread(target=Conn(sock, opts, stats).run, daemon=True).start()


class H2Backend:
    """One h2_backend.py process: start() it, use .port / .addr, stop() it by pid."""

    def __init__(self, max_streams=0, goaway_after=0, window=65535, log_dir=None,
                 tls_cert=None, tls_key=None, alpn="h2", host="127.0.0.1", port=0):
        self.host = host
        self.args = ["--max-streams", str(max_streams), "--goaway-after", str(goaway_after),
                     "--window", str(window), "--host", host, "--port", str(port)]
        if tls_cert:
            self.args += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key),
                          "--alpn", alpn]
        self.log_dir = Path(log_dir) if log_dir else None
        self.proc = None
        self.port = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, str(HERE), *self.args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=None)
        line = self.proc.stdout.readline()
        if not line.startswith(b"PORT "):
            self.stop()
            raise AssertionError(f"h2 backend did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def addr(self):
        return f"{self.host}:{self.port}"

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc.stdout.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--max-streams", type=int, default=0)
    ap.add_argument("--goaway-after", type=int, default=0)
    ap.add_argument("--window", type=int, default=65535)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--alpn", default="h2")
    serve(ap.parse_args())


if __name__ == "__main__":
    main()
