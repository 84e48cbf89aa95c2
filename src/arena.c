/*
 * arena.c — bump allocator in chunks. Requests larger than a chunk get a
 * chunk of their own. The first chunk survives resets.
 */
#include "arena.h"
#include "util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = xmalloc(sizeof *c + size);
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void arena_init(arena_t *a, size_t chunk_size)
{
    a->chunk_size = chunk_size ? chunk_size : 16384;
    a->head = chunk_new(a->chunk_size);
    a->total = 0;
}

void *arena_alloc(arena_t *a, size_t n)
{
    size_t need = ALIGN16(n ? n : 1);
    if (need < n) /* overflow */
        need = SIZE_MAX;
    struct arena_chunk *c = a->head;
    if (c->size - c->used < need) {
        size_t size = need > a->chunk_size ? need : a->chunk_size;
        struct arena_chunk *fresh = chunk_new(size);
        if (need > a->chunk_size && c->next) {
            /* Keep the current chunk on top: an oversized block would waste its tail. */
            fresh->next = c->next;
            c->next = fresh;
            fresh->used = need;
            a->total += need;
            return fresh->data;
        }
        fresh->next = c;
        a->head = c = fresh;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    return p;
}

void *arena_calloc(arena_t *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return arena_alloc(a, SIZE_MAX); /* aborts: callers bound client sizes first */
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(arena_t *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return arena_strdup(a, "");
    }
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void arena_reset(arena_t *a)
{
    struct arena_chunk *c = a->head;
    /* The oldest chunk is the one arena_init made; keep it. */
    while (c->next) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    c->used = 0;
    a->head = c;
    a->total = 0;
}

void arena_free(arena_t *a)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}
