/*
 * unit_config.c — TAP tests for src/config.c: defaults, every value type,
 * the file syntax, the environment overlay, error messages, BASE_PATH and
 * LISTEN checks, DATABASE_URI mapping, cfg_validate, and that
 * conf/s4s.conf.example loads and documents the real defaults.
 */
#include "../src/config.c"
#include "tap.h"

#include <fcntl.h>
#include <unistd.h>

static char *const no_env[] = {NULL};

/* Write text to a new temporary file; returns its path (caller unlinks, frees). */
static char *write_tmp(const char *text)
{
    char *path = xstrdup("/tmp/unit_config.XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0 || write_all(fd, text, strlen(text)) < 0) {
        perror("unit_config: temporary file");
        exit(2);
    }
    close(fd);
    return path;
}

static int load_text(struct config *c, const char *text, char *const envp[], char *err,
                     size_t errlen, char **pathp)
{
    char *path = write_tmp(text);
    int rc = cfg_load(c, path, envp, err, errlen);
    unlink(path);
    if (pathp)
        *pathp = path;
    else
        free(path);
    return rc;
}

/* Standard error to a temporary file while log lines are checked. */
static char capture_path[64];

static int capture_begin(void)
{
    fflush(stderr);
    snprintf(capture_path, sizeof capture_path, "/tmp/unit_config_log.XXXXXX");
    int fd = mkstemp(capture_path);
    int saved = dup(2);
    if (fd < 0 || saved < 0 || dup2(fd, 2) < 0) {
        perror("unit_config: capture");
        exit(2);
    }
    close(fd);
    return saved;
}

static char *capture_end(int saved)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(capture_path, "r");
    char *buf = xcalloc(1, 8192);
    if (f) {
        size_t n = fread(buf, 1, 8191, f);
        buf[n] = '\0';
        fclose(f);
    }
    unlink(capture_path);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Name of the first key whose value differs between a and b, or NULL. */
static const char *first_difference(const struct config *a, const struct config *b)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const struct key *k = &keys[i];
        if (k->type == T_STRING) {
            const char *x = *(char *const *)((const char *)a + k->offset);
            const char *y = *(char *const *)((const char *)b + k->offset);
            if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0))
                return k->name;
        } else if (load_num(a, k) != load_num(b, k)) {
            return k->name;
        }
    }
    return NULL;
}

/* cfg_set on a fresh default config; returns the result, the config in *c. */
static int set1(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
    cfg_defaults(c);
    err[0] = '\0';
    return cfg_set(c, key, value, err, errlen);
}

static void test_defaults(void)
{
    struct config c;
    cfg_defaults(&c);
    is_str(c.database_uri, NULL, "default DATABASE_URI unset");
    is_str(c.frontend_url, "http://127.0.0.1:8080/", "default FRONTEND_URL");
    is_str(c.oauth_client_id, NULL, "default OAUTH_CLIENT_ID unset");
    is_str(c.secret_key, NULL, "default SECRET_KEY unset");
    is_str(c.data_dir, "./data", "default DATA_DIR");
    is_str(c.base_path, "/backend", "default BASE_PATH");
    is_int(c.workers, 4, "default WORKERS");
    is_str(c.listen, NULL, "default LISTEN unset (fd 0)");
    is_str(c.listen_owner, NULL, "default LISTEN_OWNER unset");
    is_int(c.listen_mode, 0660, "default LISTEN_MODE 0660");
    is_int(c.listen_backlog, 1024, "default LISTEN_BACKLOG");
    is_int(c.max_requests, 10000, "default MAX_REQUESTS");
    is_int(c.request_timeout, 60, "default REQUEST_TIMEOUT");
    is_int(c.stop_timeout, 30, "default STOP_TIMEOUT");
    ok(c.max_content_length == 16u * 1024 * 1024, "default MAX_CONTENT_LENGTH 16M");
    is_int(c.session_ttl, 43200, "default SESSION_TTL 12h");
    ok(c.public_thumbnails, "default PUBLIC_THUMBNAILS on");
    is_str(c.status_token, NULL, "default STATUS_TOKEN unset");
    is_int(c.sendfile, SENDFILE_OFF, "default SENDFILE off");
    is_str(c.sendfile_prefix, "/_s4s_blobs", "default SENDFILE_PREFIX");
    ok(c.cors, "default CORS on");
    is_int(c.log_level, LOG_LVL_INFO, "default LOG_LEVEL info");
    is_str(c.log_file, NULL, "default LOG_FILE unset");
    is_int(c.version_retention, 50, "default VERSION_RETENTION");
    is_str(c.user, NULL, "default RUN_AS unset");
    is_int(c.db_busy_timeout_ms, 5000, "default DB_BUSY_TIMEOUT");
    char err[256] = "";
    is_int(cfg_validate(&c, err, sizeof err), 0, "defaults validate (%s)", err);
    cfg_free(&c);
    cfg_free(&c); /* idempotent */
    ok(c.data_dir == NULL, "cfg_free leaves no dangling pointers");
}

