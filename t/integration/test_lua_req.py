"""The request side of the `ngx` API: ngx.var, ngx.req.* and ngx.exec, over HTTP/1.1
and HTTP/2 (prior knowledge on a `listen ... http2` port, which serves both).

The answers that do not depend on rampart's own choices are compared with Debian's
nginx running the same http-block content with libnginx-mod-http-lua (OpenResty's
lua-nginx-module 0.10.x): one configuration, the same requests, the same bodies.
"""

import hashlib
import json
import socket
import time

import pytest

import harness
import reference_nginx
from h2client import H2Client, h2_request
from harness import request

LUA_MODULES = ("load_module /usr/lib/nginx/modules/ndk_http_module.so; "
               "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so; ")

# Lua helpers both servers define the same way: a table printed with sorted keys.
DUMP = r"""
local function dump(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local out = {}
    for _, k in ipairs(keys) do
        local v = t[k]
        if type(v) == "table" then v = "[" .. table.concat(v, ",") .. "]" end
        out[#out + 1] = k .. "=" .. tostring(v)
    end
    return table.concat(out, " ")
end
local function msg(f, ...)
    local ok, err = pcall(f, ...)
    if ok then return "ok" end
    return (tostring(err):gsub("^.-:%d+: ", ""))
end
"""


def block(code):
    """A content_by_lua_block with the helpers in front."""
    return "content_by_lua_block {" + DUMP + code + "\n}"


# The http-block content both servers run (LISTEN is the listen line's options).
SHARED = """
server {
    listen 127.0.0.1:PORT LISTEN;
    client_max_body_size 8m;
    set $foo bar;
    set $written '';
    location /var { VAR }
    location ~ ^/cap/(\\w+)/(\\d+)$ { CAP }
    location /varw { VARW }
    location /headers { HEADERS }
    location /trunc { TRUNC }
    location /args { ARGS }
    location /argtrunc { ARGTRUNC }
    location /method { METHOD }
    location /post { POST }
    location /unread { UNREAD }
    location /exec { rewrite_by_lua_block { ngx.exec("/target", {b = "x y"}) } }
    location /exec2 { access_by_lua_block { ngx.exec("/target?a=1", "c=3") } }
    location /jump { rewrite_by_lua_block { ngx.req.set_uri("/target", true) } }
    location /target { TARGET }
    location /setargs { SETARGS }
    location /setheader { SETHEADER }
    location /raw { RAW }
}
"""

