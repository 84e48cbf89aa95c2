/*
 * db_sqlite.c — the SQLite driver behind db.h (see db_driver.h): opening a
 * connection with the durability and locking settings DESIGN.md fixes (WAL,
 * synchronous=FULL, foreign keys, busy_timeout), statements, result-code
 * mapping, and WAL size and checkpointing. The statement cache, transaction
 * retries and migrations are db.c's.
 *
 * One connection per process, opened after fork: the connection is opened
 * with SQLITE_OPEN_NOMUTEX and never shared between threads.
 */
#include "db.h"
#include "db_driver.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A checkpoint is housekeeping: never keep an idle worker waiting long for readers. */
#define DB_CHECKPOINT_WAIT_MS 100

struct lite {
    sqlite3 *h;
    char *path;     /* database file, NULL for ":memory:" */
    char *wal_path; /* path + "-wal", NULL for ":memory:" */
    int busy_timeout_ms;
};

#define LITE(db) ((struct lite *)(db)->impl)
#define STMT(st) ((sqlite3_stmt *)(st)->impl)

/* ---- result codes ------------------------------------------------------- */

/*
 * Map an SQLite result code (extended codes enabled) to db.h's vocabulary.
 * BUSY and LOCKED in all their extended forms (SQLITE_BUSY_SNAPSHOT when a
 * read transaction's snapshot is stale, SQLITE_BUSY_RECOVERY, …) mean "try
 * the whole transaction again".
 */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
        return DB_OK;
    case SQLITE_ROW:
        return DB_ROW;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return DB_BUSY;
    case SQLITE_CONSTRAINT:
        return DB_CONSTRAINT;
    case SQLITE_FULL: /* ENOSPC writing the database or its WAL */
        return DB_FULL;
    default:
        return DB_ERROR;
    }
}

/* ---- opening ------------------------------------------------------------ */

/*
 * The file path inside a URI, allocated; NULL for other schemes. The same
 * reading as config.c's and SQLAlchemy's (the upstream .env uses its URIs):
 * "sqlite:///rel.db" is relative, "sqlite:////abs.db" absolute, "sqlite:rel.db"
 * relative; a bare path is taken as it is; "?options" are dropped.
 */
static char *uri_to_path(const char *uri)
{
    if (strncmp(uri, "sqlite:", 7) == 0) {
        const char *p = uri + 7;
        if (strncmp(p, "//", 2) == 0) {
            if (p[2] != '/')
                return NULL; /* sqlite://host/…: no such thing for a file */
            p += 3;
        }
        return xstrndup(p, strcspn(p, "?"));
    }
    if (strstr(uri, "://") != NULL)
        return NULL;
    return xstrdup(uri);
}

/* Run one pragma and return its first column as text in out (may be empty). */
static int pragma_text(sqlite3 *h, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    out[0] = '\0';
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, outlen, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int configure_connection(struct lite *db, const struct db_options *opt, char *err,
                                size_t errlen)
{
    char val[32];
    int rc;

    /* Set before anything else: switching to WAL itself may have to wait for a lock. */
    sqlite3_busy_timeout(db->h, db->busy_timeout_ms);

    rc = pragma_text(db->h, "PRAGMA journal_mode=WAL", val, sizeof val);
    if (rc != SQLITE_OK)
        goto fail;
    /* WAL lets readers proceed during a write; without it every worker serialises. */
    if (db->path && strcmp(val, "wal") != 0) {
        snprintf(err, errlen, "%s: cannot enable WAL mode (journal_mode is '%s')", db->path, val);
        return -1;
    }
    /* FULL: a committed write survives power loss (DESIGN.md). NORMAL only on request. */
    rc = pragma_text(
        db->h, opt->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", val,
        sizeof val);
    if (rc != SQLITE_OK)
        goto fail;
    rc = pragma_text(db->h, "PRAGMA foreign_keys=ON", val, sizeof val);
    if (rc != SQLITE_OK)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "%s: %s", db->path ? db->path : ":memory:", sqlite3_errmsg(db->h));
    return -1;
}

