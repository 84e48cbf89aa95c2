/*
 * response.c — the one place that writes HTTP answers to FastCGI stdout:
 * status line, headers (CORS and the security defaults added here, once),
 * JSON bodies, the error vocabulary, and file bodies.
 */
#include "response.h"
#include "blobstore.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const struct {
    int status;
    const char *message;
} err_table[] = {
    [ERR_BAD_REQUEST] = {400, "Bad request"},
    [ERR_UNAUTHORIZED] = {401, "Authentication required"},
    [ERR_FORBIDDEN] = {403, "Forbidden"},
    [ERR_NOT_FOUND] = {404, "Not found"},
    [ERR_BAD_METHOD] = {405, "Method not allowed"},
    [ERR_CONFLICT] = {409, "Conflict"},
    [ERR_LENGTH_REQUIRED] = {411, "Length required"},
    [ERR_TOO_LARGE] = {413, "Request body too large"},
    [ERR_UNSUPPORTED] = {415, "Unsupported media type"},
    [ERR_UNPROCESSABLE] = {422, "Unprocessable content"},
    [ERR_INTERNAL] = {500, "Internal server error"},
    [ERR_BUSY] = {503, "The server is busy, please try again"},
    [ERR_NO_SPACE] = {507, "The server's storage is full"},
};

int s4s_err_status(enum s4s_err err)
{
    return err_table[err].status;
}

void resp_header(struct request *r, const char *name, const char *value)
{
    if (r->nheaders >= REQ_MAX_RESP_HEADERS) {
        log_warnx("too many response headers, dropped %s", name);
        return;
    }
    r->headers[r->nheaders].name = arena_strdup(r->arena, name);
    r->headers[r->nheaders].value = arena_strdup(r->arena, value);
    r->nheaders++;
}

static void put(struct request *r, const char *s, size_t len)
{
    if (len == 0)
        return;
    if (FCGX_PutStr(s, (int)len, r->fcgx->out) < 0)
        return; /* the web server went away: nothing to tell it */
    r->bytes_out += len;
}

static void puts_(struct request *r, const char *s)
{
    put(r, s, strlen(s));
}

static void send_head(struct request *r, int status, const char *content_type,
                      long long content_length)
{
    if (r->head_sent) {
        log_warnx("response head sent twice for %s %s", r->method, r->path ? r->path : "-");
        return;
    }
    r->head_sent = true;
    r->status = status;
    char line[160];
    snprintf(line, sizeof line, "Status: %d %s\r\n", status, http_reason(status));
    puts_(r, line);
    if (content_type) {
        puts_(r, "Content-Type: ");
        puts_(r, content_type);
        puts_(r, "\r\n");
    }
    if (content_length >= 0) {
        snprintf(line, sizeof line, "Content-Length: %lld\r\n", content_length);
        puts_(r, line);
    }
    puts_(r, "X-Content-Type-Options: nosniff\r\n");
    if (r->srv->cors_origin) {
        puts_(r, "Access-Control-Allow-Origin: ");
        puts_(r, r->srv->cors_origin);
        puts_(r, "\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n");
    }
    for (int i = 0; i < r->nheaders; i++) {
        puts_(r, r->headers[i].name);
        puts_(r, ": ");
        puts_(r, r->headers[i].value);
        puts_(r, "\r\n");
    }
    puts_(r, "\r\n");
}

void resp_bytes(struct request *r, int status, const char *content_type, const void *data,
                size_t len)
{
    send_head(r, status, content_type, (long long)len);
    put(r, data, len);
}

/*
 * cJSON (1.7.15) prints every number with sprintf("%1.15g") and then checks
 * it with sscanf, a few microseconds a number: most of the time of a project
 * list. An integer below 1e15 prints as its plain decimal digits either way,
 * so those are turned into raw JSON of the same text before printing.
 */
static void json_integers_raw(cJSON *item)
{
    for (; item; item = item->next) {
        if (item->child)
            json_integers_raw(item->child);
        if (!cJSON_IsNumber(item))
            continue;
        double d = item->valuedouble;
        if (!(d > -1e15 && d < 1e15) || (double)(long long)d != d || (d == 0 && signbit(d)))
            continue;
        char digits[24];
        int n = snprintf(digits, sizeof digits, "%lld", (long long)d);
        char *raw = cJSON_malloc((size_t)n + 1);
        if (!raw)
            continue; /* cJSON prints it itself */
        memcpy(raw, digits, (size_t)n + 1);
        item->type = cJSON_Raw | (item->type & ~0xFF); /* keeps cJSON_StringIsConst */
        item->valuestring = raw;
    }
}

