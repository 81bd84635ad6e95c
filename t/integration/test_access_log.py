"""The access log: `log_format` and `access_log` as an nginx user expects them.
A line per request in the format and file of the location that handled it,
nginx's escaping, buffering that holds lines until flush= or a stop, rotation
with USR1, and a worker that keeps serving when its log cannot be written.

A request's line is written after its response, so tests poll for lines; to
show that a line is absent, they wait for the line of a later request on the
same (single) worker instead of sleeping.
"""

import json
import os
import re
import signal
import time

import harness
from harness import get, raw_exchange, run, wait_for

TIME_LOCAL = r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}"


def log_lines(path):
    """The lines of a log file as bytes, without their newlines; [] while it is missing."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    assert data == b"" or data.endswith(b"\n"), f"{path} ends inside a line: {data[-80:]!r}"
    return data.split(b"\n")[:-1]


def wait_lines(path, n, timeout=15.0):
    """Waits until path holds at least n lines; returns them (bytes)."""
    return wait_for(lambda: len(log_lines(path)) >= n and log_lines(path), timeout=timeout,
                    what=f"{n} line(s) in {path}")


def text_lines(path, n, timeout=15.0):
    return [line.decode() for line in wait_lines(path, n, timeout)]


def server(port, body, extra=""):
    return f"server {{\n    listen 127.0.0.1:{port};\n{extra}\n{body}\n}}\n"


def raw_get(port, path, headers=b""):
    """A request sent byte for byte (header values with tabs or high bytes), then closed."""
    return raw_exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n" + headers +
                        b"Connection: close\r\n\r\n")


def holds(pid, path):
    return str(path) in harness.fd_targets(pid)


# -- formats ------------------------------------------------------------------


def test_without_access_log_requests_go_to_logs_access_log_in_combined_format(rampart, port):
    rampart.configure(server(port, 'location / { return 200 "hello"; }'))
    rampart.start()
    r = get(port, "/path?q=1", headers={"Referer": "http://ref.example/", "User-Agent": "agent/1.0"})
    assert r.status == 200
    get(port, "/missing-headers", headers={"User-Agent": ""})

    first, second = text_lines(rampart.prefix / "logs" / "access.log", 2)
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - \[{TIME_LOCAL}\] "GET /path\?q=1 HTTP/1\.1" 200 5 '
        r'"http://ref\.example/" "agent/1\.0"', first), first
    # A missing value is "-" in the default escaping, an empty one (a field sent
    # empty) is empty, as in nginx (test_log_escape_vs_nginx.py compares them).
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - \[{TIME_LOCAL}\] "GET /missing-headers HTTP/1\.1" 200 5 "-" ""',
        second), second


def test_custom_format_joins_its_strings_and_fills_in_variables(rampart, port):
    rampart.configure(
        "log_format mine '$request_method $uri'\n"
        "                ' args=$args host=$host'\n"
        "                ' status=$status port=$server_port';\n"
        "access_log logs/mine.log mine;\n" +
        server(port, 'location / { return 404 "nope"; }'))
    rampart.start()
    get(port, "/a/../b//c?x=1", host="Example.COM")
    (line,) = text_lines(rampart.prefix / "logs" / "mine.log", 1)
    assert line == f"GET /b/c args=x=1 host=example.com status=404 port={port}"


def test_escape_default_writes_quotes_backslashes_and_control_bytes_as_hex(rampart, port):
    rampart.configure(
        "log_format dflt '[$http_x_data] [$http_x_missing] \"literal\\\\\"';\n"
        "access_log logs/d.log dflt;\n" + server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    raw_get(port, b"/", b'X-Data: a"b\\c\td\xc3\xa9\r\n')
    (line,) = wait_lines(rampart.prefix / "logs" / "d.log", 1)
    # Only variables are escaped; the format's own text is written as it is.
    assert line == b'[a\\x22b\\x5Cc\\x09d\\xC3\\xA9] [-] "literal\\"'


def test_escape_json_writes_json_string_content_and_nothing_for_empty_values(rampart, port):
    rampart.configure(
        "log_format js escape=json '{\"data\":\"$http_x_data\",\"missing\":\"$http_x_missing\","
        "\"status\":$status}';\n"
        "access_log logs/j.log js;\n" + server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    raw_get(port, b"/", b'X-Data: a"b\\c\td\xc3\xa9\r\n')
    (line,) = wait_lines(rampart.prefix / "logs" / "j.log", 1)
    assert line == b'{"data":"a\\"b\\\\c\\td\xc3\xa9","missing":"","status":200}'
    assert json.loads(line) == {"data": 'a"b\\c\td\u00e9', "missing": "", "status": 200}


def test_escape_none_writes_values_as_they_are(rampart, port):
    rampart.configure(
        "log_format raw escape=none '[$http_x_data] [$http_x_missing]';\n"
        "access_log logs/r.log raw;\n" + server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    raw_get(port, b"/", b'X-Data: a"b\\c\td\xc3\xa9\r\n')
    (line,) = wait_lines(rampart.prefix / "logs" / "r.log", 1)
    assert line == b'[a"b\\c\td\xc3\xa9] []'


def test_request_id_is_32_hex_digits_and_new_for_every_request(rampart, port):
    rampart.configure("log_format ids '$request_id';\naccess_log logs/ids.log ids;\n" +
                      server(port, 'location / { return 200 "$request_id"; }'))
    rampart.start()
    answers = [get(port, "/").text for _ in range(3)]
    logged = text_lines(rampart.prefix / "logs" / "ids.log", 3)
    for rid in logged:
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    assert len(set(logged)) == 3
    assert logged == answers  # the same id for the whole request


def test_body_bytes_sent_and_request_time_describe_the_response(rampart, port):
    rampart.configure(
        "log_format t '$request_method $status $body_bytes_sent $request_time';\n"
        "access_log logs/t.log t;\n" + server(port, 'location / { return 200 "hello world"; }'))
    rampart.start()
    assert get(port, "/").body == b"hello world"
    assert get(port, "/", method="HEAD").body == b""
    get_line, head_line = text_lines(rampart.prefix / "logs" / "t.log", 2)
    method, status, sent, took = get_line.split()
    assert (method, status, sent) == ("GET", "200", "11")
    assert re.fullmatch(r"\d+\.\d{3}", took) and float(took) < 5.0, took
    assert head_line.split()[:3] == ["HEAD", "200", "0"]


def test_malformed_request_is_logged_with_its_server_log(rampart, port):
    rampart.configure(server(port, 'location / { return 200 "ok"; }',
                             extra="access_log logs/srv.log combined;"))
    rampart.start()
    raw_exchange(port, b"NOT-HTTP\x01\r\n\r\n")
    (line,) = text_lines(rampart.prefix / "logs" / "srv.log", 1)
    assert re.fullmatch(rf'127\.0\.0\.1 - - \[{TIME_LOCAL}\] "-" 400 \d+ "-" "-"', line), line


def test_if_parameter_skips_requests_whose_condition_is_empty_or_zero(rampart, port):
    rampart.configure(
        "log_format u '$uri';\naccess_log logs/if.log u if=$arg_log;\n" +
        server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    for path in ("/no-arg", "/zero?log=0", "/empty?log=", "/yes?log=1"):
        get(port, path)
    assert text_lines(rampart.prefix / "logs" / "if.log", 1) == ["/yes"]


# -- levels -------------------------------------------------------------------


def test_access_log_off_in_a_location_silences_it_while_the_server_logs(rampart, port):
    rampart.configure(server(port, 'location /quiet { access_log off; return 200 "q"; }\n'
                                   'location / { return 200 "loud"; }',
                             extra="access_log logs/server.log;"))
    rampart.start()
    assert get(port, "/quiet").text == "q"
    assert get(port, "/loud").text == "loud"
    (line,) = text_lines(rampart.prefix / "logs" / "server.log", 1)
    assert '"GET /loud HTTP/1.1"' in line
    # A level with its own access_log never falls back to the default file.
    assert not (rampart.prefix / "logs" / "access.log").exists()


def test_nearest_level_with_access_log_lines_replaces_the_outer_ones(rampart, port, free_port):
    other = free_port()
    rampart.configure(
        "log_format u '$server_port $uri';\n"
        "access_log logs/http.log u;\n" +
        server(port, 'location /loc { access_log logs/loc.log u; return 200 "l"; }\n'
                     'location / { return 200 "s"; }',
               extra="access_log logs/srv.log u;") +
        server(other, 'location / { return 200 "h"; }'))
    rampart.start()
    get(port, "/loc")
    get(port, "/")
    get(other, "/")
    logs = rampart.prefix / "logs"
    assert text_lines(logs / "http.log", 1) == [f"{other} /"]
    assert text_lines(logs / "srv.log", 1) == [f"{port} /"]
    assert text_lines(logs / "loc.log", 1) == [f"{port} /loc"]


def test_several_access_logs_at_one_level_all_log(rampart, port):
    rampart.configure(
        "log_format u '$uri';\nlog_format s '$status';\n" +
        server(port, 'location / {\n'
                     '    access_log logs/one.log u;\n'
                     '    access_log logs/two.log s;\n'
                     '    access_log logs/one.log s;\n'
                     '    return 201 "x";\n'
                     '}'))
    rampart.start()
    get(port, "/both")
    assert text_lines(rampart.prefix / "logs" / "one.log", 2) == ["/both", "201"]
    assert text_lines(rampart.prefix / "logs" / "two.log", 1) == ["201"]


# -- buffering ----------------------------------------------------------------


def test_buffered_lines_appear_only_after_flush_time(rampart, port):
    log = rampart.prefix / "logs" / "buf.log"
    rampart.configure("access_log logs/buf.log combined buffer=64k flush=2s;\n" +
                      server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    sent = time.monotonic()
    assert get(port, "/held").status == 200
    assert log.exists() and log.stat().st_size == 0  # opened by the master, nothing written
    time.sleep(0.5)
    assert log.stat().st_size == 0
    (line,) = text_lines(log, 1, timeout=10)
    assert '"GET /held HTTP/1.1" 200' in line
    assert time.monotonic() - sent >= 1.5  # a timer never fires early


def test_buffered_lines_are_written_at_graceful_stop(rampart, port):
    log = rampart.prefix / "logs" / "buf.log"
    rampart.configure("access_log logs/buf.log combined buffer=64k;\n" +
                      server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    for i in range(3):
        get(port, f"/r{i}")
    time.sleep(0.3)
    assert log.stat().st_size == 0  # no flush= : only a full buffer or a stop writes
    rampart.signal(signal.SIGQUIT)
    assert rampart.wait_exit() == 0
    lines = text_lines(log, 3)
    assert [re.search(r'"GET (\S+) ', line).group(1) for line in lines] == ["/r0", "/r1", "/r2"]


def test_line_longer_than_the_buffer_is_written_at_once_after_what_waits(rampart, port):
    log = rampart.prefix / "logs" / "buf.log"
    rampart.configure("log_format ua '$uri $http_user_agent';\n"
                      "access_log logs/buf.log ua buffer=1k flush=1m;\n" +
                      server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    get(port, "/short", headers={"User-Agent": "s"})
    long_agent = "L" * 3000
    get(port, "/long", headers={"User-Agent": long_agent})
    assert text_lines(log, 2) == ["/short s", "/long " + long_agent]


def test_line_longer_than_the_line_buffer_is_written_whole(rampart, port):
    log = rampart.prefix / "logs" / "big.log"
    rampart.configure("log_format two '$http_x_a $http_x_b';\naccess_log logs/big.log two;\n" +
                      server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    a, b = "a" * 6000, "b" * 6000
    get(port, "/", headers={"X-A": a, "X-B": b})
    assert text_lines(log, 1) == [f"{a} {b}"]


# -- files --------------------------------------------------------------------


def test_usr1_reopens_a_renamed_access_log_in_every_process(rampart, port):
    log = rampart.prefix / "logs" / "access.log"
    rampart.configure(server(port, 'location / { return 200 "ok"; }'), workers=2)
    rampart.start()
    workers, _ = rampart.wait_processes(2)
    get(port, "/before")
    wait_lines(log, 1)
    rotated = log.with_name("access.log.1")
    os.rename(log, rotated)
    rampart.signal(signal.SIGUSR1)
    wait_for(lambda: log.exists() and all(holds(p, log) for p in [rampart.pid] + workers)
             and not any(holds(p, rotated) for p in [rampart.pid] + rampart.children()),
             what="the master and the workers to write to the new access.log")
    for i in range(4):  # both workers, whichever takes the connection
        get(port, f"/after{i}")
    after = text_lines(log, 4)
    assert all("/after" in line for line in after)
    assert len(log_lines(rotated)) == 1 and b"/before" in log_lines(rotated)[0]


def test_removed_access_log_does_not_stop_serving(rampart, port):
    log = rampart.prefix / "logs" / "access.log"
    rampart.configure(server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    get(port, "/first")
    wait_lines(log, 1)
    log.unlink()
    for i in range(5):
        assert get(port, f"/gone{i}").text == "ok"
    (worker,), _ = rampart.wait_processes(1)
    assert f"{log} (deleted)" in harness.fd_targets(worker)
    assert rampart.log_text().count("access.log") == 0  # writing to a deleted file is no error
    rampart.signal(signal.SIGUSR1)
    wait_for(lambda: holds(worker, log), what="the worker to reopen access.log")
    get(port, "/back")
    assert '"GET /back HTTP/1.1"' in text_lines(log, 1)[0]


def test_unwritable_log_keeps_serving_and_reports_at_most_once_a_second(rampart, port):
    # /dev/full fails every write with ENOSPC: a full disk without mounting one.
    rampart.configure("access_log /dev/full;\n" + server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    began = time.monotonic()
    for i in range(30):
        assert get(port, f"/r{i}").text == "ok"
    rampart.wait_log(r'\[alert\] \d+#0: write\(\) to "/dev/full" failed, \d+ bytes of access log '
                     r'dropped \(28: No space left on device\)')
    time.sleep(0.2)
    reports = rampart.log_text().count('write() to "/dev/full" failed')
    assert 1 <= reports <= int(time.monotonic() - began) + 2, reports
    assert rampart.running()


def test_unwritable_buffered_log_drops_its_buffer_and_keeps_serving(rampart, port):
    rampart.configure("access_log /dev/full combined buffer=4k flush=100ms;\n" +
                      server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    for i in range(40):
        assert get(port, f"/r{i}").text == "ok"
    rampart.wait_log(r'write\(\) to "/dev/full" failed')
    assert get(port, "/still").text == "ok"


def test_reload_writes_to_the_files_of_the_new_configuration(rampart, port):
    logs = rampart.prefix / "logs"
    rampart.configure("access_log logs/old.log;\n" + server(port, 'location / { return 200 "ok"; }'))
    rampart.start()
    get(port, "/one")
    wait_lines(logs / "old.log", 1)
    rampart.configure(text=rampart.conf_text.replace("logs/old.log", "logs/new.log"))
    assert "configuration reloaded" in rampart.reload().group(0)
    rampart.wait_log(r"generation 0 has drained")
    get(port, "/two")
    assert '"GET /two HTTP/1.1"' in text_lines(logs / "new.log", 1)[0]
    assert len(log_lines(logs / "old.log")) == 1


def test_single_process_reload_writes_out_the_old_generation_buffer_when_it_retires(rampart,
                                                                                    port):
    logs = rampart.prefix / "logs"
    body = server(port, 'location / { return 200 "ok"; }')
    rampart.configure("access_log logs/old.log combined buffer=64k;\n" + body,
                      main="master_process off;")
    rampart.start()
    get(port, "/old", headers={"Connection": "close"})
    assert (logs / "old.log").stat().st_size == 0
    rampart.configure("access_log logs/new.log combined buffer=64k flush=100ms;\n" + body,
                      main="master_process off;")
    rampart.reload()
    # The old generation has no connection left: it retires at once, its buffer with it.
    assert '"GET /old HTTP/1.1"' in text_lines(logs / "old.log", 1)[0]
    get(port, "/new")
    assert '"GET /new HTTP/1.1"' in text_lines(logs / "new.log", 1)[0]
    wait_for(lambda: not holds(rampart.pid, logs / "old.log"), what="old.log to be closed")


def test_reload_with_an_access_log_that_cannot_be_opened_keeps_the_old_configuration(rampart,
                                                                                     port):
    rampart.configure(server(port, 'location / { return 200 "old"; }'))
    rampart.start()
    (rampart.prefix / "file").write_text("not a folder\n")
    rampart.configure(text=rampart.conf_text.replace(
        '"old";', '"new";').replace("http {\n", "http {\naccess_log file/a.log;\n"))
    assert "reload failed" in rampart.reload().group(0)
    assert re.search(r'rampart\.conf:\d+: "access_log": cannot open "' +
                     re.escape(f"{rampart.prefix}/file/a.log") + '": Not a directory',
                     rampart.log_text())
    assert get(port, "/").text == "old"


def test_access_log_that_cannot_be_opened_stops_the_start(rampart, port):
    (rampart.prefix).mkdir(parents=True, exist_ok=True)
    (rampart.prefix / "file").write_text("not a folder\n")
    rampart.configure("access_log file/a.log;\n" + server(port, 'location / { return 200 "x"; }'))
    rampart.start(wait=False)
    assert rampart.wait_exit() == 1
    assert re.search(r'rampart\.conf:\d+: "access_log": cannot open "' +
                     re.escape(f"{rampart.prefix}/file/a.log") + '": Not a directory',
                     rampart.stderr_text())


# -- configuration errors -----------------------------------------------------


def check(conf_dir, http):
    text = f"pid logs/rampart.pid;\nhttp {{\n{http}}}\n"
    (conf_dir / "rampart.conf").write_text(text)
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    return p.stderr.splitlines()[0]


def test_unknown_format_name_is_an_error_at_its_line(conf_dir):
    err = check(conf_dir, "server {\n    listen 127.0.0.1:8080;\n"
                          "    access_log logs/a.log nope;\n}\n")
    assert err == f'rampart: {conf_dir}/rampart.conf:5: "access_log": unknown log format "nope"'


def test_format_used_before_it_is_defined_is_unknown(conf_dir):
    err = check(conf_dir, "access_log logs/a.log later;\nlog_format later '$uri';\n")
    assert err == f'rampart: {conf_dir}/rampart.conf:3: "access_log": unknown log format "later"'


def test_bad_buffer_size_is_an_error_at_its_line(conf_dir):
    err = check(conf_dir, "access_log logs/a.log combined buffer=12q;\n")
    assert err == f'rampart: {conf_dir}/rampart.conf:3: "access_log": invalid buffer size "12q"'
    err = check(conf_dir, "\naccess_log logs/a.log combined buffer=0;\n")
    assert err == f'rampart: {conf_dir}/rampart.conf:4: "access_log": invalid buffer size "0"'


def test_duplicate_log_format_name_is_an_error_at_the_second_one(conf_dir):
    err = check(conf_dir, "log_format x '$uri';\nlog_format y '$uri';\nlog_format x '$status';\n")
    assert err == f'rampart: {conf_dir}/rampart.conf:5: "log_format": duplicate "log_format" ' \
                  'name "x"'


def test_redefining_combined_is_a_duplicate(conf_dir):
    err = check(conf_dir, "log_format combined '$uri';\n")
    assert err == f'rampart: {conf_dir}/rampart.conf:3: "log_format": duplicate "log_format" ' \
                  'name "combined"'


def test_other_access_log_mistakes_name_file_and_line(conf_dir):
    cases = [
        ("access_log logs/a.log combined flush=5s;",
         '"access_log": no buffer is defined for access_log "logs/a.log"'),
        ("access_log logs/a.log combined buffer=4k flush=0;",
         '"access_log": invalid flush time "0"'),
        ("access_log logs/a.log combined buffer=4k;\naccess_log logs/a.log combined buffer=8k;",
         '"access_log": access_log "logs/a.log" already defined with conflicting parameters'),
        ("access_log logs/a.log combined gzip;",
         '"access_log": the "gzip" parameter is not supported yet'),
        ("access_log logs/a.log combined bogus=1;", '"access_log": invalid parameter "bogus=1"'),
        ("access_log off combined;", '"access_log": invalid parameter "combined"'),
        ("access_log logs/$host.log;",
         '"access_log": variables in the file name are not supported yet'),
        ("log_format x escape=yaml '$uri';",
         '"log_format": unknown log format escaping "yaml", it must be default, json or none'),
        ("log_format x '$nosuchvar';", '"log_format": unknown variable "$nosuchvar"'),
        ("log_format x;", '"log_format": takes 2 or more arguments, got 1'),
    ]
    for http, message in cases:
        err = check(conf_dir, http + "\n")
        line = 3 + http.count("\n")
        assert re.fullmatch(rf"rampart: {re.escape(str(conf_dir))}/rampart\.conf:{line}: "
                            + re.escape(message) + r".*", err), (http, err)


def test_manual_style_configuration_with_logs_passes_check(conf_dir):
    (conf_dir / "rampart.conf").write_text(
        "http {\n"
        "  log_format main escape=json '{\"t\":\"$time_iso8601\",' '\"s\":$status}';\n"
        "  access_log logs/a.log main buffer=32k flush=1s if=$status;\n"
        "  server { listen 127.0.0.1:8080; access_log off; }\n"
        "}\n")
    p = run("-t", "-q", "-p", conf_dir, "-c", "rampart.conf")
    assert (p.returncode, p.stderr) == (0, "")
    assert (conf_dir / "logs" / "a.log").exists()  # -t opens what a start opens, as nginx -t
