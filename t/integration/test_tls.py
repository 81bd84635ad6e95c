"""TLS termination for HTTP/1.1: `listen ... ssl`, certificates chosen by SNI and
by what the client can verify, protocols and ciphers, ALPN, the TLS variables,
handshake timeouts and refusals, configuration errors, reloads, and keep-alive,
large bodies and proxying over a TLS front.

The certificates come from the session-wide `certs` fixture (certs.py): a
private CA, and for a.test and b.test an ECDSA P-256 and an RSA 2048 leaf.
Clients connect to 127.0.0.1 and send the server name they want in SNI; the
certificate they get is identified by comparing its DER bytes with the files.
Python's ssl module is the client unless a test needs a knob only curl or
`openssl s_client` has.
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time

import pytest

from backend import pattern_sha256
from harness import run, wait_for

BODY = '"$server_name $ssl_server_name $scheme"'
TLS_VARS = '"$ssl_protocol|$ssl_cipher|$https|$scheme|$ssl_session_reused|$ssl_server_name"'


# -- configuration -------------------------------------------------------------


def tls_server(certs, port, name, *kinds, default=False, body=BODY, extra="", ssl_word=True):
    """One server block on 127.0.0.1:port for name, with its certificates (kinds of
    certs.directives; default ecdsa), answering `return 200 body`."""
    params = (" ssl" if ssl_word else "") + (" default_server" if default else "")
    cert_lines = certs.directives(name, *kinds) if name in ("a.test", "b.test") else ""
    return (f"server {{\n"
            f"    listen 127.0.0.1:{port}{params};\n"
            f"    server_name {name};\n"
            f"    {cert_lines}"
            f"    {extra}\n"
            f"    return 200 {body};\n"
            f"}}\n")


def two_names(rampart, certs, port, default="b.test", extra="", http="", body=BODY, workers=1):
    """Starts rampart with a.test and b.test on one TLS port, `default` the default server."""
    rampart.configure(http + "\n" +
                      tls_server(certs, port, "a.test", default=default == "a.test",
                                 extra=extra, body=body) +
                      tls_server(certs, port, "b.test", default=default == "b.test",
                                 extra=extra, body=body),
                      workers=workers)
    return rampart.start()


def one_name(rampart, certs, port, *kinds, name="a.test", extra="", http="", body=BODY):
    """Starts rampart with one TLS server for name on port."""
    rampart.configure(http + "\n" + tls_server(certs, port, name, *kinds, default=True,
                                               extra=extra, body=body))
    return rampart.start()


def line_of(text, needle, start=1):
    """The number of the first line at or after line `start` that contains needle."""
    for number, line in enumerate(text.splitlines(), 1):
        if number >= start and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the configuration")


def check(conf_dir, http_text):
    """Writes a configuration with this http{} body and runs `rampart -t` on it;
    returns (path, text, CompletedProcess)."""
    text = "worker_processes 1;\npid logs/rampart.pid;\n\nhttp {\n" + http_text + "\n}\n"
    path = conf_dir / "rampart.conf"
    path.write_text(text)
    return path, text, run("-t", "-p", conf_dir, "-c", "rampart.conf")


# -- clients -------------------------------------------------------------------


def context(certs, minimum=None, maximum=None, ciphers=None, alpn=None, check_hostname=False):
    """A client context that trusts only the test CA and verifies the chain. The
    host name is not checked by default, so that a test can see which certificate
    an unknown or missing SNI gets; which one it was is compared by bytes."""
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.check_hostname = check_hostname
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


class Conn(http.client.HTTPSConnection):
    """An HTTPS connection to 127.0.0.1:port that sends `sni` (None: no SNI) in its
    ClientHello, whatever the Host header says. After connect(), .tls describes the
    handshake (it outlives the socket, which http.client drops on Connection: close)."""

    def __init__(self, port, sni, ctx, session=None, timeout=5.0):
        super().__init__("127.0.0.1", port, context=ctx, timeout=timeout)
        self.sni = sni
        self.session = session
        self.tls = None

    def connect(self):
        raw = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._context.wrap_socket(raw, server_hostname=self.sni,
                                                  session=self.session)
        except BaseException:
            raw.close()
            raise
        self.tls = Handshake(self.sock)


class Handshake:
    """What a client learned from a TLS handshake."""

    def __init__(self, sock):
        self.version = sock.version()            # "TLSv1.3"
        self.cipher = sock.cipher()[0]           # OpenSSL's name, as $ssl_cipher gives it
        self.alpn = sock.selected_alpn_protocol()
        self.der = sock.getpeercert(binary_form=True)
        self.cert = sock.getpeercert()           # parsed: the chain was verified
        self.reused = sock.session_reused

    @property
    def san(self):
        return self.cert.get("subjectAltName")

    def __repr__(self):
        return f"<Handshake {self.version} {self.cipher} alpn={self.alpn} san={self.san}>"


class Reply:
    def __init__(self, r, body, tls):
        self.status = r.status
        self.headers = r.headers
        self.body = body
        self.tls = tls

    @property
    def text(self):
        return self.body.decode()

    def __repr__(self):
        return f"<Reply {self.status} {self.body[:60]!r} {self.tls}>"


def tls_request(port, certs, sni="a.test", path="/", host=None, ctx=None, method="GET",
                body=None, headers=None, session=None):
    """One request on a fresh TLS connection; Host is `host`, else the SNI name."""
    conn = Conn(port, sni, ctx or context(certs), session=session)
    try:
        conn.connect()
        hdrs = {"Host": host or sni or "localhost", "Connection": "close"}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        return Reply(r, r.read(), conn.tls)
    finally:
        conn.close()


def handshake(port, certs, sni="a.test", ctx=None):
    """A TLS handshake alone; returns the Handshake."""
    ctx = ctx or context(certs)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return Handshake(s)


def handshake_error(port, certs, sni="a.test", ctx=None):
    """Expects the handshake to fail; returns the error (never a client-side timeout:
    the server must refuse, not stall)."""
    try:
        got = handshake(port, certs, sni, ctx)
    except OSError as e:
        assert not isinstance(e, TimeoutError), f"handshake stalled instead of failing: {e!r}"
        return e
    raise AssertionError(f"the handshake succeeded: {got}")


def s_client(port, certs, sni, *args):
    """`openssl s_client` handshake; returns (CompletedProcess, DER of the served
    certificate or None)."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", sni, "-CAfile", str(certs.ca), "-verify_return_error",
                        *args],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n", p.stdout,
                  re.S)
    return p, (ssl.PEM_cert_to_DER_cert(m.group(0)) if m else None)


