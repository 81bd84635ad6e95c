"""`map` and `set` answer as in nginx: the same http-block content runs under Debian's
nginx (reference_nginx.py) and rampart, each test sends its table of requests to
both, and every answer (status and body) must be the same. The `return` texts
echo the variables between brackets, so that an empty value shows.

The configuration errors are checked on rampart alone (the message, file and line)
and against `nginx -t` (both refuse the file, at the same line where nginx names one).
"""

import http.client

import pytest

import harness
import reference_nginx

PORT = "@PORT@"

# Entries read by `include` inside a map block (a file beside each configuration).
MAP_ENTRIES = """
one     "1";
two     "2:$http_x_inc";
~^t(h)ree$  "3:$1";
"""

# The http-block content both servers run; only the listen port differs. Maps come
# before and after the servers that use them ($late is used before its block).
#
# Left out on purpose, because the two differ by design or nginx's own answer is not
# well defined:
# - "\$": rampart reads it as a literal dollar sign (its manual says so); nginx has no
#   escape for "$" and answers "\" followed by the variable's value.
# - "${1}" and "$0": rampart takes them as the first and the whole match; nginx
#   refuses both as unknown variables.
# - A value that reads $1 and, further on, a map whose regex matches (or a named
#   capture before the map that sets it): nginx measures the value before it copies
#   it, the map changes the captures in between, and the copy no longer fits what
#   was measured. The tests read captures after such a map in a separate `set`.
HTTP = r"""
map $http_x_color $color {
    red     warm;
    Blue    cold;
    purple  royal;
    default neutral;
}

map $http_x_color $color_volatile {
    volatile;
    red     warm;
    default neutral;
}

map $color $color_chain {
    warm    "W:$color";
    cold    $http_x_fallback;
    default "D:$color:$http_x_fallback";
}

map $http_x_color $color_nodefault {
    red     warm;
}

map $http_x_host $hn {
    hostnames;
    example.com           exact;
    WWW.Example.com       exact-www;
    *.example.com         star;
    *.deep.example.com    star-deep;
    .dot.example.com      dot;
    www.example.*         tail-www;
    www.example.co.*      tail-co;
    mail.*                tail-mail;
    ~^(?<hn_label>[^.]+)\.regex\.test$   "re:$hn_label";
    default               none;
}

map $host $hn_host {
    hostnames;
    .main.test            main;
    default               other;
}

map $http_host $hn_http_host {
    hostnames;
    main.test             main;
    *.main.test           sub;
    default               other;
}

map $uri $kind {
    /map/regex/exact                                  "exact";
    /MAP/REGEX/Upper                                  "exact-upper";
    ~^/map/regex/img/(?<imgname>[^/]+)\.(png|jpg)$    "image:$imgname:$2";
    ~*\.JSON$                                         "json";
    ~^/map/regex/v(\d+)/                              "version-$1";
    ~^/map/regex/v2/                                  "never: an earlier regex matches";
    ~^/map/regex/                                     "regex-any";
    default                                           "other:$request_method";
}

map $http_x_key $esc {
    ~^~         "regex-tilde";
    \~literal   "escaped";
    \default    "the key default";
    ~^$         "never: regexes are not tried on an empty value";
    default     "none";
}

map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}

map $args $args_cached {
    default "($args)";
}

map $args $args_volatile {
    volatile;
    default "($args)";
}

map $arg_q $qmap {
    volatile;
    default "q=$arg_q";
}

map $http_x_inc $inc {
    include map_entries.conf;
    default none;
}

map "$host:$uri" $hostpath {
    "main.test:/map/multi"                      "exact";
    ~^(?<hp_host>[^:]+):/map/multi/(.+)$        "host=$hp_host rest=$2";
    default                                     "no";
}

# a value that needs itself: nginx gives up after 100 nested evaluations
map $cycle_b $cycle_a {
    default "a:$cycle_b";
}

map $cycle_a $cycle_b {
    default "b:$cycle_a";
}

map $map_self $map_self {
    default "s";
}

map $http_x_cap $capmap {
    default "cap=$1";
}

map $uri $nogroups {
    ~^/mapcap/     "matched";
}

map $uri $withgroups {
    ~^/mapcap/(.)  "first=$1";
}

server {
    listen 127.0.0.1:@PORT@ default_server;
    server_name main.test;

    set $srv "server-level";
    set $srv_copy "copy-of-$srv";

    location / {
        return 200 "root uri=[$uri]\n";
    }

    location = /map/exact {
        return 200 "color=[$color] nodefault=[$color_nodefault] chain=[$color_chain]\n";
    }
    location = /map/hostnames {
        return 200 "hn=[$hn] host=[$hn_host] http_host=[$hn_http_host]\n";
    }
    location /map/regex/ {
        return 200 "kind=[$kind]\n";
    }
    location = /map/kind {
        return 200 "kind=[$kind]\n";
    }
    location = /map/escaped {
        return 200 "esc=[$esc]\n";
    }
    location = /map/upgrade {
        return 200 "connection=[$connection_upgrade]\n";
    }
    location = /map/volatile {
        set $first_cached $args_cached;
        set $first_volatile $args_volatile;
        set $args "changed=1";
        return 200 "cached=[$args_cached] volatile=[$args_volatile]
first=[$first_cached|$first_volatile] args=[$args]\n";
    }
    location = /map/include {
        return 200 "inc=[$inc]\n";
    }
    location /map/multi {
        return 200 "hostpath=[$hostpath]\n";
    }
    location = /map/cycle {
        return 200 "a=[$cycle_a] self=[$map_self]\n";
    }
    location = /map/late {
        return 200 "late=[$late]\n";
    }

    location /set/ {
        set $loc "loc:$uri";
        set $both "$srv+$loc";
        return 200 "srv=[$srv] copy=[$srv_copy] loc=[$loc] both=[$both]\n";
    }
    location = /set/reassign {
        set $v "one";
        set $v "$v-two";
        return 200 "v=[$v]\n";
    }
    location = /set/args {
        set $args "a=1&b=$arg_x";
        return 200 "args=[$args] a=[$arg_a] b=[$arg_b] x=[$arg_x] is_args=[$is_args]
query_string=[$query_string] request_uri=[$request_uri]\n";
    }
    location = /set/empty-args {
        set $args "";
        return 200 "args=[$args] is_args=[$is_args] y=[$arg_y]\n";
    }
    location = /set/return-first {
        return 200 "early=[$early]\n";
        set $early "assigned";
    }
    location = /set/then-return {
        set $early "assigned";
        return 200 "early=[$early]\n";
        set $early "too late";
    }
    location = /set/overrides-server {
        set $srv "location-level";
        return 200 "srv=[$srv] copy=[$srv_copy]\n";
    }
    location = /set/elsewhere {
        return 200 "loc=[$loc] v=[$v] sub=[$sub] before=[$before]\n";
    }
    location = /set/args-append {
        set $args "${args}&extra=1";
        return 200 "args=[$args] query_string=[$query_string] extra=[$arg_extra]\n";
    }
    location = /set/map-variable {
        set $color "forced";
        set $color_volatile "forced-volatile";
        return 200 "color=[$color] volatile=[$color_volatile] chain=[$color_chain]\n";
    }
    location = /set/family-member {
        set $before $arg_q;
        set $arg_q "overridden";
        set $http_x_color "purple";
        return 200 "before=[$before] q=[$arg_q] args=[$args] qmap=[$qmap]
header=[$http_x_color] color=[$color]\n";
    }
    location = /names {
        set $Mixed "m";
        return 200 "host=[$HOST] method=[$Request_Method] color=[$COLOR] arg=[$ARG_Foo]
header=[$HTTP_X_COLOR] srv=[$SRV] mixed=[$mixed|$MIXED]\n";
    }
    location = /set/from-map {
        set $c "$color/$color_nodefault/$connection_upgrade";
        return 200 "c=[$c]\n";
    }

    location ~ ^/re/(?<first>[^/]+)/(\d+)$ {
        return 200 "1=[$1] 2=[$2] 3=[$3] first=[$first]\n";
    }
    location ~* ^/RE-CI/(.+)$ {
        set $cap "got-$1";
        return 200 "1=[$1] cap=[$cap] capmap=[$capmap]\n";
    }
    location ~ ^/mapcap/(.+)$ {
        set $before $1;
        set $m1 $nogroups;
        set $after_nogroups $1;
        set $m2 $withgroups;
        return 200 "before=[$before] after_nogroups=[$after_nogroups] m=[$m1|$m2] after=[$1]\n";
    }
}

server {
    listen 127.0.0.1:@PORT@;
    server_name ~^(?<sub>[^.]+)\.example\.com$;

    set $greeting "hello-$sub";
    set $greeting1 "one-$1";

    location / {
        return 200 "sub=[$sub] 1=[$1] greeting=[$greeting|$greeting1] host=[$host]\n";
    }
    location ~ \.txt$ {
        return 200 "txt sub=[$sub] 1=[$1]\n";
    }
    location ~ ^/cap/(.+)$ {
        return 200 "cap sub=[$sub] 1=[$1]\n";
    }
}

server {
    listen 127.0.0.1:@PORT@;
    server_name ~^www\.(.+)\.org$;

    location / {
        return 200 "org 1=[$1] host=[$host]\n";
    }
}

server {
    listen 127.0.0.1:@PORT@;
    server_name order.test;

    set $a "1";
    return 200 "order a=[$a] b=[$b]\n";
    set $b "2";

    location / {
        return 200 "location reached\n";
    }
}

map $http_x_late $late {
    default "late-default";
    yes     "late-yes";
}
"""


