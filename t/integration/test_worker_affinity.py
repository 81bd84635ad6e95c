"""worker_cpu_affinity and worker_priority, as nginx: each worker's CPUs are read from
/proc/PID/status (Cpus_allowed_list) and its nice value from /proc/PID/stat.

`auto` binds worker i to the (i mod n)th of the n CPUs rampart may run on (or of the
mask given after auto); masks name one worker each, the last one serving the workers
after it. worker_priority applies to the workers and the helper, not the master.
"""

import os

import harness

ALLOWED = sorted(os.sched_getaffinity(0))


def cpus(pid):
    """The CPUs pid may run on, as a sorted list of numbers."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                out = []
                for part in line.split(":", 1)[1].strip().split(","):
                    lo, _, hi = part.partition("-")
                    out.extend(range(int(lo), int(hi or lo) + 1))
                return out
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


def settled(get, want, timeout=10):
    """get() once it equals want, or its last value: a child is counted as soon as it is
    forked, and sets its priority and CPUs a moment later."""
    try:
        return harness.wait_for(lambda: (lambda v: v if v == want else None)(get()),
                                timeout=timeout, what=f"{want}")
    except harness.RampartError:
        return get()


def nice(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    return int(stat[stat.rindex(")") + 2:].split()[16])


def start(rampart, main, workers):
    port = harness.free_port()
    rampart.configure(workers=workers, main=main, http=f"""
        server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok\\n"; }} }}""")
    rampart.start()
    w, helpers = rampart.wait_processes(workers, 1)
    assert harness.get(port, "/").status == 200
    return w, helpers


def mask(*cpu_list):
    return "".join("1" if c in cpu_list else "0" for c in reversed(range(max(cpu_list) + 1)))


def test_auto_binds_worker_i_to_cpu_i_mod_n(rampart):
    workers, helpers = start(rampart, "worker_cpu_affinity auto;", len(ALLOWED) + 1)
    want = sorted((ALLOWED[i % len(ALLOWED)],) for i in range(len(ALLOWED) + 1))
    assert settled(lambda: sorted(tuple(cpus(pid)) for pid in workers), want) == want
    # the helper and the master are not pinned
    assert cpus(helpers[0]) == ALLOWED
    assert cpus(rampart.pid) == ALLOWED


def test_auto_with_a_mask_spreads_over_that_mask_only(rampart):
    last = ALLOWED[-1]
    workers, _ = start(rampart, f"worker_cpu_affinity auto {mask(last)};", 2)
    want = [[last], [last]]
    assert settled(lambda: [cpus(pid) for pid in workers], want) == want


def test_masks_bind_each_worker_and_the_last_serves_the_rest(rampart):
    first, last = ALLOWED[0], ALLOWED[-1]
    workers, _ = start(rampart, f"worker_cpu_affinity {mask(first)} {mask(last)};", 3)
    want = sorted([(first,), (last,), (last,)])
    assert settled(lambda: sorted(tuple(cpus(pid)) for pid in workers), want) == want


def test_workers_started_by_a_reload_are_pinned_too(rampart):
    workers, _ = start(rampart, "worker_cpu_affinity auto;", 2)
    rampart.configure(text=rampart.conf_text.replace('"ok', '"reloaded'))
    assert "configuration reloaded" in rampart.reload().group(0)
    new, _ = rampart.wait_processes(2, 1, exclude=workers)
    want = sorted((ALLOWED[i % len(ALLOWED)],) for i in range(2))
    assert settled(lambda: sorted(tuple(cpus(pid)) for pid in new), want) == want


def test_without_affinity_workers_run_anywhere(rampart):
    workers, _ = start(rampart, "", 2)
    assert all(cpus(pid) == ALLOWED for pid in workers)


def test_worker_priority_sets_workers_and_helper_nice_not_the_masters(rampart):
    workers, helpers = start(rampart, "worker_priority 7;", 2)
    assert settled(lambda: [nice(pid) for pid in workers + helpers], [7, 7, 7]) == [7, 7, 7]
    assert nice(rampart.pid) == 0


def test_negative_worker_priority_as_root(rampart):
    workers, _ = start(rampart, "worker_priority -5;", 1)
    assert settled(lambda: nice(workers[0]), -5) == -5


def refused(tmp_path, line, message, at=2):
    conf = tmp_path / "rampart.conf"
    conf.write_text(f"worker_processes 2;\n{line}\n")
    p = harness.run("-t", "-p", tmp_path, "-c", "rampart.conf")
    assert p.returncode == 1, p.stderr
    assert f"{conf}:{at}: {message}" in p.stderr, p.stderr


def test_priority_out_of_range_is_refused(tmp_path):
    refused(tmp_path, "worker_priority 21;",
            '"worker_priority": invalid priority "21", it must be a number from -20 to 20')
    refused(tmp_path, "worker_priority -21;",
            '"worker_priority": invalid priority "-21", it must be a number from -20 to 20')
    refused(tmp_path, "worker_priority high;",
            '"worker_priority": invalid priority "high", it must be a number from -20 to 20')


def test_bad_affinity_masks_are_refused(tmp_path):
    refused(tmp_path, "worker_cpu_affinity 0102;",
            '"worker_cpu_affinity": invalid character "2" in mask "0102", only 0 and 1 are '
            'allowed')
    refused(tmp_path, "worker_cpu_affinity 01 0000;",
            '"worker_cpu_affinity": mask "0000" names no CPU')
    refused(tmp_path, "worker_cpu_affinity auto 01 10;",
            '"worker_cpu_affinity": "auto" takes at most one mask')
    refused(tmp_path, "worker_cpu_affinity auto;\nworker_cpu_affinity auto;",
            '"worker_cpu_affinity": duplicate directive', at=3)
