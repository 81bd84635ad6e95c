/*
 * Shared memory zones: the registry a configuration fills while it is parsed, the
 * mappings the master makes before forking, and the lock inside every zone.
 *
 * A mapping (a segment) is a memfd (memfd_create) mapped shared: it needs no file
 * and no name in the file system, and only the master's children, which inherit
 * the mapping, ever see it. It is a memfd rather than an anonymous mapping only
 * for the binary upgrade (USR2, core/upgrade.c): exec drops every mapping, but a
 * descriptor survives it, so the master hands its segments' descriptors to the new
 * master (RAMPART_SHM="fd:address:name:tag;...", name and tag in hex), which maps
 * each one back at the address it had (the structures in a zone hold plain
 * pointers) and gives it to the zone of the same name, user, size and layout
 * version: limit counters, health and ejection state, the peer table carry on
 * counting in both binaries' workers. A segment that cannot go back to its address
 * (taken in the new process), or whose layout changed, is not used: the zone starts
 * empty and a notice says so. The master keeps each descriptor (close-on-exec) for
 * that hand-over; children close theirs. DESIGN.md says zones are kept across
 * reloads; with this they are kept across a binary upgrade as well, under the same
 * rule (name, user, size and layout version), and nothing else changes.
 *
 * Segments are counted:
 * each generation that uses one holds a reference, released when the generation's
 * arena is destroyed, so a zone kept by a reload stays mapped until both the old
 * and the new generation are gone, and one that a reload dropped goes with the
 * last old worker.
 *
 * The lock is a robust, process-shared mutex at the start of the segment: a worker
 * that dies holding it (a crash, a SIGKILL) leaves it to the next taker with a
 * warning instead of leaving every other worker blocked for ever. Beside it the
 * segment records what it was made for (its size and the layout version of its
 * user), which decides whether the next generation may share it.
 */
#include "core/shm.h"
#include "core/cycle.h"
#include "core/log.h"
#include "core/process.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEG_MAGIC 0x72707a6eu /* "rpzn" */

/* What a segment starts with; the user's bytes follow, cache-line aligned. */
typedef struct {
    pthread_mutex_t lock;
    uint32_t magic;
    uint32_t version; /* of the user's layout */
    uint64_t size;
} seg_head_t;

#define HEAD_SIZE ((sizeof(seg_head_t) + 63) & ~(size_t)63)

struct rp_shm_seg_s {
    char *name;
    size_t size;
    const char *tag; /* a string constant of the user's module */
    void *base;
    int fd;        /* the memfd, kept by the master for a binary upgrade; -1 in a child */
    int inherited; /* mapped from the old master's descriptor, not yet claimed by a zone */
    char *itag;    /* an inherited segment's user, as the old master named it */
    unsigned refs;
    rp_shm_seg_t *next;
};

/* Every segment this process has mapped, for reuse across reloads and for cleanup. */
static rp_shm_seg_t *segs;

const char *rp_shm_size_text(size_t size, char *buf, size_t len)
{
    if (size && size % (1024 * 1024 * 1024) == 0)
        snprintf(buf, len, "%zug", size / (1024 * 1024 * 1024));
    else if (size && size % (1024 * 1024) == 0)
        snprintf(buf, len, "%zum", size / (1024 * 1024));
    else if (size && size % 1024 == 0)
        snprintf(buf, len, "%zuk", size / 1024);
    else
        snprintf(buf, len, "%zu", size);
    return buf;
}

rp_shm_zone_t *rp_shm_zone_add(rp_conf_t *cf, const char *name, size_t size, const char *tag,
                               rp_shm_init_pt init)
{
    return rp_shm_zone_add_versioned(cf, name, size, tag, 0, init);
}

