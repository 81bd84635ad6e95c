"""ngx.shared.DICT across workers, and against OpenResty: the same http block, with
content_by_lua handlers using a lua_shared_dict, runs under rampart (2 workers) and
under Debian's nginx with libnginx-mod-http-lua (2 workers, reference_nginx.py).

A value set by one worker is read by the other; increments sent over many
concurrent connections, served by both workers, add up exactly; and a script that
calls every method of a dictionary, its errors included, prints the same lines
under both servers.
"""

import threading
from pathlib import Path

import pytest

import harness
import reference_nginx

NGINX_MODULES = ("load_module /usr/lib/nginx/modules/ndk_http_module.so; "
                 "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so; ")

# Prints one line per call: its name, then each value returned as type:value, or
# "error" and the message (without the file:line OpenResty's Lua code prefixes).
SCRIPT = r"""
local d = ngx.shared.dogs
local out = {}
local function show(name, ...)
  local t = {name}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    t[#t + 1] = type(v) .. ':' .. tostring(v)
  end
  out[#out + 1] = table.concat(t, ' ')
end
local function pack(...) return {n = select('#', ...), ...} end
local function try(name, method, ...)
  local r = pack(pcall(d[method], d, ...))
  if r[1] then
    show(name, unpack(r, 2, r.n))
  else
    out[#out + 1] = name .. ' error ' .. tostring(r[2]):gsub('^[^ ]-:%d+: ', '')
  end
end

d:flush_all()
try('set string', 'set', 's', 'a\0b')
local v = d:get('s') show('binary', #v, v == 'a\0b')
try('set number', 'set', 'n', 2.5) try('get number', 'get', 'n')
try('set int', 'set', 'i', -7) try('get int', 'get', 'i')
try('set true', 'set', 't', true) try('get true', 'get', 't')
try('set false', 'set', 'f', false) try('get false', 'get', 'f')
try('set flags', 'set', 'fl', 'v', 0, 42) try('get flags', 'get', 'fl')
try('get missing', 'get', 'missing')
try('number key', 'set', 12, 'twelve') try('get number key', 'get', '12')
try('add existing', 'add', 's', 'x') try('add new', 'add', 'a', 1)
try('safe_add existing', 'safe_add', 'a', 2) try('safe_set', 'safe_set', 'ss', 1)
try('replace missing', 'replace', 'zz', 1) try('replace', 'replace', 'a', 'two')
try('get replaced', 'get', 'a')
try('add nil', 'add', 'a', nil) try('replace nil', 'replace', 'a', nil)
try('safe_add nil', 'safe_add', 'new', nil)
try('set nil', 'set', 'a', nil) try('get deleted', 'get', 'a')
try('delete', 'delete', 'ss') try('delete missing', 'delete', 'ss')
for _, m in ipairs{'get', 'get_stale', 'set', 'add', 'replace', 'delete', 'incr', 'ttl',
                   'expire', 'lpush', 'rpush'} do
  try(m .. ' nil key', m, nil, 1)
  try(m .. ' empty key', m, '', 1)
  try(m .. ' long key', m, string.rep('k', 65536), 1)
end
for _, m in ipairs{'lpop', 'rpop', 'llen'} do
  try(m .. ' nil key', m, nil)
  try(m .. ' empty key', m, '')
  try(m .. ' long key', m, string.rep('k', 65536))
  try(m .. ' argument count', m, 'l', 1)
end
try('lpush argument count', 'lpush', 'l')
try('set function', 'set', 'fn', print)
try('set negative exptime', 'set', 'x', 1, -1)
try('incr missing', 'incr', 'c', 1)
try('incr init', 'incr', 'c', 5, 10)
try('incr', 'incr', 'c', -0.5)
try('incr string step', 'incr', 'c', '2')
try('incr bad step', 'incr', 'c', 'abc')
try('incr not a number', 'incr', 's', 1)
try('incr not a number init', 'incr', 's', 1, 0)
try('incr init_ttl', 'incr', 'ct', 1, 0, 10)
show('ttl ceil', math.ceil(d:ttl('ct')))
try('incr init_ttl without init', 'incr', 'ct', 1, nil, 10)
try('incr negative init_ttl', 'incr', 'ct', 1, 0, -1)
try('incr bad init', 'incr', 'ct', 1, {})
try('ttl never', 'ttl', 'n') try('ttl missing', 'ttl', 'zz')
try('expire', 'expire', 'n', 100) show('expire ttl', math.ceil(d:ttl('n')))
try('expire 0', 'expire', 'n', 0) try('ttl after expire 0', 'ttl', 'n')
try('expire missing', 'expire', 'zz', 1) try('expire no exptime', 'expire', 'n')
try('get_stale fresh', 'get_stale', 's') try('get_stale flags', 'get_stale', 'fl')
try('get_stale missing', 'get_stale', 'zz')
try('lpush', 'lpush', 'l', 'b') try('lpush 2', 'lpush', 'l', 'a')
try('rpush', 'rpush', 'l', 3) try('llen', 'llen', 'l')
try('get list', 'get', 'l') try('get_stale list', 'get_stale', 'l')
try('incr list', 'incr', 'l', 1)
try('lpop', 'lpop', 'l') try('rpop', 'rpop', 'l') try('rpop 2', 'rpop', 'l')
try('lpop empty', 'lpop', 'l') try('llen empty', 'llen', 'l')
try('lpush bad value', 'lpush', 'l', true) try('lpush table', 'lpush', 'l', {})
try('lpush not a list', 'lpush', 's', 1) try('rpop not a list', 'rpop', 's')
try('llen not a list', 'llen', 's')
try('set over list', 'set', 'l', 1)
try('capacity', 'capacity')
try('flush_expired none', 'flush_expired')
local keys = d:get_keys(0) table.sort(keys) show('keys', table.concat(keys, ','))
show('get_keys 2', #d:get_keys(2)) show('get_keys -1', #d:get_keys(-1))
try('short life', 'set', 'e1', 'old', 0.001, 3) try('short life 2', 'set', 'e2', 2, 0.001)
ngx.sleep(0.01)
try('expired', 'get', 'e1') try('stale', 'get_stale', 'e1') show('ttl expired', d:ttl('e2') < 0)
try('flush_expired', 'flush_expired') try('flush_expired again', 'flush_expired')
try('flush_all', 'flush_all') try('after flush_all', 'get', 's')
show('keys after flush_all', #d:get_keys(0))
local ok, err = pcall(d.get, 's') show('dot call', ok, (tostring(err):gsub('^[^ ]-:%d+: ', '')))
ngx.say(table.concat(out, '\n'))
"""


