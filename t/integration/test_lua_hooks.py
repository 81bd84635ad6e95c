"""The Lua core: every hook (init, init_worker, set, rewrite, access, content,
header_filter, body_filter, log; _block and _file) and every core `ngx` function
(say/print/flush/eof/exit/redirect/status/header/ctx/log/sleep/time/phase/worker/
config), over HTTP/1.1 and HTTP/2 (cleartext, prior knowledge), and package paths
with real third-party libraries (Debian's lua-cjson and lua-resty-lrucache).

The answers that OpenResty gives too are checked against Debian's nginx with
libnginx-mod-http-lua running the same http-block content (test_same_answers_as_openresty):
OpenResty's behaviour is the reference. What goes beyond it (ngx.sleep in
init_worker and log hooks) is checked on rampart alone.

Scripts are written as an OpenResty user writes them. One rampart (module-scoped,
one worker) serves most tests; tests that need their own configuration start one.
"""

import http.client
import socket
import threading
import time
from pathlib import Path

import pytest

import harness
import reference_nginx
from h2client import H2Client

CJSON_CPATH = "/usr/lib/x86_64-linux-gnu/lua/5.1/?.so"
NGINX_MODULES = ("/usr/lib/nginx/modules/ndk_http_module.so",
                 "/usr/lib/nginx/modules/ngx_http_lua_module.so")