PARTS = {
    "RAW": block(r"""
        ngx.req.read_body()
        ngx.req.set_header("X-Added", "1")
        ngx.req.set_method(ngx.HTTP_PUT)
        ngx.print(ngx.req.raw_header())
        ngx.print(ngx.req.raw_header(true))"""),
    "VAR": block(r"""
        ngx.say(ngx.var.foo, "|", ngx.var.uri, "|", ngx.var.args, "|", ngx.var.arg_a, "|",
                tostring(ngx.var.arg_missing), "|", ngx.var.http_x_custom_thing, "|",
                ngx.var.HTTP_X_CUSTOM_THING, "|", ngx.var.cookie_c, "|",
                tostring(ngx.var.no_such_variable), "|", ngx.var.request_method, "|",
                ngx.var.request_uri, "|", tostring(ngx.var[1]))"""),
    "CAP": block(r"""
        ngx.say(ngx.var[1], "|", ngx.var[2], "|", tostring(ngx.var[3]), "|",
                tostring(ngx.var[0]))"""),
    "VARW": block(r"""
        ngx.var.written = "w1"
        ngx.say(ngx.var.written)
        ngx.var.foo = 42
        ngx.say(ngx.var.foo)
        ngx.var.args = "x=1&y=2"
        ngx.say(ngx.var.args, "|", ngx.var.arg_y)
        ngx.var.written = nil
        ngx.say(tostring(ngx.var.written))
        ngx.say(msg(function() ngx.var.uri = "/x" end))
        ngx.say(msg(function() ngx.var.remote_addr = "1.2.3.4" end))
        ngx.say(msg(function() ngx.var.undeclared = "v" end))
        ngx.say(msg(function() ngx.var.http_host = "h" end))"""),
    "HEADERS": block(r"""
        local h = ngx.req.get_headers()
        ngx.say(h["x-one"], "|", h.X_One, "|", h["X-ONE"], "|", dump({m = h.x_multi}))
        local raw = ngx.req.get_headers(0, true)
        ngx.say(tostring(raw["X-One"]), "|", tostring(raw["x-one"]))"""),
    "TRUNC": block(r"""
        local function count(t)
            local n = 0
            for _, v in pairs(t) do n = n + (type(v) == "table" and #v or 1) end
            return n
        end
        -- the same fields over both protocols: 60 sent, Host, 50 added here
        ngx.req.clear_header("Connection")
        for i = 1, 50 do ngx.req.set_header("X-Added-" .. i, i) end
        local h, err = ngx.req.get_headers()
        ngx.say(count(h), " ", tostring(err))
        h, err = ngx.req.get_headers(0)
        ngx.say(count(h), " ", tostring(err))
        h, err = ngx.req.get_headers(3)
        ngx.say(count(h), " ", tostring(err))"""),
    "ARGS": block(r"""
        local a, err = ngx.req.get_uri_args()
        ngx.say(dump(a), "|", tostring(err))"""),
    "ARGTRUNC": block(r"""
        local a, err = ngx.req.get_uri_args()
        local n = 0
        for _ in pairs(a) do n = n + 1 end
        ngx.say(n, " ", tostring(err))
        a, err = ngx.req.get_uri_args(0)
        n = 0
        for _ in pairs(a) do n = n + 1 end
        ngx.say(n, " ", tostring(err))
        a, err = ngx.req.get_uri_args(2)
        ngx.say(dump(a), " ", tostring(err))"""),
    "METHOD": block(r"""
        ngx.say(ngx.req.get_method())
        ngx.req.set_method(ngx.HTTP_PUT)
        ngx.say(ngx.req.get_method(), "|", ngx.var.request_method)
        ngx.say(msg(ngx.req.set_method, 12345))
        ngx.say(msg(ngx.req.set_method, "GET"))"""),
    "POST": block(r"""
        ngx.say(tostring(ngx.req.get_body_data()))
        ngx.req.read_body()
        ngx.say(ngx.req.get_body_data())
        ngx.say(tostring(ngx.req.get_body_file()))
        local a, err = ngx.req.get_post_args()
        ngx.say(dump(a), "|", tostring(err))"""),
    "UNREAD": block(r"""
        ngx.say(tostring(ngx.req.get_body_data()))
        ngx.say(msg(ngx.req.get_post_args))"""),
    "TARGET": block(r"""
        ngx.say("target ", ngx.var.uri, "|", tostring(ngx.var.args), "|",
                tostring(ngx.req.is_internal()), "|", dump(ngx.req.get_uri_args()))"""),
    "SETARGS": block(r"""
        ngx.req.set_uri_args({k = {"1", "2 3"}})
        ngx.say(ngx.var.args)
        ngx.req.set_uri_args({flag = true})
        ngx.say(ngx.var.args)
        ngx.req.set_uri_args("raw=1&z")
        ngx.say(ngx.var.args, "|", dump(ngx.req.get_uri_args()))"""),
    "SETHEADER": block(r"""
        ngx.req.set_header("X-New", "n")
        ngx.req.set_header("X-List", {"a", "b"})
        ngx.req.set_header("X-Num", 7)
        ngx.req.clear_header("X-Old")
        ngx.req.set_header("X-Gone", nil)
        ngx.req.set_header("Host", "Other.Example:81")
        ngx.say(ngx.var.host, "|", ngx.var.http_host)
        local h = ngx.req.get_headers()
        ngx.say(dump({n = h.x_new, l = h.x_list, num = h.x_num, old = h.x_old,
                      gone = h.x_gone}), "|", ngx.var.http_x_new, "|",
                tostring(ngx.var.http_x_old))"""),
}


