/*
 * query.c — fuzz target for the query-string side of src/httpparse.c and the
 * title cleaner that consumes it: parse_query, url_decode (form and path
 * modes), url_encode, proj_title_clean (src/projects.c). Properties: decoding
 * never grows the text and never yields a NUL; url_decode(url_encode(s)) == s;
 * a cleaned title is valid UTF-8 without control characters, at most
 * PROJ_TITLE_MAX characters.
 *
 * Input: the raw query string ("title=%C3%9Cbung+1&x=2").
 */
#include "arena.h"
#include "httpparse.h"
#include "projects.h"
#include "fuzz.h"

static void check_title(arena_t *a, const char *raw)
{
    const char *t = proj_title_clean(a, raw);
    FUZZ_ASSERT(t != NULL, "title");
    FUZZ_ASSERT(fuzz_utf8_valid(t), "cleaned title is valid UTF-8");
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
        FUZZ_ASSERT(*p >= 0x20 && *p != 0x7f, "control character in a cleaned title");
        chars += (*p & 0xc0) != 0x80;
    }
    FUZZ_ASSERT(chars <= PROJ_TITLE_MAX, "title too long");
}

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
    size_t len;
    char *raw = fuzz_rest(&in, &len);

    for (int plus = 0; plus < 2; plus++) {
        char *d = url_decode(&a, raw, len, plus);
        FUZZ_ASSERT(strlen(d) <= len, "decoding grew the text");
        char *e = url_encode(&a, d);
        for (const char *p = e; *p; p++)
            FUZZ_ASSERT(
                strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~%", *p),
                "url_encode left a reserved character");
        FUZZ_ASSERT(strcmp(url_decode(&a, e, strlen(e), false), d) == 0,
                    "url_decode(url_encode(s)) != s");
    }

    /* parse_query sees a C string: NULs cut it, as the FastCGI environment does. */
    struct kvlist q;
    parse_query(&a, raw, &q);
    FUZZ_ASSERT(q.n <= HTTP_MAX_QUERY_PARAMS, "too many parameters kept");
    for (size_t i = 0; i < q.n; i++) {
        FUZZ_ASSERT(q.items[i].key && q.items[i].value, "NULL key or value");
        FUZZ_ASSERT(kv_get(&q, q.items[i].key) != NULL, "a parsed key is found");
        check_title(&a, q.items[i].value);
    }
    check_title(&a, raw);
    arena_free(&a);
    free(raw);
    return 0;
}
