/*
 * oauth.c — HTTP calls to the identity provider with libcurl. One easy
 * handle per worker, reset between calls, so connections to the provider
 * are reused across logins.
 */
#include "oauth.h"
#include "log.h"
#include "util.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

void oauth_pkce_verifier(const struct config *cfg, const char *state, char out[44])
{
    unsigned char mac[32];
    unsigned int len = 32;
    const char *secret = cfg->secret_key ? cfg->secret_key : "";
    char *msg = xasprintf("pkce:%s", state);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, strlen(msg), mac,
         &len);
    free(msg);
    b64url_encode(mac, sizeof mac, out); /* 43 characters: RFC 7636's minimum length */
}

void oauth_pkce_challenge(const char *verifier, char out[44])
{
    unsigned char md[32];
    unsigned int len = 0;
    EVP_Digest(verifier, strlen(verifier), md, &len, EVP_sha256(), NULL);
    b64url_encode(md, sizeof md, out);
}

struct buf {
    char *data;
    size_t len;
    bool overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > OAUTH_MAX_RESPONSE) {
        b->overflow = true;
        return 0; /* aborts the transfer */
    }
    b->data = xrealloc(b->data, b->len + n + 1);
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static CURL *handle(void)
{
    static CURL *h;
    static bool initialised;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        initialised = true;
    }
    if (!h)
        h = curl_easy_init();
    else
        curl_easy_reset(h);
    return h;
}

/* POST a form (when form != NULL) or GET with a bearer token. Returns the
 * HTTP status (0 when no answer) and the body in *body (caller frees). */
static long call(const char *url, const char *form, const char *bearer, char **body,
                 const char *what)
{
    CURL *h = handle();
    *body = NULL;
    if (!h) {
        log_errx("%s: curl_easy_init failed", what);
        return 0;
    }
    struct buf b = {0};
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    char *auth = NULL;
    if (bearer) {
        auth = xasprintf("Authorization: Bearer %s", bearer);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)OAUTH_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)OAUTH_TOTAL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_USERAGENT, "s4s-fcgi");
    if (form) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    }
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    } else {
        log_warnx("%s: %s: %s%s", what, url, curl_easy_strerror(rc),
                  b.overflow ? " (response too large)" : "");
    }
    curl_slist_free_all(hdrs);
    free(auth);
    if (rc != CURLE_OK) {
        free(b.data);
        return 0;
    }
    *body = b.data ? b.data : xstrdup("");
    return status;
}

static char *form_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s ? s : "", 0);
    char *out = xstrdup(e ? e : "");
    curl_free(e);
    return out;
}

/* Log the provider's answer (bounded) without showing it to anyone. */
static void log_provider_error(const char *what, long status, const char *body)
{
    log_warnx("%s: provider answered %ld: %.300s", what, status, body ? body : "");
}

static int parse_tokens(arena_t *a, const char *body, struct oauth_tokens *out, const char **err)
{
    cJSON *j = cJSON_Parse(body);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        log_warnx("token endpoint: answer is not a JSON object: %.200s", body);
        *err = "The identity provider gave an invalid answer";
        return -1;
    }
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(j, "access_token");
    if (!cJSON_IsString(at) || !*at->valuestring) {
        cJSON_Delete(j);
        log_warnx("token endpoint: no access_token in the answer");
        *err = "The identity provider gave no access token";
        return -1;
    }
    out->access_token = arena_strdup(a, at->valuestring);
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(j, "refresh_token");
    out->refresh_token =
        cJSON_IsString(rt) && *rt->valuestring ? arena_strdup(a, rt->valuestring) : NULL;
    int64_t now = epoch_us_now();
    const cJSON *ein = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    const cJSON *eat = cJSON_GetObjectItemCaseSensitive(j, "expires_at");
    double secs = -1;
    if (cJSON_IsNumber(ein))
        secs = ein->valuedouble;
    else if (cJSON_IsString(ein))
        secs = atof(ein->valuestring);
    if (secs > 0 && secs < 10.0 * 365 * 86400)
        out->expires_at_us = now + (int64_t)(secs * 1e6);
    else if (cJSON_IsNumber(eat) && eat->valuedouble > 1e9)
        out->expires_at_us = (int64_t)(eat->valuedouble * 1e6);
    else
        out->expires_at_us = now + (int64_t)OAUTH_DEFAULT_TTL_S * 1000000;
    cJSON_Delete(j);
    return 0;
}

static int token_call(const struct config *cfg, arena_t *a, char *form, struct oauth_tokens *out,
                      const char **err, const char *what)
{
    char *body = NULL;
    long status = call(cfg->oauth_token_url, form, NULL, &body, what);
    free(form);
    int rc = -1;
    if (status == 0) {
        *err = "The identity provider could not be reached";
    } else if (status != 200) {
        log_provider_error(what, status, body);
        *err = "The identity provider refused the login";
    } else {
        rc = parse_tokens(a, body, out, err);
    }
    free(body);
    return rc;
}

int oauth_exchange_code(const struct config *cfg, arena_t *a, const char *code,
                        const char *verifier, struct oauth_tokens *out, const char **err)
{
    char *c = form_escape(code), *ru = form_escape(cfg->oauth_redirect_uri),
         *ci = form_escape(cfg->oauth_client_id), *cs = form_escape(cfg->oauth_client_secret),
         *cv = form_escape(verifier);
    char *form = xasprintf("grant_type=authorization_code&code=%s&redirect_uri=%s&client_id=%s"
                           "&client_secret=%s&code_verifier=%s",
                           c, ru, ci, cs, cv);
    free(c);
    free(ru);
    free(ci);
    free(cs);
    free(cv);
    return token_call(cfg, a, form, out, err, "token exchange");
}

int oauth_refresh(const struct config *cfg, arena_t *a, const char *refresh_token,
                  struct oauth_tokens *out, const char **err)
{
    char *rt = form_escape(refresh_token), *ci = form_escape(cfg->oauth_client_id),
         *cs = form_escape(cfg->oauth_client_secret);
    char *form = xasprintf("grant_type=refresh_token&refresh_token=%s&client_id=%s"
                           "&client_secret=%s",
                           rt, ci, cs);
    free(rt);
    free(ci);
    free(cs);
    return token_call(cfg, a, form, out, err, "token refresh");
}

int oauth_userinfo(const struct config *cfg, const char *access_token, cJSON **claims,
                   const char **err)
{
    char *body = NULL;
    *claims = NULL;
    long status = call(cfg->oauth_userinfo_url, NULL, access_token, &body, "userinfo");
    int rc = -1;
    if (status == 0) {
        *err = "The identity provider could not be reached";
    } else if (status != 200) {
        log_provider_error("userinfo", status, body);
        *err = "The identity provider refused to tell who you are";
    } else {
        cJSON *j = cJSON_Parse(body);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            log_warnx("userinfo: answer is not a JSON object: %.200s", body);
            *err = "The identity provider gave an invalid answer";
        } else {
            *claims = j;
            rc = 0;
        }
    }
    free(body);
    return rc;
}
