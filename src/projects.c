/*
 * projects.c — owns every SQL statement about projects: rows, the content
 * versions kept (project_versions), shares (project_groups), the version
 * each session last saw (session_project_versions) and conflict copies
 * (conflict_copies); the compare-and-swap write transaction; the JSON
 * shapes API.md gives project rows. No file I/O: blobs are committed by
 * the caller before a transaction points at them.
 */
#include "projects.h"
#include "jsonw.h"
#include "db.h"
#include "log.h"
#include "request.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

/* The columns read_row() expects first, in this order. */
#define ROW_COLS                                                                                   \
    "p.id, p.name, p.description, p.created_at, p.updated_at, p.version, p.owner_id, "             \
    "p.is_published, p.sb3_sha256, p.sb3_size, p.thumbnail_sha256, p.thumbnail_type"
#define ROW_NCOLS 12

#define CONFLICT_SUFFIX " (conflict copy)"
#define COPY_PREFIX "Copy of "

/* ---- permissions ----------------------------------------------------------- */

bool proj_is_staff(const struct proj_caller *c)
{
    return c && c->role && (strcmp(c->role, "teacher") == 0 || strcmp(c->role, "admin") == 0);
}

bool proj_via_group(const struct proj_row *p, const struct proj_caller *c)
{
    return c && p->is_published && p->in_shared_group && strcmp(p->owner_id, c->user_id) != 0;
}

bool proj_may_view(const struct proj_row *p, const struct proj_caller *c)
{
    if (!c)
        return false;
    return strcmp(p->owner_id, c->user_id) == 0 || proj_via_group(p, c) || proj_is_staff(c);
}

bool proj_may_copy(const struct proj_row *p, const struct proj_caller *c)
{
    return c && (strcmp(p->owner_id, c->user_id) == 0 || proj_via_group(p, c));
}

/* ---- titles ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* s made valid UTF-8 without control characters, at most max_chars characters. */
static char *utf8_clean(arena_t *a, const char *s, size_t max_chars)
{
    size_t len = strlen(s);
    /* Out of the at most max_chars * 4 input bytes read, each gives at most
     * 3 output bytes (an invalid byte becomes U+FFFD). */
    size_t cap = (len < max_chars * 4 ? len : max_chars * 4) * 3 + 1;
    char *out = arena_alloc(a, cap);
    size_t o = 0, chars = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p && chars < max_chars) {
        size_t n = utf8_seq(p);
        if (n == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            p++;
        } else if (n == 1) {
            out[o++] = (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p;
            p++;
        } else {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        }
        chars++;
    }
    out[o] = '\0';
    return out;
}

const char *proj_title_clean(arena_t *a, const char *title)
{
    return utf8_clean(a, title ? title : "", PROJ_TITLE_MAX);
}

const char *proj_share_body_parse(arena_t *a, const cJSON *body, int64_t **ids, size_t *n)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(body, "group_ids");
    if (!cJSON_IsObject(body) || !list)
        return "Missing group_ids parameter";
    if (!cJSON_IsArray(list))
        return "group_ids must be a list of integers";
    *n = (size_t)cJSON_GetArraySize(list);
    *ids = arena_alloc(a, (*n ? *n : 1) * sizeof **ids);
    size_t i = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, list)
    {
        /* Integers only (JSON numbers exact in a double), no strings or fractions.
         * The range first: casting a double outside int64_t's is undefined
         * (found by fuzz/share_body.c with {"group_ids":[2e31]}). */
        if (!cJSON_IsNumber(g))
            return "group_ids must be a list of integers";
        double d = g->valuedouble;
        if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(int64_t)d)
            return "group_ids must be a list of integers";
        (*ids)[i++] = (int64_t)d;
    }
    return NULL;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* prefix + base + suffix within PROJ_TITLE_MAX characters, base cut to fit. */
static const char *compose_title(arena_t *a, const char *prefix, const char *base,
                                 const char *suffix)
{
    size_t fixed = utf8_chars(prefix) + utf8_chars(suffix);
    const char *b = utf8_clean(a, base, PROJ_TITLE_MAX > fixed ? PROJ_TITLE_MAX - fixed : 0);
    return arena_printf(a, "%s%s%s", prefix, b, suffix);
}

/* ---- rows and JSON ---------------------------------------------------------- */

static const char *col_text_or_null(struct db_stmt *st, int col, arena_t *a)
{
    return db_column_is_null(st, col) ? NULL : arena_strdup(a, db_column_text(st, col));
}

static void read_row(struct db_stmt *st, arena_t *a, struct proj_row *p)
{
    memset(p, 0, sizeof *p);
    p->id = db_column_int64(st, 0);
    p->title = arena_strdup(a, db_column_text(st, 1));
    p->description = col_text_or_null(st, 2, a);
    p->created_at = arena_strdup(a, db_column_text(st, 3));
    p->updated_at = arena_strdup(a, db_column_text(st, 4));
    p->version = db_column_int64(st, 5);
    p->owner_id = arena_strdup(a, db_column_text(st, 6));
    p->is_published = db_column_int64(st, 7) != 0;
    p->sb3_sha256 = col_text_or_null(st, 8, a);
    p->sb3_size = db_column_int64(st, 9);
    p->thumb_sha256 = col_text_or_null(st, 10, a);
    p->thumb_type = col_text_or_null(st, 11, a);
    if (p->sb3_sha256 && !*p->sb3_sha256)
        p->sb3_sha256 = NULL;
    if (p->thumb_sha256 && !*p->thumb_sha256)
        p->thumb_sha256 = NULL;
}

