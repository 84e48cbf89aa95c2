/*
 * blobstore.c — the content-addressed file store: temp files in tmp/ hashed
 * while written, published into blobs/ab/cdef… with link() (never rename,
 * which would replace), reading blobs back by their SHA-256 name.
 *
 * Any failure of a writer removes its temp file at once, so every error path
 * leaves tmp/ clean whether or not the caller remembers blob_writer_abort().
 */
#include "blobstore.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

/* Directories and published blobs: owner writes; the group (the web server,
 * for X-Accel-Redirect / X-Sendfile) reads. Temp files stay 0600 until they
 * are complete. */
#define BLOB_DIR_MODE 0750
#define BLOB_FILE_MODE 0640
#define BLOB_TMP_TRIES 8

static unsigned blob_tmp_counter;

static int blob_errno_status(int err)
{
    return (err == ENOSPC || err == EDQUOT) ? BLOB_ERR_NOSPACE : BLOB_ERR_IO;
}

/* Exactly 64 lowercase hex digits: the only names that exist in blobs/. */
static bool blob_name_ok(const char *hex)
{
    if (!hex)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            return false;
    return hex[64] == '\0';
}

/* DATA_DIR/blobs/ab/cdef… (malloc'd); the name must be valid. */
static char *blob_path(const struct blobstore *bs, const char *hex)
{
    return xasprintf("%s/%.2s/%s", bs->blobs_dir, hex, hex + 2);
}

int blob_store_open(struct blobstore *bs, const char *data_dir)
{
    bs->root = xstrdup(data_dir);
    bs->blobs_dir = xasprintf("%s/blobs", data_dir);
    bs->tmp_dir = xasprintf("%s/tmp", data_dir);
    if (mkdir_p(bs->blobs_dir, BLOB_DIR_MODE) < 0) {
        log_warn("creating %s", bs->blobs_dir);
        goto fail;
    }
    if (mkdir_p(bs->tmp_dir, BLOB_DIR_MODE) < 0) {
        log_warn("creating %s", bs->tmp_dir);
        goto fail;
    }
    return 0;
fail:;
    int saved = errno;
    blob_store_close(bs);
    errno = saved;
    return -1;
}

void blob_store_close(struct blobstore *bs)
{
    free(bs->root);
    free(bs->blobs_dir);
    free(bs->tmp_dir);
    bs->root = bs->blobs_dir = bs->tmp_dir = NULL;
}

static void blob_free_digests(struct blob_writer *w)
{
    EVP_MD_CTX_free(w->sha256_ctx);
    EVP_MD_CTX_free(w->md5_ctx);
    w->sha256_ctx = w->md5_ctx = NULL;
}

void blob_writer_abort(struct blob_writer *w)
{
    int saved = errno; /* callers report the error that made them abort */
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->tmp_path) {
        if (unlink(w->tmp_path) < 0 && errno != ENOENT)
            log_warn("removing temp file %s", w->tmp_path);
        free(w->tmp_path);
        w->tmp_path = NULL;
    }
    blob_free_digests(w);
    errno = saved;
}

/* Remove the temp file (errno kept for the caller) and return status. */
static int blob_writer_fail(struct blob_writer *w, int status)
{
    blob_writer_abort(w);
    return status;
}

int blob_writer_begin(struct blobstore *bs, struct blob_writer *w, uint64_t limit)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->limit = limit;

    w->sha256_ctx = EVP_MD_CTX_new();
    w->md5_ctx = EVP_MD_CTX_new();
    if (!w->sha256_ctx || !w->md5_ctx || !EVP_DigestInit_ex(w->sha256_ctx, EVP_sha256(), NULL) ||
        !EVP_DigestInit_ex(w->md5_ctx, EVP_md5(), NULL)) {
        log_warnx("cannot initialise SHA-256/MD5 digests");
        errno = EIO;
        return blob_writer_fail(w, BLOB_ERR_IO);
    }

    /* pid + counter is unique on this host; the random part keeps hosts that
     * share one tmp/ (NFS) apart. O_EXCL settles any collision left. */
    for (int tries = 0; tries < BLOB_TMP_TRIES; tries++) {
        unsigned char rnd[8] = {0};
        char rhex[2 * sizeof rnd + 1];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            memset(rnd, 0, sizeof rnd);
        hex_encode(rnd, sizeof rnd, rhex);
        w->tmp_path =
            xasprintf("%s/up-%ld-%u-%s", bs->tmp_dir, (long)getpid(), blob_tmp_counter++, rhex);
        w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (w->fd >= 0)
            return BLOB_OK;
        int err = errno;
        free(w->tmp_path);
        w->tmp_path = NULL;
        if (err != EEXIST) {
            errno = err;
            log_warn("creating a temp file in %s", bs->tmp_dir);
            return blob_writer_fail(w, blob_errno_status(err));
        }
    }
    log_warnx("no free temp file name in %s", bs->tmp_dir);
    errno = EEXIST;
    return blob_writer_fail(w, BLOB_ERR_IO);
}

