/*
 * unit_blobstore.c — the content-addressed store: hashes against known
 * vectors, round trips, deduplication, temp-file cleanup on every error path,
 * name validation, and many processes publishing the same blob at once.
 */
#include "../src/blobstore.c"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define MD5_ABC "900150983cd24fb0d6963f7d28e17f72"
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MD5_EMPTY "d41d8cd98f00b204e9800998ecf8427e"

static int t_count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Every blob in the store: names "ab" + "cdef…" joined, up to max. */
static int t_list_blobs(const char *blobs_dir, char names[][65], int max)
{
    DIR *d = opendir(blobs_dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *sub = xasprintf("%s/%s", blobs_dir, e->d_name);
        DIR *sd = opendir(sub);
        struct dirent *f;
        while (sd && (f = readdir(sd))) {
            if (f->d_name[0] == '.')
                continue;
            if (n < max && strlen(e->d_name) == 2 && strlen(f->d_name) == 62) {
                memcpy(names[n], e->d_name, 2);
                memcpy(names[n] + 2, f->d_name, 63);
            } else if (n < max) {
                snprintf(names[n], 65, "bad:%.50s", f->d_name);
            }
            n++;
        }
        if (sd)
            closedir(sd);
        free(sub);
    }
    closedir(d);
    return n;
}

/* Read a whole file into a malloc'd buffer. */
static char *t_slurp_fd(int fd, size_t *len)
{
    size_t cap = 65536, used = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (used == cap)
            buf = xrealloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + used, cap - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        used += (size_t)n;
    }
    *len = used;
    return buf;
}

static char *t_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = t_slurp_fd(fd, len);
    close(fd);
    return buf;
}

static void t_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

static void t_rm_rf(const char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", path);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", path);
    free(cmd);
}

static void test_round_trip(struct blobstore *bs)
{
    struct blob_writer w;
    struct stat st;

    is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin");
    ok(w.tmp_path && strncmp(w.tmp_path, bs->tmp_dir, strlen(bs->tmp_dir)) == 0,
       "temp file lives in tmp/");
    ok(stat(w.tmp_path, &st) == 0 && (st.st_mode & 0777) == 0600, "temp file is 0600");
    is_int(blob_writer_write(&w, "a", 1), BLOB_OK, "write 'a'");
    is_int(blob_writer_write(&w, "", 0), BLOB_OK, "write nothing");
    is_int(blob_writer_write(&w, "bc", 2), BLOB_OK, "write 'bc'");
    is_int(blob_writer_finish(&w), BLOB_OK, "finish");
    is_str(w.sha256, SHA_ABC, "sha256(\"abc\")");
    is_str(w.md5, MD5_ABC, "md5(\"abc\")");
    is_int(w.size, 3, "size 3");
    size_t len = 0;
    char *got = blob_writer_tmp_path(&w) ? t_slurp(blob_writer_tmp_path(&w), &len) : NULL;
    ok(got && len == 3 && memcmp(got, "abc", 3) == 0, "finished temp file readable before commit");
    free(got);
    is_int(blob_writer_write(&w, "x", 1), BLOB_ERR_IO, "write after finish refused");
    is_int(blob_writer_commit(bs, &w), BLOB_OK, "commit");
    ok(w.tmp_path == NULL && blob_writer_tmp_path(&w) == NULL, "no temp path after commit");
    is_int(t_count_dir(bs->tmp_dir), 0, "tmp/ empty after commit");

    char *path_abc = xasprintf("%s/ba/%s", bs->blobs_dir, &SHA_ABC[2]);
    ok(stat(path_abc, &st) == 0 && S_ISREG(st.st_mode), "blob at blobs/ba/7816…");
    ok((st.st_mode & 0777) == 0640, "blob is 0640 (group: the web server)");
    ok(w.fd == -1, "commit of a new blob closed the temp file's fd");

    int fd;
    uint64_t size = 0;
    is_int(blob_open_read(bs, SHA_ABC, &fd, &size), BLOB_OK, "open for reading");
    is_int(size, 3, "size from blob_open_read");
    got = fd >= 0 ? t_slurp_fd(fd, &len) : NULL;
    ok(got && len == 3 && memcmp(got, "abc", 3) == 0, "read back equals");
    ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "read fd is close-on-exec");
    free(got);
    close(fd);
    ok(blob_exists(bs, SHA_ABC), "blob_exists");

    blob_writer_abort(&w);
    ok(blob_exists(bs, SHA_ABC), "abort after commit leaves the blob alone");

    /* The same bytes again: one blob. */
    char sha[BLOB_SHA256_HEX], md5[BLOB_MD5_HEX];
    is_int(blob_put_buffer(bs, "abc", 3, sha, md5), BLOB_OK, "put the same bytes again");
    is_str(sha, SHA_ABC, "same name");
    is_str(md5, MD5_ABC, "same md5");
    char *ab = xasprintf("%s/ba", bs->blobs_dir);
    is_int(t_count_dir(ab), 1, "still exactly one file in blobs/ba");
    free(ab);
    is_int(t_count_dir(bs->tmp_dir), 0, "tmp/ empty after a duplicate");

    /* Without MD5 (project files): the SHA-256 all the same, md5 empty. */
    is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin without MD5");
    blob_writer_skip_md5(&w);
    is_int(blob_writer_write(&w, "abc", 3), BLOB_OK, "write 'abc' without MD5");
    is_int(blob_writer_finish(&w), BLOB_OK, "finish without MD5");
    is_str(w.sha256, SHA_ABC, "sha256 without MD5");
    is_str(w.md5, "", "md5 left empty");
    blob_writer_abort(&w);

    /* A duplicate through the writer: the temp file (never fsync'd: it is only
     * removed) and its fd are gone after commit, the blob untouched. */
    is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin a duplicate");
    is_int(blob_writer_write(&w, "abc", 3), BLOB_OK, "write 'abc' again");
    is_int(blob_writer_finish(&w), BLOB_OK, "finish the duplicate");
    int dup_fd = w.fd;
    ok(dup_fd >= 0 && fcntl(dup_fd, F_GETFD) >= 0, "finish keeps the temp file's fd for commit");
    is_int(blob_writer_commit(bs, &w), BLOB_OK, "commit the duplicate");
    ok(w.fd == -1 && fcntl(dup_fd, F_GETFD) < 0, "commit of a duplicate closes the fd");
    is_int(t_count_dir(bs->tmp_dir), 0, "tmp/ empty after the duplicate's commit");
    got = t_slurp(path_abc, &len);
    ok(got && len == 3 && memcmp(got, "abc", 3) == 0, "the stored blob is unchanged");
    free(got);

    is_int(blob_put_buffer(bs, "", 0, sha, md5), BLOB_OK, "put an empty blob");
    is_str(sha, SHA_EMPTY, "sha256 of nothing");
    is_str(md5, MD5_EMPTY, "md5 of nothing");
    is_int(blob_put_buffer(bs, "abc", 3, NULL, NULL), BLOB_OK, "digest outputs may be NULL");
    free(path_abc);
}

