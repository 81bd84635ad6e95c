"""ngx.thread (OpenResty's light threads): spawn runs a function beside the request's
entry coroutine, a wait in one suspends only that one; wait returns the results of the
first to finish; kill; the phase ends after the last light thread (the response too,
for content); an uncaught error in a light thread is logged and the request still
answers; ngx.exit in any thread ends them all; the client leaving ends them. Where
OpenResty supports the same, Debian's nginx with lua-nginx-module gives the same answers.
"""

import socket
import time

import harness
import lua_reference
from h2client import H2Client

BODY = """
    location /api {
        content_by_lua_block {
            local t = ngx.thread.spawn(function(a) ngx.sleep(0.01) return a, 2 end, "x")
            ngx.say(type(t))
            ngx.say(ngx.thread.wait(t))
            ngx.say(ngx.thread.kill(t))
            ngx.say(pcall(ngx.thread.wait, t))
            local t2 = ngx.thread.spawn(function() ngx.sleep(1) end)
            ngx.say(ngx.thread.kill(t2))
            ngx.say(ngx.thread.kill(t2))
            local t3 = ngx.thread.spawn(function() return "at once" end)
            ngx.say(coroutine.status(t3), " ", select(2, ngx.thread.wait(t3)))
        }
    }
    location /parallel {
        content_by_lua_block {
            local function nap(n) ngx.sleep(1) return n end
            local t1 = ngx.thread.spawn(nap, 1)
            local t2 = ngx.thread.spawn(nap, 2)
            ngx.say(ngx.thread.wait(t1))
            ngx.say(ngx.thread.wait(t2))
        }
    }
    location /first {
        content_by_lua_block {
            local slow = ngx.thread.spawn(function() ngx.sleep(0.5) return "slow" end)
            local fast = ngx.thread.spawn(function() ngx.sleep(0.05) return "fast" end)
            ngx.say(ngx.thread.wait(slow, fast))
            ngx.say(ngx.thread.wait(slow, fast)) -- the last one was waited for
            ngx.say(ngx.thread.wait(fast, slow)) -- one waited for before the last: passed over
        }
    }
    location /kill {
        content_by_lua_block {
            local t = ngx.thread.spawn(function()
                ngx.sleep(0.3)
                ngx.log(ngx.NOTICE, "killed thread went on")
            end)
            ngx.say(ngx.thread.kill(t))
        }
    }
    location /error {
        content_by_lua_block {
            local bad = ngx.thread.spawn(function() ngx.sleep(0.01) error("boom in thread") end)
            local good = ngx.thread.spawn(function() ngx.sleep(0.05) return "good" end)
            local ok, err = ngx.thread.wait(bad)
            ngx.say(ok, " ", err:match("boom in thread"))
            ngx.say(ngx.thread.wait(good))
        }
    }
    location /background {
        content_by_lua_block {
            ngx.thread.spawn(function() ngx.sleep(0.2) ngx.say("from the thread") end)
            ngx.say("entry done")
        }
    }
    location /exit {
        content_by_lua_block {
            ngx.thread.spawn(function() ngx.sleep(0.05) ngx.say("a") ngx.exit(200) end)
            ngx.thread.spawn(function() ngx.sleep(3) ngx.log(ngx.ERR, "other thread went on") end)
            ngx.sleep(3)
            ngx.say("entry went on")
        }
    }
    location /access {
        access_by_lua_block {
            ngx.thread.spawn(function() ngx.sleep(0.1) ngx.ctx.seen = "set by a thread" end)
        }
        content_by_lua_block { ngx.say(ngx.ctx.seen) }
    }
    location /held {
        content_by_lua_block {
            ngx.thread.spawn(function() SEMA:wait(10) end)
            ngx.say("waiting")
            ngx.flush()
        }
    }
    location /big {
        content_by_lua_block {
            -- few big writes: a loop this short is not compiled by the JIT
            local chunk = string.rep("x", 262143)
            local function write(tag)
                for i = 1, 12 do ngx.say(chunk) end
                return tag
            end
            local a = ngx.thread.spawn(write, "a")
            local b = ngx.thread.spawn(write, "b")
            local _, ra = ngx.thread.wait(a)
            local _, rb = ngx.thread.wait(b)
            ngx.say(ra, rb)
        }
    }
    location /entry_error {
        content_by_lua_block {
            ngx.thread.spawn(function() ngx.sleep(0.3) ngx.log(ngx.ERR, "thread outlived the entry") end)
            error("entry fails")
        }
    }
    location /entry_exit {
        content_by_lua_block {
            ngx.thread.spawn(function() ngx.sleep(0.3) ngx.log(ngx.ERR, "thread outlived the exit") end)
            ngx.say("bye")
            ngx.exit(200)
        }
    }
    location /reuse {
        content_by_lua_block {
            local t = ngx.thread.spawn(function() return "first" end)
            ngx.say(ngx.thread.wait(t))
            local others = {}
            for i = 1, 5 do
                others[i] = ngx.thread.spawn(function() ngx.sleep(0.01) return i end)
            end
            ngx.say(ngx.thread.wait(t))
            ngx.say(ngx.thread.kill(t))
            ngx.say(ngx.thread.wait(others[5]))
        }
    }
    location /coroutines {
        content_by_lua_block {
            local t = ngx.thread.spawn(function()
                local gen = coroutine.wrap(function()
                    for i = 1, 2 do ngx.sleep(0.01) coroutine.yield(i) end
                end)
                return gen() + gen()
            end)
            local co = coroutine.create(function() ngx.sleep(0.02) return "entry's own" end)
            ngx.say(coroutine.resume(co))
            ngx.say(ngx.thread.wait(t))
        }
    }
    location /timer_threads {
        content_by_lua_block { ngx.say(TIMER_THREADS) }
    }
    location /count {
        content_by_lua_block { ngx.say(SEMA:count()) }
    }
"""

