"""Canary splits: proxy_canary and grpc_canary send a weighted share of a
location's requests to another upstream. Without key= each request goes there
by chance; with key= the key's hash decides, so a key always lands on the same
side (in every worker); header= lets a request force either side.
$upstream_canary says which side a request took.

The share tests need thousands of requests: the backends are rampart's own
`return` servers (fast under ASan too) and the client pipelines requests over
a few keep-alive connections in parallel."""

import json
import re
import socket
import threading

import grpc
import pytest

from harness import request, run, wait_for
from h2client import H2Client
from test_grpc import SVC, Server


def backends(port_stable, port_canary):
    """Two servers answering with their side's name, without access log lines."""
    return (f"server {{ listen 127.0.0.1:{port_stable}; access_log off; "
            f"location / {{ return 200 \"stable\"; }} }}\n"
            f"server {{ listen 127.0.0.1:{port_canary}; access_log off; "
            f"location / {{ return 200 \"canary\"; }} }}\n"
            f"upstream stable {{ server 127.0.0.1:{port_stable}; keepalive 16; }}\n"
            f"upstream canary {{ server 127.0.0.1:{port_canary}; keepalive 16; }}\n")


def serve(rampart, free_port, locations, workers=1, listen="", http=""):
    port = free_port()
    rampart.configure(backends(free_port(), free_port()) + http +
                      f"server {{\n listen 127.0.0.1:{port} {listen};\n{locations}\n}}",
                      workers=workers)
    rampart.start()
    return port


