"""
nginx's directives in rampart: a directive nginx has and rampart lacks is refused as
one ("nginx directive not supported by rampart (see rampart.conf(5), DIFFERENCES)"),
with its file and line, and DIFFERENCES in rampart.conf(5) lists each one with the
reason; nginx's tuning directives (hash sizes, multi_accept, use epoll, ...) load as
no-ops with their values checked as nginx checks them.

The names are the table in src/conf/nginx_directives.c (Debian's nginx 1.22
modules); the directives rampart has are those of its rp_command_t tables, read as
test_docs.py reads them.
"""
import re

import harness
import reference_nginx
from test_docs import CONF_MAN, SRC, code_directives, man_sections

# Directives being built for issue 15 in parallel (rewrite, error_page, auth, buffering,
# static files, proxy headers): neither implemented on this branch nor to be listed
# as missing. Once they are merged, every name here is in the code; then this set is
# to be emptied (test_pending_names_are_not_yet_implemented says which).
PENDING = set()

UNSUPPORTED = ("nginx directive not supported by rampart (see rampart.conf(5), "
               "DIFFERENCES)")


def table_names():
    text = (SRC / "src" / "conf" / "nginx_directives.c").read_text()
    body = text[text.index("nginx_directives[] = {"):]
    body = body[:body.index("};")]
    return re.findall(r'"([a-z0-9_]+)"', body)


def differences_names():
    """The names on the "Directives:" lines of DIFFERENCES' list of nginx directives."""
    sections = man_sections(CONF_MAN)
    assert any(sh == "DIFFERENCES FROM NGINX" and ss == "nginx directives rampart does not have"
               for sh, ss, _ in sections), "no list of nginx directives in DIFFERENCES"
    names = []
    for sh, ss, lines in sections:
        if sh == "DIFFERENCES FROM NGINX" and ss == "nginx directives rampart does not have":
            for line in lines:
                if line.startswith("Directives:"):
                    names += re.findall(r"\\fB([a-z0-9_]+)\\f[RP]", line)
    return names


def test_the_table_is_sorted_without_repeats_for_its_binary_search():
    names = table_names()
    assert len(names) > 500
    assert names == sorted(set(names))


def test_every_nginx_directive_rampart_lacks_is_listed_in_differences():
    code, listed = set(code_directives()), set(differences_names())
    missing = [n for n in table_names() if n not in code and n not in listed and n not in PENDING]
    assert not missing, f"nginx directives neither implemented nor in DIFFERENCES: {missing}"


def test_differences_lists_only_nginx_directives_rampart_lacks():
    code, table, listed = set(code_directives()), set(table_names()), differences_names()
    assert len(listed) == len(set(listed)), "a name listed twice"
    assert not [n for n in listed if n not in table], "listed but not nginx's"
    implemented = [n for n in listed if n in code]
    assert not implemented, f"listed in DIFFERENCES but implemented: {implemented}"
    assert not [n for n in listed if n in PENDING]


def test_pending_names_are_not_yet_implemented():
    done = sorted(PENDING & set(code_directives()))
    assert not done, f"implemented now: remove from PENDING in this file: {done}"


def check(conf_dir, text):
    (conf_dir / "rampart.conf").write_text(text)
    return harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")


def test_nginx_directive_rampart_lacks_is_refused_as_unsupported_where_nginx_accepts_it(
        tmp_path, conf_dir):
    http = "server {\n listen 127.0.0.1:9;\n location / { fastcgi_param SCRIPT_NAME /x; }\n}"
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    nginx.configure(http)
    assert nginx.check().returncode == 0
    reference_nginx.assert_rampart_refuses(conf_dir, http, 5,
                                           f'"fastcgi_param": {UNSUPPORTED}')


def test_stream_block_is_refused_as_unsupported_with_its_line(conf_dir):
    p = check(conf_dir, "events {}\n\nstream {\n server { listen 9000; proxy_pass a:1; }\n}\n")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr.startswith(f'rampart: {path}:3: "stream": {UNSUPPORTED}\n')