def http_block(port, script):
    return (f"lua_shared_dict dogs 1m;\n"
            f"server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    location = /script {{ content_by_lua_file {script}; }}\n"
            f"    location = /set {{ content_by_lua_block {{\n"
            f"        ngx.shared.dogs:set('k', 'from ' .. ngx.worker.pid(), 0, 7)\n"
            f"        ngx.say(ngx.worker.pid())\n"
            f"    }} }}\n"
            f"    location = /get {{ content_by_lua_block {{\n"
            f"        local v, flags = ngx.shared.dogs:get('k')\n"
            f"        ngx.say(ngx.worker.pid(), ' ', v, ' ', flags)\n"
            f"    }} }}\n"
            f"    location = /incr {{ content_by_lua_block {{\n"
            f"        local v, err = ngx.shared.dogs:incr('hits', 1, 0)\n"
            f"        ngx.say(ngx.worker.pid(), ' ', v or err)\n"
            f"    }} }}\n"
            f"    location = /hits {{ content_by_lua_block {{\n"
            f"        ngx.say(ngx.shared.dogs:get('hits'))\n"
            f"    }} }}\n"
            f"}}\n")


@pytest.fixture(params=["rampart", "nginx"])
def server(request, tmp_path):
    """A started server with two workers serving http_block: rampart, or Debian's nginx
    with the lua module, in the same configuration."""
    script = tmp_path / "script.lua"
    script.write_text(SCRIPT)
    port = harness.free_port()
    if request.param == "rampart":
        s = harness.Rampart(tmp_path / "rampart")
        s.configure(http_block(port, script), workers=2)
    else:
        reference_nginx.require()
        s = reference_nginx.Nginx(tmp_path / "nginx")
        s.configure(http_block(port, script))
        s.conf_text = NGINX_MODULES + s.conf_text.replace("worker_processes 1;",
                                                          "worker_processes 2;")
        s.conf_path.write_text(s.conf_text)
    s.start()
    s.kind = request.param
    yield s
    s.stop()
    if request.param == "rampart":
        problems = s.problems()
        assert not problems, "unexpected trouble in rampart:\n" + "\n".join(problems)


def answer(port, path):
    r = harness.get(port, path, timeout=30)
    assert r.status == 200, (path, r.status, r.body)
    return r.body.decode().rstrip("\n")


def test_a_value_set_by_one_worker_is_read_by_the_other(server):
    setter = answer(server.port, "/set")
    # each request on a new connection: keep asking until the other worker answers
    got = harness.wait_for(
        lambda: (lambda a: a if a.split(" ")[0] != setter else None)(
            answer(server.port, "/get")),
        timeout=60, interval=0, what="an answer from the other worker")
    pid, rest = got.split(" ", 1)
    value, flags = rest.rsplit(" ", 1)
    assert value == f"from {setter}" and flags == "7"


