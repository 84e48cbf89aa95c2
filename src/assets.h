/*
 * assets.h — the store layer of API.md's Assets and Backpack sections: every
 * SQL statement on the assets and backpack_items tables lives in assets.c.
 *
 * An asset is one row per MD5 (assets.asset_id = assets.md5, both UNIQUE in
 * the upstream schema) pointing at a blob by assets.sha256. The upstream
 * column assets.file_path is NOT NULL; rows this server writes hold
 * "blob:<sha256>" there (ASSET_FILE_PATH_PREFIX), rows adopted from the
 * Python backend keep their absolute upload path until `s4s-admin import`
 * moves the file into the blob store.
 *
 * Rows are created with INSERT … ON CONFLICT DO NOTHING, so any number of
 * simultaneous uploads of the same bytes end in one row; the first upload's
 * type and format stay. Bytes whose MD5 is taken by a row pointing at other
 * bytes (another SHA-256) are a collision: the row is never changed.
 *
 * Backpack items (backpack_items) refer to their body and thumbnail assets
 * by MD5. An item without a thumbnail (the frontend sends "" when it could
 * not render one) stores BP_NO_THUMBNAIL, the MD5 of zero bytes — what the
 * Python backend stored for the same request — and no asset row or blob.
 *
 * The backpack's request body is parsed here too, as pure functions the
 * fuzz targets drive (fuzz/): the JSON item's fields (bp_body_parse) and
 * their base64 text, decoded in pieces (bp_b64_decode).
 */
#ifndef S4S_ASSETS_H
#define S4S_ASSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "blobstore.h"

struct db;
struct cJSON;

#define ASSET_FILE_PATH_PREFIX "blob:"
#define ASSET_TYPE_MAX 50   /* assets.asset_type VARCHAR(50) */
#define ASSET_FORMAT_MAX 10 /* assets.data_format VARCHAR(10) */
/* The MD5 of no bytes: backpack_items.thumbnail of an item without one. */
#define BP_NO_THUMBNAIL "d41d8cd98f00b204e9800998ecf8427e"
#define BP_ID_LEN 37 /* a UUID string and its NUL */

/* An asset about to be recorded: its blob is committed already. */
struct asset_new {
    const char *md5;    /* 32 lowercase hex digits */
    const char *sha256; /* 64 lowercase hex digits */
    const char *type;   /* costume, sound, sprite, script, thumbnail, … */
    const char *format; /* png, svg, wav, … (lowercase) */
    uint64_t size;
    const char *owner_id;
};

/* A stored asset as GET needs it. sha256 is "" for an adopted row whose
 * file is not in the blob store yet. */
struct asset_info {
    const char *type;
    const char *format;
    const char *sha256;
    int64_t size;
};

/* Look an asset up by its MD5 (32 lowercase hex digits; the caller checks).
 * DB_ROW with *out filled from the arena, DB_OK when there is none, or a
 * db error. */
int asset_find(struct db *db, arena_t *a, const char *md5, struct asset_info *out);

/*
 * Inside a write transaction: make sure the row for a->md5 exists and points
 * at a->sha256. *collision is set when the MD5 belongs to other bytes; the
 * row is then left alone and the caller rolls back. An adopted row with no
 * SHA-256 yet is completed with this one (its file was never in the blob
 * store, so nothing is replaced). DB_OK or a db error.
 */
int asset_upsert(struct db *db, const struct asset_new *a, bool *collision);

/* asset_upsert in a transaction of its own. DB_OK (see *collision), DB_BUSY
 * when the database stayed locked, or a db error. */
int asset_store(struct db *db, const struct asset_new *a, bool *collision);

/* A backpack item as stored. body and thumbnail are asset MD5s. */
struct bp_item {
    const char *id;
    const char *type;
    const char *name;
    const char *mime;
    const char *body;
    const char *thumbnail;
    const char *created_at; /* database timestamps */
    const char *updated_at;
};

/* A new item: its assets are recorded in the same transaction as the row
 * (thumb NULL: no thumbnail, BP_NO_THUMBNAIL stored). Fills item->id,
 * created_at and updated_at (arena). DB_OK (*collision set when either
 * asset's MD5 belongs to other bytes: nothing stored), DB_BUSY, or an error. */
int bp_insert(struct db *db, arena_t *a, struct bp_item *item, const char *owner_id,
              const struct asset_new *body, const struct asset_new *thumb, bool *collision);

/* The owner's items, newest first: at most limit from offset, and the total.
 * One read transaction, so the page and the total agree. */
int bp_list(struct db *db, arena_t *a, const char *owner_id, int64_t limit, int64_t offset,
            struct bp_item **items, size_t *n, int64_t *total);

/* Delete the owner's item id. DB_OK with *deleted false when there is no
 * such item of this owner. */
int bp_delete(struct db *db, const char *owner_id, const char *id, bool *deleted);

/* A version 4 UUID string (random_bytes). */
void bp_new_id(char out[BP_ID_LEN]);

/* ---- the POST /api/backpack body ---- */

#define BP_FORMAT_MAX 16

enum bp_parse_status {
    BP_PARSE_OK = 0,
    BP_PARSE_BAD,         /* 400 */
    BP_PARSE_UNSUPPORTED, /* 415: a MIME type no asset format stands for */
};

/* A backpack item request, its fields validated. */
struct bp_body {
    const char *type;
    const char *name;
    const char *mime;           /* lowercased, audio/x-wav as audio/wav */
    const char *body_b64;       /* base64 text (or a data: URL) as sent */
    const char *thumbnail_b64;  /* "" when the frontend had no thumbnail */
    char format[BP_FORMAT_MAX]; /* the body's asset format, from mime */
};

/* Check the JSON item {"type","mime","name","body","thumbnail"}. BP_PARSE_OK,
 * or a status with *msg the message to answer (arena or static). */
int bp_body_parse(arena_t *a, const struct cJSON *j, struct bp_body *out, const char **msg);

enum bp_b64_status {
    BP_B64_OK = 0,
    BP_B64_BAD,   /* not base64: a bad character, data after the padding, a cut quantum */
    BP_B64_NOMEM, /* the decoder could not be allocated */
    BP_B64_SINK,  /* the sink returned non-zero */
};

/* The base64 part of a field: text itself, or what follows the comma of a
 * "data:…;base64," URL. NULL when text is a data: URL but not a base64 one. */
const char *bp_b64_payload(const char *text);
/* Decode base64 text (blanks between characters allowed, nothing but blanks
 * after the padding), handing the bytes to sink in pieces as they come. */
typedef int (*bp_b64_sink)(void *ctx, const unsigned char *data, size_t len);
int bp_b64_decode(const char *text, bp_b64_sink sink, void *ctx);

#endif