def shared_http(port, listen=""):
    text = SHARED.replace("PORT", str(port)).replace("LISTEN", listen)
    for k, v in PARTS.items():
        text = text.replace(" " + k + " ", " " + v + " ")
    return text


# (path, method, headers, body): the requests both servers answer alike
CASES = {
    "var": ("/var?a=1&b=2", "GET",
            [("x-custom-thing", "ct"), ("cookie", "c=cv; d=dv")], b""),
    "captures": ("/cap/abc/123", "GET", [], b""),
    "var writes": ("/varw?q=0", "GET", [], b""),
    "headers": ("/headers", "GET",
                [("x-one", "1"), ("x-multi", "a"), ("x-multi", "b")], b""),
    "headers truncated": ("/trunc", "GET", [(f"x-h{i}", str(i)) for i in range(60)], b""),
    "uri args": ("/args?a=1&b&a=2&c=%20x+y&=z&&d=&e=%41", "GET", [], b""),
    "uri args truncated": ("/argtrunc?" + "&".join(f"k{i}={i}" for i in range(105)),
                           "GET", [], b""),
    "method": ("/method", "GET", [], b""),
    "body": ("/post", "POST", [("content-type", "application/x-www-form-urlencoded")],
             b"a=1&b=x+y&a=2&flag"),
    "body not read": ("/unread", "POST", [], b"a=1"),
    "exec": ("/exec?z=1", "GET", [], b""),
    "exec with args": ("/exec2", "GET", [], b""),
    "set_uri jump": ("/jump?j=1", "GET", [], b""),
    "set_uri_args": ("/setargs", "GET", [], b""),
    "set_header": ("/setheader", "GET", [("x-old", "o")], b""),
    # HTTP/1 only: over HTTP/2 the head is rebuilt (OpenResty refuses it there)
    "raw header": ("/raw?a=1", "POST", [("X-Spaced", "  v"), ("x-lower", "l")], b"body"),
}
H1_ONLY = {"raw header"}


def h1(port, path, method, headers, body):
    """An HTTP/1.1 exchange on a raw socket: the header list as given (repeated names
    too), the body with its length. Returns (status, body)."""
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
    for n, v in headers:
        head += f"{n}: {v}\r\n"
    if body or method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    head += "Connection: close\r\n\r\n"
    data = harness.raw_exchange(port, head.encode() + body, timeout=10)
    status = int(data.split(b" ", 2)[1])
    hdr, _, rest = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in hdr.lower():
        out = b""
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        rest = out
    return status, rest


def h2(port, path, method, headers, body):
    r = h2_request(port, method, path, headers=headers, body=body)
    return r.status, bytes(r.body)


@pytest.fixture
def lua_rampart(rampart, port):
    rampart.configure(shared_http(port, "http2"))
    rampart.start()
    return rampart


@pytest.fixture(scope="module")
def nginx_answers(tmp_path_factory):
    """Debian's nginx's answers to CASES (over HTTP/1.1), once for the module."""
    reference_nginx.require()
    prefix = tmp_path_factory.mktemp("nginx")
    ng = reference_nginx.Nginx(prefix)
    port = harness.free_port()
    ng.configure(shared_http(port))
    ng.conf_text = LUA_MODULES + ng.conf_text
    ng.conf_path.write_text(ng.conf_text)
    ng.start()
    try:
        return {name: h1(port, *case) for name, case in CASES.items()}
    finally:
        ng.stop()


@pytest.mark.parametrize("case,proto", [(c, p) for c in CASES for p in ("h1", "h2")
                                        if p == "h1" or c not in H1_ONLY])
