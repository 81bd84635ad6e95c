/*
 * limit_req's arithmetic on its shared table (see limit_req.h): the leaky bucket of
 * each key, the rule that combines the several limits of a location, the numbers a
 * limit reports for the RateLimit fields, and the two operations a `sync` zone gives
 * the Redis engine. It takes the zones' locks itself (when the table is in a zone),
 * each for a lookup and an update of one record: one decision per request and limit,
 * made under the lock, so every worker sees one bucket.
 *
 * Records never expire by time: a zone that is full forces out the least recently
 * used ones (a few at most per new key, as nginx frees the oldest record and up to two
 * idle ones), and a new key that still finds no room refuses its request.
 */
#include "limit/limit_req.h"
#include "core/log.h"

#include <string.h>

#define MAGIC      0x6c696d7265710001ull /* "limreq", layout 1 */
#define HEAD_SIZE  sizeof(rp_limit_req_shared_t)
#define MAX_FORCED 3

enum { LOOK_AGAIN = 100, LOOK_OK, LOOK_BUSY, LOOK_NOMEM };

_Static_assert(sizeof(rp_limit_req_shared_t) == 64, "the zone's head is 64 bytes");
_Static_assert(sizeof(rp_limit_req_rec_t) % 8 == 0, "records are 8-byte units");

/* ---- the bucket ---- */

int64_t rp_limit_req_excess(const rp_limit_req_rec_t *rec, int64_t rate, int64_t now, int64_t *ms)
{
    if (rec->fresh) {
        *ms = 1; /* no history: the request is the first, and the clock starts now */
        return 0;
    }
    int64_t d = now - rec->last;
    if (d < -60000)
        d = 1; /* the clock went back a long way: start leaking again */
    else if (d < 0)
        d = 0;
    *ms = d;
    /* the leak, truncated as nginx's; an idle time so long that rate * d would overflow
     * drains any bucket */
    int64_t leak = d > INT64_MAX / 2 / rate ? INT64_MAX / 2 : rate * d / 1000;
    int64_t excess = rec->excess - leak + 1000;
    return excess < 0 ? 0 : excess;
}

int64_t rp_limit_req_delay_ms(int64_t excess, int64_t delay, int64_t rate)
{
    return excess <= delay ? 0 : (excess - delay) * 1000 / rate;
}

/* ---- the table ---- */

static void lock(rp_limit_req_table_t *t)
{
    if (t->zone && rp_shm_lock(t->zone) == 1 && rp_shm_hash_verify_locked(t->h) != 0) {
        /* a process died holding the lock mid-update: the buckets start empty */
        rp_log_error(RP_LOG_ALERT, 0, "limit_req zone \"%s\" was damaged: it starts empty",
                     t->zone->name);
        rp_shm_hash_flush_all_locked(t->h);
    }
}

static void unlock(rp_limit_req_table_t *t)
{
    if (t->zone)
        rp_shm_unlock(t->zone);
}

/* key's record, found or made (zeroed): 1 made, 0 found, -1 no room. */
static int reserve(rp_limit_req_table_t *t, const void *key, size_t len, int64_t now,
                   rp_limit_req_rec_t **rec)
{
    rp_shm_hash_item_t it = {.key = key, .key_len = len, .value_len = sizeof(**rec)};
    void *v;
    int rc = rp_shm_hash_reserve_locked(t->h, &it, 0, now, &v, NULL);
    if (rc == RP_SHM_DAMAGED) {
        rp_shm_hash_flush_all_locked(t->h);
        rc = rp_shm_hash_reserve_locked(t->h, &it, 0, now, &v, NULL);
    }
    if (rc < 0)
        return -1;
    *rec = v;
    return rc == RP_SHM_CREATED;
}

