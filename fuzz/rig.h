/*
 * The fuzz targets' bench for what needs more of rampart than a pure parser: a
 * configuration loaded from text, a process set up as `master_process off` would
 * (modules' master and worker hooks, one event loop) without forking or serving a
 * real port, client connections on socketpairs handed to the listening address as
 * if accepted, and a scripted backend on a loopback port that answers every
 * connection with the bytes a target gives it.
 *
 * Everything a run leaves behind (connections, upstream sessions) is closed before
 * the next input, so an input replays the same alone or after a million others.
 */
#ifndef RP_FUZZ_RIG_H
#define RP_FUZZ_RIG_H

#include "core/cycle.h"

#include <stddef.h>
#include <stdint.h>

/* A folder of its own for configuration files (made once per process). */
const char *rig_dir(void);

/* Writes text as rig_dir()/name and loads it with rp_cycle_load; NULL with err on a
 * refusal. */
rp_cycle_t *rig_load(const char *name, const char *text, size_t len, char *err, size_t errlen);

/* A loopback port nothing listens on now (for a `listen` the rig never accepts on). */
int rig_free_port(void);

/* Runs the modules' master hooks (RP_INIT_SINGLE) and worker hooks on cycle with a new
 * event loop, as rampart does with `master_process off`. Aborts on a failure. */
void rig_serve(rp_cycle_t *cycle);

/* A connection to the cycle's first listening address: returns the client's end of a
 * socketpair (non-blocking), whose other end rampart took as accepted. */
int rig_client(rp_cycle_t *cycle);

/* The scripted backend: listens on a loopback port (returned) and answers each connection
 * it accepts with the script's bytes: at once when `when` is NULL, else as soon as
 * when(what it has read so far) says so (rampart's request has arrived); then it reads
 * and drops what it is sent until rig_backend_close_all. The script must stay valid
 * until then. */
int rig_backend_port(void);
void rig_backend_script(const uint8_t *data, size_t len,
                        int (*when)(const uint8_t *seen, size_t n));
/* Bytes the backend sends as soon as it accepts, before the script (an HTTP/2 server's
 * SETTINGS, which a client may wait for before it sends its request). */
void rig_backend_greeting(const uint8_t *data, size_t len);
/* Triggers: an HTTP/2 HEADERS frame after the client preface; an HTTP/1 head's end. */
int rig_seen_h2_headers(const uint8_t *seen, size_t n);
int rig_seen_h1_head(const uint8_t *seen, size_t n);
/* How many connections the backend accepted since the process started. */
unsigned rig_backend_accepted(void);
/* Closes the backend's connections (EOF to rampart's upstream side). */
void rig_backend_close_all(void);

/*
 * Runs the event loop until nothing is ready (no event fires without waiting), reading
 * what rampart writes to client_fd (if >= 0) into out (if not NULL, up to cap; *outlen
 * updated). Timers that are not due do not run: a run never waits on the clock.
 */
void rig_run(int client_fd, uint8_t *out, size_t cap, size_t *outlen);

/* Ends everything a run left: the client's end, the backend's connections, the worker's
 * connections and idle upstream sessions, then runs the loop until it is quiet. */
void rig_finish(int client_fd);

#endif
