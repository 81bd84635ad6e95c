"""nginx's realip module: `set_real_ip_from`, `real_ip_header` (X-Real-IP, X-Forwarded-For,
any field, proxy_protocol) and `real_ip_recursive` replace the client address, so
$remote_addr, $binary_remote_addr, $remote_port, the limits' keys, the access log and
what goes upstream see the real client; $realip_remote_addr and $realip_remote_port
keep the connection's. The header cases are compared with Debian's nginx on the same
inputs; the PROXY protocol cases put Debian's haproxy in front.
"""

import json
import socket

import pytest

import harness
import reference_nginx
from h2client import H2Client
from haproxy_lb import Haproxy
from harness import get, wait_for

VARS = '"$remote_addr|$remote_port|$realip_remote_addr|$binary_remote_addr"'


def xff_servers(port_flat, port_rec, header="X-Forwarded-For"):
    """Two servers trusting 127.0.0.1 and 10.0.0.0/8: one not recursive, one recursive."""
    return "".join(f"""
server {{
    listen 127.0.0.1:{p};
    set_real_ip_from 127.0.0.1;
    set_real_ip_from 10.0.0.0/8;
    set_real_ip_from 2001:db8:ffff::/48;
    real_ip_header {header};
    real_ip_recursive {rec};
    location / {{ return 200 {VARS}; }}
}}""" for p, rec in ((port_flat, "off"), (port_rec, "on")))


@pytest.fixture
def both(tmp_path, rampart, free_port):
    """rampart and nginx started on the same http content; returns a function giving the
    pair (rampart's body, nginx's body) for one request's extra header lines."""
    started = []

    def start(make_http):
        rp = [free_port(), free_port()]
        ng = [free_port(), free_port()]
        rampart.configure(make_http(*rp))
        rampart.start()
        nginx = reference_nginx.Nginx(tmp_path / "nginx")
        reference_nginx.require()
        nginx.configure(make_http(*ng))
        nginx.start()
        started.append(nginx)

        def ask(lines, which):
            """Each server's body, the connection's own port shown as "PORT" and the
            binary address in hex."""
            out = []
            for port in (rp[which], ng[which]):
                req = (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
                       b"".join(line.encode() + b"\r\n" for line in lines) + b"\r\n")
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    own = str(s.getsockname()[1]).encode()
                    s.sendall(req)
                    resp = b""
                    while chunk := s.recv(65536):
                        resp += chunk
                head, _, body = resp.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), resp
                addr, rport, real, binary = body.split(b"|", 3)
                rport = b"PORT" if rport == own else rport
                out.append(b"|".join([addr, rport, real]).decode() + "|" + binary.hex())
            return out
        return ask
    yield start
    for n in started:
        n.stop()


XFF_CASES = [
    ["X-Forwarded-For: 203.0.113.1"],
    ["X-Forwarded-For: 203.0.113.1, 10.0.0.1"],
    ["X-Forwarded-For: 203.0.113.1, 10.0.0.1, 10.0.0.2"],
    ["X-Forwarded-For: 198.51.100.9, 203.0.113.1, 10.0.0.1"],
    ["X-Forwarded-For: 10.0.0.3, 10.0.0.1"],
    ["X-Forwarded-For: garbage, 10.0.0.1"],
    ["X-Forwarded-For: 203.0.113.1, garbage"],
    ["X-Forwarded-For: 203.0.113.1", "X-Forwarded-For: 10.0.0.1"],
    ["X-Forwarded-For: 203.0.113.1:8080"],
    ["X-Forwarded-For: 203.0.113.1,10.0.0.1"],
    ["X-Forwarded-For: 2001:db8::1"],
    ["X-Forwarded-For: 2001:db8::1, 2001:db8:ffff::2"],
    ["X-Forwarded-For: [2001:db8::1]:443"],
    ["X-Forwarded-For:  , ,"],
    ["X-Forwarded-For: 203.0.113.1,  "],
    [],
]


