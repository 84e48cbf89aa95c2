/*
 * copydb.c — s4s-admin copy-db: move an installation's rows from one
 * database to another (SQLite to PostgreSQL, back, or between two of a kind).
 * The target is migrated, then filled in ONE write transaction from ONE read
 * transaction of the source (a consistent snapshot while a server writes on),
 * table by table in foreign-key order, every value as text or NULL; identity
 * sequences are moved past the copied ids. Then every table of the target is
 * read back and compared with what was copied: row counts and a SHA-256
 * digest. Blobs are not copied: both databases name the same files in
 * DATA_DIR.
 */
#include "admin.h"
#include "config.h"
#include "db.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SHA256_LEN 32

/*
 * Every table of our schema (sql/ and sql/pg/, schema_migrations aside) in
 * foreign-key order, with every column. The primary key is the first nkey
 * columns. Add a column here when a migration adds one: copy-db refuses a
 * source whose table has a column this list lacks rather than drop it.
 */
static const struct copy_table {
    const char *name;
    const char *columns;  /* comma-separated */
    int nkey;             /* the primary key: the first nkey columns */
    const char *identity; /* the column whose ids the database generates, or NULL */
} tables[] = {
    {"users", "id, username, email, role, created_at, last_login, user_data", 1, NULL},
    {"groups", "id, name, external_id, description, created_at", 1, "id"},
    {"user_groups", "user_id, group_id, joined_at", 2, NULL},
    {"oauth_sessions",
     "id, user_id, access_token, refresh_token, expires_at, created_at, last_accessed", 1, NULL},
    {"projects",
     "id, name, description, sb3_file_path, thumbnail_path, version, owner_id, created_at, "
     "updated_at, is_published, sb3_sha256, sb3_size, thumbnail_sha256, thumbnail_type, deleted_at",
     1, "id"},
    {"project_groups", "project_id, group_id, published_at", 2, NULL},
    {"project_versions", "project_id, version, sha256, size, created_by, created_at", 2, NULL},
    {"session_project_versions", "session_id, project_id, version", 2, NULL},
    {"conflict_copies", "session_id, project_id, copy_id", 2, NULL},
    {"assets",
     "id, asset_id, asset_type, data_format, size, md5, owner_id, file_path, created_at, sha256", 1,
     "id"},
    {"backpack_items", "id, type, name, mime, body, thumbnail, owner_id, created_at, updated_at", 1,
     NULL},
};
#define NTABLES ARRAY_LEN(tables)

/* The statements for one table, built once from the list above and kept for
 * the run (the statement cache remembers the text's address). */
struct table_sql {
    int ncols;
    char **cols; /* the column names, split */
    char *probe; /* SELECT * … LIMIT 1: which columns the source really has */
    char *select, *insert, *count, *empty;
};

/* What one side holds of one table: rows and the digest of their values. */
struct table_sum {
    int64_t rows;
    unsigned char sha[SHA256_LEN];
};

/* Row digests of one table, sorted before they are combined. */
struct digests {
    unsigned char *v;
    size_t n, cap;
    unsigned char *buf; /* one row's encoding */
    size_t buflen, bufcap;
};

struct copy {
    bool force;
    struct db *src, *dst;
    struct table_sql sql[NTABLES];
    struct table_sum copied[NTABLES]; /* the source's snapshot, as it was written */
    struct table_sum target[NTABLES]; /* the target read back after the commit */
    int64_t had_rows[NTABLES];        /* rows the target held before the copy */
    bool refused;                     /* the target held rows and --force was not given */
    bool unknown_column;              /* the source has a column the list lacks (reported) */
    int write_rc;                     /* the target's transaction's result */
    struct digests dg;
};

/* ---- the statements ---------------------------------------------------------- */

static bool plain_name(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* "a, b, c" → q->cols; false when a name is not a plain identifier (a typo above). */
static bool split_columns(const char *list, struct table_sql *q)
{
    bool ok = true;
    for (const char *p = list;;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, ",");
        char *name = xstrndup(p, len);
        while (len > 0 && name[len - 1] == ' ')
            name[--len] = '\0';
        q->cols = xrealloc(q->cols, (size_t)(q->ncols + 1) * sizeof *q->cols);
        q->cols[q->ncols++] = name;
        ok &= plain_name(name);
        p += strcspn(p, ",");
        if (!*p)
            return ok;
        p++;
    }
}

