"""The binary upgrade, as nginx's (USR2 starts a new master from the binary's path with
the listening sockets and the shared memory zones; WINCH stops the old workers; QUIT
retires the old master; HUP to it rolls back), and reloads that finish long-lived
streams instead of cutting them.

rampart is started from a copy of the binary in the test's folder; the file is
replaced before USR2, and /proc/PID/exe shows the new master runs the new file. The
HTTP/1.1 load is upgrade_util.H1Load: every request counted, none may fail."""

import asyncio
import os
import signal
import threading
import time

import grpc
import websockets
import pytest

import harness
import upgrade_util as up
from harness import wait_for
from test_grpc import Server as GrpcServer, SVC
from test_upstream_state import dead_addr, peers
from test_websocket import WsBackend, connect

LIMIT = 1000000


@pytest.fixture
def binpath(tmp_path, monkeypatch):
    path = up.copy_binary(tmp_path / "bin")
    monkeypatch.setattr(harness, "BIN", path)  # Rampart.start runs this file
    return path


@pytest.fixture
def masters(rampart, binpath):
    m = up.Masters(rampart)
    yield m
    m.cleanup()


def conf(port, live, dead, extra=""):
    return f"""
    limit_count_zone $binary_remote_addr zone=quota:1m limit={LIMIT} window=1d;
    upstream pool {{ server {live}; server {dead} max_fails=1 fail_timeout=600s; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{live}; }}
        location /counted {{
            limit_count zone=quota;
            add_header X-Remaining $limit_count_remaining always;
            proxy_pass http://{live};
        }}
        location /pool {{ proxy_pass http://pool; proxy_connect_timeout 1s; }}
        location = /upstreams {{ upstream_status; }}
        {extra}
    }}
    """


def start(rampart, port, backend, workers=2):
    dead = dead_addr()
    rampart.configure(conf(port, backend.addr, dead), workers=workers)
    rampart.start()
    return dead


def test_usr2_then_winch_and_quit_hands_over_without_a_failed_request(
        rampart, masters, binpath, port, backend):
    dead = start(rampart, port, backend)
    old = rampart.pid
    # the shared state to carry: a quota's count, a peer resting after a failure
    for _ in range(5):
        assert up.remaining(port, "/counted") >= 0
    for _ in range(4):
        assert harness.get(port, "/pool", headers={"Connection": "close"}).status == 200
    before = peers(port)[dead]
    assert before["state"] == "unavailable" and before["failures"] == 1

    # three clients open a connection per request: their SYNs land all through the switch
    load = up.H1Load(port, keepalive=2, fresh=3).start()
    try:
        wait_for(lambda: load.ok > 20, what="load before the upgrade")
        up.replace_binary(binpath)
        new = masters.usr2(old, workers=2)
        assert up.exe_of(old) == f"{binpath} (deleted)"
        assert up.exe_of(new) == str(binpath)  # the file now at the path, not the old one
        assert up.pid_in(masters.oldbin) == old
        # both masters' workers serve; the quota counts on in the carried zone
        assert up.remaining(port, "/counted") == LIMIT - 6
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load while both serve")
        masters.winch(old, new)
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load on the new workers alone")
        masters.quit(old)
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load after the old master left")
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert up.pid_in(rampart.pid_file) == new and not masters.oldbin.exists()
    assert up.remaining(port, "/counted") == LIMIT - 7
    after = peers(port)[dead]
    assert after["state"] == "unavailable" and after["failures"] == 1  # still resting
    rampart.wait_log(rf"{new}#0: zone \"quota\" is carried over from the old master")
    # the same sockets (no bind of its own beside them, whose backlog would die with it)
    rampart.wait_log(rf"{new}#0: took over 2 of 2 listening sockets from the old master")


def test_usr2_then_rollback_hup_to_the_old_master_and_quit_the_new(
        rampart, masters, binpath, port, backend):
    start(rampart, port, backend)
    old = rampart.pid
    load = up.H1Load(port).start()
    try:
        new = masters.usr2(old, workers=2)
        masters.winch(old, new)
        assert harness.children_of(old) == [new]
        # the new binary misbehaves: the old master's workers come back with its
        # configuration, the new master goes
        mark = rampart.log_size()
        rampart.signal(signal.SIGHUP)
        rampart.wait_log(rf"{old}#0: started 2 worker processes", since=mark)
        wait_for(lambda: len(harness.children_of(old)) == 4, what="old workers back")
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load on both again")
        masters.quit(new)
        rampart.wait_log(rf"{old}#0: the new binary's master {new} exited with code 0",
                         since=mark)
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load on the old master alone")
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert up.pid_in(rampart.pid_file) == old and not masters.oldbin.exists()
    assert rampart.running()


