/*
 * config.c — owns the server's settings: the table of every key (type, field,
 * range, default, meaning), the parsers for each kind of value (strings,
 * whole numbers, sizes, durations, booleans, octal modes, enumerations), the
 * KEY=VALUE file reader, the environment overlay, the cross-key checks, and
 * the mapping of DATABASE_URI to an SQLite file path. See DESIGN.md
 * "Configuration" and conf/s4s.conf.example, which documents every key.
 *
 * Rules that hold for every key, from the file and from the environment:
 *   - an empty value restores the key's default (for a key without a default,
 *     such as STATUS_TOKEN, it means "not set");
 *   - setting a key again replaces the earlier value (the last one wins);
 *   - a bad value is an error naming the key, where it came from, what was
 *     expected and what was found.
 */
#include "config.h"
#include "log.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/un.h>

enum ktype { T_STRING, T_INT, T_SIZE, T_DURATION, T_BOOL, T_MODE, T_ENUM };

/*
 * One key. Numbers are stored through (offset, width) so one table serves
 * int, unsigned, long, uint64_t, bool and enum fields alike; FIELD() takes
 * both from the member itself so they cannot disagree with the struct.
 */
struct key {
    const char *name;
    enum ktype type;
    size_t offset, width;
    int64_t min, max; /* numbers, durations, sizes, modes, enums: inclusive range */
    const char *def;  /* default, as it would be written in the file; NULL = unset */
    /* T_STRING: validate and normalise in place (only ever shortening); NULL when
     * fine, else what was expected, as a phrase for the error message. */
    const char *(*check)(char *v);
    int (*parse)(const char *lower); /* T_ENUM: lower-cased text → value or -1 */
    const char *choices;             /* T_ENUM: the accepted words, for messages */
    /* cppcheck-suppress unusedStructMember ; the table doubles as the keys' reference */
    const char *doc;
};

#define FIELD(m) .offset = offsetof(struct config, m), .width = sizeof(((struct config *)0)->m)

static const char *check_url(char *v);
static const char *check_db_uri(char *v);
static const char *check_dir(char *v);
static const char *check_base_path(char *v);
static const char *check_prefix(char *v);
static const char *check_listen(char *v);
static const char *check_owner(char *v);
static int parse_sendfile(const char *s);

