"""
limit_conn, as nginx's: requests in progress per key, counted in a shared-memory
zone by every worker, given back on every ending of a request.

Requests are held in progress with fault_delay (precontent, after the limits): a
held request keeps its slot until its delay ends, its client leaves or its HTTP/2
stream is reset. Every test runs 2 workers. Releases are waited for by polling a
probe request until it passes, never by sleeping.
"""

import select
import signal
import socket

import h2.config
import h2.connection
import h2.events

import reference_nginx
from harness import get, wait_for

ACCESS = ("log_format lc '$status $limit_conn_status $request_uri';\n"
          "access_log logs/access.log lc;\n")
HOLD = "x-delay"


def conf(port, backend_port, limits="limit_conn one 2;", key="$http_x_key", extra="",
         http2=False):
    listen = f"127.0.0.1:{port}" + (" http2" if http2 else "")
    return (ACCESS +
            f"limit_conn_zone {key} zone=one:1m;\n"
            f"server {{\n    listen {listen};\n"
            f"    location / {{\n        {limits}\n        {extra}\n"
            f"        fault_delay header={HOLD} max=60s;\n"
            f"        proxy_pass http://127.0.0.1:{backend_port};\n    }}\n}}\n")


def access_lines(rampart):
    try:
        return (rampart.prefix / "logs" / "access.log").read_text().splitlines()
    except FileNotFoundError:
        return []


class Held:
    """Requests held in progress, each on its own connection; closed at the end."""

    def __init__(self, rampart, port):
        self.rampart, self.port, self.socks = rampart, port, []

    def open(self, key="k", path="/held", delay_ms=60000):
        """Sends a held request and waits until its worker holds it (the delay's log line
        names the request's path). Returns the socket and the holding worker's pid."""
        since = self.rampart.log_size()
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.socks.append(s)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Key: {key}\r\n"
                  f"X-Delay: {delay_ms}\r\n\r\n".encode())
        m = self.rampart.wait_log(rf"\] (\d+)#\d+: fault injection: request delayed {delay_ms}ms",
                                  since=since)
        return s, int(m.group(1))

    def close(self):
        for s in self.socks:
            s.close()


def probe(port, key="k", path="/probe"):
    return get(port, path, headers={"X-Key": key}).status


def pass_eventually(port, key="k", what="a slot given back"):
    wait_for(lambda: probe(port, key) == 200, timeout=10, what=what)


