/*
 * The configuration model: modules declare their directives in tables next to
 * their own code, and the parser dispatches each directive to the table entry
 * that allows it in the current context. Every module may keep a main
 * configuration, and inside `http` a per-server and a per-location one; a
 * location inherits what it does not set from its server and from `http`
 * through the module's merge callback. This is nginx's shape, deliberately: an
 * nginx user should be able to predict what every directive does.
 */
#ifndef RP_CONF_H
#define RP_CONF_H

#include "conf/lexer.h"
#include "core/arena.h"

#include <stddef.h>
#include <stdint.h>

/* Contexts a directive may appear in. */
#define RP_CTX_MAIN     0x01u
#define RP_CTX_EVENTS   0x02u
#define RP_CTX_HTTP     0x04u
#define RP_CTX_SERVER   0x08u
#define RP_CTX_LOCATION 0x10u
#define RP_CTX_UPSTREAM 0x20u
#define RP_CTX_ANY      0xffu
/* Inside an `if` block of a server (SIF) or of a location (LIF), as nginx's
 * NGX_HTTP_SIF_CONF / NGX_HTTP_LIF_CONF: only directives that name these run there. */
#define RP_CTX_SIF 0x40u
#define RP_CTX_LIF 0x80u

/* Which configuration structure a directive's offset points into. */
enum {
    RP_CONF_MAIN,      /* cycle-wide: one per module */
    RP_CONF_HTTP_MAIN, /* the http block's main conf */
    RP_CONF_SRV,       /* the current server (or http, inherited by servers) */
    RP_CONF_LOC,       /* the current location (or server/http, inherited) */
    RP_CONF_UPS,       /* the current upstream block */
};

#define RP_CMD_BLOCK 0x01u /* the directive opens a { } block */

#define RP_ARGS_ANY 255

/* A setter's way of saying "already reported in cf->error, do not wrap". */
#define RP_CONF_ERROR ((const char *)-1)
#define RP_CONF_OK    NULL

#define RP_CONF_UNSET       (-1)
#define RP_CONF_UNSET_UINT  ((unsigned)-1)
#define RP_CONF_UNSET_SIZE  ((size_t)-1)
#define RP_CONF_UNSET_MSEC  ((int64_t)-1)
#define RP_CONF_UNSET_PTR   ((void *)-1)

#define RP_CONF_MERGE(conf, prev, unset, def)                                                  \
    do {                                                                                       \
        if ((conf) == (unset))                                                                 \
            (conf) = ((prev) == (unset)) ? (def) : (prev);                                     \
    } while (0)

typedef struct rp_conf_s rp_conf_t;
typedef struct rp_command_s rp_command_t;
typedef struct rp_cycle_s rp_cycle_t;

/* Returns RP_CONF_OK, RP_CONF_ERROR, or a message the parser prefixes with file:line. */
typedef const char *(*rp_conf_set_pt)(rp_conf_t *cf, const rp_command_t *cmd, void *conf);

struct rp_command_s {
    const char *name;
    unsigned ctx;                      /* RP_CTX_* where allowed */
    unsigned flags;                    /* RP_CMD_* */
    unsigned char min_args, max_args; /* not counting the name; max RP_ARGS_ANY */
    rp_conf_set_pt set;
    unsigned conf; /* RP_CONF_* */
    size_t offset;
    const void *post; /* setter-specific: an enum table, bounds, ... */
};

/* Flags of the master's init hook. */
#define RP_INIT_TEST   0x01u /* rampart -t: open and check what a start would, bind and map nothing */
#define RP_INIT_SINGLE 0x02u /* master_process off: this process will serve itself */