static void add_ts(cJSON *o, const char *key, const char *db_ts)
{
    char iso[48];
    db_ts_to_iso(db_ts ? db_ts : "", iso, sizeof iso);
    if (*iso)
        cJSON_AddStringToObject(o, key, iso);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *proj_summary_json(const struct proj_row *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)p->id);
    cJSON_AddStringToObject(o, "title", p->title);
    if (p->description)
        cJSON_AddStringToObject(o, "description", p->description);
    else
        cJSON_AddNullToObject(o, "description");
    add_ts(o, "created_at", p->created_at);
    add_ts(o, "updated_at", p->updated_at);
    cJSON_AddNumberToObject(o, "version", (double)p->version);
    return o;
}

char *proj_thumbnail_url(arena_t *a, const char *base_path, int64_t id)
{
    return arena_printf(a, "%s/api/projects/%lld/thumbnail", base_path ? base_path : "",
                        (long long)id);
}

static cJSON *group_json(struct db_stmt *st, int col)
{
    cJSON *g = cJSON_CreateObject();
    cJSON_AddNumberToObject(g, "id", (double)db_column_int64(st, col));
    cJSON_AddStringToObject(g, "name", db_column_text(st, col + 1));
    cJSON_AddStringToObject(g, "external_id", db_column_text(st, col + 2));
    return g;
}

/* Finish a read: DB_OK when the statement ran to its end, else its error. */
static int step_end(struct db_stmt *st, int rc)
{
    if (rc != DB_OK)
        db_reset(st);
    return rc;
}

int proj_groups_json(struct db *db, int64_t id, cJSON **out)
{
    *out = NULL;
    struct db_stmt *st = db_prepare(db, "SELECT g.id, g.name, g.external_id FROM project_groups pg "
                                        "JOIN groups g ON g.id = pg.group_id "
                                        "WHERE pg.project_id = ? ORDER BY g.name, g.id");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while ((rc = db_step(st)) == DB_ROW)
        cJSON_AddItemToArray(arr, group_json(st, 0));
    if (step_end(st, rc) != DB_OK) {
        cJSON_Delete(arr);
        return rc;
    }
    *out = arr;
    return DB_OK;
}

/* ---- reads ------------------------------------------------------------------ */

static int load_row(struct db *db, arena_t *a, int64_t id, const struct proj_caller *c,
                    struct proj_row *out, bool *found)
{
    *found = false;
    struct db_stmt *st = db_prepare(
        db, "SELECT " ROW_COLS ", "
            "EXISTS (SELECT 1 FROM project_groups pg JOIN user_groups ug "
            "ON ug.group_id = pg.group_id WHERE pg.project_id = p.id AND ug.user_id = ?), "
            "(SELECT s.version FROM session_project_versions s "
            "WHERE s.session_id = ? AND s.project_id = p.id) "
            "FROM projects p WHERE p.id = ? AND p.deleted_at IS NULL");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, c ? c->user_id : NULL);
    db_bind_text(st, 2, c ? c->sess_hash : NULL);
    db_bind_int64(st, 3, id);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        read_row(st, a, out);
        out->in_shared_group = db_column_int64(st, ROW_NCOLS) != 0;
        out->seen_version = db_column_int64(st, ROW_NCOLS + 1);
        *found = true;
        db_reset(st);
        return DB_OK;
    }
    return step_end(st, rc);
}

int proj_get(struct db *db, arena_t *a, int64_t id, const struct proj_caller *c,
             struct proj_row *out, bool *found)
{
    return load_row(db, a, id, c, out, found);
}

int proj_recent(struct db *db, arena_t *a, const char *owner_id, struct proj_row *out, bool *found)
{
    *found = false;
    struct db_stmt *st = db_prepare(db, "SELECT " ROW_COLS " FROM projects p "
                                        "WHERE p.owner_id = ? AND p.deleted_at IS NULL "
                                        "ORDER BY p.updated_at DESC, p.id DESC LIMIT 1");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, owner_id);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        read_row(st, a, out);
        *found = true;
        db_reset(st);
        return DB_OK;
    }
    return step_end(st, rc);
}

/* The upsert behind every "the session has seen version v": versions only
 * grow, so a late reader never lowers what a writer of the same session set. */
static int note_seen(struct db *db, const char *sess_hash, int64_t id, int64_t version)
{
    if (!sess_hash || !*sess_hash)
        return DB_OK;
    struct db_stmt *st =
        db_prepare(db, "INSERT INTO session_project_versions (session_id, project_id, version) "
                       "VALUES (?, ?, ?) ON CONFLICT (session_id, project_id) DO UPDATE "
                       "SET version = excluded.version "
                       "WHERE excluded.version > session_project_versions.version");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, sess_hash);
    db_bind_int64(st, 2, id);
    db_bind_int64(st, 3, version);
    return db_step(st);
}