static void test_size(void)
{
    uint64_t v = 0;
    ok(cfg_parse_size("16M", &v) && v == 16777216, "16M = 16777216");
    ok(cfg_parse_size("1G", &v) && v == 1073741824, "1G");
    ok(cfg_parse_size("512K", &v) && v == 524288, "512K");
    ok(cfg_parse_size("512k", &v) && v == 524288, "512k (lower case)");
    ok(cfg_parse_size("2MB", &v) && v == 2097152, "2MB is 1024-based");
    ok(cfg_parse_size("3mib", &v) && v == 3145728, "3mib");
    ok(cfg_parse_size("1GiB", &v) && v == 1073741824, "1GiB");
    ok(cfg_parse_size("4kb", &v) && v == 4096, "4kb");
    ok(cfg_parse_size("1536", &v) && v == 1536, "plain bytes");
    ok(cfg_parse_size("16 M", &v) && v == 16777216, "blank before the suffix");
    ok(!cfg_parse_size("abc", &v), "abc rejected");
    ok(!cfg_parse_size("-1", &v), "-1 rejected");
    ok(!cfg_parse_size("", &v), "empty rejected");
    ok(!cfg_parse_size("1.5G", &v), "fractions rejected");
    ok(!cfg_parse_size("16X", &v), "unknown suffix rejected");
    ok(!cfg_parse_size("M", &v), "suffix alone rejected");
    ok(!cfg_parse_size("+5", &v), "sign rejected");
    ok(!cfg_parse_size("99999999999999999999", &v), "overflow rejected");
    ok(!cfg_parse_size("17179869184G", &v), "overflow through the suffix rejected");
}

static void test_duration(void)
{
    long v = 0;
    ok(cfg_parse_duration("90", &v) && v == 90, "90 = 90 s");
    ok(cfg_parse_duration("90s", &v) && v == 90, "90s");
    ok(cfg_parse_duration("15m", &v) && v == 900, "15m = 900");
    ok(cfg_parse_duration("12h", &v) && v == 43200, "12h = 43200");
    ok(cfg_parse_duration("1d", &v) && v == 86400, "1d = 86400");
    ok(cfg_parse_duration("2H", &v) && v == 7200, "upper-case suffix");
    ok(!cfg_parse_duration("1w", &v), "weeks rejected");
    ok(!cfg_parse_duration("-5", &v), "negative rejected");
    ok(!cfg_parse_duration("5ms", &v), "5ms rejected");
    ok(!cfg_parse_duration("", &v), "empty rejected");
    ok(!cfg_parse_duration("s", &v), "suffix alone rejected");
}