def http_for(port):
    return HTTP.replace(PORT, str(port))


class Pair:
    """nginx and rampart, started on the same http-block content."""

    def __init__(self, nginx, rampart):
        self.nginx = nginx
        self.rampart = rampart


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    reference_nginx.require()
    tmp = tmp_path_factory.mktemp("map_set")
    nginx = reference_nginx.Nginx(tmp / "nginx")
    rampart = harness.Rampart(tmp / "rampart")
    try:
        nginx.configure(http_for(harness.free_port()))
        (nginx.prefix / "map_entries.conf").write_text(MAP_ENTRIES)
        nginx.start()
        rampart.configure(text=reference_nginx.rampart_text(http_for(harness.free_port())))
        (rampart.prefix / "map_entries.conf").write_text(MAP_ENTRIES)
        rampart.start()
        yield Pair(nginx, rampart)
    finally:
        rampart.stop()
        nginx.stop()
    problems = rampart.problems()
    assert not problems, "unexpected trouble in rampart:\n" + "\n".join(problems)


def ask(port, method, target, headers):
    """One request on a fresh connection: (status, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def compare(pair, table):
    """Sends every (method, target, headers) of table to nginx and rampart; fails with a
    readable list of the requests they answered differently. Host is main.test unless a
    request names another."""
    differences = []
    for method, target, headers in table:
        headers = {"Host": "main.test", **headers}
        want = ask(pair.nginx.port, method, target, headers)
        got = ask(pair.rampart.port, method, target, headers)
        assert want[0] == 200, f"the table expects nginx to answer 200: {method} {target} " \
                               f"{headers} got {want}"
        if want != got:
            differences.append(f"{method} {target} {headers}\n"
                               f"    nginx:   {want[0]} {want[1]!r}\n"
                               f"    rampart: {got[0]} {got[1]!r}")
    assert not differences, (f"{len(differences)} of {len(table)} answers differ:\n"
                             + "\n".join(differences))


def GET(target, **headers):
    return ("GET", target, {k.replace("_", "-"): v for k, v in headers.items()})


# ---- map -------------------------------------------------------------------------------


def test_map_exact_keys_ignore_case_and_fall_back_to_default_or_empty(pair):
    compare(pair, [
        GET("/map/exact"),
        GET("/map/exact", X_Color="red"),
        GET("/map/exact", X_Color="RED"),
        GET("/map/exact", X_Color="blue"),
        GET("/map/exact", X_Color="bLuE"),
        GET("/map/exact", X_Color="green"),
        GET("/map/exact", X_Color=""),
        GET("/map/exact", X_Color="red "),
        GET("/map/exact", X_Color="Blue", X_Fallback="fb"),
        GET("/map/exact", X_Color="blue"),
        GET("/map/exact", X_Fallback="fb"),
        ("POST", "/map/exact", {"X-Color": "Red", "Content-Length": "0"}),
    ])


def test_map_hostnames_prefer_exact_then_longest_wildcard(pair):
    hosts = ["example.com", "EXAMPLE.COM", "example.com.", "www.example.com", "WWW.EXAMPLE.COM.",
             "a.example.com", "a.b.example.com", "x.deep.example.com", "deep.example.com",
             "dot.example.com", "a.dot.example.com", "www.example.org", "www.example.co.uk",
             "www.example.co", "mail.example.com", "mail.local", "mail", "www.example",
             "other.org", "", ".", "a.example.com..", "example.comx", "xexample.com",
             "abc.regex.test", "ABC.Regex.Test.", "a.b.regex.test"]
    compare(pair, [GET("/map/hostnames", X_Host=h) for h in hosts] + [
        GET("/map/hostnames"),
        GET("/map/hostnames", Host="MAIN.TEST."),
        GET("/map/hostnames", Host="a.Main.Test."),
        GET("/map/hostnames", Host="main.test:8080"),
        GET("/map/hostnames", Host="other.test"),
    ])


def test_map_regexes_run_in_order_with_captures_in_values(pair):
    compare(pair, [
        GET("/map/regex/exact"),
        GET("/map/regex/EXACT"),
        GET("/map/regex/upper"),
        GET("/map/regex/img/cat.png"),
        GET("/map/regex/img/dog.jpg"),
        GET("/map/regex/img/dog.gif"),
        GET("/map/regex/data.json"),
        GET("/map/regex/DATA.Json"),
        GET("/map/regex/v2/users"),
        GET("/map/regex/v17/x.json"),
        GET("/map/regex/V3/"),
        GET("/map/regex/"),
        GET("/map/kind"),
        ("DELETE", "/map/kind", {}),
    ])


def test_map_key_escaped_with_backslash_is_literal(pair):
    compare(pair, [
        GET("/map/escaped", X_Key="~literal"),
        GET("/map/escaped", X_Key="~LITERAL"),
        GET("/map/escaped", X_Key="~other"),
        GET("/map/escaped", X_Key="literal"),
        GET("/map/escaped", X_Key="default"),
        GET("/map/escaped", X_Key=""),
        GET("/map/escaped"),
    ])


def test_map_empty_key_is_the_websocket_connection_idiom(pair):
    compare(pair, [
        GET("/map/upgrade"),
        GET("/map/upgrade", Upgrade="websocket"),
        GET("/map/upgrade", Upgrade=""),
    ])


def test_map_value_is_kept_for_the_request_unless_volatile(pair):
    compare(pair, [
        GET("/map/volatile"),
        GET("/map/volatile?x=1"),
        GET("/map/volatile?changed=1"),
    ])


def test_map_include_reads_entries_from_a_file(pair):
    compare(pair, [
        GET("/map/include", X_Inc="one"),
        GET("/map/include", X_Inc="TWO"),
        GET("/map/include", X_Inc="three"),
        GET("/map/include", X_Inc="Three"),
        GET("/map/include", X_Inc="four"),
        GET("/map/include"),
    ])


def test_map_source_of_several_variables(pair):
    compare(pair, [
        GET("/map/multi"),
        GET("/map/multi", Host="MAIN.test"),
        GET("/map/multi", Host="other.test"),
        GET("/map/multi/a/b"),
        GET("/map/multi/x", Host="Other.Test"),
        GET("/map/multiple"),
    ])


def test_map_used_in_a_server_before_its_block(pair):
    compare(pair, [
        GET("/map/late"),
        GET("/map/late", X_Late="yes"),
        GET("/map/late", X_Late="YES"),
    ])


def test_map_value_that_needs_itself_gives_up_as_nginx_does(pair):
    mark = pair.rampart.log_size()
    compare(pair, [GET("/map/cycle")])
    pair.rampart.wait_log(r'cycle while evaluating variable "(cycle_a|cycle_b|map_self)"',
                          since=mark)


# ---- set -------------------------------------------------------------------------------


def test_set_at_server_and_location_level_in_order(pair):
    compare(pair, [
        GET("/set/"),
        GET("/set/a/b?q=1"),
        GET("/set/reassign"),
        GET("/set/overrides-server"),
        GET("/set/elsewhere"),
        GET("/set/from-map", X_Color="blue", Upgrade="h2c"),
        GET("/set/from-map"),
    ])


def test_set_args_changes_the_query_arguments(pair):
    compare(pair, [
        GET("/set/args"),
        GET("/set/args?x=42&a=9"),
        GET("/set/args?b=7"),
        GET("/set/empty-args?y=1"),
        GET("/set/empty-args"),
        GET("/set/args-append?a=1"),
        GET("/set/args-append"),
    ])


def test_set_assigns_a_map_variable_even_a_volatile_one(pair):
    compare(pair, [
        GET("/set/map-variable"),
        GET("/set/map-variable", X_Color="red"),
    ])


def test_set_assigns_a_member_of_a_variable_family(pair):
    # $arg_q and $http_x_color read the query and the header until `set` assigns them
    compare(pair, [
        GET("/set/family-member"),
        GET("/set/family-member?q=1&r=2", X_Color="red"),
        GET("/names?q=3", X_Color="red"),
    ])


def test_variable_names_ignore_case(pair):
    compare(pair, [
        GET("/names"),
        GET("/names?foo=bar&FOO=baz", X_Color="Blue"),
    ])


def test_return_before_set_ends_the_script(pair):
    compare(pair, [
        GET("/set/return-first"),
        GET("/set/then-return"),
        GET("/", Host="order.test"),
        GET("/anything", Host="ORDER.test"),
    ])


# ---- captures --------------------------------------------------------------------------


def test_location_regex_captures_numbered_and_named(pair):
    compare(pair, [
        GET("/re/alpha/42"),
        GET("/re/b/7"),
        GET("/re-ci/Mixed/Case"),
        GET("/RE-CI/x"),
        GET("/re/alpha/beta"),
    ])


def test_map_regex_match_replaces_the_captures(pair):
    compare(pair, [
        GET("/mapcap/xyz"),
        GET("/mapcap/q"),
    ])


def test_server_name_regex_captures(pair):
    compare(pair, [
        GET("/", Host="api.example.com"),
        GET("/x", Host="API.Example.Com."),
        GET("/cap/zzz", Host="api.example.com"),
        GET("/file.txt", Host="api.example.com"),
        GET("/", Host="www.shop.org"),
        GET("/", Host="www.a.b.org"),
        GET("/", Host="a.b.example.com"),
    ])


# ---- configuration errors --------------------------------------------------------------
# Each case is http-block content, the line of the mistake (the content starts on line 3
# in both files) and rampart's message after "FILE:LINE: ".

def in_location(*lines):
    return ("server {\n    listen 127.0.0.1:8080;\n    location / {\n"
            + "".join(f"        {line}\n" for line in lines) + "    }\n}\n")


def in_map(*entries, head="map $http_x_color $y"):
    return f"{head} {{\n" + "".join(f"    {e}\n" for e in entries) + "}\n"


ERRORS = {
    "set_name_without_dollar":
        (in_location("set color red;"), 6, '"set": invalid variable name "color"'),
    "set_empty_name":
        (in_location("set $ red;"), 6, '"set": invalid variable name "$"'),
    "set_host_is_not_assignable":
        (in_location("set $host example.com;"), 6,
         '"set": the variable "$host" cannot be assigned'),
    "set_uri_is_not_assignable":
        (in_location("set $uri /elsewhere;"), 6, '"set": the variable "$uri" cannot be assigned'),
    "map_onto_host":
        (in_map("default 1;", head="map $uri $host"), 3,
         '"map": the variable "$host" cannot be assigned'),
    "map_key_twice_in_another_case":
        (in_map("red warm;", "RED hot;"), 5, '"map": conflicting parameter "RED"'),
    "map_default_twice":
        (in_map("default a;", "default b;"), 5, '"default": duplicate default map parameter'),
    "map_wildcard_twice":
        (in_map("hostnames;", "*.example.com a;", ".example.com b;"), 6,
         '"map": conflicting parameter ".example.com"'),
    "map_dot_wildcard_and_exact_name":
        (in_map("hostnames;", "example.com a;", ".example.com b;"), 6,
         '"map": conflicting parameter ".example.com"'),
    "map_star_inside_hostname":
        (in_map("hostnames;", "www.*.com x;"), 5,
         '"www.*.com": invalid hostname or wildcard "www.*.com"'),
    "map_star_without_dot":
        (in_map("hostnames;", "*example.com x;"), 5,
         '"*example.com": invalid hostname or wildcard "*example.com"'),
    "map_two_dots_in_hostname":
        (in_map("hostnames;", "a..example.com x;"), 5,
         '"a..example.com": invalid hostname or wildcard "a..example.com"'),
    "map_entry_of_three_words":
        (in_map("a b c;"), 4, '"a": invalid number of the map parameters'),
    "map_bad_regex":
        (in_map("~^(unclosed x;"), 4,
         '"~^(unclosed": invalid regex "^(unclosed": missing closing parenthesis at offset 10'),
    "unknown_variable_in_return":
        (in_location('return 200 "[$nosuch]";'), 6, '"return": unknown variable "$nosuch"'),
    "unknown_variable_named_at_its_first_use":
        (in_location("set $x $nosuch;", 'return 200 "[$nosuch]";'), 6,
         '"set": unknown variable "$nosuch"'),
    "unknown_variable_in_map_value":
        (in_map('default "$nosuch";'), 4, '"default": unknown variable "$nosuch"'),
}


@pytest.mark.parametrize("case", ERRORS)
def test_configuration_error_names_file_and_line(conf_dir, case):
    http, line, message = ERRORS[case]
    reference_nginx.assert_rampart_refuses(conf_dir, http, line, message)


@pytest.mark.parametrize("case", ERRORS)
def test_nginx_refuses_the_same_configuration(tmp_path, case):
    http, line, _ = ERRORS[case]
    named, stderr = reference_nginx.refusal(tmp_path, http)
    # nginx names a line for a mistake in a directive (not for an unknown variable)
    if named is not None:
        assert named == line, stderr
