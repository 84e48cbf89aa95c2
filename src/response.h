/*
 * response.h — writing answers: JSON bodies, the error vocabulary, files
 * (streamed or handed to the web server), redirects. Every error the
 * server gives goes through resp_error so it is always {"error": …} JSON.
 */
#ifndef S4S_RESPONSE_H
#define S4S_RESPONSE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "request.h"

/* The failures handlers report; one table maps each to a status and default message. */
enum s4s_err {
    ERR_BAD_REQUEST,     /* 400 */
    ERR_UNAUTHORIZED,    /* 401 */
    ERR_FORBIDDEN,       /* 403 */
    ERR_NOT_FOUND,       /* 404 */
    ERR_BAD_METHOD,      /* 405 */
    ERR_CONFLICT,        /* 409 */
    ERR_LENGTH_REQUIRED, /* 411 */
    ERR_TOO_LARGE,       /* 413 */
    ERR_UNSUPPORTED,     /* 415 */
    ERR_UNPROCESSABLE,   /* 422 */
    ERR_INTERNAL,        /* 500 */
    ERR_BUSY,            /* 503, Retry-After */
    ERR_NO_SPACE,        /* 507 */
};

/* Add a response header (name and value copied into the arena). */
void resp_header(struct request *r, const char *name, const char *value);
/* Send a JSON body and free obj. */
void resp_json(struct request *r, int status, cJSON *obj);
/* {"error": msg} with the status of err; msg NULL → the default message. */
void resp_err(struct request *r, enum s4s_err err, const char *msg);
/* {"error": msg} with an explicit status. */
void resp_error(struct request *r, int status, const char *msg);
/* Headers only (204, 304). */
void resp_empty(struct request *r, int status);
/* Raw bytes with a content type. */
void resp_bytes(struct request *r, int status, const char *content_type, const void *data,
                size_t len);
/* 302 to location. */
void resp_redirect(struct request *r, const char *location);
/* A blob: X-Accel-Redirect / X-Sendfile when configured, else streamed. */
void resp_blob(struct request *r, const char *sha256_hex, const char *content_type);

int s4s_err_status(enum s4s_err err);

/* A failed database call (db.h code) as its answer: DB_BUSY → 503 with
 * Retry-After, DB_FULL → 507, anything else → 500. */
void resp_db_err(struct request *r, int db_rc);

/* Set ETag: "<tag>" and, when the request's If-None-Match names it (or is
 * "*"), answer 304 and return true: the handler is done. */
bool resp_etag(struct request *r, const char *tag);

#endif
