/*
 * oauth.h — the calls to the school's identity provider (libcurl): the
 * authorization-code exchange (client_secret_post + PKCE), refresh, and
 * userinfo. Every call has connect and total timeouts, so a hung provider
 * holds a worker a few seconds at most; provider error bodies are logged,
 * never shown to users.
 */
#ifndef S4S_OAUTH_H
#define S4S_OAUTH_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"

#define OAUTH_CONNECT_TIMEOUT_MS 3000
#define OAUTH_TOTAL_TIMEOUT_MS 5000
#define OAUTH_MAX_RESPONSE (1024 * 1024)
#define OAUTH_DEFAULT_TTL_S 60 /* when the provider gives neither expires_in nor expires_at */

struct oauth_tokens {
    const char *access_token;
    const char *refresh_token; /* NULL when none was given */
    int64_t expires_at_us;
};

/* PKCE: the verifier is derived from the state with HMAC(SECRET_KEY), so no
 * server-side storage is needed between /login and /authorize. */
void oauth_pkce_verifier(const struct config *cfg, const char *state, char out[44]);
void oauth_pkce_challenge(const char *verifier, char out[44]);

/* 0 on success; -1 with *err a message safe to show the user. */
int oauth_exchange_code(const struct config *cfg, arena_t *a, const char *code,
                        const char *verifier, struct oauth_tokens *out, const char **err);
int oauth_refresh(const struct config *cfg, arena_t *a, const char *refresh_token,
                  struct oauth_tokens *out, const char **err);
/* The claims object (caller frees with cJSON_Delete). */
int oauth_userinfo(const struct config *cfg, const char *access_token, cJSON **claims,
                   const char **err);

#endif