def raw_tls_port(port, data, timeout=5.0):
    """Sends bytes on a plain TCP connection to a TLS port and reads until the server
    closes it; returns what came back (a client-side timeout fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; "
                                     f"got {b''.join(chunks)[:200]!r}") from None
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def client_hello(certs, sni="a.test"):
    """The bytes of a real ClientHello, as Python's client would send them."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context(certs).wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[:1] == b"\x16" and len(hello) > 100, hello[:20]
    return hello


def eventually(predicate, what):
    """Polls predicate, which may raise OSError meanwhile (an old generation still
    accepting), until it is true: a successful reload reaches new connections soon,
    not at once."""
    def attempt():
        try:
            return predicate()
        except OSError:
            return False
    return wait_for(attempt, what=what)


def assert_refused(got):
    """What came back on a connection the server refused and closed: nothing, a TLS
    alert record, or an HTTP 400 (never a 200)."""
    if got.startswith(b"HTTP/"):
        assert got.startswith(b"HTTP/1.1 400 "), got[:200]
    else:
        assert got == b"" or got[:1] == b"\x15", got[:200]


def assert_serves(port, certs, sni="a.test", expect=None):
    """A good TLS request still gets its answer (from the server for sni)."""
    r = tls_request(port, certs, sni=sni)
    assert r.status == 200, r
    if expect is not None:
        assert r.text == expect
    return r


# -- SNI chooses the server and its certificate ------------------------------------


