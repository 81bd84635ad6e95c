"""ngx.timer (OpenResty's timers): ngx.timer.at and every run their callback detached
from the request that set them, with `premature` first and the timer's arguments;
running_count and pending_count; the lua_max_pending_timers and lua_max_running_timers
limits with OpenResty's errors; pending timers fire prematurely when the worker stops
(reload, graceful stop), and a graceful stop waits for running callbacks, at most
until worker_shutdown_timeout. Where OpenResty supports the same, Debian's nginx with
lua-nginx-module gives the same answers.

One worker: a later request reads what a callback left in a global table.
"""

import re
import signal
import time

import harness
import lua_reference
import reference_nginx
from h2client import H2Client


def server(port, body, extra="", listen=""):
    return (f"{extra}\nserver {{\n    listen 127.0.0.1:{port}{listen};\n{body}\n}}\n")


def start(rampart, port, body, extra="", listen=" http2", **kw):
    rampart.configure(http=server(port, body, extra, listen), **kw)
    return rampart.start()


def poll(port, path, until, timeout=5.0):
    """GETs path until until(text) holds; returns the text."""
    last = []

    def check():
        last[:] = [harness.get(port, path).text]
        return until(last[0]) and last[0]
    try:
        return harness.wait_for(check, timeout=timeout, what=f"{path} to answer as expected")
    except AssertionError:
        raise AssertionError(f"{path} last answered {last!r}") from None


def both(tmp_path, rampart, free_port, body, extra, script):
    """Runs script(port) against rampart and nginx on the same http content; returns
    both results."""
    rport, nport = free_port(), free_port()
    start(rampart, rport, body, extra, listen="")
    got = script(rport)
    nginx = lua_reference.start(tmp_path, server(nport, body, extra))
    try:
        want = script(nport)
    finally:
        nginx.stop()
    return got, want


SET_AND_GET = """
    location /set {
        content_by_lua_block {
            local ok, err = ngx.timer.at(0.05, function(premature, a, b)
                RESULT = table.concat({tostring(premature), a, tostring(b), ngx.get_phase()}, " ")
                ngx.log(ngx.NOTICE, "timer ran: ", RESULT)
            end, "x", 42)
            ngx.say(ok, " ", err, " ", ngx.timer.pending_count())
        }
    }
    location /get {
        content_by_lua_block { ngx.say(RESULT or "none") }
    }
"""


def test_timer_at_runs_its_callback_after_the_request_with_its_arguments(
        tmp_path, rampart, free_port):
    def script(port):
        first = harness.get(port, "/set").text
        return first, poll(port, "/get", lambda t: t != "none\n")
    got, want = both(tmp_path, rampart, free_port, SET_AND_GET, "", script)
    assert got == ("1 nil 1\n", "false x 42 timer\n")
    assert got == want
    rampart.wait_log(r"\[notice\] .*timer ran: false x 42 timer")


def test_timer_set_over_http2_runs(rampart, port):
    start(rampart, port, SET_AND_GET)
    with H2Client(port) as c:
        [r] = c.exchange([("GET", "/set", [], b"")])
        assert (r.status, bytes(r.body)) == (200, b"1 nil 1\n")
    rampart.wait_log(r"timer ran: false x 42 timer")
    with H2Client(port) as c:
        [r] = c.exchange([("GET", "/get", [], b"")])
        assert bytes(r.body) == b"false x 42 timer\n"


EVERY = """
    location /start {
        content_by_lua_block {
            COUNT = 0
            local ok, err = ngx.timer.every(0.05, function(premature, step)
                if not premature then COUNT = COUNT + step end
            end, 1)
            ngx.say(ok, " ", err)
        }
    }
    location /count {
        content_by_lua_block {
            ngx.say(COUNT, " pending=", ngx.timer.pending_count())
        }
    }
    location /zero {
        content_by_lua_block {
            ngx.say(pcall(ngx.timer.every, 0, function() end))
        }
    }
"""


def test_timer_every_repeats_and_stays_one_pending_timer(tmp_path, rampart, free_port):
    def script(port):
        started = harness.get(port, "/start").text
        count = poll(port, "/count", lambda t: int(t.split()[0]) >= 3)
        return started, count.split()[1], harness.get(port, "/zero").text
    got, want = both(tmp_path, rampart, free_port, EVERY, "", script)
    assert got == ("1 nil\n", "pending=1", "falsedelay cannot be zero\n")
    assert got == want


LONG = """
    location /long {
        content_by_lua_block {
            ngx.timer.at(1000, function(premature, tag)
                local ok, err = ngx.timer.at(1, function() end)
                ngx.log(ngx.NOTICE, "callback ", tag, " premature=", tostring(premature),
                        " exiting=", tostring(ngx.worker.exiting()), " new timer: ",
                        tostring(ok), " ", err)
            end, "long")
            ngx.timer.every(1000, function(premature)
                ngx.log(ngx.NOTICE, "every premature=", tostring(premature))
            end)
            ngx.say(ngx.timer.pending_count())
        }
    }
"""


def test_pending_timers_fire_prematurely_when_a_reload_replaces_the_worker(rampart, port):
    start(rampart, port, LONG)
    assert harness.get(port, "/long").text == "2\n"
    mark = rampart.log_size()
    rampart.reload()
    rampart.wait_log(r"callback long premature=true exiting=true "
                     r"new timer: nil process exiting", since=mark)
    rampart.wait_log(r"every premature=true", since=mark)


