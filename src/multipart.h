/*
 * multipart.h — a streaming multipart/form-data parser (RFC 7578). Bytes are
 * fed in pieces of any size; part headers are parsed with a hard bound and
 * part bodies are handed to callbacks as they arrive, never buffered whole,
 * so memory stays bounded for any upload size.
 */
#ifndef S4S_MULTIPART_H
#define S4S_MULTIPART_H

#include <stddef.h>

enum mp_status {
    MP_OK = 0,
    MP_ERR_BOUNDARY,    /* no or bad boundary in the Content-Type */
    MP_ERR_SYNTAX,      /* bytes that are not multipart */
    MP_ERR_HEADER_SIZE, /* a part's headers exceed MP_MAX_HEADER_BYTES */
    MP_ERR_TOO_MANY,    /* more than MP_MAX_PARTS parts */
    MP_ERR_TRUNCATED,   /* the body ended before the final boundary */
    MP_ERR_CALLBACK,    /* a callback returned non-zero: stop, caller knows why */
};

#define MP_MAX_HEADER_BYTES 8192
#define MP_MAX_PARTS 64
#define MP_MAX_BOUNDARY 70 /* RFC 2046 */

/* The strings point into the parser and are valid only during part_begin. */
struct mp_part_info {
    const char *name;         /* form field name ("" if absent) */
    const char *filename;     /* NULL when the part has no filename parameter */
    const char *content_type; /* NULL when absent */
};

struct mp_callbacks {
    /* Each returns 0 to go on, non-zero to abort parsing with MP_ERR_CALLBACK. */
    int (*part_begin)(void *ctx, const struct mp_part_info *info);
    int (*part_data)(void *ctx, const char *data, size_t len);
    int (*part_end)(void *ctx);
};

struct mp_parser;

/*
 * Extract the boundary from a Content-Type header value
 * (multipart/form-data; boundary=... possibly quoted). Copies into out
 * (at least MP_MAX_BOUNDARY+1 bytes). MP_OK or MP_ERR_BOUNDARY.
 */
int mp_boundary_from_content_type(const char *content_type, char *out, size_t outlen);

/* The parser owns a fixed-size state (malloc'd once); free with mp_free. */
struct mp_parser *mp_new(const char *boundary, const struct mp_callbacks *cb, void *ctx);
void mp_free(struct mp_parser *p);
/* Feed the next piece of the body. Returns MP_OK or an error (sticky). */
int mp_feed(struct mp_parser *p, const char *data, size_t len);
/* End of body: MP_OK only if the closing boundary was seen. */
int mp_finish(struct mp_parser *p);
const char *mp_strerror(int status);

#endif
