"""The process model: N workers plus one helper, a dead child is replaced (at
most once a second when it dies young), children do not outlive the master."""

import os
import signal
import threading
import time

import harness
from harness import get, wait_for


def pid_conf(port):
    return f'server {{ listen 127.0.0.1:{port}; return 200 "$pid"; }}'


def test_two_workers_and_one_helper_are_started(rampart, port):
    rampart.configure(pid_conf(port), workers=2)
    rampart.start()
    workers, (helper,) = rampart.wait_processes(2)
    assert sorted(workers + [helper]) == rampart.children()
    assert f"[notice] {rampart.pid}#0: started 2 worker processes and a helper (generation 0)" \
        in rampart.log_text()
    # Both workers serve: fresh connections spread over their two sockets.
    answered = set()
    wait_for(lambda: answered.add(int(get(port).text)) or answered == set(workers),
             what=f"answers from workers {workers} (have {answered})")
    assert helper not in answered


def test_worker_processes_auto_starts_one_worker_per_core(rampart, port):
    rampart.configure(pid_conf(port), workers="auto")
    rampart.start()
    workers, helpers = rampart.wait_processes(os.cpu_count())
    assert len(helpers) == 1


def test_killed_worker_is_replaced_and_requests_keep_succeeding(rampart, port):
    rampart.configure(pid_conf(port), workers=2)
    rampart.start()
    workers, (helper,) = rampart.wait_processes(2)
    victim = workers[0]
    mark = rampart.log_size()
    rampart.kill(victim)
    # Connections the kernel queues on the dead worker's socket wait for its replacement.
    answers = [int(get(port, timeout=5).text) for _ in range(20)]
    new_workers, helpers = rampart.wait_processes(2, exclude=[victim])
    assert helpers == [helper]
    assert workers[1] in new_workers
    assert victim not in answers
    assert set(answers) <= set(new_workers)
    rampart.wait_log(rf"\[alert\] {rampart.pid}#0: worker process {victim} exited on signal 9; "
                     rf"starting a new one", since=mark)


def test_killed_helper_is_replaced(rampart, port):
    rampart.configure(pid_conf(port), workers=1)
    rampart.start()
    workers, (helper,) = rampart.wait_processes(1)
    mark = rampart.log_size()
    rampart.kill(helper)
    new_workers, (new_helper,) = rampart.wait_processes(1, exclude=[helper])
    assert new_workers == workers
    rampart.wait_log(rf"helper process {helper} exited on signal 9; starting a new one",
                     since=mark)
    assert get(port).text == str(workers[0])


def test_worker_dying_young_is_respawned_after_a_pause(rampart, port):
    rampart.configure(pid_conf(port), workers=1)
    rampart.start()
    (first,), _ = rampart.wait_processes(1)
    # Let the first worker get older than a second, so it is replaced at once.
    wait_for(lambda: _age(first) > 1.05, timeout=3, what="the worker to be a second old")
    rampart.kill(first)
    (second,), _ = rampart.wait_processes(1, exclude=[first], timeout=1)
    # The replacement dies young: its own replacement waits about a second.
    killed_at = time.monotonic()
    rampart.kill(second)
    (third,), _ = rampart.wait_processes(1, exclude=[first, second], timeout=3)
    waited = time.monotonic() - killed_at
    assert 0.8 < waited < 2.0
    assert get(port).text == str(third)


def _age(pid):
    """Seconds since pid started."""
    with open(f"/proc/{pid}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def test_children_exit_when_master_is_killed(rampart, port):
    rampart.configure(pid_conf(port), workers=2)
    rampart.start()
    workers, helpers = rampart.wait_processes(2)
    os.kill(rampart.pid, signal.SIGKILL)
    rampart.wait_exit(timeout=5)
    wait_for(lambda: not any(harness.pid_alive(p) for p in workers + helpers),
             what="orphaned children to exit")


def test_requests_during_worker_kill_all_succeed(rampart, port):
    """A client hammering while a worker is killed sees delays at most, never an error
    other than on a connection the dead worker had already accepted."""
    rampart.configure(pid_conf(port), workers=2)
    rampart.start()
    workers, _ = rampart.wait_processes(2)
    results, errors = [], []
    halt = threading.Event()

    def hammer():
        deadline = time.monotonic() + 8
        while not halt.is_set() and time.monotonic() < deadline and len(results) < 20000:
            try:
                results.append(int(get(port, timeout=5,
                                       headers={"Connection": "close"}).text))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(results) > 50, what="some answers")
        rampart.kill(workers[0])
        new_workers, _ = rampart.wait_processes(2, exclude=[workers[0]])
        n = len(results)
        wait_for(lambda: len(results) > n + 100, what="answers after the respawn")
    finally:
        halt.set()
        t.join(timeout=10)
    # At most the one request the killed worker held can fail.
    assert len(errors) <= 1, errors
    assert set(results[n:]) <= set(new_workers)


def test_worker_connections_limit_holds_extra_clients_until_a_slot_frees(rampart, port):
    import socket
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}',
                      main="events {\n    worker_connections 2;\n}")
    rampart.start()
    (worker,), _ = rampart.wait_processes(1)
    listeners = harness._socket_inodes(rampart.pid)
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    second = socket.create_connection(("127.0.0.1", port), timeout=5)
    third = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        wait_for(lambda: len(harness._socket_inodes(worker) - listeners) >= 2,
                 what="the worker to hold two connections")
        third.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        third.settimeout(0.3)
        try:
            early = third.recv(4096)
        except socket.timeout:
            early = None
        assert early is None, "a third connection was served past worker_connections 2"
        first.close()
        third.settimeout(5)
        assert third.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        for s in (first, second, third):
            s.close()
