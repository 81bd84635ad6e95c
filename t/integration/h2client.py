"""A small blocking HTTP/2 client on python3-h2 for rampart's tests: cleartext
with prior knowledge, or TLS with ALPN h2. Several requests can run at once on
one connection (`exchange`); flow control is handled both ways, and what comes
back is kept whole (status, fields, body, trailers, or the reset code).
"""

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


class H2Response:
    def __init__(self):
        self.status = None
        self.headers = []
        self.body = bytearray()
        self.trailers = []
        self.reset = None  # the RST_STREAM code when the stream was reset
        self.ended = False

    def header(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def trailer(self, name):
        for n, v in self.trailers:
            if n == name:
                return v
        return None

    def __repr__(self):
        return f"<H2Response {self.status} reset={self.reset} {bytes(self.body[:60])!r}>"


class H2Client:
    def __init__(self, port, host="127.0.0.1", tls=None, server_hostname=None, timeout=10.0,
                 window=16 * 1024 * 1024):
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
            sock = tls.wrap_socket(sock, server_hostname=server_hostname)
        self.sock = sock
        self.timeout = timeout
        self.h2 = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.h2.increment_flow_control_window(window)
        self.flush()
        self.goaway = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read(self, streams):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by rampart")
        for ev in self.h2.receive_data(data):
            sid = getattr(ev, "stream_id", None)
            r = streams.get(sid)
            if isinstance(ev, h2.events.ResponseReceived) and r is not None:
                r.headers = list(ev.headers)
                r.status = int(dict(r.headers)[":status"])
            elif isinstance(ev, h2.events.TrailersReceived) and r is not None:
                r.trailers = list(ev.headers)
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
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()

    def exchange(self, requests, authority="localhost", scheme="http"):
        """Runs requests [(method, path, headers, body)] at once; returns H2Responses."""
        streams, pending = {}, []
        for method, path, headers, body in requests:
            sid = self.h2.get_next_available_stream_id()
            hdrs = [(":method", method), (":scheme", scheme), (":authority", authority),
                    (":path", path)] + list(headers)
            self.h2.send_headers(sid, hdrs, end_stream=not body)
            streams[sid] = H2Response()
            if body:
                pending.append([sid, memoryview(body)])
        self.flush()
        deadline = time.monotonic() + self.timeout
        while pending:
            progressed = False
            for item in pending:
                sid, view = item
                if streams[sid].ended:
                    item[1] = view = view[:0]
                    continue
                window = min(self.h2.local_flow_control_window(sid),
                             self.h2.max_outbound_frame_size)
                if window > 0 and view:
                    n = min(window, len(view))
                    self.h2.send_data(sid, view[:n].tobytes(), end_stream=n == len(view))
                    item[1] = view[n:]
                    progressed = True
            self.flush()
            pending = [p for p in pending if p[1]]
            if pending and not progressed:
                if time.monotonic() > deadline:
                    raise TimeoutError("request bodies did not go out")
                self._read(streams)
        while not all(r.ended for r in streams.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"responses incomplete: {list(streams.values())}")
            self._read(streams)
        return list(streams.values())

    def request(self, method="GET", path="/", headers=(), body=b"", **kw):
        return self.exchange([(method, path, headers, body)], **kw)[0]


def h2_request(port, method="GET", path="/", headers=(), body=b"", **kw):
    """One request on a fresh cleartext HTTP/2 connection."""
    with H2Client(port) as c:
        return c.request(method, path, headers, body, **kw)