@pytest.mark.parametrize("lines", XFF_CASES, ids=[str(i) for i in range(len(XFF_CASES))])
@pytest.mark.parametrize("which", [0, 1], ids=["not-recursive", "recursive"])
def test_x_forwarded_for_gives_the_same_client_as_nginx(both, lines, which):
    ask = both(xff_servers)
    mine, nginx = ask(lines, which)
    assert mine == nginx


@pytest.mark.parametrize("lines", [
    ["X-Real-IP: 203.0.113.7"],
    ["X-Real-IP: 203.0.113.7:99"],
    ["X-Real-IP: 10.0.0.1"],
    ["X-Real-IP: not-an-address"],
    ["X-Real-IP: 203.0.113.7, 203.0.113.8"],
], ids=["addr", "addr-port", "trusted", "garbage", "list"])
def test_x_real_ip_gives_the_same_client_as_nginx(both, lines):
    ask = both(lambda a, b: xff_servers(a, b, "X-Real-IP"))
    mine, nginx = ask(lines, 0)
    assert mine == nginx


def test_a_field_of_any_name(both):
    ask = both(lambda a, b: xff_servers(a, b, "X-Client-Address"))
    mine, nginx = ask(["X-Client-Address: 192.0.2.44", "X-Real-IP: 192.0.2.45"], 0)
    assert mine == nginx
    assert mine.startswith("192.0.2.44|")


def test_an_untrusted_source_is_not_believed_and_a_trusted_name_is(rampart, port):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    set_real_ip_from 10.0.0.0/8;
    set_real_ip_from unix:;
    real_ip_header X-Forwarded-For;
    location / {{ return 200 "$remote_addr|$realip_remote_addr"; }}
}}
server {{
    listen 127.0.0.2:{port};
    set_real_ip_from localhost;
    real_ip_header X-Forwarded-For;
    location / {{ return 200 "$remote_addr|$realip_remote_addr"; }}
}}""")
    rampart.start()
    r = get(port, headers={"X-Forwarded-For": "203.0.113.1"})
    assert r.text == "127.0.0.1|127.0.0.1"
    # a trusted host name, resolved when the configuration is read: 127.0.0.1 is trusted
    r = get(port, addr="127.0.0.2", headers={"X-Forwarded-For": "203.0.113.1"})
    assert r.text == "203.0.113.1|127.0.0.1"


def test_a_location_of_its_own_applies_before_the_limits_and_the_proxy(rampart, port, backend):
    """As nginx: without server-level settings, the location's apply in the preaccess
    phase; what goes upstream (X-Real-IP: $remote_addr) sees the client."""
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    location / {{
        set_real_ip_from 127.0.0.0/8;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://127.0.0.1:{backend.port};
    }}
    location /other {{ proxy_set_header X-Real-IP $remote_addr;
                      proxy_pass http://127.0.0.1:{backend.port}; }}
}}""")
    rampart.start()
    r = get(port, "/?echo=1", headers={"X-Real-IP": "198.51.100.20"})
    sent = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"])
    assert (sent["x-real-ip"], sent["x-forwarded-for"]) == ("198.51.100.20", "198.51.100.20")
    r = get(port, "/other?echo=1", headers={"X-Real-IP": "198.51.100.20"})
    sent = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"])
    assert sent["x-real-ip"] == "127.0.0.1"


def test_bad_set_real_ip_from_is_refused_with_file_and_line(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, "set_real_ip_from 10.0.0.0/33;", 3,
        '"set_real_ip_from": invalid mask in "10.0.0.0/33"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, "set_real_ip_from no-such-host.invalid;", 3,
        '"set_real_ip_from": host not found in set_real_ip_from "no-such-host.invalid"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, "set_real_ip_from example/8;", 3,
        '"set_real_ip_from": invalid parameter "example/8"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, "real_ip_recursive maybe;", 3,
        '"real_ip_recursive": invalid value "maybe", it must be "on" or "off"')


# -- behind an L4 balancer ------------------------------------------------------------------


def via(front, path, source):
    with socket.socket() as s:
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", front))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body, s.getsockname()[1]


