"""`rampart -t`, `-T`, `-v`, `-h`: what an operator sees when checking a
configuration. Error messages are compared whole, file and line included."""

import re

from harness import run

GOOD = """worker_processes 1;
pid logs/rampart.pid;

http {
    server {
        listen 127.0.0.1:8080;
        location / {
            return 200 "ok";
        }
    }
}
"""


def check(conf_dir, text, name="rampart.conf"):
    """Writes text to conf_dir/name and runs `rampart -t` on it."""
    (conf_dir / name).write_text(text)
    return run("-t", "-p", conf_dir, "-c", name)


def failed(path, message):
    return f"rampart: {message}\nrampart: configuration file {path} test failed\n"


def test_good_file_is_reported_ok_and_successful(conf_dir):
    p = check(conf_dir, GOOD)
    path = conf_dir / "rampart.conf"
    assert p.returncode == 0
    assert p.stderr == (f"rampart: the configuration file {path} syntax is ok\n"
                        f"rampart: configuration file {path} test is successful\n")
    assert p.stdout == ""


def test_quiet_test_of_good_file_prints_nothing(conf_dir):
    (conf_dir / "rampart.conf").write_text(GOOD)
    p = run("-t", "-q", "-p", conf_dir, "-c", "rampart.conf")
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")


def test_absolute_configuration_path_ignores_prefix(conf_dir, tmp_path):
    (conf_dir / "abs.conf").write_text(GOOD)
    (tmp_path / "elsewhere").mkdir()  # -t opens the logs there, as a start would
    p = run("-t", "-p", tmp_path / "elsewhere", "-c", conf_dir / "abs.conf")
    assert p.returncode == 0
    assert f"the configuration file {conf_dir / 'abs.conf'} syntax is ok" in p.stderr


def test_missing_configuration_file_fails(conf_dir):
    p = run("-t", "-p", conf_dir, "-c", "nope.conf")
    path = conf_dir / "nope.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'cannot open configuration file "{path}": No such file or directory')


def test_unknown_directive_is_named_with_file_and_line(conf_dir):
    p = check(conf_dir, GOOD.replace('            return 200 "ok";',
                                     '            retrun 200 "ok";'))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:8: unknown directive "retrun"')


def test_missing_semicolon_before_closing_brace(conf_dir):
    p = check(conf_dir, GOOD.replace('return 200 "ok";', 'return 200 "ok"'))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:8: "return": missing ";" before "}}"')


def test_missing_semicolon_at_end_of_file(conf_dir):
    p = check(conf_dir, "worker_processes 1;\nevents {\n}\npid logs/x.pid\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:4: "pid": unexpected end of file: missing ";"')


def test_missing_semicolon_joins_next_directive_into_arguments(conf_dir):
    p = check(conf_dir, "worker_processes 1\nevents {\n}\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'{path}:1: "worker_processes": unexpected "{{": this directive takes no block '
              f'(missing ";"?)')


def test_missing_closing_brace_names_the_open_block(conf_dir):
    p = check(conf_dir, GOOD[:-2])
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'{path}:11: unexpected end of file: missing "}}" for "http" opened at {path}:4')


def test_stray_closing_brace_is_reported(conf_dir):
    p = check(conf_dir, GOOD + "}\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:12: unexpected "}}"')


def test_directive_in_wrong_context_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace("        listen 127.0.0.1:8080;",
                                     "        listen 127.0.0.1:8080;\n"
                                     "        worker_processes 2;"))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:7: "worker_processes": not allowed in the server '
                                    f'context')


def test_location_outside_server_is_rejected(conf_dir):
    p = check(conf_dir, "http {\n    location / {\n    }\n}\n")
    path = conf_dir / "rampart.conf"
    assert p.stderr == failed(path, f'{path}:2: "location": not allowed in the http context')


def test_bad_worker_processes_value_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace("worker_processes 1;", "worker_processes many;"))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:1: "worker_processes": invalid value "many", it must '
                                    f'be "auto" or a number from 1 to 1024')


