"""`satisfy all|any`: how the access phase's handlers (allow/deny, auth_basic,
auth_request, access_by_lua) combine, as nginx's access phase checker does. With `all`
every handler must let the request through and the first denial answers; with `any`
the first grant ends the phase (a 401's WWW-Authenticate is then dropped), and when
nobody grants the denial answers, 401 over 403. Clients come from 127.0.0.1 (allowed
by the rules here) and 127.0.0.2 (not). The allow/deny with auth_basic matrix is
compared with Debian's nginx."""

import base64
import http.client

import harness
import reference_nginx


def ask(port, path="/", source="127.0.0.1", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"Host": "localhost", **(headers or {})})
        r = conn.getresponse()
        r.read()
        return r.status, r.getheader("WWW-Authenticate")
    finally:
        conn.close()


def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


GOOD = basic("u", "pw")
BAD = basic("u", "nope")


def conf(port, backend, users, authd=None):
    auth = ""
    if authd:
        auth = f"""
        location /req/ {{ satisfy any; auth_basic "B"; auth_basic_user_file {users};
                         auth_request /_auth; proxy_pass http://{backend.addr}; }}
        location = /_auth {{ internal; proxy_pass http://{authd.addr}/check?auth=1; }}
        location /lua/ {{ satisfy any; allow 127.0.0.1; deny all;
            access_by_lua_block {{
                local v = ngx.var.http_x_lua
                if v == "ok" then return ngx.exit(ngx.OK) end
                if v == "deny" then return ngx.exit(403) end
                if v == "challenge" then
                    ngx.header["WWW-Authenticate"] = 'Custom realm="lua"'
                    return ngx.exit(401)
                end
            }}
            proxy_pass http://{backend.addr}; }}
        location /lua-all/ {{ allow 127.0.0.1; deny all;
            access_by_lua_block {{ if ngx.var.http_x_lua == "deny" then return ngx.exit(403) end }}
            proxy_pass http://{backend.addr}; }}
        """
    return f"""
    server {{
        listen 127.0.0.1:{port};
        location /all/ {{ allow 127.0.0.1; deny all;
                         auth_basic "A"; auth_basic_user_file {users};
                         proxy_pass http://{backend.addr}; }}
        location /any/ {{ satisfy any; allow 127.0.0.1; deny all;
                         auth_basic "A"; auth_basic_user_file {users};
                         proxy_pass http://{backend.addr}; }}
        location /any-deny/ {{ satisfy any; deny all; proxy_pass http://{backend.addr}; }}
        {auth}
    }}
    """


def start(rampart, port, backend, tmp_path, authd=None):
    users = tmp_path / "users"
    users.write_text("u:{PLAIN}pw\n")
    rampart.configure(conf(port, backend, users, authd))
    rampart.start()


def test_all_needs_every_handler_and_the_first_denial_answers(rampart, port, backend, tmp_path):
    start(rampart, port, backend, tmp_path)
    assert ask(port, "/all/", "127.0.0.1", GOOD) == (200, None)
    assert ask(port, "/all/", "127.0.0.1") == (401, 'Basic realm="A"')
    assert ask(port, "/all/", "127.0.0.2", GOOD) == (403, None)
    assert ask(port, "/all/", "127.0.0.2") == (403, None)  # the address is checked first


def test_any_lets_one_grant_suffice_and_prefers_401(rampart, port, backend, tmp_path):
    start(rampart, port, backend, tmp_path)
    assert ask(port, "/any/", "127.0.0.1") == (200, None)  # the address grants
    assert ask(port, "/any/", "127.0.0.2", GOOD) == (200, None)  # the password grants
    # neither: the 401 (and its challenge) wins over the address's 403
    assert ask(port, "/any/", "127.0.0.2", BAD) == (401, 'Basic realm="A"')
    assert ask(port, "/any/", "127.0.0.2") == (401, 'Basic realm="A"')
    assert ask(port, "/any-deny/", "127.0.0.1") == (403, None)


def test_any_drops_an_earlier_challenge_when_auth_request_grants(rampart, port, backend,
                                                                 backend_factory, tmp_path):
    authd = backend_factory("authd")
    start(rampart, port, backend, tmp_path, authd)
    # auth_basic refuses (a 401 with its challenge), then the service grants
    assert ask(port, "/req/", headers={"Authorization": "Bearer svc"}) == (200, None)
    # both refuse: the last 401's challenge is there too, as nginx keeps both fields
    status, _ = ask(port, "/req/")
    assert status == 401
    assert ask(port, "/req/", headers=GOOD)[0] == 200  # auth_basic grants: no check asked
    assert [e["target"] for e in authd.log()] == ["/check?auth=1", "/check?auth=1"]


def test_access_by_lua_grants_denies_or_passes_under_any(rampart, port, backend, backend_factory,
                                                         tmp_path):
    authd = backend_factory("authd")
    start(rampart, port, backend, tmp_path, authd)
    # the address is refused; lua decides
    assert ask(port, "/lua/", "127.0.0.2", {"X-Lua": "ok"}) == (200, None)
    assert ask(port, "/lua/", "127.0.0.2", {"X-Lua": "deny"}) == (403, None)
    assert ask(port, "/lua/", "127.0.0.2", {"X-Lua": "challenge"}) == (401, 'Custom realm="lua"')
    assert ask(port, "/lua/", "127.0.0.2") == (403, None)  # lua that just ends grants nothing
    # the address grants first: lua does not run
    assert ask(port, "/lua/", "127.0.0.1", {"X-Lua": "deny"}) == (200, None)
    # satisfy all: lua's denial after the address's grant answers
    assert ask(port, "/lua-all/", "127.0.0.1", {"X-Lua": "deny"}) == (403, None)
    assert ask(port, "/lua-all/", "127.0.0.1") == (200, None)


def matrix(port):
    out = []
    for path in ("/all/", "/any/", "/any-deny/"):
        for source in ("127.0.0.1", "127.0.0.2"):
            for creds in (None, GOOD, BAD):
                out.append((path, source, creds is GOOD, creds is BAD,
                            ask(port, path, source, creds)))
    return out


def test_allow_deny_with_auth_basic_answers_match_nginx(rampart, port, backend, tmp_path):
    reference_nginx.require()
    users = tmp_path / "users"
    users.write_text("u:{PLAIN}pw\n")
    nport = harness.free_port()
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(conf(nport, backend, users))
    nginx.start()
    try:
        rampart.configure(conf(port, backend, users))
        rampart.start()
        assert matrix(port) == matrix(nport)
    finally:
        nginx.stop()


def test_bad_value_is_refused_with_file_and_line(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, 'server { listen 127.0.0.1:1;\nsatisfy some; }', 4,
        '"satisfy": invalid value "some": "all" or "any"')