static void test_bool(void)
{
    static const char *const yes[] = {"1", "true", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const no[] = {"0", "false", "False", "no", "NO", "off", "Off"};
    bool b, all = true;
    for (size_t i = 0; i < ARRAY_LEN(yes); i++)
        all = all && cfg_parse_bool(yes[i], &b) && b;
    ok(all, "every true form parses as true");
    all = true;
    for (size_t i = 0; i < ARRAY_LEN(no); i++)
        all = all && cfg_parse_bool(no[i], &b) && !b;
    ok(all, "every false form parses as false");
    ok(!cfg_parse_bool("maybe", &b), "maybe rejected");
    ok(!cfg_parse_bool("2", &b), "2 rejected");
}

static void test_set_types(void)
{
    struct config c;
    char err[512];

    is_int(set1(&c, "WORKERS", "lots", err, sizeof err), -1, "WORKERS=lots rejected");
    is_str(err, "WORKERS: expected a whole number from 1 to 128, got 'lots'",
           "message names key, range and value");
    is_int(c.workers, 4, "a rejected value leaves the old one");
    cfg_free(&c);
    is_int(set1(&c, "WORKERS", "0", err, sizeof err), -1, "WORKERS=0 rejected");
    cfg_free(&c);
    is_int(set1(&c, "WORKERS", "129", err, sizeof err), -1, "WORKERS=129 rejected");
    cfg_free(&c);
    ok(set1(&c, "WORKERS", " 128 ", err, sizeof err) == 0 && c.workers == 128,
       "WORKERS=128, blanks forgiven");
    ok(cfg_set(&c, "WORKERS", "", err, sizeof err) == 0 && c.workers == 4,
       "empty value restores the default");
    ok(cfg_set(&c, "MAX_REQUESTS", "0", err, sizeof err) == 0 && c.max_requests == 0,
       "MAX_REQUESTS=0 (long field)");
    cfg_free(&c);

    is_int(set1(&c, "MAX_CONTENT_LENGTH", "abc", err, sizeof err), -1, "size abc rejected");
    is_str(err,
           "MAX_CONTENT_LENGTH: expected a size from 1K to 4G (bytes, or a number with a K, M "
           "or G suffix), got 'abc'",
           "size message");
    ok(cfg_set(&c, "MAX_CONTENT_LENGTH", "-1", err, sizeof err) < 0, "size -1 rejected");
    ok(cfg_set(&c, "MAX_CONTENT_LENGTH", "512", err, sizeof err) < 0, "size below 1K rejected");
    ok(cfg_set(&c, "MAX_CONTENT_LENGTH", "5G", err, sizeof err) < 0, "size above 4G rejected");
    ok(cfg_set(&c, "MAX_CONTENT_LENGTH", "4G", err, sizeof err) == 0 &&
           c.max_content_length == UINT64_C(4294967296),
       "4G accepted into the uint64 field");
    ok(cfg_set(&c, "MAX_CONTENT_LENGTH", "512K", err, sizeof err) == 0 &&
           c.max_content_length == 524288,
       "512K accepted");
    cfg_free(&c);

    ok(set1(&c, "REQUEST_TIMEOUT", "2m", err, sizeof err) == 0 && c.request_timeout == 120,
       "REQUEST_TIMEOUT=2m");
    ok(cfg_set(&c, "REQUEST_TIMEOUT", "0", err, sizeof err) == 0 && c.request_timeout == 0,
       "REQUEST_TIMEOUT=0 (none)");
    is_int(cfg_set(&c, "REQUEST_TIMEOUT", "2d", err, sizeof err), -1, "2d is over the limit");
    is_str(err,
           "REQUEST_TIMEOUT: expected a duration from 0 to 86400 seconds (a number with an "
           "optional s, m, h or d suffix), got '2d'",
           "duration message");
    ok(cfg_set(&c, "SESSION_TTL", "1d", err, sizeof err) == 0 && c.session_ttl == 86400,
       "SESSION_TTL=1d (long field)");
    cfg_free(&c);

    ok(set1(&c, "CORS", "off", err, sizeof err) == 0 && !c.cors, "CORS=off");
    ok(cfg_set(&c, "CORS", "Yes", err, sizeof err) == 0 && c.cors, "CORS=Yes");
    ok(cfg_set(&c, "PUBLIC_THUMBNAILS", "false", err, sizeof err) == 0 && !c.public_thumbnails,
       "PUBLIC_THUMBNAILS=false");
    is_int(cfg_set(&c, "CORS", "maybe", err, sizeof err), -1, "CORS=maybe rejected");
    is_str(err, "CORS: expected on or off (or yes/no, true/false, 1/0), got 'maybe'",
           "bool message");
    cfg_free(&c);

    ok(set1(&c, "LISTEN_MODE", "0600", err, sizeof err) == 0 && c.listen_mode == 0600,
       "LISTEN_MODE=0600");
    ok(cfg_set(&c, "LISTEN_MODE", "640", err, sizeof err) == 0 && c.listen_mode == 0640,
       "LISTEN_MODE=640 read as octal");
    ok(cfg_set(&c, "LISTEN_MODE", "01777", err, sizeof err) < 0, "mode beyond 0777 rejected");
    is_int(cfg_set(&c, "LISTEN_MODE", "0999", err, sizeof err), -1, "non-octal mode rejected");
    is_str(err,
           "LISTEN_MODE: expected an octal file mode from 0000 to 0777, such as 0660, got "
           "'0999'",
           "mode message");
    cfg_free(&c);

    ok(set1(&c, "SENDFILE", "X-Accel-Redirect", err, sizeof err) == 0 &&
           c.sendfile == SENDFILE_X_ACCEL,
       "SENDFILE=X-Accel-Redirect (case-insensitive)");
    ok(cfg_set(&c, "SENDFILE", "x-sendfile", err, sizeof err) == 0 &&
           c.sendfile == SENDFILE_X_SENDFILE,
       "SENDFILE=x-sendfile");
    is_int(cfg_set(&c, "SENDFILE", "nginx", err, sizeof err), -1, "SENDFILE=nginx rejected");
    is_str(err, "SENDFILE: expected one of off, x-accel-redirect or x-sendfile, got 'nginx'",
           "enum message");
    ok(cfg_set(&c, "LOG_LEVEL", "DEBUG", err, sizeof err) == 0 && c.log_level == LOG_LVL_DEBUG,
       "LOG_LEVEL=DEBUG");
    ok(cfg_set(&c, "LOG_LEVEL", "warn", err, sizeof err) == 0 && c.log_level == LOG_LVL_WARN,
       "LOG_LEVEL=warn");
    ok(cfg_set(&c, "LOG_LEVEL", "verbose", err, sizeof err) < 0, "LOG_LEVEL=verbose rejected");
    cfg_free(&c);

    ok(set1(&c, "SECRET_KEY", "one", err, sizeof err) == 0 &&
           cfg_set(&c, "SECRET_KEY", "two", err, sizeof err) == 0,
       "a string key set twice (the first value is freed)");
    is_str(c.secret_key, "two", "the last value wins");
    ok(cfg_set(&c, "SECRET_KEY", "", err, sizeof err) == 0 && c.secret_key == NULL,
       "an empty string value unsets it");
    ok(cfg_set(&c, "FRONTEND_URL", "scratch.school.org", err, sizeof err) < 0,
       "FRONTEND_URL without http(s):// rejected");
    ok(cfg_set(&c, "OAUTH_TOKEN_URL", "https://idp.example/token", err, sizeof err) == 0,
       "an https URL accepted");
    ok(cfg_set(&c, "DATA_DIR", "/var/lib/s4s/", err, sizeof err) == 0 &&
           strcmp(c.data_dir, "/var/lib/s4s") == 0,
       "DATA_DIR loses its trailing slash");
    ok(cfg_set(&c, "LISTEN_OWNER", "s4s:www-data", err, sizeof err) == 0 &&
           cfg_set(&c, "RUN_AS", "s4s", err, sizeof err) == 0,
       "LISTEN_OWNER user:group and RUN_AS user accepted");
    ok(cfg_set(&c, "LISTEN_OWNER", "s4s:", err, sizeof err) < 0 &&
           cfg_set(&c, "RUN_AS", "www data", err, sizeof err) < 0,
       "bad owners rejected");
    ok(cfg_set(&c, "SENDFILE_PREFIX", "/internal/", err, sizeof err) == 0 &&
           strcmp(c.sendfile_prefix, "/internal") == 0,
       "SENDFILE_PREFIX normalised");
    ok(cfg_set(&c, "SENDFILE_PREFIX", "internal", err, sizeof err) < 0 &&
           cfg_set(&c, "SENDFILE_PREFIX", "/", err, sizeof err) < 0,
       "SENDFILE_PREFIX must be a location below /");
    cfg_free(&c);
}

static void test_unknown_and_flask(void)
{
    struct config c;
    char err[512];
    is_int(set1(&c, "FOO", "1", err, sizeof err), -1, "unknown key rejected by cfg_set");
    is_str(err, "unknown key FOO", "message names the key");
    is_int(cfg_set(&c, "workers", "2", err, sizeof err), -1, "lower-case key rejected");
    is_str(err, "unknown key workers (key names are upper case: WORKERS)", "with a hint");

    int saved = capture_begin();
    int rc = cfg_set(&c, "DEBUG", "1", err, sizeof err);
    char *log = capture_end(saved);
    is_int(rc, 0, "Flask key DEBUG accepted by cfg_set");
    ok(strstr(log, "DEBUG is a setting of the Flask backend") != NULL, "and warned about: %s", log);
    free(log);
    cfg_free(&c);
}

static void test_base_path(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/", ""},
        {"/backend/", "/backend"},
        {"/scratch/backend", "/scratch/backend"},
        {"/a/b//", "/a/b"},
        {"backend", NULL},
        {"/a/../b", NULL},
        {"/..", NULL},
        {"/a/./b", NULL},
        {"/a b", NULL},
        {"/a//b", NULL},
        {"/a?b", NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct config c;
        char err[512];
        int rc = set1(&c, "BASE_PATH", cases[i].in, err, sizeof err);
        if (cases[i].out)
            ok(rc == 0 && strcmp(c.base_path, cases[i].out) == 0, "BASE_PATH '%s' → '%s'",
               cases[i].in, cases[i].out);
        else
            ok(rc == -1 && strstr(err, "BASE_PATH: expected a URL path") == err,
               "BASE_PATH '%s' rejected", cases[i].in);
        cfg_free(&c);
    }
}

static void test_listen(void)
{
    static const char *const good[] = {
        "unix:/run/s4s/s4s.sock", "unix:s4s.sock", "127.0.0.1:9000",
        "localhost:9000",         "[::1]:9000",    "*:9000",
        "0.0.0.0:65535",
    };
    static const char *const bad[] = {
        "unix:",   "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":9000",    "[::1]9000",
        "[]:9000", "::1:9000",  "host:port",   "/run/s4s.sock",   "a b:9000", "host:+80",
    };
    struct config c;
    char err[512];
    bool all = true;
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        int rc = set1(&c, "LISTEN", good[i], err, sizeof err);
        if (rc != 0 || strcmp(c.listen, good[i]) != 0) {
            all = false;
            printf("# LISTEN '%s' refused: %s\n", good[i], err);
        }
        cfg_free(&c);
    }
    ok(all, "LISTEN accepts unix:, host:port and [v6]:port forms");
    all = true;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        if (set1(&c, "LISTEN", bad[i], err, sizeof err) == 0) {
            all = false;
            printf("# LISTEN '%s' accepted\n", bad[i]);
        }
        cfg_free(&c);
    }
    ok(all, "LISTEN rejects malformed addresses and ports");
    set1(&c, "LISTEN", "127.0.0.1:0", err, sizeof err);
    is_str(err,
           "LISTEN: expected unix:/path/to/socket, host:port or [ipv6-address]:port with a port "
           "from 1 to 65535, got '127.0.0.1:0'",
           "LISTEN message");
    cfg_free(&c);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof longpath - 1] = '\0';
    ok(set1(&c, "LISTEN", longpath, err, sizeof err) < 0 && strstr(err, "at most 107 bytes"),
       "a socket path too long for sun_path rejected");
    cfg_free(&c);
}