static void test_errors(struct blobstore *bs)
{
    struct blob_writer w;

    /* abort removes the temp file, and is idempotent. */
    is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin for abort");
    blob_writer_write(&w, "junk", 4);
    is_int(t_count_dir(bs->tmp_dir), 1, "one temp file");
    blob_writer_abort(&w);
    is_int(t_count_dir(bs->tmp_dir), 0, "abort removed it");
    blob_writer_abort(&w);
    ok(w.fd == -1 && w.tmp_path == NULL, "second abort is harmless");

    is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin for finish+abort");
    blob_writer_write(&w, "junk2", 5);
    is_int(blob_writer_finish(&w), BLOB_OK, "finish");
    blob_writer_abort(&w);
    is_int(t_count_dir(bs->tmp_dir), 0, "abort after finish removed the temp file");
    ok(!blob_exists(bs, w.sha256), "nothing published");

    /* Limit. */
    is_int(blob_writer_begin(bs, &w, 10), BLOB_OK, "begin with limit 10");
    is_int(blob_writer_write(&w, "123456", 6), BLOB_OK, "6 bytes");
    is_int(blob_writer_write(&w, "7890", 4), BLOB_OK, "10 bytes: at the limit");
    is_int(blob_writer_write(&w, "X", 1), BLOB_ERR_TOO_BIG, "11th byte: TOO_BIG");
    is_int(t_count_dir(bs->tmp_dir), 0, "TOO_BIG removed the temp file at once");
    is_int(blob_writer_finish(&w), BLOB_ERR_IO, "finish after failure refused");
    blob_writer_abort(&w);
    is_int(blob_writer_begin(bs, &w, 5), BLOB_OK, "begin with limit 5");
    is_int(blob_writer_write(&w, "123456", 6), BLOB_ERR_TOO_BIG, "one big write over the limit");
    is_int(t_count_dir(bs->tmp_dir), 0, "no temp left");
    blob_writer_abort(&w);

    is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin for early commit");
    is_int(blob_writer_commit(bs, &w), BLOB_ERR_IO, "commit before finish refused");
    blob_writer_abort(&w);
    is_int(t_count_dir(bs->tmp_dir), 0, "no temp left");

    /* A full disk: /dev/full answers ENOSPC. */
    int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
    if (full >= 0) {
        is_int(blob_writer_begin(bs, &w, 0), BLOB_OK, "begin for a full disk");
        dup2(full, w.fd);
        close(full);
        is_int(blob_writer_write(&w, "data", 4), BLOB_ERR_NOSPACE, "ENOSPC: BLOB_ERR_NOSPACE");
        is_int(t_count_dir(bs->tmp_dir), 0, "ENOSPC removed the temp file");
        blob_writer_abort(&w);
    } else {
        ok(1, "# skip no /dev/full");
        ok(1, "# skip no /dev/full");
        ok(1, "# skip no /dev/full");
    }
    is_int(blob_errno_status(EDQUOT), BLOB_ERR_NOSPACE, "EDQUOT: BLOB_ERR_NOSPACE");
    is_int(blob_errno_status(EIO), BLOB_ERR_IO, "EIO: BLOB_ERR_IO");

    /* A damaged blob under the right name is reported, not pointed at. */
    char sha[BLOB_SHA256_HEX];
    is_int(blob_put_buffer(bs, "damage me", 9, sha, NULL), BLOB_OK, "put a blob");
    char *path = xasprintf("%s/%.2s/%s", bs->blobs_dir, sha, sha + 2);
    ok(truncate(path, 4) == 0, "damage it");
    is_int(blob_put_buffer(bs, "damage me", 9, NULL, NULL), BLOB_ERR_IO,
           "same name, wrong size: BLOB_ERR_IO");
    is_int(t_count_dir(bs->tmp_dir), 0, "no temp left");
    unlink(path);
    free(path);

    is_str(blob_strerror(BLOB_ERR_NOSPACE), "no space left on the server", "strerror NOSPACE");
    ok(blob_strerror(999) != NULL, "strerror of an unknown code");
}