def test_answers_as_openresty(lua_rampart, nginx_answers, proto, case):
    send = h1 if proto == "h1" else h2
    got = send(lua_rampart.port, *CASES[case])
    assert got == nginx_answers[case], (got, nginx_answers[case])


def test_var_reads_every_kind_of_variable(lua_rampart):
    status, body = h1(lua_rampart.port, *CASES["var"])
    assert status == 200
    assert body == b"bar|/var|a=1&b=2|1|nil|ct|ct|cv|nil|GET|/var?a=1&b=2|nil\n"


def test_var_write_to_builtin_is_refused_with_openresty_message(lua_rampart):
    _, body = h2(lua_rampart.port, *CASES["var writes"])
    lines = body.decode().splitlines()
    assert lines[:4] == ["w1", "42", "x=1&y=2|2", "nil"]
    assert lines[4] == 'variable "uri" not changeable'
    assert lines[6].startswith('variable "undeclared" not found for writing; maybe it is a '
                               'built-in variable that is not changeable or you forgot to use '
                               '"set $undeclared \'\';" in the config file')


def test_get_headers_caps_at_100_and_says_truncated(lua_rampart):
    _, body = h1(lua_rampart.port, *CASES["headers truncated"])
    # 60 fields + Host + 50 set by Lua: 100 by default, all with 0, 3 with 3
    assert body == b"100 truncated\n111 nil\n3 truncated\n"


def test_get_uri_args_repeated_become_lists_and_bare_keys_true(lua_rampart):
    _, body = h2(lua_rampart.port, *CASES["uri args"])
    assert body == b"a=[1,2] b=true c= x y d= e=A|nil\n"


def test_exec_moves_to_another_location_with_args(lua_rampart):
    for send in (h1, h2):
        assert send(lua_rampart.port, *CASES["exec"]) == \
            (200, b"target /target|b=x%20y|true|b=x y\n")
        assert send(lua_rampart.port, *CASES["exec with args"]) == \
            (200, b"target /target|a=1&c=3|true|a=1 c=3\n")


def test_set_uri_jump_finds_the_location_again(lua_rampart):
    assert h2(lua_rampart.port, *CASES["set_uri jump"]) == \
        (200, b"target /target|j=1|true|j=1\n")


def test_http_version_start_time_and_raw_header(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} http2;
    location / {{ content_by_lua_block {{
        local st = ngx.req.start_time()
        ngx.say(ngx.req.http_version(), "|", tostring(st <= ngx.now() and st > ngx.now() - 60))
        ngx.print(ngx.req.raw_header())
        ngx.print(ngx.req.raw_header(true))
    }} }}
}}
""")
    rampart.start()
    status, body = h1(port, "/r?x=1", "GET", [("X-Spaced", "  v  "), ("X-Case", "A")], b"")
    head = (b"GET /r?x=1 HTTP/1.1\r\nHost: localhost\r\nX-Spaced:   v  \r\n"
            b"X-Case: A\r\nConnection: close\r\n\r\n")
    assert body == b"1.1|true\n" + head + head.split(b"\r\n", 1)[1]
    r = h2_request(port, "GET", "/r?x=1", headers=[("x-case", "A")])
    assert bytes(r.body) == (b"2|true\n"
                             b"GET /r?x=1 HTTP/2.0\r\nx-case: A\r\nhost: localhost\r\n\r\n"
                             b"x-case: A\r\nhost: localhost\r\n\r\n")
    r = request(port, "/r")  # http.client speaks 1.1; 1.0 by a raw request
    data = harness.raw_exchange(port, b"GET /r HTTP/1.0\r\n\r\n")
    assert data.partition(b"\r\n\r\n")[2].startswith(b"1|true\n")


# -- what the proxy, the log and the next phases see ------------------------------------


def proxy_conf(port, backend, rewrite, extra=""):
    return f"""
