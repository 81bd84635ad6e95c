/*
 * nginx's tuning directives that have nothing to tune in rampart, accepted so that
 * a configuration brought from nginx loads unchanged (Debian's stock nginx.conf
 * carries types_hash_max_size, many carry multi_accept or use epoll).
 *
 * Each one's value is checked as nginx checks it (a flag is on or off, a size is a
 * size), so a typo is still refused with its file and line, and then dropped:
 * rampart has no hash tables sized by hand (its lookups are compiled or grow on
 * their own), one event method (libevent's epoll), no accept mutex (SO_REUSEPORT
 * spreads connections over workers), no memory pools to size, and writes its output
 * as it comes. rampart.conf(5), "NGINX TUNING DIRECTIVES", says for each why it has
 * no effect.
 */
#include "conf/conf.h"
#include "core/cycle.h"

#include <string.h>

/* What a directive's value must be, in cmd->post. */
enum {
    V_NUM = 1, /* a number */
    V_SIZE,    /* a size (8k, 1m) */
    V_MSEC,    /* a time (500ms, 5s) */
    V_FLAG,    /* on | off */
    V_NUM_SIZE /* a number and a size (output_buffers 2 32k) */
};

typedef struct {
    const char *const *words; /* the values allowed, NULL-terminated */
} words_t;

static const char *const use_words[] = {"epoll", "poll", "select", NULL};
static const char *const lingering_words[] = {"off", "on", "always", NULL};
static const char *const keepalive_disable_words[] = {"none", "msie6", "safari", NULL};

static const words_t use_values = {use_words};
static const words_t lingering_values = {lingering_words};
static const words_t keepalive_disable_values = {keepalive_disable_words};

static const int v_num = V_NUM, v_size = V_SIZE, v_msec = V_MSEC, v_flag = V_FLAG,
                 v_num_size = V_NUM_SIZE;

static const char *check_value(rp_conf_t *cf, int kind, const char *arg)
{
    long n;
    size_t size;
    int64_t ms;
    int flag;
    switch (kind) {
    case V_NUM:
        if (rp_parse_int(arg, 0x7fffffff, &n) != 0)
            return rp_conf_error(cf, "invalid number \"%s\"", arg);
        break;
    case V_SIZE:
        if (rp_parse_size(arg, &size) != 0)
            return rp_conf_error(cf, "invalid size \"%s\"", arg);
        break;
    case V_MSEC:
        if (rp_parse_msec(arg, &ms) != 0)
            return rp_conf_error(cf, "invalid time \"%s\"", arg);
        break;
    case V_FLAG:
        if (rp_parse_flag(arg, &flag) != 0)
            return rp_conf_error(cf, "invalid value \"%s\", it must be \"on\" or \"off\"", arg);
        break;
    }
    return RP_CONF_OK;
}

/* Checks the value as nginx would and keeps nothing. */
static const char *set_noop(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)conf;
    int kind = *(const int *)cmd->post;
    if (kind == V_NUM_SIZE) {
        const char *rv = check_value(cf, V_NUM, cf->argv[1]);
        return rv != RP_CONF_OK ? rv : check_value(cf, V_SIZE, cf->argv[2]);
    }
    return check_value(cf, kind, cf->argv[1]);
}

/* Checks that every argument is one of the words in cmd->post. */
static const char *set_noop_words(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)conf;
    const words_t *w = cmd->post;
    for (size_t i = 1; i < cf->argc; i++) {
        size_t k = 0;
        while (w->words[k] && strcmp(w->words[k], cf->argv[i]) != 0)
            k++;
        if (w->words[k] == NULL)
            return rp_conf_error(cf, "invalid value \"%s\"", cf->argv[i]);
    }
    return RP_CONF_OK;
}

static const char *set_noop_any(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    (void)cf, (void)cmd, (void)conf;
    return RP_CONF_OK;
}

#define HTTP     (RP_CTX_HTTP)
#define HTTP_SRV (RP_CTX_HTTP | RP_CTX_SERVER)
#define ANYWHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    /* main */
    {"worker_rlimit_core", RP_CTX_MAIN, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"timer_resolution", RP_CTX_MAIN, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_msec},
    {"pcre_jit", RP_CTX_MAIN, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_flag},
    {"lock_file", RP_CTX_MAIN, 0, 1, 1, set_noop_any, RP_CONF_MAIN, 0, NULL},
    /* events */
    {"multi_accept", RP_CTX_EVENTS, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_flag},
    {"accept_mutex", RP_CTX_EVENTS, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_flag},
    {"accept_mutex_delay", RP_CTX_EVENTS, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_msec},
    {"use", RP_CTX_EVENTS, 0, 1, 1, set_noop_words, RP_CONF_MAIN, 0, &use_values},
    /* hash table sizes */
    {"types_hash_max_size", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_num},
    {"types_hash_bucket_size", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"server_names_hash_max_size", HTTP, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_num},
    {"server_names_hash_bucket_size", HTTP, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"variables_hash_max_size", HTTP, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_num},
    {"variables_hash_bucket_size", HTTP, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"map_hash_max_size", HTTP, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_num},
    {"map_hash_bucket_size", HTTP, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"proxy_headers_hash_max_size", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_num},
    {"proxy_headers_hash_bucket_size", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    /* memory and output */
    {"connection_pool_size", HTTP_SRV, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"request_pool_size", HTTP_SRV, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"output_buffers", ANYWHERE, 0, 2, 2, set_noop, RP_CONF_MAIN, 0, &v_num_size},
    {"postpone_output", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    {"ssl_buffer_size", HTTP_SRV, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_size},
    /* connections */
    {"reset_timedout_connection", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_flag},
    {"lingering_close", ANYWHERE, 0, 1, 1, set_noop_words, RP_CONF_MAIN, 0, &lingering_values},
    {"lingering_time", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_msec},
    {"lingering_timeout", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_msec},
    {"keepalive_disable", ANYWHERE, 0, 1, RP_ARGS_ANY, set_noop_words, RP_CONF_MAIN, 0,
     &keepalive_disable_values},
    {"msie_padding", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_flag},
    {"msie_refresh", ANYWHERE, 0, 1, 1, set_noop, RP_CONF_MAIN, 0, &v_flag},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_compat_module = {
    .name = "compat",
    .commands = commands,
};
