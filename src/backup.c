/*
 * backup.c — s4s-admin backup and restore.
 *
 * backup DIR: an online, consistent copy while the server takes writes.
 * SQLite: the database is copied with SQLite's backup API in a single step,
 * which reads one snapshot (in WAL mode writers carry on meanwhile); the copy
 * is switched to a rollback journal so it is one self-contained file
 * (DIR/main.db), and the references are read from it. PostgreSQL: one
 * REPEATABLE READ transaction exports its snapshot, pg_dump --snapshot dumps
 * exactly that snapshot into DIR/database.pgdump while the transaction stays
 * open, and the row counts and blob references are read in the same
 * transaction. Then every blob referenced (blob_refs[]) is hard-linked into
 * DIR/blobs when DIR is on the same file system (blobs are immutable, so a
 * link is a copy), else copied and fsync'd. Blobs written after the snapshot
 * are not referenced by it and are not needed. manifest.json is written
 * last: a backup without one is incomplete.
 *
 * restore DIR: the database and every blob of a backup into DATA_DIR (and,
 * for PostgreSQL, the configured database). Blobs go in first through the
 * blob store's own writer (temp file, fsync, link), each verified against its
 * name; the database last. SQLite: the file replaces any old one with a
 * rename after its -wal and -shm are gone. PostgreSQL: pg_restore in one
 * transaction, then the rows per table are compared with the manifest. A
 * backup restores only into a database of its own kind (copy-db converts).
 *
 * This module speaks to SQLite directly: the backup API and a database copy
 * that must keep its rollback journal are SQLite's business, not db.h's. For
 * PostgreSQL it runs the server's own client programs (found on PATH or in
 * Debian's versioned directories); libpq only parses DATABASE_URI for them.
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
#include <libpq-fe.h>
#include <limits.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACKUP_FORMAT "s4s-backup 1"
#define BACKUP_DB_NAME "main.db"
#define BACKUP_PG_DUMP_NAME "database.pgdump"
/* Where Debian installs each PostgreSQL version's programs (N/bin). */
#define PG_BIN_ROOT "/usr/lib/postgresql"
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

static void backup_add_ref(struct backup *b, const struct blob_ref *ref, const char *row_id,
                           const char *sha256)
{
    if (b->nrefs == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->refs = xrealloc(b->refs, b->cap * sizeof *b->refs);
    }
    struct backup_ref *r = &b->refs[b->nrefs++];
    snprintf(r->sha256, sizeof r->sha256, "%s", sha256 ? sha256 : "");
    r->table = ref->table;
    r->column = ref->column;
    r->row_id = xstrdup(row_id ? row_id : "");
}

static void backup_refs_clear(struct backup *b)
{
    for (size_t i = 0; i < b->nrefs; i++)
        free(b->refs[i].row_id);
    b->nrefs = 0;
}

/* One entry per blob: many rows (versions, copies) share content. */
static void backup_unique_refs(struct backup *b)
{
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
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            backup_add_ref(b, &blob_refs[i], (const char *)sqlite3_column_text(st, 0),
                           (const char *)sqlite3_column_text(st, 1));
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "s4s-admin: reading %s.%s from the copy: %s\n", blob_refs[i].table,
                    blob_refs[i].column, sqlite3_errmsg(h));
            return -1;
        }
    }
    backup_unique_refs(b);
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

/* ---- PostgreSQL: pg_dump and pg_restore --------------------------------------- */

/*
 * Run argv (argv[0] a path; no shell) with stdin from /dev/null and our
 * stderr; stdout is ours too or, with out, captured (NUL-terminated, cut at
 * outlen). Returns the exit status, 128 + the signal that ended it, or -1
 * (errno) when it could not be started.
 */