struct seen_ctx {
    const char *sess_hash;
    int64_t id, version;
};

static int note_seen_tx(struct db *db, void *vctx)
{
    struct seen_ctx *x = vctx;
    return note_seen(db, x->sess_hash, x->id, x->version);
}

int proj_note_seen(struct db *db, const char *sess_hash, int64_t id, int64_t version)
{
    struct seen_ctx x = {sess_hash, id, version};
    return db_transaction(db, true, note_seen_tx, &x);
}

/*
 * The listings (GET /api/projects and /api/projects/shared) are the hottest
 * reads: their rows are collected first (strings in an arena), one more query
 * fills every project's groups, and the answer is written as JSON text
 * directly (jsonw.h) instead of through a cJSON tree.
 */
struct list_group {
    int64_t id;
    const char *name, *external_id;
    struct list_group *next;
};

struct list_item {
    struct proj_row row;
    const char *owner_name; /* shared listing only */
    struct list_group *groups, **groups_tail;
};

struct list {
    arena_t a;
    struct list_item *v; /* listing order */
    size_t n, cap;
    struct list_item **by_id; /* sorted by project id, for attaching groups */
};

static void list_init(struct list *l)
{
    memset(l, 0, sizeof *l);
    arena_init(&l->a, 16384);
}

static void list_free(struct list *l)
{
    free(l->v);
    free(l->by_id);
    arena_free(&l->a);
}

static struct list_item *list_add(struct list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->v = xrealloc(l->v, l->cap * sizeof *l->v);
    }
    struct list_item *it = &l->v[l->n++];
    memset(it, 0, sizeof *it);
    return it;
}

static int item_id_cmp(const void *x, const void *y)
{
    int64_t a = (*(struct list_item *const *)x)->row.id;
    int64_t b = (*(struct list_item *const *)y)->row.id;
    return (a > b) - (a < b);
}

/* Rows of (project_id, group id, name, external_id) onto the listed items, in
 * the query's order. */
static int attach_groups(struct db_stmt *st, struct list *l)
{
    l->by_id = xmalloc((l->n ? l->n : 1) * sizeof *l->by_id);
    for (size_t i = 0; i < l->n; i++) {
        l->by_id[i] = &l->v[i];
        l->v[i].groups_tail = &l->v[i].groups;
    }
    if (l->n > 1)
        qsort(l->by_id, l->n, sizeof *l->by_id, item_id_cmp);
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        struct list_item key_item = {.row.id = db_column_int64(st, 0)};
        const struct list_item *key = &key_item;
        struct list_item **found =
            l->n ? bsearch(&key, l->by_id, l->n, sizeof *l->by_id, item_id_cmp) : NULL;
        if (!found)
            continue;
        struct list_group *g = arena_alloc(&l->a, sizeof *g);
        g->id = db_column_int64(st, 1);
        g->name = arena_strdup(&l->a, db_column_text(st, 2));
        g->external_id = arena_strdup(&l->a, db_column_text(st, 3));
        g->next = NULL;
        *(*found)->groups_tail = g;
        (*found)->groups_tail = &g->next;
    }
    return step_end(st, rc);
}

static void jw_ts(struct jsonw *w, const char *key, const char *db_ts)
{
    char iso[48];
    db_ts_to_iso(db_ts ? db_ts : "", iso, sizeof iso);
    jw_key(w, key);
    if (*iso)
        jw_string(w, iso);
    else
        jw_null(w);
}

/* {"projects":[…],"count":n,"success":true}: each item the summary (as
 * proj_summary_json), thumbnail_url, is_published, shared_with_groups, and for
 * the shared listing the owner. */
static void list_write(struct list *l, const char *base_path, bool with_owner, struct jsonw *w)
{
    jw_object_begin(w);
    jw_key(w, "projects");
    jw_array_begin(w);
    for (size_t i = 0; i < l->n; i++) {
        const struct list_item *it = &l->v[i];
        const struct proj_row *p = &it->row;
        jw_object_begin(w);
        jw_key(w, "id");
        jw_int(w, p->id);
        jw_key(w, "title");
        jw_string(w, p->title);
        jw_key(w, "description");
        jw_string(w, p->description);
        jw_ts(w, "created_at", p->created_at);
        jw_ts(w, "updated_at", p->updated_at);
        jw_key(w, "version");
        jw_int(w, p->version);
        jw_key(w, "thumbnail_url");
        jw_string(w, proj_thumbnail_url(&l->a, base_path, p->id));
        jw_key(w, "is_published");
        jw_bool(w, p->is_published);
        jw_key(w, "shared_with_groups");
        jw_array_begin(w);
        for (const struct list_group *g = it->groups; g; g = g->next) {
            jw_object_begin(w);
            jw_key(w, "id");
            jw_int(w, g->id);
            jw_key(w, "name");
            jw_string(w, g->name);
            jw_key(w, "external_id");
            jw_string(w, g->external_id);
            jw_object_end(w);
        }
        jw_array_end(w);
        if (with_owner) {
            jw_key(w, "owner");
            jw_object_begin(w);
            jw_key(w, "id");
            jw_string(w, p->owner_id);
            jw_key(w, "username");
            jw_string(w, it->owner_name);
            jw_object_end(w);
        }
        jw_object_end(w);
    }
    jw_array_end(w);
    jw_key(w, "count");
    jw_int(w, (int64_t)l->n);
    jw_key(w, "success");
    jw_bool(w, true);
    jw_object_end(w);
}

