/*
 * A bounded writer into a caller's buffer, for heads built on the hot path
 * without allocating: writes past the end turn the writer off (p becomes
 * NULL) instead of overflowing, and the caller checks once at the end.
 */
#ifndef RP_WBUF_H
#define RP_WBUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
    char *p, *end;
} rp_wbuf_t;

static inline void rp_wbuf_put(rp_wbuf_t *w, const void *s, size_t n)
{
    if (w->p == NULL || (size_t)(w->end - w->p) < n) {
        w->p = NULL;
        return;
    }
    memcpy(w->p, s, n);
    w->p += n;
}

#define RP_WBUF_LIT(w, lit) rp_wbuf_put((w), (lit), sizeof(lit) - 1)

#endif
