/*
 * backup.c — s4s-admin backup and restore.
 *
 * backup DIR: an online, consistent copy while the server takes writes.
 * The database is copied with SQLite's backup API in a single step, which
 * reads one snapshot (in WAL mode writers carry on meanwhile); the copy is
 * switched to a rollback journal so it is one self-contained file. Then
 * every blob that copy references (blob_refs[]) is hard-linked into
 * DIR/blobs when DIR is on the same file system (blobs are immutable, so a
 * link is a copy), else copied and fsync'd. Blobs written after the snapshot
 * are not referenced by it and are not needed. manifest.json is written
 * last: a backup without one is incomplete.
 *
 * restore DIR: the database file and every blob of a backup into DATA_DIR.
 * Blobs go in first through the blob store's own writer (temp file, fsync,
 * link), each verified against its name; the database file last, replacing
 * any old one with a rename after its -wal and -shm are gone.
 *
 * This module speaks to SQLite directly: the backup API and a database copy
 * that must keep its rollback journal are SQLite's business, not db.h's.
 */
#include "admin.h"
#include "blobrefs.h"
#include "blobstore.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BACKUP_FORMAT "s4s-backup 1"
#define BACKUP_DB_NAME "main.db"
#define BACKUP_MANIFEST "manifest.json"
#define BACKUP_DIR_MODE 0750
#define BACKUP_FILE_MODE 0640
/* How long the backup waits, all told, for SQLite to let it read. */
#define BACKUP_BUSY_MS 5000

static void human_size(uint64_t n, char *out, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < ARRAY_LEN(units)) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%llu B", (unsigned long long)n);
    else
        snprintf(out, len, "%.1f %s", v, units[u]);
}

/* 0 when path is a directory holding nothing, or does not exist; 1 if it holds
 * something; -1 on error. */
static int dir_has_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            found = 1;
            break;
        }
    closedir(d);
    return found;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int hash_path(const char *path, char out[65], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = blobrefs_hash_fd(fd, out, size);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/*
 * Copy src to a new file dst (O_EXCL), hashing the bytes as they pass, and
 * fsync it. 0, or -1 with errno (dst removed).
 */
static int copy_file(const char *src, const char *dst, char sha_out[65], uint64_t *size_out)
{
    unsigned char buf[65536];
    int in = -1, out = -1, saved;
    EVP_MD_CTX *md = NULL;
    uint64_t total = 0;

    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, BACKUP_FILE_MODE);
    if (out < 0)
        goto fail;
    md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        errno = EIO;
        goto fail_unlink;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail_unlink;
        }
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(md, buf, (size_t)n)) {
            errno = EIO;
            goto fail_unlink;
        }
        if (write_all(out, buf, (size_t)n) < 0)
            goto fail_unlink;
        total += (uint64_t)n;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!EVP_DigestFinal_ex(md, digest, &dlen) || dlen != 32) {
        errno = EIO;
        goto fail_unlink;
    }
    hex_encode(digest, 32, sha_out);
    /* fchmod: the umask must not make a backup unreadable to the restoring user's group. */
    if (fchmod(out, BACKUP_FILE_MODE) < 0 || fsync(out) < 0)
        goto fail_unlink;
    if (close(out) < 0) {
        out = -1;
        goto fail_unlink;
    }
    out = -1;
    close(in);
    EVP_MD_CTX_free(md);
    if (size_out)
        *size_out = total;
    return 0;

fail_unlink:
    saved = errno;
    unlink(dst);
    errno = saved;
fail:
    saved = errno;
    if (out >= 0)
        close(out);
    if (in >= 0)
        close(in);
    EVP_MD_CTX_free(md);
    errno = saved;
    return -1;
}

/* ---- backup ------------------------------------------------------------------ */

struct backup_ref {
    char sha256[65];
    const char *table, *column;
    char *row_id;
};

