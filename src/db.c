/*
 * db.c — the driver-independent half of db.h: choosing the driver from the
 * URI, the per-connection prepared-statement cache, dispatch to the driver,
 * the whole-transaction retry loop (bounded, jittered, counted) and the
 * migration runner that applies the driver's embedded SQL files in order.
 * The drivers (db_sqlite.c, db_pg.c) only speak their own database.
 */
#include "db.h"
#include "db_driver.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Whole-transaction retries on DB_BUSY (DESIGN.md: bounded): until
 * DB_BUSY_TIMEOUT has passed since the first attempt began, at least once,
 * and never more often than this. */
#define DB_TX_MAX_RETRIES 500
/* Upper bound of one randomized backoff sleep between retries. */
#define DB_TX_MAX_BACKOFF_MS 25
/* The least a retry's lock wait is cut down to, when the budget is spent. */
#define DB_TX_MIN_LOCK_WAIT_MS 10
/* The statement cache starts with this many slots (a power of two) and doubles. */
#define DB_CACHE_INITIAL 128

bool db_uri_is_postgres(const char *uri)
{
    return uri && (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0);
}

char *db_uri_display(const char *uri)
{
    if (!uri)
        return xstrdup("");
    char *out = xstrdup(uri);
    const char *scheme = strstr(out, "://");
    if (scheme) {
        char *auth = (char *)scheme + 3;
        char *at = strchr(auth, '@');
        char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            char *tmp = xasprintf("%.*s:***%s", (int)(colon - out), out, at);
            free(out);
            out = tmp;
        }
    }
    /* libpq also takes ?password=… (and key=value strings: password=…). */
    char *pw = strstr(out, "password=");
    if (pw) {
        size_t end = strcspn(pw + 9, "& ");
        char *tmp = xasprintf("%.*s***%s", (int)(pw + 9 - out), out, pw + 9 + end);
        free(out);
        out = tmp;
    }
    return out;
}

int db_open(const char *uri, const struct db_options *opt, struct db **out, char *err,
            size_t errlen)
{
    static const struct db_options defaults = {5000, true, NULL};
    *out = NULL;
    if (!opt)
        opt = &defaults;
    if (!uri || !*uri) {
        snprintf(err, errlen, "no database given");
        return DB_ERROR;
    }
    const struct db_driver *drv = db_uri_is_postgres(uri) ? &db_pg_driver : &db_sqlite_driver;
    void *impl = NULL;
    int rc = drv->open(uri, opt, &impl, err, errlen);
    if (rc != DB_OK)
        return rc;

    struct db *db = xcalloc(1, sizeof *db);
    db->drv = drv;
    db->impl = impl;
    db->busy_retry_counter = opt->busy_retry_counter;
    db->busy_timeout_ms = opt->busy_timeout_ms;
    db->cap = DB_CACHE_INITIAL;
    db->slots = xcalloc(db->cap, sizeof *db->slots);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    db->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
    if (db->rng == 0)
        db->rng = 0x9e3779b97f4a7c15ULL;
    *out = db;
    return DB_OK;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->cap; i++) {
        struct db_stmt *s = db->slots[i];
        if (s) {
            db->drv->finalize(s->impl);
            free(s->sql);
            free(s);
        }
    }
    free(db->slots);
    db->drv->close(db->impl);
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
        db->drv->reset(s);
        s->key_ptr = sql;
        s->tx_epoch = db->in_tx ? db->tx_epoch : 0;
        return s;
    }
    void *impl = db->drv->prepare(db, sql);
    if (!impl)
        return NULL;
    s = xcalloc(1, sizeof *s);
    s->db = db;
    s->impl = impl;
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
    if (st)
        st->db->drv->reset(st);
}

/* ---- binding, stepping, columns: the driver's ------------------------------ */

int db_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
    return st->db->drv->bind_int64(st, idx, v);
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
    return st->db->drv->bind_textn(st, idx, s, len);
}

int db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
    return st->db->drv->bind_blob(st, idx, p, len);
}

int db_bind_null(struct db_stmt *st, int idx)
{
    return st->db->drv->bind_null(st, idx);
}

