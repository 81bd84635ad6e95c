/*
 * The run-time resolver (resolve.h): libevent's evdns, one base per resolver in use,
 * with the name servers of its `resolver` line only (never /etc/resolv.conf, hosts
 * file or search domains).
 *
 * Each name runs in rounds: an A query and (ipv6=on) an AAAA query; when both are
 * back, the round ends. A family that was answered (addresses; or none: NXDOMAIN, no
 * records) takes the answer, one that failed (timeout, SERVFAIL, refused) keeps what it
 * had, and the union of both is published, sorted, to the peer table, which tells the
 * workers only when the set changed. As nginx, a name that does not exist empties its
 * part of the pool, a failing name server does not. The next round starts when the
 * shortest TTL of the answers runs out (valid= replaces it; at least a second), or after
 * a failure in 1 s, doubling up to 30 s.
 *
 * What a name had in shared memory (published by the generation before, or by this one
 * before a restart of the helper) seeds each family, so a new helper that cannot reach
 * its name servers leaves the pool as it was.
 */
#include "upstream/resolve.h"
#include "core/log.h"
#include "core/shm.h"
#include "core/time.h"
#include "net/listen.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS   30000
#define MIN_TTL_MS     1000
#define MAX_TTL_MS     (7 * 86400 * 1000LL) /* an answer is asked again at least weekly */

enum { FAM_V4, FAM_V6, NFAM };

typedef struct {
    const rp_resolver_t *conf;
    int64_t timeout;
    struct evdns_base *base;
} dns_t;

/* Addresses of one family, sorted, each once. */
typedef struct {
    struct sockaddr_storage a[RP_UPSTREAM_MAX_ADDRS];
    unsigned n;
} addrs_t;

typedef struct name_s name_t;

typedef struct {
    name_t *nm;
    int fam;
    struct evdns_request *req; /* while out */
} query_t;

struct name_s {
    rp_resolve_runtime_t *rt;
    const rp_resolve_target_t *t;
    const rp_upstream_resolve_t *rl;
    dns_t *dns;
    struct event timer;
    query_t q[NFAM];
    unsigned inflight;      /* queries of this round not called back yet */
    addrs_t fam[NFAM];      /* what each family last answered */
    addrs_t pub;            /* the union last published */
    unsigned answered;      /* families answered in this round */
    unsigned failed;        /* families that failed in this round */
    unsigned notexist;      /* families answered NXDOMAIN in this round */
    int err;                /* the last failure's DNS_ERR_* */
    uint32_t ttl;           /* the round's shortest TTL, s */
    int64_t retry;          /* ms before the next try after a failure */
    unsigned published : 1; /* pub holds what the table has */
    unsigned missing : 1;   /* "not found" was logged and still holds */
};

struct rp_resolve_runtime_s {
    rp_resolve_runtime_t *next; /* every runtime of this process */
    dns_t *dns;
    unsigned ndns;
    name_t *names;
    unsigned nnames;
    unsigned pending; /* DNS callbacks still due */
    unsigned stopping : 1;
    struct event reap;
};

/* ---- addresses ---- */

static int addr_cmp(const void *a, const void *b)
{
    const struct sockaddr_storage *x = a, *y = b;
    if (x->ss_family != y->ss_family)
        return x->ss_family < y->ss_family ? -1 : 1;
    if (x->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
                      &((const struct sockaddr_in6 *)y)->sin6_addr, 16);
    return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
                  &((const struct sockaddr_in *)y)->sin_addr, 4);
}

static socklen_t addr_len(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Sorts and drops repeats. */
static void addrs_settle(addrs_t *s)
{
    qsort(s->a, s->n, sizeof(s->a[0]), addr_cmp);
    unsigned k = 0;
    for (unsigned i = 0; i < s->n; i++)
        if (k == 0 || addr_cmp(&s->a[k - 1], &s->a[i]) != 0)
            s->a[k++] = s->a[i];
    s->n = k;
}

/* count raw addresses of an answer (4 or 16 bytes each), with port. */
static void addrs_from_answer(addrs_t *s, int fam, const void *raw, int count, int port)
{
    s->n = 0;
    for (int i = 0; i < count && s->n < RP_UPSTREAM_MAX_ADDRS; i++) {
        struct sockaddr_storage *sa = &s->a[s->n++];
        memset(sa, 0, sizeof(*sa));
        if (fam == FAM_V6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)port);
            memcpy(&s6->sin6_addr, (const char *)raw + 16 * i, 16);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
            s4->sin_family = AF_INET;
            s4->sin_port = htons((uint16_t)port);
            memcpy(&s4->sin_addr, (const char *)raw + 4 * i, 4);
        }
    }
    addrs_settle(s);
}