static int build_sql(struct copy *c)
{
    for (size_t t = 0; t < NTABLES; t++) {
        const struct copy_table *tb = &tables[t];
        struct table_sql *q = &c->sql[t];
        if (!split_columns(tb->columns, q) || !plain_name(tb->name) || tb->nkey < 1 ||
            tb->nkey > q->ncols) {
            fprintf(stderr, "s4s-admin: copy-db: bad table entry '%s'\n", tb->name);
            return -1;
        }
        int n = q->ncols;
        /* The key's columns, for ORDER BY: the source is read in key order. */
        size_t keylen = 0;
        for (int i = 0; i < tb->nkey; i++)
            keylen += strlen(q->cols[i]) + 2;
        char *key = xmalloc(keylen + 1), *k = key;
        for (int i = 0; i < tb->nkey; i++)
            k += sprintf(k, "%s%s", i ? ", " : "", q->cols[i]);
        char *marks = xmalloc((size_t)n * 3 + 1), *m = marks;
        for (int i = 0; i < n; i++)
            m += sprintf(m, "%s?", i ? ", " : "");
        q->probe = xasprintf("SELECT * FROM %s LIMIT 1", tb->name);
        q->select = xasprintf("SELECT %s FROM %s ORDER BY %s", tb->columns, tb->name, key);
        q->insert = xasprintf("INSERT INTO %s (%s) VALUES (%s)", tb->name, tb->columns, marks);
        q->count = xasprintf("SELECT count(*) FROM %s", tb->name);
        q->empty = xasprintf("DELETE FROM %s", tb->name);
        free(key);
        free(marks);
    }
    return 0;
}

static void free_sql(struct copy *c)
{
    for (size_t t = 0; t < NTABLES; t++) {
        struct table_sql *q = &c->sql[t];
        for (int i = 0; i < q->ncols; i++)
            free(q->cols[i]);
        free(q->cols);
        free(q->probe);
        free(q->select);
        free(q->insert);
        free(q->count);
        free(q->empty);
    }
}

/* ---- digests ------------------------------------------------------------------- */

static void dg_start(struct digests *d)
{
    d->n = 0;
    d->buflen = 0;
}

static void dg_put(struct digests *d, const void *p, size_t n)
{
    if (d->buflen + n > d->bufcap) {
        d->bufcap = (d->buflen + n) * 2 + 256;
        d->buf = xrealloc(d->buf, d->bufcap);
    }
    if (n)
        memcpy(d->buf + d->buflen, p, n);
    d->buflen += n;
}

/*
 * One value of a row: NULL is the byte 0, a value the byte 1, its length
 * (8 bytes, big-endian) and its bytes, so NULL, "" and any concatenation
 * stay apart.
 */
static void dg_value(struct digests *d, bool null, const char *v, size_t n)
{
    unsigned char head[9];
    if (null) {
        head[0] = 0;
        dg_put(d, head, 1);
        return;
    }
    head[0] = 1;
    for (int i = 0; i < 8; i++)
        head[1 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    dg_put(d, head, sizeof head);
    dg_put(d, v, n);
}

static int dg_end_row(struct digests *d)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 1024;
        d->v = xrealloc(d->v, d->cap * SHA256_LEN);
    }
    unsigned int len = 0;
    if (!EVP_Digest(d->buf, d->buflen, d->v + d->n * SHA256_LEN, &len, EVP_sha256(), NULL) ||
        len != SHA256_LEN) {
        fprintf(stderr, "s4s-admin: SHA-256 failed\n");
        return -1;
    }
    d->n++;
    d->buflen = 0;
    return 0;
}

static int cmp_sha(const void *a, const void *b)
{
    return memcmp(a, b, SHA256_LEN);
}

/*
 * The table's digest: SHA-256 over its rows' digests in sorted order. Sorted
 * here rather than by ORDER BY because the two databases order text keys by
 * different collations (SQLite by bytes, PostgreSQL by the database's
 * locale); the rows are unique by their key, so the set decides alone.
 */
static int dg_finish(struct digests *d, struct table_sum *sum)
{
    if (d->n > 1)
        qsort(d->v, d->n, SHA256_LEN, cmp_sha);
    unsigned int len = 0;
    sum->rows = (int64_t)d->n;
    if (!EVP_Digest(d->n ? d->v : (const unsigned char *)"", d->n * SHA256_LEN, sum->sha, &len,
                    EVP_sha256(), NULL) ||
        len != SHA256_LEN) {
        fprintf(stderr, "s4s-admin: SHA-256 failed\n");
        return -1;
    }
    return 0;
}

