/*
 * The error log: one file (or stderr) per process, a level threshold, and
 * nginx's line format so existing log tooling reads it:
 *   2026/11/21 14:55:00 [error] 1234#0: message
 * Writes are a single write(2) of a whole line to an O_APPEND descriptor, so lines
 * from different processes never interleave.
 */
#ifndef RP_LOG_H
#define RP_LOG_H

#include <stdarg.h>
#include <sys/types.h>

enum {
    RP_LOG_EMERG = 0,
    RP_LOG_ALERT,
    RP_LOG_CRIT,
    RP_LOG_ERR,
    RP_LOG_WARN,
    RP_LOG_NOTICE,
    RP_LOG_INFO,
    RP_LOG_DEBUG,
};

/* Parses "error", "warn", ... into *level; returns 0 or -1 for an unknown name. */
int rp_log_level_parse(const char *name, int *level);

/* Points the log at path (NULL or "stderr" for standard error, "syslog:..." for a syslog
 * server). Returns 0 or -1 with errno. */
int rp_log_open(const char *path, int level);

/* Reopens the current file (USR1): the old descriptor is kept if the open fails. */
int rp_log_reopen(void);

/* Sets the tag printed after the pid, e.g. the worker index. */
void rp_log_set_ident(int ident);

/*
 * The user the workers run as (the "user" directive), or (uid_t)-1. A master running
 * as root gives that user every log file it opens or reopens (rp_log_give, also for
 * the access logs), so that the workers can reopen them after a rotation.
 */
void rp_log_set_owner(uid_t uid);
void rp_log_give(int fd);

/* Logs at level; err, when non-zero, appends strerror(err) the way nginx does. */
void rp_log_error(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rp_log_verror(int level, int err, const char *fmt, va_list ap);

/* Whether a message at level would be written (to the current log, see below). */
int rp_log_enabled(int level);

/*
 * The logs of a part of the configuration (`error_log` in http, server, location):
 * while rp_log_current points at one, messages go to its sinks, each at its own
 * level, instead of the main log, as nginx logs a request's messages to its
 * location's error_log. NULL (the default) is the main log. Whoever runs a
 * request's code from the event loop sets it around that work (rp_log_enter).
 */
typedef struct rp_log_file_s {
    const char *path;
    int fd; /* -1 until opened */
} rp_log_file_t;

typedef struct {
    rp_log_file_t *file;          /* NULL: stderr, or syslog */
    struct rp_syslog_s *syslog;   /* error_log syslog:... */
    int level;
} rp_log_sink_t;

typedef struct rp_log_s {
    rp_log_sink_t *sinks;
    unsigned nsinks;
    int max_level; /* the highest of the sinks' levels, for rp_log_enabled */
} rp_log_t;

extern const rp_log_t *rp_log_current;

/* Makes log current and returns the previous one, for rp_log_leave. */
static inline const rp_log_t *rp_log_switch(const rp_log_t *log)
{
    const rp_log_t *saved = rp_log_current;
    rp_log_current = log;
    return saved;
}
static inline void rp_log_leave(const rp_log_t *saved)
{
    rp_log_current = saved;
}

#endif
