"""`allow` and `deny`, as nginx's access module: addresses, CIDR networks, IPv4 and
IPv6, `all`, `unix:`; checked in the access phase, the first rule that matches
decides, a denied client gets 403, and a level without rules inherits the whole list
of the level above. Clients come from 127.0.0.1 and 127.0.0.2 (both loopback: the
client socket is bound to the address) and from ::1."""

import http.client
import socket

import pytest

from harness import run
from test_tls import line_of


def status(port, path="/", source="127.0.0.1", host="127.0.0.1"):
    conn = http.client.HTTPConnection(host, port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": "localhost", "Connection": "close"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def serve(rampart, port, backend, rules, location_rules="", http_rules="", listen=None):
    listen = listen or f"127.0.0.1:{port}"
    rampart.configure(f"""
    {http_rules}
    server {{
        listen {listen};
        {rules}
        location / {{ proxy_pass http://{backend.addr}; }}
        location /inner/ {{ {location_rules} proxy_pass http://{backend.addr}; }}
    }}
    """)
    return rampart.start()


def test_allowed_address_passes_and_others_get_403(rampart, port, backend):
    serve(rampart, port, backend, "allow 127.0.0.1; deny all;")
    assert status(port, source="127.0.0.1") == 200
    assert status(port, source="127.0.0.2") == 403
    rampart.wait_log(r"\[error\] .*access forbidden by rule, client: 127\.0\.0\.2")


def test_first_matching_rule_wins(rampart, port, backend):
    # 127.0.0.2 is in 127.0.0.0/30 too: the earlier deny decides for it
    serve(rampart, port, backend, "deny 127.0.0.2; allow 127.0.0.0/30; deny all;",
          location_rules="allow 127.0.0.0/30; deny 127.0.0.2; deny all;")
    assert status(port, source="127.0.0.1") == 200
    assert status(port, source="127.0.0.2") == 403
    assert status(port, source="127.0.0.5") == 403
    # the location's own list, in its own order: the allow comes first
    assert status(port, "/inner/", source="127.0.0.2") == 200


def test_location_without_rules_inherits_and_with_rules_replaces(rampart, port, backend):
    serve(rampart, port, backend, "", location_rules="allow 127.0.0.2; deny all;",
          http_rules="deny 127.0.0.2;")
    assert status(port, source="127.0.0.2") == 403  # the http block's rule, inherited
    assert status(port, source="127.0.0.1") == 200
    assert status(port, "/inner/", source="127.0.0.2") == 200
    assert status(port, "/inner/", source="127.0.0.1") == 403


def test_ipv6_rules_apply_to_ipv6_clients(rampart, port, backend):
    serve(rampart, port, backend, "deny ::1; allow all;", location_rules="allow ::/0; deny all;",
          listen=f"[::1]:{port}")
    assert status(port, source="::1", host="::1") == 403
    assert status(port, "/inner/", source="::1", host="::1") == 200


def test_ipv4_rules_do_not_match_ipv6_clients(rampart, port, backend):
    serve(rampart, port, backend, "allow 127.0.0.1; deny all;",
          location_rules="allow ::1/128; deny all;", listen=f"[::1]:{port}")
    assert status(port, source="::1", host="::1") == 403
    assert status(port, "/inner/", source="::1", host="::1") == 200


def test_all_denies_everyone(rampart, port, backend):
    serve(rampart, port, backend, "deny all;")
    assert status(port, source="127.0.0.1") == 403
    assert status(port, source="127.0.0.2") == 403


def check(conf_dir, rule):
    text = ("worker_processes 1;\npid logs/rampart.pid;\nhttp {\n    server {\n"
            f"        listen 127.0.0.1:1;\n        location / {{\n            {rule}\n"
            "            proxy_pass http://127.0.0.1:2;\n        }\n    }\n}\n")
    (conf_dir / "rampart.conf").write_text(text)
    return text, run("-t", "-p", conf_dir, "-c", "rampart.conf")


@pytest.mark.parametrize("rule", ["allow 300.1.1.1;", "deny 10.0.0.0/33;", "allow ::1/129;",
                                  "deny 10.0.0.0/;", "allow localhost;", "deny 10.0.0.0/8x;",
                                  "allow unix:/tmp/x;"])
def test_bad_values_are_refused_with_file_and_line(conf_dir, rule):
    text, p = check(conf_dir, rule)
    assert p.returncode != 0
    assert f"rampart.conf:{line_of(text, rule)}: " in p.stderr, p.stderr
    assert "invalid parameter" in p.stderr, p.stderr


@pytest.mark.parametrize("rule", ["allow 10.0.0.0/8;", "deny 2001:db8::/32;", "allow unix:;",
                                  "deny all;", "allow 192.0.2.7;", "allow ::ffff:10.0.0.0/104;"])
def test_good_values_are_accepted(conf_dir, rule):
    text, p = check(conf_dir, rule)
    assert p.returncode == 0, p.stderr


def test_low_address_bits_are_warned_about(conf_dir):
    text, p = check(conf_dir, "allow 10.1.2.3/8;")
    assert p.returncode == 0
    assert "low address bits of 10.1.2.3/8 are meaningless" in p.stderr, p.stderr


def test_ipv4_mapped_ipv6_client_is_checked_against_ipv4_rules(rampart, port, backend):
    # a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d
    serve(rampart, port, backend, "deny 127.0.0.2; allow all;",
          listen=f"[::]:{port} ipv6only=off")
    assert status(port, source="127.0.0.2", host="127.0.0.1") == 403
    assert status(port, source="127.0.0.1", host="127.0.0.1") == 200
