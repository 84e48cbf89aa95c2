/*
 * blobrefs.c — the table of columns that hold blob names, reading the set
 * of referenced names, and walking the blob store and its tmp/ directory.
 * Used by s4s-admin backup, check, gc and stats; the server never needs it.
 */
#include "blobrefs.h"
#include "db.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

/*
 * Every column whose value is a blob's SHA-256. Add a row here when a
 * migration adds one: backup copies, check verifies and gc keeps exactly
 * what these statements return. Soft-deleted projects are included: their
 * blobs stay until gc purges the row.
 */
const struct blob_ref blob_refs[] = {
    {"projects", "sb3_sha256",
     "SELECT CAST(id AS TEXT), sb3_sha256 FROM projects WHERE sb3_sha256 IS NOT NULL"},
    {"projects", "thumbnail_sha256",
     "SELECT CAST(id AS TEXT), thumbnail_sha256 FROM projects WHERE thumbnail_sha256 IS NOT NULL"},
    {"project_versions", "sha256",
     "SELECT CAST(project_id AS TEXT) || '/' || CAST(version AS TEXT), sha256 "
     "FROM project_versions WHERE sha256 IS NOT NULL"},
    {"assets", "sha256", "SELECT CAST(id AS TEXT), sha256 FROM assets WHERE sha256 IS NOT NULL"},
};
const size_t blob_refs_count = ARRAY_LEN(blob_refs);

int blobrefs_each(struct db *db, blobrefs_fn fn, void *ctx)
{
    for (size_t i = 0; i < blob_refs_count; i++) {
        struct db_stmt *st = db_prepare(db, blob_refs[i].sql);
        if (!st)
            return DB_ERROR;
        int rc;
        while ((rc = db_step(st)) == DB_ROW) {
            int stop = fn(&blob_refs[i], db_column_text(st, 0), db_column_text(st, 1), ctx);
            if (stop) {
                db_reset(st);
                return stop;
            }
        }
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

/* ---- the set of names ----------------------------------------------------- */

void shaset_add(struct shaset *s, const char *sha256)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    snprintf(s->v[s->n++], sizeof s->v[0], "%s", sha256);
    s->sorted = false;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

bool shaset_has(struct shaset *s, const char *sha256)
{
    if (s->n == 0) /* qsort and bsearch want a non-NULL array */
        return false;
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof s->v[0], cmp_name);
        /* Drop duplicates: many rows share one blob. */
        size_t out = 0;
        for (size_t i = 0; i < s->n; i++)
            if (out == 0 || strcmp(s->v[out - 1], s->v[i]) != 0)
                memmove(s->v[out++], s->v[i], sizeof s->v[0]);
        s->n = out;
        s->sorted = true;
    }
    char key[65];
    snprintf(key, sizeof key, "%s", sha256);
    return bsearch(key, s->v, s->n, sizeof s->v[0], cmp_name) != NULL;
}

void shaset_free(struct shaset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int add_ref(const struct blob_ref *ref, const char *row_id, const char *sha256, void *ctx)
{
    (void)ref;
    (void)row_id;
    shaset_add(ctx, sha256);
    return 0;
}

static int collect_tx(struct db *db, void *ctx)
{
    struct shaset *s = ctx;
    s->n = 0; /* a retried transaction starts over */
    return blobrefs_each(db, add_ref, s);
}

int blobrefs_collect(struct db *db, struct shaset *out)
{
    int rc = db_transaction(db, false, collect_tx, out);
    if (rc == DB_OK)
        (void)shaset_has(out, ""); /* sort and dedupe now, outside the transaction */
    return rc;
}

/* ---- walking the store ------------------------------------------------------ */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

static int walk_fanout(const char *dir, const char *prefix, blob_file_fn fn, blob_stray_fn stray,
                       void *ctx)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    int ret = 0;
    errno = 0;
    while (ret == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) < 0) {
            if (errno != ENOENT) /* gone meanwhile (gc): nothing to report */
                ret = -1;
        } else if (S_ISREG(st.st_mode) && strlen(e->d_name) == 62 && is_lower_hex(e->d_name, 62)) {
            struct blob_file f;
            snprintf(f.sha256, sizeof f.sha256, "%s%s", prefix, e->d_name);
            f.path = path;
            f.size = (uint64_t)st.st_size;
            f.mtime = st.st_mtim;
            ret = fn(&f, ctx);
        } else if (stray) {
            stray(path, ctx);
        }
        free(path);
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    if (ret == 0 && saved) {
        errno = saved;
        return -1;
    }
    return ret;
}

int blobrefs_walk_store(const char *blobs_dir, blob_file_fn fn, blob_stray_fn stray, void *ctx)
{
    DIR *d = opendir(blobs_dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    /* Sorted, so every listing and every run visits blobs in the same order. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(e->d_name);
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    int ret = 0;
    if (saved) {
        errno = saved;
        ret = -1;
    }
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_str_ptr);
    for (size_t i = 0; i < n && ret == 0; i++) {
        char *path = xasprintf("%s/%s", blobs_dir, names[i]);
        struct stat st;
        if (lstat(path, &st) < 0) {
            if (errno != ENOENT)
                ret = -1;
        } else if (S_ISDIR(st.st_mode) && strlen(names[i]) == 2 && is_lower_hex(names[i], 2)) {
            ret = walk_fanout(path, names[i], fn, stray, ctx);
        } else if (stray) {
            stray(path, ctx);
        }
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ret;
}

int blobrefs_walk_tmp(const char *tmp_dir, tmp_file_fn fn, void *ctx)
{
    DIR *d = opendir(tmp_dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int ret = 0;
    errno = 0;
    while (ret == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *path = xasprintf("%s/%s", tmp_dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            struct tmp_file f = {e->d_name, path, (uint64_t)st.st_size, st.st_mtim};
            ret = fn(&f, ctx);
        }
        free(path);
        errno = 0;
    }
    int saved = errno;
    closedir(d);
    if (ret == 0 && saved) {
        errno = saved;
        return -1;
    }
    return ret;
}

/* ---- small helpers ------------------------------------------------------------ */

int blobrefs_hash_fd(int fd, char out[65], uint64_t *size)
{
    unsigned char buf[65536];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint64_t total = 0;
    int ret = -1;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
        errno = EIO;
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto done;
        }
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(c, buf, (size_t)n)) {
            errno = EIO;
            goto done;
        }
        total += (uint64_t)n;
    }
    if (!EVP_DigestFinal_ex(c, md, &mdlen) || mdlen != 32) {
        errno = EIO;
        goto done;
    }
    hex_encode(md, 32, out);
    if (size)
        *size = total;
    ret = 0;
done:
    EVP_MD_CTX_free(c);
    return ret;
}

double blobrefs_age(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}
