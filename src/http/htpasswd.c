/*
 * Password files for auth_basic: reading them, keeping them, and checking a
 * password against an entry's hash.
 *
 * The format is htpasswd's and nginx's: a line "user:hash" or "user:hash:comment";
 * lines starting with "#" and blank lines are skipped; CRLF ends a line as LF does.
 *
 * nginx opens and reads the file on every request. A worker here keeps each file
 * it read, parsed, and looks at the file again (one stat) at most once a second: a
 * changed file (size, modification time, inode: an editor's rename counts) is read
 * again, so an edit is seen within a second without a read per request. Files are
 * few (the paths a configuration names; with variables in the path, the ones
 * requests reached): at most MAX_FILES are kept, the least recently used goes.
 *
 * Hash schemes: libxcrypt's crypt_rn checks the crypt(3) ones ($1$, $5$, $6$,
 * bcrypt, yescrypt, DES); Apache's "$apr1$" (MD5-crypt with another magic word,
 * which libxcrypt lacks) is computed here from the algorithm's description with
 * OpenSSL's MD5; {SHA}, {SSHA} and {PLAIN} are LDAP's spellings that htpasswd -s
 * and nginx know.
 *
 * bcrypt and yescrypt are deliberately slow (milliseconds of the worker's CPU per
 * check), so a small per-worker cache remembers credentials that matched: see
 * rp_htpasswd_cached in htpasswd.h for what it keeps (never a password).
 */
#include "http/htpasswd.h"
#include "core/log.h"
#include "core/time.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- checking one password ---- */

/* Constant-time equality of two strings of equal length; unequal lengths differ. */
static int same(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

/* Decodes base64 text (with its padding) into out; the length, or -1. */
static int base64_decode(rp_str_t in, unsigned char *out, size_t cap)
{
    if (in.len == 0 || in.len % 4 != 0 || in.len / 4 * 3 > cap)
        return -1;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in.data, (int)in.len);
    if (n < 0)
        return -1;
    /* EVP_DecodeBlock counts the bytes the padding stands for */
    if (in.data[in.len - 1] == '=')
        n--;
    if (in.data[in.len - 2] == '=')
        n--;
    return n;
}

static int sha1_check(rp_str_t b64, rp_str_t pw, int salted)
{
    unsigned char stored[128], digest[EVP_MAX_MD_SIZE];
    int n = base64_decode(b64, stored, sizeof(stored));
    if (n < 20 || (!salted && n != 20))
        return RP_PW_MISMATCH;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned dlen = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, pw.data, pw.len) &&
             EVP_DigestUpdate(ctx, stored + 20, (size_t)n - 20) && /* the salt, if any */
             EVP_DigestFinal_ex(ctx, digest, &dlen);
    EVP_MD_CTX_free(ctx);
    return ok && same(digest, dlen, stored, 20) ? RP_PW_MATCH : RP_PW_MISMATCH;
}

static const char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Appends n characters of v's bits, six at a time from the lowest. */
static char *to64(char *p, unsigned long v, int n)
{
    while (n-- > 0) {
        *p++ = itoa64[v & 0x3f];
        v >>= 6;
    }
    return p;
}

static int md5(EVP_MD_CTX *ctx, const void *a, size_t alen, const void *b, size_t blen,
               const void *c, size_t clen, const void *d, size_t dlen, unsigned char out[16])
{
    unsigned n;
    return EVP_DigestInit_ex(ctx, EVP_md5(), NULL) && EVP_DigestUpdate(ctx, a, alen) &&
           EVP_DigestUpdate(ctx, b, blen) && EVP_DigestUpdate(ctx, c, clen) &&
           EVP_DigestUpdate(ctx, d, dlen) && EVP_DigestFinal_ex(ctx, out, &n);
}

/*
 * Apache's "$apr1$salt$digest": the MD5-based crypt, with "$apr1$" as its magic. The
 * initial digest mixes the password, the magic, the salt, an alternate digest of
 * password+salt+password, and the bits of the password's length; then 1000 rounds
 * rehash it with the password and salt in an order set by the round's number; the
 * 16 bytes are written as 22 characters of itoa64, in a fixed byte order.
 */
