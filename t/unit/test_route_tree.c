/*
 * The compiled location lookup (route.c: hashed exact names, binary-searched
 * prefixes, regexes prefiltered by their literal start) against the plain linear
 * search it replaced: on generated location sets (nested, "^~", "=", regexes with
 * and without a literal start, caseless ones), with a fixed seed, both must choose
 * the same location for every path tried. The literal start read from patterns, on
 * which the regex prefilter's correctness rests; hashed server names against the
 * linear search; and the search with request matchers (a fake check refusing by
 * line): a refused location is as if its path had not matched.
 */
#include "http/variables.h"
#include "route/route.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>

static uint64_t seed;

static unsigned rnd(unsigned n)
{
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((seed >> 33) % n);
}

static const char *words[] = {"api", "v1", "v2",  "svc1",   "svc2",  "svc12",   "users", "items",
                              "a",   "ab", "abc", "x.json", "y.php", "IMG.PNG", "Api",   "s"};

/* A random path of 1 to 5 segments, sometimes ending with "/". */
static void random_path(char *out, size_t cap)
{
    size_t n = 0;
    unsigned segs = 1 + rnd(5);
    for (unsigned i = 0; i < segs; i++)
        n += (size_t)snprintf(out + n, cap - n, "/%s", words[rnd(sizeof(words) / sizeof(*words))]);
    if (rnd(3) == 0)
        snprintf(out + n, cap - n, "/");
}

/* ---- the reference: the linear search the tree replaced ---- */

enum { NONE, PREFIX, FINAL };

static int linear(rp_http_core_loc_conf_t *parent, const char *path, size_t len,
                  rp_http_core_loc_conf_t **out)
{
    rp_http_core_loc_conf_t **v = parent->exact.elts;
    for (size_t i = 0; i < parent->exact.nelts; i++) {
        if (v[i]->name_len == len && memcmp(v[i]->name, path, len) == 0) {
            *out = v[i];
            return FINAL;
        }
    }
    int rc = NONE, noregex = 0;
    rp_http_core_loc_conf_t *best = NULL;
    v = parent->prefix.elts;
    for (size_t i = 0; i < parent->prefix.nelts; i++)
        if (v[i]->name_len <= len && memcmp(v[i]->name, path, v[i]->name_len) == 0 &&
            (best == NULL || v[i]->name_len > best->name_len))
            best = v[i];
    if (best) {
        *out = best;
        noregex = best->kind == RP_LOC_PREFIX_NOREGEX;
        if (linear(best, path, len, out) == FINAL)
            return FINAL;
        rc = PREFIX;
    }
    if (!noregex) {
        v = parent->regex.elts;
        for (size_t i = 0; i < parent->regex.nelts; i++) {
            if (rp_regex_match(v[i]->re->re, path, len)) {
                *out = v[i];
                linear(v[i], path, len, out);
                return FINAL;
            }
        }
    }
    return rc;
}

/* ---- generated configurations ---- */

typedef struct {
    char *text;
    size_t len, cap;
    char names[4096][64]; /* level-unique names: "K name" per level, crude but enough */
    size_t nnames;
} gen_t;

static void put(gen_t *g, const char *fmt, const char *a, const char *b)
{
    size_t need = strlen(fmt) + strlen(a) + strlen(b) + 16;
    if (g->len + need > g->cap) {
        g->cap = (g->cap + need) * 2;
        g->text = realloc(g->text, g->cap);
    }
    g->len += (size_t)snprintf(g->text + g->len, g->cap - g->len, fmt, a, b);
}

static int taken(gen_t *g, int level, const char *kind, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%d%s%s", level, kind[0] == '^' ? "" : kind, name);
    for (size_t i = 0; i < g->nnames; i++)
        if (strcmp(g->names[i], key) == 0)
            return 1;
    if (g->nnames < 4096)
        snprintf(g->names[g->nnames++], 64, "%s", key);
    return 0;
}

static const char *regexes[] = {"^/api/v1/svc1/",
                                "\\.json$",
                                "^/api/v2",
                                "^/a(b|c)",
                                "^/api/v[12]/users",
                                "^/s+/",
                                "^/API/",
                                "^/abc?",
                                "^/a|/users",
                                "\\.php$",
                                "^/api/v1/svc12/items/",
                                "^/(?i)x",
                                "^/api/v1/svc1/users$",
                                "^/ab\\.",
                                "^/a[b/]"};

