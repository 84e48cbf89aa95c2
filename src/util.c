/*
 * util.c — allocation that aborts on out-of-memory, hex, clocks, small
 * file-system helpers shared by every module.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

static void oom(size_t n)
{
    /* Writing with stdio could itself allocate; keep it to write(2). */
    char msg[96];
    int len = snprintf(msg, sizeof msg, "s4s: out of memory allocating %zu bytes\n", n);
    if (len > 0)
        (void)!write(2, msg, (size_t)len);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(strlen(fmt));
    return s;
}

void hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

bool is_hex(const char *s, size_t n)
{
    if (!s)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return s[n] == '\0';
}

int64_t now_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void iso8601_now(char *out, size_t outlen)
{
    char ts[DB_TS_LEN + 8];
    db_ts_now(ts); /* 'YYYY-MM-DD HH:MM:SS.ffffff' */
    ts[10] = 'T';
    memcpy(ts + strlen(ts), "+00:00", 7);
    snprintf(out, outlen, "%s", ts);
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
    char *copy = xstrdup(path);
    int rc = -1;
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, mode) < 0 && errno != EEXIST)
                goto out;
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0)
        goto out;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        goto out;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

bool parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s)
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || end == s || v < min || v > max)
        return false;
    /* strtoll accepts leading white space and '+'; ids on the wire must not. */
    if (*s == ' ' || *s == '\t' || *s == '+')
        return false;
    *out = v;
    return true;
}

int64_t epoch_us_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Timestamps are converted on every listed project (created_at, updated_at),
 * so the usual shape 'YYYY-MM-DD HH:MM:SS.ffffff' is read and written by hand
 * (civil-date arithmetic after H. Hinnant); anything else goes through
 * strptime/timegm and gmtime/strftime as before, with the same results.
 */

/* Days since 1970-01-01 of a proleptic Gregorian date; a day past the month's
 * end counts on into the next month, as timegm() normalises it. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

void db_ts_from_epoch_us(int64_t epoch_us, char *out)
{
    time_t secs = (time_t)(epoch_us / 1000000);
    long frac = (long)(epoch_us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    int64_t days = secs >= 0 ? secs / 86400 : -((-(int64_t)secs + 86399) / 86400);
    int64_t sod = secs - days * 86400, year;
    unsigned month, day;
    civil_from_days(days, &year, &month, &day);
    if (year >= 1000 && year <= 9999) { /* strftime's %Y is four digits here */
        char *p = put_digits(out, (unsigned)year, 4);
        *p++ = '-';
        p = put_digits(p, month, 2);
        *p++ = '-';
        p = put_digits(p, day, 2);
        *p++ = ' ';
        p = put_digits(p, (unsigned)(sod / 3600), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned)(sod / 60 % 60), 2);
        *p++ = ':';
        p = put_digits(p, (unsigned)(sod % 60), 2);
        *p++ = '.';
        p = put_digits(p, (unsigned)frac, 6);
        *p = '\0';
        return;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, DB_TS_LEN, "%.19s.%06ld", base, frac);
}

void db_ts_now(char *out)
{
    db_ts_from_epoch_us(epoch_us_now(), out);
}

/* n digits at s, each 0-9: their value, else -1. */
static int take_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The fraction and zone after the seconds: true when the rest is well formed. */
static bool ts_tail(const char *p, long *frac_out)
{
    long frac = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 6) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 6)
            frac *= 10;
    }
    /* Accept a trailing UTC designator; other zones are not in this data. */
    if (*p == 'Z')
        p++;
    else if (strncmp(p, "+00:00", 6) == 0)
        p += 6;
    *frac_out = frac;
    return *p == '\0';
}

/* 'YYYY-MM-DD HH:MM:SS' (or T) with every field in strptime's range: 1 parsed,
 * 0 not this shape (the caller falls back to strptime), -1 malformed tail. */
static int ts_parse_fast(const char *s, int64_t *epoch_us)
{
    /* Left to right, each test only after the ones before it passed: a
     * digit test fails at the NUL, so nothing past the string is read. */
    int y, mo, d, h, mi, sec;
    if ((y = take_digits(s, 4)) < 0 || s[4] != '-' || (mo = take_digits(s + 5, 2)) < 1 || mo > 12 ||
        s[7] != '-' || (d = take_digits(s + 8, 2)) < 1 || d > 31 || (s[10] != ' ' && s[10] != 'T'))
        return 0;
    if ((h = take_digits(s + 11, 2)) < 0 || h > 23 || s[13] != ':' ||
        (mi = take_digits(s + 14, 2)) < 0 || mi > 59 || s[16] != ':' ||
        (sec = take_digits(s + 17, 2)) < 0 || sec > 61 || (s[19] >= '0' && s[19] <= '9'))
        return 0;
    long frac;
    if (!ts_tail(s + 19, &frac))
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *epoch_us = ((days * 86400) + h * 3600 + mi * 60 + sec) * 1000000 + frac;
    return 1;
}

bool db_ts_parse(const char *s, int64_t *epoch_us)
{
    if (!s)
        return false;
    int fast = ts_parse_fast(s, epoch_us);
    if (fast != 0)
        return fast > 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p || (*p != ' ' && *p != 'T'))
        return false;
    p = strptime(p + 1, "%H:%M:%S", &tm);
    if (!p)
        return false;
    long frac;
    if (!ts_tail(p, &frac))
        return false;
    time_t secs = timegm(&tm);
    if (secs == (time_t)-1)
        return false;
    *epoch_us = (int64_t)secs * 1000000 + frac;
    return true;
}

void db_ts_to_iso(const char *db_ts, char *out, size_t outlen)
{
    int64_t us;
    if (!db_ts_parse(db_ts, &us)) {
        snprintf(out, outlen, "%s", "");
        return;
    }
    char ts[DB_TS_LEN + 8];
    db_ts_from_epoch_us(us, ts);
    ts[10] = 'T';
    memcpy(ts + strlen(ts), "+00:00", 7);
    snprintf(out, outlen, "%s", ts);
}

void b64url_encode(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
}

void random_bytes(unsigned char *out, size_t len)
{
    if (RAND_bytes(out, (int)len) != 1) {
        static const char msg[] = "s4s: the random number generator failed\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
}