struct backup {
    const char *blobs_src; /* DATA_DIR/blobs */
    char *blobs_dst;       /* DIR/blobs */
    bool copy_only;
    struct backup_ref *refs; /* one per distinct name (the first row naming it) */
    size_t nrefs, cap;
    uint64_t bytes, linked, copied;
    cJSON *missing; /* [{sha256, table, column, id, error}] */
    bool fanout_made[256];
};

static int cmp_backup_ref(const void *a, const void *b)
{
    return strcmp(((const struct backup_ref *)a)->sha256, ((const struct backup_ref *)b)->sha256);
}

/* Read every reference from the copy with the statements in blob_refs[]. */
static int backup_read_refs(sqlite3 *h, struct backup *b)
{
    for (size_t i = 0; i < blob_refs_count; i++) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(h, blob_refs[i].sql, -1, &st, NULL) != SQLITE_OK) {
            fprintf(stderr, "s4s-admin: reading %s.%s from the copy: %s\n", blob_refs[i].table,
                    blob_refs[i].column, sqlite3_errmsg(h));
            sqlite3_finalize(st);
            return -1;
        }
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (b->nrefs == b->cap) {
                b->cap = b->cap ? 2 * b->cap : 256;
                b->refs = xrealloc(b->refs, b->cap * sizeof *b->refs);
            }
            struct backup_ref *r = &b->refs[b->nrefs++];
            const unsigned char *id = sqlite3_column_text(st, 0);
            const unsigned char *sha = sqlite3_column_text(st, 1);
            snprintf(r->sha256, sizeof r->sha256, "%s", sha ? (const char *)sha : "");
            r->table = blob_refs[i].table;
            r->column = blob_refs[i].column;
            r->row_id = xstrdup(id ? (const char *)id : "");
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "s4s-admin: reading %s.%s from the copy: %s\n", blob_refs[i].table,
                    blob_refs[i].column, sqlite3_errmsg(h));
            return -1;
        }
    }
    /* One entry per blob: many rows (versions, copies) share content. */
    if (b->nrefs > 0)
        qsort(b->refs, b->nrefs, sizeof *b->refs, cmp_backup_ref);
    size_t out = 0;
    for (size_t i = 0; i < b->nrefs; i++) {
        if (out > 0 && strcmp(b->refs[out - 1].sha256, b->refs[i].sha256) == 0) {
            free(b->refs[i].row_id);
            continue;
        }
        b->refs[out++] = b->refs[i];
    }
    b->nrefs = out;
    return 0;
}

/* Rows per table of the copy, for the manifest (and for comparing after a restore). */
static int backup_count_tables(sqlite3 *h, cJSON *tables, uint64_t *total_rows)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h,
                           "SELECT name FROM sqlite_master WHERE type = 'table' "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        goto fail;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        /* A table name cannot be a bound parameter. These come from the
         * schema itself, and are quoted as identifiers besides. */
        char *q = sqlite3_mprintf("SELECT count(*) FROM \"%w\"", name);
        sqlite3_stmt *cnt = NULL;
        if (!q || sqlite3_prepare_v2(h, q, -1, &cnt, NULL) != SQLITE_OK ||
            sqlite3_step(cnt) != SQLITE_ROW) {
            sqlite3_free(q);
            sqlite3_finalize(cnt);
            goto fail;
        }
        int64_t n = sqlite3_column_int64(cnt, 0);
        cJSON_AddNumberToObject(tables, name, (double)n);
        *total_rows += (uint64_t)n;
        sqlite3_finalize(cnt);
        sqlite3_free(q);
    }
    if (rc != SQLITE_DONE)
        goto fail;
    sqlite3_finalize(st);
    return 0;
fail:
    fprintf(stderr, "s4s-admin: counting rows in the copy: %s\n", sqlite3_errmsg(h));
    sqlite3_finalize(st);
    return -1;
}

static cJSON *backup_migrations(sqlite3 *h)
{
    cJSON *arr = cJSON_CreateArray();
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, "SELECT name FROM schema_migrations ORDER BY name", -1, &st, NULL) ==
        SQLITE_OK)
        while (sqlite3_step(st) == SQLITE_ROW)
            cJSON_AddItemToArray(arr, cJSON_CreateString((const char *)sqlite3_column_text(st, 0)));
    sqlite3_finalize(st);
    return arr;
}

