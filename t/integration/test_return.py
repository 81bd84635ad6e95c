"""`return` over real HTTP/1: bodies, error pages, redirects, which server and
location answer, and how a connection carries several requests."""

import http.client
import socket

from harness import get, raw_exchange, request, split_responses


def serve(rampart, port, body):
    rampart.configure(f"server {{\n listen 127.0.0.1:{port};\n{body}\n}}")
    return rampart.start()


def test_return_text_expands_uri_and_query_argument(rampart, port):
    serve(rampart, port, 'location / { return 200 "uri=$uri x=$arg_x\\n"; }')
    r = get(port, "/a/b?y=1&x=hello")
    assert r.status == 200
    assert r.text == "uri=/a/b x=hello\n"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Length"] == str(len(r.body))


def test_return_404_without_text_sends_html_error_page(rampart, port):
    serve(rampart, port, "location / { return 404; }")
    r = get(port, "/missing")
    assert r.status == 404
    assert r.reason == "Not Found"
    assert r.headers["Content-Type"] == "text/html"
    assert b"<title>404 Not Found</title>" in r.body
    assert r.headers["Content-Length"] == str(len(r.body))


def test_return_301_with_url_sets_location(rampart, port):
    serve(rampart, port, "location /old/ { return 301 https://example.com/new/$uri; }")
    r = get(port, "/old/page")
    assert r.status == 301
    assert r.headers["Location"] == "https://example.com/new//old/page"
    assert b"301 Moved Permanently" in r.body


def test_redirect_to_decoded_uri_cannot_split_the_response_head(rampart, port):
    # $uri is decoded: "%0d%0a" becomes CR LF there, the classic response-splitting
    # pitfall of `return 301 ...$uri` in nginx. rampart encodes them back.
    serve(rampart, port, "location / { return 301 https://example.com$uri; }")
    data = raw_exchange(port, b"GET /a%0d%0aSet-Cookie:%20evil=1 HTTP/1.1\r\n"
                              b"Host: x\r\nConnection: close\r\n\r\n")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 301 ")
    assert b"\r\nLocation: https://example.com/a%0D%0ASet-Cookie: evil=1\r\n" in head
    assert b"\r\nSet-Cookie" not in head


def test_return_with_only_a_url_redirects_with_302(rampart, port):
    serve(rampart, port, "location / { return http://example.com/x; }")
    r = get(port, "/")
    assert r.status == 302
    assert r.headers["Location"] == "http://example.com/x"


def test_return_200_without_text_sends_empty_body(rampart, port):
    serve(rampart, port, "location / { return 200; }")
    r = get(port, "/")
    assert (r.status, r.body, r.headers["Content-Length"]) == (200, b"", "0")


def test_return_444_closes_without_an_answer(rampart, port):
    serve(rampart, port, "location / { return 444; }")
    assert raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == b""


LOCATIONS = """
    location / { return 200 "prefix /"; }
    location /api/ { return 200 "prefix /api/"; }
    location /api/v1/ { return 200 "prefix /api/v1/"; }
    location = /api/ { return 200 "exact /api/"; }
    location ~ \\.json$ { return 200 "regex json"; }
    location ~* \\.JPG$ { return 200 "regex jpg caseless"; }
    location ^~ /static/ { return 200 "prefix ^~ /static/"; }
"""


def test_exact_location_wins_over_prefix(rampart, port):
    serve(rampart, port, LOCATIONS)
    assert get(port, "/api/").text == "exact /api/"
    assert get(port, "/api/x").text == "prefix /api/"


def test_longest_prefix_location_wins(rampart, port):
    serve(rampart, port, LOCATIONS)
    assert get(port, "/api/v1/users").text == "prefix /api/v1/"
    assert get(port, "/other").text == "prefix /"


def test_regex_location_wins_over_prefix(rampart, port):
    serve(rampart, port, LOCATIONS)
    assert get(port, "/api/v1/users.json").text == "regex json"
    assert get(port, "/photo.jpg").text == "regex jpg caseless"


def test_caret_tilde_prefix_skips_regex_locations(rampart, port):
    serve(rampart, port, LOCATIONS)
    assert get(port, "/static/data.json").text == "prefix ^~ /static/"


def test_location_matches_the_normalized_path(rampart, port):
    serve(rampart, port, LOCATIONS)
    assert get(port, "/x/../api/v1/%75sers").text == "prefix /api/v1/"


SERVERS = """
server {{
    listen 127.0.0.1:{port};
    server_name first.test;
    return 200 "first";
}}
server {{
    listen 127.0.0.1:{port} default_server;
    server_name fallback.test;
    return 200 "fallback";
}}
server {{
    listen 127.0.0.1:{port};
    server_name api.test *.wild.test;
    return 200 "api";
}}
"""


def test_server_is_chosen_by_host_header(rampart, port):
    rampart.configure(SERVERS.format(port=port))
    rampart.start()
    assert get(port, host="first.test").text == "first"
    assert get(port, host="API.test:8080").text == "api"
    assert get(port, host="x.wild.test").text == "api"


