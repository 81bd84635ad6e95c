"""Attacks on the HTTP/2 layer: each must end with rampart sending GOAWAY with
ENHANCE_YOUR_CALM and closing the attacker's connection, with the worker's memory
growing by less than 10 MB, while an innocent h2 connection opened before the
attack keeps being served during and after it, and new connections (h2 and
HTTP/1.1) are served right after.

Rapid Reset (CVE-2023-44487), MadeYouReset (CVE-2025-8671), CONTINUATION floods,
an HPACK bomb and header lists over http2_max_header_list_size, floods of
SETTINGS, PING, PRIORITY and empty DATA frames, and a reader that keeps its
window at zero. The frames are built with hyperframe (h2raw.py), serialized
before the attack starts and sent in large writes from one thread while another
reads (h2raw.Flood), so that neither side's buffers stall the other.

One worker serves everything, so the attacker, the innocent connection and the
later ones all meet the same process.
"""

import struct
import time

from hyperframe.frame import PingFrame, PriorityFrame

from h2raw import (CANCEL, ENABLE_PUSH, ENHANCE_YOUR_CALM, HEADER_TABLE_SIZE, PROTOCOL_ERROR,
                   STREAM_CLOSED,
                   INITIAL_WINDOW_SIZE, Flood, H2Conn, batches, continuation_frame, data_frame,
                   encode, header_frames, headers_frame, indexed, list_size, literal,
                   request_fields, rst_stream_frame, settings_frame, window_update_frame)
from harness import get
from test_proxy import RssWatch, worker_pid

MB = 1 << 20
ATTACK_DEADLINE = 10.0  # seconds to wait for the GOAWAY and the close
RSS_LIMIT_MB = 10


def serve(rampart, port, backend, server="", http="", locations=""):
    """One server on `listen port http2` (cleartext): /ok answers by return, every
    other path is proxied to backend."""
    rampart.configure(f"{http}\n"
                      f"upstream be {{ server {backend.addr}; keepalive 8; }}\n"
                      f"server {{\n"
                      f"    listen 127.0.0.1:{port} http2;\n"
                      f"    client_max_body_size 0;\n"
                      f"    {server}\n"
                      f"    location /ok {{ return 200 \"ok\\n\"; }}\n"
                      f"    {locations}\n"
                      f"    location / {{ proxy_pass http://be; }}\n"
                      f"}}\n")
    return rampart.start()


class Outcome:
    """What an attack came to: how the attacker's connection ended (an h2raw.Ending), the
    worker's growth, and the innocent connection's answer during the attack."""

    def __init__(self, port, ending, growth_mb, during, innocent, flood):
        self.port = port
        self.ending = ending
        self.growth_mb = growth_mb
        self.during = during
        self.innocent = innocent
        self.flood = flood

    def __repr__(self):
        return (f"<Outcome {self.ending} rss+{self.growth_mb:.1f}MB "
                f"sent={self.flood.sent} during={self.during}>")


def attack(rampart, port, chunks, settings=None, prepare=None):
    """Opens an innocent connection, then the attacker's (with its SETTINGS), runs
    prepare(attacker) if given, and sends chunks (serialized already) while reading
    until GOAWAY and EOF; the innocent connection makes a request meanwhile. Returns an
    Outcome, for assert_calmed()."""
    pid = worker_pid(rampart)
    innocent = H2Conn(port)
    assert innocent.get("/ok").status == 200
    with RssWatch(pid) as rss:
        attacker = H2Conn(port, settings=settings)
        if prepare is not None:
            prepare(attacker)
        flood = Flood(attacker, chunks, timeout=ATTACK_DEADLINE).start()
        try:
            during = innocent.get("/ok", timeout=ATTACK_DEADLINE)
        finally:
            ending = flood.finish()
    attacker.close()
    return Outcome(port, ending, rss.growth_mb, during, innocent, flood)


def assert_calmed(outcome, code=None):
    """What every attack must come to: GOAWAY(ENHANCE_YOUR_CALM, unless the attack is a
    protocol error of its own) and the close, memory bounded, and everyone else served:
    the innocent connection during the attack and after it, and new h2 and HTTP/1.1
    connections."""
    ending = outcome.ending
    assert ending.code == (ENHANCE_YOUR_CALM if code is None else code), outcome
    assert ending.closed, outcome
    assert outcome.growth_mb < RSS_LIMIT_MB, outcome
    assert outcome.during.status == 200, outcome
    with outcome.innocent as innocent:
        after = innocent.get("/ok")
        assert after.status == 200 and not innocent.goaways, (after, innocent.goaways)
    with H2Conn(outcome.port) as fresh:
        assert fresh.get("/ok").status == 200
    r = get(outcome.port, "/ok")
    assert (r.status, r.version, r.text) == (200, 11, "ok\n")


