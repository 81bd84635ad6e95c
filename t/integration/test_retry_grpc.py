"""The retry policy over HTTP/2 upstreams, with real gRPC servers and a real gRPC client:
a call answered UNAVAILABLE (trailers-only) goes to another peer when retry_on names
`unavailable`, a hanging peer is left after per_try_timeout, and a client's grpc-timeout
still bounds the whole call across tries."""

import threading
import time
from concurrent import futures

import grpc
import pytest

SVC = "test.Retry"


class Server:
    """A gRPC server in this process whose one method answers OK, UNAVAILABLE or hangs."""

    def __init__(self, mode):
        self.mode = mode
        self.calls = 0
        self.lock = threading.Lock()
        handlers = {"Call": grpc.unary_unary_rpc_method_handler(self.call)}
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SVC, handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def call(self, request, ctx):
        with self.lock:
            self.calls += 1
        if self.mode == "unavailable":
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "shedding load")
        if self.mode == "hang":
            end = time.monotonic() + 30
            while ctx.is_active() and time.monotonic() < end:
                time.sleep(0.02)
            return b""
        return b"ok:" + request

    def stop(self):
        self.server.stop(0)


@pytest.fixture
def gservers():
    made = []

    def make(mode):
        s = Server(mode)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def serve(rampart, port, servers, location):
    lines = "\n".join(f"server 127.0.0.1:{s.port} max_fails=0;" for s in servers)
    rampart.configure(f"""
    upstream pool {{
        {lines}
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://pool;
            {location}
        }}
    }}
    """, workers=1, log_level="warn")
    rampart.start()


def call(port, payload=b"x", timeout=10):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return ch.unary_unary(f"/{SVC}/Call")(payload, timeout=timeout)


def test_unavailable_goes_to_the_next_peer_when_the_policy_names_it(rampart, port, gservers):
    down, up = gservers("unavailable"), gservers("ok")
    serve(rampart, port, [down, up], "retry_on unavailable;")
    for i in range(6):
        assert call(port, b"%d" % i) == b"ok:%d" % i
    assert down.calls == 3 and up.calls == 6
    rampart.wait_log(r"retrying \"POST /test\.Retry/Call\" after grpc-status 14 from")


def test_unavailable_reaches_the_client_without_the_condition(rampart, port, gservers):
    down, up = gservers("unavailable"), gservers("ok")
    serve(rampart, port, [down, up], "")
    codes = []
    for _ in range(4):
        try:
            call(port)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
            assert e.details() == "shedding load"  # the server's own status
    assert sorted(codes) == ["OK", "OK", "UNAVAILABLE", "UNAVAILABLE"]


def test_a_hanging_grpc_peer_is_left_after_the_per_try_timeout(rampart, port, gservers):
    hang, up = gservers("hang"), gservers("ok")
    serve(rampart, port, [hang, up],
          "retry_on timeout; per_try_timeout 300ms; retry_non_idempotent on;")
    for i in range(4):
        assert call(port, b"%d" % i, timeout=20) == b"ok:%d" % i
    assert hang.calls == 2


def test_a_timed_out_grpc_call_is_not_sent_again_unless_allowed(rampart, port, gservers):
    # every call is a POST: one that may have reached the peer goes once
    hang, up = gservers("hang"), gservers("ok")
    serve(rampart, port, [hang, up], "retry_on timeout; per_try_timeout 300ms;")
    codes = []
    for _ in range(4):
        try:
            call(port, timeout=20)
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
    assert sorted(codes) == ["OK", "OK", "UNAVAILABLE", "UNAVAILABLE"]
    assert hang.calls == 2


def test_the_clients_deadline_bounds_all_tries(rampart, port, gservers):
    a, b = gservers("hang"), gservers("hang")
    serve(rampart, port, [a, b], "retry_on timeout; per_try_timeout 2s;")
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        call(port, timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 1.9  # before even the first per-try timeout
