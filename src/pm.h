/*
 * pm.h — the process manager (master): forks and supervises workers on the
 * shared listening socket, respawns the dead (with backoff when they die at
 * start), kills a worker stuck past REQUEST_TIMEOUT, and handles signals as
 * nginx and php-fpm do: QUIT graceful stop, TERM/INT fast stop, HUP reload,
 * USR1 reopen logs. It never serves a request.
 */
#ifndef S4S_PM_H
#define S4S_PM_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "listen.h"
#include "scoreboard.h"

#define PM_MAX_OVERRIDES 16

/* What the command line said, re-applied on every reload. */
struct pm_options {
    const char *config_path; /* NULL: no file */
    struct {
        const char *key;
        const char *value;
    } overrides[PM_MAX_OVERRIDES];
    int noverrides;
};

/* Defaults, file, environment, then the command line's overrides; validated. */
int pm_load_config(const struct pm_options *opt, struct config *out, char *err, size_t errlen);
/* Open the database, apply pending migrations, close it. 0 or -1 (logged). */
int pm_migrate(const struct config *cfg);
/* Run until stopped. Takes ownership of cfg (replaced on reload). Returns the exit status. */
int pm_run(struct config *cfg, struct listener *l, struct scoreboard *sb,
           const struct pm_options *opt);

#endif
