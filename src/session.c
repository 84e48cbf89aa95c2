/*
 * session.c — session tokens, lookup with renewal, and sealing of the
 * provider tokens stored beside them.
 *
 * Renewal of one session by two workers at once: each asks the provider
 * with the refresh token it read, then stores the new tokens only if the
 * row still holds that refresh token (a compare-and-swap on refresh_token).
 * The loser re-reads the row and finds it renewed, so the session is never
 * lost and a stale token never overwrites a fresh one.
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
#include <unistd.h>

/* Waiting for another worker's renewal to commit: polls start at 25 ms and
 * grow to 200 ms. The wait is bounded by how long that commit may take:
 * DB_BUSY_TIMEOUT for the write lock, plus a margin for the commit's fsync. */
#define RENEW_POLL_FIRST_US 25000
#define RENEW_POLL_MAX_US 200000
#define RENEW_WAIT_MARGIN_US 2000000

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

/* Renew at the provider; store only if nobody renewed it meanwhile. */
static void renew(struct request *r, const char *hash, const struct row *row)
{
    struct config *cfg = r->srv->cfg;
    const char *refresh = sess_open(r->arena, cfg, row->refresh_sealed);
    if (!refresh) {
        log_warnx("session of %s: stored refresh token can't be opened (SECRET_KEY changed?)",
                  row->s.user_id);
        return;
    }
    struct oauth_tokens tok;
    const char *err = NULL;
    if (oauth_refresh(cfg, r->arena, refresh, &tok, &err) < 0)
        return; /* logged by oauth.c; the caller re-reads in case another worker won */
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
        return;
    const char *sealed_access = sess_seal(r->arena, cfg, tok.access_token);
    const char *new_refresh = tok.refresh_token ? tok.refresh_token : refresh;
    db_bind_text(st, 1, sealed_access ? sealed_access : "");
    db_bind_text(st, 2, sess_seal(r->arena, cfg, new_refresh));
    db_bind_text(st, 3, exp_ts);
    db_bind_text(st, 4, now_ts);
    db_bind_text(st, 5, hash);
    db_bind_text(st, 6, row->refresh_sealed);
    if (db_step(st) != DB_OK)
        db_reset(st);
    else if (db_changes(r->srv->db) == 0)
        log_info("session of %s was renewed concurrently by another worker", row->s.user_id);
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
        const char *used = row.refresh_sealed;
        renew(r, hash, &row);
        /* Our refresh may have lost to another worker's: the provider spent
         * the token, but the winner has not committed yet. While the row
         * still holds the token we used, wait for that commit (bounded: a
         * slow disk must not log a student out). */
        int64_t give_up =
            epoch_us_now() + (int64_t)r->srv->cfg->db_busy_timeout_ms * 1000 + RENEW_WAIT_MARGIN_US;
        useconds_t poll = RENEW_POLL_FIRST_US;
        for (;;) {
            found = read_session(r, hash, &row);
            if (found <= 0)
                return found < 0 ? SESS_UNAVAILABLE : SESS_INVALID;
            now = epoch_us_now();
            if (still_valid(&row, now))
                break;
            if (now >= give_up || !row.refresh_sealed || strcmp(row.refresh_sealed, used) != 0)
                return SESS_EXPIRED;
            usleep(poll);
            if (poll < RENEW_POLL_MAX_US)
                poll *= 2;
        }
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
