"""Location request matchers (match_method, match_header, match_arg): several
locations of one path told apart by method, header or query argument, the search
going on past a location whose matchers fail, and 405 with Allow when only the method
was refused; over HTTP/1.1 and HTTP/2; bad values refused with file:line."""

from h2client import h2_request
from harness import request, run

REST = """
    location / { return 200 "fallback"; }
    location /users/ { match_method GET; return 200 "read"; }
    location /users/ { match_method PUT DELETE; match_header X-Role admin; return 200 "write"; }
    location /users/ { match_method PATCH; return 200 "patch"; }
    location = /users { match_method POST; return 200 "create"; }
    location /search { match_arg q ~ ^[a-z]+$; return 200 "search"; }
    location /search { match_arg q; return 200 "search-any"; }
    location /flag { match_header X-Beta; return 200 "beta"; }
    location /flag { match_header X-Beta ~* ^ON$; return 200 "never: beta present wins"; }
    location /flag { return 200 "stable"; }
    location ^~ /api/ { match_header X-Version 2; return 200 "api v2"; }
    location ~ ^/api/ { return 200 "api regex"; }
"""


def serve(rampart, port, body=REST, http2=False):
    rampart.configure(f"server {{\n listen 127.0.0.1:{port}{' http2' if http2 else ''};\n"
                      f"{body}\n}}")
    return rampart.start()


def ask(port, method, path, headers=None):
    r = request(port, path, method=method, headers=headers or {})
    return r.status, r.text, r.headers.get("Allow")


def test_method_chooses_among_locations_of_one_path(rampart, port):
    serve(rampart, port)
    assert ask(port, "GET", "/users/7")[:2] == (200, "read")
    assert ask(port, "PATCH", "/users/7")[:2] == (200, "patch")
    assert ask(port, "PUT", "/users/7", {"X-Role": "admin"})[:2] == (200, "write")
    assert ask(port, "POST", "/users")[:2] == (200, "create")


def test_get_location_answers_head(rampart, port):
    serve(rampart, port)
    r = request(port, "/users/7", method="HEAD")
    assert r.status == 200 and r.body == b""


def test_refused_method_answers_405_with_the_methods_the_path_accepts(rampart, port):
    serve(rampart, port)
    # PUT's location also wants X-Role: without it, only GET (and HEAD) and PATCH remain
    status, _, allow = ask(port, "POST", "/users/7")
    assert (status, allow) == (405, "GET, PATCH, HEAD")
    status, _, allow = ask(port, "POST", "/users/7", {"X-Role": "admin"})
    assert (status, allow) == (405, "GET, PUT, DELETE, PATCH, HEAD")


def test_405_wins_over_a_shorter_prefix_that_would_take_the_method(rampart, port):
    # "location /" takes any method, yet the path matched /users/ and only the method
    # failed there: 405, not the fallback
    serve(rampart, port)
    status, _, allow = ask(port, "DELETE", "/users/7")
    assert status == 405 and "DELETE" not in allow


def test_exact_location_refusing_the_method_answers_405(rampart, port):
    serve(rampart, port)
    assert ask(port, "GET", "/users")[::2] == (405, "POST")


def test_failing_header_matcher_falls_through_to_what_nginx_would_choose_next(rampart, port):
    serve(rampart, port)
    assert ask(port, "GET", "/api/x", {"X-Version": "2"})[:2] == (200, "api v2")
    # "^~ /api/" is as if it had not matched: the longest prefix is then "/", which does
    # not stop the regexes, and the regex answers
    assert ask(port, "GET", "/api/x", {"X-Version": "1"})[:2] == (200, "api regex")
    assert ask(port, "GET", "/flag")[:2] == (200, "stable")
    assert ask(port, "GET", "/flag", {"X-Beta": "off"})[:2] == (200, "beta")


def test_query_argument_matchers_in_configuration_order(rampart, port):
    serve(rampart, port)
    assert ask(port, "GET", "/search?x=1&q=abc")[:2] == (200, "search")
    assert ask(port, "GET", "/search?q=ABC1")[:2] == (200, "search-any")
    assert ask(port, "GET", "/search?query=abc")[:2] == (200, "fallback")


def test_matchers_choose_the_same_over_http2(rampart, port):
    serve(rampart, port, http2=True)
    r = h2_request(port, "GET", "/users/7")
    assert (r.status, bytes(r.body)) == (200, b"read")
    r = h2_request(port, "PUT", "/users/7", headers=[("x-role", "admin")])
    assert (r.status, bytes(r.body)) == (200, b"write")
    r = h2_request(port, "POST", "/users/7")
    allow = r.header("allow") or r.header(b"allow")
    assert r.status == 405
    assert allow in ("GET, PATCH, HEAD", b"GET, PATCH, HEAD")
    r = h2_request(port, "GET", "/search?q=abc")
    assert (r.status, bytes(r.body)) == (200, b"search")


def check(tmp_path, locations):
    conf = tmp_path / "rampart.conf"
    conf.write_text("events {}\nhttp {\nserver {\nlisten 127.0.0.1:1;\n" + locations + "\n}\n}\n")
    p = run("-t", "-p", tmp_path, "-c", "rampart.conf")
    return p.returncode, p.stderr, conf


def test_same_path_with_the_same_matchers_is_a_duplicate(tmp_path):
    rc, err, conf = check(tmp_path, "location /a { match_method GET; }\n"
                                    "location /a { match_method GET; }")
    assert rc != 0
    assert f'{conf}:6: "location": duplicate location "/a"' in err


def test_same_path_without_matchers_is_still_a_duplicate(tmp_path):
    rc, err, conf = check(tmp_path, "location /a { }\nlocation ^~ /a { }")
    assert rc != 0
    assert f'{conf}:6: "location": duplicate location "/a"' in err


def test_bad_matcher_values_are_refused_with_file_and_line(tmp_path):
    for bad, message in [
        ("match_method get;", 'invalid method "get"'),
        ("match_method GET GET;", 'duplicate method "GET"'),
        ("match_header X-A = b;", 'invalid operator "="'),
        ("match_header X-A ~ (;", 'invalid regex "("'),
        ('match_header "X A";', 'invalid header name "X A"'),
        ('match_arg "a=b";', 'invalid argument name "a=b"'),
    ]:
        rc, err, conf = check(tmp_path, "location /a {\n" + bad + "\n}")
        assert rc != 0, bad
        assert message in err and f"{conf}:6" in err, (bad, err)


def test_matchers_are_refused_outside_a_location(tmp_path):
    rc, err, conf = check(tmp_path, "match_method GET;")
    assert rc != 0
    assert f'{conf}:5: "match_method": not allowed' in err


def test_matchers_are_refused_in_a_named_location(tmp_path):
    rc, err, conf = check(tmp_path, "location @fallback {\nmatch_method GET;\n}")
    assert rc != 0
    assert (f'{conf}:6: "match_method": request matchers are not allowed in the named '
            f'location "@fallback"') in err