/* One key per row reads better than clang-format's one field per line. */
/* clang-format off */
static const struct key keys[] = {
    /* Identity provider and frontend (the Flask backend's .env keys). */
    {.name = "FRONTEND_URL", .type = T_STRING, FIELD(frontend_url),
     .def = "http://127.0.0.1:8080/", .check = check_url,
     .doc = "Address of the Scratch4School web frontend (login redirects, CORS origin)"},
    {.name = "OAUTH_CLIENT_ID", .type = T_STRING, FIELD(oauth_client_id),
     .doc = "Client id registered at the identity provider"},
    {.name = "OAUTH_CLIENT_SECRET", .type = T_STRING, FIELD(oauth_client_secret),
     .doc = "Client secret registered at the identity provider"},
    {.name = "OAUTH_AUTHORIZE_URL", .type = T_STRING, FIELD(oauth_authorize_url),
     .check = check_url, .doc = "The provider's authorization endpoint"},
    {.name = "OAUTH_TOKEN_URL", .type = T_STRING, FIELD(oauth_token_url),
     .check = check_url, .doc = "The provider's token endpoint"},
    {.name = "OAUTH_USERINFO_URL", .type = T_STRING, FIELD(oauth_userinfo_url),
     .check = check_url, .doc = "The provider's userinfo endpoint"},
    {.name = "OAUTH_REDIRECT_URI", .type = T_STRING, FIELD(oauth_redirect_uri),
     .check = check_url, .doc = "This server's /authorize address as registered at the provider"},
    {.name = "ROLE_ADMIN", .type = T_STRING, FIELD(role_admin),
     .doc = "External id of the group whose members are admins"},
    {.name = "ROLE_TEACHER", .type = T_STRING, FIELD(role_teacher),
     .doc = "External id of the group whose members are teachers"},
    {.name = "SECRET_KEY", .type = T_STRING, FIELD(secret_key),
     .doc = "Long random secret for signing"},

    /* Storage. */
    {.name = "DATA_DIR", .type = T_STRING, FIELD(data_dir),
     .def = "./data", .check = check_dir,
     .doc = "Directory for the database file and the stored projects"},
    {.name = "DATABASE_URI", .type = T_STRING, FIELD(database_uri),
     .check = check_db_uri,
     .doc = "sqlite:///relative.db, sqlite:////absolute.db or postgresql://...; "
            "unset: DATA_DIR/main.db"},
    {.name = "VERSION_RETENTION", .type = T_INT, FIELD(version_retention),
     .min = 1, .max = 100000, .def = "50",
     .doc = "Old versions kept per project"},
    {.name = "DB_BUSY_TIMEOUT", .type = T_INT, FIELD(db_busy_timeout_ms),
     .min = 0, .max = 600000, .def = "5000",
     .doc = "Milliseconds to wait for a locked database, retries included"},

    /* Process manager. */
    {.name = "LISTEN", .type = T_STRING, FIELD(listen),
     .check = check_listen,
     .doc = "unix:/path/to/socket or host:port; unset: the socket on fd 0"},
    {.name = "LISTEN_OWNER", .type = T_STRING, FIELD(listen_owner),
     .check = check_owner,
     .doc = "user[:group] to own a unix socket"},
    {.name = "LISTEN_MODE", .type = T_MODE, FIELD(listen_mode),
     .min = 0, .max = 0777, .def = "0660",
     .doc = "Permissions of a unix socket (octal)"},
    {.name = "LISTEN_BACKLOG", .type = T_INT, FIELD(listen_backlog),
     .min = 1, .max = 65535, .def = "1024",
     .doc = "Connections the kernel queues before the workers accept them"},
    {.name = "WORKERS", .type = T_INT, FIELD(workers),
     .min = 1, .max = 128, .def = "4",
     .doc = "Worker processes (requests served at the same time)"},
    {.name = "MAX_REQUESTS", .type = T_INT, FIELD(max_requests),
     .min = 0, .max = 1000000000, .def = "10000",
     .doc = "Requests a worker serves before it is replaced; 0 = never"},
    {.name = "REQUEST_TIMEOUT", .type = T_DURATION, FIELD(request_timeout),
     .min = 0, .max = 86400, .def = "60",
     .doc = "A worker busy longer on one request is killed; 0 = never"},
    {.name = "STOP_TIMEOUT", .type = T_DURATION, FIELD(stop_timeout),
     .min = 1, .max = 3600, .def = "30",
     .doc = "Time a stopping worker gets to finish before it is killed"},
    {.name = "RUN_AS", .type = T_STRING, FIELD(user),
     .check = check_owner,
     .doc = "user[:group] to switch to after binding (when started as root)"},

    /* HTTP. */
    {.name = "BASE_PATH", .type = T_STRING, FIELD(base_path),
     .def = "/backend", .check = check_base_path,
     .doc = "URL prefix the web server forwards; / for the root"},
    {.name = "MAX_CONTENT_LENGTH", .type = T_SIZE, FIELD(max_content_length),
     .min = 1024, .max = INT64_C(4294967296), .def = "16M",
     .doc = "Largest request body accepted"},
    {.name = "SESSION_TTL", .type = T_DURATION, FIELD(session_ttl),
     .min = 60, .max = 31536000, .def = "12h",
     .doc = "Lifetime of a renewed login session"},
    {.name = "PUBLIC_THUMBNAILS", .type = T_BOOL, FIELD(public_thumbnails),
     .min = 0, .max = 1, .def = "on",
     .doc = "Thumbnails are served without login"},
    {.name = "CORS", .type = T_BOOL, FIELD(cors),
     .min = 0, .max = 1, .def = "on",
     .doc = "Add CORS headers for FRONTEND_URL"},
    {.name = "SENDFILE", .type = T_ENUM, FIELD(sendfile),
     .min = 0, .max = 2, .def = "off",
     .parse = parse_sendfile, .choices = "off, x-accel-redirect or x-sendfile",
     .doc = "Let the web server send stored files"},
    {.name = "SENDFILE_PREFIX", .type = T_STRING, FIELD(sendfile_prefix),
     .def = "/_s4s_blobs", .check = check_prefix,
     .doc = "Internal web server location of DATA_DIR's blobs"},
    {.name = "STATUS_TOKEN", .type = T_STRING, FIELD(status_token),
     .doc = "Token that opens /status and /metrics; unset: local requests only"},

    /* Logging. */
    {.name = "LOG_LEVEL", .type = T_ENUM, FIELD(log_level),
     .min = 0, .max = 3, .def = "info",
     .parse = log_level_parse, .choices = "error, warn, info or debug",
     .doc = "Least important messages logged"},
    {.name = "LOG_FILE", .type = T_STRING, FIELD(log_file),
     .doc = "File the log is appended to; unset: standard error"},
};
/* clang-format on */