# http-block content both rampart and OpenResty serve the same way. LIB is the folder of
# the test's own Lua modules and scripts, PORT the listening port.
COMMON = r"""
lua_package_path "LIB/?.lua;;";
lua_package_cpath "CPATH;;";
init_by_lua_block {
    -- globals made here are seen by every request
    greeting = "hello from init"
    init_phase = ngx.get_phase()
    local cjson = require "cjson"
    init_json = cjson.encode({ready = true})
}
server {
    listen 127.0.0.1:PORT;
    default_type text/plain;

    location = /init {
        content_by_lua_block { ngx.say(greeting, " ", init_json, " ", init_phase) }
    }
    location = /set {
        set $a "one";
        set_by_lua $b 'return ngx.arg[1] .. "+" .. ngx.arg[2] .. "@" .. ngx.get_phase()' $a "two";
        set $a "changed";
        set $c "$b+$a";
        set_by_lua_block $d { return "block" }
        set_by_lua_file $e LIB/set_e.lua $c "last";
        return 200 "$c $d $e\n";
    }
    location = /ctx {
        rewrite_by_lua_block { ngx.ctx.trail = { ngx.get_phase() } }
        access_by_lua_block { table.insert(ngx.ctx.trail, ngx.get_phase()) }
        content_by_lua_block {
            table.insert(ngx.ctx.trail, ngx.get_phase())
            ngx.ctx.count = (ngx.ctx.count or 0) + 1
            ngx.say(table.concat(ngx.ctx.trail, ","), " count=", ngx.ctx.count)
        }
        header_filter_by_lua_block {
            ngx.header["X-Trail"] = table.concat(ngx.ctx.trail, ",") .. "," .. ngx.get_phase()
        }
        body_filter_by_lua_block {
            if ngx.arg[2] then ngx.arg[1] = ngx.arg[1] .. ngx.get_phase() .. "\n" end
        }
    }
    location = /files {
        rewrite_by_lua_file LIB/rewrite.lua;
        access_by_lua_file LIB/access.lua;
        content_by_lua_file LIB/content.lua;
        header_filter_by_lua_file LIB/header_filter.lua;
        body_filter_by_lua_file LIB/body_filter.lua;
        log_by_lua_file LIB/log.lua;
    }
    location = /say {
        content_by_lua_block {
            ngx.say({"a", {"b", 1}, 2.5}, nil, true, false, ngx.null)
            ngx.print("no newline", " ", 42)
            ngx.print({"-", "t"}, "\n")
        }
    }
    location = /hf {
        content_by_lua_block {
            ngx.header["X-Drop"] = "from content"
            ngx.say("body")
        }
        header_filter_by_lua_block {
            ngx.header["X-Added"] = "by header filter"
            ngx.header["X-Drop"] = nil
            ngx.header["X-Status-Seen"] = ngx.status
            ngx.status = 202
        }
    }
    location = /bf_upper {
        content_by_lua_block { ngx.say("abc") ngx.flush() ngx.say("def") }
        body_filter_by_lua_block { ngx.arg[1] = string.upper(ngx.arg[1]) }
    }
    location = /bf_cut {
        content_by_lua_block { ngx.say("first") ngx.flush(true) ngx.say("second") ngx.say("third") }
        body_filter_by_lua_block {
            if ngx.arg[1]:find("first", 1, true) then ngx.arg[2] = true end
        }
    }
    location = /exit_rewrite_ok {
        rewrite_by_lua_block { ngx.ctx.r = "rewrite said OK" ngx.exit(ngx.OK) }
        content_by_lua_block { ngx.say(ngx.ctx.r, "; content ran") }
    }
    location = /exit_rewrite_403 {
        rewrite_by_lua_block { ngx.exit(403) }
        content_by_lua_block { ngx.say("must not run") }
    }
    location = /exit_access_500 {
        access_by_lua_block { ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR) }
        content_by_lua_block { ngx.say("must not run") }
    }
    location = /exit_access_ok {
        access_by_lua_block { ngx.exit(ngx.OK) }
        content_by_lua_block { ngx.say("access passed") }
    }
    location = /exit_content_200 {
        content_by_lua_block { ngx.say("partial") ngx.exit(200) ngx.say("never") }
    }
    location = /exit_content_404 {
        content_by_lua_block { ngx.exit(ngx.HTTP_NOT_FOUND) }
    }
    location = /exit_content_ok {
        content_by_lua_block { ngx.say("said") ngx.exit(ngx.OK) ngx.say("never") }
    }
    location = /exit_header_filter {
        content_by_lua_block { ngx.say("content body") }
        header_filter_by_lua_block { ngx.header["X-Before-Exit"] = "yes" ngx.exit(ngx.OK) ngx.header["X-After-Exit"] = "no" }
    }
    location = /redirect {
        content_by_lua_block { ngx.redirect("http://example.test/target", 301) }
    }
    location = /redirect_default {
        rewrite_by_lua_block { return ngx.redirect("http://example.test/other") }
    }
    location = /redirect_relative {
        access_by_lua_block { ngx.redirect("/target?a=1", ngx.HTTP_SEE_OTHER) }
    }
    location = /exit_access_200 {
        access_by_lua_block { ngx.exit(ngx.HTTP_OK) }
        content_by_lua_block { ngx.say("must not run") }
    }
    location = /exit_error {
        content_by_lua_block { ngx.exit(ngx.ERROR) }
    }
    location = /exit_rewrite_after_say {
        rewrite_by_lua_block { ngx.say("said in rewrite") ngx.exit(ngx.HTTP_OK) }
        content_by_lua_block { ngx.say("must not run") }
    }
    location = /status_after_say {
        content_by_lua_block {
            ngx.say("first")
            ngx.status = 404
            ngx.say("status ", ngx.status)
        }
    }
    location = /header_values {
        content_by_lua_block {
            ngx.header["X-Number"] = 42
            ngx.header.x_under_score = "dashes"
            ngx.header["X-Type-Before"] = tostring(ngx.header.content_type)
            ngx.say("ok")
        }
    }
    location = /status {
        content_by_lua_block { ngx.status = 201 ngx.say("created ", ngx.status) }
    }
    location = /headers {
        content_by_lua_block {
            ngx.header["Set-Cookie"] = {"a=1", "b=2"}
            ngx.header["X-Gone"] = "x"
            ngx.header["X-Gone"] = nil
            ngx.header.x_cleared = "y"
            ngx.header.x_cleared = {}
            ngx.header.content_type = "text/x-lua; charset=utf-8"
            local c = ngx.header["Set-Cookie"]
            ngx.header["X-Read"] = type(c) .. #c .. c[2] .. tostring(ngx.header["X-Gone"])
            ngx.header.content_length = 6
            ngx.print("exact!")
        }
    }
    location = /time {
        content_by_lua_block {
            ngx.update_time()
            local now, t = ngx.now(), ngx.time()
            ngx.say(ngx.http_time(1700000000), "|", ngx.cookie_time(1700000000), "|",
                    ngx.parse_http_time("Tue, 14 Nov 2023 22:13:20 GMT"), "|",
                    tostring(ngx.parse_http_time("not a date")), "|",
                    math.abs(now - t) < 2, "|", type(ngx.today()), "|", #ngx.today())
        }
    }
    location = /config {
        content_by_lua_block {
            ngx.say(ngx.config.subsystem, " ", type(ngx.config.ngx_lua_version), " ",
                    ngx.config.ngx_lua_version >= 10000, " ", type(ngx.config.nginx_version),
                    " ", type(ngx.config.prefix()), ngx.config.prefix():sub(-1),
                    " ", type(ngx.config.debug),
                    " ", ngx.worker.count(), " ", ngx.worker.id(), " ",
                    ngx.worker.pid() > 1, " ", ngx.worker.exiting())
        }
    }
    location = /libs {
        content_by_lua_block {
            require "resty.core"
            local lrucache = require "resty.lrucache"
            local cache = lrucache.new(8)
            cache:set("k", "cached")
            local cjson = require "cjson"
            local mymod = require "mymod"
            ngx.say(cache:get("k"), " ", cjson.encode({list = {1, 2}}), " ", mymod.hello())
        }
    }
    location = /constants {
        content_by_lua_block {
            ngx.say(ngx.OK, ngx.ERROR, ngx.DECLINED, " ", ngx.HTTP_OK, ngx.HTTP_NOT_FOUND,
                    ngx.HTTP_GET, ngx.HTTP_POST, " ", ngx.STDERR, ngx.EMERG, ngx.ERR, ngx.WARN,
                    ngx.NOTICE, ngx.INFO, ngx.DEBUG, " ", type(ngx.null), ngx.null == nil)
        }
    }
    location = /runtime_error {
        content_by_lua_block {
            local t = nil
            ngx.say(t.field)   -- RUNTIME_ERROR_LINE
        }
    }
    location = /access_error {
        access_by_lua_block {
            error("denied by a bug")   -- ACCESS_ERROR_LINE
        }
        content_by_lua_block { ngx.say("must not run") }
    }
    location = /header_filter_error {
        header_filter_by_lua_block { error("header filter broke") }
        content_by_lua_block { ngx.say("body") }
    }
    location = /body_filter_sleep {
        body_filter_by_lua_block { ngx.sleep(0.1) }
        content_by_lua_block { ngx.say("body") }
    }
    location = /log {
        content_by_lua_block {
            ngx.log(ngx.WARN, "warn from lua")   -- LOG_WARN_LINE
            ngx.log(ngx.ERR, "err from lua ", 42, " ", nil, " ", true)
            ngx.log(ngx.DEBUG, "debug is below the log level")
            print("print goes to notice")   -- LOG_PRINT_LINE
            ngx.say("logged")
        }
    }
}
"""