/* Adds n locations under a prefix (parent_name, "" for the server), level 1 or 2. */
static void gen_level(gen_t *g, const char *parent_name, int level, int n, int *serial)
{
    for (int i = 0; i < n; i++) {
        char path[256], name[300];
        unsigned what = rnd(10);
        random_path(path, sizeof(path));
        if (what < 5) { /* prefix, cut anywhere, inside the parent */
            size_t cut = 1 + rnd((unsigned)strlen(path));
            path[cut] = '\0';
            snprintf(name, sizeof(name), "%s%s", parent_name, path);
            const char *mod = rnd(4) == 0 ? "^~ " : "";
            if (taken(g, level, "p", name))
                continue;
            (*serial)++;
            put(g, "location %s%s {\n", mod, name);
            if (level == 1 && rnd(3) == 0)
                gen_level(g, name, 2, 1 + (int)rnd(4), serial);
            put(g, "}\n", "", "");
        } else if (what < 7) {
            snprintf(name, sizeof(name), "%s%s", parent_name, path);
            if (taken(g, level, "=", name))
                continue;
            put(g, "location = %s {}\n", name, "");
        } else {
            const char *re = regexes[rnd(sizeof(regexes) / sizeof(*regexes))];
            const char *mod = rnd(3) == 0 ? "~*" : "~";
            if (taken(g, level, mod, re))
                continue;
            put(g, "location %s \"%s\" {\n", mod, re);
            if (level == 1 && rnd(4) == 0)
                put(g, "location ~ \\.json$ {}\nlocation /api/v1/ {}\n", "", "");
            put(g, "}\n", "", "");
        }
    }
}

static void compare_on_generated(unsigned locations, unsigned paths)
{
    gen_t *g = calloc(1, sizeof(*g));
    int serial = 0;
    put(g, "http {\nserver {\nlisten 127.0.0.1:8080;\n", "", "");
    gen_level(g, "", 1, (int)locations, &serial);
    put(g, "}\n}\n", "", "");
    rp_cycle_t *cycle = ut_load_ok(g->text);
    rp_http_core_loc_conf_t *root = ut_srv_loc(ut_server(cycle, 0));
    for (unsigned i = 0; i < paths; i++) {
        char path[256];
        random_path(path, sizeof(path));
        size_t len = strlen(path);
        rp_http_core_loc_conf_t *want = root;
        linear(root, path, len, &want);
        rp_http_core_loc_conf_t *got = rp_route_location(root, path, len);
        ck_assert_msg(got == want, "path %s: tree chose \"%s\" (line %u), linear \"%s\" (line %u)",
                      path, got->name, got->line, want->name, want->line);
    }
    rp_cycle_destroy(cycle);
    free(g->text);
    free(g);
}

START_TEST(test_tree_and_linear_search_choose_the_same_location_small_sets)
{
    seed = 15;
    for (int round = 0; round < 40; round++)
        compare_on_generated(12, 400);
}
END_TEST

START_TEST(test_tree_and_linear_search_choose_the_same_location_large_sets)
{
    seed = 1515;
    for (int round = 0; round < 4; round++)
        compare_on_generated(600, 4000);
}
END_TEST

static const char *lit(const char *pattern, int caseless)
{
    static char out[256];
    size_t n = rp_regex_literal_prefix(pattern, caseless, out);
    out[n] = '\0';
    return out;
}

START_TEST(test_literal_start_of_anchored_patterns)
{
    ck_assert_str_eq(lit("^/api/v1/users/", 0), "/api/v1/users/");
    ck_assert_str_eq(lit("^/api/v1/users/(\\d+)$", 0), "/api/v1/users/");
    ck_assert_str_eq(lit("^/a\\.b", 0), "/a.b");
    ck_assert_str_eq(lit("^/API/x", 1), "/api/x");
    ck_assert_str_eq(lit("^/API/x", 0), "/API/x");
}
END_TEST

START_TEST(test_literal_start_stops_before_optional_or_repeated_bytes)
{
    ck_assert_str_eq(lit("^/abc?", 0), "/ab");
    ck_assert_str_eq(lit("^/abc*", 0), "/ab");
    ck_assert_str_eq(lit("^/abc{0,2}", 0), "/ab");
    ck_assert_str_eq(lit("^/abc+", 0), "/abc");
    ck_assert_str_eq(lit("^/a[bc]", 0), "/a");
    ck_assert_str_eq(lit("^/a.c", 0), "/a");
    ck_assert_str_eq(lit("^/a\\d", 0), "/a");
}
END_TEST

