/*
 * `map SOURCE $variable { ... }`, as nginx's ngx_http_map_module: the variable's
 * value is looked up from SOURCE (any text with variables) when a request first
 * reads it, and kept for the request unless the map says `volatile`.
 *
 * Entries, in nginx's order of precedence: exact keys (compared without regard
 * to case, as nginx lowercases them), then with `hostnames` the wildcard names
 * ("*.example.com" and ".example.com", the longest match first, then
 * "www.example.*"), then the `~` and `~*` regexes in the order written (their
 * captures, numbered and named, can be used in the value), then `default` (an
 * empty value without one). A key starting with "\" is taken literally ("\~" for
 * a key beginning with a tilde). Values may hold variables. `include FILE`
 * reads more entries.
 */
#include "http/request.h"
#include "http/variables.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    rp_str_t key; /* lowercase; for wildcards without the "*" */
    rp_cv_t value;
    const char *file, *as_written; /* for the message about a second entry with this key */
    unsigned line, order;
} entry_t;

typedef struct {
    rp_http_regex_t *re;
    rp_cv_t value;
} regex_entry_t;

typedef struct {
    rp_cv_t source;
    int hostnames;
    int has_default;
    rp_cv_t dflt;
    rp_array_t exact; /* entry_t, sorted once the block is read */
    rp_array_t head;  /* entry_t: ".example.com" (from "*.example.com" or ".example.com") */
    rp_array_t tail;  /* entry_t: "www.example." (from "www.example.*") */
    rp_array_t regex; /* regex_entry_t */
    int volatile_;
} map_t;

static int cmp_key(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.data, y->key.data, n);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