# Beyond OpenResty, or needing events the reference cannot give: rampart only.
RAMPART_ONLY = r"""
init_worker_by_lua_block {
    ngx.sleep(0.05)   -- beyond OpenResty: init_worker may wait
    init_worker_runs = (init_worker_runs or 0) + 1
    ngx.log(ngx.NOTICE, "init_worker ran in ", ngx.worker.pid(), " phase ", ngx.get_phase())
}
server {
    listen 127.0.0.1:PORT2 http2;
    default_type text/plain;
    location = /init_worker {
        content_by_lua_block { ngx.say(init_worker_runs, " ", greeting) }
    }
    location = /log_hook {
        content_by_lua_block { ngx.ctx.who = "ctx seen in log" ngx.say("answered") }
        log_by_lua_block {
            ngx.log(ngx.NOTICE, "log hook: ", ngx.ctx.who, " in ", ngx.get_phase(),
                    " status ", ngx.status)
        }
    }
    location = /log_sleep {
        content_by_lua_block { ngx.say("answered before the log hook") }
        log_by_lua_block { ngx.sleep(1.5) ngx.log(ngx.NOTICE, "slow log hook done") }
    }
    location = /sleep_co {
        rewrite_by_lua_block {
            local f = coroutine.wrap(function() ngx.sleep(0.6) return "rw" end)
            ngx.ctx.rw = f()
        }
        access_by_lua_block {
            local co = coroutine.create(function() ngx.sleep(0.6) return "ac" end)
            local ok, v = coroutine.resume(co)
            ngx.ctx.ac = v
        }
        content_by_lua_block {
            local f = coroutine.wrap(function()
                ngx.sleep(0.6)
                coroutine.yield("y")
                ngx.sleep(0.2)
                return "c"
            end)
            local a = f()
            local b = f()
            ngx.say(ngx.ctx.rw, ngx.ctx.ac, a, b)
        }
    }
    location = /flush_slow {
        content_by_lua_block {
            local chunk = string.rep("x", 65536)
            for i = 1, 160 do
                ngx.print(chunk)
                ngx.flush(true)
                if i == 1 then ngx.log(ngx.NOTICE, "first chunk flushed") end
            end
            ngx.log(ngx.NOTICE, "flush loop done")
        }
    }
    location = /eof {
        content_by_lua_block {
            ngx.say("before eof")
            ngx.eof()
            local ok, err = ngx.say("after eof")
            ngx.sleep(1.5)
            ngx.log(ngx.NOTICE, "after eof: ", ok, " ", err)
        }
    }
    location = /exit_access_444 {
        access_by_lua_block { ngx.exit(444) }
        content_by_lua_block { ngx.say("must not run") }
    }
    location = /own {
        content_by_lua_block { ngx.say(require("ownmod").name) }
    }
    location = /worker {
        content_by_lua_block { ngx.say(ngx.worker.pid()) }
    }
    location = /clock {
        content_by_lua_block {
            ngx.say(ngx.time(), " ", string.format("%.3f", ngx.now()), " ", ngx.config.prefix())
        }
    }
}
"""

