/*
 * HTTP Basic authentication, as nginx's auth_basic module:
 *
 *   auth_basic "Restricted area";        (or off; variables allowed)
 *   auth_basic_user_file conf/htpasswd;  (variables allowed)
 *
 * In the access phase a request must carry "Authorization: Basic base64(user:pw)"
 * naming a user of the file whose password matches the entry's hash; otherwise the
 * answer is 401 with "WWW-Authenticate: Basic realm=...". The handler does not answer
 * itself: it returns its grant or denial to the phase runner, which combines it with
 * the other access handlers by `satisfy` (phases.c). A file that does not exist
 * denies with 403 and an unreadable one fails with 500, as nginx.
 *
 * $remote_user is the user the Authorization field names (whether or not a check
 * took place, as nginx's). Reading and caching the file and checking the hashes is
 * htpasswd.c's.
 */
#include "core/log.h"
#include "http/htpasswd.h"
#include "http/request.h"
#include "http/variables.h"

#include <errno.h>
#include <string.h>

typedef struct {
    rp_cv_t *realm; /* NULL: unset; realm_off: "off" */
    int realm_off;
    rp_cv_t *user_file; /* NULL: unset */
    char *conf_dir;     /* prefix of a relative file path computed per request */
} auth_basic_loc_conf_t;

typedef struct {
    int used;
} auth_basic_main_conf_t;

/* ---- the Authorization field ---- */

