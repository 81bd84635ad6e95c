"""The upstream's variables as nginx has them: $upstream_http_NAME (dashes as
underscores, any case, the first of several fields), $sent_http_NAME, $upstream_cookie_NAME,
and the per-attempt records joined by ", " across tries ($upstream_addr, $upstream_status,
$upstream_header_time, $upstream_bytes_received, $upstream_bytes_sent; a try that got no
response head has "-" for its header time). Compared with Debian's nginx on the same
configuration: a group whose first server refuses connections, so that the answer took
two tries."""

import re

from proxy_pair import both, upstream_says, values  # noqa: F401

import harness


def http(b, dead, logs):
    return lambda port: f"""
log_format vars "[$sent_http_x_foo][$sent_http_x_http][$sent_http_set_cookie]"
                "[$upstream_bytes_received][$upstream_bytes_sent][$upstream_header_time]";
upstream two {{ server 127.0.0.1:{dead} max_fails=0; server 127.0.0.1:{b} backup; }}
server {{
    listen 127.0.0.1:{port};
    access_log {logs}/access-{port}.log vars;
    location / {{
        proxy_pass http://two;
        add_header X-Http "[$upstream_http_x_foo][$upstream_http_X_FOO][$upstream_http_set_cookie][$upstream_http_nope]";
        add_header X-Cookie "[$upstream_cookie_k][$upstream_cookie_j][$upstream_cookie_nope]";
        add_header X-Tries "[$upstream_addr][$upstream_status][$upstream_header_time]";
    }}
}}"""


def shape(text, ports):
    """Times and byte counts as their shapes, the ports as names."""
    for name, p in ports.items():
        text = text.replace(str(p), name)
    return re.sub(r"\b\d{2,}\b", "N", re.sub(r"\b\d+\.\d{3}\b", "T", text))


def test_upstream_variables_read_as_nginx_reads_them(both, backend, tmp_path):
    dead = harness.free_port()
    ask = both(http(backend.port, dead, tmp_path))
    q = upstream_says(("X-Foo", "1"), ("X-Foo", "2"), ("Set-Cookie", "k=v; Path=/"),
                      ("Set-Cookie", "j=w"))
    mine, nginx = ask("/a?" + q)
    assert mine.status == nginx.status == 200
    for name in ("X-Http", "X-Cookie"):
        assert values(mine, name) == values(nginx, name), name
    assert values(mine, "X-Http") == ["[1][1][k=v; Path=/][]"]
    assert values(mine, "X-Cookie") == ["[v][w][]"]
    ports = {"DEAD": dead, "B": backend.port}
    assert [shape(v, ports) for v in values(mine, "X-Tries")] == \
           [shape(v, ports) for v in values(nginx, "X-Tries")]
    assert [shape(v, ports) for v in values(mine, "X-Tries")] == \
           ["[N.0.0.1:DEAD, N.0.0.1:B][N, N][-, T]"]
    assert values(mine, "X-Tries")[0].split("][")[1] == "502, 200"
    # the log line, written once the exchange ended
    logs = []
    for port in ask.ports:
        path = tmp_path / f"access-{port}.log"
        harness.wait_for(lambda: path.exists() and path.read_text().endswith("\n"))
        logs.append(path.read_text().strip())
    assert shape(logs[0], ports) == shape(logs[1], ports)
    m = re.fullmatch(r"\[1\]\[(.*)\]\[k=v; Path=/\]\[0, (\d+)\]\[0, (\d+)\]\[-, \d+\.\d{3}\]",
                     logs[0])
    assert m and m.group(1) == "[1][1][k=v; Path=/][]", logs[0]
    received, sent = int(m.group(2)), int(m.group(3))
    # the whole response the backend wrote, the whole request rampart wrote
    assert received > len(mine.body) + 100
    assert sent > len("GET /a?" + q)