/*
 * The database: one backup step over the whole file reads one snapshot.
 * Returns 0, or -1 with a message.
 */
static int backup_database(const char *src_path, const char *dst_path)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *bk = NULL;
    int ret = -1;

    /* Read-write: a WAL database can only be read through its -shm index,
     * which a read-only handle may not be able to create. Nothing is written. */
    if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: opening %s: %s\n", src_path,
                src ? sqlite3_errmsg(src) : "out of memory");
        goto done;
    }
    sqlite3_busy_timeout(src, BACKUP_BUSY_MS);
    if (sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "s4s-admin: creating %s: %s\n", dst_path,
                dst ? sqlite3_errmsg(dst) : "out of memory");
        goto done;
    }
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (!bk) {
        fprintf(stderr, "s4s-admin: backup of %s: %s\n", src_path, sqlite3_errmsg(dst));
        goto done;
    }
    /* -1: every page in one step, so the copy is one snapshot; a step that
     * could not get its read lock is simply tried again. */
    int rc, waited_ms = 0;
    while ((rc = sqlite3_backup_step(bk, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        if (waited_ms >= BACKUP_BUSY_MS)
            break;
        sqlite3_sleep(50);
        waited_ms += 50;
    }
    int frc = sqlite3_backup_finish(bk);
    bk = NULL;
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: backup of %s: %s\n", src_path,
                rc == SQLITE_BUSY || rc == SQLITE_LOCKED
                    ? "the database stayed busy"
                    : sqlite3_errstr(rc != SQLITE_DONE ? rc : frc));
        goto done;
    }
    /* The copy inherits WAL mode from the source's header; a rollback journal
     * makes it one self-contained file whose hash the manifest can state. */
    char *msg = NULL;
    if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: %s: %s\n", dst_path, msg ? msg : sqlite3_errmsg(dst));
        sqlite3_free(msg);
        goto done;
    }
    ret = 0;
done:
    if (bk)
        sqlite3_backup_finish(bk);
    if (dst && sqlite3_close(dst) != SQLITE_OK && ret == 0) {
        fprintf(stderr, "s4s-admin: closing %s: %s\n", dst_path, sqlite3_errmsg(dst));
        ret = -1;
    }
    if (src)
        sqlite3_close(src);
    if (ret == 0 && fsync_path(dst_path) < 0) {
        fprintf(stderr, "s4s-admin: fsync %s: %s\n", dst_path, strerror(errno));
        ret = -1;
    }
    return ret;
}

static void backup_missing(struct backup *b, const struct backup_ref *r, const char *why)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "sha256", r->sha256);
    cJSON_AddStringToObject(m, "table", r->table);
    cJSON_AddStringToObject(m, "column", r->column);
    cJSON_AddStringToObject(m, "id", r->row_id);
    cJSON_AddStringToObject(m, "error", why);
    cJSON_AddItemToArray(b->missing, m);
    fprintf(stderr, "s4s-admin: blob %s (%s.%s of row %s): %s\n", r->sha256, r->table, r->column,
            r->row_id, why);
}