static int run_program(char *const argv[], char *const envp[], char *out, size_t outlen)
{
    posix_spawn_file_actions_t fa;
    int pfd[2] = {-1, -1};
    pid_t pid;
    int err = posix_spawn_file_actions_init(&fa);
    if (err != 0) {
        errno = err;
        return -1;
    }
    err = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    if (err == 0 && out) {
        if (pipe2(pfd, O_CLOEXEC) < 0)
            err = errno;
        else
            err = posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
    }
    if (err == 0)
        err = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    if (pfd[1] >= 0)
        close(pfd[1]);
    if (err != 0) {
        if (pfd[0] >= 0)
            close(pfd[0]);
        errno = err;
        return -1;
    }
    if (out) {
        size_t len = 0;
        char buf[512];
        for (;;) {
            ssize_t n = read(pfd[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            size_t take = outlen - 1 - len < (size_t)n ? outlen - 1 - len : (size_t)n;
            memcpy(out + len, buf, take);
            len += take;
        }
        out[len] = '\0';
        close(pfd[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* One of PostgreSQL's client programs, found where Debian puts them. */
struct pg_tool {
    char *path;
    int major;         /* -1 until one is found */
    char version[256]; /* its --version line */
};

/* path's major version from its --version ("pg_dump (PostgreSQL) 15.18 …"), or -1. */
static int pg_tool_version(const char *path, char *line, size_t len)
{
    static const char mark[] = "(PostgreSQL) ";
    char *argv[] = {(char *)path, "--version", NULL};
    char out[256];
    if (run_program(argv, NULL, out, sizeof out) != 0)
        return -1;
    out[strcspn(out, "\n")] = '\0';
    const char *p = strstr(out, mark);
    if (!p)
        return -1;
    p += strlen(mark);
    char *end;
    long major = strtol(p, &end, 10);
    if (end == p || major <= 0 || major > 1000)
        return -1;
    snprintf(line, len, "%s", out);
    return (int)major;
}

/* Keep path (owned) if it runs and is newer than the best so far. */
static void pg_tool_consider(struct pg_tool *t, char *path)
{
    char line[256];
    int major = access(path, X_OK) == 0 ? pg_tool_version(path, line, sizeof line) : -1;
    if (major > t->major) {
        free(t->path);
        t->path = path;
        t->major = major;
        snprintf(t->version, sizeof t->version, "%s", line);
    } else {
        free(path);
    }
}

/*
 * The newest of Debian's versioned PG_BIN_ROOT/N/bin/name and the first name
 * on PATH (taken only when newer: Debian's /usr/bin one is a wrapper script).
 * Several versions may be installed side by side, and pg_dump refuses a
 * server newer than itself. 0, or -1 with a message.
 */
static int pg_tool_find(const char *name, struct pg_tool *t)
{
    memset(t, 0, sizeof *t);
    t->major = -1;
    DIR *d = opendir(PG_BIN_ROOT);
    if (d) {
        const struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
                pg_tool_consider(t, xasprintf("%s/%s/bin/%s", PG_BIN_ROOT, e->d_name, name));
        closedir(d);
    }
    const char *path = getenv("PATH");
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        if (n > 0) {
            char *cand = xasprintf("%.*s/%s", (int)n, p, name);
            if (access(cand, X_OK) == 0) {
                pg_tool_consider(t, cand);
                break;
            }
            free(cand);
        }
        p += n + (p[n] == ':');
    }
    if (!t->path) {
        fprintf(stderr,
                "s4s-admin: %s not found (neither on PATH nor in %s/*/bin): install the Debian "
                "package postgresql-client\n",
                name, PG_BIN_ROOT);
        return -1;
    }
    return 0;
}

/*
 * DATABASE_URI as pg_dump and pg_restore get it: a conninfo string without the
 * password (a command line is visible to every user of the machine), the
 * password in their environment as PGPASSWORD.
 */
struct pg_conn {
    char *conninfo;
    char **envp;
    char *password_env; /* "PGPASSWORD=…" in envp, or NULL */
};

static int pg_conn_init(struct pg_conn *c, const char *uri)
{
    memset(c, 0, sizeof *c);
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &err);
    if (!opts) {
        fprintf(stderr, "s4s-admin: DATABASE_URI: %.*s\n", err ? (int)strcspn(err, "\n") : 13,
                err ? err : "out of memory");
        PQfreemem(err);
        return -1;
    }
    size_t cap = 1, len = 0;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (o->val)
            cap += strlen(o->keyword) + 2 * strlen(o->val) + 4;
    c->conninfo = xmalloc(cap);
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0) {
            c->password_env = xasprintf("PGPASSWORD=%s", o->val);
            continue;
        }
        /* keyword='value', with ' and \ escaped as conninfo strings want. */
        len += (size_t)snprintf(c->conninfo + len, cap - len, "%s%s='", len ? " " : "", o->keyword);
        for (const char *v = o->val; *v; v++) {
            if (*v == '\'' || *v == '\\')
                c->conninfo[len++] = '\\';
            c->conninfo[len++] = *v;
        }
        c->conninfo[len++] = '\'';
    }
    c->conninfo[len] = '\0';
    PQconninfoFree(opts);

    size_t n = 0;
    while (environ[n])
        n++;
    c->envp = xcalloc(n + 2, sizeof *c->envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!c->password_env || strncmp(environ[i], "PGPASSWORD=", 11) != 0)
            c->envp[k++] = environ[i];
    if (c->password_env)
        c->envp[k++] = c->password_env;
    c->envp[k] = NULL;
    return 0;
}

static void pg_conn_free(struct pg_conn *c)
{
    free(c->conninfo);
    free(c->envp);
    free(c->password_env);
}

struct pg_server {
    char name[256];   /* current_database() */
    char version[64]; /* server_version */
    int major;
};

static int pg_server_info(struct db *db, struct pg_server *s)
{
    struct db_stmt *st = db_prepare(db, "SELECT current_database(), "
                                        "current_setting('server_version'), "
                                        "CAST(current_setting('server_version_num') AS INTEGER)");
    if (!st || db_step(st) != DB_ROW) {
        fprintf(stderr, "s4s-admin: cannot ask the PostgreSQL server its version\n");
        return -1;
    }
    snprintf(s->name, sizeof s->name, "%s", db_column_text(st, 0));
    snprintf(s->version, sizeof s->version, "%s", db_column_text(st, 1));
    /* 150018 is 15.18; before 10, 90624 was 9.6.24 (major 9 is near enough to compare). */
    s->major = (int)(db_column_int64(st, 2) / 10000);
    db_reset(st);
    return 0;
}

/* The tables of the current schema (where the migrations create ours), by name. */
static int pg_tables(struct db *db, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    struct db_stmt *st = db_prepare(db, "SELECT tablename FROM pg_catalog.pg_tables "
                                        "WHERE schemaname = current_schema() ORDER BY tablename");
    if (!st)
        return DB_ERROR;
    int rc;
    size_t cap = 0;
    while ((rc = db_step(st)) == DB_ROW) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *names = xrealloc(*names, cap * sizeof **names);
        }
        (*names)[(*n)++] = xstrdup(db_column_text(st, 0));
    }
    return rc;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/*
 * Rows in a table (any: 1 if it has one, else 0). A table name cannot be a
 * bound parameter: it is quoted as an identifier, quotes doubled.
 */
static int pg_count(struct db *db, const char *table, bool any, int64_t *out)
{
    char *quoted = xmalloc(2 * strlen(table) + 1), *q = quoted;
    for (const char *p = table; *p; p++) {
        if (*p == '"')
            *q++ = '"';
        *q++ = *p;
    }
    *q = '\0';
    char *sql = any ? xasprintf("SELECT CAST(EXISTS (SELECT 1 FROM \"%s\") AS INTEGER)", quoted)
                    : xasprintf("SELECT count(*) FROM \"%s\"", quoted);
    free(quoted);
    struct db_stmt *st = db_prepare(db, sql);
    free(sql);
    if (!st)
        return DB_ERROR;
    int rc = db_step(st);
    if (rc != DB_ROW)
        return rc == DB_OK ? DB_ERROR : rc;
    *out = db_column_int64(st, 0);
    db_reset(st);
    return DB_OK;
}

/* What the snapshot transaction fills in. */
struct pg_snap {
    struct backup *b;
    const struct pg_tool *dump;
    const struct pg_conn *conn;
    const char *file; /* DIR/database.pgdump */
    cJSON *tables, *migrations;
    uint64_t rows;
    char snapshot[64];
};

static int pg_add_ref(const struct blob_ref *ref, const char *row_id, const char *sha256, void *ctx)
{
    backup_add_ref(ctx, ref, row_id, sha256);
    return 0;
}

/*
 * Inside one REPEATABLE READ transaction: export its snapshot, have pg_dump
 * dump exactly that snapshot while the transaction stays open, and read the
 * row counts, the migrations and every blob reference from it too. So the
 * dump, the manifest and the blobs saved are one point in time, however
 * many writes the server takes meanwhile.
 */
static int pg_snapshot_tx(struct db *db, void *ctx)
{
    struct pg_snap *p = ctx;
    /* A retried transaction starts from nothing. */
    backup_refs_clear(p->b);
    cJSON_Delete(p->tables);
    cJSON_Delete(p->migrations);
    p->tables = cJSON_CreateObject();
    p->migrations = cJSON_CreateArray();
    p->rows = 0;
    if (unlink(p->file) < 0 && errno != ENOENT) {
        fprintf(stderr, "s4s-admin: removing %s: %s\n", p->file, strerror(errno));
        return DB_ERROR;
    }

    struct db_stmt *st = db_prepare(db, "SELECT pg_export_snapshot()");
    int rc = st ? db_step(st) : DB_ERROR;
    if (rc != DB_ROW) {
        fprintf(stderr, "s4s-admin: exporting a snapshot failed\n");
        return rc == DB_OK ? DB_ERROR : rc;
    }
    snprintf(p->snapshot, sizeof p->snapshot, "%s", db_column_text(st, 0));
    db_reset(st);

    char *snap_arg = xasprintf("--snapshot=%s", p->snapshot);
    char *file_arg = xasprintf("--file=%s", p->file);
    char *db_arg = xasprintf("--dbname=%s", p->conn->conninfo);
    char *argv[] = {p->dump->path,
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    "--no-password",
                    snap_arg,
                    file_arg,
                    db_arg,
                    NULL};
    int status = run_program(argv, p->conn->envp, NULL, 0);
    free(snap_arg);
    free(file_arg);
    free(db_arg);
    if (status != 0) {
        if (status < 0)
            fprintf(stderr, "s4s-admin: running %s: %s\n", p->dump->path, strerror(errno));
        else
            fprintf(stderr, "s4s-admin: %s failed (exit status %d)\n", p->dump->path, status);
        return DB_ERROR;
    }

    char **names;
    size_t n;
    rc = pg_tables(db, &names, &n);
    for (size_t i = 0; rc == DB_OK && i < n; i++) {
        int64_t count = 0;
        rc = pg_count(db, names[i], false, &count);
        cJSON_AddNumberToObject(p->tables, names[i], (double)count);
        p->rows += (uint64_t)count;
    }
    free_names(names, n);
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: counting the rows of the snapshot failed\n");
        return rc;
    }
    st = db_prepare(db, "SELECT name FROM schema_migrations ORDER BY name");
    if (!st)
        return DB_ERROR;
    while ((rc = db_step(st)) == DB_ROW)
        cJSON_AddItemToArray(p->migrations, cJSON_CreateString(db_column_text(st, 0)));
    if (rc != DB_OK)
        return rc;
    rc = blobrefs_each(db, pg_add_ref, p->b);
    if (rc != DB_OK)
        fprintf(stderr, "s4s-admin: reading the blob references failed\n");
    return rc;
}

