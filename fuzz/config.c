/*
 * config.c — fuzz target for the configuration parser (src/config.c):
 * cfg_load on a file holding the input (a memfd, read through its
 * /proc/self/fd path), then the same lines as an environment, then
 * cfg_validate; cfg_parse_size / _duration / _bool on the first line.
 * Properties: a failure always says why; a loaded configuration has
 * DATA_DIR and BASE_PATH set and a BASE_PATH that is empty or starts with
 * '/' without a trailing one.
 *
 * Input: the file's bytes.
 */
#include "config.h"
#include "log.h"
#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

#define MAX_ENV 64

static void check_loaded(struct config *c)
{
    char err[512];
    FUZZ_ASSERT(c->data_dir && c->base_path, "DATA_DIR and BASE_PATH set");
    size_t bl = strlen(c->base_path);
    FUZZ_ASSERT(bl == 0 || (c->base_path[0] == '/' && c->base_path[bl - 1] != '/'),
                "BASE_PATH form");
    err[0] = '\0';
    if (cfg_validate(c, err, sizeof err) < 0)
        FUZZ_ASSERT(err[0], "a refused configuration says why");
    free(cfg_sqlite_path(c));
    cfg_free(c);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_LVL_ERROR); /* the Flask keys' warnings */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[512];
    struct config c;

    int fd = memfd_create("s4s-fuzz-config", MFD_CLOEXEC);
    FUZZ_ASSERT(fd >= 0, "memfd_create");
    FUZZ_ASSERT(size == 0 || write(fd, data, size) == (ssize_t)size, "write");
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    err[0] = '\0';
    if (cfg_load(&c, path, NULL, err, sizeof err) == 0)
        check_loaded(&c);
    else
        FUZZ_ASSERT(err[0], "a refused file says why");
    close(fd);

    /* The lines as environment entries (NUL-free, as execve passes them). */
    struct fuzz_in in = {data, size};
    char *env[MAX_ENV + 1];
    size_t n = 0;
    while (in.n && n < MAX_ENV)
        env[n++] = fuzz_str(&in, '\n');
    env[n] = NULL;
    err[0] = '\0';
    if (cfg_load(&c, NULL, env, err, sizeof err) == 0)
        check_loaded(&c);
    else
        FUZZ_ASSERT(err[0], "a refused environment says why");

    if (n) {
        uint64_t sz;
        long secs;
        bool b;
        (void)cfg_parse_size(env[0], &sz);
        (void)cfg_parse_duration(env[0], &secs);
        (void)cfg_parse_bool(env[0], &b);
    }
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    return 0;
}