static int apr1_check(rp_str_t hash, rp_str_t pw)
{
    static const char magic[] = "$apr1$";
    const char *salt = hash.data + 6, *end = hash.data + hash.len;
    size_t slen = 0;
    while (salt + slen < end && salt[slen] != '$' && slen < 8)
        slen++;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return RP_PW_MISMATCH;
    unsigned char alt[16], fin[16];
    int ok = md5(ctx, pw.data, pw.len, salt, slen, pw.data, pw.len, "", 0, alt);
    ok = ok && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) && EVP_DigestUpdate(ctx, pw.data, pw.len) &&
         EVP_DigestUpdate(ctx, magic, 6) && EVP_DigestUpdate(ctx, salt, slen);
    for (size_t left = pw.len; ok && left > 0; left -= left > 16 ? 16 : left)
        ok = EVP_DigestUpdate(ctx, alt, left > 16 ? 16 : left);
    for (size_t bits = pw.len; ok && bits; bits >>= 1)
        ok = EVP_DigestUpdate(ctx, (bits & 1) ? "" : pw.data, 1); /* a NUL, or pw's first */
    unsigned n;
    ok = ok && EVP_DigestFinal_ex(ctx, fin, &n);
    for (int i = 0; ok && i < 1000; i++) {
        const void *first = (i & 1) ? (const void *)pw.data : fin;
        size_t flen = (i & 1) ? pw.len : 16;
        const void *last = (i & 1) ? (const void *)fin : pw.data;
        size_t llen = (i & 1) ? 16 : pw.len;
        ok = md5(ctx, first, flen, salt, (i % 3) ? slen : 0, pw.data, (i % 7) ? pw.len : 0, last,
                 llen, fin);
    }
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return RP_PW_MISMATCH;
    char out[6 + 8 + 1 + 22], *p = out;
    memcpy(p, magic, 6);
    p += 6;
    memcpy(p, salt, slen);
    p += slen;
    *p++ = '$';
    static const unsigned char order[5][3] = {
        {0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}};
    for (int i = 0; i < 5; i++)
        p = to64(p,
                 ((unsigned long)fin[order[i][0]] << 16) | ((unsigned long)fin[order[i][1]] << 8) |
                     fin[order[i][2]],
                 4);
    p = to64(p, fin[11], 2);
    return same(out, (size_t)(p - out), hash.data, hash.len) ? RP_PW_MATCH : RP_PW_MISMATCH;
}

static int crypt_check(rp_str_t hash, rp_str_t pw)
{
    /* crypt_rn takes C strings; its state is large, so one per worker (one thread) */
    static struct crypt_data cd;
    char setting[CRYPT_OUTPUT_SIZE], phrase[CRYPT_MAX_PASSPHRASE_SIZE];
    if (hash.len >= sizeof(setting) || pw.len >= sizeof(phrase) || memchr(pw.data, '\0', pw.len))
        return RP_PW_MISMATCH;
    memcpy(setting, hash.data, hash.len);
    setting[hash.len] = '\0';
    memcpy(phrase, pw.data, pw.len);
    phrase[pw.len] = '\0';
    memset(&cd, 0, sizeof(cd));
    const char *out = crypt_rn(phrase, setting, &cd, sizeof(cd));
    OPENSSL_cleanse(phrase, sizeof(phrase));
    if (out == NULL || out[0] == '*')
        return RP_PW_UNSUPPORTED; /* a scheme libxcrypt does not know, or a bad hash */
    return same(out, strlen(out), hash.data, hash.len) ? RP_PW_MATCH : RP_PW_MISMATCH;
}

static int has_prefix(rp_str_t s, const char *p, size_t n)
{
    return s.len >= n && memcmp(s.data, p, n) == 0;
}

int rp_htpasswd_check(rp_str_t hash, rp_str_t pw)
{
    if (has_prefix(hash, "{PLAIN}", 7))
        return same(hash.data + 7, hash.len - 7, pw.data, pw.len) ? RP_PW_MATCH : RP_PW_MISMATCH;
    if (has_prefix(hash, "{SHA}", 5))
        return sha1_check((rp_str_t){hash.data + 5, hash.len - 5}, pw, 0);
    if (has_prefix(hash, "{SSHA}", 6))
        return sha1_check((rp_str_t){hash.data + 6, hash.len - 6}, pw, 1);
    if (has_prefix(hash, "$apr1$", 6))
        return apr1_check(hash, pw);
    return crypt_check(hash, pw);
}

/* ---- files ---- */

typedef struct {
    rp_str_t user, hash;
} entry_t;

struct rp_htpasswd_s {
    char *path;
    char *text; /* the file's bytes; the entries point into it */
    entry_t *entries;
    size_t nentries;
    struct stat st;  /* as last read */
    int64_t checked; /* when the file was last looked at (ms) */
    int64_t used;    /* for the choice of the file to forget */
    int err;         /* the errno of the last failed read, 0 when read */
};

#define MAX_FILES  64
#define RECHECK_MS 1000

static rp_htpasswd_t *files[MAX_FILES];

static void parse(rp_htpasswd_t *f)
{
    size_t cap = 8, n = 0;
    entry_t *e = malloc(cap * sizeof(*e));
    char *p = f->text, *end = f->text + f->st.st_size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        char *line = p;
        p = nl ? nl + 1 : end;
        if (eol > line && eol[-1] == '\r')
            eol--;
        if (eol == line || line[0] == '#')
            continue;
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon == NULL || colon == line)
            continue;
        char *h = colon + 1;
        char *hend = memchr(h, ':', (size_t)(eol - h)); /* a comment may follow */
        if (hend == NULL)
            hend = eol;
        if (e && n == cap) {
            cap *= 2;
            entry_t *bigger = realloc(e, cap * sizeof(*e));
            if (bigger == NULL)
                break;
            e = bigger;
        }
        if (e == NULL)
            break;
        e[n].user = (rp_str_t){line, (size_t)(colon - line)};
        e[n].hash = (rp_str_t){h, (size_t)(hend - h)};
        n++;
    }
    f->entries = e;
    f->nentries = e ? n : 0;
}

