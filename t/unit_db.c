/*
 * unit_db.c — TAP tests for db.c and the SQLite driver (db_sqlite.c, both included so their
 * statics are reachable) and the embedded migrations: connection settings,
 * the statement cache, binding, result codes, compare-and-swap, transactions
 * with BUSY retry against a second process holding the write lock, WAL
 * checkpointing, and adopting a database the Python backend made.
 */
#include "../src/db.c"
#include "../src/db_sqlite.c"

#include "tap.h"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/wait.h>

static char tmpdir[64];

static char *tmp_path(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* First column of the first row of a parameterless query, as text (static buffer). */
static const char *query_text(struct db *db, const char *sql)
{
    static char buf[512];
    struct db_stmt *st = db_prepare(db, sql);
    buf[0] = '\0';
    if (st && db_step(st) == DB_ROW)
        snprintf(buf, sizeof buf, "%s", db_column_text(st, 0));
    else
        snprintf(buf, sizeof buf, "(no row)");
    db_reset(st);
    return buf;
}

static int64_t query_int(struct db *db, const char *sql)
{
    int64_t v = -999;
    struct db_stmt *st = db_prepare(db, sql);
    if (st && db_step(st) == DB_ROW)
        v = db_column_int64(st, 0);
    db_reset(st);
    return v;
}

static bool has_column(struct db *db, const char *table, const char *column)
{
    bool exists = false;
    return lite_column_exists(db, table, column, &exists) == DB_OK && exists;
}

static struct db *open_or_die(const char *path, int busy_ms, uint64_t *counter)
{
    struct db_options opt = {busy_ms, true, counter};
    struct db *db = NULL;
    char err[256];
    if (db_open(path, &opt, &db, err, sizeof err) != 0) {
        printf("Bail out! cannot open %s: %s\n", path, err);
        exit(1);
    }
    return db;
}

/* ---- opening ---------------------------------------------------------------- */

static void test_open(void)
{
    char *path = tmp_path("main.db");
    struct db *db = open_or_die(path, 1000, NULL);
    struct stat st;
    ok(stat(path, &st) == 0, "db_open creates the database file");
    is_str(query_text(db, "PRAGMA journal_mode"), "wal", "journal_mode is WAL");
    is_int(query_int(db, "PRAGMA synchronous"), 2, "synchronous is FULL (2)");
    is_int(query_int(db, "PRAGMA foreign_keys"), 1, "foreign keys are on");
    is_int(query_int(db, "PRAGMA busy_timeout"), 1000, "busy_timeout as configured");
    is_str(db_driver_name(db), "sqlite", "driver name");
    db_close(db);

    struct db_options normal = {100, false, NULL};
    char err[256];
    ok(db_open(path, &normal, &db, err, sizeof err) == 0, "reopen with synchronous_full=false");
    is_int(query_int(db, "PRAGMA synchronous"), 1, "synchronous is NORMAL (1) on request");
    db_close(db);

    /* The SQLAlchemy URI forms DATABASE_URI uses. */
    char *uri = xasprintf("sqlite:///%s", path); /* path is absolute: four slashes */
    ok(db_open(uri, &normal, &db, err, sizeof err) == 0, "sqlite:////abs/path URI opens");
    if (db)
        db_close(db);
    free(uri);

    char *missing = xasprintf("%s/no/such/dir/x.db", tmpdir);
    db = NULL;
    ok(db_open(missing, NULL, &db, err, sizeof err) != 0 && db == NULL,
       "missing parent directory is an error");
    ok(strstr(err, "does not exist") != NULL, "… saying the directory does not exist (%s)", err);
    free(missing);

    ok(db_open("postgresql://u:p@nonexistent.invalid/db", NULL, &db, err, sizeof err) != 0 &&
           db == NULL,
       "an unreachable PostgreSQL is an error");
    ok(strncmp(err, "PostgreSQL: could not translate host name", 41) == 0,
       "… saying libpq's reason (%s)", err);
    ok(db_open("mysql://host/db", NULL, &db, err, sizeof err) != 0, "other schemes refused");

    ok(db_open(":memory:", NULL, &db, err, sizeof err) == 0, "in-memory database opens");
    is_int(db_wal_size(db), -1, "in-memory database has no WAL (-1)");
    db_close(db);
    free(path);
}

/* ---- migrations ------------------------------------------------------------- */

struct status_seen {
    int total, applied;
    bool times_ok;
};

static void status_cb(const char *name, bool applied, const char *applied_at, void *vctx)
{
    struct status_seen *s = vctx;
    (void)name;
    s->total++;
    if (applied) {
        s->applied++;
        /* 'YYYY-MM-DD HH:MM:SS.ffffff' */
        if (!applied_at || strlen(applied_at) != 26 || applied_at[4] != '-' ||
            applied_at[10] != ' ' || applied_at[19] != '.')
            s->times_ok = false;
    }
}

static void test_migrate(void)
{
    char *path = tmp_path("main.db");
    struct db *db = open_or_die(path, 1000, NULL);
    char err[512];
    int applied = -1;

    ok(s4s_migrations_count >= 2, "at least two migrations embedded (%zu)", s4s_migrations_count);
    struct status_seen s0 = {0, 0, true};
    ok(db_migration_status(db, status_cb, &s0) == DB_OK && s0.applied == 0 &&
           s0.total == (int)s4s_migrations_count,
       "status before migrating: all pending");

    is_int(db_migrate(db, &applied, err, sizeof err), DB_OK, "migrate succeeds (%s)", err);
    is_int(applied, (long long)s4s_migrations_count, "all migrations applied");
    is_int(db_migrate(db, &applied, err, sizeof err), DB_OK, "second migrate succeeds");
    is_int(applied, 0, "second migrate applies none");
    is_int(query_int(db, "SELECT count(*) FROM schema_migrations"), (long long)s4s_migrations_count,
           "one schema_migrations row per migration");
    is_str(query_text(db, "SELECT name FROM schema_migrations ORDER BY name LIMIT 1"),
           s4s_migrations[0].name, "first recorded name is the first migration");

    struct status_seen s1 = {0, 0, true};
    ok(db_migration_status(db, status_cb, &s1) == DB_OK, "migration status");
    is_int(s1.applied, (long long)s4s_migrations_count, "status: all applied");
    ok(s1.times_ok, "status: applied_at in upstream timestamp format");

    ok(has_column(db, "projects", "version"), "projects.version exists");
    ok(has_column(db, "projects", "sb3_sha256") && has_column(db, "projects", "deleted_at") &&
           has_column(db, "projects", "thumbnail_type") && has_column(db, "assets", "sha256"),
       "002's columns exist");
    is_int(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('project_versions',"
                         "'session_project_versions','conflict_copies')"),
           3, "002's tables exist");
    is_int(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                         "('ix_assets_md5','ix_projects_owner_updated','ix_project_groups_group',"
                         "'ix_user_groups_group','ix_oauth_sessions_user')"),
           5, "indexes exist");
    db_close(db);
    free(path);
}

