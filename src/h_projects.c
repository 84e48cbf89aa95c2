/*
 * h_projects.c — the Projects section of API.md over HTTP: ids and titles
 * from the request, who may do what, multipart uploads checked by content
 * and committed to the blob store before the store layer (projects.c)
 * points a project at them, the expected version of every write (If-Match,
 * `version`), and the answers: summaries, files, ETags, 409 bodies.
 */
#include "content.h"
#include "db.h"
#include "log.h"
#include "projects.h"
#include "jsonw.h"
#include "request.h"
#include "response.h"
#include "routes.h"
#include "session.h"
#include "upload.h"
#include "util.h"

#include <string.h>
#include <strings.h>

#define SHARE_BODY_MAX 65536
#define MSG_NOT_FOUND "Project not found"
#define MSG_CONFLICT "Project was modified by another user. Please refresh and try again."
#define MSG_NO_UPDATE "You do not have permission to update this project"

/* The built-in thumbnail for projects without one: a 4×3 light grey PNG. */
static const unsigned char default_thumbnail[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
    0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3b,
    0x96, 0x39, 0x91, 0x00, 0x00, 0x00, 0x0e, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x78,
    0x86, 0x04, 0x18, 0x70, 0x72, 0x00, 0x76, 0xf9, 0x20, 0x59, 0x1e, 0xd5, 0xd3, 0x64, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};

/* ---- small helpers ------------------------------------------------------------- */

static struct proj_caller caller_of(struct request *r)
{
    struct proj_caller c = {0};
    if (r->sess) {
        c.user_id = r->sess->user_id;
        c.role = r->sess->role;
        c.sess_hash = r->sess->hash;
    }
    return c;
}

static void db_fail(struct request *r, int rc)
{
    resp_db_err(r, rc);
}

/* The :id capture; answers 404 when it is not a project id. */
static bool capture_id(struct request *r, int64_t *id)
{
    if (!parse_int64(req_capture(r, 0), 1, INT64_MAX, id)) {
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return false;
    }
    return true;
}

/* Load project id for c; answers 404 (or the error) and returns false when
 * there is none to work on. */
static bool load(struct request *r, int64_t id, const struct proj_caller *c, struct proj_row *p)
{
    bool found;
    int rc = proj_get(r->srv->db, r->arena, id, c, p, &found);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return false;
    }
    if (!found) {
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return false;
    }
    return true;
}

static bool is_owner(const struct proj_row *p, const struct proj_caller *c)
{
    return c->user_id && strcmp(p->owner_id, c->user_id) == 0;
}

/* The start of every owner-only write: the id from the path, the caller, the
 * project (404) and ownership (403 with forbidden), before the body is taken;
 * the write transaction checks again. false when answered. */
static bool load_owned(struct request *r, const char *forbidden, int64_t *id, struct proj_caller *c,
                       struct proj_row *p)
{
    if (!capture_id(r, id))
        return false;
    *c = caller_of(r);
    if (!load(r, *id, c, p))
        return false;
    if (!is_owner(p, c)) {
        resp_err(r, ERR_FORBIDDEN, forbidden);
        return false;
    }
    return true;
}

static const char *thumbnail_url(struct request *r, int64_t id)
{
    return proj_thumbnail_url(r->arena, r->srv->cfg->base_path, id);
}

/* The session has seen p (download, metadata): remember it for its next write.
 * Usually it is recorded already (p's row carries the session's seen version):
 * then no write transaction is spent on a read request. */
static bool note_seen(struct request *r, const struct proj_row *p)
{
    if (!r->sess || p->seen_version >= p->version)
        return true;
    int rc = proj_note_seen(r->srv->db, r->sess->hash, p->id, p->version);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return false;
    }
    return true;
}

static bool etag_version(struct request *r, int64_t version)
{
    return resp_etag(r, arena_printf(r->arena, "%lld", (long long)version));
}