/* One listing: rows_sql (ROW_COLS, then the owner's username when
 * with_owner) and groups_sql (project id, group id, name, external_id), both
 * taking user_id for each of their nparams placeholders. */
static int list_run(struct db *db, const char *base_path, const char *user_id, int nparams,
                    bool with_owner, const char *rows_sql, const char *groups_sql, struct jsonw *w)
{
    struct list l;
    list_init(&l);
    int rc = DB_ERROR;
    struct db_stmt *st = db_prepare(db, rows_sql);
    if (!st)
        goto out;
    for (int i = 1; i <= nparams; i++)
        db_bind_text(st, i, user_id);
    while ((rc = db_step(st)) == DB_ROW) {
        struct list_item *it = list_add(&l);
        read_row(st, &l.a, &it->row);
        if (with_owner)
            it->owner_name = db_column_is_null(st, ROW_NCOLS)
                                 ? it->row.owner_id
                                 : arena_strdup(&l.a, db_column_text(st, ROW_NCOLS));
    }
    if ((rc = step_end(st, rc)) != DB_OK)
        goto out;
    if (!(st = db_prepare(db, groups_sql))) {
        rc = DB_ERROR;
        goto out;
    }
    for (int i = 1; i <= nparams; i++)
        db_bind_text(st, i, user_id);
    if ((rc = attach_groups(st, &l)) == DB_OK)
        list_write(&l, base_path, with_owner, w);
out:
    list_free(&l);
    return rc;
}

int proj_list_owned(struct db *db, const char *base_path, const char *owner_id, struct jsonw *w)
{
    /* ix_projects_owner_updated (owner_id, updated_at, rowid) gives this order. */
    return list_run(db, base_path, owner_id, 1, false,
                    "SELECT " ROW_COLS " FROM projects p "
                    "WHERE p.owner_id = ? AND p.deleted_at IS NULL "
                    "ORDER BY p.updated_at DESC, p.id DESC",
                    "SELECT pg.project_id, g.id, g.name, g.external_id FROM projects p "
                    "JOIN project_groups pg ON pg.project_id = p.id "
                    "JOIN groups g ON g.id = pg.group_id "
                    "WHERE p.owner_id = ? AND p.deleted_at IS NULL ORDER BY g.name, g.id",
                    w);
}

int proj_list_shared(struct db *db, const char *base_path, const char *user_id, struct jsonw *w)
{
    /* Only the groups the caller is in (API.md), for every listed project at once. */
    return list_run(db, base_path, user_id, 2, true,
                    "SELECT " ROW_COLS ", u.username FROM projects p "
                    "LEFT JOIN users u ON u.id = p.owner_id "
                    "WHERE p.deleted_at IS NULL AND p.is_published = 1 AND p.owner_id <> ? "
                    "AND p.id IN (SELECT pg.project_id FROM user_groups ug "
                    "JOIN project_groups pg ON pg.group_id = ug.group_id WHERE ug.user_id = ?) "
                    "ORDER BY p.updated_at DESC, p.id DESC",
                    "SELECT pg.project_id, g.id, g.name, g.external_id FROM user_groups ug "
                    "JOIN project_groups pg ON pg.group_id = ug.group_id "
                    "JOIN projects p ON p.id = pg.project_id "
                    "JOIN groups g ON g.id = pg.group_id "
                    "WHERE ug.user_id = ? AND p.deleted_at IS NULL "
                    "AND p.is_published = 1 AND p.owner_id <> ? ORDER BY g.name, g.id",
                    w);
}

cJSON *proj_summaries_for_owner(struct request *r, const char *owner_id)
{
    struct db *db = r->srv->db;
    struct db_stmt *st = db_prepare(db, "SELECT " ROW_COLS " FROM projects p "
                                        "WHERE p.owner_id = ? AND p.deleted_at IS NULL "
                                        "ORDER BY p.updated_at DESC, p.id DESC");
    if (!st)
        return NULL;
    db_bind_text(st, 1, owner_id);
    cJSON *arr = cJSON_CreateArray();
    struct proj_row row;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        read_row(st, r->arena, &row);
        cJSON *o = proj_summary_json(&row);
        cJSON_AddStringToObject(o, "thumbnail_url",
                                proj_thumbnail_url(r->arena, r->srv->cfg->base_path, row.id));
        cJSON_AddItemToArray(arr, o);
    }
    if (step_end(st, rc) != DB_OK) {
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
}