static int addrs_equal(const addrs_t *a, const addrs_t *b)
{
    if (a->n != b->n)
        return 0;
    for (unsigned i = 0; i < a->n; i++)
        if (addr_cmp(&a->a[i], &b->a[i]) != 0)
            return 0;
    return 1;
}

/* "10.0.0.1:80, 10.0.0.2:80" (cut short with "..." when long). */
static void addrs_text(const addrs_t *s, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < s->n; i++) {
        char one[80];
        rp_sockaddr_text((const struct sockaddr *)&s->a[i], one, sizeof(one));
        int w = snprintf(buf + off, cap - off, "%s%s", i ? ", " : "", one);
        if (w < 0 || (size_t)w >= cap - off) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
            return;
        }
        off += (size_t)w;
    }
    if (s->n == 0)
        snprintf(buf, cap, "no address");
}

/* ---- rounds ---- */

static void round_start(name_t *nm);

static void schedule(name_t *nm, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(&nm->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    round_start(arg);
}

static rp_resolve_runtime_t *runtimes;

static void publish(name_t *nm)
{
    addrs_t all;
    all.n = 0;
    for (int f = 0; f < NFAM; f++)
        for (unsigned i = 0; i < nm->fam[f].n && all.n < RP_UPSTREAM_MAX_ADDRS; i++)
            all.a[all.n++] = nm->fam[f].a[i];
    addrs_settle(&all);
    socklen_t lens[RP_UPSTREAM_MAX_ADDRS];
    for (unsigned i = 0; i < all.n; i++)
        lens[i] = addr_len(&all.a[i]);
    rp_upstream_conf_t *u = nm->t->u;
    int changed = !nm->published || !addrs_equal(&all, &nm->pub);
    if (rp_upstream_publish_addrs(u, nm->t->line, all.a, lens, all.n) != 0) {
        if (changed)
            rp_log_error(RP_LOG_ERR, 0,
                         "upstream \"%s\": no room in zone \"%s\" for the "
                         "addresses of \"%s\"",
                         u->name, u->zone ? u->zone->name : "?", nm->rl->hostport);
        nm->published = 0;
        return;
    }
    if (changed) {
        char text[1024];
        addrs_text(&all, text, sizeof(text));
        rp_log_error(RP_LOG_INFO, 0, "upstream \"%s\": \"%s\" resolves to %s", u->name,
                     nm->rl->hostport, text);
    }
    nm->pub = all;
    nm->published = 1;
}

static void round_end(name_t *nm)
{
    rp_upstream_conf_t *u = nm->t->u;
    if (nm->answered)
        publish(nm);
    int64_t next;
    if (nm->failed) {
        rp_log_error(RP_LOG_ERR, 0,
                     "upstream \"%s\": \"%s\" could not be resolved (%d: %s)%s; "
                     "asking again in %lldms",
                     u->name, nm->rl->host, nm->err, evdns_err_to_string(nm->err),
                     nm->fam[FAM_V4].n + nm->fam[FAM_V6].n ? ", its last addresses stay" : "",
                     (long long)nm->retry);
        next = nm->retry;
        nm->retry = nm->retry * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : nm->retry * 2;
    } else {
        nm->retry = RETRY_FIRST_MS;
        if (nm->pub.n == 0 && !nm->missing)
            rp_log_error(RP_LOG_ERR, 0, "upstream \"%s\": \"%s\" could not be resolved (%s)",
                         u->name, nm->rl->host, nm->notexist ? "host not found" : "no address");
        nm->missing = nm->pub.n == 0;
        int64_t valid = nm->dns->conf->valid;
        next = valid ? valid : (int64_t)nm->ttl * 1000;
        if (next < MIN_TTL_MS)
            next = MIN_TTL_MS;
        if (next > MAX_TTL_MS)
            next = MAX_TTL_MS;
    }
    schedule(nm, next);
}

static void rt_free(rp_resolve_runtime_t *rt)
{
    for (rp_resolve_runtime_t **p = &runtimes; *p; p = &(*p)->next) {
        if (*p == rt) {
            *p = rt->next;
            break;
        }
    }
    event_del(&rt->reap);
    for (unsigned i = 0; i < rt->nnames; i++)
        event_del(&rt->names[i].timer);
    for (unsigned i = 0; i < rt->ndns; i++)
        if (rt->dns[i].base)
            evdns_base_free(rt->dns[i].base, 0); /* queries still out go without a callback */
    free(rt->names);
    free(rt->dns);
    free(rt);
}

static void reap(evutil_socket_t fd, short what, void *arg)
{
    rt_free(arg);
}

static void on_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    query_t *q = arg;
    name_t *nm = q->nm;
    rp_resolve_runtime_t *rt = nm->rt;
    q->req = NULL;
    rt->pending--;
    nm->inflight--;
    if (rt->stopping) {
        if (rt->pending == 0) {
            /* outside evdns's callback, which is still on the stack */
            struct timeval now = {0, 0};
            evtimer_add(&rt->reap, &now);
        }
        return;
    }
    if (result == DNS_ERR_NONE && count > 0 && addresses &&
        type == (q->fam == FAM_V6 ? DNS_IPv6_AAAA : DNS_IPv4_A)) {
        addrs_from_answer(&nm->fam[q->fam], q->fam, addresses, count, nm->rl->port);
        nm->answered++;
    } else if (result == DNS_ERR_NONE || result == DNS_ERR_NOTEXIST || result == DNS_ERR_NODATA) {
        nm->fam[q->fam].n = 0; /* the name has no such address (now) */
        nm->answered++;
        nm->notexist += result == DNS_ERR_NOTEXIST;
    } else {
        nm->failed++;
        nm->err = result;
    }
    if (result == DNS_ERR_NONE || result == DNS_ERR_NOTEXIST || result == DNS_ERR_NODATA) {
        uint32_t t = ttl < 0 ? 0 : (uint32_t)ttl;
        if (t < nm->ttl)
            nm->ttl = t;
    }
    if (nm->inflight == 0)
        round_end(nm);
}

