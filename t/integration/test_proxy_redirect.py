"""proxy_redirect as nginx: the upstream's Location and Refresh (after "url=") are
rewritten by the location's rules, the first that matches; `default` (implied where
proxy_pass is and no rule is inherited) maps the proxy_pass URL to the location's name;
a REDIRECT with variables, a `~`/`~*` regex whose captures the REPLACEMENT uses; `off`;
rules set at the server level are inherited by locations without their own; a rewritten
Location that is a path becomes absolute (nginx's absolute_redirect). Each case is asked
of rampart and Debian's nginx on the same configuration, and their Location and Refresh
must be equal (the client's port aside)."""

import pytest

from proxy_pair import both, refused_like_nginx, upstream_says, values  # noqa: F401


def http(b):
    up = f"127.0.0.1:{b}"
    return lambda port: f"""
server {{
    listen 127.0.0.1:{port};
    location /def/ {{ proxy_pass http://{up}/app/; }}
    location /bare/ {{ proxy_pass http://{up}; }}
    location /rules/ {{
        proxy_pass http://{up}/;
        proxy_redirect ~^http://([^/]+)/app/(.*)$ http://$host/x/$1/$2;
        proxy_redirect ~*^/UP/(.*)$ /down/$1;
        proxy_redirect http://$proxy_host/ /via-variable/;
        proxy_redirect /app/ /rel/;
    }}
    location /off/ {{ proxy_pass http://{up}/app/; proxy_redirect off; }}
}}
server {{
    listen 127.0.0.1:{port};
    server_name inherit.example;
    proxy_redirect /app/ /from-server/;
    location /def/ {{ proxy_pass http://{up}/app/; }}
    location /off/ {{ proxy_pass http://{up}/app/; proxy_redirect off; }}
    location /both/ {{ proxy_pass http://{up}/app/; proxy_redirect default; proxy_redirect /q/ /r/; }}
}}"""


def cases(b):
    up = f"127.0.0.1:{b}"
    return [
        ("localhost", "/def/a", [("Location", f"http://{up}/app/z"),
                                 ("Refresh", f"5; url=http://{up}/app/q")]),
        ("localhost", "/def/a", [("Location", "/app/z")]),
        ("localhost", "/bare/a", [("Location", f"http://{up}/z")]),
        ("localhost", "/bare/a", [("Location", f"http://{up}")]),
        ("localhost", "/rules/a", [("Location", "http://h.example/app/z/y")]),
        ("localhost", "/rules/a", [("Location", "/up/Case/y")]),
        ("localhost", "/rules/a", [("Location", f"http://{up}/v")]),
        ("localhost", "/rules/a", [("Location", "/app/z/y"), ("Refresh", "0;URL=/app/r")]),
        ("localhost", "/rules/a", [("Location", "/other")]),
        ("localhost", "/off/a", [("Location", f"http://{up}/app/z")]),
        ("inherit.example", "/def/a", [("Location", f"http://{up}/app/z"),
                                       ("Refresh", "1; url=/app/q")]),
        ("inherit.example", "/def/a", [("Location", "/app/z")]),
        ("inherit.example", "/off/a", [("Location", "/app/z")]),
        ("inherit.example", "/both/a", [("Location", f"http://{up}/app/z")]),
        ("inherit.example", "/both/a", [("Location", "/q/z")]),
    ]


def test_location_and_refresh_are_rewritten_as_nginx_rewrites_them(both, backend):
    ask = both(http(backend.port))
    rp_port, ng_port = ask.ports
    for host, path, fields in cases(backend.port):
        mine, nginx = ask(f"{path}?{upstream_says(*fields)}", host=host)
        assert mine.status == nginx.status == 200
        for name in ("Location", "Refresh"):
            got = [v.replace(str(rp_port), "PORT") for v in values(mine, name)]
            want = [v.replace(str(ng_port), "PORT") for v in values(nginx, name)]
            assert got == want, (host, path, fields, name)
    # the cases mean something: some were rewritten, one of them made absolute
    mine, _ = ask(f"/rules/a?{upstream_says(('Location', '/app/z/y'))}")
    assert values(mine, "Location") == [f"http://localhost:{rp_port}/rel/z/y"]


REFUSALS = {
    "default_before_proxy_pass":
        ("location / { proxy_redirect default; proxy_pass http://127.0.0.1:1/; }", 3,
         '"proxy_redirect": "proxy_redirect default" should be placed after the '
         '"proxy_pass" directive'),
    "default_with_variables":
        ("location / { set $u 127.0.0.1:1; proxy_pass http://$u; proxy_redirect default; }",
         3, '"proxy_redirect": "proxy_redirect default" cannot be used with "proxy_pass" '
         'directive with variables'),
    "one_word_not_a_keyword":
        ("location / { proxy_redirect foo; }", 3, '"proxy_redirect": invalid parameter "foo"'),
    "off_after_rules":
        ("location / { proxy_redirect /a /b; proxy_redirect off; }", 3,
         '"proxy_redirect": is duplicate'),
    "bad_regex":
        ("location / { proxy_redirect ~(a /b; }", 3,
         '"proxy_redirect": invalid regex "(a": missing closing parenthesis at offset 2'),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_proxy_redirect_is_refused_at_its_line_as_nginx_refuses_it(conf_dir, tmp_path,
                                                                         case):
    body, line, message = REFUSALS[case]
    refused_like_nginx(conf_dir, tmp_path, f"server {{ listen 127.0.0.1:1; {body} }}", line,
                       message)
