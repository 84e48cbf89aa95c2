/*
 * import.c — s4s-admin import: adopt a Python Scratch4School deployment
 * (its SQLite main.db and the uploads/ folder beside it, UPSTREAM-DATA.md)
 * into the configured database and blob store.
 *
 * Order, so that a failure leaves nothing half-done:
 *   1. migrate the target; read every upstream row in one read transaction
 *      of a read-only connection (the old server may still be running);
 *   2. copy each referenced file into the blob store (blob writer: temp
 *      file, fsync, link). The originals are left where they are: the
 *      files are adopted, not moved;
 *   3. one write transaction inserting every row with INSERT … ON CONFLICT
 *      DO NOTHING. If it fails nothing is imported; the blobs already
 *      written are unreferenced and gc removes them.
 * Running it again imports nothing new and says so.
 *
 * Paths are replaced by hashes: projects.sb3_sha256/thumbnail_sha256 and
 * assets.sha256 name the blobs, projects' path columns become NULL and
 * assets.file_path "blob:<sha256>" (as assets.c writes it); a path stays
 * only where its file was not found, as the record of where it was.
 *
 * What is kept: user, group and project ids (a group whose external id the
 * target already has is mapped onto that group; a group id taken by another
 * group gets a new id), timestamps in the upstream text form, provider tokens
 * as they are (the server reads unsealed values). Session ids, which
 * upstream used as bearer tokens, are stored as their SHA-256 like every
 * session here, so users stay logged in. Only sessions still usable (not
 * expired, or renewable with a refresh token) are taken.
 *
 * A file that is missing or unreadable is reported with its row, and the
 * row is imported without it. A row that cannot be inserted (its owner
 * missing upstream, a project id taken by a different project here) is
 * reported and left out, with the rows that hang off it.
 *
 * The upstream database is read with SQLite directly (read-only): it is an
 * SQLite file by definition. The target goes through db.h like everything.
 */
#include "admin.h"
#include "arena.h"
#include "blobstore.h"
#include "content.h"
#include "db.h"
#include "log.h"
#include "session.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct up_user {
    const char *id, *username, *email, *role, *created_at, *last_login, *user_data;
};

struct up_group {
    int64_t id;
    const char *name, *external_id, *description, *created_at;
    int64_t target_id; /* 0: not imported */
};

struct up_member {
    const char *user_id;
    int64_t group_id;
    const char *joined_at;
};

struct up_project {
    int64_t id, version, is_published;
    const char *name, *description, *sb3_path, *thumb_path, *owner, *created_at, *updated_at;
    bool has_sb3, has_thumb;
    char sb3_sha[BLOB_SHA256_HEX], thumb_sha[BLOB_SHA256_HEX];
    uint64_t sb3_size;
    const char *thumb_type;
    bool skipped; /* not inserted and not already here: its shares are left out too */
};

struct up_share {
    int64_t project_id, group_id;
    const char *published_at;
};

struct up_asset {
    const char *asset_id, *type, *format, *md5, *owner, *file_path, *created_at;
    int64_t size;
    bool has_file;
    char sha[BLOB_SHA256_HEX];
};

struct up_backpack {
    const char *id, *type, *name, *mime, *body, *thumbnail, *owner, *created_at, *updated_at;
};

struct up_session {
    const char *user_id, *access, *refresh, *expires_at, *created_at, *last_accessed;
    char hash[SESS_HASH_LEN];
};

/* One table's outcome. */
struct tally {
    long imported, present, skipped;
};

enum {
    T_USERS,
    T_GROUPS,
    T_MEMBERS,
    T_PROJECTS,
    T_VERSIONS,
    T_SHARES,
    T_ASSETS,
    T_BACKPACK,
    T_SESSIONS,
    T_COUNT
};

struct import {
    arena_t arena; /* every upstream string */
    struct db *db;
    const char *db_path, *uploads;
    struct blobstore bs;
    magic_t magic;
    struct up_user *users;
    struct up_group *groups;
    struct up_member *members;
    struct up_project *projects;
    struct up_share *shares;
    struct up_asset *assets;
    struct up_backpack *backpack;
    struct up_session *sessions;
    size_t nusers, ngroups, nmembers, nprojects, nshares, nassets, nbackpack, nsessions;
    long sessions_dead;
    bool had_version_column;
    uint64_t files, file_bytes;
    /* Reports: files before the transaction, rows during it (reset on a retry). */
    char **file_notes;
    size_t nfile_notes;
    char **row_notes;
    size_t nrow_notes;
    struct tally t[T_COUNT];
};