def serialized(frames, size=256 * 1024):
    return list(batches(frames, size))


def settled_requests(backend, quiet=0.3, timeout=5.0):
    """The backend's request count once it has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    n, since = backend.stats()["requests"], time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, f"the backend's count still moves ({n})"
        time.sleep(0.05)
        m = backend.stats()["requests"]
        if m != n:
            n, since = m, time.monotonic()
    return n


# -- Rapid Reset, MadeYouReset ------------------------------------------------------------------


def test_rapid_reset_gets_goaway_enhance_your_calm_and_spares_the_backend(
        rampart, port, backend):
    serve(rampart, port, backend)
    n = 5000

    def frames():
        for i in range(n):
            sid = 2 * i + 1
            yield headers_frame(sid, request_fields(path=f"/rr?n={i}"))
            yield rst_stream_frame(sid, CANCEL)
    outcome = attack(rampart, port, serialized(frames(), 64 * 1024))
    assert_calmed(outcome)
    # it stopped before the end of the flood ...
    assert outcome.ending.last_stream_id < 2 * n - 1, outcome
    # ... and few of the requests were ever started upstream
    assert settled_requests(backend) < 1500


def test_made_you_reset_by_zero_window_updates_is_ended_at_the_first(rampart, port, backend):
    serve(rampart, port, backend)
    # With an initial window of 0 the answer to each request cannot be sent, so its
    # stream stays open (half-closed remote) when its WINDOW_UPDATE of 0 arrives. nghttp2
    # treats that as a connection error: the first provoked reset is the last, which
    # is stricter than the reset budget and leaves the attack nothing to repeat.

    def frames():
        for i in range(5000):
            sid = 2 * i + 1
            yield headers_frame(sid, request_fields(path="/ok"))
            yield window_update_frame(sid, 0)
    outcome = attack(rampart, port, serialized(frames()), settings={INITIAL_WINDOW_SIZE: 0})
    assert_calmed(outcome, code=PROTOCOL_ERROR)
    assert settled_requests(backend) < 10


def test_made_you_reset_by_data_after_end_stream_is_ended_at_the_first(rampart, port, backend):
    serve(rampart, port, backend)
    # As above, the answers wait for a window that never opens; a DATA frame on a
    # stream half-closed by END_STREAM ends the connection with STREAM_CLOSED at once.

    def frames():
        for i in range(5000):
            sid = 2 * i + 1
            yield headers_frame(sid, request_fields(path="/ok"))
            yield data_frame(sid, b"x")
    outcome = attack(rampart, port, serialized(frames()), settings={INITIAL_WINDOW_SIZE: 0})
    assert_calmed(outcome, code=STREAM_CLOSED)
    assert settled_requests(backend) < 10


def test_made_you_reset_by_malformed_requests_gets_goaway_enhance_your_calm(
        rampart, port, backend):
    serve(rampart, port, backend)
    # Each request has an uppercase field name: a malformed request that the server
    # must reset (RFC 9113 8.1.1) without a connection error. Those resets count
    # against the same budget as the client's own (CVE-2025-8671).

    def frames():
        for i in range(5000):
            sid = 2 * i + 1
            yield headers_frame(sid, request_fields(path="/ok") + [("X-Upper", "1")])
    outcome = attack(rampart, port, serialized(frames()))
    assert_calmed(outcome)
    assert settled_requests(backend) == 0


# -- header blocks ------------------------------------------------------------------------------


def test_continuation_flood_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)

    def frames():
        yield headers_frame(1, request_fields(path="/ok"), end_headers=False)
        for i in range(10000):  # 36 bytes of header list each; END_HEADERS never comes
            yield continuation_frame(1, literal("x-c", "v"))
    outcome = attack(rampart, port, serialized(frames()))
    assert_calmed(outcome)


def test_empty_continuation_flood_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)

    def frames():
        yield headers_frame(1, request_fields(path="/ok"), end_headers=False)
        for _ in range(10000):  # nothing to count but the frames themselves
            yield continuation_frame(1, b"")
    outcome = attack(rampart, port, serialized(frames()))
    assert_calmed(outcome)


def test_hpack_bomb_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)
    name = "x-bomb"

    def plant(attacker):
        # One field as large as the server's dynamic table can hold (4 KB by default)
        # goes into the table with an ordinary request...
        table = attacker.server_settings.get(HEADER_TABLE_SIZE, 4096)
        value = "b" * min(4000, table - 32 - len(name))
        sid = attacker.new_stream_id()
        attacker.send_headers(sid, encode(request_fields(path="/ok"))
                              + literal(name, value, index=True))
        assert attacker.response(sid).status == 200
    # ... then a block refers to it 4000 times, one byte each (index 62, the newest
    # entry): about 16 MB of header list from 4 KB on the wire, against 32k allowed
    bomb = headers_frame(3, encode(request_fields(path="/ok")) + indexed(62) * 4000)
    outcome = attack(rampart, port, [bomb.serialize()], prepare=plant)
    assert_calmed(outcome)


def padded_fields(total, piece=1000):
    """Regular fields whose list size (name + value + 32 each) is exactly total, in
    fields of about `piece`, so that no single field is large."""
    sizes = [piece] * (total // piece)
    rest = total - piece * len(sizes)
    if rest >= 64:
        sizes.append(rest)
    else:
        sizes[-1] += rest  # too small for a field of its own: the last one takes it
    out = [(f"x-pad-{i:03d}", "p" * (size - len(f"x-pad-{i:03d}") - 32))
           for i, size in enumerate(sizes)]
    assert list_size(out) == total
    return out


def test_header_list_just_over_the_limit_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend, server="http2_max_header_list_size 8k;")
    # over by one byte in the regular fields alone, whether the pseudo-header fields
    # count or not
    fields = request_fields(path="/ok", headers=padded_fields(8192 + 1))
    outcome = attack(rampart, port, [b"".join(f.serialize() for f in header_frames(1, fields))])
    assert_calmed(outcome)


def test_header_list_of_exactly_the_limit_is_served(rampart, port, backend):
    serve(rampart, port, backend, server="http2_max_header_list_size 8k;")
    # the pseudo-header fields count 176 here: 8192 in all with them
    fields = request_fields(path="/ok", headers=padded_fields(8192 - 176))
    assert list_size(fields) == 8192
    with H2Conn(port) as c:
        sid = c.new_stream_id()
        c.send(*header_frames(sid, fields))
        r = c.response(sid)
        assert not c.goaways, c.goaways
    assert r.status == 200, r


# -- floods of frames that cost nothing to send -------------------------------------------------


def test_settings_flood_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)
    frames = (settings_frame({ENABLE_PUSH: 0}) for _ in range(20000))  # ENABLE_PUSH 0, each to ACK
    outcome = attack(rampart, port, serialized(frames))
    assert_calmed(outcome)


def test_ping_flood_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)
    frames = (PingFrame(0, opaque_data=struct.pack("!Q", i)) for i in range(20000))
    outcome = attack(rampart, port, serialized(frames))
    assert_calmed(outcome)


def test_priority_flood_on_idle_streams_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)
    frames = (PriorityFrame(2 * i + 1, depends_on=0, stream_weight=15) for i in range(20000))
    outcome = attack(rampart, port, serialized(frames))
    assert_calmed(outcome)


def test_empty_data_flood_gets_goaway_enhance_your_calm(rampart, port, backend):
    serve(rampart, port, backend)

    def open_upload(attacker):
        # a POST whose body the backend waits for: the stream stays open
        attacker.send_headers(attacker.new_stream_id(),
                              request_fields("POST", "/upload"), end_stream=False)
    frames = (data_frame(1, b"") for _ in range(20000))
    outcome = attack(rampart, port, serialized(frames), prepare=open_upload)
    assert_calmed(outcome)


# -- a reader that never opens its window -------------------------------------------------------


def test_zero_window_reader_is_closed_after_send_timeout(rampart, port, backend):
    serve(rampart, port, backend, server="send_timeout 1s;")
    with H2Conn(port, settings={INITIAL_WINDOW_SIZE: 0}) as c:
        sid = c.request("GET", f"/big?size={MB}")
        ending = c.read_until_goaway(timeout=5)
        stream = c.streams[sid]
    assert ending.closed, f"still open after {ending.waited:.1f}s: {ending}"
    assert not stream.body, stream  # not one byte: the window was never opened
    if ending.goaways:  # sent when the socket allows it; the close is what matters
        assert ending.code == ENHANCE_YOUR_CALM, ending
    with H2Conn(port) as fresh:
        assert fresh.get("/ok").status == 200
