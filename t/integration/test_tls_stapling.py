"""ssl_stapling_file: an OCSP response made with the openssl command is stapled to
handshakes that ask for the certificate status, and a file that is not an OCSP
response is a configuration error naming the file and line."""
import subprocess

from test_tls import check, line_of


def ocsp_response(certs, tmp_path):
    """A 'good' OCSP response for a.test's ECDSA certificate, signed by the test CA."""
    serial = subprocess.run(["openssl", "x509", "-in", certs.cert("a.test"), "-noout",
                             "-serial"], check=True, capture_output=True, text=True)
    serial = serial.stdout.strip().split("=", 1)[1]
    subject = subprocess.run(["openssl", "x509", "-in", certs.cert("a.test"), "-noout",
                              "-subject", "-nameopt", "compat"], check=True,
                             capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    index = tmp_path / "index.txt"
    # the CA database `openssl ocsp` answers from: the certificate is valid
    index.write_text(f"V\t301231235959Z\t\t{serial}\tunknown\t{subject.strip()}\n")
    req, resp = tmp_path / "req.der", tmp_path / "resp.der"
    subprocess.run(["openssl", "ocsp", "-issuer", certs.ca, "-cert", certs.cert("a.test"),
                    "-reqout", req, "-no_nonce"], check=True, capture_output=True)
    subprocess.run(["openssl", "ocsp", "-index", index, "-rsigner", certs.ca, "-rkey",
                    certs.ca_key, "-CA", certs.ca, "-reqin", req, "-respout", resp,
                    "-ndays", "1"], check=True, capture_output=True)
    return resp


def server(certs, port, extra=""):
    return (f"server {{\n"
            f"    listen 127.0.0.1:{port} ssl;\n"
            f"    server_name a.test;\n"
            f"    {certs.directives('a.test')}"
            f"    {extra}\n"
            f"    return 200 ok;\n"
            f"}}\n")


def status_request(port):
    """`openssl s_client -status`: what it says of the stapled response."""
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "a.test", "-status"],
                       input=b"", capture_output=True, timeout=10)
    return p.stdout.decode(errors="replace")


def test_stapling_file_is_sent_to_a_client_asking_for_status(rampart, certs, port, tmp_path):
    resp = ocsp_response(certs, tmp_path)
    rampart.configure(server(certs, port, f"ssl_stapling_file {resp};"))
    rampart.start()
    out = status_request(port)
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out


def test_without_a_stapling_file_no_status_is_sent(rampart, certs, port):
    rampart.configure(server(certs, port))
    rampart.start()
    assert "OCSP response: no response sent" in status_request(port)


def test_stapling_file_that_is_not_an_ocsp_response_is_an_error(conf_dir, certs, port):
    path, text, p = check(conf_dir, server(certs, port, f"ssl_stapling_file {certs.ca};"))
    assert p.returncode != 0
    assert f"{path}:{line_of(text, 'ssl_stapling_file')}" in p.stderr
    assert "is not a DER OCSP response" in p.stderr


def test_missing_stapling_file_is_an_error(conf_dir, certs, port, tmp_path):
    missing = tmp_path / "none.der"
    path, text, p = check(conf_dir, server(certs, port, f"ssl_stapling_file {missing};"))
    assert p.returncode != 0
    assert f"{path}:{line_of(text, 'ssl_stapling_file')}" in p.stderr
