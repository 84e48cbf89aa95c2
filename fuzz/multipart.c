/*
 * multipart.c — fuzz target for the streaming multipart parser (src/multipart.c):
 * mp_boundary_from_content_type on a Content-Type header, then the body fed
 * whole and again in pieces whose sizes the first byte seeds. Besides
 * memory errors (ASan) it checks that callbacks nest (begin, data…, end)
 * and that the outcome — status and every part's name, filename, type and
 * bytes — does not depend on how the body was split.
 *
 * Input: <split seed byte> <Content-Type> '\n' <body>
 */
#include "multipart.h"
#include "fuzz.h"

struct trace {
    unsigned char *buf; /* the record of a whole parse */
    size_t len, cap;
    unsigned char *part; /* the current part's data */
    size_t part_len, part_cap;
    bool in_part;
};

static void grow_add(unsigned char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n > *cap) {
        size_t ncap = *cap ? *cap : 256;
        while (ncap < *len + n)
            ncap *= 2;
        *buf = realloc(*buf, ncap);
        *cap = ncap;
    }
    if (n)
        memcpy(*buf + *len, p, n);
    *len += n;
}

static void record(struct trace *t, const void *p, size_t n)
{
    grow_add(&t->buf, &t->len, &t->cap, p, n);
}

static void record_str(struct trace *t, const char *s)
{
    if (!s) {
        record(t, "\xff", 1);
        return;
    }
    size_t n = strlen(s);
    record(t, &n, sizeof n);
    record(t, s, n);
}

static int on_begin(void *ctx, const struct mp_part_info *info)
{
    struct trace *t = ctx;
    FUZZ_ASSERT(!t->in_part, "part_begin inside a part");
    FUZZ_ASSERT(info->name != NULL, "part name is NULL");
    t->in_part = true;
    t->part_len = 0;
    record(t, "B", 1);
    record_str(t, info->name);
    record_str(t, info->filename);
    record_str(t, info->content_type);
    return 0;
}

static int on_data(void *ctx, const char *data, size_t len)
{
    struct trace *t = ctx;
    FUZZ_ASSERT(t->in_part, "part_data outside a part");
    grow_add(&t->part, &t->part_len, &t->part_cap, data, len);
    return 0;
}

static int on_end(void *ctx)
{
    struct trace *t = ctx;
    FUZZ_ASSERT(t->in_part, "part_end outside a part");
    t->in_part = false;
    record(t, "E", 1);
    record(t, &t->part_len, sizeof t->part_len);
    record(t, t->part, t->part_len);
    return 0;
}

/* Parse body in pieces: whole when seed is 0, else sizes from a small PRNG. */
static int parse(const char *boundary, const char *body, size_t len, unsigned seed, struct trace *t)
{
    static const struct mp_callbacks cb = {on_begin, on_data, on_end};
    struct mp_parser *p = mp_new(boundary, &cb, t);
    if (!p)
        return -1;
    int rc = MP_OK;
    uint32_t x = seed * 2654435761u + 1;
    for (size_t off = 0; off < len && rc == MP_OK;) {
        size_t n = len - off;
        if (seed) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t piece = 1 + x % (seed < 8 ? 4 : 97);
            if (piece < n)
                n = piece;
        }
        rc = mp_feed(p, body + off, n);
        off += n;
    }
    if (rc == MP_OK)
        rc = mp_finish(p);
    else
        FUZZ_ASSERT(mp_feed(p, "x", 1) == rc, "errors are sticky");
    mp_free(p);
    return rc;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    unsigned seed = fuzz_byte(&in);
    char *ct = fuzz_str(&in, '\n');
    size_t len;
    char *body = fuzz_rest(&in, &len);
    char boundary[MP_MAX_BOUNDARY + 1];

    if (mp_boundary_from_content_type(ct, boundary, sizeof boundary) == MP_OK) {
        size_t blen = strlen(boundary);
        FUZZ_ASSERT(blen > 0 && blen <= MP_MAX_BOUNDARY, "boundary length");
        struct trace whole = {0}, split = {0};
        int rc1 = parse(boundary, body, len, 0, &whole);
        int rc2 = parse(boundary, body, len, seed | 1, &split);
        FUZZ_ASSERT(rc1 == rc2, "status depends on how the body is split");
        if (rc1 == MP_OK) {
            FUZZ_ASSERT(!whole.in_part, "finished inside a part");
            FUZZ_ASSERT(whole.len == split.len &&
                            (whole.len == 0 || memcmp(whole.buf, split.buf, whole.len) == 0),
                        "parts depend on how the body is split");
        }
        FUZZ_ASSERT(mp_strerror(rc1) != NULL, "mp_strerror");
        free(whole.buf);
        free(whole.part);
        free(split.buf);
        free(split.part);
    }
    free(ct);
    free(body);
    return 0;
}
