/*
 * check.c — s4s-admin check: is the data intact?
 *
 * Problems (exit status 1): a blob whose content does not hash to its name,
 * a row pointing at a blob that is not there (or is damaged), the database
 * failing PRAGMA integrity_check or foreign_key_check.
 * Listed but not problems: orphan blobs (no row points at them: a crash
 * between storing a file and recording it, an upload in flight, versions
 * trimmed; gc removes them after its grace period), temp files, files in
 * blobs/ that are not blobs, backpack items whose asset is unknown (the
 * thumbnail MD5 of zero bytes means "none", see assets.h), assets
 * and projects that have no content (imported without their file).
 *
 * Safe while the server runs. References are read in one snapshot before
 * the store is walked, so every blob they name was written before the walk
 * began (blobs are stored before the row that points at them). A blob
 * missing from the walk is confirmed against a second snapshot, so a row
 * deleted meanwhile (and its blob collected) is not reported.
 */
#include "admin.h"
#include "assets.h"
#include "blobrefs.h"
#include "blobstore.h"
#include "db.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ref_row {
    const struct blob_ref *ref;
    char *row_id;
    char sha256[65];
};

struct check {
    struct ref_row *refs;
    size_t nrefs, cap;
    struct shaset referenced; /* names in the first snapshot */
    struct shaset present;    /* files found in blobs/ (damaged or not) */
    struct shaset damaged;
    uint64_t blobs, bytes, orphan_bytes, temp_bytes;
    cJSON *corrupt, *missing, *orphans, *stray, *temp, *integrity, *fk, *warnings;
    int problems;
};

static int keep_ref(const struct blob_ref *ref, const char *row_id, const char *sha256, void *ctx)
{
    struct check *c = ctx;
    if (c->nrefs == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->refs = xrealloc(c->refs, c->cap * sizeof *c->refs);
    }
    struct ref_row *r = &c->refs[c->nrefs++];
    r->ref = ref;
    r->row_id = xstrdup(row_id);
    snprintf(r->sha256, sizeof r->sha256, "%s", sha256);
    shaset_add(&c->referenced, sha256);
    return 0;
}

static void free_refs(struct check *c)
{
    for (size_t i = 0; i < c->nrefs; i++)
        free(c->refs[i].row_id);
    c->nrefs = 0;
    shaset_free(&c->referenced);
}

static int refs_tx(struct db *db, void *ctx)
{
    free_refs(ctx); /* a retried transaction starts over */
    return blobrefs_each(db, keep_ref, ctx);
}

static int verify_blob(const struct blob_file *f, void *ctx)
{
    struct check *c = ctx;
    char actual[65];
    uint64_t size = 0;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0; /* collected by gc since the listing: it was an orphan */
    if (fd < 0 || blobrefs_hash_fd(fd, actual, &size) < 0) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "sha256", f->sha256);
        cJSON_AddStringToObject(e, "path", f->path);
        cJSON_AddStringToObject(e, "error", strerror(errno));
        cJSON_AddItemToArray(c->corrupt, e);
        shaset_add(&c->present, f->sha256);
        shaset_add(&c->damaged, f->sha256);
        c->problems++;
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd);
    shaset_add(&c->present, f->sha256);
    c->blobs++;
    c->bytes += size;
    if (strcmp(actual, f->sha256) != 0) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "sha256", f->sha256);
        cJSON_AddStringToObject(e, "path", f->path);
        cJSON_AddStringToObject(e, "actual", actual);
        cJSON_AddNumberToObject(e, "size", (double)size);
        cJSON_AddItemToArray(c->corrupt, e);
        shaset_add(&c->damaged, f->sha256);
        c->problems++;
        return 0;
    }
    if (!shaset_has(&c->referenced, f->sha256)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "sha256", f->sha256);
        cJSON_AddNumberToObject(o, "size", (double)size);
        cJSON_AddNumberToObject(o, "age_seconds", (double)(int64_t)blobrefs_age(&f->mtime));
        cJSON_AddItemToArray(c->orphans, o);
        c->orphan_bytes += size;
    }
    return 0;
}

static void note_stray(const char *path, void *ctx)
{
    struct check *c = ctx;
    cJSON_AddItemToArray(c->stray, cJSON_CreateString(path));
}

