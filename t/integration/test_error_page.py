"""error_page, recursive_error_pages, proxy_intercept_errors: each scenario runs the
same http-block content under Debian's nginx (reference_nginx.py) and rampart where
nginx can be compared, and asserts the same status, Location and body (rampart's and
nginx's own plain pages differ only in their signature, so for those the status is
compared). The upstream scenarios use a real backend (backend.py answers ?status=N)
and its /__stats to show the upstream connection is reused after an intercepted
error, over HTTP/1.1 and from an HTTP/2 client.
"""

import http.client
import json
import subprocess

import pytest

import harness
from h2_backend import H2Backend
from h2client import H2Client
import reference_nginx


@pytest.fixture
def servers(tmp_path):
    """servers(http) starts nginx and rampart on the same http-block content (@PORT@ is
    each one's own port) and returns (nginx, rampart)."""
    started = []

    def start(http):
        reference_nginx.require()
        nginx = reference_nginx.Nginx(tmp_path / "nginx")
        started.append(nginx)
        nginx.configure(http.replace("@PORT@", str(harness.free_port())))
        nginx.start()
        rampart = harness.Rampart(tmp_path / "rampart")
        started.append(rampart)
        rampart.configure(text=reference_nginx.rampart_text(
            http.replace("@PORT@", str(harness.free_port()))))
        rampart.start()
        return nginx, rampart
    yield start
    for s in reversed(started):
        s.stop()
    problems = [p for s in started if isinstance(s, harness.Rampart) for p in s.problems()]
    assert not problems, "unexpected trouble in rampart:\n" + "\n".join(problems)


def ask(port, path, method="GET", body=None, headers=None):
    r = harness.request(port, path, method=method, body=body, headers=headers)
    return r


def same(nginx, rampart, path, method="GET", body=None, compare_body=True, headers=None):
    """Sends the request to both; asserts status, Location (and body) equal; returns
    rampart's answer."""
    a = ask(nginx.port, path, method, body, headers)
    b = ask(rampart.port, path, method, body, headers)
    assert (b.status, b.headers.get("Location")) == (a.status, a.headers.get("Location")), \
        f"{method} {path}: nginx {a.status} {a.body[:200]!r}, rampart {b.status} {b.body[:200]!r}"
    if compare_body:
        assert b.body == a.body, f"{method} {path}"
    return b


def server(body):
    return ("server {\n"
            "    listen 127.0.0.1:@PORT@;\n"
            f"{body}\n"
            "}\n")


JSON_PAGES = server("""
    error_page 404 /errors/404.json;
    location / { return 404; }
    location /errors/ { internal; default_type application/json;
                        return 200 '{"error":"not found","page":"$uri"}'; }
""")


def test_json_error_page_answers_with_the_original_status(servers):
    nginx, rampart = servers(JSON_PAGES)
    r = same(nginx, rampart, "/no/such/thing")
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.body == b'{"error":"not found","page":"/errors/404.json"}'
    # the internal location itself: 404 for a client, and then its own page
    same(nginx, rampart, "/errors/404.json")


def test_equals_code_and_bare_equals_choose_the_status(servers):
    nginx, rampart = servers(server("""
    location /forced { error_page 404 =200 /page?from=forced; return 404; }
    location /own { error_page 404 = /created; return 404; }
    location /kept { error_page 404 /created; return 404; }
    location /page { return 200 "page $args"; }
    location /created { return 201 "created $args"; }
"""))
    assert same(nginx, rampart, "/forced").status == 200
    assert same(nginx, rampart, "/forced").body == b"page from=forced"
    assert same(nginx, rampart, "/own").status == 201
    assert same(nginx, rampart, "/kept").status == 404