def test_increments_from_concurrent_requests_to_both_workers_add_up(server):
    total, pids, lock = 0, set(), threading.Lock()

    def one():
        pid, value = answer(server.port, "/incr").split(" ")
        assert float(value) >= 1
        with lock:
            pids.add(pid)

    # batches of simultaneous requests until both workers have counted some
    for _ in range(20):
        threads = [threading.Thread(target=one) for _ in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total += len(threads)
        if len(pids) == 2:
            break
    assert len(pids) == 2, "one worker served every request"
    assert answer(server.port, "/hits") == str(total)


def test_every_method_answers_as_openresty(tmp_path):
    """The script's lines under rampart are nginx's, line for line."""
    reference_nginx.require()
    script = tmp_path / "script.lua"
    script.write_text(SCRIPT)
    outputs = {}
    for kind in ("nginx", "rampart"):
        port = harness.free_port()
        if kind == "rampart":
            s = harness.Rampart(tmp_path / kind)
            s.configure(http_block(port, script), workers=2)
        else:
            s = reference_nginx.Nginx(tmp_path / kind)
            s.configure(http_block(port, script))
            s.conf_text = NGINX_MODULES + s.conf_text
            s.conf_path.write_text(s.conf_text)
        try:
            s.start()
            outputs[kind] = answer(s.port, "/script")
        finally:
            s.stop()
    want, got = outputs["nginx"].split("\n"), outputs["rampart"].split("\n")
    assert len(want) > 100, outputs["nginx"]
    diff = [f"nginx:   {w}\nrampart: {g}" for w, g in zip(want, got) if w != g]
    assert not diff and len(want) == len(got), "\n".join(diff)


def dict_locations(names):
    """/set/NAME stores k (the worker's pid) in dictionary NAME; /get/NAME reads it:
    "PID VALUE" (VALUE nil when k is not there)."""
    text = ""
    for n in names:
        text += (f"    location = /set/{n} {{ content_by_lua_block {{\n"
                 f"        ngx.shared.{n}:set('k', 'v' .. ngx.worker.pid())\n"
                 f"        ngx.say(ngx.worker.pid())\n"
                 f"    }} }}\n"
                 f"    location = /get/{n} {{ content_by_lua_block {{\n"
                 f"        ngx.say(ngx.worker.pid(), ' ', tostring(ngx.shared.{n}:get('k')))\n"
                 f"    }} }}\n")
    return text


def test_a_reload_keeps_a_dictionary_whose_size_stays(rampart, port):
    def conf(cats_size):
        return (f"lua_shared_dict dogs 1m;\n"
                f"lua_shared_dict cats {cats_size};\n"
                f"server {{\n    listen 127.0.0.1:{port};\n"
                f"{dict_locations(['dogs', 'cats'])}}}\n")
    rampart.configure(conf("1m"))
    rampart.start()
    old = {answer(port, "/set/dogs"), answer(port, "/set/cats")}
    assert answer(port, "/get/cats").split(" ")[1].startswith("v")
    rampart.configure(conf("2m"))
    rampart.reload()
    pid, dogs = harness.wait_for(
        lambda: (lambda a: a if a[0] not in old else None)(answer(port, "/get/dogs").split(" ")),
        timeout=30, interval=0.05, what="an answer from a new worker")
    assert dogs in {f"v{p}" for p in old}, "dogs (same size) keeps its entries"
    assert answer(port, "/get/cats").split(" ")[1] == "nil", "cats (new size) starts empty"


def test_init_by_lua_fills_a_dictionary_the_workers_read(rampart, port):
    rampart.configure("lua_shared_dict dogs 1m;\n"
                      "init_by_lua_block { ngx.shared.dogs:set('k', 'from init', 0, 3) }\n"
                      f"server {{\n    listen 127.0.0.1:{port};\n"
                      f"{dict_locations(['dogs'])}}}\n", workers=2)
    rampart.start()
    assert answer(port, "/get/dogs").split(" ", 1)[1] == "from init"


# http-block content, the line rampart and nginx name, rampart's message
REFUSALS = {
    "duplicate": ("lua_shared_dict dogs 1m;\nlua_shared_dict dogs 1m;", 4,
                  '"lua_shared_dict": lua_shared_dict "dogs" is already defined as "dogs"'),
    "too small": ("lua_shared_dict dogs 8191;", 3,
                  '"lua_shared_dict": invalid lua shared dict size "8191"'),
    "not a size": ("lua_shared_dict dogs lots;", 3,
                   '"lua_shared_dict": invalid lua shared dict size "lots"'),
    "no size": ("lua_shared_dict dogs;", 3,
                '"lua_shared_dict": takes 2 arguments, got 1'),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_bad_declarations_are_refused_with_file_and_line(conf_dir, case):
    http, line, message = REFUSALS[case]
    reference_nginx.assert_rampart_refuses(conf_dir, http, line, message)


@pytest.mark.parametrize("case", REFUSALS)
def test_nginx_refuses_the_same_declarations_at_the_same_line(tmp_path, case):
    reference_nginx.require()
    http, line, _ = REFUSALS[case]
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(http)
    # on the first line, so that the http block's lines keep their numbers
    nginx.conf_path.write_text(NGINX_MODULES + nginx.conf_text)
    p = nginx.check()
    assert p.returncode != 0, p.stderr
    assert f"{nginx.conf_path}:{line}" in p.stderr, p.stderr
