/*
 * A slab allocator for one block of shared memory (a zone's bytes), so that the
 * structures every feature keeps in a zone (hash tables, peer records, Lua
 * dictionaries) take and give back memory of any size without a process-local
 * heap. The block is cut into pages; a small object (8 bytes up to half a page)
 * takes a slot of its power-of-two class in a page of that class, a larger one a
 * run of whole pages. Freeing returns a slot to its page, a page whose slots are
 * all free to the free pages, and a freed run is merged with free neighbours.
 *
 * Nothing here takes a lock: every function named _locked is called with the
 * zone's lock held (rp_shm_lock), and none of them makes a system call. An
 * allocation that finds no room returns NULL at once; making room (evicting) is
 * the caller's policy. Pages are 4 KiB, smaller in small blocks so that a 16 KiB
 * zone still has some thirty pages to share between classes.
 *
 * Zones are mapped before the workers are forked and kept mappings are
 * inherited, so an address in a block is the same in every process. Structures
 * may hold plain pointers; they can also hold 32-bit references
 * (rp_shm_slab_ref), half the size, which name an 8-byte unit of the block and
 * are checked before they are followed.
 */
#ifndef RP_SHM_SLAB_H
#define RP_SHM_SLAB_H

#include <stddef.h>
#include <stdint.h>

/* Size classes: 8, 16, ... up to half of the largest page (2 KiB). */
#define RP_SHM_SLAB_MAX_CLASSES 9

typedef struct rp_shm_slab_s rp_shm_slab_t;

typedef struct {
    size_t page_size;
    size_t pages_total;
    size_t pages_free;
    size_t run_pages; /* held by allocations larger than half a page */
    unsigned nclasses;
    struct {
        size_t size;  /* of a slot */
        size_t used;  /* slots handed out */
        size_t pages; /* pages given to the class */
    } classes[RP_SHM_SLAB_MAX_CLASSES];
    uint64_t failures; /* allocations refused for want of room */
} rp_shm_slab_stats_t;

/*
 * Lays out an empty allocator over size bytes at mem (which need not be zeroed and
 * must be 8-byte aligned). Returns it (at mem), or NULL when size is too small for a
 * few pages or too large for 32-bit references (32 GiB).
 */
rp_shm_slab_t *rp_shm_slab_init(void *mem, size_t size);

/* The allocator rp_shm_slab_init laid out at mem over exactly size bytes, or NULL. */
rp_shm_slab_t *rp_shm_slab_attach(void *mem, size_t size);

/*
 * n bytes (n > 0), 8-byte aligned; a run of pages is page-aligned relative to the
 * first page. NULL when there is no room: nothing was changed.
 */
void *rp_shm_slab_alloc_locked(rp_shm_slab_t *s, size_t n);

/* As rp_shm_slab_alloc_locked, zero-filled. */
void *rp_shm_slab_calloc_locked(rp_shm_slab_t *s, size_t n);

/*
 * Gives back what p, returned by an allocation, holds. Returns 0, or -1 when p is
 * not the start of an allocation of this block, and then nothing is touched. (A
 * slot freed twice is not detected.)
 */
int rp_shm_slab_free_locked(rp_shm_slab_t *s, void *p);

/* The bytes usable at p (its slot or run, at least what was asked), or 0 when p is
 * not the start of an allocation. */
size_t rp_shm_slab_size_locked(const rp_shm_slab_t *s, const void *p);

/* The largest allocation the block could ever satisfy (all its pages as one run). */
size_t rp_shm_slab_max_alloc(const rp_shm_slab_t *s);

void rp_shm_slab_stats_locked(const rp_shm_slab_t *s, rp_shm_slab_stats_t *st);

/* A 32-bit reference to p, an address inside the block's pages; 0 for NULL. */
uint32_t rp_shm_slab_ref(const rp_shm_slab_t *s, const void *p);

/*
 * The address ref names, or NULL for 0 and for a reference outside the block's
 * pages (a damaged one): a structure follows a reference only through this.
 */
void *rp_shm_slab_ptr(const rp_shm_slab_t *s, uint32_t ref);

/* A slot in the block's header for the reference to the user's root structure,
 * found again by a process that attaches the block (0 until the user sets it). */
uint32_t *rp_shm_slab_root(rp_shm_slab_t *s);

#endif