/* One blob into DIR/blobs. 0 done or recorded as missing, -1 fatal (the target). */
static int backup_blob(struct backup *b, const struct backup_ref *r)
{
    if (!is_hex(r->sha256, 64) || strlen(r->sha256) != 64) {
        backup_missing(b, r, "not a blob name");
        return 0;
    }
    unsigned fan = 0;
    sscanf(r->sha256, "%2x", &fan);
    char *src = xasprintf("%s/%.2s/%s", b->blobs_src, r->sha256, r->sha256 + 2);
    char *dir = xasprintf("%s/%.2s", b->blobs_dst, r->sha256);
    char *dst = xasprintf("%s/%s", dir, r->sha256 + 2);
    int ret = -1;
    struct stat st;

    if (!b->fanout_made[fan & 0xff]) {
        if (mkdir(dir, BACKUP_DIR_MODE) < 0 && errno != EEXIST) {
            fprintf(stderr, "s4s-admin: mkdir %s: %s\n", dir, strerror(errno));
            goto done;
        }
        b->fanout_made[fan & 0xff] = true;
    }
    if (stat(src, &st) < 0) {
        backup_missing(b, r, strerror(errno));
        ret = 0;
        goto done;
    }
    if (!b->copy_only && link(src, dst) == 0) {
        b->linked++;
        b->bytes += (uint64_t)st.st_size;
        ret = 0;
        goto done;
    }
    if (!b->copy_only && errno != EXDEV && errno != EPERM && errno != EMLINK) {
        if (errno == ENOENT) {
            backup_missing(b, r, strerror(errno));
            ret = 0;
        } else {
            fprintf(stderr, "s4s-admin: link %s to %s: %s\n", src, dst, strerror(errno));
        }
        goto done;
    }
    char sha[65];
    uint64_t size = 0;
    if (copy_file(src, dst, sha, &size) < 0) {
        int err = errno;
        if (err == ENOENT && stat(src, &st) < 0) {
            backup_missing(b, r, strerror(err));
            ret = 0;
        } else {
            fprintf(stderr, "s4s-admin: copying %s to %s: %s\n", src, dst, strerror(err));
        }
        goto done;
    }
    if (strcmp(sha, r->sha256) != 0) {
        /* Kept out of the backup: a restore must not publish wrong bytes under this name. */
        unlink(dst);
        char why[128];
        snprintf(why, sizeof why, "damaged in the store (its content hashes to %.16s…)", sha);
        backup_missing(b, r, why);
        ret = 0;
        goto done;
    }
    b->copied++;
    b->bytes += size;
    ret = 0;
done:
    free(src);
    free(dir);
    free(dst);
    return ret;
}

static int write_manifest(const char *dir, cJSON *manifest)
{
    char *text = cJSON_Print(manifest);
    char *tmp = xasprintf("%s/%s.part", dir, BACKUP_MANIFEST);
    char *path = xasprintf("%s/%s", dir, BACKUP_MANIFEST);
    int ret = -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, BACKUP_FILE_MODE);
    if (fd < 0)
        goto done;
    if (write_all(fd, text, strlen(text)) < 0 || write_all(fd, "\n", 1) < 0 || fsync(fd) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        goto done;
    }
    if (close(fd) < 0 || rename(tmp, path) < 0 || fsync_dir(dir) < 0)
        goto done;
    ret = 0;
