"""make install and the service files: the binary, the default configuration, the
manual pages, the systemd unit and the logrotate snippet go where --prefix,
--sysconfdir, --localstatedir and DESTDIR say, each naming the others' paths; the
installed binary finds the installed configuration without -c and serves with it as
a daemon; logrotate's snippet rotates its logs (USR1); systemd-analyze accepts the
unit; make uninstall takes everything back but an edited configuration.

The build tree is copied (without rebuilding it: only main.c and lua_vm.c, which use
the compiled-in paths, are recompiled) and installed with the directory variables
given to make, the same variables ./configure --prefix=... --sysconfdir=... sets,
which keeps this test to seconds rather than a configure and a full build.
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

import harness

BUILD = harness.BIN.parent
NOBODY = pwd.getpwnam("nobody")


def make(tree, *args, timeout=600):
    p = subprocess.run(["make", "-C", str(tree), "-j2", *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"make {' '.join(map(str, args))} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if not p.is_dir())


class Install:
    def __init__(self, base):
        self.base = base
        self.prefix = base / "opt"
        self.etc = base / "etc"
        self.var = base / "var"
        self.stage = base / "stage"
        self.tree = base / "build"
        self.vars = [f"prefix={self.prefix}", f"sysconfdir={self.etc}",
                     f"localstatedir={self.var}"]
        self.sbin = self.prefix / "sbin" / "rampart"
        self.conf = self.etc / "rampart" / "rampart.conf"
        self.unit = self.prefix / "lib" / "systemd" / "system" / "rampart.service"
        self.logrotate = self.etc / "logrotate.d" / "rampart"
        self.logdir = self.var / "log" / "rampart"
        self.pid_file = self.var / "run" / "rampart.pid"

    def staged(self, path):
        return self.stage / Path(path).relative_to("/")

    def make(self, *args):
        return make(self.tree, *self.vars, *args)


@pytest.fixture(scope="module")
def inst():
    # workers run as nobody and reopen their logs by path: the prefix must be traversable
    base = Path(tempfile.mkdtemp(prefix="rampart-install-"))
    base.chmod(0o755)
    i = Install(base)
    try:
        subprocess.run(f"tar -C '{BUILD}' -cf - --exclude=.git --exclude=fuzz/build "
                       f"--exclude=autom4te.cache --exclude=bench/results --exclude=logs "
                       f"--exclude=__pycache__ . | tar -C '{i.tree}' -xf -",
                       shell=True, check=True, executable="/bin/bash",
                       preexec_fn=lambda: i.tree.mkdir())
        for generated in ("rp_paths.h", "contrib/rampart.service", "contrib/rampart.conf",
                          "contrib/rampart.logrotate"):
            (i.tree / generated).unlink(missing_ok=True)
        # a Lua module shipped in lua/ (none is yet): installed where package.path looks
        (i.tree / "lua" / "rpinstall").mkdir(parents=True)
        (i.tree / "lua" / "rpinstall" / "probe.lua").write_text(
            'return { answer = "installed lua module" }\n')
        i.make("install", f"DESTDIR={i.stage}")
        i.first_staged = files_under(i.stage)
        i.prefix_after_stage = i.prefix.exists() or i.etc.exists() or i.var.exists()
        # an administrator edits the configuration; a second install must keep the edit
        staged_conf = i.staged(i.conf)
        staged_conf.write_text(staged_conf.read_text() + "# edited by the administrator\n")
        i.reinstall_output = i.make("install", f"DESTDIR={i.stage}")
        i.make("install")
        yield i
    finally:
        stop_daemon(i)
        shutil.rmtree(base, ignore_errors=True)


def daemon_pid(i):
    try:
        pid = int(i.pid_file.read_text())
    except (OSError, ValueError):
        return None
    return pid if harness.pid_alive(pid) else None


def stop_daemon(i):
    pid = daemon_pid(i)
    if pid is None:
        return
    kids = harness.children_of(pid)
    os.kill(pid, signal.SIGQUIT)
    try:
        harness.wait_for(lambda: not harness.pid_alive(pid), timeout=15, what="rampart to stop")
    finally:
        harness.sweep(set(kids) | {pid}, harness.pid_alive)


def run_installed(i, *args, timeout=15):
    # from /, as systemd starts it: nothing may depend on the current directory
    return subprocess.run([str(i.sbin), *map(str, args)], cwd="/", capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def daemon(inst):
    """The installed rampart started with no option on its installed configuration, its
    demo ports moved to free ones."""
    text = inst.conf.read_text()
    for backend in ("9001", "9002"):  # the upstream's servers and the servers answering
        assert f"127.0.0.1:{backend}" in text
        text = text.replace(f"127.0.0.1:{backend}", f"127.0.0.1:{harness.free_port()}")
    front = harness.free_port()
    text = re.sub(r"^\s*listen \[::1\]:8080;\n", "", text, flags=re.M)
    # the shipped Lua module, found through the compiled-in package.path
    text = text.replace("location = /health {", """location = /lua-probe {
            content_by_lua_block { ngx.say(require("rpinstall.probe").answer) }
        }

        location = /health {""", 1)
    assert "listen 8080 default_server;" in text
    text = text.replace("listen 8080 default_server;", f"listen 127.0.0.1:{front} default_server;")
    inst.conf.write_text(text)
    p = run_installed(inst)
    assert p.returncode == 0, p.stderr
    pid = daemon_pid(inst)
    assert pid is not None, "the first process exited before the pid file was written"
    harness.wait_for(lambda: _serves(front), timeout=10,
                     what="the installed rampart serving")
    yield front, pid
    stop_daemon(inst)


def _serves(port):
    try:
        return harness.get(port, "/").status == 200
    except OSError:
        return False


def test_destdir_install_stages_every_file_and_writes_nothing_outside(inst):
    p, e = str(inst.prefix).lstrip("/"), str(inst.etc).lstrip("/")
    want = {f"{p}/sbin/rampart", f"{e}/rampart/rampart.conf", f"{e}/rampart/rampart.conf.default",
            f"{e}/logrotate.d/rampart", f"{p}/lib/systemd/system/rampart.service",
            f"{p}/share/man/man8/rampart.8", f"{p}/share/man/man5/rampart.conf.5",
            f"{p}/share/man/man7/rampart-lua.7", f"{p}/share/rampart/lua/rpinstall/probe.lua"}
    assert want <= set(inst.first_staged), inst.first_staged
    assert inst.staged(inst.logdir).is_dir()
    assert not inst.prefix_after_stage


def test_installed_files_name_the_configured_paths(inst):
    conf, unit, rot = inst.conf.read_text(), inst.unit.read_text(), inst.logrotate.read_text()
    assert inst.conf.with_name("rampart.conf.default").read_text() == \
        inst.staged(inst.conf).with_name("rampart.conf.default").read_text()
    assert f"pid {inst.pid_file};" in conf
    assert f"error_log {inst.logdir}/error.log notice;" in conf
    assert f"access_log {inst.logdir}/access.log combined;" in conf
    assert re.search(r"^daemon on;$", conf, re.M) and re.search(r"^user nobody;$", conf, re.M)
    assert f"ExecStartPre={inst.sbin} -t -q -c {inst.conf}\n" in unit
    assert f"ExecStart={inst.sbin} -c {inst.conf}\n" in unit
    assert f"PIDFile={inst.pid_file}\n" in unit
    assert f"{inst.logdir}/*.log" in rot and f"cat {inst.pid_file}" in rot
    for text in (conf, unit, rot):
        assert not re.search(r"@\w+@", text)


def test_reinstall_keeps_an_edited_configuration(inst):
    staged = inst.staged(inst.conf)
    assert staged.read_text().endswith("# edited by the administrator\n")
    assert "# edited" not in staged.with_name("rampart.conf.default").read_text()
    assert "keeping the existing" in inst.reinstall_output


def test_installed_binary_finds_installed_configuration_without_c(inst):
    v = run_installed(inst, "-V")
    assert f"default configuration: {inst.conf}\n" in v.stdout
    t = run_installed(inst, "-t")
    assert t.returncode == 0, t.stderr
    assert f"configuration file {inst.conf} test is successful" in t.stderr


def test_systemd_analyze_verify_accepts_the_installed_unit(inst):
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(inst.unit)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr
    # and it does look: a unit naming a missing binary is refused
    bad = inst.base / "rampart-bad.service"
    bad.write_text(inst.unit.read_text().replace(str(inst.sbin), str(inst.sbin) + "-missing"))
    p = subprocess.run(["systemd-analyze", "verify", "--man=no", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "not executable" in p.stderr


def test_installed_configuration_serves_as_a_daemon_with_unprivileged_workers(inst, daemon):
    front, pid = daemon
    r = harness.get(front, "/hello")
    assert r.status == 200 and re.match(rb"backend [AB] answered GET /hello", r.body)
    kids = harness.children_of(pid)
    assert kids
    def uid(pid):
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))
    # counted as soon as forked, a child changes its user a moment later
    harness.wait_for(lambda: all(uid(kid) == NOBODY.pw_uid for kid in kids), timeout=10,
                     what="every child running as nobody")
    harness.wait_for(lambda: "GET /hello" in (inst.logdir / "access.log").read_text(),
                     what="the request in the installed access log")
    assert (inst.logdir / "error.log").exists()


def test_installed_lua_modules_are_found_by_the_installed_binary(inst, daemon):
    front, _ = daemon
    r = harness.get(front, "/lua-probe")
    assert (r.status, r.body) == (200, b"installed lua module\n")


def test_logrotate_snippet_rotates_and_rampart_writes_to_the_new_file(inst, daemon):
    front, pid = daemon
    assert harness.get(front, "/before-rotation").status == 200
    access = inst.logdir / "access.log"
    harness.wait_for(lambda: "/before-rotation" in access.read_text(), what="the first line")
    state = inst.base / "logrotate.state"
    p = subprocess.run(["logrotate", "-f", "-s", str(state), str(inst.logrotate)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    rotated = inst.logdir / "access.log.1"  # delaycompress: the newest stays plain
    assert "/before-rotation" in rotated.read_text()
    # the workers follow USR1 and say so in the new error log
    workers = len(harness.children_of(pid)) - 1
    harness.wait_for(lambda: (inst.logdir / "error.log").exists() and
                     (inst.logdir / "error.log").read_text().count("logs reopened") == workers,
                     what="every worker reopening its logs")
    for n in range(10):
        assert harness.get(front, f"/after-rotation-{n}").status == 200
    harness.wait_for(lambda: access.exists() and access.read_text().count("/after-rotation") == 10,
                     what="every request after the rotation in the new access log")
    assert "/after-rotation" not in rotated.read_text()


def test_stop_signal_through_the_installed_binary(inst, daemon):
    front, pid = daemon
    p = run_installed(inst, "-s", "quit")
    assert p.returncode == 0, p.stderr
    harness.wait_for(lambda: not harness.pid_alive(pid), timeout=15, what="rampart to stop")
    assert not inst.pid_file.exists()


def test_uninstall_removes_everything_but_an_edited_configuration(inst):
    inst.make("uninstall", f"DESTDIR={inst.stage}")
    # the staged configuration was edited (the reinstall test): it stays, alone
    assert files_under(inst.stage) == [str(inst.conf).lstrip("/")]
    # the daemon test moved its ports: as installed again, it goes with its .default
    shutil.copy(inst.conf.with_name("rampart.conf.default"), inst.conf)
    inst.make("uninstall")
    assert files_under(inst.prefix) == []
    assert files_under(inst.etc) == []
