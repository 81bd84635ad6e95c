"""proxy_pass to an `upstream { http2; }` group: requests from HTTP/1.1 and
HTTP/2 clients go to the server over HTTP/2 (cleartext, prior knowledge),
multiplexed over few connections, with bodies streamed both ways, the peer's
MAX_CONCURRENT_STREAMS honoured, GOAWAY absorbed, and the HTTP/1 proxy's
failure answers (502 when the server cannot be reached, 504 on a timeout).

The backend is h2_backend.py (python3-h2): query parameters say how it
answers, and GET /__stats counts its connections, requests and the most streams
it saw open at once on one connection."""

import hashlib
import json
import socket
import threading
import time

import pytest

import harness
from backend import pattern, pattern_sha256
from h2_backend import H2Backend
from h2client import H2Client, h2_request
from harness import request

MB = 1 << 20


@pytest.fixture
def h2_backend_factory():
    made = []

    def make(**kw):
        b = H2Backend(**kw).start()
        made.append(b)
        return b
    yield make
    for b in made:
        b.stop()


@pytest.fixture
def h2be(h2_backend_factory):
    return h2_backend_factory()


def serve(rampart, port, be_addr, upstream="", location="", http="", workers=1):
    rampart.configure(f"client_max_body_size 0;\n{http}\n"
                      f"upstream be {{ server {be_addr}; http2; {upstream} }}\n"
                      f"server {{\n listen 127.0.0.1:{port} http2;\n"
                      f" location / {{ proxy_pass http://be; {location} }}\n}}",
                      workers=workers)
    rampart.start()
    return rampart


def stats(be):
    return json.loads(h2_request(be.port, "GET", "/__stats").body)


def reset_stats(be):
    h2_request(be.port, "GET", "/__reset")


# -- requests and bodies -------------------------------------------------------