int db_step(struct db_stmt *st)
{
    return st->db->drv->step(st);
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

int db_column_count(struct db_stmt *st)
{
    return st->db->drv->column_count(st);
}

bool db_column_is_null(struct db_stmt *st, int col)
{
    return st->db->drv->column_is_null(st, col);
}

int64_t db_column_int64(struct db_stmt *st, int col)
{
    return st->db->drv->column_int64(st, col);
}

const char *db_column_text(struct db_stmt *st, int col)
{
    return st->db->drv->column_text(st, col);
}

size_t db_column_bytes(struct db_stmt *st, int col)
{
    return st->db->drv->column_bytes(st, col);
}

const char *db_column_name(struct db_stmt *st, int col)
{
    return st->db->drv->column_name(st, col);
}

int64_t db_changes(struct db *db)
{
    return db->drv->changes(db);
}

int db_exec(struct db *db, const char *sql)
{
    char why[512] = "";
    int rc = db->drv->exec(db, sql, why, sizeof why);
    if (rc == DB_ERROR)
        log_errx("db: exec failed: %s: \"%s\"", why, sql);
    else if (rc != DB_OK)
        log_debug("db: exec: %s: \"%s\"", why, sql);
    return rc;
}

const char *db_integrity_sql(struct db *db)
{
    return db->drv->integrity_sql;
}

const char *db_foreign_key_sql(struct db *db)
{
    return db->drv->foreign_key_sql;
}

const char *db_driver_name(struct db *db)
{
    return db->drv->name;
}

int64_t db_wal_size(struct db *db)
{
    return db->drv->wal_size(db);
}

int db_checkpoint(struct db *db)
{
    return db->drv->checkpoint(db);
}

int64_t db_size_bytes(struct db *db)
{
    return db->drv->size_bytes(db);
}

int db_row_exists(struct db *db, const char *sql, const char *a, const char *b, bool *found)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERROR;
    if (db_bind_text(st, 1, a) != DB_OK || (b && db_bind_text(st, 2, b) != DB_OK))
        return DB_ERROR;
    int rc = db_step(st);
    *found = rc == DB_ROW;
    db_reset(st);
    return rc == DB_ROW ? DB_OK : rc;
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
    db_reset(st);
    return rc;
}

/*
 * Reset the statements this transaction attempt handed out that are still
 * mid-rows. A handler that read one row and returned leaves its SELECT active,
 * and (on SQLite) one left mid-RETURNING is a pending write that makes COMMIT
 * fail as busy. Statements from before the transaction are left alone: a
 * caller looping over a SELECT and running a transaction per row must not
 * have its loop restarted.
 */
static void reset_tx_statements(struct db *db)
{
    for (size_t i = 0; i < db->cap; i++) {
        struct db_stmt *s = db->slots[i];
        if (s && s->tx_epoch == db->tx_epoch && db->drv->stmt_busy(s))
            db->drv->reset(s);
    }
}

static void rollback_quiet(struct db *db)
{
    reset_tx_statements(db);
    /* A database may roll back by itself after some errors: then there is nothing to undo. */
    if (!db->drv->in_transaction(db))
        return;
    if (run_simple(db, "ROLLBACK") != DB_OK)
        log_warnx("db: rollback failed: %s", db->drv->errmsg(db));
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
    /* No nested transactions: failing here keeps the rollback below from
     * undoing the caller's outer transaction. */
    if (db->drv->in_transaction(db)) {
        log_errx("db: db_transaction called inside a transaction");
        return DB_ERROR;
    }
    /* One budget for the whole transaction, however many attempts it takes:
     * a lock held longer than DB_BUSY_TIMEOUT answers busy (503) after about
     * DB_BUSY_TIMEOUT, not after one lock wait per attempt. */
    int64_t give_up = now_mono_ms() + db->busy_timeout_ms;
    int rc;
    for (int attempt = 0;; attempt++) {
        if (db->drv->set_lock_wait) {
            int64_t left = give_up - now_mono_ms();
            db->drv->set_lock_wait(db, left > DB_TX_MIN_LOCK_WAIT_MS ? (int)left
                                                                     : DB_TX_MIN_LOCK_WAIT_MS);
        }
        /* A write transaction asks for its isolation up front (SQLite: the
         * write lock, so it never upgrades and deadlocks; PostgreSQL:
         * SERIALIZABLE, so a read-then-write sees no concurrent change). */
        rc = run_simple(db, write ? db->drv->begin_write : db->drv->begin_read);
        if (rc == DB_OK) {
            db->tx_epoch++;
            db->in_tx = true;
            rc = fn(db, ctx);
            db->in_tx = false;
            if (rc == DB_OK) {
                reset_tx_statements(db);
                rc = run_simple(db, "COMMIT");
                if (rc == DB_OK)
                    break;
            }
        }
        rollback_quiet(db);
        if (rc != DB_BUSY)
            break;
        if (attempt >= DB_TX_MAX_RETRIES || (attempt >= 1 && now_mono_ms() >= give_up)) {
            log_warnx("db: database busy: transaction abandoned after %d retries in %lld ms",
                      attempt, (long long)(now_mono_ms() - give_up + db->busy_timeout_ms));
            break;
        }
        if (db->busy_retry_counter)
            __atomic_fetch_add(db->busy_retry_counter, 1, __ATOMIC_RELAXED);
        backoff(db, attempt);
    }
    if (db->drv->set_lock_wait) /* statements outside transactions wait the full time */
        db->drv->set_lock_wait(db, db->busy_timeout_ms);
    return rc;
}

/* ---- migrations ------------------------------------------------------------ */

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
    int rc = db->drv->column_exists(db, table, column, &exists);
    if (rc == DB_OK && !exists) {
        char *sql = xasprintf("ALTER TABLE %s ADD COLUMN %s %.*s", table, column, (int)dn, p);
        char why[256] = "";
        rc = db->drv->exec(db, sql, why, sizeof why);
        if (rc != DB_OK)
            snprintf(err, errlen, "%s: %s", sql, why);
        else
            log_debug("db: added column %s.%s", table, column);
        free(sql);
    } else if (rc != DB_OK) {
        snprintf(err, errlen, "cannot inspect table %s: %s", table, db->drv->errmsg(db));
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
    /* Only comments and blank lines between two directives: nothing to send. */
    const char *p = sql;
    for (;;) {
        p += strspn(p, " \t\r\n");
        if (strncmp(p, "--", 2) != 0)
            break;
        p += strcspn(p, "\n");
    }
    if (!*p)
        return DB_OK;
    return db->drv->exec(db, sql, err, errlen);
}

