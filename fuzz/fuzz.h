/*
 * fuzz.h — what the libFuzzer drivers in fuzz/ share: a cursor that cuts
 * the fuzzer's bytes into pieces (a selector byte, a NUL-terminated string,
 * the rest), and FUZZ_ASSERT, which aborts with a message so libFuzzer
 * records the input as a crash when a property of a parser fails.
 *
 * Build and run them with fuzz/run.sh (clang, -fsanitize=fuzzer,address,undefined).
 */
#ifndef S4S_FUZZ_H
#define S4S_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond, what)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property failed: %s (%s:%d)\n", what, __FILE__, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct fuzz_in {
    const uint8_t *p;
    size_t n;
};

/* One byte (0 when the input is used up). */
static inline uint8_t fuzz_byte(struct fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* The bytes up to the next separator (or the end) as a malloc'd C string
 * with NULs dropped: what a C string from a web server can be. */
static inline char *fuzz_str(struct fuzz_in *in, uint8_t sep)
{
    const uint8_t *end = memchr(in->p, sep, in->n);
    size_t len = end ? (size_t)(end - in->p) : in->n;
    char *s = malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (in->p[i] != '\0')
            s[o++] = (char)in->p[i];
    s[o] = '\0';
    in->p += len;
    in->n -= len;
    if (end) {
        in->p++;
        in->n--;
    }
    return s;
}

/* The rest as a malloc'd NUL-terminated copy (NULs inside kept; *len says how long). */
static inline char *fuzz_rest(struct fuzz_in *in, size_t *len)
{
    char *s = malloc(in->n + 1);
    memcpy(s, in->p, in->n);
    s[in->n] = '\0';
    *len = in->n;
    in->p += in->n;
    in->n = 0;
    return s;
}

/* Is s valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF)? */
static inline bool fuzz_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return false;
        }
        p++;
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xc0) != 0x80)
                return false;
            c = (c << 6) | (*p & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
