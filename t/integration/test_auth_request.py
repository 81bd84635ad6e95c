"""auth_request and auth_request_set, as nginx's auth_request module: the request waits
for a GET subrequest to an internal location that proxies to an authorization service
(backend.py's auth=1 mode: the status comes from the Authorization field), carrying
the request's fields and no body; 2xx lets it through, 401 answers 401 with the
service's WWW-Authenticate, 403 answers 403, anything else 500. auth_request_set reads
the service's response ($upstream_http_x_auth_user) and the proxied request carries
it. HTTP/1 and HTTP/2 clients; answers compared with Debian's nginx."""

import socket
import threading
import time

import harness
import reference_nginx
from h2client import H2Client


def http_conf(port, app, authd, listen_opts=""):
    return f"""
    server {{
        listen 127.0.0.1:{port}{listen_opts};
        location / {{
            auth_request /_auth;
            auth_request_set $user $upstream_http_x_auth_user;
            auth_request_set $auth_status $upstream_status;
            proxy_set_header X-Backend-Header "X-Seen-User:$user";
            proxy_pass http://{app.addr};
        }}
        location /public/ {{ auth_request off; proxy_pass http://{app.addr}; }}
        location = /_auth {{
            internal;
            proxy_pass http://{authd.addr}/check?auth=1;
        }}
    }}
    """


def serve(rampart, port, app, authd, listen_opts=""):
    rampart.configure(http_conf(port, app, authd, listen_opts))
    return rampart.start()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_granted_request_reaches_the_app_with_the_user_the_service_named(
        rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    serve(rampart, port, app, authd)
    r = harness.request(port, "/orders?id=7", method="POST", body=b"payload",
                        headers={**bearer("alice"), "X-Client": "c1"})
    assert r.status == 200
    assert r.headers["X-Backend-Name"] == "app"
    assert r.headers["X-Seen-User"] == "alice"
    [check] = authd.log()
    # a GET to the service's URI, with the client's fields and without the body
    assert check["method"] == "GET"
    assert check["target"] == "/check?auth=1"
    fields = {n.lower(): v for n, v in check["headers"]}
    assert fields["authorization"] == "Bearer alice"
    assert fields["x-client"] == "c1"
    assert "content-length" not in fields or fields["content-length"] == "0"
    assert check["body_length"] == 0
    assert app.log()[0]["body_length"] == len(b"payload")


def test_service_401_is_passed_on_with_its_challenge(rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    serve(rampart, port, app, authd)
    r = harness.get(port, "/orders")
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == 'Bearer realm="backend"'
    assert b"authd" not in r.body  # the service's body is discarded: rampart's page
    assert app.log() == []


def test_service_403_is_answered_403(rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    serve(rampart, port, app, authd)
    r = harness.get(port, "/orders", headers=bearer("deny"))
    assert r.status == 403
    assert "WWW-Authenticate" not in r.headers
    assert app.log() == []


def test_other_service_statuses_fail_with_500(rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    serve(rampart, port, app, authd)
    assert harness.get(port, "/", headers=bearer("error")).status == 500
    assert harness.get(port, "/", headers=bearer("teapot")).status == 500
    rampart.wait_log(r"\[error\] .*auth request unexpected status: 418")
    assert app.log() == []


def test_service_unreachable_fails_with_500(rampart, port, backend_factory):
    app = backend_factory("app")

    class Gone:
        addr = f"127.0.0.1:{harness.free_port()}"
    serve(rampart, port, app, Gone)
    assert harness.get(port, "/", headers=bearer("alice")).status == 500
    assert app.log() == []


def test_auth_request_off_skips_the_check(rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    serve(rampart, port, app, authd)
    assert harness.get(port, "/public/x").status == 200
    assert authd.log() == []


def test_http2_clients_are_checked_too(rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    serve(rampart, port, app, authd, listen_opts=" http2")
    with H2Client(port) as c:
        rs = c.exchange([("GET", "/a", [("authorization", "Bearer bob")], b""),
                         ("GET", "/b", [], b""),
                         ("GET", "/c", [("authorization", "Bearer deny")], b"")])
    assert [r.status for r in rs] == [200, 401, 403]
    assert rs[0].header("x-seen-user") == "bob"
    assert rs[1].header("www-authenticate") == 'Bearer realm="backend"'


def test_a_slow_check_suspends_only_its_request(rampart, port, backend_factory):
    app, authd = backend_factory("app"), backend_factory("authd")
    rampart.configure(http_conf(port, app, authd), workers=1)
    rampart.start()
    done = {}

    def slow():
        # the field reaches the service (and the app): both wait 2 s
        r = harness.get(port, "/slow", headers={**bearer("s"), "X-Backend-Delay": "2"},
                        timeout=20)
        done["slow"] = (r.status, time.monotonic())

    t = threading.Thread(target=slow)
    t.start()
    harness.wait_for(lambda: any(e["target"] == "/check?auth=1" for e in authd.log()),
                     what="the slow check at the service")
    r = harness.get(port, "/fast", headers=bearer("f"))
    fast_at = time.monotonic()
    assert r.status == 200
    t.join(20)
    assert done["slow"][0] == 200
    assert fast_at < done["slow"][1]


def test_client_gone_while_its_check_runs_leaves_the_worker_well(rampart, port, backend_factory,
                                                                 tmp_path):
    app, authd = backend_factory("app"), backend_factory("authd")
    log = tmp_path / "checks.log"
    rampart.configure(http_conf(port, app, authd).replace(
        "internal;", f"internal; log_subrequest on; access_log {log} checks;").replace(
        "server {", "log_format checks $uri; server {", 1))
    rampart.start()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer z\r\n"
                  b"X-Backend-Delay: 1\r\n\r\n")
        harness.wait_for(lambda: len(authd.log()) == 1, what="the check at the service")
    # the check ends after its request did: it is logged, nothing is resumed
    harness.wait_for(lambda: log.exists() and log.read_text() == "/_auth\n", timeout=10,
                     what="the check's end")
    assert harness.get(port, "/y", headers=bearer("ok")).status == 200
    assert app.log()[0]["target"] == "/y"
    assert "[alert]" not in rampart.log_text()


# ---- compared with nginx ----

CASES = [
    ("granted", bearer("alice")),
    ("no credentials", {}),
    ("denied", bearer("deny")),
    ("service error", bearer("error")),
    ("odd status", bearer("teapot")),
]


def answers(port):
    out = []
    for path in ("/api", "/public/x"):
        for name, headers in CASES:
            r = harness.get(port, path, headers=headers)
            out.append((path, name, r.status, r.headers.get("WWW-Authenticate"),
                        r.headers.get("X-Seen-User"), r.headers.get("X-Backend-Name")))
    return out


def test_answers_match_nginx(rampart, port, backend_factory, tmp_path):
    reference_nginx.require()
    app, authd = backend_factory("app"), backend_factory("authd")
    nport = harness.free_port()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(http_conf(nport, app, authd))
    nginx.start()
    try:
        serve(rampart, port, app, authd)
        assert answers(port) == answers(nport)
    finally:
        nginx.stop()


def test_bad_values_are_refused_with_file_and_line(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, 'server { listen 127.0.0.1:1;\nauth_request check; }', 4,
        '"auth_request": invalid URI "check": it must start with "/"')
    reference_nginx.assert_rampart_refuses(
        conf_dir, 'server { listen 127.0.0.1:1;\nauth_request_set user $host; }', 4,
        '"auth_request_set": invalid variable name "user"')
