/*
 * blobstore.h — the content-addressed file store (DESIGN.md "Storage").
 * A blob is written to DATA_DIR/tmp (O_EXCL, 0600) while hashed (SHA-256
 * and MD5) and counted, fsync'd, then link()ed to DATA_DIR/blobs/ab/cdef…
 * and the directory fsync'd. When those bytes are there already, the temp
 * file is removed instead (and not fsync'd: nothing will ever read it).
 * Blobs are never modified; nothing else writes into blobs/.
 */
#ifndef S4S_BLOBSTORE_H
#define S4S_BLOBSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLOB_SHA256_HEX 65 /* 64 hex digits + NUL */
#define BLOB_MD5_HEX 33

struct blobstore {
    char *root;      /* DATA_DIR */
    char *blobs_dir; /* DATA_DIR/blobs */
    char *tmp_dir;   /* DATA_DIR/tmp */
};

enum blob_status {
    BLOB_OK = 0,
    BLOB_ERR_IO,      /* errno says which */
    BLOB_ERR_NOSPACE, /* ENOSPC / EDQUOT: the caller answers 507 */
    BLOB_ERR_TOO_BIG, /* writer limit exceeded */
    BLOB_ERR_NOT_FOUND,
};

/* Create DATA_DIR/blobs and DATA_DIR/tmp if missing. 0 or -1 (errno). */
int blob_store_open(struct blobstore *bs, const char *data_dir);
void blob_store_close(struct blobstore *bs);

struct blob_writer {
    int fd;
    char *tmp_path;   /* malloc'd; NULL once committed or aborted */
    void *sha256_ctx; /* EVP_MD_CTX* */
    void *md5_ctx;
    uint64_t size;
    uint64_t limit; /* 0 = unlimited */
    char sha256[BLOB_SHA256_HEX];
    char md5[BLOB_MD5_HEX];
    bool finished;
};

/* Start a temp file in tmp/. limit: max bytes accepted (0 = none). */
int blob_writer_begin(struct blobstore *bs, struct blob_writer *w, uint64_t limit);
/* Right after begin: the caller needs no MD5 (w->md5 stays ""), so none is
 * computed. It costs twice the SHA-256 here, and only assets are named by it. */
void blob_writer_skip_md5(struct blob_writer *w);
int blob_writer_write(struct blob_writer *w, const void *data, size_t len);
/* Compute the digests into w->sha256 / w->md5 ("" after blob_writer_skip_md5). The temp file stays
 * (its fd open), so the caller can check its content (blob_writer_tmp_path) before committing. */
int blob_writer_finish(struct blob_writer *w);
/* The temp file's path while there is one (finished, not committed), else NULL. */
const char *blob_writer_tmp_path(const struct blob_writer *w);
/* fsync the finished temp file and link() it to its SHA-256 name, fsync the
 * fan-out dir, remove the temp file. After this the blob is durable. When the
 * blob exists already the temp file is only removed (no fsync of it needed). */
int blob_writer_commit(struct blobstore *bs, struct blob_writer *w);
/* Remove the temp file (safe to call in any state, also after commit). */
void blob_writer_abort(struct blob_writer *w);

/* Store a memory buffer as a blob in one call (begin/write/finish/commit). */
int blob_put_buffer(struct blobstore *bs, const void *data, size_t len,
                    char sha256_out[BLOB_SHA256_HEX], char md5_out[BLOB_MD5_HEX]);

/* Open a blob for reading. Rejects anything but 64 hex digits (BLOB_ERR_NOT_FOUND,
 * no file-system lookup). *fd is O_RDONLY|O_CLOEXEC; *size its length. */
int blob_open_read(struct blobstore *bs, const char *sha256_hex, int *fd, uint64_t *size);
/* Relative path "ab/cdef…" of a blob (for X-Accel-Redirect / X-Sendfile);
 * out >= 67 bytes. false when the hex is invalid. */
bool blob_rel_path(const char *sha256_hex, char *out, size_t outlen);
bool blob_exists(struct blobstore *bs, const char *sha256_hex);

const char *blob_strerror(int status);

#endif
