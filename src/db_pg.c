/*
 * db_pg.c — the PostgreSQL driver behind db.h (see db_driver.h), on libpq.
 *
 * What it owns: connecting (one connection per process, after fork, with
 * connect and lock timeouts), reconnecting after a lost connection (the
 * statement that saw the loss fails with DB_UNAVAILABLE, the next one
 * reconnects and re-prepares), translating the portable SQL's ? placeholders
 * to $n, server-side prepared statements, and mapping SQLSTATEs to db.h's
 * codes: serialization failures and deadlocks are DB_BUSY, so db.c retries
 * the whole SERIALIZABLE transaction as it retries SQLite's BUSY.
 *
 * Results are fetched whole (PQexecPrepared) and walked row by row: the
 * queries this server runs return bounded, small results.
 */
#include "db.h"
#include "db_driver.h"
#include "log.h"
#include "migrations.h"
#include "util.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long connecting may take before the request fails (seconds, libpq's unit). */
#define PG_CONNECT_TIMEOUT "5"
/* PostgreSQL's type oid for boolean: shown to callers as 1/0, as SQLite stores them. */
#define PG_BOOLOID 16

struct pg {
    PGconn *conn;
    unsigned generation; /* bumped on every (re)connect: older prepared statements are gone */
    unsigned next_name;  /* server-side statement names s1, s2, … */
    bool tx_open;        /* a transaction was open after the last statement */
    bool tx_lost;        /* the connection died inside that transaction */
    int64_t changes;
    int busy_timeout_ms;
    char errmsg[512];
};

struct pgst {
    char name[16];
    char *sql; /* with $n placeholders */
    int nparams;
    bool simple;   /* transaction control or SET: sent as plain text, never prepared */
    char **values; /* bound parameters, owned; NULL is SQL NULL */
    int *lengths;
    int *formats;
    unsigned prepared_gen; /* connection generation it was prepared in, 0 = not yet */
    PGresult *res;         /* the rows of the current execution */
    int row, nrows;
    bool done;    /* executed and finished: stepping again without a reset answers DB_OK */
    int parse_rc; /* a transient Parse failure (lock timeout, …) the first step reports */
};

#define PG(db) ((struct pg *)(db)->impl)
#define PGST(st) ((struct pgst *)(st)->impl)

