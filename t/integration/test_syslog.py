"""`access_log syslog:...` and `error_log syslog:...`: nginx's parameters (server= a
UDP address or unix:PATH, facility=, severity=, tag=, nohostname), messages in RFC 5424
form (nginx sends RFC 3164), one datagram per line, received here by a UDP socket and
a Unix datagram socket of the test. util-linux's `logger --rfc5424` is the
cross-check that the parser the tests read with takes a standard message. A receiver
that is gone or never reads costs lines, never a request.
"""

import re
import socket
import time

import pytest

from harness import request, run, wait_for

# <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
RFC5424 = re.compile(
    rb"<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) "
    rb"(\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) (-|\[.*?\]) (.*)", re.S)
TIMESTAMP_MS = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d")


def parse(datagram):
    m = RFC5424.fullmatch(datagram)
    assert m, f"not an RFC 5424 message: {datagram!r}"
    pri, ts, host, app, procid, msgid, sd, msg = m.groups()
    return {"facility": int(pri) // 8, "severity": int(pri) % 8, "timestamp": ts,
            "host": host.decode(), "app": app.decode(), "procid": procid.decode(),
            "msgid": msgid.decode(), "sd": sd.decode(), "msg": msg}


@pytest.fixture
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10)
    yield s
    s.close()


@pytest.fixture
def unix_sock(tmp_path):
    path = tmp_path / "syslog.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(10)
    yield s, path
    s.close()


def serve(rampart, port, access_log, http="", main=""):
    rampart.configure(f"log_format plain '$request_method $uri $status';\n{http}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n {access_log}\n"
                      f" location / {{ return 200 'ok'; }}\n}}", main=main)
    rampart.start()


def test_access_log_to_udp_is_an_rfc5424_message_with_facility_severity_and_tag(
        rampart, port, udp):
    addr = udp.getsockname()
    serve(rampart, port, f"access_log syslog:server={addr[0]}:{addr[1]},facility=local3,"
                         f"severity=notice,tag=edge_1 plain;")
    assert request(port, "/hello").status == 200
    m = parse(udp.recv(65536))
    assert (m["facility"], m["severity"]) == (19, 5)  # <157>
    assert m["host"] == socket.gethostname()
    assert m["app"] == "edge_1"
    workers, _ = rampart.roles()
    assert int(m["procid"]) in workers
    assert (m["msgid"], m["sd"]) == ("-", "-")
    assert TIMESTAMP_MS.fullmatch(m["timestamp"])
    assert m["msg"] == b"GET /hello 200"  # no newline


def test_access_log_to_a_unix_socket_with_defaults_and_nohostname(rampart, port, unix_sock):
    s, path = unix_sock
    serve(rampart, port, f"access_log syslog:server=unix:{path},nohostname plain;")
    request(port, "/x")
    data = s.recv(65536)
    assert data.startswith(b"<190>1 ")  # local7.info, nginx's defaults
    m = parse(data)
    assert (m["host"], m["app"], m["msg"]) == ("-", "rampart", b"GET /x 200")


def test_syslog_access_log_honours_if_and_escaping(rampart, port, udp):
    addr = udp.getsockname()
    serve(rampart, port,
          f"access_log syslog:server={addr[0]}:{addr[1]} js if=$arg_log;",
          http="log_format js escape=json '{\"ua\":\"$http_user_agent\",\"u\":\"$uri\"}';")
    request(port, "/skipped")
    request(port, "/kept?log=1", headers={"User-Agent": 'a"b\\c\tü'.encode()})
    m = parse(udp.recv(65536))  # the first datagram is the second request's
    assert m["msg"] == '{"ua":"a\\"b\\\\c\\tü","u":"/kept"}'.encode()


