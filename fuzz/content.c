/*
 * content.c — fuzz target for the content checks (src/content.c) on
 * uploaded bytes: content_check_sb3 (libzip opening the archive, then
 * project.json decompressed and parsed by cJSON under its allocation
 * budget), content_check_sb3_magic, content_check_image and
 * content_check_asset with each declared format (libmagic, the SVG root
 * scan, MP3 frame sniffing, JSON). Properties: only the documented
 * statuses, a message with every failure, CONTENT_ERR_IO never (the file
 * is there and readable), and the cJSON hooks restored afterwards.
 *
 * Input: <selector byte> <file bytes>
 */
#include "content.h"
#include "log.h"
#include "fuzz.h"

#include <cjson/cJSON.h>
#include <magic.h>
#include <unistd.h>

static const char *const formats[] = {"png", "svg",  "jpg", "jpeg", "bmp", "gif",     "wav",
                                      "mp3", "mpeg", "ogg", "json", "zip", "sprite3", "exe"};
#define NFORMATS (sizeof formats / sizeof formats[0])

static magic_t mg;
static char path[64];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_LVL_ERROR);
    mg = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!mg || magic_load(mg, NULL) != 0) {
        fprintf(stderr, "fuzz content: libmagic: %s\n", mg ? magic_error(mg) : "magic_open");
        exit(1);
    }
    size_t bytes = 1024 * 1024; /* as the workers bound it */
    magic_setparam(mg, MAGIC_PARAM_BYTES_MAX, &bytes);
    snprintf(path, sizeof path, "%s/s4s-fuzz-content-%ld",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    atexit(remove_file);
    return 0;
}

static void check(int rc, const char *msg)
{
    FUZZ_ASSERT(rc >= CONTENT_OK && rc <= CONTENT_ERR_EMPTY, "status (and never an I/O error)");
    if (rc != CONTENT_OK)
        FUZZ_ASSERT(msg[0], "a failure says why");
    /* The JSON checks set cJSON hooks for their budget: they must be gone. */
    cJSON *probe = cJSON_Parse("[1,2,3]");
    FUZZ_ASSERT(probe != NULL, "cJSON works after a check");
    cJSON_Delete(probe);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t sel = fuzz_byte(&in);
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f && (in.n == 0 || fwrite(in.p, 1, in.n, f) == in.n) && fclose(f) == 0,
                "writing the temp file");
    char msg[256];
    const char *type = NULL;
    msg[0] = '\0';
    switch (sel % 4) {
    case 0:
        check(content_check_sb3(path, msg, sizeof msg), msg);
        break;
    case 1:
        check(content_check_sb3_magic(mg, path, msg, sizeof msg), msg);
        break;
    case 2: {
        int rc = content_check_image(mg, path, &type, msg, sizeof msg);
        check(rc, msg);
        if (rc == CONTENT_OK)
            FUZZ_ASSERT(strcmp(type, "image/png") == 0 || strcmp(type, "image/jpeg") == 0,
                        "thumbnail type");
        break;
    }
    default:
        check(content_check_asset(mg, path, formats[(sel >> 2) % NFORMATS], msg, sizeof msg), msg);
        break;
    }
    return 0;
}
