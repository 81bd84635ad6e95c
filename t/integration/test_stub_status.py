"""nginx's `stub_status;`: its exact output format (trailing spaces included) with the
node's numbers across workers, and the $connections_* variables."""

import re
import socket

import harness
from harness import get

FORMAT = re.compile(r"Active connections: (\d+) \n"
                    r"server accepts handled requests\n"
                    r" (\d+) (\d+) (\d+) \n"
                    r"Reading: (\d+) Writing: (\d+) Waiting: (\d+) \n")


def start(rampart, workers=2):
    port = harness.free_port()
    rampart.configure(f"""
    server {{
        listen 127.0.0.1:{port};
        location = /basic_status {{ stub_status; }}
        location = /vars {{
            return 200 "$connections_active $connections_reading $connections_writing $connections_waiting\\n";
        }}
        location / {{ return 200 "ok\\n"; }}
    }}
    """, workers=workers)
    rampart.start()
    return port


def status(port):
    r = get(port, "/basic_status")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/plain"
    m = FORMAT.fullmatch(r.text)
    assert m, repr(r.text)
    return [int(x) for x in m.groups()]


def test_stub_status_answers_in_nginx_format_with_every_workers_counts(rampart):
    port = start(rampart)
    for _ in range(9):
        assert get(port, "/").status == 200
    # the 9 connections closed (their close may still be on its way), this one is open
    got = {}

    def closed():
        got["v"] = status(port)
        return got["v"][0] == 1
    harness.wait_for(closed, what="the earlier connections closed")
    active, accepts, handled, reqs, reading, writing, waiting = got["v"]
    # 9 requests, then one status request per poll, one connection each, and the
    # harness's readiness probe: a connection without a request
    assert accepts >= 11 and handled == accepts and reqs == accepts - 1
    assert (active, reading, writing, waiting) == (1, 0, 1, 0)


def test_idle_keepalive_connections_wait_and_a_partial_head_reads(rampart):
    port = start(rampart)
    idle = socket.create_connection(("127.0.0.1", port))
    idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"ok\n" in idle.recv(4096)
    partial = socket.create_connection(("127.0.0.1", port))
    partial.sendall(b"GET / HTTP/1.1\r\nHost:")
    got = {}

    def both():
        got["v"] = status(port)
        # (the idle connection's request ends, its log phase run, just after its answer)
        active, _, _, _, reading, writing, waiting = got["v"]
        return (active, reading, writing, waiting) == (3, 1, 1, 1)
    harness.wait_for(both, what="one reading, one idle and one busy connection")
    partial.close()
    idle.close()


def test_connections_variables_give_the_same_numbers(rampart):
    port = start(rampart)
    harness.wait_for(lambda: get(port, "/vars").text == "1 0 1 0\n",
                     what="$connections_* of one busy connection")
