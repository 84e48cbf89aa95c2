/*
 * db_sqlite.c — the SQLite implementation of the driver interface in db.h:
 * opening a connection with the durability and locking settings DESIGN.md
 * fixes (WAL, synchronous=FULL, foreign keys, busy_timeout), the per-connection
 * prepared-statement cache, result-code mapping, whole-transaction retry on
 * SQLITE_BUSY, WAL size and checkpointing, and the migration runner that
 * applies the SQL files embedded from sql/ (migrations.h).
 *
 * One connection per process, opened after fork: the connection is opened
 * with SQLITE_OPEN_NOMUTEX and never shared between threads.
 */
#include "db.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Whole-transaction retries on SQLITE_BUSY before giving up (DESIGN.md: bounded). */
#define DB_TX_MAX_RETRIES 20
/* Upper bound of one randomized backoff sleep between retries. */
#define DB_TX_MAX_BACKOFF_MS 20
/* The statement cache starts with this many slots (a power of two) and doubles. */
#define DB_CACHE_INITIAL 128
/* A checkpoint is housekeeping: never keep an idle worker waiting long for readers. */
#define DB_CHECKPOINT_WAIT_MS 100

/*
 * A cached statement. The cache owns it for the connection's lifetime;
 * handlers only borrow it between db_prepare and their last db_step.
 */
struct db_stmt {
    sqlite3_stmt *stmt;
    uint64_t hash;       /* FNV-1a of the SQL text */
    const char *key_ptr; /* the caller's pointer last seen: skips strcmp for literals */
    char *sql;           /* our copy of the text: the key */
    uint64_t tx_epoch;   /* the db_transaction attempt it was last handed out in, or 0 */
};

struct db {
    sqlite3 *h;
    char *path;     /* database file, NULL for ":memory:" */
    char *wal_path; /* path + "-wal", NULL for ":memory:" */
    int busy_timeout_ms;
    uint64_t *busy_retry_counter;
    uint64_t rng;      /* xorshift state for retry jitter: no global rand() state touched */
    bool in_tx;        /* inside db_transaction's fn */
    uint64_t tx_epoch; /* numbers db_transaction attempts (see reset_tx_statements) */
    /* Open-addressing hash table (linear probing) of statements, keyed by SQL text. */
    struct db_stmt **slots;
    size_t cap; /* power of two */
    size_t used;
};

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