void blob_writer_skip_md5(struct blob_writer *w)
{
    EVP_MD_CTX_free(w->md5_ctx);
    w->md5_ctx = NULL;
}

int blob_writer_write(struct blob_writer *w, const void *data, size_t len)
{
    if (w->fd < 0 || w->finished) {
        errno = EBADF;
        return BLOB_ERR_IO;
    }
    if (len == 0)
        return BLOB_OK;
    if (w->limit && (w->size > w->limit || len > w->limit - w->size)) {
        errno = EFBIG;
        return blob_writer_fail(w, BLOB_ERR_TOO_BIG);
    }
    if (!EVP_DigestUpdate(w->sha256_ctx, data, len) ||
        (w->md5_ctx && !EVP_DigestUpdate(w->md5_ctx, data, len))) {
        log_warnx("hashing failed");
        errno = EIO;
        return blob_writer_fail(w, BLOB_ERR_IO);
    }
    if (write_all(w->fd, data, len) < 0) {
        int err = errno;
        log_warn("writing %s", w->tmp_path);
        return blob_writer_fail(w, blob_errno_status(err));
    }
    w->size += len;
    return BLOB_OK;
}

int blob_writer_finish(struct blob_writer *w)
{
    unsigned char sha[EVP_MAX_MD_SIZE], md5[EVP_MAX_MD_SIZE];
    unsigned int sha_len = 0, md5_len = 0;

    if (w->fd < 0 || w->finished) {
        errno = EBADF;
        return BLOB_ERR_IO;
    }
    if (!EVP_DigestFinal_ex(w->sha256_ctx, sha, &sha_len) || sha_len != 32 ||
        (w->md5_ctx && (!EVP_DigestFinal_ex(w->md5_ctx, md5, &md5_len) || md5_len != 16))) {
        log_warnx("hashing failed");
        errno = EIO;
        return blob_writer_fail(w, BLOB_ERR_IO);
    }
    hex_encode(sha, sha_len, w->sha256);
    if (w->md5_ctx)
        hex_encode(md5, md5_len, w->md5);
    else
        w->md5[0] = '\0';
    blob_free_digests(w);

    /* The web server reads blobs directly (X-Accel-Redirect), so the group may read. */
    if (fchmod(w->fd, BLOB_FILE_MODE) < 0) {
        int err = errno;
        log_warn("chmod %s", w->tmp_path);
        return blob_writer_fail(w, blob_errno_status(err));
    }
    /* The fd stays open: commit fsyncs it before link(), unless the same bytes
     * are stored already and the temp file is only removed. */
    w->finished = true;
    return BLOB_OK;
}

/* Make the finished temp file's bytes durable and close it. BLOB_OK or a status. */
static int blob_writer_sync(struct blob_writer *w)
{
    if (fsync(w->fd) < 0) {
        int err = errno;
        log_warn("fsync %s", w->tmp_path);
        return blob_errno_status(err);
    }
    /* close() may report a deferred write error (NFS); the fd is gone either way. */
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) < 0) {
        int err = errno;
        log_warn("close %s", w->tmp_path);
        return blob_errno_status(err);
    }
    return BLOB_OK;
}

const char *blob_writer_tmp_path(const struct blob_writer *w)
{
    return w->tmp_path;
}

