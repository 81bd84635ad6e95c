"""TLS session resumption by tickets: every worker opens every worker's tickets,
ssl_session_tickets off turns them off, ssl_session_ticket_key files survive a
restart and rotate (the first key issues, later ones still open), and keys
derived without files change every ssl_session_timeout.

Each test makes a series of connections, each offering the session of the one
before, and reads $ssl_session_reused from the answers."""
import socket
import ssl
import time

from test_tls import check, line_of

REUSED = '"$ssl_session_reused"'


def server(certs, port, extra=""):
    return (f"server {{\n"
            f"    listen 127.0.0.1:{port} ssl;\n"
            f"    server_name a.test;\n"
            f"    {certs.directives('a.test')}"
            f"    {extra}\n"
            f"    return 200 {REUSED};\n"
            f"}}\n")


def start(rampart, certs, port, extra="", workers=1):
    rampart.configure(server(certs, port, extra), workers=workers)
    rampart.start()


_contexts = {}


def client_context(tls12):
    """One client context per TLS version for the whole run: Python offers a session
    only on the context that received it."""
    if tls12 not in _contexts:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        _contexts[tls12] = ctx
    return _contexts[tls12]


def connect(port, session=None, tls12=False):
    """One request on a new connection offering `session`; returns (reused flag from
    the server, the session to offer next)."""
    ctx = client_context(tls12)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="a.test", session=session) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.partition(b"\r\n\r\n")[2].decode(), s.session


def series(port, n, session=None, tls12=False):
    """n connections, each offering the session of the previous one."""
    flags = []
    for _ in range(n):
        flag, session = connect(port, session, tls12)
        flags.append(flag)
    return flags, session


def key_file(tmp_path, name):
    path = tmp_path / f"{name}.key"
    path.write_bytes(bytes(range(80)) if name == "fixed" else __import__("os").urandom(80))
    return path


def test_every_worker_opens_every_workers_tickets(rampart, certs, port):
    start(rampart, certs, port, workers=2)
    for tls12 in (False, True):
        flags, _ = series(port, 10, tls12=tls12)
        # connections land on either worker (SO_REUSEPORT): all but the first resume
        assert flags == ["."] + ["r"] * 9, (tls12, flags)


def test_session_tickets_off_resumes_nothing(rampart, certs, port):
    start(rampart, certs, port, "ssl_session_tickets off;")
    for tls12 in (False, True):
        flags, _ = series(port, 3, tls12=tls12)
        assert flags == ["."] * 3, (tls12, flags)


def test_ticket_key_file_resumes_across_a_restart(rampart, certs, port, tmp_path):
    key = key_file(tmp_path, "a")
    start(rampart, certs, port, f"ssl_session_ticket_key {key};")
    flags, session = series(port, 2)
    assert flags == [".", "r"]
    rampart.stop()
    rampart.proc = None
    rampart.start()
    assert connect(port, session)[0] == "r"


def test_without_a_key_file_a_restart_ends_the_old_tickets(rampart, certs, port):
    start(rampart, certs, port)
    flags, session = series(port, 2)
    assert flags == [".", "r"]
    rampart.stop()
    rampart.proc = None
    rampart.start()
    assert connect(port, session)[0] == "."


def test_rotated_key_still_opens_old_tickets_until_it_is_dropped(rampart, certs, port, tmp_path):
    old, new = key_file(tmp_path, "old"), key_file(tmp_path, "new")
    start(rampart, certs, port, f"ssl_session_ticket_key {old};")
    _, session = series(port, 1)
    # the new key issues, the old one still opens: resumed
    rampart.configure(server(certs, port, f"ssl_session_ticket_key {new};\n"
                                          f"    ssl_session_ticket_key {old};"))
    rampart.reload()
    flag, renewed = connect(port, session)
    assert flag == "r"
    # the old key gone: its tickets no longer open, but the one renewed under the new key does
    rampart.configure(server(certs, port, f"ssl_session_ticket_key {new};"))
    rampart.reload()
    assert connect(port, session)[0] == "."
    assert connect(port, renewed)[0] == "r"


def test_derived_keys_expire_after_two_session_timeouts(rampart, certs, port):
    start(rampart, certs, port, "ssl_session_timeout 1s;")
    flags, session = series(port, 2, tls12=True)
    assert flags == [".", "r"]
    time.sleep(2.5)  # two key epochs later
    assert connect(port, session, tls12=True)[0] == "."


def test_ticket_key_file_of_the_wrong_size_is_an_error(conf_dir, certs, port, tmp_path):
    bad = tmp_path / "short.key"
    bad.write_bytes(b"x" * 48)
    path, text, p = check(conf_dir, server(certs, port, f"ssl_session_ticket_key {bad};"))
    assert p.returncode != 0
    assert f"{path}:{line_of(text, 'ssl_session_ticket_key')}" in p.stderr
    assert "must hold exactly 80 bytes" in p.stderr


def test_missing_ticket_key_file_is_an_error(conf_dir, certs, port, tmp_path):
    missing = tmp_path / "nowhere.key"
    path, text, p = check(conf_dir, server(certs, port, f"ssl_session_ticket_key {missing};"))
    assert p.returncode != 0
    assert f"{path}:{line_of(text, 'ssl_session_ticket_key')}" in p.stderr
    assert str(missing) in p.stderr
