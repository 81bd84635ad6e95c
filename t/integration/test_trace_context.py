"""W3C Trace Context (https://www.w3.org/TR/trace-context/) through rampart: its hop is
a span. A request without a traceparent starts a trace (the backend sees a valid one
whose parent-id is rampart's span); one with a valid traceparent continues its trace
(same trace id and flags, rampart's span as the new parent-id, the tracestate passed
as received); an invalid one is treated as absent. $trace_id, $span_id and
$parent_span_id in the access log and in headers agree with what the backend saw;
over HTTP/1.1 and HTTP/2 clients, HTTP/1.1, HTTP/2 and gRPC upstreams.
`trace_context off|extract|inject|propagate` and `trace_context_sampled` switch it.
"""

import json
import re

import grpc
import pytest

from h2_backend import H2Backend
from h2client import h2_request
from harness import request, run, wait_for
from test_access_log import text_lines
from test_grpc import Server, channel, method

TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"
LOG = "log_format trace '$trace_id $span_id $parent_span_id';"


def serve(rampart, port, backend_addr, location="", http="", upstream="", listen=""):
    rampart.configure(f"{LOG}\n{http}\n"
                      f"upstream be {{ server {backend_addr}; {upstream} }}\n"
                      f"server {{\n listen 127.0.0.1:{port} {listen};\n"
                      f" access_log logs/trace.log trace;\n"
                      f" add_header X-Trace-Id $trace_id;\n"
                      f" location / {{ proxy_pass http://be; {location} }}\n}}")
    rampart.start()


def seen(resp):
    """The backend's view (echo=1): its traceparent and tracestate fields (all of them)."""
    hdrs = json.loads(resp.body)["headers"]
    return ([v for n, v in hdrs if n.lower() == "traceparent"],
            [v for n, v in hdrs if n.lower() == "tracestate"])


def log_fields(rampart, n=1):
    return text_lines(rampart.prefix / "logs" / "trace.log", n)[n - 1].split(" ")


def test_a_request_without_traceparent_starts_a_trace(rampart, port, backend):
    serve(rampart, port, backend.addr)
    r = request(port, "/?echo=1")
    (tp,), ts = seen(r)
    trace, parent, flags = TP.match(tp).groups()
    assert ts == []
    assert flags == "01"  # trace_context_sampled defaults to on
    log_trace, log_span, log_parent = log_fields(rampart)
    assert (log_trace, log_span, log_parent) == (trace, parent, "-")
    assert r.headers["X-Trace-Id"] == trace
    # a new trace per request
    (tp2,), _ = seen(request(port, "/?echo=1"))
    assert TP.match(tp2).group(1) != trace


def test_a_valid_traceparent_is_continued_with_rampart_as_the_parent(rampart, port, backend):
    serve(rampart, port, backend.addr)
    r = request(port, "/?echo=1", headers={
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-00",
        "tracestate": "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"})
    (tp,), ts = seen(r)
    trace, parent, flags = TP.match(tp).groups()
    assert trace == CLIENT_TRACE and flags == "00"  # the client's trace and flags
    assert parent != CLIENT_PARENT
    assert ts == ["rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"]  # as received
    assert log_fields(rampart) == [CLIENT_TRACE, parent, CLIENT_PARENT]


def test_a_later_version_is_continued_as_version_00(rampart, port, backend):
    serve(rampart, port, backend.addr)
    r = request(port, "/?echo=1", headers={
        "traceparent": f"cc-{CLIENT_TRACE}-{CLIENT_PARENT}-01-future-fields"})
    (tp,), _ = seen(r)
    trace, parent, flags = TP.match(tp).groups()
    assert (trace, flags) == (CLIENT_TRACE, "01")


