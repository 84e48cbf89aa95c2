/*
 * h_auth.c — the Login and General sections of API.md: /login and
 * /authorize (OAuth 2.0 authorization code with PKCE), /session, /logout,
 * /api/user, /api/groups, /api/projects/can-save.
 */
#include "db.h"
#include "log.h"
#include "oauth.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "session.h"
#include "users.h"
#include "util.h"

#include <string.h>

#define STATE_COOKIE "oauth_state"

static bool oauth_configured(const struct config *c)
{
    return c->oauth_client_id && *c->oauth_client_id && c->oauth_authorize_url &&
           c->oauth_token_url && c->oauth_userinfo_url && c->oauth_redirect_uri;
}

static bool frontend_is_https(const struct config *c)
{
    return c->frontend_url && strncmp(c->frontend_url, "https:", 6) == 0;
}

/* FRONTEND_URL with one query parameter added. */
static const char *frontend_with(struct request *r, const char *key, const char *value)
{
    const char *base = r->srv->cfg->frontend_url ? r->srv->cfg->frontend_url : "/";
    return arena_printf(r->arena, "%s%c%s=%s", base, strchr(base, '?') ? '&' : '?', key,
                        url_encode(r->arena, value));
}

static void state_cookie(struct request *r, const char *value, int max_age)
{
    resp_header(r, "Set-Cookie",
                arena_printf(r->arena, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax%s",
                             STATE_COOKIE, value, max_age,
                             frontend_is_https(r->srv->cfg) ? "; Secure" : ""));
}

void h_login(struct request *r)
{
    struct config *cfg = r->srv->cfg;
    if (!oauth_configured(cfg)) {
        resp_err(r, ERR_BUSY, "Login is not configured on this server (OAUTH_* settings)");
        return;
    }
    unsigned char raw[32];
    char state[48], verifier[44], challenge[44];
    random_bytes(raw, sizeof raw);
    b64url_encode(raw, sizeof raw, state);
    oauth_pkce_verifier(cfg, state, verifier);
    oauth_pkce_challenge(verifier, challenge);
    const char *base = cfg->oauth_authorize_url;
    const char *url = arena_printf(
        r->arena,
        "%s%cresponse_type=code&client_id=%s&redirect_uri=%s&scope=%s&state=%s"
        "&code_challenge=%s&code_challenge_method=S256",
        base, strchr(base, '?') ? '&' : '?', url_encode(r->arena, cfg->oauth_client_id),
        url_encode(r->arena, cfg->oauth_redirect_uri),
        url_encode(r->arena, "openid profile uuid email groups"), state, challenge);
    state_cookie(r, state, 600);
    resp_redirect(r, url);
}

static void login_failed(struct request *r, const char *msg)
{
    state_cookie(r, "", 0);
    resp_redirect(r, frontend_with(r, "error", msg));
}

void h_authorize(struct request *r)
{
    struct config *cfg = r->srv->cfg;
    const char *code = req_query(r, "code");
    const char *state = req_query(r, "state");
    const char *cookie = req_cookie(r, STATE_COOKIE);
    const char *perr = req_query(r, "error");
    if (!oauth_configured(cfg)) {
        login_failed(r, "Login is not configured on this server");
        return;
    }
    if (perr && *perr) {
        log_warnx("login: the provider answered error=%.100s", perr);
        login_failed(r, "The identity provider did not authorize the login");
        return;
    }
    if (!state || !cookie || !*cookie || strcmp(state, cookie) != 0) {
        login_failed(r, "Invalid login state; please try again");
        return;
    }
    if (!code || !*code) {
        login_failed(r, "No authorization code received");
        return;
    }
    char verifier[44];
    oauth_pkce_verifier(cfg, state, verifier);
    struct oauth_tokens tok;
    const char *err = NULL;
    if (oauth_exchange_code(cfg, r->arena, code, verifier, &tok, &err) < 0) {
        login_failed(r, err);
        return;
    }
    cJSON *claims = NULL;
    if (oauth_userinfo(cfg, tok.access_token, &claims, &err) < 0) {
        login_failed(r, err);
        return;
    }
    struct claims c;
    int prc = users_parse_claims(r->arena, claims, &c, &err);
    cJSON_Delete(claims);
    if (prc < 0) {
        log_warnx("login: %s", err);
        login_failed(r, err);
        return;
    }
    struct login_result res;
    int rc = users_login(r->srv->db, cfg, &c, tok.access_token, tok.refresh_token,
                         tok.expires_at_us, &res);
    if (rc != DB_OK) {
        log_errx("login of %s: database error %d", c.user_id, rc);
        login_failed(r, "The server could not complete the login; please try again");
        return;
    }
    r->user_id = c.user_id;
    log_info("login: %s (%s) as %s, %d group(s)", c.user_id, c.username, res.role, c.ngroups);
    state_cookie(r, "", 0);
    resp_redirect(r, frontend_with(r, "session_id", res.token));
}

