"""Log rotation: after the log file is renamed, USR1 (or `rampart -s reopen`)
makes every process write to a fresh file at the configured path."""

import os
import signal

import harness
from harness import raw_exchange, wait_for


def rotate(rampart):
    """Renames the error log aside, as logrotate does; returns the new name."""
    rotated = rampart.error_log.with_name("error.log.1")
    os.rename(rampart.error_log, rotated)
    return rotated


def writes_to(pid, path):
    return str(path) in harness.fd_targets(pid)


def all_reopened(rampart, rotated):
    pids = [rampart.pid] + rampart.children()
    return all(writes_to(p, rampart.error_log) and not writes_to(p, rotated) for p in pids)


def bad_request(port):
    raw_exchange(port, b"NOT-HTTP\x01\r\n\r\n")


def test_usr1_reopens_error_log_in_every_process(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}', workers=2)
    rampart.start()
    rampart.wait_processes(2)
    rotated = rotate(rampart)
    assert not rampart.error_log.exists()
    rampart.signal(signal.SIGUSR1)
    wait_for(lambda: all_reopened(rampart, rotated),
             what="the master, workers and helper to write to the new file")
    old_size = rotated.stat().st_size

    # A worker's line and a master's line both land in the new file.
    bad_request(port)
    rampart.wait_log(r"\[info\] \d+#\d: client sent a bad request")
    rampart.reload()
    assert "reloading configuration" in rampart.log_text()
    assert rotated.stat().st_size == old_size


def test_signal_reopen_command_reopens_error_log(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    rotated = rotate(rampart)
    p = harness.run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "reopen")
    assert (p.returncode, p.stderr) == (0, "")
    wait_for(lambda: all_reopened(rampart, rotated), what="every process to reopen the log")
    old_size = rotated.stat().st_size
    bad_request(port)
    rampart.wait_log(r"client sent a bad request")
    assert rotated.stat().st_size == old_size


def test_without_usr1_a_renamed_log_keeps_being_written(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    rotated = rotate(rampart)
    before = rotated.stat().st_size
    bad_request(port)
    wait_for(lambda: rotated.stat().st_size > before, what="the line in the renamed file")
    assert "client sent a bad request" in rotated.read_text()
    assert not rampart.error_log.exists()


def test_workers_started_after_reopen_write_to_the_new_file(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    rotated = rotate(rampart)
    rampart.signal(signal.SIGUSR1)
    wait_for(lambda: all_reopened(rampart, rotated), what="every process to reopen the log")
    (worker,), _ = rampart.wait_processes(1)
    rampart.kill(worker)
    (fresh,), _ = rampart.wait_processes(1, exclude=[worker])
    assert writes_to(fresh, rampart.error_log)
    assert not writes_to(fresh, rotated)
    rampart.wait_log(rf"worker process {worker} exited on signal 9")


def test_reload_moves_error_log_to_the_new_path(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.start()
    old_log = rampart.error_log
    new_log = rampart.prefix / "logs" / "new.log"
    rampart.configure(text=rampart.conf_text.replace("logs/error.log", "logs/new.log"))
    rampart.reload(wait=False)
    rampart.error_log = new_log
    wait_for(new_log.exists, what=f"{new_log} to appear")
    rampart.wait_log(r"configuration reloaded \(generation 1\)")
    rampart.wait_log(r"generation 0 has drained")
    assert "reloading configuration" in old_log.read_text()
    wait_for(lambda: all(writes_to(p, new_log) and not writes_to(p, old_log)
                         for p in [rampart.pid] + rampart.children()),
             what="every process of the new generation to write to the new log")
    size = old_log.stat().st_size
    bad_request(port)
    rampart.wait_log(r"client sent a bad request")
    assert old_log.stat().st_size == size
