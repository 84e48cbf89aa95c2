/*
 * router.c — fuzz target for path checks and routing: path_is_clean
 * (src/httpparse.c) and router_match (src/router.c) against the server's
 * real route table (src/routes.c). Properties: a clean path has no "." or
 * ".." segment, no "//" and no control byte or backslash; a match names a
 * route of the asked method whose pattern, with the captures put back,
 * spells the path (up to a trailing slash); captures are non-empty single
 * segments inside the path; a 405 lists the methods that path does accept.
 *
 * Input: <method byte> <path>  (the path gets a leading '/' as req_init's do)
 */
#include "httpparse.h"
#include "router.h"
#include "routes.h"
#include "fuzz.h"

static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "get", ""};

static void check_clean(const char *path)
{
    if (!path_is_clean(path))
        return;
    FUZZ_ASSERT(!strstr(path, "//") && !strstr(path, "/./") && !strstr(path, "/../"),
                "clean path with an empty or dot segment");
    size_t n = strlen(path);
    FUZZ_ASSERT(!(n >= 2 && strcmp(path + n - 2, "/.") == 0) &&
                    !(n >= 3 && strcmp(path + n - 3, "/..") == 0),
                "clean path ending in a dot segment");
    for (const char *p = path; *p; p++)
        FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f && *p != '\\',
                    "clean path with a control byte or backslash");
}

/* Rebuild the path from the pattern and the captures. */
static void check_match(const struct route *rt, const struct route_match *m, const char *path)
{
    char buf[4096];
    size_t o = 0;
    int np = 0;
    for (const char *p = rt->pattern; *p;) {
        if (*p == ':') {
            FUZZ_ASSERT(np < m->nparams, "fewer captures than the pattern has");
            FUZZ_ASSERT(m->param_len[np] > 0, "empty capture");
            FUZZ_ASSERT(m->params[np] >= path &&
                            m->params[np] + m->param_len[np] <= path + strlen(path),
                        "capture outside the path");
            FUZZ_ASSERT(!memchr(m->params[np], '/', m->param_len[np]), "capture spans segments");
            if (o + m->param_len[np] >= sizeof buf)
                return;
            memcpy(buf + o, m->params[np], m->param_len[np]);
            o += m->param_len[np];
            np++;
            while (*p && *p != '/')
                p++;
        } else {
            if (o + 1 >= sizeof buf)
                return;
            buf[o++] = *p++;
        }
    }
    buf[o] = '\0';
    FUZZ_ASSERT(np == m->nparams, "more captures than the pattern has");
    size_t bl = strlen(buf), pl = strlen(path);
    bool same = strcmp(buf, path) == 0 ||
                (bl + 1 == pl && path[pl - 1] == '/' && strncmp(buf, path, bl) == 0) ||
                (pl + 1 == bl && buf[bl - 1] == '/' && strncmp(buf, path, pl) == 0);
    FUZZ_ASSERT(same, "the matched pattern does not spell the path");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    const char *method = methods[fuzz_byte(&in) % (sizeof methods / sizeof methods[0])];
    char *rest = fuzz_str(&in, '\0');
    size_t n = strlen(rest);
    char *path = malloc(n + 2);
    path[0] = '/';
    memcpy(path + 1, rest[0] == '/' ? rest + 1 : rest, n + (rest[0] == '/' ? 0 : 1));

    check_clean(path);
    check_clean(rest);
    struct route_match m;
    int rc = router_match(s4s_routes, s4s_routes_count, method, path, &m);
    FUZZ_ASSERT(memchr(m.allow, '\0', sizeof m.allow) != NULL, "Allow not terminated");
    if (rc == ROUTE_FOUND) {
        FUZZ_ASSERT(m.index >= 0 && (size_t)m.index < s4s_routes_count, "route index");
        const struct route *rt = &s4s_routes[m.index];
        FUZZ_ASSERT(strcmp(rt->method, method) == 0, "matched another method");
        FUZZ_ASSERT(rt->handler != NULL, "route without a handler");
        check_match(rt, &m, path);
    } else if (rc == ROUTE_BAD_METHOD) {
        FUZZ_ASSERT(m.allow[0] != '\0', "405 without an Allow list");
    } else {
        FUZZ_ASSERT(rc == ROUTE_NOT_FOUND, "router result");
    }
    free(path);
    free(rest);
    return 0;
}