FILES = {
    "mymod.lua": 'local M = {}\nfunction M.hello() return "mymod from LIB" end\nreturn M\n',
    "set_e.lua": 'return "file:" .. ngx.arg[1] .. ":" .. ngx.arg[2]\n',
    "rewrite.lua": "ngx.ctx.trail = { 'rewrite-file' }\n",
    "access.lua": "table.insert(ngx.ctx.trail, 'access-file')\n",
    "content.lua": "table.insert(ngx.ctx.trail, 'content-file')\n"
                   "ngx.say(table.concat(ngx.ctx.trail, ','))\n",
    "header_filter.lua": "ngx.header['X-File'] = 'header-filter-file'\n",
    "body_filter.lua": "ngx.arg[1] = string.gsub(ngx.arg[1], 'file', 'FILE')\n",
    "log.lua": "ngx.log(ngx.NOTICE, 'log file hook after ', table.concat(ngx.ctx.trail, ','))\n",
}


def line_of(text, marker):
    """The line of text (1-based) holding marker."""
    for i, line in enumerate(text.split("\n"), 1):
        if marker in line:
            return i
    raise AssertionError(f"{marker} not in the configuration")


def write_lib(d):
    d.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (d / name).write_text(text)
    return d


def common_http(lib, port):
    return (COMMON.replace("LIB", str(lib)).replace("CPATH", CJSON_CPATH)
            .replace("PORT", str(port)))


class Node:
    def __init__(self, rampart, port, port2):
        self.rampart = rampart
        self.port = port    # the COMMON server (HTTP/1.1)
        self.port2 = port2  # the rampart-only server (HTTP/1.1 and h2c)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lua_hooks")
    lib = write_lib(tmp / "lib")
    rampart = harness.Rampart(tmp / "rampart")
    (rampart.prefix / "lua").mkdir(parents=True)
    (rampart.prefix / "lua" / "ownmod.lua").write_text('return { name = "own lua dir" }\n')
    port, port2 = harness.free_port(), harness.free_port()
    http = common_http(lib, port) + RAMPART_ONLY.replace("PORT2", str(port2))
    # both servers speak h2c too: replace the first listen
    http = http.replace(f"listen 127.0.0.1:{port};", f"listen 127.0.0.1:{port} http2;")
    try:
        rampart.configure(text=reference_nginx.rampart_text(http))
        rampart.start()
        rampart.wait_log(r"init_worker ran in \d+ phase init_worker")
        yield Node(rampart, port, port2)
    finally:
        rampart.stop()
    problems = rampart.problems()
    assert not problems, "unexpected trouble in rampart:\n" + "\n".join(problems)


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # [(lower-case name, value)]
        self.body = body

    @property
    def text(self):
        return self.body.decode()

    def all(self, name):
        return [v for n, v in self.headers if n == name]

    def get(self, name):
        values = self.all(name)
        return values[0] if values else None

    def __repr__(self):
        return f"<Answer {self.status} {self.headers} {self.body[:80]!r}>"


def ask_h1(port, path):
    r = harness.get(port, path)
    return Answer(r.status, [(n.lower(), v) for n, v in r.headers.items()], r.body)


def ask_h2(port, path):
    with H2Client(port) as c:
        r = c.request("GET", path)
    assert r.reset is None, f"stream reset: {r}"
    return Answer(r.status, [(n, v) for n, v in r.headers if not n.startswith(":")],
                  bytes(r.body))


@pytest.fixture(params=["http1", "http2"])
def ask(request, node):
    """ask(path, port=None): one GET over the protocol of the parameter."""
    fn = ask_h1 if request.param == "http1" else ask_h2

    def ask(path, port=None):
        return fn(port or node.port, path)
    return ask


# ---- init, init_worker, set --------------------------------------------------------------


def test_init_by_lua_globals_are_seen_by_requests(ask):
    assert ask("/init").text == 'hello from init {"ready":true} init\n'


def test_init_worker_runs_once_per_worker_and_may_sleep(node, ask):
    a = ask("/init_worker", node.port2)
    assert a.text == "1 hello from init\n"
    assert node.rampart.log_text().count("init_worker ran in") == 1


def test_set_by_lua_runs_in_order_with_set_and_gets_arguments(ask):
    a = ask("/set")
    assert a.text == "one+two@set+changed block file:one+two@set+changed:last\n"


# ---- rewrite, access, content, filters: ngx.ctx across the phases ---------------------


def test_ctx_is_shared_by_the_phases_of_one_request_only(ask):
    for _ in range(2):  # a second request starts with an empty ngx.ctx
        a = ask("/ctx")
        assert a.status == 200
        assert a.text == "rewrite,access,content count=1\nbody_filter\n"
        assert a.get("x-trail") == "rewrite,access,content,header_filter"


def test_file_hooks_run_in_every_phase(node, ask):
    mark = node.rampart.log_size()
    a = ask("/files")
    assert a.text == "rewrite-FILE,access-FILE,content-FILE\n"
    assert a.get("x-file") == "header-filter-file"
    node.rampart.wait_log(r"log\.lua:1: log file hook after rewrite-file,access-file,"
                          r"content-file", since=mark)


