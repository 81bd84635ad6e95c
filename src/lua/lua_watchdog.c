/*
 * lua_max_running_time: stops a hook that holds the worker too long without
 * yielding, and the VM's last line of defence (lua_atpanic).
 *
 * A script that loops forever blocks every connection of its worker. OpenResty
 * has no remedy; here a watchdog thread per worker looks, every quarter of the
 * limit, at which run of Lua code the worker is in (lua_run.c numbers each
 * outermost resume and publishes the number in rp_lua_running_run, 0 between
 * runs: one relaxed store, no syscall, per run). When it sees the same run for
 * the whole limit it sends the worker's main thread SIGURG; the handler, in the
 * main thread, sets a count hook (lua_sethook is safe there: LuaJIT's own
 * interpreter does the same from its SIGINT handler), and the hook raises
 * "lua script ran longer than TIME" in the running code. The hook stays set until
 * the run ends, so a pcall in the script cannot swallow the error for good: the
 * next instruction after it raises again. lua_run.c clears the hook when the run
 * ends.
 *
 * A run is stopped after between TIME and TIME + TIME/4. The thread is idle
 * otherwise: one wake-up per quarter of the limit, and nothing is armed per run.
 *
 * LuaJIT does not run hooks inside compiled traces: a loop the JIT compiled into
 * a trace that never leaves (a pure arithmetic loop) cannot be stopped. A loop
 * that goes back to the interpreter (a call LuaJIT does not compile, a trace exit)
 * is stopped at that point. rampart-lua(7) lists which.
 *
 * SIGURG is ignored by default, so a late signal after the handler is gone harms
 * nothing; nothing in rampart uses out-of-band TCP data.
 */
#include "lua/lua_int.h"

#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic uint64_t rp_lua_running_run;

static _Atomic int64_t limit_ms; /* lua_max_running_time; 0: off */
static _Atomic uint64_t overdue; /* the run the watchdog found over the limit */
static volatile sig_atomic_t hook_set;
static pthread_t main_thread, watchdog;
static int started;
static char limit_text[32];

static void stop_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    uint64_t run = atomic_load_explicit(&rp_lua_running_run, memory_order_relaxed);
    if (run != 0 && run == atomic_load_explicit(&overdue, memory_order_relaxed))
        luaL_error(L, "lua script ran longer than %s", limit_text);
}

static void on_sigurg(int sig)
{
    (void)sig;
    lua_State *vm = rp_lua_vm();
    uint64_t run = atomic_load_explicit(&rp_lua_running_run, memory_order_relaxed);
    /* the run may have ended between the thread's look and this signal */
    if (vm == NULL || run == 0 || run != atomic_load_explicit(&overdue, memory_order_relaxed))
        return;
    hook_set = 1;
    lua_sethook(vm, stop_hook, LUA_MASKCOUNT, 1);
}

void rp_lua_watchdog_run_ended(lua_State *L)
{
    /* called by lua_run.c after it published "no run" (so a signal arriving now sees
     * no overdue run and does nothing) */
    if (hook_set) {
        hook_set = 0;
        lua_sethook(L, NULL, 0, 0);
    }
}

static void *watch(void *arg)
{
    (void)arg;
    uint64_t seen = 0;
    int64_t seen_for = 0; /* ms the run `seen` has been running, at least */
    for (;;) {
        int64_t limit = atomic_load_explicit(&limit_ms, memory_order_relaxed);
        int64_t tick = limit > 0 ? (limit + 3) / 4 : 1000;
        struct timespec ts = {tick / 1000, (long)(tick % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        if (limit <= 0)
            continue;
        uint64_t run = atomic_load_explicit(&rp_lua_running_run, memory_order_relaxed);
        if (run == 0 || run != seen) {
            /* a new run (or none): it started during the tick just ended */
            seen = run;
            seen_for = 0;
            continue;
        }
        seen_for += tick;
        if (seen_for >= limit && atomic_load_explicit(&overdue, memory_order_relaxed) != run) {
            atomic_store_explicit(&overdue, run, memory_order_relaxed);
            pthread_kill(main_thread, SIGURG);
        }
    }
    return NULL;
}

void rp_lua_watchdog_start(int64_t ms)
{
    atomic_store_explicit(&limit_ms, ms > 0 ? ms : 0, memory_order_relaxed);
    if (ms <= 0)
        return;
    if (ms % 1000 == 0)
        snprintf(limit_text, sizeof(limit_text), "%llds", (long long)(ms / 1000));
    else
        snprintf(limit_text, sizeof(limit_text), "%lldms", (long long)ms);
    if (started) /* a reload in place: the thread reads the new limit */
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigurg;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGURG, &sa, NULL);
    main_thread = pthread_self();
    /* the thread takes no signal: the worker's signals stay with its main thread */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&watchdog, NULL, watch, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        rp_log_error(RP_LOG_ALERT, rc, "lua_max_running_time: cannot start the watchdog thread");
        return;
    }
    pthread_detach(watchdog);
    started = 1;
}

/* ---- lua_atpanic ---- */

static int on_panic(lua_State *L)
{
    /* An error outside any protected call: LuaJIT would exit the process after this
     * returns. Say why, then exit on our own terms (exit code 2): the master logs the
     * exit and starts a new worker. */
    const char *msg = lua_tostring(L, -1);
    rp_log_error(RP_LOG_ALERT, 0,
                 "lua atpanic: unprotected error in call to Lua API (%s); "
                 "the worker exits",
                 msg ? msg : "?");
    _exit(2);
    return 0;
}

void rp_lua_set_panic(lua_State *L)
{
    lua_atpanic(L, on_panic);
}