def test_name_nginx_lacks_too_is_an_unknown_directive_in_both(tmp_path, conf_dir):
    http = "proxy_cache_validity 200 1m;"
    line, err = reference_nginx.refusal(tmp_path, http)
    assert line == 3 and 'unknown directive "proxy_cache_validity"' in err
    reference_nginx.assert_rampart_refuses(conf_dir, http, 3,
                                           'unknown directive "proxy_cache_validity"')


TUNING_MAIN = ("worker_rlimit_core 500m; timer_resolution 100ms; pcre_jit on;\n"
               "events { worker_connections 64; multi_accept on; accept_mutex off; "
               "accept_mutex_delay 200ms; use epoll; }\n")
TUNING_HTTP = """
types_hash_max_size 2048; types_hash_bucket_size 64;
server_names_hash_max_size 1024; server_names_hash_bucket_size 128;
variables_hash_max_size 2048; variables_hash_bucket_size 128;
map_hash_max_size 4096; map_hash_bucket_size 128;
proxy_headers_hash_max_size 1024; proxy_headers_hash_bucket_size 128;
connection_pool_size 512; request_pool_size 8k;
reset_timedout_connection on; keepalive_disable msie6 safari;
lingering_close always; lingering_time 10s; lingering_timeout 2s;
output_buffers 4 64k; postpone_output 0; msie_padding off; msie_refresh on;
ssl_buffer_size 4k;
server {
 listen 127.0.0.1:9;
 location / { types_hash_max_size 512; proxy_headers_hash_max_size 256; lingering_close off;
  output_buffers 1 32k; postpone_output 1460; keepalive_disable none; return 200; }
}
"""


def test_nginx_tuning_directives_load_in_rampart_as_in_nginx(tmp_path, conf_dir):
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    conf = nginx.configure(TUNING_HTTP)
    conf.write_text(conf.read_text().replace("events { worker_connections 256; }",
                                             TUNING_MAIN.replace("\n", " ")))
    p = nginx.check()
    assert p.returncode == 0, p.stderr
    p = check(conf_dir, TUNING_MAIN + "http {" + TUNING_HTTP + "}\n")
    assert p.returncode == 0, p.stderr


def test_tuning_directive_with_a_bad_value_is_refused_at_its_line_as_nginx_does(tmp_path,
                                                                                conf_dir):
    for http, message in [
        ("types_hash_max_size lots;", '"types_hash_max_size": invalid number "lots"'),
        ("reset_timedout_connection yes;",
         '"reset_timedout_connection": invalid value "yes", it must be "on" or "off"'),
        ("lingering_close sometimes;", '"lingering_close": invalid value "sometimes"'),
        ("output_buffers 2 lots;", '"output_buffers": invalid size "lots"'),
    ]:
        line, err = reference_nginx.refusal(tmp_path / http.split()[0], http)
        assert line == 3, err
        reference_nginx.assert_rampart_refuses(conf_dir, http, 3, message)


def test_use_of_an_event_method_linux_lacks_is_refused(conf_dir):
    p = check(conf_dir, "events {\n use kqueue;\n}\nhttp {}\n")
    assert p.returncode == 1
    assert f'{conf_dir / "rampart.conf"}:2: "use": invalid value "kqueue"' in p.stderr


def test_tuning_directive_outside_its_context_is_refused_as_nginx_does(tmp_path, conf_dir):
    http = "server {\n listen 127.0.0.1:9;\n location / { map_hash_max_size 10; }\n}"
    line, err = reference_nginx.refusal(tmp_path, http)
    assert line == 5 and "not allowed here" in err
    reference_nginx.assert_rampart_refuses(conf_dir, http, 5,
                                           '"map_hash_max_size": not allowed in the location '
                                           'context')


def test_the_table_is_not_consulted_for_a_directive_rampart_has(conf_dir):
    # proxy_pass is in the table (it is nginx's) but registered: out of its context it
    # is "not allowed", never "not supported"
    assert "proxy_pass" in table_names()
    p = check(conf_dir, "proxy_pass http://127.0.0.1:9;\nevents {}\n")
    assert p.returncode == 1
    assert (f'{conf_dir / "rampart.conf"}:1: "proxy_pass": not allowed in the main context'
            in p.stderr)