def test_curl_reaches_two_names_on_one_port_each_with_its_own_server(rampart, certs, port):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    two_names(rampart, certs, port)
    for name in ("a.test", "b.test"):
        p = subprocess.run(["curl", "-sS", "--http1.1", "--resolve", f"{name}:{port}:127.0.0.1",
                            "--cacert", str(certs.ca), "-w", "\n%{http_code} %{http_version}",
                            f"https://{name}:{port}/"],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr
        assert p.stdout == f"{name} {name} https\n200 1.1"


def test_sni_picks_the_certificate_of_the_named_server(rampart, certs, port):
    two_names(rampart, certs, port)
    for name in ("a.test", "b.test"):
        hs = handshake(port, certs, sni=name, ctx=context(certs, check_hostname=True))
        assert hs.san == (("DNS", name),)
        assert ((("commonName", name),),) == hs.cert["subject"]
        assert certs.which(hs.der) == (name, "ecdsa")


def test_sni_picks_the_server_that_answers(rampart, certs, port):
    two_names(rampart, certs, port)
    assert tls_request(port, certs, sni="a.test").text == "a.test a.test https"
    assert tls_request(port, certs, sni="b.test").text == "b.test b.test https"


def test_unknown_sni_gets_the_default_servers_certificate_and_answer(rampart, certs, port):
    two_names(rampart, certs, port, default="b.test")
    assert certs.which(handshake(port, certs, sni="c.test").der) == ("b.test", "ecdsa")
    r = tls_request(port, certs, sni="c.test", host="c.test")
    assert r.text == "b.test c.test https"


def test_default_server_is_the_first_one_without_default_server(rampart, certs, port):
    rampart.configure(tls_server(certs, port, "a.test") + tls_server(certs, port, "b.test"))
    rampart.start()
    assert certs.which(handshake(port, certs, sni="c.test").der) == ("a.test", "ecdsa")


def test_no_sni_gets_the_default_server(rampart, certs, port):
    two_names(rampart, certs, port, default="b.test")
    assert certs.which(handshake(port, certs, sni=None).der) == ("b.test", "ecdsa")
    r = tls_request(port, certs, sni=None, host="c.test")
    assert r.text == "b.test  https"  # $ssl_server_name is empty without SNI


def test_host_header_routes_the_request_after_the_handshake(rampart, certs, port):
    two_names(rampart, certs, port)
    r = tls_request(port, certs, sni="a.test", host="b.test")
    assert certs.which(r.tls.der) == ("a.test", "ecdsa")
    assert r.text == "b.test a.test https"


def test_sni_matches_server_name_case_insensitively(rampart, certs, port):
    two_names(rampart, certs, port, default="b.test")
    assert certs.which(handshake(port, certs, sni="A.Test").der) == ("a.test", "ecdsa")


def test_sni_matches_wildcard_server_names(rampart, certs, port):
    rampart.configure(
        tls_server(certs, port, "b.test", default=True) +
        tls_server(certs, port, "a.test").replace("server_name a.test;",
                                                  "server_name *.a.test;"))
    rampart.start()
    assert certs.which(handshake(port, certs, sni="www.a.test").der) == ("a.test", "ecdsa")
    assert tls_request(port, certs, sni="www.a.test").text == "*.a.test www.a.test https"


def test_certificate_from_the_http_level_is_inherited_by_servers(rampart, certs, port):
    rampart.configure(certs.directives("a.test") +
                      f'server {{ listen 127.0.0.1:{port} ssl; return 200 {BODY}; }}')
    rampart.start()
    r = tls_request(port, certs, sni="a.test")
    assert (r.text, certs.which(r.tls.der)) == (" a.test https", ("a.test", "ecdsa"))


def test_ssl_on_one_listen_makes_the_address_tls_for_every_server_on_it(
        rampart, certs, port):
    rampart.configure(tls_server(certs, port, "a.test", default=True) +
                      tls_server(certs, port, "b.test", ssl_word=False))
    rampart.start()
    r = tls_request(port, certs, sni="b.test")
    assert (r.text, certs.which(r.tls.der)) == ("b.test b.test https", ("b.test", "ecdsa"))


def test_plain_and_tls_listeners_of_one_server_each_speak_their_own(
        rampart, certs, port, free_port):
    plain = free_port()
    rampart.configure(f"""
server {{
    listen 127.0.0.1:{plain};
    listen 127.0.0.1:{port} ssl;
    server_name a.test;
    {certs.directives("a.test")}
    return 200 {TLS_VARS};
}}""")
    rampart.start()
    conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "a.test"})
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"|||http||")
    finally:
        conn.close()
    r = tls_request(port, certs, sni="a.test")
    assert r.text == f"TLSv1.3|{r.tls.cipher}|on|https|.|a.test"


# -- ECDSA or RSA, as the client can verify ---------------------------------------