log_format vars '$uri $args $written';
server {{
    listen 127.0.0.1:{port} http2;
    set $written '';
    location / {{
        access_log logs/vars.log vars;
        rewrite_by_lua_block {{ {rewrite} }}
        proxy_set_header X-Written $written;
        proxy_set_header X-Backend-Echo 1;
        {extra}
        proxy_pass http://{backend.addr};
    }}
}}
"""


def echo(status_body):
    status, body = status_body
    assert status == 200, body[:300]
    return json.loads(body)


def sent(e, name):
    return [v for n, v in e["headers"] if n.lower() == name]


@pytest.mark.parametrize("send", [h1, h2], ids=["h1", "h2"])
def test_set_header_changes_what_the_backend_receives(rampart, port, backend, send):
    rampart.configure(proxy_conf(port, backend, """
        ngx.req.set_header("X-Added", "yes")
        ngx.req.set_header("X-Two", {"1", "2"})
        ngx.req.set_header("X-Replaced", "new")
        ngx.req.clear_header("X-Removed")
        ngx.req.set_header("User-Agent", "lua-agent")
    """))
    rampart.start()
    e = echo(send(port, "/p", "GET", [("x-replaced", "old"), ("x-removed", "r"),
                                        ("user-agent", "client")], b""))
    assert sent(e, "x-added") == ["yes"]
    assert sent(e, "x-two") == ["1", "2"]
    assert sent(e, "x-replaced") == ["new"]
    assert sent(e, "x-removed") == []
    assert sent(e, "user-agent") == ["lua-agent"]


@pytest.mark.parametrize("send", [h1, h2], ids=["h1", "h2"])
def test_var_write_reaches_proxy_set_header_and_access_log(rampart, port, backend, send):
    rampart.configure(proxy_conf(port, backend, """
        ngx.var.written = "from-lua-" .. ngx.var.arg_n
        ngx.req.set_uri_args("n=" .. ngx.var.arg_n .. "&added=1")
    """))
    rampart.start()
    e = echo(send(port, "/p?n=7", "GET", [], b""))
    assert sent(e, "x-written") == ["from-lua-7"]
    assert e["query"] == "n=7&added=1"
    log = rampart.prefix / "logs" / "vars.log"
    harness.wait_for(lambda: log.exists() and "from-lua-7" in log.read_text(),
                     what="the access log line")
    assert log.read_text().splitlines()[-1] == "/p n=7&added=1 from-lua-7"


def test_set_uri_without_jump_and_set_method_reach_the_backend(rampart, port, backend):
    rampart.configure(proxy_conf(port, backend, """
        ngx.req.set_uri("/changed/path")
        ngx.req.set_method(ngx.HTTP_PATCH)
    """))
    rampart.start()
    e = echo(h1(port, "/orig?a=1", "GET", [], b""))
    assert e["method"] == "PATCH"
    assert e["path"] == "/changed/path"
    assert e["query"] == "a=1"


def test_set_uri_jump_to_itself_ends_after_ten_cycles_with_500(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location /loop {{ rewrite_by_lua_block {{ ngx.req.set_uri("/loop", true) }} }}
}}
""")
    rampart.start()
    assert request(port, "/loop").status == 500
    rampart.wait_log("rewrite or internal redirection cycle")


def test_exec_to_named_location_continues_there_with_uri_and_args_kept(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{ rewrite_by_lua_block {{ ngx.exec("@named") }} }}
    location @named {{ return 200 "named $uri $args"; }}
}}
""")
    rampart.start()
    r = request(port, "/some/path?a=1")
    assert (r.status, r.body) == (200, b"named /some/path a=1")


def test_exec_to_a_missing_named_location_is_a_500(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{ content_by_lua_block {{ ngx.exec("@nowhere") }} }}
}}
""")
    rampart.start()
    assert request(port, "/").status == 500
    rampart.wait_log('could not find named location "@nowhere"')