def test_usr2_with_a_broken_configuration_keeps_the_old_master_serving(
        rampart, masters, binpath, port, backend):
    start(rampart, port, backend)
    old = rampart.pid
    good = rampart.conf_text
    rampart.configure(text=good + "\nno_such_directive on;\n")
    mark = rampart.log_size()
    load = up.H1Load(port).start()
    try:
        rampart.signal(signal.SIGUSR2)
        rampart.wait_log(rf"{old}#0: the new binary's master \d+ exited with code 1: this one "
                         r"goes on", since=mark)
        wait_for(lambda: up.pid_in(rampart.pid_file) == old and not masters.oldbin.exists(),
                 what="the pid file back")
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load after the failed upgrade")
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert "unknown directive \"no_such_directive\"" in rampart.stderr_text()
    # and a later upgrade with a good configuration still works
    rampart.configure(text=good)
    new = masters.usr2(old, workers=2)
    assert harness.get(port, "/", headers={"Connection": "close"}).status == 200
    masters.quit(old)
    assert up.pid_in(rampart.pid_file) == new


def test_a_new_master_that_dies_after_winch_gives_the_old_one_its_pid_file_and_traffic(
        rampart, masters, binpath, port, backend):
    start(rampart, port, backend)
    old = rampart.pid
    load = up.H1Load(port).start()
    try:
        new = masters.usr2(old, workers=2)
        masters.winch(old, new)
        mark = rampart.log_size()
        orphans = harness.children_of(new)
        os.kill(new, signal.SIGKILL)  # the new binary crashes
        rampart.wait_log(rf"{old}#0: the new binary's master {new} exited on signal 9: this "
                         r"one goes on", since=mark)
        rampart.wait_log(rf"{old}#0: started 2 worker processes", since=mark)
        wait_for(lambda: up.pid_in(rampart.pid_file) == old and not masters.oldbin.exists(),
                 what="the pid file back")
        # the crashed master's workers drain and go (PR_SET_PDEATHSIG)
        wait_for(lambda: not any(up.alive(k) for k in orphans), timeout=15,
                 what="the new master's workers gone")
        n = load.ok
        wait_for(lambda: load.ok > n + 20, what="load on the old master's new workers")
    finally:
        load.stop()
    assert load.failures == [], load.failures[:5]
    assert rampart.running()


def test_a_second_usr2_while_an_upgrade_is_pending_is_refused(
        rampart, masters, binpath, port, backend):
    start(rampart, port, backend, workers=1)
    old = rampart.pid
    new = masters.usr2(old, workers=1)
    mark = rampart.log_size()
    rampart.signal(signal.SIGUSR2)
    rampart.wait_log(rf"{old}#0: binary upgrade refused: the new master {new} started by the "
                     r"last one still runs", since=mark)
    os.kill(new, signal.SIGUSR2)  # the new one may not upgrade while the old one runs
    rampart.wait_log(rf"{new}#0: binary upgrade refused: the old master {old} still runs",
                     since=mark)
    assert up.pid_in(rampart.pid_file) == new and up.pid_in(masters.oldbin) == old
    assert masters.started == [new]


# -- reloads and long-lived streams ----------------------------------------------------


def test_reload_during_a_long_websocket_lets_it_finish(rampart, port, tmp_path):
    ws = WsBackend(tmp_path / "ws")
    try:
        rampart.configure(f"""
        server {{ listen 127.0.0.1:{port};
                  location / {{ proxy_pass http://{ws.addr}; proxy_read_timeout 60s; }} }}
        """, workers=2, main="worker_shutdown_timeout 30s;")
        rampart.start()

        async def session():
            async with connect(port) as c:
                for i in range(5):
                    await c.send(f"before {i}")
                    assert await c.recv() == f"before {i}"
                mark = rampart.log_size()
                rampart.reload()
                await asyncio.to_thread(rampart.wait_log, r"gracefully shutting down", mark)
                # the old worker drains, but this stream is not cut: it goes on
                for i in range(20):
                    await c.send(f"after {i}")
                    assert await c.recv() == f"after {i}"
                    await asyncio.sleep(0.05)
                await c.close(1000, "done")
                return mark
        mark = asyncio.run(asyncio.wait_for(session(), 30))
        rampart.wait_log(r"generation 0 has drained", since=mark, timeout=15)
        assert "worker_shutdown_timeout reached" not in rampart.log_text()
        ws.wait_event("closed /echo 1000")
    finally:
        ws.stop()


