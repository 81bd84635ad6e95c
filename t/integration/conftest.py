"""Fixtures for rampart's integration tests.

Each test gets its own temporary prefix (tmp_path) holding rampart.conf, the
error log and the pid file. `rampart` is a not-yet-started harness.Rampart for
that prefix; `rampart_factory` makes more when a test needs several. When a
test fails, the error log and stderr of every rampart it started are attached
to the report.

`certs` (session-wide) is a private CA with ECDSA and RSA certificates for
a.test and b.test, made once with the openssl command (certs.py).

`backend` is a started test backend (backend.py: a real HTTP/1.1 server that
misbehaves on demand); `backend_factory` starts more. They are stopped by pid
after the test, and an internal error a backend reported fails the test.

Run with RAMPART_BIN=/abs/path/to/rampart (the Makefile's check-local does).
"""

import os
import signal

import pytest

import backend as backend_mod
import certs as certs_mod
import harness

# Whole-test ceiling: a hung test fails on its own instead of stalling the suite.
TEST_CEILING_S = 30


def pytest_configure(config):
    if not os.access(harness.BIN, os.X_OK):
        raise pytest.UsageError(
            f"rampart binary not found at {harness.BIN}: build it, or set RAMPART_BIN")


class TestCeilingExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _ceiling():
    def expired(signum, frame):
        raise TestCeilingExceeded(f"test ran longer than {TEST_CEILING_S}s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(TEST_CEILING_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def free_port():
    """A function returning a free TCP port on 127.0.0.1 (or on the host passed)."""
    return harness.free_port


@pytest.fixture
def port():
    """One free port on 127.0.0.1."""
    return harness.free_port()


@pytest.fixture
def rampart_factory(request, tmp_path):
    """Makes Rampart instances, each in its own folder under tmp_path; stops them after."""
    made = []
    request.node._rampart_instances = made

    def make(name="rampart"):
        r = harness.Rampart(tmp_path / name)
        made.append(r)
        return r
    yield make
    for r in reversed(made):
        r.stop()
    problems = [f"rampart {r.proc.pid}: {p}" for r in made if r.proc for p in r.problems()]
    if problems:
        pytest.fail("unexpected trouble in rampart:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def rampart(rampart_factory):
    """A Rampart for this test's prefix; configure() then start() it."""
    return rampart_factory()


@pytest.fixture
def backend_factory(request, tmp_path):
    """Starts test backends: backend_factory(name="a", max_requests=0, rcvbuf=0, port=0).
    Each is a separate process on a loopback port, stopped (by pid) after the test."""
    made = []
    request.node._backend_instances = made

    def make(name="", **options):
        b = backend_mod.Backend(name=name, log_dir=tmp_path / "backends", **options)
        made.append(b)
        return b.start()
    yield make
    for b in reversed(made):
        b.stop()
    problems = [f"backend {b.name}: {p}" for b in made for p in b.problems()]
    if problems:
        pytest.fail("the test backend reported internal errors:\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def backend(backend_factory):
    """One started backend: .port, .url, .addr, .stats(), .reset(), .log()."""
    return backend_factory()


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A certs.Certs: a private CA (.ca), .cert(name, kind) and .key(name, kind) for name
    a.test or b.test and kind "ecdsa" (P-256) or "rsa" (2048), .mismatched_key,
    .not_pem, .missing, and client certificates (.client(which) for "trusted",
    "untrusted", "chained", "deep"; see certs.py); made once per session with the
    openssl command."""
    return certs_mod.make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def conf_dir(tmp_path):
    """A folder for configuration files that only `rampart -t` will read."""
    d = tmp_path / "conf"
    d.mkdir()
    return d


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for r in getattr(item, "_rampart_instances", []):
        if r.proc is None:
            continue
        report.sections.append((f"rampart {r.proc.pid} error log ({r.error_log})",
                                r.log_text() or "(empty)"))
        report.sections.append((f"rampart {r.proc.pid} stderr", r.stderr_text() or "(empty)"))
    for b in getattr(item, "_backend_instances", []):
        if b.proc is not None:
            report.sections.append((f"backend {b.name} stderr", b.stderr_text() or "(empty)"))
