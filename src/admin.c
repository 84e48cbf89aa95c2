/*
 * admin.c — s4s-admin, the operator tool: main(), option parsing and the
 * command table. Each command is one function that gets the loaded
 * configuration and its own arguments and returns the exit status
 * (0 ok, 1 failure, 2 usage). Today: migrate. Later commands (backup, check,
 * gc, import, stats) are one row in the table and one function.
 */
#include "config.h"
#include "db.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct admin {
    const char *config_path; /* -c, else $S4S_CONFIG, else NULL (environment only) */
    struct config cfg;
};

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

static int command_usage(const struct command *c)
{
    fprintf(stderr, "usage: s4s-admin [-c FILE] %s %s\n", c->name, c->usage);
    return EXIT_USAGE;
}

/*
 * Open the configured database the way the server does, creating DATA_DIR
 * first so a fresh installation can be migrated before the first start.
 */
static int open_database(struct admin *a, struct db **out)
{
    char err[512];
    const char *uri = a->cfg.database_uri;

    if (uri && (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0)) {
        fprintf(stderr, "s4s-admin: DATABASE_URI: PostgreSQL is not supported yet\n");
        return -1;
    }
    char *path = cfg_sqlite_path(&a->cfg);
    if (!path) {
        fprintf(stderr, "s4s-admin: DATABASE_URI '%s' does not name an SQLite file\n",
                uri ? uri : "");
        return -1;
    }
    if (mkdir_p(a->cfg.data_dir, 0750) < 0) {
        fprintf(stderr, "s4s-admin: creating DATA_DIR %s: %s\n", a->cfg.data_dir, strerror(errno));
        free(path);
        return -1;
    }
    struct db_options opt = {
        .busy_timeout_ms = a->cfg.db_busy_timeout_ms,
        .synchronous_full = true,
        .busy_retry_counter = NULL,
    };
    if (db_open(path, &opt, out, err, sizeof err) != 0) {
        fprintf(stderr, "s4s-admin: opening database: %s\n", err);
        free(path);
        return -1;
    }
    free(path);
    return 0;
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
            return command_usage(&commands[0]);
    }

    struct db *db;
    if (open_database(a, &db) < 0)
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
