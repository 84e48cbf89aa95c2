/*
 * jsonw.h — a JSON text writer for the hot listings: values are appended to
 * one growing buffer, so answering a list of projects costs no tree of
 * allocations (cJSON builds one node and two strings per field, then prints
 * them). The output is what cJSON_PrintUnformatted makes of the same values:
 * compact, strings escaped the same way, integers without a fraction.
 *
 * Commas are the writer's business: a caller opens and closes objects and
 * arrays and names keys; nesting is bounded by JSONW_DEPTH.
 */
#ifndef S4S_JSONW_H
#define S4S_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONW_DEPTH 16

struct jsonw {
    char *buf; /* malloc'd; owned until jw_take or jw_free */
    size_t len, cap;
    int depth;
    bool first[JSONW_DEPTH]; /* no value written yet at this level */
    bool after_key;          /* the next value follows a key: no comma */
};

void jw_init(struct jsonw *w, size_t initial);
void jw_free(struct jsonw *w);

void jw_object_begin(struct jsonw *w);
void jw_object_end(struct jsonw *w);
void jw_array_begin(struct jsonw *w);
void jw_array_end(struct jsonw *w);
void jw_key(struct jsonw *w, const char *key);

void jw_string(struct jsonw *w, const char *s); /* NULL writes null */
void jw_int(struct jsonw *w, int64_t v);
void jw_bool(struct jsonw *w, bool v);
void jw_null(struct jsonw *w);

#endif
