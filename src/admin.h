/*
 * admin.h — what the s4s-admin commands share: the loaded configuration,
 * exit statuses, opening the configured database and blob store the way the
 * server does, the lock that keeps blob-writing and blob-deleting commands
 * apart, and the command functions (one module each: backup.c for backup
 * and restore, check.c, copydb.c, gc.c, import.c, stats.c; migrate lives in
 * admin.c).
 */
#ifndef S4S_ADMIN_H
#define S4S_ADMIN_H

#include "config.h"

#include <stdbool.h>

struct db;
struct blobstore;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct admin {
    const char *config_path; /* -c, else $S4S_CONFIG, else NULL (environment only) */
    struct config cfg;
};

/* Print "usage: s4s-admin [-c FILE] <name> <usage>" for a command; returns EXIT_USAGE. */
int admin_usage(const char *name);

/*
 * Open the configured database. create: make DATA_DIR and the database file
 * when missing (migrate, import); otherwise a missing database is an error
 * rather than a new empty file. Messages go to stderr; 0 or -1.
 */
int admin_open_database(struct admin *a, bool create, struct db **out);
/* The database file's path (SQLite only), malloc'd; NULL with a message otherwise. */
char *admin_database_path(struct admin *a);
/* Fail with a message when the schema has migrations this binary knows but the
 * database lacks: the commands reading blob references need the current columns. */
int admin_require_migrated(struct db *db);
/* DATA_DIR's blob store (creates blobs/ and tmp/ if missing). */
int admin_open_blobs(struct admin *a, struct blobstore *bs);

/*
 * DATA_DIR/admin.lock, flock()ed: exclusive for the commands that write or
 * delete blobs outside a request (gc, import, restore), shared for backup.
 * gc must not delete the blobs an import has written but not yet recorded.
 * Waits (saying so) when another command holds it. Returns the fd to close
 * when done, or -1 with a message.
 */
int admin_lock(struct admin *a, bool exclusive);
#define ADMIN_LOCK_NAME "admin.lock"

/* A duration or count argument: seconds with an optional s/m/h/d suffix. */
bool admin_parse_seconds(const char *s, long *out);

int cmd_backup(struct admin *a, int argc, char **argv);
int cmd_restore(struct admin *a, int argc, char **argv);
int cmd_check(struct admin *a, int argc, char **argv);
int cmd_gc(struct admin *a, int argc, char **argv);
int cmd_import(struct admin *a, int argc, char **argv);
int cmd_stats(struct admin *a, int argc, char **argv);
int cmd_copy_db(struct admin *a, int argc, char **argv);

#endif