def test_a_receiver_that_never_reads_costs_lines_not_requests(rampart, port, tmp_path):
    path = tmp_path / "full.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))  # never read: its queue fills after a few datagrams
    try:
        serve(rampart, port, f"access_log syslog:server=unix:{path} plain;")
        start = time.monotonic()
        for i in range(200):
            assert request(port, f"/{i}").status == 200
        assert time.monotonic() - start < 60  # no request waited on the full receiver
        rampart.wait_log(r"sendto\(\) to syslog server \"unix:.*\" failed, a line of access "
                         r"log dropped \(11: ")
    finally:
        s.close()


def test_a_receiver_that_is_gone_is_found_again_when_it_comes_back(rampart, port, tmp_path):
    path = tmp_path / "later.sock"
    serve(rampart, port, f"access_log syslog:server=unix:{path} plain;")
    assert request(port, "/lost").status == 200  # nobody listens: the line is lost
    rampart.wait_log(r"sendto\(\) to syslog server .* failed")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(10)
    try:
        request(port, "/found")
        assert parse(s.recv(65536))["msg"] == b"GET /found 200"
    finally:
        s.close()


def test_error_log_to_syslog_uses_the_level_as_severity(rampart, port, unix_sock):
    s, path = unix_sock
    text = rampart.render(f"server {{ listen 127.0.0.1:{port}; access_log off; }}")
    rampart.configure(text=text.replace(
        "error_log logs/error.log info;", f"error_log syslog:server=unix:{path},tag=rp notice;"))
    rampart.start()
    m = None
    while True:
        m = parse(s.recv(65536))
        if b"started" in m["msg"]:
            break
    assert (m["facility"], m["severity"], m["app"]) == (23, 5, "rp")  # notice
    assert re.fullmatch(rb"\[notice\] \d+#0: started 1 worker processes and a helper .*",
                        m["msg"]), m["msg"]
    assert int(m["procid"]) == rampart.proc.pid


def test_logger_rfc5424_messages_read_the_same_way(udp):
    """The parser above against util-linux's logger, so it is the standard's, not ours."""
    addr = udp.getsockname()
    p = run_logger(["-d", "-n", addr[0], "-P", str(addr[1]), "--rfc5424=notq",
                    "-p", "local3.notice", "-t", "edge_1", "GET /hello 200"])
    assert p.returncode == 0, p.stderr
    m = parse(udp.recv(65536))
    assert (m["facility"], m["severity"], m["app"], m["msg"]) == \
        (19, 5, "edge_1", b"GET /hello 200")


def run_logger(args):
    import subprocess
    return subprocess.run(["logger", *args], capture_output=True, text=True, timeout=10)


@pytest.mark.parametrize("spec,message", [
    ("syslog:server=127.0.0.1,facility=bogus", 'unknown syslog facility "bogus"'),
    ("syslog:server=127.0.0.1,severity=loud", 'unknown syslog severity "loud"'),
    ("syslog:server=127.0.0.1,tag=a-b", 'syslog "tag" only allows alphanumeric characters '
                                        'and underscore'),
    ("syslog:facility=user", "no syslog server specified"),
    ("syslog:server=127.0.0.1:99999", 'invalid syslog server "127.0.0.1:99999"'),
    ("syslog:server=127.0.0.1,bogus", 'unknown syslog parameter "bogus"'),
    ("syslog:server=127.0.0.1 combined buffer=4k", "logs to syslog cannot be buffered"),
])
def test_bad_syslog_access_log_is_refused_at_its_line(conf_dir, spec, message):
    (conf_dir / "rampart.conf").write_text(
        f"pid logs/rampart.pid;\nhttp {{\n access_log {spec};\n}}\n")
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == \
        f'rampart: {conf_dir}/rampart.conf:3: "access_log": {message}'


def test_bad_syslog_error_log_is_refused_at_its_line(conf_dir):
    (conf_dir / "rampart.conf").write_text(
        "pid logs/rampart.pid;\nerror_log syslog:server=unix:/x,facility=nope;\n")
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == \
        f'rampart: {conf_dir}/rampart.conf:2: "error_log": unknown syslog facility "nope"'