rp_shm_zone_t *rp_shm_zone_add_versioned(rp_conf_t *cf, const char *name, size_t size,
                                         const char *tag, unsigned version, rp_shm_init_pt init)
{
    rp_array_t *zones = &cf->cycle->shm_zones;
    for (size_t i = 0; i < zones->nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(zones, rp_shm_zone_t *, i);
        if (strcmp(z->name, name) != 0)
            continue;
        if (strcmp(z->tag, tag) != 0) {
            rp_conf_error(cf, "zone \"%s\" is already used by \"%s\" in %s:%u", name, z->tag,
                          z->file, z->line);
            return NULL;
        }
        if (z->size != size) {
            char a[32], b[32];
            rp_conf_error(cf, "zone \"%s\" of size %s is already declared with size %s in %s:%u",
                          name, rp_shm_size_text(size, a, sizeof(a)),
                          rp_shm_size_text(z->size, b, sizeof(b)), z->file, z->line);
            return NULL;
        }
        if (z->version != version) {
            rp_conf_error(cf, "zone \"%s\" is already declared with another layout in %s:%u", name,
                          z->file, z->line);
            return NULL;
        }
        return z;
    }
    rp_shm_zone_t *z = rp_arena_calloc(cf->arena, sizeof(*z));
    z->name = rp_arena_strdup(cf->arena, name);
    z->size = size;
    z->tag = tag;
    z->version = version;
    z->file = cf->file;
    z->line = cf->line;
    z->init = init;
    *(rp_shm_zone_t **)rp_array_push(zones) = z;
    return z;
}

static void seg_unmap(rp_shm_seg_t *s)
{
    for (rp_shm_seg_t **pp = &segs; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    munmap(s->base, s->size);
    if (s->fd >= 0)
        close(s->fd);
    free(s->name);
    free(s->itag);
    free(s);
}

/* The arena cleanup of a generation that used the segment. */
static void seg_release(void *data)
{
    rp_shm_seg_t *s = data;
    if (--s->refs == 0)
        seg_unmap(s);
}

static rp_shm_seg_t *seg_create(const rp_shm_zone_t *z, char *err, size_t errlen)
{
    char mname[64];
    snprintf(mname, sizeof(mname), "rampart:%s", z->name);
    int fd = memfd_create(mname, MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)z->size) != 0) {
        snprintf(err, errlen, "%s:%u: cannot create zone \"%s\" of %zu bytes: %s", z->file, z->line,
                 z->name, z->size, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    void *base = mmap(NULL, z->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        snprintf(err, errlen, "%s:%u: cannot map zone \"%s\" of %zu bytes: %s", z->file, z->line,
                 z->name, z->size, strerror(errno));
        close(fd);
        return NULL;
    }
    seg_head_t *h = base;
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        rc = pthread_mutex_init(&h->lock, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%u: cannot create the lock of zone \"%s\": %s", z->file, z->line,
                 z->name, strerror(rc));
        munmap(base, z->size);
        close(fd);
        return NULL;
    }
    h->magic = SEG_MAGIC;
    h->version = z->version;
    h->size = z->size;
    rp_shm_seg_t *s = rp_xcalloc(1, sizeof(*s));
    s->name = rp_xstrdup(z->name);
    s->size = z->size;
    s->tag = z->tag;
    s->base = base;
    s->fd = fd;
    s->next = segs;
    segs = s;
    return s;
}

/* ---- the binary upgrade: segments handed to, and taken from, another master ---- */

static void hex_put(char *out, const char *in)
{
    static const char digits[] = "0123456789abcdef";
    for (; *in; in++) {
        *out++ = digits[(unsigned char)*in >> 4];
        *out++ = digits[(unsigned char)*in & 15];
    }
    *out = '\0';
}

/* Decodes n hex digits at in; NULL when they are not hex. */
static char *hex_get(const char *in, size_t n)
{
    char *out = rp_xcalloc(1, n / 2 + 1);
    for (size_t i = 0; i + 1 < n; i += 2) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = in[i + (size_t)j];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) {
                free(out);
                return NULL;
            }
            v = v * 16 + d;
        }
        out[i / 2] = (char)v;
    }
    return out;
}

int rp_shm_export(char *buf, size_t cap, int *fds, int maxfds)
{
    size_t len = 0;
    int n = 0;
    buf[0] = '\0';
    for (rp_shm_seg_t *s = segs; s; s = s->next) {
        if (s->fd < 0 || s->inherited)
            continue;
        const char *tag = s->itag ? s->itag : s->tag;
        size_t need = 64 + 2 * strlen(s->name) + 2 * strlen(tag);
        if (n == maxfds || len + need >= cap)
            return -1;
        len += (size_t)snprintf(buf + len, cap - len, "%d:%lx:", s->fd, (unsigned long)s->base);
        hex_put(buf + len, s->name);
        len += strlen(buf + len);
        buf[len++] = ':';
        hex_put(buf + len, tag);
        len += strlen(buf + len);
        buf[len++] = ';';
        buf[len] = '\0';
        fds[n++] = s->fd;
    }
    return n;
}

