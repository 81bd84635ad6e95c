"""HTTP/1 request framing at the edge: heads a gateway must refuse (the ones
request smuggling is made of) are answered with an error and the connection
closes; unusual but valid forms are served."""

import pytest

from harness import raw_exchange, split_responses

CONF = """
server {{ listen 127.0.0.1:{port}; server_name a.test; return 200 "a $host $uri $args"; }}
server {{ listen 127.0.0.1:{port}; server_name b.test; return 200 "b $host $uri $args"; }}
"""


@pytest.fixture
def port_served(rampart, port):
    rampart.configure(CONF.format(port=port))
    rampart.start()
    return port


def only_response(port, head):
    (status, headers, body), = split_responses(raw_exchange(port, head))
    return status, headers, body


def test_absolute_form_target_picks_server_by_its_own_host(port_served):
    status, _, body = only_response(port_served, b"GET http://b.test/x?q=1 HTTP/1.1\r\n"
                                                 b"Host: a.test\r\nConnection: close\r\n\r\n")
    assert (status, body) == ("HTTP/1.1 200 OK", b"b b.test /x q=1")


def test_host_is_matched_without_case_port_or_trailing_dot(port_served):
    status, _, body = only_response(
        port_served, b"GET / HTTP/1.1\r\nHost: B.Test.:8080\r\nConnection: close\r\n\r\n")
    assert body == b"b b.test / "


def test_path_is_normalized_before_routing(port_served):
    status, _, body = only_response(port_served, b"GET /a/./b/../c//d%2Fe HTTP/1.1\r\n"
                                                 b"Host: a.test\r\nConnection: close\r\n\r\n")
    assert body == b"a a.test /a/c/d/e "


def test_bare_lf_line_endings_are_accepted(port_served):
    status, _, body = only_response(port_served, b"GET /lf HTTP/1.1\nHost: a.test\n"
                                                 b"Connection: close\n\n")
    assert (status, body) == ("HTTP/1.1 200 OK", b"a a.test /lf ")


@pytest.mark.parametrize("head, status", [
    (b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
     "HTTP/1.1 400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
     b"0\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
     "HTTP/1.1 400 Bad Request"),
    (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n",
     "HTTP/1.1 501 Not Implemented"),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost: a.test\r\nX: a\r\n folded\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/1.1\r\nHost : a.test\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET /../etc/passwd HTTP/1.1\r\nHost: a.test\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET /a%00b HTTP/1.1\r\nHost: a.test\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (b"GET / HTTP/2.0\r\nHost: a.test\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported"),
    (b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
], ids=["two-content-lengths", "te-and-cl", "chunked-not-last", "unknown-coding",
        "te-in-http10", "negative-length", "two-hosts", "line-folding", "space-before-colon",
        "dot-dot-above-root", "nul-in-path", "http2-on-h1", "connect"])
def test_ambiguous_or_unsupported_head_is_refused_and_closed(port_served, head, status):
    # Anything the head carried after it must not be read as a next request: a single
    # answer, then the close.
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n"
    got, headers, _ = only_response(port_served, head + smuggled)
    assert got == status
    assert headers["connection"] == "close"


def test_request_line_too_long_gets_414(port_served):
    status, _, _ = only_response(port_served, b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\n"
                                              b"Host: a.test\r\n\r\n")
    assert status == "HTTP/1.1 414 URI Too Long"


def test_header_too_large_gets_431(port_served):
    status, _, _ = only_response(port_served, b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " +
                                              b"b" * 9000 + b"\r\n\r\n")
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"


# -- the status line's version (RFC 9110 2.5) ---------------------------------------------

LIMITS = """
server {{ listen 127.0.0.1:{port}; client_max_body_size 10; large_client_header_buffers 2 1k;
         location / {{ return 200 "ok"; }}
         location /teapot {{ return 418; }} }}
"""

HTTP10 = {
    "400-te-in-http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "400-bad-field": (b"GET / HTTP/1.0\r\nBad Field: x\r\n\r\n", 400),
    "400-two-lengths": (b"POST / HTTP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
                        400),
    "405-connect": (b"CONNECT a.test:443 HTTP/1.0\r\n\r\n", 405),
    "413-declared-length": (b"POST / HTTP/1.0\r\nContent-Length: 11\r\n\r\n" + b"x" * 11, 413),
    "414-long-target": (b"GET /" + b"a" * 4096 + b" HTTP/1.0\r\n\r\n", 414),
    "431-long-field": (b"GET / HTTP/1.0\r\nX: " + b"a" * 2048 + b"\r\n\r\n", 431),
    "505-http-2-on-h1": (b"GET / HTTP/2.0\r\n\r\n", 505),
    "418-from-a-location": (b"GET /teapot HTTP/1.0\r\n\r\n", 418),
    "200": (b"GET / HTTP/1.0\r\n\r\n", 200),
}


@pytest.mark.parametrize("case", list(HTTP10))
def test_http10_request_is_answered_with_an_http11_status_line(rampart, port, case):
    # RFC 9110 2.5: a server sends its own highest version with the client's major
    # version, whether the request was refused before its version was read, refused
    # after, or served; the close still follows HTTP/1.0's rules
    rampart.configure(LIMITS.format(port=port))
    rampart.start()
    head, code = HTTP10[case]
    status, headers, _ = only_response(port, head)
    assert status.split(" ", 2)[:2] == ["HTTP/1.1", str(code)], status
    assert headers.get("connection") == "close", headers
    assert "transfer-encoding" not in headers, headers
