/*
 * request.h — one FastCGI request as handlers see it: the parsed pieces of
 * the request, the worker's shared resources, and the response being built.
 * Everything hangs off the per-request arena.
 */
#ifndef S4S_REQUEST_H
#define S4S_REQUEST_H

#include <fcgiapp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "blobstore.h"
#include "config.h"
#include "httpparse.h"
#include "router.h"

struct scoreboard;
struct db;
struct session;

/* What a worker holds for its whole life (opened after fork). */
struct server {
    struct config *cfg;
    struct blobstore blobs;
    struct db *db;
    void *magic; /* magic_t */
    struct scoreboard *sb;
    int slot; /* this worker's scoreboard slot */
    int listen_fd;
    bool listen_is_unix;
    char *cors_origin; /* scheme://host[:port] of FRONTEND_URL, or NULL when CORS is off */
};

struct resp_header {
    const char *name;
    const char *value;
};

#define REQ_MAX_RESP_HEADERS 24

struct request {
    FCGX_Request *fcgx;
    arena_t *arena;
    struct server *srv;

    const char *method;
    const char *path;         /* below BASE_PATH, decoded, starts with '/' */
    const char *query_string; /* raw */
    const char *content_type; /* may be NULL */
    int64_t content_length;   /* -1 when absent */
    const char *remote_addr;
    struct kvlist query;
    struct kvlist cookies;
    struct route_match match;
    int route_index;      /* -1 when unrouted, for metrics */
    const char *user_id;  /* set by auth, for the access log */
    struct session *sess; /* the caller's session when resolved and valid */
    int sess_status;      /* enum sess_status, -1 until resolved */

    /* response */
    int status;
    bool head_sent;
    struct resp_header headers[REQ_MAX_RESP_HEADERS];
    int nheaders;
    uint64_t bytes_out;
    uint64_t body_read; /* request body bytes consumed */
    bool body_eof;
};

/* Fill the parsed fields from the FastCGI environment. Returns 0, or an HTTP
 * status (400) when the request line itself is unusable. */
int req_init(struct request *r, FCGX_Request *fcgx, arena_t *arena, struct server *srv);
/* A CGI parameter, e.g. req_param(r, "HTTP_X_SESSION_ID"). NULL if absent. */
const char *req_param(struct request *r, const char *name);
const char *req_query(struct request *r, const char *name);
const char *req_cookie(struct request *r, const char *name);
/* The route capture i as an arena string. */
const char *req_capture(struct request *r, int i);
/* Read request body bytes; 0 at end, -1 on error. Matches body_reader_fn. */
ssize_t req_body_read(void *r, char *buf, size_t len);
/* Consume and discard the rest of the body (before an early answer: nginx
 * reports 502 if the application answers without reading stdin). */
void req_drain_body(struct request *r);
/* Read the whole body into the arena when it is at most max bytes
 * (JSON bodies). NULL with *too_large set when it is bigger. */
char *req_body_all(struct request *r, size_t max, size_t *len, bool *too_large);
/* Parse a JSON request body (at most max bytes). On failure answers the
 * request itself (400 "Invalid JSON" / 413) and returns NULL. Caller frees. */
struct cJSON;
struct cJSON *req_json_body(struct request *r, size_t max);
/* True when the client connected from loopback (as the web server reports it). */
bool req_from_loopback(struct request *r);

#endif
