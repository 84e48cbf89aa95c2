/*
 * projects.h — the projects store (API.md "Projects"): every SQL statement
 * about projects, their versions, shares, the sessions' last-seen versions
 * and conflict copies lives in projects.c, behind these proj_* functions.
 *
 * Content is never stored here: callers commit .sb3 files and thumbnails to
 * the blob store first and pass their SHA-256; one transaction then points
 * the project (and a project_versions row) at them. Every write is a
 * versioned compare-and-swap (UPDATE … SET version = version + 1 WHERE
 * id = ? AND version = ?). Soft-deleted projects (deleted_at set) are
 * invisible to every function.
 *
 * Strings in results come from the arena passed in. Functions returning an
 * int return db.h codes (DB_OK, DB_BUSY, DB_ERROR); what happened to the
 * project is in a struct proj_result's status.
 */
#ifndef S4S_PROJECTS_H
#define S4S_PROJECTS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"

struct db;
struct request;

struct jsonw;

/* Titles are at most this many characters (projects.name is VARCHAR(100)). */
#define PROJ_TITLE_MAX 100
#define PROJ_DEFAULT_TITLE "Untitled Project"

enum proj_status {
    PROJ_OK = 0,
    PROJ_NOT_FOUND,  /* no such project, or soft-deleted */
    PROJ_FORBIDDEN,  /* the caller may not do this to it */
    PROJ_CONFLICT,   /* the compare-and-swap lost: nothing changed */
    PROJ_NO_VERSION, /* that version's content is not kept */
};

/* One project as the handlers see it. */
struct proj_row {
    int64_t id;
    const char *title;
    const char *description; /* NULL when none */
    const char *created_at;  /* database timestamps, "" when missing */
    const char *updated_at;
    int64_t version;
    const char *owner_id;
    bool is_published;
    const char *sb3_sha256; /* NULL: no content stored */
    int64_t sb3_size;
    const char *thumb_sha256; /* NULL: no thumbnail (the default one is served) */
    const char *thumb_type;   /* image/png or image/jpeg */
    bool in_shared_group;     /* the caller belongs to a group it is shared with */
    int64_t seen_version;     /* the caller's session's last-seen version, 0 if none */
};

/* Who is asking. */
struct proj_caller {
    const char *user_id;
    const char *role;      /* admin | teacher | student */
    const char *sess_hash; /* the session's hashed id (session_project_versions) */
};

/* API.md "Who may view" / "Who may copy". */
bool proj_is_staff(const struct proj_caller *c);
bool proj_via_group(const struct proj_row *p, const struct proj_caller *c);
bool proj_may_view(const struct proj_row *p, const struct proj_caller *c);
bool proj_may_copy(const struct proj_row *p, const struct proj_caller *c);

/* A client-supplied title made storable: invalid UTF-8 replaced by U+FFFD,
 * control characters by spaces, cut to PROJ_TITLE_MAX characters. */
const char *proj_title_clean(arena_t *a, const char *title);

/* The body of POST /api/projects/<id>/share, {"group_ids":[int…]}: the ids
 * into an arena array. NULL on success, else the 400 message to answer. */
const char *proj_share_body_parse(arena_t *a, const cJSON *body, int64_t **ids, size_t *n);

/* ---- reads ---------------------------------------------------------------- */

/* The project, with in_shared_group and seen_version for caller c (c may be
 * NULL). *found tells whether it exists. */
int proj_get(struct db *db, arena_t *a, int64_t id, const struct proj_caller *c,
             struct proj_row *out, bool *found);
/* The caller's most recently updated project. */
int proj_recent(struct db *db, arena_t *a, const char *owner_id, struct proj_row *out, bool *found);
/* Remember that a session has seen version v of a project (never lowers it). */
int proj_note_seen(struct db *db, const char *sess_hash, int64_t id, int64_t version);

/* {"id","title","description","created_at","updated_at","version"} */
cJSON *proj_summary_json(const struct proj_row *p);
/* "<base_path>/api/projects/<id>/thumbnail" */
char *proj_thumbnail_url(arena_t *a, const char *base_path, int64_t id);
/* The groups a project is shared with, as [{"id","name","external_id"}]. */
int proj_groups_json(struct db *db, int64_t id, cJSON **out);

/* GET /api/projects: the whole answer {"projects":[…],"count","success"} into
 * w, the owner's projects newest updated_at first, each summary +
 * {"thumbnail_url","is_published","shared_with_groups"}. */