static void lite_close(void *impl)
{
    struct lite *db = impl;
    if (!db)
        return;
    /* close_v2: never leaves the handle half-open if something still holds a statement. */
    if (db->h)
        sqlite3_close_v2(db->h);
    free(db->path);
    free(db->wal_path);
    free(db);
}

static int lite_open(const char *uri, const struct db_options *opt, void **out, char *err,
                     size_t errlen)
{
    struct lite *db = NULL;
    char *path = uri_to_path(uri);
    struct stat stt;

    if (!path || !*path) {
        snprintf(err, errlen, "unsupported database URI '%s'", uri);
        free(path);
        return DB_ERROR;
    }
    bool memory = strcmp(path, ":memory:") == 0;
    if (!memory) {
        /* SQLite would report a bare "unable to open database file": say why. */
        const char *slash = strrchr(path, '/');
        char *dir =
            slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
        char why[128] = "";
        if (stat(dir, &stt) < 0)
            snprintf(why, sizeof why, "%s",
                     errno == ENOENT || errno == ENOTDIR ? "does not exist" : strerror(errno));
        else if (!S_ISDIR(stt.st_mode))
            snprintf(why, sizeof why, "is not a directory");
        if (why[0]) {
            snprintf(err, errlen, "%s: directory %s: %s", path, dir, why);
            free(dir);
            free(path);
            return DB_ERROR;
        }
        free(dir);
    }

    db = xcalloc(1, sizeof *db);
    db->busy_timeout_ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 0;
    int rc = sqlite3_open_v2(
        path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", path, db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
        goto fail;
    }
    /* Extended codes tell SQLITE_BUSY_SNAPSHOT and friends apart in the logs. */
    sqlite3_extended_result_codes(db->h, 1);
    if (!memory) {
        const char *full = sqlite3_db_filename(db->h, "main");
        db->path = xstrdup(full && *full ? full : path);
        db->wal_path = xasprintf("%s-wal", db->path);
    }
    if (configure_connection(db, opt, err, errlen) < 0)
        goto fail;
    free(path);
    *out = db;
    return DB_OK;
fail:
    free(path);
    lite_close(db);
    return DB_ERROR;
}

/* ---- statements ----------------------------------------------------------- */

static void *lite_prepare(struct db *dbh, const char *sql)
{
    struct lite *db = LITE(dbh);
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    /* PERSISTENT: this statement lives as long as the connection; SQLite allocates
     * it outside the lookaside pool it keeps for short-lived ones. */
    int rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK || !st) {
        if (rc == SQLITE_OK)
            log_errx("db: empty statement: \"%s\"", sql);
        else
            log_errx("db: prepare failed: %s: \"%s\"", sqlite3_errmsg(db->h), sql);
        sqlite3_finalize(st);
        return NULL;
    }
    /* One statement per db_prepare: anything after the first would be silently
     * ignored. The rest may hold only what compiles to nothing (space, ;, comments). */
    if (tail && *tail) {
        sqlite3_stmt *extra = NULL;
        int erc = sqlite3_prepare_v2(db->h, tail, -1, &extra, NULL);
        sqlite3_finalize(extra);
        if (erc != SQLITE_OK || extra) {
            log_errx("db: more than one statement: \"%s\"", sql);
            sqlite3_finalize(st);
            return NULL;
        }
    }
    return st;
}

static void lite_finalize(void *stmt)
{
    sqlite3_finalize(stmt);
}

static void lite_reset(struct db_stmt *st)
{
    sqlite3_reset(STMT(st));
    sqlite3_clear_bindings(STMT(st));
}

static bool lite_stmt_busy(struct db_stmt *st)
{
    return sqlite3_stmt_busy(STMT(st)) != 0;
}

static int bind_result(struct db_stmt *st, int idx, int rc)
{
    if (rc == SQLITE_OK)
        return DB_OK;
    log_errx("db: bind #%d failed: %s: \"%s\"", idx, sqlite3_errstr(rc), st->sql);
    return DB_ERROR;
}