int proj_versions_json(struct db *db, int64_t id, cJSON **out)
{
    *out = NULL;
    struct db_stmt *st =
        db_prepare(db, "SELECT version, size, sha256, created_at, created_by "
                       "FROM project_versions WHERE project_id = ? ORDER BY version DESC");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    cJSON *arr = cJSON_CreateArray();
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddNumberToObject(v, "version", (double)db_column_int64(st, 0));
        cJSON_AddNumberToObject(v, "size", (double)db_column_int64(st, 1));
        cJSON_AddStringToObject(v, "sha256", db_column_text(st, 2));
        add_ts(v, "created_at", db_column_text(st, 3));
        if (db_column_is_null(st, 4))
            cJSON_AddNullToObject(v, "created_by");
        else
            cJSON_AddStringToObject(v, "created_by", db_column_text(st, 4));
        cJSON_AddItemToArray(arr, v);
    }
    if (step_end(st, rc) != DB_OK) {
        cJSON_Delete(arr);
        return rc;
    }
    *out = arr;
    return DB_OK;
}

static int version_content(struct db *db, arena_t *a, int64_t id, int64_t version,
                           const char **sha256, int64_t *size)
{
    *sha256 = NULL;
    struct db_stmt *st = db_prepare(db, "SELECT sha256, size FROM project_versions "
                                        "WHERE project_id = ? AND version = ?");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    db_bind_int64(st, 2, version);
    int rc = db_step(st);
    if (rc == DB_ROW) {
        *sha256 = arena_strdup(a, db_column_text(st, 0));
        if (size)
            *size = db_column_int64(st, 1);
        db_reset(st);
        return DB_OK;
    }
    return step_end(st, rc);
}

int proj_version_content(struct db *db, arena_t *a, int64_t id, int64_t version,
                         const char **sha256)
{
    return version_content(db, a, id, version, sha256, NULL);
}

/* ---- writes ----------------------------------------------------------------- */

/* Keep one content version; drop the oldest beyond retention (same transaction). */
static int add_version(struct db *db, int64_t id, int64_t version, const char *sha256, int64_t size,
                       const char *user_id, const char *now, int retention)
{
    struct db_stmt *st = db_prepare(
        db, "INSERT INTO project_versions (project_id, version, sha256, size, created_by, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, version) DO UPDATE "
            "SET sha256 = excluded.sha256, size = excluded.size, "
            "created_by = excluded.created_by, created_at = excluded.created_at");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    db_bind_int64(st, 2, version);
    db_bind_text(st, 3, sha256);
    db_bind_int64(st, 4, size);
    db_bind_text(st, 5, user_id);
    db_bind_text(st, 6, now);
    int rc = db_step(st);
    if (rc != DB_OK)
        return rc;
    st = db_prepare(db, "DELETE FROM project_versions WHERE project_id = ? AND version <= "
                        "(SELECT version FROM project_versions WHERE project_id = ? "
                        "ORDER BY version DESC LIMIT 1 OFFSET ?)");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    db_bind_int64(st, 2, id);
    db_bind_int64(st, 3, retention > 0 ? retention : 1);
    return db_step(st);
}

/* A new project row (and its first version when it has content). */
static int insert_project(struct db *db, const char *owner_id, const char *title,
                          const char *description, const char *sb3_sha256, int64_t sb3_size,
                          const char *thumb_sha256, const char *thumb_type, const char *now,
                          int64_t *id)
{
    *id = 0;
    struct db_stmt *st = db_prepare(
        db, "INSERT INTO projects (name, description, owner_id, created_at, updated_at, "
            "is_published, version, sb3_sha256, sb3_size, thumbnail_sha256, thumbnail_type) "
            "VALUES (?, ?, ?, ?, ?, 0, 1, ?, ?, ?, ?) RETURNING id");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, title);
    db_bind_text(st, 2, description);
    db_bind_text(st, 3, owner_id);
    db_bind_text(st, 4, now);
    db_bind_text(st, 5, now);
    db_bind_text(st, 6, sb3_sha256);
    if (sb3_sha256)
        db_bind_int64(st, 7, sb3_size);
    else
        db_bind_null(st, 7);
    db_bind_text(st, 8, thumb_sha256);
    db_bind_text(st, 9, thumb_sha256 ? thumb_type : NULL);
    int rc = db_step(st);
    if (rc != DB_ROW)
        return step_end(st, rc == DB_OK ? DB_ERROR : rc);
    *id = db_column_int64(st, 0);
    if ((rc = db_step(st)) != DB_OK)
        return step_end(st, rc);
    if (sb3_sha256)
        return add_version(db, *id, 1, sb3_sha256, sb3_size, owner_id, now, 1);
    return DB_OK;
}

/* The compare-and-swap of content, title and thumbnail (NULL keeps a field). */
static int cas_content(struct db *db, int64_t id, int64_t expected, const char *title,
                       const char *sb3_sha256, int64_t sb3_size, const char *thumb_sha256,
                       const char *thumb_type, const char *now, bool *changed)
{
    *changed = false;
    struct db_stmt *st =
        db_prepare(db, "UPDATE projects SET name = COALESCE(?, name), "
                       "sb3_sha256 = COALESCE(?, sb3_sha256), sb3_size = COALESCE(?, sb3_size), "
                       "thumbnail_sha256 = COALESCE(?, thumbnail_sha256), "
                       "thumbnail_type = COALESCE(?, thumbnail_type), updated_at = ?, "
                       "version = version + 1 WHERE id = ? AND version = ? AND deleted_at IS NULL");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, title);
    db_bind_text(st, 2, sb3_sha256);
    if (sb3_sha256)
        db_bind_int64(st, 3, sb3_size);
    else
        db_bind_null(st, 3);
    db_bind_text(st, 4, thumb_sha256);
    db_bind_text(st, 5, thumb_sha256 ? thumb_type : NULL);
    db_bind_text(st, 6, now);
    db_bind_int64(st, 7, id);
    db_bind_int64(st, 8, expected);
    int rc = db_step(st);
    if (rc == DB_OK)
        *changed = db_changes(db) == 1;
    return rc;
}

