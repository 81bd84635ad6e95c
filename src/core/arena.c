/*
 * Arena allocator: a list of chunks with a bump pointer, plus a cleanup list.
 * Large requests get a chunk of their own so a big allocation never wastes the
 * tail of the current chunk.
 */
#include "core/arena.h"
#include "core/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 16

typedef struct chunk_s {
    struct chunk_s *next;
    size_t size;
    size_t used;
    _Alignas(ALIGN) unsigned char data[];
} chunk_t;

typedef struct cleanup_s {
    struct cleanup_s *next;
    void (*fn)(void *);
    void *data;
} cleanup_t;

struct rp_arena_s {
    chunk_t *head; /* the chunk being filled; older chunks follow */
    size_t chunk_size;
    cleanup_t *cleanups;
};

void *rp_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "rampart: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *rp_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        fprintf(stderr, "rampart: out of memory allocating %zu bytes\n", n * size);
        abort();
    }
    return p;
}

void *rp_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "rampart: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return q;
}

char *rp_xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = rp_xmalloc(n + 1);
    memcpy(p, s, n + 1);
    return p;
}

static chunk_t *chunk_new(size_t size)
{
    chunk_t *c = rp_xmalloc(sizeof(chunk_t) + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

rp_arena_t *rp_arena_create(size_t chunk_size)
{
    rp_arena_t *a = rp_xmalloc(sizeof(*a));
    a->chunk_size = chunk_size < 256 ? 256 : chunk_size;
    a->head = chunk_new(a->chunk_size);
    a->cleanups = NULL;
    return a;
}

static void run_cleanups(rp_arena_t *a)
{
    while (a->cleanups) {
        cleanup_t *c = a->cleanups;
        a->cleanups = c->next;
        c->fn(c->data);
    }
}

void rp_arena_destroy(rp_arena_t *a)
{
    if (a == NULL)
        return;
    run_cleanups(a);
    chunk_t *c = a->head;
    while (c) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void rp_arena_reset(rp_arena_t *a)
{
    run_cleanups(a);
    /* Keep one standard-size chunk: a reused connection arena then allocates nothing. */
    chunk_t *keep = NULL, *c = a->head;
    while (c) {
        chunk_t *next = c->next;
        if (keep == NULL && c->size == a->chunk_size) {
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    if (keep == NULL)
        keep = chunk_new(a->chunk_size);
    keep->next = NULL;
    keep->used = 0;
    a->head = keep;
}

void *rp_arena_alloc(rp_arena_t *a, size_t n)
{
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    chunk_t *c = a->head;
    if (c->size - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    if (n > a->chunk_size / 4) {
        /* A big block gets its own chunk behind the current one. */
        chunk_t *big = chunk_new(n);
        big->used = n;
        big->next = c->next;
        c->next = big;
        return big->data;
    }
    chunk_t *fresh = chunk_new(a->chunk_size);
    fresh->next = c;
    a->head = fresh;
    fresh->used = n;
    return fresh->data;
}

void *rp_arena_calloc(rp_arena_t *a, size_t n)
{
    void *p = rp_arena_alloc(a, n);
    memset(p, 0, n);
    return p;
}

char *rp_arena_strndup(rp_arena_t *a, const char *s, size_t n)
{
    char *p = rp_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *rp_arena_strdup(rp_arena_t *a, const char *s)
{
    return rp_arena_strndup(a, s, strlen(s));
}

char *rp_arena_sprintf(rp_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *p = rp_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void rp_arena_cleanup(rp_arena_t *a, void (*fn)(void *), void *data)
{
    cleanup_t *c = rp_arena_alloc(a, sizeof(*c));
    c->fn = fn;
    c->data = data;
    c->next = a->cleanups;
    a->cleanups = c;
}

void rp_array_init(rp_array_t *arr, rp_arena_t *a, size_t n, size_t size)
{
    arr->arena = a;
    arr->size = size;
    arr->nelts = 0;
    arr->nalloc = n ? n : 1;
    arr->elts = rp_arena_alloc(a, arr->nalloc * size);
}

void *rp_array_push(rp_array_t *arr)
{
    if (arr->nelts == arr->nalloc) {
        /* The old block stays in the arena; arrays grow rarely and only at config time. */
        void *bigger = rp_arena_alloc(arr->arena, arr->nalloc * 2 * arr->size);
        memcpy(bigger, arr->elts, arr->nelts * arr->size);
        arr->elts = bigger;
        arr->nalloc *= 2;
    }
    void *p = (char *)arr->elts + arr->nelts * arr->size;
    arr->nelts++;
    memset(p, 0, arr->size);
    return p;
}
