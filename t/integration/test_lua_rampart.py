"""The `rampart` Lua module (require "rampart"): the upstream runtime, the limit zones
as objects, and the request's identifiers, from scripts.

Nothing here has an OpenResty counterpart (nginx does not show these to Lua), so no
reference run: each test checks the module against what rampart itself does with the
same upstream or zone (requests avoiding a peer marked down, limit_req refusing what
a script already took).
"""

import json

import harness
from harness import request


def conf(port, backends, extra_http="", extra_server=""):
    servers = "\n    ".join(f"server 127.0.0.1:{b.port};" for b in backends)
    return f"""
upstream pool {{
    {servers}
}}
{extra_http}
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://pool;
    }}
    location = /peers {{
        content_by_lua_block {{
            local rampart = require "rampart"
            local up = assert(rampart.upstream("pool"))
            local out = {{}}
            for i, p in ipairs(up:peers()) do
                out[i] = string.format("%s %s %s w=%d inflight=%d fails=%d health=%s ewma=%s",
                    p.name, p.addr, p.state, p.weight, p.inflight, p.fails, p.health,
                    type(p.ewma_ms))
            end
            ngx.say(table.concat(out, "\\n"))
        }}
    }}
    location = /down {{
        content_by_lua_block {{
            local rampart = require "rampart"
            local up = rampart.upstream("pool")
            local ok, err = up:mark_down("{backends[0].addr}", true)
            ngx.say(tostring(ok), " ", tostring(err))
        }}
    }}
    location = /up {{
        content_by_lua_block {{
            local up = require("rampart").upstream("pool")
            ngx.say(tostring(up:mark_down("{backends[0].addr}", false)))
        }}
    }}
    {extra_server}
}}
"""


def test_peers_lists_the_upstream_servers_with_their_state(rampart, backend_factory,
                                                          free_port):
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    rampart.configure(conf(port, [a, b]), workers=2)
    rampart.start()
    for _ in range(4):
        assert request(port).status == 200
    lines = request(port, "/peers").text.splitlines()
    assert lines == [
        f"127.0.0.1:{a.port} 127.0.0.1:{a.port} up w=1 inflight=0 fails=0 health=unchecked "
        f"ewma=number",
        f"127.0.0.1:{b.port} 127.0.0.1:{b.port} up w=1 inflight=0 fails=0 health=unchecked "
        f"ewma=number",
    ]


def test_mark_down_makes_every_worker_avoid_the_peer(rampart, backend_factory, free_port):
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    rampart.configure(conf(port, [a, b]), workers=2)
    rampart.start()
    assert request(port, "/down").text == "true nil\n"
    # fresh connections land on either worker: none of them sends to a any more
    names = {request(port).text for _ in range(30)}
    assert names == {"b\n"}
    assert a.stats()["requests"] == 0
    for _ in range(6):  # every worker's view shows it down
        assert f"127.0.0.1:{a.port} down" in request(port, "/peers").text
    assert request(port, "/up").text == "true\n"
    harness.wait_for(lambda: {request(port).text for _ in range(10)} == {"a\n", "b\n"},
                     what="requests to reach a again")


def test_mark_down_of_an_unknown_peer_says_so(rampart, backend, free_port):
    port = free_port()
    rampart.configure(conf(port, [backend], extra_server="""
    location = /bad {
        content_by_lua_block {
            local up = require("rampart").upstream("pool")
            ngx.say(tostring(select(2, up:mark_down("10.9.9.9:1", true))))
            ngx.say(tostring(select(2, require("rampart").upstream("nope"))))
        }
    }"""))
    rampart.start()
    assert request(port, "/bad").text == ('no peer "10.9.9.9:1" in upstream "pool"\n'
                                          'no upstream "nope"\n')


def test_set_weight_changes_the_round_robin_shares(rampart, backend_factory, free_port):
    a, b = backend_factory("a"), backend_factory("b")
    port = free_port()
    rampart.configure(conf(port, [a, b], extra_server=f"""
    location = /weight {{
        content_by_lua_block {{
            local up = require("rampart").upstream("pool")
            ngx.say(tostring(up:set_weight("127.0.0.1:{a.port}", 3)))
            for _, p in ipairs(up:peers()) do ngx.say(p.addr, " ", p.weight) end
        }}
    }}"""))
    rampart.start()
    assert request(port, "/weight").text == (f"true\n127.0.0.1:{a.port} 3\n"
                                             f"127.0.0.1:{b.port} 1\n")
    got = [request(port).text for _ in range(8)]
    assert got.count("a\n") == 6 and got.count("b\n") == 2