int blob_writer_commit(struct blobstore *bs, struct blob_writer *w)
{
    char *dir = NULL, *path = NULL;
    int rc = BLOB_ERR_IO, err;

    if (!w->finished || !w->tmp_path) {
        errno = EINVAL;
        return BLOB_ERR_IO;
    }
    dir = xasprintf("%s/%.2s", bs->blobs_dir, w->sha256);
    path = blob_path(bs, w->sha256);

    if (mkdir(dir, BLOB_DIR_MODE) == 0) {
        if (fsync_dir(bs->blobs_dir) < 0) {
            err = errno;
            log_warn("fsync %s", bs->blobs_dir);
            rc = blob_errno_status(err);
            goto fail;
        }
    } else if (errno != EEXIST) {
        err = errno;
        log_warn("mkdir %s", dir);
        rc = blob_errno_status(err);
        goto fail;
    }

    /* A few tries: `s4s-admin gc` may move an old unreferenced blob aside between
     * our seeing it and our touching it; then the name is free again. The same
     * bytes stored already (a re-upload, an unchanged autosave) are only looked
     * at: our temp file is removed, so it needs no fsync of its own. */
    for (int attempt = 0;; attempt++) {
        struct stat st;
        if (stat(path, &st) < 0) {
            if (errno != ENOENT) {
                log_warn("stat %s", path);
                goto fail;
            }
            /* Not there: publish ours, durable before it is visible. */
            if (w->fd >= 0 && (rc = blob_writer_sync(w)) != BLOB_OK)
                goto fail;
            rc = BLOB_ERR_IO;
            if (link(w->tmp_path, path) == 0)
                break;
            if (errno != EEXIST) {
                err = errno;
                log_warn("link %s to %s", w->tmp_path, path);
                rc = blob_errno_status(err);
                goto fail;
            }
            if (attempt < 3)
                continue; /* linked by another writer meanwhile: look at it */
            log_warnx("blob %s keeps appearing and vanishing", path);
            errno = EIO;
            goto fail;
        }
        /* Same name, same bytes: nothing else writes here. A size mismatch
         * means the store is damaged; say so rather than point at it. */
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != w->size) {
            log_errx("blob %s exists with %lld bytes, expected %llu: store damaged", path,
                     (long long)st.st_size, (unsigned long long)w->size);
            errno = EIO;
            goto fail;
        }
        /* Refresh its mtime: gc removes unreferenced blobs only past a grace
         * period counted from mtime (and re-checks it just before removing), so
         * an old orphan this upload is about to reference again survives until
         * our transaction commits. */
        if (utimensat(AT_FDCWD, path, NULL, 0) == 0)
            break;
        if (errno == ENOENT && attempt < 3)
            continue;
        err = errno;
        log_warn("touching %s", path);
        rc = blob_errno_status(err);
        goto fail;
    }
    /* Also when the blob was there: its writer may not have fsync'd the directory yet. */
    if (fsync_dir(dir) < 0) {
        err = errno;
        log_warn("fsync %s", dir);
        rc = blob_errno_status(err);
        goto fail;
    }
    if (w->fd >= 0) { /* the unsynced temp of bytes stored already: only removed */
        close(w->fd);
        w->fd = -1;
    }
    if (unlink(w->tmp_path) < 0)
        log_warn("removing temp file %s (gc will)", w->tmp_path);
    free(w->tmp_path);
    w->tmp_path = NULL;
    free(dir);
    free(path);
    return BLOB_OK;

fail:
    free(dir);
    free(path);
    return blob_writer_fail(w, rc);
}

int blob_put_buffer(struct blobstore *bs, const void *data, size_t len,
                    char sha256_out[BLOB_SHA256_HEX], char md5_out[BLOB_MD5_HEX])
{
    struct blob_writer w;
    int rc = blob_writer_begin(bs, &w, 0);
    if (rc != BLOB_OK)
        return rc;
    if ((rc = blob_writer_write(&w, data, len)) != BLOB_OK ||
        (rc = blob_writer_finish(&w)) != BLOB_OK || (rc = blob_writer_commit(bs, &w)) != BLOB_OK)
        goto fail;
    if (sha256_out)
        memcpy(sha256_out, w.sha256, BLOB_SHA256_HEX);
    if (md5_out)
        memcpy(md5_out, w.md5, BLOB_MD5_HEX);
    return BLOB_OK;
fail:
    blob_writer_abort(&w);
    return rc;
}

int blob_open_read(struct blobstore *bs, const char *sha256_hex, int *fd, uint64_t *size)
{
    struct stat st;
    int rc = BLOB_ERR_IO;

    *fd = -1;
    if (!blob_name_ok(sha256_hex)) {
        errno = ENOENT;
        return BLOB_ERR_NOT_FOUND;
    }
    char *path = blob_path(bs, sha256_hex);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        rc = errno == ENOENT ? BLOB_ERR_NOT_FOUND : BLOB_ERR_IO;
        goto fail;
    }
    if (fstat(f, &st) < 0)
        goto fail_close;
    if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        goto fail_close;
    }
    free(path);
    *fd = f;
    *size = (uint64_t)st.st_size;
    return BLOB_OK;

fail_close:;
    int saved = errno;
    close(f);
    errno = saved;
fail:
    free(path);
    return rc;
}

bool blob_rel_path(const char *sha256_hex, char *out, size_t outlen)
{
    if (!blob_name_ok(sha256_hex) || !out || outlen < 66)
        return false;
    snprintf(out, outlen, "%.2s/%s", sha256_hex, sha256_hex + 2);
    return true;
}

bool blob_exists(struct blobstore *bs, const char *sha256_hex)
{
    struct stat st;
    if (!blob_name_ok(sha256_hex))
        return false;
    char *path = blob_path(bs, sha256_hex);
    bool found = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return found;
}

const char *blob_strerror(int status)
{
    switch (status) {
    case BLOB_OK:
        return "no error";
    case BLOB_ERR_IO:
        return "storage I/O error";
    case BLOB_ERR_NOSPACE:
        return "no space left on the server";
    case BLOB_ERR_TOO_BIG:
        return "file too large";
    case BLOB_ERR_NOT_FOUND:
        return "not found";
    }
    return "unknown storage error";
}
