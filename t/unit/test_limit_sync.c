/*
 * The Redis sync engine's pure parts (limit_sync_proto.c), with fake zones and no
 * socket: the `limit_sync` URL, the keys, a batch's pipelined commands byte for byte,
 * the replies handed back to the zones, the commands that set a connection up, the
 * backoff; and the directives' refusals through the configuration loader.
 */
#include "unit.h"
#include "limit/limit_sync.h"

#include <event2/buffer.h>
#include <string.h>

static rp_arena_t *arena;

static void setup(void)
{
    arena = rp_arena_create(4096);
}

static void teardown(void)
{
    rp_arena_destroy(arena);
}

static rp_redis_url_t url_ok(const char *text)
{
    rp_redis_url_t u;
    const char *err = rp_limit_sync_parse_url(arena, text, &u);
    ck_assert_msg(err == NULL, "%s: %s", text, err);
    return u;
}

static const char *url_err(const char *text)
{
    rp_redis_url_t u;
    const char *err = rp_limit_sync_parse_url(arena, text, &u);
    ck_assert_msg(err != NULL, "%s was accepted", text);
    return err;
}

/* ---- the URL ---- */

START_TEST(url_host_and_port_without_credentials)
{
    rp_redis_url_t u = url_ok("redis://127.0.0.1:6380");
    ck_assert_str_eq(u.host, "127.0.0.1");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_ptr_null(u.user);
    ck_assert_ptr_null(u.password);
    ck_assert_int_eq(u.db, 0);
    ck_assert_int_eq(u.tls, 0);
}
END_TEST

START_TEST(url_port_defaults_to_6379_and_empty_path_is_db_0)
{
    rp_redis_url_t u = url_ok("redis://cache.internal/");
    ck_assert_str_eq(u.host, "cache.internal");
    ck_assert_int_eq(u.port, 6379);
    ck_assert_int_eq(u.db, 0);
}
END_TEST

START_TEST(url_password_alone_and_database)
{
    rp_redis_url_t u = url_ok("redis://:s3cret@10.0.0.5:7000/12");
    ck_assert_ptr_null(u.user);
    ck_assert_str_eq(u.password, "s3cret");
    ck_assert_str_eq(u.host, "10.0.0.5");
    ck_assert_int_eq(u.port, 7000);
    ck_assert_int_eq(u.db, 12);
}
END_TEST

START_TEST(url_user_and_password_are_percent_decoded)
{
    rp_redis_url_t u = url_ok("redis://al%69ce:p%40ss%3aw%2F@h:1");
    ck_assert_str_eq(u.user, "alice");
    ck_assert_str_eq(u.password, "p@ss:w/");
}
END_TEST

START_TEST(url_credentials_end_at_the_last_at_sign)
{
    rp_redis_url_t u = url_ok("redis://:a@b/c@h:2/3");
    ck_assert_str_eq(u.password, "a@b/c");
    ck_assert_str_eq(u.host, "h");
    ck_assert_int_eq(u.port, 2);
    ck_assert_int_eq(u.db, 3);
}
END_TEST

START_TEST(url_ipv6_in_brackets)
{
    rp_redis_url_t u = url_ok("redis://[::1]:6380/3");
    ck_assert_str_eq(u.host, "::1");
    ck_assert_int_eq(u.port, 6380);
    ck_assert_int_eq(u.db, 3);
}
END_TEST

START_TEST(url_rediss_means_tls)
{
    rp_redis_url_t u = url_ok("rediss://h:6390");
    ck_assert_int_eq(u.tls, 1);
}
END_TEST

