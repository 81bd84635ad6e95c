"""TLS session resumption.

By tickets: every worker opens every worker's tickets, ssl_session_tickets off
turns them off, ssl_session_ticket_key files survive a restart and rotate (the
first key issues, later ones still open), and keys derived without files change
every ssl_session_timeout.

By the shared session cache (ssl_session_cache shared:NAME:SIZE): with tickets
off, a session resumes on whichever worker a connection lands, by session ID in
TLS 1.2 and by "stateful" ticket in TLS 1.3; off and none keep nothing; the zone
survives a reload that keeps its name and size, and starts empty when the size
changes; a zone too small for the traffic evicts its oldest sessions; servers
sharing a zone never resume each other's sessions; and a malformed directive is
an error naming its file and line.

Each test makes a series of connections, each offering the session of the one
before, and reads $ssl_session_reused (and $pid, to see which worker answered)
from the answers."""
import socket
import ssl
import time

import pytest

from test_tls import check, line_of

REUSED = '"$ssl_session_reused"'


def server(certs, port, extra="", name="a.test", body=REUSED):
    return (f"server {{\n"
            f"    listen 127.0.0.1:{port} ssl;\n"
            f"    server_name {name};\n"
            f"    {certs.directives(name)}"
            f"    {extra}\n"
            f"    return 200 {body};\n"
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


def connect(port, session=None, tls12=False, sni="a.test"):
    """One request on a new connection offering `session`; returns (the body, which
    starts with the reused flag from the server, the session to offer next)."""
    ctx = client_context(tls12)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname=sni, session=session) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: " + sni.encode() +
                  b"\r\nConnection: close\r\n\r\n")
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


# -- the shared session cache ---------------------------------------------------

WHO = '"$ssl_session_reused $pid"'
CACHED = "ssl_session_tickets off;\n    ssl_session_cache shared:SSL:1m;"
VERSIONS = [pytest.param(True, id="tls1.2"), pytest.param(False, id="tls1.3")]


def start_cached(rampart, certs, port, extra=CACHED, workers=2):
    rampart.configure(server(certs, port, extra, body=WHO), workers=workers)
    rampart.start()


def who_series(port, n, session=None, tls12=False, sni="a.test"):
    """n connections, each offering the session of the one before; returns
    ([(reused flag, worker pid)], the last session)."""
    out = []
    for _ in range(n):
        body, session = connect(port, session, tls12, sni)
        flag, pid = body.split()
        out.append((flag, int(pid)))
    return out, session


def zone_mappings(pid):
    """Sizes of the shared memory zones a process maps (memfd segments named
    "rampart:ZONE", kept as descriptors for the binary upgrade)."""
    sizes = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 6 and fields[5].startswith("/memfd:rampart:") and "s" in fields[1]:
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                sizes.append(hi - lo)
    return sorted(sizes)


@pytest.mark.parametrize("tls12", VERSIONS)
def test_shared_cache_resumes_a_session_on_every_worker(rampart, certs, port, tls12):
    start_cached(rampart, certs, port)
    answers, _ = who_series(port, 24, tls12=tls12)
    assert [flag for flag, _ in answers] == ["."] + ["r"] * 23, answers
    # SO_REUSEPORT spreads connections by their source port: 24 on one worker would be
    # a 1 in 8 million chance
    assert len({pid for _, pid in answers}) == 2, answers


@pytest.mark.parametrize("tls12", VERSIONS)
@pytest.mark.parametrize("cache", ["off", "none"])
def test_without_a_shared_cache_nothing_resumes_when_tickets_are_off(rampart, certs, port,
                                                                      cache, tls12):
    start_cached(rampart, certs, port, f"ssl_session_tickets off;\n    ssl_session_cache {cache};")
    answers, _ = who_series(port, 4, tls12=tls12)
    assert [flag for flag, _ in answers] == ["."] * 4, answers


def test_none_is_the_default_and_off_tells_the_client_not_to_resume(rampart_factory, certs,
                                                                     free_port):
    # TLS 1.2's ServerHello: a session ID the client may offer (none, the default), or an
    # empty one that says the session will not be resumed (off)
    ids = {}
    for cache in ("", "ssl_session_cache none;", "ssl_session_cache off;"):
        r = rampart_factory(f"r{len(ids)}")
        p = free_port()
        r.configure(server(certs, p, f"ssl_session_tickets off;\n    {cache}"))
        r.start()
        _, session = connect(p, tls12=True)
        ids[cache] = len(session.id)
        r.stop()
    assert ids == {"": 32, "ssl_session_cache none;": 32, "ssl_session_cache off;": 0}


