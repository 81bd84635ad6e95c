"""proxy_pass and grpc_pass with variables: the upstream chosen per request, as in
nginx. The evaluated host names an upstream block, else an address literal (which
gets a pool of its own per worker, with keep-alive connections), else it is a host
name rampart cannot resolve at request time (502, nginx's "no resolver defined"
line). A URI part in such a proxy_pass is sent as evaluated. https:// uses the
location's proxy_ssl_* settings.

Backends are backend.py processes (X-Backend-Name says which one answered,
X-Backend-Connection which of its connections), gRPC servers are test_grpc.py's."""

import json
import threading

import grpc
import pytest

from harness import request, run, wait_for
from h2_backend import H2Backend
from h2client import h2_request
from test_grpc import SVC, Server
from test_proxy_tls import tls_backend


def serve(rampart, port, location, http="", workers=1):
    rampart.configure(f"{http}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      f" location / {{ {location} }}\n}}", workers=workers)
    return rampart.start()


def name_of(r):
    assert r.status == 200, (r.status, r.body[:300])
    return r.headers["X-Backend-Name"]


def echo_of(r):
    assert r.status == 200, (r.status, r.body[:300])
    return json.loads(r.body)


def header(echo, name):
    return [v for n, v in echo["headers"] if n.lower() == name.lower()]


def check(conf_dir, http_text):
    """`rampart -t` on a configuration with this http{} body: (path, result)."""
    text = "worker_processes 1;\npid logs/rampart.pid;\n\nhttp {\n" + http_text + "\n}\n"
    path = conf_dir / "rampart.conf"
    path.write_text(text)
    return path, run("-t", "-p", conf_dir, "-c", "rampart.conf")


# -- choosing the upstream --------------------------------------------------------


