/*
 * users.c — the login transaction and group listing.
 */
#include "users.h"
#include "db.h"
#include "log.h"
#include "session.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const char *claim_string(arena_t *a, const cJSON *claims, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, names[i]);
        if (cJSON_IsString(v) && v->valuestring[0])
            return arena_strdup(a, v->valuestring);
        if (cJSON_IsNumber(v)) /* some providers send numeric ids */
            return arena_printf(a, "%.0f", v->valuedouble);
    }
    return NULL;
}

static void add_group(arena_t *a, struct claims *out, const cJSON *g)
{
    if (!cJSON_IsObject(g) || out->ngroups >= USERS_MAX_GROUPS)
        return;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(g, "act");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(g, "name");
    if (!cJSON_IsString(act) || !act->valuestring[0])
        return;
    for (int i = 0; i < out->ngroups; i++)
        if (strcmp(out->groups[i].external_id, act->valuestring) == 0)
            return; /* listed twice by the provider */
    out->groups[out->ngroups].external_id = arena_strdup(a, act->valuestring);
    out->groups[out->ngroups].name = arena_strdup(
        a, cJSON_IsString(name) && name->valuestring[0] ? name->valuestring : act->valuestring);
    out->ngroups++;
}

int users_parse_claims(arena_t *a, const cJSON *claims, struct claims *out, const char **err)
{
    static const char *const id_names[] = {"uuid", "id", "sub"};
    static const char *const name_names[] = {"preferred_username", "username", "name"};
    static const char *const email_names[] = {"email"};
    memset(out, 0, sizeof *out);
    out->user_id = claim_string(a, claims, id_names, ARRAY_LEN(id_names));
    if (!out->user_id || strlen(out->user_id) > 128) {
        *err = "The identity provider did not say who you are (no user id)";
        return -1;
    }
    out->username = claim_string(a, claims, name_names, ARRAY_LEN(name_names));
    if (!out->username)
        out->username = out->user_id;
    out->email = claim_string(a, claims, email_names, 1);
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(claims, "groups");
    const cJSON *g;
    /* IServ sends an object of {"act","name"} objects; a list of them is accepted too. */
    if (cJSON_IsObject(groups) || cJSON_IsArray(groups))
        cJSON_ArrayForEach(g, groups) add_group(a, out, g);
    char *text = cJSON_PrintUnformatted(claims);
    out->user_data = arena_strdup(a, text ? text : "{}");
    cJSON_free(text);
    return 0;
}

const char *users_role_for(const struct config *cfg, const struct claims *c)
{
    bool teacher = false;
    for (int i = 0; i < c->ngroups; i++) {
        if (cfg->role_admin && *cfg->role_admin &&
            strcmp(c->groups[i].external_id, cfg->role_admin) == 0)
            return "admin";
        if (cfg->role_teacher && *cfg->role_teacher &&
            strcmp(c->groups[i].external_id, cfg->role_teacher) == 0)
            teacher = true;
    }
    return teacher ? "teacher" : "student";
}

struct login_ctx {
    const struct config *cfg;
    const struct claims *c;
    const char *access, *refresh;
    int64_t expires_at_us;
    const char *role;
    char hash[SESS_HASH_LEN];
};

static int login_tx(struct db *db, void *arg)
{
    struct login_ctx *x = arg;
    const struct claims *c = x->c;
    char now[DB_TS_LEN];
    db_ts_now(now);
    struct db_stmt *st = db_prepare(
        db, "INSERT INTO users (id, username, email, role, created_at, last_login, user_data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET username = excluded.username, "
            "email = excluded.email, role = excluded.role, last_login = excluded.last_login, "
            "user_data = excluded.user_data");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, c->user_id);
    db_bind_text(st, 2, c->username);
    db_bind_text(st, 3, c->email);
    db_bind_text(st, 4, x->role);
    db_bind_text(st, 5, now);
    db_bind_text(st, 6, now);
    db_bind_text(st, 7, c->user_data);
    int rc = db_step_done(st);
    if (rc != DB_OK)
        return rc;

    /* Memberships are replaced: the provider's list is the truth. */
    st = db_prepare(db, "DELETE FROM user_groups WHERE user_id = ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, c->user_id);
    if ((rc = db_step_done(st)) != DB_OK)
        return rc;
    for (int i = 0; i < c->ngroups; i++) {
        st = db_prepare(db, "INSERT INTO groups (name, external_id, created_at) VALUES (?, ?, ?) "
                            "ON CONFLICT (external_id) DO UPDATE SET name = excluded.name "
                            "RETURNING id");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, c->groups[i].name);
        db_bind_text(st, 2, c->groups[i].external_id);
        db_bind_text(st, 3, now);
        rc = db_step(st);
        if (rc != DB_ROW)
            return rc == DB_OK ? DB_ERROR : rc;
        int64_t gid = db_column_int64(st, 0);
        db_reset(st);
        st = db_prepare(db, "INSERT INTO user_groups (user_id, group_id, joined_at) "
                            "VALUES (?, ?, ?) ON CONFLICT (user_id, group_id) DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, c->user_id);
        db_bind_int64(st, 2, gid);
        db_bind_text(st, 3, now);
        if ((rc = db_step_done(st)) != DB_OK)
            return rc;
    }
    return sess_insert(db, x->cfg, x->hash, c->user_id, x->access, x->refresh, x->expires_at_us);
}

int users_login(struct db *db, const struct config *cfg, const struct claims *c,
                const char *access_token, const char *refresh_token, int64_t expires_at_us,
                struct login_result *out)
{
    struct login_ctx x = {.cfg = cfg,
                          .c = c,
                          .access = access_token,
                          .refresh = refresh_token,
                          .expires_at_us = expires_at_us,
                          .role = users_role_for(cfg, c)};
    sess_new_token(out->token, x.hash);
    out->role = x.role;
    return db_transaction(db, true, login_tx, &x);
}

cJSON *users_groups_json(struct db *db, const char *user_id)
{
    cJSON *arr = cJSON_CreateArray();
    struct db_stmt *st =
        db_prepare(db, "SELECT g.id, g.name, g.external_id, g.description FROM groups g "
                       "JOIN user_groups ug ON ug.group_id = g.id WHERE ug.user_id = ? "
                       "ORDER BY g.name, g.id");
    if (!st)
        return arr;
    db_bind_text(st, 1, user_id);
    while (db_step(st) == DB_ROW) {
        cJSON *g = cJSON_CreateObject();
        cJSON_AddNumberToObject(g, "id", (double)db_column_int64(st, 0));
        cJSON_AddStringToObject(g, "name", db_column_text(st, 1));
        cJSON_AddStringToObject(g, "external_id", db_column_text(st, 2));
        if (db_column_is_null(st, 3))
            cJSON_AddNullToObject(g, "description");
        else
            cJSON_AddStringToObject(g, "description", db_column_text(st, 3));
        cJSON_AddItemToArray(arr, g);
    }
    db_reset(st);
    return arr;
}
