/* Unit tests for src/router.c, on a table shaped like the real one. */
#include "../src/router.c"
#include "tap.h"

static void h(struct request *r)
{
    (void)r;
}

static const struct route table[] = {
    {"GET", "/api/status", h, AUTH_NONE},
    {"GET", "/api/projects", h, AUTH_REQUIRED},
    {"POST", "/api/projects", h, AUTH_REQUIRED},
    {"GET", "/api/projects/recent", h, AUTH_REQUIRED},
    {"GET", "/api/projects/:id", h, AUTH_REQUIRED},
    {"PUT", "/api/projects/:id", h, AUTH_REQUIRED},
    {"DELETE", "/api/projects/:id", h, AUTH_REQUIRED},
    {"GET", "/api/projects/:id/versions/:v/download", h, AUTH_REQUIRED},
    {"POST", "/api/assets/", h, AUTH_REQUIRED},
    {"GET", "/", h, AUTH_NONE},
};
#define N (sizeof table / sizeof table[0])

int main(void)
{
    struct route_match m;
    is_int(router_match(table, N, "GET", "/api/status", &m), ROUTE_FOUND, "literal route");
    is_int(m.index, 0, "index of literal");
    is_int(m.nparams, 0, "no params");
    is_int(router_match(table, N, "GET", "/api/status/", &m), ROUTE_FOUND, "trailing slash");
    is_int(router_match(table, N, "GET", "/api/projects/recent", &m), ROUTE_FOUND, "recent");
    is_int(m.index, 3, "literal beats capture (table order)");
    is_int(router_match(table, N, "GET", "/api/projects/42", &m), ROUTE_FOUND, "capture");
    is_int(m.index, 4, "capture route index");
    is_int(m.nparams, 1, "one param");
    ok(m.param_len[0] == 2 && memcmp(m.params[0], "42", 2) == 0, "param is 42");
    is_int(router_match(table, N, "GET", "/api/projects/7/versions/3/download", &m), ROUTE_FOUND,
           "two captures");
    is_int(m.nparams, 2, "two params");
    ok(m.param_len[1] == 1 && m.params[1][0] == '3', "second param is 3");
    is_int(router_match(table, N, "PATCH", "/api/projects/42", &m), ROUTE_BAD_METHOD, "405");
    is_str(m.allow, "GET, PUT, DELETE", "Allow lists the path's methods once each");
    is_int(router_match(table, N, "GET", "/api/nothing", &m), ROUTE_NOT_FOUND, "404");
    is_int(router_match(table, N, "GET", "/api/projects/", &m), ROUTE_FOUND,
           "/api/projects/ is the list");
    is_int(m.index, 1, "list index");
    is_int(router_match(table, N, "GET", "/api/projects/1/2", &m), ROUTE_NOT_FOUND,
           "extra segment is not found");
    is_int(router_match(table, N, "POST", "/api/assets", &m), ROUTE_FOUND,
           "/api/assets matches /api/assets/");
    is_int(router_match(table, N, "POST", "/api/assets/", &m), ROUTE_FOUND, "/api/assets/");
    is_int(router_match(table, N, "GET", "/", &m), ROUTE_FOUND, "root");
    is_int(router_match(table, N, "GET", "", &m), ROUTE_NOT_FOUND, "empty path");
    is_int(router_match(table, N, "GET", "/api/statusx", &m), ROUTE_NOT_FOUND, "prefix only");
    return tap_done();
}
