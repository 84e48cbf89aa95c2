/*
 * upload.c — a multipart/form-data request body turned into a struct form:
 * reads the body in fixed chunks, runs the multipart parser, copies text
 * fields into the arena and streams file parts into blob-store temp files.
 * Memory is bounded whatever the body size: one read buffer, one field
 * buffer of at most UPLOAD_MAX_FIELD_BYTES, the parser's fixed state.
 */
#include "upload.h"
#include "multipart.h"
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UPLOAD_CHUNK 65536

struct upload_ctx {
    arena_t *arena;
    struct blobstore *bs;
    uint64_t max_bytes;
    struct form *form;
    size_t fields_cap, files_cap;
    bool skip_md5;
    struct form_file *cur_file; /* the file part being received, or NULL */
    const char *cur_name;       /* the text field being received */
    char *field_buf;            /* malloc'd, grows up to UPLOAD_MAX_FIELD_BYTES */
    size_t field_len, field_cap;
    int status;
    const char *errmsg;
};

static int upload_error(struct upload_ctx *u, int status, const char *msg)
{
    u->status = status;
    u->errmsg = msg;
    return -1;
}

static int upload_blob_error(struct upload_ctx *u, int rc)
{
    switch (rc) {
    case BLOB_ERR_NOSPACE:
        return upload_error(u, UP_ERR_NOSPACE, "no space left on the server");
    case BLOB_ERR_TOO_BIG:
        return upload_error(u, UP_ERR_TOO_LARGE, "upload too large");
    }
    return upload_error(u, UP_ERR_IO, "could not store the upload");
}

/* Grow an arena array by doubling; the old copy is left to the arena. The
 * parser allows at most MP_MAX_PARTS parts, so this stays small. */
static void *upload_grow(arena_t *a, void *old, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return old;
    size_t ncap = *cap ? *cap * 2 : 4;
    void *fresh = arena_alloc(a, ncap * elem);
    if (n)
        memcpy(fresh, old, n * elem);
    *cap = ncap;
    return fresh;
}

static int upload_part_begin(void *ctx, const struct mp_part_info *info)
{
    struct upload_ctx *u = ctx;
    struct form *f = u->form;

    /* The parser's strings live only during this call: copy what we keep. */
    if (info->filename) {
        f->files = upload_grow(u->arena, f->files, f->nfiles, &u->files_cap, sizeof *f->files);
        struct form_file *file = &f->files[f->nfiles];
        memset(file, 0, sizeof *file);
        file->name = arena_strdup(u->arena, info->name);
        file->filename = arena_strdup(u->arena, info->filename);
        file->content_type = info->content_type ? arena_strdup(u->arena, info->content_type) : NULL;
        /* begin leaves the writer safe to abort even when it fails, so count it now. */
        f->nfiles++;
        int rc = blob_writer_begin(u->bs, &file->w, u->max_bytes);
        if (rc != BLOB_OK)
            return upload_blob_error(u, rc);
        if (u->skip_md5)
            blob_writer_skip_md5(&file->w);
        u->cur_file = file;
        return 0;
    }
    u->cur_file = NULL;
    u->cur_name = arena_strdup(u->arena, info->name);
    u->field_len = 0;
    return 0;
}

static int upload_part_data(void *ctx, const char *data, size_t len)
{
    struct upload_ctx *u = ctx;

    if (u->cur_file) {
        int rc = blob_writer_write(&u->cur_file->w, data, len);
        return rc == BLOB_OK ? 0 : upload_blob_error(u, rc);
    }
    if (len > UPLOAD_MAX_FIELD_BYTES - u->field_len)
        return upload_error(u, UP_ERR_BAD, "form field too large");
    if (u->field_len + len > u->field_cap) {
        size_t ncap = u->field_cap ? u->field_cap : 1024;
        while (ncap < u->field_len + len)
            ncap *= 2;
        if (ncap > UPLOAD_MAX_FIELD_BYTES)
            ncap = UPLOAD_MAX_FIELD_BYTES;
        u->field_buf = xrealloc(u->field_buf, ncap);
        u->field_cap = ncap;
    }
    memcpy(u->field_buf + u->field_len, data, len);
    u->field_len += len;
    return 0;
}

static int upload_part_end(void *ctx)
{
    struct upload_ctx *u = ctx;
    struct form *f = u->form;

    if (u->cur_file) {
        int rc = blob_writer_finish(&u->cur_file->w);
        u->cur_file = NULL;
        return rc == BLOB_OK ? 0 : upload_blob_error(u, rc);
    }
    f->fields = upload_grow(u->arena, f->fields, f->nfields, &u->fields_cap, sizeof *f->fields);
    struct form_field *fld = &f->fields[f->nfields++];
    fld->name = u->cur_name;
    fld->value = arena_strndup(u->arena, u->field_len ? u->field_buf : "", u->field_len);
    fld->len = u->field_len;
    return 0;
}

