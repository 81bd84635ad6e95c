"""The admin API (`admin_api [write=on|off]`, `admin_api_token`): JSON over HTTP on a
listener of its own. It lists the upstreams and their peers with their state, and with
write=on drains, undrains, marks down or up and re-weights a peer at run time; the
change reaches every worker at once (the shared peer table), holds across a reload
until it is cleared, and is logged. What reaches the backends is counted at the
backends themselves, never guessed from what the API says."""

import http.client
import json
import re
import threading

import pytest

import harness
from harness import run, wait_for
from test_mtls import client_context
from test_tls import line_of

TOKEN = "s3cr3t-t0ken-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def conf(port, api_port, servers, api="admin_api write=on;", api_extra="", pool_extra=""):
    lines = "\n        ".join(f"server {s};" for s in servers)
    return f"""
    upstream pool {{
        {lines}
        {pool_extra}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://pool; proxy_connect_timeout 2s; }}
    }}
    server {{
        listen 127.0.0.1:{api_port};
        location /api/ {{
            allow 127.0.0.1;
            deny all;
            admin_api_token {TOKEN};
            {api_extra}
            {api}
        }}
    }}
    """


def reload(rampart):
    """HUP, then waits until the old generation's workers are gone: every answer after
    comes from the new configuration's workers."""
    mark = rampart.log_size()
    rampart.reload()
    rampart.wait_log(r"generation \d+ has drained", since=mark)
    return mark


def api(port, path, method="GET", body=None, headers=AUTH):
    hdrs = {"Connection": "close"}
    hdrs.update(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    return harness.request(port, "/api" + path, method=method, body=body, headers=hdrs)


def doc(r, status=200):
    assert r.status == status, (r.status, r.text)
    assert r.headers.get("Content-Type") == "application/json"
    return json.loads(r.text)


def peer(api_port, addr):
    return doc(api(api_port, f"/upstreams/pool/peers/{addr}"))


def traffic(port, n, *backends):
    """Sends n requests on fresh connections (so both workers take some) and returns
    how many each backend served of them, counted at the backends."""
    for b in backends:
        b.reset()
    for _ in range(n):
        assert harness.get(port, "/", headers={"Connection": "close"}).status == 200
    return [b.stats()["requests"] for b in backends]


@pytest.fixture
def two(backend_factory):
    return backend_factory("a"), backend_factory("b")


@pytest.fixture
def started(rampart, free_port, two):
    """rampart with two workers, pool = a, b (weight 1 each), the API on its own port."""
    a, b = two
    port, api_port = free_port(), free_port()
    rampart.configure(conf(port, api_port, [a.addr, b.addr]), workers=2)
    rampart.start()
    return rampart, port, api_port, a, b


def test_lists_upstreams_and_one_upstream_with_its_peers(started):
    rampart, port, api_port, a, b = started
    traffic(port, 4, a, b)
    listing = doc(api(api_port, "/upstreams"))
    [u] = listing["upstreams"]
    assert u["name"] == "pool" and u["balancer"] == "round_robin"
    assert [(p["id"], p["address"], p["state"], p["weight"]) for p in u["peers"]] == \
        [(0, a.addr, "up", 1), (1, b.addr, "up", 1)]
    one = doc(api(api_port, "/upstreams/pool"))
    full = {p["address"]: p for p in one["peers"]}
    # the fields upstream_status shows: state, weights, in flight, EWMA, health, failures
    for field in ("state", "weight", "effective_weight", "inflight", "latency_header_ms",
                  "latency_last_byte_ms", "health", "fails", "failures", "requests", "override"):
        assert field in full[a.addr], field
    assert full[a.addr]["requests"] + full[b.addr]["requests"] == 4
    assert full[a.addr]["override"] is None
    # a peer by its address or by its id
    assert peer(api_port, a.addr)["address"] == a.addr
    assert peer(api_port, "1")["address"] == b.addr
    assert [p["address"] for p in doc(api(api_port, "/upstreams/pool/peers"))] == [a.addr, b.addr]


def test_drain_stops_new_requests_and_undrain_brings_traffic_back(started):
    rampart, port, api_port, a, b = started
    assert min(traffic(port, 10, a, b)) > 0
    r = doc(api(api_port, f"/upstreams/pool/peers/{a.addr}/drain", method="POST"))
    assert r["state"] == "draining" and r["override"]["state"] == "draining"
    assert traffic(port, 20, a, b) == [0, 20]
    r = doc(api(api_port, f"/upstreams/pool/peers/{a.addr}/undrain", method="POST"))
    assert r["state"] == "up" and r["override"] is None
    got = traffic(port, 20, a, b)
    assert got[0] >= 8, got  # round robin 1:1 again, each worker's share


def test_drained_peer_finishes_the_requests_in_flight(started):
    rampart, port, api_port, a, b = started
    done = {}

    def slow():
        done["r"] = harness.get(port, "/?delay=1.5", headers={"Connection": "close"}, timeout=20)
    t = threading.Thread(target=slow)
    t.start()

    def busy():
        ps = doc(api(api_port, "/upstreams/pool"))["peers"]
        return [p["address"] for p in ps if p["inflight"] == 1]
    [addr] = wait_for(busy, what="a request in flight")
    doc(api(api_port, f"/upstreams/pool/peers/{addr}/drain", method="POST"))
    t.join(20)
    assert done["r"].status == 200
    p = peer(api_port, addr)
    assert (p["state"], p["inflight"]) == ("draining", 0)


def test_mark_down_and_up_with_patch(started):
    rampart, port, api_port, a, b = started
    r = doc(api(api_port, f"/upstreams/pool/peers/{b.addr}", method="PATCH",
                body={"state": "down"}))
    assert r["state"] == "down"
    assert traffic(port, 12, a, b) == [12, 0]
    r = doc(api(api_port, f"/upstreams/pool/peers/{b.addr}", method="PATCH",
                body={"state": "up"}))
    assert r["state"] == "up"
    assert traffic(port, 12, a, b)[1] >= 5


def test_weight_change_shifts_the_distribution(started):
    rampart, port, api_port, a, b = started
    got = traffic(port, 40, a, b)
    assert abs(got[0] - 20) <= 2, got
    r = doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH",
                body={"weight": 3}))
    assert (r["current_weight"], r["weight"], r["override"]["weight"]) == (3, 1, 3)
    # each worker's smooth round robin holds 3:1 to within a request or so
    got = traffic(port, 40, a, b)
    assert abs(got[0] - 30) <= 3, got
    # null gives the configured weight back
    r = doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH",
                body={"weight": None}))
    assert r["current_weight"] == 1 and r["override"] is None
    got = traffic(port, 40, a, b)
    assert abs(got[0] - 20) <= 3, got