START_TEST(test_no_literal_start_without_an_anchor_or_with_a_top_alternative)
{
    ck_assert_str_eq(lit("/api/", 0), "");
    ck_assert_str_eq(lit("\\.php$", 0), "");
    ck_assert_str_eq(lit("^/a|/b", 0), "");
    ck_assert_str_eq(lit("^/a[|]b", 0), "/a");
    ck_assert_str_eq(lit("^/a(b|c)", 0), "/a");
    ck_assert_str_eq(lit("^(?i)/a", 0), "");
    ck_assert_str_eq(lit("^\\Q/a|b\\E", 0), "");
}
END_TEST

/* ---- server names: the hash against the linear search ---- */

static const char *labels[] = {"www", "api", "example", "com", "org", "a", "b", "test", "x"};

static void random_host(char *out, size_t cap)
{
    size_t n = 0;
    unsigned k = 1 + rnd(4);
    for (unsigned i = 0; i < k; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "." : "",
                              labels[rnd(sizeof(labels) / sizeof(*labels))]);
}

START_TEST(test_hashed_and_linear_server_names_choose_the_same_server)
{
    seed = 2026;
    gen_t *g = calloc(1, sizeof(*g));
    put(g, "http {\n", "", "");
    for (int s = 0; s < 60; s++) {
        put(g, "server {\nlisten 127.0.0.1:8080;\nserver_name", "", "");
        for (unsigned k = 0, n = 1 + rnd(4); k < n; k++) {
            char h[128], name[160];
            random_host(h, sizeof(h));
            switch (rnd(5)) {
            case 0:
                snprintf(name, sizeof(name), "*.%s", h);
                break;
            case 1:
                snprintf(name, sizeof(name), "%s.*", h);
                break;
            case 2:
                snprintf(name, sizeof(name), ".%s", h);
                break;
            case 3:
                snprintf(name, sizeof(name), "~^%s", labels[rnd(9)]);
                break;
            default:
                snprintf(name, sizeof(name), "%s", h);
            }
            put(g, " %s%s", name, "");
        }
        put(g, ";\n}\n", "", "");
    }
    put(g, "}\n", "", "");
    rp_cycle_t *cycle = ut_load_ok(g->text);
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cycle);
    rp_http_addr_t *addr = RP_ARRAY_AT(&cmcf->addrs, rp_http_addr_t *, 0);
    ck_assert_ptr_nonnull(addr->index);
    rp_http_addr_t linear_addr = *addr;
    linear_addr.index = NULL;
    for (int i = 0; i < 20000; i++) {
        char h[128];
        random_host(h, sizeof(h));
        size_t len = rnd(50) == 0 ? 0 : strlen(h);
        ck_assert_msg(rp_route_server(addr, h, len) == rp_route_server(&linear_addr, h, len),
                      "host %.*s", (int)len, h);
    }
    rp_cycle_destroy(cycle);
    free(g->text);
    free(g);
}
END_TEST


/* ---- matchers: a refused location is as if its path had not matched ---- */

static unsigned refused_lines[16];
static unsigned method_lines[16];

static int in(const unsigned *set, unsigned line)
{
    for (int i = 0; i < 16 && set[i]; i++)
        if (set[i] == line)
            return 1;
    return 0;
}

/* refuses by line number: refused_lines for a header, method_lines for the method */
static int fake_check(void *arg, const rp_http_core_loc_conf_t *loc, int ignore_method)
{
    (void)arg;
    if (in(refused_lines, loc->line))
        return RP_ROUTE_REFUSE;
    if (!ignore_method && in(method_lines, loc->line))
        return RP_ROUTE_REFUSE_METHOD;
    return RP_ROUTE_ACCEPT;
}

static const char *variants_conf = "http {\n"
                                   "server {\n"
                                   "listen 127.0.0.1:8080;\n"
                                   "location /a/ { match_method GET; }\n"      /* 4 */
                                   "location /a/ { match_method POST; }\n"     /* 5 */
                                   "location /a/b/ { match_header X; }\n"      /* 6 */
                                   "location ^~ /a/b/ { match_arg y; }\n"      /* 7 */
                                   "location = /a/b/c { match_method PUT; }\n" /* 8 */
                                   "location ~ ^/a/ { match_header Z; }\n"     /* 9 */
                                   "location ~ ^/a/ { match_arg z; }\n"        /* 10 */
                                   "}\n"
                                   "}\n";