/*
 * Content-Disposition for "<title, spaces as _><suffix>.sb3". A title of
 * plain printable ASCII gives exactly filename="…"; anything else gets an
 * ASCII stand-in plus RFC 6266's filename*=UTF-8''… (and never a quote or
 * control byte inside the header).
 */
static const char *disposition(struct request *r, const char *title, const char *suffix)
{
    const char *name = arena_printf(r->arena, "%s%s.sb3", title, suffix);
    size_t len = strlen(name);
    char *ascii = arena_alloc(r->arena, len + 1);
    char *utf8 = arena_alloc(r->arena, len + 1);
    size_t o = 0;
    bool plain = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        utf8[i] = ch == ' ' ? '_' : (char)ch;
        if (ch == ' ')
            ascii[o++] = '_';
        else if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            ascii[o++] = (char)ch;
        else {
            plain = false;
            if ((ch & 0xc0) != 0x80) /* one stand-in per character, not per byte */
                ascii[o++] = '_';
        }
    }
    ascii[o] = '\0';
    utf8[len] = '\0';
    if (plain)
        return arena_printf(r->arena, "attachment; filename=\"%s\"", ascii);
    return arena_printf(r->arena, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii,
                        url_encode(r->arena, utf8));
}

/*
 * The expected version of a write, first found: If-Match: "<version>"
 * (or * for any), the `version` query parameter, the `version` multipart
 * field; else PROJ_EXPECT_SESSION. Answers 400 on a malformed value.
 */
static bool expected_version(struct request *r, const struct form *form, int64_t *out)
{
    *out = PROJ_EXPECT_SESSION;
    const char *im = req_param(r, "HTTP_IF_MATCH");
    if (im) {
        while (*im == ' ' || *im == '\t')
            im++;
        size_t n = strlen(im);
        while (n > 0 && (im[n - 1] == ' ' || im[n - 1] == '\t'))
            n--;
        if (n == 1 && im[0] == '*') {
            *out = PROJ_EXPECT_ANY;
            return true;
        }
        if (n > 0) {
            const char *v = n >= 2 && im[0] == '"' && im[n - 1] == '"'
                                ? arena_strndup(r->arena, im + 1, n - 2)
                                : arena_strndup(r->arena, im, n);
            if (!parse_int64(v, 1, INT64_MAX, out)) {
                resp_err(r, ERR_BAD_REQUEST, "Invalid If-Match header: expected \"<version>\"");
                return false;
            }
            return true;
        }
    }
    const char *v = req_query(r, "version");
    if ((!v || !*v) && form)
        v = form_value(form, "version");
    if (v && *v && !parse_int64(v, 1, INT64_MAX, out)) {
        resp_err(r, ERR_BAD_REQUEST, "Invalid version parameter: expected a positive integer");
        return false;
    }
    return true;
}

/* ---- uploads -------------------------------------------------------------------- */

struct project_upload {
    struct form form;
    bool parsed;
    struct form_file *sb3;   /* checked .sb3, or NULL */
    struct form_file *thumb; /* checked thumbnail, or NULL */
    const char *thumb_type;
};

static bool is_multipart(const char *ct)
{
    static const char type[] = "multipart/form-data";
    return ct && strncasecmp(ct, type, sizeof type - 1) == 0;
}

/* Stream the multipart body into blob-store temp files. A request that is
 * not multipart carries no form (its body is drained). */
