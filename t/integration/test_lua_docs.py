"""man/rampart-lua.7 and the code stay together.

Every Lua directive of the command tables (each *_by_lua* hook directive and each
lua_* directive) is listed in the page's DIRECTIVES section; the page renders
without warnings; every example configuration it marks passes `rampart -t`; and
the JWT example runs for real: the page's module and configuration, unchanged but
for the ports, against tokens made here (valid, expired, badly signed, tampered,
"alg": "none", malformed, missing), over HTTP/1.1 and HTTP/2.

The page marks its examples with a roff comment before the .EX block:
'.\\" example-conf: NAME' for a whole configuration (listening on 8080, proxying to
127.0.0.1:9000 or :9001), '.\\" example-file: PATH' for a file under the prefix.
"""
import base64
import concurrent.futures
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

import harness
from h2client import h2_request
from test_docs import SRC, code_directives, roff_text, strip_c_comments

LUA_MAN = SRC / "man" / "rampart-lua.7"
JWT_SECRET = b"change-this-secret"


# --- the page's parts ---------------------------------------------------------


def lua_directives():
    """Names of the Lua directives in the command tables: the entries test_docs reads,
    and the hook pairs made by a macro such as HOOK("rewrite", ...)."""
    names = {n for n in code_directives() if "_by_lua" in n or n.startswith("lua_")}
    for path in sorted(SRC.glob("src/**/*.c")):
        text = strip_c_comments(path.read_text())
        for m in re.finditer(r"#define\s+(\w+)\s*\(\s*name\b[^\n]*\\\n(?:[^\n]*\\\n)*[^\n]*",
                             text):
            body = m.group(0)
            suffixes = re.findall(r'name\s+"(_by_lua\w*)"', body)
            for call in re.finditer(rf"\b{m.group(1)}\s*\(\s*\"(\w+)\"", text):
                names.update(call.group(1) + s for s in suffixes)
    assert {"content_by_lua_block", "lua_package_path"} <= names, names
    return names


def section_text(title):
    """Plain text of one .SH section of the page."""
    out, inside = [], False
    for line in LUA_MAN.read_text().split("\n"):
        if line.startswith(".SH"):
            inside = line[3:].strip().strip('"') == title
            continue
        if inside and not line.startswith('.\\"'):
            out.append(roff_text(re.sub(r"^\.\w+\s*", "", line)))
    return "\n".join(out)


def examples(kind):
    """{name: text} of the .EX blocks marked '.\\" example-KIND: name'."""
    lines = LUA_MAN.read_text().split("\n")
    out = {}
    for i, line in enumerate(lines):
        m = re.fullmatch(rf'\.\\" example-{kind}: (\S+)', line)
        if m:
            start = lines.index(".EX", i) + 1
            end = lines.index(".EE", start)
            out[m.group(1)] = "\n".join(roff_text(l) for l in lines[start:end]) + "\n"
    assert out, f"no example-{kind} blocks in {LUA_MAN.name}"
    return out


def setup_example(rampart, name, port, backend_port=9000, canary_port=9001, udp_port=5140):
    """Writes the example files and the configuration `name`, on our ports."""
    for path, text in examples("file").items():
        target = rampart.prefix / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    conf = examples("conf")[name]
    assert "listen 8080;" in conf
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port} http2;")
    conf = conf.replace("127.0.0.1:9000", f"127.0.0.1:{backend_port}")
    conf = conf.replace("127.0.0.1:9001", f"127.0.0.1:{canary_port}")
    conf = conf.replace('"127.0.0.1", 5140', f'"127.0.0.1", {udp_port}')
    rampart.configure(text="worker_processes 1;\nerror_log logs/error.log info;\n"
                           "pid logs/rampart.pid;\n" + conf)
    return rampart


# --- the page and the code ----------------------------------------------------


def test_every_lua_directive_is_listed_in_rampart_lua_7():
    text = section_text("DIRECTIVES")
    missing = sorted(n for n in lua_directives() if not re.search(rf"\b{n}\b", text))
    assert not missing, f"Lua directives missing from DIRECTIVES in {LUA_MAN.name}: {missing}"


def test_rampart_lua_7_is_installed_with_the_other_pages():
    am = (SRC / "Makefile.am").read_text()
    m = re.search(r"^dist_man_MANS\s*=(.*(?:\\\n.*)*)", am, re.M)
    assert m and "man/rampart-lua.7" in m.group(1).split()


@pytest.mark.parametrize("tool", ["man", "groff"])
def test_rampart_lua_7_renders_without_warnings(tool):
    assert shutil.which(tool), f"{tool} is needed to render the manual pages"
    cmd = (["man", "--warnings", "-l", "-E", "UTF-8", str(LUA_MAN)] if tool == "man"
           else ["groff", "-man", "-z", "-ww", str(LUA_MAN)])
    env = dict(os.environ, MANWIDTH="80", PAGER="cat", MANPAGER="cat", LC_ALL="C.UTF-8")
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0 and run.stderr.strip() == "", run.stderr


@pytest.mark.parametrize("name", sorted(examples("conf")))
def test_example_configuration_passes_rampart_t(rampart, port, name):
    setup_example(rampart, name, port)
    run = harness.run("-t", "-q", "-p", rampart.prefix, "-c", "rampart.conf")
    assert run.returncode == 0, f"example {name} fails rampart -t:\n{run.stderr}"


# --- the JWT example, for real ----------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(claims, secret=JWT_SECRET, alg="HS256"):
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    signed = f"{head}.{body}".encode()
    sig = b64url(hmac.new(secret, signed, hashlib.sha256).digest()) if alg == "HS256" else ""
    return f"{head}.{body}.{sig}"