def test_bad_time_value_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace("http {\n", "http {\n    keepalive_timeout 5x;\n"))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:5: "keepalive_timeout": invalid time "5x"')


def test_wrong_number_of_arguments_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace('return 200 "ok";', 'return 200 "ok" "extra";'))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:8: "return": takes 1 to 2 arguments, got 3')


def test_unknown_variable_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace('return 200 "ok";', 'return 200 "$nosuch";'))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:8: "return": unknown variable "$nosuch"')


def test_include_of_missing_file_names_the_include_line(conf_dir):
    p = check(conf_dir, GOOD.replace("http {\n", "http {\n    include extra.conf;\n"))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'{path}:5: "include": cannot open "{conf_dir}/extra.conf": '
              f'No such file or directory')


def test_include_pattern_matching_nothing_is_not_an_error(conf_dir):
    (conf_dir / "empty").mkdir()
    p = check(conf_dir, GOOD.replace("http {\n", "http {\n    include empty/*.conf;\n"
                                                 "    include sites-enabled/*;\n"))
    assert p.returncode == 0, p.stderr


def test_include_pattern_in_a_folder_that_cannot_be_read_is_an_error(conf_dir):
    # a folder that is a symbolic link to itself: nobody can read it, root included
    # (a folder with mode 0 would not stop root, who runs CI)
    (conf_dir / "loop").symlink_to("loop")
    p = check(conf_dir, GOOD.replace("http {\n", "http {\n    include loop/*.conf;\n"))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'{path}:5: "include": cannot read "{conf_dir}/loop/*.conf": '
        "Too many levels of symbolic links")


def test_error_inside_included_file_names_that_file(conf_dir):
    (conf_dir / "sites").mkdir()
    (conf_dir / "sites" / "a.conf").write_text("server {\n    listen 127.0.0.1:8081;\n"
                                               "    bogus on;\n}\n")
    p = check(conf_dir, GOOD.replace("http {\n", "http {\n    include sites/*.conf;\n"))
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{conf_dir}/sites/a.conf:3: unknown directive "bogus"')


def test_include_cycle_is_reported_with_the_chain(conf_dir):
    (conf_dir / "a.conf").write_text("include b.conf;\n")
    (conf_dir / "b.conf").write_text("\ninclude a.conf;\n")
    p = check(conf_dir, "events {\n}\ninclude a.conf;\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'{conf_dir}/b.conf:2: "include": include cycle: {path} -> {conf_dir}/a.conf -> '
              f'{conf_dir}/b.conf -> {conf_dir}/a.conf')