done:
    if (ret < 0) {
        fprintf(stderr, "s4s-admin: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    cJSON_free(text);
    free(tmp);
    free(path);
    return ret;
}

static char *absolute(const char *path)
{
    char *r = realpath(path, NULL);
    return r ? r : xstrdup(path);
}

int cmd_backup(struct admin *a, int argc, char **argv)
{
    struct backup b;
    memset(&b, 0, sizeof b);
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--copy") == 0)
            b.copy_only = true;
        else if (argv[i][0] == '-' || dir)
            return admin_usage(argv[0]);
        else
            dir = argv[i];
    }
    if (!dir)
        return admin_usage(argv[0]);

    int ret = EXIT_FAIL, lock = -1;
    char *db_path = NULL, *db_dst = NULL, *blobs_src = NULL;
    struct db *db = NULL;
    sqlite3 *copy = NULL;
    cJSON *manifest = NULL;

    /* Shared: backups may run side by side, but gc must not delete under us. */
    if ((lock = admin_lock(a, false)) < 0)
        goto done;
    if (!(db_path = admin_database_path(a)))
        goto done;
    /* The schema must be current for blob_refs[] to read it. */
    if (admin_open_database(a, false, &db) < 0 || admin_require_migrated(db) < 0)
        goto done;
    db_close(db);
    db = NULL;

    if (mkdir_p(dir, BACKUP_DIR_MODE) < 0) {
        fprintf(stderr, "s4s-admin: creating %s: %s\n", dir, strerror(errno));
        goto done;
    }
    int has = dir_has_entries(dir);
    if (has != 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", dir,
                has < 0 ? strerror(errno) : "not empty (a backup goes into a new directory)");
        goto done;
    }

    char started[40];
    iso8601_now(started, sizeof started);
    int64_t t0 = now_mono_ms();
    db_dst = xasprintf("%s/%s", dir, BACKUP_DB_NAME);
    if (backup_database(db_path, db_dst) < 0)
        goto done;

    if (sqlite3_open_v2(db_dst, &copy, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: opening the copy %s: %s\n", db_dst,
                copy ? sqlite3_errmsg(copy) : "out of memory");
        goto done;
    }
    manifest = cJSON_CreateObject();
    cJSON_AddStringToObject(manifest, "format", BACKUP_FORMAT);
    cJSON_AddStringToObject(manifest, "created_at", started);
    cJSON_AddStringToObject(manifest, "s4s_version", PACKAGE_VERSION);
    cJSON *source = cJSON_AddObjectToObject(manifest, "source");
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) < 0)
        host[0] = '\0';
    cJSON_AddStringToObject(source, "host", host);
    char *abs_data = absolute(a->cfg.data_dir), *abs_db = absolute(db_path);
    cJSON_AddStringToObject(source, "data_dir", abs_data);
    cJSON_AddStringToObject(source, "database", abs_db);
    free(abs_data);
    free(abs_db);
    cJSON *tables = cJSON_AddObjectToObject(manifest, "tables");
    uint64_t rows = 0;
    if (backup_count_tables(copy, tables, &rows) < 0)
        goto done;
    cJSON *dbinfo = cJSON_AddObjectToObject(manifest, "database");
    cJSON_AddItemToObject(dbinfo, "migrations", backup_migrations(copy));
    if (backup_read_refs(copy, &b) < 0)
        goto done;
    sqlite3_close(copy);
    copy = NULL;

    blobs_src = xasprintf("%s/blobs", a->cfg.data_dir);
    b.blobs_src = blobs_src;
    b.blobs_dst = xasprintf("%s/blobs", dir);
    b.missing = cJSON_CreateArray();
    if (mkdir(b.blobs_dst, BACKUP_DIR_MODE) < 0 && errno != EEXIST) {
        fprintf(stderr, "s4s-admin: mkdir %s: %s\n", b.blobs_dst, strerror(errno));
        goto done;
    }
    for (size_t i = 0; i < b.nrefs; i++)
        if (backup_blob(&b, &b.refs[i]) < 0)
            goto done;
    /* The links and copies are durable only once their directories are. */
    for (unsigned i = 0; i < 256; i++) {
        if (!b.fanout_made[i])
            continue;
        char *fan = xasprintf("%s/%02x", b.blobs_dst, i);
        int rc = fsync_dir(fan);
        free(fan);
        if (rc < 0) {
            fprintf(stderr, "s4s-admin: fsync in %s: %s\n", b.blobs_dst, strerror(errno));
            goto done;
        }
    }
    if (fsync_dir(b.blobs_dst) < 0 || fsync_dir(dir) < 0) {
        fprintf(stderr, "s4s-admin: fsync %s: %s\n", dir, strerror(errno));
        goto done;
    }

    char db_sha[65];
    uint64_t db_size = 0;
    if (hash_path(db_dst, db_sha, &db_size) < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", db_dst, strerror(errno));
        goto done;
    }
    cJSON_AddStringToObject(dbinfo, "file", BACKUP_DB_NAME);
    cJSON_AddStringToObject(dbinfo, "sha256", db_sha);
    cJSON_AddNumberToObject(dbinfo, "size", (double)db_size);
    int nmissing = cJSON_GetArraySize(b.missing);
    cJSON *blobs = cJSON_AddObjectToObject(manifest, "blobs");
    cJSON_AddStringToObject(blobs, "layout",
                            "blobs/<first 2 hex>/<other 62 hex>, named by SHA-256");
    cJSON_AddNumberToObject(blobs, "count", (double)(b.linked + b.copied));
    cJSON_AddNumberToObject(blobs, "bytes", (double)b.bytes);
    cJSON_AddNumberToObject(blobs, "linked", (double)b.linked);
    cJSON_AddNumberToObject(blobs, "copied", (double)b.copied);
    cJSON_AddItemToObject(blobs, "missing", b.missing);
    b.missing = NULL;
    if (write_manifest(dir, manifest) < 0)
        goto done;

    char size_text[32];
    human_size(b.bytes, size_text, sizeof size_text);
    printf("backup of %s written to %s in %.1f s\n", db_path, dir,
           (double)(now_mono_ms() - t0) / 1000.0);
    printf("  database: %llu rows in %d tables, sha256 %s\n", (unsigned long long)rows,
           cJSON_GetArraySize(tables), db_sha);
    printf("  blobs:    %llu (%s; %llu hard-linked, %llu copied)\n",
           (unsigned long long)(b.linked + b.copied), size_text, (unsigned long long)b.linked,
           (unsigned long long)b.copied);
    if (nmissing) {
        printf("  MISSING:  %d referenced blob(s) could not be saved (listed in %s/%s); "
               "run s4s-admin check\n",
               nmissing, dir, BACKUP_MANIFEST);
        ret = EXIT_FAIL;
    } else {
        ret = EXIT_OK;
    }