static bool upload_read(struct request *r, struct project_upload *u)
{
    memset(u, 0, sizeof *u);
    if (!is_multipart(r->content_type)) {
        req_drain_body(r);
        return true;
    }
    const char *msg = NULL;
    /* Project files and thumbnails are blobs, never assets: no MD5 needed. */
    static const struct upload_opts opts = {.skip_md5 = true};
    int rc = upload_parse_opts(r->arena, &r->srv->blobs, r->content_type, req_body_read, r,
                               r->srv->cfg->max_content_length, &u->form, &msg, &opts);
    switch (rc) {
    case UP_OK:
        u->parsed = true;
        return true;
    case UP_ERR_TOO_LARGE:
        resp_err(r, ERR_TOO_LARGE, NULL);
        break;
    case UP_ERR_NOSPACE:
        resp_err(r, ERR_NO_SPACE, NULL);
        break;
    case UP_ERR_IO:
        resp_err(r, ERR_INTERNAL, NULL);
        break;
    default:
        resp_err(r, ERR_BAD_REQUEST, arena_printf(r->arena, "Invalid upload: %s", msg));
        break;
    }
    return false;
}

static struct form_file *upload_file(struct project_upload *u, const char *name)
{
    return u->parsed ? form_get_file(&u->form, name) : NULL;
}

/* The .sb3 part, checked by content (400 / 422). */
static bool upload_check_sb3(struct request *r, struct project_upload *u, bool required)
{
    char msg[256];
    struct form_file *f = upload_file(u, "project_file");
    if (!f) {
        if (!required)
            return true;
        resp_err(r, ERR_BAD_REQUEST, "No project content provided");
        return false;
    }
    if (!*f->filename) {
        resp_err(r, ERR_BAD_REQUEST, "No file selected");
        return false;
    }
    int rc = content_check_sb3_magic(r->srv->magic, blob_writer_tmp_path(&f->w), msg, sizeof msg);
    if (rc != CONTENT_OK) {
        resp_err(r, rc == CONTENT_ERR_IO ? ERR_INTERNAL : ERR_UNPROCESSABLE, msg);
        return false;
    }
    u->sb3 = f;
    return true;
}

/* The thumbnail part, PNG or JPEG by content (415); an empty one counts as none. */
static bool upload_check_thumb(struct request *r, struct project_upload *u)
{
    char msg[256];
    struct form_file *f = upload_file(u, "thumbnail");
    if (!f || f->w.size == 0)
        return true;
    int rc = content_check_image(r->srv->magic, blob_writer_tmp_path(&f->w), &u->thumb_type, msg,
                                 sizeof msg);
    if (rc != CONTENT_OK) {
        resp_err(r, rc == CONTENT_ERR_IO ? ERR_INTERNAL : ERR_UNSUPPORTED, msg);
        return false;
    }
    u->thumb = f;
    return true;
}

/* Make the checked parts durable blobs (before any row points at them). */
static bool upload_commit(struct request *r, struct project_upload *u)
{
    struct form_file *parts[] = {u->sb3, u->thumb};
    for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
        if (!parts[i])
            continue;
        int rc = blob_writer_commit(&r->srv->blobs, &parts[i]->w);
        if (rc != BLOB_OK) {
            log_warnx("storing an upload: %s", blob_strerror(rc));
            resp_err(r, rc == BLOB_ERR_NOSPACE ? ERR_NO_SPACE : ERR_INTERNAL, NULL);
            return false;
        }
    }
    return true;
}

static void upload_done(struct project_upload *u)
{
    if (u->parsed)
        form_cleanup(&u->form);
}

/* ---- answers to writes ---------------------------------------------------------- */

/* DB error, 404, 403, 409 (with the conflict copy) or 404 for a missing
 * version; true when the write went through. */
