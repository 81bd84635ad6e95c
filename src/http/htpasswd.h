/*
 * Password files as auth_basic_user_file reads them (htpasswd's and nginx's format),
 * and the check of a password against one entry's hash.
 */
#ifndef RP_HTPASSWD_H
#define RP_HTPASSWD_H

#include "core/str.h"

#include <stddef.h>

/* What a password file's entry says of a password. */
enum {
    RP_PW_MISMATCH = 0,
    RP_PW_MATCH = 1,
    RP_PW_UNSUPPORTED = -1, /* a hash of a scheme rampart cannot check */
};

/*
 * Checks password against hash, one entry's second field: crypt(3)'s schemes
 * through libxcrypt ($1$, $5$, $6$, $2a$/$2b$/$2y$, $y$, DES), Apache's $apr1$,
 * {SHA}, {SSHA} and {PLAIN}. The comparison takes the same time whatever the
 * bytes that differ.
 */
int rp_htpasswd_check(rp_str_t hash, rp_str_t password);

/* A password file as last read: its entries, parsed. */
typedef struct rp_htpasswd_s rp_htpasswd_t;

/*
 * The file at path as this worker knows it: read on first use, and read again
 * when a check (at most once a second per file) finds it changed (its size, mtime,
 * inode). NULL when it cannot be read; *err is then the errno. The result stays
 * valid until the next call.
 */
const rp_htpasswd_t *rp_htpasswd_get(const char *path, int *err);

/* The hash of user in f, or a null string when the file does not name user. */
rp_str_t rp_htpasswd_find(const rp_htpasswd_t *f, rp_str_t user);

/*
 * The worker's cache of credentials it verified recently, so that a client sending
 * the same Authorization field again costs a hash lookup, not a bcrypt run. It keeps
 * no password: a key is SHA-256 over a per-process random secret, the user, the
 * password and the entry's hash (so a changed entry misses). Bounded (a few hundred
 * entries, newest replaces oldest in its bucket), only matches are kept.
 */
int rp_htpasswd_cached(rp_str_t user, rp_str_t password, rp_str_t hash);
void rp_htpasswd_remember(rp_str_t user, rp_str_t password, rp_str_t hash);

#endif
