"""Safety of the Lua hooks (issue 13, item 7): whatever a script does, its client gets
a clean answer, the error is logged with the script's file and line, and the worker
lives on (the same pid answers the next request).

- a runtime error in each phase: 500 before the head; after it, the response is cut
  (HTTP/1: the connection closes before the end of the chunked body; HTTP/2: the
  stream is reset); an error in a header filter answers a bare 500 (nginx leaves
  the client waiting there); a log hook's error leaves the answer alone; a failing
  init_worker is logged and the node serves;
- a wait where none is allowed (ngx.sleep in body_filter and set_by_lua; a yield
  across a C call: table.sort's comparator, string.gsub's callback);
- lua_max_memory: a memory bomb (a table growing forever, a string doubling) gets
  "not enough memory", the memory is given back and later requests can use it;
- lua_max_running_time: loops that never yield are stopped ("lua script ran longer
  than TIME"), a hook that waits is not, and refusals of bad values.

Each scenario runs over HTTP/1.1 and HTTP/2 (cleartext, prior knowledge).
"""
import socket

import pytest

import harness
from h2client import h2_request

PROTOS = ["h1", "h2"]
H2_INTERNAL_ERROR = 2


def start(rampart, port, locations, http_extra="", workers=1):
    rampart.configure(f"""
{http_extra}
server {{
    listen 127.0.0.1:{port} http2;
    location = /pid {{ content_by_lua_block {{ ngx.say(ngx.worker.pid()) }} }}
{locations}
}}""", workers=workers)
    rampart.start()
    return rampart


def fetch(proto, port, path):
    """(status, body, cut): cut when the response did not end cleanly."""
    if proto == "h1":
        r = harness.get(port, path)
        return r.status, r.body, False
    r = h2_request(port, "GET", path)
    return r.status, bytes(r.body), r.reset is not None


def worker_pid(proto, port):
    status, body, _ = fetch(proto, port, "/pid")
    assert status == 200
    return int(body)


def h1_raw(port, path):
    """The bytes an HTTP/1.1 request gets before the server closes the connection."""
    return harness.raw_exchange(
        port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())


# --- runtime errors ----------------------------------------------------------

ERRORS_BEFORE_HEAD = {
    "rewrite": 'rewrite_by_lua_block { error("boom in rewrite") }\n'
               '    content_by_lua_block { ngx.say("not here") }',
    "access": 'access_by_lua_block { error("boom in access") }\n'
              '    content_by_lua_block { ngx.say("not here") }',
    "content": 'content_by_lua_block { error("boom in content") }',
    "set": 'set_by_lua_block $x { error("boom in set") }\n'
           '    content_by_lua_block { ngx.say(ngx.var.x) }',
}


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("phase", ERRORS_BEFORE_HEAD)
def test_runtime_error_before_the_head_answers_500_and_logs_file_and_line(
        rampart, port, proto, phase):
    start(rampart, port, f"location /e {{\n    {ERRORS_BEFORE_HEAD[phase]}\n}}")
    pid = worker_pid(proto, port)
    line = rampart.conf_text.split("\n").index(
        next(l for l in rampart.conf_text.split("\n") if "boom in" in l)) + 1
    status, body, _ = fetch(proto, port, "/e")
    assert status == 500 and b"not here" not in body
    # Lua shortens a long chunk name from the left ("...": LUA_IDSIZE)
    rampart.wait_log(rf"lua entry thread aborted: runtime error in {phase}: "
                     rf"\S*rampart\.conf:{line}: boom in {phase}")
    assert worker_pid(proto, port) == pid


@pytest.mark.parametrize("proto", PROTOS)
def test_runtime_error_after_the_head_cuts_the_response(rampart, port, proto):
    start(rampart, port, """location /e { content_by_lua_block {
        ngx.say("first part") ngx.flush(true) error("boom after the head") } }""")
    pid = worker_pid(proto, port)
    if proto == "h1":
        data = h1_raw(port, "/e")
        assert data.startswith(b"HTTP/1.1 200") and b"first part" in data
        assert not data.endswith(b"0\r\n\r\n"), "the chunked body must not end cleanly"
    else:
        # the reset may overtake the head and the part still queued in the session
        r = h2_request(port, "GET", "/e")
        assert r.status in (None, 200) and r.reset == H2_INTERNAL_ERROR
    rampart.wait_log(r"runtime error in content: .*boom after the head")
    assert worker_pid(proto, port) == pid