def test_named_location_is_not_reachable_by_path(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "prefix"; }}
    location @x {{ return 200 "named"; }}
}}
""")
    rampart.start()
    r = request(port, "/@x")
    assert (r.status, r.body) == (200, b"prefix")


# -- the body ------------------------------------------------------------------------


def body_conf(port, phase, backend=None):
    after = (f"proxy_set_header X-Backend-Echo 1; proxy_pass http://{backend.addr};"
             if backend else "")
    code = """
        ngx.req.read_body()
        local d = ngx.req.get_body_data()
        ngx.req.set_header("X-Read-Length", tostring(d and #d or 0))
    """
    if phase == "content":
        return f"""
server {{
    listen 127.0.0.1:{port} http2;
    client_max_body_size 16m;
    location / {{ content_by_lua_block {{
        ngx.req.read_body()
        local d = ngx.req.get_body_data()
        ngx.say(d and #d or 0, " ", d and d:sub(1, 10) or "", " ", d and d:sub(-10) or "")
    }} }}
}}
"""
    return f"""
server {{
    listen 127.0.0.1:{port} http2;
    client_max_body_size 16m;
    location / {{ {phase}_by_lua_block {{ {code} }} {after} }}
}}
"""


def pattern(n):
    base = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (base * (n // len(base) + 1))[:n]


def test_read_body_large_over_h2_with_flow_control(rampart, port):
    rampart.configure(body_conf(port, "content"))
    rampart.start()
    body = pattern(3 * 1024 * 1024 + 17)  # far beyond the 64 KiB initial window
    r = h2_request(port, "POST", "/", body=body)
    assert r.status == 200
    assert bytes(r.body) == f"{len(body)} {body[:10].decode()} {body[-10:].decode()}\n".encode()


@pytest.mark.parametrize("phase", ["rewrite", "access"])
@pytest.mark.parametrize("send", [h1, h2], ids=["h1", "h2"])
def test_read_body_then_proxy_sends_the_same_body(rampart, port, backend, phase, send):
    rampart.configure(body_conf(port, phase, backend))
    rampart.start()
    body = pattern(700 * 1024)
    e = echo(send(port, "/up", "POST", [], body))
    assert sent(e, "x-read-length") == [str(len(body))]
    assert e["body_length"] == len(body)
    assert e["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_read_body_from_a_slow_client_does_not_hold_the_worker(rampart, port):
    rampart.configure(body_conf(port, "content"))
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789")
        # the one worker answers others while this body is half here
        for _ in range(3):
            r = h2_request(port, "POST", "/", body=b"other")
            assert bytes(r.body) == b"5 other other\n"
        s.sendall(b"abcdefghij")
        s.settimeout(10)
        data = b""
        while b"\n" not in data.partition(b"\r\n\r\n")[2]:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b"20 0123456789 abcdefghij\n" in data


def test_read_body_over_the_limit_is_413(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} http2;
    client_max_body_size 1k;
    location / {{ content_by_lua_block {{ ngx.req.read_body() ngx.say("read") }} }}
}}
""")
    rampart.start()
    # chunked: the length is only known as the body comes
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    data = harness.raw_exchange(port, head + b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413")
    r = h2_request(port, "POST", "/", body=b"y" * 4096)
    assert r.status == 413


def test_read_body_outside_body_phases_is_refused(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{
        header_filter_by_lua_block {{
            local ok, err = pcall(ngx.req.read_body)
            ngx.log(ngx.ERR, "read_body: ", err)
        }}
        content_by_lua_block {{ ngx.say("ok") }}
    }}
}}
""")
    rampart.start()
    assert request(port, "/", method="POST", body=b"abc").body == b"ok\n"
    rampart.wait_log("read_body: .*API disabled in the context of header_filter")


def test_read_body_from_a_slow_h2_client_waits_for_the_rest(rampart, port):
    rampart.configure(body_conf(port, "content"))
    rampart.start()
    from h2client import H2Response
    with H2Client(port) as c:
        sid = c.h2.get_next_available_stream_id()
        c.h2.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                (":authority", "localhost"), (":path", "/")])
        c.h2.send_data(sid, b"0123456789")
        c.flush()
        # other requests are answered meanwhile, on another connection
        for _ in range(3):
            assert bytes(h2_request(port, "POST", "/", body=b"other").body) == \
                b"5 other other\n"
        c.h2.send_data(sid, b"abcdefghij", end_stream=True)
        c.flush()
        r = H2Response()
        streams = {sid: r}
        while not r.ended:
            c._read(streams)
    assert r.status == 200
    assert bytes(r.body) == b"20 0123456789 abcdefghij\n"


def test_var_reads_in_log_and_set_by_lua(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{
        set_by_lua_block $from_set {{ return ngx.var.arg_v .. "-" .. ngx.var.request_method }}
        content_by_lua_block {{ ngx.say(ngx.var.from_set) }}
        log_by_lua_block {{
            ngx.log(ngx.ERR, "logged ", ngx.var.status, " ", ngx.var.from_set, " ",
                    ngx.var.sent_http_content_type)
        }}
    }}
}}
""")
    rampart.start()
    assert request(port, "/?v=7").body == b"7-GET\n"
    rampart.wait_log("logged 200 7-GET text/plain")


