/*
 * admin.c — s4s-admin, the operator tool: main(), option parsing, the
 * command table, and what every command shares (admin.h): opening the
 * configured database and blob store, the admin lock. Each command is one
 * function that gets the loaded configuration and its own arguments and
 * returns the exit status (0 ok, 1 failure, 2 usage); migrate is here, the
 * others have a module each (backup.c, check.c, copydb.c, gc.c, import.c,
 * stats.c).
 */
#include "admin.h"
#include "blobstore.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

struct command {
    const char *name;
    int (*fn)(struct admin *a, int argc, char **argv); /* argv[0] is the command name */
    const char *usage;                                 /* arguments after the name */
    const char *help;
};

static int cmd_migrate(struct admin *a, int argc, char **argv);

static const struct command commands[] = {
    {"migrate", cmd_migrate, "[--status]",
     "apply pending schema migrations; --status lists each and whether it is applied"},
    {"backup", cmd_backup, "[--copy] DIR",
     "online, consistent copy of the database and every blob it references into DIR\n"
     "      (a new or empty directory), with a manifest; --copy: never hard-link blobs"},
    {"restore", cmd_restore, "[--force] DIR",
     "restore a backup into DATA_DIR, which must be empty unless --force (stop the server first)"},
    {"check", cmd_check, "[--json]",
     "verify every blob's SHA-256, every reference, the database's integrity;\n"
     "      list orphans and temp leftovers; exit 0 only when all is well"},
    {"gc", cmd_gc, "[--dry-run] [--verbose] [--grace SECONDS] [--retention SECONDS]",
     "remove unreferenced blobs and temp files older than the grace period (default 1d),\n"
     "      projects deleted longer ago than the retention (default 30d), expired sessions"},
    {"import", cmd_import, "PATH",
     "adopt a Python Scratch4School deployment: PATH is its main.db or the directory\n"
     "      holding main.db and uploads/ (files are copied, the originals stay)"},
    {"stats", cmd_stats, "[--json]", "counts of users, groups, projects, assets, sessions; sizes"},
    {"copy-db", cmd_copy_db, "--from URI --to URI [--force] [--json]",
     "copy every row from one database to another (SQLite or PostgreSQL, e.g. sqlite:///main.db\n"
     "      to postgresql://…) in one transaction, then compare them; the target must hold no\n"
     "      rows unless --force (deletes them first); blobs stay in DATA_DIR"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: s4s-admin [-c FILE] COMMAND [ARGS]\n"
               "       s4s-admin -h\n\n"
               "  -c FILE   configuration file (default: $S4S_CONFIG, else only the environment)\n"
               "  -h        this help\n\n"
               "commands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(f, "  %s %s\n      %s\n", commands[i].name, commands[i].usage, commands[i].help);
}

int admin_usage(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            fprintf(stderr, "usage: s4s-admin [-c FILE] %s %s\n", name, commands[i].usage);
    return EXIT_USAGE;
}

char *admin_database_path(struct admin *a)
{
    const char *uri = a->cfg.database_uri;

    if (db_uri_is_postgres(uri)) {
        fprintf(stderr, "s4s-admin: this command works on an SQLite database; DATABASE_URI "
                        "names a PostgreSQL one\n");
        return NULL;
    }
    char *path = cfg_sqlite_path(&a->cfg);
    if (!path)
        fprintf(stderr, "s4s-admin: DATABASE_URI '%s' does not name an SQLite file\n",
                uri ? uri : "");
    return path;
}

/*
 * Open the configured database the way the server does. With create,
 * DATA_DIR is made first so a fresh installation can be migrated before the
 * first start; without it a missing file is reported instead of created.
 */
int admin_open_database(struct admin *a, bool create, struct db **out)
{
    char err[512];
    struct stat st;
    struct db_options opt = {
        .busy_timeout_ms = a->cfg.db_busy_timeout_ms,
        .synchronous_full = true,
        .busy_retry_counter = NULL,
    };

    if (db_uri_is_postgres(a->cfg.database_uri)) {
        /* The database lives on its server; DATA_DIR still holds the blobs. */
        if (create && mkdir_p(a->cfg.data_dir, 0750) < 0) {
            fprintf(stderr, "s4s-admin: creating DATA_DIR %s: %s\n", a->cfg.data_dir,
                    strerror(errno));
            return -1;
        }
        if (db_open(a->cfg.database_uri, &opt, out, err, sizeof err) != 0) {
            fprintf(stderr, "s4s-admin: opening database: %s\n", err);
            return -1;
        }
        return 0;
    }
    char *path = admin_database_path(a);
    if (!path)
        return -1;
    if (create && mkdir_p(a->cfg.data_dir, 0750) < 0) {
        fprintf(stderr, "s4s-admin: creating DATA_DIR %s: %s\n", a->cfg.data_dir, strerror(errno));
        free(path);
        return -1;
    }
    if (!create && stat(path, &st) < 0) {
        fprintf(stderr, "s4s-admin: database %s: %s\n", path, strerror(errno));
        free(path);
        return -1;
    }
    if (db_open(path, &opt, out, err, sizeof err) != 0) {
        fprintf(stderr, "s4s-admin: opening database: %s\n", err);
        free(path);
        return -1;
    }
    free(path);
    return 0;
}

static void count_pending(const char *name, bool applied, const char *applied_at, void *ctx)
{
    (void)name;
    (void)applied_at;
    if (!applied)
        (*(int *)ctx)++;
}

int admin_require_migrated(struct db *db)
{
    int pending = 0;
    if (db_migration_status(db, count_pending, &pending) != DB_OK) {
        fprintf(stderr, "s4s-admin: cannot read the migration status\n");
        return -1;
    }
    if (pending) {
        fprintf(stderr,
                "s4s-admin: the database lacks %d migration(s): run 's4s-admin migrate' "
                "(or start the server) first\n",
                pending);
        return -1;
    }
    return 0;
}

int admin_open_blobs(struct admin *a, struct blobstore *bs)
{
    if (blob_store_open(bs, a->cfg.data_dir) < 0) {
        fprintf(stderr, "s4s-admin: blob store in %s: %s\n", a->cfg.data_dir, strerror(errno));
        return -1;
    }
    return 0;
}

int admin_lock(struct admin *a, bool exclusive)
{
    if (mkdir_p(a->cfg.data_dir, 0750) < 0) {
        fprintf(stderr, "s4s-admin: creating DATA_DIR %s: %s\n", a->cfg.data_dir, strerror(errno));
        return -1;
    }
    char *path = xasprintf("%s/%s", a->cfg.data_dir, ADMIN_LOCK_NAME);
    /* Read-only and world-readable: flock needs no more, and a lock file left by
     * root must not keep the server's user out. It holds nothing. */
    int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "s4s-admin: %s: %s\n", path, strerror(errno));
        free(path);
        return -1;
    }
    int op = exclusive ? LOCK_EX : LOCK_SH;
    if (flock(fd, op | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK) {
            fprintf(stderr, "s4s-admin: locking %s: %s\n", path, strerror(errno));
            goto fail;
        }
        fprintf(stderr, "s4s-admin: waiting for another s4s-admin command (%s) to finish\n", path);
        while (flock(fd, op) < 0) {
            if (errno != EINTR) {
                fprintf(stderr, "s4s-admin: locking %s: %s\n", path, strerror(errno));
                goto fail;
            }
        }
    }
    free(path);
    return fd;