def test_second_events_block_is_rejected(conf_dir):
    p = check(conf_dir, "events {\n    worker_connections 512;\n}\n"
                        "events {\n    worker_connections 1024;\n}\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(path, f'{path}:4: "events": duplicate directive')


def test_duplicate_default_server_is_rejected(conf_dir):
    p = check(conf_dir, "http {\n"
                        "    server { listen 127.0.0.1:8080 default_server; }\n"
                        "    server {\n        listen 127.0.0.1:8080 default_server;\n    }\n"
                        "}\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr == failed(
        path, f'{path}:4: "listen": a duplicate default server for 127.0.0.1:8080')


def test_dump_prints_every_file_including_included_ones(conf_dir):
    inc = "server {\n    listen 127.0.0.1:8081;\n    return 200 \"included\";\n}\n"
    (conf_dir / "site.conf").write_text(inc)
    main = GOOD.replace("http {\n", "http {\n    include site.conf;\n")
    (conf_dir / "rampart.conf").write_text(main)
    p = run("-T", "-p", conf_dir, "-c", "rampart.conf")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 0
    assert p.stdout == (f"# configuration file {path}:\n{main}\n"
                        f"# configuration file {conf_dir}/site.conf:\n{inc}\n")
    assert f"configuration file {path} test is successful" in p.stderr


def test_dump_of_broken_file_prints_only_the_error(conf_dir):
    (conf_dir / "rampart.conf").write_text("bogus;\n")
    p = run("-T", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stdout == ""
    assert 'unknown directive "bogus"' in p.stderr


def test_version_flag_prints_version(conf_dir):
    p = run("-v")
    assert p.returncode == 0
    assert re.fullmatch(r"rampart version: rampart/\d+\.\d+\.\d+\n", p.stdout)


def test_full_version_flag_names_libraries_and_default_configuration():
    p = run("-V")
    assert p.returncode == 0
    assert "libevent" in p.stdout and "nghttp2" in p.stdout and "OpenSSL" in p.stdout
    # the installed configuration, $(sysconfdir)/rampart/rampart.conf: absolute
    assert re.search(r"^default configuration: /\S*/rampart/rampart\.conf$", p.stdout, re.M)


def test_help_flag_lists_every_option():
    p = run("-h")
    assert p.returncode == 0
    assert p.stdout.startswith("Usage: rampart ")
    for opt in ("-h", "-v", "-V", "-t", "-T", "-q", "-s signal", "-p prefix", "-c filename"):
        assert f"\n  {opt} " in p.stdout


def test_unknown_option_prints_usage_and_fails():
    p = run("-x")
    assert p.returncode == 1
    assert "Usage: rampart " in p.stderr


def test_signal_with_unknown_name_is_rejected(conf_dir):
    (conf_dir / "rampart.conf").write_text(GOOD)
    p = run("-s", "restart", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr == ('rampart: invalid signal "restart": use stop, quit, reload or reopen\n')


def test_signal_without_running_master_names_the_pid_file(conf_dir):
    (conf_dir / "rampart.conf").write_text(GOOD)
    p = run("-s", "reload", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr == (f'rampart: cannot open pid file "{conf_dir}/logs/rampart.pid": '
                        f'No such file or directory (is rampart running?)\n')


def test_shipped_configuration_passes_the_test(tmp_path):
    import harness
    p = run("-t", "-q", "-p", harness.SRC, "-c", "conf/rampart.conf")
    assert (p.returncode, p.stderr) == (0, "")


def test_check_opens_the_access_logs_a_start_opens_and_names_the_line(conf_dir):
    (conf_dir / "rampart.conf").write_text(
        "http {\n"
        "  server {\n"
        "    listen 127.0.0.1:8080;\n"
        "    access_log no/such/folder/a.log;\n"
        "  }\n"
        "}\n")
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert (f'rampart: {conf_dir}/rampart.conf:4: "access_log": cannot open '
            f'"{conf_dir}/no/such/folder/a.log": No such file or directory') in p.stderr
    assert "test failed" in p.stderr


def test_check_reports_an_error_log_that_cannot_be_opened_with_its_line(conf_dir):
    (conf_dir / "rampart.conf").write_text("error_log no/such/e.log;\nhttp { }\n")
    p = run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert (f'rampart: {conf_dir}/rampart.conf:1: "error_log": cannot open '
            f'"{conf_dir}/no/such/e.log": No such file or directory') in p.stderr


def test_named_location_inside_a_location_is_rejected_as_nginx_does(conf_dir):
    p = check(conf_dir, GOOD.replace('            return 200 "ok";',
                                     '            location @inner { return 200; }'))
    path = conf_dir / "rampart.conf"
    assert p.stderr == failed(path, f'{path}:8: "location": location "@inner" could not be inside '
                                    f'location "/"')


def test_location_nested_in_a_named_location_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace('        location / {',
                                     '        location @n {\n            location /x { }'))
    path = conf_dir / "rampart.conf"
    assert p.stderr == failed(path, f'{path}:8: "location": location "/x" could not be inside the named '
                                    f'location "@n"')


def test_duplicate_named_location_is_rejected(conf_dir):
    p = check(conf_dir, GOOD.replace('        location / {',
                                     '        location @n { }\n        location @n { }\n'
                                     '        location / {'))
    path = conf_dir / "rampart.conf"
    assert p.stderr == failed(path, f'{path}:8: "location": duplicate location "@n"')
