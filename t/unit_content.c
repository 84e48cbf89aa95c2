/*
 * unit_content.c — the upload content checks on real files made here: .sb3
 * archives built with libzip (valid, broken, hostile: lying sizes, a bomb
 * past the cap, deep nesting, a spent JSON allocation budget), minimal but
 * genuine images and sounds, SVGs as Scratch and editors write them, and the
 * MIME / type tables of API.md.
 */
#include "../src/content.c"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

static char t_dir[] = "/tmp/unit_content.XXXXXX";
static char *t_made[128];
static size_t t_nmade;

/* Remember a path for the cleanup at the end. */
static const char *t_keep(char *path)
{
    if (t_nmade < ARRAY_LEN(t_made))
        t_made[t_nmade++] = path;
    return path;
}

static const char *t_file(const char *name, const void *data, size_t len)
{
    char *path = xasprintf("%s/%s", t_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write_all(fd, data, len) != 0) {
        perror(path);
        exit(2);
    }
    close(fd);
    return t_keep(path);
}

static const char *t_text(const char *name, const char *text)
{
    return t_file(name, text, strlen(text));
}

/* The whole file, malloc'd. */
static unsigned char *t_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(path);
        exit(2);
    }
    unsigned char *buf = xmalloc((size_t)st.st_size + 1);
    ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
    close(fd);
    if (n != st.st_size) {
        perror(path);
        exit(2);
    }
    *len = (size_t)n;
    return buf;
}

struct t_entry {
    const char *name;
    const void *data;
    size_t len; /* 0: strlen(data) */
};

/* A zip of the given entries; store: no compression (so tests can find and
 * change the bytes). */
static const char *t_zip(const char *name, const struct t_entry *e, size_t n, bool store)
{
    char *path = xasprintf("%s/%s", t_dir, name);
    int err = 0;
    zip_t *za = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
    if (!za) {
        fprintf(stderr, "zip_open %s: %d\n", path, err);
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = e[i].len ? e[i].len : strlen(e[i].data);
        zip_source_t *src = zip_source_buffer(za, e[i].data, len, 0);
        zip_int64_t idx = src ? zip_file_add(za, e[i].name, src, ZIP_FL_ENC_UTF_8) : -1;
        if (idx < 0) {
            fprintf(stderr, "zip_file_add %s: %s\n", e[i].name, zip_strerror(za));
            exit(2);
        }
        zip_set_file_compression(za, (zip_uint64_t)idx, store ? ZIP_CM_STORE : ZIP_CM_DEFLATE, 0);
    }
    if (zip_close(za) != 0) {
        fprintf(stderr, "zip_close %s: %s\n", path, zip_strerror(za));
        exit(2);
    }
    return t_keep(path);
}

static void t_put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* A copy of a one-entry zip whose local and central headers declare another
 * uncompressed size: what a hostile client can send. */
static const char *t_zip_lying(const char *name, const char *from, uint32_t usize)
{
    size_t len;
    unsigned char *z = t_slurp(from, &len);
    if (len < 30 || memcmp(z, "PK\3\4", 4) != 0) {
        fprintf(stderr, "%s: no local header\n", from);
        exit(2);
    }
    t_put_le32(z + 22, usize);
    unsigned char *cd = memmem(z, len, "PK\1\2", 4);
    if (!cd || (size_t)(cd - z) + 28 > len) {
        fprintf(stderr, "%s: no central header\n", from);
        exit(2);
    }
    t_put_le32(cd + 24, usize);
    const char *path = t_file(name, z, len);
    free(z);
    return path;
}

/* A copy with one byte of the first entry's data flipped (stored entries). */
static const char *t_zip_flip(const char *name, const char *from)
{
    size_t len;
    unsigned char *z = t_slurp(from, &len);
    size_t data = 30 + (size_t)(z[26] | z[27] << 8) + (size_t)(z[28] | z[29] << 8);
    z[data + 2] ^= 0x20;
    const char *path = t_file(name, z, len);
    free(z);
    return path;
}

/* CRC-32 (IEEE, reflected), bit by bit: only a few tiny PNG chunks need it. */
static uint32_t t_crc32(const unsigned char *p, size_t n, uint32_t crc)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static size_t t_png_chunk(unsigned char *out, const char *type, const unsigned char *data,
                          uint32_t len)
{
    out[0] = (unsigned char)(len >> 24);
    out[1] = (unsigned char)(len >> 16);
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    memcpy(out + 4, type, 4);
    if (len)
        memcpy(out + 8, data, len);
    uint32_t crc = t_crc32(out + 4, 4 + (size_t)len, 0);
    out[8 + len] = (unsigned char)(crc >> 24);
    out[9 + len] = (unsigned char)(crc >> 16);
    out[10 + len] = (unsigned char)(crc >> 8);
    out[11 + len] = (unsigned char)crc;
    return 12 + (size_t)len;
}

