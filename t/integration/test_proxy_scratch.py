import json, urllib.parse
from proxy_pair import both, fields  # noqa: F401

def hdr(*pairs):
    return "&".join("header=" + urllib.parse.quote(f"{n}:{v}", safe="") for n, v in pairs)

def test_scratch(both, backend):
    b = backend.port
    ask = both(lambda port: f"""
server {{ listen 127.0.0.1:{port};
  location /one/ {{ proxy_pass http://127.0.0.1:{b}/; add_header X-V "[$upstream_http_x_foo][$upstream_http_set_cookie][$upstream_http_X_FOO]"; }}
}}""")
    cases = [
        ("/one/a?" + hdr(("X-Foo", "1"), ("X-Foo", "2"), ("Set-Cookie", "k=v; Path=/"), ("Set-Cookie", "j=w")), {}),
    ]
    for c, kw in cases:
        r, n = ask(c, **kw)
        print(c)
        for name, x in (("R", r), ("N", n)):
            print("  " + name, x.status, [(k, v) for k, v in x.headers.items() if k.lower() not in ("date", "content-length", "connection", "server")])