/* The schema exactly as an older Python backend made it: no projects.version. */
static const char upstream_schema_old[] =
    "CREATE TABLE users (\n\tid VARCHAR(128) NOT NULL, \n\tusername VARCHAR(128) NOT NULL, \n"
    "\temail VARCHAR(128), \n\trole VARCHAR(50), \n\tcreated_at DATETIME, \n"
    "\tlast_login DATETIME, \n\tuser_data JSON, \n\tPRIMARY KEY (id)\n);\n"
    "CREATE TABLE groups (\n\tid INTEGER NOT NULL, \n\tname VARCHAR(128) NOT NULL, \n"
    "\texternal_id VARCHAR(255) NOT NULL, \n\tdescription TEXT, \n\tcreated_at DATETIME, \n"
    "\tPRIMARY KEY (id), \n\tUNIQUE (external_id)\n);\n"
    "CREATE TABLE user_groups (\n\tuser_id VARCHAR(128) NOT NULL, \n"
    "\tgroup_id INTEGER NOT NULL, \n\tjoined_at DATETIME, \n\tPRIMARY KEY (user_id, group_id), \n"
    "\tFOREIGN KEY(user_id) REFERENCES users (id), \n"
    "\tFOREIGN KEY(group_id) REFERENCES groups (id)\n);\n"
    "CREATE TABLE oauth_sessions (\n\tid VARCHAR(36) NOT NULL, \n"
    "\tuser_id VARCHAR(128) NOT NULL, \n\taccess_token TEXT NOT NULL, \n"
    "\trefresh_token TEXT, \n\texpires_at DATETIME NOT NULL, \n\tcreated_at DATETIME, \n"
    "\tlast_accessed DATETIME, \n\tPRIMARY KEY (id), \n"
    "\tFOREIGN KEY(user_id) REFERENCES users (id)\n);\n"
    "CREATE TABLE projects (\n\tid INTEGER NOT NULL, \n\tname VARCHAR(100) NOT NULL, \n"
    "\tdescription TEXT, \n\tsb3_file_path VARCHAR(255), \n\tthumbnail_path VARCHAR(255), \n"
    "\towner_id VARCHAR(128) NOT NULL, \n\tcreated_at DATETIME, \n\tupdated_at DATETIME, \n"
    "\tis_published BOOLEAN, \n\tPRIMARY KEY (id), \n"
    "\tFOREIGN KEY(owner_id) REFERENCES users (id)\n);\n"
    "CREATE TABLE assets (\n\tid INTEGER NOT NULL, \n\tasset_id VARCHAR(128) NOT NULL, \n"
    "\tasset_type VARCHAR(50) NOT NULL, \n\tdata_format VARCHAR(10) NOT NULL, \n"
    "\tsize INTEGER NOT NULL, \n\tmd5 VARCHAR(32) NOT NULL, \n\towner_id VARCHAR(128) NOT NULL, \n"
    "\tfile_path VARCHAR(255) NOT NULL, \n\tcreated_at DATETIME, \n\tPRIMARY KEY (id), \n"
    "\tCONSTRAINT _md5_type_uc UNIQUE (md5, asset_type), \n\tUNIQUE (asset_id), \n"
    "\tFOREIGN KEY(owner_id) REFERENCES users (id)\n);\n"
    "CREATE INDEX ix_assets_md5 ON assets (md5);\n"
    "CREATE TABLE backpack_items (\n\tid VARCHAR(36) NOT NULL, \n\ttype VARCHAR(20) NOT NULL, \n"
    "\tname VARCHAR(255) NOT NULL, \n\tmime VARCHAR(50) NOT NULL, \n"
    "\tbody VARCHAR(128) NOT NULL, \n\tthumbnail VARCHAR(128) NOT NULL, \n"
    "\towner_id VARCHAR(128) NOT NULL, \n\tcreated_at DATETIME, \n\tupdated_at DATETIME, \n"
    "\tPRIMARY KEY (id), \n\tFOREIGN KEY(owner_id) REFERENCES users (id)\n);\n"
    "CREATE TABLE project_groups (\n\tproject_id INTEGER NOT NULL, \n"
    "\tgroup_id INTEGER NOT NULL, \n\tpublished_at DATETIME, \n"
    "\tPRIMARY KEY (project_id, group_id), \n"
    "\tFOREIGN KEY(project_id) REFERENCES projects (id), \n"
    "\tFOREIGN KEY(group_id) REFERENCES groups (id)\n);\n";