/* A request counts in rec: for the sync engine, in the current second. */
static void count_sync(rp_limit_req_table_t *t, rp_limit_req_rec_t *rec, int64_t now)
{
    if (!t->sync)
        return;
    int64_t w = now / 1000;
    /* Each worker reads its own cached loop time, a few ms apart: a worker whose clock
     * is a little behind the one that opened this second counts in it too, rather than
     * rolling the record back (which would forget what Redis said of this second, and
     * count the other nodes' share twice). Only a clock set far back starts afresh. */
    if (w == rec->window - 1)
        w = rec->window;
    if (rec->window != w) {
        rec->prev_window = rec->window;
        rec->prev_heard = rec->heard;
        rec->window = w;
        rec->heard = 0;
    }
    rec->unsent++;
    t->sh->dirty++;
}

static void charge(rp_limit_req_table_t *t, rp_limit_req_rec_t *rec, int64_t excess, int64_t ms,
                   int64_t now)
{
    rec->excess = excess;
    if (ms) /* as nginx: the leak's start moves only when time has passed */
        rec->last = now;
    rec->fresh = 0;
    count_sync(t, rec, now);
}

/* One limit's lookup, under its lock. The last limit of a location (account) is charged
 * here; an earlier one only checked, and a record it had to make stays fresh. */
static int lookup_locked(const rp_limit_req_limit_t *l, rp_str_t key, int64_t now, int account,
                         int64_t *ep)
{
    rp_limit_req_rec_t *rec;
    int made = reserve(l->t, key.data, key.len, now, &rec);
    if (made < 0)
        return LOOK_NOMEM;
    if (made)
        rec->fresh = 1;
    int64_t ms;
    int64_t excess = rp_limit_req_excess(rec, l->t->rate, now, &ms);
    *ep = excess;
    if (excess > l->burst)
        return LOOK_BUSY;
    if (!account)
        return LOOK_AGAIN;
    charge(l->t, rec, excess, ms, now);
    return LOOK_OK;
}

/* Charges an earlier limit once all have passed, from its state now (as nginx, the
 * burst is not checked again); returns the stored excess. */
static int64_t account_locked(const rp_limit_req_limit_t *l, rp_str_t key, int64_t now)
{
    rp_limit_req_rec_t *rec;
    int made = reserve(l->t, key.data, key.len, now, &rec);
    if (made < 0)
        return 0; /* forced out since its lookup and no room now: nothing to charge */
    if (made)
        rec->fresh = 1;
    int64_t ms;
    int64_t excess = rp_limit_req_excess(rec, l->t->rate, now, &ms);
    charge(l->t, rec, excess, ms, now);
    return excess;
}

/*
 * The locks of the tables whose limits apply (a non-empty key), taken together for the
 * whole decision, in the order of their zones' names: every worker takes them in the
 * same order, so two never wait on each other, and the order holds across a reload
 * (the names are the same, the addresses need not be). Holding them all is what makes
 * the decision one atomic step: nginx (and lua-resty-limit-traffic) look each limit up
 * under its own lock and charge the earlier ones afterwards, so two workers racing can
 * both pass a bucket with room for one. A zone appears at most once per location.
 */
static size_t lock_all(const rp_limit_req_limit_t *limits, size_t n, const rp_str_t *keys,
                       rp_limit_req_table_t **held)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < RP_LIMIT_REQ_MAX_LIMITS; i++) {
        rp_limit_req_table_t *t = limits[i].t;
        if (keys[i].len == 0 || t->zone == NULL)
            continue;
        size_t j = k++;
        while (j > 0 && strcmp(held[j - 1]->zone->name, t->zone->name) > 0) {
            held[j] = held[j - 1];
            j--;
        }
        held[j] = t;
    }
    for (size_t i = 0; i < k; i++)
        lock(held[i]);
    return k;
}

static void unlock_all(rp_limit_req_table_t **held, size_t k)
{
    while (k-- > 0)
        unlock(held[k]);
}