struct write_ctx {
    arena_t *a;
    const struct proj_caller *c;
    const struct proj_write *w;
    struct proj_result *res;
};

/*
 * The session's conflict copy of project orig: claimed first with INSERT …
 * ON CONFLICT DO NOTHING on its (session, project) key, so concurrent
 * conflicting saves of one session (serialised by the write lock, or
 * waiting on the key in PostgreSQL) find one row and make one copy.
 */
static int conflict_copy(struct db *db, struct write_ctx *x, const struct proj_row *orig,
                         const char *sb3_sha256, int64_t sb3_size, const char *now)
{
    const struct proj_caller *c = x->c;
    const struct proj_write *w = x->w;
    struct db_stmt *st =
        db_prepare(db, "INSERT INTO conflict_copies (session_id, project_id, copy_id) "
                       "VALUES (?, ?, 0) ON CONFLICT (session_id, project_id) DO NOTHING");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, c->sess_hash);
    db_bind_int64(st, 2, orig->id);
    int rc = db_step(st);
    if (rc != DB_OK)
        return rc;
    st = db_prepare(db, "SELECT c.copy_id, p.version FROM conflict_copies c "
                        "LEFT JOIN projects p ON p.id = c.copy_id AND p.owner_id = ? "
                        "AND p.deleted_at IS NULL "
                        "WHERE c.session_id = ? AND c.project_id = ?");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, c->user_id);
    db_bind_text(st, 2, c->sess_hash);
    db_bind_int64(st, 3, orig->id);
    rc = db_step(st);
    if (rc != DB_ROW)
        return step_end(st, rc == DB_OK ? DB_ERROR : rc);
    int64_t copy_id = db_column_int64(st, 0);
    int64_t copy_version = db_column_is_null(st, 1) ? 0 : db_column_int64(st, 1);
    db_reset(st);

    const char *thumb = w->op == PROJ_OP_UPDATE ? w->thumb_sha256 : NULL;
    if (copy_version > 0) {
        /* A normal versioned write of the copy the session already has. */
        bool changed;
        rc = cas_content(db, copy_id, copy_version, NULL, sb3_sha256, sb3_size, thumb,
                         w->thumb_type, now, &changed);
        if (rc != DB_OK)
            return rc;
        if (!changed)
            return DB_ERROR; /* cannot happen inside the write transaction */
        rc = add_version(db, copy_id, copy_version + 1, sb3_sha256, sb3_size, c->user_id, now,
                         w->retention);
    } else {
        const char *base = w->op == PROJ_OP_UPDATE && w->title ? w->title : orig->title;
        const char *title = compose_title(x->a, "", base, CONFLICT_SUFFIX);
        const char *desc = arena_printf(x->a, "Conflict copy of project %lld, saved on %.10s",
                                        (long long)orig->id, now);
        rc = insert_project(db, c->user_id, title, desc, sb3_sha256, sb3_size, thumb, w->thumb_type,
                            now, &copy_id);
        if (rc != DB_OK)
            return rc;
        st = db_prepare(db, "UPDATE conflict_copies SET copy_id = ? "
                            "WHERE session_id = ? AND project_id = ?");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, copy_id);
        db_bind_text(st, 2, c->sess_hash);
        db_bind_int64(st, 3, orig->id);
        rc = db_step(st);
    }
    if (rc == DB_OK)
        x->res->conflict_copy_id = copy_id;
    return rc;
}

static int int64_cmp(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* The requested group ids that the owner belongs to, sorted. */
static int share_filter(struct db *db, arena_t *a, const char *owner_id, const int64_t *ids,
                        size_t n, int64_t **kept, size_t *nkept)
{
    *kept = NULL;
    *nkept = 0;
    int64_t *want = arena_alloc(a, (n ? n : 1) * sizeof *want);
    if (n)
        memcpy(want, ids, n * sizeof *want);
    qsort(want, n, sizeof *want, int64_cmp);
    struct db_stmt *st = db_prepare(db, "SELECT group_id FROM user_groups WHERE user_id = ? "
                                        "ORDER BY group_id");
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, owner_id);
    size_t cap = 0;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        int64_t g = db_column_int64(st, 0);
        if (!n || !bsearch(&g, want, n, sizeof *want, int64_cmp))
            continue;
        if (*nkept == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *grown = arena_alloc(a, cap * sizeof *grown);
            if (*nkept)
                memcpy(grown, *kept, *nkept * sizeof *grown);
            *kept = grown;
        }
        (*kept)[(*nkept)++] = g;
    }
    return step_end(st, rc);
}

