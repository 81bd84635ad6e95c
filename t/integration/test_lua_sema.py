"""ngx.semaphore (lua-resty-core's module, built in): new/post/wait/count with
OpenResty's answers and errors; requests and timers of a worker waiting on one another
(a consumer request woken by a producer request, a timer woken by a request), wait
timeouts, and a waiter whose request ends (an HTTP/2 stream reset) leaving the queue.
Where OpenResty supports the same, Debian's nginx with lua-nginx-module and
lua-resty-core gives the same answers.

One worker: the semaphore lives in the worker's VM (made in init_worker_by_lua).
"""

import socket
import threading

import harness
import lua_reference
from h2client import H2Client, H2Response

INIT = """
    init_worker_by_lua_block {
        local semaphore = require "ngx.semaphore"
        SEMA = semaphore.new(0)
    }
"""

BODY = """
    location /api {
        content_by_lua_block {
            local semaphore = require "ngx.semaphore"
            local s = semaphore.new(0)
            ngx.say(s:wait(0.01))
            ngx.say(s:wait(0))
            ngx.say(s:count())
            ngx.say(s:post(2), " ", s:count())
            ngx.say(s:wait(0), " ", s:count())
            ngx.say(pcall(s.wait, s, -1))
            ngx.say(pcall(semaphore.new, -1))
            ngx.say(pcall(s.post, s, 0))
            ngx.say(pcall(semaphore.wait, {}, 1))
            ngx.say(semaphore.new():count(), " ", semaphore.new(3):count())
        }
    }
    location /consume {
        content_by_lua_block {
            local ok, err = SEMA:wait(10)
            ngx.say("consumed ", tostring(ok), " ", tostring(err), " ", SEMA:count())
        }
    }
    location /short {
        content_by_lua_block {
            local ok, err = SEMA:wait(0.2)
            ngx.say("short ", tostring(ok), " ", tostring(err), " ", SEMA:count())
        }
    }
    location /produce {
        content_by_lua_block { ngx.say(SEMA:post()) }
    }
    location /produce2 {
        content_by_lua_block { ngx.say(SEMA:post(2)) }
    }
    location /count {
        content_by_lua_block { ngx.say(SEMA:count()) }
    }
    location /timer {
        content_by_lua_block {
            ngx.timer.at(0, function()
                local ok, err = SEMA:wait(10)
                ngx.log(ngx.NOTICE, "timer waited: ", tostring(ok), " ", tostring(err))
                TIMER = tostring(ok)
            end)
            ngx.say("set")
        }
    }
    location /timer_result {
        content_by_lua_block { ngx.say(TIMER or "none") }
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


def wait_count(port, value):
    harness.wait_for(lambda: harness.get(port, "/count").text == f"{value}\n",
                     what=f"the semaphore's count to be {value}")


def in_background(fn):
    out = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as e:  # noqa: BLE001 -- reported by the test
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_semaphore_api_answers_as_openresty(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port, lambda port: harness.get(port, "/api").text)
    assert got.splitlines()[:5] == ["falsetimeout", "niltimeout", "0", "true 2", "true 1"]
    assert got == want


def test_a_consumer_request_waits_until_a_producer_request_posts(tmp_path, rampart, free_port):
    def script(port):
        t, out = in_background(lambda: harness.get(port, "/consume", timeout=15).text)
        wait_count(port, -1)  # the consumer waits
        produced = harness.get(port, "/produce").text
        t.join(15)
        return out.get("value"), produced, harness.get(port, "/count").text
    got, want = both(tmp_path, rampart, free_port, script)
    assert got == ("consumed true nil 0\n", "true\n", "0\n")
    assert got == want


def test_a_wait_times_out_without_a_producer(tmp_path, rampart, free_port):
    got, want = both(tmp_path, rampart, free_port,
                     lambda port: (harness.get(port, "/short").text,
                                   harness.get(port, "/count").text))
    assert got == ("short false timeout 0\n", "0\n")
    assert got == want


def test_one_post_of_two_wakes_two_waiters_over_http2(rampart, port):
    start(rampart, port)
    with H2Client(port) as c:
        h2 = c.h2
        sids = []
        for _ in range(2):
            sid = h2.get_next_available_stream_id()
            h2.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                  (":authority", "localhost"), (":path", "/consume")],
                            end_stream=True)
            sids.append(sid)
        c.flush()
        wait_count(port, -2)
        assert harness.get(port, "/produce2").text == "true\n"
        streams = {sid: H2Response() for sid in sids}
        while not all(s.ended for s in streams.values()):
            c._read(streams)
        bodies = sorted(bytes(s.body) for s in streams.values())
    assert bodies == [b"consumed true nil 0\n", b"consumed true nil 0\n"]


def test_a_timer_waits_for_a_request_to_post(rampart, port):
    start(rampart, port)
    assert harness.get(port, "/timer").text == "set\n"
    wait_count(port, -1)
    assert harness.get(port, "/produce").text == "true\n"
    rampart.wait_log(r"timer waited: true nil")
    assert harness.get(port, "/timer_result").text == "true\n"


def test_a_waiter_whose_stream_is_reset_leaves_the_queue(rampart, port):
    start(rampart, port)
    with H2Client(port) as c:
        sid = c.h2.get_next_available_stream_id()
        c.h2.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                (":authority", "localhost"), (":path", "/consume")],
                          end_stream=True)
        c.flush()
        wait_count(port, -1)
        c.h2.reset_stream(sid)
        c.flush()
        wait_count(port, 0)  # the waiter is gone from the queue
    # a post now is not taken by the gone waiter: the next consumer gets it at once
    assert harness.get(port, "/produce").text == "true\n"
    assert harness.get(port, "/count").text == "1\n"
    assert harness.get(port, "/short").text == "short true nil 0\n"


def test_a_waiter_whose_client_leaves_over_http1_leaves_the_queue(rampart, port):
    start(rampart, port)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /consume HTTP/1.1\r\nHost: localhost\r\n\r\n")
        wait_count(port, -1)
    wait_count(port, 0)