static bool write_answered(struct request *r, int rc, const struct proj_result *res,
                           const char *forbidden)
{
    if (rc != DB_OK) {
        db_fail(r, rc);
        return false;
    }
    switch (res->status) {
    case PROJ_OK:
        return true;
    case PROJ_NOT_FOUND:
        resp_err(r, ERR_NOT_FOUND, MSG_NOT_FOUND);
        return false;
    case PROJ_FORBIDDEN:
        resp_err(r, ERR_FORBIDDEN, forbidden);
        return false;
    case PROJ_NO_VERSION:
        resp_err(r, ERR_NOT_FOUND, "Version not found");
        return false;
    case PROJ_CONFLICT:
        break;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", MSG_CONFLICT);
    cJSON_AddNumberToObject(o, "current_version", (double)res->current_version);
    if (res->conflict_copy_id > 0) {
        cJSON_AddNumberToObject(o, "conflict_copy_id", (double)res->conflict_copy_id);
        log_info("project %s: version conflict, rejected content kept in conflict copy %lld",
                 req_capture(r, 0), (long long)res->conflict_copy_id);
    }
    resp_json(r, 409, o);
    return false;
}

static void answer_summary(struct request *r, int status, const struct proj_row *p, bool success)
{
    cJSON *o = proj_summary_json(p);
    if (success)
        cJSON_AddBoolToObject(o, "success", 1);
    resp_json(r, status, o);
}

/* ---- listings ------------------------------------------------------------------- */

static void answer_list(struct request *r, int rc, struct jsonw *w)
{
    if (rc != DB_OK)
        db_fail(r, rc);
    else {
        resp_header(r, "Cache-Control", "no-store");
        resp_bytes(r, 200, "application/json; charset=utf-8", w->buf, w->len);
    }
    jw_free(w);
}

void h_projects_list(struct request *r)
{
    struct jsonw w;
    jw_init(&w, 16384);
    int rc = proj_list_owned(r->srv->db, r->srv->cfg->base_path, r->sess->user_id, &w);
    answer_list(r, rc, &w);
}

void h_projects_shared(struct request *r)
{
    struct jsonw w;
    jw_init(&w, 16384);
    int rc = proj_list_shared(r->srv->db, r->srv->cfg->base_path, r->sess->user_id, &w);
    answer_list(r, rc, &w);
}

void h_projects_recent(struct request *r)
{
    struct proj_row p;
    bool found;
    int rc = proj_recent(r->srv->db, r->arena, r->sess->user_id, &p, &found);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    if (!found) {
        /* The Flask backend's shape, which the frontend reads. */
        cJSON_AddStringToObject(o, "message", "No projects found for this user");
        resp_json(r, 404, o);
        return;
    }
    cJSON *proj = proj_summary_json(&p);
    cJSON_AddBoolToObject(proj, "success", 1);
    cJSON_AddItemToObject(o, "project", proj);
    resp_json(r, 200, o);
}

/* ---- create and write ----------------------------------------------------------- */

void h_project_create(struct request *r)
{
    struct proj_caller c = caller_of(r);
    struct project_upload u;
    if (!upload_read(r, &u) || !upload_check_sb3(r, &u, true) || !upload_check_thumb(r, &u) ||
        !upload_commit(r, &u))
        goto done;
    const char *title = req_query(r, "title");
    struct proj_new n = {
        .title = proj_title_clean(r->arena, title && *title ? title : PROJ_DEFAULT_TITLE),
        .sb3_sha256 = u.sb3->w.sha256,
        .sb3_size = (int64_t)u.sb3->w.size,
        .thumb_sha256 = u.thumb ? u.thumb->w.sha256 : NULL,
        .thumb_type = u.thumb_type,
    };
    struct proj_row p;
    int rc = proj_create(r->srv->db, r->arena, &c, &n, &p);
    if (rc != DB_OK) {
        db_fail(r, rc);
        goto done;
    }
    log_info("project %lld created by %s (%lld bytes)", (long long)p.id, c.user_id,
             (long long)p.sb3_size);
    answer_summary(r, 200, &p, true);
done:
    upload_done(&u);
}

void h_project_update(struct request *r)
{
    int64_t id;
    struct proj_caller c;
    struct proj_row p;
    if (!load_owned(r, MSG_NO_UPDATE, &id, &c, &p))
        return;
    struct project_upload u;
    if (!upload_read(r, &u) || !upload_check_sb3(r, &u, false) || !upload_check_thumb(r, &u))
        goto done;
    const char *title = req_query(r, "title");
    title = title && *title ? proj_title_clean(r->arena, title) : NULL;
    if (!u.sb3 && !u.thumb && !title) {
        resp_err(r, ERR_BAD_REQUEST, "No project content provided");
        goto done;
    }
    struct proj_write w = {.op = PROJ_OP_UPDATE,
                           .id = id,
                           .title = title,
                           .retention = r->srv->cfg->version_retention};
    if (!expected_version(r, u.parsed ? &u.form : NULL, &w.expected) || !upload_commit(r, &u))
        goto done;
    if (u.sb3) {
        w.sb3_sha256 = u.sb3->w.sha256;
        w.sb3_size = (int64_t)u.sb3->w.size;
    }
    if (u.thumb) {
        w.thumb_sha256 = u.thumb->w.sha256;
        w.thumb_type = u.thumb_type;
    }
    struct proj_result res = {0};
    int rc = proj_write(r->srv->db, r->arena, &c, &w, &res);
    if (write_answered(r, rc, &res, MSG_NO_UPDATE))
        answer_summary(r, 200, &res.row, true);
done:
    upload_done(&u);
}

void h_project_thumbnail_upload(struct request *r)
{
    int64_t id;
    struct proj_caller c;
    struct proj_row p;
    if (!load_owned(r, MSG_NO_UPDATE, &id, &c, &p))
        return;
    struct project_upload u;
    if (!upload_read(r, &u) || !upload_check_thumb(r, &u))
        goto done;
    if (!u.thumb) {
        resp_err(r, ERR_BAD_REQUEST, "No thumbnail provided");
        goto done;
    }
    struct proj_write w = {
        .op = PROJ_OP_THUMBNAIL, .id = id, .retention = r->srv->cfg->version_retention};
    if (!expected_version(r, u.parsed ? &u.form : NULL, &w.expected) || !upload_commit(r, &u))
        goto done;
    w.thumb_sha256 = u.thumb->w.sha256;
    w.thumb_type = u.thumb_type;
    struct proj_result res = {0};
    int rc = proj_write(r->srv->db, r->arena, &c, &w, &res);
    if (write_answered(r, rc, &res, MSG_NO_UPDATE)) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "success", 1);
        cJSON_AddStringToObject(o, "thumbnail_url", thumbnail_url(r, id));
        resp_json(r, 200, o);
    }
