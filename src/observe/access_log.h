/*
 * The access log's process-side interface: the master opens a generation's log
 * files before forking its workers, every process reopens them on USR1, a
 * worker keeps only its own generation's files and flushes its buffers when it
 * exits. The directives themselves (`log_format`, `access_log`) and the log
 * phase handler live in access_log.c.
 */
#ifndef RP_ACCESS_LOG_H
#define RP_ACCESS_LOG_H

#include "conf/conf.h"

#include <stddef.h>

/* log_format escape= modes. */
enum {
    RP_LOG_ESCAPE_DEFAULT, /* " \ and bytes < 0x20 or >= 0x7f as \xHH; an empty value is "-" */
    RP_LOG_ESCAPE_JSON,    /* JSON string content; an empty value is nothing */
    RP_LOG_ESCAPE_NONE,    /* as is; an empty value is nothing */
};

/*
 * Opens (creating it, and one missing parent folder level) every access log
 * file of cycle that is not open yet. Returns 0, or -1 with a message naming
 * the file in err; the files opened so far close when the cycle is destroyed.
 */
int rp_access_log_open(rp_cycle_t *cycle, char *err, size_t errlen);

/* USR1: flushes, then points every open access log at a fresh open of its path. A file
 * that cannot be reopened keeps its old descriptor, and an alert is logged. */
void rp_access_log_reopen(void);

/* In a child after fork: closes the inherited files of every generation but cycle's
 * (NULL: all of them, for a process that never logs requests). */
void rp_access_log_keep_only(const rp_cycle_t *cycle);

/* Writes out every buffered line of this process (a worker about to exit). */
void rp_access_log_flush_all(void);

/*
 * Escapes len bytes of src for a log line in mode (RP_LOG_ESCAPE_*); writes
 * the result to dst unless dst is NULL. Returns the escaped length. The "-"
 * for an empty value is the caller's, not this function's.
 */
size_t rp_access_log_escape(int mode, const char *src, size_t len, char *dst);

extern rp_module_t rp_access_log_module;

#endif
