/*
 * Syslog messages (RFC 5424) for the access and error logs.
 *
 * The header: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG",
 * with PRI = facility * 8 + severity, TIMESTAMP the local time with milliseconds and
 * the UTC offset (RFC 3339), HOSTNAME this machine's name ("-" with nohostname),
 * APP-NAME the tag ("rampart" by default), PROCID the sending process's pid, no
 * MSGID and no structured data ("-" each). The message is sent as is (MSG-ANY: no
 * BOM, since a log line holds whatever bytes the client sent, escaped or not).
 *
 * nginx sends RFC 3164 ("<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG"); its parameters
 * and their defaults (facility local7, severity info, port 514) are kept.
 *
 * Sending. A datagram socket per destination, opened on the first message of a
 * process (no socket is made for a destination a process never writes to), written
 * with sendto() and MSG_DONTWAIT: no connect, so a receiver that restarts (a Unix
 * socket bound anew) is found again by the next message, and a full receiver or a
 * refused datagram costs that line, never a wait.
 */
#include "core/syslog.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static const char *const facilities[] = {
    "kern",   "user",   "mail",     "daemon", "auth",   "intern", "lpr",    "news",
    "uucp",   "clock",  "authpriv", "ftp",    "ntp",    "audit",  "alert",  "cron",
    "local0", "local1", "local2",   "local3", "local4", "local5", "local6", "local7",
};

static const char *const severities[] = {"emerg", "alert",  "crit", "error",
                                         "warn",  "notice", "info", "debug"};

/* ---- parsing ----------------------------------------------------------------------------- */

static int find_name(const char *const *names, int n, const char *v, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && strncmp(names[i], v, len) == 0)
            return i;
    return -1;
}

static int parse_server(const char *v, size_t len, rp_syslog_t *s, char *err, size_t errlen)
{
    if (len >= sizeof(s->server)) {
        snprintf(err, errlen, "syslog server \"%.*s\" is too long", (int)len, v);
        return -1;
    }
    memcpy(s->server, v, len);
    s->server[len] = '\0';
    if (len > 5 && strncmp(v, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)&s->addr;
        if (len - 5 >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "syslog socket path \"%s\" is too long", s->server + 5);
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, v + 5, len - 5);
        un->sun_path[len - 5] = '\0';
        s->addrlen = (socklen_t)sizeof(*un);
        return 0;
    }

    char host[128], port[8] = "514";
    const char *h = s->server, *colon;
    size_t hlen;
    if (h[0] == '[') { /* [IPv6]:port */
        const char *close = strchr(h, ']');
        if (close == NULL)
            goto invalid;
        hlen = (size_t)(close - h - 1);
        memcpy(host, h + 1, hlen);
        colon = close[1] == ':' ? close + 1 : close[1] == '\0' ? NULL : (const char *)-1;
        if (colon == (const char *)-1)
            goto invalid;
    } else {
        colon = strrchr(h, ':');
        if (colon && strchr(h, ':') != colon)
            goto invalid; /* a bare IPv6 address must be in brackets */
        hlen = colon ? (size_t)(colon - h) : strlen(h);
        memcpy(host, h, hlen);
    }
    host[hlen] = '\0';
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end || p < 1 || p > 65535)
            goto invalid;
        snprintf(port, sizeof(port), "%ld", p);
    }
    if (hlen == 0)
        goto invalid;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "host not found in syslog server \"%s\": %s", s->server,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
    s->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;

invalid:
    snprintf(err, errlen, "invalid syslog server \"%s\"", s->server);
    return -1;
}