@pytest.mark.parametrize("bad", [
    f"00-{CLIENT_TRACE.upper()}-{CLIENT_PARENT}-01",       # uppercase hex
    f"00-{'0' * 32}-{CLIENT_PARENT}-01",                   # all-zero trace id
    f"00-{CLIENT_TRACE}-{'0' * 16}-01",                    # all-zero parent id
    f"ff-{CLIENT_TRACE}-{CLIENT_PARENT}-01",               # version ff
    f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01-extra",         # version 00 with more
    "garbage",
])
def test_an_invalid_traceparent_is_replaced_by_a_new_trace(rampart, port, backend, bad):
    serve(rampart, port, backend.addr)
    r = request(port, "/?echo=1", headers={"traceparent": bad, "tracestate": "rojo=1"})
    (tp,), ts = seen(r)
    trace, parent, flags = TP.match(tp).groups()
    assert trace != CLIENT_TRACE.lower() and flags == "01"
    assert ts == []  # the tracestate of an invalid traceparent is not passed on
    assert log_fields(rampart) == [trace, parent, "-"]


def test_an_invalid_tracestate_is_dropped_and_the_trace_kept(rampart, port, backend):
    serve(rampart, port, backend.addr)
    too_many = ",".join(f"k{i}=v" for i in range(33))
    for state in ("Rojo=1", "rojo=1,rojo=2", too_many):
        r = request(port, "/?echo=1", headers={
            "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01", "tracestate": state})
        (tp,), ts = seen(r)
        assert TP.match(tp).group(1) == CLIENT_TRACE
        assert ts == [], state


