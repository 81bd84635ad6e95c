"""proxy_pass_request_headers and proxy_pass_request_body as nginx: off, the client's
fields (or its body) do not go upstream, the location's proxy_set_header fields still do;
inherited from the server level. What the backend received (backend.py's echo=1) is
compared with Debian's nginx on the same configuration. rampart's own default fields
(X-Forwarded-*, X-Request-Id, traceparent), which nginx lacks, are left out of the
comparison; with the body off, nginx's idiom `proxy_set_header Content-Length "";` is
used, as nginx would otherwise announce a body it does not send."""

import json

import pytest

from proxy_pair import both, refused_like_nginx  # noqa: F401

RAMPARTS_OWN = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-request-id",
                "traceparent"}


def http(b):
    up = f"127.0.0.1:{b}"
    return lambda port: f"""
server {{
    listen 127.0.0.1:{port};
    proxy_pass_request_headers off;
    location /no-headers/ {{ proxy_pass http://{up}/; proxy_set_header X-Set set; }}
    location /no-body/ {{
        proxy_pass http://{up}/;
        proxy_pass_request_headers on;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
    }}
    location /all/ {{ proxy_pass http://{up}/; proxy_pass_request_headers on; }}
}}"""


def seen(resp):
    """What the backend received: method, its fields but rampart's own (in name order:
    the two write them in their own orders), body length."""
    assert resp.status == 200, resp.body
    j = json.loads(resp.body)
    return (j["method"],
            sorted((n.lower(), v) for n, v in j["headers"] if n.lower() not in RAMPARTS_OWN),
            j["body_length"])


@pytest.mark.parametrize("path", ["/no-headers/a", "/no-body/a", "/all/a"])
def test_the_backend_receives_what_nginx_sends_it(both, backend, path):
    ask = both(http(backend.port))
    mine, nginx = ask(f"{path}?echo=1", method="POST", body="hello",
                      headers={"X-Client": "c", "User-Agent": "ua/1"})
    got, want = seen(mine), seen(nginx)
    assert got == want
    method, fields, body_length = got
    names = [n for n, _ in fields]
    assert ("x-client" in names) == (path != "/no-headers/a")
    assert body_length == (0 if path == "/no-body/a" else 5)


def test_a_bad_flag_is_refused_at_its_line(conf_dir, tmp_path):
    refused_like_nginx(conf_dir, tmp_path,
                       "server { listen 127.0.0.1:1; proxy_pass_request_body maybe; }", 3,
                       '"proxy_pass_request_body": invalid value "maybe", it must be "on" or '
                       '"off"')
