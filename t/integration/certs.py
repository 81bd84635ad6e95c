"""Test certificates for rampart's TLS tests, made with the `openssl` command.

make_certs(folder) writes, in about a second:

  ca.crt, ca.key              a private CA (ECDSA P-256), the only trust anchor
  NAME.ecdsa.crt/.key         for NAME in a.test, b.test: a leaf with an ECDSA
  NAME.rsa.crt/.key           P-256 key and one with an RSA 2048 key, both signed
                              by the CA, subject CN=NAME, SAN DNS:NAME
  mismatched.key              an ECDSA P-256 key that belongs to no certificate
  not-a-certificate.pem       a file of text that is not PEM at all

and for client certificates (mutual TLS), all ECDSA P-256 with clientAuth:

  client.crt/.key             signed by the CA: subject CN=client.test, O=Example
                              ("CN=client.test,O=Example" in RFC 2253 form)
  untrusted-client.crt/.key   self-signed, subject CN=untrusted.test, O=Example:
                              no CA vouches for it
  intermediate-ca.crt/.key    a CA (CN=rampart test intermediate CA) signed by ca.crt
  chained-client.crt/.key     signed by the intermediate: subject CN=chained.test,
                              O=Example; it verifies against ca.crt only with the
                              intermediate, so the client must send
  chained-client.chain.pem    the leaf followed by the intermediate, for
                              load_cert_chain / curl --cert
  intermediate2-ca.crt/.key   a CA (CN=rampart test intermediate CA 2) signed by
                              the intermediate
  deep-client.crt/.key        signed by intermediate 2: subject CN=deep.test,
                              O=Example; deep-client.chain.pem is the leaf, then
                              intermediate 2, then the intermediate

OpenSSL's verification depth (SSL_CTX_set_verify_depth, which nginx's
ssl_verify_depth sets) counts the CA certificates between the client's
certificate and the trust anchor: the chained client needs a depth of 1 (and
fails with 0), the deep one a depth of 2 (and fails with 1). A client signed by
the CA itself passes with any depth, 0 included.

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
        # client certificates
        self.client_cert = self.dir / "client.crt"
        self.client_key = self.dir / "client.key"
        self.untrusted_cert = self.dir / "untrusted-client.crt"
        self.untrusted_key = self.dir / "untrusted-client.key"
        self.intermediate = self.dir / "intermediate-ca.crt"
        self.intermediate_key = self.dir / "intermediate-ca.key"
        self.chained_cert = self.dir / "chained-client.crt"
        self.chained_key = self.dir / "chained-client.key"
        self.chained_chain = self.dir / "chained-client.chain.pem"
        self.intermediate2 = self.dir / "intermediate2-ca.crt"
        self.intermediate2_key = self.dir / "intermediate2-ca.key"
        self.deep_cert = self.dir / "deep-client.crt"
        self.deep_key = self.dir / "deep-client.key"
        self.deep_chain = self.dir / "deep-client.chain.pem"

    # RFC 2253 forms of the client certificates' names, as $ssl_client_s_dn and
    # $ssl_client_i_dn give them
    CA_DN = "CN=rampart test CA"
    CLIENT_DN = "CN=client.test,O=Example"
    UNTRUSTED_DN = "CN=untrusted.test,O=Example"
    INTERMEDIATE_DN = "CN=rampart test intermediate CA,O=Example"
    CHAINED_DN = "CN=chained.test,O=Example"
    INTERMEDIATE2_DN = "CN=rampart test intermediate CA 2,O=Example"
    DEEP_DN = "CN=deep.test,O=Example"

    def client(self, which="trusted"):
        """(certificate file, key file) of a client certificate, for
        SSLContext.load_cert_chain or curl --cert/--key: "trusted" (signed by the CA),
        "untrusted" (self-signed), "chained" (the chain file: leaf and intermediate) or
        "deep" (the chain file: leaf and two intermediates)."""
        return {"trusted": (self.client_cert, self.client_key),
                "untrusted": (self.untrusted_cert, self.untrusted_key),
                "chained": (self.chained_chain, self.chained_key),
                "deep": (self.deep_chain, self.deep_key)}[which]

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
    _make_client_certs(certs, folder, common)
    return certs


_CLIENT_EXT = ["-addext", "basicConstraints=critical,CA:FALSE",
               "-addext", _KEY_USAGE["ecdsa"],
               "-addext", "extendedKeyUsage=clientAuth",
               "-addext", "subjectKeyIdentifier=hash"]


def _make_client_certs(certs, folder, common):
    """The client certificates, the untrusted one and the intermediate chain."""
    signed_by_ca = ["-CA", str(certs.ca), "-CAkey", str(certs.ca_key),
                    "-addext", "authorityKeyIdentifier=keyid"]
    client = ["req", *common, "-x509", *signed_by_ca, *_NEWKEY["ecdsa"],
              "-keyout", str(certs.client_key), "-out", str(certs.client_cert),
              "-subj", "/O=Example/CN=client.test", *_CLIENT_EXT]
    untrusted = ["req", *common, "-x509", *_NEWKEY["ecdsa"],
                 "-keyout", str(certs.untrusted_key), "-out", str(certs.untrusted_cert),
                 "-subj", "/O=Example/CN=untrusted.test", *_CLIENT_EXT]
    intermediate = ["req", *common, "-x509", *signed_by_ca, *_NEWKEY["ecdsa"],
                    "-keyout", str(certs.intermediate_key), "-out", str(certs.intermediate),
                    "-subj", "/O=Example/CN=rampart test intermediate CA",
                    "-addext", "basicConstraints=critical,CA:TRUE,pathlen:1",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-addext", "subjectKeyIdentifier=hash"]
    _wait([(a, _openssl(a, folder)) for a in (client, untrusted, intermediate)])

    by_intermediate = ["-CA", str(certs.intermediate), "-CAkey", str(certs.intermediate_key),
                       "-addext", "authorityKeyIdentifier=keyid"]
    intermediate2 = ["req", *common, "-x509", *by_intermediate, *_NEWKEY["ecdsa"],
                     "-keyout", str(certs.intermediate2_key), "-out", str(certs.intermediate2),
                     "-subj", "/O=Example/CN=rampart test intermediate CA 2",
                     "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                     "-addext", "subjectKeyIdentifier=hash"]

    chained = ["req", *common, "-x509", *by_intermediate, *_NEWKEY["ecdsa"],
               "-keyout", str(certs.chained_key), "-out", str(certs.chained_cert),
               "-subj", "/O=Example/CN=chained.test", *_CLIENT_EXT]
    _wait([(a, _openssl(a, folder)) for a in (intermediate2, chained)])
    certs.chained_chain.write_text(certs.chained_cert.read_text() +
                                   certs.intermediate.read_text())

    deep = ["req", *common, "-x509", "-CA", str(certs.intermediate2),
            "-CAkey", str(certs.intermediate2_key),
            "-addext", "authorityKeyIdentifier=keyid", *_NEWKEY["ecdsa"],
            "-keyout", str(certs.deep_key), "-out", str(certs.deep_cert),
            "-subj", "/O=Example/CN=deep.test", *_CLIENT_EXT]
    _wait([(deep, _openssl(deep, folder))])
    certs.deep_chain.write_text(certs.deep_cert.read_text() + certs.intermediate2.read_text() +
                                certs.intermediate.read_text())


if __name__ == "__main__":
    import sys
    import tempfile
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="certs-"))
    c = make_certs(out)
    print(c.dir)