/* ---- checks before copying ---------------------------------------------------- */

struct known {
    char **names;
    size_t n;
    int pending;
};

static void collect_known(const char *name, bool applied, const char *applied_at, void *ctx)
{
    struct known *k = ctx;
    (void)applied_at;
    k->names = xrealloc(k->names, (k->n + 1) * sizeof *k->names);
    k->names[k->n++] = xstrdup(name);
    if (!applied)
        k->pending++;
}

/*
 * The source must have every migration this program knows, and none it does
 * not: a newer version's columns would not be copied.
 */
static int check_source_schema(struct db *db, const char *shown)
{
    struct known k = {NULL, 0, 0};
    int ret = -1;
    if (db_migration_status(db, collect_known, &k) != DB_OK) {
        fprintf(stderr, "s4s-admin: %s: cannot read the migration status\n", shown);
        goto done;
    }
    if (k.pending) {
        fprintf(stderr,
                "s4s-admin: the source database %s lacks %d migration(s): run 's4s-admin "
                "migrate' with DATABASE_URI set to it (or start the server on it) first\n",
                shown, k.pending);
        goto done;
    }
    struct db_stmt *st = db_prepare(db, "SELECT name FROM schema_migrations ORDER BY name");
    if (!st) {
        fprintf(stderr, "s4s-admin: %s: cannot read schema_migrations\n", shown);
        goto done;
    }
    int rc;
    bool newer = false;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *name = db_column_text(st, 0);
        bool found = false;
        for (size_t i = 0; i < k.n && !found; i++)
            found = strcmp(k.names[i], name) == 0;
        if (!found) {
            fprintf(stderr,
                    "s4s-admin: the source database %s has migration %s, which this s4s-admin "
                    "does not know: use the s4s-admin of the version that made it\n",
                    shown, name);
            newer = true;
        }
    }
    if (rc != DB_OK)
        fprintf(stderr, "s4s-admin: %s: cannot read schema_migrations\n", shown);
    else if (!newer)
        ret = 0;
done:
    for (size_t i = 0; i < k.n; i++)
        free(k.names[i]);
    free(k.names);
    return ret;
}

/* Every column a source row has must be one we copy (run inside the read transaction). */
static int check_columns(struct copy *c, size_t t)
{
    struct table_sql *q = &c->sql[t];
    struct db_stmt *st = db_prepare(c->src, q->probe);
    if (!st)
        return DB_ERROR;
    int rc = db_step(st);
    if (rc != DB_ROW)
        return rc; /* DB_OK: an empty table loses nothing */
    int n = db_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = db_column_name(st, i);
        bool found = false;
        for (int j = 0; j < q->ncols && !found; j++)
            found = strcasecmp(q->cols[j], name) == 0;
        if (!found) {
            fprintf(stderr,
                    "s4s-admin: the source's table %s has a column %s that copy-db does not "
                    "know: nothing copied\n",
                    tables[t].name, name);
            c->unknown_column = true;
        }
    }
    db_reset(st);
    return c->unknown_column ? DB_ERROR : DB_OK;
}

/* ---- the copy ------------------------------------------------------------------ */

