/*
 * Password files and hashes (src/http/htpasswd.c): each scheme against a hash made by
 * `openssl passwd` or `htpasswd` (the vectors below were made so, with fixed salts
 * where the tool takes one), the file's format (comments, blank lines, CRLF, a
 * trailing comment field), a changed file read again, and the cache of verified
 * credentials. The server's answers are t/integration/test_auth_basic.py's to show.
 */
#include "core/time.h"
#include "http/htpasswd.h"
#include "unit.h"

#include <string.h>
#include <unistd.h>

static rp_str_t S(const char *s)
{
    return (rp_str_t){(char *)s, strlen(s)};
}

static int check(const char *hash, const char *pw)
{
    return rp_htpasswd_check(S(hash), S(pw));
}

START_TEST(test_apr1_matches_openssl)
{
    /* openssl passwd -apr1 -salt abcdefgh 'p@ss word' */
    const char *h = "$apr1$abcdefgh$aJUuGLjz3OI4ylHF//t5U1";
    ck_assert_int_eq(check(h, "p@ss word"), RP_PW_MATCH);
    ck_assert_int_eq(check(h, "p@ss Word"), RP_PW_MISMATCH);
    ck_assert_int_eq(check(h, ""), RP_PW_MISMATCH);
    /* a short salt and an empty password: openssl passwd -apr1 -salt xy '' */
    ck_assert_int_eq(check("$apr1$xy$43..WIhbfuznGvwoCyUek/", ""), RP_PW_MATCH);
    ck_assert_int_eq(check("$apr1$xy$43..WIhbfuznGvwoCyUek/", "x"), RP_PW_MISMATCH);
}
END_TEST

START_TEST(test_crypt_schemes_through_libxcrypt)
{
    /* htpasswd -nbB -C 4 u bcrypt-pw */
    const char *bcrypt = "$2y$04$PUu8meDzijC5jgEzY3Y33elCECZ7CS6oQH7BubjD4LU5PKNB3YWoK";
    ck_assert_int_eq(check(bcrypt, "bcrypt-pw"), RP_PW_MATCH);
    ck_assert_int_eq(check(bcrypt, "bcrypt-pX"), RP_PW_MISMATCH);
    /* openssl passwd -6 -salt saltsalt pw6 */
    const char *sha512 = "$6$saltsalt$vqfwhgbpDQsmrvB6w5/8F5c4CO40.Qu2BBSXMRAH03mtpJ3D3UncG8x1f8"
                         "qam566S8Gqa9EQmwIXTEp9knEjA.";
    ck_assert_int_eq(check(sha512, "pw6"), RP_PW_MATCH);
    ck_assert_int_eq(check(sha512, "pw7"), RP_PW_MISMATCH);
    ck_assert_int_eq(check("$9$unknown$scheme", "x"), RP_PW_UNSUPPORTED);
}
END_TEST

START_TEST(test_ldap_style_schemes)
{
    /* htpasswd -nbs u sha-pw */
    ck_assert_int_eq(check("{SHA}O/MvdjOwOQpt8I9HBSVZugThPMw=", "sha-pw"), RP_PW_MATCH);
    ck_assert_int_eq(check("{SHA}O/MvdjOwOQpt8I9HBSVZugThPMw=", "sha-pX"), RP_PW_MISMATCH);
    ck_assert_int_eq(check("{SHA}not base64", "sha-pw"), RP_PW_MISMATCH);
    /* {SSHA}: base64(SHA1("pw" + "salt") + "salt") */
    ck_assert_int_eq(check("{SSHA}K/qCHdTzr1rftXNEV4Ob7XsySBlzYWx0", "pw"), RP_PW_MATCH);
    ck_assert_int_eq(check("{SSHA}K/qCHdTzr1rftXNEV4Ob7XsySBlzYWx0", "pX"), RP_PW_MISMATCH);
    ck_assert_int_eq(check("{PLAIN}open sesame", "open sesame"), RP_PW_MATCH);
    ck_assert_int_eq(check("{PLAIN}open sesame", "open sesam"), RP_PW_MISMATCH);
}
END_TEST