/*
 * Run one migration's text inside the caller's transaction: SQL between
 * directive lines goes to the driver as one chunk (several statements),
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

    char now[DB_TS_LEN];
    db_ts_now(now);
    st = db_prepare(db, "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)");
    if (!st || db_bind_text(st, 1, ctx->m->name) != DB_OK || db_bind_text(st, 2, now) != DB_OK)
        return DB_ERROR;
    rc = db_step(st);
    if (rc != DB_OK) {
        snprintf(ctx->err, ctx->errlen, "recording it: %s", db->drv->errmsg(db));
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
        for (size_t i = 0; i < *db->drv->migrations_count && !known; i++)
            known = strcmp(db->drv->migrations[i].name, name) == 0;
        if (!known)
            log_warnx("db: database has migration %s which this program does not know "
                      "(was it made by a newer version?)",
                      name);
    }
    db_reset(st);
}

/* Room for the reason a migration failed (the server's message and our context). */
#define MIGRATE_WHY_LEN 512

/* In a transaction of its own so a momentarily busy database is retried. */
static int create_migrations_table_tx(struct db *db, void *vwhy)
{
    return exec_chunk(db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      "name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
                      vwhy, MIGRATE_WHY_LEN);
}

static int migrate_locked(struct db *db, int *applied, char *err, size_t errlen);

int db_migrate(struct db *db, int *applied, char *err, size_t errlen)
{
    *applied = 0;
    if (err && errlen)
        err[0] = '\0';

    /* The array order is the application order: refuse a build that got it wrong. */
    for (size_t i = 1; i < *db->drv->migrations_count; i++) {
        if (strcmp(db->drv->migrations[i - 1].name, db->drv->migrations[i].name) >= 0) {
            snprintf(err, errlen, "embedded migrations out of order: %s before %s",
                     db->drv->migrations[i - 1].name, db->drv->migrations[i].name);
            return DB_ERROR;
        }
    }

    if (db->drv->migrate_lock_sql) {
        int rc = run_simple(db, db->drv->migrate_lock_sql);
        if (rc != DB_OK) {
            snprintf(err, errlen, "taking the migration lock: %s", db->drv->errmsg(db));
            return rc;
        }
    }
    int rc = migrate_locked(db, applied, err, errlen);
    if (db->drv->migrate_unlock_sql && run_simple(db, db->drv->migrate_unlock_sql) != DB_OK)
        log_warnx("db: releasing the migration lock: %s", db->drv->errmsg(db));
    return rc;
}

static int migrate_locked(struct db *db, int *applied, char *err, size_t errlen)
{
    char why[MIGRATE_WHY_LEN] = "";
    int rc = db_transaction(db, true, create_migrations_table_tx, why);
    if (rc != DB_OK) {
        snprintf(err, errlen, "creating schema_migrations: %s",
                 why[0]          ? why
                 : rc == DB_BUSY ? "database is busy"
                                 : db->drv->errmsg(db));
        return rc;
    }
    warn_unknown_migrations(db);

    for (size_t i = 0; i < *db->drv->migrations_count; i++) {
        why[0] = '\0';
        struct migrate_ctx ctx = {&db->drv->migrations[i], false, why, sizeof why};
        rc = db_transaction(db, true, migrate_one_tx, &ctx);
        if (rc != DB_OK) {
            snprintf(err, errlen, "migration %s failed: %s", db->drv->migrations[i].name,
                     why[0]          ? why
                     : rc == DB_BUSY ? "database is busy"
                                     : db->drv->errmsg(db));
            return rc;
        }
        if (ctx.applied) {
            (*applied)++;
            log_info("db: applied migration %s", db->drv->migrations[i].name);
        }
    }
    return DB_OK;
}

int db_migration_status(struct db *db, db_migration_status_fn fn, void *ctx)
{
    /* Reading only: a database never migrated has no schema_migrations yet. */
    bool have_table = false;
    int rc = db->drv->table_exists(db, "schema_migrations", &have_table);
    if (rc != DB_OK)
        return rc;
    struct db_stmt *st;

    for (size_t i = 0; i < *db->drv->migrations_count; i++) {
        const char *name = db->drv->migrations[i].name;
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

/* ---- identity columns ------------------------------------------------------ */

int db_sync_identity(struct db *db, const char *table, const char *column)
{
    /* The names go into the statement's text: only plain identifiers. */
    if (!is_identifier(table, strlen(table)) || !is_identifier(column, strlen(column))) {
        log_errx("db: sync_identity: bad name '%s.%s'", table, column);
        return DB_ERROR;
    }
    return db->drv->sync_identity(db, table, column);
}
