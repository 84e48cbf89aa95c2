/*
 * gc.c — s4s-admin gc: removes what nothing needs any more, safely while
 * the server runs.
 *
 *   1. Projects soft-deleted longer ago than --retention (default 30 days):
 *      their versions, shares, per-session rows and the project row, in one
 *      transaction.
 *   2. Sessions that are over: expired without a refresh token, or expired
 *      more than 30 days ago whatever they hold; with their per-session rows.
 *   3. Blobs no row references, older than the grace period (default 1 day).
 *   4. Temp files older than the grace period (crashed uploads).
 *
 * The blob rule and in-flight uploads. An upload stores its blob first and
 * records it in the database after; until then the blob looks unreferenced.
 * So: list candidates first (mtime before the cutoff), then read every
 * reference in one read transaction, then for each unreferenced candidate
 * move it aside (rename into tmp/, after which an upload of the same bytes
 * creates a fresh file rather than finding this one) and look at its mtime
 * again: an upload that found it already there (EEXIST) refreshed it
 * (blob_writer_commit), and then it goes back. Only what is still old is
 * unlinked. The grace period must exceed the time an upload takes from
 * storing its file to committing its row, which the server bounds by
 * REQUEST_TIMEOUT (the master kills a request running longer, and its
 * transaction with it); gc never uses a shorter one than that bound plus a
 * margin. Imports (which write blobs for a long time before their one
 * transaction) hold the admin lock, which gc waits for.
 */
#include "admin.h"
#include "blobrefs.h"
#include "blobstore.h"
#include "db.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GC_DEFAULT_GRACE (24L * 3600)
#define GC_DEFAULT_RETENTION (30L * 86400)
/* Sessions expired this long ago go even when they hold a refresh token. */
#define GC_SESSION_MAX_AGE (30L * 86400)
/* Added to REQUEST_TIMEOUT: the master notices a late request within its tick. */
#define GC_INFLIGHT_MARGIN 2L
/* With REQUEST_TIMEOUT=0 nothing bounds a request: assume an hour. */
#define GC_UNBOUNDED_INFLIGHT 3600L

struct gc {
    struct db *db;
    bool dry_run;
    char purge_before[DB_TS_LEN]; /* deleted_at older than this: purge */
    char now_ts[DB_TS_LEN];       /* sessions expired before now */
    char sessions_before[DB_TS_LEN];
    int64_t projects, versions, shares, sessions;
};

/* SELECT count(*) … with one or two text parameters (b2 NULL: one). */
static int count_rows(struct db *db, const char *sql, const char *b1, const char *b2, int64_t *out)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, b1);
    if (b2)
        db_bind_text(st, 2, b2);
    int rc = db_step(st);
    if (rc != DB_ROW)
        return rc == DB_OK ? DB_ERROR : rc;
    *out = db_column_int64(st, 0);
    db_reset(st);
    return DB_OK;
}

/* Step a DELETE binding the cutoff to each of its n placeholders; *changed = rows. */
static int run_cut(struct db *db, const char *sql, int n, const char *cut, int64_t *changed)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERROR;
    for (int i = 1; i <= n; i++)
        db_bind_text(st, i, cut);
    int rc = db_step(st);
    if (rc == DB_OK && changed)
        *changed = db_changes(db);
    return rc;
}

/* Step a DELETE with the two session cutoffs (now, and 30 days ago); *changed = rows. */
static int run_sessions(struct db *db, const char *sql, const struct gc *g, int64_t *changed)
{
    struct db_stmt *st = db_prepare(db, sql);
    if (!st)
        return DB_ERROR;
    db_bind_text(st, 1, g->now_ts);
    db_bind_text(st, 2, g->sessions_before);
    int rc = db_step(st);
    if (rc == DB_OK)
        *changed = db_changes(db);
    return rc;
}

/* ---- 1. soft-deleted projects ------------------------------------------------- */

