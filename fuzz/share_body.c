/*
 * share_body.c — fuzz target for the body of POST /api/projects/<id>/share:
 * cJSON's parser on client bytes, then proj_share_body_parse (src/projects.c).
 * Properties: success only for an object whose group_ids is an array of
 * integral numbers, each id exactly the number sent; every failure is one
 * of the two 400 messages API.md's handler answers with.
 *
 * Input: the request body.
 */
#include "arena.h"
#include "projects.h"
#include "fuzz.h"

#include <math.h>

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
    int64_t *ids = NULL;
    size_t n = 0;
    const char *err = proj_share_body_parse(&a, j, &ids, &n);
    if (!err) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "group_ids");
        FUZZ_ASSERT(cJSON_IsObject(j) && cJSON_IsArray(list), "accepted a body without a list");
        FUZZ_ASSERT((size_t)cJSON_GetArraySize(list) == n, "id count");
        size_t i = 0;
        const cJSON *g;
        cJSON_ArrayForEach(g, list)
        {
            FUZZ_ASSERT(cJSON_IsNumber(g), "accepted a non-number");
            FUZZ_ASSERT(floor(g->valuedouble) == g->valuedouble, "accepted a fraction");
            FUZZ_ASSERT((double)ids[i] == g->valuedouble, "id differs from the number sent");
            i++;
        }
    } else {
        FUZZ_ASSERT(strcmp(err, "Missing group_ids parameter") == 0 ||
                        strcmp(err, "group_ids must be a list of integers") == 0,
                    "unexpected message");
    }
    cJSON_Delete(j);
    arena_free(&a);
    return 0;
}
