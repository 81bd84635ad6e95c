"""nginx's rewrite module: `rewrite` with its flags, captures and arguments, `break`,
`if` with nginx's conditions (at the server level, and in a location where the block
is a configuration of its own), rewrite_log, uninitialized_variable_warn, and how a
redirect's Location is made absolute (absolute_redirect, server_name_in_redirect,
port_in_redirect). Most scenarios run the same server block under Debian's nginx and
compare the answers."""

import re

import pytest

import harness
import reference_nginx

HOST = "example.test"


def server(port, body, backends=()):
    ups = "".join(f"upstream {name} {{ server {b.addr}; }}\n" for name, b in backends)
    return (f"{ups}server {{\n listen 127.0.0.1:{port};\n server_name {HOST} alias.test;\n"
            f"{body}\n}}")


def answer(port, method, path, headers=None):
    r = harness.request(port, path, method=method, host=HOST, headers=headers)
    loc = r.headers.get("Location")
    if loc:
        loc = loc.replace(f":{port}/", ":PORT/")
    return (r.status, loc, r.headers.get("X-Backend-Name"), r.headers.get("X-If"),
            r.body.decode(errors="replace") if r.status == 200 else "")


def compare(tmp_path, body, requests, backends=()):
    """Runs body under nginx and rampart; asserts both answer each request alike and
    returns rampart's answers and the rampart instance's log text."""
    reference_nginx.require()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    rampart = harness.Rampart(tmp_path / "rampart")
    try:
        nginx.configure(server(harness.free_port(), body, backends))
        nginx.start()
        rampart.configure(text=reference_nginx.rampart_text(
            server(harness.free_port(), body, backends)))
        rampart.start()
        got_nginx = [answer(nginx.port, *q) for q in requests]
        got_rampart = [answer(rampart.port, *q) for q in requests]
        log = rampart.log_text()
    finally:
        rampart.stop()
        nginx.stop()
    assert got_rampart == got_nginx
    return got_rampart, log


@pytest.fixture
def ab(backend_factory):
    return [("a", backend_factory(name="a")), ("b", backend_factory(name="b"))]


def test_legacy_url_redirects_permanently_with_captures_and_arguments(tmp_path):
    got, _ = compare(tmp_path, "rewrite ^/old/(.*)$ /new/$1 permanent;", [
        ("GET", "/old/page?x=1", None),
        ("GET", "/old/a/b", None),
    ])
    assert got[0][:2] == (301, "http://example.test:PORT/new/page?x=1")


def test_final_question_mark_drops_the_arguments(tmp_path):
    got, _ = compare(tmp_path, "rewrite ^/drop/(.*)$ /kept/$1? redirect;", [
        ("GET", "/drop/x?secret=1", None),
    ])
    assert got[0][:2] == (302, "http://example.test:PORT/kept/x")


def test_replacement_arguments_come_first_and_the_request_arguments_follow(tmp_path):
    got, _ = compare(tmp_path, "rewrite ^/q/(.*)$ /search?q=$1 redirect;", [
        ("GET", "/q/abc?page=2", None),
        ("GET", "/q/abc", None),
    ])
    assert got[0][1] == "http://example.test:PORT/search?q=abc&page=2"
    assert got[1][1] == "http://example.test:PORT/search?q=abc"


def test_replacement_with_a_scheme_redirects_with_302(tmp_path):
    got, _ = compare(tmp_path, "rewrite ^/ext/(.*)$ https://other.test/$1;\n"
                               "rewrite ^/sch/(.*)$ $scheme://other.test/$1 permanent;", [
        ("GET", "/ext/x?y=1", None),
        ("GET", "/sch/z", None),
    ])
    assert got[0][:2] == (302, "https://other.test/x?y=1")
    assert got[1][:2] == (301, "http://other.test/z")


def test_last_searches_the_location_again_with_the_new_uri(tmp_path):
    got, _ = compare(tmp_path, """
 location /a/ { rewrite ^/a/(.*)$ /b/$1?from=a last; return 500; }
 location /b/ { return 200 "b uri=$uri args=$args"; }""", [
        ("GET", "/a/x?k=v", None),
    ])
    assert got[0][0] == 200 and got[0][4] == "b uri=/b/x args=from=a&k=v"


