"""rampart and Debian's nginx side by side on the same http-block content, for the
tests of the proxy's response rewriting and header controls (proxy_redirect,
proxy_cookie_*, proxy_pass_request_*, X-Accel-*): both(make_http) starts the two,
make_http(port) giving each one's content for its listen port, and returns a function
asking both the same request: ask(path, **request kwargs) -> (rampart's, nginx's)
harness.Response."""

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


def fields(resp, name):
    """Every value of a response field, in order."""
    return resp.headers.get_all(name) or []
