/*
 * The phase runner and a request's life: creation, server and location choice,
 * the phases with suspension and resumption, internal redirects, cleanups, the
 * request's own timers, and its end.
 *
 * Each phase is an array of handlers modules registered; r->phase and r->handler
 * say where the request is, so a handler that returned RP_AGAIN is called again,
 * at the same place, when the request resumes (as nginx's phase engine does). A
 * resumption is queued and run from the event loop, never from within whatever
 * stack decided to resume: a timer, another request's event, a filter.
 */
#include "http/request.h"
#include "core/log.h"
#include "http/error_log.h"
#include "observe/metrics.h"
#include "http/match.h"
#include "http/ssl.h"
#include "http/variables.h"
#include "net/listen.h"
#include "route/route.h"

#include <string.h>

#define MAX_URI_CHANGES 10

/* ---- creation ---- */

rp_request_t *rp_http_request_new(rp_conn_t *c, rp_arena_t *a, const rp_http_proto_t *proto)
{
    rp_request_t *r = rp_arena_calloc(a, sizeof(*r));
    r->conn = c;
    r->peer = c ? &c->peer : NULL; /* no connection: a unit test's request */
    r->arena = a;
    r->proto = proto;
    r->ctx = rp_arena_calloc(a, rp_nmodules * sizeof(void *));
    r->content_length = -1;
    r->out_length = -1;
    r->uri_changes = MAX_URI_CHANGES + 1;
    rp_time_now(&r->start);
    return r;
}

static rp_http_core_loc_conf_t *srv_loc(rp_http_core_srv_conf_t *srv)
{
    return srv->ctx->loc_conf[rp_http_core_module.index];
}

static void run_phases(rp_request_t *r);

void rp_http_process_request(rp_request_t *r, int status, const char *why)
{
    const rp_log_t *saved = rp_log_current;
    rp_conn_t *c = r->conn;
    rp_http_addr_t *addr = c->ls->http;
    const rp_server_name_t *name = NULL;
    rp_metrics_request_begin(r);
    /* a head refused while parsing is answered by the address's default server */
    r->srv = status ? addr->default_server
                    : rp_route_server_match(addr, r->host.data, r->host.len, &name);
    if (name && name->re)
        rp_http_regex_captures(r, name->re, r->host, rp_regex_ovector(), rp_regex_pairs());
    r->clcf = srv_loc(r->srv);
    r->loc_conf = r->clcf->loc_conf;
    rp_log_enter(r); /* the server's error_log, until a location is chosen */
    if (status == 0 && c->ssl && (why = rp_ssl_client_refused(c->ssl, &r->error_title)) != NULL)
        status = 400; /* ssl_verify_client: nginx's answer, readable by the client */
    if (status) {
        rp_log_error(RP_LOG_INFO, 0, "client sent a bad request (%d: %s), client: fd %d", status,
                     why ? why : "", c->fd);
        r->keepalive = 0;
        rp_http_send_error(r, status);
        rp_log_leave(saved);
        return;
    }
    run_phases(r);
    rp_log_leave(saved);
}

/* ---- the runner ---- */

/* FIND_CONFIG: the location for the (possibly rewritten) URI. */
static int find_config(rp_request_t *r)
{
    rp_http_core_loc_conf_t *clcf = rp_http_match_location(r, srv_loc(r->srv));
    if (clcf == NULL) /* the path's locations refused only the method */
        return rp_http_send_error(r, 405);
    if (clcf->re)
        rp_http_regex_captures(r, clcf->re, r->uri, rp_regex_ovector(), rp_regex_pairs());
    r->clcf = clcf;
    r->loc_conf = clcf->loc_conf;
    rp_log_current = rp_http_error_log(r); /* the runner restores the caller's */
    r->uri_changed = 0; /* a server-level rewrite's change is this search */
    r->location_rewritten = 0;
    if (clcf->internal && !r->internal)
        return rp_http_send_error(r, 404); /* as nginx: as if it did not exist */
    /* As nginx: a declared length over the limit is refused before anything reads it.
     * Chunked bodies are counted as they are read. */
    if (clcf->client_max_body_size && r->content_length > 0 && r->body_status != 413 &&
        (uint64_t)r->content_length > clcf->client_max_body_size) {
        rp_log_error(RP_LOG_ERR, 0, "client intended to send too large body: %lld bytes",
                     (long long)r->content_length);
        /* refused once: an error page's location does not refuse it again (nginx
         * discards the body then) */
        r->body_status = 413;
        return rp_http_send_error(r, 413);
    }
    return RP_OK;
}

