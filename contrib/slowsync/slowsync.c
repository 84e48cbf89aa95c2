/*
 * slowsync.c — an LD_PRELOAD shim that makes fsync() and fdatasync() slow,
 * as on a busy or throttled disk: every call sleeps 0–39 ms first, and
 * SLOWSYNC_PERMIL calls in a thousand (default 5) sleep 1.2 s. For finding
 * timing assumptions in the tests before a slow CI machine does; see
 * run.sh. Not for ASan builds (ASan's runtime must be preloaded first).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void stall(void)
{
    static __thread unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)(size_t)&seed;
    const char *p = getenv("SLOWSYNC_PERMIL");
    unsigned permil = p ? (unsigned)atoi(p) : 5;
    unsigned r = (unsigned)rand_r(&seed) % 1000;
    long ms = r < permil ? 1200 : (long)(r % 40);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0)
        ;
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "fsync");
    stall();
    return real(fd);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "fdatasync");
    stall();
    return real(fd);
}