/* Answer a failed lookup with API.md's errors. */
void auth_fail(struct request *r, int status)
{
    switch (status) {
    case SESS_MISSING:
        resp_err(r, ERR_UNAUTHORIZED, "Authentication required");
        break;
    case SESS_INVALID:
        resp_err(r, ERR_UNAUTHORIZED, "Invalid session");
        break;
    case SESS_EXPIRED: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "error", "Session expired");
        cJSON_AddBoolToObject(o, "renewal_required", 1);
        resp_json(r, 401, o);
        break;
    }
    default:
        resp_err(r, ERR_BUSY, NULL);
        break;
    }
}

static cJSON *avatar_of(const struct session *s)
{
    cJSON *data = s->user_data && *s->user_data ? cJSON_Parse(s->user_data) : NULL;
    const cJSON *pic = cJSON_GetObjectItemCaseSensitive(data, "picture");
    cJSON *out = cJSON_IsString(pic) ? cJSON_CreateString(pic->valuestring) : cJSON_CreateNull();
    cJSON_Delete(data);
    return out;
}

static void add_nullable(cJSON *o, const char *key, const char *v)
{
    if (v && *v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

void h_session(struct request *r)
{
    int st = sess_resolve(r);
    if (st == SESS_MISSING) {
        resp_err(r, ERR_BAD_REQUEST, "No session ID provided");
        return;
    }
    if (st != SESS_OK) {
        auth_fail(r, st);
        return;
    }
    struct session *s = r->sess;
    char exp[48];
    db_ts_to_iso(s->expires_at, exp, sizeof exp);
    cJSON *o = cJSON_CreateObject();
    cJSON *so = cJSON_AddObjectToObject(o, "session");
    cJSON_AddStringToObject(so, "id", s->token);
    cJSON_AddStringToObject(so, "expires_at", exp);
    cJSON *u = cJSON_AddObjectToObject(o, "user");
    cJSON_AddStringToObject(u, "id", s->user_id);
    cJSON_AddStringToObject(u, "username", s->username);
    add_nullable(u, "email", s->email);
    cJSON_AddStringToObject(u, "role", s->role);
    cJSON_AddItemToObject(u, "groups", users_groups_json(r->srv->db, s->user_id));
    cJSON_AddItemToObject(u, "avatar_url", avatar_of(s));
    cJSON_AddBoolToObject(o, "authenticated", 1);
    resp_json(r, 200, o);
}

static int logout_tx(struct db *db, void *hash)
{
    return sess_delete(db, hash);
}

void h_logout(struct request *r)
{
    const char *token = sess_token_from_request(r);
    if (!token) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "success", 0);
        cJSON_AddStringToObject(o, "message", "No session ID provided");
        resp_json(r, 400, o);
        return;
    }
    char hash[SESS_HASH_LEN];
    sess_hash_token(token, hash);
    int rc = db_transaction(r->srv->db, true, logout_tx, hash);
    if (rc != DB_OK) {
        resp_db_err(r, rc);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", 1);
    cJSON_AddStringToObject(o, "message", "Successfully logged out");
    resp_json(r, 200, o);
}

void h_api_user(struct request *r)
{
    struct session *s = r->sess;
    cJSON *o = cJSON_CreateObject();
    cJSON *u = cJSON_AddObjectToObject(o, "user");
    cJSON_AddStringToObject(u, "session_id", s->token);
    cJSON_AddStringToObject(u, "user_id", s->user_id);
    cJSON_AddStringToObject(u, "username", s->username);
    add_nullable(u, "email", s->email);
    cJSON_AddStringToObject(u, "role", s->role);
    resp_json(r, 200, o);
}

void h_api_groups(struct request *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "groups", users_groups_json(r->srv->db, r->sess->user_id));
    resp_json(r, 200, o);
}

void h_can_save(struct request *r)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = r->sess != NULL;
    cJSON_AddBoolToObject(o, "canSave", ok);
    add_nullable(o, "userId", ok ? r->sess->user_id : NULL);
    add_nullable(o, "username", ok ? r->sess->username : NULL);
    resp_json(r, 200, o);
}
