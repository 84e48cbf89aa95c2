/*
 * httpparse.h — the small text parsers of the request line's pieces: URL
 * decoding, query strings (application/x-www-form-urlencoded), Cookie
 * headers, path checks. Pure functions on arena memory; no I/O.
 */
#ifndef S4S_HTTPPARSE_H
#define S4S_HTTPPARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

#define HTTP_MAX_QUERY_PARAMS 128
#define HTTP_MAX_COOKIES 64

struct kv {
    const char *key;
    const char *value;
};

struct kvlist {
    struct kv *items;
    size_t n;
};

/* Decode %XX escapes (and '+' as space when plus_is_space). Malformed escapes
 * are kept literally, as browsers and Flask do. NUL bytes (%00) are dropped:
 * no C string downstream may be cut short by a client. */
char *url_decode(arena_t *a, const char *s, size_t len, bool plus_is_space);
/* Percent-encode everything but unreserved characters (RFC 3986). */
char *url_encode(arena_t *a, const char *s);

/* Parse "a=1&b=2". Keys and values decoded. Later duplicates are kept in
 * order; lookups return the first. Beyond HTTP_MAX_QUERY_PARAMS, ignored. */
void parse_query(arena_t *a, const char *qs, struct kvlist *out);
/* Parse a Cookie header "a=1; b=2" (values not URL-decoded, quotes stripped). */
void parse_cookies(arena_t *a, const char *header, struct kvlist *out);
const char *kv_get(const struct kvlist *l, const char *key);

/* True when the (decoded) path has no "." or ".." segment, no empty segment
 * other than a trailing slash, and no control bytes. */
bool path_is_clean(const char *path);

/* "Status: 404 Not Found": the reason phrase for a status code. */
const char *http_reason(int status);

#endif