#define MOVED (RP_AGAIN - 100) /* the runner goes on from the phase the request moved to */

/* POST_REWRITE: a rewrite changed the URI, so the location is chosen again. */
static int post_rewrite(rp_request_t *r)
{
    if (!r->uri_changed)
        return RP_OK;
    r->uri_changed = 0;
    r->uri_rewritten = 1;
    if (--r->uri_changes == 0) {
        rp_log_error(RP_LOG_ERR, 0, "rewrite or internal redirection cycle while processing "
                                    "\"%.*s\"",
                     (int)r->uri.len, r->uri.data);
        rp_http_send_error(r, 500);
        return RP_DONE;
    }
    r->phase = RP_PHASE_FIND_CONFIG;
    r->handler = 0;
    return MOVED;
}

/*
 * ACCESS: nginx's access checker. A handler's result rc becomes the runner's next
 * step: RP_OK to go on with the next handler (or the next phase, for a grant under
 * `satisfy any`), or what the runner returns (RP_AGAIN, RP_DONE). The denials (401,
 * 403) are answered at once under `satisfy all`; under `any` they are kept in
 * r->access_code (a 401 over a 403) until a grant forgets them or the phase ends.
 */
static int access_step(rp_request_t *r, int rc)
{
    int any = r->clcf->satisfy;
    switch (rc) {
    case RP_DECLINED:
        r->handler++;
        return RP_OK;
    case RP_OK:
        if (!any) {
            r->handler++;
            return RP_OK;
        }
        /* granted: the denials of the handlers before are forgotten, with the
         * challenge a 401 added */
        r->access_code = 0;
        for (unsigned i = 0; i < r->nout_headers; i++)
            if (rp_str_ieq(r->out_headers[i].name, "www-authenticate"))
                r->out_headers[i].name.len = 0;
        r->phase++;
        r->handler = 0;
        return RP_OK;
    case RP_AGAIN:
    case RP_DONE:
        return rc;
    case 401:
    case 403:
        if (any) {
            if (r->access_code != 401)
                r->access_code = (int16_t)rc;
            r->handler++;
            return RP_OK;
        }
        rp_http_send_error(r, rc);
        return RP_DONE;
    default:
        rp_http_send_error(r, rc > 0 ? rc : 500);
        return RP_DONE;
    }
}

/* The request's messages go to its location's error_log while its phases run. */
void rp_http_run_phases(rp_request_t *r)
{
    const rp_log_t *saved = rp_log_enter(r);
    run_phases(r);
    rp_log_leave(saved);
}

static void run_phases(rp_request_t *r)
{
    rp_http_core_main_conf_t *cmcf = r->srv->ctx->main_conf[rp_http_core_module.index];

    while (r->phase < RP_PHASE_LOG && !r->ended) {
        int rc;
        switch (r->phase) {
        case RP_PHASE_FIND_CONFIG:
            rc = find_config(r);
            if (rc != RP_OK)
                return;
            r->phase++;
            r->handler = 0;
            continue;
        case RP_PHASE_POST_REWRITE:
            rc = post_rewrite(r);
            if (rc == MOVED)
                continue;
            if (rc != RP_OK)
                return;
            r->phase++;
            r->handler = 0;
            continue;
        case RP_PHASE_ACCESS:
            if (r->subrequest) { /* its parent was checked, as nginx skips them */
                r->phase++;
                r->handler = 0;
                continue;
            }
            break;
        case RP_PHASE_CONTENT:
            if (r->handler == 0 && r->clcf->content) {
                /* the location's own handler: the request is its, whatever it returns */
                rc = r->clcf->content(r);
                if (rc == RP_DECLINED) {
                    r->handler = 1;
                    continue;
                }
                if (rc == RP_ERROR)
                    rp_http_send_error(r, 500);
                return;
            }
            break;
        default:
            break;
        }
        rp_array_t *handlers = &cmcf->phases[r->phase];
        size_t i = r->phase == RP_PHASE_CONTENT && r->clcf->content ? r->handler - 1 : r->handler;
        if (i >= handlers->nelts) {
            if (r->phase == RP_PHASE_CONTENT)
                break; /* nobody produced a response */
            if (r->phase == RP_PHASE_ACCESS && r->access_code) {
                rp_http_send_error(r, r->access_code); /* satisfy any: nobody granted */
                return;
            }
            r->phase++;
            r->handler = 0;
            continue;
        }
        rp_phase_handler_pt h = RP_ARRAY_AT(handlers, rp_phase_handler_pt, i);
        rc = h(r);
        if (rc == RP_AGAIN || rc == RP_DONE)
            return; /* r may be gone already: an answer sent in full can end it */
        if (r->phase == RP_PHASE_ACCESS) {
            if (access_step(r, rc) != RP_OK)
                return;
            continue;
        }
        switch (rc) {
        case RP_DECLINED:
            r->handler++;
            break;
        case RP_OK:
            if (r->phase == RP_PHASE_CONTENT)
                return; /* a content handler took the request */
            r->phase++;
            r->handler = 0;
            break;
        case RP_AGAIN:
        case RP_DONE:
            return;
        default:
            rp_http_send_error(r, 500);
            return;
        }
    }
    if (!r->ended && !r->response_started)
        rp_http_send_error(r, 404); /* no content handler took the request */
}