/* Sorted by key, and for the same key in the order written. */
static int cmp_entry(const void *a, const void *b)
{
    int c = cmp_key(a, b);
    const entry_t *x = a, *y = b;
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static char *lower_copy(rp_arena_t *a, const char *s, size_t n)
{
    char *d = rp_arena_alloc(a, n + 1);
    for (size_t i = 0; i < n; i++)
        d[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    d[n] = '\0';
    return d;
}

/* Adds an entry; a second one with the same key is found once the block is read. */
static const char *add_key(rp_conf_t *cf, rp_array_t *list, const char *key, size_t len,
                           const rp_cv_t *value)
{
    entry_t *n = rp_array_push(list);
    n->key = (rp_str_t){key, len};
    n->value = *value;
    n->file = cf->file;
    n->line = cf->line;
    n->as_written = rp_arena_strdup(cf->arena, cf->argv[0]);
    n->order = (unsigned)list->nelts;
    return RP_CONF_OK;
}

/* Sorts a list of keys and refuses one written twice, as nginx does. */
static const char *sort_keys(rp_conf_t *cf, rp_array_t *list)
{
    entry_t *e = list->elts;
    if (list->nelts > 1)
        qsort(e, list->nelts, sizeof(entry_t), cmp_entry);
    for (size_t i = 1; i < list->nelts; i++) {
        if (cmp_key(&e[i - 1], &e[i]) == 0) {
            snprintf(cf->error, sizeof(cf->error),
                     "%s:%u: \"map\": conflicting parameter \"%s\"", e[i].file, e[i].line,
                     e[i].as_written);
            return RP_CONF_ERROR;
        }
    }
    return RP_CONF_OK;
}

/*
 * A key of a `hostnames` map: an exact name or a wildcard, as server_name takes them and
 * in nginx's order: ".example.com" (the name and every name under it), "*.example.com",
 * "www.example.*", else an exact name. A key with two "*", a "*" elsewhere, or ".." is
 * refused, as nginx refuses it.
 */
static const char *add_hostname(rp_conf_t *cf, map_t *m, const char *key, const rp_cv_t *value)
{
    size_t len = strlen(key);
    char *low = lower_copy(cf->arena, key, len);
    const char *star = strchr(low, '*');
    if ((star && strchr(star + 1, '*')) || strstr(low, ".."))
        return rp_conf_error(cf, "invalid hostname or wildcard \"%s\"", key);
    if (len > 1 && low[0] == '.') {
        const char *rv = add_key(cf, &m->exact, low + 1, len - 1, value);
        if (rv != RP_CONF_OK)
            return rv;
        return add_key(cf, &m->head, low, len, value);
    }
    if (len > 2 && low[0] == '*' && low[1] == '.')
        return add_key(cf, &m->head, low + 1, len - 1, value);
    if (len > 2 && low[len - 2] == '.' && low[len - 1] == '*')
        return add_key(cf, &m->tail, low, len - 1, value);
    if (star)
        return rp_conf_error(cf, "invalid hostname or wildcard \"%s\"", key);
    return add_key(cf, &m->exact, low, len, value);
}

static const char *map_entry(rp_conf_t *cf, void *data)
{
    map_t *m = data;
    const char *key = cf->argv[0];
    if (cf->argc == 1 && strcmp(key, "hostnames") == 0) {
        m->hostnames = 1;
        return RP_CONF_OK;
    }
    if (cf->argc == 1 && strcmp(key, "volatile") == 0) {
        m->volatile_ = 1;
        return RP_CONF_OK;
    }
    if (cf->argc != 2)
        return rp_conf_error(cf, "invalid number of the map parameters");
    rp_cv_t value;
    const char *err = rp_cv_compile(cf, cf->argv[1], &value);
    if (err)
        return err;
    if (strcmp(key, "default") == 0) {
        if (m->has_default)
            return rp_conf_error(cf, "duplicate default map parameter");
        m->has_default = 1;
        m->dflt = value;
        return RP_CONF_OK;
    }
    if (key[0] == '~') {
        int caseless = key[1] == '*';
        char errbuf[512];
        regex_entry_t *re = rp_array_push(&m->regex);
        re->re = rp_http_regex_compile(cf, key + 1 + caseless, caseless, errbuf, sizeof(errbuf));
        if (re->re == NULL)
            return rp_conf_error(cf, "%s", errbuf);
        re->value = value;
        return RP_CONF_OK;
    }
    if (key[0] == '\\')
        key++;
    if (m->hostnames)
        return add_hostname(cf, m, key, &value);
    size_t len = strlen(key);
    return add_key(cf, &m->exact, lower_copy(cf->arena, key, len), len, &value);
}

/* The longest entry of list that the name ends with (head) or starts with (tail). */
static const entry_t *find_wildcard(const rp_array_t *list, rp_str_t name, int head)
{
    const entry_t *e = list->elts, *best = NULL;
    for (size_t i = 0; i < list->nelts; i++) {
        size_t k = e[i].key.len;
        if (k >= name.len || (best && k <= best->key.len))
            continue;
        const char *at = head ? name.data + name.len - k : name.data;
        if (memcmp(at, e[i].key.data, k) == 0)
            best = &e[i];
    }
    return best;
}

static int map_get(rp_request_t *r, const rp_var_t *v, rp_str_t *out)
{
    const map_t *m = (const map_t *)v->data;
    rp_str_t src = rp_cv_eval(r, &m->source);
    if (m->hostnames && src.len && src.data[src.len - 1] == '.')
        src.len--;
    rp_str_t low = {lower_copy(r->arena, src.data, src.len), src.len};

    entry_t probe = {.key = low};
    const entry_t *hit = m->exact.nelts ? bsearch(&probe, m->exact.elts, m->exact.nelts,
                                                  sizeof(entry_t), cmp_key)
                                        : NULL;
    if (hit == NULL && m->hostnames && low.len) {
        hit = find_wildcard(&m->head, low, 1);
        if (hit == NULL)
            hit = find_wildcard(&m->tail, low, 0);
    }
    if (hit) {
        *out = rp_cv_eval(r, &hit->value);
        return 0;
    }
    const regex_entry_t *re = m->regex.elts;
    for (size_t i = 0; src.len && i < m->regex.nelts; i++) {
        if (rp_http_regex_exec(r, re[i].re, src)) {
            *out = rp_cv_eval(r, &re[i].value);
            return 0;
        }
    }
    *out = m->has_default ? rp_cv_eval(r, &m->dflt) : RP_STR("");
    return 0;
}

static const char *set_map(rp_conf_t *cf, const rp_command_t *cmd, void *conf)
{
    const char *name = cf->argv[2];
    if (name[0] != '$' || name[1] == '\0')
        return rp_conf_error(cf, "invalid variable name \"%s\"", name);
    map_t *m = rp_arena_calloc(cf->arena, sizeof(*m));
    const char *err = rp_cv_compile(cf, cf->argv[1], &m->source);
    if (err)
        return err;
    rp_array_init(&m->exact, cf->arena, 8, sizeof(entry_t));
    rp_array_init(&m->head, cf->arena, 2, sizeof(entry_t));
    rp_array_init(&m->tail, cf->arena, 2, sizeof(entry_t));
    rp_array_init(&m->regex, cf->arena, 2, sizeof(regex_entry_t));
    rp_var_t *v = rp_var_declare(cf, name + 1, strlen(name + 1), 0);
    if (v == NULL)
        return RP_CONF_ERROR;

    const char *rv = rp_conf_parse_entries(cf, RP_CTX_HTTP, map_entry, m);
    if (rv != RP_CONF_OK)
        return rv;
    if (sort_keys(cf, &m->exact) != RP_CONF_OK || sort_keys(cf, &m->head) != RP_CONF_OK ||
        sort_keys(cf, &m->tail) != RP_CONF_OK)
        return RP_CONF_ERROR;
    v->get = map_get;
    v->set = NULL;
    v->data = (uintptr_t)m;
    v->flags = RP_VAR_CHANGEABLE | (m->volatile_ ? RP_VAR_NOCACHE : 0);
    return RP_CONF_OK;
}

static const rp_command_t commands[] = {
    {"map", RP_CTX_HTTP, RP_CMD_BLOCK, 2, 2, set_map, RP_CONF_MAIN, 0, NULL},
    {NULL, 0, 0, 0, 0, NULL, 0, 0, NULL},
};

rp_module_t rp_http_map_module = {
    .name = "http_map",
    .commands = commands,
};