static int configure_connection(struct db *db, const struct db_options *opt, char *err,
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

int db_open(const char *uri, const struct db_options *opt, struct db **out, char *err,
            size_t errlen)
{
    static const struct db_options defaults = {5000, true, NULL};
    struct db *db = NULL;
    char *path = NULL;
    char *dir = NULL;
    struct stat stt;

    *out = NULL;
    if (!opt)
        opt = &defaults;
    if (!uri || !*uri) {
        snprintf(err, errlen, "no database given");
        return DB_ERROR;
    }
    if (strncmp(uri, "postgres", 8) == 0) {
        snprintf(err, errlen, "PostgreSQL is not supported yet");
        return DB_ERROR;
    }
    path = uri_to_path(uri);
    if (!path || !*path) {
        snprintf(err, errlen, "unsupported database URI '%s'", uri);
        free(path);
        return DB_ERROR;
    }

    bool memory = strcmp(path, ":memory:") == 0;
    if (!memory) {
        /* SQLite would report a bare "unable to open database file": say why. */
        const char *slash = strrchr(path, '/');
        dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
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
    db->busy_retry_counter = opt->busy_retry_counter;
    db->cap = DB_CACHE_INITIAL;
    db->slots = xcalloc(db->cap, sizeof *db->slots);
    {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        db->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
        if (db->rng == 0)
            db->rng = 0x9e3779b97f4a7c15ULL;
    }

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
    db_close(db);
    return DB_ERROR;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->cap; i++) {
        struct db_stmt *s = db->slots[i];
        if (s) {
            sqlite3_finalize(s->stmt);
            free(s->sql);
            free(s);
        }
    }
    free(db->slots);
    /* close_v2: never leaves the handle half-open if something still holds a statement. */
    if (db->h)
        sqlite3_close_v2(db->h);
    free(db->path);
    free(db->wal_path);
    free(db);
}

/* ---- statement cache ---------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Slot holding sql, or the empty slot where it belongs. */
static size_t cache_find(const struct db *db, const char *sql, uint64_t hash)
{
    size_t mask = db->cap - 1;
    size_t i = (size_t)hash & mask;
    for (;;) {
        const struct db_stmt *s = db->slots[i];
        if (!s)
            return i;
        if (s->hash == hash && (s->key_ptr == sql || strcmp(s->sql, sql) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

static void cache_grow(struct db *db)
{
    struct db_stmt **old = db->slots;
    size_t oldcap = db->cap;
    db->cap *= 2;
    db->slots = xcalloc(db->cap, sizeof *db->slots);
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i])
            continue;
        size_t j = (size_t)old[i]->hash & (db->cap - 1);
        while (db->slots[j])
            j = (j + 1) & (db->cap - 1);
        db->slots[j] = old[i];
    }
    free(old);
}

struct db_stmt *db_prepare(struct db *db, const char *sql)
{
    uint64_t hash = fnv1a(sql);
    size_t i = cache_find(db, sql, hash);
    struct db_stmt *s = db->slots[i];

    if (s) {
        /* A handler may have left it mid-rows: start clean every time. */
        sqlite3_reset(s->stmt);
        sqlite3_clear_bindings(s->stmt);
        s->key_ptr = sql;
        s->tx_epoch = db->in_tx ? db->tx_epoch : 0;
        return s;
    }

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
    s = xcalloc(1, sizeof *s);
    s->stmt = st;
    s->hash = hash;
    s->key_ptr = sql;
    s->sql = xstrdup(sql);
    s->tx_epoch = db->in_tx ? db->tx_epoch : 0;
    db->slots[i] = s;
    /* Keep the load at or below one half so probes stay short. */
    if (++db->used * 2 > db->cap)
        cache_grow(db);
    return s;
}

void db_reset(struct db_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st->stmt);
    sqlite3_clear_bindings(st->stmt);
}

/* ---- binding and stepping ----------------------------------------------- */

static int bind_result(struct db_stmt *st, int idx, int rc)
{
    if (rc == SQLITE_OK)
        return DB_OK;
    log_errx("db: bind #%d failed: %s: \"%s\"", idx, sqlite3_errstr(rc), st->sql);
    return DB_ERROR;
}

int db_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
    return bind_result(st, idx, sqlite3_bind_int64(st->stmt, idx, (sqlite3_int64)v));
}

int db_bind_text(struct db_stmt *st, int idx, const char *s)
{
    if (!s)
        return db_bind_null(st, idx);
    return db_bind_textn(st, idx, s, strlen(s));
}

int db_bind_textn(struct db_stmt *st, int idx, const char *s, size_t len)
{
    if (!s)
        return db_bind_null(st, idx);
    /* TRANSIENT: SQLite copies, so the caller's buffer may go away before the step. */
    return bind_result(
        st, idx,
        sqlite3_bind_text64(st->stmt, idx, s, (sqlite3_uint64)len, SQLITE_TRANSIENT, SQLITE_UTF8));
}

int db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
    /* A NULL pointer would bind SQL NULL; an empty blob is still a value. */
    if (!p || len == 0)
        return bind_result(st, idx, sqlite3_bind_zeroblob(st->stmt, idx, 0));
    return bind_result(
        st, idx, sqlite3_bind_blob64(st->stmt, idx, p, (sqlite3_uint64)len, SQLITE_TRANSIENT));
}

int db_bind_null(struct db_stmt *st, int idx)
{
    return bind_result(st, idx, sqlite3_bind_null(st->stmt, idx));
}

