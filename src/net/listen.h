/*
 * Listening sockets. The master creates them, one per worker per address with
 * SO_REUSEPORT, so the kernel spreads connections across workers without a
 * shared accept lock. Socket i of an address is handed to worker i of every
 * generation: across a reload the backlog of socket i is never closed, so no
 * queued connection is lost.
 */
#ifndef RP_LISTEN_H
#define RP_LISTEN_H

#include "core/cycle.h"
#include "http/http.h"

#include <sys/socket.h>

typedef struct rp_listening_s {
    struct sockaddr_storage sa;
    socklen_t socklen;
    char *text;
    int backlog;
    int ipv6only;
    int rcvbuf, sndbuf;
    const rp_listen_opt_t *opts_from; /* the listen that set the socket options */
    int *fds; /* one per worker, -1 until opened */
    int nfds;
    rp_http_addr_t *http; /* the servers behind this address */
    rp_cycle_t *cycle;    /* the generation that declared it */
    /* Starts a protocol on an accepted connection; called again after its TLS handshake. */
    void (*handler)(struct rp_conn_s *c);
} rp_listening_t;

/*
 * Parses a listen address: "8080", "127.0.0.1:8080", "[::1]:8080", "*:8080",
 * "localhost:8080". Returns NULL or an error message (arena-allocated).
 */
const char *rp_listen_parse_addr(rp_arena_t *arena, const char *text, struct sockaddr_storage *sa,
                                 socklen_t *len, char **canonical);

/* Formats an address as "1.2.3.4:80" or "[::1]:80" into buf. */
void rp_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);

/*
 * Splits "host:port", "[v6]:port", "host" or "[v6]" into host (at most cap bytes with
 * its NUL, without brackets) and port (dflt when none). NULL, or an error message
 * (arena-allocated).
 */
const char *rp_addr_split(rp_arena_t *arena, const char *text, int dflt, char *host, size_t cap,
                          int *port);

/* host as an IPv4 or IPv6 literal, with port, in sa and len; 0, or -1 for a name. */
int rp_addr_literal(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len);

/*
 * Every address of host with port, each once, up to max: a literal's one, or those a
 * name has now (getaddrinfo, as nginx at configuration time), in the resolver's order.
 * Their number; 0 when the name is not found.
 */
unsigned rp_addr_lookup(const char *host, int port, struct sockaddr_storage *sa, socklen_t *lens,
                        unsigned max);

/*
 * Opens every socket the cycle needs for nworkers workers, taking over sockets
 * of the same address and index from old (may be NULL), which are then marked
 * as moved. Returns 0, or -1 with a message in err (nothing of the new cycle is
 * left open then, and old is untouched).
 */
int rp_listen_open(rp_cycle_t *cycle, rp_cycle_t *old, int nworkers, char *err, size_t errlen);

/*
 * Steers new connections of every address to sockets 0..n-1 of its reuseport
 * group, so that after a reload to fewer workers nothing lands on a socket that
 * is about to close. Returns 0, or -1 when the kernel refuses the program (then
 * the default hash applies, which is still correct while the count is unchanged).
 */
int rp_listen_steer(rp_cycle_t *cycle, int nworkers);

/*
 * In a master started by a binary upgrade, before its first generation opens its
 * sockets: notes the sockets named in value ("fd:index;...", RAMPART_LISTEN), so that
 * rp_listen_open takes them over instead of binding again. Those the configuration
 * does not use are closed once it has opened its own.
 */
void rp_listen_inherit(const char *value);

/*
 * Writes the open sockets of cycle as "fd:index;..." into buf (cap bytes) and their
 * descriptors into fds. Returns their number, or -1 when buf or fds is too small.
 */
int rp_listen_export(const rp_cycle_t *cycle, char *buf, size_t cap, int *fds, int maxfds);

/* Closes the sockets a cycle still owns. */
void rp_listen_close(rp_cycle_t *cycle);

/* In worker i: closes every socket that belongs to other workers. */
void rp_listen_keep_only(rp_cycle_t *cycle, int index);

/* The module that opens and steers a generation's sockets (init_master) and, in a
 * worker, closes the other workers' (init_worker) and the helper's (init_helper). */
extern rp_module_t rp_listen_module;

#endif
