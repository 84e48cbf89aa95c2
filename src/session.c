/*
 * session.c — session tokens, lookup with renewal, and sealing of the
 * provider tokens stored beside them.
 *
 * Renewal of one session by several workers at once: the first to claim it
 * renews it. The claim is a compare-and-swap that moves the expired row's
 * expires_at (the one it read, with the refresh token it read) a short while
 * forward. The others' claims then match no row; they re-read it, find the
 * session valid and are served at once, without waiting for the provider or
 * the claimer's commit, and the provider sees one refresh, not one per
 * request. The claimer stores the new tokens only if the row still holds the
 * refresh token it used, so a stale token never overwrites a fresh one; when
 * the provider refuses, it puts the expiry back and the session is over.
 */
#include "session.h"
#include "db.h"
#include "log.h"
#include "oauth.h"
#include "request.h"
#include "util.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

/* A claim lasts as long as the claimer may take: the provider call, then
 * DB_BUSY_TIMEOUT for the write lock, plus this margin. Should the claimer's
 * worker die meanwhile, the session expires again when the claim does. */
#define RENEW_CLAIM_MARGIN_US 2000000

const char *sess_token_from_request(struct request *r)
{
    const char *t = req_query(r, "session_id");
    if (t && *t)
        return t;
    t = req_param(r, "HTTP_X_SESSION_ID");
    if (t && *t)
        return t;
    t = req_param(r, "HTTP_AUTHORIZATION");
    if (t && strncasecmp(t, "Bearer ", 7) == 0 && t[7])
        return t + 7;
    return NULL;
}

void sess_hash_token(const char *token, char out[SESS_HASH_LEN])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL);
    hex_encode(md, 32, out);
}

void sess_new_token(char token[SESS_TOKEN_LEN], char hash[SESS_HASH_LEN])
{
    unsigned char raw[SESS_TOKEN_BYTES];
    random_bytes(raw, sizeof raw);
    b64url_encode(raw, sizeof raw, token);
    sess_hash_token(token, hash);
}

/* ---- sealing provider tokens ------------------------------------------- */

#define SEAL_PREFIX "s4s1:"

static void seal_key(const struct config *cfg, unsigned char key[32])
{
    const char *secret = cfg->secret_key ? cfg->secret_key : "";
    unsigned int len = 32;
    static const char label[] = "s4s provider token key";
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label, sizeof label - 1,
         key, &len);
}

char *sess_seal(arena_t *a, const struct config *cfg, const char *plain)
{
    if (!plain)
        return NULL;
    unsigned char key[32], iv[12], tag[16];
    seal_key(cfg, key);
    random_bytes(iv, sizeof iv);
    size_t n = strlen(plain);
    unsigned char *buf = arena_alloc(a, 12 + 16 + n);
    int len = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv) != 1 ||
        EVP_EncryptUpdate(c, buf + 28, &len, (const unsigned char *)plain, (int)n) != 1 ||
        EVP_EncryptFinal_ex(c, buf + 28 + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1) {
        EVP_CIPHER_CTX_free(c);
        log_errx("sealing a provider token failed");
        return NULL;
    }
    EVP_CIPHER_CTX_free(c);
    memcpy(buf, iv, 12);
    memcpy(buf + 12, tag, 16);
    size_t total = 28 + (size_t)len + (size_t)fin;
    char *out = arena_alloc(a, sizeof SEAL_PREFIX + (total + 2) / 3 * 4 + 1);
    strcpy(out, SEAL_PREFIX);
    b64url_encode(buf, total, out + sizeof SEAL_PREFIX - 1);
    return out;
}

static int b64url_value(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

char *sess_open(arena_t *a, const struct config *cfg, const char *sealed)
{
    if (!sealed || !*sealed)
        return NULL;
    if (strncmp(sealed, SEAL_PREFIX, sizeof SEAL_PREFIX - 1) != 0)
        return arena_strdup(a, sealed); /* stored by the Python backend: plain */
    const char *s = sealed + sizeof SEAL_PREFIX - 1;
    size_t slen = strlen(s);
    unsigned char *raw = arena_alloc(a, slen * 3 / 4 + 3);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < slen; i++) {
        int v = b64url_value(s[i]);
        if (v < 0)
            return NULL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (n < 28)
        return NULL;
    unsigned char key[32];
    seal_key(cfg, key);
    size_t clen = n - 28;
    char *plain = arena_alloc(a, clen + 1);
    int len = 0, fin = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, raw) == 1 &&
             EVP_DecryptUpdate(c, (unsigned char *)plain, &len, raw + 28, (int)clen) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, raw + 12) == 1 &&
             EVP_DecryptFinal_ex(c, (unsigned char *)plain + len, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return NULL;
    plain[len + fin] = '\0';
    return plain;
}

/* ---- storage ------------------------------------------------------------ */

