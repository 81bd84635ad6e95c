/*
 * What the Lua module's files share (src/lua/): the configuration structures,
 * the VM of a generation, and the API parts of the core.
 */
#ifndef RP_LUA_INT_H
#define RP_LUA_INT_H

#include "lua/lua.h"

#include "core/cycle.h"

#include <stdint.h>

#ifndef RP_LUA_DIR
#define RP_LUA_DIR "/usr/local/share/rampart/lua"
#endif

typedef struct {
    lua_State *L;
    size_t used; /* bytes the VM holds */
    size_t cap;  /* lua_max_memory; 0: no cap */
    int running; /* hooks running now: the cap applies only then (lua_vm.c) */
    int *hook_refs; /* every compiled hook, for lua_max_running_time's jit.off */
    size_t nhooks;
    int jit_off;    /* hooks run interpreted (lua_max_running_time is set) */
} rp_lua_vm_t;

/* One hook: Lua code from a block or a file, compiled in the VM. */
typedef struct {
    const char *src; /* a block's code (in the configuration's text) */
    size_t len;
    const char *file; /* the configuration file, for Lua's messages */
    unsigned line;    /* where the block's code starts */
    const char *path; /* *_by_lua_file: the script */
    int ref;          /* the compiled chunk in the registry */
} rp_lua_hook_t;

typedef struct {
    rp_lua_vm_t *vm;
    char *package_path, *package_cpath;
    int code_cache;
    size_t max_memory;
    int64_t max_running_time;
    rp_lua_hook_t *init, *init_worker;
    int has_hooks;
    int worker_count;   /* for ngx.worker.count() */
    const char *prefix; /* for ngx.config.prefix() */
} rp_lua_main_conf_t;

typedef struct {
    rp_lua_hook_t *rewrite, *access, *content, *header_filter, *body_filter, *log;
    /* set by merge: the location (or server) runs a hook of this kind */
} rp_lua_loc_conf_t;

extern rp_module_t rp_lua_module;
extern rp_module_t rp_lua_timer_module; /* lua_timer.c: the timers' limits and their stop */
extern rp_module_t rp_lua_balancer_module; /* balancer_by_lua (lua_balancer.c) */

/* The VM of the configuration being read (made on first use). */
rp_lua_vm_t *rp_lua_vm_get(rp_conf_t *cf, rp_lua_main_conf_t *lmcf);

/* Compiles hook in the VM; an error names file and line. */
const char *rp_lua_compile(rp_conf_t *cf, rp_lua_main_conf_t *lmcf, rp_lua_hook_t *hook);

/* Pushes msg with the chunk name Lua shortened ("...end/of/name:LINE: ...") put back
 * whole when it is the end of full; returns the pushed string. */
const char *rp_lua_full_place(lua_State *L, const char *msg, const char *full);

/* Reads the hook of the directive being handled (a block, or the file its last argument
 * names) and compiles it: for directives of other files (balancer_by_lua). */
const char *rp_lua_read_hook(rp_conf_t *cf, int block, rp_lua_hook_t **out);

/* Pushes a hook's function (reloaded from its file when code_cache is off). 0 or -1 with
 * the error message pushed. */
int rp_lua_push_hook(lua_State *L, const rp_lua_hook_t *hook, int code_cache);

/* In init_master: package paths, the ngx table, the prelude. */
int rp_lua_vm_finish(rp_cycle_t *cycle, rp_lua_main_conf_t *lmcf, char *err, size_t errlen);

void rp_lua_set_vm(lua_State *L);

/* The light userdata a wait yields (the prelude passes it up through coroutines). */
void *rp_lua_wait_token(void);

/* The core's API parts. */
void rp_lua_api_core(lua_State *L, rp_cycle_t *cycle);   /* lua_api.c */
void rp_lua_api_output(lua_State *L, rp_cycle_t *cycle); /* lua_output.c */

/* ---- running hooks in a request (lua_run.c) ---- */

/* Runs (or continues) hook in r for phase: RP_OK (done, next phase), RP_AGAIN
 * (waiting), RP_DONE (answered), RP_ERROR (failed: answer 500). */
int rp_lua_run_request_hook(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase);

/* Runs hook to its end without waiting (header/body filters, set_by_lua): 0 with its
 * results on (*out)->L, or -1 (logged). Free *out with rp_lua_co_free either way. */
int rp_lua_run_sync(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase,
                    rp_lua_co_t **out);