void resp_json(struct request *r, int status, cJSON *obj)
{
    json_integers_raw(obj);
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!text) {
        log_errx("cJSON_PrintUnformatted failed");
        static const char fallback[] = "{\"error\":\"Internal server error\"}";
        resp_bytes(r, 500, "application/json; charset=utf-8", fallback, sizeof fallback - 1);
        return;
    }
    resp_header(r, "Cache-Control", "no-store");
    resp_bytes(r, status, "application/json; charset=utf-8", text, strlen(text));
    cJSON_free(text);
}

void resp_error(struct request *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    if (status == 503)
        resp_header(r, "Retry-After", "1");
    resp_json(r, status, o);
}

void resp_err(struct request *r, enum s4s_err err, const char *msg)
{
    resp_error(r, err_table[err].status, msg ? msg : err_table[err].message);
}

void resp_db_err(struct request *r, int db_rc)
{
    resp_err(r,
             db_rc == DB_BUSY || db_rc == DB_UNAVAILABLE ? ERR_BUSY
             : db_rc == DB_FULL                          ? ERR_NO_SPACE
                                                         : ERR_INTERNAL,
             NULL);
}

void resp_empty(struct request *r, int status)
{
    send_head(r, status, NULL, status == 304 || status == 204 ? -1 : 0);
}

void resp_redirect(struct request *r, const char *location)
{
    resp_header(r, "Location", location);
    resp_header(r, "Cache-Control", "no-store");
    send_head(r, 302, NULL, 0);
}

void resp_blob(struct request *r, const char *sha256_hex, const char *content_type)
{
    struct server *srv = r->srv;
    char rel[80];
    if (!blob_rel_path(sha256_hex, rel, sizeof rel)) {
        resp_err(r, ERR_NOT_FOUND, NULL);
        return;
    }
    if (srv->cfg->sendfile == SENDFILE_X_ACCEL) {
        /* nginx serves the file from its internal location; the worker is free at once. */
        resp_header(r, "X-Accel-Redirect",
                    arena_printf(r->arena, "%s/%s", srv->cfg->sendfile_prefix, rel));
        send_head(r, 200, content_type, -1);
        return;
    }
    if (srv->cfg->sendfile == SENDFILE_X_SENDFILE) {
        resp_header(r, "X-Sendfile", arena_printf(r->arena, "%s/%s", srv->blobs.blobs_dir, rel));
        send_head(r, 200, content_type, -1);
        return;
    }
    int fd;
    uint64_t size;
    int rc = blob_open_read(&srv->blobs, sha256_hex, &fd, &size);
    if (rc != BLOB_OK) {
        if (rc == BLOB_ERR_NOT_FOUND)
            log_errx("blob %s is referenced but missing", sha256_hex);
        resp_err(r, ERR_NOT_FOUND, NULL);
        return;
    }
    send_head(r, 200, content_type, (long long)size);
    char buf[65536];
    uint64_t left = size;
    while (left > 0) {
        ssize_t n = read(fd, buf, left < sizeof buf ? left : sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_warn("reading blob %s", sha256_hex);
            break;
        }
        put(r, buf, (size_t)n);
        left -= (uint64_t)n;
    }
    close(fd);
}

/* Does an If-None-Match list ("a", W/"b", *) name tag? */
static bool etag_listed(const char *list, const char *tag)
{
    size_t tlen = strlen(tag);
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p == '"' && strncmp(p + 1, tag, tlen) == 0 && p[1 + tlen] == '"')
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

bool resp_etag(struct request *r, const char *tag)
{
    resp_header(r, "ETag", arena_printf(r->arena, "\"%s\"", tag));
    const char *inm = req_param(r, "HTTP_IF_NONE_MATCH");
    if (inm && etag_listed(inm, tag)) {
        resp_empty(r, 304);
        return true;
    }
    return false;
}