@pytest.fixture
def behind_haproxy(tmp_path, rampart, port, backend, free_port):
    rampart.configure(f"""
log_format real '$remote_addr $remote_port $realip_remote_addr $proxy_protocol_addr';
limit_req_zone $binary_remote_addr zone=per_client:1m rate=1r/m;
server {{
    listen 127.0.0.1:{port} proxy_protocol;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
    access_log logs/real.log real;
    proxy_set_header X-Real-IP $remote_addr;
    location / {{ proxy_pass http://127.0.0.1:{backend.port}; }}
    location /limited {{ limit_req zone=per_client; proxy_pass http://127.0.0.1:{backend.port}; }}
}}""")
    rampart.start()
    front = free_port()
    h = Haproxy(tmp_path / "haproxy", {front: (port, "send-proxy-v2")}).start()
    yield front
    h.stop()


def test_the_backend_and_the_access_log_see_the_client_behind_haproxy(rampart, behind_haproxy):
    status, body, sport = via(behind_haproxy, "/?echo=1", "127.0.0.2")
    assert status == 200
    sent = dict((k.lower(), v) for k, v in json.loads(body)["headers"])
    assert (sent["x-real-ip"], sent["x-forwarded-for"]) == ("127.0.0.2", "127.0.0.2")
    log = rampart.prefix / "logs" / "real.log"
    lines = wait_for(lambda: log.exists() and log.read_text().splitlines(), what="a log line")
    assert lines == [f"127.0.0.2 {sport} 127.0.0.1 127.0.0.2"]


def test_limit_req_by_binary_remote_addr_limits_each_real_client(behind_haproxy):
    assert via(behind_haproxy, "/limited", "127.0.0.2")[0] == 200
    assert via(behind_haproxy, "/limited", "127.0.0.2")[0] == 503
    assert via(behind_haproxy, "/limited", "127.0.0.3")[0] == 200
    assert via(behind_haproxy, "/limited", "127.0.0.3")[0] == 503


def test_each_http2_stream_of_one_connection_has_its_own_client(rampart, port):
    """A proxy in front multiplexes clients on one HTTP/2 connection: the address is the
    request's, not the connection's."""
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} http2;
    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;
    location / {{ return 200 "$remote_addr $connection\\n"; }}
}}""")
    rampart.start()
    with H2Client(port) as c:
        got = c.exchange([("GET", "/", [("x-forwarded-for", "192.0.2.1")], b""),
                          ("GET", "/", [("x-forwarded-for", "192.0.2.2")], b""),
                          ("GET", "/", [], b"")])
    lines = [bytes(r.body).decode() for r in got]
    assert [line.split()[0] for line in lines] == ["192.0.2.1", "192.0.2.2", "127.0.0.1"]
    assert len({line.split()[1] for line in lines}) == 1  # one connection


def test_a_proxy_protocol_header_from_an_untrusted_source_is_not_the_client(rampart, port):
    """The header is read (the socket expects it) and its variables are set, but only a
    trusted sender makes its address $remote_addr."""
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} proxy_protocol;
    set_real_ip_from 10.0.0.0/8;
    real_ip_header proxy_protocol;
    location / {{ return 200 "$remote_addr|$proxy_protocol_addr|$realip_remote_addr"; }}
}}
server {{
    listen 127.0.0.2:{port} proxy_protocol;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
    location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr"; }}
}}""")
    rampart.start()
    head = b"PROXY TCP4 192.0.2.9 192.0.2.10 4321 443\r\n"
    req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = harness.raw_exchange(port, head + req)
    assert resp.endswith(b"\r\n\r\n127.0.0.1|192.0.2.9|127.0.0.1"), resp
    resp = harness.raw_exchange(port, head + req, addr="127.0.0.2")
    assert resp.endswith(b"\r\n\r\n192.0.2.9|4321|127.0.0.1"), resp


def test_allow_and_deny_see_the_real_client(rampart, port, backend):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port};
    set_real_ip_from 127.0.0.1;
    location / {{
        allow 192.0.2.0/24;
        deny all;
        proxy_pass http://127.0.0.1:{backend.port};
    }}
}}""")
    rampart.start()
    assert get(port, headers={"X-Real-IP": "192.0.2.77"}).status == 200
    assert get(port, headers={"X-Real-IP": "198.51.100.77"}).status == 403
    assert get(port).status == 403
