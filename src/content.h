/*
 * content.h — what every upload must be, checked by content on a file path
 * (blob temp files are checked before they are committed): the .sb3 project
 * file (a zip holding a top-level project.json that parses as a JSON object),
 * thumbnails (PNG or JPEG), assets against their declared format (API.md
 * "Content rules"), plus the MIME and type tables of API.md's asset routes.
 *
 * Status → HTTP status, for the handlers:
 *   CONTENT_OK          → go on
 *   CONTENT_ERR_INVALID → 422 (an .sb3 that is not a zip with a parseable project.json)
 *   CONTENT_ERR_TYPE    → 415 (content does not match what was declared / required)
 *   CONTENT_ERR_FORMAT  → 415 (declared asset format not supported)
 *   CONTENT_ERR_EMPTY   → 400 (zero-byte file)
 *   CONTENT_ERR_IO      → 500 (the server could not read its own temp file; logged)
 * Every check writes a user-facing message into msg (when msg is not NULL),
 * suitable for the JSON error body as it is.
 *
 * magic arguments are the worker's libmagic cookie (magic_t), opened with
 * MAGIC_MIME_TYPE after fork; a "; charset=…" suffix is stripped if present.
 *
 * The JSON checks parse with cJSON under a temporary allocation budget
 * (cJSON_InitHooks, restored to the defaults afterwards), so a small hostile
 * document cannot make a worker allocate gigabytes; nothing else in s4s sets
 * cJSON hooks.
 */
#ifndef S4S_CONTENT_H
#define S4S_CONTENT_H

#include <stdbool.h>
#include <stddef.h>

/* Largest project.json (uncompressed) or JSON asset we parse. */
#define CONTENT_JSON_MAX (32u * 1024 * 1024)
/* How much of an SVG is searched for its root <svg> tag. */
#define CONTENT_SVG_HEAD 4096
/* A buffer this size holds any MIME type content_sniff returns untruncated. */
#define CONTENT_MIME_MAX 128

enum content_status {
    CONTENT_OK = 0,
    CONTENT_ERR_INVALID, /* 422 */
    CONTENT_ERR_TYPE,    /* 415 */
    CONTENT_ERR_FORMAT,  /* 415 */
    CONTENT_ERR_EMPTY,   /* 400 */
    CONTENT_ERR_IO,      /* 500 */
};

/*
 * The .sb3 check. Messages (CONTENT_ERR_INVALID):
 *   "Project file is not a zip archive (.sb3)"   (also for an empty file)
 *   "Project file is a damaged zip archive (.sb3)" (project.json cannot be
 *                                                  decompressed: bad data,
 *                                                  CRC, encryption, method)
 *   "Project file has no project.json"            (top level only, exact name)
 *   "project.json is too large"                   (> CONTENT_JSON_MAX, declared or read)
 *   "project.json is not valid JSON"
 *   "project.json is not a JSON object"
 * The zip test is the local-file-header signature (PK\3\4, or PK\5\6 for an
 * empty archive) and then libzip opening it; content_check_sb3_magic also
 * accepts a file libmagic calls a zip.
 */
int content_check_sb3(const char *path, char *msg, size_t msglen);
int content_check_sb3_magic(void *magic, const char *path, char *msg, size_t msglen);

/* libmagic's MIME type of the file into mime_out (parameters stripped).
 * CONTENT_OK or CONTENT_ERR_IO. */
int content_sniff(void *magic_cookie, const char *path, char *mime_out, size_t len);

/*
 * Thumbnail: PNG or JPEG by content. *type_out = "image/png" / "image/jpeg"
 * (static strings). Else CONTENT_ERR_TYPE "Thumbnail must be a PNG or JPEG
 * image"; a zero-byte file is CONTENT_ERR_EMPTY "Empty file" so the caller
 * can treat it as "no thumbnail" where API.md allows that (backpack).
 */
int content_check_image(void *magic, const char *path, const char **type_out, char *msg,
                        size_t msglen);

/*
 * An asset against its declared format (extension, case-insensitive):
 *   png gif bmp jpg/jpeg — libmagic's image type;
 *   svg — image/svg+xml, or text/xml, application/xml, text/plain, text/html
 *         whose first element (after BOM, blanks, <?…?>, comments, DOCTYPE)
 *         within CONTENT_SVG_HEAD bytes is <svg;
 *   wav — audio/x-wav, audio/wav, audio/wave, audio/vnd.wave;
 *   mp3 (and "mpeg", the backpack's literal ext for audio/mpeg) — audio/mpeg,
 *         or a leading ID3v2 header or MPEG audio frame header;
 *   ogg — audio/ogg or application/ogg;
 *   json — parses with cJSON (any JSON value, at most CONTENT_JSON_MAX bytes);
 *   zip, sprite3 — application/zip or a PK\3\4 start.
 * Messages: CONTENT_ERR_FORMAT "Unsupported asset format '<fmt>'" (checked
 * first), CONTENT_ERR_EMPTY "Empty file", CONTENT_ERR_TYPE "Declared format
 * '<fmt>' does not match the content (detected <mime>)" — for json the
 * parenthesis is "(not valid JSON)" or "(JSON too large to check)".
 * <fmt> is echoed with characters outside [A-Za-z0-9._+-] as '?', at most 16.
 */
int content_check_asset(void *magic, const char *path, const char *format, char *msg,
                        size_t msglen);

/*
 * MIME type to serve a stored asset with, by its type and format (API.md's
 * table; case-insensitive): costume svg/png/jpg/jpeg/bmp/gif, sound
 * mp3/wav/ogg (and "mpeg" → audio/mpeg), sprite → application/zip, script →
 * application/json, thumbnail → image/jpeg; else application/octet-stream.
 * Never NULL; static strings.
 */
const char *content_asset_mime(const char *type, const char *format);

/* Asset type for the raw upload route's extension (case-insensitive):
 * costume, sound, script, sprite; NULL when unsupported (→ 415). */
const char *content_type_from_ext(const char *ext);

/*
 * Backpack: the extension of a body from its MIME type, literally as API.md
 * says — the subtype, lowercased, parameters dropped, a "+xml" suffix
 * removed, after normalising audio/x-wav to audio/wav. So image/svg+xml →
 * "svg", image/png → "png", audio/x-wav → "wav", audio/mpeg → "mpeg" (not
 * "mp3"), application/json → "json". false (ext = "") when mime is not
 * type/subtype with a subtype of [a-z0-9.+-] or ext is too small.
 */
bool content_format_for_mime(const char *mime, char *ext, size_t len);

#endif