def test_change_holds_across_reload_until_deleted(started):
    rampart, port, api_port, a, b = started
    doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH",
            body={"state": "draining", "weight": 4}))
    reload(rampart)
    p = peer(api_port, a.addr)
    assert (p["state"], p["current_weight"]) == ("draining", 4)
    assert traffic(port, 12, a, b) == [0, 12]
    r = doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="DELETE"))
    assert (r["state"], r["current_weight"], r["override"]) == ("up", 1, None)
    reload(rampart)
    p = peer(api_port, a.addr)
    assert (p["state"], p["current_weight"], p["override"]) == ("up", 1, None)
    assert traffic(port, 12, a, b)[0] >= 4


def test_change_holds_when_the_peer_table_starts_afresh(rampart, free_port, two):
    # A reload that resizes the upstream's zone maps a new, empty peer table: the
    # override record (a zone of its own) is what brings the operator's change back.
    a, b = two
    port, api_port = free_port(), free_port()
    rampart.configure(conf(port, api_port, [a.addr, b.addr], pool_extra="zone pool 64k;"),
                      workers=2)
    rampart.start()
    traffic(port, 4, a, b)
    doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH",
            body={"state": "down", "weight": 3}))
    rampart.configure(conf(port, api_port, [a.addr, b.addr], pool_extra="zone pool 128k;"),
                      workers=2)
    reload(rampart)
    p = peer(api_port, a.addr)
    assert p["requests"] == 0  # a fresh table indeed
    assert (p["state"], p["current_weight"], p["override"]["state"]) == ("down", 3, "down")
    assert traffic(port, 10, a, b) == [0, 10]