static void test_names(struct blobstore *bs)
{
    int fd = 123;
    uint64_t size = 0;
    char upper[65], rel[80];

    snprintf(upper, sizeof upper, "%s", SHA_ABC);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');

    static const char *const bad[] = {
        "../etc/passwd",
        "../../../../../../../../../../../../../../../../../../../../../../../../etc/passwd",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",   /* 63 */
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0", /* 65 */
        "ba/816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ag",
        "",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        fd = 123;
        ok(blob_open_read(bs, bad[i], &fd, &size) == BLOB_ERR_NOT_FOUND && fd == -1,
           "blob_open_read rejects '%s'", bad[i]);
        ok(!blob_rel_path(bad[i], rel, sizeof rel), "blob_rel_path rejects '%s'", bad[i]);
        ok(!blob_exists(bs, bad[i]), "blob_exists rejects '%s'", bad[i]);
    }
    ok(blob_exists(bs, SHA_ABC), "lowercase name exists");
    is_int(blob_open_read(bs, upper, &fd, &size), BLOB_ERR_NOT_FOUND, "uppercase hex rejected");
    ok(!blob_exists(bs, upper), "uppercase hex: blob_exists false");
    is_int(blob_open_read(bs, NULL, &fd, &size), BLOB_ERR_NOT_FOUND, "NULL rejected");
    is_int(blob_open_read(bs, "0000000000000000000000000000000000000000000000000000000000000000",
                          &fd, &size),
           BLOB_ERR_NOT_FOUND, "valid but absent name: NOT_FOUND");

    ok(blob_rel_path(SHA_ABC, rel, sizeof rel), "blob_rel_path");
    is_str(rel, "ba/7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "relative path ab/cdef…");
    char small[66];
    ok(blob_rel_path(SHA_ABC, small, sizeof small), "66 bytes is enough");
    ok(!blob_rel_path(SHA_ABC, small, sizeof small - 1), "65 bytes is not");
}

/* ---- many writers at once ---- */

#define T_SAME_WRITERS 8
#define T_OTHER_WRITERS 4
#define T_ROUNDS 3
#define T_BIG (1024 * 1024)

static void t_fill(char *buf, size_t len, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (char)x;
    }
}

/* One child: wait for the start signal, then write the content T_ROUNDS times
 * in small pieces so the writers interleave. Exit status 0 when all went well. */
static void t_child(struct blobstore *bs, int start_fd, const char *data, const char *want)
{
    char c;
    if (read(start_fd, &c, 1) < 0)
        _exit(2);
    for (int round = 0; round < T_ROUNDS; round++) {
        struct blob_writer w;
        if (blob_writer_begin(bs, &w, T_BIG) != BLOB_OK)
            _exit(3);
        for (size_t at = 0; at < T_BIG; at += 4096)
            if (blob_writer_write(&w, data + at, 4096) != BLOB_OK)
                _exit(4);
        if (blob_writer_finish(&w) != BLOB_OK || strcmp(w.sha256, want) != 0)
            _exit(5);
        if (blob_writer_commit(bs, &w) != BLOB_OK)
            _exit(6);
        blob_writer_abort(&w);
    }
    _exit(0);
}