def test_tls12_client_with_only_rsa_suites_gets_the_rsa_certificate(rampart, certs, port):
    one_name(rampart, certs, port, "ecdsa", "rsa")
    ctx = context(certs, maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    hs = handshake(port, certs, ctx=ctx)
    assert (hs.version, hs.cipher) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    assert certs.which(hs.der) == ("a.test", "rsa")


def test_tls12_client_with_only_ecdsa_suites_gets_the_ecdsa_certificate(rampart, certs, port):
    one_name(rampart, certs, port, "rsa", "ecdsa")  # the order of the pairs does not matter
    ctx = context(certs, maximum=ssl.TLSVersion.TLSv1_2,
                  ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    hs = handshake(port, certs, ctx=ctx)
    assert (hs.version, hs.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert certs.which(hs.der) == ("a.test", "ecdsa")


@pytest.mark.parametrize("sigalgs,kind", [("rsa_pss_rsae_sha256", "rsa"),
                                          ("ecdsa_secp256r1_sha256", "ecdsa")])
def test_tls13_client_gets_the_certificate_its_signature_algorithms_allow(
        rampart, certs, port, sigalgs, kind):
    one_name(rampart, certs, port, "ecdsa", "rsa")
    p, der = s_client(port, certs, "a.test", "-tls1_3", "-sigalgs", sigalgs)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Verify return code: 0 (ok)" in p.stdout
    assert certs.which(der) == ("a.test", kind)


def test_tls12_client_with_only_rsa_suites_fails_against_an_ecdsa_only_server(rampart, certs, port):
    one_name(rampart, certs, port, "ecdsa")
    ctx = context(certs, maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    assert isinstance(handshake_error(port, certs, ctx=ctx), ssl.SSLError)
    assert_serves(port, certs)


# -- protocols and ciphers --------------------------------------------------------


def test_default_protocols_accept_tls12_and_tls13(rampart, certs, port):
    one_name(rampart, certs, port)
    for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                          (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
        ctx = context(certs, minimum=version, maximum=version)
        assert handshake(port, certs, ctx=ctx).version == name


def test_default_protocols_refuse_tls11(rampart, certs, port):
    one_name(rampart, certs, port)
    # s_client, because Python deprecates offering TLS 1.1; SECLEVEL=0 lets it offer it.
    p, der = s_client(port, certs, "a.test", "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert (p.returncode, der) == (1, None), p.stdout
    assert_serves(port, certs)


def test_tls13_only_refuses_a_tls12_client(rampart, certs, port):
    one_name(rampart, certs, port, extra="ssl_protocols TLSv1.3;")
    err = handshake_error(port, certs, ctx=context(certs, maximum=ssl.TLSVersion.TLSv1_2))
    assert isinstance(err, ssl.SSLError)
    assert_serves(port, certs)


def test_tls13_only_serves_a_tls13_client(rampart, certs, port):
    one_name(rampart, certs, port, extra="ssl_protocols TLSv1.3;", body=TLS_VARS)
    r = tls_request(port, certs, ctx=context(certs, minimum=ssl.TLSVersion.TLSv1_3))
    assert r.tls.version == "TLSv1.3"
    assert r.text.startswith("TLSv1.3|")


def test_tls12_only_refuses_a_tls13_client_and_serves_tls12(rampart, certs, port):
    one_name(rampart, certs, port, extra="ssl_protocols TLSv1.2;", body=TLS_VARS)
    err = handshake_error(port, certs, ctx=context(certs, minimum=ssl.TLSVersion.TLSv1_3))
    assert isinstance(err, ssl.SSLError)
    r = tls_request(port, certs)
    assert r.tls.version == "TLSv1.2"
    assert r.text == f"TLSv1.2|{r.tls.cipher}|on|https|.|a.test"


def test_ssl_ciphers_limits_the_tls12_suites(rampart, certs, port):
    one_name(rampart, certs, port,
             extra="ssl_protocols TLSv1.2; ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256;")
    assert handshake(port, certs).cipher == "ECDHE-ECDSA-AES128-GCM-SHA256"
    ctx = context(certs, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305")
    assert isinstance(handshake_error(port, certs, ctx=ctx), ssl.SSLError)


SERVER_ORDER = "ssl_protocols TLSv1.2; ssl_ciphers " \
               "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384;"
CLIENT_ORDER = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"


def test_client_cipher_order_wins_by_default(rampart, certs, port):
    one_name(rampart, certs, port, extra=SERVER_ORDER)
    assert handshake(port, certs, ctx=context(certs, ciphers=CLIENT_ORDER)).cipher == \
        "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_ssl_prefer_server_ciphers_makes_the_server_order_win(rampart, certs, port):
    one_name(rampart, certs, port, extra=SERVER_ORDER + " ssl_prefer_server_ciphers on;")
    assert handshake(port, certs, ctx=context(certs, ciphers=CLIENT_ORDER)).cipher == \
        "ECDHE-ECDSA-AES128-GCM-SHA256"


# -- ALPN ----------------------------------------------------------------------------


def test_alpn_http11_is_selected(rampart, certs, port):
    one_name(rampart, certs, port)
    r = tls_request(port, certs, ctx=context(certs, alpn=["http/1.1"]))
    assert r.tls.alpn == "http/1.1"
    assert r.status == 200


def test_alpn_unknown_protocol_offered_first_still_selects_http11(rampart, certs, port):
    one_name(rampart, certs, port)
    assert handshake(port, certs, ctx=context(certs, alpn=["x-unknown/9", "http/1.1"])).alpn \
        == "http/1.1"


def test_client_without_alpn_is_served_over_http11(rampart, certs, port):
    one_name(rampart, certs, port)
    r = tls_request(port, certs)
    assert (r.tls.alpn, r.status) == (None, 200)


# -- variables ---------------------------------------------------------------------


def test_tls_variables_on_a_tls13_connection(rampart, certs, port):
    one_name(rampart, certs, port, body=TLS_VARS)
    r = tls_request(port, certs, ctx=context(certs, minimum=ssl.TLSVersion.TLSv1_3))
    assert r.tls.cipher.startswith("TLS_")
    assert r.text == f"TLSv1.3|{r.tls.cipher}|on|https|.|a.test"


def test_ssl_cipher_names_the_negotiated_tls12_suite(rampart, certs, port):
    one_name(rampart, certs, port, body='"$ssl_protocol $ssl_cipher"')
    ctx = context(certs, maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    assert tls_request(port, certs, ctx=ctx).text == "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384"


def test_ssl_server_name_is_the_sni_name_as_sent(rampart, certs, port):
    two_names(rampart, certs, port, default="b.test", body='"$ssl_server_name"')
    assert tls_request(port, certs, sni="unknown.test").text == "unknown.test"
    assert tls_request(port, certs, sni=None).text == ""


def test_ssl_session_reused_is_r_on_a_resumed_session(rampart, certs, port):
    """Assumes session resumption works out of the box, as in nginx (OpenSSL's session
    tickets are on unless turned off); one worker, so the same keys serve both."""
    one_name(rampart, certs, port, body='"$ssl_session_reused"')
    ctx = context(certs)
    conn = Conn(port, "a.test", ctx)
    try:
        conn.request("GET", "/", headers={"Host": "a.test"})
        r = conn.getresponse()
        assert r.read() == b"."
        session = conn.sock.session  # TLS 1.3 tickets arrive after the handshake
    finally:
        conn.close()
    assert session is not None and session.has_ticket
    r = tls_request(port, certs, ctx=ctx, session=session)
    assert r.tls.reused
    assert r.text == "r"


# -- handshakes that never complete, and bytes that are not TLS ---------------------


def test_ssl_handshake_timeout_closes_a_silent_connection(rampart, certs, port):
    one_name(rampart, certs, port, extra="ssl_handshake_timeout 1s;")
    started = time.monotonic()
    assert raw_tls_port(port, b"", timeout=5) == b""
    waited = time.monotonic() - started
    assert 0.8 < waited < 2.5
    assert_serves(port, certs)


def test_ssl_handshake_timeout_closes_a_connection_stuck_mid_client_hello(
        rampart, certs, port):
    one_name(rampart, certs, port, extra="ssl_handshake_timeout 1s;")
    hello = client_hello(certs)
    started = time.monotonic()
    got = raw_tls_port(port, hello[:len(hello) // 2], timeout=5)
    waited = time.monotonic() - started
    assert got == b"" or got[:1] == b"\x15"  # nothing, or an alert
    assert 0.8 < waited < 2.5


def test_plain_http_request_to_a_tls_port_gets_400_or_a_close_and_no_200(rampart, certs, port):
    """nginx answers "400 The plain HTTP request was sent to HTTPS port"; closing the
    connection (with or without a TLS alert) is accepted too."""
    one_name(rampart, certs, port)
    assert_refused(raw_tls_port(port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert_serves(port, certs)


def test_garbage_instead_of_a_client_hello_closes_the_connection(rampart, certs, port):
    one_name(rampart, certs, port)
    # settled roles: a helper just forked holds the listeners (so looks like a worker)
    # until it closes them
    workers, _ = rampart.wait_processes(1)
    # nginx takes a first byte that starts no TLS record for plain HTTP, and answers 400.
    assert_refused(raw_tls_port(port, bytes(range(256)) * 4))
    assert rampart.roles()[0] == workers
    assert_serves(port, certs)


def test_malformed_client_hello_in_a_valid_record_closes_the_connection(rampart, certs, port):
    one_name(rampart, certs, port)
    workers, _ = rampart.wait_processes(1)
    body = b"\x03\x03" + b"\xff" * 40  # version, then nonsense where random and the rest go
    hello = b"\x01" + len(body).to_bytes(3, "big") + body
    got = raw_tls_port(port, b"\x16\x03\x01" + len(hello).to_bytes(2, "big") + hello)
    assert got == b"" or got[:1] == b"\x15", got[:200]
    assert rampart.roles()[0] == workers
    assert_serves(port, certs)


def test_clients_leaving_mid_handshake_leave_the_worker_serving(rampart, certs, port):
    one_name(rampart, certs, port)
    workers, _ = rampart.wait_processes(1)
    hello = client_hello(certs)
    for cut, reset in ((len(hello) // 2, False), (len(hello), False), (len(hello), True)):
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(hello[:cut])
            if reset:  # close with an RST instead of a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    assert rampart.roles()[0] == workers
    assert_serves(port, certs)


# -- ssl_reject_handshake ----------------------------------------------------------


REJECTING_DEFAULT = """
server {{
    listen 127.0.0.1:{port} ssl default_server;
    ssl_reject_handshake on;
}}
"""


def test_reject_handshake_on_the_default_server_refuses_unknown_sni(rampart, certs, port):
    rampart.configure(REJECTING_DEFAULT.format(port=port) + tls_server(certs, port, "a.test"))
    rampart.start()
    err = handshake_error(port, certs, sni="unknown.test")
    assert isinstance(err, ssl.SSLError)
    assert "UNRECOGNIZED_NAME" in str(err)


def test_reject_handshake_on_the_default_server_refuses_a_missing_sni(rampart, certs, port):
    rampart.configure(REJECTING_DEFAULT.format(port=port) + tls_server(certs, port, "a.test"))
    rampart.start()
    assert isinstance(handshake_error(port, certs, sni=None), ssl.SSLError)


def test_reject_handshake_on_the_default_server_lets_known_sni_through(rampart, certs, port):
    rampart.configure(REJECTING_DEFAULT.format(port=port) + tls_server(certs, port, "a.test"))
    rampart.start()
    r = tls_request(port, certs, sni="a.test")
    assert (r.text, certs.which(r.tls.der)) == ("a.test a.test https", ("a.test", "ecdsa"))


def test_reject_handshake_on_a_named_server_refuses_its_name(rampart, certs, port):
    rampart.configure(tls_server(certs, port, "a.test", default=True) +
                      tls_server(certs, port, "b.test", extra="ssl_reject_handshake on;"))
    rampart.start()
    err = handshake_error(port, certs, sni="b.test")
    assert "UNRECOGNIZED_NAME" in str(err)
    assert_serves(port, certs, sni="a.test", expect="a.test a.test https")


# -- configuration errors ------------------------------------------------------------


def test_tls_configuration_passes_the_check(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers HIGH:!aNULL:!MD5;
    ssl_prefer_server_ciphers off;
    ssl_handshake_timeout 60s;
    server {{
        listen 127.0.0.1:{port} ssl default_server;
        server_name a.test;
        {certs.directives("a.test", "ecdsa", "rsa")}
        ssl_reject_handshake off;
        return 200 "ok";
    }}""")
    assert (p.returncode, p.stderr) == (
        0, f"rampart: the configuration file {path} syntax is ok\n"
           f"rampart: configuration file {path} test is successful\n")


def test_old_protocol_names_are_accepted_words(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    }}""")
    assert p.returncode == 0, p.stderr


def test_unknown_protocol_name_is_an_error_with_file_and_line(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        {certs.directives("a.test")}
        ssl_protocols TLSv1.2 TLSv1.4;
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_protocols')}" in p.stderr
    assert "TLSv1.4" in p.stderr


def test_ssl_listen_without_a_certificate_is_an_error(conf_dir, port):
    """nginx: no "ssl_certificate" is defined for the "listen ... ssl" directive in
    FILE:LINE, where LINE is the server block's; the listen's line is accepted too."""
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        return 200 "x";
    }}""")
    assert p.returncode == 1
    assert '"ssl_certificate"' in p.stderr
    assert (f"{path}:{line_of(text, 'server {')}" in p.stderr or
            f"{path}:{line_of(text, 'listen')}" in p.stderr), p.stderr


def test_second_server_on_an_ssl_address_without_a_certificate_is_an_error(
        conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name a.test;
        {certs.directives("a.test")}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name b.test;
    }}""")
    second = line_of(text, "server {", start=line_of(text, "server_name a.test"))
    assert p.returncode == 1
    assert '"ssl_certificate"' in p.stderr
    assert (f"{path}:{second}" in p.stderr or
            f"{path}:{line_of(text, 'listen', start=second)}" in p.stderr), p.stderr


def test_certificate_file_that_does_not_exist_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.missing};
        ssl_certificate_key {certs.key("a.test")};
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_certificate ')}" in p.stderr
    assert str(certs.missing) in p.stderr


def test_certificate_file_that_is_not_pem_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.not_pem};
        ssl_certificate_key {certs.key("a.test")};
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_certificate ')}" in p.stderr
    assert str(certs.not_pem) in p.stderr


def test_key_that_does_not_match_the_certificate_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.cert("a.test")};
        ssl_certificate_key {certs.mismatched_key};
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'ssl_certificate_key')}" in p.stderr or
            f"{path}:{line_of(text, 'ssl_certificate ')}" in p.stderr), p.stderr


def test_key_of_the_other_type_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.cert("a.test", "rsa")};
        ssl_certificate_key {certs.key("a.test", "ecdsa")};
    }}""")
    assert p.returncode == 1
    assert (f"{path}:{line_of(text, 'ssl_certificate_key')}" in p.stderr or
            f"{path}:{line_of(text, 'ssl_certificate ')}" in p.stderr), p.stderr


def test_key_file_that_does_not_exist_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.cert("a.test")};
        ssl_certificate_key {certs.missing};
    }}""")
    assert p.returncode == 1
    assert f"{path}:{line_of(text, 'ssl_certificate_key')}" in p.stderr
    assert str(certs.missing) in p.stderr


def test_certificate_without_a_key_is_an_error(conf_dir, certs, port):
    """nginx: no "ssl_certificate_key" is defined for certificate "FILE"."""
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.cert("a.test")};
    }}""")
    assert p.returncode == 1
    assert '"ssl_certificate_key"' in p.stderr
    assert str(certs.cert("a.test")) in p.stderr
    assert re.search(re.escape(str(path)) + r":\d+", p.stderr), p.stderr


def test_second_certificate_without_its_key_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {certs.cert("a.test")};
        ssl_certificate_key {certs.key("a.test")};
        ssl_certificate {certs.cert("a.test", "rsa")};
    }}""")
    assert p.returncode == 1
    assert '"ssl_certificate_key"' in p.stderr
    assert str(certs.cert("a.test", "rsa")) in p.stderr


