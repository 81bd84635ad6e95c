"""A small HTTP/2 client on raw frames, for rampart's HTTP/2 tests.

It speaks HTTP/2 the way a test needs to: frame by frame, so that a test can
send what no library would (an uppercase field name, a WINDOW_UPDATE of 0, ten
thousand CONTINUATION frames) and see every frame the server sends back. Frames
are built and parsed with hyperframe; request header blocks are encoded here, as
HPACK literals without Huffman coding, so that any byte can be put in a name or
a value; response header blocks are decoded with hpack.

    conn = H2Conn(port)                     # prior knowledge on a cleartext port
    conn = H2Conn(port, tls=ctx, sni="a.test")   # TLS; ctx must offer ALPN h2
    r = conn.get("/path")                   # r.status, r.headers, r.body, r.reset
    sid = conn.request("POST", "/up", body=data)  # body sent within flow control
    ending = conn.read_until_goaway()       # ending.code, .last_stream_id, .closed

The connection sends the preface and its SETTINGS, waits for the server's
SETTINGS (kept in .server_settings) and acknowledges them. While `respond` is
true (the default) it behaves: it acknowledges SETTINGS and PING and gives back
every received DATA byte with WINDOW_UPDATE. An attacker's connection turns
`respond` off and sends nothing but what the test says.

`Flood` sends a large payload from a thread while another thread reads until
GOAWAY and the end of the connection, so that neither side's buffers fill up
and stall the other; the test's own thread stays free to use other connections
meanwhile.
"""

import select
import socket
import ssl
import threading
import time

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame,
                              PingFrame, RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Error codes (RFC 9113 section 7)
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xa
ENHANCE_YOUR_CALM = 0xb

ERROR_NAMES = {code: name for name, code in (
    ("NO_ERROR", NO_ERROR), ("PROTOCOL_ERROR", PROTOCOL_ERROR),
    ("INTERNAL_ERROR", INTERNAL_ERROR), ("FLOW_CONTROL_ERROR", FLOW_CONTROL_ERROR),
    ("SETTINGS_TIMEOUT", SETTINGS_TIMEOUT), ("STREAM_CLOSED", STREAM_CLOSED),
    ("FRAME_SIZE_ERROR", FRAME_SIZE_ERROR), ("REFUSED_STREAM", REFUSED_STREAM),
    ("CANCEL", CANCEL), ("COMPRESSION_ERROR", COMPRESSION_ERROR),
    ("CONNECT_ERROR", CONNECT_ERROR), ("ENHANCE_YOUR_CALM", ENHANCE_YOUR_CALM))}

# SETTINGS identifiers (RFC 9113 section 6.5.2)
HEADER_TABLE_SIZE = SettingsFrame.HEADER_TABLE_SIZE          # 0x1
ENABLE_PUSH = SettingsFrame.ENABLE_PUSH                      # 0x2
MAX_CONCURRENT_STREAMS = SettingsFrame.MAX_CONCURRENT_STREAMS  # 0x3
INITIAL_WINDOW_SIZE = SettingsFrame.INITIAL_WINDOW_SIZE      # 0x4
MAX_FRAME_SIZE = SettingsFrame.MAX_FRAME_SIZE                # 0x5
MAX_HEADER_LIST_SIZE = SettingsFrame.MAX_HEADER_LIST_SIZE    # 0x6

DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384


def error_name(code):
    return ERROR_NAMES.get(code, hex(code)) if code is not None else None


# -- HPACK, encoded by hand ---------------------------------------------------------------


def _b(s):
    return s if isinstance(s, (bytes, bytearray)) else s.encode("latin-1")