def test_without_a_flag_the_script_goes_on_to_the_next_rewrite(tmp_path):
    got, _ = compare(tmp_path, """
 location /x/ { rewrite ^/x/(.*)$ /y/$1; rewrite ^/y/(.*)$ /z/$1; }
 location /z/ { return 200 "z $uri"; }""", [
        ("GET", "/x/1", None),
    ])
    assert got[0][4] == "z /z/1"


def test_break_stays_in_the_location_and_proxies_the_whole_new_uri(tmp_path, ab):
    got, _ = compare(tmp_path, """
 location /c/ { rewrite ^/c/(.*)$ /d/$1 break; return 500; proxy_pass http://a/ignored/; }
 location /d/ { return 200 "wrong location"; }""", [
        ("GET", "/c/x", None),
    ], backends=ab)
    assert got[0][:3] == (200, None, "a")
    targets = [e["target"] for e in ab[0][1].log()]
    assert targets == ["/d/x", "/d/x"]  # nginx's request, then rampart's


def test_break_directive_ends_the_script(tmp_path):
    got, _ = compare(tmp_path, """
 location /e/ { set $v one; break; set $v two; }
 location /f/ { set $v one; if ($arg_stop) { break; } return 200 "v=$v"; }""", [
        ("GET", "/f/?stop=1", None),
        ("GET", "/f/", None),
    ])
    assert got[0][0] == 404
    assert got[1][4] == "v=one"


def test_server_level_rewrite_runs_before_the_location_is_chosen(tmp_path):
    got, _ = compare(tmp_path, """
 rewrite ^/legacy/(.*)$ /app/$1 last;
 rewrite ^/other/(.*)$ /app/$1 break;
 location /app/ { return 200 "app $uri"; }""", [
        ("GET", "/legacy/p", None),
        ("GET", "/other/q", None),
    ])
    assert got[0][4] == "app /app/p" and got[1][4] == "app /app/q"


def test_bots_are_refused_and_posts_answered_by_if_conditions(tmp_path):
    got, _ = compare(tmp_path, """
 if ($http_user_agent ~* (bot|spider)) { return 403; }
 location / {
  if ($request_method = POST) { return 405; }
  if ($request_method != GET) { return 200 "other"; }
  return 200 "ok";
 }""", [
        ("GET", "/", {"User-Agent": "GoogleBot/2.1"}),
        ("GET", "/", {"User-Agent": "curl"}),
        ("POST", "/", {"User-Agent": "curl", "Content-Length": "0"}),
        ("PUT", "/", {"User-Agent": "curl", "Content-Length": "0"}),
    ])
    assert [g[0] for g in got] == [403, 200, 405, 200]


def test_a_variable_alone_is_false_when_empty_or_zero(tmp_path):
    got, _ = compare(tmp_path, """
 location / { if ($arg_on) { return 200 "yes"; } return 200 "no"; }""", [
        ("GET", "/?on=1", None),
        ("GET", "/?on=0", None),
        ("GET", "/?on=", None),
        ("GET", "/?on=00", None),
        ("GET", "/", None),
    ])
    assert [g[4] for g in got] == ["yes", "no", "no", "yes", "no"]


def test_regex_conditions_set_captures_and_negations_work(tmp_path):
    got, _ = compare(tmp_path, """
 location / {
  if ($uri ~ ^/u/(?<user>[a-z]+)/(\\d+)$) { return 200 "user=$user id=$2"; }
  if ($http_x_tag !~* ^ok$) { return 200 "not ok"; }
  return 200 "ok";
 }""", [
        ("GET", "/u/bob/42", None),
        ("GET", "/other", {"X-Tag": "OK"}),
        ("GET", "/other", {"X-Tag": "no"}),
    ])
    assert [g[4] for g in got] == ["user=bob id=42", "ok", "not ok"]