@pytest.mark.parametrize("proto", PROTOS)
def test_header_filter_error_answers_a_bare_500(rampart, port, proto):
    # the head has not gone out: a 500 without the response's fields and body (nginx
    # leaves the client waiting there)
    start(rampart, port, """location /e {
        add_header X-From-Content yes;
        header_filter_by_lua_block { error("boom in header filter") }
        content_by_lua_block { ngx.say("body") } }""")
    pid = worker_pid(proto, port)
    if proto == "h1":
        r = harness.get(port, "/e")
        assert r.status == 500 and b"body" not in r.body and "X-From-Content" not in r.headers
    else:
        r = h2_request(port, "GET", "/e")
        assert r.status == 500 and r.reset is None and b"body" not in r.body
        assert r.header("x-from-content") is None
    rampart.wait_log(r"runtime error in header_filter: .*:\d+: boom in header filter")
    assert worker_pid(proto, port) == pid


@pytest.mark.parametrize("proto", PROTOS)
def test_body_filter_error_cuts_the_response_and_runs_once(rampart, port, proto):
    start(rampart, port, """location /e {
        body_filter_by_lua_block { error("boom in body filter") }
        content_by_lua_block { ngx.say("one") ngx.say("two") } }""")
    pid = worker_pid(proto, port)
    mark = rampart.log_size()
    if proto == "h1":
        data = h1_raw(port, "/e")
        assert b"one" not in data and not data.endswith(b"0\r\n\r\n")
    else:
        r = h2_request(port, "GET", "/e")
        assert b"one" not in r.body and r.reset == H2_INTERNAL_ERROR
    rampart.wait_log(r"runtime error in body_filter: .*:\d+: boom in body filter", since=mark)
    assert worker_pid(proto, port) == pid
    with open(rampart.error_log, "rb") as f:
        f.seek(mark)
        assert f.read().count(b"boom in body filter") == 1


@pytest.mark.parametrize("proto", PROTOS)
def test_log_hook_error_leaves_the_answer_alone(rampart, port, proto):
    start(rampart, port, """location /e {
        log_by_lua_block { error("boom in log") }
        content_by_lua_block { ngx.say("answered") } }""")
    pid = worker_pid(proto, port)
    status, body, cut = fetch(proto, port, "/e")
    assert (status, body, cut) == (200, b"answered\n", False)
    rampart.wait_log(r"runtime error in log: .*:\d+: boom in log")
    assert worker_pid(proto, port) == pid


@pytest.mark.parametrize("proto", PROTOS)
def test_failing_init_worker_is_logged_and_the_node_serves(rampart, port, proto):
    start(rampart, port, 'location /ok { content_by_lua_block { ngx.say("serving") } }',
          http_extra='init_worker_by_lua_block { error("boom in init_worker") }', workers=2)
    rampart.wait_log(r"runtime error in init_worker: .*:\d+: boom in init_worker")
    status, body, _ = fetch(proto, port, "/ok")
    assert (status, body) == (200, b"serving\n")
    rampart.wait_processes(workers=2)


# --- waits where none is allowed ---------------------------------------------

FORBIDDEN_WAITS = {
    # name: (location body, what the client sees, the logged error)
    # (ngx.sleep in header_filter_by_lua is allowed here: the head waits for it)
    "yield_across_c_in_header_filter": (
        'header_filter_by_lua_block { local t = {3, 1, 2}\n'
        '      table.sort(t, function(a, b) ngx.sleep(0.001) return a < b end) }\n'
        '    content_by_lua_block { ngx.say("body") }',
        500, r"runtime error in header_filter: .*attempt to yield across C-call boundary"),
    "sleep_in_body_filter": (
        'body_filter_by_lua_block { ngx.sleep(0.001) }\n'
        '    content_by_lua_block { ngx.say("body") }',
        "cut", r"runtime error in body_filter: .*API disabled in the context of body_filter"),
    "sleep_in_set": (
        'set_by_lua_block $x { ngx.sleep(0.001) return "v" }\n'
        '    content_by_lua_block { ngx.say(ngx.var.x) }',
        500, r"runtime error in set: .*API disabled in the context of set"),
    "yield_in_sort_comparator": (
        'content_by_lua_block { local t = {3, 1, 2}\n'
        '      table.sort(t, function(a, b) coroutine.yield() return a < b end) ngx.say("x") }',
        500, r"runtime error in content: .*attempt to yield across C-call boundary"),
    "sleep_in_sort_comparator": (
        'content_by_lua_block { local t = {3, 1, 2}\n'
        '      table.sort(t, function(a, b) ngx.sleep(0.001) return a < b end) ngx.say("x") }',
        500, r"runtime error in content: .*attempt to yield across C-call boundary"),
    "yield_in_gsub_callback": (
        'content_by_lua_block { local s = ("abc"):gsub("b", function(c)\n'
        '      coroutine.yield() return "x" end) ngx.say(s) }',
        500, r"runtime error in content: .*attempt to yield across C-call boundary"),
}


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("case", FORBIDDEN_WAITS)
def test_wait_in_a_forbidden_place_is_logged_and_answered_cleanly(rampart, port, proto, case):
    body, expect, logged = FORBIDDEN_WAITS[case]
    start(rampart, port, f"location /w {{\n    {body}\n}}")
    pid = worker_pid(proto, port)
    if proto == "h1":
        if expect == 500:
            assert harness.get(port, "/w").status == 500
        else:
            data = h1_raw(port, "/w")
            assert not data.endswith(b"0\r\n\r\n")
    else:
        r = h2_request(port, "GET", "/w")
        if expect == 500:
            assert r.status == 500 and r.reset is None
        else:
            assert r.reset == H2_INTERNAL_ERROR and b"body" not in r.body
    rampart.wait_log(logged)
    assert worker_pid(proto, port) == pid


