/*
 * cookies.c — fuzz target for parse_cookies (src/httpparse.c), the Cookie
 * header the OAuth state check reads. Properties: at most HTTP_MAX_COOKIES
 * kept; names are non-empty and hold no ';' and no blank at either end;
 * values hold no ';'.
 *
 * Input: the Cookie header's value.
 */
#include "arena.h"
#include "httpparse.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    arena_t a;
    arena_init(&a, 4096);
    struct fuzz_in in = {data, size};
    char *h = fuzz_str(&in, '\0');
    struct kvlist c;
    parse_cookies(&a, h, &c);
    FUZZ_ASSERT(c.n <= HTTP_MAX_COOKIES, "too many cookies kept");
    for (size_t i = 0; i < c.n; i++) {
        const char *k = c.items[i].key, *v = c.items[i].value;
        size_t kl = strlen(k);
        FUZZ_ASSERT(kl > 0, "empty cookie name");
        FUZZ_ASSERT(!strchr(k, ';') && !strchr(v, ';'), "';' inside a cookie");
        FUZZ_ASSERT(k[0] != ' ' && k[0] != '\t' && k[kl - 1] != ' ' && k[kl - 1] != '\t',
                    "cookie name not trimmed");
        FUZZ_ASSERT(kv_get(&c, k) != NULL, "a parsed cookie is found");
    }
    parse_cookies(&a, NULL, &c);
    FUZZ_ASSERT(c.n == 0, "no header, no cookies");
    arena_free(&a);
    free(h);
    return 0;
}