static const char upstream_rows[] =
    "INSERT INTO users (id, username, email, role, created_at) VALUES "
    "('u-1', 'Anna', 'anna@example.org', 'student', '2025-03-01 08:00:00.123456');\n"
    "INSERT INTO groups (id, name, external_id) VALUES (7, 'Klasse 5a', 'ext-5a');\n"
    "INSERT INTO user_groups (user_id, group_id) VALUES ('u-1', 7);\n"
    "INSERT INTO projects (id, name, description, sb3_file_path, owner_id, created_at, "
    "updated_at, is_published) VALUES (42, 'Übung 1 & 2', 'Created on 2025-03-01', "
    "'/srv/s4s/uploads/projects/42_u-1.sb3', 'u-1', '2025-03-01 08:00:00', "
    "'2025-03-02 09:30:00.5', 1);\n"
    "INSERT INTO project_groups (project_id, group_id) VALUES (42, 7);\n";

static void test_adopt_upstream(void)
{
    char *path = tmp_path("python.db");
    sqlite3 *raw = NULL;
    char *msg = NULL;
    /* Made the way the Python backend makes it: default rollback journal, no WAL. */
    ok(sqlite3_open(path, &raw) == SQLITE_OK &&
           sqlite3_exec(raw, upstream_schema_old, NULL, NULL, &msg) == SQLITE_OK &&
           sqlite3_exec(raw, upstream_rows, NULL, NULL, &msg) == SQLITE_OK,
       "upstream database without projects.version created (%s)", msg ? msg : "ok");
    sqlite3_free(msg);
    sqlite3_close(raw);

    struct db *db = open_or_die(path, 1000, NULL);
    char err[512];
    int applied = -1;
    ok(!has_column(db, "projects", "version"), "old upstream projects lacks version");
    is_int(db_migrate(db, &applied, err, sizeof err), DB_OK, "migrate adopts it (%s)", err);
    is_int(applied, (long long)s4s_migrations_count, "all migrations recorded");
    ok(has_column(db, "projects", "version"), "projects.version added");
    is_int(query_int(db, "SELECT version FROM projects WHERE id = 42"), 1,
           "existing project has version 1");
    is_str(query_text(db, "SELECT name FROM projects WHERE id = 42"), "Übung 1 & 2",
           "project title intact");
    is_str(query_text(db, "SELECT sb3_file_path FROM projects WHERE id = 42"),
           "/srv/s4s/uploads/projects/42_u-1.sb3", "file path intact");
    is_str(query_text(db, "SELECT updated_at FROM projects WHERE id = 42"), "2025-03-02 09:30:00.5",
           "timestamp intact");
    is_int(query_int(db, "SELECT count(*) FROM project_groups WHERE project_id = 42"), 1,
           "share intact");
    is_str(query_text(db, "SELECT email FROM users WHERE id = 'u-1'"), "anna@example.org",
           "user intact");
    is_str(query_text(db, "PRAGMA journal_mode"), "wal", "adopted database switched to WAL");
    is_int(query_int(db, "PRAGMA foreign_key_check"), -999, "no foreign key violations");
    is_str(query_text(db, "PRAGMA integrity_check"), "ok", "integrity check ok");
    is_int(db_migrate(db, &applied, err, sizeof err), DB_OK, "migrating again works");
    is_int(applied, 0, "… and applies nothing");

    /* A new project row without version gets the added column's default. */
    struct db_stmt *st = db_prepare(db, "INSERT INTO projects (name, owner_id) VALUES (?, ?)");
    db_bind_text(st, 1, "neu");
    db_bind_text(st, 2, "u-1");
    is_int(db_step(st), DB_OK, "insert without version on adopted db");
    is_int(query_int(db, "SELECT version FROM projects WHERE name = 'neu'"), 1, "… defaults to 1");
    db_close(db);
    free(path);

    /* A newer Python database already has version: the directive leaves it alone. */
    path = tmp_path("python-new.db");
    ok(sqlite3_open(path, &raw) == SQLITE_OK &&
           sqlite3_exec(raw, upstream_schema_old, NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_exec(raw, "ALTER TABLE projects ADD COLUMN version INTEGER NOT NULL DEFAULT 3",
                        NULL, NULL, NULL) == SQLITE_OK &&
           sqlite3_exec(raw, upstream_rows, NULL, NULL, NULL) == SQLITE_OK,
       "upstream database with projects.version created");
    sqlite3_close(raw);
    db = open_or_die(path, 1000, NULL);
    is_int(db_migrate(db, &applied, err, sizeof err), DB_OK, "migrate adopts it too (%s)", err);
    is_int(query_int(db, "SELECT version FROM projects WHERE id = 42"), 3,
           "existing version column and value untouched");
    db_close(db);
    free(path);
}

/* Directive handling and a failing migration leaving nothing behind. */
static int apply_text_tx(struct db *db, void *vctx)
{
    const char **text = vctx;
    static char err[256];
    err[0] = '\0';
    int rc = apply_migration_sql(db, text[0], err, sizeof err);
    text[1] = err;
    return rc;
}

static void test_directives(void)
{
    struct db *db = open_or_die(":memory:", 100, NULL);
    const char *ctx[2];

    ctx[0] = "CREATE TABLE d (a INTEGER);\n"
             "--@ add-column d b TEXT NOT NULL DEFAULT 'x'\n"
             "--@ add-column d B TEXT\n" /* same column, other case: no-op */
             "INSERT INTO d (a) VALUES (1);\n"
             "--@   add-column   d   c   INTEGER\r\n"
             "UPDATE d SET c = 5;\n";
    is_int(db_transaction(db, true, apply_text_tx, ctx), DB_OK,
           "directives run in order between SQL chunks (%s)", ctx[1]);
    is_str(query_text(db, "SELECT b || c FROM d"), "x5", "added columns usable by later SQL");

    ctx[0] = "--@ add-column d x;DROP TABLE d TEXT\n";
    is_int(db_transaction(db, true, apply_text_tx, ctx), DB_ERROR, "bad column name refused");
    ok(strstr(ctx[1], "bad add-column") != NULL, "… with a message (%s)", ctx[1]);
    ctx[0] = "--@ add-column d y TEXT; DROP TABLE d\n";
    is_int(db_transaction(db, true, apply_text_tx, ctx), DB_ERROR, "';' in a definition refused");
    ctx[0] = "--@ add-column d z\n";
    is_int(db_transaction(db, true, apply_text_tx, ctx), DB_ERROR, "missing definition refused");
    ctx[0] = "--@ drop-everything\n";
    is_int(db_transaction(db, true, apply_text_tx, ctx), DB_ERROR, "unknown directive refused");
    ok(strstr(ctx[1], "unknown migration directive") != NULL, "… with a message (%s)", ctx[1]);
    ctx[0] = "--@ add-column nosuchtable q TEXT\n";
    is_int(db_transaction(db, true, apply_text_tx, ctx), DB_ERROR, "missing table is an error");
    is_int(query_int(db, "SELECT count(*) FROM d"), 1, "table d still there");

    /* A migration that fails half-way leaves no trace, not even its first statements. */
    ok(db_exec(db, "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT "
                   "NULL)") == DB_OK,
       "schema_migrations created");
    static const struct migration bad = {"999_bad", "CREATE TABLE half (x);\n"
                                                    "--@ add-column d late TEXT\n"
                                                    "SELECT nope FROM nowhere;\n"};
    char why[256] = "";
    struct migrate_ctx mctx = {&bad, false, why, sizeof why};
    is_int(db_transaction(db, true, migrate_one_tx, &mctx), DB_ERROR, "failing migration fails");
    ok(strstr(why, "nowhere") != NULL, "… saying why (%s)", why);
    is_int(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'half'"), 0,
           "its table was rolled back");
    ok(!has_column(db, "d", "late"), "its added column was rolled back");
    is_int(query_int(db, "SELECT count(*) FROM schema_migrations"), 0, "and it is not recorded");
    db_close(db);
}

/* ---- statements ------------------------------------------------------------- */

static void test_statements(void)
{
    char *path = tmp_path("main.db");
    struct db *db = open_or_die(path, 1000, NULL);

    const char *sql = "SELECT id, username FROM users WHERE id = ?";
    struct db_stmt *a = db_prepare(db, sql);
    struct db_stmt *b = db_prepare(db, sql);
    char *copy = xstrdup(sql);
    struct db_stmt *c = db_prepare(db, copy);
    ok(a != NULL && a == b, "same SQL pointer → same cached statement");
    ok(a == c, "same SQL text at another address → same cached statement");
    free(copy);

    /* Far more statements than the initial table: growth keeps every entry findable. */
    struct db_stmt *many[300];
    bool distinct = true, stable = true;
    for (int i = 0; i < 300; i++) {
        char q[64];
        snprintf(q, sizeof q, "SELECT %d + ?", i);
        many[i] = db_prepare(db, q);
        if (!many[i] || (i > 0 && many[i] == many[i - 1]))
            distinct = false;
    }
    for (int i = 0; i < 300; i++) {
        char q[64];
        snprintf(q, sizeof q, "SELECT %d + ?", i);
        if (db_prepare(db, q) != many[i])
            stable = false;
    }
    ok(distinct, "300 distinct statements cached");
    ok(stable, "… each found again after the table grew (cap %zu, used %zu)", db->cap, db->used);
    ok(db_prepare(db, sql) == a, "first statement still cached");
    db_bind_int64(many[299], 1, 1);
    ok(db_step(many[299]) == DB_ROW && db_column_int64(many[299], 0) == 300,
       "cached statement runs");
    /* db_prepare hands it back reset and unbound even though it was left mid-row. */
    struct db_stmt *again = db_prepare(db, "SELECT 299 + ?");
    ok(again == many[299] && db_step(again) == DB_ROW && db_column_is_null(again, 0),
       "db_prepare resets and clears bindings");
    db_reset(again);

    ok(db_prepare(db, "SELEKT nonsense") == NULL, "syntax error → NULL");
    ok(db_prepare(db, "SELECT 1; SELECT 2") == NULL, "two statements → NULL");
    ok(db_prepare(db, "SELECT 3;  \n") != NULL, "trailing semicolon and space are fine");
    ok(db_prepare(db, "SELECT 4; -- why\n") != NULL, "a trailing comment is fine");
    ok(db_prepare(db, "SELECT 5; SELEKT") == NULL, "trailing junk → NULL");
    is_int(db_exec(db, "THIS IS NOT SQL"), DB_ERROR, "db_exec error → DB_ERROR");

    /* Round trip of text that would break string-built SQL, and of non-ASCII. */
    const char *tricky = "O'Brien said \"hi\"; DROP TABLE users; -- Übung ✓ 🎉 \\ %s";
    struct db_stmt *ins = db_prepare(db, "INSERT INTO users (id, username, user_data) "
                                         "VALUES (?, ?, ?)");
    db_bind_text(ins, 1, "u-tricky");
    db_bind_text(ins, 2, tricky);
    db_bind_null(ins, 3);
    is_int(db_step(ins), DB_OK, "insert with bound tricky text");
    struct db_stmt *sel = db_prepare(db, "SELECT username, user_data, length(username) "
                                         "FROM users WHERE id = ?");
    db_bind_text(sel, 1, "u-tricky");
    is_int(db_step(sel), DB_ROW, "select it back");
    is_str(db_column_text(sel, 0), tricky, "text identical");
    is_int(db_column_bytes(sel, 0), (long long)strlen(tricky), "byte length identical");
    ok(db_column_is_null(sel, 1), "NULL bound as NULL");
    is_str(db_column_text(sel, 1), "", "NULL reads as \"\"");
    is_int(db_column_count(sel), 3, "column count");
    is_int(db_step(sel), DB_OK, "then done");
    is_int(query_int(db, "SELECT count(*) FROM users"), 1, "users table not dropped, one row");

    /* Length-counted text with an embedded NUL, and blobs. */
    struct db_stmt *t = db_prepare(db, "SELECT ?, length(CAST(? AS BLOB)), ?, typeof(?)");
    db_bind_textn(t, 1, "abc\0def", 7);
    db_bind_textn(t, 2, "abc\0def", 7);
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0, 'x'};
    db_bind_blob(t, 3, bin, sizeof bin);
    db_bind_blob(t, 4, NULL, 0);
    is_int(db_step(t), DB_ROW, "textn/blob select");
    is_int(db_column_int64(t, 1), 7, "textn keeps all 7 bytes");
    const char *blob = db_column_text(t, 2);
    ok(db_column_bytes(t, 2) == sizeof bin && memcmp(blob, bin, sizeof bin) == 0,
       "blob round trip");
    is_str(db_column_text(t, 3), "blob", "empty blob is a blob, not NULL");
    db_reset(t);
    ok(db_bind_int64(t, 9, 1) == DB_ERROR, "bind out of range → DB_ERROR");

    /* ON CONFLICT upsert: uniqueness in the schema, no check-then-insert. */
    const char *upsert = "INSERT INTO groups (name, external_id) VALUES (?, ?) "
                         "ON CONFLICT (external_id) DO UPDATE SET name = excluded.name "
                         "RETURNING id";
    struct db_stmt *u = db_prepare(db, upsert);
    db_bind_text(u, 1, "Klasse 5a");
    db_bind_text(u, 2, "ext-5a");
    ok(db_step(u) == DB_ROW, "upsert insert returns a row");
    int64_t gid = db_column_int64(u, 0);
    db_reset(u);
    u = db_prepare(db, upsert);
    db_bind_text(u, 1, "Klasse 5a (neu)");
    db_bind_text(u, 2, "ext-5a");
    ok(db_step(u) == DB_ROW && db_column_int64(u, 0) == gid, "upsert update returns same id");
    db_reset(u);
    is_int(query_int(db, "SELECT count(*) FROM groups"), 1, "still one group");
    is_str(query_text(db, "SELECT name FROM groups"), "Klasse 5a (neu)", "name updated");

    /* Constraint results. */
    struct db_stmt *dup = db_prepare(db, "INSERT INTO users (id, username) VALUES (?, ?)");
    db_bind_text(dup, 1, "u-tricky");
    db_bind_text(dup, 2, "again");
    is_int(db_step(dup), DB_CONSTRAINT, "duplicate primary key → DB_CONSTRAINT");
    struct db_stmt *fk =
        db_prepare(db, "INSERT INTO user_groups (user_id, group_id) VALUES (?, ?)");
    db_bind_text(fk, 1, "nobody");
    db_bind_int64(fk, 2, gid);
    is_int(db_step(fk), DB_CONSTRAINT, "foreign key violation → DB_CONSTRAINT");

    /* Versioned compare-and-swap. */
    struct db_stmt *p = db_prepare(db, "INSERT INTO projects (name, owner_id, version, "
                                       "created_at, updated_at) VALUES (?, ?, 1, ?, ?) "
                                       "RETURNING id");
    db_bind_text(p, 1, "Projekt");
    db_bind_text(p, 2, "u-tricky");
    db_bind_text(p, 3, "2026-01-01 00:00:00.000000");
    db_bind_text(p, 4, "2026-01-01 00:00:00.000000");
    ok(db_step(p) == DB_ROW, "project inserted with RETURNING");
    int64_t pid = db_column_int64(p, 0);
    db_reset(p);
    const char *cas = "UPDATE projects SET version = version + 1 WHERE id = ? AND version = ?";
    struct db_stmt *w = db_prepare(db, cas);
    db_bind_int64(w, 1, pid);
    db_bind_int64(w, 2, 1);
    is_int(db_step(w), DB_OK, "CAS update runs");
    is_int(db_changes(db), 1, "CAS with the right version changes 1 row");
    w = db_prepare(db, cas);
    db_bind_int64(w, 1, pid);
    db_bind_int64(w, 2, 1);
    is_int(db_step(w), DB_OK, "stale CAS update runs");
    is_int(db_changes(db), 0, "CAS with a stale version changes 0 rows");
    is_int(query_int(db, "SELECT max(version) FROM projects"), 2, "version is 2");

    db_close(db);
    free(path);
}