def hpack_int(value, prefix_bits, flags=0):
    """An HPACK integer (RFC 7541 5.1) in a prefix of prefix_bits bits; flags fills the
    bits above the prefix in the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out = [flags | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s):
    """An HPACK string literal, not Huffman-coded: any bytes go through as they are."""
    s = _b(s)
    return hpack_int(len(s), 7) + s


def literal(name, value, index=False):
    """A field as a literal with a literal name: with incremental indexing when `index`
    (it is then added to the server's dynamic table), else without indexing."""
    return (b"\x40" if index else b"\x00") + hpack_str(name) + hpack_str(value)


def indexed(index):
    """An indexed field representation: one byte for indexes below 127. Index 62 is the
    newest entry of the dynamic table."""
    return hpack_int(index, 7, 0x80)


def encode(fields):
    """A header block: every (name, value) as a literal without indexing."""
    return b"".join(literal(n, v) for n, v in fields)


def request_fields(method="GET", path="/", authority="localhost", scheme="http", headers=()):
    """The fields of an ordinary request: the pseudo-header fields first (no :authority
    when authority is None), then `headers`."""
    fields = [(":method", method), (":scheme", scheme)]
    if authority is not None:
        fields.append((":authority", authority))
    fields.append((":path", path))
    return fields + list(headers)


def list_size(fields):
    """The size SETTINGS_MAX_HEADER_LIST_SIZE limits: name + value + 32 per field."""
    return sum(len(_b(n)) + len(_b(v)) + 32 for n, v in fields)


# -- frames ------------------------------------------------------------------------------


def headers_frame(stream_id, block, end_stream=True, end_headers=True):
    """A HEADERS frame carrying `block` (bytes, or a list of fields to encode())."""
    if not isinstance(block, (bytes, bytearray)):
        block = encode(block)
    flags = (["END_STREAM"] if end_stream else []) + (["END_HEADERS"] if end_headers else [])
    return HeadersFrame(stream_id, data=bytes(block), flags=flags)


def header_frames(stream_id, block, end_stream=True, max_size=DEFAULT_FRAME_SIZE):
    """A header block too large for one frame: HEADERS, then CONTINUATION frames, each
    at most max_size bytes, END_HEADERS on the last."""
    if not isinstance(block, (bytes, bytearray)):
        block = encode(block)
    pieces = [bytes(block[i:i + max_size]) for i in range(0, len(block), max_size)] or [b""]
    frames = [headers_frame(stream_id, pieces[0], end_stream=end_stream,
                            end_headers=len(pieces) == 1)]
    for i, piece in enumerate(pieces[1:], 2):
        frames.append(continuation_frame(stream_id, piece, end_headers=i == len(pieces)))
    return frames


def continuation_frame(stream_id, block=b"", end_headers=False):
    return ContinuationFrame(stream_id, data=bytes(block),
                             flags=["END_HEADERS"] if end_headers else [])


def data_frame(stream_id, data=b"", end_stream=False):
    return DataFrame(stream_id, data=bytes(data), flags=["END_STREAM"] if end_stream else [])


def settings_frame(settings=None, ack=False):
    if ack:
        return SettingsFrame(0, flags=["ACK"])
    return SettingsFrame(0, settings=dict(settings or {}))


def window_update_frame(stream_id, increment):
    """A WINDOW_UPDATE; hyperframe serializes an increment of 0 as it is."""
    return WindowUpdateFrame(stream_id, window_increment=increment)


def rst_stream_frame(stream_id, code=CANCEL):
    return RstStreamFrame(stream_id, error_code=code)


def serialize(*frames):
    """The wire bytes of frames (hyperframe frames or bytes already serialized)."""
    return b"".join(f if isinstance(f, (bytes, bytearray)) else f.serialize() for f in frames)


# -- what came back ----------------------------------------------------------------------


class Stream:
    """What the server sent on one stream."""

    def __init__(self, sid):
        self.id = sid
        self.interim = []       # 1xx header lists
        self.headers = None     # [(name, value)] of the final response, as decoded (str)
        self.trailers = None
        self.body = bytearray()
        self.data_frames = 0    # DATA frames received, empty ones included
        self.ended = False      # END_STREAM received
        self.reset = None       # RST_STREAM error code, if the server reset the stream
        self.events = []        # ("headers" | "data" | "trailers" | "end" | "reset", seq)

    @property
    def done(self):
        return self.ended or self.reset is not None

    @property
    def status(self):
        value = self.header(":status")
        return int(value) if value is not None else None

    def header(self, name):
        for n, v in self.headers or ():
            if n == name:
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers or () if n == name]

    @property
    def text(self):
        return bytes(self.body).decode()

    def __repr__(self):
        return (f"<Stream {self.id} status={self.status} body={bytes(self.body[:60])!r} "
                f"ended={self.ended} reset={error_name(self.reset)}>")


class Ending:
    """How a connection ended: the GOAWAY frames received (code, last_stream_id, debug)
    in order, whether the server closed the connection, and what was counted on the way."""

    def __init__(self, goaways, closed, frames, resets, waited):
        self.goaways = goaways
        self.closed = closed
        self.frames = frames    # frames read while waiting
        self.resets = resets    # RST_STREAM frames among them
        self.waited = waited    # seconds

    @property
    def code(self):
        """The error code of the last GOAWAY, or None when there was none."""
        return self.goaways[-1][0] if self.goaways else None

    @property
    def last_stream_id(self):
        return self.goaways[-1][1] if self.goaways else None

    def __repr__(self):
        gs = [(error_name(c), last, debug[:80]) for c, last, debug in self.goaways]
        return (f"<Ending goaways={gs} closed={self.closed} frames={self.frames} "
                f"resets={self.resets} after {self.waited:.2f}s>")


