"""The PROXY protocol on `listen ... proxy_protocol`, as nginx: a header from an L4
balancer comes before anything else on each connection (before TLS, before HTTP/1 or
the HTTP/2 preface), in v1 (text) or v2 (binary, TLVs skipped); its addresses are
$proxy_protocol_addr, $proxy_protocol_port, $proxy_protocol_server_addr and
$proxy_protocol_server_port. A missing, malformed or oversized header closes the
connection and logs "broken header".

Debian's haproxy (mode tcp, send-proxy / send-proxy-v2) is the balancer; raw sockets
send what haproxy never would: split, partial, malformed headers, v2 TLVs, LOCAL,
UNSPEC and AF_UNIX. Clients connect from 127.0.0.2 so the client haproxy reports is
not the address rampart's socket sees (127.0.0.1).
"""

import socket
import struct
import subprocess
import time

import pytest

import harness
from harness import wait_for
from haproxy_lb import Haproxy

PP_VARS = ('"$proxy_protocol_addr|$proxy_protocol_port|$proxy_protocol_server_addr|'
           '$proxy_protocol_server_port|$remote_addr\\n"')
REQ = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def serve_vars(rampart, port, extra=""):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} proxy_protocol {extra};
    client_header_timeout 2s;
    location / {{ return 200 {PP_VARS}; }}
}}""")
    rampart.start()


@pytest.fixture
def balancer(tmp_path, free_port):
    made = []

    def make(back, send):
        front = free_port()
        h = Haproxy(tmp_path / f"haproxy{len(made)}", {front: (back, send)}).start()
        made.append(h)
        return front
    yield make
    for h in made:
        h.stop()


def exchange(port, data, source="127.0.0.2", pieces=None, timeout=5.0):
    """Sends data (or the pieces, one segment each with a pause between) from source,
    reads until close; returns (the local port used, the bytes read)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        for p in pieces or [data]:
            s.sendall(p)
            if pieces:
                time.sleep(0.02)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return s.getsockname()[1], b"".join(chunks)


def body_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp
    return body.decode()


def v2(cmd, fam, addrs=b"", tlvs=b""):
    return V2_SIG + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(addrs) + len(tlvs)) + \
        addrs + tlvs


def v2_inet(src, sport, dst, dport):
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


# -- a real L4 balancer ---------------------------------------------------------------------


def test_haproxy_send_proxy_v1_gives_the_client_address_and_port(rampart, port, balancer):
    serve_vars(rampart, port)
    front = balancer(port, "send-proxy")
    sport, resp = exchange(front, REQ)
    assert body_of(resp) == f"127.0.0.2|{sport}|127.0.0.1|{front}|127.0.0.1\n"


def test_haproxy_send_proxy_v2_gives_the_client_address_and_port(rampart, port, balancer):
    serve_vars(rampart, port)
    front = balancer(port, "send-proxy-v2")
    sport, resp = exchange(front, REQ)
    assert body_of(resp) == f"127.0.0.2|{sport}|127.0.0.1|{front}|127.0.0.1\n"


def test_keepalive_requests_after_the_header_all_see_its_addresses(rampart, port, balancer):
    serve_vars(rampart, port)
    front = balancer(port, "send-proxy-v2")
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    sport, resp = exchange(front, req + req + REQ)
    parts = resp.split(b"HTTP/1.1 200 OK")
    assert len(parts) == 4, resp
    assert all(p.endswith(f"127.0.0.2|{sport}|127.0.0.1|{front}|127.0.0.1\n".encode())
               for p in parts[1:])


def test_h2c_prior_knowledge_behind_the_header(rampart, port, balancer):
    serve_vars(rampart, port, "http2")
    front = balancer(port, "send-proxy-v2")
    p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--interface", "127.0.0.2",
                        "-w", "%{http_version} %{local_port}", f"http://127.0.0.1:{front}/"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    body, _, tail = p.stdout.rpartition("\n")
    version, sport = tail.split()
    assert (version, body) == ("2", f"127.0.0.2|{sport}|127.0.0.1|{front}|127.0.0.1")