def test_reload_with_a_missing_certificate_keeps_the_old_one_serving(rampart, certs, port):
    one_name(rampart, certs, port)
    conf = rampart.conf_text.replace(str(certs.cert("a.test")), str(certs.missing))
    rampart.configure(text=conf)
    assert rampart.reload().group(0) == "reload failed"
    log = rampart.log_text()
    assert f"{rampart.conf_path}:{line_of(conf, str(certs.missing))}" in log
    assert "reload failed: the previous configuration keeps serving" in log
    r = tls_request(port, certs)
    assert (r.text, certs.which(r.tls.der)) == ("a.test a.test https", ("a.test", "ecdsa"))


def test_reload_with_a_mismatched_key_keeps_the_old_one_serving(rampart, certs, port):
    one_name(rampart, certs, port)
    rampart.configure(text=rampart.conf_text.replace(str(certs.key("a.test")),
                                                     str(certs.mismatched_key)))
    assert rampart.reload().group(0) == "reload failed"
    assert certs.which(handshake(port, certs).der) == ("a.test", "ecdsa")


def test_reload_with_a_new_certificate_serves_it_to_new_connections(rampart, certs, port):
    one_name(rampart, certs, port, "ecdsa")
    assert certs.which(handshake(port, certs).der) == ("a.test", "ecdsa")
    rampart.configure(text=rampart.conf_text
                      .replace(str(certs.cert("a.test")), str(certs.cert("a.test", "rsa")))
                      .replace(str(certs.key("a.test")), str(certs.key("a.test", "rsa"))))
    assert rampart.reload().group(0) != "reload failed"
    eventually(lambda: certs.which(handshake(port, certs).der) == ("a.test", "rsa"),
               "the new certificate")


