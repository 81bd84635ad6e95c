/*
 * Value parsers and the generic setters built on them. Sizes and times follow
 * nginx: "512", "10k", "1m", "1g"; "500ms", "30s", "5m", "2h", "1d", and sums such
 * as "1m30s". A bare number of a time is seconds. Overflow is an error, never a
 * wrap-around.
 */
#include "conf/conf.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int rp_parse_int(const char *s, long max, long *out)
{
    if (*s == '\0')
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        int d = *s - '0';
        if (v > max / 10 || (v == max / 10 && d > max % 10))
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int rp_parse_size(const char *s, size_t *out)
{
    size_t len = strlen(s);
    if (len == 0)
        return -1;
    size_t scale = 1;
    char last = (char)tolower((unsigned char)s[len - 1]);
    if (last == 'k' || last == 'm' || last == 'g') {
        scale = last == 'k' ? 1024 : last == 'm' ? 1024 * 1024 : 1024 * 1024 * 1024;
        len--;
    }
    if (len == 0 || len > 20)
        return -1;
    char num[24];
    memcpy(num, s, len);
    num[len] = '\0';
    long v;
    if (rp_parse_int(num, LONG_MAX, &v) != 0)
        return -1;
    if ((size_t)v > SIZE_MAX / scale)
        return -1;
    *out = (size_t)v * scale;
    return 0;
}

int rp_parse_msec(const char *s, int64_t *out)
{
    if (*s == '\0')
        return -1;
    int64_t total = 0;
    int last_rank = 7; /* units must appear from largest to smallest, once each */
    while (*s) {
        /* "1m 30s" (quoted) reads like "1m30s": one space may separate the parts. */
        if (*s == ' ' && last_rank < 7 && isdigit((unsigned char)s[1]))
            s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        int64_t v = 0;
        while (isdigit((unsigned char)*s)) {
            if (v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (*s++ - '0');
        }
        int64_t mul;
        int rank;
        if (s[0] == 'm' && s[1] == 's') {
            mul = 1, rank = 0, s += 2;
        } else if (*s == 's' || *s == '\0') {
            mul = 1000, rank = 1;
            if (*s)
                s++;
        } else if (*s == 'm') {
            mul = 60000, rank = 2, s++;
        } else if (*s == 'h') {
            mul = 3600000, rank = 3, s++;
        } else if (*s == 'd') {
            mul = 86400000, rank = 4, s++;
        } else if (*s == 'w') {
            mul = 7 * 86400000LL, rank = 5, s++;
        } else {
            return -1;
        }
        if (rank >= last_rank)
            return -1;
        last_rank = rank;
        if (v > (INT64_MAX - total) / mul)
            return -1;
        total += v * mul;
    }
    *out = total;
    return 0;
}

int rp_parse_flag(const char *s, int *out)
{
    /* nginx compares without case, so "OFF" from an nginx file means off here too. */
    if (strcasecmp(s, "on") == 0) {
        *out = 1;
        return 0;
    }
    if (strcasecmp(s, "off") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

#define FIELD(conf, cmd, type) ((type *)((char *)(conf) + (cmd)->offset))

const char *rp_conf_set_flag(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    int *f = FIELD(conf, cmd, int);
    if (*f != RP_CONF_UNSET)
        return "duplicate directive";
    if (rp_parse_flag(cf->argv[1], f) != 0)
        return rp_conf_error(cf, "invalid value \"%s\", it must be \"on\" or \"off\"",
                             cf->argv[1]);
    return RP_CONF_OK;
}

const char *rp_conf_set_num(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    int *f = FIELD(conf, cmd, int);
    if (*f != RP_CONF_UNSET)
        return "duplicate directive";
    long v;
    if (rp_parse_int(cf->argv[1], INT_MAX, &v) != 0)
        return rp_conf_error(cf, "invalid number \"%s\"", cf->argv[1]);
    *f = (int)v;
    return RP_CONF_OK;
}

const char *rp_conf_set_size(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    size_t *f = FIELD(conf, cmd, size_t);
    if (*f != RP_CONF_UNSET_SIZE)
        return "duplicate directive";
    if (rp_parse_size(cf->argv[1], f) != 0)
        return rp_conf_error(cf, "invalid size \"%s\"", cf->argv[1]);
    return RP_CONF_OK;
}

const char *rp_conf_set_msec(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    int64_t *f = FIELD(conf, cmd, int64_t);
    if (*f != RP_CONF_UNSET_MSEC)
        return "duplicate directive";
    if (rp_parse_msec(cf->argv[1], f) != 0)
        return rp_conf_error(cf, "invalid time \"%s\"", cf->argv[1]);
    return RP_CONF_OK;
}

const char *rp_conf_set_str(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    char **f = FIELD(conf, cmd, char *);
    if (*f != NULL)
        return "duplicate directive";
    *f = cf->argv[1];
    return RP_CONF_OK;
}

const char *rp_conf_set_path(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    char **f = FIELD(conf, cmd, char *);
    if (*f != NULL)
        return "duplicate directive";
    *f = rp_conf_full_path(cf, cf->argv[1]);
    return RP_CONF_OK;
}
