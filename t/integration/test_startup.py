"""Starting up: failures say why and exit 1; daemon and single-process modes
serve and can be signalled through the pid file."""

import signal
import socket

import pytest

import harness
from harness import get, wait_for


def test_start_fails_when_port_is_taken(rampart, port):
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))
    taken.listen()
    try:
        rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
        rampart.start(wait=False)
        assert rampart.wait_exit(timeout=5) == 1
    finally:
        taken.close()
    message = f"bind() to 127.0.0.1:{port} failed: Address already in use"
    assert rampart.stderr_text() == f"rampart: {message}\n"
    assert f"[emerg] {rampart.pid}#0: {message}" in rampart.log_text()
    assert not rampart.pid_file.exists()


def test_start_with_broken_configuration_exits_with_the_error(rampart, port):
    rampart.configure(f"server {{ listen 127.0.0.1:{port}; retrun 200; }}")
    rampart.start(wait=False)
    assert rampart.wait_exit(timeout=5) == 1
    assert rampart.stderr_text() == (f'rampart: {rampart.conf_path}:5: unknown directive '
                                     f'"retrun"\n')
    assert not rampart.pid_file.exists()


def test_missing_error_log_folder_is_created_on_start(rampart, port):
    text = rampart.render(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.configure(text=text.replace("error_log logs/", "error_log applogs/"))
    rampart.error_log = rampart.prefix / "applogs" / "error.log"
    rampart.start()
    # the master writes the line once it has forked: it may come just after the port opens
    rampart.wait_log(r"started 1 worker processes")


def test_unopenable_error_log_fails_the_start_with_its_path(rampart, port):
    text = rampart.render(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.configure(text=text.replace("error_log logs/", "error_log a/b/"))
    rampart.start(wait=False)
    assert rampart.wait_exit(timeout=5) == 1
    path = rampart.prefix / "a" / "b" / "error.log"
    assert rampart.stderr_text() == (f'rampart: cannot open error log "{path}": '
                                     f'No such file or directory\n')
    assert not rampart.pid_file.exists()


def test_single_process_mode_serves_and_answers_signal_commands(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "$pid"; }}',
                      main="master_process off;")
    rampart.start()
    assert rampart.children() == []
    assert get(port).text == str(rampart.pid)
    p = harness.run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "quit")
    assert (p.returncode, p.stderr) == (0, "")
    assert rampart.wait_exit(timeout=5) == 0
    assert not rampart.pid_file.exists()


def test_daemon_mode_detaches_and_keeps_serving(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "daemon"; }}',
                      main="daemon on;")
    rampart.start(wait=False)
    assert rampart.wait_exit(timeout=5) == 0  # the foreground process returns at once
    daemon = wait_for(lambda: _read_pid(rampart.pid_file), what="the daemon's pid file")
    rampart.seen_pids.add(daemon)
    try:
        assert daemon != rampart.pid
        assert get(port).text == "daemon"
        with open(f"/proc/{daemon}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[3]) == daemon  # its own session, no terminal
        p = harness.run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "quit")
        assert (p.returncode, p.stderr) == (0, "")
        wait_for(lambda: not harness.pid_alive(daemon), what=f"daemon {daemon} to exit")
        assert not rampart.pid_file.exists()
    finally:
        if harness.pid_alive(daemon) and rampart._is_ours(daemon):
            harness.os.kill(daemon, signal.SIGTERM)


def _read_pid(path):
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def test_hup_in_single_process_mode_reloads(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "one"; }}',
                      main="master_process off;")
    rampart.start()
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "two"; }}',
                      main="master_process off;")
    rampart.signal(signal.SIGHUP)
    wait_for(lambda: get(port).text == "two", timeout=1, what="the new answer")


def test_hup_in_single_process_mode_with_broken_file_keeps_serving(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "one"; }}',
                      main="master_process off;")
    rampart.start()
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; retrun 200 "two"; }}',
                      main="master_process off;")
    rampart.signal(signal.SIGHUP)
    rampart.wait_log("reload failed: the previous configuration keeps serving")
    assert 'unknown directive "retrun"' in rampart.log_text()
    assert get(port).text == "one"


def test_single_process_reload_lets_a_keepalive_connection_of_the_old_configuration_finish(
        rampart, port):
    import http.client
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "one"; }}',
                      main="master_process off;")
    rampart.start()
    old = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    old.request("GET", "/")
    assert old.getresponse().read() == b"one"
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "two"; }}',
                      main="master_process off;")
    rampart.signal(signal.SIGHUP)
    wait_for(lambda: get(port).text == "two", timeout=2, what="the new answer")
    # the connection accepted under the old configuration is still served by it
    old.request("GET", "/")
    assert old.getresponse().read() == b"one"
    old.close()


def test_second_instance_on_the_same_pid_file_refuses_to_start(rampart_factory, port, free_port):
    first = rampart_factory("first")
    first.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "first"; }}')
    first.start()
    # the same pid file (and logs); another port, so the bind alone would succeed
    second = harness.Rampart(first.prefix)
    second.conf_path = first.prefix / "second.conf"
    second.stderr_path = first.prefix / "second-stderr.txt"
    second.configure(f'server {{ listen 127.0.0.1:{free_port()}; return 200 "second"; }}')
    second.start(wait=False)
    assert second.wait_exit(timeout=10) == 1
    assert (f'rampart is already running (pid {first.pid}, pid file "{first.pid_file}")'
            in second.stderr_text())
    # the first one is untouched: its pid file still names it and it still answers
    assert first.pid_file.read_text().strip() == str(first.pid)
    assert get(port).text == "first"
    first.stop()
    assert not first.pid_file.exists()


def test_pid_file_that_cannot_be_written_stops_the_start(rampart, port):
    text = rampart.render(f'server {{ listen 127.0.0.1:{port}; return 200 "ok"; }}')
    rampart.configure(text=text.replace("pid logs/rampart.pid;", "pid a/b/rampart.pid;"))
    rampart.start(wait=False)
    assert rampart.wait_exit(timeout=5) == 1
    path = rampart.prefix / "a" / "b" / "rampart.pid"
    assert f'cannot open pid file "{path}": No such file or directory' in rampart.stderr_text()
