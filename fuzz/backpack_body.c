/*
 * backpack_body.c — fuzz target for the body of POST /api/backpack: cJSON's
 * parser on client bytes, bp_body_parse (src/assets.c: required fields,
 * type, name length, MIME normalisation, the asset format the MIME type
 * stands for), then the base64 payloads through bp_b64_payload and
 * bp_b64_decode. Properties: an accepted item has a type of
 * [A-Za-z0-9_-]{1,20}, at most 255 characters of name, a lowercase
 * type/subtype MIME of at most 50 bytes and a non-empty format; decoded
 * output is never larger than 3/4 of the base64 text.
 *
 * Input: the request body.
 */
#include "arena.h"
#include "assets.h"
#include "fuzz.h"

#include <cjson/cJSON.h>

static int count_sink(void *ctx, const unsigned char *p, size_t n)
{
    (void)p;
    *(size_t *)ctx += n;
    return 0;
}

static void decode(const char *text)
{
    const char *p = bp_b64_payload(text);
    if (!p)
        return;
    size_t out = 0;
    if (bp_b64_decode(p, count_sink, &out) == BP_B64_OK)
        FUZZ_ASSERT(out <= strlen(p) / 4 * 3, "decoded more than the text holds");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j)
        return 0;
    arena_t a;
    arena_init(&a, 4096);
    struct bp_body b;
    const char *msg = NULL;
    int rc = bp_body_parse(&a, j, &b, &msg);
    if (rc == BP_PARSE_OK) {
        size_t tl = strlen(b.type);
        FUZZ_ASSERT(tl >= 1 && tl <= 20 &&
                        strspn(b.type, "abcdefghijklmnopqrstuvwxyz"
                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_-") == tl,
                    "type");
        size_t chars = 0;
        for (const unsigned char *p = (const unsigned char *)b.name; *p; p++)
            chars += (*p & 0xc0) != 0x80;
        FUZZ_ASSERT(chars <= 255, "name too long");
        size_t ml = strlen(b.mime);
        const char *slash = strchr(b.mime, '/');
        FUZZ_ASSERT(ml <= 50 && slash && slash != b.mime && slash[1] && !strchr(slash + 1, '/'),
                    "mime is type/subtype");
        for (const char *p = b.mime; *p; p++)
            FUZZ_ASSERT(!(*p >= 'A' && *p <= 'Z'), "mime lowercased");
        FUZZ_ASSERT(strcmp(b.mime, "audio/x-wav") != 0, "audio/x-wav normalised");
        FUZZ_ASSERT(b.format[0] != '\0', "format");
        decode(b.body_b64);
        decode(b.thumbnail_b64);
    } else {
        FUZZ_ASSERT(rc == BP_PARSE_BAD || rc == BP_PARSE_UNSUPPORTED, "status");
        FUZZ_ASSERT(msg && *msg, "a failure says why");
    }
    cJSON_Delete(j);
    arena_free(&a);
    return 0;
}