def pipeline(port, reqs, batch=100):
    """Sends raw requests over one keep-alive connection, batch at a time; returns the
    (status, body) of each, in order."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        buf = b""
        for i in range(0, len(reqs), batch):
            chunk = reqs[i:i + batch]
            s.sendall(b"".join(chunk))
            for _ in chunk:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    assert data, "the connection closed early"
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    data = s.recv(65536)
                    assert data, "the connection closed early"
                    buf += data
                out.append((status, buf[:n]))
                buf = buf[n:]
    return out


def parallel(port, reqs, conns=16):
    """pipeline() over conns connections at once; the results in the order of reqs."""
    parts = [reqs[i::conns] for i in range(conns)]
    results = [None] * conns
    errors = []

    def run_one(i):
        try:
            results[i] = pipeline(port, parts[i])
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
    threads = [threading.Thread(target=run_one, args=(i,)) for i in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    out = [None] * len(reqs)
    for i in range(conns):
        out[i::conns] = results[i]
    return out


def get(path, headers=()):
    lines = [f"GET {path} HTTP/1.1", "Host: localhost"] + [f"{n}: {v}" for n, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sides(results):
    assert all(status == 200 for status, _ in results), {s for s, _ in results}
    return [body.decode() for _, body in results]


def check(conf_dir, http_text):
    """`rampart -t` on a configuration with this http{} body: (path, result)."""
    text = "worker_processes 1;\npid logs/rampart.pid;\n\nhttp {\n" + http_text + "\n}\n"
    path = conf_dir / "rampart.conf"
    path.write_text(text)
    return path, run("-t", "-p", conf_dir, "-c", "rampart.conf")


# -- shares ------------------------------------------------------------------------


def test_canary_share_is_within_2_percent_of_its_weight_over_10000_requests(rampart, free_port):
    port = serve(rampart, free_port,
                 "location / { proxy_pass http://stable; proxy_canary canary weight=20%; "
                 "access_log logs/split.log split; }",
                 workers=2, http="log_format split '$upstream_canary $upstream_addr';\n")
    got = sides(parallel(port, [get(f"/r{i}") for i in range(10000)]))
    share = got.count("canary") / len(got)
    assert abs(share - 0.20) <= 0.02, share
    # $upstream_canary agrees with where each request went
    log = rampart.prefix / "logs" / "split.log"
    wait_for(lambda: log.exists() and log.read_text().count("\n") >= 10000, timeout=15,
             what="10000 access log lines")
    marks = [line.split()[0] for line in log.read_text().splitlines()]
    assert marks.count("1") == got.count("canary")
    assert marks.count("0") == got.count("stable")


def test_weight_0_and_100_send_everything_to_one_side(rampart, free_port):
    port = serve(rampart, free_port,
                 "location /none { proxy_pass http://stable; proxy_canary canary weight=0%; }\n"
                 "location /all { proxy_pass http://stable; proxy_canary canary weight=100%; }")
    assert set(sides(pipeline(port, [get("/none")] * 300))) == {"stable"}
    assert set(sides(pipeline(port, [get("/all")] * 300))) == {"canary"}


def test_a_key_always_lands_on_the_same_side_and_weight_of_keys_go_canary(rampart, free_port):
    port = serve(rampart, free_port,
                 "location /a { proxy_pass http://stable; "
                 "proxy_canary canary weight=30% key=$cookie_user; }\n"
                 "location /b { proxy_pass http://stable; "
                 "proxy_canary canary weight=10% key=$cookie_user; }",
                 workers=2)
    users = [f"user-{i}" for i in range(2000)]
    reqs = [get(f"/{loc}", [("Cookie", f"theme=dark; user={u}")])
            for loc in ("a", "b") for u in users for _ in range(2)]
    got = sides(parallel(port, reqs))
    n = len(users)
    a = [got[2 * i:2 * i + 2] for i in range(n)]
    b = [got[2 * n + 2 * i:2 * n + 2 * i + 2] for i in range(n)]
    # sticky: both requests of a key (on different connections, so likely different
    # workers) went to the same side
    assert all(x[0] == x[1] for x in a + b)
    canary_a = {u for u, x in zip(users, a) if x[0] == "canary"}
    canary_b = {u for u, x in zip(users, b) if x[0] == "canary"}
    assert abs(len(canary_a) / n - 0.30) <= 0.04, len(canary_a)
    assert abs(len(canary_b) / n - 0.10) <= 0.03, len(canary_b)
    # a larger weight only adds keys to the canary
    assert canary_b <= canary_a


def test_an_empty_key_falls_back_to_chance(rampart, free_port):
    port = serve(rampart, free_port,
                 "location / { proxy_pass http://stable; "
                 "proxy_canary canary weight=50% key=$cookie_user; }")
    got = sides(pipeline(port, [get("/")] * 400))
    assert 0.35 <= got.count("canary") / len(got) <= 0.65


def test_the_forcing_header_wins_both_ways(rampart, free_port):
    port = serve(rampart, free_port,
                 "location /never { proxy_pass http://stable; "
                 "proxy_canary canary weight=0% header=X-Canary; }\n"
                 "location /always { proxy_pass http://stable; "
                 "proxy_canary canary weight=100% key=$arg_k header=X-Canary; }")
    for v in ("1", "on", "true", "canary", "TRUE", "Canary"):
        assert sides(pipeline(port, [get("/never", [("X-Canary", v)])])) == ["canary"], v
    for v in ("0", "off", "false", "stable", "primary", "OFF"):
        assert sides(pipeline(port, [get("/always?k=7", [("X-Canary", v)])])) == ["stable"], v
    # anything else is ignored: the weight decides
    for v in ("maybe", "2", ""):
        assert sides(pipeline(port, [get("/never", [("X-Canary", v)])])) == ["stable"], v
        assert sides(pipeline(port, [get("/always", [("X-Canary", v)])])) == ["canary"], v


def test_canary_gets_its_own_proxy_host_and_can_be_an_address(rampart, free_port,
                                                               backend_factory):
    be = backend_factory("addr")
    port = serve(rampart, free_port,
                 f"location / {{ proxy_pass http://stable; "
                 f"proxy_canary {be.addr} weight=100%; }}")
    r = request(port, "/?echo=1")
    assert r.status == 200 and r.headers["X-Backend-Name"] == "addr"
    assert ["Host", be.addr] in json.loads(r.body)["headers"]


def test_canary_beside_a_proxy_pass_with_variables(rampart, free_port):
    port = serve(rampart, free_port,
                 "location / { proxy_pass http://$arg_pool; "
                 "proxy_canary canary weight=0% header=X-Canary; }")
    assert sides(pipeline(port, [get("/?pool=stable")])) == ["stable"]
    assert sides(pipeline(port, [get("/?pool=stable", [("X-Canary", "1")])])) == ["canary"]


# -- HTTP/2 clients and gRPC ----------------------------------------------------------


def test_http2_clients_are_split_and_forced_too(rampart, free_port):
    port = serve(rampart, free_port,
                 "location / { proxy_pass http://stable; "
                 "proxy_canary canary weight=25% header=X-Canary; }",
                 listen="http2")
    with H2Client(port) as c:
        got = []
        for _ in range(8):  # under http2_max_requests (1000) on one connection
            got += [bytes(r.body).decode()
                    for r in c.exchange([("GET", "/", [], b"")] * 100)]
        forced = c.exchange([("GET", "/", [("x-canary", "on")], b"")] * 20 +
                            [("GET", "/", [("x-canary", "stable")], b"")] * 20)
    share = got.count("canary") / len(got)
    assert abs(share - 0.25) <= 0.05, share
    assert [bytes(r.body).decode() for r in forced] == ["canary"] * 20 + ["stable"] * 20


def test_grpc_canary_sends_calls_to_the_canary_server(rampart, port):
    primary, canary = Server(), Server()
    try:
        rampart.configure(f"upstream grpc_canary_pool {{ server 127.0.0.1:{canary.port}; }}\n"
                          f"server {{\n listen 127.0.0.1:{port} http2;\n"
                          f" location / {{ grpc_pass grpc://127.0.0.1:{primary.port}; "
                          f"grpc_canary grpc_canary_pool weight=0% header=x-canary; }}\n}}")
        rampart.start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(f"/{SVC}/Unary")
            assert call(b"a", timeout=5) == b"echo:a"
            assert call(b"b", timeout=5, metadata=[("x-canary", "canary")]) == b"echo:b"
            assert call(b"c", timeout=5) == b"echo:c"
        assert len(primary.metadata) == 2 and len(canary.metadata) == 1
    finally:
        primary.stop()
        canary.stop()


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("location,message", [
    ("proxy_pass http://127.0.0.1:1; proxy_canary 127.0.0.1:2;",
     '"proxy_canary": no weight= (the share of requests the canary gets, such as weight=5%)'),
    ("proxy_pass http://127.0.0.1:1; proxy_canary 127.0.0.1:2 weight=5;",
     '"proxy_canary": invalid weight "5" (a percentage from 0% to 100%, such as 5% or 0.5%)'),
    ("proxy_pass http://127.0.0.1:1; proxy_canary 127.0.0.1:2 weight=101%;",
     '"proxy_canary": invalid weight "101%"'),
    ("proxy_pass http://127.0.0.1:1; proxy_canary 127.0.0.1:2 weight=5% sticky;",
     '"proxy_canary": invalid parameter "sticky"'),
    ("proxy_pass http://127.0.0.1:1; proxy_canary 127.0.0.1:2 weight=5% header=X:Y;",
     '"proxy_canary": invalid header name "X:Y"'),
    ("proxy_pass http://127.0.0.1:1; proxy_canary http://127.0.0.1:2/v2 weight=5%;",
     '"proxy_canary": the target "http://127.0.0.1:2/v2" is an upstream name or host:port, '
     'without a URI part'),
    ("proxy_pass http://127.0.0.1:1; proxy_canary 127.0.0.1:2 weight=5%; "
     "proxy_canary 127.0.0.1:3 weight=5%;",
     '"proxy_canary": is duplicate'),
    ("proxy_canary 127.0.0.1:2 weight=5%;",
     '"proxy_canary": needs "proxy_pass" in the same location'),
    ("proxy_pass http://127.0.0.1:1; grpc_canary 127.0.0.1:2 weight=5%;",
     '"grpc_canary": is for a location with "grpc_pass"; this one has "proxy_pass" '
     '(use "proxy_canary")'),
    ("proxy_pass $arg_u; proxy_canary 127.0.0.1:2 weight=5%;",
     '"proxy_canary": the scheme of "proxy_pass" is chosen per request: write the '
     "canary's (http:// or https://)"),
])
def test_canary_configuration_errors_name_file_line_and_directive(conf_dir, location, message):
    path, p = check(conf_dir, f"server {{ listen 127.0.0.1:1;\nlocation / {{\n{location}\n}} }}")
    assert p.returncode != 0
    assert f"{path}:7: {message}" in p.stderr, p.stderr


def test_canary_target_host_must_resolve_when_the_configuration_is_read(conf_dir):
    path, p = check(conf_dir, "server { listen 127.0.0.1:1;\nlocation / {\n"
                              "proxy_pass http://127.0.0.1:1;\n"
                              "proxy_canary nosuch.example.invalid weight=5%;\n} }")
    assert p.returncode != 0
    assert f'{path}:8: "proxy_canary": ' in p.stderr and "nosuch.example.invalid" in p.stderr