typedef struct rp_module_s {
    const char *name;
    const rp_command_t *commands; /* terminated by an entry with name NULL */

    /* Before the configuration files are read: register variables. */
    const char *(*preconfiguration)(rp_conf_t *cf);

    void *(*create_main)(rp_conf_t *cf);
    const char *(*init_main)(rp_conf_t *cf, void *conf);

    void *(*create_http_main)(rp_conf_t *cf);
    const char *(*init_http_main)(rp_conf_t *cf, void *conf);
    void *(*create_srv)(rp_conf_t *cf);
    const char *(*merge_srv)(rp_conf_t *cf, void *parent, void *child);
    void *(*create_loc)(rp_conf_t *cf);
    const char *(*merge_loc)(rp_conf_t *cf, void *parent, void *child);
    void *(*create_ups)(rp_conf_t *cf);

    /* After the whole file is parsed and merged: cross-references, derived tables, phase
     * handlers, filters. */
    const char *(*postconfiguration)(rp_conf_t *cf);

    /*
     * Process hooks (core/modules.c runs them in module order; the exit hooks in
     * reverse). init_master: in the process that loaded the configuration, before it
     * forks the generation's workers (at start and at each reload; prev is the
     * generation being replaced, or NULL): open files, map memory, bind sockets.
     * Returns 0, or -1 with a message in err (file:line where it applies); the
     * configuration is then refused and a reload keeps the old one.
     */
    int (*init_master)(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                       size_t errlen);
    /* The master stops serving cycle: a reload replaced it (called before the new
     * generation forks, so no child inherits what is released here), or the master
     * stops. Releases what must not outlive that moment (listening sockets). */
    void (*stop_master)(rp_cycle_t *cycle);
    /* USR1: reopen log files (in the master and in each child). */
    void (*reopen)(rp_cycle_t *cycle);
    /* A worker starts serving cycle (also a single process after an in-place reload). */
    int (*init_worker)(rp_cycle_t *cycle);
    /* The worker stops taking new work for cycle (graceful stop, or it was replaced). */
    void (*stop_worker)(rp_cycle_t *cycle);
    /* The worker exits. */
    void (*exit_worker)(rp_cycle_t *cycle);
    /* The helper process starts and exits. */
    int (*init_helper)(rp_cycle_t *cycle);
    void (*exit_helper)(rp_cycle_t *cycle);
    /* In the master: a child of cycle's generation has exited (clean: exit code 0),
     * however it ended, before it is replaced. What the child held in shared memory
     * that nobody else will give back (a crashed worker's in-flight counts) is given
     * back here. */
    void (*child_exited)(rp_cycle_t *cycle, int pid, int clean);

    size_t index; /* set by rp_modules_init */
} rp_module_t;

/* The configuration arrays of one level inside http. */
typedef struct {
    void **main_conf;
    void **srv_conf;
    void **loc_conf;
} rp_http_conf_ctx_t;

/* One file read while parsing, kept for `rampart -T`. */
typedef struct {
    const char *path;
    const char *text;
    size_t len;
} rp_conf_file_t;

typedef struct rp_include_s rp_include_t;

struct rp_conf_s {
    rp_cycle_t *cycle;
    rp_arena_t *arena; /* the cycle's: lives as long as the configuration */

    unsigned ctx;                 /* current RP_CTX_* */
    rp_http_conf_ctx_t *http_ctx; /* inside http/server/location */
    void **ups_conf;              /* inside upstream */

    /* The directive being handled: argv[0] is its name. */
    char **argv;
    size_t argc;
    const char *file;
    unsigned line;

    /* Inside a block of entries (rp_conf_parse_entries): reads every entry. */
    const char *(*handler)(rp_conf_t *cf, void *data);
    void *handler_data;

    rp_lexer_t *lexer;     /* the file being read */
    rp_include_t *include; /* stack of files, for cycles and messages */
    unsigned depth;

    /* While an `if` block is read: touched[m] is set for every module whose directive
     * appears in it (the block's level then keeps its own configuration of m). */
    unsigned char *touched;

    char error[2048];
};

/* The registry of modules, in initialization order. */
extern rp_module_t *const rp_modules[];
extern const size_t rp_nmodules;

/* Assigns module indexes; idempotent. */
void rp_modules_init(void);

/* Runs every module's init_master hook; the first failure stops and returns -1 with err. */
int rp_modules_init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                           size_t errlen);