int sess_insert(struct db *db, const struct config *cfg, const char *hash, const char *user_id,
                const char *access_token, const char *refresh_token, int64_t expires_at_us)
{
    arena_t a;
    arena_init(&a, 1024);
    char now[DB_TS_LEN], exp[DB_TS_LEN];
    db_ts_now(now);
    db_ts_from_epoch_us(expires_at_us, exp);
    struct db_stmt *st = db_prepare(db, "INSERT INTO oauth_sessions (id, user_id, access_token, "
                                        "refresh_token, expires_at, created_at, last_accessed) "
                                        "VALUES (?, ?, ?, ?, ?, ?, ?)");
    int rc = DB_ERROR;
    if (st) {
        db_bind_text(st, 1, hash);
        db_bind_text(st, 2, user_id);
        const char *sealed = sess_seal(&a, cfg, access_token ? access_token : "");
        db_bind_text(st, 3, sealed ? sealed : "");
        db_bind_text(st, 4, refresh_token ? sess_seal(&a, cfg, refresh_token) : NULL);
        db_bind_text(st, 5, exp);
        db_bind_text(st, 6, now);
        db_bind_text(st, 7, now);
        rc = db_step(st);
    }
    arena_free(&a);
    return rc;
}

int sess_delete(struct db *db, const char *hash)
{
    static const char *const sqls[] = {
        "DELETE FROM session_project_versions WHERE session_id = ?",
        "DELETE FROM conflict_copies WHERE session_id = ?",
        "DELETE FROM oauth_sessions WHERE id = ?",
    };
    for (size_t i = 0; i < ARRAY_LEN(sqls); i++) {
        struct db_stmt *st = db_prepare(db, sqls[i]);
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, hash);
        int rc = db_step(st);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

/* ---- lookup ------------------------------------------------------------- */

struct row {
    struct session s;
    const char *refresh_sealed; /* NULL when none */
    const char *last_accessed;
};

/* 1 found, 0 not found, -1 busy/error */
static int read_session(struct request *r, const char *hash, struct row *row)
{
    struct db_stmt *st =
        db_prepare(r->srv->db, "SELECT s.user_id, s.expires_at, s.refresh_token, s.last_accessed, "
                               "u.username, u.email, u.role, u.user_data "
                               "FROM oauth_sessions s JOIN users u ON u.id = s.user_id "
                               "WHERE s.id = ?");
    if (!st)
        return -1;
    db_bind_text(st, 1, hash);
    int rc = db_step(st);
    if (rc == DB_OK)
        return 0;
    if (rc != DB_ROW) {
        db_reset(st);
        return -1;
    }
    arena_t *a = r->arena;
    memset(row, 0, sizeof *row);
    row->s.user_id = arena_strdup(a, db_column_text(st, 0));
    row->s.expires_at = arena_strdup(a, db_column_text(st, 1));
    row->refresh_sealed = db_column_is_null(st, 2) || !*db_column_text(st, 2)
                              ? NULL
                              : arena_strdup(a, db_column_text(st, 2));
    row->last_accessed = arena_strdup(a, db_column_text(st, 3));
    row->s.username = arena_strdup(a, db_column_text(st, 4));
    row->s.email = arena_strdup(a, db_column_text(st, 5));
    row->s.role = arena_strdup(a, *db_column_text(st, 6) ? db_column_text(st, 6) : "student");
    row->s.user_data = arena_strdup(a, db_column_text(st, 7));
    db_reset(st);
    return 1;
}

static bool still_valid(const struct row *row, int64_t now)
{
    int64_t exp;
    return db_ts_parse(row->s.expires_at, &exp) && exp > now;
}

static void touch(struct request *r, const char *hash, const struct row *row, int64_t now)
{
    int64_t last;
    if (db_ts_parse(row->last_accessed, &last) && now - last < SESS_TOUCH_INTERVAL_US)
        return;
    char ts[DB_TS_LEN];
    db_ts_from_epoch_us(now, ts);
    struct db_stmt *st = db_prepare(r->srv->db, "UPDATE oauth_sessions SET last_accessed = ? "
                                                "WHERE id = ?");
    if (!st)
        return;
    db_bind_text(st, 1, ts);
    db_bind_text(st, 2, hash);
    /* Best effort: a busy database must not fail a read request over a timestamp. */
    if (db_step(st) != DB_OK)
        db_reset(st);
}

/* Move the expiry of an expired row from `from` to `to`, if the row still
 * holds that expiry and refresh token: DB_OK and *moved, or a db error. */
static int move_expiry(struct request *r, const char *hash, const char *refresh_sealed,
                       const char *from, const char *to, bool *moved)
{
    *moved = false;
    struct db_stmt *st =
        db_prepare(r->srv->db, "UPDATE oauth_sessions SET expires_at = ? "
                               "WHERE id = ? AND refresh_token = ? AND expires_at = ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, to);
    db_bind_text(st, 2, hash);
    db_bind_text(st, 3, refresh_sealed);
    db_bind_text(st, 4, from);
    int rc = db_step(st);
    if (rc != DB_OK) {
        db_reset(st);
        return rc;
    }
    *moved = db_changes(r->srv->db) == 1;
    return DB_OK;
}

/* Renew a claimed session at the provider and store the new tokens, if the
 * row still holds the refresh token used. False when the provider refused. */
static bool renew(struct request *r, const char *hash, const struct row *row)
{
    struct config *cfg = r->srv->cfg;
    const char *refresh = sess_open(r->arena, cfg, row->refresh_sealed);
    if (!refresh) {
        log_warnx("session of %s: stored refresh token can't be opened (SECRET_KEY changed?)",
                  row->s.user_id);
        return false;
    }
    struct oauth_tokens tok;
    const char *err = NULL;
    if (oauth_refresh(cfg, r->arena, refresh, &tok, &err) < 0)
        return false; /* logged by oauth.c */
    /* Renewed sessions live SESSION_TTL from now, as the Flask backend did. */
    int64_t exp = epoch_us_now() + (int64_t)cfg->session_ttl * 1000000;
    char exp_ts[DB_TS_LEN], now_ts[DB_TS_LEN];
    db_ts_from_epoch_us(exp, exp_ts);
    db_ts_now(now_ts);
    struct db_stmt *st =
        db_prepare(r->srv->db, "UPDATE oauth_sessions SET access_token = ?, refresh_token = ?, "
                               "expires_at = ?, last_accessed = ? "
                               "WHERE id = ? AND refresh_token = ?");
    if (!st)
        return true;
    const char *sealed_access = sess_seal(r->arena, cfg, tok.access_token);
    const char *new_refresh = tok.refresh_token ? tok.refresh_token : refresh;
    db_bind_text(st, 1, sealed_access ? sealed_access : "");
    db_bind_text(st, 2, sess_seal(r->arena, cfg, new_refresh));
    db_bind_text(st, 3, exp_ts);
    db_bind_text(st, 4, now_ts);
    db_bind_text(st, 5, hash);
    db_bind_text(st, 6, row->refresh_sealed);
    int rc = db_step(st);
    if (rc != DB_OK) {
        /* The provider has spent the old token: without this write the
         * session ends when the claim does. Said, since it is rare. */
        db_reset(st);
        log_warnx("session of %s: storing the renewed tokens failed (%s); the session ends "
                  "when its claim does",
                  row->s.user_id, rc == DB_BUSY ? "database busy" : "database error");
    } else if (db_changes(r->srv->db) == 0) {
        log_warnx("session of %s: renewed, but its row changed meanwhile", row->s.user_id);
    }
    return true;
}

/* An expired session with a refresh token: renew it, or find it renewed (or
 * being renewed) by another worker. Re-reads *row. */
static int renew_expired(struct request *r, const char *hash, struct row *row, int64_t now)
{
    struct config *cfg = r->srv->cfg;
    int64_t claim_until = now + (int64_t)OAUTH_TOTAL_TIMEOUT_MS * 1000 +
                          (int64_t)cfg->db_busy_timeout_ms * 1000 + RENEW_CLAIM_MARGIN_US;
    char claim_ts[DB_TS_LEN];
    db_ts_from_epoch_us(claim_until, claim_ts);
    const char *expired = row->s.expires_at;
    bool claimed;
    int rc = move_expiry(r, hash, row->refresh_sealed, expired, claim_ts, &claimed);
    if (rc != DB_OK)
        return SESS_UNAVAILABLE;
    if (claimed && !renew(r, hash, row)) {
        /* Refused (or unreachable): the session is over, for every request. */
        bool back;
        if (move_expiry(r, hash, row->refresh_sealed, claim_ts, expired, &back) != DB_OK)
            log_warnx("session of %s: its expiry could not be put back; it ends when the "
                      "claim does",
                      row->s.user_id);
        return SESS_EXPIRED;
    }
    int found = read_session(r, hash, row);
    if (found <= 0)
        return found < 0 ? SESS_UNAVAILABLE : SESS_INVALID;
    return still_valid(row, epoch_us_now()) ? SESS_OK : SESS_EXPIRED;
}

int sess_lookup(struct request *r, const char *token, struct session *out)
{
    if (!token || !*token)
        return SESS_MISSING;
    struct row row;
    char hash[SESS_HASH_LEN];
    sess_hash_token(token, hash);
    int found = read_session(r, hash, &row);
    if (found < 0)
        return SESS_UNAVAILABLE;
    if (found == 0)
        return SESS_INVALID;
    int64_t now = epoch_us_now();
    if (!still_valid(&row, now)) {
        if (!row.refresh_sealed)
            return SESS_EXPIRED;
        int rc = renew_expired(r, hash, &row, now);
        if (rc != SESS_OK)
            return rc;
        now = epoch_us_now();
    }
    touch(r, hash, &row, now);
    *out = row.s;
    out->token = arena_strdup(r->arena, token);
    memcpy(out->hash, hash, sizeof hash);
    return SESS_OK;
}

int sess_resolve(struct request *r)
{
    if (r->sess_status >= 0)
        return r->sess_status;
    const char *token = sess_token_from_request(r);
    struct session *s = arena_calloc(r->arena, 1, sizeof *s);
    r->sess_status = sess_lookup(r, token, s);
    if (r->sess_status == SESS_OK) {
        r->sess = s;
        r->user_id = s->user_id;
    }
    return r->sess_status;
}