static int purge_tx(struct db *db, void *ctx)
{
    struct gc *g = ctx;
    const char *cut = g->purge_before;
    int rc;
    int64_t n = 0;
    g->projects = g->versions = g->shares = 0;

    if (g->dry_run) {
        rc = count_rows(db,
                        "SELECT count(*) FROM projects WHERE deleted_at IS NOT NULL "
                        "AND deleted_at < ?",
                        cut, NULL, &g->projects);
        if (rc == DB_OK)
            rc = count_rows(db,
                            "SELECT count(*) FROM project_versions WHERE project_id IN "
                            "(SELECT id FROM projects WHERE deleted_at IS NOT NULL "
                            "AND deleted_at < ?)",
                            cut, NULL, &g->versions);
        if (rc == DB_OK)
            rc = count_rows(db,
                            "SELECT count(*) FROM project_groups WHERE project_id IN "
                            "(SELECT id FROM projects WHERE deleted_at IS NOT NULL "
                            "AND deleted_at < ?)",
                            cut, NULL, &g->shares);
        return rc;
    }
    /* Children first (foreign keys), the project rows last. */
    rc = run_cut(db,
                 "DELETE FROM project_versions WHERE project_id IN "
                 "(SELECT id FROM projects WHERE deleted_at IS NOT NULL AND deleted_at < ?)",
                 1, cut, &g->versions);
    if (rc != DB_OK)
        return rc;
    rc = run_cut(db,
                 "DELETE FROM project_groups WHERE project_id IN "
                 "(SELECT id FROM projects WHERE deleted_at IS NOT NULL AND deleted_at < ?)",
                 1, cut, &g->shares);
    if (rc != DB_OK)
        return rc;
    rc = run_cut(db,
                 "DELETE FROM session_project_versions WHERE project_id IN "
                 "(SELECT id FROM projects WHERE deleted_at IS NOT NULL AND deleted_at < ?)",
                 1, cut, &n);
    if (rc != DB_OK)
        return rc;
    rc = run_cut(db,
                 "DELETE FROM conflict_copies WHERE project_id IN "
                 "(SELECT id FROM projects WHERE deleted_at IS NOT NULL AND deleted_at < ?) "
                 "OR copy_id IN "
                 "(SELECT id FROM projects WHERE deleted_at IS NOT NULL AND deleted_at < ?)",
                 2, cut, &n);
    if (rc != DB_OK)
        return rc;
    return run_cut(db, "DELETE FROM projects WHERE deleted_at IS NOT NULL AND deleted_at < ?", 1,
                   cut, &g->projects);
}

/* ---- 2. sessions ----------------------------------------------------------------- */

static int sessions_tx(struct db *db, void *ctx)
{
    struct gc *g = ctx;
    int rc;
    int64_t n = 0;
    g->sessions = 0;

    /* Timestamps are text in one format (DB_TS), so they compare as text. */
    if (g->dry_run)
        return count_rows(db,
                          "SELECT count(*) FROM oauth_sessions WHERE (expires_at < ? AND "
                          "(refresh_token IS NULL OR refresh_token = '')) OR expires_at < ?",
                          g->now_ts, g->sessions_before, &g->sessions);
    /* Their per-session rows first, and any left by sessions deleted earlier. */
    rc = run_sessions(db,
                      "DELETE FROM session_project_versions WHERE session_id IN "
                      "(SELECT id FROM oauth_sessions WHERE (expires_at < ? AND "
                      "(refresh_token IS NULL OR refresh_token = '')) OR expires_at < ?) "
                      "OR session_id NOT IN (SELECT id FROM oauth_sessions)",
                      g, &n);
    if (rc != DB_OK)
        return rc;
    rc = run_sessions(db,
                      "DELETE FROM conflict_copies WHERE session_id IN "
                      "(SELECT id FROM oauth_sessions WHERE (expires_at < ? AND "
                      "(refresh_token IS NULL OR refresh_token = '')) OR expires_at < ?) "
                      "OR session_id NOT IN (SELECT id FROM oauth_sessions)",
                      g, &n);
    if (rc != DB_OK)
        return rc;
    return run_sessions(db,
                        "DELETE FROM oauth_sessions WHERE (expires_at < ? AND "
                        "(refresh_token IS NULL OR refresh_token = '')) OR expires_at < ?",
                        g, &g->sessions);
}

/* ---- 3. blobs and 4. temp files ---------------------------------------------------- */

struct candidate {
    char sha256[65];
    uint64_t size;
};

struct sweep {
    struct timespec cutoff;
    struct candidate *v;
    size_t n, cap;
    uint64_t young, young_bytes; /* unreferenced or not: too young to judge */
    uint64_t removed, removed_bytes, kept_touched, unreferenced;
    uint64_t tmp_removed, tmp_bytes, tmp_young;
    bool dry_run, verbose;
    int errors;
};

static bool older_than(const struct timespec *t, const struct timespec *cutoff)
{
    return t->tv_sec < cutoff->tv_sec ||
           (t->tv_sec == cutoff->tv_sec && t->tv_nsec < cutoff->tv_nsec);
}