/* The target's rows before the copy; --force deletes them (children first). */
static int prepare_target(struct copy *c)
{
    bool any = false;
    for (size_t t = 0; t < NTABLES; t++) {
        struct db_stmt *st = db_prepare(c->dst, c->sql[t].count);
        if (!st)
            return DB_ERROR;
        int rc = db_step(st);
        if (rc != DB_ROW)
            return rc == DB_OK ? DB_ERROR : rc;
        c->had_rows[t] = db_column_int64(st, 0);
        db_reset(st);
        any |= c->had_rows[t] > 0;
    }
    if (!any)
        return DB_OK;
    if (!c->force) {
        c->refused = true;
        return DB_ERROR;
    }
    for (size_t t = NTABLES; t-- > 0;) {
        if (!c->had_rows[t])
            continue;
        struct db_stmt *st = db_prepare(c->dst, c->sql[t].empty);
        if (!st)
            return DB_ERROR;
        int rc = db_step(st);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

/* The failing row's key, for the message: "id=7" or "project_id=3, version=2". */
static void report_row(struct copy *c, size_t t, struct db_stmt *rd, int rc)
{
    fprintf(stderr, "s4s-admin: writing %s row (", tables[t].name);
    for (int i = 0; i < tables[t].nkey; i++)
        fprintf(stderr, "%s%s=%s", i ? ", " : "", c->sql[t].cols[i],
                db_column_is_null(rd, i) ? "NULL" : db_column_text(rd, i));
    fprintf(stderr, ") into the target failed: %s\n",
            rc == DB_CONSTRAINT ? "a uniqueness or foreign-key constraint failed (is the source "
                                  "consistent? 's4s-admin check' on it runs its foreign_key_check)"
            : rc == DB_FULL     ? "the target's disk is full"
                                : "see the error above");
}

static int copy_table(struct copy *c, size_t t)
{
    struct table_sql *q = &c->sql[t];
    struct db_stmt *rd = db_prepare(c->src, q->select);
    struct db_stmt *wr = db_prepare(c->dst, q->insert);
    if (!rd || !wr)
        return DB_ERROR;
    int rc;
    dg_start(&c->dg);
    while ((rc = db_step(rd)) == DB_ROW) {
        for (int i = 0; i < q->ncols && rc == DB_ROW; i++) {
            if (db_column_is_null(rd, i)) {
                dg_value(&c->dg, true, NULL, 0);
                if (db_bind_null(wr, i + 1) != DB_OK)
                    rc = DB_ERROR;
            } else {
                const char *v = db_column_text(rd, i);
                size_t n = db_column_bytes(rd, i);
                dg_value(&c->dg, false, v, n);
                if (db_bind_textn(wr, i + 1, v, n) != DB_OK)
                    rc = DB_ERROR;
            }
        }
        if (rc == DB_ROW)
            rc = db_step_done(wr);
        if (rc == DB_OK && dg_end_row(&c->dg) < 0)
            rc = DB_ERROR;
        if (rc != DB_OK) {
            if (rc != DB_BUSY) /* retried whole: no news yet */
                report_row(c, t, rd, rc);
            db_reset(wr);
            db_reset(rd);
            return rc;
        }
        db_reset(wr);
    }
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: reading %s from the source failed\n", tables[t].name);
        return rc;
    }
    return dg_finish(&c->dg, &c->copied[t]) < 0 ? DB_ERROR : DB_OK;
}

/* The target's one write transaction (retried whole on DB_BUSY). */
static int write_tx(struct db *dst, void *ctx)
{
    struct copy *c = ctx;
    (void)dst;
    memset(c->copied, 0, sizeof c->copied);
    int rc = prepare_target(c);
    for (size_t t = 0; t < NTABLES && rc == DB_OK; t++)
        rc = copy_table(c, t);
    for (size_t t = 0; t < NTABLES && rc == DB_OK; t++)
        if (tables[t].identity)
            rc = db_sync_identity(c->dst, tables[t].name, tables[t].identity);
    return rc;
}

/* The source's one read transaction: its snapshot is what the target gets. */
static int read_tx(struct db *src, void *ctx)
{
    struct copy *c = ctx;
    (void)src;
    for (size_t t = 0; t < NTABLES; t++) {
        int rc = check_columns(c, t);
        if (rc != DB_OK)
            return rc;
    }
    c->write_rc = db_transaction(c->dst, true, write_tx, c);
    /* Not DB_BUSY: that would repeat the whole copy after the target's own retries. */
    return c->write_rc == DB_OK ? DB_OK : DB_ERROR;
}

/* After the commit: the target read back through its own driver. */
static int verify_tx(struct db *dst, void *ctx)
{
    struct copy *c = ctx;
    for (size_t t = 0; t < NTABLES; t++) {
        struct table_sql *q = &c->sql[t];
        struct db_stmt *st = db_prepare(dst, q->select);
        if (!st)
            return DB_ERROR;
        int rc;
        dg_start(&c->dg);
        while ((rc = db_step(st)) == DB_ROW) {
            for (int i = 0; i < q->ncols; i++) {
                bool null = db_column_is_null(st, i);
                const char *v = null ? NULL : db_column_text(st, i);
                dg_value(&c->dg, null, v, null ? 0 : db_column_bytes(st, i));
            }
            if (dg_end_row(&c->dg) < 0) {
                db_reset(st);
                return DB_ERROR;
            }
        }
        if (rc != DB_OK)
            return rc;
        if (dg_finish(&c->dg, &c->target[t]) < 0)
            return DB_ERROR;
    }
    return DB_OK;
}

/* ---- opening ------------------------------------------------------------------- */

/* The file an SQLite URI or bare path names, malloc'd; NULL for PostgreSQL. */
static char *sqlite_file(const char *uri)
{
    if (db_uri_is_postgres(uri))
        return NULL;
    if (strncmp(uri, "sqlite:", 7) == 0) {
        struct config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.database_uri = (char *)uri;
        return cfg_sqlite_path(&cfg);
    }
    return strstr(uri, "://") ? NULL : xstrdup(uri);
}

static int open_side(struct admin *a, const char *uri, const char *shown, bool must_exist,
                     struct db **out)
{
    char err[512];
    struct db_options opt = {
        .busy_timeout_ms = a->cfg.db_busy_timeout_ms,
        .synchronous_full = true,
        .busy_retry_counter = NULL,
    };
    char *path = sqlite_file(uri);
    if (!path && !db_uri_is_postgres(uri)) {
        fprintf(stderr,
                "s4s-admin: '%s' is neither an SQLite file (sqlite:///path or a path) "
                "nor a postgresql:// URI\n",
                shown);
        return -1;
    }
    struct stat st;
    /* Opening creates a missing SQLite file: the source must not be invented. */
    if (path && must_exist && stat(path, &st) < 0) {
        fprintf(stderr, "s4s-admin: source database %s: %s\n", path, strerror(errno));
        free(path);
        return -1;
    }
    int rc = db_open(path ? path : uri, &opt, out, err, sizeof err);
    free(path);
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: opening %s: %s\n", shown, err);
        return -1;
    }
    return 0;
}