LIMITS = """
limit_req_zone $http_x_key zone=perkey:1m rate=1r/m;
limit_count_zone $http_x_key zone=quota:1m limit=3 window=1h;
"""

LIMIT_LOCATIONS = """
    location = /limited {
        limit_req zone=perkey burst=2 nodelay;
        proxy_pass http://pool;  # not `return`: it answers before limit_req's phase
    }
    location = /counted {
        limit_count zone=quota;
        proxy_pass http://pool;
    }
    location = /lua {
        content_by_lua_block {
            local rampart = require "rampart"
            local lim = assert(rampart.limit("perkey", { burst = 2 }))
            local a, b = lim:incoming("k1", true)
            ngx.say(tostring(a), " ", tostring(b))
        }
    }
    location = /lua-peek {
        content_by_lua_block {
            local lim = require("rampart").limit("perkey", { burst = 2 })
            local a, b = lim:incoming("k1", false)
            ngx.say(tostring(a), " ", tostring(b))
        }
    }
    location = /lua-quota {
        content_by_lua_block {
            local q = require("rampart").limit("quota")
            local a, b = q:incoming("k1", true)
            ngx.say(tostring(a), " ", tostring(b))
        }
    }
    location = /lua-quota-peek {
        content_by_lua_block {
            local q = require("rampart").limit("quota")
            local a, b = q:incoming("k1", false)
            ngx.say(tostring(a), " ", tostring(b))
        }
    }
    location = /lua-none {
        content_by_lua_block {
            ngx.say(tostring(select(2, require("rampart").limit("nothere"))))
        }
    }
"""


def test_a_limit_req_object_shares_the_zone_of_limit_req(rampart, backend, free_port):
    port = free_port()
    rampart.configure(conf(port, [backend], extra_http=LIMITS, extra_server=LIMIT_LOCATIONS),
                      workers=2)
    rampart.start()
    key = {"X-Key": "k1"}
    # asking does not take: the bucket stays empty
    assert request(port, "/lua-peek").text == "0 0\n"
    assert request(port, "/lua-peek").text == "0 0\n"
    # the script takes the first place of the bucket (rate 1r/m: nothing leaks meanwhile)
    assert request(port, "/lua").text == "0 0\n"
    # limit_req's burst of 2 has room for two more of the same key, then refuses
    assert request(port, "/limited", headers=key).status == 200
    assert request(port, "/limited", headers=key).status == 200
    assert request(port, "/limited", headers=key).status == 503
    # and the script sees the same full bucket
    assert request(port, "/lua").text == "nil rejected\n"
    assert request(port, "/lua-peek").text == "nil rejected\n"
    # another key is untouched
    assert request(port, "/limited", headers={"X-Key": "k2"}).status == 200
    assert request(port, "/lua-none").text == \
        'no limit_req_zone or limit_count_zone "nothere"\n'


def test_a_limit_count_object_shares_the_quota_of_limit_count(rampart, backend, free_port):
    port = free_port()
    rampart.configure(conf(port, [backend], extra_http=LIMITS, extra_server=LIMIT_LOCATIONS),
                      workers=2)
    rampart.start()
    assert request(port, "/lua-quota-peek").text == "0 2\n"
    assert request(port, "/lua-quota").text == "0 2\n"
    assert request(port, "/lua-quota-peek").text == "0 1\n"
    assert request(port, "/counted", headers={"X-Key": "k1"}).status == 200
    assert request(port, "/lua-quota").text == "0 0\n"
    assert request(port, "/counted", headers={"X-Key": "k1"}).status == 429
    assert request(port, "/lua-quota").text == "nil rejected\n"


def test_request_id_is_the_request_id_variable(rampart, backend, free_port):
    port = free_port()
    rampart.configure(conf(port, [backend], extra_server="""
    location = /ids {
        add_header X-Request-Id $request_id;
        add_header X-Trace $trace_id-$span_id;
        content_by_lua_block {
            local rampart = require "rampart"
            ngx.say(rampart.request_id(), " ", tostring(rampart.trace_id()), " ",
                    tostring(rampart.span_id()), " ", tostring(rampart == _G.rampart))
        }
    }"""))
    rampart.start()
    r = request(port, "/ids")
    rid, trace, span, global_ = r.text.split()
    assert len(rid) == 32 and rid == r.headers["X-Request-Id"]
    # $trace_id and $span_id (W3C trace context); and the module sets no global
    assert len(trace) == 32 and len(span) == 16 and f"{trace}-{span}" == r.headers["X-Trace"]
    assert global_ == "false"
    assert request(port, "/ids").text.split()[0] != rid