def test_named_location_answers_json_and_keeps_method_and_uri(servers):
    nginx, rampart = servers(server("""
    error_page 404 = @json404;
    location /api/ { return 404; }
    location @json404 { default_type application/json;
                        return 404 '{"error":"not found","method":"$request_method","uri":"$uri"}'; }
"""))
    r = same(nginx, rampart, "/api/users", method="POST", body=b"x=1")
    assert r.status == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.body == b'{"error":"not found","method":"POST","uri":"/api/users"}'


def test_a_uri_page_is_fetched_with_get_and_head_stays_head(servers):
    nginx, rampart = servers(server("""
    error_page 403 /why;
    location /secret { deny all; }
    location /why { return 200 "forbidden for $request_method"; }
"""))
    r = same(nginx, rampart, "/secret", method="POST", body=b"a=b")
    assert (r.status, r.body) == (403, b"forbidden for GET")
    r = same(nginx, rampart, "/secret", method="HEAD")
    assert (r.status, r.body) == (403, b"")


def test_a_url_target_is_a_redirect_302_or_the_code_given(servers):
    nginx, rampart = servers(server("""
    location /moved { error_page 404 https://example.com/new; return 404; }
    location /perm { error_page 404 =301 https://example.com/perm; return 404; }
    location /other { error_page 404 =404 http://example.com/o?x=$uri; return 404; }
"""))
    r = same(nginx, rampart, "/moved", compare_body=False)
    assert (r.status, r.headers["Location"]) == (302, "https://example.com/new")
    r = same(nginx, rampart, "/perm", compare_body=False)
    assert (r.status, r.headers["Location"]) == (301, "https://example.com/perm")
    # a code that is no redirect's: 302, as nginx
    r = same(nginx, rampart, "/other", compare_body=False)
    assert (r.status, r.headers["Location"]) == (302, "http://example.com/o?x=/other")


RECURSION = """
    error_page 404 /p1;
    error_page 500 /p2;
    location /a { return 404; }
    location /p1 { return 500; }
    location /p2 { return 200 "second page"; }
"""


def test_an_error_on_the_error_page_is_answered_plainly(servers):
    nginx, rampart = servers(server(RECURSION))
    r = same(nginx, rampart, "/a", compare_body=False)
    assert r.status == 500
    assert b"500 Internal Server Error" in r.body


def test_recursive_error_pages_on_serves_the_second_page(servers):
    nginx, rampart = servers(server("recursive_error_pages on;" + RECURSION))
    r = same(nginx, rampart, "/a")
    assert (r.status, r.body) == (500, b"second page")


def test_error_pages_that_redirect_in_a_cycle_end_in_500(servers):
    nginx, rampart = servers(server("""
    recursive_error_pages on;
    error_page 404 /nf;
    location /a { return 404; }
    location /nf { return 404; }
"""))
    r = same(nginx, rampart, "/a", compare_body=False)
    assert r.status == 500
    assert "redirection cycle" in rampart.log_text()


def test_a_location_with_its_own_error_page_inherits_none(servers):
    nginx, rampart = servers(server("""
    error_page 404 /page;
    location /inherits { return 404; }
    location /own { error_page 500 /page; return 404; }
    location /page { return 200 "page"; }
"""))
    assert same(nginx, rampart, "/inherits").body == b"page"
    r = same(nginx, rampart, "/own", compare_body=False)
    assert r.status == 404 and b"404 Not Found" in r.body


def test_errors_rampart_makes_get_the_page(servers, backend):
    dead = harness.free_port()
    nginx, rampart = servers(f"""
limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;
""" + server(f"""
    error_page 403 413 429 502 504 /errors/gateway.json;
    client_max_body_size 10;
    location /denied {{ deny all; }}
    location /limited {{ limit_req zone=one; limit_req_status 429;
                        proxy_pass http://{backend.addr}; }}
    location /upload {{ return 200 "ok"; }}
    location /upstream {{ proxy_pass http://127.0.0.1:{dead}; }}
    location /errors/ {{ internal; default_type application/json;
                         return 200 '{{"error":"$status"}}'; }}
"""))
    for path, status in (("/denied", 403), ("/upstream", 502)):
        r = same(nginx, rampart, path)
        assert r.status == status
        assert r.headers["Content-Type"] == "application/json"
    assert same(nginx, rampart, "/limited", compare_body=False).status == 200
    r = same(nginx, rampart, "/limited")
    assert r.status == 429 and r.headers["Content-Type"] == "application/json"
    r = same(nginx, rampart, "/upload", method="POST", body=b"x" * 100)
    assert r.status == 413 and r.headers["Content-Type"] == "application/json"