done:
    upload_done(&u);
}

void h_project_delete(struct request *r)
{
    int64_t id;
    if (!capture_id(r, &id))
        return;
    struct proj_caller c = caller_of(r);
    struct proj_write w = {.op = PROJ_OP_DELETE, .id = id};
    if (!expected_version(r, NULL, &w.expected))
        return;
    struct proj_result res = {0};
    int rc = proj_write(r->srv->db, r->arena, &c, &w, &res);
    if (!write_answered(r, rc, &res, "You do not have permission to delete this project"))
        return;
    log_info("project %lld deleted by %s", (long long)id, c.user_id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "success", 1);
    cJSON_AddStringToObject(o, "message", "Project successfully deleted");
    cJSON_AddNumberToObject(o, "id", (double)id);
    resp_json(r, 200, o);
}

/* {"group_ids":[int…]} into an arena array; answers 400 when it is not that. */
static bool share_body(struct request *r, int64_t **ids, size_t *n)
{
    cJSON *body = req_json_body(r, SHARE_BODY_MAX);
    if (!body)
        return false;
    const char *err = proj_share_body_parse(r->arena, body, ids, n);
    cJSON_Delete(body);
    if (err) {
        resp_err(r, ERR_BAD_REQUEST, err);
        return false;
    }
    return true;
}

static cJSON *groups_json(const struct proj_group *g, size_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)g[i].id);
        cJSON_AddStringToObject(o, "name", g[i].name);
        cJSON_AddStringToObject(o, "external_id", g[i].external_id);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

