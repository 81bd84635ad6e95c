"""Client certificates (mutual TLS), as nginx has them: ssl_verify_client on |
optional | off, ssl_client_certificate, ssl_verify_depth, and the variables
$ssl_client_verify, $ssl_client_s_dn and $ssl_client_i_dn.

As in nginx, `ssl_verify_client on` does not fail the handshake: a client that
sends no certificate, or one that does not verify, completes it, and its request
gets a 400 ("No required SSL certificate was sent", "The SSL certificate error")
after which the connection is closed; the error log says why at the info level.
With `optional` a client without a certificate is served ($ssl_client_verify
NONE); a certificate that does not verify gets the same 400 as with `on` -- that
is what nginx does (checked against nginx 1.22: only `optional_no_ca` lets a
failed certificate through) -- and its FAILED:reason shows in the access log.

The client certificates come from the session-wide `certs` fixture (certs.py):
one signed by the test CA (CN=client.test, O=Example), a self-signed one, and
chains through one and two intermediate CAs (the client sends the
intermediates; only the root is in ssl_client_certificate). OpenSSL's depth,
which ssl_verify_depth sets as in nginx, counts the CAs between the client's
certificate and the root: one intermediate needs 1 (the default), two need 2.
"""

import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from harness import wait_for
from test_tls import Conn, check, context, line_of, tls_request

CLIENT_VARS = '"$ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn"'

TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
TLS_IDS = ["TLSv1.2", "TLSv1.3"]

NO_CERT_400 = "No required SSL certificate was sent"
BAD_CERT_400 = "The SSL certificate error"


# -- configuration and clients ------------------------------------------------------


def mtls_server(certs, port, verify=None, ca=True, depth=None, extra="", body=CLIENT_VARS):
    """One TLS server for a.test on port answering the client variables; verify is
    the ssl_verify_client value (None: no directive), ca whether ssl_client_certificate
    names the test CA, depth the ssl_verify_depth (None: no directive)."""
    lines = certs.directives("a.test")
    if verify is not None:
        lines += f"ssl_verify_client {verify};\n"
    if ca:
        lines += f"ssl_client_certificate {certs.ca};\n"
    if depth is not None:
        lines += f"ssl_verify_depth {depth};\n"
    return (f"server {{\n"
            f"    listen 127.0.0.1:{port} ssl;\n"
            f"    server_name a.test;\n"
            f"    {lines}"
            f"    {extra}\n"
            f"    location / {{ return 200 {body}; }}\n"
            f"}}\n")


ACCESS_LOG = ("log_format mtls escape=none '$status $ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn';\n"
              "access_log logs/mtls.log mtls;\n")


def start(rampart, certs, port, verify=None, **kw):
    """Starts rampart with mtls_server(...), its access log in logs/mtls.log giving
    "$status $ssl_client_verify|$ssl_client_s_dn|$ssl_client_i_dn"."""
    rampart.configure(ACCESS_LOG + mtls_server(certs, port, verify, **kw))
    return rampart.start()


def logged(rampart, n):
    """The first n lines of the access log of start(), once they are there."""
    path = rampart.prefix / "logs" / "mtls.log"

    def lines():
        try:
            got = path.read_text().splitlines()
        except FileNotFoundError:
            return None
        return got[:n] if len(got) >= n else None
    return wait_for(lines, what=f"{n} line(s) in {path}")


def client_context(certs, which=None, maximum=None):
    """A context that trusts the test CA and presents the client certificate
    `which` ("trusted", "untrusted", "chained", "deep"; None: none)."""
    ctx = context(certs, maximum=maximum)
    if which is not None:
        cert, key = certs.client(which)
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def ask(port, certs, which=None, path="/", maximum=None):
    """One request on a fresh connection (Connection: close) with that client
    certificate; returns the Reply."""
    return tls_request(port, certs, path=path, ctx=client_context(certs, which, maximum))


def variables(reply):
    """($ssl_client_verify, $ssl_client_s_dn, $ssl_client_i_dn) from a 200 reply."""
    assert reply.status == 200, reply
    verify, s_dn, i_dn = reply.text.split("|")
    return verify, s_dn, i_dn


