#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind: a figure the
# machine's noise does not disturb (the same binary and inputs give the same count),
# beside bench.py's req/s. For each contender it counts a run of N1 and of N2
# requests (h2load, HTTP/1.1, 4 connections, keep-alive to one nginx backend) and
# prints (Ir(N2) - Ir(N1)) / (N2 - N1): what one more request costs, without start-up.
#
# Contenders: rampart and nginx, each plain, with a trivial access_by_lua_block
# (-lua), and with a balancer_by_lua_block choosing the server (-luabal); nginx's
# Lua ones need Debian's libnginx-mod-http-lua. rampart-metrics is rampart plain with
# metrics enabled (a `metrics` location, and a metrics_name on the proxied one): the
# cost of counting (issue 14's goal: under 2% over plain).
#
# The -unbuffered variant turns proxy_buffering and proxy_request_buffering off (both
# are on by default, as in nginx): what buffering costs a small response; BODY=FILE
# makes every request a POST of that file's bytes (h2load -d).
#
# usage: bench/instructions.sh [N1 N2]   (default 1000 3000; takes a few minutes)
#   KINDS="rampart" VARIANTS="plain metrics" bench/instructions.sh   runs a subset
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rampart=${RAMPART_BIN:-$here/../rampart}
n1=${1:-1000}
n2=${2:-3000}
tmp=$(mktemp -d)
trap 'kill "$backend" 2>/dev/null || true; rm -rf "$tmp"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
bport=$(port)
pport=$(port)
mkdir -p "$tmp/logs"
cat > "$tmp/backend.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $tmp/backend.pid; error_log $tmp/backend.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $tmp/b1; proxy_temp_path $tmp/b2;
fastcgi_temp_path $tmp/b3; uwsgi_temp_path $tmp/b4; scgi_temp_path $tmp/b5;
server { listen 127.0.0.1:$bport; location / { return 200 "hello\n"; } } }
CONF
/usr/sbin/nginx -p "$tmp" -c "$tmp/backend.conf" -e "$tmp/backend.err" &
backend=$!

write_conf() { # kind variant file
    local kind=$1 v=$2 out=$3 lua="" bal="" head="" extra="" temps="" mloc=""
    [ "$v" = lua ] && lua='access_by_lua_block { if ngx.var.http_x_deny then return ngx.exit(403) end }'
    [ "$v" = metrics ] && { lua="metrics_name api;"; mloc="location = /metrics { metrics; }"; }
    [ "$v" = unbuffered ] && lua="proxy_buffering off; proxy_request_buffering off;"
    [ "$v" = luabal ] && bal="balancer_by_lua_block { require(\"ngx.balancer\").set_current_peer(\"127.0.0.1\", $bport) }"
    if [ "$kind" = nginx ]; then
        head="load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
        [ "$v" = plain ] && head=""
        extra="proxy_http_version 1.1; proxy_set_header Connection \"\";"
        temps="client_body_temp_path $tmp/t1; proxy_temp_path $tmp/t2; fastcgi_temp_path $tmp/t3;
uwsgi_temp_path $tmp/t4; scgi_temp_path $tmp/t5;"
    fi
    cat > "$out" <<CONF
$head
worker_processes 1; master_process off; daemon off; pid $tmp/logs/p.pid; error_log $tmp/$kind-$v.err warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000000; $temps
upstream backend { server 127.0.0.1:$bport; keepalive 64; $bal }
server { listen 127.0.0.1:$pport; location / { $lua proxy_pass http://backend; $extra } $mloc } }
CONF
}

count() { # n argv... -> total instructions
    local n=$1; shift
    local out=$tmp/cg.out
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1 &
    local vp=$!
    for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$pport/" && break; sleep 0.2; done
    h2load --h1 -n "$n" -c 4 ${BODY:+-d "$BODY"} "http://127.0.0.1:$pport/" >/dev/null 2>&1
    kill -QUIT "$(cat "$tmp/logs/p.pid")"
    wait "$vp" || true
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
    rm -f "$out"
}

printf '%-16s %12s\n' contender "instr/req"
for kind in ${KINDS:-rampart nginx}; do
    for v in ${VARIANTS:-plain lua luabal metrics}; do
        [ "$kind" = nginx ] && [ "$v" = metrics ] && continue
        conf=$tmp/$kind-$v.conf
        write_conf "$kind" "$v" "$conf"
        if [ "$kind" = rampart ]; then
            argv=("$rampart" -p "$tmp" -c "$conf")
        else
            [ "$v" != plain ] && [ ! -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] && continue
            argv=(/usr/sbin/nginx -p "$tmp" -c "$conf" -e "$tmp/$kind-$v.err")
        fi
        a=$(count "$n1" "${argv[@]}")
        b=$(count "$n2" "${argv[@]}")
        name=$kind; [ "$v" != plain ] && name=$kind-$v
        printf '%-16s %12d\n' "$name" $(( (b - a) / (n2 - n1) ))
    done
done