/* Make project_groups exactly kept; rows that stay keep their published_at. */
static int share_apply(struct db *db, arena_t *a, int64_t id, const int64_t *kept, size_t nkept,
                       const char *now)
{
    struct db_stmt *st = db_prepare(db, "SELECT group_id FROM project_groups WHERE project_id = ?");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    int64_t *drop = NULL;
    size_t ndrop = 0, cap = 0;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        int64_t g = db_column_int64(st, 0);
        if (nkept && bsearch(&g, kept, nkept, sizeof *kept, int64_cmp))
            continue;
        if (ndrop == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *grown = arena_alloc(a, cap * sizeof *grown);
            if (ndrop)
                memcpy(grown, drop, ndrop * sizeof *grown);
            drop = grown;
        }
        drop[ndrop++] = g;
    }
    if ((rc = step_end(st, rc)) != DB_OK)
        return rc;
    for (size_t i = 0; i < ndrop; i++) {
        st = db_prepare(db, "DELETE FROM project_groups WHERE project_id = ? AND group_id = ?");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, id);
        db_bind_int64(st, 2, drop[i]);
        if ((rc = db_step(st)) != DB_OK)
            return rc;
    }
    for (size_t i = 0; i < nkept; i++) {
        st = db_prepare(db, "INSERT INTO project_groups (project_id, group_id, published_at) "
                            "VALUES (?, ?, ?) ON CONFLICT (project_id, group_id) DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, id);
        db_bind_int64(st, 2, kept[i]);
        db_bind_text(st, 3, now);
        if ((rc = db_step(st)) != DB_OK)
            return rc;
    }
    return DB_OK;
}

/* The project's groups as structs (read inside the transaction that set them). */
static int groups_read(struct db *db, arena_t *a, int64_t id, struct proj_group **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct db_stmt *st = db_prepare(db, "SELECT g.id, g.name, g.external_id FROM project_groups pg "
                                        "JOIN groups g ON g.id = pg.group_id "
                                        "WHERE pg.project_id = ? ORDER BY g.name, g.id");
    if (!st)
        return DB_ERROR;
    db_bind_int64(st, 1, id);
    size_t cap = 0;
    int rc;
    while ((rc = db_step(st)) == DB_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct proj_group *grown = arena_alloc(a, cap * sizeof *grown);
            if (*n)
                memcpy(grown, *out, *n * sizeof *grown);
            *out = grown;
        }
        struct proj_group *g = &(*out)[(*n)++];
        g->id = db_column_int64(st, 0);
        g->name = arena_strdup(a, db_column_text(st, 1));
        g->external_id = arena_strdup(a, db_column_text(st, 2));
    }
    return step_end(st, rc);
}

static int write_tx(struct db *db, void *vctx)
{
    struct write_ctx *x = vctx;
    const struct proj_write *w = x->w;
    struct proj_result *res = x->res;
    memset(res, 0, sizeof *res); /* a retried transaction starts afresh */

    struct proj_row cur;
    bool found;
    int rc = load_row(db, x->a, w->id, x->c, &cur, &found);
    if (rc != DB_OK)
        return rc;
    if (!found) {
        res->status = PROJ_NOT_FOUND;
        return DB_OK;
    }
    if (strcmp(cur.owner_id, x->c->user_id) != 0) {
        res->status = PROJ_FORBIDDEN;
        return DB_OK;
    }
    const char *sha = w->op == PROJ_OP_UPDATE ? w->sb3_sha256 : NULL;
    int64_t size = w->sb3_size;
    if (w->op == PROJ_OP_RESTORE) {
        if ((rc = version_content(db, x->a, w->id, w->restore_version, &sha, &size)) != DB_OK)
            return rc;
        if (!sha) {
            res->status = PROJ_NO_VERSION;
            return DB_OK;
        }
    }
    /* API.md's sources, first found: the client's, the session's last-seen, the current. */
    int64_t expected = w->expected;
    if (expected == PROJ_EXPECT_SESSION)
        expected = cur.seen_version > 0 ? cur.seen_version : cur.version;
    else if (expected <= 0)
        expected = cur.version;

    char now[DB_TS_LEN];
    db_ts_now(now);
    bool changed = false;
    int64_t *kept = NULL;
    size_t nkept = 0;
    switch (w->op) {
    case PROJ_OP_UPDATE:
    case PROJ_OP_RESTORE:
        rc = cas_content(db, w->id, expected, w->op == PROJ_OP_UPDATE ? w->title : NULL, sha, size,
                         w->op == PROJ_OP_UPDATE ? w->thumb_sha256 : NULL, w->thumb_type, now,
                         &changed);
        break;
    case PROJ_OP_THUMBNAIL:
        rc = cas_content(db, w->id, expected, NULL, NULL, 0, w->thumb_sha256, w->thumb_type, now,
                         &changed);
        break;
    case PROJ_OP_SHARE: {
        rc = share_filter(db, x->a, cur.owner_id, w->group_ids, w->ngroups, &kept, &nkept);
        if (rc != DB_OK)
            return rc;
        struct db_stmt *st = db_prepare(
            db, "UPDATE projects SET is_published = ?, updated_at = ?, version = version + 1 "
                "WHERE id = ? AND version = ? AND deleted_at IS NULL");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, nkept > 0);
        db_bind_text(st, 2, now);
        db_bind_int64(st, 3, w->id);
        db_bind_int64(st, 4, expected);
        rc = db_step(st);
        changed = rc == DB_OK && db_changes(db) == 1;
        break;
    }
    case PROJ_OP_DELETE: {
        struct db_stmt *st =
            db_prepare(db, "UPDATE projects SET deleted_at = ?, version = version + 1 "
                           "WHERE id = ? AND version = ? AND deleted_at IS NULL");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, now);
        db_bind_int64(st, 2, w->id);
        db_bind_int64(st, 3, expected);
        rc = db_step(st);
        changed = rc == DB_OK && db_changes(db) == 1;
        break;
    }
    }
    if (rc != DB_OK)
        return rc;
    if (!changed) {
        /* Nothing of the project changed; keep the rejected content for the student. */
        res->status = PROJ_CONFLICT;
        res->current_version = cur.version;
        if (sha && x->c->sess_hash && *x->c->sess_hash)
            return conflict_copy(db, x, &cur, sha, size, now);
        return DB_OK;
    }
    int64_t version = expected + 1;
    if (sha && (rc = add_version(db, w->id, version, sha, size, x->c->user_id, now,
                                 w->retention)) != DB_OK)
        return rc;
    if (w->op == PROJ_OP_SHARE) {
        if ((rc = share_apply(db, x->a, w->id, kept, nkept, now)) != DB_OK)
            return rc;
        if ((rc = groups_read(db, x->a, w->id, &res->groups, &res->ngroups)) != DB_OK)
            return rc;
    }
    if (w->op == PROJ_OP_DELETE) {
        res->row = cur;
        res->row.version = version;
        res->status = PROJ_OK;
        return DB_OK;
    }
    if ((rc = note_seen(db, x->c->sess_hash, w->id, version)) != DB_OK)
        return rc;
    if ((rc = load_row(db, x->a, w->id, x->c, &res->row, &found)) != DB_OK)
        return rc;
    if (!found)
        return DB_ERROR;
    res->status = PROJ_OK;
    return DB_OK;
}

