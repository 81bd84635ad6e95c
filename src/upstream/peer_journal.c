/*
 * What each worker holds in the peer table, so that a worker that dies does not
 * leave it held forever.
 *
 * The in-flight and connection counts of a peer are shared counters that every
 * worker raises and lowers. A worker that crashes (or is killed at the end of
 * worker_shutdown_timeout with requests still open) never lowers its part, and the
 * peer would look busy for good: least_conn would starve it and max_conns could shut
 * it out, a fault amplified into an outage. So each worker also writes its own part,
 * per peer, into a journal slot of its own in shared memory (no lock: only it writes
 * there), and when the master reaps a worker it subtracts what that worker's slot
 * still holds from the peers' counters and frees the slot.
 *
 * A slot is a small open-addressing table keyed by the peer entry's address (the
 * zones are mapped at the same address in the master and every worker). Entries are
 * never emptied, only reused once their counts are zero, so a lookup ends at the
 * first empty entry. A worker with more peers in use at once than a slot holds
 * leaves the rest unjournalled (they are not given back after a crash, and a notice
 * says so once).
 */
#include "upstream/peers.h"
#include "upstream/upstream.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"
#include "core/shm.h"

#include <string.h>
#include <unistd.h>

#define JOURNAL_ZONE "rampart_peer_journal"
#define JOURNAL_VERSION 1
#define SLOTS 128
#define ENTRIES 256 /* a power of two */

typedef struct {
    rp_peer_shared_t *sh;
    int32_t inflight;
    int32_t conns;
} entry_t;

typedef struct {
    int64_t pid; /* 0: free */
    entry_t e[ENTRIES];
} slot_t;

typedef struct {
    uint64_t magic;
    slot_t slot[SLOTS];
} journal_t;

#define JOURNAL_MAGIC 0x726a6f75726e6c31ull

static slot_t *mine;                  /* this worker's slot */
static int full_noticed;

static int journal_init(rp_shm_zone_t *z, int reused, char *err, size_t errlen)
{
    journal_t *j = z->addr;
    if (z->avail < sizeof(*j)) {
        snprintf(err, errlen, "zone \"%s\" is too small", z->name);
        return -1;
    }
    if (!reused || j->magic != JOURNAL_MAGIC) {
        memset(j, 0, sizeof(*j));
        j->magic = JOURNAL_MAGIC;
    }
    return 0;
}

const char *rp_peer_journal_declare(void *cfp)
{
    rp_conf_t *cf = cfp;
    /* the mapping also holds the zone's lock and header: leave room for them */
    size_t size = (sizeof(journal_t) + 65536) & ~(size_t)4095;
    rp_shm_zone_t *z = rp_shm_zone_add_versioned(cf, JOURNAL_ZONE, size, "upstream journal",
                                                 JOURNAL_VERSION, journal_init);
    return z ? RP_CONF_OK : RP_CONF_ERROR;
}

static journal_t *journal_of(rp_cycle_t *cycle)
{
    for (size_t i = 0; i < cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
        if (strcmp(z->name, JOURNAL_ZONE) == 0 && z->addr)
            return z->addr;
    }
    return NULL;
}

void rp_peer_journal_start(rp_cycle_t *cycle)
{
    mine = NULL;
    journal_t *j = journal_of(cycle);
    if (j == NULL || rp_process.kind != RP_PROCESS_WORKER)
        return; /* a single process has nobody to give its part back for it */
    int64_t pid = getpid();
    for (int i = 0; i < SLOTS; i++) {
        int64_t expected = 0;
        if (__atomic_compare_exchange_n(&j->slot[i].pid, &expected, pid, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            memset(j->slot[i].e, 0, sizeof(j->slot[i].e));
            mine = &j->slot[i];
            return;
        }
    }
    rp_log_error(RP_LOG_NOTICE, 0, "no free slot in the peer journal: this worker's in-flight "
                                   "counts are not given back if it crashes");
}

void rp_peer_journal_add(rp_peer_shared_t *sh, int inflight, int conns)
{
    slot_t *s = mine;
    if (s == NULL)
        return;
    unsigned h = (unsigned)((uintptr_t)sh >> 6) & (ENTRIES - 1);
    entry_t *reuse = NULL;
    for (unsigned i = 0; i < ENTRIES; i++) {
        entry_t *e = &s->e[(h + i) & (ENTRIES - 1)];
        if (e->sh == sh) {
            e->inflight += inflight;
            e->conns += conns;
            return;
        }
        if (e->sh == NULL) {
            if (reuse == NULL)
                reuse = e;
            break;
        }
        if (reuse == NULL && e->inflight == 0 && e->conns == 0)
            reuse = e;
    }
    if (reuse == NULL) {
        if (!full_noticed)
            rp_log_error(RP_LOG_NOTICE, 0, "peer journal full: some in-flight counts are not "
                                           "given back if this worker crashes");
        full_noticed = 1;
        return;
    }
    if (inflight < 0 || conns < 0)
        return; /* taken before the journal had room for it: not ours to record */
    reuse->sh = sh;
    reuse->inflight = inflight;
    reuse->conns = conns;
}

/* Whether p points at a peer entry inside one of cycle's upstream zones. */
static int in_zones(rp_cycle_t *cycle, const void *p)
{
    for (size_t i = 0; i < cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
        if (z->addr && strcmp(z->tag, "upstream") == 0 && (const char *)p >= (char *)z->addr &&
            (const char *)p + sizeof(rp_peer_shared_t) <= (char *)z->addr + z->avail)
            return 1;
    }
    return 0;
}

void rp_peer_journal_child_exited(rp_cycle_t *cycle, int pid, int clean)
{
    journal_t *j = journal_of(cycle);
    if (j == NULL)
        return;
    for (int i = 0; i < SLOTS; i++) {
        slot_t *s = &j->slot[i];
        if (s->pid != pid)
            continue;
        long requests = 0, conns = 0;
        for (unsigned k = 0; k < ENTRIES; k++) {
            entry_t *e = &s->e[k];
            if (e->sh == NULL || (e->inflight == 0 && e->conns == 0) || !in_zones(cycle, e->sh))
                continue;
            rp_shm_counter_add(&e->sh->inflight, -e->inflight);
            rp_shm_counter_add(&e->sh->conns, -e->conns);
            if (rp_shm_counter_get(&e->sh->state) == RP_PEER_POOL)
                continue; /* a pool's totals: the same requests as its peers' */
            requests += e->inflight;
            conns += e->conns;
        }
        if (requests || conns)
            rp_log_error(clean ? RP_LOG_INFO : RP_LOG_NOTICE, 0,
                         "worker process %d left %ld requests and %ld connections to upstream "
                         "peers counted: given back", pid, requests, conns);
        memset(s->e, 0, sizeof(s->e));
        __atomic_store_n(&s->pid, 0, __ATOMIC_SEQ_CST);
    }
}
