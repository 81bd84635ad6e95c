"""The nginx corpus: whole nginx configurations, in the shapes nginx users run, loaded
unchanged by Debian's nginx and by rampart, and answering a table of requests the same.

Each entry is a folder of nginx_corpus/:

  conf/       a tree copied once for each server into its own prefix folder; its main
              file is conf/nginx.conf (a whole nginx main file: events, http, includes).
              In every text file of the copy these placeholders are replaced:
                @PREFIX@     that server's copy (absolute): pid, logs, roots, includes
                @PORT@       that server's listen port (loopback)
                @USER@       the user the tests run as
                @BACKEND_A@, @BACKEND_B@, @BACKEND_C@
                             host:port of three backend.py backends named a, b, c,
                             shared by both servers
  cases.json  the requests, each
                {"name", "method" (GET), "path", "headers" ({}; "Host" defaults to
                 localhost), "body" (none),
                 "compare": [response fields equal between the two (besides status
                             and X-Backend-Name, always compared)],
                 "compare_body": false,
                 "echo_headers": [request fields the backend must have received
                                  equal from both; the path must ask echo=1],
                 "expect": {"status", "backend" (name, or null for none),
                            "headers": {field: value}, "body_contains"}}

Each server's own port is written @PORT@ in the values compared, so absolute
redirects compare equal. `expect` says what the answer must be (so a table where both
servers agree on the wrong answer still fails); it is checked on rampart's answer.
Server and Date are never compared.
"""

import json
import os
import pwd
import re
import shutil
from pathlib import Path

import pytest

import harness
import reference_nginx

CORPUS = Path(__file__).parent / "nginx_corpus"
ENTRIES = sorted(p.name for p in CORPUS.iterdir() if (p / "cases.json").is_file())


def install(entry, dest, port, backends):
    """Copies entry's conf/ tree to dest with the placeholders replaced; returns the
    text of every file (the main file first), for the harnesses' listen detection."""
    shutil.copytree(CORPUS / entry / "conf", dest)
    subst = {"@PREFIX@": str(dest), "@PORT@": str(port),
             "@USER@": pwd.getpwuid(os.geteuid()).pw_name}
    for name, b in backends.items():
        subst[f"@BACKEND_{name.upper()}@"] = b.addr
    texts = []
    for path in sorted(dest.rglob("*"), key=lambda p: (p.name != "nginx.conf", str(p))):
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # a binary file is copied as it is
        for k, v in subst.items():
            text = text.replace(k, v)
        path.write_text(text)
        texts.append(text)
    (dest / "logs").mkdir(exist_ok=True)
    return "\n".join(texts)


def main_paths(dest):
    """The pid file and error log the main file names (placeholders replaced)."""
    main = (dest / "nginx.conf").read_text()
    pid = re.search(r"^\s*pid\s+(\S+);", main, re.M)
    log = re.search(r"^\s*error_log\s+(\S+)", main, re.M)
    assert pid and log, "a corpus main file names its pid file and error log under @PREFIX@"
    return Path(pid.group(1)), Path(log.group(1))


def start_nginx(entry, dest, port, backends):
    reference_nginx.require()
    n = reference_nginx.Nginx(dest)
    n.conf_text = install(entry, dest, port, backends)
    n.conf_path = dest / "nginx.conf"
    n.pid_file, n.error_log = main_paths(dest)
    n.start()
    return n


def start_rampart(factory, entry, dest, port, backends):
    r = factory("rampart")
    r.prefix = dest
    r.conf_text = install(entry, dest, port, backends)
    r.conf_path = dest / "nginx.conf"
    r.pid_file, r.error_log = main_paths(dest)
    r.stderr_path = dest / "stderr.txt"
    r.start()
    return r


def ask(port, case):
    headers = dict(case.get("headers", {}))
    host = headers.pop("Host", "localhost")
    body = case.get("body")
    return harness.request(port, case["path"], method=case.get("method", "GET"), host=host,
                           headers=headers, body=body.encode() if body is not None else None)


def fields(resp, name, port):
    return [v.replace(f":{port}", ":@PORT@") for v in resp.headers.get_all(name) or []]


def echoed(resp, names, port):
    """The request fields (lower-case names) the backend received, as echo=1 reports."""
    seen = {}
    for k, v in json.loads(resp.body)["headers"]:
        seen.setdefault(k.lower(), []).append(v.replace(f":{port}", ":@PORT@"))
    return {n: seen.get(n.lower()) for n in names}


def differences(case, n, n_port, r, r_port):
    """What differs between nginx's answer n and rampart's r, and what r lacks of expect."""
    out = []
    if n.status != r.status:
        out.append(f"status: nginx {n.status}, rampart {r.status}")
    for name in ["X-Backend-Name", *case.get("compare", [])]:
        a, b = fields(n, name, n_port), fields(r, name, r_port)
        if a != b:
            out.append(f"{name}: nginx {a}, rampart {b}")
    if case.get("compare_body"):
        a = n.body.replace(f":{n_port}".encode(), b":@PORT@")
        b = r.body.replace(f":{r_port}".encode(), b":@PORT@")
        if a != b:
            out.append(f"body: nginx {a[:200]!r}, rampart {b[:200]!r}")
    if case.get("echo_headers"):
        a, b = echoed(n, case["echo_headers"], n_port), echoed(r, case["echo_headers"], r_port)
        if a != b:
            out.append(f"backend received: nginx {a}, rampart {b}")
    expect = case.get("expect", {})
    if "status" in expect and r.status != expect["status"]:
        out.append(f"expected status {expect['status']}, rampart {r.status}")
    if "backend" in expect:
        got = r.headers.get("X-Backend-Name")
        if got != expect["backend"]:
            out.append(f"expected backend {expect['backend']}, rampart {got}")
    for name, value in expect.get("headers", {}).items():
        got = fields(r, name, r_port)
        if got != [value]:
            out.append(f"expected {name}: {value!r}, rampart {got}")
    if "body_contains" in expect and expect["body_contains"].encode() not in r.body:
        out.append(f"expected the body to contain {expect['body_contains']!r}, "
                   f"rampart {r.body[:200]!r}")
    return out


@pytest.mark.parametrize("entry", ENTRIES)
def test_corpus_configuration_answers_as_nginx(entry, tmp_path, backend_factory,
                                               rampart_factory):
    cases = json.loads((CORPUS / entry / "cases.json").read_text())
    assert cases, f"{entry}: cases.json has no case"
    backends = {name: backend_factory(name=name) for name in ("a", "b", "c")}
    n_port, r_port = harness.free_port(), harness.free_port()
    nginx = start_nginx(entry, tmp_path / "nginx", n_port, backends)
    try:
        r = start_rampart(rampart_factory, entry, tmp_path / "rampart", r_port, backends)
        failures = []
        for case in cases:
            n_resp, r_resp = ask(n_port, case), ask(r_port, case)
            for d in differences(case, n_resp, n_port, r_resp, r_port):
                failures.append(f"{case['name']}: {d}")
        assert not failures, (f"{entry}: {len(failures)} differences in {len(cases)} cases:\n"
                              + "\n".join(failures)
                              + f"\n--- rampart's error log ---\n{r.log_text()[-3000:]}")
    finally:
        nginx.stop()
