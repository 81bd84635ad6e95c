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

/* Whether a message at level would be written. */
int rp_log_enabled(int level);

#endif