def test_reload_turns_a_plain_address_into_tls(rampart, certs, port):
    rampart.configure(f'server {{ listen 127.0.0.1:{port}; return 200 "$scheme"; }}')
    rampart.start()
    rampart.configure(f'server {{ listen 127.0.0.1:{port} ssl; {certs.directives("a.test")} '
                      f'return 200 "$scheme"; }}')
    assert rampart.reload().group(0) != "reload failed"
    eventually(lambda: tls_request(port, certs).text == "https", "a TLS answer")


# -- keep-alive, large bodies, proxying ----------------------------------------------


def test_two_requests_share_one_tls_connection(rampart, certs, port):
    one_name(rampart, certs, port, body='"$connection $connection_requests $uri"')
    conn = Conn(port, "a.test", context(certs))
    try:
        conn.connect()
        sock = conn.sock
        answers = []
        for path in ("/one", "/two"):
            conn.request("GET", path, headers={"Host": "a.test"})
            r = conn.getresponse()
            answers.append(r.read().decode())
            assert r.getheader("Connection") != "close"
        assert conn.sock is sock  # http.client did not have to reconnect
    finally:
        conn.close()
    first, second = (a.split() for a in answers)
    assert (first[1:], second[1:]) == (["1", "/one"], ["2", "/two"])
    assert first[0] == second[0]


