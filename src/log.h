/*
 * log.h — levelled application log lines and the access log, to stderr or
 * LOG_FILE. log_warn/log_err append strerror(errno) (saved before anything
 * can clobber it); the *x variants do not (OpenBSD httpd's convention).
 */
#ifndef S4S_LOG_H
#define S4S_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int log_level_parse(const char *s);
void log_set_level(int level);
void log_set_role(const char *role); /* "master" / "worker": shown in each line */
/* Open file (append) and make it fd 2, so children and stray stderr land there too.
 * NULL keeps stderr. 0 on success, -1 with errno. */
int log_open_file(const char *path);
/* Reopen the same file after logrotate moved it (SIGUSR1). */
int log_reopen(void);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* One line per request: time, pid, method, path, status, bytes, duration, user. */
void log_access(const char *method, const char *path, int status, unsigned long long bytes,
                long long duration_us, const char *user_id);

#endif