/* ---- transactions ------------------------------------------------------------ */

static int tx_insert(struct db *db, void *ctx)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO tx_t (v) VALUES (?)");
    if (!st || db_bind_text(st, 1, ctx) != DB_OK)
        return DB_ERROR;
    return db_step(st);
}

static int tx_insert_then_fail(struct db *db, void *ctx)
{
    int rc = tx_insert(db, ctx);
    return rc == DB_OK ? DB_ERROR : rc;
}

static int tx_insert_then_constraint(struct db *db, void *ctx)
{
    (void)ctx;
    if (tx_insert(db, "fine") != DB_OK)
        return DB_ERROR;
    return tx_insert(db, "dup"); /* v is UNIQUE and "dup" exists */
}

static int tx_busy_twice(struct db *db, void *ctx)
{
    int *calls = ctx;
    if (++*calls <= 2)
        return DB_BUSY;
    return tx_insert(db, "after-busy");
}

static int tx_leave_select_open(struct db *db, void *ctx)
{
    (void)ctx;
    struct db_stmt *st = db_prepare(db, "SELECT v FROM tx_t");
    if (db_step(st) != DB_ROW)
        return DB_ERROR;
    /* Returns with the SELECT mid-rows and a write done: COMMIT must still work. */
    return tx_insert(db, "with-open-select");
}

