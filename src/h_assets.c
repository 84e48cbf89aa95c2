/*
 * h_assets.c — API.md's Assets section: POST /api/assets/ (multipart, the
 * Scratch4School frontend), POST /api/assets/<md5>.<ext> (a raw body, as
 * scratch-storage saves), GET /api/assets/<md5>[.<ext>]; and the steps every
 * asset goes through before its row is written, which the backpack shares:
 * content check of the finished temp file, collision check, blob commit.
 *
 * Asset ids are exactly 32 hex digits; uppercase digits are accepted and
 * read as lowercase (the same number; Scratch itself writes lowercase), so
 * nothing else ever reaches the database or the file system. Anything else
 * is 404 "Asset not found".
 */
#include "assets.h"
#include "content.h"
#include "db.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "session.h"
#include "upload.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define MSG_NOT_FOUND "Asset not found"
#define RAW_CHUNK 65536
#define EXT_MAX 32 /* "<md5>.<ext>": the backpack's bodyUrl puts a MIME subtype here */

/* Served assets are immutable: the id is the content's MD5. */
#define ASSET_CACHE_CONTROL "public, max-age=31536000, immutable"
/* An SVG opened directly must not run script or load anything (security review). */
#define SVG_CSP "default-src 'none'; style-src 'unsafe-inline'; sandbox"

static bool is_ext_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '+' || c == '-';
}

/*
 * "<md5>" or "<md5>.<ext>" → md5 (lowercased) and ext (NULL when absent).
 * The ext is a letter or digit, then letters, digits, '.', '+' and '-', at
 * most EXT_MAX in all.
 */