static int note_temp(const struct tmp_file *f, void *ctx)
{
    struct check *c = ctx;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", f->name);
    cJSON_AddNumberToObject(t, "size", (double)f->size);
    cJSON_AddNumberToObject(t, "age_seconds", (double)(int64_t)blobrefs_age(&f->mtime));
    cJSON_AddItemToArray(c->temp, t);
    c->temp_bytes += f->size;
    return 0;
}

static void warn_row(struct check *c, const char *kind, const char *table, const char *id,
                     const char *message)
{
    cJSON *w = cJSON_CreateObject();
    cJSON_AddStringToObject(w, "kind", kind);
    cJSON_AddStringToObject(w, "table", table);
    cJSON_AddStringToObject(w, "id", id);
    cJSON_AddStringToObject(w, "message", message);
    cJSON_AddItemToArray(c->warnings, w);
}

/* The database's own verdict (SQLite: PRAGMA integrity_check and foreign_key_check). */
static int check_database(struct db *db, struct check *c)
{
    struct db_stmt *st = db_prepare(db, db_integrity_sql(db));
    if (!st)
        return -1;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        const char *line = db_column_text(st, 0);
        cJSON_AddItemToArray(c->integrity, cJSON_CreateString(line));
        if (strcmp(line, "ok") != 0)
            c->problems++;
    }
    if (rc != DB_OK)
        return -1;
    st = db_prepare(db, db_foreign_key_sql(db));
    if (!st)
        return -1;
    while ((rc = db_step(st)) == DB_ROW) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddStringToObject(v, "table", db_column_text(st, 0));
        cJSON_AddStringToObject(v, "rowid", db_column_text(st, 1));
        cJSON_AddStringToObject(v, "parent", db_column_text(st, 2));
        cJSON_AddItemToArray(c->fk, v);
        c->problems++;
    }
    return rc == DB_OK ? 0 : -1;
}

/* Rows that are not wrong but lack something; the operator may want to know. */
static int check_warnings(struct db *db, struct check *c)
{
    struct db_stmt *st = db_prepare(
        db, "SELECT b.id, b.body, b.thumbnail FROM backpack_items b "
            "WHERE NOT EXISTS (SELECT 1 FROM assets a WHERE a.asset_id = substr(b.body, 1, 32)) "
            "OR (b.thumbnail <> '' AND b.thumbnail <> ? "
            "AND NOT EXISTS "
            "(SELECT 1 FROM assets a WHERE a.asset_id = substr(b.thumbnail, 1, 32)))");
    if (!st)
        return -1;
    db_bind_text(st, 1, BP_NO_THUMBNAIL);
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "refers to an asset that is not stored (body %.40s, thumbnail %.40s)",
                 db_column_text(st, 1), db_column_text(st, 2));
        warn_row(c, "unknown_asset", "backpack_items", db_column_text(st, 0), msg);
    }
    if (rc != DB_OK)
        return -1;
    st = db_prepare(db, "SELECT CAST(id AS TEXT), asset_id FROM assets WHERE sha256 IS NULL");
    if (!st)
        return -1;
    while ((rc = db_step(st)) == DB_ROW) {
        char msg[96];
        snprintf(msg, sizeof msg, "asset %.40s has no stored content", db_column_text(st, 1));
        warn_row(c, "no_content", "assets", db_column_text(st, 0), msg);
    }
    if (rc != DB_OK)
        return -1;
    st = db_prepare(db, "SELECT CAST(id AS TEXT) FROM projects "
                        "WHERE sb3_sha256 IS NULL AND deleted_at IS NULL");
    if (!st)
        return -1;
    while ((rc = db_step(st)) == DB_ROW)
        warn_row(c, "no_content", "projects", db_column_text(st, 0), "project has no .sb3 file");
    return rc == DB_OK ? 0 : -1;
}

