/*
 * stats.c — s4s-admin stats: what the installation holds. Row counts from
 * one read transaction (users by role, groups, projects live and deleted,
 * versions, assets, backpack items, sessions live and expired) and sizes
 * (blob store, temp files, the database: SQLite's file and its WAL, or
 * PostgreSQL's pg_database_size). Plain text or --json; read-only and cheap
 * (no blob is read, only listed).
 */
#include "admin.h"
#include "blobrefs.h"
#include "db.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stats {
    cJSON *counts, *roles;
    char now[DB_TS_LEN];
    uint64_t blobs, blob_bytes, tmp_files, tmp_bytes, unreferenced, unreferenced_bytes;
    struct shaset refs;
};

static int count_one(struct db *db, const char *sql, const char *bind, int64_t *out)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERROR;
    if (bind)
        db_bind_text(st, 1, bind);
    int rc = db_step(st);
    if (rc != DB_ROW)
        return rc == DB_OK ? DB_ERROR : rc;
    *out = db_column_int64(st, 0);
    db_reset(st);
    return DB_OK;
}

static int counts_tx(struct db *db, void *ctx)
{
    struct stats *s = ctx;
    static const struct {
        const char *name;
        const char *sql;
        bool now; /* binds the current time */
    } rows[] = {
        {"users", "SELECT count(*) FROM users", false},
        {"groups", "SELECT count(*) FROM groups", false},
        {"memberships", "SELECT count(*) FROM user_groups", false},
        {"projects_live", "SELECT count(*) FROM projects WHERE deleted_at IS NULL", false},
        {"projects_deleted", "SELECT count(*) FROM projects WHERE deleted_at IS NOT NULL", false},
        {"project_versions", "SELECT count(*) FROM project_versions", false},
        {"project_shares", "SELECT count(*) FROM project_groups", false},
        {"assets", "SELECT count(*) FROM assets", false},
        {"backpack_items", "SELECT count(*) FROM backpack_items", false},
        {"sessions_live", "SELECT count(*) FROM oauth_sessions WHERE expires_at >= ?", true},
        {"sessions_expired", "SELECT count(*) FROM oauth_sessions WHERE expires_at < ?", true},
    };
    /* A retried transaction starts from empty objects. */
    cJSON_Delete(s->counts);
    cJSON_Delete(s->roles);
    s->counts = cJSON_CreateObject();
    s->roles = cJSON_CreateObject();
    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        int64_t n = 0;
        int rc = count_one(db, rows[i].sql, rows[i].now ? s->now : NULL, &n);
        if (rc != DB_OK)
            return rc;
        cJSON_AddNumberToObject(s->counts, rows[i].name, (double)n);
    }
    struct db_stmt *st = db_prepare(db, "SELECT coalesce(nullif(role, ''), 'student') AS r, "
                                        "count(*) FROM users GROUP BY r ORDER BY r");
    if (!st)
        return DB_ERROR;
    int rc;
    while ((rc = db_step(st)) == DB_ROW)
        cJSON_AddNumberToObject(s->roles, db_column_text(st, 0), (double)db_column_int64(st, 1));
    if (rc != DB_OK)
        return rc;
    return DB_OK;
}

static int count_blob(const struct blob_file *f, void *ctx)
{
    struct stats *s = ctx;
    s->blobs++;
    s->blob_bytes += f->size;
    if (!shaset_has(&s->refs, f->sha256)) {
        s->unreferenced++;
        s->unreferenced_bytes += f->size;
    }
    return 0;
}