static void test_file_syntax(void)
{
    struct config c;
    char err[512] = "";
    const char *text = "\xEF\xBB\xBF# a comment\n"
                       "\n"
                       "   # an indented comment\n"
                       "WORKERS=8\n"
                       "export LISTEN = unix:/run/s4s.sock\n"
                       "\tLISTEN_BACKLOG\t=\t64   # trailing comment\n"
                       "SECRET_KEY=abc#def\n"
                       "STATUS_TOKEN=\"has \\\"quotes\\\" and \\\\ and # hash\"  # comment\n"
                       "ROLE_ADMIN='single \\n kept'\n"
                       "ROLE_TEACHER=\"  padded  \"\n"
                       "OAUTH_CLIENT_ID= # only a comment\n"
                       "OAUTH_CLIENT_SECRET=first\n"
                       "OAUTH_CLIENT_SECRET=second\r\n"
                       "BASE_PATH=/\n"
                       "MAX_CONTENT_LENGTH=32M\n"
                       "SESSION_TTL=1h\n"
                       "CORS=no\n"
                       "LOG_LEVEL=Debug\n"
                       "DATABASE_URI=sqlite:////srv/s4s/main.db";
    int rc = load_text(&c, text, no_env, err, sizeof err, NULL);
    is_int(rc, 0, "a file using every syntax loads (%s)", err);
    is_int(c.workers, 8, "plain KEY=VALUE");
    is_str(c.listen, "unix:/run/s4s.sock", "export prefix and spaces around =");
    is_int(c.listen_backlog, 64, "tabs and a trailing comment");
    is_str(c.secret_key, "abc#def", "# without a blank before it is part of the value");
    is_str(c.status_token, "has \"quotes\" and \\ and # hash", "double quotes with escapes");
    is_str(c.role_admin, "single \\n kept", "single quotes keep backslashes");
    is_str(c.role_teacher, "  padded  ", "quotes keep blanks");
    is_str(c.oauth_client_id, NULL, "KEY= # comment is empty");
    is_str(c.oauth_client_secret, "second", "CRLF line, last value wins");
    is_str(c.base_path, "", "BASE_PATH=/ is the root");
    ok(c.max_content_length == 32u << 20, "MAX_CONTENT_LENGTH=32M");
    is_int(c.session_ttl, 3600, "SESSION_TTL=1h");
    ok(!c.cors, "CORS=no");
    is_int(c.log_level, LOG_LVL_DEBUG, "LOG_LEVEL=Debug");
    is_str(c.database_uri, "sqlite:////srv/s4s/main.db", "last line without newline");
    cfg_free(&c);
}