int proj_list_owned(struct db *db, const char *base_path, const char *owner_id, struct jsonw *w);
/* GET /api/projects/shared, the same way: published projects shared with a
 * group of user_id, not user_id's own, newest first, with owner and only the
 * groups user_id is in. */
int proj_list_shared(struct db *db, const char *base_path, const char *user_id, struct jsonw *w);
/* For the teacher view: the owner's projects, newest first, each summary +
 * {"thumbnail_url"}. NULL on a database error (r's arena is not used for the
 * result: the caller owns and frees or hands on the cJSON array). */
cJSON *proj_summaries_for_owner(struct request *r, const char *owner_id);

/* [{"version","size","sha256","created_at","created_by"}] newest first. */
int proj_versions_json(struct db *db, int64_t id, cJSON **out);
/* The content of one kept version; *sha256 NULL when not kept. */
int proj_version_content(struct db *db, arena_t *a, int64_t id, int64_t version,
                         const char **sha256);

/* ---- writes --------------------------------------------------------------- */

/* Create a project owned by c->user_id (version 1, unpublished, described
 * "Created on YYYY-MM-DD") pointing at committed blobs; the session's
 * last-seen version becomes 1. */
struct proj_new {
    const char *title; /* already cleaned */
    const char *sb3_sha256;
    int64_t sb3_size;
    const char *thumb_sha256; /* NULL: none */
    const char *thumb_type;
};
int proj_create(struct db *db, arena_t *a, const struct proj_caller *c, const struct proj_new *n,
                struct proj_row *out);

enum proj_op {
    PROJ_OP_UPDATE,    /* PUT: content and/or title and/or thumbnail */
    PROJ_OP_THUMBNAIL, /* POST …/thumbnail */
    PROJ_OP_SHARE,     /* POST …/share */
    PROJ_OP_DELETE,    /* DELETE (soft) */
    PROJ_OP_RESTORE,   /* POST …/versions/<v>/restore */
};

/* Where the expected version comes from when the client named none. */
#define PROJ_EXPECT_SESSION 0 /* the session's last-seen, else the current one */
#define PROJ_EXPECT_ANY (-1)  /* If-Match: * — the current one */

struct proj_write {
    enum proj_op op;
    int64_t id;
    int64_t expected;       /* > 0 from If-Match or `version`, else PROJ_EXPECT_* */
    const char *title;      /* UPDATE: new title (cleaned) or NULL */
    const char *sb3_sha256; /* UPDATE: new content or NULL */
    int64_t sb3_size;
    const char *thumb_sha256; /* UPDATE, THUMBNAIL: new thumbnail or NULL */
    const char *thumb_type;
    const int64_t *group_ids; /* SHARE: as requested (filtered to the owner's groups) */
    size_t ngroups;
    int64_t restore_version; /* RESTORE */
    int retention;           /* VERSION_RETENTION */
};

struct proj_group {
    int64_t id;
    const char *name;
    const char *external_id;
};

struct proj_result {
    enum proj_status status;
    int64_t current_version;   /* PROJ_CONFLICT: the project's version */
    int64_t conflict_copy_id;  /* PROJ_CONFLICT with content: the copy holding it, else 0 */
    struct proj_row row;       /* PROJ_OK: the project after the write */
    struct proj_group *groups; /* PROJ_OK of SHARE: the groups it is now shared with */
    size_t ngroups;
};

/*
 * One write, one transaction: existence (404) and ownership (403) checked,
 * then the compare-and-swap UPDATE with the expected version (w->expected,
 * else the session's last-seen, else the current one). On PROJ_OK the
 * content writes add a project_versions row (older rows beyond retention are
 * dropped) and the session's last-seen becomes the new version. On
 * PROJ_CONFLICT nothing of the project changes; when the write carried an
 * .sb3 (UPDATE with content, RESTORE) that content lands in the session's
 * conflict copy of the project (created, or updated by a normal versioned
 * write), all in the same transaction.
 */
int proj_write(struct db *db, arena_t *a, const struct proj_caller *c, const struct proj_write *w,
               struct proj_result *res);

/* POST …/copy: a new unpublished project of c->user_id titled "Copy of
 * <title>", sharing the source's blobs; PROJ_FORBIDDEN unless
 * proj_may_copy. The session's last-seen of the copy becomes 1. */
int proj_copy(struct db *db, arena_t *a, const struct proj_caller *c, int64_t id,
              struct proj_result *res);

#endif