/* Notices ("relation already exists, skipping" from IF NOT EXISTS) are not news. */
static void pg_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("db: postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

static void set_errmsg(struct pg *pg, const char *msg)
{
    snprintf(pg->errmsg, sizeof pg->errmsg, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* Session settings every connection gets, again after a reconnect. */
static int configure_session(struct pg *pg)
{
    /* lock_timeout 0 would mean "wait forever", where SQLite's 0 means "do
     * not wait": the nearest PostgreSQL has is 1 ms. */
    char *sql = xasprintf("SET lock_timeout = %d; SET TIME ZONE 'UTC'; "
                          "SET client_encoding = 'UTF8'; SET client_min_messages = warning",
                          pg->busy_timeout_ms > 0 ? pg->busy_timeout_ms : 1);
    PGresult *res = PQexec(pg->conn, sql);
    free(sql);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        set_errmsg(pg, PQerrorMessage(pg->conn));
    PQclear(res);
    return ok ? DB_OK : DB_ERROR;
}

static int pg_open(const char *uri, const struct db_options *opt, void **out, char *err,
                   size_t errlen)
{
    /* connect_timeout first: the URI's own parameters, applied after, override it. */
    const char *keys[] = {"connect_timeout", "dbname", "application_name", NULL};
    const char *vals[] = {PG_CONNECT_TIMEOUT, uri, "s4s", NULL};
    struct pg *pg = xcalloc(1, sizeof *pg);
    pg->busy_timeout_ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 0;
    pg->conn = PQconnectdbParams(keys, vals, 1);
    if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
        snprintf(err, errlen, "PostgreSQL: %.*s",
                 pg->conn ? (int)strcspn(PQerrorMessage(pg->conn), "\n") : 14,
                 pg->conn ? PQerrorMessage(pg->conn) : "out of memory");
        PQfinish(pg->conn);
        free(pg);
        return DB_ERROR;
    }
    PQsetNoticeProcessor(pg->conn, pg_notice, NULL);
    pg->generation = 1;
    if (configure_session(pg) != DB_OK) {
        snprintf(err, errlen, "PostgreSQL: %s", pg->errmsg);
        PQfinish(pg->conn);
        free(pg);
        return DB_ERROR;
    }
    *out = pg;
    return DB_OK;
}

static void pg_close(void *impl)
{
    struct pg *pg = impl;
    if (!pg)
        return;
    PQfinish(pg->conn);
    free(pg);
}

/* A lost connection is reset here, before the next statement runs on it. */
static int ensure_connected(struct pg *pg)
{
    if (PQstatus(pg->conn) == CONNECTION_OK)
        return DB_OK;
    PQreset(pg->conn);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        set_errmsg(pg, PQerrorMessage(pg->conn));
        log_errx("db: postgresql: reconnecting failed: %s", pg->errmsg);
        return DB_UNAVAILABLE;
    }
    pg->generation++;
    if (configure_session(pg) != DB_OK)
        return DB_UNAVAILABLE;
    log_info("db: postgresql: reconnected");
    return DB_OK;
}

/* ---- statements ----------------------------------------------------------- */

/* ? → $1, $2 … outside string literals, quoted identifiers and comments. */
static char *translate_placeholders(const char *sql, int *nparams)
{
    size_t len = strlen(sql);
    /* Each ? becomes at most "$" and 5 digits. */
    char *out = xmalloc(len * 6 + 1);
    size_t o = 0;
    int n = 0;
    for (const char *p = sql; *p;) {
        if (*p == '\'' || *p == '"') {
            char q = *p;
            out[o++] = *p++;
            while (*p) {
                if (*p == q && p[1] == q) { /* doubled quote inside */
                    out[o++] = *p++;
                    out[o++] = *p++;
                    continue;
                }
                if (*p == q)
                    break;
                out[o++] = *p++;
            }
            if (*p)
                out[o++] = *p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                out[o++] = *p++;
        } else if (*p == '?') {
            o += (size_t)sprintf(out + o, "$%d", ++n);
            p++;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    *nparams = n;
    return out;
}

static bool is_simple_statement(const char *sql)
{
    static const char *const words[] = {"BEGIN", "COMMIT", "ROLLBACK", "START", "END", "SET"};
    sql += strspn(sql, " \t\r\n");
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t n = strlen(words[i]);
        if (strncasecmp(sql, words[i], n) == 0 &&
            (sql[n] == '\0' || sql[n] == ' ' || sql[n] == ';'))
            return true;
    }
    return false;
}

static int map_sqlstate(const char *state);

/* Send the Parse for st on the current connection. A failure's DB_* code:
 * DB_BUSY when the statement waited out lock_timeout (Parse locks the
 * tables it names), DB_UNAVAILABLE when the connection went. */
static int pg_parse(struct pg *pg, struct pgst *ps)
{
    PGresult *res = PQprepare(pg->conn, ps->name, ps->sql, ps->nparams, NULL);
    int rc = DB_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        set_errmsg(pg, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
        rc = PQstatus(pg->conn) != CONNECTION_OK
                 ? DB_UNAVAILABLE
                 : map_sqlstate(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
        if (rc == DB_BUSY || rc == DB_UNAVAILABLE)
            log_debug("db: prepare: %s: \"%s\"", pg->errmsg, ps->sql);
        else
            log_errx("db: prepare failed: %s: \"%s\"", pg->errmsg, ps->sql);
    } else {
        ps->prepared_gen = pg->generation;
    }
    PQclear(res);
    return rc;
}

static void pg_finalize(void *stmt)
{
    struct pgst *ps = stmt;
    if (!ps)
        return;
    PQclear(ps->res);
    for (int i = 0; i < ps->nparams; i++)
        free(ps->values[i]);
    free(ps->values);
    free(ps->lengths);
    free(ps->formats);
    free(ps->sql);
    free(ps);
}

static void *pg_prepare(struct db *db, const char *sql)
{
    struct pg *pg = PG(db);
    struct pgst *ps = xcalloc(1, sizeof *ps);
    ps->sql = translate_placeholders(sql, &ps->nparams);
    ps->simple = ps->nparams == 0 && is_simple_statement(sql);
    snprintf(ps->name, sizeof ps->name, "s%u", ++pg->next_name);
    if (ps->nparams > 0) {
        ps->values = xcalloc((size_t)ps->nparams, sizeof *ps->values);
        ps->lengths = xcalloc((size_t)ps->nparams, sizeof *ps->lengths);
        ps->formats = xcalloc((size_t)ps->nparams, sizeof *ps->formats);
    }
    /* Parse now when we can, so a broken statement is reported where SQLite
     * reports it; after a lost connection the first step parses instead. */
    if (!ps->simple && PQstatus(pg->conn) == CONNECTION_OK &&
        PQtransactionStatus(pg->conn) != PQTRANS_INERROR) {
        int rc = pg_parse(pg, ps);
        if (rc == DB_BUSY || rc == DB_UNAVAILABLE) {
            ps->parse_rc = rc; /* the first step answers it: the transaction is retried */
        } else if (rc != DB_OK) {
            pg_finalize(ps);
            return NULL;
        }
    }
    return ps;
}

static void clear_result(struct pgst *ps)
{
    PQclear(ps->res);
    ps->res = NULL;
    ps->row = ps->nrows = 0;
}

static void pg_reset(struct db_stmt *st)
{
    struct pgst *ps = PGST(st);
    clear_result(ps);
    ps->done = false;
    for (int i = 0; i < ps->nparams; i++) {
        free(ps->values[i]);
        ps->values[i] = NULL;
        ps->lengths[i] = 0;
        ps->formats[i] = 0;
    }
}

static bool pg_stmt_busy(struct db_stmt *st)
{
    return PGST(st)->res != NULL;
}

static int bind_slot(struct db_stmt *st, int idx)
{
    struct pgst *ps = PGST(st);
    if (idx < 1 || idx > ps->nparams) {
        log_errx("db: bind #%d out of range (%d parameters): \"%s\"", idx, ps->nparams, st->sql);
        return -1;
    }
    free(ps->values[idx - 1]);
    ps->values[idx - 1] = NULL;
    return idx - 1;
}

static int pg_bind_int64(struct db_stmt *st, int idx, int64_t v)
{
    int i = bind_slot(st, idx);
    if (i < 0)
        return DB_ERROR;
    struct pgst *ps = PGST(st);
    ps->values[i] = xasprintf("%" PRId64, v);
    ps->formats[i] = 0;
    return DB_OK;
}

static int pg_bind_textn(struct db_stmt *st, int idx, const char *s, size_t len)
{
    int i = bind_slot(st, idx);
    if (i < 0)
        return DB_ERROR;
    struct pgst *ps = PGST(st);
    /* Text parameters end at their first NUL for the server: refuse to cut silently. */
    if (memchr(s, '\0', len)) {
        log_errx("db: bind #%d: text holds a NUL byte: \"%s\"", idx, st->sql);
        return DB_ERROR;
    }
    ps->values[i] = xstrndup(s, len);
    ps->formats[i] = 0;
    return DB_OK;
}

static int pg_bind_blob(struct db_stmt *st, int idx, const void *p, size_t len)
{
    int i = bind_slot(st, idx);
    if (i < 0)
        return DB_ERROR;
    struct pgst *ps = PGST(st);
    ps->values[i] = xmalloc(len + 1);
    if (len)
        memcpy(ps->values[i], p, len);
    ps->lengths[i] = (int)len;
    ps->formats[i] = 1; /* binary: bytes as they are */
    return DB_OK;
}

static int pg_bind_null(struct db_stmt *st, int idx)
{
    return bind_slot(st, idx) < 0 ? DB_ERROR : DB_OK;
}

/* db.h's code for a failed statement, from its SQLSTATE. */
static int map_sqlstate(const char *state)
{
    if (!state)
        return DB_UNAVAILABLE; /* no answer from the server at all */
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 ||
        strcmp(state, "57014") == 0)
        return DB_BUSY; /* serialization failure, deadlock, lock or statement timeout */
    if (strncmp(state, "23", 2) == 0)
        return DB_CONSTRAINT;
    if (strcmp(state, "53100") == 0)
        return DB_FULL;
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
        return DB_UNAVAILABLE; /* connection exception, server shutting down */
    return DB_ERROR;
}

static int pg_execute(struct db *db, struct db_stmt *st)
{
    struct pg *pg = PG(db);
    struct pgst *ps = PGST(st);

    if (pg->tx_lost) {
        /* The transaction died with its connection: nothing may run in its
         * place until db.c's ROLLBACK closes it. */
        if (ps->simple && strncasecmp(ps->sql, "ROLLBACK", 8) == 0) {
            pg->tx_lost = pg->tx_open = false;
            return DB_OK;
        }
        return DB_UNAVAILABLE;
    }
    if (ps->parse_rc != DB_OK) {
        int failed = ps->parse_rc;
        ps->parse_rc = DB_OK;
        if (failed == DB_UNAVAILABLE && pg->tx_open)
            pg->tx_lost = true;
        return failed;
    }
    int rc = ensure_connected(pg);
    if (rc != DB_OK)
        return rc;
    if (!ps->simple && ps->prepared_gen != pg->generation && (rc = pg_parse(pg, ps)) != DB_OK)
        return rc;

    PGresult *res =
        ps->simple ? PQexec(pg->conn, ps->sql)
                   : PQexecPrepared(pg->conn, ps->name, ps->nparams,
                                    (const char *const *)ps->values, ps->lengths, ps->formats, 0);
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
        const char *n = PQcmdTuples(res);
        pg->changes = n && *n ? strtoll(n, NULL, 10) : 0;
        /* The server says whether a transaction is open (BEGIN, COMMIT,
         * ROLLBACK, and ROLLBACK TO SAVEPOINT which leaves it open). */
        pg->tx_open = PQtransactionStatus(pg->conn) != PQTRANS_IDLE;
        if (status == PGRES_TUPLES_OK && PQntuples(res) > 0) {
            ps->res = res;
            ps->nrows = PQntuples(res);
            ps->row = -1;
            return DB_ROW;
        }
        PQclear(res);
        return DB_OK;
    }

    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    set_errmsg(pg, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
    rc = PQstatus(pg->conn) != CONNECTION_OK ? DB_UNAVAILABLE : map_sqlstate(state);
    PQclear(res);
    if (rc == DB_UNAVAILABLE) {
        log_errx("db: postgresql connection lost: %s: \"%s\"", pg->errmsg, st->sql);
        if (pg->tx_open)
            pg->tx_lost = true;
    } else if (rc == DB_BUSY || rc == DB_CONSTRAINT) {
        log_debug("db: %s: \"%s\"", pg->errmsg, st->sql);
    } else {
        log_errx("db: step failed (%s): %s: \"%s\"", state ? state : "-", pg->errmsg, st->sql);
    }
    if (rc != DB_UNAVAILABLE)
        pg->tx_open = PQtransactionStatus(pg->conn) != PQTRANS_IDLE;
    return rc;
}

static int pg_step(struct db_stmt *st)
{
    struct pgst *ps = PGST(st);
    if (ps->done)
        return DB_OK;
    if (!ps->res) {
        int rc = pg_execute(st->db, st);
        if (rc != DB_ROW) {
            ps->done = rc == DB_OK;
            return rc;
        }
    }
    if (++ps->row < ps->nrows)
        return DB_ROW;
    clear_result(ps);
    ps->done = true;
    return DB_OK;
}

static int pg_column_count(struct db_stmt *st)
{
    struct pgst *ps = PGST(st);
    return ps->res ? PQnfields(ps->res) : 0;
}

static bool valid_cell(struct pgst *ps, int col)
{
    return ps->res && ps->row >= 0 && ps->row < ps->nrows && col >= 0 && col < PQnfields(ps->res);
}

static bool pg_column_is_null(struct db_stmt *st, int col)
{
    struct pgst *ps = PGST(st);
    return !valid_cell(ps, col) || PQgetisnull(ps->res, ps->row, col);
}

static const char *pg_column_text(struct db_stmt *st, int col)
{
    struct pgst *ps = PGST(st);
    if (!valid_cell(ps, col) || PQgetisnull(ps->res, ps->row, col))
        return "";
    const char *v = PQgetvalue(ps->res, ps->row, col);
    if (PQftype(ps->res, col) == PG_BOOLOID)
        return v[0] == 't' ? "1" : "0";
    return v;
}

static int64_t pg_column_int64(struct db_stmt *st, int col)
{
    return strtoll(pg_column_text(st, col), NULL, 10);
}

static size_t pg_column_bytes(struct db_stmt *st, int col)
{
    return strlen(pg_column_text(st, col));
}

static const char *pg_column_name(struct db_stmt *st, int col)
{
    struct pgst *ps = PGST(st);
    const char *n = ps->res ? PQfname(ps->res, col) : NULL;
    return n ? n : "";
}

static int64_t pg_changes(struct db *db)
{
    return PG(db)->changes;
}

static int pg_exec(struct db *db, const char *sql, char *err, size_t errlen)
{
    struct pg *pg = PG(db);
    int rc = ensure_connected(pg);
    if (rc != DB_OK) {
        if (err && errlen)
            snprintf(err, errlen, "%s", pg->errmsg);
        return rc;
    }
    PGresult *res = PQexec(pg->conn, sql);
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
        PQclear(res);
        return DB_OK;
    }
    set_errmsg(pg, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
    rc = PQstatus(pg->conn) != CONNECTION_OK
             ? DB_UNAVAILABLE
             : map_sqlstate(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
    PQclear(res);
    if (err && errlen)
        snprintf(err, errlen, "%s", pg->errmsg);
    return rc;
}

static bool pg_in_transaction(struct db *db)
{
    struct pg *pg = PG(db);
    if (pg->tx_lost)
        return true;
    PGTransactionStatusType ts = PQtransactionStatus(pg->conn);
    return ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR || ts == PQTRANS_ACTIVE;
}

static const char *pg_errmsg(struct db *db)
{
    return PG(db)->errmsg;
}

static int pg_table_exists(struct db *db, const char *table, bool *exists)
{
    return db_row_exists(db,
                         "SELECT 1 FROM information_schema.tables "
                         "WHERE table_schema = current_schema() AND table_name = ?",
                         table, NULL, exists);
}

static int pg_column_exists(struct db *db, const char *table, const char *column, bool *exists)
{
    return db_row_exists(db,
                         "SELECT 1 FROM information_schema.columns WHERE table_schema = "
                         "current_schema() AND table_name = lower(?) AND column_name = lower(?)",
                         table, column, exists);
}

/* No WAL file of ours to report or checkpoint: the server manages its own. */
static int64_t pg_wal_size(struct db *db)
{
    (void)db;
    return -1;
}

static int pg_checkpoint(struct db *db)
{
    (void)db;
    return DB_OK;
}

/* What the server's files for this database take (tables, indexes, TOAST). */
static int64_t pg_size_bytes(struct db *db)
{
    struct pg *pg = PG(db);
    if (pg->tx_lost || ensure_connected(pg) != DB_OK)
        return -1;
    PGresult *res = PQexec(pg->conn, "SELECT pg_database_size(current_database())");
    int64_t size = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        size = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    else
        log_errx("db: postgresql: pg_database_size: %.*s",
                 (int)strcspn(PQerrorMessage(pg->conn), "\n"), PQerrorMessage(pg->conn));
    PQclear(res);
    return size;
}

/*
 * Rows copied with explicit ids leave the identity sequence where it was: move
 * it past the largest id so the next generated one does not collide. setval
 * is not undone by a rollback, which only leaves a gap in the ids.
 */
static int pg_sync_identity(struct db *db, const char *table, const char *column)
{
    struct pg *pg = PG(db);
    if (pg->tx_lost)
        return DB_UNAVAILABLE;
    int rc = ensure_connected(pg);
    if (rc != DB_OK)
        return rc;
    /* The names are identifiers db.c checked; the catalog function takes them as values. */
    char *sql = xasprintf("SELECT setval(pg_get_serial_sequence($1, $2), "
                          "COALESCE(MAX(%s), 0) + 1, false) FROM %s",
                          column, table);
    const char *const params[2] = {table, column};
    PGresult *res = PQexecParams(pg->conn, sql, 2, NULL, params, NULL, NULL, 0);
    free(sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        set_errmsg(pg, res ? PQresultErrorMessage(res) : PQerrorMessage(pg->conn));
        rc = PQstatus(pg->conn) != CONNECTION_OK
                 ? DB_UNAVAILABLE
                 : map_sqlstate(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
        if (rc == DB_UNAVAILABLE && pg->tx_open)
            pg->tx_lost = true;
        log_errx("db: moving the identity sequence of %s.%s: %s", table, column, pg->errmsg);
    } else if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        /* pg_get_serial_sequence gives NULL for a column without a sequence. */
        set_errmsg(pg, "no identity sequence");
        log_errx("db: %s.%s has no identity sequence", table, column);
        rc = DB_ERROR;
    }
    PQclear(res);
    return rc;
}

const struct db_driver db_pg_driver = {
    .name = "postgresql",
    .migrations = s4s_pg_migrations,
    .migrations_count = &s4s_pg_migrations_count,
    /* SERIALIZABLE: a transaction that reads and then writes (the CAS read,
     * "one conflict copy per session") behaves as under SQLite's single
     * writer; the server's serialization failures are retried by db.c. */
    .begin_write = "BEGIN ISOLATION LEVEL SERIALIZABLE",
    .begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ",
    /* The server checks its pages as it reads them; what it found (with data
     * checksums on) is counted per database. */
    .integrity_sql = "SELECT CASE WHEN COALESCE(checksum_failures, 0) = 0 THEN 'ok' "
                     "ELSE 'PostgreSQL counted ' || checksum_failures || "
                     "' data checksum failure(s) in this database' END "
                     "FROM pg_stat_database WHERE datname = current_database()",
    /* A session-level advisory lock (taken outside the migration transactions,
     * whose snapshots must begin after it): the key is arbitrary but fixed. */
    .migrate_lock_sql = "SELECT pg_advisory_lock(534834)",
    .migrate_unlock_sql = "SELECT pg_advisory_unlock(534834)",
    /* Enforced by the server at every statement: there can be none. */
    .foreign_key_sql = "SELECT '', '', '' WHERE FALSE",
    .open = pg_open,
    .close = pg_close,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .stmt_busy = pg_stmt_busy,
    .bind_int64 = pg_bind_int64,
    .bind_textn = pg_bind_textn,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .step = pg_step,
    .column_count = pg_column_count,
    .column_is_null = pg_column_is_null,
    .column_int64 = pg_column_int64,
    .column_text = pg_column_text,
    .column_bytes = pg_column_bytes,
    .column_name = pg_column_name,
    .changes = pg_changes,
    .exec = pg_exec,
    .in_transaction = pg_in_transaction,
    .table_exists = pg_table_exists,
    .column_exists = pg_column_exists,
    .wal_size = pg_wal_size,
    .checkpoint = pg_checkpoint,
    .size_bytes = pg_size_bytes,
    .sync_identity = pg_sync_identity,
    .errmsg = pg_errmsg,
};
