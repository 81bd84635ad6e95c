"""log_format's escape=default|json|none and access_log's if= against Debian's nginx:
the same http-block content runs under /usr/sbin/nginx (reference_nginx.py) and
rampart, the same raw requests with awkward bytes (quotes, backslashes, control
bytes, DEL, UTF-8 and bytes that are not UTF-8, empty and absent fields) go to each,
and the lines each writes must be byte for byte the same, in each escape mode.

Control bytes reach the log through $uri (percent-decoded), not through header
values: rampart refuses a field value with a control byte other than HTAB (400, as
RFC 9110 section 5.5 allows), where nginx takes it.
"""

import socket

import pytest

import harness
import reference_nginx
from test_access_log import wait_lines

FIELDS = ('"$http_x_test" "$http_user_agent" "$arg_q" "$request_uri" "$uri" "$http_x_empty" '
          '"$http_x_absent" "$cookie_c" "$args" "$is_args" "$arg_r" "$remote_user" "$query_string"')

# (X-Test value, User-Agent value, target): bytes as they go on the wire
REQUESTS = [
    (b'plain', b'curl/8', b"/a?q=1"),
    (b'say "hi"', b'back\\slash', b"/b?q=%22x%22"),
    (b'tab\there', b'agent', b"/c%01%1F%7F%09%0A?q=a\\b"),
    (b'caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80', b'\x80\xff\xfe', b"/d?q=\xc3\xa9"),
    (b'{"json":[1,2]}', b"it's </script>", b"/e?q=%00&r=2"),
    (b'\\u0041\\x41', b'red', b'/f%1B[31m%22%5C%C3%A9%FF?q="quoted"'),
]


def http(port):
    return (f"log_format d '{FIELDS}';\n"
            f"log_format j escape=json '{FIELDS}';\n"
            f"log_format n escape=none '{FIELDS}';\n"
            f"log_format c '$uri';\n"
            f"map $http_x_log $keep {{ default 1; no 0; empty ''; }}\n"
            f"server {{\n"
            f"    listen 127.0.0.1:{port};\n"
            f"    access_log logs/d.log d;\n"
            f"    access_log logs/j.log j;\n"
            f"    access_log logs/n.log n;\n"
            f"    access_log logs/if.log c if=$keep;\n"
            f"    location / {{ return 200 'ok'; }}\n"
            f"}}\n")


def send(port, x_test, ua, target, extra=b""):
    req = (b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\nX-Test: " + x_test +
           b"\r\nUser-Agent: " + ua + b"\r\nX-Empty:\r\nCookie: c=v\"1\r\n" + extra +
           b"Connection: close\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def run_all(port, log_dir):
    statuses = [send(port, *r) for r in REQUESTS]
    # if=: kept unless the map gives "0" or an empty string
    for i, how in enumerate([b"yes", b"no", b"empty", b"1"]):
        statuses.append(send(port, b"x", b"y", b"/if%d" % i, b"X-Log: " + how + b"\r\n"))
    assert statuses == [200] * len(statuses)
    # one line per request; escape=none writes the decoded %0A of /c as a line break;
    # if= drops the "no" and "empty" requests
    counts = {"d": len(statuses), "j": len(statuses), "n": len(statuses) + 1,
              "if": len(statuses) - 2}
    logs = {name: wait_lines(log_dir / f"{name}.log", n) for name, n in counts.items()}
    return statuses, logs


@pytest.fixture
def nginx(tmp_path):
    reference_nginx.require()
    n = reference_nginx.Nginx(tmp_path / "nginx")
    yield n
    n.stop()


def test_escaped_lines_are_byte_for_byte_nginx_lines(rampart, nginx, free_port):
    nport, rport = free_port(), free_port()
    nginx.configure(http(nport))
    nginx.start()
    want_status, want = run_all(nport, nginx.prefix / "logs")

    rampart.configure(http(rport))
    rampart.start()
    got_status, got = run_all(rport, rampart.prefix / "logs")

    assert got_status == want_status
    for mode in ("d", "j", "n", "if"):
        assert got[mode] == want[mode], mode