def test_reload_during_a_grpc_stream_lets_it_finish(rampart, port):
    g = GrpcServer()
    try:
        rampart.configure(f"""
        server {{ listen 127.0.0.1:{port} http2;
                  location / {{ grpc_pass grpc://127.0.0.1:{g.port}; grpc_read_timeout 60s; }} }}
        """, workers=2, main="worker_shutdown_timeout 30s;")
        rampart.start()
        reloaded = threading.Event()

        def messages():
            for i in range(40):
                if i == 5:
                    rampart.reload()
                    reloaded.set()
                yield f"m{i}".encode()
                time.sleep(0.05)

        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            bidi = ch.stream_stream(f"/{SVC}/Bidi")
            got = list(bidi(messages(), timeout=30))
        assert reloaded.is_set()
        assert len(got) == 40
        rampart.wait_log(r"generation 0 has drained", timeout=15)
        assert "worker_shutdown_timeout reached" not in rampart.log_text()
    finally:
        g.stop()


def test_worker_shutdown_timeout_closes_a_websocket_with_1001_and_ends_a_grpc_stream(
        rampart, port, free_port, tmp_path):
    """Streams still open when worker_shutdown_timeout expires are closed: the gRPC
    client (which had the GOAWAY when the drain began) sees UNAVAILABLE, which it may
    retry, and both ends of the WebSocket get a close frame 1001 (going away)."""
    ws = WsBackend(tmp_path / "ws")
    g = GrpcServer()
    h2port = free_port()
    try:
        rampart.configure(f"""
        server {{ listen 127.0.0.1:{port};
                  location / {{ proxy_pass http://{ws.addr}; proxy_read_timeout 60s; }} }}
        server {{ listen 127.0.0.1:{h2port} http2;
                  location / {{ grpc_pass grpc://127.0.0.1:{g.port}; grpc_read_timeout 60s; }} }}
        """, workers=1, main="worker_shutdown_timeout 1s;")
        rampart.start()
        release = threading.Event()
        first = threading.Event()
        outcome = {}

        def messages():
            yield b"hello"
            first.set()
            release.wait(30)  # the client sends nothing more: the stream stays open

        def stream():
            with grpc.insecure_channel(f"127.0.0.1:{h2port}") as ch:
                bidi = ch.stream_stream(f"/{SVC}/Bidi")
                try:
                    outcome["got"] = list(bidi(messages(), timeout=30))
                except grpc.RpcError as e:
                    outcome["code"] = e.code()
        t = threading.Thread(target=stream, daemon=True)
        t.start()

        async def session():
            async with connect(port) as c:
                await c.send("x")
                assert await c.recv() == "x"
                await asyncio.to_thread(first.wait, 10)
                mark = rampart.log_size()
                rampart.reload()
                await asyncio.to_thread(
                    rampart.wait_log,
                    r"worker_shutdown_timeout reached with 2 connections open", mark, 15)
                try:
                    await asyncio.wait_for(c.recv(), 15)
                except websockets.ConnectionClosed:
                    return c.close_code
                return "still open"
        # a close frame 1001 ("going away") between two frames, to each end
        assert asyncio.run(asyncio.wait_for(session(), 40)) == 1001
        ws.wait_event("closed /echo 1001")
        t.join(timeout=20)
        release.set()
        assert outcome.get("code") == grpc.StatusCode.UNAVAILABLE, outcome
    finally:
        release.set()
        ws.stop()
        g.stop()


def test_a_peer_marked_down_with_the_admin_api_stays_down_across_the_upgrade(
        rampart, masters, binpath, free_port, backend_factory):
    from test_admin_api import api, conf as admin_conf, doc, peer, traffic
    a, b = backend_factory("a"), backend_factory("b")
    port, api_port = free_port(), free_port()
    rampart.configure(admin_conf(port, api_port, [a.addr, b.addr]), workers=2)
    rampart.start()
    r = doc(api(api_port, f"/upstreams/pool/peers/{b.addr}", method="PATCH",
                body={"state": "down"}))
    assert r["state"] == "down"
    assert traffic(port, 12, a, b) == [12, 0]
    old = rampart.pid
    new = masters.usr2(old, workers=2)
    masters.winch(old, new)
    masters.quit(old)
    # only the new binary's workers answer now, from the carried zones
    assert peer(api_port, b.addr)["state"] == "down"
    assert traffic(port, 12, a, b) == [12, 0]
    rampart.wait_log(rf"{new}#0: zone \"rampart_admin\" is carried over from the old master")