def test_http2_client_and_http2_upstream(rampart, port):
    be = H2Backend().start()
    try:
        serve(rampart, port, f"127.0.0.1:{be.port}", upstream="http2;", listen="http2")
        r = h2_request(port, "GET", "/?echo=1", headers=[
            ("traceparent", f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"),
            ("tracestate", "congo=t61rcWkgMzE")])
        hdrs = json.loads(r.body)["headers"]
        tps = [v for n, v in hdrs if n == "traceparent"]
        assert [v for n, v in hdrs if n == "tracestate"] == ["congo=t61rcWkgMzE"]
        assert len(tps) == 1
        trace, parent, flags = TP.match(tps[0]).groups()
        assert (trace, flags) == (CLIENT_TRACE, "01") and parent != CLIENT_PARENT
        assert log_fields(rampart) == [CLIENT_TRACE, parent, CLIENT_PARENT]
        # and created for an HTTP/2 client that sent none
        r = h2_request(port, "GET", "/?echo=1")
        (tp,) = [v for n, v in json.loads(r.body)["headers"] if n == "traceparent"]
        trace, parent, _ = TP.match(tp).groups()
        assert log_fields(rampart, 2) == [trace, parent, "-"]
    finally:
        be.stop()


def test_grpc_upstream_gets_the_traceparent_as_metadata(rampart, port):
    gserver = Server()
    try:
        rampart.configure(f"{LOG}\nserver {{\n listen 127.0.0.1:{port} http2;\n"
                          f" access_log logs/trace.log trace;\n"
                          f" location / {{ grpc_pass grpc://127.0.0.1:{gserver.port}; }}\n}}")
        rampart.start()
        with channel(port) as ch:
            method(ch, "Unary")(b"x", timeout=5)
            method(ch, "Unary")(b"y", metadata=(
                ("traceparent", f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"),), timeout=5)
        created, continued = gserver.metadata[-2:]
        trace, parent, _ = TP.match(created["traceparent"]).groups()
        assert log_fields(rampart, 1) == [trace, parent, "-"]
        trace, parent, _ = TP.match(continued["traceparent"]).groups()
        assert trace == CLIENT_TRACE
        assert log_fields(rampart, 2) == [CLIENT_TRACE, parent, CLIENT_PARENT]
    finally:
        gserver.stop()


def test_trace_context_off_leaves_the_fields_and_makes_no_ids(rampart, port, backend):
    serve(rampart, port, backend.addr, http="trace_context off;")
    sent = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
    r = request(port, "/?echo=1", headers={"traceparent": sent, "tracestate": "a=1"})
    assert seen(r) == ([sent], ["a=1"])
    assert "X-Trace-Id" not in r.headers
    assert log_fields(rampart) == ["-", "-", "-"]


def test_extract_reads_the_context_but_sends_the_clients_fields(rampart, port, backend):
    serve(rampart, port, backend.addr, location="trace_context extract;")
    sent = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
    r = request(port, "/?echo=1", headers={"traceparent": sent})
    assert seen(r) == ([sent], [])
    trace, span, parent = log_fields(rampart)
    assert (trace, parent) == (CLIENT_TRACE, CLIENT_PARENT) and len(span) == 16


def test_inject_starts_a_new_trace_even_when_the_client_sent_one(rampart, port, backend):
    serve(rampart, port, backend.addr, location="trace_context inject;")
    r = request(port, "/?echo=1", headers={
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01", "tracestate": "a=1"})
    (tp,), ts = seen(r)
    trace, parent, _ = TP.match(tp).groups()
    assert trace != CLIENT_TRACE and ts == []
    assert log_fields(rampart) == [trace, parent, "-"]


def test_trace_context_sampled_off_starts_unsampled_traces(rampart, port, backend):
    serve(rampart, port, backend.addr, http="trace_context_sampled off;")
    (tp,), _ = seen(request(port, "/?echo=1"))
    assert TP.match(tp).group(3) == "00"
    # a continued trace keeps the client's flag
    (tp,), _ = seen(request(port, "/?echo=1", headers={
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"}))
    assert TP.match(tp).group(3) == "01"


def test_proxy_set_header_traceparent_wins(rampart, port, backend):
    serve(rampart, port, backend.addr,
          location="proxy_set_header traceparent \"00-$trace_id-$span_id-01\";"
                   " proxy_set_header X-Span $span_id;")
    r = request(port, "/?echo=1", headers={"tracestate": "a=1"})
    (tp,), _ = seen(r)
    hdrs = dict((n.lower(), v) for n, v in json.loads(r.body)["headers"])
    trace, span, _ = TP.match(tp).groups()
    assert hdrs["x-span"] == span and r.headers["X-Trace-Id"] == trace


def test_bad_trace_context_value_is_refused_at_its_line(conf_dir):
    (conf_dir / "rampart.conf").write_text(
        "pid logs/rampart.pid;\nhttp {\n trace_context maybe;\n}\n")
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr.splitlines()[0] == (
        f'rampart: {conf_dir}/rampart.conf:3: "trace_context": invalid value "maybe", it must '
        f'be off, extract, inject or propagate')


def test_a_mirror_copy_is_a_child_span_of_the_request(rampart, port, backend_factory):
    main, shadow = backend_factory(name="main"), backend_factory(name="shadow")
    rampart.configure(f"upstream shadow {{ server {shadow.addr}; }}\n"
                      f"server {{\n listen 127.0.0.1:{port};\n"
                      f" location / {{ mirror /m; proxy_pass http://{main.addr}; }}\n"
                      f" location = /m {{ internal; proxy_pass http://shadow$request_uri; }}\n}}")
    rampart.start()
    assert request(port, "/x", headers={
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01", "tracestate": "a=1"}).status == 200
    wait_for(lambda: shadow.log(), what="the mirror's request")

    def tp(be):
        hdrs = be.log()[-1]["headers"]
        return ([v for n, v in hdrs if n.lower() == "traceparent"],
                [v for n, v in hdrs if n.lower() == "tracestate"])
    (main_tp,), main_ts = tp(main)
    (shadow_tp,), shadow_ts = tp(shadow)
    m_trace, m_span, _ = TP.match(main_tp).groups()
    s_trace, s_span, _ = TP.match(shadow_tp).groups()
    assert m_trace == s_trace == CLIENT_TRACE
    assert s_span != m_span  # its own span, child of the request's
    assert main_ts == shadow_ts == ["a=1"]