/* What went wrong while mapping inherited segments, said once the log is open. */
static char inherit_notes[1024];

static void inherit_note(const char *name, const char *why)
{
    size_t len = strlen(inherit_notes);
    snprintf(inherit_notes + len, sizeof(inherit_notes) - len, "%s\"%s\" (%s)", len ? ", " : "",
             name ? name : "?", why);
}

static void inherit_one(int fd, void *addr, char *name, char *tag)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)HEAD_SIZE) {
        inherit_note(name, "not a segment");
        goto fail;
    }
    size_t size = (size_t)st.st_size;
    /* MAP_FIXED_NOREPLACE: at that address or nowhere, never over a mapping of ours */
    void *base = mmap(addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
    if (base == MAP_FAILED || base != addr) {
        if (base != MAP_FAILED)
            munmap(base, size);
        inherit_note(name, "its address is taken");
        goto fail;
    }
    const seg_head_t *h = base;
    if (h->magic != SEG_MAGIC || h->size != size) {
        munmap(base, size);
        inherit_note(name, "not a segment");
        goto fail;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC); /* cleared only for the exec that brought it */
    rp_shm_seg_t *s = rp_xcalloc(1, sizeof(*s));
    s->name = name;
    s->itag = tag;
    s->tag = tag;
    s->size = size;
    s->base = base;
    s->fd = fd;
    s->inherited = 1;
    s->next = segs;
    segs = s;
    return;
fail:
    close(fd);
    free(name);
    free(tag);
}

void rp_shm_inherit(const char *value)
{
    for (const char *p = value; *p;) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        char item[4096];
        snprintf(item, sizeof(item), "%.*s", (int)n, p);
        char *end, *c1, *c2;
        long fd = strtol(item, &end, 10);
        if (*end == ':' && (c1 = strchr(end + 1, ':')) != NULL &&
            (c2 = strchr(c1 + 1, ':')) != NULL && fd > 2) {
            void *addr = (void *)strtoul(end + 1, NULL, 16);
            char *name = hex_get(c1 + 1, (size_t)(c2 - c1 - 1));
            char *tag = hex_get(c2 + 1, strlen(c2 + 1));
            if (name && tag)
                inherit_one((int)fd, addr, name, tag);
            else {
                free(name);
                free(tag);
            }
        }
        if (semi == NULL)
            break;
        p = semi + 1;
    }
}

/* An inherited segment the old master used for a zone like z, if any. */
static rp_shm_seg_t *seg_inherited(const rp_shm_zone_t *z)
{
    for (rp_shm_seg_t *s = segs; s; s = s->next)
        if (s->inherited && s->size == z->size && strcmp(s->name, z->name) == 0 &&
            strcmp(s->itag, z->tag) == 0)
            return s;
    return NULL;
}

/* After the first generation mapped its zones: inherited segments it did not take go. */
static void inherited_done(void)
{
    if (inherit_notes[0])
        rp_log_error(RP_LOG_NOTICE, 0, "zones not carried over from the old master: %s",
                     inherit_notes);
    inherit_notes[0] = '\0';
    rp_shm_seg_t *s = segs;
    while (s) {
        rp_shm_seg_t *next = s->next;
        if (s->inherited) {
            rp_log_error(RP_LOG_NOTICE, 0, "zone \"%s\" of the old master is not used", s->name);
            seg_unmap(s);
        }
        s = next;
    }
}

/* The segment prev maps for a zone like z, if any. */
static rp_shm_seg_t *seg_of_prev(const rp_cycle_t *prev, const rp_shm_zone_t *z)
{
    if (prev == NULL)
        return NULL;
    for (size_t i = 0; i < prev->shm_zones.nelts; i++) {
        const rp_shm_zone_t *o = RP_ARRAY_AT(&prev->shm_zones, rp_shm_zone_t *, i);
        if (o->seg && o->size == z->size && strcmp(o->name, z->name) == 0 &&
            strcmp(o->tag, z->tag) == 0)
            return o->seg;
    }
    return NULL;
}

/*
 * Whether segment s, kept by the previous generation, is laid out as zone z expects.
 * One that another version of its user's layout made is not reused: laying it out
 * afresh in place would pull the memory from under the old workers still reading
 * it; a new mapping leaves them theirs until they exit.
 */
