/*
 * request.c — turning the FastCGI environment into a struct request:
 * path below BASE_PATH (from REQUEST_URI, which nginx's stock fastcgi_params
 * and lighttpd both pass), query, cookies, body reading and draining.
 */
#include "request.h"
#include "response.h"
#include "log.h"
#include "util.h"

#include <string.h>

const char *req_param(struct request *r, const char *name)
{
    return FCGX_GetParam(name, r->fcgx->envp);
}

/* Copy out of libfcgi's environment: it is freed at FCGX_Finish_r. */
static const char *param_copy(struct request *r, const char *name)
{
    const char *v = req_param(r, name);
    return v ? arena_strdup(r->arena, v) : NULL;
}

int req_init(struct request *r, FCGX_Request *fcgx, arena_t *arena, struct server *srv)
{
    memset(r, 0, sizeof *r);
    r->fcgx = fcgx;
    r->arena = arena;
    r->srv = srv;
    r->route_index = -1;
    r->sess_status = -1;
    r->content_length = -1;
    r->path = "/";

    r->method = param_copy(r, "REQUEST_METHOD");
    if (!r->method || !*r->method)
        r->method = "GET";
    r->content_type = param_copy(r, "CONTENT_TYPE");
    if (r->content_type && !*r->content_type)
        r->content_type = NULL;
    r->remote_addr = param_copy(r, "REMOTE_ADDR");
    const char *cl = req_param(r, "CONTENT_LENGTH");
    int64_t n;
    if (cl && *cl) {
        if (!parse_int64(cl, 0, INT64_MAX, &n))
            return 400;
        r->content_length = n;
    }

    /* REQUEST_URI is the raw target ("/backend/api/x?y=1"); both nginx and lighttpd set it. */
    const char *uri = req_param(r, "REQUEST_URI");
    if (!uri || !*uri) {
        /* A minimal gateway: rebuild from SCRIPT_NAME + PATH_INFO. */
        const char *sn = req_param(r, "SCRIPT_NAME");
        const char *pi = req_param(r, "PATH_INFO");
        uri = arena_printf(arena, "%s%s", sn ? sn : "", pi ? pi : "");
    }
    const char *q = strchr(uri, '?');
    size_t plen = q ? (size_t)(q - uri) : strlen(uri);
    const char *qs = req_param(r, "QUERY_STRING");
    if (!qs && q)
        qs = q + 1;
    r->query_string = qs ? arena_strdup(arena, qs) : "";
    parse_query(arena, r->query_string, &r->query);
    parse_cookies(arena, req_param(r, "HTTP_COOKIE"), &r->cookies);

    char *path = url_decode(arena, uri, plen, false);
    const char *base = srv->cfg->base_path ? srv->cfg->base_path : "";
    size_t blen = strlen(base);
    if (blen > 0) {
        if (strncmp(path, base, blen) != 0 || (path[blen] != '/' && path[blen] != '\0')) {
            r->path = NULL; /* outside our prefix: 404 */
            return 0;
        }
        path += blen;
    }
    r->path = *path ? path : "/";
    if (!path_is_clean(r->path))
        return 400;
    return 0;
}

const char *req_query(struct request *r, const char *name)
{
    return kv_get(&r->query, name);
}

const char *req_cookie(struct request *r, const char *name)
{
    return kv_get(&r->cookies, name);
}

const char *req_capture(struct request *r, int i)
{
    if (i < 0 || i >= r->match.nparams)
        return NULL;
    return arena_strndup(r->arena, r->match.params[i], r->match.param_len[i]);
}

ssize_t req_body_read(void *ctx, char *buf, size_t len)
{
    struct request *r = ctx;
    if (r->body_eof || len == 0)
        return 0;
    if (len > INT32_MAX)
        len = INT32_MAX;
    int n = FCGX_GetStr(buf, (int)len, r->fcgx->in);
    if (n < 0 || FCGX_GetError(r->fcgx->in) != 0)
        return -1;
    if (n == 0) {
        r->body_eof = true;
        return 0;
    }
    r->body_read += (uint64_t)n;
    return n;
}

void req_drain_body(struct request *r)
{
    char buf[16384];
    while (req_body_read(r, buf, sizeof buf) > 0)
        ;
}

char *req_body_all(struct request *r, size_t max, size_t *len, bool *too_large)
{
    *too_large = false;
    *len = 0;
    if (r->content_length > (int64_t)max) {
        *too_large = true;
        return NULL;
    }
    /* With a Content-Length the buffer is allocated once at its size; without
     * one it grows by doubling up to max. */
    size_t cap = r->content_length >= 0 ? (size_t)r->content_length : (max < 4096 ? max : 4096);
    char *buf = arena_alloc(r->arena, cap + 1);
    size_t used = 0;
    for (;;) {
        if (used == cap) {
            if (r->content_length >= 0 || cap >= max) {
                char probe;
                ssize_t n = req_body_read(r, &probe, 1);
                if (n < 0)
                    return NULL;
                if (n > 0) {
                    *too_large = true;
                    return NULL;
                }
                break;
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            char *nbuf = arena_alloc(r->arena, ncap + 1);
            memcpy(nbuf, buf, used);
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = req_body_read(r, buf + used, cap - used);
        if (n < 0)
            return NULL;
        if (n == 0)
            break;
        used += (size_t)n;
    }
    buf[used] = '\0';
    *len = used;
    return buf;
}

bool req_from_loopback(struct request *r)
{
    const char *a = r->remote_addr;
    if (!a)
        return false;
    return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
           strncmp(a, "::ffff:127.", 11) == 0;
}

struct cJSON *req_json_body(struct request *r, size_t max)
{
    size_t len;
    bool too_large;
    char *body = req_body_all(r, max, &len, &too_large);
    if (too_large) {
        req_drain_body(r);
        resp_err(r, ERR_TOO_LARGE, NULL);
        return NULL;
    }
    if (!body) {
        resp_err(r, ERR_BAD_REQUEST, "Could not read the request body");
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j) {
        resp_err(r, ERR_BAD_REQUEST, "Invalid JSON");
        return NULL;
    }
    return j;
}