static int lite_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
    return bind_result(st, idx, sqlite3_bind_int64(STMT(st), idx, (sqlite3_int64)v));
}

static int lite_bind_textn(struct db_stmt *st, int idx, const char *s, size_t len)
{
    /* TRANSIENT: SQLite copies, so the caller's buffer may go away before the step. */
    return bind_result(
        st, idx,
        sqlite3_bind_text64(STMT(st), idx, s, (sqlite3_uint64)len, SQLITE_TRANSIENT, SQLITE_UTF8));
}

static int lite_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
    /* A NULL pointer would bind SQL NULL; an empty blob is still a value. */
    if (!p || len == 0)
        return bind_result(st, idx, sqlite3_bind_zeroblob(STMT(st), idx, 0));
    return bind_result(
        st, idx, sqlite3_bind_blob64(STMT(st), idx, p, (sqlite3_uint64)len, SQLITE_TRANSIENT));
}

static int lite_bind_null(struct db_stmt *st, int idx)
{
    return bind_result(st, idx, sqlite3_bind_null(STMT(st), idx));
}

static int lite_step(struct db_stmt *st)
{
    sqlite3_stmt *s = STMT(st);
    int rc = sqlite3_step(s);
    int mapped = map_rc(rc);

    switch (mapped) {
    case DB_ROW:
    case DB_OK:
        return mapped;
    case DB_BUSY:
        log_debug("db: %s: \"%s\"", sqlite3_errstr(rc), st->sql);
        break;
    case DB_CONSTRAINT:
        /* An answer (duplicate key, missing parent row), not a fault: the caller decides. */
        log_debug("db: %s: \"%s\"", sqlite3_errmsg(sqlite3_db_handle(s)), st->sql);
        break;
    default:
        log_errx("db: step failed (%d): %s: \"%s\"", sqlite3_extended_errcode(sqlite3_db_handle(s)),
                 sqlite3_errmsg(sqlite3_db_handle(s)), st->sql);
        break;
    }
    /* A failed statement must not keep its read snapshot or locks open. */
    sqlite3_reset(s);
    return mapped;
}

static int lite_column_count(struct db_stmt *st)
{
    return sqlite3_column_count(STMT(st));
}

static bool lite_column_is_null(struct db_stmt *st, int col)
{
    return sqlite3_column_type(STMT(st), col) == SQLITE_NULL;
}

static int64_t lite_column_int64(struct db_stmt *st, int col)
{
    return (int64_t)sqlite3_column_int64(STMT(st), col);
}

static const char *lite_column_text(struct db_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(STMT(st), col);
    return t ? (const char *)t : "";
}

static size_t lite_column_bytes(struct db_stmt *st, int col)
{
    /* Called after db_column_text this is the byte length of that text. */
    int n = sqlite3_column_bytes(STMT(st), col);
    return n > 0 ? (size_t)n : 0;
}

static const char *lite_column_name(struct db_stmt *st, int col)
{
    const char *n = sqlite3_column_name(STMT(st), col);
    return n ? n : "";
}

static int64_t lite_changes(struct db *db)
{
#if SQLITE_VERSION_NUMBER >= 3037000
    return (int64_t)sqlite3_changes64(LITE(db)->h);
#else
    return (int64_t)sqlite3_changes(LITE(db)->h);
#endif
}

static int lite_exec(struct db *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = map_rc(sqlite3_exec(LITE(db)->h, sql, NULL, NULL, &msg));
    if (rc != DB_OK && err && errlen)
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(LITE(db)->h));
    sqlite3_free(msg);
    return rc;
}

static bool lite_in_transaction(struct db *db)
{
    return !sqlite3_get_autocommit(LITE(db)->h);
}

static const char *lite_errmsg(struct db *db)
{
    return sqlite3_errmsg(LITE(db)->h);
}

static int lite_table_exists(struct db *db, const char *table, bool *exists)
{
    return db_row_exists(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", table,
                         NULL, exists);
}