static void test_file_errors(void)
{
    struct config c;
    char err[512], want[600];
    char *path;

    is_int(load_text(&c, "# settings\nWORKERS=lots\n", no_env, err, sizeof err, &path), -1,
           "bad value in the file");
    snprintf(want, sizeof want, "%s:2: WORKERS: expected a whole number from 1 to 128, got 'lots'",
             path);
    is_str(err, want, "message carries file:line");
    ok(c.data_dir == NULL, "a failed load leaves nothing to free");
    cfg_free(&c);
    free(path);

    is_int(load_text(&c, "WORKERS=2\n\nFOO=bar\n", no_env, err, sizeof err, &path), -1,
           "unknown key in the file");
    snprintf(want, sizeof want, "%s:3: unknown key FOO", path);
    is_str(err, want, "unknown key message carries file:line");
    free(path);

    is_int(
        load_text(&c, "WORKERS=2\nthis line has no equals sign\n", no_env, err, sizeof err, &path),
        -1, "line without '='");
    snprintf(want, sizeof want, "%s:2: expected KEY=VALUE, found a line without '='", path);
    is_str(err, want, "missing '=' message");
    free(path);

    ok(load_text(&c, "SECRET_KEY=\"unterminated\n", no_env, err, sizeof err, NULL) == -1 &&
           strstr(err, ":1: missing closing \" quote"),
       "unterminated quote: %s", err);
    ok(load_text(&c, "SECRET_KEY='a' b\n", no_env, err, sizeof err, NULL) == -1 &&
           strstr(err, ":1: unexpected text after the closing quote"),
       "text after closing quote: %s", err);
    ok(load_text(&c, "MY KEY=1\n", no_env, err, sizeof err, NULL) == -1 &&
           strstr(err, ":1: a key name may only hold"),
       "key with a blank: %s", err);
    ok(load_text(&c, "=1\n", no_env, err, sizeof err, NULL) == -1 &&
           strstr(err, ":1: a line without a key"),
       "line without a key: %s", err);
    ok(cfg_load(&c, "/nonexistent/s4s.conf", no_env, err, sizeof err) == -1 &&
           strstr(err, "cannot open the configuration file /nonexistent/s4s.conf"),
       "missing file: %s", err);
}