START_TEST(url_refusals_say_what_is_wrong)
{
    ck_assert_str_eq(url_err("http://h:1"),
                     "invalid URL \"http://h:1\" (redis://HOST:PORT or rediss://)");
    ck_assert_str_eq(url_err("redis://"), "no host in \"redis://\"");
    ck_assert_str_eq(url_err("redis:///2"), "no host in \"redis:///2\"");
    ck_assert_str_eq(url_err("redis://h:0"), "invalid port in \"h:0\" in \"redis://h:0\"");
    ck_assert_str_eq(url_err("redis://h:70000"),
                     "invalid port in \"h:70000\" in \"redis://h:70000\"");
    ck_assert_str_eq(url_err("redis://h:1/x"),
                     "invalid database \"x\" in \"redis://h:1/x\" (a number, as in "
                     "redis://HOST:PORT/2)");
    ck_assert_str_eq(url_err("redis://h:1/-1"),
                     "invalid database \"-1\" in \"redis://h:1/-1\" (a number, as in "
                     "redis://HOST:PORT/2)");
    ck_assert_str_eq(url_err("redis://h:1/99999999999"),
                     "invalid database \"99999999999\" in \"redis://h:1/99999999999\"");
    ck_assert_str_eq(url_err("redis://pw@h:1"),
                     "invalid URL \"redis://pw@h:1\" (credentials are written "
                     "\"[USER]:PASSWORD@\")");
    ck_assert_str_eq(url_err("redis://u:@h"), "empty password in \"redis://u:@h\"");
    ck_assert_str_eq(url_err("redis://:%zz@h"),
                     "invalid password in \"redis://:%zz@h\" (a % starts %XX)");
    ck_assert_str_eq(url_err("redis://:ab%4@h"),
                     "invalid password in \"redis://:ab%4@h\" (a % starts %XX)");
    ck_assert_str_eq(url_err("redis://:a%00b@h"),
                     "invalid password in \"redis://:a%00b@h\" (a % starts %XX)");
    ck_assert_str_eq(url_err("redis://::1:6379"),
                     "invalid address \"::1:6379\" (an IPv6 address is written in brackets) "
                     "in \"redis://::1:6379\"");
}
END_TEST

/* ---- keys ---- */

START_TEST(key_is_prefix_zone_window_then_the_bytes_as_they_are)
{
    char buf[64];
    const char key[] = {'a', '\0', ':', '\xff', 'b'};
    size_t n = rp_limit_sync_key(buf, sizeof(buf), "api", 28934, key, sizeof(key));
    const char want[] = "rampart:limit:api:28934:a\0:\xff"
                        "b";
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert_mem_eq(buf, want, n);
}
END_TEST

START_TEST(key_too_long_for_the_buffer_reports_its_length)
{
    char buf[8];
    size_t n = rp_limit_sync_key(buf, sizeof(buf), "z", -3, "xyz", 3);
    ck_assert_uint_eq(n, strlen("rampart:limit:z:-3:xyz"));
    /* and an empty key is still a key of its own */
    char big[64];
    n = rp_limit_sync_key(big, sizeof(big), "z", 7, NULL, 0);
    ck_assert_uint_eq(n, strlen("rampart:limit:z:7:"));
    ck_assert_mem_eq(big, "rampart:limit:z:7:", n);
}
END_TEST

/* ---- fake zones ---- */

typedef struct {
    rp_shm_zone_t *zone;
    char key[32];
    size_t key_len;
    int64_t window, total, sent, now;
} applied_t;

static applied_t applied[16];
static int napplied;

static void fake_collect(rp_shm_zone_t *zone, int64_t now, rp_limit_sync_collect_pt fn, void *arg)
{
}

static void fake_apply(rp_shm_zone_t *zone, const void *key, size_t key_len, int64_t window,
                       int64_t total, int64_t sent, int64_t now)
{
    applied_t *a = &applied[napplied++];
    a->zone = zone;
    ck_assert_uint_le(key_len, sizeof(a->key));
    memcpy(a->key, key, key_len);
    a->key_len = key_len;
    a->window = window;
    a->total = total;
    a->sent = sent;
    a->now = now;
}

static const rp_limit_sync_ops_t fake_ops = {fake_collect, fake_apply};
static rp_shm_zone_t zone_a = {.name = "a"}, zone_b = {.name = "b"};
static const rp_limit_sync_zone_t zones[] = {
    {.zone = &zone_a, .ops = &fake_ops, .name = "a"},
    {.zone = &zone_b, .ops = &fake_ops, .name = "bb"},
};

static char *drain_text(struct evbuffer *out, size_t *len)
{
    *len = evbuffer_get_length(out);
    char *s = rp_arena_alloc(arena, *len + 1);
    evbuffer_remove(out, s, *len);
    s[*len] = '\0';
    return s;
}

#define ck_assert_resp(out, want)                                                                  \
    do {                                                                                           \
        size_t len_;                                                                               \
        char *got_ = drain_text(out, &len_);                                                       \
        ck_assert_uint_eq(len_, sizeof(want) - 1);                                                 \
        ck_assert_mem_eq(got_, want, len_);                                                        \
    } while (0)