/* Keys of the Flask backend that mean nothing here: accepted with a warning. */
static const char *const ignored_keys[] = {"OAUTH_JWKS_URI", "DEBUG", "FLASK_ENV",
                                           "SQLALCHEMY_TRACK_MODIFICATIONS"};

/* Longest value quoted back in an error message. */
#define ECHO_MAX 100

/* ------------------------------------------------------------------------- */
/* Messages */

/* err = "origin:line: " (or "origin: ", or nothing) followed by the message. */
static void seterr(char *err, size_t errlen, const char *origin, unsigned line, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
static void seterr(char *err, size_t errlen, const char *origin, unsigned line, const char *fmt,
                   ...)
{
    if (!err || errlen == 0)
        return;
    int n = 0;
    if (origin && line)
        n = snprintf(err, errlen, "%s:%u: ", origin, line);
    else if (origin)
        n = snprintf(err, errlen, "%s: ", origin);
    if (n < 0)
        n = 0;
    if ((size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* "16M", "1G", "1536" — the shortest exact way to write a byte count. */
static void fmt_size(char *buf, size_t len, int64_t v)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        int64_t unit = INT64_C(1) << (10 * (3 - i));
        if (v >= unit && v % unit == 0) {
            snprintf(buf, len, "%lld%c", (long long)(v / unit), units[i]);
            return;
        }
    }
    snprintf(buf, len, "%lld", (long long)v);
}

/* What a key accepts, as a phrase: "a whole number from 1 to 128". */
static void describe(const struct key *k, char *buf, size_t len)
{
    char lo[32], hi[32];
    switch (k->type) {
    case T_INT:
        snprintf(buf, len, "a whole number from %lld to %lld", (long long)k->min,
                 (long long)k->max);
        break;
    case T_SIZE:
        fmt_size(lo, sizeof lo, k->min);
        fmt_size(hi, sizeof hi, k->max);
        snprintf(buf, len, "a size from %s to %s (bytes, or a number with a K, M or G suffix)", lo,
                 hi);
        break;
    case T_DURATION:
        snprintf(buf, len,
                 "a duration from %lld to %lld seconds (a number with an optional s, m, h or d "
                 "suffix)",
                 (long long)k->min, (long long)k->max);
        break;
    case T_BOOL:
        snprintf(buf, len, "on or off (or yes/no, true/false, 1/0)");
        break;
    case T_MODE:
        snprintf(buf, len, "an octal file mode from 0000 to %04llo, such as 0660",
                 (unsigned long long)k->max);
        break;
    case T_ENUM:
        snprintf(buf, len, "one of %s", k->choices);
        break;
    case T_STRING:
        snprintf(buf, len, "text");
        break;
    }
}

/* ------------------------------------------------------------------------- */
/* Value parsers */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* Leading decimal digits of *s as an unsigned number; false on none or overflow. */
static bool parse_digits(const char **s, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*p))
        return false;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *s = p;
    *out = v;
    return true;
}

bool cfg_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {
        {"", 0},     {"b", 0},  {"k", 10},  {"kb", 10},  {"kib", 10}, {"m", 20},  {"mb", 20},
        {"mib", 20}, {"g", 30}, {"gb", 30}, {"gib", 30}, {"t", 40},   {"tb", 40}, {"tib", 40},
    };
    uint64_t v;
    if (!s || !parse_digits(&s, &v))
        return false;
    while (is_space(*s))
        s++;
    for (size_t i = 0; i < ARRAY_LEN(units); i++) {
        if (strcasecmp(s, units[i].suffix) != 0)
            continue;
        if (v > (UINT64_MAX >> units[i].shift))
            return false;
        *out = v << units[i].shift;
        return true;
    }
    return false;
}