def test_add_header_always_comes_from_the_page_location(servers):
    nginx, rampart = servers(server("""
    error_page 404 /page;
    location /a { add_header X-Original yes always; return 404; }
    location /page { add_header X-Page yes always; return 200 "page"; }
"""))
    r = same(nginx, rampart, "/a")
    a = ask(nginx.port, "/a")
    for name in ("X-Original", "X-Page"):
        assert r.headers.get(name) == a.headers.get(name), name
    assert r.headers.get("X-Page") == "yes"


# ---- proxy_intercept_errors ----

def intercepting(backend):
    return f"upstream be {{ server {backend.addr}; keepalive 4; }}\n" + server("""
    location /api/ { proxy_pass http://be; proxy_intercept_errors on;
                     error_page 502 503 504 /errors/upstream.json; }
    location /pass/ { proxy_pass http://be;
                      error_page 502 503 504 /errors/upstream.json; }
    location /errors/ { internal; default_type application/json;
                        return 200 '{"error":"upstream unavailable"}'; }
""")


def test_intercepted_upstream_error_gets_the_page_and_keeps_the_connection(rampart, backend):
    rampart.configure(http=intercepting(backend).replace("@PORT@", str(harness.free_port())))
    rampart.start()
    for query in ("status=503&body=SECRET", "status=503&chunked=1&body=SECRET",
                  "status=503&size=300000", "status=502&header=X-Leak:1"):
        r = harness.get(rampart.port, "/api/x?" + query)
        assert (r.status, r.body) == (int(query[7:10]), b'{"error":"upstream unavailable"}'), query
        assert r.headers["Content-Type"] == "application/json"
        assert "X-Leak" not in r.headers and "X-Backend-Name" not in r.headers
    r = harness.get(rampart.port, "/api/x?status=200&body=fine")
    assert (r.status, r.body) == (200, b"fine")
    # every intercepted body was read to its end: one upstream connection for all five
    assert backend.stats()["requests"] == 5
    assert backend.stats()["connections_accepted"] == 1


def test_upstream_errors_pass_without_interception_or_without_a_page(servers, backend):
    nginx, rampart = servers(intercepting(backend))
    r = same(nginx, rampart, "/pass/x?status=503&body=own")
    assert (r.status, r.body) == (503, b"own")
    # intercepting, but no page for 500: the upstream's own answer
    r = same(nginx, rampart, "/api/x?status=500&body=own500")
    assert (r.status, r.body) == (500, b"own500")
    r = same(nginx, rampart, "/api/x?status=503&body=SECRET")
    assert (r.status, r.body) == (503, b'{"error":"upstream unavailable"}')


def test_an_intercepted_401_keeps_its_www_authenticate(servers, backend):
    nginx, rampart = servers(server(f"""
    location /api/ {{ proxy_pass http://{backend.addr}; proxy_intercept_errors on;
                     error_page 401 /errors/auth.json; }}
    location /errors/ {{ internal; default_type application/json;
                        return 200 '{{"error":"unauthorized"}}'; }}
"""))
    path = "/api/x?status=401&header=WWW-Authenticate:Bearer%20realm%3Dapi&header=X-Other:1"
    r = same(nginx, rampart, path)
    a = ask(nginx.port, path)
    assert (r.status, r.body) == (401, b'{"error":"unauthorized"}')
    assert r.headers["WWW-Authenticate"] == a.headers["WWW-Authenticate"] == "Bearer realm=api"
    assert "X-Other" not in r.headers and "X-Other" not in a.headers