def test_file_tests_look_at_the_file_system(tmp_path):
    d = tmp_path / "files"
    (d / "sub").mkdir(parents=True)
    (d / "page.html").write_text("x")
    (d / "run.sh").write_text("#!/bin/sh\n")
    (d / "run.sh").chmod(0o755)
    got, _ = compare(tmp_path, f"""
 location / {{
  set $p {d}$uri;
  if (-d $p) {{ return 200 "dir"; }}
  if (-x $p) {{ return 200 "exec"; }}
  if (-f $p) {{ return 200 "file"; }}
  if (!-e $p) {{ return 200 "none"; }}
  return 200 "other";
 }}""", [
        ("GET", "/page.html", None),
        ("GET", "/sub", None),
        ("GET", "/run.sh", None),
        ("GET", "/missing", None),
    ])
    assert [g[4] for g in got] == ["file", "dir", "exec", "none"]


def test_proxy_pass_in_an_if_block_is_the_content_handler_when_it_holds(tmp_path, ab):
    got, _ = compare(tmp_path, """
 location /api/ {
  proxy_pass http://a;
  if ($arg_canary) { proxy_pass http://b; }
  if ($http_x_debug) { add_header X-If debug; }
 }""", [
        ("GET", "/api/x", None),
        ("GET", "/api/x?canary=1", None),
        ("GET", "/api/x", {"X-Debug": "1"}),
    ], backends=ab)
    assert [(g[2], g[3]) for g in got] == [("a", None), ("b", None), ("a", "debug")]


def test_a_rewrite_cycle_ends_with_500_after_ten_changes(tmp_path):
    got, log = compare(tmp_path, "location /loop { rewrite ^ /loop last; }", [
        ("GET", "/loop", None),
    ])
    assert got[0][0] == 500
    assert 'rewrite or internal redirection cycle while processing "/loop"' in log


def test_rewrite_log_writes_each_step_at_notice(tmp_path):
    _, log = compare(tmp_path, """
 rewrite_log on;
 location / { rewrite ^/nomatch /x; rewrite ^/(s)$ /t/$1?a=1 last; }
 location /t/ { return 200 "t"; }""", [
        ("GET", "/s", None),
    ])
    assert '[notice]' in log
    assert '"^/nomatch" does not match "/s"' in log
    assert '"^/(s)$" matches "/s"' in log
    assert 'rewritten data: "/t/s", args: "a=1"' in log


def test_uninitialized_variable_warn_is_on_by_default_and_can_be_turned_off(rampart, port):
    rampart.configure(f"""server {{ listen 127.0.0.1:{port};
 location /on {{ if ($arg_x) {{ set $v 1; }} return 200 "[$v]"; }}
 location /off {{ uninitialized_variable_warn off; return 200 "[$v]"; }} }}""")
    rampart.start()
    assert harness.get(port, "/off").text == "[]"
    assert harness.get(port, "/on?x=1").text == "[1]"
    assert "using uninitialized" not in rampart.log_text()
    assert harness.get(port, "/on").text == "[]"
    rampart.wait_log(r'\[warn\].*using uninitialized "v" variable')


def test_redirect_location_options_as_nginx(tmp_path):
    got, _ = compare(tmp_path, """
 location /rel { absolute_redirect off; return 301 /target; }
 location /name { server_name_in_redirect on; return 302 /target; }
 location /noport { port_in_redirect off; rewrite ^ /target permanent; }
 location /abs { return 301 /target; }""", [
        ("GET", "/rel", None),
        ("GET", "/name", None),
        ("GET", "/noport", None),
        ("GET", "/abs", None),
    ])
    assert [g[1] for g in got] == ["/target", "http://example.test:PORT/target",
                                   "http://example.test/target",
                                   "http://example.test:PORT/target"]


def test_a_relative_location_from_a_backend_stays_relative(tmp_path, ab):
    got, _ = compare(tmp_path, """
 location / { proxy_pass http://a; }""", [
        ("GET", "/?status=302&header=Location:/elsewhere", None),
    ], backends=ab)
    assert got[0][:2] == (302, "/elsewhere")


