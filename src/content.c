/*
 * content.c — owns the content checks every upload goes through before its
 * blob is committed: the .sb3 structure (libzip, then project.json through
 * cJSON), thumbnail and asset types (libmagic, helped by a few signature
 * checks where libmagic is known to be unreliable), and API.md's asset MIME
 * and type tables. Files are checked by path; nothing here writes.
 *
 * Hostile input is the normal case here: every read is capped
 * (CONTENT_JSON_MAX, whatever a zip declares), JSON parsing runs under an
 * allocation budget, and nothing is trusted from a zip's headers except as a
 * reason to refuse early.
 */
#include "content.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <magic.h>
#include <zip.h>

/* cJSON needs roughly 64 bytes per value, so a 32 MiB document of "[0,0,…"
 * could ask for a gigabyte. Real projects need a few times their size;
 * anything beyond this many bytes of allocations counts as too large. */
#define CONTENT_JSON_MEM_BUDGET ((size_t)8 * CONTENT_JSON_MAX)

#define MSG_NOT_ZIP "Project file is not a zip archive (.sb3)"
#define MSG_DAMAGED "Project file is a damaged zip archive (.sb3)"
#define MSG_NO_PROJECT "Project file has no project.json"
#define MSG_TOO_LARGE "project.json is too large"
#define MSG_BAD_JSON "project.json is not valid JSON"
#define MSG_NOT_OBJECT "project.json is not a JSON object"
#define MSG_IO "Could not read the uploaded file"
#define MSG_EMPTY "Empty file"
#define MSG_THUMB "Thumbnail must be a PNG or JPEG image"

/* A static variable rather than the macro, so the unit test can exercise the
 * budget without allocating hundreds of megabytes. */
static size_t content_json_budget = CONTENT_JSON_MEM_BUDGET;

static void content_msg(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void content_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || msglen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

static bool mime_in(const char *mime, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(mime, *list) == 0)
            return true;
    return false;
}

/* ---- reading files ---------------------------------------------------- */

/* An open upload with its size and first bytes: enough for every signature
 * check and the SVG root search, read once. */
struct content_file {
    int fd;
    uint64_t size;
    unsigned char head[CONTENT_SVG_HEAD];
    size_t headlen;
};

static int content_open(const char *path, struct content_file *f, char *msg, size_t msglen)
{
    struct stat st;

    f->fd = -1;
    f->size = 0;
    f->headlen = 0;
    if (!path) {
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    }
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        log_warn("content: open %s", path);
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    }
    /* Uploads are always regular temp files; anything else is our bug. */
    if (fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_warnx("content: %s is not a readable regular file", path);
        close(f->fd);
        f->fd = -1;
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    }
    f->size = (uint64_t)st.st_size;
    while (f->headlen < sizeof f->head) {
        ssize_t n =
            pread(f->fd, f->head + f->headlen, sizeof f->head - f->headlen, (off_t)f->headlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_warn("content: read %s", path);
            close(f->fd);
            f->fd = -1;
            content_msg(msg, msglen, MSG_IO);
            return CONTENT_ERR_IO;
        }
        if (n == 0)
            break;
        f->headlen += (size_t)n;
    }
    return CONTENT_OK;
}