static void note(char ***v, size_t *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void note(char ***v, size_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = xstrdup("(out of memory formatting a note)");
    va_end(ap);
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = s;
}

static void free_notes(char ***v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

/* ---- reading upstream ------------------------------------------------------ */

static const char *col_text(struct import *im, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    return arena_strdup(&im->arena, t ? (const char *)t : "");
}

static bool up_has(sqlite3 *h, const char *table, const char *column)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    const char *sql = column ? "SELECT 1 FROM pragma_table_info(?1) WHERE lower(name) = lower(?2)"
                             : "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        if (column)
            sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

/* Run sql on the upstream database, calling row() for each row. */
static int up_rows(struct import *im, sqlite3 *h, const char *table, const char *sql,
                   void (*row)(struct import *, sqlite3_stmt *))
{
    if (!up_has(h, table, NULL)) {
        printf("  (the upstream database has no %s table: nothing to import from it)\n", table);
        return 0;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: reading upstream %s: %s\n", table, sqlite3_errmsg(h));
        sqlite3_finalize(st);
        return -1;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        row(im, st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "s4s-admin: reading upstream %s: %s\n", table, sqlite3_errmsg(h));
        return -1;
    }
    return 0;
}

#define GROW(im, arr, n) ((im)->arr = xrealloc((im)->arr, ((im)->n + 1) * sizeof *(im)->arr))

static void row_user(struct import *im, sqlite3_stmt *st)
{
    GROW(im, users, nusers);
    struct up_user *u = &im->users[im->nusers++];
    u->id = col_text(im, st, 0);
    u->username = col_text(im, st, 1);
    u->email = col_text(im, st, 2);
    u->role = col_text(im, st, 3);
    u->created_at = col_text(im, st, 4);
    u->last_login = col_text(im, st, 5);
    u->user_data = col_text(im, st, 6);
}

static void row_group(struct import *im, sqlite3_stmt *st)
{
    GROW(im, groups, ngroups);
    struct up_group *g = &im->groups[im->ngroups++];
    g->id = sqlite3_column_int64(st, 0);
    g->name = col_text(im, st, 1);
    g->external_id = col_text(im, st, 2);
    g->description = col_text(im, st, 3);
    g->created_at = col_text(im, st, 4);
    g->target_id = 0;
}

static void row_member(struct import *im, sqlite3_stmt *st)
{
    GROW(im, members, nmembers);
    struct up_member *m = &im->members[im->nmembers++];
    m->user_id = col_text(im, st, 0);
    m->group_id = sqlite3_column_int64(st, 1);
    m->joined_at = col_text(im, st, 2);
}

static void row_project(struct import *im, sqlite3_stmt *st)
{
    GROW(im, projects, nprojects);
    struct up_project *p = &im->projects[im->nprojects++];
    memset(p, 0, sizeof *p);
    p->id = sqlite3_column_int64(st, 0);
    p->name = col_text(im, st, 1);
    p->description = col_text(im, st, 2);
    p->sb3_path = col_text(im, st, 3);
    p->thumb_path = col_text(im, st, 4);
    p->version = sqlite3_column_type(st, 5) == SQLITE_NULL ? 1 : sqlite3_column_int64(st, 5);
    if (p->version < 1)
        p->version = 1;
    p->owner = col_text(im, st, 6);
    p->created_at = col_text(im, st, 7);
    p->updated_at = col_text(im, st, 8);
    /* NULL on old rows: not published. */
    p->is_published = sqlite3_column_int64(st, 9) ? 1 : 0;
}

static void row_share(struct import *im, sqlite3_stmt *st)
{
    GROW(im, shares, nshares);
    struct up_share *s = &im->shares[im->nshares++];
    s->project_id = sqlite3_column_int64(st, 0);
    s->group_id = sqlite3_column_int64(st, 1);
    s->published_at = col_text(im, st, 2);
}

static void row_asset(struct import *im, sqlite3_stmt *st)
{
    GROW(im, assets, nassets);
    struct up_asset *a = &im->assets[im->nassets++];
    memset(a, 0, sizeof *a);
    a->asset_id = col_text(im, st, 0);
    a->type = col_text(im, st, 1);
    a->format = col_text(im, st, 2);
    a->size = sqlite3_column_int64(st, 3);
    a->md5 = col_text(im, st, 4);
    a->owner = col_text(im, st, 5);
    a->file_path = col_text(im, st, 6);
    a->created_at = col_text(im, st, 7);
}

static void row_backpack(struct import *im, sqlite3_stmt *st)
{
    GROW(im, backpack, nbackpack);
    struct up_backpack *b = &im->backpack[im->nbackpack++];
    b->id = col_text(im, st, 0);
    b->type = col_text(im, st, 1);
    b->name = col_text(im, st, 2);
    b->mime = col_text(im, st, 3);
    b->body = col_text(im, st, 4);
    b->thumbnail = col_text(im, st, 5);
    b->owner = col_text(im, st, 6);
    b->created_at = col_text(im, st, 7);
    b->updated_at = col_text(im, st, 8);
}

static void row_session(struct import *im, sqlite3_stmt *st)
{
    const char *id = col_text(im, st, 0);
    const char *refresh = col_text(im, st, 3);
    const char *expires = col_text(im, st, 4);
    int64_t exp_us = 0;
    bool live = expires && db_ts_parse(expires, &exp_us) && exp_us > epoch_us_now();
    /* Over for good: expired, and nothing to renew it with. */
    if (!id || !*id || (!live && (!refresh || !*refresh))) {
        im->sessions_dead++;
        return;
    }
    GROW(im, sessions, nsessions);
    struct up_session *s = &im->sessions[im->nsessions++];
    sess_hash_token(id, s->hash);
    s->user_id = col_text(im, st, 1);
    s->access = col_text(im, st, 2);
    s->refresh = refresh;
    s->expires_at = expires;
    s->created_at = col_text(im, st, 5);
    s->last_accessed = col_text(im, st, 6);
}

static int read_upstream(struct import *im)
{
    sqlite3 *h = NULL;
    int ret = -1;
    /* Read-only: the old deployment's files are never changed. */
    if (sqlite3_open_v2(im->db_path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: opening %s: %s\n", im->db_path,
                h ? sqlite3_errmsg(h) : "out of memory");
        goto done;
    }
    sqlite3_busy_timeout(h, 5000);
    if (!up_has(h, "users", NULL) || !up_has(h, "projects", NULL)) {
        fprintf(stderr,
                "s4s-admin: %s has no users or projects table: not a Scratch4School database\n",
                im->db_path);
        goto done;
    }
    /* One snapshot, in case the old server is still writing. */
    if (sqlite3_exec(h, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "s4s-admin: %s: %s\n", im->db_path, sqlite3_errmsg(h));
        goto done;
    }
    im->had_version_column = up_has(h, "projects", "version");
    if (up_rows(im, h, "users",
                "SELECT id, username, email, role, created_at, last_login, user_data FROM users "
                "ORDER BY id",
                row_user) < 0 ||
        up_rows(im, h, "groups",
                "SELECT id, name, external_id, description, created_at FROM groups ORDER BY id",
                row_group) < 0 ||
        up_rows(im, h, "user_groups",
                "SELECT user_id, group_id, joined_at FROM user_groups ORDER BY user_id, group_id",
                row_member) < 0 ||
        up_rows(im, h, "projects",
                im->had_version_column
                    ? "SELECT id, name, description, sb3_file_path, thumbnail_path, version, "
                      "owner_id, created_at, updated_at, is_published FROM projects ORDER BY id"
                    : "SELECT id, name, description, sb3_file_path, thumbnail_path, NULL, "
                      "owner_id, created_at, updated_at, is_published FROM projects ORDER BY id",
                row_project) < 0 ||
        up_rows(im, h, "project_groups",
                "SELECT project_id, group_id, published_at FROM project_groups "
                "ORDER BY project_id, group_id",
                row_share) < 0 ||
        up_rows(im, h, "assets",
                "SELECT asset_id, asset_type, data_format, size, md5, owner_id, file_path, "
                "created_at FROM assets ORDER BY id",
                row_asset) < 0 ||
        up_rows(im, h, "backpack_items",
                "SELECT id, type, name, mime, body, thumbnail, owner_id, created_at, updated_at "
                "FROM backpack_items ORDER BY created_at, id",
                row_backpack) < 0 ||
        up_rows(im, h, "oauth_sessions",
                "SELECT id, user_id, access_token, refresh_token, expires_at, created_at, "
                "last_accessed FROM oauth_sessions ORDER BY id",
                row_session) < 0)
        goto done;
    sqlite3_exec(h, "COMMIT", NULL, NULL, NULL);
    ret = 0;
done:
    if (h)
        sqlite3_close(h);
    return ret;
}

/* ---- files ------------------------------------------------------------------- */

/*
 * Where a stored file is now. Paths in the database are absolute on the old
 * machine; the deployment may have been copied elsewhere since. Tried in
 * order: the stored path's part after "/uploads/" below our uploads/, the
 * conventional name below uploads/ (rel, may be NULL), the stored path as it
 * is. Returns an arena string, or NULL (the first candidate in *tried).
 */
static const char *find_file(struct import *im, const char *stored, const char *rel,
                             struct stat *st, const char **tried)
{
    const char *cand[3];
    int n = 0;
    if (stored && *stored) {
        const char *u = NULL, *p = stored;
        while ((p = strstr(p, "/uploads/")) != NULL)
            u = p++;
        if (u)
            cand[n++] = arena_printf(&im->arena, "%s/%s", im->uploads, u + 9);
    }
    if (rel)
        cand[n++] = arena_printf(&im->arena, "%s/%s", im->uploads, rel);
    if (stored && stored[0] == '/')
        cand[n++] = stored;
    *tried = n ? cand[0] : "(no path)";
    for (int i = 0; i < n; i++)
        if (stat(cand[i], st) == 0 && S_ISREG(st->st_mode))
            return cand[i];
    return NULL;
}

/*
 * Copy one file into the blob store. kind: "sb3", "thumbnail" or NULL
 * (anything). For a thumbnail *type gets image/png or image/jpeg, and
 * anything else is refused. 0 stored; -1 with why set.
 */
static int adopt_file(struct import *im, const char *path, const char *kind, char sha[65],
                      char md5[33], uint64_t *size, const char **type, const char **why)
{
    struct blob_writer w;
    unsigned char buf[65536];
    char msg[160];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = arena_strdup(&im->arena, strerror(errno));
        return -1;
    }
    int rc = blob_writer_begin(&im->bs, &w, 0);
    while (rc == BLOB_OK) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *why = arena_printf(&im->arena, "unreadable: %s", strerror(errno));
            blob_writer_abort(&w);
            close(fd);
            return -1;
        }
        if (n == 0) {
            rc = blob_writer_finish(&w);
            break;
        }
        rc = blob_writer_write(&w, buf, (size_t)n);
    }
    close(fd);
    if (rc != BLOB_OK) {
        *why = arena_printf(&im->arena, "storing it failed: %s (%s)", blob_strerror(rc),
                            strerror(errno));
        return -2; /* our store, not their file: fatal */
    }
    if (kind && strcmp(kind, "thumbnail") == 0) {
        if (content_check_image(im->magic, blob_writer_tmp_path(&w), type, msg, sizeof msg) !=
            CONTENT_OK) {
            *why = arena_strdup(&im->arena, msg);
            blob_writer_abort(&w);
            return -1;
        }
    } else if (kind && strcmp(kind, "sb3") == 0) {
        /* Adopted as it is (it is the pupil's work); worth knowing, though. */
        if (content_check_sb3(blob_writer_tmp_path(&w), msg, sizeof msg) != CONTENT_OK)
            note(&im->file_notes, &im->nfile_notes, "%s: %s (imported as it is)", path, msg);
    }
    memcpy(sha, w.sha256, BLOB_SHA256_HEX);
    if (md5)
        memcpy(md5, w.md5, BLOB_MD5_HEX);
    *size = w.size;
    if ((rc = blob_writer_commit(&im->bs, &w)) != BLOB_OK) {
        *why = arena_printf(&im->arena, "storing it failed: %s (%s)", blob_strerror(rc),
                            strerror(errno));
        return -2;
    }
    im->files++;
    im->file_bytes += *size;
    return 0;
}