def refused_with_400(port, certs, which=None, maximum=None, timeout=5.0, ctx=None):
    """Completes the handshake (which must succeed), sends a keep-alive request and
    reads until the server closes the connection; returns what came back. A
    client-side timeout fails: the connection must be closed after the 400."""
    ctx = ctx or client_context(certs, which, maximum)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s = ctx.wrap_socket(raw, server_hostname="a.test")
        except ssl.SSLError as e:
            raise AssertionError(f"the handshake failed ({e!r}); nginx completes it and "
                                 f"answers 400") from None
        with s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            chunks = []
            while True:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, ssl.SSLEOFError):
                    break
                except ssl.SSLError as e:
                    if chunks:
                        break
                    raise AssertionError(f"no HTTP answer, a TLS error instead: {e!r}") \
                        from None
                except TimeoutError:
                    raise AssertionError(f"connection still open after {timeout}s; got "
                                         f"{b''.join(chunks)[:300]!r}") from None
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    finally:
        raw.close()


def assert_400(got, phrase):
    head, _, body = got.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 400 "), got[:300]
    assert re.search(r"(?im)^connection: *close\r?$", head), head
    assert phrase in body, body


def s_client_messages(port, certs, *args):
    """`openssl s_client -msg` with a client certificate; returns its output (the
    handshake messages by name, and the CA names the server sent)."""
    p = subprocess.run(["openssl", "s_client", "-msg", "-connect", f"127.0.0.1:{port}",
                        "-servername", "a.test", "-CAfile", str(certs.ca),
                        "-cert", str(certs.client_cert), "-key", str(certs.client_key),
                        *args],
                       input="GET / HTTP/1.0\r\nHost: a.test\r\n\r\n",
                       capture_output=True, text=True, timeout=10)
    return p.stdout + p.stderr


# -- ssl_verify_client on ----------------------------------------------------------


@pytest.mark.parametrize("maximum", TLS_VERSIONS, ids=TLS_IDS)
def test_on_with_a_valid_client_certificate_is_served_with_success(rampart, certs, port,
                                                                   maximum):
    start(rampart, certs, port, "on")
    r = ask(port, certs, "trusted", maximum=maximum)
    assert r.tls.version == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                             ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[maximum]
    assert variables(r) == ("SUCCESS", certs.CLIENT_DN, certs.CA_DN)


def test_subject_dn_is_in_rfc_2253_form(rampart, certs, port):
    start(rampart, certs, port, "on", body='"$ssl_client_s_dn"')
    assert ask(port, certs, "trusted").text == "CN=client.test,O=Example"


@pytest.mark.parametrize("maximum", TLS_VERSIONS, ids=TLS_IDS)
def test_on_without_a_client_certificate_gets_400_and_the_connection_closes(
        rampart, certs, port, maximum):
    start(rampart, certs, port, "on")
    since = rampart.log_size()
    assert_400(refused_with_400(port, certs, None, maximum=maximum), NO_CERT_400)
    rampart.wait_log(r"\[info\] .*client sent no required SSL certificate", since=since)


def test_on_with_an_untrusted_client_certificate_gets_400_and_the_connection_closes(
        rampart, certs, port):
    start(rampart, certs, port, "on")
    since = rampart.log_size()
    assert_400(refused_with_400(port, certs, "untrusted"), BAD_CERT_400)
    rampart.wait_log(r"\[info\] .*client SSL certificate verify error", since=since)


def test_on_logs_the_reason_of_a_failed_certificate_in_the_access_log(rampart, certs, port):
    start(rampart, certs, port, "on")
    assert_400(refused_with_400(port, certs, "untrusted"), BAD_CERT_400)
    assert_400(refused_with_400(port, certs, None), NO_CERT_400)
    assert logged(rampart, 2) == [
        f"400 FAILED:self-signed certificate|{certs.UNTRUSTED_DN}|{certs.UNTRUSTED_DN}",
        "400 NONE||"]


def test_on_with_an_untrusted_certificate_over_tls_1_2_gets_400(rampart, certs, port):
    start(rampart, certs, port, "on")
    assert_400(refused_with_400(port, certs, "untrusted", maximum=ssl.TLSVersion.TLSv1_2),
               BAD_CERT_400)


def test_on_refusals_do_not_disturb_the_next_good_client(rampart, certs, port):
    start(rampart, certs, port, "on")
    assert_400(refused_with_400(port, certs, None), NO_CERT_400)
    assert_400(refused_with_400(port, certs, "untrusted"), BAD_CERT_400)
    assert variables(ask(port, certs, "trusted"))[0] == "SUCCESS"