def test_map_variable_routes_each_request_to_the_upstream_block_it_names(
        rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    serve(rampart, port, "proxy_pass http://$pool;",
          http=f"map $http_x_version $pool {{ default stable; v2 canary_v2; }}\n"
               f"upstream stable {{ server {a.addr}; }}\n"
               f"upstream canary_v2 {{ server {b.addr}; }}")
    assert name_of(request(port, "/x")) == "a"
    assert name_of(request(port, "/x", headers={"X-Version": "v2"})) == "b"
    assert name_of(request(port, "/x", headers={"X-Version": "v1"})) == "a"
    # the block's name is $proxy_host, the Host sent
    assert header(echo_of(request(port, "/?echo=1", headers={"X-Version": "v2"})),
                  "Host") == ["canary_v2"]


def test_upstream_block_name_matches_regardless_of_case(rampart, port, backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://$arg_pool;",
          http=f"upstream Stable {{ server {a.addr}; }}")
    assert name_of(request(port, "/?pool=sTABLE")) == "a"


def test_ip_literal_address_is_proxied_to_with_its_own_pool(rampart, port, backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://$http_x_target;")
    r = request(port, "/?echo=1", headers={"X-Target": a.addr})
    assert header(echo_of(r), "Host") == [a.addr]  # $proxy_host: the evaluated host


def test_ipv6_literal_address_in_brackets(rampart, port, backend_factory):
    a = backend_factory("six", host="::1")
    serve(rampart, port, "proxy_pass http://$http_x_target;")
    assert name_of(request(port, "/", headers={"X-Target": f"[::1]:{a.port}"})) == "six"


def test_scheme_host_and_port_may_all_be_variables(rampart, port, backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass $proto://$h:$p/fixed;",
          http=f"map $host $proto {{ default http; }}\n"
               f"map $host $h {{ default 127.0.0.1; }}\n"
               f"map $host $p {{ default {a.port}; }}")
    e = echo_of(request(port, "/some/path?q=1", headers={"X-Backend-Echo": "1"}))
    assert e["target"] == "/fixed"


def test_request_uri_in_proxy_pass_is_sent_as_it_is(rampart, port, backend_factory):
    a = backend_factory("a")
    rampart.configure(f"upstream be {{ server {a.addr}; }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      f" location /api/ {{ proxy_pass http://$arg_to$request_uri; }}\n"
                      f" location ~ ^/re/(.*)$ {{ proxy_pass http://be/new/$1?echo=1; }}\n}}")
    rampart.start()
    e = echo_of(request(port, "/api/a%20b/../c?to=be&echo=1"))
    assert e["target"] == "/api/a%20b/../c?to=be&echo=1"  # not normalized, args kept
    # a URI part replaces the request's whole URI, arguments included (nginx's rule),
    # and is allowed in a regex location
    e = echo_of(request(port, "/re/x/y?dropped=1"))
    assert e["target"] == "/new/x/y?echo=1"


def test_decoded_uri_in_proxy_pass_cannot_split_the_request_line(rampart, port, backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://be$uri?echo=1;",
          http=f"upstream be {{ server {a.addr}; }}")
    e = echo_of(request(port, "/a%20b%0d%0aX-Injected:%201"))
    assert e["target"] == "/a%20b%0D%0AX-Injected:%201?echo=1"
    assert header(e, "X-Injected") == []


def test_host_name_without_resolver_gets_502_and_nginx_log_line(rampart, port):
    serve(rampart, port, "proxy_pass http://$arg_to;")
    mark = rampart.log_size()
    r = request(port, "/x?to=nosuch.example.invalid:8080")
    assert r.status == 502
    rampart.wait_log(r"\[error\] .*no resolver defined to resolve nosuch\.example\.invalid, "
                     r"client: 127\.0\.0\.1, server: , request: \"GET /x\?to=nosuch\.example"
                     r"\.invalid:8080 HTTP/1\.1\", host: \"localhost\"", since=mark)


def test_block_name_with_a_port_is_a_host_name_not_the_block(rampart, port, backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://$arg_to;",
          http=f"upstream be {{ server {a.addr}; }}")
    assert name_of(request(port, "/?to=be")) == "a"
    mark = rampart.log_size()
    assert request(port, "/?to=be:80").status == 502
    rampart.wait_log("no resolver defined to resolve be,", since=mark)


@pytest.mark.parametrize("value,status,logged", [
    ("", 500, 'invalid URL prefix in ""'),
    ("ftp://1.2.3.4", 500, 'invalid URL prefix in "ftp://1.2.3.4"'),
    ("http://", 500, 'no host in upstream "http://"'),
    ("http://1.2.3.4:99999", 500, 'invalid port in upstream "http://1.2.3.4:99999"'),
    ("http://a b", 500, 'invalid host in upstream "http://a b"'),
])
def test_an_evaluated_url_that_is_not_one_gets_500_and_a_log_line(rampart, port, value, status,
                                                                   logged):
    serve(rampart, port, "proxy_pass $u;",
          http=f'map $host $u {{ default "{value}"; }}')
    mark = rampart.log_size()
    assert request(port, "/").status == status
    rampart.wait_log(logged.replace("(", r"\(").replace("?", r"\?"), since=mark)


def test_upstream_variables_name_the_address_chosen(rampart, port, backend_factory, tmp_path):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://$arg_to;",
          http="log_format v '$upstream_addr $proxy_host $upstream_status';\n"
               "access_log logs/v.log v;")
    assert request(port, f"/?to={a.addr}").status == 200
    log = rampart.prefix / "logs" / "v.log"
    wait_for(lambda: log.exists() and log.read_text().strip(), what="the access log line")
    assert log.read_text().split() == [a.addr, a.addr, "200"]


# -- keep-alive and the per-worker pools -------------------------------------------


def test_address_pool_keeps_its_connection_for_the_next_requests(rampart, port, backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://$http_x_target;")
    for _ in range(5):
        assert name_of(request(port, "/", headers={"X-Target": a.addr})) == "a"
    assert a.stats()["connections_accepted"] == 1


def test_upstream_address_pools_keepalive_0_closes_each_connection(rampart, port,
                                                                   backend_factory):
    a = backend_factory("a")
    serve(rampart, port, "proxy_pass http://$http_x_target;",
          http="upstream_address_pools keepalive=0;")
    for _ in range(3):
        assert name_of(request(port, "/", headers={"X-Target": a.addr})) == "a"
    assert a.stats()["connections_accepted"] == 3


def test_least_recently_used_address_pool_gives_way_beyond_max(rampart, port, backend_factory):
    a, b, c = backend_factory("a"), backend_factory("b"), backend_factory("c")
    serve(rampart, port, "proxy_pass http://$http_x_target;",
          http="upstream_address_pools max=2;")

    def via(be):
        return name_of(request(port, "/", headers={"X-Target": be.addr}))
    assert [via(a), via(b), via(a), via(b)] == ["a", "b", "a", "b"]
    assert a.stats()["connections_accepted"] == 1  # both pools kept theirs
    assert via(c) == "c"  # replaces a's pool, the least recently used: its connection closes
    wait_for(lambda: a.stats()["open_connections"] == 0, what="a's idle connection to close")
    assert [via(b), via(a)] == ["b", "a"]
    assert b.stats()["connections_accepted"] == 1
    assert a.stats()["connections_accepted"] == 2


def test_address_pool_in_use_by_a_request_is_not_given_away(rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    serve(rampart, port, "proxy_pass http://$http_x_target;",
          http="upstream_address_pools max=1;")
    slow = {}
    t = threading.Thread(target=lambda: slow.update(
        r=request(port, "/?delay=1.5", headers={"X-Target": a.addr})))
    t.start()
    try:
        wait_for(lambda: a.stats()["open_connections"] == 1, what="the slow request at a")
        mark = rampart.log_size()
        assert request(port, "/", headers={"X-Target": b.addr}).status == 502
        rampart.wait_log(rf"no upstream address pool free for {b.addr}: all 1 are in use",
                         since=mark)
    finally:
        t.join()
    assert name_of(slow["r"]) == "a"
    assert name_of(request(port, "/", headers={"X-Target": b.addr})) == "b"


# -- HTTP/2 clients, gRPC and TLS --------------------------------------------------


def test_http2_upstream_block_chosen_by_variable_is_spoken_to_over_http2(rampart, port,
                                                                         backend_factory):
    h1 = backend_factory("h1")
    h2be = H2Backend().start()
    try:
        serve(rampart, port, "proxy_pass http://$arg_pool;",
              http=f"upstream plain {{ server {h1.addr}; }}\n"
                   f"upstream multiplexed {{ server {h2be.addr}; http2; }}")
        e = json.loads(request(port, "/x?pool=multiplexed&echo=1").body)
        assert e["authority"] == "multiplexed" and e["path"] == "/x?pool=multiplexed&echo=1"
        assert name_of(request(port, "/x?pool=plain")) == "h1"
    finally:
        h2be.stop()



def test_http2_client_routes_by_variable_too(rampart, port, backend_factory):
    a, b = backend_factory("a"), backend_factory("b")
    rampart.configure(f"map $http_x_version $pool {{ default one; v2 two; }}\n"
                      f"upstream one {{ server {a.addr}; }}\n"
                      f"upstream two {{ server {b.addr}; }}\n"
                      f"server {{\n listen 127.0.0.1:{port} http2;\n"
                      f" location / {{ proxy_pass http://$pool; }}\n}}")
    rampart.start()
    assert h2_request(port, headers=[("x-version", "v2")]).header("x-backend-name") == "b"
    assert h2_request(port).header("x-backend-name") == "a"


def test_grpc_pass_with_a_variable_reaches_the_server_it_names(rampart, port):
    one, two = Server(), Server()
    try:
        rampart.configure(f"map $http_x_svc $svc {{ default 127.0.0.1:{one.port}; two two; }}\n"
                          f"upstream two {{ server 127.0.0.1:{two.port}; }}\n"
                          f"server {{\n listen 127.0.0.1:{port} http2;\n"
                          f" location / {{ grpc_pass grpc://$svc; }}\n}}")
        rampart.start()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(f"/{SVC}/Unary")
            for _ in range(3):
                assert call(b"hi", timeout=5) == b"echo:hi"
            assert call(b"x", timeout=5, metadata=[("x-svc", "two")]) == b"echo:x"
        assert len(one.metadata) == 3 and len(two.metadata) == 1
    finally:
        one.stop()
        two.stop()


def test_grpc_pass_to_an_unresolvable_name_is_unavailable(rampart, port):
    rampart.configure(f"server {{\n listen 127.0.0.1:{port} http2;\n"
                      f" location / {{ grpc_pass grpc://$http_x_svc; }}\n}}")
    rampart.start()
    mark = rampart.log_size()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary(f"/{SVC}/Unary")(b"x", timeout=5, metadata=[("x-svc", "nowhere")])
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    rampart.wait_log("no resolver defined to resolve nowhere", since=mark)


def test_https_variable_upstream_uses_the_location_proxy_ssl_settings(
        rampart, port, backend_factory, certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port,
          f"proxy_pass https://$arg_to; proxy_ssl_verify on; "
          f"proxy_ssl_trusted_certificate {certs.ca}; proxy_ssl_name a.test; "
          f"proxy_ssl_server_name on;",
          http=f"upstream secure {{ server {be.addr}; keepalive 2; }}")
    for to in ("secure", be.addr, "secure", be.addr):
        r = request(port, f"/?to={to}")
        assert r.status == 200, r.body[:300]
        assert r.headers["X-Backend-TLS-SNI"] == "a.test"
    # each group keeps its connection: one for the block, one for the address
    assert be.stats()["connections_accepted"] == 2


def test_https_variable_upstream_verifies_the_name_it_reached(rampart, port, backend_factory,
                                                              certs):
    be = tls_backend(backend_factory, certs, name="a.test")
    serve(rampart, port,
          f"proxy_pass $arg_scheme://$arg_to; proxy_ssl_verify on; "
          f"proxy_ssl_trusted_certificate {certs.ca};",
          http=f"upstream a.test {{ server {be.addr}; }}\n"
               f"upstream b.test {{ server {be.addr}; }}")
    mark = rampart.log_size()
    # the address is not in a.test's certificate
    assert request(port, f"/?scheme=https&to={be.addr}").status == 502
    rampart.wait_log(r"upstream SSL certificate verify error: \(64:IP address mismatch\)",
                     since=mark)
    # a block reached the same way is checked against its name
    assert request(port, "/?scheme=https&to=a.test").status == 200
    mark = rampart.log_size()
    assert request(port, "/?scheme=https&to=b.test").status == 502
    rampart.wait_log(r"upstream SSL certificate verify error: \(62:hostname mismatch\)",
                     since=mark)


# -- configuration -----------------------------------------------------------------


def test_variables_in_proxy_pass_need_a_scheme_or_a_leading_variable(conf_dir):
    path, p = check(conf_dir, "server { listen 127.0.0.1:1; location / { proxy_pass x$a; } }")
    assert p.returncode != 0
    assert f'{path}:5: "proxy_pass": invalid URL prefix in "x$a"' in p.stderr


def test_upstream_address_pools_rejects_bad_values(conf_dir):
    path, p = check(conf_dir, "upstream_address_pools max=0;")
    assert p.returncode != 0
    assert f'{path}:5: "upstream_address_pools": invalid max "0"' in p.stderr
    path, p = check(conf_dir, "upstream_address_pools size=3;")
    assert f'{path}:5: "upstream_address_pools": invalid parameter "size=3"' in p.stderr