# --- lua_max_memory ----------------------------------------------------------

MEMORY_BOMBS = {
    "table_growing": "local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end",
    "string_concat_doubling": 'local s = "x" while true do s = s .. s end',
    "string_rep_doubling": 'local s = "x" while true do s = string.rep(s, 2) end',
    "one_huge_string": 'local s = string.rep("x", 100 * 1024 * 1024) ngx.say(#s)',
}


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("bomb", MEMORY_BOMBS)
def test_memory_bomb_gets_not_enough_memory_and_the_worker_lives(rampart, port, proto, bomb):
    start(rampart, port, f"""
    location /bomb {{ content_by_lua_block {{ {MEMORY_BOMBS[bomb]} }} }}
    location /big {{ content_by_lua_block {{
        local s = string.rep("x", 20 * 1024 * 1024) ngx.say(#s) }} }}""",
          http_extra="lua_max_memory 64m;")
    pid = worker_pid(proto, port)
    status, _, _ = fetch(proto, port, "/bomb")
    assert status == 500
    rampart.wait_log(r"lua entry thread aborted: memory error in content: not enough memory")
    # what the bomb held was given back: 20 MB fit again (string.rep needs twice that)
    status, body, _ = fetch(proto, port, "/big")
    assert (status, body) == (200, b"%d\n" % (20 * 1024 * 1024))
    assert worker_pid(proto, port) == pid
    assert "atpanic" not in rampart.log_text()


def test_memory_bomb_in_a_header_filter_answers_500_and_the_worker_lives(rampart, port):
    start(rampart, port, """location /bomb {
        header_filter_by_lua_block { local s = "x" while true do s = s .. s end }
        content_by_lua_block { ngx.say("body") } }""", http_extra="lua_max_memory 64m;")
    pid = worker_pid("h1", port)
    assert harness.get(port, "/bomb").status == 500
    rampart.wait_log(r"memory error in header_filter: not enough memory")
    assert worker_pid("h1", port) == pid


# --- lua_max_running_time ----------------------------------------------------

ENDLESS_LOOPS = {
    "empty_loop": "while true do end",
    "counting": "local i = 0 while true do i = i + 1 end",
    "numeric_for": "local s = 0 for i = 1, 1e15 do s = s + i end",
    "table_writes": "local t = {} local i = 0 while true do i = i + 1 t[i % 64 + 1] = i end",
    "string_building": 'local n = 0 while true do n = n + #("k" .. n) end',
    "gsub_calls": 'local n = 0 while true do n = n + #(("abc"):gsub("b", "x")) end',
    "c_function_calls": "local n = 0 while true do n = n + ngx.now() end",
    "pairs": "local t = {a = 1, b = 2} local n = 0 while true do\n"
             "      for _, v in pairs(t) do n = n + v end end",
    "recursion": "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end\n"
                 "      while true do f(50) end",
    "pcall_swallowing_errors": "while true do pcall(function() while true do end end) end",
    "local_function": "local function spin() local i = 0 while true do i = i + 1 end end spin()",
}


@pytest.mark.parametrize("proto", PROTOS)
@pytest.mark.parametrize("loop", ENDLESS_LOOPS)
def test_endless_loop_is_stopped_after_lua_max_running_time(rampart, port, proto, loop):
    start(rampart, port, f"location /spin {{ content_by_lua_block {{ {ENDLESS_LOOPS[loop]} }} }}",
          http_extra="lua_max_running_time 200ms;")
    pid = worker_pid(proto, port)
    status, body, _ = fetch(proto, port, "/spin")
    assert status == 500
    rampart.wait_log(r"lua entry thread aborted: runtime error in content: "
                     r"(\S+:\d+: )?lua script ran longer than 200ms")
    assert worker_pid(proto, port) == pid