def test_intercepted_error_over_http2(rampart, backend, tmp_path):
    port = harness.free_port()
    rampart.configure(http=intercepting(backend).replace(
        "listen 127.0.0.1:@PORT@;", f"listen 127.0.0.1:{port} http2;"))
    rampart.start()
    body = tmp_path / "body"
    body.write_bytes(b"b" * 200000)
    for query, post in (("status=503&body=SECRET", False), ("status=503&body=SECRET", True),
                        ("status=200&body=fine", False)):
        p = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "-",
                            "-w", "\\n%{http_version} %{http_code}",
                            *(["--data-binary", f"@{body}"] if post else []),
                            f"http://127.0.0.1:{port}/api/x?{query}"],
                           capture_output=True, text=True, timeout=30)
        body, _, tail = p.stdout.rpartition("\n")
        if "503" in query:
            assert (tail, body) == ("2 503", '{"error":"upstream unavailable"}')
        else:
            assert (tail, body) == ("2 200", "fine")
    assert backend.stats()["connections_accepted"] == 1


# ---- configuration ----

def in_server(line):
    return f"server {{ listen 127.0.0.1:1;\n{line}\n}}"


ERRORS = {
    "arguments": (in_server("error_page 404;"), 4,
                  '"error_page": takes 2 or more arguments, got 1'),
    "code_below_300": (in_server("error_page 200 /x;"), 4,
                       '"error_page": value "200" must be between 300 and 599'),
    "code_499": (in_server("error_page 499 /x;"), 4, '"error_page": invalid value "499"'),
    "code_not_a_number": (in_server("error_page 40x /x;"), 4,
                          '"error_page": invalid value "40x"'),
    "equals_without_code": (in_server("error_page = /x;"), 4,
                            '"error_page": invalid value "="'),
    "bad_response_code": (in_server("error_page 404 =2x /x;"), 4,
                          '"error_page": invalid value "=2x"'),
    "recursive_not_a_flag": (in_server("recursive_error_pages maybe;"), 4,
                             '"recursive_error_pages": invalid value "maybe", it must be "on" '
                             'or "off"'),
    "intercept_not_a_flag": (in_server("proxy_intercept_errors yes;"), 4,
                             '"proxy_intercept_errors": invalid value "yes", it must be "on" '
                             'or "off"'),
    "grpc_intercept_not_a_flag": (in_server("grpc_intercept_errors 1;"), 4,
                                  '"grpc_intercept_errors": invalid value "1", it must be "on" '
                                  'or "off"'),
}


@pytest.mark.parametrize("case", ERRORS)
def test_bad_values_are_refused_with_file_and_line_as_nginx(conf_dir, tmp_path, case):
    http, line, message = ERRORS[case]
    reference_nginx.assert_rampart_refuses(conf_dir, http, line, message)
    named, stderr = reference_nginx.refusal(tmp_path, http)
    assert named == line, stderr


def test_a_proxied_page_after_a_post_is_a_bodiless_get_on_the_same_client_connection(
        rampart, backend):
    rampart.configure(http=f"""
upstream be {{ server {backend.addr}; keepalive 4; }}
server {{
    listen 127.0.0.1:{harness.free_port()};
    location /api/ {{ proxy_pass http://be; proxy_intercept_errors on;
                     error_page 503 /fallback/page?echo=1; }}
    location /fallback/ {{ internal; proxy_pass http://be; }}
}}
""")
    rampart.start()
    c = http.client.HTTPConnection("127.0.0.1", rampart.port, timeout=10)
    try:
        c.request("POST", "/api/x?status=503&body=SECRET", body=b"payload" * 100)
        r = c.getresponse()
        seen = json.loads(r.read())
        assert r.status == 503
        assert (seen["method"], seen["path"], seen["body_length"]) == ("GET", "/fallback/page", 0)
        # the client's connection carries on: its unread body was discarded, not framed
        c.request("GET", "/api/x?status=200&body=next")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"next")
    finally:
        c.close()


