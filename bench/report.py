"""The report: per load scenario its table, rampart's ratios to each peer and the
figures of every round (section), the idle scenario's memory tables (idle_section),
and the whole text with its header (report); fmt_*, ratio and load_line format the
figures and describe the load.
"""
import math
import os
import statistics
import time

from common import (BODY, CONNECTIONS, DURATION, GZIP_PATH, H2_CONNECTIONS, H2_STREAMS,
                    H2_WARMUP, H2LOAD, IDLE_CONNECTIONS, IDLE_GOALS, IDLE_KINDS, IDLE_ROUNDS,
                    IDLE_TIMEOUT, IDLE_WARMUP, IDLE_WINDOW, LC_SERVERS, LISTENERS,
                    LOAD_SCENARIOS, NOISY, OPENSSL, ROUNDS, SCENARIOS, SSL_LISTENERS,
                    TITLES, TLS_CONNECTIONS, WARMUP)
from servers import GZIP_BODY, version_of


LUA_NAMES = ("rampart-lua", "nginx-lua", "rampart-luabal", "nginx-luabal")


def fmt_ratio(x):
    return f"{x:.2f}x"


def ratio(mine, theirs):
    return fmt_ratio(mine / theirs) if mine and theirs else "?"


def fmt_ms(x):
    return "?" if x is None else f"{x:.2f}ms"


def load_line(scenario):
    if scenario == "tls":
        return (f"load: wrk -t1 -c{TLS_CONNECTIONS} -d{DURATION}s --latency"
                f" -H 'Connection: close' https://...: one request per new TLS connection,"
                f" so req/s = full TLS handshakes/s; ECDSA P-256 certificate, each server's"
                f" default TLS settings, no session resumption")
    if scenario == "h2":
        return (f"load: h2load -c{H2_CONNECTIONS} -m{H2_STREAMS} -t1 --warm-up-time={H2_WARMUP}"
                f" --duration={DURATION} https://...: HTTP/2 by ALPN, {H2_CONNECTIONS}"
                f" connections kept open, {H2_STREAMS} streams in flight on each; the tls"
                f" scenario's certificate and TLS settings")
    if scenario == "gzip":
        return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency -H 'Accept-Encoding:"
                f" gzip' http://...{GZIP_PATH}: HTTP/1.1 keep-alive, {len(GZIP_BODY)} bytes of"
                f" JSON from the backend, compressed by the proxy at gzip level 1")
    if scenario == "lc":
        return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency http://...:"
                f" HTTP/1.1 keep-alive, as plain; the proxy balances by least connections"
                f" over an upstream group of {LC_SERVERS} servers (the backend on"
                f" {LC_SERVERS} ports)")
    if scenario == "pp":
        return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency http://...: HTTP/1.1"
                f" keep-alive to one HAProxy (mode tcp, 1 thread, the same for all) that opens"
                f" a connection to the proxy per client connection and sends it a PROXY"
                f" protocol v2 header first; the proxy takes the client address from it"
                f" (rampart and nginx: listen ... proxy_protocol, set_real_ip_from,"
                f" real_ip_header proxy_protocol; HAProxy: accept-proxy; h2o: proxy-protocol)")
    return (f"load: wrk -t1 -c{CONNECTIONS} -d{DURATION}s --latency http://...:"
            f" HTTP/1.1 keep-alive")


IDLE_TITLES = {
    "plain": "plain: HTTP/1.1 keep-alive over TCP",
    "tls": "tls: HTTP/1.1 over TLS 1.3 (ALPN http/1.1), the tls scenario's listener",
    "h2": "h2: HTTP/2 over TLS 1.3 (ALPN h2), the h2 scenario's listener",
}


def fmt_bytes(x):
    return "?" if x is None else f"{x:.0f}"


def idle_median(runs, kind, key):
    values = [r[key] for r in runs if r["kind"] == kind and "error" not in r]
    return statistics.median(values) if values else None