/*
 * The PostgreSQL half of backup: the dump into file, the counts into tables,
 * the migrations and the dump's facts into dbinfo, the references into b.
 * 0, or -1 with a message.
 */
static int backup_pg(struct db *db, const struct pg_conn *conn, const struct pg_server *srv,
                     const char *file, struct backup *b, cJSON *tables, cJSON *dbinfo,
                     uint64_t *rows)
{
    struct pg_tool dump;
    if (pg_tool_find("pg_dump", &dump) < 0)
        return -1;
    int ret = -1;
    if (dump.major < srv->major) {
        fprintf(stderr,
                "s4s-admin: %s is version %d, the server %s: pg_dump cannot dump a newer "
                "server; install postgresql-client-%d (from apt.postgresql.org if Debian has "
                "none)\n",
                dump.path, dump.major, srv->version, srv->major);
        goto done;
    }
    struct pg_snap p = {.b = b, .dump = &dump, .conn = conn, .file = file};
    int rc = db_transaction(db, false, pg_snapshot_tx, &p);
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: no consistent snapshot of the database was saved\n");
        cJSON_Delete(p.tables);
        cJSON_Delete(p.migrations);
        goto done;
    }
    backup_unique_refs(b);
    /* pg_dump made the file with the umask's mode and does not fsync it. */
    if (chmod(file, BACKUP_FILE_MODE) < 0 || fsync_path(file) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", file, strerror(errno));
        cJSON_Delete(p.tables);
        cJSON_Delete(p.migrations);
        goto done;
    }
    /* Move the counts into the manifest's object, in their order. */
    cJSON *it = p.tables->child;
    while (it) {
        cJSON *next = it->next;
        cJSON_AddItemToObject(tables, it->string, cJSON_DetachItemViaPointer(p.tables, it));
        it = next;
    }
    cJSON_Delete(p.tables);
    *rows = p.rows;
    cJSON_AddItemToObject(dbinfo, "migrations", p.migrations);
    cJSON_AddStringToObject(dbinfo, "format", "pg_dump custom");
    cJSON_AddStringToObject(dbinfo, "server_version", srv->version);
    cJSON_AddStringToObject(dbinfo, "pg_dump", dump.version);
    cJSON_AddNumberToObject(dbinfo, "pg_dump_major", dump.major);
    cJSON_AddStringToObject(dbinfo, "snapshot", p.snapshot);
    ret = 0;