def test_override_of_a_peer_removed_from_the_configuration_is_dropped(rampart, free_port, two):
    a, b = two
    port, api_port = free_port(), free_port()
    rampart.configure(conf(port, api_port, [a.addr, b.addr]), workers=2)
    rampart.start()
    doc(api(api_port, f"/upstreams/pool/peers/{b.addr}/down", method="POST"))
    rampart.configure(conf(port, api_port, [a.addr]), workers=2)
    mark = reload(rampart)
    rampart.wait_log(r'override of peer "%s" of upstream "pool" is dropped' % re.escape(b.addr),
                     since=mark)
    rampart.configure(conf(port, api_port, [a.addr, b.addr]), workers=2)
    reload(rampart)
    # added back, it is a new peer: up, taking its share
    p = peer(api_port, b.addr)
    assert (p["state"], p["override"]) == ("up", None)
    assert traffic(port, 12, a, b)[1] >= 4


def test_put_replaces_the_whole_override(started):
    rampart, port, api_port, a, b = started
    doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH",
            body={"state": "down", "weight": 7}))
    r = doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PUT", body={"weight": 2}))
    assert (r["state"], r["current_weight"]) == ("up", 2)
    assert r["override"] == {"state": None, "weight": 2, "since_ms": r["override"]["since_ms"]}


def test_every_change_is_logged_with_client_and_before_after(started):
    rampart, port, api_port, a, b = started
    mark = rampart.log_size()
    doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH",
            body={"state": "draining", "weight": 5}))
    rampart.wait_log(r'\[notice\] .*admin api: client 127\.0\.0\.1 changed peer "%s" of '
                     r'upstream "pool": state up -> draining, weight 1 -> 5' % re.escape(a.addr),
                     since=mark)
    doc(api(api_port, f"/upstreams/pool/peers/{a.addr}", method="DELETE"))
    rampart.wait_log(r'admin api: client 127\.0\.0\.1 cleared peer "%s" of upstream "pool": '
                     r'state draining -> up, weight 5 -> 1' % re.escape(a.addr), since=mark)