/* Parses RESP text into replies, one by one. */
static redisReply *parse_one(redisReader *r)
{
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

/* ---- batches ---- */

START_TEST(batch_is_incrby_then_pexpire_per_record_in_one_pipeline)
{
    rp_limit_sync_batch_t b = {0};
    rp_limit_sync_batch_add(&b, 0, "k1", 2, 5, 3, 60000);
    rp_limit_sync_batch_add(&b, 1, "x\0y", 3, 6, 1, 0);
    ck_assert_uint_eq(rp_limit_sync_batch_expected(&b), 4);
    struct evbuffer *out = evbuffer_new();
    ck_assert_int_eq(rp_limit_sync_batch_encode(&b, zones, out), 0);
    ck_assert_resp(out, "*3\r\n$6\r\nINCRBY\r\n$20\r\nrampart:limit:a:5:k1\r\n$1\r\n3\r\n"
                        "*3\r\n$7\r\nPEXPIRE\r\n$20\r\nrampart:limit:a:5:k1\r\n$5\r\n60000\r\n"
                        "*3\r\n$6\r\nINCRBY\r\n$22\r\nrampart:limit:bb:6:x\0y\r\n$1\r\n1\r\n"
                        "*3\r\n$7\r\nPEXPIRE\r\n$22\r\nrampart:limit:bb:6:x\0y\r\n$1\r\n1\r\n");
    evbuffer_free(out);
    rp_limit_sync_batch_free(&b);
}
END_TEST

START_TEST(batch_grows_for_long_keys_and_many_records)
{
    rp_limit_sync_batch_t b = {0};
    char key[1000];
    memset(key, 'k', sizeof(key));
    for (int i = 0; i < 200; i++)
        rp_limit_sync_batch_add(&b, 0, key, sizeof(key), i, 1, 1000);
    struct evbuffer *out = evbuffer_new();
    ck_assert_int_eq(rp_limit_sync_batch_encode(&b, zones, out), 0);
    ck_assert_uint_gt(evbuffer_get_length(out), 200 * 2 * sizeof(key));
    evbuffer_free(out);
    /* a reset keeps the memory for the next batch */
    rp_limit_sync_batch_reset(&b);
    ck_assert_uint_eq(b.nrecs, 0);
    ck_assert_uint_ge(b.caprecs, 200);
    rp_limit_sync_batch_free(&b);
}
END_TEST

START_TEST(ping_batch_is_one_ping)
{
    rp_limit_sync_batch_t b = {0};
    b.ping = 1;
    ck_assert_uint_eq(rp_limit_sync_batch_expected(&b), 1);
    struct evbuffer *out = evbuffer_new();
    ck_assert_int_eq(rp_limit_sync_batch_encode(&b, zones, out), 0);
    ck_assert_resp(out, "*1\r\n$4\r\nPING\r\n");
    evbuffer_free(out);
    char why[128];
    redisReader *r = redisReaderCreate();
    redisReaderFeed(r, "+PONG\r\n", 7);
    redisReply *reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 1, why, sizeof(why)), 1);
    freeReplyObject(reply);
    redisReaderFree(r);
}
END_TEST

START_TEST(incrby_totals_go_to_their_zone_with_what_this_node_sent)
{
    napplied = 0;
    rp_limit_sync_batch_t b = {0};
    rp_limit_sync_batch_add(&b, 0, "k1", 2, 5, 3, 60000);
    rp_limit_sync_batch_add(&b, 1, "k2", 2, 6, 4, 60000);
    redisReader *r = redisReaderCreate();
    const char *resp = ":10\r\n:1\r\n:4\r\n:1\r\n";
    redisReaderFeed(r, resp, strlen(resp));
    char why[128];
    int want[] = {0, 0, 0, 1};
    for (int i = 0; i < 4; i++) {
        redisReply *reply = parse_one(r);
        ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 777, why, sizeof(why)),
                         want[i]);
        freeReplyObject(reply);
    }
    ck_assert_int_eq(napplied, 2);
    ck_assert_ptr_eq(applied[0].zone, &zone_a);
    ck_assert_mem_eq(applied[0].key, "k1", 2);
    ck_assert_int_eq(applied[0].window, 5);
    ck_assert_int_eq(applied[0].total, 10);
    ck_assert_int_eq(applied[0].sent, 3);
    ck_assert_int_eq(applied[0].now, 777);
    ck_assert_ptr_eq(applied[1].zone, &zone_b);
    ck_assert_int_eq(applied[1].total, 4);
    ck_assert_int_eq(applied[1].sent, 4);
    redisReaderFree(r);
    rp_limit_sync_batch_free(&b);
}
END_TEST