@pytest.mark.parametrize("body,line,message", [
    ("location / { if ($a) { proxy_set_header X y; } }", 3,
     '"proxy_set_header" directive is not allowed here'),
    ("location / { if ($request_method == GET) { return 403; } }", 3,
     '"if": unexpected "==" in condition'),
    ("location / { if $arg_a { return 403; } }", 3, '"if": invalid condition "$arg_a"'),
    ("location / { if ($arg_a = x { return 403; } }", 3, '"if": invalid condition "x"'),
    ("location / { if (-q /x) { return 403; } }", 3, '"if": invalid condition "-q"'),
    ("location / { rewrite ^/ /x forever; }", 3, '"rewrite": invalid parameter "forever"'),
    ("if ($arg_a) { location /x { } }", 3, '"location" directive is not allowed here'),
    ("location / { if ($arg_a) { if ($arg_b) { return 403; } } }", 3,
     '"if" directive is not allowed here'),
], ids=["directive_outside_if_list", "double_equals", "no_parentheses", "unclosed",
        "unknown_file_test", "bad_flag", "location_in_if",
        "if_in_if"])
def test_refusals_name_the_place_and_nginx_refuses_too(tmp_path, conf_dir, body, line,
                                                        message):
    http = f"server {{ listen 127.0.0.1:{harness.free_port()};\n{body}\n}}"
    reference_nginx.assert_rampart_refuses(conf_dir, http, line + 1, message)
    nline, nerr = reference_nginx.refusal(tmp_path, http)
    assert nline == line + 1, nerr


def test_lua_handlers_in_an_if_block_serve_the_requests_that_enter_it(rampart, port, backend):
    rampart.configure(f"""server {{ listen 127.0.0.1:{port};
 location / {{
  proxy_pass http://{backend.addr};
  if ($arg_lua) {{
   set_by_lua_block $greeting {{ return "hi " .. ngx.var.arg_lua }}
   content_by_lua_block {{ ngx.say(ngx.var.greeting) }}
  }}
 }} }}""")
    rampart.start()
    r = harness.get(port, "/x?lua=bob")
    assert r.status == 200 and r.text == "hi bob\n" and r.headers.get("X-Backend-Name") is None
    r = harness.get(port, "/x")
    assert r.status == 200 and r.headers.get("X-Backend-Name") == backend.name


def test_captures_of_an_encoded_path_stay_encoded_in_redirects_as_nginx(tmp_path):
    got, _ = compare(tmp_path, """
 rewrite ^/old/(.*)$ /new/$1 permanent;
 rewrite ^/x/(.*)$ https://h.test/$1?q=$1;""", [
        ("GET", "/old/a%20b%3Fc?x=%20", None),
        ("GET", "/old/a+b", None),
        ("GET", "/x/a%26b", None),
    ])
    assert got[0][1] == "http://example.test:PORT/new/a%20b?c?x=%20"


def test_rewrite_last_inside_a_location_if_searches_again(tmp_path):
    got, _ = compare(tmp_path, """
 if ($http_x_mobile) { set $m "mobile"; }
 location / {
  if ($m) { rewrite ^/(.*)$ /m/$1 last; }
  return 200 "desktop $uri";
 }
 location /m/ { return 200 "$m $uri"; }""", [
        ("GET", "/page", {"X-Mobile": "1"}),
        ("GET", "/page", None),
    ])
    assert [g[4] for g in got] == ["mobile /m/page", "desktop /page"]


def test_root_and_error_page_inside_an_if_apply_when_it_holds(rampart, port, tmp_path):
    """As nginx allows them in "if in location": a beta root chosen by a cookie, with the
    beta site's own error page."""
    for site, text in (("stable", "stable home"), ("beta", "beta home")):
        (tmp_path / site).mkdir()
        (tmp_path / site / "index.html").write_text(text)
    (tmp_path / "beta" / "oops.html").write_text("beta oops")
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    root {tmp_path}/stable;
    location / {{
        if ($cookie_beta = 1) {{
            root {tmp_path}/beta;
            error_page 404 /oops.html;
        }}
    }}
}}
""")
    rampart.start()
    assert harness.request(port, "/").body == b"stable home"
    beta = {"Cookie": "beta=1"}
    assert harness.request(port, "/", headers=beta).body == b"beta home"
    r = harness.request(port, "/nothing", headers=beta)
    assert (r.status, r.body) == (404, b"beta oops")
    assert harness.request(port, "/nothing").status == 404