def test_on_requests_a_certificate_naming_the_ca(rampart, certs, port):
    """The server sends a CertificateRequest, and (as nginx does with the names of
    ssl_client_certificate) lists the CA so that a client can pick a certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    start(rampart, certs, port, "on")
    out = s_client_messages(port, certs)
    assert "CertificateRequest" in out, out
    assert re.search(r"Acceptable client certificate CA names\n.*rampart test CA", out), out


def test_on_with_a_valid_certificate_keeps_the_connection_alive(rampart, certs, port):
    start(rampart, certs, port, "on", body='"$ssl_client_verify $connection_requests"')
    conn = Conn(port, "a.test", client_context(certs, "trusted"))
    try:
        for n in (1, 2):
            conn.request("GET", "/", headers={"Host": "a.test"})
            r = conn.getresponse()
            assert (r.status, r.read().decode()) == (200, f"SUCCESS {n}")
    finally:
        conn.close()


def test_curl_with_cert_and_key_is_served(rampart, certs, port):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    start(rampart, certs, port, "on")
    p = subprocess.run(["curl", "-sS", "--http1.1", "--resolve", f"a.test:{port}:127.0.0.1",
                        "--cacert", str(certs.ca), "--cert", str(certs.client_cert),
                        "--key", str(certs.client_key), "-w", "\n%{http_code}",
                        f"https://a.test:{port}/"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"SUCCESS|{certs.CLIENT_DN}|{certs.CA_DN}\n200"


def test_curl_without_a_certificate_gets_400(rampart, certs, port):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    start(rampart, certs, port, "on")
    p = subprocess.run(["curl", "-sS", "--http1.1", "--resolve", f"a.test:{port}:127.0.0.1",
                        "--cacert", str(certs.ca), "-w", "\n%{http_code}",
                        f"https://a.test:{port}/"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr  # the handshake succeeded
    assert p.stdout.endswith("\n400"), p.stdout
    assert NO_CERT_400 in p.stdout


# -- ssl_verify_client optional ---------------------------------------------------


def test_optional_without_a_certificate_is_served_with_none(rampart, certs, port):
    start(rampart, certs, port, "optional")
    assert variables(ask(port, certs, None)) == ("NONE", "", "")


def test_optional_with_a_valid_certificate_is_served_with_success(rampart, certs, port):
    start(rampart, certs, port, "optional")
    assert variables(ask(port, certs, "trusted")) == ("SUCCESS", certs.CLIENT_DN, certs.CA_DN)


@pytest.mark.parametrize("maximum", TLS_VERSIONS, ids=TLS_IDS)
def test_optional_with_an_untrusted_certificate_gets_400_as_in_nginx(rampart, certs, port,
                                                                    maximum):
    """nginx's `optional` verifies a certificate that is sent: one that fails gets
    "400 The SSL certificate error" as with `on` (nginx's `optional_no_ca` is the
    value that would serve it). The brief had 200 with FAILED:...; see the module
    docstring."""
    start(rampart, certs, port, "optional")
    assert_400(refused_with_400(port, certs, "untrusted", maximum=maximum), BAD_CERT_400)


def test_optional_with_an_untrusted_certificate_logs_failed_and_its_names(rampart, certs,
                                                                          port):
    """Whether or not the request is served, $ssl_client_verify is FAILED:reason (the
    OpenSSL text, as nginx gives it), and the names of the certificate that was
    received are known even though it failed."""
    start(rampart, certs, port, "optional")
    refused_with_400(port, certs, "untrusted")
    status, _, rest = logged(rampart, 1)[0].partition(" ")
    assert status == "400"
    assert rest == (f"FAILED:self-signed certificate|{certs.UNTRUSTED_DN}|"
                    f"{certs.UNTRUSTED_DN}")


def test_optional_without_a_certificate_logs_none(rampart, certs, port):
    start(rampart, certs, port, "optional")
    assert variables(ask(port, certs, None)) == ("NONE", "", "")
    assert logged(rampart, 1) == ["200 NONE||"]


def test_optional_requests_a_certificate(rampart, certs, port):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    start(rampart, certs, port, "optional")
    assert "CertificateRequest" in s_client_messages(port, certs)


# -- ssl_verify_client off -----------------------------------------------------------


@pytest.mark.parametrize("verify", [None, "off"])
def test_off_ignores_a_client_certificate(rampart, certs, port, verify):
    """Without ssl_verify_client (off is the default) no certificate is requested,
    so a client that has one does not send it."""
    start(rampart, certs, port, verify)
    assert variables(ask(port, certs, "trusted")) == ("NONE", "", "")


@pytest.mark.parametrize("verify", [None, "off"])
def test_off_sends_no_certificate_request(rampart, certs, port, verify):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    start(rampart, certs, port, verify)
    out = s_client_messages(port, certs)
    assert "ServerHello" in out, out
    assert "CertificateRequest" not in out, out


def test_client_variables_are_empty_on_a_plain_connection(rampart, certs, port, free_port):
    plain = free_port()
    rampart.configure(mtls_server(certs, port, "optional").replace(
        "    listen 127.0.0.1", f"    listen 127.0.0.1:{plain};\n    listen 127.0.0.1", 1))
    rampart.start()
    conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "a.test"})
        r = conn.getresponse()
        assert (r.status, r.read().decode()) == (200, "||")
    finally:
        conn.close()


# -- inheritance and servers --------------------------------------------------------


def test_verify_client_at_the_http_level_is_inherited(rampart, certs, port):
    rampart.configure(f"ssl_verify_client on;\nssl_client_certificate {certs.ca};\n" +
                      mtls_server(certs, port, None, ca=False))
    rampart.start()
    assert variables(ask(port, certs, "trusted"))[0] == "SUCCESS"
    assert_400(refused_with_400(port, certs, None), NO_CERT_400)


def test_a_server_may_turn_off_what_http_turned_on(rampart, certs, port):
    rampart.configure(f"ssl_verify_client on;\nssl_client_certificate {certs.ca};\n" +
                      mtls_server(certs, port, "off", ca=False))
    rampart.start()
    assert variables(ask(port, certs, None)) == ("NONE", "", "")


# -- ssl_verify_depth ------------------------------------------------------------------


def test_default_depth_accepts_one_intermediate_sent_by_the_client(rampart, certs, port):
    start(rampart, certs, port, "on")
    assert variables(ask(port, certs, "chained")) == (
        "SUCCESS", certs.CHAINED_DN, certs.INTERMEDIATE_DN)


def test_depth_0_refuses_a_chain_with_an_intermediate(rampart, certs, port):
    start(rampart, certs, port, "on", depth=0)
    assert_400(refused_with_400(port, certs, "chained"), BAD_CERT_400)


def test_depth_0_accepts_a_certificate_signed_by_the_ca_itself(rampart, certs, port):
    start(rampart, certs, port, "on", depth=0)
    assert variables(ask(port, certs, "trusted"))[0] == "SUCCESS"


@pytest.mark.parametrize("depth", [None, 1])
def test_depth_1_refuses_two_intermediates(rampart, certs, port, depth):
    start(rampart, certs, port, "on", depth=depth)
    assert_400(refused_with_400(port, certs, "deep"), BAD_CERT_400)


def test_depth_2_accepts_two_intermediates(rampart, certs, port):
    start(rampart, certs, port, "on", depth=2)
    assert variables(ask(port, certs, "deep")) == (
        "SUCCESS", certs.DEEP_DN, certs.INTERMEDIATE2_DN)


def test_depth_exceeded_logs_failed(rampart, certs, port):
    """OpenSSL ignores the certificates above the depth, so the reason is the
    missing issuer (nginx: FAILED:unable to get local issuer certificate)."""
    start(rampart, certs, port, "optional", depth=1)
    assert_400(refused_with_400(port, certs, "deep"), BAD_CERT_400)
    verify, s_dn, _ = logged(rampart, 1)[0].split(" ", 1)[1].split("|")
    assert verify.startswith("FAILED:") and len(verify) > len("FAILED:"), verify
    assert s_dn == certs.DEEP_DN


def test_leaf_without_its_intermediate_fails(rampart, certs, port):
    """The intermediate is not in ssl_client_certificate: a client that does not send
    it cannot be verified, whatever the depth."""
    start(rampart, certs, port, "on", depth=5)
    ctx = context(certs)
    ctx.load_cert_chain(str(certs.chained_cert), str(certs.chained_key))
    assert_400(refused_with_400(port, certs, ctx=ctx), BAD_CERT_400)
    assert logged(rampart, 1)[0].startswith("400 FAILED:"), logged(rampart, 1)


# -- proxying ----------------------------------------------------------------------------


def test_proxied_request_passes_the_client_dn_upstream(rampart, certs, port, backend):
    rampart.configure(f"""
