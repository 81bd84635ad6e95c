"""A recording TCP relay for HTTP/2 on loopback: it sits between a client (grpcio, say)
and rampart, passes bytes both ways untouched, and keeps what the client sent on each
connection, so that a test can decode the frames (hyperframe) and see exactly what a
client library puts on the wire: for one, what grpc-core sends when a call is cancelled
before or while its HEADERS go out (see classify_resets).

    relay = Relay(rampart_port).start()     # clients connect to relay.port
    ...
    relay.stop()
    for conn in relay.connections: frames(conn.client_bytes)
"""

import select
import socket
import threading

from hyperframe.frame import Frame, HeadersFrame, RstStreamFrame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Recorded:
    def __init__(self):
        self.client_bytes = bytearray()
        self.server_bytes = bytearray()


class Relay:
    def __init__(self, target_port, addr="127.0.0.1"):
        self.target = (addr, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((addr, 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = []

    def start(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        while not self.stopping:
            ready, _, _ = select.select([self.listener], [], [], 0.1)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rec = Recorded()
            with self.lock:
                self.connections.append(rec)
            t = threading.Thread(target=self._pump, args=(client, server, rec), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, client, server, rec):
        peers = {client: (server, rec.client_bytes), server: (client, rec.server_bytes)}
        open_ = {client, server}
        try:
            while open_ and not self.stopping:
                ready, _, _ = select.select(list(open_), [], [], 0.1)
                for s in ready:
                    other, log = peers[s]
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        open_.discard(s)
                        try:
                            other.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        continue
                    log += data
                    try:
                        other.sendall(data)
                    except OSError:
                        open_.discard(s)
        finally:
            client.close()
            server.close()

    def stop(self):
        self.stopping = True
        self.listener.close()
        for t in self.threads:
            t.join(2)


def frames(data, client=True):
    """The frames in bytes one side sent (the client preface skipped): a list of
    hyperframe frames, in order; a truncated last frame is left out."""
    data = bytes(data)
    if client and data.startswith(PREFACE):
        data = data[len(PREFACE):]
    out, pos = [], 0
    while pos + 9 <= len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos:pos + 9]))
        if pos + 9 + length > len(data):
            break
        frame.parse_body(memoryview(data[pos + 9:pos + 9 + length]))
        out.append(frame)
        pos += 9 + length
    return out


def classify_resets(client_frames):
    """Each RST_STREAM the client sent, as (kind, stream id, error code, max_headers_sid)
    where kind is "open" (a HEADERS on that stream came before it) or "idle" (none had),
    and max_headers_sid the highest stream id a HEADERS had opened before it."""
    opened, top, out = set(), 0, []
    for f in client_frames:
        if isinstance(f, HeadersFrame):
            opened.add(f.stream_id)
            top = max(top, f.stream_id)
        elif isinstance(f, RstStreamFrame):
            kind = "open" if f.stream_id in opened else "idle"
            out.append((kind, f.stream_id, f.error_code, top))
    return out
