/*
 * unit_jsonw.c — TAP tests for the JSON writer (jsonw.c, included): its
 * output is byte for byte what cJSON_PrintUnformatted prints for the same
 * values — hostile strings (quotes, backslashes, every control character,
 * UTF-8), integers at the edges, empty and nested containers — and it parses
 * back to them.
 */
#include "../src/jsonw.c"

#include "tap.h"

#include <cjson/cJSON.h>

/* cJSON's text for a tree, then the tree freed. */
static char *cjson_text(cJSON *o)
{
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

static void test_strings(void)
{
    char controls[32];
    for (int i = 1; i < 32; i++)
        controls[i - 1] = (char)i;
    controls[31] = '\0';
    const char *samples[] = {"",
                             "plain",
                             "quote \" and backslash \\",
                             "/slash/",
                             controls,
                             "Übung 1 & 2 — ✓ 🐱",
                             "</script><script>alert(1)</script>",
                             "tab\there\nnewline\r\f\b",
                             "\x7f del"};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        struct jsonw w;
        jw_init(&w, 8); /* small: growth is exercised too */
        jw_object_begin(&w);
        jw_key(&w, samples[i]);
        jw_string(&w, samples[i]);
        jw_object_end(&w);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, samples[i], samples[i]);
        char *want = cjson_text(o);
        is_str(w.buf, want, "string sample %zu written as cJSON writes it", i);
        cJSON *back = cJSON_Parse(w.buf);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(back, samples[i]);
        ok(cJSON_IsString(v) && strcmp(v->valuestring, samples[i]) == 0,
           "… and parses back to the same bytes");
        cJSON_Delete(back);
        cJSON_free(want);
        jw_free(&w);
    }
}

static void test_shapes(void)
{
    struct jsonw w;
    jw_init(&w, 16);
    jw_object_begin(&w);
    jw_key(&w, "projects");
    jw_array_begin(&w);
    for (int i = 0; i < 3; i++) {
        jw_object_begin(&w);
        jw_key(&w, "id");
        jw_int(&w, i == 2 ? INT64_C(999999999999999) : -i);
        jw_key(&w, "description");
        jw_string(&w, i ? "d" : NULL);
        jw_key(&w, "is_published");
        jw_bool(&w, i == 1);
        jw_key(&w, "groups");
        jw_array_begin(&w);
        for (int g = 0; g < i; g++) {
            jw_object_begin(&w);
            jw_key(&w, "id");
            jw_int(&w, g);
            jw_object_end(&w);
        }
        jw_array_end(&w);
        jw_key(&w, "empty");
        jw_object_begin(&w);
        jw_object_end(&w);
        jw_object_end(&w);
    }
    jw_array_end(&w);
    jw_key(&w, "count");
    jw_int(&w, 3);
    jw_key(&w, "success");
    jw_bool(&w, true);
    jw_object_end(&w);

    const char *want = "{\"projects\":["
                       "{\"id\":0,\"description\":null,\"is_published\":false,\"groups\":[],"
                       "\"empty\":{}},"
                       "{\"id\":-1,\"description\":\"d\",\"is_published\":true,"
                       "\"groups\":[{\"id\":0}],\"empty\":{}},"
                       "{\"id\":999999999999999,\"description\":\"d\",\"is_published\":false,"
                       "\"groups\":[{\"id\":0},{\"id\":1}],\"empty\":{}}"
                       "],\"count\":3,\"success\":true}";
    is_str(w.buf, want, "a listing's shape: commas, nesting, null, booleans, empty containers");
    is_int((long long)w.len, (long long)strlen(want), "len counts the text");
    is_int(w.depth, 0, "every level closed");
    cJSON *back = cJSON_Parse(w.buf);
    ok(back != NULL, "cJSON parses it");
    char *again = cjson_text(back);
    is_str(again, want, "cJSON prints the parsed tree identically");
    cJSON_free(again);
    jw_free(&w);

    jw_init(&w, 1);
    jw_array_begin(&w);
    jw_int(&w, INT64_MIN);
    jw_int(&w, INT64_MAX);
    jw_null(&w);
    jw_string(&w, NULL);
    jw_array_end(&w);
    is_str(w.buf, "[-9223372036854775808,9223372036854775807,null,null]",
           "integers at the edges, exactly; NULL strings are null");
    jw_free(&w);
}

int main(void)
{
    test_strings();
    test_shapes();
    return tap_done();
}
