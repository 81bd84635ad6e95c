"""Reloads (HUP, `rampart -s reload`): a new configuration takes over without a
failed request, a broken one changes nothing, the master stays the same."""

import signal
import threading
import time

from harness import get, run, wait_for


def answer_conf(port, text):
    return f'server {{\n    listen 127.0.0.1:{port};\n    return 200 "{text}";\n}}\n'


class Hammer(threading.Thread):
    """Sends requests on fresh connections until stopped, at most `limit` of them or for
    `seconds`; records every answer and every failure."""

    def __init__(self, port, seconds=8.0, limit=20000):
        super().__init__(daemon=True)
        self.port, self.seconds, self.limit = port, seconds, limit
        self.answers, self.failures = [], []
        self.halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.seconds
        while not self.halt.is_set() and time.monotonic() < deadline and \
                len(self.answers) + len(self.failures) < self.limit:
            try:
                # The server closes first, so TIME_WAIT stays on its side and thousands of
                # requests do not use up the client's ephemeral ports.
                r = get(self.port, "/", timeout=5, headers={"Connection": "close"})
                self.answers.append(r.text if r.status == 200 else f"status {r.status}")
            except Exception as e:  # noqa: BLE001 - every failure counts
                self.failures.append(repr(e))

    def count(self, text):
        return sum(1 for a in self.answers if a == text)

    def stop(self):
        self.halt.set()
        self.join(timeout=10)


def test_hup_switches_answer_without_failed_requests(rampart, port):
    rampart.configure(answer_conf(port, "old"), workers=2)
    rampart.start()
    old_workers, _ = rampart.wait_processes(2)
    hammers = [Hammer(port), Hammer(port)]
    for h in hammers:
        h.start()
    try:
        # About a second of load on the old generation, then the reload, then about a second
        # of load once the old generation has gone.
        started = time.monotonic()
        wait_for(lambda: time.monotonic() - started > 1.0 and
                 all(h.count("old") >= 50 for h in hammers), what="old answers")
        rampart.configure(answer_conf(port, "new"), workers=2)
        mark = rampart.log_size()
        rampart.reload()
        rampart.wait_log(r"generation 0 has drained", since=mark)
        assert not any(_alive(pid) for pid in old_workers)
        drained_at = [len(h.answers) for h in hammers]
        drained = time.monotonic()
        wait_for(lambda: time.monotonic() - drained > 1.0 and
                 all(len(h.answers) > n + 50 for h, n in zip(hammers, drained_at)),
                 what="answers after the old generation drained")
    finally:
        for h in hammers:
            h.stop()
    for h, n in zip(hammers, drained_at):
        assert h.failures == []
        assert set(h.answers) == {"old", "new"}
        # One answer may have been in the thread's hands when the old workers exited; after
        # that only the new generation answers.
        assert set(h.answers[n + 1:]) == {"new"}
    assert [get(port).text for _ in range(20)] == ["new"] * 20


def test_back_to_back_reloads_under_load_fail_no_request(rampart, port):
    rampart.configure(answer_conf(port, "gen 0"), workers=2)
    rampart.start()
    hammer = Hammer(port)
    hammer.start()
    try:
        for gen in range(1, 6):
            wait_for(lambda: len(hammer.answers) > 20 * gen, what="some answers")
            rampart.configure(answer_conf(port, f"gen {gen}"), workers=2)
            rampart.reload()
        wait_for(lambda: hammer.count("gen 5") >= 50, what="answers from the last generation")
    finally:
        hammer.stop()
    assert hammer.failures == []
    assert hammer.answers[-1] == "gen 5"
    rampart.wait_log(r"generation 4 has drained")
    rampart.wait_processes(2)


def test_hup_with_broken_file_keeps_old_answer_and_logs_file_line(rampart, port):
    rampart.configure(answer_conf(port, "old"))
    rampart.start()
    workers, helpers = rampart.wait_processes(1)
    rampart.configure(text=rampart.conf_text.replace("server {", "server {\n    bogus on;"))
    outcome = rampart.reload()
    assert outcome.group(0) == "reload failed"
    log = rampart.log_text()
    assert f'[emerg] {rampart.pid}#0: {rampart.conf_path}:6: unknown directive "bogus"' in log
    assert "reload failed: the previous configuration keeps serving" in log
    assert get(port).text == "old"
    assert rampart.wait_processes(1) == (workers, helpers)


def test_signal_reload_command_applies_the_new_configuration(rampart, port):
    rampart.configure(answer_conf(port, "before"))
    rampart.start()
    rampart.configure(answer_conf(port, "after"))
    mark = rampart.log_size()
    p = run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "reload")
    assert (p.returncode, p.stderr) == (0, "")
    rampart.wait_log(r"configuration reloaded \(generation 1\)", since=mark)
    wait_for(lambda: get(port).text == "after", what="the new answer")