/* Compared case-insensitively, as SQLite compares names. */
static int lite_column_exists(struct db *db, const char *table, const char *column, bool *exists)
{
    return db_row_exists(db, "SELECT 1 FROM pragma_table_info(?) WHERE lower(name) = lower(?)",
                         table, column, exists);
}

/* ---- WAL ----------------------------------------------------------------- */

static int64_t lite_wal_size(struct db *dbh)
{
    struct lite *db = LITE(dbh);
    struct stat st;
    if (!db->wal_path)
        return -1;
    if (stat(db->wal_path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    return (int64_t)st.st_size;
}

static void lite_set_lock_wait(struct db *dbh, int ms)
{
    sqlite3_busy_timeout(LITE(dbh)->h, ms);
}

static int lite_checkpoint(struct db *dbh)
{
    struct lite *db = LITE(dbh);
    int log_frames = 0, done_frames = 0;
    /* The same as PRAGMA wal_checkpoint(TRUNCATE). TRUNCATE waits (through the
     * busy handler) for readers to leave the WAL; we are idle housekeeping, so
     * wait briefly and try again next time rather than stall the worker. */
    int wait =
        db->busy_timeout_ms < DB_CHECKPOINT_WAIT_MS ? db->busy_timeout_ms : DB_CHECKPOINT_WAIT_MS;
    sqlite3_busy_timeout(db->h, wait);
    int rc = sqlite3_wal_checkpoint_v2(db->h, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log_frames,
                                       &done_frames);
    sqlite3_busy_timeout(db->h, db->busy_timeout_ms);
    int mapped = map_rc(rc);
    if (mapped == DB_ERROR)
        log_errx("db: checkpoint failed: %s", sqlite3_errmsg(db->h));
    return mapped;
}

/* The main file only: the WAL is reported apart (lite_wal_size). */
static int64_t lite_size_bytes(struct db *dbh)
{
    struct lite *db = LITE(dbh);
    struct stat st;
    if (!db->path || stat(db->path, &st) < 0)
        return -1;
    return (int64_t)st.st_size;
}

/* An INTEGER PRIMARY KEY's next rowid is the largest present plus one already. */
static int lite_sync_identity(struct db *db, const char *table, const char *column)
{
    (void)db;
    (void)table;
    (void)column;
    return DB_OK;
}

const struct db_driver db_sqlite_driver = {
    .name = "sqlite",
    .migrations = s4s_migrations,
    .migrations_count = &s4s_migrations_count,
    /* IMMEDIATE takes the write lock now: a deferred transaction that later
     * upgrades can fail with BUSY_SNAPSHOT after doing all its work. */
    .begin_write = "BEGIN IMMEDIATE",
    .begin_read = "BEGIN",
    .integrity_sql = "PRAGMA integrity_check",
    .foreign_key_sql = "PRAGMA foreign_key_check",
    .open = lite_open,
    .close = lite_close,
    .prepare = lite_prepare,
    .finalize = lite_finalize,
    .reset = lite_reset,
    .stmt_busy = lite_stmt_busy,
    .set_lock_wait = lite_set_lock_wait,
    .bind_int64 = lite_bind_int64,
    .bind_textn = lite_bind_textn,
    .bind_blob = lite_bind_blob,
    .bind_null = lite_bind_null,
    .step = lite_step,
    .column_count = lite_column_count,
    .column_is_null = lite_column_is_null,
    .column_int64 = lite_column_int64,
    .column_text = lite_column_text,
    .column_bytes = lite_column_bytes,
    .column_name = lite_column_name,
    .changes = lite_changes,
    .exec = lite_exec,
    .in_transaction = lite_in_transaction,
    .table_exists = lite_table_exists,
    .column_exists = lite_column_exists,
    .wal_size = lite_wal_size,
    .checkpoint = lite_checkpoint,
    .size_bytes = lite_size_bytes,
    .sync_identity = lite_sync_identity,
    .errmsg = lite_errmsg,
};