static bool asset_name_parse(const char *name, char md5[BLOB_MD5_HEX], const char **ext)
{
    *ext = NULL;
    if (!name)
        return false;
    for (int i = 0; i < 32; i++) {
        char c = name[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false; /* also stops at the NUL of a short name */
        md5[i] = c;
    }
    md5[32] = '\0';
    if (name[32] == '\0')
        return true;
    if (name[32] != '.')
        return false;
    const char *e = name + 33;
    size_t n = strlen(e);
    if (n == 0 || n > EXT_MAX ||
        !((e[0] >= 'a' && e[0] <= 'z') || (e[0] >= 'A' && e[0] <= 'Z') ||
          (e[0] >= '0' && e[0] <= '9')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_ext_char(e[i]))
            return false;
    *ext = e;
    return true;
}

static char *lower_dup(arena_t *a, const char *s)
{
    char *out = arena_strdup(a, s);
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return out;
}

/* ---- shared with h_backpack.c (routes.h) ------------------------------------------ */

void asset_content_fail(struct request *r, int status, const char *msg)
{
    switch (status) {
    case CONTENT_ERR_EMPTY:
        resp_err(r, ERR_BAD_REQUEST, msg);
        break;
    case CONTENT_ERR_TYPE:
    case CONTENT_ERR_FORMAT:
        resp_err(r, ERR_UNSUPPORTED, msg);
        break;
    case CONTENT_ERR_INVALID:
        resp_err(r, ERR_UNPROCESSABLE, msg);
        break;
    default:
        resp_err(r, ERR_INTERNAL, NULL);
        break;
    }
}

int asset_check_content(struct request *r, const struct blob_writer *w, const char *format,
                        struct asset_lookup *seen, char *msg, size_t msglen)
{
    /* The dedupe path (a whole class uploading one costume) then costs the
     * lookup commit needs anyway instead of a libmagic run over the file. */
    seen->rc = asset_find(r->srv->db, r->arena, w->md5, &seen->info);
    if (seen->rc == DB_ROW && seen->info.sha256 && seen->info.format &&
        strcmp(seen->info.sha256, w->sha256) == 0 && strcmp(seen->info.format, format) == 0)
        return CONTENT_OK;
    return content_check_asset(r->srv->magic, blob_writer_tmp_path(w), format, msg, msglen);
}

void asset_blob_fail(struct request *r, int blob_status)
{
    switch (blob_status) {
    case BLOB_ERR_NOSPACE:
        resp_err(r, ERR_NO_SPACE, NULL);
        break;
    case BLOB_ERR_TOO_BIG:
        resp_err(r, ERR_TOO_LARGE, NULL);
        break;
    default:
        resp_err(r, ERR_INTERNAL, NULL);
        break;
    }
}

void asset_conflict(struct request *r, const char *md5)
{
    resp_err(r, ERR_CONFLICT,
             arena_printf(r->arena, "Asset %s already exists with different content", md5));
}

bool asset_commit_checked(struct request *r, struct blob_writer *w, const struct asset_lookup *seen,
                          bool *recorded)
{
    struct asset_lookup own;
    if (!seen) {
        own.rc = asset_find(r->srv->db, r->arena, w->md5, &own.info);
        seen = &own;
    }
    const struct asset_info *have = &seen->info;
    *recorded = false;
    int rc = seen->rc;
    if (rc != DB_ROW && rc != DB_OK) {
        blob_writer_abort(w);
        resp_db_err(r, rc);
        return false;
    }
    if (rc == DB_ROW && have->sha256[0]) {
        if (strcmp(have->sha256, w->sha256) != 0) {
            /* Checked here so a collision leaves no blob behind; asset_upsert
             * checks again inside the transaction. */
            blob_writer_abort(w);
            asset_conflict(r, w->md5);
            return false;
        }
        if (blob_exists(&r->srv->blobs, w->sha256)) {
            blob_writer_abort(w); /* stored already: no new file, no new row */
            *recorded = true;
            return true;
        }
    }
    int brc = blob_writer_commit(&r->srv->blobs, w);
    if (brc != BLOB_OK) {
        log_warnx("asset %s: storing the blob failed: %s", w->md5, blob_strerror(brc));
        asset_blob_fail(r, brc);
        return false;
    }
    return true;
}

/* ---- handlers --------------------------------------------------------------------- */

/* Record a committed asset (unless it is recorded already) and answer ok;
 * 409/503/500 otherwise. */
static void asset_record(struct request *r, const struct asset_new *a, bool recorded, cJSON *ok)
{
    bool collision = false;
    int rc = recorded ? DB_OK : asset_store(r->srv->db, a, &collision);
    if (rc == DB_OK && !collision) {
        resp_json(r, 200, ok);
        return;
    }
    cJSON_Delete(ok);
    if (rc == DB_OK)
        asset_conflict(r, a->md5);
    else
        resp_db_err(r, rc);
}

static void upload_fail(struct request *r, int rc, const char *msg)
{
    switch (rc) {
    case UP_ERR_TOO_LARGE:
        resp_err(r, ERR_TOO_LARGE, msg);
        break;
    case UP_ERR_NOSPACE:
        resp_err(r, ERR_NO_SPACE, msg);
        break;
    case UP_ERR_IO:
        resp_err(r, ERR_INTERNAL, msg);
        break;
    default:
        resp_err(r, ERR_BAD_REQUEST, msg);
        break;
    }
}

/* An asset type as the assets table can hold it: [a-z0-9_-], 1..50. */
static bool asset_type_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > ASSET_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '_' ||
              t[i] == '-'))
            return false;
    return true;
}

void h_asset_upload(struct request *r)
{
    struct form form;
    const char *msg = NULL;
    char cmsg[160];
    int rc = upload_parse(r->arena, &r->srv->blobs, r->content_type, req_body_read, r,
                          r->srv->cfg->max_content_length, &form, &msg);
    if (rc != UP_OK) {
        upload_fail(r, rc, msg);
        return;
    }
    struct form_file *f = form_get_file(&form, "asset");
    const char *type = form_value(&form, "type");
    const char *format = form_value(&form, "format");
    if (!f) {
        resp_err(r, ERR_BAD_REQUEST, "No asset file provided");
        goto done;
    }
    if (!type || !*type) {
        resp_err(r, ERR_BAD_REQUEST, "Missing required field: type");
        goto done;
    }
    if (!format || !*format) {
        resp_err(r, ERR_BAD_REQUEST, "Missing required field: format");
        goto done;
    }
    type = lower_dup(r->arena, type);
    format = lower_dup(r->arena, format);
    if (!asset_type_ok(type)) {
        resp_err(r, ERR_BAD_REQUEST, "Invalid asset type");
        goto done;
    }
    struct asset_lookup seen;
    rc = asset_check_content(r, &f->w, format, &seen, cmsg, sizeof cmsg);
    if (rc != CONTENT_OK) {
        asset_content_fail(r, rc, cmsg);
        goto done;
    }
    bool recorded;
    if (!asset_commit_checked(r, &f->w, &seen, &recorded))
        goto done;
    struct asset_new a = {.md5 = f->w.md5,
                          .sha256 = f->w.sha256,
                          .type = type,
                          .format = format,
                          .size = f->w.size,
                          .owner_id = r->sess->user_id};
    cJSON *ok = cJSON_CreateObject();
    cJSON_AddStringToObject(ok, "status", "ok");
    cJSON_AddStringToObject(ok, "assetId", a.md5);
    asset_record(r, &a, recorded, ok);
done:
    form_cleanup(&form);
}

