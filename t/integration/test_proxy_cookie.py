"""proxy_cookie_domain, proxy_cookie_path and proxy_cookie_flags as nginx: the Domain and Path attributes
of the upstream's Set-Cookie fields are rewritten by the location's rules (the first that
matches; a domain whole and in any case, its leading dot kept; a path by its prefix;
`~`/`~*` regexes with captures; variables in both parts), the cookie rebuilt with "; "
between its attributes; the flags Secure, HttpOnly and SameSite added, set or dropped
for the cookies a proxy_cookie_flags line names; `off`; inheritance from the server level. Compared with Debian's
nginx on the same configuration: the same Set-Cookie fields must reach the client, and
$upstream_cookie_NAME reads the upstream's cookie."""

import pytest

import reference_nginx

from proxy_pair import both, refused_like_nginx, upstream_says, values  # noqa: F401


def http(b):
    up = f"127.0.0.1:{b}"
    return lambda port: f"""
server {{
    listen 127.0.0.1:{port};
    proxy_cookie_path /srv/ /from-server/;
    location /c/ {{
        proxy_pass http://{up}/;
        proxy_cookie_domain .backend.example front.example;
        proxy_cookie_domain ~^(.+)\\.internal$ $1.public;
        proxy_cookie_domain $proxy_host $host;
        proxy_cookie_path /app/ /c/;
        proxy_cookie_path ~*^/UP(.*)$ /down$1;
        add_header X-Cookie-K "[$upstream_cookie_k][$upstream_cookie_j][$upstream_cookie_nope]";
    }}
    location /inherit/ {{ proxy_pass http://{up}/; }}
    location /off/ {{ proxy_pass http://{up}/; proxy_cookie_path off; }}
    location /flags/ {{
        proxy_pass http://{up}/;
        proxy_cookie_flags one secure httponly samesite=strict;
        proxy_cookie_flags ~^t secure nohttponly samesite=lax;
        proxy_cookie_flags $arg_c nosamesite nosecure;
        proxy_cookie_path /app/ /flags/;
    }}
}}"""


def cases(b):
    return [
        ("/c/a", [("Set-Cookie", "k=v; Domain=.Backend.example; Path=/app/x; HttpOnly"),
                  ("Set-Cookie", "j=w;path=/upper/X;domain=other"),
                  ("Set-Cookie", "e=f")]),
        ("/c/a", [("Set-Cookie", "k=1; domain=db.internal; path=/app"),
                  ("Set-Cookie", f"j=2; Domain=127.0.0.1:{b}; Secure; Path=/UPx")]),
        ("/c/a", [("Set-Cookie", "k=3;  Path = /app/y ; SameSite=Lax")]),
        ("/inherit/a", [("Set-Cookie", "k=v; Path=/srv/x")]),
        ("/off/a", [("Set-Cookie", "k=v; Path=/srv/x")]),
        ("/flags/a", [("Set-Cookie", "one=1"), ("Set-Cookie", "One=2; secure; SameSite=None"),
                      ("Set-Cookie", "two=2; HttpOnly; path=/app/x"),
                      ("Set-Cookie", "vc=3; Secure; SameSite=Lax; Max-Age=5"),
                      ("Set-Cookie", "other=4; Secure")]),
    ]


def test_set_cookie_domain_and_path_are_rewritten_as_nginx_rewrites_them(both, backend):
    ask = both(http(backend.port))
    for path, fields in cases(backend.port):
        mine, nginx = ask(f"{path}?{upstream_says(*fields)}&c=vc")
        assert mine.status == nginx.status == 200
        assert values(mine, "Set-Cookie") == values(nginx, "Set-Cookie"), (path, fields)
        assert values(mine, "X-Cookie-K") == values(nginx, "X-Cookie-K"), (path, fields)
    # the cases mean something: rules applied, the cookie variable read
    mine, _ = ask("/c/a?" + upstream_says(("Set-Cookie", "k=v; Domain=.Backend.example"),
                                          ("Set-Cookie", "j=w; path=/app/q")))
    assert values(mine, "Set-Cookie") == ["k=v; Domain=.front.example", "j=w; path=/c/q"]
    assert values(mine, "X-Cookie-K") == ["[v][w][]"]
    mine, _ = ask("/flags/a?" + upstream_says(("Set-Cookie", "one=1; Path=/app/")))
    assert values(mine, "Set-Cookie") == ["one=1; Path=/flags/; Secure; HttpOnly; SameSite=Strict"]


REFUSALS = {
    "one_word_not_off":
        ("location / { proxy_cookie_domain bad; }", 3,
         '"proxy_cookie_domain": invalid parameter "bad"'),
    "off_after_rules":
        ("location / { proxy_cookie_path /a /b; proxy_cookie_path off; }", 3,
         '"proxy_cookie_path": is duplicate'),
    "flags_without_a_flag":
        ("location / { proxy_cookie_flags one; }", 3,
         '"proxy_cookie_flags": invalid parameter "one"'),
    "bad_regex":
        ("location / { proxy_cookie_path ~*(a /b; }", 3,
         '"proxy_cookie_path": invalid regex "(a": missing closing parenthesis at offset 2'),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_cookie_rule_is_refused_at_its_line_as_nginx_refuses_it(conf_dir, tmp_path, case):
    body, line, message = REFUSALS[case]
    refused_like_nginx(conf_dir, tmp_path, f"server {{ listen 127.0.0.1:1; {body} }}", line,
                       message)


def test_an_unknown_cookie_flag_is_refused_at_its_line(conf_dir):
    # nginx ignores it at run time; a typo is likelier than a flag of a later version
    reference_nginx.assert_rampart_refuses(
        conf_dir, "server { listen 127.0.0.1:1; location / { proxy_cookie_flags one often; } }",
        3, '"proxy_cookie_flags": invalid parameter "often"')