void rp_limit_req_decide(const rp_limit_req_limit_t *limits, size_t n, const rp_str_t *keys,
                         int64_t now, rp_limit_req_seen_t *seen, rp_limit_req_result_t *res)
{
    rp_limit_req_seen_t dummy;
    rp_limit_req_table_t *held[RP_LIMIT_REQ_MAX_LIMITS];
    memset(res, 0, sizeof(*res));
    if (seen)
        memset(seen, 0, n * sizeof(*seen));
    if (n > RP_LIMIT_REQ_MAX_LIMITS)
        n = RP_LIMIT_REQ_MAX_LIMITS; /* the configuration refuses more */
    size_t nheld = lock_all(limits, n, keys, held);
    int rc = 0;
    int64_t excess = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (keys[i].len == 0)
            continue; /* an empty key: this limit does not apply */
        rc = lookup_locked(&limits[i], keys[i], now, i == n - 1, &excess);
        rp_limit_req_seen_t *s = seen ? &seen[i] : &dummy;
        s->looked = 1;
        s->excess = excess;
        if (rc != LOOK_AGAIN)
            break;
    }
    if (rc == 0) {
        unlock_all(held, nheld);
        return; /* RP_LIMIT_REQ_NONE */
    }
    if (rc == LOOK_BUSY || rc == LOOK_NOMEM) {
        /* the earlier limits were only checked: nothing to give back */
        res->outcome = rc == LOOK_BUSY ? RP_LIMIT_REQ_REJECTED : RP_LIMIT_REQ_NOMEM;
        res->which = i;
        res->excess = excess;
        if (seen)
            seen[i].refused = 1;
        unlock_all(held, nheld);
        return;
    }
    /* the last limit was charged at its lookup (LOOK_OK at i), or its key was empty
     * (LOOK_AGAIN, i == n): then it decides nothing and its excess counts as 0 */
    size_t which = i < n ? i : n - 1;
    if (rc == LOOK_AGAIN)
        excess = 0;
    else if (seen)
        seen[i].charged = 1;
    int64_t delay = rp_limit_req_delay_ms(excess, limits[which].delay, limits[which].t->rate);
    for (size_t j = i; j-- > 0;) {
        if (seen ? !seen[j].looked : keys[j].len == 0)
            continue;
        rp_limit_req_table_t *t = limits[j].t;
        int64_t e = account_locked(&limits[j], keys[j], now);
        if (seen) {
            seen[j].charged = 1;
            seen[j].excess = e;
        }
        int64_t d = rp_limit_req_delay_ms(e, limits[j].delay, t->rate);
        if (d > delay) {
            delay = d;
            which = j;
            excess = e;
        }
    }
    res->outcome = delay > 0 ? RP_LIMIT_REQ_DELAYED : RP_LIMIT_REQ_PASSED;
    res->which = which;
    res->excess = excess;
    res->delay = delay;
    unlock_all(held, nheld);
}

int64_t rp_limit_req_peek(rp_limit_req_table_t *t, rp_str_t key, int64_t now)
{
    lock(t);
    rp_shm_hash_item_t it;
    int64_t excess = 0, ms;
    if (rp_shm_hash_get_locked(t->h, key.data, key.len, now, 0, &it) == RP_SHM_OK &&
        it.value_len == sizeof(rp_limit_req_rec_t))
        excess = rp_limit_req_excess(it.value, t->rate, now, &ms);
    unlock(t);
    return excess;
}

/* ---- what a limit tells the client ---- */

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : (a + b - 1) / b;
}

void rp_limit_req_report_of(const rp_limit_req_limit_t *l, const rp_limit_req_seen_t *s,
                            rp_limit_report_t *rep)
{
    int64_t rate = l->t->rate;
    memset(rep, 0, sizeof(*rep));
    /* the bucket admits burst + 1 requests at once, and drains them in window seconds */
    rep->quota = l->burst / 1000 + 1;
    rep->window = ceil_div(rep->quota * 1000, rate);
    if (rep->window < 1)
        rep->window = 1;
    /* the level the bucket is at: with this request if it counts, else without it */
    int64_t level = s->charged ? s->excess : s->excess - 1000;
    if (level < 0)
        level = 0;
    rep->remaining = s->refused || level > l->burst ? 0 : (l->burst - level) / 1000;
    rep->reset = ceil_div(level, rate);
    if (s->refused) {
        rep->refused = 1;
        /* one more passes once the bucket has leaked what this one overflowed */
        rep->retry_after = ceil_div(s->excess - l->burst, rate);
        if (rep->retry_after < 1)
            rep->retry_after = 1;
    }
}