fail:
    close(fd);
    free(path);
    return -1;
}

bool admin_parse_seconds(const char *s, long *out)
{
    return cfg_parse_duration(s, out);
}

/* ---- migrate ---------------------------------------------------------------- */

struct status_line {
    char *name;
    bool applied;
    char *applied_at;
};

struct status_list {
    struct status_line *v;
    size_t n;
};

static void collect_status(const char *name, bool applied, const char *applied_at, void *ctx)
{
    struct status_list *l = ctx;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n].name = xstrdup(name);
    l->v[l->n].applied = applied;
    l->v[l->n].applied_at = applied_at ? xstrdup(applied_at) : NULL;
    l->n++;
}

static int migrate_status(struct db *db)
{
    struct status_list l = {NULL, 0};
    int rc = db_migration_status(db, collect_status, &l);
    if (rc == DB_OK) {
        /* Collected first so the names line up in one column. */
        int width = 0;
        for (size_t i = 0; i < l.n; i++)
            if ((int)strlen(l.v[i].name) > width)
                width = (int)strlen(l.v[i].name);
        for (size_t i = 0; i < l.n; i++) {
            if (l.v[i].applied)
                printf("%-*s  applied %s\n", width, l.v[i].name, l.v[i].applied_at);
            else
                printf("%-*s  pending\n", width, l.v[i].name);
        }
    } else {
        fprintf(stderr, "s4s-admin: cannot read the migration status\n");
    }
    for (size_t i = 0; i < l.n; i++) {
        free(l.v[i].name);
        free(l.v[i].applied_at);
    }
    free(l.v);
    return rc == DB_OK ? EXIT_OK : EXIT_FAIL;
}

static int cmd_migrate(struct admin *a, int argc, char **argv)
{
    bool status = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0)
            status = true;
        else
            return admin_usage(argv[0]);
    }

    struct db *db;
    if (admin_open_database(a, true, &db) < 0)
        return EXIT_FAIL;

    int ret;
    if (status) {
        ret = migrate_status(db);
    } else {
        char err[512];
        int applied = 0;
        if (db_migrate(db, &applied, err, sizeof err) != DB_OK) {
            fprintf(stderr, "s4s-admin: %s\n", err);
            ret = EXIT_FAIL;
        } else {
            if (applied)
                printf("applied %d migration(s)\n", applied);
            else
                printf("database is up to date\n");
            ret = EXIT_OK;
        }
    }
    db_close(db);
    return ret;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct admin a;
    char err[512];
    int ch;

    memset(&a, 0, sizeof a);
    log_set_role("admin");
    /* '+': options end at the command name, which may have options of its own. */
    while ((ch = getopt(argc, argv, "+c:h")) != -1) {
        switch (ch) {
        case 'c':
            a.config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        usage(stderr);
        return EXIT_USAGE;
    }

    const struct command *cmd = NULL;
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(argv[0], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "s4s-admin: unknown command '%s'\n", argv[0]);
        usage(stderr);
        return EXIT_USAGE;
    }

    if (!a.config_path) {
        const char *env = getenv("S4S_CONFIG");
        if (env && *env)
            a.config_path = env;
    }
    /* The same settings as the server: file, then environment. */
    if (cfg_load(&a.cfg, a.config_path, environ, err, sizeof err) < 0 ||
        cfg_validate(&a.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "s4s-admin: configuration: %s\n", err);
        cfg_free(&a.cfg);
        return EXIT_FAIL;
    }
    /* Log lines (e.g. each migration applied) go to the operator's terminal,
     * not to the server's LOG_FILE. */
    log_set_level(a.cfg.log_level);

    int ret = cmd->fn(&a, argc, argv);
    cfg_free(&a.cfg);
    return ret;
}