def test_pending_timers_fire_prematurely_on_a_graceful_stop(rampart, port):
    start(rampart, port, LONG)
    assert harness.get(port, "/long").text == "2\n"
    rampart.signal(signal.SIGQUIT)
    assert rampart.wait_exit() == 0
    assert re.search(r"callback long premature=true exiting=true", rampart.log_text())


COUNTS = """
    location /start {
        content_by_lua_block {
            RELEASE = false
            ngx.timer.at(0, function()
                while not RELEASE do ngx.sleep(0.01) end
            end)
            ngx.timer.at(100, function() end)
            ngx.say("started")
        }
    }
    location /counts {
        content_by_lua_block {
            ngx.say(ngx.timer.running_count(), " ", ngx.timer.pending_count())
        }
    }
    location /release {
        content_by_lua_block { RELEASE = true ngx.say("released") }
    }
"""


def test_running_and_pending_counts(tmp_path, rampart, free_port):
    def script(port):
        harness.get(port, "/start")
        running = poll(port, "/counts", lambda t: t == "1 1\n")
        harness.get(port, "/release")
        done = poll(port, "/counts", lambda t: t == "0 1\n")
        return running, done
    got, want = both(tmp_path, rampart, free_port, COUNTS, "", script)
    assert got == ("1 1\n", "0 1\n")
    assert got == want


PENDING_LIMIT = """
    location /t {
        content_by_lua_block {
            for i = 1, 3 do
                ngx.say(ngx.timer.at(100, function() end))
            end
        }
    }
"""


def test_lua_max_pending_timers_refuses_more_with_openrestys_error(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, PENDING_LIMIT, "lua_max_pending_timers 2;",
                     lambda port: harness.get(port, "/t").text)
    assert got == "1\n1\nniltoo many pending timers\n"
    assert got == want


RUNNING_LIMIT = """
    location /t {
        content_by_lua_block {
            local function f() ngx.sleep(0.3) end
            ngx.say(ngx.timer.at(0, f))
            ngx.say(ngx.timer.at(0, f))
        }
    }
"""


def test_lua_max_running_timers_drops_callbacks_beyond_it_with_an_alert(rampart, port):
    start(rampart, port, RUNNING_LIMIT, "lua_max_running_timers 1;")
    assert harness.get(port, "/t").text == "1\n1\n"
    rampart.wait_log(r"\[alert\] .*lua failed to run timer with function defined at "
                     r"\S+rampart\.conf:\d+: 1 lua_max_running_timers are not enough")


def test_timer_limits_refuse_a_bad_number_with_file_and_line(tmp_path):
    http = "lua_max_running_timers many;"
    reference_nginx.assert_rampart_refuses(
        tmp_path, http, 3, '"lua_max_running_timers": invalid number "many"')


SLOW = """
    location /slow {
        content_by_lua_block {
            ngx.timer.at(0, function()
                ngx.log(ngx.NOTICE, "callback started")
                ngx.sleep(SLEEP)
                ngx.log(ngx.NOTICE, "callback finished")
            end)
            ngx.say("set")
        }
    }
"""


def test_graceful_stop_waits_for_a_running_callback(rampart, port):
    start(rampart, port, SLOW, "init_by_lua_block { SLEEP = 0.5 }")
    assert harness.get(port, "/slow").text == "set\n"
    rampart.wait_log(r"callback started")
    rampart.signal(signal.SIGQUIT)
    assert rampart.wait_exit() == 0
    log = rampart.log_text()
    assert "callback finished" in log
    worker_exit = re.search(r"worker process \d+ exited with code 0", log)
    assert worker_exit and log.index("callback finished") < worker_exit.start()


def test_worker_shutdown_timeout_bounds_the_wait_for_callbacks(rampart, port):
    start(rampart, port, SLOW, "init_by_lua_block { SLEEP = 60 }",
          main="worker_shutdown_timeout 300ms;")
    assert harness.get(port, "/slow").text == "set\n"
    rampart.wait_log(r"callback started")
    began = time.monotonic()
    rampart.signal(signal.SIGQUIT)
    assert rampart.wait_exit(timeout=20) == 0
    assert time.monotonic() - began < 20
    log = rampart.log_text()
    assert "worker_shutdown_timeout reached" in log
    assert "callback finished" not in log


INIT = """
    location /t {
        content_by_lua_block { ngx.say(INIT_ERR, " ", FROM_WORKER) }
    }
"""
INIT_HTTP = """
    init_by_lua_block {
        local ok, err = pcall(ngx.timer.at, 0, function() end)
        INIT_ERR = tostring(ok) .. " " .. tostring(err)
    }
    init_worker_by_lua_block {
        FROM_WORKER = "unset"
        local ok, err = ngx.timer.at(0, function(premature)
            FROM_WORKER = ngx.get_phase() .. " " .. tostring(premature)
        end)
        if not ok then FROM_WORKER = err end
    }
"""


def test_timer_from_init_worker_runs_and_from_init_is_an_error(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, INIT, INIT_HTTP,
                     lambda port: poll(port, "/t", lambda t: "unset" not in t))
    assert got == "false no request timer false\n"
    assert got == want