done:
    free(dump.path);
    return ret;
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
    bool pg = db_uri_is_postgres(a->cfg.database_uri);
    struct pg_conn conn = {0};
    struct pg_server srv = {0};

    /* Shared: backups may run side by side, but gc must not delete under us. */
    if ((lock = admin_lock(a, false)) < 0)
        goto done;
    if (!pg && !(db_path = admin_database_path(a)))
        goto done;
    /* The schema must be current for blob_refs[] to read it. */
    if (admin_open_database(a, false, &db) < 0 || admin_require_migrated(db) < 0)
        goto done;
    if (pg) {
        /* The connection stays open: the snapshot is taken through it. */
        if (pg_conn_init(&conn, a->cfg.database_uri) < 0 || pg_server_info(db, &srv) < 0)
            goto done;
        db_path = xasprintf("PostgreSQL database %s", srv.name);
    } else {
        db_close(db);
        db = NULL;
    }

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
    db_dst = xasprintf("%s/%s", dir, pg ? BACKUP_PG_DUMP_NAME : BACKUP_DB_NAME);
    if (!pg && backup_database(db_path, db_dst) < 0)
        goto done;

    if (!pg && sqlite3_open_v2(db_dst, &copy, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
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
    char *abs_data = absolute(a->cfg.data_dir);
    char *abs_db = pg ? db_uri_display(a->cfg.database_uri) : absolute(db_path);
    cJSON_AddStringToObject(source, "data_dir", abs_data);
    cJSON_AddStringToObject(source, "database", abs_db);
    free(abs_data);
    free(abs_db);
    cJSON *tables = cJSON_AddObjectToObject(manifest, "tables");
    uint64_t rows = 0;
    if (!pg && backup_count_tables(copy, tables, &rows) < 0)
        goto done;
    cJSON *dbinfo = cJSON_AddObjectToObject(manifest, "database");
    cJSON_AddStringToObject(dbinfo, "driver", pg ? "postgresql" : "sqlite");
    if (pg) {
        if (backup_pg(db, &conn, &srv, db_dst, &b, tables, dbinfo, &rows) < 0)
            goto done;
        db_close(db);
        db = NULL;
    } else {
        cJSON_AddItemToObject(dbinfo, "migrations", backup_migrations(copy));
        if (backup_read_refs(copy, &b) < 0)
            goto done;
        sqlite3_close(copy);
        copy = NULL;
    }

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
    cJSON_AddStringToObject(dbinfo, "file", pg ? BACKUP_PG_DUMP_NAME : BACKUP_DB_NAME);
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
    pg_conn_free(&conn);
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
 * Whether DATA_DIR holds data: a non-empty database file (db_path; NULL for
 * PostgreSQL), any file under blobs/ or tmp/, or anything else. Empty
 * directories, empty files (a database SQLite created and never wrote) and
 * the admin lock do not count.
 */
static int data_dir_has_data(struct admin *a, const char *db_path, bool *has)
{
    struct stat st;
    *has = db_path && stat(db_path, &st) == 0 && st.st_size > 0;
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

/* Every blob of the backup into DATA_DIR's store (blobs before the database
 * that points at them: DESIGN.md "Storage"). 0, or -1 with a message. */
static int restore_blobs(struct admin *a, const char *backup_blobs, struct restore *r)
{
    struct blobstore bs = {0};
    if (admin_open_blobs(a, &bs) < 0)
        return -1;
    r->bs = &bs;
    int wrc = blobrefs_walk_store(backup_blobs, restore_blob, restore_stray, r);
    if (wrc < 0)
        fprintf(stderr, "s4s-admin: reading %s: %s\n", backup_blobs, strerror(errno));
    blob_store_close(&bs);
    r->bs = NULL;
    return wrc < 0 || r->fatal ? -1 : 0;
}

/* The closing summary of a restore; false when blobs had to be left out. */
static bool restore_report(const cJSON *manifest, const char *dir, const char *database,
                           const struct restore *r)
{
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(manifest, "created_at");
    char size_text[32];
    human_size(r->bytes, size_text, sizeof size_text);
    printf("restored the backup of %s from %s\n",
           cJSON_IsString(created) ? created->valuestring : "(unknown time)", dir);
    printf("  database: %s\n", database);
    printf("  blobs:    %llu restored (%s), %llu already present\n",
           (unsigned long long)r->restored, size_text, (unsigned long long)r->present);
    if (r->damaged) {
        printf("  DAMAGED:  %llu blob(s) in the backup did not match their names and were left "
               "out; run s4s-admin check\n",
               (unsigned long long)r->damaged);
        return false;
    }
    printf("next: s4s-admin check, then start the server (it applies any newer migrations)\n");
    return true;
}

static void restore_warn_owner(struct admin *a)
{
    struct stat dst;
    if (geteuid() == 0 && stat(a->cfg.data_dir, &dst) == 0 && dst.st_uid != 0)
        fprintf(stderr,
                "s4s-admin: running as root: the restored files belong to root, DATA_DIR "
                "to uid %ld; run as the server's user, or chown them before starting "
                "the server\n",
                (long)dst.st_uid);
}

/* What a PostgreSQL database holds before a restore. */
struct pg_probe {
    bool tables, rows; /* any table in the current schema; any row in one */
};

static int pg_probe_tx(struct db *db, void *ctx)
{
    struct pg_probe *p = ctx;
    char **names;
    size_t n;
    int rc = pg_tables(db, &names, &n);
    p->tables = n > 0;
    p->rows = false;
    for (size_t i = 0; rc == DB_OK && i < n && !p->rows; i++) {
        /* Migrating an empty database (a server started on it) fills only this one. */
        if (strcmp(names[i], "schema_migrations") == 0)
            continue;
        int64_t any = 0;
        rc = pg_count(db, names[i], true, &any);
        p->rows = any > 0;
    }
    free_names(names, n);
    return rc;
}

/* The restored database against the manifest's rows per table. */
struct pg_verify {
    const cJSON *want;
    uint64_t rows;
    int tables, wrong;
};

static int pg_verify_tx(struct db *db, void *ctx)
{
    struct pg_verify *v = ctx;
    char **names;
    size_t n;
    v->rows = 0;
    v->tables = v->wrong = 0;
    int rc = pg_tables(db, &names, &n);
    const cJSON *it;
    cJSON_ArrayForEach(it, v->want)
    {
        if (rc != DB_OK)
            break;
        bool present = false;
        for (size_t i = 0; i < n && !present; i++)
            present = strcmp(names[i], it->string) == 0;
        int64_t got = -1;
        if (present && (rc = pg_count(db, it->string, false, &got)) != DB_OK)
            break;
        v->tables++;
        v->rows += got > 0 ? (uint64_t)got : 0;
        if (!cJSON_IsNumber(it) || (double)got != it->valuedouble) {
            v->wrong++;
            if (got < 0)
                fprintf(stderr, "s4s-admin: table %s is missing after the restore\n", it->string);
            else
                fprintf(stderr, "s4s-admin: table %s has %lld rows, the manifest says %.0f\n",
                        it->string, (long long)got, cJSON_IsNumber(it) ? it->valuedouble : -1);
        }
    }
    free_names(names, n);
    return rc;
}

/*
 * restore into PostgreSQL: blobs into DATA_DIR, then pg_restore in one
 * transaction (into an empty database; --clean --if-exists when forced, or
 * when the tables exist but hold nothing), then the rows per table compared
 * with the manifest. The lock is held and the dump verified by the caller.
 */
static int restore_pg(struct admin *a, const char *dir, const cJSON *manifest,
                      const char *dump_path, bool force)
{
    const cJSON *dbinfo = cJSON_GetObjectItemCaseSensitive(manifest, "database");
    const cJSON *made_by = cJSON_GetObjectItemCaseSensitive(dbinfo, "pg_dump_major");
    const cJSON *tables = cJSON_GetObjectItemCaseSensitive(manifest, "tables");
    char *backup_blobs = xasprintf("%s/blobs", dir);
    struct pg_tool tool = {0};
    struct pg_conn conn = {0};
    struct db *db = NULL;
    int ret = EXIT_FAIL;

    if (!cJSON_IsObject(tables)) {
        fprintf(stderr, "s4s-admin: %s/%s lists no tables\n", dir, BACKUP_MANIFEST);
        goto done;
    }
    if (pg_tool_find("pg_restore", &tool) < 0 || pg_conn_init(&conn, a->cfg.database_uri) < 0)
        goto done;
    /* An older pg_restore cannot read a newer pg_dump's archive. */
    if (cJSON_IsNumber(made_by) && tool.major < made_by->valuedouble) {
        fprintf(stderr,
                "s4s-admin: %s is version %d; the backup was made by pg_dump %.0f: install "
                "postgresql-client-%.0f\n",
                tool.path, tool.major, made_by->valuedouble, made_by->valuedouble);
        goto done;
    }
    if (admin_open_database(a, false, &db) < 0)
        goto done;
    struct pg_server srv;
    struct pg_probe probe = {0};
    if (pg_server_info(db, &srv) < 0)
        goto done;
    if (db_transaction(db, false, pg_probe_tx, &probe) != DB_OK) {
        fprintf(stderr, "s4s-admin: cannot read the target database %s\n", srv.name);
        goto done;
    }
    /* Our connection must hold nothing while pg_restore replaces tables. */
    db_close(db);
    db = NULL;
    bool has_data;
    if (data_dir_has_data(a, NULL, &has_data) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", a->cfg.data_dir, strerror(errno));
        goto done;
    }
    if ((probe.rows || has_data) && !force) {
        char *what = !probe.rows ? xasprintf("DATA_DIR %s is", a->cfg.data_dir)
                     : has_data  ? xasprintf("the PostgreSQL database %s and DATA_DIR %s are",
                                             srv.name, a->cfg.data_dir)
                                 : xasprintf("the PostgreSQL database %s is", srv.name);
        fprintf(stderr,
                "s4s-admin: %s not empty; restore into an empty database and DATA_DIR, or use "
                "--force to replace the database's tables (stop the server first; blobs "
                "already in DATA_DIR stay and gc removes those the restored database does "
                "not use)\n",
                what);
        free(what);
        goto done;
    }
    restore_warn_owner(a);

    struct restore r = {0};
    if (restore_blobs(a, backup_blobs, &r) < 0)
        goto done;

    /* One transaction: a failure leaves the database as it was. */
    char *db_arg = xasprintf("--dbname=%s", conn.conninfo);
    char *argv[12];
    size_t n = 0;
    argv[n++] = tool.path;
    argv[n++] = "--no-owner";
    argv[n++] = "--no-privileges";
    argv[n++] = "--single-transaction";
    argv[n++] = "--exit-on-error";
    argv[n++] = "--no-password";
    if (force || probe.tables) {
        /* Drop what the dump is about to create: a forced restore, or a database
         * whose tables exist but hold nothing (a server was started on it). */
        argv[n++] = "--clean";
        argv[n++] = "--if-exists";
    }
    argv[n++] = db_arg;
    argv[n++] = (char *)dump_path;
    argv[n] = NULL;
    int status = run_program(argv, conn.envp, NULL, 0);
    free(db_arg);
    if (status != 0) {
        if (status < 0)
            fprintf(stderr, "s4s-admin: running %s: %s\n", tool.path, strerror(errno));
        else
            fprintf(stderr,
                    "s4s-admin: %s failed (exit status %d); the database is as it was before\n",
                    tool.path, status);
        goto done;
    }

    struct pg_verify v = {.want = tables};
    if (admin_open_database(a, false, &db) < 0 ||
        db_transaction(db, false, pg_verify_tx, &v) != DB_OK) {
        fprintf(stderr, "s4s-admin: cannot read the restored database\n");
        goto done;
    }
    if (v.wrong) {
        fprintf(stderr,
                "s4s-admin: the restored database does not hold what the manifest says (%d "
                "table(s) differ)\n",
                v.wrong);
        goto done;
    }
    char *what = xasprintf("PostgreSQL database %s, %llu rows in %d tables (as the manifest says)",
                           srv.name, (unsigned long long)v.rows, v.tables);
    if (restore_report(manifest, dir, what, &r))
        ret = EXIT_OK;
    free(what);
done:
    db_close(db);
    pg_conn_free(&conn);
    free(tool.path);
    free(backup_blobs);
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
    char *backup_db = NULL;
    char *backup_blobs = xasprintf("%s/blobs", dir);
    char *tmp_db = NULL, *text = NULL;
    cJSON *manifest = NULL;

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
    /* Manifests from before PostgreSQL support have no driver: SQLite. */
    const cJSON *driver = cJSON_GetObjectItemCaseSensitive(dbinfo, "driver");
    const char *from = cJSON_IsString(driver) ? driver->valuestring : "sqlite";
    bool from_pg = strcmp(from, "postgresql") == 0;
    if (!cJSON_IsString(format) || strcmp(format->valuestring, BACKUP_FORMAT) != 0 ||
        !cJSON_IsString(want_sha) || (!from_pg && strcmp(from, "sqlite") != 0)) {
        fprintf(stderr, "s4s-admin: %s is not a manifest this version understands (%s)\n",
                manifest_path, BACKUP_FORMAT);
        goto done;
    }
    bool to_pg = db_uri_is_postgres(a->cfg.database_uri);
    if (from_pg != to_pg) {
        fprintf(stderr,
                "s4s-admin: %s is a backup of %s database and DATABASE_URI names %s one: restore "
                "it with a DATABASE_URI of its own kind, then move the data across with "
                "s4s-admin copy-db --from URI --to URI\n",
                dir, from_pg ? "a PostgreSQL" : "an SQLite", to_pg ? "a PostgreSQL" : "an SQLite");
        goto done;
    }
    backup_db = xasprintf("%s/%s", dir, from_pg ? BACKUP_PG_DUMP_NAME : BACKUP_DB_NAME);
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
    if (to_pg) {
        ret = restore_pg(a, dir, manifest, backup_db, force);
        goto done;
    }
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
    restore_warn_owner(a);

    /* Blobs first, the database that points at them last (DESIGN.md "Storage"). */
    struct restore r = {0};
    if (restore_blobs(a, backup_blobs, &r) < 0)
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

    if (restore_report(manifest, dir, db_path, &r))
        ret = EXIT_OK;
done:
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
