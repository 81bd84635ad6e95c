"""Debian's haproxy as a real L4 balancer in front of rampart (or nginx): `mode tcp`,
one `listen` section per front port, each forwarding to one server with `send-proxy`
(PROXY protocol v1) or `send-proxy-v2`.

haproxy runs in the foreground (-db) from a temporary folder, on loopback only; only
the process this module started is ever signalled, by its pid. It is not optional:
CI installs the `haproxy` package (the README's test command), so a machine without
it fails these tests with a message naming the package instead of skipping them.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

import harness

BIN = Path("/usr/sbin/haproxy")
START_DEADLINE = 10.0


def require():
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"{BIN} not found: the PROXY protocol tests put Debian's haproxy in front "
                    f"of rampart; install the Debian package `haproxy` (apt-get install -y "
                    f"haproxy)", pytrace=False)


class Haproxy:
    """haproxy forwarding each (front port -> (back port, send)) of routes, where send is
    "send-proxy" or "send-proxy-v2" (or "" for none)."""

    def __init__(self, folder, routes, maxconn=4096):
        require()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.routes = routes
        self.conf = self.folder / "haproxy.cfg"
        lines = ["global", f"    maxconn {maxconn}", "defaults", "    mode tcp",
                 "    timeout connect 5s", "    timeout client 60s", "    timeout server 60s"]
        for i, (front, (back, send)) in enumerate(sorted(routes.items())):
            lines += [f"listen lb{i}", f"    bind 127.0.0.1:{front}",
                      f"    server s{i} 127.0.0.1:{back} {send}".rstrip()]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        self._out = open(self.folder / "haproxy.out", "wb")
        self.proc = subprocess.Popen([str(BIN), "-db", "-f", str(self.conf)],
                                     cwd=self.folder, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._out)
        deadline = time.monotonic() + START_DEADLINE
        pending = [("127.0.0.1", f) for f in self.routes]
        while pending:
            if self.proc.poll() is not None:
                raise AssertionError("haproxy exited early:\n" +
                                     (self.folder / "haproxy.out").read_text(errors="replace"))
            pending = [a for a in pending if not harness._connects(a)]
            if time.monotonic() > deadline:
                raise AssertionError(f"haproxy did not listen on {pending}")
            time.sleep(harness.POLL)
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._out.close()
        self.proc = None
