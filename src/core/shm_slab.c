/*
 * The slab allocator of a shared memory block: its header, one descriptor per
 * page, and the pages.
 *
 * A page is, by its descriptor, part of a free run, part of an allocated run, or a
 * page of slots of one class. Free runs are on one list, first fit; a run is
 * taken from the end of the free run that fits, so that run's place on the list
 * does not change. The first and last page of a free run both say so, and the
 * last names the first, which is all that merging a freed run with its
 * neighbours needs: the page before a run is the last page of another, the page
 * after it the first page of another. Every page of an allocated run is marked,
 * so freeing an address inside one is refused rather than taken for a run.
 *
 * A page of slots is on its class's list while it has a free slot. Its free
 * slots are a list threaded through the slots themselves (a 16-bit index in each
 * free slot, the smallest slot is 8 bytes), plus the slots above a high-water
 * mark that were never handed out, so a new page needs no preparing. A page whose
 * last slot comes back returns to the free pages at once: a class keeps no
 * spare pages another class could use.
 *
 * Indexes read from the block are checked before they are used, and walks are
 * bounded by the number of pages: a damaged block makes an allocation fail, not
 * a process loop or write outside the block.
 */
#include "core/shm_slab.h"

#include <string.h>

#define MAGIC       0x72706c73u /* "rpls" */
#define LAYOUT      1u
#define NONE        UINT32_MAX
#define MIN_SHIFT   3 /* 8-byte slots */
#define MIN_PAGES   4
#define REF_LIMIT   ((uint64_t)UINT32_MAX << 3)
#define ALIGN(n, a) (((n) + (a)-1) & ~(size_t)((a)-1))

enum { PAGE_FREE = 0x46, PAGE_RUN = 0x52, PAGE_BUSY = 0x42, PAGE_SLOTS = 0x53 };

typedef struct {
    uint32_t next, prev; /* on the free runs or on a class's list of pages with room */
    union {
        struct {
            uint32_t run;  /* first page of a run (free or not): its pages */
            uint32_t lead; /* first and last page of a free run: the first page */
        } r;
        struct {
            uint16_t used;  /* slots handed out */
            uint16_t free;  /* first slot of the free list + 1; 0: none */
            uint16_t fresh; /* slots at and above this were never handed out */
            uint16_t pad;
        } s;
    } u;
    uint8_t kind;
    uint8_t cls;
    uint16_t pad;
} page_t;

struct rp_shm_slab_s {
    uint32_t magic, layout;
    uint64_t size;
    uint64_t pages_off; /* from the header to the first page */
    uint32_t page_shift;
    uint32_t npages, nfree;
    uint32_t nclasses;
    uint32_t free_runs; /* first free run */
    uint32_t root;      /* the user's */
    uint32_t run_pages;
    uint32_t pad;
    uint64_t failures;
    struct {
        uint32_t partial; /* first page with a free slot */
        uint32_t pages;
        uint64_t used;
    } cls[RP_SHM_SLAB_MAX_CLASSES];
    page_t page[];
};

static char *page_addr(const rp_shm_slab_t *s, uint32_t i)
{
    return (char *)s + s->pages_off + ((size_t)i << s->page_shift);
}

static void list_push(rp_shm_slab_t *s, uint32_t *head, uint32_t i)
{
    page_t *p = &s->page[i];
    p->prev = NONE;
    p->next = *head;
    if (*head < s->npages)
        s->page[*head].prev = i;
    *head = i;
}

static void list_remove(rp_shm_slab_t *s, uint32_t *head, uint32_t i)
{
    page_t *p = &s->page[i];
    if (p->prev < s->npages)
        s->page[p->prev].next = p->next;
    else
        *head = p->next;
    if (p->next < s->npages)
        s->page[p->next].prev = p->prev;
}

/* Marks pages [i, i + n) one free run, by its first and last page. */
static void mark_free_run(rp_shm_slab_t *s, uint32_t i, uint32_t n)
{
    page_t *first = &s->page[i], *last = &s->page[i + n - 1];
    first->kind = last->kind = PAGE_FREE;
    first->u.r.run = last->u.r.run = n;
    first->u.r.lead = last->u.r.lead = i;
}

/* The first page of n free pages in a row, taken off the free runs; NONE if none. */
static uint32_t pages_take(rp_shm_slab_t *s, uint32_t n)
{
    uint32_t steps = 0;
    for (uint32_t i = s->free_runs; i != NONE; i = s->page[i].next) {
        if (i >= s->npages || ++steps > s->npages)
            return NONE; /* damaged: no walk past it */
        page_t *p = &s->page[i];
        if (p->kind != PAGE_FREE || p->u.r.run == 0 || p->u.r.run > s->npages - i)
            return NONE;
        uint32_t run = p->u.r.run;
        if (run < n)
            continue;
        if (run == n)
            list_remove(s, &s->free_runs, i);
        else
            mark_free_run(s, i, run - n);
        s->nfree -= n;
        return i + run - n;
    }
    return NONE;
}