static void test_flask_keys_in_file(void)
{
    struct config c;
    char err[512] = "";
    char *path;
    int saved = capture_begin();
    int rc = load_text(&c,
                       "OAUTH_JWKS_URI=https://idp/jwks\nDEBUG=True\nFLASK_ENV=production\n"
                       "SQLALCHEMY_TRACK_MODIFICATIONS=False\nWORKERS=3\n",
                       no_env, err, sizeof err, &path);
    char *log = capture_end(saved);
    is_int(rc, 0, "the Flask backend's keys are accepted (%s)", err);
    is_int(c.workers, 3, "and the rest of the file still applies");
    is_int(count_lines(log), 4, "one warning per ignored key");
    char want[600];
    snprintf(want, sizeof want, "%s:4: SQLALCHEMY_TRACK_MODIFICATIONS", path);
    ok(strstr(log, want) && strstr(log, ":1: OAUTH_JWKS_URI") && strstr(log, ":2: DEBUG") &&
           strstr(log, ":3: FLASK_ENV"),
       "each warning names the key and file:line");
    free(log);
    free(path);
    cfg_free(&c);
}

static void test_environment(void)
{
    struct config c;
    char err[512] = "";
    char *const env[] = {"PATH=/usr/bin",
                         "HOME=/root",
                         "DEBUG=1",
                         "WORKERS=6",
                         "WORKERS=99",
                         "FOO=bar",
                         "SESSION_TTL=2h",
                         "STATUS_TOKEN=",
                         "LOG_FILE=/var/log/s4s.log",
                         NULL};
    int saved = capture_begin();
    int rc = load_text(&c, "WORKERS=2\nSTATUS_TOKEN=tok\nCORS=off\n", env, err, sizeof err, NULL);
    char *log = capture_end(saved);
    is_int(rc, 0, "file plus environment loads (%s)", err);
    is_int(c.workers, 6, "environment overrides the file (first entry wins, as getenv)");
    is_int(c.session_ttl, 7200, "environment sets a key absent from the file");
    is_str(c.status_token, NULL, "an empty environment value restores the default");
    ok(!c.cors, "file value kept where the environment is silent");
    is_str(c.log_file, "/var/log/s4s.log", "LOG_FILE from the environment");
    is_str(log, "", "unrelated variables (DEBUG, FOO, PATH) ignored without a word");
    free(log);
    cfg_free(&c);

    char *const bad[] = {"WORKERS=lots", NULL};
    is_int(cfg_load(&c, NULL, bad, err, sizeof err), -1, "bad value in the environment");
    is_str(err, "environment: WORKERS: expected a whole number from 1 to 128, got 'lots'",
           "message names the key and the environment");
    ok(cfg_load(&c, NULL, NULL, err, sizeof err) == 0 && c.workers == 4,
       "no file and no environment: the defaults");
    cfg_free(&c);
}