upstream be {{ server {backend.addr}; }}
server {{
    listen 127.0.0.1:{port} ssl;
    server_name a.test;
    {certs.directives("a.test")}
    ssl_verify_client on;
    ssl_client_certificate {certs.ca};
    location / {{
        proxy_pass http://be;
        proxy_set_header X-Client-DN $ssl_client_s_dn;
        proxy_set_header X-Client-Verify $ssl_client_verify;
    }}
}}""")
    rampart.start()
    r = ask(port, certs, "trusted", path="/?echo=1")
    assert r.status == 200, r
    headers = json.loads(r.body)["headers"]
    assert [v for n, v in headers if n.lower() == "x-client-dn"] == [certs.CLIENT_DN]
    assert [v for n, v in headers if n.lower() == "x-client-verify"] == ["SUCCESS"]


def test_proxied_request_without_a_certificate_never_reaches_upstream(rampart, certs, port,
                                                                      backend):
    rampart.configure(f"""
upstream be {{ server {backend.addr}; }}
server {{
    listen 127.0.0.1:{port} ssl;
    server_name a.test;
    {certs.directives("a.test")}
    ssl_verify_client on;
    ssl_client_certificate {certs.ca};
    location / {{ proxy_pass http://be; }}
}}""")
    rampart.start()
    assert_400(refused_with_400(port, certs, None), NO_CERT_400)
    assert_400(refused_with_400(port, certs, "untrusted"), BAD_CERT_400)
    assert backend.stats()["requests"] == 0


# -- configuration errors ---------------------------------------------------------------


def test_mtls_configuration_passes_the_check(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    ssl_verify_client optional;
    ssl_client_certificate {certs.ca};
    ssl_verify_depth 2;
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_verify_client on;
        ssl_client_certificate {certs.ca};
        ssl_verify_depth 1;
    }}""")
    assert (p.returncode, p.stderr) == (
        0, f"rampart: the configuration file {path} syntax is ok\n"
           f"rampart: configuration file {path} test is successful\n")


@pytest.mark.parametrize("verify", ["on", "optional"])
def test_verify_client_without_a_client_certificate_file_is_an_error(conf_dir, certs, port,
                                                                     verify):
    """nginx: no ssl_client_certificate for ssl_verify_client."""
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_verify_client {verify};
    }}""")
    assert p.returncode == 1
    assert "ssl_client_certificate" in p.stderr
    assert (f"{path}:{line_of(text, 'ssl_verify_client')}" in p.stderr or
            f"{path}:{line_of(text, 'server {')}" in p.stderr), p.stderr


def test_verify_client_off_needs_no_client_certificate_file(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_verify_client off;
        ssl_verify_depth 3;
    }}""")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("which", ["missing", "not_pem"])
