"""balancer_by_lua_block / balancer_by_lua_file and require "ngx.balancer": a script
picks the peer of every try of a request, as in OpenResty.

The scripts are written as an OpenResty user writes them (a placeholder server in the
upstream block, the peer chosen from ngx.ctx), and the ones OpenResty 0.10.23 supports
run under Debian's nginx with libnginx-mod-http-lua as well: the same backend answers
in both. The request's choice reaches ngx.ctx from a request header read in an
access_by_lua_block (ngx.req.get_headers), so the balancer sees the ngx.ctx of the
request's other phases.
"""

import os
import socket
import threading
import time

import pytest

import harness
import reference_nginx
from h2client import h2_request
from harness import request

LOAD_LUA = ("load_module /usr/lib/nginx/modules/ndk_http_module.so; "
            "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n")


@pytest.fixture
def nginx_lua(tmp_path):
    """Starts Debian's nginx with the Lua module on http-block content; stops it after."""
    made = []

    def start(http):
        reference_nginx.require()
        n = reference_nginx.Nginx(tmp_path / f"nginx{len(made)}")
        n.configure(http)
        n.conf_text = LOAD_LUA + n.conf_text
        n.conf_path.write_text(n.conf_text)
        made.append(n)
        return n.start()
    yield start
    for n in made:
        n.stop()


def nginx_wait_log(n, pattern, timeout=5.0):
    import re
    rx = re.compile(pattern)
    return harness.wait_for(lambda: rx.search(n.text(n.error_log)), timeout=timeout,
                            what=f"/{pattern}/ in nginx's error log")


def start_both(nginx_lua, rampart, make):
    """Starts nginx and rampart on the same configuration, each on a port of its own
    (make(port) gives the http-block content); returns nginx and its port, rampart's."""
    nport, rport = harness.free_port(), harness.free_port()
    # lines marked "#NGINX " are nginx's alone (rampart reads them as comments)
    n = nginx_lua(make(nport).replace("#NGINX ", ""))
    rampart.configure(make(rport))
    rampart.start()
    return n, nport, rport


def dead_port():
    """A loopback port nobody listens on: connecting is refused."""
    return harness.free_port()


def choose_by_header(port, h2port, backends, extra=""):
    """A configuration whose balancer sends a request to the backend its X-Pick names."""
    ports = ", ".join(f'{name} = {b.port}' for name, b in backends.items())
    listen_h2 = f"listen 127.0.0.1:{h2port} http2;" if h2port else ""
    return f"""
upstream pool {{
    server 0.0.0.1;   # a placeholder: the script picks the peer
    balancer_by_lua_block {{
        local balancer = require "ngx.balancer"
        local ok, err = balancer.set_current_peer("127.0.0.1", ngx.ctx.port)
        if not ok then
            ngx.log(ngx.ERR, "failed to set the current peer: ", err)
            return ngx.exit(500)
        end
    }}
    {extra}
}}
server {{
    listen 127.0.0.1:{port};
    {listen_h2}
    location / {{
        access_by_lua_block {{
            local ports = {{ {ports} }}
            ngx.ctx.want = ngx.req.get_headers()["x-pick"]
            ngx.ctx.port = ports[ngx.ctx.want] or ports.a
        }}
        proxy_pass http://pool;
    }}
}}
"""


def test_balancer_picks_the_backend_a_header_names_over_http1_and_http2(
        rampart, backend_factory, free_port):
    backends = {name: backend_factory(name) for name in ("a", "b", "c")}
    port, h2port = free_port(), free_port()
    rampart.configure(choose_by_header(port, h2port, backends), workers=2)
    rampart.start()
    for name in ("b", "c", "a", "c"):
        r = request(port, headers={"X-Pick": name})
        assert (r.status, r.text) == (200, f"{name}\n")
        r2 = h2_request(h2port, "GET", "/", headers=[("x-pick", name)])
        assert (r2.status, bytes(r2.body)) == (200, f"{name}\n".encode())
    # no header: the script's default
    assert request(port).text == "a\n"


def test_nginx_with_the_lua_module_makes_the_same_choices(backend_factory, free_port,
                                                          nginx_lua, rampart):
    backends = {name: backend_factory(name) for name in ("a", "b", "c")}
    n, nport, port = start_both(nginx_lua, rampart,
                                lambda p: choose_by_header(p, None, backends))
    picks = ("b", "c", None, "a", "zzz")
    want = [request(nport, headers={"X-Pick": p} if p else {}).text for p in picks]
    assert want == ["b\n", "c\n", "a\n", "a\n", "a\n"]
    got = [request(port, headers={"X-Pick": p} if p else {}).text for p in picks]
    assert got == want