def test_token_missing_or_wrong_is_401_and_right_is_200(started):
    rampart, port, api_port, a, b = started
    r = api(api_port, "/upstreams", headers={})
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "error" in doc(r, 401)
    r = api(api_port, "/upstreams", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert r.status == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    r = api(api_port, "/upstreams", headers={"Authorization": f"Basic {TOKEN}"})
    assert r.status == 401
    # a wrong token cannot change anything either
    r = api(api_port, f"/upstreams/pool/peers/{a.addr}/down", method="POST",
            headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    assert peer(api_port, a.addr)["state"] == "up"
    assert api(api_port, "/upstreams").status == 200


def test_token_read_from_a_file(rampart, free_port, two, tmp_path):
    a, b = two
    port, api_port = free_port(), free_port()
    (rampart.prefix).mkdir(parents=True, exist_ok=True)
    (rampart.prefix / "api.token").write_text("from-the-file-0123456789\n")
    text = conf(port, api_port, [a.addr, b.addr]).replace(
        f"admin_api_token {TOKEN};", "admin_api_token file=api.token;")
    rampart.configure(text)
    rampart.start()
    assert api(api_port, "/upstreams").status == 401
    ok = api(api_port, "/upstreams", headers={"Authorization": "Bearer from-the-file-0123456789"})
    assert ok.status == 200


def test_client_from_a_non_allowed_address_is_403(started):
    rampart, port, api_port, a, b = started
    conn = http.client.HTTPConnection("127.0.0.1", api_port, timeout=5,
                                      source_address=("127.0.0.2", 0))
    try:
        conn.request("GET", "/api/upstreams", headers={**AUTH, "Connection": "close"})
        assert conn.getresponse().status == 403
    finally:
        conn.close()
    assert api(api_port, "/upstreams").status == 200


def test_write_off_refuses_changes_with_405(rampart, free_port, two):
    a, b = two
    port, api_port = free_port(), free_port()
    rampart.configure(conf(port, api_port, [a.addr, b.addr], api="admin_api;"))
    rampart.start()
    for method, path, body in (("PATCH", a.addr, {"state": "down"}), ("POST", a.addr + "/drain", None),
                               ("DELETE", a.addr, None), ("PUT", a.addr, {"weight": 2})):
        r = api(api_port, f"/upstreams/pool/peers/{path}", method=method, body=body)
        assert r.status == 405, (method, r.text)
        assert r.headers["Allow"] == "GET, HEAD"
        assert "read only" in doc(r, 405)["error"]["text"]
    p = peer(api_port, a.addr)
    assert (p["state"], p["override"]) == ("up", None)
    assert doc(api(api_port, "/"))["write"] is False


def test_wrong_method_is_405_with_allow(started):
    rampart, port, api_port, a, b = started
    r = api(api_port, "/upstreams", method="POST")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"
    r = api(api_port, f"/upstreams/pool/peers/{a.addr}", method="POST")
    assert r.status == 405 and r.headers["Allow"] == "GET, HEAD, PATCH, PUT, DELETE"
    r = api(api_port, f"/upstreams/pool/peers/{a.addr}/drain", method="GET")
    assert r.status == 405 and r.headers["Allow"] == "POST"


def test_unknown_upstream_peer_or_endpoint_is_404(started):
    rampart, port, api_port, a, b = started
    assert "nope" in doc(api(api_port, "/upstreams/nope"), 404)["error"]["text"]
    doc(api(api_port, "/upstreams/pool/peers/127.0.0.1:1"), 404)
    doc(api(api_port, "/upstreams/pool/peers/7"), 404)
    doc(api(api_port, "/upstreams/pool/peers/127.0.0.1:1", method="PATCH", body={"weight": 2}), 404)
    doc(api(api_port, f"/upstreams/pool/peers/{a.addr}/explode", method="POST"), 404)
    doc(api(api_port, "/servers"), 404)


BAD_BODIES = ['{"state": "down"', "state=down", '{"state": "sideways"}', '{"weight": 0}',
              '{"weight": 1.5}', '{"colour": "red"}', '{"weight": 2} trailing']


def test_bad_json_body_is_400_with_a_json_error(started):
    rampart, port, api_port, a, b = started
    for body in BAD_BODIES:
        r = api(api_port, f"/upstreams/pool/peers/{a.addr}", method="PATCH", body=body)
        err = doc(r, 400)["error"]
        assert err["status"] == 400 and err["text"], body
    p = peer(api_port, a.addr)
    assert (p["state"], p["current_weight"], p["override"]) == ("up", 1, None)


def test_client_certificate_is_required_when_configured(rampart, free_port, two, certs):
    a, b = two
    port, api_port = free_port(), free_port()
    text = conf(port, api_port, [a.addr, b.addr]).replace(
        f"listen 127.0.0.1:{api_port};",
        f"listen 127.0.0.1:{api_port} ssl;\n        server_name a.test;\n        "
        + certs.directives("a.test") + f"ssl_verify_client on;\nssl_client_certificate {certs.ca};")
    rampart.configure(text)
    rampart.start()

    def ask(which):
        conn = http.client.HTTPSConnection("127.0.0.1", api_port, timeout=5,
                                           context=client_context(certs, which))
        try:
            conn.request("GET", "/api/upstreams", headers={**AUTH, "Host": "a.test",
                                                           "Connection": "close"})
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()
    status, body = ask(None)
    assert status == 400 and b"No required SSL certificate was sent" in body
    status, _ = ask("untrusted")
    assert status == 400
    status, body = ask("trusted")
    assert status == 200 and json.loads(body)["upstreams"][0]["name"] == "pool"


@pytest.mark.parametrize("directive,message", [
    ("admin_api write=maybe;", 'invalid parameter "write=maybe"'),
    ("admin_api read=on;", 'invalid parameter "read=on"'),
    ('admin_api_token "";', "the token is empty"),
    ('admin_api_token "two words";', "holds a space"),
    ("admin_api_token file=missing.token;", "cannot open the token file"),
])
def test_bad_directive_values_are_refused_with_file_and_line(conf_dir, directive, message):
    text = ("worker_processes 1;\npid logs/rampart.pid;\nhttp {\n"
            "    upstream pool { server 127.0.0.1:1; }\n"
            "    server {\n        listen 127.0.0.1:1;\n"
            f"        location /api/ {{\n            {directive}\n        }}\n    }}\n}}\n")
    (conf_dir / "rampart.conf").write_text(text)
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode != 0
    line = line_of(text, directive)
    assert f"{conf_dir / 'rampart.conf'}:{line}: " in p.stderr, p.stderr
    assert message in p.stderr, p.stderr


def test_admin_api_is_a_location_directive(conf_dir):
    text = ("worker_processes 1;\npid logs/rampart.pid;\nhttp {\n"
            "    server {\n        listen 127.0.0.1:1;\n        admin_api;\n    }\n}\n")
    (conf_dir / "rampart.conf").write_text(text)
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode != 0 and f"rampart.conf:6: " in p.stderr, p.stderr
