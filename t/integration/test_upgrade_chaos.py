"""Reload and binary-upgrade chaos: 60 seconds of mixed load through 2 workers while the
configuration is reloaded 10 times and the binary upgraded twice (USR2, then WINCH and
QUIT to the old master once the new one serves), with every request counted and none
failed, and the state in shared memory carried across both upgrades.

The load, all at once:
  - HTTP/1.1: keep-alive and one-request connections (upgrade_util.H1Load), and a
    keep-alive client on a limit_count location whose quota must count every request
    exactly, whichever master's worker took it;
  - HTTP/2: upgrade_util.H2Load (python3-h2, h2c prior knowledge, 4 streams at once
    per connection; h2load stops a client at its first GOAWAY, so it cannot load a run
    across reloads);
  - gRPC (grpcio): unary calls, and bidirectional streams of 30 messages each;
  - WebSocket (python3-websockets): sessions of 30 echoed messages each.
Streams and sessions are long enough (about 1.5 s) that every reload and every WINCH
finds some of them in flight on the workers it retires; worker_shutdown_timeout is
well above that, so they all finish normally.

State carried: the quota's count (it continues across the upgrades: the remaining
count at the end is the limit minus every counted request), and a peer resting after
a failure (max_fails=1 fail_timeout=600s) is still resting, with its failure count,
in the shared peer table at the end.

The run stops by itself: the load threads end their current unit of work when the
60 seconds are over, and every wait has a deadline."""

import asyncio
import os
import signal
import threading
import time

import grpc

import harness
import upgrade_util as up
from harness import wait_for
from test_grpc import SVC, Server as GrpcServer
from test_upgrade import binpath, masters  # noqa: F401: fixtures
from test_upstream_state import dead_addr, peers
from test_websocket import WsBackend, connect

RUN_S = 60
RELOADS = 10
UPGRADES_AT = (18, 40)  # seconds into the run
LIMIT = 10000000
MESSAGES = 30  # per gRPC stream and per WebSocket session, 50 ms apart


class Counted:
    def __init__(self):
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()

    def good(self):
        with self.lock:
            self.ok += 1

    def bad(self, what):
        with self.lock:
            self.failures.append(what)