/* Returns pages [i, i + n) to the free runs, merged with free neighbours. */
static void pages_give(rp_shm_slab_t *s, uint32_t i, uint32_t n)
{
    s->nfree += n;
    for (uint32_t k = i; k < i + n; k++)
        s->page[k].kind = PAGE_FREE;
    if (i > 0 && s->page[i - 1].kind == PAGE_FREE) {
        uint32_t h = s->page[i - 1].u.r.lead;
        if (h < i && s->page[h].kind == PAGE_FREE && s->page[h].u.r.lead == h &&
            s->page[h].u.r.run == i - h) {
            list_remove(s, &s->free_runs, h);
            n += i - h;
            i = h;
        }
    }
    uint32_t j = i + n;
    if (j < s->npages && s->page[j].kind == PAGE_FREE && s->page[j].u.r.lead == j &&
        s->page[j].u.r.run <= s->npages - j) {
        list_remove(s, &s->free_runs, j);
        n += s->page[j].u.r.run;
    }
    mark_free_run(s, i, n);
    list_push(s, &s->free_runs, i);
}

static unsigned class_of(size_t n)
{
    unsigned c = 0;
    while (((size_t)1 << (c + MIN_SHIFT)) < n)
        c++;
    return c;
}

static void *slot_alloc(rp_shm_slab_t *s, unsigned c)
{
    uint32_t i = s->cls[c].partial;
    if (i == NONE) {
        if ((i = pages_take(s, 1)) == NONE)
            return NULL;
        page_t *p = &s->page[i];
        p->kind = PAGE_SLOTS;
        p->cls = (uint8_t)c;
        p->u.s.used = p->u.s.free = p->u.s.fresh = 0;
        list_push(s, &s->cls[c].partial, i);
        s->cls[c].pages++;
    }
    unsigned shift = c + MIN_SHIFT;
    unsigned nslots = 1u << (s->page_shift - shift);
    if (i >= s->npages)
        return NULL; /* damaged */
    page_t *p = &s->page[i];
    if (p->kind != PAGE_SLOTS || p->cls != c || p->u.s.used >= nslots)
        return NULL;
    char *slot;
    if (p->u.s.free) {
        unsigned k = p->u.s.free - 1u;
        if (k >= p->u.s.fresh)
            return NULL;
        slot = page_addr(s, i) + ((size_t)k << shift);
        uint16_t next;
        memcpy(&next, slot, sizeof(next));
        if (next > p->u.s.fresh)
            return NULL;
        p->u.s.free = next;
    } else {
        if (p->u.s.fresh >= nslots)
            return NULL;
        slot = page_addr(s, i) + ((size_t)p->u.s.fresh++ << shift);
    }
    if (++p->u.s.used == nslots)
        list_remove(s, &s->cls[c].partial, i); /* full: on no list */
    s->cls[c].used++;
    return slot;
}

void *rp_shm_slab_alloc_locked(rp_shm_slab_t *s, size_t n)
{
    size_t page = (size_t)1 << s->page_shift;
    void *p = NULL;
    if (n == 0)
        n = 1;
    if (n <= page / 2) {
        p = slot_alloc(s, class_of(n));
    } else if (n <= (size_t)s->npages << s->page_shift) {
        uint32_t pages = (uint32_t)((n + page - 1) >> s->page_shift);
        uint32_t i = pages_take(s, pages);
        if (i != NONE) {
            for (uint32_t k = i; k < i + pages; k++)
                s->page[k].kind = PAGE_BUSY;
            s->page[i].kind = PAGE_RUN;
            s->page[i].u.r.run = pages;
            s->run_pages += pages;
            p = page_addr(s, i);
        }
    }
    if (p == NULL)
        s->failures++;
    return p;
}

