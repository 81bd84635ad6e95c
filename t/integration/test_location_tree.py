"""The location chosen for a path is the one Debian's nginx chooses: a generated
configuration with many nested, regex, caseless-regex, "^~" and "=" locations (a fixed
seed), each answering `return 200 NAME`, is loaded by both, and a table of paths
(random ones and each location's own path with endings) must get the same NAME from
both. rampart compiles its locations into a hash, sorted prefixes and a regex
prefilter; nginx walks its own tree: both must agree on the precedence."""

import http.client
import random

import harness
import reference_nginx

WORDS = ["api", "v1", "v2", "svc1", "svc2", "svc12", "users", "items", "a", "ab", "abc",
         "x.json", "y.php", "IMG.PNG", "Api", "s"]
REGEXES = [r"^/api/v1/svc1/", r"\.json$", r"^/api/v2", r"^/a(b|c)", r"^/api/v[12]/users",
           r"^/s+/", r"^/API/", r"^/abc?", r"^/a|/users", r"\.php$",
           r"^/api/v1/svc12/items/", r"^/api/v1/svc1/users$", r"^/ab\.", r"^/a[b/]",
           r"\.(png|jpg)$", r"^/(svc1|svc2)/", r"/items/\d*$"]


def random_path(rng):
    path = "".join("/" + rng.choice(WORDS) for _ in range(rng.randint(1, 5)))
    return path + "/" if rng.random() < 0.3 else path


class Generator:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.serial = 0
        self.paths = []  # the locations' own paths, to aim requests at them

    def name(self):
        self.serial += 1
        return f"L{self.serial}"

    def level(self, parent, depth, count, in_regex=False):
        rng, lines, taken = self.rng, [], set()
        for _ in range(count):
            what = rng.random()
            if what < 0.5 and not in_regex:
                path = random_path(rng)
                uri = (parent + path)[:len(parent) + rng.randint(1, len(path))]
                mod = "^~ " if rng.random() < 0.25 else ""
                if ("p", uri) in taken:
                    continue
                taken.add(("p", uri))
                self.paths.append(uri)
                inner = (self.level(uri, depth + 1, rng.randint(1, 4))
                         if depth == 0 and rng.random() < 0.35 else "")
                lines.append(f"location {mod}{uri} {{ {inner} return 200 {self.name()}; }}")
            elif what < 0.7 and not in_regex:
                uri = parent + random_path(rng)
                if ("=", uri) in taken:
                    continue
                taken.add(("=", uri))
                self.paths.append(uri)
                lines.append(f"location = {uri} {{ return 200 {self.name()}; }}")
            else:
                re_ = rng.choice(REGEXES)
                mod = "~*" if rng.random() < 0.3 else "~"
                if (mod, re_) in taken:
                    continue
                taken.add((mod, re_))
                inner = (self.level("", depth + 1, rng.randint(1, 2), in_regex=True)
                         if depth == 0 and rng.random() < 0.2 else "")
                lines.append(f"location {mod} {re_} {{ {inner} return 200 {self.name()}; }}")
        return "\n".join(lines)


def table(gen, rng, n):
    paths = [random_path(rng) for _ in range(n)]
    for p in gen.paths:
        paths += [p, p + "x", p + "/users", p + "/x.json", p.upper()]
    return paths


def answers(port, paths):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for p in paths:
            conn.request("GET", p, headers={"Host": "t"})
            r = conn.getresponse()
            body = r.read().decode()
            # no location: both answer 404, each with its own page
            out.append(body if r.status == 200 else str(r.status))
    finally:
        conn.close()
    return out


def compare(tmp_path, seed, count, npaths):
    reference_nginx.require()
    gen = Generator(seed)
    locations = gen.level("", 0, count)
    nginx = reference_nginx.Nginx(tmp_path / "nginx")
    rampart = harness.Rampart(tmp_path / "rampart")
    paths = table(gen, random.Random(seed + 1), npaths)
    try:
        nginx.configure(f"server {{\nlisten 127.0.0.1:{harness.free_port()};\n{locations}\n}}")
        nginx.start()
        rampart.configure(text=reference_nginx.rampart_text(
            f"server {{\nlisten 127.0.0.1:{harness.free_port()};\n{locations}\n}}"))
        rampart.start()
        want = answers(nginx.port, paths)
        got = answers(rampart.port, paths)
    finally:
        rampart.stop()
        nginx.stop()
    assert len(set(want)) > count // 4, "too few locations were reached"
    differ = [(p, w, g) for p, w, g in zip(paths, want, got) if w != g]
    assert not differ, f"{len(differ)} of {len(paths)} paths differ (path, nginx, rampart):" \
                       f" {differ[:10]}"


def test_small_generated_configurations_choose_as_nginx(tmp_path):
    for seed in range(3):
        compare(tmp_path / str(seed), seed, 15, 150)


def test_large_generated_configuration_chooses_as_nginx(tmp_path):
    compare(tmp_path, 1515, 300, 600)