class ProtocolViolation(AssertionError):
    """The server sent something a client must treat as a connection error."""


# -- the connection ----------------------------------------------------------------------


class H2Conn:
    """One HTTP/2 connection on loopback. See the module's documentation."""

    def __init__(self, port, addr="127.0.0.1", tls=None, sni=None, session=None,
                 settings=None, timeout=10.0, handshake=True):
        self.port = port
        self.raw = socket.create_connection((addr, port), timeout=timeout)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tls = tls is not None
        if tls is not None:
            try:
                self.sock = tls.wrap_socket(self.raw, server_hostname=sni, session=session)
            except BaseException:
                self.raw.close()
                raise
            self.alpn = self.sock.selected_alpn_protocol()
        else:
            self.sock = self.raw
            self.alpn = None
        self.timeout = timeout
        self.respond = True
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 24
        self.server_settings = {}
        self.got_settings = False
        self.settings_acked = 0
        self.pings = []
        self.goaways = []
        self.closed = False
        self.streams = {}
        self.seq = 0             # frames read so far; orders events across streams
        self.goaway_seq = []     # seq at which each GOAWAY arrived
        self.out_conn_window = DEFAULT_WINDOW
        self.out_windows = {}
        self._buf = bytearray()
        self._block = None       # (stream id, fragments) of a header block in progress
        self._head_end_stream = False
        self._next_sid = 1
        self._send_lock = threading.Lock()
        if handshake:
            self.handshake(settings)

    # -- lifecycle --------------------------------------------------------

    def handshake(self, settings=None):
        """Sends the preface and SETTINGS, then reads up to the server's SETTINGS (and
        acknowledges them). A server that closes instead fails here."""
        self.send(PREFACE, settings_frame(settings))
        deadline = time.monotonic() + self.timeout
        while not self.got_settings:
            if self.read_frame(deadline - time.monotonic()) is None:
                raise ProtocolViolation(f"the connection closed before the server's SETTINGS "
                                        f"(goaways: {self.goaways})")
        return self

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- sending ----------------------------------------------------------

    def send(self, *items):
        """Sends frames and bytes in one write."""
        data = serialize(*items)
        with self._send_lock:
            self.sock.sendall(data)

    def new_stream_id(self):
        sid = self._next_sid
        self._next_sid += 2
        return sid

    def send_headers(self, sid, fields, end_stream=True):
        """HEADERS on stream sid with these exact fields (a list, or an encoded block)."""
        self.out_windows.setdefault(sid, self.server_settings.get(INITIAL_WINDOW_SIZE,
                                                                  DEFAULT_WINDOW))
        self.streams.setdefault(sid, Stream(sid))
        self.send(headers_frame(sid, fields, end_stream=end_stream))
        return sid

    def request(self, method="GET", path="/", authority="localhost", scheme="http", headers=(),
                body=None, end_stream=None, timeout=None):
        """Opens a stream with an ordinary request; sends body (bytes) within the server's
        flow-control windows, with END_STREAM unless end_stream is False. Returns the id."""
        sid = self.new_stream_id()
        fields = request_fields(method, path, authority, scheme, headers)
        if end_stream is None:
            end_stream = True
        self.send_headers(sid, fields, end_stream=end_stream and not body)
        if body:
            self.send_data(sid, body, end_stream=end_stream, timeout=timeout)
        return sid

    def window(self, sid):
        """How many DATA bytes may be sent on sid now (stream and connection windows)."""
        return min(self.out_conn_window, self.out_windows.get(sid, 0))

    def push(self, sid, data, end_stream=True):
        """Sends as much of data on sid as the windows allow now, in DATA frames no larger
        than the server allows (END_STREAM with the last byte when end_stream); returns
        how many bytes went. Never waits. Empty data is one empty DATA frame."""
        view = memoryview(data)
        if not view:
            self.send(data_frame(sid, b"", end_stream=end_stream))
            return 0
        max_frame = self.server_settings.get(MAX_FRAME_SIZE, DEFAULT_FRAME_SIZE)
        frames, done = [], 0
        while done < len(view):
            n = min(len(view) - done, self.window(sid), max_frame)
            if n <= 0:
                break
            done += n
            frames.append(data_frame(sid, view[done - n:done],
                                     end_stream=end_stream and done == len(view)))
            self.out_conn_window -= n
            self.out_windows[sid] -= n
        if frames:
            self.send(*frames)
        return done

    def send_data(self, sid, data, end_stream=True, timeout=None):
        """Sends data on sid within the flow-control windows, waiting (reading frames)
        whenever a window is closed."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        view = memoryview(bytes(data))
        if not view:
            self.push(sid, view, end_stream)
            return
        while True:
            view = view[self.push(sid, view, end_stream):]
            if not view:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"flow control kept stream {sid} closed; "
                                   f"{len(view)} bytes unsent")
            if self.read_frame(left) is None:
                raise EOFError(f"connection closed with {len(view)} bytes unsent on {sid}")
            if self.streams[sid].reset is not None:
                raise EOFError(f"stream {sid} reset ({error_name(self.streams[sid].reset)}) "
                               f"with {len(view)} bytes unsent")

    # -- receiving --------------------------------------------------------

    def _fill(self, timeout):
        """Reads more bytes into the buffer; False at EOF. Raises TimeoutError."""
        if not (self.tls and self.sock.pending()):
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
            if not ready:
                raise TimeoutError("no frame from the server in time")
        try:
            chunk = self.sock.recv(1 << 18)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            chunk = b""
        except ssl.SSLZeroReturnError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self._buf += chunk
        return True

    def read_frame(self, timeout=None):
        """The next frame from the server (handled: see the class), or None at EOF.
        Raises TimeoutError when nothing came in `timeout` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self._buf) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self._buf)[:9])
                if len(self._buf) >= 9 + length:
                    body = bytes(self._buf[9:9 + length])
                    del self._buf[:9 + length]
                    frame.parse_body(memoryview(body))
                    self.seq += 1
                    self._handle(frame, length)
                    return frame
            if self.closed:
                return None
            if not self._fill(deadline - time.monotonic()):
                return None

    def _handle(self, frame, length):
        t = frame.type
        if self._block is not None and not (t == ContinuationFrame.type
                                             and frame.stream_id == self._block[0]):
            raise ProtocolViolation(f"{frame!r} inside the header block of stream "
                                    f"{self._block[0]}")
        if t == SettingsFrame.type:
            if "ACK" in frame.flags:
                self.settings_acked += 1
                return
            old = self.server_settings.get(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)
            self.server_settings.update(frame.settings)
            new = self.server_settings.get(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)
            for sid in self.out_windows:
                self.out_windows[sid] += new - old
            self.got_settings = True
            if self.respond:
                self._answer(settings_frame(ack=True))
        elif t == PingFrame.type:
            if "ACK" in frame.flags:
                self.pings.append(frame.opaque_data)
            elif self.respond:
                self._answer(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]))
        elif t == WindowUpdateFrame.type:
            if frame.stream_id == 0:
                self.out_conn_window += frame.window_increment
            elif frame.stream_id in self.out_windows:
                self.out_windows[frame.stream_id] += frame.window_increment
        elif t == GoAwayFrame.type:
            self.goaways.append((frame.error_code, frame.last_stream_id,
                                 bytes(frame.additional_data)))
            self.goaway_seq.append(self.seq)
        elif t == RstStreamFrame.type:
            s = self._stream(frame.stream_id)
            s.reset = frame.error_code
            s.events.append(("reset", self.seq))
        elif t in (HeadersFrame.type, ContinuationFrame.type):
            if t == HeadersFrame.type:
                self._block = (frame.stream_id, [frame.data])
                first = frame
            else:
                if self._block is None:
                    raise ProtocolViolation(f"CONTINUATION without HEADERS: {frame!r}")
                self._block[1].append(frame.data)
                first = None
            if first is not None:
                self._head_end_stream = "END_STREAM" in frame.flags
            if "END_HEADERS" in frame.flags:
                sid, fragments = self._block
                self._block = None
                fields = [(n.decode("latin-1"), v.decode("latin-1"))
                          for n, v in self.decoder.decode(b"".join(fragments), raw=True)]
                self._headers(sid, fields, self._head_end_stream)
        elif t == DataFrame.type:
            s = self._stream(frame.stream_id)
            s.body += frame.data
            s.data_frames += 1
            s.events.append(("data", self.seq))
            if "END_STREAM" in frame.flags:
                s.ended = True
                s.events.append(("end", self.seq))
            n = frame.flow_controlled_length
            if self.respond and n:
                updates = [window_update_frame(0, n)]
                if not s.ended:
                    updates.append(window_update_frame(frame.stream_id, n))
                self._answer(*updates)

    def _answer(self, *frames):
        """What a well-behaved client sends back; a server that closed already does not
        need it."""
        try:
            self.send(*frames)
        except OSError:
            pass

    def _stream(self, sid):
        if sid not in self.streams:
            self.streams[sid] = Stream(sid)
        return self.streams[sid]

    def _headers(self, sid, fields, end_stream):
        s = self._stream(sid)
        status = next((v for n, v in fields if n == ":status"), None)
        if s.headers is None and status is not None and status.startswith("1"):
            s.interim.append(fields)
        elif s.headers is None:
            s.headers = fields
            s.events.append(("headers", self.seq))
        else:
            s.trailers = fields
            s.events.append(("trailers", self.seq))
        if end_stream:
            s.ended = True
            s.events.append(("end", self.seq))

    def read_until(self, predicate, timeout=None, what="condition"):
        """Reads frames until predicate() is true; False when the connection closed
        first. Raises TimeoutError after timeout seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            try:
                if self.read_frame(left) is None:
                    return predicate()
            except TimeoutError:
                raise TimeoutError(f"timed out waiting for {what}") from None
        return True

    def response(self, sid, timeout=None):
        """Reads until stream sid is done (END_STREAM or RST_STREAM) and returns it; a
        stream left unfinished by the end of the connection is returned as it is."""
        self.read_until(lambda: self._stream(sid).done, timeout, what=f"stream {sid} to end")
        return self.streams[sid]

    def get(self, path="/", method="GET", timeout=None, **kw):
        """One request and its response."""
        return self.response(self.request(method, path, **kw), timeout)

    def read_until_goaway(self, timeout=10.0, eof=True):
        """Reads (without answering anything) until a GOAWAY came (or had come) and, when
        eof, until the server closed the connection too, or until timeout. Returns an
        Ending; it tells what happened, the test decides whether that was right."""
        started = time.monotonic()
        deadline = started + timeout
        respond, self.respond = self.respond, False
        frames = resets = 0
        try:
            while True:
                if self.goaways and (not eof or self.closed):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    frame = self.read_frame(left)
                except TimeoutError:
                    break
                if frame is None:
                    break
                frames += 1
                if frame.type == RstStreamFrame.type:
                    resets += 1
        finally:
            self.respond = respond
        return Ending(list(self.goaways), self.closed, frames, resets,
                      time.monotonic() - started)


class Flood:
    """Sends `chunks` (an iterable of bytes) on conn from one thread while another reads
    until GOAWAY and EOF (conn.read_until_goaway). Use as a context manager, or start()
    then finish() -> Ending. Sending stops quietly when the server closes."""

    def __init__(self, conn, chunks, timeout=10.0):
        self.conn = conn
        self.chunks = chunks
        self.timeout = timeout
        self.sent = 0
        self.send_error = None
        self.ending = None
        self.read_error = None
        self._sender = threading.Thread(target=self._send, daemon=True)
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _send(self):
        try:
            for chunk in self.chunks:
                if self.conn.closed:
                    return
                self.conn.sock.sendall(chunk)
                self.sent += len(chunk)
        except OSError as e:
            self.send_error = e

    def _read(self):
        try:
            self.ending = self.conn.read_until_goaway(self.timeout)
        except Exception as e:  # noqa: BLE001 - reported by finish()
            self.read_error = e

    def start(self):
        self.conn.respond = False
        self._reader.start()
        self._sender.start()
        return self

    def finish(self):
        self._reader.join(self.timeout + 5)
        # wake a sender blocked on a full socket, so it does not outlive the test
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sender.join(5)
        if self.read_error is not None:
            raise self.read_error
        assert self.ending is not None, "the reader did not finish"
        return self.ending

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.ending is None and self.read_error is None:
            try:
                self.finish()
            except Exception:  # noqa: BLE001 - the test's own error matters more
                if exc[0] is None:
                    raise


def batches(frames, size=1 << 20):
    """Serializes frames (an iterable) into byte strings of about `size` bytes."""
    out, n = [], 0
    for f in frames:
        b = f if isinstance(f, (bytes, bytearray)) else f.serialize()
        out.append(b)
        n += len(b)
        if n >= size:
            yield b"".join(out)
            out, n = [], 0
    if out:
        yield b"".join(out)