static void check_sqlite(const char *data_dir, const char *uri, const char *want)
{
    struct config c;
    char err[512];
    cfg_defaults(&c);
    if (data_dir)
        cfg_set(&c, "DATA_DIR", data_dir, err, sizeof err);
    free(c.database_uri);
    c.database_uri = uri ? xstrdup(uri) : NULL;
    char *got = cfg_sqlite_path(&c);
    is_str(got, want, "cfg_sqlite_path(%s) = %s", uri ? uri : "NULL", want ? want : "NULL");
    free(got);
    cfg_free(&c);
}

static void test_sqlite_path(void)
{
    check_sqlite(NULL, NULL, "./data/main.db");
    check_sqlite("/var/lib/s4s/", "", "/var/lib/s4s/main.db");
    check_sqlite(NULL, "sqlite:////srv/s4s/main.db", "/srv/s4s/main.db");
    check_sqlite(NULL, "sqlite:///db/main.db", "db/main.db");
    check_sqlite(NULL, "sqlite:rel.db", "rel.db");
    check_sqlite(NULL, "sqlite:///x.db?timeout=5", "x.db");
    check_sqlite(NULL, "postgresql://s4s@db/s4s", NULL);
    check_sqlite(NULL, "sqlite://", NULL);

    struct config c;
    char err[512];
    ok(set1(&c, "DATABASE_URI", "postgresql://s4s:pw@db.school/s4s", err, sizeof err) == 0,
       "postgresql URI accepted");
    ok(cfg_set(&c, "DATABASE_URI", "mysql://x@y/z", err, sizeof err) < 0 &&
           strstr(err, "DATABASE_URI: expected sqlite:///"),
       "mysql URI rejected: %s", err);
    ok(cfg_set(&c, "DATABASE_URI", "sqlite:///:memory:", err, sizeof err) < 0,
       "in-memory SQLite rejected");
    cfg_free(&c);
}

static void test_validate(void)
{
    struct config c;
    char err[512];
    cfg_defaults(&c);
    c.workers = 0;
    is_int(cfg_validate(&c, err, sizeof err), -1, "WORKERS=0 set directly fails validation");
    is_str(err, "WORKERS is 0; expected a whole number from 1 to 128", "validation message");
    c.workers = 4;
    c.sendfile = SENDFILE_X_ACCEL;
    free(c.sendfile_prefix);
    c.sendfile_prefix = NULL;
    ok(cfg_validate(&c, err, sizeof err) == -1 && strstr(err, "SENDFILE_PREFIX"),
       "SENDFILE without a prefix: %s", err);
    c.sendfile = SENDFILE_OFF;
    c.listen = xstrdup("nowhere");
    ok(cfg_validate(&c, err, sizeof err) == -1 && strstr(err, "LISTEN: expected"),
       "a bad LISTEN set directly: %s", err);
    free(c.listen);
    c.listen = NULL;
    c.database_uri = xstrdup("oracle://x");
    ok(cfg_validate(&c, err, sizeof err) == -1 && strstr(err, "DATABASE_URI"),
       "a DATABASE_URI of another scheme: %s", err);
    free(c.database_uri);
    c.database_uri = NULL;
    cfg_set(&c, "OAUTH_CLIENT_ID", "s4s", err, sizeof err);
    cfg_set(&c, "OAUTH_AUTHORIZE_URL", "https://idp/auth", err, sizeof err);
    cfg_set(&c, "OAUTH_TOKEN_URL", "https://idp/token", err, sizeof err);
    cfg_set(&c, "OAUTH_USERINFO_URL", "https://idp/userinfo", err, sizeof err);
    ok(cfg_validate(&c, err, sizeof err) == -1 && strstr(err, "OAUTH_REDIRECT_URI"),
       "half an identity provider: %s", err);
    cfg_set(&c, "OAUTH_REDIRECT_URI", "https://s/backend/authorize", err, sizeof err);
    is_int(cfg_validate(&c, err, sizeof err), 0, "a complete identity provider validates");
    cfg_free(&c);
}

