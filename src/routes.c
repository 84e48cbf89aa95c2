/*
 * routes.c — every endpoint, as data: method, path below BASE_PATH, handler,
 * and the authentication it needs. Literal paths come before captures
 * (first match wins). The "/_test/" routes exist only when the server was
 * started with S4S_TEST_ROUTES=1 (the test suite); worker.c refuses them
 * otherwise.
 */
#include "routes.h"

const struct route s4s_routes[] = {
    {"GET", "/api/status", h_api_status, AUTH_NONE},
    /* Login (API.md "Login") */
    {"GET", "/login", h_login, AUTH_NONE},
    {"GET", "/authorize", h_authorize, AUTH_NONE},
    {"GET", "/session", h_session, AUTH_NONE}, /* its own 400/401 rules */
    {"GET", "/logout", h_logout, AUTH_NONE},
    {"POST", "/logout", h_logout, AUTH_NONE},
    /* General */
    {"GET", "/api/user", h_api_user, AUTH_REQUIRED},
    {"GET", "/api/groups", h_api_groups, AUTH_REQUIRED},
    {"GET", "/api/projects/can-save", h_can_save, AUTH_OPTIONAL},
    /* Projects (h_projects.c): literal paths before captures */
    {"GET", "/api/projects", h_projects_list, AUTH_REQUIRED},
    {"POST", "/api/projects", h_project_create, AUTH_REQUIRED},
    {"GET", "/api/projects/recent", h_projects_recent, AUTH_REQUIRED},
    {"GET", "/api/projects/shared", h_projects_shared, AUTH_REQUIRED},
    {"PUT", "/api/projects/:id", h_project_update, AUTH_REQUIRED},
    {"DELETE", "/api/projects/:id", h_project_delete, AUTH_REQUIRED},
    {"GET", "/api/projects/:id/metadata", h_project_metadata, AUTH_REQUIRED},
    {"GET", "/api/projects/:id/download", h_project_download, AUTH_REQUIRED},
    /* Thumbnails: a presented token must be valid; none is fine while PUBLIC_THUMBNAILS is on. */
    {"GET", "/api/projects/:id/thumbnail", h_project_thumbnail, AUTH_OPTIONAL},
    {"POST", "/api/projects/:id/thumbnail", h_project_thumbnail_upload, AUTH_REQUIRED},
    {"POST", "/api/projects/:id/share", h_project_share, AUTH_REQUIRED},
    {"GET", "/api/projects/:id/sharing", h_project_sharing, AUTH_REQUIRED},
    {"POST", "/api/projects/:id/copy", h_project_copy, AUTH_REQUIRED},
    {"GET", "/api/projects/:id/versions", h_project_versions, AUTH_REQUIRED},
    {"GET", "/api/projects/:id/versions/:v/download", h_project_version_download, AUTH_REQUIRED},
    {"POST", "/api/projects/:id/versions/:v/restore", h_project_version_restore, AUTH_REQUIRED},
    /* @projects-routes-end */
    /* Assets (h_assets.c) */
    {"POST", "/api/assets/", h_asset_upload, AUTH_REQUIRED},
    {"POST", "/api/assets/:name", h_asset_upload_raw, AUTH_REQUIRED}, /* <md5>.<ext> */
    {"GET", "/api/assets/:name", h_asset_get, AUTH_NONE},             /* <md5>[.<ext>] */
    /* @assets-routes-end */
    /* Backpack (h_backpack.c) */
    {"GET", "/api/backpack", h_backpack_list, AUTH_REQUIRED},
    {"POST", "/api/backpack", h_backpack_add, AUTH_REQUIRED},
    {"DELETE", "/api/backpack/:id", h_backpack_delete, AUTH_REQUIRED},
    /* @backpack-routes-end */
    /* Teacher view (h_teacher.c) */
    {"GET", "/api/teacher/students", h_teacher_students, AUTH_REQUIRED},
    {"GET", "/api/teacher/students/:id/projects", h_teacher_student_projects, AUTH_REQUIRED},
    /* @teacher-routes-end */
    /* Operations */
    {"GET", "/status", h_status, AUTH_NONE},
    {"GET", "/metrics", h_metrics, AUTH_NONE},
    {"GET", "/_test/sleep", h_test_sleep, AUTH_NONE},
    {"POST", "/_test/upload", h_test_upload, AUTH_NONE},
};

const size_t s4s_routes_count = sizeof s4s_routes / sizeof s4s_routes[0];