def test_http1_client_request_goes_upstream_over_http2(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    r = request(port, "/a/b?echo=1&x=1", headers={"X-Custom": "v", "Connection": "X-Gone",
                                                 "X-Gone": "1", "Keep-Alive": "5"})
    assert r.status == 200
    e = json.loads(r.body)
    assert e["method"] == "GET"
    assert e["path"] == "/a/b?echo=1&x=1"
    assert e["authority"] == "be"  # proxy_set_header Host's default, $proxy_host
    assert e["scheme"] == "http"
    names = [n for n, _ in e["headers"]]
    assert all(n == n.lower() for n in names)
    assert ["x-custom", "v"] in e["headers"]
    assert ["x-forwarded-for", "127.0.0.1"] in e["headers"]
    for gone in ("connection", "keep-alive", "x-gone", "host", "transfer-encoding"):
        assert gone not in names
    # the response's fields come back, rampart's own Server and Date
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["Server"].startswith("rampart")


def test_http2_client_request_goes_upstream_over_http2(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    r = h2_request(port, "GET", "/p?echo=1", headers=[("x-custom", "v")])
    assert r.status == 200
    e = json.loads(r.body)
    assert e["path"] == "/p?echo=1" and ["x-custom", "v"] in e["headers"]
    assert r.header("content-length") == str(len(r.body))


def test_proxy_set_header_host_becomes_the_authority(rampart, port, h2be):
    serve(rampart, port, h2be.addr, location="proxy_set_header Host api.example;")
    e = json.loads(request(port, "/?echo=1").body)
    assert e["authority"] == "api.example"
    assert "host" not in [n for n, _ in e["headers"]]


def test_post_5mb_body_streams_to_upstream_from_http1(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    body = bytes(range(256)) * (5 * MB // 256)
    r = request(port, "/?echo=1", method="POST", body=body, timeout=20)
    assert r.status == 200
    e = json.loads(r.body)
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert ["content-length", str(len(body))] in e["headers"]


def test_post_5mb_body_streams_to_upstream_from_http2(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    body = bytes(range(251)) * (5 * MB // 251)
    with H2Client(port, timeout=20) as c:
        r = c.request("POST", "/?echo=1", body=body)
    assert r.status == 200
    e = json.loads(r.body)
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_goes_without_length(rampart, port, h2be):
    serve(rampart, port, h2be.addr)

    def chunks():
        yield b"a" * 1000
        yield b"b" * 3000
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/?echo=1", body=chunks(), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    e = json.loads(conn.getresponse().read())
    conn.close()
    assert e["body_length"] == 4000
    assert "content-length" not in [n for n, _ in e["headers"]]


def test_large_download_streams_to_http1_client(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    n = 20 * MB
    r = request(port, f"/?size={n}", timeout=20)
    assert r.status == 200 and len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)


def test_large_download_streams_to_http2_client(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    n = 20 * MB
    with H2Client(port, timeout=20) as c:
        r = c.request("GET", f"/?size={n}")
    assert r.status == 200 and len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)


def test_slow_client_holds_the_upstream_stream_back(rampart, port, h2be):
    """The stream's window opens only as the client takes bytes: a client that stops
    reading leaves the backend blocked, not rampart's memory growing; it resumes where
    it stopped."""
    serve(rampart, port, h2be.addr)
    assert request(port, "/?size=100000").status == 200  # warm up
    total = 200 * MB
    pid = rampart.wait_processes(1)[0][0]

    def rss_kb():
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    base = rss_kb()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /?size={total} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = b""
    while len(got) < MB:
        got += s.recv(65536)
    body_start = got.index(b"\r\n\r\n") + 4
    received = len(got) - body_start
    time.sleep(2.0)  # the backend could send all 200 MB meanwhile
    growth_mb = (rss_kb() - base) / 1024
    data = s.recv(65536)
    s.close()
    assert data and data == pattern(len(data), received)
    assert growth_mb < 32, f"worker RSS grew by {growth_mb:.1f} MB"


def test_head_and_no_body_statuses(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    r = request(port, "/?size=1000", method="HEAD")
    assert r.status == 200 and r.body == b""
    r = request(port, "/?status=204")
    assert r.status == 204 and r.body == b""
    r = h2_request(port, "GET", "/?status=404")
    assert r.status == 404 and bytes(r.body) == b"ok\n"


def test_upstream_trailers_reach_http2_client(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    r = h2_request(port, "GET", "/?trailers=1&size=100000")
    assert r.status == 200 and len(r.body) == 100000
    assert r.trailer("x-trailer") == "done"
    # HTTP/1.1 cannot carry them here: the body still arrives whole
    r = request(port, "/?trailers=1&size=1000")
    assert r.status == 200 and len(r.body) == 1000


def test_response_fields_past_256k_give_502(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    assert request(port, "/?big_header=5").status == 200  # 150k: passes
    assert request(port, "/?big_header=9").status == 502
    rampart.wait_log(r"upstream sent too big header while reading response header")
    assert request(port, "/").status == 200  # the connection is still good


# -- connections ----------------------------------------------------------------


def test_sequential_requests_reuse_one_connection(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    for _ in range(10):
        assert request(port, "/").status == 200
    s = stats(h2be)
    assert s["requests"] == 10 and s["connections"] == 1


def test_concurrent_requests_multiplex_over_one_connection(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    with H2Client(port) as c:
        rs = c.exchange([("GET", "/?delay=0.3", [], b"")] * 30)
    assert [r.status for r in rs] == [200] * 30
    s = stats(h2be)
    assert s["connections"] == 1
    assert s["max_concurrent"] > 10


def test_peer_max_concurrent_streams_is_honoured(rampart, port, h2_backend_factory):
    be = h2_backend_factory(max_streams=2)
    serve(rampart, port, be.addr)
    results = []

    def client():
        with H2Client(port, timeout=20) as c:
            results.extend(c.exchange([("GET", "/?delay=0.1", [], b"")] * 10))
    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status for r in results] == [200] * 30
    s = stats(be)
    assert s["max_concurrent"] <= 2
    assert 1 <= s["connections"] <= 8  # RP_H2U_MAX_SESSIONS per worker and server


def test_keepalive_bounds_the_idle_connections_kept(rampart, port, h2_backend_factory):
    be = h2_backend_factory(max_streams=1)
    serve(rampart, port, be.addr, upstream="keepalive 2;")
    with H2Client(port, timeout=20) as c:
        rs = c.exchange([("GET", "/?delay=0.3", [], b"")] * 6)
    assert [r.status for r in rs] == [200] * 6
    assert stats(be)["connections"] >= 3  # one stream each: more connections were opened
    # two stay for the next requests (the third open one is the stats request's own)
    harness.wait_for(lambda: stats(be)["open_connections"] == 3, what="idle sessions closed")


def test_idle_connection_closes_after_keepalive_timeout(rampart, port, h2be):
    serve(rampart, port, h2be.addr, upstream="keepalive_timeout 1s;")
    assert request(port, "/").status == 200
    start = time.monotonic()
    assert stats(h2be)["open_connections"] == 2
    harness.wait_for(lambda: stats(h2be)["open_connections"] == 1, timeout=5,
                     what="the idle session to close")
    assert time.monotonic() - start > 0.5
    assert request(port, "/").status == 200  # and a new one opens


def test_upstream_goaway_mid_traffic_requests_still_succeed(rampart, port, h2_backend_factory):
    be = h2_backend_factory(goaway_after=3)
    serve(rampart, port, be.addr)
    for _ in range(7):
        assert request(port, "/?echo=1").status == 200
    with H2Client(port, timeout=20) as c:
        rs = c.exchange([("GET", "/?delay=0.05", [], b"")] * 20)
    assert [r.status for r in rs] == [200] * 20
    with H2Client(port, timeout=20) as c:
        rs = c.exchange([("POST", "/?echo=1", [], b"x" * 100)] * 5)
    assert [r.status for r in rs] == [200] * 5
    assert stats(be)["connections"] >= 3


def test_refused_stream_is_sent_again_with_its_body(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    body = bytes(range(256)) * 40  # 10k: kept for a second attempt
    r = request(port, "/?echo=1&refuse_once=a", method="POST", body=body)
    assert r.status == 200
    e = json.loads(r.body)
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert stats(h2be)["requests"] == 2
    # a body past 64k was not kept: that request cannot be sent again
    r = request(port, "/?echo=1&refuse_once=b", method="POST", body=b"z" * (200 * 1024))
    assert r.status == 502
    rampart.wait_log(r"upstream reset the stream \(REFUSED_STREAM\)")


# -- failures ---------------------------------------------------------------------


def test_upstream_down_gives_502(rampart, port):
    dead = harness.free_port()
    serve(rampart, port, f"127.0.0.1:{dead}")
    r = request(port, "/")
    assert r.status == 502
    assert h2_request(port, "GET", "/").status == 502
    rampart.wait_log(r"connect\(\) failed \(111: Connection refused\) while connecting to "
                     r"upstream.*upstream: \"http://127\.0\.0\.1:%d/\"" % dead)


def test_connect_failure_moves_to_the_next_server(rampart, port, h2be):
    dead = harness.free_port()
    rampart.configure(f"upstream be {{ server 127.0.0.1:{dead}; server {h2be.addr}; http2; }}\n"
                      f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://be; }} }}")
    rampart.start()
    for _ in range(4):
        assert request(port, "/").status == 200
    # the dead one failed once and rests (max_fails=1): one error in the log
    assert rampart.log_text().count("Connection refused") == 1


def test_read_timeout_gives_504(rampart, port, h2be):
    serve(rampart, port, h2be.addr, location="proxy_read_timeout 500ms;")
    r = request(port, "/?delay=3")
    assert r.status == 504
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while reading "
                     r"response header from upstream")
    assert h2_request(port, "GET", "/?delay=3").status == 504


def test_send_timeout_gives_504_when_the_upstream_window_stays_shut(rampart, port, h2be):
    serve(rampart, port, h2be.addr, location="proxy_send_timeout 500ms;")
    r = request(port, "/?stall_body=1", method="POST", body=b"s" * (256 * 1024))
    assert r.status == 504
    rampart.wait_log(r"upstream timed out \(110: Connection timed out\) while sending request "
                     r"to upstream")


def test_read_timeout_after_the_head_cuts_the_response(rampart, port, h2be):
    serve(rampart, port, h2be.addr, location="proxy_read_timeout 500ms;")
    r = h2_request(port, "GET", "/?size=100000&body_delay=2")
    assert r.status == 200 and r.reset is not None and len(r.body) < 100000


def test_upstream_reset_mid_body_cuts_the_response(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    r = h2_request(port, "GET", "/?size=100000&reset=20000")
    assert r.status == 200 and r.reset is not None and len(r.body) <= 20000
    with pytest.raises(Exception):
        request(port, "/?size=100000&reset=20000")  # HTTP/1: short of its length


def test_client_reset_cancels_the_upstream_stream(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    with H2Client(port) as c:
        sid = c.h2.get_next_available_stream_id()
        c.h2.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                (":authority", "x"), (":path", "/?delay=2")], end_stream=True)
        c.flush()
        harness.wait_for(lambda: stats(h2be)["requests"] == 1, what="request upstream")
        c.h2.reset_stream(sid, 8)
        c.flush()
        harness.wait_for(lambda: stats(h2be)["resets"] == 1, what="upstream stream reset")


# -- reloads and stops ----------------------------------------------------------------


def slow_request_in_background(port, path):
    out = {}

    def run():
        try:
            # Connection: close: the client connection ends within the response's last step
            out["r"] = request(port, path, headers={"Connection": "close"}, timeout=10)
        except Exception as e:  # noqa: BLE001 - reported by the test
            out["e"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_reload_in_one_process_finishes_streams_of_the_old_configuration(rampart, port, h2be):
    rampart.configure(f"upstream be {{ server {h2be.addr}; http2; }}\n"
                      f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://be; }} }}",
                      main="master_process off;")
    rampart.start()
    assert request(port, "/").status == 200  # an idle session of the old configuration
    t, out = slow_request_in_background(port, "/?delay=1&size=1000")
    harness.wait_for(lambda: stats(h2be)["requests"] == 2, what="the slow request upstream")
    rampart.reload()
    assert request(port, "/").status == 200  # the new configuration's own session
    t.join()
    assert out["r"].status == 200 and len(out["r"].body) == 1000
    # the old configuration's sessions closed with their last request: what stays open is
    # the new one's and the connection asking for the stats
    harness.wait_for(lambda: stats(h2be)["open_connections"] == 2,
                     what="old sessions to close")


def test_graceful_stop_finishes_streams_under_way(rampart, port, h2be):
    serve(rampart, port, h2be.addr)
    t, out = slow_request_in_background(port, "/?delay=1&size=5000")
    harness.wait_for(lambda: stats(h2be)["requests"] == 1, what="the request upstream")
    rampart.signal(harness.signal.SIGQUIT)
    t.join()
    assert out["r"].status == 200 and len(out["r"].body) == 5000
    assert rampart.wait_exit() == 0
