/*
 * config.h — the server's settings: a KEY=VALUE file, overridden by the
 * environment, overridden by command-line flags (DESIGN.md "Configuration").
 * Key names follow the Python backend's .env so an existing deployment's
 * file works as it is.
 */
#ifndef S4S_CONFIG_H
#define S4S_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sendfile_mode { SENDFILE_OFF = 0, SENDFILE_X_ACCEL, SENDFILE_X_SENDFILE };

struct config {
    /* Upstream (.env) keys */
    char *database_uri; /* DATABASE_URI; NULL → sqlite:///DATA_DIR/main.db */
    char *frontend_url; /* FRONTEND_URL */
    char *oauth_client_id, *oauth_client_secret;
    char *oauth_authorize_url, *oauth_token_url, *oauth_userinfo_url, *oauth_redirect_uri;
    char *role_admin, *role_teacher; /* group external ids */
    char *secret_key;
    /* This server's own */
    char *data_dir;              /* DATA_DIR, default "./data" */
    char *base_path;             /* BASE_PATH, default "/backend", no trailing slash */
    int workers;                 /* WORKERS, default 4, 1..128 */
    char *listen;                /* LISTEN: unix:/path or host:port; NULL → fd 0 if a socket */
    char *listen_owner;          /* LISTEN_OWNER user[:group] for a unix socket, or NULL */
    unsigned listen_mode;        /* LISTEN_MODE octal, default 0660 */
    int listen_backlog;          /* LISTEN_BACKLOG, default 1024 */
    long max_requests;           /* MAX_REQUESTS, 0 = never recycle; default 10000 */
    int request_timeout;         /* REQUEST_TIMEOUT seconds, default 60; 0 = none */
    int stop_timeout;            /* STOP_TIMEOUT seconds a worker gets to finish, default 30 */
    uint64_t max_content_length; /* MAX_CONTENT_LENGTH bytes, default 16M */
    long session_ttl;            /* SESSION_TTL seconds, default 43200 */
    bool public_thumbnails;      /* PUBLIC_THUMBNAILS, default true */
    char *status_token;          /* STATUS_TOKEN or NULL */
    enum sendfile_mode sendfile; /* SENDFILE off|x-accel-redirect|x-sendfile */
    char *sendfile_prefix; /* SENDFILE_PREFIX: internal location for blobs, default "/_s4s_blobs" */
    bool cors;             /* CORS, default on */
    int log_level;         /* LOG_LEVEL error|warn|info|debug, default info */
    char *log_file;        /* LOG_FILE or NULL (stderr) */
    int version_retention; /* VERSION_RETENTION, default 50 */
    char *user;            /* RUN_AS (also -u): drop privileges after bind */
    int db_busy_timeout_ms; /* DB_BUSY_TIMEOUT milliseconds, default 5000 */
};

/* Defaults for every key. */
void cfg_defaults(struct config *c);
void cfg_free(struct config *c);

/*
 * Set one key from text. Returns 0, or -1 with a message in err naming the key
 * and what is wrong. Keys of the Flask backend that mean nothing here
 * (OAUTH_JWKS_URI, DEBUG, FLASK_ENV, SQLALCHEMY_TRACK_MODIFICATIONS) are
 * accepted with a warning logged; any other unknown key is an error.
 */
int cfg_set(struct config *c, const char *key, const char *value, char *err, size_t errlen);

/*
 * Load: defaults, then the file (if path is non-NULL; a missing file is an
 * error), then every known key present in envp. Lines: KEY=VALUE, optional
 * "export " prefix, # comments, blank lines, values optionally in single or
 * double quotes. Error messages carry "file:line".
 */
int cfg_load(struct config *c, const char *path, char *const envp[], char *err, size_t errlen);

/* Cross-key checks after flags are applied (e.g. workers range). */
int cfg_validate(const struct config *c, char *err, size_t errlen);

/* Sizes: bytes with optional K/M/G (powers of 1024). Durations: seconds with optional s/m/h/d. */
bool cfg_parse_size(const char *s, uint64_t *out);
bool cfg_parse_duration(const char *s, long *out);
bool cfg_parse_bool(const char *s, bool *out); /* 1/0 true/false yes/no on/off */

/* The database file path when DATABASE_URI is sqlite (or unset); NULL otherwise. Caller frees. */
char *cfg_sqlite_path(const struct config *c);

#endif