def test_read_body_twice_and_exec_keep_the_body(rampart, port, backend):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} http2;
    location /first {{
        access_by_lua_block {{
            ngx.req.read_body()
            ngx.req.read_body()
            ngx.exec("/second")
        }}
    }}
    location /second {{
        proxy_set_header X-Backend-Echo 1;
        proxy_pass http://{backend.addr};
    }}
}}
""")
    rampart.start()
    body = pattern(100000)
    for send in (h1, h2):
        e = echo(send(port, "/first", "POST", [], body))
        assert e["path"] == "/second"
        assert e["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_read_body_answers_expect_100_continue(rampart, port):
    rampart.configure(body_conf(port, "content"))
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.settimeout(10)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += s.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello, world")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert b"12 hello, wor llo, world\n" in data


def test_discard_body_keeps_the_connection_usable(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{ content_by_lua_block {{
        if ngx.req.get_method() == "POST" then ngx.req.discard_body() end
        ngx.say(ngx.req.get_method(), " ", tostring(ngx.req.get_body_data()))
    }} }}
}}
""")
    rampart.start()
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/", body=b"x" * 100000)
        r = c.getresponse()
        assert r.read() == b"POST nil\n"
        c.request("GET", "/")
        assert c.getresponse().read() == b"GET nil\n"
    finally:
        c.close()


def test_exec_to_itself_ends_after_ten_redirects_with_500(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location /again {{ content_by_lua_block {{ ngx.exec("/again") }} }}
}}
""")
    rampart.start()
    assert request(port, "/again").status == 500
    rampart.wait_log("rewrite or internal redirection cycle while internally redirecting")


@pytest.mark.parametrize("phase", ["access", "content"])
def test_read_body_from_a_client_that_stops_ends_with_408(rampart, port, phase):
    read = 'ngx.req.read_body() ngx.log(ngx.ERR, "read_body returned for ", ngx.var.request_method)'
    hooks = (f"access_by_lua_block {{ {read} }} content_by_lua_block {{ ngx.say('ok') }}"
             if phase == "access" else f"content_by_lua_block {{ {read} ngx.say('ok') }}")
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    client_body_timeout 1s;
    location / {{
        {hooks}
    }}
}}
""")
    rampart.start()
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.settimeout(15)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 408")
    # the worker goes on serving
    assert request(port, "/").body == b"ok\n"
    assert "read_body returned for GET" in rampart.log_text()
    assert "read_body returned for POST" not in rampart.log_text()
