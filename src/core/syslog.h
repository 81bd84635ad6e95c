/*
 * Logging to a syslog server, for `access_log syslog:...` and `error_log syslog:...`,
 * with nginx's parameters (https://nginx.org/en/docs/syslog.html):
 *   syslog:server=ADDR[:PORT]|unix:PATH[,facility=F][,severity=S][,tag=T][,nohostname]
 * Messages are RFC 5424 (nginx sends RFC 3164's older form), one datagram each, over
 * UDP or a Unix datagram socket, sent without ever waiting: a datagram the network or
 * a full receiver cannot take is lost, never a stalled worker.
 */
#ifndef RP_SYSLOG_H
#define RP_SYSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/* The largest datagram sent; a longer message is cut (UDP's limit over IPv4). */
#define RP_SYSLOG_MAX 65507

/* Room for the header rp_syslog_header writes (a 255-byte host name included). */
#define RP_SYSLOG_HEADER_MAX 400

typedef struct rp_syslog_s {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int fd; /* -1 until the first message */
    int facility, severity;
    int nohostname;
    char tag[33];
    char server[128]; /* as written, for messages */
    time_t last_error;
} rp_syslog_t;

/*
 * Parses the part after "syslog:" into s (resolving the server's name, so at
 * configuration time only). Returns 0, or -1 with the message in err.
 */
int rp_syslog_parse(const char *spec, rp_syslog_t *s, char *err, size_t errlen);

/* Writes the RFC 5424 header of a message of s at severity (-1: s's own) at now_ms
 * (milliseconds since the epoch) into buf (RP_SYSLOG_HEADER_MAX bytes); returns its
 * length: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - ". */
size_t rp_syslog_header(const rp_syslog_t *s, int severity, int64_t now_ms, char *buf);

/* Sends one whole message (header and text, no newline), cut at RP_SYSLOG_MAX, without
 * waiting. Returns 0, or the errno of a datagram that was dropped. */
int rp_syslog_send(rp_syslog_t *s, const char *msg, size_t len);

/* Closes s's socket (the cycle that owned it is going away). */
void rp_syslog_close(rp_syslog_t *s);

#endif