done:
    if (copy)
        sqlite3_close(copy);
    db_close(db);
    for (size_t i = 0; i < b.nrefs; i++)
        free(b.refs[i].row_id);
    free(b.refs);
    free(b.blobs_dst);
    cJSON_Delete(b.missing);
    cJSON_Delete(manifest);
    free(blobs_src);
    free(db_dst);
    free(db_path);
    if (lock >= 0)
        close(lock);
    return ret;
}

/* ---- restore ----------------------------------------------------------------- */

struct restore {
    struct blobstore *bs;
    uint64_t restored, present, bytes, damaged;
    int fatal;
};

/* One blob of the backup into the store through the blob writer, verified. */
static int restore_blob(const struct blob_file *f, void *ctx)
{
    struct restore *r = ctx;
    if (blob_exists(r->bs, f->sha256)) {
        r->present++;
        return 0;
    }
    int in = open(f->path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", f->path, strerror(errno));
        r->fatal = 1;
        return 1;
    }
    struct blob_writer w;
    unsigned char buf[65536];
    int rc = blob_writer_begin(r->bs, &w, 0);
    while (rc == BLOB_OK) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "s4s-admin: reading %s: %s\n", f->path, strerror(errno));
            blob_writer_abort(&w);
            rc = BLOB_ERR_IO;
            break;
        }
        if (n == 0) {
            rc = blob_writer_finish(&w);
            break;
        }
        rc = blob_writer_write(&w, buf, (size_t)n);
    }
    close(in);
    if (rc != BLOB_OK) {
        fprintf(stderr, "s4s-admin: restoring %s: %s\n", f->path, blob_strerror(rc));
        r->fatal = 1;
        return 1;
    }
    if (strcmp(w.sha256, f->sha256) != 0) {
        fprintf(stderr, "s4s-admin: %s is damaged (its content hashes to %s): not restored\n",
                f->path, w.sha256);
        blob_writer_abort(&w);
        r->damaged++;
        return 0;
    }
    uint64_t size = w.size;
    if ((rc = blob_writer_commit(r->bs, &w)) != BLOB_OK) {
        fprintf(stderr, "s4s-admin: storing %s: %s\n", f->sha256, blob_strerror(rc));
        r->fatal = 1;
        return 1;
    }
    r->restored++;
    r->bytes += size;
    return 0;
}

static void restore_stray(const char *path, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "s4s-admin: ignoring %s (not a blob)\n", path);
}

static int saw_blob(const struct blob_file *f, void *ctx)
{
    (void)f;
    *(bool *)ctx = true;
    return 1;
}

static void saw_stray(const char *path, void *ctx)
{
    (void)path;
    *(bool *)ctx = true;
}