void *rp_shm_slab_calloc_locked(rp_shm_slab_t *s, size_t n)
{
    void *p = rp_shm_slab_alloc_locked(s, n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* The page p lies in, or NONE when p is outside the pages or not 8-byte aligned. */
static uint32_t page_of(const rp_shm_slab_t *s, const void *p)
{
    const char *first = page_addr(s, 0);
    if ((const char *)p < first || ((uintptr_t)p & 7))
        return NONE;
    size_t i = (size_t)((const char *)p - first) >> s->page_shift;
    return i < s->npages ? (uint32_t)i : NONE;
}

/* Whether p starts a slot handed out (or freed) in the slot page i. */
static int slot_start(const rp_shm_slab_t *s, uint32_t i, const void *p)
{
    const page_t *pg = &s->page[i];
    unsigned shift = pg->cls + MIN_SHIFT;
    size_t off = (size_t)((const char *)p - page_addr(s, i));
    return pg->cls < s->nclasses && (off & (((size_t)1 << shift) - 1)) == 0 &&
           (off >> shift) < pg->u.s.fresh;
}

int rp_shm_slab_free_locked(rp_shm_slab_t *s, void *p)
{
    uint32_t i = page_of(s, p);
    if (i == NONE)
        return -1;
    page_t *pg = &s->page[i];
    if (pg->kind == PAGE_RUN) {
        uint32_t n = pg->u.r.run;
        if (p != page_addr(s, i) || n == 0 || n > s->npages - i)
            return -1;
        s->run_pages -= n;
        pages_give(s, i, n);
        return 0;
    }
    if (pg->kind != PAGE_SLOTS || !slot_start(s, i, p) || pg->u.s.used == 0)
        return -1;
    unsigned c = pg->cls, shift = c + MIN_SHIFT;
    unsigned nslots = 1u << (s->page_shift - shift);
    int was_full = pg->u.s.used == nslots;
    uint16_t next = pg->u.s.free;
    memcpy(p, &next, sizeof(next));
    pg->u.s.free = (uint16_t)((((char *)p - page_addr(s, i)) >> shift) + 1);
    pg->u.s.used--;
    s->cls[c].used--;
    if (pg->u.s.used == 0) {
        if (!was_full) /* a page has two slots at least: a full one never empties at once */
            list_remove(s, &s->cls[c].partial, i);
        s->cls[c].pages--;
        pages_give(s, i, 1);
    } else if (was_full) {
        list_push(s, &s->cls[c].partial, i);
    }
    return 0;
}

size_t rp_shm_slab_size_locked(const rp_shm_slab_t *s, const void *p)
{
    uint32_t i = page_of(s, p);
    if (i == NONE)
        return 0;
    const page_t *pg = &s->page[i];
    if (pg->kind == PAGE_RUN && p == page_addr(s, i) && pg->u.r.run <= s->npages - i)
        return (size_t)pg->u.r.run << s->page_shift;
    if (pg->kind == PAGE_SLOTS && slot_start(s, i, p))
        return (size_t)1 << (pg->cls + MIN_SHIFT);
    return 0;
}

size_t rp_shm_slab_max_alloc(const rp_shm_slab_t *s)
{
    return (size_t)s->npages << s->page_shift;
}

void rp_shm_slab_stats_locked(const rp_shm_slab_t *s, rp_shm_slab_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->page_size = (size_t)1 << s->page_shift;
    st->pages_total = s->npages;
    st->pages_free = s->nfree;
    st->run_pages = s->run_pages;
    st->nclasses = s->nclasses;
    for (unsigned c = 0; c < s->nclasses; c++) {
        st->classes[c].size = (size_t)1 << (c + MIN_SHIFT);
        st->classes[c].used = s->cls[c].used;
        st->classes[c].pages = s->cls[c].pages;
    }
    st->failures = s->failures;
}

uint32_t rp_shm_slab_ref(const rp_shm_slab_t *s, const void *p)
{
    return p ? (uint32_t)(((const char *)p - (const char *)s) >> 3) : 0;
}

void *rp_shm_slab_ptr(const rp_shm_slab_t *s, uint32_t ref)
{
    uint64_t off = (uint64_t)ref << 3;
    if (off < s->pages_off || off >= s->pages_off + ((uint64_t)s->npages << s->page_shift))
        return NULL;
    return (char *)s + off;
}

uint32_t *rp_shm_slab_root(rp_shm_slab_t *s)
{
    return &s->root;
}

rp_shm_slab_t *rp_shm_slab_init(void *mem, size_t size)
{
    if ((uintptr_t)mem & 7 || size > REF_LIMIT)
        return NULL;
    /* 4 KiB pages, halved down to 512 bytes while the block has fewer than 64 */
    uint32_t shift = 12;
    while (shift > 9 && size < ((size_t)64 << shift))
        shift--;
    size_t head = sizeof(rp_shm_slab_t);
    if (size < head)
        return NULL;
    size_t npages = (size - head) / (((size_t)1 << shift) + sizeof(page_t));
    while (npages > 0 && ALIGN(head + npages * sizeof(page_t), 64) + (npages << shift) > size)
        npages--;
    if (npages < MIN_PAGES || npages >= NONE)
        return NULL;
    rp_shm_slab_t *s = mem;
    memset(s, 0, head);
    s->magic = MAGIC;
    s->layout = LAYOUT;
    s->size = size;
    s->page_shift = shift;
    s->npages = s->nfree = (uint32_t)npages;
    s->pages_off = ALIGN(head + npages * sizeof(page_t), 64);
    s->nclasses = shift - MIN_SHIFT; /* 8 bytes up to half a page */
    for (unsigned c = 0; c < RP_SHM_SLAB_MAX_CLASSES; c++)
        s->cls[c].partial = NONE;
    memset(s->page, 0, npages * sizeof(page_t));
    for (size_t i = 0; i < npages; i++)
        s->page[i].kind = PAGE_FREE;
    mark_free_run(s, 0, (uint32_t)npages);
    s->free_runs = NONE;
    list_push(s, &s->free_runs, 0);
    return s;
}

rp_shm_slab_t *rp_shm_slab_attach(void *mem, size_t size)
{
    rp_shm_slab_t *s = mem;
    if (size < sizeof(*s) || s->magic != MAGIC || s->layout != LAYOUT || s->size != size ||
        s->page_shift < 9 || s->page_shift > 12 || s->nclasses != s->page_shift - MIN_SHIFT ||
        s->nfree > s->npages || s->pages_off < sizeof(*s) + (uint64_t)s->npages * sizeof(page_t) ||
        s->pages_off + ((uint64_t)s->npages << s->page_shift) > size)
        return NULL;
    return s;
}
