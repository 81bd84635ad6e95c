"""Where relative paths lead when the configuration is not at the top of the prefix
(`-p PREFIX -c conf/rampart.conf`), by nginx's rule: files that belong to the
configuration (here a certificate and its key) are found in the configuration
file's folder, and files rampart writes (the pid file, the error and access logs)
go under the prefix. The unit tests in t/unit/test_paths.c cover every directive;
these start the real binary with such a layout."""

import shutil
import socket
import ssl

from harness import get, wait_for


def start_from_a_subfolder(rampart, certs, port, plain_port):
    """Starts rampart on PREFIX/conf/rampart.conf, whose TLS server names its
    certificate as certs/a.crt (PREFIX/conf/certs/a.crt), with a cleartext server on
    plain_port, logging to logs/."""
    rampart.conf_path = rampart.prefix / "conf" / "rampart.conf"
    folder = rampart.prefix / "conf" / "certs"
    folder.mkdir(parents=True)
    shutil.copy(certs.cert("a.test"), folder / "a.crt")
    shutil.copy(certs.key("a.test"), folder / "a.key")
    rampart.configure(f"""
        access_log logs/access.log;
        server {{
            listen 127.0.0.1:{port} ssl;
            server_name a.test;
            ssl_certificate certs/a.crt;
            ssl_certificate_key certs/a.key;
            return 200 "ok\\n";
        }}
        server {{
            listen 127.0.0.1:{plain_port};
            return 200 "plain\\n";
        }}""")
    return rampart.start()


def test_certificate_named_relative_is_read_from_the_configuration_folder(rampart, certs, port,
                                                                        free_port):
    start_from_a_subfolder(rampart, certs, port, free_port())
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="a.test") as s:
            assert s.getpeercert(True) == certs.der("a.test")


def test_pid_file_and_logs_named_relative_go_under_the_prefix(rampart, certs, port, free_port):
    plain = free_port()
    start_from_a_subfolder(rampart, certs, port, plain)
    assert get(plain, "/").status == 200
    logs = rampart.prefix / "logs"
    assert (logs / "rampart.pid").read_text().strip() == str(rampart.pid)
    assert logs.joinpath("error.log").exists()
    wait_for(lambda: "GET / HTTP/1.1" in logs.joinpath("access.log").read_text(),
             what="the request in PREFIX/logs/access.log")
    assert not (rampart.prefix / "conf" / "logs").exists()
