"""rampart and Debian's nginx side by side on the same http-block content, for the
tests of the proxy's response rewriting and header controls (test_proxy_redirect.py,
test_proxy_cookie.py, test_proxy_pass_request.py, test_accel_headers.py).

The `both` fixture: both(make_http) starts the two, make_http(port) giving each one's
http-block content for its listen port, and returns ask(path, **harness.request
keywords) -> (rampart's Response, nginx's Response). upstream_says(...) builds the query
that makes t/integration/backend.py send the given response fields. The refusal cases
are checked by refused_like_nginx: rampart names the file and line, and nginx refuses the
same content at the same line."""

import urllib.parse

import pytest

import harness
import reference_nginx


@pytest.fixture
def both(tmp_path, rampart, free_port):
    started = []

    def start(make_http):
        rp, ng = free_port(), free_port()
        rampart.configure(make_http(rp))
        rampart.start()
        reference_nginx.require()
        nginx = reference_nginx.Nginx(tmp_path / "nginx")
        nginx.configure(make_http(ng))
        nginx.start()
        started.append(nginx)

        def ask(path, **kw):
            return (harness.request(rp, path, **kw), harness.request(ng, path, **kw))
        ask.ports = (rp, ng)
        return ask
    yield start
    for n in started:
        n.stop()


def upstream_says(*fields):
    """The query string making the backend send these (name, value) response fields."""
    return "&".join("header=" + urllib.parse.quote(f"{n}:{v}", safe="") for n, v in fields)


def values(resp, name):
    """Every value of a response field, in order."""
    return resp.headers.get_all(name) or []


def refused_like_nginx(conf_dir, tmp_path, http, line, message):
    """rampart -t refuses http-block content with message at line; nginx -t refuses it too,
    at the same line."""
    reference_nginx.assert_rampart_refuses(conf_dir, http, line, message)
    named, stderr = reference_nginx.refusal(tmp_path, http)
    assert named == line, stderr