@pytest.mark.parametrize("phase", ["rewrite", "access", "header_filter", "log"])
def test_endless_loop_is_stopped_in_other_phases(rampart, port, phase):
    start(rampart, port, f"""location /spin {{
        {phase}_by_lua_block {{ local i = 0 while true do i = i + 1 end }}
        content_by_lua_block {{ ngx.say("body") }} }}""",
          http_extra="lua_max_running_time 200ms;")
    pid = worker_pid("h1", port)
    if phase in ("rewrite", "access"):
        assert harness.get(port, "/spin").status == 500
    elif phase == "header_filter":
        # it runs inside the content hook's ngx.say: one run of Lua code, stopped whole
        # (the content hook too), with the head not out: the connection closes
        assert h1_raw(port, "/spin") == b""
    else:
        assert harness.get(port, "/spin").text == "body\n"
    rampart.wait_log(rf"runtime error in {phase}: (\S+:\d+: )?lua script ran longer than 200ms")
    assert worker_pid("h1", port) == pid


def test_a_module_loop_is_stopped_when_init_by_lua_turns_the_jit_off(rampart, port):
    (rampart.prefix / "lua").mkdir(parents=True)
    (rampart.prefix / "lua" / "spinner.lua").write_text(
        "local M = {}\nfunction M.spin() local i = 0 while true do i = i + 1 end end\n"
        "return M\n")
    start(rampart, port, "location /spin { content_by_lua_block { require('spinner').spin() } }",
          http_extra="lua_max_running_time 200ms;\ninit_by_lua_block { jit.off() }")
    pid = worker_pid("h1", port)
    assert harness.get(port, "/spin").status == 500
    rampart.wait_log(r"runtime error in content: (\S+:\d+: )?lua script ran longer than 200ms")
    assert worker_pid("h1", port) == pid


def test_the_limit_counts_one_run_between_waits_not_the_whole_hook(rampart, port):
    # 5 runs of about 100 ms each, separated by waits: 500 ms in all, none over 300 ms
    start(rampart, port, """location /steps { content_by_lua_block {
        for step = 1, 5 do
            ngx.update_time()
            local start = ngx.now()
            while ngx.now() - start < 0.1 do ngx.update_time() end
            ngx.sleep(0.001)
        end
        ngx.say("done") } }""", http_extra="lua_max_running_time 300ms;")
    r = harness.get(port, "/steps", timeout=20)
    assert (r.status, r.text) == (200, "done\n")
    assert "ran longer than" not in rampart.log_text()


def test_other_connections_are_served_once_the_loop_is_stopped(rampart, port):
    start(rampart, port, "location /spin { content_by_lua_block { while true do end } }\n"
                         "    location /ok { content_by_lua_block { ngx.say('ok') } }",
          http_extra="lua_max_running_time 300ms;")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
        # this one waits behind the loop in the same (only) worker, then is served
        assert harness.get(port, "/ok", timeout=20).text == "ok\n"
        s.settimeout(20)
        assert s.recv(100).startswith(b"HTTP/1.1 500")


def test_no_limit_by_default(rampart, port):
    # 0.5 s of computing (not waiting) passes when lua_max_running_time is not set
    start(rampart, port, """location /busy { content_by_lua_block {
        ngx.update_time() local start = ngx.now()
        while ngx.now() - start < 0.5 do ngx.update_time() end
        ngx.say("done") } }""")
    assert harness.get(port, "/busy", timeout=20).text == "done\n"


@pytest.mark.parametrize("value,message", [
    ("abc", '"lua_max_running_time": invalid time "abc"'),
    ("-1s", '"lua_max_running_time": invalid time "-1s"'),
])
def test_lua_max_running_time_refuses_bad_values(tmp_path, value, message):
    from reference_nginx import rampart_text
    (tmp_path / "rampart.conf").write_text(rampart_text(f"lua_max_running_time {value};"))
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1
    assert f"{tmp_path / 'rampart.conf'}:3: " in p.stderr and message in p.stderr


def test_lua_max_running_time_only_at_http_level(tmp_path):
    from reference_nginx import rampart_text
    (tmp_path / "rampart.conf").write_text(
        rampart_text("server {\nlua_max_running_time 1s;\n}"))
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1 and f"{tmp_path / 'rampart.conf'}:4: " in p.stderr
    assert "lua_max_running_time" in p.stderr
