import urllib.parse
from proxy_pair import both, fields  # noqa: F401

def hdr(*pairs):
    return "&".join("header=" + urllib.parse.quote(f"{n}:{v}", safe="") for n, v in pairs)

def test_scratch(both, backend):
    b = backend.port
    ask = both(lambda port: f"""
server {{ listen 127.0.0.1:{port};
  location /one/ {{ proxy_pass http://127.0.0.1:{b}/app/; }}
  location /two/ {{ proxy_pass http://127.0.0.1:{b}; }}
  location /three/ {{ proxy_pass http://127.0.0.1:{b}/; proxy_redirect ~^http://([^/]+)/app/(.*)$ http://$host/x/$1/$2; proxy_redirect /app/ /rel/; }}
  location /four/ {{ proxy_pass http://127.0.0.1:{b}/; proxy_cookie_domain .backend.example front.example; proxy_cookie_path /app/ /four/; proxy_cookie_path ~*^/UP(.*)$ /down$1; }}
}}""")
    cases = [
        "/one/a?" + hdr(("Location", f"http://127.0.0.1:{b}/app/z"), ("Refresh", f"5; url=http://127.0.0.1:{b}/app/q")),
        "/one/a?" + hdr(("Location", f"/app/z")),
        "/two/a?" + hdr(("Location", f"http://127.0.0.1:{b}/z")),
        "/two/a?" + hdr(("Location", f"http://127.0.0.1:{b}")),
        "/three/a?" + hdr(("Location", f"http://h.example/app/z/y")),
        "/three/a?" + hdr(("Location", f"/app/z/y")),
        "/three/a?" + hdr(("Location", f"/other")),
        "/four/a?" + hdr(("Set-Cookie", "a=b; Domain=.Backend.example; Path=/app/x; HttpOnly"), ("Set-Cookie", "c=d;path=/upper/X;domain=other"), ("Set-Cookie", "e=f")),
        "/four/a?" + hdr(("X-Accel-Foo", "1"), ("X-Pad", "p"), ("Server", "upstream")),
    ]
    for c in cases:
        r, n = ask(c)
        print(c)
        print("  R", r.status, [(k, v) for k, v in r.headers.items() if k.lower() not in ("date", "content-length", "connection", "content-type")])
        print("  N", n.status, [(k, v) for k, v in n.headers.items() if k.lower() not in ("date", "content-length", "connection", "content-type")])
