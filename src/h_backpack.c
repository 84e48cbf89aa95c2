/*
 * h_backpack.c — API.md's Backpack section: GET /api/backpack (the caller's
 * items, newest first, paged), POST /api/backpack (a JSON item whose body
 * and thumbnail arrive base64-encoded), DELETE /api/backpack/<id>.
 *
 * Base64 is decoded in chunks straight into blob-store temp files
 * (bp_b64_decode in assets.c, which also checks the item's fields), so
 * beside the JSON text itself no decoded copy is held in memory. Body and
 * thumbnail are then checked by content, committed as blobs, and recorded
 * with the item in one transaction (assets.c).
 */
#include "assets.h"
#include "content.h"
#include "db.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "session.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define BP_DEFAULT_LIMIT 20
#define BP_MAX_LIMIT 100
#define BP_MAX_OFFSET ((INT64_C(1) << 53) - 1) /* echoed as a JSON number: stays exact */
#define MSG_NO_ITEM "Item not found or you do not have permission to delete it"

/* ---- the item as API.md shows it --------------------------------------------------- */

static bool is_subtype_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-';
}

/* The MIME subtype, as bodyUrl carries it; "" when mime has none we would put in a URL. */
static const char *mime_subtype(const char *mime)
{
    const char *slash = strchr(mime, '/');
    if (!slash || !slash[1])
        return "";
    for (const char *p = slash + 1; *p; p++)
        if (!is_subtype_char(*p))
            return "";
    return slash + 1;
}

static void add_iso(cJSON *o, const char *key, const char *db_ts)
{
    char iso[48];
    db_ts_to_iso(db_ts, iso, sizeof iso);
    if (iso[0])
        cJSON_AddStringToObject(o, key, iso);
    else
        cJSON_AddNullToObject(o, key);
}

static cJSON *bp_item_json(struct request *r, const struct bp_item *it)
{
    const char *base = r->srv->cfg->base_path ? r->srv->cfg->base_path : "";
    char ext[32];
    const char *sub = mime_subtype(it->mime);
    bool with_ext = (strcmp(it->type, "costume") == 0 || strcmp(it->type, "sound") == 0) &&
                    content_format_for_mime(it->mime, ext, sizeof ext);

    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "type", it->type);
    cJSON_AddStringToObject(o, "name", it->name);
    cJSON_AddStringToObject(o, "mime", it->mime);
    cJSON_AddStringToObject(o, "body",
                            with_ext ? arena_printf(r->arena, "%s.%s", it->body, ext) : it->body);
    cJSON_AddStringToObject(o, "thumbnail", it->thumbnail);
    add_iso(o, "created_at", it->created_at);
    add_iso(o, "updated_at", it->updated_at);
    cJSON_AddStringToObject(o, "thumbnailUrl",
                            arena_printf(r->arena, "%s/api/assets/%s", base, it->thumbnail));
    cJSON_AddStringToObject(
        o, "bodyUrl",
        arena_printf(r->arena, "%s/api/assets/%s%s%s", base, it->body, sub[0] ? "." : "", sub));
    return o;
}

/* ---- GET /api/backpack ------------------------------------------------------------ */

static bool query_int(struct request *r, const char *name, int64_t def, int64_t max, int64_t *out)
{
    const char *v = req_query(r, name);
    *out = def;
    return !v || parse_int64(v, 0, max, out);
}

void h_backpack_list(struct request *r)
{
    int64_t limit, offset;
    if (!query_int(r, "limit", BP_DEFAULT_LIMIT, INT64_MAX, &limit)) {
        resp_err(r, ERR_BAD_REQUEST, "limit must be a non-negative integer");
        return;
    }
    if (!query_int(r, "offset", 0, BP_MAX_OFFSET, &offset)) {
        resp_err(r, ERR_BAD_REQUEST, "offset must be a non-negative integer");
        return;
    }
    if (limit > BP_MAX_LIMIT)
        limit = BP_MAX_LIMIT;

    struct bp_item *items;
    size_t n;
    int64_t total;
    int rc = bp_list(r->srv->db, r->arena, r->sess->user_id, limit, offset, &items, &n, &total);
    if (rc != DB_OK) {
        resp_db_err(r, rc);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "items");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, bp_item_json(r, &items[i]));
    cJSON_AddNumberToObject(o, "offset", (double)offset);
    cJSON_AddNumberToObject(o, "limit", (double)limit);
    cJSON_AddNumberToObject(o, "total", (double)total);
    cJSON_AddBoolToObject(o, "hasMore", offset + (int64_t)n < total);
    resp_json(r, 200, o);
}

/* ---- POST /api/backpack ----------------------------------------------------------- */

struct b64_sink_ctx {
    struct blob_writer *w;
    int rc; /* the blob writer's status when it failed */
};

static int b64_sink_blob(void *ctx, const unsigned char *data, size_t len)
{
    struct b64_sink_ctx *x = ctx;
    x->rc = blob_writer_write(x->w, data, len);
    return x->rc != BLOB_OK;
}

/*
 * Decode base64 text (or a data:…;base64, URL) into a new temp file of the
 * blob store, chunk by chunk, and finish it. Answers 400 (or 413/507/500)
 * and returns false on failure, the writer aborted.
 */