int proj_write(struct db *db, arena_t *a, const struct proj_caller *c, const struct proj_write *w,
               struct proj_result *res)
{
    struct write_ctx x = {a, c, w, res};
    return db_transaction(db, true, write_tx, &x);
}

struct create_ctx {
    arena_t *a;
    const struct proj_caller *c;
    const struct proj_new *n;
    int64_t copy_of; /* proj_copy: the source project */
    struct proj_result *res;
};

static int create_tx(struct db *db, void *vctx)
{
    struct create_ctx *x = vctx;
    struct proj_result *res = x->res;
    memset(res, 0, sizeof *res);
    char now[DB_TS_LEN];
    db_ts_now(now);
    const char *title, *desc, *sha, *thumb, *thumb_type;
    int64_t size;
    int rc;
    bool found;
    if (x->copy_of > 0) {
        struct proj_row src;
        if ((rc = load_row(db, x->a, x->copy_of, x->c, &src, &found)) != DB_OK)
            return rc;
        if (!found || !proj_may_copy(&src, x->c)) {
            res->status = found ? PROJ_FORBIDDEN : PROJ_NOT_FOUND;
            return DB_OK;
        }
        title = compose_title(x->a, COPY_PREFIX, src.title, "");
        desc = src.description;
        sha = src.sb3_sha256;
        size = src.sb3_size;
        thumb = src.thumb_sha256;
        thumb_type = src.thumb_type;
    } else {
        title = x->n->title;
        desc = arena_printf(x->a, "Created on %.10s", now);
        sha = x->n->sb3_sha256;
        size = x->n->sb3_size;
        thumb = x->n->thumb_sha256;
        thumb_type = x->n->thumb_type;
    }
    int64_t id;
    rc = insert_project(db, x->c->user_id, title, desc, sha, size, thumb, thumb_type, now, &id);
    if (rc != DB_OK)
        return rc;
    if ((rc = note_seen(db, x->c->sess_hash, id, 1)) != DB_OK)
        return rc;
    if ((rc = load_row(db, x->a, id, x->c, &res->row, &found)) != DB_OK)
        return rc;
    if (!found)
        return DB_ERROR;
    res->status = PROJ_OK;
    return DB_OK;
}

int proj_create(struct db *db, arena_t *a, const struct proj_caller *c, const struct proj_new *n,
                struct proj_row *out)
{
    struct proj_result res;
    struct create_ctx x = {a, c, n, 0, &res};
    int rc = db_transaction(db, true, create_tx, &x);
    if (rc == DB_OK)
        *out = res.row;
    return rc;
}

int proj_copy(struct db *db, arena_t *a, const struct proj_caller *c, int64_t id,
              struct proj_result *res)
{
    struct create_ctx x = {a, c, NULL, id, res};
    return db_transaction(db, true, create_tx, &x);
}
