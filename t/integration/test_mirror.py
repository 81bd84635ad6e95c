"""`mirror` and `mirror_request_body`, as nginx's ngx_http_mirror_module, end to end:
a copy of each client request goes to a shadow server through an `internal`
location, with the same method, fields and body, while the client gets the main
backend's answer, untouched and undelayed, whatever the shadow does (refuse the
connection, answer 500, answer late or never). Over HTTP/1.1 and HTTP/2.

The main backend is backend.py (the `backend` fixture). The shadow is a Recorder
in this process: it records each request whole, and can hold its answers until the
test lets them go, so "the client got its answer before the shadow answered" is
shown by events, not by timing.
"""

import hashlib
import json
import re
import signal
import socket
import threading

import pytest

import harness
import reference_nginx
from h2client import H2Client
from harness import request, wait_for

KB = 1 << 10


class Recorder:
    """A tiny HTTP/1.1 server on a thread: records every request (method, target,
    fields, body) and answers 200 "shadow" with Connection: close, at once or, while
    held, only once released."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.requests = []
        self.answered = 0
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.released.set()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def hold(self):
        self.released.clear()

    def release(self):
        self.released.set()

    def stop(self):
        self.stopping = True
        self.released.set()
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.sock.close()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(20)
            f = conn.makefile("rb")
            line = f.readline()
            if not line:
                return
            method, target, _ = line.decode().split(" ", 2)
            headers = []
            while True:
                h = f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode().partition(":")
                headers.append((name.strip(), value.strip()))
            fields = {n.lower(): v for n, v in headers}
            body = b""
            if "content-length" in fields:
                body = f.read(int(fields["content-length"]))
            elif fields.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int(f.readline().split(b";")[0], 16)
                    if size == 0:
                        f.readline()
                        break
                    body += f.read(size)
                    f.readline()
            with self.lock:
                self.requests.append({"method": method, "target": target, "headers": headers,
                                      "fields": fields, "body": body})
            self.released.wait(30)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"
                         b"shadow\n")
            with self.lock:
                self.answered += 1
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def count(self):
        with self.lock:
            return len(self.requests)

    def wait_requests(self, n, timeout=10):
        wait_for(lambda: self.count() >= n, timeout=timeout, what=f"{n} mirrored requests")
        with self.lock:
            return list(self.requests)


@pytest.fixture
def shadow():
    s = Recorder()
    yield s
    s.stop()


def serve(rampart, port, backend, shadow_addr, location="mirror /mirror;", mirror_location="",
          server="", http="", extra="", listen_opts=""):
    """Starts rampart: `location /` proxies to the main backend with `location`'s lines,
    `location = /mirror` is internal and proxies to shadow_addr."""
    rampart.configure(f"{http}\n"
                      f"server {{\n listen 127.0.0.1:{port}{listen_opts};\n {server}\n"
                      f" location / {{ {location} proxy_pass http://{backend.addr}; }}\n"
                      f" location = /mirror {{ internal; proxy_set_header X-Original-URI "
                      f"$request_uri; {mirror_location} proxy_pass http://{shadow_addr}; }}\n"
                      f" {extra}\n}}")
    rampart.start()
    return rampart


def sha(data):
    return hashlib.sha256(data).hexdigest()


# -- the copy ---------------------------------------------------------------------


def test_mirror_sends_a_copy_with_the_same_method_fields_and_body(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr)
    body = bytes(range(256)) * 100
    r = request(port, "/api/orders?id=7&echo=1", method="PUT", body=body,
                headers={"X-Custom": "yes", "Content-Type": "application/octet-stream",
                         "Cookie": "a=1"})
    assert r.status == 200
    main = json.loads(r.body)
    assert main["method"] == "PUT" and main["body_sha256"] == sha(body)

    copy = shadow.wait_requests(1)[0]
    assert copy["method"] == "PUT"
    # proxy_pass without a URI sends the mirror's own URI with the client's arguments, as
    # nginx does; the client's target is $request_uri
    assert copy["target"] == "/mirror?id=7&echo=1"
    assert copy["fields"]["x-original-uri"] == "/api/orders?id=7&echo=1"
    assert copy["body"] == body
    assert copy["fields"]["content-length"] == str(len(body))
    for name in ("x-custom", "content-type", "cookie", "accept-encoding", "x-request-id"):
        assert copy["fields"].get(name) == dict((n.lower(), v) for n, v in main["headers"])[name], \
            name
    assert "connection" not in copy["fields"] or copy["fields"]["connection"] == "close"


def test_mirror_to_shadow_with_request_uri_gets_the_clients_target(rampart, port, backend,
                                                                   shadow):
    # nginx's usual shadowing idiom: proxy_pass with $request_uri in the mirror location
    rampart.configure(f"upstream shadow {{ server {shadow.addr}; }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      f" location / {{ mirror /mirror; proxy_pass http://{backend.addr}; }}\n"
                      f" location = /mirror {{ internal; proxy_pass http://shadow$request_uri; }}"
                      f"\n}}")
    rampart.start()
    assert request(port, "/api/v2/items?page=3", method="POST", body=b"payload").status == 200
    copy = shadow.wait_requests(1)[0]
    assert (copy["method"], copy["target"], copy["body"]) == ("POST", "/api/v2/items?page=3",
                                                              b"payload")


def test_chunked_request_body_reaches_main_and_mirror(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr)
    chunks = [b"a" * 1000, b"b" * 5000, b"c" * 17]
    body = b"".join(chunks)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /up?echo=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Connection: close\r\n\r\n"
                  + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")
        data = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            data += piece
    assert data.startswith(b"HTTP/1.1 200")
    assert sha(body).encode() in data  # the main backend got it whole
    copy = shadow.wait_requests(1)[0]
    assert copy["body"] == body and copy["fields"]["content-length"] == str(len(body))


def test_mirror_request_body_off_sends_the_copy_without_a_body(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr, location="mirror /mirror; mirror_request_body off;")
    r = request(port, "/form?echo=1", method="POST", body=b"x" * 3000)
    assert r.status == 200 and json.loads(r.body)["body_length"] == 3000
    copy = shadow.wait_requests(1)[0]
    assert copy["method"] == "POST"
    assert copy["body"] == b""
    assert "content-length" not in copy["fields"]
    assert "transfer-encoding" not in copy["fields"]


def test_a_body_over_client_max_body_size_is_refused_and_not_mirrored(rampart, port, backend,
                                                                      shadow):
    serve(rampart, port, backend, shadow.addr, server="client_max_body_size 1k;")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        body = b"z" * 4000
        s.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 413")
    # a request that does get mirrored afterwards is the only copy the shadow sees
    assert request(port, "/small", method="POST", body=b"ok").status == 200
    assert [c["body"] for c in shadow.wait_requests(1)] == [b"ok"]
    assert backend.stats()["requests"] == 1


def test_several_mirrors_each_get_a_copy(rampart, port, backend, shadow):
    other = Recorder()
    try:
        serve(rampart, port, backend, shadow.addr, location="mirror /mirror; mirror /mirror2;",
              extra=f"location = /mirror2 {{ internal; proxy_pass http://{other.addr}; }}")
        assert request(port, "/two", method="POST", body=b"both").status == 200
        assert shadow.wait_requests(1)[0]["body"] == b"both"
        assert other.wait_requests(1)[0]["body"] == b"both"
        assert other.requests[0]["target"] == "/mirror2"
    finally:
        other.stop()


def test_mirror_is_inherited_and_mirror_off_stops_it_in_an_inner_location(rampart, port, backend,
                                                                          shadow):
    serve(rampart, port, backend, shadow.addr, location="", server="mirror /mirror;",
          extra=f"location /quiet {{ mirror off; proxy_pass http://{backend.addr}; }}")
    assert request(port, "/quiet/a").status == 200
    assert request(port, "/loud").status == 200
    # the copy of /loud arrives; /quiet, answered first, made none
    copies = shadow.wait_requests(1)
    assert request(port, "/quiet/b").status == 200
    assert request(port, "/loud2").status == 200
    copies = shadow.wait_requests(2)
    assert [c["fields"]["x-original-uri"] for c in copies] == ["/loud", "/loud2"]


def test_the_internal_mirror_location_answers_404_to_a_client(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr)
    r = request(port, "/mirror")
    assert r.status == 404
    assert request(port, "/after").status == 200
    copies = shadow.wait_requests(1)
    assert [c["fields"]["x-original-uri"] for c in copies] == ["/after"]
    assert backend.stats()["requests"] == 1


def test_a_mirror_never_mirrors_itself(rampart, port, backend, shadow):
    # the mirror location inherits the server's mirror: a copy is not copied again
    serve(rampart, port, backend, shadow.addr, location="", server="mirror /mirror;")
    assert request(port, "/once").status == 200
    shadow.wait_requests(1)
    assert request(port, "/twice").status == 200
    assert len(shadow.wait_requests(2)) == 2
    assert [c["target"] for c in shadow.requests] == ["/mirror", "/mirror"]


# -- the client's answer does not depend on the mirror ---------------------------------


def test_client_gets_the_main_answer_when_the_shadow_refuses_connections(rampart, port, backend):
    dead = harness.free_port()  # nothing listens there
    serve(rampart, port, backend, f"127.0.0.1:{dead}")
    for i in range(5):
        r = request(port, f"/r{i}", method="POST", body=b"data")
        assert r.status == 200 and r.headers["X-Backend-Name"] == backend.name
    assert backend.stats()["requests"] == 5
    wait_for(lambda: "connect() failed (111: Connection refused)" in rampart.log_text(),
             what="the mirror's failure in the error log")


def test_client_gets_the_main_answer_when_the_shadow_answers_500(rampart, port, backend,
                                                                  backend_factory):
    failing = backend_factory("failing")
    serve(rampart, port, backend, failing.addr,
          mirror_location="proxy_set_header X-Backend-Status 500;")
    r = request(port, "/x?echo=1")
    assert r.status == 200 and r.headers["X-Backend-Name"] == backend.name
    wait_for(lambda: failing.stats()["requests"] == 1, what="the copy at the failing shadow")


def test_a_slow_mirror_does_not_delay_the_client(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr)
    shadow.hold()
    # the client's answer comes while the shadow holds its own: nothing waits for it
    r = request(port, "/slow?echo=1", method="POST", body=b"payload", timeout=10)
    assert r.status == 200 and json.loads(r.body)["body_length"] == 7
    copy = shadow.wait_requests(1)[0]
    assert copy["body"] == b"payload"
    assert shadow.answered == 0
    # the same connection serves on meanwhile, and closes, while the copy is in flight
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for i in range(3):
            s.sendall(b"GET /ka%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            rest = head.split(b"\r\n\r\n", 1)[1]
            while len(rest) < length:
                rest += s.recv(4096)
    shadow.wait_requests(4)
    assert shadow.answered == 0
    shadow.release()
    wait_for(lambda: shadow.answered == 4, what="the shadow's answers")
    # rampart took the late answers and is still fine
    assert request(port, "/after").status == 200


def test_a_mirror_that_times_out_is_logged_and_dropped(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr, mirror_location="proxy_read_timeout 300ms;")
    shadow.hold()
    assert request(port, "/t").status == 200
    shadow.wait_requests(1)
    wait_for(lambda: "upstream timed out" in rampart.log_text(), what="the mirror's timeout")
    shadow.release()
    assert request(port, "/t2").status == 200


def test_the_copies_are_not_logged_unless_log_subrequest_is_on(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr,
          http='log_format m "$uri $status $request_id";',
          server="access_log logs/access.log m;",
          extra=f"location /logged {{ mirror /mirror2; proxy_pass http://{backend.addr}; }}\n"
                f"location = /mirror2 {{ internal; log_subrequest on; "
                f"proxy_pass http://{shadow.addr}; }}")
    assert request(port, "/plain").status == 200
    assert request(port, "/logged").status == 200
    shadow.wait_requests(2)
    log = rampart.prefix / "logs" / "access.log"

    def lines():
        return log.read_text().splitlines() if log.exists() else []
    wait_for(lambda: len(lines()) >= 3, what="three access log lines")
    entries = [ln.split() for ln in lines()]
    uris = sorted(e[0] for e in entries)
    assert uris == ["/logged", "/mirror2", "/plain"]
    by_uri = {e[0]: e for e in entries}
    assert by_uri["/mirror2"][1] == "200"
    # the copy carries its client request's id
    assert by_uri["/mirror2"][2] == by_uri["/logged"][2]
    ids = {c["fields"]["x-request-id"] for c in shadow.requests}
    assert by_uri["/logged"][2] in ids


# -- HTTP/2 -------------------------------------------------------------------------


def test_mirror_over_http2(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr, listen_opts=" http2")
    shadow.hold()
    body = b"h2 body " * 4000
    with H2Client(port, timeout=10) as c:
        r = c.request("POST", "/h2?echo=1", headers=[("x-h2", "1")], body=body)
        assert r.status == 200
        assert json.loads(bytes(r.body))["body_length"] == len(body)
        # a second stream on the same connection while the first copy is held
        r2 = c.request("GET", "/h2b")
        assert r2.status == 200
    copies = shadow.wait_requests(2)
    first = [c for c in copies if c["fields"]["x-original-uri"] == "/h2?echo=1"][0]
    assert first["method"] == "POST" and first["body"] == body
    assert first["fields"]["x-h2"] == "1"
    shadow.release()
    wait_for(lambda: shadow.answered == 2, what="the shadow's answers")


# -- stopping -----------------------------------------------------------------------


def test_graceful_stop_waits_for_a_mirror_in_flight_then_exits(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr)
    shadow.hold()
    assert request(port, "/q", method="POST", body=b"last").status == 200
    shadow.wait_requests(1)
    workers, _ = rampart.wait_processes(1)  # not the helper: it exits at once
    rampart.proc.send_signal(signal.SIGQUIT)
    wait_for(lambda: "gracefully shutting down" in rampart.log_text(), what="the stop")
    # the worker still holds the copy: it has not exited
    assert all(harness.pid_alive(w) for w in workers)
    shadow.release()
    rampart.proc.wait(timeout=15)
    assert shadow.answered == 1
    assert not rampart.problems()


def test_graceful_stop_is_bounded_by_the_mirror_location_timeouts(rampart, port, backend, shadow):
    serve(rampart, port, backend, shadow.addr, mirror_location="proxy_read_timeout 500ms;")
    shadow.hold()
    assert request(port, "/q").status == 200
    shadow.wait_requests(1)
    rampart.proc.send_signal(signal.SIGQUIT)
    # the shadow never answers: the copy times out and the worker exits
    rampart.proc.wait(timeout=15)
    assert "upstream timed out" in rampart.log_text()
    assert not rampart.problems()
    shadow.release()


# -- configuration errors -------------------------------------------------------------
# http-block content, the line of the mistake (the content starts on line 3 in rampart's
# file and nginx's alike), rampart's message after "FILE:LINE: ", and whether nginx
# refuses the same file.

def in_location(*lines):
    return ("server {\n    listen 127.0.0.1:8080;\n    location / {\n"
            + "".join(f"        {line}\n" for line in lines) + "    }\n}\n")


ERRORS = {
    "mirror_off_then_a_uri": (in_location("mirror off;", "mirror /m;"), 7,
                              '"mirror": duplicate directive', True),
    "mirror_uri_then_off": (in_location("mirror /m;", "mirror off;"), 7,
                            '"mirror": duplicate directive', True),
    "mirror_two_uris_on_one_line": (in_location("mirror /a /b;"), 6,
                                    '"mirror": takes 1 argument, got 2', True),
    "mirror_uri_not_a_path": (in_location("mirror shadow;"), 6,
                              '"mirror": invalid mirror URI "shadow": it must start with "/"',
                              False),
    "mirror_request_body_not_a_flag": (in_location("mirror_request_body yes;"), 6,
                                       '"mirror_request_body": invalid value "yes", it must be '
                                       '"on" or "off"', True),
    "internal_with_an_argument": (in_location("internal on;"), 6,
                                  '"internal": takes 0 arguments, got 1', True),
    "internal_twice": (in_location("internal;", "internal;"), 7,
                       '"internal": duplicate directive', True),
    "internal_in_a_server": ("server {\n    listen 127.0.0.1:8080;\n    internal;\n}\n", 5,
                             '"internal": not allowed in the server context', True),
}


@pytest.mark.parametrize("case", ERRORS)
def test_configuration_error_names_file_and_line(conf_dir, case):
    http, line, message, _ = ERRORS[case]
    (conf_dir / "rampart.conf").write_text(reference_nginx.rampart_text(http))
    p = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == (f"rampart: {path}:{line}: {message}\n"
                        f"rampart: configuration file {path} test failed\n")


@pytest.mark.parametrize("case", [c for c in ERRORS if ERRORS[c][3]])
def test_nginx_refuses_the_same_configuration(tmp_path, case):
    reference_nginx.require()
    http, line, _, _ = ERRORS[case]
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(http)
    p = nginx.check()
    assert p.returncode != 0, f"nginx accepts what rampart refuses:\n{p.stderr}"
    m = re.search(rf"\[emerg\] .* in {re.escape(str(nginx.conf_path))}:(\d+)", p.stderr)
    assert m and int(m.group(1)) == line, p.stderr
