"""The upstream's X-Accel-* controls as nginx obeys them: X-Accel-Redirect restarts the
request at its URI (arguments after '?', %XX decoded, GET for all but HEAD, a path that
climbs out with ".." or is not absolute answered 404) or in a named location (the
method kept), the upstream's answer dropped but
for the fields nginx keeps (Set-Cookie, Cache-Control, Expires, Content-Disposition,
Accept-Ranges); X-Accel-Limit-Rate paces the response; the controls never reach the
client unless proxy_pass_header names them; proxy_ignore_headers turns them off. Compared
with Debian's nginx on the same configuration where the answer is a response; the rate is
measured on rampart alone."""

import time

import pytest

import harness
from proxy_pair import both, refused_like_nginx, upstream_says, values  # noqa: F401

KEPT = ("Set-Cookie", "Cache-Control", "Expires", "Content-Disposition", "Accept-Ranges",
        "ETag", "Last-Modified", "Link", "X-Other", "X-Accel-Redirect", "X-Accel-Limit-Rate",
        "X-Accel-Foo", "X-Pad")


def http(b):
    up = f"127.0.0.1:{b}"
    return lambda port: f"""
server {{
    listen 127.0.0.1:{port};
    location /p/ {{ proxy_pass http://{up}/; }}
    location /passed/ {{
        proxy_pass http://{up}/;
        proxy_pass_header X-Accel-Redirect;
        proxy_pass_header X-Pad;
        proxy_ignore_headers X-Accel-Redirect;
    }}
    location /internal/ {{ return 200 "internal $uri [$args] $request_method\\n"; }}
    location @named {{ return 200 "named $uri [$args] $request_method\\n"; }}
}}"""


def cases():
    everything = [("Set-Cookie", "k=v"), ("X-Other", "o"), ("ETag", '"e"'),
                  ("Cache-Control", "no-cache"), ("Expires", "0"),
                  ("Content-Disposition", "inline"), ("Accept-Ranges", "bytes"),
                  ("Last-Modified", "Tue, 01 Dec 2026 00:00:00 GMT"), ("Link", "<a>")]
    return [
        ("GET", "/p/a", [("X-Accel-Redirect", "/internal/x%20y?q=1&r=2")] + everything),
        ("POST", "/p/a", [("X-Accel-Redirect", "/internal/post")]),
        ("HEAD", "/p/a", [("X-Accel-Redirect", "/internal/head")]),
        ("POST", "/p/a", [("X-Accel-Redirect", "@named"), ("Set-Cookie", "n=1")]),
        ("GET", "/p/a", [("X-Accel-Redirect", "@nosuch")]),
        ("GET", "/p/a", [("X-Accel-Redirect", "/internal/../x")]),
        ("GET", "/p/a", [("X-Accel-Redirect", "internal/x")]),
        ("GET", "/p/a", [("X-Accel-Foo", "1"), ("X-Pad", "p"), ("X-Accel-Limit-Rate", "off")]),
        ("GET", "/passed/a", [("X-Accel-Redirect", "/internal/x"), ("X-Pad", "p")]),
    ]


def test_x_accel_redirect_and_the_hidden_controls_as_nginx(both, backend):
    ask = both(http(backend.port))
    for method, path, fields in cases():
        body = "x" if method == "POST" else None
        mine, nginx = ask(f"{path}?{upstream_says(*fields)}", method=method, body=body)
        assert mine.status == nginx.status, (method, path, fields)
        if mine.status == 200:
            assert mine.body == nginx.body, (method, path, fields)
        for name in KEPT:
            assert values(mine, name) == values(nginx, name), (method, path, fields, name)
    # the cases mean something: the redirect happened, with the kept fields
    mine, _ = ask("/p/a?" + upstream_says(("X-Accel-Redirect", "/internal/x%20y?q=1"),
                                          ("Set-Cookie", "k=v"), ("X-Other", "o")),
                  method="POST", body="x")
    assert mine.body == b"internal /internal/x y [q=1] GET\n"
    assert values(mine, "Set-Cookie") == ["k=v"] and values(mine, "X-Other") == []
    mine, _ = ask("/p/a?" + upstream_says(("X-Accel-Redirect", "@named")), method="POST", body="x")
    assert mine.body.startswith(b"named /p/a [header=") and mine.body.endswith(b"] POST\n")


def test_x_accel_limit_rate_paces_the_response_unless_ignored(rampart, backend):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{{port}};
    location /p/ {{ proxy_pass http://127.0.0.1:{backend.port}/; }}
    location /ignored/ {{
        proxy_pass http://127.0.0.1:{backend.port}/;
        proxy_ignore_headers X-Accel-Limit-Rate X-Accel-Expires Expires Cache-Control
                             Set-Cookie Vary X-Accel-Buffering X-Accel-Charset;
    }}
}}""".replace("{port}", str(harness.free_port())))
    rampart.start()
    # 30,000 bytes at 10,000 a second, with nginx's first second of allowance: 2 s at least
    query = "size=30000&" + upstream_says(("X-Accel-Limit-Rate", "10000"))
    t0 = time.monotonic()
    paced = harness.get(rampart.port, "/p/a?" + query)
    paced_s = time.monotonic() - t0
    t0 = time.monotonic()
    free = harness.get(rampart.port, "/ignored/a?" + query)
    free_s = time.monotonic() - t0
    assert paced.status == free.status == 200
    assert len(paced.body) == len(free.body) == 30000
    assert paced_s >= 1.9
    assert free_s < paced_s / 2


def test_a_bad_ignored_field_is_refused_at_its_line_as_nginx_refuses_it(conf_dir, tmp_path):
    refused_like_nginx(conf_dir, tmp_path,
                       "server { listen 127.0.0.1:1; proxy_ignore_headers X-Foo; }", 3,
                       '"proxy_ignore_headers": invalid value "X-Foo"')