void h_project_share(struct request *r)
{
    static const char forbidden[] = "You can only share projects that you own";
    int64_t id;
    struct proj_caller c;
    struct proj_row p;
    if (!load_owned(r, forbidden, &id, &c, &p))
        return;
    struct proj_write w = {.op = PROJ_OP_SHARE, .id = id};
    int64_t *ids = NULL;
    if (!expected_version(r, NULL, &w.expected) || !share_body(r, &ids, &w.ngroups))
        return;
    w.group_ids = ids;
    struct proj_result res = {0};
    int rc = proj_write(r->srv->db, r->arena, &c, &w, &res);
    if (!write_answered(r, rc, &res, forbidden))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "title", res.row.title);
    cJSON_AddItemToObject(o, "shared_with_groups", groups_json(res.groups, res.ngroups));
    cJSON_AddNumberToObject(o, "version", (double)res.row.version);
    resp_json(r, 200, o);
}

void h_project_copy(struct request *r)
{
    int64_t id;
    if (!capture_id(r, &id))
        return;
    struct proj_caller c = caller_of(r);
    struct proj_result res = {0};
    int rc = proj_copy(r->srv->db, r->arena, &c, id, &res);
    if (!write_answered(r, rc, &res, "You do not have permission to copy this project"))
        return;
    cJSON *o = proj_summary_json(&res.row);
    cJSON_AddStringToObject(o, "thumbnail_url", thumbnail_url(r, res.row.id));
    cJSON_AddBoolToObject(o, "success", 1);
    resp_json(r, 201, o);
}

/* ---- reads of one project ------------------------------------------------------- */

/* The project when the caller may view it; else answered (404 / 403). */
static bool load_viewable(struct request *r, int64_t *id, struct proj_row *p, const char *forbidden)
{
    if (!capture_id(r, id))
        return false;
    struct proj_caller c = caller_of(r);
    if (!load(r, *id, &c, p))
        return false;
    if (!proj_may_view(p, &c)) {
        resp_err(r, ERR_FORBIDDEN, forbidden);
        return false;
    }
    return true;
}

void h_project_metadata(struct request *r)
{
    int64_t id;
    struct proj_row p;
    if (!load_viewable(r, &id, &p, "You do not have permission to view this project"))
        return;
    cJSON *groups;
    int rc = proj_groups_json(r->srv->db, id, &groups);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return;
    }
    struct proj_caller c = caller_of(r);
    if (!note_seen(r, &p) || etag_version(r, p.version)) {
        cJSON_Delete(groups);
        return;
    }
    cJSON *o = proj_summary_json(&p);
    cJSON_AddBoolToObject(o, "is_shared", proj_via_group(&p, &c));
    cJSON_AddBoolToObject(o, "success", 1);
    cJSON_AddBoolToObject(o, "is_published", p.is_published);
    cJSON_AddItemToObject(o, "shared_with_groups", groups);
    resp_json(r, 200, o);
}

void h_project_sharing(struct request *r)
{
    int64_t id;
    struct proj_row p;
    if (!load_viewable(r, &id, &p, "You do not have permission to view this project"))
        return;
    cJSON *groups;
    int rc = proj_groups_json(r->srv->db, id, &groups);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddBoolToObject(o, "is_published", p.is_published);
    cJSON_AddItemToObject(o, "shared_with_groups", groups);
    resp_json(r, 200, o);
}

void h_project_download(struct request *r)
{
    int64_t id;
    struct proj_row p;
    if (!load_viewable(r, &id, &p, "You do not have permission to download this project"))
        return;
    if (!p.sb3_sha256) {
        resp_err(r, ERR_NOT_FOUND, "No project data available for download");
        return;
    }
    if (!note_seen(r, &p) || etag_version(r, p.version))
        return;
    /* One URL, changing content: revalidate (If-None-Match → 304) every time. */
    resp_header(r, "Cache-Control", "private, no-cache");
    resp_header(r, "Content-Disposition", disposition(r, p.title, ""));
    resp_blob(r, p.sb3_sha256, "application/octet-stream");
}