def test_n_held_requests_of_one_key_fill_the_limit_across_both_workers(rampart, port, backend):
    rampart.configure(conf(port, backend.port), workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        holders = {held.open()[1], held.open()[1]}
        # every further request of the key is refused, whichever worker takes it: the
        # workers share one count. Go on until a worker that holds none of the two has
        # refused too (connections are spread by the kernel's hash).
        refusers = set()
        for _ in range(60):
            since = rampart.log_size()
            assert probe(port) == 503
            m = rampart.wait_log(r"\] (\d+)#\d+: limiting connections by zone \"one\"",
                                 since=since)
            refusers.add(int(m.group(1)))
            if len(holders | refusers) == 2:
                break
        assert len(holders | refusers) == 2, "both workers were not reached"
        # another key has slots of its own
        assert probe(port, key="other") == 200
    finally:
        held.close()


def test_a_slot_is_given_back_when_its_request_completes(rampart, port, backend):
    rampart.configure(conf(port, backend.port), workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open()
        short, _ = held.open(delay_ms=300)
        assert probe(port) == 503
        data = b""
        while b"\r\n\r\n" not in data:
            data += short.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")
        pass_eventually(port, what="the completed request's slot")
        # the passing probe's slot is back once its log line is written (cleanups run
        # before the log phase); then the next probe finds the same room
        wait_for(lambda: any(line.startswith("200 PASSED /probe") for line in access_lines(rampart)),
                 what="the passing probe's log line")
        assert probe(port) == 200  # and it stays given back
    finally:
        held.close()


def test_a_slot_is_given_back_when_the_client_closes_mid_request(rampart, port, backend):
    rampart.configure(conf(port, backend.port), workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open()
        leaving, _ = held.open()
        assert probe(port) == 503
        leaving.close()
        pass_eventually(port, what="the aborted request's slot")
        wait_for(lambda: any(line.startswith("499 PASSED /held") for line in access_lines(rampart)),
                 what="the aborted request's 499")
        # the probe that passed gives its slot back before its log line is written (the
        # cleanups run before the log phase): once the line is there, only the held
        # request counts, whichever worker the next connection lands on
        wait_for(lambda: any(line.startswith("200 PASSED /probe") for line in access_lines(rampart)),
                 what="the passing probe's log line")
        # exactly one slot came back: the other held request still counts
        held.open(path="/again")
        assert probe(port) == 503
    finally:
        held.close()


def h2_connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sock.sendall(c.data_to_send())
    return sock, c


def h2_send(sock, c, sid, path, delay_ms=None):
    fields = [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x"),
              ("x-key", "k")]
    if delay_ms is not None:
        fields.append(("x-delay", str(delay_ms)))
    c.send_headers(sid, fields, end_stream=True)
    sock.sendall(c.data_to_send())


def h2_status(sock, c, sid):
    """Reads until stream sid has its response head; returns its status."""
    while True:
        data = sock.recv(65536)
        assert data, "the connection closed"
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                return int(dict(ev.headers)[b":status"])
        sock.sendall(c.data_to_send())


def test_each_http2_stream_counts_one_and_a_reset_stream_gives_its_slot_back(rampart, port,
                                                                              backend):
    rampart.configure(conf(port, backend.port, http2=True), workers=2)
    rampart.start()
    sock, c = h2_connect(port)
    try:
        since = rampart.log_size()
        h2_send(sock, c, 1, "/s1", delay_ms=60000)
        h2_send(sock, c, 3, "/s3", delay_ms=60000)
        wait_for(lambda: rampart.log_text()[since:].count("request delayed 60000ms") == 2,
                 what="two held streams")
        # one connection, two streams in progress: the third stream is over the limit
        h2_send(sock, c, 5, "/s5")
        assert h2_status(sock, c, 5) == 503
        c.reset_stream(1)
        sock.sendall(c.data_to_send())
        wait_for(lambda: any(line.startswith("499 PASSED /s1") for line in access_lines(rampart)),
                 what="the reset stream's end")
        # the slot came back: a new held stream passes the limit and is held ...
        since = rampart.log_size()
        h2_send(sock, c, 7, "/s7", delay_ms=59000)
        rampart.wait_log(r"request delayed 59000ms", since=since)
        # ... and exactly one came back: streams 3 and 7 fill the limit again
        h2_send(sock, c, 9, "/s9")
        assert h2_status(sock, c, 9) == 503
    finally:
        sock.close()


def test_dry_run_only_logs_and_says_so_in_limit_conn_status(rampart, port, backend):
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;",
                           extra="limit_conn_dry_run on;"), workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open()
        since = rampart.log_size()
        assert probe(port) == 200
        rampart.wait_log(r"\[error\] \d+#\d+: limiting connections, dry run, by zone \"one\"",
                         since=since)
        wait_for(lambda: "200 REJECTED_DRY_RUN /probe" in access_lines(rampart),
                 what="the dry run's status in the access log")
    finally:
        held.close()


def test_status_and_log_level_are_the_configured_ones(rampart, port, backend):
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;",
                           extra="limit_conn_status 429; limit_conn_log_level warn;"),
                      workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open()
        since = rampart.log_size()
        assert probe(port) == 429
        rampart.wait_log(r"\[warn\] \d+#\d+: limiting connections by zone \"one\", "
                         r"client: 127\.0\.0\.1, request: \"GET /probe\"", since=since)
        wait_for(lambda: "429 REJECTED /probe" in access_lines(rampart),
                 what="the refusal in the access log")
    finally:
        held.close()


def test_limit_conn_status_is_passed_for_a_counted_request_and_empty_without_a_key(
        rampart, port, backend):
    rampart.configure(conf(port, backend.port), workers=2)
    rampart.start()
    assert probe(port) == 200
    assert get(port, "/nokey").status == 200
    wait_for(lambda: {"200 PASSED /probe", "200 - /nokey"} <= set(access_lines(rampart)),
             what="both requests logged")


def test_an_empty_key_is_not_limited(rampart, port, backend):
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;"), workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open(key="")
        held.open(key="", path="/second")
        assert probe(port, key="") == 200
        assert probe(port, key="k") == 200  # a keyed request is counted on its own
    finally:
        held.close()


def test_several_limits_apply_together_and_a_refusal_gives_back_what_it_took(rampart, port,
                                                                             backend):
    # per key (1) and for everyone (3): the second request of key a is refused by the
    # first limit; a refusal by the second limit gives back the slot the first took
    http = (ACCESS +
            "limit_conn_zone $http_x_key zone=perkey:1m;\n"
            "limit_conn_zone $server_name zone=all:1m;\n"
            f"server {{\n    listen 127.0.0.1:{port};\n    server_name s;\n"
            "    limit_conn perkey 1;\n    limit_conn all 2;\n"
            f"    location / {{\n        fault_delay header={HOLD} max=60s;\n"
            f"        proxy_pass http://127.0.0.1:{backend.port};\n    }}\n}}\n")
    rampart.configure(http, workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open(key="a")
        assert probe(port, key="a") == 503
        held.open(key="b")
        assert probe(port, key="c") == 503  # over "all"; it took and gave back perkey's c
        assert probe(port, key="c") == 503  # ... so perkey alone would pass it, "all" does not
        held.socks[1].close()
        pass_eventually(port, key="c", what="the slot of b")
    finally:
        held.close()


def test_a_location_with_its_own_limit_conn_does_not_inherit_the_servers(rampart, port,
                                                                         backend):
    http = ("limit_conn_zone $http_x_key zone=one:1m;\n"
            "limit_conn_zone $http_x_key zone=two:1m;\n"
            f"server {{\n    listen 127.0.0.1:{port};\n    limit_conn one 1;\n"
            f"    location / {{\n        fault_delay header={HOLD} max=60s;\n"
            f"        proxy_pass http://127.0.0.1:{backend.port};\n    }}\n"
            f"    location /own/ {{\n        limit_conn two 2;\n"
            f"        fault_delay header={HOLD} max=60s;\n"
            f"        proxy_pass http://127.0.0.1:{backend.port};\n    }}\n}}\n")
    rampart.configure(http, workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        held.open(path="/held")        # zone one: full
        assert probe(port, path="/x") == 503
        held.open(path="/own/1")       # zone two only
        assert probe(port, path="/own/2") == 200
    finally:
        held.close()


def test_bad_limit_conn_directives_are_refused_with_file_and_line(conf_dir):
    cases = [
        ("limit_conn_zone $remote_addr;", '"limit_conn_zone": takes 2 arguments, got 1'),
        ("limit_conn_zone $remote_addr zone=one;",
         '"limit_conn_zone": invalid zone size "zone=one"'),
        ("limit_conn_zone $remote_addr zone=one:10k;",
         '"limit_conn_zone": zone "zone=one:10k" is too small'),
        ("limit_conn_zone $remote_addr bogus;", '"limit_conn_zone": invalid parameter "bogus"'),
        ("limit_conn_zone $remote_addr zone=one:1m; limit_conn one 0;",
         '"limit_conn": invalid number of connections "0"'),
        ("limit_conn_zone $remote_addr zone=one:1m; limit_conn one 65536;",
         '"limit_conn": connection limit must be less 65536'),
        ("limit_conn_zone $remote_addr zone=one:1m; limit_conn one 1; limit_conn one 2;",
         '"limit_conn": is duplicate'),
        ("limit_conn_zone $remote_addr zone=one:1m; limit_conn_zone $uri zone=one:1m;",
         '"limit_conn_zone": zone "one" is already bound to key "$remote_addr"'),
        ("limit_conn nosuch 1;", '"limit_conn": unknown limit_conn_zone "nosuch"'),
        ("limit_conn_status 200;", '"limit_conn_status": value must be between 400 and 599'),
        ("limit_conn_log_level debug;", '"limit_conn_log_level": invalid value "debug", '
                                        'it must be info, notice, warn or error'),
        ("limit_conn_dry_run maybe;",
         '"limit_conn_dry_run": invalid value "maybe", it must be "on" or "off"'),
    ]
    for http, message in cases:
        reference_nginx.assert_rampart_refuses(conf_dir, http, 3, message)


def test_a_worker_that_dies_holding_slots_has_them_given_back(rampart, port, backend):
    rampart.configure(conf(port, backend.port), workers=2)
    rampart.start()
    held = Held(rampart, port)
    try:
        _, victim = held.open()
        held.open(path="/other")
        assert probe(port) == 503
        since = rampart.log_size()
        rampart.kill(victim, signal.SIGKILL)
        m = rampart.wait_log(rf"worker process {victim} left (\d+) requests counted by "
                             r"limit_conn: given back", since=since)
        assert int(m.group(1)) in (1, 2)
        # what the dead worker held is free again (without the give-back the key would
        # stay at 2 for good: the dead worker's counts plus the other's)
        pass_eventually(port, what="the dead worker's slots")
    finally:
        held.close()


def test_a_zone_too_full_for_a_new_key_refuses_with_the_status(rampart, port, backend):
    # the smallest zone (32k) holds some hundreds of keys: hold requests of new keys
    # until one finds no room
    rampart.configure(conf(port, backend.port, limits="limit_conn one 1;",
                           key="$http_x_key$http_x_pad").replace("zone=one:1m", "zone=one:32k"),
                      workers=2)
    rampart.start()
    held = Held(rampart, port)
    pad = "p" * 240  # big keys fill the zone sooner (a key over 255 bytes is not limited)
    try:
        refused = None
        for i in range(400):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            held.socks.append(s)
            s.sendall(f"GET /k{i} HTTP/1.1\r\nHost: x\r\nX-Key: k{i}\r\nX-Pad: {pad}\r\n"
                      f"X-Delay: 60000\r\n\r\n".encode())
            # either it is held (its delay is logged) or it is answered at once
            wait_for(lambda: select.select([s], [], [], 0)[0] or
                     rampart.log_text().count("request delayed 60000ms") == i + 1,
                     timeout=10, what=f"request {i} held or answered")
            if select.select([s], [], [], 0)[0]:
                refused = s.recv(65536)
                break
        assert refused is not None and refused.startswith(b"HTTP/1.1 503"), refused
        rampart.wait_log(r'limit_conn_zone "one" has no room for key "k\d+p+", client: 127\.0\.0\.1')
        assert probe(port, key="k0") == 503  # the keys that found room are still counted
    finally:
        held.close()