def test_ctx_reaches_the_log_hook(node, ask):
    mark = node.rampart.log_size()
    assert ask("/log_hook", node.port2).text == "answered\n"
    node.rampart.wait_log(r"log hook: ctx seen in log in log status 200", since=mark)


def test_header_filter_changes_fields_and_status(ask):
    a = ask("/hf")
    assert a.status == 202
    assert a.get("x-added") == "by header filter"
    assert a.get("x-drop") is None
    assert a.get("x-status-seen") == "200"
    assert a.text == "body\n"


def test_body_filter_rewrites_every_chunk(ask):
    assert ask("/bf_upper").text == "ABC\nDEF\n"


def test_body_filter_eof_flag_truncates_the_body(node, ask):
    before = ask("/worker", node.port2).text
    assert ask("/bf_cut").text == "first\n"
    # the content hook wrote on after the end: the worker is the same one
    assert ask("/worker", node.port2).text == before


def test_log_hook_that_sleeps_does_not_delay_the_client(node, ask):
    mark = node.rampart.log_size()
    start = time.monotonic()
    a = ask("/log_sleep", node.port2)
    took = time.monotonic() - start
    assert a.text == "answered before the log hook\n"
    # the client has its answer, and the log hook is still asleep
    assert "slow log hook done" not in node.rampart.log_text()[mark:]
    assert took < 1.5
    node.rampart.wait_log(r"slow log hook done", since=mark)


# ---- output ----------------------------------------------------------------------------


def test_say_and_print_spell_tables_nil_booleans_and_null(ask):
    assert ask("/say").text == "ab12.5niltruefalsenull\nno newline 42-t\n"


def test_eof_answers_the_client_while_the_hook_goes_on(node, ask):
    mark = node.rampart.log_size()
    a = ask("/eof", node.port2)
    assert a.status == 200 and a.text == "before eof\n"
    assert "after eof" not in node.rampart.log_text()[mark:]
    node.rampart.wait_log(r"after eof: nil seen eof", since=mark)


def test_eof_on_a_keepalive_connection_frees_it_for_the_next_request(node):
    mark = node.rampart.log_size()
    conn = http.client.HTTPConnection("127.0.0.1", node.port2, timeout=5)
    try:
        conn.request("GET", "/eof")
        r = conn.getresponse()
        assert r.read() == b"before eof\n"
        conn.request("GET", "/init_worker")  # the same connection, while the hook sleeps
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b"1 hello from init\n"
    finally:
        conn.close()
    assert "after eof" not in node.rampart.log_text()[mark:]
    node.rampart.wait_log(r"after eof: nil seen eof", since=mark)


def test_flush_true_waits_for_a_slow_reader_without_holding_the_worker(node):
    mark = node.rampart.log_size()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", node.port2))
        s.sendall(b"GET /flush_slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        node.rampart.wait_log(r"first chunk flushed", since=mark)
        # the client reads nothing: 10 MiB cannot all be out, the script waits in flush,
        # and the worker serves others meanwhile
        assert ask_h1(node.port, "/init").status == 200
        assert "flush loop done" not in node.rampart.log_text()[mark:]
        s.settimeout(20)
        got = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += chunk
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0]
    assert body.count(b"x") == 160 * 65536
    node.rampart.wait_log(r"flush loop done", since=mark)


# ---- ngx.exit, ngx.redirect, ngx.status, ngx.header ---------------------------------------


def test_exit_ok_in_rewrite_goes_on_to_content(ask):
    assert ask("/exit_rewrite_ok").text == "rewrite said OK; content ran\n"


def test_exit_403_in_rewrite_answers_403(ask):
    a = ask("/exit_rewrite_403")
    assert a.status == 403 and b"must not run" not in a.body


def test_exit_500_in_access_answers_500(ask):
    a = ask("/exit_access_500")
    assert a.status == 500 and b"must not run" not in a.body


def test_exit_ok_in_access_goes_on_to_content(ask):
    assert ask("/exit_access_ok").text == "access passed\n"


def test_exit_200_after_the_body_began_ends_the_answer(ask):
    a = ask("/exit_content_200")
    assert a.status == 200 and a.text == "partial\n"


def test_exit_404_in_content_answers_404(ask):
    assert ask("/exit_content_404").status == 404


def test_exit_ok_in_content_ends_the_answer(ask):
    assert ask("/exit_content_ok").text == "said\n"


def test_exit_in_header_filter_does_not_stop_the_answer(ask):
    # as OpenResty: in a filter ngx.exit only marks the request, the code goes on
    a = ask("/exit_header_filter")
    assert a.text == "content body\n"
    assert a.get("x-before-exit") == "yes" and a.get("x-after-exit") == "no"