static unsigned chosen_line(rp_cycle_t *cycle, const char *path, int *method_refused)
{
    rp_route_match_t m = {fake_check, NULL, 0, 0};
    rp_http_core_loc_conf_t *root = ut_srv_loc(ut_server(cycle, 0));
    rp_http_core_loc_conf_t *l = rp_route_location_match(root, path, strlen(path), &m);
    if (method_refused)
        *method_refused = m.method_refused;
    return l == root ? 0 : l->line;
}

static void refuse(const unsigned *header, const unsigned *method)
{
    memset(refused_lines, 0, sizeof(refused_lines));
    memset(method_lines, 0, sizeof(method_lines));
    for (int i = 0; header && header[i]; i++)
        refused_lines[i] = header[i];
    for (int i = 0; method && method[i]; i++)
        method_lines[i] = method[i];
}

START_TEST(test_refused_locations_fall_through_in_precedence_order)
{
    rp_cycle_t *cycle = ut_load_ok(variants_conf);
    int mr = 0;
    /* everything accepts: the exact wins, then the regex beats the prefix */
    refuse(NULL, NULL);
    ck_assert_uint_eq(chosen_line(cycle, "/a/b/c", NULL), 8);
    ck_assert_uint_eq(chosen_line(cycle, "/a/x", NULL), 9);
    /* the exact refused: the ^~ variant of /a/b/ (the second of its path) stops regexes */
    refuse((unsigned[]){8, 6, 0}, NULL);
    ck_assert_uint_eq(chosen_line(cycle, "/a/b/c", NULL), 7);
    /* both /a/b/ variants refused: the next shorter prefix, then the regexes in order */
    refuse((unsigned[]){6, 7, 9, 0}, NULL);
    ck_assert_uint_eq(chosen_line(cycle, "/a/b/x", NULL), 10);
    refuse((unsigned[]){6, 7, 9, 10, 0}, NULL);
    ck_assert_uint_eq(chosen_line(cycle, "/a/b/x", NULL), 4);
    /* the first /a/ variant refused for its method: the second, and the flag is set */
    refuse((unsigned[]){9, 10, 0}, (unsigned[]){4, 0});
    ck_assert_uint_eq(chosen_line(cycle, "/a/x", &mr), 5);
    ck_assert_int_eq(mr, 1);
    /* every location of the path refused: the server's own */
    refuse((unsigned[]){5, 9, 10, 0}, (unsigned[]){4, 0});
    ck_assert_uint_eq(chosen_line(cycle, "/a/x", &mr), 0);
    ck_assert_int_eq(mr, 1);
    rp_cycle_destroy(cycle);
}
END_TEST

START_TEST(test_variants_are_linked_in_configuration_order)
{
    rp_cycle_t *cycle = ut_load_ok(variants_conf);
    rp_http_core_loc_conf_t *root = ut_srv_loc(ut_server(cycle, 0));
    rp_http_core_loc_conf_t **p = root->prefix.elts;
    ck_assert_uint_eq(p[0]->line, 4);
    ck_assert_ptr_eq(p[0]->next_variant, p[1]);
    ck_assert_ptr_eq(p[1]->first_variant, p[0]);
    ck_assert_ptr_eq(p[3]->first_variant, p[2]); /* "/a/b/" and "^~ /a/b/": one path */
    rp_cycle_destroy(cycle);
}
END_TEST

static Suite *tree_suite(void)
{
    Suite *s = suite_create("route_tree");
    TCase *tc = tcase_create("tree against linear");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(tc, test_tree_and_linear_search_choose_the_same_location_small_sets);
    tcase_add_test(tc, test_tree_and_linear_search_choose_the_same_location_large_sets);
    tcase_add_test(tc, test_hashed_and_linear_server_names_choose_the_same_server);
    tcase_add_test(tc, test_refused_locations_fall_through_in_precedence_order);
    tcase_add_test(tc, test_variants_are_linked_in_configuration_order);
    suite_add_tcase(s, tc);
    tc = tcase_create("regex literal start");
    tcase_add_test(tc, test_literal_start_of_anchored_patterns);
    tcase_add_test(tc, test_literal_start_stops_before_optional_or_repeated_bytes);
    tcase_add_test(tc, test_no_literal_start_without_an_anchor_or_with_a_top_alternative);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(tree_suite());
}