def idle_section(cs):
    """The idle scenario's tables: per kind, each contender's memory per idle
    connection, rampart's ratio to each and rampart's goal."""
    lines = []
    add = lines.append
    add(f"== {TITLES['idle']}")
    add(f"method: per contender and kind, a fresh start; {IDLE_WARMUP} connections opened,"
        f" one request")
    add(f"each, and closed (warm-up); {IDLE_WARMUP} more opened and kept (they reuse what the"
        f" closed ones")
    add(f"freed); the worker's memory read; {IDLE_CONNECTIONS} more opened ({IDLE_WINDOW} at a"
        f" time), each through")
    add("one GET / (a 200 with the backend's body, checked), then all held open and idle; the")
    add(f"memory read again. Figures: (after - before) / {IDLE_CONNECTIONS}, in bytes, from the"
        f" worker's")
    add(f"/proc/PID/smaps_rollup; keep-alive timeout {IDLE_TIMEOUT}s for all; {IDLE_ROUNDS}"
        f" round(s), medians.")
    for kind in IDLE_KINDS:
        add("")
        add(f"-- {IDLE_TITLES[kind]}")
        head = (f"{'contender':10} {'RSS B/conn':>11} {'Private_Dirty':>14} {'Pss B/conn':>11}"
                f"  {'rounds':<20}")
        add(head.rstrip())
        add("-" * len(head))
        figures = {}
        for c in cs:
            t = c.tracks["idle"]
            runs = [r for r in t.runs if r["kind"] == kind]
            failed = [r for r in runs if "error" in r]
            if t.status != "ok" or kind in c.down:
                add(f"{c.name:10} {c.down.get(kind) or t.status}")
                continue
            if not runs:
                add(f"{c.name:10} no rounds ran")
                continue
            if len(failed) == len(runs):
                add(f"{c.name:10} !! failed: {failed[-1]['error']}")
                continue
            rss, pd, pss = (idle_median(runs, kind, k) for k in ("rss", "private_dirty", "pss"))
            figures[c.name] = (rss, pd)
            note = f"{len(runs) - len(failed)}/{len(runs)} ok"
            if failed:
                note += f"; !! failed: {failed[-1]['error']}"
            add(f"{c.name:10} {fmt_bytes(rss):>11} {fmt_bytes(pd):>14} {fmt_bytes(pss):>11}"
                f"  {note}")
        add("")
        ramp = figures.get("rampart")
        peers = [(name, f) for name, f in figures.items() if name != "rampart"]
        if ramp is None:
            add("rampart ratios: n/a (rampart has no figure)")
        elif not peers:
            add("rampart ratios: n/a (no peer has a figure)")
        else:
            add(f"{'rampart vs':14} {'RSS ratio':>10} {'Private_Dirty ratio':>20}")
            for name, (rss, pd) in peers:
                add(f"  {name:12} {ratio(ramp[0], rss if rss and rss > 0 else None):>10}"
                    f" {ratio(ramp[1], pd if pd and pd > 0 else None):>20}")
        goal = IDLE_GOALS.get(kind)
        if ramp is None:
            pass
        elif goal is None:
            add("goal: none set for HTTP/2 idle connections (the issue's: 1024 B plain,"
                " 4096 B TLS).")
        else:
            met = "met" if ramp[0] <= goal else "NOT MET"
            add(f"goal: rampart at most {goal} B of RSS per idle connection: {met}"
                f" ({fmt_bytes(ramp[0])} B; Private_Dirty {fmt_bytes(ramp[1])} B).")
    add("")
    add("ratio = rampart/peer, below 1 means rampart holds an idle connection in less memory.")
    add("per round (RSS / Private_Dirty / Pss in bytes per connection, seconds to open them all):")
    for c in cs:
        for kind in IDLE_KINDS:
            runs = [r for r in c.tracks["idle"].runs if r["kind"] == kind]
            if runs:
                shown = ["failed" if "error" in r else
                         f"{r['rss']:.0f}/{r['private_dirty']:.0f}/{r['pss']:.0f}"
                         f"/{r['seconds']:.1f}s" for r in runs]
                add(f"  {c.name:8} {kind:5} {'  '.join(shown)}")
    return lines


