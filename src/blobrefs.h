/*
 * blobrefs.h — which database columns point into the blob store, and the
 * two sides the operator's tools compare: the set of SHA-256 names the
 * database references, and the files actually in DATA_DIR/blobs (and tmp/).
 * backup, check, gc and stats all read references through blob_refs[], so
 * a column that starts holding blob names is added in exactly one place.
 */
#ifndef S4S_BLOBREFS_H
#define S4S_BLOBREFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct db;

/*
 * One referencing column. sql selects (row id as text, sha256) for every
 * row whose column is not NULL; the row id is the primary key as an
 * operator would look the row up ("12", or "12/3" for project 12 version 3).
 */
struct blob_ref {
    const char *table;
    const char *column;
    const char *sql;
};

extern const struct blob_ref blob_refs[];
extern const size_t blob_refs_count;

/* Called for every reference; a non-zero return stops the walk and is returned. */
typedef int (*blobrefs_fn)(const struct blob_ref *ref, const char *row_id, const char *sha256,
                           void *ctx);
/* Every reference in the database, inside the caller's transaction if any (use a
 * read transaction for one consistent view). DB_OK, a DB_* error, or fn's value. */
int blobrefs_each(struct db *db, blobrefs_fn fn, void *ctx);

/* A sorted set of SHA-256 hex names. */
struct shaset {
    char (*v)[65];
    size_t n, cap;
    bool sorted;
};
void shaset_add(struct shaset *s, const char *sha256);
bool shaset_has(struct shaset *s, const char *sha256); /* sorts on first use */
void shaset_free(struct shaset *s);

/* Every referenced name, read in one read transaction. DB_OK or a DB_* error. */
int blobrefs_collect(struct db *db, struct shaset *out);

/* A file found in blobs/. */
struct blob_file {
    char sha256[65]; /* from its path */
    const char *path;
    uint64_t size;
    struct timespec mtime;
};
/* Called for every correctly named regular file in blobs/ab/…; non-zero stops. */
typedef int (*blob_file_fn)(const struct blob_file *f, void *ctx);
/* Called for anything else found there (stray names, directories, links). */
typedef void (*blob_stray_fn)(const char *path, void *ctx);
/* Walk DATA_DIR/blobs. 0, fn's non-zero value, or -1 (errno) when a directory
 * cannot be read. A missing blobs/ is an empty store. */
int blobrefs_walk_store(const char *blobs_dir, blob_file_fn fn, blob_stray_fn stray, void *ctx);

/* A file in tmp/. */
struct tmp_file {
    const char *name;
    const char *path;
    uint64_t size;
    struct timespec mtime;
};
typedef int (*tmp_file_fn)(const struct tmp_file *f, void *ctx);
int blobrefs_walk_tmp(const char *tmp_dir, tmp_file_fn fn, void *ctx);

/* SHA-256 of an open file from its current offset to the end. 0 or -1 (errno). */
int blobrefs_hash_fd(int fd, char out[65], uint64_t *size);
/* Seconds (with fraction) from t to now on the real-time clock. */
double blobrefs_age(const struct timespec *t);

#endif
