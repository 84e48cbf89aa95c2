/*
 * assets.c — the assets and backpack_items tables (see assets.h): one asset
 * row per MD5 created with INSERT … ON CONFLICT DO NOTHING and checked
 * against the bytes' SHA-256, backpack items with their assets in one
 * transaction, the owner's page of items in one read transaction.
 */
#include "assets.h"
#include "content.h"
#include "db.h"
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#define BP_TYPE_MAX 20  /* backpack_items.type VARCHAR(20) */
#define BP_NAME_MAX 255 /* backpack_items.name VARCHAR(255), characters */
#define BP_MIME_MAX 50  /* backpack_items.mime VARCHAR(50) */
#define B64_CHUNK 65536

int asset_find(struct db *db, arena_t *a, const char *md5, struct asset_info *out)
{
    struct db_stmt *st = db_prepare(
        db, "SELECT asset_type, data_format, sha256, size FROM assets WHERE asset_id = ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, md5);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        out->type = arena_strdup(a, db_column_text(st, 0));
        out->format = arena_strdup(a, db_column_text(st, 1));
        out->sha256 = arena_strdup(a, db_column_text(st, 2));
        out->size = db_column_int64(st, 3);
        db_reset(st);
    }
    return rc;
}

int asset_upsert(struct db *db, const struct asset_new *a, bool *collision)
{
    char now[DB_TS_LEN];
    char path[sizeof ASSET_FILE_PATH_PREFIX + BLOB_SHA256_HEX];

    *collision = false;
    db_ts_now(now);
    snprintf(path, sizeof path, "%s%s", ASSET_FILE_PATH_PREFIX, a->sha256);
    /* No conflict target: either of the upstream UNIQUE constraints (asset_id,
     * and (md5, asset_type)) means the MD5 is taken. */
    struct db_stmt *st = db_prepare(
        db, "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, owner_id, "
            "file_path, created_at, sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING id");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, a->md5);
    db_bind_text(st, 2, a->type);
    db_bind_text(st, 3, a->format);
    db_bind_int64(st, 4, (int64_t)a->size);
    db_bind_text(st, 5, a->md5);
    db_bind_text(st, 6, a->owner_id);
    db_bind_text(st, 7, path);
    db_bind_text(st, 8, now);
    db_bind_text(st, 9, a->sha256);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        db_reset(st);
        return DB_OK; /* a new row */
    }
    if (rc != DB_OK)
        return rc;

    st = db_prepare(db, "SELECT sha256 FROM assets WHERE asset_id = ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, a->md5);
    rc = db_step(st);
    if (rc == DB_OK) {
        /* Only an adopted row whose asset_id is not its MD5 can get here. */
        *collision = true;
        return DB_OK;
    }
    if (rc != DB_ROW)
        return rc;
    const char *have = db_column_text(st, 0);
    bool known = have[0] != '\0';
    bool same = known && strcmp(have, a->sha256) == 0;
    db_reset(st);
    if (same)
        return DB_OK;
    if (known) {
        *collision = true;
        return DB_OK;
    }
    st = db_prepare(db, "UPDATE assets SET sha256 = ? WHERE asset_id = ? "
                        "AND (sha256 IS NULL OR sha256 = '')");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, a->sha256);
    db_bind_text(st, 2, a->md5);
    return db_step_done(st);
}

struct asset_store_ctx {
    const struct asset_new *a;
    bool *collision;
};

static int asset_store_tx(struct db *db, void *ctx)
{
    struct asset_store_ctx *x = ctx;
    return asset_upsert(db, x->a, x->collision);
}

int asset_store(struct db *db, const struct asset_new *a, bool *collision)
{
    struct asset_store_ctx x = {a, collision};
    *collision = false;
    return db_transaction(db, true, asset_store_tx, &x);
}

/* ---- backpack ---------------------------------------------------------------- */

void bp_new_id(char out[BP_ID_LEN])
{
    unsigned char b[16];
    char hex[33];
    random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    hex_encode(b, sizeof b, hex);
    snprintf(out, BP_ID_LEN, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16,
             hex + 20);
}

struct bp_insert_ctx {
    struct bp_item *item;
    const char *owner_id;
    const struct asset_new *body, *thumb;
    bool collision;
};