static int seg_fits(const rp_shm_seg_t *s, const rp_shm_zone_t *z)
{
    const seg_head_t *h = s->base;
    if (h->magic == SEG_MAGIC && h->size == z->size && h->version == z->version)
        return 1;
    rp_log_error(RP_LOG_NOTICE, 0,
                 "zone \"%s\" has a new layout (version %u, was %u): it starts empty", z->name,
                 z->version, h->version);
    return 0;
}

int rp_shm_open(rp_cycle_t *cycle, const rp_cycle_t *prev, char *err, size_t errlen)
{
    for (size_t i = 0; i < cycle->shm_zones.nelts; i++) {
        rp_shm_zone_t *z = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i);
        if (z->seg)
            continue;
        rp_shm_seg_t *s = seg_of_prev(prev, z);
        int carried = 0;
        if (s == NULL && prev == NULL && (s = seg_inherited(z)) != NULL)
            carried = 1;
        if (s && !seg_fits(s, z))
            s = NULL;
        int reused = s != NULL;
        if (s && carried) {
            s->inherited = 0;
            s->tag = z->tag;
        }
        if (s == NULL && (s = seg_create(z, err, errlen)) == NULL)
            return -1;
        s->refs++;
        rp_arena_cleanup(cycle->arena, seg_release, s);
        z->seg = s;
        z->addr = (char *)s->base + HEAD_SIZE;
        z->avail = z->size > HEAD_SIZE ? z->size - HEAD_SIZE : 0;
        if (z->init && z->init(z, reused, err, errlen) != 0)
            return -1;
        if (carried && reused)
            rp_log_error(RP_LOG_NOTICE, 0, "zone \"%s\" is carried over from the old master",
                         z->name);
        else if (reused)
            rp_log_error(RP_LOG_INFO, 0, "zone \"%s\" is kept from the previous configuration",
                         z->name);
    }
    return 0;
}

void rp_shm_keep_only(const rp_cycle_t *cycle)
{
    rp_shm_seg_t *s = segs;
    while (s) {
        rp_shm_seg_t *next = s->next;
        int used = 0;
        for (size_t i = 0; cycle && i < cycle->shm_zones.nelts && !used; i++)
            used = RP_ARRAY_AT(&cycle->shm_zones, rp_shm_zone_t *, i)->seg == s;
        if (!used)
            seg_unmap(s);
        s = next;
    }
}

int rp_shm_lock(rp_shm_zone_t *zone)
{
    seg_head_t *h = zone->seg->base;
    int rc = pthread_mutex_lock(&h->lock);
    if (rc == 0)
        return 0;
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&h->lock);
        zone->owner_died = 1; /* said once the lock is released: logging is a system call */
        return 1;
    }
    /* Only a broken mapping gets here: going on unlocked would corrupt every worker. */
    rp_log_error(RP_LOG_EMERG, rc, "cannot lock zone \"%s\"", zone->name);
    abort();
}

void rp_shm_unlock(rp_shm_zone_t *zone)
{
    seg_head_t *h = zone->seg->base;
    pthread_mutex_unlock(&h->lock);
    if (zone->owner_died) {
        zone->owner_died = 0;
        rp_log_error(RP_LOG_ALERT, 0, "a process died holding the lock of zone \"%s\"", zone->name);
    }
}

/* ---- the module: the process hooks that map and keep zones ---- */

static int shm_init_master(rp_cycle_t *cycle, const rp_cycle_t *prev, unsigned flags, char *err,
                           size_t errlen)
{
    if (flags & RP_INIT_TEST)
        return 0; /* rampart -t maps nothing */
    int rc = rp_shm_open(cycle, prev, err, errlen);
    if (prev == NULL)
        inherited_done();
    return rc;
}

static int shm_init_child(rp_cycle_t *cycle)
{
    /* alone (master_process off) it maps only its own generations anyway */
    if (rp_process.kind != RP_PROCESS_SINGLE) {
        rp_shm_keep_only(cycle);
        for (rp_shm_seg_t *s = segs; s; s = s->next) {
            if (s->fd >= 0)
                close(s->fd); /* a child never hands segments on */
            s->fd = -1;
        }
    }
    return 0;
}

rp_module_t rp_shm_module = {
    .name = "shm",
    .init_master = shm_init_master,
    .init_worker = shm_init_child,
    .init_helper = shm_init_child,
};
