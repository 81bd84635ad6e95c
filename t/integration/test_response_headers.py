"""Directives that shape how a response is labelled and how a path is matched."""

from harness import get


def test_default_type_labels_the_text_of_return(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; default_type application/json; '
                      f'location / {{ return 200 "{{}}"; }} }}')
    rampart.start()
    assert get(port).headers["Content-Type"] == "application/json"


def test_default_type_is_text_plain_when_not_set(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "x"; }}')
    rampart.start()
    assert get(port).headers["Content-Type"] == "text/plain"


def test_server_tokens_off_hides_the_version_in_the_server_header(rampart, port):
    rampart.configure(f'server_tokens off;\nserver {{ listen 127.0.0.1:{port}; return 200 "x"; }}')
    rampart.start()
    assert get(port).headers["Server"] == "rampart"


def test_server_tokens_default_shows_the_version(rampart, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "x"; }}')
    rampart.start()
    assert get(port).headers["Server"].startswith("rampart/")


def _locations(port, merge):
    return (f"merge_slashes {merge};\nserver {{ listen 127.0.0.1:{port}; "
            f'location = /a/b {{ return 200 "exact"; }} location / {{ return 200 "other"; }} }}')


def test_merge_slashes_on_lets_a_doubled_slash_match_the_location(rampart, port):
    rampart.configure(_locations(port, "on"))
    rampart.start()
    assert get(port, "//a//b").text == "exact"


def test_merge_slashes_off_matches_the_path_as_written(rampart, port):
    rampart.configure(_locations(port, "off"))
    rampart.start()
    assert get(port, "//a//b").text == "other"
    assert get(port, "/a/b").text == "exact"
