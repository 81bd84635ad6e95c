/*
 * Arenas: the three lifetimes of rampart memory (a configuration generation, a
 * connection, a request) each get one. Allocation is a pointer bump; everything
 * is released at once when the owner ends. Foreign resources (PCRE2 code, a Lua
 * reference, an nghttp2 session) register a cleanup with the arena that owns them.
 * Allocation failure aborts with a message: a gateway that limps on after ENOMEM
 * corrupts more than it saves.
 */
#ifndef RP_ARENA_H
#define RP_ARENA_H

#include <stddef.h>

typedef struct rp_arena_s rp_arena_t;

/* Creates an arena whose chunks are at least chunk_size bytes. Never returns NULL. */
rp_arena_t *rp_arena_create(size_t chunk_size);

/* Frees every chunk after running the registered cleanups in reverse order. */
void rp_arena_destroy(rp_arena_t *a);

/* Runs the cleanups and rewinds to the first chunk, keeping it for reuse. */
void rp_arena_reset(rp_arena_t *a);

/* Returns n bytes aligned for any type; the memory lives as long as the arena. */
void *rp_arena_alloc(rp_arena_t *a, size_t n);

/* Same as rp_arena_alloc, zero-filled. */
void *rp_arena_calloc(rp_arena_t *a, size_t n);

/* Copies n bytes of s and adds a terminating NUL. */
char *rp_arena_strndup(rp_arena_t *a, const char *s, size_t n);
char *rp_arena_strdup(rp_arena_t *a, const char *s);

/* printf into arena memory. */
char *rp_arena_sprintf(rp_arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Registers fn(data) to run when the arena is reset or destroyed. */
void rp_arena_cleanup(rp_arena_t *a, void (*fn)(void *), void *data);

/* malloc family that aborts on failure, for the few places outside arenas. */
void *rp_xmalloc(size_t n);
void *rp_xcalloc(size_t n, size_t size);
void *rp_xrealloc(void *p, size_t n);
char *rp_xstrdup(const char *s);

/* A growable array whose storage comes from an arena. */
typedef struct {
    void *elts;
    size_t nelts;
    size_t size;
    size_t nalloc;
    rp_arena_t *arena;
} rp_array_t;

void rp_array_init(rp_array_t *arr, rp_arena_t *a, size_t n, size_t size);

/* Returns a pointer to a new zeroed element at the end. */
void *rp_array_push(rp_array_t *arr);

#define RP_ARRAY_AT(arr, type, i) (((type *)(arr)->elts)[i])

#endif