static int count_tmp(const struct tmp_file *f, void *ctx)
{
    struct stats *s = ctx;
    s->tmp_files++;
    s->tmp_bytes += f->size;
    return 0;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int cmd_stats(struct admin *a, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return admin_usage(argv[0]);
    }

    struct stats s;
    memset(&s, 0, sizeof s);
    struct db *db = NULL;
    char *db_path = NULL;
    char *blobs_dir = xasprintf("%s/blobs", a->cfg.data_dir);
    char *tmp_dir = xasprintf("%s/tmp", a->cfg.data_dir);
    cJSON *out = NULL;
    int ret = EXIT_FAIL;

    bool pg = db_uri_is_postgres(a->cfg.database_uri);
    if (!pg && !(db_path = admin_database_path(a)))
        goto done;
    if (admin_open_database(a, false, &db) < 0 || admin_require_migrated(db) < 0)
        goto done;
    /* PostgreSQL: its URI (without a password) stands where SQLite's path does. */
    if (pg)
        db_path = db_uri_display(a->cfg.database_uri);
    db_ts_now(s.now);
    if (db_transaction(db, false, counts_tx, &s) != DB_OK) {
        fprintf(stderr, "s4s-admin: cannot read the database\n");
        goto done;
    }
    if (blobrefs_collect(db, &s.refs) != DB_OK) {
        fprintf(stderr, "s4s-admin: cannot read the blob references\n");
        goto done;
    }
    if (blobrefs_walk_store(blobs_dir, count_blob, NULL, &s) < 0 ||
        blobrefs_walk_tmp(tmp_dir, count_tmp, &s) < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", a->cfg.data_dir, strerror(errno));
        goto done;
    }
    int64_t db_size = db_size_bytes(db);
    int64_t wal = db_wal_size(db);

    out = cJSON_CreateObject();
    cJSON_AddItemReferenceToObject(out, "counts", s.counts);
    cJSON_AddItemReferenceToObject(out, "users_by_role", s.roles);
    cJSON *sizes = cJSON_AddObjectToObject(out, "storage");
    cJSON_AddNumberToObject(sizes, "blobs", (double)s.blobs);
    cJSON_AddNumberToObject(sizes, "blob_bytes", (double)s.blob_bytes);
    cJSON_AddNumberToObject(sizes, "blobs_referenced", (double)s.refs.n);
    cJSON_AddNumberToObject(sizes, "blobs_unreferenced", (double)s.unreferenced);
    cJSON_AddNumberToObject(sizes, "blobs_unreferenced_bytes", (double)s.unreferenced_bytes);
    cJSON_AddNumberToObject(sizes, "temp_files", (double)s.tmp_files);
    cJSON_AddNumberToObject(sizes, "temp_bytes", (double)s.tmp_bytes);
    cJSON_AddStringToObject(sizes, "database_driver", db_driver_name(db));
    cJSON_AddStringToObject(sizes, "database", db_path);
    cJSON_AddNumberToObject(sizes, "database_bytes", (double)db_size);
    cJSON_AddNumberToObject(sizes, "wal_bytes", (double)wal);

    if (json) {
        char *text = cJSON_Print(out);
        printf("%s\n", text);
        cJSON_free(text);
    } else {
        const cJSON *c = s.counts, *it;
        printf("users:     %.0f", num(c, "users"));
        bool first = true;
        cJSON_ArrayForEach(it, s.roles)
        {
            printf("%s%.0f %s", first ? " (" : ", ", it->valuedouble, it->string);
            first = false;
        }
        printf("%s\n", first ? "" : ")");
        printf("groups:    %.0f, %.0f memberships\n", num(c, "groups"), num(c, "memberships"));
        printf("projects:  %.0f live, %.0f deleted (kept until gc's retention), %.0f versions, "
               "%.0f shares\n",
               num(c, "projects_live"), num(c, "projects_deleted"), num(c, "project_versions"),
               num(c, "project_shares"));
        printf("assets:    %.0f\n", num(c, "assets"));
        printf("backpack:  %.0f items\n", num(c, "backpack_items"));
        printf("sessions:  %.0f live, %.0f expired\n", num(c, "sessions_live"),
               num(c, "sessions_expired"));
        printf(
            "blobs:     %llu files, %llu bytes; %zu referenced, %llu unreferenced (%llu bytes)\n",
            (unsigned long long)s.blobs, (unsigned long long)s.blob_bytes, s.refs.n,
            (unsigned long long)s.unreferenced, (unsigned long long)s.unreferenced_bytes);
        printf("temp:      %llu files, %llu bytes\n", (unsigned long long)s.tmp_files,
               (unsigned long long)s.tmp_bytes);
        if (pg)
            printf("database:  %s, %lld bytes\n", db_path, (long long)db_size);
        else
            printf("database:  %s, %lld bytes, WAL %lld bytes\n", db_path, (long long)db_size,
                   (long long)(wal < 0 ? 0 : wal));
    }
    ret = EXIT_OK;
done:
    cJSON_Delete(out);
    cJSON_Delete(s.counts);
    cJSON_Delete(s.roles);
    shaset_free(&s.refs);
    db_close(db);
    free(db_path);
    free(blobs_dir);
    free(tmp_dir);
    return ret;
}