def proxy_front(rampart, certs, port, backend, location=""):
    rampart.configure(f"""
upstream be {{ server {backend.addr}; keepalive 4; }}
server {{
    listen 127.0.0.1:{port} ssl;
    server_name a.test;
    {certs.directives("a.test")}
    client_max_body_size 10m;
    location / {{ proxy_pass http://be; {location} }}
}}""")
    return rampart.start()


FIVE_MB = 5 * 1024 * 1024


def test_five_megabyte_response_arrives_intact_over_tls(rampart, certs, port, backend):
    proxy_front(rampart, certs, port, backend)
    r = tls_request(port, certs, path=f"/big?size={FIVE_MB}")
    assert r.status == 200
    assert r.headers["Content-Length"] == str(FIVE_MB)
    assert (len(r.body), hashlib.sha256(r.body).hexdigest()) == (FIVE_MB,
                                                                 pattern_sha256(FIVE_MB))


def test_five_megabyte_chunked_response_arrives_intact_over_tls(rampart, certs, port, backend):
    proxy_front(rampart, certs, port, backend)
    r = tls_request(port, certs, path=f"/big?size={FIVE_MB}&chunked=1")
    assert r.status == 200
    assert (len(r.body), hashlib.sha256(r.body).hexdigest()) == (FIVE_MB,
                                                                 pattern_sha256(FIVE_MB))