START_TEST(error_reply_ends_the_batch_with_redis_words)
{
    napplied = 0;
    rp_limit_sync_batch_t b = {0};
    rp_limit_sync_batch_add(&b, 0, "k", 1, 1, 1, 1000);
    redisReader *r = redisReaderCreate();
    const char *resp = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    redisReaderFeed(r, resp, strlen(resp));
    char why[256];
    redisReply *reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 1, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "INCRBY on zone \"a\" answered OOM command not allowed when used "
                          "memory > 'maxmemory'.");
    ck_assert_int_eq(napplied, 0);
    freeReplyObject(reply);
    redisReaderFree(r);
    rp_limit_sync_batch_free(&b);
}
END_TEST

START_TEST(reply_of_the_wrong_type_or_too_many_replies_fail)
{
    rp_limit_sync_batch_t b = {0};
    rp_limit_sync_batch_add(&b, 0, "k", 1, 1, 1, 1000);
    redisReader *r = redisReaderCreate();
    const char *resp = ":1\r\n+OK\r\n";
    redisReaderFeed(r, resp, strlen(resp));
    char why[256];
    redisReply *reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 1, why, sizeof(why)), 0);
    freeReplyObject(reply);
    reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 1, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "PEXPIRE on zone \"a\" answered OK");
    freeReplyObject(reply);

    rp_limit_sync_batch_reset(&b);
    b.ping = 1;
    redisReaderFeed(r, "+PONG\r\n+PONG\r\n", 14);
    reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 1, why, sizeof(why)), 1);
    freeReplyObject(reply);
    reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_batch_reply(&b, zones, reply, 1, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "a reply nothing asked for (PONG)");
    freeReplyObject(reply);
    redisReaderFree(r);
    rp_limit_sync_batch_free(&b);
}
END_TEST

/* ---- setting a connection up ---- */

START_TEST(setup_is_auth_with_user_select_and_a_name)
{
    rp_redis_url_t u = url_ok("redis://alice:pw@h:1/2");
    struct evbuffer *out = evbuffer_new();
    ck_assert_int_eq(rp_limit_sync_setup_encode(&u, out), 3);
    ck_assert_resp(out, "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$2\r\npw\r\n"
                        "*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"
                        "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$18\r\nrampart-limit-sync\r\n");
    evbuffer_free(out);
}
END_TEST

START_TEST(setup_without_user_or_db_is_password_auth_or_nothing)
{
    rp_redis_url_t u = url_ok("redis://:pw@h:1");
    struct evbuffer *out = evbuffer_new();
    ck_assert_int_eq(rp_limit_sync_setup_encode(&u, out), 2);
    ck_assert_resp(out, "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
                        "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$18\r\nrampart-limit-sync\r\n");
    rp_redis_url_t plain = url_ok("redis://h:1");
    ck_assert_int_eq(rp_limit_sync_setup_encode(&plain, out), 1);
    ck_assert_resp(out, "*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$18\r\nrampart-limit-sync\r\n");
    evbuffer_free(out);
}
END_TEST

START_TEST(setup_replies_refused_auth_or_select_fail_a_refused_name_does_not)
{
    rp_redis_url_t u = url_ok("redis://:pw@h:1/3");
    redisReader *r = redisReaderCreate();
    const char *resp = "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
                       "-ERR DB index is out of range\r\n"
                       "-NOPERM this user has no permissions to run the 'client' command\r\n"
                       "+OK\r\n";
    redisReaderFeed(r, resp, strlen(resp));
    char why[256];
    redisReply *reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_setup_reply(&u, 0, reply, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "authentication failed: WRONGPASS invalid username-password pair or "
                          "user is disabled.");
    freeReplyObject(reply);
    reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_setup_reply(&u, 1, reply, why, sizeof(why)), -1);
    ck_assert_str_eq(why, "SELECT 3 refused: ERR DB index is out of range");
    freeReplyObject(reply);
    reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_setup_reply(&u, 2, reply, why, sizeof(why)), 0);
    freeReplyObject(reply);
    reply = parse_one(r);
    ck_assert_int_eq(rp_limit_sync_setup_reply(&u, 0, reply, why, sizeof(why)), 0);
    freeReplyObject(reply);
    redisReaderFree(r);
}
END_TEST

/* ---- timing ---- */

START_TEST(backoff_doubles_from_100ms_to_5s)
{
    int64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
    int64_t b = 0;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        b = rp_limit_sync_backoff(b);
        ck_assert_int_eq(b, want[i]);
    }
}
END_TEST

