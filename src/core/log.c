/*
 * Error log implementation. The descriptor is inherited across fork, and each
 * process reopens on USR1 itself, so rotation never leaves one process writing
 * into a deleted file. With `error_log syslog:...` each message is instead an RFC
 * 5424 datagram (core/syslog.c), its severity the message's level.
 */
#include "core/log.h"
#include "core/syslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

static int log_fd = 2;
/* Until error_log is opened, warnings about the configuration reach stderr (as with nginx -t). */
static int log_level = RP_LOG_WARN;
static char log_path[4096];
static int log_ident;
/* error_log syslog:...: messages go there instead of log_fd */
static rp_syslog_t log_syslog;
static int use_syslog;

static const char *const level_names[] = {"emerg", "alert", "crit", "error",
                                          "warn",  "notice", "info", "debug"};

int rp_log_level_parse(const char *name, int *level)
{
    for (int i = 0; i <= RP_LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    return -1;
}

static uid_t log_owner = (uid_t)-1;

void rp_log_give(int fd);

void rp_log_set_owner(uid_t uid)
{
    log_owner = uid;
    if (log_fd > 2)
        rp_log_give(log_fd); /* opened by main() before the configuration was applied */
}

void rp_log_give(int fd)
{
    struct stat st;
    if (log_owner == (uid_t)-1 || geteuid() != 0 || fstat(fd, &st) != 0 || st.st_uid == log_owner)
        return;
    if (fchown(fd, log_owner, (gid_t)-1) != 0)
        rp_log_error(RP_LOG_WARN, errno, "fchown() of a log file to uid %u failed",
                     (unsigned)log_owner);
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        rp_log_give(fd);
    return fd;
}

int rp_log_open(const char *path, int level)
{
    int fd = 2;
    if (path && strncmp(path, "syslog:", 7) == 0) {
        char err[256];
        rp_syslog_t s;
        if (rp_syslog_parse(path + 7, &s, err, sizeof(err)) != 0) {
            errno = EINVAL; /* checked when the configuration was read */
            return -1;
        }
        if (use_syslog)
            rp_syslog_close(&log_syslog);
        if (log_fd > 2)
            close(log_fd);
        log_fd = 2;
        log_syslog = s;
        use_syslog = 1;
        log_path[0] = '\0';
        log_level = level;
        return 0;
    }
    if (path && strcmp(path, "stderr") != 0) {
        fd = open_path(path);
        if (fd < 0)
            return -1;
        snprintf(log_path, sizeof(log_path), "%s", path);
    } else {
        log_path[0] = '\0';
    }
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    log_level = level;
    if (use_syslog)
        rp_syslog_close(&log_syslog);
    use_syslog = 0;
    return 0;
}

int rp_log_reopen(void)
{
    if (log_path[0] == '\0')
        return 0;
    int fd = open_path(log_path);
    if (fd < 0) {
        int err = errno;
        rp_log_error(RP_LOG_ALERT, err, "reopening \"%s\" failed", log_path);
        return -1;
    }
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    return 0;
}

void rp_log_set_ident(int ident)
{
    log_ident = ident;
}

int rp_log_enabled(int level)
{
    if (rp_log_current)
        return level <= rp_log_current->max_level;
    return level <= log_level;
}

const rp_log_t *rp_log_current;

/* The line nginx writes without its date, which the RFC 5424 header carries:
 * "[error] 1234#0: message". The syslog severity is the level (the same numbers). */
static void syslog_error(rp_syslog_t *sl, int level, int err, const char *fmt, va_list ap)
{
    char buf[2048 + RP_SYSLOG_HEADER_MAX];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    size_t n = rp_syslog_header(sl, level, (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, buf);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "[%s] %d#%d: ", level_names[level],
                          (int)getpid(), log_ident);
    int w = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    if (w > 0)
        n += (size_t)w;
    if (n > sizeof(buf) - 64)
        n = sizeof(buf) - 64;
    if (err)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " (%d: %s)", err, strerror(err));
    rp_syslog_send(sl, buf, n); /* a lost message cannot be reported anywhere */
}

static void file_error(int fd, int level, int err, const char *fmt, va_list ap)
{
    char buf[2048];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y/%m/%d %H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, " [%s] %d#%d: ", level_names[level],
                          (int)getpid(), log_ident);
    int w = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    if (w > 0)
        n += (size_t)w;
    if (n > sizeof(buf) - 64)
        n = sizeof(buf) - 64;
    if (err)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " (%d: %s)", err, strerror(err));
    buf[n++] = '\n';
    ssize_t rc = write(fd, buf, n);
    (void)rc; /* nothing sensible to do if the log itself cannot be written */
}

/* A request's log: every sink whose level lets the message through gets it. */
static void current_error(const rp_log_t *log, int level, int err, const char *fmt, va_list ap)
{
    for (unsigned i = 0; i < log->nsinks; i++) {
        const rp_log_sink_t *k = &log->sinks[i];
        if (level > k->level)
            continue;
        va_list aq;
        va_copy(aq, ap);
        if (k->syslog)
            syslog_error(k->syslog, level, err, fmt, aq);
        else if (k->file == NULL || k->file->fd >= 0)
            file_error(k->file ? k->file->fd : 2, level, err, fmt, aq);
        va_end(aq);
    }
}

void rp_log_verror(int level, int err, const char *fmt, va_list ap)
{
    if (rp_log_current) {
        current_error(rp_log_current, level, err, fmt, ap);
        return;
    }
    if (level > log_level)
        return;
    if (use_syslog)
        syslog_error(&log_syslog, level, err, fmt, ap);
    else
        file_error(log_fd, level, err, fmt, ap);
}

void rp_log_error(int level, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rp_log_verror(level, err, fmt, ap);
    va_end(ap);
}
