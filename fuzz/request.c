/*
 * request.c — fuzz target for the request line and headers as req_init
 * (src/request.c) turns a FastCGI environment into a struct request: the
 * method, REQUEST_URI split into path and query, URL decoding, BASE_PATH
 * stripping, path checks, CONTENT_LENGTH, cookies; then what the worker
 * does next with them: routing (src/router.c), the session token lookup
 * (src/session.c), the multipart boundary (src/multipart.c).
 * Properties: a request req_init accepts has a path below BASE_PATH that
 * starts with '/' and passes path_is_clean, or no path at all (404); a
 * token found is one of the values presented.
 *
 * Input: newline-separated values for REQUEST_METHOD, REQUEST_URI,
 * CONTENT_LENGTH, CONTENT_TYPE, HTTP_COOKIE, HTTP_X_SESSION_ID,
 * HTTP_AUTHORIZATION, REMOTE_ADDR, then QUERY_STRING (absent when the
 * input ends before it). The first byte picks BASE_PATH.
 */
#include "config.h"
#include "httpparse.h"
#include "multipart.h"
#include "request.h"
#include "routes.h"
#include "session.h"
#include "fuzz.h"

static const char *const names[] = {"REQUEST_METHOD",     "REQUEST_URI", "CONTENT_LENGTH",
                                    "CONTENT_TYPE",       "HTTP_COOKIE", "HTTP_X_SESSION_ID",
                                    "HTTP_AUTHORIZATION", "REMOTE_ADDR", "QUERY_STRING"};
#define NNAMES (sizeof names / sizeof names[0])
static const char *const bases[] = {"/backend", "", "/s4s/api", "/"};

static struct config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    cfg_defaults(&cfg);
    free(cfg.base_path); /* each input picks one of bases[] */
    cfg.base_path = NULL;
    return 0;
}

static bool presented(const char *tok, char **env)
{
    for (char **e = env; *e; e++) {
        const char *v = strchr(*e, '=') + 1;
        if (strstr(v, tok))
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    cfg.base_path = (char *)bases[fuzz_byte(&in) % 4];
    if (cfg.base_path[0] == '/' && cfg.base_path[1] == '\0')
        cfg.base_path = (char *)""; /* config.c keeps no trailing slash */
    char *env[NNAMES + 1];
    char *vals[NNAMES];
    size_t nenv = 0;
    for (size_t i = 0; i < NNAMES; i++) {
        vals[i] = NULL;
        if (in.n == 0 && i == NNAMES - 1)
            break; /* no QUERY_STRING: taken from REQUEST_URI */
        vals[i] = fuzz_str(&in, '\n');
        size_t ln = strlen(names[i]), lv = strlen(vals[i]);
        env[nenv] = malloc(ln + lv + 2);
        memcpy(env[nenv], names[i], ln);
        env[nenv][ln] = '=';
        memcpy(env[nenv] + ln + 1, vals[i], lv + 1);
        nenv++;
    }
    env[nenv] = NULL;

    FCGX_Request fcgx;
    memset(&fcgx, 0, sizeof fcgx);
    fcgx.envp = env;
    struct server srv;
    memset(&srv, 0, sizeof srv);
    srv.cfg = &cfg;
    arena_t a;
    arena_init(&a, 4096);
    struct request r;

    int bad = req_init(&r, &fcgx, &a, &srv);
    FUZZ_ASSERT(bad == 0 || bad == 400, "req_init result");
    FUZZ_ASSERT(r.method && *r.method, "a method always");
    FUZZ_ASSERT(bad || r.query_string, "a query string (maybe empty) when accepted");
    if (!bad && r.path) {
        FUZZ_ASSERT(r.path[0] == '/', "path starts with '/'");
        FUZZ_ASSERT(path_is_clean(r.path), "an accepted path is clean");
        int rc = router_match(s4s_routes, s4s_routes_count, r.method, r.path, &r.match);
        if (rc == ROUTE_FOUND)
            for (int i = 0; i < r.match.nparams; i++)
                FUZZ_ASSERT(strlen(req_capture(&r, i)) == r.match.param_len[i],
                            "capture copied whole");
    }
    const char *tok = sess_token_from_request(&r);
    if (tok) {
        FUZZ_ASSERT(*tok, "empty token");
        /* A ?session_id= token is URL-decoded, so it need not appear as sent. */
        FUZZ_ASSERT(presented(tok, env) || kv_get(&r.query, "session_id") == tok,
                    "token from nowhere");
    }
    (void)req_from_loopback(&r);
    (void)req_query(&r, "title");
    (void)req_cookie(&r, "oauth_state");
    if (r.content_type) {
        char boundary[MP_MAX_BOUNDARY + 1];
        if (mp_boundary_from_content_type(r.content_type, boundary, sizeof boundary) == MP_OK)
            FUZZ_ASSERT(strlen(boundary) >= 1 && strlen(boundary) <= MP_MAX_BOUNDARY,
                        "boundary length");
    }
    if (!bad && r.content_length >= 0)
        FUZZ_ASSERT(vals[2] && *vals[2], "a length from nowhere");

    arena_free(&a);
    for (size_t i = 0; i < nenv; i++)
        free(env[i]);
    for (size_t i = 0; i < NNAMES; i++)
        free(vals[i]);
    return 0;
}
