"""Debian's nginx as a reference: tests that must answer as nginx does run the same
http-block content under /usr/sbin/nginx and rampart and compare the answers.

nginx runs as the current user from a temporary prefix: its configuration, error
log, pid file, lock file and temporary folders all live there (Debian's build
would otherwise use /etc/nginx, /var/log/nginx, /var/lib/nginx and /run), it
writes no access log, and it listens on loopback only. Only the master this
module started, and the workers that master forked, are ever signalled, by pid.

It is not optional: CI installs the `nginx` package (the README's test command),
so a machine without it fails these tests with a message naming the package
instead of skipping them.
"""

import os
import pwd
import re
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import RampartError

BIN = Path("/usr/sbin/nginx")
START_DEADLINE = 10.0


def require():
    """Fails the calling test unless Debian's nginx is installed."""
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} not found: these tests compare rampart with Debian's nginx; "
                    f"install the Debian package `nginx` (apt-get install -y nginx)",
                    pytrace=False)


def process_lines(prefix, modules=()):
    """nginx's main-context lines keeping every file it writes under prefix, on ONE line
    (so that the http block can start on the same line as in rampart's file); modules:
    dynamic modules to load first (the lua module's .so files)."""
    p = Path(prefix)
    load = "".join(f"load_module {m}; " for m in modules)
    user = ""
    if os.geteuid() == 0:
        # started by root, nginx would switch its workers to "nobody"
        user = f" user {pwd.getpwuid(os.geteuid()).pw_name};"
    return (f"{load}worker_processes 1; error_log {p}/logs/error.log info; pid {p}/logs/nginx.pid; "
            f"lock_file {p}/logs/nginx.lock;{user} events {{ worker_connections 256; }}")


def http_lines(prefix):
    """nginx-only http-level lines, on ONE line: no access log, temporary files under prefix."""
    t = Path(prefix) / "temp"
    return (f"access_log off; client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; "
            f"fastcgi_temp_path {t}/fastcgi; uwsgi_temp_path {t}/uwsgi; "
            f"scgi_temp_path {t}/scgi;")


def render(prefix, http, modules=()):
    """A whole nginx.conf around http-block content. The content starts on line 3, as in
    rampart_text(), so both name the same line for the same mistake."""
    return f"{process_lines(prefix, modules)}\nhttp {{ {http_lines(prefix)}\n{http.rstrip()}\n}}\n"


def rampart_text(http):
    """rampart's file for the same http-block content, also starting it on line 3."""
    return ("worker_processes 1; error_log logs/error.log info; pid logs/rampart.pid;\n"
            f"http {{\n{http.rstrip()}\n}}\n")


def assert_rampart_refuses(conf_dir, http, line, message):
    """`rampart -t` refuses this http-block content with exactly this message at line."""
    (conf_dir / "rampart.conf").write_text(rampart_text(http))
    p = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == (f"rampart: {path}:{line}: {message}\n"
                        f"rampart: configuration file {path} test failed\n")


def refusal(tmp_path, http):
    """`nginx -t` on the same content: asserts that nginx refuses it too and returns
    (the line nginx names or None, nginx's stderr)."""
    require()
    nginx = Nginx(tmp_path / "nginx")
    nginx.configure(http)
    p = nginx.check()
    assert p.returncode != 0, f"nginx accepts what rampart refuses:\n{p.stderr}"
    m = re.search(rf"\[emerg\] .* in {re.escape(str(nginx.conf_path))}:(\d+)", p.stderr)
    return (int(m.group(1)) if m else None), p.stderr


class Nginx:
    """One nginx master in the foreground (`daemon off`), from its own prefix."""

    def __init__(self, prefix):
        self.prefix = Path(prefix)
        self.conf_path = self.prefix / "nginx.conf"
        self.early_log = self.prefix / "logs" / "early.log"
        self.error_log = self.prefix / "logs" / "error.log"
        self.pid_file = self.prefix / "logs" / "nginx.pid"
        self.stderr_path = self.prefix / "stderr.txt"
        self.proc = None
        self.seen = {}  # pid -> start time, for every process of ours seen
        self.conf_text = ""

    def configure(self, http, modules=()):
        """Writes nginx.conf around http-block content; makes the folders nginx needs.
        modules: dynamic modules to load (paths of .so files)."""
        for d in ("logs", "temp"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        self.conf_text = render(self.prefix, http, modules)
        self.conf_path.write_text(self.conf_text)
        return self.conf_path

    @property
    def port(self):
        return harness.listen_addresses(self.conf_text)[0][1]

    def _argv(self, *extra):
        return [str(BIN), "-p", f"{self.prefix}/", "-e", str(self.early_log),
                "-c", str(self.conf_path), *extra]

    def check(self):
        """`nginx -t` on the configuration written; returns the CompletedProcess."""
        return subprocess.run(self._argv("-t"), cwd=self.prefix, capture_output=True,
                              text=True, timeout=30)

    def start(self):
        assert self.proc is None, "already started"
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self._argv("-g", "daemon off; master_process on;"),
                                     cwd=self.prefix, stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr)
        addrs = harness.listen_addresses(self.conf_text)
        deadline = time.monotonic() + START_DEADLINE
        while True:
            if self.proc.poll() is not None:
                raise RampartError(f"nginx exited early with code {self.proc.returncode}\n"
                                   f"--- stderr ---\n{self.text(self.stderr_path)}\n"
                                   f"--- error log ---\n{self.text(self.error_log)}")
            if self._pid_file_is_ours() and all(harness._connects(a) for a in addrs):
                if self._remember_workers():
                    return self
            if time.monotonic() > deadline:
                raise RampartError(f"nginx did not start in {START_DEADLINE}s\n"
                                   f"--- error log ---\n{self.text(self.error_log)}")
            time.sleep(harness.POLL)

    def _pid_file_is_ours(self):
        try:
            return int(self.pid_file.read_text().strip()) == self.proc.pid
        except (OSError, ValueError):
            return False

    def stop(self):
        """QUIT, then TERM, then KILL the master; then its workers, by pid, if any is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._remember_workers()
        harness.stop_escalating(self.proc)
        harness.sweep(self.seen, self._is_ours, what="nginx")
        self._stderr.close()

    def _remember_workers(self):
        kids = harness.children_of(self.proc.pid)
        for pid in kids:
            self.seen.setdefault(pid, _start_time(pid))
        return kids

    def _is_ours(self, pid):
        """pid is alive and still the worker we saw (not a reused pid), even once orphaned."""
        return harness.pid_alive(pid) and _start_time(pid) == self.seen[pid]

    @staticmethod
    def text(path):
        try:
            return Path(path).read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _start_time(pid):
    """The start time of pid (field 22 of /proc/PID/stat), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])