def test_unknown_host_goes_to_default_server(rampart, port):
    rampart.configure(SERVERS.format(port=port))
    rampart.start()
    assert get(port, host="nobody.test").text == "fallback"
    assert raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n").endswith(b"\r\n\r\nfallback")


def test_first_server_is_default_without_default_server(rampart, port):
    rampart.configure(f"""
        server {{ listen 127.0.0.1:{port}; server_name a.test; return 200 "a"; }}
        server {{ listen 127.0.0.1:{port}; server_name b.test; return 200 "b"; }}
    """)
    rampart.start()
    assert get(port, host="b.test").text == "b"
    assert get(port, host="c.test").text == "a"


def test_server_level_return_fires_before_locations(rampart, port):
    serve(rampart, port, """
        return 301 https://secure.test$request_uri;
        location / { return 200 "location"; }
        location = /exact { return 200 "exact"; }
    """)
    r = get(port, "/exact?q=1")
    assert r.status == 301
    assert r.headers["Location"] == "https://secure.test/exact?q=1"


def test_head_response_has_headers_but_no_body(rampart, port):
    serve(rampart, port, 'location / { return 200 "twelve bytes"; }')
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 12\r\n" in head + b"\r\n"
    # The next response starts right after the HEAD's head: no body bytes in between.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"\r\n\r\ntwelve bytes")


def test_http10_request_gets_an_http11_status_line_and_close(rampart, port):
    # RFC 9110 2.5: the server's own version in the status line; the request's version
    # still decides persistence (close) and is what $server_protocol says
    serve(rampart, port, 'location / { return 200 "$server_protocol"; }')
    data = raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    (status, headers, body), = split_responses(data)
    assert status == "HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert body == b"HTTP/1.0"


def test_http10_keep_alive_keeps_connection_open(rampart, port):
    serve(rampart, port, 'location / { return 200 "$uri"; }')
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /one HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = _read_one(s)
        s.sendall(b"GET /two HTTP/1.0\r\n\r\n")
        second = _read_one(s)
    assert first[1]["connection"] == "keep-alive" and first[2] == b"/one"
    assert second[1]["connection"] == "close" and second[2] == b"/two"


def _read_one(s):
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    n = int(split_responses(head + b"\r\n\r\n")[0][1].get("content-length", 0))
    while len(body) < n:
        body += s.recv(65536)
    return split_responses(head + b"\r\n\r\n" + body)[0]


def test_keepalive_serves_several_requests_on_one_connection(rampart, port):
    serve(rampart, port, 'location / { return 200 "$uri $connection_requests"; }')
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        sockets = []
        for i in range(1, 6):
            conn.request("GET", f"/r{i}")
            r = conn.getresponse()
            assert r.read() == f"/r{i} {i}".encode()
            assert r.getheader("Connection") is None
            assert not r.will_close
            sockets.append(conn.sock)
        assert all(s is sockets[0] for s in sockets)
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(rampart, port):
    serve(rampart, port, 'location / { return 200 "$uri"; }')
    paths = [f"/p{i}" for i in range(20)]
    data = b"".join(f"GET {p} HTTP/1.1\r\nHost: a\r\n\r\n".encode() for p in paths)
    data += b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answers = split_responses(raw_exchange(port, data))
    assert [body.decode() for _, _, body in answers] == paths + ["/last"]
    assert all(status == "HTTP/1.1 200 OK" for status, _, _ in answers)


def test_unread_request_body_is_discarded_before_next_request(rampart, port):
    serve(rampart, port, 'location / { return 200 "$request_method $uri"; }')
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", "/upload", body=b"x" * 100000,
                     headers={"Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        assert r.read() == b"POST /upload"
        first = conn.sock
        conn.request("GET", "/after")
        r = conn.getresponse()
        assert r.read() == b"GET /after"
        assert conn.sock is first
    finally:
        conn.close()


def test_small_body_and_next_request_in_one_packet(rampart, port):
    serve(rampart, port, 'location / { return 200 "$request_method $uri"; }')
    data = raw_exchange(port, b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"
                              b"GET /evil\r\n"
                              b"GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert [body for _, _, body in split_responses(data)] == [b"POST /a", b"GET /b"]


def test_malformed_request_gets_400_and_close(rampart, port):
    serve(rampart, port, 'location / { return 200 "ok"; }')
    data = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n")
    (status, headers, body), = split_responses(data)
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["connection"] == "close"
    assert b"<title>400 Bad Request</title>" in body


def test_http11_request_without_host_gets_400(rampart, port):
    serve(rampart, port, 'location / { return 200 "ok"; }')
    data = raw_exchange(port, b"GET / HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_chunked_request_body_is_discarded_before_next_request(rampart, port):
    serve(rampart, port, 'location / { return 200 "$uri"; }')
    data = raw_exchange(port, b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n"
                              b"GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert [body for _, _, body in split_responses(data)] == [b"/a", b"/b"]


def test_listen_on_ipv6_loopback(rampart, port):
    rampart.configure(f'server {{ listen [::1]:{port}; return 200 "v6 $remote_addr"; }}')
    rampart.start()
    r = request(port, addr="::1")
    assert r.text == "v6 ::1"