int db_step(struct db_stmt *st)
{
    int rc = sqlite3_step(st->stmt);
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
        log_debug("db: %s: \"%s\"", sqlite3_errmsg(sqlite3_db_handle(st->stmt)), st->sql);
        break;
    default:
        log_errx("db: step failed (%d): %s: \"%s\"",
                 sqlite3_extended_errcode(sqlite3_db_handle(st->stmt)),
                 sqlite3_errmsg(sqlite3_db_handle(st->stmt)), st->sql);
        break;
    }
    /* A failed statement must not keep its read snapshot or locks open. */
    sqlite3_reset(st->stmt);
    return mapped;
}

int db_column_count(struct db_stmt *st)
{
    return sqlite3_column_count(st->stmt);
}

bool db_column_is_null(struct db_stmt *st, int col)
{
    return sqlite3_column_type(st->stmt, col) == SQLITE_NULL;
}

int64_t db_column_int64(struct db_stmt *st, int col)
{
    return (int64_t)sqlite3_column_int64(st->stmt, col);
}

const char *db_column_text(struct db_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st->stmt, col);
    return t ? (const char *)t : "";
}

size_t db_column_bytes(struct db_stmt *st, int col)
{
    /* Called after db_column_text this is the byte length of that text. */
    int n = sqlite3_column_bytes(st->stmt, col);
    return n > 0 ? (size_t)n : 0;
}

int64_t db_changes(struct db *db)
{
#if SQLITE_VERSION_NUMBER >= 3037000
    return (int64_t)sqlite3_changes64(db->h);
#else
    return (int64_t)sqlite3_changes(db->h);
#endif
}

/* sqlite3_exec without logging; *errmsg (caller frees with sqlite3_free) on failure. */
static int exec_quiet(struct db *db, const char *sql, char **errmsg)
{
    *errmsg = NULL;
    return map_rc(sqlite3_exec(db->h, sql, NULL, NULL, errmsg));
}

int db_exec(struct db *db, const char *sql)
{
    char *msg = NULL;
    int rc = exec_quiet(db, sql, &msg);
    if (rc == DB_ERROR)
        log_errx("db: exec failed: %s: \"%s\"", msg ? msg : sqlite3_errmsg(db->h), sql);
    else if (rc != DB_OK)
        log_debug("db: exec: %s: \"%s\"", msg ? msg : sqlite3_errmsg(db->h), sql);
    sqlite3_free(msg);
    return rc;
}

/* ---- transactions -------------------------------------------------------- */

/* Step a cached, parameterless statement to completion. */
static int run_simple(struct db *db, const char *sql)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERROR;
    int rc = db_step(st);
    while (rc == DB_ROW)
        rc = db_step(st);
    sqlite3_reset(st->stmt);
    return rc;
}

/*
 * Reset the statements this transaction attempt handed out that are still
 * mid-rows. A handler that read one row and returned leaves its SELECT active,
 * and one left mid-RETURNING is a pending write that makes COMMIT fail with
 * SQLITE_BUSY (retried for nothing). Statements from before the transaction
 * are left alone: a caller looping over a SELECT and running a transaction per
 * row must not have its loop restarted.
 */
static void reset_tx_statements(struct db *db)
{
    for (size_t i = 0; i < db->cap; i++) {
        struct db_stmt *s = db->slots[i];
        if (s && s->tx_epoch == db->tx_epoch && sqlite3_stmt_busy(s->stmt))
            sqlite3_reset(s->stmt);
    }
}

static void rollback_quiet(struct db *db)
{
    reset_tx_statements(db);
    /* SQLite rolls back by itself after some errors: then there is nothing to undo. */
    if (sqlite3_get_autocommit(db->h))
        return;
    if (run_simple(db, "ROLLBACK") != DB_OK)
        log_warnx("db: rollback failed: %s", sqlite3_errmsg(db->h));
}

static uint64_t rng_next(struct db *db)
{
    uint64_t x = db->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return db->rng = x;
}

