/*
 * db.h — the database driver interface every handler and tool uses. Handlers
 * never see a dialect: they prepare portable SQL (? placeholders, ON CONFLICT,
 * RETURNING) and step it. db.c picks the driver from the URI: SQLite
 * (db_sqlite.c, the default) or PostgreSQL (db_pg.c, DATABASE_URI=postgresql://…).
 *
 * A connection belongs to one process and is opened after fork.
 */
#ifndef S4S_DB_H
#define S4S_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db;
struct db_stmt;

enum db_rc {
    DB_OK = 0,      /* statement finished (no more rows) / call succeeded */
    DB_ROW,         /* a row is available */
    DB_BUSY,        /* lock or snapshot conflict: retry the whole transaction */
    DB_CONSTRAINT,  /* a uniqueness / foreign-key constraint failed */
    DB_ERROR,       /* anything else: logged by the driver */
    DB_FULL,        /* the disk is full (SQLITE_FULL, 53100): the caller answers 507 */
    DB_UNAVAILABLE, /* the database server cannot be reached now (PostgreSQL): 503 */
};

struct db_options {
    int busy_timeout_ms;          /* how long one statement waits for a lock */
    bool synchronous_full;        /* synchronous=FULL (default true) */
    uint64_t *busy_retry_counter; /* shared-memory counter bumped on each retry, may be NULL */
};

/* uri: a bare path, or SQLAlchemy's form as DATABASE_URI uses it (and config.c
 * reads it): "sqlite:///relative.db", "sqlite:////abs/path.db", "sqlite:rel.db".
 * ":memory:" opens an in-memory database. "postgresql://…" (or "postgres://…",
 * libpq's URI syntax) connects to PostgreSQL. */
bool db_uri_is_postgres(const char *uri);
/* uri for logs and messages: a password in it ("postgresql://user:secret@host/db",
 * or a password=… parameter) replaced by "***". Allocated; the caller frees. */
char *db_uri_display(const char *uri);
int db_open(const char *uri, const struct db_options *opt, struct db **out, char *err,
            size_t errlen);
void db_close(struct db *db);

/*
 * Prepared statements are cached per connection, keyed by the SQL text, so
 * handlers write db_prepare(db, "SELECT …") at the point of use and pay the
 * compile once per worker. The statement is reset and unbound on return.
 * NULL on error (logged).
 */
struct db_stmt *db_prepare(struct db *db, const char *sql);
/* Bind by 1-based position. */
int db_bind_int64(struct db_stmt *st, int idx, int64_t v);
int db_bind_text(struct db_stmt *st, int idx, const char *s); /* NULL binds NULL; copied */
int db_bind_textn(struct db_stmt *st, int idx, const char *s, size_t len);
int db_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len);
int db_bind_null(struct db_stmt *st, int idx);
/* DB_ROW, DB_OK (done), DB_BUSY, DB_CONSTRAINT, DB_ERROR */
int db_step(struct db_stmt *st);
int db_column_count(struct db_stmt *st);
bool db_column_is_null(struct db_stmt *st, int col); /* 0-based */
int64_t db_column_int64(struct db_stmt *st, int col);
/* Valid until the next step/reset of this statement; "" for NULL. */
const char *db_column_text(struct db_stmt *st, int col);
size_t db_column_bytes(struct db_stmt *st, int col);
/* The result column's name (for tools that copy whole tables). */
const char *db_column_name(struct db_stmt *st, int col);
/* Rows changed by the last INSERT/UPDATE/DELETE on this connection. */
int64_t db_changes(struct db *db);
/* Step a write that may return a row nobody needs (… RETURNING): DB_OK when it
 * ran (a returned row is discarded), the error otherwise. */
int db_step_done(struct db_stmt *st);
/* Reset and clear bindings (done automatically by db_prepare; call when finishing early). */
void db_reset(struct db_stmt *st);

/* Convenience: prepare, bind nothing, step to completion. For DDL and pragmas in tools. */
int db_exec(struct db *db, const char *sql);

/*
 * Run fn inside one transaction. write=true takes the write lock up front
 * (BEGIN IMMEDIATE on SQLite) so a transaction never upgrades and deadlocks.
 * fn returns DB_OK to commit; DB_BUSY to have the whole transaction retried
 * (bounded, counted); anything else rolls back and is returned. Retries on
 * BUSY from BEGIN/COMMIT too. Returns DB_OK, DB_BUSY (retries exhausted) or
 * fn's code.
 */
typedef int (*db_tx_fn)(struct db *db, void *ctx);
int db_transaction(struct db *db, bool write, db_tx_fn fn, void *ctx);

/* Migrations: apply every pending one in order, each in its own transaction,
 * recording it in schema_migrations. *applied counts the new ones. Logs each. */
int db_migrate(struct db *db, int *applied, char *err, size_t errlen);
/* For `s4s-admin migrate --status`: calls fn for every known migration. */
typedef void (*db_migration_status_fn)(const char *name, bool applied, const char *applied_at,
                                       void *ctx);
int db_migration_status(struct db *db, db_migration_status_fn fn, void *ctx);

/* The statements `s4s-admin check` asks the database's own verdict with:
 * integrity (rows of text, "ok" alone when sound) and foreign key violations
 * (rows of table, row id, parent table). */
const char *db_integrity_sql(struct db *db);
const char *db_foreign_key_sql(struct db *db);

/* Driver name ("sqlite", "postgresql") and, for SQLite, the WAL file's size in bytes: 0 when
 * the file is absent (e.g. after a TRUNCATE checkpoint or a clean close), -1 when
 * there is no WAL at all (in-memory database) or it cannot be examined. */
const char *db_driver_name(struct db *db);
int64_t db_wal_size(struct db *db);
/* Checkpoint and truncate the WAL when no reader holds it (called when idle). */
int db_checkpoint(struct db *db);
/* The database's size on disk in bytes, for s4s-admin stats: SQLite's file
 * (without its WAL), PostgreSQL's pg_database_size(); -1 when unknown. */
int64_t db_size_bytes(struct db *db);

/* After rows were inserted with explicit ids (s4s-admin copy-db): make the ids
 * table.column generates continue after the largest one present. PostgreSQL
 * moves the identity sequence; SQLite's rowids need nothing. */
int db_sync_identity(struct db *db, const char *table, const char *column);

#endif
