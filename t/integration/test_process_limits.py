"""worker_rlimit_nofile reaches the workers; upstream blocks are checked at load."""

import re

from harness import run


def soft_nofile(pid):
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line")


def test_worker_rlimit_nofile_is_the_workers_open_files_limit(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "x"; }}',
                      main="worker_rlimit_nofile 4321;")
    rampart.start()
    # settled roles: a helper just forked holds the listeners (so looks like a worker)
    # until it closes them
    workers, _ = rampart.wait_processes(1)
    assert workers
    for pid in workers:
        assert soft_nofile(pid) == 4321


def test_worker_rlimit_nofile_change_applies_to_the_next_generation(rampart, port):
    http = f'server {{ listen 127.0.0.1:{port}; return 200 "x"; }}'
    rampart.configure(http, main="worker_rlimit_nofile 4321;")
    rampart.start()
    old_workers, _ = rampart.wait_processes(1)
    rampart.configure(http, main="worker_rlimit_nofile 5432;")
    rampart.reload()
    rampart.wait_log(r"configuration reloaded")

    def new_workers():
        workers, _ = rampart.roles()
        return [w for w in workers if w not in old_workers]

    from harness import wait_for
    wait_for(lambda: new_workers(), what="a new worker")
    assert soft_nofile(new_workers()[0]) == 5432


def test_upstream_block_with_server_parameters_is_accepted(conf_dir):
    conf = conf_dir / "ups.conf"
    conf.write_text("http {\n"
                    "    upstream api {\n"
                    "        server 127.0.0.1:9001 weight=3 max_conns=10 max_fails=2 "
                    "fail_timeout=5s;\n"
                    "        server 127.0.0.1:9002 backup;\n"
                    "        server [::1]:9003 down;\n"
                    "    }\n"
                    "}\n")
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr


def test_upstream_server_with_a_bad_parameter_names_file_and_line(conf_dir):
    conf = conf_dir / "ups.conf"
    conf.write_text("http {\n    upstream api {\n        server 127.0.0.1:9001 weight=0;\n    }\n}\n")
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert re.search(r'ups\.conf:3: "server": invalid weight "0"', r.stderr), r.stderr