/* ---- resuming from the loop ---- */

static rp_request_t *post_head, *post_tail;
static struct event post_ev;
static struct event_base *post_base;

static void post_unlink(rp_request_t *r)
{
    if (!r->posted)
        return;
    r->posted = 0;
    r->post_run = 0;
    r->post_drain = 0;
    if (r->post_prev)
        r->post_prev->post_next = r->post_next;
    else
        post_head = r->post_next;
    if (r->post_next)
        r->post_next->post_prev = r->post_prev;
    else
        post_tail = r->post_prev;
    r->post_next = r->post_prev = NULL;
}

static void on_posted(evutil_socket_t fd, short what, void *arg)
{
    /* Requests posted while these run wait for the next turn of the loop. */
    rp_request_t *last = post_tail;
    while (post_head) {
        rp_request_t *r = post_head;
        int run = r->post_run, drain = r->post_drain;
        post_unlink(r);
        if (drain && rp_http_pending(r) == 0)
            rp_http_drained(r);
        else if (run)
            rp_http_run_phases(r);
        if (r == last)
            break;
    }
    if (post_head)
        event_active(&post_ev, EV_WRITE, 1);
}

void rp_http_resume(rp_request_t *r)
{
    rp_http_post(r, 1, 0);
}

void rp_http_post(rp_request_t *r, int run, int drain)
{
    if (r->ended)
        return;
    r->post_run |= run;
    r->post_drain |= drain;
    if (r->posted)
        return;
    if (post_base != rp_event_base) {
        post_base = rp_event_base;
        event_assign(&post_ev, post_base, -1, 0, on_posted, NULL);
    }
    r->posted = 1;
    r->post_next = NULL;
    r->post_prev = post_tail;
    if (post_tail)
        post_tail->post_next = r;
    else
        post_head = r;
    post_tail = r;
    event_active(&post_ev, EV_WRITE, 1);
}

int rp_http_internal_redirect(rp_request_t *r, rp_str_t uri, rp_str_t args)
{
    if (--r->uri_changes == 0) {
        rp_log_error(RP_LOG_ERR, 0, "rewrite or internal redirection cycle while internally "
                                    "redirecting to \"%.*s\"",
                     (int)uri.len, uri.data);
        rp_http_send_error(r, 500);
        return RP_DONE;
    }
    r->uri = uri;
    r->args = args;
    r->internal = 1;
    r->uri_rewritten = 1;
    r->access_code = 0;
    memset(r->ctx, 0, rp_nmodules * sizeof(void *));
    r->clcf = srv_loc(r->srv);
    r->loc_conf = r->clcf->loc_conf;
    r->phase = RP_PHASE_SERVER_REWRITE;
    r->handler = 0;
    rp_http_resume(r);
    return RP_AGAIN;
}

rp_http_core_loc_conf_t *rp_http_named_location(rp_request_t *r, rp_str_t name)
{
    rp_http_core_loc_conf_t *server = srv_loc(r->srv);
    rp_http_core_loc_conf_t **v = server->named.elts;
    for (size_t i = 0; i < server->named.nelts; i++)
        if (v[i]->name_len == name.len && memcmp(v[i]->name, name.data, name.len) == 0)
            return v[i];
    return NULL;
}