/* Runs every module's stop_master hook (in reverse order). */
void rp_modules_stop_master(rp_cycle_t *cycle);

/* Runs every module's reopen hook. */
void rp_modules_reopen(rp_cycle_t *cycle);

/* The child_exited hooks, in module order. */
void rp_modules_child_exited(rp_cycle_t *cycle, int pid, int clean);

/* The hooks of a child process, by its kind (rp_process): init_worker/init_helper,
 * stop_worker, exit_worker/exit_helper. init returns -1 when one failed (logged). */
int rp_modules_init_process(rp_cycle_t *cycle);
void rp_modules_stop_process(rp_cycle_t *cycle);
void rp_modules_exit_process(rp_cycle_t *cycle);

/*
 * Parses path (and what it includes) into cf->cycle. Returns 0, or -1 with the
 * message in cf->error, always of the form "FILE:LINE: ..." when a place is known.
 */
int rp_conf_parse_file(rp_conf_t *cf, const char *path, unsigned ctx);

/*
 * Parses the block that a block directive's setter is handling, in context ctx,
 * up to its closing "}". Returns RP_CONF_OK or RP_CONF_ERROR.
 */
const char *rp_conf_parse_block(rp_conf_t *cf, unsigned ctx);

/*
 * Parses the block of a block directive whose body holds entries rather than
 * directives (map's "key value;" lines): handler gets each one in cf->argv, with
 * file:line set; `include` still works and its file's entries go to handler too.
 */
const char *rp_conf_parse_entries(rp_conf_t *cf, unsigned ctx,
                                  const char *(*handler)(rp_conf_t *cf, void *data), void *data);

/* Words a command's accepted argument count ("1 argument", "2 or more arguments") into buf. */
const char *rp_conf_arity_text(const rp_command_t *cmd, char *buf, size_t len);

/* Whether name is one of nginx's directives (nginx_directives.c), for the message
 * refusing a directive no module registered. */
int rp_conf_nginx_directive(const char *name);

/* Formats an error for the current directive into cf->error; returns RP_CONF_ERROR. */
const char *rp_conf_error(rp_conf_t *cf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs a warning about the current directive ("FILE:LINE: ...") to the error log. */
void rp_conf_warn(rp_conf_t *cf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Where a relative path in the configuration leads, by nginx's rule. Files rampart
 * writes or serves at run time (pid, error_log, access_log) are resolved against the
 * prefix (-p): rp_conf_full_path. Files that are part of the configuration (include,
 * certificates, keys, CA lists, ticket keys, OCSP responses) are resolved against the
 * folder of the main configuration file, whichever file names them:
 * rp_conf_conf_path. Absolute paths are kept; the result lives in cf's arena.
 */
char *rp_conf_full_path(rp_conf_t *cf, const char *path);
char *rp_conf_conf_path(rp_conf_t *cf, const char *path);

/* Generic setters. Each reports "duplicate" when the field is already set. */
const char *rp_conf_set_flag(rp_conf_t *cf, const rp_command_t *cmd, void *conf); /* int: on|off */
const char *rp_conf_set_num(rp_conf_t *cf, const rp_command_t *cmd, void *conf);  /* int >= 0 */
const char *rp_conf_set_size(rp_conf_t *cf, const rp_command_t *cmd, void *conf); /* size_t */
const char *rp_conf_set_msec(rp_conf_t *cf, const rp_command_t *cmd, void *conf); /* int64_t ms */
const char *rp_conf_set_str(rp_conf_t *cf, const rp_command_t *cmd, void *conf);  /* char * */
const char *rp_conf_set_path(rp_conf_t *cf, const rp_command_t *cmd, void *conf); /* prefixed */

/* Value parsers: return 0 and store, or -1 for a malformed or out-of-range value. */
int rp_parse_int(const char *s, long max, long *out);
int rp_parse_size(const char *s, size_t *out);
int rp_parse_msec(const char *s, int64_t *out);
int rp_parse_flag(const char *s, int *out);

#endif
