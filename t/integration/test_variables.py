"""
Variables modules register, seen over real requests: `set` changing what a proxy
sends, response fields ($sent_http_NAME) and upstream fields ($upstream_http_NAME)
in a log line, regex captures in answers, and the errors a configuration gets for
variables it misuses.
"""

import json
import re

from harness import get, run, wait_for


def test_set_args_changes_the_query_a_proxy_without_uri_sends(rampart, port, backend):
    rampart.configure(f"server {{ listen 127.0.0.1:{port};\n"
                      f"  location / {{ set $args \"echo=1&added=yes\";\n"
                      f"    proxy_pass http://127.0.0.1:{backend.port}; }}\n}}")
    rampart.start()
    seen = json.loads(get(port, "/p?old=1").body)
    assert seen["target"] == "/p?echo=1&added=yes"


def test_location_and_server_name_captures_answer_in_return(rampart, port):
    rampart.configure(f"server {{ listen 127.0.0.1:{port};\n"
                      r"  server_name ~^(?<tenant>[a-z]+)\.example\.com$;" "\n"
                      r'  location ~ ^/u/(\d+)/(?<part>[a-z]+)$ { return 200 "$tenant $1 $part $2"; }'
                      "\n}")
    rampart.start()
    assert get(port, "/u/42/name", host="acme.example.com").text == "acme 42 name name"


def test_sent_and_upstream_fields_reach_the_access_log(rampart, port, backend):
    rampart.configure(
        "log_format f '[$sent_http_x_out] [$upstream_http_x_backend_name] "
        "[$sent_http_content_length]';\n"
        "access_log logs/f.log f;\n"
        f"server {{ listen 127.0.0.1:{port};\n"
        f"  add_header X-Out here;\n"
        f"  location / {{ proxy_pass http://127.0.0.1:{backend.port}; }}\n}}")
    rampart.start()
    r = get(port, "/x?body=hello")
    assert r.text == "hello"
    log = rampart.prefix / "logs" / "f.log"
    # the line is written once the exchange is over, which may be after the client has read
    # the response
    found = wait_for(lambda: log.exists() and re.search(r"\[(.*)\] \[(.*)\] \[(.*)\]",
                                                        log.read_text()),
                     what="the access log line")
    line = found.groups()
    assert line == ("here", r.headers["X-Backend-Name"], "5")


def test_assigning_a_builtin_variable_is_refused_at_its_line(rampart, port):
    rampart.configure(f"server {{ listen 127.0.0.1:{port};\n  set $host x;\n}}")
    p = run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert p.returncode == 1
    assert re.search(r'rampart\.conf:\d+: "set": the variable "\$host" cannot be assigned',
                     p.stderr)


def test_a_variable_nothing_declares_is_refused_where_it_was_first_used(rampart, port):
    rampart.configure(f"server {{ listen 127.0.0.1:{port};\n"
                      f"  location / {{ return 200 \"$nowhere\"; }}\n}}")
    p = run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert p.returncode == 1
    line = rampart.conf_text.splitlines().index(
        '  location / { return 200 "$nowhere"; }') + 1
    assert f'rampart.conf:{line}: "return": unknown variable "$nowhere"' in p.stderr


def test_a_named_capture_may_not_take_a_builtin_variable_name(rampart, port):
    rampart.configure(f"server {{ listen 127.0.0.1:{port};\n"
                      r"  location ~ ^/(?<host>.+)$ { return 200 x; }" "\n}")
    p = run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert p.returncode == 1
    assert re.search(r'rampart\.conf:\d+: "location": the variable "\$host" cannot be '
                     r'assigned\n', p.stderr)