@pytest.mark.parametrize("tls12", VERSIONS)
@pytest.mark.parametrize("cache", ["off", "none", "shared:SSL:1m"])
def test_tickets_resume_whatever_the_session_cache(rampart, certs, port, cache, tls12):
    start_cached(rampart, certs, port, f"ssl_session_cache {cache};")
    answers, _ = who_series(port, 6, tls12=tls12)
    assert [flag for flag, _ in answers] == ["."] + ["r"] * 5, answers


@pytest.mark.parametrize("tls12", VERSIONS)
def test_sessions_survive_a_reload_that_keeps_the_zone(rampart, certs, port, tls12):
    start_cached(rampart, certs, port)
    answers, session = who_series(port, 2, tls12=tls12)
    assert [flag for flag, _ in answers] == [".", "r"]
    old_workers, _ = rampart.wait_processes(2)
    # another configuration, the same zone
    rampart.configure(server(certs, port, CACHED + "\n    add_header X-Generation 2;", body=WHO),
                      workers=2)
    assert "configuration reloaded" in rampart.reload().group(0)
    rampart.wait_processes(2, exclude=old_workers)
    rampart.wait_log(r'zone "SSL" is kept from the previous configuration')
    answers, _ = who_series(port, 4, session, tls12=tls12)
    assert [flag for flag, _ in answers] == ["r"] * 4, answers
    assert not {pid for _, pid in answers} & set(old_workers)


def test_a_reload_that_resizes_the_zone_starts_it_empty(rampart, certs, port):
    start_cached(rampart, certs, port)
    answers, session = who_series(port, 2, tls12=True)
    assert [flag for flag, _ in answers] == [".", "r"]
    old_workers, _ = rampart.wait_processes(2)
    rampart.configure(server(certs, port, CACHED.replace(":1m", ":2m"), body=WHO), workers=2)
    assert "configuration reloaded" in rampart.reload().group(0)
    rampart.wait_processes(2, exclude=old_workers)
    answers, _ = who_series(port, 2, session, tls12=True)
    assert [flag for flag, _ in answers] == [".", "r"], answers


def test_a_zone_dropped_by_a_reload_is_unmapped_when_its_workers_are_gone(rampart, certs, port):
    start_cached(rampart, certs, port)
    assert zone_mappings(rampart.pid) == [1024 * 1024]
    old_workers, _ = rampart.wait_processes(2)
    rampart.configure(server(certs, port, CACHED.replace(":1m", ":2m"), body=WHO), workers=2)
    assert "configuration reloaded" in rampart.reload().group(0)
    new_workers, _ = rampart.wait_processes(2, exclude=old_workers)
    rampart.wait_log(r"generation 0 has drained")
    assert zone_mappings(rampart.pid) == [2 * 1024 * 1024]
    for pid in new_workers:
        assert zone_mappings(pid) == [2 * 1024 * 1024]


@pytest.mark.parametrize("tls12", VERSIONS)
def test_a_tiny_zone_evicts_old_sessions_and_the_newest_resumes(rampart, certs, port, tls12):
    start_cached(rampart, certs, port, "ssl_session_tickets off;\n    ssl_session_cache shared:S:16k;")
    sessions = []
    for _ in range(150):  # well over what 16k holds (some thirty sessions)
        body, session = connect(port, None, tls12)
        assert body.split()[0] == "."
        sessions.append(session)
    assert connect(port, sessions[-1], tls12)[0].split()[0] == "r"
    assert connect(port, sessions[0], tls12)[0].split()[0] == "."
    # and it goes on working
    answers, _ = who_series(port, 6, tls12=tls12)
    assert [flag for flag, _ in answers] == ["."] + ["r"] * 5, answers


def test_servers_sharing_a_zone_never_resume_each_others_sessions(rampart, certs, port):
    http = (f"ssl_session_tickets off;\nssl_session_cache shared:SSL:1m;\n"
            + server(certs, port, name="a.test", body=WHO)
            + server(certs, port, name="b.test", body=WHO))
    rampart.configure(http, workers=2)
    rampart.start()
    _, a_session = who_series(port, 1, tls12=True, sni="a.test")
    _, b_session = who_series(port, 1, tls12=True, sni="b.test")
    assert connect(port, a_session, True, sni="b.test")[0].split()[0] == "."
    assert connect(port, b_session, True, sni="a.test")[0].split()[0] == "."
    assert connect(port, a_session, True, sni="a.test")[0].split()[0] == "r"
    assert connect(port, b_session, True, sni="b.test")[0].split()[0] == "r"


