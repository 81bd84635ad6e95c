"""try_files FILE ... URI|=CODE|@name compared with Debian's nginx: the same http-block
content under /usr/sbin/nginx and rampart over one document root, the same requests,
the same status, fields and bodies (test_static.same)."""

import pytest

import harness
import reference_nginx
from test_static import make_root, same, MIME


def http_block(port, root):
    return (f"include {MIME};\n"
            f"server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    root {root};\n"
            f"    location / {{ try_files $uri $uri/ /index.html; }}\n"
            f"    location /api/ {{ try_files $uri /openapi.json; }}\n"
            f"    location /code/ {{ try_files $uri =403; }}\n"
            f"    location /strict/ {{ try_files $uri =404; }}\n"
            f"    location /named/ {{ try_files /nope $uri @back; }}\n"
            f"    location @back {{ return 200 \"named $uri $args\"; }}\n"
            f"    location /args/ {{ try_files $uri /echo?from=$uri; }}\n"
            f"    location = /echo {{ return 200 \"echo $uri $args\"; }}\n"
            f"    location /al/ {{ alias {root}/dir/; try_files $uri $uri.html =404; }}\n"
            f"    location /keep/ {{ try_files $uri /echo; }}\n"
            f"    location ~ ^/rx(/.*)$ {{ alias {root}/dir; try_files $1 $1.html =404; }}\n"
            f"}}\n"
            f"server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    server_name srv.test;\n"
            f"    root {root};\n"
            f"    try_files $uri /dir/page.html;\n"
            f"}}\n")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    reference_nginx.require()
    base = tmp_path_factory.mktemp("try_files")
    root = base / "www"
    make_root(root)
    nginx = reference_nginx.Nginx(base / "nginx")
    rampart = harness.Rampart(base / "rampart")
    nport, rport = harness.free_port(), harness.free_port()
    nginx.configure(http_block(nport, root))
    rampart.configure(http_block(rport, root))
    nginx.start()
    try:
        rampart.start()
        yield nginx, rampart, root
    finally:
        rampart.stop()
        nginx.stop()
    assert rampart.problems() == []


def test_the_first_file_that_exists_is_served(pair):
    assert same(pair, "GET", "/openapi.json")[2].startswith(b'{"openapi"')
    assert same(pair, "GET", "/api/openapi.json")[0] == 200  # falls back to the same file


def test_a_directory_argument_matches_only_a_directory(pair):
    assert same(pair, "GET", "/dir")[0] == 301        # $uri/ found: the slash is added
    assert same(pair, "GET", "/dir/")[2] == b"<p>dir</p>\n"


def test_the_last_uri_is_an_internal_redirect(pair):
    assert same(pair, "GET", "/no/such/page")[2] == b"<h1>home</h1>\n"
    _, fields, body = same(pair, "GET", "/api/v1/spec")
    assert fields["content-type"] == "application/json" and body.startswith(b'{"openapi"')


def test_the_last_uri_may_carry_arguments_else_the_requests_are_dropped(pair):
    assert same(pair, "GET", "/args/x?a=1")[2] == b"echo /echo from=/args/x"
    assert same(pair, "GET", "/keep/x?a=1")[2] == b"echo /echo "


def test_a_code_answers_with_it(pair):
    assert same(pair, "GET", "/code/nope")[0] == 403
    assert same(pair, "GET", "/strict/nope")[0] == 404


def test_a_named_location_gets_the_request_unchanged(pair):
    assert same(pair, "GET", "/named/x?q=2")[2] == b"named /named/x q=2"


def test_try_files_with_alias_tests_under_the_alias(pair):
    assert same(pair, "GET", "/al/page")[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/al/page.html")[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/al/none")[0] == 404


def test_try_files_under_an_alias_of_a_regex_location_tests_alias_plus_name(pair):
    assert same(pair, "GET", "/rx/page.html")[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/rx/page")[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/rx/none")[0] == 404


def test_try_files_at_server_level(pair):
    assert same(pair, "GET", "/whatever", {"Host": "srv.test"})[2] == b"<p>page</p>\n"
    assert same(pair, "GET", "/index.html", {"Host": "srv.test"})[2] == b"<h1>home</h1>\n"


def test_try_files_refuses_bad_values(conf_dir):
    refuse = reference_nginx.assert_rampart_refuses
    refuse(conf_dir, "server { listen 127.0.0.1:1; try_files $uri; }", 3,
           '"try_files": takes 2 or more arguments, got 1')
    refuse(conf_dir, "server { listen 127.0.0.1:1; try_files $uri =x; }", 3,
           '"try_files": invalid code "=x"')
    refuse(conf_dir, "server { listen 127.0.0.1:1; try_files $uri =1000; }", 3,
           '"try_files": invalid code "=1000"')
    refuse(conf_dir, "server { listen 127.0.0.1:1; try_files $a $uri /x; }", 3,
           '"try_files": unknown variable "$a"')
    refuse(conf_dir, "try_files $uri /x;", 3, '"try_files": not allowed in the http context')