def retry_conf(port, dead, alive, extra_loc="", more=1):
    return f"""
upstream pool {{
    server 0.0.0.1;
    balancer_by_lua_block {{
        local balancer = require "ngx.balancer"
        local state, code = balancer.get_last_failure()
        if not state then
            local ok, err = balancer.set_more_tries({more})
            ngx.log(ngx.WARN, "set_more_tries: ", tostring(ok), " ", tostring(err))
            assert(balancer.set_current_peer("127.0.0.1", {dead}))
        else
            ngx.log(ngx.WARN, "last failure: ", state, " ", code)
            assert(balancer.set_current_peer("127.0.0.1:{alive}"))
        end
    }}
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        {extra_loc}
        proxy_pass http://pool;
    }}
}}
"""


def test_set_more_tries_sends_the_retry_to_the_peer_the_second_try_picks(
        rampart, backend, free_port, nginx_lua):
    dead = dead_port()
    n, nport, port = start_both(nginx_lua, rampart, lambda p: retry_conf(p, dead, backend.port))
    assert request(nport).status == 200
    nginx_wait_log(n, r"last failure: failed 502")
    r = request(port)
    assert r.status == 200
    # the second try's script saw the first one's failure, as nginx's does
    rampart.wait_log(r"last failure: failed 502")
    assert "set_more_tries: true nil" in rampart.log_text()


def test_without_set_more_tries_a_dead_peer_is_the_only_try(rampart, backend, free_port,
                                                            nginx_lua):
    dead = dead_port()
    n, nport, port = start_both(nginx_lua, rampart,
                                lambda p: retry_conf(p, dead, backend.port, more=0))
    assert request(nport).status == 502
    assert request(port).status == 502
    assert "last failure" not in rampart.log_text()


def test_set_more_tries_is_bounded_by_proxy_next_upstream_tries(rampart, backend, free_port,
                                                                nginx_lua):
    dead = dead_port()
    n, nport, port = start_both(
        nginx_lua, rampart, lambda p: retry_conf(p, dead, backend.port, more=3,
                                                 extra_loc="proxy_next_upstream_tries 1;"))
    assert request(nport).status == 502
    nginx_wait_log(n, r"set_more_tries: true reduced tries due to limit")
    assert request(port).status == 502
    rampart.wait_log(r"set_more_tries: true reduced tries due to limit")
    assert "last failure" not in rampart.log_text()


def test_retries_of_the_script_are_counted_in_the_upstream_retry_budget(rampart, backend,
                                                                        free_port):
    # a budget of 1% with no minimum: the first request's deposit (a hundredth of a token)
    # pays for no retry, whatever the script asked for
    port = free_port()
    conf = retry_conf(port, dead_port(), backend.port).replace(
        "server 0.0.0.1;", "server 0.0.0.1;\n    retry_budget 1% min=0;")
    rampart.configure(conf)
    rampart.start()
    assert request(port).status == 502
    rampart.wait_log(r"no retry of \"GET /\" after connect failure .*retry budget exhausted")
    assert "last failure" not in rampart.log_text()


def test_a_peer_outside_the_upstream_is_reached_and_kept_alive(rampart, backend_factory,
                                                               free_port, nginx_lua):
    listed, other = backend_factory("listed"), backend_factory("other")

    def conf(port):
        return f"""
upstream pool {{
    server 127.0.0.1:{listed.port};
    balancer_by_lua_block {{
        local balancer = require "ngx.balancer"
        assert(balancer.set_current_peer("127.0.0.1", {other.port}))
    }}
    keepalive 4;
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        #NGINX proxy_http_version 1.1;
        #NGINX proxy_set_header Connection "";
        proxy_pass http://pool;
    }}
}}
"""
    n, nport, port = start_both(nginx_lua, rampart, conf)
    assert [request(nport).text for _ in range(3)] == ["other\n"] * 3
    assert other.stats()["connections_accepted"] == 1
    other.reset()
    assert [request(port).text for _ in range(5)] == ["other\n"] * 5
    assert listed.stats()["requests"] == 0
    # an ad hoc peer's connections go to the keep-alive cache like a listed peer's
    assert other.stats()["connections_accepted"] == 1


def test_a_name_the_upstream_does_not_know_is_refused_as_by_nginx(rampart, backend, free_port,
                                                                  nginx_lua):
    n, nport, port = start_both(nginx_lua, rampart, lambda p: choose_by_header(
        p, None, {"a": backend}).replace(
        'balancer.set_current_peer("127.0.0.1", ngx.ctx.port)',
        'balancer.set_current_peer("backend.invalid", ngx.ctx.port)'))
    assert request(nport).status == 500
    nginx_wait_log(n, r"failed to set the current peer: no host allowed")
    assert request(port).status == 500
    rampart.wait_log(r"failed to set the current peer: no host allowed")