static int tx_leave_returning_open(struct db *db, void *ctx)
{
    (void)ctx;
    struct db_stmt *st = db_prepare(db, "INSERT INTO tx_t (v) VALUES ('ret1'), ('ret2') "
                                        "RETURNING v");
    /* One row of two read: the INSERT is a pending write when fn returns. */
    return db_step(st) == DB_ROW ? DB_OK : DB_ERROR;
}

static int tx_insert_other(struct db *db, void *ctx)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO tx_other (v) VALUES (?)");
    if (!st || db_bind_text(st, 1, ctx) != DB_OK)
        return DB_ERROR;
    return db_step(st);
}

static int tx_nested(struct db *db, void *ctx)
{
    return db_transaction(db, true, tx_insert, ctx);
}

static void test_transactions(void)
{
    char *path = tmp_path("tx.db");
    uint64_t counter = 0;
    struct db *db = open_or_die(path, 1000, &counter);
    ok(db_exec(db, "CREATE TABLE tx_t (v TEXT UNIQUE)") == DB_OK, "table created");

    is_int(db_transaction(db, true, tx_insert, "one"), DB_OK, "write transaction commits");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v = 'one'"), 1, "row is there");
    is_int(db_transaction(db, true, tx_insert_then_fail, "two"), DB_ERROR,
           "fn's DB_ERROR is returned");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v = 'two'"), 0, "and rolled back");
    ok(sqlite3_get_autocommit(LITE(db)->h), "no transaction left open");
    db_exec(db, "INSERT INTO tx_t (v) VALUES ('dup')");
    is_int(db_transaction(db, true, tx_insert_then_constraint, NULL), DB_CONSTRAINT,
           "fn's DB_CONSTRAINT is returned");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v = 'fine'"), 0,
           "earlier insert of that transaction rolled back");
    is_int(counter, 0, "no busy retries so far");

    int calls = 0;
    is_int(db_transaction(db, true, tx_busy_twice, &calls), DB_OK, "fn's DB_BUSY is retried");
    is_int(calls, 3, "fn ran three times");
    is_int(counter, 2, "two retries counted");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v = 'after-busy'"), 1,
           "retried transaction committed once");

    is_int(db_transaction(db, true, tx_leave_select_open, NULL), DB_OK,
           "commit with a statement left mid-rows");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v = 'with-open-select'"), 1,
           "… and its write is kept");
    is_int(db_transaction(db, true, tx_leave_returning_open, NULL), DB_OK,
           "commit with an INSERT … RETURNING left mid-rows");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v LIKE 'ret%'"), 2,
           "… both of its rows kept");

    /* A transaction per row of a SELECT that runs outside it: the loop is not restarted. */
    db_exec(db, "CREATE TABLE tx_other (v TEXT)");
    struct db_stmt *outer = db_prepare(db, "SELECT v FROM tx_t WHERE v LIKE 'ret%' ORDER BY v");
    int rows = 0, tx_ok = 0;
    while (rows < 10 && db_step(outer) == DB_ROW) {
        rows++;
        char *v = xstrdup(db_column_text(outer, 0));
        tx_ok += db_transaction(db, true, tx_insert_other, v) == DB_OK;
        free(v);
    }
    db_reset(outer);
    ok(rows == 2 && tx_ok == 2, "outer SELECT visits each row once (%d rows, %d commits)", rows,
       tx_ok);
    is_int(query_int(db, "SELECT count(*) FROM tx_other"), 2, "… and every inner commit landed");
    is_int(db_transaction(db, false, tx_insert, "read-tx-write"), DB_OK,
           "deferred transaction may write when uncontended");

    is_int(db_transaction(db, true, tx_nested, "nested"), DB_ERROR, "nested transaction refused");
    is_int(query_int(db, "SELECT count(*) FROM tx_t WHERE v = 'nested'"), 0, "… nothing written");

    /* WAL growth and the TRUNCATE checkpoint. */
    ok(db_wal_size(db) > 0, "WAL has content after writes (%lld bytes)",
       (long long)db_wal_size(db));
    is_int(db_checkpoint(db), DB_OK, "checkpoint");
    is_int(db_wal_size(db), 0, "WAL truncated to 0");
    is_int(query_int(db, "PRAGMA busy_timeout"), 1000, "busy_timeout restored after checkpoint");
    db_close(db);
    free(path);
}

