"""Test certificates for rampart's TLS tests, made with the `openssl` command.

make_certs(folder) writes, in about a second:

  ca.crt, ca.key              a private CA (ECDSA P-256), the only trust anchor
  NAME.ecdsa.crt/.key         for NAME in a.test, b.test: a leaf with an ECDSA
  NAME.rsa.crt/.key           P-256 key and one with an RSA 2048 key, both signed
                              by the CA, subject CN=NAME, SAN DNS:NAME
  mismatched.key              an ECDSA P-256 key that belongs to no certificate
  not-a-certificate.pem       a file of text that is not PEM at all

The certificates carry the extensions a strict verifier wants (basic
constraints, key usage, serverAuth, key identifiers), so Python's default
context, curl and `openssl s_client -verify_return_error` all accept them when
given ca.crt. They are valid from now for 30 days.
"""

import ssl
import subprocess
from pathlib import Path

NAMES = ("a.test", "b.test")
KINDS = ("ecdsa", "rsa")

# A configuration file of our own, so neither the system's openssl.cnf (whose
# x509_extensions would make every certificate a CA) nor OPENSSL_CONF applies.
_MIN_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
"""

_NEWKEY = {
    "ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "rsa": ["-newkey", "rsa:2048"],
}

_KEY_USAGE = {
    "ecdsa": "keyUsage=critical,digitalSignature",
    "rsa": "keyUsage=critical,digitalSignature,keyEncipherment",
}


class Certs:
    """Paths of the generated files, and helpers for configurations and checks."""

    def __init__(self, folder):
        self.dir = Path(folder)
        self.ca = self.dir / "ca.crt"
        self.ca_key = self.dir / "ca.key"
        self.mismatched_key = self.dir / "mismatched.key"
        self.not_pem = self.dir / "not-a-certificate.pem"
        self.missing = self.dir / "no-such-file.pem"  # never created

    def cert(self, name, kind="ecdsa"):
        assert name in NAMES and kind in KINDS, (name, kind)
        return self.dir / f"{name}.{kind}.crt"

    def key(self, name, kind="ecdsa"):
        assert name in NAMES and kind in KINDS, (name, kind)
        return self.dir / f"{name}.{kind}.key"

    def der(self, name, kind="ecdsa"):
        """The DER bytes of a leaf certificate, to compare with getpeercert(True)."""
        return ssl.PEM_cert_to_DER_cert(self.cert(name, kind).read_text())

    def which(self, der):
        """(name, kind) of the leaf whose DER bytes these are, or None."""
        for name in NAMES:
            for kind in KINDS:
                if self.der(name, kind) == der:
                    return name, kind
        return None

    def directives(self, name, *kinds):
        """ssl_certificate / ssl_certificate_key lines for name (kinds default: ecdsa)."""
        return "".join(f"ssl_certificate {self.cert(name, k)};\n"
                       f"ssl_certificate_key {self.key(name, k)};\n"
                       for k in (kinds or ("ecdsa",)))


def _openssl(args, cwd):
    return subprocess.Popen(["openssl", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait(procs):
    for args, p in procs:
        out, err = p.communicate(timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed ({p.returncode}):\n"
                               f"{err.decode(errors='replace')}")


def make_certs(folder):
    """Generates the CA, the leaves and the odd files into folder; returns a Certs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    certs = Certs(folder)
    cnf = folder / "openssl-min.cnf"
    cnf.write_text(_MIN_CNF)
    common = ["-config", str(cnf), "-nodes", "-days", "30"]

    ca_args = ["req", *common, "-x509", *_NEWKEY["ecdsa"],
               "-keyout", str(certs.ca_key), "-out", str(certs.ca),
               "-subj", "/CN=rampart test CA",
               "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign",
               "-addext", "subjectKeyIdentifier=hash"]
    _wait([(ca_args, _openssl(ca_args, folder))])

    # The leaves and the spare key do not depend on each other: make them at once.
    jobs = []
    for name in NAMES:
        for kind in KINDS:
            args = ["req", *common, "-x509", "-CA", str(certs.ca), "-CAkey", str(certs.ca_key),
                    *_NEWKEY[kind],
                    "-keyout", str(certs.key(name, kind)), "-out", str(certs.cert(name, kind)),
                    "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", _KEY_USAGE[kind],
                    "-addext", "extendedKeyUsage=serverAuth",
                    "-addext", "authorityKeyIdentifier=keyid",
                    "-addext", "subjectKeyIdentifier=hash"]
            jobs.append((args, _openssl(args, folder)))
    spare = ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", str(certs.mismatched_key)]
    jobs.append((spare, _openssl(spare, folder)))
    _wait(jobs)

    certs.not_pem.write_text("this is not a certificate\n")
    return certs


if __name__ == "__main__":
    import sys
    import tempfile
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="certs-"))
    c = make_certs(out)
    print(c.dir)