/* Refuse copying a database onto itself (--force would empty it first). */
static bool same_database(const char *from, const char *to)
{
    if (strcmp(from, to) == 0)
        return true;
    char *a = sqlite_file(from), *b = sqlite_file(to);
    struct stat sa, sb;
    bool same = a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
                sa.st_ino == sb.st_ino;
    free(a);
    free(b);
    return same;
}

/* ---- the command --------------------------------------------------------------- */

static void print_text(const struct copy *c, const char *from, const char *to, int applied,
                       int64_t ms, int differ, int64_t total)
{
    printf("source: %s (%s)\n", from, db_driver_name(c->src));
    printf("target: %s (%s%s)\n", to, db_driver_name(c->dst),
           applied ? ", migrated now" : ", schema up to date");
    bool emptied = false;
    for (size_t t = 0; t < NTABLES; t++)
        emptied |= c->had_rows[t] > 0;
    if (emptied)
        printf("--force: the target's old rows were deleted first\n");
    printf("copied in one transaction in %.1f s, then read back and compared:\n",
           (double)ms / 1000.0);
    for (size_t t = 0; t < NTABLES; t++) {
        const struct table_sum *s = &c->copied[t], *d = &c->target[t];
        bool same = s->rows == d->rows && memcmp(s->sha, d->sha, SHA256_LEN) == 0;
        if (s->rows == d->rows)
            printf("  %-26s %8lld rows  %s\n", tables[t].name, (long long)s->rows,
                   same ? "identical" : "DIFFERENT");
        else
            printf("  %-26s %8lld rows, target %lld  DIFFERENT\n", tables[t].name,
                   (long long)s->rows, (long long)d->rows);
    }
    if (differ)
        printf("%d table(s) DIFFERENT\n", differ);
    else
        printf("all %zu tables identical, %lld rows\n", NTABLES, (long long)total);
    printf("blobs are not copied: both databases refer to the files in DATA_DIR; keep DATA_DIR\n"
           "and change only DATABASE_URI in the server's configuration\n");
}