int rp_http_named_redirect(rp_request_t *r, rp_str_t name)
{
    rp_http_core_loc_conf_t *named = rp_http_named_location(r, name);
    if (named == NULL) {
        rp_log_error(RP_LOG_ERR, 0, "could not find named location \"%.*s\"", (int)name.len,
                     name.data);
        rp_http_send_error(r, 500);
        return RP_DONE;
    }
    if (--r->uri_changes == 0) {
        rp_log_error(RP_LOG_ERR, 0, "rewrite or internal redirection cycle while redirect to named "
                                    "location \"%.*s\"",
                     (int)name.len, name.data);
        rp_http_send_error(r, 500);
        return RP_DONE;
    }
    r->internal = 1;
    r->access_code = 0;
    memset(r->ctx, 0, rp_nmodules * sizeof(void *));
    r->clcf = named;
    r->loc_conf = named->loc_conf;
    r->phase = RP_PHASE_REWRITE;
    r->handler = 0;
    rp_http_resume(r);
    return RP_AGAIN;
}

/* ---- cleanups and the end ---- */

rp_http_cleanup_t *rp_http_cleanup_add(rp_request_t *r, void (*fn)(rp_request_t *r, void *data),
                                      void *data)
{
    rp_http_cleanup_t *cl = rp_arena_alloc(r->arena, sizeof(*cl));
    cl->fn = fn;
    cl->data = data;
    cl->next = r->cleanups;
    r->cleanups = cl;
    return cl;
}

void rp_http_run_cleanups(rp_request_t *r)
{
    /* one at a time from the head: a cleanup may add another, which then runs too */
    while (r->cleanups) {
        rp_http_cleanup_t *cl = r->cleanups;
        r->cleanups = cl->next;
        if (cl->fn)
            cl->fn(r, cl->data);
    }
}

void rp_http_log_request(rp_request_t *r)
{
    if (r->logged || r->srv == NULL)
        return;
    r->logged = 1;
    rp_http_core_main_conf_t *cmcf = r->srv->ctx->main_conf[rp_http_core_module.index];
    rp_array_t *handlers = &cmcf->phases[RP_PHASE_LOG];
    for (size_t i = 0; i < handlers->nelts; i++)
        RP_ARRAY_AT(handlers, rp_phase_handler_pt, i)(r);
}

void rp_http_request_end(rp_request_t *r)
{
    if (r->ended)
        return;
    r->ended = 1;
    const rp_log_t *saved = rp_log_enter(r);
    rp_metrics_request_end(r);
    r->on_body = NULL;
    r->on_drain = NULL;
    post_unlink(r);
    rp_http_run_cleanups(r);
    rp_http_log_request(r);
    rp_log_leave(saved);
}

/* ---- timers ---- */

struct rp_http_timer_s {
    struct event ev;
    rp_request_t *r;
    void (*fn)(rp_request_t *r, void *data);
    void *data;
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    rp_http_timer_t *t = arg;
    const rp_log_t *saved = rp_log_enter(t->r);
    t->fn(t->r, t->data);
    rp_log_leave(saved);
}

static void timer_cleanup(rp_request_t *r, void *data)
{
    rp_http_timer_t *t = data;
    event_del(&t->ev);
}

rp_http_timer_t *rp_http_timer_new(rp_request_t *r, void (*fn)(rp_request_t *r, void *data),
                                   void *data)
{
    rp_http_timer_t *t = rp_arena_alloc(r->arena, sizeof(*t));
    evtimer_assign(&t->ev, rp_event_base, on_timer, t);
    t->r = r;
    t->fn = fn;
    t->data = data;
    rp_http_cleanup_add(r, timer_cleanup, t);
    return t;
}

void rp_http_timer_add(rp_http_timer_t *t, int64_t ms)
{
    rp_timer_add(&t->ev, ms < 0 ? 0 : ms);
}

void rp_http_timer_del(rp_http_timer_t *t)
{
    event_del(&t->ev);
}

int rp_http_timer_pending(const rp_http_timer_t *t)
{
    return evtimer_pending(&t->ev, NULL);
}

static void wake(rp_request_t *r, void *data)
{
    rp_http_resume(r);
}

int rp_http_sleep(rp_request_t *r, int64_t ms)
{
    rp_http_timer_add(rp_http_timer_new(r, wake, NULL), ms);
    return RP_AGAIN;
}