/* A valid 1×1 8-bit greyscale PNG: signature, IHDR, IDAT holding a zlib
 * stream with one stored deflate block (filter byte 0, pixel 0), IEND. */
static size_t t_png(unsigned char *out)
{
    static const unsigned char ihdr[13] = {0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0};
    /* zlib header 78 01; stored final block LEN=2 NLEN=~2; data 00 00;
     * Adler-32 of two zero bytes = 0x00020001. */
    static const unsigned char idat[] = {0x78, 0x01, 0x01, 0x02, 0x00, 0xFD, 0xFF,
                                         0x00, 0x00, 0x00, 0x02, 0x00, 0x01};
    size_t n = 8;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    n += t_png_chunk(out + n, "IHDR", ihdr, sizeof ihdr);
    n += t_png_chunk(out + n, "IDAT", idat, sizeof idat);
    n += t_png_chunk(out + n, "IEND", NULL, 0);
    return n;
}

/* SOI, an APP0 JFIF segment, EOI: libmagic needs only FFD8 FF. */
static const unsigned char t_jpeg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',  'F',
                                       'I',  'F',  0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
                                       0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9};

/* A whole 1×1 GIF89a. */
static const unsigned char t_gif[] = {
    'G',  'I',  'F',  '8',  '9',  'a',  0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B};

static void t_le16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

/* A 1×1 24-bit BMP: file header, BITMAPINFOHEADER, one padded row. */
static size_t t_bmp(unsigned char *b)
{
    memset(b, 0, 58);
    b[0] = 'B';
    b[1] = 'M';
    t_put_le32(b + 2, 58);
    t_put_le32(b + 10, 54);
    t_put_le32(b + 14, 40);
    t_put_le32(b + 18, 1);
    t_put_le32(b + 22, 1);
    t_le16(b + 26, 1);
    t_le16(b + 28, 24);
    t_put_le32(b + 34, 4);
    t_put_le32(b + 38, 2835);
    t_put_le32(b + 42, 2835);
    b[56] = 0xFF;
    return 58;
}

/* RIFF/WAVE, PCM mono 8 kHz 16-bit, four samples. */
static size_t t_wav(unsigned char *b)
{
    memset(b, 0, 52);
    memcpy(b, "RIFF", 4);
    t_put_le32(b + 4, 44);
    memcpy(b + 8, "WAVEfmt ", 8);
    t_put_le32(b + 16, 16);
    t_le16(b + 20, 1);
    t_le16(b + 22, 1);
    t_put_le32(b + 24, 8000);
    t_put_le32(b + 28, 16000);
    t_le16(b + 32, 2);
    t_le16(b + 34, 16);
    memcpy(b + 36, "data", 4);
    t_put_le32(b + 40, 8);
    b[44] = 0x10;
    b[46] = 0xF0;
    return 52;
}

/* The first Ogg page of a Vorbis stream: page header, one 30-byte segment
 * holding the identification header. */
static size_t t_ogg(unsigned char *b)
{
    memset(b, 0, 58);
    memcpy(b, "OggS", 4);
    b[5] = 0x02;  /* beginning of stream */
    b[14] = 0x01; /* serial */
    b[26] = 1;    /* one segment */
    b[27] = 30;
    memcpy(b + 28, "\x01vorbis", 7);
    b[39] = 1; /* channels */
    t_put_le32(b + 40, 44100);
    b[56] = 0xB8; /* block sizes */
    b[57] = 0x01; /* framing */
    return 58;
}

static magic_t t_magic(void)
{
    magic_t mg = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!mg || magic_load(mg, NULL) != 0) {
        printf("Bail out! libmagic: %s\n", mg ? magic_error(mg) : "magic_open failed");
        exit(1);
    }
    return mg;
}

#define PROJECT_JSON "{\"targets\":[],\"meta\":{\"semver\":\"3.0.0\"}}"