def test_tls_with_alpn_h2_behind_the_header(rampart, port, balancer, certs):
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{port} ssl http2 proxy_protocol;
    server_name a.test;
    {certs.directives("a.test")}
    location / {{ return 200 {PP_VARS}; }}
}}""")
    rampart.start()
    front = balancer(port, "send-proxy-v2")
    p = subprocess.run(["curl", "-sS", "--http2", "--interface", "127.0.0.2",
                        "--resolve", f"a.test:{front}:127.0.0.1", "--cacert", str(certs.ca),
                        "-w", "%{http_version} %{local_port}", f"https://a.test:{front}/"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    body, _, tail = p.stdout.rpartition("\n")
    version, sport = tail.split()
    assert (version, body) == ("2", f"127.0.0.2|{sport}|127.0.0.1|{front}|127.0.0.1")


# -- headers haproxy does not send ----------------------------------------------------------


def test_a_v1_header_split_byte_by_byte_is_put_together(rampart, port):
    serve_vars(rampart, port)
    hdr = b"PROXY TCP6 2001:db8::1 2001:db8::2 51000 443\r\n"
    _, resp = exchange(port, None, pieces=[hdr[i:i + 1] for i in range(len(hdr))] + [REQ])
    assert body_of(resp) == "2001:db8::1|51000|2001:db8::2|443|127.0.0.2\n"


def test_a_v2_header_split_inside_its_fixed_part_and_its_addresses(rampart, port):
    serve_vars(rampart, port)
    hdr = v2(1, 0x11, v2_inet("192.0.2.7", 40000, "198.51.100.1", 8443))
    _, resp = exchange(port, None, pieces=[hdr[:5], hdr[5:14], hdr[14:20], hdr[20:] + REQ])
    assert body_of(resp) == "192.0.2.7|40000|198.51.100.1|8443|127.0.0.2\n"


def test_bytes_after_the_header_in_the_same_segment_reach_http(rampart, port):
    """Nothing past the header is taken: a request pipelined behind it is served."""
    serve_vars(rampart, port)
    _, resp = exchange(port, b"PROXY TCP4 203.0.113.9 192.0.2.1 1234 80\r\n" + REQ)
    assert body_of(resp) == "203.0.113.9|1234|192.0.2.1|80|127.0.0.2\n"


def test_v2_tlvs_are_skipped(rampart, port):
    serve_vars(rampart, port)
    tlvs = (b"\x01\x00\x02h2" +                      # PP2_TYPE_ALPN
            b"\x02\x00\x08a.test\x00\x00" +          # PP2_TYPE_AUTHORITY
            b"\x04" + struct.pack("!H", 300) + b"\x00" * 300)  # PP2_TYPE_NOOP, padding
    hdr = v2(1, 0x11, v2_inet("192.0.2.8", 1, "192.0.2.9", 65535), tlvs)
    _, resp = exchange(port, hdr + REQ)
    assert body_of(resp) == "192.0.2.8|1|192.0.2.9|65535|127.0.0.2\n"


def test_v2_ipv6_addresses(rampart, port):
    serve_vars(rampart, port)
    addrs = (socket.inet_pton(socket.AF_INET6, "2001:db8::a") +
             socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.1") + struct.pack("!HH", 7, 8))
    _, resp = exchange(port, v2(1, 0x21, addrs) + REQ)
    assert body_of(resp) == "2001:db8::a|7|::ffff:192.0.2.1|8|127.0.0.2\n"


def test_v2_unix_addresses_are_the_paths(rampart, port):
    serve_vars(rampart, port)
    addrs = b"/run/client.sock".ljust(108, b"\0") + b"/run/lb.sock".ljust(108, b"\0")
    _, resp = exchange(port, v2(1, 0x31, addrs) + REQ)
    assert body_of(resp) == "unix:/run/client.sock||unix:/run/lb.sock||127.0.0.2\n"


@pytest.mark.parametrize("header", [
    v2(0, 0x11, v2_inet("192.0.2.1", 1, "192.0.2.2", 2)),  # LOCAL: a health check
    v2(1, 0x00),                                            # PROXY with UNSPEC
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
], ids=["v2-local", "v2-unspec", "v1-unknown", "v1-unknown-with-text"])
def test_headers_without_addresses_keep_the_connections_own(rampart, port, header):
    serve_vars(rampart, port)
    _, resp = exchange(port, header + REQ)
    assert body_of(resp) == "||||127.0.0.2\n"


@pytest.mark.parametrize("data", [
    REQ,                                                     # no header at all
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n" + REQ,              # three fields
    b"PROXY TCP4 1.2.3.999 5.6.7.8 80 80\r\n" + REQ,         # a bad address
    b"PROXY TCP4 ::1 ::1 80 80\r\n" + REQ,                   # IPv6 in TCP4
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n" + REQ,        # a port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 80 80\n" + REQ,             # LF without CR
    b"PROXY UDP4 1.2.3.4 5.6.7.8 80 80\r\n" + REQ,           # an unknown protocol
    b"PROXY TCP4 " + b"1" * 120 + b"\r\n" + REQ,             # no CRLF in 107 bytes
    V2_SIG + b"\x11\x11\x00\x0c" + b"\0" * 12 + REQ,         # version 1 in v2 form
    V2_SIG + b"\x23\x11\x00\x0c" + b"\0" * 12 + REQ,         # command 3
    V2_SIG + b"\x21\x11\x00\x04" + b"\0" * 4 + REQ,          # INET with 4 address bytes
    V2_SIG + b"\x21\x41\x00\x00" + REQ,                      # family 4
    V2_SIG + b"\x21\x11\xff\xff" + b"\0" * 12,               # 64 KB announced: too large
], ids=["none", "three-fields", "bad-address", "v6-in-tcp4", "port-range", "bare-lf",
        "udp4", "no-crlf", "v2-version", "v2-command", "v2-short", "v2-family", "v2-large"])
def test_a_broken_header_closes_the_connection_and_is_logged(rampart, port, data):
    serve_vars(rampart, port)
    since = rampart.log_size()
    _, resp = exchange(port, data)
    assert resp == b""
    rampart.wait_log(r"\[error\] .*broken header: .* while reading PROXY protocol, "
                     rf"client: 127\.0\.0\.2, server: 127\.0\.0\.1:{port}", since=since)


def test_a_partial_header_times_out_at_client_header_timeout(rampart, port):
    serve_vars(rampart, port)
    since = rampart.log_size()
    start = time.monotonic()
    _, resp = exchange(port, b"PROXY TCP4 1.2.3.4 ", timeout=20)
    took = time.monotonic() - start
    assert resp == b""
    assert 1.5 < took < 15, took
    rampart.wait_log(r"client timed out while reading PROXY protocol, client: 127\.0\.0\.2",
                     since=since)


def test_a_client_gone_before_the_header_is_not_an_error(rampart, port):
    serve_vars(rampart, port)
    since = rampart.log_size()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"PROXY ")
    rampart.wait_log(r"\[info\] .*client closed connection while reading PROXY protocol",
                     since=since)
    assert "broken header" not in rampart.log_text()[since:]


# -- configuration --------------------------------------------------------------------------


def test_one_listen_with_proxy_protocol_makes_the_whole_socket_expect_it(rampart, port):
    """nginx's rule: proxy_protocol belongs to the socket, so a second server on the same
    address without the parameter still gets the header first."""
    rampart.configure(f"""
server {{ listen 127.0.0.1:{port} proxy_protocol; server_name a.test;
         location / {{ return 200 "a $proxy_protocol_addr\\n"; }} }}
server {{ listen 127.0.0.1:{port}; server_name b.test;
         location / {{ return 200 "b $proxy_protocol_addr\\n"; }} }}""")
    rampart.start()
    req_b = b"GET / HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n"
    _, resp = exchange(port, b"PROXY TCP4 192.0.2.5 192.0.2.6 1 2\r\n" + req_b)
    assert body_of(resp) == "b 192.0.2.5\n"
    _, resp = exchange(port, req_b)
    assert resp == b""


def test_a_listen_without_proxy_protocol_reads_no_header(rampart, port):
    rampart.configure(f"""
server {{ listen 127.0.0.1:{port};
         location / {{ return 200 "[$proxy_protocol_addr]\\n"; }} }}""")
    rampart.start()
    _, resp = exchange(port, REQ)
    assert body_of(resp) == "[]\n"