static void round_start(name_t *nm)
{
    rp_resolve_runtime_t *rt = nm->rt;
    nm->answered = nm->failed = nm->notexist = 0;
    nm->err = DNS_ERR_UNKNOWN;
    nm->ttl = UINT32_MAX;
    int want[NFAM] = {nm->dns->conf->ipv4, nm->dns->conf->ipv6};
    for (int f = 0; f < NFAM; f++) {
        if (!want[f])
            continue;
        query_t *q = &nm->q[f];
        nm->inflight++;
        rt->pending++;
        q->req = f == FAM_V6 ? evdns_base_resolve_ipv6(nm->dns->base, nm->rl->host,
                                                       DNS_QUERY_NO_SEARCH, on_answer, q)
                             : evdns_base_resolve_ipv4(nm->dns->base, nm->rl->host,
                                                       DNS_QUERY_NO_SEARCH, on_answer, q);
        if (q->req == NULL) {
            /* refused outright (a name too long for DNS): no callback will come */
            nm->inflight--;
            rt->pending--;
            nm->failed++;
        }
    }
    if (nm->inflight == 0)
        round_end(nm);
}

/* ---- set up and tear down ---- */

static void evdns_log(int is_warning, const char *msg)
{
    rp_log_error(is_warning ? RP_LOG_WARN : RP_LOG_DEBUG, 0, "resolver: %s", msg);
}

static int dns_open(dns_t *d)
{
    d->base = evdns_base_new(rp_event_base, 0); /* no resolv.conf, no hosts file */
    if (d->base == NULL) {
        rp_log_error(RP_LOG_ALERT, 0, "evdns_base_new() failed");
        return -1;
    }
    for (unsigned i = 0; i < d->conf->naddrs; i++) {
        if (evdns_base_nameserver_sockaddr_add(d->base, (struct sockaddr *)&d->conf->addrs[i],
                                               d->conf->lens[i], 0) != 0) {
            char text[80];
            rp_sockaddr_text((struct sockaddr *)&d->conf->addrs[i], text, sizeof(text));
            rp_log_error(RP_LOG_ERR, 0, "%s:%u: resolver %s cannot be used", d->conf->file,
                         d->conf->line, text);
        }
    }
    /* resolver_timeout bounds a query: three tries of a third each, none under 200ms */
    int tries = d->timeout >= 600 ? 3 : d->timeout >= 400 ? 2 : 1;
    int64_t each = d->timeout / tries;
    char tv[32], n[8];
    snprintf(tv, sizeof(tv), "%lld.%03lld", (long long)(each / 1000), (long long)(each % 1000));
    snprintf(n, sizeof(n), "%d", tries);
    evdns_base_set_option(d->base, "timeout:", tv);
    evdns_base_set_option(d->base, "attempts:", n);
    evdns_base_set_option(d->base, "initial-probe-timeout:", "1");
    return 0;
}

