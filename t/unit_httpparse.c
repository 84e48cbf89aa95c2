/* Unit tests for src/httpparse.c: URL decoding, query strings, cookies, paths. */
#include "../src/httpparse.c"
#include "tap.h"

int main(void)
{
    arena_t a;
    arena_init(&a, 1024);

    is_str(url_decode(&a, "%C3%9Cbung+1+%26+2", 18, true),
           "\xc3\x9c"
           "bung 1 & 2",
           "form decoding: UTF-8 escape, plus, %%26");
    is_str(url_decode(&a, "a+b", 3, false), "a+b", "plus kept in paths");
    is_str(url_decode(&a, "100%", 4, true), "100%", "lone percent kept");
    is_str(url_decode(&a, "%zz%4", 5, true), "%zz%4", "bad escapes kept literally");
    is_str(url_decode(&a, "a%00b", 5, true), "ab", "NUL bytes dropped");
    is_str(url_decode(&a, "%2e%2E", 6, false), "..", "escaped dots decode");
    is_str(url_encode(&a, "Übung 1&2/x?"), "%C3%9Cbung%201%262%2Fx%3F", "url_encode");

    struct kvlist q;
    parse_query(&a, "title=%C3%9Cbung+1+%26+2&original_id=5&is_copy&&x=1&x=2", &q);
    is_int(q.n, 5, "five parameters (empty pieces skipped)");
    is_str(kv_get(&q, "title"),
           "\xc3\x9c"
           "bung 1 & 2",
           "title decoded");
    is_str(kv_get(&q, "is_copy"), "", "key without value is empty");
    is_str(kv_get(&q, "x"), "1", "first duplicate wins");
    ok(kv_get(&q, "missing") == NULL, "missing key is NULL");
    parse_query(&a, "", &q);
    is_int(q.n, 0, "empty query");
    parse_query(&a, NULL, &q);
    is_int(q.n, 0, "NULL query");
    /* bounded: far more params than the limit */
    char *many = arena_alloc(&a, 10 * 1000 + 1);
    many[0] = '\0';
    for (int i = 0; i < 1000; i++)
        strcat(many, "k=v&");
    parse_query(&a, many, &q);
    is_int(q.n, HTTP_MAX_QUERY_PARAMS, "query params are capped");

    struct kvlist c;
    parse_cookies(&a, "oauth_state=abc123; theme=\"dark\" ;  empty=; =novalue; flag", &c);
    is_int(c.n, 3, "three cookies");
    is_str(kv_get(&c, "oauth_state"), "abc123", "cookie value");
    is_str(kv_get(&c, "theme"), "dark", "quotes stripped");
    is_str(kv_get(&c, "empty"), "", "empty cookie value");
    parse_cookies(&a, NULL, &c);
    is_int(c.n, 0, "no Cookie header");
    parse_cookies(&a, ";;;", &c);
    is_int(c.n, 0, "only separators");

    ok(path_is_clean("/api/status"), "plain path is clean");
    ok(path_is_clean("/api/assets/"), "trailing slash is clean");
    ok(path_is_clean("/"), "root is clean");
    ok(!path_is_clean("/api/../etc/passwd"), "dot-dot rejected");
    ok(!path_is_clean("/api/./x"), "dot segment rejected");
    ok(!path_is_clean("/api//x"), "empty segment rejected");
    ok(!path_is_clean("/api/x\n"), "control byte rejected");
    ok(!path_is_clean("/api\\x"), "backslash rejected");
    ok(!path_is_clean("api"), "relative rejected");
    ok(!path_is_clean("/.."), "bare dot-dot rejected");
    ok(path_is_clean("/a..b/c.d"), "dots inside names are fine");

    is_str(http_reason(404), "Not Found", "reason phrase");
    is_str(http_reason(507), "Insufficient Storage", "reason 507");

    arena_free(&a);
    return tap_done();
}