/* Decodes base64 (padding optional) into out (at least in.len * 3 / 4 bytes). */
static int b64_decode(rp_str_t in, char *out, size_t *outlen)
{
    while (in.len && in.data[in.len - 1] == '=')
        in.len--;
    if (in.len % 4 == 1)
        return -1;
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        int v = rp_base64_value((unsigned char)in.data[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned long)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    *outlen = n;
    return 0;
}

int rp_http_basic_credentials(rp_request_t *r, rp_str_t *user, rp_str_t *pw)
{
    rp_str_t h = rp_request_header(r, "authorization");
    if (h.len < 6 || strncasecmp(h.data, "basic ", 6) != 0)
        return -1;
    rp_str_t b = {h.data + 6, h.len - 6};
    while (b.len && b.data[0] == ' ') {
        b.data++;
        b.len--;
    }
    while (b.len && (b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
        b.len--;
    char *out = rp_arena_alloc(r->arena, b.len * 3 / 4 + 1);
    size_t n;
    if (b.len == 0 || b64_decode(b, out, &n) != 0)
        return -1;
    char *colon = memchr(out, ':', n);
    if (colon == NULL || colon == out)
        return -1; /* as nginx: a user name is required */
    *user = (rp_str_t){out, (size_t)(colon - out)};
    *pw = (rp_str_t){colon + 1, n - (size_t)(colon - out) - 1};
    return 0;
}

/* ---- the access handler ---- */

/* 401 with the challenge; the runner answers it (or keeps it, under satisfy any). */
static int challenge(rp_request_t *r, rp_str_t realm)
{
    size_t n = realm.len + sizeof("Basic realm=\"\"");
    char *v = rp_arena_alloc(r->arena, n);
    int k = snprintf(v, n, "Basic realm=\"%.*s\"", (int)realm.len, realm.data);
    rp_http_add_header(r, RP_STR("WWW-Authenticate"), (rp_str_t){v, (size_t)k});
    return 401;
}

static int auth_basic_handler(rp_request_t *r)
{
    const auth_basic_loc_conf_t *lc = rp_http_loc_conf(r, rp_http_auth_basic_module);
    if (lc->realm == NULL || lc->realm_off || lc->user_file == NULL)
        return RP_DECLINED;
    rp_str_t realm = rp_cv_eval(r, lc->realm);
    if (realm.len == 3 && memcmp(realm.data, "off", 3) == 0)
        return RP_DECLINED; /* a variable said "off", as nginx allows */

    rp_str_t user, pw;
    if (rp_http_basic_credentials(r, &user, &pw) != 0) {
        if (rp_request_header(r, "authorization").data)
            rp_log_error(RP_LOG_INFO, 0, "client sent invalid Basic credentials");
        else
            rp_log_error(RP_LOG_INFO, 0,
                         "no user/password was provided for basic "
                         "authentication");
        return challenge(r, realm);
    }

    rp_str_t file = rp_cv_eval(r, lc->user_file);
    char *path;
    if (lc->conf_dir && (file.len == 0 || file.data[0] != '/'))
        path = rp_arena_sprintf(r->arena, "%s%.*s", lc->conf_dir, (int)file.len, file.data);
    else
        path = rp_arena_strndup(r->arena, file.data, file.len);
    int err;
    const rp_htpasswd_t *f = rp_htpasswd_get(path, &err);
    if (f == NULL) {
        rp_log_error(err == ENOENT ? RP_LOG_ERR : RP_LOG_CRIT, err, "open() \"%s\" failed", path);
        return err == ENOENT ? 403 : RP_ERROR; /* as nginx */
    }
    rp_str_t hash = rp_htpasswd_find(f, user);
    if (hash.data == NULL) {
        rp_log_error(RP_LOG_ERR, 0, "user \"%.*s\" was not found in \"%s\"", (int)user.len,
                     user.data, path);
        return challenge(r, realm);
    }
    if (rp_htpasswd_cached(user, pw, hash))
        return RP_OK;
    int rc = rp_htpasswd_check(hash, pw);
    if (rc == RP_PW_MATCH) {
        rp_htpasswd_remember(user, pw, hash);
        return RP_OK;
    }
    if (rc == RP_PW_UNSUPPORTED)
        rp_log_error(RP_LOG_ERR, 0,
                     "user \"%.*s\": the hash in \"%s\" is of an unknown "
                     "scheme",
                     (int)user.len, user.data, path);
    else
        rp_log_error(RP_LOG_ERR, 0, "user \"%.*s\": password mismatch", (int)user.len, user.data);
    return challenge(r, realm);
}

/* ---- configuration ---- */

static void *create_http_main(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(auth_basic_main_conf_t));
}

static void *create_loc(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(auth_basic_loc_conf_t));
}

static const char *merge_loc(rp_conf_t *cf, void *parent, void *child)
{
    auth_basic_loc_conf_t *p = parent, *c = child;
    if (c->realm == NULL) {
        c->realm = p->realm;
        c->realm_off = p->realm_off;
    }
    if (c->user_file == NULL) {
        c->user_file = p->user_file;
        c->conf_dir = p->conf_dir;
    }
    return RP_CONF_OK;
}

static const char *set_auth_basic(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    auth_basic_loc_conf_t *lc = conf;
    if (lc->realm)
        return "is duplicate";
    lc->realm = rp_arena_calloc(cf->arena, sizeof(rp_cv_t));
    const char *v = cf->argv[1];
    if (strcmp(v, "off") == 0) {
        lc->realm_off = 1;
        return RP_CONF_OK;
    }
    if (strpbrk(v, "\"\r\n"))
        return rp_conf_error(cf, "invalid realm \"%s\": a quote or a line break", v);
    const char *err = rp_cv_compile(cf, v, lc->realm);
    if (err)
        return rp_conf_error(cf, "%s", err);
    auth_basic_main_conf_t *m = cf->http_ctx->main_conf[rp_http_auth_basic_module.index];
    m->used = 1;
    return RP_CONF_OK;
}

static const char *set_user_file(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    auth_basic_loc_conf_t *lc = conf;
    if (lc->user_file)
        return "is duplicate";
    const char *v = cf->argv[1];
    if (*v == '\0')
        return rp_conf_error(cf, "empty file name");
    lc->user_file = rp_arena_calloc(cf->arena, sizeof(rp_cv_t));
    const char *err = rp_cv_compile(cf, v, lc->user_file);
    if (err)
        return rp_conf_error(cf, "%s", err);
    if (!lc->user_file->has_vars) {
        /* relative to the configuration's folder, as nginx's conf prefix */
        char *full = rp_conf_conf_path(cf, v);
        lc->user_file->value = (rp_str_t){full, strlen(full)};
    } else {
        char *x = rp_conf_conf_path(cf, "x");
        lc->conf_dir = rp_arena_strndup(cf->arena, x, strlen(x) - 1);
    }
    return RP_CONF_OK;
}

static const char *postconfiguration(rp_conf_t *cf)
{
    auth_basic_main_conf_t *m = rp_http_main_conf(cf->cycle, &rp_http_auth_basic_module);
    if (m && m->used)
        rp_http_add_phase_handler(cf, RP_PHASE_ACCESS, auth_basic_handler);
    return RP_CONF_OK;
}

#define WHERE (RP_CTX_HTTP | RP_CTX_SERVER | RP_CTX_LOCATION)

static const rp_command_t commands[] = {
    {"auth_basic", WHERE, 0, 1, 1, set_auth_basic, RP_CONF_LOC, 0, NULL},
    {"auth_basic_user_file", WHERE, 0, 1, 1, set_user_file, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_auth_basic_module = {
    .name = "http_auth_basic",
    .commands = commands,
    .create_http_main = create_http_main,
    .create_loc = create_loc,
    .merge_loc = merge_loc,
    .postconfiguration = postconfiguration,
};