/* Rows naming a blob that is absent or damaged, confirmed in a fresh snapshot. */
static int check_references(struct db *db, struct check *c)
{
    bool any = false;
    for (size_t i = 0; i < c->nrefs && !any; i++)
        any = !shaset_has(&c->present, c->refs[i].sha256) ||
              shaset_has(&c->damaged, c->refs[i].sha256);
    struct shaset again = {0};
    if (any && blobrefs_collect(db, &again) != DB_OK)
        return -1;
    for (size_t i = 0; i < c->nrefs && any; i++) {
        struct ref_row *r = &c->refs[i];
        bool damaged = shaset_has(&c->damaged, r->sha256);
        if (!damaged && shaset_has(&c->present, r->sha256))
            continue;
        /* Gone from the database meanwhile (and collected): not a problem. */
        if (!shaset_has(&again, r->sha256))
            continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "table", r->ref->table);
        cJSON_AddStringToObject(m, "column", r->ref->column);
        cJSON_AddStringToObject(m, "id", r->row_id);
        cJSON_AddStringToObject(m, "sha256", r->sha256);
        cJSON_AddStringToObject(m, "problem", damaged ? "damaged" : "missing");
        cJSON_AddItemToArray(c->missing, m);
        c->problems++;
    }
    shaset_free(&again);
    return 0;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_text(struct check *c)
{
    const cJSON *it;
    int n;

    n = cJSON_GetArraySize(c->integrity);
    bool integ_ok = n == 1 && strcmp(cJSON_GetArrayItem(c->integrity, 0)->valuestring, "ok") == 0;
    printf("database:   integrity %s, %d foreign key violation(s)\n", integ_ok ? "ok" : "FAILED",
           cJSON_GetArraySize(c->fk));
    if (!integ_ok)
        cJSON_ArrayForEach(it, c->integrity) printf("  INTEGRITY %s\n", it->valuestring);
    cJSON_ArrayForEach(it, c->fk)
        printf("  FOREIGN KEY %s row %s: no such %s row\n", str_of(it, "table"),
               str_of(it, "rowid"), str_of(it, "parent"));
    printf("blobs:      %llu verified (%llu bytes), %d damaged\n", (unsigned long long)c->blobs,
           (unsigned long long)c->bytes, cJSON_GetArraySize(c->corrupt));
    cJSON_ArrayForEach(it, c->corrupt)
    {
        if (*str_of(it, "actual"))
            printf("  DAMAGED blob %s: its content hashes to %s (%s)\n", str_of(it, "sha256"),
                   str_of(it, "actual"), str_of(it, "path"));
        else
            printf("  UNREADABLE blob %s: %s (%s)\n", str_of(it, "sha256"), str_of(it, "error"),
                   str_of(it, "path"));
    }
    printf("references: %zu row references to %zu blobs, %d broken\n", c->nrefs, c->referenced.n,
           cJSON_GetArraySize(c->missing));
    cJSON_ArrayForEach(it, c->missing)
        printf("  %s blob %s: %s.%s of row %s\n",
               strcmp(str_of(it, "problem"), "damaged") == 0 ? "DAMAGED" : "MISSING",
               str_of(it, "sha256"), str_of(it, "table"), str_of(it, "column"), str_of(it, "id"));
    printf("orphans:    %d blob(s), %llu bytes, referenced by no row (gc removes them)\n",
           cJSON_GetArraySize(c->orphans), (unsigned long long)c->orphan_bytes);
    cJSON_ArrayForEach(it, c->orphans)
        printf("  orphan %s %.0f bytes, %.0f s old\n", str_of(it, "sha256"), num_of(it, "size"),
               num_of(it, "age_seconds"));
    printf("temp files: %d, %llu bytes (gc removes them after the grace period)\n",
           cJSON_GetArraySize(c->temp), (unsigned long long)c->temp_bytes);
    cJSON_ArrayForEach(it, c->temp) printf("  temp %s %.0f bytes, %.0f s old\n", str_of(it, "name"),
                                           num_of(it, "size"), num_of(it, "age_seconds"));
    cJSON_ArrayForEach(it, c->stray) printf("  not a blob: %s\n", it->valuestring);
    if (cJSON_GetArraySize(c->warnings))
        printf("warnings:   %d\n", cJSON_GetArraySize(c->warnings));
    cJSON_ArrayForEach(it, c->warnings)
        printf("  %s row %s: %s\n", str_of(it, "table"), str_of(it, "id"), str_of(it, "message"));
    if (c->problems)
        printf("RESULT: %d PROBLEM(S) FOUND\n", c->problems);
    else
        printf("RESULT: all is well\n");
}

