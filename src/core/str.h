/*
 * Counted strings: request data points into connection buffers, so most strings
 * in the request path are (pointer, length) pairs rather than NUL-terminated.
 */
#ifndef RP_STR_H
#define RP_STR_H

#include <stddef.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *data;
    size_t len;
} rp_str_t;

#define RP_STR(lit) ((rp_str_t){(lit), sizeof(lit) - 1})
#define RP_NULL_STR ((rp_str_t){NULL, 0})

static inline int rp_str_eq(rp_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && memcmp(a.data, lit, n) == 0;
}

static inline int rp_str_ieq(rp_str_t a, const char *lit)
{
    size_t n = strlen(lit);
    return a.len == n && strncasecmp(a.data, lit, n) == 0;
}

/* The 6-bit value of a base64 character (RFC 4648, standard alphabet), or -1. */
static inline int rp_base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

#endif