class UnixBackend:
    """An HTTP/1.1 server on a unix socket that answers "unix" to every request."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                          b"unix\n")

    def close(self):
        self.sock.close()


def test_a_unix_socket_peer(rampart, backend, free_port, tmp_path):
    ub = UnixBackend(tmp_path / "be.sock")
    try:
        port = free_port()
        rampart.configure(choose_by_header(port, None, {"a": backend}).replace(
            'balancer.set_current_peer("127.0.0.1", ngx.ctx.port)',
            f'balancer.set_current_peer("unix:{ub.path}")'))
        rampart.start()
        r = request(port)
        assert (r.status, r.text) == (200, "unix\n")
    finally:
        ub.close()


def test_set_timeouts_bounds_the_wait_for_a_slow_backend(rampart, backend, free_port,
                                                          nginx_lua):
    def conf(port):
        c = choose_by_header(port, None, {"a": backend}).replace(
            'local ok, err = balancer.set_current_peer',
            'balancer.set_timeouts(5, 5, 0.5)\n        local ok, err = balancer.set_current_peer')
        return c.replace("proxy_pass http://pool;", "proxy_read_timeout 60s;\n"
                         "        proxy_pass http://pool;")
    n, nport, port = start_both(nginx_lua, rampart, conf)
    t = time.monotonic()
    # the backend answers after 4 s; proxy_read_timeout would wait a minute
    assert request(nport, "/?delay=4", timeout=10).status == 504
    assert time.monotonic() - t < 3.5
    t = time.monotonic()
    assert request(port, "/?delay=4", timeout=10).status == 504
    assert time.monotonic() - t < 3.5
    rampart.wait_log(r"upstream timed out")


def test_an_error_in_the_hook_is_a_500_logged_with_file_and_line(rampart, backend, free_port):
    port = free_port()
    conf = choose_by_header(port, None, {"a": backend}).replace(
        'local balancer = require "ngx.balancer"',
        'local balancer = require "ngx.balancer"\n'
        '        if ngx.ctx.want == "boom" then error("no peer for boom") end')
    rampart.configure(conf)
    rampart.start()
    assert request(port, headers={"X-Pick": "boom"}).status == 500
    line = next(i for i, text in enumerate(rampart.conf_text.splitlines(), 1)
                if "no peer for boom" in text)
    rampart.wait_log(rf"balancer.*rampart\.conf:{line}: no peer for boom")
    # the worker lives on and serves the next request
    assert request(port, headers={"X-Pick": "a"}).text == f"{backend.name}\n"


def test_the_hook_may_wait_beyond_openresty(rampart, backend_factory, free_port):
    # OpenResty forbids ngx.sleep (and cosockets) in the balancer; rampart suspends the
    # try instead, and the script finds ngx.ctx as it left it
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    conf = choose_by_header(port, None, {"a": a, "b": b}).replace(
        'local balancer = require "ngx.balancer"',
        'local balancer = require "ngx.balancer"\n'
        '        local want = ngx.ctx.port\n'
        '        ngx.sleep(0.05)\n'
        '        assert(ngx.ctx.port == want)')
    rampart.configure(conf, workers=2)
    rampart.start()
    for name in ("b", "a", "b"):
        r = request(port, headers={"X-Pick": name})
        assert (r.status, r.text) == (200, f"{name}\n")
    assert "lua entry thread aborted" not in rampart.log_text()


def test_a_client_leaving_while_the_hook_waits(rampart, backend, free_port):
    port = free_port()
    conf = choose_by_header(port, None, {"a": backend}).replace(
        'local balancer = require "ngx.balancer"',
        'local balancer = require "ngx.balancer"\n'
        '        if ngx.ctx.want == "slow" then ngx.sleep(1) end')
    rampart.configure(conf)
    rampart.start()
    with pytest.raises(OSError):  # socket.timeout is an OSError
        request(port, headers={"X-Pick": "slow"}, timeout=0.2)
    # the abandoned hook is let go of with its request; the worker serves on
    time.sleep(1.2)
    assert request(port).text == f"{backend.name}\n"
    assert backend.stats()["requests"] == 1


def test_balancer_by_lua_file(rampart, backend, free_port, tmp_path):
    port = free_port()
    script = tmp_path / "rampart" / "pick.lua"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text('local balancer = require "ngx.balancer"\n'
                      f'assert(balancer.set_current_peer("127.0.0.1", {backend.port}))\n')
    rampart.configure(f"""
upstream pool {{
    server 0.0.0.1;
    balancer_by_lua_file {script};
}}
server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://pool; }}
}}
""")
    rampart.start()
    assert request(port).text == f"{backend.name}\n"


def test_without_a_peer_set_the_upstream_balancer_picks(rampart, backend, free_port):
    port = free_port()
    rampart.configure(f"""
