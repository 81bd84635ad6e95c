/*
 * `split_clients STRING $variable { PERCENT VALUE; ... * VALUE; }`, as nginx's
 * ngx_http_split_clients_module: for A/B tests and canaries. When a request first
 * reads the variable, STRING (text with variables: "${remote_addr}AAA") is evaluated
 * and hashed with MurmurHash2, and the 32-bit hash picks the value: the hash range
 * is cut into consecutive buckets in the order written, each the size of its
 * percentage (up to two decimals), and `*` takes whatever is left. A hash in no
 * bucket (the percentages add up to less than 100% and there is no `*`) gives an
 * empty value. The value is kept for the rest of the request, and `set` may assign
 * the variable, as nginx allows.
 *
 * The bucket boundaries are nginx's to the last integer (a percentage of 0xffffffff,
 * in hundredths, truncated, summed), so a client is sent where nginx sends it.
 * Configuration errors are nginx's: a percentage that is not a positive number with
 * at most two decimals followed by "%", and a total over 100% (a `*` counts as the
 * rest of 100%, so a percentage after it is over); one is reported at the entry
 * where it occurs.
 */
#include "core/murmur.h"
#include "http/request.h"
#include "http/variables.h"

#include <string.h>

typedef struct {
    uint32_t bound; /* the hashes below it go here; 0 for `*`, which takes any */
    rp_str_t value;
} part_t;

typedef struct {
    rp_cv_t source;
    rp_array_t parts; /* part_t, in the order written */
    uint64_t sum;     /* hundredths of a percent so far, while the block is read */
    uint32_t last;    /* the bound of the last bucket so far */
} split_t;

/*
 * Hundredths of a percent in "12.34" (n characters, the "%" already off): digits with
 * at most one dot and at most two digits after it. 0 for anything else, and for 0
 * itself, which is no bucket at all.
 */
static uint32_t parse_percent(const char *s, size_t n)
{
    uint64_t v = 0;
    int dot = 0, decimals = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (dot)
                return 0;
            dot = 1;
            continue;
        }
        if (s[i] < '0' || s[i] > '9' || (dot && decimals == 2))
            return 0;
        decimals += dot;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > UINT32_MAX)
            return 0;
    }
    for (; decimals < 2; decimals++)
        v *= 10;
    return v > UINT32_MAX ? 0 : (uint32_t)v;
}

static const char *split_entry(rp_conf_t *cf, void *data)
{
    split_t *sp = data;
    const char *key = cf->argv[0];
    size_t len = strlen(key);
    if (cf->argc != 2)
        return rp_conf_error(cf, "invalid number of the split_clients parameters");

    part_t *part = rp_array_push(&sp->parts);
    part->value = (rp_str_t){rp_arena_strdup(cf->arena, cf->argv[1]), strlen(cf->argv[1])};
    if (strcmp(key, "*") == 0) {
        part->bound = 0;
        sp->sum = 10000; /* the rest of 100%: nothing may follow but another `*` */
        return RP_CONF_OK;
    }
    uint32_t percent = len > 1 && key[len - 1] == '%' ? parse_percent(key, len - 1) : 0;
    if (percent == 0)
        return rp_conf_error(cf, "invalid percent value \"%s\"", key);
    sp->sum += percent;
    if (sp->sum > 10000)
        return rp_conf_error(cf, "percent total is greater than 100%%");
    /* nginx's arithmetic, so that the boundaries match it exactly */
    sp->last += (uint32_t)((uint64_t)percent * 0xffffffffu / 10000);
    part->bound = sp->last;
    return RP_CONF_OK;
}

static int split_get(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const split_t *sp = (const split_t *)v->data;
    rp_str_t src = rp_cv_eval(r, &sp->source);
    uint32_t hash = rp_murmur_hash2(src.data, src.len);
    const part_t *part = sp->parts.elts;
    for (size_t i = 0; i < sp->parts.nelts; i++) {
        if (hash < part[i].bound || part[i].bound == 0) {
            *out = part[i].value;
            return 0;
        }
    }
    *out = RP_STR("");
    return 0;
}

static const char *set_split_clients(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *name = cf->argv[2];
    if (name[0] != '$' || name[1] == '\0')
        return rp_conf_error(cf, "invalid variable name \"%s\"", name);
    split_t *sp = rp_arena_calloc(cf->arena, sizeof(*sp));
    const char *err = rp_cv_compile(cf, cf->argv[1], &sp->source);
    if (err)
        return err;
    rp_array_init(&sp->parts, cf->arena, 4, sizeof(part_t));
    rp_var_t *v = rp_var_declare(cf, name + 1, strlen(name + 1), 0);
    if (v == NULL)
        return RP_CONF_ERROR;

    const char *rv = rp_conf_parse_entries(cf, RP_CTX_HTTP, split_entry, sp);
    if (rv != RP_CONF_OK)
        return rv;
    v->get = split_get;
    v->set = NULL;
    v->data = (uintptr_t)sp;
    v->flags = RP_VAR_CHANGEABLE;
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"split_clients", RP_CTX_HTTP, RP_CMD_BLOCK, 2, 2, set_split_clients, RP_CONF_MAIN, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_split_clients_module = {
    .name = "http_split_clients",
    .commands = commands,
};