START_TEST(test_file_format_and_a_changed_file)
{
    ut_setup_dir();
    ut_write_n(
        "pw", "# comment\r\n\r\nann:{PLAIN}a:Ann A.\r\n#bob:{PLAIN}b\nbob:{PLAIN}b2\nlast:{PLAIN}z",
        strlen("# comment\r\n\r\nann:{PLAIN}a:Ann A.\r\n#bob:{PLAIN}b\nbob:{PLAIN}b2\n"
               "last:{PLAIN}z"));
    int err = -1;
    const rp_htpasswd_t *f = rp_htpasswd_get(ut_path("pw"), &err);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(err, 0);
    rp_str_t h = rp_htpasswd_find(f, S("ann"));
    ck_assert_int_eq((int)h.len, 8);
    ck_assert_int_eq(memcmp(h.data, "{PLAIN}a", 8), 0);
    h = rp_htpasswd_find(f, S("bob"));
    ck_assert_int_eq(memcmp(h.data, "{PLAIN}b2", h.len), 0);
    ck_assert_ptr_null(rp_htpasswd_find(f, S("#bob")).data);
    ck_assert_ptr_null(rp_htpasswd_find(f, S("an")).data);
    ck_assert_int_eq((int)rp_htpasswd_find(f, S("last")).len, 8);

    /* replaced by another file: seen once the next look comes (at most a second) */
    ut_write("pw2", "ann:{PLAIN}new\n");
    ck_assert_int_eq(rename(ut_path("pw2"), ut_path("pw")), 0);
    int64_t deadline = rp_time_ms() + 5000;
    while (rp_time_ms() < deadline) {
        f = rp_htpasswd_get(ut_path("pw"), &err);
        ck_assert_ptr_nonnull(f);
        if (rp_htpasswd_find(f, S("bob")).data == NULL)
            break;
        usleep(50000);
    }
    ck_assert_ptr_null(rp_htpasswd_find(f, S("bob")).data);
    ck_assert_int_eq(memcmp(rp_htpasswd_find(f, S("ann")).data, "{PLAIN}new", 10), 0);

    ck_assert_ptr_null(rp_htpasswd_get(ut_path("missing"), &err));
    ck_assert_int_eq(err, ENOENT);
    ut_teardown_dir();
}
END_TEST

START_TEST(test_the_cache_keeps_matches_for_their_hash_only)
{
    rp_str_t hash = S("$2y$04$PUu8meDzijC5jgEzY3Y33elCECZ7CS6oQH7BubjD4LU5PKNB3YWoK");
    ck_assert_int_eq(rp_htpasswd_cached(S("u"), S("bcrypt-pw"), hash), 0);
    rp_htpasswd_remember(S("u"), S("bcrypt-pw"), hash);
    ck_assert_int_eq(rp_htpasswd_cached(S("u"), S("bcrypt-pw"), hash), 1);
    ck_assert_int_eq(rp_htpasswd_cached(S("u"), S("bcrypt-pX"), hash), 0);
    ck_assert_int_eq(rp_htpasswd_cached(S("v"), S("bcrypt-pw"), hash), 0);
    /* the entry changed in the file: the remembered match is not this one */
    ck_assert_int_eq(rp_htpasswd_cached(S("u"), S("bcrypt-pw"), S("{PLAIN}bcrypt-pw")), 0);
    /* bounded: many more matches push the first out of its bucket eventually */
    char user[32];
    for (int i = 0; i < 4096; i++) {
        snprintf(user, sizeof(user), "user%d", i);
        rp_htpasswd_remember(S(user), S("pw"), hash);
    }
    ck_assert_int_eq(rp_htpasswd_cached(S("u"), S("bcrypt-pw"), hash), 0);
}
END_TEST

static Suite *htpasswd_suite(void)
{
    Suite *s = suite_create("htpasswd");
    TCase *tc = tcase_create("htpasswd");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_apr1_matches_openssl);
    tcase_add_test(tc, test_crypt_schemes_through_libxcrypt);
    tcase_add_test(tc, test_ldap_style_schemes);
    tcase_add_test(tc, test_file_format_and_a_changed_file);
    tcase_add_test(tc, test_the_cache_keeps_matches_for_their_hash_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return ut_run(htpasswd_suite());
}
