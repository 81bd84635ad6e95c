"""`split_clients` answers as in nginx: the same http-block content runs under Debian's
nginx (reference_nginx.py) and rampart, and every key lands in the same bucket under
both (MurmurHash2 and nginx's bucket arithmetic, to the integer). Over 10,000 distinct
keys the buckets take their shares; the same key always gets the same value.

The configuration errors are checked on rampart alone (the message, file and line)
and against `nginx -t` (both refuse the file).
"""

import socket

import pytest

import harness
import reference_nginx

PORT = "@PORT@"

# The http-block content both servers run; only the listen port differs. The texts
# echo the variables between brackets, so that an empty value shows.
HTTP = """
split_clients "${arg_k}AAA" $ab {
    0.5%    one;
    2.0%    two;
    33.33%  three;
    *       rest;
}
split_clients "$arg_k" $partial {
    10%     ten;
    .5%     half;
    20.25%  twenty;
}
split_clients "$http_x_key$arg_k" $tiny {
    0.01%   t;
    *       "";
}
split_clients "$arg_k" $full {
    100%    all;
}
server {
    listen 127.0.0.1:@PORT@;
    keepalive_requests 100000;
    location / {
        return 200 "[$ab|$partial|$tiny|$full]";
    }
}
"""


def http_for(port):
    return HTTP.replace(PORT, str(port))


class Pair:
    def __init__(self, nginx, rampart):
        self.nginx = nginx
        self.rampart = rampart


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    reference_nginx.require()
    tmp = tmp_path_factory.mktemp("split_clients")
    nginx = reference_nginx.Nginx(tmp / "nginx")
    rampart = harness.Rampart(tmp / "rampart")
    try:
        nginx.configure(http_for(harness.free_port()))
        nginx.start()
        rampart.configure(text=reference_nginx.rampart_text(http_for(harness.free_port())))
        rampart.start()
        yield Pair(nginx, rampart)
    finally:
        rampart.stop()
        nginx.stop()
    problems = rampart.problems()
    assert not problems, "unexpected trouble in rampart:\n" + "\n".join(problems)


def answers(port, requests, batch=200):
    """Sends the requests (each a (target, extra header lines) pair) pipelined on one
    keep-alive connection, in batches; returns the bodies in order."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        f = s.makefile("rb")
        for i in range(0, len(requests), batch):
            chunk = requests[i:i + batch]
            s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: split.test\r\n%s\r\n"
                               % (t.encode(), extra.encode()) for t, extra in chunk))
            for _ in chunk:
                status = f.readline()
                assert status.startswith(b"HTTP/1.1 200"), status
                length = None
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                assert length is not None
                out.append(f.read(length).decode())
    return out


def keys(n, prefix="user"):
    return [f"{prefix}{i}" for i in range(n)]


def targets(ks):
    return [(f"/?k={k}", "") for k in ks]


def test_every_key_gets_the_value_nginx_gives_it(pair):
    # ordinary keys, addresses as the usual "${remote_addr}AAA" idiom hashes them, the
    # empty key, and keys of every length modulo four (MurmurHash2's tail)
    ks = keys(1500) + [f"10.0.{i // 256}.{i % 256}" for i in range(500)] + \
        ["", "a", "ab", "abc", "abcd", "abcde", "x" * 1000, "%41%42", "caf%C3%A9"]
    reqs = targets(ks) + [(f"/?k={k}", f"X-Key: {k}\r\n") for k in keys(200, "h")]
    want = answers(pair.nginx.port, reqs)
    got = answers(pair.rampart.port, reqs)
    differences = [f"{r}: nginx {w!r}, rampart {g!r}"
                   for r, w, g in zip(reqs, want, got) if w != g]
    assert not differences, (f"{len(differences)} of {len(reqs)} answers differ:\n"
                             + "\n".join(differences[:20]))
    # the table is not trivial: every bucket of $ab, and an empty $partial, occur
    seen = {w.strip("[]").split("|")[0] for w in want}
    assert seen == {"one", "two", "three", "rest"}
    assert any(w.strip("[]").split("|")[1] == "" for w in want)


def test_ten_thousand_keys_take_each_share_within_two_percent(pair):
    ks = keys(10000, "client-")
    got = answers(pair.rampart.port, targets(ks))
    assert len(got) == 10000
    counts = {}
    for body in got:
        ab, partial, tiny, full = body.strip("[]").split("|")
        assert full == "all"
        counts[("ab", ab)] = counts.get(("ab", ab), 0) + 1
        counts[("partial", partial)] = counts.get(("partial", partial), 0) + 1
    shares = {("ab", "one"): 0.5, ("ab", "two"): 2.0, ("ab", "three"): 33.33,
              ("ab", "rest"): 64.17, ("partial", "ten"): 10.0, ("partial", "half"): 0.5,
              ("partial", "twenty"): 20.25, ("partial", ""): 69.25}
    for bucket, share in shares.items():
        pct = 100.0 * counts.get(bucket, 0) / len(got)
        assert abs(pct - share) <= 2.0, f"{bucket}: {pct:.2f}% of the keys, share {share}%"


def test_the_same_key_always_gets_the_same_value(pair):
    ks = keys(300, "again")
    first = answers(pair.rampart.port, targets(ks))
    # on other connections, in another order
    second = answers(pair.rampart.port, targets(list(reversed(ks))), batch=7)
    assert first == list(reversed(second))


# ---- configuration errors --------------------------------------------------------------
# http-block content, the line of the mistake (the content starts on line 3 in both
# files), and rampart's message after "FILE:LINE: ".

def block(*entries, head='split_clients "${remote_addr}AAA" $variant'):
    return f"{head} {{\n" + "".join(f"    {e}\n" for e in entries) + "}\n"


ERRORS = {
    "total_over_100":
        (block("50% a;", "60% b;"), 5, '"60%": percent total is greater than 100%'),
    "share_after_the_star":
        (block("* a;", "0.01% b;"), 5, '"0.01%": percent total is greater than 100%'),
    "zero_percent":
        (block("0% a;"), 4, '"0%": invalid percent value "0%"'),
    "three_decimals":
        (block("0.555% a;"), 4, '"0.555%": invalid percent value "0.555%"'),
    "no_percent_sign":
        (block("5 a;"), 4, '"5": invalid percent value "5"'),
    "two_dots":
        (block("1..5% a;"), 4, '"1..5%": invalid percent value "1..5%"'),
    "negative":
        (block("-5% a;"), 4, '"-5%": invalid percent value "-5%"'),
    "not_a_variable":
        (block("5% a;", head='split_clients $remote_addr variant'), 3,
         '"split_clients": invalid variable name "variant"'),
    "a_variable_rampart_defines":
        (block("5% a;", head='split_clients $remote_addr $host'), 3,
         '"split_clients": the variable "$host" cannot be assigned'),
    "outside_http":
        ("server {\n    listen 127.0.0.1:8080;\n" + block("5% a;") + "}\n", 5,
         '"split_clients": not allowed in the server context'),
}


@pytest.mark.parametrize("case", ERRORS)
def test_configuration_error_names_file_and_line(conf_dir, case):
    http, line, message = ERRORS[case]
    reference_nginx.assert_rampart_refuses(conf_dir, http, line, message)


@pytest.mark.parametrize("case", ERRORS)
def test_nginx_refuses_the_same_configuration(tmp_path, case):
    http, line, _ = ERRORS[case]
    named, stderr = reference_nginx.refusal(tmp_path, http)
    # nginx names the closing brace for a total over 100%; rampart the line that passes it
    if named is not None and "percent total" not in stderr:
        assert named == line, stderr
