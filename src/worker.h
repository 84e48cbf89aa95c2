/*
 * worker.h — a worker process: opens its own database connection, libmagic
 * cookie and blob store after fork, then accepts and serves FastCGI
 * requests until told to stop or recycled after MAX_REQUESTS.
 */
#ifndef S4S_WORKER_H
#define S4S_WORKER_H

#include "config.h"
#include "listen.h"
#include "scoreboard.h"

/* Exit codes the master reads. */
#define WORKER_EXIT_OK 0      /* graceful stop or recycled */
#define WORKER_EXIT_STARTUP 3 /* could not open what it needs: respawn with backoff */

void worker_main(struct config *cfg, struct listener *l, struct scoreboard *sb, int slot,
                 int generation) __attribute__((noreturn));

/* Dispatch one parsed request (used by worker_main; separate for clarity). */
struct request;
void worker_dispatch(struct request *r);

#endif