def test_exit_444_closes_the_connection_without_an_answer(node):
    with socket.create_connection(("127.0.0.1", node.port2), timeout=5) as s:
        s.sendall(b"GET /exit_access_444 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536) == b""


def test_exit_444_resets_the_http2_stream(node):
    with H2Client(node.port2) as c:
        r = c.request("GET", "/exit_access_444")
    assert r.status is None and r.reset is not None


def test_redirect_sends_location_and_status(ask):
    a = ask("/redirect")
    assert a.status == 301 and a.get("location") == "http://example.test/target"
    b = ask("/redirect_default")
    assert b.status == 302 and b.get("location") == "http://example.test/other"


def test_status_set_before_the_body(ask):
    a = ask("/status")
    assert a.status == 201 and a.text == "created 201\n"


def test_header_multi_values_clear_type_and_length(ask):
    a = ask("/headers")
    assert a.all("set-cookie") == ["a=1", "b=2"]
    assert a.get("x-gone") is None and a.get("x-cleared") is None
    assert a.get("content-type") == "text/x-lua; charset=utf-8"
    assert a.get("x-read") == "table2b=2nil"
    assert a.get("content-length") == "6"
    assert a.text == "exact!"


# ---- logging, time, phases, worker, config, constants ---------------------------------


def test_log_levels_name_the_file_and_line(node, ask):
    text = node.rampart.conf_text
    conf = str(node.rampart.conf_path)
    mark = node.rampart.log_size()
    assert ask("/log").text == "logged\n"
    warn = node.rampart.wait_log(r"\[warn\] .*\[lua\] .*", since=mark).group(0)
    assert f"[lua] {conf}:{line_of(text, 'LOG_WARN_LINE')}: warn from lua" in warn
    err = node.rampart.wait_log(r"\[error\] .*err from lua.*", since=mark).group(0)
    assert "err from lua 42 nil true" in err
    note = node.rampart.wait_log(r"\[notice\] .*print goes to notice", since=mark).group(0)
    assert f"[lua] {conf}:{line_of(text, 'LOG_PRINT_LINE')}: print goes to notice" in note
    assert "debug is below the log level" not in node.rampart.log_text()[mark:]


def test_time_functions(ask):
    a = ask("/time")
    assert a.text == ("Tue, 14 Nov 2023 22:13:20 GMT|Tue, 14-Nov-23 22:13:20 GMT|"
                      "1700000000|nil|true|string|10\n")


def test_now_and_time_follow_the_clock_and_prefix_ends_with_a_slash(node, ask):
    before = time.time()
    t, now, prefix = ask("/clock", node.port2).text.split()
    after = time.time()
    assert before - 2 <= int(t) <= after + 1
    assert before - 1 <= float(now) <= after + 1
    assert prefix == f"{node.rampart.prefix}/"  # as OpenResty: prefix() .. "logs/x" works


def test_worker_and_config(node, ask):
    assert ask("/config").text == "http number true number string/ boolean 1 0 true false\n"
    workers, _ = node.rampart.wait_processes(1)
    assert ask("/worker", node.port2).text == f"{workers[0]}\n"


def test_constants(ask):
    assert ask("/constants").text == "0-1-5 20040428 0145678 userdatafalse\n"


# ---- packages ------------------------------------------------------------------------


def test_resty_core_lrucache_cjson_and_a_module_from_the_package_path(ask):
    assert ask("/libs").text == 'cached {"list":[1,2]} mymod from LIB\n'


def test_the_lua_dir_under_the_prefix_is_on_the_path(node, ask):
    assert ask("/own", node.port2).text == "own lua dir\n"


# ---- sleep -------------------------------------------------------------------------------


def test_sleep_inside_coroutines_blocks_neither_the_worker_nor_other_requests(node):
    results, errors = [], []

    def one():
        try:
            results.append(ask_h1(node.port2, "/sleep_co").text)
        except Exception as e:  # reported below
            errors.append(e)
    start = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    assert not errors and results == ["rwacyc\n"] * 2
    # one after the other they would take 4 s
    assert 2.0 <= took < 3.5, f"two requests of 2 s of sleep each took {took:.2f} s"


def test_sleep_inside_coroutines_over_http2_streams_at_once(node):
    start = time.monotonic()
    with H2Client(node.port2) as c:
        rs = c.exchange([("GET", "/sleep_co", [], b"")] * 2)
    took = time.monotonic() - start
    assert [bytes(r.body) for r in rs] == [b"rwacyc\n"] * 2
    assert 2.0 <= took < 3.5, f"two streams of 2 s of sleep each took {took:.2f} s"


# ---- errors at run time -----------------------------------------------------------------


def test_runtime_error_answers_500_names_file_and_line_and_the_worker_lives(node, ask):
    before = ask("/worker", node.port2).text
    mark = node.rampart.log_size()
    assert ask("/runtime_error").status == 500
    line = line_of(node.rampart.conf_text, "RUNTIME_ERROR_LINE")
    m = node.rampart.wait_log(r"\[error\] .*lua entry thread aborted.*", since=mark)
    assert f"{node.rampart.conf_path}:{line}: attempt to index" in m.group(0)
    assert ask("/worker", node.port2).text == before
    assert ask("/init").status == 200


def test_error_in_access_answers_500_with_file_and_line(node, ask):
    mark = node.rampart.log_size()
    a = ask("/access_error")
    assert a.status == 500 and b"must not run" not in a.body
    line = line_of(node.rampart.conf_text, "ACCESS_ERROR_LINE")
    m = node.rampart.wait_log(r"\[error\] .*lua entry thread aborted.*", since=mark)
    assert f"{node.rampart.conf_path}:{line}: denied by a bug" in m.group(0)


def test_error_in_header_filter_gives_a_bare_500(node, ask):
    mark = node.rampart.log_size()
    # OpenResty leaves such a request hanging; rampart answers a bare 500
    a = ask("/header_filter_error")
    assert a.status == 500 and a.body == b""
    node.rampart.wait_log(r"\[error\] .*header filter broke", since=mark)
    assert ask("/init").status == 200


def test_sleep_in_body_filter_is_refused_and_logged(node, ask):
    mark = node.rampart.log_size()
    before = ask("/worker", node.port2).text
    try:
        a = ask("/body_filter_sleep")
        got = (a.status, a.body)
    except Exception as e:  # the head went out: the answer can only be cut
        got = type(e).__name__
    assert got != (200, b"body\n")
    node.rampart.wait_log(r"API disabled in the context of body_filter", since=mark)
    assert ask("/worker", node.port2).text == before


# ---- configurations of their own ------------------------------------------------------


def test_init_by_lua_file_and_init_worker_file_in_every_worker(rampart, tmp_path, port):
    (tmp_path / "init.lua").write_text('from_file = "init file"\n')
    (tmp_path / "iw.lua").write_text(
        'ngx.sleep(0.01)\nngx.log(ngx.NOTICE, "iw file in worker ", ngx.worker.id(), '
        '" of ", ngx.worker.count())\n')
    rampart.configure(f"""
        init_by_lua_file {tmp_path}/init.lua;
        init_worker_by_lua_file {tmp_path}/iw.lua;
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_block {{ ngx.say(from_file, " ", ngx.worker.count()) }} }}
        }}
    """, workers=2)
    rampart.start()
    rampart.wait_log(r"iw file in worker 0 of 2")
    rampart.wait_log(r"iw file in worker 1 of 2")
    assert harness.get(port).text == "init file 2\n"
    assert rampart.log_text().count("iw file in worker") == 2


def test_error_in_init_worker_is_logged_and_the_node_serves(rampart, port):
    rampart.configure(f"""
        init_worker_by_lua_block {{
            error("init_worker broke")
        }}
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_block {{ ngx.say("serving") }} }}
        }}
    """)
    rampart.start()
    rampart.wait_log(r"\[error\] .*init_worker broke")
    assert harness.get(port).text == "serving\n"


def test_code_cache_off_reloads_a_file_script_on_each_request(rampart, tmp_path, port):
    script = tmp_path / "content.lua"
    script.write_text('ngx.say("version 1")\n')
    rampart.configure(f"""
        lua_code_cache off;
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_file {script}; }}
        }}
    """)
    rampart.start()
    assert harness.get(port).text == "version 1\n"
    script.write_text('ngx.say("version 2")\n')
    assert harness.get(port).text == "version 2\n"


def test_code_cache_on_keeps_the_compiled_script(rampart, tmp_path, port):
    script = tmp_path / "content.lua"
    script.write_text('ngx.say("version 1")\n')
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_file {script}; }}
        }}
    """)
    rampart.start()
    assert harness.get(port).text == "version 1\n"
    script.write_text('ngx.say("version 2")\n')
    assert harness.get(port).text == "version 1\n"


def test_runtime_error_in_a_file_script_names_the_script_and_line(rampart, tmp_path, port):
    script = tmp_path / "broken.lua"
    script.write_text('local x = 1\nlocal y = x .. nil\nngx.say(y)\n')
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_file {script}; }}
        }}
    """)
    rampart.start()
    assert harness.get(port).status == 500
    m = rampart.wait_log(r"\[error\] .*lua entry thread aborted.*")
    assert f"{script}:2: attempt to concatenate" in m.group(0)


