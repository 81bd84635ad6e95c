"""The `user` directive: a master running as root keeps root (it binds, reads keys,
reopens logs) and its workers and helper run as the named user, with no capability
left and no way back; they still serve, log, reload and reopen their logs on USR1.

The tests run as root (here and in CI). Each rampart runs from a prefix that other
users may traverse: pytest's tmp_path is under a 0700 folder, which a worker running
as nobody could not reach to reopen its logs.
"""

import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def open_prefix(request):
    """A harness.Rampart whose prefix (mode 0755 under /tmp) any user may traverse."""
    made = []

    def make():
        d = Path(tempfile.mkdtemp(prefix="rampart-user-"))
        d.chmod(0o755)
        r = harness.Rampart(d)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()
    problems = [p for r in made if r.proc for p in r.problems()]
    for r in made:
        shutil.rmtree(r.prefix, ignore_errors=True)
    assert not problems, problems


def status(pid):
    """The fields of /proc/PID/status as a dict of strings."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def ids(pid, field):
    return [int(x) for x in status(pid)[field].split()]


def start(r, user="nobody", workers=2, extra_http=""):
    port = harness.free_port()
    r.configure(workers=workers, main=f"user {user};" if user else "", http=f"""
        access_log logs/access.log;
        server {{
            listen 127.0.0.1:{port};
            location / {{ return 200 "served by $pid\\n"; }}
            {extra_http}
        }}""")
    r.start()
    return port


def assert_unprivileged(pid, uid, gid):
    # a child is counted as soon as it is forked: wait until it has changed its user
    # (which it does before anything else), then look at everything
    try:
        harness.wait_for(lambda: ids(pid, "Uid")[0] != 0, timeout=10,
                         what=f"{pid} to change its user")
    except harness.RampartError:
        pass  # the assertions below say what is wrong
    st = status(pid)
    assert ids(pid, "Uid") == [uid] * 4, st["Uid"]
    assert ids(pid, "Gid") == [gid] * 4, st["Gid"]
    assert 0 not in ids(pid, "Groups"), st["Groups"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1"


def test_workers_and_helper_run_as_user_while_master_stays_root(open_prefix):
    r = open_prefix()
    port = start(r)
    workers, helpers = r.wait_processes(2, 1)
    for pid in workers + helpers:
        assert_unprivileged(pid, NOBODY.pw_uid, NOBODY.pw_gid)
    assert ids(r.pid, "Uid") == [0, 0, 0, 0]
    assert int(status(r.pid)["CapEff"], 16) != 0  # the master keeps what it needs
    resp = harness.get(port, "/")
    assert resp.status == 200
    served_by = int(resp.body.split()[-1])
    assert served_by in workers
    harness.wait_for(lambda: "GET / HTTP/1.1" in (r.prefix / "logs/access.log").read_text(),
                     what="the request in the access log")


def test_group_argument_sets_the_workers_group(open_prefix):
    r = open_prefix()
    daemon_gid = grp.getgrnam("daemon").gr_gid
    start(r, user="nobody daemon", workers=1)
    workers, helpers = r.wait_processes(1, 1)
    for pid in workers + helpers:
        assert_unprivileged(pid, NOBODY.pw_uid, daemon_gid)


def test_without_user_directive_workers_keep_the_masters_user(open_prefix):
    r = open_prefix()
    start(r, user=None, workers=1)
    workers, _ = r.wait_processes(1, 1)
    assert ids(workers[0], "Uid") == [0, 0, 0, 0]


def test_reload_starts_new_workers_as_the_user(open_prefix):
    r = open_prefix()
    port = start(r)
    old, _ = r.wait_processes(2, 1)
    r.configure(text=r.conf_text.replace("served by", "reloaded, served by"))
    assert "configuration reloaded" in r.reload().group(0)
    new, helpers = r.wait_processes(2, 1, exclude=old)
    for pid in new + helpers:
        assert_unprivileged(pid, NOBODY.pw_uid, NOBODY.pw_gid)
    assert harness.get(port, "/").body.startswith(b"reloaded, served by")


def test_usr1_after_rotation_writes_to_new_files_owned_by_the_user(open_prefix):
    r = open_prefix()
    port = start(r)
    logs = r.prefix / "logs"
    assert harness.get(port, "/before").status == 200
    harness.wait_for(lambda: "/before" in (logs / "access.log").read_text(),
                     what="/before in the access log")
    os.rename(logs / "access.log", logs / "access.log.1")
    os.rename(logs / "error.log", logs / "error.log.1")
    r.error_log = logs / "error.log"
    os.kill(r.pid, signal.SIGUSR1)
    harness.wait_for(lambda: (logs / "access.log").exists() and (logs / "error.log").exists(),
                     what="the master reopening the logs")

    # the master reopens first, then signals the workers: each says so in the new log
    harness.wait_for(lambda: r.log_text().count("logs reopened") == 2,
                     what="both workers reopening their logs")
    for i in range(20):
        assert harness.get(port, f"/after{i}").status == 200
    harness.wait_for(lambda: (logs / "access.log").read_text().count("/after") == 20,
                     what="every request after USR1 in the new access log")
    assert "/after" not in (logs / "access.log.1").read_text()
    assert (logs / "access.log").stat().st_uid == NOBODY.pw_uid
    assert (logs / "error.log").stat().st_uid == NOBODY.pw_uid
    # a worker that could not reopen says so in whichever error log it still has
    both = (logs / "error.log").read_text() + (logs / "error.log.1").read_text()
    assert "reopening" not in both, both


def test_unknown_user_is_refused_with_file_and_line(tmp_path):
    conf = tmp_path / "rampart.conf"
    conf.write_text("worker_processes 1;\nuser no_such_user_rp;\n")
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1
    assert f'{conf}:2: "user": unknown user "no_such_user_rp"' in p.stderr


def test_unknown_group_is_refused_with_file_and_line(tmp_path):
    conf = tmp_path / "rampart.conf"
    conf.write_text("user nobody no_such_group_rp;\n")
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1
    assert f'{conf}:1: "user": unknown group "no_such_group_rp"' in p.stderr


def test_user_outside_the_main_context_is_refused(tmp_path):
    conf = tmp_path / "rampart.conf"
    conf.write_text("http {\n    user nobody;\n}\n")
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1
    assert f'{conf}:2: "user": not allowed in the http context' in p.stderr


def test_user_is_ignored_with_a_warning_when_the_master_is_not_root():
    d = Path(tempfile.mkdtemp(prefix="rampart-user-"))
    try:
        d.chmod(0o755)
        (d / "rampart.conf").write_text("user daemon;\n")
        p = subprocess.run(["setpriv", f"--reuid={NOBODY.pw_uid}", f"--regid={NOBODY.pw_gid}",
                            "--clear-groups", str(harness.BIN), "-t", "-p", str(d), "-c",
                            "rampart.conf"], capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        assert (f'{d}/rampart.conf:1: "user": the master process does not run as root, ignored'
                in p.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls_key_only_root_may_read_serves_through_unprivileged_workers(open_prefix, certs):
    r = open_prefix()
    key = r.prefix / "a.key"
    shutil.copy(certs.key("a.test"), key)
    key.chmod(0o600)  # root's: the master reads it, the workers never need to
    port = harness.free_port()
    r.configure(workers=2, main="user nobody;", http=f"""
        server {{
            listen 127.0.0.1:{port} ssl;
            server_name a.test;
            ssl_certificate {certs.cert("a.test")};
            ssl_certificate_key {key};
            location / {{ return 200 "tls by $pid\\n"; }}
        }}""")
    r.start()
    workers, _ = r.wait_processes(2, 1)
    for pid in workers:
        assert_unprivileged(pid, NOBODY.pw_uid, NOBODY.pw_gid)
    p = subprocess.run(["curl", "-sS", "--cacert", str(certs.ca), "--resolve",
                        f"a.test:{port}:127.0.0.1", f"https://a.test:{port}/"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("tls by ") and int(p.stdout.split()[-1]) in workers