/* ---- laying out a zone ---- */

int rp_limit_req_table_init(rp_limit_req_table_t *t, void *mem, size_t size)
{
    if (size <= HEAD_SIZE)
        return -1;
    rp_shm_hash_conf_t hc = {.max_forced = MAX_FORCED};
    rp_shm_hash_t *h = rp_shm_hash_init((char *)mem + HEAD_SIZE, size - HEAD_SIZE, &hc);
    if (h == NULL)
        return -1;
    t->sh = mem;
    memset(t->sh, 0, HEAD_SIZE);
    t->sh->magic = MAGIC;
    t->h = h;
    return 0;
}

int rp_limit_req_table_attach(rp_limit_req_table_t *t, void *mem, size_t size)
{
    rp_limit_req_shared_t *sh = mem;
    if (size <= HEAD_SIZE || sh->magic != MAGIC)
        return -1;
    rp_shm_hash_t *h = rp_shm_hash_attach((char *)mem + HEAD_SIZE, size - HEAD_SIZE);
    if (h == NULL)
        return -1;
    t->sh = sh;
    t->h = h;
    return 0;
}

/* ---- sync ---- */

typedef struct {
    rp_limit_sync_collect_pt fn;
    void *arg;
} collect_t;

static int collect_visit(const rp_shm_hash_item_t *item, void *arg)
{
    collect_t *c = arg;
    /* the record is the zone's, held under the lock: zeroing its count changes no entry */
    rp_limit_req_rec_t *rec = (rp_limit_req_rec_t *)item->value;
    if (item->value_len == sizeof(*rec) && rec->unsent > 0) {
        c->fn(c->arg, item->key, item->key_len, rec->window, rec->unsent, RP_LIMIT_REQ_SYNC_TTL);
        rec->unsent = 0;
    }
    return 0;
}

/*
 * What it costs: nothing while no request was accepted since the last collect (one
 * read of the dirty counter under the lock); otherwise a walk of the whole table
 * under the lock, every record of the zone and not only the changed ones, so workers
 * wanting the lock wait for it (about a microsecond per thousand records, once per
 * sync interval). Keeping a list of changed records would make the walk shorter but
 * every request dearer; the walk happens in the helper, at most once per interval.
 */
void rp_limit_req_collect(rp_limit_req_table_t *t, int64_t now, rp_limit_sync_collect_pt fn,
                          void *arg)
{
    lock(t);
    if (t->sh->dirty == 0) {
        unlock(t);
        return;
    }
    t->sh->dirty = 0;
    collect_t c = {fn, arg};
    rp_shm_hash_each_locked(t->h, now, collect_visit, &c);
    unlock(t);
}

void rp_limit_req_apply(rp_limit_req_table_t *t, const void *key, size_t key_len, int64_t window,
                        int64_t total, int64_t sent, int64_t now)
{
    if (key_len == 0 || key_len > RP_SHM_HASH_MAX_KEY)
        return;
    lock(t);
    rp_limit_req_rec_t *rec;
    int made = reserve(t, key, key_len, now, &rec);
    if (made < 0) {
        unlock(t);
        return;
    }
    if (made) {
        rec->last = now;
        rec->fresh = 0;
    }
    int64_t *heard;
    if (window == rec->window) {
        heard = &rec->heard;
    } else if (window == rec->prev_window && window != 0) {
        heard = &rec->prev_heard;
    } else if (window > rec->window) {
        rec->prev_window = rec->window;
        rec->prev_heard = rec->heard;
        rec->window = window;
        rec->heard = 0;
        heard = &rec->heard;
    } else {
        unlock(t); /* an answer for a second long gone */
        return;
    }
    int64_t other = total - sent - *heard;
    *heard = total;
    if (other > 0) {
        /* the other nodes' requests count as if accepted here, now: leak, then add */
        int64_t ms;
        int64_t excess = rp_limit_req_excess(rec, t->rate, now, &ms) - 1000;
        if (excess < 0)
            excess = 0;
        rec->excess = excess + other * 1000;
        if (ms)
            rec->last = now;
        rec->fresh = 0;
    }
    unlock(t);
}