/* Returns the valid .sb3, for the sprite3 asset checks. */
static const char *test_sb3(magic_t mg)
{
    char msg[256];
    const struct t_entry valid[] = {{"project.json", PROJECT_JSON, 0},
                                    {"cd21514d0531fdffb22204e0ec5ed84a.svg", "<svg/>", 0}};
    const char *ok_sb3 = t_zip("valid.sb3", valid, 2, false);
    const char *stored = t_zip("stored.sb3", valid, 2, true);

    msg[0] = '\0';
    is_int(content_check_sb3(ok_sb3, msg, sizeof msg), CONTENT_OK, "sb3: valid project");
    is_str(msg, "", "sb3: no message when valid");
    is_int(content_check_sb3_magic(mg, ok_sb3, msg, sizeof msg), CONTENT_OK,
           "sb3: valid project, libmagic too");
    is_int(content_check_sb3(stored, msg, sizeof msg), CONTENT_OK, "sb3: stored entries");

    const struct t_entry noproj[] = {{"sprite.json", "{}", 0}};
    is_int(content_check_sb3(t_zip("noproj.sb3", noproj, 1, false), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: no project.json");
    is_str(msg, "Project file has no project.json", "sb3: no project.json message");

    const struct t_entry sub[] = {{"Project/project.json", PROJECT_JSON, 0}};
    is_int(content_check_sb3(t_zip("sub.sb3", sub, 1, false), msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: project.json only in a folder");
    is_str(msg, "Project file has no project.json", "sb3: folder message");

    const struct t_entry badjson[] = {{"project.json", "{not json", 0}};
    is_int(content_check_sb3(t_zip("badjson.sb3", badjson, 1, false), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: project.json not JSON");
    is_str(msg, "project.json is not valid JSON", "sb3: bad JSON message");

    const struct t_entry trailing[] = {{"project.json", "{} x", 0}};
    is_int(content_check_sb3(t_zip("trailing.sb3", trailing, 1, false), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: trailing garbage after the JSON");
    is_str(msg, "project.json is not valid JSON", "sb3: trailing garbage message");

    const struct t_entry nul[] = {{"project.json", "{}\0{", 4}};
    is_int(content_check_sb3(t_zip("nul.sb3", nul, 1, false), msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: NUL byte after the JSON");

    const struct t_entry array[] = {{"project.json", "[1,2]", 0}};
    is_int(content_check_sb3(t_zip("array.sb3", array, 1, false), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: project.json an array");
    is_str(msg, "project.json is not a JSON object", "sb3: not an object message");

    const struct t_entry bom[] = {{"project.json", "\xEF\xBB\xBF" PROJECT_JSON "\n", 0}};
    is_int(content_check_sb3(t_zip("bom.sb3", bom, 1, false), msg, sizeof msg), CONTENT_OK,
           "sb3: UTF-8 BOM before the JSON accepted");

    const char *text = t_text("notzip.sb3", "just some text, not a zip\n");
    is_int(content_check_sb3(text, msg, sizeof msg), CONTENT_ERR_INVALID, "sb3: not a zip");
    is_str(msg, "Project file is not a zip archive (.sb3)", "sb3: not a zip message");
    is_int(content_check_sb3_magic(mg, text, msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: not a zip (libmagic)");

    const char *empty = t_file("empty.sb3", "", 0);
    is_int(content_check_sb3(empty, msg, sizeof msg), CONTENT_ERR_INVALID, "sb3: empty file");
    is_str(msg, "Project file is not a zip archive (.sb3)", "sb3: empty file message");
    is_int(content_check_sb3_magic(mg, empty, msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: empty file (libmagic)");

    unsigned char junk[64] = "PK\3\4";
    is_int(content_check_sb3(t_file("pkjunk.sb3", junk, sizeof junk), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: PK signature then junk");
    is_str(msg, "Project file is not a zip archive (.sb3)", "sb3: PK junk message");

    /* An empty archive is only the end-of-central-directory record. */
    unsigned char eocd[22] = "PK\5\6";
    is_int(content_check_sb3(t_file("emptyzip.sb3", eocd, sizeof eocd), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: empty archive");
    is_str(msg, "Project file has no project.json", "sb3: empty archive message");

    size_t zlen;
    unsigned char *z = t_slurp(ok_sb3, &zlen);
    is_int(content_check_sb3(t_file("truncated.sb3", z, zlen / 2), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: truncated archive");
    is_str(msg, "Project file is not a zip archive (.sb3)", "sb3: truncated message");
    free(z);

    const struct t_entry one_stored[] = {{"project.json", PROJECT_JSON, 0}};
    const char *flip = t_zip_flip("crc.sb3", t_zip("one.sb3", one_stored, 1, true));
    is_int(content_check_sb3(flip, msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: project.json fails its CRC");
    is_str(msg, "Project file is a damaged zip archive (.sb3)", "sb3: damaged message");

    /* Declared far beyond the cap: refused before anything is read. */
    const char *huge =
        t_zip_lying("declared.sb3", t_zip("small.sb3", one_stored, 1, false), 0x7FFFFFF0u);
    is_int(content_check_sb3(huge, msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: declared size over the cap");
    is_str(msg, "project.json is too large", "sb3: declared too large message");

    /* A bomb: 33 MiB of JSON compressing to a few KiB; honestly declared,
     * and declared as 20 bytes (the read must still stop at the cap). */
    size_t big = CONTENT_JSON_MAX + 1024 * 1024;
    char *bomb = xmalloc(big);
    memset(bomb, ' ', big);
    bomb[0] = '{';
    bomb[big - 1] = '}';
    const struct t_entry bomb_e[] = {{"project.json", bomb, big}};
    const char *honest = t_zip("bomb.sb3", bomb_e, 1, false);
    free(bomb);
    is_int(content_check_sb3(honest, msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: zip bomb, honest size");
    is_str(msg, "project.json is too large", "sb3: zip bomb message");
    const char *liar = t_zip_lying("bomb-liar.sb3", honest, 20);
    msg[0] = '\0';
    int rc = content_check_sb3(liar, msg, sizeof msg);
    is_int(rc, CONTENT_ERR_INVALID, "sb3: zip bomb declaring 20 bytes");
    ok(strcmp(msg, "project.json is too large") == 0 ||
           strcmp(msg, "Project file is a damaged zip archive (.sb3)") == 0,
       "sb3: lying bomb stopped (%s)", msg);

    /* Nesting beyond cJSON's limit fails cleanly, no deep recursion. */
    char *deep = xmalloc(20001);
    memset(deep, '[', 10000);
    memset(deep + 10000, ']', 10000);
    deep[20000] = '\0';
    char *deepobj = xasprintf("{\"a\":%s}", deep);
    const struct t_entry deep_e[] = {{"project.json", deepobj, 0}};
    is_int(content_check_sb3(t_zip("deep.sb3", deep_e, 1, false), msg, sizeof msg),
           CONTENT_ERR_INVALID, "sb3: 10000 nested arrays");
    is_str(msg, "project.json is not valid JSON", "sb3: deep nesting message");
    free(deep);
    free(deepobj);

    /* The allocation budget: a document needing more than it is too large. */
    size_t many = 200000;
    char *arr = xmalloc(many * 2 + 16);
    size_t n = 0;
    n += (size_t)sprintf(arr, "{\"a\":[");
    for (size_t i = 0; i < many; i++) {
        arr[n++] = '0';
        arr[n++] = ',';
    }
    arr[n - 1] = ']';
    arr[n++] = '}';
    arr[n] = '\0';
    const struct t_entry many_e[] = {{"project.json", arr, 0}};
    const char *manyzip = t_zip("many.sb3", many_e, 1, false);
    is_int(content_check_sb3(manyzip, msg, sizeof msg), CONTENT_OK,
           "sb3: 200000 values within the default budget");
    content_json_budget = 1024 * 1024;
    is_int(content_check_sb3(manyzip, msg, sizeof msg), CONTENT_ERR_INVALID,
           "sb3: 200000 values over a 1 MiB budget");
    is_str(msg, "project.json is too large", "sb3: budget message");
    is_int(content_json_verdict(arr, n, true), JSON_TOO_BIG, "json: budget spent");
    content_json_budget = CONTENT_JSON_MEM_BUDGET;
    is_int(content_json_verdict(arr, n, true), JSON_VALID, "json: budget restored");
    free(arr);
    /* Default hooks are back: cJSON allocates and frees normally. */
    cJSON *j = cJSON_Parse("{\"x\":[1,2,3]}");
    char *printed = j ? cJSON_PrintUnformatted(j) : NULL;
    is_str(printed, "{\"x\":[1,2,3]}", "json: cJSON hooks restored");
    free(printed);
    cJSON_Delete(j);

    char *missing = xasprintf("%s/nope.sb3", t_dir);
    is_int(content_check_sb3(missing, msg, sizeof msg), CONTENT_ERR_IO, "sb3: missing file");
    is_str(msg, "Could not read the uploaded file", "sb3: I/O message");
    free(missing);
    is_int(content_check_sb3(t_dir, msg, sizeof msg), CONTENT_ERR_IO, "sb3: a directory");
    is_int(content_check_sb3(text, NULL, 0), CONTENT_ERR_INVALID, "sb3: NULL msg is fine");
    char tiny[8];
    content_check_sb3(text, tiny, sizeof tiny);
    is_str(tiny, "Project", "sb3: message truncated to the buffer");
    return ok_sb3;
}

static void test_slurp(void)
{
    const char *ten = t_text("ten", "0123456789");
    int fd = open(ten, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t len;
    is_int(content_slurp(content_read_fd, &fd, 10, &buf, &len), SLURP_OK, "slurp: exactly max");
    ok(buf && len == 10 && buf[10] == '\0', "slurp: all bytes, NUL-terminated");
    free(buf);
    lseek(fd, 0, SEEK_SET);
    is_int(content_slurp(content_read_fd, &fd, 9, &buf, &len), SLURP_TOO_LARGE,
           "slurp: one byte over max");
    ok(buf == NULL, "slurp: nothing returned when too large");
    lseek(fd, 0, SEEK_SET);
    is_int(content_slurp(content_read_fd, &fd, 0, &buf, &len), SLURP_TOO_LARGE, "slurp: max 0");
    close(fd);
}

static void test_sniff_image(magic_t mg, const char *png, const char *jpg, const char *gif,
                             const char *text)
{
    char mime[CONTENT_MIME_MAX], msg[256];
    const char *type = "unset";

    is_int(content_sniff(mg, png, mime, sizeof mime), CONTENT_OK, "sniff: png");
    is_str(mime, "image/png", "sniff: image/png");
    is_int(content_sniff(mg, text, mime, sizeof mime), CONTENT_OK, "sniff: text");
    is_str(mime, "text/plain", "sniff: text/plain");
    char small[6];
    content_sniff(mg, png, small, sizeof small);
    is_str(small, "image", "sniff: truncated to the buffer");
    char *missing = xasprintf("%s/nope.png", t_dir);
    is_int(content_sniff(mg, missing, mime, sizeof mime), CONTENT_ERR_IO, "sniff: missing file");
    is_int(content_sniff(NULL, png, mime, sizeof mime), CONTENT_ERR_IO, "sniff: no cookie");

    /* A cookie with MAGIC_MIME adds "; charset=binary": stripped. */
    magic_t full = magic_open(MAGIC_MIME | MAGIC_ERROR);
    if (full && magic_load(full, NULL) == 0) {
        content_sniff(full, png, mime, sizeof mime);
        is_str(mime, "image/png", "sniff: charset parameter stripped");
    } else {
        ok(0, "sniff: MAGIC_MIME cookie");
    }
    if (full)
        magic_close(full);

    is_int(content_check_image(mg, png, &type, msg, sizeof msg), CONTENT_OK, "image: png");
    is_str(type, "image/png", "image: type image/png");
    is_int(content_check_image(mg, jpg, &type, msg, sizeof msg), CONTENT_OK, "image: jpeg");
    is_str(type, "image/jpeg", "image: type image/jpeg");
    is_int(content_check_image(mg, gif, &type, msg, sizeof msg), CONTENT_ERR_TYPE,
           "image: gif refused");
    is_str(msg, "Thumbnail must be a PNG or JPEG image", "image: refusal message");
    ok(type == NULL, "image: no type on refusal");
    is_int(content_check_image(mg, text, &type, msg, sizeof msg), CONTENT_ERR_TYPE,
           "image: text refused");
    is_int(content_check_image(mg, t_file("empty.png", "", 0), &type, msg, sizeof msg),
           CONTENT_ERR_EMPTY, "image: empty file");
    is_str(msg, "Empty file", "image: empty message");
    is_int(content_check_image(mg, missing, &type, msg, sizeof msg), CONTENT_ERR_IO,
           "image: missing file");
    is_int(content_check_image(mg, png, NULL, NULL, 0), CONTENT_OK, "image: NULL outputs");
    free(missing);
}

/* content_check_asset, expecting rc and (when want is not NULL) msg. */
static void t_asset(magic_t mg, const char *path, const char *format, int want_rc,
                    const char *want_msg, const char *what)
{
    char msg[256] = "";
    is_int(content_check_asset(mg, path, format, msg, sizeof msg), want_rc, "asset: %s", what);
    if (want_msg)
        is_str(msg, want_msg, "asset: %s message", what);
}

static void test_assets(magic_t mg, const char *png, const char *jpg, const char *gif,
                        const char *text, const char *sb3)
{
    unsigned char buf[1024];

    t_asset(mg, png, "png", CONTENT_OK, NULL, "png");
    t_asset(mg, png, "PNG", CONTENT_OK, NULL, "png declared PNG");
    t_asset(mg, jpg, "jpg", CONTENT_OK, NULL, "jpg");
    t_asset(mg, jpg, "jpeg", CONTENT_OK, NULL, "jpeg");
    t_asset(mg, gif, "gif", CONTENT_OK, NULL, "gif");
    t_asset(mg, t_file("a.bmp", buf, t_bmp(buf)), "bmp", CONTENT_OK, NULL, "bmp");
    t_asset(mg, text, "png", CONTENT_ERR_TYPE,
            "Declared format 'png' does not match the content (detected text/plain)",
            "text pretending to be png");
    t_asset(mg, png, "jpg", CONTENT_ERR_TYPE,
            "Declared format 'jpg' does not match the content (detected image/png)",
            "png declared jpg");
    t_asset(mg, gif, "png", CONTENT_ERR_TYPE, NULL, "gif declared png");

    /* SVG as Scratch writes it (no declaration), with one, after a comment
     * (libmagic: text/plain), Illustrator-style with a DOCTYPE. */
    t_asset(mg,
            t_text("plain.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                                "width=\"2\" height=\"2\"><rect/></svg>\n"),
            "svg", CONTENT_OK, NULL, "svg without XML declaration");
    t_asset(mg,
            t_text("decl.svg", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                               "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>\n"),
            "svg", CONTENT_OK, NULL, "svg with XML declaration");
    const char *comment_svg = t_text(
        "comment.svg", "<!-- Created with Inkscape -->\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                       "version=\"1.1\" width=\"1\" height=\"1\"><rect/></svg>\n");
    char mime[CONTENT_MIME_MAX];
    content_sniff(mg, comment_svg, mime, sizeof mime);
    ok(strcmp(mime, "image/svg+xml") != 0, "svg: libmagic misses a comment-first SVG (%s)", mime);
    t_asset(mg, comment_svg, "svg", CONTENT_OK, NULL, "svg after a comment");
    t_asset(mg,
            t_text("doctype.svg", "\xEF\xBB\xBF<?xml version=\"1.0\"?>\n<!-- Generator: x -->\n"
                                  "<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" "
                                  "\"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd\" [\n"
                                  "  <!ENTITY ns \"http://ns.adobe.com/x>\">\n]>\n"
                                  "<svg version=\"1.1\" id=\"a\"></svg>\n"),
            "svg", CONTENT_OK, NULL, "svg with BOM, comment, DOCTYPE and subset");
    t_asset(mg, t_text("page.svg", "<html><body><svg></svg></body></html>\n"), "svg",
            CONTENT_ERR_TYPE,
            "Declared format 'svg' does not match the content (detected text/html)",
            "html declared svg");
    t_asset(mg, t_text("svgfoo.svg", "<!-- x -->\n<svgfoo>hello</svgfoo>\n"), "svg",
            CONTENT_ERR_TYPE, NULL, "<svgfoo> is not <svg");
    t_asset(mg, text, "svg", CONTENT_ERR_TYPE, NULL, "text declared svg");
    t_asset(mg, png, "svg", CONTENT_ERR_TYPE, NULL, "png declared svg");

    size_t wl = t_wav(buf);
    const char *wav = t_file("a.wav", buf, wl);
    t_asset(mg, wav, "wav", CONTENT_OK, NULL, "wav");
    t_asset(mg, wav, "mp3", CONTENT_ERR_TYPE,
            "Declared format 'mp3' does not match the content (detected audio/x-wav)",
            "wav declared mp3");

    /* One 417-byte MPEG-1 layer III frame, 128 kbps, 44.1 kHz. */
    unsigned char frame[417] = {0xFF, 0xFB, 0x90, 0x00};
    const char *mp3 = t_file("a.mp3", frame, sizeof frame);
    t_asset(mg, mp3, "mp3", CONTENT_OK, NULL, "mp3 frame");
    t_asset(mg, mp3, "mpeg", CONTENT_OK, NULL, "mp3 declared mpeg (backpack ext)");
    t_asset(mg, mp3, "wav", CONTENT_ERR_TYPE,
            "Declared format 'wav' does not match the content (detected audio/mpeg)",
            "mp3 declared wav");
    /* Tiny files libmagic does not call audio/mpeg. */
    const unsigned char id3[10] = {'I', 'D', '3', 3, 0, 0, 0, 0, 0, 0};
    const char *id3f = t_file("id3.mp3", id3, sizeof id3);
    content_sniff(mg, id3f, mime, sizeof mime);
    ok(strcmp(mime, "audio/mpeg") != 0, "mp3: libmagic misses a bare ID3 header (%s)", mime);
    t_asset(mg, id3f, "mp3", CONTENT_OK, NULL, "mp3 bare ID3 header");
    const unsigned char freeform[16] = {0xFF, 0xFA, 0x00, 0x00};
    t_asset(mg, t_file("free.mp3", freeform, sizeof freeform), "mp3", CONTENT_OK, NULL,
            "mp3 free-format frame header");

    const char *ogg = t_file("a.ogg", buf, t_ogg(buf));
    t_asset(mg, ogg, "ogg", CONTENT_OK, NULL, "ogg vorbis");
    t_asset(mg, ogg, "mp3", CONTENT_ERR_TYPE, NULL, "ogg declared mp3");

    t_asset(mg, t_text("obj.json", "{\"blocks\":{}}"), "json", CONTENT_OK, NULL, "json object");
    t_asset(mg, t_text("arr.json", " [ {\"opcode\":\"motion_movesteps\"} ]\n"), "json", CONTENT_OK,
            NULL, "json array");
    t_asset(mg, t_text("bad.json", "{\"a\":"), "json", CONTENT_ERR_TYPE,
            "Declared format 'json' does not match the content (not valid JSON)", "bad json");
    t_asset(mg, png, "json", CONTENT_ERR_TYPE, NULL, "png declared json");

    t_asset(mg, sb3, "sprite3", CONTENT_OK, NULL, "sprite3");
    t_asset(mg, sb3, "zip", CONTENT_OK, NULL, "zip");
    t_asset(mg, text, "sprite3", CONTENT_ERR_TYPE,
            "Declared format 'sprite3' does not match the content (detected text/plain)",
            "text declared sprite3");

    const char *empty = t_file("empty.wav", "", 0);
    t_asset(mg, empty, "wav", CONTENT_ERR_EMPTY, "Empty file", "empty wav");
    t_asset(mg, empty, "json", CONTENT_ERR_EMPTY, "Empty file", "empty json");
    t_asset(mg, png, "exe", CONTENT_ERR_FORMAT, "Unsupported asset format 'exe'", "exe");
    t_asset(mg, png, NULL, CONTENT_ERR_FORMAT, "Unsupported asset format ''", "no format");
    t_asset(mg, png, "<b>x", CONTENT_ERR_FORMAT, "Unsupported asset format '?b?x'",
            "format with markup");
    t_asset(mg, png, "abcdefghijklmnopqrstuvwxyz", CONTENT_ERR_FORMAT,
            "Unsupported asset format 'abcdefghijklmnop...'", "long format");
    char *missing = xasprintf("%s/nope.png", t_dir);
    t_asset(mg, missing, "png", CONTENT_ERR_IO, "Could not read the uploaded file", "missing");
    t_asset(mg, missing, "exe", CONTENT_ERR_FORMAT, NULL, "format checked before the file");
    t_asset(NULL, png, "png", CONTENT_ERR_IO, NULL, "no libmagic cookie");
    free(missing);
}

static bool t_svg(const char *s)
{
    return content_svg_root((const unsigned char *)s, strlen(s));
}

static void test_svg_mp3_scanners(void)
{
    ok(t_svg("<svg>"), "svg root: bare");
    ok(t_svg("  \r\n\t<svg\nwidth='1'/>"), "svg root: leading blanks, newline after name");
    ok(t_svg("<svg/>"), "svg root: self-closing");
    ok(t_svg("<?xml version='1.0'?><?xml-stylesheet href='a'?><svg>"), "svg root: two PIs");
    ok(t_svg("<!----><!-- a -- b --><svg>"), "svg root: two comments");
    ok(t_svg("<!doctype svg><svg>"), "svg root: lowercase doctype");
    ok(!t_svg(""), "svg root: empty");
    ok(!t_svg("<svg"), "svg root: name cut off");
    ok(!t_svg("<svgx>"), "svg root: longer name");
    ok(!t_svg("<SVG>"), "svg root: XML is case-sensitive");
    ok(!t_svg("<!-- never closed <svg>"), "svg root: unterminated comment");
    ok(!t_svg("<?xml never closed <svg>"), "svg root: unterminated PI");
    ok(!t_svg("<!DOCTYPE svg [ <svg>"), "svg root: unterminated DOCTYPE");
    ok(!t_svg("hello <svg>"), "svg root: text first");
    ok(!t_svg("<html><svg>"), "svg root: another element first");

    /* A long comment pushes <svg past the searched head. */
    char big[CONTENT_SVG_HEAD + 64];
    memset(big, ' ', sizeof big);
    memcpy(big, "<!--", 4);
    memcpy(big + CONTENT_SVG_HEAD - 8, "--><svg>", 8);
    ok(content_svg_root((const unsigned char *)big, CONTENT_SVG_HEAD), "svg root: at the edge");
    memcpy(big + CONTENT_SVG_HEAD - 8, "    --><svg>", 12);
    ok(!content_svg_root((const unsigned char *)big, CONTENT_SVG_HEAD),
       "svg root: beyond the head");

    const unsigned char f1[] = {0xFF, 0xFB, 0x90};
    const unsigned char aac[] = {0xFF, 0xF1, 0x50}; /* ADTS: layer 00 */
    const unsigned char badrate[] = {0xFF, 0xFB, 0xF0};
    const unsigned char jpeg[] = {0xFF, 0xD8, 0xFF};
    const unsigned char id3bad[10] = {'I', 'D', '3', 3, 0, 0, 0x80, 0, 0, 0};
    ok(content_mp3_start(f1, sizeof f1), "mp3 start: frame header");
    ok(!content_mp3_start(aac, sizeof aac), "mp3 start: AAC ADTS is not MPEG audio");
    ok(!content_mp3_start(badrate, sizeof badrate), "mp3 start: bitrate index 15");
    ok(!content_mp3_start(jpeg, sizeof jpeg), "mp3 start: JPEG");
    ok(!content_mp3_start(id3bad, sizeof id3bad), "mp3 start: ID3 size not syncsafe");
}

static void test_tables(void)
{
    is_str(content_asset_mime("costume", "svg"), "image/svg+xml", "mime: costume svg");
    is_str(content_asset_mime("costume", "png"), "image/png", "mime: costume png");
    is_str(content_asset_mime("costume", "jpg"), "image/jpeg", "mime: costume jpg");
    is_str(content_asset_mime("costume", "JPEG"), "image/jpeg", "mime: costume JPEG");
    is_str(content_asset_mime("costume", "bmp"), "image/bmp", "mime: costume bmp");
    is_str(content_asset_mime("costume", "gif"), "image/gif", "mime: costume gif");
    is_str(content_asset_mime("costume", "wav"), "application/octet-stream",
           "mime: costume wav is by type and format");
    is_str(content_asset_mime("sound", "mp3"), "audio/mpeg", "mime: sound mp3");
    is_str(content_asset_mime("sound", "mpeg"), "audio/mpeg", "mime: sound mpeg");
    is_str(content_asset_mime("sound", "wav"), "audio/wav", "mime: sound wav");
    is_str(content_asset_mime("sound", "ogg"), "audio/ogg", "mime: sound ogg");
    is_str(content_asset_mime("sound", "png"), "application/octet-stream", "mime: sound png");
    is_str(content_asset_mime("sprite", "sprite3"), "application/zip", "mime: sprite");
    is_str(content_asset_mime("sprite", NULL), "application/zip", "mime: sprite, no format");
    is_str(content_asset_mime("script", "json"), "application/json", "mime: script");
    is_str(content_asset_mime("thumbnail", "png"), "image/jpeg", "mime: thumbnail (table)");
    is_str(content_asset_mime("backdrop", "png"), "application/octet-stream", "mime: unknown");
    is_str(content_asset_mime(NULL, "png"), "application/octet-stream", "mime: no type");
    is_str(content_asset_mime("costume", NULL), "application/octet-stream",
           "mime: costume, no format");

    is_str(content_type_from_ext("svg"), "costume", "ext: svg");
    is_str(content_type_from_ext("JPEG"), "costume", "ext: JPEG");
    is_str(content_type_from_ext("gif"), "costume", "ext: gif");
    is_str(content_type_from_ext("wav"), "sound", "ext: wav");
    is_str(content_type_from_ext("ogg"), "sound", "ext: ogg");
    is_str(content_type_from_ext("json"), "script", "ext: json");
    is_str(content_type_from_ext("sprite3"), "sprite", "ext: sprite3");
    is_str(content_type_from_ext("zip"), "sprite", "ext: zip");
    is_str(content_type_from_ext("exe"), NULL, "ext: exe");
    is_str(content_type_from_ext("mpeg"), NULL, "ext: mpeg is not a raw-route ext");
    is_str(content_type_from_ext(""), NULL, "ext: empty");
    is_str(content_type_from_ext(NULL), NULL, "ext: NULL");

    char ext[16];
    ok(content_format_for_mime("image/svg+xml", ext, sizeof ext) && !strcmp(ext, "svg"),
       "for mime: image/svg+xml -> svg");
    ok(content_format_for_mime("image/png", ext, sizeof ext) && !strcmp(ext, "png"),
       "for mime: image/png -> png");
    ok(content_format_for_mime("image/jpeg", ext, sizeof ext) && !strcmp(ext, "jpeg"),
       "for mime: image/jpeg -> jpeg");
    ok(content_format_for_mime("audio/x-wav", ext, sizeof ext) && !strcmp(ext, "wav"),
       "for mime: audio/x-wav -> wav");
    ok(content_format_for_mime("audio/wav", ext, sizeof ext) && !strcmp(ext, "wav"),
       "for mime: audio/wav -> wav");
    ok(content_format_for_mime("audio/mpeg", ext, sizeof ext) && !strcmp(ext, "mpeg"),
       "for mime: audio/mpeg -> mpeg (literal)");
    ok(content_format_for_mime("application/json", ext, sizeof ext) && !strcmp(ext, "json"),
       "for mime: application/json -> json");
    ok(content_format_for_mime(" Image/SVG+XML; charset=utf-8", ext, sizeof ext) &&
           !strcmp(ext, "svg"),
       "for mime: case and parameters");
    ok(!content_format_for_mime("image", ext, sizeof ext) && ext[0] == '\0',
       "for mime: no subtype");
    ok(!content_format_for_mime("image/", ext, sizeof ext), "for mime: empty subtype");
    ok(!content_format_for_mime("/png", ext, sizeof ext), "for mime: empty type");
    ok(!content_format_for_mime("image/../x", ext, sizeof ext), "for mime: a path");
    ok(!content_format_for_mime("image/..", ext, sizeof ext), "for mime: dots");
    ok(!content_format_for_mime("image/+xml", ext, sizeof ext), "for mime: only +xml");
    ok(!content_format_for_mime("image/png", ext, 3), "for mime: buffer too small");
    ok(content_format_for_mime("image/png", ext, 4) && !strcmp(ext, "png"),
       "for mime: buffer just big enough");
    ok(!content_format_for_mime(NULL, ext, sizeof ext), "for mime: NULL");
}

int main(void)
{
    if (!mkdtemp(t_dir)) {
        printf("Bail out! mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    magic_t mg = t_magic();

    unsigned char buf[256];
    const char *png = t_file("a.png", buf, t_png(buf));
    const char *jpg = t_file("a.jpg", t_jpeg, sizeof t_jpeg);
    const char *gif = t_file("a.gif", t_gif, sizeof t_gif);
    const char *text = t_text("text.png", "this is text pretending to be a png\n");

    const char *sb3 = test_sb3(mg);
    test_slurp();
    test_sniff_image(mg, png, jpg, gif, text);
    test_assets(mg, png, jpg, gif, text, sb3);
    test_svg_mp3_scanners();
    test_tables();

    magic_close(mg);
    for (size_t i = 0; i < t_nmade; i++) {
        unlink(t_made[i]);
        free(t_made[i]);
    }
    rmdir(t_dir);
    return tap_done();
}