rp_resolve_runtime_t *rp_resolve_start(const rp_resolve_target_t *targets, unsigned n)
{
    if (n == 0)
        return NULL;
    evdns_set_log_fn(evdns_log);
    rp_resolve_runtime_t *rt = rp_xcalloc(1, sizeof(*rt));
    rt->next = runtimes;
    runtimes = rt;
    evtimer_assign(&rt->reap, rp_event_base, reap, rt);
    rt->dns = rp_xcalloc(n, sizeof(dns_t));
    rt->names = rp_xcalloc(n, sizeof(name_t));
    for (unsigned i = 0; i < n; i++) {
        const rp_resolve_target_t *t = &targets[i];
        dns_t *d = NULL;
        for (unsigned k = 0; k < rt->ndns && d == NULL; k++)
            if (rt->dns[k].conf == t->resolver && rt->dns[k].timeout == t->timeout)
                d = &rt->dns[k];
        if (d == NULL) {
            d = &rt->dns[rt->ndns++];
            d->conf = t->resolver;
            d->timeout = t->timeout;
            if (dns_open(d) != 0) {
                rt_free(rt);
                return NULL;
            }
        }
        name_t *nm = &rt->names[rt->nnames++];
        nm->rt = rt;
        nm->t = t;
        nm->rl = &((const rp_upstream_resolve_t *)t->u->resolve.elts)[t->line];
        nm->dns = d;
        nm->retry = RETRY_FIRST_MS;
        for (int f = 0; f < NFAM; f++) {
            nm->q[f].nm = nm;
            nm->q[f].fam = f;
        }
        evtimer_assign(&nm->timer, rp_event_base, on_timer, nm);

        /* what the table holds already, of the families asked for */
        struct sockaddr_storage had[RP_UPSTREAM_MAX_ADDRS];
        socklen_t lens[RP_UPSTREAM_MAX_ADDRS];
        unsigned nh = rp_upstream_read_addrs(t->u, t->line, had, lens, RP_UPSTREAM_MAX_ADDRS);
        for (unsigned k = 0; k < nh; k++) {
            int f = had[k].ss_family == AF_INET6 ? FAM_V6 : FAM_V4;
            if ((f == FAM_V6 ? d->conf->ipv6 : d->conf->ipv4) &&
                nm->fam[f].n < RP_UPSTREAM_MAX_ADDRS)
                nm->fam[f].a[nm->fam[f].n++] = had[k];
        }
        for (int f = 0; f < NFAM; f++)
            addrs_settle(&nm->fam[f]);
        for (unsigned k = 0; k < nh; k++)
            nm->pub.a[k] = had[k];
        nm->pub.n = nh;
        addrs_settle(&nm->pub);
        nm->published = nh > 0; /* a first answer alike is not news */
        schedule(nm, 0);
    }
    return rt;
}

void rp_resolve_stop(rp_resolve_runtime_t *rt)
{
    if (rt == NULL || rt->stopping)
        return;
    rt->stopping = 1;
    for (unsigned i = 0; i < rt->nnames; i++) {
        name_t *nm = &rt->names[i];
        event_del(&nm->timer);
        for (int f = 0; f < NFAM; f++)
            if (nm->q[f].req) /* called back with DNS_ERR_CANCEL (or the answer on its way) */
                evdns_cancel_request(nm->dns->base, nm->q[f].req);
    }
    if (rt->pending == 0) {
        struct timeval now = {0, 0};
        evtimer_add(&rt->reap, &now);
    }
}

void rp_resolve_free_all(void)
{
    while (runtimes)
        rt_free(runtimes);
}
