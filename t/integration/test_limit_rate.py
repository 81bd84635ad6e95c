"""
Throttling bandwidth (issue 12 item 7): `map` setting $limit_rate (`set` is in
test_client_limits.py), and proxy_limit_rate, which paces the reading of the
response from the proxied server (HTTP/1 and HTTP/2 upstreams), per request.

Time bounds are loose lower bounds computed from the rate (nginx's one second of
allowance deducted, and a wide margin) for the paced case, and a generous upper
bound for the same response unpaced: CI runs these under ASan on shared cores.
"""

import time

import pytest

import reference_nginx
from backend import pattern
from h2_backend import H2Backend
from harness import get

SIZE = 256 * 1024
RATE = 64 * 1024  # SIZE / RATE = 4 s; with the one second of allowance, at least 3 s


def timed_get(port, path, **kw):
    started = time.monotonic()
    r = get(port, path, timeout=30, **kw)
    return r, time.monotonic() - started


def test_a_map_of_limit_rate_paces_the_requests_it_gives_a_rate(rampart, port):
    body = "m" * 6000
    rampart.configure(f"map $arg_plan $limit_rate {{ slow 2k; default 0; }}\n"
                      f"server {{ listen 127.0.0.1:{port};\n"
                      f'  location / {{ return 200 "{body}"; }}\n}}')
    rampart.start()
    r, took = timed_get(port, "/?plan=slow")
    assert r.text == body
    assert took > 1.5  # 6000 bytes at 2048 a second, after a one-second allowance
    r, took = timed_get(port, "/?plan=gold")
    assert r.text == body
    assert took < 1.5


def test_a_map_value_that_is_not_a_size_leaves_the_locations_rate(rampart, port):
    body = "n" * 6000
    rampart.configure(f"map $arg_plan $limit_rate {{ default fast; }}\n"
                      f"server {{ listen 127.0.0.1:{port}; limit_rate 2k;\n"
                      f'  location / {{ return 200 "{body}"; }}\n}}')
    rampart.start()
    r, took = timed_get(port, "/")
    assert r.text == body
    assert took > 1.5


def proxy_conf(port, upstream, location):
    return (f"{upstream}\nserver {{\n    listen 127.0.0.1:{port};\n"
            f"    location / {{\n        proxy_pass http://be;\n        {location}\n    }}\n"
            f"    location /free/ {{\n        proxy_pass http://be/;\n    }}\n}}\n")


def test_proxy_limit_rate_paces_reading_an_http1_response(rampart, port, backend):
    rampart.configure(proxy_conf(port, f"upstream be {{ server {backend.addr}; }}",
                                 f"proxy_limit_rate {RATE};"), workers=2)
    rampart.start()
    r, took = timed_get(port, f"/?size={SIZE}")
    assert r.status == 200 and r.body == pattern(SIZE)
    assert took > 2.5
    # the same response where the location does not limit the rate is not paced
    r, took = timed_get(port, f"/free/?size={SIZE}")
    assert r.status == 200 and r.body == pattern(SIZE)
    assert took < 2.0


def test_proxy_limit_rate_0_is_off(rampart, port, backend):
    rampart.configure(proxy_conf(port, f"upstream be {{ server {backend.addr}; }}",
                                 "proxy_limit_rate 0;"), workers=2)
    rampart.start()
    r, took = timed_get(port, f"/?size={SIZE}")
    assert r.status == 200 and r.body == pattern(SIZE)
    assert took < 2.0


def test_proxy_limit_rate_is_per_request_and_chunked_bodies_are_paced_too(rampart, port,
                                                                          backend):
    rampart.configure(proxy_conf(port, f"upstream be {{ server {backend.addr}; }}",
                                 f"proxy_limit_rate {RATE};"), workers=2)
    rampart.start()
    r, took = timed_get(port, f"/?size={SIZE}&chunked=1")
    assert r.status == 200 and r.body == pattern(SIZE)
    assert took > 2.5
    r, took = timed_get(port, f"/?size={RATE // 2}")
    assert r.body == pattern(RATE // 2)
    assert took < 2.0  # a new request starts with its own allowance


@pytest.fixture
def h2be():
    b = H2Backend().start()
    yield b
    b.stop()


def test_proxy_limit_rate_paces_reading_an_http2_upstream_stream(rampart, port, h2be):
    rampart.configure(proxy_conf(port, f"upstream be {{ server {h2be.addr}; http2; }}",
                                 f"proxy_limit_rate {RATE};"), workers=2)
    rampart.start()
    r, took = timed_get(port, f"/?size={SIZE}")
    assert r.status == 200 and r.body == pattern(SIZE)
    assert took > 2.5
    r, took = timed_get(port, f"/free/?size={SIZE}")
    assert r.status == 200 and r.body == pattern(SIZE)
    assert took < 2.0


def test_proxy_limit_rate_refuses_what_is_not_a_size(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, "proxy_limit_rate fast;", 3,
        '"proxy_limit_rate": invalid size "fast"')
