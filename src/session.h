/*
 * session.h — login sessions: 32 random bytes given to the client
 * (base64url), only their SHA-256 stored (oauth_sessions.id); lookup in the
 * order API.md fixes (query session_id, X-Session-ID, Authorization
 * Bearer); expiry and renewal at the provider with a refresh token;
 * last_accessed touched at most once a minute.
 */
#ifndef S4S_SESSION_H
#define S4S_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"

struct request;
struct db;
struct config;

#define SESS_TOKEN_BYTES 32
#define SESS_TOKEN_LEN 44 /* base64url of 32 bytes is 43 chars + NUL */
#define SESS_HASH_LEN 65
#define SESS_TOUCH_INTERVAL_US (60LL * 1000000)

struct session {
    const char *token; /* as presented */
    char hash[SESS_HASH_LEN];
    const char *user_id;
    const char *username;
    const char *email;
    const char *role;       /* admin | teacher | student */
    const char *expires_at; /* database timestamp */
    const char *user_data;  /* the provider's claims, JSON text, may be "" */
};

enum sess_status {
    SESS_OK = 0,
    SESS_MISSING,     /* no token presented */
    SESS_INVALID,     /* unknown token */
    SESS_EXPIRED,     /* expired and not renewable */
    SESS_UNAVAILABLE, /* the database stayed busy */
};

/* The presented token, first found: ?session_id=, X-Session-ID, Bearer. NULL if none. */
const char *sess_token_from_request(struct request *r);
/* SHA-256 hex of a token (what the database stores). */
void sess_hash_token(const char *token, char out[SESS_HASH_LEN]);
/* Look the token up, renewing an expired session at the provider when it
 * has a refresh token; fills *out from the arena. */
int sess_lookup(struct request *r, const char *token, struct session *out);
/* Resolve the request's session once (cached in r->sess). */
int sess_resolve(struct request *r);
/* Make a new token; caller stores its hash with sess_insert inside its transaction. */
void sess_new_token(char token[SESS_TOKEN_LEN], char hash[SESS_HASH_LEN]);
int sess_insert(struct db *db, const struct config *cfg, const char *hash, const char *user_id,
                const char *access_token, const char *refresh_token, int64_t expires_at_us);
/* Delete a session and what hangs off it. DB_OK when gone (or never there). */
int sess_delete(struct db *db, const char *hash);

/* Provider tokens are stored sealed (AES-256-GCM with a key derived from
 * SECRET_KEY), so a database dump holds no usable token of any kind. */
char *sess_seal(arena_t *a, const struct config *cfg, const char *plain);
/* NULL when the value can't be opened (other key, damaged). Plain values
 * (imported from the Python backend) are returned as they are. */
char *sess_open(arena_t *a, const struct config *cfg, const char *sealed);

#endif