def section(cs, scenario):
    """The table, ratios and rounds of one scenario."""
    lines = []
    add = lines.append
    h2 = scenario == "h2"
    client = "h2load" if h2 else "wrk"
    tracks = [(c, c.tracks[scenario]) for c in cs]
    ok = [(c, t) for c, t in tracks if t.status == "ok" and t.valid()]
    add(f"== {TITLES[scenario]}")
    add(load_line(scenario))
    add("")
    gz = scenario == "gzip"
    lc = scenario == "lc"
    head = (f"{'contender':10} {'req/s':>10} {'spread':>7}" + (f" {'mean':>9}" if h2 else "")
            + f" {'p99':>9} {'cpu/req':>8} {'conn/req':>8}" + (f" {'B/resp':>7}" if gz else "")
            + (f" {'conns/server':>15}" if lc else "") + f"  {'errors':<24}")
    add(head.rstrip())
    add("-" * len(head))
    for c, t in tracks:
        if t.status != "ok" or not t.valid():
            if t.status != "ok":
                add(f"{c.name:10} {t.status}")
            elif t.runs:
                add(f"{c.name:10} !! no valid round: requests failed in all {len(t.runs)}"
                    f" ({', '.join(f'{k} {n}' for k, n in sorted(t.errors().items()))})")
            else:
                add(f"{c.name:10} no rounds ran")
            continue
        errs = t.errors()
        err_text = "none" if not errs else \
            "!! " + ", ".join(f"{k} {n}" for k, n in sorted(errs.items()))
        if t.invalid():
            err_text += f"; {t.invalid()}/{len(t.runs)} round(s) invalid, left out"
        cpr = t.conns_per_request()
        cpr_text = "?" if cpr is None else f"{cpr:.2f}"
        cpu = t.cpu_per_request()
        cpu_text = "?" if cpu is None else f"{cpu:.0f}us"
        mean_text = f" {fmt_ms(t.mean()):>9}" if h2 else ""
        size = t.median("bytes_per_response") if gz else None
        size_text = (f" {'?' if size is None else f'{size:.0f}':>7}") if gz else ""
        per_server = t.valid()[-1].get("per_server") if lc else None
        servers_text = f" {'/'.join(map(str, per_server)) if per_server else '?':>15}" if lc else ""
        add(f"{c.name:10} {t.rps():>10.0f} {t.spread() * 100:>6.1f}%{mean_text}"
            f" {fmt_ms(t.p99()):>9} {cpu_text:>8} {cpr_text:>8}{size_text}{servers_text}"
            f"  {err_text}")
    add("")
    if h2:
        add("req/s, mean and p99 are medians over the valid rounds; mean is h2load's mean")
        add("time for request; p99 is the 99th percentile of the request times h2load logs")
        add("(--log-file); spread is (max-min)/median of req/s;")
        add("a round in which any request failed (failed, errored, timeout, non-2xx) is invalid")
        add("and left out of every figure but errors;")
    else:
        add("req/s and p99 are medians over the rounds; spread is (max-min)/median of req/s;")
    add("cpu/req = CPU time (user+system) of the proxy's processes during load / requests;")
    add(f"conn/req = TCP connections the machine accepted during load / requests {client} completed")
    add("(/proc/net/snmp PassiveOpens; the backend's new upstream connections count too).")
    if h2:
        add(f"cpu/req and conn/req cover h2load's measured {DURATION}s only, read when h2load")
        add("announces its start and end; the warm-up and the TLS handshakes are outside it.")
    if gz:
        add("B/resp = wrk's bytes read / responses (headers included), median: the responses")
        add(f"stayed compressed under load (uncompressed, the body alone is {len(GZIP_BODY)}"
            " bytes).")
    if lc:
        add(f"conns/server = the proxy's connections to each of the {LC_SERVERS} servers of its")
        add("group when wrk had finished, last round: every server carried part of the load.")
    negotiated = [f"{c.name:8} {t.detail}" for c, t in tracks if t.status == "ok" and t.detail]
    if gz:
        if negotiated:
            add("gzip checked before load (Accept-Encoding: gzip; the body must decompress to the")
            add("backend's bytes):")
            for text in negotiated:
                add(f"  {text}")
        add("The same compressor settings for all: zlib level 1, 32 KB window, memLevel 8")
        add("(nginx: gzip_comp_level 1 and its defaults; h2o: compress: {gzip: 1}).")
    if lc:
        if negotiated:
            add("Balancing checked before load (one GET after another, none in flight: the tied")
            add("servers are taken in turn, so every server gets a connection):")
            for text in negotiated:
                add(f"  {text}")
        add("The same balancing for all: the fewest requests in flight wins, ties in turn")
        add("(rampart least_conn, counts shared by workers; nginx least_conn with a zone, so")
        add("shared too; HAProxy balance leastconn); the plain scenario's upstream keep-alive.")
    if scenario == "tls":
        if negotiated:
            add("TLS checked before load (second connection offered the first's session):")
            for text in negotiated:
                add(f"  {text}")
        bad = [c.name for c, t in ok
               if t.conns_per_request() is not None and t.conns_per_request() < 0.95]
        if bad:
            add(f"!! fewer than one new connection per request for: {', '.join(bad)}"
                " — wrk reused connections; the TLS figures are not handshakes/s.")
        add("wrk (one thread) does the client half of every handshake, which costs more than")
        add("the server half: on a small machine wrk saturates before the proxy, so req/s here")
        add("may be wrk's limit; cpu/req, the proxy's own cost per handshake, compares regardless.")
    if h2:
        if negotiated:
            add("HTTP/2 checked before load (ALPN offered h2,http/1.1; one GET with nghttp), and")
            add("every h2load run must report 'Application protocol: h2':")
            for text in negotiated:
                add(f"  {text}")
        not_h2 = [c.name for c, t in tracks if "not h2" in t.status or "not negotiate h2" in t.status]
        if not_h2:
            add(f"!! did NOT negotiate h2: {', '.join(not_h2)} — no HTTP/2 figures for them.")
        add("h2load, the proxy and the backend share this machine's cores: on 2 cores the")
        add("per-round CPU figures below show who took how much.")

    ramp = next((t for c, t in ok if c.name == "rampart"), None)
    peers = [(c, t) for c, t in ok if c.name != "rampart"]
    add("")
    if ramp is None:
        why = next((t.status.split(":")[0] if t.status != "ok" else "had no valid round"
                    for c, t in tracks if c.name == "rampart"), "not run")
        add(f"rampart ratios: n/a (rampart {why})")
    elif not peers:
        add("rampart ratios: n/a (no peer ran)")
    else:
        add(f"{'rampart vs':14} {'req/s ratio':>12}" + (f" {'mean ratio':>11}" if h2 else "")
            + f" {'p99 ratio':>10} {'cpu/req ratio':>14}")
        for c, t in peers:
            suspect = "  !! errors, not comparable" if ramp.errors() or t.errors() else ""
            mean_text = f" {ratio(ramp.mean(), t.mean()):>11}" if h2 else ""
            add(f"  {c.name:12} {ratio(ramp.rps(), t.rps()):>12}{mean_text}"
                f" {ratio(ramp.p99(), t.p99()):>10}"
                f" {ratio(ramp.cpu_per_request(), t.cpu_per_request()):>14}{suspect}")
        add("req/s ratio = rampart/peer, above 1 means rampart serves more;")
        if h2:
            add("mean ratio = rampart/peer, below 1 means rampart's mean latency is lower (with a")
            add(f"fixed {H2_CONNECTIONS * H2_STREAMS} requests in flight it mirrors the req/s ratio);")
        add("p99 ratio = rampart/peer, below 1 means rampart's tail latency is lower;")
        add("cpu/req ratio = rampart/peer, below 1 means rampart spends less CPU per request.")
        if any(c.name == "rampart-hc" for c, t in peers):
            add("rampart-hc is this rampart with `health_check interval=1s uri=/` and")
            add("`outlier_detection consecutive_5xx=5 interval=10s base_ejection_time=30s` in")
            add("every upstream block: its ratios are what they cost (1.00x: nothing), to be")
            add("read against the spread; its conn/req counts the checks' connections too.")
        lim = {c.name: t for c, t in ok if c.name in ("rampart-lim", "rampart-sync", "nginx-lim")}
        if lim:
            add("rampart-lim is this rampart with one limit_req (rate=1000000r/s burst=100000")
            add("nodelay) and one limit_conn (60000) per request, keyed by the client's address;")
            add("rampart-sync the same with the limit_req zone shared through redis (`sync`);")
            add("nginx-lim is nginx with the same two limits. rampart's ratio to rampart-lim and")
            add("rampart-sync is what the limits cost it (goal: under 5%, a req/s ratio at most")
            add("1.05x); the line below sets rampart and nginx side by side with the same limits.")
        if "rampart-lim" in lim and "nginx-lim" in lim:
            a, b = lim["rampart-lim"], lim["nginx-lim"]
            add(f"  {'rampart-lim vs nginx-lim':26} req/s {ratio(a.rps(), b.rps())}"
                f"  p99 {ratio(a.p99(), b.p99())}"
                f"  cpu/req {ratio(a.cpu_per_request(), b.cpu_per_request())}")
        lua = {c.name: t for c, t in ok if c.name in LUA_NAMES}
        if lua:
            add("rampart-lua is this rampart with a trivial access_by_lua_block on every request")
            add("(`if ngx.var.http_x_deny then return ngx.exit(403) end`), nginx-lua the same")
            add("under Debian's nginx with its lua module (OpenResty's); rampart-luabal and")
            add("nginx-luabal pick the server in a balancer_by_lua_block instead of the built-in")
            add("balancer. Goals: rampart/rampart-lua at most 1.10x (the hook costs under 10%),")
            add("rampart-lua and rampart-luabal at least as fast as their nginx twins:")
        for mine, theirs in (("rampart-lua", "nginx-lua"), ("rampart-luabal", "nginx-luabal")):
            if mine in lua and theirs in lua:
                a, b = lua[mine], lua[theirs]
                add(f"  {mine + ' vs ' + theirs:26} req/s {ratio(a.rps(), b.rps())}"
                    f"  p99 {ratio(a.p99(), b.p99())}"
                    f"  cpu/req {ratio(a.cpu_per_request(), b.cpu_per_request())}")
        if "rampart-lua" in lua:
            a = lua["rampart-lua"]
            add(f"  {'rampart-lua vs rampart':26} req/s {ratio(a.rps(), ramp.rps())}"
                f"  cpu/req {ratio(a.cpu_per_request(), ramp.cpu_per_request())}")
    noisy = [c.name for c, t in ok if t.spread() > NOISY]
    if noisy:
        add("")
        add(f"!! req/s spread above {NOISY:.0%} for: {', '.join(noisy)} — the machine was busy;"
            " rerun with more rounds before trusting a ratio near 1.")
    flagged = [c.name for c, t in tracks if t.status == "ok" and t.errors()]
    if flagged:
        add("")
        add(f"!! errors during load from: {', '.join(flagged)} — their numbers are not"
            " comparable until that is fixed.")
    add("")
    add(f"per round (req/s / {'mean / ' if h2 else ''}p99 / CPU use in % of one core: the"
        f" proxy's, the backend's, {client}'s):")
    for c, t in tracks:
        if not t.runs:
            continue
        shown = []
        for r in t.runs:
            mean_text = f"{fmt_ms(r.get('mean_ms'))}/" if h2 else ""
            p99 = None if math.isnan(r["p99_ms"]) else r["p99_ms"]
            text = (f"{r['rps']:.0f}/{mean_text}{fmt_ms(p99)}/{r['cpu_s'] * 100 / DURATION:.0f}%"
                    f"/{r['backend_cpu'] * 100:.0f}%/{r['client_cpu'] * 100:.0f}%")
            if not r.get("valid", True):
                text += "[INVALID: " + ", ".join(f"{k} {n}" for k, n in sorted(r["errors"].items())) + "]"
            shown.append(text)
        add(f"  {c.name:8} {'  '.join(shown)}")
    return lines