INIT = """
    init_worker_by_lua_block {
        SEMA = require("ngx.semaphore").new(0)
        TIMER_THREADS = "none"
        ngx.timer.at(0, function()
            local function nap(n) ngx.sleep(0.2) return n end
            local t1, t2 = ngx.thread.spawn(nap, 1), ngx.thread.spawn(nap, 2)
            local _, a = ngx.thread.wait(t1)
            local _, b = ngx.thread.wait(t2)
            ngx.thread.spawn(function() return "never waited for" end)
            TIMER_THREADS = a .. " " .. b
        end)
    }
"""


def server(port, listen=""):
    return f"{INIT}\nserver {{\n    listen 127.0.0.1:{port}{listen};\n{BODY}\n}}\n"


def start(rampart, port, listen=" http2"):
    rampart.configure(http=server(port, listen))
    return rampart.start()


def both(tmp_path, rampart, free_port, script):
    rport, nport = free_port(), free_port()
    start(rampart, rport, listen="")
    got = script(rport)
    nginx = lua_reference.start(tmp_path, server(nport))
    try:
        want = script(nport)
    finally:
        nginx.stop()
    return got, want


def text(port, path):
    r = harness.get(port, path, timeout=15)
    return r.status, r.text


def test_thread_api_answers_as_openresty(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/api"))
    assert got == (200, "thread\ntruex2\nnilalready waited or killed\n"
                        "truenilalready waited or killed\n1\nnilalready waited or killed\n"
                        "zombie at once\n")
    assert got == want


def test_two_threads_sleep_in_parallel(tmp_path, rampart, free_port):
    def script(port):
        began = time.monotonic()
        answer = text(port, "/parallel")
        return answer, time.monotonic() - began
    (got, rtime), (want, ntime) = both(tmp_path, rampart, free_port, script)
    assert got == (200, "true1\ntrue2\n")
    assert got == want
    assert rtime < 1.9  # one sleep of 1s, not two (wide margin for ASan)


def test_two_requests_with_threads_over_http2_run_side_by_side(rampart, port):
    start(rampart, port)
    began = time.monotonic()
    with H2Client(port, timeout=15) as c:
        rs = c.exchange([("GET", "/parallel", [], b""), ("GET", "/parallel", [], b"")])
    assert [(r.status, bytes(r.body)) for r in rs] == [(200, b"true1\ntrue2\n")] * 2
    assert time.monotonic() - began < 1.9


def test_wait_returns_the_first_to_finish(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/first"))
    assert got == (200, "truefast\nnilalready waited or killed\ntrueslow\n")
    assert got == want


def test_a_killed_thread_does_not_go_on(rampart, port):
    start(rampart, port)
    assert text(port, "/kill") == (200, "1\n")
    # the request after the kill: a thread that sleeps longer than the killed one would
    assert text(port, "/parallel") == (200, "true1\ntrue2\n")
    assert "killed thread went on" not in rampart.log_text()


def test_an_error_in_a_thread_is_logged_and_the_request_answers(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/error"))
    assert got == (200, "false boom in thread\ntruegood\n")
    assert got == want
    rampart.wait_log(r"\[error\] .*lua user thread aborted: runtime error: "
                     r"\S+rampart\.conf:\d+: boom in thread")


def test_the_response_ends_after_the_last_thread(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/background"))
    assert got == (200, "entry done\nfrom the thread\n")
    assert got == want


def test_exit_in_a_thread_ends_every_thread(tmp_path, rampart, free_port):
    def script(port):
        began = time.monotonic()
        answer = text(port, "/exit")
        return answer, time.monotonic() - began < 2.5
    got, want = both(tmp_path, rampart, free_port, script)
    assert got == ((200, "a\n"), True)
    assert got == want
    assert "went on" not in rampart.log_text()


def test_the_access_phase_waits_for_its_threads(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/access"))
    assert got == (200, "set by a thread\n")
    assert got == want


def wait_count(port, value):
    harness.wait_for(lambda: harness.get(port, "/count").text == f"{value}\n",
                     what=f"the semaphore's count to be {value}")


def test_the_client_leaving_ends_the_threads(rampart, port):
    start(rampart, port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /held HTTP/1.1\r\nHost: localhost\r\n\r\n")
        wait_count(port, -1)  # the thread waits on the semaphore
    wait_count(port, 0)  # the client left: the thread, and its wait, are gone


def test_the_client_resetting_an_http2_stream_ends_the_threads(rampart, port):
    start(rampart, port)
    with H2Client(port) as c:
        sid = c.h2.get_next_available_stream_id()
        c.h2.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                (":authority", "localhost"), (":path", "/held")],
                          end_stream=True)
        c.flush()
        wait_count(port, -1)
        c.h2.reset_stream(sid)
        c.flush()
        wait_count(port, 0)


def test_threads_writing_more_than_the_output_buffer_all_finish(tmp_path, rampart, free_port):
    def script(port):
        r = harness.get(port, "/big", timeout=20)
        return r.status, len(r.body), r.body[-3:]
    got, want = both(tmp_path, rampart, free_port, script)
    assert got == (200, 2 * 12 * 262144 + 3, b"ab\n")
    assert got == want


def test_a_timer_runs_light_threads(tmp_path, rampart, free_port):
    def script(port):
        harness.wait_for(lambda: harness.get(port, "/timer_threads").text != "none\n",
                         what="the timer's threads")
        return harness.get(port, "/timer_threads").text
    got, want = both(tmp_path, rampart, free_port, script)
    assert got == "1 2\n"
    assert got == want


def test_an_error_in_the_entry_thread_ends_its_threads(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: harness.get(port, "/entry_error").status)
    assert got == 500
    assert got == want
    # a later request that outlasts the thread's sleep
    assert text(rampart.port, "/parallel") == (200, "true1\ntrue2\n")
    assert "thread outlived the entry" not in rampart.log_text()


def test_exit_in_the_entry_thread_ends_its_threads(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/entry_exit"))
    assert got == (200, "bye\n")
    assert got == want
    assert text(rampart.port, "/parallel") == (200, "true1\ntrue2\n")
    assert "thread outlived the exit" not in rampart.log_text()


def test_a_thread_waited_for_stays_waited_while_others_are_spawned(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/reuse"))
    assert got == (200, "truefirst\nnilalready waited or killed\n"
                        "nilalready waited or killed\ntrue5\n")
    assert got == want


def test_coroutines_that_wait_inside_threads_and_beside_them(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: text(port, "/coroutines"))
    assert got == (200, "trueentry's own\ntrue3\n")
    assert got == want