int rp_syslog_parse(const char *spec, rp_syslog_t *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->facility = 23; /* local7 */
    s->severity = 6;  /* info */
    strcpy(s->tag, "rampart");
    int have_server = 0;

    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 7 && strncmp(p, "server=", 7) == 0) {
            if (parse_server(p + 7, len - 7, s, err, errlen) != 0)
                return -1;
            have_server = 1;
        } else if (len > 9 && strncmp(p, "facility=", 9) == 0) {
            s->facility = find_name(facilities, 24, p + 9, len - 9);
            if (s->facility < 0) {
                snprintf(err, errlen, "unknown syslog facility \"%.*s\"", (int)len - 9, p + 9);
                return -1;
            }
        } else if (len > 9 && strncmp(p, "severity=", 9) == 0) {
            s->severity = find_name(severities, 8, p + 9, len - 9);
            if (s->severity < 0) {
                snprintf(err, errlen, "unknown syslog severity \"%.*s\"", (int)len - 9, p + 9);
                return -1;
            }
        } else if (len > 4 && strncmp(p, "tag=", 4) == 0) {
            /* nginx's rule: at most 32 letters, digits and underscores */
            if (len - 4 > 32) {
                snprintf(err, errlen, "syslog tag length exceeds 32");
                return -1;
            }
            for (size_t i = 4; i < len; i++) {
                char c = p[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_')) {
                    snprintf(err, errlen,
                             "syslog \"tag\" only allows alphanumeric characters and "
                             "underscore");
                    return -1;
                }
            }
            memcpy(s->tag, p + 4, len - 4);
            s->tag[len - 4] = '\0';
        } else if (len == 10 && strncmp(p, "nohostname", 10) == 0) {
            s->nohostname = 1;
        } else {
            snprintf(err, errlen, "unknown syslog parameter \"%.*s\"", (int)len, p);
            return -1;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (!have_server) {
        snprintf(err, errlen, "no syslog server specified");
        return -1;
    }
    return 0;
}

/* ---- the header -------------------------------------------------------------------------- */

static pid_t cached_pid;

static void forgot_pid(void)
{
    cached_pid = 0;
}

/* getpid() is a system call: once per process, again after a fork. */
static pid_t my_pid(void)
{
    static int hooked;
    if (cached_pid == 0) {
        if (!hooked && pthread_atfork(NULL, NULL, forgot_pid) == 0)
            hooked = 1;
        pid_t pid = getpid();
        if (!hooked)
            return pid;
        cached_pid = pid;
    }
    return cached_pid;
}

static const char *host_name(void)
{
    static char name[256];
    if (name[0] == '\0') {
        if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0')
            strcpy(name, "-");
        for (char *c = name; *c; c++) /* RFC 5424: PRINTUSASCII only */
            if (*c <= ' ' || *c > '~')
                *c = '-';
    }
    return name;
}

size_t rp_syslog_header(const rp_syslog_t *s, int severity, int64_t now_ms, char *buf)
{
    /* The local date and offset, formatted once a second. */
    static time_t cached_sec = -1;
    static char date[24], offset[8];
    time_t sec = (time_t)(now_ms / 1000);
    if (sec != cached_sec) {
        struct tm tm;
        localtime_r(&sec, &tm);
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
        long off = tm.tm_gmtoff / 60;
        char sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        snprintf(offset, sizeof(offset), "%c%02ld:%02ld", sign, off / 60 % 100, off % 60);
        cached_sec = sec;
    }
    int pri = s->facility * 8 + (severity >= 0 ? severity : s->severity);
    int n = snprintf(buf, RP_SYSLOG_HEADER_MAX, "<%d>1 %s.%03d%s %s %s %d - - ", pri, date,
                     (int)(now_ms % 1000), offset, s->nohostname ? "-" : host_name(), s->tag,
                     (int)my_pid());
    return n < 0 ? 0 : n >= RP_SYSLOG_HEADER_MAX ? RP_SYSLOG_HEADER_MAX - 1 : (size_t)n;
}

/* ---- sending ----------------------------------------------------------------------------- */

int rp_syslog_send(rp_syslog_t *s, const char *msg, size_t len)
{
    if (s->fd < 0) {
        s->fd = socket(s->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s->fd < 0)
            return errno;
    }
    if (len > RP_SYSLOG_MAX)
        len = RP_SYSLOG_MAX;
    for (;;) {
        ssize_t n = sendto(s->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
                           (const struct sockaddr *)&s->addr, s->addrlen);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return errno;
    }
}

void rp_syslog_close(rp_syslog_t *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}
