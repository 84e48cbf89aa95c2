/*
 * router.h — method + path pattern → handler, as data. A pattern is a path
 * whose segments are literals or ":name" captures (one segment each).
 * The first matching route in table order wins, so literal routes
 * ("/api/projects/recent") are listed before captures ("/api/projects/:id").
 */
#ifndef S4S_ROUTER_H
#define S4S_ROUTER_H

#include <stddef.h>

#define ROUTER_MAX_PARAMS 4

struct request;
typedef void (*handler_fn)(struct request *r);

enum auth_mode {
    AUTH_NONE = 0, /* no session looked up */
    AUTH_OPTIONAL, /* a session is used when presented */
    AUTH_REQUIRED, /* 401 without a valid session */
};

struct route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/api/projects/:id/metadata" */
    handler_fn handler;
    enum auth_mode auth;
};

enum router_result { ROUTE_FOUND = 0, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

struct route_match {
    int index; /* into the table */
    const char *params[ROUTER_MAX_PARAMS];
    size_t param_len[ROUTER_MAX_PARAMS];
    int nparams;
    char allow[96]; /* for 405: the methods the path does accept, "GET, POST" */
};

/* Match method and path (below BASE_PATH, starting with '/'). A trailing slash
 * on the path matches the pattern with or without one. Params point into path. */
int router_match(const struct route *table, size_t n, const char *method, const char *path,
                 struct route_match *m);

#endif
