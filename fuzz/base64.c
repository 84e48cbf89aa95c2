/*
 * base64.c — fuzz target for the backpack's base64 decoding (bp_b64_payload
 * and bp_b64_decode in src/assets.c), differential against a small strict
 * decoder written here, and round trips.
 *
 * Input: <mode byte> <rest>
 *   mode even: rest is base64 text (or a data: URL) as a client sends it;
 *              the server must accept exactly what the reference accepts
 *              (blanks anywhere, length a multiple of 4, at most two '='
 *              only at the end) and decode to the same bytes.
 *   mode odd:  rest is binary; it is encoded, wrapped at a width and
 *              prefixed as (mode >> 1) says, and must decode to itself.
 */
#include "assets.h"
#include "fuzz.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct buf {
    unsigned char *p;
    size_t len, cap;
};

static int buf_sink(void *ctx, const unsigned char *data, size_t len)
{
    struct buf *b = ctx;
    if (len == 0)
        return 0;
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 16;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static int val(char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

/* The reference: false when text is not strict base64. */
static bool ref_decode(const char *text, struct buf *out)
{
    char *s = malloc(strlen(text) + 1);
    size_t n = 0;
    for (const char *p = text; *p; p++)
        if (!strchr(" \t\r\n", *p))
            s[n++] = *p;
    bool ok = n % 4 == 0;
    size_t pad = 0;
    while (ok && pad < n && s[n - 1 - pad] == '=')
        pad++;
    ok = ok && pad <= 2;
    for (size_t i = 0; ok && i < n - pad; i++)
        ok = val(s[i]) >= 0;
    for (size_t i = 0; ok && i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = s[i + k] == '=' ? 0 : val(s[i + k]);
        unsigned char o[3] = {(unsigned char)(v[0] << 2 | v[1] >> 4),
                              (unsigned char)((v[1] & 15) << 4 | v[2] >> 2),
                              (unsigned char)((v[2] & 3) << 6 | v[3])};
        size_t keep = i + 4 == n ? 3 - pad : 3;
        buf_sink(out, o, keep);
    }
    free(s);
    return ok;
}

static char *encode(const unsigned char *p, size_t n, unsigned width, bool data_url)
{
    size_t cap = 32 + (n + 2) / 3 * 4 * 3;
    char *s = malloc(cap), *o = s;
    if (data_url)
        o += sprintf(o, "data:image/png;base64,");
    unsigned col = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63],
                     i + 1 < n ? alphabet[(v >> 6) & 63] : '=', i + 2 < n ? alphabet[v & 63] : '='};
        for (int k = 0; k < 4; k++) {
            *o++ = q[k];
            if (width && ++col % width == 0)
                *o++ = '\n';
        }
    }
    *o = '\0';
    return s;
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
    uint8_t mode = fuzz_byte(&in);
    struct buf got = {0}, want = {0};
    if (mode % 2 == 0) {
        char *text = fuzz_str(&in, '\0');
        const char *p = bp_b64_payload(text);
        if (p) {
            int rc = bp_b64_decode(p, buf_sink, &got);
            bool ref = ref_decode(p, &want);
            FUZZ_ASSERT((rc == BP_B64_OK) == ref,
                        "accepts what the reference does not, or not what it does");
            if (ref)
                FUZZ_ASSERT(got.len == want.len &&
                                (got.len == 0 || memcmp(got.p, want.p, got.len) == 0),
                            "decodes differently from the reference");
        }
        free(text);
    } else {
        size_t n;
        char *bin = fuzz_rest(&in, &n);
        char *text = encode((unsigned char *)bin, n, (mode >> 2) * 4, (mode & 2) != 0);
        const char *p = bp_b64_payload(text);
        FUZZ_ASSERT(p != NULL, "own data URL refused");
        FUZZ_ASSERT(bp_b64_decode(p, buf_sink, &got) == BP_B64_OK, "own encoding refused");
        FUZZ_ASSERT(got.len == n && (n == 0 || memcmp(got.p, bin, n) == 0), "round trip");
        free(text);
        free(bin);
    }
    free(got.p);
    free(want.p);
    return 0;
}