static void print_json(const struct copy *c, const char *from, const char *to, int applied,
                       int64_t ms, int differ, int64_t total)
{
    cJSON *out = cJSON_CreateObject();
    cJSON *src = cJSON_AddObjectToObject(out, "source");
    cJSON_AddStringToObject(src, "uri", from);
    cJSON_AddStringToObject(src, "driver", db_driver_name(c->src));
    cJSON *dst = cJSON_AddObjectToObject(out, "target");
    cJSON_AddStringToObject(dst, "uri", to);
    cJSON_AddStringToObject(dst, "driver", db_driver_name(c->dst));
    cJSON_AddNumberToObject(dst, "migrations_applied", applied);
    cJSON *list = cJSON_AddArrayToObject(out, "tables");
    for (size_t t = 0; t < NTABLES; t++) {
        const struct table_sum *s = &c->copied[t], *d = &c->target[t];
        char hs[2 * SHA256_LEN + 1], hd[2 * SHA256_LEN + 1];
        hex_encode(s->sha, SHA256_LEN, hs);
        hex_encode(d->sha, SHA256_LEN, hd);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", tables[t].name);
        cJSON_AddNumberToObject(o, "source_rows", (double)s->rows);
        cJSON_AddNumberToObject(o, "target_rows", (double)d->rows);
        cJSON_AddStringToObject(o, "source_sha256", hs);
        cJSON_AddStringToObject(o, "target_sha256", hd);
        cJSON_AddNumberToObject(o, "rows_deleted_first", (double)c->had_rows[t]);
        cJSON_AddBoolToObject(o, "identical",
                              s->rows == d->rows && memcmp(s->sha, d->sha, SHA256_LEN) == 0);
        cJSON_AddItemToArray(list, o);
    }
    cJSON_AddNumberToObject(out, "rows", (double)total);
    cJSON_AddNumberToObject(out, "tables_different", differ);
    cJSON_AddBoolToObject(out, "identical", differ == 0);
    cJSON_AddNumberToObject(out, "seconds", (double)ms / 1000.0);
    cJSON_AddBoolToObject(out, "blobs_copied", false);
    char *text = cJSON_Print(out);
    printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(out);
}

int cmd_copy_db(struct admin *a, int argc, char **argv)
{
    const char *from = NULL, *to = NULL;
    bool json = false;
    struct copy c;
    memset(&c, 0, sizeof c);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc)
            to = argv[++i];
        else if (strcmp(argv[i], "--force") == 0)
            c.force = true;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return admin_usage(argv[0]);
    }
    if (!from || !to || !*from || !*to)
        return admin_usage(argv[0]);

    int ret = EXIT_FAIL;
    char *sfrom = db_uri_display(from), *sto = db_uri_display(to);
    if (same_database(from, to)) {
        fprintf(stderr, "s4s-admin: --from and --to name the same database\n");
        goto done;
    }
    if (build_sql(&c) < 0)
        goto done;
    if (open_side(a, from, sfrom, true, &c.src) < 0 || check_source_schema(c.src, sfrom) < 0)
        goto done;
    if (open_side(a, to, sto, false, &c.dst) < 0)
        goto done;
    char err[512];
    int applied = 0;
    if (db_migrate(c.dst, &applied, err, sizeof err) != DB_OK) {
        fprintf(stderr, "s4s-admin: migrating the target %s: %s\n", sto, err);
        goto done;
    }

    int64_t t0 = now_mono_ms();
    c.write_rc = DB_ERROR;
    int rc = db_transaction(c.src, false, read_tx, &c);
    if (c.refused) {
        fprintf(stderr, "s4s-admin: the target %s already holds rows (", sto);
        bool first = true;
        for (size_t t = 0; t < NTABLES; t++) {
            if (c.had_rows[t]) {
                fprintf(stderr, "%s%s: %lld", first ? "" : ", ", tables[t].name,
                        (long long)c.had_rows[t]);
                first = false;
            }
        }
        fprintf(stderr, "); nothing copied. --force deletes them first.\n");
        goto done;
    }
    if (rc != DB_OK || c.write_rc != DB_OK) {
        if (!c.unknown_column)
            fprintf(stderr, "s4s-admin: the copy failed%s; nothing was copied\n",
                    c.write_rc == DB_BUSY || rc == DB_BUSY ? " (database busy)" : "");
        goto done;
    }
    int64_t ms = now_mono_ms() - t0;

    rc = db_transaction(c.dst, false, verify_tx, &c);
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: the copy was committed but reading it back failed\n");
        goto done;
    }
    int differ = 0;
    int64_t total = 0;
    for (size_t t = 0; t < NTABLES; t++) {
        total += c.copied[t].rows;
        if (c.copied[t].rows != c.target[t].rows ||
            memcmp(c.copied[t].sha, c.target[t].sha, SHA256_LEN) != 0)
            differ++;
    }
    if (json)
        print_json(&c, sfrom, sto, applied, ms, differ, total);
    else
        print_text(&c, sfrom, sto, applied, ms, differ, total);
    if (differ)
        fprintf(stderr, "s4s-admin: the target differs from the source in %d table(s)\n", differ);
    ret = differ ? EXIT_FAIL : EXIT_OK;
done:
    db_close(c.src);
    db_close(c.dst);
    free_sql(&c);
    free(c.dg.v);
    free(c.dg.buf);
    free(sfrom);
    free(sto);
    return ret;
}