/* Runs hook for r in phase in a coroutine that may wait outside the request's phases
 * (balancer_by_lua: the attempt engine resumes the request itself). 0: it ended (its
 * results on (*out)->L; free *out); -1: it failed (logged; free *out); 1: it waits:
 * the coroutine (whose `user` is user) goes on from the loop, serving r, and
 * on_done(co, 0 or LUA_ERR*) is called at its end, after which the runner frees it;
 * the caller frees *out itself only if r ends before that. */
int rp_lua_run_attached(rp_request_t *r, const rp_lua_hook_t *hook, rp_lua_phase_t phase,
                        void (*on_done)(rp_lua_co_t *co, int status), void *user,
                        rp_lua_co_t **out);

/* Runs a log hook; if it waits it goes on detached from the request. */
int rp_lua_run_log_hook(rp_request_t *r, const rp_lua_hook_t *hook);

void rp_lua_co_free(rp_lua_co_t *co);

/* A coroutine record for r (or none) in phase, and resuming it with nargs values. */
rp_lua_co_t *rp_lua_co_new(rp_request_t *r, rp_lua_phase_t phase);
int rp_lua_co_resume(rp_lua_co_t *co, int nargs);

/* ---- light threads (lua_thread.c) ---- */

/* The request's light threads still running (not ended). */
int rp_lua_threads_live(rp_request_t *r);
/* Ends every light thread of r (ngx.exit, the entry thread's error, the request's end). */
void rp_lua_threads_kill(rp_request_t *r);
/* The request ends: its light threads and their records go. */
void rp_lua_threads_cleanup(rp_request_t *r);
/* A coroutine record goes (rp_lua_co_free): a timer's light threads it spawned lose
 * their parent, those that ended go with it. */
void rp_lua_threads_orphan(rp_lua_co_t *co);

/* The request's state of the Lua module. */
typedef struct {
    rp_lua_co_t *co;  /* the hook running or waiting */
    int ctx_ref;      /* ngx.ctx: LUA_NOREF until used */
    int status;       /* ngx.status set before the head */
    unsigned eof : 1; /* ngx.eof() called */
    unsigned body_done : 1; /* body_filter_by_lua set ngx.arg[2]: the rest is dropped */
    unsigned drop_body : 1; /* header_filter_by_lua failed: a bare 500 went instead */
    unsigned failed : 1;    /* a filter refused the head or the body (a header or body
                             * filter hook's error): the response can only be cut */
    rp_lua_co_t *hf_co;     /* header_filter_by_lua waiting */
    struct rp_lua_threads_s *threads; /* lua_thread.c: light threads; NULL until a spawn */
    rp_lua_co_t *drain_waiters; /* coroutines (entry, light threads) waiting for a drain */
} rp_lua_req_t;

rp_lua_req_t *rp_lua_req(rp_request_t *r);

/* The running code's request, or a Lua error "no request found". */
rp_request_t *rp_lua_check_request(lua_State *L);

/* ngx.exit(code): ends the running hook (yields for good); in filters only marks it. */
int rp_lua_exit(lua_State *L, int code);

/* The exit code of a hook that moved its request elsewhere (ngx.exec): the request's
 * phases go on from the loop, so the hook's handler returns RP_AGAIN. */
#define RP_LUA_EXIT_MOVED (-1000)

/* Sends the response head if it is not out yet (lua_output.c). 0 or -1. */
int rp_lua_send_head(rp_request_t *r);

/* content_by_lua's content handler (lua_module.c). */
int rp_lua_content_handler(rp_request_t *r);

/* Pushes ngx.arg (set_by_lua's arguments, body_filter's chunk and eof); 0 when none. */
int rp_lua_push_arg(lua_State *L);

/* Set when the worker stops: ngx.worker.exiting(). */
extern int rp_lua_worker_exiting;

/* ---- safety (lua_watchdog.c) ---- */

/* The outermost run of Lua code the worker is in (numbered by lua_run.c), 0 between
 * runs. */
extern _Atomic uint64_t rp_lua_running_run;

/* lua_max_running_time: starts the worker's watchdog (ms > 0), or sets its new limit. */
void rp_lua_watchdog_start(int64_t ms);

/* After a run ended: removes the stop hook if the watchdog set one. */
void rp_lua_watchdog_run_ended(lua_State *L);

/* Installs the atpanic handler: logs, and the worker exits for the master to replace. */
void rp_lua_set_panic(lua_State *L);

/* The main conf of the worker's configuration. */
extern rp_lua_main_conf_t *rp_lua_main;

#endif