static void drop_contents(rp_htpasswd_t *f)
{
    if (f->text)
        OPENSSL_cleanse(f->text, (size_t)f->st.st_size);
    free(f->text);
    free(f->entries);
    f->text = NULL;
    f->entries = NULL;
    f->nentries = 0;
}

/* Reads the file again when it changed since f->st. 0, or an errno. */
static int refresh(rp_htpasswd_t *f)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (f->text && st.st_size == f->st.st_size && st.st_ino == f->st.st_ino &&
        st.st_dev == f->st.st_dev && st.st_mtim.tv_sec == f->st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec) {
        close(fd);
        return 0;
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (text && got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (text == NULL)
        return ENOMEM;
    drop_contents(f);
    f->text = text;
    f->st = st;
    f->st.st_size = (off_t)got; /* a file that shrank while read: what was read */
    parse(f);
    return 0;
}

const rp_htpasswd_t *rp_htpasswd_get(const char *path, int *err)
{
    int64_t now = rp_time_ms();
    rp_htpasswd_t *f = NULL;
    int free_slot = -1, oldest = 0;
    for (int i = 0; i < MAX_FILES; i++) {
        if (files[i] == NULL) {
            if (free_slot < 0)
                free_slot = i;
            continue;
        }
        if (strcmp(files[i]->path, path) == 0) {
            f = files[i];
            break;
        }
        if (files[oldest] == NULL || files[i]->used < files[oldest]->used)
            oldest = i;
    }
    if (f == NULL) {
        int slot = free_slot >= 0 ? free_slot : oldest;
        if (files[slot]) {
            drop_contents(files[slot]);
            free(files[slot]->path);
            free(files[slot]);
        }
        f = calloc(1, sizeof(*f));
        if (f)
            f->path = strdup(path);
        if (f == NULL || f->path == NULL) {
            free(f);
            files[slot] = NULL;
            *err = ENOMEM;
            return NULL;
        }
        f->checked = now - RECHECK_MS; /* read now */
        files[slot] = f;
    }
    f->used = now;
    if (now - f->checked >= RECHECK_MS) {
        f->checked = now;
        f->err = refresh(f);
        if (f->err)
            drop_contents(f); /* a file gone or unreadable denies, as nginx's read would */
    }
    *err = f->err;
    return f->err ? NULL : f;
}

rp_str_t rp_htpasswd_find(const rp_htpasswd_t *f, rp_str_t user)
{
    for (size_t i = 0; i < f->nentries; i++)
        if (f->entries[i].user.len == user.len &&
            memcmp(f->entries[i].user.data, user.data, user.len) == 0)
            return f->entries[i].hash;
    return (rp_str_t){NULL, 0};
}

/* ---- the cache of verified credentials ---- */

#define CACHE_BUCKETS 128
#define CACHE_WAYS    4

static unsigned char cache[CACHE_BUCKETS][CACHE_WAYS][32];
static unsigned char secret[32];
static int secret_made; /* made in the worker on first use: the master checks nothing */

static int cache_key(rp_str_t user, rp_str_t pw, rp_str_t hash, unsigned char key[32])
{
    if (!secret_made) {
        /* each worker makes its own (the master, which forks them, never checks a
         * password, so it has none to share) */
        if (RAND_bytes(secret, sizeof(secret)) != 1)
            return -1;
        memset(cache, 0, sizeof(cache));
        secret_made = 1;
    }
    uint32_t lens[3] = {(uint32_t)user.len, (uint32_t)pw.len, (uint32_t)hash.len};
    static EVP_MD_CTX *ctx; /* one for the worker's life: no allocation per request */
    if (ctx == NULL && (ctx = EVP_MD_CTX_new()) == NULL)
        return -1;
    unsigned n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
             EVP_DigestUpdate(ctx, secret, sizeof(secret)) &&
             EVP_DigestUpdate(ctx, lens, sizeof(lens)) &&
             EVP_DigestUpdate(ctx, user.data, user.len) && EVP_DigestUpdate(ctx, pw.data, pw.len) &&
             EVP_DigestUpdate(ctx, hash.data, hash.len) && EVP_DigestFinal_ex(ctx, key, &n);
    return ok && n == 32 ? 0 : -1;
}

int rp_htpasswd_cached(rp_str_t user, rp_str_t pw, rp_str_t hash)
{
    unsigned char key[32];
    if (cache_key(user, pw, hash, key) != 0)
        return 0;
    unsigned b = key[0] % CACHE_BUCKETS;
    for (int w = 0; w < CACHE_WAYS; w++)
        if (CRYPTO_memcmp(cache[b][w], key, 32) == 0)
            return 1;
    return 0;
}

void rp_htpasswd_remember(rp_str_t user, rp_str_t pw, rp_str_t hash)
{
    unsigned char key[32];
    if (cache_key(user, pw, hash, key) != 0)
        return;
    unsigned b = key[0] % CACHE_BUCKETS;
    memmove(cache[b][1], cache[b][0], (CACHE_WAYS - 1) * 32); /* the oldest goes */
    memcpy(cache[b][0], key, 32);
}
