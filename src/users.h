/*
 * users.h — users, groups and memberships as the identity provider
 * describes them: claims mapped to a user (API.md's fallbacks), groups
 * created by external id, memberships replaced, role derived, session
 * created — all in one transaction, with INSERT … ON CONFLICT so many
 * simultaneous logins never duplicate anything.
 */
#ifndef S4S_USERS_H
#define S4S_USERS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"

struct db;

#define USERS_MAX_GROUPS 256

struct claim_group {
    const char *external_id;
    const char *name;
};

struct claims {
    const char *user_id;   /* uuid, id or sub */
    const char *username;  /* preferred_username, username or name */
    const char *email;     /* may be NULL */
    const char *user_data; /* the claims as JSON text */
    struct claim_group groups[USERS_MAX_GROUPS];
    int ngroups;
};

/* Map the provider's claims. -1 with *err when there is no usable user id. */
int users_parse_claims(arena_t *a, const cJSON *claims, struct claims *out, const char **err);
/* admin / teacher / student from the group external ids. */
const char *users_role_for(const struct config *cfg, const struct claims *c);

struct login_result {
    char token[48];
    const char *role;
};

/* The login transaction: upsert user and groups, replace memberships, store
 * the session (provider tokens sealed). DB_OK or the db error. */
int users_login(struct db *db, const struct config *cfg, const struct claims *c,
                const char *access_token, const char *refresh_token, int64_t expires_at_us,
                struct login_result *out);

/* The user's groups as API.md's group objects {"id","name","external_id","description"}. */
cJSON *users_groups_json(struct db *db, const char *user_id);

#endif
