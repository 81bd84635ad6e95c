/*
 * Variables and compiled values. A directive argument such as
 * "https://$host$request_uri" is split once, at configuration time, into
 * literal pieces and variable getters; evaluating it per request is a loop of
 * copies with no parsing. Names with a prefix ($http_*, $arg_*, $cookie_*) carry
 * the rest of the name as the getter's argument.
 */
#ifndef RP_VARIABLES_H
#define RP_VARIABLES_H

#include "conf/conf.h"
#include "core/str.h"
#include "http/request.h"

typedef int (*rp_var_get_pt)(rp_request_t *r, rp_str_t arg, rp_str_t *out);

typedef struct {
    rp_str_t literal;  /* used when get is NULL */
    rp_var_get_pt get;
    rp_str_t arg;
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

/* Evaluates cv for r into request memory; an unset variable is empty. */
rp_str_t rp_cv_eval(rp_request_t *r, const rp_cv_t *cv);

/* Finds a variable getter by name (without "$"); NULL when unknown. */
rp_var_get_pt rp_var_lookup(const char *name, size_t len, rp_str_t *arg);

/* The request's id (32 hex digits, 128 random bits), made on first use. */
rp_str_t rp_request_id(rp_request_t *r);

#endif
