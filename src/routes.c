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
    {"GET", "/status", h_status, AUTH_NONE},
    {"GET", "/metrics", h_metrics, AUTH_NONE},
    {"GET", "/_test/sleep", h_test_sleep, AUTH_NONE},
    {"POST", "/_test/upload", h_test_upload, AUTH_NONE},
};

const size_t s4s_routes_count = sizeof s4s_routes / sizeof s4s_routes[0];
