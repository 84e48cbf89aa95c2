/* Unit tests for src/arena.c. */
#include "../src/arena.c"
#include "tap.h"

int main(void)
{
    arena_t a;
    arena_init(&a, 256);
    char *p = arena_alloc(&a, 10);
    ok(((uintptr_t)p & 15) == 0, "allocations are 16-byte aligned");
    char *q = arena_alloc(&a, 10);
    ok(q != p && ((uintptr_t)q & 15) == 0, "second allocation distinct and aligned");
    char *big = arena_alloc(&a, 10000);
    memset(big, 'x', 10000);
    ok(big != NULL, "oversized allocation gets its own chunk");
    char *after = arena_alloc(&a, 16);
    memset(after, 'y', 16);
    ok(big[9999] == 'x', "oversized block intact after more allocations");
    is_str(arena_printf(&a, "%s-%d", "abc", 42), "abc-42", "arena_printf");
    is_str(arena_strndup(&a, "hello world", 5), "hello", "arena_strndup");
    char *z = arena_calloc(&a, 4, 8);
    ok(z[0] == 0 && z[31] == 0, "arena_calloc zeroes");
    for (int i = 0; i < 1000; i++)
        arena_alloc(&a, 100);
    ok(a.total >= 100000, "total counts bytes handed out");
    arena_reset(&a);
    is_int(a.total, 0, "reset clears total");
    ok(a.head->next == NULL, "reset keeps only the first chunk");
    is_int(a.head->size, 256, "the kept chunk is the original one");
    char *r = arena_alloc(&a, 8);
    ok(r != NULL, "allocates after reset");
    arena_free(&a);
    return tap_done();
}