int cmd_check(struct admin *a, int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else
            return admin_usage(argv[0]);
    }

    struct check c;
    memset(&c, 0, sizeof c);
    struct db *db = NULL;
    int ret = EXIT_FAIL;
    cJSON *report = cJSON_CreateObject();
    char *blobs_dir = xasprintf("%s/blobs", a->cfg.data_dir);
    char *tmp_dir = xasprintf("%s/tmp", a->cfg.data_dir);
    c.corrupt = cJSON_CreateArray();
    c.missing = cJSON_CreateArray();
    c.orphans = cJSON_CreateArray();
    c.stray = cJSON_CreateArray();
    c.temp = cJSON_CreateArray();
    c.integrity = cJSON_CreateArray();
    c.fk = cJSON_CreateArray();
    c.warnings = cJSON_CreateArray();

    if (admin_open_database(a, false, &db) < 0 || admin_require_migrated(db) < 0)
        goto done;
    if (check_database(db, &c) < 0) {
        fprintf(stderr, "s4s-admin: the database's integrity check could not run\n");
        goto done;
    }
    /* References first, then the files (see the top of this file). */
    if (db_transaction(db, false, refs_tx, &c) != DB_OK) {
        fprintf(stderr, "s4s-admin: cannot read the blob references\n");
        goto done;
    }
    (void)shaset_has(&c.referenced, ""); /* sort now: the walk looks names up */
    if (blobrefs_walk_store(blobs_dir, verify_blob, note_stray, &c) < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", blobs_dir, strerror(errno));
        goto done;
    }
    if (blobrefs_walk_tmp(tmp_dir, note_temp, &c) < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", tmp_dir, strerror(errno));
        goto done;
    }
    if (check_references(db, &c) < 0) {
        fprintf(stderr, "s4s-admin: cannot re-read the blob references\n");
        goto done;
    }
    if (check_warnings(db, &c) < 0) {
        fprintf(stderr, "s4s-admin: cannot read the database\n");
        goto done;
    }

    cJSON_AddBoolToObject(report, "ok", c.problems == 0);
    cJSON_AddNumberToObject(report, "problems", c.problems);
    cJSON *dbo = cJSON_AddObjectToObject(report, "database");
    cJSON_AddItemReferenceToObject(dbo, "integrity_check", c.integrity);
    cJSON_AddItemReferenceToObject(dbo, "foreign_key_violations", c.fk);
    cJSON *bo = cJSON_AddObjectToObject(report, "blobs");
    cJSON_AddNumberToObject(bo, "count", (double)c.blobs);
    cJSON_AddNumberToObject(bo, "bytes", (double)c.bytes);
    cJSON_AddItemReferenceToObject(bo, "damaged", c.corrupt);
    cJSON_AddItemReferenceToObject(bo, "not_blobs", c.stray);
    cJSON *ro = cJSON_AddObjectToObject(report, "references");
    cJSON_AddNumberToObject(ro, "rows", (double)c.nrefs);
    cJSON_AddNumberToObject(ro, "blobs", (double)c.referenced.n);
    cJSON_AddItemReferenceToObject(ro, "broken", c.missing);
    cJSON *oo = cJSON_AddObjectToObject(report, "orphans");
    cJSON_AddNumberToObject(oo, "bytes", (double)c.orphan_bytes);
    cJSON_AddItemReferenceToObject(oo, "blobs", c.orphans);
    cJSON *to = cJSON_AddObjectToObject(report, "temp_files");
    cJSON_AddNumberToObject(to, "bytes", (double)c.temp_bytes);
    cJSON_AddItemReferenceToObject(to, "files", c.temp);
    cJSON_AddItemReferenceToObject(report, "warnings", c.warnings);

    if (json) {
        char *text = cJSON_Print(report);
        printf("%s\n", text);
        cJSON_free(text);
    } else {
        print_text(&c);
    }
    ret = c.problems ? EXIT_FAIL : EXIT_OK;
done:
    db_close(db);
    cJSON_Delete(report);
    cJSON_Delete(c.corrupt);
    cJSON_Delete(c.missing);
    cJSON_Delete(c.orphans);
    cJSON_Delete(c.stray);
    cJSON_Delete(c.temp);
    cJSON_Delete(c.integrity);
    cJSON_Delete(c.fk);
    cJSON_Delete(c.warnings);
    free_refs(&c);
    free(c.refs);
    shaset_free(&c.present);
    shaset_free(&c.damaged);
    free(blobs_dir);
    free(tmp_dir);
    return ret;
}
