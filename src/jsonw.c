/*
 * jsonw.c — the JSON text writer of jsonw.h: a growing buffer, comma state per
 * nesting level, and cJSON's escaping rules for strings.
 */
#include "jsonw.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jsonw *w, size_t initial)
{
    memset(w, 0, sizeof *w);
    w->cap = initial > 64 ? initial : 64;
    w->buf = xmalloc(w->cap);
    w->first[0] = true;
}

void jw_free(struct jsonw *w)
{
    free(w->buf);
    w->buf = NULL;
    w->len = w->cap = 0;
}

static void reserve(struct jsonw *w, size_t more)
{
    if (w->len + more + 1 <= w->cap)
        return;
    while (w->len + more + 1 > w->cap)
        w->cap *= 2;
    w->buf = xrealloc(w->buf, w->cap);
}

static void put(struct jsonw *w, const char *s, size_t n)
{
    reserve(w, n);
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* Before any value: the comma that separates it from the previous one. */
static void value_start(struct jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = false;
}

static void open_level(struct jsonw *w, char c)
{
    value_start(w);
    put(w, &c, 1);
    if (w->depth + 1 < JSONW_DEPTH)
        w->depth++;
    else
        log_errx("jsonw: nesting deeper than %d", JSONW_DEPTH);
    w->first[w->depth] = true;
}

static void close_level(struct jsonw *w, char c)
{
    put(w, &c, 1);
    if (w->depth > 0)
        w->depth--;
}

void jw_object_begin(struct jsonw *w)
{
    open_level(w, '{');
}

void jw_object_end(struct jsonw *w)
{
    close_level(w, '}');
}

void jw_array_begin(struct jsonw *w)
{
    open_level(w, '[');
}

void jw_array_end(struct jsonw *w)
{
    close_level(w, ']');
}

/* A quoted, escaped string: ", \ and control characters as cJSON writes them;
 * everything else (UTF-8 included) as it is. */
static void put_quoted(struct jsonw *w, const char *s)
{
    size_t n = strlen(s);
    reserve(w, n + 2);
    w->buf[w->len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        switch (*p) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            put(w, esc, 2);
        } else if (*p < 0x20) {
            char u[8];
            snprintf(u, sizeof u, "\\u%04x", *p);
            put(w, u, 6);
        } else {
            reserve(w, 1);
            w->buf[w->len++] = (char)*p;
        }
    }
    put(w, "\"", 1);
}

void jw_key(struct jsonw *w, const char *key)
{
    value_start(w);
    put_quoted(w, key);
    put(w, ":", 1);
    w->after_key = true;
}

void jw_string(struct jsonw *w, const char *s)
{
    if (!s) {
        jw_null(w);
        return;
    }
    value_start(w);
    put_quoted(w, s);
}

void jw_int(struct jsonw *w, int64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%" PRId64, v);
    value_start(w);
    put(w, d, (size_t)n);
}

void jw_bool(struct jsonw *w, bool v)
{
    value_start(w);
    if (v)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}

void jw_null(struct jsonw *w)
{
    value_start(w);
    put(w, "null", 4);
}
