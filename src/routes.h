/*
 * routes.h — the route table (routes.c) and the handlers it names. The table
 * is the one screen a reader scans to see every endpoint, who may call it,
 * and which function answers.
 */
#ifndef S4S_ROUTES_H
#define S4S_ROUTES_H

#include <stddef.h>

#include "router.h"

extern const struct route s4s_routes[];
extern const size_t s4s_routes_count;

/* h_auth.c — login, sessions, the caller's user and groups */
void h_login(struct request *r);
void h_authorize(struct request *r);
void h_session(struct request *r);
void h_logout(struct request *r);
void h_api_user(struct request *r);
void h_api_groups(struct request *r);
void h_can_save(struct request *r);
/* The 401/503 answer for a failed session lookup (enum sess_status). */
void auth_fail(struct request *r, int status);

/* h_projects.c — the Projects section */
/* @projects-handlers-end */

/* h_assets.c — the Assets section */
/* @assets-handlers-end */

/* h_backpack.c — the Backpack section */
/* @backpack-handlers-end */

/* h_teacher.c — the Teacher view */
/* @teacher-handlers-end */

/* h_ops.c — health, process-manager status, metrics */
void h_api_status(struct request *r);
void h_status(struct request *r);
void h_metrics(struct request *r);
void h_test_sleep(struct request *r);
void h_test_upload(struct request *r);

#endif
