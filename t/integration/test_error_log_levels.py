"""error_log in http, server and location, as nginx: a request's messages go to its
level's error_log (every line of that level, each at its own threshold) and only there;
the main context's error_log keeps the process's messages and the requests of levels
that set none."""

import os
import signal
import socket

import harness
from harness import get, wait_for


def file_has(path, text):
    return path.exists() and text in path.read_text()


def test_a_locations_error_log_gets_its_messages_and_the_main_log_does_not(rampart, port):
    loc = rampart.prefix / "logs" / "loc.log"
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location /closed {{ error_log logs/loc.log info; deny all; }}
            location /open {{ deny all; }}
        }}""")
    rampart.start()
    assert get(port, "/closed").status == 403
    wait_for(lambda: file_has(loc, "access forbidden by rule"), what="the location's line")
    assert "access forbidden by rule" not in rampart.log_text()
    # a location without its own still logs to the main log
    assert get(port, "/open").status == 403
    rampart.wait_log(r'access forbidden by rule.*"GET /open"')
    assert "/open" not in loc.read_text()


def test_a_servers_error_log_applies_to_its_locations_without_their_own(rampart, port):
    srv = rampart.prefix / "logs" / "srv.log"
    loc = rampart.prefix / "logs" / "loc.log"
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            error_log logs/srv.log;
            location /a {{ deny all; }}
            location /b {{ error_log logs/loc.log; deny all; }}
        }}""")
    rampart.start()
    assert get(port, "/a").status == 403
    assert get(port, "/b").status == 403
    wait_for(lambda: file_has(srv, '"GET /a"') and file_has(loc, '"GET /b"'),
             what="each location's line in its own file")
    assert '"GET /b"' not in srv.read_text()
    assert '"GET /a"' not in loc.read_text()
    assert "access forbidden" not in rampart.log_text()


def test_every_error_log_of_a_level_receives_at_its_own_level(rampart, port):
    one = rampart.prefix / "logs" / "one.log"
    two = rampart.prefix / "logs" / "two.log"
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            error_log logs/one.log error;
            error_log logs/two.log info;
            location / {{ deny all; }}
        }}""")
    rampart.start()
    harness.raw_exchange(port, b"NOT-HTTP\x01\r\n\r\n")  # logged at info
    assert get(port, "/").status == 403  # logged at error
    wait_for(lambda: file_has(one, "access forbidden") and file_has(two, "access forbidden"),
             what="the error in both files")
    wait_for(lambda: file_has(two, "client sent a bad request"), what="the info line")
    assert "client sent a bad request" not in one.read_text()
    assert "access forbidden" not in rampart.log_text()


def test_levels_filter_and_crit_hides_an_error(rampart, port):
    quiet = rampart.prefix / "logs" / "quiet.log"
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location /quiet {{ error_log logs/quiet.log crit; deny all; }}
            location /loud {{ deny all; }}
        }}""")
    rampart.start()
    assert get(port, "/quiet").status == 403
    assert get(port, "/loud").status == 403  # logged after /quiet's would have been
    rampart.wait_log(r'"GET /loud"')
    assert "/quiet" not in rampart.log_text()
    assert quiet.exists() and quiet.read_text() == ""


def test_an_upstream_connect_failure_goes_to_the_locations_log(rampart, port):
    loc = rampart.prefix / "logs" / "up.log"
    dead = harness.free_port()
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ error_log logs/up.log; proxy_pass http://127.0.0.1:{dead}; }}
        }}""")
    rampart.start()
    assert get(port, "/").status == 502
    wait_for(lambda: file_has(loc, "connect() failed"), what="the failure in the location's log")
    assert "connect() failed" not in rampart.log_text()


def test_usr1_reopens_a_locations_error_log(rampart, port):
    loc = rampart.prefix / "logs" / "loc.log"
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ error_log logs/loc.log; deny all; }}
        }}""", workers=2)
    rampart.start()
    rampart.wait_processes(2)
    rotated = loc.with_name("loc.log.1")
    os.rename(loc, rotated)
    rampart.signal(signal.SIGUSR1)
    pids = [rampart.pid] + rampart.children()
    wait_for(lambda: loc.exists() and
             not any(str(rotated) in harness.fd_targets(p) for p in pids),
             what="every process to reopen the location's log")
    assert get(port, "/").status == 403
    wait_for(lambda: file_has(loc, "access forbidden by rule"), what="the line in the new file")
    assert "access forbidden" not in rotated.read_text()


def test_the_same_file_at_several_levels_is_opened_once(rampart, port):
    rampart.configure(f"""
        error_log logs/shared.log warn;
        server {{
            listen 127.0.0.1:{port};
            error_log logs/shared.log;
            location / {{ error_log logs/shared.log info; return 200 "ok"; }}
        }}""")
    rampart.start()
    shared = str(rampart.prefix / "logs" / "shared.log")
    assert list(harness.fd_targets(rampart.pid)).count(shared) == 1


def test_a_bad_level_is_refused_with_file_and_line(rampart, port):
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ error_log logs/x.log loud; }}
        }}""")
    p = harness.run("-t", "-p", rampart.prefix, "-c", "rampart.conf")
    assert p.returncode != 0
    assert 'invalid log level "loud"' in p.stderr
    line = rampart.conf_text.splitlines().index("            location / {{ error_log logs/x.log loud; }}".replace("{{", "{").replace("}}", "}")) + 1
    assert f"rampart.conf:{line}" in p.stderr


def test_an_upstream_timeout_event_logs_to_the_locations_log(rampart, port):
    """The timeout fires from the upstream connection's own event, outside the phases."""
    loc = rampart.prefix / "logs" / "up.log"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nothing ever answers
    try:
        rampart.configure(f"""
            server {{
                listen 127.0.0.1:{port};
                location / {{
                    error_log logs/up.log;
                    proxy_read_timeout 300ms;
                    proxy_pass http://127.0.0.1:{silent.getsockname()[1]};
                }}
            }}""")
        rampart.start()
        assert get(port, "/").status == 504
        wait_for(lambda: file_has(loc, "upstream timed out"), what="the timeout in the location's log")
        assert "upstream timed out" not in rampart.log_text()
    finally:
        silent.close()


def test_an_http2_upstreams_failure_goes_to_the_locations_log(rampart, port):
    """grpc_pass runs on the HTTP/2 upstream sessions, whose events notify the stream."""
    loc = rampart.prefix / "logs" / "grpc.log"
    dead = harness.free_port()
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ error_log logs/grpc.log; grpc_pass grpc://127.0.0.1:{dead}; }}
        }}""")
    rampart.start()
    get(port, "/")  # a gRPC answer: 200 with grpc-status 14 (unavailable)
    wait_for(lambda: file_has(loc, "connect() failed"), what="the failure in the location's log")
    assert "connect() failed" not in rampart.log_text()


def test_a_reload_moves_a_locations_messages_to_the_new_file(rampart, port):
    old = rampart.prefix / "logs" / "old.log"
    new = rampart.prefix / "logs" / "new.log"
    conf = f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ error_log logs/LOG.log; deny all; }}
        }}"""
    rampart.configure(conf.replace("LOG", "old"))
    rampart.start()
    assert get(port, "/first").status == 403
    wait_for(lambda: file_has(old, '"GET /first"'), what="the line in the first file")
    rampart.configure(conf.replace("LOG", "new"))
    rampart.reload()
    wait_for(lambda: new.exists(), what="the new file, opened by the master")
    assert get(port, "/second").status == 403
    wait_for(lambda: file_has(new, '"GET /second"'), what="the line in the new file")
    assert '"GET /second"' not in old.read_text()
