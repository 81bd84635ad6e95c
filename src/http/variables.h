/*
 * Variables and compiled values.
 *
 * Every module registers the variables it knows (a table of rp_var_def_t, from
 * its preconfiguration); `set` and `map` declare new ones, and the named groups
 * of a location's or server_name's regex become variables too. A variable has a
 * getter, optionally a setter, and flags: a prefix family ($http_NAME,
 * $arg_NAME, $cookie_NAME, $sent_http_NAME, $upstream_http_NAME) takes the rest
 * of the name as the getter's argument. A value is computed when first used and
 * kept for the rest of the request, unless the variable says it can change
 * (RP_VAR_NOCACHE: $uri, $args, $request_time, $status, ...), as nginx caches.
 *
 * A directive argument such as "https://$host$request_uri" is split once, at
 * configuration time, into literal pieces and variables; evaluating it per
 * request is a loop of copies with no parsing. $1..$9 are the captures of the
 * last regex that matched (the location's, else the server name's).
 */
#ifndef RP_VARIABLES_H
#define RP_VARIABLES_H

#include "conf/conf.h"
#include "core/str.h"
#include "http/request.h"

typedef struct rp_var_s rp_var_t;

/* Stores the value in *out (request or configuration memory) and returns 0, or returns
 * -1 when the variable has no value in this request (logged as "-"). */
typedef int (*rp_var_get_pt)(rp_request_t *r, const rp_var_t *v, rp_str_t *out);
typedef void (*rp_var_set_pt)(rp_request_t *r, const rp_var_t *v, rp_str_t value);

#define RP_VAR_PREFIX     0x01u /* the name is a prefix; the rest of a name is v->arg */
#define RP_VAR_CHANGEABLE 0x02u /* `set` may assign it */
#define RP_VAR_NOCACHE    0x04u /* evaluated at every use */
#define RP_VAR_SLOT       0x08u /* the value lives in the request (set, captures): no getter */
#define RP_VAR_UNKNOWN    0x10u /* used before a directive declared it (a map further on) */

/* A module's table entry; a table ends with an entry whose name is NULL. */
typedef struct rp_var_def_s {
    const char *name;
    rp_var_get_pt get;
    rp_var_set_pt set;
    unsigned flags;
    uintptr_t data;
} rp_var_def_t;

struct rp_var_s {
    rp_str_t name;
    rp_var_get_pt get;
    rp_var_set_pt set;
    unsigned flags;
    uintptr_t data;
    rp_str_t arg; /* a prefix family's member: the rest of its name ("user_agent") */
    int index;    /* its slot in the request's values; -1 until a value refers to it */
    const rp_var_t *prefix; /* the family a member belongs to */
    /* RP_VAR_UNKNOWN: where it was first used, for the error if nothing declares it */
    const char *file, *directive;
    unsigned line;
};

/* Registers a module's variables (call from its preconfiguration). Returns NULL or the
 * error (a name registered twice). */
const char *rp_var_register(rp_conf_t *cf, const rp_var_def_t *defs);

/*
 * Finds a variable by name (without "$"), making the member of a prefix family on
 * first use. NULL when unknown.
 */
rp_var_t *rp_var_find(rp_conf_t *cf, const char *name, size_t len);

/*
 * Declares a variable a directive creates (`set $x`, `map ... $x`, a named capture):
 * returns the existing one when it may be declared again (a changeable variable, or a
 * member of a prefix family such as $arg_x, which reads as its family until assigned),
 * a new one with flags otherwise. NULL with an error in cf->error when the name is a
 * variable that may not be assigned.
 */
rp_var_t *rp_var_declare(rp_conf_t *cf, const char *name, size_t len, unsigned flags);

/* Fails (with file, line and directive of the first use) if a value refers to a variable
 * that nothing declared by the end of the configuration. RP_CONF_OK or RP_CONF_ERROR. */
const char *rp_var_check_declared(rp_conf_t *cf);

/* Gives v a slot in the request's values (for a variable used in a value). */
void rp_var_use(rp_conf_t *cf, rp_var_t *v);

/* v's value in r (cached per its flags); -1 when it has none. v must be in use. */
int rp_var_get(rp_request_t *r, const rp_var_t *v, rp_str_t *out);

/* Assigns v in r: through its setter, or into its slot. The value must live as long as r. */
void rp_var_set(rp_request_t *r, const rp_var_t *v, rp_str_t value);

/* Whether any value of the configuration refers to a variable whose name starts so. */
int rp_var_used(const rp_cycle_t *cycle, const char *prefix);

/* ---- compiled values ---- */

typedef struct {
    rp_str_t literal; /* used when var is NULL and capture is 0 */
    const rp_var_t *var;
    int capture; /* $1..$9: 1..9 */
} rp_cv_part_t;

typedef struct {
    rp_cv_part_t *parts;
    size_t nparts;
    int has_vars;
    rp_str_t value; /* the whole value when it has no variables */
} rp_cv_t;

/*
 * Compiles src. Returns NULL or an error message (unknown variable, a bad
 * "${" reference). "\$" stands for a literal dollar sign.
 */
const char *rp_cv_compile(rp_conf_t *cf, const char *src, rp_cv_t *cv);

/* Whether a part is literal text. */
static inline int rp_cv_part_literal(const rp_cv_part_t *part)
{
    return part->var == NULL && part->capture == 0;
}

/* The value of one part in r: 0, or -1 for a variable without a value (out is then ""). */
int rp_cv_part_value(rp_request_t *r, const rp_cv_part_t *part, rp_str_t *out);

/* Evaluates cv for r into request memory; a variable without a value is empty. */
rp_str_t rp_cv_eval(rp_request_t *r, const rp_cv_t *cv);

/* ---- regexes with captures ---- */

typedef struct rp_http_regex_s {
    pcre2_code *re;
    unsigned ncaptures; /* capturing groups */
    unsigned nnamed;
    struct {
        unsigned group;
        const rp_var_t *var;
    } *named; /* (?<name>...) groups and the variables they set */
} rp_http_regex_t;

/* Compiles a location's or server name's regex; its named groups become variables.
 * NULL with the message in err. */
rp_http_regex_t *rp_http_regex_compile(rp_conf_t *cf, const char *pattern, int caseless,
                                       char *err, size_t errlen);

/* Matches subject; on a match r's captures ($1..$9 and the named ones) become this
 * match's. Returns 1 on a match, 0 otherwise. */
int rp_http_regex_exec(rp_request_t *r, const rp_http_regex_t *re, rp_str_t subject);

/* Makes r's captures those a match of re on subject left in ovector (pairs of them). */
void rp_http_regex_captures(rp_request_t *r, const rp_http_regex_t *re, rp_str_t subject,
                            const size_t *ovector, unsigned pairs);

/* Finds the field named by a variable's argument ("user_agent" for User-Agent: "_" for
 * "-", any case) among h[0..n). 0 with its value, or -1. */
int rp_http_find_field(const rp_header_t *h, unsigned n, rp_str_t arg, rp_str_t *out);

/* The request's id (32 hex digits, 128 random bits), made on first use. */
rp_str_t rp_request_id(rp_request_t *r);

/* The http core module's variables ($host, $uri, $http_NAME, ...), registered by it. */
extern const rp_var_def_t rp_http_core_variables[];

#endif