def report(cs, started_at, load_at_start):
    lines = []
    add = lines.append
    add("rampart bench — reverse proxy, one worker each, HTTP/1.1 upstream keep-alive")
    add(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(started_at))}"
        f"   host: {os.uname().nodename} ({os.uname().sysname} {os.uname().release}),"
        f" {os.cpu_count()} cpus, load avg at start {load_at_start:.2f}")
    loaded = [s for s in SCENARIOS if s in LOAD_SCENARIOS]
    if loaded:
        add(f"scenarios: {', '.join(SCENARIOS)}; {ROUNDS} round(s) in rotating order, each"
            f" running every load scenario for every contender; {WARMUP}s warm-up per contender"
            f" and scenario; backend: nginx, 1 worker, return 200 ({len(BODY)}-byte body)")
    if "idle" in SCENARIOS:
        add(f"idle: {IDLE_ROUNDS} round(s) after the load rounds, each contender restarted for"
            f" every measurement, {IDLE_CONNECTIONS} connections per measurement")
    add("")
    for c in cs:
        add(f"  {c.name:8} {c.version or '-'}")
    if set(LISTENERS) & set(SSL_LISTENERS):
        add(f"  {'openssl':8} {version_of([OPENSSL, 'version'])} (the system's; wrk uses it)")
    if "h2" in SCENARIOS:
        add(f"  {'h2load':8} {version_of([H2LOAD, '--version'])}")
    for scenario in SCENARIOS:
        add("")
        lines += idle_section(cs) if scenario == "idle" else section(cs, scenario)
    add("")
    add("Read the ratios, not the absolute numbers: the load generator, the proxy and the")
    add("backend share this machine's cores, so only figures from one run, measured side by")
    add("side, compare.")
    return "\n".join(lines) + "\n"
