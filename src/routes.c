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
    /* @projects-routes-end */
    /* Assets (h_assets.c) */
    /* @assets-routes-end */
    /* Backpack (h_backpack.c) */
    /* @backpack-routes-end */
    /* Teacher view (h_teacher.c) */
    /* @teacher-routes-end */
    /* Operations */
    {"GET", "/status", h_status, AUTH_NONE},
    {"GET", "/metrics", h_metrics, AUTH_NONE},
    {"GET", "/_test/sleep", h_test_sleep, AUTH_NONE},
    {"POST", "/_test/upload", h_test_upload, AUTH_NONE},
};

const size_t s4s_routes_count = sizeof s4s_routes / sizeof s4s_routes[0];