START_TEST(default_timeout_is_50_intervals_at_least_a_second)
{
    ck_assert_int_eq(rp_limit_sync_default_timeout(10), 1000);
    ck_assert_int_eq(rp_limit_sync_default_timeout(20), 1000);
    ck_assert_int_eq(rp_limit_sync_default_timeout(100), 5000);
}
END_TEST

/* ---- the directives ---- */

START_TEST(limit_sync_is_accepted_at_http_level)
{
    rp_cycle_t *c = ut_load_ok("http {\n limit_sync redis://:pw@127.0.0.1:6390/2 "
                               "interval=25ms timeout=3s;\n}\n");
    rp_cycle_destroy(c);
}
END_TEST

START_TEST(limit_sync_refusals_name_file_and_line)
{
    ut_expect_error("http {\n server {\n  limit_sync redis://127.0.0.1:1;\n }\n}\n",
                    "@/rampart.conf:3: \"limit_sync\": not allowed in the server context");
    ut_expect_error("http {\n limit_sync redis://127.0.0.1:1 interval=0;\n}\n",
                    "@/rampart.conf:2: \"limit_sync\": invalid interval \"0\" (1ms to 60s)");
    ut_expect_error("http {\n limit_sync redis://127.0.0.1:1 fast;\n}\n",
                    "@/rampart.conf:2: \"limit_sync\": invalid parameter \"fast\"");
    ut_expect_error("http {\n limit_sync http://127.0.0.1:1;\n}\n",
                    "@/rampart.conf:2: \"limit_sync\": invalid URL \"http://127.0.0.1:1\" "
                    "(redis://HOST:PORT or rediss://)");
    ut_expect_error(
        "http {\n limit_sync redis://127.0.0.1:1;\n limit_sync redis://127.0.0.1:2;\n}\n",
        "@/rampart.conf:3: \"limit_sync\": is duplicate");
    ut_expect_error("http {\n limit_sync redis://127.0.0.1:1;\n limit_sync_ssl_verify on;\n}\n",
                    "@/rampart.conf:3: \"limit_sync_ssl_verify\": the \"limit_sync\" "
                    "connection has no \"tls\"");
    ut_expect_error("http {\n limit_sync redis://127.0.0.1:1 tls;\n limit_sync_ssl_verify on;\n}\n",
                    "@/rampart.conf:3: \"limit_sync_ssl_verify\": no "
                    "\"limit_sync_ssl_trusted_certificate\" is defined for it");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("limit_sync");
    TCase *tc = tcase_create("proto");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, url_host_and_port_without_credentials);
    tcase_add_test(tc, url_port_defaults_to_6379_and_empty_path_is_db_0);
    tcase_add_test(tc, url_password_alone_and_database);
    tcase_add_test(tc, url_user_and_password_are_percent_decoded);
    tcase_add_test(tc, url_credentials_end_at_the_last_at_sign);
    tcase_add_test(tc, url_ipv6_in_brackets);
    tcase_add_test(tc, url_rediss_means_tls);
    tcase_add_test(tc, url_refusals_say_what_is_wrong);
    tcase_add_test(tc, key_is_prefix_zone_window_then_the_bytes_as_they_are);
    tcase_add_test(tc, key_too_long_for_the_buffer_reports_its_length);
    tcase_add_test(tc, batch_is_incrby_then_pexpire_per_record_in_one_pipeline);
    tcase_add_test(tc, batch_grows_for_long_keys_and_many_records);
    tcase_add_test(tc, ping_batch_is_one_ping);
    tcase_add_test(tc, incrby_totals_go_to_their_zone_with_what_this_node_sent);
    tcase_add_test(tc, error_reply_ends_the_batch_with_redis_words);
    tcase_add_test(tc, reply_of_the_wrong_type_or_too_many_replies_fail);
    tcase_add_test(tc, setup_is_auth_with_user_select_and_a_name);
    tcase_add_test(tc, setup_without_user_or_db_is_password_auth_or_nothing);
    tcase_add_test(tc, setup_replies_refused_auth_or_select_fail_a_refused_name_does_not);
    tcase_add_test(tc, backoff_doubles_from_100ms_to_5s);
    tcase_add_test(tc, default_timeout_is_50_intervals_at_least_a_second);
    suite_add_tcase(s, tc);
    TCase *conf = tcase_create("directives");
    tcase_add_checked_fixture(conf, ut_setup_dir, ut_teardown_dir);
    tcase_add_test(conf, limit_sync_is_accepted_at_http_level);
    tcase_add_test(conf, limit_sync_refusals_name_file_and_line);
    suite_add_tcase(s, conf);
    return ut_run(s);
}