/*
 * Whether DATA_DIR holds data: a non-empty database file, any file under
 * blobs/ or tmp/, or anything else. Empty directories, empty files (a
 * database SQLite created and never wrote) and the admin lock do not count.
 */
static int data_dir_has_data(struct admin *a, const char *db_path, bool *has)
{
    struct stat st;
    *has = stat(db_path, &st) == 0 && st.st_size > 0;
    DIR *d = opendir(a->cfg.data_dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int ret = 0;
    while (!*has && ret == 0 && (e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, ADMIN_LOCK_NAME) == 0)
            continue;
        char *p = xasprintf("%s/%s", a->cfg.data_dir, n);
        if (strcmp(n, "blobs") == 0) {
            if (blobrefs_walk_store(p, saw_blob, saw_stray, has) < 0)
                ret = -1;
        } else if (strcmp(n, "tmp") == 0) {
            int r = dir_has_entries(p);
            if (r < 0)
                ret = -1;
            *has = r > 0;
        } else if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 0) {
            *has = true;
        }
        free(p);
    }
    closedir(d);
    return ret;
}

int cmd_restore(struct admin *a, int argc, char **argv)
{
    bool force = false;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (argv[i][0] == '-' || dir)
            return admin_usage(argv[0]);
        else
            dir = argv[i];
    }
    if (!dir)
        return admin_usage(argv[0]);

    int ret = EXIT_FAIL, lock = -1;
    char *db_path = NULL, *manifest_path = xasprintf("%s/%s", dir, BACKUP_MANIFEST);
    char *backup_db = xasprintf("%s/%s", dir, BACKUP_DB_NAME);
    char *backup_blobs = xasprintf("%s/blobs", dir);
    char *tmp_db = NULL, *text = NULL;
    cJSON *manifest = NULL;
    struct blobstore bs = {0};
    bool bs_open = false;

    /* The manifest is written last: without it the backup did not finish. */
    FILE *mf = fopen(manifest_path, "r");
    if (!mf) {
        fprintf(stderr, "s4s-admin: %s: %s (is %s a finished backup?)\n", manifest_path,
                strerror(errno), dir);
        goto done;
    }
    size_t cap = 1 << 16, len = 0;
    text = xmalloc(cap);
    for (;;) {
        size_t n = fread(text + len, 1, cap - len - 1, mf);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            if (cap > (64u << 20)) {
                fprintf(stderr, "s4s-admin: %s: too large for a manifest\n", manifest_path);
                fclose(mf);
                goto done;
            }
            cap *= 2;
            text = xrealloc(text, cap);
        }
    }
    fclose(mf);
    text[len] = '\0';
    manifest = cJSON_Parse(text);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(manifest, "format");
    const cJSON *dbinfo = cJSON_GetObjectItemCaseSensitive(manifest, "database");
    const cJSON *want_sha = cJSON_GetObjectItemCaseSensitive(dbinfo, "sha256");
    if (!cJSON_IsString(format) || strcmp(format->valuestring, BACKUP_FORMAT) != 0 ||
        !cJSON_IsString(want_sha)) {
        fprintf(stderr, "s4s-admin: %s is not a manifest this version understands (%s)\n",
                manifest_path, BACKUP_FORMAT);
        goto done;
    }
    char got_sha[65];
    if (hash_path(backup_db, got_sha, NULL) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", backup_db, strerror(errno));
        goto done;
    }
    if (strcmp(got_sha, want_sha->valuestring) != 0) {
        fprintf(stderr, "s4s-admin: %s is damaged: its SHA-256 is %s, the manifest says %s\n",
                backup_db, got_sha, want_sha->valuestring);
        goto done;
    }

    if ((lock = admin_lock(a, true)) < 0)
        goto done;
    if (!(db_path = admin_database_path(a)))
        goto done;
    bool has_data;
    if (data_dir_has_data(a, db_path, &has_data) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", a->cfg.data_dir, strerror(errno));
        goto done;
    }
    if (has_data && !force) {
        fprintf(stderr,
                "s4s-admin: DATA_DIR %s is not empty; restore into an empty one, or use --force "
                "to replace its database (stop the server first; blobs already there stay and "
                "gc removes those the restored database does not use)\n",
                a->cfg.data_dir);
        goto done;
    }
    struct stat dst;
    if (geteuid() == 0 && stat(a->cfg.data_dir, &dst) == 0 && dst.st_uid != 0)
        fprintf(stderr,
                "s4s-admin: running as root: the restored files belong to root, DATA_DIR "
                "to uid %ld; run as the server's user, or chown them before starting "
                "the server\n",
                (long)dst.st_uid);

    if (admin_open_blobs(a, &bs) < 0)
        goto done;
    bs_open = true;
    /* Blobs first, the database that points at them last (DESIGN.md "Storage"). */
    struct restore r = {.bs = &bs};
    int wrc = blobrefs_walk_store(backup_blobs, restore_blob, restore_stray, &r);
    if (wrc < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", backup_blobs, strerror(errno));
        goto done;
    }
    if (r.fatal)
        goto done;

    tmp_db = xasprintf("%s.restore-%ld", db_path, (long)getpid());
    char copied_sha[65];
    if (copy_file(backup_db, tmp_db, copied_sha, NULL) < 0) {
        fprintf(stderr, "s4s-admin: copying %s to %s: %s\n", backup_db, tmp_db, strerror(errno));
        goto done;
    }
    if (strcmp(copied_sha, got_sha) != 0) {
        fprintf(stderr, "s4s-admin: %s changed while it was copied\n", backup_db);
        unlink(tmp_db);
        goto done;
    }
    /* An old -wal would be replayed onto the restored file: remove it and its
     * index first. The server must be stopped (--force says the operator knows). */
    static const char *const suffixes[] = {"-wal", "-shm", "-journal"};
    for (size_t i = 0; i < ARRAY_LEN(suffixes); i++) {
        char *p = xasprintf("%s%s", db_path, suffixes[i]);
        if (unlink(p) < 0 && errno != ENOENT) {
            fprintf(stderr, "s4s-admin: removing %s: %s\n", p, strerror(errno));
            free(p);
            unlink(tmp_db);
            goto done;
        }
        free(p);
    }
    if (rename(tmp_db, db_path) < 0) {
        fprintf(stderr, "s4s-admin: rename %s to %s: %s\n", tmp_db, db_path, strerror(errno));
        unlink(tmp_db);
        goto done;
    }
    char *db_dir = xstrdup(db_path);
    char *slash = strrchr(db_dir, '/');
    if (slash)
        *(slash == db_dir ? slash + 1 : slash) = '\0';
    int frc = fsync_dir(slash ? db_dir : ".");
    free(db_dir);
    if (frc < 0) {
        fprintf(stderr, "s4s-admin: fsync the directory of %s: %s\n", db_path, strerror(errno));
        goto done;
    }

    const cJSON *created = cJSON_GetObjectItemCaseSensitive(manifest, "created_at");
    char size_text[32];
    human_size(r.bytes, size_text, sizeof size_text);
    printf("restored the backup of %s from %s\n",
           cJSON_IsString(created) ? created->valuestring : "(unknown time)", dir);
    printf("  database: %s\n", db_path);
    printf("  blobs:    %llu restored (%s), %llu already present\n", (unsigned long long)r.restored,
           size_text, (unsigned long long)r.present);
    if (r.damaged) {
        printf("  DAMAGED:  %llu blob(s) in the backup did not match their names and were left "
               "out; run s4s-admin check\n",
               (unsigned long long)r.damaged);
        goto done;
    }
    printf("next: s4s-admin check, then start the server (it applies any newer migrations)\n");
    ret = EXIT_OK;
done:
    if (bs_open)
        blob_store_close(&bs);
    cJSON_Delete(manifest);
    free(text);
    free(tmp_db);
    free(backup_blobs);
    free(backup_db);
    free(manifest_path);
    free(db_path);
    if (lock >= 0)
        close(lock);
    return ret;
}
