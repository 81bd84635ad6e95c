"""auth_basic and auth_basic_user_file, as nginx's auth_basic module: a request without
valid Basic credentials gets 401 with `WWW-Authenticate: Basic realm="..."`; the user
file's hashes are made here by the tools operators use (`openssl passwd` -1, -5, -6,
-apr1 and apache2-utils' `htpasswd`: its default apr1, -B bcrypt, -s SHA-1, -2, -5 and
-d crypt), plus yescrypt, {SSHA} and {PLAIN}; $remote_user is the user; a changed file
is seen without a reload; several answers are compared with Debian's nginx."""

import base64
import hashlib
import os
import subprocess
import time
import warnings

import pytest

import harness
import reference_nginx

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # libxcrypt, for yescrypt (no command here makes it)


def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def openssl_passwd(flag, pw):
    return subprocess.run(["openssl", "passwd", flag, pw], capture_output=True, text=True,
                          check=True).stdout.strip()


def htpasswd(flags, user, pw):
    out = subprocess.run(["htpasswd", "-nb", *flags, user, pw], capture_output=True,
                         text=True, check=True).stdout.strip()
    name, _, hash_ = out.partition(":")
    assert name == user
    return hash_


def ssha(pw, salt=b"s@lt\x00\xff"):
    d = hashlib.sha1(pw.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(d + salt).decode()


def users():
    """user -> (hash, password): one user per scheme, each with its own password."""
    pw = {name: f"secret-{name}" for name in (
        "md5", "sha256", "sha512", "apr1", "ht_apr1", "ht_bcrypt", "ht_sha", "ht_sha256",
        "ht_sha512", "ht_crypt", "yescrypt", "ssha", "plain")}
    pw["ht_crypt"] = "crypt8ch"  # DES crypt uses 8 characters
    return {
        "md5": (openssl_passwd("-1", pw["md5"]), pw["md5"]),
        "sha256": (openssl_passwd("-5", pw["sha256"]), pw["sha256"]),
        "sha512": (openssl_passwd("-6", pw["sha512"]), pw["sha512"]),
        "apr1": (openssl_passwd("-apr1", pw["apr1"]), pw["apr1"]),
        "ht_apr1": (htpasswd([], "ht_apr1", pw["ht_apr1"]), pw["ht_apr1"]),
        "ht_bcrypt": (htpasswd(["-B"], "ht_bcrypt", pw["ht_bcrypt"]), pw["ht_bcrypt"]),
        "ht_sha": (htpasswd(["-s"], "ht_sha", pw["ht_sha"]), pw["ht_sha"]),
        "ht_sha256": (htpasswd(["-2"], "ht_sha256", pw["ht_sha256"]), pw["ht_sha256"]),
        "ht_sha512": (htpasswd(["-5"], "ht_sha512", pw["ht_sha512"]), pw["ht_sha512"]),
        "ht_crypt": (htpasswd(["-d"], "ht_crypt", pw["ht_crypt"]), pw["ht_crypt"]),
        "yescrypt": (crypt.crypt(pw["yescrypt"], crypt.mksalt(crypt.METHOD_SHA512)
                                 .replace("$6$", "$y$j9T$")[:7 + 16] + "$"), pw["yescrypt"]),
        "ssha": (ssha(pw["ssha"]), pw["ssha"]),
        "plain": ("{PLAIN}" + pw["plain"], pw["plain"]),
    }


def write_users(path, table, newline="\n"):
    path.write_text("".join(f"{u}:{h}{newline}" for u, (h, _) in table.items()))


def serve(rampart, port, backend, location, extra=""):
    rampart.configure(f"""
    {extra}
    server {{
        listen 127.0.0.1:{port};
        location / {{ {location} proxy_pass http://{backend.addr}; }}
        location /open/ {{ auth_basic off; proxy_pass http://{backend.addr}; }}
    }}
    """)
    return rampart.start()


def test_every_scheme_admits_its_password_and_refuses_another(rampart, port, backend, tmp_path):
    table = users()
    assert table["yescrypt"][0].startswith("$y$")
    assert table["ht_bcrypt"][0].startswith("$2y$")
    assert table["ht_apr1"][0].startswith("$apr1$")
    write_users(tmp_path / "htpasswd", table)
    serve(rampart, port, backend,
          f'auth_basic "Zone"; auth_basic_user_file {tmp_path}/htpasswd;')
    for user, (hash_, pw) in table.items():
        ok = harness.get(port, headers=basic(user, pw))
        assert ok.status == 200, (user, hash_)
        bad = harness.get(port, headers=basic(user, "X" + pw))  # DES reads 8 characters
        assert bad.status == 401, (user, hash_)
        assert bad.headers["WWW-Authenticate"] == 'Basic realm="Zone"'


def test_no_credentials_get_401_with_the_realm(rampart, port, backend, tmp_path):
    write_users(tmp_path / "htpasswd", {"u": ("{PLAIN}p", "p")})
    serve(rampart, port, backend, f'auth_basic "Staff only"; auth_basic_user_file {tmp_path}/htpasswd;')
    r = harness.get(port)
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Staff only"'
    assert harness.get(port, "/open/").status == 200  # auth_basic off in that location


def test_realm_and_file_take_variables(rampart, port, backend, tmp_path):
    (tmp_path / "users-a").write_text("alice:{PLAIN}a\n")
    (tmp_path / "users-b").write_text("bob:{PLAIN}b\n")
    serve(rampart, port, backend,
          f'auth_basic "realm of $http_x_team"; auth_basic_user_file {tmp_path}/users-$http_x_team;')
    r = harness.get(port, headers={"X-Team": "a"})
    assert r.headers["WWW-Authenticate"] == 'Basic realm="realm of a"'
    assert harness.get(port, headers={"X-Team": "a", **basic("alice", "a")}).status == 200
    assert harness.get(port, headers={"X-Team": "b", **basic("alice", "a")}).status == 401
    assert harness.get(port, headers={"X-Team": "b", **basic("bob", "b")}).status == 200


def test_remote_user_is_the_authenticated_user(rampart, port, backend, tmp_path):
    write_users(tmp_path / "htpasswd", {"carol": (openssl_passwd("-6", "pw"), "pw")})
    serve(rampart, port, backend,
          f'auth_basic "x"; auth_basic_user_file {tmp_path}/htpasswd; '
          f'proxy_set_header X-Backend-Header "X-User:$remote_user";')
    r = harness.get(port, headers=basic("carol", "pw"))
    assert r.status == 200
    assert r.headers["X-User"] == "carol"


def test_comments_blank_lines_crlf_and_trailing_fields_are_understood(rampart, port, backend,
                                                                      tmp_path):
    (tmp_path / "htpasswd").write_bytes(
        b"# staff\r\n\r\ndave:{PLAIN}d1:Dave Smith\r\n   \r\n#erin:{PLAIN}e\r\n"
        b"erin:" + htpasswd(["-B"], "erin", "e2").encode() + b"\r\nlast:{PLAIN}nolf")
    serve(rampart, port, backend, f'auth_basic "x"; auth_basic_user_file {tmp_path}/htpasswd;')
    assert harness.get(port, headers=basic("dave", "d1")).status == 200
    assert harness.get(port, headers=basic("erin", "e2")).status == 200
    assert harness.get(port, headers=basic("last", "nolf")).status == 200
    assert harness.get(port, headers=basic("#erin", "e")).status == 401


def test_a_changed_file_is_seen_without_a_reload(rampart, port, backend, tmp_path):
    f = tmp_path / "htpasswd"
    f.write_text("frank:{PLAIN}old\n")
    serve(rampart, port, backend, f'auth_basic "x"; auth_basic_user_file {f};')
    assert harness.get(port, headers=basic("frank", "old")).status == 200
    tmp = tmp_path / "htpasswd.new"
    tmp.write_text("frank:" + htpasswd(["-B"], "frank", "new") + "\n")
    os.replace(tmp, f)  # as editors and htpasswd do
    # looked at again at most a second after the last look: wait for it
    harness.wait_for(lambda: harness.get(port, headers=basic("frank", "new")).status == 200,
                     timeout=10, what="the new password accepted")
    assert harness.get(port, headers=basic("frank", "old")).status == 401


def test_verified_bcrypt_credentials_are_cached_not_rehashed(rampart, port, backend, tmp_path):
    # a cost-12 bcrypt takes a quarter of a second or so per check; 20 requests in
    # under 10 checks' time show that the worker remembered the verified credentials
    f = tmp_path / "htpasswd"
    f.write_text("gina:" + htpasswd(["-B", "-C", "12"], "gina", "pw") + "\n")
    serve(rampart, port, backend, f'auth_basic "x"; auth_basic_user_file {f};')
    t0 = time.monotonic()
    assert harness.get(port, headers=basic("gina", "pw")).status == 200
    one = time.monotonic() - t0
    t0 = time.monotonic()
    for _ in range(20):
        assert harness.get(port, headers=basic("gina", "pw")).status == 200
    twenty = time.monotonic() - t0
    assert twenty < one * 10, (one, twenty)
    # a wrong password is still checked, never taken from the cache
    assert harness.get(port, headers=basic("gina", "pX")).status == 401


# ---- compared with nginx ----

CASES = [
    ("no credentials", {}),
    ("right password", basic("hal", "right")),
    ("wrong password", basic("hal", "wrong")),
    ("unknown user", basic("nobody", "right")),
    ("not base64", {"Authorization": "Basic !!!"}),
    ("no colon", {"Authorization": "Basic " + base64.b64encode(b"hal").decode()}),
    ("bearer", {"Authorization": "Bearer abc"}),
    ("lowercase scheme", {"Authorization": "basic " + base64.b64encode(b"hal:right").decode()}),
]


def answers(port, paths):
    out = []
    for path in paths:
        for name, headers in CASES:
            r = harness.get(port, path, headers=headers)
            out.append((path, name, r.status, r.headers.get("WWW-Authenticate")))
    return out


def test_answers_match_nginx(rampart, port, backend, tmp_path):
    reference_nginx.require()
    f = tmp_path / "htpasswd"
    f.write_text("hal:" + openssl_passwd("-apr1", "right") + "\n")
    nport = harness.free_port()

    def http(p):
        return f"""
        server {{
            listen 127.0.0.1:{p};
            location / {{ auth_basic "Members"; auth_basic_user_file {f};
                         proxy_pass http://{backend.addr}; }}
            location /missing/ {{ auth_basic "M"; auth_basic_user_file {tmp_path}/nope;
                                 proxy_pass http://{backend.addr}; }}
            location /off/ {{ auth_basic "M"; auth_basic_user_file {f};
                             location /off/in/ {{ auth_basic off; proxy_pass http://{backend.addr}; }}
                             proxy_pass http://{backend.addr}; }}
        }}
        """
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(http(nport))
    nginx.start()
    try:
        rampart.configure(http(port))
        rampart.start()
        paths = ["/", "/missing/", "/off/", "/off/in/"]
        assert answers(port, paths) == answers(nport, paths)
    finally:
        nginx.stop()


def test_bad_values_are_refused_with_file_and_line(conf_dir):
    reference_nginx.assert_rampart_refuses(
        conf_dir, 'server { listen 127.0.0.1:1; location / {\nauth_basic "a\\"b"; } }', 4,
        '"auth_basic": invalid realm "a"b": a quote or a line break')
    reference_nginx.assert_rampart_refuses(
        conf_dir, 'server { listen 127.0.0.1:1;\nauth_basic_user_file ""; }', 4,
        '"auth_basic_user_file": empty file name')
