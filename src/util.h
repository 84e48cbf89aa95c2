/*
 * util.h — small helpers every module uses: allocation that aborts on
 * out-of-memory (for internal, bounded allocations only; anything sized by a
 * client is checked by its caller), hex encoding, time formatting.
 */
#ifndef S4S_UTIL_H
#define S4S_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define UNUSED(x) ((void)(x))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const unsigned char *in, size_t len, char *out);
/* True when s is exactly n lowercase-or-uppercase hex digits. */
bool is_hex(const char *s, size_t n);

/* Milliseconds on the monotonic clock. */
int64_t now_mono_ms(void);
/* ISO 8601 UTC with microseconds and +00:00, as API.md wants; out >= 40 bytes. */
void iso8601_now(char *out, size_t outlen);

/* Timestamps as the upstream database stores them: "YYYY-MM-DD HH:MM:SS.ffffff", UTC.
 * out >= 32 bytes. */
#define DB_TS_LEN 32
void db_ts_from_epoch_us(int64_t epoch_us, char *out);
void db_ts_now(char *out);
int64_t epoch_us_now(void);
/* Parse a database timestamp (fraction optional, a 'T' separator accepted);
 * false when it isn't one. */
bool db_ts_parse(const char *s, int64_t *epoch_us);
/* "YYYY-MM-DDTHH:MM:SS.ffffff+00:00" (API.md) from a database timestamp; out >= 40.
 * An unparseable input gives "". */
void db_ts_to_iso(const char *db_ts, char *out, size_t outlen);

/* base64url without padding (RFC 4648 §5); out >= 4*ceil(len/3)+1. */
void b64url_encode(const unsigned char *in, size_t len, char *out);
/* Cryptographically random bytes (OpenSSL); aborts if the generator fails. */
void random_bytes(unsigned char *out, size_t len);

/* Full write/read loops that retry on EINTR and short transfers. -1 on error. */
int write_all(int fd, const void *buf, size_t len);

/* mkdir -p with the given mode; 0 or -1 with errno set. */
int mkdir_p(const char *path, mode_t mode);
/* fsync a directory by path; 0 or -1 with errno set. */
int fsync_dir(const char *path);

/* Parse an integer in [min,max]; false on junk, empty or overflow. */
bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
