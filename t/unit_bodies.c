/*
 * unit_bodies.c — the pure parsers of JSON request bodies that the fuzz
 * targets drive (fuzz/share_body.c, fuzz/backpack_body.c, fuzz/base64.c):
 * proj_share_body_parse (src/projects.c), bp_body_parse, bp_b64_payload and
 * bp_b64_decode (src/assets.c), with the inputs the fuzzers found (kept in
 * fuzz/corpus/ too). Only public functions are tested, so the modules are
 * linked from libs4s.a rather than included.
 */
#include "arena.h"
#include "assets.h"
#include "projects.h"
#include "tap.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

static const char *share(arena_t *a, const char *json, size_t *n, int64_t **ids)
{
    cJSON *j = cJSON_Parse(json);
    if (!j)
        return "(invalid JSON)";
    const char *err = proj_share_body_parse(a, j, ids, n);
    cJSON_Delete(j);
    return err;
}

struct buf {
    char data[256];
    size_t len;
};

static int to_buf(void *ctx, const unsigned char *p, size_t n)
{
    struct buf *b = ctx;
    if (b->len + n > sizeof b->data)
        return 1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int b64(const char *text, struct buf *b)
{
    memset(b, 0, sizeof *b);
    const char *p = bp_b64_payload(text);
    return p ? bp_b64_decode(p, to_buf, b) : -1;
}

static int backpack(arena_t *a, const char *json, struct bp_body *out, const char **msg)
{
    cJSON *j = cJSON_Parse(json);
    int rc = bp_body_parse(a, j, out, msg);
    /* The strings in *out point into j: copy what the tests look at. */
    if (rc == BP_PARSE_OK) {
        out->type = arena_strdup(a, out->type);
        out->name = arena_strdup(a, out->name);
    }
    cJSON_Delete(j);
    return rc;
}

int main(void)
{
    arena_t a;
    arena_init(&a, 4096);
    size_t n = 0;
    int64_t *ids = NULL;
    const char *bad_list = "group_ids must be a list of integers";

    /* ---- share bodies */
    ok(share(&a, "{\"group_ids\":[3,1,2]}", &n, &ids) == NULL && n == 3 && ids[0] == 3 &&
           ids[2] == 2,
       "group ids parsed in order");
    ok(share(&a, "{\"group_ids\":[]}", &n, &ids) == NULL && n == 0, "an empty list unshares");
    is_str(share(&a, "{\"groups\":[1]}", &n, &ids), "Missing group_ids parameter", "missing key");
    is_str(share(&a, "[1,2]", &n, &ids), "Missing group_ids parameter", "not an object");
    is_str(share(&a, "{\"group_ids\":\"1\"}", &n, &ids), bad_list, "not a list");
    is_str(share(&a, "{\"group_ids\":[1.5]}", &n, &ids), bad_list, "a fraction");
    is_str(share(&a, "{\"group_ids\":[\"1\"]}", &n, &ids), bad_list, "a string");
    ok(share(&a, "{\"group_ids\":[9007199254740992,-9007199254740992]}", &n, &ids) == NULL &&
           ids[0] == 9007199254740992LL && ids[1] == -9007199254740992LL,
       "the largest exact integers accepted");
    /* Found by fuzz/share_body.c: these were cast to int64_t before the range
     * check, undefined behaviour (UBSan: "outside the range of representable values"). */
    is_str(share(&a, "{\"group_ids\":[1e300]}", &n, &ids), bad_list, "1e300 refused, no UB");
    is_str(share(&a, "{\"group_ids\":[-1e19]}", &n, &ids), bad_list, "-1e19 refused, no UB");
    is_str(share(&a, "{\"group_ids\":[9223372036854775808]}", &n, &ids), bad_list,
           "2^63 refused, no UB");

    /* ---- base64 */
    struct buf b;
    ok(b64("SGVsbG8=", &b) == BP_B64_OK && b.len == 5 && memcmp(b.data, "Hello", 5) == 0,
       "plain base64");
    ok(b64("data:image/png;base64,SGVs\r\nbG8=", &b) == BP_B64_OK && b.len == 5,
       "a data URL, wrapped");
    ok(b64("", &b) == BP_B64_OK && b.len == 0, "empty is zero bytes (no thumbnail)");
    is_int(b64("data:image/png,SGVsbG8=", &b), -1, "a data URL that is not base64");
    is_int(b64("SGVsbG8", &b), BP_B64_BAD, "a cut quantum");
    is_int(b64("SGVsbG8=SGVs", &b), BP_B64_BAD, "data after the padding");
    is_int(b64("SGVs-G8=", &b), BP_B64_BAD, "a character outside the alphabet");
    is_int(b64("QQ===", &b), BP_B64_BAD, "three padding characters");

    /* ---- backpack items */
    struct bp_body body;
    const char *msg = NULL;
    is_int(backpack(&a,
                    "{\"type\":\"costume\",\"mime\":\"IMAGE/SVG+XML\",\"name\":\"Katze\","
                    "\"body\":\"PHN2Zy8+\",\"thumbnail\":\"\"}",
                    &body, &msg),
           BP_PARSE_OK, "a costume item");
    is_str(body.mime, "image/svg+xml", "mime lowercased");
    is_str(body.format, "svg", "format from the mime type");
    is_int(backpack(&a,
                    "{\"type\":\"sound\",\"mime\":\"audio/x-wav\",\"name\":\"m\",\"body\":\"\","
                    "\"thumbnail\":\"\"}",
                    &body, &msg),
           BP_PARSE_OK, "a sound item");
    is_str(body.mime, "audio/wav", "audio/x-wav stored as audio/wav");
    is_int(backpack(&a,
                    "{\"type\":\"costume\",\"mime\":\"image/png\",\"name\":\"x\",\"body\":\"\"}",
                    &body, &msg),
           BP_PARSE_BAD, "missing thumbnail");
    is_str(msg, "Missing required field: thumbnail", "says which field");
    is_int(backpack(&a,
                    "{\"type\":\"a b\",\"mime\":\"image/png\",\"name\":\"x\",\"body\":\"\","
                    "\"thumbnail\":\"\"}",
                    &body, &msg),
           BP_PARSE_BAD, "a type with a blank");
    is_int(backpack(&a,
                    "{\"type\":\"costume\",\"mime\":\"image/x;y\",\"name\":\"x\",\"body\":\"\","
                    "\"thumbnail\":\"\"}",
                    &body, &msg),
           BP_PARSE_BAD, "a mime type with parameters");
    is_int(backpack(&a,
                    "{\"type\":\"costume\",\"mime\":\"image/+xml\",\"name\":\"x\",\"body\":\"\","
                    "\"thumbnail\":\"\"}",
                    &body, &msg),
           BP_PARSE_UNSUPPORTED, "a mime type no format stands for is 415");
    is_int(backpack(&a, "[]", &body, &msg), BP_PARSE_BAD, "not an object");

    arena_free(&a);
    return tap_done();
}