static bool is_default_thumbnail(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash && strcmp(slash + 1, "default.png") == 0;
}

static int adopt_project_files(struct import *im, struct up_project *p)
{
    struct stat st;
    const char *tried, *why = NULL;
    const char *owner = p->owner ? p->owner : "";
    uint64_t size;

    const char *rel = arena_printf(&im->arena, "projects/%lld_%s.sb3", (long long)p->id, owner);
    const char *sb3 = find_file(im, p->sb3_path, rel, &st, &tried);
    if (!sb3) {
        note(&im->file_notes, &im->nfile_notes, "project %lld: .sb3 file missing (%s)",
             (long long)p->id, p->sb3_path ? p->sb3_path : tried);
    } else {
        int rc = adopt_file(im, sb3, "sb3", p->sb3_sha, NULL, &size, NULL, &why);
        if (rc == -2) {
            fprintf(stderr, "s4s-admin: %s: %s\n", sb3, why);
            return -1;
        }
        if (rc < 0) {
            note(&im->file_notes, &im->nfile_notes, "project %lld: .sb3 file %s: %s",
                 (long long)p->id, sb3, why);
        } else {
            p->has_sb3 = true;
            p->sb3_size = size;
        }
    }

    /* Thumbnails: the path stored, and both names the old server wrote
     * (thumb_ at create and copy, thumb__ at update): the newest wins. */
    const char *cands[3];
    int n = 0;
    if (p->thumb_path && !is_default_thumbnail(p->thumb_path))
        cands[n++] = find_file(im, p->thumb_path, NULL, &st, &tried);
    cands[n++] = arena_printf(&im->arena, "%s/thumbnails/thumb_%s_%lld.png", im->uploads, owner,
                              (long long)p->id);
    cands[n++] = arena_printf(&im->arena, "%s/thumbnails/thumb__%s_%lld.png", im->uploads, owner,
                              (long long)p->id);
    const char *best = NULL;
    struct timespec best_m = {0, 0};
    for (int i = 0; i < n; i++) {
        if (!cands[i] || stat(cands[i], &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        if (!best || st.st_mtim.tv_sec > best_m.tv_sec ||
            (st.st_mtim.tv_sec == best_m.tv_sec && st.st_mtim.tv_nsec > best_m.tv_nsec)) {
            best = cands[i];
            best_m = st.st_mtim;
        }
    }
    if (!best) {
        if (p->thumb_path && *p->thumb_path && !is_default_thumbnail(p->thumb_path))
            note(&im->file_notes, &im->nfile_notes, "project %lld: thumbnail missing (%s)",
                 (long long)p->id, p->thumb_path);
        return 0;
    }
    int rc = adopt_file(im, best, "thumbnail", p->thumb_sha, NULL, &size, &p->thumb_type, &why);
    if (rc == -2) {
        fprintf(stderr, "s4s-admin: %s: %s\n", best, why);
        return -1;
    }
    if (rc < 0)
        note(&im->file_notes, &im->nfile_notes, "project %lld: thumbnail %s: %s", (long long)p->id,
             best, why);
    else
        p->has_thumb = true;
    return 0;
}

static int adopt_asset_file(struct import *im, struct up_asset *a)
{
    struct stat st;
    const char *tried, *why = NULL;
    char md5[BLOB_MD5_HEX];
    uint64_t size;
    const char *rel = a->type && a->md5 && a->format
                          ? arena_printf(&im->arena, "%s/%s.%s", a->type, a->md5, a->format)
                          : NULL;
    const char *path = find_file(im, a->file_path, rel, &st, &tried);
    if (!path) {
        note(&im->file_notes, &im->nfile_notes, "asset %s: file missing (%s)",
             a->asset_id ? a->asset_id : "?", a->file_path ? a->file_path : tried);
        return 0;
    }
    int rc = adopt_file(im, path, NULL, a->sha, md5, &size, NULL, &why);
    if (rc == -2) {
        fprintf(stderr, "s4s-admin: %s: %s\n", path, why);
        return -1;
    }
    if (rc < 0) {
        note(&im->file_notes, &im->nfile_notes, "asset %s: file %s: %s",
             a->asset_id ? a->asset_id : "?", path, why);
        return 0;
    }
    /* The asset id is the MD5 of its bytes: a file that is not those bytes
     * would be served under a false name. The blob stays an orphan. */
    if (!a->md5 || strcasecmp(a->md5, md5) != 0) {
        note(&im->file_notes, &im->nfile_notes,
             "asset %s: file %s has MD5 %s, not its id: imported without content",
             a->asset_id ? a->asset_id : "?", path, md5);
        return 0;
    }
    a->has_file = true;
    a->size = (int64_t)size;
    return 0;
}

/* ---- the one transaction --------------------------------------------------------- */

static const char *const table_label[T_COUNT] = {
    "users",  "groups", "memberships",    "projects", "project versions",
    "shares", "assets", "backpack items", "sessions",
};

/* Step an INSERT … ON CONFLICT DO NOTHING and count what it did. A row that
 * fails a constraint (a foreign key: its owner is not in the upstream
 * database either) is left out with a note. With owned, the row's user is
 * looked up first and a row whose user is missing left out the same way:
 * PostgreSQL, unlike SQLite, aborts the whole transaction at a failed
 * constraint. Returns a DB_* code to abort the transaction with, or DB_OK.
 * *inserted tells whether a row went in. */
static int insert_counted(struct import *im, struct db_stmt *st, int table, const char *key,
                          bool owned, const char *user, bool *inserted)
{
    int rc = DB_OK;
    if (owned && !user) {
        rc = DB_CONSTRAINT;
    } else if (owned) {
        struct db_stmt *q = db_prepare(im->db, "SELECT 1 FROM users WHERE id = ?");
        if (!q)
            return DB_ERROR;
        db_bind_text(q, 1, user);
        rc = db_step(q);
        db_reset(q);
        if (rc == DB_OK)
            rc = DB_CONSTRAINT; /* no such user */
        else if (rc != DB_ROW)
            return rc;
    }
    if (rc == DB_CONSTRAINT)
        db_reset(st);
    else
        rc = db_step(st);
    if (rc == DB_ROW) {
        db_reset(st);
        rc = DB_OK;
    }
    if (inserted)
        *inserted = false;
    if (rc == DB_CONSTRAINT) {
        im->t[table].skipped++;
        note(&im->row_notes, &im->nrow_notes,
             "%s %s: not imported: it refers to a row the upstream database lacks",
             table_label[table], key);
        return DB_OK;
    }
    if (rc != DB_OK)
        return rc;
    if (db_changes(im->db) > 0) {
        im->t[table].imported++;
        if (inserted)
            *inserted = true;
    } else {
        im->t[table].present++;
    }
    return DB_OK;
}

static int cmp_group_id(const void *k, const void *e)
{
    int64_t a = *(const int64_t *)k, b = ((const struct up_group *)e)->id;
    return a < b ? -1 : a > b;
}

static int cmp_project_id(const void *k, const void *e)
{
    int64_t a = *(const int64_t *)k, b = ((const struct up_project *)e)->id;
    return a < b ? -1 : a > b;
}

/* Read in id order, so both lookups are binary searches. */
static struct up_group *find_group(struct import *im, int64_t id)
{
    if (im->ngroups == 0)
        return NULL;
    return bsearch(&id, im->groups, im->ngroups, sizeof *im->groups, cmp_group_id);
}

static struct up_project *find_project(struct import *im, int64_t id)
{
    if (im->nprojects == 0)
        return NULL;
    return bsearch(&id, im->projects, im->nprojects, sizeof *im->projects, cmp_project_id);
}

static int tx_users(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->nusers; i++) {
        struct up_user *u = &im->users[i];
        struct db_stmt *st =
            db_prepare(db, "INSERT INTO users (id, username, email, role, created_at, last_login, "
                           "user_data) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, u->id);
        db_bind_text(st, 2, u->username ? u->username : u->id);
        db_bind_text(st, 3, u->email);
        db_bind_text(st, 4, u->role);
        db_bind_text(st, 5, u->created_at);
        db_bind_text(st, 6, u->last_login);
        db_bind_text(st, 7, u->user_data);
        int rc = insert_counted(im, st, T_USERS, u->id ? u->id : "?", false, NULL, NULL);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int tx_groups(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->ngroups; i++) {
        struct up_group *g = &im->groups[i];
        g->target_id = 0;
        /* The external id is the group's identity: a login on this server may
         * have created it already, under another id. */
        struct db_stmt *st = db_prepare(db, "SELECT id FROM groups WHERE external_id = ?");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, g->external_id);
        int rc = db_step(st);
        if (rc == DB_ROW) {
            g->target_id = db_column_int64(st, 0);
            db_reset(st);
            im->t[T_GROUPS].present++;
            continue;
        }
        if (rc != DB_OK)
            return rc;
        st = db_prepare(db, "INSERT INTO groups (id, name, external_id, description, created_at) "
                            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, g->id);
        db_bind_text(st, 2, g->name ? g->name : g->external_id);
        db_bind_text(st, 3, g->external_id);
        db_bind_text(st, 4, g->description);
        db_bind_text(st, 5, g->created_at);
        if ((rc = db_step(st)) != DB_OK)
            return rc == DB_ROW ? DB_ERROR : rc;
        if (db_changes(db) > 0) {
            g->target_id = g->id;
            im->t[T_GROUPS].imported++;
            continue;
        }
        /* The id belongs to another group here: keep the group, not the id
         * (a new one after the largest present, explicit ones included). */
        if ((rc = db_sync_identity(db, "groups", "id")) != DB_OK)
            return rc;
        st = db_prepare(db, "INSERT INTO groups (name, external_id, description, created_at) "
                            "VALUES (?, ?, ?, ?) RETURNING id");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, g->name ? g->name : g->external_id);
        db_bind_text(st, 2, g->external_id);
        db_bind_text(st, 3, g->description);
        db_bind_text(st, 4, g->created_at);
        if ((rc = db_step(st)) != DB_ROW)
            return rc == DB_OK ? DB_ERROR : rc;
        g->target_id = db_column_int64(st, 0);
        db_reset(st);
        im->t[T_GROUPS].imported++;
        note(&im->row_notes, &im->nrow_notes,
             "group %s (%s): id %lld is taken here, imported as group %lld",
             g->external_id ? g->external_id : "?", g->name ? g->name : "", (long long)g->id,
             (long long)g->target_id);
    }
    return DB_OK;
}

static int tx_members(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->nmembers; i++) {
        struct up_member *m = &im->members[i];
        struct up_group *g = find_group(im, m->group_id);
        if (!g || !g->target_id) {
            im->t[T_MEMBERS].skipped++;
            note(&im->row_notes, &im->nrow_notes,
                 "membership of %s in group %lld: not imported: no such group upstream",
                 m->user_id ? m->user_id : "?", (long long)m->group_id);
            continue;
        }
        struct db_stmt *st =
            db_prepare(db, "INSERT INTO user_groups (user_id, group_id, joined_at) "
                           "VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, m->user_id);
        db_bind_int64(st, 2, g->target_id);
        db_bind_text(st, 3, m->joined_at);
        char key[160];
        snprintf(key, sizeof key, "%.100s in group %lld", m->user_id ? m->user_id : "?",
                 (long long)m->group_id);
        int rc = insert_counted(im, st, T_MEMBERS, key, true, m->user_id, NULL);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int tx_projects(struct db *db, struct import *im)
{
    char key[32];
    for (size_t i = 0; i < im->nprojects; i++) {
        struct up_project *p = &im->projects[i];
        p->skipped = false;
        snprintf(key, sizeof key, "%lld", (long long)p->id);
        /* Ids are kept. One already here is this project from an earlier run
         * when the owner matches; otherwise the id is another project's. */
        struct db_stmt *st = db_prepare(db, "SELECT owner_id FROM projects WHERE id = ?");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, p->id);
        int rc = db_step(st);
        if (rc == DB_ROW) {
            bool same = p->owner && strcmp(db_column_text(st, 0), p->owner) == 0;
            db_reset(st);
            if (same) {
                im->t[T_PROJECTS].present++;
            } else {
                p->skipped = true;
                im->t[T_PROJECTS].skipped++;
                note(&im->row_notes, &im->nrow_notes,
                     "project %s (\"%s\"): not imported: id %s belongs to another project here",
                     key, p->name ? p->name : "", key);
            }
            continue;
        }
        if (rc != DB_OK)
            return rc;

        st = db_prepare(db, "INSERT INTO projects (id, name, description, sb3_file_path, "
                            "thumbnail_path, version, owner_id, created_at, updated_at, "
                            "is_published, sb3_sha256, sb3_size, thumbnail_sha256, "
                            "thumbnail_type, deleted_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) "
                            "ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, p->id);
        db_bind_text(st, 2, p->name ? p->name : "Untitled Project");
        db_bind_text(st, 3, p->description);
        /* Paths are replaced by hashes (DESIGN.md); a path stays only as the
         * record of where a file was that could not be found. */
        db_bind_text(st, 4, p->has_sb3 ? NULL : p->sb3_path);
        db_bind_text(st, 5, p->has_thumb ? NULL : p->thumb_path);
        db_bind_int64(st, 6, p->version);
        db_bind_text(st, 7, p->owner);
        db_bind_text(st, 8, p->created_at);
        db_bind_text(st, 9, p->updated_at);
        db_bind_int64(st, 10, p->is_published);
        if (p->has_sb3) {
            db_bind_text(st, 11, p->sb3_sha);
            db_bind_int64(st, 12, (int64_t)p->sb3_size);
        } else {
            db_bind_null(st, 11);
            db_bind_null(st, 12);
        }
        db_bind_text(st, 13, p->has_thumb ? p->thumb_sha : NULL);
        db_bind_text(st, 14, p->has_thumb ? p->thumb_type : NULL);
        bool inserted;
        if ((rc = insert_counted(im, st, T_PROJECTS, key, true, p->owner, &inserted)) != DB_OK)
            return rc;
        if (!inserted) {
            p->skipped = true;
            continue;
        }
        if (!p->has_sb3)
            continue;
        /* Its current content is its first kept version. */
        st = db_prepare(db, "INSERT INTO project_versions (project_id, version, sha256, size, "
                            "created_by, created_at) VALUES (?, ?, ?, ?, ?, ?) "
                            "ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        char now[DB_TS_LEN];
        db_ts_now(now);
        db_bind_int64(st, 1, p->id);
        db_bind_int64(st, 2, p->version);
        db_bind_text(st, 3, p->sb3_sha);
        db_bind_int64(st, 4, (int64_t)p->sb3_size);
        db_bind_text(st, 5, p->owner);
        db_bind_text(st, 6, p->updated_at ? p->updated_at : p->created_at ? p->created_at : now);
        if ((rc = insert_counted(im, st, T_VERSIONS, key, false, NULL, NULL)) != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int tx_shares(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->nshares; i++) {
        struct up_share *s = &im->shares[i];
        struct up_project *p = find_project(im, s->project_id);
        struct up_group *g = find_group(im, s->group_id);
        if (!p || p->skipped || !g || !g->target_id) {
            im->t[T_SHARES].skipped++;
            note(&im->row_notes, &im->nrow_notes,
                 "share of project %lld with group %lld: not imported: %s",
                 (long long)s->project_id, (long long)s->group_id,
                 !p           ? "no such project upstream"
                 : p->skipped ? "the project was not imported"
                              : "no such group upstream");
            continue;
        }
        struct db_stmt *st =
            db_prepare(db, "INSERT INTO project_groups (project_id, group_id, published_at) "
                           "VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_int64(st, 1, s->project_id);
        db_bind_int64(st, 2, g->target_id);
        db_bind_text(st, 3, s->published_at);
        char key[64];
        snprintf(key, sizeof key, "%lld with group %lld", (long long)s->project_id,
                 (long long)s->group_id);
        int rc = insert_counted(im, st, T_SHARES, key, false, NULL, NULL);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int tx_assets(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->nassets; i++) {
        struct up_asset *a = &im->assets[i];
        /* Row ids are not kept: nothing outside this table names them, and the
         * asset's identity is its MD5 (asset_id), which is unique. */
        struct db_stmt *st =
            db_prepare(db, "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, "
                           "owner_id, file_path, created_at, sha256) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, a->asset_id);
        db_bind_text(st, 2, a->type);
        db_bind_text(st, 3, a->format);
        db_bind_int64(st, 4, a->size);
        db_bind_text(st, 5, a->md5);
        db_bind_text(st, 6, a->owner);
        /* "blob:<sha256>" as assets.c writes it; the old path when the file was not found. */
        if (a->has_file)
            db_bind_text(st, 7, arena_printf(&im->arena, "blob:%s", a->sha));
        else
            db_bind_text(st, 7, a->file_path ? a->file_path : "");
        db_bind_text(st, 8, a->created_at);
        db_bind_text(st, 9, a->has_file ? a->sha : NULL);
        int rc =
            insert_counted(im, st, T_ASSETS, a->asset_id ? a->asset_id : "?", true, a->owner, NULL);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int tx_backpack(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->nbackpack; i++) {
        struct up_backpack *b = &im->backpack[i];
        struct db_stmt *st =
            db_prepare(db, "INSERT INTO backpack_items (id, type, name, mime, body, thumbnail, "
                           "owner_id, created_at, updated_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, b->id);
        db_bind_text(st, 2, b->type);
        db_bind_text(st, 3, b->name);
        db_bind_text(st, 4, b->mime);
        db_bind_text(st, 5, b->body);
        db_bind_text(st, 6, b->thumbnail);
        db_bind_text(st, 7, b->owner);
        db_bind_text(st, 8, b->created_at);
        db_bind_text(st, 9, b->updated_at);
        int rc = insert_counted(im, st, T_BACKPACK, b->id ? b->id : "?", true, b->owner, NULL);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int tx_sessions(struct db *db, struct import *im)
{
    for (size_t i = 0; i < im->nsessions; i++) {
        struct up_session *s = &im->sessions[i];
        struct db_stmt *st =
            db_prepare(db, "INSERT INTO oauth_sessions (id, user_id, access_token, refresh_token, "
                           "expires_at, created_at, last_accessed) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING");
        if (!st)
            return DB_ERROR;
        db_bind_text(st, 1, s->hash);
        db_bind_text(st, 2, s->user_id);
        db_bind_text(st, 3, s->access ? s->access : "");
        db_bind_text(st, 4, s->refresh);
        db_bind_text(st, 5, s->expires_at);
        db_bind_text(st, 6, s->created_at);
        db_bind_text(st, 7, s->last_accessed);
        char key[96];
        snprintf(key, sizeof key, "of %.60s (stored as %.12s…)", s->user_id ? s->user_id : "?",
                 s->hash);
        int rc = insert_counted(im, st, T_SESSIONS, key, true, s->user_id, NULL);
        if (rc != DB_OK)
            return rc;
    }
    return DB_OK;
}

static int import_tx(struct db *db, void *ctx)
{
    struct import *im = ctx;
    /* A retried transaction starts its report over. */
    free_notes(&im->row_notes, &im->nrow_notes);
    for (int i = 0; i < T_COUNT; i++)
        im->t[i].imported = im->t[i].present = im->t[i].skipped = 0;
    int rc;
    /* Parents before children (foreign keys). */
    if ((rc = tx_users(db, im)) != DB_OK || (rc = tx_groups(db, im)) != DB_OK ||
        (rc = tx_members(db, im)) != DB_OK || (rc = tx_projects(db, im)) != DB_OK ||
        (rc = tx_shares(db, im)) != DB_OK || (rc = tx_assets(db, im)) != DB_OK ||
        (rc = tx_backpack(db, im)) != DB_OK || (rc = tx_sessions(db, im)) != DB_OK)
        return rc;
    /* Ids were inserted explicitly: the ones the server generates next must follow them. */
    if ((rc = db_sync_identity(db, "groups", "id")) != DB_OK ||
        (rc = db_sync_identity(db, "projects", "id")) != DB_OK)
        return rc;
    return DB_OK;
}

/* ---- the command --------------------------------------------------------------------- */

static void import_free(struct import *im)
{
    free(im->users);
    free(im->groups);
    free(im->members);
    free(im->projects);
    free(im->shares);
    free(im->assets);
    free(im->backpack);
    free(im->sessions);
    free_notes(&im->file_notes, &im->nfile_notes);
    free_notes(&im->row_notes, &im->nrow_notes);
    if (im->magic)
        magic_close(im->magic);
    if (im->bs.root)
        blob_store_close(&im->bs);
    db_close(im->db);
    arena_free(&im->arena);
}

int cmd_import(struct admin *a, int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-')
        return admin_usage(argv[0]);
    const char *path = argv[1];

    struct import im;
    memset(&im, 0, sizeof im);
    arena_init(&im.arena, 64 * 1024);
    int ret = EXIT_FAIL, lock = -1;
    struct stat st;
    char err[512];

    /* PATH: the directory holding main.db and uploads/, or main.db itself. */
    if (stat(path, &st) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        im.db_path = arena_printf(&im.arena, "%s/main.db", path);
        im.uploads = arena_printf(&im.arena, "%s/uploads", path);
    } else {
        im.db_path = path;
        const char *slash = strrchr(path, '/');
        im.uploads =
            slash ? arena_printf(&im.arena, "%.*s/uploads", (int)(slash - path), path) : "uploads";
    }
    if (stat(im.db_path, &st) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", im.db_path, strerror(errno));
        goto done;
    }
    if (stat(im.uploads, &st) < 0 || !S_ISDIR(st.st_mode))
        fprintf(stderr,
                "s4s-admin: warning: no uploads/ directory at %s: files are looked for at the "
                "paths the database records\n",
                im.uploads);

    /* gc must not remove the blobs written below before the transaction records them. */
    if ((lock = admin_lock(a, true)) < 0)
        goto done;
    if (admin_open_database(a, true, &im.db) < 0)
        goto done;
    int applied = 0;
    if (db_migrate(im.db, &applied, err, sizeof err) != DB_OK) {
        fprintf(stderr, "s4s-admin: %s\n", err);
        goto done;
    }
    if (admin_open_blobs(a, &im.bs) < 0)
        goto done;
    im.magic = magic_open(MAGIC_MIME_TYPE | MAGIC_ERROR);
    if (!im.magic || magic_load(im.magic, NULL) != 0) {
        fprintf(stderr, "s4s-admin: libmagic: %s\n",
                im.magic ? magic_error(im.magic) : "magic_open failed");
        goto done;
    }

    printf("importing %s (files from %s)\n", im.db_path, im.uploads);
    if (read_upstream(&im) < 0)
        goto done;
    printf("read: %zu users, %zu groups, %zu memberships, %zu projects, %zu shares, %zu assets, "
           "%zu backpack items, %zu usable sessions (%ld expired for good: left out)\n",
           im.nusers, im.ngroups, im.nmembers, im.nprojects, im.nshares, im.nassets, im.nbackpack,
           im.nsessions, im.sessions_dead);
    if (!im.had_version_column)
        printf("the upstream projects table has no version column: every project starts at "
               "version 1\n");

    /* Files first: the rows that point at them go in after, all at once. */
    for (size_t i = 0; i < im.nprojects; i++)
        if (adopt_project_files(&im, &im.projects[i]) < 0)
            goto done;
    for (size_t i = 0; i < im.nassets; i++)
        if (adopt_asset_file(&im, &im.assets[i]) < 0)
            goto done;
    printf("files: %llu copied into the blob store (%llu bytes); the originals are left in "
           "place\n",
           (unsigned long long)im.files, (unsigned long long)im.file_bytes);

    int rc = db_transaction(im.db, true, import_tx, &im);
    if (rc != DB_OK) {
        fprintf(stderr,
                "s4s-admin: the import transaction failed%s: nothing was imported (the files "
                "copied are unreferenced; gc removes them)\n",
                rc == DB_BUSY ? " (database busy)" : "");
        goto done;
    }

    long total = 0;
    for (int i = 0; i < T_COUNT; i++) {
        printf("  %-17s %6ld imported, %6ld already here, %6ld left out\n", table_label[i],
               im.t[i].imported, im.t[i].present, im.t[i].skipped);
        total += im.t[i].imported;
    }
    if (im.nfile_notes + im.nrow_notes) {
        printf("reported (%zu):\n", im.nfile_notes + im.nrow_notes);
        for (size_t i = 0; i < im.nfile_notes; i++)
            printf("  %s\n", im.file_notes[i]);
        for (size_t i = 0; i < im.nrow_notes; i++)
            printf("  %s\n", im.row_notes[i]);
    }
    if (total == 0)
        printf("nothing new: every row was already here\n");
    else
        printf("imported %ld rows\n", total);
    ret = EXIT_OK;
done:
    import_free(&im);
    if (lock >= 0)
        close(lock);
    return ret;
}
