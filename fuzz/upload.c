/*
 * upload.c — fuzz target for upload_parse (src/upload.c): a multipart body
 * read in pieces, text fields into the arena, file parts into blob-store
 * temp files. Checks beside ASan: fields stay within their bound, a file
 * part's size and digest match what the temp file holds, and no temp file
 * outlives the parse — on any error, and after form_cleanup on success.
 *
 * Input: <flags byte> <Content-Type> '\n' <body>
 *   flags bit 0: a 64-byte upload limit (UP_ERR_TOO_LARGE paths)
 *   flags bits 1-7: the reader's piece size (1 + value * 37)
 */
#include "arena.h"
#include "blobstore.h"
#include "log.h"
#include "upload.h"
#include "util.h"
#include "fuzz.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static struct blobstore store;
static char root[64];

struct reader {
    const char *p;
    size_t left, piece;
};

static ssize_t read_piece(void *ctx, char *buf, size_t len)
{
    struct reader *rd = ctx;
    size_t n = rd->left < rd->piece ? rd->left : rd->piece;
    if (n > len)
        n = len;
    memcpy(buf, rd->p, n);
    rd->p += n;
    rd->left -= n;
    return (ssize_t)n;
}

static size_t files_in(const char *dir)
{
    DIR *d = opendir(dir);
    FUZZ_ASSERT(d != NULL, "opendir");
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void remove_store(void)
{
    rmdir(store.tmp_dir);
    rmdir(store.blobs_dir);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_LVL_ERROR);
    /* fsync per file part: a tmpfs keeps that cheap. */
    snprintf(root, sizeof root, "%s/s4s-fuzz-upload-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(root) || blob_store_open(&store, root) < 0) {
        perror("fuzz upload: temp blob store");
        exit(1);
    }
    atexit(remove_store);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t flags = fuzz_byte(&in);
    char *ct = fuzz_str(&in, '\n');
    size_t len;
    char *body = fuzz_rest(&in, &len);
    arena_t a;
    arena_init(&a, 4096);

    struct reader rd = {body, len, 1 + (size_t)(flags >> 1) * 37};
    struct form form;
    const char *msg = NULL;
    int rc = upload_parse(&a, &store, ct, read_piece, &rd, (flags & 1) ? 64 : 0, &form, &msg);
    if (rc == UP_OK) {
        FUZZ_ASSERT(files_in(store.tmp_dir) == form.nfiles, "one temp file per file part");
        for (size_t i = 0; i < form.nfields; i++) {
            FUZZ_ASSERT(form.fields[i].len <= UPLOAD_MAX_FIELD_BYTES, "field bound");
            FUZZ_ASSERT(form.fields[i].value[form.fields[i].len] == '\0', "field terminated");
            FUZZ_ASSERT(form_value(&form, form.fields[i].name) != NULL, "field found by name");
        }
        for (size_t i = 0; i < form.nfiles; i++) {
            struct form_file *f = &form.files[i];
            struct stat st;
            FUZZ_ASSERT(f->w.finished && blob_writer_tmp_path(&f->w), "file part finished");
            FUZZ_ASSERT(stat(blob_writer_tmp_path(&f->w), &st) == 0 &&
                            (uint64_t)st.st_size == f->w.size,
                        "temp file holds the part");
            FUZZ_ASSERT(is_hex(f->w.sha256, 64) && is_hex(f->w.md5, 32), "digests");
            FUZZ_ASSERT(form_get_file(&form, f->name) != NULL, "file found by name");
        }
        form_cleanup(&form);
        form_cleanup(&form); /* safe twice */
    } else {
        FUZZ_ASSERT(msg != NULL && *msg, "an error says what was wrong");
        FUZZ_ASSERT(form.nfiles == 0 && form.nfields == 0, "no form after an error");
    }
    FUZZ_ASSERT(files_in(store.tmp_dir) == 0, "temp files left behind");
    FUZZ_ASSERT(files_in(store.blobs_dir) == 0, "nothing committed");
    arena_free(&a);
    free(ct);
    free(body);
    return 0;
}