@pytest.fixture
def h2_origin():
    b = H2Backend().start()
    yield b
    b.stop()


def test_intercepted_error_from_an_http2_upstream_keeps_its_connection(rampart, h2_origin):
    rampart.configure(http=f"""
upstream be {{ server {h2_origin.addr}; http2; }}
server {{
    listen 127.0.0.1:{harness.free_port()};
    location / {{ proxy_pass http://be; proxy_intercept_errors on;
                 error_page 503 /errors/down.json; }}
    location /errors/ {{ internal; default_type application/json;
                        return 200 '{{"error":"down"}}'; }}
}}
""")
    rampart.start()
    for _ in range(2):
        r = harness.get(rampart.port, "/x?status=503&size=100000")
        assert (r.status, r.body) == (503, b'{"error":"down"}')
        assert r.headers["Content-Type"] == "application/json"
    r = harness.get(rampart.port, "/x?status=200")
    assert (r.status, r.body) == (200, b"ok\n")
    stats = json.loads(H2Client(h2_origin.port).request("GET", "/__stats").body)
    # one connection carried the three requests (a control query is not counted)
    assert (stats["requests"], stats["connections"]) == (3, 1)


def test_grpc_intercept_errors_is_grpc_pass_own_switch(rampart, h2_origin):
    rampart.configure(http=f"""
server {{
    listen 127.0.0.1:{harness.free_port()};
    error_page 503 /errors/down.json;
    location /g/ {{ grpc_pass grpc://{h2_origin.addr}; grpc_intercept_errors on; }}
    location /p/ {{ grpc_pass grpc://{h2_origin.addr}; proxy_intercept_errors on; }}
    location /errors/ {{ internal; default_type application/json;
                        return 200 '{{"error":"down"}}'; }}
}}
""")
    rampart.start()
    r = harness.get(rampart.port, "/g/x?status=503&echo=1")
    assert (r.status, r.body) == (503, b'{"error":"down"}')
    # proxy_intercept_errors is proxy_pass's: the upstream's own answer goes through
    r = harness.get(rampart.port, "/p/x?status=503&echo=1")
    assert r.status == 503 and b'"method": "GET"' in r.body


def test_auth_basic_401_page_keeps_the_challenge(servers, tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:{PLAIN}secret\n")
    nginx, rampart = servers(server(f"""
    error_page 401 /errors/auth.json;
    location /private/ {{ auth_basic "Private"; auth_basic_user_file {users}; }}
    location /errors/ {{ internal; default_type application/json;
                        return 200 '{{"error":"unauthorized"}}'; }}
"""))
    r = same(nginx, rampart, "/private/x")
    assert (r.status, r.body) == (401, b'{"error":"unauthorized"}')
    assert r.headers["WWW-Authenticate"] == ask(nginx.port, "/private/x").headers[
        "WWW-Authenticate"] == 'Basic realm="Private"'


def test_an_error_page_from_a_file_is_sent_whole_whatever_range_or_validators_ask(
        servers, tmp_path):
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "404.html").write_text("<html>not found here</html>\n")
    nginx, rampart = servers(server(f"""
    root {pages};
    error_page 404 /404.html;
    location / {{ }}
"""))
    r = same(nginx, rampart, "/missing", headers={"Range": "bytes=0-3"})
    assert (r.status, r.body) == (404, b"<html>not found here</html>\n")
    assert r.headers.get("Content-Range") is None
    etag = harness.request(rampart.port, "/404.html").headers["ETag"]
    r = same(nginx, rampart, "/missing", headers={"If-None-Match": etag}, compare_body=False)
    assert (r.status, r.body) == (404, b"<html>not found here</html>\n")