@pytest.mark.parametrize("tls12", VERSIONS)
def test_a_server_chosen_by_sni_keeps_its_cache_behind_a_default_server_without(
        rampart, certs, port, tls12):
    # The handshake starts before SNI is read: what the default server says about
    # sessions (off, tickets off) must not decide for b.test.
    http = ("ssl_session_tickets off;\n"
            + server(certs, port, "ssl_session_cache off;", name="a.test", body=WHO)
            + server(certs, port, "ssl_session_cache shared:B:1m;", name="b.test", body=WHO))
    rampart.configure(http, workers=2)
    rampart.start()
    answers, _ = who_series(port, 6, tls12=tls12, sni="b.test")
    assert [flag for flag, _ in answers] == ["."] + ["r"] * 5, answers
    answers, _ = who_series(port, 3, tls12=tls12, sni="a.test")
    assert [flag for flag, _ in answers] == ["."] * 3, answers


@pytest.mark.parametrize("tls12", VERSIONS)
def test_a_server_chosen_by_sni_keeps_its_tickets_behind_a_default_server_without(
        rampart, certs, port, tls12):
    # Ticket keys too come from the context the handshake started on: b.test's tickets
    # open on every worker even though the default server has tickets off.
    http = (server(certs, port, "ssl_session_tickets off;", name="a.test", body=WHO)
            + server(certs, port, name="b.test", body=WHO))
    rampart.configure(http, workers=2)
    rampart.start()
    answers, _ = who_series(port, 16, tls12=tls12, sni="b.test")
    assert [flag for flag, _ in answers] == ["."] + ["r"] * 15, answers
    assert len({pid for _, pid in answers}) == 2, answers


def test_a_server_can_turn_off_the_cache_it_inherits(rampart, certs, port):
    http = (f"ssl_session_tickets off;\nssl_session_cache shared:SSL:1m;\n"
            + server(certs, port, "ssl_session_cache none;", name="a.test", body=WHO)
            + server(certs, port, name="b.test", body=WHO))
    rampart.configure(http)
    rampart.start()
    flags = [flag for flag, _ in who_series(port, 3, tls12=True, sni="a.test")[0]]
    assert flags == ["."] * 3
    flags = [flag for flag, _ in who_series(port, 3, tls12=True, sni="b.test")[0]]
    assert flags == [".", "r", "r"]


@pytest.mark.parametrize("value,message", [
    ("shared:X", 'invalid value "shared:X": expected shared:NAME:SIZE'),
    ("shared:X:abc", 'invalid zone size "abc" in "shared:X:abc"'),
    ("shared::1m", 'invalid value "shared::1m": the zone has no name'),
    ("shared:X:8k", 'zone "X" is too small: 8k, at least 16k'),
    ("shared:X:", 'invalid zone size "" in "shared:X:"'),
    ("builtin", '"builtin" is not supported'),
    ("builtin:1000 shared:X:1m", '"builtin:1000" is not supported'),
    ("shared:X:1m shared:Y:1m", '"shared:Y:1m": a server keeps its sessions in one zone only'),
    ("none shared:X:1m", '"none" cannot be combined with other values'),
    ("on", 'invalid value "on" (off, none or shared:NAME:SIZE)'),
    ("shared:X:3g", 'zone "X" is too large: 3g, at most 2g'),
])
def test_a_malformed_session_cache_is_an_error(conf_dir, certs, port, value, message):
    path, text, p = check(conf_dir, server(certs, port, f"ssl_session_cache {value};"))
    assert p.returncode != 0
    where = f"{path}:{line_of(text, 'ssl_session_cache')}"
    assert f'{where}: "ssl_session_cache": {message}' in p.stderr, p.stderr
    assert "test failed" in p.stderr


def test_one_zone_name_with_two_sizes_is_an_error(conf_dir, certs, port):
    http = (server(certs, port, "ssl_session_cache shared:SSL:1m;", name="a.test")
            + server(certs, port, "ssl_session_cache shared:SSL:2m;", name="b.test"))
    path, text, p = check(conf_dir, http)
    assert p.returncode != 0
    first = line_of(text, "shared:SSL:1m")
    second = line_of(text, "shared:SSL:2m")
    assert (f'{path}:{second}: "ssl_session_cache": zone "SSL" of size 2m is already declared '
            f'with size 1m in {path}:{first}') in p.stderr, p.stderr


def test_one_zone_shared_by_several_servers_at_one_size_is_fine(conf_dir, certs, port):
    http = (server(certs, port, "ssl_session_cache shared:SSL:1m;", name="a.test")
            + server(certs, port, "ssl_session_cache shared:SSL:1024k;", name="b.test"))
    _, _, p = check(conf_dir, http)
    assert p.returncode == 0, p.stderr
