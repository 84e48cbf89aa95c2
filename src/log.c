/*
 * log.c — the log sink. One write(2) per line so lines from many workers
 * sharing one file (O_APPEND) never interleave.
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_LVL_INFO;
static const char *log_role = "s4s";
static char *log_path;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_set_level(int level)
{
    log_level = level;
}

void log_set_role(const char *role)
{
    log_role = role;
}

int log_open_file(const char *path)
{
    if (!path || !*path) {
        free(log_path);
        log_path = NULL;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    if (dup2(fd, 2) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    if (log_path != path) {
        free(log_path);
        log_path = xstrdup(path);
    }
    return 0;
}

int log_reopen(void)
{
    if (!log_path)
        return 0;
    return log_open_file(log_path);
}

/* "2026-11-28T09:15:02.123Z" into out (>= 32 bytes). */
static void log_stamp(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char base[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, len, "%.19s.%03dZ", base, (int)(ts.tv_nsec / 1000000) % 1000);
}

__attribute__((format(printf, 3, 0))) static void emit(int level, int errnum, const char *fmt,
                                                       va_list ap)
{
    if (level > log_level)
        return;
    char msg[2048];
    char stamp[32];
    log_stamp(stamp, sizeof stamp);
    int n = snprintf(msg, sizeof msg, "%s %s[%d] %s: ", stamp, log_role, (int)getpid(),
                     level_names[level]);
    if (n < 0 || (size_t)n >= sizeof msg)
        return;
    int m = vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len >= sizeof msg - 1)
        len = sizeof msg - 2; /* truncated: still end the line */
    if (errnum) {
        int k = snprintf(msg + len, sizeof msg - len, ": %s", strerror(errnum));
        if (k > 0)
            len += (size_t)k;
        if (len >= sizeof msg - 1)
            len = sizeof msg - 2;
    }
    msg[len++] = '\n';
    (void)write_all(2, msg, len);
}

#define LOG_FN(name, level, with_errno)                                                            \
    void name(const char *fmt, ...)                                                                \
    {                                                                                              \
        int saved = errno;                                                                         \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        emit(level, with_errno ? saved : 0, fmt, ap);                                              \
        va_end(ap);                                                                                \
        errno = saved;                                                                             \
    }

LOG_FN(log_err, LOG_LVL_ERROR, 1)
LOG_FN(log_errx, LOG_LVL_ERROR, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

void fatal(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_LVL_ERROR, saved, fmt, ap);
    va_end(ap);
    exit(1);
}

void fatalx(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_LVL_ERROR, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void log_access(const char *method, const char *path, int status, unsigned long long bytes,
                long long duration_us, const char *user_id)
{
    char line[1024];
    char stamp[32];
    log_stamp(stamp, sizeof stamp);
    /* %.300s: the path is client input; a line stays one bounded line. */
    int n = snprintf(line, sizeof line, "%s access[%d] %s %.300s %d %llu %lld.%03lldms %s\n", stamp,
                     (int)getpid(), method ? method : "-", path ? path : "-", status, bytes,
                     duration_us / 1000, duration_us % 1000, user_id && *user_id ? user_id : "-");
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    /* Decoded paths may hold control bytes; a log line must stay one line. */
    for (size_t i = 0; i + 1 < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    line[len - 1] = '\n';
    (void)write_all(2, line, len);
}