upstream pool {{
    server 127.0.0.1:{backend.port};
    balancer_by_lua_block {{ ngx.ctx.seen = true }}
}}
server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://pool; }}
}}
""")
    rampart.start()
    assert request(port).status == 200


def test_enable_keepalive_keeps_the_connection_without_a_keepalive_directive(
        rampart, backend_factory, free_port):
    kept, closed = backend_factory("kept"), backend_factory("closed")
    port = free_port()
    rampart.configure(f"""
upstream pool {{
    server 0.0.0.1;
    balancer_by_lua_block {{
        local balancer = require "ngx.balancer"
        if ngx.ctx.want == "kept" then
            assert(balancer.set_current_peer("127.0.0.1", {kept.port}))
            assert(balancer.enable_keepalive(30, 100))
        else
            assert(balancer.set_current_peer("127.0.0.1", {closed.port}))
        end
    }}
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        set_by_lua $pick 'ngx.ctx.want = ngx.arg[1]; return ""' $http_x_pick;
        proxy_pass http://pool;
    }}
}}
""")
    rampart.start()
    for _ in range(4):
        assert request(port, headers={"X-Pick": "kept"}).text == "kept\n"
        assert request(port, headers={"X-Pick": "closed"}).text == "closed\n"
    assert kept.stats()["connections_accepted"] == 1
    # as OpenResty: without the keepalive directive or enable_keepalive, no reuse
    assert closed.stats()["connections_accepted"] == 4


def test_the_api_is_refused_outside_the_balancer(rampart, free_port):
    port = free_port()
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{
        content_by_lua_block {{
            local balancer = require "ngx.balancer"
            local ok, err = pcall(balancer.set_current_peer, "127.0.0.1", 80)
            ngx.say(ok, " ", err)
        }}
    }}
}}
""")
    rampart.start()
    r = request(port)
    assert r.text.startswith("false ") and "API disabled in the context of content" in r.text


def test_balancer_by_lua_outside_an_upstream_block_is_refused(tmp_path):
    reference_nginx.assert_rampart_refuses(
        tmp_path, 'server { listen 127.0.0.1:1; balancer_by_lua_block { return } }', 3,
        '"balancer_by_lua_block": not allowed in the server context')


def test_an_http2_upstream_takes_the_peer_the_script_picks(rampart, free_port):
    from h2_backend import H2Backend
    import json
    be = H2Backend().start()
    try:
        port = free_port()
        rampart.configure(f"""
upstream pool {{
    server 0.0.0.1;
    http2;
    balancer_by_lua_block {{
        local balancer = require "ngx.balancer"
        if ngx.ctx.want == "boom" then error("no h2 peer") end
        if ngx.ctx.want == "sleep" then ngx.sleep(0.01) end
        assert(balancer.set_current_peer("127.0.0.1", {be.port}))
    }}
}}
server {{
    listen 127.0.0.1:{port};
    location / {{
        set_by_lua $pick 'ngx.ctx.want = ngx.arg[1]; return ""' $http_x_pick;
        proxy_pass http://pool;
    }}
}}
""")
        rampart.start()
        r = request(port, "/x?echo=1")
        assert r.status == 200 and json.loads(r.body)["path"] == "/x?echo=1"
        assert request(port, headers={"X-Pick": "boom"}).status == 500
        rampart.wait_log(r"runtime error in balancer: .*no h2 peer")
        # the HTTP/2 exchange picks and connects in one step: its hook may not wait,
        # as in OpenResty
        assert request(port, headers={"X-Pick": "sleep"}).status == 500
        rampart.wait_log(r"runtime error in balancer: .*API disabled in the context of "
                         r"balancer")
    finally:
        be.stop()


def test_the_hook_may_ask_a_service_through_a_cosocket(rampart, backend_factory, free_port):
    # beyond OpenResty: the script asks a directory (here a backend answering its name)
    # which peer to use, through a cosocket, while the try waits
    directory, chosen = backend_factory("b"), backend_factory("b-peer")
    port = free_port()
    rampart.configure(f"""
upstream pool {{
    server 0.0.0.1;
    balancer_by_lua_block {{
        local balancer = require "ngx.balancer"
        local sock = ngx.socket.tcp()
        assert(sock:connect("127.0.0.1", {directory.port}))
        assert(sock:send("GET /where HTTP/1.0\\r\\n\\r\\n"))
        local body = assert(sock:receive("*a"))
        sock:close()
        local name = body:match("\\r\\n\\r\\n(%S+)")
        ngx.log(ngx.WARN, "directory says ", name)
        assert(balancer.set_current_peer("127.0.0.1", {chosen.port}))
    }}
}}
server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://pool; }}
}}
""")
    rampart.start()
    r = request(port)
    assert (r.status, r.text) == (200, "b-peer\n")
    rampart.wait_log(r"directory says b\b")
    assert directory.stats()["requests"] == 1