def test_five_megabyte_upload_arrives_intact_over_tls(rampart, certs, port, backend):
    proxy_front(rampart, certs, port, backend)
    body = os.urandom(FIVE_MB)
    r = tls_request(port, certs, path="/upload?echo=1", method="POST", body=body)
    assert r.status == 200, r
    e = json.loads(r.body)
    assert (e["body_length"], e["body_sha256"]) == (FIVE_MB, hashlib.sha256(body).hexdigest())


def test_x_forwarded_proto_https_reaches_the_backend(rampart, certs, port, backend):
    proxy_front(rampart, certs, port, backend)
    r = tls_request(port, certs, path="/?echo=1", headers={"X-Forwarded-Proto": "http"})
    e = json.loads(r.body)
    assert [v for n, v in e["headers"] if n.lower() == "x-forwarded-proto"] == ["https"]


def test_proxied_requests_share_one_tls_client_connection(rampart, certs, port, backend):
    proxy_front(rampart, certs, port, backend)
    conn = Conn(port, "a.test", context(certs))
    try:
        for i in range(3):
            conn.request("GET", f"/?size={1000 + i}", headers={"Host": "a.test"})
            r = conn.getresponse()
            assert (r.status, len(r.read())) == (200, 1000 + i)
    finally:
        conn.close()