static void test_concurrency(void)
{
    char dir[] = "/tmp/s4s-unit-blobc-XXXXXX";
    struct blobstore bs;
    if (!mkdtemp(dir) || blob_store_open(&bs, dir) < 0) {
        ok(0, "scratch store for the concurrency test");
        return;
    }
    enum { NCONTENT = 1 + T_OTHER_WRITERS };
    char *data[NCONTENT];
    char want[NCONTENT][65];
    for (int i = 0; i < NCONTENT; i++) {
        data[i] = xmalloc(T_BIG);
        t_fill(data[i], T_BIG, (unsigned)i + 1);
        t_sha256_hex(data[i], T_BIG, want[i]);
    }

    int start[2];
    if (pipe(start) < 0) {
        ok(0, "pipe");
        return;
    }
    pid_t pids[T_SAME_WRITERS + T_OTHER_WRITERS];
    int nkids = 0;
    for (int i = 0; i < T_SAME_WRITERS + T_OTHER_WRITERS; i++) {
        int which = i < T_SAME_WRITERS ? 0 : 1 + (i - T_SAME_WRITERS);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(start[1]);
            t_child(&bs, start[0], data[which], want[which]);
        }
        if (pid > 0)
            pids[nkids++] = pid;
    }
    close(start[0]);
    close(start[1]); /* EOF on the pipe: everybody starts now */

    int good = 0;
    for (int i = 0; i < nkids; i++) {
        int st;
        while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            good++;
        else
            printf("# child %d: status %d\n", i, st);
    }
    is_int(nkids, T_SAME_WRITERS + T_OTHER_WRITERS, "forked %d writers",
           T_SAME_WRITERS + T_OTHER_WRITERS);
    is_int(good, nkids, "every writer succeeded, %d rounds each", T_ROUNDS);

    char names[32][65];
    int n = t_list_blobs(bs.blobs_dir, names, 32);
    is_int(n, NCONTENT, "exactly %d blobs stored", NCONTENT);
    int found = 0, intact = 0;
    for (int i = 0; i < n && i < 32; i++) {
        for (int j = 0; j < NCONTENT; j++)
            if (strcmp(names[i], want[j]) == 0)
                found++;
        size_t len = 0;
        char *path = xasprintf("%s/%.2s/%s", bs.blobs_dir, names[i], names[i] + 2);
        char *got = t_slurp(path, &len);
        char sha[65];
        if (got) {
            t_sha256_hex(got, len, sha);
            if (len == T_BIG && strcmp(sha, names[i]) == 0)
                intact++;
        }
        free(got);
        free(path);
    }
    is_int(found, NCONTENT, "they are the expected ones");
    is_int(intact, n, "each blob re-hashes to its name");
    is_int(t_count_dir(bs.tmp_dir), 0, "tmp/ empty");

    for (int i = 0; i < NCONTENT; i++)
        free(data[i]);
    blob_store_close(&bs);
    t_rm_rf(dir);
}

int main(void)
{
    char dir[] = "/tmp/s4s-unit-blob-XXXXXX";
    struct blobstore bs;

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return tap_done();
    }
    char *data_dir = xasprintf("%s/data/dir", dir);
    is_int(blob_store_open(&bs, data_dir), 0, "blob_store_open creates the tree");
    free(data_dir);
    char *blobs = xasprintf("%s/data/dir/blobs", dir), *tmp = xasprintf("%s/data/dir/tmp", dir);
    is_str(bs.blobs_dir, blobs, "blobs_dir");
    is_str(bs.tmp_dir, tmp, "tmp_dir");
    is_int(t_count_dir(blobs), 0, "blobs/ exists, empty");
    is_int(t_count_dir(tmp), 0, "tmp/ exists, empty");
    free(blobs);
    free(tmp);

    struct blobstore bad;
    char *file = xasprintf("%s/afile", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    errno = 0;
    ok(blob_store_open(&bad, file) == -1 && errno != 0, "blob_store_open on a file fails");
    ok(bad.root == NULL && bad.blobs_dir == NULL, "and frees what it made");
    free(file);

    test_round_trip(&bs);
    test_errors(&bs);
    test_names(&bs);
    blob_store_close(&bs);
    test_concurrency();
    t_rm_rf(dir);
    return tap_done();
}