def grpc_unary(port, until, out):
    """until: a one-item list, the moment to stop (the schedule may push it back)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(f"/{SVC}/Unary")
        i = 0
        while time.monotonic() < until[0]:
            i += 1
            try:
                assert call(b"u%d" % i, timeout=20) == b"echo:u%d" % i
                out.good()
            except Exception as e:  # noqa: BLE001: counted and shown
                out.bad(f"unary: {e!r}"[:200])
            time.sleep(0.005)


def grpc_streams(port, until, out):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        bidi = ch.stream_stream(f"/{SVC}/Bidi")
        while time.monotonic() < until[0]:
            def messages():
                for i in range(MESSAGES):
                    yield b"m%d" % i
                    time.sleep(0.05)
            try:
                got = list(bidi(messages(), timeout=30))
                assert got == [b"M%d" % i for i in range(MESSAGES)], got
                out.good()
            except Exception as e:  # noqa: BLE001
                out.bad(f"bidi: {e!r}"[:200])


def websockets_load(port, until, out):
    async def session(k):
        async with connect(port) as c:
            for i in range(MESSAGES):
                await c.send(f"{k}:{i}")
                assert await c.recv() == f"{k}:{i}"
                await asyncio.sleep(0.05)
            await c.close(1000, "done")

    async def loop(k):
        n = 0
        while time.monotonic() < until[0]:
            n += 1
            try:
                await asyncio.wait_for(session(f"{k}.{n}"), 30)
                out.good()
            except Exception as e:  # noqa: BLE001
                out.bad(f"websocket: {e!r}"[:200])

    async def main():
        await asyncio.gather(*(loop(k) for k in range(2)))
    asyncio.run(main())


def conf(port, h2port, backend, dead, ws, gport):
    return f"""
    limit_count_zone $binary_remote_addr zone=quota:1m limit={LIMIT} window=1d;
    upstream pool {{ server {backend}; server {dead} max_fails=1 fail_timeout=600s; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{backend}; }}
        location /counted {{
            limit_count zone=quota;
            add_header X-Remaining $limit_count_remaining always;
            proxy_pass http://{backend};
        }}
        location /pool {{ proxy_pass http://pool; proxy_connect_timeout 1s; }}
        location = /upstreams {{ upstream_status; }}
        location /echo {{ proxy_pass http://{ws}; proxy_read_timeout 60s; }}
    }}
    server {{
        listen 127.0.0.1:{h2port} http2;
        location /{SVC}/ {{ grpc_pass grpc://127.0.0.1:{gport}; grpc_read_timeout 60s; }}
        location / {{ proxy_pass http://{backend}; }}
    }}
    """


def test_ten_reloads_and_two_binary_upgrades_under_mixed_load_fail_nothing(
        rampart, masters, binpath, backend, tmp_path):
    signal.alarm(RUN_S + 120)  # the suite's 30 s ceiling, widened for this run
    port, h2port = harness.free_port(), harness.free_port()
    ws = WsBackend(tmp_path / "ws")
    g = GrpcServer()
    threads, h2 = [], None
    try:
        dead = dead_addr()
        rampart.configure(conf(port, h2port, backend.addr, dead, ws.addr, g.port), workers=2,
                          main="worker_shutdown_timeout 30s;")
        rampart.start()
        for _ in range(4):
            assert harness.get(port, "/pool", headers={"Connection": "close"}).status == 200
        rest = peers(port)[dead]
        assert rest["state"] == "unavailable" and rest["failures"] == 1
        counted_before = LIMIT - up.remaining(port, "/counted")  # 1

        t0 = time.monotonic()
        until = [t0 + RUN_S]
        h1 = up.H1Load(port, "/", keepalive=2, fresh=1).start()
        quota = up.H1Load(port, "/counted", keepalive=1, fresh=0).start()
        unary, streams, wss = Counted(), Counted(), Counted()
        threads = [threading.Thread(target=f, args=(a, until, o), daemon=True)
                   for f, a, o in ((grpc_unary, h2port, unary), (grpc_streams, h2port, streams),
                                   (grpc_streams, h2port, streams),
                                   (websockets_load, port, wss))]
        for t in threads:
            t.start()
        h2 = up.H2Load(h2port, "/h2").start()

        # the schedule: reloads spread over the run, the upgrades between them
        reload_at = [3 + i * (RUN_S - 8) / (RELOADS - 1) for i in range(RELOADS)]
        events = sorted([(t, "reload") for t in reload_at] + [(t, "upgrade") for t in UPGRADES_AT])
        done = {"reload": 0, "upgrade": 0}
        cur = rampart.pid
        exes = []
        for at, what in events:
            while time.monotonic() < t0 + at:
                time.sleep(0.05)
            if what == "reload":
                mark = rampart.log_size()
                os.kill(cur, signal.SIGHUP)
                rampart.wait_log(rf"\b{cur}#0: configuration reloaded", since=mark, timeout=20)
            else:
                up.replace_binary(binpath)
                new = masters.usr2(cur, workers=2, timeout=20)
                exes.append(up.exe_of(new))
                n = h1.ok
                wait_for(lambda: h1.ok > n + 10, timeout=20, what="both masters serving")
                masters.winch(cur, new, timeout=40)
                masters.quit(cur, timeout=40)
                cur = new
            done[what] += 1
        # a slow machine (sanitizers) may take longer over the upgrades: the load then
        # goes on a little past the last event rather than ending before it
        until[0] = max(until[0], time.monotonic() + 3)
        last = [c.ok for c in (h1, quota, h2, unary, streams, wss)]

        for t in threads:
            t.join(timeout=RUN_S + 40)
        h1.stop()
        quota.stop()
        h2.stop()

        assert done == {"reload": RELOADS, "upgrade": len(UPGRADES_AT)}
        failures = (h1.failures + quota.failures + h2.failures + unary.failures
                    + streams.failures + wss.failures)
        assert failures == [], failures[:10]
        # every kind of traffic ran all along
        assert h1.ok > 1000 and quota.ok > 300 and unary.ok > 300, (h1.ok, quota.ok, unary.ok)
        assert streams.ok > 20 and wss.ok > 10 and h2.ok > 1000, \
            (streams.ok, wss.ok, h2.ok)
        # ... and after the last event too
        assert all(c.ok > n for c, n in zip((h1, quota, h2, unary, streams, wss), last)), last
        # the new file each time, under the same path
        assert exes == [str(binpath)] * len(UPGRADES_AT)
        assert up.pid_in(rampart.pid_file) == cur == masters.started[-1]
        # the quota counted every request across two upgrades and ten reloads
        assert up.remaining(port, "/counted") == LIMIT - counted_before - quota.ok - 1
        rest = peers(port)[dead]
        assert rest["state"] == "unavailable" and rest["failures"] == 1
        print(f"\nchaos: http/1.1 {h1.ok} (+{h1.retried} retried on closed keep-alive), "
              f"quota {quota.ok}, http/2 {h2.ok} (+{h2.retried} refused by GOAWAY, sent again, "
              f"{h2.connections} connections), grpc unary {unary.ok}, "
              f"grpc streams {streams.ok}, websocket sessions {wss.ok}; "
              f"{RELOADS} reloads, {len(UPGRADES_AT)} upgrades")
    finally:
        if h2 is not None:
            h2.stop()
        ws.stop()
        g.stop()