static int list_candidate(const struct blob_file *f, void *ctx)
{
    struct sweep *s = ctx;
    if (!older_than(&f->mtime, &s->cutoff)) {
        s->young++;
        s->young_bytes += f->size;
        return 0;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    memcpy(s->v[s->n].sha256, f->sha256, sizeof f->sha256);
    s->v[s->n].size = f->size;
    s->n++;
    return 0;
}

/*
 * Remove one unreferenced blob unless an upload touched it: rename it out
 * of blobs/ first, so from then on an upload of these bytes links a new
 * file; then its mtime tells whether an upload found it before the rename.
 */
static void remove_blob(struct blobstore *bs, struct sweep *s, const struct candidate *c)
{
    char *path = xasprintf("%s/%.2s/%s", bs->blobs_dir, c->sha256, c->sha256 + 2);
    char *fan = xasprintf("%s/%.2s", bs->blobs_dir, c->sha256);
    char *aside = xasprintf("%s/gc-%ld-%s", bs->tmp_dir, (long)getpid(), c->sha256);
    struct stat st;

    if (rename(path, aside) < 0) {
        if (errno != ENOENT) {
            fprintf(stderr, "s4s-admin: moving %s aside: %s\n", path, strerror(errno));
            s->errors++;
        }
        goto done;
    }
    if (stat(aside, &st) < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", aside, strerror(errno));
        s->errors++;
        goto done;
    }
    if (!older_than(&st.st_mtim, &s->cutoff)) {
        /* An upload pointed at it meanwhile: back it goes. EEXIST: that upload
         * (or another) already stored the same bytes again. */
        if (link(aside, path) < 0 && errno != EEXIST) {
            fprintf(stderr, "s4s-admin: putting %s back: %s\n", path, strerror(errno));
            s->errors++;
            goto done;
        }
        if (fsync_dir(fan) < 0)
            fprintf(stderr, "s4s-admin: fsync %s: %s\n", fan, strerror(errno));
        unlink(aside);
        s->kept_touched++;
        if (s->verbose)
            printf("  kept blob %s: an upload stored it again meanwhile\n", c->sha256);
        goto done;
    }
    if (unlink(aside) < 0) {
        fprintf(stderr, "s4s-admin: removing %s: %s\n", aside, strerror(errno));
        s->errors++;
        goto done;
    }
    s->removed++;
    s->removed_bytes += (uint64_t)st.st_size;
    if (s->verbose)
        printf("  removed blob %s (%lld bytes)\n", c->sha256, (long long)st.st_size);
done:
    free(path);
    free(fan);
    free(aside);
}

static int sweep_tmp(const struct tmp_file *f, void *ctx)
{
    struct sweep *s = ctx;
    if (!older_than(&f->mtime, &s->cutoff)) {
        s->tmp_young++;
        return 0;
    }
    if (!s->dry_run && unlink(f->path) < 0) {
        if (errno != ENOENT) {
            fprintf(stderr, "s4s-admin: removing %s: %s\n", f->path, strerror(errno));
            s->errors++;
        }
        return 0;
    }
    s->tmp_removed++;
    s->tmp_bytes += f->size;
    if (s->verbose)
        printf("  %s temp file %s (%llu bytes)\n", s->dry_run ? "would remove" : "removed", f->name,
               (unsigned long long)f->size);
    return 0;
}

static void human(uint64_t n, char *out, size_t len)
{
    if (n >= (1ULL << 30))
        snprintf(out, len, "%.1f GiB", (double)n / (double)(1ULL << 30));
    else if (n >= (1ULL << 20))
        snprintf(out, len, "%.1f MiB", (double)n / (double)(1ULL << 20));
    else if (n >= 1024)
        snprintf(out, len, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(out, len, "%llu bytes", (unsigned long long)n);
}

int cmd_gc(struct admin *a, int argc, char **argv)
{
    long grace = GC_DEFAULT_GRACE, retention = GC_DEFAULT_RETENTION;
    bool dry_run = false, verbose = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc) {
            if (!admin_parse_seconds(argv[++i], &grace)) {
                fprintf(stderr, "s4s-admin: --grace: '%s' is not a number of seconds\n", argv[i]);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--retention") == 0 && i + 1 < argc) {
            if (!admin_parse_seconds(argv[++i], &retention)) {
                fprintf(stderr, "s4s-admin: --retention: '%s' is not a number of seconds\n",
                        argv[i]);
                return EXIT_USAGE;
            }
        } else {
            return admin_usage(argv[0]);
        }
    }

    struct gc g;
    memset(&g, 0, sizeof g);
    g.dry_run = dry_run;
    struct sweep s;
    memset(&s, 0, sizeof s);
    s.dry_run = dry_run;
    s.verbose = verbose;
    struct shaset refs = {0};
    struct blobstore bs = {0};
    bool bs_open = false;
    int ret = EXIT_FAIL, lock = -1, rc;
    const char *would = dry_run ? "would remove" : "removed";
    char size_text[32];

    long inflight = a->cfg.request_timeout > 0 ? a->cfg.request_timeout + GC_INFLIGHT_MARGIN
                                               : GC_UNBOUNDED_INFLIGHT;
    if (grace < inflight) {
        printf("gc: grace period raised from %ld to %ld s: an upload may take up to %s "
               "from storing its file to recording it\n",
               grace, inflight,
               a->cfg.request_timeout > 0 ? "REQUEST_TIMEOUT" : "an hour (REQUEST_TIMEOUT=0)");
        grace = inflight;
    }

    if ((lock = admin_lock(a, true)) < 0)
        goto done;
    if (admin_open_database(a, false, &g.db) < 0 || admin_require_migrated(g.db) < 0)
        goto done;
    if (admin_open_blobs(a, &bs) < 0)
        goto done;
    bs_open = true;

    int64_t now = epoch_us_now();
    db_ts_from_epoch_us(now - (int64_t)retention * 1000000, g.purge_before);
    db_ts_from_epoch_us(now, g.now_ts);
    db_ts_from_epoch_us(now - GC_SESSION_MAX_AGE * 1000000LL, g.sessions_before);

    /* 1 and 2 first: a purged project's blobs are collectable in this same run. */
    rc = db_transaction(g.db, !dry_run, purge_tx, &g);
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: purging deleted projects failed%s\n",
                rc == DB_BUSY ? " (database busy)" : "");
        goto done;
    }
    printf("projects: %s %lld deleted before %s (retention %ld s), with %lld version(s) and %lld "
           "share(s)\n",
           would, (long long)g.projects, g.purge_before, retention, (long long)g.versions,
           (long long)g.shares);
    rc = db_transaction(g.db, !dry_run, sessions_tx, &g);
    if (rc != DB_OK) {
        fprintf(stderr, "s4s-admin: removing expired sessions failed%s\n",
                rc == DB_BUSY ? " (database busy)" : "");
        goto done;
    }
    printf("sessions: %s %lld expired\n", would, (long long)g.sessions);

    /* 3: candidates, then references, then each candidate again. */
    clock_gettime(CLOCK_REALTIME, &s.cutoff);
    s.cutoff.tv_sec -= grace;
    if (blobrefs_walk_store(bs.blobs_dir, list_candidate, NULL, &s) < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", bs.blobs_dir, strerror(errno));
        goto done;
    }
    if ((rc = blobrefs_collect(g.db, &refs)) != DB_OK) {
        fprintf(stderr, "s4s-admin: reading the blob references failed\n");
        goto done;
    }
    for (size_t i = 0; i < s.n; i++) {
        if (shaset_has(&refs, s.v[i].sha256))
            continue;
        s.unreferenced++;
        if (dry_run) {
            s.removed++;
            s.removed_bytes += s.v[i].size;
            if (verbose)
                printf("  would remove blob %s (%llu bytes)\n", s.v[i].sha256,
                       (unsigned long long)s.v[i].size);
        } else {
            remove_blob(&bs, &s, &s.v[i]);
        }
    }
    human(s.removed_bytes, size_text, sizeof size_text);
    printf("blobs:    %s %llu unreferenced (%s) older than %ld s; %llu kept because an upload "
           "used them meanwhile; %llu younger blob(s) not examined\n",
           would, (unsigned long long)s.removed, size_text, grace,
           (unsigned long long)s.kept_touched, (unsigned long long)s.young);

    /* 4 */
    if (blobrefs_walk_tmp(bs.tmp_dir, sweep_tmp, &s) < 0) {
        fprintf(stderr, "s4s-admin: reading %s: %s\n", bs.tmp_dir, strerror(errno));
        goto done;
    }
    human(s.tmp_bytes, size_text, sizeof size_text);
    printf("temp:     %s %llu file(s) (%s) older than %ld s; %llu younger kept\n", would,
           (unsigned long long)s.tmp_removed, size_text, grace, (unsigned long long)s.tmp_young);
    ret = s.errors ? EXIT_FAIL : EXIT_OK;
done:
    free(s.v);
    shaset_free(&refs);
    if (bs_open)
        blob_store_close(&bs);
    db_close(g.db);
    if (lock >= 0)
        close(lock);
    return ret;
}