bool cfg_parse_duration(const char *s, long *out)
{
    uint64_t v;
    if (!s || !parse_digits(&s, &v))
        return false;
    while (is_space(*s))
        s++;
    uint64_t mult;
    switch (tolower((unsigned char)*s)) {
    case '\0':
    case 's':
        mult = 1;
        break;
    case 'm':
        mult = 60;
        break;
    case 'h':
        mult = 3600;
        break;
    case 'd':
        mult = 86400;
        break;
    default:
        return false;
    }
    if (*s && s[1] != '\0')
        return false;
    if (v > (uint64_t)LONG_MAX / mult)
        return false;
    *out = (long)(v * mult);
    return true;
}

bool cfg_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    if (!s)
        return false;
    for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Octal digits only ("0660", "660"), within [0, max]. */
static bool parse_mode(const char *s, int64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '7')
            return false;
        v = v * 8 + (uint64_t)(*s - '0');
        if (v > (uint64_t)max)
            return false;
    }
    *out = v;
    return true;
}

static int parse_sendfile(const char *s)
{
    static const char *const names[] = {"off", "x-accel-redirect", "x-sendfile"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (strcmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

/* ------------------------------------------------------------------------- */
/* String checks: NULL when the (possibly normalised) value is fine. */

static bool has_space_or_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

static const char *check_url(char *v)
{
    static const char *const what = "an http:// or https:// URL";
    size_t skip;
    if (strncasecmp(v, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(v, "https://", 8) == 0)
        skip = 8;
    else
        return what;
    if (v[skip] == '\0' || v[skip] == '/' || has_space_or_control(v))
        return what;
    return NULL;
}

/*
 * The file part of an SQLite URI, as SQLAlchemy reads it: after "sqlite:///"
 * comes the path, so "sqlite:///db/main.db" is the relative path db/main.db
 * and "sqlite:////srv/main.db" the absolute /srv/main.db. "sqlite:main.db" is
 * taken as main.db. A "?query" is not part of the path. NULL when uri is not
 * an SQLite URI naming a file (in-memory databases cannot be shared by workers).
 */
static const char *sqlite_file_part(const char *uri, size_t *len)
{
    if (strncmp(uri, "sqlite:", 7) != 0)
        return NULL;
    const char *p = uri + 7;
    if (strncmp(p, "//", 2) == 0) {
        if (p[2] != '/')
            return NULL; /* sqlite://host/... or sqlite:// (in memory) */
        p += 3;
    }
    size_t n = strcspn(p, "?");
    if (n == 0 || (n == 8 && memcmp(p, ":memory:", 8) == 0))
        return NULL;
    *len = n;
    return p;
}

static const char *check_db_uri(char *v)
{
    size_t n;
    if (sqlite_file_part(v, &n) || strncmp(v, "postgresql://", 13) == 0 ||
        strncmp(v, "postgres://", 11) == 0)
        return NULL;
    return "sqlite:///relative/path.db, sqlite:////absolute/path.db or "
           "postgresql://user:password@host/dbname";
}

static const char *check_dir(char *v)
{
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            return "a directory path";
    size_t n = strlen(v);
    while (n > 1 && v[n - 1] == '/')
        v[--n] = '\0';
    return NULL;
}

/*
 * A URL path prefix: starts with '/', no empty, "." or ".." segments, nothing
 * that would need escaping. Trailing slashes are dropped, so "/" becomes "".
 */
static bool normalise_url_path(char *v)
{
    if (v[0] != '/')
        return false;
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
        v[--n] = '\0';
    if (has_space_or_control(v) || strpbrk(v, "?#%\\\"<>"))
        return false;
    for (const char *seg = v; *seg == '/';) {
        const char *end = strchr(seg + 1, '/');
        size_t len = end ? (size_t)(end - seg - 1) : strlen(seg + 1);
        if (len == 0 || (len == 1 && seg[1] == '.') || (len == 2 && seg[1] == '.' && seg[2] == '.'))
            return false;
        if (!end)
            break;
        seg = end;
    }
    return true;
}

static const char *check_base_path(char *v)
{
    if (*v == '\0' || normalise_url_path(v))
        return NULL;
    return "a URL path such as /backend (starting with /, without spaces, // or . and .. "
           "parts), or / for the site root";
}

static const char *check_prefix(char *v)
{
    if (normalise_url_path(v) && *v)
        return NULL;
    return "an internal location of the web server such as /_s4s_blobs";
}

static bool valid_port(const char *s)
{
    int64_t port;
    return parse_int64(s, 1, 65535, &port);
}

static const char *check_listen(char *v)
{
    static const char *const what =
        "unix:/path/to/socket, host:port or [ipv6-address]:port with a port from 1 to 65535";
    if (strncmp(v, "unix:", 5) == 0) {
        const char *path = v + 5;
        if (*path == '\0' || strpbrk(path, "\t\r\n"))
            return what;
        if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return "a unix socket path of at most 107 bytes (a limit of the kernel)";
        return NULL;
    }
    if (has_space_or_control(v))
        return what;
    if (v[0] == '[') {
        char *close = strchr(v, ']');
        if (!close || close == v + 1 || close[1] != ':')
            return what;
        for (const char *p = v + 1; p < close; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.' && *p != '%')
                return what;
        return valid_port(close + 2) ? NULL : what;
    }
    char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return what;
    for (const char *p = v; p < colon; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_*", *p))
            return what;
    return valid_port(colon + 1) ? NULL : what;
}

static const char *check_owner(char *v)
{
    const char *colon = strchr(v, ':');
    if (has_space_or_control(v) || v[0] == ':' ||
        (colon && (colon[1] == '\0' || strchr(colon + 1, ':'))))
        return "a user name or user:group";
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Storing values */

static void *field(struct config *c, const struct key *k)
{
    return (char *)c + k->offset;
}

/* Store a value already checked to be within the key's range (so >= 0). */
static void store_num(struct config *c, const struct key *k, uint64_t v)
{
    void *p = field(c, k);
    if (k->type == T_BOOL) {
        bool b = v != 0;
        memcpy(p, &b, sizeof b);
    } else if (k->width == sizeof(uint64_t)) {
        uint64_t x = v;
        memcpy(p, &x, sizeof x);
    } else if (k->width == sizeof(uint32_t)) {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof x);
    } else {
        abort(); /* a field width the table does not handle */
    }
}

/* A numeric field as a signed number (a uint64_t beyond INT64_MAX reads negative). */
static int64_t load_num(const struct config *c, const struct key *k)
{
    const char *p = (const char *)c + k->offset;
    if (k->type == T_BOOL) {
        bool b;
        memcpy(&b, p, sizeof b);
        return b;
    }
    if (k->width == sizeof(int64_t)) {
        int64_t x;
        memcpy(&x, p, sizeof x);
        return x;
    }
    int32_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

/* Set k from value; origin/line say where it came from, for messages. */
static int apply(struct config *c, const struct key *k, const char *value, const char *origin,
                 unsigned line, char *err, size_t errlen)
{
    if (*value == '\0') /* empty: the default, or unset */
        value = k->def;

    if (k->type == T_STRING) {
        char **slot = field(c, k);
        char *v = value ? xstrdup(value) : NULL;
        const char *why = v && k->check ? k->check(v) : NULL;
        if (why) {
            seterr(err, errlen, origin, line, "%s: expected %s, got '%.*s'", k->name, why, ECHO_MAX,
                   value);
            free(v);
            return -1;
        }
        free(*slot);
        *slot = v;
        return 0;
    }

    /* Numbers: surrounding blanks are forgiven. */
    size_t n = strlen(value);
    trim(&value, &n);
    char text[64];
    bool good = n < sizeof text;
    uint64_t v = 0;
    if (good) {
        memcpy(text, value, n);
        text[n] = '\0';
        switch (k->type) {
        case T_INT: {
            int64_t x = 0;
            good = parse_int64(text, k->min, k->max, &x);
            v = (uint64_t)x;
            break;
        }
        case T_SIZE:
            good = cfg_parse_size(text, &v);
            break;
        case T_DURATION: {
            long x = 0;
            good = cfg_parse_duration(text, &x);
            v = (uint64_t)x;
            break;
        }
        case T_BOOL: {
            bool b = false;
            good = cfg_parse_bool(text, &b);
            v = b;
            break;
        }
        case T_MODE:
            good = parse_mode(text, k->max, &v);
            break;
        case T_ENUM: {
            for (char *p = text; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            int x = k->parse(text);
            good = x >= 0;
            v = (uint64_t)x;
            break;
        }
        case T_STRING:
            break;
        }
        good = good && v >= (uint64_t)k->min && v <= (uint64_t)k->max;
    }
    if (!good) {
        char want[160];
        describe(k, want, sizeof want);
        seterr(err, errlen, origin, line, "%s: expected %s, got '%.*s'", k->name, want,
               (int)(n < ECHO_MAX ? n : ECHO_MAX), value);
        return -1;
    }
    store_num(c, k, v);
    return 0;
}

static bool is_ignored(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(ignored_keys); i++)
        if (strcmp(ignored_keys[i], name) == 0)
            return true;
    return false;
}

static int set_key(struct config *c, const char *name, const char *value, const char *origin,
                   unsigned line, char *err, size_t errlen)
{
    const struct key *k = find_key(name);
    if (k)
        return apply(c, k, value, origin, line, err, errlen);
    if (is_ignored(name)) {
        if (origin && line)
            log_warnx("%s:%u: %s is a setting of the Flask backend that this server does not "
                      "use; ignored",
                      origin, line, name);
        else
            log_warnx("%s is a setting of the Flask backend that this server does not use; "
                      "ignored",
                      name);
        return 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (strcasecmp(keys[i].name, name) == 0) {
            seterr(err, errlen, origin, line, "unknown key %s (key names are upper case: %s)", name,
                   keys[i].name);
            return -1;
        }
    }
    seterr(err, errlen, origin, line, "unknown key %s", name);
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Public interface */

void cfg_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        char err[256];
        if (keys[i].def && apply(c, &keys[i], keys[i].def, "default", 0, err, sizeof err) < 0) {
            fprintf(stderr, "s4s: bad built-in default: %s\n", err);
            abort();
        }
    }
}

void cfg_free(struct config *c)
{
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        if (keys[i].type == T_STRING) {
            char **slot = field(c, &keys[i]);
            free(*slot);
        }
    }
    memset(c, 0, sizeof *c);
}

int cfg_set(struct config *c, const char *key, const char *value, char *err, size_t errlen)
{
    return set_key(c, key, value ? value : "", NULL, 0, err, errlen);
}

static bool valid_key_name(const char *s)
{
    if (!isalpha((unsigned char)*s) && *s != '_')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/*
 * Split one line (modified in place) into key and value. 0: nothing on it;
 * 1: a setting; -1: a syntax error, described by *why.
 */
static int parse_line(char *line, char **key, char **value, const char **why)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    char *p = line;
    while (is_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    if (strncmp(p, "export", 6) == 0 && is_space(p[6])) {
        p += 6;
        while (is_space(*p))
            p++;
    }
    char *eq = strchr(p, '=');
    if (!eq) {
        *why = "expected KEY=VALUE, found a line without '='";
        return -1;
    }
    char *end = eq;
    while (end > p && is_space(end[-1]))
        end--;
    *end = '\0';
    if (!valid_key_name(p)) {
        *why = *p ? "a key name may only hold letters, digits and _" : "a line without a key";
        return -1;
    }
    *key = p;

    char *v = eq + 1;
    while (is_space(*v))
        v++;
    if (*v == '"' || *v == '\'') {
        char q = *v;
        char *r = v + 1, *w = v;
        for (;;) {
            if (*r == '\0') {
                *why = q == '"' ? "missing closing \" quote" : "missing closing ' quote";
                return -1;
            }
            if (*r == q) {
                r++;
                break;
            }
            if (q == '"' && r[0] == '\\' && (r[1] == '"' || r[1] == '\\')) {
                *w++ = r[1];
                r += 2;
            } else {
                *w++ = *r++;
            }
        }
        while (is_space(*r))
            r++;
        if (*r != '\0' && *r != '#') {
            *why = "unexpected text after the closing quote (put a # before a comment)";
            return -1;
        }
        *w = '\0';
    } else {
        /* A comment starts at a '#' after a blank; "abc#def" is a value. */
        for (char *s = v; *s; s++) {
            if (*s == '#' && is_space(s[-1])) {
                *s = '\0';
                break;
            }
        }
        size_t len = strlen(v);
        while (len && is_space(v[len - 1]))
            v[--len] = '\0';
    }
    *value = v;
    return 1;
}

static int load_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        seterr(err, errlen, NULL, 0, "cannot open the configuration file %s: %s", path,
               strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) != -1) {
        lineno++;
        char *text = line;
        if ((size_t)len != strlen(line)) {
            seterr(err, errlen, path, lineno, "the line holds a NUL byte; is this a text file?");
            rc = -1;
            break;
        }
        if (lineno == 1 && strncmp(text, "\xEF\xBB\xBF", 3) == 0)
            text += 3; /* a UTF-8 byte order mark left by some Windows editors */
        char *key, *value;
        const char *why = NULL;
        switch (parse_line(text, &key, &value, &why)) {
        case 0:
            break;
        case 1:
            rc = set_key(c, key, value, path, lineno, err, errlen);
            break;
        default:
            seterr(err, errlen, path, lineno, "%s", why);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        seterr(err, errlen, NULL, 0, "cannot read the configuration file %s: %s", path,
               strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

/* The value of name in envp ("KEY=VALUE" strings), the first one as getenv does. */
static const char *env_lookup(char *const envp[], const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i] + n + 1;
    return NULL;
}

int cfg_load(struct config *c, const char *path, char *const envp[], char *err, size_t errlen)
{
    cfg_defaults(c);
    if (path && load_file(c, path, err, errlen) < 0)
        goto fail;
    if (envp) {
        /* Only this server's keys: the environment is full of unrelated variables
         * (and DEBUG there may well belong to something else). */
        for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
            const char *v = env_lookup(envp, keys[i].name);
            if (v && apply(c, &keys[i], v, "environment", 0, err, errlen) < 0)
                goto fail;
        }
    }
    return 0;
fail:
    cfg_free(c);
    return -1;
}

int cfg_validate(const struct config *c, char *err, size_t errlen)
{
    /* Every number within its range (flags may have set fields directly). */
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const struct key *k = &keys[i];
        if (k->type == T_STRING)
            continue;
        int64_t v = load_num(c, k);
        if (v < k->min || v > k->max) {
            char want[160];
            describe(k, want, sizeof want);
            seterr(err, errlen, NULL, 0, "%s is %lld; expected %s", k->name, (long long)v, want);
            return -1;
        }
    }
    /* Every string still in its form. */
    for (size_t i = 0; i < ARRAY_LEN(keys); i++) {
        const struct key *k = &keys[i];
        if (k->type != T_STRING || !k->check)
            continue;
        const char *s = *(char *const *)((const char *)c + k->offset);
        if (!s || !*s)
            continue;
        char *copy = xstrdup(s);
        const char *why = k->check(copy);
        free(copy);
        if (why) {
            seterr(err, errlen, NULL, 0, "%s: expected %s, got '%.*s'", k->name, why, ECHO_MAX, s);
            return -1;
        }
    }
    if (!c->data_dir || !*c->data_dir) {
        seterr(err, errlen, NULL, 0, "DATA_DIR must name a directory");
        return -1;
    }
    if (!c->base_path) {
        seterr(err, errlen, NULL, 0, "BASE_PATH is not set");
        return -1;
    }
    if (c->sendfile != SENDFILE_OFF && (!c->sendfile_prefix || c->sendfile_prefix[0] != '/')) {
        seterr(err, errlen, NULL, 0,
               "SENDFILE is on, so SENDFILE_PREFIX must name the web server's internal "
               "location for stored files, such as /_s4s_blobs");
        return -1;
    }
    /* Logging in cannot work with half an identity provider. */
    if (c->oauth_client_id && *c->oauth_client_id) {
        static const struct {
            const char *name;
            size_t offset;
        } need[] = {
            {"OAUTH_AUTHORIZE_URL", offsetof(struct config, oauth_authorize_url)},
            {"OAUTH_TOKEN_URL", offsetof(struct config, oauth_token_url)},
            {"OAUTH_USERINFO_URL", offsetof(struct config, oauth_userinfo_url)},
            {"OAUTH_REDIRECT_URI", offsetof(struct config, oauth_redirect_uri)},
        };
        for (size_t i = 0; i < ARRAY_LEN(need); i++) {
            const char *s = *(char *const *)((const char *)c + need[i].offset);
            if (!s || !*s) {
                seterr(err, errlen, NULL, 0,
                       "OAUTH_CLIENT_ID is set but %s is not; logging in needs both", need[i].name);
                return -1;
            }
        }
    }
    return 0;
}

char *cfg_sqlite_path(const struct config *c)
{
    const char *uri = c->database_uri;
    if (!uri || !*uri) {
        const char *dir = c->data_dir && *c->data_dir ? c->data_dir : ".";
        size_t n = strlen(dir);
        return xasprintf("%s%smain.db", dir, dir[n - 1] == '/' ? "" : "/");
    }
    size_t n;
    const char *p = sqlite_file_part(uri, &n);
    return p ? xstrndup(p, n) : NULL;
}