static int bp_insert_tx(struct db *db, void *ctx)
{
    struct bp_insert_ctx *x = ctx;
    int rc;

    x->collision = false;
    if ((rc = asset_upsert(db, x->body, &x->collision)) != DB_OK)
        return rc;
    if (!x->collision && x->thumb && (rc = asset_upsert(db, x->thumb, &x->collision)) != DB_OK)
        return rc;
    if (x->collision)
        return DB_CONSTRAINT; /* roll back whatever the other asset added */
    struct db_stmt *st =
        db_prepare(db, "INSERT INTO backpack_items (id, type, name, mime, body, thumbnail, "
                       "owner_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        return DB_ERROR;
    const struct bp_item *it = x->item;
    db_bind_text(st, 1, it->id);
    db_bind_text(st, 2, it->type);
    db_bind_text(st, 3, it->name);
    db_bind_text(st, 4, it->mime);
    db_bind_text(st, 5, it->body);
    db_bind_text(st, 6, it->thumbnail);
    db_bind_text(st, 7, x->owner_id);
    db_bind_text(st, 8, it->created_at);
    db_bind_text(st, 9, it->updated_at);
    return db_step_done(st);
}

int bp_insert(struct db *db, arena_t *a, struct bp_item *item, const char *owner_id,
              const struct asset_new *body, const struct asset_new *thumb, bool *collision)
{
    char id[BP_ID_LEN], now[DB_TS_LEN];
    bp_new_id(id);
    db_ts_now(now);
    item->id = arena_strdup(a, id);
    item->created_at = item->updated_at = arena_strdup(a, now);
    item->body = body->md5;
    item->thumbnail = thumb ? thumb->md5 : BP_NO_THUMBNAIL;

    struct bp_insert_ctx x = {.item = item, .owner_id = owner_id, .body = body, .thumb = thumb};
    int rc = db_transaction(db, true, bp_insert_tx, &x);
    *collision = x.collision;
    if (x.collision)
        return DB_OK;
    return rc;
}

struct bp_list_ctx {
    arena_t *arena;
    const char *owner_id;
    int64_t limit, offset;
    struct bp_item *items;
    size_t n;
    int64_t total;
};

static int bp_list_tx(struct db *db, void *ctx)
{
    struct bp_list_ctx *x = ctx;
    x->n = 0;
    x->total = 0;
    struct db_stmt *st = db_prepare(db, "SELECT COUNT(*) FROM backpack_items WHERE owner_id = ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, x->owner_id);
    int rc = db_step(st);
    if (rc != DB_ROW)
        return rc == DB_OK ? DB_ERROR : rc;
    x->total = db_column_int64(st, 0);
    db_reset(st);

    /* Adopted rows may lack timestamps: they go last, on every database. */
    st = db_prepare(db, "SELECT id, type, name, mime, body, thumbnail, created_at, updated_at "
                        "FROM backpack_items WHERE owner_id = ? "
                        "ORDER BY updated_at DESC NULLS LAST, created_at DESC NULLS LAST, id DESC "
                        "LIMIT ? OFFSET ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, x->owner_id);
    db_bind_int64(st, 2, x->limit);
    db_bind_int64(st, 3, x->offset);
    while ((rc = db_step(st)) == DB_ROW) {
        if (x->n >= (size_t)x->limit) { /* LIMIT says otherwise; never overrun the array */
            db_reset(st);
            break;
        }
        struct bp_item *it = &x->items[x->n++];
        it->id = arena_strdup(x->arena, db_column_text(st, 0));
        it->type = arena_strdup(x->arena, db_column_text(st, 1));
        it->name = arena_strdup(x->arena, db_column_text(st, 2));
        it->mime = arena_strdup(x->arena, db_column_text(st, 3));
        it->body = arena_strdup(x->arena, db_column_text(st, 4));
        it->thumbnail = arena_strdup(x->arena, db_column_text(st, 5));
        it->created_at = arena_strdup(x->arena, db_column_text(st, 6));
        it->updated_at = arena_strdup(x->arena, db_column_text(st, 7));
    }
    return rc == DB_ROW ? DB_OK : rc;
}

int bp_list(struct db *db, arena_t *a, const char *owner_id, int64_t limit, int64_t offset,
            struct bp_item **items, size_t *n, int64_t *total)
{
    struct bp_list_ctx x = {.arena = a, .owner_id = owner_id, .limit = limit, .offset = offset};
    /* The caller bounds limit (API.md: at most 100). */
    x.items = arena_calloc(a, limit > 0 ? (size_t)limit : 1, sizeof *x.items);
    int rc = db_transaction(db, false, bp_list_tx, &x);
    *items = x.items;
    *n = x.n;
    *total = x.total;
    return rc;
}

struct bp_delete_ctx {
    const char *owner_id, *id;
    bool deleted;
};

static int bp_delete_tx(struct db *db, void *ctx)
{
    struct bp_delete_ctx *x = ctx;
    x->deleted = false;
    struct db_stmt *st =
        db_prepare(db, "DELETE FROM backpack_items WHERE id = ? AND owner_id = ? RETURNING id");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, x->id);
    db_bind_text(st, 2, x->owner_id);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        x->deleted = true;
        db_reset(st);
        rc = DB_OK;
    }
    return rc;
}

int bp_delete(struct db *db, const char *owner_id, const char *id, bool *deleted)
{
    struct bp_delete_ctx x = {.owner_id = owner_id, .id = id};
    int rc = db_transaction(db, true, bp_delete_tx, &x);
    *deleted = x.deleted;
    return rc;
}

/* ---- the POST /api/backpack body ---------------------------------------------- */

static bool is_subtype_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-';
}