void h_project_thumbnail(struct request *r)
{
    int64_t id;
    if (!capture_id(r, &id))
        return;
    struct proj_caller c = caller_of(r);
    struct proj_row p;
    if (!r->sess) {
        /* A token that was presented must be valid; none at all is public
         * while PUBLIC_THUMBNAILS is on (the frontend uses plain <img>). */
        if (r->sess_status != SESS_MISSING) {
            auth_fail(r, r->sess_status);
            return;
        }
        if (!r->srv->cfg->public_thumbnails) {
            resp_err(r, ERR_UNAUTHORIZED, "Authentication required");
            return;
        }
        if (!load(r, id, NULL, &p))
            return;
    } else {
        if (!load(r, id, &c, &p))
            return;
        if (!proj_may_view(&p, &c)) {
            resp_err(r, ERR_FORBIDDEN, "You do not have permission to view this project");
            return;
        }
    }
    resp_header(r, "Cache-Control", "no-cache"); /* a new thumbnail keeps the URL */
    if (p.thumb_sha256)
        resp_blob(r, p.thumb_sha256, p.thumb_type ? p.thumb_type : "image/png");
    else
        resp_bytes(r, 200, "image/png", default_thumbnail, sizeof default_thumbnail);
}

/* ---- versions ------------------------------------------------------------------- */

static const char msg_versions_forbidden[] =
    "You do not have permission to view this project's versions";

/* Owner, teacher or admin. */
static bool load_history(struct request *r, int64_t *id, struct proj_row *p)
{
    if (!capture_id(r, id))
        return false;
    struct proj_caller c = caller_of(r);
    if (!load(r, *id, &c, p))
        return false;
    if (!is_owner(p, &c) && !proj_is_staff(&c)) {
        resp_err(r, ERR_FORBIDDEN, msg_versions_forbidden);
        return false;
    }
    return true;
}

static bool capture_version(struct request *r, int64_t *v)
{
    if (!parse_int64(req_capture(r, 1), 1, INT64_MAX, v)) {
        resp_err(r, ERR_NOT_FOUND, "Version not found");
        return false;
    }
    return true;
}

void h_project_versions(struct request *r)
{
    int64_t id;
    struct proj_row p;
    if (!load_history(r, &id, &p))
        return;
    cJSON *arr;
    int rc = proj_versions_json(r->srv->db, id, &arr);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "versions", arr);
    resp_json(r, 200, o);
}

void h_project_version_download(struct request *r)
{
    int64_t id, v;
    struct proj_row p;
    if (!load_history(r, &id, &p) || !capture_version(r, &v))
        return;
    const char *sha;
    int rc = proj_version_content(r->srv->db, r->arena, id, v, &sha);
    if (rc != DB_OK) {
        db_fail(r, rc);
        return;
    }
    if (!sha) {
        resp_err(r, ERR_NOT_FOUND, "Version not found");
        return;
    }
    resp_header(r, "Content-Disposition",
                disposition(r, p.title, arena_printf(r->arena, "_v%lld", (long long)v)));
    resp_blob(r, sha, "application/octet-stream");
}

void h_project_version_restore(struct request *r)
{
    int64_t id, v;
    if (!capture_id(r, &id) || !capture_version(r, &v))
        return;
    struct proj_caller c = caller_of(r);
    struct proj_write w = {.op = PROJ_OP_RESTORE,
                           .id = id,
                           .restore_version = v,
                           .retention = r->srv->cfg->version_retention};
    if (!expected_version(r, NULL, &w.expected))
        return;
    struct proj_result res = {0};
    int rc = proj_write(r->srv->db, r->arena, &c, &w, &res);
    if (!write_answered(r, rc, &res, "You do not have permission to restore this project"))
        return;
    log_info("project %lld: version %lld restored as version %lld by %s", (long long)id,
             (long long)v, (long long)res.row.version, c.user_id);
    answer_summary(r, 200, &res.row, false);
}
