/*
 * upload.h — a multipart/form-data request body turned into a struct form:
 * small text fields copied into the request arena (bounded), file parts
 * streamed into blob-store temp files while hashed, never held in memory.
 * File parts are finished (digests known) but not committed: the handler
 * checks their content, then commits (which fsyncs) or lets form_cleanup drop them.
 */
#ifndef S4S_UPLOAD_H
#define S4S_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "blobstore.h"

#define UPLOAD_MAX_FIELD_BYTES 65536 /* one text field */

struct form_field {
    const char *name;
    const char *value; /* NUL-terminated copy; len excludes the NUL */
    size_t len;
};

struct form_file {
    const char *name;
    const char *filename;     /* as sent, may be "" */
    const char *content_type; /* may be NULL */
    struct blob_writer w;     /* finished: w.size, w.sha256, w.md5 set; temp file still there */
};

struct form {
    struct form_field *fields;
    size_t nfields;
    struct form_file *files;
    size_t nfiles;
};

enum upload_status {
    UP_OK = 0,
    UP_ERR_BAD,       /* malformed multipart or a field too large: 400, message says which */
    UP_ERR_TOO_LARGE, /* more than max_bytes of body: 413 */
    UP_ERR_NOSPACE,   /* disk full: 507 */
    UP_ERR_IO,        /* server-side I/O error: 500 */
    UP_ERR_CLIENT,    /* reading the body failed / ended early (client gone) */
};

/* Reads up to len bytes of request body; 0 at end, -1 on error. */
typedef ssize_t (*body_reader_fn)(void *ctx, char *buf, size_t len);

/*
 * Parse the body. On any error every temp file made so far is removed and
 * *errmsg (static or arena string) says what was wrong, for the client.
 */
int upload_parse(arena_t *arena, struct blobstore *bs, const char *content_type, body_reader_fn rd,
                 void *rd_ctx, uint64_t max_bytes, struct form *out, const char **errmsg);

struct upload_opts {
    bool skip_md5; /* file parts get no MD5 (w.md5 ""): projects, whose files are not assets */
};
/* upload_parse with options; NULL opts is upload_parse. */
int upload_parse_opts(arena_t *arena, struct blobstore *bs, const char *content_type,
                      body_reader_fn rd, void *rd_ctx, uint64_t max_bytes, struct form *out,
                      const char **errmsg, const struct upload_opts *opts);

const char *form_value(const struct form *f, const char *name); /* NULL if absent */
struct form_file *form_get_file(struct form *f, const char *name);
/* Remove the temp files of every file part not committed. Safe to call twice. */
void form_cleanup(struct form *f);

#endif
