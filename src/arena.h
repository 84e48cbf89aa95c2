/*
 * arena.h — the per-request arena: everything a request allocates comes
 * from here and is released at once by arena_reset() when the request ends.
 * Small allocations abort on out-of-memory like xmalloc; callers bound any
 * client-sized allocation before asking.
 */
#ifndef S4S_ARENA_H
#define S4S_ARENA_H

#include <stddef.h>

struct arena_chunk;

typedef struct arena {
    struct arena_chunk *head;
    size_t chunk_size;
    size_t total; /* bytes handed out since the last reset, for metrics and limits */
} arena_t;

void arena_init(arena_t *a, size_t chunk_size);
void *arena_alloc(arena_t *a, size_t n); /* 16-byte aligned, not zeroed */
void *arena_calloc(arena_t *a, size_t n, size_t size);
char *arena_strdup(arena_t *a, const char *s);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_printf(arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Free every chunk but the first, so a worker's steady state allocates nothing. */
void arena_reset(arena_t *a);
void arena_free(arena_t *a);

#endif