static bool b64_to_blob(struct request *r, const char *field, const char *text,
                        struct blob_writer *w)
{
    const char *p = bp_b64_payload(text);
    if (!p) {
        resp_err(r, ERR_BAD_REQUEST,
                 arena_printf(r->arena, "Invalid data URL in field: %s", field));
        return false;
    }
    int rc = blob_writer_begin(&r->srv->blobs, w, r->srv->cfg->max_content_length);
    if (rc != BLOB_OK) {
        asset_blob_fail(r, rc);
        return false;
    }
    struct b64_sink_ctx sink = {.w = w, .rc = BLOB_OK};
    switch (bp_b64_decode(p, b64_sink_blob, &sink)) {
    case BP_B64_OK:
        break;
    case BP_B64_BAD:
        resp_err(r, ERR_BAD_REQUEST,
                 arena_printf(r->arena, "Invalid base64 data in field: %s", field));
        goto fail;
    case BP_B64_SINK:
        asset_blob_fail(r, sink.rc);
        goto fail;
    default:
        resp_err(r, ERR_INTERNAL, NULL);
        goto fail;
    }
    if ((rc = blob_writer_finish(w)) != BLOB_OK) {
        asset_blob_fail(r, rc);
        goto fail;
    }
    return true;
fail:
    blob_writer_abort(w);
    return false;
}

void h_backpack_add(struct request *r)
{
    struct blob_writer wb = {.fd = -1}, wt = {.fd = -1};
    char cmsg[160];
    const char *thumb_fmt = NULL;

    cJSON *j = req_json_body(r, r->srv->cfg->max_content_length);
    if (!j)
        return;
    struct bp_body in;
    const char *msg = NULL;
    int prc = bp_body_parse(r->arena, j, &in, &msg);
    if (prc != BP_PARSE_OK) {
        resp_err(r, prc == BP_PARSE_UNSUPPORTED ? ERR_UNSUPPORTED : ERR_BAD_REQUEST, msg);
        goto done;
    }
    struct bp_item item = {.type = in.type, .name = in.name, .mime = in.mime};
    const char *fmt = in.format;

    /* Both decoded before either is checked: bad base64 is the cheaper answer. */
    if (!b64_to_blob(r, "body", in.body_b64, &wb) ||
        !b64_to_blob(r, "thumbnail", in.thumbnail_b64, &wt))
        goto done;
    struct asset_lookup seen;
    int rc = asset_check_content(r, &wb, fmt, &seen, cmsg, sizeof cmsg);
    if (rc != CONTENT_OK) {
        asset_content_fail(r, rc, cmsg);
        goto done;
    }
    if (wt.size == 0) {
        blob_writer_abort(&wt); /* "": no thumbnail (BP_NO_THUMBNAIL) */
    } else {
        const char *mime = NULL;
        rc =
            content_check_image(r->srv->magic, blob_writer_tmp_path(&wt), &mime, cmsg, sizeof cmsg);
        if (rc != CONTENT_OK) {
            asset_content_fail(r, rc, cmsg);
            goto done;
        }
        thumb_fmt = strcmp(mime, "image/png") == 0 ? "png" : "jpg";
    }

    /* The item's transaction records the assets either way (ON CONFLICT). */
    bool recorded;
    if (!asset_commit_checked(r, &wb, &seen, &recorded) ||
        (thumb_fmt && !asset_commit_checked(r, &wt, NULL, &recorded)))
        goto done;
    struct asset_new body = {.md5 = wb.md5,
                             .sha256 = wb.sha256,
                             .type = item.type,
                             .format = fmt,
                             .size = wb.size,
                             .owner_id = r->sess->user_id};
    struct asset_new thumb = {.md5 = wt.md5,
                              .sha256 = wt.sha256,
                              .type = "thumbnail",
                              .format = thumb_fmt,
                              .size = wt.size,
                              .owner_id = r->sess->user_id};
    bool collision = false;
    rc = bp_insert(r->srv->db, r->arena, &item, r->sess->user_id, &body, thumb_fmt ? &thumb : NULL,
                   &collision);
    if (rc != DB_OK) {
        resp_db_err(r, rc);
        goto done;
    }
    if (collision) {
        asset_conflict(r, body.md5); /* rare enough not to say which of the two */
        goto done;
    }
    resp_json(r, 200, bp_item_json(r, &item));
done:
    blob_writer_abort(&wb);
    blob_writer_abort(&wt);
    cJSON_Delete(j);
}

/* ---- DELETE /api/backpack/<id> ---------------------------------------------------- */

void h_backpack_delete(struct request *r)
{
    const char *id = req_capture(r, 0);
    bool deleted = false;
    int rc = DB_OK;
    /* backpack_items.id is VARCHAR(36): anything longer is nobody's item. */
    if (id && strlen(id) <= 128)
        rc = bp_delete(r->srv->db, r->sess->user_id, id, &deleted);
    if (rc != DB_OK) {
        resp_db_err(r, rc);
        return;
    }
    if (!deleted) {
        resp_err(r, ERR_NOT_FOUND, MSG_NO_ITEM);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    cJSON_AddStringToObject(o, "message", "Backpack item deleted successfully");
    cJSON_AddStringToObject(o, "id", id);
    resp_json(r, 200, o);
}
