/*
 * routes.h — the route table (routes.c) and the handlers it names. The table
 * is the one screen a reader scans to see every endpoint, who may call it,
 * and which function answers.
 */
#ifndef S4S_ROUTES_H
#define S4S_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "assets.h"
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
void h_projects_list(struct request *r);
void h_project_create(struct request *r);
void h_projects_recent(struct request *r);
void h_projects_shared(struct request *r);
void h_project_update(struct request *r);
void h_project_delete(struct request *r);
void h_project_metadata(struct request *r);
void h_project_download(struct request *r);
void h_project_thumbnail(struct request *r);
void h_project_thumbnail_upload(struct request *r);
void h_project_share(struct request *r);
void h_project_sharing(struct request *r);
void h_project_copy(struct request *r);
void h_project_versions(struct request *r);
void h_project_version_download(struct request *r);
void h_project_version_restore(struct request *r);
/* @projects-handlers-end */

/* h_assets.c — the Assets section */
void h_asset_upload(struct request *r);
void h_asset_upload_raw(struct request *r);
void h_asset_get(struct request *r);
/* The steps every asset takes, shared with h_backpack.c. Each answers the
 * request itself when it fails. */
struct blob_writer;
/* A failed content check (enum content_status) as 400/415/422/500 with msg. */
void asset_content_fail(struct request *r, int status, const char *msg);
/* The asset row a writer's MD5 names, looked up once per upload: rc is
 * asset_find's (DB_ROW, DB_OK when there is none, or a db error). */
struct asset_lookup {
    int rc;
    struct asset_info info;
};
/* The content check of a finished writer against the declared format (enum
 * content_status; msg as content_check_asset writes it). Bytes stored before
 * under the same format passed it then, so they are not checked again. Fills
 * *seen for asset_commit_checked. */
int asset_check_content(struct request *r, const struct blob_writer *w, const char *format,
                        struct asset_lookup *seen, char *msg, size_t msglen);
/* A failed blob write (enum blob_status) as 507/413/500. */
void asset_blob_fail(struct request *r, int blob_status);
/* 409: the MD5 belongs to other bytes. */
void asset_conflict(struct request *r, const char *md5);
/* A finished, content-checked writer: 409 when its MD5 belongs to other
 * bytes; else the blob committed, or the temp file dropped and *recorded set
 * when row and blob hold these bytes already. false when answered (the
 * writer is aborted). seen: asset_check_content's lookup, or NULL to look up. */
bool asset_commit_checked(struct request *r, struct blob_writer *w, const struct asset_lookup *seen,
                          bool *recorded);
/* @assets-handlers-end */

/* h_backpack.c — the Backpack section */
void h_backpack_list(struct request *r);
void h_backpack_add(struct request *r);
void h_backpack_delete(struct request *r);
/* @backpack-handlers-end */

/* h_teacher.c — the Teacher view */
void h_teacher_students(struct request *r);
void h_teacher_student_projects(struct request *r);
/* @teacher-handlers-end */

/* h_ops.c — health, process-manager status, metrics */
void h_api_status(struct request *r);
void h_status(struct request *r);
void h_metrics(struct request *r);
void h_test_sleep(struct request *r);
void h_test_upload(struct request *r);

#endif
