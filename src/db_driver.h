/*
 * db_driver.h — what a database driver (db_sqlite.c, db_pg.c) provides to the
 * driver-independent layer in db.c. Only db*.c include this: everything else
 * sees the opaque handles of db.h.
 *
 * db.c owns what every driver shares: the connection handle, the per-connection
 * statement cache keyed by SQL text, the whole-transaction retry loop, and the
 * migration runner. A driver owns its connection and statement handles (impl)
 * and speaks its dialect.
 */
#ifndef S4S_DB_DRIVER_H
#define S4S_DB_DRIVER_H

#include "db.h"
#include "migrations.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_stmt {
    struct db *db;
    void *impl;          /* the driver's statement */
    uint64_t hash;       /* FNV-1a of the SQL text */
    const char *key_ptr; /* the caller's pointer last seen: skips strcmp for literals */
    char *sql;           /* our copy of the text: the cache key */
    uint64_t tx_epoch;   /* the db_transaction attempt it was last handed out in, or 0 */
};

struct db {
    const struct db_driver *drv;
    void *impl; /* the driver's connection */
    uint64_t *busy_retry_counter;
    int busy_timeout_ms; /* DB_BUSY_TIMEOUT: also the budget of a transaction's retries */
    uint64_t rng;        /* xorshift state for retry jitter: no global rand() state touched */
    bool in_tx;          /* inside db_transaction's fn */
    uint64_t tx_epoch;   /* numbers db_transaction attempts */
    /* Open-addressing hash table (linear probing) of statements, keyed by SQL text. */
    struct db_stmt **slots;
    size_t cap; /* power of two */
    size_t used;
};

struct db_driver {
    const char *name;
    /* The migrations written in this driver's dialect, applied in array order. */
    const struct migration *migrations;
    const size_t *migrations_count;
    /* Statements opening a write / read transaction. */
    const char *begin_write;
    const char *begin_read;
    /* The database's own verdict for `s4s-admin check`: one text row per
     * finding ("ok" alone when all is well), and foreign key violations as
     * (table, row, parent table) rows. */
    const char *integrity_sql;
    const char *foreign_key_sql;
    /* Held around all of db_migrate, so hosts starting at once migrate one
     * after the other; NULL when the write transaction already serializes. */
    const char *migrate_lock_sql;
    const char *migrate_unlock_sql;

    int (*open)(const char *uri, const struct db_options *opt, void **impl, char *err,
                size_t errlen);
    void (*close)(void *impl);
    /* Compile sql (one statement, ? placeholders); NULL on error (logged). */
    void *(*prepare)(struct db *db, const char *sql);
    void (*finalize)(void *stmt);
    void (*reset)(struct db_stmt *st); /* reset and clear bindings */
    bool (*stmt_busy)(struct db_stmt *st);
    /* How long the next statements wait for a lock, in ms; NULL when the driver
     * cannot change it cheaply (PostgreSQL's lock_timeout stays DB_BUSY_TIMEOUT). */
    void (*set_lock_wait)(struct db *db, int ms);
    int (*bind_int64)(struct db_stmt *st, int idx, int64_t v);
    int (*bind_textn)(struct db_stmt *st, int idx, const char *s, size_t len);
    int (*bind_blob)(struct db_stmt *st, int idx, const void *p, size_t len);
    int (*bind_null)(struct db_stmt *st, int idx);
    int (*step)(struct db_stmt *st);
    int (*column_count)(struct db_stmt *st);
    bool (*column_is_null)(struct db_stmt *st, int col);
    int64_t (*column_int64)(struct db_stmt *st, int col);
    const char *(*column_text)(struct db_stmt *st, int col);
    size_t (*column_bytes)(struct db_stmt *st, int col);
    const char *(*column_name)(struct db_stmt *st, int col);
    int64_t (*changes)(struct db *db);
    /* Run sql (possibly several statements) without logging; on failure the
     * server's message goes to err. */
    int (*exec)(struct db *db, const char *sql, char *err, size_t errlen);
    /* True while a transaction is open on the connection. */
    bool (*in_transaction)(struct db *db);
    int (*table_exists)(struct db *db, const char *table, bool *exists);
    int (*column_exists)(struct db *db, const char *table, const char *column, bool *exists);
    int64_t (*wal_size)(struct db *db);
    int (*checkpoint)(struct db *db);
    int64_t (*size_bytes)(struct db *db); /* db_size_bytes */
    /* db_sync_identity; table and column are checked identifiers. */
    int (*sync_identity)(struct db *db, const char *table, const char *column);
    const char *(*errmsg)(struct db *db);
};

/* For drivers' catalog lookups: step sql with text parameters a (and b unless
 * NULL); *found says whether it gave a row. */
int db_row_exists(struct db *db, const char *sql, const char *a, const char *b, bool *found);

extern const struct db_driver db_sqlite_driver;
extern const struct db_driver db_pg_driver;

#endif