static void content_close(struct content_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

enum slurp_result { SLURP_OK, SLURP_TOO_LARGE, SLURP_READ_ERR, SLURP_NOMEM };

typedef ssize_t (*content_read_fn)(void *src, void *buf, size_t n);

/*
 * Read a stream into a growing, NUL-terminated buffer, never holding more
 * than max + 1 bytes: whatever a zip header declares, a bomb stops here. The
 * buffer starts small so a lying "huge" declaration costs nothing either.
 */
static int content_slurp(content_read_fn rd, void *src, size_t max, char **out, size_t *outlen)
{
    size_t cap = max + 2 < 65536 ? max + 2 : 65536, len = 0;
    char *buf = malloc(cap);

    *out = NULL;
    *outlen = 0;
    if (!buf)
        return SLURP_NOMEM;
    for (;;) {
        if (len + 1 == cap) {
            /* len <= max here, so cap < max + 2 and there is room to grow. */
            size_t ncap = cap > (max + 2) / 2 ? max + 2 : cap * 2;
            char *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                return SLURP_NOMEM;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = rd(src, buf + len, cap - 1 - len);
        if (n < 0) {
            free(buf);
            return SLURP_READ_ERR;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            free(buf);
            return SLURP_TOO_LARGE;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return SLURP_OK;
}

static ssize_t content_read_fd(void *src, void *buf, size_t n)
{
    int fd = *(int *)src;
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

static ssize_t content_read_zip(void *src, void *buf, size_t n)
{
    zip_int64_t r = zip_fread((zip_file_t *)src, buf, (zip_uint64_t)n);
    return r < 0 ? -1 : (ssize_t)r;
}

/* ---- JSON --------------------------------------------------------------- */

enum json_verdict { JSON_VALID, JSON_NOT_OBJECT, JSON_INVALID, JSON_TOO_BIG };

static size_t json_budget_left;
static bool json_budget_hit;

/* cJSON's allocator while we parse: plain malloc, until the budget is spent.
 * cJSON handles NULL from its allocator everywhere and fails the parse. Frees
 * are not credited back: the total is an upper bound, which is all we need. */
static void *content_json_alloc(size_t n)
{
    if (n > json_budget_left) {
        json_budget_hit = true;
        return NULL;
    }
    json_budget_left -= n;
    return malloc(n);
}

/* buf must have a NUL at buf[len] (content_slurp guarantees it). */
static enum json_verdict content_json_verdict(const char *buf, size_t len, bool want_object)
{
    /* A UTF-8 BOM: browsers' TextDecoder drops it before JSON.parse, so
     * Scratch would load the file; cJSON would not. */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    /* cJSON stops at a NUL; "{}\0junk" is not JSON. */
    if (memchr(buf, '\0', len))
        return JSON_INVALID;

    cJSON_Hooks hooks = {.malloc_fn = content_json_alloc, .free_fn = free};
    json_budget_left = content_json_budget;
    json_budget_hit = false;
    cJSON_InitHooks(&hooks);
    /* require_null_terminated: trailing garbage after the value fails. */
    cJSON *root = cJSON_ParseWithOpts(buf, NULL, 1);
    cJSON_InitHooks(NULL);

    if (!root)
        return json_budget_hit ? JSON_TOO_BIG : JSON_INVALID;
    bool is_object = cJSON_IsObject(root);
    cJSON_Delete(root); /* allocated with malloc, so the default free is right */
    return (want_object && !is_object) ? JSON_NOT_OBJECT : JSON_VALID;
}

/* ---- libmagic ------------------------------------------------------------ */

/* libmagic's type without parameters (a cookie opened with MAGIC_MIME would
 * add "; charset=…"). false when libmagic fails. */
static bool content_magic_type(void *magic, const char *path, char *out, size_t len)
{
    if (!magic || !out || len == 0) {
        if (out && len)
            out[0] = '\0';
        return false;
    }
    const char *m = magic_file((magic_t)magic, path);
    if (!m) {
        log_warnx("content: libmagic on %s: %s", path,
                  magic_error((magic_t)magic) ? magic_error((magic_t)magic) : "unknown error");
        out[0] = '\0';
        return false;
    }
    size_t n = strcspn(m, ";");
    while (n > 0 && (m[n - 1] == ' ' || m[n - 1] == '\t'))
        n--;
    if (n >= len)
        n = len - 1;
    memcpy(out, m, n);
    out[n] = '\0';
    return true;
}

int content_sniff(void *magic_cookie, const char *path, char *mime_out, size_t len)
{
    struct stat st;

    if (mime_out && len)
        mime_out[0] = '\0';
    /* A cookie without MAGIC_ERROR describes a missing file instead of
     * failing; ours must fail. */
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_warn("content: stat %s", path ? path : "(null)");
        return CONTENT_ERR_IO;
    }
    return content_magic_type(magic_cookie, path, mime_out, len) ? CONTENT_OK : CONTENT_ERR_IO;
}

/* ---- .sb3 ------------------------------------------------------------------ */

static const char *const zip_mimes[] = {"application/zip", "application/x-zip",
                                        "application/x-zip-compressed", NULL};

static bool zip_signature(const unsigned char *h, size_t n)
{
    return n >= 4 && (memcmp(h, "PK\3\4", 4) == 0 || memcmp(h, "PK\5\6", 4) == 0);
}

/* project.json of an open archive, checked. */
static int content_sb3_project_json(zip_t *za, const char *path, char *msg, size_t msglen)
{
    /* Exact name, so top level only (a folder/project.json does not count). */
    zip_int64_t idx = zip_name_locate(za, "project.json", 0);
    if (idx < 0) {
        content_msg(msg, msglen, MSG_NO_PROJECT);
        return CONTENT_ERR_INVALID;
    }

    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(za, (zip_uint64_t)idx, 0, &st) != 0) {
        content_msg(msg, msglen, MSG_DAMAGED);
        return CONTENT_ERR_INVALID;
    }
    /* The declared size is only a reason to refuse early; the read below is
     * capped whatever it says. */
    if ((st.valid & ZIP_STAT_SIZE) && st.size > CONTENT_JSON_MAX) {
        content_msg(msg, msglen, MSG_TOO_LARGE);
        return CONTENT_ERR_INVALID;
    }

    /* Fails for encrypted entries and unsupported compression methods. */
    zip_file_t *zf = zip_fopen_index(za, (zip_uint64_t)idx, 0);
    if (!zf) {
        content_msg(msg, msglen, MSG_DAMAGED);
        return CONTENT_ERR_INVALID;
    }
    char *buf;
    size_t len;
    int sr = content_slurp(content_read_zip, zf, CONTENT_JSON_MAX, &buf, &len);
    /* zip_fclose reports a CRC mismatch found at the end of the data. */
    int zr = zip_fclose(zf);
    if (sr == SLURP_OK && zr != 0)
        sr = SLURP_READ_ERR;
    switch (sr) {
    case SLURP_OK:
        break;
    case SLURP_TOO_LARGE:
        content_msg(msg, msglen, MSG_TOO_LARGE);
        return CONTENT_ERR_INVALID;
    case SLURP_NOMEM:
        free(buf);
        log_warnx("content: out of memory reading project.json of %s", path);
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    default:
        free(buf);
        content_msg(msg, msglen, MSG_DAMAGED);
        return CONTENT_ERR_INVALID;
    }

    enum json_verdict v = content_json_verdict(buf, len, true);
    free(buf);
    switch (v) {
    case JSON_VALID:
        return CONTENT_OK;
    case JSON_NOT_OBJECT:
        content_msg(msg, msglen, MSG_NOT_OBJECT);
        return CONTENT_ERR_INVALID;
    case JSON_TOO_BIG:
        content_msg(msg, msglen, MSG_TOO_LARGE);
        return CONTENT_ERR_INVALID;
    default:
        content_msg(msg, msglen, MSG_BAD_JSON);
        return CONTENT_ERR_INVALID;
    }
}

int content_check_sb3_magic(void *magic, const char *path, char *msg, size_t msglen)
{
    struct content_file f;
    int rc = content_open(path, &f, msg, msglen);
    if (rc != CONTENT_OK)
        return rc;
    bool zipish = zip_signature(f.head, f.headlen);
    uint64_t size = f.size;
    content_close(&f);

    /* libmagic names a zip after its first entry (jar, OpenDocument, …), so it
     * only ever widens what the signature accepts; libzip decides. */
    if (!zipish && magic && size > 0) {
        char mime[CONTENT_MIME_MAX];
        if (content_magic_type(magic, path, mime, sizeof mime) && mime_in(mime, zip_mimes))
            zipish = true;
    }
    if (!zipish) {
        content_msg(msg, msglen, MSG_NOT_ZIP);
        return CONTENT_ERR_INVALID;
    }

    /* No ZIP_CHECKCONS: Scratch's own loader (JSZip) is lenient about
     * local/central header differences, and project.json's CRC is checked
     * when it is read anyway. */
    int zerr = 0;
    zip_t *za = zip_open(path, ZIP_RDONLY, &zerr);
    if (!za) {
        if (zerr == ZIP_ER_MEMORY || zerr == ZIP_ER_OPEN) {
            log_warnx("content: libzip cannot open %s (error %d)", path, zerr);
            content_msg(msg, msglen, MSG_IO);
            return CONTENT_ERR_IO;
        }
        content_msg(msg, msglen, MSG_NOT_ZIP);
        return CONTENT_ERR_INVALID;
    }
    rc = content_sb3_project_json(za, path, msg, msglen);
    zip_discard(za);
    return rc;
}

int content_check_sb3(const char *path, char *msg, size_t msglen)
{
    return content_check_sb3_magic(NULL, path, msg, msglen);
}

/* ---- thumbnails ------------------------------------------------------------ */

int content_check_image(void *magic, const char *path, const char **type_out, char *msg,
                        size_t msglen)
{
    struct content_file f;
    char mime[CONTENT_MIME_MAX];

    if (type_out)
        *type_out = NULL;
    int rc = content_open(path, &f, msg, msglen);
    if (rc != CONTENT_OK)
        return rc;
    uint64_t size = f.size;
    content_close(&f);
    if (size == 0) {
        content_msg(msg, msglen, MSG_EMPTY);
        return CONTENT_ERR_EMPTY;
    }
    if (!content_magic_type(magic, path, mime, sizeof mime)) {
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    }
    const char *type = NULL;
    if (strcmp(mime, "image/png") == 0)
        type = "image/png";
    else if (strcmp(mime, "image/jpeg") == 0)
        type = "image/jpeg";
    if (!type) {
        content_msg(msg, msglen, MSG_THUMB);
        return CONTENT_ERR_TYPE;
    }
    if (type_out)
        *type_out = type;
    return CONTENT_OK;
}

/* ---- assets ------------------------------------------------------------------ */

enum asset_kind {
    AK_PNG,
    AK_JPEG,
    AK_GIF,
    AK_BMP,
    AK_SVG,
    AK_WAV,
    AK_MP3,
    AK_OGG,
    AK_JSON,
    AK_ZIP
};

struct asset_format {
    const char *ext;
    enum asset_kind kind;
};

/* "mpeg" is what content_format_for_mime makes of audio/mpeg, so a backpack
 * sound's literal ext is checked like mp3. */
static const struct asset_format asset_formats[] = {
    {"png", AK_PNG},   {"jpg", AK_JPEG}, {"jpeg", AK_JPEG},   {"gif", AK_GIF},  {"bmp", AK_BMP},
    {"svg", AK_SVG},   {"wav", AK_WAV},  {"mp3", AK_MP3},     {"mpeg", AK_MP3}, {"ogg", AK_OGG},
    {"json", AK_JSON}, {"zip", AK_ZIP},  {"sprite3", AK_ZIP},
};

static const char *const bmp_mimes[] = {"image/bmp", "image/x-ms-bmp", NULL};
static const char *const wav_mimes[] = {"audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave",
                                        NULL};
static const char *const ogg_mimes[] = {"audio/ogg", "application/ogg", NULL};
/* What libmagic calls an SVG it did not recognise as one: no XML declaration,
 * a comment first, or an HTML-looking start. */
static const char *const svg_text_mimes[] = {"text/xml", "application/xml", "text/plain",
                                             "text/html", NULL};

static bool is_xml_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool starts_with(const unsigned char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && memcmp(p, lit, l) == 0;
}

/* Offset just past the first lit in p[from, n), or 0 when there is none. */
static size_t skip_past(const unsigned char *p, size_t n, size_t from, const char *lit)
{
    size_t l = strlen(lit);
    if (from >= n)
        return 0;
    const unsigned char *hit = memmem(p + from, n - from, lit, l);
    return hit ? (size_t)(hit - p) + l : 0;
}

/*
 * Is the first element of this XML text an <svg>? Skips a UTF-8 BOM, blanks,
 * processing instructions (the XML declaration), comments and a DOCTYPE (with
 * an internal subset, as Illustrator writes). Only the bytes given are looked
 * at; a start that does not fit is not an SVG.
 */
static bool content_svg_root(const unsigned char *p, size_t n)
{
    size_t i = 0;

    if (starts_with(p, n, "\xEF\xBB\xBF"))
        i = 3;
    for (;;) {
        while (i < n && is_xml_space(p[i]))
            i++;
        if (i >= n || p[i] != '<')
            return false;
        if (starts_with(p + i, n - i, "<?")) {
            i = skip_past(p, n, i + 2, "?>");
        } else if (starts_with(p + i, n - i, "<!--")) {
            i = skip_past(p, n, i + 4, "-->");
        } else if (n - i >= 9 && strncasecmp((const char *)p + i, "<!DOCTYPE", 9) == 0) {
            size_t j = i + 9;
            int depth = 0;
            unsigned char quote = 0;
            for (; j < n; j++) {
                unsigned char c = p[j];
                if (quote) {
                    if (c == quote)
                        quote = 0;
                } else if (c == '"' || c == '\'') {
                    quote = c;
                } else if (c == '[') {
                    depth++;
                } else if (c == ']') {
                    if (depth > 0)
                        depth--;
                } else if (c == '>' && depth == 0) {
                    break;
                }
            }
            i = j < n ? j + 1 : 0;
        } else {
            /* The root element: "<svg" and then the end of the name. */
            return n - i > 4 && starts_with(p + i, n - i, "<svg") &&
                   (is_xml_space(p[i + 4]) || p[i + 4] == '>' || p[i + 4] == '/');
        }
        if (i == 0) /* an unterminated construct */
            return false;
    }
}

/*
 * An MP3 start libmagic may not recognise in a tiny file: an ID3v2 tag
 * header, or an MPEG audio frame header (11 sync bits, then no reserved
 * version, layer, bitrate or sample-rate values).
 */
static bool content_mp3_start(const unsigned char *h, size_t n)
{
    if (n >= 10 && memcmp(h, "ID3", 3) == 0 && h[3] >= 2 && h[3] <= 4 && h[4] != 0xFF &&
        ((h[6] | h[7] | h[8] | h[9]) & 0x80) == 0)
        return true;
    if (n >= 3 && h[0] == 0xFF && (h[1] & 0xE0) == 0xE0) {
        unsigned version = (h[1] >> 3) & 3u, layer = (h[1] >> 1) & 3u;
        unsigned bitrate = h[2] >> 4, rate = (h[2] >> 2) & 3u;
        return version != 1 && layer != 0 && bitrate != 15 && rate != 3;
    }
    return false;
}

static bool content_kind_matches(enum asset_kind kind, const char *mime, const unsigned char *head,
                                 size_t headlen)
{
    switch (kind) {
    case AK_PNG:
        return strcmp(mime, "image/png") == 0;
    case AK_JPEG:
        return strcmp(mime, "image/jpeg") == 0;
    case AK_GIF:
        return strcmp(mime, "image/gif") == 0;
    case AK_BMP:
        return mime_in(mime, bmp_mimes);
    case AK_SVG:
        return strcmp(mime, "image/svg+xml") == 0 ||
               (mime_in(mime, svg_text_mimes) && content_svg_root(head, headlen));
    case AK_WAV:
        return mime_in(mime, wav_mimes);
    case AK_MP3:
        return strcmp(mime, "audio/mpeg") == 0 || content_mp3_start(head, headlen);
    case AK_OGG:
        return mime_in(mime, ogg_mimes);
    case AK_ZIP:
        return mime_in(mime, zip_mimes) || starts_with(head, headlen, "PK\3\4");
    case AK_JSON:
        break; /* checked by parsing, not here */
    }
    return false;
}

/* The declared format as echoed in messages: it comes from the client, so
 * only harmless characters, and not too many of them. */
static void content_show_format(const char *format, char *out, size_t outlen)
{
    size_t i = 0, o = 0;
    if (!format)
        format = "";
    for (; i < 16 && format[i] && o + 1 < outlen; i++, o++) {
        unsigned char c = (unsigned char)format[i];
        bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '+' || c == '-';
        out[o] = safe ? (char)c : '?';
    }
    if (format[i] && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static int content_check_json_file(struct content_file *f, const char *path, const char *shown,
                                   char *msg, size_t msglen)
{
    if (f->size > CONTENT_JSON_MAX) {
        content_msg(msg, msglen, "Declared format '%s' does not match the content (%s)", shown,
                    "JSON too large to check");
        return CONTENT_ERR_TYPE;
    }
    char *buf;
    size_t len;
    int sr = content_slurp(content_read_fd, &f->fd, CONTENT_JSON_MAX, &buf, &len);
    if (sr == SLURP_TOO_LARGE) { /* grew after fstat */
        content_msg(msg, msglen, "Declared format '%s' does not match the content (%s)", shown,
                    "JSON too large to check");
        return CONTENT_ERR_TYPE;
    }
    if (sr != SLURP_OK) {
        if (sr == SLURP_NOMEM)
            log_warnx("content: out of memory reading %s", path);
        else
            log_warn("content: read %s", path);
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    }
    enum json_verdict v = content_json_verdict(buf, len, false);
    free(buf);
    if (v == JSON_VALID)
        return CONTENT_OK;
    content_msg(msg, msglen, "Declared format '%s' does not match the content (%s)", shown,
                v == JSON_TOO_BIG ? "JSON too large to check" : "not valid JSON");
    return CONTENT_ERR_TYPE;
}

int content_check_asset(void *magic, const char *path, const char *format, char *msg, size_t msglen)
{
    char shown[24];
    const enum asset_kind *kind = NULL;

    content_show_format(format, shown, sizeof shown);
    for (size_t i = 0; format && i < ARRAY_LEN(asset_formats); i++)
        if (strcasecmp(format, asset_formats[i].ext) == 0) {
            kind = &asset_formats[i].kind;
            break;
        }
    if (!kind) {
        content_msg(msg, msglen, "Unsupported asset format '%s'", shown);
        return CONTENT_ERR_FORMAT;
    }

    struct content_file f;
    int rc = content_open(path, &f, msg, msglen);
    if (rc != CONTENT_OK)
        return rc;
    if (f.size == 0) {
        content_close(&f);
        content_msg(msg, msglen, MSG_EMPTY);
        return CONTENT_ERR_EMPTY;
    }
    if (*kind == AK_JSON) {
        rc = content_check_json_file(&f, path, shown, msg, msglen);
        content_close(&f);
        return rc;
    }
    content_close(&f); /* the head is all the signature checks need */

    char mime[CONTENT_MIME_MAX];
    if (!content_magic_type(magic, path, mime, sizeof mime)) {
        content_msg(msg, msglen, MSG_IO);
        return CONTENT_ERR_IO;
    }
    if (!content_kind_matches(*kind, mime, f.head, f.headlen)) {
        content_msg(msg, msglen, "Declared format '%s' does not match the content (detected %s)",
                    shown, mime);
        return CONTENT_ERR_TYPE;
    }
    return CONTENT_OK;
}

/* ---- MIME and type tables (API.md "Assets") ------------------------------------ */

static const struct {
    const char *type;
    const char *format; /* NULL: any format */
    const char *mime;
} asset_mimes[] = {
    {"costume", "svg", "image/svg+xml"},
    {"costume", "png", "image/png"},
    {"costume", "jpg", "image/jpeg"},
    {"costume", "jpeg", "image/jpeg"},
    {"costume", "bmp", "image/bmp"},
    {"costume", "gif", "image/gif"},
    {"sound", "mp3", "audio/mpeg"},
    {"sound", "mpeg", "audio/mpeg"}, /* a backpack sound's literal ext */
    {"sound", "wav", "audio/wav"},
    {"sound", "ogg", "audio/ogg"},
    {"sprite", NULL, "application/zip"},
    {"script", NULL, "application/json"},
    {"thumbnail", NULL, "image/jpeg"},
};

const char *content_asset_mime(const char *type, const char *format)
{
    if (!type)
        return "application/octet-stream";
    for (size_t i = 0; i < ARRAY_LEN(asset_mimes); i++) {
        if (strcasecmp(type, asset_mimes[i].type) != 0)
            continue;
        if (!asset_mimes[i].format || (format && strcasecmp(format, asset_mimes[i].format) == 0))
            return asset_mimes[i].mime;
    }
    return "application/octet-stream";
}

static const struct {
    const char *ext;
    const char *type;
} ext_types[] = {
    {"svg", "costume"}, {"png", "costume"}, {"jpg", "costume"}, {"jpeg", "costume"},
    {"bmp", "costume"}, {"gif", "costume"}, {"wav", "sound"},   {"mp3", "sound"},
    {"ogg", "sound"},   {"json", "script"}, {"zip", "sprite"},  {"sprite3", "sprite"},
};

const char *content_type_from_ext(const char *ext)
{
    if (!ext)
        return NULL;
    for (size_t i = 0; i < ARRAY_LEN(ext_types); i++)
        if (strcasecmp(ext, ext_types[i].ext) == 0)
            return ext_types[i].type;
    return NULL;
}

bool content_format_for_mime(const char *mime, char *ext, size_t len)
{
    char norm[CONTENT_MIME_MAX];
    size_t n = 0;

    if (!ext || len == 0)
        return false;
    ext[0] = '\0';
    if (!mime)
        return false;
    while (*mime == ' ' || *mime == '\t')
        mime++;
    /* Lowercase, up to parameters or trailing blanks. */
    for (; mime[n] && mime[n] != ';' && mime[n] != ' ' && mime[n] != '\t'; n++) {
        if (n + 1 >= sizeof norm)
            return false;
        char c = mime[n];
        norm[n] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    norm[n] = '\0';
    if (strcmp(norm, "audio/x-wav") == 0) /* API.md: stored as audio/wav */
        strcpy(norm, "audio/wav");

    char *slash = strchr(norm, '/');
    if (!slash || slash == norm)
        return false;
    char *sub = slash + 1;
    size_t sublen = strlen(sub);
    if (sublen > 4 && strcmp(sub + sublen - 4, "+xml") == 0)
        sub[sublen -= 4] = '\0';
    if (sublen == 0 || sublen >= len)
        return false;
    /* A letter or digit first, so the result is never "." or "..". */
    if (!((sub[0] >= 'a' && sub[0] <= 'z') || (sub[0] >= '0' && sub[0] <= '9')))
        return false;
    /* It becomes part of a URL and a stored name: nothing but these. */
    for (size_t i = 0; i < sublen; i++) {
        char c = sub[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-'))
            return false;
    }
    memcpy(ext, sub, sublen + 1);
    return true;
}