/* The media type itself, parameters aside, case-insensitively. */
static bool upload_is_form_data(const char *ct)
{
    static const char type[] = "multipart/form-data";
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, type, sizeof type - 1) != 0)
        return false;
    ct += sizeof type - 1;
    return *ct == '\0' || *ct == ';' || *ct == ' ' || *ct == '\t';
}

/* A parser error as the client should read it. */
static void upload_mp_error(struct upload_ctx *u, int rc)
{
    if (rc == MP_ERR_CALLBACK)
        return; /* the callback said why */
    if (rc == MP_ERR_TRUNCATED)
        upload_error(u, UP_ERR_CLIENT, "request body ended early");
    else
        upload_error(u, UP_ERR_BAD, mp_strerror(rc));
}

int upload_parse(arena_t *arena, struct blobstore *bs, const char *content_type, body_reader_fn rd,
                 void *rd_ctx, uint64_t max_bytes, struct form *out, const char **errmsg)
{
    return upload_parse_opts(arena, bs, content_type, rd, rd_ctx, max_bytes, out, errmsg, NULL);
}

int upload_parse_opts(arena_t *arena, struct blobstore *bs, const char *content_type,
                      body_reader_fn rd, void *rd_ctx, uint64_t max_bytes, struct form *out,
                      const char **errmsg, const struct upload_opts *opts)
{
    struct upload_ctx u = {.arena = arena,
                           .bs = bs,
                           .max_bytes = max_bytes,
                           .form = out,
                           .skip_md5 = opts && opts->skip_md5};
    struct mp_callbacks cb = {upload_part_begin, upload_part_data, upload_part_end};
    struct mp_parser *mp = NULL;
    char *buf = NULL;
    char boundary[MP_MAX_BOUNDARY + 1];
    uint64_t total = 0;

    memset(out, 0, sizeof *out);
    *errmsg = NULL;
    if (!upload_is_form_data(content_type)) {
        upload_error(&u, UP_ERR_BAD, "expected multipart/form-data");
        goto fail;
    }
    if (mp_boundary_from_content_type(content_type, boundary, sizeof boundary) != MP_OK ||
        !(mp = mp_new(boundary, &cb, &u))) {
        upload_error(&u, UP_ERR_BAD, mp_strerror(MP_ERR_BOUNDARY));
        goto fail;
    }
    buf = xmalloc(UPLOAD_CHUNK);
    /* Read to the end even after the closing boundary: the epilogue is counted
     * and consumed, so on success the caller has nothing left to drain. */
    for (;;) {
        ssize_t n = rd(rd_ctx, buf, UPLOAD_CHUNK);
        if (n == 0)
            break;
        if (n < 0) {
            /* With the closing boundary seen the form is whole: only epilogue is lost. */
            if (mp_finish(mp) == MP_OK)
                break;
            upload_error(&u, UP_ERR_CLIENT, "request body ended early");
            goto fail;
        }
        /* max_bytes 0 means no limit, as for the blob writer. */
        total += (uint64_t)n;
        if (max_bytes && total > max_bytes) {
            upload_error(&u, UP_ERR_TOO_LARGE, "request body too large");
            goto fail;
        }
        int rc = mp_feed(mp, buf, (size_t)n);
        if (rc != MP_OK) {
            upload_mp_error(&u, rc);
            goto fail;
        }
    }
    int rc = mp_finish(mp);
    if (rc != MP_OK) {
        upload_mp_error(&u, rc);
        goto fail;
    }
    mp_free(mp);
    free(buf);
    free(u.field_buf);
    return UP_OK;

fail:
    mp_free(mp);
    free(buf);
    free(u.field_buf);
    form_cleanup(out);
    memset(out, 0, sizeof *out);
    *errmsg = u.errmsg ? u.errmsg : "invalid request body";
    return u.status ? u.status : UP_ERR_BAD;
}

const char *form_value(const struct form *f, const char *name)
{
    for (size_t i = 0; i < f->nfields; i++)
        if (strcmp(f->fields[i].name, name) == 0)
            return f->fields[i].value;
    return NULL;
}

struct form_file *form_get_file(struct form *f, const char *name)
{
    for (size_t i = 0; i < f->nfiles; i++)
        if (strcmp(f->files[i].name, name) == 0)
            return &f->files[i];
    return NULL;
}

void form_cleanup(struct form *f)
{
    for (size_t i = 0; i < f->nfiles; i++)
        blob_writer_abort(&f->files[i].w);
}
