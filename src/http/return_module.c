/*
 * `return CODE [TEXT|URL]` and `return URL`, as in nginx. In a server block it
 * runs before a location is chosen (the usual "redirect everything" idiom); in a
 * location it runs once that location is chosen. For 301, 302, 303, 307 and 308
 * the argument is the Location; for other codes it is the body. Code 444 closes
 * the connection without an answer. Arguments may contain variables.
 */
#include "http/conn.h"
#include "http/request.h"
#include "http/variables.h"

#include <limits.h>
#include <string.h>

typedef struct {
    int code; /* 0 when unset */
    int has_text;
    rp_cv_t text;
} return_conf_t;

static void *create_conf(rp_conf_t *cf)
{
    return rp_arena_calloc(cf->arena, sizeof(return_conf_t));
}

static int is_redirect(int code)
{
    return code == 301 || code == 302 || code == 303 || code == 307 || code == 308;
}

static const char *set_return(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    return_conf_t *rc = conf;
    if (rc->code)
        return "duplicate directive";

    const char *first = cf->argv[1];
    long code;
    const char *text = NULL;
    if (rp_parse_int(first, 999, &code) == 0) {
        if (code > 999 || (code < 100))
            return rp_conf_error(cf, "invalid return code \"%s\"", first);
        if (cf->argc == 3)
            text = cf->argv[2];
    } else if (cf->argc == 2 && (strncmp(first, "http://", 7) == 0 ||
                                 strncmp(first, "https://", 8) == 0 ||
                                 strncmp(first, "$scheme", 7) == 0)) {
        code = 302;
        text = first;
    } else {
        return rp_conf_error(cf, "invalid return code \"%s\"", first);
    }
    rc->code = (int)code;
    if (text) {
        const char *err = rp_cv_compile(cf, text, &rc->text);
        if (err)
            return err;
        rc->has_text = 1;
    }
    return RP_CONF_OK;
}

/*
 * A redirect's target may hold variables the client controls ($uri is decoded, so
 * "%0d%0a" in the request becomes CR LF there): control bytes are percent-encoded
 * back, so they can never split the response head (nginx's well-known pitfall with
 * `return 301 https://host$uri`).
 */
static rp_str_t safe_location(rp_request_t *r, rp_str_t v)
{
    size_t bad = 0;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.data[i] < 0x20 || v.data[i] == 0x7f)
            bad++;
    if (bad == 0)
        return v;
    char *d = rp_arena_alloc(r->arena, v.len + 2 * bad);
    size_t k = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.data[i];
        if (ch < 0x20 || ch == 0x7f) {
            d[k++] = '%';
            d[k++] = "0123456789ABCDEF"[ch >> 4];
            d[k++] = "0123456789ABCDEF"[ch & 15];
        } else {
            d[k++] = (char)ch;
        }
    }
    return (rp_str_t){d, k};
}

static int run_return(rp_request_t *r, const return_conf_t *rc)
{
    if (rc->code == 0)
        return RP_DECLINED;
    if (rc->code == 444) {
        r->status = 444;
        rp_http_close_now(r);
        return RP_DONE;
    }
    if (is_redirect(rc->code)) {
        if (rc->has_text) {
            rp_str_t loc = safe_location(r, rp_cv_eval(r, &rc->text));
            rp_http_add_header(r, RP_STR("Location"), loc);
        }
        return rp_http_send_error(r, rc->code);
    }
    if (!rc->has_text) {
        if (rc->code >= 400)
            return rp_http_send_error(r, rc->code);
        return rp_http_send_response(r, rc->code, RP_NULL_STR, RP_STR(""));
    }
    rp_str_t body = rp_cv_eval(r, &rc->text);
    const char *type = r->clcf->default_type;
    return rp_http_send_response(r, rc->code, (rp_str_t){type, strlen(type)}, body);
}

extern rp_module_t rp_http_return_module;

static int server_return(rp_request_t *r)
{
    return_conf_t *rc = r->srv->ctx->srv_conf[rp_http_return_module.index];
    return run_return(r, rc);
}

static int location_return(rp_request_t *r)
{
    return_conf_t *rc = r->loc_conf[rp_http_return_module.index];
    return run_return(r, rc);
}

static const char *postconfiguration(rp_conf_t *cf)
{
    rp_http_add_phase_handler(cf, RP_PHASE_SERVER_REWRITE, server_return);
    rp_http_add_phase_handler(cf, RP_PHASE_REWRITE, location_return);
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"return", RP_CTX_SERVER, 0, 1, 2, set_return, RP_CONF_SRV, 0, NULL},
    {"return", RP_CTX_LOCATION, 0, 1, 2, set_return, RP_CONF_LOC, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

/* Neither level merges: a server's return fires before locations, a location's is its own. */
rp_module_t rp_http_return_module = {
    .name = "http_return",
    .commands = commands,
    .create_srv = create_conf,
    .create_loc = create_conf,
    .postconfiguration = postconfiguration,
};