/* Number of UTF-8 characters (cJSON hands us valid UTF-8 or escapes). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static bool bp_type_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > BP_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
              (t[i] >= '0' && t[i] <= '9') || t[i] == '_' || t[i] == '-'))
            return false;
    return true;
}

/* "type/subtype", lowercased, without parameters; audio/x-wav becomes
 * audio/wav (API.md). NULL when it is not one. */
static const char *bp_mime_norm(arena_t *a, const char *mime)
{
    size_t n = strlen(mime);
    if (n == 0 || n > BP_MIME_MAX)
        return NULL;
    char *m = arena_strdup(a, mime);
    int slashes = 0;
    for (char *c = m; *c; c++) {
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
        if (*c == '/')
            slashes++;
        else if (!is_subtype_char(*c))
            return NULL;
    }
    if (slashes != 1 || m[0] == '/' || m[n - 1] == '/')
        return NULL;
    return strcmp(m, "audio/x-wav") == 0 ? "audio/wav" : m;
}

int bp_body_parse(arena_t *a, const cJSON *j, struct bp_body *out, const char **msg)
{
    static const char *const required[] = {"type", "mime", "name", "body", "thumbnail"};
    const char *val[ARRAY_LEN(required)];

    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(j)) {
        *msg = "Expected a JSON object";
        return BP_PARSE_BAD;
    }
    for (size_t i = 0; i < ARRAY_LEN(required); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, required[i]);
        if (!v) {
            *msg = arena_printf(a, "Missing required field: %s", required[i]);
            return BP_PARSE_BAD;
        }
        if (!cJSON_IsString(v)) {
            *msg = arena_printf(a, "Field %s must be a string", required[i]);
            return BP_PARSE_BAD;
        }
        val[i] = v->valuestring;
    }
    out->type = val[0];
    out->name = val[2];
    out->body_b64 = val[3];
    out->thumbnail_b64 = val[4];
    if (!bp_type_ok(out->type)) {
        *msg = "Invalid field: type";
        return BP_PARSE_BAD;
    }
    if (utf8_chars(out->name) > BP_NAME_MAX) {
        *msg = "Field name is too long (at most 255 characters)";
        return BP_PARSE_BAD;
    }
    out->mime = bp_mime_norm(a, val[1]);
    if (!out->mime) {
        *msg = "Invalid field: mime";
        return BP_PARSE_BAD;
    }
    if (!content_format_for_mime(out->mime, out->format, sizeof out->format)) {
        *msg = arena_printf(a, "Unsupported MIME type '%s'", out->mime);
        return BP_PARSE_UNSUPPORTED;
    }
    return BP_PARSE_OK;
}

static bool is_b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '=';
}

/* Whitespace is allowed between base64 characters (line-wrapped input). */
static bool is_b64_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

const char *bp_b64_payload(const char *text)
{
    if (strncasecmp(text, "data:", 5) != 0)
        return text;
    const char *comma = strchr(text, ',');
    if (!comma || comma - text < 12 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return NULL;
    return comma + 1;
}

/*
 * EVP_DecodeUpdate is lenient where this must not be — it stops quietly at
 * '-' and accepts more data after padding when the padding ends a call — so
 * every character is checked first and nothing may follow the padding.
 */
int bp_b64_decode(const char *text, bp_b64_sink sink, void *ctx)
{
    EVP_ENCODE_CTX *ectx = EVP_ENCODE_CTX_new();
    if (!ectx)
        return BP_B64_NOMEM;
    EVP_DecodeInit(ectx);
    int rc = BP_B64_BAD;
    /* EVP_DecodeUpdate keeps up to 64 characters from the last call. */
    unsigned char out[3 * ((B64_CHUNK + 64) / 4) + 3];
    size_t len = strlen(text);
    bool padded = false; /* the padding was seen: only blanks may follow */
    for (size_t off = 0; off < len;) {
        size_t n = len - off < B64_CHUNK ? len - off : B64_CHUNK;
        const unsigned char *in = (const unsigned char *)text + off;
        // cppcheck-suppress knownConditionTrueFalse ; false positive: n >= 1 while off < len
        for (size_t i = 0; i < n; i++) {
            if (is_b64_space(in[i]))
                continue;
            if (padded || !is_b64_char(in[i]))
                goto out;
        }
        int outl = 0;
        int drc = EVP_DecodeUpdate(ectx, out, &outl, in, (int)n);
        if (drc < 0)
            goto out;
        if (drc == 0)
            padded = true;
        if (outl > 0 && sink(ctx, out, (size_t)outl) != 0) {
            rc = BP_B64_SINK;
            goto out;
        }
        off += n;
    }
    int outl = 0;
    if (EVP_DecodeFinal(ectx, out, &outl) < 0) /* a truncated last quantum */
        goto out;
    if (outl > 0 && sink(ctx, out, (size_t)outl) != 0) {
        rc = BP_B64_SINK;
        goto out;
    }
    rc = BP_B64_OK;
out:
    EVP_ENCODE_CTX_free(ectx);
    return rc;
}