def test_reload_from_one_to_two_workers(rampart, port):
    rampart.configure(answer_conf(port, "one $pid"), workers=1)
    rampart.start()
    (old_worker,), _ = rampart.wait_processes(1)
    assert get(port).text == f"one {old_worker}"
    rampart.configure(answer_conf(port, "two $pid"), workers=2)
    rampart.reload()
    workers, _ = rampart.wait_processes(2, exclude=[old_worker])
    answered = set()
    wait_for(lambda: answered.add(get(port).text) or len(answered) == 2, timeout=10,
             what=f"answers from both workers {workers} (have {answered})")
    assert answered == {f"two {pid}" for pid in workers}


def test_reload_from_two_workers_to_one(rampart, port):
    rampart.configure(answer_conf(port, "two"), workers=2)
    rampart.start()
    old, _ = rampart.wait_processes(2)
    rampart.configure(answer_conf(port, "one"), workers=1)
    mark = rampart.log_size()
    rampart.reload()
    rampart.wait_log(r"generation 0 has drained", since=mark)
    # Every connection is answered: none is queued on the second socket nobody accepts on now.
    assert [get(port, timeout=2).text for _ in range(20)] == ["one"] * 20
    rampart.wait_processes(1, exclude=old)


def test_master_pid_and_pid_file_survive_reloads(rampart, port):
    rampart.configure(answer_conf(port, "gen 0"))
    rampart.start()
    master = rampart.pid
    seen_workers = set()
    for gen in range(1, 4):
        (worker,), _ = rampart.wait_processes(1, exclude=seen_workers)
        seen_workers.add(worker)
        rampart.configure(answer_conf(port, f"gen {gen}"))
        rampart.reload()
        wait_for(lambda: get(port).text == f"gen {gen}", what=f"generation {gen}")
        assert rampart.pid_file.read_text() == f"{master}\n"
        assert rampart.running()
    assert len(seen_workers) == 3


def test_reload_moves_the_pid_file(rampart, port):
    rampart.configure(answer_conf(port, "ok"))
    rampart.start()
    (rampart.prefix / "run").mkdir()
    rampart.configure(text=rampart.conf_text.replace("pid logs/rampart.pid;", "pid run/new.pid;"))
    old_pid_file = rampart.pid_file
    rampart.reload()
    rampart.pid_file = rampart.prefix / "run" / "new.pid"
    assert rampart.pid_file.read_text() == f"{rampart.pid}\n"
    assert not old_pid_file.exists()
    p = run("-p", rampart.prefix, "-c", "rampart.conf", "-s", "quit")
    assert (p.returncode, p.stderr) == (0, "")
    assert rampart.wait_exit(timeout=5) == 0
    assert not rampart.pid_file.exists()


def test_reload_moves_listener_to_new_port(rampart, port, free_port):
    new_port = free_port()
    rampart.configure(answer_conf(port, "here"))
    rampart.start()
    rampart.configure(answer_conf(new_port, "moved"))
    rampart.reload()
    assert get(new_port).text == "moved"

    def old_port_closed():
        try:
            get(port, timeout=1)
        except ConnectionRefusedError:
            return True
        return False
    wait_for(old_port_closed, what=f"port {port} to close")


def test_reload_keeps_old_generation_serving_when_new_port_is_taken(rampart, port, free_port):
    import socket
    taken = socket.socket()
    taken.bind(("127.0.0.1", free_port()))
    taken.listen()
    try:
        rampart.configure(answer_conf(port, "old"))
        rampart.start()
        conf = answer_conf(port, "new") + answer_conf(taken.getsockname()[1], "other")
        rampart.configure(conf)
        assert rampart.reload().group(0) == "reload failed"
        assert f"bind() to 127.0.0.1:{taken.getsockname()[1]} failed" in rampart.log_text()
        assert get(port).text == "old"
    finally:
        taken.close()


def test_old_worker_finishes_in_flight_keepalive_request_after_reload(rampart, port):
    import http.client
    rampart.configure(answer_conf(port, "old"))
    rampart.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"old"
        (old_worker,), _ = rampart.wait_processes(1)
        rampart.configure(answer_conf(port, "new"))
        rampart.reload()
        # The idle keep-alive connection of the old worker is closed, not left hanging.
        wait_for(lambda: not _alive(old_worker), what=f"old worker {old_worker} to exit")
        assert get(port).text == "new"
    finally:
        conn.close()


def _alive(pid):
    import harness
    return harness.pid_alive(pid)


def test_hup_to_a_worker_is_ignored(rampart, port):
    rampart.configure(answer_conf(port, "same"))
    rampart.start()
    (worker,), _ = rampart.wait_processes(1)
    import os
    os.kill(worker, signal.SIGHUP)
    assert get(port).text == "same"
    assert rampart.wait_processes(1)[0] == [worker]
