"""Lua in the configuration: every hook compiles when the configuration is read, so
a syntax error in a *_by_lua_block or a *_by_lua_file script refuses the configuration
(`rampart -t` exits 1) naming the directive's file and line and Lua's own place of
the error (file and line); a reload with such a script keeps the old configuration
serving. Braces in Lua strings, long strings and comments do not end a block.

OpenResty compiles a block only at its first request (its `nginx -t` accepts all of
these), so here rampart goes beyond the reference: nothing to compare with.
"""

import pytest

import harness
from reference_nginx import assert_rampart_refuses


def test_syntax_error_in_a_block_names_the_file_and_the_lua_line(conf_dir):
    path = conf_dir / "rampart.conf"
    http = ("server { listen 127.0.0.1:1;\n"
            "  location / { content_by_lua_block {\n"
            "    ngx.say(\"x\"\n"
            "    local y = 1\n"
            "  } }\n"
            "}")
    assert_rampart_refuses(conf_dir, http, 4,
                           f"\"content_by_lua_block\": {path}:6: ')' expected "
                           f"(to close '(' at line 5) near 'local'")


def test_syntax_error_in_a_file_script_names_the_script_and_line(conf_dir):
    script = conf_dir / "bad.lua"
    script.write_text("local x = 1\nlocal y = = 2\n")
    http = f"server {{ listen 127.0.0.1:1;\n  location / {{ access_by_lua_file {script}; }}\n}}"
    assert_rampart_refuses(conf_dir, http, 4,
                           f"\"access_by_lua_file\": {script}:2: unexpected symbol near '='")


def test_unknown_script_file_is_refused(conf_dir):
    script = conf_dir / "missing.lua"
    http = f"server {{ listen 127.0.0.1:1;\n  location / {{ content_by_lua_file {script}; }}\n}}"
    assert_rampart_refuses(conf_dir, http, 4,
                           f"\"content_by_lua_file\": cannot open {script}: "
                           f"No such file or directory")


def test_syntax_error_in_set_by_lua_code(conf_dir):
    path = conf_dir / "rampart.conf"
    http = "server { listen 127.0.0.1:1;\n  set_by_lua $x 'return (';\n}"
    assert_rampart_refuses(conf_dir, http, 4,
                           f"\"set_by_lua\": {path}:4: unexpected symbol near '<eof>'")


def test_unterminated_block_is_refused(conf_dir):
    # the block runs to the end of the file: nothing closes it
    text = ("worker_processes 1; error_log logs/error.log info; pid logs/rampart.pid;\n"
            "http {\n"
            "  init_by_lua_block {\n"
            "    greeting = 'hello'\n")
    (conf_dir / "rampart.conf").write_text(text)
    p = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    path = conf_dir / "rampart.conf"
    assert p.returncode == 1
    assert p.stderr.startswith(f"rampart: {path}:3: \"init_by_lua_block\": "
                               f"unexpected end of file: missing \"}}\"\n")


def test_unfinished_long_string_in_a_block_is_refused(conf_dir):
    text = ("worker_processes 1; error_log logs/error.log info; pid logs/rampart.pid;\n"
            "http {\n"
            "  init_by_lua_block { local s = [==[ } ]] }\n"
            "}\n")
    (conf_dir / "rampart.conf").write_text(text)
    p = harness.run("-t", "-p", conf_dir, "-c", "rampart.conf")
    assert p.returncode == 1
    assert p.stderr.startswith(f"rampart: {conf_dir / 'rampart.conf'}:3: "
                               f"\"init_by_lua_block\": unfinished long string or comment\n")


@pytest.mark.parametrize("http, line, message", [
    ("server { listen 127.0.0.1:1;\n location / { content_by_lua_block { ngx.say(1) }\n"
     " content_by_lua_block { ngx.say(2) } }\n}", 5, '"content_by_lua_block": is duplicate'),
    ("server { listen 127.0.0.1:1;\n content_by_lua_block { ngx.say(1) }\n}", 4,
     '"content_by_lua_block": not allowed in the server context'),
    ("server { listen 127.0.0.1:1;\n set_by_lua_block x { return 1 }\n}", 4,
     '"set_by_lua_block": invalid variable name "x"'),
    ("lua_code_cache maybe;", 3,
     '"lua_code_cache": invalid value "maybe", it must be "on" or "off"'),
    ("lua_max_memory lots;", 3, '"lua_max_memory": invalid size "lots"'),
    ("server { listen 127.0.0.1:1;\n location / { access_by_lua_block { ngx.exit(403) }\n"
     " access_by_lua_block { ngx.exit(401) } }\n}", 5, '"access_by_lua_block": is duplicate'),
])
def test_bad_directive_is_refused_at_its_line(conf_dir, http, line, message):
    assert_rampart_refuses(conf_dir, http, line, message)


def test_braces_in_strings_long_strings_and_comments_stay_inside_the_block(rampart, port):
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{
                content_by_lua_block {{
                    local a = "}}"   -- a brace in a comment: }}
                    local b = '{{'
                    local c = [[ }} ]]
                    local d = [==[ ]] }} ]==]
                    --[[ a long comment with a brace }}
                    ]]
                    ngx.say(a, b, c, d, "\\"}}")
                }}
            }}
        }}
    """)
    rampart.start()
    assert harness.get(port).text == '}{ }  ]] } "}\n'


def test_error_in_init_by_lua_stops_the_start_with_file_and_line(rampart, port):
    rampart.configure(f"""
        init_by_lua_block {{
            local t = nil
            t.field = 1
        }}
        server {{ listen 127.0.0.1:{port}; }}
    """)
    rampart.start(wait=False)
    assert rampart.wait_exit() == 1
    line = rampart.conf_text.split("\n").index("            t.field = 1") + 1
    assert (f"init_by_lua failed: {rampart.conf_path}:{line}: attempt to index local 't'"
            in rampart.stderr_text())


def test_reload_with_a_broken_script_keeps_the_old_configuration(rampart, port, tmp_path):
    script = tmp_path / "content.lua"
    script.write_text('ngx.say("old script")\n')
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_file {script}; }}
        }}
    """)
    rampart.start()
    workers, helpers = rampart.wait_processes(1)
    script.write_text('ngx.say("new script"\n')
    outcome = rampart.reload()
    assert outcome.group(0) == "reload failed"
    log = rampart.log_text()
    assert f"{script}:2: ')' expected (to close '(' at line 1) near '<eof>'" in log
    assert "reload failed: the previous configuration keeps serving" in log
    assert harness.get(port).text == "old script\n"
    assert rampart.wait_processes(1) == (workers, helpers)


def test_reload_with_a_broken_block_keeps_the_old_configuration(rampart, port):
    rampart.configure(f"""
        server {{
            listen 127.0.0.1:{port};
            location / {{ content_by_lua_block {{ ngx.say("old block") }} }}
        }}
    """)
    rampart.start()
    rampart.configure(text=rampart.conf_text.replace('ngx.say("old block")',
                                                     'ngx.say("new block" ..)'))
    assert rampart.reload().group(0) == "reload failed"
    assert f"{rampart.conf_path}:" in rampart.log_text()
    assert "unexpected symbol near ')'" in rampart.log_text()
    assert harness.get(port).text == "old block\n"
    # and a good one then applies
    rampart.configure(text=rampart.conf_text.replace('ngx.say("new block" ..)',
                                                     'ngx.say("new block")'))
    assert rampart.reload().group(0).startswith("configuration reloaded")
    harness.wait_for(lambda: harness.get(port).text == "new block\n", what="the new block")