def valid_claims(sub="alice"):
    return {"sub": sub, "exp": int(time.time()) + 3600}


def tampered():
    head, _, sig = make_token(valid_claims()).split(".")
    return f"{head}.{b64url(json.dumps(valid_claims('mallory')).encode())}.{sig}"


REFUSED_TOKENS = {
    "bad_signature": lambda: make_token(valid_claims(), secret=b"another-secret"),
    "tampered_claims": tampered,
    "alg_none": lambda: make_token(valid_claims(), alg="none"),
    "expired": lambda: make_token({"sub": "alice", "exp": int(time.time()) - 10}),
    "not_yet_valid": lambda: make_token({"sub": "alice", "nbf": int(time.time()) + 3600}),
    "malformed": lambda: "not-a-token",
    "signature_not_base64": lambda: make_token(valid_claims())[:-4] + "!!!!",
}


def ask(proto, port, headers):
    """(status, headers dict, body) of GET /api/x with headers (echoed by the backend)."""
    headers = dict(headers, **{"X-Backend-Echo": "1"})
    if proto == "h1":
        r = harness.get(port, "/api/x", headers=headers)
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.body
    r = h2_request(port, "GET", "/api/x", headers=[(k.lower(), v) for k, v in headers.items()])
    assert r.reset is None
    return r.status, dict(r.headers), bytes(r.body)


@pytest.fixture
def jwt_gateway(rampart, port, backend):
    setup_example(rampart, "jwt", port, backend_port=backend.port).start()
    return rampart


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_jwt_example_passes_a_valid_token_with_its_subject(jwt_gateway, port, proto):
    status, _, body = ask(proto, port, {"Authorization": "Bearer " + make_token(valid_claims())})
    assert status == 200
    seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert seen["x-user"] == "alice"


@pytest.mark.parametrize("proto", ["h1", "h2"])
@pytest.mark.parametrize("case", sorted(REFUSED_TOKENS))
def test_jwt_example_refuses_a_bad_token_with_401(jwt_gateway, port, proto, case):
    status, headers, _ = ask(proto, port, {"Authorization": "Bearer " + REFUSED_TOKENS[case]()})
    assert status == 401
    assert headers["www-authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_jwt_example_refuses_a_request_without_a_token(jwt_gateway, port, proto):
    status, _, _ = ask(proto, port, {})
    assert status == 401
    jwt_gateway.wait_log(r"token refused: none")


# --- the other examples, for real -----------------------------------------------


def echoed_headers(body):
    return {k.lower(): v for k, v in json.loads(body)["headers"]}


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_routing_example_sends_canary_requests_to_the_canary_group(
        rampart, port, backend_factory, proto):
    stable, canary = backend_factory(name="stable"), backend_factory(name="canary")
    setup_example(rampart, "routing", port, backend_port=stable.port,
                  canary_port=canary.port).start()

    def body(headers):
        if proto == "h1":
            return harness.get(port, "/", headers=headers).text
        return bytes(h2_request(port, "GET", "/", headers=list(headers.items())).body).decode()
    assert body({}) == "stable\n"
    assert body({"X-Canary": "1"}) == "canary\n"
    assert body({"Cookie": "canary=1"}) == "canary\n"
    assert body({"X-Canary": "0"}) == "stable\n"


@pytest.mark.parametrize("proto", ["h1", "h2"])
def test_api_key_example_checks_keys_against_the_shared_dictionary(
        rampart, port, backend, proto):
    setup_example(rampart, "apikey", port, backend_port=backend.port).start()

    def ask_key(key):
        headers = {"X-Backend-Echo": "1"}
        if key:
            headers["X-Api-Key"] = key
        if proto == "h1":
            r = harness.get(port, "/", headers=headers)
            return r.status, r.body
        r = h2_request(port, "GET", "/", headers=[(k.lower(), v) for k, v in headers.items()])
        return r.status, bytes(r.body)
    status, body = ask_key("k-3f9a2c71")
    assert status == 200
    seen = echoed_headers(body)
    assert seen["x-tenant"] == "acme" and "x-api-key" not in seen
    assert ask_key("k-00000000")[0] == 403
    assert ask_key(None)[0] == 403


def test_per_tenant_limit_example_rejects_a_free_tenant_over_its_burst(rampart, port, backend):
    setup_example(rampart, "limits", port, backend_port=backend.port).start()

    def burst(tenant, n):
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return sorted(pool.map(
                lambda _: harness.get(port, "/api/x", headers={"X-Tenant": tenant},
                                      timeout=20).status, range(n)))
    # free: 10 r/s, burst 5: of 30 requests at once, the ones past the burst get 429
    free = burst("initech", 30)
    assert free.count(429) >= 10 and free.count(200) >= 1, free
    # paid (acme): 200 r/s, burst 100: all pass
    assert burst("acme", 30) == [200] * 30


def test_udp_log_example_sends_a_json_line_per_request(rampart, port, backend):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(10)
    try:
        setup_example(rampart, "udplog", port, backend_port=backend.port,
                      udp_port=sink.getsockname()[1]).start()
        assert harness.get(port, "/some/path?x=1").status == 200
        line = json.loads(sink.recv(8192))
        assert line["uri"] == "/some/path" and line["status"] == 200
        assert line["host"] == "localhost" and isinstance(line["request_time"], (int, float))
        assert h2_request(port, "GET", "/other").status == 200
        assert json.loads(sink.recv(8192))["uri"] == "/other"
    finally:
        sink.close()