# ---- the reference: OpenResty (Debian's nginx with the lua module) ----------------------

REFERENCE_PATHS = ["/init", "/set", "/ctx", "/files", "/say", "/hf", "/bf_upper", "/bf_cut",
                   "/exit_rewrite_ok", "/exit_rewrite_403", "/exit_access_500",
                   "/exit_access_ok", "/exit_content_200", "/exit_content_404",
                   "/exit_content_ok", "/exit_header_filter", "/redirect", "/redirect_default",
                   "/redirect_relative", "/exit_access_200", "/exit_error",
                   "/exit_rewrite_after_say", "/status_after_say", "/header_values",
                   "/status", "/headers", "/time", "/config", "/libs", "/constants",
                   "/runtime_error", "/access_error", "/log"]
COMPARED_FIELDS = ("location", "set-cookie", "x-trail", "x-file", "x-added", "x-drop",
                   "x-status-seen", "x-read", "x-before-exit", "x-after-exit", "content-type",
                   "x-number", "x-under-score", "x-type-before", "content-length")


def outcome(port, path):
    """What a client sees: status, body (of a success), the compared fields; or that the
    connection closed without an answer."""
    try:
        a = ask_h1(port, path)
    except http.client.RemoteDisconnected:
        return "closed without an answer"
    fields = {f: a.all(f) for f in COMPARED_FIELDS if a.all(f)}
    if a.status >= 300:  # rampart's error pages name rampart
        fields.pop("content-length", None)
    return (a.status, a.body if a.status < 300 else b"", fields)