static char *find_example(void)
{
    const char *srcdir = getenv("S4S_SRCDIR");
    char *candidates[3];
    candidates[0] = xasprintf("%s/conf/s4s.conf.example", srcdir ? srcdir : ".");
    candidates[1] = xstrdup("../conf/s4s.conf.example");
    candidates[2] = xstrdup("conf/s4s.conf.example");
    char *found = NULL;
    for (size_t i = 0; i < ARRAY_LEN(candidates); i++) {
        if (!found && access(candidates[i], R_OK) == 0)
            found = candidates[i];
        else
            free(candidates[i]);
    }
    return found;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 65536, n;
    char *buf = xmalloc(cap);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_example(void)
{
    char *path = find_example();
    ok(path != NULL, "conf/s4s.conf.example found (set S4S_SRCDIR)");
    if (!path)
        return;
    struct config c, d;
    char err[512] = "";
    is_int(cfg_load(&c, path, no_env, err, sizeof err), 0, "the example file loads (%s)", err);
    is_int(cfg_validate(&c, err, sizeof err), 0, "and validates (%s)", err);
    cfg_defaults(&d);
    ok(first_difference(&c, &d) == NULL, "as shipped (all commented out) it changes nothing");
    cfg_free(&c);

    /* Every key documented exactly once as "# KEY=default"; uncommenting
     * those lines must give exactly the built-in defaults. */
    char *text = slurp(path);
    size_t len = strlen(text);
    char *on = xmalloc(len + 1);
    size_t w = 0;
    bool documented = true;
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        char pat[64];
        int n = snprintf(pat, sizeof pat, "\n# %s=", keys[i].name);
        const char *at = strstr(text, pat);
        const char *def = keys[i].def ? keys[i].def : "";
        size_t dl = strlen(def);
        if (!at || strstr(at + 1, pat) || strncmp(at + n, def, dl) != 0 ||
            (at[n + (int)dl] != '\n' && at[n + (int)dl] != '\0')) {
            documented = false;
            printf("# %s is not documented once as '# %s=%s'\n", keys[i].name, keys[i].name, def);
        }
    }
    ok(documented, "every key is documented once with its default");
    for (size_t i = 0; i < len; i++) {
        bool line_start = i == 0 || text[i - 1] == '\n';
        if (line_start && text[i] == '#' && text[i + 1] == ' ' &&
            isupper((unsigned char)text[i + 2])) {
            size_t j = i + 2;
            while (isupper((unsigned char)text[j]) || text[j] == '_')
                j++;
            if (text[j] == '=') {
                i += 1; /* drop "# " */
                continue;
            }
        }
        on[w++] = text[i];
    }
    on[w] = '\0';
    int rc = load_text(&c, on, no_env, err, sizeof err, NULL);
    is_int(rc, 0, "the example with every default uncommented loads (%s)", err);
    const char *diff = rc == 0 ? first_difference(&c, &d) : "(not loaded)";
    ok(diff == NULL, "and equals the built-in defaults (differs: %s)", diff ? diff : "none");
    cfg_free(&c);
    cfg_free(&d);
    free(on);
    free(text);
    free(path);
}

int main(void)
{
    test_defaults();
    test_size();
    test_duration();
    test_bool();
    test_set_types();
    test_unknown_and_flask();
    test_base_path();
    test_listen();
    test_file_syntax();
    test_file_errors();
    test_flask_keys_in_file();
    test_environment();
    test_sqlite_path();
    test_validate();
    test_example();
    return tap_done();
}