/* Randomized so that workers that collided once do not collide again in step. */
static void backoff(struct db *db, int attempt)
{
    int cap = 2 * (attempt + 1);
    if (cap > DB_TX_MAX_BACKOFF_MS)
        cap = DB_TX_MAX_BACKOFF_MS;
    int ms = 1 + (int)(rng_next(db) % (uint64_t)cap);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int db_transaction(struct db *db, bool write, db_tx_fn fn, void *ctx)
{
    /* SQLite has no nested BEGIN; failing here keeps the rollback below from
     * undoing the caller's outer transaction. */
    if (!sqlite3_get_autocommit(db->h)) {
        log_errx("db: db_transaction called inside a transaction");
        return DB_ERROR;
    }
    for (int attempt = 0;; attempt++) {
        /* IMMEDIATE takes the write lock now: a deferred transaction that later
         * upgrades can fail with BUSY_SNAPSHOT after doing all its work. */
        int rc = run_simple(db, write ? "BEGIN IMMEDIATE" : "BEGIN");
        if (rc == DB_OK) {
            db->tx_epoch++;
            db->in_tx = true;
            rc = fn(db, ctx);
            db->in_tx = false;
            if (rc == DB_OK) {
                reset_tx_statements(db);
                rc = run_simple(db, "COMMIT");
                if (rc == DB_OK)
                    return DB_OK;
            }
        }
        rollback_quiet(db);
        if (rc != DB_BUSY)
            return rc;
        if (attempt >= DB_TX_MAX_RETRIES) {
            log_warnx("db: database busy: transaction abandoned after %d retries",
                      DB_TX_MAX_RETRIES);
            return DB_BUSY;
        }
        if (db->busy_retry_counter)
            __atomic_fetch_add(db->busy_retry_counter, 1, __ATOMIC_RELAXED);
        backoff(db, attempt);
    }
}

/* ---- WAL ----------------------------------------------------------------- */

const char *db_driver_name(struct db *db)
{
    (void)db;
    return "sqlite";
}

int64_t db_wal_size(struct db *db)
{
    struct stat st;
    if (!db->wal_path)
        return -1;
    if (stat(db->wal_path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    return (int64_t)st.st_size;
}

int db_checkpoint(struct db *db)
{
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

/* ---- migrations ------------------------------------------------------------ */

/* 'YYYY-MM-DD HH:MM:SS.ffffff' UTC, the upstream timestamp format. */
static void db_timestamp(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    char base[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(base, sizeof base, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%06u", base, (unsigned)(ts.tv_nsec / 1000) % 1000000u);
}

static bool is_identifier(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Next whitespace-separated word of *p: start and length; advances *p. */
static size_t next_word(const char **p, const char **start)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    *start = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    *p = s;
    return (size_t)(s - *start);
}

/* True when table already has column (compared case-insensitively, as SQLite does). */
static int column_exists(struct db *db, const char *table, const char *column, bool *exists)
{
    struct db_stmt *st =
        db_prepare(db, "SELECT 1 FROM pragma_table_info(?) WHERE lower(name) = lower(?)");
    if (!st)
        return DB_ERROR;
    if (db_bind_text(st, 1, table) != DB_OK || db_bind_text(st, 2, column) != DB_OK)
        return DB_ERROR;
    int rc = db_step(st);
    *exists = rc == DB_ROW;
    db_reset(st);
    return rc == DB_ROW ? DB_OK : rc;
}

/*
 * "--@ add-column <table> <column> <definition…>": ALTER TABLE … ADD COLUMN
 * unless the column is there. The one place SQL is assembled from text: it
 * comes from our own embedded files, and the names are checked anyway.
 */
static int directive_add_column(struct db *db, const char *args, char *err, size_t errlen)
{
    const char *p = args, *t, *c;
    size_t tn = next_word(&p, &t);
    size_t cn = next_word(&p, &c);
    while (*p == ' ' || *p == '\t')
        p++;
    size_t dn = strlen(p);
    while (dn > 0 && (p[dn - 1] == ' ' || p[dn - 1] == '\t' || p[dn - 1] == '\r'))
        dn--;
    if (!is_identifier(t, tn) || !is_identifier(c, cn) || dn == 0 || memchr(p, ';', dn)) {
        snprintf(err, errlen, "bad add-column directive: '%s'", args);
        return DB_ERROR;
    }

    char *table = xstrndup(t, tn), *column = xstrndup(c, cn);
    bool exists = false;
    int rc = column_exists(db, table, column, &exists);
    if (rc == DB_OK && !exists) {
        char *sql = xasprintf("ALTER TABLE %s ADD COLUMN %s %.*s", table, column, (int)dn, p);
        char *msg = NULL;
        rc = exec_quiet(db, sql, &msg);
        if (rc != DB_OK)
            snprintf(err, errlen, "%s: %s", sql, msg ? msg : sqlite3_errmsg(db->h));
        else
            log_debug("db: added column %s.%s", table, column);
        sqlite3_free(msg);
        free(sql);
    } else if (rc != DB_OK) {
        snprintf(err, errlen, "cannot inspect table %s: %s", table, sqlite3_errmsg(db->h));
    }
    free(table);
    free(column);
    return rc;
}

static int run_directive(struct db *db, const char *line, char *err, size_t errlen)
{
    const char *p = line, *w;
    size_t n = next_word(&p, &w);
    while (*p == ' ' || *p == '\t')
        p++;
    if (n == 10 && memcmp(w, "add-column", 10) == 0)
        return directive_add_column(db, p, err, errlen);
    snprintf(err, errlen, "unknown migration directive: '--@ %s'", w);
    return DB_ERROR;
}

static int exec_chunk(struct db *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    int rc = exec_quiet(db, sql, &msg);
    if (rc != DB_OK)
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db->h));
    sqlite3_free(msg);
    return rc;
}

/*
 * Run one migration's text inside the caller's transaction: SQL between
 * directive lines goes to sqlite3_exec as one chunk (several statements),
 * directives run where they stand so a file can rely on their order.
 */
static int apply_migration_sql(struct db *db, const char *text, char *err, size_t errlen)
{
    size_t len = strlen(text);
    char *chunk = xmalloc(len + 1);
    size_t clen = 0;
    int rc = DB_OK;
    const char *p = text;

    while (*p && rc == DB_OK) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) + 1 : strlen(p);
        if (strncmp(p, "--@", 3) == 0) {
            chunk[clen] = '\0';
            rc = exec_chunk(db, chunk, err, errlen);
            clen = 0;
            if (rc == DB_OK) {
                char *line = xstrndup(p + 3, eol ? (size_t)(eol - p) - 3 : strlen(p + 3));
                rc = run_directive(db, line, err, errlen);
                free(line);
            }
        } else {
            memcpy(chunk + clen, p, n);
            clen += n;
        }
        p += n;
    }
    if (rc == DB_OK) {
        chunk[clen] = '\0';
        rc = exec_chunk(db, chunk, err, errlen);
    }
    free(chunk);
    return rc;
}

struct migrate_ctx {
    const struct migration *m;
    bool applied; /* set when this attempt applied it (reset on every retry) */
    char *err;
    size_t errlen;
};

static int migrate_one_tx(struct db *db, void *vctx)
{
    struct migrate_ctx *ctx = vctx;
    ctx->applied = false;

    /* Checked inside the write transaction: the master and s4s-admin may race. */
    struct db_stmt *st = db_prepare(db, "SELECT 1 FROM schema_migrations WHERE name = ?");
    if (!st || db_bind_text(st, 1, ctx->m->name) != DB_OK)
        return DB_ERROR;
    int rc = db_step(st);
    db_reset(st);
    if (rc == DB_ROW)
        return DB_OK;
    if (rc != DB_OK)
        return rc;

    rc = apply_migration_sql(db, ctx->m->sql, ctx->err, ctx->errlen);
    if (rc != DB_OK)
        return rc;

    char now[40];
    db_timestamp(now, sizeof now);
    st = db_prepare(db, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)");
    if (!st || db_bind_text(st, 1, ctx->m->name) != DB_OK || db_bind_text(st, 2, now) != DB_OK)
        return DB_ERROR;
    rc = db_step(st);
    if (rc != DB_OK) {
        snprintf(ctx->err, ctx->errlen, "recording it: %s", sqlite3_errmsg(db->h));
        return rc == DB_BUSY ? DB_BUSY : DB_ERROR;
    }
    ctx->applied = true;
    return DB_OK;
}

/* Migrations recorded in the database that this binary does not know. */
static void warn_unknown_migrations(struct db *db)
{
    struct db_stmt *st = db_prepare(db, "SELECT name FROM schema_migrations ORDER BY name");
    if (!st)
        return;
    while (db_step(st) == DB_ROW) {
        const char *name = db_column_text(st, 0);
        bool known = false;
        for (size_t i = 0; i < s4s_migrations_count && !known; i++)
            known = strcmp(s4s_migrations[i].name, name) == 0;
        if (!known)
            log_warnx("db: database has migration %s which this program does not know "
                      "(was it made by a newer version?)",
                      name);
    }
    db_reset(st);
}

/* Room for the reason a migration failed (SQLite's message and our context). */
#define MIGRATE_WHY_LEN 512

/* In a transaction of its own so a momentarily busy database is retried. */
static int create_migrations_table_tx(struct db *db, void *vwhy)
{
    return exec_chunk(db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
                      vwhy, MIGRATE_WHY_LEN);
}

int db_migrate(struct db *db, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    if (err && errlen)
        err[0] = '\0';

    /* The array order is the application order: refuse a build that got it wrong. */
    for (size_t i = 1; i < s4s_migrations_count; i++) {
        if (strcmp(s4s_migrations[i - 1].name, s4s_migrations[i].name) >= 0) {
            snprintf(err, errlen, "embedded migrations out of order: %s before %s",
                     s4s_migrations[i - 1].name, s4s_migrations[i].name);
            return DB_ERROR;
        }
    }

    char why[MIGRATE_WHY_LEN] = "";
    int rc = db_transaction(db, true, create_migrations_table_tx, why);
    if (rc != DB_OK) {
        snprintf(err, errlen, "creating schema_migrations: %s",
                 why[0]          ? why
                 : rc == DB_BUSY ? "database is busy"
                                 : sqlite3_errmsg(db->h));
        return rc;
    }
    warn_unknown_migrations(db);

    for (size_t i = 0; i < s4s_migrations_count; i++) {
        why[0] = '\0';
        struct migrate_ctx ctx = {&s4s_migrations[i], false, why, sizeof why};
        rc = db_transaction(db, true, migrate_one_tx, &ctx);
        if (rc != DB_OK) {
            snprintf(err, errlen, "migration %s failed: %s", s4s_migrations[i].name,
                     why[0]          ? why
                     : rc == DB_BUSY ? "database is busy"
                                     : sqlite3_errmsg(db->h));
            return rc;
        }
        if (ctx.applied) {
            (*applied)++;
            log_info("db: applied migration %s", s4s_migrations[i].name);
        }
    }
    return DB_OK;
}

int db_migration_status(struct db *db, db_migration_status_fn fn, void *ctx)
{
    /* Reading only: a database never migrated has no schema_migrations yet. */
    struct db_stmt *st = db_prepare(
        db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'");
    if (!st)
        return DB_ERROR;
    int rc = db_step(st);
    db_reset(st);
    if (rc != DB_ROW && rc != DB_OK)
        return rc;
    bool have_table = rc == DB_ROW;

    for (size_t i = 0; i < s4s_migrations_count; i++) {
        const char *name = s4s_migrations[i].name;
        if (!have_table) {
            fn(name, false, NULL, ctx);
            continue;
        }
        st = db_prepare(db, "SELECT applied_at FROM schema_migrations WHERE name = ?");
        if (!st || db_bind_text(st, 1, name) != DB_OK)
            return DB_ERROR;
        rc = db_step(st);
        if (rc == DB_ROW) {
            fn(name, true, db_column_text(st, 0), ctx);
        } else if (rc == DB_OK) {
            fn(name, false, NULL, ctx);
        } else {
            db_reset(st);
            return rc;
        }
        db_reset(st);
    }
    return DB_OK;
}

int db_step_done(struct db_stmt *st)
{
    int rc = db_step(st);
    if (rc == DB_ROW) {
        db_reset(st);
        rc = DB_OK;
    }
    return rc;
}