/* ---- BUSY against another process ------------------------------------------- */

/*
 * Fork a child that opens its own connection (nothing crosses the fork: the
 * parent has no connection to this file yet), takes the write lock with
 * BEGIN IMMEDIATE, tells the parent, holds it for hold_ms and commits.
 */
static pid_t spawn_locker(const char *path, int hold_ms)
{
    int fds[2];
    if (pipe(fds) < 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        struct db *cdb = NULL;
        char err[256];
        struct db_options opt = {1000, true, NULL};
        if (db_open(path, &opt, &cdb, err, sizeof err) != 0 ||
            db_exec(cdb, "BEGIN IMMEDIATE") != DB_OK ||
            db_exec(cdb, "INSERT INTO b (v) VALUES ('child')") != DB_OK)
            _exit(2);
        (void)!write(fds[1], "L", 1);
        struct timespec ts = {hold_ms / 1000, (long)(hold_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        db_exec(cdb, "COMMIT");
        _exit(0);
    }
    close(fds[1]);
    char c = 0;
    ssize_t n = read(fds[0], &c, 1);
    close(fds[0]);
    if (n != 1 || c != 'L') {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

static void make_busy_db(const char *path)
{
    struct db *db = open_or_die(path, 1000, NULL);
    db_exec(db, "CREATE TABLE b (v TEXT)");
    db_close(db);
}

static int tx_insert_b(struct db *db, void *ctx)
{
    struct db_stmt *st = db_prepare(db, "INSERT INTO b (v) VALUES (?)");
    if (!st || db_bind_text(st, 1, ctx) != DB_OK)
        return DB_ERROR;
    return db_step(st);
}

static int tx_read_b(struct db *db, void *ctx)
{
    int64_t *n = ctx;
    struct db_stmt *st = db_prepare(db, "SELECT count(*) FROM b");
    int rc = db_step(st);
    if (rc != DB_ROW)
        return rc;
    *n = db_column_int64(st, 0);
    return DB_OK;
}

static void test_busy(void)
{
    /* A writer holding the lock for 300 ms, a busy timeout of 1 s: the write waits it out. */
    char *path = tmp_path("busy1.db");
    make_busy_db(path);
    pid_t child = spawn_locker(path, 300);
    ok(child > 0, "child holds the write lock");

    uint64_t counter = 0;
    struct db *db = open_or_die(path, 1000, &counter);
    int64_t seen = -1;
    is_int(db_transaction(db, false, tx_read_b, &seen), DB_OK,
           "read transaction proceeds while another process writes (WAL)");
    is_int(seen, 0, "… seeing the last committed state");
    is_int(counter, 0, "… without retries");

    int64_t t0 = now_mono_ms();
    int rc = db_transaction(db, true, tx_insert_b, "parent");
    int64_t took = now_mono_ms() - t0;
    is_int(rc, DB_OK, "write transaction succeeds after waiting (%lld ms)", (long long)took);
    ok(took >= 200, "it waited for the other writer");
    int status = -1;
    waitpid(child, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child committed");
    is_int(query_int(db, "SELECT count(*) FROM b"), 2, "both rows committed");
    db_close(db);
    free(path);

    /* A writer holding the lock for longer than the busy timeout (200 ms):
     * DB_BUSY once the one budget for all attempts is spent, not after one
     * full lock wait per retry. */
    path = tmp_path("busy2.db");
    make_busy_db(path);
    child = spawn_locker(path, 3000);
    ok(child > 0, "child holds the write lock for 3 s");
    counter = 0;
    db = open_or_die(path, 200, &counter);
    t0 = now_mono_ms();
    rc = db_transaction(db, true, tx_insert_b, "parent");
    took = now_mono_ms() - t0;
    is_int(rc, DB_BUSY, "the budget spent → DB_BUSY (%lld ms)", (long long)took);
    ok(counter >= 1, "retried at least once, every retry counted (%llu)",
       (unsigned long long)counter);
    ok(took >= 200 && took < 1000, "gave up after about the busy timeout, not 20 of them");
    ok(sqlite3_get_autocommit(LITE(db)->h), "no transaction left open");
    /* The lock wait is restored for statements outside transactions. */
    t0 = now_mono_ms();
    struct db_stmt *ins = db_prepare(db, "INSERT INTO b (v) VALUES ('outside')");
    is_int(ins ? db_step(ins) : DB_ERROR, DB_BUSY, "a statement outside a transaction: busy too");
    took = now_mono_ms() - t0;
    if (ins)
        db_reset(ins);
    ok(took >= 180, "… after the full busy timeout again (%lld ms)", (long long)took);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    is_int(db_transaction(db, true, tx_insert_b, "later"), DB_OK,
           "works once the other process is gone");
    db_close(db);
    free(path);
}

/* Passwords never reach a log line. */
static void test_uri_display(void)
{
    static const char *const cases[][2] = {
        {"postgresql://s4s:geheim@db.school.lan:5432/s4s",
         "postgresql://s4s:***@db.school.lan:5432/s4s"},
        {"postgres://s4s@db/s4s", "postgres://s4s@db/s4s"},
        {"postgresql://db/s4s?user=s4s&password=geheim&sslmode=require",
         "postgresql://db/s4s?user=s4s&password=***&sslmode=require"},
        {"postgresql://u:p%40ss@h/d?password=x", "postgresql://u:***@h/d?password=***"},
        {"sqlite:////var/lib/s4s/main.db", "sqlite:////var/lib/s4s/main.db"},
        {"/var/lib/s4s/main.db", "/var/lib/s4s/main.db"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *shown = db_uri_display(cases[i][0]);
        is_str(shown, cases[i][1], "db_uri_display(%s)", cases[i][0]);
        free(shown);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s4s-unit-db-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    /* Driver errors are expected in the failure tests; keep them off the TAP stream. */
    log_set_level(getenv("TEST_VERBOSE") ? LOG_LVL_DEBUG : -1);

    test_open();
    test_migrate();
    test_adopt_upstream();
    test_directives();
    test_statements();
    test_transactions();
    test_busy();
    test_uri_display();

    rm_tree(tmpdir);
    return tap_done();
}
