/*
 * Helpers shared by the unit tests: running a Check suite, a scratch folder per
 * test, and loading a configuration written into it. Check runs each test in its
 * own forked process, so a crash fails that one test and nothing a test sets
 * leaks into the next.
 *
 * Expected error messages are written with "@" standing for the scratch folder,
 * so a test reads "@/rampart.conf:3: unknown directive \"foo\"" while the loader
 * reports the full path it was given.
 */
#ifndef RP_UNIT_H
#define RP_UNIT_H

#include "core/cycle.h"
#include "http/http.h"

#include <check.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define UT_UNUSED __attribute__((unused))

static char ut_base[64] UT_UNUSED;      /* the run's folder, holding every test's folder */
static char ut_dir[PATH_MAX] UT_UNUSED; /* the running test's scratch folder */
static char ut_err[4096] UT_UNUSED;     /* the last load error */

static inline int ut_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static inline void ut_rm_tree(const char *path)
{
    if (path[0])
        nftw(path, ut_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Runs s and returns the exit status for main(). Scratch folders live under one
 * folder of the run, removed here by the parent: a failed assertion ends a
 * test's process at once, before its teardown could clean up.
 */
static inline int ut_run(Suite *s)
{
    snprintf(ut_base, sizeof(ut_base), "/tmp/rampart-unit-XXXXXX");
    if (mkdtemp(ut_base) == NULL) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    ut_rm_tree(ut_base);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* A checked fixture: a fresh scratch folder for every test. */
static inline void ut_setup_dir(void)
{
    snprintf(ut_dir, sizeof(ut_dir), "%s/t-XXXXXX", ut_base[0] ? ut_base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(ut_dir));
}

static inline void ut_teardown_dir(void)
{
    ut_rm_tree(ut_dir);
}

/* A scratch-folder path; the result stays valid for the next 7 calls. */
static inline const char *ut_path(const char *rel)
{
    static char bufs[8][PATH_MAX + 256];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", ut_dir, rel);
    return b;
}

/* Replaces every "@/" of fmt by the scratch folder and "/" (a lone "@", as in a named
 * location, stays); the result stays valid for 7 more calls. */
static inline const char *ut_expand(const char *fmt)
{
    static char bufs[8][8192];
    static unsigned next;
    char *b = bufs[next++ % 8];
    size_t n = 0, dl = strlen(ut_dir);
    for (const char *p = fmt; *p && n + dl + 1 < sizeof(bufs[0]); p++) {
        if (*p == '@' && p[1] == '/') {
            memcpy(b + n, ut_dir, dl);
            n += dl;
        } else {
            b[n++] = *p;
        }
    }
    b[n] = '\0';
    return b;
}

/* Writes len bytes to the scratch file rel, creating its folders. */
static inline void ut_write_n(const char *rel, const char *text, size_t len)
{
    char path[PATH_MAX + 256];
    snprintf(path, sizeof(path), "%s", ut_path(rel));
    for (char *s = path + strlen(ut_dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

static inline void ut_write(const char *rel, const char *text)
{
    ut_write_n(rel, text, strlen(text));
}

/* Loads the scratch file rel with the scratch folder as prefix; NULL with ut_err set. */
static inline rp_cycle_t *ut_load_file(const char *rel)
{
    ut_err[0] = '\0';
    return rp_cycle_load(ut_dir, rel, ut_err, sizeof(ut_err));
}

/* Writes text to rampart.conf and loads it. */
static inline rp_cycle_t *ut_load(const char *text)
{
    ut_write("rampart.conf", text);
    return ut_load_file("rampart.conf");
}

/* Loads text, failing the test with the loader's message if it is refused. */
static inline rp_cycle_t *ut_load_ok(const char *text)
{
    rp_cycle_t *cycle = ut_load(text);
    ck_assert_msg(cycle != NULL, "configuration refused: %s", ut_err);
    return cycle;
}

/* Asserts that text is refused with exactly the message expected ("@" = scratch folder). */
#define ut_expect_error(text, expected)                                                            \
    do {                                                                                           \
        rp_cycle_t *cycle_ = ut_load(text);                                                        \
        ck_assert_msg(cycle_ == NULL, "configuration loaded; expected \"%s\"",                     \
                      ut_expand(expected));                                                        \
        ck_assert_str_eq(ut_err, ut_expand(expected));                                             \
    } while (0)

/* The i-th server block of the http block. */
static inline rp_http_core_srv_conf_t *ut_server(const rp_cycle_t *cycle, size_t i)
{
    rp_http_core_main_conf_t *cmcf = rp_http_core_main_conf(cycle);
    ck_assert_ptr_nonnull(cmcf);
    ck_assert_uint_gt(cmcf->servers.nelts, i);
    return RP_ARRAY_AT(&cmcf->servers, rp_http_core_srv_conf_t *, i);
}

/* A server's own location: the root of its location tree, merged with http. */
static inline rp_http_core_loc_conf_t *ut_srv_loc(const rp_http_core_srv_conf_t *srv)
{
    return srv->ctx->loc_conf[rp_http_core_module.index];
}

/* The location named name (without its modifier) directly inside parent. */
static inline rp_http_core_loc_conf_t *ut_loc(const rp_http_core_loc_conf_t *parent,
                                              const char *name)
{
    const rp_array_t *lists[] = {&parent->exact, &parent->prefix, &parent->regex};
    for (size_t l = 0; l < 3; l++) {
        for (size_t i = 0; i < lists[l]->nelts; i++) {
            rp_http_core_loc_conf_t *loc = RP_ARRAY_AT(lists[l], rp_http_core_loc_conf_t *, i);
            if (strcmp(loc->name, name) == 0)
                return loc;
        }
    }
    ck_abort_msg("no location \"%s\" inside \"%s\"", name, parent->name);
    return NULL;
}

#endif