void h_asset_upload_raw(struct request *r)
{
    char md5[BLOB_MD5_HEX], cmsg[160];
    const char *ext;
    struct blob_writer w = {.fd = -1};

    if (!asset_name_parse(req_capture(r, 0), md5, &ext)) {
        req_drain_body(r);
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return;
    }
    const char *type = ext ? content_type_from_ext(ext) : NULL;
    if (!type) {
        req_drain_body(r);
        resp_err(r, ERR_UNSUPPORTED,
                 arena_printf(r->arena, "Unsupported asset format '%s'", ext ? ext : ""));
        return;
    }
    const char *format = lower_dup(r->arena, ext);

    int rc = blob_writer_begin(&r->srv->blobs, &w, r->srv->cfg->max_content_length);
    if (rc != BLOB_OK) {
        req_drain_body(r);
        asset_blob_fail(r, rc);
        return;
    }
    char buf[RAW_CHUNK];
    for (;;) {
        ssize_t n = req_body_read(r, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0) {
            resp_err(r, ERR_BAD_REQUEST, "Could not read the request body");
            goto fail;
        }
        if ((rc = blob_writer_write(&w, buf, (size_t)n)) != BLOB_OK) {
            req_drain_body(r);
            asset_blob_fail(r, rc);
            goto fail;
        }
    }
    if ((rc = blob_writer_finish(&w)) != BLOB_OK) {
        asset_blob_fail(r, rc);
        goto fail;
    }
    if (strcmp(w.md5, md5) != 0) {
        resp_err(r, ERR_BAD_REQUEST, "The MD5 of the body does not match the asset name");
        goto fail;
    }
    struct asset_lookup seen;
    rc = asset_check_content(r, &w, format, &seen, cmsg, sizeof cmsg);
    if (rc != CONTENT_OK) {
        asset_content_fail(r, rc, cmsg);
        goto fail;
    }
    bool recorded;
    if (!asset_commit_checked(r, &w, &seen, &recorded))
        goto fail;
    struct asset_new a = {.md5 = md5,
                          .sha256 = w.sha256,
                          .type = type,
                          .format = format,
                          .size = w.size,
                          .owner_id = r->sess->user_id};
    cJSON *ok = cJSON_CreateObject();
    cJSON_AddStringToObject(ok, "status", "ok");
    cJSON_AddStringToObject(ok, "content-name", md5);
    asset_record(r, &a, recorded, ok);
fail:
    blob_writer_abort(&w);
}

void h_asset_get(struct request *r)
{
    char md5[BLOB_MD5_HEX];
    const char *ext;
    struct asset_info a;

    /* The extension is the client's; the MIME type comes from the stored row. */
    if (!asset_name_parse(req_capture(r, 0), md5, &ext)) {
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return;
    }
    int rc = asset_find(r->srv->db, r->arena, md5, &a);
    if (rc != DB_ROW && rc != DB_OK) {
        resp_db_err(r, rc);
        return;
    }
    if (rc == DB_OK || !a.sha256[0]) { /* no row, or an adopted file not imported yet */
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return;
    }
    if (!blob_exists(&r->srv->blobs, a.sha256)) {
        /* Before any caching header: a store damaged by hand must not be cached. */
        log_errx("asset %s: blob %s is referenced but missing", md5, a.sha256);
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return;
    }
    const char *mime = content_asset_mime(a.type, a.format);
    resp_header(r, "Cache-Control", ASSET_CACHE_CONTROL);
    if (strcmp(mime, "image/svg+xml") == 0)
        resp_header(r, "Content-Security-Policy", SVG_CSP);
    if (resp_etag(r, md5))
        return;
    resp_blob(r, a.sha256, mime);
}