def test_same_answers_as_openresty(tmp_path, node):
    reference_nginx.require()
    lib = write_lib(tmp_path / "lib")
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(common_http(lib, harness.free_port()), modules=NGINX_MODULES)
    nginx.start()
    differences = []
    try:
        for path in REFERENCE_PATHS:
            w, g = outcome(nginx.port, path), outcome(node.port, path)
            if w != g:
                differences.append(f"{path}\n    nginx:   {w}\n    rampart: {g}")
    finally:
        nginx.stop()
    assert not differences, "\n".join(differences)


def test_package_path_double_semicolon_adds_the_defaults_after_the_own_lua_dir(rampart, port):
    rampart.configure(f"""
        lua_package_path "/nowhere/?.lua;;";
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_block {{ ngx.say(package.path) }} }}
        }}
    """)
    rampart.start()
    path = harness.get(port).text.strip().split(";")
    prefix = str(rampart.prefix)
    assert path[:3] == ["/nowhere/?.lua", f"{prefix}/lua/?.lua", f"{prefix}/lua/?/init.lua"]
    assert "/usr/share/lua/5.1/?.lua" in path  # LuaJIT's defaults follow


def test_package_cpath_without_double_semicolon_is_the_only_cpath(rampart, port, tmp_path):
    mods = tmp_path / "cmods"
    mods.mkdir()
    (mods / "cjson.so").symlink_to(CJSON_CPATH.replace("?", "cjson"))
    rampart.configure(f"""
        lua_package_cpath "{mods}/?.so";
        server {{
            listen 127.0.0.1:{port};
            location / {{
                content_by_lua_block {{
                    local cjson = require "cjson"
                    ngx.say(package.cpath, " ", cjson.encode({{a = {{1, 2}}}}),
                            " ", package.searchpath("cjson", package.cpath))
                }}
            }}
        }}
    """)
    rampart.start()
    assert harness.get(port).text == f'{mods}/?.so {{"a":[1,2]}} {mods}/cjson.so\n'


def test_memory_cap_fails_the_hook_not_the_worker(rampart, port):
    rampart.configure(f"""
        lua_max_memory 32m;
        server {{
            listen 127.0.0.1:{port};
            location /bomb {{
                content_by_lua_block {{
                    local t = {{}}
                    for i = 1, 1e7 do t[i] = string.rep("x", 100) .. i end
                    ngx.say(#t)
                }}
            }}
            location /pid {{ content_by_lua_block {{ ngx.say(ngx.worker.pid()) }} }}
        }}
    """)
    rampart.start()
    pid = harness.get(port, "/pid").text
    for _ in range(3):  # what a bomb held is collected: the next one fails the same way
        assert harness.get(port, "/bomb").status == 500
        assert harness.get(port, "/pid").text == pid
    rampart.wait_log(r"\[error\] .*lua entry thread aborted: memory error in content: "
                     r"not enough memory")


def test_worker_exiting_is_true_while_an_old_worker_drains(rampart, port):
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{
                content_by_lua_block {{
                    local before = ngx.worker.exiting()
                    ngx.log(ngx.NOTICE, "request asleep")
                    ngx.sleep(1)
                    ngx.say(before, " ", ngx.worker.exiting())
                }}
            }}
        }}
    """)
    rampart.start()
    answer = []
    t = threading.Thread(target=lambda: answer.append(harness.get(port, timeout=10).text))
    t.start()
    rampart.wait_log(r"request asleep")
    rampart.reload()  # the old generation's worker drains its request
    t.join()
    assert answer == ["false true\n"]