def test_unreadable_client_certificate_file_is_an_error(conf_dir, certs, port, which):
    bad = getattr(certs, which)
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_verify_client on;
        ssl_client_certificate {bad};
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_client_certificate')}" in p.stderr, p.stderr
    assert str(bad) in p.stderr


@pytest.mark.parametrize("value", ["maybe", "yes", "1", "require"])
def test_invalid_verify_client_value_is_an_error(conf_dir, certs, port, value):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_client_certificate {certs.ca};
        ssl_verify_client {value};
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_verify_client')}" in p.stderr, p.stderr
    assert value in p.stderr


@pytest.mark.parametrize("value", ["abc", "-1", "2x"])
def test_invalid_verify_depth_is_an_error(conf_dir, certs, port, value):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_verify_depth {value};
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_verify_depth')}" in p.stderr, p.stderr


@pytest.mark.parametrize("directive", ["ssl_verify_client on", "ssl_client_certificate {ca}",
                                       "ssl_verify_depth 2"])
def test_client_certificate_directives_are_not_allowed_in_a_location(conf_dir, certs, port,
                                                                     directive):
    directive = directive.format(ca=certs.ca)
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        location / {{
            {directive};
        }}
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, directive.split()[0])}" in p.stderr, p.stderr
    assert f'"{directive.split()[0]}": not allowed in the location context' in p.stderr


def test_reload_with_a_missing_client_ca_keeps_the_old_configuration(rampart, certs, port):
    start(rampart, certs, port, "on")
    conf = rampart.conf_text.replace(f"ssl_client_certificate {certs.ca};",
                                     f"ssl_client_certificate {certs.missing};")
    rampart.configure(text=conf)
    assert rampart.reload().group(0) == "reload failed"
    assert f"{rampart.conf_path}:{line_of(conf, str(certs.missing))}" in rampart.log_text()
    assert variables(ask(port, certs, "trusted"))[0] == "SUCCESS"
    assert_400(refused_with_400(port, certs, None), NO_CERT_400)
